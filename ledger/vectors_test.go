package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json from the code")

// Vectors are the values docs/FORMAT.md shows. TestVectors recomputes each
// one, compares it with testdata/vectors.json and checks that the document
// quotes it verbatim, so code, file and document cannot drift apart.
type Vectors struct {
	Seed            string   `json:"seed"`
	NodeID          string   `json:"node_id"`
	Fingerprint     string   `json:"fingerprint"`
	GenesisJSON     string   `json:"genesis_json"`
	GenesisCBOR     string   `json:"genesis_cbor"`
	GenesisHash     string   `json:"genesis_hash"`
	PayloadJSON     string   `json:"payload_json"`
	PayloadCBOR     string   `json:"payload_cbor"`
	Nonces          []uint64 `json:"nonces"`
	RecordCBOR      string   `json:"record_cbor"`
	RecordID        string   `json:"record_id"`
	LeadingZeroBits int      `json:"leading_zero_bits"`
	SigMessage      string   `json:"sig_message"`
	Signature       string   `json:"signature"`
	Envelope        string   `json:"envelope"`
	IDs             []string `json:"ids"`
	Links           []string `json:"links"`
	Leaves          []string `json:"leaves"`
	Node01          string   `json:"node_01"`
	Root3           string   `json:"root_3"`
	Root2           string   `json:"root_2"`
	Inclusion1of3   []string `json:"inclusion_1_of_3"`
	Consistency2to3 []string `json:"consistency_2_to_3"`
	CheckpointNote  string   `json:"checkpoint_note"`
	ExportLine      string   `json:"export_line"`
	StoredEntry     string   `json:"stored_entry"`
	StoredEntry1    string   `json:"stored_entry_1"`
	Frame0          string   `json:"frame_0"`
	Locator0        string   `json:"locator_0"`
}

const vectorNetwork = "vectors"

func vectorKey() ed25519.PrivateKey {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// vectorRecord builds record i of the vector chain with the smallest nonce
// that meets the proof of work (searched one by one, so it is reproducible).
func vectorRecord(t *testing.T, i int) *SignedRecord {
	key := vectorKey()
	var p []byte
	var err error
	if i == 0 {
		p, err = PayloadFromJSON([]byte(`{"text":"hello, pyvnode","n":42,"tags":["a","b"],"blob":{"$bytes":"AAEC"},"ok":true}`))
	} else {
		p, err = EncodePayload(map[string]any{"n": int64(i)})
	}
	if err != nil {
		t.Fatal(err)
	}
	rec := &Record{
		Version: 1, Kind: "note.text", Payload: p, Origin: key.Public().(ed25519.PublicKey),
		Author: "alice", Created: 1767225600000000000 + int64(i), // 2026-01-01T00:00:00Z
	}
	for rec.Nonce = 0; ; rec.Nonce++ {
		id, err := rec.ComputeID()
		if err != nil {
			t.Fatal(err)
		}
		if LeadingZeroBits(id) >= 8 {
			break
		}
	}
	s, err := Sign(rec, key, vectorNetwork)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func computeVectors(t *testing.T) *Vectors {
	key := vectorKey()
	id := &Identity{Key: key}
	g := NewGenesis(vectorNetwork)
	g.PowBits = 8
	gj, _ := json.Marshal(g)
	gh := g.Hash()
	gc, _ := encMode.Marshal(genesisCBOR{Network: g.Network, PowBits: g.PowBits, ReplicationLimit: g.ReplicationLimit, Originators: map[string][][]byte{}})
	if sha256.Sum256(gc) != gh {
		t.Fatal("genesis hash is not SHA-256 of genesis_cbor")
	}
	v := &Vectors{
		Seed: hex.EncodeToString(key.Seed()), NodeID: id.ID().String(), Fingerprint: id.ID().Fingerprint(),
		GenesisJSON: string(gj), GenesisCBOR: hex.EncodeToString(gc), GenesisHash: hex.EncodeToString(gh[:]),
	}
	var recs []*SignedRecord
	for i := range 3 {
		recs = append(recs, vectorRecord(t, i))
	}
	r0 := recs[0]
	pj, _ := PayloadJSON(r0.Payload)
	v.PayloadJSON = string(pj)
	v.PayloadCBOR = hex.EncodeToString(r0.Payload)
	v.RecordCBOR = hex.EncodeToString(r0.RecordBytes())
	v.RecordID = r0.ID.String()
	v.LeadingZeroBits = LeadingZeroBits(r0.ID)
	v.SigMessage = hex.EncodeToString(SigMessage(vectorNetwork, r0.ID))
	v.Signature = hex.EncodeToString(r0.Signature)
	v.Envelope = hex.EncodeToString(r0.Encode())

	link := Hash{}
	var leaves [][]byte
	for _, r := range recs {
		v.Nonces = append(v.Nonces, r.Nonce)
		v.IDs = append(v.IDs, r.ID.String())
		link = NextLink(link, r.ID)
		v.Links = append(v.Links, link.String())
		l := LeafHash(r.ID)
		leaves = append(leaves, l[:])
		v.Leaves = append(v.Leaves, l.String())
	}
	n01 := hasher.HashChildren(leaves[0], leaves[1])
	v.Node01 = hex.EncodeToString(n01)
	root3 := Hash(hasher.HashChildren(n01, leaves[2]))
	v.Root3 = root3.String()
	v.Root2 = v.Node01

	// Proofs from a real store, checked against the hand-computed root.
	s := openTestStore(t, t.TempDir(), g)
	defer s.Close()
	for _, r := range recs {
		if _, err := s.Append(t.Context(), r, 0, "local"); err != nil {
			t.Fatal(err)
		}
	}
	if s.Head().Root != root3 {
		t.Fatalf("store root %s, hand-computed %s", s.Head().Root, root3)
	}
	inc, err := s.InclusionProof(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.ConsistencyProof(2, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range inc {
		v.Inclusion1of3 = append(v.Inclusion1of3, hex.EncodeToString(p))
	}
	for _, p := range cons {
		v.Consistency2to3 = append(v.Consistency2to3, hex.EncodeToString(p))
	}
	cp := &Checkpoint{Network: vectorNetwork, Node: id.ID(), Size: 3, Root: root3, Link: link, Time: time.Unix(1767225600, 0).UTC()}
	note, err := SignCheckpoint(cp, id)
	if err != nil {
		t.Fatal(err)
	}
	v.CheckpointNote = string(note)

	e := Entry{Height: 0, ID: r0.ID, Link: Hash(mustHex(v.Links[0])), Replication: 0, Source: "local", Received: 1767225600000000000}
	x, err := NewExportRecord(r0, e)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(x)
	v.ExportLine = strings.TrimSuffix(buf.String(), "\n")
	v.StoredEntry = hex.EncodeToString(encodeEntry(&e, nil, r0))
	e1 := Entry{Height: 1, ID: recs[1].ID, Link: Hash(mustHex(v.Links[1])), Replication: 2, Source: "peer", Received: 1767225600000000001}
	v.StoredEntry1 = hex.EncodeToString(encodeEntry(&e1, []Hash{Hash(n01)}, recs[1]))
	// The store wrote the same frame payload, apart from its receive time.
	loc, err := s.locator(0)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := s.segs.readFrame(loc.pos)
	if err != nil {
		t.Fatal(err)
	}
	se, _, _, err := decodeEntry(sv)
	if err != nil || se.ID != r0.ID || se.Link != e.Link {
		t.Fatalf("store's entry 0 does not decode: %v", err)
	}
	se.Received = e.Received
	if !bytes.Equal(encodeEntry(&se, nil, r0), encodeEntry(&e, nil, r0)) {
		t.Fatal("store's frame payload differs from the documented one")
	}
	v.Locator0 = hex.EncodeToString(loc.encode())
	v.Frame0 = hex.EncodeToString(appendFrame(nil, mustHex(v.StoredEntry)))
	return v
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestVectors(t *testing.T) {
	got := computeVectors(t)
	path := "testdata/vectors.json"
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want Vectors
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Fatalf("vectors changed:\n got %s\nwant %s\n(run go test ./ledger -run TestVectors -update if the change is intended, and update docs/FORMAT.md)", gj, wj)
	}

	// Every value must stand in docs/FORMAT.md, so the document is checked too.
	doc, err := os.ReadFile("../docs/FORMAT.md")
	if err != nil {
		t.Fatalf("read FORMAT.md: %v", err)
	}
	var m map[string]any
	json.Unmarshal(wj, &m)
	for name, val := range m {
		for _, s := range flatten(val) {
			if !bytes.Contains(doc, []byte(s)) {
				t.Errorf("docs/FORMAT.md does not quote vector %s: %s", name, s)
			}
		}
	}

	// Independent checks that do not go through the package's own helpers.
	sig := mustHex(got.Signature)
	if !ed25519.Verify(ed25519.PublicKey(mustHex(got.NodeID)), mustHex(got.SigMessage), sig) {
		t.Error("vector signature does not verify with crypto/ed25519")
	}
	if sum := sha256.Sum256(mustHex(got.RecordCBOR)); hex.EncodeToString(sum[:]) != got.RecordID {
		t.Error("record id is not SHA-256 of record_cbor")
	}
	wantMsg := hex.EncodeToString([]byte(SigContext + vectorNetwork + "\n"))
	if !strings.HasPrefix(got.SigMessage, wantMsg) {
		t.Error("signature message prefix")
	}
	if _, err := base64.StdEncoding.DecodeString(strings.Split(got.CheckpointNote, "\n")[2]); err != nil {
		t.Error("checkpoint root line is not base64")
	}
}

// flatten lists the strings a vector value contributes to the document:
// scalars as they are, multi-line text line by line.
func flatten(v any) []string {
	switch x := v.(type) {
	case string:
		var out []string
		for _, l := range strings.Split(x, "\n") {
			if l != "" {
				out = append(out, l)
			}
		}
		return out
	case float64:
		return []string{strings.TrimSuffix(strings.TrimSuffix(json.Number(jsonNum(x)).String(), ".0"), ".")}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return nil
}

func jsonNum(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}
