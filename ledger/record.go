package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// RecordVersion is the only record version this code writes and accepts.
const RecordVersion = 1

// MaxRecordSize bounds the encoded signed record (record, signature and
// envelope). It keeps a record inside one gossip message and one protocol
// frame sequence of reasonable size.
const MaxRecordSize = 64 << 10

// Limits on the human-readable fields.
const (
	MaxKindLen    = 64
	MaxAuthorLen  = 64
	MaxPayloadKey = 256
	// MaxPayloadDepth counts the payload map itself as level 1.
	MaxPayloadDepth = 16
)

// Record is the signed part of a ledger record. Its core deterministic CBOR
// encoding (a map with integer keys 1..7, see docs/FORMAT.md) is hashed to
// give the record id. Every field is always encoded, zero or not.
type Record struct {
	Version uint64          `cbor:"1,keyasint"`
	Kind    string          `cbor:"2,keyasint"`
	Payload cbor.RawMessage `cbor:"3,keyasint"` // canonical CBOR map, see CheckPayload
	Origin  []byte          `cbor:"4,keyasint"` // Ed25519 public key of the originating node
	Author  string          `cbor:"5,keyasint"` // user name at the origin, may be empty
	Created int64           `cbor:"6,keyasint"` // Unix nanoseconds, >= 0
	Nonce   uint64          `cbor:"7,keyasint"` // proof-of-work nonce
}

// ID identifies a record: SHA-256 of the record's core deterministic encoding.
type ID [32]byte

// String returns the id in lowercase hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses 64 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("record id must be %d hex digits, got %d characters", 2*len(id), len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("record id: %w", err)
	}
	return id, nil
}

// MarshalText makes ids appear as hex in JSON.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses hex.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

var (
	encMode cbor.EncMode // core deterministic encoding
	decMode cbor.DecMode // strict decoding; canonical form is checked by re-encoding
)

func init() {
	var err error
	eo := cbor.CoreDetEncOptions()
	eo.NilContainers = cbor.NilContainerAsEmpty
	if encMode, err = eo.EncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		IntDec:            cbor.IntDecConvertNone,
		MaxNestedLevels:   MaxPayloadDepth + 4,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		DefaultMapType:    reflect.TypeOf(map[string]any(nil)),
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Encode returns the record's core deterministic CBOR encoding: the bytes
// that are hashed into its id. The payload is written verbatim, so it must
// already be canonical (Check verifies that).
func (r *Record) Encode() ([]byte, error) {
	b, err := encMode.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return b, nil
}

// ComputeID encodes the record and hashes it.
func (r *Record) ComputeID() (ID, error) {
	b, err := r.Encode()
	if err != nil {
		return ID{}, err
	}
	return sha256.Sum256(b), nil
}

// Check verifies everything about the record that needs no key, network or
// clock: version, kind and author syntax, origin length, creation time and
// the payload rules.
func (r *Record) Check() error {
	if r.Version != RecordVersion {
		return checkErr(ErrVersion, "version %d, want %d", r.Version, RecordVersion)
	}
	if err := CheckKind(r.Kind); err != nil {
		return err
	}
	if err := CheckAuthor(r.Author); err != nil {
		return err
	}
	if len(r.Origin) != ed25519.PublicKeySize {
		return checkErr(ErrOrigin, "origin is %d bytes, want %d", len(r.Origin), ed25519.PublicKeySize)
	}
	if r.Created < 0 {
		return checkErr(ErrTime, "creation time %d is before 1970", r.Created)
	}
	return CheckPayload(r.Payload)
}

// CheckKind checks the syntax of a record kind: 1 to 64 bytes of dot-separated
// segments, each a lowercase letter followed by lowercase letters, digits,
// '_' or '-'.
func CheckKind(kind string) error {
	if len(kind) == 0 || len(kind) > MaxKindLen {
		return checkErr(ErrKind, "kind must be 1 to %d bytes, got %d", MaxKindLen, len(kind))
	}
	segStart := true
	for i := 0; i < len(kind); i++ {
		c := kind[i]
		switch {
		case segStart && c >= 'a' && c <= 'z':
			segStart = false
		case segStart:
			return checkErr(ErrKind, "%q: each dot-separated part must start with a lowercase letter", kind)
		case c == '.':
			segStart = true
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return checkErr(ErrKind, "%q: character %q not allowed (use a-z 0-9 _ - and dots)", kind, c)
		}
	}
	if segStart {
		return checkErr(ErrKind, "%q ends with a dot", kind)
	}
	return nil
}

// CheckAuthor checks an author name: up to 64 bytes of A-Z a-z 0-9 and
// ". _ - @ +". Empty means the node itself.
func CheckAuthor(a string) error {
	if len(a) > MaxAuthorLen {
		return checkErr(ErrAuthor, "author longer than %d bytes", MaxAuthorLen)
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-' || c == '@' || c == '+'
		if !ok {
			return checkErr(ErrAuthor, "%q: character %q not allowed", a, c)
		}
	}
	return nil
}

// DecodeRecord decodes the core encoding of a record, rejecting anything that
// would not re-encode to exactly the same bytes, and runs Check.
func DecodeRecord(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, checkErr(ErrTooLarge, "%d bytes, limit %d", len(b), MaxRecordSize)
	}
	// The map header must announce exactly the seven fields: a missing field
	// would otherwise decode as its zero value.
	if len(b) == 0 || b[0] != 0xa7 {
		return nil, checkErr(ErrDecode, "record must be a CBOR map of 7 fields")
	}
	var r Record
	if err := decMode.Unmarshal(b, &r); err != nil {
		return nil, checkErr(ErrDecode, "%v", err)
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	again, err := r.Encode()
	if err != nil {
		return nil, checkErr(ErrDecode, "%v", err)
	}
	if !bytes.Equal(again, b) {
		return nil, checkErr(ErrCanonical, "record fields")
	}
	return &r, nil
}
