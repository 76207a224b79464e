package p2p_test

// Adversarial tests: real in-process Networks on loopback, attacked by raw
// libp2p hosts that speak the protocols by hand. The requirement they prove:
// a peer that sends forged, malformed or oversized records has them all
// rejected, nothing of it is stored, and the honest nodes keep converging.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/p2p"
)

const (
	advNetwork = "advtest"
	advPowBits = 4
	advWait    = 20 * time.Second
)

// Frame types of the sync and hello protocols (docs: REPLICATION.md).
const (
	advRecon  = 0x01
	advNeed   = 0x02
	advDone   = 0x03
	advRecord = 0x04
	advEnd    = 0x05
	advStored = 0x06
	advHello  = 0x10
)

// advChain is a p2p.Chain over a store in a temporary directory.
type advChain struct {
	id *ledger.Identity
	g  *ledger.Genesis
	st *ledger.Store
}

func (c *advChain) Identity() *ledger.Identity { return c.id }
func (c *advChain) Genesis() *ledger.Genesis   { return c.g }
func (c *advChain) Store() *ledger.Store       { return c.st }

// advLog collects a node's log lines so tests can look for a refusal.
type advLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *advLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *advLog) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

// advGenesis is the test network: low proof of work, and "vote.*" kept
// for an authority nobody in the tests holds, so a vote is always refused.
func advGenesis(t *testing.T, replicationLimit int) *ledger.Genesis {
	t.Helper()
	authority, err := ledger.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	g := ledger.NewGenesis(advNetwork)
	g.PowBits = advPowBits
	g.ReplicationLimit = replicationLimit
	g.Originators = map[string][]ledger.NodeID{"vote.*": {authority.ID()}}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	return g
}

// advNode is an honest node: a Network over its own store, and the ids of
// the records put on it.
type advNode struct {
	name  string
	chain *advChain
	net   *p2p.Network
	log   *advLog

	mu   sync.Mutex
	puts []ledger.ID
	seq  int
}

func startAdvNode(t *testing.T, name string, g *ledger.Genesis, peers []string, syncEvery time.Duration) *advNode {
	t.Helper()
	id, err := ledger.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := ledger.Open(ledger.Options{Dir: t.TempDir(), Genesis: g, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lg := &advLog{}
	logger := slog.New(slog.NewTextHandler(lg, &slog.HandlerOptions{Level: slog.LevelInfo}))
	chain := &advChain{id: id, g: g, st: st}
	n, err := p2p.Start(context.Background(), chain, p2p.Config{
		Listen:         []string{"/ip4/127.0.0.1/tcp/0"},
		Peers:          peers,
		SyncInterval:   syncEvery,
		RedialInterval: 200 * time.Millisecond,
		Logger:         logger,
		Version:        "adversary-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() }) // before the store closes (cleanups run last first)
	for _, a := range n.Addrs() {
		if !strings.HasPrefix(a, "/ip4/127.0.0.1/") {
			t.Fatalf("%s listens on %s, not loopback", name, a)
		}
	}
	return &advNode{name: name, chain: chain, net: n, log: lg}
}

// put appends a new record the way node.Put does and tells the network.
func (n *advNode) put(ctx context.Context) (*ledger.SignedRecord, error) {
	n.mu.Lock()
	n.seq++
	i := n.seq
	n.mu.Unlock()
	payload, err := ledger.EncodePayload(map[string]any{"node": n.name, "n": int64(i)})
	if err != nil {
		return nil, err
	}
	rec, err := ledger.NewSignedRecord(ctx, n.chain.id, n.chain.g, "note.text", payload, "", time.Now())
	if err != nil {
		return nil, err
	}
	if _, err := n.chain.st.Append(ctx, rec, 0, "local"); err != nil {
		return nil, err
	}
	n.net.Added(ctx, rec)
	n.mu.Lock()
	n.puts = append(n.puts, rec.ID)
	n.mu.Unlock()
	return rec, nil
}

func (n *advNode) putIDs() []ledger.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]ledger.ID(nil), n.puts...)
}

func (n *advNode) peerInfo(p peer.ID) (p2p.PeerInfo, bool) {
	for _, info := range n.net.Peers() {
		if info.ID == p.String() {
			return info, true
		}
	}
	return p2p.PeerInfo{}, false
}

func (n *advNode) ready(p peer.ID) bool {
	info, ok := n.peerInfo(p)
	return ok && info.Ready
}

func (n *advNode) rejectedTotal() uint64 {
	var sum uint64
	for _, v := range n.net.Stats().Rejected() {
		sum += v
	}
	return sum
}

func advAddrInfo(t *testing.T, n *advNode) peer.AddrInfo {
	t.Helper()
	info, err := peer.AddrInfoFromString(n.net.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	return *info
}

// waitUntil polls ok until it holds or d has passed.
func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !ok() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startAdvMesh starts count honest nodes of g, each dialling the ones
// started before it, and waits until every pair is ready.
func startAdvMesh(t *testing.T, g *ledger.Genesis, count int, syncEvery time.Duration) []*advNode {
	t.Helper()
	var nodes []*advNode
	for i := range count {
		var peers []string
		for _, o := range nodes {
			peers = append(peers, o.net.Addrs()...)
		}
		nodes = append(nodes, startAdvNode(t, fmt.Sprint("h", i), g, peers, syncEvery))
	}
	waitUntil(t, advWait, "honest peers ready", func() bool {
		for _, a := range nodes {
			for _, b := range nodes {
				if a != b && !a.ready(b.net.ID()) {
					return false
				}
			}
		}
		return true
	})
	return nodes
}

// waitConverged waits until every node holds every record put on any of
// them, and nothing else.
func waitConverged(t *testing.T, nodes []*advNode) {
	t.Helper()
	var all []ledger.ID
	for _, n := range nodes {
		all = append(all, n.putIDs()...)
	}
	waitUntil(t, advWait, fmt.Sprintf("%d nodes to converge on %d records", len(nodes), len(all)), func() bool {
		for _, n := range nodes {
			if n.chain.st.Count() != uint64(len(all)) {
				return false
			}
			for _, id := range all {
				if ok, _ := n.chain.st.Has(id); !ok {
					return false
				}
			}
		}
		return true
	})
	for _, n := range nodes {
		if c := n.chain.st.Count(); c != uint64(len(all)) {
			t.Fatalf("%s holds %d records, the honest nodes put %d", n.name, c, len(all))
		}
	}
}

// keepPutting puts a record on every node every interval until stop is
// called; stop returns once the last put is done.
func keepPutting(t *testing.T, nodes []*advNode, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if _, err := n.put(context.Background()); err != nil {
					t.Errorf("%s: put: %v", n.name, err)
					return
				}
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// --- the attacker --------------------------------------------------------

// advAttacker is a raw libp2p host with its own GossipSub: it follows the
// wire protocols only as far as it chooses to.
type advAttacker struct {
	t     *testing.T
	h     host.Host
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	key   ed25519.PrivateKey // signs the attacker's records
}

func newAdvAttacker(t *testing.T, network string) *advAttacker {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); h.Close() })
	// Large enough to send what the honest nodes will not take.
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMaxMessageSize(1<<20),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(p2p.Topic(network))
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &advAttacker{t: t, h: h, ps: ps, topic: topic, key: key}
}

func (a *advAttacker) connect(n *advNode) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.h.Connect(ctx, advAddrInfo(a.t, n)); err != nil {
		a.t.Fatalf("attacker: connect to %s: %v", n.name, err)
	}
}

func advFrame(typ byte, body []byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(body)+1))
	b = append(b, typ)
	return append(b, body...)
}

func advReadFrame(r *bufio.Reader, limit uint64) (byte, []byte, error) {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, err
	}
	if size == 0 || size > limit {
		return 0, nil, fmt.Errorf("frame length %d", size)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return buf[0], buf[1:], nil
}

// helloRaw sends raw bytes on a hello stream and returns the hello the
// node answers with, if any.
func (a *advAttacker) helloRaw(n *advNode, raw []byte) (p2p.Hello, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := a.h.NewStream(ctx, n.net.ID(), p2p.HelloProtocol)
	if err != nil {
		return p2p.Hello{}, err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write(raw); err != nil {
		s.Reset()
		return p2p.Hello{}, err
	}
	s.CloseWrite()
	typ, body, err := advReadFrame(bufio.NewReader(s), 4096)
	if err != nil {
		return p2p.Hello{}, err
	}
	if typ != advHello {
		return p2p.Hello{}, fmt.Errorf("answer of type %#x", typ)
	}
	return p2p.DecodeHello(body)
}

// hello runs the hello exchange correctly, as a node of g, and waits until
// the honest node counts the attacker as a ready peer.
func (a *advAttacker) hello(n *advNode, g *ledger.Genesis) {
	a.t.Helper()
	gh := g.Hash()
	h, err := a.helloRaw(n, advFrame(advHello, p2p.EncodeHello(p2p.Hello{
		Version: p2p.HelloVersion, Network: g.Network, Genesis: gh[:], Software: "attacker"})))
	if err != nil {
		a.t.Fatalf("attacker: hello to %s: %v", n.name, err)
	}
	if h.Network != g.Network || !bytes.Equal(h.Genesis, gh[:]) {
		a.t.Fatalf("attacker: %s answered hello %+v", n.name, h)
	}
	waitUntil(a.t, advWait, "attacker ready at "+n.name, func() bool { return n.ready(a.h.ID()) })
}

// join connects, says hello and waits until the attacker's GossipSub sees
// each node in the topic.
func (a *advAttacker) join(g *ledger.Genesis, nodes ...*advNode) {
	a.t.Helper()
	for _, n := range nodes {
		a.connect(n)
		a.hello(n, g)
	}
	waitUntil(a.t, advWait, "attacker sees the honest nodes in the topic", func() bool {
		in := map[peer.ID]bool{}
		for _, p := range a.topic.ListPeers() {
			in[p] = true
		}
		for _, n := range nodes {
			if !in[n.net.ID()] {
				return false
			}
		}
		return true
	})
}

func (a *advAttacker) publish(data []byte) {
	a.t.Helper()
	if err := a.topic.Publish(context.Background(), data); err != nil {
		a.t.Fatalf("attacker: publish %d bytes: %v", len(data), err)
	}
}

// --- forged records ------------------------------------------------------

var advSeq struct {
	sync.Mutex
	n int64
}

// advCore is an unsigned, unmined record of the given origin and kind,
// distinct from every other one.
func advCore(t *testing.T, origin ed25519.PublicKey, kind string, created time.Time) *ledger.Record {
	t.Helper()
	advSeq.Lock()
	advSeq.n++
	n := advSeq.n
	advSeq.Unlock()
	p, err := ledger.EncodePayload(map[string]any{"forged": n})
	if err != nil {
		t.Fatal(err)
	}
	return &ledger.Record{Version: ledger.RecordVersion, Kind: kind, Payload: p, Origin: origin,
		Author: "mallory", Created: created.UnixNano()}
}

// advSeal encodes rec's envelope with a signature by signer for network,
// whatever rec's origin is. It returns the envelope and the record id.
func advSeal(t *testing.T, rec *ledger.Record, signer ed25519.PrivateKey, network string) ([]byte, ledger.ID) {
	t.Helper()
	raw, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	id := ledger.ID(sha256.Sum256(raw))
	env := append([]byte{0x82}, raw...)
	env = append(env, 0x58, ed25519.SignatureSize)
	env = append(env, ed25519.Sign(signer, ledger.SigMessage(network, id))...)
	return env, id
}

func advMine(t *testing.T, rec *ledger.Record, bits int) {
	t.Helper()
	if err := ledger.Mine(context.Background(), rec, bits); err != nil {
		t.Fatal(err)
	}
}

// advForged is an invalid record: its envelope, the check it must fail,
// and its id when it has one.
type advForged struct {
	name   string
	env    []byte
	reason string // the rejection reason the node counts; "" = not counted
	id     *ledger.ID
}

// advForgeries are records that a node must refuse: each is well-formed
// enough to reach the check named.
func advForgeries(t *testing.T, key ed25519.PrivateKey, victim *ledger.Identity) []advForged {
	t.Helper()
	pub := key.Public().(ed25519.PublicKey)
	var out []advForged
	add := func(name string, env []byte, reason string, id ledger.ID) {
		out = append(out, advForged{name: name, env: env, reason: reason, id: &id})
	}

	rec := advCore(t, pub, "note.text", time.Now())
	advMine(t, rec, advPowBits)
	env, id := advSeal(t, rec, key, advNetwork)
	env[len(env)-1] ^= 0x01
	add("flipped signature byte", env, "signature", id)

	rec = advCore(t, victim.Public(), "note.text", time.Now())
	advMine(t, rec, advPowBits)
	env, id = advSeal(t, rec, key, advNetwork)
	add("origin is another node's key", env, "signature", id)

	rec = advCore(t, pub, "note.text", time.Now())
	advMine(t, rec, advPowBits)
	env, id = advSeal(t, rec, key, "othernet")
	add("signed for another network", env, "signature", id)

	rec = advCore(t, pub, "note.text", time.Now())
	for rec.Nonce = 0; ; rec.Nonce++ {
		rid, err := rec.ComputeID()
		if err != nil {
			t.Fatal(err)
		}
		if ledger.LeadingZeroBits(rid) < advPowBits {
			break
		}
	}
	env, id = advSeal(t, rec, key, advNetwork)
	add("insufficient proof of work", env, "pow", id)

	rec = advCore(t, pub, "vote.cast", time.Now())
	advMine(t, rec, advPowBits)
	env, id = advSeal(t, rec, key, advNetwork)
	add("kind reserved for another originator", env, "originator", id)

	rec = advCore(t, pub, "note.text", time.Now())
	advMine(t, rec, advPowBits)
	env, id = advSeal(t, rec, key, advNetwork)
	// The signature as a byte string with a two-byte length: same record,
	// same signature, not the canonical envelope.
	nc := append(append(append([]byte{}, env[:len(env)-66]...), 0x59, 0x00, 0x40), env[len(env)-64:]...)
	add("non-canonical envelope", nc, "canonical", id)

	garbage := make([]byte, 300)
	rand.Read(garbage)
	garbage[0] = 0x82
	out = append(out, advForged{name: "garbage envelope", env: garbage, reason: "decode"})

	rec = advCore(t, pub, "note.text", time.Now())
	advMine(t, rec, advPowBits)
	env, id = advSeal(t, rec, key, advNetwork)
	add("truncated envelope", env[:len(env)-10], "decode", id)

	for _, f := range out {
		if f.reason == "decode" {
			continue
		}
		// Well-formed enough to get past decoding where intended.
		if _, err := ledger.DecodeSignedRecord(f.env); (err == nil) != (f.reason != "canonical") {
			t.Fatalf("forgery %q: decode: %v", f.name, err)
		}
	}
	return out
}

// advValid is a valid record of key's own, created at created.
func advValid(t *testing.T, key ed25519.PrivateKey, created time.Time) ([]byte, ledger.ID) {
	t.Helper()
	rec := advCore(t, key.Public().(ed25519.PublicKey), "note.text", created)
	advMine(t, rec, advPowBits)
	return advSeal(t, rec, key, advNetwork)
}

func advGossip(version, replication byte, env []byte) []byte {
	return append([]byte{version, replication}, env...)
}

func assertNotStored(t *testing.T, nodes []*advNode, what string, ids ...ledger.ID) {
	t.Helper()
	for _, n := range nodes {
		for _, id := range ids {
			if ok, err := n.chain.st.Has(id); ok || err != nil {
				t.Errorf("%s holds %s record %s (err %v)", n.name, what, id, err)
			}
		}
	}
}

// --- tests ---------------------------------------------------------------

// TestAdversaryGossip: forged, malformed and oversized gossip from peers
// that said hello correctly is rejected by every honest node, nothing of
// it is stored, and the honest nodes keep converging meanwhile.
func TestAdversaryGossip(t *testing.T) {
	g := advGenesis(t, 1)
	nodes := startAdvMesh(t, g, 3, time.Second)
	stop := keepPutting(t, nodes, 25*time.Millisecond)
	defer stop()

	var forged []ledger.ID
	// Each message, then wait until every honest node has counted its
	// rejection. GossipSub graylists a peer after about four invalid
	// messages (-100 × n² below -1000), so an attacker identity sends at
	// most three and the next message comes from a fresh one, as a
	// sybil attacker would.
	var att *advAttacker
	sent := 0
	send := func(name, reason string, data []byte) {
		t.Helper()
		if att == nil || sent == 3 {
			att = newAdvAttacker(t, advNetwork)
			att.join(g, nodes...)
			sent = 0
		}
		before := make([]map[string]uint64, len(nodes))
		for i, n := range nodes {
			before[i] = n.net.Stats().Rejected()
		}
		att.publish(data)
		sent++
		waitUntil(t, advWait, fmt.Sprintf("gossip %q rejected (%s) by every node", name, reason), func() bool {
			for i, n := range nodes {
				if n.net.Stats().Rejected()["gossip/"+reason] <= before[i]["gossip/"+reason] {
					return false
				}
			}
			return true
		})
	}

	_, mallory, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range advForgeries(t, mallory, nodes[0].chain.id) {
		send(f.name, f.reason, advGossip(p2p.GossipVersion, 0, f.env))
		if f.id != nil {
			forged = append(forged, *f.id)
		}
	}
	// A valid record under a wrong version byte, and other broken messages.
	env, id := advValid(t, mallory, time.Now())
	forged = append(forged, id)
	send("wrong version byte", "malformed", advGossip(0x02, 0, env))
	send("two bytes", "malformed", []byte{p2p.GossipVersion, 0})
	send("empty", "malformed", nil)
	big := make([]byte, ledger.MaxRecordSize+200)
	big[0] = 0x82
	send("over the gossip limit", "malformed", advGossip(p2p.GossipVersion, 0, big))

	// A valid record from an hour ahead is ignored, not stored, not held
	// against the sender (the clocks may be what is wrong).
	env, id = advValid(t, mallory, time.Now().Add(time.Hour))
	forged = append(forged, id)
	rejectedBefore := nodes[0].rejectedTotal()
	att.publish(advGossip(p2p.GossipVersion, 0, env))
	waitUntil(t, advWait, "future record ignored", func() bool {
		for _, n := range nodes {
			if !n.log.contains("record from the future ignored") {
				return false
			}
		}
		return true
	})
	if got := nodes[0].rejectedTotal(); got != rejectedBefore {
		t.Errorf("a record from the future was counted as invalid (%d → %d)", rejectedBefore, got)
	}

	// 200 KiB: over the honest nodes' GossipSub message limit, so it is
	// cut off below the validator and never counted.
	huge := newAdvAttacker(t, advNetwork)
	huge.join(g, nodes...)
	env, id = advValid(t, huge.key, time.Now())
	forged = append(forged, id)
	pad := make([]byte, 200<<10)
	huge.publish(advGossip(p2p.GossipVersion, 0, append(env, pad...)))

	// The honest nodes keep working through it all.
	stop()
	waitConverged(t, nodes)
	assertNotStored(t, nodes, "forged", forged...)
	for _, n := range nodes {
		rej := n.net.Stats().Rejected()
		for _, k := range []string{"gossip/signature", "gossip/pow", "gossip/originator", "gossip/canonical", "gossip/decode", "gossip/malformed"} {
			if rej[k] == 0 {
				t.Errorf("%s: no rejection counted as %s: %v", n.name, k, rej)
			}
		}
		if n.net.Stats().GossipAccepted.Load() == 0 {
			t.Errorf("%s accepted no gossip from its honest peers", n.name)
		}
		t.Logf("%s: %d records, rejected %v", n.name, n.chain.st.Count(), rej)
	}
}

// syncSession opens a sync stream to n, writes raw, closes its side and
// reads what comes back until the stream ends. It reports whether the
// stream was reset (as opposed to closed after a complete session), and
// the frame types the node sent.
func (a *advAttacker) syncSession(n *advNode, raw []byte) (reset bool, got []byte) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := a.h.NewStream(ctx, n.net.ID(), p2p.SyncProtocol(n.chain.g.Network))
	if err != nil {
		return true, nil
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(raw)
		if err == nil {
			err = s.CloseWrite()
		}
		werr <- err
	}()
	r := bufio.NewReader(s)
	for {
		typ, _, err := advReadFrame(r, 1<<21)
		if err != nil {
			<-werr
			// A clean end of the node's side is EOF; anything else (a
			// reset, or the connection going) is a cut-off session.
			return !errors.Is(err, io.EOF), got
		}
		got = append(got, typ)
	}
}

// TestAdversarySync: garbage, oversized and forged frames on the
// reconciliation protocol. The node cuts each broken session off, stores
// nothing, bans the peer once it has handed over enough invalid records,
// and the honest nodes keep converging.
func TestAdversarySync(t *testing.T) {
	g := advGenesis(t, 1)
	nodes := startAdvMesh(t, g, 3, time.Second)
	stop := keepPutting(t, nodes, 25*time.Millisecond)
	defer stop()
	target := nodes[1]

	att := newAdvAttacker(t, advNetwork)
	att.connect(target)
	// Before hello: no session at all.
	if reset, got := att.syncSession(target, advFrame(advDone, nil)); !reset || len(got) != 0 {
		t.Fatalf("sync before hello: reset %v, frames %x", reset, got)
	}
	att.hello(target, g)

	// Broken sessions: each must be reset, none held as invalid records.
	need33 := advFrame(advNeed, make([]byte, 33))
	needMany := advFrame(advNeed, make([]byte, 32*(8192+1)))
	var junk []byte // fixed, so a failure can be replayed
	for h := sha256.Sum256([]byte("junk")); len(junk) < 512; h = sha256.Sum256(h[:]) {
		junk = append(junk, h[:]...)
	}
	huge := binary.AppendUvarint(nil, 1<<40)
	huge = append(huge, advRecord, 0, 0, 0)
	overlong := bytes.Repeat([]byte{0xff}, 11)
	recInRecon := advFrame(advRecord, append([]byte{0}, make([]byte, 100)...))
	bigRecord := advFrame(advRecord, make([]byte, ledger.MaxRecordSize+2))
	broken := []struct {
		name      string
		raw       []byte
		keepsOpen bool // the node closes its side cleanly before it fails the session
	}{
		{"random bytes", junk, false},
		{"length prefix 1<<40", huge, false},
		{"overlong length varint", overlong, false},
		{"zero-length frame", []byte{0x00}, false},
		{"unknown frame type", advFrame(0x7f, []byte("x")), false},
		{"hello frame on the sync protocol", advFrame(advHello, []byte{0xa0}), false},
		{"NEED of 33 bytes", need33, false},
		{"NEED of too many ids", needMany, false},
		{"RECORD during reconciliation", recInRecon, false},
		{"DONE with a body", advFrame(advDone, []byte{1}), false},
		{"RECON that does not decode", advFrame(advRecon, []byte{0xff, 0xff, 0xff}), false},
		{"truncated frame", advFrame(advRecon, make([]byte, 100))[:50], false},
		{"RECORD frame over the limit", append(advFrame(advDone, nil), bigRecord...), false},
		{"END with a body", append(advFrame(advDone, nil), advFrame(advEnd, []byte{1})...), false},
		{"STORED missing", append(advFrame(advDone, nil), advFrame(advEnd, nil)...), true},
	}
	for _, b := range broken {
		failed := target.net.Stats().SyncFailed.Load()
		reset, _ := att.syncSession(target, b.raw)
		if !reset && !b.keepsOpen {
			t.Errorf("%s: session not reset", b.name)
		}
		waitUntil(t, advWait, b.name+": session counted as failed", func() bool {
			return target.net.Stats().SyncFailed.Load() > failed
		})
		if info, _ := target.peerInfo(att.h.ID()); info.Refused != "" || !info.Ready {
			t.Fatalf("%s: attacker refused (%q) or not ready for a broken frame, not an invalid record", b.name, info.Refused)
		}
	}
	if n := target.rejectedTotal(); n != 0 {
		t.Errorf("broken frames counted as %d invalid records", n)
	}

	// A complete, well-formed session that hands over only invalid
	// records: each is rejected, and the attacker is banned.
	var body []byte
	var forged []ledger.ID
	body = append(body, advFrame(advDone, nil)...)
	fs := advForgeries(t, att.key, target.chain.id)
	for _, f := range fs {
		body = append(body, advFrame(advRecord, append([]byte{0}, f.env...))...)
		if f.id != nil {
			forged = append(forged, *f.id)
		}
	}
	env, id := advValid(t, att.key, time.Now().Add(time.Hour)) // ignored, not counted
	forged = append(forged, id)
	body = append(body, advFrame(advRecord, append([]byte{0}, env...))...)
	body = append(body, advFrame(advRecord, []byte{7})...) // no envelope
	body = append(body, advFrame(advEnd, nil)...)
	body = append(body, advFrame(advStored, nil)...)
	if len(fs)+1 < 8 {
		t.Fatalf("only %d invalid records: not enough for a ban", len(fs)+1)
	}
	att.syncSession(target, body)

	waitUntil(t, advWait, "attacker banned and disconnected", func() bool {
		info, ok := target.peerInfo(att.h.ID())
		return ok && info.Refused != "" && !info.Connected &&
			att.h.Network().Connectedness(target.net.ID()) != network.Connected
	})
	info, _ := target.peerInfo(att.h.ID())
	t.Logf("attacker at %s: refused %q, connected %v", target.name, info.Refused, info.Connected)
	rej := target.net.Stats().Rejected()
	if n := target.rejectedTotal(); n < 8 {
		t.Errorf("%d rejections counted, want at least 8: %v", n, rej)
	}
	for _, k := range []string{"sync/signature", "sync/pow", "sync/originator", "sync/canonical", "sync/decode"} {
		if rej[k] == 0 {
			t.Errorf("no rejection counted as %s: %v", k, rej)
		}
	}

	// Banned: it cannot come back.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := att.h.Connect(ctx, advAddrInfo(t, target))
	cancel()
	if err == nil {
		waitUntil(t, advWait, "banned attacker's new connection dropped", func() bool {
			return att.h.Network().Connectedness(target.net.ID()) != network.Connected
		})
	}
	if target.ready(att.h.ID()) {
		t.Errorf("banned attacker is a ready peer again")
	}

	stop()
	waitConverged(t, nodes)
	assertNotStored(t, nodes, "forged", forged...)
}

// TestAdversarySyncCannotStarve: a peer holding sessions open is limited
// to a couple at a time, and the honest nodes keep reconciling.
func TestAdversarySyncCannotStarve(t *testing.T) {
	g := advGenesis(t, 1)
	nodes := startAdvMesh(t, g, 2, 200*time.Millisecond)
	target := nodes[0]
	att := newAdvAttacker(t, advNetwork)
	att.connect(target)
	att.hello(target, g)

	// Open sessions that never say anything.
	var streams []network.Stream
	for range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := att.h.NewStream(ctx, target.net.ID(), p2p.SyncProtocol(advNetwork))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		s.Write(advFrame(advNeed, nil)) // an empty NEED: valid, keeps the session waiting
		streams = append(streams, s)
	}
	defer func() {
		for _, s := range streams {
			s.Reset()
		}
	}()
	// Beyond the per-peer limit the node resets them; the others wait.
	waitUntil(t, advWait, "sessions beyond the limit reset", func() bool {
		resets := 0
		for _, s := range streams {
			s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			var b [1]byte
			var ne net.Error
			if _, err := s.Read(b[:]); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
				resets++
			}
		}
		return resets == len(streams)-2
	})
	// Records not gossiped (appended behind the network's back) still
	// reach the other node by reconciliation.
	payload, _ := ledger.EncodePayload(map[string]any{"quiet": true})
	rec, err := ledger.NewSignedRecord(context.Background(), target.chain.id, g, "note.text", payload, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := target.chain.st.Append(context.Background(), rec, 0, "local"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, advWait, "reconciliation despite the open sessions", func() bool {
		ok, _ := nodes[1].chain.st.Has(rec.ID)
		return ok
	})
}

// TestAdversaryGossipIDPoisoning: a message's id is the hash of its
// envelope, so a broken message carrying a valid record's envelope must
// not stand for the valid one. Otherwise a peer that sends the broken copy
// first makes the node drop the real record as a duplicate of a rejected
// message, and penalise the honest peers that forward it until it
// graylists them.
func TestAdversaryGossipIDPoisoning(t *testing.T) {
	g := advGenesis(t, 1)
	// Reconciliation only at connect: what arrives later comes by gossip.
	nodes := startAdvMesh(t, g, 2, time.Hour)
	h0, h1 := nodes[0], nodes[1]

	poisoner := newAdvAttacker(t, advNetwork)
	poisoner.join(g, h1)
	sender := newAdvAttacker(t, advNetwork)
	sender.join(g, h0)
	start := time.Now()

	// Warm-up: until a valid record sent to h0 reaches h1 by h0's
	// forwarding. GossipSub forwards along its mesh, which forms at its
	// heartbeats; a record forwarded before it has formed may reach h1
	// only by reconciliation, so send a fresh one now and then.
	var warm []ledger.ID
	waitUntil(t, advWait, "a record forwarded from h0 to h1", func() bool {
		for _, id := range warm {
			if ok, _ := h1.chain.st.Has(id); ok {
				return true
			}
		}
		if len(warm) == 0 || len(warm) < int(time.Since(start)/(500*time.Millisecond))+1 {
			env, id := advValid(t, sender.key, time.Now())
			sender.publish(advGossip(p2p.GossipVersion, 0, env))
			warm = append(warm, id)
		}
		return false
	})

	var ids []ledger.ID
	for i := range 4 {
		env, id := advValid(t, sender.key, time.Now())
		ids = append(ids, id)
		before := h1.net.Stats().Rejected()["gossip/malformed"]
		poisoner.publish(advGossip(0x02, 0, env))
		waitUntil(t, advWait, fmt.Sprintf("poison %d rejected by h1", i), func() bool {
			return h1.net.Stats().Rejected()["gossip/malformed"] > before
		})
		sender.publish(advGossip(p2p.GossipVersion, 0, env))
		waitUntil(t, advWait, fmt.Sprintf("record %d stored by h0", i), func() bool {
			ok, _ := h0.chain.st.Has(id)
			return ok
		})
	}
	waitUntil(t, 10*time.Second, "the poisoned records reach h1 by gossip", func() bool {
		for _, id := range ids {
			if ok, _ := h1.chain.st.Has(id); !ok {
				return false
			}
		}
		return true
	})
	// And h0 is still heard: its own records reach h1 by gossip.
	rec, err := h0.put(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "h0's record reaches h1 by gossip", func() bool {
		ok, _ := h1.chain.st.Has(rec.ID)
		return ok
	})
}

// TestAdversaryOtherNetwork: a node of another network (same name,
// another genesis) is refused at hello by the nodes it meets, no record
// crosses in either direction, and both networks keep working.
func TestAdversaryOtherNetwork(t *testing.T) {
	g1 := advGenesis(t, 1)
	g2 := advGenesis(t, 2) // same name, other rules: another genesis hash
	if g1.Hash() == g2.Hash() {
		t.Fatal("the two genesis files hash alike")
	}
	ours := startAdvMesh(t, g1, 2, 500*time.Millisecond)
	// The other network's first node dials one of ours; one of ours dials
	// the other network's second node: both directions of the hello.
	o0 := startAdvNode(t, "o0", g2, ours[0].net.Addrs(), 500*time.Millisecond)
	o1 := startAdvNode(t, "o1", g2, o0.net.Addrs(), 500*time.Millisecond)
	waitUntil(t, advWait, "other network's peers ready", func() bool { return o0.ready(o1.net.ID()) && o1.ready(o0.net.ID()) })
	theirs := []*advNode{o0, o1}

	stopOurs := keepPutting(t, ours, 20*time.Millisecond)
	stopTheirs := keepPutting(t, theirs, 20*time.Millisecond)
	defer stopOurs()
	defer stopTheirs()

	// A third node of ours dials both the other network's second node and
	// one of ours.
	ext := startAdvNode(t, "h2", g1, append(append([]string{}, o1.net.Addrs()...), ours[0].net.Addrs()...), 500*time.Millisecond)
	ours = append(ours, ext)

	waitUntil(t, advWait, "cross-network peers refused", func() bool {
		refused := func(n *advNode, p peer.ID) bool {
			info, ok := n.peerInfo(p)
			return ok && info.Refused != "" && !info.Ready
		}
		ok := refused(ours[0], o0.net.ID()) && refused(o0, ours[0].net.ID()) &&
			refused(ext, o1.net.ID()) && refused(o1, ext.net.ID())
		return ok
	})
	for _, n := range []*advNode{ours[0], o0, ext, o1} {
		if !n.log.contains("refusing peer") || !n.log.contains("another network") {
			t.Errorf("%s did not log the refusal", n.name)
		}
	}
	// Keep both running a while with the refused peers configured, over
	// several redial rounds: the gater keeps them out.
	waitUntil(t, advWait, "both networks putting on", func() bool {
		for _, n := range append(ours[:2:2], theirs...) {
			if len(n.putIDs()) < 40 {
				return false
			}
		}
		return true
	})
	stopOurs()
	stopTheirs()
	waitUntil(t, advWait, "ext ready with ours[0]", func() bool { return ext.ready(ours[0].net.ID()) })

	waitConverged(t, ours)
	waitConverged(t, theirs)
	for _, n := range theirs {
		assertNotStored(t, ours, "the other network's", n.putIDs()...)
	}
	for _, n := range ours {
		assertNotStored(t, theirs, "our network's", n.putIDs()...)
	}
	for _, pair := range [][2]*advNode{{ours[0], o0}, {ext, o1}, {o0, ours[0]}, {o1, ext}} {
		if pair[0].ready(pair[1].net.ID()) {
			t.Errorf("%s counts %s of another network as ready", pair[0].name, pair[1].name)
		}
	}
}

// TestAdversaryGossipWithoutHello: a peer that skips the hello exchange is
// of no known network; its gossip is not taken (nor held against it), as
// reconciliation refuses it a session. Once it has said hello, a valid
// record of its is taken like any other.
func TestAdversaryGossipWithoutHello(t *testing.T) {
	g := advGenesis(t, 1)
	nodes := startAdvMesh(t, g, 1, time.Hour)
	n := nodes[0]
	att := newAdvAttacker(t, advNetwork)
	att.connect(n)
	waitUntil(t, advWait, "attacker sees the node in the topic", func() bool {
		for _, p := range att.topic.ListPeers() {
			if p == n.net.ID() {
				return true
			}
		}
		return false
	})
	early, earlyID := advValid(t, att.key, time.Now())
	att.publish(advGossip(p2p.GossipVersion, 0, early))
	bad := advForgeries(t, att.key, n.chain.id)[0]
	att.publish(advGossip(p2p.GossipVersion, 0, bad.env))
	waitUntil(t, advWait, "gossip from before the hello ignored", func() bool {
		return n.net.Stats().GossipIgnored.Load() >= 2
	})

	att.hello(n, g)
	late, lateID := advValid(t, att.key, time.Now())
	att.publish(advGossip(p2p.GossipVersion, 0, late))
	waitUntil(t, advWait, "record gossiped after hello stored", func() bool {
		ok, _ := n.chain.st.Has(lateID)
		return ok
	})
	assertNotStored(t, nodes, "gossiped-before-hello", earlyID, *bad.id)
	if c := n.chain.st.Count(); c != 1 {
		t.Errorf("node holds %d records, want 1", c)
	}
	if r := n.net.Stats().Rejected(); len(r) != 0 {
		t.Errorf("gossip from before the hello counted as rejected: %v", r)
	}
}
