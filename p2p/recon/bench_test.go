package recon

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkReconcile1M reconciles two sets of 1,000,000 items that differ
// in 1, 10, 100 and 1,000 items (half on each side), reporting round trips,
// bytes exchanged (both directions), bytes per difference and time, beside
// the 32 MB a full id list would take.
func BenchmarkReconcile1M(b *testing.B) {
	const n = 1_000_000
	rng := rand.New(rand.NewPCG(7, 8))
	base := make([]Item, n)
	for i := range base {
		base[i] = item(uint64(i), 1_700_000_000_000_000_000+uint64(rng.IntN(86_400))*1e9)
	}
	for _, diff := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("diff=%d", diff), func(b *testing.B) {
			a, c := NewSet(), NewSet()
			for i, it := range base {
				a.Insert(it)
				if i >= diff { // c lacks the first diff items...
					c.Insert(it)
				}
			}
			for i := 0; i < diff/2; i++ { // ...and holds diff/2 of its own
				c.Insert(item(uint64(n+i), base[i].T))
			}
			var trips, bytes int
			var el time.Duration
			for b.Loop() {
				t0 := time.Now()
				_, _, _, _, trips, bytes = run(b, a, c, 16, 16)
				el += time.Since(t0)
			}
			d := diff + diff/2
			b.ReportMetric(float64(trips), "round-trips")
			b.ReportMetric(float64(bytes), "bytes")
			b.ReportMetric(float64(bytes)/float64(d), "bytes/difference")
			b.ReportMetric(float64(el.Microseconds())/float64(b.N)/1000, "ms")
			b.ReportMetric(float64(32*n), "full-id-list-bytes")
		})
	}
}
