// Package appsbench measures the applications at full scale: it builds a
// chain of vote records and times a tally of it the way a user runs one
// ('pyvnode tally --data'), in a child process so its peak memory is the
// tally's alone.
package appsbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/node"
)

// Ballot is the id of the benchmark's ballot.
const Ballot = "bench-ballot"

// Config of a run.
type Config struct {
	// Dir is a new directory for the chain; "" means a temporary one,
	// removed afterwards.
	Dir string
	// Records is how many vote records to build (the ballot's definition
	// comes on top). Default 1,000,000.
	Records int
	// Runs is how many times the tally is timed. Default 3.
	Runs int
	// Exe is the pyvnode executable the tally runs in. Required.
	Exe    string
	Logger *slog.Logger
	// Progress is told how many records are built.
	Progress func(done, total int)
}

// Report is what a run measured.
type Report struct {
	Records   int     `json:"records"`
	Voters    int     `json:"voters"`
	BuildSecs float64 `json:"build_seconds"`
	// Each run of 'pyvnode tally --data DIR --json BALLOT' in a child
	// process: wall time and peak RSS.
	RunSeconds []float64 `json:"run_seconds"`
	RunRSSMB   []float64 `json:"run_peak_rss_mb"`
	// In this process: reading the chain into the index, and the tally.
	IndexSeconds float64 `json:"index_seconds"`
	TallySeconds float64 `json:"tally_seconds"`
	Counts       []apps.ChoiceCount
	Voted        int `json:"voted"`
	Violations   int `json:"violations"`
}

func (c *Config) defaults() error {
	if c.Records == 0 {
		c.Records = 1_000_000
	}
	if c.Runs == 0 {
		c.Runs = 3
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Progress == nil {
		c.Progress = func(int, int) {}
	}
	if c.Exe == "" {
		return errors.New("appsbench: Exe is required")
	}
	if c.Records < 2 {
		return errors.New("appsbench: at least 2 records")
	}
	return nil
}

// op is one record to make: voter index and kind.
type op struct {
	voter int
	kind  string
}

// plan lays out n records: each voter registers and casts; every 10th
// casts again (a replacement), every 50th uncasts, every 100th is then
// withdrawn.
func plan(n int) ([]op, int) {
	ops := make([]op, 0, n)
	v := 0
	for len(ops) < n {
		seq := []string{apps.KindRegister, apps.KindCast}
		if v%10 == 0 {
			seq = append(seq, apps.KindCast)
		}
		if v%50 == 0 {
			seq = append(seq, apps.KindUncast)
		}
		if v%100 == 0 {
			seq = append(seq, apps.KindWithdraw)
		}
		for _, k := range seq {
			if len(ops) < n {
				ops = append(ops, op{v, k})
			}
		}
		v++
	}
	return ops, v
}

var choices = []any{"alice", "bob", "carol"}

func payload(o op, i int) map[string]any {
	voter := fmt.Sprintf("voter-%07d", o.voter)
	eid := fmt.Sprintf("%032x", o.voter)
	p := map[string]any{"ballot": Ballot, "voter": voter, "eid": eid}
	if o.kind == apps.KindCast {
		p["choice"] = choices[(o.voter+i)%3]
	}
	return p
}

// Run builds the chain and times the tally.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "pyvnode-bench-tally-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp + "/data"
	}
	rep := &Report{Records: cfg.Records}
	t0 := time.Now()
	voters, err := build(ctx, dir, cfg)
	if err != nil {
		return nil, err
	}
	rep.Voters = voters
	rep.BuildSecs = time.Since(t0).Seconds()

	for range cfg.Runs {
		cmd := exec.CommandContext(ctx, cfg.Exe, "--log-level", "warn", "tally", "--data", dir, "--json", Ballot)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("tally: %v: %s", err, stderr.String())
		}
		rep.RunSeconds = append(rep.RunSeconds, time.Since(start).Seconds())
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rep.RunRSSMB = append(rep.RunRSSMB, float64(ru.Maxrss)/1024) // Linux: KiB
		}
		var t apps.Tally
		if err := json.Unmarshal(out.Bytes(), &t); err != nil {
			return nil, fmt.Errorf("tally output: %w", err)
		}
		if t.Records != cfg.Records+1 {
			return nil, fmt.Errorf("the tally read %d records, the chain has %d", t.Records, cfg.Records+1)
		}
		rep.Counts, rep.Voted, rep.Violations = t.Counts, t.Voted, len(t.Violations)
	}

	d, err := node.OpenData(dir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	runtime.GC()
	x := apps.NewIndex(d.Genesis.Network)
	t1 := time.Now()
	if err := x.CatchUp(ctx, d.Store); err != nil {
		return nil, err
	}
	rep.IndexSeconds = time.Since(t1).Seconds()
	t2 := time.Now()
	if _, err := x.Tally(Ballot); err != nil {
		return nil, err
	}
	rep.TallySeconds = time.Since(t2).Seconds()
	return rep, nil
}

// build makes the data directory: a ballot, then the planned records,
// signed on every core and appended in batches as an import does.
func build(ctx context.Context, dir string, cfg Config) (int, error) {
	g := ledger.NewGenesis("bench-tally")
	g.PowBits = 0
	id, _, _, err := node.Init(dir, node.InitOptions{Genesis: g})
	if err != nil {
		return 0, err
	}
	d, err := node.OpenData(dir, cfg.Logger)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	base := time.Now().Add(-time.Hour)
	def, err := sign(id, g, apps.KindBallot, map[string]any{"ballot": Ballot, "question": "Benchmark?", "choices": choices,
		"opens": base.Unix() - 60, "closes": base.Add(24 * time.Hour).Unix()}, base.UnixNano())
	if err != nil {
		return 0, err
	}
	if _, err := d.Store.Append(ctx, def, 0, "import"); err != nil {
		return 0, err
	}
	ops, voters := plan(cfg.Records)
	const chunk = 50_000
	for lo := 0; lo < len(ops); lo += chunk {
		part := ops[lo:min(lo+chunk, len(ops))]
		recs := make([]*ledger.SignedRecord, len(part))
		errs := make([]error, runtime.GOMAXPROCS(0))
		var wg sync.WaitGroup
		for w := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(part); i += len(errs) {
					// One microsecond apart, in plan order.
					recs[i], errs[w] = sign(id, g, part[i].kind, payload(part[i], lo+i), base.UnixNano()+int64(lo+i+1)*1000)
					if errs[w] != nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return 0, err
		}
		items := make([]ledger.Pending, len(recs))
		for i, r := range recs {
			items[i] = ledger.Pending{Record: r, Source: "import"}
		}
		for b := 0; b < len(items); b += 4096 {
			res, err := d.Store.AppendBatch(ctx, items[b:min(b+4096, len(items))])
			if err != nil {
				return 0, err
			}
			if i := slices.IndexFunc(res, func(r ledger.Result) bool { return r.Err != nil }); i >= 0 {
				return 0, res[i].Err
			}
		}
		cfg.Progress(lo+len(part), len(ops))
	}
	return voters, nil
}

func sign(id *ledger.Identity, g *ledger.Genesis, kind string, p map[string]any, created int64) (*ledger.SignedRecord, error) {
	raw, err := ledger.EncodePayload(p)
	if err != nil {
		return nil, err
	}
	if err := apps.CheckPayload(kind, raw); err != nil {
		return nil, err
	}
	rec := &ledger.Record{Version: ledger.RecordVersion, Kind: kind, Payload: raw, Origin: id.Public(), Author: "bench", Created: created}
	return ledger.Sign(rec, id.Key, g.Network)
}
