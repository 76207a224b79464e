package web_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/nodelog"
	"github.com/pyvnode/pyvnode/protocol/accounts"
)

// loginAs logs a fresh client in and gives it with its CSRF header.
func loginAs(t *testing.T, tn *testNode, user, password string) (*http.Client, map[string]string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	r := do(t, c, "POST", tn.base+"/api/login", map[string]string{"user": user, "password": password}, nil)
	var s struct {
		CSRF       string `json:"csrf"`
		MustChange bool   `json:"must_change"`
	}
	r.json(t, &s)
	if r.status != 200 {
		t.Fatalf("login %s: %d %s", user, r.status, r.body)
	}
	csrf := map[string]string{"X-CSRF-Token": s.CSRF}
	if s.MustChange {
		r = do(t, c, "POST", tn.base+"/api/password", map[string]string{"old": password, "new": password + "-changed-now"}, csrf)
		r.json(t, &s)
		if r.status != 200 {
			t.Fatalf("password change %s: %d %s", user, r.status, r.body)
		}
		csrf = map[string]string{"X-CSRF-Token": s.CSRF}
	}
	return c, csrf
}

func TestHeadersHostAndCSRF(t *testing.T) {
	tn := startNode(t)
	r := get(t, tn.base+"/api/head")
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	// A loopback node answers only to loopback names: a page elsewhere
	// that rebinds its own name to 127.0.0.1 gets nothing.
	if r := do(t, nil, "GET", tn.base+"/api/info", nil, map[string]string{"Host": "evil.example:80"}); r.status != 421 || !strings.Contains(string(r.body), "bad_host") {
		t.Fatalf("foreign Host: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "GET", strings.Replace(tn.base, "127.0.0.1", "localhost", 1)+"/api/head", nil, nil); r.status != 200 {
		t.Fatalf("localhost: %d %s", r.status, r.body)
	}
	// Unknown files are 404, panel routes give the page.
	if r := get(t, tn.base+"/favicon.ico"); r.status != 404 {
		t.Fatalf("favicon.ico: %d", r.status)
	}
	if r := get(t, tn.base+"/explorer"); r.status != 200 || !strings.Contains(string(r.body), "<html") {
		t.Fatalf("panel route: %d", r.status)
	}
	if r := get(t, tn.base+"/api"); r.status != 404 || !strings.Contains(string(r.body), "not_found") {
		t.Fatalf("/api: %d %s", r.status, r.body)
	}
	r = do(t, nil, "PUT", tn.base+"/api/login", map[string]string{}, nil)
	if r.status != 405 || r.header.Get("Allow") != "POST" {
		t.Fatalf("PUT /api/login: %d Allow %q", r.status, r.header.Get("Allow"))
	}

	c, csrf := loginAs(t, tn, "admin", tn.adminPassword(t))
	put := map[string]any{"kind": "note.text", "payload": map[string]any{"a": 1}}
	if r := do(t, c, "POST", tn.base+"/api/admin/records", put, map[string]string{"X-CSRF-Token": csrf["X-CSRF-Token"] + "x"}); r.status != 403 || !strings.Contains(string(r.body), `"csrf"`) {
		t.Fatalf("wrong CSRF token: %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/records", put, map[string]string{"X-CSRF-Token": csrf["X-CSRF-Token"], "Sec-Fetch-Site": "cross-site"}); r.status != 403 {
		t.Fatalf("cross-site fetch: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("POST", tn.base+"/api/admin/records", strings.NewReader(`kind=note.text`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", csrf["X-CSRF-Token"])
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 415 {
		t.Fatalf("form-encoded body: %d", res.StatusCode)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/records", put, csrf); r.status != 200 {
		t.Fatalf("put with the right token: %d %s", r.status, r.body)
	}
}

func TestRolesInThePanel(t *testing.T) {
	tn := startNode(t)
	accts := tn.n.Accounts()
	if _, err := accts.Add("rita", accounts.Reader, "reader password 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := accts.Add("ec", accounts.Authority, "authority password 1"); err != nil {
		t.Fatal(err)
	}
	rc, rcsrf := loginAs(t, tn, "rita", "reader password 1")
	for _, path := range []string{"/api/admin/records", "/api/admin/sync", "/api/admin/peers"} {
		body := map[string]any{"kind": "note.text", "payload": map[string]any{}}
		if path != "/api/admin/records" {
			body = map[string]any{}
		}
		if r := do(t, rc, "POST", tn.base+path, body, rcsrf); r.status != 403 || !strings.Contains(string(r.body), "forbidden") {
			t.Errorf("reader POST %s: %d %s", path, r.status, r.body)
		}
	}
	if r := do(t, rc, "GET", tn.base+"/api/events/logs", nil, nil); r.status != 403 {
		t.Errorf("reader's log stream: %d %s", r.status, r.body)
	}
	// An authority makes ballots from the panel.
	ec, ecsrf := loginAs(t, tn, "ec", "authority password 1")
	now := time.Now()
	ballot := map[string]any{"kind": "vote.ballot", "payload": map[string]any{
		"ballot": "b1", "question": "Yes?", "choices": []string{"yes", "no"},
		"opens": now.Add(-time.Minute).Unix(), "closes": now.Add(time.Hour).Unix(),
	}}
	if r := do(t, ec, "POST", tn.base+"/api/admin/records", ballot, ecsrf); r.status != 200 {
		t.Fatalf("authority's ballot: %d %s", r.status, r.body)
	}
	// The same again is refused by the rules, with the rule named, and
	// counted in the metrics.
	r := do(t, ec, "POST", tn.base+"/api/admin/records", ballot, ecsrf)
	var e struct {
		Error string `json:"error"`
		Check string `json:"check"`
	}
	json.Unmarshal(r.body, &e)
	if r.status != 409 || e.Error != "refused" || e.Check == "" {
		t.Fatalf("second ballot b1: %d %s", r.status, r.body)
	}
	if m := get(t, tn.base+"/metrics"); !strings.Contains(string(m.body), `pyvnode_records_rejected_total{path="http",reason="`+e.Check+`"} 1`) {
		t.Fatalf("/metrics lacks the panel's refusal %q", e.Check)
	}
	// Changing a password elsewhere ends the panel's session.
	if _, err := accts.ResetPassword("ec", "a brand new password"); err != nil {
		t.Fatal(err)
	}
	if r := do(t, ec, "GET", tn.base+"/api/session", nil, nil); r.status != 401 {
		t.Fatalf("session after a password reset: %d", r.status)
	}
	// /api/peers shows this node's network side.
	var peers struct {
		Enabled bool   `json:"enabled"`
		PeerID  string `json:"peer_id"`
		Peers   []any  `json:"peers"`
	}
	get(t, tn.base+"/api/peers").json(t, &peers)
	if !peers.Enabled || peers.PeerID == "" || peers.Peers == nil {
		t.Fatalf("peers: %+v", peers)
	}
}

func TestLogStream(t *testing.T) {
	hub := nodelog.NewHub(100)
	tn := startNodeWith(t, func(c *node.Config) {
		c.Logger = slog.New(hub.Handler(nodelog.StreamNode, slog.LevelDebug))
		c.Replication = slog.New(hub.Handler(nodelog.StreamReplication, slog.LevelDebug))
		c.LogHub = hub
	})
	c, csrf := loginAs(t, tn, "admin", tn.adminPassword(t))
	if r := do(t, c, "GET", tn.base+"/api/events/logs?level=loud", nil, nil); r.status != 400 {
		t.Fatalf("bad level: %d", r.status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", tn.base+"/api/events/logs?stream=node&level=info", nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("log stream: %d", res.StatusCode)
	}
	evs := make(chan sseEvent, 64)
	go readEvents(ctx, res.Body, evs)
	// The backlog has the start; a new line arrives live.
	sawStart := false
	slog.New(hub.Handler(nodelog.StreamNode, slog.LevelDebug)).Info("marker line", "k", "v")
	slog.New(hub.Handler(nodelog.StreamNode, slog.LevelDebug)).Debug("debug is filtered")
	slog.New(hub.Handler(nodelog.StreamReplication, slog.LevelDebug)).Info("replication is filtered")
	for ev := range evs {
		var e nodelog.Entry
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
			t.Fatalf("event %+v: %v", ev, err)
		}
		if e.Stream != "node" || e.Level == "DEBUG" {
			t.Fatalf("filtered line came through: %+v", e)
		}
		if e.Msg == "node started" {
			sawStart = true
		}
		if e.Msg == "marker line" {
			if !sawStart || e.Attrs["k"] != "v" {
				t.Fatalf("marker %+v, saw start %v", e, sawStart)
			}
			break
		}
	}
	// Logging out ends the stream.
	if r := do(t, c, "POST", tn.base+"/api/logout", map[string]string{}, csrf); r.status != 200 {
		t.Fatalf("logout: %d", r.status)
	}
	slog.New(hub.Handler(nodelog.StreamNode, slog.LevelDebug)).Info("after logout")
	for ev := range evs {
		if strings.Contains(ev.data, "after logout") {
			t.Fatal("the stream went on after logout")
		}
	}
	if ctx.Err() != nil {
		t.Fatal("the stream did not end after logout")
	}
}

func TestRecordStreamIgnoresHugeLastEventID(t *testing.T) {
	tn := startNode(t)
	tn.put(t, "note.text", `{"a":1}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", tn.base+"/api/events/records", nil)
	req.Header.Set("Last-Event-ID", "18446744073709551615")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	evs := make(chan sseEvent, 8)
	go readEvents(ctx, res.Body, evs)
	if ev := <-evs; ev.name != "head" {
		t.Fatalf("first event %+v", ev)
	}
	rec, _ := tn.put(t, "note.text", `{"a":2}`)
	ev := <-evs
	if ev.name != "record" || !strings.Contains(ev.data, rec.ID.String()) {
		t.Fatalf("after a huge Last-Event-ID the stream replayed: %+v", ev)
	}
}

// FuzzQueries: whatever the query, the API answers 200, 304 or a 4xx with
// a JSON error, never a 5xx, and keeps serving.
func FuzzQueries(f *testing.F) {
	tn := startNode(f)
	rec, _ := tn.put(f, "note.text", `{"a":1}`)
	for _, seed := range []string{
		"/api/records?from=0&count=5", "/api/records?order=desc&from=18446744073709551615", "/api/records?count=-1",
		"/api/records/height/1", "/api/records/" + rec.ID.String(), "/api/proof/inclusion?id=" + rec.ID.String() + "&size=1",
		"/api/proof/consistency?old=0&new=1", "/api/votes/tally?ballot=%00", "/api/resources/report?period=day&account=x",
		"/api/records?from=%zz", "/api/charity/report?fund=" + strings.Repeat("f", 300),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		if !strings.HasPrefix(path, "/api/") || strings.ContainsAny(path, " \r\n#") || strings.HasPrefix(path, "/api/events/") {
			return
		}
		req, err := http.NewRequest("GET", tn.base+path, nil)
		if err != nil {
			return
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %q: %v", path, err)
		}
		var body struct {
			Error string `json:"error"`
		}
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode >= 500 {
			t.Fatalf("GET %q: %d %s", path, res.StatusCode, body.Error)
		}
		if res.StatusCode >= 400 && (err != nil || body.Error == "") {
			t.Fatalf("GET %q: %d without a JSON error (%v)", path, res.StatusCode, err)
		}
	})
}

// TestProxyHostName: behind a reverse proxy that keeps the Host, the
// names given in HTTPHosts are answered and same-origin checks pass.
func TestProxyHostName(t *testing.T) {
	tn := startNodeWith(t, func(c *node.Config) { c.HTTPHosts = []string{"panel.example"} })
	if r := do(t, nil, "GET", tn.base+"/api/head", nil, map[string]string{"Host": "panel.example"}); r.status != 200 {
		t.Fatalf("proxy name: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "GET", tn.base+"/api/head", nil, map[string]string{"Host": "other.example"}); r.status != 421 {
		t.Fatalf("other name: %d %s", r.status, r.body)
	}
	c, csrf := loginAs(t, tn, "admin", tn.adminPassword(t))
	hdr := map[string]string{"X-CSRF-Token": csrf["X-CSRF-Token"], "Host": "127.0.0.1", "Origin": "https://panel.example"}
	put := map[string]any{"kind": "note.text", "payload": map[string]any{"a": 1}}
	if r := do(t, c, "POST", tn.base+"/api/admin/records", put, hdr); r.status != 403 {
		t.Fatalf("Origin that is not the Host: %d %s", r.status, r.body)
	}
}
