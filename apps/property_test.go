package apps_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
)

// The property: every view is a function of the record set. A random but
// reproducible world of vote, charity and resource records, full of
// conflicts, gives byte-identical JSON and text whatever order the records
// are fed in, directly or through an Index; and the figures agree with a
// small reference implementation of docs/APPLICATIONS.md written here.

const (
	propSeeds    = 50
	propShuffles = 2
)

// genRec is a generated record with what the reference model needs.
type genRec struct {
	id      ledger.ID
	kind    string
	created int64
	payload []byte
	invalid bool
	// votes
	ballot, voter, eid, choice string
	seq                        uint64
	key, sig                   []byte
	// charity
	fund, currency, source, target string
	amount                         uint64
	// resources
	account, to, unit string
	overdraft         bool
}

// canon is the record's place in canonical order.
func (r *genRec) canon() apps.Key { return apps.Key{Created: r.created, ID: r.id} }

type world struct {
	seed uint64
	recs []*genRec
}

type worldGen struct {
	t   testing.TB
	rng *rand.Rand
	w   *world
	n   uint64
}

func (g *worldGen) add(r *genRec, p map[string]any) *genRec {
	g.n++
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], g.w.seed)
	binary.BigEndian.PutUint64(b[8:], g.n)
	r.id = sha256.Sum256(b[:])
	r.payload = enc(g.t, p)
	g.w.recs = append(g.w.recs, r)
	return r
}

func (g *worldGen) chance(p float64) bool { return g.rng.Float64() < p }

// slot is a creation time: opens + s seconds, s a multiple of 10 in [lo, hi],
// so that many records share a created time.
func (g *worldGen) slot(lo, hi int64) int64 {
	return sec(opens + lo + 10*g.rng.Int64N((hi-lo)/10+1))
}

func (g *worldGen) randEID() string { return fmt.Sprintf("%016x%016x", g.rng.Uint64(), g.rng.Uint64()) }

const propWindow = 900 // the generated ballots close 900 s after opens

var (
	mainChoices = []string{"yes", "no", "abstain"}
	altChoices  = []string{"abstain", "no", "yes", "maybe"}
)

func (g *worldGen) ballotDef(ballot string, choices []string, created int64) {
	p := ballotPayload(ballot, choices...)
	p["closes"] = opens + propWindow
	g.add(&genRec{kind: apps.KindBallot, created: created, ballot: ballot}, p)
}

func (g *worldGen) voteRec(kind, ballot, voter, e string, created int64, extra map[string]any) *genRec {
	r := &genRec{kind: kind, created: created, ballot: ballot, voter: voter, eid: e}
	p := map[string]any{"ballot": ballot, "voter": voter, "eid": e}
	for k, v := range extra {
		p[k] = v
		switch k {
		case "choice":
			r.choice = v.(string)
		case "seq":
			r.seq = v.(uint64)
		case "key":
			r.key = v.([]byte)
		case "sig":
			r.sig = v.([]byte)
		}
	}
	return g.add(r, p)
}

// voterKeys is a pool of voter keys the worlds draw from (making keys is
// slow under the race detector).
var voterKeys = sync.OnceValue(func() []ed25519.PrivateKey {
	keys := make([]ed25519.PrivateKey, 12)
	for i := range keys {
		seed := sha256.Sum256([]byte{byte(i), 'k'})
		keys[i] = ed25519.NewKeyFromSeed(seed[:])
	}
	return keys
})

func (g *worldGen) genBallot(ballot string, voters int) {
	g.ballotDef(ballot, mainChoices, sec(opens-500))
	if g.chance(0.3) { // a second definition, maybe the earlier one
		g.ballotDef(ballot, altChoices, g.slot(-700, -300))
	}
	if g.chance(0.3) { // an invalid definition
		g.add(&genRec{kind: apps.KindBallot, created: g.slot(-900, 0), ballot: ballot, invalid: true},
			map[string]any{"ballot": ballot, "question": "Q", "choices": []any{"one"}, "closes": opens + 1})
	}
	for i := range voters {
		voter := fmt.Sprintf("%s-v%02d", ballot, i)
		keyed := i%7 == 0
		var priv, priv2 ed25519.PrivateKey
		e1, e2 := g.randEID(), g.randEID()
		reg := func(e string, k ed25519.PrivateKey) {
			extra := map[string]any{}
			if k != nil {
				extra["key"] = []byte(k.Public().(ed25519.PublicKey))
			}
			g.voteRec(apps.KindRegister, ballot, voter, e, g.slot(-700, 950), extra)
		}
		if keyed {
			keys := voterKeys()
			k := g.rng.IntN(len(keys))
			priv, priv2 = keys[k], keys[(k+1+g.rng.IntN(len(keys)-1))%len(keys)]
		}
		reg(e1, priv)
		if g.chance(0.15) {
			reg(e2, priv2) // with different eid (and key): one of them is a duplicate
		}
		var last int64
		for range g.rng.IntN(4) {
			created := g.slot(-100, 1000)
			if last != 0 && g.chance(0.25) {
				created = last // two casts at the same instant (two nodes)
			}
			last = created
			e := e1
			switch {
			case g.chance(0.05):
				e = e2
			case g.chance(0.03):
				e = g.randEID()
			}
			if !keyed {
				choice := mainChoices[g.rng.IntN(3)]
				if g.chance(0.1) {
					choice = "nope"
				}
				g.voteRec(apps.KindCast, ballot, voter, e, created, map[string]any{"choice": choice})
				continue
			}
			choice := mainChoices[g.rng.IntN(3)]
			if g.chance(0.1) {
				choice = "nope"
			}
			seq := uint64(g.rng.IntN(6))
			extra := map[string]any{"choice": choice, "seq": seq}
			signer := priv
			if g.chance(0.1) {
				signer = priv2
			}
			if !g.chance(0.08) {
				sig := ed25519.Sign(signer, apps.VoterMessage(testNet, apps.KindCast, ballot, voter, e, choice, seq))
				if g.chance(0.08) {
					sig[5] ^= 0x10
				}
				extra["sig"] = sig
			}
			g.voteRec(apps.KindCast, ballot, voter, e, created, extra)
		}
		if g.chance(0.3) {
			extra := map[string]any{}
			if keyed {
				seq := uint64(g.rng.IntN(6))
				extra["seq"] = seq
				extra["sig"] = ed25519.Sign(priv, apps.VoterMessage(testNet, apps.KindUncast, ballot, voter, e1, "", seq))
			}
			g.voteRec(apps.KindUncast, ballot, voter, e1, g.slot(-100, 1000), extra)
		}
		if g.chance(0.12) {
			g.voteRec(apps.KindWithdraw, ballot, voter, e1, g.slot(-300, 1000), map[string]any{"reason": "r"})
		}
		if g.chance(0.04) { // invalid: upper-case eid
			r := g.voteRec(apps.KindCast, ballot, voter, strings.ToUpper(e1), g.slot(0, 800), map[string]any{"choice": "yes"})
			r.invalid = true
		}
	}
}

func (g *worldGen) charity(kind, fund, currency string, amount uint64, label string, created int64) *genRec {
	r := &genRec{kind: kind, created: created, fund: fund, currency: currency, amount: amount}
	p := map[string]any{"fund": fund, "currency": currency}
	switch kind {
	case apps.KindFund:
		p["name"] = "Fund " + fund
	case apps.KindDonation:
		p["amount"] = amount
		if label != "" {
			p["source"], r.source = label, label
		}
	case apps.KindDisbursement:
		p["amount"] = amount
		if label != "" {
			p["target"], r.target = label, label
		}
	}
	if g.chance(0.2) {
		p["notes"] = "extra fields are allowed"
		p["reference"] = int64(g.rng.IntN(1000))
	}
	return g.add(r, p)
}

func (g *worldGen) genFund(fund, currency, other string, n int) {
	base := sec(opens + 5000)
	at := func() int64 { return base + sec(int64(g.rng.IntN(120))) }
	g.charity(apps.KindFund, fund, currency, 0, "", base+sec(5))
	if g.chance(0.5) {
		g.charity(apps.KindDonation, fund, currency, 100, "early", base) // before the definition
	}
	if g.chance(0.3) {
		g.charity(apps.KindFund, fund, other, 0, "", at()) // a duplicate, maybe the earlier one
	}
	sources, targets := []string{"", "appeal", "gala", "Zeta"}, []string{"", "food", "shelter"}
	for range n {
		cur := currency
		if g.chance(0.1) {
			cur = other
		}
		if g.chance(0.55) {
			g.charity(apps.KindDonation, fund, cur, 1+g.rng.Uint64N(5000), sources[g.rng.IntN(len(sources))], at())
		} else {
			g.charity(apps.KindDisbursement, fund, cur, 1+g.rng.Uint64N(6000), targets[g.rng.IntN(len(targets))], at())
		}
	}
	if g.chance(0.5) {
		g.add(&genRec{kind: apps.KindDonation, created: at(), fund: fund, currency: currency, invalid: true},
			map[string]any{"fund": fund, "currency": currency, "amount": uint64(0)})
	}
}

func (g *worldGen) resource(kind string, created int64, p map[string]any) *genRec {
	r := &genRec{kind: kind, created: created}
	for k, v := range p {
		switch k {
		case "account", "from":
			r.account = v.(string)
		case "to":
			r.to = v.(string)
		case "unit":
			r.unit = v.(string)
		case "overdraft":
			r.overdraft = v.(bool)
		case "amount":
			r.amount = v.(uint64)
		}
	}
	return g.add(r, p)
}

func (g *worldGen) genResources(n int) {
	d0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	at := func() int64 {
		return d0 + int64(g.rng.IntN(90))*int64(24*time.Hour) + int64(g.rng.IntN(3))*int64(time.Hour)
	}
	g.resource(apps.KindAccount, d0, map[string]any{"account": "lab", "unit": "cpu"})
	g.resource(apps.KindAccount, d0, map[string]any{"account": "ops", "unit": "cpu", "overdraft": true})
	g.resource(apps.KindAccount, at(), map[string]any{"account": "eur", "unit": "EUR"})
	if g.chance(0.3) {
		g.resource(apps.KindAccount, at(), map[string]any{"account": "lab", "unit": "EUR", "overdraft": true})
	}
	names := []string{"lab", "ops", "eur", "ghost"}
	pick := func() string {
		if g.chance(0.05) {
			return "ghost"
		}
		return names[g.rng.IntN(3)]
	}
	for range n {
		amount := 1 + g.rng.Uint64N(50)
		switch g.rng.IntN(3) {
		case 0:
			g.resource(apps.KindAllocate, at(), map[string]any{"account": pick(), "amount": amount})
		case 1:
			g.resource(apps.KindUse, at(), map[string]any{"account": pick(), "amount": amount})
		default:
			g.resource(apps.KindTransfer, at(), map[string]any{"from": pick(), "to": pick(), "amount": amount})
		}
	}
	if g.chance(0.5) { // undecodable: an unknown field
		g.add(&genRec{kind: apps.KindUse, created: at(), account: "lab", invalid: true},
			map[string]any{"account": "lab", "amount": uint64(1), "colour": "red"})
	}
}

func genWorld(t testing.TB, seed uint64) *world {
	g := &worldGen{t: t, rng: rand.New(rand.NewPCG(seed, 0x5eed)), w: &world{seed: seed}}
	g.genBallot("b1", 26)
	g.genBallot("b2", 6)
	g.voteRec(apps.KindRegister, "ghost", "v", g.randEID(), g.slot(0, 10), nil) // a ballot nobody defines
	g.genFund("f1", "EUR", "USD", 40)
	g.genFund("f2", "USD", "EUR", 8)
	g.genResources(40)
	return g.w
}

var (
	propBallots   = []string{"b1", "b2", "ghost"}
	propFunds     = []string{"f1", "f2", "nofund"}
	propResources = [][2]string{{"month", ""}, {"day", "ops"}}
)

// views renders every view of recs (in the order given) as JSON and text.
func viewsDirect(t testing.TB, recs []*genRec) map[string]string {
	votes := map[string][2][]*apps.VoteRec{}
	funds := map[string][]*apps.CharityRec{}
	var res []*apps.ResourceRec
	for _, r := range recs {
		switch {
		case strings.HasPrefix(r.kind, "vote."):
			v := apps.NewVoteRec(r.id, r.kind, r.created, r.payload)
			p := votes[v.Ballot]
			if r.kind == apps.KindBallot {
				p[0] = append(p[0], v)
			} else {
				p[1] = append(p[1], v)
			}
			votes[v.Ballot] = p
		case strings.HasPrefix(r.kind, "charity."):
			c := apps.NewCharityRec(r.id, r.kind, r.created, r.payload)
			funds[c.Fund] = append(funds[c.Fund], c)
		default:
			res = append(res, apps.NewResourceRec(r.id, r.kind, r.created, r.payload))
		}
	}
	out := map[string]string{}
	for _, b := range propBallots {
		t, err := apps.ComputeTally(testNet, b, votes[b][0], votes[b][1])
		putView(out, "tally/"+b, t, err, func(w *bytes.Buffer) { apps.WriteTally(w, t) })
	}
	for _, f := range propFunds {
		r, err := apps.ComputeFundReport(f, funds[f])
		putView(out, "fund/"+f, r, err, func(w *bytes.Buffer) { apps.WriteFundReport(w, r) })
	}
	for _, pa := range propResources {
		r, err := apps.ComputeResourceReport(slices.Clone(res), pa[0], pa[1])
		putView(out, "resource/"+pa[0]+"/"+pa[1], r, err, func(w *bytes.Buffer) { apps.WriteResourceReport(w, r) })
	}
	return out
}

func viewsIndex(x *apps.Index) map[string]string {
	out := map[string]string{}
	for _, b := range propBallots {
		t, err := x.Tally(b)
		putView(out, "tally/"+b, t, err, func(w *bytes.Buffer) { apps.WriteTally(w, t) })
	}
	for _, f := range propFunds {
		r, err := x.FundReport(f)
		putView(out, "fund/"+f, r, err, func(w *bytes.Buffer) { apps.WriteFundReport(w, r) })
	}
	for _, pa := range propResources {
		r, err := x.ResourceReport(pa[0], pa[1])
		putView(out, "resource/"+pa[0]+"/"+pa[1], r, err, func(w *bytes.Buffer) { apps.WriteResourceReport(w, r) })
	}
	return out
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func putView(out map[string]string, name string, v any, err error, write func(*bytes.Buffer)) {
	if err != nil {
		// Index errors name the missing thing differently; both must be not-found.
		out[name] = fmt.Sprintf("error not-found=%v", strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "no "))
		return
	}
	js, jerr := jsonString(v)
	if jerr != nil {
		out[name] = "json error: " + jerr.Error()
		return
	}
	var b bytes.Buffer
	write(&b)
	out[name] = js
	out[name+"#text"] = b.String()
}

func compareViews(t testing.TB, what string, got, want map[string]string) bool {
	t.Helper()
	ok := true
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s: view %s differs:\n got %.600s\nwant %.600s", what, k, got[k], want[k])
			ok = false
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d views, want %d", what, len(got), len(want))
		ok = false
	}
	return ok
}

func TestViewsArePureFunctionsOfTheRecordSet(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]map[string]bool{"tally": {}, "fund": {}, "resource": {}}
	t.Run("seeds", func(t *testing.T) {
		for seed := uint64(1); seed <= propSeeds; seed++ {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				t.Parallel()
				mine := map[string]map[string]bool{"tally": {}, "fund": {}, "resource": {}}
				checkPurity(t, seed, mine)
				mu.Lock()
				defer mu.Unlock()
				for view, rules := range mine {
					for r := range rules {
						seen[view][r] = true
					}
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	// The generated worlds exercise every rule.
	wantSeen := map[string][]string{
		"tally": {apps.RuleInvalid, apps.RuleDuplicate, apps.RuleNoDefinition, apps.RuleOutsideWindow, apps.RuleWithdrawn,
			apps.RuleDupRegister, apps.RuleNotRegistered, apps.RuleWrongEID, apps.RuleBadSignature, apps.RuleReplay,
			apps.RuleUnknownChoice, apps.RuleNothingToUncast},
		"fund":     {apps.RuleInvalid, apps.RuleDuplicate, apps.RuleNoDefinition, apps.RuleCurrency, apps.RuleOverdraft},
		"resource": {apps.RuleInvalid, apps.RuleDuplicate, apps.RuleNoDefinition, apps.RuleCurrency, apps.RuleOverdraft, apps.RuleSameAccount},
	}
	for view, rules := range wantSeen {
		for _, r := range rules {
			if !seen[view][r] {
				t.Errorf("no generated %s violation has rule %s", view, r)
			}
		}
	}
}

func checkPurity(t *testing.T, seed uint64, seen map[string]map[string]bool) {
	w := genWorld(t, seed)
	if len(w.recs) < 150 {
		t.Fatalf("seed %d: only %d records generated", seed, len(w.recs))
	}
	canonical := slices.Clone(w.recs)
	slices.SortFunc(canonical, func(a, b *genRec) int { return a.canon().Compare(b.canon()) })
	want := viewsDirect(t, canonical)
	checkAgainstReference(t, seed, canonical, seen)

	rng := rand.New(rand.NewPCG(seed, 0x5aff1e))
	for k := range propShuffles {
		recs := slices.Clone(w.recs)
		rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		what := fmt.Sprintf("seed %d shuffle %d", seed, k)
		if !compareViews(t, what+" direct", viewsDirect(t, recs), want) {
			return
		}
		// Through an index: half the records, the views (which sort the
		// index's lists), then the rest, out of order.
		x := apps.NewIndex(testNet)
		half := len(recs) / 2
		for _, r := range recs[:half] {
			x.Add(r.id, r.kind, r.created, r.payload)
		}
		if k == 0 {
			if !compareViews(t, what+" index (half)", viewsIndex(x), viewsDirect(t, recs[:half])) {
				return
			}
		} else {
			x.Tally("b1")
			x.FundReport("f1")
			x.ResourceReport("month", "")
		}
		for _, r := range recs[half:] {
			x.Add(r.id, r.kind, r.created, r.payload)
		}
		if !compareViews(t, what+" index", viewsIndex(x), want) {
			return
		}
	}
}

// ---- the reference model ----

func checkAgainstReference(t *testing.T, seed uint64, canonical []*genRec, seen map[string]map[string]bool) {
	t.Helper()
	for _, b := range []string{"b1", "b2"} {
		var defs, recs []*apps.VoteRec
		var mine []*genRec
		for _, r := range canonical {
			if r.ballot != b || !strings.HasPrefix(r.kind, "vote.") {
				continue
			}
			mine = append(mine, r)
			v := apps.NewVoteRec(r.id, r.kind, r.created, r.payload)
			if (v.Invalid() != "") != r.invalid {
				t.Fatalf("seed %d: record %s invalid=%q, generated invalid=%v", seed, r.id, v.Invalid(), r.invalid)
			}
			if r.kind == apps.KindBallot {
				defs = append(defs, v)
			} else {
				recs = append(recs, v)
			}
		}
		got, err := apps.ComputeTally(testNet, b, defs, recs)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		ref := refTally(mine)
		what := fmt.Sprintf("seed %d ballot %s", seed, b)
		if got.DefinedBy != ref.def.id {
			t.Errorf("%s: defined_by %s, reference %s", what, got.DefinedBy, ref.def.id)
		}
		if !slices.Equal(got.Counts, ref.counts) {
			t.Errorf("%s: counts %v, reference %v", what, got.Counts, ref.counts)
		}
		if n := (tallyNums{got.Registered, got.Withdrawn, got.Voted, got.Replaced}); n != ref.nums {
			t.Errorf("%s: numbers %+v, reference %+v", what, n, ref.nums)
		}
		compareRules(t, what, got.Violations, ref.rules, ref.refs, seen["tally"])
	}
	for _, f := range []string{"f1", "f2"} {
		var recs []*apps.CharityRec
		var mine []*genRec
		for _, r := range canonical {
			if r.fund == f && strings.HasPrefix(r.kind, "charity.") {
				mine = append(mine, r)
				recs = append(recs, apps.NewCharityRec(r.id, r.kind, r.created, r.payload))
			}
		}
		got, err := apps.ComputeFundReport(f, recs)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		ref := refFund(mine)
		what := fmt.Sprintf("seed %d fund %s", seed, f)
		if got.Received != ref.received || got.Disbursed != ref.disbursed || got.Balance != ref.received-ref.disbursed ||
			got.Donations != ref.donations || got.Disbursements != ref.disbursements || got.Currency != ref.def.currency || got.DefinedBy != ref.def.id {
			t.Errorf("%s: report %+v, reference %+v", what, got, ref)
		}
		if !slices.Equal(got.BySource, ref.buckets(ref.bySource)) || !slices.Equal(got.ByTarget, ref.buckets(ref.byTarget)) {
			t.Errorf("%s: buckets %+v %+v, reference %+v %+v", what, got.BySource, got.ByTarget, ref.bySource, ref.byTarget)
		}
		compareRules(t, what, got.Violations, ref.rules, ref.refs, seen["fund"])
	}
	var res []*apps.ResourceRec
	var mine []*genRec
	for _, r := range canonical {
		if strings.HasPrefix(r.kind, "resource.") {
			mine = append(mine, r)
			res = append(res, apps.NewResourceRec(r.id, r.kind, r.created, r.payload))
		}
	}
	got, err := apps.ComputeResourceReport(res, "month", "")
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	ref := refResources(mine)
	what := fmt.Sprintf("seed %d resources", seed)
	if len(got.Accounts) != len(ref.accounts) {
		t.Errorf("%s: %d accounts, reference %d", what, len(got.Accounts), len(ref.accounts))
	}
	for _, a := range got.Accounts {
		ra := ref.accounts[a.Account]
		if ra == nil || a.Balance != ra.balance || a.Allocated != ra.allocated || a.Used != ra.used || a.Sent != ra.sent ||
			a.Received != ra.received || a.Unit != ra.unit || a.Overdraft != ra.overdraft || a.DefinedBy != ra.def {
			t.Errorf("%s: account %+v, reference %+v", what, a, ra)
		}
	}
	var usage []apps.Usage
	for _, k := range slices.SortedFunc(maps.Keys(ref.usage), func(a, b [2]string) int {
		return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1])
	}) {
		usage = append(usage, apps.Usage{Account: k[0], Period: k[1], Amount: ref.usage[k][0], Count: int(ref.usage[k][1])})
	}
	if !slices.Equal(got.Usage, usage) && (len(usage) > 0 || len(got.Usage) > 0) {
		t.Errorf("%s: usage %+v, reference %+v", what, got.Usage, usage)
	}
	compareRules(t, what, got.Violations, ref.rules, ref.refs, seen["resource"])
}

func compareRules(t *testing.T, what string, vs []apps.Violation, rules map[ledger.ID]string, refs map[ledger.ID]ledger.ID, seen map[string]bool) {
	t.Helper()
	got := ruleMap(t, vs)
	for id, rule := range rules {
		if got[id] != rule {
			t.Errorf("%s: record %s: rule %q, reference %q", what, id.String()[:12], got[id], rule)
		}
	}
	for id, rule := range got {
		seen[rule] = true
		if _, ok := rules[id]; !ok {
			t.Errorf("%s: record %s: rule %q, the reference has none", what, id.String()[:12], rule)
		}
	}
	for _, v := range vs {
		want, hasRef := refs[v.ID]
		switch {
		case hasRef && (v.Ref == nil || *v.Ref != want):
			t.Errorf("%s: violation %s of %s: ref %v, reference %s", what, v.Rule, v.ID.String()[:12], v.Ref, want)
		case !hasRef && v.Ref != nil:
			t.Errorf("%s: violation %s of %s: ref %s, reference none", what, v.Rule, v.ID.String()[:12], v.Ref)
		}
	}
	wantSortedViolations(t, vs)
}

type refTallyOut struct {
	def    *genRec
	counts []apps.ChoiceCount
	nums   tallyNums
	rules  map[ledger.ID]string
	refs   map[ledger.ID]ledger.ID
}

// refTally is §4.3 of docs/APPLICATIONS.md, for records in canonical order.
func refTally(recs []*genRec) refTallyOut {
	out := refTallyOut{rules: map[ledger.ID]string{}, refs: map[ledger.ID]ledger.ID{}}
	var choices []string
	for _, r := range recs {
		if r.kind != apps.KindBallot {
			continue
		}
		switch {
		case r.invalid:
			out.rules[r.id] = apps.RuleInvalid
		case out.def != nil:
			out.rules[r.id], out.refs[r.id] = apps.RuleDuplicate, out.def.id
		default:
			out.def = r
			m, _ := ledger.DecodePayload(r.payload)
			for _, c := range m["choices"].([]any) {
				choices = append(choices, c.(string))
			}
		}
	}
	type state struct {
		reg, cast *genRec
		withdrawn bool
		last      *uint64
	}
	st := map[string]*state{}
	o, c := sec(opens), sec(opens+propWindow)
	for _, r := range recs {
		if r.kind == apps.KindBallot {
			continue
		}
		bad := func(rule string, ref *genRec) {
			out.rules[r.id] = rule
			if ref != nil {
				out.refs[r.id] = ref.id
			}
		}
		s := st[r.voter]
		if s == nil {
			s = &state{}
			st[r.voter] = s
		}
		signed := r.kind == apps.KindCast || r.kind == apps.KindUncast
		switch {
		case r.invalid:
			bad(apps.RuleInvalid, nil)
			continue
		case r.canon().Less(out.def.canon()):
			bad(apps.RuleNoDefinition, out.def)
			continue
		case signed && (r.created < o || r.created >= c), !signed && r.created >= c:
			bad(apps.RuleOutsideWindow, nil)
			continue
		case s.withdrawn:
			bad(apps.RuleWithdrawn, nil)
			continue
		case r.kind == apps.KindRegister && s.reg != nil:
			bad(apps.RuleDupRegister, s.reg)
			continue
		case r.kind == apps.KindRegister:
			s.reg = r
			out.nums.registered++
			continue
		case s.reg == nil:
			bad(apps.RuleNotRegistered, nil)
			continue
		case r.eid != s.reg.eid:
			bad(apps.RuleWrongEID, s.reg)
			continue
		}
		if signed && s.reg.key != nil {
			switch {
			case r.sig == nil:
				bad(apps.RuleBadSignature, s.reg)
				continue
			case s.last != nil && r.seq <= *s.last:
				bad(apps.RuleReplay, nil)
				continue
			case !ed25519.Verify(s.reg.key, apps.VoterMessage(testNet, r.kind, r.ballot, r.voter, r.eid, r.choice, r.seq), r.sig):
				bad(apps.RuleBadSignature, s.reg)
				continue
			}
		}
		switch r.kind {
		case apps.KindCast:
			if !slices.Contains(choices, r.choice) {
				bad(apps.RuleUnknownChoice, nil)
				continue
			}
			if s.cast != nil {
				out.nums.replaced++
			}
			s.cast = r
		case apps.KindUncast:
			if s.cast == nil {
				bad(apps.RuleNothingToUncast, nil)
				continue
			}
			s.cast = nil
		}
		if signed && s.reg.key != nil { // rule 11: a counted record uses up its seq
			seq := r.seq
			s.last = &seq
		}
		switch r.kind {
		case apps.KindWithdraw:
			s.withdrawn, s.cast = true, nil
			out.nums.withdrawn++
		}
	}
	votes := map[string]int{}
	for _, s := range st {
		if s.cast != nil {
			votes[s.cast.choice]++
			out.nums.voted++
		}
	}
	for _, ch := range choices {
		out.counts = append(out.counts, apps.ChoiceCount{Choice: ch, Votes: votes[ch]})
	}
	return out
}

type refFundOut struct {
	def                      *genRec
	received, disbursed      uint64
	donations, disbursements int
	bySource, byTarget       map[string][2]uint64
	rules                    map[ledger.ID]string
	refs                     map[ledger.ID]ledger.ID
}

func (f refFundOut) buckets(m map[string][2]uint64) []apps.Bucket {
	out := []apps.Bucket{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, apps.Bucket{Name: k, Amount: m[k][0], Count: int(m[k][1])})
	}
	return out
}

// refFund is §5.2 (amounts here are far from the overflow bound).
func refFund(recs []*genRec) refFundOut {
	out := refFundOut{bySource: map[string][2]uint64{}, byTarget: map[string][2]uint64{}, rules: map[ledger.ID]string{}, refs: map[ledger.ID]ledger.ID{}}
	for _, r := range recs {
		switch {
		case r.invalid:
			out.rules[r.id] = apps.RuleInvalid
		case r.kind == apps.KindFund && out.def != nil:
			out.rules[r.id], out.refs[r.id] = apps.RuleDuplicate, out.def.id
		case r.kind == apps.KindFund:
			out.def = r
		case out.def == nil:
			out.rules[r.id] = apps.RuleNoDefinition
		case r.currency != out.def.currency:
			out.rules[r.id], out.refs[r.id] = apps.RuleCurrency, out.def.id
		case r.kind == apps.KindDonation:
			out.received += r.amount
			out.donations++
			b := out.bySource[r.source]
			out.bySource[r.source] = [2]uint64{b[0] + r.amount, b[1] + 1}
		case r.amount > out.received-out.disbursed:
			out.rules[r.id] = apps.RuleOverdraft
		default:
			out.disbursed += r.amount
			out.disbursements++
			b := out.byTarget[r.target]
			out.byTarget[r.target] = [2]uint64{b[0] + r.amount, b[1] + 1}
		}
	}
	return out
}

type refAccount struct {
	unit                            string
	overdraft                       bool
	def                             ledger.ID
	balance                         int64
	allocated, used, sent, received uint64
}

type refResOut struct {
	accounts map[string]*refAccount
	usage    map[[2]string][2]uint64
	rules    map[ledger.ID]string
	refs     map[ledger.ID]ledger.ID
}

// refResources is §6.2 with period month (far from the overflow bound).
func refResources(recs []*genRec) refResOut {
	out := refResOut{accounts: map[string]*refAccount{}, usage: map[[2]string][2]uint64{}, rules: map[ledger.ID]string{}, refs: map[ledger.ID]ledger.ID{}}
	for _, r := range recs {
		a := out.accounts[r.account]
		bad := func(rule string) { out.rules[r.id] = rule }
		switch {
		case r.invalid:
			bad(apps.RuleInvalid)
		case r.kind == apps.KindAccount && a != nil:
			bad(apps.RuleDuplicate)
			out.refs[r.id] = a.def
		case r.kind == apps.KindAccount:
			out.accounts[r.account] = &refAccount{unit: r.unit, overdraft: r.overdraft, def: r.id}
		case a == nil:
			bad(apps.RuleNoDefinition)
		case r.kind == apps.KindAllocate:
			a.balance += int64(r.amount)
			a.allocated += r.amount
		case r.kind == apps.KindUse:
			if !a.overdraft && a.balance < int64(r.amount) {
				bad(apps.RuleOverdraft)
				continue
			}
			a.balance -= int64(r.amount)
			a.used += r.amount
			k := [2]string{r.account, time.Unix(0, r.created).UTC().Format("2006-01")}
			u := out.usage[k]
			out.usage[k] = [2]uint64{u[0] + r.amount, u[1] + 1}
		default: // transfer
			to := out.accounts[r.to]
			switch {
			case to == nil:
				bad(apps.RuleNoDefinition)
			case r.to == r.account:
				bad(apps.RuleSameAccount)
			case to.unit != a.unit:
				bad(apps.RuleCurrency)
				out.refs[r.id] = to.def
			case !a.overdraft && a.balance < int64(r.amount):
				bad(apps.RuleOverdraft)
			default:
				a.balance -= int64(r.amount)
				a.sent += r.amount
				to.balance += int64(r.amount)
				to.received += r.amount
			}
		}
	}
	return out
}
