package protocol

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/internal/fsutil"
	"github.com/pyvnode/pyvnode/ledger"
)

// Client errors.
var (
	// ErrNodeChanged: the server's identity differs from the one this
	// client remembered for the address (docs/PROTOCOL.md §2, trust on
	// first use).
	ErrNodeChanged = errors.New("node identity changed")
	// ErrWrongNode: the server is not the node the client was told to expect.
	ErrWrongNode = errors.New("not the expected node")
	// ErrClosed: the session has ended.
	ErrClosed = errors.New("session closed")
)

// Options configure a client. Zero values mean defaults.
type Options struct {
	// KnownNodes is the trust-on-first-use file. Default
	// <user config dir>/pyvnode/known_nodes.
	KnownNodes string
	// ExpectNode pins the node: any other identity is refused and the
	// known-nodes file is neither read nor written.
	ExpectNode *ledger.NodeID
	// AcceptNewKey accepts and remembers a changed identity.
	AcceptNewKey bool
	// OnNewNode is told when an identity is first remembered (or replaced
	// with AcceptNewKey), so a program can show the fingerprint.
	OnNewNode func(addr string, node ServerIdentity, replaced *ledger.NodeID)
	// DialTimeout bounds connecting and the handshake. Default 10 s.
	DialTimeout time.Duration
	// MaxMessage bounds the responses read. Default 64 MiB.
	MaxMessage int
	// Software names the client in the handshake.
	Software string
}

// DefaultKnownNodes is the default trust-on-first-use file.
func DefaultKnownNodes() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "pyvnode", "known_nodes"), nil
}

// Client is a session with a node. It is safe for concurrent use: calls
// from several goroutines are pipelined on the one connection.
type Client struct {
	conn *Conn
	addr string
	// Node is the server's verified identity.
	Node ServerIdentity

	next atomic.Uint64

	// rand makes rekey keys; crypto/rand unless a test sets it.
	rand io.Reader

	mu      sync.Mutex
	pending map[uint64]chan *Response
	rekey   *pendingRekey
	err     error
	done    chan struct{}
}

type pendingRekey struct {
	id   uint64
	priv *ecdh.PrivateKey
	// sendKey hands the new client-to-server key to the waiting Rekey.
	sendKey chan [32]byte
}

// Dial connects, runs the handshake and checks the node's identity.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.MaxMessage <= 0 {
		opts.MaxMessage = 64 << 20
	}
	ctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	c, err := ClientHandshake(nc, HandshakeConfig{MaxMessage: opts.MaxMessage, Software: opts.Software})
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	if err := checkTrust(addr, c.Peer, opts); err != nil {
		nc.Close()
		return nil, err
	}
	return newClient(c, addr), nil
}

// NewClient runs a session over an already established channel.
func newClient(c *Conn, addr string) *Client {
	cl := &Client{conn: c, addr: addr, Node: c.Peer, pending: map[uint64]chan *Response{}, done: make(chan struct{})}
	go cl.readLoop()
	return cl
}

// checkTrust applies the pin or the known-nodes file.
func checkTrust(addr string, peer ServerIdentity, opts Options) error {
	if opts.ExpectNode != nil {
		if peer.Node != *opts.ExpectNode {
			return fmt.Errorf("%w: %s answered as node %s (%s), expected %s", ErrWrongNode, addr, peer.Node.Short(), peer.Node.Fingerprint(), opts.ExpectNode.Short())
		}
		return nil
	}
	path := opts.KnownNodes
	if path == "" {
		var err error
		if path, err = DefaultKnownNodes(); err != nil {
			return fmt.Errorf("known nodes: %w (give a file, or pin the node with its id)", err)
		}
	}
	known, err := readKnownNodes(path)
	if err != nil {
		return err
	}
	old, seen := known[addr]
	switch {
	case seen && old == peer.Node:
		return nil
	case seen && !opts.AcceptNewKey:
		return fmt.Errorf("%w: %s was node %s (%s) and now answers as node %s (%s). "+
			"This could be a different node at that address, or someone in the middle. "+
			"If the change is expected, connect again with --accept-new-key (or edit %s)",
			ErrNodeChanged, addr, old.Short(), old.Fingerprint(), peer.Node.Short(), peer.Node.Fingerprint(), path)
	}
	known[addr] = peer.Node
	if err := writeKnownNodes(path, known); err != nil {
		return err
	}
	if opts.OnNewNode != nil {
		var replaced *ledger.NodeID
		if seen {
			replaced = &old
		}
		opts.OnNewNode(addr, peer, replaced)
	}
	return nil
}

// The known-nodes file has one line per address: "<host:port> <node id hex>".
func readKnownNodes(path string) (map[string]ledger.NodeID, error) {
	out := map[string]ledger.NodeID{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("known nodes: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		addr, id, ok := strings.Cut(line, " ")
		nid, err := ledger.ParseNodeID(strings.TrimSpace(id))
		if !ok || err != nil {
			return nil, fmt.Errorf("known nodes %s line %d: want \"host:port node-id\"", path, n)
		}
		out[addr] = nid
	}
	return out, sc.Err()
}

func writeKnownNodes(path string, known map[string]ledger.NodeID) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("known nodes: %w", err)
	}
	var b strings.Builder
	b.WriteString("# pyvnode known nodes: address and node id, trusted on first use\n")
	addrs := make([]string, 0, len(known))
	for a := range known {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s %s\n", a, known[a])
	}
	return fsutil.WriteFileAtomic(path, []byte(b.String()), 0o600)
}

func (c *Client) readLoop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		for id, ch := range c.pending {
			close(ch)
			delete(c.pending, id)
		}
		c.mu.Unlock()
		close(c.done)
	}()
	for {
		var msg []byte
		if msg, err = c.conn.ReadMessage(); err != nil {
			return
		}
		var resp Response
		if err = decMode.Unmarshal(msg, &resp); err != nil {
			err = fmt.Errorf("malformed response: %w", err)
			c.conn.Close()
			return
		}
		c.mu.Lock()
		ch := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		rk := c.rekey
		c.mu.Unlock()
		if rk != nil && rk.id == resp.ID {
			// Switch the receive key before reading the next frame.
			c2s, ok := c.finishRekey(rk, &resp)
			if !ok {
				err = errors.New("rekey failed")
				c.conn.Close()
				if ch != nil {
					ch <- &resp
				}
				return
			}
			rk.sendKey <- c2s
		}
		if ch != nil {
			ch <- &resp
		}
	}
}

func (c *Client) finishRekey(rk *pendingRekey, resp *Response) ([32]byte, bool) {
	var r rekeyResult
	if !resp.OK || decMode.Unmarshal(resp.Result, &r) != nil {
		return [32]byte{}, false
	}
	c2s, s2c, err := c.conn.rekeyDerive(rk.priv, r.E)
	if err != nil {
		return [32]byte{}, false
	}
	c.conn.recv = newCipherState(s2c)
	return c2s, true
}

// Pending is a request sent and not yet answered.
type Pending struct {
	c  *Client
	id uint64
	ch chan *Response
}

// Send sends a request without waiting for its answer (pipelining).
func (c *Client) Send(cmd string, args any) (*Pending, error) {
	raw, err := encodeArgs(args)
	if err != nil {
		return nil, err
	}
	id := c.next.Add(1)
	b, err := encMode.Marshal(Request{ID: id, Cmd: cmd, Args: raw})
	if err != nil {
		return nil, err
	}
	ch := make(chan *Response, 1)
	c.mu.Lock()
	if c.err != nil || c.isDone() {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", ErrClosed, err)
	}
	c.pending[id] = ch
	c.mu.Unlock()
	if err := c.conn.WriteMessage(b); err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return &Pending{c: c, id: id, ch: ch}, nil
}

func (c *Client) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Wait waits for the answer and decodes its result into result (which may
// be nil). A refusal comes back as an *Error.
func (p *Pending) Wait(ctx context.Context, result any) error {
	select {
	case resp, ok := <-p.ch:
		if !ok {
			return p.c.closedErr()
		}
		if !resp.OK {
			if resp.Error == nil {
				return &Error{Code: ErrInternal.Code, Message: "refused without an error"}
			}
			return resp.Error
		}
		if result != nil && len(resp.Result) > 0 {
			if err := cbor.Unmarshal(resp.Result, result); err != nil {
				return fmt.Errorf("decode %T: %w", result, err)
			}
		}
		return nil
	case <-ctx.Done():
		p.c.mu.Lock()
		delete(p.c.pending, p.id)
		p.c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return fmt.Errorf("%w: %v", ErrClosed, c.err)
	}
	return ErrClosed
}

// Call sends a request and waits for its answer.
func (c *Client) Call(ctx context.Context, cmd string, args, result any) error {
	p, err := c.Send(cmd, args)
	if err != nil {
		return err
	}
	return p.Wait(ctx, result)
}

// Rekey moves both directions to fresh keys with a new X25519 exchange.
// Other calls wait while it runs.
func (c *Client) Rekey(ctx context.Context) error {
	rnd := c.rand
	if rnd == nil {
		rnd = rand.Reader
	}
	priv, err := newX25519(rnd)
	if err != nil {
		return err
	}
	id := c.next.Add(1)
	b, err := encMode.Marshal(Request{ID: id, Cmd: "rekey", Args: mustEncode(rekeyArgs{E: priv.PublicKey().Bytes()})})
	if err != nil {
		return err
	}
	rk := &pendingRekey{id: id, priv: priv, sendKey: make(chan [32]byte, 1)}
	ch := make(chan *Response, 1)
	// Hold the write lock from the request until the new send key is in
	// place: nothing may be sent in between.
	c.conn.wmu.Lock()
	defer c.conn.wmu.Unlock()
	c.mu.Lock()
	if c.isDone() {
		c.mu.Unlock()
		return c.closedErr()
	}
	c.pending[id] = ch
	c.rekey = rk
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.rekey = nil
		c.mu.Unlock()
	}()
	if err := c.conn.writeLocked(b); err != nil {
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	select {
	case c2s := <-rk.sendKey:
		c.conn.send = newCipherState(c2s)
	case <-c.done:
		return c.closedErr()
	case <-ctx.Done():
		c.conn.Close() // the channel is in an unknown state
		return ctx.Err()
	}
	resp := <-ch
	if resp == nil || !resp.OK {
		return errors.New("rekey refused")
	}
	return nil
}

// Close ends the session.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// Done is closed when the session ends.
func (c *Client) Done() <-chan struct{} { return c.done }
