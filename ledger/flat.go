package ledger

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
)

// flatIndex holds the two dense indexes of the chain as flat files of
// fixed-size slots, read with pread and never memory-mapped:
//
//	heights.idx  slot h (48 bytes): id (32) | segment (4) | offset (8) | payload length (4)
//	nodes.idx    slot k (32 bytes): the k-th Merkle node completed (levels >= 1)
//
// Merkle nodes are numbered in the order they complete: leaf h completes
// the nodes at levels 1..t where t is the number of trailing one bits of h,
// and before it h - popcount(h) nodes have completed. Both files are
// derived from the segments: they are synced at checkpoints and rebuilt
// from the segments past the last checkpoint on open.
type flatIndex struct {
	heights *os.File
	nodes   *os.File
}

const locatorSize = 32 + 4 + 8 + 4

// locator says where entry h is and what its id is.
type locator struct {
	id  ID
	pos framePos
}

func (l *locator) put(b []byte) {
	copy(b, l.id[:])
	binary.BigEndian.PutUint32(b[32:], l.pos.seg)
	binary.BigEndian.PutUint64(b[36:], uint64(l.pos.off))
	binary.BigEndian.PutUint32(b[44:], l.pos.n)
}

func (l *locator) encode() []byte {
	b := make([]byte, locatorSize)
	l.put(b)
	return b
}

func decodeLocator(b []byte) locator {
	var l locator
	copy(l.id[:], b)
	l.pos.seg = binary.BigEndian.Uint32(b[32:])
	l.pos.off = int64(binary.BigEndian.Uint64(b[36:]))
	l.pos.n = binary.BigEndian.Uint32(b[44:])
	return l
}

// nodeSlot is the position of node (level >= 1, index) in nodes.idx.
func nodeSlot(id compactNodeID) uint64 {
	h := (id.Index+1)<<id.Level - 1 // the leaf that completes it
	return h - uint64(bits.OnesCount64(h)) + uint64(id.Level) - 1
}

// nodesBefore is how many nodes of level >= 1 a tree of size leaves has.
func nodesBefore(size uint64) uint64 { return size - uint64(bits.OnesCount64(size)) }

func openFlat(dir string) (*flatIndex, error) {
	f := &flatIndex{}
	_, err := os.Stat(filepath.Join(dir, "heights.idx"))
	created := err != nil
	if f.heights, err = os.OpenFile(filepath.Join(dir, "heights.idx"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, err
	}
	if f.nodes, err = os.OpenFile(filepath.Join(dir, "nodes.idx"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		f.heights.Close()
		return nil, err
	}
	if created {
		if err := syncDir(dir); err != nil {
			f.close()
			return nil, err
		}
	}
	return f, nil
}

// covers reports whether the files hold at least the slots a chain of size
// entries needs (a lost or cut file is rebuilt, never padded with zeros).
func (f *flatIndex) covers(size uint64) (bool, string) {
	hs, err := f.heights.Stat()
	if err != nil {
		return false, err.Error()
	}
	ns, err := f.nodes.Stat()
	if err != nil {
		return false, err.Error()
	}
	if hs.Size() < int64(size)*locatorSize || ns.Size() < int64(nodesBefore(size))*32 {
		return false, fmt.Sprintf("the flat indexes are shorter than the checkpoint's %d entries", size)
	}
	return true, ""
}

// write puts the locators of heights from.. and the nodes from slot
// nodeFrom.. in place.
func (f *flatIndex) write(from uint64, locs []byte, nodeFrom uint64, nodes []byte) error {
	if _, err := f.heights.WriteAt(locs, int64(from)*locatorSize); err != nil {
		return fmt.Errorf("write heights index: %w", err)
	}
	if len(nodes) > 0 {
		if _, err := f.nodes.WriteAt(nodes, int64(nodeFrom)*32); err != nil {
			return fmt.Errorf("write nodes index: %w", err)
		}
	}
	return nil
}

func (f *flatIndex) locator(h uint64) (locator, error) {
	var b [locatorSize]byte
	if _, err := f.heights.ReadAt(b[:], int64(h)*locatorSize); err != nil {
		return locator{}, fmt.Errorf("read heights index at %d: %w", h, err)
	}
	return decodeLocator(b[:]), nil
}

func (f *flatIndex) node(id compactNodeID) (Hash, error) {
	var h Hash
	if _, err := f.nodes.ReadAt(h[:], int64(nodeSlot(id))*32); err != nil {
		return Hash{}, fmt.Errorf("read node %d/%d: %w", id.Level, id.Index, err)
	}
	return h, nil
}

// truncate cuts both files to a chain of size entries.
func (f *flatIndex) truncate(size uint64) error {
	if err := f.heights.Truncate(int64(size) * locatorSize); err != nil {
		return err
	}
	return f.nodes.Truncate(int64(nodesBefore(size)) * 32)
}

func (f *flatIndex) sync() error {
	if err := f.heights.Sync(); err != nil {
		return err
	}
	return f.nodes.Sync()
}

func (f *flatIndex) close() error {
	err := f.heights.Close()
	if e := f.nodes.Close(); err == nil {
		err = e
	}
	return err
}
