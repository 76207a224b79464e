package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
)

// maxPageBytes is MaxPageBytes; tests lower it.
var maxPageBytes = MaxPageBytes

// query reads a request's parameters, refusing ones the endpoint does not
// take (a misspelt parameter would otherwise be silently ignored).
type query struct {
	v url.Values
}

func readQuery(r *http.Request, allowed ...string) (query, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, badRequest("malformed query string: %v", err)
	}
	for k := range v {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return query{}, badRequest("%s takes no parameters, got %q", r.URL.Path, k)
			}
			return query{}, badRequest("unknown parameter %q (this endpoint takes %s)", k, strings.Join(allowed, ", "))
		}
	}
	return query{v}, nil
}

func (q query) str(name string) (string, bool, error) {
	vs, ok := q.v[name]
	if !ok {
		return "", false, nil
	}
	if len(vs) > 1 {
		return "", false, badRequest("parameter %q given %d times", name, len(vs))
	}
	return vs[0], true, nil
}

// uint reads a non-negative decimal integer.
func (q query) uint(name string) (uint64, bool, error) {
	s, ok, err := q.str(name)
	if err != nil || !ok {
		return 0, ok, err
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, badRequest("parameter %q: %q is not a non-negative integer", name, s)
	}
	return n, true, nil
}

func parseID(s string) (ledger.ID, error) {
	var id ledger.ID
	if len(s) != 64 {
		return id, badRequest("record id %q: want 64 hex digits", clip(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, badRequest("record id %q: not hex", clip(s))
	}
	return id, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// ledgerError maps the chain's errors to API errors.
func ledgerError(err error) error {
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "%v", err)
	case errors.Is(err, ledger.ErrClosed):
		return errorf(http.StatusServiceUnavailable, "unavailable", "the node is stopping")
	}
	return err
}

// ---- node and head ----

type infoResult struct {
	Network           string   `json:"network"`
	NodeID            string   `json:"node_id"`
	Fingerprint       string   `json:"fingerprint"`
	PeerID            string   `json:"peer_id,omitempty"`
	Version           string   `json:"version"`
	StartedTime       string   `json:"started_time"`
	UptimeSeconds     float64  `json:"uptime_seconds"`
	Size              uint64   `json:"size"`
	Root              string   `json:"root"`
	Link              string   `json:"link"`
	RecordsPerSecond  float64  `json:"records_per_second"`
	GenesisHash       string   `json:"genesis_hash"`
	Peers             int      `json:"peers"`
	AppsReady         bool     `json:"apps_ready"`
	Dev               bool     `json:"dev"`
	Replication       bool     `json:"replication"`
	ReplicationLagSec *float64 `json:"replication_lag_seconds,omitempty"`
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	if _, err := readQuery(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	h := s.cfg.Store.Head()
	gh := s.cfg.Genesis.Hash()
	id := s.cfg.Identity.ID()
	out := infoResult{
		Network: s.cfg.Genesis.Network, NodeID: id.String(), Fingerprint: id.Fingerprint(),
		Version: s.cfg.Version, StartedTime: s.cfg.Started.UTC().Format(time.RFC3339),
		UptimeSeconds: time.Since(s.cfg.Started).Seconds(), Size: h.Size, Root: h.Root.String(), Link: h.Link.String(),
		RecordsPerSecond: s.rate.perSecond(), GenesisHash: hex.EncodeToString(gh[:]), AppsReady: s.cfg.AppsReady(), Dev: s.cfg.Dev,
	}
	if rep := s.cfg.Replicator; rep != nil {
		st := rep.Network()
		out.Replication, out.PeerID = true, st.PeerID
		var lag float64
		have := false
		for _, p := range st.Peers {
			if !p.Ready {
				continue
			}
			out.Peers++
			l := lagOf(p.LastSync, p.Since)
			if !have || l > lag {
				lag, have = l, true
			}
		}
		if have {
			out.ReplicationLagSec = &lag
		}
	}
	writeJSON(w, r, "", cacheNone, out)
}

// lagOf is how long a ready peer has gone without a successful sync: since
// the last one, or since it connected when there was none.
func lagOf(lastSync, since time.Time) float64 {
	t := lastSync
	if t.IsZero() {
		t = since
	}
	if t.IsZero() {
		return 0
	}
	return time.Since(t).Seconds()
}

type headResult struct {
	Size uint64 `json:"size"`
	Root string `json:"root"`
	Link string `json:"link"`
}

func (s *Server) handleHead(w http.ResponseWriter, r *http.Request) {
	if _, err := readQuery(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	h := s.cfg.Store.Head()
	writeJSON(w, r, s.tag()+"-head-"+h.Link.String()+"-"+strconv.FormatUint(h.Size, 10), cacheHead,
		headResult{Size: h.Size, Root: h.Root.String(), Link: h.Link.String()})
}

type signedCP struct {
	size       uint64
	link       ledger.Hash
	root       ledger.Hash
	checkpoint string
	signed     time.Time
}

// checkpointFresh is how long a signed checkpoint is handed out again
// for an unchanged head: its time line says when the node stood behind
// that head, so it must stay recent.
const checkpointFresh = 10 * time.Second

// checkpoint signs the current head, at most once per head every
// checkpointFresh: a busy API answers many requests for the same size.
func (s *Server) checkpoint() (signedCP, error) {
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	h := s.cfg.Store.Head()
	if s.cp.checkpoint != "" && s.cp.size == h.Size && s.cp.link == h.Link && time.Since(s.cp.signed) < checkpointFresh {
		return s.cp, nil
	}
	cp := &ledger.Checkpoint{Network: s.cfg.Genesis.Network, Node: s.cfg.Identity.ID(), Size: h.Size, Root: h.Root, Link: h.Link, Time: time.Now()}
	note, err := ledger.SignCheckpoint(cp, s.cfg.Identity)
	if err != nil {
		return signedCP{}, err
	}
	s.cp = signedCP{size: h.Size, link: h.Link, root: h.Root, checkpoint: string(note), signed: cp.Time}
	return s.cp, nil
}

type checkpointResult struct {
	Size        uint64 `json:"size"`
	Root        string `json:"root"`
	Link        string `json:"link"`
	Checkpoint  string `json:"checkpoint"`
	PublicKey   string `json:"public_key"`
	VerifierKey string `json:"verifier_key"`
}

func (s *Server) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	if _, err := readQuery(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	cp, err := s.checkpoint()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := s.cfg.Identity.ID()
	vk, err := ledger.NoteVerifierKey(s.cfg.Genesis.Network, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, r, s.tag()+"-cp-"+strconv.FormatUint(cp.size, 10)+"-"+hashText(cp.checkpoint), cacheHead, checkpointResult{
		Size: cp.size, Root: cp.root.String(), Link: cp.link.String(), Checkpoint: cp.checkpoint,
		PublicKey: id.String(), VerifierKey: vk,
	})
}

// ---- records ----

func (s *Server) handleRecords(w http.ResponseWriter, r *http.Request) {
	q, err := readQuery(r, "from", "count", "order")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	order, _, err := q.str("order")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if order != "" && order != "asc" && order != "desc" {
		s.writeError(w, r, badRequest("parameter \"order\": %q is not asc or desc", order))
		return
	}
	desc := order == "desc"
	from, hasFrom, err := q.uint("from")
	if err == nil && from > math.MaxInt64 {
		err = badRequest("parameter \"from\": %d is beyond any chain", from)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	count, hasCount, err := q.uint("count")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !hasCount {
		count = DefaultPage
	}
	if count == 0 || count > MaxPage {
		s.writeError(w, r, badRequest("parameter \"count\": %d is not between 1 and %d", count, MaxPage))
		return
	}
	head := s.cfg.Store.Head()
	size := head.Size
	first, n := planPage(size, from, hasFrom, count, desc)
	// The page is a function of the chain up to its head (the head's link
	// names it) and of the plan: a client that holds it gets 304 before
	// any record is read.
	etag := `"` + fmt.Sprintf("%s-rec-%t-%d-%d-%s", s.tag(), desc, first, n, head.Link) + `"`
	hdr := w.Header()
	hdr.Set("Cache-Control", cacheHead)
	hdr.Set("ETag", etag)
	if matchETag(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	release, err := s.acquire(r, s.pages, "record pages")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	// The records are JSON already: the page is written around them
	// rather than encoded a second time.
	var buf bytes.Buffer
	buf.WriteString(`{"records":[`)
	taken := uint64(0)
	for i := range n {
		h := first + i
		if desc {
			h = first - i
		}
		rec, e, err := s.cfg.Store.GetByHeight(h)
		if err != nil {
			s.writeError(w, r, ledgerError(err))
			return
		}
		b, err := encodeRecord(rec, e)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if buf.Len()+len(b) > maxPageBytes && taken > 0 {
			break
		}
		if taken > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
		taken++
	}
	fmt.Fprintf(&buf, `],"next":%d,"size":%d}`+"\n", nextOf(first, taken, desc), size)
	hdr.Set("Content-Type", "application/json")
	w.Write(buf.Bytes())
}

// planPage decides where a page starts and how many entries it may hold
// (before the byte budget): ascending from from, or descending from from
// (the last entry when from is absent or beyond the head).
func planPage(size, from uint64, hasFrom bool, count uint64, desc bool) (first, n uint64) {
	if !desc {
		first = min(from, size)
		return first, min(count, size-first)
	}
	if size == 0 {
		return 0, 0
	}
	first = from
	if !hasFrom || from >= size {
		first = size - 1
	}
	return first, min(count, first+1)
}

// nextOf is where the page after one of n entries starting at first
// begins: -1 when a descending page reached the start of the chain.
func nextOf(first, n uint64, desc bool) int64 {
	if desc {
		if n == 0 {
			return -1
		}
		return int64(first) - int64(n)
	}
	return int64(first + n)
}

func encodeRecord(rec *ledger.SignedRecord, e ledger.Entry) (json.RawMessage, error) {
	x, err := ledger.NewExportRecord(rec, e)
	if err != nil {
		return nil, err
	}
	return json.Marshal(x)
}

func (s *Server) handleRecord(w http.ResponseWriter, r *http.Request) {
	if _, err := readQuery(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rec, e, err := s.cfg.Store.Get(id)
	if err != nil {
		s.writeError(w, r, ledgerError(err))
		return
	}
	s.writeRecord(w, r, rec, e)
}

func (s *Server) handleRecordAt(w http.ResponseWriter, r *http.Request) {
	if _, err := readQuery(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	hs := r.PathValue("height")
	h, err := strconv.ParseUint(hs, 10, 64)
	if err != nil {
		s.writeError(w, r, badRequest("height %q is not a non-negative integer", clip(hs)))
		return
	}
	if size := s.cfg.Store.Count(); h >= size {
		s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "no record at height %d: the chain has %d", h, size))
		return
	}
	rec, e, err := s.cfg.Store.GetByHeight(h)
	if err != nil {
		s.writeError(w, r, ledgerError(err))
		return
	}
	s.writeRecord(w, r, rec, e)
}

func (s *Server) writeRecord(w http.ResponseWriter, r *http.Request, rec *ledger.SignedRecord, e ledger.Entry) {
	b, err := encodeRecord(rec, e)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, r, s.tag()+"-entry-"+e.Link.String(), cacheHead, b)
}

// ---- proofs ----

type inclusionResult struct {
	ID         string   `json:"id"`
	Index      uint64   `json:"index"`
	Size       uint64   `json:"size"`
	Root       string   `json:"root"`
	LeafHash   string   `json:"leaf_hash"`
	Proof      []string `json:"proof"`
	Checkpoint string   `json:"checkpoint,omitempty"`
}

func (s *Server) handleInclusion(w http.ResponseWriter, r *http.Request) {
	q, err := readQuery(r, "id", "size")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ids, ok, err := q.str("id")
	if err == nil && !ok {
		err = badRequest("parameter \"id\" is required")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := parseID(ids)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	size, hasSize, err := q.uint("size")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st := s.cfg.Store
	idx, err := st.Height(id)
	if err != nil {
		s.writeError(w, r, ledgerError(err))
		return
	}
	// The id index can name a record a moment before the head covers it.
	head := st.Count()
	if idx >= head {
		s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "record %s is being appended; ask again in a moment", id))
		return
	}
	out := inclusionResult{ID: id.String(), Index: idx, LeafHash: ledger.LeafHash(id).String()}
	var root ledger.Hash
	if hasSize {
		if idx >= size || size > head {
			s.writeError(w, r, badRequest("record %s is at height %d: size must be above it and at most %d", id, idx, head))
			return
		}
		if root, err = st.RootAt(size); err != nil {
			s.writeError(w, r, ledgerError(err))
			return
		}
	} else {
		cp, err := s.checkpoint()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if idx >= cp.size {
			s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "record %s is being appended; ask again in a moment", id))
			return
		}
		size, root, out.Checkpoint = cp.size, cp.root, cp.checkpoint
	}
	p, err := st.InclusionProof(idx, size)
	if err != nil {
		s.writeError(w, r, ledgerError(err))
		return
	}
	out.Size, out.Root, out.Proof = size, root.String(), hexList(p)
	etag := fmt.Sprintf("%s-incl-%s-%d-%s-%t", s.tag(), id, size, root, hasSize)
	if !hasSize {
		// The answer carries a checkpoint signed at this head.
		etag += "-" + strconv.Itoa(len(out.Checkpoint)) + "-" + hashText(out.Checkpoint)
	}
	writeJSON(w, r, etag, cacheHead, out)
}

// hashText is a short digest of a text, for ETags.
func hashText(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:8])
}

func hexList(p [][]byte) []string {
	out := make([]string, len(p))
	for i, b := range p {
		out[i] = hex.EncodeToString(b)
	}
	return out
}

type consistencyResult struct {
	Old     uint64   `json:"old"`
	New     uint64   `json:"new"`
	OldRoot string   `json:"old_root"`
	NewRoot string   `json:"new_root"`
	Proof   []string `json:"proof"`
}

func (s *Server) handleConsistency(w http.ResponseWriter, r *http.Request) {
	q, err := readQuery(r, "old", "new")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	old, hasOld, err := q.uint("old")
	if err == nil && !hasOld {
		err = badRequest("parameter \"old\" is required")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st := s.cfg.Store
	size := st.Count()
	nw, hasNew, err := q.uint("new")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !hasNew {
		nw = size
	}
	if old > nw || nw > size {
		s.writeError(w, r, badRequest("need old <= new <= %d, got old %d and new %d", size, old, nw))
		return
	}
	p, err := st.ConsistencyProof(old, nw)
	if err != nil {
		s.writeError(w, r, ledgerError(err))
		return
	}
	oldRoot, err := st.RootAt(old)
	if err != nil {
		s.writeError(w, r, ledgerError(err))
		return
	}
	newRoot, err := st.RootAt(nw)
	if err != nil {
		s.writeError(w, r, ledgerError(err))
		return
	}
	writeJSON(w, r, fmt.Sprintf("%s-cons-%d-%d-%s", s.tag(), old, nw, newRoot), cacheHead,
		consistencyResult{Old: old, New: nw, OldRoot: oldRoot.String(), NewRoot: newRoot.String(), Proof: hexList(p)})
}

// ---- applications ----

// index gives the applications' index once it has read the chain.
func (s *Server) index(ctx context.Context) (*apps.Index, error) {
	if s.cfg.Apps == nil {
		return nil, errorf(http.StatusServiceUnavailable, "unavailable", "this node does not run the applications")
	}
	if !s.cfg.AppsReady() {
		return nil, errorf(http.StatusServiceUnavailable, "unavailable", "the applications' index is still reading the chain; try again shortly")
	}
	return s.cfg.Apps.Index(ctx)
}

// view computes a tally or report in one of the engine's view slots,
// which the client protocol shares.
func view[T any](ctx context.Context, s *Server, compute func(*apps.Index) (T, error)) (T, error) {
	var zero T
	x, err := s.index(ctx)
	if err != nil {
		return zero, err
	}
	// Wait briefly rather than refuse a burst outright.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	release, err := s.cfg.Apps.AcquireView(wctx)
	if err != nil {
		return zero, errorf(http.StatusTooManyRequests, "too_many", "too many tallies and reports being computed; try again")
	}
	defer release()
	v, err := compute(x)
	if err != nil {
		return zero, appError(err)
	}
	return v, nil
}

func appError(err error) error {
	if errors.Is(err, apps.ErrNotFound) {
		return errorf(http.StatusNotFound, "not_found", "%v", err)
	}
	return err
}

// serveView answers a view. Views are functions of the chain, so the
// answer is named by the view and the head: a client holding it gets 304,
// and concurrent or repeated requests at one head share one computation.
func serveView[T any](s *Server, w http.ResponseWriter, r *http.Request, key string, compute func(*apps.Index) (T, error)) {
	h := s.cfg.Store.Head()
	etag := fmt.Sprintf("%s-%s-%d-%s", s.tag(), key, h.Size, h.Link)
	if matchETag(r.Header.Get("If-None-Match"), `"`+etag+`"`) {
		w.Header().Set("ETag", `"`+etag+`"`)
		w.Header().Set("Cache-Control", cacheHead)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	b, err := s.views.get(etag, func() ([]byte, error) {
		// Computed for every waiting request: not cut short when the
		// first one leaves.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
		defer cancel()
		v, err := view(ctx, s, compute)
		if err != nil {
			return nil, err
		}
		return json.Marshal(v)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, r, etag, cacheHead, json.RawMessage(b))
}

type ballotsResult struct {
	Ballots []apps.BallotInfo `json:"ballots"`
}

func (s *Server) handleBallots(w http.ResponseWriter, r *http.Request) {
	if _, err := readQuery(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	serveView(s, w, r, "ballots", func(x *apps.Index) (ballotsResult, error) {
		return ballotsResult{Ballots: nonNilSlice(x.Ballots())}, nil
	})
}

func (s *Server) handleTally(w http.ResponseWriter, r *http.Request) {
	name, err := requiredParam(r, "ballot")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	serveView(s, w, r, "tally-"+hex.EncodeToString([]byte(name)), func(x *apps.Index) (*apps.Tally, error) { return x.Tally(name) })
}

type fundsResult struct {
	Funds []string `json:"funds"`
}

func (s *Server) handleFunds(w http.ResponseWriter, r *http.Request) {
	if _, err := readQuery(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	serveView(s, w, r, "funds", func(x *apps.Index) (fundsResult, error) {
		return fundsResult{Funds: nonNilSlice(x.Funds())}, nil
	})
}

func (s *Server) handleFundReport(w http.ResponseWriter, r *http.Request) {
	name, err := requiredParam(r, "fund")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	serveView(s, w, r, "fund-"+hex.EncodeToString([]byte(name)), func(x *apps.Index) (*apps.FundReport, error) { return x.FundReport(name) })
}

func (s *Server) handleResourceReport(w http.ResponseWriter, r *http.Request) {
	q, err := readQuery(r, "period", "account")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	period, _, err := q.str("period")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if period == "" {
		period = "month"
	}
	if err := apps.CheckPeriod(period); err != nil {
		s.writeError(w, r, badRequest("parameter \"period\": %v", err))
		return
	}
	account, _, err := q.str("account")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	key := "res-" + period + "-" + hex.EncodeToString([]byte(account))
	serveView(s, w, r, key, func(x *apps.Index) (*apps.ResourceReport, error) { return x.ResourceReport(period, account) })
}

// requiredParam reads the one parameter an endpoint takes.
func requiredParam(r *http.Request, name string) (string, error) {
	q, err := readQuery(r, name)
	if err != nil {
		return "", err
	}
	v, ok, err := q.str(name)
	if err != nil {
		return "", err
	}
	if !ok || v == "" {
		return "", badRequest("parameter %q is required", name)
	}
	if len(v) > 256 {
		return "", badRequest("parameter %q is longer than 256 bytes", name)
	}
	return v, nil
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ---- peers ----

type peerJSON struct {
	ID           string   `json:"id"`
	Addrs        []string `json:"addrs"`
	Connected    bool     `json:"connected"`
	Ready        bool     `json:"ready"`
	Software     string   `json:"software,omitempty"`
	SinceTime    string   `json:"since_time,omitempty"`
	LastSyncTime string   `json:"last_sync_time,omitempty"`
	LastError    string   `json:"last_error,omitempty"`
	RecordsIn    uint64   `json:"records_in"`
	RecordsOut   uint64   `json:"records_out"`
	Refused      string   `json:"refused,omitempty"`
	Configured   bool     `json:"configured"`
	LagSeconds   *float64 `json:"lag_seconds,omitempty"`
}

type peersResult struct {
	Enabled bool       `json:"enabled"`
	PeerID  string     `json:"peer_id,omitempty"`
	Addrs   []string   `json:"addrs,omitempty"`
	SetSize int        `json:"set_size"`
	Peers   []peerJSON `json:"peers"`
	Stats   *netStats  `json:"stats,omitempty"`
}

type netStats struct {
	GossipAccepted uint64            `json:"gossip_accepted"`
	GossipIgnored  uint64            `json:"gossip_ignored"`
	Published      uint64            `json:"published"`
	Republished    uint64            `json:"republished"`
	PublishSkipped uint64            `json:"publish_skipped"`
	SyncSessions   uint64            `json:"sync_sessions"`
	SyncFailed     uint64            `json:"sync_failed"`
	SyncRounds     uint64            `json:"sync_rounds"`
	SyncRecordsIn  uint64            `json:"sync_records_in"`
	SyncRecordsOut uint64            `json:"sync_records_out"`
	SyncBytesIn    uint64            `json:"sync_bytes_in"`
	SyncBytesOut   uint64            `json:"sync_bytes_out"`
	Rejected       map[string]uint64 `json:"rejected"`
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	if _, err := readQuery(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	rep := s.cfg.Replicator
	if rep == nil {
		writeJSON(w, r, "", cacheNone, peersResult{Peers: []peerJSON{}})
		return
	}
	st := rep.Network()
	out := peersResult{Enabled: true, PeerID: st.PeerID, Addrs: st.Addrs, SetSize: st.SetSize, Peers: []peerJSON{}}
	for _, p := range st.Peers {
		pj := peerJSON{
			ID: p.ID, Addrs: nonNilSlice(p.Addrs), Connected: p.Connected, Ready: p.Ready, Software: p.Software,
			SinceTime: timeText(p.Since), LastSyncTime: timeText(p.LastSync), LastError: p.LastError,
			RecordsIn: p.RecordsIn, RecordsOut: p.RecordsOut, Refused: p.Refused, Configured: p.Configured,
		}
		if p.Ready {
			l := lagOf(p.LastSync, p.Since)
			pj.LagSeconds = &l
		}
		out.Peers = append(out.Peers, pj)
	}
	out.Stats = &netStats{
		GossipAccepted: st.GossipAccepted, GossipIgnored: st.GossipIgnored, Published: st.Published,
		Republished: st.Republished, PublishSkipped: st.PublishSkipped, SyncSessions: st.SyncSessions,
		SyncFailed: st.SyncFailed, SyncRounds: st.SyncRounds, SyncRecordsIn: st.SyncRecordsIn,
		SyncRecordsOut: st.SyncRecordsOut, SyncBytesIn: st.SyncBytesIn, SyncBytesOut: st.SyncBytesOut,
		Rejected: st.Rejected,
	}
	if out.Stats.Rejected == nil {
		out.Stats.Rejected = map[string]uint64{}
	}
	writeJSON(w, r, "", cacheNone, out)
}
