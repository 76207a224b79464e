package ledger

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// Source kinds the store counts appends by (Pending.Source names the
// exact source; a peer's is "gossip:<peer>" or "sync:<peer>").
const (
	SourceLocal  = "local"  // made on this node; also an empty Source
	SourceImport = "import" // read from an export
	SourcePeer   = "peer"   // any other source: received from a peer
)

// StoreStats is a snapshot of what the store did since it was opened and
// of the disk it holds.
type StoreStats struct {
	Size uint64 // records in the chain
	// Appended counts the records appended since the store was opened, by
	// source kind (SourceLocal, SourceImport, SourcePeer).
	Appended map[string]uint64
	// Rejected counts the records an append did not take, by reason:
	// "exists" (already in the chain), "failed" (the store stopped after
	// a write error), or the name of a failed check.
	Rejected map[string]uint64
	// Disk use: Badger's id index (its LSM tables and value log, as
	// Badger's own DB.Size counts them) and the segment files. Zero once
	// the store is closed.
	LSMBytes, VlogBytes, SegmentBytes int64
}

// storeStats are the store's counters. The committer and the writer count
// a request once, when its results are final, so the cost is a few atomic
// adds per request and a lock only when something was rejected.
type storeStats struct {
	local, imported, peer atomic.Uint64

	mu       sync.Mutex
	rejected map[string]uint64
}

// finish counts a request's results and hands them to its caller.
func (s *Store) finish(req *appendReq) {
	s.stats.count(req)
	close(req.done)
}

func (st *storeStats) count(req *appendReq) {
	var local, imported, peer, rejected uint64
	for i := range req.results {
		if req.results[i].Err != nil {
			rejected++
			continue
		}
		switch req.items[i].Source {
		case SourceLocal, "":
			local++
		case SourceImport:
			imported++
		default:
			peer++
		}
	}
	st.local.Add(local)
	st.imported.Add(imported)
	st.peer.Add(peer)
	if rejected == 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.rejected == nil {
		st.rejected = map[string]uint64{}
	}
	for i := range req.results {
		if err := req.results[i].Err; err != nil {
			st.rejected[RejectReason(err)]++
		}
	}
}

// RejectReason names why an append did not take a record: "exists",
// "failed", "closed", the name of a failed check ("signature", "pow",
// ...), or "other".
func RejectReason(err error) string {
	switch {
	case errors.Is(err, ErrExists):
		return "exists"
	case errors.Is(err, ErrFailed):
		return "failed"
	case errors.Is(err, ErrClosed):
		return "closed"
	}
	if n := CheckName(err); n != "" {
		return n
	}
	return "other"
}

// Stats returns the store's counters and disk use. It reads the sizes of
// the index and segment files, so it costs a directory listing and one
// stat per segment: meant for a metrics scrape, not a hot path.
func (s *Store) Stats() StoreStats {
	st := StoreStats{
		Size: s.Head().Size,
		Appended: map[string]uint64{
			SourceLocal: s.stats.local.Load(), SourceImport: s.stats.imported.Load(), SourcePeer: s.stats.peer.Load(),
		},
	}
	s.stats.mu.Lock()
	st.Rejected = maps.Clone(s.stats.rejected)
	s.stats.mu.Unlock()
	if st.Rejected == nil {
		st.Rejected = map[string]uint64{}
	}
	if s.enter() != nil {
		return st
	}
	defer s.exit()
	st.LSMBytes, st.VlogBytes = badgerSize(filepath.Join(s.opts.Dir, "index"))
	st.SegmentBytes = s.segs.size()
	return st
}

// badgerSize adds up Badger's table and value log files. DB.Size would do,
// but it reads figures only kept when Badger's (global, expvar) metrics
// are on, and the store turns them off.
func badgerSize(dir string) (lsm, vlog int64) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	for _, e := range ents {
		var n *int64
		switch {
		case strings.HasSuffix(e.Name(), ".sst"):
			n = &lsm
		case strings.HasSuffix(e.Name(), ".vlog"):
			n = &vlog
		default:
			continue
		}
		if fi, err := e.Info(); err == nil {
			*n += fi.Size()
		}
	}
	return lsm, vlog
}

// size is the bytes the segment files hold.
func (s *segmentSet) size() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var total int64
	for _, f := range s.files {
		if fi, err := f.Stat(); err == nil {
			total += fi.Size()
		}
	}
	return total
}
