// Package cli is pyvnode's command line: one file per command group, each
// turning flags into the config structs of the packages that do the work.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// Version is set at build time with -ldflags "-X github.com/pyvnode/pyvnode/cli.Version=...".
var Version = "0.1.0-dev"

// Exit codes.
const (
	ExitOK      = 0
	ExitError   = 1 // the command failed
	ExitUsage   = 2 // bad flags or arguments
	ExitDamaged = 3 // verification found damage
)

// usageError marks errors in how the command was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// Env is what commands write to; tests replace it.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Stdin  io.Reader
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	return Run(ctx, args, Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin})
}

// Run is Main with explicit streams.
func Run(ctx context.Context, args []string, env Env) int {
	app := newApp(env)
	err := app.RunContext(ctx, args)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "pyvnode: %v\n", err)
	var ue usageError
	var ee exitError
	switch {
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &ee):
		return ee.code
	case strings.HasPrefix(err.Error(), "flag provided but not defined"),
		strings.HasPrefix(err.Error(), "No help topic for"),
		strings.HasPrefix(err.Error(), "invalid value"),
		strings.Contains(err.Error(), "Required flag"):
		return ExitUsage
	}
	return ExitError
}

func newApp(env Env) *ucli.App {
	app := &ucli.App{
		Name:                 "pyvnode",
		Usage:                "a node of a peer-to-peer replicated, tamper-evident ledger",
		Version:              Version,
		Writer:               env.Stdout,
		ErrWriter:            env.Stderr,
		Reader:               env.Stdin,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		ExitErrHandler:       func(*ucli.Context, error) {}, // Run maps errors to exit codes
		OnUsageError: func(c *ucli.Context, err error, _ bool) error {
			return usageError{err.Error() + misplacedFlagHint(c, err)}
		},
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "log-format", Value: "text", Usage: "log format on stderr: text or json"},
			&ucli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		Before: func(c *ucli.Context) error {
			log, err := newLogger(env.Stderr, c.String("log-format"), c.String("log-level"))
			if err != nil {
				return err
			}
			slog.SetDefault(log)
			return nil
		},
		Commands: []*ucli.Command{
			serveCommand(),
			logsCommand(),
			initCommand(),
			keygenCommand(),
			chainCommand(),
			clientCommand(),
			userCommand(),
			benchCommand(),
			testnetCommand(),
			voteCommand(),
			tallyCommand(),
			charityCommand(),
			resourceCommand(),
			uidCommand(),
			verifyReceiptCommand(),
		},
	}
	setUsageErrors(app.Commands, app.OnUsageError)
	return app
}

// misplacedFlagHint explains an unknown flag that the command's group
// takes: "pyvnode vote cast --server X" should be "pyvnode vote --server X
// cast".
func misplacedFlagHint(c *ucli.Context, err error) string {
	const prefix = "flag provided but not defined: -"
	msg := err.Error()
	i := strings.Index(msg, prefix)
	if i < 0 {
		return ""
	}
	name := strings.TrimLeft(msg[i+len(prefix):], "-")
	for _, l := range c.Lineage()[1:] {
		if l.Command == nil {
			continue
		}
		for _, f := range l.Command.Flags {
			if slices.Contains(f.Names(), name) {
				return fmt.Sprintf(" (--%s belongs to '%s': put it right after %q, before the subcommand)", name, l.Command.HelpName, l.Command.Name)
			}
		}
	}
	return ""
}

// setUsageErrors makes every command report bad flags as a usage error
// (exit 2, one line) instead of printing its whole help.
func setUsageErrors(cmds []*ucli.Command, f ucli.OnUsageErrorFunc) {
	for _, c := range cmds {
		c.OnUsageError = f
		setUsageErrors(c.Subcommands, f)
	}
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	lv, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: use text or json", format)
}

// parseLevel reads the global --log-level.
func parseLevel(s string) (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("--log-level %q: use debug, info, warn or error", s)
	}
	return lv, nil
}

// dataFlag is the --data flag every command on a data directory takes.
func dataFlag() *ucli.StringFlag {
	return &ucli.StringFlag{Name: "data", Aliases: []string{"d"}, Value: "pyvnode-data", Usage: "data directory", EnvVars: []string{"PYVNODE_DATA"}}
}

func wantArgs(c *ucli.Context, min, max int) error {
	n := c.NArg()
	for _, a := range c.Args().Slice() {
		if len(a) > 1 && a[0] == '-' && a[1] == '-' {
			return usagef("flags go before arguments: move %q in front of them (usage: %s [flags] %s)", a, c.Command.HelpName, c.Command.ArgsUsage)
		}
	}
	if n < min || n > max {
		if min == max {
			return usagef("%s takes %d argument(s), got %d (usage: %s %s)", c.Command.HelpName, min, n, c.Command.HelpName, c.Command.ArgsUsage)
		}
		return usagef("%s takes %d to %d arguments, got %d (usage: %s %s)", c.Command.HelpName, min, max, n, c.Command.HelpName, c.Command.ArgsUsage)
	}
	return nil
}

func env(c *ucli.Context) Env {
	return Env{Stdout: c.App.Writer, Stderr: c.App.ErrWriter, Stdin: c.App.Reader}
}
