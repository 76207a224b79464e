package node

import (
	"context"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/p2p"
	"github.com/pyvnode/pyvnode/protocol"
)

func (n *Node) startP2P(ctx context.Context) error {
	if slices.Equal(n.cfg.P2PListen, []string{"-"}) {
		if len(n.cfg.Peers) > 0 {
			return fmt.Errorf("peers given but replication is off (p2p listen \"-\")")
		}
		return nil
	}
	net, err := p2p.Start(ctx, n, p2p.Config{
		Listen: n.cfg.P2PListen, Peers: n.cfg.Peers, PeerSource: n.peers.List,
		SyncInterval: n.cfg.SyncInterval, Logger: n.cfg.Logger, Replication: n.cfg.Replication,
		Version: n.cfg.Version, RecordCheck: apps.CheckRecord,
	})
	if err != nil {
		return err
	}
	n.net = net
	return nil
}

// Network is the node's network side (nil when replication is off).
func (n *Node) Network() *p2p.Network { return n.net }

// replicator serves the replication admin commands.
type replicator struct{ n *Node }

func (r replicator) Network() protocol.NetworkStatus {
	net := r.n.net
	st := net.Stats()
	out := protocol.NetworkStatus{
		PeerID: net.ID().String(), Addrs: net.Addrs(),
		GossipAccepted: st.GossipAccepted.Load(), GossipIgnored: st.GossipIgnored.Load(),
		Published: st.Published.Load(), Republished: st.Republished.Load(), PublishSkipped: st.PublishSkipped.Load(),
		SyncSessions: st.SyncSessions.Load(), SyncFailed: st.SyncFailed.Load(), SyncRounds: st.SyncRounds.Load(),
		SyncRecordsIn: st.SyncRecordsIn.Load(), SyncRecordsOut: st.SyncRecordsOut.Load(),
		SyncBytesIn: st.SyncBytesIn.Load(), SyncBytesOut: st.SyncBytesOut.Load(),
		Rejected: st.Rejected(),
	}
	out.SetSize, out.SetFingerprint = net.SetDigest()
	for _, p := range net.Peers() {
		out.Peers = append(out.Peers, protocol.PeerStatus{
			ID: p.ID, Addrs: p.Addrs, Configured: p.Configured, Connected: p.Connected, Ready: p.Ready,
			Software: p.Software, Since: p.Since, LastSync: p.LastSync, LastError: p.LastError,
			RecordsIn: p.RecordsIn, RecordsOut: p.RecordsOut, Refused: p.Refused,
		})
	}
	return out
}

func (r replicator) Sync(ctx context.Context, id string) ([]protocol.SyncResult, error) {
	net := r.n.net
	var targets []peer.ID
	if id == "" {
		for _, p := range net.Peers() {
			if p.Ready {
				pid, _ := peer.Decode(p.ID)
				targets = append(targets, pid)
			}
		}
	} else {
		pid, err := peer.Decode(id)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not a peer id: %v", protocol.ErrNoPeer, id, err)
		}
		targets = append(targets, pid)
	}
	out := make([]protocol.SyncResult, 0, len(targets))
	for _, p := range targets {
		res, err := net.SyncWith(ctx, p)
		sr := protocol.SyncResult{Peer: p.String()}
		if res != nil {
			sr = protocol.SyncResult{Peer: p.String(), Sessions: res.Sessions, Rounds: res.Rounds, Sent: res.Sent,
				Received: res.Received, Rejected: res.Rejected, BytesOut: res.BytesOut, BytesIn: res.BytesIn,
				Seconds: res.Duration.Seconds()}
		}
		if err != nil {
			if id != "" {
				return nil, err
			}
			sr.Error = err.Error()
		}
		out = append(out, sr)
	}
	return out, nil
}

func (r replicator) Block(id string, blocked bool) error {
	pid, err := peer.Decode(id)
	if err != nil {
		return fmt.Errorf("%w: %q is not a peer id: %v", protocol.ErrNoPeer, id, err)
	}
	if blocked {
		r.n.net.Block(pid)
	} else {
		r.n.net.Unblock(pid)
	}
	return nil
}
