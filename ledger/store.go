package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/fxamacker/cbor/v2"
	"github.com/transparency-dev/merkle/compact"
)

// Key prefixes of the Badger keyspace (docs/FORMAT.md, "On disk").
const (
	prefixEntry  = 'h' // 'h' height(8, BE)  -> entry
	prefixIndex  = 'i' // 'i' id(32)         -> height(8, BE)
	prefixNode   = 'n' // 'n' level(1) index(8, BE) -> node hash(32), levels >= 1
	keyState     = 's' // 's'                -> CBOR [size, link]
	keyGenesis   = 'g' // 'g'                -> genesis hash(32)
	keyFormat    = 'f' // 'f'                -> format version (uint8)
	formatV1     = 1
	maxSourceLen = 128
)

// Options configure a Store. The zero value of each field means its default.
type Options struct {
	// Dir holds the Badger files. Required.
	Dir string
	// Genesis of the network; its hash is stored on creation and checked on
	// every open. Required.
	Genesis *Genesis
	// Logger receives the store's and Badger's logs. Default slog.Default().
	Logger *slog.Logger
	// MemTableSize is Badger's memtable size. Default 16 MiB.
	MemTableSize int64
	// BlockCacheSize is Badger's block cache. Default 16 MiB.
	BlockCacheSize int64
	// IndexCacheSize bounds the memory table indexes and bloom filters use.
	// Default 16 MiB.
	IndexCacheSize int64
	// MaxBatch caps the records one group commit writes. Default 4096.
	MaxBatch int
	// GCInterval is how often the value-log garbage collector runs.
	// Default 10 minutes.
	GCInterval time.Duration
	// ReadOnly opens without the write side (for verify, show, export on a
	// data directory another process may be using is still not supported:
	// Badger takes a directory lock either way).
	ReadOnly bool
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 16 << 20
	}
	if o.BlockCacheSize == 0 {
		o.BlockCacheSize = 16 << 20
	}
	if o.IndexCacheSize == 0 {
		o.IndexCacheSize = 16 << 20
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 4096
	}
	if o.GCInterval == 0 {
		o.GCInterval = 10 * time.Minute
	}
}

func (o *Options) validate() error {
	if o.Dir == "" {
		return errors.New("store: Dir is required")
	}
	if o.Genesis == nil {
		return errors.New("store: Genesis is required")
	}
	if o.MemTableSize < 1<<20 || o.BlockCacheSize < 0 || o.IndexCacheSize < 0 || o.MaxBatch < 1 || o.GCInterval < 0 {
		return errors.New("store: options out of range")
	}
	return o.Genesis.Validate()
}

// Entry is a record's place in this node's chain. The id and link are
// covered by the Merkle tree and the hash chain; the replication count,
// source and receive time are this node's own bookkeeping.
type Entry struct {
	Height      uint64 `json:"height"`
	ID          ID     `json:"id"`
	Link        Hash   `json:"link"`
	Replication uint8  `json:"replication"`
	Source      string `json:"source"`
	Received    int64  `json:"received"`
}

// Hash is a 32-byte SHA-256 value shown in hex.
type Hash [32]byte

func (h Hash) String() string                { return ID(h).String() }
func (h Hash) MarshalText() ([]byte, error)  { return ID(h).MarshalText() }
func (h *Hash) UnmarshalText(b []byte) error { return (*ID)(h).UnmarshalText(b) }

// Head describes the chain's tip: its size, the link of the last entry and
// the Merkle root over all ids.
type Head struct {
	Size uint64 `json:"size"`
	Link Hash   `json:"link"`
	Root Hash   `json:"root"`
}

// NextLink is the hash chain step: SHA-256(prev || id).
func NextLink(prev Hash, id ID) Hash {
	var b [64]byte
	copy(b[:32], prev[:])
	copy(b[32:], id[:])
	return sha256.Sum256(b[:])
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

// Store is the chain on Badger. All methods are safe for concurrent use.
type Store struct {
	db      *badger.DB
	opts    Options
	log     *slog.Logger
	tree    *tree
	reqs    chan *appendReq
	closing chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	mu   sync.RWMutex
	head Head
}

// Open opens (creating if needed) the chain in opts.Dir.
func Open(opts Options) (*Store, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := opts.Logger.With("component", "ledger")
	bo := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{log.With("component", "badger")}).
		WithSyncWrites(true).
		WithDetectConflicts(false). // one writer: the committer
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(3).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(opts.IndexCacheSize).
		WithBaseTableSize(4 << 20).
		WithNumCompactors(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(12).
		WithValueThreshold(4 << 10).
		WithValueLogFileSize(64 << 20).
		WithCompression(options.Snappy).
		WithMetricsEnabled(false).
		WithReadOnly(opts.ReadOnly)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open chain store %s: %w", opts.Dir, err)
	}
	s := &Store{
		db: db, opts: opts, log: log,
		reqs:    make(chan *appendReq),
		closing: make(chan struct{}),
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if !opts.ReadOnly {
		s.wg.Add(2)
		go s.committer()
		go s.gcLoop()
	}
	log.Debug("chain opened", "dir", opts.Dir, "size", s.head.Size)
	return s, nil
}

// load reads the stored state, checks the network, and rebuilds the Merkle
// tree's right border and cached upper levels.
func (s *Store) load() error {
	want := s.opts.Genesis.Hash()
	var size uint64
	var link Hash
	err := s.db.View(func(txn *badger.Txn) error {
		g, err := getValue(txn, []byte{keyGenesis})
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			g = nil
		case err != nil:
			return err
		}
		if g != nil && !bytes.Equal(g, want[:]) {
			return fmt.Errorf("%w: store was created for genesis %x, this is network %q (%x)",
				ErrWrongNetwork, g, s.opts.Genesis.Network, want)
		}
		st, err := getValue(txn, []byte{keyState})
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var state storedState
		if err := cbor.Unmarshal(st, &state); err != nil || len(state.Link) != 32 {
			return fmt.Errorf("chain state is corrupt: %v", err)
		}
		size = state.Size
		copy(link[:], state.Link)
		return nil
	})
	if err != nil {
		return fmt.Errorf("open chain store: %w", err)
	}
	if !s.opts.ReadOnly {
		err := s.db.Update(func(txn *badger.Txn) error {
			if err := txn.Set([]byte{keyGenesis}, want[:]); err != nil {
				return err
			}
			return txn.Set([]byte{keyFormat}, []byte{formatV1})
		})
		if err != nil {
			return fmt.Errorf("open chain store: %w", err)
		}
	}
	s.tree = newTree(s.db)
	if err := s.tree.load(size); err != nil {
		return fmt.Errorf("open chain store: merkle tree: %w", err)
	}
	if size > 0 {
		e, _, err := s.getEntry(size - 1)
		if err != nil {
			return fmt.Errorf("open chain store: last entry: %w", err)
		}
		if e.Link != link {
			return fmt.Errorf("open chain store: state link %s differs from link %s of entry %d; run 'pyvnode chain verify'", link, e.Link, size-1)
		}
	}
	s.head = Head{Size: size, Link: link, Root: s.tree.root()}
	return nil
}

type storedState struct {
	_    struct{} `cbor:",toarray"`
	Size uint64
	Link []byte
}

// Close stops accepting appends, finishes the ones already accepted, and
// closes the database.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closing)
		s.wg.Wait()
		err = s.db.Close()
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
// record. The records may be split over several Badger transactions (each
// atomic and synced) but are never interleaved with other appends' records
// out of order. The error is for the batch as a whole (closed store,
// cancelled before it was queued).
func (s *Store) AppendBatch(ctx context.Context, items []Pending) ([]Result, error) {
	if s.opts.ReadOnly {
		return nil, errors.New("store opened read-only")
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
	case <-s.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once queued the append happens whatever the caller does; waiting for
	// it keeps "acknowledged" meaning "on disk".
	<-req.done
	return req.results, nil
}

func (s *Store) committer() {
	defer s.wg.Done()
	for {
		var batch []*appendReq
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-s.closing:
			// Drain whatever a sender managed to hand over, then stop.
			for {
				select {
				case r := <-s.reqs:
					s.commit([]*appendReq{r})
				default:
					return
				}
			}
		}
		n := len(batch[0].items)
	more:
		for n < s.opts.MaxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				n += len(r.items)
			default:
				break more
			}
		}
		s.commit(batch)
	}
}

// txnWriter accumulates the records of one Badger transaction.
type txnWriter struct {
	s       *Store
	txn     *badger.Txn
	bytes   int64
	count   int64
	size    uint64 // chain size after the records staged so far
	link    Hash
	pending []*Result
	nodes   []nodeWrite
	seen    map[ID]Entry
	now     int64
}

type nodeWrite struct {
	id   compact.NodeID
	hash Hash
}

func (s *Store) commit(batch []*appendReq) {
	head := s.Head()
	w := &txnWriter{s: s, size: head.Size, link: head.Link, seen: map[ID]Entry{}, now: time.Now().UnixNano()}
	w.begin()
	var failed error
	for _, req := range batch {
		for i := range req.items {
			if failed != nil {
				req.results[i].Err = failed
				continue
			}
			if err := w.add(&req.items[i], &req.results[i]); err != nil {
				failed = err
				req.results[i].Err = err
			}
		}
	}
	if failed == nil {
		failed = w.flush()
	}
	if failed != nil {
		s.log.Error("append failed", "err", failed)
		w.txn.Discard()
		w.fail(failed)
		// The tree's staged right border may be ahead of the disk: rebuild
		// it from what is committed.
		if err := s.tree.load(s.Head().Size); err != nil {
			s.log.Error("reload merkle tree after failed append", "err", err)
		}
	}
	for _, req := range batch {
		close(req.done)
	}
}

func (w *txnWriter) begin() {
	w.txn = w.s.db.NewTransaction(true)
	w.bytes, w.count = 0, 0
	w.pending = w.pending[:0]
	w.nodes = w.nodes[:0]
}

func (w *txnWriter) fail(err error) {
	for _, r := range w.pending {
		r.Err = err
		r.Entry = Entry{}
	}
}

// add stages one record. Duplicates (already in the chain, or earlier in this
// batch) get ErrExists and their entry.
func (w *txnWriter) add(p *Pending, res *Result) error {
	rec := p.Record
	if e, ok := w.seen[rec.ID]; ok {
		res.Entry, res.Err = e, ErrExists
		return nil
	}
	hv, err := getValue(w.txn, indexKey(rec.ID))
	switch {
	case err == nil:
		e, _, gerr := w.s.getEntryTxn(w.txn, binary.BigEndian.Uint64(hv))
		if gerr != nil {
			return gerr
		}
		res.Entry, res.Err = e, ErrExists
		return nil
	case !errors.Is(err, badger.ErrKeyNotFound):
		return err
	}

	env := rec.Encode()
	e := Entry{
		Height: w.size, ID: rec.ID, Link: NextLink(w.link, rec.ID),
		Replication: p.Replication, Source: p.Source, Received: w.now,
	}
	val := encodeEntry(&e, env)
	hk, ik := entryKey(e.Height), indexKey(rec.ID)
	var hb [8]byte
	binary.BigEndian.PutUint64(hb[:], e.Height)

	// Keep each record inside one transaction: flush first if it might not
	// fit. Badger counts key+value+2 per entry; nodes are ~1 per record.
	need := int64(len(hk)+len(val)+len(ik)+8) + 3*(10+32) + 64
	if w.count > 0 && (w.bytes+need > w.s.db.MaxBatchSize()*8/10 || w.count+8 > w.s.db.MaxBatchCount()*8/10) {
		if err := w.flush(); err != nil {
			return err
		}
		w.begin()
	}
	if err := w.txn.Set(hk, val); err != nil {
		return err
	}
	if err := w.txn.Set(ik, hb[:]); err != nil {
		return err
	}
	w.count += 2
	w.bytes += need
	var nodes []nodeWrite
	w.s.tree.stage(rec.ID, func(id compact.NodeID, h []byte) {
		if id.Level > 0 { // leaves are recomputed from the entry's id
			nodes = append(nodes, nodeWrite{id: id, hash: Hash(h)})
		}
	})
	for _, n := range nodes {
		if err := w.txn.Set(nodeKey(n.id), n.hash[:]); err != nil {
			return err
		}
		w.count++
	}
	w.nodes = append(w.nodes, nodes...)
	w.size++
	w.link = e.Link
	w.seen[rec.ID] = e
	res.Entry = e
	w.pending = append(w.pending, res)
	return nil
}

// flush writes the state key, commits (one fsync) and publishes the new head.
func (w *txnWriter) flush() error {
	if len(w.pending) == 0 {
		w.txn.Discard()
		return nil
	}
	st, err := cbor.Marshal(storedState{Size: w.size, Link: w.link[:]})
	if err != nil {
		return err
	}
	if err := w.txn.Set([]byte{keyState}, st); err != nil {
		return err
	}
	if err := w.txn.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	root := w.s.tree.publish(w.nodes, w.size)
	w.s.mu.Lock()
	w.s.head = Head{Size: w.size, Link: w.link, Root: root}
	w.s.mu.Unlock()
	w.pending = w.pending[:0]
	return nil
}

func (s *Store) gcLoop() {
	defer s.wg.Done()
	if s.opts.GCInterval <= 0 {
		return
	}
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			runs := 0
			for s.db.RunValueLogGC(0.5) == nil {
				runs++
			}
			s.log.Debug("value log gc", "rewritten_files", runs)
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

func nodeKey(id compact.NodeID) []byte {
	k := make([]byte, 10)
	k[0] = prefixNode
	k[1] = byte(id.Level)
	binary.BigEndian.PutUint64(k[2:], id.Index)
	return k
}

func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	it, err := txn.Get(key)
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

// Stored entry: CBOR array of 6 [id, link, replication, source, received,
// envelope]. The id comes first with a fixed header, so the Merkle code can
// read it without decoding the rest.
type storedEntry struct {
	_           struct{} `cbor:",toarray"`
	ID          []byte
	Link        []byte
	Replication uint8
	Source      string
	Received    int64
	Envelope    cbor.RawMessage
}

func encodeEntry(e *Entry, env []byte) []byte {
	b, err := encMode.Marshal(storedEntry{
		ID: e.ID[:], Link: e.Link[:], Replication: e.Replication,
		Source: e.Source, Received: e.Received, Envelope: env,
	})
	if err != nil {
		panic("encode entry: " + err.Error()) // only fixed-shape fields
	}
	return b
}

// entryID extracts the id from a stored entry: 0x86 0x58 0x20 then 32 bytes.
func entryID(v []byte) (ID, error) {
	var id ID
	if len(v) < 35 || v[0] != 0x86 || v[1] != 0x58 || v[2] != 0x20 {
		return id, errors.New("stored entry is corrupt")
	}
	copy(id[:], v[3:35])
	return id, nil
}

func decodeEntry(height uint64, v []byte) (Entry, []byte, error) {
	var se storedEntry
	if err := decMode.Unmarshal(v, &se); err != nil {
		return Entry{}, nil, fmt.Errorf("entry %d is corrupt: %w", height, err)
	}
	if len(se.ID) != 32 || len(se.Link) != 32 {
		return Entry{}, nil, fmt.Errorf("entry %d is corrupt: bad id or link length", height)
	}
	e := Entry{Height: height, Replication: se.Replication, Source: se.Source, Received: se.Received}
	copy(e.ID[:], se.ID)
	copy(e.Link[:], se.Link)
	return e, se.Envelope, nil
}
