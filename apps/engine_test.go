package apps_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
)

// engineEnv is an Engine over a real store in a temporary directory.
type engineEnv struct {
	t     *testing.T
	ctx   context.Context
	g     *ledger.Genesis
	st    *ledger.Store
	ident *ledger.Identity
	eng   *apps.Engine
	mu    sync.Mutex
	puts  int // records the PutFunc appended
}

func newEngineEnv(t *testing.T) *engineEnv {
	t.Helper()
	g := ledger.NewGenesis(testNet)
	g.PowBits = 0
	st, err := ledger.Open(ledger.Options{Dir: t.TempDir(), Genesis: g, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 42
	e := &engineEnv{t: t, ctx: context.Background(), g: g, st: st, ident: &ledger.Identity{Key: ed25519.NewKeyFromSeed(seed)}}
	put := func(ctx context.Context, kind string, payload cbor.RawMessage, author string, created time.Time) (*ledger.SignedRecord, ledger.Entry, error) {
		rec, err := ledger.NewSignedRecord(ctx, e.ident, g, kind, payload, author, created)
		if err != nil {
			return nil, ledger.Entry{}, err
		}
		ent, err := st.Append(ctx, rec, 0, "local")
		if err != nil {
			return nil, ledger.Entry{}, err
		}
		e.mu.Lock()
		e.puts++
		e.mu.Unlock()
		return rec, ent, nil
	}
	e.eng = apps.NewEngine(testNet, st, put)
	return e
}

func (e *engineEnv) submit(kind string, p map[string]any) (*ledger.SignedRecord, error) {
	e.t.Helper()
	rec, _, err := e.eng.Submit(e.ctx, kind, enc(e.t, p), "alice")
	return rec, err
}

func (e *engineEnv) mustSubmit(kind string, p map[string]any) *ledger.SignedRecord {
	e.t.Helper()
	rec, err := e.submit(kind, p)
	if err != nil {
		e.t.Fatalf("Submit %s %v: %v", kind, p, err)
	}
	if rec == nil || rec.Kind != kind {
		e.t.Fatalf("Submit %s returned %v", kind, rec)
	}
	return rec
}

// refused checks that a submission is refused for rule and appends nothing.
func (e *engineEnv) refused(kind string, p map[string]any, rule string) *apps.RefusedError {
	e.t.Helper()
	before := e.st.Count()
	_, err := e.submit(kind, p)
	if !errors.Is(err, apps.ErrRefused) {
		e.t.Fatalf("Submit %s %v = %v, want ErrRefused (%s)", kind, p, err, rule)
	}
	var re *apps.RefusedError
	if !errors.As(err, &re) {
		e.t.Fatalf("error %T is not a *RefusedError", err)
	}
	if re.V.Rule != rule {
		e.t.Errorf("Submit %s refused for %q (%s), want %q", kind, re.V.Rule, re.V.Detail, rule)
	}
	if re.V.Kind != kind {
		e.t.Errorf("violation kind %q, want %q", re.V.Kind, kind)
	}
	if got := e.st.Count(); got != before {
		e.t.Errorf("a refused submission appended: count %d -> %d", before, got)
	}
	return re
}

// invalid checks that a submission is refused as ErrInvalid and appends nothing.
func (e *engineEnv) invalid(kind string, raw []byte) {
	e.t.Helper()
	before := e.st.Count()
	_, _, err := e.eng.Submit(e.ctx, kind, raw, "alice")
	if !errors.Is(err, apps.ErrInvalid) || errors.Is(err, apps.ErrRefused) {
		e.t.Errorf("Submit %s = %v, want ErrInvalid", kind, err)
	}
	if got := e.st.Count(); got != before {
		e.t.Errorf("an invalid submission appended: count %d -> %d", before, got)
	}
}

func (e *engineEnv) index() *apps.Index {
	e.t.Helper()
	x, err := e.eng.Index(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

var eidRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// liveBallot is open from a minute ago for an hour.
func liveBallot(ballot string) map[string]any {
	now := time.Now().Unix()
	return map[string]any{"ballot": ballot, "question": "Yes or no?", "choices": []any{"yes", "no"}, "opens": now - 60, "closes": now + 3600}
}

func eidOf(t *testing.T, rec *ledger.SignedRecord) string {
	t.Helper()
	m, err := ledger.DecodePayload(rec.Payload)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := m["eid"].(string)
	if !eidRE.MatchString(s) {
		t.Fatalf("eid %q is not 32 lowercase hex digits", s)
	}
	return s
}

func TestEngineGenericAndReservedKinds(t *testing.T) {
	e := newEngineEnv(t)
	rec := e.mustSubmit("note.text", map[string]any{"text": "hello", "anything": int64(5)})
	if e.st.Count() != 1 || rec.Author != "alice" {
		t.Errorf("count %d author %q", e.st.Count(), rec.Author)
	}
	got, _, err := e.st.Get(rec.ID)
	if err != nil || string(got.Payload) != string(rec.Payload) {
		t.Errorf("stored record: %v", err)
	}
	e.invalid("vote.recount", enc(t, map[string]any{"ballot": "b"}))
	e.invalid("charity.refund", enc(t, map[string]any{"fund": "f"}))
	e.invalid("resource.burn", enc(t, map[string]any{"account": "a"}))
	e.invalid(apps.KindFilePublish, enc(t, map[string]any{"name": "x"}))
	e.invalid("file.other", enc(t, map[string]any{"name": "x"}))
	// Known kinds with payloads that do not fit: ErrInvalid, not refused.
	e.invalid(apps.KindBallot, enc(t, map[string]any{"ballot": "b", "question": "Q", "choices": []any{"one"}, "closes": int64(10)}))
	e.invalid(apps.KindCast, enc(t, map[string]any{"ballot": "b", "voter": "v", "eid": "xyz", "choice": "yes"}))
	e.invalid(apps.KindFund, enc(t, map[string]any{"fund": "f", "name": "F", "currency": "euro"}))
	e.invalid(apps.KindAccount, enc(t, map[string]any{"account": "a", "unit": "u", "colour": "red"}))
	if e.puts != 1 {
		t.Errorf("PutFunc called %d times, want 1", e.puts)
	}
}

func TestPrepare(t *testing.T) {
	raw := enc(t, map[string]any{"ballot": "b", "voter": "alice"})
	p1, err := apps.Prepare(apps.KindRegister, raw)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := apps.Prepare(apps.KindRegister, raw)
	m1, _ := ledger.DecodePayload(p1)
	m2, _ := ledger.DecodePayload(p2)
	if !eidRE.MatchString(m1["eid"].(string)) || m1["eid"] == m2["eid"] || m1["voter"] != "alice" || m1["ballot"] != "b" {
		t.Errorf("prepared payloads %v, %v", m1, m2)
	}
	if err := ledger.CheckPayload(p1); err != nil {
		t.Errorf("prepared payload is not canonical: %v", err)
	}
	_, err = apps.Prepare(apps.KindRegister, enc(t, map[string]any{"ballot": "b", "voter": "alice", "eid": eid(1)}))
	var re *apps.RefusedError
	if !errors.As(err, &re) || re.V.Rule != apps.RuleEIDAllocated || !errors.Is(err, apps.ErrRefused) {
		t.Errorf("Prepare with an eid = %v, want refused %s", err, apps.RuleEIDAllocated)
	}
	// Other kinds pass through unchanged.
	cast := enc(t, map[string]any{"ballot": "b", "voter": "alice", "eid": eid(1), "choice": "yes"})
	if got, err := apps.Prepare(apps.KindCast, cast); err != nil || string(got) != string(cast) {
		t.Errorf("Prepare(cast) = %x, %v", got, err)
	}
	generic := []byte{0xa0}
	if got, err := apps.Prepare("note.x", generic); err != nil || string(got) != string(generic) {
		t.Errorf("Prepare(generic) = %x, %v", got, err)
	}
	if _, err := apps.Prepare(apps.KindFilePublish, enc(t, map[string]any{"x": "y"})); !errors.Is(err, apps.ErrInvalid) {
		t.Errorf("Prepare(file.publish) = %v", err)
	}
}

func TestEngineVoting(t *testing.T) {
	e := newEngineEnv(t)
	// Nothing can be registered before the ballot exists.
	e.refused(apps.KindRegister, map[string]any{"ballot": "b", "voter": "alice"}, apps.RuleNoDefinition)
	def := e.mustSubmit(apps.KindBallot, liveBallot("b"))
	e.refused(apps.KindBallot, liveBallot("b"), apps.RuleDuplicate)

	// The node allocates the eid; a client may not.
	e.refused(apps.KindRegister, map[string]any{"ballot": "b", "voter": "alice", "eid": eid(1)}, apps.RuleEIDAllocated)
	alice := eidOf(t, e.mustSubmit(apps.KindRegister, map[string]any{"ballot": "b", "voter": "alice"}))
	bob := eidOf(t, e.mustSubmit(apps.KindRegister, map[string]any{"ballot": "b", "voter": "bob"}))
	if alice == bob {
		t.Error("two registrations got the same eid")
	}
	e.refused(apps.KindRegister, map[string]any{"ballot": "b", "voter": "alice"}, apps.RuleDupRegister)

	before := e.st.Count()
	e.refused(apps.KindCast, map[string]any{"ballot": "b", "voter": "carol", "eid": eid(3), "choice": "yes"}, apps.RuleNotRegistered)
	if e.st.Count() != before {
		t.Error("refused cast appended")
	}
	e.refused(apps.KindCast, map[string]any{"ballot": "b", "voter": "alice", "eid": bob, "choice": "yes"}, apps.RuleWrongEID)
	e.refused(apps.KindCast, map[string]any{"ballot": "b", "voter": "alice", "eid": alice, "choice": "maybe"}, apps.RuleUnknownChoice)
	e.refused(apps.KindUncast, map[string]any{"ballot": "b", "voter": "alice", "eid": alice}, apps.RuleNothingToUncast)
	e.refused(apps.KindCast, map[string]any{"ballot": "nope", "voter": "alice", "eid": alice, "choice": "yes"}, apps.RuleNoDefinition)

	e.mustSubmit(apps.KindCast, map[string]any{"ballot": "b", "voter": "alice", "eid": alice, "choice": "yes"})
	e.mustSubmit(apps.KindCast, map[string]any{"ballot": "b", "voter": "alice", "eid": alice, "choice": "no"})
	e.mustSubmit(apps.KindCast, map[string]any{"ballot": "b", "voter": "bob", "eid": bob, "choice": "no"})
	e.mustSubmit(apps.KindUncast, map[string]any{"ballot": "b", "voter": "bob", "eid": bob})
	e.mustSubmit(apps.KindWithdraw, map[string]any{"ballot": "b", "voter": "bob", "eid": bob, "reason": "moved"})
	e.refused(apps.KindCast, map[string]any{"ballot": "b", "voter": "bob", "eid": bob, "choice": "yes"}, apps.RuleWithdrawn)
	e.refused(apps.KindRegister, map[string]any{"ballot": "b", "voter": "bob"}, apps.RuleWithdrawn)

	tl, err := e.index().Tally("b")
	if err != nil {
		t.Fatal(err)
	}
	wantVotes(t, tl, map[string]int{"no": 1})
	wantNums(t, tl, tallyNums{registered: 2, withdrawn: 1, voted: 1, replaced: 1})
	if tl.DefinedBy != def.ID || tl.Records != 8 || len(tl.Violations) != 0 {
		t.Errorf("tally defined_by %s records %d violations %+v", tl.DefinedBy, tl.Records, tl.Violations)
	}
	if e.st.Count() != 8 || e.puts != 8 {
		t.Errorf("count %d puts %d, want 8", e.st.Count(), e.puts)
	}
}

func TestEngineClosedBallot(t *testing.T) {
	e := newEngineEnv(t)
	now := time.Now().Unix()
	e.mustSubmit(apps.KindBallot, map[string]any{"ballot": "past", "question": "Q", "choices": []any{"a", "b"}, "opens": now - 7200, "closes": now - 3600})
	e.mustSubmit(apps.KindBallot, map[string]any{"ballot": "future", "question": "Q", "choices": []any{"a", "b"}, "opens": now + 3600, "closes": now + 7200})
	e.refused(apps.KindRegister, map[string]any{"ballot": "past", "voter": "v"}, apps.RuleOutsideWindow)
	v := eidOf(t, e.mustSubmit(apps.KindRegister, map[string]any{"ballot": "future", "voter": "v"}))
	e.refused(apps.KindCast, map[string]any{"ballot": "future", "voter": "v", "eid": v, "choice": "a"}, apps.RuleOutsideWindow)
}

func TestEngineVoterKey(t *testing.T) {
	e := newEngineEnv(t)
	e.mustSubmit(apps.KindBallot, liveBallot("b"))
	v := newVoter("alice", 0, 7)
	v.eid = eidOf(t, e.mustSubmit(apps.KindRegister, map[string]any{"ballot": "b", "voter": "alice", "key": v.pub()}))
	cast := func(choice string, seq uint64, sig []byte) map[string]any {
		p := map[string]any{"ballot": "b", "voter": "alice", "eid": v.eid, "choice": choice, "seq": seq}
		if sig != nil {
			p["sig"] = sig
		}
		return p
	}
	e.refused(apps.KindCast, cast("yes", 1, nil), apps.RuleBadSignature)
	e.refused(apps.KindCast, cast("yes", 1, v.sign(testNet, apps.KindCast, "b", "no", 1)), apps.RuleBadSignature)
	e.refused(apps.KindCast, cast("yes", 1, newVoter("alice", 0, 8).sign(testNet, apps.KindCast, "b", "yes", 1)), apps.RuleBadSignature)
	e.mustSubmit(apps.KindCast, cast("yes", 5, v.sign(testNet, apps.KindCast, "b", "yes", 5)))
	e.refused(apps.KindCast, cast("no", 5, v.sign(testNet, apps.KindCast, "b", "no", 5)), apps.RuleReplay)
	e.refused(apps.KindCast, cast("yes", 5, v.sign(testNet, apps.KindCast, "b", "yes", 5)), apps.RuleReplay)
	e.mustSubmit(apps.KindCast, cast("no", 6, v.sign(testNet, apps.KindCast, "b", "no", 6)))
	tl, err := e.index().Tally("b")
	if err != nil {
		t.Fatal(err)
	}
	wantVotes(t, tl, map[string]int{"no": 1})
	if len(tl.Violations) != 0 || tl.Replaced != 1 {
		t.Errorf("violations %+v replaced %d", tl.Violations, tl.Replaced)
	}
	// An uncast is signed as "vote.uncast" with an empty choice.
	uncast := func(seq uint64, sig []byte) map[string]any {
		return map[string]any{"ballot": "b", "voter": "alice", "eid": v.eid, "seq": seq, "sig": sig}
	}
	e.refused(apps.KindUncast, uncast(7, v.sign(testNet, apps.KindCast, "b", "", 7)), apps.RuleBadSignature)
	e.refused(apps.KindUncast, uncast(7, v.sign(testNet, apps.KindUncast, "b", "no", 7)), apps.RuleBadSignature)
	e.refused(apps.KindUncast, uncast(6, v.sign(testNet, apps.KindUncast, "b", "", 6)), apps.RuleReplay)
	e.mustSubmit(apps.KindUncast, uncast(7, v.sign(testNet, apps.KindUncast, "b", "", 7)))
	if tl, err = e.index().Tally("b"); err != nil || tl.Voted != 0 || len(tl.Violations) != 0 {
		t.Errorf("after the uncast: %+v, %v", tl, err)
	}
}

// TestEngineChecksReplicatedRecords: a submission is checked against
// records that reached the store by another way (replication) since the
// engine last looked.
func TestEngineChecksReplicatedRecords(t *testing.T) {
	e := newEngineEnv(t)
	e.mustSubmit(apps.KindBallot, liveBallot("b"))
	e.mustSubmit(apps.KindFund, map[string]any{"fund": "f", "name": "F", "currency": "EUR"})
	// Created after the definitions, before the submissions below.
	e.appendDirect(apps.KindRegister, map[string]any{"ballot": "b", "voter": "bob", "eid": eid(2)}, time.Now())
	e.appendDirect(apps.KindDonation, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(300)}, time.Now())
	e.mustSubmit(apps.KindCast, map[string]any{"ballot": "b", "voter": "bob", "eid": eid(2), "choice": "yes"})
	e.mustSubmit(apps.KindDisbursement, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(300)})
	e.appendDirect(apps.KindRegister, map[string]any{"ballot": "b", "voter": "carol", "eid": eid(3)}, time.Now())
	e.refused(apps.KindRegister, map[string]any{"ballot": "b", "voter": "carol"}, apps.RuleDupRegister)
	// A record created in the future (a peer's clock ahead): a new
	// submission is dated after it, so it can spend it and, above all,
	// cannot turn it into a violation by sorting before it.
	e.appendDirect(apps.KindDonation, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(50)}, time.Now().Add(5*time.Minute))
	rec := e.mustSubmit(apps.KindDisbursement, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(50)})
	if time.Unix(0, rec.Created).Before(time.Now().Add(4 * time.Minute)) {
		t.Errorf("disbursement dated %s, not after the future donation", time.Unix(0, rec.Created))
	}
	r, err := e.index().FundReport("f")
	if err != nil || r.Received != 350 || r.Disbursed != 350 || len(r.Violations) != 0 {
		t.Errorf("report %+v, %v", r, err)
	}
	// One too far ahead of the clock: the engine will not date a record
	// that far into the future, and says so.
	e.appendDirect(apps.KindDonation, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(50)}, time.Now().Add(time.Hour))
	raw, _ := ledger.EncodePayload(map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(1)})
	if _, _, err := e.eng.Submit(context.Background(), apps.KindDonation, raw, "alice"); !errors.Is(err, apps.ErrRefused) || !strings.Contains(err.Error(), "ahead of this node's clock") {
		t.Errorf("submission after a record an hour ahead: %v", err)
	}
}

func TestEngineCharity(t *testing.T) {
	e := newEngineEnv(t)
	e.refused(apps.KindDonation, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(100)}, apps.RuleNoDefinition)
	def := e.mustSubmit(apps.KindFund, map[string]any{"fund": "f", "name": "Fund", "currency": "EUR", "notes": "free text", "custom": int64(3)})
	e.refused(apps.KindFund, map[string]any{"fund": "f", "name": "Again", "currency": "EUR"}, apps.RuleDuplicate)
	e.mustSubmit(apps.KindDonation, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(1000), "source": "gala"})
	re := e.refused(apps.KindDonation, map[string]any{"fund": "f", "currency": "USD", "amount": uint64(1)}, apps.RuleCurrency)
	if re.V.Ref == nil || *re.V.Ref != def.ID {
		t.Errorf("currency-mismatch ref = %v, want the fund definition %s", re.V.Ref, def.ID)
	}
	e.refused(apps.KindDisbursement, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(1001)}, apps.RuleOverdraft)
	e.mustSubmit(apps.KindDisbursement, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(600), "target": "t"})
	e.refused(apps.KindDisbursement, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(401)}, apps.RuleOverdraft)
	r, err := e.index().FundReport("f")
	if err != nil {
		t.Fatal(err)
	}
	if r.Balance != 400 || r.Received != 1000 || r.Disbursed != 600 || len(r.Violations) != 0 || r.Records != 3 || r.DefinedBy != def.ID {
		t.Errorf("report = %+v", r)
	}
}

func TestEngineResources(t *testing.T) {
	e := newEngineEnv(t)
	e.refused(apps.KindAllocate, map[string]any{"account": "lab", "amount": uint64(5)}, apps.RuleNoDefinition)
	e.mustSubmit(apps.KindAccount, map[string]any{"account": "lab", "unit": "cpu"})
	e.mustSubmit(apps.KindAccount, map[string]any{"account": "ops", "unit": "cpu", "overdraft": true})
	e.mustSubmit(apps.KindAccount, map[string]any{"account": "eur", "unit": "EUR"})
	e.refused(apps.KindAccount, map[string]any{"account": "lab", "unit": "cpu"}, apps.RuleDuplicate)
	e.mustSubmit(apps.KindAllocate, map[string]any{"account": "lab", "amount": uint64(10)})
	e.refused(apps.KindUse, map[string]any{"account": "lab", "amount": uint64(11)}, apps.RuleOverdraft)
	e.refused(apps.KindTransfer, map[string]any{"from": "lab", "to": "ops", "amount": uint64(11)}, apps.RuleOverdraft)
	e.refused(apps.KindTransfer, map[string]any{"from": "lab", "to": "eur", "amount": uint64(1)}, apps.RuleCurrency)
	e.refused(apps.KindTransfer, map[string]any{"from": "lab", "to": "lab", "amount": uint64(1)}, apps.RuleSameAccount)
	e.refused(apps.KindTransfer, map[string]any{"from": "lab", "to": "ghost", "amount": uint64(1)}, apps.RuleNoDefinition)
	e.mustSubmit(apps.KindTransfer, map[string]any{"from": "lab", "to": "ops", "amount": uint64(4)})
	e.mustSubmit(apps.KindUse, map[string]any{"account": "ops", "amount": uint64(10)}) // overdraft allowed
	e.mustSubmit(apps.KindUse, map[string]any{"account": "lab", "amount": uint64(6)})
	r, err := e.index().ResourceReport("month", "")
	if err != nil {
		t.Fatal(err)
	}
	wantAccount(t, r, "lab", acctNums{balance: 0, allocated: 10, used: 6, sent: 4})
	wantAccount(t, r, "ops", acctNums{balance: -6, used: 10, received: 4})
	if len(r.Violations) != 0 || r.Records != 7 {
		t.Errorf("violations %+v records %d", r.Violations, r.Records)
	}
}

func TestEngineConcurrentDisbursements(t *testing.T) {
	e := newEngineEnv(t)
	e.mustSubmit(apps.KindFund, map[string]any{"fund": "f", "name": "Fund", "currency": "EUR"})
	e.mustSubmit(apps.KindDonation, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(5000)})
	before := e.st.Count()
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	raw := enc(t, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(5000), "target": "t"})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _, errs[i] = e.eng.Submit(e.ctx, apps.KindDisbursement, raw, "alice")
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		var re *apps.RefusedError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &re) && re.V.Rule == apps.RuleOverdraft:
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent disbursements of the whole balance succeeded, want 1", ok, n)
	}
	if got := e.st.Count(); got != before+1 {
		t.Errorf("count %d -> %d, want one more", before, got)
	}
	r, err := e.index().FundReport("f")
	if err != nil || r.Balance != 0 || r.Disbursements != 1 || len(r.Violations) != 0 {
		t.Errorf("report = %+v, %v", r, err)
	}
}

func TestEngineConcurrentRegistrations(t *testing.T) {
	e := newEngineEnv(t)
	e.mustSubmit(apps.KindBallot, liveBallot("b"))
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, dup := 0, 0
	raw := enc(t, map[string]any{"ballot": "b", "voter": "alice"})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := e.eng.Submit(e.ctx, apps.KindRegister, raw, "ec")
			var re *apps.RefusedError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.As(err, &re) && re.V.Rule == apps.RuleDupRegister:
				dup++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || dup != n-1 {
		t.Errorf("%d registrations accepted, %d refused as duplicates; want 1 and %d", ok, dup, n-1)
	}
	tl, err := e.index().Tally("b")
	if err != nil || tl.Registered != 1 || len(tl.Violations) != 0 {
		t.Errorf("tally %+v, %v", tl, err)
	}
}

func TestEngineConcurrentResourceUse(t *testing.T) {
	e := newEngineEnv(t)
	e.mustSubmit(apps.KindAccount, map[string]any{"account": "a", "unit": "u"})
	e.mustSubmit(apps.KindAccount, map[string]any{"account": "b", "unit": "u"})
	e.mustSubmit(apps.KindAllocate, map[string]any{"account": "a", "amount": uint64(10)})
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	use := enc(t, map[string]any{"account": "a", "amount": uint64(3)})
	transfer := enc(t, map[string]any{"from": "a", "to": "b", "amount": uint64(3)})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kind, raw := apps.KindUse, use
			if i%2 == 1 {
				kind, raw = apps.KindTransfer, transfer
			}
			_, _, err := e.eng.Submit(e.ctx, kind, raw, "w")
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else if !errors.Is(err, apps.ErrRefused) {
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 3 {
		t.Errorf("%d submissions of 3 out of 10 succeeded, want 3", ok)
	}
	r, err := e.index().ResourceReport("month", "a")
	if err != nil || r.Accounts[0].Balance != 1 || len(r.Violations) != 0 {
		t.Errorf("report %+v, %v", r, err)
	}
}

// appendDirect appends a record to the store as replication would, bypassing the engine.
func (e *engineEnv) appendDirect(kind string, p map[string]any, created time.Time) *ledger.SignedRecord {
	e.t.Helper()
	rec, err := ledger.NewSignedRecord(e.ctx, e.ident, e.g, kind, enc(e.t, p), "peer", created)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Append(e.ctx, rec, 1, "peer"); err != nil {
		e.t.Fatal(err)
	}
	return rec
}

func TestIndexCatchUp(t *testing.T) {
	e := newEngineEnv(t)
	now := time.Now()
	op := now.Unix() - 600
	def := map[string]any{"ballot": "b", "question": "Q", "choices": []any{"yes", "no"}, "opens": op, "closes": op + 3600}
	e.appendDirect(apps.KindBallot, def, now.Add(-20*time.Minute))
	e.appendDirect("note.text", map[string]any{"text": "not an app record"}, now)
	e.appendDirect(apps.KindRegister, map[string]any{"ballot": "b", "voter": "alice", "eid": eid(1)}, now.Add(-15*time.Minute))
	e.appendDirect(apps.KindRegister, map[string]any{"ballot": "b", "voter": "bob", "eid": eid(2)}, now.Add(-15*time.Minute))
	// Out of canonical order in the chain, as replication delivers them.
	e.appendDirect(apps.KindCast, map[string]any{"ballot": "b", "voter": "alice", "eid": eid(1), "choice": "no"}, now.Add(-1*time.Minute))
	e.appendDirect(apps.KindCast, map[string]any{"ballot": "b", "voter": "alice", "eid": eid(1), "choice": "yes"}, now.Add(-2*time.Minute))
	dupReg := e.appendDirect(apps.KindRegister, map[string]any{"ballot": "b", "voter": "alice", "eid": eid(3)}, now.Add(-14*time.Minute))

	x := e.index()
	if x.Height() != e.st.Count() || x.Height() != 7 {
		t.Errorf("index height %d, store count %d", x.Height(), e.st.Count())
	}
	tl, err := x.Tally("b")
	if err != nil {
		t.Fatal(err)
	}
	wantVotes(t, tl, map[string]int{"no": 1})
	wantNums(t, tl, tallyNums{registered: 2, voted: 1, replaced: 1})
	wantRules(t, tl.Violations, map[ledger.ID]string{dupReg.ID: apps.RuleDupRegister})

	// The engine checks against replicated records too: bob's registration
	// exists only through the chain.
	e.mustSubmit(apps.KindCast, map[string]any{"ballot": "b", "voter": "bob", "eid": eid(2), "choice": "yes"})
	e.refused(apps.KindCast, map[string]any{"ballot": "b", "voter": "alice", "eid": eid(3), "choice": "yes"}, apps.RuleWrongEID)

	// More records arrive directly; the next Index call sees them.
	e.appendDirect(apps.KindWithdraw, map[string]any{"ballot": "b", "voter": "alice", "eid": eid(1)}, now.Add(-30*time.Second))
	tl, err = e.index().Tally("b")
	if err != nil {
		t.Fatal(err)
	}
	wantVotes(t, tl, map[string]int{"yes": 1})
	wantNums(t, tl, tallyNums{registered: 2, withdrawn: 1, voted: 1, replaced: 1})

	// A fresh index reading the whole chain gives the same tally.
	y := apps.NewIndex(testNet)
	if err := y.CatchUp(e.ctx, e.st); err != nil {
		t.Fatal(err)
	}
	if err := y.CatchUp(e.ctx, e.st); err != nil { // nothing new: no-op
		t.Fatal(err)
	}
	t2, err := y.Tally("b")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, tl), mustJSON(t, t2); string(a) != string(b) {
		t.Errorf("fresh index tally differs:\n%s\n%s", a, b)
	}
	if k := y.Kinds(); k[apps.KindRegister] != 3 || k[apps.KindCast] != 3 || k[apps.KindWithdraw] != 1 || k[apps.KindBallot] != 1 {
		t.Errorf("Kinds = %v", k)
	}
	if y.Height() != e.st.Count() {
		t.Errorf("height %d, count %d", y.Height(), e.st.Count())
	}
}

func TestCheckRecordAndPayload(t *testing.T) {
	e := newEngineEnv(t)
	mk := func(kind string, p map[string]any) *ledger.SignedRecord {
		rec, err := ledger.NewSignedRecord(e.ctx, e.ident, e.g, kind, enc(t, p), "peer", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	bad := mk(apps.KindCast, map[string]any{"ballot": "b", "voter": "v", "eid": eid(1)}) // no choice
	if err := apps.CheckRecord(bad); !errors.Is(err, apps.ErrInvalid) {
		t.Errorf("CheckRecord(malformed cast) = %v, want ErrInvalid", err)
	}
	if err := apps.CheckRecord(mk(apps.KindCast, map[string]any{"ballot": "b", "voter": "v", "eid": eid(1), "choice": "x"})); err != nil {
		t.Errorf("CheckRecord(cast) = %v", err)
	}
	if err := apps.CheckRecord(mk("note.text", map[string]any{"whatever": []any{"x", int64(1)}})); err != nil {
		t.Errorf("CheckRecord(generic) = %v", err)
	}
	// A reserved kind this version does not know comes from a newer node: let through.
	future := mk("vote.delegate", map[string]any{"to": "x"})
	if err := apps.CheckRecord(future); err != nil {
		t.Errorf("CheckRecord(vote.delegate) = %v", err)
	}
	if err := apps.CheckPayload("vote.delegate", future.Payload); !errors.Is(err, apps.ErrInvalid) {
		t.Errorf("CheckPayload(vote.delegate) = %v, want ErrInvalid", err)
	}
	if err := apps.CheckPayload("note.text", []byte{0xff}); err != nil {
		t.Errorf("CheckPayload(generic) = %v, want nil", err)
	}
	if err := apps.CheckRecord(mk(apps.KindAccount, map[string]any{"account": "a", "unit": "u", "x": "y"})); !errors.Is(err, apps.ErrInvalid) {
		t.Errorf("CheckRecord(resource with unknown field) = %v", err)
	}
	if err := apps.CheckRecord(mk(apps.KindDonation, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(1), "x": "y"})); err != nil {
		t.Errorf("CheckRecord(donation with extra field) = %v", err)
	}
	if err := apps.CheckPayload(apps.KindCast, []byte{0x01}); !errors.Is(err, apps.ErrInvalid) {
		t.Errorf("CheckPayload(not a map) = %v", err)
	}
}

// TestEngineConcurrentReadsAndWrites runs submissions, direct appends and
// views at once (for the race detector), then checks the final figures.
func TestEngineConcurrentReadsAndWrites(t *testing.T) {
	e := newEngineEnv(t)
	e.mustSubmit(apps.KindBallot, liveBallot("b"))
	e.mustSubmit(apps.KindFund, map[string]any{"fund": "f", "name": "F", "currency": "EUR"})
	const voters = 8
	var wg sync.WaitGroup
	errc := make(chan error, 4*voters)
	for i := range voters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("v%d", i)
			reg, _ := ledger.EncodePayload(map[string]any{"ballot": "b", "voter": name})
			rec, _, err := e.eng.Submit(e.ctx, apps.KindRegister, reg, "ec")
			if err != nil {
				errc <- err
				return
			}
			m, _ := ledger.DecodePayload(rec.Payload)
			cast, err := ledger.EncodePayload(map[string]any{"ballot": "b", "voter": name, "eid": m["eid"], "choice": []string{"yes", "no"}[i%2]})
			if err != nil {
				errc <- err
				return
			}
			if _, _, err := e.eng.Submit(e.ctx, apps.KindCast, cast, "w"); err != nil {
				errc <- err
			}
			don, _ := ledger.EncodePayload(map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(10)})
			if _, _, err := e.eng.Submit(e.ctx, apps.KindDonation, don, "w"); err != nil {
				errc <- err
			}
		}()
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				x, err := e.eng.Index(e.ctx)
				if err != nil {
					errc <- err
					return
				}
				if tl, err := x.Tally("b"); err != nil || len(tl.Violations) != 0 {
					errc <- fmt.Errorf("tally %v, violations %+v", err, tl)
					return
				}
				x.FundReport("f")
				x.Ballots()
				x.Kinds()
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	tl, err := e.index().Tally("b")
	if err != nil || tl.Registered != voters || tl.Voted != voters || tl.Counts[0].Votes != voters/2 || len(tl.Violations) != 0 {
		t.Errorf("tally %+v, %v", tl, err)
	}
	r, err := e.index().FundReport("f")
	if err != nil || r.Received != 10*voters || r.Donations != voters {
		t.Errorf("fund %+v, %v", r, err)
	}
}

// TestIndexCatchUpManyBatches reads more than one CatchUp batch (a batch
// holds up to 4096 records or 512 KiB of payloads), mixed with generic
// records, and checks that no record is lost or read twice.
func TestIndexCatchUpManyBatches(t *testing.T) {
	e := newEngineEnv(t)
	op := time.Now().Unix() - 600
	created := time.Unix(op-60, 0)
	var pend []ledger.Pending
	var voteIDs, fundIDs []ledger.ID
	add := func(kind string, p map[string]any) ledger.ID {
		created = created.Add(time.Millisecond)
		rec, err := ledger.NewSignedRecord(e.ctx, e.ident, e.g, kind, enc(t, p), "peer", created)
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, ledger.Pending{Record: rec, Replication: 1, Source: "peer"})
		return rec.ID
	}
	voteIDs = append(voteIDs, add(apps.KindBallot, map[string]any{"ballot": "big", "question": "Q", "choices": []any{"yes", "no"}, "opens": op - 60, "closes": op + 3600}))
	fundIDs = append(fundIDs, add(apps.KindFund, map[string]any{"fund": "f", "name": "F", "currency": "EUR"}))
	blob := strings.Repeat("x", 56<<10) // charity records may carry any extra field
	const n = 60
	var want uint64
	for i := range n {
		voteIDs = append(voteIDs, add(apps.KindRegister, map[string]any{"ballot": "big", "voter": fmt.Sprintf("v%03d", i), "eid": eid(i)}))
		fundIDs = append(fundIDs, add(apps.KindDonation, map[string]any{"fund": "f", "currency": "EUR", "amount": uint64(i + 1), "blob": blob}))
		want += uint64(i + 1)
		if i%20 == 0 {
			add("note.text", map[string]any{"blob": blob})
		}
		voteIDs = append(voteIDs, add(apps.KindCast, map[string]any{"ballot": "big", "voter": fmt.Sprintf("v%03d", i), "eid": eid(i), "choice": []string{"yes", "no"}[i%3/2]}))
	}
	res, err := e.st.AppendBatch(e.ctx, pend)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	x := apps.NewIndex(testNet)
	if err := x.CatchUp(e.ctx, e.st); err != nil {
		t.Fatal(err)
	}
	if x.Height() != uint64(len(pend)) {
		t.Errorf("height %d, want %d", x.Height(), len(pend))
	}
	// Created times increase with chain order here, so canonical order is chain order.
	tl, err := x.Tally("big")
	if err != nil {
		t.Fatal(err)
	}
	if tl.Records != len(voteIDs) || tl.Digest != digestOf(voteIDs...) {
		t.Errorf("tally records %d digest %s, want %d %s", tl.Records, tl.Digest, len(voteIDs), digestOf(voteIDs...))
	}
	wantVotes(t, tl, map[string]int{"yes": 40, "no": 20})
	if tl.Registered != n || tl.Voted != n || len(tl.Violations) != 0 {
		t.Errorf("registered %d voted %d violations %d", tl.Registered, tl.Voted, len(tl.Violations))
	}
	r, err := x.FundReport("f")
	if err != nil {
		t.Fatal(err)
	}
	if r.Records != len(fundIDs) || r.Digest != digestOf(fundIDs...) || r.Received != want || r.Donations != n {
		t.Errorf("fund records %d received %d donations %d, want %d %d %d", r.Records, r.Received, r.Donations, len(fundIDs), want, n)
	}
}
