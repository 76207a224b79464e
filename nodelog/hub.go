package nodelog

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"
)

// Streams: which of the node's two logs an entry belongs to.
const (
	StreamNode        = "node"
	StreamReplication = "replication"
)

// DefaultCapacity is how many entries a hub keeps when NewHub is given 0.
const DefaultCapacity = 1000

// Entry is one log line as the panel and `pyvnode logs` show it. Its Attrs
// map is shared by every reader of the entry: treat it as read-only.
type Entry struct {
	Seq    uint64         `json:"seq"` // rising, per hub, starting at 1
	Time   time.Time      `json:"time"`
	Level  string         `json:"level"`  // slog.Level.String(): "DEBUG", "INFO", "WARN", "ERROR"
	Stream string         `json:"stream"` // StreamNode or StreamReplication
	Msg    string         `json:"msg"`
	Attrs  map[string]any `json:"attrs,omitempty"` // groups flattened as "group.key"; see jsonValue
}

type item struct {
	e  Entry
	lv slog.Level
}

// Hub keeps the last entries of both streams in a ring and passes new ones
// to subscribers. It is safe for concurrent use.
type Hub struct {
	mu      sync.Mutex
	ring    []item // grows to cap, then next overwrites the oldest
	next    int    // where the next entry goes once the ring is full
	seq     uint64
	subs    map[*subscriber]struct{}
	dropped uint64
}

type subscriber struct {
	ch     chan Entry
	closed bool
}

// NewHub returns a hub keeping the last capacity entries across both
// streams; capacity <= 0 means DefaultCapacity.
func NewHub(capacity int) *Hub {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Hub{ring: make([]item, 0, capacity), subs: map[*subscriber]struct{}{}}
}

// add numbers e, keeps it and offers it to every subscriber.
func (h *Hub) add(e Entry, lv slog.Level) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	e.Seq = h.seq
	it := item{e: e, lv: lv}
	if len(h.ring) < cap(h.ring) {
		h.ring = append(h.ring, it)
	} else {
		h.ring[h.next] = it
		h.next = (h.next + 1) % len(h.ring)
	}
	for s := range h.subs {
		select {
		case s.ch <- e:
		default:
			h.dropped++
		}
	}
}

// Recent returns the last n entries of stream ("" means both) at level min
// or above, oldest first. n <= 0 means all that the hub keeps.
func (h *Hub) Recent(stream string, min slog.Level, n int) []Entry {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Entry
	for i := len(h.ring) - 1; i >= 0 && (n <= 0 || len(out) < n); i-- {
		it := h.ring[(h.next+i)%len(h.ring)]
		if it.lv >= min && (stream == "" || it.e.Stream == stream) {
			out = append(out, it.e)
		}
	}
	slices.Reverse(out)
	return out
}

// Subscribe returns a channel of the entries added after the call, with
// room for buffer of them (at least 1), and a func that unsubscribes and
// closes the channel; calling it again does nothing. When the channel is
// full, new entries are not sent to it and count in Dropped: the logger
// never waits for a reader.
func (h *Hub) Subscribe(buffer int) (<-chan Entry, func()) {
	s := &subscriber{ch: make(chan Entry, max(buffer, 1))}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s.ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !s.closed {
			s.closed = true
			delete(h.subs, s)
			close(s.ch)
		}
	}
}

// Dropped is how many entries subscribers missed because their channel
// was full, summed over all subscribers since the hub was made.
func (h *Hub) Dropped() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

// Handler returns a slog.Handler that adds records at level or above to
// the hub as entries of stream. A nil level means slog.LevelInfo.
func (h *Hub) Handler(stream string, level slog.Leveler) slog.Handler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &hubHandler{hub: h, stream: stream, level: level}
}

// hubHandler turns records into entries. Attributes from WithAttrs are
// flattened once, when WithAttrs is called, under the groups open then.
type hubHandler struct {
	hub    *Hub
	stream string
	level  slog.Leveler
	attrs  []kv   // from WithAttrs, already prefixed
	prefix string // open groups, "a.b." or ""
}

type kv struct {
	k string
	v any
}

var _ slog.Handler = (*hubHandler)(nil)

func (h *hubHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *hubHandler) Handle(_ context.Context, r slog.Record) error {
	e := Entry{Time: r.Time, Level: r.Level.String(), Stream: h.stream, Msg: r.Message}
	if len(h.attrs) > 0 || r.NumAttrs() > 0 {
		m := make(map[string]any, len(h.attrs)+r.NumAttrs())
		for _, a := range h.attrs {
			m[a.k] = a.v
		}
		r.Attrs(func(a slog.Attr) bool {
			flatten(h.prefix, a, func(k string, v any) { m[k] = v })
			return true
		})
		if len(m) > 0 {
			e.Attrs = m
		}
	}
	h.hub.add(e, r.Level)
	return nil
}

func (h *hubHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = slices.Clip(h.attrs)
	for _, a := range as {
		flatten(h.prefix, a, func(k string, v any) { h2.attrs = append(h2.attrs, kv{k, v}) })
	}
	return &h2
}

func (h *hubHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

// flatten calls put for each leaf of a under prefix, following slog's
// rules: values resolved, empty attributes dropped, a group's attributes
// under "group.", a group with an empty key inlined.
func flatten(prefix string, a slog.Attr, put func(k string, v any)) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			flatten(p, g, put)
		}
		return
	}
	put(prefix+a.Key, jsonValue(a.Value))
}

// jsonValue makes v something encoding/json writes plainly: strings,
// numbers and bools as they are, times as RFC 3339 with nanoseconds,
// durations, errors and everything else as their text.
func jsonValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return v.Uint64()
	case slog.KindFloat64:
		if f := v.Float64(); !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
		return v.String() // encoding/json refuses NaN and ±Inf
	case slog.KindBool:
		return v.Bool()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindDuration:
		return v.Duration().String()
	}
	if b, ok := v.Any().([]byte); ok {
		return string(b)
	}
	return fmt.Sprint(v.Any()) // Error() or String() if it has one, safe from their panics
}
