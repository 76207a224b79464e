package protocol

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flynn/noise"
	"github.com/pyvnode/pyvnode/ledger"
)

// ---- channel: tampering, replay, reordering, framing ----

// TestChannelAttacks runs each attack on its own session after the session
// has been shown to work. Each must end that session (the server closes the
// connection, and answers nothing the attack sent), while an honest client
// of the same server keeps being served.
func TestChannelAttacks(t *testing.T) {
	const frameSeconds = 0.4
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{MaxMessage: 64 << 10, MaxFileChunk: 32 << 10, FrameSeconds: frameSeconds})})
	honest := ts.dial(t)
	ts.login(t, honest, "writer")
	checkServed(t, honest)

	type attack struct {
		name string
		run  func(t *testing.T, rc *rawConn)
		// answered: the server may answer once (bad_request) before closing.
		answered bool
		// slow: the server cuts the session off after frame_seconds.
		slow bool
	}
	flip := func(pos func(f []byte) int) func(t *testing.T, rc *rawConn) {
		return func(t *testing.T, rc *rawConn) {
			f := rc.frame(t, 2, "hello", nil)
			f[pos(f)] ^= 0x01
			rc.write(t, f)
		}
	}
	attacks := []attack{
		{name: "bit flipped in the encrypted flags byte", run: flip(func([]byte) int { return 2 })},
		{name: "bit flipped in the middle", run: flip(func(f []byte) int { return len(f) / 2 })},
		{name: "bit flipped in the tag", run: flip(func(f []byte) int { return len(f) - 1 })},
		{name: "frame shortened by its length prefix", run: func(t *testing.T, rc *rawConn) {
			f := rc.frame(t, 2, "hello", nil)
			binary.BigEndian.PutUint16(f, uint16(len(f)-3))
			rc.write(t, f[:len(f)-1])
		}},
		{name: "replayed frame", run: func(t *testing.T, rc *rawConn) {
			f := rc.frame(t, 2, "hello", nil)
			rc.write(t, f)
			if r := rc.response(t); !r.OK || r.ID != 2 {
				t.Fatalf("original frame not answered: %+v", r)
			}
			rc.write(t, f)
		}},
		{name: "frame replayed from another session", run: func(t *testing.T, rc *rawConn) {
			// A frame at the very nonce rc's server expects next, but
			// sealed by another session.
			other := ts.dialRaw(t, "")
			defer other.tcp.Close()
			if r := other.call(t, 1, "hello", nil); !r.OK {
				t.Fatalf("other session: %+v", r)
			}
			rc.write(t, other.frame(t, 2, "hello", nil))
		}},
		{name: "reordered frames", run: func(t *testing.T, rc *rawConn) {
			f2 := rc.frame(t, 2, "hello", nil)
			f3 := rc.frame(t, 3, "hello", nil)
			rc.write(t, append(f3, f2...))
		}},
		{name: "dropped frame", run: func(t *testing.T, rc *rawConn) {
			_ = rc.frame(t, 2, "hello", nil)
			rc.write(t, rc.frame(t, 3, "hello", nil))
		}},
		{name: "truncated frame then end of stream", run: func(t *testing.T, rc *rawConn) {
			f := rc.frame(t, 2, "hello", nil)
			rc.write(t, f[:len(f)-5])
			rc.tcp.CloseWrite()
		}},
		{name: "truncated frame then silence", slow: true, run: func(t *testing.T, rc *rawConn) {
			f := rc.frame(t, 2, "hello", nil)
			rc.write(t, f[:len(f)-5])
		}},
		{name: "zero length prefix", run: func(t *testing.T, rc *rawConn) {
			rc.write(t, []byte{0, 0})
		}},
		{name: "length prefix below the tag size", run: func(t *testing.T, rc *rawConn) {
			rc.write(t, append([]byte{0, tagSize}, make([]byte, tagSize)...))
		}},
		{name: "largest length prefix with garbage", run: func(t *testing.T, rc *rawConn) {
			b := make([]byte, 2+MaxFrame)
			rand.Read(b)
			b[0], b[1] = 0xff, 0xff
			rc.write(t, b)
		}},
		{name: "largest length prefix then silence", slow: true, run: func(t *testing.T, rc *rawConn) {
			rc.write(t, append([]byte{0xff, 0xff}, make([]byte, 100)...))
		}},
		{name: "frame of random bytes", run: func(t *testing.T, rc *rawConn) {
			b := make([]byte, 2+60)
			rand.Read(b)
			binary.BigEndian.PutUint16(b, 60)
			rc.write(t, b)
		}},
		{name: "unknown flags", run: func(t *testing.T, rc *rawConn) {
			rc.write(t, sealFrame(t, rc.send, flagFinal|0x80, request(t, 2, "hello", nil)))
		}},
		{name: "message over max_message in one call", run: func(t *testing.T, rc *rawConn) {
			// A request the server would accept if it were small enough.
			big := request(t, 2, "file.write", map[string]any{"path": "x", "offset": 0, "data": make([]byte, 80<<10)})
			if err := rc.WriteMessage(big); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "message over max_message in many frames", run: func(t *testing.T, rc *rawConn) {
			chunk := bytes.Repeat([]byte{0x41}, 16<<10)
			var b []byte
			for range 5 {
				b = append(b, sealFrame(t, rc.send, 0, chunk)...)
			}
			b = append(b, sealFrame(t, rc.send, flagFinal, nil)...)
			rc.write(t, b)
		}},
		{name: "message of many empty frames then silence", slow: true, run: func(t *testing.T, rc *rawConn) {
			// Frames keep arriving but the message never ends: each frame
			// must come within frame_seconds, so stopping ends it.
			for range 3 {
				rc.write(t, sealFrame(t, rc.send, 0, nil))
				time.Sleep(50 * time.Millisecond)
			}
		}},
		{name: "not CBOR", answered: true, run: func(t *testing.T, rc *rawConn) {
			rc.write(t, sealFrame(t, rc.send, flagFinal, []byte("GET / HTTP/1.1\r\n\r\n")))
		}},
		{name: "empty message", answered: true, run: func(t *testing.T, rc *rawConn) {
			rc.write(t, sealFrame(t, rc.send, flagFinal, nil))
		}},
		{name: "request without cmd", answered: true, run: func(t *testing.T, rc *rawConn) {
			rc.write(t, sealFrame(t, rc.send, flagFinal, mustEncode(map[string]any{"id": 2})))
		}},
		{name: "request with an unknown field", answered: true, run: func(t *testing.T, rc *rawConn) {
			rc.write(t, sealFrame(t, rc.send, flagFinal, mustEncode(map[string]any{"id": 2, "cmd": "hello", "x": 1})))
		}},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			rc := ts.dialRaw(t, "")
			if r := rc.call(t, 1, "hello", nil); !r.OK {
				t.Fatalf("hello before the attack: %+v", r)
			}
			ts.waitSessions(t, 2)
			a.run(t, rc)
			if a.answered {
				r := rc.response(t)
				if r.OK || r.Error == nil || r.Error.Code != ErrBadRequest.Code {
					t.Fatalf("answer to a malformed request: %+v", r)
				}
			}
			within := 3 * time.Second
			start := time.Now()
			rc.tcp.SetReadDeadline(start.Add(within))
			var got bytes.Buffer
			_, err := got.ReadFrom(rc.r) // what the channel had buffered, then the socket
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server did not close the connection within %v", within)
			}
			if got.Len() != 0 {
				t.Fatalf("the server answered %d bytes to the attack", got.Len())
			}
			if el := time.Since(start); a.slow && el < time.Duration(frameSeconds*float64(time.Second))/2 {
				t.Fatalf("cut off after %v, before frame_seconds", el)
			}
			checkServed(t, honest)
			ts.waitSessions(t, 1)
		})
	}
	checkServed(t, ts.dial(t))
	if err := honest.Call(context.Background(), "put", map[string]any{"kind": "note.text", "payload": map[string]any{"x": 1}}, nil); err != nil {
		t.Fatalf("honest put after the attacks: %v", err)
	}
}

// TestHandshakeGarbage: connections that do not speak the handshake are
// closed (at once when the bytes cannot be a handshake, after
// handshake_seconds when they stall), and the server keeps serving.
func TestHandshakeGarbage(t *testing.T) {
	const hs = 0.5
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{HandshakeSeconds: hs})})
	honest := ts.dial(t)
	cases := []struct {
		name  string
		send  func(t *testing.T, nc *net.TCPConn)
		stall bool // only the handshake deadline ends it
	}{
		{name: "nothing", stall: true, send: func(*testing.T, *net.TCPConn) {}},
		{name: "zero-length message 1", send: func(t *testing.T, nc *net.TCPConn) { nc.Write([]byte{0, 0}) }},
		{name: "short message 1", send: func(t *testing.T, nc *net.TCPConn) { nc.Write([]byte{0, 5, 1, 2, 3, 4, 5}) }},
		{name: "HTTP request", send: func(t *testing.T, nc *net.TCPConn) {
			nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		}},
		{name: "random bytes then end of stream", send: func(t *testing.T, nc *net.TCPConn) {
			b := make([]byte, 200)
			rand.Read(b)
			nc.Write(b)
			nc.CloseWrite()
		}},
		{name: "random megabyte", send: func(t *testing.T, nc *net.TCPConn) {
			b := make([]byte, 1<<20)
			rand.Read(b)
			go nc.Write(b) // the server may close before reading it all
		}},
		{name: "message 1 then silence", stall: true, send: func(t *testing.T, nc *net.TCPConn) {
			e, _ := noise.DH25519.GenerateKeypair(nil)
			nc.Write(append([]byte{0, 32}, e.Public...))
		}},
		{name: "message 1 then garbage message 3", send: func(t *testing.T, nc *net.TCPConn) {
			e, _ := noise.DH25519.GenerateKeypair(nil)
			nc.Write(append([]byte{0, 32}, e.Public...))
			// read message 2, answer with a message 3 that cannot decrypt
			var hdr [2]byte
			nc.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := ioReadFull(nc, hdr[:]); err != nil {
				t.Fatalf("message 2: %v", err)
			}
			if _, err := ioReadFull(nc, make([]byte, binary.BigEndian.Uint16(hdr[:]))); err != nil {
				t.Fatalf("message 2: %v", err)
			}
			m3 := make([]byte, 2+64+16+20)
			rand.Read(m3)
			binary.BigEndian.PutUint16(m3, uint16(len(m3)-2))
			nc.Write(m3)
		}},
		{name: "garbage before a real handshake", stall: true, send: func(t *testing.T, nc *net.TCPConn) {
			// "xx" reads as a length of 30840: the server waits for it
			nc.Write([]byte("xx"))
			nc.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := ClientHandshake(nc, HandshakeConfig{}); err == nil {
				t.Fatal("handshake after garbage succeeded")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := ts.Stats().HandshakeFailures
			nc := tcpDial(t, ts.addr, "")
			start := time.Now()
			c.send(t, nc)
			expectClosed(t, nc, 5*time.Second)
			el := time.Since(start)
			if c.stall && el < time.Duration(hs*float64(time.Second))*9/10 {
				t.Fatalf("closed after %v, before handshake_seconds", el)
			}
			waitUntil(t, 2*time.Second, func() bool { return ts.Stats().HandshakeFailures > before }, "a handshake failure to be counted")
			checkServed(t, honest)
		})
	}
	if n := ts.sessions(); n != 1 {
		t.Fatalf("%d sessions, want only the honest one", n)
	}
}

func ioReadFull(nc net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := nc.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ---- identity ----

// forgeStatic builds a server static key whose hello the mutator changes.
func forgeStatic(t testing.TB, id *ledger.Identity, network string, mutate func(h *serverHello, k noise.DHKey)) *StaticKey {
	t.Helper()
	k, err := noise.DH25519.GenerateKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := serverHello{Node: id.Public(), Sig: ed25519.Sign(id.Key, staticKeyMessage(k.Public)), Network: network, Version: Version}
	if mutate != nil {
		mutate(&h, k)
	}
	return &StaticKey{Key: k, hello: mustEncode(h), Network: network}
}

// pipeHandshake runs both sides over net.Pipe; it returns the client's
// result and the server's error.
func pipeHandshake(t *testing.T, sk *StaticKey) (*Conn, error, error) {
	t.Helper()
	cn, sn := net.Pipe()
	defer cn.Close()
	defer sn.Close()
	deadline := time.Now().Add(5 * time.Second)
	cn.SetDeadline(deadline)
	sn.SetDeadline(deadline)
	serr := make(chan error, 1)
	go func() {
		_, err := ServerHandshake(sn, sk, HandshakeConfig{})
		serr <- err
	}()
	c, err := ClientHandshake(cn, HandshakeConfig{})
	if err != nil {
		cn.Close() // unblock the server waiting for message 3
	}
	return c, err, <-serr
}

func TestClientVerifiesNodeIdentity(t *testing.T) {
	id, _ := ledger.GenerateIdentity()
	other, _ := ledger.GenerateIdentity()
	const network = "idtest"

	c, err, serr := pipeHandshake(t, forgeStatic(t, id, network, nil))
	if err != nil || serr != nil {
		t.Fatalf("honest handshake: client %v, server %v", err, serr)
	}
	if c.Peer.Node != id.ID() || c.Peer.Network != network || len(c.ChannelBinding) != 32 {
		t.Fatalf("peer = %+v, binding %x", c.Peer, c.ChannelBinding)
	}

	cases := []struct {
		name   string
		mutate func(h *serverHello, k noise.DHKey)
		want   error
	}{
		{"signed by a different key than the node id claimed", func(h *serverHello, k noise.DHKey) {
			h.Sig = ed25519.Sign(other.Key, staticKeyMessage(k.Public))
		}, ErrNodeIdentity},
		{"claims another node's id", func(h *serverHello, k noise.DHKey) { h.Node = other.Public() }, ErrNodeIdentity},
		{"genuine signature over another static key (replayed hello)", func(h *serverHello, k noise.DHKey) {
			k2, _ := noise.DH25519.GenerateKeypair(nil)
			h.Sig = ed25519.Sign(id.Key, staticKeyMessage(k2.Public))
		}, ErrNodeIdentity},
		{"signature without the context string", func(h *serverHello, k noise.DHKey) {
			h.Sig = ed25519.Sign(id.Key, k.Public)
		}, ErrNodeIdentity},
		{"bit flipped in the signature", func(h *serverHello, k noise.DHKey) { h.Sig[7] ^= 0x10 }, ErrNodeIdentity},
		{"no signature", func(h *serverHello, k noise.DHKey) { h.Sig = nil }, ErrNodeIdentity},
		{"truncated node id", func(h *serverHello, k noise.DHKey) { h.Node = h.Node[:31] }, ErrNodeIdentity},
		{"no node id", func(h *serverHello, k noise.DHKey) { h.Node = nil }, ErrNodeIdentity},
		{"other protocol version", func(h *serverHello, k noise.DHKey) { h.Version = Version + 1 }, ErrHandshake},
		{"invalid network name", func(h *serverHello, k noise.DHKey) { h.Network = "Bad Name" }, ErrHandshake},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err, _ := pipeHandshake(t, forgeStatic(t, id, network, tc.mutate))
			if !errors.Is(err, tc.want) {
				t.Fatalf("client accepted or failed wrongly: %v, want %v", err, tc.want)
			}
			if tc.want == ErrHandshake && errors.Is(err, ErrNodeIdentity) {
				t.Fatalf("%v", err)
			}
		})
	}

	t.Run("hello that is not CBOR", func(t *testing.T) {
		sk := forgeStatic(t, id, network, nil)
		sk.hello = []byte("not cbor")
		if _, err, _ := pipeHandshake(t, sk); !errors.Is(err, ErrHandshake) {
			t.Fatalf("got %v", err)
		}
	})
}

// TestDialRefusesForgedNode: a server presenting a static key signed by a
// key other than the node id it claims is refused by Dial, and the
// known-nodes file does not learn it.
func TestDialRefusesForgedNode(t *testing.T) {
	impostor, _ := ledger.GenerateIdentity()
	var claimed ledger.NodeID
	ts := startServer(t, serverOptions{static: func(id *ledger.Identity, network string) *StaticKey {
		claimed = id.ID()
		return forgeStatic(t, id, network, func(h *serverHello, k noise.DHKey) {
			h.Sig = ed25519.Sign(impostor.Key, staticKeyMessage(k.Public))
		})
	}})
	known := filepath.Join(t.TempDir(), "known_nodes")
	_, err := Dial(context.Background(), ts.addr, Options{KnownNodes: known})
	if !errors.Is(err, ErrNodeIdentity) {
		t.Fatalf("Dial = %v, want ErrNodeIdentity", err)
	}
	if _, serr := os.Stat(known); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("known-nodes file written for a forged node: %v", serr)
	}
	_, err = Dial(context.Background(), ts.addr, Options{ExpectNode: &claimed})
	if !errors.Is(err, ErrNodeIdentity) {
		t.Fatalf("Dial pinned to the claimed id = %v, want ErrNodeIdentity", err)
	}
}

// clientHandshakeWith runs the initiator side by hand with a chosen client
// hello payload.
func clientHandshakeWith(nc net.Conn, payload []byte) error {
	static, _ := noise.DH25519.GenerateKeypair(nil)
	hs, err := noise.NewHandshakeState(noise.Config{CipherSuite: cipherSuite, Pattern: noise.HandshakeXX,
		Initiator: true, Prologue: []byte(Prologue), StaticKeypair: static})
	if err != nil {
		return err
	}
	c := newConn(nc, 0)
	out, _, _, _ := hs.WriteMessage(nil, nil)
	if err := c.writeRaw(out); err != nil {
		return err
	}
	msg, err := c.readRaw()
	if err != nil {
		return err
	}
	if _, _, _, err := hs.ReadMessage(nil, msg); err != nil {
		return err
	}
	out, _, _, err = hs.WriteMessage(nil, payload)
	if err != nil {
		return err
	}
	return c.writeRaw(out)
}

func TestServerRefusesBadClientHello(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{})})
	for name, payload := range map[string][]byte{
		"other version": mustEncode(clientHello{Version: Version + 1}),
		"no version":    mustEncode(map[string]any{"sw": "x"}),
		"not CBOR":      []byte{0xff, 0x00},
		"empty":         nil,
		"unknown field": mustEncode(map[string]any{"v": 1, "evil": true}),
	} {
		t.Run(name, func(t *testing.T) {
			nc := tcpDial(t, ts.addr, "")
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := clientHandshakeWith(nc, payload); err != nil {
				t.Fatalf("handshake messages: %v", err)
			}
			expectClosed(t, nc, 3*time.Second)
		})
	}
	if n := ts.sessions(); n != 0 {
		t.Fatalf("%d sessions after refused hellos", n)
	}
	checkServed(t, ts.dial(t))
}

// ---- trust on first use ----

func TestTrustOnFirstUse(t *testing.T) {
	a := startServer(t, serverOptions{limits: looseConnLimits(Limits{})})
	addr := a.addr
	idA := a.be.id.ID()
	known := filepath.Join(t.TempDir(), "cfg", "known_nodes") // the directory is created too
	ctx := context.Background()

	type seen struct {
		node     ServerIdentity
		replaced *ledger.NodeID
	}
	var news []seen
	opts := func() Options {
		return Options{KnownNodes: known, DialTimeout: 5 * time.Second, OnNewNode: func(_ string, n ServerIdentity, r *ledger.NodeID) {
			news = append(news, seen{n, r})
		}}
	}
	// First contact remembers the node.
	c, err := Dial(ctx, addr, opts())
	if err != nil {
		t.Fatalf("first contact: %v", err)
	}
	c.Close()
	b, err := os.ReadFile(known)
	if err != nil {
		t.Fatalf("known-nodes file not written: %v", err)
	}
	if !strings.Contains(string(b), addr+" "+idA.String()+"\n") {
		t.Fatalf("known-nodes file:\n%s", b)
	}
	if fi, _ := os.Stat(known); fi.Mode().Perm() != 0o600 {
		t.Fatalf("known-nodes mode %v", fi.Mode().Perm())
	}
	if len(news) != 1 || news[0].node.Node != idA || news[0].replaced != nil {
		t.Fatalf("OnNewNode calls: %+v", news)
	}
	// Second contact: known, nothing new.
	c, err = Dial(ctx, addr, opts())
	if err != nil {
		t.Fatalf("second contact: %v", err)
	}
	c.Close()
	if len(news) != 1 {
		t.Fatalf("OnNewNode called again: %+v", news)
	}

	// Another node takes over the address.
	a.stop()
	for i := 0; ; i++ { // the port is free again at once on Linux; retry briefly anyway
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			break
		}
		if i == 40 {
			t.Fatalf("address not free again: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b2 := startServer(t, serverOptions{listen: addr, limits: looseConnLimits(Limits{})})
	idB := b2.be.id.ID()
	before, _ := os.ReadFile(known)
	_, err = Dial(ctx, addr, opts())
	if !errors.Is(err, ErrNodeChanged) {
		t.Fatalf("changed node: %v, want ErrNodeChanged", err)
	}
	if !strings.Contains(err.Error(), idA.Short()) || !strings.Contains(err.Error(), idB.Short()) {
		t.Fatalf("error does not name both nodes: %v", err)
	}
	if after, _ := os.ReadFile(known); !bytes.Equal(before, after) {
		t.Fatal("known-nodes file changed by a refused connection")
	}
	if len(news) != 1 {
		t.Fatalf("OnNewNode told of a refused node: %+v", news)
	}

	// AcceptNewKey accepts and rewrites.
	o := opts()
	o.AcceptNewKey = true
	c, err = Dial(ctx, addr, o)
	if err != nil {
		t.Fatalf("AcceptNewKey: %v", err)
	}
	c.Close()
	b, _ = os.ReadFile(known)
	if !strings.Contains(string(b), addr+" "+idB.String()+"\n") || strings.Contains(string(b), idA.String()) {
		t.Fatalf("known-nodes file after AcceptNewKey:\n%s", b)
	}
	if len(news) != 2 || news[1].node.Node != idB || news[1].replaced == nil || *news[1].replaced != idA {
		t.Fatalf("OnNewNode after AcceptNewKey: %+v", news)
	}
	c, err = Dial(ctx, addr, opts())
	if err != nil {
		t.Fatalf("after AcceptNewKey: %v", err)
	}
	c.Close()

	// ExpectNode pins, and neither reads nor writes the file.
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("this is not a known-nodes file\n"), 0o600)
	c, err = Dial(ctx, addr, Options{KnownNodes: junk, ExpectNode: &idB})
	if err != nil {
		t.Fatalf("pinned to the right node: %v", err)
	}
	c.Close()
	if b, _ := os.ReadFile(junk); string(b) != "this is not a known-nodes file\n" {
		t.Fatalf("pinned dial touched the known-nodes file: %q", b)
	}
	_, err = Dial(ctx, addr, Options{KnownNodes: known, ExpectNode: &idA})
	if !errors.Is(err, ErrWrongNode) {
		t.Fatalf("pinned to another node: %v, want ErrWrongNode", err)
	}
	// Without a pin the malformed file is an error, not a silent trust.
	if _, err = Dial(ctx, addr, Options{KnownNodes: junk}); err == nil || errors.Is(err, ErrNodeChanged) {
		t.Fatalf("malformed known-nodes file: %v", err)
	}
	// The same node under another address name is a separate entry.
	port := addr[strings.LastIndex(addr, ":"):]
	c, err = Dial(ctx, "localhost"+port, opts())
	if err == nil {
		c.Close()
		b, _ = os.ReadFile(known)
		if strings.Count(string(b), idB.String()) != 2 {
			t.Fatalf("known-nodes file:\n%s", b)
		}
	}
}

// ---- rekey ----

// TestRekeyUnderLoad: several goroutines pipeline calls (hello and put)
// while Rekey runs again and again on the same client; every call must
// succeed and every put must land.
func TestRekeyUnderLoad(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{MaxInflight: 8})})
	c := ts.dial(t)
	ts.login(t, c, "writer")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Workers keep calling until they have made perWorker calls and the
	// rekeys are over, so every rekey runs with calls in flight.
	const workers, perWorker, window, rekeys = 5, 100, 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	var puts, calls, duringRekeys atomic.Int64
	var rekeysDone atomic.Bool
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var q []*Pending
			var kinds []string
			wait := func() error {
				p, k := q[0], kinds[0]
				q, kinds = q[1:], kinds[1:]
				calls.Add(1)
				if !rekeysDone.Load() {
					duringRekeys.Add(1)
				}
				if k == "put" {
					var pr PutResult
					if err := p.Wait(ctx, &pr); err != nil {
						return fmt.Errorf("put: %w", err)
					}
					if pr.ID == (ledger.ID{}) {
						return errors.New("put without an id")
					}
					return nil
				}
				var h HelloResult
				if err := p.Wait(ctx, &h); err != nil {
					return fmt.Errorf("hello: %w", err)
				}
				if h.User != "writer" {
					return fmt.Errorf("hello says user %q", h.User)
				}
				return nil
			}
			for i := 0; i < perWorker || !rekeysDone.Load(); i++ {
				cmd, args := "hello", any(nil)
				if i%5 == 0 {
					cmd, args = "put", map[string]any{"kind": "note.text", "payload": map[string]any{"w": w, "i": i}}
					puts.Add(1)
				}
				p, err := c.Send(cmd, args)
				if err != nil {
					errs <- err
					return
				}
				q, kinds = append(q, p), append(kinds, cmd)
				if len(q) == window {
					if err := wait(); err != nil {
						errs <- err
						return
					}
				}
			}
			for len(q) > 0 {
				if err := wait(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	var keys [][32]byte
	go func() {
		defer wg.Done()
		defer rekeysDone.Store(true)
		for range rekeys {
			if err := c.Rekey(ctx); err != nil {
				errs <- fmt.Errorf("rekey: %w", err)
				return
			}
			c.conn.wmu.Lock()
			keys = append(keys, c.conn.send.UnsafeKey())
			c.conn.wmu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if calls.Load() < workers*perWorker || len(keys) != rekeys {
		t.Fatalf("%d calls, %d rekeys", calls.Load(), len(keys))
	}
	if duringRekeys.Load() < rekeys {
		t.Fatalf("only %d calls overlapped the rekeys", duringRekeys.Load())
	}
	if got := ts.be.puts.Load(); got != puts.Load() {
		t.Fatalf("%d puts landed, want %d", got, puts.Load())
	}
	seen := map[[32]byte]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Fatal("a rekey reused a key")
		}
		seen[k] = true
	}
	checkServed(t, c)
}

// tapConn records every byte read and written.
type tapConn struct {
	net.Conn
	mu      sync.Mutex
	in, out []byte
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.in = append(c.in, b[:n]...)
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, b...)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *tapConn) lens() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.in), len(c.out)
}

func (c *tapConn) since(in, out int) ([]byte, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.in[in:]...), append([]byte(nil), c.out[out:]...)
}

// splitFrames cuts a byte stream into frames (without length prefixes).
func splitFrames(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("stray byte")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			t.Fatalf("short frame")
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

func open(key [32]byte, nonce uint64, frame []byte) ([]byte, error) {
	return noise.UnsafeNewCipherState(cipherSuite, key, nonce).Decrypt(nil, nil, frame)
}

// TestRekeyRetiresOldKeys: after a rekey both directions use new keys;
// what was sent after it cannot be opened with the old keys, and a frame
// sealed with the old client key ends the session.
func TestRekeyRetiresOldKeys(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{})})
	tap := &tapConn{Conn: tcpDial(t, ts.addr, "")}
	conn, err := ClientHandshake(tap, HandshakeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(conn, ts.addr)
	defer c.Close()
	ctx := context.Background()
	checkServed(t, c)

	oldSend, sendN := c.conn.send.UnsafeKey(), c.conn.send.Nonce()
	oldRecv, recvN := c.conn.recv.UnsafeKey(), c.conn.recv.Nonce()
	oldCK := c.conn.ck
	mi, mo := tap.lens()
	if err := c.Rekey(ctx); err != nil {
		t.Fatal(err)
	}
	checkServed(t, c)
	newSend, newRecv := c.conn.send.UnsafeKey(), c.conn.recv.UnsafeKey()
	if newSend == oldSend || newRecv == oldRecv || newSend == newRecv || c.conn.ck == oldCK {
		t.Fatal("rekey did not replace the keys")
	}
	in, out := tap.since(mi, mo)
	outF, inF := splitFrames(t, out), splitFrames(t, in)
	if len(outF) != 2 || len(inF) != 2 {
		t.Fatalf("%d frames out, %d in; want 2 each (rekey, hello)", len(outF), len(inF))
	}
	// The rekey itself travels under the old keys.
	if pt, err := open(oldSend, sendN, outF[0]); err != nil || !bytes.Contains(pt, []byte("rekey")) {
		t.Fatalf("rekey request under the old key: %v", err)
	}
	if _, err := open(oldRecv, recvN, inF[0]); err != nil {
		t.Fatalf("rekey answer under the old key: %v", err)
	}
	// What follows opens with the new keys only.
	if pt, err := open(newSend, 0, outF[1]); err != nil || !bytes.Contains(pt, []byte("hello")) {
		t.Fatalf("request after rekey under the new key: %v", err)
	}
	if _, err := open(newRecv, 0, inF[1]); err != nil {
		t.Fatalf("answer after rekey under the new key: %v", err)
	}
	for n := uint64(0); n < sendN+4; n++ {
		if _, err := open(oldSend, n, outF[1]); err == nil {
			t.Fatalf("old client key opens traffic after the rekey (nonce %d)", n)
		}
	}
	for n := uint64(0); n < recvN+4; n++ {
		if _, err := open(oldRecv, n, inF[1]); err == nil {
			t.Fatalf("old server key opens traffic after the rekey (nonce %d)", n)
		}
	}
	// A frame under the old key, continuing its nonces, is refused.
	stale := sealFrame(t, noise.UnsafeNewCipherState(cipherSuite, oldSend, sendN+1), flagFinal, request(t, 999, "hello", nil))
	tap.Conn.Write(stale)
	select {
	case <-c.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("the server kept the session after a frame under the old key")
	}
}

// TestRekeyBadKey: a rekey with an unusable ephemeral key is refused and
// the session ends (its key state is no longer certain).
func TestRekeyBadKey(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{})})
	for name, e := range map[string][]byte{
		"all zero (low order)": make([]byte, 32),
		"short":                make([]byte, 31),
		"missing":              nil,
	} {
		t.Run(name, func(t *testing.T) {
			rc := ts.dialRaw(t, "")
			r := rc.call(t, 1, "rekey", map[string]any{"e": e})
			if r.OK || r.Error == nil || r.Error.Code != ErrBadRequest.Code {
				t.Fatalf("rekey with a bad key: %+v", r)
			}
			expectClosed(t, rc.tcp, 3*time.Second)
		})
	}
}
