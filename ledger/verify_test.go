package ledger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func buildChain(t *testing.T, g *Genesis, n int) (*Store, []*SignedRecord) {
	t.Helper()
	s := openTestStore(t, t.TempDir(), g)
	t.Cleanup(func() { s.Close() })
	var recs []*SignedRecord
	var items []Pending
	for i := range n {
		r := makeRecord(t, testKey(7), g, i)
		recs = append(recs, r)
		items = append(items, Pending{Record: r, Source: "local"})
	}
	if _, err := s.AppendBatch(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	return s, recs
}

func TestVerifyCleanChain(t *testing.T) {
	g := testGenesis(4)
	s, recs := buildChain(t, g, 600)
	var progressed uint64
	rep, err := s.Verify(context.Background(), VerifyOptions{Workers: 3, Progress: func(n uint64) { progressed = n }})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Records != uint64(len(recs)) || rep.Root != s.Head().Root || progressed != uint64(len(recs)) {
		t.Fatalf("report %+v, progress %d", rep, progressed)
	}
}

// damage rewrites one index key in the store behind its back.
func damage(t *testing.T, s *Store, key []byte, f func([]byte) []byte) {
	t.Helper()
	err := s.db.Update(func(txn *badger.Txn) error {
		v, err := getValue(txn, key)
		if err != nil {
			return err
		}
		if nv := f(v); nv != nil {
			return txn.Set(key, nv)
		}
		return txn.Delete(key)
	})
	if err != nil {
		t.Fatalf("damage: %v", err)
	}
}

// damageFrame rewrites entry h's frame payload in its segment, in place.
// With fixCRC the checksum is recomputed, as a forger would.
func damageFrame(t *testing.T, s *Store, h uint64, fixCRC bool, f func(payload []byte) []byte) {
	t.Helper()
	loc, err := s.locator(h)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := s.segs.readFrame(loc.pos)
	if err != nil {
		t.Fatal(err)
	}
	np := f(bytes.Clone(payload))
	if len(np) != len(payload) {
		t.Fatalf("damageFrame must keep the length (%d -> %d)", len(payload), len(np))
	}
	frame := appendFrame(nil, np)
	if !fixCRC {
		copy(frame[4:8], appendFrame(nil, payload)[4:8])
	}
	file, _ := s.segs.file(loc.pos.seg)
	if _, err := file.WriteAt(frame, loc.pos.off); err != nil {
		t.Fatal(err)
	}
}

// damageFile flips one bit of a file at off.
func damageFile(t *testing.T, f *os.File, off int64) {
	t.Helper()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// rewriteEntry decodes a frame payload, lets edit change it, re-encodes.
func rewriteEntry(t *testing.T, edit func(e *Entry, nodes []Hash, rec *SignedRecord) ([]Hash, *SignedRecord)) func([]byte) []byte {
	return func(p []byte) []byte {
		e, nodes, env, err := decodeEntry(p)
		if err != nil {
			t.Fatal(err)
		}
		nodes, rec := edit(&e, nodes, mustDecode(t, env))
		return encodeEntry(&e, nodes, rec)
	}
}

func TestVerifyFindsFirstDamage(t *testing.T) {
	g := testGenesis(4)
	cases := []struct {
		name   string
		height uint64
		hurt   func(t *testing.T, s *Store, recs []*SignedRecord)
		want   error
	}{
		{"signature", 300, func(t *testing.T, s *Store, _ []*SignedRecord) {
			damageFrame(t, s, 300, true, func(p []byte) []byte { p[len(p)-1] ^= 1; return p })
		}, ErrSignature},
		{"checksum", 301, func(t *testing.T, s *Store, _ []*SignedRecord) {
			damageFrame(t, s, 301, false, func(p []byte) []byte { p[len(p)-1] ^= 1; return p })
		}, errDamaged},
		{"payload", 17, func(t *testing.T, s *Store, recs []*SignedRecord) {
			// Replace the stored record by another, validly signed one: the
			// entry's id no longer matches the bytes.
			damageFrame(t, s, 17, true, rewriteEntry(t, func(e *Entry, n []Hash, _ *SignedRecord) ([]Hash, *SignedRecord) {
				return n, recs[18]
			}))
		}, ErrID},
		{"link", 450, func(t *testing.T, s *Store, recs []*SignedRecord) {
			damageFrame(t, s, 450, true, rewriteEntry(t, func(e *Entry, n []Hash, r *SignedRecord) ([]Hash, *SignedRecord) {
				e.Link[0] ^= 1
				return n, r
			}))
		}, ErrLink},
		{"tree in segment", 255, func(t *testing.T, s *Store, _ []*SignedRecord) {
			// Level 8 node 0 completes with leaf 255, which stores it last.
			damageFrame(t, s, 255, true, rewriteEntry(t, func(e *Entry, n []Hash, r *SignedRecord) ([]Hash, *SignedRecord) {
				n[7][3] ^= 1
				return n, r
			}))
		}, ErrTree},
		{"tree in index", 127, func(t *testing.T, s *Store, _ []*SignedRecord) {
			// Leaf 127 completes nodes of levels 1..7; flip its level-3 node.
			slot := nodeSlot(compactNodeID{Level: 3, Index: 15})
			damageFile(t, s.flat.nodes, int64(slot)*32+5)
		}, ErrIndex},
		{"index", 99, func(t *testing.T, s *Store, recs []*SignedRecord) {
			damage(t, s, indexKey(recs[99].ID), func([]byte) []byte { return nil })
		}, ErrIndex},
		{"index points elsewhere", 42, func(t *testing.T, s *Store, recs []*SignedRecord) {
			damage(t, s, indexKey(recs[42].ID), func([]byte) []byte { return []byte{0, 0, 0, 0, 0, 0, 0, 43} })
		}, ErrIndex},
		{"extra index key", 600, func(t *testing.T, s *Store, recs []*SignedRecord) {
			if err := s.db.Update(func(txn *badger.Txn) error {
				return txn.Set(indexKey(ID{0xee}), []byte{0, 0, 0, 0, 0, 0, 0, 1})
			}); err != nil {
				t.Fatal(err)
			}
		}, ErrIndex},
		{"height slot damaged", 512, func(t *testing.T, s *Store, _ []*SignedRecord) {
			damageFile(t, s.flat.heights, 512*locatorSize+40)
		}, ErrIndex},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, recs := buildChain(t, g, 600)
			tc.hurt(t, s, recs)
			_, err := s.Verify(context.Background(), VerifyOptions{})
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify err = %v, want a ChainError", err)
			}
			if ce.Height != tc.height {
				t.Fatalf("first bad height = %d (%v), want %d", ce.Height, err, tc.height)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
