package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultPowBits is the proof of work of a new network: the original
// system's four leading hex zeros.
const DefaultPowBits = 16

// DefaultReplicationLimit: a record learned by reconciliation is re-published
// only while its replication count is below this.
const DefaultReplicationLimit = 1

// Genesis names a network and fixes its rules. Every node of a network holds
// the same genesis; its Hash identifies the network.
type Genesis struct {
	// Network is the network's name: 1 to 64 of a-z 0-9 . _ - starting with
	// a letter or digit.
	Network string `json:"network"`
	// PowBits is the number of leading zero bits every record id needs.
	PowBits int `json:"pow_bits"`
	// ReplicationLimit bounds re-publication of reconciled records.
	ReplicationLimit int `json:"replication_limit"`
	// Originators restricts who may originate a kind: a kind ("vote.register")
	// or a prefix pattern ("vote.*") maps to the node ids allowed. The most
	// specific entry wins; a kind no entry matches is open to every node.
	Originators map[string][]NodeID `json:"originators,omitempty"`
}

// NewGenesis returns a genesis for a one-node network with the defaults.
func NewGenesis(network string) *Genesis {
	return &Genesis{Network: network, PowBits: DefaultPowBits, ReplicationLimit: DefaultReplicationLimit}
}

// Validate checks every field.
func (g *Genesis) Validate() error {
	if err := CheckNetworkName(g.Network); err != nil {
		return err
	}
	if g.PowBits < 0 || g.PowBits > MaxPowBits {
		return fmt.Errorf("genesis: pow_bits %d out of range 0..%d", g.PowBits, MaxPowBits)
	}
	if g.ReplicationLimit < 0 || g.ReplicationLimit > 255 {
		return fmt.Errorf("genesis: replication_limit %d out of range 0..255", g.ReplicationLimit)
	}
	for pat, ids := range g.Originators {
		kind := strings.TrimSuffix(pat, ".*")
		if err := CheckKind(kind); err != nil {
			return fmt.Errorf("genesis: originators key %q: %w", pat, err)
		}
		if len(ids) == 0 {
			return fmt.Errorf("genesis: originators %q lists no node", pat)
		}
	}
	return nil
}

// CheckNetworkName checks a network name.
func CheckNetworkName(n string) error {
	if len(n) == 0 || len(n) > 64 {
		return fmt.Errorf("network name must be 1 to 64 characters, got %d", len(n))
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return fmt.Errorf("network name %q: use a-z 0-9 . _ - and start with a letter or digit", n)
		}
	}
	return nil
}

// AllowedToOriginate reports whether node may originate records of kind.
func (g *Genesis) AllowedToOriginate(kind string, node NodeID) bool {
	ids, ok := g.originatorsFor(kind)
	return !ok || slices.Contains(ids, node)
}

// ListsOriginator reports whether an originators entry matching kind names
// node explicitly (an open kind lists nobody).
func (g *Genesis) ListsOriginator(kind string, node NodeID) bool {
	ids, ok := g.originatorsFor(kind)
	return ok && slices.Contains(ids, node)
}

// originatorsFor finds the most specific entry: the exact kind, then the
// longest matching "prefix.*".
func (g *Genesis) originatorsFor(kind string) ([]NodeID, bool) {
	if ids, ok := g.Originators[kind]; ok {
		return ids, true
	}
	for k := kind; ; {
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			return nil, false
		}
		k = k[:i]
		if ids, ok := g.Originators[k+".*"]; ok {
			return ids, true
		}
	}
}

// genesisCBOR is the hashed form: integer keys, node-id lists sorted.
type genesisCBOR struct {
	Network          string              `cbor:"1,keyasint"`
	PowBits          int                 `cbor:"2,keyasint"`
	ReplicationLimit int                 `cbor:"3,keyasint"`
	Originators      map[string][][]byte `cbor:"4,keyasint"`
}

// Hash identifies the network: SHA-256 of the core deterministic CBOR
// encoding of the genesis (see docs/FORMAT.md). Two nodes agree on the
// network exactly when their genesis hashes are equal.
func (g *Genesis) Hash() [32]byte {
	c := genesisCBOR{
		Network: g.Network, PowBits: g.PowBits, ReplicationLimit: g.ReplicationLimit,
		Originators: map[string][][]byte{},
	}
	for k, ids := range g.Originators {
		list := make([][]byte, len(ids))
		for i := range ids {
			list[i] = ids[i][:]
		}
		slices.SortFunc(list, bytes.Compare)
		list = slices.CompactFunc(list, bytes.Equal)
		c.Originators[k] = list
	}
	b, err := encMode.Marshal(c)
	if err != nil {
		panic("encode genesis: " + err.Error()) // plain strings, ints and bytes cannot fail
	}
	return sha256.Sum256(b)
}

// LoadGenesis reads and validates a genesis JSON file. Unknown fields are
// refused, so a typo cannot silently weaken a rule.
func LoadGenesis(path string) (*Genesis, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load genesis: %w", err)
	}
	g, err := ParseGenesis(b)
	if err != nil {
		return nil, fmt.Errorf("load genesis %s: %w", path, err)
	}
	return g, nil
}

// ParseGenesis parses and validates genesis JSON.
func ParseGenesis(b []byte) (*Genesis, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	g := &Genesis{ReplicationLimit: DefaultReplicationLimit}
	if err := dec.Decode(g); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("extra data after the genesis object")
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return g, nil
}

// Save writes the genesis as indented JSON, refusing to overwrite.
func (g *Genesis) Save(path string) error {
	if err := g.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return fmt.Errorf("encode genesis: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save genesis: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("save genesis: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("save genesis: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save genesis: %w", err)
	}
	return f.Close()
}
