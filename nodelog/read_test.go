package nodelog

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want Line // Raw is filled in
	}{
		{"slog", `{"time":"2026-01-02T03:04:05.5Z","level":"WARN","msg":"peer slow","peer":"12D3","n":3,"ok":true,"g":{"a":"x y","h":{"b":null}}}`,
			Line{OK: true, Time: time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC), Level: slog.LevelWarn, Msg: "peer slow",
				Attrs: []Field{{"peer", "12D3"}, {"n", "3"}, {"ok", "true"}, {"g.a", "x y"}, {"g.h.b", "null"}}}},
		{"level offset", `{"level":"INFO+2","msg":"m"}`, Line{OK: true, Level: slog.LevelInfo + 2, Msg: "m"}},
		{"array", `{"level":"ERROR","msg":"m","l":[1, 2]}`, Line{OK: true, Level: slog.LevelError, Msg: "m", Attrs: []Field{{"l", "[1, 2]"}}}},
		{"not json", `panic: runtime error`, Line{}},
		{"no level", `{"msg":"m"}`, Line{}},
		{"bad level", `{"level":"LOUD","msg":"m"}`, Line{}},
		{"truncated", `{"level":"INFO","msg":"m"`, Line{}},
		{"trailing", `{"level":"INFO","msg":"m"} {}`, Line{}},
		{"empty", ``, Line{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseLine([]byte(tc.raw))
			tc.want.Raw = []byte(tc.raw)
			if !tc.want.OK {
				if got.OK || !bytes.Equal(got.Raw, tc.want.Raw) {
					t.Fatalf("ParseLine = %+v, want only Raw", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseLine =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// TestParseLineReadsSlogJSON checks ParseLine against what slog's JSON
// handler, the one Open uses, writes.
func TestParseLineReadsSlogJSON(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log.With("component", "p2p").WithGroup("sync").Debug("quote \" and\nnewline", "err", errors.New("boom"), "d", time.Second)
	got := ParseLine(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	want := []Field{{"component", "p2p"}, {"sync.err", "boom"}, {"sync.d", "1000000000"}}
	if !got.OK || got.Level != slog.LevelDebug || got.Msg != "quote \" and\nnewline" || got.Time.IsZero() || !reflect.DeepEqual(got.Attrs, want) {
		t.Fatalf("ParseLine(%s) = %+v", buf.Bytes(), got)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func jl(level, msg string) string { return `{"level":"` + level + `","msg":"` + msg + `"}` + "\n" }

func raws(ls []Line) string {
	var s []string
	for _, l := range ls {
		s = append(s, string(l.Raw))
	}
	return strings.Join(s, "|")
}

func TestFilesAndTail(t *testing.T) {
	data := t.TempDir()
	if _, err := Files(data, StreamNode); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Files without a log directory: err = %v, want ErrNotExist", err)
	}
	dir := LogDir(data)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if ls, end, err := Tail(data, StreamReplication, 10, nil); err != nil || len(ls) != 0 || end != 0 {
		t.Fatalf("Tail of an empty directory = %v, %d, %v; want nothing", ls, end, err)
	}
	writeFile(t, filepath.Join(dir, "node-2026-01-01T10-00-00.000.log"), jl("INFO", "a")+jl("DEBUG", "b"))
	writeFile(t, filepath.Join(dir, "node-2026-01-02T09-00-00.000.log"), jl("ERROR", "c")+"garbage\n")
	writeFile(t, filepath.Join(dir, "node.log"), jl("WARN", "d")+jl("INFO", "e")+`{"level":"INFO","msg":"unfinished`)
	writeFile(t, filepath.Join(dir, "replication-2026-01-01T10-00-00.000.log"), jl("INFO", "r"))
	writeFile(t, filepath.Join(dir, "node-notatime.log"), jl("INFO", "x"))
	writeFile(t, filepath.Join(dir, "nodes.log"), jl("INFO", "x"))

	files, err := Files(data, StreamNode)
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	wantFiles := []string{
		filepath.Join(dir, "node-2026-01-01T10-00-00.000.log"),
		filepath.Join(dir, "node-2026-01-02T09-00-00.000.log"),
		filepath.Join(dir, "node.log"),
	}
	if !reflect.DeepEqual(files, wantFiles) {
		t.Fatalf("Files = %v, want %v", files, wantFiles)
	}

	atLeast := func(min slog.Level) func(Line) bool {
		return func(l Line) bool { return !l.OK || l.Level >= min }
	}
	trim := func(s string) string { return strings.TrimSuffix(s, "\n") }
	for _, tc := range []struct {
		name   string
		stream string
		n      int
		keep   func(Line) bool
		want   string
	}{
		{"current only", StreamNode, 2, nil, trim(jl("WARN", "d")) + "|" + trim(jl("INFO", "e"))},
		{"into a backup", StreamNode, 3, nil, "garbage|" + trim(jl("WARN", "d")) + "|" + trim(jl("INFO", "e"))},
		{"all", StreamNode, 0, nil, strings.Join([]string{trim(jl("INFO", "a")), trim(jl("DEBUG", "b")), trim(jl("ERROR", "c")), "garbage", trim(jl("WARN", "d")), trim(jl("INFO", "e"))}, "|")},
		{"more than there is", StreamNode, 100, atLeast(slog.LevelInfo), strings.Join([]string{trim(jl("INFO", "a")), trim(jl("ERROR", "c")), "garbage", trim(jl("WARN", "d")), trim(jl("INFO", "e"))}, "|")},
		{"level", StreamNode, 2, atLeast(slog.LevelWarn), "garbage|" + trim(jl("WARN", "d"))},
		{"replication backup only", StreamReplication, 5, nil, trim(jl("INFO", "r"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls, _, err := Tail(data, tc.stream, tc.n, tc.keep)
			if err != nil {
				t.Fatalf("Tail: %v", err)
			}
			if got := raws(ls); got != tc.want {
				t.Fatalf("Tail =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	_, end, _ := Tail(data, StreamNode, 1, nil)
	if want := int64(len(jl("WARN", "d") + jl("INFO", "e"))); end != want {
		t.Fatalf("Tail end = %d, want %d (before the unfinished line)", end, want)
	}
}

// follow runs Follow in the background and returns its lines.
func follow(t *testing.T, path string, offset int64) (<-chan Line, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan Line, 100)
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, path, offset, func(l Line) error { ch <- l; return nil })
	}()
	return ch, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Follow: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Follow did not return after cancel")
		}
	}
}

func expect(t *testing.T, ch <-chan Line, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case l := <-ch:
			if string(l.Raw) != w {
				t.Fatalf("Follow gave %q, want %q", l.Raw, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Follow gave nothing, want %q", w)
		}
	}
	select {
	case l := <-ch:
		t.Fatalf("Follow gave %q, want nothing more", l.Raw)
	case <-time.After(3 * PollInterval):
	}
}

func TestFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.log")
	writeFile(t, path, "old\n")
	ch, stop := follow(t, path, 4)
	defer stop()

	appendFile(t, path, "one\n")
	expect(t, ch, "one")

	appendFile(t, path, "two, half")
	expect(t, ch)
	appendFile(t, path, " and the rest\nthree\n")
	expect(t, ch, "two, half and the rest", "three")

	// Rotation as lumberjack does it: last lines, rename, new file.
	appendFile(t, path, "last of the old\nunfinished")
	if err := os.Rename(path, filepath.Join(dir, "node-2026-01-01T00-00-00.000.log")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "first of the new\n")
	expect(t, ch, "last of the old", "unfinished", "first of the new")

	// Truncation: start again from the beginning.
	writeFile(t, path, "")
	time.Sleep(3 * PollInterval)
	appendFile(t, path, "after truncation\n")
	expect(t, ch, "after truncation")
}

func TestFollowWaitsForFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replication.log")
	ch, stop := follow(t, path, 0)
	defer stop()
	expect(t, ch)
	appendFile(t, path, jl("INFO", "first"))
	expect(t, ch, strings.TrimSuffix(jl("INFO", "first"), "\n"))
}

func TestFollowStopsOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.log")
	writeFile(t, path, "a\nb\n")
	boom := errors.New("boom")
	n := 0
	err := Follow(context.Background(), path, 0, func(Line) error { n++; return boom })
	if !errors.Is(err, boom) || n != 1 {
		t.Fatalf("Follow = %v after %d lines, want boom after 1", err, n)
	}
}
