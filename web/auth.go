package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol"
	"github.com/pyvnode/pyvnode/protocol/accounts"
)

// CookieName is the panel's session cookie.
const CookieName = "pyv_session"

// maxSessions bounds the panel logins kept at once; the oldest goes first.
const maxSessions = 1024

type panelSession struct {
	user    string
	epoch   uint64
	csrf    string
	expires time.Time
}

// sessions are the panel's logins, kept in memory: a restart logs
// everyone out.
type sessions struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]*panelSession
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, m: map[string]*panelSession{}}
}

func token() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (ss *sessions) create(u accounts.Public) (string, *panelSession) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := time.Now()
	for k, v := range ss.m {
		if now.After(v.expires) {
			delete(ss.m, k)
		}
	}
	for len(ss.m) >= maxSessions {
		var oldest string
		var t time.Time
		for k, v := range ss.m {
			if oldest == "" || v.expires.Before(t) {
				oldest, t = k, v.expires
			}
		}
		delete(ss.m, oldest)
	}
	id := token()
	ps := &panelSession{user: u.Name, epoch: u.Epoch, csrf: token(), expires: now.Add(ss.ttl)}
	ss.m[id] = ps
	return id, ps
}

func (ss *sessions) get(id string) *panelSession {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ps, ok := ss.m[id]
	if !ok {
		return nil
	}
	if time.Now().After(ps.expires) {
		delete(ss.m, id)
		return nil
	}
	cp := *ps
	return &cp
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	delete(ss.m, id)
	ss.mu.Unlock()
}

// login is the panel session a request carries, with its account as it is
// now.
type login struct {
	id      string
	session *panelSession
	user    accounts.Public
}

var errNoLogin = errorf(http.StatusUnauthorized, "unauthorized", "log in first")

// current finds the request's login. A session whose account was deleted,
// disabled or had its credentials changed since is over.
func (s *Server) current(r *http.Request) (*login, error) {
	if s.cfg.Accounts == nil {
		return nil, errorf(http.StatusServiceUnavailable, "unavailable", "this node has no accounts (the client protocol is off)")
	}
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return nil, errNoLogin
	}
	ps := s.sessions.get(c.Value)
	if ps == nil {
		return nil, errorf(http.StatusUnauthorized, "unauthorized", "your login has expired; log in again")
	}
	u, err := s.cfg.Accounts.Get(ps.user)
	if err != nil || !u.Enabled || u.Epoch != ps.epoch {
		s.sessions.drop(c.Value)
		return nil, errorf(http.StatusUnauthorized, "unauthorized", "your account changed since you logged in; log in again")
	}
	return &login{id: c.Value, session: ps, user: u}, nil
}

type role = accounts.Role

const (
	roleAdmin  = accounts.Admin
	roleWriter = accounts.Writer
)

// requireRole needs a login whose role allows need; an account that must
// still change its one-time password may do nothing else.
func (s *Server) requireRole(r *http.Request, need role) (*login, error) {
	l, err := s.current(r)
	if err != nil {
		return nil, err
	}
	if l.user.MustChange {
		return nil, errorf(http.StatusForbidden, "password_change_required", "change your one-time password first")
	}
	if !l.user.Role.Allows(need) {
		return nil, errorf(http.StatusForbidden, "forbidden", "this needs the %s role (you are %s)", need, l.user.Role)
	}
	return l, nil
}

// admin guards the POST actions: a login, the session's CSRF token, a
// same-origin request and a JSON body.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkOrigin(r); err != nil {
			writeError(w, err)
			return
		}
		l, err := s.current(r)
		if err != nil {
			writeError(w, err)
			return
		}
		tok := r.Header.Get("X-CSRF-Token")
		if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(l.session.csrf)) != 1 {
			writeError(w, errorf(http.StatusForbidden, "csrf", "missing or wrong X-CSRF-Token header"))
			return
		}
		h(w, r)
	}
}

// checkOrigin refuses a request that a browser says came from another
// origin.
func checkOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			return errorf(http.StatusForbidden, "csrf", "cross-site request refused")
		}
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Host != r.Host {
		return errorf(http.StatusForbidden, "csrf", "request from origin %q refused: the panel only takes its own", clip(o))
	}
	return nil
}

// readBody decodes a JSON request body strictly.
func readBody(w http.ResponseWriter, r *http.Request, v any) error {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "bad_request", "send the body as Content-Type: application/json")
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "too_large", "the body is over %d bytes", MaxBody)
		}
		return badRequest("body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("body: one JSON object expected")
	}
	return nil
}

type loginArgs struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Code     string `json:"code"`
}

type sessionResult struct {
	User       string `json:"user"`
	Role       string `json:"role"`
	CSRF       string `json:"csrf"`
	MustChange bool   `json:"must_change"`
	Dev        bool   `json:"dev"`
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if err := checkOrigin(r); err != nil {
		writeError(w, err)
		return
	}
	if s.cfg.Accounts == nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "unavailable", "this node has no accounts (the client protocol is off)"))
		return
	}
	var a loginArgs
	if err := readBody(w, r, &a); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	logName := a.User
	if accounts.CheckName(a.User) != nil {
		logName = "(invalid name)"
	}
	u, err := s.cfg.Accounts.Login(ctx, a.User, a.Password, a.Code, "http:"+clientAddr(r), !s.cfg.Dev)
	switch {
	case err == nil:
	case errors.Is(err, accounts.ErrCodeRequired):
		writeError(w, errorf(http.StatusUnauthorized, "code_required", "%v", err))
		return
	case errors.Is(err, accounts.ErrLockedOut):
		s.loginFailures.Add(1)
		s.log.Warn("panel login locked out", "user", logName, "addr", clientAddr(r))
		writeError(w, errorf(http.StatusTooManyRequests, "too_many", "%v", err))
		return
	case errors.Is(err, accounts.ErrLoginFailed):
		s.loginFailures.Add(1)
		s.log.Info("panel login failed", "user", logName, "addr", clientAddr(r))
		writeError(w, errorf(http.StatusUnauthorized, "unauthorized", "%v", err))
		return
	case errors.Is(err, accounts.ErrBusy):
		writeError(w, errorf(http.StatusTooManyRequests, "too_many", "too many logins in progress; try again"))
		return
	default:
		writeError(w, err)
		return
	}
	s.logins.Add(1)
	id, ps := s.sessions.create(u)
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(s.cfg.SessionTTL.Seconds()),
	})
	s.log.Info("panel login", "user", u.Name, "role", u.Role, "addr", clientAddr(r))
	writeJSONStatus(w, http.StatusOK, sessionResult{User: u.Name, Role: string(u.Role), CSRF: ps.csrf, MustChange: u.MustChange, Dev: s.cfg.Dev})
}

func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	l, err := s.current(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSONStatus(w, http.StatusOK, sessionResult{User: l.user.Name, Role: string(l.user.Role), CSRF: l.session.csrf, MustChange: l.user.MustChange, Dev: s.cfg.Dev})
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		s.sessions.drop(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	writeJSONStatus(w, http.StatusOK, struct{}{})
}

type passwordArgs struct {
	Old string `json:"old"`
	New string `json:"new"`
}

// handlePassword changes the logged-in account's password; it is how an
// account with a one-time password gets going in the panel.
func (s *Server) handlePassword(w http.ResponseWriter, r *http.Request) {
	l, err := s.current(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var a passwordArgs
	if err := readBody(w, r, &a); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	epoch, err := s.cfg.Accounts.ChangePassword(ctx, l.user.Name, a.Old, a.New, "http:"+clientAddr(r))
	switch {
	case err == nil:
	case errors.Is(err, accounts.ErrWeakPassword):
		writeError(w, badRequest("%v", err))
		return
	case errors.Is(err, accounts.ErrLoginFailed):
		writeError(w, errorf(http.StatusUnauthorized, "unauthorized", "the old password is wrong"))
		return
	case errors.Is(err, accounts.ErrLockedOut):
		writeError(w, errorf(http.StatusTooManyRequests, "too_many", "%v", err))
		return
	default:
		writeError(w, err)
		return
	}
	// The password change ends every session of the account, this one too;
	// give it a fresh one.
	s.sessions.drop(l.id)
	u, err := s.cfg.Accounts.Get(l.user.Name)
	if err != nil || u.Epoch != epoch {
		writeError(w, errorf(http.StatusUnauthorized, "unauthorized", "log in again with the new password"))
		return
	}
	id, ps := s.sessions.create(u)
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(s.cfg.SessionTTL.Seconds()),
	})
	s.log.Info("panel password changed", "user", u.Name)
	writeJSONStatus(w, http.StatusOK, sessionResult{User: u.Name, Role: string(u.Role), CSRF: ps.csrf, MustChange: u.MustChange, Dev: s.cfg.Dev})
}

// ---- admin actions ----

type putArgs struct {
	Kind    string          `json:"kind"`
	Payload json.RawMessage `json:"payload"`
}

type putResult struct {
	ID     string `json:"id"`
	Height uint64 `json:"height"`
	Link   string `json:"link"`
}

func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	l, err := s.requireRole(r, roleWriter)
	if err != nil {
		writeError(w, err)
		return
	}
	if s.cfg.Submit == nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "unavailable", "this node takes no records over HTTP"))
		return
	}
	var a putArgs
	if err := readBody(w, r, &a); err != nil {
		writeError(w, err)
		return
	}
	if err := ledger.CheckKind(a.Kind); err != nil {
		writeError(w, errorf(http.StatusUnprocessableEntity, "invalid_record", "kind %q: %v", clip(a.Kind), err))
		return
	}
	if len(a.Payload) == 0 {
		a.Payload = json.RawMessage("{}")
	}
	payload, err := ledger.PayloadFromJSON(a.Payload)
	if err != nil {
		writeError(w, errorf(http.StatusUnprocessableEntity, "invalid_record", "payload: %v", err))
		return
	}
	if apps.Reserved(a.Kind) && apps.RequiredRole(a.Kind) == apps.RoleAuthority && l.user.Role != accounts.Authority {
		writeError(w, errorf(http.StatusForbidden, "forbidden", "%s needs the authority role (you are %s)", a.Kind, l.user.Role))
		return
	}
	rec, e, err := s.cfg.Submit(r.Context(), l.user, a.Kind, payload)
	if err != nil {
		writeError(w, submitError(err))
		return
	}
	s.log.Info("record put from the panel", "user", l.user.Name, "kind", a.Kind, "id", rec.ID.String(), "height", e.Height)
	writeJSONStatus(w, http.StatusOK, putResult{ID: rec.ID.String(), Height: e.Height, Link: e.Link.String()})
}

// submitError maps what a submission can fail with.
func submitError(err error) error {
	var re *apps.RefusedError
	switch {
	case errors.As(err, &re):
		return &apiError{Status: http.StatusConflict, Code: "refused", Message: re.Error(), Check: re.V.Rule}
	case errors.Is(err, apps.ErrInvalid):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_record", Message: err.Error(), Check: "payload"}
	case errors.Is(err, apps.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "%v", err)
	case errors.Is(err, ledger.ErrClosed):
		return errorf(http.StatusServiceUnavailable, "unavailable", "the node is stopping")
	case errors.Is(err, ledger.ErrTooLarge), errors.Is(err, ledger.ErrPayload), errors.Is(err, ledger.ErrKind), errors.Is(err, ledger.ErrAuthor):
		return errorf(http.StatusUnprocessableEntity, "invalid_record", "%v", err)
	}
	return err
}

func (s *Server) replicator() (protocol.Replicator, error) {
	if s.cfg.Replicator == nil {
		return nil, errorf(http.StatusServiceUnavailable, "unavailable", "replication is off on this node")
	}
	return s.cfg.Replicator, nil
}

type syncArgs struct {
	Peer string `json:"peer"`
}

type syncResult struct {
	Results []protocol.SyncResult `json:"results"`
}

func (s *Server) handleSync(w http.ResponseWriter, r *http.Request) {
	l, err := s.requireRole(r, roleAdmin)
	if err != nil {
		writeError(w, err)
		return
	}
	rep, err := s.replicator()
	if err != nil {
		writeError(w, err)
		return
	}
	var a syncArgs
	if err := readBody(w, r, &a); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 25*time.Second)
	defer cancel()
	res, err := rep.Sync(ctx, a.Peer)
	if err != nil {
		if errors.Is(err, protocol.ErrNoPeer) {
			writeError(w, errorf(http.StatusNotFound, "not_found", "%v", err))
			return
		}
		writeError(w, errorf(http.StatusBadGateway, "sync_failed", "%v", err))
		return
	}
	s.log.Info("sync from the panel", "user", l.user.Name, "peer", a.Peer, "peers", len(res))
	writeJSONStatus(w, http.StatusOK, syncResult{Results: nonNilSlice(res)})
}

type peerListArgs struct {
	Add    string `json:"add"`
	Remove string `json:"remove"`
}

type peerListResult struct {
	Peers []string `json:"peers"`
}

func (s *Server) handlePeerList(w http.ResponseWriter, r *http.Request) {
	l, err := s.requireRole(r, roleAdmin)
	if err != nil {
		writeError(w, err)
		return
	}
	if s.cfg.Peers == nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "unavailable", "this node keeps no peer list"))
		return
	}
	var a peerListArgs
	if err := readBody(w, r, &a); err != nil {
		writeError(w, err)
		return
	}
	if (a.Add == "") == (a.Remove == "") {
		writeError(w, badRequest("give one of \"add\" or \"remove\""))
		return
	}
	if a.Add != "" {
		err = s.cfg.Peers.Add(a.Add)
	} else {
		err = s.cfg.Peers.Remove(a.Remove)
	}
	if err != nil {
		writeError(w, badRequest("%v", err))
		return
	}
	s.log.Info("peer list changed from the panel", "user", l.user.Name, "add", a.Add, "remove", a.Remove)
	writeJSONStatus(w, http.StatusOK, peerListResult{Peers: nonNilSlice(s.cfg.Peers.List())})
}

// handleConfiguredPeers lists the peers the node dials and keeps.
func (s *Server) handleConfiguredPeers(w http.ResponseWriter, r *http.Request) {
	if _, err := readQuery(r); err != nil {
		writeError(w, err)
		return
	}
	if _, err := s.requireRole(r, roleAdmin); err != nil {
		writeError(w, err)
		return
	}
	if s.cfg.Peers == nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "unavailable", "this node keeps no peer list"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSONStatus(w, http.StatusOK, peerListResult{Peers: nonNilSlice(s.cfg.Peers.List())})
}

type blockArgs struct {
	Peer    string `json:"peer"`
	Blocked bool   `json:"blocked"`
}

func (s *Server) handleBlock(w http.ResponseWriter, r *http.Request) {
	l, err := s.requireRole(r, roleAdmin)
	if err != nil {
		writeError(w, err)
		return
	}
	rep, err := s.replicator()
	if err != nil {
		writeError(w, err)
		return
	}
	var a blockArgs
	if err := readBody(w, r, &a); err != nil {
		writeError(w, err)
		return
	}
	if err := rep.Block(a.Peer, a.Blocked); err != nil {
		writeError(w, badRequest("%v", err))
		return
	}
	s.log.Info("peer blocked from the panel", "user", l.user.Name, "peer", a.Peer, "blocked", a.Blocked)
	writeJSONStatus(w, http.StatusOK, struct{}{})
}

type usersResult struct {
	Users []accounts.Public `json:"users"`
}

func (s *Server) handleUsers(w http.ResponseWriter, r *http.Request) {
	if _, err := readQuery(r); err != nil {
		writeError(w, err)
		return
	}
	if _, err := s.requireRole(r, roleAdmin); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSONStatus(w, http.StatusOK, usersResult{Users: nonNilSlice(s.cfg.Accounts.List())})
}
