// Package p2p is pyvnode's network side: a libp2p host whose identity is
// the node's Ed25519 key, GossipSub for new records ("replicate when
// received"), and a stream protocol that reconciles record sets with each
// peer ("I have / you have", package recon). It is the only package that
// imports go-libp2p. docs/REPLICATION.md describes its bytes and rules.
//
// Nothing here reaches beyond the addresses it is given: no public
// bootstrap peers, no DHT, no relays, no NAT port mapping, and no mDNS.
package p2p

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/p2p/recon"
)

// DefaultListen is the p2p address unless told otherwise.
const DefaultListen = "/ip4/127.0.0.1/tcp/6667"

// Config configures the network side of a node. Zero values mean defaults.
type Config struct {
	// Listen addresses (multiaddrs). Default DefaultListen.
	Listen []string
	// Peers to dial and keep dialling (multiaddrs with /p2p/<peer id>).
	Peers []string
	// PeerSource, when set, is read at every redial round for more peers
	// (the ones an admin added with 'peer add').
	PeerSource func() []string
	// SyncInterval is how often each peer is reconciled. Default 30 s.
	SyncInterval time.Duration
	// RedialInterval is the first wait before dialling a lost peer again;
	// it doubles up to a minute. Default 1 s.
	RedialInterval time.Duration
	// MaxFutureSkew refuses records created further in the future.
	// Default 10 minutes.
	MaxFutureSkew time.Duration
	// Logger for the node log; Replication for the replication log.
	// Default slog.Default().
	Logger      *slog.Logger
	Replication *slog.Logger
	// Version is announced to peers.
	Version string
	// Stored, when set, is called for every record a peer handed over
	// (by gossip or reconciliation) once it is durably in the chain.
	Stored func(*ledger.SignedRecord, ledger.Entry)
	// RecordCheck, when set, is asked of every record from a peer after
	// the ledger's checks (the applications' payload schemas); a record it
	// refuses counts as invalid.
	RecordCheck func(*ledger.SignedRecord) error
}

func (c *Config) setDefaults() {
	if len(c.Listen) == 0 {
		c.Listen = []string{DefaultListen}
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = 30 * time.Second
	}
	if c.RedialInterval <= 0 {
		c.RedialInterval = time.Second
	}
	if c.MaxFutureSkew <= 0 {
		c.MaxFutureSkew = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Replication == nil {
		c.Replication = c.Logger
	}
}

// Chain is what the network side needs from the node.
type Chain interface {
	Identity() *ledger.Identity
	Genesis() *ledger.Genesis
	Store() *ledger.Store
}

// Network is a running libp2p host with gossip and reconciliation.
type Network struct {
	cfg       Config
	chain     Chain
	log       *slog.Logger
	rlog      *slog.Logger
	host      host.Host
	ps        *pubsub.PubSub
	topic     *pubsub.Topic
	sub       *pubsub.Subscription
	validator *ledger.Validator
	syncProto protocol.ID

	setMu   sync.Mutex
	set     *recon.Set
	indexed uint64 // chain entries below this height are in set

	peersMu sync.Mutex
	peers   map[peer.ID]*peerState
	gater   *gater

	dialMu sync.Mutex
	dials  map[peer.ID]*dialTarget

	outbox chan *ledger.SignedRecord

	lifeMu  sync.Mutex
	closing bool
	inbound int // sync sessions peers run with us (under peersMu)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stats Stats
}

// Topic is the gossip topic of a network.
func Topic(network string) string { return "/pyv/" + network + "/records/1" }

// SyncProtocol is the reconciliation stream protocol of a network.
func SyncProtocol(network string) protocol.ID { return protocol.ID("/pyv/" + network + "/sync/1") }

// HelloProtocol carries the network check made on every new connection.
const HelloProtocol = protocol.ID("/pyv/hello/1")

// PeerID is the libp2p peer id of a node identity.
func PeerID(id *ledger.Identity) (peer.ID, error) {
	k, err := crypto.UnmarshalEd25519PrivateKey(id.Key)
	if err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(k)
}

// PeerIDOf is the libp2p peer id of a node id.
func PeerIDOf(node ledger.NodeID) (peer.ID, error) {
	pub, err := crypto.UnmarshalEd25519PublicKey(node[:])
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(pub)
}

// Start builds the host, joins the network's topic, opens the sync
// protocol and starts dialling the configured peers.
func Start(ctx context.Context, chain Chain, cfg Config) (*Network, error) {
	cfg.setDefaults()
	priv, err := crypto.UnmarshalEd25519PrivateKey(chain.Identity().Key)
	if err != nil {
		return nil, fmt.Errorf("p2p identity: %w", err)
	}
	for _, a := range append(append([]string{}, cfg.Listen...), cfg.Peers...) {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return nil, fmt.Errorf("address %q: %w", a, err)
		}
	}
	n := &Network{
		cfg: cfg, chain: chain,
		log:       cfg.Logger.With("component", "p2p"),
		rlog:      cfg.Replication.With("component", "replication"),
		validator: &ledger.Validator{Genesis: chain.Genesis(), MaxFutureSkew: cfg.MaxFutureSkew, Extra: cfg.RecordCheck},
		syncProto: SyncProtocol(chain.Genesis().Network),
		peers:     map[peer.ID]*peerState{},
		gater:     newGater(),
		dials:     map[peer.ID]*dialTarget{},
		outbox:    make(chan *ledger.SignedRecord, publishQueue),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	// Only what is configured: TCP, Noise, yamux; no relay, no NAT port
	// mapping, no QUIC or WebSocket, no DHT or mDNS (never added).
	n.host, err = libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.ConnectionGater(n.gater),
		libp2p.DisableMetrics(),
		libp2p.UserAgent("pyvnode/"+cfg.Version),
	)
	if err != nil {
		n.cancel()
		return nil, fmt.Errorf("p2p host: %w", err)
	}
	if err := n.buildSet(ctx); err != nil {
		n.host.Close()
		n.cancel()
		return nil, err
	}
	n.host.SetStreamHandler(HelloProtocol, n.handleHello)
	n.host.SetStreamHandler(n.syncProto, n.handleSync)
	n.host.Network().Notify(&notifiee{n})
	if err := n.startGossip(); err != nil {
		n.host.Close()
		n.cancel()
		return nil, err
	}
	n.wg.Add(2)
	go n.dialLoop()
	go n.publisher()
	n.log.Info("p2p listening", "peer_id", n.host.ID().String(), "addrs", fmt.Sprint(n.Addrs()))
	return n, nil
}

// buildSet loads the (creation time, id) of every record for
// reconciliation.
func (n *Network) buildSet(ctx context.Context) error {
	n.setMu.Lock()
	defer n.setMu.Unlock()
	n.set = recon.NewSet()
	if err := n.catchUpLocked(ctx); err != nil {
		return fmt.Errorf("p2p: load record set: %w", err)
	}
	return nil
}

// catchUpLocked adds the chain's entries the set has not seen yet: records
// appended by any path reach reconciliation, not only those the network
// side was told of.
func (n *Network) catchUpLocked(ctx context.Context) error {
	st := n.chain.Store()
	if st.Count() <= n.indexed {
		return nil
	}
	return st.Iterate(ctx, n.indexed, func(r *ledger.SignedRecord, e ledger.Entry) error {
		n.set.Insert(recon.Item{T: uint64(r.Created), ID: r.ID})
		n.indexed = e.Height + 1
		return nil
	})
}

// Added tells the network side about a record appended by the node itself
// (a client's put): it joins the reconciliation set and is gossiped with
// replication count 0.
//
// Publishing happens on a goroutine of its own, so a client's put does not
// wait for GossipSub. When more than publishQueue records wait, the rest
// are left to reconciliation, which carries them on the next sync.
func (n *Network) Added(ctx context.Context, rec *ledger.SignedRecord) {
	n.insert(rec)
	select {
	case n.outbox <- rec:
	default:
		n.stats.PublishSkipped.Add(1)
	}
}

// publishQueue bounds the records waiting to be gossiped.
const publishQueue = 4096

func (n *Network) publisher() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case rec := <-n.outbox:
			if err := n.publish(n.ctx, rec, 0); err != nil && n.ctx.Err() == nil {
				n.rlog.Warn("publish", "id", rec.ID.String(), "err", err)
			}
		}
	}
}

func (n *Network) insert(rec *ledger.SignedRecord) {
	n.setMu.Lock()
	n.set.Insert(recon.Item{T: uint64(rec.Created), ID: rec.ID})
	n.setMu.Unlock()
}

// ID is this host's peer id.
func (n *Network) ID() peer.ID { return n.host.ID() }

// Addrs are the full multiaddrs (with /p2p/<id>) others can dial.
func (n *Network) Addrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.String()+"/p2p/"+n.host.ID().String())
	}
	return out
}

// Connected lists the peers connected now.
func (n *Network) Connected() []peer.ID {
	var out []peer.ID
	for _, p := range n.host.Network().Peers() {
		if n.host.Network().Connectedness(p) == network.Connected {
			out = append(out, p)
		}
	}
	return out
}

// track counts a goroutine Close must wait for, unless Close has begun.
func (n *Network) track() bool {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.closing {
		return false
	}
	n.wg.Add(1)
	return true
}

// Close stops everything.
func (n *Network) Close() error {
	n.lifeMu.Lock()
	n.closing = true
	n.lifeMu.Unlock()
	n.cancel()
	if n.sub != nil {
		n.sub.Cancel()
	}
	err := n.host.Close()
	n.wg.Wait()
	if n.topic != nil {
		n.topic.Close()
	}
	return err
}

// Stats returns the network side's counters.
func (n *Network) Stats() *Stats { return &n.stats }

// Disconnect drops the connections to a peer (tests partition with it).
func (n *Network) Disconnect(p peer.ID) error { return n.host.Network().ClosePeer(p) }

var errClosed = errors.New("network closed")

// SetDigest summarises the record set: its size and the fingerprint of the
// whole set (package recon). Two nodes hold the same records exactly when
// their digests match.
func (n *Network) SetDigest() (int, string) {
	n.setMu.Lock()
	defer n.setMu.Unlock()
	n.catchUpLocked(n.ctx)
	fp := n.set.Fingerprint(0, n.set.Len())
	return n.set.Len(), hex.EncodeToString(fp[:])
}
