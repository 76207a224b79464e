package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("pyvnode_"+name, help, labels, nil)
}

// The node's metrics (docs/HTTP.md §6 lists them with their meaning).
var (
	buildInfo = desc("build_info", "Always 1; the labels say which node and software this is.", "version", "network", "node_id")
	uptime    = desc("uptime_seconds", "Seconds since the node started.")

	chainHeight = desc("chain_height", "Records in the chain (the height the next record gets).")
	appends     = desc("chain_appends_total", "Records appended since the node started, by where they came from (local, import, peer).", "source")
	rejected    = desc("records_rejected_total", "Records refused, by path (gossip, sync, client, store) and reason (the failed check, application rule or store condition).", "path", "reason")
	badgerSize  = desc("badger_size_bytes", "Size of the Badger id index files, by part (lsm tables, vlog value log).", "part")
	segSize     = desc("segments_size_bytes", "Size of the chain's segment files.")

	clientSessions    = desc("client_sessions", "Open client protocol sessions.")
	clientConns       = desc("client_connections_total", "Client TCP connections, by result (accepted, refused by a connection limit).", "result")
	handshakes        = desc("handshakes_total", "Client protocol handshakes, by result (ok, failed).", "result")
	logins            = desc("logins_total", "Client logins, by result (ok, failed).", "result")
	clientBytes       = desc("client_bytes_total", "Bytes moved by client sessions, by direction (in, out).", "direction")
	clientPutFailures = desc("client_put_failures_total", "Client puts whose record was not appended, by wire error code and check or rule.", "code", "check")

	peers            = desc("peers", "Peers, by state (connected, ready: connected and on this network, configured: dialled and kept).", "state")
	gossipMessages   = desc("gossip_messages_total", "Gossip messages: received (direction in: accepted and stored, or ignored as already held) and sent (direction out: published, or skipped when the publish queue was full).", "direction", "result")
	gossipRepublish  = desc("gossip_republished_total", "Records received by reconciliation and gossiped on (counted in published too).")
	syncSessions     = desc("sync_sessions_total", "Reconciliation sessions started, by either side.")
	syncFailures     = desc("sync_failures_total", "Reconciliation sessions that failed, or whose stream could not be opened.")
	syncRounds       = desc("sync_rounds_total", "Reconciliation rounds (message exchanges within sessions).")
	syncBytes        = desc("sync_bytes_total", "Bytes moved by reconciliation sessions, by direction (in, out).", "direction")
	syncRecords      = desc("sync_records_total", "Records moved by reconciliation, by direction (in: new records stored, out: sent).", "direction")
	httpLogins       = desc("http_logins_total", "Control panel logins, by result (ok, failed).", "result")
	httpStreams      = desc("http_live_streams", "Open live streams (server-sent events) of records and logs.")
	peerLastSyncAge  = desc("peer_last_sync_age_seconds", "Seconds since the last successful reconciliation with a ready peer (replication lag).", "peer")
	peerRecordsTotal = desc("peer_records_total", "Records exchanged with a peer by reconciliation, by direction (in, out).", "peer", "direction")
)

// collector reads the sources when Prometheus scrapes. It is one collector
// because pyvnode_records_rejected_total has a series from each source.
type collector struct{ src Sources }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		buildInfo, uptime,
		chainHeight, appends, rejected, badgerSize, segSize,
		clientSessions, clientConns, handshakes, logins, clientBytes, clientPutFailures,
		peers, gossipMessages, gossipRepublish, syncSessions, syncFailures, syncRounds, syncBytes, syncRecords,
		peerLastSyncAge, peerRecordsTotal, httpLogins, httpStreams,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := emitter{ch}
	m.gauge(buildInfo, 1, c.src.Version, c.src.Network, c.src.NodeID)
	if !c.src.Started.IsZero() {
		m.gauge(uptime, c.src.Now().Sub(c.src.Started).Seconds())
	}
	if c.src.Chain != nil {
		c.chain(m)
	}
	if c.src.Client != nil {
		c.client(m)
	}
	if c.src.Peers != nil {
		c.network(m)
	}
	if c.src.HTTP != nil {
		st := c.src.HTTP()
		m.counter(httpLogins, st.Logins, "ok")
		m.counter(httpLogins, st.LoginFailures, "failed")
		m.gauge(httpStreams, float64(st.LiveStreams))
		for reason, n := range st.Rejected {
			m.counter(rejected, n, "http", reason)
		}
	}
}

func (c *collector) chain(m emitter) {
	st := c.src.Chain.Stats()
	m.gauge(chainHeight, float64(st.Size))
	for _, src := range []string{ledger.SourceLocal, ledger.SourceImport, ledger.SourcePeer} {
		m.counter(appends, st.Appended[src], src)
	}
	for reason, n := range st.Rejected {
		m.counter(rejected, n, "store", reason)
	}
	m.gauge(badgerSize, float64(st.LSMBytes), "lsm")
	m.gauge(badgerSize, float64(st.VlogBytes), "vlog")
	m.gauge(segSize, float64(st.SegmentBytes))
}

func (c *collector) client(m emitter) {
	st := c.src.Client.Stats()
	m.gauge(clientSessions, float64(st.Sessions))
	m.counter(clientConns, st.Accepted, "accepted")
	m.counter(clientConns, st.Refused, "refused")
	m.counter(handshakes, st.Handshakes, "ok")
	m.counter(handshakes, st.HandshakeFailures, "failed")
	m.counter(logins, st.Logins, "ok")
	m.counter(logins, st.LoginFailures, "failed")
	m.counter(clientBytes, st.BytesIn, "in")
	m.counter(clientBytes, st.BytesOut, "out")
	byReason := map[string]uint64{}
	for f, n := range c.src.Client.PutFailures() {
		m.counter(clientPutFailures, n, f.Code, f.Check)
		if r := clientRejectReason(f); r != "" {
			byReason[r] += n
		}
	}
	for r, n := range byReason {
		m.counter(rejected, n, "client", r)
	}
}

// clientRejectReason names a failed put as a rejected record, in the
// vocabulary the other paths use (the failed check, or the application
// rule), or "" when the put failed for a reason other than its record
// (the node's applications off, a store error).
func clientRejectReason(f protocol.PutFailure) string {
	switch f.Code {
	case protocol.ErrInvalidRecord.Code, protocol.ErrRefused.Code:
		if f.Check != "" {
			return f.Check
		}
		return f.Code
	case protocol.ErrForbidden.Code:
		return f.Code
	}
	return ""
}

func (c *collector) network(m emitter) {
	st := c.src.Peers.Stats()
	m.counter(gossipMessages, st.GossipAccepted.Load(), "in", "accepted")
	m.counter(gossipMessages, st.GossipIgnored.Load(), "in", "ignored")
	m.counter(gossipMessages, st.Published.Load(), "out", "published")
	m.counter(gossipMessages, st.PublishSkipped.Load(), "out", "skipped")
	m.counter(gossipRepublish, st.Republished.Load())
	m.counter(syncSessions, st.SyncSessions.Load())
	m.counter(syncFailures, st.SyncFailed.Load())
	m.counter(syncRounds, st.SyncRounds.Load())
	m.counter(syncBytes, st.SyncBytesIn.Load(), "in")
	m.counter(syncBytes, st.SyncBytesOut.Load(), "out")
	m.counter(syncRecords, st.SyncRecordsIn.Load(), "in")
	m.counter(syncRecords, st.SyncRecordsOut.Load(), "out")
	for key, n := range st.Rejected() {
		path, reason, _ := strings.Cut(key, "/")
		m.counter(rejected, n, path, reason)
	}

	var connected, ready, configured int
	now := c.src.Now()
	for _, p := range c.src.Peers.Peers() {
		if p.Connected {
			connected++
		}
		if p.Configured {
			configured++
		}
		if p.Ready {
			ready++
			if !p.LastSync.IsZero() {
				m.gauge(peerLastSyncAge, max(now.Sub(p.LastSync).Seconds(), 0), p.ID)
			}
		}
		// Only peers we exchange with: every connected libp2p peer of a
		// large network would be a series of zeros.
		if p.Ready || p.RecordsIn > 0 || p.RecordsOut > 0 {
			m.counter(peerRecordsTotal, p.RecordsIn, p.ID, "in")
			m.counter(peerRecordsTotal, p.RecordsOut, p.ID, "out")
		}
	}
	m.gauge(peers, float64(connected), "connected")
	m.gauge(peers, float64(ready), "ready")
	m.gauge(peers, float64(configured), "configured")
}

// emitter sends const metrics; label values are in the order of the desc.
type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func (e emitter) counter(d *prometheus.Desc, v uint64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}
