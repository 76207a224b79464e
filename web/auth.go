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

// CookieName starts the name of the panel's session cookie; the node's
// id follows (pyv_session_<12 hex digits>), since browsers send a cookie to
// every port of a host.
const CookieName = "pyv_session"

// maxSessions bounds the panel logins kept at once, and maxUserSessions
// those of one account; beyond either the oldest goes first, and an
// account's own logins go before anyone else's.
const (
	maxSessions     = 1024
	maxUserSessions = 16
)

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
	evictOldest := func(match func(*panelSession) bool) {
		var oldest string
		var t time.Time
		for k, v := range ss.m {
			if match(v) && (oldest == "" || v.expires.Before(t)) {
				oldest, t = k, v.expires
			}
		}
		delete(ss.m, oldest)
	}
	mine := 0
	for _, v := range ss.m {
		if v.user == u.Name {
			mine++
		}
	}
	for ; mine >= maxUserSessions; mine-- {
		evictOldest(func(v *panelSession) bool { return v.user == u.Name })
	}
	for len(ss.m) >= maxSessions {
		evictOldest(func(*panelSession) bool { return true })
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
	c, err := r.Cookie(s.cookie)
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
			s.writeError(w, r, err)
			return
		}
		l, err := s.current(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		tok := r.Header.Get("X-CSRF-Token")
		if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(l.session.csrf)) != 1 {
			s.writeError(w, r, errorf(http.StatusForbidden, "csrf", "missing or wrong X-CSRF-Token header"))
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
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Accounts == nil {
		s.writeError(w, r, errorf(http.StatusServiceUnavailable, "unavailable", "this node has no accounts (the client protocol is off)"))
		return
	}
	var a loginArgs
	if err := readBody(w, r, &a); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	logName := a.User
	if accounts.CheckName(a.User) != nil {
		logName = "(invalid name)"
	}
	u, err := s.cfg.Accounts.Login(ctx, a.User, a.Password, a.Code, clientAddr(r), !s.cfg.Dev)
	switch {
	case err == nil:
	case errors.Is(err, accounts.ErrCodeRequired):
		s.writeError(w, r, errorf(http.StatusUnauthorized, "code_required", "%v", err))
		return
	case errors.Is(err, accounts.ErrLockedOut):
		s.loginFailures.Add(1)
		if s.lockoutLogs.Allow() {
			// Bounded: a flood of locked-out attempts must not flush the
			// log ring and rotate the files.
			s.log.Warn("panel login locked out", "user", logName, "addr", clientAddr(r))
		}
		s.writeError(w, r, errorf(http.StatusTooManyRequests, "too_many", "%v", err))
		return
	case errors.Is(err, accounts.ErrLoginFailed):
		s.loginFailures.Add(1)
		s.log.Info("panel login failed", "user", logName, "addr", clientAddr(r))
		s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthorized", "%v", err))
		return
	case errors.Is(err, accounts.ErrBusy):
		s.writeError(w, r, errorf(http.StatusTooManyRequests, "too_many", "too many logins in progress; try again"))
		return
	default:
		s.writeError(w, r, err)
		return
	}
	s.logins.Add(1)
	w.Header().Set("Cache-Control", cacheNone) // it carries the CSRF token
	id, ps := s.sessions.create(u)
	http.SetCookie(w, &http.Cookie{
		Name: s.cookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(s.cfg.SessionTTL.Seconds()),
	})
	s.log.Info("panel login", "user", u.Name, "role", u.Role, "addr", clientAddr(r))
	writeJSONStatus(w, http.StatusOK, sessionResult{User: u.Name, Role: string(u.Role), CSRF: ps.csrf, MustChange: u.MustChange, Dev: s.cfg.Dev})
}

func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", cacheNone)
	l, err := s.current(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSONStatus(w, http.StatusOK, sessionResult{User: l.user.Name, Role: string(l.user.Role), CSRF: l.session.csrf, MustChange: l.user.MustChange, Dev: s.cfg.Dev})
}

// handleLogout ends the request's session, whatever state it is in, and
// clears the cookie. It needs no CSRF token: a forged logout harms no one.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if err := checkOrigin(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	if c, err := r.Cookie(s.cookie); err == nil {
		s.sessions.drop(c.Value)
	}
	w.Header().Set("Cache-Control", cacheNone)
	http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
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
		s.writeError(w, r, err)
		return
	}
	var a passwordArgs
	if err := readBody(w, r, &a); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	epoch, err := s.cfg.Accounts.ChangePassword(ctx, l.user.Name, a.Old, a.New, clientAddr(r))
	switch {
	case err == nil:
	case errors.Is(err, accounts.ErrWeakPassword):
		s.writeError(w, r, badRequest("%v", err))
		return
	case errors.Is(err, accounts.ErrLoginFailed):
		msg := "the old password is wrong"
		if err != accounts.ErrLoginFailed {
			msg = err.Error() // e.g. changed meanwhile by another session
		}
		s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthorized", "%s", msg))
		return
	case errors.Is(err, accounts.ErrLockedOut):
		s.writeError(w, r, errorf(http.StatusTooManyRequests, "too_many", "%v", err))
		return
	default:
		s.writeError(w, r, err)
		return
	}
	// The password change ends every session of the account, this one too;
	// give it a fresh one.
	s.sessions.drop(l.id)
	u, err := s.cfg.Accounts.Get(l.user.Name)
	if err != nil || u.Epoch != epoch {
		s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthorized", "log in again with the new password"))
		return
	}
	id, ps := s.sessions.create(u)
	http.SetCookie(w, &http.Cookie{
		Name: s.cookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(s.cfg.SessionTTL.Seconds()),
	})
	s.log.Info("panel password changed", "user", u.Name)
	w.Header().Set("Cache-Control", cacheNone)
	writeJSONStatus(w, http.StatusOK, sessionResult{User: u.Name, Role: string(u.Role), CSRF: ps.csrf, MustChange: u.MustChange, Dev: s.cfg.Dev})
}

// ---- admin actions ----

// action begins an admin action: the login must have the role, the part
// of the node it acts on must run (available returns nil), and the body
// must decode into args. On failure it has answered, and ok is false.
func (s *Server) action(w http.ResponseWriter, r *http.Request, need role, available func() error, args any) (l *login, ok bool) {
	l, err := s.requireRole(r, need)
	if err == nil && available != nil {
		err = available()
	}
	if err == nil {
		err = readBody(w, r, args)
	}
	if err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	return l, true
}

func (s *Server) submitter() error {
	if s.cfg.Submit == nil {
		return errorf(http.StatusServiceUnavailable, "unavailable", "this node takes no records over HTTP")
	}
	return nil
}

func (s *Server) peerBook() error {
	if s.cfg.Peers == nil {
		return errorf(http.StatusServiceUnavailable, "unavailable", "this node keeps no peer list")
	}
	return nil
}

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
	var a putArgs
	l, ok := s.action(w, r, roleWriter, s.submitter, &a)
	if !ok {
		return
	}
	if err := ledger.CheckKind(a.Kind); err != nil {
		s.countRejected(&apiError{Code: "invalid_record", Check: "kind"})
		s.writeError(w, r, errorf(http.StatusUnprocessableEntity, "invalid_record", "kind %q: %v", clip(a.Kind), err))
		return
	}
	if len(a.Payload) == 0 {
		a.Payload = json.RawMessage("{}")
	}
	payload, err := ledger.PayloadFromJSON(a.Payload)
	if err != nil {
		s.countRejected(&apiError{Code: "invalid_record", Check: "payload"})
		s.writeError(w, r, errorf(http.StatusUnprocessableEntity, "invalid_record", "payload: %v", err))
		return
	}
	if apps.Reserved(a.Kind) && apps.RequiredRole(a.Kind) == apps.RoleAuthority && l.user.Role != accounts.Authority {
		s.countRejected(errorf(http.StatusForbidden, "forbidden", ""))
		s.writeError(w, r, errorf(http.StatusForbidden, "forbidden", "%s needs the authority role (you are %s)", a.Kind, l.user.Role))
		return
	}
	rec, e, err := s.cfg.Submit(r.Context(), l.user, a.Kind, payload)
	if err != nil {
		err = submitError(err)
		s.countRejected(err)
		s.writeError(w, r, err)
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

func (s *Server) replicationOn() error {
	if s.cfg.Replicator == nil {
		return errorf(http.StatusServiceUnavailable, "unavailable", "replication is off on this node")
	}
	return nil
}

type syncArgs struct {
	Peer string `json:"peer"`
}

type syncResult struct {
	Results []protocol.SyncResult `json:"results"`
}

func (s *Server) handleSync(w http.ResponseWriter, r *http.Request) {
	var a syncArgs
	l, ok := s.action(w, r, roleAdmin, s.replicationOn, &a)
	if !ok {
		return
	}
	rep := s.cfg.Replicator
	ctx, cancel := context.WithTimeout(r.Context(), 25*time.Second)
	defer cancel()
	res, err := rep.Sync(ctx, a.Peer)
	if err != nil {
		if errors.Is(err, protocol.ErrNoPeer) {
			s.writeError(w, r, badRequest("%v", err))
			return
		}
		s.writeError(w, r, errorf(http.StatusBadGateway, "sync_failed", "%v", err))
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
	var a peerListArgs
	l, ok := s.action(w, r, roleAdmin, s.peerBook, &a)
	if !ok {
		return
	}
	var err error
	if (a.Add == "") == (a.Remove == "") {
		s.writeError(w, r, badRequest("give one of \"add\" or \"remove\""))
		return
	}
	if a.Add != "" {
		err = s.cfg.Peers.Add(a.Add)
	} else {
		err = s.cfg.Peers.Remove(a.Remove)
	}
	if err != nil {
		s.writeError(w, r, badRequest("%v", err))
		return
	}
	s.log.Info("peer list changed from the panel", "user", l.user.Name, "add", a.Add, "remove", a.Remove)
	writeJSONStatus(w, http.StatusOK, peerListResult{Peers: nonNilSlice(s.cfg.Peers.List())})
}

// handleConfiguredPeers lists the peers the node dials and keeps.
func (s *Server) handleConfiguredPeers(w http.ResponseWriter, r *http.Request) {
	if _, err := readQuery(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	_, err := s.requireRole(r, roleAdmin)
	if err == nil {
		err = s.peerBook()
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", cacheNone)
	writeJSONStatus(w, http.StatusOK, peerListResult{Peers: nonNilSlice(s.cfg.Peers.List())})
}

type blockArgs struct {
	Peer    string `json:"peer"`
	Blocked bool   `json:"blocked"`
}

func (s *Server) handleBlock(w http.ResponseWriter, r *http.Request) {
	var a blockArgs
	l, ok := s.action(w, r, roleAdmin, s.replicationOn, &a)
	if !ok {
		return
	}
	if err := s.cfg.Replicator.Block(a.Peer, a.Blocked); err != nil {
		s.writeError(w, r, badRequest("%v", err))
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
		s.writeError(w, r, err)
		return
	}
	if _, err := s.requireRole(r, roleAdmin); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", cacheNone)
	writeJSONStatus(w, http.StatusOK, usersResult{Users: nonNilSlice(s.cfg.Accounts.List())})
}
