package node

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/p2p"
)

// startMesh starts n in-process nodes of one network, each peered with
// every other, on loopback ports.
func startMesh(t *testing.T, count int, syncEvery time.Duration) []*Node {
	t.Helper()
	g := ledger.NewGenesis("meshtest")
	g.PowBits = 4
	ports := freePorts(t, count)
	var ids []*ledger.Identity
	dirs := make([]string, count)
	for i := range count {
		dirs[i] = filepath.Join(t.TempDir(), fmt.Sprint("n", i))
		id, _, _, err := Init(dirs[i], InitOptions{Genesis: g})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	addr := func(i int) string {
		pid, err := p2p.PeerID(ids[i])
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", ports[i], pid)
	}
	var nodes []*Node
	for i := range count {
		var peers []string
		for j := range count {
			if j != i {
				peers = append(peers, addr(j))
			}
		}
		log, _ := testLogger()
		n, err := Start(t.Context(), Config{DataDir: dirs[i], Logger: log, Listen: "-",
			P2PListen: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ports[i])}, Peers: peers, SyncInterval: syncEvery})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	return nodes
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !ok() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMeshReplicates(t *testing.T) {
	nodes := startMesh(t, 3, time.Second)
	waitFor(t, 20*time.Second, "peers ready", func() bool {
		for _, n := range nodes {
			ready := 0
			for _, p := range n.Network().Peers() {
				if p.Ready {
					ready++
				}
			}
			if ready < len(nodes)-1 {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	rec, _, err := nodes[0].Put(ctx, "note.text", []byte{0xa0}, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "gossip", func() bool {
		for _, n := range nodes {
			if ok, _ := n.Store().Has(rec.ID); !ok {
				return false
			}
		}
		return true
	})
	for _, n := range nodes[1:] {
		_, e, err := n.Store().Get(rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if e.Replication != 1 {
			t.Errorf("replication count %d, want 1", e.Replication)
		}
	}
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

func TestMeshReconciles(t *testing.T) {
	nodes := startMesh(t, 2, time.Hour) // only the sync below
	waitFor(t, 20*time.Second, "peers ready", func() bool {
		for _, n := range nodes {
			if len(n.Network().Peers()) == 0 || !n.Network().Peers()[0].Ready {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	// Records the network side does not hear of: only reconciliation
	// can carry them over.
	for i := range 300 {
		if _, _, err := Put(ctx, nodes[i%2].data, "note.text", []byte{0xa0}, ""); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := p2p.PeerID(nodes[1].Identity())
	var res *p2p.SyncResult
	var err error
	waitFor(t, 20*time.Second, "sync", func() bool {
		res, err = nodes[0].Network().SyncWith(ctx, p)
		return err == nil // the sync on connect may still run
	})
	t.Logf("%+v", res)
	// The sync on connect may still have been running when the records
	// were put and carried a few of them; across all sessions each record
	// crossed once, 150 each way.
	if res.Sent > 150 || res.Received > 150 || res.Sent+res.Received == 0 {
		t.Errorf("sent %d received %d, want up to 150 each", res.Sent, res.Received)
	}
	peers := nodes[0].Network().Peers()
	if len(peers) != 1 || peers[0].RecordsOut != 150 || peers[0].RecordsIn != 150 {
		t.Errorf("records exchanged with the peer: %+v, want 150 each way", peers)
	}
	for _, n := range nodes {
		if c := n.Store().Count(); c != 300 {
			t.Errorf("count %d", c)
		}
	}
}

// TestPeerAddedAtRunTimeIsDialled: a peer added to the peer book (what
// 'peer add' does) is dialled within seconds and survives a restart.
func TestPeerAddedAtRunTimeIsDialled(t *testing.T) {
	nodes := startMesh(t, 1, time.Hour)
	g := nodes[0].Genesis()
	dir := filepath.Join(t.TempDir(), "late")
	if _, _, _, err := Init(dir, InitOptions{Genesis: g}); err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger()
	late, err := Start(t.Context(), Config{DataDir: dir, Logger: log, Listen: "-", P2PListen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if err := late.peers.Add(nodes[0].Network().Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the added peer to be dialled", func() bool {
		for _, p := range late.Network().Peers() {
			if p.Ready && p.Configured {
				return true
			}
		}
		return false
	})
	if _, _, err := late.Put(t.Context(), "note.text", []byte{0xa0}, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the record to reach the peer", func() bool { return nodes[0].Store().Count() == 1 })
	reopened, err := OpenPeers(PeersPath(dir))
	if err != nil || len(reopened.List()) != 1 {
		t.Fatalf("peers.json after add: %v %v", reopened, err)
	}
}
