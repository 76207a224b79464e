package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/metrics"
	"github.com/pyvnode/pyvnode/p2p"
	"github.com/pyvnode/pyvnode/protocol"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openStore opens a real chain in a temporary directory.
func openStore(t *testing.T) (*ledger.Store, *ledger.Identity, *ledger.Genesis) {
	t.Helper()
	g := ledger.NewGenesis("metricstest")
	g.PowBits = 0
	st, err := ledger.Open(ledger.Options{Dir: filepath.Join(t.TempDir(), "chain"), Genesis: g, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	id, err := ledger.GenerateIdentity()
	if err != nil {
		t.Fatalf("GenerateIdentity: %v", err)
	}
	return st, id, g
}

func record(t *testing.T, id *ledger.Identity, g *ledger.Genesis, n int) *ledger.SignedRecord {
	t.Helper()
	p, err := ledger.EncodePayload(map[string]any{"n": int64(n)})
	if err != nil {
		t.Fatalf("EncodePayload: %v", err)
	}
	rec, err := ledger.NewSignedRecord(context.Background(), id, g, "note.text", p, "alice", time.Unix(1_700_000_000+int64(n), 0))
	if err != nil {
		t.Fatalf("NewSignedRecord: %v", err)
	}
	return rec
}

// scrape fetches url as Prometheus does and parses the text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return fams
}

// value finds the series of name whose labels include want ("k=v" pairs).
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// check compares series with their expected values.
func check(t *testing.T, fams map[string]*dto.MetricFamily, want []series) {
	t.Helper()
	for _, w := range want {
		got, ok := value(fams, w.name, w.labels...)
		if !ok {
			t.Errorf("%s%v: missing", w.name, w.labels)
		} else if got != w.v {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.v)
		}
	}
}

type series struct {
	name   string
	labels []string
	v      float64
}

func serve(t *testing.T, src metrics.Sources) string {
	t.Helper()
	srv := httptest.NewServer(metrics.Handler(metrics.NewRegistry(src), quietLogger()))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestChainMetricsFromStore(t *testing.T) {
	st, id, g := openStore(t)
	url := serve(t, metrics.Sources{Chain: st, Version: "v1.2.3", Network: g.Network, NodeID: id.ID().String(),
		Started: time.Now().Add(-time.Minute)})

	fams := scrape(t, url)
	check(t, fams, []series{
		{"pyvnode_chain_height", nil, 0},
		{"pyvnode_chain_appends_total", []string{"source=local"}, 0},
		{"pyvnode_build_info", []string{"version=v1.2.3", "network=metricstest", "node_id=" + id.ID().String()}, 1},
	})
	if v, ok := value(fams, "pyvnode_uptime_seconds"); !ok || v < 60 || v > 3600 {
		t.Errorf("pyvnode_uptime_seconds = %v (%v), want about 60", v, ok)
	}

	ctx := context.Background()
	a, b, c := record(t, id, g, 1), record(t, id, g, 2), record(t, id, g, 3)
	for _, x := range []struct {
		rec *ledger.SignedRecord
		src string
	}{{a, "local"}, {b, "local"}, {c, "sync:12D3KooWpeer"}} {
		if _, err := st.Append(ctx, x.rec, 0, x.src); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	if _, err := st.Append(ctx, a, 0, "gossip:12D3KooWpeer"); err != ledger.ErrExists {
		t.Fatalf("duplicate Append: %v", err)
	}

	fams = scrape(t, url)
	check(t, fams, []series{
		{"pyvnode_chain_height", nil, 3},
		{"pyvnode_chain_appends_total", []string{"source=local"}, 2},
		{"pyvnode_chain_appends_total", []string{"source=import"}, 0},
		{"pyvnode_chain_appends_total", []string{"source=peer"}, 1},
		{"pyvnode_records_rejected_total", []string{"path=store", "reason=exists"}, 1},
	})
	if v, ok := value(fams, "pyvnode_segments_size_bytes"); !ok || v <= 0 {
		t.Errorf("pyvnode_segments_size_bytes = %v (%v), want > 0 after appends", v, ok)
	}
	for _, part := range []string{"lsm", "vlog"} {
		if v, ok := value(fams, "pyvnode_badger_size_bytes", "part="+part); !ok || v < 0 {
			t.Errorf("pyvnode_badger_size_bytes{part=%q} = %v (%v)", part, v, ok)
		}
	}
	// The Go runtime and the process.
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_duration_seconds", "process_resident_memory_bytes", "promhttp_metric_handler_requests_total"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	// Without the client protocol and replication their metrics are left out.
	for _, name := range []string{"pyvnode_client_sessions", "pyvnode_peers", "pyvnode_sync_sessions_total"} {
		if fams[name] != nil {
			t.Errorf("%s present without its source", name)
		}
	}
}

type fakeClient struct {
	stats protocol.Stats
	puts  map[protocol.PutFailure]uint64
}

func (f *fakeClient) Stats() protocol.Stats                       { return f.stats }
func (f *fakeClient) PutFailures() map[protocol.PutFailure]uint64 { return f.puts }

type fakePeers struct {
	stats p2p.Stats
	peers []p2p.PeerInfo
}

func (f *fakePeers) Stats() *p2p.Stats     { return &f.stats }
func (f *fakePeers) Peers() []p2p.PeerInfo { return f.peers }

func TestClientAndNetworkMetrics(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	client := &fakeClient{
		stats: protocol.Stats{Sessions: 3, Accepted: 10, Refused: 2, Handshakes: 9, HandshakeFailures: 1,
			Logins: 7, LoginFailures: 4, BytesIn: 1000, BytesOut: 5000},
		puts: map[protocol.PutFailure]uint64{
			{Code: "invalid_record", Check: "payload"}:         2,
			{Code: "invalid_record", Check: "kind"}:            1,
			{Code: "refused", Check: "duplicate-registration"}: 5,
			{Code: "forbidden"}:                                6,
			{Code: "unavailable"}:                              8,
		},
	}
	net := &fakePeers{peers: []p2p.PeerInfo{
		{ID: "peerA", Connected: true, Ready: true, Configured: true, LastSync: now.Add(-42 * time.Second), RecordsIn: 11, RecordsOut: 12},
		{ID: "peerB", Connected: true, Ready: true},                                  // ready, never synced
		{ID: "peerC", Connected: true},                                               // another network
		{ID: "peerD", Configured: true, LastSync: now.Add(-time.Hour), RecordsIn: 3}, // gone
	}}
	st := &net.stats
	st.GossipAccepted.Add(21)
	st.GossipIgnored.Add(22)
	st.Published.Add(23)
	st.PublishSkipped.Add(24)
	st.Republished.Add(25)
	st.SyncSessions.Add(26)
	st.SyncFailed.Add(27)
	st.SyncRounds.Add(28)
	st.SyncRecordsIn.Add(29)
	st.SyncRecordsOut.Add(30)
	st.SyncBytesIn.Add(31)
	st.SyncBytesOut.Add(32)
	fams := scrape(t, serve(t, metrics.Sources{Client: client, Peers: net, Now: func() time.Time { return now }}))
	check(t, fams, []series{
		{"pyvnode_client_sessions", nil, 3},
		{"pyvnode_client_connections_total", []string{"result=accepted"}, 10},
		{"pyvnode_client_connections_total", []string{"result=refused"}, 2},
		{"pyvnode_handshakes_total", []string{"result=ok"}, 9},
		{"pyvnode_handshakes_total", []string{"result=failed"}, 1},
		{"pyvnode_logins_total", []string{"result=ok"}, 7},
		{"pyvnode_logins_total", []string{"result=failed"}, 4},
		{"pyvnode_client_bytes_total", []string{"direction=in"}, 1000},
		{"pyvnode_client_bytes_total", []string{"direction=out"}, 5000},
		{"pyvnode_client_put_failures_total", []string{"code=invalid_record", "check=payload"}, 2},
		{"pyvnode_client_put_failures_total", []string{"code=forbidden", "check="}, 6},
		{"pyvnode_client_put_failures_total", []string{"code=unavailable", "check="}, 8},
		{"pyvnode_records_rejected_total", []string{"path=client", "reason=payload"}, 2},
		{"pyvnode_records_rejected_total", []string{"path=client", "reason=kind"}, 1},
		{"pyvnode_records_rejected_total", []string{"path=client", "reason=duplicate-registration"}, 5},
		{"pyvnode_records_rejected_total", []string{"path=client", "reason=forbidden"}, 6},

		{"pyvnode_peers", []string{"state=connected"}, 3},
		{"pyvnode_peers", []string{"state=ready"}, 2},
		{"pyvnode_peers", []string{"state=configured"}, 2},
		{"pyvnode_gossip_messages_total", []string{"direction=in", "result=accepted"}, 21},
		{"pyvnode_gossip_messages_total", []string{"direction=in", "result=ignored"}, 22},
		{"pyvnode_gossip_messages_total", []string{"direction=out", "result=published"}, 23},
		{"pyvnode_gossip_messages_total", []string{"direction=out", "result=skipped"}, 24},
		{"pyvnode_gossip_republished_total", nil, 25},
		{"pyvnode_sync_sessions_total", nil, 26},
		{"pyvnode_sync_failures_total", nil, 27},
		{"pyvnode_sync_rounds_total", nil, 28},
		{"pyvnode_sync_records_total", []string{"direction=in"}, 29},
		{"pyvnode_sync_records_total", []string{"direction=out"}, 30},
		{"pyvnode_sync_bytes_total", []string{"direction=in"}, 31},
		{"pyvnode_sync_bytes_total", []string{"direction=out"}, 32},
		{"pyvnode_peer_last_sync_age_seconds", []string{"peer=peerA"}, 42},
		{"pyvnode_peer_records_total", []string{"peer=peerA", "direction=in"}, 11},
		{"pyvnode_peer_records_total", []string{"peer=peerA", "direction=out"}, 12},
		{"pyvnode_peer_records_total", []string{"peer=peerD", "direction=in"}, 3},
	})
	// unavailable is not a rejected record.
	if _, ok := value(fams, "pyvnode_records_rejected_total", "reason=unavailable"); ok {
		t.Error("an unavailable put counted as a rejected record")
	}
	// Replication lag only for ready peers that have synced.
	for _, p := range []string{"peerB", "peerC", "peerD"} {
		if _, ok := value(fams, "pyvnode_peer_last_sync_age_seconds", "peer="+p); ok {
			t.Errorf("last sync age for %s", p)
		}
	}
	if _, ok := value(fams, "pyvnode_peer_records_total", "peer=peerC"); ok {
		t.Error("records series for a peer we never exchange with")
	}
}

// TestMetricsFollowConventions lints every pyvnode metric with
// Prometheus's own linter (units, _total on counters, help text) and
// checks each has the type docs/HTTP.md gives it.
func TestMetricsFollowConventions(t *testing.T) {
	st, _, _ := openStore(t)
	net := &fakePeers{peers: []p2p.PeerInfo{{ID: "p", Connected: true, Ready: true, LastSync: time.Now(), RecordsIn: 1}}}
	net.stats.Published.Add(1)
	reg := metrics.NewRegistry(metrics.Sources{
		Chain: st, Client: &fakeClient{puts: map[protocol.PutFailure]uint64{{Code: "refused", Check: "r"}: 1}}, Peers: net,
		HTTP:    func() metrics.HTTPStats { return metrics.HTTPStats{Logins: 3, LoginFailures: 2, LiveStreams: 1} },
		Version: "v", Network: "n", NodeID: "id", Started: time.Now(),
	})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var ours []*dto.MetricFamily
	types := map[string]string{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "pyvnode_") {
			ours = append(ours, mf)
			types[mf.GetName()] = strings.ToLower(mf.GetType().String())
		}
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatalf("Lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	want := map[string]string{
		"pyvnode_build_info": "gauge", "pyvnode_uptime_seconds": "gauge",
		"pyvnode_chain_height": "gauge", "pyvnode_chain_appends_total": "counter", "pyvnode_records_rejected_total": "counter",
		"pyvnode_badger_size_bytes": "gauge", "pyvnode_segments_size_bytes": "gauge",
		"pyvnode_client_sessions": "gauge", "pyvnode_client_connections_total": "counter", "pyvnode_handshakes_total": "counter",
		"pyvnode_logins_total": "counter", "pyvnode_client_bytes_total": "counter", "pyvnode_client_put_failures_total": "counter",
		"pyvnode_peers": "gauge", "pyvnode_gossip_messages_total": "counter", "pyvnode_gossip_republished_total": "counter",
		"pyvnode_sync_sessions_total": "counter", "pyvnode_sync_failures_total": "counter", "pyvnode_sync_rounds_total": "counter",
		"pyvnode_sync_bytes_total": "counter", "pyvnode_sync_records_total": "counter",
		"pyvnode_peer_last_sync_age_seconds": "gauge", "pyvnode_peer_records_total": "counter",
		"pyvnode_http_logins_total": "counter", "pyvnode_http_live_streams": "gauge",
	}
	for name, typ := range want {
		if types[name] != typ {
			t.Errorf("%s: type %q, want %q", name, types[name], typ)
		}
	}
	for name := range types {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is not in the list of documented metrics", name)
		}
	}
	// A second registry over the same sources gathers without conflict
	// (the node may build more than one handler).
	if _, err := metrics.NewRegistry(metrics.Sources{Chain: st}).Gather(); err != nil {
		t.Fatalf("second registry: %v", err)
	}
}

// TestHandlerWithoutSources: a node with nothing but its identity still
// serves the runtime's metrics and its build info, in the text format.
func TestHandlerWithoutSources(t *testing.T) {
	url := serve(t, metrics.Sources{Version: "v", Network: "n", NodeID: "id"})
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
	fams := scrape(t, url)
	var ours []string
	for name := range fams {
		if strings.HasPrefix(name, "pyvnode_") {
			ours = append(ours, name)
		}
	}
	if len(ours) != 1 || ours[0] != "pyvnode_build_info" {
		t.Errorf("pyvnode metrics without sources: %v, want only pyvnode_build_info", ours)
	}
	if fams["go_goroutines"] == nil {
		t.Error("go_goroutines missing")
	}
}
