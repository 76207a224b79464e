package cli

import ucli "github.com/urfave/cli/v2"

func benchCommand() *ucli.Command {
	return &ucli.Command{Name: "bench", Usage: "measure the node's speed and memory (see docs/PERFORMANCE.md)"}
}
