// Package webbench measures the node's public read API under load, for
// 'pyvnode bench http' and the Go benchmark beside it: concurrent clients
// ask for pages of records by height and for inclusion proofs, every
// answer is checked (record ids against their bytes, the hash chain of
// links, proofs against the root the run started with), and the report
// gives requests per second and latency percentiles per endpoint.
//
// StartNode builds a node with a chain of a given size to run against.
package webbench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/web"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// ErrFailed is returned, with the report, when a request failed or an
// answer did not check out: the figures of such a run mean nothing.
var ErrFailed = errors.New("webbench: requests failed or answers were wrong")

// Defaults and bounds of a run.
const (
	DefaultClients  = 50
	DefaultDuration = 10 * time.Second
	DefaultPage     = 50
	DefaultKnownIDs = 20_000
	MaxClients      = 10_000
	MaxDuration     = time.Hour
	MaxRequests     = 100_000_000
)

// Config is what to run. The zero value of a field means its default.
type Config struct {
	// URL of the node's HTTP side, e.g. http://127.0.0.1:6680. Required.
	URL string
	// Clients ask at the same time, each waiting for its answer before it
	// sends the next request. Default 50.
	Clients int
	// Duration of the timed run. Default 10 s. Ignored when Requests is set.
	Duration time.Duration
	// Requests, when above 0, is how many timed requests to make in all.
	Requests int
	// Page is how many records each records request asks for. Default 50,
	// at most web.MaxPage.
	Page int
	// KnownIDs is how many record ids are read before the run, in pages
	// spread over the chain. Proofs are asked for these ids, and records
	// pages are compared with them. Default 20,000, or the whole chain
	// when it is smaller.
	KnownIDs int
	// Only, when Records or Proof, makes every request of that kind;
	// by default clients ask for records pages and proofs by turns.
	Only string
	// Revalidate follows every 200 answer with the same request carrying
	// the answer's ETag in If-None-Match, and expects 304 Not Modified.
	// Those requests are reported as endpoints of their own.
	Revalidate bool
	// Seed of the random heights and ids. Zero means 1.
	Seed uint64
	// CPUProfile, when set, receives a CPU profile of the timed part (of
	// the whole process: the node too when it runs in the same one).
	CPUProfile io.Writer
	// Logger for what the run does. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webbench: URL %q: want http://HOST:PORT", c.URL)
	}
	c.URL = strings.TrimSuffix(c.URL, "/")
	if c.Clients == 0 {
		c.Clients = DefaultClients
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Page == 0 {
		c.Page = DefaultPage
	}
	if c.KnownIDs == 0 {
		c.KnownIDs = DefaultKnownIDs
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.Clients < 1 || c.Clients > MaxClients:
		return fmt.Errorf("webbench: Clients %d: want 1 to %d", c.Clients, MaxClients)
	case c.Duration < 0 || c.Duration > MaxDuration:
		return fmt.Errorf("webbench: Duration %v: want up to %v", c.Duration, MaxDuration)
	case c.Requests < 0 || c.Requests > MaxRequests:
		return fmt.Errorf("webbench: Requests %d: want 0 to %d", c.Requests, MaxRequests)
	case c.Page < 1 || c.Page > web.MaxPage:
		return fmt.Errorf("webbench: Page %d: want 1 to %d", c.Page, web.MaxPage)
	case c.KnownIDs < 1:
		return fmt.Errorf("webbench: KnownIDs %d: want at least 1", c.KnownIDs)
	case c.Only != "" && c.Only != Records && c.Only != Proof:
		return fmt.Errorf("webbench: Only %q: want %q, %q or nothing", c.Only, Records, Proof)
	}
	return nil
}

// Endpoint names in the report.
const (
	Records           = "records"
	Proof             = "proof"
	RecordsRevalidate = "records 304"
	ProofRevalidate   = "proof 304"
)

// Report is what a run measured. Rates are over the timed part, from the
// moment every client had its connection until the last answer.
type Report struct {
	URL       string `json:"url"`
	Clients   int    `json:"clients"`
	Page      int    `json:"page"`
	ChainSize uint64 `json:"chain_size"` // the head when the run started; proofs are asked at this size
	KnownIDs  int    `json:"known_ids"`
	Cores     int    `json:"cores"` // GOMAXPROCS of the process running the clients
	// ProcessCores is the CPU time this process used in the timed part
	// over its length (Linux; 0 elsewhere). With the node in the same
	// process, near Cores means nothing else took the cores.
	ProcessCores float64 `json:"process_cores"`
	Seconds      float64 `json:"seconds"`
	Requests     int     `json:"requests"`
	PerSecond    float64 `json:"requests_per_s"`
	Errors       int     `json:"errors"`
	Wrong        int     `json:"wrong"`
	// Problems are the first few failures, for a person to read.
	Problems  []string   `json:"problems,omitempty"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint holds the figures of one kind of request.
type Endpoint struct {
	Name     string `json:"name"`
	Requests int    `json:"requests"`
	// Errors are requests that got no answer or an unexpected status.
	Errors int `json:"errors"`
	// Wrong are answers that failed the checks.
	Wrong     int     `json:"wrong"`
	PerSecond float64 `json:"requests_per_s"`
	// Latency from sending the request to having read the whole answer,
	// over every request that got an answer.
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	Maxms       float64 `json:"max_ms"`
	BytesPerSec float64 `json:"body_bytes_per_s"`
	MeanBytes   float64 `json:"mean_body_bytes"`
	// CheckUS is the mean time the client spent checking an answer, on the
	// same cores when client and node share a machine (not in the latency).
	CheckUS float64 `json:"check_us"`
}

// Endpoint returns the figures of the named endpoint, or nil.
func (r *Report) Endpoint(name string) *Endpoint {
	for i := range r.Endpoints {
		if r.Endpoints[i].Name == name {
			return &r.Endpoints[i]
		}
	}
	return nil
}

// endpoint indexes of a client's counters.
const (
	epRecords = iota
	epProof
	epRecords304
	epProof304
	nEndpoints
)

var endpointNames = [nEndpoints]string{Records, Proof, RecordsRevalidate, ProofRevalidate}

// maxProblems bounds the failures a report quotes.
const maxProblems = 5

// Run measures the API of the node at cfg.URL. It returns the report
// together with ErrFailed when any request failed or any answer was wrong.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, log: cfg.Logger.With("component", "webbench"), http: newHTTPClient(cfg.Clients)}
	defer r.http.CloseIdleConnections()
	if err := r.readHead(ctx); err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := r.gather(ctx); err != nil {
		return nil, err
	}
	r.log.Info("ids read", "known", len(r.ids), "chain_size", r.size, "took", time.Since(t0).Round(time.Millisecond).String())
	return r.run(ctx)
}

// newHTTPClient keeps a connection open for each of conns clients.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil, // a benchmark measures the node, not a proxy from $HTTP_PROXY
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true, // measure the bytes the node sends
		},
		Timeout: 60 * time.Second,
	}
}

type runner struct {
	cfg  Config
	log  *slog.Logger
	http *http.Client

	size uint64      // the head when the run started
	root []byte      // its Merkle root
	runs []knownSpan // ids and links read before the run, by height
	ids  []knownID   // the same, flat, for picking proofs

	problemMu sync.Mutex
	problems  []string
}

type knownSpan struct {
	from  uint64
	ids   []ledger.ID
	links []ledger.Hash
}

type knownID struct {
	height uint64
	id     ledger.ID
}

// lookup gives the id and link known at height h.
func (r *runner) lookup(h uint64) (ledger.ID, ledger.Hash, bool) {
	i, _ := slices.BinarySearchFunc(r.runs, h, func(s knownSpan, h uint64) int {
		switch {
		case s.from+uint64(len(s.ids)) <= h:
			return -1
		case s.from > h:
			return 1
		}
		return 0
	})
	if i < len(r.runs) && r.runs[i].from <= h && h < r.runs[i].from+uint64(len(r.runs[i].ids)) {
		s := r.runs[i]
		return s.ids[h-s.from], s.links[h-s.from], true
	}
	return ledger.ID{}, ledger.Hash{}, false
}

func (r *runner) problem(format string, args ...any) {
	r.problemMu.Lock()
	defer r.problemMu.Unlock()
	if len(r.problems) < maxProblems {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

type headAnswer struct {
	Size uint64 `json:"size"`
	Root string `json:"root"`
}

// readHead fixes the size the run asks proofs at, so every answer is of
// the immutable kind and checkable against one root.
func (r *runner) readHead(ctx context.Context) error {
	var buf bytes.Buffer
	a, err := r.get(ctx, r.cfg.URL+"/api/head", "", &buf)
	if err != nil {
		return fmt.Errorf("read the head: %w", err)
	}
	if a.status != http.StatusOK {
		return fmt.Errorf("read the head: status %d: %s", a.status, clip(buf.Bytes()))
	}
	var h headAnswer
	if err := json.Unmarshal(buf.Bytes(), &h); err != nil {
		return fmt.Errorf("read the head: %w", err)
	}
	if h.Size == 0 {
		return errors.New("the node's chain is empty: nothing to read")
	}
	root, err := hex.DecodeString(h.Root)
	if err != nil || len(root) != sha256.Size {
		return fmt.Errorf("read the head: root %q is not 32 bytes of hex", h.Root)
	}
	r.size, r.root = h.Size, root
	return nil
}

// gather reads the known ids: the whole chain when it is small enough,
// else pages spread evenly over it, read by a few clients at once. The
// pages are checked as in the run.
func (r *runner) gather(ctx context.Context) error {
	want := min(uint64(r.cfg.KnownIDs), r.size)
	n := (want + web.MaxPage - 1) / web.MaxPage
	// The pages are checked before anything is known: r.runs is set once
	// they are all read.
	spans := make([]knownSpan, n)
	for k := range n {
		spans[k].from = r.size * k / n
	}
	var next atomic.Int64
	errs := make([]error, min(8, r.cfg.Clients, int(n)))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for {
				k := uint64(next.Add(1) - 1)
				if k >= n || ctx.Err() != nil {
					errs[w] = ctx.Err()
					return
				}
				end := r.size
				if k+1 < n {
					end = spans[k+1].from
				}
				end = min(end, spans[k].from+web.MaxPage)
				if errs[w] = r.gatherSpan(ctx, &spans[k], end, &buf); errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("read record ids: %w", err)
	}
	r.runs = spans
	for _, s := range spans {
		for i, id := range s.ids {
			r.ids = append(r.ids, knownID{s.from + uint64(i), id})
		}
	}
	return nil
}

func (r *runner) gatherSpan(ctx context.Context, s *knownSpan, end uint64, buf *bytes.Buffer) error {
	for h := s.from; h < end; {
		count := end - h
		a, err := r.get(ctx, recordsURL(r.cfg.URL, h, count), "", buf)
		if err != nil {
			return err
		}
		if a.status != http.StatusOK {
			return fmt.Errorf("records from %d: status %d: %s", h, a.status, clip(buf.Bytes()))
		}
		page, err := r.checkPage(h, count, buf.Bytes())
		if err != nil {
			return fmt.Errorf("records from %d: %w", h, err)
		}
		for _, rec := range page.Records {
			s.ids = append(s.ids, rec.ID)
			s.links = append(s.links, rec.Link)
		}
		h += uint64(len(page.Records))
	}
	return nil
}

func recordsURL(base string, from, count uint64) string {
	return base + "/api/records?from=" + strconv.FormatUint(from, 10) + "&count=" + strconv.FormatUint(count, 10)
}

func proofURL(base string, id ledger.ID, size uint64) string {
	return base + "/api/proof/inclusion?id=" + id.String() + "&size=" + strconv.FormatUint(size, 10)
}

// answer is what a request got, besides its body.
type answer struct {
	status int
	etag   string
	took   time.Duration
}

// get makes one request and reads the whole body into buf; took runs from
// before the request is sent until the body is read.
func (r *runner) get(ctx context.Context, u, ifNoneMatch string, buf *bytes.Buffer) (answer, error) {
	buf.Reset()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, err
	}
	if ifNoneMatch != "" {
		req.Header.Set("If-None-Match", ifNoneMatch)
	}
	start := time.Now()
	resp, err := r.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	_, err = buf.ReadFrom(resp.Body)
	took := time.Since(start)
	resp.Body.Close()
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, etag: resp.Header.Get("ETag"), took: took}, nil
}

type pageAnswer struct {
	Records []recordAnswer `json:"records"`
	Next    int64          `json:"next"`
	Size    uint64         `json:"size"`
}

// recordAnswer is the part of a record the checks read; the rest is
// decoded past as any client would.
type recordAnswer struct {
	Height uint64          `json:"height"`
	ID     ledger.ID       `json:"id"`
	Link   ledger.Hash     `json:"link"`
	Record ledger.HexBytes `json:"record"`
}

// checkPage checks a records answer for heights from..from+count: the
// heights run on from from, each id is the hash of the record's bytes,
// each link follows from the one before, and ids and links read before
// the run agree.
func (r *runner) checkPage(from, count uint64, body []byte) (*pageAnswer, error) {
	var p pageAnswer
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	n := uint64(len(p.Records))
	want := min(count, r.size-min(from, r.size))
	switch {
	case p.Size < r.size:
		return nil, fmt.Errorf("size %d, below the %d the run started at", p.Size, r.size)
	case n > count:
		return nil, fmt.Errorf("%d records, asked for %d", n, count)
	case n < want && (n == 0 || len(body) < web.MaxPageBytes/2):
		// Only the 4 MiB bound on a page's JSON may cut it short.
		return nil, fmt.Errorf("%d records in %d bytes, want %d", n, len(body), want)
	case p.Next != int64(from+n):
		return nil, fmt.Errorf("next %d, want %d", p.Next, from+n)
	}
	for i, rec := range p.Records {
		h := from + uint64(i)
		if rec.Height != h {
			return nil, fmt.Errorf("record %d of the page has height %d, want %d", i, rec.Height, h)
		}
		if ledger.ID(sha256.Sum256(rec.Record)) != rec.ID {
			return nil, fmt.Errorf("height %d: id %s is not the hash of the record's bytes", h, rec.ID)
		}
		var prev ledger.Hash
		havePrev := false
		if i > 0 {
			prev, havePrev = p.Records[i-1].Link, true
		} else if h > 0 {
			_, prev, havePrev = r.lookup(h - 1)
		}
		if havePrev && ledger.NextLink(prev, rec.ID) != rec.Link {
			return nil, fmt.Errorf("height %d: link %s does not follow from the one before", h, rec.Link)
		}
		if id, link, ok := r.lookup(h); ok && (id != rec.ID || link != rec.Link) {
			return nil, fmt.Errorf("height %d: id %s, but %s before the run", h, rec.ID, id)
		}
	}
	return &p, nil
}

type proofAnswer struct {
	ID       string   `json:"id"`
	Index    uint64   `json:"index"`
	Size     uint64   `json:"size"`
	Root     string   `json:"root"`
	LeafHash string   `json:"leaf_hash"`
	Proof    []string `json:"proof"`
}

// checkProof checks an inclusion proof answer for k against the root the
// run started with, with an RFC 6962 implementation other than the node's.
func (r *runner) checkProof(k knownID, body []byte) error {
	var p proofAnswer
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(k.id[:])
	switch {
	case p.ID != k.id.String():
		return fmt.Errorf("proof for id %s, asked for %s", p.ID, k.id)
	case p.Index != k.height || p.Size != r.size:
		return fmt.Errorf("proof of index %d in size %d, want %d in %d", p.Index, p.Size, k.height, r.size)
	case p.Root != hex.EncodeToString(r.root):
		return fmt.Errorf("root %s, want %x", p.Root, r.root)
	case p.LeafHash != hex.EncodeToString(leaf):
		return fmt.Errorf("leaf hash %s, want %x", p.LeafHash, leaf)
	}
	path := make([][]byte, len(p.Proof))
	for i, s := range p.Proof {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("proof node %d: %q is not 32 bytes of hex", i, s)
		}
		path[i] = b
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, p.Size, leaf, path, r.root); err != nil {
		return fmt.Errorf("proof of %s at %d does not verify: %w", k.id, k.height, err)
	}
	return nil
}

// tally is one client's count for one endpoint.
type tally struct {
	requests, errors, wrong int
	bytes                   int64
	check                   time.Duration
	lat                     []time.Duration
}

type client struct {
	r     *runner
	rng   *rand.Rand
	buf   bytes.Buffer
	tally [nEndpoints]tally
}

// run starts the clients, lets each make one untimed request of each
// kind (so connections are open), then times the rest.
func (r *runner) run(ctx context.Context) (*Report, error) {
	clients := make([]*client, r.cfg.Clients)
	for i := range clients {
		clients[i] = &client{r: r, rng: rand.New(rand.NewPCG(r.cfg.Seed, uint64(i)))}
	}
	var (
		ready, done sync.WaitGroup
		start       = make(chan struct{})
		startTime   time.Time
		end         time.Time
		abort       bool
		tickets     atomic.Int64
		warm        = make([][nEndpoints]tally, len(clients))
	)
	for i, c := range clients {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			c.step(ctx, 0, &warm[i])
			if r.cfg.Only == "" {
				c.step(ctx, 1, &warm[i])
			}
			ready.Done()
			<-start
			// Clients start on different kinds, so that even a short run
			// asks for both.
			for n := i; ctx.Err() == nil && !abort; n++ {
				if r.cfg.Requests > 0 {
					if tickets.Add(1) > int64(r.cfg.Requests) {
						return
					}
				} else if time.Now().After(end) {
					return
				}
				c.step(ctx, n, &c.tally)
			}
		}()
	}
	ready.Wait()
	for _, w := range warm {
		for _, t := range w {
			abort = abort || t.errors > 0 || t.wrong > 0
		}
	}
	if r.cfg.CPUProfile != nil && !abort {
		if err := pprof.StartCPUProfile(r.cfg.CPUProfile); err != nil {
			abort = true
			r.problem("CPU profile: %v", err)
		}
	}
	cpu0 := processCPU()
	startTime = time.Now()
	end = startTime.Add(r.cfg.Duration)
	close(start)
	done.Wait()
	el := time.Since(startTime)
	cpu := processCPU() - cpu0
	if r.cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if abort {
		return nil, fmt.Errorf("%w: before the timed run: %s", ErrFailed, strings.Join(r.problems, "; "))
	}
	rep, err := r.report(clients, el)
	if rep != nil && cpu0 > 0 {
		rep.ProcessCores = cpu.Seconds() / el.Seconds()
	}
	return rep, err
}

// processCPU is the CPU time this process has used, from /proc (Linux);
// 0 elsewhere.
func processCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces): state
	// is the first, utime and stime the 12th and 13th, in clock ticks.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(u+s) * tick
}

// step makes request i of a client: records pages and proofs by turns
// (or only one of them), each followed by its revalidation when asked.
func (c *client) step(ctx context.Context, i int, t *[nEndpoints]tally) {
	r := c.r
	if r.cfg.Only == Records || (r.cfg.Only == "" && i%2 == 0) {
		from := uint64(0)
		if r.size > uint64(r.cfg.Page) {
			from = c.rng.Uint64N(r.size - uint64(r.cfg.Page) + 1)
		}
		count := uint64(r.cfg.Page)
		c.fetch(ctx, &t[epRecords], &t[epRecords304], recordsURL(r.cfg.URL, from, count), func(b []byte) error {
			_, err := r.checkPage(from, count, b)
			return err
		})
		return
	}
	k := r.ids[c.rng.IntN(len(r.ids))]
	c.fetch(ctx, &t[epProof], &t[epProof304], proofURL(r.cfg.URL, k.id, r.size), func(b []byte) error {
		return r.checkProof(k, b)
	})
}

// fetch times one request, then checks its answer untimed, and
// revalidates it when the run asks for that.
func (c *client) fetch(ctx context.Context, t, t304 *tally, u string, check func([]byte) error) {
	r := c.r
	a, err := r.get(ctx, u, "", &c.buf)
	t.requests++
	if err != nil {
		if ctx.Err() == nil {
			t.errors++
			r.problem("GET %s: %v", u, err)
		}
		return
	}
	t.lat = append(t.lat, a.took)
	t.bytes += int64(c.buf.Len())
	if a.status != http.StatusOK {
		t.errors++
		r.problem("GET %s: status %d: %s", u, a.status, clip(c.buf.Bytes()))
		return
	}
	t0 := time.Now()
	err = check(c.buf.Bytes())
	t.check += time.Since(t0)
	if err != nil {
		t.wrong++
		r.problem("GET %s: wrong answer: %v", u, err)
		return
	}
	if !r.cfg.Revalidate {
		return
	}
	if a.etag == "" {
		t304.requests++
		t304.wrong++
		r.problem("GET %s: no ETag to revalidate with", u)
		return
	}
	b, err := r.get(ctx, u, a.etag, &c.buf)
	t304.requests++
	if err != nil {
		if ctx.Err() == nil {
			t304.errors++
			r.problem("GET %s (If-None-Match): %v", u, err)
		}
		return
	}
	t304.lat = append(t304.lat, b.took)
	t304.bytes += int64(c.buf.Len())
	switch {
	case b.status != http.StatusNotModified:
		t304.errors++
		r.problem("GET %s with If-None-Match %s: status %d, want 304", u, a.etag, b.status)
	case b.etag != a.etag || c.buf.Len() != 0:
		t304.wrong++
		r.problem("GET %s with If-None-Match %s: 304 with ETag %q and %d bytes of body", u, a.etag, b.etag, c.buf.Len())
	}
}

func (r *runner) report(clients []*client, el time.Duration) (*Report, error) {
	rep := &Report{
		URL: r.cfg.URL, Clients: r.cfg.Clients, Page: r.cfg.Page, ChainSize: r.size, KnownIDs: len(r.ids),
		Cores: runtime.GOMAXPROCS(0), Seconds: el.Seconds(),
	}
	secs := el.Seconds()
	for e := range nEndpoints {
		var all tally
		for _, c := range clients {
			t := &c.tally[e]
			all.requests += t.requests
			all.errors += t.errors
			all.wrong += t.wrong
			all.bytes += t.bytes
			all.check += t.check
			all.lat = append(all.lat, t.lat...)
		}
		if all.requests == 0 {
			continue
		}
		slices.Sort(all.lat)
		ep := Endpoint{
			Name: endpointNames[e], Requests: all.requests, Errors: all.errors, Wrong: all.wrong,
			PerSecond: float64(all.requests) / secs, BytesPerSec: float64(all.bytes) / secs,
			P50ms: ms(percentile(all.lat, 50)), P90ms: ms(percentile(all.lat, 90)),
			P99ms: ms(percentile(all.lat, 99)), Maxms: ms(percentile(all.lat, 100)),
		}
		if n := len(all.lat); n > 0 {
			ep.MeanBytes = float64(all.bytes) / float64(n)
		}
		if checked := all.requests - all.errors; checked > 0 {
			ep.CheckUS = float64(all.check.Microseconds()) / float64(checked)
		}
		rep.Endpoints = append(rep.Endpoints, ep)
		rep.Requests += all.requests
		rep.Errors += all.errors
		rep.Wrong += all.wrong
	}
	rep.PerSecond = float64(rep.Requests) / secs
	rep.Problems = r.problems
	if rep.Requests == 0 {
		return rep, errors.New("webbench: no request was made in the time given")
	}
	if rep.Errors > 0 || rep.Wrong > 0 {
		return rep, fmt.Errorf("%w: %d errors, %d wrong answers; first: %s", ErrFailed, rep.Errors, rep.Wrong, strings.Join(rep.Problems[:min(1, len(rep.Problems))], ""))
	}
	return rep, nil
}

// percentile is the nearest-rank percentile p of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// ---- a node to run against ----

// NodeConfig describes the node StartNode builds.
type NodeConfig struct {
	// Dir is a new data directory; "" means a temporary one, removed by
	// Close.
	Dir string
	// Records is the chain's size. Default 100,000.
	Records int
	// Logger is the node's. Default: one that discards everything, so a
	// benchmark measures the API rather than the log.
	Logger *slog.Logger
	// Progress is told how many records are built.
	Progress func(done, total int)
}

// Node is a node started for a run, with its HTTP side on a loopback port.
type Node struct {
	*node.Node
	dir    string
	remove bool
}

// URL is the base URL of the node's HTTP side.
func (n *Node) URL() string { return "http://" + n.HTTPAddr() }

// Close stops the node and removes its data directory when StartNode made
// a temporary one.
func (n *Node) Close() error {
	err := n.Node.Close()
	if n.remove {
		err = errors.Join(err, os.RemoveAll(n.dir))
	}
	return err
}

// StartNode builds a chain of cfg.Records records signed by the node (on
// every core, appended in batches as an import does, not as one durable
// put each), then starts the node on it with the client protocol and HTTP
// on loopback ports and replication off, and waits until the
// applications' index has read the chain, so that reading it does not
// share the cores with a run.
func StartNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if cfg.Records == 0 {
		cfg.Records = 100_000
	}
	if cfg.Records < 1 {
		return nil, fmt.Errorf("webbench: Records %d: want at least 1", cfg.Records)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = func(int, int) {}
	}
	dir, remove := cfg.Dir, false
	if dir == "" {
		tmp, err := os.MkdirTemp("", "pyvnode-bench-http-")
		if err != nil {
			return nil, err
		}
		dir, remove = tmp, true
	}
	n, err := startNode(ctx, dir, cfg)
	if err != nil {
		if remove {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	return &Node{Node: n, dir: dir, remove: remove}, nil
}

func startNode(ctx context.Context, dir string, cfg NodeConfig) (*node.Node, error) {
	if err := build(ctx, dir, cfg); err != nil {
		return nil, fmt.Errorf("build the chain: %w", err)
	}
	n, err := node.Start(ctx, node.Config{
		DataDir: dir, Listen: "127.0.0.1:0", P2PListen: []string{"-"}, HTTP: "127.0.0.1:0",
		Dev: true, Out: io.Discard, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	if err := waitAppsReady(ctx, "http://"+n.HTTPAddr()); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// build makes the data directory and appends the records.
func build(ctx context.Context, dir string, cfg NodeConfig) error {
	g := ledger.NewGenesis("bench-http")
	g.PowBits = 0
	id, _, _, err := node.Init(dir, node.InitOptions{Genesis: g})
	if err != nil {
		return err
	}
	d, err := node.OpenData(dir, cfg.Logger)
	if err != nil {
		return err
	}
	defer d.Close()
	// A fixed start, one microsecond apart: the same chain every time but
	// for the node's key.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	const chunk = 50_000
	for lo := 0; lo < cfg.Records; lo += chunk {
		recs, err := generate(id, g, base, lo, min(chunk, cfg.Records-lo))
		if err != nil {
			return err
		}
		items := make([]ledger.Pending, len(recs))
		for i, rec := range recs {
			items[i] = ledger.Pending{Record: rec, Source: "import"}
		}
		// The next batch is staged while the previous one syncs.
		var prev *ledger.Ticket
		for b := 0; b < len(items); b += 4096 {
			t, err := d.Store.Submit(ctx, items[b:min(b+4096, len(items))])
			if err != nil {
				return err
			}
			if prev != nil {
				if err := firstErr(prev.Wait()); err != nil {
					return err
				}
			}
			prev = t
		}
		if err := firstErr(prev.Wait()); err != nil {
			return err
		}
		cfg.Progress(lo+len(recs), cfg.Records)
	}
	return nil
}

// generate signs n records from record lo on, on every core. Their
// payloads are a little text and numbers, about the size of a vote's.
func generate(id *ledger.Identity, g *ledger.Genesis, base int64, lo, n int) ([]*ledger.SignedRecord, error) {
	out := make([]*ledger.SignedRecord, n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += len(errs) {
				seq := lo + i
				p, err := ledger.EncodePayload(map[string]any{
					"seq": int64(seq), "text": "benchmark record " + strconv.Itoa(seq), "amount": int64(seq % 1000),
				})
				if err != nil {
					errs[w] = err
					return
				}
				rec := &ledger.Record{Version: ledger.RecordVersion, Kind: "bench.note", Payload: p,
					Origin: id.Public(), Author: "bench", Created: base + int64(seq)*1000}
				if out[i], errs[w] = ledger.Sign(rec, id.Key, g.Network); errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func firstErr(res []ledger.Result) error {
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// waitAppsReady polls /api/info until the applications' index has read
// the chain.
func waitAppsReady(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	hc := newHTTPClient(1)
	defer hc.CloseIdleConnections()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/info", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			var info struct {
				AppsReady bool `json:"apps_ready"`
			}
			err = json.NewDecoder(resp.Body).Decode(&info)
			resp.Body.Close()
			if err == nil && info.AppsReady {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the applications' index: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
