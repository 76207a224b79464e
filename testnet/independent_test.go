package testnet_test

// An independent second implementation of the vote tally, written only from
// docs/APPLICATIONS.md (§2, §3, §4, §7, §8) and docs/FORMAT.md (§3, §11).
// It deliberately imports nothing from the project: it reads a
// `pyvnode chain export` file with the standard library and recomputes a
// ballot's tally, so that the spec and the code can be checked against each
// other.

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// indepTally is a tally computed by the independent reader.
type indepTally struct {
	Counts     map[string]int // choice -> votes, every choice of the ballot present
	Registered int
	Withdrawn  int
	Effective  int
	Voted      int
	Violations map[string]string // record id (64 lowercase hex) -> rule name
	Digest     string            // 64 lowercase hex
}

// independentTally reads a `pyvnode chain export` file (JSON lines: header,
// records, trailer) and tallies ballot following docs/APPLICATIONS.md.
func independentTally(exportPath, ballot string) (*indepTally, error) {
	network, recs, err := indReadExport(exportPath)
	if err != nil {
		return nil, err
	}
	res, err := indTallyFull(network, recs, ballot)
	if err != nil {
		return nil, err
	}
	return res.tally, nil
}

// ---------------------------------------------------------------------------
// Reading the export (FORMAT.md §11).

// indExportRecord is what the tally needs from one record line
// (APPLICATIONS.md §8 step 3: id, kind, created and payload).
type indExportRecord struct {
	id      [32]byte
	kind    string
	created uint64
	payload json.RawMessage
}

type indHeader struct {
	Format  string  `json:"format"`
	Network *string `json:"network"`
	From    *uint64 `json:"from"`
	Size    *uint64 `json:"size"`
}

type indLine struct {
	Height  *uint64         `json:"height"`
	ID      string          `json:"id"`
	Record  string          `json:"record"`
	Kind    string          `json:"kind"`
	Payload json.RawMessage `json:"payload"`
	Created *uint64         `json:"created"`
}

type indTrailer struct {
	End  bool    `json:"end"`
	Size *uint64 `json:"size"`
}

func indIsLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// indReadExport parses an export file and returns the network name and the
// record lines. It checks that every record's bytes hash to its id, that the
// export starts at height 0, and that it is complete (trailer present, sizes
// agree). It does not verify signatures, proof of work, links or the Merkle
// root.
func indReadExport(path string) (string, []indExportRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)

	var (
		network    string
		from, size uint64
		recs       []indExportRecord
		seen       = map[[32]byte]bool{}
		lineNo     int
		gotHeader  bool
		gotTrailer bool
	)
	for {
		line, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return "", nil, rerr
		}
		if len(line) == 0 && rerr == io.EOF {
			break
		}
		lineNo++
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			return "", nil, fmt.Errorf("export line %d: empty line", lineNo)
		}
		if gotTrailer {
			return "", nil, fmt.Errorf("export line %d: data after the trailer", lineNo)
		}
		if !gotHeader {
			var h indHeader
			if err := json.Unmarshal(line, &h); err != nil {
				return "", nil, fmt.Errorf("export header: %w", err)
			}
			if h.Format != "pyvnode-chain-export/1" {
				return "", nil, fmt.Errorf("export header: unknown format %q", h.Format)
			}
			if h.Network == nil || *h.Network == "" {
				return "", nil, errors.New("export header: no network")
			}
			if h.From == nil || h.Size == nil {
				return "", nil, errors.New("export header: no from or size")
			}
			if *h.From != 0 {
				// APPLICATIONS.md §8 step 1: a partial export lacks
				// earlier records, and the views would be wrong.
				return "", nil, fmt.Errorf("export starts at height %d, need 0", *h.From)
			}
			network, from, size = *h.Network, *h.From, *h.Size
			gotHeader = true
			if rerr == io.EOF {
				break
			}
			continue
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(line, &keys); err != nil {
			return "", nil, fmt.Errorf("export line %d: %w", lineNo, err)
		}
		if _, isTrailer := keys["end"]; isTrailer {
			var t indTrailer
			if err := json.Unmarshal(line, &t); err != nil {
				return "", nil, fmt.Errorf("export trailer: %w", err)
			}
			if !t.End || t.Size == nil {
				return "", nil, errors.New("export trailer: malformed")
			}
			if *t.Size != size || from+uint64(len(recs)) != size {
				return "", nil, fmt.Errorf("export sizes disagree: header %d, trailer %d, records %d from %d",
					size, *t.Size, len(recs), from)
			}
			gotTrailer = true
			if rerr == io.EOF {
				break
			}
			continue
		}
		var l indLine
		if err := json.Unmarshal(line, &l); err != nil {
			return "", nil, fmt.Errorf("export line %d: %w", lineNo, err)
		}
		if l.Height == nil || *l.Height != from+uint64(len(recs)) {
			return "", nil, fmt.Errorf("export line %d: height out of sequence", lineNo)
		}
		if !indIsLowerHex(l.ID, 64) {
			return "", nil, fmt.Errorf("export line %d: bad id %q", lineNo, l.ID)
		}
		raw, err := hex.DecodeString(l.Record)
		if err != nil || len(raw) == 0 {
			return "", nil, fmt.Errorf("export line %d: bad record hex", lineNo)
		}
		sum := sha256.Sum256(raw)
		if hex.EncodeToString(sum[:]) != l.ID {
			return "", nil, fmt.Errorf("export line %d: record bytes hash to %x, not to id %s", lineNo, sum, l.ID)
		}
		if seen[sum] {
			return "", nil, fmt.Errorf("export line %d: id %s appears twice", lineNo, l.ID)
		}
		seen[sum] = true
		if l.Kind == "" || l.Created == nil || len(l.Payload) == 0 {
			return "", nil, fmt.Errorf("export line %d: missing kind, created or payload", lineNo)
		}
		recs = append(recs, indExportRecord{id: sum, kind: l.Kind, created: *l.Created, payload: l.Payload})
		if rerr == io.EOF {
			break
		}
	}
	if !gotHeader {
		return "", nil, errors.New("export: no header")
	}
	if !gotTrailer {
		return "", nil, errors.New("export: no trailer (truncated?)")
	}
	return network, recs, nil
}

// ---------------------------------------------------------------------------
// Reading payloads (APPLICATIONS.md §3, §4.1; FORMAT.md §3 for the JSON form).

const (
	indValid       = 0
	indInvalid     = 1
	indUndecodable = 2
)

// indPayload is a decoded vote payload.
type indPayload struct {
	state  int
	why    string // why the payload is invalid or undecodable
	ballot string

	// vote.ballot
	question string
	choices  []string
	opens    int64
	closes   int64

	// vote.register, vote.cast, vote.uncast, vote.withdraw
	voter, eid, choice, reason string
	key, sig                   []byte
	hasKey, hasSig             bool
	seq                        uint64
}

func indFirst(raw json.RawMessage) byte {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 {
		return 0
	}
	return s[0]
}

// indText reads a CBOR text string (a JSON string). ok is false when the
// value has another type. badUTF8 reports bytes that are not UTF-8.
func indText(raw json.RawMessage) (s string, ok, badUTF8 bool) {
	if indFirst(raw) != '"' {
		return "", false, false
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, false
	}
	return s, true, !utf8.Valid(raw)
}

// indIntLiteral reports whether raw is a JSON integer literal (no fraction,
// no exponent), which is how the export writes CBOR integers.
func indIntLiteral(raw json.RawMessage) (string, bool) {
	s := string(bytes.TrimSpace(raw))
	d := strings.TrimPrefix(s, "-")
	if d == "" || (len(d) > 1 && d[0] == '0') {
		return "", false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return "", false
		}
	}
	return s, true
}

// indUint reads an unsigned field: a CBOR unsigned integer up to 2^64-1.
func indUint(raw json.RawMessage) (uint64, bool) {
	s, ok := indIntLiteral(raw)
	if !ok || strings.HasPrefix(s, "-") {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// indInt reads a signed field: any integer from -2^63 to 2^63-1.
func indInt(raw json.RawMessage) (int64, bool) {
	s, ok := indIntLiteral(raw)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// indBytes reads a byte string, written in JSON as {"$bytes": "<base64>"}.
func indBytes(raw json.RawMessage) ([]byte, bool) {
	if indFirst(raw) != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != 1 {
		return nil, false
	}
	v, ok := m["$bytes"]
	if !ok || indFirst(v) != '"' {
		return nil, false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	return b, true
}

// indTextArray reads an array of text.
func indTextArray(raw json.RawMessage) (out []string, ok, badUTF8 bool) {
	if indFirst(raw) != '[' {
		return nil, false, false
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, false, false
	}
	out = make([]string, 0, len(items))
	for _, it := range items {
		s, ok, bad := indText(it)
		if !ok {
			return nil, false, false
		}
		badUTF8 = badUTF8 || bad
		out = append(out, s)
	}
	return out, true, badUTF8
}

// indIDRule is the "id" rule of §3.3: min to max bytes of A-Z a-z 0-9 . _ : -
func indIDRule(s string, max int) bool {
	if len(s) < 1 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// indTextRule is the "text" rule of §3.3: valid UTF-8, no code point below
// U+0020 and no U+007F, length in bytes.
func indTextRule(s string, min, max int) bool {
	if len(s) < min || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// indEIDRule: exactly 32 characters of 0-9 a-f.
func indEIDRule(s string) bool { return indIsLowerHex(s, 32) }

func indPayloadObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	if indFirst(raw) != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false
	}
	return m, true
}

func (p *indPayload) undecodable(why string) *indPayload {
	p.state, p.why = indUndecodable, why
	return p
}

func (p *indPayload) invalid(why string) *indPayload {
	if p.state == indValid {
		p.state, p.why = indInvalid, why
	}
	return p
}

// indDecodeBallot reads a vote.ballot payload (strict).
func indDecodeBallot(raw json.RawMessage) *indPayload {
	p := &indPayload{}
	m, ok := indPayloadObject(raw)
	if !ok {
		return p.undecodable("payload is not a map")
	}
	bad := false
	for k, v := range m {
		var fits, b bool
		switch k {
		case "ballot":
			p.ballot, fits, b = indText(v)
		case "question":
			p.question, fits, b = indText(v)
		case "choices":
			p.choices, fits, b = indTextArray(v)
		case "opens":
			p.opens, fits = indInt(v)
		case "closes":
			p.closes, fits = indInt(v)
		default:
			return p.undecodable("unknown key " + strconv.Quote(k))
		}
		if !fits {
			return p.undecodable("wrong type for " + strconv.Quote(k))
		}
		bad = bad || b
	}
	if bad {
		p.invalid("text is not UTF-8")
	}
	if !indIDRule(p.ballot, 64) {
		p.invalid("ballot")
	}
	if !indTextRule(p.question, 1, 1024) {
		p.invalid("question")
	}
	if len(p.choices) < 2 || len(p.choices) > 64 {
		p.invalid("number of choices")
	}
	seen := map[string]bool{}
	for _, c := range p.choices {
		if !indTextRule(c, 1, 256) {
			p.invalid("choice text")
		}
		if seen[c] {
			p.invalid("repeated choice")
		}
		seen[c] = true
	}
	// closes is required; absent reads as 0, which the window rule refuses.
	if !(0 <= p.opens && p.opens < p.closes && p.closes <= 1<<33) {
		p.invalid("window")
	}
	return p
}

// indDecodeVoterOp reads vote.register, vote.cast, vote.uncast and
// vote.withdraw payloads (one strict shared schema).
func indDecodeVoterOp(kind string, raw json.RawMessage) *indPayload {
	p := &indPayload{}
	m, ok := indPayloadObject(raw)
	if !ok {
		return p.undecodable("payload is not a map")
	}
	bad := false
	for k, v := range m {
		var fits, b bool
		switch k {
		case "ballot":
			p.ballot, fits, b = indText(v)
		case "voter":
			p.voter, fits, b = indText(v)
		case "eid":
			p.eid, fits, b = indText(v)
		case "choice":
			p.choice, fits, b = indText(v)
		case "reason":
			p.reason, fits, b = indText(v)
		case "seq":
			p.seq, fits = indUint(v)
		case "key":
			p.key, fits = indBytes(v)
			p.hasKey = fits
		case "sig":
			p.sig, fits = indBytes(v)
			p.hasSig = fits
		default:
			return p.undecodable("unknown key " + strconv.Quote(k))
		}
		if !fits {
			return p.undecodable("wrong type for " + strconv.Quote(k))
		}
		bad = bad || b
	}
	if bad {
		p.invalid("text is not UTF-8")
	}
	isCast := kind == "vote.cast"
	signed := kind == "vote.cast" || kind == "vote.uncast"
	if !indIDRule(p.ballot, 64) {
		p.invalid("ballot")
	}
	if !indIDRule(p.voter, 128) {
		p.invalid("voter")
	}
	if !indEIDRule(p.eid) {
		p.invalid("eid")
	}
	if p.hasKey {
		if kind != "vote.register" {
			p.invalid("key not taken by " + kind)
		} else if len(p.key) != ed25519.PublicKeySize {
			p.invalid("key length")
		}
	}
	if isCast {
		if !indTextRule(p.choice, 1, 256) {
			p.invalid("choice")
		}
	} else if p.choice != "" {
		p.invalid("choice not taken by " + kind)
	}
	if !signed && p.seq != 0 {
		p.invalid("seq not taken by " + kind)
	}
	if p.hasSig {
		if !signed {
			p.invalid("sig not taken by " + kind)
		} else if len(p.sig) != ed25519.SignatureSize {
			p.invalid("sig length")
		}
	}
	if kind == "vote.withdraw" {
		if !indTextRule(p.reason, 0, 1024) {
			p.invalid("reason")
		}
	} else if p.reason != "" {
		p.invalid("reason not taken by " + kind)
	}
	return p
}

// indVoterMessage is the voter message of §4.2.
func indVoterMessage(network, action, ballot, voter, eid, choice string, seq uint64) []byte {
	var b strings.Builder
	for _, line := range []string{"pyvnode-vote/1", network, action, ballot, voter, eid, choice,
		strconv.FormatUint(seq, 10)} {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// ---------------------------------------------------------------------------
// The tally (APPLICATIONS.md §4.3).

type indRec struct {
	id      [32]byte
	kind    string
	created uint64
	p       *indPayload
}

func (r *indRec) hexID() string { return hex.EncodeToString(r.id[:]) }

// indBefore is canonical order (§2): created ascending, then id bytewise.
func indBefore(a, b *indRec) bool {
	if a.created != b.created {
		return a.created < b.created
	}
	return bytes.Compare(a.id[:], b.id[:]) < 0
}

type indVoter struct {
	reg       *indRec
	cast      *indRec
	withdrawn bool
	hasLast   bool
	last      uint64
}

// indResult is the tally plus the figures the public API does not carry.
type indResult struct {
	tally     *indepTally
	replaced  int
	records   int
	refs      map[string]string // violating record id -> ref id
	definedBy string
}

func indTallyFull(network string, recs []indExportRecord, ballot string) (*indResult, error) {
	var D, R []*indRec
	for _, e := range recs {
		var p *indPayload
		switch e.kind {
		case "vote.ballot":
			p = indDecodeBallot(e.payload)
		case "vote.register", "vote.cast", "vote.uncast", "vote.withdraw":
			p = indDecodeVoterOp(e.kind, e.payload)
		default:
			continue // not a vote kind: the tally does not read it
		}
		if p.state == indUndecodable {
			// §3: a payload that does not decode is still filed under
			// the ballot it names (as a text field), as an invalid record.
			var m map[string]json.RawMessage
			var named string
			if json.Unmarshal(e.payload, &m) == nil && json.Unmarshal(m["ballot"], &named) == nil && named == ballot {
				p.state, p.ballot = indInvalid, named
			}
		}
		if p.state == indUndecodable || p.ballot != ballot {
			continue // names no ballot, or another one
		}
		r := &indRec{id: e.id, kind: e.kind, created: e.created, p: p}
		if e.kind == "vote.ballot" {
			D = append(D, r)
		} else {
			R = append(R, r)
		}
	}
	sort.Slice(D, func(i, j int) bool { return indBefore(D[i], D[j]) })
	sort.Slice(R, func(i, j int) bool { return indBefore(R[i], R[j]) })

	res := &indResult{
		tally: &indepTally{
			Counts:     map[string]int{},
			Violations: map[string]string{},
		},
		records: len(D) + len(R),
		refs:    map[string]string{},
	}
	t := res.tally
	violate := func(r *indRec, rule string, ref *indRec) {
		t.Violations[r.hexID()] = rule
		if ref != nil {
			res.refs[r.hexID()] = ref.hexID()
		}
	}

	// Step 1: the definition.
	var def *indRec
	for _, r := range D {
		switch {
		case r.p.state == indInvalid:
			violate(r, "invalid", nil)
		case def != nil:
			violate(r, "duplicate", def)
		default:
			def = r
		}
	}
	if def == nil {
		return nil, fmt.Errorf("ballot %q has no definition (not_found)", ballot)
	}
	res.definedBy = def.hexID()
	choices := map[string]bool{}
	for _, c := range def.p.choices {
		choices[c] = true
		t.Counts[c] = 0
	}
	opensNs := uint64(def.p.opens) * 1_000_000_000
	closesNs := uint64(def.p.closes) * 1_000_000_000

	// Step 2: replay.
	voters := map[string]*indVoter{}
	for _, r := range R {
		if r.p.state == indInvalid {
			violate(r, "invalid", nil)
			continue
		}
		if indBefore(r, def) {
			violate(r, "no-definition", def)
			continue
		}
		signed := r.kind == "vote.cast" || r.kind == "vote.uncast"
		keyed := false // a signed record under a voter key that passed rule 8
		if signed {
			if r.created < opensNs || r.created >= closesNs {
				violate(r, "outside-window", nil)
				continue
			}
		} else if r.created >= closesNs {
			violate(r, "outside-window", nil)
			continue
		}
		s := voters[r.p.voter]
		if s == nil {
			s = &indVoter{}
			voters[r.p.voter] = s
		}
		if s.withdrawn {
			violate(r, "after-withdrawal", nil)
			continue
		}
		if r.kind == "vote.register" {
			if s.reg != nil {
				violate(r, "duplicate-registration", s.reg)
				continue
			}
			s.reg = r
			t.Registered++
			continue
		}
		if s.reg == nil {
			violate(r, "not-registered", nil)
			continue
		}
		if r.p.eid != s.reg.p.eid {
			violate(r, "wrong-eid", s.reg)
			continue
		}
		if signed && s.reg.p.hasKey {
			if !r.p.hasSig {
				violate(r, "bad-signature", s.reg)
				continue
			}
			if s.hasLast && r.p.seq <= s.last {
				violate(r, "replayed", nil)
				continue
			}
			msg := indVoterMessage(network, r.kind, r.p.ballot, r.p.voter, r.p.eid, r.p.choice, r.p.seq)
			if !ed25519.Verify(ed25519.PublicKey(s.reg.p.key), msg, r.p.sig) {
				violate(r, "bad-signature", s.reg)
				continue
			}
			keyed = true
		}
		switch r.kind {
		case "vote.cast":
			if !choices[r.p.choice] {
				violate(r, "unknown-choice", nil)
				continue
			}
			if s.cast != nil {
				res.replaced++
			}
			s.cast = r
		case "vote.uncast":
			if s.cast == nil {
				violate(r, "nothing-to-uncast", nil)
				continue
			}
			s.cast = nil
		case "vote.withdraw":
			s.withdrawn = true
			s.cast = nil
			t.Withdrawn++
		}
		if keyed { // rule 11: only a counted cast or uncast uses up the number
			s.hasLast, s.last = true, r.p.seq
		}
	}

	// Step 3: the result.
	for _, s := range voters {
		if s.cast != nil {
			t.Counts[s.cast.p.choice]++
			t.Voted++
		}
	}
	t.Effective = t.Registered - t.Withdrawn

	// Digest (§2): SHA-256 of the ids of D and R together, in canonical order.
	all := append(append([]*indRec{}, D...), R...)
	sort.Slice(all, func(i, j int) bool { return indBefore(all[i], all[j]) })
	h := sha256.New()
	for _, r := range all {
		h.Write(r.id[:])
	}
	t.Digest = hex.EncodeToString(h.Sum(nil))
	return res, nil
}

// ---------------------------------------------------------------------------
// Self-test: figures computed by hand from docs/APPLICATIONS.md.

func indMustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func indB64(b []byte) map[string]string {
	return map[string]string{"$bytes": base64.StdEncoding.EncodeToString(b)}
}

// TestIndependentTallySelfWorkedExample replays the worked example of
// APPLICATIONS.md §13, with its illustrative ids, through the tally core and
// compares with the figures the document prints (including the digest).
func TestIndependentTallySelfWorkedExample(t *testing.T) {
	id := func(k byte) [32]byte { var x [32]byte; x[2] = k; return x }
	eids := map[string]string{
		"carol":  "5f0c2e8b9a1d4473b6e0a9c3d2f18e47",
		"alice":  "a3e19b0c7d5f4e2a8b61c0d9f3e7a215",
		"bob":    "e6d1c8a0b3f94725a1e8c6d0b2f7c493",
		"alice5": "0b7e4d2c9f1a3856e2c7b0a4d9e1f368",
	}
	const B = "council-2026"
	op := func(voter, eid string, extra map[string]any) json.RawMessage {
		m := map[string]any{"ballot": B, "voter": voter, "eid": eid}
		for k, v := range extra {
			m[k] = v
		}
		return indMustJSON(t, m)
	}
	recs := []indExportRecord{
		{id(1), "vote.ballot", 1767222000000000000, indMustJSON(t, map[string]any{
			"ballot": B, "question": "Adopt the 2026 budget?", "choices": []string{"yes", "no", "abstain"},
			"opens": 1767225600, "closes": 1767229200})},
		{id(2), "vote.register", 1767222600000000000, op("carol", eids["carol"], nil)},
		{id(3), "vote.register", 1767222960000000000, op("alice", eids["alice"], nil)},
		{id(4), "vote.register", 1767223020000000000, op("bob", eids["bob"], nil)},
		{id(5), "vote.register", 1767223200000000000, op("alice", eids["alice5"], nil)},
		{id(6), "vote.cast", 1767225900000000000, op("bob", eids["bob"], map[string]any{"choice": "no"})},
		{id(7), "vote.cast", 1767225900000000000, op("carol", eids["carol"], map[string]any{"choice": "yes"})},
		{id(8), "vote.cast", 1767226200000000000, op("alice", eids["alice"], map[string]any{"choice": "yes"})},
		{id(9), "vote.cast", 1767226320000000000, op("alice", eids["alice"], map[string]any{"choice": "no"})},
		{id(10), "vote.uncast", 1767226500000000000, op("bob", eids["bob"], nil)},
		{id(11), "vote.withdraw", 1767226800000000000, op("carol", eids["carol"], map[string]any{"reason": "moved out of the district"})},
		{id(12), "vote.cast", 1767227100000000000, op("carol", eids["carol"], map[string]any{"choice": "abstain"})},
	}
	// Chain order of node A: 1, 2, 3, 4, 6, 8, 9, 10, 11, 5, 7, 12.
	order := []int{1, 2, 3, 4, 6, 8, 9, 10, 11, 5, 7, 12}
	chain := make([]indExportRecord, 0, len(order))
	for _, k := range order {
		chain = append(chain, recs[k-1])
	}
	res, err := indTallyFull("council", chain, B)
	if err != nil {
		t.Fatal(err)
	}
	got := res.tally
	hx := func(k byte) string { x := id(k); return hex.EncodeToString(x[:]) }
	want := &indepTally{
		Counts:     map[string]int{"yes": 0, "no": 1, "abstain": 0},
		Registered: 3, Withdrawn: 1, Effective: 2, Voted: 1,
		Violations: map[string]string{hx(5): "duplicate-registration", hx(12): "after-withdrawal"},
		Digest:     "61e2254a654d52063cb67b02257a2010d7722c2fa30bfcc6f380fe18dc87c9bb",
	}
	indCompare(t, got, want)
	if res.replaced != 1 || res.records != 12 || res.definedBy != hx(1) {
		t.Errorf("replaced %d records %d defined_by %s, want 1, 12, %s", res.replaced, res.records, res.definedBy, hx(1))
	}
	if len(res.refs) != 1 || res.refs[hx(5)] != hx(3) {
		t.Errorf("refs = %v, want only %s -> %s", res.refs, hx(5), hx(3))
	}

	// The voter message example of §4.2.
	msg := indVoterMessage("council", "vote.cast", B, "alice", eids["alice"], "no", 7)
	if string(msg) != "pyvnode-vote/1\ncouncil\nvote.cast\ncouncil-2026\nalice\na3e19b0c7d5f4e2a8b61c0d9f3e7a215\nno\n7\n" {
		t.Errorf("voter message %q", msg)
	}
	if m := indVoterMessage("n", "vote.uncast", "b", "v", "e", "", 0); string(m) != "pyvnode-vote/1\nn\nvote.uncast\nb\nv\ne\n\n0\n" {
		t.Errorf("uncast voter message %q", m)
	}
}

func indCompare(t *testing.T, got, want *indepTally) {
	t.Helper()
	if len(got.Counts) != len(want.Counts) {
		t.Errorf("counts = %v, want %v", got.Counts, want.Counts)
	}
	for c, n := range want.Counts {
		if v, ok := got.Counts[c]; !ok || v != n {
			t.Errorf("counts[%q] = %d (present %v), want %d", c, v, ok, n)
		}
	}
	if got.Registered != want.Registered || got.Withdrawn != want.Withdrawn ||
		got.Effective != want.Effective || got.Voted != want.Voted {
		t.Errorf("registered/withdrawn/effective/voted = %d/%d/%d/%d, want %d/%d/%d/%d",
			got.Registered, got.Withdrawn, got.Effective, got.Voted,
			want.Registered, want.Withdrawn, want.Effective, want.Voted)
	}
	for id, rule := range want.Violations {
		if got.Violations[id] != rule {
			t.Errorf("violation of %s = %q, want %q", id, got.Violations[id], rule)
		}
	}
	for id, rule := range got.Violations {
		if _, ok := want.Violations[id]; !ok {
			t.Errorf("unexpected violation of %s: %q", id, rule)
		}
	}
	if got.Digest != want.Digest {
		t.Errorf("digest = %s, want %s", got.Digest, want.Digest)
	}
}

// indFixture builds a hand-made export.
type indFixture struct {
	t      *testing.T
	lines  []indExportRecord
	bytes  map[string][]byte // label -> record bytes
	ids    map[string]string // label -> hex id
	labels []string
}

// add appends a record. Its record bytes are "rec-<label>-<n>", with the
// smallest n whose id's first byte is below 0x80 when low is set, and at or
// above 0x80 otherwise, so that ties in created sort in a known order.
func (f *indFixture) add(label, kind string, created uint64, payload any, low bool) {
	f.t.Helper()
	if _, dup := f.ids[label]; dup {
		f.t.Fatalf("label %s twice", label)
	}
	var raw []byte
	var sum [32]byte
	for n := 0; ; n++ {
		raw = []byte(fmt.Sprintf("rec-%s-%d", label, n))
		sum = sha256.Sum256(raw)
		if (sum[0] < 0x80) == low {
			break
		}
	}
	var pj json.RawMessage
	if s, ok := payload.(string); ok {
		pj = json.RawMessage(s)
	} else {
		pj = indMustJSON(f.t, payload)
	}
	f.lines = append(f.lines, indExportRecord{id: sum, kind: kind, created: created, payload: pj})
	f.bytes[label] = raw
	f.ids[label] = hex.EncodeToString(sum[:])
	f.labels = append(f.labels, label)
}

// write writes the export with the records in the given chain order
// (a permutation of the order they were added in).
func (f *indFixture) write(path, network string, perm []int, corrupt string) {
	f.t.Helper()
	var b bytes.Buffer
	zero := strings.Repeat("0", 64)
	n := len(f.lines)
	fmt.Fprintf(&b, `{"format":"pyvnode-chain-export/1","network":%q,"genesis":{"network":%q,"pow_bits":0,"replication_limit":1},"genesis_hash":%q,"node":%q,"from":0,"size":%d}`+"\n",
		network, network, zero, zero, n)
	for h, i := range perm {
		r := f.lines[i]
		label := f.labels[i]
		rec := f.bytes[label]
		id := f.ids[label]
		if label == corrupt {
			rec = append([]byte("x"), rec...)
		}
		line := map[string]any{
			"height": h, "id": id, "link": zero, "replication": 0, "source": "local",
			"received": int64(r.created), "record": hex.EncodeToString(rec),
			"signature": strings.Repeat("00", 64), "version": 1, "kind": r.kind,
			"payload": r.payload, "origin": zero, "author": "selftest",
			"created": r.created, "nonce": 0,
		}
		b.Write(indMustJSON(f.t, line))
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, `{"end":true,"size":%d,"root":%q,"link":%q,"checkpoint":""}`+"\n", n, zero, zero)
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func TestIndependentTallySelf(t *testing.T) {
	const (
		network = "selftest"
		B       = "b1"
		sec     = uint64(1_000_000_000)
	)
	f := &indFixture{t: t, bytes: map[string][]byte{}, ids: map[string]string{}}
	eid := func(c byte) string { return strings.Repeat(string(c), 32) }
	op := func(voter, e string, extra map[string]any) map[string]any {
		m := map[string]any{"ballot": B, "voter": voter, "eid": e}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	erinKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	// sign builds the §4.2 message by hand, independently of indVoterMessage.
	sign := func(k ed25519.PrivateKey, action, voter, e, choice string, seq uint64) map[string]string {
		msg := "pyvnode-vote/1\n" + network + "\n" + action + "\n" + B + "\n" + voter + "\n" + e + "\n" + choice + "\n" + strconv.FormatUint(seq, 10) + "\n"
		return indB64(ed25519.Sign(k, []byte(msg)))
	}
	def := map[string]any{"ballot": B, "question": "Colour?", "choices": []string{"red", "green", "blue"},
		"opens": 1000, "closes": 2000}

	// Window [1000 s, 2000 s). Each line says the expected outcome.
	f.add("early-reg", "vote.register", 100*sec, op("early", eid('0'), nil), true)        // no-definition (before def)
	f.add("def", "vote.ballot", 200*sec, def, true)                                       // the definition
	f.add("bad-def", "vote.ballot", 250*sec, map[string]any{"ballot": B, "question": "Q", // invalid (1 choice)
		"choices": []string{"x"}, "closes": 2000}, true)
	f.add("bad-def2", "vote.ballot", 260*sec, map[string]any{"ballot": B, "question": "Q", // invalid (opens >= closes)
		"choices": []string{"x", "y"}, "opens": 3000, "closes": 2500}, true)
	f.add("bad-def3", "vote.ballot", 270*sec, map[string]any{"ballot": B, "question": "line\nbreak", // invalid (control character)
		"choices": []string{"x", "y"}, "closes": 2500}, true)
	f.add("def2", "vote.ballot", 300*sec, map[string]any{"ballot": B, "question": "Other?", // duplicate
		"choices": []string{"a", "b"}, "closes": 5000}, true)
	f.add("reg-alice", "vote.register", 400*sec, op("alice", eid('a'), nil), true) // registered (before opens is allowed)
	f.add("reg-bob", "vote.register", 410*sec, op("bob", eid('b'), nil), true)
	f.add("reg-carol", "vote.register", 420*sec, op("carol", eid('c'), nil), true)
	f.add("reg-dave", "vote.register", 430*sec, op("dave", eid('d'), nil), true)
	f.add("reg-alice2", "vote.register", 440*sec, op("alice", eid('1'), nil), true) // duplicate-registration, ref reg-alice
	f.add("reg-erin", "vote.register", 450*sec, op("erin", eid('e'), map[string]any{"key": indB64(erinKey.Public().(ed25519.PublicKey))}), true)
	f.add("reg-frank", "vote.register", 460*sec, op("frank", eid('f'), nil), true)
	f.add("reg-gina", "vote.register", 480*sec, op("gina", eid('4'), map[string]any{"key": indB64(otherKey.Public().(ed25519.PublicKey))}), true)
	f.add("gina-withdraw", "vote.withdraw", 1990*sec, op("gina", eid('4'), nil), true)                                       // counts: a withdrawal is not signed
	f.add("reg-lara", "vote.register", 470*sec, op("lara", eid('7'), map[string]any{"key": indB64(make([]byte, 31))}), true) // invalid (key length)

	f.add("alice-early", "vote.cast", 900*sec, op("alice", eid('a'), map[string]any{"choice": "red"}), true)    // outside-window
	f.add("alice-red", "vote.cast", 1000*sec, op("alice", eid('a'), map[string]any{"choice": "red"}), true)     // counts (opens inclusive)
	f.add("alice-green", "vote.cast", 1100*sec, op("alice", eid('a'), map[string]any{"choice": "green"}), true) // replaces: replaced 1
	f.add("bob-wrongeid", "vote.cast", 1200*sec, op("bob", eid('a'), map[string]any{"choice": "blue"}), true)   // wrong-eid, ref reg-bob
	f.add("bob-blue", "vote.cast", 1210*sec, op("bob", eid('b'), map[string]any{"choice": "blue"}), true)
	f.add("bob-uncast", "vote.uncast", 1300*sec, op("bob", eid('b'), nil), true)  // bob: none
	f.add("bob-uncast2", "vote.uncast", 1310*sec, op("bob", eid('b'), nil), true) // nothing-to-uncast
	f.add("carol-red", "vote.cast", 1400*sec, op("carol", eid('c'), map[string]any{"choice": "red"}), true)
	f.add("carol-withdraw", "vote.withdraw", 1500*sec, op("carol", eid('c'), map[string]any{"reason": "moved"}), true) // withdrawn 1, vote dropped
	f.add("carol-after", "vote.cast", 1600*sec, op("carol", eid('c'), map[string]any{"choice": "green"}), true)        // after-withdrawal
	f.add("carol-rereg", "vote.register", 1610*sec, op("carol", eid('9'), nil), true)                                  // after-withdrawal
	f.add("dave-closes", "vote.cast", 2000*sec, op("dave", eid('d'), map[string]any{"choice": "red"}), true)           // outside-window (closes exclusive)
	f.add("dave-blue", "vote.cast", 2000*sec-1, op("dave", eid('d'), map[string]any{"choice": "blue"}), true)          // counts
	f.add("ghost-cast", "vote.cast", 1700*sec, op("ghost", eid('9'), map[string]any{"choice": "red"}), true)           // not-registered
	f.add("frank-purple", "vote.cast", 1710*sec, op("frank", eid('f'), map[string]any{"choice": "purple"}), true)      // unknown-choice
	f.add("henry-late", "vote.register", 2000*sec, op("henry", eid('8'), nil), true)                                   // outside-window
	f.add("judy-withdraw", "vote.withdraw", 1720*sec, op("judy", eid('6'), nil), true)                                 // not-registered

	// erin has a voter key.
	f.add("erin-nosig", "vote.cast", 1800*sec, op("erin", eid('e'), map[string]any{"choice": "red", "seq": 1}), true) // bad-signature
	f.add("erin-red5", "vote.cast", 1810*sec, op("erin", eid('e'), map[string]any{"choice": "red", "seq": 5,
		"sig": sign(erinKey, "vote.cast", "erin", eid('e'), "red", 5)}), true) // counts; last 5
	f.add("erin-nosig2", "vote.cast", 1815*sec, op("erin", eid('e'), map[string]any{"choice": "red", "seq": 2}), true) // bad-signature (8a before 8b)
	f.add("erin-green5", "vote.cast", 1820*sec, op("erin", eid('e'), map[string]any{"choice": "green", "seq": 5,
		"sig": sign(erinKey, "vote.cast", "erin", eid('e'), "green", 5)}), true) // replayed
	f.add("erin-otherkey", "vote.cast", 1830*sec, op("erin", eid('e'), map[string]any{"choice": "green", "seq": 9,
		"sig": sign(otherKey, "vote.cast", "erin", eid('e'), "green", 9)}), true) // bad-signature
	f.add("erin-purple10", "vote.cast", 1840*sec, op("erin", eid('e'), map[string]any{"choice": "purple", "seq": 10,
		"sig": sign(erinKey, "vote.cast", "erin", eid('e'), "purple", 10)}), true) // unknown-choice: does not use up seq 10
	f.add("erin-blue10", "vote.cast", 1850*sec, op("erin", eid('e'), map[string]any{"choice": "blue", "seq": 10,
		"sig": sign(erinKey, "vote.cast", "erin", eid('e'), "blue", 10)}), true) // counts (10 > 5), replaces red
	f.add("erin-mismatch", "vote.cast", 1860*sec, op("erin", eid('e'), map[string]any{"choice": "blue", "seq": 11,
		"sig": sign(erinKey, "vote.cast", "erin", eid('e'), "green", 11)}), true) // bad-signature (signed another choice)
	f.add("erin-uncast12", "vote.uncast", 1870*sec, op("erin", eid('e'), map[string]any{"seq": 12,
		"sig": sign(erinKey, "vote.uncast", "erin", eid('e'), "", 12)}), true) // erin: none
	f.add("erin-green13", "vote.cast", 1880*sec, op("erin", eid('e'), map[string]any{"choice": "green", "seq": 13,
		"sig": sign(erinKey, "vote.cast", "erin", eid('e'), "green", 13)}), true) // erin: green (no replace)

	// frank has no key: seq and sig are not checked.
	f.add("frank-red", "vote.cast", 1900*sec, op("frank", eid('f'), map[string]any{"choice": "red", "seq": 3,
		"sig": indB64(make([]byte, 64))}), true) // counts
	// Same created: the smaller id comes first, so blue (high id) is last.
	f.add("frank-tie-blue", "vote.cast", 1950*sec, op("frank", eid('f'), map[string]any{"choice": "blue"}), false)  // replaces green: replaced
	f.add("frank-tie-green", "vote.cast", 1950*sec, op("frank", eid('f'), map[string]any{"choice": "green"}), true) // replaces red: replaced

	f.add("alice-badeid", "vote.cast", 1960*sec, op("alice", "ABC", map[string]any{"choice": "red"}), true)                                  // invalid (eid rule)
	f.add("frank-key", "vote.cast", 1965*sec, op("frank", eid('f'), map[string]any{"choice": "red", "key": indB64(make([]byte, 32))}), true) // invalid (key on a cast)
	f.add("frank-reason", "vote.cast", 1966*sec, op("frank", eid('f'), map[string]any{"choice": "red", "reason": "r"}), true)                // invalid (reason on a cast)
	f.add("mia-seq", "vote.register", 1967*sec, op("mia", eid('3'), map[string]any{"seq": 4}), true)                                         // invalid (seq on a register)
	f.add("kim-choice", "vote.register", 1970*sec, op("kim", eid('5'), map[string]any{"choice": "red"}), true)                               // invalid (choice on register)
	f.add("alice-undec", "vote.cast", 1980*sec, op("alice", eid('a'), map[string]any{"choice": "red", "x": 1}), true)                        // undecodable: invalid
	f.add("alice-undec2", "vote.cast", 1985*sec, op("alice", eid('a'), map[string]any{"choice": "red", "seq": "7"}), true)
	f.add("alice-late-uncast", "vote.uncast", 2100*sec, op("alice", eid('a'), nil), true)     // outside-window
	f.add("alice-late-withdraw", "vote.withdraw", 2200*sec, op("alice", eid('a'), nil), true) // outside-window

	// Records that do not name b1.
	f.add("b2-def", "vote.ballot", 1500*sec, map[string]any{"ballot": "b2", "question": "Q", "choices": []string{"a", "b"}, "closes": 3000}, true)
	f.add("b2-reg", "vote.register", 1501*sec, map[string]any{"ballot": "b2", "voter": "alice", "eid": eid('a')}, true)
	f.add("note", "note.text", 1502*sec, map[string]any{"ballot": B, "voter": "x"}, true)
	f.add("vote-foo", "vote.foo", 1503*sec, op("alice", eid('a'), nil), true)
	f.add("b1-undec-def", "vote.ballot", 100*sec, map[string]any{"ballot": B, "question": "Q", "choices": []string{"a", "b"}, "closes": 9, "voter": "v"}, true)

	excluded := map[string]bool{"b2-def": true, "b2-reg": true, "note": true, "vote-foo": true}
	wantViol := map[string]string{
		"early-reg": "no-definition", "bad-def": "invalid", "def2": "duplicate",
		"reg-alice2": "duplicate-registration", "reg-lara": "invalid",
		"alice-early": "outside-window", "bob-wrongeid": "wrong-eid", "bob-uncast2": "nothing-to-uncast",
		"carol-after": "after-withdrawal", "carol-rereg": "after-withdrawal", "dave-closes": "outside-window",
		"ghost-cast": "not-registered", "frank-purple": "unknown-choice", "henry-late": "outside-window",
		"judy-withdraw": "not-registered",
		"erin-nosig":    "bad-signature", "erin-nosig2": "bad-signature", "erin-green5": "replayed", "erin-otherkey": "bad-signature",
		"erin-purple10": "unknown-choice", "erin-mismatch": "bad-signature",
		"alice-badeid": "invalid", "kim-choice": "invalid", "frank-key": "invalid", "frank-reason": "invalid", "mia-seq": "invalid", "bad-def3": "invalid", "bad-def2": "invalid",
		"alice-late-uncast": "outside-window", "alice-late-withdraw": "outside-window",
		"alice-undec": "invalid", "alice-undec2": "invalid", "b1-undec-def": "invalid",
	}
	wantRefs := map[string]string{
		"early-reg": "def", "def2": "def", "reg-alice2": "reg-alice", "bob-wrongeid": "reg-bob",
		"erin-nosig": "reg-erin", "erin-nosig2": "reg-erin", "erin-otherkey": "reg-erin", "erin-mismatch": "reg-erin",
	}
	// Hand-computed result: alice green, bob none, carol withdrawn, dave blue,
	// erin green, frank blue, gina withdrawn. Registered alice, bob, carol,
	// dave, erin, frank, gina. Replaced: alice red->green, frank
	// red->green->blue, erin red->blue.
	want := &indepTally{
		Counts:     map[string]int{"red": 0, "green": 2, "blue": 2},
		Registered: 7, Withdrawn: 2, Effective: 5, Voted: 4,
		Violations: map[string]string{},
	}
	for label, rule := range wantViol {
		want.Violations[f.ids[label]] = rule
	}
	var in []*indRec
	for i, label := range f.labels {
		if !excluded[label] {
			in = append(in, &indRec{id: f.lines[i].id, created: f.lines[i].created})
		}
	}
	sort.Slice(in, func(i, j int) bool { return indBefore(in[i], in[j]) })
	var ids [][]byte
	for _, r := range in {
		ids = append(ids, r.id[:])
	}
	d := sha256.Sum256(bytes.Join(ids, nil))
	want.Digest = hex.EncodeToString(d[:])

	// Chain order: a fixed shuffle, so that chain order is not canonical order.
	n := len(f.lines)
	perm := make([]int, n)
	for i := range perm {
		perm[i] = (i*7 + 3) % n
	}
	if n%7 == 0 {
		t.Fatalf("record count %d must not be a multiple of 7", n)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "export.jsonl")
	f.write(path, network, perm, "")

	got, err := independentTally(path, B)
	if err != nil {
		t.Fatal(err)
	}
	indCompare(t, got, want)

	// The fuller result: replaced, records and refs.
	netw, recs, err := indReadExport(path)
	if err != nil || netw != network {
		t.Fatalf("read export: %v, network %q", err, netw)
	}
	res, err := indTallyFull(netw, recs, B)
	if err != nil {
		t.Fatal(err)
	}
	if res.replaced != 4 {
		t.Errorf("replaced = %d, want 4", res.replaced)
	}
	if res.records != len(ids) {
		t.Errorf("records = %d, want %d", res.records, len(ids))
	}
	if res.definedBy != f.ids["def"] {
		t.Errorf("defined_by = %s, want %s", res.definedBy, f.ids["def"])
	}
	wantRefIDs := map[string]string{}
	for a, b := range wantRefs {
		wantRefIDs[f.ids[a]] = f.ids[b]
	}
	for a, b := range wantRefIDs {
		if res.refs[a] != b {
			t.Errorf("ref of %s = %q, want %s", a, res.refs[a], b)
		}
	}
	for a := range res.refs {
		if _, ok := wantRefIDs[a]; !ok {
			t.Errorf("unexpected ref on %s", a)
		}
	}

	// Ballot b2 is tallied on its own: alice's b2 registration counts.
	got2, err := independentTally(path, "b2")
	if err != nil {
		t.Fatal(err)
	}
	if got2.Registered != 1 || got2.Voted != 0 || len(got2.Violations) != 0 || len(got2.Counts) != 2 {
		t.Errorf("b2 tally = %+v", got2)
	}

	// A ballot without a definition has no tally.
	if _, err := independentTally(path, "nope"); err == nil {
		t.Error("tally of an undefined ballot: no error")
	}

	// A record whose bytes do not hash to its id is an error.
	bad := filepath.Join(dir, "bad.jsonl")
	f.write(bad, network, perm, "bob-blue")
	if _, err := independentTally(bad, B); err == nil || !strings.Contains(err.Error(), "hash") {
		t.Errorf("corrupt record: err = %v, want a hash mismatch", err)
	}

	// A truncated export (no trailer) is an error.
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := bytes.LastIndexByte(whole[:len(whole)-1], '\n')
	trunc := filepath.Join(dir, "trunc.jsonl")
	if err := os.WriteFile(trunc, whole[:cut+1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := independentTally(trunc, B); err == nil {
		t.Error("truncated export: no error")
	}
}
