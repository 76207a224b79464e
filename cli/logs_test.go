package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/nodelog"
)

// writeLogs fills a data directory's logs the way serve does.
func writeLogs(t *testing.T, dir string, write func(l *nodelog.Logs)) {
	t.Helper()
	logs, err := nodelog.Open(dir, 10, nodelog.Options{Stderr: io.Discard, Level: slog.LevelDebug})
	if err != nil {
		t.Fatalf("nodelog.Open: %v", err)
	}
	write(logs)
	if err := logs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

// msgLines returns the messages of text output, one per line: the word
// after the level, or the whole line when it has none.
func msgLines(out string) []string {
	var msgs []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 3 && slices.Contains([]string{"DEBUG", "INFO", "WARN", "ERROR"}, f[1]) {
			msgs = append(msgs, f[2])
		} else {
			msgs = append(msgs, line)
		}
	}
	return msgs
}

func TestLogsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeLogs(t, dir, func(l *nodelog.Logs) {
		l.Node.Debug("d1")
		l.Node.With("component", "node").Info("i1", "k", "v")
		l.Node.WithGroup("sync").Warn("w1", "peer", "12D3", "why", "too slow", "empty", "")
		l.Replication.Info("r1")
		l.Node.Error("e1", "err", "boom")
	})
	appendLine(t, nodelog.LogPath(dir, nodelog.StreamNode), "garbage, not JSON")
	// An older, rotated file, named as lumberjack names them.
	backup := filepath.Join(nodelog.LogDir(dir), "node-2020-01-01T00-00-00.000.log")
	if err := os.WriteFile(backup, []byte(`{"time":"2020-01-01T00:00:00Z","level":"INFO","msg":"old1"}`+"\n"+
		`{"time":"2020-01-01T00:00:01Z","level":"INFO","msg":"old2"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"default", nil, []string{"old1", "old2", "d1", "i1", "w1", "e1", "garbage, not JSON"}},
		{"tail", []string{"-n", "2"}, []string{"e1", "garbage, not JSON"}},
		{"into the backup", []string{"-n", "6"}, []string{"old2", "d1", "i1", "w1", "e1", "garbage, not JSON"}},
		{"none", []string{"-n", "0"}, nil},
		{"level", []string{"--level", "warn"}, []string{"w1", "e1", "garbage, not JSON"}},
		{"level and tail", []string{"--level", "INFO", "-n", "4"}, []string{"i1", "w1", "e1", "garbage, not JSON"}},
		{"replication", []string{"--replication"}, []string{"r1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRun(t, append([]string{"logs", "--data", dir}, tc.args...)...)
			if got := msgLines(r.stdout); !slices.Equal(got, tc.want) {
				t.Fatalf("messages %q, want %q\n%s", got, tc.want, r)
			}
		})
	}

	r := mustRun(t, "logs", "--data", dir, "-n", "4")
	lines := strings.Split(r.stdout, "\n")
	for _, want := range []struct {
		line int
		s    string
	}{
		{0, " INFO  i1 component=node k=v"},
		{1, ` WARN  w1 sync.peer=12D3 sync.why="too slow" sync.empty=""`},
		{2, " ERROR e1 err=boom"},
		{3, "garbage, not JSON"},
	} {
		if !strings.Contains(lines[want.line], want.s) {
			t.Errorf("line %d is %q, want it to contain %q", want.line, lines[want.line], want.s)
		}
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", strings.Fields(lines[0])[0]); err != nil {
		t.Errorf("line %q does not start with its time: %v", lines[0], err)
	}

	// --json prints the file's lines as they are.
	file, err := os.ReadFile(nodelog.LogPath(dir, nodelog.StreamNode))
	if err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, "logs", "--data", dir, "--json", "-n", "5")
	if r.stdout != string(file) {
		t.Fatalf("--json printed\n%s\nwant the file\n%s", r.stdout, file)
	}
	r = mustRun(t, "logs", "--data", dir, "--json", "-n", "1", "--level", "error", "--replication")
	if r.stdout != "" {
		t.Fatalf("--replication --level error printed %q, want nothing", r.stdout)
	}
}

func TestLogsErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	wantExit(t, ExitError, []string{"logs", "--data", dir}, "no logs in "+filepath.Join(dir, "logs")+": has this node run with log files on?")
	wantExit(t, ExitUsage, []string{"logs", "--data", dir, "--level", "loud"}, `--level "loud"`)
	wantExit(t, ExitUsage, []string{"logs", "--data", dir, "-n", "-1"}, "--lines -1")
	wantExit(t, ExitUsage, []string{"logs", "--data", dir, "extra"}, "takes 0 argument")
}

// TestLogsEmptyStream: a log with no lines yet (the replication log before
// the node first talks to a peer) is said to be empty, not silently so.
func TestLogsEmptyStream(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeLogs(t, dir, func(l *nodelog.Logs) { l.Node.Info("only the node log") })
	r := run(t, "logs", "--data", dir, "--replication")
	if r.code != ExitOK || r.stdout != "" || !strings.Contains(r.stderr, "no replication log lines yet") {
		t.Fatalf("logs --replication on an empty log:\n%s", r)
	}
	if r := run(t, "logs", "--data", dir); !strings.Contains(r.stdout, "only the node log") || r.stderr != "" {
		t.Fatalf("logs:\n%s", r)
	}
}

func TestLogsFollow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeLogs(t, dir, func(l *nodelog.Logs) {
		l.Node.Info("before1")
		l.Node.Info("before2")
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"pyvnode", "logs", "--data", dir, "--follow", "-n", "1", "--level", "info"}, Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader("")})
	}()
	waitFor(t, &out, "before2", 10*time.Second)
	writeLogs(t, dir, func(l *nodelog.Logs) {
		l.Node.Debug("hidden by --level")
		l.Node.Info("appended", "n", 1)
	})
	waitFor(t, &out, "appended n=1", 10*time.Second)

	// A rotation: the file moves aside and a new one starts.
	path := nodelog.LogPath(dir, nodelog.StreamNode)
	if err := os.Rename(path, filepath.Join(nodelog.LogDir(dir), "node-2026-01-01T00-00-00.000.log")); err != nil {
		t.Fatal(err)
	}
	writeLogs(t, dir, func(l *nodelog.Logs) { l.Node.Info("after rotation") })
	waitFor(t, &out, "after rotation", 10*time.Second)

	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("logs --follow after cancellation: exit %d\n%s", code, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("logs --follow did not stop within 5s of cancellation")
	}
	if got := msgLines(out.String()); !slices.Equal(got, []string{"before2", "appended", "after"}) {
		t.Fatalf("followed %q:\n%s", got, out.String())
	}
}

// serveArgs are the arguments of a serve on free ports with HTTP off.
func serveArgs(dir string, more ...string) []string {
	args := []string{"serve", "--listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--data", dir}
	for _, f := range serveCommand().Flags {
		if slices.Contains(f.Names(), "http") {
			args = append(args, "--http", "")
		}
	}
	return append(args, more...)
}

// serveUntilStarted runs serve until it logs "node started", stops it,
// and returns what it printed.
func serveUntilStarted(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append([]string{"pyvnode"}, args...), Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader("")})
	}()
	waitFor(t, &errb, "node started", 10*time.Second)
	cancel()
	select {
	case code := <-done:
		r := result{code: code, stdout: out.String(), stderr: errb.String(), args: args}
		if code != ExitOK {
			t.Fatalf("serve after cancellation:\n%s", r)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s of cancellation")
	}
	return result{}
}

// TestServeWritesLogFiles runs serve until it has started, stops it, and
// reads its log with 'pyvnode logs'.
func TestServeWritesLogFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh", "data")
	serveUntilStarted(t, serveArgs(dir)...)

	r := mustRun(t, "logs", "--data", dir)
	for _, s := range []string{"initialised new data directory", "node started", "stopped"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("logs lacks %q:\n%s", s, r)
		}
	}
	r = mustRun(t, "logs", "--data", dir, "--json", "-n", "1000")
	started := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if m["msg"] == "node started" {
			started++
			if m["level"] != "INFO" || m["time"] == nil || m["node_id"] != loadID(t, filepath.Join(dir, "node.key")) {
				t.Errorf("node started line %v", m)
			}
		}
	}
	if started != 1 {
		t.Errorf("%d node started lines, want 1:\n%s", started, r.stdout)
	}
	mustRun(t, "logs", "--data", dir, "--replication") // nothing replicated yet: no error
	if m := fileMode(t, nodelog.LogDir(dir)); m != 0o700 {
		t.Errorf("logs directory mode %04o, want 0700", m)
	}
	if m := fileMode(t, nodelog.LogPath(dir, nodelog.StreamNode)); m != 0o600 {
		t.Errorf("node.log mode %04o, want 0600", m)
	}

	// A restart appends to the same file.
	serveUntilStarted(t, serveArgs(dir)...)
	r = mustRun(t, "logs", "--data", dir, "-n", "1000")
	if n := strings.Count(r.stdout, "node started"); n != 2 {
		t.Errorf("%d node started lines after a restart, want 2:\n%s", n, r.stdout)
	}
}

func TestServeLogFilesOff(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nofiles")
	serveUntilStarted(t, serveArgs(dir, "--log-files=false")...)
	notExist(t, nodelog.LogDir(dir))
	wantExit(t, ExitError, []string{"logs", "--data", dir}, "has this node run with log files on?")
}

// TestServeLogLevelAppliesToFiles checks that --log-level warn keeps the
// info lines out of the file as well as off stderr.
func TestServeLogLevelAppliesToFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "warn")
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if r := runIn(ctx, nil, append([]string{"--log-level", "warn"}, serveArgs(dir)...)...); r.code != ExitOK || r.stderr != "" {
		t.Fatalf("serve --log-level warn:\n%s", r)
	}
	if _, err := os.Stat(node.GenesisPath(dir)); err != nil {
		t.Fatalf("serve did not start: %v", err)
	}
	if r := mustRun(t, "logs", "--data", dir, "--level", "debug"); r.stdout != "" {
		t.Fatalf("--log-level warn still wrote lines below warn to the file:\n%s", r)
	}
}
