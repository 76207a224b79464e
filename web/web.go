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
	MaxLogBacklog  = 2000
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
	streams  chan struct{}

	logins, loginFailures atomic.Uint64

	cpMu sync.Mutex
	cp   signedCP // the checkpoint signed at the last head asked for

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
		streams:  make(chan struct{}, MaxLiveStreams),
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
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.feed.run(s.ctx)
	}()
	return s, nil
}

// Serve answers on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("http listening", "addr", ln.Addr().String())
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown ends the live streams, waits for the other requests up to ctx,
// and stops the background work.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel() // ends live streams: their contexts derive from s.ctx
	err := s.http.Shutdown(ctx)
	s.wg.Wait()
	return err
}

// Stats are the HTTP side's counters.
type Stats struct {
	Logins, LoginFailures uint64
	LiveStreams           int
}

// Stats returns the HTTP side's counters.
func (s *Server) Stats() Stats {
	return Stats{Logins: s.logins.Load(), LoginFailures: s.loginFailures.Load(), LiveStreams: len(s.streams)}
}

// ServeHTTP adds the headers every answer carries, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
			writeError(w, errorf(http.StatusInternalServerError, "internal", "internal error"))
		}
	}()
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
	post("/api/logout", s.handleLogout)
	post("/api/password", s.handlePassword)
	post("/api/admin/records", s.handlePut)
	post("/api/admin/sync", s.handleSync)
	post("/api/admin/peers", s.handlePeerList)
	get("/api/admin/peers", s.handleConfiguredPeers)
	post("/api/admin/block", s.handleBlock)
	get("/api/admin/users", s.handleUsers)

	s.mux.HandleFunc("/api/", s.handleNoRoute)
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Metrics == nil {
			writeError(w, errorf(http.StatusNotFound, "not_found", "metrics are off"))
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
		if _, pattern := s.mux.Handler(probe); pattern != "/api/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s takes %s, not %s", r.URL.Path, strings.Join(allow, " or "), r.Method))
		return
	}
	writeError(w, errorf(http.StatusNotFound, "not_found", "no API endpoint %s %s (see docs/HTTP.md)", r.Method, r.URL.Path))
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

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = errorf(http.StatusInternalServerError, "internal", "%v", err)
	}
	h := w.Header()
	h.Del("ETag")
	h.Set("Cache-Control", "no-store")
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
	cacheHead      = "no-cache"
	cacheImmutable = "public, max-age=31536000, immutable"
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
