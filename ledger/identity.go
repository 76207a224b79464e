package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// NodeID is a node's Ed25519 public key. It is the origin of the records the
// node writes and names the node everywhere.
type NodeID [ed25519.PublicKeySize]byte

// String returns the node id in lowercase hex.
func (n NodeID) String() string { return hex.EncodeToString(n[:]) }

// Short returns the first 16 hex digits, for logs and tables.
func (n NodeID) Short() string { return n.String()[:16] }

// Fingerprint is what people compare: "SHA256:" and the unpadded base64 of
// the SHA-256 of the public key, the way OpenSSH shows host keys.
func (n NodeID) Fingerprint() string {
	sum := sha256.Sum256(n[:])
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// MarshalText makes node ids appear as hex in JSON.
func (n NodeID) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// UnmarshalText parses 64 hex digits.
func (n *NodeID) UnmarshalText(b []byte) error {
	v, err := ParseNodeID(string(b))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// ParseNodeID parses 64 hex digits.
func ParseNodeID(s string) (NodeID, error) {
	var n NodeID
	if len(s) != 2*len(n) {
		return n, fmt.Errorf("node id must be %d hex digits, got %d characters", 2*len(n), len(s))
	}
	if _, err := hex.Decode(n[:], []byte(s)); err != nil {
		return n, fmt.Errorf("node id: %w", err)
	}
	return n, nil
}

// Identity is a node's signing key.
type Identity struct {
	Key ed25519.PrivateKey
}

// GenerateIdentity makes a fresh key from the system's random source.
func GenerateIdentity() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity: %w", err)
	}
	return &Identity{Key: priv}, nil
}

// ID returns the node id (the public key).
func (i *Identity) ID() NodeID {
	return NodeID(i.Key.Public().(ed25519.PublicKey))
}

// Public returns the public key as a slice, the form records carry.
func (i *Identity) Public() []byte { return i.Key.Public().(ed25519.PublicKey) }

const pemType = "PRIVATE KEY"

// Save writes the key as PKCS#8 PEM with mode 0600. It refuses to overwrite
// an existing file: losing a node key loses the node's identity.
func (i *Identity) Save(path string) error {
	der, err := x509.MarshalPKCS8PrivateKey(i.Key)
	if err != nil {
		return fmt.Errorf("encode identity: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: pemType, Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	return f.Close()
}

// LoadIdentity reads a key written by Save. A key file readable by group or
// others is refused, as OpenSSH refuses such private keys.
func LoadIdentity(path string) (*Identity, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load identity: %s has mode %04o; it must be readable by its owner only (chmod 600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != pemType {
		return nil, fmt.Errorf("load identity: %s: no %q PEM block", path, pemType)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load identity: %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load identity: %s holds a %T, want an Ed25519 key", path, k)
	}
	return &Identity{Key: priv}, nil
}

// LoadOrCreateIdentity loads the key at path, generating and saving a new one
// when there is none. created reports which happened.
func LoadOrCreateIdentity(path string) (id *Identity, created bool, err error) {
	id, err = LoadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, false, err
	}
	if id, err = GenerateIdentity(); err != nil {
		return nil, false, err
	}
	if err := id.Save(path); err != nil {
		return nil, false, err
	}
	return id, true, nil
}
