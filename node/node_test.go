package node

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/ledger"
)

// syncBuffer collects log output written from the node's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger() (*slog.Logger, *syncBuffer) {
	var b syncBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

func payload(t *testing.T, js string) []byte {
	t.Helper()
	p, err := ledger.PayloadFromJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartInitialisesPutsAndReopens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh", "data")
	log, logs := testLogger()
	n, err := Start(t.Context(), Config{DataDir: dir, Logger: log, Listen: "127.0.0.1:0", P2PListen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatalf("Start on an empty directory: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			n.Close()
		}
	}()

	// The directory is initialised: a private key and the default genesis.
	st, err := os.Stat(KeyPath(dir))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("node.key: %v, mode %v", err, st)
	}
	key, err := ledger.LoadIdentity(KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if key.ID() != n.Identity().ID() {
		t.Errorf("node runs as %s, node.key holds %s", n.Identity().ID(), key.ID())
	}
	g, err := ledger.LoadGenesis(GenesisPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if g.Network != DefaultNetwork || g.PowBits != ledger.DefaultPowBits || g.Hash() != n.Genesis().Hash() {
		t.Errorf("genesis.json %+v, node genesis %+v; want the default network", g, n.Genesis())
	}
	if !Initialized(dir) {
		t.Error("Initialized is false after Start")
	}
	if _, err := os.Stat(filepath.Join(ChainDir(dir), "segments")); err != nil {
		t.Errorf("no chain segments directory: %v", err)
	}
	if n.Store().Count() != 0 {
		t.Errorf("a new node's chain has %d records", n.Store().Count())
	}
	for _, s := range []string{"initialised new data directory", "node started", "node_id=" + key.ID().String()} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}

	// Put mines, signs and appends durably (the default 16 bits of work).
	rec, e, err := n.Put(t.Context(), "note.text", payload(t, `{"text":"hello"}`), "alice")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if e.Height != 0 || e.ID != rec.ID || !bytes.Equal(rec.Origin, key.Public()) || rec.Kind != "note.text" || rec.Author != "alice" {
		t.Errorf("Put returned record %+v entry %+v", rec, e)
	}
	if rec.ID[0] != 0 || rec.ID[1] != 0 {
		t.Errorf("record id %s lacks 16 bits of proof of work", rec.ID)
	}
	rec2, e2, err := n.Put(t.Context(), "note.text", payload(t, `{"n":2}`), "")
	if err != nil || e2.Height != 1 || n.Store().Count() != 2 {
		t.Fatalf("second Put: %v, entry %+v, count %d", err, e2, n.Store().Count())
	}

	// Run returns once its context ends, closing the node.
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after cancellation: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	closed = true
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Errorf("no stop logged:\n%s", logs)
	}

	// Reopen: same key, same genesis, both records.
	n2, err := Start(t.Context(), Config{DataDir: dir, Logger: log, Listen: "127.0.0.1:0", P2PListen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer n2.Close()
	if n2.Identity().ID() != key.ID() || n2.Genesis().Hash() != g.Hash() {
		t.Errorf("restart changed identity or genesis")
	}
	if c := n2.Store().Count(); c != 2 {
		t.Fatalf("restarted chain has %d records, want 2", c)
	}
	got, ge, err := n2.Store().Get(rec.ID)
	if err != nil || ge.Height != 0 || got.Author != "alice" || !bytes.Equal(got.Payload, rec.Payload) || !bytes.Equal(got.Signature, rec.Signature) {
		t.Errorf("record after restart: %v %+v %+v", err, got, ge)
	}
	if _, ge, err := n2.Store().GetByHeight(1); err != nil || ge.ID != rec2.ID {
		t.Errorf("height 1 after restart: %v %+v", err, ge)
	}
	rep, err := n2.Store().Verify(t.Context(), ledger.VerifyOptions{})
	if err != nil || rep.Records != 2 {
		t.Errorf("verify after restart: %v %+v", err, rep)
	}
	if strings.Count(logs.String(), "initialised new data directory") != 1 {
		t.Errorf("restart initialised the directory again:\n%s", logs)
	}

	// A second node on the same directory is refused while n2 runs.
	if n3, err := Start(t.Context(), Config{DataDir: dir, Logger: log, Listen: "127.0.0.1:0", P2PListen: []string{"/ip4/127.0.0.1/tcp/0"}}); err == nil {
		n3.Close()
		t.Error("a second node started on a directory in use")
	} else if !strings.Contains(err.Error(), "in use by a running node") {
		t.Errorf("second node's error: %v", err)
	}
}

func TestPutExistingRecordIsNotAnError(t *testing.T) {
	dir := t.TempDir()
	g := ledger.NewGenesis("putnet")
	g.PowBits = 0
	if _, _, _, err := Init(dir, InitOptions{Genesis: g}); err != nil {
		t.Fatal(err)
	}
	d, err := OpenData(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rec, e, err := Put(t.Context(), d, "note.text", payload(t, `{"n":1}`), "")
	if err != nil || e.Height != 0 {
		t.Fatalf("Put: %v %+v", err, e)
	}
	// Appending the same record again reports the existing entry.
	e2, err := d.Store.Append(t.Context(), rec, 0, "local")
	if !errors.Is(err, ledger.ErrExists) || e2.Height != 0 {
		t.Errorf("re-append: %v %+v", err, e2)
	}
	// An invalid kind is refused before anything is appended.
	if _, _, err := Put(t.Context(), d, "Not A Kind", payload(t, `{"n":1}`), ""); err == nil {
		t.Error("Put accepted an invalid kind")
	}
	if d.Store.Count() != 1 {
		t.Errorf("chain has %d records, want 1", d.Store.Count())
	}
}

func TestOpenDataNotInitialised(t *testing.T) {
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		d, err := OpenData(dir, slog.New(slog.DiscardHandler))
		if err == nil {
			d.Close()
			t.Fatalf("OpenData(%s) on a directory without genesis succeeded", dir)
		}
		if !strings.Contains(err.Error(), "pyvnode init") || !strings.Contains(err.Error(), dir) {
			t.Errorf("OpenData error does not tell how to initialise %s: %v", dir, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "chain")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("OpenData created %s/chain: %v", dir, err)
		}
	}
}

func TestInitRules(t *testing.T) {
	dir := t.TempDir()
	g := ledger.NewGenesis("rules")
	g.PowBits = 0
	id, got, created, err := Init(dir, InitOptions{Genesis: g})
	if err != nil || !created || got.Hash() != g.Hash() {
		t.Fatalf("Init: %v created=%v", err, created)
	}
	// Idempotent with the same genesis; the key is kept.
	id2, _, created, err := Init(dir, InitOptions{Genesis: g})
	if err != nil || created || id2.ID() != id.ID() {
		t.Errorf("second Init: %v created=%v id %s vs %s", err, created, id2.ID(), id.ID())
	}
	// Another genesis is refused.
	other := ledger.NewGenesis("rules")
	other.PowBits = 1
	if _, _, _, err := Init(dir, InitOptions{Genesis: other}); err == nil || !strings.Contains(err.Error(), "refusing to replace") {
		t.Errorf("Init with another genesis: %v", err)
	}
	// Another key is refused.
	k, _ := ledger.GenerateIdentity()
	if _, _, _, err := Init(dir, InitOptions{Genesis: g, Identity: k}); err == nil || !strings.Contains(err.Error(), "different node key") {
		t.Errorf("Init with another key: %v", err)
	}
	// A given key is installed in a new directory.
	dir2 := t.TempDir()
	id3, _, created, err := Init(dir2, InitOptions{Genesis: g, Identity: k})
	if err != nil || !created || id3.ID() != k.ID() {
		t.Fatalf("Init with a key: %v", err)
	}
	if loaded, err := ledger.LoadIdentity(KeyPath(dir2)); err != nil || loaded.ID() != k.ID() {
		t.Errorf("installed key: %v", err)
	}
	// An invalid genesis creates nothing.
	bad := ledger.NewGenesis("Bad Name")
	dir3 := filepath.Join(t.TempDir(), "d")
	if _, _, _, err := Init(dir3, InitOptions{Genesis: bad}); err == nil {
		t.Error("Init accepted an invalid genesis")
	}
	if _, err := os.Stat(dir3); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("invalid Init created %s", dir3)
	}
}
