package accounts

import (
	"context"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkPasswordCheck: one Argon2id check at the default cost (19 MiB,
// 2 passes, 1 lane), the deliberate price of a login.
func BenchmarkPasswordCheck(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "u.json"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	hash, err := s.hash("a password of some length")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ok, err := s.checkHash(context.Background(), "a password of some length", hash)
		if err != nil || !ok {
			b.Fatal("check failed")
		}
	}
}

// BenchmarkLoginFlood: 64 concurrent logins with wrong passwords for
// unknown users (delays off). The bound on concurrent checks keeps the
// memory they take to MaxConcurrentChecks × 19 MiB; the metric is the
// heap's peak above its starting point.
func BenchmarkLoginFlood(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "u.json"), Options{FailureDelay: -1, MaxFailures: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak uint64
	stop := make(chan struct{})
	var mon sync.WaitGroup
	mon.Add(1)
	go func() {
		defer mon.Done()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak {
				peak = ms.HeapAlloc
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += 64 {
				s.Login(context.Background(), "nobody", "wrong password", "", "10.0.0.1", false)
			}
		}()
	}
	wg.Wait()
	close(stop)
	mon.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
	b.ReportMetric(float64(peak-base.HeapAlloc)/(1<<20), "peak-heap-MiB")
}
