package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"github.com/pyvnode/pyvnode/web"
	"github.com/pyvnode/pyvnode/web/webbench"
	ucli "github.com/urfave/cli/v2"
)

func benchHTTPCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "http",
		Usage: "requests/s and latency of the read API: records by height range and inclusion proofs",
		Description: "Runs --clients concurrent clients against a node's HTTP API for --duration (or\n" +
			"--requests requests in all). Each asks by turns for a page of --page records from a\n" +
			"random height and for the inclusion proof of a random known record at the size the\n" +
			"run started with, and checks every answer (ids against the record bytes, links,\n" +
			"proofs against the root). With --url it reads that running node; without, it builds\n" +
			"a node of --records records in a temporary directory (or --dir), starts it in this\n" +
			"process, runs against it and removes it.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "url", Usage: "a running node's HTTP address, e.g. http://" + web.DefaultListen + " (default: build one)"},
			&ucli.IntFlag{Name: "clients", Value: webbench.DefaultClients, Usage: "concurrent clients"},
			&ucli.DurationFlag{Name: "duration", Value: webbench.DefaultDuration, Usage: "length of the timed run"},
			&ucli.IntFlag{Name: "requests", Usage: "make this many requests in all instead of running for --duration"},
			&ucli.IntFlag{Name: "page", Value: webbench.DefaultPage, Usage: fmt.Sprintf("records per page (1 to %d)", web.MaxPage)},
			&ucli.IntFlag{Name: "known-ids", Value: webbench.DefaultKnownIDs, Usage: "record ids read before the run, for the proofs"},
			&ucli.StringFlag{Name: "only", Usage: "ask only for \"records\" or only for \"proof\" (default: both by turns)"},
			&ucli.BoolFlag{Name: "revalidate", Usage: "also send every request again with the answer's ETag and expect 304 (reported apart)"},
			&ucli.IntFlag{Name: "records", Value: 100_000, Usage: "size of the chain to build (without --url)"},
			&ucli.StringFlag{Name: "dir", Usage: "build the node in this (new) directory and keep it (without --url)"},
			&ucli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the timed part to this file (of this process: the node too when built here)"},
			&ucli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			memoryLimitFlag(),
		},
		Action: func(c *ucli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			cfg, err := benchHTTPConfig(c)
			if err != nil {
				return err
			}
			if err := applyMemoryLimit(c); err != nil {
				return err
			}
			out := env(c)
			built := ""
			if cfg.URL == "" {
				n := c.Int("records")
				slog.Info("building a node", "records", n)
				bar := newProgress(out.Stderr, uint64(n), "build")
				t0 := time.Now()
				nd, err := webbench.StartNode(c.Context, webbench.NodeConfig{
					Dir: c.String("dir"), Records: n,
					Progress: func(done, total int) { bar.set(uint64(done)) },
				})
				bar.done()
				if err != nil {
					return err
				}
				defer func() {
					if err := nd.Close(); err != nil {
						slog.Error("stop the benchmark's node", "err", err)
					}
				}()
				built = fmt.Sprintf("built in this process: %d records in %.1f s", n, time.Since(t0).Seconds())
				cfg.URL = nd.URL()
			}
			var prof *os.File
			if p := c.String("cpuprofile"); p != "" {
				if prof, err = os.Create(p); err != nil {
					return err
				}
				cfg.CPUProfile = prof
			}
			slog.Info("running", "url", cfg.URL, "clients", cfg.Clients, "duration", cfg.Duration.String(), "requests", cfg.Requests)
			rep, err := webbench.Run(c.Context, cfg)
			if prof != nil {
				if cerr := prof.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("write the CPU profile: %w", cerr)
				}
			}
			if rep == nil {
				return err
			}
			if c.Bool("json") {
				if werr := writeJSON(out.Stdout, rep); werr != nil {
					return werr
				}
			} else {
				printHTTPReport(out.Stdout, rep, built)
			}
			if errors.Is(err, webbench.ErrFailed) {
				return fmt.Errorf("%d requests failed and %d answers were wrong: the figures do not count", rep.Errors, rep.Wrong)
			}
			return err
		},
	}
}

// benchHTTPConfig turns the flags into a run's config, refusing what the
// run would refuse, as usage errors.
func benchHTTPConfig(c *ucli.Context) (webbench.Config, error) {
	cfg := webbench.Config{
		URL: c.String("url"), Clients: c.Int("clients"), Duration: c.Duration("duration"), Requests: c.Int("requests"),
		Page: c.Int("page"), KnownIDs: c.Int("known-ids"), Revalidate: c.Bool("revalidate"), Only: c.String("only"), Logger: slog.Default(),
	}
	if cfg.URL != "" {
		u, err := url.Parse(cfg.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, usagef("--url %q: give the node's HTTP address, like http://%s", cfg.URL, web.DefaultListen)
		}
		for _, f := range []string{"records", "dir"} {
			if c.IsSet(f) {
				return cfg, usagef("--%s builds a node, so it goes without --url", f)
			}
		}
	}
	switch {
	case cfg.Clients < 1 || cfg.Clients > webbench.MaxClients:
		return cfg, usagef("--clients must be between 1 and %d", webbench.MaxClients)
	case cfg.Duration <= 0 || cfg.Duration > webbench.MaxDuration:
		return cfg, usagef("--duration must be above 0 and at most %v", webbench.MaxDuration)
	case cfg.Requests < 0 || cfg.Requests > webbench.MaxRequests:
		return cfg, usagef("--requests must be between 0 and %d", webbench.MaxRequests)
	case cfg.Page < 1 || cfg.Page > web.MaxPage:
		return cfg, usagef("--page must be between 1 and %d", web.MaxPage)
	case cfg.KnownIDs < 1:
		return cfg, usagef("--known-ids must be at least 1")
	case c.Int("records") < 1:
		return cfg, usagef("--records must be at least 1")
	case cfg.Only != "" && cfg.Only != webbench.Records && cfg.Only != webbench.Proof:
		return cfg, usagef("--only %q: use %s or %s", cfg.Only, webbench.Records, webbench.Proof)
	case c.IsSet("requests") && c.IsSet("duration"):
		return cfg, usagef("give --duration or --requests, not both")
	}
	return cfg, nil
}

func printHTTPReport(w io.Writer, rep *webbench.Report, built string) {
	fmt.Fprintf(w, "node      %s", rep.URL)
	if built != "" {
		fmt.Fprintf(w, " (%s)", built)
	}
	fmt.Fprintf(w, "\nchain     %d records at the start; proofs asked at that size for %d known ids\n", rep.ChainSize, rep.KnownIDs)
	fmt.Fprintf(w, "run       %d clients, %.1f s, %d requests, %.0f requests/s\n", rep.Clients, rep.Seconds, rep.Requests, rep.PerSecond)
	fmt.Fprintf(w, "cpu       this process used %.2f of %d cores", rep.ProcessCores, rep.Cores)
	if built != "" {
		fmt.Fprintf(w, " (node and clients; less means other work shared the machine)")
	}
	fmt.Fprintf(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoint\trequests\terrors\twrong\treq/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tMB/s\tbytes/answer\tcheck µs\t")
	for _, e := range rep.Endpoints {
		name := e.Name
		if name == webbench.Records {
			name = fmt.Sprintf("records (page %d)", rep.Page)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t%.0f\t%.0f\t\n", name, e.Requests, e.Errors, e.Wrong,
			e.PerSecond, e.P50ms, e.P90ms, e.P99ms, e.Maxms, e.BytesPerSec/1e6, e.MeanBytes, e.CheckUS)
	}
	tw.Flush()
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
}
