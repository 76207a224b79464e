// Command pyvnode runs a pyvnode node and its tools; see 'pyvnode --help'.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pyvnode/pyvnode/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args)
	stop()
	os.Exit(code)
}
