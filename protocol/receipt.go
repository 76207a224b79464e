package protocol

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
)

// ReceiptCheck is what VerifyReceipt established. Every check it reports
// was made on the client side from signed data and proofs; nothing is taken
// on the server's word.
type ReceiptCheck struct {
	Record ledger.ID     `json:"record"`
	Kind   string        `json:"kind"`
	Issuer ledger.NodeID `json:"issuer"`
	// Issued: the issuer signed a checkpoint of its chain (Size records)
	// that contains the record at Height.
	Height uint64 `json:"height"`
	Size   uint64 `json:"size"`
	// Server is the node asked; ServerHeight the record's height there and
	// ServerSize the size of the checkpoint it signed for this check.
	Server       ledger.NodeID `json:"server"`
	ServerHeight uint64        `json:"server_height"`
	ServerSize   uint64        `json:"server_size"`
	// Consistent: the server is the issuer and proved that its chain now
	// extends the receipt's checkpoint (nothing was removed or rewritten).
	// Another node cannot prove that: each node orders its own chain.
	Consistent bool `json:"consistent"`
	// Payload is the record's payload as JSON.
	Payload string `json:"payload"`
}

// VerifyReceipt checks a receipt against any node holding the record: the
// receipt's own signature and proof, the record's bytes and origin
// signature as the server returns them, an inclusion proof against a
// checkpoint the server signs now, and, when the server is the issuer, a
// consistency proof from the receipt's checkpoint to that one.
func VerifyReceipt(ctx context.Context, c *Client, r *apps.Receipt) (*ReceiptCheck, error) {
	if _, err := r.VerifyOffline(); err != nil {
		return nil, err
	}
	out := &ReceiptCheck{Record: r.Record, Kind: r.Kind, Issuer: r.Node, Height: r.Height, Size: r.Size, Server: c.Node.Node}
	if c.Node.Network != r.Network {
		return nil, fmt.Errorf("the server is on network %q, the receipt on %q", c.Node.Network, r.Network)
	}
	// Send both requests at once: one round trip.
	getP, err := c.Send("get", map[string]any{"id": r.Record})
	if err != nil {
		return nil, err
	}
	incP, err := c.Send("proof.inclusion", map[string]any{"id": r.Record})
	if err != nil {
		return nil, err
	}
	var rec RecordResult
	if err := getP.Wait(ctx, &rec); err != nil {
		return nil, fmt.Errorf("the server does not give the record: %w", err)
	}
	var inc InclusionResult
	if err := incP.Wait(ctx, &inc); err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	// The record is the one the receipt names, signed by its origin.
	if ledger.ID(sha256.Sum256(rec.Record)) != r.Record {
		return nil, fmt.Errorf("the server's record bytes do not hash to %s", r.Record)
	}
	body, err := ledger.DecodeRecord(rec.Record)
	if err != nil {
		return nil, fmt.Errorf("the server's record: %w", err)
	}
	if len(body.Origin) != ed25519.PublicKeySize || !ed25519.Verify(body.Origin, ledger.SigMessage(r.Network, r.Record), rec.Signature) {
		return nil, fmt.Errorf("the record's origin signature does not verify")
	}
	if body.Kind != r.Kind {
		return nil, fmt.Errorf("the record is a %s, the receipt says %s", body.Kind, r.Kind)
	}
	pj, err := ledger.PayloadJSON(body.Payload)
	if err != nil {
		return nil, err
	}
	out.Payload = string(pj)
	// Included in the server's chain, under a checkpoint it signs now.
	cp, err := ledger.OpenCheckpoint([]byte(inc.Checkpoint), c.Node.Node)
	if err != nil {
		return nil, fmt.Errorf("the server's checkpoint: %w", err)
	}
	if cp.Size != inc.Size || cp.Root != inc.Root || cp.Network != r.Network {
		return nil, fmt.Errorf("the server's proof does not match its checkpoint")
	}
	if err := ledger.VerifyInclusion(r.Record, inc.Index, inc.Size, inc.Proof, cp.Root); err != nil {
		return nil, fmt.Errorf("the server's inclusion proof: %w", err)
	}
	out.ServerHeight, out.ServerSize = inc.Index, inc.Size
	if c.Node.Node != r.Node {
		return out, nil
	}
	// The issuer itself: its chain must extend the receipt's checkpoint.
	if inc.Index != r.Height {
		return nil, fmt.Errorf("the issuer now holds the record at height %d, its receipt says %d", inc.Index, r.Height)
	}
	var cons ConsistencyResult
	if err := c.Call(ctx, "proof.consistency", map[string]any{"old": r.Size, "new": cp.Size}, &cons); err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	if err := ledger.VerifyConsistency(r.Size, cp.Size, cons.Proof, r.Root, cp.Root); err != nil {
		return nil, fmt.Errorf("the issuer's chain does not extend the receipt's checkpoint: %w", err)
	}
	out.Consistent = true
	return out, nil
}
