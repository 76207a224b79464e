package ledger

import (
	"encoding/binary"
	"io"
	"os"
	"path/filepath"

	"bytes"
	"context"
	"errors"
	"github.com/dgraph-io/badger/v4"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
)

func TestAppendGetAndReopen(t *testing.T) {
	dir := t.TempDir()
	g := testGenesis(0)
	key := testKey(1)
	s := openTestStore(t, dir, g)
	ctx := context.Background()

	var recs []*SignedRecord
	link := Hash{}
	for i := range 10 {
		r := makeRecord(t, key, g, i)
		recs = append(recs, r)
		e, err := s.Append(ctx, r, uint8(i%3), "local")
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		link = NextLink(link, r.ID)
		if e.Height != uint64(i) || e.ID != r.ID || e.Link != link || e.Replication != uint8(i%3) || e.Source != "local" {
			t.Fatalf("entry %d = %+v", i, e)
		}
	}
	// Duplicate: idempotent, same entry back.
	e, err := s.Append(ctx, recs[3], 0, "other")
	if !errors.Is(err, ErrExists) || e.Height != 3 || e.ID != recs[3].ID {
		t.Fatalf("duplicate append = %+v, %v; want ErrExists at height 3", e, err)
	}
	if got := s.Count(); got != 10 {
		t.Fatalf("Count = %d after duplicate, want 10", got)
	}
	head := s.Head()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTestStore(t, dir, g)
	defer s.Close()
	if got := s.Head(); got != head {
		t.Fatalf("head after reopen = %+v, want %+v", got, head)
	}
	for i, r := range recs {
		got, e, err := s.Get(r.ID)
		if err != nil || e.Height != uint64(i) || got.ID != r.ID || string(got.Payload) != string(r.Payload) {
			t.Fatalf("Get(%d) = %v %+v %v", i, got, e, err)
		}
		got, _, err = s.GetByHeight(uint64(i))
		if err != nil || got.ID != r.ID {
			t.Fatalf("GetByHeight(%d) = %v, %v", i, got, err)
		}
		if ok, err := s.Has(r.ID); !ok || err != nil {
			t.Fatalf("Has(%d) = %v, %v", i, ok, err)
		}
	}
	if ok, _ := s.Has(ID{1}); ok {
		t.Fatal("Has(unknown) = true")
	}
	if _, _, err := s.Get(ID{1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(unknown) err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.GetByHeight(10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetByHeight(10) err = %v, want ErrNotFound", err)
	}
	// Appending after reopen continues the chain.
	r := makeRecord(t, key, g, 100)
	e, err = s.Append(ctx, r, 0, "local")
	if err != nil || e.Height != 10 || e.Link != NextLink(head.Link, r.ID) {
		t.Fatalf("append after reopen = %+v, %v", e, err)
	}
}

func TestWrongNetworkRefused(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, testGenesis(0))
	s.Close()
	other := NewGenesis("othernet")
	if _, err := Open(Options{Dir: dir, Genesis: other, Logger: quietLogger()}); !errors.Is(err, ErrWrongNetwork) {
		t.Fatalf("Open with another genesis: err = %v, want ErrWrongNetwork", err)
	}
}

// refTree computes roots and node hashes the slow way, straight from the
// merkle library, as the reference the store is compared with.
func refRoot(t *testing.T, ids []ID) Hash {
	t.Helper()
	f := compact.RangeFactory{Hash: hasher.HashChildren}
	r := f.NewEmptyRange(0)
	for _, id := range ids {
		l := LeafHash(id)
		if err := r.Append(l[:], nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(ids) == 0 {
		return Hash(hasher.EmptyRoot())
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return Hash(root)
}

func TestMerkleRootsAndProofs(t *testing.T) {
	g := testGenesis(0)
	key := testKey(2)
	s := openTestStore(t, t.TempDir(), g)
	defer s.Close()
	ctx := context.Background()
	var ids []ID
	roots := []Hash{refRoot(t, nil)}
	// 70 records crosses cacheLevel (32 leaves per level-5 node) twice.
	for i := range 70 {
		r := makeRecord(t, key, g, i)
		if _, err := s.Append(ctx, r, 0, "local"); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
		roots = append(roots, refRoot(t, ids))
		if h := s.Head(); h.Root != roots[len(ids)] {
			t.Fatalf("head root at size %d = %s, want %s", len(ids), h.Root, roots[len(ids)])
		}
	}
	for size := uint64(0); size <= uint64(len(ids)); size++ {
		got, err := s.RootAt(size)
		if err != nil || got != roots[size] {
			t.Fatalf("RootAt(%d) = %s, %v; want %s", size, got, err, roots[size])
		}
		for idx := uint64(0); idx < size; idx++ {
			p, err := s.InclusionProof(idx, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d,%d): %v", idx, size, err)
			}
			if err := VerifyInclusion(ids[idx], idx, size, p, roots[size]); err != nil {
				t.Fatalf("VerifyInclusion(%d,%d): %v", idx, size, err)
			}
			if err := VerifyInclusion(ids[(idx+1)%size], idx, size, p, roots[size]); size > 1 && err == nil {
				t.Fatalf("inclusion proof for %d verified the wrong id", idx)
			}
		}
		for old := uint64(0); old <= size; old++ {
			p, err := s.ConsistencyProof(old, size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d,%d): %v", old, size, err)
			}
			if err := VerifyConsistency(old, size, p, roots[old], roots[size]); err != nil {
				t.Fatalf("VerifyConsistency(%d,%d): %v", old, size, err)
			}
		}
	}
	if _, err := s.InclusionProof(0, 71); !errors.Is(err, ErrNotFound) {
		t.Fatalf("proof beyond head: err = %v", err)
	}
	if _, err := s.InclusionProof(5, 5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("proof index == size: err = %v", err)
	}
}

func TestConcurrentAppendersShareCommits(t *testing.T) {
	g := testGenesis(0)
	s := openTestStore(t, t.TempDir(), g)
	defer s.Close()
	const writers, each = 16, 40
	recs := make([][]*SignedRecord, writers)
	for w := range writers {
		for i := range each {
			recs[w] = append(recs[w], makeRecord(t, testKey(byte(w+10)), g, i))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range recs[w] {
				if _, err := s.Append(context.Background(), r, 0, "local"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	if got := s.Count(); got != writers*each {
		t.Fatalf("Count = %d, want %d", got, writers*each)
	}
	// Heights are dense, links chain, root matches the reference.
	var ids []ID
	link := Hash{}
	err := s.Iterate(context.Background(), 0, func(r *SignedRecord, e Entry) error {
		link = NextLink(link, r.ID)
		if e.Link != link {
			t.Fatalf("link at %d broken", e.Height)
		}
		ids = append(ids, r.ID)
		return nil
	})
	if err != nil {
		t.Fatalf("Iterate: %v", err)
	}
	if got, want := s.Head().Root, refRoot(t, ids); got != want {
		t.Fatalf("root = %s, want %s", got, want)
	}
}

func TestAppendBatchSplitsLargeBatches(t *testing.T) {
	g := testGenesis(0)
	s, err := Open(Options{Dir: t.TempDir(), Genesis: g, Logger: quietLogger(), MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var items []Pending
	var ids []ID
	for i := range 3000 {
		r := makeRecord(t, testKey(3), g, i)
		items = append(items, Pending{Record: r, Source: "import"})
		ids = append(ids, r.ID)
	}
	items = append(items, items[17]) // a duplicate inside the batch
	res, err := s.AppendBatch(context.Background(), items)
	if err != nil {
		t.Fatalf("AppendBatch: %v", err)
	}
	for i, r := range res[:3000] {
		if r.Err != nil || r.Entry.Height != uint64(i) {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	if last := res[3000]; !errors.Is(last.Err, ErrExists) || last.Entry.Height != 17 {
		t.Fatalf("in-batch duplicate = %+v", last)
	}
	if got, want := s.Head().Root, refRoot(t, ids); got != want || s.Count() != 3000 {
		t.Fatalf("after batch: count %d root %s, want 3000 %s", s.Count(), got, want)
	}
}

func TestClosedStoreRefusesAppends(t *testing.T) {
	g := testGenesis(0)
	s := openTestStore(t, t.TempDir(), g)
	s.Close()
	if _, err := s.Append(context.Background(), makeRecord(t, testKey(1), g, 1), 0, "local"); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

func TestEntryEncodingMatchesLibrary(t *testing.T) {
	g := testGenesis(0)
	rec := makeRecord(t, testKey(1), g, 1)
	for _, tc := range []struct {
		e     Entry
		nodes []Hash
	}{
		{Entry{ID: rec.ID, Link: Hash{9}, Replication: 0, Source: "local", Received: 1}, nil},
		{Entry{Height: 1 << 40, ID: rec.ID, Link: Hash{9}, Replication: 200, Source: strings.Repeat("p", 100), Received: 1 << 62}, []Hash{{1}, {2}, {3}}},
		{Entry{Height: 23, ID: rec.ID, Replication: 23, Source: "", Received: -5}, []Hash{{7}}},
	} {
		libNodes := [][]byte{}
		for _, n := range tc.nodes {
			libNodes = append(libNodes, bytes.Clone(n[:]))
		}
		lib, err := encMode.Marshal(storedEntry{
			Height: tc.e.Height, ID: tc.e.ID[:], Link: tc.e.Link[:], Replication: tc.e.Replication,
			Source: tc.e.Source, Received: tc.e.Received, Nodes: libNodes, Envelope: rec.Encode(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeEntry(&tc.e, tc.nodes, rec); !bytes.Equal(got, lib) {
			t.Fatalf("entry %+v:\nhand    %x\nlibrary %x", tc.e, got, lib)
		}
		back, nodes, env, err := decodeEntry(lib)
		if err != nil || back != tc.e || !bytes.Equal(env, rec.Encode()) || len(nodes) != len(tc.nodes) {
			t.Fatalf("decode: %+v %v", back, err)
		}
		for i := range nodes {
			if nodes[i] != tc.nodes[i] {
				t.Fatalf("node %d differs", i)
			}
		}
	}
}

func TestReopenKeepsProofs(t *testing.T) {
	dir := t.TempDir()
	g := testGenesis(0)
	s := openTestStore(t, dir, g)
	var ids []ID
	for i := range 200 {
		r := makeRecord(t, testKey(4), g, i)
		if _, err := s.Append(context.Background(), r, 0, "local"); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	s.Close()
	s = openTestStore(t, dir, g)
	defer s.Close()
	root := refRoot(t, ids)
	if s.Head().Root != root {
		t.Fatal("root changed across reopen")
	}
	for _, idx := range []uint64{0, 31, 63, 64, 127, 128, 199} {
		p, err := s.InclusionProof(idx, 200)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyInclusion(ids[idx], idx, 200, p, root); err != nil {
			t.Fatalf("proof %d after reopen: %v", idx, err)
		}
	}
	if r, err := s.RootAt(150); err != nil || r != refRoot(t, ids[:150]) {
		t.Fatalf("RootAt(150) after reopen: %v", err)
	}
	// The cached upper levels survive the reopen and keep growing.
	for i := 200; i < 260; i++ {
		r := makeRecord(t, testKey(4), g, i)
		if _, err := s.Append(context.Background(), r, 0, "local"); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	p, err := s.InclusionProof(5, 260)
	if err != nil || VerifyInclusion(ids[5], 5, 260, p, refRoot(t, ids)) != nil {
		t.Fatalf("proof after growing past the reopen: %v", err)
	}
}

func TestRecoveryReplaysAndDropsTornTail(t *testing.T) {
	dir := t.TempDir()
	g := testGenesis(0)
	// A checkpoint interval longer than the test: every reopen replays.
	open := func() *Store {
		s, err := Open(Options{Dir: dir, Genesis: g, Logger: quietLogger(), CheckpointInterval: time.Hour})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
	s := open()
	var items []Pending
	for i := range 300 {
		items = append(items, Pending{Record: makeRecord(t, testKey(5), g, i), Source: "local"})
	}
	if _, err := s.AppendBatch(context.Background(), items[:100]); err != nil {
		t.Fatal(err)
	}
	s.Close() // checkpoint at 100
	s = open()
	if _, err := s.AppendBatch(context.Background(), items[100:250]); err != nil {
		t.Fatal(err)
	}
	head := s.Head()
	// Simulate a crash: no Close (no checkpoint), garbage in the flat files
	// past the checkpoint, and half a frame at the end of the segment.
	s.flat.heights.WriteAt(bytes.Repeat([]byte{0xff}, 500), 120*locatorSize)
	seg, _ := s.segs.file(0)
	end, _ := s.segs.endOf(0)
	half := appendFrame(nil, bytes.Repeat([]byte{7}, 200))[:100]
	seg.WriteAt(half, end)
	s.committerStopForTest()

	s = open()
	defer s.Close()
	if got := s.Head(); got != head {
		t.Fatalf("head after recovery %+v, want %+v", got, head)
	}
	if size, _ := s.segs.endOf(0); size != end {
		t.Fatalf("torn tail not cut: segment is %d bytes, want %d", size, end)
	}
	if _, err := s.Verify(context.Background(), VerifyOptions{}); err != nil {
		t.Fatalf("Verify after recovery: %v", err)
	}
	res, err := s.AppendBatch(context.Background(), items[200:])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if i < 50 && !errors.Is(r.Err, ErrExists) || i >= 50 && (r.Err != nil || r.Entry.Height != uint64(200+i)) {
			t.Fatalf("append after recovery, item %d: %+v", i, r)
		}
	}
}

// abandonedStore builds a chain of n records and abandons it as a crash
// would (no checkpoint past the one taken at open), returning its records.
func abandonedStore(t *testing.T, dir string, n int) []*SignedRecord {
	t.Helper()
	g := testGenesis(0)
	s, err := Open(Options{Dir: dir, Genesis: g, Logger: quietLogger(), CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*SignedRecord
	for i := range n {
		r := makeRecord(t, testKey(6), g, i)
		if _, err := s.Append(context.Background(), r, 0, "local"); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	s.committerStopForTest()
	return recs
}

func segmentPath(dir string) string { return filepath.Join(dir, "segments", segName(0)) }

func TestDamageInsideTheTailIsNotTakenForACrash(t *testing.T) {
	dir := t.TempDir()
	abandonedStore(t, dir, 10)
	// Flip a byte in the third frame's payload: acknowledged frames follow.
	f, err := os.OpenFile(segmentPath(dir), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var hdr [8]byte
	off := int64(0)
	for range 2 {
		f.ReadAt(hdr[:], off)
		off += 8 + int64(binary.BigEndian.Uint32(hdr[:4]))
	}
	b := []byte{0}
	f.ReadAt(b, off+20)
	b[0] ^= 1
	f.WriteAt(b, off+20)
	f.Close()

	g := testGenesis(0)
	if _, err := Open(Options{Dir: dir, Genesis: g, Logger: quietLogger()}); !errors.Is(err, errDamaged) {
		t.Fatalf("Open with damage before acknowledged frames: err = %v, want errDamaged", err)
	}
	// The operator may choose to cut there.
	s, err := Open(Options{Dir: dir, Genesis: g, Logger: quietLogger(), RepairTail: true})
	if err != nil {
		t.Fatalf("Open with RepairTail: %v", err)
	}
	defer s.Close()
	if s.Count() != 2 {
		t.Fatalf("after repair the chain holds %d records, want 2", s.Count())
	}
	if _, err := s.Verify(context.Background(), VerifyOptions{}); err != nil {
		t.Fatalf("Verify after repair: %v", err)
	}
}

func TestZeroFilledTailIsTorn(t *testing.T) {
	dir := t.TempDir()
	abandonedStore(t, dir, 5)
	f, _ := os.OpenFile(segmentPath(dir), os.O_RDWR|os.O_APPEND, 0)
	f.Write(make([]byte, 4096)) // what a power loss on XFS can leave
	f.Close()
	s, err := Open(Options{Dir: dir, Genesis: testGenesis(0), Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open with a zero-filled tail: %v", err)
	}
	defer s.Close()
	if s.Count() != 5 {
		t.Fatalf("count %d, want 5", s.Count())
	}
}

func TestLostIndexesAreRebuilt(t *testing.T) {
	dir := t.TempDir()
	g := testGenesis(0)
	s := openTestStore(t, dir, g)
	var recs []*SignedRecord
	for i := range 100 {
		r := makeRecord(t, testKey(8), g, i)
		if _, err := s.Append(context.Background(), r, 0, "local"); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	head := s.Head()
	// Ids a power loss could take from Badger's unsynced memtable.
	if err := s.db.Update(func(txn *badger.Txn) error {
		for _, r := range recs[40:60] {
			if err := txn.Delete(indexKey(r.ID)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTestStore(t, dir, g)
	if ok, _ := s.Has(recs[50].ID); !ok || s.Head() != head {
		t.Fatalf("lost ids not rebuilt: has=%v head=%+v", ok, s.Head())
	}
	s.Close()

	// A lost flat file is rebuilt, not padded with zeros.
	os.Remove(filepath.Join(dir, "nodes.idx"))
	s = openTestStore(t, dir, g)
	defer s.Close()
	if s.Head() != head {
		t.Fatalf("head after losing nodes.idx = %+v, want %+v", s.Head(), head)
	}
	if _, err := s.Verify(context.Background(), VerifyOptions{}); err != nil {
		t.Fatalf("Verify after rebuild: %v", err)
	}
}

func TestReadersWhileAppending(t *testing.T) {
	g := testGenesis(0)
	s := openTestStore(t, t.TempDir(), g)
	defer s.Close()
	var items []Pending
	for i := range 3000 {
		items = append(items, Pending{Record: makeRecord(t, testKey(9), g, i), Source: "local"})
	}
	if _, err := s.AppendBatch(context.Background(), items[:500]); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for lo := 500; lo < len(items); lo += 50 {
			s.AppendBatch(context.Background(), items[lo:lo+50])
		}
	}()
	for range 10 {
		if _, err := s.Verify(context.Background(), VerifyOptions{}); err != nil {
			t.Fatalf("Verify during appends: %v", err)
		}
		if err := s.Export(context.Background(), io.Discard, ExportOptions{}); err != nil {
			t.Fatalf("Export during appends: %v", err)
		}
	}
	<-done
}
