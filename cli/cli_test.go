package cli

// End-to-end tests of the command line: every test runs Run with real
// arguments against real data directories under t.TempDir() and checks the
// exit code, standard output and standard error.
//
// The tests do not call t.Parallel: Run installs its logger with
// slog.SetDefault, which is process-wide.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/node"
)

// syncBuffer is a bytes.Buffer safe for one writer goroutine and a reader
// (serve writes its logs while the test polls them).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type result struct {
	code           int
	stdout, stderr string
	args           []string
}

func (r result) String() string {
	return fmt.Sprintf("pyvnode %q\nexit %d\n--- stdout:\n%s--- stderr:\n%s", r.args, r.code, r.stdout, r.stderr)
}

// runIn runs the command line with ctx and stdin.
func runIn(ctx context.Context, stdin io.Reader, args ...string) result {
	var out, errb syncBuffer
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	argv := append([]string{"pyvnode"}, args...)
	code := Run(ctx, argv, Env{Stdout: &out, Stderr: &errb, Stdin: stdin})
	return result{code: code, stdout: out.String(), stderr: errb.String(), args: args}
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	return runIn(t.Context(), nil, args...)
}

// mustRun runs a command that has to succeed.
func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := run(t, args...)
	if r.code != ExitOK {
		t.Fatalf("want exit 0:\n%s", r)
	}
	return r
}

// wantExit runs a command that has to fail with code and print every one
// of msgs on stderr.
func wantExit(t *testing.T, code int, args []string, msgs ...string) result {
	t.Helper()
	r := run(t, args...)
	if r.code != code {
		t.Fatalf("want exit %d:\n%s", code, r)
	}
	for _, m := range msgs {
		if !strings.Contains(r.stderr, m) {
			t.Fatalf("stderr lacks %q:\n%s", m, r)
		}
	}
	return r
}

// field returns the value of the "name   value" line of out.
func field(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("no %q line in:\n%s", name, out)
	return ""
}

// initDir makes a new network's data directory with the given proof of work
// and returns it with the node id init printed.
func initDir(t *testing.T, network string, powBits int) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	r := mustRun(t, "init", "--data", dir, "--network", network, "--pow-bits", fmt.Sprint(powBits))
	return dir, field(t, r.stdout, "node id")
}

type putResult struct {
	ID     string `json:"id"`
	Height uint64 `json:"height"`
	Link   string `json:"link"`
}

// put appends a record with chain put --json.
func put(t *testing.T, dir, kind, payload string) putResult {
	t.Helper()
	r := mustRun(t, "chain", "put", "--data", dir, "--json", kind, payload)
	var p putResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("chain put --json output is not JSON: %v\n%s", err, r)
	}
	if len(p.ID) != 64 || len(p.Link) != 64 {
		t.Fatalf("chain put --json: id %q link %q are not 64 hex digits\n%s", p.ID, p.Link, r)
	}
	return p
}

// putN appends n note.text records {"n": i}.
func putN(t *testing.T, dir string, n int) []putResult {
	t.Helper()
	var ps []putResult
	for i := range n {
		p := put(t, dir, "note.text", fmt.Sprintf(`{"n":%d}`, i))
		if p.Height != uint64(i) {
			t.Fatalf("record %d appended at height %d", i, p.Height)
		}
		ps = append(ps, p)
	}
	return ps
}

// headSize returns the chain size chain head reports.
func headSize(t *testing.T, dir string) int {
	t.Helper()
	r := mustRun(t, "chain", "head", "--data", dir, "--json")
	var h struct{ Size int }
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatalf("chain head --json: %v\n%s", err, r)
	}
	return h.Size
}

func loadID(t *testing.T, path string) string {
	t.Helper()
	id, err := ledger.LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	return id.ID().String()
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func notExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s should not exist (stat: %v)", path, err)
	}
}

// ---------------------------------------------------------------- init, keygen

func TestInitNewNetwork(t *testing.T) {
	other, err := ledger.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "a", "data")
	r := mustRun(t, "init", "--data", dir, "--network", "testnet", "--pow-bits", "4",
		"--replication-limit", "3", "--originator", "vote.*="+other.ID().String())

	if got := field(t, r.stdout, "data directory"); got != dir {
		t.Errorf("data directory line %q, want %q", got, dir)
	}
	g, err := ledger.LoadGenesis(node.GenesisPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if g.Network != "testnet" || g.PowBits != 4 || g.ReplicationLimit != 3 {
		t.Errorf("genesis.json = %+v, want network testnet, 4 bits, replication limit 3", g)
	}
	if o := g.Originators["vote.*"]; len(o) != 1 || o[0] != other.ID() {
		t.Errorf("genesis originators %v, want vote.* = [%s]", g.Originators, other.ID())
	}
	gh := g.Hash()
	if got, want := field(t, r.stdout, "network"), fmt.Sprintf("testnet (genesis %x)", gh[:]); got != want {
		t.Errorf("network line %q, want %q", got, want)
	}
	if got := field(t, r.stdout, "proof of work"); got != "4 bits" {
		t.Errorf("proof of work line %q", got)
	}
	nodeID := field(t, r.stdout, "node id")
	if want := loadID(t, node.KeyPath(dir)); nodeID != want {
		t.Errorf("printed node id %s, node.key holds %s", nodeID, want)
	}
	id, _ := ledger.ParseNodeID(nodeID)
	if got := field(t, r.stdout, "fingerprint"); got != id.Fingerprint() || !strings.HasPrefix(got, "SHA256:") {
		t.Errorf("fingerprint line %q, want %q", got, id.Fingerprint())
	}
	if m := fileMode(t, node.KeyPath(dir)); m != 0o600 {
		t.Errorf("node.key mode %04o, want 0600", m)
	}

	// Init is idempotent with the same rules: same key, same genesis.
	r2 := mustRun(t, "init", "--data", dir, "--network", "testnet", "--pow-bits", "4",
		"--replication-limit", "3", "--originator", "vote.*="+other.ID().String())
	if got := field(t, r2.stdout, "node id"); got != nodeID {
		t.Errorf("re-init changed the node id: %s, then %s", nodeID, got)
	}

	// A different genesis is refused and the old one stays.
	before, _ := os.ReadFile(node.GenesisPath(dir))
	wantExit(t, ExitError, []string{"init", "--data", dir, "--network", "othernet", "--pow-bits", "4"},
		"refusing to replace", `"testnet"`)
	wantExit(t, ExitError, []string{"init", "--data", dir, "--network", "testnet", "--pow-bits", "5"},
		"refusing to replace")
	after, _ := os.ReadFile(node.GenesisPath(dir))
	if !bytes.Equal(before, after) {
		t.Errorf("refused init changed genesis.json:\n%s\n->\n%s", before, after)
	}
	if got := loadID(t, node.KeyPath(dir)); got != nodeID {
		t.Errorf("refused init changed node.key: %s -> %s", nodeID, got)
	}
}

func TestInitJoinWithGenesis(t *testing.T) {
	a, aID := initDir(t, "joinnet", 4)
	gA, err := ledger.LoadGenesis(node.GenesisPath(a))
	if err != nil {
		t.Fatal(err)
	}
	// The genesis file is copied elsewhere, as an operator would.
	gfile := filepath.Join(t.TempDir(), "joinnet-genesis.json")
	raw, _ := os.ReadFile(node.GenesisPath(a))
	if err := os.WriteFile(gfile, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	b := filepath.Join(t.TempDir(), "b")
	r := mustRun(t, "init", "--data", b, "--genesis", gfile)
	gB, err := ledger.LoadGenesis(node.GenesisPath(b))
	if err != nil {
		t.Fatal(err)
	}
	if gA.Hash() != gB.Hash() {
		t.Fatalf("joined genesis %+v differs from %+v", gB, gA)
	}
	gh := gA.Hash()
	if !strings.Contains(r.stdout, fmt.Sprintf("joinnet (genesis %x)", gh[:])) || field(t, r.stdout, "proof of work") != "4 bits" {
		t.Errorf("join output does not name the network's genesis:\n%s", r)
	}
	if bID := field(t, r.stdout, "node id"); bID == aID || bID != loadID(t, node.KeyPath(b)) {
		t.Errorf("joined node id %s (first node %s, key file %s)", bID, aID, loadID(t, node.KeyPath(b)))
	}

	// --genesis fixes the rules: no rule flag may come with it, and nothing
	// is created.
	for _, f := range [][]string{{"--network", "joinnet"}, {"--pow-bits", "4"}, {"--replication-limit", "1"}, {"--originator", "x=" + aID}} {
		c := filepath.Join(t.TempDir(), "c")
		args := append([]string{"init", "--data", c, "--genesis", gfile}, f...)
		wantExit(t, ExitUsage, args, "--genesis and "+f[0]+" exclude each other")
		notExist(t, c)
	}

	// A missing genesis file is an error, not a new network.
	c := filepath.Join(t.TempDir(), "c")
	wantExit(t, ExitError, []string{"init", "--data", c, "--genesis", filepath.Join(t.TempDir(), "nope.json")}, "nope.json")
	notExist(t, node.GenesisPath(c))

	// Re-joining b with another network's genesis is refused.
	other, _ := initDir(t, "othernet", 4)
	wantExit(t, ExitError, []string{"init", "--data", b, "--genesis", node.GenesisPath(other)}, "refusing to replace")
	if g, _ := ledger.LoadGenesis(node.GenesisPath(b)); g == nil || g.Hash() != gA.Hash() {
		t.Errorf("refused init changed b's genesis to %+v", g)
	}
}

func TestInitUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"--originator", "vote.cast"}, "want KIND=NODEID"},
		{[]string{"--originator", "vote.cast=nothex"}, "--originator"},
		{[]string{"--network", "Bad Name"}, "network"},
		{[]string{"--pow-bits", "33"}, "pow"},
		{[]string{"--pow-bits", "four"}, "invalid value"},
		{[]string{"extra-argument"}, "takes 0 argument"},
	}
	for _, c := range cases {
		dir := filepath.Join(t.TempDir(), "d")
		wantExit(t, ExitUsage, append([]string{"init", "--data", dir}, c.args...), c.msg)
		notExist(t, node.GenesisPath(dir))
	}
}

func TestKeygenThenInitKey(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys", "operator.key")
	r := mustRun(t, "keygen", "--out", keyFile)
	keyID := field(t, r.stdout, "node id")
	if want := loadID(t, keyFile); keyID != want {
		t.Fatalf("keygen printed %s, file holds %s", keyID, want)
	}
	if m := fileMode(t, keyFile); m != 0o600 {
		t.Errorf("key file mode %04o, want 0600", m)
	}
	if !strings.Contains(field(t, r.stdout, "key file"), keyFile) {
		t.Errorf("keygen output does not name %s:\n%s", keyFile, r)
	}
	id, _ := ledger.ParseNodeID(keyID)
	if field(t, r.stdout, "fingerprint") != id.Fingerprint() {
		t.Errorf("keygen fingerprint wrong:\n%s", r)
	}

	// keygen never overwrites a key.
	before, _ := os.ReadFile(keyFile)
	wantExit(t, ExitError, []string{"keygen", "--out", keyFile}, "save identity")
	if after, _ := os.ReadFile(keyFile); !bytes.Equal(before, after) {
		t.Fatal("keygen overwrote an existing key file")
	}

	dir := filepath.Join(t.TempDir(), "data")
	r = mustRun(t, "init", "--data", dir, "--pow-bits", "0", "--key", keyFile)
	if got := field(t, r.stdout, "node id"); got != keyID {
		t.Errorf("init --key printed node id %s, want %s", got, keyID)
	}
	if got := loadID(t, node.KeyPath(dir)); got != keyID {
		t.Errorf("DATA/node.key holds %s, want the installed %s", got, keyID)
	}
	if m := fileMode(t, node.KeyPath(dir)); m != 0o600 {
		t.Errorf("installed node.key mode %04o, want 0600", m)
	}
	// Records are signed with the installed key.
	p := put(t, dir, "note.text", `{"n":1}`)
	s := mustRun(t, "chain", "show", "--data", dir, p.ID)
	if got := field(t, s.stdout, "origin"); got != keyID {
		t.Errorf("record origin %s, want installed key %s", got, keyID)
	}

	// Installing a different key over an existing one is refused.
	other := filepath.Join(t.TempDir(), "other.key")
	mustRun(t, "keygen", "--out", other)
	wantExit(t, ExitError, []string{"init", "--data", dir, "--pow-bits", "0", "--key", other}, "different node key")
	if got := loadID(t, node.KeyPath(dir)); got != keyID {
		t.Errorf("refused init replaced node.key")
	}

	// A key readable by others is refused.
	loose := filepath.Join(t.TempDir(), "loose.key")
	raw, _ := os.ReadFile(keyFile)
	if err := os.WriteFile(loose, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	d2 := filepath.Join(t.TempDir(), "d2")
	wantExit(t, ExitError, []string{"init", "--data", d2, "--key", loose}, "chmod 600")
	notExist(t, node.GenesisPath(d2))

	// keygen without --out writes DATA/node.key.
	d3 := filepath.Join(t.TempDir(), "d3")
	r = mustRun(t, "keygen", "--data", d3)
	if got := loadID(t, node.KeyPath(d3)); got != field(t, r.stdout, "node id") {
		t.Errorf("keygen --data wrote %s, printed %s", got, field(t, r.stdout, "node id"))
	}
}

func TestOriginatorRule(t *testing.T) {
	// Only the key made by keygen may originate poll.*.
	keyFile := filepath.Join(t.TempDir(), "admin.key")
	keyID := field(t, mustRun(t, "keygen", "--out", keyFile).stdout, "node id")
	admin := filepath.Join(t.TempDir(), "admin")
	mustRun(t, "init", "--data", admin, "--network", "votes", "--pow-bits", "0",
		"--originator", "poll.*="+keyID, "--key", keyFile)
	put(t, admin, "poll.cast", `{"choice":"a"}`)

	voter := filepath.Join(t.TempDir(), "voter")
	mustRun(t, "init", "--data", voter, "--genesis", node.GenesisPath(admin))
	wantExit(t, ExitError, []string{"chain", "put", "--data", voter, "poll.cast", `{"choice":"b"}`}, "originate")
	put(t, voter, "note.text", `{"text":"anyone may"}`) // kinds no rule names are open
	if n := headSize(t, voter); n != 1 {
		t.Errorf("voter chain has %d records, want 1", n)
	}
}

// ---------------------------------------------------------------- chain put/show/head

func TestChainPut(t *testing.T) {
	dir, nodeID := initDir(t, "putnet", 4)

	r := mustRun(t, "chain", "put", "--data", dir, "--author", "alice@example", "note.text",
		`{"text":"hello","n":-7,"big":18446744073709551615,"tags":["a","b"],"ok":true,"blob":{"$bytes":"AAEC"},"deep":{"x":[1,{"y":2}]}}`)
	m := regexp.MustCompile(`^appended ([0-9a-f]{64}) at height 0\n$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("unexpected put output:\n%s", r)
	}
	id0 := m[1]
	// The id has the genesis' 4 bits of proof of work.
	if id0[0] != '0' {
		t.Errorf("id %s lacks 4 leading zero bits", id0)
	}

	p1 := put(t, dir, "note.text", `{"n":1}`)
	p2 := put(t, dir, "poll.cast", `{"choice":"b"}`)
	if p1.Height != 1 || p2.Height != 2 || p1.ID == p2.ID || p1.Link == p2.Link {
		t.Errorf("put --json results %+v %+v", p1, p2)
	}

	// The record reads back with its fields.
	var x ledger.ExportRecord
	s := mustRun(t, "chain", "show", "--data", dir, "--json", id0)
	if err := json.Unmarshal([]byte(s.stdout), &x); err != nil {
		t.Fatalf("show --json: %v\n%s", err, s)
	}
	if x.Author != "alice@example" || x.Kind != "note.text" || x.Height != 0 || x.ID.String() != id0 || x.Source != "local" || x.Replication != 0 {
		t.Errorf("record read back as %+v", x)
	}
	if hex.EncodeToString(x.Origin) != nodeID {
		t.Errorf("origin %x, want %s", []byte(x.Origin), nodeID)
	}
	const canon = `{"n":-7,"ok":true,"big":18446744073709551615,"blob":{"$bytes":"AAEC"},"deep":{"x":[1,{"y":2}]},"tags":["a","b"],"text":"hello"}`
	if string(x.Payload) != canon {
		t.Errorf("payload read back as\n%s\nwant canonical\n%s", x.Payload, canon)
	}

	// Refused input: usage errors, and nothing is appended.
	bad := []struct {
		args []string
		msg  string
	}{
		{[]string{"Note", `{"n":1}`}, "invalid record kind"},
		{[]string{"note..text", `{"n":1}`}, "invalid record kind"},
		{[]string{"", `{"n":1}`}, "invalid record kind"},
		{[]string{"note.text", `{"n":1.5}`}, "not an integer"},
		{[]string{"note.text", `{"n":1e3}`}, "not an integer"},
		{[]string{"note.text", `{"n":null}`}, "invalid payload"},
		{[]string{"note.text", `{"n":18446744073709551616}`}, "invalid payload"},
		{[]string{"note.text", `[1,2]`}, "invalid payload"},
		{[]string{"note.text", `{"n":`}, "invalid payload"},
		{[]string{"note.text"}, "takes 2 argument(s), got 1"},
		{[]string{"note.text", `{"n":1}`, "extra"}, "takes 2 argument(s), got 3"},
	}
	for _, b := range bad {
		wantExit(t, ExitUsage, append([]string{"chain", "put", "--data", dir}, b.args...), b.msg)
	}
	// Flags after the arguments.
	r = wantExit(t, ExitUsage, []string{"chain", "put", "note.text", `{"n":9}`, "--data", dir},
		"flags go before arguments", `"--data"`)
	r = wantExit(t, ExitUsage, []string{"chain", "put", "--data", dir, "note.text", `{"n":9}`, "--json"},
		"flags go before arguments", `"--json"`)
	if r.stdout != "" {
		t.Errorf("refused put printed on stdout:\n%s", r)
	}
	if n := headSize(t, dir); n != 3 {
		t.Errorf("chain has %d records after refused puts, want 3", n)
	}
}

// TestChainPutTopLevelBytes: a payload that is a byte string rather than a
// map must be refused as a usage error (it once panicked, which also exits
// 2, so the test catches panics to tell the two apart).
func TestChainPutTopLevelBytes(t *testing.T) {
	dir, _ := initDir(t, "bytesnet", 0)
	var r result
	panicked := func() (p any) {
		defer func() { p = recover() }()
		r = run(t, "chain", "put", "--data", dir, "note.text", `{"$bytes":"AAEC"}`)
		return nil
	}()
	if panicked != nil {
		t.Fatalf("chain put with payload {\"$bytes\":...} panicked: %v", panicked)
	}
	if r.code != ExitUsage || !strings.Contains(r.stderr, "invalid payload") {
		t.Errorf("top-level $bytes payload:\n%s", r)
	}
	if n := headSize(t, dir); n != 0 {
		t.Errorf("chain has %d records, want 0", n)
	}
}

func TestChainShow(t *testing.T) {
	dir, nodeID := initDir(t, "shownet", 0)
	ps := putN(t, dir, 3)

	byHeight := mustRun(t, "chain", "show", "--data", dir, "1")
	byID := mustRun(t, "chain", "show", "--data", dir, ps[1].ID)
	if byHeight.stdout != byID.stdout {
		t.Errorf("show by height and by id differ:\n%s\n%s", byHeight, byID)
	}
	out := byHeight.stdout
	for name, want := range map[string]string{
		"height": "1", "id": ps[1].ID, "link": ps[1].Link, "kind": "note.text",
		"origin": nodeID, "source": "local", "replication": "0",
	} {
		if got := field(t, out, name); got != want {
			t.Errorf("show: %s = %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(out, "payload\n  {\n    \"n\": 1\n  }\n") {
		t.Errorf("show does not print the payload as indented JSON:\n%s", out)
	}
	if sig := field(t, out, "signature"); !regexp.MustCompile(`^[0-9a-f]{128}$`).MatchString(sig) {
		t.Errorf("signature %q is not 64 bytes of hex", sig)
	}
	if _, err := time.Parse(time.RFC3339Nano, field(t, out, "created")); err != nil {
		t.Errorf("created is not RFC 3339: %v", err)
	}

	j := mustRun(t, "chain", "show", "--data", dir, "--json", "2")
	var x ledger.ExportRecord
	if err := json.Unmarshal([]byte(j.stdout), &x); err != nil {
		t.Fatalf("show --json is not an export line: %v\n%s", err, j)
	}
	if x.Height != 2 || x.ID.String() != ps[2].ID || x.Link.String() != ps[2].Link || string(x.Payload) != `{"n":2}` || len(x.Signature) != 64 || x.Version != 1 {
		t.Errorf("show --json = %+v", x)
	}
	if strings.Count(j.stdout, "\n") != 1 {
		t.Errorf("show --json is not one line:\n%s", j.stdout)
	}

	r := wantExit(t, ExitError, []string{"chain", "show", "--data", dir, "3"}, "not found", "height 3")
	if r.stdout != "" {
		t.Errorf("show of a missing record printed:\n%s", r)
	}
	wantExit(t, ExitError, []string{"chain", "show", "--data", dir, strings.Repeat("0", 64)}, "not found")
	wantExit(t, ExitUsage, []string{"chain", "show", "--data", dir, "-1"}, "flag provided but not defined: -1")
	wantExit(t, ExitUsage, []string{"chain", "show", "--data", dir, "1.5"}, "neither a height nor")
	wantExit(t, ExitUsage, []string{"chain", "show", "--data", dir, "xyz"}, "neither a height nor")
	wantExit(t, ExitUsage, []string{"chain", "show", "--data", dir, strings.Repeat("g", 64)})
	wantExit(t, ExitUsage, []string{"chain", "show", "--data", dir}, "takes 1 argument(s), got 0")
	wantExit(t, ExitUsage, []string{"chain", "show", "1", "--data", dir}, "flags go before arguments")
}

func TestChainHead(t *testing.T) {
	dir, nodeID := initDir(t, "headnet", 0)
	want, _ := ledger.ParseNodeID(nodeID)

	// Empty chain: size 0, the empty tree's root, a zero link.
	r := mustRun(t, "chain", "head", "--data", dir)
	if field(t, r.stdout, "size ") != "0" || field(t, r.stdout, "link ") != strings.Repeat("0", 64) ||
		field(t, r.stdout, "root ") != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("head of an empty chain:\n%s", r)
	}

	ps := putN(t, dir, 3)
	r = mustRun(t, "chain", "head", "--data", dir)
	head, note, ok := strings.Cut(r.stdout, "\n\n")
	if !ok {
		t.Fatalf("chain head has no checkpoint after a blank line:\n%s", r)
	}
	cp, err := ledger.OpenCheckpoint([]byte(note), want)
	if err != nil {
		t.Fatalf("checkpoint does not verify: %v\n%s", err, r)
	}
	if cp.Size != 3 || cp.Network != "headnet" || cp.Node != want || cp.Link.String() != ps[2].Link {
		t.Errorf("checkpoint %+v, want size 3 of headnet, link %s", cp, ps[2].Link)
	}
	if time.Since(cp.Time) > time.Minute || time.Until(cp.Time) > time.Minute {
		t.Errorf("checkpoint time %v is not now", cp.Time)
	}
	if field(t, head, "size ") != "3" || field(t, head, "root ") != cp.Root.String() || field(t, head, "link ") != cp.Link.String() {
		t.Errorf("head lines disagree with the checkpoint %+v:\n%s", cp, head)
	}
	// The checkpoint is bound to its signer and its text.
	other, _ := ledger.GenerateIdentity()
	if _, err := ledger.OpenCheckpoint([]byte(note), other.ID()); err == nil {
		t.Error("checkpoint opened under another node's id")
	}
	forged := strings.Replace(note, "\n3\n", "\n4\n", 1)
	if _, err := ledger.OpenCheckpoint([]byte(forged), want); err == nil {
		t.Error("a checkpoint with a changed size still verifies")
	}

	j := mustRun(t, "chain", "head", "--data", dir, "--json")
	var hj struct {
		Size       uint64
		Root, Link string
		Checkpoint string
	}
	if err := json.Unmarshal([]byte(j.stdout), &hj); err != nil {
		t.Fatalf("head --json: %v\n%s", err, j)
	}
	cpj, err := ledger.OpenCheckpoint([]byte(hj.Checkpoint), want)
	if err != nil {
		t.Fatalf("head --json checkpoint does not verify: %v", err)
	}
	if hj.Size != 3 || hj.Root != cp.Root.String() || hj.Link != ps[2].Link || cpj.Root != cp.Root {
		t.Errorf("head --json %+v disagrees with %+v", hj, cp)
	}

	// The root is the chain's: verify recomputes the same one.
	v := mustRun(t, "chain", "verify", "--data", dir)
	if field(t, v.stdout, "root") != cp.Root.String() || field(t, v.stdout, "link") != cp.Link.String() {
		t.Errorf("verify root/link differ from the head's %s/%s:\n%s", cp.Root, cp.Link, v)
	}
}

func TestChainVerifyOK(t *testing.T) {
	dir, _ := initDir(t, "verifynet", 4)
	r := mustRun(t, "chain", "verify", "--data", dir)
	if !strings.HasPrefix(r.stdout, "OK: 0 records verified") {
		t.Errorf("verify of an empty chain:\n%s", r)
	}
	putN(t, dir, 5)
	for _, args := range [][]string{{"--data", dir}, {"--data", dir, "--workers", "1"}} {
		r = mustRun(t, append([]string{"chain", "verify"}, args...)...)
		if !regexp.MustCompile(`^OK: 5 records verified in \S+ \(\d+ records/s\)\nroot [0-9a-f]{64}\nlink [0-9a-f]{64}\n$`).MatchString(r.stdout) {
			t.Errorf("verify output:\n%s", r)
		}
	}
	wantExit(t, ExitUsage, []string{"chain", "verify", "--data", dir, "--workers", "-1"}, "--workers")
	wantExit(t, ExitUsage, []string{"chain", "verify", "--data", dir, "extra"}, "takes 0 argument")
}

func TestChainCommandsNeedInitialisedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	for _, args := range [][]string{
		{"chain", "verify", "--data", dir},
		{"chain", "show", "--data", dir, "0"},
		{"chain", "head", "--data", dir},
		{"chain", "export", "--data", dir},
		{"chain", "put", "--data", dir, "note.text", `{"n":1}`},
		{"chain", "import", "--data", dir, "-"},
	} {
		wantExit(t, ExitError, args, "not a pyvnode data directory", "pyvnode init --data "+dir)
		notExist(t, dir)
	}
	// The PYVNODE_DATA environment variable names the directory too.
	t.Setenv("PYVNODE_DATA", dir)
	wantExit(t, ExitError, []string{"chain", "head"}, "pyvnode init --data "+dir)
}

// ---------------------------------------------------------------- export, import

type exportFile struct {
	header  ledger.ExportHeader
	records []ledger.ExportRecord
	trailer ledger.ExportTrailer
}

func parseExport(t *testing.T, b []byte) exportFile {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("export has %d lines:\n%s", len(lines), b)
	}
	var ef exportFile
	dec := func(line string, v any) {
		d := json.NewDecoder(strings.NewReader(line))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
	}
	dec(lines[0], &ef.header)
	for _, l := range lines[1 : len(lines)-1] {
		var x ledger.ExportRecord
		dec(l, &x)
		ef.records = append(ef.records, x)
	}
	dec(lines[len(lines)-1], &ef.trailer)
	return ef
}

func TestChainExportImport(t *testing.T) {
	a, aID := initDir(t, "xnet", 4)
	ps := putN(t, a, 4)
	headA := mustRun(t, "chain", "head", "--data", a).stdout

	file := filepath.Join(t.TempDir(), "chain.jsonl")
	r := mustRun(t, "chain", "export", "--data", a, "--out", file)
	if r.stdout != "" {
		t.Errorf("export --out wrote to stdout:\n%s", r)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ef := parseExport(t, raw)
	gA, _ := ledger.LoadGenesis(node.GenesisPath(a))
	if ef.header.Format != ledger.ExportFormat || ef.header.Network != "xnet" || ef.header.Size != 4 || ef.header.From != 0 ||
		ef.header.Node.String() != aID || ef.header.GenesisHash != ledger.Hash(gA.Hash()) || ef.header.Genesis.Hash() != gA.Hash() {
		t.Errorf("export header %+v", ef.header)
	}
	if len(ef.records) != 4 {
		t.Fatalf("export has %d record lines, want 4", len(ef.records))
	}
	for i, x := range ef.records {
		if x.Height != uint64(i) || x.ID.String() != ps[i].ID || x.Link.String() != ps[i].Link || string(x.Payload) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("export record %d = %+v", i, x)
		}
	}
	if !ef.trailer.End || ef.trailer.Size != 4 || ef.trailer.Link.String() != ps[3].Link ||
		ef.trailer.Root.String() != field(t, headA, "root ") {
		t.Errorf("export trailer %+v", ef.trailer)
	}
	if cp, err := ledger.OpenCheckpoint([]byte(ef.trailer.Checkpoint), ef.header.Node); err != nil || cp.Size != 4 || cp.Root != ef.trailer.Root {
		t.Errorf("export checkpoint: %v %+v", err, cp)
	}
	// export never overwrites.
	wantExit(t, ExitError, []string{"chain", "export", "--data", a, "--out", file}, "exists")
	// To stdout, and from a height.
	r = mustRun(t, "chain", "export", "--data", a, "--from", "2")
	part := parseExport(t, []byte(r.stdout))
	if part.header.From != 2 || part.header.PrevLink == nil || part.header.PrevLink.String() != ps[1].Link ||
		len(part.records) != 2 || part.records[0].ID.String() != ps[2].ID {
		t.Errorf("export --from 2: header %+v, %d records", part.header, len(part.records))
	}

	// Import into a second node of the same network.
	b := filepath.Join(t.TempDir(), "b")
	mustRun(t, "init", "--data", b, "--genesis", node.GenesisPath(a))
	r = mustRun(t, "chain", "import", "--data", b, file)
	if !strings.HasPrefix(r.stdout, "read 4 records: 4 appended, 0 already present (") {
		t.Errorf("import output:\n%s", r)
	}
	for i, p := range ps {
		s := mustRun(t, "chain", "show", "--data", b, "--json", p.ID)
		var x ledger.ExportRecord
		if err := json.Unmarshal([]byte(s.stdout), &x); err != nil {
			t.Fatal(err)
		}
		if x.Height != uint64(i) || x.Source != "import" || hex.EncodeToString(x.Origin) != aID ||
			!bytes.Equal(x.Signature, ef.records[i].Signature) || !bytes.Equal(x.Record, ef.records[i].Record) {
			t.Errorf("imported record %d: %+v", i, x)
		}
	}
	v := mustRun(t, "chain", "verify", "--data", b)
	if !strings.HasPrefix(v.stdout, "OK: 4 records verified") || field(t, v.stdout, "root") != ef.trailer.Root.String() {
		t.Errorf("verify after import (want root %s):\n%s", ef.trailer.Root, v)
	}

	// Again, from standard input: everything is already there.
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r = runIn(t.Context(), f, "chain", "import", "--data", b, "-")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "read 4 records: 0 appended, 4 already present") {
		t.Errorf("re-import from stdin:\n%s", r)
	}
	if n := headSize(t, b); n != 4 {
		t.Errorf("b has %d records after re-import, want 4", n)
	}

	// b's own record, then a partial import into a: only b's is new. The
	// export of b holds a's four and b's one.
	pb := put(t, b, "note.text", `{"from":"b"}`)
	fileB := filepath.Join(t.TempDir(), "b.jsonl")
	mustRun(t, "chain", "export", "--data", b, "--out", fileB)
	r = mustRun(t, "chain", "import", "--data", a, fileB)
	if !strings.HasPrefix(r.stdout, "read 5 records: 1 appended, 4 already present") {
		t.Errorf("import back into a:\n%s", r)
	}
	if s := mustRun(t, "chain", "show", "--data", a, "4"); field(t, s.stdout, "id") != pb.ID {
		t.Errorf("a's height 4 is not b's record %s:\n%s", pb.ID, s)
	}

	// Another network's node refuses the export and stays empty.
	c, _ := initDir(t, "othernet", 4)
	wantExit(t, ExitError, []string{"chain", "import", "--data", c, file}, "another network", `"xnet"`)
	if n := headSize(t, c); n != 0 {
		t.Errorf("other network's chain has %d records after a refused import", n)
	}
	// A network of the same name but other rules is another network too.
	d, _ := initDir(t, "xnet", 0)
	wantExit(t, ExitError, []string{"chain", "import", "--data", d, file}, "another network")
	if n := headSize(t, d); n != 0 {
		t.Errorf("same-name network's chain has %d records after a refused import", n)
	}

	wantExit(t, ExitError, []string{"chain", "import", "--data", b, filepath.Join(t.TempDir(), "nope.jsonl")}, "nope.jsonl")
	wantExit(t, ExitUsage, []string{"chain", "import", "--data", b}, "takes 1 argument(s), got 0")
}

func TestChainImportRefusesTamperedRecord(t *testing.T) {
	a, _ := initDir(t, "tampernet", 0)
	putN(t, a, 3)
	r := mustRun(t, "chain", "export", "--data", a)
	// Change a decoded field so it disagrees with the record bytes.
	tampered := strings.Replace(r.stdout, `"payload":{"n":1}`, `"payload":{"n":7}`, 1)
	if tampered == r.stdout {
		t.Fatal("export lacks the payload to tamper with")
	}
	b := filepath.Join(t.TempDir(), "b")
	mustRun(t, "init", "--data", b, "--genesis", node.GenesisPath(a))
	res := runIn(t.Context(), strings.NewReader(tampered), "chain", "import", "--data", b, "-")
	if res.code != ExitError || !strings.Contains(res.stderr, "export line 3") {
		t.Fatalf("import of a tampered export:\n%s", res)
	}
	if n := headSize(t, b); n > 1 {
		t.Errorf("tampered import appended %d records, want at most the one before the bad line", n)
	}
}

// ---------------------------------------------------------------- damage

type frame struct {
	off     int64 // of the frame header
	payload []byte
}

// readFrames walks a segment per docs/FORMAT.md §12: length (4, BE), CRC-32C
// (4, BE), payload.
func readFrames(t *testing.T, seg []byte) []frame {
	t.Helper()
	var fs []frame
	for off := 0; off < len(seg); {
		if len(seg)-off < 8 {
			// Preallocated zero tail, if any.
			break
		}
		n := int(binary.BigEndian.Uint32(seg[off:]))
		if n == 0 {
			break
		}
		if off+8+n > len(seg) {
			t.Fatalf("frame at %d: length %d runs past the segment (%d bytes)", off, n, len(seg))
		}
		p := seg[off+8 : off+8+n]
		if crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)) != binary.BigEndian.Uint32(seg[off+4:]) {
			t.Fatalf("frame at %d fails its CRC-32C before the test damaged anything", off)
		}
		fs = append(fs, frame{off: int64(off), payload: p})
		off += 8 + n
	}
	return fs
}

// damageSignature builds a chain of n records, flips one byte in the
// signature of the entry at height 2 and, if fixCRC, makes the frame's
// checksum match again. It returns the data directory.
func damageSignature(t *testing.T, n int, fixCRC bool) string {
	t.Helper()
	dir, _ := initDir(t, "damagenet", 4)
	ps := putN(t, dir, n)
	segPath := filepath.Join(dir, "chain", "segments", "00000000.seg")
	seg, err := os.ReadFile(segPath)
	if err != nil {
		t.Fatal(err)
	}
	fs := readFrames(t, seg)
	if len(fs) != n {
		t.Fatalf("segment holds %d frames, want %d", len(fs), n)
	}
	f := fs[2]
	// The payload is the stored entry, which ends in the envelope, which
	// ends in the 64-byte signature (FORMAT.md §7, §12).
	sig := mustRun(t, "chain", "show", "--data", dir, "--json", ps[2].ID).stdout
	var x ledger.ExportRecord
	if err := json.Unmarshal([]byte(sig), &x); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(f.payload, x.Signature) || !bytes.HasPrefix(f.payload, []byte{0x88, 0x02}) {
		t.Fatalf("frame 3 is not entry 2 ending in its signature: %x", f.payload)
	}
	i := f.off + 8 + int64(len(f.payload)) - 64 + 17
	seg[i] ^= 0x40
	if fixCRC {
		binary.BigEndian.PutUint32(seg[f.off+4:], crc32.Checksum(seg[f.off+8:f.off+8+int64(len(f.payload))], crc32.MakeTable(crc32.Castagnoli)))
	}
	if err := os.WriteFile(segPath, seg, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestVerifyDetectsForgedSignature(t *testing.T) {
	dir := damageSignature(t, 5, true)
	r := run(t, "chain", "verify", "--data", dir)
	if r.code != ExitDamaged {
		t.Fatalf("verify of a chain with a bad signature: want exit %d\n%s", ExitDamaged, r)
	}
	if !strings.HasPrefix(r.stdout, "DAMAGED at height 2: ") || !strings.Contains(r.stdout, "signature") {
		t.Errorf("verify does not name height 2 and the signature:\n%s", r)
	}
	if !strings.Contains(r.stderr, "chain verification failed at height 2") {
		t.Errorf("verify's error does not name height 2:\n%s", r)
	}
	if strings.Contains(r.stdout, "OK") {
		t.Errorf("verify says OK on a damaged chain:\n%s", r)
	}
}

func TestVerifyDetectsChecksumMismatch(t *testing.T) {
	// The same damage without fixing the checksum: the frame is not whole.
	dir := damageSignature(t, 5, false)
	r := run(t, "chain", "verify", "--data", dir)
	if r.code != ExitDamaged {
		t.Fatalf("verify of a chain with a bad frame checksum: want exit %d\n%s", ExitDamaged, r)
	}
	if !strings.HasPrefix(r.stdout, "DAMAGED at height 2: ") || !strings.Contains(r.stdout, "checksum mismatch") {
		t.Errorf("verify does not name height 2 and the checksum:\n%s", r)
	}
	if !strings.Contains(r.stderr, "chain verification failed at height 2") {
		t.Errorf("verify's error does not name height 2:\n%s", r)
	}
}

func TestVerifyDetectsDamageInLastFrame(t *testing.T) {
	// Height 2 is the last entry here. A clean close checkpointed past it,
	// so opening does not take it for a torn, unacknowledged append.
	for _, fix := range []bool{true, false} {
		dir := damageSignature(t, 3, fix)
		r := run(t, "chain", "verify", "--data", dir)
		if r.code != ExitDamaged || !strings.HasPrefix(r.stdout, "DAMAGED at height 2: ") {
			t.Errorf("fixCRC=%v: want exit 3 at height 2\n%s", fix, r)
		}
	}
}

// ---------------------------------------------------------------- serve, logs

// waitFor polls buf until it contains s.
func waitFor(t *testing.T, buf *syncBuffer, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(buf.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v in:\n%s", s, within, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh", "data")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"pyvnode", "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--data", dir}, Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader("")})
	}()
	waitFor(t, &errb, "node started", 10*time.Second)

	if m := fileMode(t, node.KeyPath(dir)); m != 0o600 {
		t.Errorf("node.key mode %04o, want 0600", m)
	}
	g, err := ledger.LoadGenesis(node.GenesisPath(dir))
	if err != nil {
		t.Fatalf("serve did not write genesis.json: %v", err)
	}
	if g.Network != node.DefaultNetwork || g.PowBits != ledger.DefaultPowBits {
		t.Errorf("serve's genesis %+v, want the default one-node network", g)
	}
	id := loadID(t, node.KeyPath(dir))
	logs := errb.String()
	for _, s := range []string{"initialised new data directory", "node_id=" + id, "network=local", "height=0"} {
		if !strings.Contains(logs, s) {
			t.Errorf("serve's log lacks %q:\n%s", s, logs)
		}
	}

	// A second node on the same directory fails cleanly while the first
	// runs: Badger's directory lock.
	second := run(t, "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--data", dir)
	if second.code != ExitError || !strings.Contains(second.stderr, "is in use by a running node") ||
		!strings.Contains(second.stderr, "directory lock") {
		t.Errorf("second serve on a running node's directory:\n%s", second)
	}
	// So do the offline chain commands.
	wantExit(t, ExitError, []string{"chain", "put", "--data", dir, "note.text", `{"n":1}`}, "is in use by a running node")

	time.Sleep(500 * time.Millisecond) // let it run a little before stopping it
	select {
	case code := <-done:
		t.Fatalf("serve stopped before cancellation with exit %d:\n%s", code, errb.String())
	default:
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("serve after cancellation: exit %d\n%s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s of cancellation")
	}
	if !strings.Contains(errb.String(), "msg=stopped") {
		t.Errorf("serve did not log its stop:\n%s", errb.String())
	}
	// The first start shows the operator the admin's one-time password on
	// stdout (stderr carries only logs), matching the 0600 file.
	pwFile, err := os.ReadFile(filepath.Join(dir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimPrefix(strings.SplitN(string(pwFile), "\n", 3)[1], "password: ")
	if !strings.Contains(out.String(), "one-time password") || !strings.Contains(out.String(), pw) {
		t.Errorf("serve did not show the admin's one-time password on stdout:\n%s", out.String())
	}

	// The directory is free again and holds an intact, empty chain; a
	// restart keeps the key.
	v := mustRun(t, "chain", "verify", "--data", dir)
	if !strings.HasPrefix(v.stdout, "OK: 0 records") {
		t.Errorf("verify after serve:\n%s", v)
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel2()
	r := runIn(ctx2, nil, "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--data", dir)
	if r.code != ExitOK || strings.Contains(r.stderr, "initialised new data directory") || !strings.Contains(r.stderr, "node_id="+id) {
		t.Errorf("restart of serve:\n%s", r)
	}

	wantExit(t, ExitUsage, []string{"serve", "--data", dir, "--memory-limit", "1MiB"}, "--memory-limit")
	wantExit(t, ExitUsage, []string{"serve", "--data", dir, "extra"}, "takes 0 argument")
	wantExit(t, ExitUsage, []string{"serve", "--data", dir, "--peer", "/ip4/127.0.0.1/tcp/1"}, "--peer")
	wantExit(t, ExitUsage, []string{"serve", "--data", dir, "--sync-interval", "10ms"}, "--sync-interval")
	wantExit(t, ExitUsage, []string{"serve", "--data", dir, "--http", "nonsense"}, "--http")
}

func TestLogFormats(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	r := runIn(ctx, nil, "--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--data", dir)
	if r.code != ExitOK {
		t.Fatalf("serve with JSON logs:\n%s", r)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stderr))
	var msgs []string
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("stderr line is not JSON: %v\n%q", err, sc.Text())
		}
		if line["level"] == nil || line["time"] == nil {
			t.Errorf("JSON log line lacks level or time: %q", sc.Text())
		}
		msgs = append(msgs, fmt.Sprint(line["msg"]))
	}
	if !strings.Contains(strings.Join(msgs, "|"), "node started") || len(msgs) < 3 {
		t.Errorf("JSON log messages %q", msgs)
	}

	// Text is the default; --log-level warn hides the info lines.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel2()
	r = runIn(ctx2, nil, "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--data", dir)
	if r.code != ExitOK || !strings.HasPrefix(r.stderr, "time=") || !strings.Contains(r.stderr, "level=INFO") {
		t.Errorf("text logs:\n%s", r)
	}
	ctx3, cancel3 := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel3()
	r = runIn(ctx3, nil, "--log-level", "warn", "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--data", dir)
	if r.code != ExitOK || r.stderr != "" {
		t.Errorf("--log-level warn still logs info:\n%s", r)
	}

	wantExit(t, ExitUsage, []string{"--log-level", "loud", "chain", "head", "--data", dir}, `--log-level "loud"`)
	wantExit(t, ExitUsage, []string{"--log-format", "xml", "chain", "head", "--data", dir}, `--log-format "xml"`)
}

func TestUsageErrors(t *testing.T) {
	wantExit(t, ExitUsage, []string{"--no-such-flag", "chain", "head"}, "flag provided but not defined")
	wantExit(t, ExitUsage, []string{"chain", "head", "--no-such-flag"}, "flag provided but not defined")
	// An unknown command is a usage error.
	r := run(t, "no-such-command")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "no-such-command") {
		t.Errorf("unknown command:\n%s", r)
	}
	// --version and --help succeed.
	if r := mustRun(t, "--version"); !strings.Contains(r.stdout, Version) {
		t.Errorf("--version:\n%s", r)
	}
	if r := mustRun(t, "chain", "--help"); !strings.Contains(r.stdout, "verify") || !strings.Contains(r.stdout, "import") {
		t.Errorf("chain --help:\n%s", r)
	}
}

// ---------------------------------------------------------------- bench

func TestBenchLedgerJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bench")
	r := mustRun(t, "bench", "ledger", "--records", "2000", "--append", "200", "--proofs", "50", "--writers", "4", "--dir", dir, "--json")
	var rep map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, r)
	}
	for _, k := range []string{
		"records", "import_records_per_s", "durable_append_records_per_s", "durable_append_writers",
		"verify_records_per_s", "ed25519_verify_per_s", "verify_percent_of_ed25519",
		"inclusion_proof_produce_us", "inclusion_proof_verify_us", "consistency_proof_produce_us",
		"peak_rss_mb_while_appending", "cores", "import_seconds", "verify_seconds", "disk_mb", "proofs",
	} {
		v, ok := rep[k].(float64)
		if !ok || !(v > 0) {
			t.Errorf("bench report %s = %v, want a positive number", k, rep[k])
		}
	}
	if rep["records"] != 2000.0 || rep["durable_append_writers"] != 4.0 || rep["proofs"] != 50.0 {
		t.Errorf("bench report does not echo its parameters: %v", rep)
	}
	if !strings.Contains(r.stderr, "bench phase") {
		t.Errorf("bench did not log its phases:\n%s", r.stderr)
	}
	wantExit(t, ExitUsage, []string{"bench", "ledger", "--records", "0"}, "--records must be at least 1")
}

func TestMisplacedGroupFlagHint(t *testing.T) {
	wantExit(t, ExitUsage, []string{"vote", "cast", "--server", "127.0.0.1:1", "--ballot", "b", "yes"}, "--server belongs to 'pyvnode vote'")
	wantExit(t, ExitUsage, []string{"charity", "report", "--user", "x", "f"}, "--user belongs to 'pyvnode charity'")
	r := wantExit(t, ExitUsage, []string{"vote", "cast", "--nonsense"}, "flag provided but not defined")
	if strings.Contains(r.stderr, "belongs to") {
		t.Errorf("hint for a flag no group takes: %s", r.stderr)
	}
}

// An import takes nothing peers would refuse: a vote record whose payload
// does not fit its schema (written here past the application rules, as an
// older version or a hand-made chain could have) stops the import.
func TestChainImportRefusesBadApplicationPayload(t *testing.T) {
	a, _ := initDir(t, "schemanet", 0)
	d, err := node.OpenData(a, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	good, _ := ledger.EncodePayload(map[string]any{"text": "fine"})
	bad, _ := ledger.EncodePayload(map[string]any{"choice": "b"}) // a vote.cast without ballot, voter or eid
	for _, p := range []struct {
		kind    string
		payload []byte
	}{{"note.text", good}, {"vote.cast", bad}} {
		if _, _, err := node.Put(t.Context(), d, p.kind, p.payload, ""); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	file := filepath.Join(t.TempDir(), "export.jsonl")
	mustRun(t, "chain", "export", "--data", a, "--out", file)
	b := filepath.Join(t.TempDir(), "b")
	mustRun(t, "init", "--data", b, "--genesis", node.GenesisPath(a))
	wantExit(t, ExitError, []string{"chain", "import", "--data", b, file}, "export line 3", "ballot")
	if n := headSize(t, b); n != 0 {
		t.Errorf("the import appended %d records of the refused batch", n)
	}
}
