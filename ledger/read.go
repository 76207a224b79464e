package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

func (s *Store) getEntry(height uint64) (Entry, []byte, error) {
	if err := s.enter(); err != nil {
		return Entry{}, nil, err
	}
	defer s.exit()
	var (
		e   Entry
		env []byte
	)
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		e, env, err = s.getEntryTxn(txn, height)
		return err
	})
	return e, env, err
}

// locator finds entry height in the flat height index.
func (s *Store) locator(height uint64) (locator, error) {
	if height >= s.Count() {
		return locator{}, fmt.Errorf("%w: no record at height %d", ErrNotFound, height)
	}
	return s.flat.locator(height)
}

func (s *Store) getEntryTxn(_ *badger.Txn, height uint64) (Entry, []byte, error) {
	loc, err := s.locator(height)
	if err != nil {
		return Entry{}, nil, err
	}
	payload, err := s.segs.readFrame(loc.pos)
	if err != nil {
		return Entry{}, nil, fmt.Errorf("entry %d: %w", height, err)
	}
	e, _, env, err := decodeEntry(payload)
	if err != nil {
		return Entry{}, nil, err
	}
	if e.Height != height || e.ID != loc.id {
		return Entry{}, nil, fmt.Errorf("%w: index points height %d (%s) at entry %d (%s)", ErrIndex, height, loc.id, e.Height, e.ID)
	}
	return e, env, nil
}

func decodeStored(e Entry, env []byte) (*SignedRecord, error) {
	rec, err := DecodeSignedRecord(env)
	if err != nil {
		return nil, fmt.Errorf("stored record at height %d: %w", e.Height, err)
	}
	if rec.ID != e.ID {
		return nil, fmt.Errorf("stored record at height %d: %w: entry says %s, bytes hash to %s", e.Height, ErrID, e.ID, rec.ID)
	}
	return rec, nil
}

// GetByHeight returns the record at a height and its entry.
func (s *Store) GetByHeight(height uint64) (*SignedRecord, Entry, error) {
	e, env, err := s.getEntry(height)
	if err != nil {
		return nil, Entry{}, err
	}
	rec, err := decodeStored(e, env)
	return rec, e, err
}

// Get returns the record with the given id and its entry.
func (s *Store) Get(id ID) (*SignedRecord, Entry, error) {
	if err := s.enter(); err != nil {
		return nil, Entry{}, err
	}
	defer s.exit()
	var (
		e   Entry
		env []byte
	)
	err := s.db.View(func(txn *badger.Txn) error {
		h, err := s.heightTxn(txn, id)
		if err != nil {
			return err
		}
		e, env, err = s.getEntryTxn(txn, h)
		return err
	})
	if err != nil {
		return nil, Entry{}, err
	}
	rec, err := decodeStored(e, env)
	return rec, e, err
}

func (s *Store) heightTxn(txn *badger.Txn, id ID) (uint64, error) {
	v, err := getValue(txn, indexKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, fmt.Errorf("%w: no record %s", ErrNotFound, id)
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("index entry for %s is corrupt", id)
	}
	return binary.BigEndian.Uint64(v), nil
}

// Height returns the height of the record with the given id.
func (s *Store) Height(id ID) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	var h uint64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		h, err = s.heightTxn(txn, id)
		return err
	})
	return h, err
}

// Has reports whether the chain holds the record.
func (s *Store) Has(id ID) (bool, error) {
	_, err := s.Height(id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// RawEntry is a stored entry with the record's envelope bytes, undecoded,
// and the Merkle nodes the entry carries.
type RawEntry struct {
	Entry
	Nodes    []Hash
	Envelope []byte
}

// iterateFrames calls fn with each entry's frame position and payload for
// heights from up to (not including) size, reading the segments
// sequentially. fn owns the payload. size must not exceed the head.
func (s *Store) iterateFrames(ctx context.Context, from, size uint64, fn func(h uint64, p framePos, payload []byte) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	if from >= size {
		return nil
	}
	loc, err := s.locator(from)
	if err != nil {
		return err
	}
	next := from
	_, err = s.segs.scan(loc.pos.seg, loc.pos.off, func(p framePos, payload []byte) error {
		if next >= size {
			return errStopIter
		}
		if next&1023 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := fn(next, p, payload); err != nil {
			return err
		}
		next++
		return nil
	})
	// Frames past the head may be mid-write: stopping there is not an error.
	if errors.Is(err, errStopIter) {
		return nil // fn or the size limit ended it
	}
	var fe *frameError
	if errors.As(err, &fe) {
		if next >= size {
			err = nil // past the records asked for: an append in progress
		} else {
			fe.torn = false // an acknowledged record: damage, whatever it looks like
		}
	}
	if err == nil && next < size {
		err = fmt.Errorf("segments end at entry %d, the chain has %d", next, size)
	}
	return err
}

// IterateRaw calls fn for each entry from height from upward, in order,
// until fn returns an error, ctx is cancelled or the entries end. The
// envelope is not decoded or checked; fn owns the slices it is given.
func (s *Store) IterateRaw(ctx context.Context, from uint64, fn func(RawEntry) error) error {
	return s.iterateRaw(ctx, from, s.Count(), fn)
}

func (s *Store) iterateRaw(ctx context.Context, from, size uint64, fn func(RawEntry) error) error {
	return s.iterateFrames(ctx, from, size, func(h uint64, _ framePos, payload []byte) error {
		e, nodes, env, err := decodeEntry(payload)
		if err != nil {
			return err
		}
		if e.Height != h {
			return fmt.Errorf("segments hold entry %d where %d belongs", e.Height, h)
		}
		return fn(RawEntry{Entry: e, Nodes: nodes, Envelope: env})
	})
}

// Iterate calls fn with each record and its entry from height from upward,
// decoding and checking each stored record (not its signature).
func (s *Store) Iterate(ctx context.Context, from uint64, fn func(*SignedRecord, Entry) error) error {
	return s.iterate(ctx, from, s.Count(), fn)
}

func (s *Store) iterate(ctx context.Context, from, size uint64, fn func(*SignedRecord, Entry) error) error {
	return s.iterateRaw(ctx, from, size, func(r RawEntry) error {
		rec, err := decodeStored(r.Entry, r.Envelope)
		if err != nil {
			return err
		}
		return fn(rec, r.Entry)
	})
}
