package protocol

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol/accounts"
	"github.com/pyvnode/pyvnode/protocol/files"
)

// How a command is scheduled within its session.
type mode int

const (
	// concurrent commands run alongside others (up to MaxInflight).
	concurrent mode = iota
	// ordered commands run in the read loop, in arrival order (file
	// uploads), without waiting for concurrent ones.
	ordered
	// barrier commands wait for every earlier request to finish and run
	// before any later one starts: they change the session itself.
	barrier
)

type command struct {
	name         string
	args         string // usage, for help
	help         string
	role         accounts.Role // "" for anyone
	mode         mode
	duringChange bool // allowed while a password change is pending
	run          func(ctx context.Context, se *session, args cbor.RawMessage) (any, error)
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// CommandInfo describes a command for "help".
type CommandInfo struct {
	Name string `cbor:"name" json:"name"`
	Args string `cbor:"args" json:"args"`
	Help string `cbor:"help" json:"help"`
	Role string `cbor:"role" json:"role"`
}

// ---- session ----

// HelloResult is the answer to "hello".
type HelloResult struct {
	Node     ledger.NodeID `cbor:"node" json:"node"`
	Network  string        `cbor:"network" json:"network"`
	Version  string        `cbor:"version" json:"version"`
	Protocol int           `cbor:"protocol" json:"protocol"`
	Session  string        `cbor:"session" json:"session"`
	User     string        `cbor:"user,omitempty" json:"user,omitempty"`
	Dev      bool          `cbor:"dev" json:"dev"`
}

// VerResult is the answer to "ver".
type VerResult struct {
	Version  string `cbor:"version" json:"version"`
	Protocol int    `cbor:"protocol" json:"protocol"`
	Go       string `cbor:"go" json:"go"`
}

// IDResult is the answer to "id".
type IDResult struct {
	Node        ledger.NodeID `cbor:"node" json:"node"`
	Fingerprint string        `cbor:"fingerprint" json:"fingerprint"`
	Network     string        `cbor:"network" json:"network"`
	Genesis     ledger.Hash   `cbor:"genesis" json:"genesis"`
	PowBits     int           `cbor:"pow_bits" json:"pow_bits"`
}

type helpArgs struct {
	Cmd string `cbor:"cmd,omitempty"`
}

// HelpResult lists commands.
type HelpResult struct {
	Commands []CommandInfo `cbor:"commands" json:"commands"`
}

type timeoutArgs struct {
	Seconds float64 `cbor:"seconds"`
}

// TimeoutResult is the idle timeout now in force.
type TimeoutResult struct {
	Seconds float64 `cbor:"seconds" json:"seconds"`
}

type rekeyArgs struct {
	E []byte `cbor:"e"`
}

type rekeyResult struct {
	E []byte `cbor:"e"`
}

// ---- auth ----

type loginArgs struct {
	User     string `cbor:"user"`
	Password string `cbor:"password"`
	Code     string `cbor:"code,omitempty"`
}

// LoginResult is who the session now acts as.
type LoginResult struct {
	User       string `cbor:"user" json:"user"`
	Role       string `cbor:"role" json:"role"`
	MustChange bool   `cbor:"must_change" json:"must_change"`
}

type passwdArgs struct {
	Old string `cbor:"old"`
	New string `cbor:"new"`
}

func init() {
	register(&command{name: "hello", help: "who the node is and this session's id", mode: concurrent,
		run: func(_ context.Context, se *session, _ cbor.RawMessage) (any, error) {
			se.mu.Lock()
			user := se.user
			se.mu.Unlock()
			b := se.srv.cfg.Backend
			return HelloResult{Node: b.Identity().ID(), Network: b.Genesis().Network, Version: se.srv.cfg.Version,
				Protocol: Version, Session: se.id, User: user, Dev: se.srv.cfg.Dev}, nil
		}})
	register(&command{name: "ver", help: "software and protocol version",
		run: func(_ context.Context, se *session, _ cbor.RawMessage) (any, error) {
			return VerResult{Version: se.srv.cfg.Version, Protocol: Version, Go: runtime.Version()}, nil
		}})
	register(&command{name: "id", help: "node id, fingerprint and network",
		run: func(_ context.Context, se *session, _ cbor.RawMessage) (any, error) {
			b := se.srv.cfg.Backend
			return IDResult{Node: b.Identity().ID(), Fingerprint: b.Identity().ID().Fingerprint(),
				Network: b.Genesis().Network, Genesis: b.Genesis().Hash(), PowBits: b.Genesis().PowBits}, nil
		}})
	register(&command{name: "help", args: "[cmd]", help: "list commands, or describe one",
		run: func(_ context.Context, _ *session, raw cbor.RawMessage) (any, error) {
			var a helpArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			var out HelpResult
			for _, c := range commands {
				if a.Cmd != "" && c.name != a.Cmd {
					continue
				}
				role := string(c.role)
				if role == "" {
					role = "anyone"
				}
				out.Commands = append(out.Commands, CommandInfo{Name: c.name, Args: c.args, Help: c.help, Role: role})
			}
			if a.Cmd != "" && len(out.Commands) == 0 {
				return nil, errorf(ErrNotFound, "no command %q", a.Cmd)
			}
			sort.Slice(out.Commands, func(i, j int) bool { return out.Commands[i].Name < out.Commands[j].Name })
			return out, nil
		}})
	register(&command{name: "timeout", args: "seconds", help: "set this session's idle timeout", mode: barrier, duringChange: true,
		run: func(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a timeoutArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			max := se.srv.Limits().MaxIdleSeconds
			if se.userName() == "" {
				// Only a logged-in session may hold its slot longer than
				// the default.
				max = se.srv.Limits().IdleSeconds
			}
			if !(a.Seconds >= 1 && a.Seconds <= max) { // also refuses NaN
				return nil, errorf(ErrBadRequest, "timeout must be 1 to %g seconds", max)
			}
			se.mu.Lock()
			se.idle = seconds(a.Seconds)
			se.mu.Unlock()
			return TimeoutResult{Seconds: a.Seconds}, nil
		}})
	register(&command{name: "rekey", args: "e", help: "move both directions to fresh keys (fresh X25519 exchange)", mode: barrier, duringChange: true})
	register(&command{name: "quit", help: "end the session", mode: barrier, duringChange: true,
		run: func(_ context.Context, se *session, _ cbor.RawMessage) (any, error) {
			se.mu.Lock()
			se.quit = true
			se.mu.Unlock()
			return struct{}{}, nil
		}})

	register(&command{name: "login", args: "user password [code]", help: "log in (the code is the TOTP unless the node runs with --dev)", mode: barrier,
		run: login})
	register(&command{name: "logout", help: "act as nobody again", mode: barrier,
		run: func(_ context.Context, se *session, _ cbor.RawMessage) (any, error) {
			se.mu.Lock()
			se.user, se.epoch = "", 0
			se.mu.Unlock()
			return struct{}{}, nil
		}})
	register(&command{name: "passwd", args: "old new", help: "change your password", role: accounts.Reader, mode: barrier, duringChange: true,
		run: func(ctx context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a passwdArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			u, err := se.currentUser()
			if err != nil {
				return nil, err
			}
			epoch, err := se.srv.cfg.Accounts.ChangePassword(ctx, u.Name, a.Old, a.New, se.addr)
			switch {
			case errors.Is(err, accounts.ErrLockedOut):
				return nil, errorf(ErrLockedOut, "%v", err)
			case errors.Is(err, accounts.ErrBusy):
				return nil, errorf(ErrBusy, "too many password checks in progress; try again")
			case errors.Is(err, accounts.ErrLoginFailed):
				return nil, errorf(ErrLoginFailed, "the old password is wrong")
			case errors.Is(err, accounts.ErrWeakPassword):
				return nil, errorf(ErrBadRequest, "%v", err)
			case err != nil:
				return nil, err
			}
			// This session made the change: it goes on; others end.
			se.mu.Lock()
			se.epoch = epoch
			se.mu.Unlock()
			return struct{}{}, nil
		}})
}

func login(ctx context.Context, se *session, raw cbor.RawMessage) (any, error) {
	var a loginArgs
	if err := decodeArgs(raw, &a); err != nil {
		return nil, err
	}
	// A login replaces who the session acts as, even when it fails: the
	// requests after it must not run as the previous user.
	se.mu.Lock()
	se.user, se.epoch = "", 0
	se.mu.Unlock()
	logName := a.User
	if accounts.CheckName(a.User) != nil {
		logName = "(invalid name)"
	}
	// A login may wait for a password-check slot, but not for ever.
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	u, err := se.srv.cfg.Accounts.Login(ctx, a.User, a.Password, a.Code, se.addr, !se.srv.cfg.Dev)
	switch {
	case err == nil:
	case errors.Is(err, accounts.ErrCodeRequired):
		return nil, errorf(ErrCodeRequired, "%v", err)
	case errors.Is(err, accounts.ErrLockedOut):
		se.srv.stats.loginFailures.Add(1)
		se.log.Warn("login locked out", "user", logName)
		return nil, errorf(ErrLockedOut, "%v", err)
	case errors.Is(err, accounts.ErrLoginFailed):
		se.srv.stats.loginFailures.Add(1)
		se.log.Info("login failed", "user", logName)
		return nil, errorf(ErrLoginFailed, "%v", err)
	case errors.Is(err, accounts.ErrBusy):
		return nil, errorf(ErrBusy, "too many logins in progress; try again")
	default:
		return nil, err
	}
	se.srv.stats.logins.Add(1)
	se.mu.Lock()
	se.user, se.epoch = u.Name, u.Epoch
	se.mu.Unlock()
	se.log.Info("login", "user", u.Name, "role", u.Role)
	return LoginResult{User: u.Name, Role: string(u.Role), MustChange: u.MustChange}, nil
}

// ---- records ----

type putArgs struct {
	Kind    string          `cbor:"kind"`
	Payload cbor.RawMessage `cbor:"payload"`
}

// PutResult is where a new record went.
type PutResult struct {
	ID     ledger.ID   `cbor:"id" json:"id"`
	Height uint64      `cbor:"height" json:"height"`
	Link   ledger.Hash `cbor:"link" json:"link"`
}

type getArgs struct {
	ID     *ledger.ID `cbor:"id,omitempty"`
	Height *uint64    `cbor:"height,omitempty"`
}

// RecordResult is a record with its entry: the exact bytes (record and
// signature) and the decoded fields.
type RecordResult struct {
	Height      uint64          `cbor:"height" json:"height"`
	ID          ledger.ID       `cbor:"id" json:"id"`
	Link        ledger.Hash     `cbor:"link" json:"link"`
	Replication uint8           `cbor:"replication" json:"replication"`
	Source      string          `cbor:"source" json:"source"`
	Received    int64           `cbor:"received" json:"received"`
	Record      []byte          `cbor:"record" json:"record"`
	Signature   []byte          `cbor:"signature" json:"signature"`
	Kind        string          `cbor:"kind" json:"kind"`
	Author      string          `cbor:"author" json:"author"`
	Origin      ledger.NodeID   `cbor:"origin" json:"origin"`
	Created     int64           `cbor:"created" json:"created"`
	Nonce       uint64          `cbor:"nonce" json:"nonce"`
	Payload     cbor.RawMessage `cbor:"payload" json:"-"`
}

func recordResult(r *ledger.SignedRecord, e ledger.Entry) RecordResult {
	return RecordResult{
		Height: e.Height, ID: e.ID, Link: e.Link, Replication: e.Replication, Source: e.Source, Received: e.Received,
		Record: r.RecordBytes(), Signature: r.Signature, Kind: r.Kind, Author: r.Author,
		Origin: ledger.NodeID(r.Origin), Created: r.Created, Nonce: r.Nonce, Payload: r.Payload,
	}
}

type listArgs struct {
	From  uint64 `cbor:"from"`
	Count int    `cbor:"count"`
}

// ListResult is a page of records.
type ListResult struct {
	Records []RecordResult `cbor:"records" json:"records"`
	Next    uint64         `cbor:"next" json:"next"`
	Size    uint64         `cbor:"size" json:"size"`
}

// MaxList bounds one page of "list".
const MaxList = 1000

type hasArgs struct {
	ID ledger.ID `cbor:"id"`
}

// HasResult says whether the chain holds a record.
type HasResult struct {
	Has    bool   `cbor:"has" json:"has"`
	Height uint64 `cbor:"height,omitempty" json:"height,omitempty"`
}

// CheckpointResult is a signed checkpoint of the head.
type CheckpointResult struct {
	Size       uint64      `cbor:"size" json:"size"`
	Root       ledger.Hash `cbor:"root" json:"root"`
	Link       ledger.Hash `cbor:"link" json:"link"`
	Checkpoint string      `cbor:"checkpoint" json:"checkpoint"`
}

type inclusionArgs struct {
	ID   ledger.ID `cbor:"id"`
	Size uint64    `cbor:"size,omitempty"`
}

// InclusionResult proves a record's place in the tree of a size.
type InclusionResult struct {
	Index uint64      `cbor:"index" json:"index"`
	Size  uint64      `cbor:"size" json:"size"`
	Root  ledger.Hash `cbor:"root" json:"root"`
	Proof [][]byte    `cbor:"proof" json:"proof"`
	// Checkpoint is signed at Size when Size is the current head.
	Checkpoint string `cbor:"checkpoint,omitempty" json:"checkpoint,omitempty"`
}

type consistencyArgs struct {
	Old uint64 `cbor:"old"`
	New uint64 `cbor:"new"`
}

// ConsistencyResult proves the tree of New extends the tree of Old.
type ConsistencyResult struct {
	Old     uint64      `cbor:"old" json:"old"`
	New     uint64      `cbor:"new" json:"new"`
	OldRoot ledger.Hash `cbor:"old_root" json:"old_root"`
	NewRoot ledger.Hash `cbor:"new_root" json:"new_root"`
	Proof   [][]byte    `cbor:"proof" json:"proof"`
}

// VerifyResult reports a full verification.
type VerifyResult struct {
	Records uint64      `cbor:"records" json:"records"`
	Root    ledger.Hash `cbor:"root" json:"root"`
	Link    ledger.Hash `cbor:"link" json:"link"`
	Seconds float64     `cbor:"seconds" json:"seconds"`
}

// ledgerError maps ledger errors to wire errors.
func ledgerError(err error) error {
	var ce *ledger.CheckError
	switch {
	case errors.As(err, &ce):
		return &Error{Code: ErrInvalidRecord.Code, Message: ce.Error(), Check: ce.CheckName()}
	case errors.Is(err, ledger.ErrNotFound):
		return errorf(ErrNotFound, "%v", err)
	case errors.Is(err, ledger.ErrClosed), errors.Is(err, ledger.ErrFailed):
		return errorf(ErrUnavailable, "%v", err)
	}
	return err
}

func init() {
	register(&command{name: "put", args: "kind payload", help: "make, sign and durably append a record", role: accounts.Writer,
		run: func(ctx context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a putArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			if len(a.Payload) == 0 {
				a.Payload = cbor.RawMessage{0xa0}
			}
			u, err := se.currentUser()
			if err != nil {
				return nil, err
			}
			rec, e, err := submit(ctx, se, u, a.Kind, a.Payload)
			if err != nil {
				se.srv.putFailed(err)
				return nil, err
			}
			return PutResult{ID: rec.ID, Height: e.Height, Link: e.Link}, nil
		}})
	register(&command{name: "get", args: "id | height", help: "one record with its entry",
		run: func(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a getArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			st := se.srv.cfg.Backend.Store()
			var (
				r   *ledger.SignedRecord
				e   ledger.Entry
				err error
			)
			switch {
			case a.ID != nil && a.Height == nil:
				r, e, err = st.Get(*a.ID)
			case a.Height != nil && a.ID == nil:
				r, e, err = st.GetByHeight(*a.Height)
			default:
				return nil, errorf(ErrBadRequest, "give exactly one of id and height")
			}
			if err != nil {
				return nil, ledgerError(err)
			}
			return recordResult(r, e), nil
		}})
	register(&command{name: "list", args: "from count", help: fmt.Sprintf("records from a height, at most %d", MaxList),
		run: func(ctx context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a listArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			if a.Count < 0 || a.Count > MaxList {
				return nil, errorf(ErrBadRequest, "count must be 0 to %d", MaxList)
			}
			if a.Count == 0 {
				a.Count = 100
			}
			st := se.srv.cfg.Backend.Store()
			size := st.Count()
			out := ListResult{Records: []RecordResult{}, Next: a.From, Size: size}
			stop := errors.New("page full")
			// Keep the answer well inside one message: a page ends early
			// when its records add up to half the message limit.
			budget := se.srv.Limits().MaxMessage / 2
			err := st.Iterate(ctx, a.From, func(r *ledger.SignedRecord, e ledger.Entry) error {
				if len(out.Records) == a.Count || e.Height >= size {
					return stop
				}
				cost := 2*len(r.RecordBytes()) + 256
				if len(out.Records) > 0 && cost > budget {
					return stop
				}
				budget -= cost
				out.Records = append(out.Records, recordResult(r, e))
				out.Next = e.Height + 1
				return nil
			})
			if err != nil && !errors.Is(err, stop) {
				return nil, ledgerError(err)
			}
			return out, nil
		}})
	register(&command{name: "has", args: "id", help: "whether the chain holds a record",
		run: func(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a hasArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			h, err := se.srv.cfg.Backend.Store().Height(a.ID)
			if errors.Is(err, ledger.ErrNotFound) {
				return HasResult{}, nil
			}
			if err != nil {
				return nil, ledgerError(err)
			}
			return HasResult{Has: true, Height: h}, nil
		}})
	register(&command{name: "head", help: "chain size, Merkle root and last link",
		run: func(_ context.Context, se *session, _ cbor.RawMessage) (any, error) {
			return se.srv.cfg.Backend.Store().Head(), nil
		}})
	register(&command{name: "checkpoint", help: "a checkpoint of the head signed by this node",
		run: func(_ context.Context, se *session, _ cbor.RawMessage) (any, error) {
			return signedCheckpoint(se.srv.cfg.Backend)
		}})
	register(&command{name: "proof.inclusion", args: "id [size]", help: "prove a record is in the tree of a size (default: the head)",
		run: inclusion})
	register(&command{name: "proof.consistency", args: "old new", help: "prove the tree of new extends the tree of old",
		run: func(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a consistencyArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			st := se.srv.cfg.Backend.Store()
			if a.Old > a.New || a.New > st.Count() {
				return nil, errorf(ErrBadRequest, "need old <= new <= %d", st.Count())
			}
			p, err := st.ConsistencyProof(a.Old, a.New)
			if err != nil {
				return nil, ledgerError(err)
			}
			oldRoot, err := st.RootAt(a.Old)
			if err != nil {
				return nil, ledgerError(err)
			}
			newRoot, err := st.RootAt(a.New)
			if err != nil {
				return nil, ledgerError(err)
			}
			return ConsistencyResult{Old: a.Old, New: a.New, OldRoot: oldRoot, NewRoot: newRoot, Proof: nonNil(p)}, nil
		}})
	register(&command{name: "verify", help: "verify the whole chain (can take a while)", role: accounts.Admin,
		run: func(ctx context.Context, se *session, _ cbor.RawMessage) (any, error) {
			rep, err := se.srv.cfg.Backend.Store().Verify(ctx, ledger.VerifyOptions{})
			if err != nil {
				var ce *ledger.ChainError
				if errors.As(err, &ce) {
					return nil, errorf(ErrConflict, "chain damaged at height %d: %v", ce.Height, ce.Err)
				}
				return nil, ledgerError(err)
			}
			return VerifyResult{Records: rep.Records, Root: rep.Root, Link: rep.Link, Seconds: rep.Duration.Seconds()}, nil
		}})
}

func nonNil(p [][]byte) [][]byte {
	if p == nil {
		return [][]byte{}
	}
	return p
}

func signedCheckpoint(b Backend) (CheckpointResult, error) {
	cp := b.Store().Checkpoint(b.Identity().ID(), time.Now())
	note, err := ledger.SignCheckpoint(cp, b.Identity())
	if err != nil {
		return CheckpointResult{}, err
	}
	return CheckpointResult{Size: cp.Size, Root: cp.Root, Link: cp.Link, Checkpoint: string(note)}, nil
}

func inclusion(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
	var a inclusionArgs
	if err := decodeArgs(raw, &a); err != nil {
		return nil, err
	}
	b := se.srv.cfg.Backend
	st := b.Store()
	idx, err := st.Height(a.ID)
	if err != nil {
		return nil, ledgerError(err)
	}
	var cp CheckpointResult
	if a.Size == 0 {
		// Prove against a checkpoint signed now, at the head.
		if cp, err = signedCheckpoint(b); err != nil {
			return nil, err
		}
		a.Size = cp.Size
	}
	if idx >= a.Size || a.Size > st.Count() {
		return nil, errorf(ErrBadRequest, "record %s is at height %d; size must be above it and at most %d", a.ID, idx, st.Count())
	}
	p, err := st.InclusionProof(idx, a.Size)
	if err != nil {
		return nil, ledgerError(err)
	}
	root := cp.Root
	if cp.Checkpoint == "" {
		if root, err = st.RootAt(a.Size); err != nil {
			return nil, ledgerError(err)
		}
	}
	return InclusionResult{Index: idx, Size: a.Size, Root: root, Proof: nonNil(p), Checkpoint: cp.Checkpoint}, nil
}

// ---- files ----

type pathArgs struct {
	Path string `cbor:"path"`
}

type writeArgs struct {
	Path   string `cbor:"path"`
	Offset int64  `cbor:"offset"`
	Data   []byte `cbor:"data"`
}

type commitArgs struct {
	Path   string `cbor:"path"`
	Size   int64  `cbor:"size"`
	SHA256 string `cbor:"sha256"`
}

type readArgs struct {
	Path   string `cbor:"path"`
	Offset int64  `cbor:"offset"`
	Length int    `cbor:"length"`
}

// OffsetResult is where an upload stands.
type OffsetResult struct {
	Offset int64 `cbor:"offset" json:"offset"`
}

// ReadResult is a piece of a file.
type ReadResult struct {
	Data []byte `cbor:"data" json:"-"`
	EOF  bool   `cbor:"eof" json:"eof"`
}

type lsArgs struct {
	Path  string `cbor:"path,omitempty"`
	From  int    `cbor:"from,omitempty"`
	Count int    `cbor:"count,omitempty"`
}

// ListFilesResult is a page of a directory's entries, by name. Next, when
// not zero, is the "from" of the following page.
type ListFilesResult struct {
	Entries []files.Info `cbor:"entries" json:"entries"`
	Next    int          `cbor:"next,omitempty" json:"next,omitempty"`
}

// PublishResult is the record that publishes a file's hash.
type PublishResult struct {
	ID     ledger.ID `cbor:"id" json:"id"`
	Height uint64    `cbor:"height" json:"height"`
	Path   string    `cbor:"path" json:"path"`
	Size   int64     `cbor:"size" json:"size"`
	SHA256 string    `cbor:"sha256" json:"sha256"`
}

// FilePublishKind is the record kind "file publish" appends.
const FilePublishKind = "file.publish"

func filesError(err error) error {
	switch {
	case errors.Is(err, files.ErrBadPath), errors.Is(err, files.ErrSymlink), errors.Is(err, files.ErrIsDir),
		errors.Is(err, files.ErrNotDir), errors.Is(err, files.ErrNotEmpty), errors.Is(err, files.ErrBadLength):
		return errorf(ErrBadRequest, "%v", err)
	case errors.Is(err, files.ErrNotFound), errors.Is(err, files.ErrNoUpload):
		return errorf(ErrNotFound, "%v", err)
	case errors.Is(err, files.ErrExists):
		return errorf(ErrExists, "%v", err)
	case errors.Is(err, files.ErrQuota):
		return errorf(ErrQuota, "%v", err)
	case errors.Is(err, files.ErrOffset), errors.Is(err, files.ErrChecksum):
		return errorf(ErrConflict, "%v", err)
	}
	return err
}

// fileCmd wraps a file command: it decodes the arguments and passes the
// caller's user name (files live in per-user folders).
func fileCmd[A any](f func(se *session, user string, a A) (any, error)) func(context.Context, *session, cbor.RawMessage) (any, error) {
	return func(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
		var a A
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		u, err := se.currentUser()
		if err != nil {
			return nil, err
		}
		res, err := f(se, u.Name, a)
		if err != nil {
			return nil, filesError(err)
		}
		return res, nil
	}
}

func init() {
	register(&command{name: "file.stat", args: "path", help: "size, time and SHA-256 of a file", role: accounts.Reader,
		run: fileCmd(func(se *session, user string, a pathArgs) (any, error) { return se.srv.cfg.Files.Stat(user, a.Path) })})
	register(&command{name: "file.ls", args: "[path] [from] [count]", help: "list a directory of your folder, a page at a time", role: accounts.Reader,
		run: fileCmd(func(se *session, user string, a lsArgs) (any, error) {
			if a.Count < 0 || a.Count > MaxList || a.From < 0 {
				return nil, errorf(ErrBadRequest, "count must be 0 to %d (0 means %d), from at least 0", MaxList, MaxList)
			}
			if a.Count == 0 {
				a.Count = MaxList
			}
			ents, err := se.srv.cfg.Files.List(user, a.Path)
			if err != nil {
				return nil, err
			}
			out := ListFilesResult{Entries: []files.Info{}}
			if a.From < len(ents) {
				end := min(len(ents), a.From+a.Count)
				out.Entries = ents[a.From:end]
				if end < len(ents) {
					out.Next = end
				}
			}
			return out, nil
		})})
	register(&command{name: "file.mkdir", args: "path", help: "create a directory", role: accounts.Writer, mode: ordered,
		run: fileCmd(func(se *session, user string, a pathArgs) (any, error) {
			return struct{}{}, se.srv.cfg.Files.Mkdir(user, a.Path)
		})})
	register(&command{name: "file.rmdir", args: "path", help: "remove an empty directory", role: accounts.Writer, mode: ordered,
		run: fileCmd(func(se *session, user string, a pathArgs) (any, error) {
			return struct{}{}, se.srv.cfg.Files.Rmdir(user, a.Path)
		})})
	register(&command{name: "file.rm", args: "path", help: "remove a file", role: accounts.Writer, mode: ordered,
		run: fileCmd(func(se *session, user string, a pathArgs) (any, error) {
			return struct{}{}, se.srv.cfg.Files.Remove(user, a.Path)
		})})
	register(&command{name: "file.upload", args: "path", help: "where an upload to path stands (to resume it)", role: accounts.Writer, mode: ordered,
		run: fileCmd(func(se *session, user string, a pathArgs) (any, error) {
			off, err := se.srv.cfg.Files.UploadOffset(user, a.Path)
			return OffsetResult{Offset: off}, err
		})})
	register(&command{name: "file.write", args: "path offset data", help: "append a piece of an upload (offset 0 starts over)", role: accounts.Writer, mode: ordered,
		run: fileCmd(func(se *session, user string, a writeArgs) (any, error) {
			if len(a.Data) > se.srv.Limits().MaxFileChunk {
				return nil, errorf(ErrTooLarge, "a piece is at most %d bytes", se.srv.Limits().MaxFileChunk)
			}
			off, err := se.srv.cfg.Files.Write(user, a.Path, a.Offset, a.Data)
			return OffsetResult{Offset: off}, err
		})})
	register(&command{name: "file.commit", args: "path size sha256", help: "finish an upload: length and SHA-256 must match", role: accounts.Writer, mode: ordered,
		run: fileCmd(func(se *session, user string, a commitArgs) (any, error) {
			return se.srv.cfg.Files.Commit(user, a.Path, a.Size, a.SHA256)
		})})
	register(&command{name: "file.read", args: "path offset length", help: "a piece of a file", role: accounts.Reader,
		run: fileCmd(func(se *session, user string, a readArgs) (any, error) {
			max := se.srv.Limits().MaxFileChunk
			if a.Length <= 0 || a.Length > max {
				return nil, errorf(ErrBadRequest, "length must be 1 to %d", max)
			}
			data, eof, err := se.srv.cfg.Files.Read(user, a.Path, a.Offset, a.Length)
			return ReadResult{Data: data, EOF: eof}, err
		})})
	register(&command{name: "file.publish", args: "path", help: "append a record of a file's SHA-256", role: accounts.Writer,
		run: func(ctx context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a pathArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			u, err := se.currentUser()
			if err != nil {
				return nil, err
			}
			info, err := se.srv.cfg.Files.Stat(u.Name, a.Path)
			if err != nil {
				return nil, filesError(err)
			}
			if info.Dir {
				return nil, errorf(ErrBadRequest, "%s is a directory", a.Path)
			}
			payload, err := ledger.EncodePayload(map[string]any{
				"path": info.Path, "size": info.Size, "sha256": info.SHA256, "owner": u.Name,
			})
			if err != nil {
				return nil, err
			}
			rec, e, err := se.srv.cfg.Backend.Put(ctx, FilePublishKind, payload, u.Name)
			if err != nil {
				return nil, ledgerError(err)
			}
			return PublishResult{ID: rec.ID, Height: e.Height, Path: info.Path, Size: info.Size, SHA256: info.SHA256}, nil
		}})
}

// ---- admin ----

type userArgs struct {
	Name     string `cbor:"name"`
	Role     string `cbor:"role,omitempty"`
	Password string `cbor:"password,omitempty"`
	Quota    *int64 `cbor:"quota,omitempty"`
}

// UsersResult lists accounts.
type UsersResult struct {
	Users []accounts.Public `cbor:"users" json:"users"`
}

type peerArgs struct {
	Addr string `cbor:"addr"`
}

// PeersResult lists configured peers.
type PeersResult struct {
	Peers []string `cbor:"peers" json:"peers"`
}

type limitsArgs struct {
	Set *Limits `cbor:"set,omitempty"`
}

// StatusResult describes the running node.
type StatusResult struct {
	Node          ledger.NodeID `cbor:"node" json:"node"`
	Network       string        `cbor:"network" json:"network"`
	Version       string        `cbor:"version" json:"version"`
	UptimeSeconds float64       `cbor:"uptime_seconds" json:"uptime_seconds"`
	Height        uint64        `cbor:"height" json:"height"`
	Root          ledger.Hash   `cbor:"root" json:"root"`
	Connections   Stats         `cbor:"connections" json:"connections"`
	HeapBytes     uint64        `cbor:"heap_bytes" json:"heap_bytes"`
	SysBytes      uint64        `cbor:"sys_bytes" json:"sys_bytes"`
	Goroutines    int           `cbor:"goroutines" json:"goroutines"`
	Dev           bool          `cbor:"dev" json:"dev"`
	PeerID        string        `cbor:"peer_id,omitempty" json:"peer_id,omitempty"`
	P2PAddrs      []string      `cbor:"p2p_addrs,omitempty" json:"p2p_addrs,omitempty"`
	Peers         int           `cbor:"peers" json:"peers"` // connected peers of this network
}

func accountsError(err error) error {
	switch {
	case errors.Is(err, accounts.ErrNoUser):
		return errorf(ErrNotFound, "%v", err)
	case errors.Is(err, accounts.ErrExists):
		return errorf(ErrExists, "%v", err)
	case errors.Is(err, accounts.ErrInvalid), errors.Is(err, accounts.ErrWeakPassword):
		return errorf(ErrBadRequest, "%v", err)
	case errors.Is(err, accounts.ErrLastAdmin):
		return errorf(ErrConflict, "%v", err)
	}
	return err
}

func userCmd(f func(se *session, a userArgs) (any, error)) func(context.Context, *session, cbor.RawMessage) (any, error) {
	return func(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
		var a userArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		res, err := f(se, a)
		if err != nil {
			return nil, accountsError(err)
		}
		se.log.Info("account change", "by", se.userName(), "target", a.Name)
		return res, nil
	}
}

func (se *session) userName() string {
	se.mu.Lock()
	defer se.mu.Unlock()
	return se.user
}

func init() {
	register(&command{name: "user.add", args: "name role [password]", help: "add a user (no password: a one-time one is made)", role: accounts.Admin,
		run: userCmd(func(se *session, a userArgs) (any, error) {
			role, err := accounts.ParseRole(a.Role)
			if err != nil {
				return nil, err
			}
			return se.srv.cfg.Accounts.Add(a.Name, role, a.Password)
		})})
	register(&command{name: "user.del", args: "name", help: "delete a user (files are kept)", role: accounts.Admin,
		run: userCmd(func(se *session, a userArgs) (any, error) { return struct{}{}, se.srv.cfg.Accounts.Delete(a.Name) })})
	register(&command{name: "user.enable", args: "name", help: "enable a user", role: accounts.Admin,
		run: userCmd(func(se *session, a userArgs) (any, error) {
			return struct{}{}, se.srv.cfg.Accounts.SetEnabled(a.Name, true)
		})})
	register(&command{name: "user.disable", args: "name", help: "disable a user (their sessions lose their rights)", role: accounts.Admin,
		run: userCmd(func(se *session, a userArgs) (any, error) {
			return struct{}{}, se.srv.cfg.Accounts.SetEnabled(a.Name, false)
		})})
	register(&command{name: "user.role", args: "name role", help: "change a user's role", role: accounts.Admin,
		run: userCmd(func(se *session, a userArgs) (any, error) {
			role, err := accounts.ParseRole(a.Role)
			if err != nil {
				return nil, err
			}
			return struct{}{}, se.srv.cfg.Accounts.SetRole(a.Name, role)
		})})
	register(&command{name: "user.quota", args: "name quota", help: "set a user's file quota in bytes", role: accounts.Admin,
		run: userCmd(func(se *session, a userArgs) (any, error) {
			if a.Quota == nil {
				return nil, errorf(ErrBadRequest, "quota is required")
			}
			return struct{}{}, se.srv.cfg.Accounts.SetQuota(a.Name, *a.Quota)
		})})
	register(&command{name: "user.reset-2fa", args: "name", help: "give a user a new TOTP secret", role: accounts.Admin,
		run: userCmd(func(se *session, a userArgs) (any, error) { return se.srv.cfg.Accounts.ResetTOTP(a.Name) })})
	register(&command{name: "user.reset-password", args: "name [password]", help: "set a one-time password the user must change", role: accounts.Admin,
		run: userCmd(func(se *session, a userArgs) (any, error) {
			pw, err := se.srv.cfg.Accounts.ResetPassword(a.Name, a.Password)
			return map[string]string{"password": pw}, err
		})})
	register(&command{name: "user.list", help: "list users", role: accounts.Admin,
		run: func(_ context.Context, se *session, _ cbor.RawMessage) (any, error) {
			return UsersResult{Users: se.srv.cfg.Accounts.List()}, nil
		}})
	register(&command{name: "peer.add", args: "addr", help: "add a replication peer (a multiaddr)", role: accounts.Admin,
		run: func(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a peerArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			if err := se.srv.cfg.Peers.Add(a.Addr); err != nil {
				return nil, errorf(ErrBadRequest, "%v", err)
			}
			return PeersResult{Peers: se.srv.cfg.Peers.List()}, nil
		}})
	register(&command{name: "peer.del", args: "addr", help: "remove a replication peer", role: accounts.Admin,
		run: func(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a peerArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			if err := se.srv.cfg.Peers.Remove(a.Addr); err != nil {
				return nil, errorf(ErrNotFound, "%v", err)
			}
			return PeersResult{Peers: se.srv.cfg.Peers.List()}, nil
		}})
	register(&command{name: "peer.list", help: "list replication peers", role: accounts.Admin,
		run: func(_ context.Context, se *session, _ cbor.RawMessage) (any, error) {
			return PeersResult{Peers: se.srv.cfg.Peers.List()}, nil
		}})
	register(&command{name: "limits", args: "[set]", help: "show the connection and rate limits, or change them", role: accounts.Admin,
		run: func(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a limitsArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			if a.Set != nil {
				if err := se.srv.SetLimits(*a.Set); err != nil {
					return nil, err
				}
				se.log.Info("limits changed", "by", se.userName())
			}
			return se.srv.Limits(), nil
		}})
	register(&command{name: "status", help: "uptime, connections, chain height, memory", role: accounts.Admin,
		run: func(_ context.Context, se *session, _ cbor.RawMessage) (any, error) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b := se.srv.cfg.Backend
			h := b.Store().Head()
			st := StatusResult{
				Node: b.Identity().ID(), Network: b.Genesis().Network, Version: se.srv.cfg.Version,
				UptimeSeconds: time.Since(se.srv.started).Seconds(), Height: h.Size, Root: h.Root,
				Connections: se.srv.Stats(), HeapBytes: ms.HeapAlloc, SysBytes: ms.Sys,
				Goroutines: runtime.NumGoroutine(), Dev: se.srv.cfg.Dev,
			}
			if r := se.srv.cfg.Replicator; r != nil {
				ns := r.Network()
				st.PeerID, st.P2PAddrs = ns.PeerID, ns.Addrs
				for _, p := range ns.Peers {
					if p.Ready {
						st.Peers++
					}
				}
			}
			return st, nil
		}})
}

// CommandNames lists every command, sorted.
func CommandNames() []string {
	out := make([]string, 0, len(commands))
	for n := range commands {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
