package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/fxamacker/cbor/v2"
)

// Key prefixes of the Badger keyspace (docs/FORMAT.md §12).
const (
	prefixIndex  = 'i' // 'i' id(32)        -> height(8, BE)
	keyState     = 'c' // 'c'               -> checkpoint: CBOR [size, link, segment, offset]
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
	// RepairTail lets Open cut the last segment at its first damaged frame
	// even when valid frames follow it. Without it such a segment is
	// refused: the frames after the damage may have been acknowledged.
	// Only 'pyvnode chain repair' sets it, on an operator's decision.
	RepairTail bool
	// ReadOnly opens the store for reading alone (tallies and reports on a
	// stopped node's data): the id filter that appends need is not built,
	// which saves reading every id at open, and appends are refused.
	ReadOnly bool
	// CheckpointInterval is how often the indexes (Badger and the flat
	// files) are synced and a checkpoint recorded. Acknowledged records are
	// durable in the segments before that; this only bounds how much is
	// replayed from the segments on the next open. Default 5 s.
	CheckpointInterval time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = 256 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 4 << 20
	}
	if o.IndexCacheSize == 0 {
		o.IndexCacheSize = 8 << 20
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 4096
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 5 * time.Second
	}
}

func (o *Options) validate() error {
	if o.Dir == "" {
		return errors.New("store: Dir is required")
	}
	if o.Genesis == nil {
		return errors.New("store: Genesis is required")
	}
	if o.SegmentSize < 1<<20 || o.MemTableSize < 1<<20 || o.IndexCacheSize < 0 || o.MaxBatch < 1 || o.CheckpointInterval < 0 {
		return errors.New("store: options out of range")
	}
	return o.Genesis.Validate()
}

// Pending is a record waiting to be appended.
type Pending struct {
	Record      *SignedRecord
	Replication uint8  // hand-overs between nodes: 0 for records made here, the sender's count + 1 for a received one (docs/REPLICATION.md)
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

// Store is the chain: record entries in append-only segment files, a flat
// height index and Merkle node file beside them, and the id index in
// Badger. All methods are safe for concurrent use.
type Store struct {
	db      *badger.DB
	segs    *segmentSet
	flat    *flatIndex
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

	stats storeStats

	// Readers in progress, so Close waits for them instead of closing
	// files under them.
	life    sync.Mutex
	lifeC   *sync.Cond
	readers int
	closed  bool
}

// enter registers a reader; it fails once the store is closing.
func (s *Store) enter() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.readers++
	return nil
}

func (s *Store) exit() {
	s.life.Lock()
	s.readers--
	if s.readers == 0 {
		s.lifeC.Broadcast()
	}
	s.life.Unlock()
}

// fail stops the store taking appends after a write error.
func (s *Store) fail(err error) {
	s.mu.Lock()
	if s.failed == nil {
		s.failed = fmt.Errorf("%w: %v", ErrFailed, err)
		s.log.Error("chain store write failed; refusing further appends until restart", "err", err)
	}
	s.mu.Unlock()
}

func (s *Store) failure() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.failed
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
		WithNumLevelZeroTables(8).
		WithNumLevelZeroTablesStall(16).
		WithValueLogFileSize(16 << 20).
		WithValueThreshold(1 << 10). // index values are 8 bytes; keep them in the tree
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
	flat, err := openFlat(opts.Dir)
	if err != nil {
		segs.close()
		db.Close()
		return nil, fmt.Errorf("open chain index: %w", err)
	}
	s := &Store{
		db: db, segs: segs, flat: flat, opts: opts, log: log,
		reqs:    make(chan *appendReq),
		closing: make(chan struct{}),
	}
	s.lifeC = sync.NewCond(&s.life)
	if err := s.load(); err != nil {
		flat.close()
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

// load checks the network, reads the last checkpoint, replays the entries
// the segments hold past it, and rebuilds the Merkle tree's memory.
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
			return fmt.Errorf("chain checkpoint is corrupt (%v)", err)
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
	s.tree = newTree(s.flat)
	if ok, why := s.flat.covers(st.Size); !ok {
		s.log.Warn("rebuilding the chain's indexes from the segments", "reason", why)
		return s.rebuild()
	}
	// Whatever the flat files hold past the checkpoint may be torn by a
	// crash; replay rewrites it from the segments.
	if err := s.flat.truncate(st.Size); err != nil {
		return fmt.Errorf("open chain store: %w", err)
	}
	if err := s.tree.load(st.Size); err != nil {
		return fmt.Errorf("open chain store: merkle tree: %w", err)
	}
	s.head = Head{Size: st.Size, Link: Hash(st.Link), Root: s.tree.root()}
	s.end = framePos{seg: st.Seg, off: st.Off}
	if err := s.replay(); err != nil {
		if errors.Is(err, errDamaged) {
			return fmt.Errorf("open chain store: %w; frames after the damage may hold acknowledged records, so nothing was cut: restore the segment from a backup or another node's export, or run 'pyvnode chain repair' to cut the chain at the damage", err)
		}
		return fmt.Errorf("open chain store: %w", err)
	}
	if s.opts.ReadOnly {
		return nil
	}
	var ids uint64
	if s.filter, ids, err = loadFilter(s.db, s.head.Size); err != nil {
		return fmt.Errorf("open chain store: id filter: %w", err)
	}
	if ids != s.head.Size {
		// Badger does not sync a memtable it has set aside for flushing, so
		// a power loss can take id keys a checkpoint already counted.
		s.log.Warn("rebuilding the chain's indexes from the segments",
			"reason", fmt.Sprintf("the id index holds %d ids for %d records", ids, s.head.Size))
		return s.rebuild()
	}
	return nil
}

// rebuild discards every index and replays all segments from the start.
func (s *Store) rebuild() error {
	if err := s.db.DropPrefix([]byte{prefixIndex}, []byte{keyState}); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := s.flat.truncate(0); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	s.tree = newTree(s.flat)
	if err := s.tree.load(0); err != nil {
		return err
	}
	s.head = Head{Root: s.tree.root()}
	s.end = framePos{}
	if err := s.replay(); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	var ids uint64
	var err error
	if s.filter, ids, err = loadFilter(s.db, s.head.Size); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if ids != s.head.Size {
		return fmt.Errorf("rebuild: the segments hold %d records but %d distinct ids: run 'pyvnode chain verify'", s.head.Size, ids)
	}
	return nil
}

// replay re-indexes the entries the segments hold past the checkpoint, and
// cuts off a torn tail that was never acknowledged.
func (s *Store) replay() error {
	var (
		keys    []kv
		locs    []byte
		nodes   []byte
		from    = s.head.Size
		n       int
		replErr error
	)
	flush := func() error {
		if len(locs) == 0 {
			return nil
		}
		if err := s.flat.write(from, locs, nodesBefore(from), nodes); err != nil {
			return err
		}
		txn := s.db.NewTransaction(true)
		defer txn.Discard()
		for _, e := range keys {
			if err := txn.Set(e.k, e.v); err != nil {
				return err
			}
		}
		if err := txn.Commit(); err != nil {
			return err
		}
		keys, locs, nodes = keys[:0], locs[:0], nodes[:0]
		from = s.head.Size
		return nil
	}
	end, err := s.segs.scan(s.end.seg, s.end.off, func(p framePos, payload []byte) error {
		e, enodes, _, err := decodeEntry(payload)
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
		if !equalHashes(staged, enodes) {
			return fmt.Errorf("segment %s at %d: entry %d carries Merkle nodes that do not match the tree", segName(p.seg), p.off, e.Height)
		}
		loc := locator{id: e.ID, pos: p}
		locs = append(locs, loc.encode()...)
		for _, h := range enodes {
			nodes = append(nodes, h[:]...)
		}
		keys = append(keys, kv{indexKey(e.ID), heightBytes(e.Height)})
		s.tree.publish(nodeWrites(e.Height, enodes))
		s.head.Size++
		s.head.Link = e.Link
		s.end = framePos{seg: p.seg, off: p.end()}
		n++
		if len(keys) >= 4096 {
			return flush()
		}
		return nil
	})
	repair := s.opts.RepairTail && errors.Is(err, errDamaged) && end.seg == s.segs.lastSeg()
	if err != nil && !errors.Is(err, errTorn) && !repair {
		replErr = err
	}
	if ferr := flush(); ferr != nil {
		return ferr
	}
	if replErr != nil {
		return replErr
	}
	switch {
	case errors.Is(err, errTorn):
		// Only an append that was never acknowledged can be cut short: its
		// frames were not yet synced when the node stopped.
		s.log.Warn("discarding a torn, unacknowledged tail of the chain", "segment", segName(end.seg), "offset", end.off, "err", err)
	case repair:
		s.log.Warn("repair: cutting the last segment at its first damaged frame", "segment", segName(end.seg), "offset", end.off, "err", err)
	}
	if err != nil {
		if err := s.segs.truncate(end.seg, end.off); err != nil {
			return fmt.Errorf("truncate tail: %w", err)
		}
	}
	// What was replayed may so far be only in the page cache (a killed
	// writer's unsynced frames): make it durable before a checkpoint counts it.
	if err := s.segs.syncFrom(s.end.seg); err != nil {
		return err
	}
	s.end = framePos{seg: end.seg, off: end.off}
	s.head.Root = s.tree.root()
	if n > 0 {
		s.log.Info("replayed entries past the last checkpoint", "entries", n, "size", s.head.Size)
	}
	return s.checkpoint()
}

// checkpoint makes the indexes durable up to the current head and records
// that, so the next open replays only what comes after.
func (s *Store) checkpoint() error {
	s.mu.RLock()
	h, end := s.head, s.end
	s.mu.RUnlock()
	if err := s.flat.sync(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	st, _ := cbor.Marshal(storedState{Size: h.Size, Link: h.Link[:], Seg: end.seg, Off: end.off})
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte{keyState}, st) }); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
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

// Close stops accepting appends, finishes the ones already accepted,
// records a checkpoint and closes the indexes and the segments.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closing)
		s.wg.Wait()
		s.life.Lock()
		s.closed = true
		for s.readers > 0 {
			s.lifeC.Wait()
		}
		s.life.Unlock()
		if s.failure() == nil {
			err = s.checkpoint()
		}
		for _, c := range []func() error{s.db.Close, s.flat.close, s.segs.close} {
			if cerr := c(); err == nil {
				err = cerr
			}
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
	if s.opts.ReadOnly {
		return nil, errors.New("append: the chain was opened read-only")
	}
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

// maintain records a checkpoint from time to time (bounding what the next
// open replays) and runs Badger's value-log garbage collector.
func (s *Store) maintain() {
	defer s.wg.Done()
	if s.opts.CheckpointInterval <= 0 {
		return
	}
	t := time.NewTicker(s.opts.CheckpointInterval)
	defer t.Stop()
	last := s.Count()
	for i := 1; ; i++ {
		select {
		case <-s.closing:
			return
		case <-t.C:
			if n := s.Count(); n != last && s.failure() == nil {
				if err := s.checkpoint(); err != nil {
					// After a failed fsync the kernel may drop the pages and
					// report the next one clean: stop rather than trust it.
					s.fail(err)
				}
				last = n
			}
			if i%120 == 0 {
				for s.db.RunValueLogGC(0.5) == nil {
				}
			}
		}
	}
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
