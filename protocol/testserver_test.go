package protocol

// Shared helpers of the internal security, limits and fuzz tests: a server
// with an in-process backend on a loopback port, cheap accounts, and raw
// access to the secure channel so tests can forge, replay, reorder and
// truncate frames.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flynn/noise"
	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol/accounts"
	"github.com/pyvnode/pyvnode/protocol/files"
)

// memBackend is a Backend over a real chain store in a temporary directory
// (proof of work 0). When gate is set, every Put first takes a token from
// it, so a test can hold puts running.
type memBackend struct {
	id   *ledger.Identity
	g    *ledger.Genesis
	st   *ledger.Store
	gate chan struct{}
	puts atomic.Int64
}

func (b *memBackend) Identity() *ledger.Identity { return b.id }
func (b *memBackend) Genesis() *ledger.Genesis   { return b.g }
func (b *memBackend) Store() *ledger.Store       { return b.st }

func (b *memBackend) Put(ctx context.Context, kind string, payload cbor.RawMessage, author string) (*ledger.SignedRecord, ledger.Entry, error) {
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return nil, ledger.Entry{}, ctx.Err()
		}
	}
	rec, err := ledger.NewSignedRecord(ctx, b.id, b.g, kind, payload, author, time.Now())
	if err != nil {
		return nil, ledger.Entry{}, err
	}
	e, err := b.st.Append(ctx, rec, 0, "local")
	if err != nil && !errors.Is(err, ledger.ErrExists) {
		return nil, ledger.Entry{}, err
	}
	b.puts.Add(1)
	return rec, e, nil
}

type memPeers struct {
	mu    sync.Mutex
	peers []string
}

func (p *memPeers) List() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string{}, p.peers...)
}

func (p *memPeers) Add(a string) error {
	if a == "" || len(a) > 200 {
		return errors.New("bad peer address")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peers = append(p.peers, a)
	return nil
}

func (p *memPeers) Remove(a string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.peers {
		if x == a {
			p.peers = append(p.peers[:i], p.peers[i+1:]...)
			return nil
		}
	}
	return errors.New("no such peer")
}

// cheapParams keep Argon2id fast in tests; the cost is not what is tested.
var cheapParams = accounts.Params{MemoryKiB: 64, Time: 1, Threads: 1}

// testPasswords of the accounts every test server has.
var testPasswords = map[string]string{
	"admin":     "admin password 1",
	"writer":    "writer password 1",
	"reader":    "reader password 1",
	"authority": "authority password 1",
}

type serverOptions struct {
	limits Limits
	// totp makes the server require the second factor (not dev mode).
	totp bool
	acc  accounts.Options
	gate bool
	// static, when set, replaces the server's signed static key before it
	// serves (to present a forged identity).
	static func(id *ledger.Identity, network string) *StaticKey
	// listen is the address to listen on; default 127.0.0.1:0.
	listen string
	// quota of every user's files; default 1 MiB.
	quota int64
}

type testServer struct {
	*Server
	t      testing.TB
	addr   string
	be     *memBackend
	acc    *accounts.Store
	files  *files.Store
	dir    string
	secret map[string]string // TOTP secrets
	ln     net.Listener
	served chan error
	closed bool
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// looseConnLimits lift the per-address connection rate, which would
// otherwise refuse a test's quick succession of loopback connections.
func looseConnLimits(l Limits) Limits {
	if l.ConnRate == 0 {
		l.ConnRate = 10000
	}
	if l.ConnBurst == 0 {
		l.ConnBurst = 10000
	}
	return l
}

func startServer(t testing.TB, o serverOptions) *testServer {
	t.Helper()
	dir := t.TempDir()
	id, err := ledger.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	g := ledger.NewGenesis("sectest")
	g.PowBits = 0
	st, err := ledger.Open(ledger.Options{Dir: filepath.Join(dir, "chain"), Genesis: g, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ao := o.acc
	if ao.Params.MemoryKiB == 0 {
		ao.Params = cheapParams
	}
	if ao.FailureDelay == 0 {
		ao.FailureDelay = time.Millisecond
	}
	acc, err := accounts.Open(filepath.Join(dir, "users.json"), ao)
	if err != nil {
		t.Fatal(err)
	}
	secret := map[string]string{}
	for name, role := range map[string]accounts.Role{"admin": accounts.Admin, "writer": accounts.Writer, "reader": accounts.Reader, "authority": accounts.Authority} {
		added, err := acc.Add(name, role, testPasswords[name])
		if err != nil {
			t.Fatal(err)
		}
		secret[name] = added.TOTP.Secret
	}
	quota := o.quota
	if quota == 0 {
		quota = 1 << 20
	}
	fs, err := files.Open(filepath.Join(dir, "files"), func(string) int64 { return quota })
	if err != nil {
		t.Fatal(err)
	}
	be := &memBackend{id: id, g: g, st: st}
	if o.gate {
		be.gate = make(chan struct{}, 1024)
	}
	eng := apps.NewEngine(g.Network, st, func(ctx context.Context, kind string, payload cbor.RawMessage, author string, created time.Time) (*ledger.SignedRecord, ledger.Entry, error) {
		rec, err := ledger.NewSignedRecord(ctx, id, g, kind, payload, author, created)
		if err != nil {
			return nil, ledger.Entry{}, err
		}
		e, err := st.Append(ctx, rec, 0, "local")
		return rec, e, err
	})
	srv, err := NewServer(Config{Backend: be, Accounts: acc, Files: fs, Peers: &memPeers{}, Dev: !o.totp, Apps: eng,
		Limits: o.limits, Logger: discardLogger(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if o.static != nil {
		srv.static = o.static(id, g.Network)
	}
	listen := o.listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, t: t, addr: ln.Addr().String(), be: be, acc: acc, files: fs, dir: dir,
		secret: secret, ln: ln, served: make(chan error, 1)}
	go func() { ts.served <- srv.Serve(ln) }()
	t.Cleanup(ts.stop)
	return ts
}

// stop shuts the server down (it may be called before the cleanup does).
func (ts *testServer) stop() {
	if ts.closed {
		return
	}
	ts.closed = true
	if ts.be.gate != nil {
		close(ts.be.gate) // let held puts finish
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		ts.t.Errorf("Shutdown: %v", err)
	}
	if err := <-ts.served; err != nil {
		ts.t.Errorf("Serve: %v", err)
	}
	ts.be.st.Close()
}

// dial connects a Go client pinned to the server's node id.
func (ts *testServer) dial(t testing.TB) *Client {
	t.Helper()
	nid := ts.be.id.ID()
	c, err := Dial(context.Background(), ts.addr, Options{ExpectNode: &nid, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// login logs c in as one of the test accounts.
func (ts *testServer) login(t testing.TB, c *Client, user string) {
	t.Helper()
	if err := c.Call(context.Background(), "login", map[string]string{"user": user, "password": testPasswords[user]}, nil); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
}

// sessions is the number of open sessions.
func (ts *testServer) sessions() int { return ts.Stats().Sessions }

// waitSessions waits until the server has n sessions.
func (ts *testServer) waitSessions(t testing.TB, n int) {
	t.Helper()
	waitUntil(t, 5*time.Second, func() bool { return ts.sessions() == n }, "server to have %d sessions (has %d)", n, ts.sessions())
}

// waitUntil polls cond until it holds or the time is up.
func waitUntil(t testing.TB, within time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawConn is a client channel driven by hand: the test builds frames with
// the channel's own cipher states and writes the bytes it wants.
type rawConn struct {
	*Conn
	tcp *net.TCPConn
}

// dialRaw connects and completes the handshake, from a chosen local IP when
// local is not empty (any 127.0.0.0/8 address is loopback on Linux).
func (ts *testServer) dialRaw(t testing.TB, local string) *rawConn {
	t.Helper()
	nc := tcpDial(t, ts.addr, local)
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ClientHandshake(nc, HandshakeConfig{MaxMessage: 64 << 20})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	nc.SetDeadline(time.Time{})
	return &rawConn{Conn: c, tcp: nc}
}

func tcpDial(t testing.TB, addr, local string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc.(*net.TCPConn)
}

// sealFrame encrypts one frame with cs (advancing its nonce) and returns it
// with its length prefix.
func sealFrame(t testing.TB, cs *noise.CipherState, flags byte, data []byte) []byte {
	t.Helper()
	out := []byte{0, 0}
	out, err := cs.Encrypt(out, nil, append([]byte{flags}, data...))
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(out, uint16(len(out)-2))
	return out
}

// request encodes a request message.
func request(t testing.TB, id uint64, cmd string, args any) []byte {
	t.Helper()
	raw, err := encodeArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	b, err := encMode.Marshal(Request{ID: id, Cmd: cmd, Args: raw})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frame seals a whole request as one final frame with the connection's
// send state.
func (rc *rawConn) frame(t testing.TB, id uint64, cmd string, args any) []byte {
	return sealFrame(t, rc.send, flagFinal, request(t, id, cmd, args))
}

func (rc *rawConn) write(t testing.TB, b []byte) {
	t.Helper()
	if _, err := rc.tcp.Write(b); err != nil {
		// The server may already have closed the connection (an attack
		// under test); what follows checks what matters.
		t.Logf("write: %v", err)
	}
}

// call sends a request the ordinary way and reads one response.
func (rc *rawConn) call(t testing.TB, id uint64, cmd string, args any) Response {
	t.Helper()
	rc.write(t, rc.frame(t, id, cmd, args))
	return rc.response(t)
}

func (rc *rawConn) response(t testing.TB) Response {
	t.Helper()
	rc.tcp.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer rc.tcp.SetReadDeadline(time.Time{})
	msg, err := rc.ReadMessage()
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	var resp Response
	if err := decMode.Unmarshal(msg, &resp); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return resp
}

// expectClosed reads (and discards) until the server closes the
// connection; it fails the test if that takes longer than within. It
// returns how long it took.
func expectClosed(t testing.TB, nc net.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	nc.SetReadDeadline(start.Add(within))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not close the connection within %v", within)
	}
	return time.Since(start)
}

// expectOpen checks the server has not closed nc within d (nothing to read
// and no end of stream).
func expectOpen(t testing.TB, nc net.Conn, d time.Duration) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := nc.Read(b[:])
	nc.SetReadDeadline(time.Time{})
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connection not quietly open after %v: n=%d err=%v", d, n, err)
	}
}

// checkServed checks that c is still served.
func checkServed(t testing.TB, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var h HelloResult
	if err := c.Call(ctx, "hello", nil, &h); err != nil {
		t.Fatalf("honest client no longer served: %v", err)
	}
	if h.Session == "" {
		t.Fatalf("hello without a session id: %+v", h)
	}
}

// errCode is the protocol error code of err, or "" for none.
func errCode(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	if err != nil {
		return "non-protocol error: " + err.Error()
	}
	return ""
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
