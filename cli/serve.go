package cli

import (
	"github.com/pyvnode/pyvnode/node"
	ucli "github.com/urfave/cli/v2"
	"log/slog"
)

func serveCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "serve",
		Usage: "run the node (initialises the data directory on first start)",
		Description: "With no flags, serve keeps its state in ./pyvnode-data, creating it on first start\n" +
			"(identity key, genesis of a one-node network). SIGINT or SIGTERM stop it cleanly.",
		Flags: []ucli.Flag{dataFlag(), memoryLimitFlag()},
		Action: func(c *ucli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			if err := applyMemoryLimit(c); err != nil {
				return err
			}
			n, err := node.Start(c.Context, node.Config{DataDir: c.String("data"), Logger: slog.Default()})
			if err != nil {
				return err
			}
			return n.Run(c.Context)
		},
	}
}
