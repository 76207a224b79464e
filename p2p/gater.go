package p2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// refuseFor is how long a peer of another network is kept out.
const refuseFor = 10 * time.Minute

// banFor is how long a peer that keeps sending invalid records is kept out.
const banFor = 10 * time.Minute

// gater keeps banned and blocked peers out: no dial to them, no
// connection from them. A ban expires; a block (an admin's, or a test's
// partition) lasts until it is lifted.
type gater struct {
	mu      sync.Mutex
	banned  map[peer.ID]ban
	blocked map[peer.ID]bool
}

type ban struct {
	until  time.Time
	reason string
}

func newGater() *gater {
	return &gater{banned: map[peer.ID]ban{}, blocked: map[peer.ID]bool{}}
}

func (g *gater) ban(p peer.ID, d time.Duration, reason string) {
	g.mu.Lock()
	now := time.Now()
	for q, b := range g.banned {
		if now.After(b.until) {
			delete(g.banned, q) // expired: kept no longer than needed
		}
	}
	g.banned[p] = ban{until: now.Add(d), reason: reason}
	g.mu.Unlock()
}

func (g *gater) block(p peer.ID, on bool) {
	g.mu.Lock()
	if on {
		g.blocked[p] = true
	} else {
		delete(g.blocked, p)
		delete(g.banned, p)
	}
	g.mu.Unlock()
}

// refused says why a peer is kept out, or "".
func (g *gater) refused(p peer.ID) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked[p] {
		return "blocked"
	}
	if b, ok := g.banned[p]; ok {
		if time.Now().Before(b.until) {
			return b.reason
		}
		delete(g.banned, p)
	}
	return ""
}

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return g.refused(p) == "" }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.refused(p) == "" }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.refused(p) == ""
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
