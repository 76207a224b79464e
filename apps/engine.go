package apps

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/ledger"
)

// PutFunc makes, signs and durably appends a record created at the given
// time (the node's put).
type PutFunc func(ctx context.Context, kind string, payload cbor.RawMessage, author string, created time.Time) (*ledger.SignedRecord, ledger.Entry, error)

// Engine checks submissions against the rules and appends them. It keeps
// an Index of the chain up to date.
type Engine struct {
	idx   *Index
	store *ledger.Store
	put   PutFunc
	now   func() time.Time

	// Submissions touching the same voter, fund or the resource accounts
	// are checked and appended one at a time, so two concurrent ones
	// cannot both pass a check that only one of them may pass.
	locks [64]sync.Mutex

	// views bounds the tallies and reports computed at once, whoever
	// asks (client protocol or HTTP): each copies its records and builds
	// its own state (about 90 MB and most of a core for a ballot of a
	// million records), and anyone may ask for one.
	views chan struct{}
}

// MaxViews is how many tallies and reports an engine computes at once.
const MaxViews = 2

// NewEngine makes an engine on a chain.
func NewEngine(network string, st *ledger.Store, put PutFunc) *Engine {
	return &Engine{idx: NewIndex(network), store: st, put: put, now: time.Now, views: make(chan struct{}, MaxViews)}
}

// AcquireView waits, while ctx lasts, for one of the MaxViews slots a
// tally or report is computed in; call release when it is done.
func (e *Engine) AcquireView(ctx context.Context) (release func(), err error) {
	select {
	case e.views <- struct{}{}:
		return func() { <-e.views }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Index returns the engine's index, caught up with the chain.
func (e *Engine) Index(ctx context.Context) (*Index, error) {
	if err := e.idx.CatchUp(ctx, e.store); err != nil {
		return nil, err
	}
	return e.idx, nil
}

func (e *Engine) lock(key string) func() {
	h := fnv.New32a()
	h.Write([]byte(key))
	m := &e.locks[h.Sum32()%uint32(len(e.locks))]
	m.Lock()
	return m.Unlock
}

// candidateID stands in for the id of a record not yet signed: it sorts
// after every real record created at the same instant.
var candidateID = func() ledger.ID {
	var id ledger.ID
	for i := range id {
		id[i] = 0xff
	}
	return id
}()

// Prepare fills in what the node allocates (a registration's electronic
// id) and checks the payload's schema. It refuses reserved kinds this node
// does not make from client requests.
func Prepare(kind string, payload cbor.RawMessage) (cbor.RawMessage, error) {
	if !Reserved(kind) {
		return payload, nil
	}
	if !Known(kind) {
		if strings.HasPrefix(kind, "file.") {
			return nil, fmt.Errorf("%w: %s records are made by the node's file commands", ErrInvalid, kind)
		}
		return nil, CheckPayload(kind, payload)
	}
	if kind == KindRegister {
		m, err := ledger.DecodePayload(payload)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if _, ok := m["eid"]; ok {
			return nil, &RefusedError{Violation{Kind: kind, Rule: RuleEIDAllocated, Detail: "the node allocates the electronic id; leave out \"eid\""}}
		}
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		m["eid"] = hex.EncodeToString(b[:])
		if payload, err = ledger.EncodePayload(m); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if err := CheckPayload(kind, payload); err != nil {
		return nil, err
	}
	return payload, nil
}

// Submit checks a record against the rules and, when it passes, appends
// it. Generic kinds are appended as they are. The caller has checked that
// the author may submit the kind (RequiredRole).
func (e *Engine) Submit(ctx context.Context, kind string, payload cbor.RawMessage, author string) (*ledger.SignedRecord, ledger.Entry, error) {
	payload, err := Prepare(kind, payload)
	if err != nil {
		return nil, ledger.Entry{}, err
	}
	if !Reserved(kind) {
		return e.put(ctx, kind, payload, author, e.now())
	}
	var key string
	switch {
	case strings.HasPrefix(kind, "vote."):
		r, _ := decodeVote(kind, payload)
		key = "vote/" + r.Ballot + "/" + r.Voter
	case strings.HasPrefix(kind, "charity."):
		r, _ := decodeCharity(kind, payload)
		key = "charity/" + r.Fund
	default:
		key = "resource"
	}
	unlock := e.lock(key)
	defer unlock()
	if err := e.idx.CatchUp(ctx, e.store); err != nil {
		return nil, ledger.Entry{}, err
	}
	created, err := e.check(kind, payload, e.now())
	if err != nil {
		return nil, ledger.Entry{}, err
	}
	rec, ent, err := e.put(ctx, kind, payload, author, created)
	if err != nil {
		return nil, ledger.Entry{}, err
	}
	// Read it back now, so the next submission under this lock sees it
	// even before anything else catches the index up.
	if err := e.idx.CatchUp(ctx, e.store); err != nil {
		return nil, ledger.Entry{}, err
	}
	return rec, ent, nil
}

// MaxAheadOfClock bounds how far past its own clock the engine dates a
// record to put it after the records it was checked against (records of
// peers whose clocks run ahead, as replication accepts up to 10 minutes).
const MaxAheadOfClock = 10 * time.Minute

// check tests a candidate record against the index and returns the
// creation time to give it: its clock, or just after the latest record the
// check read when that is later. A record placed last in canonical order
// cannot change how any earlier record fares in the replay, so accepting
// it never turns a record that counted into a violation, and its id
// (unknown until it is signed) cannot change its place.
func (e *Engine) check(kind string, payload []byte, now time.Time) (time.Time, error) {
	created := now.UnixNano()
	after := func(keys ...Key) {
		for _, k := range keys {
			if k.Created >= created {
				created = k.Created + 1
			}
		}
	}
	var err error
	switch {
	case strings.HasPrefix(kind, "vote."):
		probe := NewVoteRec(candidateID, kind, created, payload)
		defs, recs := e.idx.voterRecords(probe.Ballot, probe.Voter)
		for _, r := range recs {
			after(r.Key)
		}
		for _, r := range defs {
			after(r.Key)
		}
		cand := NewVoteRec(candidateID, kind, created, payload)
		err = checkVoteSubmission(e.idx.network, defs, recs, cand)
	case strings.HasPrefix(kind, "charity."):
		probe := NewCharityRec(candidateID, kind, created, payload)
		recs := e.idx.fundRecords(probe.Fund)
		for _, r := range recs {
			after(r.Key)
		}
		err = checkCharitySubmission(recs, NewCharityRec(candidateID, kind, created, payload))
	default:
		recs := e.idx.resourceRecords()
		for _, r := range recs {
			after(r.Key)
		}
		err = checkResourceSubmission(recs, NewResourceRec(candidateID, kind, created, payload))
	}
	if err == nil && created > now.Add(MaxAheadOfClock).UnixNano() {
		return time.Time{}, fmt.Errorf("%w: a record this one must follow is dated %s, more than %s ahead of this node's clock; check the clocks",
			ErrRefused, fmtNanos(created-1), MaxAheadOfClock)
	}
	return time.Unix(0, created), err
}
