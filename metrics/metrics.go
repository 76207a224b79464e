// Package metrics owns the node's Prometheus registry and the /metrics
// handler (docs/HTTP.md §6).
//
// The ledger, the client protocol and the network side already keep
// counters for their own status displays. The collector here reads them
// when Prometheus scrapes, instead of instrumenting the hot paths a second
// time: an append, a session or a gossip message costs no more with
// metrics on than with them off.
package metrics

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/p2p"
	"github.com/pyvnode/pyvnode/protocol"
)

// ChainSource is the chain's side: *ledger.Store.
type ChainSource interface {
	Stats() ledger.StoreStats
}

// ClientSource is the client protocol's side: *protocol.Server.
type ClientSource interface {
	Stats() protocol.Stats
	PutFailures() map[protocol.PutFailure]uint64
}

// PeerSource is the network side: *p2p.Network.
type PeerSource interface {
	Stats() *p2p.Stats
	Peers() []p2p.PeerInfo
}

// HTTPStats are the control panel's counters.
type HTTPStats struct {
	Logins, LoginFailures uint64
	LiveStreams           int
	// Rejected counts records put from the panel and refused, by reason.
	Rejected map[string]uint64
}

var (
	_ ChainSource  = (*ledger.Store)(nil)
	_ ClientSource = (*protocol.Server)(nil)
	_ PeerSource   = (*p2p.Network)(nil)
)

// Sources are the parts of the node the metrics read. A nil source (the
// client protocol or replication turned off) leaves its metrics out.
type Sources struct {
	Chain  ChainSource
	Client ClientSource
	Peers  PeerSource
	// HTTP is the control panel's side (nil when HTTP is off).
	HTTP func() HTTPStats
	// Version, Network and NodeID label pyvnode_build_info.
	Version, Network, NodeID string
	// Started is when the node started, for pyvnode_uptime_seconds
	// (left out when zero).
	Started time.Time
	// Now is the clock for ages and uptime. Default time.Now.
	Now func() time.Time
}

// NewRegistry makes a registry with the node's metrics, the Go runtime's
// and the process's. Its collectors only read what the sources count, so
// any number of registries may be made over the same sources.
func NewRegistry(src Sources) *prometheus.Registry {
	if src.Now == nil {
		src.Now = time.Now
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		&collector{src: src},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves reg in the Prometheus text (or OpenMetrics) format. At
// most maxScrapes scrapes run at once (each lists the index directory and
// the peers); more are answered 503. Errors from a collector are logged
// and the rest is served.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            reg,
		MaxRequestsInFlight: maxScrapes,
		Timeout:             scrapeTimeout,
	})
	return promhttp.InstrumentMetricHandler(reg, h)
}

const (
	maxScrapes    = 4
	scrapeTimeout = 10 * time.Second
)
