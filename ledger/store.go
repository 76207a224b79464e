package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/fxamacker/cbor/v2"
)

// Key prefixes of the Badger keyspace (docs/FORMAT.md §12).
const (
	prefixEntry  = 'h' // 'h' height(8, BE) -> locator (entry.go)
	prefixIndex  = 'i' // 'i' id(32)        -> height(8, BE)
	keyState     = 's' // 's'               -> CBOR [size, link, segment, offset]
	keyGenesis   = 'g' // 'g'               -> genesis hash(32)
	keyFormat    = 'f' // 'f'               -> format version (uint8)
	formatV1     = 1
	maxSourceLen = 128
)

// Options configure a Store. The zero value of each field means its default.
type Options struct {
	// Dir holds the segments and the Badger index. Required.
	Dir string
	// Genesis of the network; its hash is stored on creation and checked on
	// every open. Required.
	Genesis *Genesis
	// Logger receives the store's and Badger's logs. Default slog.Default().
	Logger *slog.Logger
	// SegmentSize is the size at which a new segment file is started.
	// Default 256 MiB.
	SegmentSize int64
	// MemTableSize is Badger's memtable size. Default 4 MiB.
	MemTableSize int64
	// IndexCacheSize bounds the memory Badger's table indexes and Bloom
	// filters use. Default 8 MiB.
	IndexCacheSize int64
	// MaxBatch caps the records one group commit takes. Default 4096.
	MaxBatch int
	// IndexSyncInterval is how often Badger's own log is synced. Acknowledged
	// records are durable in the segments before that; this only bounds how
	// much an operating-system crash leaves to replay. Default 10 s.
	IndexSyncInterval time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = 256 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = int64(tmpEnv("TMP_MT", 4)) << 20
	}
	if o.IndexCacheSize == 0 {
		o.IndexCacheSize = 8 << 20
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 4096
	}
	if o.IndexSyncInterval == 0 {
		o.IndexSyncInterval = 10 * time.Second
	}
}

func (o *Options) validate() error {
	if o.Dir == "" {
		return errors.New("store: Dir is required")
	}
	if o.Genesis == nil {
		return errors.New("store: Genesis is required")
	}
	if o.SegmentSize < 1<<20 || o.MemTableSize < 1<<20 || o.IndexCacheSize < 0 || o.MaxBatch < 1 || o.IndexSyncInterval < 0 {
		return errors.New("store: options out of range")
	}
	return o.Genesis.Validate()
}

// Pending is a record waiting to be appended.
type Pending struct {
	Record      *SignedRecord
	Replication uint8  // hops from the origin; 0 for records made here
	Source      string // where it came from: "local", "import", a peer id...
}

// Result is the outcome of one appended record: its entry, or ErrExists with
// the entry it already had, or another error.
type Result struct {
	Entry Entry
	Err   error
}

type appendReq struct {
	items   []Pending
	results []Result
	done    chan struct{}
}

// Store is the chain: record entries in append-only segment files, indexed
// by height and by id in Badger, with the Merkle tree's nodes kept in the
// height index. All methods are safe for concurrent use.
type Store struct {
	db      *badger.DB
	segs    *segmentSet
	opts    Options
	log     *slog.Logger
	tree    *tree
	filter  *idFilter
	reqs    chan *appendReq
	closing chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	mu     sync.RWMutex
	head   Head
	failed error // set once a write failed: the store then refuses appends
	end    framePos
}

// Open opens (creating if needed) the chain in opts.Dir, replaying any
// entries the segments hold beyond what the index knows.
func Open(opts Options) (*Store, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := opts.Logger.With("component", "ledger")
	bo := badger.DefaultOptions(filepath.Join(opts.Dir, "index")).
		WithLogger(badgerLogger{log.With("component", "badger")}).
		// The segments are the write-ahead log: Badger need not sync.
		WithSyncWrites(false).
		WithDetectConflicts(false). // one writer: the committer
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(2).
		WithBlockCacheSize(0).
		WithIndexCacheSize(opts.IndexCacheSize).
		WithBaseTableSize(2 << 20).
		WithNumCompactors(2).
		WithNumLevelZeroTables(tmpEnv("TMP_L0", 4)).
		WithNumLevelZeroTablesStall(tmpEnv("TMP_L0", 4) + 8).
		WithNumCompactors(tmpEnv("TMP_NC", 2)).
		WithValueLogFileSize(16 << 20).
		WithValueThreshold(4 << 10). // index values are small; keep them in the tree
		WithCompression(options.None).
		WithMetricsEnabled(false)
	bo.TableSizeMultiplier = 1 // every table BaseTableSize: bounded builder memory
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open chain index %s: %w", opts.Dir, err)
	}
	segs, err := openSegments(filepath.Join(opts.Dir, "segments"), opts.SegmentSize)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open chain segments: %w", err)
	}
	s := &Store{
		db: db, segs: segs, opts: opts, log: log,
		reqs:    make(chan *appendReq),
		closing: make(chan struct{}),
	}
	if err := s.load(); err != nil {
		segs.close()
		db.Close()
		return nil, err
	}
	s.wg.Add(2)
	go s.committer()
	go s.maintain()
	log.Debug("chain opened", "dir", opts.Dir, "size", s.head.Size)
	return s, nil
}

type storedState struct {
	_    struct{} `cbor:",toarray"`
	Size uint64
	Link []byte
	Seg  uint32
	Off  int64
}

// load checks the network, reads the index's state, replays entries the
// segments hold beyond it, and rebuilds the Merkle tree's memory.
func (s *Store) load() error {
	want := s.opts.Genesis.Hash()
	var st storedState
	err := s.db.View(func(txn *badger.Txn) error {
		g, err := getValue(txn, []byte{keyGenesis})
		if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if g != nil && !bytes.Equal(g, want[:]) {
			return fmt.Errorf("%w: store was created for genesis %x, this is network %q (%x)",
				ErrWrongNetwork, g, s.opts.Genesis.Network, want)
		}
		v, err := getValue(txn, []byte{keyState})
		if errors.Is(err, badger.ErrKeyNotFound) {
			st.Link = make([]byte, 32)
			return nil
		}
		if err != nil {
			return err
		}
		if err := cbor.Unmarshal(v, &st); err != nil || len(st.Link) != 32 {
			return fmt.Errorf("chain state is corrupt (%v)", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open chain store: %w", err)
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte{keyGenesis}, want[:]); err != nil {
			return err
		}
		return txn.Set([]byte{keyFormat}, []byte{formatV1})
	})
	if err != nil {
		return fmt.Errorf("open chain store: %w", err)
	}
	s.tree = newTree(s.db)
	if err := s.tree.load(st.Size); err != nil {
		return fmt.Errorf("open chain store: merkle tree: %w", err)
	}
	s.head = Head{Size: st.Size, Link: Hash(st.Link), Root: s.tree.root()}
	s.end = framePos{seg: st.Seg, off: st.Off}
	if err := s.replay(); err != nil {
		return fmt.Errorf("open chain store: %w", err)
	}
	if s.filter, err = loadFilter(s.db, s.head.Size); err != nil {
		return fmt.Errorf("open chain store: id filter: %w", err)
	}
	return nil
}

// replay indexes the entries that reached the segments but not the index
// (the index is synced lazily), and cuts off a torn tail that was never
// acknowledged.
func (s *Store) replay() error {
	var (
		batch   []kv
		n       int
		replErr error
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		st, _ := cbor.Marshal(storedState{Size: s.head.Size, Link: s.head.Link[:], Seg: s.end.seg, Off: s.end.off})
		txn := s.db.NewTransaction(true)
		defer txn.Discard()
		for _, e := range append(batch, kv{[]byte{keyState}, st}) {
			if err := txn.Set(e.k, e.v); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return txn.Commit()
	}
	end, err := s.segs.scan(s.end.seg, s.end.off, func(p framePos, payload []byte) error {
		e, nodes, _, err := decodeEntry(payload)
		if err != nil {
			return err
		}
		if e.Height != s.head.Size || NextLink(s.head.Link, e.ID) != e.Link {
			return fmt.Errorf("segment %s at %d holds entry %d, expected %d following link %s", segName(p.seg), p.off, e.Height, s.head.Size, s.head.Link)
		}
		var staged []Hash
		s.tree.stage(e.ID, func(id compactNodeID, h []byte) {
			if id.Level > 0 {
				staged = append(staged, Hash(h))
			}
		})
		if !equalHashes(staged, nodes) {
			return fmt.Errorf("segment %s at %d: entry %d carries Merkle nodes that do not match the tree", segName(p.seg), p.off, e.Height)
		}
		loc := locator{id: e.ID, pos: p, nodes: nodes}
		batch = append(batch, kv{entryKey(e.Height), loc.encode()}, kv{indexKey(e.ID), heightBytes(e.Height)})
		s.tree.publish(nodeWrites(e.Height, nodes))
		s.head.Size++
		s.head.Link = e.Link
		s.end = framePos{seg: p.seg, off: p.end()}
		n++
		if len(batch) >= 2048 {
			return flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, errTorn) {
		replErr = err
	}
	if ferr := flush(); ferr != nil {
		return ferr
	}
	if replErr != nil {
		return replErr
	}
	if errors.Is(err, errTorn) {
		// Only an append that was never acknowledged can be cut short: its
		// frames were not yet synced when the node stopped.
		s.log.Warn("discarding a torn, unacknowledged tail of the chain", "segment", segName(end.seg), "offset", end.off, "err", err)
		if err := s.segs.truncate(end.seg, end.off); err != nil {
			return fmt.Errorf("truncate torn tail: %w", err)
		}
		end.n = 0
	}
	s.end = framePos{seg: end.seg, off: end.off}
	if n > 0 {
		s.log.Info("replayed entries the index had not stored", "entries", n, "size", s.head.Size)
		if err := s.db.Sync(); err != nil {
			return err
		}
	}
	s.head.Root = s.tree.root()
	return nil
}

func equalHashes(a, b []Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// nodeWrites names the nodes entry h completes, lowest level first.
func nodeWrites(h uint64, nodes []Hash) []nodeWrite {
	out := make([]nodeWrite, len(nodes))
	for i, n := range nodes {
		level := uint(i + 1)
		out[i] = nodeWrite{id: compactNodeID{Level: level, Index: (h+1)>>level - 1}, hash: n}
	}
	return out
}

// Close stops accepting appends, finishes the ones already accepted, and
// closes the index and the segments.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closing)
		s.wg.Wait()
		err = s.db.Close()
		if serr := s.segs.close(); err == nil {
			err = serr
		}
	})
	return err
}

// Head returns the chain's current tip.
func (s *Store) Head() Head {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.head
}

// Count returns the number of records in the chain.
func (s *Store) Count() uint64 { return s.Head().Size }

// Genesis returns the network's genesis.
func (s *Store) Genesis() *Genesis { return s.opts.Genesis }

// Append writes one record durably and returns its entry. A record the
// chain already holds gives ErrExists and its existing entry. The caller
// must have validated the record (Validator.Check).
func (s *Store) Append(ctx context.Context, rec *SignedRecord, replication uint8, source string) (Entry, error) {
	res, err := s.AppendBatch(ctx, []Pending{{Record: rec, Replication: replication, Source: source}})
	if err != nil {
		return Entry{}, err
	}
	return res[0].Entry, res[0].Err
}

// AppendBatch writes records in order, durably, and returns one Result per
// record. The error is for the batch as a whole (closed store, cancelled
// before it was queued).
func (s *Store) AppendBatch(ctx context.Context, items []Pending) ([]Result, error) {
	t, err := s.Submit(ctx, items)
	if err != nil {
		return nil, err
	}
	return t.Wait(), nil
}

// Ticket is a submitted batch of appends.
type Ticket struct{ req *appendReq }

// Wait blocks until every record of the batch is on disk (or failed) and
// returns their results.
func (t *Ticket) Wait() []Result {
	<-t.req.done
	return t.req.results
}

// Submit queues records for appending and returns without waiting for them
// to reach the disk, so a caller with a stream of batches (an import, a
// peer catching up) can prepare the next batch while this one is written.
// Batches are appended in the order they are submitted.
func (s *Store) Submit(ctx context.Context, items []Pending) (*Ticket, error) {
	for _, it := range items {
		if it.Record == nil || it.Record.raw == nil {
			return nil, errors.New("append: record was not produced by Sign or DecodeSignedRecord")
		}
		if len(it.Source) > maxSourceLen {
			return nil, fmt.Errorf("append: source longer than %d bytes", maxSourceLen)
		}
	}
	req := &appendReq{items: items, results: make([]Result, len(items)), done: make(chan struct{})}
	select {
	case s.reqs <- req:
		// Once queued the append happens whatever the caller does.
		return &Ticket{req: req}, nil
	case <-s.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// maintain syncs Badger's log from time to time (bounding what a crash
// leaves to replay) and runs its value-log garbage collector.
func (s *Store) maintain() {
	defer s.wg.Done()
	if s.opts.IndexSyncInterval <= 0 {
		return
	}
	t := time.NewTicker(s.opts.IndexSyncInterval)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-s.closing:
			return
		case <-t.C:
			if err := s.db.Sync(); err != nil {
				s.log.Error("sync index", "err", err)
			}
			if i%60 == 0 {
				for s.db.RunValueLogGC(0.5) == nil {
				}
			}
		}
	}
}

func entryKey(h uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixEntry
	binary.BigEndian.PutUint64(k[1:], h)
	return k
}

func indexKey(id ID) []byte {
	k := make([]byte, 33)
	k[0] = prefixIndex
	copy(k[1:], id[:])
	return k
}

func heightBytes(h uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h)
	return b[:]
}

func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	it, err := txn.Get(key)
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

func tmpEnv(k string, d int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return d
}
