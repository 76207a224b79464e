package apps

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/pyvnode/pyvnode/ledger"
)

// Vote record kinds, as small numbers in VoteRec.
const (
	vBallot uint8 = iota + 1
	vRegister
	vCast
	vUncast
	vWithdraw
)

var voteKinds = map[string]uint8{KindBallot: vBallot, KindRegister: vRegister, KindCast: vCast, KindUncast: vUncast, KindWithdraw: vWithdraw}
var voteKindNames = map[uint8]string{vBallot: KindBallot, vRegister: KindRegister, vCast: KindCast, vUncast: KindUncast, vWithdraw: KindWithdraw}

// Limits of the vote payloads.
const (
	MaxIDLen       = 64  // ballot, fund and account ids
	MaxVoterLen    = 128 // voter ids
	MaxQuestionLen = 1024
	MaxChoices     = 64
	MaxChoiceLen   = 256
	EIDHexLen      = 32 // 128-bit electronic id, lowercase hex
)

// Payload schemas (docs/APPLICATIONS.md, "Votes").
type ballotPayload struct {
	Ballot   string   `cbor:"ballot"`
	Question string   `cbor:"question"`
	Choices  []string `cbor:"choices"`
	Opens    int64    `cbor:"opens"`  // Unix seconds, inclusive
	Closes   int64    `cbor:"closes"` // Unix seconds, exclusive
}

type votePayload struct {
	Ballot string `cbor:"ballot"`
	Voter  string `cbor:"voter"`
	EID    string `cbor:"eid"`
	Key    []byte `cbor:"key,omitempty"`    // register: the voter's Ed25519 public key (optional)
	Choice string `cbor:"choice,omitempty"` // cast
	Seq    uint64 `cbor:"seq,omitempty"`    // cast, uncast: the voter's sequence number (with a key)
	Sig    []byte `cbor:"sig,omitempty"`    // cast, uncast: the voter's signature (with a key)
	Reason string `cbor:"reason,omitempty"` // withdraw
}

// BallotDef is a ballot as its vote.ballot record defines it.
type BallotDef struct {
	Ballot   string   `json:"ballot" cbor:"ballot"`
	Question string   `json:"question" cbor:"question"`
	Choices  []string `json:"choices" cbor:"choices"`
	Opens    int64    `json:"opens" cbor:"opens"`
	Closes   int64    `json:"closes" cbor:"closes"`
}

// VoteRec is what the views keep of a vote record.
type VoteRec struct {
	Key
	Kind   uint8
	Ballot string
	Voter  string
	EID    string
	Choice string
	Seq    uint64
	x      *voteExtra // what few records have
}

type voteExtra struct {
	vkey    []byte     // register: voter key
	sig     []byte     // cast, uncast: voter signature
	def     *BallotDef // ballot records
	invalid string     // why the payload does not fit, if it does not
}

func (r *VoteRec) extra() *voteExtra {
	if r.x == nil {
		r.x = &voteExtra{}
	}
	return r.x
}

// VKey is a registration's voter key (nil: none).
func (r *VoteRec) VKey() []byte {
	if r.x == nil {
		return nil
	}
	return r.x.vkey
}

// Sig is a cast's or uncast's voter signature (nil: none).
func (r *VoteRec) Sig() []byte {
	if r.x == nil {
		return nil
	}
	return r.x.sig
}

// Def is a ballot record's definition (nil for other kinds and invalid ones).
func (r *VoteRec) Def() *BallotDef {
	if r.x == nil {
		return nil
	}
	return r.x.def
}

// Invalid says why the payload does not fit its kind ("" when it does).
func (r *VoteRec) Invalid() string {
	if r.x == nil {
		return ""
	}
	return r.x.invalid
}

// KindName is the record kind.
func (r *VoteRec) KindName() string { return voteKindNames[r.Kind] }

func decodeVote(kind string, raw []byte) (*VoteRec, error) {
	r := &VoteRec{}
	return r, decodeVoteInto(r, kind, raw, nil)
}

// interner shares the strings many records repeat (ballot ids, choices)
// within one decoding goroutine.
type interner map[string]string

func (in interner) get(b []byte) string {
	if s, ok := in[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(in) < 1024 {
		in[s] = s
	}
	return s
}

// fastVotePayload reads the common vote payload — text keys this kind may
// have, each with the right type — without reflection. Ballot ids and
// choices come from the interner; the voter id and eid share one
// allocation. It reports false for anything else, which the strict decoder
// then reads (and explains).
func fastVotePayload(raw []byte, p *votePayload, in interner) bool {
	m, n, i, ok := ledger.ReadCBORHead(raw, 0)
	if !ok || m != 5 || n > 8 {
		return false
	}
	text := func(i int) ([]byte, int, bool) {
		m, l, next, ok := ledger.ReadCBORHead(raw, i)
		if !ok || m != 3 || l > uint64(len(raw)-next) {
			return nil, 0, false
		}
		return raw[next : next+int(l)], next + int(l), true
	}
	var voter, eid []byte
	for range n {
		var key []byte
		if key, i, ok = text(i); !ok {
			return false
		}
		switch string(key) {
		case "ballot", "voter", "eid", "choice", "reason":
			var v []byte
			if v, i, ok = text(i); !ok || !utf8.Valid(v) {
				return false
			}
			switch string(key) {
			case "ballot":
				p.Ballot = in.get(v)
			case "voter":
				voter = v
			case "eid":
				eid = v
			case "choice":
				p.Choice = in.get(v)
			default:
				p.Reason = string(v)
			}
		case "seq":
			var m byte
			if m, p.Seq, i, ok = ledger.ReadCBORHead(raw, i); !ok || m != 0 {
				return false
			}
		case "key", "sig":
			m, l, next, ok := ledger.ReadCBORHead(raw, i)
			if !ok || m != 2 || l > uint64(len(raw)-next) {
				return false
			}
			b := make([]byte, l) // an empty byte string is present, not absent
			copy(b, raw[next:next+int(l)])
			i = next + int(l)
			if string(key) == "key" {
				p.Key = b
			} else {
				p.Sig = b
			}
		default:
			return false
		}
	}
	if i != len(raw) {
		return false
	}
	both := string(voter) + string(eid) // one allocation
	p.Voter, p.EID = both[:len(voter)], both[len(voter):]
	return true
}

func decodeVoteInto(r *VoteRec, kind string, raw []byte, in interner) error {
	r.Kind = voteKinds[kind]
	if r.Kind == vBallot {
		def, err := decodeBallot(r, raw)
		if def != nil {
			r.extra().def = def
		}
		return err
	}
	var p votePayload
	if in == nil {
		in = interner{}
	}
	if !fastVotePayload(raw, &p, in) {
		p = votePayload{}
		if err := decodeStrict(raw, &p); err != nil {
			// File the record under the ballot and voter it names, if it
			// names them, so the ballot's tally lists the violation.
			r.Ballot, r.Voter = salvage(raw, "ballot"), salvage(raw, "voter")
			return err
		}
	}
	return checkVotePayload(r, kind, &p)
}

func decodeBallot(r *VoteRec, raw []byte) (*BallotDef, error) {
	var p ballotPayload
	if err := decodeStrict(raw, &p); err != nil {
		r.Ballot = salvage(raw, "ballot")
		return nil, err
	}
	r.Ballot = p.Ballot
	if err := checkID("ballot", p.Ballot, MaxIDLen); err != nil {
		return nil, err
	}
	if err := checkText("question", p.Question, MaxQuestionLen, false); err != nil {
		return nil, err
	}
	if len(p.Choices) < 2 || len(p.Choices) > MaxChoices {
		return nil, fmt.Errorf("a ballot needs 2 to %d choices, got %d", MaxChoices, len(p.Choices))
	}
	seen := map[string]bool{}
	for _, c := range p.Choices {
		if err := checkText("choice", c, MaxChoiceLen, false); err != nil {
			return nil, err
		}
		if seen[c] {
			return nil, fmt.Errorf("choice %q appears twice", c)
		}
		seen[c] = true
	}
	if p.Opens < 0 || p.Closes <= p.Opens || p.Closes > 1<<33 {
		return nil, fmt.Errorf("need 0 <= opens < closes <= 2^33 (Unix seconds), got opens %d closes %d", p.Opens, p.Closes)
	}
	return &BallotDef{Ballot: p.Ballot, Question: p.Question, Choices: p.Choices, Opens: p.Opens, Closes: p.Closes}, nil
}

// checkVotePayload applies the schema's rules to a decoded payload.
func checkVotePayload(r *VoteRec, kind string, p *votePayload) error {
	r.Ballot, r.Voter, r.EID, r.Choice, r.Seq = p.Ballot, p.Voter, p.EID, p.Choice, p.Seq
	if p.Key != nil || p.Sig != nil {
		x := r.extra()
		x.vkey, x.sig = p.Key, p.Sig
	}
	if err := checkID("ballot", p.Ballot, MaxIDLen); err != nil {
		return err
	}
	if err := checkID("voter", p.Voter, MaxVoterLen); err != nil {
		return err
	}
	if err := checkEID(p.EID); err != nil {
		return err
	}
	want := func(field string, ok bool) error {
		if !ok {
			return fmt.Errorf("%s does not take field %q", kind, field)
		}
		return nil
	}
	if err := errors.Join(
		want("key", p.Key == nil || r.Kind == vRegister),
		want("choice", p.Choice == "" || r.Kind == vCast),
		want("seq", p.Seq == 0 || r.Kind == vCast || r.Kind == vUncast),
		want("sig", p.Sig == nil || r.Kind == vCast || r.Kind == vUncast),
		want("reason", p.Reason == "" || r.Kind == vWithdraw),
	); err != nil {
		return err
	}
	if p.Key != nil && len(p.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("key must be %d bytes, got %d", ed25519.PublicKeySize, len(p.Key))
	}
	if p.Sig != nil && len(p.Sig) != ed25519.SignatureSize {
		return fmt.Errorf("sig must be %d bytes, got %d", ed25519.SignatureSize, len(p.Sig))
	}
	if r.Kind == vCast {
		if err := checkText("choice", p.Choice, MaxChoiceLen, false); err != nil {
			return err
		}
	}
	if err := checkText("reason", p.Reason, 1024, true); err != nil {
		return err
	}
	return nil
}

func checkEID(s string) error {
	if len(s) != EIDHexLen {
		return fmt.Errorf("eid must be %d lowercase hex digits, got %d characters", EIDHexLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("eid must be %d lowercase hex digits", EIDHexLen)
		}
	}
	return nil
}

// NewVoteRec decodes a vote record for the views. A payload that does not
// fit is kept with Invalid set: it shows up as a violation.
func NewVoteRec(id ledger.ID, kind string, created int64, payload []byte) *VoteRec {
	r := &VoteRec{}
	newVoteRecInto(r, id, kind, created, payload, nil)
	return r
}

func newVoteRecInto(r *VoteRec, id ledger.ID, kind string, created int64, payload []byte, in interner) {
	err := decodeVoteInto(r, kind, payload, in)
	r.Key = Key{Created: created, ID: id}
	if err != nil {
		x := r.extra()
		x.invalid, x.def = err.Error(), nil
	}
}

// VoterMessage is what a voter signs for a cast or uncast (action is
// "vote.cast" or "vote.uncast"; choice is empty for an uncast). Ids and
// choices cannot hold a newline, so the lines are unambiguous.
func VoterMessage(network, action, ballot, voter, eid, choice string, seq uint64) []byte {
	var b bytes.Buffer
	b.WriteString("pyvnode-vote/1\n")
	for _, s := range []string{network, action, ballot, voter, eid, choice, strconv.FormatUint(seq, 10)} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ChoiceCount is one line of a tally.
type ChoiceCount struct {
	Choice string `json:"choice" cbor:"choice"`
	Votes  int    `json:"votes" cbor:"votes"`
}

// Tally is the result of a ballot, computed from the records alone.
type Tally struct {
	Ballot    string        `json:"ballot" cbor:"ballot"`
	Question  string        `json:"question" cbor:"question"`
	Opens     int64         `json:"opens" cbor:"opens"`
	Closes    int64         `json:"closes" cbor:"closes"`
	DefinedBy ledger.ID     `json:"defined_by" cbor:"defined_by"`
	Counts    []ChoiceCount `json:"counts" cbor:"counts"`
	// Registered voters (an accepted registration), Withdrawn of them,
	// Effective = Registered - Withdrawn, Voted = voters whose cast counts.
	Registered int `json:"registered" cbor:"registered"`
	Withdrawn  int `json:"withdrawn" cbor:"withdrawn"`
	Effective  int `json:"effective" cbor:"effective"`
	Voted      int `json:"voted" cbor:"voted"`
	// Replaced counts casts that a later cast of the same voter replaced.
	Replaced int `json:"replaced" cbor:"replaced"`
	// Records is how many records name the ballot; Digest is SHA-256 over
	// their ids in canonical order.
	Records    int         `json:"records" cbor:"records"`
	Digest     ledger.Hash `json:"digest" cbor:"digest"`
	Violations []Violation `json:"violations" cbor:"violations"`
}

type voterState struct {
	reg       *VoteRec
	cast      *VoteRec
	withdrawn bool
	lastSeq   uint64
	seqSeen   bool
}

// ballotRun replays a ballot's records in canonical order.
type ballotRun struct {
	network string
	def     *VoteRec
	voters  map[string]int32 // voter -> index in states
	states  []voterState
	sigOK   func(i int, r *VoteRec, key []byte) bool
	emit    func(v Violation)
	// counters
	registered, withdrawn, replaced int
}

func violation(r Key, kind, rule, detail string, ref *VoteRec) Violation {
	if ref == nil {
		return newViolation(r, kind, rule, detail, nil)
	}
	return newViolation(r, kind, rule, detail, &ref.Key)
}

// apply replays record i; it reports whether the record counted.
func (b *ballotRun) apply(i int, r *VoteRec) bool {
	kind := r.KindName()
	bad := func(rule, detail string, ref *VoteRec) bool {
		b.emit(violation(r.Key, kind, rule, detail, ref))
		return false
	}
	if r.Invalid() != "" {
		return bad(RuleInvalid, r.Invalid(), nil)
	}
	d := b.def.Def()
	if r.Key.Less(b.def.Key) {
		return bad(RuleNoDefinition, fmt.Sprintf("ballot %q is defined by a later record", r.Ballot), b.def)
	}
	open, closes := d.Opens*1e9, d.Closes*1e9
	switch r.Kind {
	case vCast, vUncast:
		if r.Created < open || r.Created >= closes {
			return bad(RuleOutsideWindow, fmt.Sprintf("created %s; the ballot is open from %s until %s", fmtNanos(r.Created), fmtSeconds(d.Opens), fmtSeconds(d.Closes)), nil)
		}
	default:
		if r.Created >= closes {
			return bad(RuleOutsideWindow, fmt.Sprintf("created %s, after the ballot closed at %s", fmtNanos(r.Created), fmtSeconds(d.Closes)), nil)
		}
	}
	vi, ok := b.voters[r.Voter]
	if !ok {
		vi = int32(len(b.states))
		b.voters[r.Voter] = vi
		b.states = append(b.states, voterState{})
	}
	st := &b.states[vi]
	if st.withdrawn {
		return bad(RuleWithdrawn, fmt.Sprintf("voter %q was withdrawn from ballot %q", r.Voter, r.Ballot), nil)
	}
	if r.Kind == vRegister {
		if st.reg != nil {
			return bad(RuleDupRegister, fmt.Sprintf("voter %q is already registered for ballot %q", r.Voter, r.Ballot), st.reg)
		}
		st.reg = r
		b.registered++
		return true
	}
	if st.reg == nil {
		return bad(RuleNotRegistered, fmt.Sprintf("voter %q has no registration for ballot %q", r.Voter, r.Ballot), nil)
	}
	if r.EID != st.reg.EID {
		return bad(RuleWrongEID, fmt.Sprintf("eid %s is not voter %q's (%s)", r.EID, r.Voter, st.reg.EID), st.reg)
	}
	if (r.Kind == vCast || r.Kind == vUncast) && st.reg.VKey() != nil {
		if r.Sig() == nil {
			return bad(RuleBadSignature, fmt.Sprintf("voter %q registered a key; the record carries no signature", r.Voter), st.reg)
		}
		if st.seqSeen && r.Seq <= st.lastSeq {
			return bad(RuleReplay, fmt.Sprintf("sequence number %d is not above %d", r.Seq, st.lastSeq), nil)
		}
		if !b.sigOK(i, r, st.reg.VKey()) {
			return bad(RuleBadSignature, fmt.Sprintf("signature does not verify under voter %q's key", r.Voter), st.reg)
		}
	}
	switch r.Kind {
	case vCast:
		if !slices.Contains(d.Choices, r.Choice) {
			return bad(RuleUnknownChoice, fmt.Sprintf("%q is not a choice of ballot %q", r.Choice, r.Ballot), nil)
		}
		if st.cast != nil {
			b.replaced++
		}
		st.cast = r
	case vUncast:
		if st.cast == nil {
			return bad(RuleNothingToUncast, fmt.Sprintf("voter %q has no counted cast", r.Voter), nil)
		}
		st.cast = nil
	}
	if (r.Kind == vCast || r.Kind == vUncast) && st.reg.VKey() != nil {
		// Only a record that counts uses up its sequence number.
		st.lastSeq, st.seqSeen = r.Seq, true
	}
	switch r.Kind {
	case vWithdraw:
		st.withdrawn = true
		st.cast = nil
		b.withdrawn++
	}
	return true
}

func (b *ballotRun) verify(r *VoteRec, key []byte) bool {
	action := r.KindName()
	msg := VoterMessage(b.network, action, r.Ballot, r.Voter, r.EID, r.Choice, r.Seq)
	return ed25519.Verify(key, msg, r.Sig())
}

// sortVotes puts records in canonical order (in place) unless they already are.
func sortVotes(recs []*VoteRec) {
	cmp := func(a, b *VoteRec) int { return a.Key.Compare(b.Key) }
	if !slices.IsSortedFunc(recs, cmp) {
		slices.SortFunc(recs, cmp)
	}
}

// defineBallot finds the definition among the ballot records: the first
// valid one in canonical order. The others are violations.
func defineBallot(ballot string, defs []*VoteRec, emit func(Violation)) *VoteRec {
	sortVotes(defs)
	var def *VoteRec
	for _, d := range defs {
		switch {
		case d.Invalid() != "":
			emit(violation(d.Key, KindBallot, RuleInvalid, d.Invalid(), nil))
		case def != nil:
			emit(violation(d.Key, KindBallot, RuleDuplicate, fmt.Sprintf("ballot %q is already defined", ballot), def))
		default:
			def = d
		}
	}
	return def
}

// ComputeTally tallies a ballot from its records: defs are the vote.ballot
// records naming it, recs every other vote record naming it. Both slices
// are sorted in place. The result depends on the record set alone.
func ComputeTally(network, ballot string, defs, recs []*VoteRec) (*Tally, error) {
	var viol []Violation
	emit := func(v Violation) { viol = append(viol, v) }
	def := defineBallot(ballot, defs, emit)
	if def == nil {
		return nil, fmt.Errorf("%w: no valid vote.ballot record defines ballot %q", ErrNotFound, ballot)
	}
	sortVotes(recs)
	b := &ballotRun{network: network, def: def, voters: make(map[string]int32, len(recs)/2), states: make([]voterState, 0, len(recs)/2), emit: emit}
	// The digest reads every id: let another core do it meanwhile.
	digest := make(chan ledger.Hash, 1)
	go func() {
		// defs and recs are each in canonical order: merge them.
		ids := make([]ledger.ID, 0, len(defs)+len(recs))
		i, j := 0, 0
		for i < len(defs) || j < len(recs) {
			if j == len(recs) || i < len(defs) && defs[i].Key.Less(recs[j].Key) {
				ids = append(ids, defs[i].ID)
				i++
			} else {
				ids = append(ids, recs[j].ID)
				j++
			}
		}
		digest <- setDigest(ids)
	}()
	ok, keys := verifySignatures(network, def, recs)
	b.sigOK = func(i int, r *VoteRec, key []byte) bool {
		if ok[i] != sigUnchecked && bytes.Equal(keys[r.Voter], key) {
			return ok[i] == sigGood
		}
		return b.verify(r, key) // not checked against this key in the pre-pass
	}
	for i, r := range recs {
		b.apply(i, r)
	}
	d := def.Def()
	t := &Tally{Ballot: ballot, Question: d.Question, Opens: d.Opens, Closes: d.Closes, DefinedBy: def.ID,
		Registered: b.registered, Withdrawn: b.withdrawn, Effective: b.registered - b.withdrawn, Replaced: b.replaced}
	votes := map[string]int{}
	for i := range b.states {
		if st := &b.states[i]; st.cast != nil {
			votes[st.cast.Choice]++
			t.Voted++
		}
	}
	for _, c := range d.Choices {
		t.Counts = append(t.Counts, ChoiceCount{Choice: c, Votes: votes[c]})
	}
	t.Records = len(defs) + len(recs)
	t.Digest = <-digest
	slices.SortStableFunc(viol, func(a, b Violation) int { return Key{a.Created, a.ID}.Compare(Key{b.Created, b.ID}) })
	t.Violations = viol
	if t.Violations == nil {
		t.Violations = []Violation{}
	}
	return t, nil
}

const (
	sigUnchecked uint8 = iota
	sigGood
	sigBad
)

// verifySignatures checks, on every core, the signatures of casts and
// uncasts against the key of their voter's first registration in canonical
// order that can count (valid, after the definition, before the close: the
// only one that can be effective, as later ones are duplicates or come
// after a withdrawal). recs must be sorted. A cast checked against another
// key here is checked again during the replay.
func verifySignatures(network string, def *VoteRec, recs []*VoteRec) ([]uint8, map[string][]byte) {
	out := make([]uint8, len(recs))
	if !slices.ContainsFunc(recs, func(r *VoteRec) bool { return r.Sig() != nil }) {
		return out, nil
	}
	keys := map[string][]byte{}
	var todo []int
	for i, r := range recs {
		switch {
		case r.Invalid() != "":
		case r.Kind == vRegister:
			if r.Key.Less(def.Key) || r.Created >= def.Def().Closes*1e9 {
				continue
			}
			if _, ok := keys[r.Voter]; !ok {
				keys[r.Voter] = r.VKey() // nil: no key
			}
		case (r.Kind == vCast || r.Kind == vUncast) && r.Sig() != nil:
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return out, keys
	}
	workers := min(runtime.GOMAXPROCS(0), 1+len(todo)/64)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := w; j < len(todo); j += workers {
				i := todo[j]
				r := recs[i]
				key := keys[r.Voter]
				if key == nil {
					continue
				}
				msg := VoterMessage(network, r.KindName(), r.Ballot, r.Voter, r.EID, r.Choice, r.Seq)
				if ed25519.Verify(key, msg, r.Sig()) {
					out[i] = sigGood
				} else {
					out[i] = sigBad
				}
			}
		}()
	}
	wg.Wait()
	return out, keys
}

// checkVoteSubmission replays one voter's records with the candidate added
// and reports the candidate's violation, if any. defs are the ballot's
// definitions, recs the voter's records on it.
func checkVoteSubmission(network string, defs, recs []*VoteRec, cand *VoteRec) error {
	if cand.Invalid() != "" {
		return &RefusedError{violation(cand.Key, cand.KindName(), RuleInvalid, cand.Invalid(), nil)}
	}
	var mine *Violation
	emit := func(v Violation) {
		if v.ID == cand.ID && v.Created == cand.Created {
			mine = &v
		}
	}
	if cand.Kind == vBallot {
		all := append(slices.Clone(defs), cand)
		defineBallot(cand.Ballot, all, emit)
		if mine != nil {
			return &RefusedError{*mine}
		}
		return nil
	}
	def := defineBallot(cand.Ballot, slices.Clone(defs), func(Violation) {})
	if def == nil {
		return &RefusedError{violation(cand.Key, cand.KindName(), RuleNoDefinition, fmt.Sprintf("no ballot %q", cand.Ballot), nil)}
	}
	all := append(slices.Clone(recs), cand)
	sortVotes(all)
	b := &ballotRun{network: network, def: def, voters: map[string]int32{}, emit: emit}
	b.sigOK = func(_ int, r *VoteRec, key []byte) bool { return b.verify(r, key) }
	for i, r := range all {
		b.apply(i, r)
	}
	if mine != nil {
		return &RefusedError{*mine}
	}
	return nil
}
