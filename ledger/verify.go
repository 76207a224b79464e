package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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

type verifyBatch struct {
	entries []RawEntry
	errs    []error
	done    chan struct{}
}

const verifyBatchSize = 256

// Verify recomputes everything the chain claims: each record's canonical
// encoding, id, proof of work, originator rule and signature (in parallel
// on all cores), then in chain order each hash link, the id index, every
// stored Merkle node, the root and the stored head. It returns a
// *ChainError for the first bad height.
func (s *Store) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	start := time.Now()
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
				s.verifyRecords(v, b)
				close(b.done)
			}
		}()
	}
	var (
		readErr  error
		lastRead = uint64(0)
		anyRead  bool
	)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(order)
		defer close(jobs)
		b := &verifyBatch{done: make(chan struct{})}
		send := func() bool {
			b.errs = make([]error, len(b.entries))
			select {
			case order <- b:
			case <-ctx.Done():
				return false
			}
			jobs <- b
			b = &verifyBatch{done: make(chan struct{})}
			return true
		}
		readErr = s.IterateRaw(ctx, 0, func(r RawEntry) error {
			if r.Height >= head.Size {
				return errStopIter
			}
			lastRead, anyRead = r.Height, true
			b.entries = append(b.entries, r)
			if len(b.entries) == verifyBatchSize && !send() {
				return ctx.Err()
			}
			return nil
		})
		if len(b.entries) > 0 {
			send()
		}
	}()
	defer func() {
		cancel()
		<-readerDone
		wg.Wait()
	}()

	var (
		link   Hash
		count  uint64
		rng    = (&compact.RangeFactory{Hash: hasher.HashChildren}).NewEmptyRange(0)
		treeEr error
	)
	for b := range order {
		<-b.done
		for i, r := range b.entries {
			if b.errs[i] != nil {
				cancel()
				return nil, &ChainError{Height: r.Height, Err: b.errs[i]}
			}
			link = NextLink(link, r.ID)
			if link != r.Link {
				cancel()
				return nil, &ChainError{Height: r.Height, Err: fmt.Errorf("%w: stored %s, recomputed %s", ErrLink, r.Link, link)}
			}
			leaf := LeafHash(r.ID)
			k := 0
			_ = rng.Append(leaf[:], func(id compact.NodeID, h []byte) {
				if id.Level == 0 || treeEr != nil {
					return
				}
				if k >= len(r.Nodes) || r.Nodes[k] != Hash(h) {
					treeEr = fmt.Errorf("%w: node level %d index %d", ErrTree, id.Level, id.Index)
				}
				k++
			})
			if treeEr == nil && k != len(r.Nodes) {
				treeEr = fmt.Errorf("%w: entry stores %d nodes, its leaf completes %d", ErrTree, len(r.Nodes), k)
			}
			if treeEr != nil {
				cancel()
				return nil, &ChainError{Height: r.Height, Err: treeEr}
			}
			count++
		}
		if opts.Progress != nil {
			opts.Progress(count)
		}
	}
	if readErr != nil && !errors.Is(readErr, errStopIter) {
		next := uint64(0)
		if anyRead {
			next = lastRead + 1
		}
		return nil, &ChainError{Height: next, Err: readErr}
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
	if n, err := s.countIndex(); err != nil || n != count {
		return nil, &ChainError{Height: count, Err: fmt.Errorf("%w: index holds %d ids for %d records (%v)", ErrIndex, n, count, err)}
	}
	return &VerifyReport{Records: count, Root: root, Link: link, Duration: time.Since(start)}, nil
}

var errStopIter = errors.New("stop iteration")

// verifyRecords runs the per-record checks of one batch.
func (s *Store) verifyRecords(v *Validator, b *verifyBatch) {
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	for i, r := range b.entries {
		rec, err := DecodeSignedRecord(r.Envelope)
		if err == nil && rec.ID != r.ID {
			err = &CheckError{Check: ErrID, Detail: fmt.Sprintf("entry says %s, record bytes hash to %s", r.ID, rec.ID)}
		}
		if err == nil {
			err = v.Check(rec)
		}
		if err == nil {
			hv, gerr := getValue(txn, indexKey(r.ID))
			if gerr != nil || len(hv) != 8 || binary.BigEndian.Uint64(hv) != r.Height {
				err = fmt.Errorf("%w: id %s does not map to this height (%v)", ErrIndex, r.ID, gerr)
			}
		}
		b.errs[i] = err
	}
}

func (s *Store) countIndex() (uint64, error) {
	var n uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixIndex}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}
