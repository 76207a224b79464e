package web_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/web"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// testNode is a real node with its HTTP side on a loopback port.
type testNode struct {
	n    *node.Node
	dir  string
	base string
}

func startNode(t testing.TB) *testNode { return startNodeWith(t, nil) }

// startNodeWith starts a node after letting adjust change its config.
func startNodeWith(t testing.TB, adjust func(*node.Config)) *testNode {
	t.Helper()
	dir := t.TempDir()
	cfg := node.Config{
		DataDir: dir, Listen: "127.0.0.1:0", P2PListen: []string{"/ip4/127.0.0.1/tcp/0"},
		HTTP: "127.0.0.1:0", Dev: true, Out: io.Discard,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return &testNode{n: n, dir: dir, base: "http://" + n.HTTPAddr()}
}

func (tn *testNode) put(t testing.TB, kind, payloadJSON string) (*ledger.SignedRecord, ledger.Entry) {
	t.Helper()
	p, err := ledger.PayloadFromJSON([]byte(payloadJSON))
	if err != nil {
		t.Fatal(err)
	}
	rec, e, err := tn.n.Put(context.Background(), kind, p, "tester")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return rec, e
}

// adminPassword reads the admin's one-time password from its file.
func (tn *testNode) adminPassword(t testing.TB) string {
	b, err := os.ReadFile(node.AdminPasswordPath(tn.dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "password: "); ok {
			return p
		}
	}
	t.Fatalf("no password line in %s", b)
	return ""
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func do(t testing.TB, c *http.Client, method, url string, body any, hdr map[string]string) resp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func get(t testing.TB, url string) resp { return do(t, nil, "GET", url, nil, nil) }

func TestInfoHeadAndCheckpoint(t *testing.T) {
	tn := startNode(t)
	tn.put(t, "note.text", `{"text":"one"}`)
	tn.put(t, "note.text", `{"text":"two"}`)

	var info struct {
		Network, NodeID, Fingerprint, PeerID, Root string
		Size                                       uint64
		Replication                                bool
	}
	r := get(t, tn.base+"/api/info")
	if r.status != 200 {
		t.Fatalf("info: %d %s", r.status, r.body)
	}
	json.Unmarshal(r.body, &struct {
		Network     *string `json:"network"`
		NodeID      *string `json:"node_id"`
		Fingerprint *string `json:"fingerprint"`
		PeerID      *string `json:"peer_id"`
		Root        *string `json:"root"`
		Size        *uint64 `json:"size"`
		Replication *bool   `json:"replication"`
	}{&info.Network, &info.NodeID, &info.Fingerprint, &info.PeerID, &info.Root, &info.Size, &info.Replication})
	head := tn.n.Store().Head()
	if info.NodeID != tn.n.Identity().ID().String() || info.Size != head.Size || info.Root != head.Root.String() ||
		info.Network != tn.n.Genesis().Network || info.PeerID == "" || !info.Replication {
		t.Fatalf("info = %+v; head %+v", info, head)
	}

	r = get(t, tn.base+"/api/head")
	var h struct {
		Size uint64 `json:"size"`
		Root string `json:"root"`
		Link string `json:"link"`
	}
	r.json(t, &h)
	if h.Size != 2 || h.Root != head.Root.String() || h.Link != head.Link.String() {
		t.Fatalf("head = %+v, want %+v", h, head)
	}
	etag := r.header.Get("ETag")
	if etag == "" || r.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("head headers: %v", r.header)
	}
	if r := do(t, nil, "GET", tn.base+"/api/head", nil, map[string]string{"If-None-Match": etag}); r.status != 304 {
		t.Fatalf("head with its ETag: %d, want 304", r.status)
	}
	tn.put(t, "note.text", `{"text":"three"}`)
	if r := do(t, nil, "GET", tn.base+"/api/head", nil, map[string]string{"If-None-Match": etag}); r.status != 200 {
		t.Fatalf("head after an append with the old ETag: %d, want 200", r.status)
	}

	var cp struct {
		Size        uint64 `json:"size"`
		Root        string `json:"root"`
		Checkpoint  string `json:"checkpoint"`
		PublicKey   string `json:"public_key"`
		VerifierKey string `json:"verifier_key"`
	}
	get(t, tn.base+"/api/checkpoint").json(t, &cp)
	c, err := ledger.OpenCheckpoint([]byte(cp.Checkpoint), tn.n.Identity().ID())
	if err != nil {
		t.Fatalf("checkpoint does not verify: %v\n%s", err, cp.Checkpoint)
	}
	if c.Size != 3 || cp.Size != 3 || c.Root.String() != cp.Root || cp.PublicKey != tn.n.Identity().ID().String() ||
		!strings.HasPrefix(cp.VerifierKey, "pyvnode/") {
		t.Fatalf("checkpoint %+v vs note %+v", cp, c)
	}
}

type recordJSON struct {
	Height  uint64          `json:"height"`
	ID      string          `json:"id"`
	Link    string          `json:"link"`
	Kind    string          `json:"kind"`
	Author  string          `json:"author"`
	Record  string          `json:"record"`
	Payload json.RawMessage `json:"payload"`
}

type pageJSON struct {
	Records []recordJSON `json:"records"`
	Next    int64        `json:"next"`
	Size    uint64       `json:"size"`
}

func TestRecordsPagesAndCaching(t *testing.T) {
	tn := startNode(t)
	var ids []string
	for i := range 12 {
		rec, _ := tn.put(t, "note.text", fmt.Sprintf(`{"i":%d}`, i))
		ids = append(ids, rec.ID.String())
	}
	var p pageJSON
	r := get(t, tn.base+"/api/records?from=2&count=5")
	r.json(t, &p)
	if len(p.Records) != 5 || p.Next != 7 || p.Size != 12 {
		t.Fatalf("page: %d records, next %d, size %d", len(p.Records), p.Next, p.Size)
	}
	for i, rec := range p.Records {
		if rec.Height != uint64(2+i) || rec.ID != ids[2+i] || rec.Kind != "note.text" || rec.Author != "tester" {
			t.Fatalf("record %d = %+v", i, rec)
		}
		raw, _ := hex.DecodeString(rec.Record)
		if got := sha256.Sum256(raw); hex.EncodeToString(got[:]) != rec.ID {
			t.Fatalf("record bytes hash to %x, id %s", got, rec.ID)
		}
		if string(rec.Payload) != fmt.Sprintf(`{"i":%d}`, 2+i) {
			t.Fatalf("payload %s", rec.Payload)
		}
	}
	// Every page may be kept, but is checked with the node: its ETag
	// names the chain's head.
	etag := r.header.Get("ETag")
	if cc := r.header.Get("Cache-Control"); cc != "no-cache" || etag == "" {
		t.Fatalf("page Cache-Control %q, ETag %q", cc, etag)
	}
	if r2 := do(t, nil, "GET", tn.base+"/api/records?from=2&count=5", nil, map[string]string{"If-None-Match": etag}); r2.status != 304 {
		t.Fatalf("same page with its ETag: %d", r2.status)
	}
	descPage := get(t, tn.base+"/api/records?order=desc&count=3")
	// The last, partial page is about the head.
	r = get(t, tn.base+"/api/records?from=10&count=5")
	r.json(t, &p)
	if len(p.Records) != 2 || p.Next != 12 || r.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("tail page: %d records, next %d, %q", len(p.Records), p.Next, r.header.Get("Cache-Control"))
	}
	// Beyond the head: empty, continuing at the head.
	get(t, tn.base+"/api/records?from=50").json(t, &p)
	if len(p.Records) != 0 || p.Next != 12 {
		t.Fatalf("beyond the head: %+v", p)
	}
	if r := get(t, tn.base+"/api/records?from=18446744073709551615"); r.status != 400 {
		t.Fatalf("from 2^64-1: %d %s", r.status, r.body)
	}
	// Newest first.
	get(t, tn.base+"/api/records?order=desc&count=4").json(t, &p)
	if len(p.Records) != 4 || p.Records[0].Height != 11 || p.Records[3].Height != 8 || p.Next != 7 {
		t.Fatalf("desc page: %+v", p)
	}
	get(t, tn.base+"/api/records?order=desc&from=1&count=4").json(t, &p)
	if len(p.Records) != 2 || p.Records[1].Height != 0 || p.Next != -1 {
		t.Fatalf("desc page at the start: %+v", p)
	}
	// Default page size.
	get(t, tn.base+"/api/records").json(t, &p)
	if len(p.Records) != 12 || p.Next != 12 {
		t.Fatalf("default page: %d records", len(p.Records))
	}

	// One record by id and by height.
	var one recordJSON
	r = get(t, tn.base+"/api/records/"+ids[3])
	r.json(t, &one)
	if one.Height != 3 || r.header.Get("ETag") == "" {
		t.Fatalf("by id: %+v %v", one, r.header)
	}
	if r2 := do(t, nil, "GET", tn.base+"/api/records/"+ids[3], nil, map[string]string{"If-None-Match": r.header.Get("ETag")}); r2.status != 304 {
		t.Fatalf("record with its ETag: %d", r2.status)
	}

	// An append changes every page's answer (its size, and the newest
	// entries for a page at the head).
	tn.put(t, "note.text", `{"i":12}`)
	if r2 := do(t, nil, "GET", tn.base+"/api/records?from=2&count=5", nil, map[string]string{"If-None-Match": etag}); r2.status != 200 {
		t.Fatalf("page after an append with the old ETag: %d", r2.status)
	}
	r = do(t, nil, "GET", tn.base+"/api/records?order=desc&count=3", nil, map[string]string{"If-None-Match": descPage.header.Get("ETag")})
	r.json(t, &p)
	if r.status != 200 || p.Records[0].Height != 12 {
		t.Fatalf("newest page after an append: %d %+v", r.status, p)
	}
	get(t, tn.base+"/api/records/height/4").json(t, &one)
	if one.ID != ids[4] {
		t.Fatalf("by height: %+v", one)
	}
}

func TestProofsVerify(t *testing.T) {
	tn := startNode(t)
	var recs []*ledger.SignedRecord
	for i := range 9 {
		rec, _ := tn.put(t, "note.text", fmt.Sprintf(`{"i":%d}`, i))
		recs = append(recs, rec)
	}
	type inclusion struct {
		Index      uint64   `json:"index"`
		Size       uint64   `json:"size"`
		Root       string   `json:"root"`
		LeafHash   string   `json:"leaf_hash"`
		Proof      []string `json:"proof"`
		Checkpoint string   `json:"checkpoint"`
	}
	decodeList := func(l []string) [][]byte {
		var out [][]byte
		for _, s := range l {
			b, _ := hex.DecodeString(s)
			out = append(out, b)
		}
		return out
	}
	for _, size := range []string{"", "&size=6"} {
		var in inclusion
		r := get(t, tn.base+"/api/proof/inclusion?id="+recs[4].ID.String()+size)
		if r.status != 200 {
			t.Fatalf("inclusion%s: %d %s", size, r.status, r.body)
		}
		r.json(t, &in)
		root, _ := hex.DecodeString(in.Root)
		leaf := rfc6962.DefaultHasher.HashLeaf(recs[4].ID[:])
		if hex.EncodeToString(leaf) != in.LeafHash {
			t.Fatalf("leaf hash %s", in.LeafHash)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, in.Index, in.Size, leaf, decodeList(in.Proof), root); err != nil {
			t.Fatalf("inclusion%s does not verify: %v", size, err)
		}
		if size == "" {
			c, err := ledger.OpenCheckpoint([]byte(in.Checkpoint), tn.n.Identity().ID())
			if err != nil || c.Size != in.Size || c.Root.String() != in.Root || in.Size != 9 {
				t.Fatalf("checkpoint with the proof: %v %+v", err, c)
			}
			if r.header.Get("Cache-Control") != "no-cache" {
				t.Fatalf("proof at the head is cached: %v", r.header)
			}
		} else {
			want, err := tn.n.Store().RootAt(6)
			if err != nil || in.Size != 6 || in.Root != want.String() {
				t.Fatalf("proof at size 6: %+v, root at 6 is %s (%v)", in, want, err)
			}
			if r2 := do(t, nil, "GET", tn.base+"/api/proof/inclusion?id="+recs[4].ID.String()+size, nil, map[string]string{"If-None-Match": r.header.Get("ETag")}); r2.status != 304 {
				t.Fatalf("proof with its ETag: %d", r2.status)
			}
		}
	}
	var cons struct {
		Old, New         uint64
		OldRoot, NewRoot string
		Proof            []string
	}
	r := get(t, tn.base+"/api/proof/consistency?old=3&new=8")
	json.Unmarshal(r.body, &struct {
		Old     *uint64   `json:"old"`
		New     *uint64   `json:"new"`
		OldRoot *string   `json:"old_root"`
		NewRoot *string   `json:"new_root"`
		Proof   *[]string `json:"proof"`
	}{&cons.Old, &cons.New, &cons.OldRoot, &cons.NewRoot, &cons.Proof})
	o, _ := hex.DecodeString(cons.OldRoot)
	n, _ := hex.DecodeString(cons.NewRoot)
	r3, _ := tn.n.Store().RootAt(3)
	r8, _ := tn.n.Store().RootAt(8)
	if cons.OldRoot != r3.String() || cons.NewRoot != r8.String() {
		t.Fatalf("consistency roots %s %s, the chain's are %s %s", cons.OldRoot, cons.NewRoot, r3, r8)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 3, 8, decodeList(cons.Proof), o, n); err != nil {
		t.Fatalf("consistency does not verify: %v (%s)", err, r.body)
	}
	// Tampering breaks it.
	bad := decodeList(cons.Proof)
	bad[0][0] ^= 1
	if proof.VerifyConsistency(rfc6962.DefaultHasher, 3, 8, bad, o, n) == nil {
		t.Fatal("a tampered consistency proof verified")
	}
}

// TestBadParameters: every malformed request is a 4xx with a JSON error
// that names the problem.
func TestBadParameters(t *testing.T) {
	tn := startNode(t)
	rec, _ := tn.put(t, "note.text", `{"a":1}`)
	id := rec.ID.String()
	cases := []struct {
		path   string
		status int
		code   string
		says   string
	}{
		{"/api/records?from=-1", 400, "bad_request", `"from"`},
		{"/api/records?from=abc", 400, "bad_request", `"from"`},
		{"/api/records?count=0", 400, "bad_request", `"count"`},
		{"/api/records?count=501", 400, "bad_request", "500"},
		{"/api/records?form=1", 400, "bad_request", `unknown parameter "form"`},
		{"/api/records?from=1&from=2", 400, "bad_request", "2 times"},
		{"/api/records?order=sideways", 400, "bad_request", "asc or desc"},
		{"/api/records/xyz", 400, "bad_request", "64 hex"},
		{"/api/records/" + strings.Repeat("zz", 32), 400, "bad_request", "not hex"},
		{"/api/records/" + strings.Repeat("00", 32), 404, "not_found", "not found"},
		{"/api/records/height/99", 404, "not_found", "height 99"},
		{"/api/records/height/-3", 400, "bad_request", "height"},
		{"/api/proof/inclusion", 400, "bad_request", `"id" is required`},
		{"/api/proof/inclusion?id=" + id + "&size=0", 400, "bad_request", "size"},
		{"/api/proof/inclusion?id=" + id + "&size=7", 400, "bad_request", "size"},
		{"/api/proof/inclusion?id=" + strings.Repeat("ab", 32), 404, "not_found", ""},
		{"/api/proof/consistency", 400, "bad_request", `"old" is required`},
		{"/api/proof/consistency?old=5&new=2", 400, "bad_request", "old <= new"},
		{"/api/proof/consistency?old=0&new=9", 400, "bad_request", "new <= 1"},
		{"/api/votes/tally", 400, "bad_request", `"ballot" is required`},
		{"/api/votes/tally?ballot=" + strings.Repeat("b", 300), 400, "bad_request", "256"},
		{"/api/charity/report", 400, "bad_request", `"fund" is required`},
		{"/api/resources/report?period=week", 400, "bad_request", "period"},
		{"/api/info?x=1", 400, "bad_request", "takes no parameters"},
		{"/api/events/logs", 401, "unauthorized", "log in"},
		{"/api/admin/users", 401, "unauthorized", "log in"},
		{"/api/session", 401, "unauthorized", "log in"},
		{"/api/nothing", 404, "not_found", "no API endpoint"},
	}
	for _, c := range cases {
		r := get(t, tn.base+c.path)
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Errorf("%s: body %q is not a JSON error", c.path, r.body)
			continue
		}
		if r.status != c.status || e.Error != c.code || !strings.Contains(e.Message, c.says) {
			t.Errorf("%s: %d %s %q, want %d %s containing %q", c.path, r.status, e.Error, e.Message, c.status, c.code, c.says)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.path, ct)
		}
	}
	// Wrong method.
	if r := do(t, nil, "DELETE", tn.base+"/api/records", nil, nil); r.status != 405 {
		t.Errorf("DELETE /api/records: %d", r.status)
	}
	// The node still serves.
	if r := get(t, tn.base+"/api/head"); r.status != 200 {
		t.Fatalf("head after bad requests: %d", r.status)
	}
}

func TestApplicationViews(t *testing.T) {
	tn := startNode(t)
	ctx := context.Background()
	submit := func(kind, js string) {
		t.Helper()
		p, err := ledger.PayloadFromJSON([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tn.n.Apps().Submit(ctx, kind, p, "treasurer"); err != nil {
			t.Fatalf("Submit %s: %v", kind, err)
		}
	}
	submit("charity.fund", `{"fund":"relief","name":"Flood relief","currency":"EUR"}`)
	submit("charity.donation", `{"fund":"relief","currency":"EUR","amount":2500,"source":"uid-`+strings.Repeat("a", 32)+`"}`)
	submit("charity.disbursement", `{"fund":"relief","currency":"EUR","amount":1000,"target":"shelter"}`)

	waitReady(t, tn)
	var funds struct {
		Funds []string `json:"funds"`
	}
	get(t, tn.base+"/api/charity/funds").json(t, &funds)
	if len(funds.Funds) != 1 || funds.Funds[0] != "relief" {
		t.Fatalf("funds: %+v", funds)
	}
	r := get(t, tn.base+"/api/charity/report?fund=relief")
	var rep struct {
		Received, Disbursed, Balance uint64
	}
	json.Unmarshal(r.body, &struct {
		R *uint64 `json:"received"`
		D *uint64 `json:"disbursed"`
		B *uint64 `json:"balance"`
	}{&rep.Received, &rep.Disbursed, &rep.Balance})
	if rep.Received != 2500 || rep.Disbursed != 1000 || rep.Balance != 1500 {
		t.Fatalf("report: %s", r.body)
	}
	if r2 := do(t, nil, "GET", tn.base+"/api/charity/report?fund=relief", nil, map[string]string{"If-None-Match": r.header.Get("ETag")}); r2.status != 304 {
		t.Fatalf("unchanged report with its ETag: %d", r2.status)
	}
	if r := get(t, tn.base+"/api/charity/report?fund=nope"); r.status != 404 {
		t.Fatalf("unknown fund: %d %s", r.status, r.body)
	}
	if r := get(t, tn.base+"/api/votes/tally?ballot=nope"); r.status != 404 {
		t.Fatalf("unknown ballot: %d %s", r.status, r.body)
	}
	var ballots struct {
		Ballots []any `json:"ballots"`
	}
	if r := get(t, tn.base+"/api/votes/ballots"); r.status != 200 {
		t.Fatalf("ballots: %d", r.status)
	} else if r.json(t, &ballots); ballots.Ballots == nil {
		t.Fatalf("ballots is null: %s", r.body)
	}
	if r := get(t, tn.base+"/api/resources/report?period=day"); r.status != 200 {
		t.Fatalf("resources: %d %s", r.status, r.body)
	}
}

// waitReady waits for the applications' index to have read the chain.
func waitReady(t testing.TB, tn *testNode) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var info struct {
			AppsReady bool `json:"apps_ready"`
		}
		get(t, tn.base+"/api/info").json(t, &info)
		if info.AppsReady {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("applications index not ready in 20 s")
}

func TestLoginCSRFAndAdminActions(t *testing.T) {
	tn := startNode(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}

	if r := do(t, c, "POST", tn.base+"/api/login", map[string]string{"user": "admin", "password": "wrong"}, nil); r.status != 401 {
		t.Fatalf("wrong password: %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", tn.base+"/api/login", `user=admin`, nil); r.status != 400 {
		t.Fatalf("form body: %d %s", r.status, r.body)
	}
	pw := tn.adminPassword(t)
	r := do(t, c, "POST", tn.base+"/api/login", map[string]string{"user": "admin", "password": pw}, nil)
	var s struct {
		User       string `json:"user"`
		Role       string `json:"role"`
		CSRF       string `json:"csrf"`
		MustChange bool   `json:"must_change"`
	}
	r.json(t, &s)
	if r.status != 200 || s.User != "admin" || s.Role != "admin" || s.CSRF == "" || !s.MustChange {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("login answer (it carries the CSRF token) has Cache-Control %q", cc)
	}
	ck := r.header.Get("Set-Cookie")
	for _, want := range []string{"pyv_session_" + tn.n.Identity().ID().String()[:12] + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(ck, want) {
			t.Fatalf("cookie %q lacks %q", ck, want)
		}
	}
	csrf := map[string]string{"X-CSRF-Token": s.CSRF}
	// A one-time password allows nothing but changing it.
	if r := do(t, c, "POST", tn.base+"/api/admin/records", map[string]any{"kind": "note.text", "payload": map[string]any{"a": 1}}, csrf); r.status != 403 || !strings.Contains(string(r.body), "password_change_required") {
		t.Fatalf("put before the password change: %d %s", r.status, r.body)
	}
	r = do(t, c, "POST", tn.base+"/api/password", map[string]string{"old": pw, "new": "a much better passphrase"}, csrf)
	if r.status != 200 {
		t.Fatalf("password change: %d %s", r.status, r.body)
	}
	r.json(t, &s)
	if s.MustChange || s.CSRF == csrf["X-CSRF-Token"] {
		t.Fatalf("after the change: %+v", s)
	}
	csrf = map[string]string{"X-CSRF-Token": s.CSRF}

	put := map[string]any{"kind": "note.text", "payload": map[string]any{"text": "from the panel"}}
	if r := do(t, c, "POST", tn.base+"/api/admin/records", put, nil); r.status != 403 || !strings.Contains(string(r.body), `"csrf"`) {
		t.Fatalf("put without the CSRF token: %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/records", put, map[string]string{"X-CSRF-Token": s.CSRF, "Origin": "http://evil.example"}); r.status != 403 {
		t.Fatalf("put from another origin: %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/records", `{"kind":"note.text","payload":{},"extra":1}`, csrf); r.status != 400 {
		t.Fatalf("unknown field: %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/records", `{"kind":"note.text","payload":{"big":"`+strings.Repeat("x", 70<<10)+`"}}`, csrf); r.status != 413 {
		t.Fatalf("huge body: %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/records", map[string]any{"kind": "Bad Kind", "payload": map[string]any{}}, csrf); r.status != 422 {
		t.Fatalf("bad kind: %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/records", map[string]any{"kind": "vote.ballot", "payload": map[string]any{}}, csrf); r.status != 403 {
		t.Fatalf("ballot by an admin (not an authority): %d %s", r.status, r.body)
	}
	r = do(t, c, "POST", tn.base+"/api/admin/records", put, csrf)
	var pr struct {
		ID     string `json:"id"`
		Height uint64 `json:"height"`
	}
	r.json(t, &pr)
	if r.status != 200 || pr.Height != 0 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	got, _, err := tn.n.Store().GetByHeight(0)
	if err != nil || got.ID.String() != pr.ID || got.Record.Author != "admin" {
		t.Fatalf("stored record: %v %+v", err, got)
	}

	var users struct {
		Users []struct {
			Name string `json:"name"`
		} `json:"users"`
	}
	do(t, c, "GET", tn.base+"/api/admin/users", nil, nil).json(t, &users)
	if len(users.Users) != 1 || users.Users[0].Name != "admin" {
		t.Fatalf("users: %+v", users)
	}
	// Peers: add one, see it, remove it; sync with no peers.
	addr := "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWGRUVh2upGdvE2bMnC1xFwHUxFmaFx3bqpDWCCQBJ8TQU"
	var pl struct {
		Peers []string `json:"peers"`
	}
	r = do(t, c, "POST", tn.base+"/api/admin/peers", map[string]string{"add": addr}, csrf)
	r.json(t, &pl)
	if r.status != 200 || len(pl.Peers) != 1 {
		t.Fatalf("add peer: %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/peers", map[string]string{"add": "not an address"}, csrf); r.status != 400 {
		t.Fatalf("bad peer address: %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/peers", map[string]string{"add": "/ip4/not-an-address/tcp/1"}, csrf); r.status != 400 {
		t.Fatalf("unparsable peer address: %d %s", r.status, r.body)
	}
	do(t, c, "GET", tn.base+"/api/admin/peers", nil, nil).json(t, &pl)
	if len(pl.Peers) != 1 || pl.Peers[0] != addr {
		t.Fatalf("configured peers: %+v", pl)
	}
	do(t, c, "POST", tn.base+"/api/admin/peers", map[string]string{"remove": addr}, csrf).json(t, &pl)
	if len(pl.Peers) != 0 {
		t.Fatalf("after remove: %+v", pl)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/sync", map[string]string{}, csrf); r.status != 200 {
		t.Fatalf("sync: %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/block", map[string]any{"peer": "nonsense", "blocked": true}, csrf); r.status != 400 {
		t.Fatalf("block a bad id: %d %s", r.status, r.body)
	}

	// The panel's logins are in the metrics, with the chain's.
	m := get(t, tn.base+"/metrics")
	for _, want := range []string{`pyvnode_http_logins_total{result="ok"} 1`, `pyvnode_http_logins_total{result="failed"} 1`, "pyvnode_chain_height 1", "go_goroutines"} {
		if m.status != 200 || !strings.Contains(string(m.body), want) {
			t.Fatalf("/metrics lacks %q (status %d)", want, m.status)
		}
	}

	if r := do(t, c, "POST", tn.base+"/api/logout", map[string]string{}, csrf); r.status != 200 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	if r := do(t, c, "GET", tn.base+"/api/session", nil, nil); r.status != 401 {
		t.Fatalf("session after logout: %d", r.status)
	}
	if r := do(t, c, "POST", tn.base+"/api/admin/records", put, csrf); r.status != 401 {
		t.Fatalf("put after logout: %d", r.status)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name, id, data string
}

func readEvents(ctx context.Context, body io.Reader, out chan<- sseEvent) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.name = line[7:]
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
	close(out)
}

func TestRecordStream(t *testing.T) {
	tn := startNode(t)
	tn.put(t, "note.text", `{"before":true}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", tn.base+"/api/events/records?kind=vote&kind=note", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	evs := make(chan sseEvent, 16)
	go readEvents(ctx, res.Body, evs)
	ev := <-evs
	if ev.name != "head" || ev.data != `{"size":1}` {
		t.Fatalf("first event %+v", ev)
	}
	tn.put(t, "other.kind", `{"skip":1}`)
	rec, _ := tn.put(t, "note.text", `{"live":"yes"}`)
	select {
	case ev := <-evs:
		var r recordJSON
		json.Unmarshal([]byte(ev.data), &r)
		if ev.name != "record" || r.ID != rec.ID.String() || ev.id != "2" || string(r.Payload) != `{"live":"yes"}` {
			t.Fatalf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no record event within 20 s")
	}

	// A reconnecting client resumes after its last event id.
	req, _ = http.NewRequestWithContext(ctx, "GET", tn.base+"/api/events/records", nil)
	req.Header.Set("Last-Event-ID", "0")
	res2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Body.Close()
	evs2 := make(chan sseEvent, 16)
	go readEvents(ctx, res2.Body, evs2)
	<-evs2 // head
	for _, want := range []string{"1", "2"} {
		if ev := <-evs2; ev.name != "record" || ev.id != want {
			t.Fatalf("resumed event %+v, want id %s", ev, want)
		}
	}
}

func TestLogStreamNeedsLogin(t *testing.T) {
	tn := startNode(t)
	if r := get(t, tn.base+"/api/events/logs?stream=node"); r.status != 401 {
		t.Fatalf("logs without login: %d", r.status)
	}
}

// TestLimits: a page stops at its byte budget and says where to go on;
// live streams beyond the limit are refused until one closes.
func TestLimits(t *testing.T) {
	tn := startNode(t)
	for i := range 10 {
		tn.put(t, "note.text", fmt.Sprintf(`{"i":%d,"text":"%s"}`, i, strings.Repeat("x", 2000)))
	}
	defer web.SetMaxPageBytes(12 << 10)()
	var p pageJSON
	get(t, tn.base+"/api/records?from=0&count=10").json(t, &p)
	if len(p.Records) == 0 || len(p.Records) >= 10 || p.Next != int64(len(p.Records)) {
		t.Fatalf("page under a 12 KiB budget: %d records, next %d", len(p.Records), p.Next)
	}
	got := len(p.Records)
	for p.Next < 10 {
		from := p.Next
		get(t, fmt.Sprintf("%s/api/records?from=%d&count=10", tn.base, from)).json(t, &p)
		if len(p.Records) == 0 || p.Records[0].Height != uint64(from) {
			t.Fatalf("continuing at %d: %+v", from, p)
		}
		got += len(p.Records)
	}
	if got != 10 {
		t.Fatalf("pages held %d records, want 10", got)
	}
	// Newest first under the same budget: the page keeps the newest.
	get(t, tn.base+"/api/records?order=desc&count=10").json(t, &p)
	if k := len(p.Records); k == 0 || k >= 10 || p.Records[0].Height != 9 || p.Records[k-1].Height != uint64(10-k) || p.Next != int64(9-k) {
		t.Fatalf("desc page under a 12 KiB budget: %d records from %d, next %d", k, p.Records[0].Height, p.Next)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Clients from several loopback addresses (127.0.0.2, …): each may
	// hold MaxStreamsPerAddr streams, and the node MaxLiveStreams.
	clientFrom := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	open := func(c *http.Client) (*http.Response, string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", tn.base+"/api/events/records", nil)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return res, string(b)
		}
		return res, ""
	}
	var bodies []io.Closer
	for i := 0; len(bodies) < web.MaxLiveStreams; i++ {
		c := clientFrom(fmt.Sprintf("127.0.0.%d", 2+i))
		for range web.MaxStreamsPerAddr {
			res, msg := open(c)
			if res.StatusCode != 200 {
				t.Fatalf("stream %d: %d %s", len(bodies), res.StatusCode, msg)
			}
			bodies = append(bodies, res.Body)
		}
		if i == 0 {
			if res, msg := open(c); res.StatusCode != 429 || !strings.Contains(msg, "from your address") {
				t.Fatalf("stream beyond the per-address limit: %d %s", res.StatusCode, msg)
			}
		}
	}
	last := clientFrom("127.0.0.200")
	if res, msg := open(last); res.StatusCode != 429 || !strings.Contains(msg, "on this node") {
		t.Fatalf("stream beyond the node's limit: %d %s", res.StatusCode, msg)
	}
	bodies[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, _ := open(last)
		if res.StatusCode == 200 {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed stream's slot was not given back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, b := range bodies[1:] {
		b.Close()
	}
}
