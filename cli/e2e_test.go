package cli_test

// End-to-end tests of the real binary: TestMain builds cmd/pyvnode once,
// and every TestE2E... test starts 'pyvnode serve' as a child process and
// drives it with 'pyvnode client', 'pyvnode user' and the offline 'chain'
// commands as separate processes, checking exit codes and output. The
// shutdown test also talks to the node with the protocol package's Go
// client, pipelining puts on one connection while the node is stopped.
//
// Each test has its own data directories, ports and known-nodes file, so
// the tests run in parallel with one another (they never call cli.Run in
// this process, so the package's slog.SetDefault caveat does not apply).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/pyvnode/pyvnode/cli"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol"
)

// pyvnodeBin is the binary TestMain built; buildErr says why there is none.
var (
	pyvnodeBin string
	buildErr   error
)

// e2eTests are the tests that need the binary: TestMain skips the build
// when -run selects none of them.
var e2eTests = []string{"TestE2EClient", "TestE2ETOFU", "TestE2ETOTP", "TestE2EShutdown", "TestE2ETestnet"}

func TestMain(m *testing.M) {
	flag.Parse()
	tmp := ""
	if !testing.Short() && wantE2E() {
		var err error
		if tmp, err = os.MkdirTemp("", "pyvnode-e2e-"); err != nil {
			buildErr = err
		} else {
			pyvnodeBin, buildErr = buildBinary(tmp)
		}
	}
	code := m.Run()
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

func wantE2E() bool {
	f := flag.Lookup("test.run")
	if f == nil || f.Value.String() == "" {
		return true
	}
	top, _, _ := strings.Cut(f.Value.String(), "/")
	re, err := regexp.Compile(top)
	if err != nil {
		return true
	}
	for _, n := range e2eTests {
		if re.MatchString(n) {
			return true
		}
	}
	return false
}

// buildBinary builds cmd/pyvnode from the module root into dir.
func buildBinary(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	// Read the main package's files so that 'go test' caches results
	// against them too: the rest of the binary is in the test's imports.
	main := filepath.Join(filepath.Dir(gomod), "cmd", "pyvnode")
	ents, err := os.ReadDir(main)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if _, err := os.ReadFile(filepath.Join(main, e.Name())); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(dir, "pyvnode")
	build := exec.Command("go", "build", "-o", bin, "./cmd/pyvnode")
	build.Dir = filepath.Dir(gomod)
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/pyvnode: %w\n%s", err, b)
	}
	return bin, nil
}

func needBinary(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	if buildErr != nil {
		t.Fatalf("no pyvnode binary: %v", buildErr)
	}
	if pyvnodeBin == "" {
		t.Fatal("no pyvnode binary (TestMain did not build it)")
	}
}

// ---- processes ----

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// baseEnv is the test's environment without any PYVNODE_ variable, so
// the caller's settings cannot leak into the commands.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYVNODE_") {
			out = append(out, kv)
		}
	}
	return out
}

// cmdResult is a finished command.
type cmdResult struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r cmdResult) String() string {
	return fmt.Sprintf("pyvnode %q\nexit %d\n--- stdout:\n%s--- stderr:\n%s", r.args, r.code, r.stdout, r.stderr)
}

// runBinary runs the binary to completion (at most 60 s) in dir with the
// given environment. It does not touch t, so goroutines may call it.
func runBinary(ctx context.Context, dir string, env []string, args ...string) cmdResult {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pyvnodeBin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cmdResult{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		r.code = -1
		r.stderr += fmt.Sprintf("\n(could not run: %v)", err)
	}
	return r
}

// run runs an offline command (init, chain, user --data) with no
// PYVNODE_ variables set.
func run(t *testing.T, args ...string) cmdResult {
	t.Helper()
	return runBinary(t.Context(), t.TempDir(), baseEnv(), args...)
}

func mustOK(t *testing.T, r cmdResult, want ...string) cmdResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("command failed:\n%s", r)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Fatalf("stdout lacks %q:\n%s", w, r)
		}
	}
	return r
}

// mustFail checks a command failed with exit code (any non-zero code when
// code is -1) and that its standard error holds every want.
func mustFail(t *testing.T, r cmdResult, code int, want ...string) cmdResult {
	t.Helper()
	if r.code == 0 || (code >= 0 && r.code != code) {
		t.Fatalf("want exit %d:\n%s", code, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("stderr lacks %q:\n%s", w, r)
		}
	}
	return r
}

// field returns the rest of the first stdout line that starts with name.
func field(t *testing.T, r cmdResult, name string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name); ok && (rest == "" || rest[0] == ' ') {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("no %q line:\n%s", name, r)
	return ""
}

// initData makes a data directory of network "e2e" without proof of work
// and returns it with the node's id.
func initData(t *testing.T) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	r := mustOK(t, run(t, "init", "--data", dir, "--pow-bits", "0", "--network", "e2e"), "proof of work   0 bits", "network         e2e")
	id := field(t, r, "node id")
	if len(id) != 64 {
		t.Fatalf("node id %q:\n%s", id, r)
	}
	return dir, id
}

// serveProc is a running 'pyvnode serve'.
type serveProc struct {
	dir    string
	addr   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	stdout *lockedBuffer
	done   chan struct{} // closed when the process has exited
}

func (p *serveProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// startServe starts 'pyvnode serve' on dir and waits until it accepts
// connections. With port 0 it picks a free port (another one when the
// bind fails); with a port it retries that one for a few seconds.
func startServe(t *testing.T, dir string, port int, dev bool) *serveProc {
	t.Helper()
	fixed := port != 0
	deadline := time.Now().Add(20 * time.Second)
	for attempt := 1; ; attempt++ {
		if !fixed {
			port = freePort(t)
		}
		p, err := tryServe(t, dir, port, dev)
		if err == nil {
			return p
		}
		if !strings.Contains(err.Error(), "address already in use") || attempt >= 20 || time.Now().After(deadline) {
			t.Fatalf("serve: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tryServe(t *testing.T, dir string, port int, dev bool) (*serveProc, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"serve", "--data", dir, "--listen", addr, "--http", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"}
	if dev {
		args = append(args, "--dev")
	}
	p := &serveProc{dir: dir, addr: addr, stderr: &lockedBuffer{}, stdout: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(pyvnodeBin, args...)
	p.cmd.Env = baseEnv()
	p.cmd.Dir = filepath.Dir(dir)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("serve %s stderr:\n%s", addr, p.stderr.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if p.exited() {
			return nil, fmt.Errorf("exited with %d before accepting connections:\n%s", p.cmd.ProcessState.ExitCode(), p.stderr.String())
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("not accepting connections on %s after 15 s:\n%s", addr, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *serveProc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("serve did not stop within 40 s of SIGTERM:\n%s", p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// mustStop stops the node and checks it exited 0 after a clean stop.
func (p *serveProc) mustStop(t *testing.T) {
	t.Helper()
	if code := p.stop(t); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM:\n%s", code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "msg=stopped") {
		t.Fatalf("serve did not log its stop:\n%s", p.stderr.String())
	}
}

// adminPassword reads the one-time password and TOTP URI serve wrote.
func adminPassword(t *testing.T, dir string) (password, totpURI string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "password: "); ok {
			password = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "totp: "); ok {
			totpURI = strings.TrimSpace(v)
		}
	}
	if password == "" || !strings.HasPrefix(totpURI, "otpauth://totp/") {
		t.Fatalf("admin-password has no password or TOTP URI:\n%s", b)
	}
	return password, totpURI
}

// client runs 'pyvnode' commands against one node with a known-nodes file
// of its own, in a working directory of its own.
type client struct {
	t      *testing.T
	server string
	known  string
	dir    string
}

func newClient(t *testing.T, server string) *client {
	d := t.TempDir()
	return &client{t: t, server: server, known: filepath.Join(d, "known_nodes"), dir: filepath.Join(d, "work")}
}

func (c *client) env(extra ...string) []string {
	env := append(baseEnv(), "PYVNODE_KNOWN_NODES="+c.known, "PYVNODE_SERVER="+c.server)
	return append(env, extra...)
}

// run runs a command with extra environment variables ("K=V").
func (c *client) run(extra []string, args ...string) cmdResult {
	c.t.Helper()
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	return runBinary(c.t.Context(), c.dir, c.env(extra...), args...)
}

// as is the environment that logs in with a password.
func as(password string) []string { return []string{"PYVNODE_PASSWORD=" + password} }

var appendedRE = regexp.MustCompile(`^appended ([0-9a-f]{64}) at height (\d+)\n$`)

// parseAppended returns the id and height of "appended ID at height H".
func parseAppended(t *testing.T, r cmdResult) (string, uint64) {
	t.Helper()
	m := appendedRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("not an 'appended' line:\n%s", r)
	}
	h, _ := strconv.ParseUint(m[2], 10, 64)
	return m[1], h
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, sha256 %s; want %d bytes, sha256 %s", path, len(got), sha256Hex(got), len(want), sha256Hex(want))
	}
}

func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (or cannot be checked: %v)", path, err)
	}
}

func decodeJSON(t *testing.T, r cmdResult) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r)
	}
	return m
}

// ---- the tests ----

// TestE2EClient walks through every client command against a --dev node,
// then stops it and checks the data directory offline.
func TestE2EClient(t *testing.T) {
	needBinary(t)
	t.Parallel()
	dir, nodeID := initData(t)
	srv := startServe(t, dir, 0, true)
	otpw, _ := adminPassword(t, dir)
	c := newClient(t, srv.addr)
	const adminPW = "admin's new long password"
	admin := as(adminPW)

	// The first contact is announced and remembered; reading needs no login.
	r := mustOK(t, c.run(nil, "client", "hello"), "node      "+nodeID, "network   e2e", "mode      development (no TOTP)")
	want := fmt.Sprintf("first contact with %s: node %s, network \"e2e\", fingerprint SHA256:", srv.addr, nodeID)
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("first command does not announce the first contact (%q):\n%s", want, r)
	}
	if r = mustOK(t, c.run(nil, "client", "hello")); strings.Contains(r.stderr, "first contact") {
		t.Fatalf("second contact announced as first:\n%s", r)
	}
	mustOK(t, c.run(nil, "client", "id"), "node          "+nodeID, "proof of work 0 bits")

	// The one-time password allows only passwd.
	mustFail(t, c.run(as(otpw), "client", "--user", "admin", "put", "note.text", `{"text":"too early"}`), 1,
		"admin must change the one-time password first", "passwd")
	mustFail(t, c.run(nil, "client", "put", "note.text", `{"text":"no user"}`), 2, "needs a login")
	mustOK(t, c.run(append(as(otpw), "PYVNODE_NEW_PASSWORD="+adminPW), "client", "--user", "admin", "passwd"), "password changed")

	// Limits: shown, then loosened so the many short connections of this
	// test never meet the connection rate limit.
	mustOK(t, c.run(admin, "client", "--user", "admin", "limits"), "max_conns          256", "conn_rate          20/s (burst 40)", "max_file_chunk     1048576")
	mustOK(t, c.run(admin, "client", "--user", "admin", "limits", "conn_rate=500", "conn_burst=1000"), "conn_rate          500/s (burst 1000)", "max_conns          256")
	mustOK(t, c.run(admin, "client", "--user", "admin", "limits"), "conn_rate          500/s (burst 1000)")
	mustFail(t, c.run(admin, "client", "--user", "admin", "limits", "bogus=1"), 2, `unknown limit "bogus"`)

	// Records.
	id0, h0 := parseAppended(t, mustOK(t, c.run(admin, "client", "--user", "admin", "put", "note.text", `{"text":"hello","n":[1,2]}`)))
	id1, h1 := parseAppended(t, mustOK(t, c.run(admin, "client", "--user", "admin", "put", "note.text", `{"text":"second"}`)))
	id2, h2 := parseAppended(t, mustOK(t, c.run(admin, "client", "--user", "admin", "put", "poll.cast", `{"choice":"b"}`)))
	if h0 != 0 || h1 != 1 || h2 != 2 {
		t.Fatalf("heights %d %d %d, want 0 1 2", h0, h1, h2)
	}
	mustFail(t, c.run(admin, "client", "--user", "admin", "put", "note.text", `not json`), 2)

	for _, arg := range []string{"0", id0} {
		r = mustOK(t, c.run(nil, "client", "get", arg))
		for name, v := range map[string]string{"height": "0", "id": id0, "kind": "note.text", "author": "admin", "origin": nodeID,
			"source": "local", "payload": `{"n":[1,2],"text":"hello"}`} {
			if got := field(t, r, name); got != v {
				t.Fatalf("get %s: %s is %q, want %q\n%s", arg, name, got, v, r)
			}
		}
	}
	j := decodeJSON(t, mustOK(t, c.run(nil, "client", "--json", "get", id1)))
	if j["id"] != id1 || j["height"] != float64(1) || j["kind"] != "note.text" || j["author"] != "admin" ||
		j["origin"] != nodeID || fmt.Sprint(j["payload"]) != "map[text:second]" || j["record"] == "" || j["signature"] == "" {
		t.Fatalf("get --json: %v", j)
	}
	mustFail(t, c.run(nil, "client", "get", "99"), 1, "not found")
	mustFail(t, c.run(nil, "client", "get", "xyz"), 2, "neither a height nor")

	r = mustOK(t, c.run(nil, "client", "list"), "(3 of 3 records; next page from 3)")
	for _, w := range []string{"0        " + id0[:16] + "  note.text          admin      {\"n\":[1,2],\"text\":\"hello\"}",
		"2        " + id2[:16] + "  poll.cast          admin      {\"choice\":\"b\"}"} {
		if !strings.Contains(r.stdout, w) {
			t.Fatalf("list lacks %q:\n%s", w, r)
		}
	}
	mustOK(t, c.run(nil, "client", "list", "1", "1"), id1[:16], "(1 of 3 records; next page from 2)")
	j = decodeJSON(t, mustOK(t, c.run(nil, "client", "--json", "list", "1")))
	if recs, _ := j["records"].([]any); len(recs) != 2 || j["next"] != float64(3) || j["size"] != float64(3) ||
		recs[1].(map[string]any)["id"] != id2 {
		t.Fatalf("list --json 1: %v", j)
	}

	mustOK(t, c.run(nil, "client", "has", id2), "yes, at height 2")
	if r = mustOK(t, c.run(nil, "client", "has", strings.Repeat("ab", 32))); r.stdout != "no\n" {
		t.Fatalf("has of an unknown id:\n%s", r)
	}

	head := mustOK(t, c.run(nil, "client", "head"), "size  3")
	root, link := field(t, head, "root"), field(t, head, "link")
	r = mustOK(t, c.run(nil, "client", "checkpoint"))
	cp := strings.Split(r.stdout, "\n")
	if len(cp) < 6 || cp[0] != "pyvnode/e2e/"+nodeID || cp[1] != "3" || cp[3] != "link "+link ||
		!strings.Contains(r.stdout, "\n— pyvnode/e2e/"+nodeID+" ") {
		t.Fatalf("checkpoint of size 3 with link %s:\n%s", link, r)
	}

	// Merkle proofs, checked by the client.
	r = mustOK(t, c.run(nil, "client", "proof", "inclusion", id1), "record "+id1+" is leaf 1 of 3", "root   "+root, "proof verified")
	mustOK(t, c.run(nil, "client", "proof", "inclusion", id1, "2"), "is leaf 1 of 2", "proof verified")
	mustFail(t, c.run(nil, "client", "proof", "inclusion", id2, "2"), 1, "size must be above it")
	mustFail(t, c.run(nil, "client", "proof", "inclusion", strings.Repeat("cd", 32)), 1, "not found")
	r = mustOK(t, c.run(nil, "client", "proof", "consistency", "1", "3"), "size 3 root "+root, "proof verified")
	mustFail(t, c.run(nil, "client", "proof", "consistency", "3", "1"), 2, "OLD <= NEW")
	mustFail(t, c.run(nil, "client", "proof", "consistency", "1", "9"), 1, "need old <= new <= 3")

	// Verification is for admins; anonymous sessions are told to log in.
	mustOK(t, c.run(admin, "client", "--user", "admin", "verify"), "OK: 3 records verified", "root "+root, "link "+link)
	mustFail(t, c.run(nil, "client", "verify"), 2, "needs a login")

	// Accounts: a writer with a one-time password.
	r = mustOK(t, c.run(admin, "client", "--user", "admin", "user", "add", "--role", "writer", "bob"), "added bob (writer)", "totp         otpauth://totp/")
	m := regexp.MustCompile(`(?m)^password     (\S+)   \(one-time`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("user add shows no one-time password:\n%s", r)
	}
	bobOTP := m[1]
	const bobPW = "bob's own long password"
	bob := as(bobPW)
	mustFail(t, c.run(admin, "client", "--user", "admin", "user", "add", "bob"), 1, "user already exists")
	mustFail(t, c.run(as(bobOTP), "client", "--user", "bob", "put", "note.text", `{"by":"bob"}`), 1, "bob must change the one-time password first")
	mustOK(t, c.run(append(as(bobOTP), "PYVNODE_NEW_PASSWORD="+bobPW), "client", "--user", "bob", "passwd"), "password changed")
	idBob, hBob := parseAppended(t, mustOK(t, c.run(bob, "client", "--user", "bob", "put", "note.text", `{"by":"bob"}`)))
	r = mustOK(t, c.run(nil, "client", "get", idBob))
	if field(t, r, "author") != "bob" || field(t, r, "height") != strconv.FormatUint(hBob, 10) {
		t.Fatalf("bob's record:\n%s", r)
	}
	mustFail(t, c.run(bob, "client", "--user", "bob", "user", "add", "carol"), 1, `"user.add" needs the admin role; bob is writer`)
	mustFail(t, c.run(bob, "client", "--user", "bob", "status"), 1, `"status" needs the admin role`)
	noCarol := regexp.MustCompile(`(?m)^carol\s`)

	userRow := func(name, role, enabled string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^` + name + `\s+` + role + `\s+` + enabled + `\s+true\s+1\.0 GiB\s+\d{4}-\d\d-\d\d$`)
	}
	for _, args := range [][]string{
		{"client", "--user", "admin", "user", "list"},
		{"user", "--server", srv.addr, "--user", "admin", "list"}, // the same through 'pyvnode user'
	} {
		r = mustOK(t, c.run(admin, args...), "NAME             ROLE    ENABLED")
		if !userRow("admin", "admin", "true").MatchString(r.stdout) || !userRow("bob", "writer", "true").MatchString(r.stdout) || noCarol.MatchString(r.stdout) {
			t.Fatalf("user list:\n%s", r)
		}
	}
	mustOK(t, c.run(admin, "client", "--user", "admin", "user", "disable", "bob"), "bob disabled")
	mustFail(t, c.run(bob, "client", "--user", "bob", "put", "note.text", `{"by":"bob","n":2}`), 1, "login as bob: wrong user name, password or one-time code")
	r = mustOK(t, c.run(admin, "client", "--user", "admin", "user", "list"))
	if !userRow("bob", "writer", "false").MatchString(r.stdout) {
		t.Fatalf("bob not shown disabled:\n%s", r)
	}

	// Peers.
	const peer = "/ip4/127.0.0.1/tcp/6667/p2p/12D3KooWGRUVh2upGdvE2bMnC1xFwHUxFmaFx3bqpDWCCQBJ8TQU"
	if r = mustOK(t, c.run(admin, "client", "--user", "admin", "peer", "list")); r.stdout != "(no peers)\n" {
		t.Fatalf("peer list of a new node:\n%s", r)
	}
	if r = mustOK(t, c.run(admin, "client", "--user", "admin", "peer", "add", peer)); r.stdout != peer+"\n" {
		t.Fatalf("peer add:\n%s", r)
	}
	if r = mustOK(t, c.run(admin, "client", "--user", "admin", "peer", "list")); r.stdout != peer+"\n" {
		t.Fatalf("peer list:\n%s", r)
	}
	mustFail(t, c.run(admin, "client", "--user", "admin", "peer", "add", "not-a-multiaddr"), 1, "is not a multiaddr")
	if r = mustOK(t, c.run(admin, "client", "--user", "admin", "peer", "del", peer)); r.stdout != "(no peers)\n" {
		t.Fatalf("peer del:\n%s", r)
	}
	mustFail(t, c.run(admin, "client", "--user", "admin", "peer", "del", peer), 1, "no peer")

	// Status and rekey.
	r = mustOK(t, c.run(admin, "client", "--user", "admin", "status"), "version     "+cli.Version, "height      4", "node        "+nodeID[:16]+" (e2e)")
	if !regexp.MustCompile(`(?m)^sessions    \d+ \(accepted \d+, refused 0,`).MatchString(r.stdout) {
		t.Fatalf("status sessions:\n%s", r)
	}
	mustOK(t, c.run(nil, "client", "rekey"), "rekeyed; session ", " continues")
	mustOK(t, c.run(admin, "client", "--user", "admin", "rekey"), "rekeyed; session ")

	testFiles(t, c, admin)

	t.Run("file get of a remote directory creates no local file", func(t *testing.T) {
		sc := *c
		sc.t = t
		mustFail(t, sc.run(admin, "client", "--user", "admin", "file", "get", "docs", "docs.local"), 1, "docs is a directory")
		if _, err := os.Lstat(filepath.Join(c.dir, "docs.local")); err == nil {
			t.Fatal("a refused download of a directory left a local file")
		}
	})

	// Offline account commands refuse a running node's directory and say
	// what to do instead. (run sets no PYVNODE_SERVER: see the subtest on
	// it below.)
	mustFail(t, run(t, "user", "--data", dir, "list"), 1, "is in use by a running node", "--server")

	srv.mustStop(t)

	r = mustOK(t, run(t, "user", "--data", dir, "list"), "NAME             ROLE    ENABLED")
	if !userRow("admin", "admin", "true").MatchString(r.stdout) || !userRow("bob", "writer", "false").MatchString(r.stdout) {
		t.Fatalf("offline user list:\n%s", r)
	}
	size := 5 // three notes, bob's note, the file.publish record
	mustOK(t, run(t, "chain", "verify", "--data", dir), fmt.Sprintf("OK: %d records verified", size))
	mustOK(t, run(t, "chain", "show", "--data", dir, idBob), "author       bob", "checks       id, proof of work, originator and signature ok")

	// PYVNODE_SERVER in the environment must not send an offline
	// account command to the network.
	t.Run("user --data wins over PYVNODE_SERVER", func(t *testing.T) {
		r := runBinary(t.Context(), t.TempDir(), append(baseEnv(), "PYVNODE_SERVER="+srv.addr), "user", "--data", dir, "list")
		if r.code != 0 {
			t.Fatalf("user --data list with PYVNODE_SERVER set:\n%s", r)
		}
		if !userRow("bob", "writer", "false").MatchString(r.stdout) {
			t.Fatalf("user --data list with PYVNODE_SERVER set:\n%s", r)
		}
	})
}

// testFiles uploads, lists, downloads (whole and resumed) and publishes a
// file, and checks that bad remote paths are refused.
func testFiles(t *testing.T, c *client, admin []string) {
	t.Helper()
	data := make([]byte, 3<<20+777) // three full chunks and a short one
	rand.Read(data)
	sum := sha256Hex(data)
	if err := os.WriteFile(filepath.Join(c.dir, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	fa := func(args ...string) []string { return append([]string{"client", "--user", "admin", "file"}, args...) }

	r := mustOK(t, c.run(admin, fa("put", "big.bin")...), fmt.Sprintf("uploaded big.bin (%d bytes, ", len(data)))
	if got := field(t, r, "sha256"); got != sum {
		t.Fatalf("upload's sha256 %s, want %s", got, sum)
	}
	mustOK(t, c.run(admin, fa("mkdir", "docs")...), "created docs/")
	mustOK(t, c.run(admin, fa("put", "big.bin", "docs/copy.bin")...), "uploaded docs/copy.bin")
	r = mustOK(t, c.run(admin, fa("ls")...))
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^ +%d  \d{4}-\d\d-\d\d \d\d:\d\d  big\.bin$`, len(data))).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)  docs/$`).MatchString(r.stdout) {
		t.Fatalf("file ls:\n%s", r)
	}
	mustOK(t, c.run(admin, fa("ls", "docs")...), "docs/copy.bin")
	r = mustOK(t, c.run(admin, fa("stat", "big.bin")...), "path     big.bin", "type     file", fmt.Sprintf("size     %d", len(data)))
	if field(t, r, "sha256") != sum {
		t.Fatalf("stat's sha256, want %s:\n%s", sum, r)
	}
	j := decodeJSON(t, mustOK(t, c.run(admin, "client", "--json", "--user", "admin", "file", "stat", "big.bin")))
	if j["sha256"] != sum || j["size"] != float64(len(data)) {
		t.Fatalf("file stat --json: %v", j)
	}

	// A whole download.
	local := filepath.Join(c.dir, "down.bin")
	r = mustOK(t, c.run(admin, fa("get", "big.bin", "down.bin")...), fmt.Sprintf("downloaded big.bin to down.bin (%d bytes, ", len(data)), "sha256     "+sum+" (checked)")
	sameFile(t, local, data)
	mustFail(t, c.run(admin, fa("get", "big.bin", "down.bin")...), 1, "down.bin exists: remove it, or give --resume")
	sameFile(t, local, data)

	// An interrupted download, resumed: the first bytes stay, the rest come.
	if err := os.Truncate(local, 1<<20+4321); err != nil {
		t.Fatal(err)
	}
	mustOK(t, c.run(admin, fa("get", "--resume", "big.bin", "down.bin")...), "sha256     "+sum+" (checked)")
	sameFile(t, local, data)
	// A resumed download whose local part is wrong does not pass the check.
	bad := append([]byte(nil), data[:2<<20]...)
	bad[100] ^= 0xff
	if err := os.WriteFile(local, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	mustFail(t, c.run(admin, fa("get", "--resume", "big.bin", "down.bin")...), 1, "does not match", "node has "+sum)
	// --resume into a missing file is an ordinary download.
	mustOK(t, c.run(admin, fa("get", "--resume", "docs/copy.bin")...), "downloaded docs/copy.bin to copy.bin")
	sameFile(t, filepath.Join(c.dir, "copy.bin"), data)

	// Publishing puts the file's hash on the chain.
	r = mustOK(t, c.run(admin, fa("publish", "big.bin")...), "published big.bin (sha256 "+sum+") as record ")
	m := regexp.MustCompile(`as record ([0-9a-f]{64}) at height (\d+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("publish:\n%s", r)
	}
	j = decodeJSON(t, mustOK(t, c.run(nil, "client", "--json", "get", m[1])))
	p, _ := j["payload"].(map[string]any)
	if j["kind"] != "file.publish" || j["author"] != "admin" || fmt.Sprint(j["height"]) != m[2] || p == nil ||
		p["sha256"] != sum || p["path"] != "big.bin" || p["size"] != float64(len(data)) || p["owner"] != "admin" {
		t.Fatalf("the published record: %v", j)
	}

	// Paths that leave the user's folder are refused, and nothing local
	// is created.
	before, _ := os.ReadDir(c.dir)
	mustFail(t, c.run(admin, fa("get", "../x")...), 1, `"../x" climbs out with '..'`)
	noFile(t, filepath.Join(c.dir, "x"))
	mustFail(t, c.run(admin, fa("get", "../x", "out.bin")...), 1, "climbs out")
	noFile(t, filepath.Join(c.dir, "out.bin"))
	mustFail(t, c.run(admin, fa("get", "docs/../../x")...), 1, "climbs out")
	mustFail(t, c.run(admin, fa("put", "big.bin", "../evil.bin")...), 1, "climbs out")
	mustFail(t, c.run(admin, fa("get", "/etc/passwd")...), 1, "is absolute")
	noFile(t, filepath.Join(c.dir, "passwd"))
	mustFail(t, c.run(admin, fa("get", "nope.bin")...), 1, "no such file or directory: nope.bin")
	noFile(t, filepath.Join(c.dir, "nope.bin"))
	if after, _ := os.ReadDir(c.dir); len(after) != len(before) {
		t.Fatalf("refused downloads changed the working directory: %v -> %v", before, after)
	}
	mustFail(t, c.run(nil, "client", "file", "ls"), 2, "needs a login")
}

// TestE2ETOFU checks trust on first use through the command line: a node
// at a known address that comes back with another identity is refused
// until the user accepts it.
func TestE2ETOFU(t *testing.T) {
	needBinary(t)
	t.Parallel()
	dirA, idA := initData(t)
	dirB, idB := initData(t)
	if idA == idB {
		t.Fatal("two data directories with one identity")
	}
	a := startServe(t, dirA, 0, true)
	c := newClient(t, a.addr)

	r := mustOK(t, c.run(nil, "client", "hello"), "node      "+idA)
	if !strings.Contains(r.stderr, "first contact with "+a.addr+": node "+idA) {
		t.Fatalf("no first contact message:\n%s", r)
	}
	if r = mustOK(t, c.run(nil, "client", "hello")); r.stderr != "" {
		t.Fatalf("known node, yet:\n%s", r)
	}
	kn, err := os.ReadFile(c.known)
	if err != nil || !strings.Contains(string(kn), a.addr+" "+idA+"\n") {
		t.Fatalf("known nodes file (%v):\n%s", err, kn)
	}
	mustOK(t, c.run(nil, "client", "--expect-node", idA, "id"), "node          "+idA)
	mustFail(t, c.run(nil, "client", "--expect-node", idB, "hello"), 1, "not the expected node", "expected "+idB[:16])
	mustFail(t, c.run(nil, "client", "--expect-node", "12345", "hello"), 2, "--expect-node")

	// Another node, another identity, the same address.
	a.mustStop(t)
	port, _ := strconv.Atoi(a.addr[strings.LastIndex(a.addr, ":")+1:])
	b := startServe(t, dirB, port, true)
	if b.addr != a.addr {
		t.Fatalf("restarted on %s, want %s", b.addr, a.addr)
	}
	r = mustFail(t, c.run(nil, "client", "hello"), 1, "identity changed", "--accept-new-key", idA[:16], idB[:16])
	if r.stdout != "" {
		t.Fatalf("refused node, yet output:\n%s", r)
	}
	mustFail(t, c.run(nil, "client", "get", "0"), 1, "identity changed")
	if kn2, _ := os.ReadFile(c.known); !bytes.Equal(kn2, kn) {
		t.Fatalf("a refused identity changed the known nodes file:\n%s", kn2)
	}
	// Pinning the new node's id is an explicit choice and works without
	// touching the file.
	mustOK(t, c.run(nil, "client", "--expect-node", idB, "hello"), "node      "+idB)
	mustFail(t, c.run(nil, "client", "hello"), 1, "identity changed")

	r = mustOK(t, c.run(nil, "client", "--accept-new-key", "hello"), "node      "+idB)
	if !strings.Contains(r.stderr, "changed identity from "+idA[:16]+" to "+idB[:16]) {
		t.Fatalf("accepting the new key does not say so:\n%s", r)
	}
	if r = mustOK(t, c.run(nil, "client", "hello"), "node      "+idB); r.stderr != "" {
		t.Fatalf("after accepting:\n%s", r)
	}
	mustFail(t, c.run(nil, "client", "--expect-node", idA, "hello"), 1, "not the expected node")
	b.mustStop(t)
}

// TestE2ETOTP runs a node without --dev: logins need the TOTP code.
func TestE2ETOTP(t *testing.T) {
	needBinary(t)
	t.Parallel()
	dir, _ := initData(t)
	srv := startServe(t, dir, 0, false)
	otpw, uri := adminPassword(t, dir)
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	code := func(at time.Time) string {
		c, err := totp.GenerateCode(key.Secret(), at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := newClient(t, srv.addr)
	const pw = "admin's totp-era password"
	chg := append(as(otpw), "PYVNODE_NEW_PASSWORD="+pw)

	if r := mustOK(t, c.run(nil, "client", "hello")); strings.Contains(r.stdout, "development") {
		t.Fatalf("a node without --dev says it is in development mode:\n%s", r)
	}
	mustFail(t, c.run(chg, "client", "--user", "admin", "passwd"), 1, "one-time code", "--totp")
	mustFail(t, c.run(as(otpw), "client", "--user", "admin", "put", "note.text", `{"n":1}`), 1, "one-time code")

	now := time.Now()
	first := code(now)
	mustOK(t, c.run(chg, "client", "--user", "admin", "--totp", first, "passwd"), "password changed")
	// The next time step's code is within the accepted skew and has not
	// been used; the first code, used once, is refused.
	id, _ := parseAppended(t, mustOK(t, c.run(as(pw), "client", "--user", "admin", "--totp", code(now.Add(30*time.Second)), "put", "note.text", `{"n":1}`)))
	mustFail(t, c.run(as(pw), "client", "--user", "admin", "--totp", first, "head"), 1, "login as admin: wrong user name, password or one-time code")
	mustOK(t, c.run(nil, "client", "has", id), "yes, at height 0")
	srv.mustStop(t)
}

// TestE2EShutdown stops a node with SIGTERM while puts are in flight: on
// one connection from the Go client (200 pipelined) and from four CLI
// processes. The node must exit 0 and keep every put it acknowledged.
func TestE2EShutdown(t *testing.T) {
	needBinary(t)
	t.Parallel()
	dir, _ := initData(t)
	srv := startServe(t, dir, 0, true)
	otpw, _ := adminPassword(t, dir)
	c := newClient(t, srv.addr)
	const pw = "shutdown test password"
	ctx := t.Context()

	gc, err := protocol.Dial(ctx, srv.addr, protocol.Options{KnownNodes: c.known})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	var lr protocol.LoginResult
	if err := gc.Call(ctx, "login", map[string]string{"user": "admin", "password": otpw}, &lr); err != nil || !lr.MustChange {
		t.Fatalf("login: %v %+v", err, lr)
	}
	if err := gc.Call(ctx, "passwd", map[string]string{"old": otpw, "new": pw}, nil); err != nil {
		t.Fatalf("passwd: %v", err)
	}
	var lim protocol.Limits
	if err := gc.Call(ctx, "limits", map[string]any{"set": protocol.Limits{ConnRate: 1000, ConnBurst: 1000}}, &lim); err != nil || lim.ConnRate != 1000 {
		t.Fatalf("limits: %v %+v", err, lim)
	}

	// Four CLI writers, each putting until the node is gone.
	type acked struct {
		id     string
		height uint64
	}
	var (
		mu        sync.Mutex
		ackedCLI  []acked
		cliFails  []cmdResult
		failedPut = map[[2]int]bool{} // worker and index of CLI puts that failed
		cliAcks   atomic.Int64
		wg        sync.WaitGroup
	)
	env := c.env(as(pw)...)
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				r := runBinary(ctx, c.dir, env, "client", "--user", "admin", "--json", "put", "note.text", fmt.Sprintf(`{"worker":%d,"i":%d}`, w, i))
				var pr struct {
					ID     string `json:"id"`
					Height uint64 `json:"height"`
				}
				mu.Lock()
				if r.code == 0 && json.Unmarshal([]byte(r.stdout), &pr) == nil && len(pr.ID) == 64 {
					ackedCLI = append(ackedCLI, acked{pr.ID, pr.Height})
					cliAcks.Add(1)
				} else {
					cliFails = append(cliFails, r)
					failedPut[[2]int{w, i}] = true
				}
				mu.Unlock()
				if r.code != 0 {
					return
				}
			}
		}()
	}
	waitUntil(t, 20*time.Second, func() bool { return cliAcks.Load() >= 4 }, "four CLI puts acknowledged")

	// 200 puts pipelined on one connection; SIGTERM at the first answer.
	const n = 200
	pend := make([]*protocol.Pending, 0, n)
	for i := range n {
		p, err := gc.Send("put", map[string]any{"kind": "note.text", "payload": mustPayload(t, i)})
		if err != nil {
			t.Fatalf("send put %d: %v", i, err)
		}
		pend = append(pend, p)
	}
	results := make([]protocol.PutResult, n)
	errs := make([]error, n)
	var goAcks atomic.Int64
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		for i, p := range pend {
			if errs[i] = p.Wait(wctx, &results[i]); errs[i] == nil {
				goAcks.Add(1)
			}
		}
	}()
	waitUntil(t, 20*time.Second, func() bool { return goAcks.Load() >= 1 }, "a pipelined put acknowledged")
	code := srv.stop(t)
	<-waited
	wg.Wait()
	if code != 0 {
		t.Fatalf("serve exited %d after SIGTERM with puts in flight:\n%s", code, srv.stderr.String())
	}
	if !strings.Contains(srv.stderr.String(), "msg=stopped") {
		t.Fatalf("serve did not log its stop:\n%s", srv.stderr.String())
	}

	// What was acknowledged, and how the rest failed.
	var all []acked
	goOK := 0
	goErrs := map[string]int{}
	for i := range n {
		if errs[i] == nil {
			goOK++
			all = append(all, acked{results[i].ID.String(), results[i].Height})
			continue
		}
		goErrs[errs[i].Error()]++
		var pe *protocol.Error
		if !errors.Is(errs[i], protocol.ErrClosed) && !(errors.As(errs[i], &pe) && pe.Code == protocol.ErrUnavailable.Code) {
			t.Errorf("pipelined put %d failed with neither a closed session nor 'unavailable': %v", i, errs[i])
		}
	}
	mu.Lock()
	all = append(all, ackedCLI...)
	var why []string
	for _, r := range cliFails {
		first, _, _ := strings.Cut(r.stderr, "\n")
		why = append(why, first)
		if !strings.Contains(r.stderr, "connect") && !strings.Contains(r.stderr, "closed") && !strings.Contains(r.stderr, "EOF") &&
			!strings.Contains(r.stderr, "connection reset") && !strings.Contains(r.stderr, "broken pipe") && !strings.Contains(r.stderr, "unavailable") {
			t.Errorf("a CLI put failed in an unexpected way:\n%s", r)
		}
	}
	t.Logf("acknowledged: %d of %d pipelined puts (the others failed with %v), %d CLI puts; %d CLI puts failed as the node stopped: %q",
		goOK, n, goErrs, len(ackedCLI), len(cliFails), why)
	mu.Unlock()

	// Every acknowledged put is in the chain, at its height.
	r := mustOK(t, run(t, "chain", "verify", "--data", dir), "OK: ")
	records, _ := strconv.Atoi(strings.Fields(r.stdout)[1])
	if records < len(all) {
		t.Fatalf("chain holds %d records, %d puts were acknowledged", records, len(all))
	}
	r = mustOK(t, run(t, "chain", "export", "--data", dir))
	byHeight := map[uint64]string{}
	pipelined := 0              // records of the pipelined puts in the chain
	var failedButThere []string // CLI puts reported failed yet in the chain
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var x struct {
			Height  *uint64        `json:"height"`
			ID      string         `json:"id"`
			Payload map[string]any `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &x); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		if x.Height != nil && x.ID != "" {
			byHeight[*x.Height] = x.ID
			if _, ok := x.Payload["pipelined"]; ok {
				pipelined++
			}
			w, okw := x.Payload["worker"].(float64)
			i, oki := x.Payload["i"].(float64)
			if okw && oki && failedPut[[2]int{int(w), int(i)}] {
				failedButThere = append(failedButThere, fmt.Sprintf("worker %d put %d", int(w), int(i)))
			}
		}
	}
	if len(byHeight) != records {
		t.Fatalf("export has %d records, verify counted %d", len(byHeight), records)
	}
	for _, a := range all {
		if byHeight[a.height] != a.id {
			t.Errorf("acknowledged put %s at height %d: the chain has %q there", a.id, a.height, byHeight[a.height])
		}
	}
	if pipelined < goOK {
		t.Errorf("the chain holds %d pipelined puts, the client saw %d acknowledged", pipelined, goOK)
	}
	// OPERATIONS.md promises that the requests running at SIGTERM finish
	// and are answered: every committed put reaches its client.
	t.Run("every committed put is acknowledged", func(t *testing.T) {
		if pipelined > goOK || len(failedButThere) > 0 {
			t.Fatalf("the chain holds %d pipelined puts, the client saw %d acknowledged (%v); "+
				"CLI puts reported as failed yet committed: %v", pipelined, goOK, goErrs, failedButThere)
		}
	})
	for _, a := range all {
		r := run(t, "chain", "show", "--data", dir, a.id)
		if r.code != 0 || field(t, r, "id") != a.id || field(t, r, "height") != strconv.FormatUint(a.height, 10) {
			t.Fatalf("chain show of acknowledged put %s at height %d:\n%s", a.id, a.height, r)
		}
	}
}

func mustPayload(t *testing.T, i int) cbor.RawMessage {
	t.Helper()
	p, err := ledger.PayloadFromJSON([]byte(fmt.Sprintf(`{"pipelined":%d}`, i)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func waitUntil(t *testing.T, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
