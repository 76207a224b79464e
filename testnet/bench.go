package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol"
)

// BenchConfig configures the replication benchmark.
type BenchConfig struct {
	// Dir holds the testnets (a temporary directory when empty).
	Dir string
	// Command and Env run pyvnode (see Options).
	Command []string
	Env     []string
	// Nodes and Records of the propagation run: Records puts spread over
	// the nodes one at a time, each timed until every node holds it.
	// Defaults 10 and 1,000.
	Nodes   int
	Records int
	// WriteNodes and Writes of the sustained run: Writes puts spread over
	// WriteNodes nodes by Writers concurrent writers per node, timed until
	// every node holds every record. Defaults 3, 30,000 and 16.
	WriteNodes int
	Writes     int
	Writers    int
	// Progress, when set, is told what the benchmark is doing.
	Progress func(phase string, done, total int)
}

// BenchReport holds the measured figures.
type BenchReport struct {
	Nodes       int     `json:"nodes"`
	Records     int     `json:"records"`
	P50ms       float64 `json:"propagation_p50_ms"`
	P90ms       float64 `json:"propagation_p90_ms"`
	P99ms       float64 `json:"propagation_p99_ms"`
	Maxms       float64 `json:"propagation_max_ms"`
	PutP50ms    float64 `json:"put_p50_ms"` // the put itself (mine, sign, fsync) on the origin
	WriteNodes  int     `json:"write_nodes"`
	Writes      int     `json:"writes"`
	Writers     int     `json:"writers_per_node"`
	WriteSecs   float64 `json:"write_seconds"`    // until every node held every record
	WritePerSec float64 `json:"replicated_per_s"` // records/s replicated to every node
	AcceptSecs  float64 `json:"accept_seconds"`   // until the last put was answered
	// How the records travelled in the sustained run, summed over nodes.
	ByGossip       uint64 `json:"by_gossip"`
	BySync         uint64 `json:"by_sync"`
	PublishSkipped uint64 `json:"publish_skipped"`
}

func (c *BenchConfig) setDefaults() {
	if c.Nodes == 0 {
		c.Nodes = 10
	}
	if c.Records == 0 {
		c.Records = 1000
	}
	if c.WriteNodes == 0 {
		c.WriteNodes = 3
	}
	if c.Writes == 0 {
		c.Writes = 30_000
	}
	if c.Writers == 0 {
		c.Writers = 16
	}
	if c.Progress == nil {
		c.Progress = func(string, int, int) {}
	}
}

// Bench runs the replication benchmark on real node processes.
func Bench(ctx context.Context, cfg BenchConfig) (*BenchReport, error) {
	cfg.setDefaults()
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "pyvnode-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	rep := &BenchReport{Nodes: cfg.Nodes, Records: cfg.Records, WriteNodes: cfg.WriteNodes, Writes: cfg.Writes, Writers: cfg.Writers}
	if err := benchPropagation(ctx, cfg, dir+"/propagation", rep); err != nil {
		return nil, fmt.Errorf("propagation: %w", err)
	}
	if err := benchSustained(ctx, cfg, dir+"/sustained", rep); err != nil {
		return nil, fmt.Errorf("sustained writes: %w", err)
	}
	return rep, nil
}

func benchUp(ctx context.Context, cfg BenchConfig, dir string, nodes int) (*Cluster, error) {
	return Up(ctx, Options{Nodes: nodes, Dir: dir, Command: cfg.Command, Env: cfg.Env, SyncInterval: 30 * time.Second})
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return float64(sorted[i].Microseconds()) / 1000
}

func benchPropagation(ctx context.Context, cfg BenchConfig, dir string, rep *BenchReport) error {
	c, err := benchUp(ctx, cfg, dir, cfg.Nodes)
	if err != nil {
		return err
	}
	defer c.Down(context.Background())
	var lat, puts []time.Duration
	for k := range cfg.Records {
		origin := k % cfg.Nodes
		t0 := time.Now()
		id, err := c.Put(ctx, origin, "bench.propagation", map[string]any{"k": k})
		if err != nil {
			return err
		}
		puts = append(puts, time.Since(t0))
		var last int64
		for i := range cfg.Nodes {
			r, err := c.waitRecord(ctx, i, id, 30*time.Second)
			if err != nil {
				return err
			}
			last = max(last, r.Received)
		}
		lat = append(lat, time.Unix(0, last).Sub(t0))
		cfg.Progress("propagation", k+1, cfg.Records)
	}
	slices.Sort(lat)
	slices.Sort(puts)
	rep.P50ms, rep.P90ms, rep.P99ms = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99)
	rep.Maxms = percentile(lat, 1)
	rep.PutP50ms = percentile(puts, 0.5)
	return nil
}

// waitRecord polls node i until it holds the record.
func (c *Cluster) waitRecord(ctx context.Context, i int, id ledger.ID, limit time.Duration) (*protocol.RecordResult, error) {
	deadline := time.Now().Add(limit)
	for {
		var r protocol.RecordResult
		err := c.call(ctx, i, "get", map[string]any{"id": id}, &r)
		if err == nil {
			return &r, nil
		}
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.ErrNotFound.Code {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not receive %s within %s", c.File.Nodes[i].Name, id, limit)
		}
		time.Sleep(500 * time.Microsecond)
	}
}

func benchSustained(ctx context.Context, cfg BenchConfig, dir string, rep *BenchReport) error {
	c, err := benchUp(ctx, cfg, dir, cfg.WriteNodes)
	if err != nil {
		return err
	}
	defer c.Down(context.Background())
	type writer struct {
		cl   *protocol.Client
		node int
	}
	var writers []writer
	defer func() {
		for _, w := range writers {
			w.cl.Close() // closing twice is harmless
		}
	}()
	// Writers share up to 8 sessions per node (calls on a session run
	// concurrently), keeping within the per-address connection limit.
	for i := range cfg.WriteNodes {
		var sessions []*protocol.Client
		for range min(cfg.Writers, 8) {
			cl, err := c.Client(ctx, i)
			if err != nil {
				return err
			}
			sessions = append(sessions, cl)
		}
		for k := range cfg.Writers {
			writers = append(writers, writer{sessions[k%len(sessions)], i})
		}
	}
	var next atomic.Int64
	var done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for _, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1) - 1
				if k >= int64(cfg.Writes) {
					return
				}
				var r protocol.PutResult
				if err := w.cl.Call(ctx, "put", map[string]any{"kind": "bench.write", "payload": map[string]any{"k": k}}, &r); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				cfg.Progress("sustained writes", int(done.Add(1)), cfg.Writes)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	rep.AcceptSecs = time.Since(start).Seconds()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if _, err := c.WaitConverged(wctx, cfg.Writes); err != nil {
		return err
	}
	el := time.Since(start)
	for i := range c.File.Nodes {
		st := c.Status(ctx, i)
		rep.ByGossip += st.Network.GossipAccepted
		rep.BySync += st.Network.SyncRecordsIn
		rep.PublishSkipped += st.Network.PublishSkipped
	}
	rep.WriteSecs = el.Seconds()
	rep.WritePerSec = float64(cfg.Writes) / el.Seconds()
	return nil
}
