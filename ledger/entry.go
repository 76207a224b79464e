package ledger

import (
	"crypto/sha256"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Entry is a record's place in this node's chain. The id and link are
// covered by the Merkle tree and the hash chain; the replication count,
// source and receive time are this node's own bookkeeping.
type Entry struct {
	Height      uint64 `json:"height"`
	ID          ID     `json:"id"`
	Link        Hash   `json:"link"`
	Replication uint8  `json:"replication"`
	Source      string `json:"source"`
	Received    int64  `json:"received"`
}

// Hash is a 32-byte SHA-256 value shown in hex.
type Hash [32]byte

func (h Hash) String() string                { return ID(h).String() }
func (h Hash) MarshalText() ([]byte, error)  { return ID(h).MarshalText() }
func (h *Hash) UnmarshalText(b []byte) error { return (*ID)(h).UnmarshalText(b) }

// Head describes the chain's tip: its size, the link of the last entry and
// the Merkle root over all ids.
type Head struct {
	Size uint64 `json:"size"`
	Link Hash   `json:"link"`
	Root Hash   `json:"root"`
}

// NextLink is the hash chain step: SHA-256(prev || id).
func NextLink(prev Hash, id ID) Hash {
	var b [64]byte
	copy(b[:32], prev[:])
	copy(b[32:], id[:])
	return sha256.Sum256(b[:])
}

// storedEntry is the frame payload in a segment file: a CBOR array of 8
// [height, id, link, replication, source, received, nodes, envelope].
// nodes holds the Merkle nodes (levels 1 and up, lowest first) that this
// entry's leaf completes; the envelope is embedded as CBOR. Only tests
// decode into this struct with the library; the hot paths are hand-written
// and checked against it.
type storedEntry struct {
	_           struct{} `cbor:",toarray"`
	Height      uint64
	ID          []byte
	Link        []byte
	Replication uint8
	Source      string
	Received    int64
	Nodes       [][]byte
	Envelope    cbor.RawMessage
}

// encodeEntry writes a frame payload.
func encodeEntry(e *Entry, nodes []Hash, rec *SignedRecord) []byte {
	b := make([]byte, 0, 100+len(e.Source)+34*len(nodes)+len(rec.raw)+70)
	b = append(b, 0x88)
	b = appendCBORUint(b, e.Height)
	b = append(b, 0x58, 0x20)
	b = append(b, e.ID[:]...)
	b = append(b, 0x58, 0x20)
	b = append(b, e.Link[:]...)
	b = appendCBORUint(b, uint64(e.Replication))
	b = appendCBORHead(b, 3, uint64(len(e.Source)))
	b = append(b, e.Source...)
	if e.Received >= 0 {
		b = appendCBORUint(b, uint64(e.Received))
	} else {
		b = appendCBORHead(b, 1, uint64(-(e.Received + 1)))
	}
	b = appendCBORHead(b, 4, uint64(len(nodes)))
	for _, n := range nodes {
		b = append(b, 0x58, 0x20)
		b = append(b, n[:]...)
	}
	b = append(b, 0x82)
	b = append(b, rec.raw...)
	b = append(b, 0x58, byte(len(rec.Signature)))
	return append(b, rec.Signature...)
}

// decodeEntry parses a frame payload: the entry, the Merkle nodes it
// carries and the record envelope (not yet decoded).
func decodeEntry(v []byte) (Entry, []Hash, []byte, error) {
	var se storedEntry
	if err := decMode.Unmarshal(v, &se); err != nil {
		return Entry{}, nil, nil, fmt.Errorf("stored entry is corrupt: %w", err)
	}
	if len(se.ID) != 32 || len(se.Link) != 32 {
		return Entry{}, nil, nil, fmt.Errorf("stored entry %d is corrupt: bad id or link length", se.Height)
	}
	e := Entry{Height: se.Height, Replication: se.Replication, Source: se.Source, Received: se.Received}
	copy(e.ID[:], se.ID)
	copy(e.Link[:], se.Link)
	nodes := make([]Hash, len(se.Nodes))
	for i, n := range se.Nodes {
		if len(n) != 32 {
			return Entry{}, nil, nil, fmt.Errorf("stored entry %d is corrupt: Merkle node of %d bytes", se.Height, len(n))
		}
		copy(nodes[i][:], n)
	}
	return e, nodes, se.Envelope, nil
}
