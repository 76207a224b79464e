package cli

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/pyvnode/pyvnode/apps/appsbench"
	"github.com/pyvnode/pyvnode/ledger/ledgerbench"
	"github.com/pyvnode/pyvnode/testnet"
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
			{
				Name:  "replication",
				Usage: "propagation latency on a loopback testnet and the sustained replicated write rate",
				Description: "Starts --nodes node processes (a testnet, mesh), puts --records records one at a time\n" +
					"on the nodes in turn and times each from the put until every node holds it (from the\n" +
					"nodes' own receive times). Then starts --write-nodes nodes and puts --writes records\n" +
					"from --writers concurrent clients per node, timing until every node holds every record.",
				Flags: []ucli.Flag{
					&ucli.IntFlag{Name: "nodes", Value: 10, Usage: "nodes of the propagation run"},
					&ucli.IntFlag{Name: "records", Value: 1000, Usage: "records timed in the propagation run"},
					&ucli.IntFlag{Name: "write-nodes", Value: 3, Usage: "nodes of the sustained write run"},
					&ucli.IntFlag{Name: "writes", Value: 30000, Usage: "records of the sustained write run"},
					&ucli.IntFlag{Name: "writers", Value: 16, Usage: "concurrent clients per node in the sustained run"},
					&ucli.StringFlag{Name: "dir", Usage: "keep the testnets in this directory instead of a temporary one"},
					&ucli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
				},
				Action: func(c *ucli.Context) error {
					if err := wantArgs(c, 0, 0); err != nil {
						return err
					}
					for _, f := range []string{"nodes", "records", "write-nodes", "writes", "writers"} {
						if c.Int(f) < 1 {
							return usagef("--%s must be at least 1", f)
						}
					}
					if c.Int("nodes") > 64 || c.Int("write-nodes") > 64 {
						return usagef("at most 64 nodes")
					}
					out := env(c)
					var bar *progress
					phase := ""
					rep, err := testnet.Bench(c.Context, testnet.BenchConfig{
						Dir: c.String("dir"), Nodes: c.Int("nodes"), Records: c.Int("records"),
						WriteNodes: c.Int("write-nodes"), Writes: c.Int("writes"), Writers: c.Int("writers"),
						Progress: func(p string, done, total int) {
							if p != phase {
								if bar != nil {
									bar.done()
								}
								phase = p
								bar = newProgress(out.Stderr, uint64(total), p)
							}
							bar.set(uint64(done))
						},
					})
					if bar != nil {
						bar.done()
					}
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return writeJSON(out.Stdout, rep)
					}
					w := out.Stdout
					fmt.Fprintf(w, "propagation, %d nodes, %d records (put until every node holds it)\n", rep.Nodes, rep.Records)
					fmt.Fprintf(w, "  p50 %.1f ms   p90 %.1f ms   p99 %.1f ms   max %.1f ms   (the put alone: p50 %.1f ms)\n", rep.P50ms, rep.P90ms, rep.P99ms, rep.Maxms, rep.PutP50ms)
					fmt.Fprintf(w, "sustained writes, %d nodes, %d writers each, %d records\n", rep.WriteNodes, rep.Writers, rep.Writes)
					fmt.Fprintf(w, "  %.0f records/s held by every node (%.1f s; last put answered at %.1f s)\n", rep.WritePerSec, rep.WriteSecs, rep.AcceptSecs)
					fmt.Fprintf(w, "  received by gossip %d, by reconciliation %d; publications left to reconciliation %d\n", rep.ByGossip, rep.BySync, rep.PublishSkipped)
					return nil
				},
			},
			benchTallyCommand(),
			benchHTTPCommand(),
		},
	}
}

func benchTallyCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "tally",
		Usage: "build a chain of vote records and time 'pyvnode tally --data' on it (wall time, peak RSS)",
		Flags: []ucli.Flag{
			&ucli.IntFlag{Name: "records", Value: 1_000_000, Usage: "vote records to build"},
			&ucli.IntFlag{Name: "runs", Value: 3, Usage: "tallies to time"},
			&ucli.StringFlag{Name: "dir", Usage: "keep the chain in this (new) directory instead of a temporary one"},
			&ucli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: func(c *ucli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			if c.Int("records") < 2 || c.Int("runs") < 1 {
				return usagef("--records must be at least 2 and --runs at least 1")
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			out := env(c)
			bar := newProgress(out.Stderr, uint64(c.Int("records")), "build")
			rep, err := appsbench.Run(c.Context, appsbench.Config{
				Dir: c.String("dir"), Records: c.Int("records"), Runs: c.Int("runs"), Exe: exe, Logger: slog.Default(),
				Progress: func(done, total int) { bar.set(uint64(done)) },
			})
			bar.done()
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(out.Stdout, rep)
			}
			w := out.Stdout
			fmt.Fprintf(w, "chain              %d vote records, %d voters (built in %.1f s)\n", rep.Records, rep.Voters, rep.BuildSecs)
			for i, s := range rep.RunSeconds {
				rss := 0.0
				if i < len(rep.RunRSSMB) {
					rss = rep.RunRSSMB[i]
				}
				fmt.Fprintf(w, "pyvnode tally      run %d: %.2f s, peak RSS %.0f MB\n", i+1, s, rss)
			}
			fmt.Fprintf(w, "in process         read the chain into the index %.2f s, tally %.2f s\n", rep.IndexSeconds, rep.TallySeconds)
			fmt.Fprintf(w, "result             %v, %d voted, %d violations\n", rep.Counts, rep.Voted, rep.Violations)
			return nil
		},
	}
}
