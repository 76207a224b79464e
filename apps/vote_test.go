package apps_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
)

// The test ballot is open for an hour from opens.
const (
	opens  int64 = 1_800_000_000
	closes int64 = opens + 3600
)

// ballotBuilder collects the records of one ballot.
type ballotBuilder struct {
	t      testing.TB
	ids    idGen
	ballot string
	def    *apps.VoteRec
	defs   []*apps.VoteRec
	recs   []*apps.VoteRec
}

// newBallot defines ballot "b" (created ten minutes before it opens).
func newBallot(t testing.TB, choices ...string) *ballotBuilder {
	t.Helper()
	b := &ballotBuilder{t: t, ballot: "b"}
	b.def = b.defineAt(sec(opens-600), choices...)
	return b
}

func ballotPayload(ballot string, choices ...string) map[string]any {
	cs := make([]any, len(choices))
	for i, c := range choices {
		cs[i] = c
	}
	return map[string]any{"ballot": ballot, "question": "Which one?", "choices": cs, "opens": opens, "closes": closes}
}

func (b *ballotBuilder) defineAt(created int64, choices ...string) *apps.VoteRec {
	return b.addID(b.ids.next(), apps.KindBallot, created, ballotPayload(b.ballot, choices...))
}

// add makes a record of kind with a fresh id; the payload's ballot
// defaults to the builder's.
func (b *ballotBuilder) add(kind string, created int64, p map[string]any) *apps.VoteRec {
	return b.addID(b.ids.next(), kind, created, p)
}

func (b *ballotBuilder) addID(id ledger.ID, kind string, created int64, p map[string]any) *apps.VoteRec {
	b.t.Helper()
	if _, ok := p["ballot"]; !ok {
		p["ballot"] = b.ballot
	}
	r := apps.NewVoteRec(id, kind, created, enc(b.t, p))
	if kind == apps.KindBallot {
		b.defs = append(b.defs, r)
	} else {
		b.recs = append(b.recs, r)
	}
	return r
}

func (b *ballotBuilder) register(voter, e string, created int64) *apps.VoteRec {
	return b.add(apps.KindRegister, created, map[string]any{"voter": voter, "eid": e})
}

func (b *ballotBuilder) cast(voter, e, choice string, created int64) *apps.VoteRec {
	return b.add(apps.KindCast, created, map[string]any{"voter": voter, "eid": e, "choice": choice})
}

func (b *ballotBuilder) uncast(voter, e string, created int64) *apps.VoteRec {
	return b.add(apps.KindUncast, created, map[string]any{"voter": voter, "eid": e})
}

func (b *ballotBuilder) withdraw(voter, e string, created int64) *apps.VoteRec {
	return b.add(apps.KindWithdraw, created, map[string]any{"voter": voter, "eid": e, "reason": "moved"})
}

// tally computes the tally (on copies of the slices) and checks what
// every tally must satisfy.
func (b *ballotBuilder) tally() *apps.Tally {
	b.t.Helper()
	t, err := apps.ComputeTally(testNet, b.ballot, slices.Clone(b.defs), slices.Clone(b.recs))
	if err != nil {
		b.t.Fatalf("ComputeTally: %v", err)
	}
	if t.Effective != t.Registered-t.Withdrawn {
		b.t.Errorf("effective %d != registered %d - withdrawn %d", t.Effective, t.Registered, t.Withdrawn)
	}
	if t.Records != len(b.defs)+len(b.recs) {
		b.t.Errorf("records = %d, want %d", t.Records, len(b.defs)+len(b.recs))
	}
	var keys []apps.Key
	for _, r := range slices.Concat(b.defs, b.recs) {
		keys = append(keys, r.Key)
	}
	if want := digestOf(canonicalIDs(keys)...); t.Digest != want {
		b.t.Errorf("digest = %s, want SHA-256 of the ids in canonical order %s", t.Digest, want)
	}
	sum := 0
	for _, c := range t.Counts {
		sum += c.Votes
	}
	if sum != t.Voted {
		b.t.Errorf("counts add up to %d, voted = %d", sum, t.Voted)
	}
	if t.Violations == nil {
		b.t.Error("violations is nil, want an empty list")
	}
	wantSortedViolations(b.t, t.Violations)
	return t
}

func votesOf(t *apps.Tally) map[string]int {
	m := map[string]int{}
	for _, c := range t.Counts {
		m[c.Choice] = c.Votes
	}
	return m
}

func wantVotes(tb testing.TB, t *apps.Tally, want map[string]int) {
	tb.Helper()
	got := votesOf(t)
	for c, n := range want {
		if got[c] != n {
			tb.Errorf("votes for %q = %d, want %d (counts %v)", c, got[c], n, t.Counts)
		}
	}
	for c, n := range got {
		if _, ok := want[c]; !ok && n != 0 {
			tb.Errorf("votes for %q = %d, want 0", c, n)
		}
	}
}

type tallyNums struct{ registered, withdrawn, voted, replaced int }

func wantNums(tb testing.TB, t *apps.Tally, w tallyNums) {
	tb.Helper()
	got := tallyNums{t.Registered, t.Withdrawn, t.Voted, t.Replaced}
	if got != w {
		tb.Errorf("registered/withdrawn/voted/replaced = %+v, want %+v", got, w)
	}
}

func idp(r *apps.VoteRec) *ledger.ID { id := r.ID; return &id }

// ---- schemas ----

func TestBallotSchema(t *testing.T) {
	long := strings.Repeat("x", apps.MaxIDLen+1)
	many := make([]string, apps.MaxChoices+1)
	for i := range many {
		many[i] = fmt.Sprintf("c%d", i)
	}
	valid := func() map[string]any { return ballotPayload("b", "yes", "no") }
	with := func(k string, v any) map[string]any { p := valid(); p[k] = v; return p }
	without := func(k string) map[string]any { p := valid(); delete(p, k); return p }
	cases := []struct {
		name string
		p    map[string]any
		msg  string // part of the error
	}{
		{"one choice", with("choices", []any{"yes"}), "2 to 64 choices"},
		{"no choices", without("choices"), "choices"},
		{"too many choices", ballotPayload("b", many...), "2 to 64 choices"},
		{"duplicate choice", with("choices", []any{"yes", "no", "yes"}), "appears twice"},
		{"empty choice", with("choices", []any{"yes", ""}), "choice"},
		{"control char in choice", with("choices", []any{"yes", "n\no"}), "control"},
		{"closes == opens", with("closes", opens), "opens < closes"},
		{"closes < opens", with("closes", opens-1), "opens < closes"},
		{"negative opens", with("opens", int64(-1)), "opens"},
		{"closes after 2^33", with("closes", int64(1)<<33+1), "2^33"},
		{"no closes", without("closes"), "closes"},
		{"unknown field", with("color", "red"), "unknown field"},
		{"capitalised key", func() map[string]any { p := without("ballot"); p["Ballot"] = "b"; return p }(), "unknown field"},
		{"empty ballot id", with("ballot", ""), "ballot"},
		{"ballot id with space", with("ballot", "my ballot"), "ballot"},
		{"ballot id too long", with("ballot", long), "ballot"},
		{"no question", without("question"), "question"},
		{"choices not text", with("choices", []any{int64(1), int64(2)}), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := enc(t, c.p)
			err := apps.CheckPayload(apps.KindBallot, raw)
			if !errors.Is(err, apps.ErrInvalid) {
				t.Fatalf("CheckPayload = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not mention %q", err, c.msg)
			}
			r := apps.NewVoteRec(ledger.ID{1}, apps.KindBallot, 1, raw)
			if r.Invalid() == "" || r.Def() != nil {
				t.Errorf("NewVoteRec: invalid %q, def %v; want invalid and no definition", r.Invalid(), r.Def())
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		p := without("opens") // opens defaults to 0
		p["choices"] = []any{"ja", "nein", "vielleicht"}
		raw := enc(t, p)
		if err := apps.CheckPayload(apps.KindBallot, raw); err != nil {
			t.Fatalf("CheckPayload: %v", err)
		}
		r := apps.NewVoteRec(ledger.ID{1}, apps.KindBallot, 5, raw)
		d := r.Def()
		if r.Invalid() != "" || d == nil {
			t.Fatalf("invalid %q", r.Invalid())
		}
		if d.Ballot != "b" || d.Question != "Which one?" || d.Opens != 0 || d.Closes != closes ||
			!slices.Equal(d.Choices, []string{"ja", "nein", "vielleicht"}) || r.KindName() != apps.KindBallot || r.Created != 5 {
			t.Errorf("definition = %+v", d)
		}
	})
}

func TestVoteRecordSchema(t *testing.T) {
	base := func(extra ...any) map[string]any {
		p := map[string]any{"ballot": "b", "voter": "alice", "eid": eid(1)}
		for i := 0; i < len(extra); i += 2 {
			p[extra[i].(string)] = extra[i+1]
		}
		return p
	}
	key := make([]byte, 32)
	sig := make([]byte, 64)
	cases := []struct {
		name, kind string
		p          map[string]any
		ok         bool
	}{
		{"register", apps.KindRegister, base(), true},
		{"register with key", apps.KindRegister, base("key", key), true},
		{"register with 31-byte key", apps.KindRegister, base("key", key[:31]), false},
		{"register with choice", apps.KindRegister, base("choice", "yes"), false},
		{"register with seq", apps.KindRegister, base("seq", uint64(3)), false},
		{"register with sig", apps.KindRegister, base("sig", sig), false},
		{"register with reason", apps.KindRegister, base("reason", "x"), false},
		{"register without eid", apps.KindRegister, map[string]any{"ballot": "b", "voter": "alice"}, false},
		{"upper-case eid", apps.KindRegister, base("eid", strings.ToUpper(eid(0xabc))), false},
		{"short eid", apps.KindRegister, base("eid", "abcd"), false},
		{"bad voter", apps.KindRegister, base("voter", "al ice"), false},
		{"voter of 128", apps.KindRegister, base("voter", strings.Repeat("v", 128)), true},
		{"voter of 129", apps.KindRegister, base("voter", strings.Repeat("v", 129)), false},
		{"unknown field", apps.KindRegister, base("colour", "red"), false},
		{"cast", apps.KindCast, base("choice", "yes"), true},
		{"cast with seq and sig", apps.KindCast, base("choice", "yes", "seq", uint64(9), "sig", sig), true},
		{"cast with 63-byte sig", apps.KindCast, base("choice", "yes", "sig", sig[:63]), false},
		{"cast without choice", apps.KindCast, base(), false},
		{"cast with key", apps.KindCast, base("choice", "yes", "key", key), false},
		{"cast with negative seq", apps.KindCast, base("choice", "yes", "seq", int64(-1)), false},
		{"uncast", apps.KindUncast, base(), true},
		{"uncast with choice", apps.KindUncast, base("choice", "yes"), false},
		{"withdraw with reason", apps.KindWithdraw, base("reason", "moved away"), true},
		{"withdraw with seq", apps.KindWithdraw, base("seq", uint64(1)), false},
		{"unknown vote kind", "vote.recount", base(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := enc(t, c.p)
			err := apps.CheckPayload(c.kind, raw)
			if c.ok != (err == nil) {
				t.Fatalf("CheckPayload = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, apps.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if apps.Known(c.kind) {
				r := apps.NewVoteRec(ledger.ID{1}, c.kind, 1, raw)
				if (r.Invalid() == "") != c.ok {
					t.Errorf("NewVoteRec invalid = %q, want ok=%v", r.Invalid(), c.ok)
				}
			}
		})
	}
}

// TestEmptyKeyOrSig: a byte string that is present but empty is present
// (docs/APPLICATIONS.md §3.1: "an empty key or sig fails its length
// check"); checkVotePayload checks the length of any key that is not nil.
func TestEmptyKeyOrSig(t *testing.T) {
	base := map[string]any{"ballot": "b", "voter": "alice", "eid": eid(1)}
	for _, field := range []string{"key", "sig"} {
		p := map[string]any{field: []byte{}}
		for k, v := range base {
			p[k] = v
		}
		raw := enc(t, p)
		if err := apps.CheckPayload(apps.KindRegister, raw); !errors.Is(err, apps.ErrInvalid) {
			t.Errorf("vote.register with empty %s: CheckPayload = %v, want ErrInvalid", field, err)
		}
		if r := apps.NewVoteRec(ledger.ID{1}, apps.KindRegister, 1, raw); r.Invalid() == "" {
			t.Errorf("vote.register with empty %s decodes as valid", field)
		}
	}
	p := map[string]any{"choice": "yes", "sig": []byte{}}
	for k, v := range base {
		p[k] = v
	}
	if err := apps.CheckPayload(apps.KindCast, enc(t, p)); !errors.Is(err, apps.ErrInvalid) {
		t.Errorf("vote.cast with empty sig: CheckPayload = %v, want ErrInvalid (a sig is 64 bytes)", err)
	}
}

// ---- replay rules ----

func TestTallyRegisterAndCast(t *testing.T) {
	b := newBallot(t, "yes", "no", "abstain")
	for i, v := range []string{"alice", "bob", "carol", "dave"} {
		b.register(v, eid(i), sec(opens-300+int64(i)))
	}
	b.cast("alice", eid(0), "yes", sec(opens+10))
	b.cast("bob", eid(1), "no", sec(opens+11))
	b.cast("carol", eid(2), "yes", sec(opens+12))
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"yes": 2, "no": 1})
	wantNums(t, tl, tallyNums{registered: 4, voted: 3})
	if tl.Effective != 4 {
		t.Errorf("effective = %d, want 4", tl.Effective)
	}
	wantRules(t, tl.Violations, nil)
	if tl.Ballot != "b" || tl.Question != "Which one?" || tl.Opens != opens || tl.Closes != closes || tl.DefinedBy != b.def.ID {
		t.Errorf("tally header = %q %q %d %d %s", tl.Ballot, tl.Question, tl.Opens, tl.Closes, tl.DefinedBy)
	}
	if tl.Records != 8 {
		t.Errorf("records = %d, want 8", tl.Records)
	}
	js := mustJSON(t, tl)
	if !bytes.Contains(js, []byte(`"violations":[]`)) || !bytes.Contains(js, []byte(`"defined_by":"`+b.def.ID.String()+`"`)) {
		t.Errorf("JSON = %s", js)
	}
}

func TestTallyCountsInBallotOrder(t *testing.T) {
	b := newBallot(t, "zeta", "alpha", "Mid", "mid")
	b.register("v1", eid(1), sec(opens))
	b.register("v2", eid(2), sec(opens))
	b.cast("v1", eid(1), "mid", sec(opens+1))
	b.cast("v2", eid(2), "zeta", sec(opens+1))
	tl := b.tally()
	want := []apps.ChoiceCount{{Choice: "zeta", Votes: 1}, {Choice: "alpha"}, {Choice: "Mid"}, {Choice: "mid", Votes: 1}}
	if !slices.Equal(tl.Counts, want) {
		t.Errorf("counts = %v, want %v", tl.Counts, want)
	}
}

func TestTallyLaterCastReplaces(t *testing.T) {
	b := newBallot(t, "yes", "no")
	b.register("alice", eid(1), sec(opens-1))
	b.register("bob", eid(2), sec(opens-1))
	// Added out of order: the canonical order decides which cast is last.
	b.cast("alice", eid(1), "no", sec(opens+30))
	b.cast("alice", eid(1), "yes", sec(opens+10))
	b.cast("alice", eid(1), "yes", sec(opens+20))
	b.cast("bob", eid(2), "yes", sec(opens+5))
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"no": 1, "yes": 1})
	wantNums(t, tl, tallyNums{registered: 2, voted: 2, replaced: 2})
	wantRules(t, tl.Violations, nil)
}

func TestTallySameCreatedOrderedByID(t *testing.T) {
	b := newBallot(t, "yes", "no")
	b.register("alice", eid(1), sec(opens-1))
	at := sec(opens + 10)
	lo, hi := ledger.ID{0x01}, ledger.ID{0xfe}
	// The larger id comes last in canonical order, so its cast counts.
	b.addID(hi, apps.KindCast, at, map[string]any{"voter": "alice", "eid": eid(1), "choice": "no"})
	b.addID(lo, apps.KindCast, at, map[string]any{"voter": "alice", "eid": eid(1), "choice": "yes"})
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"no": 1})
	wantNums(t, tl, tallyNums{registered: 1, voted: 1, replaced: 1})
}

func TestTallyUncast(t *testing.T) {
	b := newBallot(t, "yes", "no")
	b.register("alice", eid(1), sec(opens-1))
	b.register("bob", eid(2), sec(opens-1))
	b.cast("alice", eid(1), "yes", sec(opens+1))
	b.uncast("alice", eid(1), sec(opens+2))
	again := b.uncast("alice", eid(1), sec(opens+3))
	early := b.uncast("bob", eid(2), sec(opens+1))
	b.cast("bob", eid(2), "no", sec(opens+4))
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"no": 1})
	wantNums(t, tl, tallyNums{registered: 2, voted: 1})
	wantRules(t, tl.Violations, map[ledger.ID]string{again.ID: apps.RuleNothingToUncast, early.ID: apps.RuleNothingToUncast})

	// A cast after an uncast counts again and replaces nothing.
	b.cast("alice", eid(1), "no", sec(opens+5))
	tl = b.tally()
	wantVotes(t, tl, map[string]int{"no": 2})
	wantNums(t, tl, tallyNums{registered: 2, voted: 2})
}

func TestTallyWithdraw(t *testing.T) {
	b := newBallot(t, "yes", "no")
	b.register("alice", eid(1), sec(opens-100))
	b.register("bob", eid(2), sec(opens-100))
	b.register("carol", eid(3), sec(opens-100))
	b.cast("alice", eid(1), "yes", sec(opens+1))
	b.cast("bob", eid(2), "yes", sec(opens+1))
	b.withdraw("alice", eid(1), sec(opens+10))
	// A withdrawal may come before the ballot opens.
	b.withdraw("carol", eid(3), sec(opens-50))
	after := []*apps.VoteRec{
		b.cast("alice", eid(1), "no", sec(opens+11)),
		b.uncast("alice", eid(1), sec(opens+12)),
		b.register("alice", eid(9), sec(opens+13)),
		b.withdraw("alice", eid(1), sec(opens+14)),
		b.cast("carol", eid(3), "no", sec(opens+1)),
	}
	wrong := b.withdraw("bob", eid(7), sec(opens+20))
	nobody := b.withdraw("zed", eid(8), sec(opens+20))
	late := b.withdraw("bob", eid(2), sec(closes))
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"yes": 1})
	wantNums(t, tl, tallyNums{registered: 3, withdrawn: 2, voted: 1})
	if tl.Effective != 1 {
		t.Errorf("effective = %d, want 1", tl.Effective)
	}
	want := map[ledger.ID]string{wrong.ID: apps.RuleWrongEID, nobody.ID: apps.RuleNotRegistered, late.ID: apps.RuleOutsideWindow}
	for _, r := range after {
		want[r.ID] = apps.RuleWithdrawn
	}
	wantRules(t, tl.Violations, want)
	wantRef(t, tl.Violations, wrong.ID, idp(b.recs[1]))
}

func TestTallyDuplicateRegistration(t *testing.T) {
	b := newBallot(t, "yes", "no")
	// Added in the wrong order: the earlier-created registration is the effective one.
	second := b.register("alice", eid(2), sec(opens-10))
	first := b.register("alice", eid(1), sec(opens-20))
	ok := b.cast("alice", eid(1), "yes", sec(opens+1))
	wrong := b.cast("alice", eid(2), "no", sec(opens+2))
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"yes": 1})
	wantNums(t, tl, tallyNums{registered: 1, voted: 1})
	wantRules(t, tl.Violations, map[ledger.ID]string{second.ID: apps.RuleDupRegister, wrong.ID: apps.RuleWrongEID})
	wantRef(t, tl.Violations, second.ID, idp(first))
	wantRef(t, tl.Violations, wrong.ID, idp(first))
	_ = ok
	v := findViolation(tl.Violations, second.ID)
	if v.Kind != apps.KindRegister || v.Created != second.Created || !strings.Contains(v.Detail, "alice") {
		t.Errorf("violation = %+v", v)
	}
	if !strings.Contains(v.Error(), "(see record "+first.ID.String()+")") {
		t.Errorf("Violation.Error() = %q", v.Error())
	}
}

func TestTallyNotRegisteredWrongEIDUnknownChoice(t *testing.T) {
	b := newBallot(t, "yes", "no")
	b.register("alice", eid(1), sec(opens-10))
	nobody := b.cast("bob", eid(2), "yes", sec(opens+1))
	nobodyUncast := b.uncast("bob", eid(2), sec(opens+2))
	wrongEID := b.cast("alice", eid(3), "yes", sec(opens+3))
	unknown := b.cast("alice", eid(1), "maybe", sec(opens+4))
	caseDiff := b.cast("alice", eid(1), "Yes", sec(opens+5))
	good := b.cast("alice", eid(1), "no", sec(opens+6))
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"no": 1})
	wantNums(t, tl, tallyNums{registered: 1, voted: 1})
	wantRules(t, tl.Violations, map[ledger.ID]string{
		nobody.ID: apps.RuleNotRegistered, nobodyUncast.ID: apps.RuleNotRegistered,
		wrongEID.ID: apps.RuleWrongEID, unknown.ID: apps.RuleUnknownChoice, caseDiff.ID: apps.RuleUnknownChoice,
	})
	wantRef(t, tl.Violations, nobody.ID, nil)
	wantRef(t, tl.Violations, wrongEID.ID, idp(b.recs[0]))
	wantRef(t, tl.Violations, unknown.ID, nil)
	_ = good
}

func TestTallyWindow(t *testing.T) {
	b := newBallot(t, "yes", "no")
	for i := range 8 {
		b.register(fmt.Sprintf("v%d", i), eid(i), sec(opens-500))
	}
	tooEarly := b.cast("v0", eid(0), "yes", sec(opens)-1)
	atOpen := b.cast("v1", eid(1), "yes", sec(opens))
	lastNano := b.cast("v2", eid(2), "yes", sec(closes)-1)
	atClose := b.cast("v3", eid(3), "yes", sec(closes))
	b.cast("v4", eid(4), "no", sec(opens+1))
	uncastLate := b.uncast("v4", eid(4), sec(closes+1))
	regEarly := b.register("w1", eid(11), sec(opens-200)) // before opens: fine
	regAtClose := b.register("w2", eid(12), sec(closes))
	regLate := b.register("w3", eid(13), sec(closes+100))
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"yes": 2, "no": 1})
	wantNums(t, tl, tallyNums{registered: 9, voted: 3})
	wantRules(t, tl.Violations, map[ledger.ID]string{
		tooEarly.ID: apps.RuleOutsideWindow, atClose.ID: apps.RuleOutsideWindow, uncastLate.ID: apps.RuleOutsideWindow,
		regAtClose.ID: apps.RuleOutsideWindow, regLate.ID: apps.RuleOutsideWindow,
	})
	_, _, _ = atOpen, lastNano, regEarly
}

func TestTallyNoDefinition(t *testing.T) {
	b := newBallot(t, "yes", "no")
	defAt := b.def.Created
	before := b.register("alice", eid(1), defAt-1)
	// Same created as the definition: the id decides.
	var low, high ledger.ID
	high[0], high[31] = 0xff, 0xff
	if bytes.Compare(low[:], b.def.ID[:]) >= 0 || bytes.Compare(high[:], b.def.ID[:]) <= 0 {
		t.Fatal("test ids do not bracket the definition's id")
	}
	sameLow := b.addID(low, apps.KindRegister, defAt, map[string]any{"voter": "bob", "eid": eid(2)})
	b.addID(high, apps.KindRegister, defAt, map[string]any{"voter": "carol", "eid": eid(3)})
	b.cast("alice", eid(1), "yes", sec(opens+1))
	tl := b.tally()
	wantRules(t, tl.Violations, map[ledger.ID]string{
		before.ID: apps.RuleNoDefinition, sameLow.ID: apps.RuleNoDefinition,
		b.recs[len(b.recs)-1].ID: apps.RuleNotRegistered,
	})
	wantRef(t, tl.Violations, before.ID, idp(b.def))
	wantNums(t, tl, tallyNums{registered: 1})
}

func TestTallyDuplicateAndInvalidDefinitions(t *testing.T) {
	b := &ballotBuilder{t: t, ballot: "b"}
	// An invalid definition first, then two valid ones: the first valid one in
	// canonical order counts.
	bad := b.addID(b.ids.next(), apps.KindBallot, sec(opens-900), map[string]any{"question": "Q", "choices": []any{"only"}, "closes": closes})
	later := b.defineAt(sec(opens-500), "x", "y", "z")
	def := b.defineAt(sec(opens-700), "yes", "no")
	b.def = def
	b.register("alice", eid(1), sec(opens-800)) // before the definition
	b.register("bob", eid(2), sec(opens-600))
	b.cast("bob", eid(2), "x", sec(opens+1)) // a choice of the duplicate only
	tl := b.tally()
	if tl.DefinedBy != def.ID {
		t.Errorf("defined_by = %s, want %s", tl.DefinedBy, def.ID)
	}
	if len(tl.Counts) != 2 || tl.Counts[0].Choice != "yes" || tl.Counts[1].Choice != "no" {
		t.Errorf("counts = %v, want the choices of the first definition", tl.Counts)
	}
	wantRules(t, tl.Violations, map[ledger.ID]string{
		bad.ID: apps.RuleInvalid, later.ID: apps.RuleDuplicate,
		b.recs[0].ID: apps.RuleNoDefinition, b.recs[2].ID: apps.RuleUnknownChoice,
	})
	wantRef(t, tl.Violations, later.ID, idp(def))
	wantRef(t, tl.Violations, bad.ID, nil)
	if v := findViolation(tl.Violations, later.ID); v.Kind != apps.KindBallot {
		t.Errorf("duplicate's kind = %q", v.Kind)
	}
	if tl.Records != 6 {
		t.Errorf("records = %d, want 6", tl.Records)
	}
}

func TestTallyInvalidRecordIsViolation(t *testing.T) {
	b := newBallot(t, "yes", "no")
	b.register("alice", eid(1), sec(opens-10))
	bad := b.add(apps.KindCast, sec(opens+1), map[string]any{"voter": "alice", "eid": "NOT-HEX"})
	tl := b.tally()
	wantRules(t, tl.Violations, map[ledger.ID]string{bad.ID: apps.RuleInvalid})
	if bad.Invalid() == "" || findViolation(tl.Violations, bad.ID).Detail != bad.Invalid() {
		t.Errorf("invalid detail %q", bad.Invalid())
	}
}

func TestTallyNotFound(t *testing.T) {
	_, err := apps.ComputeTally(testNet, "nope", nil, nil)
	if !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("ComputeTally(no records) = %v, want ErrNotFound", err)
	}
	// Only an invalid definition: still not found.
	raw := enc(t, map[string]any{"ballot": "nope", "question": "Q", "choices": []any{"a"}, "closes": closes})
	defs := []*apps.VoteRec{apps.NewVoteRec(ledger.ID{1}, apps.KindBallot, 1, raw)}
	if _, err := apps.ComputeTally(testNet, "nope", defs, nil); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("ComputeTally(invalid definition) = %v, want ErrNotFound", err)
	}
	x := apps.NewIndex(testNet)
	if _, err := x.Tally("nope"); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("Index.Tally(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := x.FundReport("nope"); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("Index.FundReport(unknown) = %v, want ErrNotFound", err)
	}
}

func TestTallyDigestAndRecords(t *testing.T) {
	b := newBallot(t, "yes", "no")
	b.register("alice", eid(1), sec(opens-10))
	b.cast("alice", eid(1), "yes", sec(opens+1))
	b.cast("alice", eid(1), "maybe", sec(opens+2))
	t1 := b.tally() // checks the digest against canonical order
	// The digest does not depend on the order of the input slices.
	slices.Reverse(b.recs)
	t2 := b.tally()
	if t1.Digest != t2.Digest || t1.Records != 4 || t2.Records != 4 {
		t.Errorf("digests %s / %s, records %d / %d", t1.Digest, t2.Digest, t1.Records, t2.Records)
	}
	// Another record changes the digest.
	b.uncast("alice", eid(1), sec(opens+3))
	if t3 := b.tally(); t3.Digest == t1.Digest || t3.Records != 5 {
		t.Errorf("digest unchanged (%s) or records %d after adding a record", t3.Digest, t3.Records)
	}
}

// ---- voter keys ----

type voter struct {
	name string
	eid  string
	priv ed25519.PrivateKey
}

func newVoter(name string, n int, seed byte) voter {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	return voter{name: name, eid: eid(n), priv: ed25519.NewKeyFromSeed(s)}
}

func (v voter) pub() []byte { return v.priv.Public().(ed25519.PublicKey) }

func (v voter) sign(network, action, ballot, choice string, seq uint64) []byte {
	return ed25519.Sign(v.priv, apps.VoterMessage(network, action, ballot, v.name, v.eid, choice, seq))
}

func (b *ballotBuilder) registerKey(v voter, key []byte, created int64) *apps.VoteRec {
	return b.add(apps.KindRegister, created, map[string]any{"voter": v.name, "eid": v.eid, "key": key})
}

// signedCast is a cast by v with seq, signed by signer (nil: no sig).
func (b *ballotBuilder) signedCast(v voter, choice string, seq uint64, sig []byte, created int64) *apps.VoteRec {
	p := map[string]any{"voter": v.name, "eid": v.eid, "choice": choice, "seq": seq}
	if sig != nil {
		p["sig"] = sig
	}
	return b.add(apps.KindCast, created, p)
}

func TestVoterMessage(t *testing.T) {
	got := apps.VoterMessage("council", apps.KindUncast, "b-1", "alice", eid(5), "", 0)
	want := "pyvnode-vote/1\ncouncil\nvote.uncast\nb-1\nalice\n" + eid(5) + "\n\n0\n"
	if string(got) != want {
		t.Errorf("VoterMessage = %q, want %q", got, want)
	}
	got = apps.VoterMessage("n", apps.KindCast, "b", "v", eid(1), "no", 18446744073709551615)
	if !strings.HasSuffix(string(got), "\nno\n18446744073709551615\n") {
		t.Errorf("VoterMessage = %q", got)
	}
}

func TestTallyVoterKeys(t *testing.T) {
	b := newBallot(t, "yes", "no")
	alice := newVoter("alice", 1, 1)
	mallory := newVoter("alice", 1, 99) // same voter and eid, another key
	b.registerKey(alice, alice.pub(), sec(opens-10))
	at := func(s int64) int64 { return sec(opens + s) }

	good1 := b.signedCast(alice, "yes", 1, alice.sign(testNet, apps.KindCast, "b", "yes", 1), at(1))
	noSig := b.signedCast(alice, "no", 2, nil, at(2))
	wrongKey := b.signedCast(alice, "no", 3, mallory.sign(testNet, apps.KindCast, "b", "no", 3), at(3))
	// A signature over another choice does not cover this one.
	tampered := b.signedCast(alice, "no", 4, alice.sign(testNet, apps.KindCast, "b", "yes", 4), at(4))
	otherNet := b.signedCast(alice, "no", 5, alice.sign("othernet", apps.KindCast, "b", "no", 5), at(5))
	asUncast := b.signedCast(alice, "no", 6, alice.sign(testNet, apps.KindUncast, "b", "no", 6), at(6))
	// None of the bad ones used up a sequence number: 2 is still fresh.
	good2 := b.signedCast(alice, "no", 2, alice.sign(testNet, apps.KindCast, "b", "no", 2), at(7))
	replaySame := b.signedCast(alice, "yes", 2, alice.sign(testNet, apps.KindCast, "b", "yes", 2), at(8))
	replayOld := b.signedCast(alice, "yes", 1, alice.sign(testNet, apps.KindCast, "b", "yes", 1), at(9))
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"no": 1})
	wantNums(t, tl, tallyNums{registered: 1, voted: 1, replaced: 1})
	wantRules(t, tl.Violations, map[ledger.ID]string{
		noSig.ID: apps.RuleBadSignature, wrongKey.ID: apps.RuleBadSignature, tampered.ID: apps.RuleBadSignature,
		otherNet.ID: apps.RuleBadSignature, asUncast.ID: apps.RuleBadSignature,
		replaySame.ID: apps.RuleReplay, replayOld.ID: apps.RuleReplay,
	})
	reg := b.recs[0]
	for _, r := range []*apps.VoteRec{noSig, wrongKey, tampered} {
		wantRef(t, tl.Violations, r.ID, idp(reg))
	}

	// The network is part of the message: under another network name only
	// the cast signed for that network verifies (and then seq 2 is stale).
	t2, err := apps.ComputeTally("othernet", "b", slices.Clone(b.defs), slices.Clone(b.recs))
	if err != nil {
		t.Fatal(err)
	}
	wantVotes(t, t2, map[string]int{"no": 1})
	wantRules(t, t2.Violations, map[ledger.ID]string{
		good1.ID: apps.RuleBadSignature, noSig.ID: apps.RuleBadSignature, wrongKey.ID: apps.RuleBadSignature,
		tampered.ID: apps.RuleBadSignature, asUncast.ID: apps.RuleBadSignature,
		good2.ID: apps.RuleReplay, replaySame.ID: apps.RuleReplay, replayOld.ID: apps.RuleReplay,
	})
	// A signed uncast cancels the vote; a higher seq is needed.
	uncast := b.add(apps.KindUncast, at(10), map[string]any{"voter": "alice", "eid": alice.eid, "seq": uint64(3),
		"sig": alice.sign(testNet, apps.KindUncast, "b", "", 3)})
	tl = b.tally()
	wantNums(t, tl, tallyNums{registered: 1, voted: 0, replaced: 1})
	if findViolation(tl.Violations, uncast.ID) != nil {
		t.Errorf("signed uncast is a violation: %+v", findViolation(tl.Violations, uncast.ID))
	}
}

func TestTallyVoterKeySeqZeroAndKeyless(t *testing.T) {
	b := newBallot(t, "yes", "no")
	alice := newVoter("alice", 1, 1)
	bob := newVoter("bob", 2, 2)
	b.registerKey(alice, alice.pub(), sec(opens-10))
	b.register("bob", bob.eid, sec(opens-10)) // no key
	// The first accepted record may have seq 0 (absent).
	first := b.signedCast(alice, "yes", 0, alice.sign(testNet, apps.KindCast, "b", "yes", 0), sec(opens+1))
	again := b.signedCast(alice, "no", 0, alice.sign(testNet, apps.KindCast, "b", "no", 0), sec(opens+2))
	// Without a key, seq and sig are not checked.
	bobCast := b.signedCast(bob, "no", 7, bytes.Repeat([]byte{1}, 64), sec(opens+1))
	bobCast2 := b.signedCast(bob, "yes", 3, nil, sec(opens+2))
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"yes": 2})
	wantNums(t, tl, tallyNums{registered: 2, voted: 2, replaced: 1})
	wantRules(t, tl.Violations, map[ledger.ID]string{again.ID: apps.RuleReplay})
	_, _, _ = first, bobCast, bobCast2
}

func TestTallyVoterKeyOfEffectiveRegistration(t *testing.T) {
	b := newBallot(t, "yes", "no")
	alice := newVoter("alice", 1, 1)
	other := newVoter("alice", 1, 50)
	// A registration before the definition names another key: it is not
	// the effective one, and neither is the duplicate after it.
	b.registerKey(other, other.pub(), b.def.Created-1)
	b.registerKey(alice, alice.pub(), sec(opens-10))
	b.registerKey(other, other.pub(), sec(opens-5))
	bad := b.signedCast(other, "no", 1, other.sign(testNet, apps.KindCast, "b", "no", 1), sec(opens+1))
	good := b.signedCast(alice, "yes", 2, alice.sign(testNet, apps.KindCast, "b", "yes", 2), sec(opens+2))
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"yes": 1})
	wantRules(t, tl.Violations, map[ledger.ID]string{
		b.recs[0].ID: apps.RuleNoDefinition, b.recs[2].ID: apps.RuleDupRegister, bad.ID: apps.RuleBadSignature,
	})
	wantRef(t, tl.Violations, bad.ID, idp(b.recs[1]))
	_ = good
}

func TestTallyManySignedCasts(t *testing.T) {
	// Enough signed casts to spread the signature pre-pass over workers.
	b := newBallot(t, "yes", "no")
	var bad []ledger.ID
	for i := range 150 {
		v := newVoter(fmt.Sprintf("v%03d", i), i, byte(i))
		b.registerKey(v, v.pub(), sec(opens-10))
		choice := []string{"yes", "no"}[i%2]
		sig := v.sign(testNet, apps.KindCast, "b", choice, 1)
		if i%7 == 0 {
			sig[0] ^= 1
		}
		r := b.signedCast(v, choice, 1, sig, sec(opens+int64(i)))
		if i%7 == 0 {
			bad = append(bad, r.ID)
		}
	}
	tl := b.tally()
	want := map[ledger.ID]string{}
	for _, id := range bad {
		want[id] = apps.RuleBadSignature
	}
	wantRules(t, tl.Violations, want)
	if tl.Voted != 150-len(bad) {
		t.Errorf("voted = %d, want %d", tl.Voted, 150-len(bad))
	}
}

// ---- text output ----

func TestWriteTally(t *testing.T) {
	b := newBallot(t, "yes", "no", "a-very-long-choice-name")
	b.register("alice", eid(1), sec(opens-10))
	b.register("bob", eid(2), sec(opens-10))
	b.register("carol", eid(3), sec(opens-10))
	b.cast("alice", eid(1), "yes", sec(opens+1))
	b.cast("bob", eid(2), "yes", sec(opens+1))
	b.cast("carol", eid(3), "no", sec(opens+1))
	dup := b.register("alice", eid(4), sec(opens+2))
	tl := b.tally()
	out := textOf(func(w *bytes.Buffer) { apps.WriteTally(w, tl) })
	wantLines(t, out,
		"ballot      b",
		"question    Which one?",
		"open        2027-01-15T08:00:00Z to 2027-01-15T09:00:00Z",
		"defined by  "+b.def.ID.String(),
		"yes                             2   66.7%",
		"no                              1   33.3%",
		"a-very-long-choice-name         0    0.0%",
		"voters      3 registered, 0 withdrawn, 3 effective, 3 voted",
		"records     8 (casts replaced by a later cast: 0)",
		"digest      "+tl.Digest.String(),
		"violations  1",
	)
	vline := fmt.Sprintf("  %s  %s  vote.register  duplicate-registration: ", dup.ID, "2027-01-15T08:00:02Z")
	if !strings.Contains(out, vline) || !strings.Contains(out, "(see "+b.recs[0].ID.String()+")") {
		t.Errorf("violation line missing; output:\n%s", out)
	}
	// With nobody voted the share is "-".
	e := newBallot(t, "yes", "no")
	out = textOf(func(w *bytes.Buffer) { apps.WriteTally(w, e.tally()) })
	wantLines(t, out, "yes            0       -", "violations  0")
	// JSON and text of one tally are stable.
	if !bytes.Equal(mustJSON(t, tl), mustJSON(t, b.tally())) {
		t.Error("two computations of the same tally differ")
	}
	var back apps.Tally
	if err := json.Unmarshal(mustJSON(t, tl), &back); err != nil || back.Digest != tl.Digest || back.DefinedBy != tl.DefinedBy {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}
}

// ---- the worked example of docs/APPLICATIONS.md §13 ----

func TestTallyWorkedExample(t *testing.T) {
	const (
		carolEID = "5f0c2e8b9a1d4473b6e0a9c3d2f18e47"
		alice3   = "a3e19b0c7d5f4e2a8b61c0d9f3e7a215"
		bobEID   = "e6d1c8a0b3f94725a1e8c6d0b2f7c493"
		alice5   = "0b7e4d2c9f1a3856e2c7b0a4d9e1f368"
	)
	def := map[string]any{"ballot": "council-2026", "question": "Adopt the 2026 budget?",
		"choices": []any{"yes", "no", "abstain"}, "opens": int64(1767225600), "closes": int64(1767229200)}
	v := func(voter, e string, kv ...any) map[string]any {
		p := map[string]any{"ballot": "council-2026", "voter": voter, "eid": e}
		for i := 0; i < len(kv); i += 2 {
			p[kv[i].(string)] = kv[i+1]
		}
		return p
	}
	rows := []struct {
		created int64
		kind    string
		p       map[string]any
	}{
		{1767222000000000000, apps.KindBallot, def},
		{1767222600000000000, apps.KindRegister, v("carol", carolEID)},
		{1767222960000000000, apps.KindRegister, v("alice", alice3)},
		{1767223020000000000, apps.KindRegister, v("bob", bobEID)},
		{1767223200000000000, apps.KindRegister, v("alice", alice5)},
		{1767225900000000000, apps.KindCast, v("bob", bobEID, "choice", "no")},
		{1767225900000000000, apps.KindCast, v("carol", carolEID, "choice", "yes")},
		{1767226200000000000, apps.KindCast, v("alice", alice3, "choice", "yes")},
		{1767226320000000000, apps.KindCast, v("alice", alice3, "choice", "no")},
		{1767226500000000000, apps.KindUncast, v("bob", bobEID)},
		{1767226800000000000, apps.KindWithdraw, v("carol", carolEID, "reason", "moved out of the district")},
		{1767227100000000000, apps.KindCast, v("carol", carolEID, "choice", "abstain")},
	}
	type rec struct {
		id      ledger.ID
		kind    string
		created int64
		raw     []byte
	}
	var all []rec
	for i, r := range rows {
		all = append(all, rec{smallID(byte(i + 1)), r.kind, r.created, enc(t, r.p)})
	}
	tallyOf := func(rows ...int) *apps.Tally {
		t.Helper()
		x := apps.NewIndex("council")
		for _, k := range rows {
			r := all[k-1]
			x.Add(r.id, r.kind, r.created, r.raw)
		}
		tl, err := x.Tally("council-2026")
		if err != nil {
			t.Fatal(err)
		}
		return tl
	}
	// Node A's and node B's chain orders give the same tally.
	a := tallyOf(1, 2, 3, 4, 6, 8, 9, 10, 11, 5, 7, 12)
	bt := tallyOf(1, 2, 5, 7, 12, 3, 4, 6, 8, 9, 10, 11)
	if ja, jb := mustJSON(t, a), mustJSON(t, bt); !bytes.Equal(ja, jb) {
		t.Fatalf("chain orders give different tallies:\n%s\n%s", ja, jb)
	}
	wantVotes(t, a, map[string]int{"no": 1})
	wantNums(t, a, tallyNums{registered: 3, withdrawn: 1, voted: 1, replaced: 1})
	if a.Effective != 2 || a.Records != 12 || a.DefinedBy != smallID(1) {
		t.Errorf("effective %d records %d defined_by %s", a.Effective, a.Records, a.DefinedBy)
	}
	var ids []ledger.ID
	for i := 1; i <= 12; i++ {
		ids = append(ids, smallID(byte(i)))
	}
	if a.Digest != digestOf(ids...) || a.Digest.String() != "61e2254a654d52063cb67b02257a2010d7722c2fa30bfcc6f380fe18dc87c9bb" {
		t.Errorf("digest = %s", a.Digest)
	}
	wantRules(t, a.Violations, map[ledger.ID]string{smallID(5): apps.RuleDupRegister, smallID(12): apps.RuleWithdrawn})
	ref3 := smallID(3)
	wantRef(t, a.Violations, smallID(5), &ref3)
	wantRef(t, a.Violations, smallID(12), nil)
	if a.Violations[0].ID != smallID(5) || a.Violations[0].Created != 1767223200000000000 || a.Violations[0].Kind != apps.KindRegister {
		t.Errorf("first violation = %+v", a.Violations[0])
	}

	// During the partition.
	pa := tallyOf(1, 2, 3, 4, 6, 8, 9, 10, 11)
	wantVotes(t, pa, map[string]int{"no": 1})
	wantNums(t, pa, tallyNums{registered: 3, withdrawn: 1, voted: 1, replaced: 1})
	wantRules(t, pa.Violations, nil)
	pb := tallyOf(1, 2, 5, 7, 12)
	wantVotes(t, pb, map[string]int{"abstain": 1})
	wantNums(t, pb, tallyNums{registered: 2, voted: 1, replaced: 1})
	wantRules(t, pb.Violations, nil)
}

func TestIndexBallotsAndKinds(t *testing.T) {
	b := newBallot(t, "yes", "no")
	b.register("alice", eid(1), sec(opens-10))
	b.cast("alice", eid(1), "yes", sec(opens+1))
	x := apps.NewIndex(testNet)
	if x.Network() != testNet {
		t.Errorf("Network = %q", x.Network())
	}
	add := func(id ledger.ID, kind string, created int64, p map[string]any) {
		x.Add(id, kind, created, enc(t, p))
	}
	add(ledger.ID{1}, apps.KindBallot, sec(opens-600), ballotPayload("b", "yes", "no"))
	add(ledger.ID{2}, apps.KindRegister, sec(opens-10), map[string]any{"ballot": "b", "voter": "alice", "eid": eid(1)})
	add(ledger.ID{3}, apps.KindCast, sec(opens+1), map[string]any{"ballot": "b", "voter": "alice", "eid": eid(1), "choice": "yes"})
	add(ledger.ID{4}, apps.KindBallot, sec(opens-600), ballotPayload("a", "x", "y"))
	// An invalid definition alone does not list a ballot.
	add(ledger.ID{5}, apps.KindBallot, sec(opens-600), map[string]any{"ballot": "c", "question": "Q", "choices": []any{"x"}, "closes": closes})
	add(ledger.ID{6}, "note.text", 1, map[string]any{"text": "hello"})
	add(ledger.ID{7}, "vote.future", 1, map[string]any{"ballot": "b"})
	bs := x.Ballots()
	if len(bs) != 2 || bs[0].Ballot != "a" || bs[1].Ballot != "b" || bs[1].Records != 3 || bs[1].Opens != opens || bs[1].Closes != closes || bs[1].Question != "Which one?" {
		t.Errorf("Ballots = %+v", bs)
	}
	k := x.Kinds()
	if k[apps.KindBallot] != 3 || k[apps.KindRegister] != 1 || k[apps.KindCast] != 1 || k[apps.KindUncast] != 0 || k[apps.KindFund] != 0 || len(k) != 12 {
		t.Errorf("Kinds = %v", k)
	}
	tl, err := x.Tally("b")
	if err != nil || tl.Voted != 1 || tl.Records != 3 {
		t.Errorf("Tally = %+v, %v", tl, err)
	}
	if _, err := x.Tally("c"); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("Tally(c) = %v, want ErrNotFound", err)
	}
}

func TestKnownReservedRoles(t *testing.T) {
	for _, k := range []string{apps.KindBallot, apps.KindRegister, apps.KindCast, apps.KindUncast, apps.KindWithdraw,
		apps.KindFund, apps.KindDonation, apps.KindDisbursement, apps.KindAccount, apps.KindAllocate, apps.KindUse, apps.KindTransfer} {
		if !apps.Known(k) || !apps.Reserved(k) {
			t.Errorf("%s: Known %v Reserved %v", k, apps.Known(k), apps.Reserved(k))
		}
	}
	for _, k := range []string{"vote.x", "charity.x", "resource.x", "file.publish"} {
		if apps.Known(k) || !apps.Reserved(k) {
			t.Errorf("%s: Known %v Reserved %v", k, apps.Known(k), apps.Reserved(k))
		}
	}
	for _, k := range []string{"note.text", "voter.x", "votes", "charityx"} {
		if apps.Reserved(k) {
			t.Errorf("%s is reserved", k)
		}
	}
	for k, r := range map[string]apps.Role{apps.KindBallot: apps.RoleAuthority, apps.KindRegister: apps.RoleAuthority,
		apps.KindWithdraw: apps.RoleAuthority, apps.KindCast: apps.RoleWriter, apps.KindUncast: apps.RoleWriter,
		apps.KindDonation: apps.RoleWriter, apps.KindTransfer: apps.RoleWriter, "note.text": apps.RoleWriter} {
		if got := apps.RequiredRole(k); got != r {
			t.Errorf("RequiredRole(%s) = %s, want %s", k, got, r)
		}
	}
}

// Only a signed record that counts uses up its sequence number
// (docs/APPLICATIONS.md §4.3, rule 11).
func TestTallySeqUsedOnlyByCountedRecords(t *testing.T) {
	b := newBallot(t, "yes", "no")
	v := newVoter("alice", 1, 1)
	b.registerKey(v, v.pub(), sec(opens-10))
	unknown := b.signedCast(v, "maybe", 5, v.sign(testNet, apps.KindCast, "b", "maybe", 5), sec(opens+1))
	counted := b.signedCast(v, "yes", 5, v.sign(testNet, apps.KindCast, "b", "yes", 5), sec(opens+2))
	unc := b.add(apps.KindUncast, sec(opens+3), map[string]any{"voter": "alice", "eid": v.eid, "seq": uint64(6),
		"sig": v.sign(testNet, apps.KindUncast, "b", "", 6)})
	nothing := b.add(apps.KindUncast, sec(opens+4), map[string]any{"voter": "alice", "eid": v.eid, "seq": uint64(7),
		"sig": v.sign(testNet, apps.KindUncast, "b", "", 7)})
	again := b.signedCast(v, "no", 7, v.sign(testNet, apps.KindCast, "b", "no", 7), sec(opens+5))
	tl := b.tally()
	wantVotes(t, tl, map[string]int{"no": 1})
	wantRules(t, tl.Violations, map[ledger.ID]string{unknown.ID: apps.RuleUnknownChoice, nothing.ID: apps.RuleNothingToUncast})
	_, _, _ = counted, unc, again
}

// An undecodable vote record is filed under the ballot and voter it names
// (docs/APPLICATIONS.md §3.2); one that names no ballot as text is in no tally.
func TestTallyUndecodableRecords(t *testing.T) {
	b := newBallot(t, "yes", "no")
	b.register("alice", eid(1), sec(opens-10))
	unknownKey := b.add(apps.KindCast, sec(opens+1), map[string]any{"voter": "alice", "eid": eid(1), "choice": "yes", "colour": "red"})
	wrongType := b.add(apps.KindCast, sec(opens+2), map[string]any{"voter": "alice", "eid": eid(1), "choice": int64(1)})
	if unknownKey.Ballot != "b" || unknownKey.Voter != "alice" || unknownKey.Invalid() == "" || wrongType.Ballot != "b" {
		t.Errorf("salvaged: %q/%q %q; %q", unknownKey.Ballot, unknownKey.Voter, unknownKey.Invalid(), wrongType.Ballot)
	}
	tl := b.tally()
	wantRules(t, tl.Violations, map[ledger.ID]string{unknownKey.ID: apps.RuleInvalid, wrongType.ID: apps.RuleInvalid})
	noBallot := apps.NewVoteRec(ledger.ID{7}, apps.KindCast, 1, enc(t, map[string]any{"ballot": int64(5), "voter": "alice", "eid": eid(1)}))
	if noBallot.Ballot != "" || noBallot.Invalid() == "" {
		t.Errorf("ballot %q invalid %q", noBallot.Ballot, noBallot.Invalid())
	}
	x := apps.NewIndex(testNet)
	x.Add(ledger.ID{7}, apps.KindCast, 1, enc(t, map[string]any{"ballot": int64(5), "voter": "alice", "eid": eid(1)}))
	if bs := x.Ballots(); len(bs) != 0 {
		t.Errorf("Ballots = %+v", bs)
	}
}
