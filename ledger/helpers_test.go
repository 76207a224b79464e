package ledger

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
)

// testKey is a fixed identity so ids in tests are reproducible.
func testKey(seedByte byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = seedByte
	}
	return ed25519.NewKeyFromSeed(seed)
}

func testGenesis(powBits int) *Genesis {
	g := NewGenesis("testnet")
	g.PowBits = powBits
	return g
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTestStore(t testing.TB, dir string, g *Genesis) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Genesis: g, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// makeRecord builds, mines and signs a note record with a distinct payload.
func makeRecord(t testing.TB, key ed25519.PrivateKey, g *Genesis, n int) *SignedRecord {
	t.Helper()
	p, err := EncodePayload(map[string]any{"n": int64(n), "text": fmt.Sprintf("record %d", n)})
	if err != nil {
		t.Fatalf("EncodePayload: %v", err)
	}
	rec := &Record{
		Version: RecordVersion, Kind: "note.text", Payload: p,
		Origin: key.Public().(ed25519.PublicKey), Author: "alice",
		Created: 1_700_000_000_000_000_000 + int64(n),
	}
	if err := Mine(context.Background(), rec, g.PowBits); err != nil {
		t.Fatalf("Mine: %v", err)
	}
	s, err := Sign(rec, key, g.Network)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return s
}

// benchRecords reads PYVNODE_BENCH_RECORDS, for running the large
// benchmarks at a smaller scale.
func benchRecords(def int) int {
	if v, err := strconv.Atoi(os.Getenv("PYVNODE_BENCH_RECORDS")); err == nil && v > 0 {
		return v
	}
	return def
}

// committerStopForTest abandons a store without a checkpoint, as a crash
// would: it stops the goroutines and closes the files, nothing else.
func (s *Store) committerStopForTest() {
	s.once.Do(func() {
		close(s.closing)
		s.wg.Wait()
		s.db.Close()
		s.flat.close()
		s.segs.close()
	})
}
