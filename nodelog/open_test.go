package nodelog

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of two loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%s: line %q is not JSON: %v", path, line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestOpenWritesFilesStderrAndHub(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data") // does not exist yet
	var stderr syncBuffer
	logs, err := Open(data, 100, Options{Stderr: &stderr, Format: "json", Level: slog.LevelInfo})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	logs.Node.With("component", "node").Info("node started", "peers", 2)
	logs.Node.Debug("below the level")
	logs.Replication.WithGroup("sync").Warn("peer slow", "peer", "12D3")
	if err := logs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	node := readJSONLines(t, LogPath(data, StreamNode))
	if len(node) != 1 || node[0]["msg"] != "node started" || node[0]["level"] != "INFO" ||
		node[0]["component"] != "node" || node[0]["peers"] != 2.0 || node[0]["time"] == nil {
		t.Fatalf("node.log = %v, want the one node line", node)
	}
	repl := readJSONLines(t, LogPath(data, StreamReplication))
	if len(repl) != 1 || repl[0]["msg"] != "peer slow" || repl[0]["level"] != "WARN" ||
		repl[0]["sync"].(map[string]any)["peer"] != "12D3" {
		t.Fatalf("replication.log = %v, want the one replication line", repl)
	}

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("stderr line %q is not JSON: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 || lines[0]["msg"] != "node started" || lines[1]["msg"] != "peer slow" {
		t.Fatalf("stderr = %q, want both lines", stderr.String())
	}

	es := logs.Hub.Recent("", slog.LevelDebug, 0)
	if len(es) != 2 || es[0].Stream != StreamNode || es[0].Msg != "node started" ||
		es[1].Stream != StreamReplication || es[1].Attrs["sync.peer"] != "12D3" {
		t.Fatalf("hub = %+v, want both entries", es)
	}

	for path, want := range map[string]os.FileMode{
		data: 0o700, LogDir(data): 0o700,
		LogPath(data, StreamNode): 0o600, LogPath(data, StreamReplication): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
}

func TestOpenTextStderr(t *testing.T) {
	var stderr syncBuffer
	logs, err := Open(t.TempDir(), 10, Options{Stderr: &stderr, NoFiles: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer logs.Close()
	logs.Node.Info("hello", "k", "v")
	if got := stderr.String(); !strings.Contains(got, "level=INFO msg=hello k=v") {
		t.Fatalf("stderr = %q, want slog text", got)
	}
}

func TestOpenNoFiles(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	logs, err := Open(data, 10, Options{Stderr: io.Discard, NoFiles: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	logs.Node.Info("m")
	logs.Replication.Info("m")
	if err := logs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("NoFiles created %s (stat: %v)", data, err)
	}
	if n := len(logs.Hub.Recent("", slog.LevelDebug, 0)); n != 2 {
		t.Fatalf("hub has %d entries, want 2", n)
	}
}

func TestOpenBadFormat(t *testing.T) {
	if _, err := Open(t.TempDir(), 10, Options{Format: "xml"}); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Fatalf("Open with format xml: err = %v, want one naming it", err)
	}
}

// TestRotationBounded writes over 5 MB to a log rotated at 1 MB with 2
// backups: the files stay within 3 MB, and Tail reads back across them.
func TestRotationBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes megabytes")
	}
	data := t.TempDir()
	logs, err := Open(data, 10, Options{Stderr: io.Discard, MaxSizeMB: 1, MaxBackups: 2})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	pad := strings.Repeat("x", 1000)
	const n = 5500
	for i := range n {
		logs.Node.Info("line", "i", i, "pad", pad)
	}
	if err := logs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// lumberjack deletes old backups in the background: wait for it.
	var files []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if files, err = Files(data, StreamNode); err != nil {
			t.Fatalf("Files: %v", err)
		}
		if len(files) <= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(files) != 3 {
		t.Fatalf("Files = %v, want 2 backups and the current file", files)
	}
	if files[2] != LogPath(data, StreamNode) {
		t.Fatalf("Files = %v, want the current file last", files)
	}
	var total int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if fi.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, over 1 MB", f, fi.Size())
		}
		total += fi.Size()
	}
	if total > 3<<20 {
		t.Fatalf("logs take %d bytes, over 3 MB", total)
	}

	// Tail reads the last lines in order across all three files.
	lines, end, err := Tail(data, StreamNode, 0, nil)
	if err != nil {
		t.Fatalf("Tail: %v", err)
	}
	fi, _ := os.Stat(LogPath(data, StreamNode))
	if end != fi.Size() {
		t.Fatalf("Tail end = %d, want the current file's size %d", end, fi.Size())
	}
	if len(lines) < 2000 {
		t.Fatalf("Tail read %d lines, want all of 3 files (over 2000)", len(lines))
	}
	first := n - len(lines)
	for k, l := range lines {
		if !l.OK || l.Msg != "line" || l.Attrs[0] != (Field{"i", strconv.Itoa(first + k)}) {
			t.Fatalf("line %d = %+v, want i=%d", k, l, first+k)
		}
	}
	last, _, err := Tail(data, StreamNode, 1500, nil) // more than the current file holds
	if err != nil {
		t.Fatalf("Tail: %v", err)
	}
	if len(last) != 1500 || last[0].Attrs[0].Value != strconv.Itoa(n-1500) || last[1499].Attrs[0].Value != strconv.Itoa(n-1) {
		t.Fatalf("Tail 1500 = %d lines from %v to %v", len(last), last[0].Attrs[0], last[len(last)-1].Attrs[0])
	}
}
