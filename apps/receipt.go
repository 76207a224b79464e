package apps

import (
	"encoding/json"
	"fmt"

	"github.com/pyvnode/pyvnode/ledger"
)

// ReceiptFormat names the receipt format (docs/APPLICATIONS.md, "Receipts").
const ReceiptFormat = "pyvnode-receipt/1"

// Receipt is what a voter (or anyone who submitted a record) keeps: the
// record id, the node that took it, its height there, and a checkpoint of
// that node's chain signed after the record was appended, with the proof
// that the record is in the checkpoint's tree.
type Receipt struct {
	Format     string            `json:"format" cbor:"format"`
	Network    string            `json:"network" cbor:"network"`
	Record     ledger.ID         `json:"record" cbor:"record"`
	Kind       string            `json:"kind" cbor:"kind"`
	Node       ledger.NodeID     `json:"node" cbor:"node"`
	Height     uint64            `json:"height" cbor:"height"`
	Size       uint64            `json:"size" cbor:"size"`
	Root       ledger.Hash       `json:"root" cbor:"root"`
	Checkpoint string            `json:"checkpoint" cbor:"checkpoint"`
	Proof      []ledger.HexBytes `json:"proof" cbor:"proof"`
}

// ParseReceipt reads a receipt written as JSON.
func ParseReceipt(b []byte) (*Receipt, error) {
	var r Receipt
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	if r.Format != ReceiptFormat {
		return nil, fmt.Errorf("receipt: format %q, want %q", r.Format, ReceiptFormat)
	}
	return &r, nil
}

// VerifyOffline checks what a receipt proves by itself: the checkpoint is
// signed by the receipt's node for the receipt's network, its size and
// root are the receipt's, and the record is at the receipt's height in
// that tree. It returns the opened checkpoint.
func (r *Receipt) VerifyOffline() (*ledger.Checkpoint, error) {
	if r.Format != ReceiptFormat {
		return nil, fmt.Errorf("receipt: format %q, want %q", r.Format, ReceiptFormat)
	}
	cp, err := ledger.OpenCheckpoint([]byte(r.Checkpoint), r.Node)
	if err != nil {
		return nil, fmt.Errorf("receipt checkpoint: %w", err)
	}
	if cp.Network != r.Network {
		return nil, fmt.Errorf("receipt checkpoint is for network %q, the receipt says %q", cp.Network, r.Network)
	}
	if cp.Size != r.Size || cp.Root != r.Root {
		return nil, fmt.Errorf("receipt says size %d root %s; its checkpoint says size %d root %s", r.Size, r.Root, cp.Size, cp.Root)
	}
	proof := make([][]byte, len(r.Proof))
	for i, p := range r.Proof {
		proof[i] = p
	}
	if err := ledger.VerifyInclusion(r.Record, r.Height, r.Size, proof, r.Root); err != nil {
		return nil, fmt.Errorf("receipt inclusion proof: %w", err)
	}
	return cp, nil
}
