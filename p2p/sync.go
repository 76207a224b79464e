package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/p2p/recon"
)

// Limits of one reconciliation session. A peer that breaks them is cut
// off; a difference larger than maxSessionIDs is taken up by the next
// session straight away.
const (
	maxSessionIDs     = 100_000 // ids either way, records either way
	maxRounds         = 256
	sessionTimeout    = 2 * time.Minute
	maxInboundPerPeer = 2
	maxInbound        = 32 // sessions peers run with us, all peers together
	appendBatch       = 256
	maxSessionsInARow = 64
)

var errBusy = errors.New("already reconciling with this peer")

// ErrNotReady is returned for a peer that is not connected or has not
// finished the hello exchange.
var ErrNotReady = errors.New("peer not connected (or not of this network)")

// SyncResult is the outcome of reconciling with a peer.
type SyncResult struct {
	Peer     string        `json:"peer" cbor:"peer"`
	Sessions int           `json:"sessions" cbor:"sessions"`
	Rounds   int           `json:"rounds" cbor:"rounds"` // reconciliation messages exchanged
	Sent     int           `json:"sent" cbor:"sent"`
	Received int           `json:"received" cbor:"received"`
	Rejected int           `json:"rejected" cbor:"rejected"`
	BytesOut int           `json:"bytes_out" cbor:"bytes_out"`
	BytesIn  int           `json:"bytes_in" cbor:"bytes_in"`
	Duration time.Duration `json:"duration_ns" cbor:"duration_ns"`
	more     bool
}

func (r *SyncResult) add(o *SyncResult) {
	r.Sessions++
	r.Rounds += o.Rounds
	r.Sent += o.Sent
	r.Received += o.Received
	r.Rejected += o.Rejected
	r.BytesOut += o.BytesOut
	r.BytesIn += o.BytesIn
}

// SyncWith reconciles with a peer now: both sides end up holding the union
// of their records. It runs more sessions while the difference is larger
// than one session takes.
func (n *Network) SyncWith(ctx context.Context, p peer.ID) (*SyncResult, error) {
	n.peersMu.Lock()
	st := n.peers[p]
	switch {
	case st == nil || !st.ready || n.host.Network().Connectedness(p) != network.Connected:
		n.peersMu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNotReady, p)
	case st.syncing:
		n.peersMu.Unlock()
		return nil, errBusy
	}
	st.syncing = true
	n.peersMu.Unlock()

	start := time.Now()
	total := &SyncResult{Peer: p.String()}
	var err error
	for i := 0; i < maxSessionsInARow; i++ {
		var res *SyncResult
		res, err = n.syncSession(ctx, p)
		if res != nil {
			total.add(res)
		}
		if err != nil || !res.more {
			break
		}
	}
	total.Duration = time.Since(start)

	n.peersMu.Lock()
	st.syncing = false
	st.lastSync = time.Now()
	st.in += uint64(total.Received)
	st.out += uint64(total.Sent)
	st.lastErr = ""
	if err != nil {
		st.lastErr = err.Error()
	}
	n.peersMu.Unlock()
	n.logSync(p, total, err, true)
	return total, err
}

func (n *Network) logSync(p peer.ID, r *SyncResult, err error, initiator bool) {
	args := []any{"peer", p.String(), "initiator", initiator, "rounds", r.Rounds, "sent", r.Sent,
		"received", r.Received, "rejected", r.Rejected, "bytes_out", r.BytesOut, "bytes_in", r.BytesIn,
		"ms", r.Duration.Milliseconds()}
	switch {
	case err != nil:
		n.rlog.Info("sync failed", append(args, "err", err)...)
	case r.Sent > 0 || r.Received > 0 || r.Rejected > 0:
		n.rlog.Info("sync", args...)
	default:
		n.rlog.Debug("sync: already in step", args...)
	}
}

func (n *Network) syncSession(ctx context.Context, p peer.ID) (*SyncResult, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	// Never dial here: only the dial loop dials, and only configured peers.
	s, err := n.host.NewStream(network.WithNoDial(sctx, "sync"), p, n.syncProto)
	cancel()
	if err != nil {
		n.stats.SyncFailed.Add(1)
		return nil, fmt.Errorf("open sync stream: %w", err)
	}
	return n.runSync(ctx, s, p, true)
}

// handleSync serves a session a peer started.
func (n *Network) handleSync(s network.Stream) {
	if !n.track() {
		s.Reset()
		return
	}
	defer n.wg.Done()
	p := s.Conn().RemotePeer()
	n.peersMu.Lock()
	st := n.peers[p]
	ready := st != nil && st.ready
	if !ready || st.inbound >= maxInboundPerPeer || n.inbound >= maxInbound {
		n.peersMu.Unlock()
		n.rlog.Debug("sync refused", "peer", p.String(), "ready", ready)
		s.Reset()
		return
	}
	st.inbound++
	n.inbound++
	n.peersMu.Unlock()
	start := time.Now()
	res, err := n.runSync(n.ctx, s, p, false)
	n.peersMu.Lock()
	st.inbound--
	n.inbound--
	if res != nil {
		st.in += uint64(res.Received)
		st.out += uint64(res.Sent)
	}
	n.peersMu.Unlock()
	if res == nil {
		res = &SyncResult{}
	}
	res.Duration = time.Since(start)
	n.logSync(p, res, err, false)
	if err == nil && res.more && n.track() {
		// The difference was larger than one session carries: take up
		// the rest from this side now rather than at the next round.
		go func() {
			defer n.wg.Done()
			if _, err := n.SyncWith(n.ctx, p); err != nil && n.ctx.Err() == nil && !errors.Is(err, errBusy) {
				n.rlog.Info("follow-up sync failed", "peer", p.String(), "err", err)
			}
		}()
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	k, err := c.r.Read(b)
	c.n += k
	return k, err
}

type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(b []byte) (int, error) {
	k, err := c.w.Write(b)
	c.n += k
	return k, err
}

// session is one reconciliation on one stream.
type session struct {
	n      *Network
	peer   peer.ID
	s      network.Stream
	r      *bufio.Reader
	w      *bufio.Writer
	cr     *countingReader
	cw     *countingWriter
	res    *SyncResult
	send   []ledger.ID // records to send: ours the peer lacks, and those it asked for
	queued map[ledger.ID]bool
	asked  int // ids we asked the peer for
}

// runSync runs a session: first the reconciliation proper, turn by turn
// (each side writes only while the other reads, so neither can block the
// other), then both sides send their records at once.
func (n *Network) runSync(ctx context.Context, s network.Stream, p peer.ID, initiator bool) (res *SyncResult, err error) {
	n.stats.SyncSessions.Add(1)
	se := &session{n: n, peer: p, s: s, res: &SyncResult{Peer: p.String()}, queued: map[ledger.ID]bool{}}
	se.cr = &countingReader{r: s}
	se.cw = &countingWriter{w: s}
	se.r = bufio.NewReaderSize(se.cr, 64<<10)
	se.w = bufio.NewWriterSize(se.cw, 64<<10)
	deadline := time.Now().Add(sessionTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	s.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer func() {
		stop()
		se.res.BytesIn, se.res.BytesOut = se.cr.n, se.cw.n
		n.stats.SyncBytesIn.Add(uint64(se.cr.n))
		n.stats.SyncBytesOut.Add(uint64(se.cw.n))
		if err != nil {
			n.stats.SyncFailed.Add(1)
			s.Reset()
		} else {
			s.Close()
		}
		res = se.res
	}()
	if err := se.reconcile(initiator); err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- se.sendRecords() }()
	rerr := se.receiveRecords(ctx)
	if rerr != nil {
		s.Reset() // unblocks the sender
	}
	serr := <-errc
	if rerr != nil {
		return nil, rerr
	}
	if serr != nil {
		return nil, serr
	}
	// Tell the peer its records are stored, and wait to hear the same:
	// when a session ends, both chains hold the union.
	if err := se.write(frameStored, nil); err != nil {
		return nil, err
	}
	if err := se.w.Flush(); err != nil {
		return nil, err
	}
	s.CloseWrite()
	typ, body, _, err := readFrame(se.r, 1)
	if err != nil {
		return nil, fmt.Errorf("stored: %w", err)
	}
	if typ != frameStored || len(body) != 0 {
		return nil, fmt.Errorf("%w: type %#x where STORED was expected", errFrame, typ)
	}
	return nil, nil
}

func (se *session) reconcile(initiator bool) error {
	n := se.n
	rc := &recon.Reconciler{Set: n.set}
	n.setMu.Lock()
	err := n.catchUpLocked(n.ctx)
	n.setMu.Unlock()
	if err != nil {
		return fmt.Errorf("reconcile: read the chain: %w", err)
	}
	if initiator {
		n.setMu.Lock()
		msg := rc.Initiate()
		n.setMu.Unlock()
		if err := se.write(frameRecon, msg); err != nil {
			return err
		}
		if err := se.w.Flush(); err != nil {
			return err
		}
	}
	for {
		typ, body, _, err := readFrame(se.r, maxFrame)
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		switch typ {
		case frameNeed:
			if len(body)%32 != 0 || len(body)/32 > maxNeedIDs {
				return fmt.Errorf("%w: NEED of %d bytes", errFrame, len(body))
			}
			for i := 0; i < len(body); i += 32 {
				se.queue(ledger.ID(body[i : i+32]))
			}
		case frameDone:
			if len(body) != 0 {
				return fmt.Errorf("%w: DONE with a body", errFrame)
			}
			return nil
		case frameRecon:
			se.res.Rounds++
			n.stats.SyncRounds.Add(1)
			if se.res.Rounds > maxRounds {
				return fmt.Errorf("reconcile: more than %d rounds", maxRounds)
			}
			n.setMu.Lock()
			st, err := rc.Reconcile(body)
			n.setMu.Unlock()
			if err != nil {
				return fmt.Errorf("reconcile: %w", err)
			}
			for _, id := range st.Have {
				se.queue(id)
			}
			if err := se.need(st.Need); err != nil {
				return err
			}
			if st.Reply == nil {
				if err := se.write(frameDone, nil); err != nil {
					return err
				}
				return se.w.Flush()
			}
			if err := se.write(frameRecon, st.Reply); err != nil {
				return err
			}
			if err := se.w.Flush(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: type %#x during reconciliation", errFrame, typ)
		}
	}
}

func (se *session) write(typ byte, body []byte) error {
	_, err := writeFrame(se.w, typ, body)
	return err
}

// queue notes a record to send, within the session's bound.
func (se *session) queue(id ledger.ID) {
	if se.queued[id] {
		return
	}
	if len(se.send) >= maxSessionIDs {
		se.res.more = true
		return
	}
	se.queued[id] = true
	se.send = append(se.send, id)
}

// need asks the peer for records we lack, within the session's bound.
func (se *session) need(ids [][32]byte) error {
	if room := maxSessionIDs - se.asked; len(ids) > room {
		ids = ids[:max(room, 0)]
		se.res.more = true
	}
	se.asked += len(ids)
	for len(ids) > 0 {
		k := min(len(ids), maxNeedIDs)
		body := make([]byte, 0, 32*k)
		for _, id := range ids[:k] {
			body = append(body, id[:]...)
		}
		if err := se.write(frameNeed, body); err != nil {
			return err
		}
		ids = ids[k:]
	}
	return nil
}

// sendRecords sends the queued records, then END.
func (se *session) sendRecords() error {
	store := se.n.chain.Store()
	for _, id := range se.send {
		rec, e, err := store.Get(id)
		if errors.Is(err, ledger.ErrNotFound) {
			continue // the peer asked for a record we do not hold
		}
		if err != nil {
			return fmt.Errorf("read record %s: %w", id, err)
		}
		env := rec.Encode()
		body := make([]byte, 0, 1+len(env))
		body = append(body, e.Replication)
		body = append(body, env...)
		if err := se.write(frameRecord, body); err != nil {
			return err
		}
		se.res.Sent++
		se.n.stats.SyncRecordsOut.Add(1)
	}
	if err := se.write(frameEnd, nil); err != nil {
		return err
	}
	return se.w.Flush()
}

// receiveRecords validates and stores the peer's records until END.
func (se *session) receiveRecords(ctx context.Context) error {
	n := se.n
	var batch []ledger.Pending
	got := 0
	for {
		typ, body, _, err := readFrame(se.r, 2+ledger.MaxRecordSize)
		if err != nil {
			return fmt.Errorf("records: %w", err)
		}
		switch typ {
		case frameEnd:
			if len(body) != 0 {
				return fmt.Errorf("%w: END with a body", errFrame)
			}
			return se.flush(ctx, batch)
		case frameRecord:
		default:
			return fmt.Errorf("%w: type %#x while records were expected", errFrame, typ)
		}
		if got++; got > maxSessionIDs+maxNeedIDs {
			return fmt.Errorf("peer sent more than %d records in one session", maxSessionIDs+maxNeedIDs)
		}
		if len(body) < 2 {
			n.rejected(se.peer, "sync", "malformed", fmt.Errorf("%w: record frame of %d bytes", errFrame, len(body)))
			se.res.Rejected++
			continue
		}
		rec, err := ledger.DecodeSignedRecord(body[1:])
		if err != nil {
			n.rejected(se.peer, "sync", ledger.CheckName(err), err)
			se.res.Rejected++
			continue
		}
		if has, _ := n.chain.Store().Has(rec.ID); has {
			continue
		}
		if err := n.validator.Check(rec); err != nil {
			if errors.Is(err, ledger.ErrTime) {
				n.rlog.Info("sync: record from the future ignored", "peer", se.peer.String(), "id", rec.ID.String(), "err", err)
				continue
			}
			n.rejected(se.peer, "sync", ledger.CheckName(err), err)
			se.res.Rejected++
			continue
		}
		batch = append(batch, ledger.Pending{Record: rec, Replication: hop(body[0]), Source: "sync:" + se.peer.String()})
		if len(batch) >= appendBatch {
			if err := se.flush(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
}

// flush appends received records and re-publishes those still below the
// network's replication limit.
func (se *session) flush(ctx context.Context, batch []ledger.Pending) error {
	if len(batch) == 0 {
		return nil
	}
	n := se.n
	results, err := n.chain.Store().AppendBatch(ctx, batch)
	if err != nil {
		return fmt.Errorf("store records: %w", err)
	}
	limit := n.chain.Genesis().ReplicationLimit
	for i, r := range results {
		switch {
		case errors.Is(r.Err, ledger.ErrExists):
			continue
		case r.Err != nil:
			return fmt.Errorf("store record %s: %w", batch[i].Record.ID, r.Err)
		}
		rec := batch[i].Record
		n.stored(rec, r.Entry)
		se.res.Received++
		n.stats.SyncRecordsIn.Add(1)
		if int(r.Entry.Replication) < limit {
			if err := n.publish(ctx, rec, r.Entry.Replication); err == nil {
				n.stats.Republished.Add(1)
			}
		}
	}
	return nil
}
