// Package ledgerbench measures the ledger at full scale for 'pyvnode bench
// ledger': durable appends, bulk import, full verification against bare
// Ed25519, proofs at a million records and the memory a node holding them
// uses while appending. The Go benchmarks in package ledger measure the same
// paths at smaller scale.
package ledgerbench

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyvnode/pyvnode/ledger"
)

// Config is what to measure. Zero values mean the defaults.
type Config struct {
	Dir           string // empty: a temporary directory, removed afterwards
	Records       int    // chain size built by bulk import; default 1,000,000
	AppendRecords int    // durable appends measured on top; default 100,000
	Writers       int    // concurrent durable writers; default 16
	Proofs        int    // proofs produced and verified; default 10,000
	Logger        *slog.Logger
	Progress      func(phase string, done, total int)
}

// Report holds the figures, each named as in docs/PERFORMANCE.md.
type Report struct {
	Records          int     `json:"records"`
	ImportPerSec     float64 `json:"import_records_per_s"`
	AppendPerSec     float64 `json:"durable_append_records_per_s"`
	AppendWriters    int     `json:"durable_append_writers"`
	VerifyPerSec     float64 `json:"verify_records_per_s"`
	Ed25519PerSec    float64 `json:"ed25519_verify_per_s"`
	VerifyPercent    float64 `json:"verify_percent_of_ed25519"`
	ProofProduceUS   float64 `json:"inclusion_proof_produce_us"`
	ProofVerifyUS    float64 `json:"inclusion_proof_verify_us"`
	ConsistencyUS    float64 `json:"consistency_proof_produce_us"`
	PeakRSSMB        float64 `json:"peak_rss_mb_while_appending"`
	PeakAnonMB       float64 `json:"peak_anon_rss_mb_while_appending"`
	Cores            int     `json:"cores"`
	ImportSeconds    float64 `json:"import_seconds"`
	VerifySeconds    float64 `json:"verify_seconds"`
	AppendSeconds    float64 `json:"durable_append_seconds"`
	DiskMB           float64 `json:"disk_mb"`
	GenerateSeconds  float64 `json:"generate_seconds_untimed"`
	ProofSampleCount int     `json:"proofs"`
}

func (c *Config) defaults() {
	if c.Records <= 0 {
		c.Records = 1_000_000
	}
	if c.AppendRecords <= 0 {
		c.AppendRecords = 100_000
	}
	if c.Writers <= 0 {
		c.Writers = 16
	}
	if c.Proofs <= 0 {
		c.Proofs = 10_000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Progress == nil {
		c.Progress = func(string, int, int) {}
	}
}

// Run builds a chain and measures it.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "pyvnode-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	g := ledger.NewGenesis("bench")
	g.PowBits = 0
	st, err := ledger.Open(ledger.Options{Dir: dir, Genesis: g, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rep := &Report{Records: cfg.Records, AppendWriters: cfg.Writers, Cores: runtime.GOMAXPROCS(0), ProofSampleCount: cfg.Proofs}
	if err := bulkImport(ctx, st, g, cfg, rep); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	// What the generator allocated is not the node's: give it back before
	// measuring the memory of appending.
	runtime.GC()
	debug.FreeOSMemory()
	if err := durableAppends(ctx, st, g, cfg, rep); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	if err := verify(ctx, st, g, cfg, rep); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if err := proofs(st, uint64(cfg.Records), cfg, rep); err != nil {
		return nil, fmt.Errorf("proofs: %w", err)
	}
	rep.DiskMB = float64(dirSize(dir)) / (1 << 20)
	return rep, nil
}

// generate signs n records (proof of work 0) on every core.
func generate(g *ledger.Genesis, keys []*ledger.Identity, start, n int) []*ledger.SignedRecord {
	out := make([]*ledger.SignedRecord, n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				out[i] = makeRecord(g, keys[(start+i)%len(keys)], start+i)
			}
		}()
	}
	wg.Wait()
	return out
}

func makeRecord(g *ledger.Genesis, id *ledger.Identity, i int) *ledger.SignedRecord {
	p, err := ledger.EncodePayload(map[string]any{
		"seq": int64(i), "text": "benchmark record " + strconv.Itoa(i), "amount": int64(i % 1000),
	})
	if err != nil {
		panic(err)
	}
	rec := &ledger.Record{Version: 1, Kind: "bench.note", Payload: p, Origin: id.Public(),
		Author: "bench", Created: 1_700_000_000_000_000_000 + int64(i)}
	s, err := ledger.Sign(rec, id.Key, g.Network)
	if err != nil {
		panic(err)
	}
	return s
}

func benchKeys(n int) []*ledger.Identity {
	keys := make([]*ledger.Identity, n)
	for i := range keys {
		seed := make([]byte, ed25519.SeedSize)
		seed[0], seed[1] = byte(i), 0xbe
		keys[i] = &ledger.Identity{Key: ed25519.NewKeyFromSeed(seed)}
	}
	return keys
}

// bulkImport appends cfg.Records records in batches, generating each chunk
// first (untimed) and timing only the appends, submitted as Import does.
func bulkImport(ctx context.Context, st *ledger.Store, g *ledger.Genesis, cfg Config, rep *Report) error {
	keys := benchKeys(8)
	const chunk = 50_000
	var timed, gen time.Duration
	for lo := 0; lo < cfg.Records; lo += chunk {
		t0 := time.Now()
		recs := generate(g, keys, lo, min(chunk, cfg.Records-lo))
		gen += time.Since(t0)
		items := make([]ledger.Pending, len(recs))
		for i, r := range recs {
			items[i] = ledger.Pending{Record: r, Source: "import"}
		}
		t1 := time.Now()
		var prev *ledger.Ticket
		for b := 0; b < len(items); b += 4096 {
			t, err := st.Submit(ctx, items[b:min(b+4096, len(items))])
			if err != nil {
				return err
			}
			if prev != nil {
				if err := firstErr(prev.Wait()); err != nil {
					return err
				}
			}
			prev = t
		}
		if err := firstErr(prev.Wait()); err != nil {
			return err
		}
		timed += time.Since(t1)
		cfg.Progress("import", lo+len(recs), cfg.Records)
	}
	rep.ImportSeconds = timed.Seconds()
	rep.ImportPerSec = float64(cfg.Records) / timed.Seconds()
	rep.GenerateSeconds = gen.Seconds()
	return nil
}

func firstErr(res []ledger.Result) error {
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// durableAppends runs cfg.Writers writers that each make, sign and append
// records one at a time, as the node does for clients, while sampling the
// process's resident memory.
func durableAppends(ctx context.Context, st *ledger.Store, g *ledger.Genesis, cfg Config, rep *Report) error {
	stop := make(chan struct{})
	var peak, peakAnon atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if r := rssBytes(); r > peak.Load() {
				peak.Store(r)
			}
			if r := procStatus("RssAnon"); r > peakAnon.Load() {
				peakAnon.Store(r)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	keys := benchKeys(cfg.Writers)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Writers)
	start := time.Now()
	for w := range cfg.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.AppendRecords {
					return
				}
				p, _ := ledger.EncodePayload(map[string]any{"writer": int64(w), "seq": int64(i), "text": "durable append"})
				rec, err := ledger.NewSignedRecord(ctx, keys[w], g, "bench.append", p, "bench", time.Now())
				if err == nil {
					_, err = st.Append(ctx, rec, 0, "local")
				}
				if err != nil {
					errs <- err
					return
				}
				if i%10_000 == 0 {
					cfg.Progress("append", i, cfg.AppendRecords)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(stop)
	<-sampled
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	rep.AppendSeconds = el.Seconds()
	rep.AppendPerSec = float64(cfg.AppendRecords) / el.Seconds()
	rep.PeakRSSMB = float64(peak.Load()) / (1 << 20)
	rep.PeakAnonMB = float64(peakAnon.Load()) / (1 << 20)
	return nil
}

// verify runs the full chain verification, and bare ed25519.Verify over
// the same signatures on the same cores before and after it (the better of
// the two counts, so a background compaction cannot flatter the ratio).
func verify(ctx context.Context, st *ledger.Store, g *ledger.Genesis, cfg Config, rep *Report) error {
	sigs, err := sampleSignatures(ctx, st, g, 200_000)
	if err != nil {
		return err
	}
	bare1, err := bareVerify(sigs)
	if err != nil {
		return err
	}
	n := st.Count()
	t0 := time.Now()
	if _, err := st.Verify(ctx, ledger.VerifyOptions{Progress: func(d uint64) { cfg.Progress("verify", int(d), int(n)) }}); err != nil {
		return err
	}
	el := time.Since(t0)
	rep.VerifySeconds = el.Seconds()
	rep.VerifyPerSec = float64(n) / el.Seconds()
	bare2, err := bareVerify(sigs)
	if err != nil {
		return err
	}
	rep.Ed25519PerSec = max(bare1, bare2)
	rep.VerifyPercent = 100 * rep.VerifyPerSec / rep.Ed25519PerSec
	return nil
}

type sigSample struct{ pub, msg, sig []byte }

func sampleSignatures(ctx context.Context, st *ledger.Store, g *ledger.Genesis, max int) ([]sigSample, error) {
	sigs := make([]sigSample, 0, max)
	err := st.Iterate(ctx, 0, func(r *ledger.SignedRecord, e ledger.Entry) error {
		if len(sigs) == max {
			return errStop
		}
		sigs = append(sigs, sigSample{r.Origin, ledger.SigMessage(g.Network, r.ID), r.Signature})
		return nil
	})
	if err != nil && err != errStop {
		return nil, err
	}
	return sigs, nil
}

// bareVerify checks the signatures on every core and returns the rate.
func bareVerify(sigs []sigSample) (float64, error) {
	workers := runtime.GOMAXPROCS(0)
	t := time.Now()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(sigs); i += workers {
				if !ed25519.Verify(sigs[i].pub, sigs[i].msg, sigs[i].sig) {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		return 0, fmt.Errorf("%d signatures failed bare verification", bad.Load())
	}
	return float64(len(sigs)) / time.Since(t).Seconds(), nil
}

var errStop = fmt.Errorf("stop")

// proofs measures inclusion proofs at the imported size, against random
// leaves, and consistency proofs.
func proofs(st *ledger.Store, size uint64, cfg Config, rep *Report) error {
	root, err := st.RootAt(size)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	idx := make([]uint64, cfg.Proofs)
	ids := make(map[uint64]ledger.ID, cfg.Proofs)
	for i := range idx {
		idx[i] = rng.Uint64N(size)
		r, _, err := st.GetByHeight(idx[i])
		if err != nil {
			return err
		}
		ids[idx[i]] = r.ID
	}
	ps := make([][][]byte, len(idx))
	t0 := time.Now()
	for i, x := range idx {
		if ps[i], err = st.InclusionProof(x, size); err != nil {
			return err
		}
	}
	rep.ProofProduceUS = float64(time.Since(t0).Microseconds()) / float64(len(idx))
	t1 := time.Now()
	for i, x := range idx {
		if err := ledger.VerifyInclusion(ids[x], x, size, ps[i], root); err != nil {
			return fmt.Errorf("proof %d does not verify: %w", x, err)
		}
	}
	rep.ProofVerifyUS = float64(time.Since(t1).Nanoseconds()) / 1000 / float64(len(idx))
	t2 := time.Now()
	for _, x := range idx {
		if _, err := st.ConsistencyProof(x+1, size); err != nil {
			return err
		}
	}
	rep.ConsistencyUS = float64(time.Since(t2).Microseconds()) / float64(len(idx))
	return nil
}

// rssBytes reads the resident set size from /proc (Linux); 0 elsewhere.
func rssBytes() int64 { return procStatus("VmRSS") }

// procStatus reads one "kB" field of /proc/self/status in bytes.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
