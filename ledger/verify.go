package ledger

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
)

// ChainError reports the first damaged height found by Verify.
type ChainError struct {
	Height uint64
	Err    error
}

func (e *ChainError) Error() string { return fmt.Sprintf("height %d: %v", e.Height, e.Err) }
func (e *ChainError) Unwrap() error { return e.Err }

// Chain-level damage, reported inside a ChainError.
var (
	ErrLink  = errors.New("hash link broken")
	ErrIndex = errors.New("id index disagrees with the chain")
	ErrTree  = errors.New("stored Merkle node differs from the recomputed one")
	ErrHead  = errors.New("stored head disagrees with the recomputed chain")
)

// VerifyOptions tune Verify. Zero values mean defaults.
type VerifyOptions struct {
	// Workers checking signatures in parallel. Default GOMAXPROCS.
	Workers int
	// Progress, when set, is called from time to time with the number of
	// records checked so far.
	Progress func(done uint64)
}

// VerifyReport sums up a successful verification.
type VerifyReport struct {
	Records  uint64
	Root     Hash
	Link     Hash
	Duration time.Duration
}

type verifyItem struct {
	height uint64
	pos    framePos
	value  []byte // frame payload, decoded by the worker
	entry  Entry
	nodes  []Hash
	err    error
}

type verifyBatch struct {
	items []verifyItem
	sum   multisetHash // of the index keys and values the batch implies
	done  chan struct{}
}

const verifyBatchSize = 256

// Verify recomputes everything the chain claims: each record's canonical
// encoding, id, proof of work, originator rule and signature (in parallel
// on all cores), then in chain order each hash link, every stored Merkle
// node, the root and the stored head; and it checks that the id index maps
// exactly the chain's ids to their heights. It returns a *ChainError for
// the first bad height.
func (s *Store) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	start := time.Now()
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	head := s.Head()
	v := &Validator{Genesis: s.opts.Genesis}

	jobs := make(chan *verifyBatch, workers*2)
	order := make(chan *verifyBatch, workers*4)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				verifyEntries(v, b)
				close(b.done)
			}
		}()
	}
	var (
		readErr  error
		readNext uint64 // height the reader stopped at
	)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(order)
		defer close(jobs)
		b := &verifyBatch{done: make(chan struct{})}
		send := func() bool {
			select {
			case order <- b:
			case <-ctx.Done():
				return false
			}
			jobs <- b
			b = &verifyBatch{done: make(chan struct{})}
			return true
		}
		readErr = s.iterateFrames(ctx, 0, head.Size, func(h uint64, p framePos, val []byte) error {
			readNext = h + 1
			b.items = append(b.items, verifyItem{height: h, pos: p, value: val})
			if len(b.items) == verifyBatchSize && !send() {
				return ctx.Err()
			}
			return nil
		})
		if len(b.items) > 0 {
			send()
		}
	}()
	defer func() {
		cancel()
		<-readerDone
		wg.Wait()
	}()

	// The indexes are checked as a multiset: the sum of H(key || value)
	// over the index keys the entries imply must equal the same sum over
	// the keys Badger holds, read in one sequential scan beside the
	// segments. Only on a mismatch are they searched entry by entry for
	// the first bad height.
	idxSum := make(chan indexScan, 1)
	go func() { idxSum <- s.scanIndex(ctx, head.Size) }()
	scanned := false
	defer func() {
		if !scanned {
			cancel()
			<-idxSum // do not leave it reading files the caller may close
		}
	}()

	var (
		link  Hash
		count uint64
		sum   multisetHash
		rng   = (&compact.RangeFactory{Hash: hasher.HashChildren}).NewEmptyRange(0)
	)
	for b := range order {
		<-b.done
		for i := range b.items {
			it := &b.items[i]
			if it.err != nil {
				return nil, &ChainError{Height: it.height, Err: it.err}
			}
			if err := checkLinkAndTree(rng, &link, it); err != nil {
				return nil, &ChainError{Height: it.height, Err: err}
			}
			count++
		}
		sum.add(&b.sum)
		if opts.Progress != nil {
			opts.Progress(count)
		}
	}
	if readErr != nil && !errors.Is(readErr, errStopIter) {
		return nil, &ChainError{Height: readNext, Err: readErr}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if count != head.Size {
		return nil, &ChainError{Height: count, Err: fmt.Errorf("%w: head says %d records, found %d", ErrHead, head.Size, count)}
	}
	root := Hash(hasher.EmptyRoot())
	if count > 0 {
		r, _ := rng.GetRootHash(nil)
		root = Hash(r)
	}
	if root != head.Root || link != head.Link {
		return nil, &ChainError{Height: count, Err: fmt.Errorf("%w: root %s link %s, recomputed root %s link %s", ErrHead, head.Root, head.Link, root, link)}
	}
	scan := <-idxSum
	scanned = true
	if scan.err != nil {
		return nil, fmt.Errorf("read id index: %w", scan.err)
	}
	if scan.sum != sum || scan.count != count {
		return nil, s.findIndexDamage(ctx, count, scan.count)
	}
	return &VerifyReport{Records: count, Root: root, Link: link, Duration: time.Since(start)}, nil
}

var errStopIter = errors.New("stop iteration")

// checkLinkAndTree advances the hash chain and the Merkle tree by one entry
// and compares them with what the entry stores.
func checkLinkAndTree(rng *compact.Range, link *Hash, it *verifyItem) error {
	*link = NextLink(*link, it.entry.ID)
	if *link != it.entry.Link {
		return fmt.Errorf("%w: stored %s, recomputed %s", ErrLink, it.entry.Link, *link)
	}
	leaf := LeafHash(it.entry.ID)
	var bad error
	k := 0
	_ = rng.Append(leaf[:], func(id compact.NodeID, h []byte) {
		if id.Level == 0 || bad != nil {
			return
		}
		if k >= len(it.nodes) || it.nodes[k] != Hash(h) {
			bad = fmt.Errorf("%w: node level %d index %d", ErrTree, id.Level, id.Index)
		}
		k++
	})
	if bad == nil && k != len(it.nodes) {
		bad = fmt.Errorf("%w: entry stores %d nodes, its leaf completes %d", ErrTree, len(it.nodes), k)
	}
	return bad
}

// verifyEntries runs the per-record checks of one batch.
func verifyEntries(v *Validator, b *verifyBatch) {
	for i := range b.items {
		it := &b.items[i]
		e, nodes, env, err := decodeEntry(it.value)
		it.value = nil
		if err == nil && e.Height != it.height {
			err = fmt.Errorf("segments hold entry %d where %d belongs", e.Height, it.height)
		}
		if err != nil {
			it.err = err
			continue
		}
		it.entry, it.nodes = e, nodes
		rec, err := DecodeSignedRecord(env)
		if err == nil && rec.ID != e.ID {
			err = &CheckError{Check: ErrID, Detail: fmt.Sprintf("entry says %s, record bytes hash to %s", e.ID, rec.ID)}
		}
		if err == nil {
			err = v.Check(rec)
		}
		it.err = err
		loc := locator{id: e.ID, pos: it.pos}
		b.sum.addKV(flatHeightKey(it.height), loc.encode())
		slot := nodesBefore(it.height)
		for k := range nodes {
			b.sum.addKV(flatNodeKey(slot+uint64(k)), nodes[k][:])
		}
		b.sum.addKV(indexKey(e.ID), heightBytes(it.height))
	}
}

// multisetHash is a sum mod 2^256 of SHA-256(len(key) || key || value)
// over key-value pairs: equal sums mean (up to a collision) equal sets of
// pairs, whatever the order they were added in.
type multisetHash [4]uint64

func (m *multisetHash) addKV(k, v []byte) {
	h := sha256.New()
	h.Write([]byte{byte(len(k))})
	h.Write(k)
	h.Write(v)
	var sum [32]byte
	h.Sum(sum[:0])
	var x multisetHash
	for i := range x {
		x[i] = binary.BigEndian.Uint64(sum[8*i:])
	}
	m.add(&x)
}

func (m *multisetHash) add(x *multisetHash) {
	var carry uint64
	for i := 3; i >= 0; i-- {
		m[i], carry = bits.Add64(m[i], x[i], carry)
	}
}

type indexScan struct {
	sum   multisetHash
	count uint64
	err   error
}

// Keys under which the flat files' slots enter the multiset.
func flatHeightKey(h uint64) []byte { return append([]byte{'h'}, heightBytes(h)...) }
func flatNodeKey(k uint64) []byte   { return append([]byte{'n'}, heightBytes(k)...) }

// scanIndex reads the id index in key order and the flat files up to size.
func (s *Store) scanIndex(ctx context.Context, size uint64) indexScan {
	var r indexScan
	r.err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixIndex}, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if r.count&4095 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			k := it.Item().Key()
			err := it.Item().Value(func(v []byte) error {
				// Ids appended after the head this verification checks
				// belong to a later chain; leave them out.
				if len(v) == 8 && binary.BigEndian.Uint64(v) >= size {
					return nil
				}
				r.sum.addKV(k, v)
				r.count++
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if r.err != nil {
		return r
	}
	r.err = scanFlat(ctx, s.flat.heights, size, locatorSize, flatHeightKey, &r.sum)
	if r.err == nil {
		r.err = scanFlat(ctx, s.flat.nodes, nodesBefore(size), 32, flatNodeKey, &r.sum)
	}
	return r
}

func scanFlat(ctx context.Context, f *os.File, slots uint64, size int, key func(uint64) []byte, sum *multisetHash) error {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, int64(slots)*int64(size)), 1<<16)
	buf := make([]byte, size)
	for k := range slots {
		if k&4095 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("%s slot %d: %w", filepath.Base(f.Name()), k, err)
		}
		sum.addKV(key(k), buf)
	}
	return nil
}

// findIndexDamage is the slow path after the index sums disagree: look up
// every entry in the indexes and report the first height they get wrong,
// or, if every entry is indexed right, the extra keys.
func (s *Store) findIndexDamage(ctx context.Context, size, indexed uint64) error {
	var found error
	err := s.iterateFrames(ctx, 0, size, func(h uint64, p framePos, payload []byte) error {
		e, nodes, _, err := decodeEntry(payload)
		if err != nil {
			return err
		}
		bad := func(format string, args ...any) error {
			found = &ChainError{Height: h, Err: fmt.Errorf("%w: "+format, append([]any{ErrIndex}, args...)...)}
			return errStopIter
		}
		if got, err := s.Height(e.ID); err != nil || got != h {
			return bad("id %s maps to %d (%v)", e.ID, got, err)
		}
		loc, err := s.flat.locator(h)
		if err != nil {
			return bad("height index: %v", err)
		}
		if loc.id != e.ID || loc.pos != p {
			return bad("height index slot differs from the segment's entry")
		}
		for k := range nodes {
			id := compactNodeID{Level: uint(k + 1), Index: (h+1)>>(k+1) - 1}
			if n, err := s.flat.node(id); err != nil || n != nodes[k] {
				return bad("nodes index slot for node %d/%d differs from the segment's entry", id.Level, id.Index)
			}
		}
		return nil
	})
	if found != nil {
		return found
	}
	if err != nil {
		return err
	}
	return &ChainError{Height: size, Err: fmt.Errorf("%w: index holds %d ids for %d records", ErrIndex, indexed, size)}
}
