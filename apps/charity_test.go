package apps_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
)

// fundBuilder collects the records of one fund.
type fundBuilder struct {
	t    testing.TB
	ids  idGen
	fund string
	recs []*apps.CharityRec
}

const t0 = int64(1_800_000_000) * 1e9

func newFund(t testing.TB, currency string) (*fundBuilder, *apps.CharityRec) {
	f := &fundBuilder{t: t, fund: "relief"}
	def := f.add(apps.KindFund, t0, map[string]any{"name": "Flood relief", "currency": currency})
	return f, def
}

func (f *fundBuilder) add(kind string, created int64, p map[string]any) *apps.CharityRec {
	return f.addID(f.ids.next(), kind, created, p)
}

func (f *fundBuilder) addID(id ledger.ID, kind string, created int64, p map[string]any) *apps.CharityRec {
	f.t.Helper()
	if _, ok := p["fund"]; !ok {
		p["fund"] = f.fund
	}
	r := apps.NewCharityRec(id, kind, created, enc(f.t, p))
	f.recs = append(f.recs, r)
	return r
}

func (f *fundBuilder) donate(amount uint64, currency, source string, created int64) *apps.CharityRec {
	p := map[string]any{"currency": currency, "amount": amount}
	if source != "" {
		p["source"] = source
	}
	return f.add(apps.KindDonation, created, p)
}

func (f *fundBuilder) disburse(amount uint64, currency, target string, created int64) *apps.CharityRec {
	p := map[string]any{"currency": currency, "amount": amount}
	if target != "" {
		p["target"] = target
	}
	return f.add(apps.KindDisbursement, created, p)
}

func (f *fundBuilder) report() *apps.FundReport {
	f.t.Helper()
	r, err := apps.ComputeFundReport(f.fund, slices.Clone(f.recs))
	if err != nil {
		f.t.Fatalf("ComputeFundReport: %v", err)
	}
	if r.Balance != r.Received-r.Disbursed {
		f.t.Errorf("balance %d != received %d - disbursed %d", r.Balance, r.Received, r.Disbursed)
	}
	if r.Records != len(f.recs) {
		f.t.Errorf("records = %d, want %d", r.Records, len(f.recs))
	}
	var keys []apps.Key
	for _, x := range f.recs {
		keys = append(keys, x.Key)
	}
	if want := digestOf(canonicalIDs(keys)...); r.Digest != want {
		f.t.Errorf("digest = %s, want %s", r.Digest, want)
	}
	for _, bs := range [][]apps.Bucket{r.BySource, r.ByTarget} {
		if bs == nil {
			f.t.Error("bucket list is nil, want []")
		}
		if !slices.IsSortedFunc(bs, func(a, b apps.Bucket) int { return strings.Compare(a.Name, b.Name) }) {
			f.t.Errorf("buckets not sorted by name: %+v", bs)
		}
	}
	if r.Violations == nil {
		f.t.Error("violations is nil")
	}
	wantSortedViolations(f.t, r.Violations)
	return r
}

func TestFundReport(t *testing.T) {
	f, def := newFund(t, "EUR")
	f.donate(10000, "EUR", "appeal-2026", t0+1)
	f.donate(2550, "EUR", "", t0+2)
	f.donate(450, "EUR", "appeal-2026", t0+3)
	f.donate(99, "EUR", "Zeta corp", t0+4)
	usd := f.donate(1000, "USD", "appeal-2026", t0+5)
	f.disburse(8000, "EUR", "shelter", t0+6)
	over := f.disburse(6000, "EUR", "food", t0+7)
	f.disburse(1000, "EUR", "", t0+8)
	f.disburse(2000, "EUR", "food", t0+9)
	f.disburse(1, "EUR", "food", t0+10)
	r := f.report()
	if r.Fund != "relief" || r.Name != "Flood relief" || r.Currency != "EUR" || r.DefinedBy != def.ID {
		t.Errorf("header = %q %q %q %s", r.Fund, r.Name, r.Currency, r.DefinedBy)
	}
	if r.Received != 13099 || r.Disbursed != 11001 || r.Balance != 2098 || r.Donations != 4 || r.Disbursements != 4 {
		t.Errorf("received %d disbursed %d balance %d donations %d disbursements %d",
			r.Received, r.Disbursed, r.Balance, r.Donations, r.Disbursements)
	}
	wantSrc := []apps.Bucket{{Name: "", Amount: 2550, Count: 1}, {Name: "Zeta corp", Amount: 99, Count: 1}, {Name: "appeal-2026", Amount: 10450, Count: 2}}
	if !slices.Equal(r.BySource, wantSrc) {
		t.Errorf("by_source = %+v, want %+v", r.BySource, wantSrc)
	}
	wantTgt := []apps.Bucket{{Name: "", Amount: 1000, Count: 1}, {Name: "food", Amount: 2001, Count: 2}, {Name: "shelter", Amount: 8000, Count: 1}}
	if !slices.Equal(r.ByTarget, wantTgt) {
		t.Errorf("by_target = %+v, want %+v", r.ByTarget, wantTgt)
	}
	wantRules(t, r.Violations, map[ledger.ID]string{usd.ID: apps.RuleCurrency, over.ID: apps.RuleOverdraft})
	wantRef(t, r.Violations, usd.ID, &def.ID)
	wantRef(t, r.Violations, over.ID, nil)
	if v := findViolation(r.Violations, over.ID); !strings.Contains(v.Detail, "60.00 EUR") || v.Kind != apps.KindDisbursement {
		t.Errorf("insufficient-balance violation = %+v", v)
	}
}

func TestFundDisbursementExactBalance(t *testing.T) {
	f, _ := newFund(t, "EUR")
	f.donate(500, "EUR", "", t0+1)
	f.disburse(500, "EUR", "all", t0+2)
	last := f.disburse(1, "EUR", "more", t0+3)
	r := f.report()
	if r.Balance != 0 || r.Disbursed != 500 || r.Disbursements != 1 {
		t.Errorf("balance %d disbursed %d", r.Balance, r.Disbursed)
	}
	wantRules(t, r.Violations, map[ledger.ID]string{last.ID: apps.RuleOverdraft})
}

func TestFundCanonicalOrderDecidesOverdraft(t *testing.T) {
	// Two disbursements that together overdraw the fund, added in reverse:
	// the earlier-created one counts.
	f, _ := newFund(t, "EUR")
	f.donate(1000, "EUR", "", t0+1)
	late := f.disburse(800, "EUR", "b", t0+20)
	early := f.disburse(700, "EUR", "a", t0+10)
	r := f.report()
	wantRules(t, r.Violations, map[ledger.ID]string{late.ID: apps.RuleOverdraft})
	if r.Balance != 300 || len(r.ByTarget) != 1 || r.ByTarget[0].Name != "a" {
		t.Errorf("balance %d by_target %+v", r.Balance, r.ByTarget)
	}
	_ = early
	// A donation made later does not fund an earlier disbursement.
	g, _ := newFund(t, "EUR")
	d := g.disburse(100, "EUR", "", t0+5)
	g.donate(1000, "EUR", "", t0+6)
	wantRules(t, g.report().Violations, map[ledger.ID]string{d.ID: apps.RuleOverdraft})
}

func TestFundNoDefinitionAndDuplicate(t *testing.T) {
	f := &fundBuilder{t: t, fund: "relief"}
	early := f.add(apps.KindDonation, t0-1, map[string]any{"currency": "EUR", "amount": uint64(100)})
	def := f.add(apps.KindFund, t0, map[string]any{"name": "Relief", "currency": "EUR"})
	dup := f.add(apps.KindFund, t0+1, map[string]any{"name": "Other", "currency": "USD"})
	f.donate(200, "EUR", "", t0+2)
	usd := f.donate(300, "USD", "", t0+3)
	r := f.report()
	if r.Received != 200 || r.Name != "Relief" || r.Currency != "EUR" || r.DefinedBy != def.ID {
		t.Errorf("report = %+v", r)
	}
	wantRules(t, r.Violations, map[ledger.ID]string{early.ID: apps.RuleNoDefinition, dup.ID: apps.RuleDuplicate, usd.ID: apps.RuleCurrency})
	wantRef(t, r.Violations, dup.ID, &def.ID)
	wantRef(t, r.Violations, early.ID, nil)

	// No definition at all.
	g := &fundBuilder{t: t, fund: "ghost"}
	g.donate(5, "EUR", "", t0)
	if _, err := apps.ComputeFundReport("ghost", g.recs); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("ComputeFundReport(undefined) = %v, want ErrNotFound", err)
	}
	if _, err := apps.ComputeFundReport("none", nil); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("ComputeFundReport(nothing) = %v, want ErrNotFound", err)
	}
}

func TestFundOverflow(t *testing.T) {
	f, _ := newFund(t, "EUR")
	fits := int(apps.MaxTotal / apps.MaxAmount)
	for i := range fits {
		f.donate(apps.MaxAmount, "EUR", "big", t0+1+int64(i))
	}
	over := f.donate(apps.MaxAmount, "EUR", "big", t0+1+int64(fits))
	r := f.report()
	wantRules(t, r.Violations, map[ledger.ID]string{over.ID: apps.RuleOverflow})
	if r.Received != uint64(fits)*apps.MaxAmount || r.Donations != fits {
		t.Errorf("received %d donations %d", r.Received, r.Donations)
	}
}

func TestCharitySchema(t *testing.T) {
	fund := func(kv ...any) map[string]any {
		p := map[string]any{"fund": "relief", "name": "Relief", "currency": "EUR"}
		for i := 0; i < len(kv); i += 2 {
			p[kv[i].(string)] = kv[i+1]
		}
		return p
	}
	don := func(kv ...any) map[string]any {
		p := map[string]any{"fund": "relief", "currency": "EUR", "amount": uint64(100)}
		for i := 0; i < len(kv); i += 2 {
			p[kv[i].(string)] = kv[i+1]
		}
		return p
	}
	cases := []struct {
		name, kind string
		p          map[string]any
		ok         bool
	}{
		{"fund", apps.KindFund, fund(), true},
		{"fund with extras", apps.KindFund, fund("notes", "n", "purpose", "p", "operator", "o", "entity", "e",
			"reference", int64(42), "tags", []any{"a", "b"}, "meta", map[string]any{"x": true}, "blob", []byte{1, 2}), true},
		{"fund without name", apps.KindFund, map[string]any{"fund": "relief", "currency": "EUR"}, false},
		{"fund with amount", apps.KindFund, fund("amount", uint64(5)), false},
		{"fund with source", apps.KindFund, fund("source", "x"), false},
		{"fund with target", apps.KindFund, fund("target", "x"), false},
		{"lower-case currency", apps.KindFund, fund("currency", "eur"), false},
		{"four-letter currency", apps.KindFund, fund("currency", "EURO"), false},
		{"no currency", apps.KindFund, map[string]any{"fund": "relief", "name": "R"}, false},
		{"bad fund id", apps.KindFund, fund("fund", "re lief"), false},
		{"no fund id", apps.KindFund, map[string]any{"name": "R", "currency": "EUR"}, false},
		{"donation", apps.KindDonation, don("source", "appeal", "donor", "uid-00", "notes", "thanks"), true},
		{"donation with any extra key", apps.KindDonation, don("receipt-no", int64(7), "Anything", "goes"), true},
		{"donation amount 0", apps.KindDonation, don("amount", uint64(0)), false},
		{"donation amount above max", apps.KindDonation, don("amount", uint64(apps.MaxAmount)+1), false},
		{"donation amount max", apps.KindDonation, don("amount", uint64(apps.MaxAmount)), true},
		{"donation with target", apps.KindDonation, don("target", "x"), false},
		{"donation negative amount", apps.KindDonation, don("amount", int64(-5)), false},
		{"donation notes not text", apps.KindDonation, don("notes", int64(5)), false},
		{"donation notes too long", apps.KindDonation, don("notes", strings.Repeat("n", 4097)), false},
		{"donation notes with control char", apps.KindDonation, don("notes", "a\tb"), false},
		{"donation source 256", apps.KindDonation, don("source", strings.Repeat("s", 256)), true},
		{"donation source 257", apps.KindDonation, don("source", strings.Repeat("s", 257)), false},
		{"disbursement", apps.KindDisbursement, don("target", "shelter"), true},
		{"disbursement with source", apps.KindDisbursement, don("source", "x"), false},
		{"unknown charity kind", "charity.refund", don(), false},
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
				r := apps.NewCharityRec(ledger.ID{1}, c.kind, 1, raw)
				if (r.Invalid == "") != c.ok {
					t.Errorf("NewCharityRec invalid = %q, want ok=%v", r.Invalid, c.ok)
				}
				if r.KindName() != c.kind {
					t.Errorf("KindName = %q", r.KindName())
				}
			}
		})
	}
}

func TestFundInvalidRecordIsViolation(t *testing.T) {
	f, _ := newFund(t, "EUR")
	bad := f.add(apps.KindDonation, t0+1, map[string]any{"currency": "EUR", "amount": uint64(0)})
	f.donate(100, "EUR", "", t0+2)
	r := f.report()
	wantRules(t, r.Violations, map[ledger.ID]string{bad.ID: apps.RuleInvalid})
	if r.Received != 100 || r.Records != 3 {
		t.Errorf("received %d records %d", r.Received, r.Records)
	}
}

// The example of docs/APPLICATIONS.md §5.5.
func TestFundDocExample(t *testing.T) {
	f := &fundBuilder{t: t, fund: "relief"}
	f.addID(smallID(1), apps.KindFund, t0+1, map[string]any{"name": "Flood relief", "currency": "EUR"})
	f.addID(smallID(2), apps.KindDonation, t0+2, map[string]any{"currency": "EUR", "amount": uint64(10000), "source": "appeal-2026"})
	f.addID(smallID(3), apps.KindDonation, t0+3, map[string]any{"currency": "EUR", "amount": uint64(2550)})
	f.addID(smallID(4), apps.KindDonation, t0+4, map[string]any{"currency": "USD", "amount": uint64(1000)})
	f.addID(smallID(5), apps.KindDisbursement, t0+5, map[string]any{"currency": "EUR", "amount": uint64(8000), "target": "shelter"})
	f.addID(smallID(6), apps.KindDisbursement, t0+6, map[string]any{"currency": "EUR", "amount": uint64(6000), "target": "food"})
	r := f.report()
	if r.Received != 12550 || r.Disbursed != 8000 || r.Balance != 4550 || r.Donations != 2 || r.Disbursements != 1 || r.Records != 6 {
		t.Errorf("report = %+v", r)
	}
	if got := string(mustJSON(t, r.BySource)); got != `[{"name":"","amount":2550,"count":1},{"name":"appeal-2026","amount":10000,"count":1}]` {
		t.Errorf("by_source = %s", got)
	}
	if got := string(mustJSON(t, r.ByTarget)); got != `[{"name":"shelter","amount":8000,"count":1}]` {
		t.Errorf("by_target = %s", got)
	}
	wantRules(t, r.Violations, map[ledger.ID]string{smallID(4): apps.RuleCurrency, smallID(6): apps.RuleOverdraft})
	if r.Digest.String() != "16bee7dff58b6a9ee361573be27396e13b100152fe76fbef0b7ebad9fb0de1c0" {
		t.Errorf("digest = %s", r.Digest)
	}
}

func TestWriteFundReport(t *testing.T) {
	f, def := newFund(t, "EUR")
	f.donate(12550, "EUR", "", t0+1)
	f.donate(5, "EUR", "gala", t0+2)
	f.disburse(8000, "EUR", "shelter", t0+3)
	r := f.report()
	out := textOf(func(w *bytes.Buffer) { apps.WriteFundReport(w, r) })
	wantLines(t, out,
		"fund        relief  Flood relief",
		"defined by  "+def.ID.String(),
		"received    125.55 EUR  (2 donations)",
		"disbursed   80.00 EUR  (1 disbursements)",
		"balance     45.55 EUR",
		"by source",
		"  (not given)                              125.50 EUR  1",
		"  gala                                       0.05 EUR  1",
		"by target",
		"  shelter                                   80.00 EUR  1",
		"records     4",
		"digest      "+r.Digest.String(),
		"violations  0",
	)
	g, _ := newFund(t, "USD")
	out = textOf(func(w *bytes.Buffer) { apps.WriteFundReport(w, g.report()) })
	if strings.Count(out, "  (none)\n") != 2 {
		t.Errorf("empty buckets not shown as (none):\n%s", out)
	}
}

func TestIndexFunds(t *testing.T) {
	x := apps.NewIndex(testNet)
	var ids idGen
	add := func(kind string, p map[string]any) {
		x.Add(ids.next(), kind, t0+int64(ids.n), enc(t, p))
	}
	add(apps.KindDisbursement, map[string]any{"fund": "relief", "currency": "EUR", "amount": uint64(40)})
	add(apps.KindDonation, map[string]any{"fund": "relief", "currency": "EUR", "amount": uint64(100)})
	add(apps.KindDonation, map[string]any{"fund": "orphan", "currency": "EUR", "amount": uint64(1)})
	if _, err := x.FundReport("relief"); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("FundReport without a definition = %v, want ErrNotFound", err)
	}
	x.Add(ledger.ID{}, apps.KindFund, t0-1, enc(t, map[string]any{"fund": "relief", "name": "Flood relief", "currency": "EUR"}))
	r, err := x.FundReport("relief")
	if err != nil {
		t.Fatal(err)
	}
	// The disbursement was created before the donation here: it overdraws.
	if r.Received != 100 || r.Disbursed != 0 || len(r.Violations) != 1 || r.Violations[0].Rule != apps.RuleOverdraft {
		t.Errorf("report = %+v", r)
	}
	if got := x.Funds(); !slices.Equal(got, []string{"orphan", "relief"}) {
		t.Errorf("Funds = %v", got)
	}
	if k := x.Kinds(); k[apps.KindFund] != 1 || k[apps.KindDonation] != 2 || k[apps.KindDisbursement] != 1 {
		t.Errorf("Kinds = %v", k)
	}
}

// An undecodable charity record is filed under the fund it names as text
// (docs/APPLICATIONS.md §3.2) and reported as invalid.
func TestFundUndecodableRecords(t *testing.T) {
	f, _ := newFund(t, "EUR")
	notes := f.add(apps.KindDonation, t0+1, map[string]any{"currency": "EUR", "amount": uint64(100), "notes": int64(5)})
	name := f.add(apps.KindDonation, t0+2, map[string]any{"currency": "EUR", "amount": uint64(100), "name": "a\nb"})
	f.donate(7, "EUR", "", t0+3)
	if notes.Fund != "relief" || notes.Invalid == "" || name.Invalid == "" {
		t.Errorf("records: %+v %+v", notes, name)
	}
	r := f.report()
	wantRules(t, r.Violations, map[ledger.ID]string{notes.ID: apps.RuleInvalid, name.ID: apps.RuleInvalid})
	if r.Received != 7 || r.Records != 4 {
		t.Errorf("received %d records %d", r.Received, r.Records)
	}
	// A fund field that is not text files the record under no fund.
	x := apps.NewCharityRec(ledger.ID{1}, apps.KindDonation, 1, enc(t, map[string]any{"fund": int64(1), "currency": "EUR", "amount": uint64(1)}))
	if x.Fund != "" || x.Invalid == "" {
		t.Errorf("fund %q invalid %q", x.Fund, x.Invalid)
	}
}
