package apps

import (
	"fmt"
	"maps"
	"slices"

	"github.com/pyvnode/pyvnode/ledger"
)

// Charity record kinds, as small numbers in CharityRec.
const (
	cFund uint8 = iota + 1
	cDonation
	cDisbursement
)

var charityKinds = map[string]uint8{KindFund: cFund, KindDonation: cDonation, KindDisbursement: cDisbursement}
var charityKindNames = map[uint8]string{cFund: KindFund, cDonation: KindDonation, cDisbursement: KindDisbursement}

// charityPayload holds the fields the report reads; any other field is
// allowed and kept on the chain (notes, funding entity, a uid, ...).
type charityPayload struct {
	Fund     string `cbor:"fund"`
	Name     string `cbor:"name,omitempty"`     // fund
	Currency string `cbor:"currency"`           // ISO 4217 style, e.g. "EUR"
	Amount   uint64 `cbor:"amount,omitempty"`   // donation, disbursement: minor units (cents)
	Source   string `cbor:"source,omitempty"`   // donation: where the money came from
	Target   string `cbor:"target,omitempty"`   // disbursement: where it went
	Entity   string `cbor:"entity,omitempty"`   // funding entity / recipient organisation
	Donor    string `cbor:"donor,omitempty"`    // often a uid
	Notes    string `cbor:"notes,omitempty"`    // free text
	Purpose  string `cbor:"purpose,omitempty"`  // fund: what it is for
	Operator string `cbor:"operator,omitempty"` // fund: who runs it
}

// CharityRec is what the report keeps of a charity record.
type CharityRec struct {
	Key
	Kind     uint8
	Fund     string
	Name     string
	Currency string
	Amount   uint64
	Source   string
	Target   string
	Invalid  string
}

// KindName is the record kind.
func (r *CharityRec) KindName() string { return charityKindNames[r.Kind] }

const maxLabel = 256

func decodeCharity(kind string, raw []byte) (*CharityRec, error) {
	r := &CharityRec{Kind: charityKinds[kind]}
	var p charityPayload
	if err := decodeLoose(raw, &p); err != nil {
		r.Fund = salvage(raw, "fund")
		return r, err
	}
	r.Fund, r.Name, r.Currency, r.Amount, r.Source, r.Target = p.Fund, p.Name, p.Currency, p.Amount, p.Source, p.Target
	if err := checkID("fund", p.Fund, MaxIDLen); err != nil {
		return r, err
	}
	if err := checkCurrency("currency", p.Currency); err != nil {
		return r, err
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"name", p.Name, maxLabel}, {"source", p.Source, maxLabel}, {"target", p.Target, maxLabel}, {"entity", p.Entity, maxLabel},
		{"donor", p.Donor, maxLabel}, {"notes", p.Notes, 4096}, {"purpose", p.Purpose, 4096}, {"operator", p.Operator, maxLabel}} {
		if err := checkText(f.name, f.v, f.max, true); err != nil {
			return r, err
		}
	}
	switch r.Kind {
	case cFund:
		if err := checkText("name", p.Name, maxLabel, false); err != nil {
			return r, err
		}
		if p.Amount != 0 || p.Source != "" || p.Target != "" {
			return r, fmt.Errorf("a fund record takes no amount, source or target")
		}
	case cDonation:
		if err := checkAmount("amount", p.Amount); err != nil {
			return r, err
		}
		if p.Target != "" {
			return r, fmt.Errorf("a donation takes a source, not a target")
		}
	case cDisbursement:
		if err := checkAmount("amount", p.Amount); err != nil {
			return r, err
		}
		if p.Source != "" {
			return r, fmt.Errorf("a disbursement takes a target, not a source")
		}
	}
	return r, nil
}

// NewCharityRec decodes a charity record for the report.
func NewCharityRec(id ledger.ID, kind string, created int64, payload []byte) *CharityRec {
	r, err := decodeCharity(kind, payload)
	r.Key = Key{Created: created, ID: id}
	if err != nil {
		r.Invalid = err.Error()
	}
	return r
}

// Bucket is a total for one source or target.
type Bucket struct {
	Name   string `json:"name" cbor:"name"`
	Amount uint64 `json:"amount" cbor:"amount"`
	Count  int    `json:"count" cbor:"count"`
}

// FundReport is the public account of one fund.
type FundReport struct {
	Fund          string      `json:"fund" cbor:"fund"`
	Name          string      `json:"name" cbor:"name"`
	Currency      string      `json:"currency" cbor:"currency"`
	DefinedBy     ledger.ID   `json:"defined_by" cbor:"defined_by"`
	Received      uint64      `json:"received" cbor:"received"`
	Disbursed     uint64      `json:"disbursed" cbor:"disbursed"`
	Balance       uint64      `json:"balance" cbor:"balance"`
	Donations     int         `json:"donations" cbor:"donations"`
	Disbursements int         `json:"disbursements" cbor:"disbursements"`
	BySource      []Bucket    `json:"by_source" cbor:"by_source"`
	ByTarget      []Bucket    `json:"by_target" cbor:"by_target"`
	Records       int         `json:"records" cbor:"records"`
	Digest        ledger.Hash `json:"digest" cbor:"digest"`
	Violations    []Violation `json:"violations" cbor:"violations"`
}

// fundRun replays one fund's records in canonical order.
type fundRun struct {
	def      *CharityRec
	rep      *FundReport
	bySource map[string]*Bucket
	byTarget map[string]*Bucket
	emit     func(Violation)
}

func newFundRun(emit func(Violation)) *fundRun {
	return &fundRun{bySource: map[string]*Bucket{}, byTarget: map[string]*Bucket{}, emit: emit, rep: &FundReport{}}
}

func (f *fundRun) apply(r *CharityRec) bool {
	kind := r.KindName()
	bad := func(rule, detail string, ref *CharityRec) bool {
		var rk *Key
		if ref != nil {
			rk = &ref.Key
		}
		f.emit(newViolation(r.Key, kind, rule, detail, rk))
		return false
	}
	if r.Invalid != "" {
		return bad(RuleInvalid, r.Invalid, nil)
	}
	if r.Kind == cFund {
		if f.def != nil {
			return bad(RuleDuplicate, fmt.Sprintf("fund %q is already defined", r.Fund), f.def)
		}
		f.def = r
		f.rep.Fund, f.rep.Name, f.rep.Currency, f.rep.DefinedBy = r.Fund, r.Name, r.Currency, r.ID
		return true
	}
	if f.def == nil {
		return bad(RuleNoDefinition, fmt.Sprintf("fund %q is not defined by an earlier record", r.Fund), nil)
	}
	if r.Currency != f.def.Currency {
		return bad(RuleCurrency, fmt.Sprintf("amount in %s; fund %q keeps %s", r.Currency, r.Fund, f.def.Currency), f.def)
	}
	rep := f.rep
	switch r.Kind {
	case cDonation:
		if rep.Received+r.Amount > MaxTotal {
			return bad(RuleOverflow, "the fund's totals would overflow", nil)
		}
		rep.Received += r.Amount
		rep.Balance += r.Amount
		rep.Donations++
		addBucket(f.bySource, r.Source, r.Amount)
	case cDisbursement:
		if r.Amount > rep.Balance {
			return bad(RuleOverdraft, fmt.Sprintf("disburses %s but fund %q holds %s", FormatMoney(r.Amount, r.Currency), r.Fund, FormatMoney(rep.Balance, r.Currency)), nil)
		}
		rep.Disbursed += r.Amount
		rep.Balance -= r.Amount
		rep.Disbursements++
		addBucket(f.byTarget, r.Target, r.Amount)
	}
	return true
}

func addBucket(m map[string]*Bucket, name string, amount uint64) {
	b := m[name]
	if b == nil {
		b = &Bucket{Name: name}
		m[name] = b
	}
	b.Amount += amount
	b.Count++
}

func buckets(m map[string]*Bucket) []Bucket {
	out := []Bucket{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, *m[k])
	}
	return out
}

func sortCharity(recs []*CharityRec) {
	cmp := func(a, b *CharityRec) int { return a.Key.Compare(b.Key) }
	if !slices.IsSortedFunc(recs, cmp) {
		slices.SortFunc(recs, cmp)
	}
}

// ComputeFundReport reports a fund from every charity record naming it
// (sorted in place). It depends on the record set alone.
func ComputeFundReport(fund string, recs []*CharityRec) (*FundReport, error) {
	sortCharity(recs)
	viol := []Violation{}
	f := newFundRun(func(v Violation) { viol = append(viol, v) })
	ids := make([]ledger.ID, len(recs))
	for i, r := range recs {
		f.apply(r)
		ids[i] = r.ID
	}
	if f.def == nil {
		return nil, fmt.Errorf("%w: no valid charity.fund record defines fund %q", ErrNotFound, fund)
	}
	rep := f.rep
	rep.BySource, rep.ByTarget = buckets(f.bySource), buckets(f.byTarget)
	rep.Records, rep.Digest, rep.Violations = len(recs), setDigest(ids), viol
	return rep, nil
}

// checkCharitySubmission replays the fund with the candidate last.
func checkCharitySubmission(recs []*CharityRec, cand *CharityRec) error {
	if cand.Invalid != "" {
		return &RefusedError{Violation{ID: cand.ID, Kind: cand.KindName(), Created: cand.Created, Rule: RuleInvalid, Detail: cand.Invalid}}
	}
	all := append(slices.Clone(recs), cand)
	sortCharity(all)
	var mine *Violation
	f := newFundRun(func(v Violation) {
		if v.ID == cand.ID {
			mine = &v
		}
	})
	for _, r := range all {
		f.apply(r)
	}
	if mine != nil {
		return &RefusedError{*mine}
	}
	return nil
}
