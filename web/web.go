// Package web is the node's HTTP side: the public read-only JSON API under
// /api/, the control panel (embedded assets at /), live streams of records
// and logs (server-sent events), the panel's login and admin actions, and
// the Prometheus handler at /metrics. docs/HTTP.md describes every
// endpoint.
//
// The handlers only read the node through the parts given in Config; the
// node owns the listener's life.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/nodelog"
	"github.com/pyvnode/pyvnode/protocol"
	"github.com/pyvnode/pyvnode/protocol/accounts"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// DefaultListen is where the panel and API listen unless told otherwise.
const DefaultListen = "127.0.0.1:6680"

// Limits of the API.
const (
	DefaultPage    = 50
	MaxPage        = 500
	MaxPageBytes   = 4 << 20
	MaxBody        = 64 << 10
	MaxLiveStreams = 64
	// MaxStreamsPerAddr bounds the live record streams of one client
	// address, so a few clients cannot take every slot.
	MaxStreamsPerAddr = 8
	// MaxLogStreams bounds the admins' live log streams; they have their
	// own slots, so the public streams cannot shut an admin out.
	MaxLogStreams = 8
	// MaxPageBuilds bounds the record pages built at once (each may hold
	// up to MaxPageBytes).
	MaxPageBuilds = 8
	MaxLogBacklog = 2000
)

// SubmitFunc appends a record for a logged-in user, through the
// applications' rules for their kinds.
type SubmitFunc func(ctx context.Context, u accounts.Public, kind string, payload cbor.RawMessage) (*ledger.SignedRecord, ledger.Entry, error)

// PeerBook is the configured peer list.
type PeerBook interface {
	List() []string
	Add(addr string) error
	Remove(addr string) error
}

// Config is what the HTTP side reads and acts on. Store, Identity and
// Genesis are required; a nil optional part turns its endpoints into
// 503 unavailable.
type Config struct {
	Store    *ledger.Store
	Identity *ledger.Identity
	Genesis  *ledger.Genesis
	// Apps computes the applications' views.
	Apps *apps.Engine
	// AppsReady reports whether the applications' index has read the
	// chain; until then views answer 503 rather than block.
	AppsReady func() bool
	// Replicator is the network side (nil when replication is off).
	Replicator protocol.Replicator
	// Peers is the configured peer list.
	Peers PeerBook
	// Accounts are the node's users; nil turns logins off.
	Accounts *accounts.Store
	// Submit appends records for the admin form; nil turns it off.
	Submit SubmitFunc
	// Dev lets logins skip the TOTP code, as on the protocol.
	Dev bool
	// Logs feeds the live log views; nil means none.
	Logs *nodelog.Hub
	// Metrics serves /metrics; nil answers 404.
	Metrics http.Handler
	// Version of the software.
	Version string
	// Started is when the node started.
	Started time.Time
	// Logger for the HTTP side. Default slog.Default().
	Logger *slog.Logger
	// PollInterval is how often the live record stream looks for new
	// entries. Default 250 ms.
	PollInterval time.Duration
	// SessionTTL is how long a panel login lasts. Default 12 h.
	SessionTTL time.Duration
	// AllowedHosts are the host names (without port) requests may name in
	// their Host header; nil allows any. A node that listens on loopback
	// allows only loopback names, which defeats DNS rebinding: a web page
	// elsewhere cannot make the browser talk to the panel under its own
	// name.
	AllowedHosts []string
}

func (c *Config) validate() error {
	if c.Store == nil || c.Identity == nil || c.Genesis == nil {
		return errors.New("web: Store, Identity and Genesis are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.PollInterval == 0 {
		c.PollInterval = 250 * time.Millisecond
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.PollInterval < 0 || c.SessionTTL < 0 {
		return errors.New("web: PollInterval and SessionTTL must not be negative")
	}
	if c.Started.IsZero() {
		c.Started = time.Now()
	}
	if c.AppsReady == nil {
		c.AppsReady = func() bool { return true }
	}
	return nil
}

// Server is the HTTP side of a node.
type Server struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	http     *http.Server
	feed     *feed
	rate     *rateMeter
	sessions *sessions
	cookie   string // the session cookie's name, per node

	streams    chan struct{} // live record streams
	logStreams chan struct{}
	pages      chan struct{}
	perAddrMu  sync.Mutex
	perAddr    map[string]int // live record streams by client address
	views      viewCache
	active     sync.WaitGroup // requests being served
	serveOnce  sync.Once

	logins, loginFailures atomic.Uint64
	lockoutLogs           *rate.Limiter

	rejectMu sync.Mutex
	rejected map[string]uint64 // panel puts refused, by rule, check or code

	cpMu sync.Mutex
	cp   signedCP // the checkpoint signed at the last head asked for

	// ctx ends the live streams and the feed at shutdown; other requests
	// finish on their own.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the HTTP side; Serve runs it.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "http"),
		mux:      http.NewServeMux(),
		rate:     newRateMeter(time.Minute),
		sessions: newSessions(cfg.SessionTTL),
		// Cookies ignore ports: every node on a host (a testnet) needs a
		// cookie of its own.
		cookie:     CookieName + "_" + cfg.Identity.ID().String()[:12],
		streams:    make(chan struct{}, MaxLiveStreams),
		logStreams: make(chan struct{}, MaxLogStreams),
		pages:      make(chan struct{}, MaxPageBuilds),
		perAddr:    map[string]int{},
		// One lockout line a second at most, in bursts of 10.
		lockoutLogs: rate.NewLimiter(1, 10),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.feed = newFeed(cfg.Store, cfg.PollInterval, s.rate)
	s.routes()
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second, // the live streams lift it
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Serve answers on ln until Shutdown; it also runs the live record feed.
func (s *Server) Serve(ln net.Listener) error {
	s.serveOnce.Do(func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.feed.run(s.ctx)
		}()
	})
	s.log.Info("http listening", "addr", ln.Addr().String())
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown ends the live streams, lets the other requests finish while
// ctx lasts, then closes what is left and waits for every handler to
// return: nothing runs against the node after Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	s.active.Wait()
	s.wg.Wait()
	return err
}

// Stats are the HTTP side's counters.
type Stats struct {
	Logins, LoginFailures uint64
	LiveStreams           int
	// Rejected counts the records put from the panel and refused, by the
	// rule, the failed check or the error code.
	Rejected map[string]uint64
}

// Stats returns the HTTP side's counters.
func (s *Server) Stats() Stats {
	st := Stats{Logins: s.logins.Load(), LoginFailures: s.loginFailures.Load(), LiveStreams: len(s.streams) + len(s.logStreams)}
	s.rejectMu.Lock()
	st.Rejected = maps.Clone(s.rejected)
	s.rejectMu.Unlock()
	return st
}

// countRejected counts a refused panel put by its rule, check or code.
func (s *Server) countRejected(err error) {
	var ae *apiError
	reason := "internal"
	if errors.As(err, &ae) {
		reason = ae.Code
		if ae.Check != "" {
			reason = ae.Check
		}
	}
	s.rejectMu.Lock()
	if s.rejected == nil {
		s.rejected = map[string]uint64{}
	}
	s.rejected[reason]++
	s.rejectMu.Unlock()
}

// ServeHTTP adds the headers every answer carries, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Done()
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("http handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(v))
			s.writeError(w, r, errorf(http.StatusInternalServerError, "internal", "internal error"))
		}
	}()
	if !s.hostAllowed(r.Host) {
		s.writeError(w, r, errorf(http.StatusMisdirectedRequest, "bad_host", "this node does not answer to host %q; use the address it listens on", clip(r.Host)))
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	get := func(pattern string, h http.HandlerFunc) { s.mux.HandleFunc("GET "+pattern, h) }
	post := func(pattern string, h http.HandlerFunc) { s.mux.HandleFunc("POST "+pattern, s.admin(h)) }

	get("/api/info", s.handleInfo)
	get("/api/head", s.handleHead)
	get("/api/checkpoint", s.handleCheckpoint)
	get("/api/records", s.handleRecords)
	get("/api/records/{id}", s.handleRecord)
	get("/api/records/height/{height}", s.handleRecordAt)
	get("/api/proof/inclusion", s.handleInclusion)
	get("/api/proof/consistency", s.handleConsistency)
	get("/api/votes/ballots", s.handleBallots)
	get("/api/votes/tally", s.handleTally)
	get("/api/charity/funds", s.handleFunds)
	get("/api/charity/report", s.handleFundReport)
	get("/api/resources/report", s.handleResourceReport)
	get("/api/peers", s.handlePeers)
	get("/api/events/records", s.handleRecordStream)
	get("/api/events/logs", s.handleLogStream)

	s.mux.HandleFunc("POST /api/login", s.handleLogin)
	get("/api/session", s.handleSession)
	s.mux.HandleFunc("POST /api/logout", s.handleLogout)
	post("/api/password", s.handlePassword)
	post("/api/admin/records", s.handlePut)
	post("/api/admin/sync", s.handleSync)
	post("/api/admin/peers", s.handlePeerList)
	get("/api/admin/peers", s.handleConfiguredPeers)
	post("/api/admin/block", s.handleBlock)
	get("/api/admin/users", s.handleUsers)

	s.mux.HandleFunc("/api/", s.handleNoRoute)
	s.mux.HandleFunc("/api", s.handleNoRoute)
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Metrics == nil {
			s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "metrics are off"))
			return
		}
		s.cfg.Metrics.ServeHTTP(w, r)
	})
	assets := assetHandler()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		assets.ServeHTTP(w, r)
	})
}

// handleNoRoute answers an API request no route took: a known path asked
// with the wrong method, or an unknown path.
func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/api/" && pattern != "/api" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.writeError(w, r, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s takes %s, not %s", r.URL.Path, strings.Join(allow, " or "), r.Method))
		return
	}
	s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "no API endpoint %s %s (see docs/HTTP.md)", r.Method, r.URL.Path))
}

// apiError is an error answer.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"error"`
	Message string `json:"message"`
	Check   string `json:"check,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, "bad_request", format, args...)
}

// hostAllowed checks a request's Host header against AllowedHosts.
func (s *Server) hostAllowed(host string) bool {
	if s.cfg.AllowedHosts == nil {
		return true
	}
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	for _, a := range s.cfg.AllowedHosts {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// LoopbackHosts are the names a loopback listener answers to.
var LoopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// writeError answers an error. A fault that is not the client's is
// logged, and the client gets a sentence without the node's internals.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			return // the client left
		}
		s.log.Error("http request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = errorf(http.StatusInternalServerError, "internal", "the node could not answer this request; the fault is logged")
	}
	h := w.Header()
	h.Del("ETag")
	h.Set("Cache-Control", cacheNone)
	writeJSONStatus(w, ae.Status, ae)
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal","message":"cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// Cache policies.
const (
	// cacheHead: keep it, but ask the node (with the ETag) before using it.
	cacheHead = "no-cache"
	// cacheNone: answers that change by the second (uptime, peers).
	cacheNone = "no-store"
)

// writeJSON answers v with an ETag and cache policy, or 304 when the
// client holds that ETag already.
func writeJSON(w http.ResponseWriter, r *http.Request, etag, cache string, v any) {
	h := w.Header()
	if cache != "" {
		h.Set("Cache-Control", cache)
	}
	if etag != "" {
		etag = `"` + etag + `"`
		h.Set("ETag", etag)
		if matchETag(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	writeJSONStatus(w, http.StatusOK, v)
}

func matchETag(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		t = strings.TrimPrefix(t, "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// tag names this node in ETags, so an answer cached from another node on
// the same address (a testnet started again) never matches.
func (s *Server) tag() string { return s.cfg.Identity.ID().String()[:12] }

// acquire takes a slot of sem, waiting up to 2 s (a burst waits rather
// than fails), and gives the function that returns it.
func (s *Server) acquire(r *http.Request, sem chan struct{}, what string) (func(), error) {
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	default:
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-t.C:
		return nil, errorf(http.StatusTooManyRequests, "too_many", "too many %s being built at once; try again", what)
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

// viewCache keeps the last answers of the views by ETag (which names the
// view and the chain head it was computed at), and computes each at most
// once at a time: many observers watching one tally cost one computation
// per head.
type viewCache struct {
	group singleflight.Group
	mu    sync.Mutex
	m     map[string][]byte
}

const maxCachedViews = 64

func (c *viewCache) get(etag string, compute func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	b, ok := c.m[etag]
	c.mu.Unlock()
	if ok {
		return b, nil
	}
	v, err, _ := c.group.Do(etag, func() (any, error) {
		b, err := compute()
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxCachedViews {
			c.m = map[string][]byte{} // heads move on; old answers go
		}
		c.m[etag] = b
		c.mu.Unlock()
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}
