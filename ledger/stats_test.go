package ledger

import (
	"context"
	"fmt"
	"maps"
	"testing"
)

func TestStoreStatsCountsAppendsAndRejects(t *testing.T) {
	g := testGenesis(0)
	s := openTestStore(t, t.TempDir(), g)
	defer s.Close()
	ctx := context.Background()
	key := testKey(1)
	recs := make([]*SignedRecord, 6)
	for i := range recs {
		recs[i] = makeRecord(t, key, g, i)
	}
	sources := []string{"local", "", "import", "gossip:peerA", "sync:peerB", "sync:peerB"}
	for i, r := range recs {
		if _, err := s.Append(ctx, r, 0, sources[i]); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	// Duplicates: one alone, two in a batch with a new record.
	if _, err := s.Append(ctx, recs[0], 0, "local"); err != ErrExists {
		t.Fatalf("duplicate Append: %v, want ErrExists", err)
	}
	res, err := s.AppendBatch(ctx, []Pending{{Record: recs[1]}, {Record: makeRecord(t, key, g, 99), Source: "import"}, {Record: recs[2]}})
	if err != nil || res[1].Err != nil {
		t.Fatalf("AppendBatch: %v %v", err, res)
	}

	st := s.Stats()
	if st.Size != 7 {
		t.Errorf("Size %d, want 7", st.Size)
	}
	wantApp := map[string]uint64{SourceLocal: 2, SourceImport: 2, SourcePeer: 3}
	if !maps.Equal(st.Appended, wantApp) {
		t.Errorf("Appended %v, want %v", st.Appended, wantApp)
	}
	if want := map[string]uint64{"exists": 3}; !maps.Equal(st.Rejected, want) {
		t.Errorf("Rejected %v, want %v", st.Rejected, want)
	}
	if st.SegmentBytes <= 0 {
		t.Errorf("SegmentBytes %d after appends", st.SegmentBytes)
	}
	if st.LSMBytes < 0 || st.VlogBytes < 0 {
		t.Errorf("Badger sizes %d %d", st.LSMBytes, st.VlogBytes)
	}

	// Counters survive Close; the sizes are no longer read.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st = s.Stats()
	if st.Appended[SourcePeer] != 3 || st.SegmentBytes != 0 {
		t.Errorf("after Close: %+v", st)
	}
}

func TestRejectReason(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{ErrExists, "exists"},
		{fmt.Errorf("%w: disk full", ErrFailed), "failed"},
		{ErrClosed, "closed"},
		{checkErr(ErrSignature, "x"), "signature"},
		{fmt.Errorf("wrapped: %w", checkErr(ErrPoW, "x")), "pow"},
		{fmt.Errorf("something else"), "other"},
	} {
		if got := RejectReason(c.err); got != c.want {
			t.Errorf("RejectReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
