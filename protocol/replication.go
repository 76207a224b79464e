package protocol

import (
	"context"
	"errors"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/protocol/accounts"
)

// Replicator is the node's network side, as the admin commands see it.
type Replicator interface {
	// Network describes the libp2p host and its peers.
	Network() NetworkStatus
	// Sync reconciles with one peer (its peer id), or with every ready
	// peer when peer is "".
	Sync(ctx context.Context, peer string) ([]SyncResult, error)
	// Block cuts a peer off until it is unblocked (not kept across
	// restarts); unblocking also lifts a ban.
	Block(peer string, blocked bool) error
}

// ErrNoPeer is returned by a Replicator for a peer it does not know.
var ErrNoPeer = errors.New("no such peer")

// NetworkStatus is the answer to "peer.status".
type NetworkStatus struct {
	PeerID string       `cbor:"peer_id" json:"peer_id"`
	Addrs  []string     `cbor:"addrs" json:"addrs"`
	Peers  []PeerStatus `cbor:"peers" json:"peers"`
	// SetSize and SetFingerprint summarise the record set: two nodes hold
	// the same records exactly when both match.
	SetSize        int    `cbor:"set_size" json:"set_size"`
	SetFingerprint string `cbor:"set_fingerprint" json:"set_fingerprint"`
	// Counters since start.
	GossipAccepted uint64            `cbor:"gossip_accepted" json:"gossip_accepted"`
	GossipIgnored  uint64            `cbor:"gossip_ignored" json:"gossip_ignored"`
	Published      uint64            `cbor:"published" json:"published"`
	Republished    uint64            `cbor:"republished" json:"republished"`
	PublishSkipped uint64            `cbor:"publish_skipped" json:"publish_skipped"` // left to reconciliation: queue full
	SyncSessions   uint64            `cbor:"sync_sessions" json:"sync_sessions"`
	SyncFailed     uint64            `cbor:"sync_failed" json:"sync_failed"`
	SyncRounds     uint64            `cbor:"sync_rounds" json:"sync_rounds"`
	SyncRecordsIn  uint64            `cbor:"sync_records_in" json:"sync_records_in"`
	SyncRecordsOut uint64            `cbor:"sync_records_out" json:"sync_records_out"`
	SyncBytesIn    uint64            `cbor:"sync_bytes_in" json:"sync_bytes_in"`
	SyncBytesOut   uint64            `cbor:"sync_bytes_out" json:"sync_bytes_out"`
	Rejected       map[string]uint64 `cbor:"rejected" json:"rejected"`
}

// PeerStatus describes one peer.
type PeerStatus struct {
	ID         string    `cbor:"id" json:"id"`
	Addrs      []string  `cbor:"addrs" json:"addrs"`
	Configured bool      `cbor:"configured" json:"configured"`
	Connected  bool      `cbor:"connected" json:"connected"`
	Ready      bool      `cbor:"ready" json:"ready"` // hello done: same network
	Software   string    `cbor:"software,omitempty" json:"software,omitempty"`
	Since      time.Time `cbor:"since,omitempty" json:"since,omitzero"`
	LastSync   time.Time `cbor:"last_sync,omitempty" json:"last_sync,omitzero"`
	LastError  string    `cbor:"last_error,omitempty" json:"last_error,omitempty"`
	RecordsIn  uint64    `cbor:"records_in" json:"records_in"`
	RecordsOut uint64    `cbor:"records_out" json:"records_out"`
	Refused    string    `cbor:"refused,omitempty" json:"refused,omitempty"`
}

// SyncResult is the outcome of reconciling with one peer.
type SyncResult struct {
	Peer     string  `cbor:"peer" json:"peer"`
	Sessions int     `cbor:"sessions" json:"sessions"`
	Rounds   int     `cbor:"rounds" json:"rounds"`
	Sent     int     `cbor:"sent" json:"sent"`
	Received int     `cbor:"received" json:"received"`
	Rejected int     `cbor:"rejected" json:"rejected"`
	BytesOut int     `cbor:"bytes_out" json:"bytes_out"`
	BytesIn  int     `cbor:"bytes_in" json:"bytes_in"`
	Seconds  float64 `cbor:"seconds" json:"seconds"`
	Error    string  `cbor:"error,omitempty" json:"error,omitempty"`
}

// SyncResults is the answer to "sync".
type SyncResults struct {
	Results []SyncResult `cbor:"results" json:"results"`
}

type peerIDArgs struct {
	Peer string `cbor:"peer,omitempty"`
}

func replicator(se *session) (Replicator, error) {
	if se.srv.cfg.Replicator == nil {
		return nil, errorf(ErrUnavailable, "replication is off on this node")
	}
	return se.srv.cfg.Replicator, nil
}

func replicationError(err error) error {
	if errors.Is(err, ErrNoPeer) {
		return errorf(ErrNotFound, "%v", err)
	}
	return errorf(ErrUnavailable, "%v", err)
}

func init() {
	register(&command{name: "peer.status", help: "the p2p host, its peers and replication counters", role: accounts.Admin,
		run: func(_ context.Context, se *session, _ cbor.RawMessage) (any, error) {
			r, err := replicator(se)
			if err != nil {
				return nil, err
			}
			return r.Network(), nil
		}})
	register(&command{name: "sync", args: "[peer]", help: "reconcile with a peer (peer id) now, or with every peer", role: accounts.Admin,
		run: func(ctx context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a peerIDArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			r, err := replicator(se)
			if err != nil {
				return nil, err
			}
			res, err := r.Sync(ctx, a.Peer)
			if err != nil {
				return nil, replicationError(err)
			}
			se.log.Info("sync requested", "by", se.userName(), "peer", a.Peer)
			return SyncResults{Results: res}, nil
		}})
	for _, block := range []bool{true, false} {
		name, help := "peer.block", "cut a peer (peer id) off until unblocked"
		if !block {
			name, help = "peer.unblock", "let a blocked or banned peer back in"
		}
		register(&command{name: name, args: "peer", help: help, role: accounts.Admin,
			run: func(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
				var a peerIDArgs
				if err := decodeArgs(raw, &a); err != nil {
					return nil, err
				}
				if a.Peer == "" {
					return nil, errorf(ErrBadRequest, "peer is required")
				}
				r, err := replicator(se)
				if err != nil {
					return nil, err
				}
				if err := r.Block(a.Peer, block); err != nil {
					if errors.Is(err, ErrNoPeer) {
						return nil, errorf(ErrNotFound, "%v", err)
					}
					return nil, errorf(ErrBadRequest, "%v", err)
				}
				se.log.Info(name, "by", se.userName(), "peer", a.Peer)
				return struct{}{}, nil
			}})
	}
}
