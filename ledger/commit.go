package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrFailed is returned by every append after a write to disk failed: the
// state of the files is then unknown, so the store stops writing until it
// is reopened (which replays and checks what reached the disk).
var ErrFailed = errors.New("chain store stopped after a write error; restart the node")

// The committer owns the write side. It stages records into a transaction
// (heights, links, Merkle nodes, frames and index keys) and hands the
// transaction to a writer that appends the frames to the segment, syncs
// them, and then commits the index keys to Badger. It stages the next
// transaction while that happens; at most one is in flight, so requests
// that arrive during a sync share the next one (group commit), and a
// failed write never has a later one on disk above it.
type committer struct {
	s        *Store
	filter   *idFilter
	inflight *txnWriter
	cur      *txnWriter
	// ids staged but not yet known to the index, for the duplicate check
	pending map[ID]Entry
	// reader looks ids up in the index. It is replaced whenever a
	// transaction lands, so it never misses one whose ids left pending.
	reader *badger.Txn
	size   uint64
	link   Hash
	pos    framePos // where the next frame goes
	failed error
}

// txnWriter is one transaction's worth of records.
type txnWriter struct {
	chunks    []chunk // frames for the segments
	first     uint64  // height of the first record
	locs      []byte  // their slots in heights.idx
	nodeBytes []byte  // the nodes they complete, for nodes.idx
	writes    []kv    // id index keys for Badger
	bytes     int64
	results   []*Result
	ids       []ID
	nodes     []nodeWrite
	finishing []*appendReq // requests whose last record is in this txn
	head      Head         // head once this txn is committed
	end       framePos     // segment position after it
	done      chan struct{}
	err       error
}

type kv struct{ k, v []byte }

type nodeWrite struct {
	id   compactNodeID
	hash Hash
}

func (s *Store) committer() {
	defer s.wg.Done()
	h := s.Head()
	c := &committer{s: s, filter: s.filter, pending: map[ID]Entry{}, size: h.Size, link: h.Link, pos: s.end}
	c.cur = c.begin()
	c.newReader()
	defer c.dropReader()
	for {
		// Nothing on its way to disk and something staged: send it now.
		// While a transaction syncs, new requests pile into the next one.
		if c.inflight == nil && c.staged() {
			c.send()
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
			c.wait()
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
				c.send()
			}
			c.wait()
			return
		}
	}
}

func (c *committer) begin() *txnWriter { return &txnWriter{done: make(chan struct{})} }

func (c *committer) staged() bool {
	return len(c.cur.results) > 0 || len(c.cur.finishing) > 0
}

func (c *committer) dropReader() {
	if c.reader != nil {
		c.reader.Discard()
		c.reader = nil
	}
}

// newReader opens the snapshot duplicate checks read. Called only when no
// transaction is in flight, so Badger does not make it wait.
func (c *committer) newReader() {
	c.dropReader()
	c.reader = c.s.db.NewTransaction(false)
}

// stage adds a request's records to the current transaction.
func (c *committer) stage(req *appendReq) {
	if err := c.s.failure(); err != nil && c.failed == nil {
		c.fail(err) // a checkpoint failed
	}
	for i := range req.items {
		if c.failed == nil {
			if err := c.add(&req.items[i], &req.results[i]); err != nil {
				c.fail(err)
			}
		}
		if c.failed != nil {
			req.results[i] = Result{Err: c.failed}
		}
	}
	c.cur.finishing = append(c.cur.finishing, req)
}

// fail stops the store: everything staged and every later append fails.
func (c *committer) fail(err error) {
	if c.failed != nil {
		return
	}
	c.s.fail(err)
	c.failed = c.s.failure()
	for _, r := range c.cur.results {
		*r = Result{Err: c.failed}
	}
}

// wait blocks until the in-flight transaction, if any, is done.
func (c *committer) wait() {
	w := c.inflight
	if w == nil {
		return
	}
	<-w.done
	c.inflight = nil
	if w.err != nil {
		c.fail(w.err)
		return
	}
	c.newReader()
	for _, id := range w.ids {
		delete(c.pending, id)
	}
}

// add stages one record. Duplicates (in the index, in flight, or earlier in
// this transaction) get ErrExists and their entry.
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
			if len(hv) != 8 {
				return fmt.Errorf("index entry for %s is corrupt", rec.ID)
			}
			e, _, err := c.s.getEntryTxn(c.reader, binary.BigEndian.Uint64(hv))
			if err != nil {
				return err
			}
			*res = Result{Entry: e, Err: ErrExists}
			return nil
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
	}
	w := c.cur
	// Keep the index writes inside one Badger transaction.
	const need = 33 + 8 + 64
	if len(w.results) > 0 && (w.bytes+need > c.s.db.MaxBatchSize()*8/10 || int64(len(w.results)+4) > c.s.db.MaxBatchCount()*8/10) {
		c.send()
		if c.failed != nil {
			return c.failed
		}
		w = c.cur
	}

	e := Entry{
		Height: c.size, ID: rec.ID, Link: NextLink(c.link, rec.ID),
		Replication: p.Replication, Source: p.Source, Received: time.Now().UnixNano(),
	}
	// The leaf completes the Merkle nodes above it that it closes; they go
	// into its entry (levels 1 and up; the leaf is recomputed from the id).
	var nodes []Hash
	c.s.tree.stage(rec.ID, func(id compactNodeID, h []byte) {
		if id.Level > 0 {
			nodes = append(nodes, Hash(h))
			w.nodes = append(w.nodes, nodeWrite{id: id, hash: Hash(h)})
		}
	})
	payload := encodeEntry(&e, nodes, rec)
	frameLen := int64(frameHeaderLen + len(payload))
	if c.pos.off > 0 && c.pos.off+frameLen > c.s.opts.SegmentSize {
		c.pos = framePos{seg: c.pos.seg + 1}
	}
	pos := framePos{seg: c.pos.seg, off: c.pos.off, n: uint32(len(payload))}
	if n := len(w.chunks); n > 0 && w.chunks[n-1].seg == pos.seg {
		w.chunks[n-1].data = appendFrame(w.chunks[n-1].data, payload)
	} else {
		w.chunks = append(w.chunks, chunk{seg: pos.seg, off: pos.off, data: appendFrame(nil, payload)})
	}
	c.pos.off += frameLen
	if len(w.results) == 0 {
		w.first = e.Height
	}
	loc := locator{id: rec.ID, pos: pos}
	w.locs = append(w.locs, make([]byte, locatorSize)...)
	loc.put(w.locs[len(w.locs)-locatorSize:])
	for _, n := range nodes {
		w.nodeBytes = append(w.nodeBytes, n[:]...)
	}
	w.writes = append(w.writes, kv{indexKey(rec.ID), heightBytes(e.Height)})
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
// a writer and starts a new one.
func (c *committer) send() {
	c.wait()
	w := c.cur
	c.cur = c.begin()
	if c.failed != nil {
		for _, r := range w.results {
			*r = Result{Err: c.failed}
		}
	}
	if c.failed != nil || len(w.results) == 0 {
		for _, req := range w.finishing {
			c.s.finish(req)
		}
		return
	}
	w.head = Head{Size: c.size, Link: c.link, Root: c.s.tree.root()}
	w.end = c.pos
	c.inflight = w
	go c.s.write(w)
}

// write makes one transaction durable: frames to the segments and synced,
// then the flat indexes and the id index (not synced: a checkpoint does
// that, and an open replays what came after it). The records are
// acknowledged only after all three.
func (s *Store) write(w *txnWriter) {
	finish := func(err error) {
		if err != nil {
			w.err = err
			for _, r := range w.results {
				*r = Result{Err: fmt.Errorf("%w: %v", ErrFailed, err)}
			}
		} else {
			s.tree.publish(w.nodes)
			s.mu.Lock()
			s.head = w.head
			s.end = w.end
			s.mu.Unlock()
		}
		for _, req := range w.finishing {
			s.finish(req)
		}
		close(w.done)
	}
	if err := s.segs.write(w.chunks); err != nil {
		finish(err)
		return
	}
	if err := s.flat.write(w.first, w.locs, nodesBefore(w.first), w.nodeBytes); err != nil {
		finish(err)
		return
	}
	txn := s.db.NewTransaction(true)
	for _, e := range w.writes {
		if err := txn.Set(e.k, e.v); err != nil {
			txn.Discard()
			finish(fmt.Errorf("index: %w", err))
			return
		}
	}
	txn.CommitWith(func(err error) {
		if err != nil {
			err = fmt.Errorf("index commit: %w", err)
		}
		finish(err)
	})
}
