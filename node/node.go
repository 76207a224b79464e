package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/ledger"
)

// Config is what a node needs to start. The zero value of a field means its
// default.
type Config struct {
	// DataDir is the node's state. Default DefaultDataDir.
	DataDir string
	// Logger for everything the node does. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Node is a running pyvnode node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	data    *Data
	started time.Time
}

// Start opens the node's data directory, initialising it on first start, and
// starts every part of the node.
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
	data, err := OpenData(cfg.DataDir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, data: data, started: time.Now()}
	h := data.Store.Head()
	log.Info("node started", "node_id", data.Identity.ID().String(),
		"fingerprint", data.Identity.ID().Fingerprint(), "network", data.Genesis.Network,
		"height", h.Size, "root", h.Root.String(), "data", cfg.DataDir)
	return n, nil
}

// Run serves until ctx is cancelled, then stops the node cleanly.
func (n *Node) Run(ctx context.Context) error {
	<-ctx.Done()
	n.log.Info("stopping")
	return n.Close()
}

// Close stops the node: appends already accepted finish and are synced.
func (n *Node) Close() error {
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

// Put makes a new record of this node (mine, sign) and appends it durably.
func (n *Node) Put(ctx context.Context, kind string, payload cbor.RawMessage, author string) (*ledger.SignedRecord, ledger.Entry, error) {
	return Put(ctx, n.data, kind, payload, author)
}

// Put makes, mines, signs and durably appends a record on an opened data
// directory.
func Put(ctx context.Context, d *Data, kind string, payload cbor.RawMessage, author string) (*ledger.SignedRecord, ledger.Entry, error) {
	rec, err := ledger.NewSignedRecord(ctx, d.Identity, d.Genesis, kind, payload, author, time.Now())
	if err != nil {
		return nil, ledger.Entry{}, err
	}
	e, err := d.Store.Append(ctx, rec, 0, "local")
	if err != nil && !errors.Is(err, ledger.ErrExists) {
		return nil, ledger.Entry{}, err
	}
	return rec, e, nil
}
