package p2p

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Stats counts what the network side did since it started.
type Stats struct {
	GossipAccepted atomic.Uint64
	GossipIgnored  atomic.Uint64
	Published      atomic.Uint64
	PublishSkipped atomic.Uint64 // local records left to reconciliation (queue full)
	Republished    atomic.Uint64
	SyncSessions   atomic.Uint64
	SyncFailed     atomic.Uint64
	SyncRounds     atomic.Uint64
	SyncRecordsIn  atomic.Uint64
	SyncRecordsOut atomic.Uint64
	SyncBytesIn    atomic.Uint64
	SyncBytesOut   atomic.Uint64

	mu       sync.Mutex
	rejected map[string]uint64 // "path/reason"
}

func (s *Stats) add(c *atomic.Uint64, v uint64) { c.Add(v) }

func (s *Stats) reject(path, reason string) {
	s.mu.Lock()
	if s.rejected == nil {
		s.rejected = map[string]uint64{}
	}
	s.rejected[path+"/"+reason]++
	s.mu.Unlock()
}

// Rejected returns the invalid records refused, by "path/reason" (path is
// gossip or sync, reason the failed check).
func (s *Stats) Rejected() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.rejected)
}

// peerState is what the node knows of a connected or configured peer.
type peerState struct {
	id       peer.ID
	ready    bool // hello exchanged: same network
	software string
	since    time.Time
	syncing  bool
	inbound  int // sync sessions the peer is running with us
	lastSync time.Time
	lastErr  string
	in, out  uint64 // records received from and sent to it by sync
	rejects  int
}

func (n *Network) peerLocked(p peer.ID) *peerState {
	st := n.peers[p]
	if st == nil {
		st = &peerState{id: p}
		n.peers[p] = st
	}
	return st
}

// PeerInfo describes a peer for status displays.
type PeerInfo struct {
	ID          string    `json:"id" cbor:"id"`
	Addrs       []string  `json:"addrs" cbor:"addrs"`
	Connected   bool      `json:"connected" cbor:"connected"`
	Ready       bool      `json:"ready" cbor:"ready"` // same network, hello done
	Software    string    `json:"software,omitempty" cbor:"software,omitempty"`
	Since       time.Time `json:"since,omitzero" cbor:"since,omitempty"`
	LastSync    time.Time `json:"last_sync,omitzero" cbor:"last_sync,omitempty"`
	LastError   string    `json:"last_error,omitempty" cbor:"last_error,omitempty"`
	RecordsIn   uint64    `json:"records_in" cbor:"records_in"`
	RecordsOut  uint64    `json:"records_out" cbor:"records_out"`
	Refused     string    `json:"refused,omitempty" cbor:"refused,omitempty"`
	Configured  bool      `json:"configured" cbor:"configured"`
	RecordCount int       `json:"-" cbor:"-"`
}

// Peers describes every peer that is connected, configured or known.
func (n *Network) Peers() []PeerInfo {
	targets := n.targets()
	n.peersMu.Lock()
	ids := map[peer.ID]bool{}
	for p := range n.peers {
		ids[p] = true
	}
	for p := range targets {
		ids[p] = true
	}
	for _, p := range n.host.Network().Peers() {
		ids[p] = true
	}
	var out []PeerInfo
	for p := range ids {
		info := PeerInfo{ID: p.String(), Connected: n.host.Network().Connectedness(p) == network.Connected,
			Refused: n.gater.refused(p)}
		_, info.Configured = targets[p]
		if st := n.peers[p]; st != nil {
			info.Ready, info.Software, info.Since = st.ready && info.Connected, st.software, st.since
			info.LastSync, info.LastError, info.RecordsIn, info.RecordsOut = st.lastSync, st.lastErr, st.in, st.out
		}
		for _, a := range n.host.Peerstore().Addrs(p) {
			info.Addrs = append(info.Addrs, a.String())
		}
		slices.Sort(info.Addrs)
		out = append(out, info)
	}
	n.peersMu.Unlock()
	slices.SortFunc(out, func(a, b PeerInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// notifiee follows connections: a new outbound connection starts the hello
// exchange; the last connection of a peer going away makes it not ready
// and lets the dial loop try again soon.
type notifiee struct{ n *Network }

func (nf *notifiee) Listen(network.Network, ma.Multiaddr)      {}
func (nf *notifiee) ListenClose(network.Network, ma.Multiaddr) {}
func (nf *notifiee) Connected(_ network.Network, c network.Conn) {
	n := nf.n
	p := c.RemotePeer()
	n.rlog.Info("peer connected", "peer", p.String(), "addr", c.RemoteMultiaddr().String(), "direction", c.Stat().Direction.String())
	if c.Stat().Direction != network.DirOutbound {
		return
	}
	if !n.track() {
		return
	}
	go func() {
		defer n.wg.Done()
		n.sayHello(p)
	}()
}
func (nf *notifiee) Disconnected(_ network.Network, c network.Conn) {
	n := nf.n
	p := c.RemotePeer()
	if n.host.Network().Connectedness(p) == network.Connected {
		return
	}
	n.peersMu.Lock()
	if st := n.peers[p]; st != nil {
		if st.ready {
			n.rlog.Info("peer disconnected", "peer", p.String())
		}
		st.ready = false
	}
	n.peersMu.Unlock()
	n.dialMu.Lock()
	if t := n.dials[p]; t != nil {
		t.wait, t.next = 0, time.Time{}
	}
	n.dialMu.Unlock()
}

// dialTarget is a configured peer and when to try it next.
type dialTarget struct {
	info    peer.AddrInfo
	wait    time.Duration
	next    time.Time
	dialing bool
}

// targets parses the configured peers (flags and peer book).
func (n *Network) targets() map[peer.ID]peer.AddrInfo {
	list := slices.Clone(n.cfg.Peers)
	if n.cfg.PeerSource != nil {
		list = append(list, n.cfg.PeerSource()...)
	}
	out := map[peer.ID]peer.AddrInfo{}
	for _, s := range list {
		info, err := peer.AddrInfoFromString(s)
		if err != nil || info.ID == n.host.ID() {
			continue
		}
		cur := out[info.ID]
		cur.ID = info.ID
		cur.Addrs = append(cur.Addrs, info.Addrs...)
		out[info.ID] = cur
	}
	return out
}

// dialLoop keeps the configured peers connected, with a doubling wait
// (RedialInterval up to a minute) after each failed dial.
func (n *Network) dialLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(max(n.cfg.RedialInterval/2, 10*time.Millisecond))
	defer tick.Stop()
	syncTick := time.NewTicker(n.cfg.SyncInterval)
	defer syncTick.Stop()
	for {
		n.dialRound()
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		case <-syncTick.C:
			n.syncRound()
		}
	}
}

func (n *Network) dialRound() {
	targets := n.targets()
	now := time.Now()
	n.dialMu.Lock()
	defer n.dialMu.Unlock()
	for p := range n.dials {
		if _, ok := targets[p]; !ok {
			delete(n.dials, p)
		}
	}
	for p, info := range targets {
		t := n.dials[p]
		if t == nil {
			t = &dialTarget{}
			n.dials[p] = t
		}
		t.info = info
		if t.dialing || now.Before(t.next) || n.host.Network().Connectedness(p) == network.Connected || n.gater.refused(p) != "" {
			continue
		}
		if !n.track() {
			return
		}
		t.dialing = true
		go n.dial(p, info)
	}
}

func (n *Network) dial(p peer.ID, info peer.AddrInfo) {
	defer n.wg.Done()
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	err := n.host.Connect(ctx, info)
	cancel()
	n.dialMu.Lock()
	defer n.dialMu.Unlock()
	t := n.dials[p]
	if t == nil {
		return
	}
	t.dialing = false
	if err != nil {
		if t.wait == 0 {
			t.wait = n.cfg.RedialInterval
		} else if t.wait *= 2; t.wait > time.Minute {
			t.wait = time.Minute
		}
		t.next = time.Now().Add(t.wait)
		if n.ctx.Err() == nil {
			n.rlog.Debug("dial failed", "peer", p.String(), "retry_in", t.wait.String(), "err", err)
		}
		return
	}
	t.wait, t.next = 0, time.Time{}
}

// syncRound reconciles with every ready peer this node is not already
// reconciling with.
func (n *Network) syncRound() {
	n.peersMu.Lock()
	var ready []peer.ID
	for p, st := range n.peers {
		if st.ready && !st.syncing {
			ready = append(ready, p)
		}
	}
	n.peersMu.Unlock()
	for _, p := range ready {
		if !n.track() {
			return
		}
		go func() {
			defer n.wg.Done()
			if _, err := n.SyncWith(n.ctx, p); err != nil && n.ctx.Err() == nil && err != errBusy {
				n.rlog.Info("periodic sync failed", "peer", p.String(), "err", err)
			}
		}()
	}
}

// Block cuts a peer off until Unblock: its connections are closed and no
// new ones are made either way. Operators use it to shut out a peer;
// tests use it to partition a network.
func (n *Network) Block(p peer.ID) {
	n.gater.block(p, true)
	n.host.Network().ClosePeer(p)
}

// Unblock lets a blocked or banned peer back in; it is dialled again at
// once if configured.
func (n *Network) Unblock(p peer.ID) {
	n.gater.block(p, false)
	n.dialMu.Lock()
	if t := n.dials[p]; t != nil {
		t.wait, t.next = 0, time.Time{}
	}
	n.dialMu.Unlock()
}
