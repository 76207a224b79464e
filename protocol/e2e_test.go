package protocol_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/protocol"
)

type testNode struct {
	*node.Node
	dir      string
	addr     string
	password string // admin's one-time password
	known    string
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startNode runs a real node on a free loopback port.
func startNode(t testing.TB, dev bool) *testNode {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	g := ledger.NewGenesis("prototest")
	g.PowBits = 0
	if _, _, _, err := node.Init(dir, node.InitOptions{Genesis: g}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(context.Background(), node.Config{DataDir: dir, Listen: "127.0.0.1:0", P2PListen: []string{"/ip4/127.0.0.1/tcp/0"}, Dev: dev, Logger: quiet()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	b, err := os.ReadFile(node.AdminPasswordPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	pw := ""
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "password: "); ok {
			pw = v
		}
	}
	return &testNode{Node: n, dir: dir, addr: n.ClientAddr(), password: pw, known: filepath.Join(t.TempDir(), "known")}
}

func (tn *testNode) dial(t testing.TB) *protocol.Client {
	t.Helper()
	c, err := protocol.Dial(context.Background(), tn.addr, protocol.Options{KnownNodes: tn.known})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// admin logs in as admin and replaces the one-time password.
func (tn *testNode) admin(t testing.TB) *protocol.Client {
	t.Helper()
	c := tn.dial(t)
	ctx := context.Background()
	var lr protocol.LoginResult
	if err := c.Call(ctx, "login", map[string]string{"user": "admin", "password": tn.password}, &lr); err != nil {
		t.Fatalf("login: %v", err)
	}
	if lr.MustChange {
		if err := c.Call(ctx, "put", map[string]any{"kind": "note.text", "payload": map[string]any{}}, nil); !errors.Is(err, protocol.ErrMustChange) {
			t.Fatalf("put before passwd: %v", err)
		}
		if err := c.Call(ctx, "passwd", map[string]string{"old": tn.password, "new": "correct horse battery"}, nil); err != nil {
			t.Fatalf("passwd: %v", err)
		}
		tn.password = "correct horse battery"
	}
	return c
}

func TestSessionBasics(t *testing.T) {
	tn := startNode(t, true)
	c := tn.dial(t)
	ctx := context.Background()
	var h protocol.HelloResult
	if err := c.Call(ctx, "hello", nil, &h); err != nil {
		t.Fatal(err)
	}
	if h.Node != tn.Identity().ID() || h.Network != "prototest" || h.Protocol != 1 || h.Session == "" {
		t.Fatalf("hello = %+v", h)
	}
	if err := c.Call(ctx, "put", map[string]any{"kind": "note.text", "payload": map[string]any{"x": 1}}, nil); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("anonymous put: %v", err)
	}
	if err := c.Call(ctx, "nope", nil, nil); !errors.Is(err, protocol.ErrUnknownCommand) {
		t.Fatalf("unknown command: %v", err)
	}
	a := tn.admin(t)
	var pr protocol.PutResult
	if err := a.Call(ctx, "put", map[string]any{"kind": "note.text", "payload": map[string]any{"text": "hi"}}, &pr); err != nil {
		t.Fatalf("put: %v", err)
	}
	var rr protocol.RecordResult
	if err := c.Call(ctx, "get", map[string]any{"height": 0}, &rr); err != nil || rr.ID != pr.ID || rr.Author != "admin" {
		t.Fatalf("get: %+v %v", rr, err)
	}
	var inc protocol.InclusionResult
	if err := c.Call(ctx, "proof.inclusion", map[string]any{"id": pr.ID}, &inc); err != nil {
		t.Fatalf("proof: %v", err)
	}
	if err := ledger.VerifyInclusion(pr.ID, inc.Index, inc.Size, inc.Proof, inc.Root); err != nil {
		t.Fatalf("inclusion proof: %v", err)
	}
	if err := a.Rekey(ctx); err != nil {
		t.Fatalf("rekey: %v", err)
	}
	for i := range 5 {
		if err := a.Call(ctx, "put", map[string]any{"kind": "note.text", "payload": map[string]any{"i": i}}, nil); err != nil {
			t.Fatalf("put after rekey: %v", err)
		}
	}
}

func TestFailedLoginDropsThePreviousUser(t *testing.T) {
	tn := startNode(t, true)
	a := tn.admin(t)
	ctx := context.Background()
	// Pipelined: a failed login, then a put. The put must not run as admin.
	p1, err := a.Send("login", map[string]string{"user": "admin", "password": "not the password"})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := a.Send("put", map[string]any{"kind": "note.text", "payload": map[string]any{"x": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p1.Wait(ctx, nil); !errors.Is(err, protocol.ErrLoginFailed) {
		t.Fatalf("wrong login: %v", err)
	}
	if err := p2.Wait(ctx, nil); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("put after a failed login: %v, want unauthorized", err)
	}
}
