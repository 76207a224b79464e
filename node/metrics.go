package node

import (
	"net/http"

	"github.com/pyvnode/pyvnode/metrics"
)

// MetricsHandler serves the node's Prometheus metrics (docs/HTTP.md §6):
// the chain, the client protocol and the network side as they run now,
// with the Go runtime's and the process's. Call it on a started node: it
// takes the parts that are running (the client protocol and replication
// may be off). Each call builds a registry of its own; its collectors only
// read counters the node keeps anyway, so two handlers report the same.
func (n *Node) MetricsHandler() http.Handler { return n.metricsHandler(nil) }

// metricsHandler is MetricsHandler with the control panel's counters.
func (n *Node) metricsHandler(panel func() metrics.HTTPStats) http.Handler {
	src := metrics.Sources{
		HTTP:    panel,
		Chain:   n.data.Store,
		Version: n.cfg.Version,
		Network: n.data.Genesis.Network,
		NodeID:  n.data.Identity.ID().String(),
		Started: n.started,
	}
	// Set only what runs: a nil *Server in the interface would not be nil.
	if n.server != nil {
		src.Client = n.server
	}
	if n.net != nil {
		src.Peers = n.net
	}
	return metrics.Handler(metrics.NewRegistry(src), n.cfg.Logger.With("component", "metrics"))
}
