package ledger_test

// An export verifier written only from docs/FORMAT.md, without pyvnode's
// code, to show that the document is enough to check a chain by hand. It
// uses the standard library and a generic CBOR library, nothing else.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/pyvnode/pyvnode/ledger"
)

// ---------------------------------------------------------------------------
// The verifier (FORMAT.md §2–§11).

const exportFormat = "pyvnode-chain-export/1"

var (
	indepDec = func() cbor.DecMode {
		dm, err := cbor.DecOptions{
			DupMapKey:   cbor.DupMapKeyEnforcedAPF,
			IndefLength: cbor.IndefLengthForbidden,
			TagsMd:      cbor.TagsForbidden,
			IntDec:      cbor.IntDecConvertNone,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return dm
	}()
	indepEnc = func() cbor.EncMode {
		em, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(err)
		}
		return em
	}()

	networkRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	kindRE    = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$`)
	authorRE  = regexp.MustCompile(`^[A-Za-z0-9._\-@+]{0,64}$`)
)

// indepGenesis is genesis.json (§2) with its defaults applied.
type indepGenesis struct {
	Network          string
	PowBits          uint64
	ReplicationLimit uint64
	Originators      map[string][][]byte // sorted, deduplicated
}

func parseIndepGenesis(raw []byte) (*indepGenesis, error) {
	var j struct {
		Network          *string             `json:"network"`
		PowBits          *uint64             `json:"pow_bits"`
		ReplicationLimit *uint64             `json:"replication_limit"`
		Originators      map[string][]string `json:"originators"`
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return nil, fmt.Errorf("genesis JSON: %w", err)
	}
	if j.Network == nil || !networkRE.MatchString(*j.Network) {
		return nil, errors.New("genesis network missing or invalid")
	}
	g := &indepGenesis{Network: *j.Network, PowBits: 16, ReplicationLimit: 1, Originators: map[string][][]byte{}}
	if j.PowBits != nil {
		g.PowBits = *j.PowBits
	}
	if g.PowBits > 32 {
		return nil, fmt.Errorf("genesis pow_bits %d > 32", g.PowBits)
	}
	if j.ReplicationLimit != nil {
		g.ReplicationLimit = *j.ReplicationLimit
	}
	for pat, ids := range j.Originators {
		var list [][]byte
		for _, h := range ids {
			b, err := decodeHexN(h, 32)
			if err != nil {
				return nil, fmt.Errorf("genesis originators[%q]: %w", pat, err)
			}
			list = append(list, b)
		}
		sort.Slice(list, func(a, b int) bool { return bytes.Compare(list[a], list[b]) < 0 })
		dedup := list[:0]
		for i, b := range list {
			if i == 0 || !bytes.Equal(b, list[i-1]) {
				dedup = append(dedup, b)
			}
		}
		if dedup == nil {
			dedup = [][]byte{}
		}
		g.Originators[pat] = dedup
	}
	return g, nil
}

// genesisCBOR is the §2 map whose SHA-256 is the genesis hash.
func (g *indepGenesis) genesisCBOR() ([]byte, error) {
	return indepEnc.Marshal(map[uint64]any{
		1: g.Network,
		2: g.PowBits,
		3: g.ReplicationLimit,
		4: g.Originators,
	})
}

// originAllowed applies the §2 originators rule: the exact kind wins over a
// pattern, a longer pattern over a shorter one, and a kind that no entry
// matches may be originated by anyone. A pattern "p.*" is taken to match
// the kinds that start with "p.".
func (g *indepGenesis) originAllowed(kind string, origin []byte) bool {
	ids, ok := g.Originators[kind]
	if !ok {
		best := -1
		for pat, l := range g.Originators {
			if !strings.HasSuffix(pat, "*") {
				continue
			}
			if strings.HasPrefix(kind, strings.TrimSuffix(pat, "*")) && len(pat) > best {
				best, ids, ok = len(pat), l, true
			}
		}
	}
	if !ok {
		return true
	}
	for _, id := range ids {
		if bytes.Equal(id, origin) {
			return true
		}
	}
	return false
}

// indepRecord is a decoded §3 record.
type indepRecord struct {
	Version uint64
	Kind    string
	Payload map[any]any
	Origin  []byte
	Author  string
	Created uint64
	Nonce   uint64
}

// checkedErr names the failed check.
type checkedErr struct {
	check string
	err   error
}

func (e *checkedErr) Error() string { return e.check + ": " + e.err.Error() }

func fail(check, format string, a ...any) error {
	return &checkedErr{check, fmt.Errorf(format, a...)}
}

// decodeIndepRecord decodes record map bytes, demands canonical encoding
// and the exact §3 shape and field rules.
func decodeIndepRecord(b []byte) (*indepRecord, error) {
	var v any
	if err := indepDec.Unmarshal(b, &v); err != nil {
		return nil, fail("decode", "%v", err)
	}
	again, err := indepEnc.Marshal(v)
	if err != nil {
		return nil, fail("canonical", "re-encode: %v", err)
	}
	if !bytes.Equal(again, b) {
		return nil, fail("canonical", "record does not re-encode to the same bytes")
	}
	m, ok := v.(map[any]any)
	if !ok {
		return nil, fail("decode", "record is %T, not a map", v)
	}
	if len(m) != 7 {
		return nil, fail("decode", "record map has %d entries, want 7", len(m))
	}
	for k := range m {
		if n, ok := k.(uint64); !ok || n < 1 || n > 7 {
			return nil, fail("decode", "record map key %v (%T) is not an integer 1..7", k, k)
		}
	}
	r := &indepRecord{}
	var okAll [7]bool
	r.Version, okAll[0] = m[uint64(1)].(uint64)
	r.Kind, okAll[1] = m[uint64(2)].(string)
	r.Payload, okAll[2] = m[uint64(3)].(map[any]any)
	r.Origin, okAll[3] = m[uint64(4)].([]byte)
	r.Author, okAll[4] = m[uint64(5)].(string)
	r.Created, okAll[5] = m[uint64(6)].(uint64)
	r.Nonce, okAll[6] = m[uint64(7)].(uint64)
	names := [7]string{"version", "kind", "payload", "origin", "author", "time", "nonce"}
	for i, ok := range okAll {
		if !ok {
			return nil, fail(names[i], "field %d has CBOR type %T", i+1, m[uint64(i+1)])
		}
	}
	if r.Version != 1 {
		return nil, fail("version", "version %d, want 1", r.Version)
	}
	if len(r.Kind) < 1 || len(r.Kind) > 64 || !kindRE.MatchString(r.Kind) {
		return nil, fail("kind", "invalid kind %q", r.Kind)
	}
	if len(r.Origin) != ed25519.PublicKeySize {
		return nil, fail("origin", "origin is %d bytes, want 32", len(r.Origin))
	}
	if !authorRE.MatchString(r.Author) {
		return nil, fail("author", "invalid author %q", r.Author)
	}
	if err := checkPayloadValue(r.Payload, 1); err != nil {
		return nil, fail("payload", "%v", err)
	}
	// §7: array(2) header, the record, 58 40 and the 64-byte signature.
	if n := 1 + len(b) + 2 + ed25519.SignatureSize; n > 65536 {
		return nil, fail("size", "signed record is %d bytes, max 65536", n)
	}
	return r, nil
}

// checkPayloadValue applies the §3 payload rules; level counts the payload
// map as 1 and every nested array or map as one more.
func checkPayloadValue(v any, level int) error {
	switch x := v.(type) {
	case string, []byte, uint64, int64, bool:
		return nil
	case []any:
		if level > 16 {
			return fmt.Errorf("nested deeper than 16 levels")
		}
		for _, e := range x {
			if err := checkPayloadValue(e, level+1); err != nil {
				return err
			}
		}
		return nil
	case map[any]any:
		if level > 16 {
			return fmt.Errorf("nested deeper than 16 levels")
		}
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return fmt.Errorf("map key %v is %T, not text", k, k)
			}
			if len(ks) < 1 || len(ks) > 256 {
				return fmt.Errorf("map key %q is %d bytes, want 1..256", ks, len(ks))
			}
			if ks == "$bytes" {
				return fmt.Errorf("reserved key $bytes")
			}
			if err := checkPayloadValue(e, level+1); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("value of type %T is not allowed", v)
	}
}

func recordID(rec []byte) [32]byte { return sha256.Sum256(rec) }

func leadingZeroBits(id [32]byte) int {
	n := 0
	for _, b := range id {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// signatureMessage is the §6 message.
func signatureMessage(network string, id [32]byte) []byte {
	msg := []byte("pyvnode record signature v1\n" + network + "\n")
	return append(msg, id[:]...)
}

func chainLink(prev, id [32]byte) [32]byte {
	return sha256.Sum256(append(prev[:], id[:]...))
}

func merkleLeaf(id [32]byte) [32]byte {
	return sha256.Sum256(append([]byte{0}, id[:]...))
}

func merkleNode(l, r [32]byte) [32]byte {
	b := append([]byte{1}, l[:]...)
	return sha256.Sum256(append(b, r[:]...))
}

// splitPoint is the largest power of two smaller than n (n >= 2).
func splitPoint(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// merkleRoot is RFC 6962 MTH over leaf hashes.
func merkleRoot(leaves [][32]byte) [32]byte {
	switch n := len(leaves); n {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	default:
		k := splitPoint(n)
		return merkleNode(merkleRoot(leaves[:k]), merkleRoot(leaves[k:]))
	}
}

// decodeHexN decodes lowercase hex of exactly n bytes (n < 0: any length).
func decodeHexN(s string, n int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if hex.EncodeToString(b) != s {
		return nil, fmt.Errorf("hex %q is not lowercase", s)
	}
	if n >= 0 && len(b) != n {
		return nil, fmt.Errorf("hex is %d bytes, want %d", len(b), n)
	}
	return b, nil
}

func decodeHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := decodeHexN(s, 32)
	if err != nil {
		return h, err
	}
	copy(h[:], b)
	return h, nil
}

// indepCheckpoint is a verified §10 checkpoint.
type indepCheckpoint struct {
	Origin string
	Size   uint64
	Root   [32]byte
	Link   [32]byte
	Time   time.Time
}

// verifyIndepCheckpoint verifies a §10 signed note: the origin must be
// pyvnode/<network>/<node hex> and a signature by node under that key name
// must verify over the body.
func verifyIndepCheckpoint(note, network string, node ed25519.PublicKey) (*indepCheckpoint, error) {
	origin := "pyvnode/" + network + "/" + hex.EncodeToString(node)
	i := strings.LastIndex(note, "\n\n")
	if i < 0 {
		return nil, errors.New("no blank line between body and signatures")
	}
	body, sigs := note[:i+1], note[i+2:]
	if !strings.HasSuffix(sigs, "\n") {
		return nil, errors.New("signature block does not end in a newline")
	}

	keyHash := sha256.Sum256(append([]byte(origin+"\n\x01"), node...))
	verified := false
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		if !ok {
			return nil, fmt.Errorf("signature line %q does not start with an em dash and a space", line)
		}
		name, b64, ok := strings.Cut(rest, " ")
		if !ok {
			return nil, fmt.Errorf("malformed signature line %q", line)
		}
		if name != origin {
			continue // a signature by some other key; not ours to check
		}
		sig, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil || len(sig) != 4+ed25519.SignatureSize {
			return nil, fmt.Errorf("malformed signature %q", b64)
		}
		if !bytes.Equal(sig[:4], keyHash[:4]) {
			continue // same name, other key
		}
		if !ed25519.Verify(node, []byte(body), sig[4:]) {
			return nil, errors.New("signature does not verify")
		}
		verified = true
	}
	if !verified {
		return nil, fmt.Errorf("no signature by %s", origin)
	}

	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) != 5 {
		return nil, fmt.Errorf("body has %d lines, want 5", len(lines))
	}
	cp := &indepCheckpoint{Origin: lines[0]}
	if lines[0] != origin {
		return nil, fmt.Errorf("origin %q, want %q", lines[0], origin)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return nil, fmt.Errorf("bad size line %q", lines[1])
	}
	cp.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return nil, fmt.Errorf("bad root line %q", lines[2])
	}
	copy(cp.Root[:], root)
	linkHex, ok := strings.CutPrefix(lines[3], "link ")
	if !ok {
		return nil, fmt.Errorf("bad link line %q", lines[3])
	}
	if cp.Link, err = decodeHash(linkHex); err != nil {
		return nil, fmt.Errorf("bad link line %q: %v", lines[3], err)
	}
	ts, ok := strings.CutPrefix(lines[4], "time ")
	if !ok || !strings.HasSuffix(ts, "Z") {
		return nil, fmt.Errorf("bad time line %q", lines[4])
	}
	if cp.Time, err = time.Parse(time.RFC3339, ts); err != nil {
		return nil, fmt.Errorf("bad time line %q: %v", lines[4], err)
	}
	return cp, nil
}

// splitKeys decodes a JSON object line and checks that it has exactly the
// required keys plus any of the optional ones.
func splitKeys(line []byte, required, optional []string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, err
	}
	allowed := map[string]bool{}
	for _, k := range required {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("missing field %q", k)
		}
		allowed[k] = true
	}
	for _, k := range optional {
		allowed[k] = true
	}
	for k := range m {
		if !allowed[k] {
			return nil, fmt.Errorf("unknown field %q", k)
		}
	}
	return m, nil
}

// jsonInto decodes one field strictly; numbers must be exact integers.
func jsonInto(raw json.RawMessage, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func jsonUint(raw json.RawMessage) (uint64, error) {
	var n json.Number
	if err := jsonInto(raw, &n); err != nil {
		return 0, err
	}
	u, err := strconv.ParseUint(n.String(), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not an unsigned integer", n)
	}
	return u, nil
}

func jsonString(raw json.RawMessage) (string, error) {
	var s string
	err := jsonInto(raw, &s)
	return s, err
}

// orderedJSON is a JSON value with object key order kept.
type orderedJSON struct {
	kind  byte // 's' string, 'n' number, 'b' bool, 'a' array, 'o' object, 'z' null
	str   string
	b     bool
	elems []orderedJSON
	keys  []string
}

func parseOrderedJSON(raw []byte) (orderedJSON, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	v, err := readOrdered(d)
	if err != nil {
		return v, err
	}
	if _, err := d.Token(); err != io.EOF {
		return v, errors.New("trailing data after JSON value")
	}
	return v, nil
}

func readOrdered(d *json.Decoder) (orderedJSON, error) {
	t, err := d.Token()
	if err != nil {
		return orderedJSON{}, err
	}
	switch x := t.(type) {
	case string:
		return orderedJSON{kind: 's', str: x}, nil
	case json.Number:
		return orderedJSON{kind: 'n', str: x.String()}, nil
	case bool:
		return orderedJSON{kind: 'b', b: x}, nil
	case nil:
		return orderedJSON{kind: 'z'}, nil
	case json.Delim:
		v := orderedJSON{kind: 'a'}
		if x == '{' {
			v.kind = 'o'
		}
		for d.More() {
			if v.kind == 'o' {
				kt, err := d.Token()
				if err != nil {
					return v, err
				}
				v.keys = append(v.keys, kt.(string))
			}
			e, err := readOrdered(d)
			if err != nil {
				return v, err
			}
			v.elems = append(v.elems, e)
		}
		if _, err := d.Token(); err != nil { // closing delimiter
			return v, err
		}
		return v, nil
	}
	return orderedJSON{}, fmt.Errorf("unexpected token %v", t)
}

// sortedCBORKeys returns text keys in core deterministic order: shorter
// first, then bytewise.
func sortedCBORKeys(m map[any]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k.(string))
	}
	sort.Slice(keys, func(a, b int) bool {
		if len(keys[a]) != len(keys[b]) {
			return len(keys[a]) < len(keys[b])
		}
		return keys[a] < keys[b]
	})
	return keys
}

// matchPayloadJSON checks that the JSON form (§3 "Payload as JSON") of a
// payload value equals the CBOR value, including the canonical key order.
func matchPayloadJSON(c any, j orderedJSON, path string) error {
	switch x := c.(type) {
	case string:
		if j.kind != 's' || j.str != x {
			return fmt.Errorf("%s: JSON differs from CBOR text %q", path, x)
		}
	case uint64:
		if j.kind != 'n' || j.str != strconv.FormatUint(x, 10) {
			return fmt.Errorf("%s: JSON %q differs from CBOR %d", path, j.str, x)
		}
	case int64:
		if j.kind != 'n' || j.str != strconv.FormatInt(x, 10) {
			return fmt.Errorf("%s: JSON %q differs from CBOR %d", path, j.str, x)
		}
	case bool:
		if j.kind != 'b' || j.b != x {
			return fmt.Errorf("%s: JSON differs from CBOR %v", path, x)
		}
	case []byte:
		if j.kind != 'o' || len(j.keys) != 1 || j.keys[0] != "$bytes" || j.elems[0].kind != 's' ||
			j.elems[0].str != base64.StdEncoding.EncodeToString(x) {
			return fmt.Errorf("%s: JSON differs from CBOR bytes %x", path, x)
		}
	case []any:
		if j.kind != 'a' || len(j.elems) != len(x) {
			return fmt.Errorf("%s: JSON differs from CBOR array", path)
		}
		for i := range x {
			if err := matchPayloadJSON(x[i], j.elems[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case map[any]any:
		keys := sortedCBORKeys(x)
		if j.kind != 'o' || len(j.keys) != len(keys) {
			return fmt.Errorf("%s: JSON differs from CBOR map", path)
		}
		for i, k := range keys {
			if j.keys[i] != k {
				return fmt.Errorf("%s: JSON key #%d is %q, canonical order wants %q", path, i, j.keys[i], k)
			}
			if err := matchPayloadJSON(x[k], j.elems[i], path+"."+k); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s: unexpected CBOR type %T", path, c)
	}
	return nil
}

var (
	headerKeys  = []string{"format", "network", "genesis", "genesis_hash", "node", "from", "size"}
	recordKeys  = []string{"height", "id", "link", "replication", "source", "received", "record", "signature", "version", "kind", "payload", "origin", "author", "created", "nonce"}
	trailerKeys = []string{"end", "size", "root", "link"}
)

// verifyExportIndependently verifies a JSON-lines chain export (§11) and
// returns the size and Merkle root it ends at.
func verifyExportIndependently(r io.Reader) (size uint64, root [32]byte, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	lineNo := 0
	next := func() ([]byte, error) {
		l, err := br.ReadBytes('\n')
		if err == io.EOF && len(l) > 0 {
			err = nil
		}
		if err != nil {
			return nil, err
		}
		lineNo++
		return bytes.TrimSuffix(l, []byte("\n")), nil
	}
	lfail := func(check, format string, a ...any) error {
		return fmt.Errorf("line %d: %s: %s", lineNo, check, fmt.Sprintf(format, a...))
	}

	// Header.
	line, err := next()
	if err != nil {
		return 0, root, fmt.Errorf("line 1: header: %v", err)
	}
	h, err := splitKeys(line, headerKeys, nil)
	if err != nil {
		return 0, root, lfail("header", "%v", err)
	}
	if f, err := jsonString(h["format"]); err != nil || f != exportFormat {
		return 0, root, lfail("header", "format %s, want %q", h["format"], exportFormat)
	}
	network, err := jsonString(h["network"])
	if err != nil {
		return 0, root, lfail("header", "network: %v", err)
	}
	gen, err := parseIndepGenesis(h["genesis"])
	if err != nil {
		return 0, root, lfail("genesis", "%v", err)
	}
	if gen.Network != network {
		return 0, root, lfail("genesis", "genesis network %q differs from header network %q", gen.Network, network)
	}
	gcbor, err := gen.genesisCBOR()
	if err != nil {
		return 0, root, lfail("genesis", "%v", err)
	}
	ghHex, err := jsonString(h["genesis_hash"])
	if err != nil {
		return 0, root, lfail("genesis_hash", "%v", err)
	}
	if gh := sha256.Sum256(gcbor); hex.EncodeToString(gh[:]) != ghHex {
		return 0, root, lfail("genesis_hash", "header says %s, genesis hashes to %x", ghHex, gh)
	}
	nodeHex, err := jsonString(h["node"])
	if err != nil {
		return 0, root, lfail("header", "node: %v", err)
	}
	nodeKey, err := decodeHexN(nodeHex, ed25519.PublicKeySize)
	if err != nil {
		return 0, root, lfail("header", "node: %v", err)
	}
	from, err := jsonUint(h["from"])
	if err != nil {
		return 0, root, lfail("header", "from: %v", err)
	}
	hsize, err := jsonUint(h["size"])
	if err != nil {
		return 0, root, lfail("header", "size: %v", err)
	}
	if from != 0 {
		// FORMAT.md gives no way to learn the link before `from`, nor the
		// ids needed for the Merkle root, so only full exports are checked.
		return 0, root, lfail("header", "from = %d: only exports from height 0 can be verified against the trailer", from)
	}
	if hsize < from {
		return 0, root, lfail("header", "size %d < from %d", hsize, from)
	}

	var (
		prevLink [32]byte
		leaves   [][32]byte
		height   = from
	)
	for {
		line, err = next()
		if err == io.EOF {
			return 0, root, fmt.Errorf("line %d: trailer: export ends without a trailer", lineNo+1)
		}
		if err != nil {
			return 0, root, fmt.Errorf("line %d: read: %v", lineNo+1, err)
		}
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(line, &probe); err != nil {
			return 0, root, lfail("json", "%v", err)
		}
		if _, isEnd := probe["end"]; isEnd {
			break
		}

		m, err := splitKeys(line, recordKeys, nil)
		if err != nil {
			return 0, root, lfail("line", "%v", err)
		}
		if hh, err := jsonUint(m["height"]); err != nil || hh != height {
			return 0, root, lfail("height", "height %s, want %d", m["height"], height)
		}
		if height >= hsize {
			return 0, root, lfail("size", "more records than the header size %d", hsize)
		}
		// The JSON-only bookkeeping fields must at least have their types.
		if _, err := jsonUint(m["replication"]); err != nil {
			return 0, root, lfail("replication", "%v", err)
		}
		if _, err := jsonString(m["source"]); err != nil {
			return 0, root, lfail("source", "%v", err)
		}
		var received json.Number
		if err := jsonInto(m["received"], &received); err != nil {
			return 0, root, lfail("received", "%v", err)
		}
		if _, err := strconv.ParseInt(received.String(), 10, 64); err != nil {
			return 0, root, lfail("received", "%v", err)
		}

		recHex, err := jsonString(m["record"])
		if err != nil {
			return 0, root, lfail("record", "%v", err)
		}
		recBytes, err := decodeHexN(recHex, -1)
		if err != nil {
			return 0, root, lfail("record", "%v", err)
		}
		// 1. canonical, exactly the seven fields.
		rec, err := decodeIndepRecord(recBytes)
		if err != nil {
			return 0, root, lfail("record", "%v", err)
		}
		// 2. id.
		idHex, err := jsonString(m["id"])
		if err != nil {
			return 0, root, lfail("id", "%v", err)
		}
		id := recordID(recBytes)
		if hex.EncodeToString(id[:]) != idHex {
			return 0, root, lfail("id", "line says %s, record hashes to %x", idHex, id)
		}
		// 3. proof of work.
		if z := leadingZeroBits(id); uint64(z) < gen.PowBits {
			return 0, root, lfail("pow", "id %x has %d leading zero bits, genesis wants %d", id, z, gen.PowBits)
		}
		// 4. signature.
		sigHex, err := jsonString(m["signature"])
		if err != nil {
			return 0, root, lfail("signature", "%v", err)
		}
		sig, err := decodeHexN(sigHex, ed25519.SignatureSize)
		if err != nil {
			return 0, root, lfail("signature", "%v", err)
		}
		if !ed25519.Verify(rec.Origin, signatureMessage(network, id), sig) {
			return 0, root, lfail("signature", "signature by %x does not verify", rec.Origin)
		}
		// 5. originators.
		if !gen.originAllowed(rec.Kind, rec.Origin) {
			return 0, root, lfail("originator", "%x may not originate %q", rec.Origin, rec.Kind)
		}
		// 6. link.
		linkHex, err := jsonString(m["link"])
		if err != nil {
			return 0, root, lfail("link", "%v", err)
		}
		link := chainLink(prevLink, id)
		if hex.EncodeToString(link[:]) != linkHex {
			return 0, root, lfail("link", "line says %s, SHA-256(previous link || id) is %x", linkHex, link)
		}
		prevLink = link
		// 7. Merkle leaf.
		leaves = append(leaves, merkleLeaf(id))

		// The decoded fields must agree with the bytes.
		if err := checkDecodedFields(m, rec); err != nil {
			return 0, root, lfail("fields", "%v", err)
		}
		height++
	}

	// Trailer.
	t, err := splitKeys(line, trailerKeys, []string{"checkpoint"})
	if err != nil {
		return 0, root, lfail("trailer", "%v", err)
	}
	var end bool
	if err := jsonInto(t["end"], &end); err != nil || !end {
		return 0, root, lfail("trailer", "end is %s, want true", t["end"])
	}
	tsize, err := jsonUint(t["size"])
	if err != nil {
		return 0, root, lfail("trailer", "size: %v", err)
	}
	if tsize != hsize || height != tsize {
		return 0, root, lfail("size", "trailer size %d, header size %d, records through height %d", tsize, hsize, height)
	}
	root = merkleRoot(leaves)
	if s, err := jsonString(t["root"]); err != nil || s != hex.EncodeToString(root[:]) {
		return 0, root, lfail("root", "trailer root %s, computed %x", t["root"], root)
	}
	if s, err := jsonString(t["link"]); err != nil || s != hex.EncodeToString(prevLink[:]) {
		return 0, root, lfail("link", "trailer link %s, last link %x", t["link"], prevLink)
	}
	cpRaw, ok := t["checkpoint"]
	if !ok {
		return 0, root, lfail("checkpoint", "trailer has no checkpoint")
	}
	note, err := jsonString(cpRaw)
	if err != nil {
		return 0, root, lfail("checkpoint", "%v", err)
	}
	cp, err := verifyIndepCheckpoint(note, network, nodeKey)
	if err != nil {
		return 0, root, lfail("checkpoint", "%v", err)
	}
	if cp.Size != tsize || cp.Root != root || cp.Link != prevLink {
		return 0, root, lfail("checkpoint", "checkpoint states size %d root %x link %x; trailer has %d %x %x",
			cp.Size, cp.Root, cp.Link, tsize, root, prevLink)
	}
	if extra, err := next(); err != io.EOF {
		return 0, root, lfail("trailer", "data after the trailer: %.40q", extra)
	}
	return tsize, root, nil
}

// checkDecodedFields compares the line's JSON copies of the record fields
// with the decoded CBOR.
func checkDecodedFields(m map[string]json.RawMessage, rec *indepRecord) error {
	if v, err := jsonUint(m["version"]); err != nil || v != rec.Version {
		return fmt.Errorf("version %s differs from record %d", m["version"], rec.Version)
	}
	if s, err := jsonString(m["kind"]); err != nil || s != rec.Kind {
		return fmt.Errorf("kind %s differs from record %q", m["kind"], rec.Kind)
	}
	if s, err := jsonString(m["origin"]); err != nil || s != hex.EncodeToString(rec.Origin) {
		return fmt.Errorf("origin %s differs from record %x", m["origin"], rec.Origin)
	}
	if s, err := jsonString(m["author"]); err != nil || s != rec.Author {
		return fmt.Errorf("author %s differs from record %q", m["author"], rec.Author)
	}
	if v, err := jsonUint(m["created"]); err != nil || v != rec.Created {
		return fmt.Errorf("created %s differs from record %d", m["created"], rec.Created)
	}
	if v, err := jsonUint(m["nonce"]); err != nil || v != rec.Nonce {
		return fmt.Errorf("nonce %s differs from record %d", m["nonce"], rec.Nonce)
	}
	pj, err := parseOrderedJSON(m["payload"])
	if err != nil {
		return fmt.Errorf("payload JSON: %v", err)
	}
	if err := matchPayloadJSON(rec.Payload, pj, "payload"); err != nil {
		return err
	}
	return nil
}

// ---------------------------------------------------------------------------
// Tests.

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var indepPayloads = []string{
	`{"text":"hi","n":1}`,
	`{"n":-1,"big":18446744073709551615,"min":-9223372036854775808,"max":9223372036854775807}`,
	`{"nested":{"a":{"b":{"c":[1,2,{"d":true}]}}},"z":false}`,
	`{"blob":{"$bytes":"AAECAwQF/w=="},"empty":{"$bytes":""}}`,
	`{"arr":[],"obj":{},"mixed":[-5,"x",{"$bytes":"3q2+7w=="},[true,false]]}`,
	`{"unicode":"héllo wörld — ✓ 日本","html":"<a href=\"x\">&amp;</a>","esc":"tab\tnl\nquote\"\\"}`,
	`{"bb":1,"a":2,"ccc":3,"b":4,"aa":5,"Z":6,"_":7}`,
	`{"deep":[[[[[[[[[[[[[[1]]]]]]]]]]]]]]}`,
}

var indepKinds = []string{"note.text", "vote.cast", "a.b-c_d9", "x"}
var indepAuthors = []string{"alice", "", "bob@example.org", "c.d_e-f+g", "ZZ9"}

// buildIndepExport makes a chain of n records and returns its export.
func buildIndepExport(t *testing.T, g *ledger.Genesis, n int, origins []*ledger.Identity, nodeID *ledger.Identity, kindOf func(i int) string) []byte {
	t.Helper()
	ctx := context.Background()
	st, err := ledger.Open(ledger.Options{Dir: t.TempDir(), Genesis: g, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Now().UnixNano()
	for i := 0; i < n; i++ {
		js := indepPayloads[i%len(indepPayloads)]
		if i >= len(indepPayloads) {
			// Vary them further.
			js = fmt.Sprintf(`{"i":%d,"neg":%d,"s":"rec-%d","p":%s}`, i, -i*1000003, i, js)
		}
		payload, err := ledger.PayloadFromJSON([]byte(js))
		if err != nil {
			t.Fatalf("payload %d %s: %v", i, js, err)
		}
		id := origins[i%len(origins)]
		rec := &ledger.Record{
			Version: 1,
			Kind:    kindOf(i),
			Payload: payload,
			Origin:  id.Public(),
			Author:  indepAuthors[i%len(indepAuthors)],
			Created: base + int64(i),
		}
		if err := ledger.Mine(ctx, rec, g.PowBits); err != nil {
			t.Fatal(err)
		}
		sr, err := ledger.Sign(rec, id.Key, g.Network)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, sr, 0, "local"); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	var buf bytes.Buffer
	if err := st.Export(ctx, &buf, ledger.ExportOptions{Identity: nodeID}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newIndepIdentity(t *testing.T) *ledger.Identity {
	t.Helper()
	id, err := ledger.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func indepExport50(t *testing.T) []byte {
	g := ledger.NewGenesis("testnet")
	g.PowBits = 4
	node := newIndepIdentity(t)
	other := newIndepIdentity(t)
	return buildIndepExport(t, g, 50, []*ledger.Identity{node, other}, node,
		func(i int) string { return indepKinds[i%len(indepKinds)] })
}

func TestIndependentVerifierAcceptsExport(t *testing.T) {
	exp := indepExport50(t)
	lines := strings.Split(strings.TrimSuffix(string(exp), "\n"), "\n")
	if len(lines) != 52 {
		t.Fatalf("export has %d lines, want 52", len(lines))
	}
	size, root, err := verifyExportIndependently(bytes.NewReader(exp))
	if err != nil {
		t.Fatalf("independent verifier refused a genuine export: %v", err)
	}
	if size != 50 {
		t.Fatalf("size %d, want 50", size)
	}
	var tr struct {
		Root string `json:"root"`
	}
	if err := json.Unmarshal([]byte(lines[51]), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Root != hex.EncodeToString(root[:]) {
		t.Fatalf("root %x, trailer %s", root, tr.Root)
	}

	t.Run("empty", func(t *testing.T) {
		g := ledger.NewGenesis("empty-net")
		g.PowBits = 4
		node := newIndepIdentity(t)
		exp := buildIndepExport(t, g, 0, []*ledger.Identity{node}, node, nil)
		size, root, err := verifyExportIndependently(bytes.NewReader(exp))
		if err != nil {
			t.Fatalf("refused empty export: %v\n%s", err, exp)
		}
		if size != 0 || root != sha256.Sum256(nil) {
			t.Fatalf("empty export: size %d root %x", size, root)
		}
	})

	t.Run("originators", func(t *testing.T) {
		node := newIndepIdentity(t)
		voter := newIndepIdentity(t)
		g := ledger.NewGenesis("orig-net")
		g.PowBits = 4
		gj := fmt.Sprintf(`{"network":"orig-net","pow_bits":4,"replication_limit":1,"originators":{`+
			`"vote.*":["%x"],"vote.cast":["%x","%x","%x"],"charity.*":["%x"]}}`,
			node.Public(), voter.Public(), node.Public(), voter.Public(), voter.Public())
		if err := json.Unmarshal([]byte(gj), &g); err != nil {
			t.Fatalf("cannot set originators through genesis JSON: %v", err)
		}
		// node may make vote.register (pattern) and vote.cast (exact);
		// voter may make vote.cast; anyone may make note.text.
		kinds := []string{"vote.register", "vote.cast", "note.text", "vote.cast"}
		origins := []*ledger.Identity{node, node, voter, voter}
		ctx := context.Background()
		st, err := ledger.Open(ledger.Options{Dir: t.TempDir(), Genesis: g, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for i, k := range kinds {
			payload, _ := ledger.PayloadFromJSON([]byte(fmt.Sprintf(`{"i":%d}`, i)))
			rec := &ledger.Record{Version: 1, Kind: k, Payload: payload, Origin: origins[i].Public(), Created: time.Now().UnixNano()}
			if err := ledger.Mine(ctx, rec, g.PowBits); err != nil {
				t.Fatal(err)
			}
			sr, err := ledger.Sign(rec, origins[i].Key, g.Network)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Append(ctx, sr, 0, "local"); err != nil {
				t.Fatalf("append %s by #%d: %v", k, i, err)
			}
		}
		var buf bytes.Buffer
		if err := st.Export(ctx, &buf, ledger.ExportOptions{Identity: node}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := verifyExportIndependently(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatalf("refused export with originators: %v\n%s", err, buf.Bytes())
		}
		// The voter may not originate vote.register (only node may, by the
		// "vote.*" pattern). Store.Append trusts its caller (the node runs
		// the checks first), so appending directly puts the record in the
		// chain, as a faulty or hostile node would; an outside verifier of
		// the export must catch it at §11 step 5.
		payload, _ := ledger.PayloadFromJSON([]byte(`{"i":9}`))
		rec := &ledger.Record{Version: 1, Kind: "vote.register", Payload: payload, Origin: voter.Public(), Created: time.Now().UnixNano()}
		if err := ledger.Mine(ctx, rec, g.PowBits); err != nil {
			t.Fatal(err)
		}
		sr, err := ledger.Sign(rec, voter.Key, g.Network)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, sr, 0, "local"); err != nil {
			t.Fatalf("Append: %v", err)
		}
		buf.Reset()
		if err := st.Export(ctx, &buf, ledger.ExportOptions{Identity: node}); err != nil {
			t.Fatal(err)
		}
		_, _, err = verifyExportIndependently(bytes.NewReader(buf.Bytes()))
		if err == nil || !strings.Contains(err.Error(), "line 6: originator") {
			t.Fatalf("export with a non-originator record: err = %v, want a line 6 originator error", err)
		}
	})
}

// replaceField replaces the JSON string value of field in a line, using
// edit to compute the new value.
func replaceField(t *testing.T, line, field string, edit func(string) string) string {
	t.Helper()
	key := `"` + field + `":"`
	i := strings.Index(line, key)
	if i < 0 {
		t.Fatalf("no field %s in %s", field, line)
	}
	start := i + len(key)
	end := start + strings.IndexByte(line[start:], '"')
	return line[:start] + edit(line[start:end]) + line[end:]
}

func flipHexDigit(s string, pos int) string {
	b := []byte(s)
	if b[pos] == '0' {
		b[pos] = '1'
	} else {
		b[pos] = '0'
	}
	return string(b)
}

func TestIndependentVerifierRejectsTampering(t *testing.T) {
	exp := indepExport50(t)
	orig := strings.Split(strings.TrimSuffix(string(exp), "\n"), "\n")
	if _, _, err := verifyExportIndependently(strings.NewReader(string(exp))); err != nil {
		t.Fatalf("genuine export refused: %v", err)
	}
	const target = 10 // a record line (height 9)

	cases := []struct {
		name   string
		mutate func(lines []string) []string
		want   string // substring the error must contain
	}{
		{"flipped signature byte", func(l []string) []string {
			l[target] = replaceField(t, l[target], "signature", func(s string) string { return flipHexDigit(s, 20) })
			return l
		}, "line 11: signature"},
		{"changed link", func(l []string) []string {
			l[target] = replaceField(t, l[target], "link", func(s string) string { return flipHexDigit(s, 63) })
			return l
		}, "line 11: link"},
		{"changed payload byte in record", func(l []string) []string {
			// "rec-9" is in record 9's payload; "rec-8" is still canonical.
			l[target] = replaceField(t, l[target], "record", func(s string) string {
				old := hex.EncodeToString([]byte("rec-9"))
				if !strings.Contains(s, old) {
					t.Fatalf("record hex has no %q", "rec-9")
				}
				return strings.Replace(s, old, hex.EncodeToString([]byte("rec-8")), 1)
			})
			return l
		}, "line 11: id"},
		{"changed payload byte, id and links recomputed", func(l []string) []string {
			// A consistent forgery except for pow and signature.
			var prev [32]byte
			for i := 1; i < len(l)-1; i++ {
				var m map[string]json.RawMessage
				if err := json.Unmarshal([]byte(l[i]), &m); err != nil {
					t.Fatal(err)
				}
				var recHex string
				_ = json.Unmarshal(m["record"], &recHex)
				rb, _ := hex.DecodeString(recHex)
				if i == target {
					j := bytes.Index(rb, []byte("rec-9"))
					rb[j+4] = '7'
					m["record"], _ = json.Marshal(hex.EncodeToString(rb))
					m["payload"] = json.RawMessage(strings.Replace(string(m["payload"]), `"rec-9"`, `"rec-7"`, 1))
				}
				id := sha256.Sum256(rb)
				prev = chainLink(prev, id)
				m["id"], _ = json.Marshal(hex.EncodeToString(id[:]))
				m["link"], _ = json.Marshal(hex.EncodeToString(prev[:]))
				out, _ := json.Marshal(m)
				l[i] = string(out)
			}
			return l
		}, "line 11: "}, // pow or signature, depending on the new id
		{"non-canonical record", func(l []string) []string {
			l[target] = replaceField(t, l[target], "record", func(s string) string {
				if !strings.HasPrefix(s, "a70101") {
					t.Fatalf("record starts %s", s[:6])
				}
				return "a7011801" + s[6:]
			})
			return l
		}, "line 11: record: canonical"},
		{"dropped middle line", func(l []string) []string {
			return append(l[:target], l[target+1:]...)
		}, "line 11: height"},
		{"dropped last record line", func(l []string) []string {
			return append(l[:len(l)-2], l[len(l)-1])
		}, "line 51: size"},
		{"dropped trailer", func(l []string) []string {
			return l[:len(l)-1]
		}, "trailer"},
		{"swapped lines", func(l []string) []string {
			l[target], l[target+1] = l[target+1], l[target]
			return l
		}, "line 11: height"},
		{"changed decoded author", func(l []string) []string {
			var m map[string]any
			d := json.NewDecoder(strings.NewReader(l[target]))
			d.UseNumber()
			_ = d.Decode(&m)
			m["author"] = "mallory"
			out, _ := json.Marshal(m)
			l[target] = string(out)
			return l
		}, "line 11: fields"},
		{"trailer root", func(l []string) []string {
			l[len(l)-1] = replaceField(t, l[len(l)-1], "root", func(s string) string { return flipHexDigit(s, 0) })
			return l
		}, "line 52: root"},
		{"checkpoint signature", func(l []string) []string {
			l[len(l)-1] = replaceField(t, l[len(l)-1], "checkpoint", func(s string) string {
				// The base64 signature is the last word before the final \n.
				i := strings.LastIndex(s, " ") + 20
				b := []byte(s)
				if b[i] == 'A' {
					b[i] = 'B'
				} else {
					b[i] = 'A'
				}
				return string(b)
			})
			return l
		}, "line 52: checkpoint"},
		{"checkpoint size", func(l []string) []string {
			l[len(l)-1] = replaceField(t, l[len(l)-1], "checkpoint", func(s string) string {
				return strings.Replace(s, `\n50\n`, `\n49\n`, 1)
			})
			return l
		}, "line 52: checkpoint"},
		{"header pow_bits", func(l []string) []string {
			l[0] = strings.Replace(l[0], `"pow_bits":4`, `"pow_bits":5`, 1)
			return l
		}, "line 1: genesis_hash"},
		{"header node", func(l []string) []string {
			l[0] = replaceField(t, l[0], "node", func(s string) string { return flipHexDigit(s, 5) })
			return l
		}, "line 52: checkpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lines := c.mutate(append([]string(nil), orig...))
			in := strings.Join(lines, "\n") + "\n"
			if in == string(exp) {
				t.Fatal("mutation changed nothing")
			}
			_, _, err := verifyExportIndependently(strings.NewReader(in))
			if err == nil {
				t.Fatal("tampered export accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// ---------------------------------------------------------------------------
// FORMAT.md §13 test vectors, recomputed by the independent code.

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inclusionPath is RFC 6962 §2.1.1 PATH(m, D[n]) over leaf hashes.
func inclusionPath(m int, leaves [][32]byte) [][32]byte {
	n := len(leaves)
	if n <= 1 {
		return nil
	}
	k := splitPoint(n)
	if m < k {
		return append(inclusionPath(m, leaves[:k]), merkleRoot(leaves[k:]))
	}
	return append(inclusionPath(m-k, leaves[k:]), merkleRoot(leaves[:k]))
}

// consistencyProof is RFC 6962 §2.1.2 PROOF(m, D[n]).
func consistencyProof(m int, leaves [][32]byte) [][32]byte {
	var sub func(m int, d [][32]byte, b bool) [][32]byte
	sub = func(m int, d [][32]byte, b bool) [][32]byte {
		n := len(d)
		if m == n {
			if b {
				return nil
			}
			return [][32]byte{merkleRoot(d)}
		}
		k := splitPoint(n)
		if m <= k {
			return append(sub(m, d[:k], b), merkleRoot(d[k:]))
		}
		return append(sub(m-k, d[k:], false), merkleRoot(d[:k]))
	}
	return sub(m, leaves, true)
}

func TestIndependentVerifierVectors(t *testing.T) {
	// Identity.
	seed := mustHex(t, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	const nodeHex = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
	if hex.EncodeToString(pub) != nodeHex {
		t.Fatalf("node id %x", pub)
	}
	fp := sha256.Sum256(pub)
	if got := "SHA256:" + base64.RawStdEncoding.EncodeToString(fp[:]); got != "SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw" {
		t.Fatalf("fingerprint %s", got)
	}

	// Genesis.
	const genesisJSON = `{"network":"vectors","pow_bits":8,"replication_limit":1}`
	gen, err := parseIndepGenesis([]byte(genesisJSON))
	if err != nil {
		t.Fatal(err)
	}
	gc, err := gen.genesisCBOR()
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(gc) != "a40167766563746f72730208030104a0" {
		t.Fatalf("genesis CBOR %x", gc)
	}
	gh := sha256.Sum256(gc)
	if hex.EncodeToString(gh[:]) != "7ea7221ce1f76b68862ef73a77d78cee9f49a52191b537979d9269a17bf80013" {
		t.Fatalf("genesis hash %x", gh)
	}
	// Originators hash form: ids become sorted, deduplicated byte strings.
	g2, err := parseIndepGenesis([]byte(`{"network":"n","originators":{"b.*":["` + strings.Repeat("02", 32) + `","` +
		strings.Repeat("01", 32) + `","` + strings.Repeat("02", 32) + `"],"a":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	g2c, _ := g2.genesisCBOR()
	// {1: "n", 2: 16, 3: 1, 4: {"a": [], "b.*": [h'01..', h'02..']}}
	want2 := "a4" + "01616e" + "0210" + "0301" + "04a2" + "6161" + "80" + "63622e2a" + "82" +
		"5820" + strings.Repeat("01", 32) + "5820" + strings.Repeat("02", 32)
	if hex.EncodeToString(g2c) != want2 {
		t.Fatalf("genesis with originators CBOR\n got %x\nwant %s", g2c, want2)
	}

	// Record 0: decode the quoted CBOR and recompute everything from it.
	const rec0Hex = "a7010102696e6f74652e7465787403a5616e182a626f6bf564626c6f62430001026474616773826161616264746578746e68656c6c6f2c207079766e6f646504582003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b80565616c696365061b18867251edfa000007187c"
	rec0b := mustHex(t, rec0Hex)
	rec0, err := decodeIndepRecord(rec0b)
	if err != nil {
		t.Fatal(err)
	}
	if rec0.Kind != "note.text" || rec0.Author != "alice" || rec0.Created != 1767225600000000000 ||
		!bytes.Equal(rec0.Origin, pub) || rec0.Nonce != 124 {
		t.Fatalf("record 0 fields %+v", rec0)
	}
	const payloadCBOR = "a5616e182a626f6bf564626c6f62430001026474616773826161616264746578746e68656c6c6f2c207079766e6f6465"
	if pc, _ := indepEnc.Marshal(rec0.Payload); hex.EncodeToString(pc) != payloadCBOR {
		t.Fatalf("payload CBOR %x", pc)
	}
	pj, err := parseOrderedJSON([]byte(`{"n":42,"ok":true,"blob":{"$bytes":"AAEC"},"tags":["a","b"],"text":"hello, pyvnode"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := matchPayloadJSON(rec0.Payload, pj, "payload"); err != nil {
		t.Fatal(err)
	}

	// Build records 0..2 from their fields, mining the smallest nonce.
	type vrec struct {
		payload map[string]any
		nonce   uint64
		id      string
		link    string
		leaf    string
	}
	vecs := []vrec{
		{map[string]any{"text": "hello, pyvnode", "n": uint64(42), "tags": []any{"a", "b"}, "blob": []byte{0, 1, 2}, "ok": true}, 124,
			"00cfacc0f9d09b168b0baa3d5636dc7d77762e16c6d5ad08ef204a2c58083c47",
			"c8072bb5b9b5a20d6b60a7c7bf6245f4af3a2c636bab4e413f79ab1ca75716e1",
			"a512d5daa50a536cbe5b3d57f87d0064bd2616bfb2682c5645f1740b56b8bdcc"},
		{map[string]any{"n": uint64(1)}, 73,
			"00f6fb290e0166855152c1cf0b0ee9c57e79da42418c177aa7b8cc927a52d646",
			"4cdc81f84e86fc518d64ff049a4c861c4649b155169a1ff12a6b2341b8c27157",
			"daf970d10266772d33935fbea39d8bf5ca27c32c1fc723e7042613833bfb7fb5"},
		{map[string]any{"n": uint64(2)}, 59,
			"005a77a67f1c8e031f5b59a500ea8c2299595a875f27cae3f76fde889e4d37e6",
			"5c36c42c0a7c07734ac9c474fc7eede45785a5077e130d19ef86d8794bd3327d",
			"0e7cf433cc4b604a39f41b079c274acfdc5cc974f8276151c22bfff24b933ca6"},
	}
	var (
		prev     [32]byte
		leaves   [][32]byte
		recLines []string
	)
	for i, v := range vecs {
		encode := func(nonce uint64) []byte {
			b, err := indepEnc.Marshal(map[uint64]any{
				1: uint64(1), 2: "note.text", 3: v.payload, 4: []byte(pub), 5: "alice",
				6: uint64(1767225600000000000 + i), 7: nonce,
			})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		var nonce uint64
		for leadingZeroBits(recordID(encode(nonce))) < 8 {
			nonce++
		}
		if nonce != v.nonce {
			t.Fatalf("record %d: smallest nonce %d, document says %d", i, nonce, v.nonce)
		}
		rb := encode(nonce)
		if i == 0 && !bytes.Equal(rb, rec0b) {
			t.Fatalf("record 0 built from fields\n got %x\nwant %s", rb, rec0Hex)
		}
		id := recordID(rb)
		if hex.EncodeToString(id[:]) != v.id {
			t.Fatalf("record %d id %x", i, id)
		}
		prev = chainLink(prev, id)
		if hex.EncodeToString(prev[:]) != v.link {
			t.Fatalf("record %d link %x", i, prev)
		}
		leaf := merkleLeaf(id)
		if hex.EncodeToString(leaf[:]) != v.leaf {
			t.Fatalf("record %d leaf %x", i, leaf)
		}
		leaves = append(leaves, leaf)
		msg := signatureMessage("vectors", id)
		sig := ed25519.Sign(key, msg)
		if i == 0 {
			if hex.EncodeToString(msg) != "7079766e6f6465207265636f7264207369676e61747572652076310a766563746f72730a00cfacc0f9d09b168b0baa3d5636dc7d77762e16c6d5ad08ef204a2c58083c47" {
				t.Fatalf("signed message %x", msg)
			}
			if hex.EncodeToString(sig) != "5d5506b4c7df15936e5ff1de73e09b2c0e4fd862368a33253e11a7e4fc1c4312a2a3567f978d8ceb8d4406250fb88eeb55d5cbd0e606c1a5e51c414707c6f70a" {
				t.Fatalf("signature %x", sig)
			}
			// Envelope (§7).
			env := append(append([]byte{0x82}, rb...), 0x58, 0x40)
			env = append(env, sig...)
			if hex.EncodeToString(env) != "82"+rec0Hex+"5840"+hex.EncodeToString(sig) {
				t.Fatal("envelope")
			}
			// Stored entry (§12).
			const stored = "86582000cfacc0f9d09b168b0baa3d5636dc7d77762e16c6d5ad08ef204a2c58083c475820c8072bb5b9b5a20d6b60a7c7bf6245f4af3a2c636bab4e413f79ab1ca75716e100656c6f63616c1b18867251edfa000082a7010102696e6f74652e7465787403a5616e182a626f6bf564626c6f62430001026474616773826161616264746578746e68656c6c6f2c207079766e6f646504582003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b80565616c696365061b18867251edfa000007187c58405d5506b4c7df15936e5ff1de73e09b2c0e4fd862368a33253e11a7e4fc1c4312a2a3567f978d8ceb8d4406250fb88eeb55d5cbd0e606c1a5e51c414707c6f70a"
			se, err := indepEnc.Marshal([]any{id[:], prev[:], uint64(0), "local", uint64(1767225600000000000), cbor.RawMessage(env)})
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(se) != stored {
				t.Fatalf("stored entry %x", se)
			}
		}
		// Export line; record 0's must be byte-for-byte the quoted one.
		pjson, err := json.Marshal(v.payload)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			pjson = []byte(`{"n":42,"ok":true,"blob":{"$bytes":"AAEC"},"tags":["a","b"],"text":"hello, pyvnode"}`)
		}
		line := fmt.Sprintf(`{"height":%d,"id":"%x","link":"%x","replication":0,"source":"local","received":%d,"record":"%x","signature":"%x","version":1,"kind":"note.text","payload":%s,"origin":"%x","author":"alice","created":%d,"nonce":%d}`,
			i, id, prev, 1767225600000000000+i, rb, sig, pjson, pub, 1767225600000000000+i, nonce)
		recLines = append(recLines, line)
	}
	const line0 = `{"height":0,"id":"00cfacc0f9d09b168b0baa3d5636dc7d77762e16c6d5ad08ef204a2c58083c47","link":"c8072bb5b9b5a20d6b60a7c7bf6245f4af3a2c636bab4e413f79ab1ca75716e1","replication":0,"source":"local","received":1767225600000000000,"record":"a7010102696e6f74652e7465787403a5616e182a626f6bf564626c6f62430001026474616773826161616264746578746e68656c6c6f2c207079766e6f646504582003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b80565616c696365061b18867251edfa000007187c","signature":"5d5506b4c7df15936e5ff1de73e09b2c0e4fd862368a33253e11a7e4fc1c4312a2a3567f978d8ceb8d4406250fb88eeb55d5cbd0e606c1a5e51c414707c6f70a","version":1,"kind":"note.text","payload":{"n":42,"ok":true,"blob":{"$bytes":"AAEC"},"tags":["a","b"],"text":"hello, pyvnode"},"origin":"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8","author":"alice","created":1767225600000000000,"nonce":124}`
	if recLines[0] != line0 {
		t.Fatalf("export line 0\n got %s\nwant %s", recLines[0], line0)
	}

	// Merkle tree.
	if r2 := merkleRoot(leaves[:2]); hex.EncodeToString(r2[:]) != "f6324502cddd58d8cbc4740b7b9b0a98df50881ec3dac841127c5802cc1cd28c" {
		t.Fatalf("root of 2 %x", r2)
	}
	root3 := merkleRoot(leaves)
	if hex.EncodeToString(root3[:]) != "170db711f55ce665d6c994ca7b3c3bced0c9ac647e4b23aef3cdd9f8618e7dfb" {
		t.Fatalf("root of 3 %x", root3)
	}
	if p := inclusionPath(1, leaves); len(p) != 2 || p[0] != leaves[0] || p[1] != leaves[2] {
		t.Fatalf("inclusion proof %x", p)
	}
	if p := consistencyProof(2, leaves); len(p) != 1 || p[0] != leaves[2] {
		t.Fatalf("consistency proof %x", p)
	}

	// Checkpoint.
	const cpNote = "pyvnode/vectors/03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8\n" +
		"3\n" +
		"Fw23EfVc5mXWyZTKezw7ztDJrGR+SyOu883Z+GGOffs=\n" +
		"link 5c36c42c0a7c07734ac9c474fc7eede45785a5077e130d19ef86d8794bd3327d\n" +
		"time 2026-01-01T00:00:00Z\n" +
		"\n" +
		"\u2014 pyvnode/vectors/03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8 j258+Lppuuyk//HBjknTIBVNU6OH8ug8OmzuY7vZYWluaLzU0SUVadMIfOwPNKUuOA8mTWnsgDukJ3WRGmaC27gngwk=\n"
	cp, err := verifyIndepCheckpoint(cpNote, "vectors", pub)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 3 || cp.Root != root3 || cp.Link != prev || !cp.Time.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("checkpoint %+v", cp)
	}
	// Re-sign the body ourselves: Ed25519 is deterministic.
	body := cpNote[:strings.Index(cpNote, "\n\n")+1]
	kh := sha256.Sum256(append([]byte("pyvnode/vectors/"+nodeHex+"\n\x01"), pub...))
	mySig := base64.StdEncoding.EncodeToString(append(kh[:4:4], ed25519.Sign(key, []byte(body))...))
	if !strings.Contains(cpNote, " "+mySig+"\n") {
		t.Fatalf("re-signed checkpoint %s not in the vector", mySig)
	}
	vkey := "pyvnode/vectors/" + nodeHex + "+" + hex.EncodeToString(kh[:4]) + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, pub...))
	t.Logf("signed-note verifier key: %s", vkey)

	// A whole export of the three vector records must verify.
	header := fmt.Sprintf(`{"format":%q,"network":"vectors","genesis":%s,"genesis_hash":"%x","node":"%s","from":0,"size":3}`,
		exportFormat, genesisJSON, gh, nodeHex)
	cpj, _ := json.Marshal(cpNote)
	trailer := fmt.Sprintf(`{"end":true,"size":3,"root":"%x","link":"%x","checkpoint":%s}`, root3, prev, cpj)
	all := header + "\n" + strings.Join(recLines, "\n") + "\n" + trailer + "\n"
	size, root, err := verifyExportIndependently(strings.NewReader(all))
	if err != nil {
		t.Fatalf("vector export refused: %v", err)
	}
	if size != 3 || root != root3 {
		t.Fatalf("vector export: size %d root %x", size, root)
	}
}

// TestIndependentPayloadRules checks the payload rules this verifier
// applies against what the ledger accepts.
func TestIndependentPayloadRules(t *testing.T) {
	nest := func(n int) string { // n nested arrays inside the payload map
		return `{"d":` + strings.Repeat("[", n) + "1" + strings.Repeat("]", n) + "}"
	}
	cases := []struct {
		json string
	}{
		{nest(15)}, {nest(16)}, {`{"a":{"":1}}`}, {`{"a":{"$bytes":"AA==","x":1}}`}, {`{"a":[{"$bytes":"AA=="}]}`},
		{`{"` + strings.Repeat("k", 257) + `":1}`}, {`{"a":-9223372036854775809}`}, {`{"a":1.5}`}, {`{"a":null}`}, {`{"a":1e3}`},
	}
	for _, c := range cases {
		p, lerr := ledger.PayloadFromJSON([]byte(c.json))
		var ierr error
		if lerr == nil {
			// Re-run the independent rules on the CBOR the ledger built.
			b, err := indepEnc.Marshal(p)
			if err == nil {
				var v any
				if err = indepDec.Unmarshal(b, &v); err == nil {
					ierr = checkPayloadValue(v, 1)
				}
			}
			if err != nil {
				t.Logf("%.60s: cannot round-trip ledger payload through CBOR: %v", c.json, err)
				continue
			}
		}
		t.Logf("%.60s: ledger err=%v independent err=%v", c.json, lerr, ierr)
		if lerr == nil && ierr != nil {
			t.Errorf("%.60s: ledger accepts, independent verifier refuses: %v", c.json, ierr)
		}
	}
}
