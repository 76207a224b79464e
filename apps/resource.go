package apps

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/pyvnode/pyvnode/ledger"
)

// Resource record kinds, as small numbers in ResourceRec.
const (
	rAccount uint8 = iota + 1
	rAllocate
	rUse
	rTransfer
)

var resourceKinds = map[string]uint8{KindAccount: rAccount, KindAllocate: rAllocate, KindUse: rUse, KindTransfer: rTransfer}
var resourceKindNames = map[uint8]string{rAccount: KindAccount, rAllocate: KindAllocate, rUse: KindUse, rTransfer: KindTransfer}

type resourcePayload struct {
	Account   string `cbor:"account,omitempty"`   // account, allocate, use
	From      string `cbor:"from,omitempty"`      // transfer
	To        string `cbor:"to,omitempty"`        // transfer
	Unit      string `cbor:"unit,omitempty"`      // account: what it counts ("cpu-hours", "EUR")
	Overdraft bool   `cbor:"overdraft,omitempty"` // account: may the balance go below zero
	Amount    uint64 `cbor:"amount,omitempty"`    // allocate, use, transfer
	Note      string `cbor:"note,omitempty"`
}

// ResourceRec is what the report keeps of a resource record.
type ResourceRec struct {
	Key
	Kind      uint8
	Account   string // account, allocate, use; transfer: from
	To        string // transfer
	Unit      string
	Overdraft bool
	Amount    uint64
	Invalid   string
}

// KindName is the record kind.
func (r *ResourceRec) KindName() string { return resourceKindNames[r.Kind] }

func decodeResource(kind string, raw []byte) (*ResourceRec, error) {
	r := &ResourceRec{Kind: resourceKinds[kind]}
	var p resourcePayload
	if err := decodeStrict(raw, &p); err != nil {
		r.Account = salvage(raw, "account")
		if r.Kind == rTransfer {
			r.Account, r.To = salvage(raw, "from"), salvage(raw, "to")
		}
		return r, err
	}
	r.Account, r.To, r.Unit, r.Overdraft, r.Amount = p.Account, p.To, p.Unit, p.Overdraft, p.Amount
	if r.Kind == rTransfer {
		r.Account = p.From
	}
	if err := checkText("note", p.Note, 4096, true); err != nil {
		return r, err
	}
	if r.Kind == rTransfer {
		if p.Account != "" || p.Unit != "" || p.Overdraft {
			return r, fmt.Errorf("a transfer takes from, to, amount and note")
		}
		if err := checkID("from", p.From, MaxIDLen); err != nil {
			return r, err
		}
		if err := checkID("to", p.To, MaxIDLen); err != nil {
			return r, err
		}
		return r, checkAmount("amount", p.Amount)
	}
	if p.From != "" || p.To != "" {
		return r, fmt.Errorf("%s takes account, not from and to", kind)
	}
	if err := checkID("account", p.Account, MaxIDLen); err != nil {
		return r, err
	}
	if r.Kind == rAccount {
		if p.Amount != 0 {
			return r, fmt.Errorf("an account record takes no amount (allocate to it)")
		}
		return r, checkID("unit", p.Unit, MaxIDLen)
	}
	if p.Unit != "" || p.Overdraft {
		return r, fmt.Errorf("%s takes account, amount and note", kind)
	}
	return r, checkAmount("amount", p.Amount)
}

// NewResourceRec decodes a resource record for the report.
func NewResourceRec(id ledger.ID, kind string, created int64, payload []byte) *ResourceRec {
	r, err := decodeResource(kind, payload)
	r.Key = Key{Created: created, ID: id}
	if err != nil {
		r.Invalid = err.Error()
	}
	return r
}

// AccountReport is one account's position.
type AccountReport struct {
	Account   string    `json:"account" cbor:"account"`
	Unit      string    `json:"unit" cbor:"unit"`
	Overdraft bool      `json:"overdraft" cbor:"overdraft"`
	DefinedBy ledger.ID `json:"defined_by" cbor:"defined_by"`
	Balance   int64     `json:"balance" cbor:"balance"`
	Allocated uint64    `json:"allocated" cbor:"allocated"`
	Used      uint64    `json:"used" cbor:"used"`
	Sent      uint64    `json:"sent" cbor:"sent"`
	Received  uint64    `json:"received" cbor:"received"`
}

// Usage is what one account used in one period.
type Usage struct {
	Account string `json:"account" cbor:"account"`
	Period  string `json:"period" cbor:"period"`
	Amount  uint64 `json:"amount" cbor:"amount"`
	Count   int    `json:"count" cbor:"count"`
}

// ResourceReport covers every account.
type ResourceReport struct {
	Period     string          `json:"period" cbor:"period"` // day, month or year
	Accounts   []AccountReport `json:"accounts" cbor:"accounts"`
	Usage      []Usage         `json:"usage" cbor:"usage"`
	Records    int             `json:"records" cbor:"records"`
	Digest     ledger.Hash     `json:"digest" cbor:"digest"`
	Violations []Violation     `json:"violations" cbor:"violations"`
}

// PeriodOf names the UTC period a creation time falls in.
func PeriodOf(created int64, period string) string {
	t := time.Unix(0, created).UTC()
	switch period {
	case "day":
		return t.Format("2006-01-02")
	case "year":
		return t.Format("2006")
	}
	return t.Format("2006-01")
}

// CheckPeriod checks a report period name.
func CheckPeriod(p string) error {
	switch p {
	case "day", "month", "year":
		return nil
	}
	return fmt.Errorf("period %q: use day, month or year", p)
}

type resourceRun struct {
	period   string
	accounts map[string]*AccountReport
	defs     map[string]*ResourceRec
	usage    map[[2]string]*Usage
	emit     func(Violation)
}

func newResourceRun(period string, emit func(Violation)) *resourceRun {
	return &resourceRun{period: period, accounts: map[string]*AccountReport{}, defs: map[string]*ResourceRec{},
		usage: map[[2]string]*Usage{}, emit: emit}
}

const maxBalance = MaxTotal

func (x *resourceRun) apply(r *ResourceRec) bool {
	kind := r.KindName()
	bad := func(rule, detail string, ref *ResourceRec) bool {
		var rk *Key
		if ref != nil {
			rk = &ref.Key
		}
		x.emit(newViolation(r.Key, kind, rule, detail, rk))
		return false
	}
	if r.Invalid != "" {
		return bad(RuleInvalid, r.Invalid, nil)
	}
	if r.Kind == rAccount {
		if d := x.defs[r.Account]; d != nil {
			return bad(RuleDuplicate, fmt.Sprintf("account %q is already defined", r.Account), d)
		}
		x.defs[r.Account] = r
		x.accounts[r.Account] = &AccountReport{Account: r.Account, Unit: r.Unit, Overdraft: r.Overdraft, DefinedBy: r.ID}
		return true
	}
	a := x.accounts[r.Account]
	if a == nil {
		return bad(RuleNoDefinition, fmt.Sprintf("account %q is not defined by an earlier record", r.Account), nil)
	}
	amt := int64(r.Amount)
	switch r.Kind {
	case rAllocate:
		if a.Balance+amt > maxBalance || a.Allocated+r.Amount > maxBalance {
			return bad(RuleOverflow, fmt.Sprintf("account %q's totals would overflow", r.Account), nil)
		}
		a.Balance += amt
		a.Allocated += r.Amount
	case rUse:
		if !a.Overdraft && a.Balance < amt {
			return bad(RuleOverdraft, fmt.Sprintf("uses %d %s but account %q holds %d and allows no overdraft", r.Amount, a.Unit, r.Account, a.Balance), nil)
		}
		if a.Balance-amt < -maxBalance || a.Used+r.Amount > maxBalance {
			return bad(RuleOverflow, fmt.Sprintf("account %q's totals would overflow", r.Account), nil)
		}
		a.Balance -= amt
		a.Used += r.Amount
		k := [2]string{r.Account, PeriodOf(r.Created, x.period)}
		u := x.usage[k]
		if u == nil {
			u = &Usage{Account: k[0], Period: k[1]}
			x.usage[k] = u
		}
		u.Amount += r.Amount
		u.Count++
	case rTransfer:
		to := x.accounts[r.To]
		switch {
		case to == nil:
			return bad(RuleNoDefinition, fmt.Sprintf("account %q is not defined by an earlier record", r.To), nil)
		case r.To == r.Account:
			return bad(RuleSameAccount, fmt.Sprintf("transfer from %q to itself", r.To), nil)
		case to.Unit != a.Unit:
			return bad(RuleCurrency, fmt.Sprintf("account %q counts %s, account %q counts %s", r.Account, a.Unit, r.To, to.Unit), x.defs[r.To])
		case !a.Overdraft && a.Balance < amt:
			return bad(RuleOverdraft, fmt.Sprintf("sends %d %s but account %q holds %d and allows no overdraft", r.Amount, a.Unit, r.Account, a.Balance), nil)
		case a.Balance-amt < -maxBalance || to.Balance+amt > maxBalance || a.Sent+r.Amount > maxBalance || to.Received+r.Amount > maxBalance:
			return bad(RuleOverflow, "the accounts' totals would overflow", nil)
		}
		a.Balance -= amt
		a.Sent += r.Amount
		to.Balance += amt
		to.Received += r.Amount
	}
	return true
}

func sortResource(recs []*ResourceRec) {
	cmp := func(a, b *ResourceRec) int { return a.Key.Compare(b.Key) }
	if !slices.IsSortedFunc(recs, cmp) {
		slices.SortFunc(recs, cmp)
	}
}

// ComputeResourceReport reports every account from all resource records
// (sorted in place). period is day, month or year. When account is not
// empty, only that account's lines are kept (violations too), but every
// record is replayed: transfers link accounts.
func ComputeResourceReport(recs []*ResourceRec, period, account string) (*ResourceReport, error) {
	if err := CheckPeriod(period); err != nil {
		return nil, err
	}
	sortResource(recs)
	viol := []Violation{}
	keep := map[ledger.ID]bool{}
	x := newResourceRun(period, func(v Violation) { viol = append(viol, v) })
	ids := make([]ledger.ID, 0, len(recs))
	for _, r := range recs {
		x.apply(r)
		if account == "" || r.Account == account || r.To == account {
			ids = append(ids, r.ID)
			keep[r.ID] = true
		}
	}
	rep := &ResourceReport{Period: period, Accounts: []AccountReport{}, Usage: []Usage{}}
	for _, k := range slices.Sorted(maps.Keys(x.accounts)) {
		if account == "" || k == account {
			rep.Accounts = append(rep.Accounts, *x.accounts[k])
		}
	}
	if account != "" && len(rep.Accounts) == 0 {
		return nil, fmt.Errorf("%w: no valid resource.account record defines account %q", ErrNotFound, account)
	}
	keys := slices.SortedFunc(maps.Keys(x.usage), func(a, b [2]string) int {
		if a[0] != b[0] {
			return cmpString(a[0], b[0])
		}
		return cmpString(a[1], b[1])
	})
	for _, k := range keys {
		if account == "" || k[0] == account {
			rep.Usage = append(rep.Usage, *x.usage[k])
		}
	}
	for _, v := range viol {
		if keep[v.ID] {
			rep.Violations = append(rep.Violations, v)
		}
	}
	if rep.Violations == nil {
		rep.Violations = []Violation{}
	}
	rep.Records, rep.Digest = len(ids), setDigest(ids)
	return rep, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkResourceSubmission replays every resource record with the candidate.
func checkResourceSubmission(recs []*ResourceRec, cand *ResourceRec) error {
	if cand.Invalid != "" {
		return &RefusedError{Violation{ID: cand.ID, Kind: cand.KindName(), Created: cand.Created, Rule: RuleInvalid, Detail: cand.Invalid}}
	}
	all := append(slices.Clone(recs), cand)
	sortResource(all)
	var mine *Violation
	x := newResourceRun("month", func(v Violation) {
		if v.ID == cand.ID {
			mine = &v
		}
	})
	for _, r := range all {
		x.apply(r)
	}
	if mine != nil {
		return &RefusedError{*mine}
	}
	return nil
}
