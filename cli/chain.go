package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/node"
	ucli "github.com/urfave/cli/v2"
)

func chainCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "chain",
		Usage: "work on a (stopped) node's chain: verify, show, export, import, put, head",
		Subcommands: []*ucli.Command{
			chainVerifyCommand(),
			chainShowCommand(),
			chainExportCommand(),
			chainImportCommand(),
			chainPutCommand(),
			chainHeadCommand(),
			chainRepairCommand(),
		},
	}
}

func openData(c *ucli.Context) (*node.Data, error) {
	return node.OpenData(c.String("data"), slog.Default())
}

// dataAction makes the action of a command on a stopped node's data
// directory: check the arguments (and, with check, the flags), open the
// directory, run fn, close the directory.
func dataAction(nargs int, check func(*ucli.Context) error, fn func(*ucli.Context, *node.Data) error) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		if err := wantArgs(c, nargs, nargs); err != nil {
			return err
		}
		if check != nil {
			if err := check(c); err != nil {
				return err
			}
		}
		d, err := openData(c)
		if err != nil {
			return err
		}
		defer d.Close()
		return fn(c, d)
	}
}

func chainVerifyCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "verify",
		Usage: "recompute every id, signature, proof of work, link and the Merkle tree",
		Description: "Exits 0 when the chain is intact, 3 with the first bad height when it is not,\n" +
			"1 when it could not be read at all.",
		Flags: []ucli.Flag{
			dataFlag(),
			&ucli.IntFlag{Name: "workers", Usage: "signature checkers (default: all cores)"},
		},
		Action: dataAction(0, func(c *ucli.Context) error {
			if c.Int("workers") < 0 {
				return usagef("--workers must be positive")
			}
			return nil
		}, func(c *ucli.Context, d *node.Data) error {
			out := env(c)
			bar := newProgress(out.Stderr, d.Store.Count(), "verifying")
			rep, err := d.Store.Verify(c.Context, ledger.VerifyOptions{Workers: c.Int("workers"), Progress: bar.set})
			bar.done()
			var ce *ledger.ChainError
			if errors.As(err, &ce) {
				fmt.Fprintf(out.Stdout, "DAMAGED at height %d: %v\n", ce.Height, ce.Err)
				return exitError{ExitDamaged, fmt.Errorf("chain verification failed at height %d", ce.Height)}
			}
			if err != nil {
				return err
			}
			rate := float64(rep.Records) / rep.Duration.Seconds()
			fmt.Fprintf(out.Stdout, "OK: %d records verified in %s (%.0f records/s)\nroot %s\nlink %s\n",
				rep.Records, roundDuration(rep.Duration), rate, rep.Root, rep.Link)
			return nil
		}),
	}
}

func chainShowCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "show",
		Usage:     "show one record by height or id",
		ArgsUsage: "HEIGHT|ID",
		Flags:     []ucli.Flag{dataFlag(), &ucli.BoolFlag{Name: "json", Usage: "print the export line (JSON) instead"}},
		Action: dataAction(1, nil, func(c *ucli.Context, d *node.Data) error {
			rec, e, err := lookup(d.Store, c.Args().First())
			if err != nil {
				return err
			}
			x, err := ledger.NewExportRecord(rec, e)
			if err != nil {
				return err
			}
			// Show, not hide, a record that fails its checks; only
			// 'chain verify' checks the whole chain.
			check := (&ledger.Validator{Genesis: d.Genesis}).Check(rec)
			out := env(c)
			if c.Bool("json") {
				if check != nil {
					fmt.Fprintf(out.Stderr, "warning: record %s fails its checks: %v\n", rec.ID, check)
				}
				return writeJSON(out.Stdout, x)
			}
			if err := printRecord(out.Stdout, x); err != nil {
				return err
			}
			if check != nil {
				fmt.Fprintf(out.Stdout, "CHECK FAILED %v\n", check)
				return exitError{ExitDamaged, fmt.Errorf("record at height %d fails its checks", e.Height)}
			}
			fmt.Fprintf(out.Stdout, "checks       id, proof of work, originator and signature ok\n")
			return nil
		}),
	}
}

// lookup takes a height (decimal) or an id (64 hex digits).
func lookup(st *ledger.Store, arg string) (*ledger.SignedRecord, ledger.Entry, error) {
	if len(arg) == 64 {
		id, err := ledger.ParseID(arg)
		if err != nil {
			return nil, ledger.Entry{}, usageError{err.Error()}
		}
		return st.Get(id)
	}
	h, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return nil, ledger.Entry{}, usagef("%q is neither a height nor a 64-hex-digit record id", arg)
	}
	return st.GetByHeight(h)
}

func printRecord(w io.Writer, x *ledger.ExportRecord) error {
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, x.Payload, "  ", "  "); err != nil {
		return err
	}
	ts := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
	fmt.Fprintf(w, "height       %d\n", x.Height)
	fmt.Fprintf(w, "id           %s\n", x.ID)
	fmt.Fprintf(w, "kind         %s\n", x.Kind)
	fmt.Fprintf(w, "author       %s\n", x.Author)
	fmt.Fprintf(w, "origin       %x\n", []byte(x.Origin))
	fmt.Fprintf(w, "created      %s\n", ts(x.Created))
	fmt.Fprintf(w, "nonce        %d\n", x.Nonce)
	fmt.Fprintf(w, "link         %s\n", x.Link)
	fmt.Fprintf(w, "replication  %d\n", x.Replication)
	fmt.Fprintf(w, "source       %s\n", x.Source)
	fmt.Fprintf(w, "received     %s\n", ts(x.Received))
	fmt.Fprintf(w, "signature    %x\n", []byte(x.Signature))
	fmt.Fprintf(w, "payload\n  %s\n", pretty.String())
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func chainExportCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "export",
		Usage: "write the chain as JSON lines (docs/FORMAT.md §11) for outside verifiers",
		Flags: []ucli.Flag{
			dataFlag(),
			&ucli.Uint64Flag{Name: "from", Usage: "first height"},
			&ucli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "file to write (default: standard output)"},
		},
		Action: dataAction(0, nil, func(c *ucli.Context, d *node.Data) error {
			w := env(c).Stdout
			if path := c.String("out"); path != "" && path != "-" {
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if err := d.Store.Export(c.Context, w, ledger.ExportOptions{From: c.Uint64("from"), Identity: d.Identity}); err != nil {
				return err
			}
			if f, ok := w.(*os.File); ok && f != os.Stdout {
				return f.Sync()
			}
			return nil
		}),
	}
}

func chainImportCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "import",
		Usage:     "append the records of an export this chain lacks, checking each fully",
		ArgsUsage: "FILE|-",
		Flags:     []ucli.Flag{dataFlag()},
		Action: dataAction(1, nil, func(c *ucli.Context, d *node.Data) error {
			var r io.Reader = env(c).Stdin
			if p := c.Args().First(); p != "-" {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			out := env(c)
			bar := newProgress(out.Stderr, 0, "importing")
			start := time.Now()
			rep, err := ledger.Import(c.Context, d.Store, r, ledger.ImportOptions{Progress: bar.set, Check: apps.CheckRecord})
			bar.done()
			if rep != nil {
				fmt.Fprintf(out.Stdout, "read %d records: %d appended, %d already present (%s)\n",
					rep.Read, rep.Appended, rep.Existing, roundDuration(time.Since(start)))
			}
			return err
		}),
	}
}

func chainPutCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "put",
		Usage:     "make, sign and append a record on a stopped node's chain",
		ArgsUsage: "KIND PAYLOAD-JSON",
		Flags: []ucli.Flag{
			dataFlag(),
			&ucli.StringFlag{Name: "author", Usage: "author name to record"},
			&ucli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		Action: dataAction(2, func(c *ucli.Context) error {
			if err := ledger.CheckKind(c.Args().Get(0)); err != nil {
				return usageError{err.Error()}
			}
			if _, err := ledger.PayloadFromJSON([]byte(c.Args().Get(1))); err != nil {
				return usageError{err.Error()}
			}
			return nil
		}, func(c *ucli.Context, d *node.Data) error {
			payload, _ := ledger.PayloadFromJSON([]byte(c.Args().Get(1)))
			kind := c.Args().Get(0)
			if apps.RequiredRole(kind) == apps.RoleAuthority && !d.Genesis.ListsOriginator(kind, d.Identity.ID()) {
				return fmt.Errorf("%s needs an authority: on a stopped node that is a node the genesis lists among the originators of %s (or submit it to a running node as a user with the authority role)", kind, kind)
			}
			eng := apps.NewEngine(d.Genesis.Network, d.Store, func(ctx context.Context, kind string, payload cbor.RawMessage, author string, created time.Time) (*ledger.SignedRecord, ledger.Entry, error) {
				return node.PutAt(ctx, d, kind, payload, author, created)
			})
			rec, e, err := eng.Submit(c.Context, kind, payload, c.String("author"))
			if err != nil {
				return err
			}
			out := env(c).Stdout
			if c.Bool("json") {
				return writeJSON(out, map[string]any{"id": rec.ID, "height": e.Height, "link": e.Link})
			}
			fmt.Fprintf(out, "appended %s at height %d\n", rec.ID, e.Height)
			return nil
		}),
	}
}

func chainHeadCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "head",
		Usage: "print the chain head and a checkpoint signed by this node",
		Flags: []ucli.Flag{dataFlag(), &ucli.BoolFlag{Name: "json", Usage: "print as JSON"}},
		Action: dataAction(0, nil, func(c *ucli.Context, d *node.Data) error {
			cp := d.Store.Checkpoint(d.Identity.ID(), time.Now())
			signed, err := ledger.SignCheckpoint(cp, d.Identity)
			if err != nil {
				return err
			}
			out := env(c).Stdout
			if c.Bool("json") {
				return writeJSON(out, map[string]any{"size": cp.Size, "root": cp.Root, "link": cp.Link, "checkpoint": string(signed)})
			}
			fmt.Fprintf(out, "size  %d\nroot  %s\nlink  %s\n\n%s", cp.Size, cp.Root, cp.Link, signed)
			return nil
		}),
	}
}

// roundDuration keeps three significant digits or so.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func chainRepairCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "repair",
		Usage: "cut the chain at the first damaged frame of its last segment (loses what follows)",
		Description: "A node refuses to open when a frame in its last segment is damaged and valid frames\n" +
			"follow it, because those may be acknowledged records. If the damage cannot be undone\n" +
			"from a backup, repair cuts the chain there; the records after it are lost from this\n" +
			"node (peers or an export can bring them back). Then run 'pyvnode chain verify'.",
		Flags: []ucli.Flag{dataFlag()},
		Action: func(c *ucli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			d, err := node.RepairData(c.String("data"), slog.Default())
			if err != nil {
				return err
			}
			defer d.Close()
			h := d.Store.Head()
			fmt.Fprintf(env(c).Stdout, "chain now holds %d records\nroot %s\nlink %s\n", h.Size, h.Root, h.Link)
			return nil
		},
	}
}
