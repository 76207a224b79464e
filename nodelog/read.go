package nodelog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Line is one line of a log file.
type Line struct {
	Raw []byte // as in the file, without the newline
	// OK reports whether Raw is a JSON log line; when false, only Raw is set.
	OK    bool
	Time  time.Time
	Level slog.Level
	Msg   string
	Attrs []Field // in file order; nested objects (slog groups) flattened as "group.key"
}

// Field is one attribute of a Line. Value is a string's text, or the JSON
// text of any other value.
type Field struct{ Key, Value string }

// ParseLine reads a line written by Open's JSON handler ({"time":…,
// "level":…,"msg":…, attributes…}). A line that is not such an object
// comes back with OK false.
func ParseLine(raw []byte) Line {
	l := Line{Raw: raw}
	var fields []Field
	if err := flattenJSON("", raw, &fields); err != nil {
		return l
	}
	var haveLevel bool
	for _, f := range fields {
		switch f.Key {
		case slog.TimeKey:
			l.Time, _ = time.Parse(time.RFC3339Nano, f.Value)
		case slog.LevelKey:
			haveLevel = l.Level.UnmarshalText([]byte(f.Value)) == nil
		case slog.MessageKey:
			l.Msg = f.Value
		default:
			l.Attrs = append(l.Attrs, f)
		}
	}
	l.OK = haveLevel
	return l
}

// flattenJSON appends the leaves of the JSON object raw to out, keeping
// their order, nested objects' keys under "key.".
func flattenJSON(prefix string, raw []byte, out *[]Field) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		switch {
		case len(v) > 0 && v[0] == '{':
			if err := flattenJSON(prefix+key+".", v, out); err != nil {
				return err
			}
		case len(v) > 0 && v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			*out = append(*out, Field{prefix + key, s})
		default:
			*out = append(*out, Field{prefix + key, string(v)})
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// Files lists a stream's log files, oldest first: the backups rotation
// left (named stream-TIME.log, TIME in UTC so that names sort by age),
// then the current file. Files that do not exist are left out; the error
// wraps fs.ErrNotExist when the log directory does not.
func Files(dataDir, stream string) ([]string, error) {
	ents, err := os.ReadDir(LogDir(dataDir))
	if err != nil {
		return nil, err
	}
	var backups []string
	current := false
	for _, e := range ents {
		name := e.Name()
		if name == stream+".log" {
			current = true
		} else if isBackup(stream, name) {
			backups = append(backups, filepath.Join(LogDir(dataDir), name))
		}
	}
	slices.Sort(backups)
	if current {
		backups = append(backups, LogPath(dataDir, stream))
	}
	return backups, nil
}

// backupTime is the layout of the time lumberjack puts in a backup's name.
const backupTime = "2006-01-02T15-04-05.000"

func isBackup(stream, name string) bool {
	ts, ok := strings.CutPrefix(name, stream+"-")
	if !ok {
		return false
	}
	ts, ok = strings.CutSuffix(ts, ".log")
	if !ok {
		return false
	}
	_, err := time.Parse(backupTime, ts)
	return err == nil
}

// Tail returns the last n lines (all when n <= 0) of a stream's log for
// which keep (nil keeps all) is true, oldest first, reading back through
// the backups as far as it takes. end is where Follow should start in the
// current file to see what comes next without a gap or a repeat.
func Tail(dataDir, stream string, n int, keep func(Line) bool) (lines []Line, end int64, err error) {
	files, err := Files(dataDir, stream)
	if err != nil {
		return nil, 0, err
	}
	current := LogPath(dataDir, stream)
	for i := len(files) - 1; i >= 0 && (n <= 0 || len(lines) < n); i-- {
		want := 0
		if n > 0 {
			want = n - len(lines)
		}
		got, size, err := tailFile(files[i], want, keep)
		if errors.Is(err, fs.ErrNotExist) {
			continue // rotated away or deleted while we read
		}
		if err != nil {
			return nil, 0, err
		}
		if files[i] == current {
			end = size
		}
		lines = append(got, lines...)
	}
	return lines, end, nil
}

// tailFile returns the last n (all when n <= 0) kept lines of the file and
// the offset just after its last complete line.
func tailFile(path string, n int, keep func(Line) bool) ([]Line, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var (
		lines []Line
		off   int64
	)
	for {
		b, err := r.ReadBytes('\n')
		if err == io.EOF {
			break // an unfinished last line is left for Follow
		}
		if err != nil {
			return nil, 0, err
		}
		off += int64(len(b))
		l := ParseLine(bytes.TrimSuffix(b, []byte("\n")))
		if keep != nil && !keep(l) {
			continue
		}
		lines = append(lines, l)
		if n > 0 && len(lines) > 2*n {
			lines = slices.Delete(lines, 0, len(lines)-n)
		}
	}
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, off, nil
}

// PollInterval is how often Follow looks for new lines.
const PollInterval = 200 * time.Millisecond

// Follow calls fn with each complete line written to path from offset on,
// until ctx is done (then it returns nil) or fn returns an error. When the
// file is replaced (rotated) it finishes the old one and starts the new
// one from its beginning; when it shrinks (truncated) it starts again from
// the beginning. A file that does not exist yet is waited for.
func Follow(ctx context.Context, path string, offset int64, fn func(Line) error) error {
	t := &follower{path: path, off: offset, fn: fn}
	defer t.close()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		if err := t.poll(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

type follower struct {
	path    string
	f       *os.File
	off     int64  // bytes of f read, pending included
	pending []byte // an unfinished last line
	fn      func(Line) error
}

func (t *follower) poll() error {
	if t.f == nil {
		f, err := os.Open(t.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi, err := f.Stat(); err != nil || fi.Size() < t.off {
			t.off = 0 // shrank while closed: start again
		}
		if _, err := f.Seek(t.off, io.SeekStart); err != nil {
			f.Close()
			return err
		}
		t.f = f
	}
	if err := t.read(); err != nil {
		return err
	}
	cur, err := os.Stat(t.path)
	open, oerr := t.f.Stat()
	switch {
	case oerr != nil:
		return oerr
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	case err != nil || !os.SameFile(cur, open):
		// Rotated. The writer finished with the old file before it
		// renamed it, so what is read now is all there will be.
		if err := t.read(); err != nil {
			return err
		}
		if err := t.flush(); err != nil {
			return err
		}
		t.close()
		t.off = 0
		return t.poll()
	case open.Size() < t.off: // truncated
		t.pending = nil
		t.off = 0
		_, err := t.f.Seek(0, io.SeekStart)
		return err
	}
	return nil
}

// read passes on every complete line from the current position.
func (t *follower) read() error {
	buf, err := io.ReadAll(t.f)
	if err != nil {
		return err
	}
	t.off += int64(len(buf))
	buf = append(t.pending, buf...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		if err := t.fn(ParseLine(slices.Clone(buf[:i]))); err != nil {
			return err
		}
		buf = buf[i+1:]
	}
	t.pending = slices.Clone(buf)
	return nil
}

// flush passes on an unfinished last line of a file that was replaced.
func (t *follower) flush() error {
	if len(t.pending) == 0 {
		return nil
	}
	l := ParseLine(t.pending)
	t.pending = nil
	return t.fn(l)
}

func (t *follower) close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}
