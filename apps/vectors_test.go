package apps

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/pyvnode/pyvnode/ledger"
	"golang.org/x/crypto/chacha20poly1305"
)

// The vectors docs/APPLICATIONS.md shows ("Test vectors"). TestVectors
// recomputes each from the code, compares it with the value here and
// checks that the document quotes it verbatim.
var wantVectors = []struct{ name, hex string }{
	{"uid", `uid-4014e5ebc11223e4e7df26394ab59364`},
	{"reveal_key", `7ce9a7490c8be3bfa159ae928cb876ce46edd61a09fe9377cf6aefade90e7360`},
	{"reveal_plain", `{"version":1,"entries":{"uid-4014e5ebc11223e4e7df26394ab59364":"Alice Example, 1 Main St"}}`},
	{"reveal_file", `5059565549443031404142434445464748494a4b4c4d4e4f50515253545556572615b4954a18d6a2cd3eb71afd9cb1c475b17380a34076752177f806159943719833de19d62b316262ba243b7f28ecc467f131195385dab6022761de851ad7b29a26045a0f15b541e81e5f28847da59d79fb60cebf16c441b111f1dfa8fe02f50c7f4ca0e71e2971b657b9`},
	{"voter_key", `03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8`},
	{"voter_message", `7079766e6f64652d766f74652f310a766563746f72730a766f74652e636173740a6d61796f722d323032360a762d303030310a30303131323233333434353536363737383839396161626263636464656566660a616c6963650a370a`},
	{"voter_sig", `5a4f4953f9a1ad7648d4a609818e156acc156b75c662ecf08bb50d561f7a1e7cb287b782f1b7bd7cc40bf0ca9ad7c975a607390cf182fa7a239a0b4531444f0a`},
	{"cast_payload", `a6636569647820303031313232333334343535363637373838393961616262636364646565666663736571076373696758405a4f4953f9a1ad7648d4a609818e156acc156b75c662ecf08bb50d561f7a1e7cb287b782f1b7bd7cc40bf0ca9ad7c975a607390cf182fa7a239a0b4531444f0a65766f74657266762d303030316662616c6c6f746a6d61796f722d323032366663686f69636565616c696365`},
	{"digest_ids", `ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb,3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d`},
	{"digest", `e5a01fee14e0ed5c48714f22180f25ad8365b53f9779f79dc4a3d7e93963f94a`},
}

// vectorSeed is bytes 0x00..0x1f: the uid secret and the voter key's seed.
func vectorSeed() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

const (
	vectorNetwork = "vectors"
	vectorText    = "Alice Example, 1 Main St"
	vectorEID     = "00112233445566778899aabbccddeeff"
)

func computeAppVectors(t *testing.T) map[string]string {
	t.Helper()
	v := map[string]string{}
	secret := vectorSeed()
	uid := DeriveUID(secret, vectorText)
	v["uid"] = uid
	key := revealKey(secret)
	v["reveal_key"] = hex.EncodeToString(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	for i := range nonce {
		nonce[i] = byte(0x40 + i)
	}
	plain, _ := json.Marshal(revealContent{Version: 1, Entries: map[string]string{uid: vectorText}})
	v["reveal_plain"] = string(plain)
	v["reveal_file"] = hex.EncodeToString(sealReveal(aead, nonce, plain))

	priv := ed25519.NewKeyFromSeed(vectorSeed())
	v["voter_key"] = hex.EncodeToString(priv.Public().(ed25519.PublicKey))
	msg := VoterMessage(vectorNetwork, KindCast, "mayor-2026", "v-0001", vectorEID, "alice", 7)
	v["voter_message"] = hex.EncodeToString(msg)
	sig := ed25519.Sign(priv, msg)
	v["voter_sig"] = hex.EncodeToString(sig)
	payload, err := ledger.EncodePayload(map[string]any{"ballot": "mayor-2026", "voter": "v-0001", "eid": vectorEID,
		"choice": "alice", "seq": uint64(7), "sig": sig})
	if err != nil {
		t.Fatal(err)
	}
	v["cast_payload"] = hex.EncodeToString(payload)
	// The digest of two records, the later-created one with the smaller id.
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	ids := []ledger.ID{b, a}
	if bytes.Compare(a[:], b[:]) > 0 {
		ids = []ledger.ID{a, b}
	}
	v["digest_ids"] = hex.EncodeToString(ids[0][:]) + "," + hex.EncodeToString(ids[1][:])
	d := setDigest(ids)
	v["digest"] = hex.EncodeToString(d[:])
	return v
}

func TestAppVectors(t *testing.T) {
	got := computeAppVectors(t)
	for k, g := range got {
		t.Logf("%s = %s", k, g)
	}
	doc, err := os.ReadFile("../docs/APPLICATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(wantVectors) {
		t.Fatalf("%d vectors computed, %d listed", len(got), len(wantVectors))
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
				t.Errorf("docs/APPLICATIONS.md does not quote vector %s: %s", w.name, s)
			}
		}
	}
}

// TestVectorsWork checks that the vectors do what they claim: the reveal
// file opens to the mapping, the signature verifies, and the cast payload
// decodes into a record the tally accepts.
func TestVectorsWork(t *testing.T) {
	v := computeAppVectors(t)
	file, _ := hex.DecodeString(v["reveal_file"])
	path := t.TempDir() + "/reveal"
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := ReadReveal(path, vectorSeed())
	if err != nil || m[v["uid"]] != vectorText {
		t.Fatalf("reveal vector: %v %v", m, err)
	}
	payload, _ := hex.DecodeString(v["cast_payload"])
	r := NewVoteRec(ledger.ID{1}, KindCast, 1, payload)
	if r.Invalid() != "" || r.Choice != "alice" || r.Seq != 7 {
		t.Fatalf("cast vector decodes to %+v (%s)", r, r.Invalid())
	}
	pub, _ := hex.DecodeString(v["voter_key"])
	msg, _ := hex.DecodeString(v["voter_message"])
	if !ed25519.Verify(pub, msg, r.Sig()) {
		t.Fatal("voter signature vector does not verify")
	}
}
