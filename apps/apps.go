// Package apps holds the applications that run on the chain: public voting,
// charity transparency and resource accounting. Each is a set of record kinds
// with a payload schema, rules, and views (a tally, a report) computed from
// the records.
//
// Every view is a pure function of the record set: the records are put in
// canonical order — creation time, then record id, both ascending — and
// replayed. A record that breaks a rule in that order does not count and is
// reported as a violation. Two nodes holding the same records therefore
// compute byte-identical views whatever order the records reached them in.
// The node refuses a submission that would be a violation at once; records
// that clash only after replication (two nodes accepted conflicting records
// during a partition) are sorted out by the canonical order.
//
// docs/APPLICATIONS.md describes every kind, rule and algorithm.
package apps

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/ledger"
)

// Record kinds.
const (
	KindBallot   = "vote.ballot"
	KindRegister = "vote.register"
	KindCast     = "vote.cast"
	KindUncast   = "vote.uncast"
	KindWithdraw = "vote.withdraw"

	KindFund         = "charity.fund"
	KindDonation     = "charity.donation"
	KindDisbursement = "charity.disbursement"

	KindAccount  = "resource.account"
	KindAllocate = "resource.allocate"
	KindUse      = "resource.use"
	KindTransfer = "resource.transfer"

	// KindFilePublish is made by the node's file.publish command only.
	KindFilePublish = "file.publish"
)

// reservedPrefixes name the kinds the applications own. Any other kind is a
// generic record with an arbitrary payload.
var reservedPrefixes = []string{"vote.", "charity.", "resource.", "file."}

// Reserved reports whether kind belongs to an application (or to files).
func Reserved(kind string) bool {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(kind, p) {
			return true
		}
	}
	return false
}

// Known reports whether kind is one this package defines.
func Known(kind string) bool {
	switch kind {
	case KindBallot, KindRegister, KindCast, KindUncast, KindWithdraw,
		KindFund, KindDonation, KindDisbursement,
		KindAccount, KindAllocate, KindUse, KindTransfer:
		return true
	}
	return false
}

// Role is what a submitting user needs for a kind.
type Role string

// Roles the applications ask for (the protocol maps them to accounts).
const (
	RoleWriter    Role = "writer"
	RoleAuthority Role = "authority"
)

// RequiredRole is the role a user needs to submit kind: the electoral
// authority makes ballots, registers voters and ends registrations; any
// writer submits the rest.
func RequiredRole(kind string) Role {
	switch kind {
	case KindBallot, KindRegister, KindWithdraw:
		return RoleAuthority
	}
	return RoleWriter
}

// MaxAmount bounds every amount: 2^53-1, so amounts stay exact in JSON
// readers that use doubles.
const MaxAmount = 1<<53 - 1

// MaxTotal bounds every total a report keeps (a fund's received, an
// account's allocated, used, sent and received, the absolute value of a
// balance): 2^62. A record that would pass it is an "overflow" violation.
// (Totals above 2^53 are exact in the JSON output but not in readers that
// parse numbers as doubles.)
const MaxTotal = 1 << 62

// Errors callers branch on.
var (
	// ErrRefused: the submission breaks a rule (a Violation says which).
	ErrRefused = errors.New("refused")
	// ErrInvalid: the payload does not fit the kind's schema.
	ErrInvalid = errors.New("invalid payload")
	// ErrNotFound: no such ballot, fund or account.
	ErrNotFound = errors.New("not found")
)

// Key is a record's place in the canonical order.
type Key struct {
	Created int64
	ID      ledger.ID
}

// Less orders keys by creation time, then id.
func (k Key) Less(o Key) bool {
	if k.Created != o.Created {
		return k.Created < o.Created
	}
	return bytes.Compare(k.ID[:], o.ID[:]) < 0
}

// Compare is Less as a three-way comparison.
func (k Key) Compare(o Key) int {
	switch {
	case k.Created < o.Created:
		return -1
	case k.Created > o.Created:
		return 1
	}
	return bytes.Compare(k.ID[:], o.ID[:])
}

// Violation is a record that does not count, and why.
type Violation struct {
	ID      ledger.ID  `json:"id" cbor:"id"`
	Kind    string     `json:"kind" cbor:"kind"`
	Created int64      `json:"created" cbor:"created"`
	Rule    string     `json:"rule" cbor:"rule"`
	Detail  string     `json:"detail" cbor:"detail"`
	Ref     *ledger.ID `json:"ref,omitempty" cbor:"ref,omitempty"` // the earlier record it clashes with
}

func (v Violation) Error() string {
	s := fmt.Sprintf("%s: %s", v.Rule, v.Detail)
	if v.Ref != nil {
		s += " (see record " + v.Ref.String() + ")"
	}
	return s
}

// newViolation reports the record at k; ref, when set, is the earlier
// record it clashes with.
func newViolation(k Key, kind, rule, detail string, ref *Key) Violation {
	v := Violation{ID: k.ID, Kind: kind, Created: k.Created, Rule: rule, Detail: detail}
	if ref != nil {
		id := ref.ID
		v.Ref = &id
	}
	return v
}

// RefusedError wraps the violation a refused submission would have been.
type RefusedError struct{ V Violation }

func (e *RefusedError) Error() string { return "refused: " + e.V.Error() }

// Unwrap makes errors.Is(err, ErrRefused) work.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Rules (the Violation.Rule values), documented in docs/APPLICATIONS.md.
const (
	RuleInvalid         = "invalid"                // payload does not fit the schema
	RuleDuplicate       = "duplicate"              // a second ballot, fund or account with the same id
	RuleNoDefinition    = "no-definition"          // refers to a ballot, fund or account not defined before it
	RuleOutsideWindow   = "outside-window"         // outside the ballot's time window
	RuleDupRegister     = "duplicate-registration" // voter already has an effective registration
	RuleNotRegistered   = "not-registered"         // no effective registration
	RuleWithdrawn       = "after-withdrawal"       // voter's registration was withdrawn
	RuleWrongEID        = "wrong-eid"              // electronic id differs from the registration's
	RuleBadSignature    = "bad-signature"          // voter signature missing or wrong
	RuleReplay          = "replayed"               // voter sequence number not above the last one
	RuleUnknownChoice   = "unknown-choice"         // choice not on the ballot
	RuleNothingToUncast = "nothing-to-uncast"      // uncast without a counted cast
	RuleCurrency        = "currency-mismatch"      // amount in another currency or unit
	RuleOverdraft       = "insufficient-balance"   // would take the balance below zero
	RuleOverflow        = "overflow"               // a total would pass MaxTotal
	RuleSameAccount     = "same-account"           // transfer to itself
	RuleEIDAllocated    = "eid-allocated-by-node"  // a client tried to choose the electronic id
)

// ---- payload decoding ----

var (
	strictDec cbor.DecMode // unknown payload fields are an error
	looseDec  cbor.DecMode // extra fields allowed (charity)
)

func init() {
	base := cbor.DecOptions{
		DupMapKey:       cbor.DupMapKeyEnforcedAPF,
		IndefLength:     cbor.IndefLengthForbidden,
		TagsMd:          cbor.TagsForbidden,
		IntDec:          cbor.IntDecConvertNone,
		MaxNestedLevels: ledger.MaxPayloadDepth + 4,
		DefaultMapType:  reflect.TypeOf(map[string]any(nil)),
		UTF8:            cbor.UTF8RejectInvalid,
		// Field names are exact: "Ballot" is not "ballot".
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
	}
	var err error
	if looseDec, err = base.DecMode(); err != nil {
		panic(err)
	}
	base.ExtraReturnErrors = cbor.ExtraDecErrorUnknownField
	if strictDec, err = base.DecMode(); err != nil {
		panic(err)
	}
}

func decodeStrict(raw []byte, v any) error {
	if err := strictDec.Unmarshal(raw, v); err != nil {
		return cleanCBORError(err)
	}
	return nil
}

func decodeLoose(raw []byte, v any) error {
	if err := looseDec.Unmarshal(raw, v); err != nil {
		return cleanCBORError(err)
	}
	return nil
}

// salvage takes one text field out of a payload that does not fit its
// schema, so the record can still be reported where it belongs.
func salvage(raw []byte, field string) string {
	m, err := ledger.DecodePayload(raw)
	if err != nil {
		return ""
	}
	s, _ := m[field].(string)
	return s
}

func cleanCBORError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "cbor: ")
	return errors.New(msg)
}

// checkID checks an identifier (ballot, fund, account, voter): 1 to max
// bytes of A-Z a-z 0-9 and . _ : -
func checkID(field, s string, max int) error {
	if len(s) == 0 || len(s) > max {
		return fmt.Errorf("%s must be 1 to %d characters, got %d", field, max, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return fmt.Errorf("%s %q: use A-Z a-z 0-9 . _ : -", field, s)
		}
	}
	return nil
}

// checkText checks free text: valid UTF-8 (the decoder already insists),
// no control characters, 1 to max bytes (0 allowed when optional).
func checkText(field, s string, max int, optional bool) error {
	if len(s) > max || len(s) == 0 && !optional {
		return fmt.Errorf("%s must be %d to %d bytes, got %d", field, boolInt(!optional), max, len(s))
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not UTF-8", field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s contains a control character", field)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func checkAmount(field string, a uint64) error {
	if a == 0 || a > MaxAmount {
		return fmt.Errorf("%s must be 1 to %d, got %d", field, uint64(MaxAmount), a)
	}
	return nil
}

// checkCurrency: three upper-case letters (ISO 4217 style).
func checkCurrency(field, c string) error {
	if len(c) != 3 || strings.ToUpper(c) != c || strings.IndexFunc(c, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return fmt.Errorf("%s must be three upper-case letters (ISO 4217), got %q", field, c)
	}
	return nil
}

// CheckPayload checks a payload against its kind's schema. Generic kinds
// (outside the reserved prefixes) take any payload; reserved kinds that
// this package does not define are refused.
func CheckPayload(kind string, payload []byte) error {
	if !Reserved(kind) {
		return nil
	}
	var err error
	switch {
	case strings.HasPrefix(kind, "vote."):
		if !Known(kind) {
			return fmt.Errorf("%w: %s: no such kind (vote.ballot, vote.register, vote.cast, vote.uncast, vote.withdraw)", ErrInvalid, kind)
		}
		_, err = decodeVote(kind, payload)
	case strings.HasPrefix(kind, "charity."):
		if !Known(kind) {
			return fmt.Errorf("%w: %s: no such kind (charity.fund, charity.donation, charity.disbursement)", ErrInvalid, kind)
		}
		_, err = decodeCharity(kind, payload)
	case strings.HasPrefix(kind, "resource."):
		if !Known(kind) {
			return fmt.Errorf("%w: %s: no such kind (resource.account, resource.allocate, resource.use, resource.transfer)", ErrInvalid, kind)
		}
		_, err = decodeResource(kind, payload)
	default: // file.*: made by the node's own commands
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, kind, err)
	}
	return nil
}

// CheckRecord is CheckPayload for a received record: it is what the node
// asks of records from peers before storing them. Reserved kinds this
// version does not know are let through (a newer node may define them)
// and ignored by the views.
func CheckRecord(rec *ledger.SignedRecord) error {
	if !Known(rec.Kind) {
		return nil
	}
	return CheckPayload(rec.Kind, rec.Payload)
}

// setDigest is SHA-256 over the 32-byte ids of the records a view read, in
// canonical order, so two readers can see at a glance that they worked on
// the same records. ids must already be in canonical order.
func setDigest(ids []ledger.ID) ledger.Hash {
	h := sha256.New()
	for i := range ids {
		h.Write(ids[i][:])
	}
	var out ledger.Hash
	copy(out[:], h.Sum(nil))
	return out
}
