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
	prefixEntry = 'h' // 'h' height(8, BE)  -> entry
	prefixIndex = 'i' // 'i' id(32)         -> height(8, BE)
	keyState    = 's' // 's'                -> CBOR [size, link]
	keyGenesis  = 'g' // 'g'                -> genesis hash(32)
	keyFormat   = 'f' // 'f'                -> format version (uint8)
	formatV1    = 1
	// Entries (a record and its bookkeeping, a few hundred bytes) go to
	// Badger's value log; the LSM tree keeps only keys, small index values
	// and value pointers, so compactions move about a fifth of the data.
	// The price is a second sync per commit (value log and memtable log);
	// docs/PERFORMANCE.md has the measurements that chose this.
	valueThreshold = 64
	maxSourceLen   = 128
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
	// MemTableSize is Badger's memtable size. Default 8 MiB.
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
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 8 << 20
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
	filter  *idFilter
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
		WithBaseTableSize(2 << 20).
		WithNumCompactors(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(12).
		WithValueThreshold(valueThreshold).
		WithValueLogFileSize(64 << 20).
		WithCompression(options.None).
		WithMetricsEnabled(false)
	bo.TableSizeMultiplier = 1 // every table BaseTableSize: bounded builder memory
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
	s.wg.Add(2)
	go s.committer()
	go s.gcLoop()
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
	if s.filter, err = loadFilter(s.db, size); err != nil {
		return fmt.Errorf("open chain store: id filter: %w", err)
	}
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
// atomic and synced) but are never interleaved with other appends' records.
// The error is for the batch as a whole (closed store, cancelled before it
// was queued).
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

// The committer owns the write side. It stages records into a Badger
// transaction (assigning heights, links and Merkle nodes), hands the
// transaction to Badger to commit and sync, and stages the next one while
// that sync runs. At most one transaction is in flight: the next is sent
// only after the previous one is on disk, so a failed commit can never
// leave a later one on disk above a gap.
type committer struct {
	s        *Store
	filter   *idFilter
	inflight *txnWriter
	// staged ids not yet known to be on disk, for the duplicate check
	pending map[ID]Entry
	// reader looks ids up on disk. It is replaced whenever a transaction
	// lands, so it never misses one whose ids have left pending.
	reader *badger.Txn
	// next height and link to hand out
	size uint64
	link Hash
	cur  *txnWriter
}

// txnWriter is one Badger transaction's worth of records. The writes are
// collected here and only put in a Badger transaction when it is sent:
// Badger makes a new transaction wait until every earlier commit is done,
// which would stall staging behind the sync in flight.
type txnWriter struct {
	writes    []kv
	bytes     int64
	count     int64
	results   []*Result
	ids       []ID
	nodes     []nodeWrite
	finishing []*appendReq // requests whose last record is in this txn
	head      Head         // head once this txn is committed
	done      chan struct{}
	err       error
}

type kv struct{ k, v []byte }

type nodeWrite struct {
	id   compact.NodeID
	hash Hash
}

func (s *Store) committer() {
	defer s.wg.Done()
	c := &committer{s: s, filter: s.filter, pending: map[ID]Entry{}}
	c.reset()
	for {
		// Nothing on its way to disk and something staged: send it now.
		// While a transaction syncs, new requests pile into the next one;
		// that is the group commit.
		if c.inflight == nil && c.staged() {
			if err := c.send(); err != nil {
				c.fail(err)
			}
			continue
		}
		var synced <-chan struct{}
		if c.inflight != nil {
			synced = c.inflight.done
		}
		reqs := s.reqs
		if len(c.cur.results) >= s.opts.MaxBatch {
			reqs = nil // full: wait for the sync before taking more
		}
		select {
		case r := <-reqs:
			c.stage(r)
		case <-synced:
			if err := c.wait(); err != nil {
				c.fail(err)
			}
		case <-s.closing:
			// Take whatever a sender managed to hand over, write it, stop.
			for {
				select {
				case r := <-s.reqs:
					c.stage(r)
					continue
				default:
				}
				break
			}
			if c.staged() {
				if err := c.send(); err != nil {
					c.fail(err)
				}
			}
			c.wait()
			c.dropReader()
			return
		}
	}
}

func (c *committer) staged() bool {
	return len(c.cur.results) > 0 || len(c.cur.finishing) > 0
}

// stage adds a request's records to the current transaction. A failure
// fails everything not yet on its way to disk.
func (c *committer) stage(req *appendReq) {
	var failed error
	for i := range req.items {
		if failed == nil {
			failed = c.add(&req.items[i], &req.results[i])
		}
		if failed != nil {
			req.results[i] = Result{Err: failed}
		}
	}
	c.cur.finishing = append(c.cur.finishing, req)
	if failed != nil {
		c.fail(failed)
	}
}

// reset takes the write position from the published head: at start, and
// after a failed commit.
func (c *committer) reset() {
	h := c.s.Head()
	c.size, c.link = h.Size, h.Link
	clear(c.pending)
	c.newReader()
	c.cur = c.begin()
}

func (c *committer) dropReader() {
	if c.reader != nil {
		c.reader.Discard()
		c.reader = nil
	}
}

func (c *committer) begin() *txnWriter {
	return &txnWriter{done: make(chan struct{})}
}

// newReader opens the snapshot duplicate checks read. Called only when no
// transaction is in flight, so it does not wait; ids staged after it are in
// pending.
func (c *committer) newReader() {
	c.dropReader()
	c.reader = c.s.db.NewTransaction(false)
}

// fail reports err for everything staged and not yet sent, and rebuilds the
// write position from what is on disk.
func (c *committer) fail(err error) {
	c.s.log.Error("append failed", "err", err)
	w := c.cur
	for _, r := range w.results {
		*r = Result{Err: err}
	}
	for _, req := range w.finishing {
		close(req.done)
	}
	c.wait()
	if terr := c.s.tree.load(c.s.Head().Size); terr != nil {
		c.s.log.Error("reload merkle tree after failed append", "err", terr)
	}
	c.reset()
}

// wait blocks until the in-flight transaction, if any, is on disk and
// returns its error.
func (c *committer) wait() error {
	w := c.inflight
	if w == nil {
		return nil
	}
	<-w.done
	c.inflight = nil
	c.newReader()
	for _, id := range w.ids {
		delete(c.pending, id)
	}
	return w.err
}

// add stages one record. Duplicates (on disk, in flight, or earlier in this
// transaction) get ErrExists and their entry.
func (c *committer) add(p *Pending, res *Result) error {
	rec := p.Record
	if e, ok := c.pending[rec.ID]; ok {
		*res = Result{Entry: e, Err: ErrExists}
		return nil
	}
	if c.filter.mayHave(rec.ID) {
		hv, err := getValue(c.reader, indexKey(rec.ID))
		switch {
		case err == nil:
			e, _, gerr := c.s.getEntryTxn(c.reader, binary.BigEndian.Uint64(hv))
			if gerr != nil {
				return gerr
			}
			*res = Result{Entry: e, Err: ErrExists}
			return nil
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
	}

	e := Entry{
		Height: c.size, ID: rec.ID, Link: NextLink(c.link, rec.ID),
		Replication: p.Replication, Source: p.Source, Received: time.Now().UnixNano(),
	}
	hk, ik := entryKey(e.Height), indexKey(rec.ID)
	var hb [8]byte
	binary.BigEndian.PutUint64(hb[:], e.Height)

	// Keep each record inside one transaction: send the current one first
	// if this record might not fit. Badger counts key+value+2 per entry.
	need := int64(len(hk)+len(ik)+len(rec.raw)+len(e.Source)) + 64*32 + 256
	w := c.cur
	if w.count > 0 && (w.bytes+need > c.s.db.MaxBatchSize()*8/10 || w.count+4 > c.s.db.MaxBatchCount()*8/10) {
		if err := c.send(); err != nil {
			return err
		}
		w = c.cur
	}
	// The leaf completes the Merkle nodes above it that it closes; they are
	// stored in its entry (levels 1 and up, the leaf is recomputed).
	var nodes []Hash
	c.s.tree.stage(rec.ID, func(id compact.NodeID, h []byte) {
		if id.Level > 0 {
			nodes = append(nodes, Hash(h))
			w.nodes = append(w.nodes, nodeWrite{id: id, hash: Hash(h)})
		}
	})
	val := encodeEntry(&e, nodes, rec)
	w.writes = append(w.writes, kv{hk, val}, kv{ik, hb[:]})
	w.count += 2
	w.bytes += need
	c.size++
	c.link = e.Link
	c.pending[rec.ID] = e
	c.filter.add(rec.ID)
	w.ids = append(w.ids, rec.ID)
	*res = Result{Entry: e}
	w.results = append(w.results, res)
	return nil
}

// send waits for the in-flight transaction, then hands the current one to
// Badger (commit and fsync in Badger's writer) and starts a new one.
func (c *committer) send() error {
	if err := c.wait(); err != nil {
		return err
	}
	w := c.cur
	c.cur = c.begin()
	if len(w.results) == 0 {
		for _, req := range w.finishing {
			close(req.done)
		}
		return nil
	}
	st, err := cbor.Marshal(storedState{Size: c.size, Link: c.link[:]})
	if err != nil {
		return err
	}
	txn := c.s.db.NewTransaction(true)
	for _, e := range append(w.writes, kv{[]byte{keyState}, st}) {
		if err := txn.Set(e.k, e.v); err != nil {
			txn.Discard()
			c.cur = w // let fail() report it to this transaction's callers
			return fmt.Errorf("stage transaction: %w", err)
		}
	}
	w.writes = nil
	w.head = Head{Size: c.size, Link: c.link, Root: c.s.tree.root()}
	c.inflight = w
	txn.CommitWith(func(err error) {
		if err != nil {
			w.err = fmt.Errorf("commit: %w", err)
			for _, r := range w.results {
				*r = Result{Err: w.err}
			}
		} else {
			c.s.tree.publish(w.nodes)
			c.s.mu.Lock()
			c.s.head = w.head
			c.s.mu.Unlock()
		}
		for _, req := range w.finishing {
			close(req.done)
		}
		close(w.done)
	})
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

func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	it, err := txn.Get(key)
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

// Stored entry: CBOR array of 7 [id, link, replication, source, received,
// nodes, envelope]. nodes holds the Merkle nodes (levels 1 and up, lowest
// first) that this entry's leaf completes: node (level l, index i) is in the
// entry at height (i+1)*2^l - 1, position l-1. The id comes first with a
// fixed header, so the Merkle code can read it without decoding the rest.
type storedEntry struct {
	_           struct{} `cbor:",toarray"`
	ID          []byte
	Link        []byte
	Replication uint8
	Source      string
	Received    int64
	Nodes       [][]byte
	Envelope    cbor.RawMessage
}

// encodeEntry writes the stored entry, with the envelope embedded as-is.
// Built by hand because every append pays for it;
// TestEntryEncodingMatchesLibrary checks it against the CBOR library.
func encodeEntry(e *Entry, nodes []Hash, rec *SignedRecord) []byte {
	b := make([]byte, 0, 90+len(e.Source)+34*len(nodes)+len(rec.raw)+70)
	b = append(b, 0x87, 0x58, 0x20)
	b = append(b, e.ID[:]...)
	b = append(b, 0x58, 0x20)
	b = append(b, e.Link[:]...)
	b = appendCBORUint(b, uint64(e.Replication))
	b = appendCBORHead(b, 3, uint64(len(e.Source)))
	b = append(b, e.Source...)
	if e.Received >= 0 {
		b = appendCBORUint(b, uint64(e.Received))
	} else {
		b = appendCBORHead(b, 1, uint64(-(e.Received + 1)))
	}
	b = appendCBORHead(b, 4, uint64(len(nodes)))
	for _, n := range nodes {
		b = append(b, 0x58, 0x20)
		b = append(b, n[:]...)
	}
	b = append(b, 0x82)
	b = append(b, rec.raw...)
	b = append(b, 0x58, byte(len(rec.Signature)))
	return append(b, rec.Signature...)
}

// entryID extracts the id from a stored entry: 0x87 0x58 0x20 then 32 bytes.
func entryID(v []byte) (ID, error) {
	var id ID
	if len(v) < 35 || v[0] != 0x87 || v[1] != 0x58 || v[2] != 0x20 {
		return id, errors.New("stored entry is corrupt")
	}
	copy(id[:], v[3:35])
	return id, nil
}

// decodeEntry returns the entry, the Merkle nodes it stores and the record
// envelope.
func decodeEntry(height uint64, v []byte) (Entry, []Hash, []byte, error) {
	var se storedEntry
	if err := decMode.Unmarshal(v, &se); err != nil {
		return Entry{}, nil, nil, fmt.Errorf("entry %d is corrupt: %w", height, err)
	}
	if len(se.ID) != 32 || len(se.Link) != 32 {
		return Entry{}, nil, nil, fmt.Errorf("entry %d is corrupt: bad id or link length", height)
	}
	e := Entry{Height: height, Replication: se.Replication, Source: se.Source, Received: se.Received}
	copy(e.ID[:], se.ID)
	copy(e.Link[:], se.Link)
	nodes := make([]Hash, len(se.Nodes))
	for i, n := range se.Nodes {
		if len(n) != 32 {
			return Entry{}, nil, nil, fmt.Errorf("entry %d is corrupt: Merkle node of %d bytes", height, len(n))
		}
		copy(nodes[i][:], n)
	}
	return e, nodes, se.Envelope, nil
}
