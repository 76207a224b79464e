package ledger

import (
	"github.com/bits-and-blooms/bloom/v3"
	"github.com/dgraph-io/badger/v4"
)

// idFilter answers "might the chain hold this id?" without touching Badger,
// so appending a new record skips the index lookup. False positives only
// cost that lookup. It is a list of Bloom filters of doubling capacity
// (a scalable Bloom filter): the chain can grow without a rebuild, and the
// false-positive rate stays below the sum of the filters' rates (about 2%).
// About 1.2 bytes per record.
type idFilter struct {
	filters []*bloom.BloomFilter
	caps    []uint
	n       uint // ids in the last filter
}

const (
	filterFirstCap = 1 << 16
	filterFPRate   = 0.005
)

func (f *idFilter) add(id ID) {
	if len(f.filters) == 0 || f.n >= f.caps[len(f.caps)-1] {
		c := uint(filterFirstCap)
		if len(f.caps) > 0 {
			c = 2 * f.caps[len(f.caps)-1]
		}
		f.filters = append(f.filters, bloom.NewWithEstimates(c, filterFPRate))
		f.caps = append(f.caps, c)
		f.n = 0
	}
	f.filters[len(f.filters)-1].Add(id[:])
	f.n++
}

func (f *idFilter) mayHave(id ID) bool {
	for _, b := range f.filters {
		if b.Test(id[:]) {
			return true
		}
	}
	return false
}

// loadFilter fills a filter from the id index (keys only) and counts the
// ids.
func loadFilter(db *badger.DB, size uint64) (*idFilter, uint64, error) {
	f := &idFilter{}
	// Size the first filter for the chain as it is, so a large chain does
	// not start with a cascade of small filters.
	if size > filterFirstCap {
		c := uint(size) + uint(size)/2
		f.filters = append(f.filters, bloom.NewWithEstimates(c, filterFPRate))
		f.caps = append(f.caps, c)
	}
	var n uint64
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixIndex}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var id ID
			copy(id[:], it.Item().Key()[1:])
			f.add(id)
			n++
		}
		return nil
	})
	return f, n, err
}
