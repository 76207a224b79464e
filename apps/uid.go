package apps

import (
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pyvnode/pyvnode/internal/fsutil"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// Unique ids stand in for private data on the chain: a publisher derives
// one with HMAC-SHA-256 under a secret of its own, and keeps the mapping
// back to the text in a local file encrypted under a key derived from the
// same secret. Nobody without the secret can link an id to its text or
// tell whether two ids hide related texts. The same text always gives the
// same id, so the publisher (who holds the secret) can later show that an
// id stands for a given text by deriving it again in front of an auditor;
// anyone else who learns the secret can do the same, and can also test
// guesses, so the secret must stay with the publisher.

// UIDPrefix starts every unique id.
const UIDPrefix = "uid-"

// UIDSecretSize is the size of a publisher's secret.
const UIDSecretSize = 32

// DeriveUID computes the unique id of text under secret: "uid-" and the
// first 16 bytes of HMAC-SHA-256(secret, text) in hex.
func DeriveUID(secret []byte, text string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(text))
	return UIDPrefix + hex.EncodeToString(m.Sum(nil)[:16])
}

// CheckUID checks the form of a unique id.
func CheckUID(id string) error {
	h, ok := strings.CutPrefix(id, UIDPrefix)
	if !ok || len(h) != 32 {
		return fmt.Errorf("unique id %q: want %s and 32 hex digits", id, UIDPrefix)
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return fmt.Errorf("unique id %q: want %s and 32 lowercase hex digits", id, UIDPrefix)
	}
	return nil
}

// NewUIDSecret writes a fresh secret (hex, one line, mode 0600) to path;
// it refuses to overwrite a file.
func NewUIDSecret(path string) ([]byte, error) {
	secret := make([]byte, UIDSecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintln(f, hex.EncodeToString(secret)); err != nil {
		f.Close()
		return nil, err
	}
	return secret, f.Close()
}

// LoadUIDSecret reads a secret written by NewUIDSecret.
func LoadUIDSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	secret, err := hex.DecodeString(strings.TrimSpace(line))
	if err != nil || len(secret) != UIDSecretSize {
		return nil, fmt.Errorf("%s: not a uid secret (want %d bytes in hex on the first line)", path, UIDSecretSize)
	}
	return secret, nil
}

// revealMagic starts a reveal file; it is also the AEAD's associated data.
var revealMagic = []byte("PYVUID01")

// ErrRevealKey: the reveal file does not open under this secret.
var ErrRevealKey = errors.New("the reveal file does not decrypt with this secret (wrong secret, or the file is damaged)")

type revealContent struct {
	Version int               `json:"version"`
	Entries map[string]string `json:"entries"`
}

func revealKey(secret []byte) []byte {
	k := make([]byte, chacha20poly1305.KeySize)
	r := hkdf.New(sha256.New, secret, nil, []byte("pyvnode uid reveal file/1"))
	if _, err := io.ReadFull(r, k); err != nil {
		panic(err) // cannot happen for 32 bytes
	}
	return k
}

// ReadReveal decrypts a reveal file; a missing file is an empty mapping.
func ReadReveal(path string, secret []byte) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(revealKey(secret))
	if err != nil {
		return nil, err
	}
	n := len(revealMagic) + aead.NonceSize()
	if len(b) < n+aead.Overhead() || !bytes.Equal(b[:len(revealMagic)], revealMagic) {
		return nil, fmt.Errorf("%s: not a pyvnode reveal file", path)
	}
	plain, err := aead.Open(nil, b[len(revealMagic):n], b[n:], revealMagic)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, ErrRevealKey)
	}
	var c revealContent
	if err := json.Unmarshal(plain, &c); err != nil || c.Version != 1 {
		return nil, fmt.Errorf("%s: damaged reveal file", path)
	}
	if c.Entries == nil {
		c.Entries = map[string]string{}
	}
	return c.Entries, nil
}

// WriteReveal encrypts the mapping into path (atomically, mode 0600).
func WriteReveal(path string, secret []byte, entries map[string]string) error {
	plain, err := json.Marshal(revealContent{Version: 1, Entries: entries})
	if err != nil {
		return err
	}
	aead, err := chacha20poly1305.NewX(revealKey(secret))
	if err != nil {
		return err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	out := sealReveal(aead, nonce, plain)
	return fsutil.WriteFileAtomic(path, out, 0o600)
}

// sealReveal lays out a reveal file: magic, nonce, sealed content (the
// magic is the associated data).
func sealReveal(aead cipher.AEAD, nonce, plain []byte) []byte {
	out := append(append([]byte{}, revealMagic...), nonce...)
	return aead.Seal(out, nonce, plain, revealMagic)
}

// NewUID derives the id of text and records it in the reveal file.
func NewUID(secret []byte, revealPath, text string) (string, error) {
	if text == "" {
		return "", errors.New("the private text is empty")
	}
	id := DeriveUID(secret, text)
	m, err := ReadReveal(revealPath, secret)
	if err != nil {
		return "", err
	}
	if old, ok := m[id]; ok && old == text {
		return id, nil
	}
	m[id] = text
	return id, WriteReveal(revealPath, secret, m)
}

// RevealUID turns an id back into its text.
func RevealUID(secret []byte, revealPath, id string) (string, error) {
	if err := CheckUID(id); err != nil {
		return "", err
	}
	m, err := ReadReveal(revealPath, secret)
	if err != nil {
		return "", err
	}
	text, ok := m[id]
	if !ok {
		return "", fmt.Errorf("%s is not in %s (made under another secret, or never recorded)", id, revealPath)
	}
	return text, nil
}
