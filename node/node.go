package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/mdp/qrterminal/v3"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/nodelog"
	"github.com/pyvnode/pyvnode/p2p"
	"github.com/pyvnode/pyvnode/protocol"
	"github.com/pyvnode/pyvnode/protocol/accounts"
	"github.com/pyvnode/pyvnode/protocol/files"
	"github.com/pyvnode/pyvnode/web"
)

// DefaultListen is the client protocol's address unless told otherwise.
const DefaultListen = "127.0.0.1:6666"

// Config is what a node needs to start. The zero value of a field means its
// default.
type Config struct {
	// DataDir is the node's state. Default DefaultDataDir.
	DataDir string
	// Listen is the client protocol's TCP address. Default DefaultListen;
	// "-" turns the client protocol off.
	Listen string
	// Dev lets users log in without their TOTP code.
	Dev bool
	// Limits for client sessions.
	Limits protocol.Limits
	// Version of the software, shown to clients.
	Version string
	// Logger for everything the node does. Default slog.Default().
	Logger *slog.Logger
	// P2PListen are the libp2p listen multiaddrs. Default
	// p2p.DefaultListen; ["-"] turns replication off.
	P2PListen []string
	// Peers are multiaddrs (with /p2p/<peer id>) dialled and kept
	// connected, besides those in the data directory's peers.json.
	Peers []string
	// SyncInterval is how often each peer is reconciled. Default 30 s.
	SyncInterval time.Duration
	// Replication is the replication log. Default Logger.
	Replication *slog.Logger
	// LogHub receives live log entries for the control panel; nil means
	// none.
	LogHub *nodelog.Hub
	// HTTP is the control panel's, read API's and metrics' address
	// (web.DefaultListen by default in the CLI); "" or "-" turns HTTP off.
	HTTP string
	// HTTPHosts are the host names the HTTP side answers to besides
	// loopback names and its listen address (the names a reverse proxy
	// serves it as). Without them a node on loopback answers only to
	// loopback names, and one on another address to any name.
	HTTPHosts []string
	// Out receives what is printed once for the operator on first start
	// (the admin's one-time password and TOTP QR code). Default io.Discard.
	Out io.Writer
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if len(c.P2PListen) == 0 {
		c.P2PListen = []string{p2p.DefaultListen}
	}
	if c.Replication == nil {
		c.Replication = c.Logger
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}

// Node is a running pyvnode node.
type Node struct {
	cfg      Config
	log      *slog.Logger
	data     *Data
	accounts *accounts.Store
	files    *files.Store
	peers    *Peers
	server   *protocol.Server
	net      *p2p.Network
	ln       net.Listener
	served   chan error
	apps     *apps.Engine
	warm     chan struct{} // closed when the applications' index has read the chain
	stopWarm context.CancelFunc
	started  time.Time
	web      *web.Server
	httpLn   net.Listener
	httpDone chan error
}

// Start opens the node's data directory, initialising it on first start,
// and starts every part of the node.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	cfg.setDefaults()
	log := cfg.Logger.With("component", "node")
	if !Initialized(cfg.DataDir) {
		id, g, _, err := Init(cfg.DataDir, InitOptions{})
		if err != nil {
			return nil, fmt.Errorf("initialise %s: %w", cfg.DataDir, err)
		}
		log.Info("initialised new data directory", "dir", cfg.DataDir, "network", g.Network,
			"node_id", id.ID().String(), "fingerprint", id.ID().Fingerprint())
	}
	g, err := ledger.LoadGenesis(GenesisPath(cfg.DataDir))
	if err != nil {
		return nil, err
	}
	added, err := EnsureAdmin(cfg.DataDir, g)
	if err != nil {
		return nil, fmt.Errorf("create the admin account: %w", err)
	}
	if added != nil {
		PrintAdmin(cfg.Out, cfg.DataDir, added)
	}
	data, err := OpenData(cfg.DataDir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, data: data, started: time.Now()}
	n.apps = apps.NewEngine(data.Genesis.Network, data.Store, n.putAt)
	if n.peers, err = OpenPeers(PeersPath(cfg.DataDir)); err != nil {
		data.Close()
		return nil, err
	}
	if err := n.startP2P(ctx); err != nil {
		data.Close()
		return nil, err
	}
	if err := n.startProtocol(); err != nil {
		if n.net != nil {
			n.net.Close()
		}
		data.Close()
		return nil, err
	}
	// Read the chain into the applications' index now rather than on the
	// first tally or vote.
	var warmCtx context.Context
	warmCtx, n.stopWarm = context.WithCancel(context.Background())
	n.warm = make(chan struct{})
	go func() {
		defer close(n.warm)
		start := time.Now()
		x, err := n.apps.Index(warmCtx)
		if err != nil {
			if warmCtx.Err() == nil {
				log.Warn("applications index", "err", err)
			}
			return
		}
		log.Info("applications index ready", "height", x.Height(), "took", time.Since(start).Round(time.Millisecond).String())
	}()
	if err := n.startHTTP(); err != nil {
		n.Close()
		return nil, err
	}
	h := data.Store.Head()
	log.Info("node started", "node_id", data.Identity.ID().String(),
		"fingerprint", data.Identity.ID().Fingerprint(), "network", data.Genesis.Network,
		"height", h.Size, "root", h.Root.String(), "data", cfg.DataDir, "client_addr", n.ClientAddr(),
		"http_addr", n.HTTPAddr(), "dev", cfg.Dev)
	return n, nil
}

// PrintAdmin shows the operator the new admin account, once.
func PrintAdmin(w io.Writer, dir string, a *accounts.Added) {
	fmt.Fprintf(w, "\nCreated the admin account. Its one-time password is\n\n    %s\n\n", a.Password)
	fmt.Fprintf(w, "(also in %s, mode 0600; delete it once you have changed the password).\n", AdminPasswordPath(dir))
	if a.TOTP != nil {
		fmt.Fprintf(w, "Scan this with an authenticator app for the admin's one-time codes:\n\n")
		qrterminal.GenerateHalfBlock(a.TOTP.URI, qrterminal.L, w)
		fmt.Fprintf(w, "\n%s\n\n", a.TOTP.URI)
	}
}

func (n *Node) startProtocol() error {
	if n.cfg.Listen == "-" {
		return nil
	}
	var err error
	if n.accounts, err = OpenAccounts(n.cfg.DataDir, n.data.Genesis); err != nil {
		return err
	}
	if n.files, err = files.Open(FilesDir(n.cfg.DataDir), n.quota); err != nil {
		return err
	}
	cfg := protocol.Config{
		Backend: n, Accounts: n.accounts, Files: n.files, Peers: n.peers, Apps: n.apps,
		Dev: n.cfg.Dev, Limits: n.cfg.Limits, Logger: n.cfg.Logger, Version: n.cfg.Version,
	}
	if n.net != nil {
		cfg.Replicator = replicator{n}
	}
	n.server, err = protocol.NewServer(cfg)
	if err != nil {
		return err
	}
	if n.ln, err = net.Listen("tcp", n.cfg.Listen); err != nil {
		return fmt.Errorf("client protocol: %w", err)
	}
	n.served = make(chan error, 1)
	go func() { n.served <- n.server.Serve(n.ln) }()
	return nil
}

func (n *Node) quota(user string) int64 {
	if u, err := n.accounts.Get(user); err == nil {
		return u.Quota
	}
	return 0
}

// ClientAddr is where the client protocol listens ("" when it is off).
func (n *Node) ClientAddr() string {
	if n.ln == nil {
		return ""
	}
	return n.ln.Addr().String()
}

// Run serves until ctx is cancelled, then stops the node cleanly.
func (n *Node) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case err := <-n.served:
		if err != nil {
			n.log.Error("client protocol stopped", "err", err)
			n.Close()
			return err
		}
	}
	n.log.Info("stopping")
	return n.Close()
}

// Close stops the node: sessions finish the requests they are running
// (appends included, up to 30 s), then the chain is closed.
func (n *Node) Close() error {
	n.stopHTTP()
	if n.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := n.server.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			n.log.Error("stop client protocol", "err", err)
		}
		cancel()
		n.server = nil
	}
	if n.net != nil {
		if err := n.net.Close(); err != nil {
			n.log.Error("stop p2p", "err", err)
		}
		n.net = nil
	}
	if n.warm != nil {
		n.stopWarm()
		<-n.warm
	}
	if err := n.data.Close(); err != nil {
		return fmt.Errorf("close chain: %w", err)
	}
	n.log.Info("stopped", "uptime", time.Since(n.started).Round(time.Millisecond).String())
	return nil
}

// Identity returns the node's identity.
func (n *Node) Identity() *ledger.Identity { return n.data.Identity }

// Genesis returns the network's genesis.
func (n *Node) Genesis() *ledger.Genesis { return n.data.Genesis }

// Store returns the node's chain.
func (n *Node) Store() *ledger.Store { return n.data.Store }

// Accounts returns the node's accounts (nil when the protocol is off).
func (n *Node) Accounts() *accounts.Store { return n.accounts }

// Put makes a new record of this node (mine, sign) and appends it durably.
// The network side hears of it at once: it is gossiped with replication
// count 0.
func (n *Node) Put(ctx context.Context, kind string, payload cbor.RawMessage, author string) (*ledger.SignedRecord, ledger.Entry, error) {
	return n.putAt(ctx, kind, payload, author, time.Now())
}

func (n *Node) putAt(ctx context.Context, kind string, payload cbor.RawMessage, author string, created time.Time) (*ledger.SignedRecord, ledger.Entry, error) {
	rec, e, err := PutAt(ctx, n.data, kind, payload, author, created)
	if err == nil && n.net != nil {
		n.net.Added(ctx, rec)
	}
	return rec, e, err
}

// Apps is the node's application engine: it checks application records
// against the rules and computes tallies and reports.
func (n *Node) Apps() *apps.Engine { return n.apps }

// Put makes, mines, signs and durably appends a record on an opened data
// directory.
func Put(ctx context.Context, d *Data, kind string, payload cbor.RawMessage, author string) (*ledger.SignedRecord, ledger.Entry, error) {
	return PutAt(ctx, d, kind, payload, author, time.Now())
}

// PutAt is Put with the creation time given.
func PutAt(ctx context.Context, d *Data, kind string, payload cbor.RawMessage, author string, created time.Time) (*ledger.SignedRecord, ledger.Entry, error) {
	rec, err := ledger.NewSignedRecord(ctx, d.Identity, d.Genesis, kind, payload, author, created)
	if err != nil {
		return nil, ledger.Entry{}, err
	}
	e, err := d.Store.Append(ctx, rec, 0, "local")
	if err != nil && !errors.Is(err, ledger.ErrExists) {
		return nil, ledger.Entry{}, err
	}
	return rec, e, nil
}

var _ protocol.Backend = (*Node)(nil)
