package ledger

import (
	"time"
)

// Validator checks records against a network's rules. It is pure apart from
// the clock, which is only consulted when MaxFutureSkew is set.
type Validator struct {
	Genesis *Genesis
	// MaxFutureSkew refuses records created further than this in the future
	// of Now. Zero disables the check (chain verification must not depend on
	// the verifier's clock).
	MaxFutureSkew time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
	// Extra, when set, runs last on a record that passed every other check:
	// the applications' payload schemas (apps.CheckRecord).
	Extra func(*SignedRecord) error
}

// Decode decodes an envelope and runs every check on it.
func (v *Validator) Decode(b []byte) (*SignedRecord, error) {
	s, err := DecodeSignedRecord(b)
	if err != nil {
		return nil, err
	}
	if err := v.Check(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Check runs the network checks on an already decoded record, cheapest
// first: proof of work, originator rules, clock, then the signature.
func (v *Validator) Check(s *SignedRecord) error {
	if err := CheckPow(s.ID, v.Genesis.PowBits); err != nil {
		return err
	}
	if !v.Genesis.AllowedToOriginate(s.Kind, NodeID(s.Origin)) {
		return checkErr(ErrOriginator, "node %x may not originate %q on network %q", s.Origin[:8], s.Kind, v.Genesis.Network)
	}
	if v.MaxFutureSkew > 0 {
		now := time.Now
		if v.Now != nil {
			now = v.Now
		}
		if limit := now().Add(v.MaxFutureSkew).UnixNano(); s.Created > limit {
			return checkErr(ErrTime, "created %s, more than %s in the future",
				time.Unix(0, s.Created).UTC().Format(time.RFC3339Nano), v.MaxFutureSkew)
		}
	}
	if err := s.VerifySignature(v.Genesis.Network); err != nil {
		return err
	}
	if v.Extra != nil {
		if err := v.Extra(s); err != nil {
			return checkErr(ErrPayload, "%v", err)
		}
	}
	return nil
}
