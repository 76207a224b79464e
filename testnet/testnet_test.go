package testnet_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/cli"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol"
	"github.com/pyvnode/pyvnode/testnet"
)

const childEnv = "PYVNODE_TESTNET_CHILD"

// TestMain lets the test binary be the node program: the testnet starts
// it again with childEnv set and pyvnode's arguments.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Main(ctx, append([]string{"pyvnode"}, os.Args[1:]...))
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func up(t *testing.T, nodes int, topology string) *testnet.Cluster {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testnet.Up(ctx, testnet.Options{
		Nodes: nodes, Dir: t.TempDir(), Command: []string{exe}, Env: []string{childEnv + "=1"},
		Topology: topology, PowBits: 4, SyncInterval: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Down(context.Background()); err != nil {
			t.Errorf("down: %v", err)
		}
		if t.Failed() {
			for _, nd := range c.Nodes() {
				b, _ := os.ReadFile(nd.LogFile)
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("---- %s log (tail) ----\n%s", nd.Name, b)
			}
		}
	})
	return c
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// has reports whether node i holds the record.
func has(ctx context.Context, c *testnet.Cluster, i int, id ledger.ID) (bool, error) {
	var r map[string]any
	err := c.Call(ctx, i, "get", map[string]any{"id": id}, &r)
	if err == nil {
		return true, nil
	}
	if pe, ok := err.(*protocol.Error); ok && pe.Code == protocol.ErrNotFound.Code {
		return false, nil
	}
	return false, err
}

func verifyAll(t *testing.T, ctx context.Context, c *testnet.Cluster, want int) {
	t.Helper()
	for i, nd := range c.Nodes() {
		r, err := c.Verify(ctx, i)
		if err != nil {
			t.Fatalf("%s: verify: %v", nd.Name, err)
		}
		if int(r.Records) != want {
			t.Errorf("%s: chain holds %d records, want %d", nd.Name, r.Records, want)
		}
	}
}

// TestFiveNodes runs one 5-node testnet through propagation, a 2|3
// partition and its healing, and a node that misses 1,000 records while it
// is down.
func TestFiveNodes(t *testing.T) {
	c := up(t, 5, "mesh")
	total := 0

	t.Run("put on any node reaches all", func(t *testing.T) {
		ctx := within(t, time.Minute)
		var ids []ledger.ID
		for i := range 5 {
			id, err := c.Put(ctx, i, "note.text", map[string]any{"text": fmt.Sprintf("from node %d", i+1)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		total += 5
		if _, err := c.WaitConverged(ctx, total); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			for _, id := range ids {
				if ok, err := has(ctx, c, i, id); err != nil || !ok {
					t.Fatalf("node %d lacks %s (%v)", i+1, id, err)
				}
			}
		}
		verifyAll(t, ctx, c, total)
	})

	t.Run("partition 2|3, write on both sides, heal", func(t *testing.T) {
		ctx := within(t, 2*time.Minute)
		if err := c.Partition(ctx, []int{0, 1}, []int{2, 3, 4}); err != nil {
			t.Fatal(err)
		}
		for k := range 20 {
			if _, err := c.Put(ctx, k%2, "note.text", map[string]any{"side": "a", "k": k}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Put(ctx, 2+k%3, "note.text", map[string]any{"side": "b", "k": k}); err != nil {
				t.Fatal(err)
			}
		}
		a, err := c.WaitConverged(ctx, total+20, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.WaitConverged(ctx, total+20, 2, 3, 4)
		if err != nil {
			t.Fatal(err)
		}
		if a != total+20 || b != total+20 {
			t.Fatalf("during the partition the sides hold %d and %d records, want %d each", a, b, total+20)
		}
		if err := c.Heal(ctx); err != nil {
			t.Fatal(err)
		}
		total += 40
		if _, err := c.WaitConverged(ctx, total); err != nil {
			t.Fatal(err)
		}
		verifyAll(t, ctx, c, total)
	})

	t.Run("node down while 1000 records are written catches up", func(t *testing.T) {
		ctx := within(t, 3*time.Minute)
		if err := c.Stop(4); err != nil {
			t.Fatal(err)
		}
		for k := range 1000 {
			if _, err := c.Put(ctx, k%4, "note.text", map[string]any{"k": k}); err != nil {
				t.Fatal(err)
			}
		}
		total += 1000
		if _, err := c.WaitConverged(ctx, total, 0, 1, 2, 3); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx, 4); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitConverged(ctx, total); err != nil {
			t.Fatal(err)
		}
		verifyAll(t, ctx, c, total)
	})
}
