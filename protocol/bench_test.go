package protocol_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/protocol"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHandshake: full handshakes over loopback; CPU time per
// handshake covers both sides (client and node run in this process).
func BenchmarkHandshake(b *testing.B) {
	tn := startNode(b, true)
	ctx := context.Background()
	looseLimits(b, tn)
	cpu0 := cpuTime()
	start := time.Now()
	for b.Loop() {
		c, err := protocol.Dial(ctx, tn.addr, protocol.Options{KnownNodes: tn.known})
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	n := float64(b.N)
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/n, "cpu-µs/handshake(both-sides)")
	b.ReportMetric(n/time.Since(start).Seconds(), "handshakes/s")
}

// BenchmarkHelloPipelined: hello round trips on one connection with up to
// 256 requests in flight.
func BenchmarkHelloPipelined(b *testing.B) {
	tn := startNode(b, true)
	c := tn.dial(b)
	ctx := context.Background()
	const window = 256
	queue := make(chan *protocol.Pending, window)
	done := make(chan error, 1)
	go func() {
		for p := range queue {
			if err := p.Wait(ctx, nil); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	start := time.Now()
	for b.Loop() {
		p, err := c.Send("hello", nil)
		if err != nil {
			b.Fatal(err)
		}
		queue <- p
	}
	close(queue)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "round-trips/s")
}

// BenchmarkConcurrentClients: 200 clients, each with its own session,
// calling hello in a loop; reports latency percentiles and errors.
func BenchmarkConcurrentClients(b *testing.B) {
	tn := startNode(b, true)
	a := tn.admin(b)
	ctx := context.Background()
	_ = a
	looseLimits(b, tn)
	const clients = 200
	cls := make([]*protocol.Client, clients)
	for i := range cls {
		cls[i] = tn.dial(b)
	}
	var next atomic.Int64
	var errs atomic.Int64
	lat := make([][]time.Duration, clients)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t := time.Now()
				if err := c.Call(ctx, "hello", nil, nil); err != nil {
					errs.Add(1)
					continue
				}
				lat[i] = append(lat[i], time.Since(t))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if errs.Load() > 0 {
		b.Fatalf("%d calls failed", errs.Load())
	}
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
	b.ReportMetric(float64(b.N)/el.Seconds(), "calls/s")
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(0, "errors")
}

// BenchmarkPut: 16 connections appending records with a 200-byte payload
// (proof of work 0), each keeping 8 puts in flight; every put is durable
// when answered.
func BenchmarkPut(b *testing.B) {
	tn := startNode(b, true)
	a := tn.admin(b)
	ctx := context.Background()
	if err := a.Call(ctx, "user.add", map[string]any{"name": "w", "role": "writer", "password": "writer password"}, nil); err != nil {
		b.Fatal(err)
	}
	const conns, window = 16, 8
	cls := make([]*protocol.Client, conns)
	for i := range cls {
		cls[i] = tn.dial(b)
		if err := cls[i].Call(ctx, "login", map[string]string{"user": "w", "password": "writer password"}, nil); err != nil {
			b.Fatal(err)
		}
	}
	text := string(bytes.Repeat([]byte("x"), 180))
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for ci, c := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var q []*protocol.Pending
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					break
				}
				p, err := c.Send("put", map[string]any{"kind": "bench.put", "payload": map[string]any{"c": ci, "i": i, "text": text}})
				if err != nil {
					b.Error(err)
					return
				}
				q = append(q, p)
				if len(q) == window {
					if err := q[0].Wait(ctx, nil); err != nil {
						b.Error(err)
						return
					}
					q = q[1:]
				}
			}
			for _, p := range q {
				if err := p.Wait(ctx, nil); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkFileTransfer uploads and downloads a 256 MiB file through the
// protocol, and in the same run pushes the same bytes through a bare
// loopback TCP connection, reporting all three rates.
func BenchmarkFileTransfer(b *testing.B) {
	const size = 256 << 20
	tn := startNode(b, true)
	a := tn.admin(b)
	ctx := context.Background()
	if err := a.Call(ctx, "user.quota", map[string]any{"name": "admin", "quota": 4 << 30}, nil); err != nil {
		b.Fatal(err)
	}
	local := filepath.Join(b.TempDir(), "big")
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(local, data, 0o600); err != nil {
		b.Fatal(err)
	}
	f, _ := os.Open(local)
	defer f.Close()
	out, _ := os.Create(local + ".back")
	defer out.Close()
	var up, down time.Duration
	for b.Loop() {
		t := time.Now()
		if _, err := a.Upload(ctx, "big", f, size, protocol.TransferOptions{}); err != nil {
			b.Fatal(err)
		}
		up += time.Since(t)
		t = time.Now()
		if _, err := a.Download(ctx, "big", out, 0, nil, protocol.TransferOptions{}); err != nil {
			b.Fatal(err)
		}
		down += time.Since(t)
	}
	raw := rawLoopback(b, data)
	n := float64(b.N) * size
	b.ReportMetric(n/up.Seconds()/1e6, "upload-MB/s")
	b.ReportMetric(n/down.Seconds()/1e6, "download-MB/s")
	b.ReportMetric(raw/1e6, "raw-tcp-MB/s")
	b.ReportMetric(100*n/up.Seconds()/raw, "upload-%-of-raw")
	b.ReportMetric(100*n/down.Seconds()/raw, "download-%-of-raw")
}

// rawLoopback sends data four times through a loopback TCP connection and
// returns bytes per second.
func rawLoopback(b *testing.B, data []byte) float64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	t := time.Now()
	for range 4 {
		if _, err := c.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	n := <-got
	if n != int64(4*len(data)) {
		b.Fatalf("raw loopback moved %d bytes", n)
	}
	return float64(n) / time.Since(t).Seconds()
}

// looseLimits lifts the per-address limits (32 sessions, 20 new per second)
// that would refuse a benchmark's many connections from one address.
func looseLimits(b *testing.B, tn *testNode) {
	a := tn.admin(b)
	err := a.Call(context.Background(), "limits", map[string]any{"set": map[string]any{
		"max_conns_per_addr": 512, "max_conns": 1024, "conn_rate": 100000, "conn_burst": 100000}}, nil)
	if err != nil {
		b.Fatal(err)
	}
}
