package nodelog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Defaults for Options.
const (
	DefaultMaxSizeMB  = 10
	DefaultMaxBackups = 5
)

// Options configure Open. The zero value means: text on os.Stderr, level
// info, files of DefaultMaxSizeMB with DefaultMaxBackups backups.
type Options struct {
	// Stderr receives both logs in Format. Nil means os.Stderr.
	Stderr io.Writer
	// Format on Stderr: "text" (default) or "json". The files are always
	// JSON lines.
	Format string
	// Level is the lowest level written anywhere. Nil means slog.LevelInfo.
	Level slog.Leveler
	// MaxSizeMB is the size in megabytes at which a log file is rotated.
	MaxSizeMB int
	// MaxBackups is how many rotated files of each log are kept; older
	// ones are deleted. Each log thus takes at most
	// (MaxBackups+1)×MaxSizeMB on disk.
	MaxBackups int
	// NoFiles turns the files off: stderr and the hub only.
	NoFiles bool
}

func (o *Options) setDefaults() {
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Format == "" {
		o.Format = "text"
	}
	if o.Level == nil {
		o.Level = slog.LevelInfo
	}
	if o.MaxSizeMB <= 0 {
		o.MaxSizeMB = DefaultMaxSizeMB
	}
	if o.MaxBackups <= 0 {
		o.MaxBackups = DefaultMaxBackups
	}
}

func (o *Options) validate() error {
	if o.Format != "text" && o.Format != "json" {
		return fmt.Errorf("log format %q: want text or json", o.Format)
	}
	return nil
}

// Logs are the node's two loggers and the hub both feed.
type Logs struct {
	Node, Replication *slog.Logger
	Hub               *Hub
	files             []*lumberjack.Logger
}

// LogDir is where a data directory's log files are.
func LogDir(dataDir string) string { return filepath.Join(dataDir, "logs") }

// LogPath is the current file of a stream's log: DATA/logs/node.log or
// DATA/logs/replication.log. Rotated files sit beside it (see Files).
func LogPath(dataDir, stream string) string {
	return filepath.Join(LogDir(dataDir), stream+".log")
}

// Open makes the node's two loggers. Each writes to opts.Stderr, to its
// own JSON-lines file under LogDir(dataDir) (rotated by size, a bounded
// number of backups kept uncompressed so that `pyvnode logs` and grep
// read them), and to a hub keeping hubCapacity entries. It creates the
// data directory if need be: node.Init accepts a directory that exists.
func Open(dataDir string, hubCapacity int, opts Options) (*Logs, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	hopts := &slog.HandlerOptions{Level: opts.Level}
	var stderr slog.Handler
	if opts.Format == "json" {
		stderr = slog.NewJSONHandler(opts.Stderr, hopts)
	} else {
		stderr = slog.NewTextHandler(opts.Stderr, hopts)
	}
	l := &Logs{Hub: NewHub(hubCapacity)}
	if !opts.NoFiles {
		if err := os.MkdirAll(LogDir(dataDir), 0o700); err != nil {
			return nil, fmt.Errorf("create log directory: %w", err)
		}
	}
	logger := func(stream string) *slog.Logger {
		hs := []slog.Handler{stderr, l.Hub.Handler(stream, opts.Level)}
		if !opts.NoFiles {
			f := &lumberjack.Logger{Filename: LogPath(dataDir, stream), MaxSize: opts.MaxSizeMB, MaxBackups: opts.MaxBackups}
			l.files = append(l.files, f)
			hs = append(hs, slog.NewJSONHandler(f, hopts))
		}
		return slog.New(fanout(hs))
	}
	l.Node = logger(StreamNode)
	l.Replication = logger(StreamReplication)
	return l, nil
}

// Close closes the log files. Loggers used afterwards reopen them.
func (l *Logs) Close() error {
	var errs []error
	for _, f := range l.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// fanout passes each record to every handler that takes its level.
type fanout []slog.Handler

var _ slog.Handler = fanout(nil)

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (f fanout) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
