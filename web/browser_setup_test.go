package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/nodelog"
	"github.com/pyvnode/pyvnode/protocol"
)

// The browser tests drive Debian's chromium (docs: .ci/run installs it).
// Without it they skip, unless PYVNODE_REQUIRE_BROWSER=1 says CI must
// run them.
const requireBrowserEnv = "PYVNODE_REQUIRE_BROWSER"

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "no chromium on this machine: the browser tests need Debian's chromium (apt-get install chromium)"
	if os.Getenv(requireBrowserEnv) == "1" {
		t.Fatalf("%s, and %s=1", msg, requireBrowserEnv)
	}
	t.Skip(msg)
	return ""
}

// browser is a headless chromium with one tab. Page exceptions and
// Content-Security-Policy violations are collected so that a test can fail
// on them; other console errors are logged.
type browser struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string // exceptions and CSP violations
	logs []string // other console errors (answers the page expects, such as 401)
	done chan struct{}
}

func newBrowser(t *testing.T, ctx context.Context) *browser {
	t.Helper()
	exe := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(func(f string, a ...any) {
		t.Logf("chromedp: "+f, a...)
	}))
	b := &browser{ctx: bctx, done: make(chan struct{})}
	// Start the browser now, so that its start-up is not charged to the
	// first step's wait.
	if err := chromedp.Do(bctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("start chromium (%s): %v", exe, err)
	}
	msgs := chromedp.Console(bctx)
	go func() {
		defer close(b.done)
		for m, err := range msgs {
			if err != nil {
				return // the tab closed
			}
			b.note(m)
		}
	}()
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		<-b.done
	})
	return b
}

func (b *browser) note(m chromedp.ConsoleMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	line := fmt.Sprintf("%s %s: %s (%s:%d)", m.Type, m.Source, m.Text, m.URL, m.Line+1)
	switch {
	case m.IsException():
		b.errs = append(b.errs, line)
	case strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy"):
		b.errs = append(b.errs, line)
	case m.Type == chromedp.ConsoleError:
		b.logs = append(b.logs, line)
	}
}

// problems returns the page errors seen so far, and logs the rest.
func (b *browser) problems(t *testing.T) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.logs {
		t.Logf("browser console: %s", l)
	}
	b.logs = nil
	return append([]string(nil), b.errs...)
}

func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits until a JavaScript expression is true in the page.
func (b *browser) waitJS(t *testing.T, what, expr string, timeout time.Duration) {
	t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void]("Boolean("+expr+")",
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('main') ? document.querySelector('main').innerText.slice(0, 1500) : ''`))
		t.Fatalf("waiting for %s (%s): %v\npage reads:\n%s", what, expr, err, body)
	}
}

// evalAsync evaluates an expression whose value is a promise and decodes
// what it resolves to into out.
func evalAsync[T any](t *testing.T, b *browser, what, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// click clicks the first element the CSS selector finds, once visible.
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)
}

// typeIn types into an input with key events, after emptying it.
func typeIn(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(setValue(sel, ""), chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible))
}

// setValue sets a form control's value at once and tells the page, as a
// paste would.
func setValue(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`void (() => {
		const e = document.querySelector(%q);
		e.value = %q;
		e.dispatchEvent(new Event('input', {bubbles: true}));
		e.dispatchEvent(new Event('change', {bubbles: true}));
	})()`, sel, value))
}

// nav clicks a link of the navigation bar and waits for its view.
func (b *browser) nav(t *testing.T, view string) {
	t.Helper()
	b.do(t, "open "+view, click("#nav-"+view))
	b.waitJS(t, "view "+view, fmt.Sprintf(`document.querySelector('[data-testid="view-%s"]') !== null`, view), 10*time.Second)
}

// screenshot saves a full-page PNG under artifacts/screenshots at the
// repository root.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	dir := filepath.Join("..", "artifacts", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// From the top, or the sticky navigation bar is drawn where the page
	// was scrolled to; and let charts and the last answers settle.
	b.do(t, "settle", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`), chromedp.Sleep(150*time.Millisecond))
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(path)
	t.Logf("screenshot %s", abs)
}

// ---- the node ----

const adminPassword = "correct horse battery staple"

type panelNode struct {
	*node.Node
	dir   string
	base  string // http://127.0.0.1:port
	admin *protocol.Client
	clerk *protocol.Client // an authority: ballots and registrations
}

// startPanelNode starts a real node with HTTP, the client protocol and
// replication on loopback; it logs in the admin over the client protocol
// (replacing the one-time password) and adds an authority, clerk.
func startPanelNode(t *testing.T, ctx context.Context) *panelNode {
	t.Helper()
	dir := t.TempDir()
	hub := nodelog.NewHub(2000)
	n, err := node.Start(ctx, node.Config{
		DataDir: dir, Listen: "127.0.0.1:0", P2PListen: []string{"/ip4/127.0.0.1/tcp/0"},
		HTTP: "127.0.0.1:0", Dev: true, Out: nopWriter{}, Version: "0.0.0-browser-test",
		Logger:      slog.New(hub.Handler(nodelog.StreamNode, slog.LevelDebug)),
		Replication: slog.New(hub.Handler(nodelog.StreamReplication, slog.LevelDebug)),
		LogHub:      hub,
	})
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	if n.HTTPAddr() == "" {
		t.Fatal("the node serves no HTTP")
	}
	tn := &panelNode{Node: n, dir: dir, base: "http://" + n.HTTPAddr()}
	b, err := os.ReadFile(node.AdminPasswordPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	otp := ""
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "password: "); ok {
			otp = v
		}
	}
	tn.admin = tn.dial(t, ctx)
	var lr protocol.LoginResult
	if err := tn.admin.Call(ctx, "login", map[string]string{"user": "admin", "password": otp}, &lr); err != nil {
		t.Fatalf("admin login with the one-time password: %v", err)
	}
	if err := tn.admin.Call(ctx, "passwd", map[string]string{"old": otp, "new": adminPassword}, nil); err != nil {
		t.Fatalf("passwd: %v", err)
	}
	if err := tn.admin.Call(ctx, "user.add", map[string]string{"name": "clerk", "role": "authority", "password": "clerk password 1"}, nil); err != nil {
		t.Fatalf("user.add clerk: %v", err)
	}
	tn.clerk = tn.dial(t, ctx)
	if err := tn.clerk.Call(ctx, "login", map[string]string{"user": "clerk", "password": "clerk password 1"}, nil); err != nil {
		t.Fatalf("clerk login: %v", err)
	}
	return tn
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func (tn *panelNode) dial(t *testing.T, ctx context.Context) *protocol.Client {
	t.Helper()
	id := tn.Identity().ID()
	c, err := protocol.Dial(ctx, tn.ClientAddr(), protocol.Options{ExpectNode: &id, Software: "browser-test"})
	if err != nil {
		t.Fatalf("dial the client protocol: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// protoPut appends a record through the client protocol.
func protoPut(t *testing.T, ctx context.Context, c *protocol.Client, kind string, payload map[string]any) protocol.PutResult {
	t.Helper()
	raw, err := ledger.EncodePayload(payload)
	if err != nil {
		t.Fatalf("payload %v: %v", payload, err)
	}
	var r protocol.PutResult
	if err := c.Call(ctx, "put", map[string]any{"kind": kind, "payload": cbor.RawMessage(raw)}, &r); err != nil {
		t.Fatalf("put %s %v: %v", kind, payload, err)
	}
	return r
}

// seedApps puts a ballot with votes, a fund with donations and
// disbursements, and resource accounts with use, so that the views have
// something to chart.
func (tn *panelNode) seedApps(t *testing.T, ctx context.Context) {
	t.Helper()
	now := time.Now()
	protoPut(t, ctx, tn.clerk, "vote.ballot", map[string]any{"ballot": "council-2026", "question": "Who should chair the council?",
		"choices": []any{"Amira", "Bruno", "Chen"}, "opens": now.Add(-time.Hour).Unix(), "closes": now.Add(24 * time.Hour).Unix()})
	for i, choice := range []string{"Amira", "Chen", "Amira", "Bruno", "Amira"} {
		voter := fmt.Sprintf("voter-%d", i+1)
		r := protoPut(t, ctx, tn.clerk, "vote.register", map[string]any{"ballot": "council-2026", "voter": voter})
		var got protocol.RecordResult
		if err := tn.clerk.Call(ctx, "get", map[string]any{"id": r.ID}, &got); err != nil {
			t.Fatalf("get registration: %v", err)
		}
		p, err := ledger.DecodePayload(got.Payload)
		if err != nil {
			t.Fatal(err)
		}
		eid, _ := p["eid"].(string)
		if i == 4 {
			continue // registered, did not vote
		}
		protoPut(t, ctx, tn.admin, "vote.cast", map[string]any{"ballot": "council-2026", "voter": voter, "eid": eid, "choice": choice})
	}
	protoPut(t, ctx, tn.admin, "charity.fund", map[string]any{"fund": "relief", "name": "Winter relief", "currency": "EUR", "operator": "Town council"})
	protoPut(t, ctx, tn.admin, "charity.donation", map[string]any{"fund": "relief", "amount": int64(10000), "currency": "EUR", "source": "friday collection"})
	protoPut(t, ctx, tn.admin, "charity.donation", map[string]any{"fund": "relief", "amount": int64(5050), "currency": "EUR", "source": "online"})
	protoPut(t, ctx, tn.admin, "charity.disbursement", map[string]any{"fund": "relief", "amount": int64(2500), "currency": "EUR", "target": "food bank"})
	protoPut(t, ctx, tn.admin, "charity.disbursement", map[string]any{"fund": "relief", "amount": int64(1200), "currency": "EUR", "target": "shelter"})
	protoPut(t, ctx, tn.admin, "resource.account", map[string]any{"account": "lab", "unit": "cpu-hours"})
	protoPut(t, ctx, tn.admin, "resource.account", map[string]any{"account": "ops", "unit": "cpu-hours", "overdraft": true})
	protoPut(t, ctx, tn.admin, "resource.allocate", map[string]any{"account": "lab", "amount": int64(120)})
	protoPut(t, ctx, tn.admin, "resource.use", map[string]any{"account": "lab", "amount": int64(35)})
	protoPut(t, ctx, tn.admin, "resource.use", map[string]any{"account": "ops", "amount": int64(12)})
	protoPut(t, ctx, tn.admin, "resource.transfer", map[string]any{"from": "lab", "to": "ops", "amount": int64(20)})
}
