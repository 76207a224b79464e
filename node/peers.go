package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pyvnode/pyvnode/internal/fsutil"
)

// Peers is the list of replication peers an admin configured, kept in
// DATA/peers.json. Replication reads it; the protocol's peer commands edit
// it.
type Peers struct {
	path string
	mu   sync.Mutex
	list []string
}

// PeersPath is where the peer list lives.
func PeersPath(dir string) string { return dataPath(dir, "peers.json") }

// OpenPeers reads the peer list (it need not exist).
func OpenPeers(path string) (*Peers, error) {
	p := &Peers{path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &p.list); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return p, nil
}

// List returns the peers.
func (p *Peers) List() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.list)
}

// CheckPeerAddr checks a peer address: a libp2p multiaddr that parses, such
// as /ip4/127.0.0.1/tcp/6667/p2p/<peer id>.
func CheckPeerAddr(a string) error {
	if len(a) < 4 || len(a) > 512 || a[0] != '/' || strings.ContainsAny(a, " \t\r\n") {
		return fmt.Errorf("peer address %q is not a multiaddr such as /ip4/127.0.0.1/tcp/6667/p2p/<peer id>", a)
	}
	if _, err := peer.AddrInfoFromString(a); err != nil {
		return fmt.Errorf("peer address %q: %v (want /ip4/HOST/tcp/PORT/p2p/<peer id>)", a, err)
	}
	return nil
}

// Add adds a peer (once).
func (p *Peers) Add(a string) error {
	if err := CheckPeerAddr(a); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.Contains(p.list, a) {
		return nil
	}
	next := append(slices.Clone(p.list), a)
	if err := p.save(next); err != nil {
		return err
	}
	p.list = next
	return nil
}

// Remove removes a peer.
func (p *Peers) Remove(a string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.list, a)
	if i < 0 {
		return fmt.Errorf("no peer %q", a)
	}
	next := slices.Delete(slices.Clone(p.list), i, i+1)
	if err := p.save(next); err != nil {
		return err
	}
	p.list = next
	return nil
}

func (p *Peers) save(list []string) error {
	if list == nil {
		list = []string{}
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(p.path, append(b, '\n'), 0o600)
}
