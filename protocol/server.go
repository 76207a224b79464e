package protocol

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol/accounts"
	"github.com/pyvnode/pyvnode/protocol/files"
	"golang.org/x/time/rate"
)

// Backend is what the server needs from the node.
type Backend interface {
	Identity() *ledger.Identity
	Genesis() *ledger.Genesis
	Store() *ledger.Store
	// Put makes, mines, signs and durably appends a record of this node.
	Put(ctx context.Context, kind string, payload cbor.RawMessage, author string) (*ledger.SignedRecord, ledger.Entry, error)
}

// PeerBook keeps the peers an admin configured (used by replication).
type PeerBook interface {
	List() []string
	Add(addr string) error
	Remove(addr string) error
}

// Limits bound what clients can take. The zero value of a field means its
// default; an admin can change them at run time with the "limits" command.
type Limits struct {
	MaxConns         int     `cbor:"max_conns" json:"max_conns"`                   // open sessions; default 256
	MaxConnsPerAddr  int     `cbor:"max_conns_per_addr" json:"max_conns_per_addr"` // per source address; default 32
	ConnRate         float64 `cbor:"conn_rate" json:"conn_rate"`                   // new connections per second per address; default 20
	ConnBurst        int     `cbor:"conn_burst" json:"conn_burst"`                 // default 40
	HandshakeSeconds float64 `cbor:"handshake_seconds" json:"handshake_seconds"`   // default 5
	IdleSeconds      float64 `cbor:"idle_seconds" json:"idle_seconds"`             // default idle timeout; default 60
	MaxIdleSeconds   float64 `cbor:"max_idle_seconds" json:"max_idle_seconds"`     // the most 'timeout' may set; default 3600
	FrameSeconds     float64 `cbor:"frame_seconds" json:"frame_seconds"`           // to finish a started message; default 10
	MaxMessage       int     `cbor:"max_message" json:"max_message"`               // bytes; default 4 MiB
	MaxInflight      int     `cbor:"max_inflight" json:"max_inflight"`             // concurrent requests per session; default 64
	MaxFileChunk     int     `cbor:"max_file_chunk" json:"max_file_chunk"`         // bytes per file read or write; default 1 MiB
}

// DefaultLimits are the limits of a node started without settings.
func DefaultLimits() Limits {
	return Limits{
		MaxConns: 256, MaxConnsPerAddr: 32, ConnRate: 20, ConnBurst: 40,
		HandshakeSeconds: 5, IdleSeconds: 60, MaxIdleSeconds: 3600, FrameSeconds: 10,
		MaxMessage: DefaultMaxMessage, MaxInflight: 64, MaxFileChunk: 1 << 20,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	if l.MaxConnsPerAddr <= 0 {
		l.MaxConnsPerAddr = d.MaxConnsPerAddr
	}
	if l.ConnRate <= 0 {
		l.ConnRate = d.ConnRate
	}
	if l.ConnBurst <= 0 {
		l.ConnBurst = d.ConnBurst
	}
	if l.HandshakeSeconds <= 0 {
		l.HandshakeSeconds = d.HandshakeSeconds
	}
	if l.IdleSeconds <= 0 {
		l.IdleSeconds = d.IdleSeconds
	}
	if l.MaxIdleSeconds <= 0 {
		l.MaxIdleSeconds = d.MaxIdleSeconds
	}
	if l.FrameSeconds <= 0 {
		l.FrameSeconds = d.FrameSeconds
	}
	if l.MaxMessage <= 0 {
		l.MaxMessage = d.MaxMessage
	}
	if l.MaxInflight <= 0 {
		l.MaxInflight = d.MaxInflight
	}
	if l.MaxFileChunk <= 0 {
		l.MaxFileChunk = d.MaxFileChunk
	}
	return l
}

func (l Limits) validate() error {
	for _, f := range []float64{l.ConnRate, l.HandshakeSeconds, l.IdleSeconds, l.MaxIdleSeconds, l.FrameSeconds} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return errorf(ErrBadRequest, "limits must be finite numbers")
		}
	}
	switch {
	case l.ConnRate > 1e6, l.HandshakeSeconds > 300, l.FrameSeconds > 600:
		return errorf(ErrBadRequest, "limits out of range: conn_rate at most 1e6, handshake_seconds at most 300, frame_seconds at most 600")
	case l.MaxConns > 100_000, l.MaxConnsPerAddr > l.MaxConns, l.ConnBurst > 100_000,
		l.MaxInflight > 4096, l.MaxIdleSeconds > 86400, l.IdleSeconds > l.MaxIdleSeconds:
		return errorf(ErrBadRequest, "limits out of range")
	case l.MaxMessage < 64<<10 || l.MaxMessage > 64<<20:
		return errorf(ErrBadRequest, "max_message must be 64 KiB to 64 MiB")
	case l.MaxFileChunk < 4<<10 || l.MaxFileChunk > l.MaxMessage-4096:
		return errorf(ErrBadRequest, "max_file_chunk must be 4 KiB to max_message - 4 KiB")
	}
	return nil
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// Config configures a Server.
type Config struct {
	Backend  Backend
	Accounts *accounts.Store
	Files    *files.Store
	Peers    PeerBook
	// Replicator is the node's network side; nil when replication is off.
	Replicator Replicator
	// Apps checks and appends application records and computes their
	// views; nil refuses application kinds.
	Apps *apps.Engine
	// Dev runs without the second factor: a login needs no TOTP code.
	Dev    bool
	Limits Limits
	Logger *slog.Logger
	// Version is the node software's version, shown by "hello" and "ver".
	Version string
	// Rand is for tests only (deterministic keys in the transcript test).
	Rand io.Reader
}

// Server accepts client sessions.
type Server struct {
	cfg     Config
	log     *slog.Logger
	static  *StaticKey
	started time.Time
	limits  atomic.Pointer[Limits]

	mu       sync.Mutex
	ln       net.Listener
	sessions map[*session]struct{}
	perAddr  map[string]int
	limiters map[string]*rate.Limiter
	closing  bool
	wg       sync.WaitGroup

	stats struct {
		accepted, refused, handshakes, handshakeFailures atomic.Uint64
		logins, loginFailures                            atomic.Uint64
		bytesIn, bytesOut                                atomic.Uint64
	}
	puts putStats
}

// NewServer prepares a server: its Noise static key is made and signed now.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Backend == nil || cfg.Accounts == nil || cfg.Files == nil || cfg.Peers == nil {
		return nil, errors.New("protocol server: Backend, Accounts, Files and Peers are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	lim := cfg.Limits.withDefaults()
	if err := lim.validate(); err != nil {
		return nil, err
	}
	sk, err := NewStaticKey(cfg.Backend.Identity(), cfg.Backend.Genesis().Network, cfg.Rand)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger.With("component", "protocol"), static: sk, started: time.Now(),
		sessions: map[*session]struct{}{}, perAddr: map[string]int{}, limiters: map[string]*rate.Limiter{},
	}
	s.limits.Store(&lim)
	return s, nil
}

// Limits returns the limits in force.
func (s *Server) Limits() Limits { return *s.limits.Load() }

// SetLimits changes the limits for new requests and sessions.
func (s *Server) SetLimits(l Limits) error {
	l = l.withDefaults()
	if err := l.validate(); err != nil {
		return err
	}
	s.limits.Store(&l)
	return nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.ln = ln
	s.mu.Unlock()
	s.log.Info("client protocol listening", "addr", ln.Addr().String())
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !s.admit(nc) {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(nc)
		}()
	}
}

// admit applies the connection limits; a refused connection is closed at
// once.
func (s *Server) admit(nc net.Conn) bool {
	addr := hostOf(nc.RemoteAddr())
	lim := s.Limits()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[addr]
	if l == nil {
		if len(s.limiters) > 10_000 {
			clear(s.limiters) // bounded memory; the limits only get looser for a moment
		}
		l = rate.NewLimiter(rate.Limit(lim.ConnRate), lim.ConnBurst)
		s.limiters[addr] = l
	} else if l.Limit() != rate.Limit(lim.ConnRate) || l.Burst() != lim.ConnBurst {
		l.SetLimit(rate.Limit(lim.ConnRate)) // the limits were changed
		l.SetBurst(lim.ConnBurst)
	}
	reason := ""
	switch {
	case s.closing:
		reason = "shutting down"
	case len(s.sessions)+s.pendingLocked() >= lim.MaxConns:
		reason = "too many connections"
	case s.perAddr[addr] >= lim.MaxConnsPerAddr:
		reason = "too many connections from this address"
	case !l.Allow():
		reason = "connecting too fast"
	}
	if reason != "" {
		s.stats.refused.Add(1)
		s.log.Debug("connection refused", "addr", nc.RemoteAddr().String(), "reason", reason)
		nc.Close()
		return false
	}
	s.perAddr[addr]++
	s.stats.accepted.Add(1)
	return true
}

// pendingLocked counts connections admitted but not yet sessions; they are
// tracked in perAddr, so this is perAddr's total minus the sessions.
func (s *Server) pendingLocked() int {
	n := 0
	for _, c := range s.perAddr {
		n += c
	}
	return n - len(s.sessions)
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

func (s *Server) release(addr string) {
	s.mu.Lock()
	if s.perAddr[addr]--; s.perAddr[addr] <= 0 {
		delete(s.perAddr, addr)
	}
	s.mu.Unlock()
}

func (s *Server) handle(nc net.Conn) {
	addr := hostOf(nc.RemoteAddr())
	defer s.release(addr)
	defer nc.Close()
	lim := s.Limits()
	nc.SetDeadline(time.Now().Add(seconds(lim.HandshakeSeconds)))
	c, err := ServerHandshake(countingConn{nc, s}, s.static, HandshakeConfig{Rand: s.cfg.Rand, MaxMessage: lim.MaxMessage})
	if err != nil {
		s.stats.handshakeFailures.Add(1)
		s.log.Debug("handshake failed", "addr", nc.RemoteAddr().String(), "err", err)
		return
	}
	s.stats.handshakes.Add(1)
	nc.SetDeadline(time.Time{})
	sess := newSession(s, c, addr)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
	}()
	sess.run()
}

// Shutdown stops accepting, lets every session finish the requests it is
// running (until ctx ends), then closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	ln := s.ln
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, sess := range sessions {
		sess.stopReading()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sess := range s.sessions {
			sess.conn.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Sessions          int    `cbor:"sessions" json:"sessions"`
	Accepted          uint64 `cbor:"accepted" json:"accepted"`
	Refused           uint64 `cbor:"refused" json:"refused"`
	Handshakes        uint64 `cbor:"handshakes" json:"handshakes"`
	HandshakeFailures uint64 `cbor:"handshake_failures" json:"handshake_failures"`
	Logins            uint64 `cbor:"logins" json:"logins"`
	LoginFailures     uint64 `cbor:"login_failures" json:"login_failures"`
	BytesIn           uint64 `cbor:"bytes_in" json:"bytes_in"`
	BytesOut          uint64 `cbor:"bytes_out" json:"bytes_out"`
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.sessions)
	s.mu.Unlock()
	return Stats{
		Sessions: n, Accepted: s.stats.accepted.Load(), Refused: s.stats.refused.Load(),
		Handshakes: s.stats.handshakes.Load(), HandshakeFailures: s.stats.handshakeFailures.Load(),
		Logins: s.stats.logins.Load(), LoginFailures: s.stats.loginFailures.Load(),
		BytesIn: s.stats.bytesIn.Load(), BytesOut: s.stats.bytesOut.Load(),
	}
}

// countingConn counts the bytes a session moves.
type countingConn struct {
	net.Conn
	s *Server
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.s.stats.bytesIn.Add(uint64(n))
	return n, err
}

// CloseWrite half-closes a TCP connection.
func (c countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.s.stats.bytesOut.Add(uint64(n))
	return n, err
}

func newSessionID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errTooManyFiles is accept's error when the process is out of file
// descriptors: worth waiting out, not fatal.
var errTooManyFiles = syscall.EMFILE
