// Package recon is range-based set reconciliation over record ids, the
// approach of Meyer's "Range-Based Set Reconciliation" and of negentropy:
// two peers find which ids each holds that the other lacks by exchanging
// fingerprints of ranges of their ordered sets, splitting only the ranges
// that differ. It costs O(d log n) bytes for d differences among n items
// and never sends a full id list. The package is pure: it knows nothing of
// streams or records, and docs/REPLICATION.md describes its bytes.
package recon

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"sort"
)

// Item is one element of a set: a record's creation time (Unix ns) and id.
// Items are ordered by time, then id.
type Item struct {
	T  uint64
	ID [32]byte
}

// Less orders items.
func (a Item) Less(b Item) bool {
	if a.T != b.T {
		return a.T < b.T
	}
	return bytes.Compare(a.ID[:], b.ID[:]) < 0
}

// Bound separates ranges: an item is below a bound when its time is
// smaller, or equal with an id below Prefix (compared over Prefix's
// length). The zero-length prefix at a time is the first possible item of
// that time. Infinite is above every item.
type Bound struct {
	T        uint64
	Prefix   []byte
	Infinite bool
}

// Below reports whether it < b.
func (b Bound) Below(it Item) bool {
	if b.Infinite {
		return true
	}
	if it.T != b.T {
		return it.T < b.T
	}
	return bytes.Compare(it.ID[:len(b.Prefix)], b.Prefix) < 0
}

// boundBetween is the shortest bound above a and at or below b (a < b).
func boundBetween(a, b Item) Bound {
	if a.T != b.T {
		return Bound{T: b.T}
	}
	n := 0
	for n < 32 && a.ID[n] == b.ID[n] {
		n++
	}
	return Bound{T: b.T, Prefix: append([]byte(nil), b.ID[:n+1]...)}
}

// accumulator is the sum of ids mod 2^256, each id read little-endian.
type accumulator [4]uint64

func (a *accumulator) add(id *[32]byte) {
	var c uint64
	for i := range a {
		a[i], c = bits.Add64(a[i], binary.LittleEndian.Uint64(id[8*i:]), c)
	}
}

func (a *accumulator) addAcc(b *accumulator) {
	var c uint64
	for i := range a {
		a[i], c = bits.Add64(a[i], b[i], c)
	}
}

func (a *accumulator) sub(b *accumulator) {
	var br uint64
	for i := range a {
		a[i], br = bits.Sub64(a[i], b[i], br)
	}
}

// FingerprintSize is the bytes of a range fingerprint.
const FingerprintSize = 16

// Fingerprint is SHA-256(sum of ids mod 2^256, 32 bytes little-endian ||
// count as an unsigned LEB128 varint), first 16 bytes.
type Fingerprint [FingerprintSize]byte

func (a *accumulator) fingerprint(count int) Fingerprint {
	var buf [32 + binary.MaxVarintLen64]byte
	for i := range a {
		binary.LittleEndian.PutUint64(buf[8*i:], a[i])
	}
	n := binary.PutUvarint(buf[32:], uint64(count))
	sum := sha256.Sum256(buf[:32+n])
	var fp Fingerprint
	copy(fp[:], sum[:])
	return fp
}

// Set is an ordered set of items with cached sums, so that the fingerprint
// of any range costs O(log n + block) rather than O(range): items live in
// sorted blocks of at most maxBlock, each with its own sum; prefix sums over
// the blocks are rebuilt lazily after inserts.
type Set struct {
	blocks []*block
	n      int
	// lazily rebuilt: global index and sum at the start of each block
	starts []int
	sums   []accumulator
	dirty  bool
}

type block struct {
	items []Item
	sum   accumulator
}

const maxBlock = 512

// NewSet returns an empty set.
func NewSet() *Set { return &Set{dirty: true} }

// Len is the number of items.
func (s *Set) Len() int { return s.n }

// Insert adds an item; it reports false when the set holds it already.
func (s *Set) Insert(it Item) bool {
	if len(s.blocks) == 0 {
		s.blocks = []*block{{}}
	}
	bi := sort.Search(len(s.blocks), func(i int) bool {
		b := s.blocks[i]
		return len(b.items) > 0 && it.Less(b.items[0])
	}) - 1
	if bi < 0 {
		bi = 0
	}
	b := s.blocks[bi]
	i := sort.Search(len(b.items), func(i int) bool { return !b.items[i].Less(it) })
	if i < len(b.items) && b.items[i] == it {
		return false
	}
	b.items = append(b.items, Item{})
	copy(b.items[i+1:], b.items[i:])
	b.items[i] = it
	b.sum.add(&it.ID)
	s.n++
	if len(b.items) > maxBlock {
		s.split(bi)
	}
	s.dirty = true
	return true
}

// split halves a full block.
func (s *Set) split(bi int) {
	b := s.blocks[bi]
	half := len(b.items) / 2
	nb := &block{items: append(make([]Item, 0, maxBlock+1), b.items[half:]...)}
	b.items = append(make([]Item, 0, maxBlock+1), b.items[:half]...)
	b.sum, nb.sum = accumulator{}, accumulator{}
	for i := range b.items {
		b.sum.add(&b.items[i].ID)
	}
	for i := range nb.items {
		nb.sum.add(&nb.items[i].ID)
	}
	s.blocks = append(s.blocks, nil)
	copy(s.blocks[bi+2:], s.blocks[bi+1:])
	s.blocks[bi+1] = nb
}

func (s *Set) rebuild() {
	if !s.dirty {
		return
	}
	s.starts = s.starts[:0]
	s.sums = s.sums[:0]
	n := 0
	var acc accumulator
	for _, b := range s.blocks {
		s.starts = append(s.starts, n)
		s.sums = append(s.sums, acc)
		n += len(b.items)
		acc.addAcc(&b.sum)
	}
	s.starts = append(s.starts, n)
	s.sums = append(s.sums, acc)
	s.dirty = false
}

// locate turns a global index into a block and an offset in it.
func (s *Set) locate(i int) (int, int) {
	s.rebuild()
	bi := sort.Search(len(s.blocks), func(b int) bool { return s.starts[b+1] > i })
	if bi == len(s.blocks) {
		return bi, 0
	}
	return bi, i - s.starts[bi]
}

// At returns the item at global index i.
func (s *Set) At(i int) Item {
	bi, off := s.locate(i)
	return s.blocks[bi].items[off]
}

// Find returns the index of the first item not below bound b.
func (s *Set) Find(b Bound) int {
	s.rebuild()
	if b.Infinite {
		return s.n
	}
	bi := sort.Search(len(s.blocks), func(i int) bool {
		items := s.blocks[i].items
		return len(items) > 0 && !b.Below(items[len(items)-1])
	})
	if bi == len(s.blocks) {
		return s.n
	}
	items := s.blocks[bi].items
	return s.starts[bi] + sort.Search(len(items), func(i int) bool { return !b.Below(items[i]) })
}

// prefixSum is the sum of the first i items.
func (s *Set) prefixSum(i int) accumulator {
	bi, off := s.locate(i)
	if bi == len(s.blocks) {
		return s.sums[len(s.blocks)]
	}
	acc := s.sums[bi]
	items := s.blocks[bi].items
	// Add whichever side of the block is shorter.
	if off <= len(items)/2 {
		for k := 0; k < off; k++ {
			acc.add(&items[k].ID)
		}
		return acc
	}
	acc = s.sums[bi+1]
	for k := off; k < len(items); k++ {
		var neg accumulator
		neg.add(&items[k].ID)
		acc.sub(&neg)
	}
	return acc
}

// Fingerprint of the items with indexes in [i, j).
func (s *Set) Fingerprint(i, j int) Fingerprint {
	acc := s.prefixSum(j)
	lo := s.prefixSum(i)
	acc.sub(&lo)
	return acc.fingerprint(j - i)
}
