package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// SigContext starts every record signature message, so a record signature
// can never be mistaken for a signature over anything else the node signs.
const SigContext = "pyvnode record signature v1\n"

// SignedRecord is a record with its id and its origin's signature. On disk and
// on the wire it travels as the envelope: a CBOR array of two elements, the
// record map and the 64-byte signature as a byte string.
type SignedRecord struct {
	Record
	ID        ID
	Signature []byte
	raw       []byte // core encoding of Record: what ID hashes
}

type envelope struct {
	_      struct{} `cbor:",toarray"`
	Record cbor.RawMessage
	Sig    []byte
}

// SigMessage is the message an origin signs for a record of the network:
// SigContext, the network name, a newline and the 32-byte id.
func SigMessage(network string, id ID) []byte {
	m := make([]byte, 0, len(SigContext)+len(network)+1+len(id))
	m = append(m, SigContext...)
	m = append(m, network...)
	m = append(m, '\n')
	return append(m, id[:]...)
}

// Sign encodes rec, computes its id and signs it with the node's key for the
// given network. It runs Record.Check first, so nothing invalid is signed.
// The key's public half must be rec.Origin.
func Sign(rec *Record, key ed25519.PrivateKey, network string) (*SignedRecord, error) {
	if err := rec.Check(); err != nil {
		return nil, err
	}
	if !bytes.Equal(key.Public().(ed25519.PublicKey), rec.Origin) {
		return nil, checkErr(ErrOrigin, "signing key does not match the record's origin")
	}
	raw, err := rec.Encode()
	if err != nil {
		return nil, err
	}
	id := ID(sha256.Sum256(raw))
	return &SignedRecord{
		Record:    *rec,
		ID:        id,
		Signature: ed25519.Sign(key, SigMessage(network, id)),
		raw:       raw,
	}, nil
}

// RecordBytes returns the record's core encoding (the bytes its id hashes).
func (s *SignedRecord) RecordBytes() []byte { return s.raw }

// Encode returns the envelope bytes.
func (s *SignedRecord) Encode() []byte {
	// A CBOR array of 2, the record map verbatim, then the signature as a
	// 64-byte byte string (0x58 0x40 header). Built by hand because it is
	// the hot path of every append; TestEnvelopeMatchesLibrary checks it
	// against the CBOR library.
	b := make([]byte, 0, 1+len(s.raw)+2+len(s.Signature))
	b = append(b, 0x82)
	b = append(b, s.raw...)
	b = append(b, 0x58, byte(len(s.Signature)))
	return append(b, s.Signature...)
}

// DecodeSignedRecord decodes an envelope, checks that it is canonical and
// well-formed (Record.Check) and computes the id. It does not check the
// signature or the proof of work: that is Validator's job, which knows the
// network.
func DecodeSignedRecord(b []byte) (*SignedRecord, error) {
	if len(b) > MaxRecordSize {
		return nil, checkErr(ErrTooLarge, "%d bytes, limit %d", len(b), MaxRecordSize)
	}
	if len(b) == 0 || b[0] != 0x82 {
		return nil, checkErr(ErrDecode, "signed record must be a CBOR array of 2")
	}
	var env envelope
	if err := decMode.Unmarshal(b, &env); err != nil {
		return nil, checkErr(ErrDecode, "%v", err)
	}
	if len(env.Sig) != ed25519.SignatureSize {
		return nil, checkErr(ErrSignature, "signature is %d bytes, want %d", len(env.Sig), ed25519.SignatureSize)
	}
	rec, err := DecodeRecord(env.Record)
	if err != nil {
		return nil, err
	}
	s := &SignedRecord{
		Record:    *rec,
		ID:        sha256.Sum256(env.Record),
		Signature: env.Sig,
		raw:       bytes.Clone(env.Record),
	}
	if !bytes.Equal(s.Encode(), b) {
		return nil, checkErr(ErrCanonical, "envelope")
	}
	return s, nil
}

// VerifySignature checks the origin's signature for the network.
func (s *SignedRecord) VerifySignature(network string) error {
	if !ed25519.Verify(s.Origin, SigMessage(network, s.ID), s.Signature) {
		return checkErr(ErrSignature, "origin %x does not sign record %s for network %q", s.Origin[:8], s.ID, network)
	}
	return nil
}

// String is a short description for logs.
func (s *SignedRecord) String() string {
	return fmt.Sprintf("%s %s", s.Kind, s.ID)
}

// NewSignedRecord builds a version-1 record of the node's, mines its proof of
// work for the network and signs it: everything a node does to a new record
// before appending it.
func NewSignedRecord(ctx context.Context, id *Identity, g *Genesis, kind string, payload cbor.RawMessage, author string, created time.Time) (*SignedRecord, error) {
	rec := &Record{
		Version: RecordVersion, Kind: kind, Payload: payload, Origin: id.Public(),
		Author: author, Created: created.UnixNano(),
	}
	if err := rec.Check(); err != nil {
		return nil, err
	}
	if !g.AllowedToOriginate(kind, id.ID()) {
		return nil, checkErr(ErrOriginator, "this node (%s) may not originate %q on network %q", id.ID().Short(), kind, g.Network)
	}
	if err := Mine(ctx, rec, g.PowBits); err != nil {
		return nil, err
	}
	return Sign(rec, id.Key, g.Network)
}
