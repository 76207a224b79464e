package cli

import (
	"log/slog"

	"github.com/pyvnode/pyvnode/node"
	ucli "github.com/urfave/cli/v2"
)

func serveCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "serve",
		Usage: "run the node (initialises the data directory on first start)",
		Description: "With no flags, serve keeps its state in ./pyvnode-data, creating it on first start\n" +
			"(identity key, genesis of a one-node network, an admin account whose one-time password\n" +
			"is printed once and kept in DATA/admin-password), and serves the encrypted client\n" +
			"protocol on 127.0.0.1:6666. SIGINT or SIGTERM stop it cleanly.",
		Flags: []ucli.Flag{
			dataFlag(),
			&ucli.StringFlag{Name: "listen", Value: node.DefaultListen, Usage: "client protocol address (\"-\" for none)", EnvVars: []string{"PYVNODE_LISTEN"}},
			&ucli.BoolFlag{Name: "dev", Usage: "development mode: logins need no TOTP code"},
			memoryLimitFlag(),
		},
		Action: func(c *ucli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			if err := applyMemoryLimit(c); err != nil {
				return err
			}
			n, err := node.Start(c.Context, node.Config{
				DataDir: c.String("data"), Listen: c.String("listen"), Dev: c.Bool("dev"),
				Version: Version, Logger: slog.Default(), Out: env(c).Stdout,
			})
			if err != nil {
				return err
			}
			return n.Run(c.Context)
		},
	}
}
