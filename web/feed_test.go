package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/ledger"
)

// feedStore is a chain with n records, made without proof of work.
func feedStore(t *testing.T, n int) (*ledger.Store, func(n int)) {
	t.Helper()
	g := ledger.NewGenesis("feedtest")
	g.PowBits = 0
	st, err := ledger.Open(ledger.Options{Dir: filepath.Join(t.TempDir(), "chain"), Genesis: g, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	id, err := ledger.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	add := func(n int) {
		t.Helper()
		var batch []ledger.Pending
		for range n {
			p, _ := ledger.EncodePayload(map[string]any{"n": int64(next)})
			rec, err := ledger.NewSignedRecord(context.Background(), id, g, "note.text", p, "feed", time.Unix(1_700_000_000+int64(next), 0))
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, ledger.Pending{Record: rec, Source: "local"})
			next++
		}
		if _, err := st.AppendBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	add(n)
	return st, add
}

// TestFeedGapsAndOrder: a stream gets new entries in height order; a
// burst beyond maxFeedBurst is announced as a gap of the skipped heights.
func TestFeedGapsAndOrder(t *testing.T) {
	st, add := feedStore(t, 3)
	f := newFeed(st, time.Hour, newRateMeter(time.Minute))
	sub, first := f.subscribe()
	if first != 3 {
		t.Fatalf("a new stream starts at %d, want the head 3", first)
	}
	add(4)
	f.poll(st.Count())
	for want := uint64(3); want < 7; want++ {
		it := sub.take(<-sub.ch)
		var r struct {
			Height uint64 `json:"height"`
		}
		if err := json.Unmarshal(it.data, &r); err != nil || it.height != want || r.Height != want {
			t.Fatalf("item %+v (%v), want height %d", it, err, want)
		}
	}
	add(maxFeedBurst + 20)
	f.poll(st.Count())
	it := sub.take(<-sub.ch)
	if it.gap == nil || it.gap.From != 7 || it.gap.To != 27 {
		t.Fatalf("first item after a burst: %+v, want a gap 7..27", it)
	}
	for want := uint64(27); want < 27+maxFeedBurst; want++ {
		if it := sub.take(<-sub.ch); it.height != want {
			t.Fatalf("height %d, want %d", it.height, want)
		}
	}
	if q := sub.queued.Load(); q != 0 {
		t.Fatalf("%d bytes still counted as queued", q)
	}
}

// TestFeedDropsSlowStream: a stream that does not take its items is
// closed once its backlog is full, and the others go on.
func TestFeedDropsSlowStream(t *testing.T) {
	st, add := feedStore(t, 0)
	f := newFeed(st, time.Hour, newRateMeter(time.Minute))
	slow, _ := f.subscribe()
	fast, _ := f.subscribe()
	got := 0
	for round := 0; round < 3; round++ {
		add(maxFeedBurst)
		f.poll(st.Count())
		for len(fast.ch) > 0 {
			fast.take(<-fast.ch)
			got++
		}
	}
	if got != 3*maxFeedBurst {
		t.Fatalf("the reading stream got %d items, want %d", got, 3*maxFeedBurst)
	}
	n := 0
	for range slow.ch { // closed when dropped
		n++
	}
	if n == 0 || n > 2*maxFeedBurst {
		t.Fatalf("the slow stream held %d items before it was dropped", n)
	}
	f.mu.Lock()
	_, still := f.subs[slow]
	f.mu.Unlock()
	if still {
		t.Fatal("the slow stream is still subscribed")
	}
}
