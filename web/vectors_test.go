package web

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/pyvnode/pyvnode/ledger"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// formatVectors are the FORMAT.md test vectors this package's examples
// are built from: a three-record chain of network "vectors".
type formatVectors struct {
	NodeID         string   `json:"node_id"`
	IDs            []string `json:"ids"`
	Links          []string `json:"links"`
	Leaves         []string `json:"leaves"`
	Root3          string   `json:"root_3"`
	Inclusion1of3  []string `json:"inclusion_1_of_3"`
	CheckpointNote string   `json:"checkpoint_note"`
}

// TestDocumentedExamples: the /api/proof/inclusion and /api/checkpoint
// answers for the FORMAT.md vector chain, as this package encodes them,
// verify, and docs/HTTP.md quotes them byte for byte.
func TestDocumentedExamples(t *testing.T) {
	b, err := os.ReadFile("../ledger/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v formatVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	incl, err := json.Marshal(inclusionResult{ID: v.IDs[1], Index: 1, Size: 3, Root: v.Root3, LeafHash: v.Leaves[1], Proof: v.Inclusion1of3})
	if err != nil {
		t.Fatal(err)
	}
	// The example must verify as a client would check it.
	id, _ := hex.DecodeString(v.IDs[1])
	root, _ := hex.DecodeString(v.Root3)
	var path [][]byte
	for _, h := range v.Inclusion1of3 {
		p, _ := hex.DecodeString(h)
		path = append(path, p)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(id)
	if hex.EncodeToString(leaf) != v.Leaves[1] {
		t.Fatalf("leaf hash of the vector id is %x, vectors say %s", leaf, v.Leaves[1])
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 1, 3, leaf, path, root); err != nil {
		t.Fatalf("the documented inclusion proof does not verify: %v", err)
	}

	nid, err := hex.DecodeString(v.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	var node ledger.NodeID
	copy(node[:], nid)
	vk, err := ledger.NoteVerifierKey("vectors", node)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.OpenCheckpoint([]byte(v.CheckpointNote), node); err != nil {
		t.Fatalf("vector checkpoint: %v", err)
	}
	cp, err := json.Marshal(checkpointResult{Size: 3, Root: v.Root3, Link: v.Links[2], Checkpoint: v.CheckpointNote, PublicKey: v.NodeID, VerifierKey: vk})
	if err != nil {
		t.Fatal(err)
	}

	doc, err := os.ReadFile("../docs/HTTP.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"inclusion": incl, "checkpoint": cp} {
		if !strings.Contains(string(doc), "    "+string(want)+"\n") {
			t.Errorf("docs/HTTP.md does not quote the %s example; it should read (indented 4 spaces):\n%s", name, want)
		}
	}
}
