package ledger

import (
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// compactNodeID names a node of the tree: its level (0 for leaves) and its
// index within the level.
type compactNodeID = compact.NodeID

// hasher is the RFC 6962 tree hasher: leaf = SHA-256(0x00 || id),
// node = SHA-256(0x01 || left || right).
var hasher = rfc6962.DefaultHasher

// cacheLevel is the lowest tree level kept in memory. Levels below it are
// read from Badger (level 0 from the entries themselves), so a proof costs
// at most cacheLevel+1 reads while memory stays at 32/2^cacheLevel bytes per
// record (1 MiB per million records at level 5).
const cacheLevel = 5

// tree is the Merkle tree over record ids in chain order. Every complete
// node of level >= 1 is written once, to nodes.idx (and in the entry of the
// leaf that completes it); nothing is ever rewritten, so any past root and
// every proof is O(log n) small reads.
type tree struct {
	flat    *flatIndex
	factory compact.RangeFactory

	// rng is the right border of the tree: the committer's alone.
	rng *compact.Range

	mu    sync.RWMutex
	upper [][]Hash // upper[i] holds the complete nodes of level cacheLevel+i
}

func newTree(flat *flatIndex) *tree {
	return &tree{flat: flat, factory: compact.RangeFactory{Hash: hasher.HashChildren}}
}

// LeafHash is the RFC 6962 leaf hash of a record id.
func LeafHash(id ID) Hash { return Hash(hasher.HashLeaf(id[:])) }

// load rebuilds the in-memory state for a chain of the given size: the
// cached upper levels and the right border.
func (t *tree) load(size uint64) error {
	var upper [][]Hash
	for level := uint(cacheLevel); level < 64 && size>>level > 0; level++ {
		n := size >> level
		nodes := make([]Hash, n)
		for i := range n {
			h, err := t.flat.node(compactNodeID{Level: level, Index: i})
			if err != nil {
				return err
			}
			nodes[i] = h
		}
		upper = append(upper, nodes)
	}
	t.mu.Lock()
	t.upper = upper
	t.mu.Unlock()
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := t.node(id)
		if err != nil {
			return err
		}
		hashes[i] = h[:]
	}
	rng, err := t.factory.NewRange(0, size, hashes)
	if err != nil {
		return err
	}
	t.rng = rng
	return nil
}

// stage appends a leaf to the right border, reporting every node that
// completes (the leaf itself included).
func (t *tree) stage(id ID, visit compact.VisitFn) {
	leaf := LeafHash(id)
	if err := t.rng.Append(leaf[:], visit); err != nil {
		panic("compact range append: " + err.Error()) // only fails for ranges not starting at 0
	}
}

// publish makes committed nodes visible to readers.
func (t *tree) publish(nodes []nodeWrite) {
	t.mu.Lock()
	for _, n := range nodes {
		if n.id.Level < cacheLevel {
			continue
		}
		i := int(n.id.Level - cacheLevel)
		for len(t.upper) <= i {
			t.upper = append(t.upper, nil)
		}
		t.upper[i] = append(t.upper[i], n.hash)
	}
	t.mu.Unlock()
}

func (t *tree) root() Hash {
	if t.rng.End() == 0 {
		return Hash(hasher.EmptyRoot())
	}
	r, err := t.rng.GetRootHash(nil)
	if err != nil {
		panic("compact range root: " + err.Error())
	}
	return Hash(r)
}

// node returns the hash of a complete node.
func (t *tree) node(id compactNodeID) (Hash, error) {
	if id.Level == 0 {
		loc, err := t.flat.locator(id.Index)
		return LeafHash(loc.id), err
	}
	if id.Level >= cacheLevel {
		t.mu.RLock()
		i := int(id.Level - cacheLevel)
		if i < len(t.upper) && id.Index < uint64(len(t.upper[i])) {
			h := t.upper[i][id.Index]
			t.mu.RUnlock()
			return h, nil
		}
		t.mu.RUnlock()
	}
	return t.flat.node(id)
}

func (t *tree) nodes(ids []compactNodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := t.node(id)
		if err != nil {
			return nil, err
		}
		out[i] = h[:]
	}
	return out, nil
}

// rootAt computes the root of the tree's first size leaves.
func (t *tree) rootAt(size uint64) (Hash, error) {
	if size == 0 {
		return Hash(hasher.EmptyRoot()), nil
	}
	hashes, err := t.nodes(compact.RangeNodes(0, size, nil))
	if err != nil {
		return Hash{}, err
	}
	r := hashes[len(hashes)-1]
	for i := len(hashes) - 2; i >= 0; i-- {
		r = hasher.HashChildren(hashes[i], r)
	}
	return Hash(r), nil
}

func (t *tree) build(n proof.Nodes) ([][]byte, error) {
	hashes, err := t.nodes(n.IDs)
	if err != nil {
		return nil, err
	}
	return n.Rehash(hashes, hasher.HashChildren)
}

// RootAt returns the Merkle root of the chain's first size records.
func (s *Store) RootAt(size uint64) (Hash, error) {
	if err := s.enter(); err != nil {
		return Hash{}, err
	}
	defer s.exit()
	head := s.Head()
	if size > head.Size {
		return Hash{}, fmt.Errorf("%w: size %d beyond chain size %d", ErrNotFound, size, head.Size)
	}
	if size == head.Size {
		return head.Root, nil
	}
	return s.tree.rootAt(size)
}

// InclusionProof proves that the record at height index is in the tree of
// the given size (RFC 6962 audit path, leaf to root).
func (s *Store) InclusionProof(index, size uint64) ([][]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	if size > s.Count() {
		return nil, fmt.Errorf("%w: size %d beyond chain size %d", ErrNotFound, size, s.Count())
	}
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return s.tree.build(n)
}

// ConsistencyProof proves that the tree of size2 extends the tree of size1.
func (s *Store) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	if size2 > s.Count() {
		return nil, fmt.Errorf("%w: size %d beyond chain size %d", ErrNotFound, size2, s.Count())
	}
	n, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return s.tree.build(n)
}

// VerifyInclusion checks an inclusion proof for id at index in a tree of the
// given size and root. It needs nothing but its arguments.
func VerifyInclusion(id ID, index, size uint64, p [][]byte, root Hash) error {
	leaf := LeafHash(id)
	return proof.VerifyInclusion(hasher, index, size, leaf[:], p, root[:])
}

// VerifyConsistency checks a consistency proof between two roots.
func VerifyConsistency(size1, size2 uint64, p [][]byte, root1, root2 Hash) error {
	return proof.VerifyConsistency(hasher, size1, size2, p, root1[:], root2[:])
}
