package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/nodelog"
)

// maxFeedBurst is the most entries the record stream sends from one poll;
// beyond it the older ones are skipped with a gap event.
const maxFeedBurst = 500

// feedItem is one event of the record stream.
type feedItem struct {
	height uint64
	kind   string
	data   json.RawMessage
	gap    *gapEvent
}

type gapEvent struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

type feedSub struct {
	ch     chan feedItem
	queued atomic.Int64 // bytes handed to ch and not yet taken
}

// maxQueuedBytes is how much a live stream may fall behind before it is
// dropped (records are up to about 200 KB of JSON each).
const maxQueuedBytes = 16 << 20

// take is how a stream receives its next item.
func (s *feedSub) take(it feedItem) feedItem {
	s.queued.Add(-int64(len(it.data)))
	return it
}

// feed polls the chain's head and hands new entries to the live record
// streams. One poller serves every stream, and it reads nothing while no
// one listens.
type feed struct {
	store    *ledger.Store
	interval time.Duration
	rate     *rateMeter

	// pollMu makes polls take turns, so entries go out in height order;
	// the reading happens under it, not under mu.
	pollMu sync.Mutex
	// mu guards the streams and next; held only to hand items over.
	mu   sync.Mutex
	subs map[*feedSub]struct{}
	next uint64 // the first height not yet handed out
}

func newFeed(st *ledger.Store, interval time.Duration, rate *rateMeter) *feed {
	return &feed{store: st, interval: interval, rate: rate, subs: map[*feedSub]struct{}{}, next: st.Count()}
}

func (f *feed) run(ctx context.Context) {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			f.mu.Lock()
			for s := range f.subs {
				close(s.ch)
				delete(f.subs, s)
			}
			f.mu.Unlock()
			return
		case now := <-t.C:
			size := f.store.Count()
			f.rate.observe(now, size)
			f.pollMu.Lock()
			f.poll(size)
			f.pollMu.Unlock()
		}
	}
}

// poll hands out the entries below size that the streams have not had.
// The caller holds pollMu.
func (f *feed) poll(size uint64) {
	f.mu.Lock()
	from := f.next
	listening := len(f.subs) > 0
	if size > f.next {
		f.next = size
	}
	f.mu.Unlock()
	if size <= from || !listening {
		return
	}
	var items []feedItem
	if size-from > maxFeedBurst {
		items = append(items, feedItem{gap: &gapEvent{From: from, To: size - maxFeedBurst}})
		from = size - maxFeedBurst
	}
	for h := from; h < size; h++ {
		rec, e, err := f.store.GetByHeight(h)
		if err != nil {
			break // the store is closing; the streams end with the server
		}
		b, err := encodeRecord(rec, e)
		if err != nil {
			continue
		}
		items = append(items, feedItem{height: h, kind: rec.Record.Kind, data: b})
	}
	f.mu.Lock()
	for _, it := range items {
		f.broadcast(it)
	}
	f.mu.Unlock()
}

// broadcast gives an item to every stream; a stream too slow to keep up is
// dropped (the browser reconnects and resumes from its last event id).
func (f *feed) broadcast(it feedItem) {
	for s := range f.subs {
		if s.queued.Load()+int64(len(it.data)) > maxQueuedBytes {
			close(s.ch)
			delete(f.subs, s)
			continue
		}
		select {
		case s.ch <- it:
			s.queued.Add(int64(len(it.data)))
		default:
			close(s.ch)
			delete(f.subs, s)
		}
	}
}

// subscribe returns a stream and the first height it will get.
func (f *feed) subscribe() (*feedSub, uint64) {
	f.pollMu.Lock()
	defer f.pollMu.Unlock()
	// Catch up first, so the new stream starts at the head as it is now.
	f.poll(f.store.Count())
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &feedSub{ch: make(chan feedItem, 2*maxFeedBurst)}
	f.subs[s] = struct{}{}
	return s, f.next
}

func (f *feed) unsubscribe(s *feedSub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[s]; ok {
		close(s.ch)
		delete(f.subs, s)
	}
}

// rateMeter turns samples of the chain size into records per second over
// a window.
type rateMeter struct {
	window time.Duration
	mu     sync.Mutex
	times  []time.Time
	sizes  []uint64
}

func newRateMeter(window time.Duration) *rateMeter { return &rateMeter{window: window} }

func (m *rateMeter) observe(now time.Time, size uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.times = append(m.times, now)
	m.sizes = append(m.sizes, size)
	i := 0
	for i < len(m.times)-1 && now.Sub(m.times[i]) > m.window {
		i++
	}
	m.times, m.sizes = m.times[i:], m.sizes[i:]
}

func (m *rateMeter) perSecond() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.times)
	if n < 2 {
		return 0
	}
	dt := m.times[n-1].Sub(m.times[0]).Seconds()
	if dt <= 0 || m.sizes[n-1] < m.sizes[0] {
		return 0
	}
	return float64(m.sizes[n-1]-m.sizes[0]) / dt
}

// ---- server-sent events ----

type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// streamWriteTimeout bounds each write of a live stream: a client that
// stops reading loses its stream (and its slot) instead of holding it.
const streamWriteTimeout = 30 * time.Second

// streamSlot takes a live-record-stream slot for the request's client
// address, and gives the function that returns it.
func (s *Server) streamSlot(r *http.Request) (func(), error) {
	addr := clientAddr(r)
	s.perAddrMu.Lock()
	if s.perAddr[addr] >= MaxStreamsPerAddr {
		s.perAddrMu.Unlock()
		return nil, errorf(http.StatusTooManyRequests, "too_many", "too many live streams from your address (at most %d)", MaxStreamsPerAddr)
	}
	select {
	case s.streams <- struct{}{}:
	default:
		s.perAddrMu.Unlock()
		return nil, errorf(http.StatusTooManyRequests, "too_many", "too many live streams open on this node (at most %d)", MaxLiveStreams)
	}
	s.perAddr[addr]++
	s.perAddrMu.Unlock()
	return func() {
		s.perAddrMu.Lock()
		if s.perAddr[addr]--; s.perAddr[addr] <= 0 {
			delete(s.perAddr, addr)
		}
		s.perAddrMu.Unlock()
		<-s.streams
	}, nil
}

// startSSE sends a stream's headers.
func (s *Server) startSSE(w http.ResponseWriter) (*sse, error) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	e := &sse{w: w, rc: rc}
	if err := e.write("retry: 2000\n\n"); err != nil {
		return nil, err
	}
	return e, e.flush()
}

func (e *sse) flush() error { return e.rc.Flush() }

func (e *sse) write(text string) error {
	_ = e.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	_, err := e.w.Write([]byte(text))
	return err
}

// event writes one event; data is JSON, so it holds no newline.
func (e *sse) event(name, id string, data []byte) error {
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("event: " + name + "\ndata: ")
	b.Write(data)
	b.WriteString("\n\n")
	return e.write(b.String())
}

const heartbeat = 15 * time.Second

// logSessionCheck is how often an idle log stream checks that its login
// still holds (logout, a password change or a demotion end it).
const logSessionCheck = 5 * time.Second

var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

func (s *Server) handleRecordStream(w http.ResponseWriter, r *http.Request) {
	q, err := readQuery(r, "kind")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	kinds := q.v["kind"]
	for _, k := range kinds {
		if k == "" || len(k) > 128 {
			s.writeError(w, r, badRequest("parameter \"kind\": want a kind or a dotted prefix of one, up to 128 bytes"))
			return
		}
	}
	var resume *uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if h, err := strconv.ParseUint(v, 10, 64); err == nil {
			resume = &h
		}
	}
	done, err := s.streamSlot(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer done()
	sub, next := s.feed.subscribe()
	defer s.feed.unsubscribe(sub)
	ev, err := s.startSSE(w)
	if err != nil {
		return
	}
	want := func(kind string) bool {
		if len(kinds) == 0 {
			return true
		}
		for _, k := range kinds {
			if kind == k || strings.HasPrefix(kind, k+".") {
				return true
			}
		}
		return false
	}
	head, _ := json.Marshal(map[string]uint64{"size": next})
	if ev.event("head", "", head) != nil {
		return
	}
	// A reconnecting browser says the last height it had: send what it
	// missed, up to a burst.
	if resume != nil && *resume < next && *resume+1 < next {
		from := *resume + 1
		if next-from > maxFeedBurst {
			g, _ := json.Marshal(gapEvent{From: from, To: next - maxFeedBurst})
			if ev.event("gap", "", g) != nil {
				return
			}
			from = next - maxFeedBurst
		}
		for h := from; h < next; h++ {
			rec, e, err := s.cfg.Store.GetByHeight(h)
			if err != nil {
				return
			}
			if !want(rec.Record.Kind) {
				continue
			}
			b, err := encodeRecord(rec, e)
			if err != nil || ev.event("record", strconv.FormatUint(h, 10), b) != nil {
				return
			}
		}
	}
	if ev.flush() != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case <-tick.C:
			if ev.write(": ping\n\n") != nil || ev.flush() != nil {
				return
			}
		case it, ok := <-sub.ch:
			if !ok {
				return
			}
			it = sub.take(it)
			switch {
			case it.gap != nil:
				g, _ := json.Marshal(it.gap)
				err = ev.event("gap", "", g)
			case want(it.kind):
				err = ev.event("record", strconv.FormatUint(it.height, 10), it.data)
			default:
				continue
			}
			if err != nil || ev.flush() != nil {
				return
			}
		}
	}
}

func (s *Server) handleLogStream(w http.ResponseWriter, r *http.Request) {
	q, err := readQuery(r, "stream", "level", "backlog")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	l, err := s.requireRole(r, roleAdmin)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Logs == nil {
		s.writeError(w, r, errorf(http.StatusServiceUnavailable, "unavailable", "this node keeps no live log"))
		return
	}
	stream, _, err := q.str("stream")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if stream != "" && stream != nodelog.StreamNode && stream != nodelog.StreamReplication {
		s.writeError(w, r, badRequest("parameter \"stream\": %q is not node or replication", clip(stream)))
		return
	}
	lv := slog.LevelInfo
	if name, ok, err := q.str("level"); err != nil {
		s.writeError(w, r, err)
		return
	} else if ok {
		var known bool
		if lv, known = logLevels[strings.ToLower(name)]; !known {
			s.writeError(w, r, badRequest("parameter \"level\": %q is not debug, info, warn or error", clip(name)))
			return
		}
	}
	backlog, ok, err := q.uint("backlog")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ok {
		backlog = 200
	}
	if backlog > MaxLogBacklog {
		s.writeError(w, r, badRequest("parameter \"backlog\": at most %d", MaxLogBacklog))
		return
	}
	select {
	case s.logStreams <- struct{}{}:
		defer func() { <-s.logStreams }()
	default:
		s.writeError(w, r, errorf(http.StatusTooManyRequests, "too_many", "too many live log streams open (at most %d)", MaxLogStreams))
		return
	}
	// A reconnecting browser says the last line it had.
	var last uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			last = n
		}
	}
	live, stop := s.cfg.Logs.Subscribe(256)
	defer stop()
	ev, err := s.startSSE(w)
	if err != nil {
		return
	}
	// The stream lasts only as long as the login that opened it.
	stillAdmin := func() bool {
		cur, err := s.requireRole(r, roleAdmin)
		return err == nil && cur.id == l.id
	}
	send := func(e nodelog.Entry) error {
		b, err := json.Marshal(e)
		if err != nil {
			return nil
		}
		return ev.event("log", strconv.FormatUint(e.Seq, 10), b)
	}
	if backlog > 0 {
		for _, e := range s.cfg.Logs.Recent(stream, lv, int(backlog)) {
			if e.Seq <= last {
				continue
			}
			if err := send(e); err != nil {
				return
			}
			last = e.Seq
		}
	}
	if ev.flush() != nil {
		return
	}
	levelOf := func(name string) slog.Level {
		var l slog.Level
		_ = l.UnmarshalText([]byte(name))
		return l
	}
	tick := time.NewTicker(logSessionCheck)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case <-tick.C:
			if !stillAdmin() || ev.write(": ping\n\n") != nil || ev.flush() != nil {
				return
			}
		case e, ok := <-live:
			if !ok {
				return
			}
			if e.Seq <= last || (stream != "" && e.Stream != stream) || levelOf(e.Level) < lv {
				continue
			}
			if !stillAdmin() {
				return
			}
			if send(e) != nil || ev.flush() != nil {
				return
			}
		}
	}
}
