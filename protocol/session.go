package protocol

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pyvnode/pyvnode/protocol/accounts"
)

// session is one client's connection after the handshake.
type session struct {
	srv      *Server
	conn     *Conn
	id       string
	addr     string
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	inflight chan struct{}
	wg       sync.WaitGroup
	stop     atomic.Bool

	mu    sync.Mutex
	user  string // "" until login
	epoch uint64 // the account's epoch at login
	idle  time.Duration
	quit  bool
}

func newSession(s *Server, c *Conn, addr string) *session {
	ctx, cancel := context.WithCancel(context.Background())
	lim := s.Limits()
	id := newSessionID()
	c.writeTimeout = seconds(lim.FrameSeconds)
	return &session{
		srv: s, conn: c, id: id, addr: addr, ctx: ctx, cancel: cancel,
		log:      s.log.With("session", id, "addr", addr),
		inflight: make(chan struct{}, lim.MaxInflight),
		idle:     seconds(lim.IdleSeconds),
	}
}

// stopReading makes the session stop taking requests; the ones running
// finish and are answered.
func (se *session) stopReading() {
	se.stop.Store(true)
	se.conn.SetReadDeadline(time.Now())
}

func (se *session) run() {
	se.log.Debug("session started")
	defer func() {
		se.wg.Wait() // answer what is running before closing
		se.cancel()
		if se.stop.Load() {
			// Shutting down with requests maybe still unread: a plain close
			// would reset the connection and lose the answers just written.
			se.conn.closeGracefully(2 * time.Second)
		}
		se.conn.Close()
		se.log.Debug("session ended")
	}()
	for !se.stop.Load() {
		se.mu.Lock()
		idle := se.idle
		se.mu.Unlock()
		msg, err := se.conn.ReadMessageTimeout(idle, seconds(se.srv.Limits().FrameSeconds))
		if err != nil {
			se.logEnd(err)
			return
		}
		var req Request
		if err := decMode.Unmarshal(msg, &req); err != nil || req.Cmd == "" {
			// Not a request at all: answer once and hang up.
			se.reply(req.ID, nil, errorf(ErrBadRequest, "malformed request (%v); closing the session", err))
			return
		}
		cmd := commands[req.Cmd]
		if cmd == nil {
			se.reply(req.ID, nil, errorf(ErrUnknownCommand, "unknown command %q; 'help' lists them", req.Cmd))
			continue
		}
		switch cmd.mode {
		case barrier:
			se.wg.Wait()
			se.exec(cmd, req)
		case ordered:
			se.exec(cmd, req)
		default:
			se.inflight <- struct{}{} // at most MaxInflight at once: the rest wait in TCP
			se.wg.Add(1)
			go func() {
				defer se.wg.Done()
				defer func() { <-se.inflight }()
				se.exec(cmd, req)
			}()
		}
		se.mu.Lock()
		quit := se.quit
		se.mu.Unlock()
		if quit {
			return
		}
	}
}

func (se *session) logEnd(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), se.stop.Load():
	case errors.As(err, &ne) && ne.Timeout():
		se.log.Debug("session timed out")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET):
		se.log.Debug("client went away mid-message", "err", err)
	default:
		se.log.Info("session closed on a bad frame", "err", err)
	}
}

// exec checks the caller's rights, runs a command and answers it.
func (se *session) exec(cmd *command, req Request) {
	if err := se.allowed(cmd); err != nil {
		se.reply(req.ID, nil, err)
		return
	}
	if cmd.name == "rekey" {
		se.rekey(req)
		return
	}
	res, err := cmd.run(se.ctx, se, req.Args)
	se.reply(req.ID, res, err)
}

// allowed checks the session's user against what the command needs. The
// account is looked up on every request, so a user disabled or demoted by
// an admin loses the rights at once.
func (se *session) allowed(cmd *command) error {
	if cmd.role == "" {
		return nil
	}
	u, err := se.currentUser()
	if err != nil {
		return err
	}
	if u.MustChange && !cmd.duringChange {
		return errorf(ErrMustChange, "change your one-time password first ('passwd')")
	}
	if !u.Role.Allows(cmd.role) {
		return errorf(ErrForbidden, "%q needs the %s role; %s is %s", cmd.name, cmd.role, u.Name, u.Role)
	}
	return nil
}

func (se *session) currentUser() (accounts.Public, error) {
	se.mu.Lock()
	name := se.user
	se.mu.Unlock()
	if name == "" {
		return accounts.Public{}, errorf(ErrUnauthorized, "log in first ('login')")
	}
	se.mu.Lock()
	epoch := se.epoch
	se.mu.Unlock()
	u, err := se.srv.cfg.Accounts.Get(name)
	if err != nil || !u.Enabled || u.Epoch != epoch {
		se.mu.Lock()
		se.user = ""
		se.mu.Unlock()
		return accounts.Public{}, errorf(ErrUnauthorized, "account %s was disabled, deleted or had its credentials changed; log in again", name)
	}
	return u, nil
}

// reply sends a response; a write error ends the session (the reader sees
// the closed connection).
func (se *session) reply(id uint64, result any, err error) {
	resp := Response{ID: id, OK: err == nil}
	if err != nil {
		resp.Error = asError(err)
		if resp.Error.Code == ErrInternal.Code {
			se.log.Error("request failed", "id", id, "err", err)
		}
	} else if result != nil {
		raw, eerr := encodeArgs(result)
		if eerr != nil {
			se.log.Error("encode result", "id", id, "err", eerr)
			resp = Response{ID: id, Error: &Error{Code: ErrInternal.Code, Message: "internal error"}}
		} else {
			resp.Result = raw
		}
	}
	b, eerr := encMode.Marshal(resp)
	if eerr == nil && len(b) > se.conn.maxMessage {
		// Say so rather than fail the write and lose the session.
		b, eerr = encMode.Marshal(Response{ID: id, Error: errorf(ErrTooLarge,
			"the answer would be %d bytes, over the %d-byte message limit; ask for less (a smaller page)", len(b), se.conn.maxMessage)})
	}
	if eerr == nil {
		eerr = se.conn.WriteMessage(b)
	}
	if eerr != nil {
		se.conn.Close()
	}
}

// rekey replaces both directions' keys using a fresh ephemeral X25519 key
// from each side (docs/PROTOCOL.md §4). The receive key changes as soon as
// the request is read (the client sends nothing more until it has the
// answer); the send key right after the answer is written.
func (se *session) rekey(req Request) {
	var a rekeyArgs
	if err := decodeArgs(req.Args, &a); err != nil {
		se.reply(req.ID, nil, err)
		return
	}
	rnd := se.srv.cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	priv, err := newX25519(rnd)
	if err != nil {
		se.reply(req.ID, nil, err)
		return
	}
	c2s, s2c, err := se.conn.rekeyDerive(priv, a.E)
	if err != nil {
		se.reply(req.ID, nil, errorf(ErrBadRequest, "%v", err))
		se.conn.Close()
		return
	}
	se.conn.recv = newCipherState(c2s)
	b, err := encMode.Marshal(Response{ID: req.ID, OK: true, Result: mustEncode(rekeyResult{E: priv.PublicKey().Bytes()})})
	if err == nil {
		err = se.conn.writeThen(b, func() { se.conn.send = newCipherState(s2c) })
	}
	if err != nil {
		se.conn.Close()
	}
}

func mustEncode(v any) []byte {
	b, err := encMode.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
