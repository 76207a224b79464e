package apps_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
)

type resBuilder struct {
	t    testing.TB
	ids  idGen
	recs []*apps.ResourceRec
}

func (b *resBuilder) add(kind string, created int64, p map[string]any) *apps.ResourceRec {
	return b.addID(b.ids.next(), kind, created, p)
}

func (b *resBuilder) addID(id ledger.ID, kind string, created int64, p map[string]any) *apps.ResourceRec {
	b.t.Helper()
	r := apps.NewResourceRec(id, kind, created, enc(b.t, p))
	b.recs = append(b.recs, r)
	return r
}

func (b *resBuilder) account(name, unit string, overdraft bool, created int64) *apps.ResourceRec {
	p := map[string]any{"account": name, "unit": unit}
	if overdraft {
		p["overdraft"] = true
	}
	return b.add(apps.KindAccount, created, p)
}

func (b *resBuilder) allocate(name string, amount uint64, created int64) *apps.ResourceRec {
	return b.add(apps.KindAllocate, created, map[string]any{"account": name, "amount": amount})
}

func (b *resBuilder) use(name string, amount uint64, created int64) *apps.ResourceRec {
	return b.add(apps.KindUse, created, map[string]any{"account": name, "amount": amount})
}

func (b *resBuilder) transfer(from, to string, amount uint64, created int64) *apps.ResourceRec {
	return b.add(apps.KindTransfer, created, map[string]any{"from": from, "to": to, "amount": amount})
}

func (b *resBuilder) report(period, account string) *apps.ResourceReport {
	b.t.Helper()
	r, err := apps.ComputeResourceReport(slices.Clone(b.recs), period, account)
	if err != nil {
		b.t.Fatalf("ComputeResourceReport(%s, %q): %v", period, account, err)
	}
	if r.Period != period || r.Accounts == nil || r.Usage == nil || r.Violations == nil {
		b.t.Errorf("report period %q, nil lists: accounts %v usage %v violations %v", r.Period, r.Accounts == nil, r.Usage == nil, r.Violations == nil)
	}
	if !slices.IsSortedFunc(r.Accounts, func(a, c apps.AccountReport) int { return strings.Compare(a.Account, c.Account) }) {
		b.t.Errorf("accounts not sorted: %+v", r.Accounts)
	}
	if !slices.IsSortedFunc(r.Usage, func(a, c apps.Usage) int {
		if a.Account != c.Account {
			return strings.Compare(a.Account, c.Account)
		}
		return strings.Compare(a.Period, c.Period)
	}) {
		b.t.Errorf("usage not sorted: %+v", r.Usage)
	}
	wantSortedViolations(b.t, r.Violations)
	return r
}

func accountOf(r *apps.ResourceReport, name string) *apps.AccountReport {
	for i := range r.Accounts {
		if r.Accounts[i].Account == name {
			return &r.Accounts[i]
		}
	}
	return nil
}

type acctNums struct {
	balance                         int64
	allocated, used, sent, received uint64
}

func wantAccount(t testing.TB, r *apps.ResourceReport, name string, w acctNums) {
	t.Helper()
	a := accountOf(r, name)
	if a == nil {
		t.Errorf("no account %q in %+v", name, r.Accounts)
		return
	}
	if got := (acctNums{a.Balance, a.Allocated, a.Used, a.Sent, a.Received}); got != w {
		t.Errorf("account %s = %+v, want %+v", name, got, w)
	}
}

// day n of 2026, in Unix nanoseconds.
func day(month time.Month, d, hour int) int64 {
	return time.Date(2026, month, d, hour, 0, 0, 0, time.UTC).UnixNano()
}

func TestResourceBalances(t *testing.T) {
	b := &resBuilder{t: t}
	labDef := b.account("lab", "cpu-hours", false, day(1, 1, 0))
	opsDef := b.account("ops", "cpu-hours", true, day(1, 1, 1))
	eurDef := b.account("money", "EUR", false, day(1, 1, 2))
	b.allocate("lab", 100, day(1, 1, 3))
	b.use("lab", 30, day(1, 5, 0))
	b.transfer("lab", "ops", 50, day(1, 6, 0))
	overUse := b.use("lab", 30, day(2, 1, 0))
	b.use("ops", 70, day(2, 2, 0)) // overdraft: ops goes to -20
	overSend := b.transfer("lab", "ops", 21, day(2, 3, 0))
	b.transfer("ops", "lab", 5, day(2, 4, 0)) // ops may go further below zero
	unitMismatch := b.transfer("lab", "money", 1, day(2, 5, 0))
	self := b.transfer("lab", "lab", 1, day(2, 6, 0))
	toGhost := b.transfer("lab", "ghost", 1, day(2, 7, 0))
	fromGhost := b.transfer("ghost", "lab", 1, day(2, 8, 0))
	useGhost := b.use("ghost", 1, day(2, 9, 0))
	dupAcct := b.account("lab", "EUR", true, day(2, 10, 0))
	b.allocate("money", 1000, day(3, 1, 0))
	b.use("money", 1000, day(3, 2, 0))
	r := b.report("month", "")
	wantAccount(t, r, "lab", acctNums{balance: 25, allocated: 100, used: 30, sent: 50, received: 5})
	wantAccount(t, r, "ops", acctNums{balance: -25, used: 70, sent: 5, received: 50})
	wantAccount(t, r, "money", acctNums{allocated: 1000, used: 1000})
	if a := accountOf(r, "lab"); a.Unit != "cpu-hours" || a.Overdraft || a.DefinedBy != labDef.ID {
		t.Errorf("lab = %+v (the duplicate definition must not change it)", a)
	}
	if a := accountOf(r, "ops"); !a.Overdraft || a.DefinedBy != opsDef.ID {
		t.Errorf("ops = %+v", a)
	}
	if len(r.Accounts) != 3 || r.Accounts[0].Account != "lab" || r.Accounts[1].Account != "money" || r.Accounts[2].Account != "ops" {
		t.Errorf("accounts = %+v", r.Accounts)
	}
	wantRules(t, r.Violations, map[ledger.ID]string{
		overUse.ID: apps.RuleOverdraft, overSend.ID: apps.RuleOverdraft, unitMismatch.ID: apps.RuleCurrency,
		self.ID: apps.RuleSameAccount, toGhost.ID: apps.RuleNoDefinition, fromGhost.ID: apps.RuleNoDefinition,
		useGhost.ID: apps.RuleNoDefinition, dupAcct.ID: apps.RuleDuplicate,
	})
	wantRef(t, r.Violations, unitMismatch.ID, &eurDef.ID)
	wantRef(t, r.Violations, dupAcct.ID, &labDef.ID)
	wantRef(t, r.Violations, overUse.ID, nil)
	wantUsage := []apps.Usage{
		{Account: "lab", Period: "2026-01", Amount: 30, Count: 1},
		{Account: "money", Period: "2026-03", Amount: 1000, Count: 1},
		{Account: "ops", Period: "2026-02", Amount: 70, Count: 1},
	}
	if !slices.Equal(r.Usage, wantUsage) {
		t.Errorf("usage = %+v, want %+v", r.Usage, wantUsage)
	}
	if r.Records != len(b.recs) {
		t.Errorf("records = %d, want %d", r.Records, len(b.recs))
	}
	var keys []apps.Key
	for _, x := range b.recs {
		keys = append(keys, x.Key)
	}
	if r.Digest != digestOf(canonicalIDs(keys)...) {
		t.Errorf("digest = %s", r.Digest)
	}
}

func TestResourceOverdraftNeedsFlag(t *testing.T) {
	b := &resBuilder{t: t}
	b.account("strict", "u", false, day(1, 1, 0))
	b.account("loose", "u", true, day(1, 1, 0))
	b.allocate("strict", 10, day(1, 2, 0))
	refused := b.use("strict", 11, day(1, 3, 0))
	exact := b.use("strict", 10, day(1, 4, 0))
	neg := b.use("loose", 7, day(1, 3, 0))
	r := b.report("month", "")
	wantAccount(t, r, "strict", acctNums{balance: 0, allocated: 10, used: 10})
	wantAccount(t, r, "loose", acctNums{balance: -7, used: 7})
	wantRules(t, r.Violations, map[ledger.ID]string{refused.ID: apps.RuleOverdraft})
	_, _ = exact, neg
}

func TestResourceUsagePeriods(t *testing.T) {
	b := &resBuilder{t: t}
	b.account("a", "u", true, day(1, 1, 0))
	b.account("b", "u", true, day(1, 1, 0))
	b.use("a", 1, day(1, 1, 5))
	b.use("a", 2, day(1, 1, 23))
	b.use("a", 4, day(1, 2, 0))
	b.use("a", 8, day(2, 1, 0))
	b.use("b", 16, day(1, 1, 6))
	b.use("b", 32, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	b.use("b", 64, time.Date(2025, 12, 31, 23, 59, 59, 999999999, time.UTC).UnixNano()) // before b exists
	cases := []struct {
		period string
		want   []apps.Usage
	}{
		{"day", []apps.Usage{{"a", "2026-01-01", 3, 2}, {"a", "2026-01-02", 4, 1}, {"a", "2026-02-01", 8, 1},
			{"b", "2026-01-01", 16, 1}, {"b", "2027-01-01", 32, 1}}},
		{"month", []apps.Usage{{"a", "2026-01", 7, 3}, {"a", "2026-02", 8, 1}, {"b", "2026-01", 16, 1}, {"b", "2027-01", 32, 1}}},
		{"year", []apps.Usage{{"a", "2026", 15, 4}, {"b", "2026", 16, 1}, {"b", "2027", 32, 1}}},
	}
	for _, c := range cases {
		r := b.report(c.period, "")
		if !slices.Equal(r.Usage, c.want) {
			t.Errorf("%s usage = %+v, want %+v", c.period, r.Usage, c.want)
		}
		if len(r.Violations) != 1 || r.Violations[0].Rule != apps.RuleNoDefinition {
			t.Errorf("%s violations = %+v", c.period, r.Violations)
		}
	}
	if _, err := apps.ComputeResourceReport(b.recs, "week", ""); err == nil {
		t.Error("period week accepted")
	}
	for _, p := range []string{"day", "month", "year"} {
		if err := apps.CheckPeriod(p); err != nil {
			t.Errorf("CheckPeriod(%s) = %v", p, err)
		}
	}
	if apps.CheckPeriod("Month") == nil || apps.CheckPeriod("") == nil {
		t.Error("CheckPeriod accepts a bad period")
	}
	// PeriodOf is UTC.
	ns := time.Date(2026, 3, 31, 23, 30, 0, 0, time.FixedZone("x", -2*3600)).UnixNano() // 2026-04-01T01:30Z
	for p, want := range map[string]string{"day": "2026-04-01", "month": "2026-04", "year": "2026"} {
		if got := apps.PeriodOf(ns, p); got != want {
			t.Errorf("PeriodOf(%s) = %s, want %s", p, got, want)
		}
	}
}

func TestResourceAccountFilter(t *testing.T) {
	// The example of docs/APPLICATIONS.md §6.5.
	b := &resBuilder{t: t}
	at := func(m time.Month, d, h, min, s int) int64 {
		return time.Date(2026, m, d, h, min, s, 0, time.UTC).UnixNano()
	}
	r1 := b.addID(smallID(1), apps.KindAccount, at(1, 1, 0, 0, 0), map[string]any{"account": "lab", "unit": "cpu-hours"})
	r2 := b.addID(smallID(2), apps.KindAccount, at(1, 1, 0, 0, 1), map[string]any{"account": "ops", "unit": "cpu-hours", "overdraft": true})
	b.addID(smallID(3), apps.KindAllocate, at(1, 1, 1, 0, 0), map[string]any{"account": "lab", "amount": uint64(100)})
	b.addID(smallID(4), apps.KindUse, at(1, 5, 0, 0, 0), map[string]any{"account": "lab", "amount": uint64(30)})
	r5 := b.addID(smallID(5), apps.KindTransfer, at(1, 6, 0, 0, 0), map[string]any{"from": "lab", "to": "ops", "amount": uint64(50)})
	r6 := b.addID(smallID(6), apps.KindUse, at(2, 1, 0, 0, 0), map[string]any{"account": "lab", "amount": uint64(30)})
	r7 := b.addID(smallID(7), apps.KindUse, at(2, 2, 0, 0, 0), map[string]any{"account": "ops", "amount": uint64(70)})
	all := b.report("month", "")
	wantAccount(t, all, "lab", acctNums{balance: 20, allocated: 100, used: 30, sent: 50})
	wantAccount(t, all, "ops", acctNums{balance: -20, used: 70, received: 50})
	wantRules(t, all.Violations, map[ledger.ID]string{r6.ID: apps.RuleOverdraft})
	if all.Records != 7 || !slices.Equal(all.Usage, []apps.Usage{{"lab", "2026-01", 30, 1}, {"ops", "2026-02", 70, 1}}) {
		t.Errorf("records %d usage %+v", all.Records, all.Usage)
	}

	ops := b.report("day", "ops")
	if len(ops.Accounts) != 1 || ops.Accounts[0].Account != "ops" || ops.Accounts[0].Balance != -20 {
		t.Errorf("filtered accounts = %+v", ops.Accounts)
	}
	if !slices.Equal(ops.Usage, []apps.Usage{{"ops", "2026-02-02", 70, 1}}) {
		t.Errorf("filtered usage = %+v", ops.Usage)
	}
	if ops.Records != 3 || ops.Digest != digestOf(r2.ID, r5.ID, r7.ID) || len(ops.Violations) != 0 {
		t.Errorf("filtered records %d digest %s violations %+v", ops.Records, ops.Digest, ops.Violations)
	}
	lab := b.report("month", "lab")
	if lab.Records != 5 || len(lab.Violations) != 1 || lab.Violations[0].ID != r6.ID || len(lab.Accounts) != 1 {
		t.Errorf("lab report = %+v", lab)
	}
	_ = r1
	if _, err := apps.ComputeResourceReport(b.recs, "month", "ghost"); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("report for an undefined account = %v, want ErrNotFound", err)
	}
	// An empty record set is a valid, empty report.
	empty, err := apps.ComputeResourceReport(nil, "month", "")
	if err != nil || len(empty.Accounts) != 0 || empty.Records != 0 || empty.Digest != digestOf() {
		t.Errorf("empty report = %+v, %v", empty, err)
	}
	if empty.Digest.String() != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("empty digest = %s", empty.Digest)
	}
}

func TestResourceOverflow(t *testing.T) {
	b := &resBuilder{t: t}
	b.account("big", "u", false, day(1, 1, 0))
	b.account("neg", "u", true, day(1, 1, 0))
	fits := int(apps.MaxTotal / apps.MaxAmount)
	for i := range fits {
		b.allocate("big", apps.MaxAmount, day(1, 2, 0)+int64(i))
		b.use("neg", apps.MaxAmount, day(1, 2, 0)+int64(i))
	}
	over := b.allocate("big", apps.MaxAmount, day(1, 3, 0))
	under := b.use("neg", apps.MaxAmount, day(1, 3, 0))
	r := b.report("month", "")
	wantRules(t, r.Violations, map[ledger.ID]string{over.ID: apps.RuleOverflow, under.ID: apps.RuleOverflow})
	want := int64(fits) * apps.MaxAmount
	wantAccount(t, r, "big", acctNums{balance: want, allocated: uint64(want)})
	wantAccount(t, r, "neg", acctNums{balance: -want, used: uint64(want)})
}

func TestResourceSchema(t *testing.T) {
	cases := []struct {
		name, kind string
		p          map[string]any
		ok         bool
	}{
		{"account", apps.KindAccount, map[string]any{"account": "a", "unit": "cpu-hours", "overdraft": true, "note": "n"}, true},
		{"account without unit", apps.KindAccount, map[string]any{"account": "a"}, false},
		{"account with amount", apps.KindAccount, map[string]any{"account": "a", "unit": "u", "amount": uint64(1)}, false},
		{"account with from", apps.KindAccount, map[string]any{"account": "a", "unit": "u", "from": "b"}, false},
		{"account unknown field", apps.KindAccount, map[string]any{"account": "a", "unit": "u", "notes": "x"}, false},
		{"account overdraft not bool", apps.KindAccount, map[string]any{"account": "a", "unit": "u", "overdraft": "yes"}, false},
		{"bad unit", apps.KindAccount, map[string]any{"account": "a", "unit": "cpu hours"}, false},
		{"allocate", apps.KindAllocate, map[string]any{"account": "a", "amount": uint64(5)}, true},
		{"allocate amount 0", apps.KindAllocate, map[string]any{"account": "a", "amount": uint64(0)}, false},
		{"allocate above max", apps.KindAllocate, map[string]any{"account": "a", "amount": uint64(apps.MaxAmount) + 1}, false},
		{"allocate with unit", apps.KindAllocate, map[string]any{"account": "a", "amount": uint64(5), "unit": "u"}, false},
		{"allocate with overdraft", apps.KindAllocate, map[string]any{"account": "a", "amount": uint64(5), "overdraft": true}, false},
		{"use with to", apps.KindUse, map[string]any{"account": "a", "amount": uint64(5), "to": "b"}, false},
		{"use unknown field", apps.KindUse, map[string]any{"account": "a", "amount": uint64(5), "extra": int64(1)}, false},
		{"use bad account", apps.KindUse, map[string]any{"account": "a/b", "amount": uint64(5)}, false},
		{"transfer", apps.KindTransfer, map[string]any{"from": "a", "to": "b", "amount": uint64(5), "note": "x"}, true},
		{"transfer with account", apps.KindTransfer, map[string]any{"from": "a", "to": "b", "amount": uint64(5), "account": "a"}, false},
		{"transfer without to", apps.KindTransfer, map[string]any{"from": "a", "amount": uint64(5)}, false},
		{"transfer note with control char", apps.KindTransfer, map[string]any{"from": "a", "to": "b", "amount": uint64(5), "note": "\x01"}, false},
		{"unknown resource kind", "resource.burn", map[string]any{"account": "a", "amount": uint64(5)}, false},
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
				r := apps.NewResourceRec(ledger.ID{1}, c.kind, 1, raw)
				if (r.Invalid == "") != c.ok || r.KindName() != c.kind {
					t.Errorf("NewResourceRec invalid = %q kind %q, want ok=%v", r.Invalid, r.KindName(), c.ok)
				}
			}
		})
	}
}

func TestResourceInvalidRecordsReported(t *testing.T) {
	b := &resBuilder{t: t}
	b.account("a", "u", false, day(1, 1, 0))
	bad := b.add(apps.KindAllocate, day(1, 2, 0), map[string]any{"account": "a", "amount": uint64(5), "colour": "red"})
	badTransfer := b.add(apps.KindTransfer, day(1, 2, 0), map[string]any{"from": "a", "to": "b", "amount": uint64(0)})
	r := b.report("month", "")
	wantRules(t, r.Violations, map[ledger.ID]string{bad.ID: apps.RuleInvalid, badTransfer.ID: apps.RuleInvalid})
	wantAccount(t, r, "a", acctNums{})
	// The filter keeps them under the account they name.
	if fa := b.report("month", "a"); fa.Records != 3 || len(fa.Violations) != 2 {
		t.Errorf("filtered: records %d violations %+v", fa.Records, fa.Violations)
	}
}

func TestWriteResourceReport(t *testing.T) {
	b := &resBuilder{t: t}
	b.account("lab", "cpu-hours", false, day(1, 1, 0))
	b.account("ops", "cpu-hours", true, day(1, 1, 0))
	b.allocate("lab", 100, day(1, 2, 0))
	b.use("ops", 7, day(1, 3, 0))
	bad := b.use("lab", 1000, day(1, 4, 0))
	r := b.report("month", "")
	out := textOf(func(w *bytes.Buffer) { apps.WriteResourceReport(w, r) })
	wantLines(t, out,
		"account              unit                balance      allocated           used           sent       received  overdraft",
		"lab                  cpu-hours               100            100              0              0              0  no",
		"ops                  cpu-hours                -7              0              7              0              0  yes",
		"usage per month",
		"  ops                  2026-01                 7  (1 records)",
		"records     5",
		"digest      "+r.Digest.String(),
		"violations  1",
	)
	if !strings.Contains(out, "  "+bad.ID.String()+"  2026-01-04T00:00:00Z  resource.use  insufficient-balance: ") {
		t.Errorf("violation line missing:\n%s", out)
	}
	e := &resBuilder{t: t}
	out = textOf(func(w *bytes.Buffer) { apps.WriteResourceReport(w, e.report("year", "")) })
	wantLines(t, out, "usage per year", "  (none)", "records     0", "violations  0")
}

func TestIndexResourceReport(t *testing.T) {
	b := &resBuilder{t: t}
	b.account("lab", "u", false, day(1, 1, 0))
	b.allocate("lab", 10, day(1, 2, 0))
	b.use("lab", 4, day(1, 3, 0))
	want := b.report("day", "")
	x := apps.NewIndex(testNet)
	for i := len(b.recs) - 1; i >= 0; i-- { // reverse order
		r := b.recs[i]
		x.Add(r.ID, r.KindName(), r.Created, enc(t, payloadOfRes(r)))
	}
	got, err := x.ResourceReport("day", "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustJSON(t, got), mustJSON(t, want)) {
		t.Errorf("index report differs:\n%s\n%s", mustJSON(t, got), mustJSON(t, want))
	}
	if _, err := x.ResourceReport("fortnight", ""); err == nil {
		t.Error("bad period accepted")
	}
}

// payloadOfRes rebuilds the payload of a valid resource record.
func payloadOfRes(r *apps.ResourceRec) map[string]any {
	switch r.KindName() {
	case apps.KindAccount:
		p := map[string]any{"account": r.Account, "unit": r.Unit}
		if r.Overdraft {
			p["overdraft"] = true
		}
		return p
	case apps.KindTransfer:
		return map[string]any{"from": r.Account, "to": r.To, "amount": r.Amount}
	}
	return map[string]any{"account": r.Account, "amount": r.Amount}
}
