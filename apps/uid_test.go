package apps_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyvnode/pyvnode/apps"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// uidVectorSecret is the bytes 0x00..0x1f.
func uidVectorSecret() []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = byte(i)
	}
	return s
}

const (
	uidVectorText = "Alice Example, 1 Main St"
	// uidVector is DeriveUID(0x00..0x1f, uidVectorText), quoted by the docs.
	uidVector = "uid-4014e5ebc11223e4e7df26394ab59364"
)

func TestUIDVector(t *testing.T) {
	secret := uidVectorSecret()
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(uidVectorText))
	independent := "uid-" + hex.EncodeToString(m.Sum(nil)[:16])
	if independent != uidVector {
		t.Fatalf("HMAC-SHA-256 gives %s, the hard-coded vector is %s", independent, uidVector)
	}
	if got := apps.DeriveUID(secret, uidVectorText); got != uidVector {
		t.Errorf("DeriveUID = %s, want %s", got, uidVector)
	}
	if len(uidVector) != 36 || apps.CheckUID(uidVector) != nil {
		t.Errorf("vector %s: len %d, CheckUID %v", uidVector, len(uidVector), apps.CheckUID(uidVector))
	}
}

func TestDeriveUID(t *testing.T) {
	s1, s2 := uidVectorSecret(), uidVectorSecret()
	s2[31] ^= 1
	a, b := apps.DeriveUID(s1, "Jane Doe"), apps.DeriveUID(s1, "Jane Doe")
	if a != b {
		t.Errorf("not deterministic: %s, %s", a, b)
	}
	if c := apps.DeriveUID(s2, "Jane Doe"); c == a {
		t.Errorf("same id under two secrets: %s", c)
	}
	if d := apps.DeriveUID(s1, "jane doe"); d == a {
		t.Errorf("same id for two texts: %s", d)
	}
	if !strings.HasPrefix(a, apps.UIDPrefix) || apps.CheckUID(a) != nil {
		t.Errorf("id %s does not check", a)
	}
	for _, bad := range []string{"", "uid-", "uid-00", "UID-4014e5ebc11223e4e7df26394ab59364", "uid-4014E5EBC11223E4E7DF26394AB59364",
		"uid-4014e5ebc11223e4e7df26394ab5936g", "uid-4014e5ebc11223e4e7df26394ab593640", "4014e5ebc11223e4e7df26394ab59364"} {
		if apps.CheckUID(bad) == nil {
			t.Errorf("CheckUID(%q) accepted", bad)
		}
	}
}

func wantMode0600(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
}

func TestUIDSecretFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "uid.secret")
	secret, err := apps.NewUIDSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != apps.UIDSecretSize {
		t.Fatalf("secret of %d bytes", len(secret))
	}
	wantMode0600(t, path)
	content, _ := os.ReadFile(path)
	if string(content) != hex.EncodeToString(secret)+"\n" {
		t.Errorf("secret file = %q", content)
	}
	loaded, err := apps.LoadUIDSecret(path)
	if err != nil || !bytes.Equal(loaded, secret) {
		t.Errorf("LoadUIDSecret = %x, %v", loaded, err)
	}
	// It never overwrites.
	if _, err := apps.NewUIDSecret(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second NewUIDSecret = %v, want ErrExist", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, content) {
		t.Error("the secret file changed")
	}
	other, err := apps.NewUIDSecret(filepath.Join(t.TempDir(), "s"))
	if err != nil || bytes.Equal(other, secret) {
		t.Errorf("a second secret: %x, %v", other, err)
	}
	// LoadUIDSecret takes the first line, trimmed.
	p2 := filepath.Join(t.TempDir(), "s2")
	os.WriteFile(p2, []byte("  "+hex.EncodeToString(secret)+" \r\nsecond line\n"), 0o600)
	if got, err := apps.LoadUIDSecret(p2); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("LoadUIDSecret(padded) = %x, %v", got, err)
	}
	for _, bad := range []string{"", "zz\n", hex.EncodeToString(secret[:31]) + "\n", hex.EncodeToString(append(secret, 0)) + "\n"} {
		os.WriteFile(p2, []byte(bad), 0o600)
		if _, err := apps.LoadUIDSecret(p2); err == nil {
			t.Errorf("LoadUIDSecret(%q) accepted", bad)
		}
	}
	if _, err := apps.LoadUIDSecret(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadUIDSecret(missing) = %v", err)
	}
}

// openReveal decrypts a reveal file as docs/APPLICATIONS.md §9.3 says,
// without the package: HKDF-SHA-256 key, XChaCha20-Poly1305, magic as AD.
func openReveal(t *testing.T, secret, file []byte) []byte {
	t.Helper()
	key := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, nil, []byte("pyvnode uid reveal file/1")), key); err != nil {
		t.Fatal(err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		t.Fatal(err)
	}
	if len(file) < 48 || string(file[:8]) != "PYVUID01" {
		t.Fatalf("reveal file of %d bytes starting %q", len(file), file[:min(8, len(file))])
	}
	plain, err := aead.Open(nil, file[8:32], file[32:], file[:8])
	if err != nil {
		t.Fatalf("independent decryption: %v", err)
	}
	return plain
}

func sealRevealIndependent(t *testing.T, secret, plain []byte) []byte {
	t.Helper()
	key := make([]byte, 32)
	io.ReadFull(hkdf.New(sha256.New, secret, nil, []byte("pyvnode uid reveal file/1")), key)
	aead, _ := chacha20poly1305.NewX(key)
	nonce := bytes.Repeat([]byte{7}, 24)
	return aead.Seal(append([]byte("PYVUID01"), nonce...), nonce, plain, []byte("PYVUID01"))
}

func TestUIDRevealRoundTrip(t *testing.T) {
	dir := t.TempDir()
	secret := uidVectorSecret()
	path := filepath.Join(dir, "uid.reveal")
	texts := []string{uidVectorText, "Bob <bob@example.org> & co", "Zoë Ünïcode"}
	ids := map[string]string{}
	for _, text := range texts {
		id, err := apps.NewUID(secret, path, text)
		if err != nil {
			t.Fatal(err)
		}
		if id != apps.DeriveUID(secret, text) {
			t.Errorf("NewUID(%q) = %s, DeriveUID gives %s", text, id, apps.DeriveUID(secret, text))
		}
		ids[text] = id
	}
	if ids[uidVectorText] != uidVector {
		t.Errorf("NewUID(vector) = %s", ids[uidVectorText])
	}
	for text, id := range ids {
		got, err := apps.RevealUID(secret, path, id)
		if err != nil || got != text {
			t.Errorf("RevealUID(%s) = %q, %v; want %q", id, got, err, text)
		}
	}
	wantMode0600(t, path)
	file, _ := os.ReadFile(path)
	for text, id := range ids {
		if bytes.Contains(file, []byte(text)) || bytes.Contains(file, []byte(id)) || bytes.Contains(file, []byte(id[4:])) {
			t.Errorf("the reveal file shows %q or its id in clear", text)
		}
	}
	for _, clear := range []string{"Alice", "entries", "version", "uid-"} {
		if bytes.Contains(file, []byte(clear)) {
			t.Errorf("the reveal file contains %q in clear", clear)
		}
	}
	// The file is the documented format.
	plain := openReveal(t, secret, file)
	var c struct {
		Version int               `json:"version"`
		Entries map[string]string `json:"entries"`
	}
	if err := json.Unmarshal(plain, &c); err != nil || c.Version != 1 || len(c.Entries) != 3 || c.Entries[uidVector] != uidVectorText {
		t.Errorf("plaintext %s: %v", plain, err)
	}
	if !bytes.Contains(plain, []byte(`\u003cbob@example.org\u003e \u0026 co`)) {
		t.Errorf("plaintext does not escape <, > and & as documented: %s", plain)
	}
	if len(file) != 8+24+len(plain)+16 {
		t.Errorf("file of %d bytes for %d bytes of plaintext", len(file), len(plain))
	}
	// Recording the same text again changes nothing.
	if id, err := apps.NewUID(secret, path, uidVectorText); err != nil || id != uidVector {
		t.Errorf("NewUID again = %s, %v", id, err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, file) {
		t.Error("recording a known text rewrote the file")
	}
	// Every write draws a fresh nonce.
	if _, err := apps.NewUID(secret, path, "Carol"); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); bytes.Equal(again[8:32], file[8:32]) {
		t.Error("the nonce did not change on a rewrite")
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "uid.reveal" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v", names)
	}
	if _, err := apps.NewUID(secret, path, ""); err == nil {
		t.Error("NewUID accepted an empty text")
	}
	if _, err := apps.RevealUID(secret, path, apps.DeriveUID(secret, "never recorded")); err == nil {
		t.Error("RevealUID of an unrecorded id succeeded")
	}
	if _, err := apps.RevealUID(secret, path, "uid-nothex"); err == nil {
		t.Error("RevealUID of a malformed id succeeded")
	}
}

func TestUIDRevealWrongSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "uid.reveal")
	secret := uidVectorSecret()
	id, err := apps.NewUID(secret, path, uidVectorText)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	other := uidVectorSecret()
	other[0] = 0xff
	if _, err := apps.RevealUID(other, path, id); !errors.Is(err, apps.ErrRevealKey) {
		t.Errorf("RevealUID with another secret = %v, want ErrRevealKey", err)
	}
	if _, err := apps.ReadReveal(path, other); !errors.Is(err, apps.ErrRevealKey) {
		t.Errorf("ReadReveal with another secret = %v, want ErrRevealKey", err)
	}
	// Adding under another secret must fail, not replace the file.
	if _, err := apps.NewUID(other, path, "Mallory"); !errors.Is(err, apps.ErrRevealKey) {
		t.Errorf("NewUID with another secret = %v, want ErrRevealKey", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("the reveal file changed")
	}
}

func TestUIDRevealDamaged(t *testing.T) {
	dir := t.TempDir()
	secret := uidVectorSecret()
	good := filepath.Join(dir, "good")
	id, err := apps.NewUID(secret, good, uidVectorText)
	if err != nil {
		t.Fatal(err)
	}
	file, _ := os.ReadFile(good)
	damage := func(name string, f func([]byte) []byte, wantKeyErr bool) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, f(bytes.Clone(file)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := apps.RevealUID(secret, p, id)
		if err == nil {
			t.Errorf("%s: a damaged reveal file was accepted", name)
			return
		}
		if errors.Is(err, apps.ErrRevealKey) != wantKeyErr {
			t.Errorf("%s: error %v, ErrRevealKey wanted: %v", name, err, wantKeyErr)
		}
		if _, err := apps.ReadReveal(p, secret); err == nil {
			t.Errorf("%s: ReadReveal accepted the file", name)
		}
	}
	damage("ciphertext", func(b []byte) []byte { b[40] ^= 1; return b }, true)
	damage("tag", func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }, true)
	damage("nonce", func(b []byte) []byte { b[10] ^= 1; return b }, true)
	damage("magic", func(b []byte) []byte { b[0] = 'X'; return b }, false)
	damage("truncated", func(b []byte) []byte { return b[:47] }, false)
	damage("empty", func(b []byte) []byte { return nil }, false)
	damage("appended", func(b []byte) []byte { return append(b, 0) }, true)
	damage("bad json", func([]byte) []byte { return sealRevealIndependent(t, secret, []byte("not json")) }, false)
	damage("version 2", func([]byte) []byte {
		return sealRevealIndependent(t, secret, []byte(`{"version":2,"entries":{"`+id+`":"x"}}`))
	}, false)
	// A file sealed independently with the documented format opens.
	p := filepath.Join(dir, "independent")
	os.WriteFile(p, sealRevealIndependent(t, secret, []byte(`{"version":1,"entries":{"`+id+`":"Alice"}}`)), 0o600)
	if got, err := apps.RevealUID(secret, p, id); err != nil || got != "Alice" {
		t.Errorf("independently sealed file: %q, %v", got, err)
	}
	// A missing file is an empty mapping.
	m, err := apps.ReadReveal(filepath.Join(dir, "missing"), secret)
	if err != nil || m == nil || len(m) != 0 {
		t.Errorf("ReadReveal(missing) = %v, %v", m, err)
	}
}
