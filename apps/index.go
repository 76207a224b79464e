package apps

import (
	"context"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/pyvnode/pyvnode/ledger"
)

// Index keeps what the views need of the application records of a chain,
// in memory. It reads the chain itself (CatchUp), so it sees local records
// and replicated ones alike.
type Index struct {
	network string

	mu        sync.Mutex
	next      uint64 // chain height read up to
	ballots   map[string]*ballotIdx
	funds     map[string]*fundIdx
	resources []*ResourceRec
	resSorted bool
	// Application records read, per kind: votes by VoteRec.Kind, charity
	// by CharityRec.Kind + 8, resources by ResourceRec.Kind + 16.
	kinds [24]int
}

type ballotIdx struct {
	defs   []*VoteRec
	recs   []*VoteRec
	sorted bool
	// byVoter is built when a submission is first checked (a node needs
	// it; a tally does not).
	byVoter map[string][]*VoteRec
}

type fundIdx struct {
	recs   []*CharityRec
	sorted bool
}

// NewIndex makes an empty index for a network (the network name is part of
// what voters sign).
func NewIndex(network string) *Index {
	return &Index{network: network, ballots: map[string]*ballotIdx{}, funds: map[string]*fundIdx{}, resSorted: true}
}

// Network is the network the index was made for.
func (x *Index) Network() string { return x.network }

// Add takes one record; give each record once (CatchUp reads a chain, which
// holds each once). Records of other kinds are skipped.
func (x *Index) Add(id ledger.ID, kind string, created int64, payload []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addLocked(id, kind, created, payload)
}

func (x *Index) addLocked(id ledger.ID, kind string, created int64, payload []byte) {
	if !Known(kind) {
		return
	}
	x.insertLocked(decodeApp(id, kind, created, payload))
}

// decodeApp decodes an application record for the index (pure: callers
// run it on every core).
func decodeApp(id ledger.ID, kind string, created int64, payload []byte) any {
	switch {
	case strings.HasPrefix(kind, "vote."):
		return NewVoteRec(id, kind, created, payload)
	case strings.HasPrefix(kind, "charity."):
		return NewCharityRec(id, kind, created, payload)
	}
	return NewResourceRec(id, kind, created, payload)
}

func (x *Index) insertLocked(rec any) {
	switch r := rec.(type) {
	case *VoteRec:
		x.kinds[r.Kind]++
		b := x.ballots[r.Ballot]
		if b == nil {
			b = &ballotIdx{sorted: true}
			x.ballots[r.Ballot] = b
		}
		if r.Kind == vBallot {
			b.defs = append(b.defs, r)
			return
		}
		if n := len(b.recs); n > 0 && r.Key.Less(b.recs[n-1].Key) {
			b.sorted = false
		}
		b.recs = append(b.recs, r)
		if b.byVoter != nil {
			b.byVoter[r.Voter] = append(b.byVoter[r.Voter], r)
		}
	case *CharityRec:
		x.kinds[8+r.Kind]++
		f := x.funds[r.Fund]
		if f == nil {
			f = &fundIdx{sorted: true}
			x.funds[r.Fund] = f
		}
		if n := len(f.recs); n > 0 && r.Key.Less(f.recs[n-1].Key) {
			f.sorted = false
		}
		f.recs = append(f.recs, r)
	case *ResourceRec:
		x.kinds[16+r.Kind]++
		if n := len(x.resources); n > 0 && r.Key.Less(x.resources[n-1].Key) {
			x.resSorted = false
		}
		x.resources = append(x.resources, r)
	}
}

// CatchUp reads the records the chain gained since the last call. Reading
// the chain, decoding the application records (on every core) and indexing
// them (in chain order) run as a pipeline of batches.
func (x *Index) CatchUp(ctx context.Context, st *ledger.Store) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.next >= st.Count() {
		return nil
	}
	workers := runtime.GOMAXPROCS(0)
	work := make(chan *catchBatch, workers)
	ordered := make(chan *catchBatch, workers+1)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				b.decode()
			}
		}()
	}
	inserted := make(chan struct{})
	go func() {
		defer close(inserted)
		for b := range ordered {
			<-b.done
			for i := range b.items {
				x.insertLocked(b.items[i].rec)
			}
		}
	}()
	var cur *catchBatch
	send := func() {
		if cur != nil && len(cur.items) > 0 {
			work <- cur
			ordered <- cur
		}
		cur = nil
	}
	err := st.Scan(ctx, x.next, func(e *ledger.ScanEntry) error {
		if Known(e.Kind) {
			if cur == nil {
				cur = newCatchBatch()
			}
			if !cur.add(e) {
				send()
				cur = newCatchBatch()
				cur.add(e)
			}
		}
		x.next = e.Height + 1
		return nil
	})
	send()
	close(work)
	close(ordered)
	wg.Wait()
	<-inserted
	return err
}

// catchBatch is a batch of application records on its way into the index.
type catchBatch struct {
	items []catchItem
	arena []byte // the payloads, copied out of the store's buffer
	done  chan struct{}
}

type catchItem struct {
	id      ledger.ID
	kind    string
	created int64
	payload []byte
	rec     any
}

const catchBatchSize = 4096

func newCatchBatch() *catchBatch {
	return &catchBatch{items: make([]catchItem, 0, catchBatchSize), arena: make([]byte, 0, 512<<10), done: make(chan struct{})}
}

// add copies a record in; false when the batch is full.
func (b *catchBatch) add(e *ledger.ScanEntry) bool {
	if len(b.items) == catchBatchSize || len(b.items) > 0 && len(b.arena)+len(e.Payload) > cap(b.arena) {
		return false
	}
	start := len(b.arena)
	b.arena = append(b.arena, e.Payload...)
	b.items = append(b.items, catchItem{id: e.ID, kind: e.Kind, created: e.Created, payload: b.arena[start:len(b.arena):len(b.arena)]})
	return true
}

// decode decodes every record of the batch; vote records, the bulk of big
// chains, into one allocation.
func (b *catchBatch) decode() {
	defer close(b.done)
	nv := 0
	for i := range b.items {
		if strings.HasPrefix(b.items[i].kind, "vote.") {
			nv++
		}
	}
	slab := make([]VoteRec, nv)
	in := interner{}
	nv = 0
	for i := range b.items {
		it := &b.items[i]
		if strings.HasPrefix(it.kind, "vote.") {
			newVoteRecInto(&slab[nv], it.id, it.kind, it.created, it.payload, in)
			it.rec = &slab[nv]
			nv++
		} else {
			it.rec = decodeApp(it.id, it.kind, it.created, it.payload)
		}
		it.payload = nil
	}
	b.arena = nil
}

// Height is the chain height the index has read up to.
func (x *Index) Height() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.next
}

// Kinds counts the application records read, per kind.
func (x *Index) Kinds() map[string]int {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[string]int{}
	for k, name := range voteKindNames {
		out[name] = x.kinds[k]
	}
	for k, name := range charityKindNames {
		out[name] = x.kinds[8+k]
	}
	for k, name := range resourceKindNames {
		out[name] = x.kinds[16+k]
	}
	return out
}

// Tally computes a ballot's tally.
func (x *Index) Tally(ballot string) (*Tally, error) {
	x.mu.Lock()
	b := x.ballots[ballot]
	if b == nil {
		x.mu.Unlock()
		return nil, errNoBallot(ballot)
	}
	if !b.sorted {
		sortVotes(b.recs)
		b.sorted = true
	}
	defs, recs := slices.Clone(b.defs), slices.Clone(b.recs)
	x.mu.Unlock()
	return ComputeTally(x.network, ballot, defs, recs)
}

func errNoBallot(ballot string) error {
	return &notFound{"ballot", ballot}
}

type notFound struct{ what, name string }

func (e *notFound) Error() string { return "no " + e.what + " " + quote(e.name) + " on this chain" }
func (e *notFound) Unwrap() error { return ErrNotFound }

func quote(s string) string { return `"` + s + `"` }

// BallotInfo lists a ballot.
type BallotInfo struct {
	Ballot   string `json:"ballot" cbor:"ballot"`
	Question string `json:"question" cbor:"question"`
	Opens    int64  `json:"opens" cbor:"opens"`
	Closes   int64  `json:"closes" cbor:"closes"`
	Records  int    `json:"records" cbor:"records"`
}

// Ballots lists the ballots that have a valid definition, by id.
func (x *Index) Ballots() []BallotInfo {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := []BallotInfo{}
	for _, name := range slices.Sorted(maps.Keys(x.ballots)) {
		b := x.ballots[name]
		def := defineBallot(name, slices.Clone(b.defs), func(Violation) {})
		if def == nil {
			continue
		}
		out = append(out, BallotInfo{Ballot: name, Question: def.Def().Question, Opens: def.Def().Opens, Closes: def.Def().Closes, Records: len(b.defs) + len(b.recs)})
	}
	return out
}

// FundReport computes one fund's report.
func (x *Index) FundReport(fund string) (*FundReport, error) {
	x.mu.Lock()
	f := x.funds[fund]
	if f == nil {
		x.mu.Unlock()
		return nil, &notFound{"fund", fund}
	}
	if !f.sorted {
		sortCharity(f.recs)
		f.sorted = true
	}
	recs := slices.Clone(f.recs)
	x.mu.Unlock()
	return ComputeFundReport(fund, recs)
}

// Funds lists the fund ids that have records, sorted (records that name
// no fund are left out: they show in no report).
func (x *Index) Funds() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := []string{}
	for _, f := range slices.Sorted(maps.Keys(x.funds)) {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ResourceReport computes the resource report (all accounts, or one).
func (x *Index) ResourceReport(period, account string) (*ResourceReport, error) {
	x.mu.Lock()
	if !x.resSorted {
		sortResource(x.resources)
		x.resSorted = true
	}
	recs := slices.Clone(x.resources)
	x.mu.Unlock()
	return ComputeResourceReport(recs, period, account)
}

// snapshot helpers for submission checks

func (x *Index) voterRecords(ballot, voter string) (defs, recs []*VoteRec) {
	x.mu.Lock()
	defer x.mu.Unlock()
	b := x.ballots[ballot]
	if b == nil {
		return nil, nil
	}
	if b.byVoter == nil {
		b.byVoter = map[string][]*VoteRec{}
		for _, r := range b.recs {
			b.byVoter[r.Voter] = append(b.byVoter[r.Voter], r)
		}
	}
	return slices.Clone(b.defs), slices.Clone(b.byVoter[voter])
}

func (x *Index) fundRecords(fund string) []*CharityRec {
	x.mu.Lock()
	defer x.mu.Unlock()
	if f := x.funds[fund]; f != nil {
		return slices.Clone(f.recs)
	}
	return nil
}

func (x *Index) resourceRecords() []*ResourceRec {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.resources)
}
