package ledger

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// signedBatch makes n distinct signed records (proof of work 0) using all
// cores.
func signedBatch(tb testing.TB, g *Genesis, n, seed int) []*SignedRecord {
	out := make([]*SignedRecord, n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := testKey(byte(200 + w))
			for i := w; i < n; i += workers {
				p, _ := EncodePayload(map[string]any{"seed": int64(seed), "i": int64(i), "text": "benchmark record with a payload of ordinary size"})
				rec := &Record{Version: 1, Kind: "bench.note", Payload: p, Origin: key.Public().(ed25519.PublicKey), Author: "bench", Created: int64(1_700_000_000_000_000_000 + i)}
				s, err := Sign(rec, key, g.Network)
				if err != nil {
					panic(err)
				}
				out[i] = s
			}
		}()
	}
	wg.Wait()
	return out
}

// BenchmarkAppendDurable: 16 concurrent writers appending already signed
// records; every append is acknowledged only after fsync.
func BenchmarkAppendDurable(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			g := testGenesis(0)
			s := openTestStore(b, b.TempDir(), g)
			defer s.Close()
			recs := signedBatch(b, g, b.N, 1)
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(len(recs)) {
							return
						}
						if _, err := s.Append(context.Background(), recs[i], 0, "local"); err != nil {
							panic(err)
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkPutDurable: 16 writers each making, signing and appending its
// records, as the node does for a client's put.
func BenchmarkPutDurable(b *testing.B) {
	g := testGenesis(0)
	s := openTestStore(b, b.TempDir(), g)
	defer s.Close()
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := &Identity{Key: testKey(byte(100 + w))}
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				p, _ := EncodePayload(map[string]any{"w": int64(w), "i": i, "text": "benchmark record"})
				rec, err := NewSignedRecord(context.Background(), id, g, "bench.note", p, "bench", time.Now())
				if err != nil {
					panic(err)
				}
				if _, err := s.Append(context.Background(), rec, 0, "local"); err != nil {
					panic(err)
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkImportBulk: already mined and signed records appended in batches
// (the storage side of 'chain import' and of catching up from a peer).
func BenchmarkImportBulk(b *testing.B) {
	g := testGenesis(0)
	s := openTestStore(b, b.TempDir(), g)
	defer s.Close()
	recs := signedBatch(b, g, b.N, 2)
	items := make([]Pending, len(recs))
	for i, r := range recs {
		items[i] = Pending{Record: r, Source: "import"}
	}
	b.ResetTimer()
	start := time.Now()
	// As Import does: submit the next batch while the previous one syncs.
	var prev *Ticket
	for lo := 0; lo < len(items); lo += 4096 {
		t, err := s.Submit(context.Background(), items[lo:min(lo+4096, len(items))])
		if err != nil {
			b.Fatal(err)
		}
		if prev != nil {
			prev.Wait()
		}
		prev = t
	}
	if prev != nil {
		prev.Wait()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkVerify measures full chain verification and, in the same run and
// on the same cores, bare ed25519.Verify over the same signatures.
func BenchmarkVerify(b *testing.B) {
	const n = 50_000
	g := testGenesis(0)
	s := openTestStore(b, b.TempDir(), g)
	defer s.Close()
	recs := signedBatch(b, g, n, 3)
	items := make([]Pending, n)
	msgs := make([][]byte, n)
	for i, r := range recs {
		items[i] = Pending{Record: r, Source: "import"}
		msgs[i] = SigMessage(g.Network, r.ID)
	}
	if _, err := s.AppendBatch(context.Background(), items); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var bare, full time.Duration
	for b.Loop() {
		t0 := time.Now()
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					if !ed25519.Verify(recs[i].Origin, msgs[i], recs[i].Signature) {
						panic("bad signature")
					}
				}
			}()
		}
		wg.Wait()
		bare += time.Since(t0)
		t1 := time.Now()
		if _, err := s.Verify(context.Background(), VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
		full += time.Since(t1)
	}
	bareRate := float64(n*b.N) / bare.Seconds()
	fullRate := float64(n*b.N) / full.Seconds()
	b.ReportMetric(bareRate, "ed25519-verify/s")
	b.ReportMetric(fullRate, "chain-verify/s")
	b.ReportMetric(100*fullRate/bareRate, "%-of-ed25519")
}

// BenchmarkInclusionProof produces and verifies proofs in a chain of
// 1,000,000 records (set PYVNODE_BENCH_RECORDS to change it).
func BenchmarkInclusionProof(b *testing.B) {
	n := benchRecords(1_000_000)
	g := testGenesis(0)
	s := openTestStore(b, b.TempDir(), g)
	defer s.Close()
	var ids []ID
	for lo := 0; lo < n; lo += 50_000 {
		recs := signedBatch(b, g, min(50_000, n-lo), 10+lo)
		items := make([]Pending, len(recs))
		for i, r := range recs {
			items[i] = Pending{Record: r, Source: "import"}
			ids = append(ids, r.ID)
		}
		if _, err := s.AppendBatch(context.Background(), items); err != nil {
			b.Fatal(err)
		}
	}
	size := uint64(n)
	root := s.Head().Root
	b.Run("produce", func(b *testing.B) {
		i := uint64(0)
		for b.Loop() {
			i = (i*7919 + 104729) % size
			if _, err := s.InclusionProof(i, size); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		const idx = 123_457 % 1_000_000
		i := uint64(idx) % size
		p, err := s.InclusionProof(i, size)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := VerifyInclusion(ids[i], i, size, p, root); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consistency", func(b *testing.B) {
		i := uint64(1)
		for b.Loop() {
			i = (i*7919 + 104729) % size
			if _, err := s.ConsistencyProof(i, size); err != nil {
				b.Fatal(err)
			}
		}
	})
}
