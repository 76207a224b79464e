package node

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/p2p"
)

// scrapeMetrics fetches h's metrics and returns each series by its name
// and labels, as in the text format: `name{k="v",...}`.
func scrapeMetrics(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = metricValue(m)
		}
	}
	return out
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return -1
}

// TestMetricsHandler starts two peered nodes with the client protocol on
// and checks the first one's /metrics shows its chain, client sessions,
// peers and reconciliation, Badger and the Go runtime.
func TestMetricsHandler(t *testing.T) {
	g := ledger.NewGenesis("metricsnode")
	g.PowBits = 4
	ports := freePorts(t, 2)
	var dirs []string
	var addrs []string
	for i := range 2 {
		dir := filepath.Join(t.TempDir(), fmt.Sprint("n", i))
		id, _, _, err := Init(dir, InitOptions{Genesis: g})
		if err != nil {
			t.Fatalf("Init: %v", err)
		}
		pid, err := p2p.PeerID(id)
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
		addrs = append(addrs, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", ports[i], pid))
	}
	var nodes []*Node
	for i := range 2 {
		log, _ := testLogger()
		n, err := Start(t.Context(), Config{DataDir: dirs[i], Logger: log, Listen: "127.0.0.1:0", Version: "v9.9.9",
			P2PListen: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ports[i])}, Peers: []string{addrs[1-i]}, SyncInterval: time.Hour})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	n := nodes[0]
	h := n.MetricsHandler()
	peer, _ := p2p.PeerID(nodes[1].Identity())

	waitFor(t, 20*time.Second, "the peers to be ready", func() bool {
		for _, x := range nodes {
			if ps := x.Network().Peers(); len(ps) == 0 || !ps[0].Ready {
				return false
			}
		}
		return true
	})
	if _, _, err := n.Put(t.Context(), "note.text", []byte{0xa0}, ""); err != nil {
		t.Fatalf("Put: %v", err)
	}
	waitFor(t, 20*time.Second, "a sync with the peer", func() bool {
		_, err := n.Network().SyncWith(t.Context(), peer)
		return err == nil
	})
	// A client connection that never completes the handshake.
	c, err := net.Dial("tcp", n.ClientAddr())
	if err != nil {
		t.Fatalf("dial client protocol: %v", err)
	}
	c.Close()

	var m map[string]float64
	waitFor(t, 10*time.Second, "the client connection and the gossip to be counted", func() bool {
		m = scrapeMetrics(t, h)
		return m[`pyvnode_client_connections_total{result="accepted"}`] >= 1 && m[`pyvnode_handshakes_total{result="failed"}`] >= 1 &&
			m[`pyvnode_gossip_messages_total{direction="out",result="published"}`] >= 1
	})
	build := fmt.Sprintf(`pyvnode_build_info{network="metricsnode",node_id=%q,version="v9.9.9"}`, n.Identity().ID().String())
	for key, want := range map[string]float64{
		build:                  1,
		`pyvnode_chain_height`: 1,
		`pyvnode_chain_appends_total{source="local"}`:                       1,
		`pyvnode_client_sessions`:                                           0,
		`pyvnode_logins_total{result="ok"}`:                                 0,
		`pyvnode_peers{state="ready"}`:                                      1,
		`pyvnode_peers{state="connected"}`:                                  1,
		`pyvnode_peers{state="configured"}`:                                 1,
		`pyvnode_gossip_messages_total{direction="out",result="published"}`: 1,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	for _, key := range []string{
		`pyvnode_sync_sessions_total`, `pyvnode_sync_rounds_total`, `pyvnode_sync_bytes_total{direction="out"}`,
		`pyvnode_segments_size_bytes`, `pyvnode_uptime_seconds`,
	} {
		if m[key] <= 0 {
			t.Errorf("%s = %v, want > 0", key, m[key])
		}
	}
	if age, ok := m[fmt.Sprintf(`pyvnode_peer_last_sync_age_seconds{peer=%q}`, peer)]; !ok || age < 0 || age > 60 {
		t.Errorf("replication lag of the peer: %v (present %v)", age, ok)
	}
	for _, key := range []string{`pyvnode_badger_size_bytes{part="lsm"}`, `pyvnode_badger_size_bytes{part="vlog"}`, `go_goroutines`, `process_open_fds`} {
		if _, ok := m[key]; !ok {
			t.Errorf("%s missing", key)
		}
	}
}

// TestMetricsHandlerWithPartsOff: without the client protocol and
// replication their metrics are left out, the rest is served.
func TestMetricsHandlerWithPartsOff(t *testing.T) {
	log, _ := testLogger()
	n, err := Start(t.Context(), Config{DataDir: filepath.Join(t.TempDir(), "d"), Logger: log, Listen: "-", P2PListen: []string{"-"}})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer n.Close()
	m := scrapeMetrics(t, n.MetricsHandler())
	if _, ok := m[`pyvnode_chain_height`]; !ok {
		t.Error("pyvnode_chain_height missing")
	}
	for key := range m {
		if strings.HasPrefix(key, "pyvnode_client_") || strings.HasPrefix(key, "pyvnode_peers") || strings.HasPrefix(key, "pyvnode_sync_") {
			t.Errorf("%s served with its part off", key)
		}
	}
}
