package protocol

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/flynn/noise"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol/accounts"
	"github.com/pyvnode/pyvnode/protocol/files"
)

// ---- FuzzReadMessage ----

// fuzzOp is one step of the structured mode: a frame sealed with the real
// key, or raw bytes spliced into the stream.
type fuzzOp struct {
	raw   bool
	flags byte
	data  []byte
}

// parseOps reads ops from b: a selector byte (selector%4 == 3 means raw
// bytes), then for a frame its flags byte; then a length byte and up to
// that many bytes of data.
func parseOps(b []byte) []fuzzOp {
	var ops []fuzzOp
	for len(b) > 0 {
		var op fuzzOp
		op.raw = b[0]%4 == 3
		b = b[1:]
		if !op.raw {
			if len(b) == 0 {
				break
			}
			op.flags, b = b[0], b[1:]
		}
		n := 0
		if len(b) > 0 {
			n, b = int(b[0]), b[1:]
		}
		n = min(n, len(b))
		op.data, b = b[:n], b[n:]
		ops = append(ops, op)
	}
	return ops
}

// FuzzReadMessage feeds a server-side channel, after a real handshake over
// net.Pipe, an arbitrary byte stream. In raw mode (first byte even) the
// bytes are the encrypted stream as they are: nothing may panic, and no
// message may come out. In structured mode the bytes describe frames
// sealed with the client's real key (any flags, any sizes) with raw bytes
// spliced in: the messages read must be exactly those a simple model of the
// framing rules predicts, and the error that ends the stream the one it
// predicts.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0, 0, 17, 1, 2, 3})
	f.Add(append([]byte{0, 0xff, 0xff}, make([]byte, 64)...))
	f.Add([]byte{1, 10, 0, 1, 5, 'h', 'e', 'l', 'l', 'o'})          // one final frame
	f.Add([]byte{1, 10, 0, 0, 3, 'a', 'b', 'c', 0, 1, 2, 'd', 'e'}) // two frames, one message
	// over the limit (64 bytes): 60 bytes, then 10 more
	f.Add(append(append(append([]byte{1, 0, 0, 0, 60}, make([]byte, 60)...), 0, 1, 10), make([]byte, 10)...))
	// exactly at the limit
	f.Add(append(append(append([]byte{1, 0, 0, 0, 60}, make([]byte, 60)...), 0, 1, 4), make([]byte, 4)...))
	f.Add([]byte{1, 10, 0, 3, 2, 'h', 'i', 0, 1, 1, 'x'})                         // unknown flag
	f.Add([]byte{1, 10, 0, 1, 1, 'a', 3, 2, 0, 9, 0, 1, 1, 'b'})                  // garbage between frames
	f.Add([]byte{1, 10, 0, 0, 0, 0, 0, 0})                                        // empty non-final frames
	f.Add([]byte{1, 10, 0, 1, 0, 0, 1, 0, 0, 0, 4, 1, 2, 3, 4, 0, 1, 3, 5, 6, 7}) // several messages
	id, err := ledger.GenerateIdentity()
	if err != nil {
		f.Fatal(err)
	}
	sk, err := NewStaticKey(id, "fuzz", nil)
	if err != nil {
		f.Fatal(err)
	}
	cstatic, err := noise.DH25519.GenerateKeypair(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || len(in) > 1<<16 {
			return
		}
		cn, sn := net.Pipe()
		defer cn.Close()
		defer sn.Close()
		deadline := time.Now().Add(10 * time.Second)
		cn.SetDeadline(deadline)
		sn.SetDeadline(deadline)
		maxMessage := 64
		if len(in) > 1 {
			maxMessage += 4 * int(in[1])
		}
		type hsResult struct {
			c   *Conn
			err error
		}
		srvc := make(chan hsResult, 1)
		go func() {
			c, err := ServerHandshake(sn, sk, HandshakeConfig{MaxMessage: maxMessage})
			srvc <- hsResult{c, err}
		}()
		client, err := ClientHandshake(cn, HandshakeConfig{Static: cstatic})
		if err != nil {
			t.Fatalf("client handshake: %v", err)
		}
		hr := <-srvc
		if hr.err != nil {
			t.Fatalf("server handshake: %v", hr.err)
		}
		server := hr.c

		// What to send, and (structured mode) what should come out.
		var stream []byte
		structured := in[0]%2 == 1
		var want [][]byte
		var wantErr error // nil: unspecified (after raw bytes)
		if !structured {
			stream = in[1:]
		} else {
			var body []byte
			if len(in) > 2 {
				body = in[2:]
			}
			var cur []byte
			inMessage, done := false, false
			for _, op := range parseOps(body) {
				if op.raw {
					stream = append(stream, op.data...)
					if len(op.data) > 0 && !done {
						done, wantErr = true, nil
					}
					continue
				}
				stream = append(stream, sealFrame(t, client.send, op.flags, op.data)...)
				if done {
					continue
				}
				switch {
				case op.flags&^flagFinal != 0:
					done, wantErr = true, ErrBadFrame
				case len(cur)+len(op.data) > maxMessage:
					done, wantErr = true, ErrMessageTooLong
				default:
					cur = append(cur, op.data...)
					inMessage = true
					if op.flags&flagFinal != 0 {
						want = append(want, cur)
						cur, inMessage = nil, false
					}
				}
			}
			if !done {
				wantErr = io.EOF
				if inMessage {
					wantErr = io.ErrUnexpectedEOF
				}
			}
		}
		wdone := make(chan struct{})
		go func() {
			defer close(wdone)
			cn.Write(stream)
			cn.Close()
		}()
		var got [][]byte
		var rerr error
		for {
			msg, err := server.ReadMessageTimeout(time.Second, time.Second)
			if err != nil {
				rerr = err
				break
			}
			if len(msg) > maxMessage {
				t.Fatalf("message of %d bytes over the limit %d", len(msg), maxMessage)
			}
			got = append(got, msg)
			if len(got) > len(in) {
				t.Fatal("more messages than input bytes")
			}
		}
		sn.Close()
		<-wdone
		var ne net.Error
		if errors.As(rerr, &ne) && ne.Timeout() {
			t.Fatalf("reader timed out: %v", rerr)
		}
		if !structured {
			if len(got) != 0 {
				t.Fatalf("raw bytes made %d messages", len(got))
			}
			return
		}
		if len(got) > len(want) {
			t.Fatalf("%d messages, model says %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("message %d = %x, want %x", i, got[i], want[i])
			}
		}
		switch {
		case wantErr == nil: // after raw bytes: anything but success
			if len(got) < len(want) && rerr == nil {
				t.Fatal("stream ended without an error")
			}
		case len(got) != len(want):
			t.Fatalf("%d messages, model says %d (err %v)", len(got), len(want), rerr)
		case wantErr == io.ErrUnexpectedEOF && errors.Is(rerr, io.EOF):
			// A message begun with empty frames only looks unstarted to the
			// reader (its buffer is still nil); it ends as a plain EOF.
		case !errors.Is(rerr, wantErr):
			t.Fatalf("stream ended with %v, model says %v", rerr, wantErr)
		}
	})
}

// ---- FuzzDecodeRequest ----

// discardConn is a net.Conn that swallows writes: the replies of a session
// under fuzzing go nowhere.
type discardConn struct{}

func (discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (discardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1)} }
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

var knownCodes = map[string]bool{}

func init() {
	for _, e := range []*Error{ErrBadRequest, ErrUnknownCommand, ErrUnauthorized, ErrForbidden, ErrLoginFailed,
		ErrCodeRequired, ErrLockedOut, ErrMustChange, ErrNotFound, ErrExists, ErrInvalidRecord, ErrTooLarge,
		ErrQuota, ErrConflict, ErrBusy, ErrUnavailable, ErrInternal} {
		knownCodes[e.Code] = true
	}
}

// newFuzzServer is one server for a whole fuzz run, with a real chain,
// accounts and files in the target's temporary directory.
func newFuzzServer(f *testing.F) *Server {
	dir := f.TempDir()
	id, err := ledger.GenerateIdentity()
	if err != nil {
		f.Fatal(err)
	}
	g := ledger.NewGenesis("fuzz")
	g.PowBits = 0
	st, err := ledger.Open(ledger.Options{Dir: filepath.Join(dir, "chain"), Genesis: g, Logger: discardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	acc, err := accounts.Open(filepath.Join(dir, "users.json"), accounts.Options{Params: cheapParams,
		FailureDelay: time.Nanosecond, MaxFailures: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	for name, role := range map[string]accounts.Role{"admin": accounts.Admin, "writer": accounts.Writer, "reader": accounts.Reader} {
		if _, err := acc.Add(name, role, testPasswords[name]); err != nil {
			f.Fatal(err)
		}
	}
	fs, err := files.Open(filepath.Join(dir, "files"), func(string) int64 { return 4 << 20 })
	if err != nil {
		f.Fatal(err)
	}
	srv, err := NewServer(Config{Backend: &memBackend{id: id, g: g, st: st}, Accounts: acc, Files: fs,
		Peers: &memPeers{}, Dev: true, Logger: discardLogger(), Version: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	return srv
}

// FuzzDecodeRequest decodes arbitrary bytes as a request, as the session
// does, and runs it through the command table with the checks a session
// makes, as nobody, a reader, a writer or the admin (the request id picks
// which). Nothing may panic, every refusal must be a *protocol.Error with a
// documented code other than "internal", and every result must encode.
func FuzzDecodeRequest(f *testing.F) {
	seed := func(id uint64, cmd string, args any) {
		raw, _ := encodeArgs(args)
		b, _ := encMode.Marshal(Request{ID: id, Cmd: cmd, Args: raw})
		f.Add(b)
	}
	for role := range uint64(4) {
		seed(role, "hello", nil)
		seed(role, "help", map[string]any{"cmd": "put"})
		seed(role, "timeout", map[string]any{"seconds": 30})
		seed(role, "rekey", map[string]any{"e": make([]byte, 32)})
		seed(role, "login", map[string]any{"user": "writer", "password": testPasswords["writer"]})
		seed(role, "passwd", map[string]any{"old": "a", "new": "b"})
		seed(role, "put", map[string]any{"kind": "note.text", "payload": map[string]any{"t": "x"}})
		seed(role, "put", map[string]any{"kind": "BAD KIND", "payload": []byte{1}})
		seed(role, "get", map[string]any{"height": 0})
		seed(role, "get", map[string]any{"id": make([]byte, 32)})
		seed(role, "list", map[string]any{"from": 0, "count": 5})
		seed(role, "has", map[string]any{"id": make([]byte, 32)})
		seed(role, "head", nil)
		seed(role, "checkpoint", nil)
		seed(role, "proof.inclusion", map[string]any{"id": make([]byte, 32)})
		seed(role, "proof.consistency", map[string]any{"old": 0, "new": 1})
		seed(role, "verify", nil)
		seed(role, "file.write", map[string]any{"path": "a/b", "offset": 0, "data": []byte("xyz")})
		seed(role, "file.commit", map[string]any{"path": "a", "size": 3, "sha256": "00"})
		seed(role, "file.read", map[string]any{"path": "a", "offset": 0, "length": 10})
		seed(role, "file.stat", map[string]any{"path": "../a"})
		seed(role, "file.ls", map[string]any{"path": "."})
		seed(role, "file.mkdir", map[string]any{"path": "d"})
		seed(role, "file.rmdir", map[string]any{"path": "d"})
		seed(role, "file.rm", map[string]any{"path": "a"})
		seed(role, "file.upload", map[string]any{"path": "a"})
		seed(role, "file.publish", map[string]any{"path": "a"})
		seed(role, "user.add", map[string]any{"name": "u", "role": "reader", "password": "0123456789"})
		seed(role, "user.role", map[string]any{"name": "u", "role": "writer"})
		seed(role, "user.quota", map[string]any{"name": "u", "quota": 10})
		seed(role, "user.disable", map[string]any{"name": "u"})
		seed(role, "user.del", map[string]any{"name": "admin"})
		seed(role, "user.reset-password", map[string]any{"name": "u"})
		seed(role, "user.list", nil)
		seed(role, "peer.add", map[string]any{"addr": "/ip4/1.2.3.4/tcp/1"})
		seed(role, "peer.list", nil)
		seed(role, "limits", map[string]any{"set": map[string]any{"max_inflight": 10}})
		seed(role, "status", nil)
		seed(role, "quit", nil)
		seed(role, "nope", nil)
		seed(role, "timeout", map[string]any{"seconds": "soon"})     // wrong type
		seed(role, "file.stat", map[string]any{"path": "a", "x": 1}) // unknown field
		seed(role, "list", 7)                                        // not a map
	}
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa2, 0x62, 'i', 'd', 0x01, 0x63, 'c', 'm', 'd', 0x64, 'h', 'e', 'a', 'd'})
	f.Add([]byte{0xa3, 0x62, 'i', 'd', 0x01, 0x63, 'c', 'm', 'd', 0x63, 'g', 'e', 't', 0x64, 'a', 'r', 'g', 's', 0xf6})
	users := []string{"", "reader", "writer", "admin"}
	srv := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		var req Request
		if err := decMode.Unmarshal(msg, &req); err != nil || req.Cmd == "" {
			return // the session answers bad_request and closes
		}
		cmd := commands[req.Cmd]
		if cmd == nil {
			return // unknown_command
		}
		conn := newConn(discardConn{}, 0)
		var k [32]byte
		conn.send, conn.recv = newCipherState(k), newCipherState(k)
		se := newSession(srv, conn, "192.0.2.1")
		defer se.cancel()
		se.user = users[req.ID%4]
		if cmd.name == "rekey" {
			se.rekey(req) // replies itself; must not panic
			return
		}
		err := se.allowed(cmd)
		var res any
		if err == nil {
			ctx, cancel := context.WithTimeout(se.ctx, 20*time.Second)
			res, err = cmd.run(ctx, se, req.Args)
			cancel()
		}
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("%s by %q: error %T %v is not a *protocol.Error (it would go out as \"internal\")", req.Cmd, se.user, err, err)
			}
			if !knownCodes[pe.Code] || pe.Code == ErrInternal.Code {
				t.Fatalf("%s by %q: error code %q (%v)", req.Cmd, se.user, pe.Code, pe)
			}
			return
		}
		if _, err := encodeArgs(res); err != nil {
			t.Fatalf("%s: result does not encode: %v", req.Cmd, err)
		}
		se.reply(req.ID, res, nil)
	})
}
