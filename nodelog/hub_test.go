package nodelog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"
	"time"
)

func msgs(es []Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Msg)
	}
	return strings.Join(s, ",")
}

func TestHubRingKeepsLast(t *testing.T) {
	h := NewHub(3)
	log := slog.New(h.Handler(StreamNode, slog.LevelDebug))
	for i := 1; i <= 5; i++ {
		log.Info(fmt.Sprint("m", i))
	}
	got := h.Recent("", slog.LevelDebug, 0)
	if msgs(got) != "m3,m4,m5" {
		t.Fatalf("Recent = %s, want m3,m4,m5", msgs(got))
	}
	for i, e := range got {
		if e.Seq != uint64(i+3) || e.Stream != StreamNode || e.Level != "INFO" || e.Time.IsZero() {
			t.Errorf("entry %d = %+v", i, e)
		}
	}
}

func TestHubRecent(t *testing.T) {
	h := NewHub(100)
	node := slog.New(h.Handler(StreamNode, slog.LevelDebug))
	repl := slog.New(h.Handler(StreamReplication, slog.LevelDebug))
	node.Debug("n-debug")
	repl.Info("r-info")
	node.Warn("n-warn")
	repl.Error("r-error")
	node.Info("n-info")
	for _, tc := range []struct {
		stream string
		min    slog.Level
		n      int
		want   string
	}{
		{"", slog.LevelDebug, 0, "n-debug,r-info,n-warn,r-error,n-info"},
		{"", slog.LevelDebug, 2, "r-error,n-info"},
		{"", slog.LevelWarn, 0, "n-warn,r-error"},
		{StreamNode, slog.LevelDebug, 0, "n-debug,n-warn,n-info"},
		{StreamNode, slog.LevelInfo, 1, "n-info"},
		{StreamReplication, slog.LevelInfo, 5, "r-info,r-error"},
		{StreamReplication, slog.LevelError + 1, 0, ""},
	} {
		t.Run(fmt.Sprintf("%s/%s/%d", tc.stream, tc.min, tc.n), func(t *testing.T) {
			if got := msgs(h.Recent(tc.stream, tc.min, tc.n)); got != tc.want {
				t.Fatalf("Recent = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHubHandlerLevel(t *testing.T) {
	h := NewHub(10)
	log := slog.New(h.Handler(StreamNode, slog.LevelWarn))
	log.Info("dropped")
	log.Warn("kept")
	if got := msgs(h.Recent("", slog.LevelDebug, 0)); got != "kept" {
		t.Fatalf("Recent = %q, want kept", got)
	}
	var lv slog.LevelVar // a Leveler that changes
	log = slog.New(h.Handler(StreamNode, &lv))
	log.Debug("hidden")
	lv.Set(slog.LevelDebug)
	log.Debug("shown")
	if got := msgs(h.Recent("", slog.LevelDebug, 0)); got != "kept,shown" {
		t.Fatalf("Recent = %q, want kept,shown", got)
	}
}

func TestHubSubscribe(t *testing.T) {
	h := NewHub(10)
	log := slog.New(h.Handler(StreamReplication, nil))
	log.Info("before")
	ch, stop := h.Subscribe(10)
	log.Info("after", "k", "v")
	select {
	case e := <-ch:
		if e.Msg != "after" || e.Seq != 2 || e.Stream != StreamReplication || e.Attrs["k"] != "v" {
			t.Fatalf("got %+v, want the entry logged after Subscribe", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no entry")
	}
	stop()
	stop() // twice is fine
	if _, ok := <-ch; ok {
		t.Fatal("channel still open after unsubscribing")
	}
	log.Info("after unsubscribe") // must not panic on the closed channel
	if h.Dropped() != 0 {
		t.Fatalf("Dropped = %d, want 0", h.Dropped())
	}
}

func TestHubFullSubscriberDrops(t *testing.T) {
	h := NewHub(10)
	log := slog.New(h.Handler(StreamNode, nil))
	slow, stopSlow := h.Subscribe(1)
	defer stopSlow()
	fast, stopFast := h.Subscribe(10)
	defer stopFast()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 3 {
			log.Info(fmt.Sprint("m", i))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("logging blocked on a full subscriber")
	}
	if e := <-slow; e.Msg != "m0" {
		t.Fatalf("slow subscriber got %q, want m0", e.Msg)
	}
	if len(slow) != 0 {
		t.Fatalf("slow subscriber has %d more entries, want 0", len(slow))
	}
	if len(fast) != 3 {
		t.Fatalf("fast subscriber has %d entries, want 3", len(fast))
	}
	if h.Dropped() != 2 {
		t.Fatalf("Dropped = %d, want 2", h.Dropped())
	}
}

type secret string

func (secret) LogValue() slog.Value { return slog.StringValue("***") }

type point struct{ X, Y int }

func TestHandlerAttrs(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, tc := range []struct {
		name string
		log  func(*slog.Logger)
		want map[string]any
	}{
		{"none", func(l *slog.Logger) { l.Info("m") }, nil},
		{"kinds", func(l *slog.Logger) {
			l.Info("m", "s", "str", "i", 42, "u", uint64(7), "f", 1.5, "b", true, "t", when,
				"d", 1500*time.Millisecond, "err", errors.New("boom"), "p", point{1, 2}, "bytes", []byte("hi"))
		}, map[string]any{
			"s": "str", "i": int64(42), "u": uint64(7), "f": 1.5, "b": true, "t": "2026-01-02T03:04:05.000000006Z",
			"d": "1.5s", "err": "boom", "p": "{1 2}", "bytes": "hi",
		}},
		{"logvaluer", func(l *slog.Logger) { l.Info("m", "pw", secret("hunter2")) }, map[string]any{"pw": "***"}},
		{"with", func(l *slog.Logger) { l.With("component", "p2p").Info("m", "peer", "x") },
			map[string]any{"component": "p2p", "peer": "x"}},
		{"group", func(l *slog.Logger) { l.WithGroup("g").Info("m", "a", 1) }, map[string]any{"g.a": int64(1)}},
		{"with-then-group", func(l *slog.Logger) { l.With("a", 1).WithGroup("g").With("b", 2).WithGroup("h").Info("m", "c", 3) },
			map[string]any{"a": int64(1), "g.b": int64(2), "g.h.c": int64(3)}},
		{"slog.Group", func(l *slog.Logger) { l.Info("m", slog.Group("req", "id", 9, slog.Group("peer", "addr", "a"))) },
			map[string]any{"req.id": int64(9), "req.peer.addr": "a"}},
		{"inline-group", func(l *slog.Logger) { l.Info("m", slog.Group("", "x", 1)) }, map[string]any{"x": int64(1)}},
		{"empty-group-and-attr", func(l *slog.Logger) { l.Info("m", slog.Group("g"), slog.Attr{}) }, nil},
		{"empty-with-group", func(l *slog.Logger) { l.WithGroup("g").Info("m") }, nil},
		{"empty-group-name", func(l *slog.Logger) { l.WithGroup("").Info("m", "a", 1) }, map[string]any{"a": int64(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHub(10)
			tc.log(slog.New(h.Handler(StreamNode, nil)))
			got := h.Recent("", slog.LevelDebug, 0)
			if len(got) != 1 {
				t.Fatalf("got %d entries, want 1", len(got))
			}
			if !reflect.DeepEqual(got[0].Attrs, tc.want) {
				t.Fatalf("Attrs = %#v\nwant %#v", got[0].Attrs, tc.want)
			}
		})
	}
}

// TestHandlerWithAttrsDoesNotLeak checks that handlers derived from one
// parent do not see each other's attributes.
func TestHandlerWithAttrsDoesNotLeak(t *testing.T) {
	h := NewHub(10)
	base := slog.New(h.Handler(StreamNode, nil)).With("a", 1)
	base.With("b", 2).Info("one")
	base.With("c", 3).Info("two")
	base.Info("three")
	var got []map[string]any
	for _, e := range h.Recent("", slog.LevelDebug, 0) {
		got = append(got, e.Attrs)
	}
	want := []map[string]any{{"a": int64(1), "b": int64(2)}, {"a": int64(1), "c": int64(3)}, {"a": int64(1)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Attrs = %v, want %v", got, want)
	}
}

// TestHandlerSlogtest runs the standard library's conformance tests,
// turning flattened "a.b" keys back into nested groups.
func TestHandlerSlogtest(t *testing.T) {
	var h *Hub
	slogtest.Run(t, func(*testing.T) slog.Handler {
		h = NewHub(10)
		return h.Handler(StreamNode, nil)
	}, func(t *testing.T) map[string]any {
		es := h.Recent("", slog.LevelDebug, 0)
		if len(es) != 1 {
			t.Fatalf("got %d entries, want 1", len(es))
		}
		e := es[0]
		m := map[string]any{slog.LevelKey: e.Level, slog.MessageKey: e.Msg}
		if !e.Time.IsZero() {
			m[slog.TimeKey] = e.Time
		}
		for k, v := range maps.All(e.Attrs) {
			parts := strings.Split(k, ".")
			g := m
			for _, p := range parts[:len(parts)-1] {
				if g[p] == nil {
					g[p] = map[string]any{}
				}
				g = g[p].(map[string]any)
			}
			g[parts[len(parts)-1]] = v
		}
		return m
	})
}

func TestHubConcurrent(t *testing.T) {
	h := NewHub(50)
	log := slog.New(h.Handler(StreamNode, nil))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				ch, stop := h.Subscribe(2)
				select {
				case <-ch:
				case <-time.After(time.Millisecond):
				}
				stop()
				h.Recent("", slog.LevelInfo, 10)
			}
		})
	}
	var lw sync.WaitGroup
	for g := range 4 {
		lw.Go(func() {
			l := log.With("g", g)
			for i := range 500 {
				l.Info("m", "i", i)
			}
		})
	}
	lw.Wait()
	cancel()
	wg.Wait()
	es := h.Recent("", slog.LevelDebug, 0)
	if len(es) != 50 || es[49].Seq != 2000 {
		t.Fatalf("got %d entries ending at seq %d, want 50 ending at 2000", len(es), es[len(es)-1].Seq)
	}
	for i := 1; i < len(es); i++ {
		if es[i].Seq != es[i-1].Seq+1 {
			t.Fatalf("seq %d follows %d", es[i].Seq, es[i-1].Seq)
		}
	}
}
