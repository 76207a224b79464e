package p2p

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/p2p/recon"
)

// The vectors docs/REPLICATION.md shows (§7). TestVectors recomputes each
// one from the code, compares it with the value written here and checks
// that the document quotes it verbatim, so code, test and document cannot
// drift apart. The record and genesis are those of docs/FORMAT.md §13.
var wantVectors = []struct{ name, hex string }{
	{"peer_id", "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"},
	{"hello_body", "a401010267766563746f72730358207ea7221ce1f76b68862ef73a77d78cee9f49a52191b537979d9269a17bf80013046474657374"},
	{"hello_frame", "3610a401010267766563746f72730358207ea7221ce1f76b68862ef73a77d78cee9f49a52191b537979d9269a17bf80013046474657374"},
	{"gossip_message", "010082a7010102696e6f74652e7465787403a5616e182a626f6bf564626c6f62430001026474616773826161616264746578746e68656c6c6f2c207079766e6f646504582003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b80565616c696365061b18867251edfa000007187c58405d5506b4c7df15936e5ff1de73e09b2c0e4fd862368a33253e11a7e4fc1c4312a2a3567f978d8ceb8d4406250fb88eeb55d5cbd0e606c1a5e51c414707c6f70a"},
	{"gossip_message_id", "b2a18e53d955b2260b3d75feb805595981fff79e0c0cea9c96dfca240bcb5c1c"},
	{"frame_recon", "2601010000020100cfacc0f9d09b168b0baa3d5636dc7d77762e16c6d5ad08ef204a2c58083c47"},
	{"frame_need", "210200cfacc0f9d09b168b0baa3d5636dc7d77762e16c6d5ad08ef204a2c58083c47"},
	{"frame_done", "0103"},
	{"frame_record", "bb01040182a7010102696e6f74652e7465787403a5616e182a626f6bf564626c6f62430001026474616773826161616264746578746e68656c6c6f2c207079766e6f646504582003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b80565616c696365061b18867251edfa000007187c58405d5506b4c7df15936e5ff1de73e09b2c0e4fd862368a33253e11a7e4fc1c4312a2a3567f978d8ceb8d4406250fb88eeb55d5cbd0e606c1a5e51c414707c6f70a"},
	{"frame_end", "0105"},
	{"frame_stored", "0106"},
	{"item_a", "559aead08264d5795d3909718cdd05abd49572e84fe55590eef31a88a08fdffd"},
	{"item_b", "df7e70e5021544f4834bbee64a9e3789febc4be81470df629cad6ddb03320a5c"},
	{"item_c", "6b23c0d5f35d1b11f9b683f0b0a617355deb11277d91ae091d399c655b87940d"},
	{"item_d", "3f39d5c348e5b79d06e842c114e6cc571583bbf44e4b0ebfda1a01ec05745d43"},
	{"fp_empty", "7f9c9e31ac8256ca2f258583df262dbc"},
	{"fp_abc", "0985f1de9dd4a2950fb6b4d456074380"},
	{"fp_abd", "fbbbc78adbe174ecfd17d3698b71197d"},
	{"t1_msg1", "0100000203559aead08264d5795d3909718cdd05abd49572e84fe55590eef31a88a08fdffd6b23c0d5f35d1b11f9b683f0b0a617355deb11277d91ae091d399c655b87940ddf7e70e5021544f4834bbee64a9e3789febc4be81470df629cad6ddb03320a5c"},
	{"t1_b_have", "3f39d5c348e5b79d06e842c114e6cc571583bbf44e4b0ebfda1a01ec05745d43"},
	{"t1_b_need", "6b23c0d5f35d1b11f9b683f0b0a617355deb11277d91ae091d399c655b87940d"},
	{"t2_msg1", "01d10f0001dad165352c3667d9c2c02c24433b99570000019a2833e5daff52a4e474d49de41ca983"},
	{"t2_msg2", "01d10f00000101df013e18bfc701f5b193c75c46c3ab0f573b0000014830d6d9193dc4f78c63a0042cbdc5c4"},
	{"t2_msg3", "01d10f00000101df02016b23c0d5f35d1b11f9b683f0b0a617355deb11277d91ae091d399c655b87940d"},
	{"t2_b_have", "3f39d5c348e5b79d06e842c114e6cc571583bbf44e4b0ebfda1a01ec05745d43"},
	{"t2_b_need", "6b23c0d5f35d1b11f9b683f0b0a617355deb11277d91ae091d399c655b87940d"},
}

const vectorNetwork = "vectors"

func vectorKey() ed25519.PrivateKey {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// vectorRecord is record 0 of docs/FORMAT.md §13, built the same way as
// ledger/vectors_test.go builds it: the smallest nonce with 8 leading zero
// bits, signed for the network "vectors".
func vectorRecord(t *testing.T) *ledger.SignedRecord {
	key := vectorKey()
	p, err := ledger.PayloadFromJSON([]byte(`{"text":"hello, pyvnode","n":42,"tags":["a","b"],"blob":{"$bytes":"AAEC"},"ok":true}`))
	if err != nil {
		t.Fatal(err)
	}
	rec := &ledger.Record{
		Version: 1, Kind: "note.text", Payload: p, Origin: key.Public().(ed25519.PublicKey),
		Author: "alice", Created: 1767225600000000000, // 2026-01-01T00:00:00Z
	}
	for rec.Nonce = 0; ; rec.Nonce++ {
		id, err := rec.ComputeID()
		if err != nil {
			t.Fatal(err)
		}
		if ledger.LeadingZeroBits(id) >= 8 {
			break
		}
	}
	s, err := ledger.Sign(rec, key, vectorNetwork)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// vectorItem is a reconciliation item whose id is SHA-256 of a letter.
func vectorItem(letter string, t uint64) recon.Item {
	return recon.Item{T: t, ID: sha256.Sum256([]byte(letter))}
}

func frameHex(typ byte, body []byte) string {
	var b bytes.Buffer
	writeFrame(&b, typ, body)
	return hex.EncodeToString(b.Bytes())
}

func idsHex(ids [][32]byte) string {
	var s []string
	for _, id := range ids {
		s = append(s, hex.EncodeToString(id[:]))
	}
	return strings.Join(s, ",")
}

func computeVectors(t *testing.T) map[string]string {
	v := map[string]string{}
	key := vectorKey()
	pid, err := PeerID(&ledger.Identity{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	v["peer_id"] = pid.String()

	// Hello for the genesis of docs/FORMAT.md §13.
	g := ledger.NewGenesis(vectorNetwork)
	g.PowBits = 8
	gh := g.Hash()
	h := Hello{Version: HelloVersion, Network: vectorNetwork, Genesis: gh[:], Software: "test"}
	body := EncodeHello(h)
	v["hello_body"] = hex.EncodeToString(body)
	v["hello_frame"] = frameHex(frameHello, body)
	var fb bytes.Buffer
	writeFrame(&fb, frameHello, body)
	back, err := readHello(bufio.NewReader(&fb))
	if err != nil || back.Network != h.Network || !bytes.Equal(back.Genesis, h.Genesis) || back.Software != h.Software || back.Version != h.Version {
		t.Fatalf("hello does not read back: %+v, %v", back, err)
	}

	// Gossip of record 0, as its origin publishes it (count 0).
	rec := vectorRecord(t)
	msg := EncodeGossip(rec, 0)
	v["gossip_message"] = hex.EncodeToString(msg)
	v["gossip_message_id"] = hex.EncodeToString([]byte(gossipMessageID(&pb.Message{Data: msg})))
	if repl, env, err := DecodeGossip(msg); err != nil || repl != 0 || !bytes.Equal(env, rec.Encode()) {
		t.Fatalf("gossip does not decode back: %v", err)
	}

	// Sync frames: a set holding only record 0 opens with its id list.
	set := recon.NewSet()
	set.Insert(recon.Item{T: uint64(rec.Created), ID: rec.ID})
	v["frame_recon"] = frameHex(frameRecon, (&recon.Reconciler{Set: set}).Initiate())
	v["frame_need"] = frameHex(frameNeed, rec.ID[:])
	v["frame_done"] = frameHex(frameDone, nil)
	v["frame_record"] = frameHex(frameRecord, append([]byte{1}, rec.Encode()...))
	v["frame_end"] = frameHex(frameEnd, nil)
	v["frame_stored"] = frameHex(frameStored, nil)

	// Reconciliation between {A, B, C} (initiator) and {A, B, D}.
	a, b, c, d := vectorItem("A", 1000), vectorItem("B", 2000), vectorItem("C", 2000), vectorItem("D", 2000)
	for name, it := range map[string]recon.Item{"item_a": a, "item_b": b, "item_c": c, "item_d": d} {
		v[name] = hex.EncodeToString(it.ID[:])
	}
	empty := recon.NewSet()
	fp := empty.Fingerprint(0, 0)
	v["fp_empty"] = hex.EncodeToString(fp[:])
	sa, sb := recon.NewSet(), recon.NewSet()
	for _, it := range []recon.Item{a, b, c} {
		sa.Insert(it)
	}
	for _, it := range []recon.Item{a, b, d} {
		sb.Insert(it)
	}
	fp = sa.Fingerprint(0, 3)
	v["fp_abc"] = hex.EncodeToString(fp[:])
	fp = sb.Fingerprint(0, 3)
	v["fp_abd"] = hex.EncodeToString(fp[:])

	// Transcript 1: the parameters a node uses (branch 16, id lists up to 16).
	ra, rb := &recon.Reconciler{Set: sa}, &recon.Reconciler{Set: sb}
	m1 := ra.Initiate()
	v["t1_msg1"] = hex.EncodeToString(m1)
	st, err := rb.Reconcile(m1)
	if err != nil {
		t.Fatal(err)
	}
	if st.Reply != nil {
		t.Fatalf("transcript 1: B replied %x", st.Reply)
	}
	v["t1_b_have"], v["t1_b_need"] = idsHex(st.Have), idsHex(st.Need)

	// Transcript 2: branch 2, id lists of at most 1, to show fingerprints
	// and a bound with an id prefix.
	ra, rb = &recon.Reconciler{Set: sa, Branch: 2, IDListMax: 1}, &recon.Reconciler{Set: sb, Branch: 2, IDListMax: 1}
	m1 = ra.Initiate()
	v["t2_msg1"] = hex.EncodeToString(m1)
	st, err = rb.Reconcile(m1)
	if err != nil || st.Reply == nil || len(st.Have)+len(st.Need) != 0 {
		t.Fatalf("transcript 2, message 1: %+v %v", st, err)
	}
	v["t2_msg2"] = hex.EncodeToString(st.Reply)
	st, err = ra.Reconcile(st.Reply)
	if err != nil || st.Reply == nil || len(st.Have)+len(st.Need) != 0 {
		t.Fatalf("transcript 2, message 2: %+v %v", st, err)
	}
	v["t2_msg3"] = hex.EncodeToString(st.Reply)
	st, err = rb.Reconcile(st.Reply)
	if err != nil || st.Reply != nil {
		t.Fatalf("transcript 2, message 3: %+v %v", st, err)
	}
	v["t2_b_have"], v["t2_b_need"] = idsHex(st.Have), idsHex(st.Need)
	return v
}

func TestVectors(t *testing.T) {
	got := computeVectors(t)
	if len(got) != len(wantVectors) {
		t.Fatalf("%d vectors computed, %d listed", len(got), len(wantVectors))
	}
	doc, err := os.ReadFile("../docs/REPLICATION.md")
	if err != nil {
		t.Fatalf("read REPLICATION.md: %v", err)
	}
	for _, w := range wantVectors {
		g, ok := got[w.name]
		switch {
		case !ok:
			t.Errorf("vector %s is not computed", w.name)
		case g != w.hex:
			t.Errorf("vector %s changed:\n got %s\nwant %s", w.name, g, w.hex)
		}
		for _, s := range strings.Split(w.hex, ",") {
			if s != "" && !bytes.Contains(doc, []byte(s)) {
				t.Errorf("docs/REPLICATION.md does not quote vector %s: %s", w.name, s)
			}
		}
	}
}

// TestVectorsShareFormatRecord checks that the record gossiped above is
// docs/FORMAT.md's record 0, byte for byte.
func TestVectorsShareFormatRecord(t *testing.T) {
	b, err := os.ReadFile("../ledger/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var lv struct {
		Envelope    string `json:"envelope"`
		GenesisHash string `json:"genesis_hash"`
	}
	if err := json.Unmarshal(b, &lv); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(vectorRecord(t).Encode()); got != lv.Envelope {
		t.Fatalf("record 0 envelope differs from ledger/testdata/vectors.json:\n got %s\nwant %s", got, lv.Envelope)
	}
	g := ledger.NewGenesis(vectorNetwork)
	g.PowBits = 8
	if h := g.Hash(); hex.EncodeToString(h[:]) != lv.GenesisHash {
		t.Fatalf("genesis hash differs from ledger/testdata/vectors.json")
	}
}
