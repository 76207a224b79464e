package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"unicode"

	"github.com/pyvnode/pyvnode/nodelog"
	ucli "github.com/urfave/cli/v2"
)

func logsCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "logs",
		Usage: "print the node's log, or its replication log, from DATA/logs",
		Description: "Prints the last lines of DATA/logs/node.log (with --replication,\n" +
			"DATA/logs/replication.log), reading back through the rotated files when -n asks\n" +
			"for more than the current one holds, as text or, with --json, as the JSON lines\n" +
			"the node wrote. --follow keeps printing lines as the node writes them, across\n" +
			"rotations, until interrupted. Lines that are not JSON log lines are printed as they are.",
		Flags: []ucli.Flag{
			dataFlag(),
			&ucli.BoolFlag{Name: "replication", Aliases: []string{"r"}, Usage: "the replication log instead of the node log"},
			&ucli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new lines until interrupted"},
			&ucli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 50, Usage: "how many of the last lines to print (0: none, only new ones with --follow)"},
			&ucli.StringFlag{Name: "level", Usage: "only lines at this level or above: debug, info, warn or error (default: all)"},
			&ucli.BoolFlag{Name: "json", Usage: "print the JSON lines as the node wrote them"},
		},
		Action: func(c *ucli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			n := c.Int("lines")
			if n < 0 {
				return usagef("--lines %d: want 0 or more", n)
			}
			keep := func(nodelog.Line) bool { return true }
			if s := c.String("level"); s != "" {
				var min slog.Level
				if err := min.UnmarshalText([]byte(s)); err != nil {
					return usagef("--level %q: use debug, info, warn or error", s)
				}
				// Lines that are not log lines have no level: show them.
				keep = func(l nodelog.Line) bool { return !l.OK || l.Level >= min }
			}
			stream := nodelog.StreamNode
			if c.Bool("replication") {
				stream = nodelog.StreamReplication
			}
			data := c.String("data")
			show := printLogText
			if c.Bool("json") {
				show = printLogJSON
			}
			return showLogs(c, data, stream, n, keep, show)
		},
	}
}

func showLogs(c *ucli.Context, data, stream string, n int, keep func(nodelog.Line) bool, show func(io.Writer, nodelog.Line) error) error {
	tailN := n
	if n == 0 {
		tailN = 1 // for where the current file ends
	}
	lines, end, err := nodelog.Tail(data, stream, tailN, keep)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no logs in %s: has this node run with log files on?", nodelog.LogDir(data))
	}
	if err != nil {
		return err
	}
	if n == 0 {
		lines = nil
	}
	w := bufio.NewWriter(env(c).Stdout)
	for _, l := range lines {
		if err := show(w, l); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(lines) == 0 && n > 0 && !c.Bool("follow") {
		// Say so rather than print nothing: the replication log, say, has
		// no file until the node first talks to a peer.
		fmt.Fprintf(env(c).Stderr, "no %s log lines yet in %s\n", stream, nodelog.LogDir(data))
	}
	if !c.Bool("follow") {
		return nil
	}
	return nodelog.Follow(c.Context, nodelog.LogPath(data, stream), end, func(l nodelog.Line) error {
		if !keep(l) {
			return nil
		}
		if err := show(w, l); err != nil {
			return err
		}
		return w.Flush()
	})
}

func printLogJSON(w io.Writer, l nodelog.Line) error {
	_, err := fmt.Fprintf(w, "%s\n", l.Raw)
	return err
}

// printLogText writes a log line as "TIME LEVEL MSG key=value ...", the time
// local to the reader, values quoted when they would not read as one word.
func printLogText(w io.Writer, l nodelog.Line) error {
	if !l.OK {
		return printLogJSON(w, l)
	}
	var b strings.Builder
	if !l.Time.IsZero() {
		b.WriteString(l.Time.Local().Format("2006-01-02T15:04:05.000Z07:00"))
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "%-5s %s", l.Level, quoteIf(l.Msg, hasControl))
	for _, f := range l.Attrs {
		fmt.Fprintf(&b, " %s=%s", f.Key, quoteIf(f.Value, needsQuote))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

func quoteIf(s string, need func(string) bool) string {
	if need(s) {
		return strconv.Quote(s)
	}
	return s
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' })
}

func needsQuote(s string) bool {
	return s == "" || hasControl(s) || strings.ContainsAny(s, " =\"")
}
