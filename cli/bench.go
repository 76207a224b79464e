package cli

import (
	"fmt"
	"log/slog"

	"github.com/pyvnode/pyvnode/ledger/ledgerbench"
	ucli "github.com/urfave/cli/v2"
)

func benchCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "bench",
		Usage: "measure the node's speed and memory (figures in docs/PERFORMANCE.md)",
		Subcommands: []*ucli.Command{
			{
				Name:  "ledger",
				Usage: "bulk import, durable appends, verification, proofs and memory at full scale",
				Description: "Builds a chain of --records records by bulk import in a temporary directory\n" +
					"(or --dir), appends --append more from --writers concurrent durable writers while\n" +
					"sampling the process's memory, verifies the whole chain against bare Ed25519 on\n" +
					"the same cores, and times inclusion and consistency proofs.",
				Flags: []ucli.Flag{
					&ucli.IntFlag{Name: "records", Value: 1_000_000, Usage: "chain size to build by bulk import"},
					&ucli.IntFlag{Name: "append", Value: 100_000, Usage: "durable appends to measure on top"},
					&ucli.IntFlag{Name: "writers", Value: 16, Usage: "concurrent durable writers"},
					&ucli.IntFlag{Name: "proofs", Value: 10_000, Usage: "inclusion proofs to produce and verify"},
					&ucli.StringFlag{Name: "dir", Usage: "keep the chain in this (new) directory instead of a temporary one"},
					&ucli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
					memoryLimitFlag(),
				},
				Action: func(c *ucli.Context) error {
					if err := wantArgs(c, 0, 0); err != nil {
						return err
					}
					if err := applyMemoryLimit(c); err != nil {
						return err
					}
					for _, f := range []string{"records", "append", "writers", "proofs"} {
						if c.Int(f) < 1 {
							return usagef("--%s must be at least 1", f)
						}
					}
					out := env(c)
					bar := newProgress(out.Stderr, uint64(c.Int("records")), "bench")
					phase := ""
					rep, err := ledgerbench.Run(c.Context, ledgerbench.Config{
						Dir: c.String("dir"), Records: c.Int("records"), AppendRecords: c.Int("append"),
						Writers: c.Int("writers"), Proofs: c.Int("proofs"), Logger: slog.Default(),
						Progress: func(p string, done, total int) {
							if p != phase {
								phase = p
								slog.Info("bench phase", "phase", p, "total", total)
							}
							bar.set(uint64(done))
						},
					})
					bar.done()
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return writeJSON(out.Stdout, rep)
					}
					w := out.Stdout
					fmt.Fprintf(w, "cores                         %d\n", rep.Cores)
					fmt.Fprintf(w, "chain size                    %d records (%.0f MB on disk)\n", rep.Records, rep.DiskMB)
					fmt.Fprintf(w, "bulk import                   %.0f records/s (%.1f s)\n", rep.ImportPerSec, rep.ImportSeconds)
					fmt.Fprintf(w, "durable append, %2d writers    %.0f records/s (sign + append + fsync)\n", rep.AppendWriters, rep.AppendPerSec)
					fmt.Fprintf(w, "peak RSS while appending      %.0f MB (anonymous %.0f MB)\n", rep.PeakRSSMB, rep.PeakAnonMB)
					fmt.Fprintf(w, "full verify                   %.0f records/s (%.1f s)\n", rep.VerifyPerSec, rep.VerifySeconds)
					fmt.Fprintf(w, "bare ed25519.Verify           %.0f /s  -> verify reaches %.0f%%\n", rep.Ed25519PerSec, rep.VerifyPercent)
					fmt.Fprintf(w, "inclusion proof               %.1f µs to produce, %.2f µs to verify\n", rep.ProofProduceUS, rep.ProofVerifyUS)
					fmt.Fprintf(w, "consistency proof             %.1f µs to produce\n", rep.ConsistencyUS)
					return nil
				},
			},
		},
	}
}
