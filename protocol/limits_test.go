package protocol

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixedBug fails a test whose check shows a bug found (and fixed) while
// these tests were written.
func fixedBug(t *testing.T, what string) {
	t.Helper()
	t.Fatal("a fixed bug is back: " + what)
}

// tryConnect connects from a local loopback address and runs the
// handshake; the server refusing the connection shows as an error.
func (ts *testServer) tryConnect(t testing.TB, local string) (*rawConn, error) {
	t.Helper()
	nc := tcpDial(t, ts.addr, local)
	nc.SetDeadline(time.Now().Add(3 * time.Second))
	c, err := ClientHandshake(nc, HandshakeConfig{})
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return &rawConn{Conn: c, tcp: nc}, nil
}

// admitted is the number of connections the server holds (sessions and
// handshakes in progress).
func (ts *testServer) admitted() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for _, c := range ts.perAddr {
		n += c
	}
	return n
}

func TestMaxConnsPerAddr(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{MaxConns: 10, MaxConnsPerAddr: 2})})
	a, b := ts.dial(t), ts.dial(t)
	refused := ts.Stats().Refused
	if _, err := Dial(context.Background(), ts.addr, Options{ExpectNode: ptr(ts.be.id.ID())}); err == nil {
		t.Fatal("a third connection from the same address was admitted")
	}
	if ts.Stats().Refused != refused+1 {
		t.Fatalf("refused = %d, want %d", ts.Stats().Refused, refused+1)
	}
	if _, err := ts.tryConnect(t, "127.0.0.2"); err != nil {
		t.Fatalf("another address was refused: %v", err)
	}
	checkServed(t, a)
	checkServed(t, b)
	a.Close()
	waitUntil(t, 3*time.Second, func() bool {
		_, err := ts.tryConnect(t, "")
		return err == nil
	}, "a freed slot to admit a new connection")
	checkServed(t, b)
}

func ptr[T any](v T) *T { return &v }

// TestMaxConns: the total bound counts sessions and handshakes in
// progress, across addresses.
func TestMaxConns(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{MaxConns: 3, MaxConnsPerAddr: 2, HandshakeSeconds: 0.5})})
	c1, c2 := ts.dial(t), ts.dial(t)
	if _, err := ts.tryConnect(t, "127.0.0.2"); err != nil {
		t.Fatalf("third connection: %v", err)
	}
	if _, err := ts.tryConnect(t, "127.0.0.3"); err == nil {
		t.Fatal("a fourth connection was admitted over max_conns")
	}
	c1.Close()
	waitUntil(t, 3*time.Second, func() bool { return ts.admitted() == 2 }, "the closed session to be released")
	// A connection that never handshakes holds a slot...
	half := tcpDial(t, ts.addr, "127.0.0.4")
	waitUntil(t, 3*time.Second, func() bool { return ts.admitted() == 3 }, "the half-open connection to be admitted")
	if _, err := ts.tryConnect(t, "127.0.0.5"); err == nil {
		t.Fatal("admitted over max_conns while a handshake was pending")
	}
	// ...until handshake_seconds cut it off.
	expectClosed(t, half, 3*time.Second)
	waitUntil(t, 3*time.Second, func() bool { return ts.admitted() == 2 }, "the half-open connection to be released")
	if _, err := ts.tryConnect(t, "127.0.0.5"); err != nil {
		t.Fatalf("refused after the slot was freed: %v", err)
	}
	checkServed(t, c2)
}

func TestConnRate(t *testing.T) {
	ts := startServer(t, serverOptions{limits: Limits{ConnRate: 1, ConnBurst: 3}})
	for i := range 3 {
		rc, err := ts.tryConnect(t, "")
		if err != nil {
			t.Fatalf("connection %d within the burst: %v", i, err)
		}
		rc.Close()
	}
	if _, err := ts.tryConnect(t, ""); err == nil {
		t.Fatal("connection over the burst admitted")
	}
	if _, err := ts.tryConnect(t, "127.0.0.2"); err != nil {
		t.Fatalf("another address limited too: %v", err)
	}
	time.Sleep(1100 * time.Millisecond) // one token at 1/s
	if _, err := ts.tryConnect(t, ""); err != nil {
		t.Fatalf("refused after the rate allowed one more: %v", err)
	}
	if _, err := ts.tryConnect(t, ""); err == nil {
		t.Fatal("second connection after one refill admitted")
	}
}

// TestLimitsCommand: the admin's 'limits' shows and changes the limits;
// bad values are refused, other roles are forbidden, and changed values
// apply to new connections, including the rate of an address already seen.
func TestLimitsCommand(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{})})
	ctx := context.Background()
	r := ts.dial(t)
	ts.login(t, r, "reader")
	if err := r.Call(ctx, "limits", nil, nil); errCode(err) != ErrForbidden.Code {
		t.Fatalf("reader 'limits': %v", err)
	}
	r.Close()
	ts.waitSessions(t, 0)
	a := ts.dial(t)
	ts.login(t, a, "admin")
	var got Limits
	if err := a.Call(ctx, "limits", nil, &got); err != nil {
		t.Fatal(err)
	}
	if got != ts.Limits() || got.MaxInflight != 64 || got.ConnRate != 10000 {
		t.Fatalf("limits = %+v", got)
	}
	for name, set := range map[string]map[string]any{
		"max_message too small":        {"max_message": 1000},
		"max_message too large":        {"max_message": 100 << 20},
		"per address over total":       {"max_conns": 5, "max_conns_per_addr": 10},
		"chunk over message":           {"max_file_chunk": 4 << 20},
		"idle over max idle":           {"idle_seconds": 100, "max_idle_seconds": 50},
		"max_inflight too large":       {"max_inflight": 5000},
		"unknown field":                {"max_everything": 1},
		"wrong type":                   {"max_conns": "many"},
		"max_idle_seconds over a day":  {"max_idle_seconds": 100000},
		"max_conns over one hundred k": {"max_conns": 200000, "max_conns_per_addr": 1},
	} {
		before := ts.Limits()
		if err := a.Call(ctx, "limits", map[string]any{"set": set}, nil); errCode(err) != ErrBadRequest.Code {
			t.Errorf("%s: %v, want bad_request", name, err)
		}
		if ts.Limits() != before {
			t.Errorf("%s: limits changed by a refused set", name)
		}
	}
	// Two connections per address: the admin's and one more.
	if err := a.Call(ctx, "limits", map[string]any{"set": map[string]any{"max_conns_per_addr": 2, "conn_rate": 10000, "conn_burst": 10000}}, &got); err != nil {
		t.Fatal(err)
	}
	if got.MaxConnsPerAddr != 2 || got.MaxConns != 256 || ts.Limits().MaxConnsPerAddr != 2 {
		t.Fatalf("after set: %+v", got)
	}
	second, err := ts.tryConnect(t, "")
	if err != nil {
		t.Fatalf("second connection: %v", err)
	}
	if _, err := ts.tryConnect(t, ""); err == nil {
		t.Fatal("third connection admitted over the new per-address limit")
	}
	second.tcp.Close()
	waitUntil(t, 3*time.Second, func() bool { return ts.admitted() == 1 }, "the second connection to be released")
	// Lowering the rate applies to 127.0.0.1, whose limiter exists already.
	if err := a.Call(ctx, "limits", map[string]any{"set": map[string]any{"conn_rate": 0.5, "conn_burst": 1}}, nil); err != nil {
		t.Fatal(err)
	}
	if rc, err := ts.tryConnect(t, ""); err != nil {
		t.Fatalf("first connection after lowering the rate: %v", err)
	} else {
		rc.tcp.Close()
	}
	if _, err := ts.tryConnect(t, ""); err == nil {
		t.Fatal("the lowered connection rate was not applied to an address already seen")
	}
	checkServed(t, a)
}

// TestSlowLoris: a client that starts a frame and trickles its bytes is cut
// off after frame_seconds, long before the idle timeout.
func TestSlowLoris(t *testing.T) {
	const frame = 0.4
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{FrameSeconds: frame, IdleSeconds: 20})})
	honest := ts.dial(t)
	rc := ts.dialRaw(t, "")
	f := rc.frame(t, 1, "help", map[string]any{"cmd": strings.Repeat("x", 300)})
	start := time.Now()
	stop := make(chan struct{})
	var sent int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, b := range f {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := rc.tcp.Write([]byte{b}); err != nil {
				return
			}
			sent++
		}
	}()
	expectClosed(t, rc.tcp, 5*time.Second)
	el := time.Since(start)
	close(stop)
	wg.Wait()
	if sent >= len(f) {
		t.Fatalf("the whole frame got through (%d bytes)", sent)
	}
	if el < time.Duration(frame*float64(time.Second)) || el > 3*time.Second {
		t.Fatalf("cut off after %v, want about %v", el, frame)
	}
	checkServed(t, honest)
}

// TestFrameSecondsBoundsAMessage: docs/PROTOCOL.md §8 says "a message that
// began must finish arriving within frame_seconds". The code restarts the
// deadline at every frame (channel.go, ReadMessageTimeout), so a client can
// keep one message arriving for ever, one frame at a time, and hold up to
// max_message of server memory per session meanwhile.
func TestFrameSecondsBoundsAMessage(t *testing.T) {
	const frame = 0.4
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{FrameSeconds: frame, IdleSeconds: 20})})
	rc := ts.dialRaw(t, "")
	msg := request(t, 1, "help", map[string]any{"cmd": strings.Repeat("x", 300)})
	start := time.Now()
	for i := 0; i < 8; i++ { // 8 frames, 150 ms apart: 1.2 s for the message
		end := min(len(msg), (i+1)*len(msg)/8)
		flags := byte(0)
		if i == 7 {
			flags = flagFinal
		}
		rc.tcp.Write(sealFrame(t, rc.send, flags, msg[i*len(msg)/8:end]))
		time.Sleep(150 * time.Millisecond)
	}
	expectClosed(t, rc.tcp, 3*time.Second)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("closed after %v", el)
	}
}

// TestMaxInflight: with max_inflight requests running, the session stops
// reading (later requests wait, even cheap ones) and resumes as soon as
// one finishes; long pipelines still complete.
func TestMaxInflight(t *testing.T) {
	ts := startServer(t, serverOptions{gate: true, limits: looseConnLimits(Limits{MaxInflight: 2})})
	c := ts.dial(t)
	ts.login(t, c, "writer")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var puts []*Pending
	for i := range 5 {
		p, err := c.Send("put", map[string]any{"kind": "note.text", "payload": map[string]any{"i": i}})
		if err != nil {
			t.Fatal(err)
		}
		puts = append(puts, p)
	}
	hello, err := c.Send("hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	err = hello.Wait(short, nil)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hello answered while max_inflight puts were running: %v", err)
	}
	// The hello's pending entry is gone; send another behind the puts.
	hello, _ = c.Send("hello", nil)
	for range 5 {
		ts.be.gate <- struct{}{}
	}
	for i, p := range puts {
		if err := p.Wait(ctx, nil); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if err := hello.Wait(ctx, nil); err != nil {
		t.Fatalf("hello after the puts: %v", err)
	}
	// A long pipeline through a window of two.
	var q []*Pending
	for range 500 {
		p, err := c.Send("hello", nil)
		if err != nil {
			t.Fatal(err)
		}
		q = append(q, p)
	}
	for i, p := range q {
		if err := p.Wait(ctx, nil); err != nil {
			t.Fatalf("pipelined hello %d: %v", i, err)
		}
	}
}

// TestIdleTimeout: a session with no message within idle_seconds is closed;
// each message restarts the wait; 'timeout' changes it for one session
// within 1..max_idle_seconds.
func TestIdleTimeout(t *testing.T) {
	const idle = 0.4
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{IdleSeconds: idle, MaxIdleSeconds: 5})})
	ctx := context.Background()
	short, long := ts.dial(t), ts.dial(t)

	for _, bad := range []float64{0, 0.5, 5.5, math.Inf(1), -1} {
		if err := short.Call(ctx, "timeout", map[string]any{"seconds": bad}, nil); errCode(err) != ErrBadRequest.Code {
			t.Fatalf("timeout %v: %v, want bad_request", bad, err)
		}
	}
	// Messages closer together than idle keep sessions open.
	for range 3 {
		time.Sleep(time.Duration(idle * 0.5 * float64(time.Second)))
		checkServed(t, short)
		checkServed(t, long)
	}
	// Only a logged-in session may hold its slot longer than the default.
	if err := long.Call(ctx, "timeout", map[string]any{"seconds": 1}, nil); errCode(err) != ErrBadRequest.Code {
		t.Fatalf("anonymous timeout above the default: %v, want bad_request", err)
	}
	ts.login(t, long, "reader")
	var tr TimeoutResult
	if err := long.Call(ctx, "timeout", map[string]any{"seconds": 1}, &tr); err != nil || tr.Seconds != 1 {
		t.Fatalf("timeout 1: %+v %v", tr, err)
	}
	longStart := time.Now()
	checkServed(t, short)
	start := time.Now()
	closedAfter := func(c *Client, from time.Time) time.Duration {
		select {
		case <-c.Done():
			return time.Since(from)
		case <-time.After(4 * time.Second):
			t.Fatal("idle session not closed")
			return 0
		}
	}
	if el := closedAfter(short, start); el < time.Duration(idle*0.8*float64(time.Second)) || el > 3*time.Second {
		t.Fatalf("idle session closed after %v, want about %vs", el, idle)
	}
	if el := closedAfter(long, longStart); el < 900*time.Millisecond {
		t.Fatalf("session with 'timeout 1' closed after %v: the command did not apply", el)
	}
}

// TestTimeoutNaN: 'timeout' with NaN seconds passes the range check
// (commands.go, "timeout": NaN < 1 and NaN > max are both false) and is
// accepted; the session's idle time becomes NaN, which session.run then
// treats as "no idle deadline" (the stale frame deadline applies instead).
func TestTimeoutNaN(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{})})
	c := ts.dial(t)
	if err := c.Call(context.Background(), "timeout", map[string]any{"seconds": math.NaN()}, nil); errCode(err) != ErrBadRequest.Code {
		fixedBug(t, "'timeout' accepts NaN seconds (commands.go, timeout)")
		t.Fatalf("timeout NaN: %v, want bad_request", err)
	}
}

// TestSlowReaderIsCutOff: a client that sends requests and never reads the
// answers must not hold its session (and the answers' memory) for ever.
// The server sets no write deadline (server.go handle clears the deadline
// after the handshake; Conn.WriteMessage never sets one): the reply
// goroutines block in Write, the read loop blocks on the max_inflight
// slots, and the idle timeout never fires because nothing is reading.
func TestSlowReaderIsCutOff(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{IdleSeconds: 0.5, FrameSeconds: 0.5, MaxInflight: 4})})
	rc := ts.dialRaw(t, "")
	rc.tcp.SetReadBuffer(4096)
	var b []byte
	for i := range 2000 {
		b = append(b, rc.frame(t, uint64(i+1), "help", nil)...)
	}
	go rc.tcp.Write(b)
	waitUntil(t, 5*time.Second, func() bool { return ts.sessions() == 0 }, "the server to drop a session that does not read")
}

// TestFileChunkLimit: a file piece over max_file_chunk is too_large; a read
// asking for more is bad_request.
func TestFileChunkLimit(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{MaxFileChunk: 8 << 10})})
	c := ts.dial(t)
	ts.login(t, c, "writer")
	ctx := context.Background()
	err := c.Call(ctx, "file.write", map[string]any{"path": "f", "offset": 0, "data": make([]byte, 8<<10+1)}, nil)
	if errCode(err) != ErrTooLarge.Code {
		t.Fatalf("oversized piece: %v", err)
	}
	if err := c.Call(ctx, "file.write", map[string]any{"path": "f", "offset": 0, "data": make([]byte, 8<<10)}, nil); err != nil {
		t.Fatalf("piece at the limit: %v", err)
	}
	if err := c.Call(ctx, "file.commit", map[string]any{"path": "f", "size": 8 << 10, "sha256": sha256hex(make([]byte, 8<<10))}, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, -1, 8<<10 + 1} {
		if err := c.Call(ctx, "file.read", map[string]any{"path": "f", "offset": 0, "length": n}, nil); errCode(err) != ErrBadRequest.Code {
			t.Fatalf("read of %d: %v", n, err)
		}
	}
	var rr ReadResult
	if err := c.Call(ctx, "file.read", map[string]any{"path": "f", "offset": 0, "length": 8 << 10}, &rr); err != nil || len(rr.Data) != 8<<10 || !rr.EOF {
		t.Fatalf("read at the limit: %d bytes, eof %v, %v", len(rr.Data), rr.EOF, err)
	}
}

// TestLimitsRefuseOverflowingDurations: 'limits' checks no range for
// handshake_seconds or frame_seconds (server.go Limits.validate), and
// seconds() converts to a time.Duration that overflows above about 292
// years (or for NaN/Inf) into a negative duration. handshake_seconds 1e10
// then puts every handshake deadline in the past: no client (the admin
// included) can connect until the node restarts. frame_seconds 1e10 turns
// the slow-loris deadline off (frame > 0 is false).
func TestLimitsRefuseOverflowingDurations(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{})})
	a := ts.dial(t)
	ts.login(t, a, "admin")
	for _, field := range []string{"handshake_seconds", "frame_seconds"} {
		set := map[string]any{field: 1e10, "conn_rate": 10000, "conn_burst": 10000}
		err := a.Call(context.Background(), "limits", map[string]any{"set": set}, nil)
		if errCode(err) != ErrBadRequest.Code {
			if field == "handshake_seconds" {
				if _, cerr := ts.tryConnect(t, ""); cerr != nil {
					t.Logf("with handshake_seconds 1e10 no client can connect: %v", cerr)
				}
			}
			fixedBug(t, "'limits' accepts durations that overflow (server.go Limits.validate)")
			t.Fatalf("%s 1e10: %v, want bad_request", field, err)
		}
	}
}

// TestOversizedAnswerIsAnError: an answer larger than max_message cannot be
// sent; session.reply then closes the connection (WriteMessage fails with
// ErrMessageTooLong, reply calls conn.Close), so the client sees its session
// die instead of an error. file.ls answers a whole directory in one
// message, and directories cost no quota, so any writer can make a folder
// they can no longer list (here 300 entries against a 64 KiB max_message;
// about 40 000 short names against the default 4 MiB).
func TestOversizedAnswerIsAnError(t *testing.T) {
	ts := startServer(t, serverOptions{limits: looseConnLimits(Limits{MaxMessage: 64 << 10, MaxFileChunk: 8 << 10})})
	c := ts.dial(t)
	ts.login(t, c, "writer")
	ctx := context.Background()
	for i := range 300 {
		if err := ts.files.Mkdir("writer", fmt.Sprintf("%03d-%s", i, strings.Repeat("n", 240))); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Call(ctx, "file.ls", nil, nil)
	if errCode(err) == "" {
		return // listed in full: fine too
	}
	var pe *Error
	if !errors.As(err, &pe) {
		fixedBug(t, "an answer over max_message closes the session (session.go reply)")
		t.Fatalf("file.ls of a large folder: %v (the session was closed)", err)
	}
	checkServed(t, c)
}
