package ledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/transparency-dev/merkle/compact"
)

// ExportFormat names the JSON-lines export (docs/FORMAT.md, "Export").
const ExportFormat = "pyvnode-chain-export/1"

// ExportHeader is the first line of an export.
type ExportHeader struct {
	Format      string   `json:"format"`
	Network     string   `json:"network"`
	Genesis     *Genesis `json:"genesis"`
	GenesisHash Hash     `json:"genesis_hash"`
	Node        NodeID   `json:"node"`
	From        uint64   `json:"from"`
	Size        uint64   `json:"size"`
	// For an export that starts at from > 0: the link of entry from-1 and
	// the RFC 6962 compact range of the first from leaves (the roots of the
	// perfect subtrees covering [0, from), left to right), so a reader can
	// continue the links and the Merkle root without the earlier records.
	PrevLink  *Hash  `json:"prev_link,omitempty"`
	PrevRange []Hash `json:"prev_range,omitempty"`
}

// ExportRecord is one record line: the entry, the record's exact bytes and
// signature in hex, and the decoded fields for readers without CBOR.
type ExportRecord struct {
	Height      uint64          `json:"height"`
	ID          ID              `json:"id"`
	Link        Hash            `json:"link"`
	Replication uint8           `json:"replication"`
	Source      string          `json:"source"`
	Received    int64           `json:"received"`
	Record      HexBytes        `json:"record"`
	Signature   HexBytes        `json:"signature"`
	Version     uint64          `json:"version"`
	Kind        string          `json:"kind"`
	Payload     json.RawMessage `json:"payload"`
	Origin      HexBytes        `json:"origin"`
	Author      string          `json:"author"`
	Created     int64           `json:"created"`
	Nonce       uint64          `json:"nonce"`
}

// ExportTrailer is the last line: the head the export ends at and, when the
// exporter had the node's key, a checkpoint signed by it.
type ExportTrailer struct {
	End        bool   `json:"end"`
	Size       uint64 `json:"size"`
	Root       Hash   `json:"root"`
	Link       Hash   `json:"link"`
	Checkpoint string `json:"checkpoint,omitempty"`
}

// HexBytes is a byte slice shown as lowercase hex in JSON.
type HexBytes []byte

func (h HexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

func (h *HexBytes) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	*h = v
	return err
}

// NewExportRecord fills an export line from a record and its entry.
func NewExportRecord(rec *SignedRecord, e Entry) (*ExportRecord, error) {
	pj, err := PayloadJSON(rec.Payload)
	if err != nil {
		return nil, err
	}
	return &ExportRecord{
		Height: e.Height, ID: e.ID, Link: e.Link, Replication: e.Replication,
		Source: e.Source, Received: e.Received,
		Record: rec.RecordBytes(), Signature: rec.Signature,
		Version: rec.Version, Kind: rec.Kind, Payload: pj, Origin: rec.Origin,
		Author: rec.Author, Created: rec.Created, Nonce: rec.Nonce,
	}, nil
}

// SignedRecord rebuilds the record from the line's bytes and checks that the
// decoded fields and the id printed beside them agree with those bytes.
func (x *ExportRecord) SignedRecord() (*SignedRecord, error) {
	env := make([]byte, 0, len(x.Record)+len(x.Signature)+3)
	env = append(env, 0x82)
	env = append(env, x.Record...)
	if len(x.Signature) != 64 {
		return nil, checkErr(ErrSignature, "signature is %d bytes, want 64", len(x.Signature))
	}
	env = append(env, 0x58, 64)
	env = append(env, x.Signature...)
	rec, err := DecodeSignedRecord(env)
	if err != nil {
		return nil, err
	}
	if rec.ID != x.ID {
		return nil, checkErr(ErrID, "line says %s, record bytes hash to %s", x.ID, rec.ID)
	}
	pj, err := PayloadJSON(rec.Payload)
	if err != nil {
		return nil, err
	}
	same := rec.Version == x.Version && rec.Kind == x.Kind && rec.Author == x.Author &&
		rec.Created == x.Created && rec.Nonce == x.Nonce && bytes.Equal(rec.Origin, x.Origin) &&
		jsonEqual(pj, x.Payload)
	if !same {
		return nil, checkErr(ErrDecode, "decoded fields of record %s disagree with its bytes", x.ID)
	}
	return rec, nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// ExportOptions select what Export writes.
type ExportOptions struct {
	From uint64 // first height
	// Identity, when set, signs a checkpoint of the exported head into the
	// trailer.
	Identity *Identity
	Node     NodeID
}

// Export writes the chain from opts.From to the current head as JSON lines:
// header, one line per record, trailer.
func (s *Store) Export(ctx context.Context, w io.Writer, opts ExportOptions) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	head := s.Head()
	node := opts.Node
	if opts.Identity != nil {
		node = opts.Identity.ID()
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	g := s.opts.Genesis
	hdr := ExportHeader{
		Format: ExportFormat, Network: g.Network, Genesis: g, GenesisHash: g.Hash(),
		Node: node, From: opts.From, Size: head.Size,
	}
	if opts.From > head.Size {
		return fmt.Errorf("export: --from %d is beyond the chain's %d records", opts.From, head.Size)
	}
	if opts.From > 0 {
		e, _, err := s.getEntry(opts.From - 1)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		hdr.PrevLink = &e.Link
		hashes, err := s.tree.nodes(compact.RangeNodes(0, opts.From, nil))
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		for _, h := range hashes {
			hdr.PrevRange = append(hdr.PrevRange, Hash(h))
		}
	}
	if err := enc.Encode(hdr); err != nil {
		return err
	}
	err := s.iterate(ctx, opts.From, head.Size, func(rec *SignedRecord, e Entry) error {
		x, err := NewExportRecord(rec, e)
		if err != nil {
			return fmt.Errorf("height %d: %w", e.Height, err)
		}
		return enc.Encode(x)
	})
	if err != nil && !errors.Is(err, errStopIter) {
		return fmt.Errorf("export: %w", err)
	}
	tr := ExportTrailer{End: true, Size: head.Size, Root: head.Root, Link: head.Link}
	if opts.Identity != nil {
		cp := s.Checkpoint(node, timeNow())
		cp.Size, cp.Root, cp.Link = head.Size, head.Root, head.Link
		signed, err := SignCheckpoint(cp, opts.Identity)
		if err != nil {
			return err
		}
		tr.Checkpoint = string(signed)
	}
	if err := enc.Encode(tr); err != nil {
		return err
	}
	return bw.Flush()
}

// ExportReader reads an export line by line.
type ExportReader struct {
	sc      *bufio.Scanner
	Header  ExportHeader
	Trailer *ExportTrailer // set once the trailer has been read
	line    int
}

// NewExportReader reads and checks the header.
func NewExportReader(r io.Reader) (*ExportReader, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 4*MaxRecordSize)
	er := &ExportReader{sc: sc}
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("export line 1: %w", err)
		}
		return nil, errors.New("export is empty")
	}
	er.line = 1
	if err := strictJSON(sc.Bytes(), &er.Header); err != nil {
		return nil, fmt.Errorf("export line 1 (header): %w", err)
	}
	if er.Header.Format != ExportFormat {
		return nil, fmt.Errorf("export format %q, want %q", er.Header.Format, ExportFormat)
	}
	if er.Header.Genesis == nil {
		return nil, errors.New("export header has no genesis")
	}
	if err := er.Header.Genesis.Validate(); err != nil {
		return nil, fmt.Errorf("export header: %w", err)
	}
	if er.Header.Genesis.Hash() != er.Header.GenesisHash || er.Header.Genesis.Network != er.Header.Network {
		return nil, errors.New("export header: genesis, genesis hash and network disagree")
	}
	return er, nil
}

// Next returns the next record line, or io.EOF after the trailer. An export
// that ends without a trailer is reported as truncated.
func (er *ExportReader) Next() (*ExportRecord, error) {
	if er.Trailer != nil {
		return nil, io.EOF
	}
	if !er.sc.Scan() {
		if err := er.sc.Err(); err != nil {
			return nil, fmt.Errorf("export line %d: %w", er.line+1, err)
		}
		return nil, fmt.Errorf("export is truncated after line %d: no trailer", er.line)
	}
	er.line++
	b := er.sc.Bytes()
	var probe struct {
		End bool `json:"end"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("export line %d: %w", er.line, err)
	}
	if probe.End {
		var tr ExportTrailer
		if err := strictJSON(b, &tr); err != nil {
			return nil, fmt.Errorf("export line %d (trailer): %w", er.line, err)
		}
		er.Trailer = &tr
		return nil, io.EOF
	}
	var x ExportRecord
	if err := strictJSON(b, &x); err != nil {
		return nil, fmt.Errorf("export line %d: %w", er.line, err)
	}
	return &x, nil
}

// Line is the number of the line Next read last.
func (er *ExportReader) Line() int { return er.line }

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
