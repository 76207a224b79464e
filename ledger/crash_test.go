package ledger

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const crashEnv = "PYVNODE_CRASH_CHILD_DIR"

// TestCrashChild is the child process of TestCrashLosesNoAcknowledgedRecord:
// it appends from 8 goroutines until it is killed, printing "ACK <id>
// <height>" after each acknowledged append.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child process of the crash test")
	}
	g := testGenesis(0)
	s, err := Open(Options{Dir: dir, Genesis: g, Logger: quietLogger()})
	if err != nil {
		fmt.Println("OPEN-FAILED", err)
		os.Exit(2)
	}
	key := testKey(42)
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				p, _ := EncodePayload(map[string]any{"pid": int64(os.Getpid()), "w": int64(w), "i": int64(i)})
				rec := &Record{Version: 1, Kind: "crash.test", Payload: p, Origin: key.Public().(ed25519.PublicKey), Created: time.Now().UnixNano()}
				sr, err := Sign(rec, key, g.Network)
				if err != nil {
					panic(err)
				}
				e, err := s.Append(context.Background(), sr, 0, "local")
				if err != nil {
					panic(err)
				}
				mu.Lock()
				fmt.Fprintf(out, "ACK %s %d\n", sr.ID, e.Height)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestCrashLosesNoAcknowledgedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	acked := map[ID]uint64{}
	for round, killAfter := range []int{150, 600, 1200} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		killed := false
		deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ACK" {
				t.Fatalf("round %d: child said %q", round, sc.Text())
			}
			id, err := ParseID(f[1])
			h, herr := strconv.ParseUint(f[2], 10, 64)
			if err != nil || herr != nil {
				continue // a line cut short by the kill
			}
			acked[id] = h
			if n++; n == killAfter && !killed {
				cmd.Process.Kill() // SIGKILL: no chance to flush or close
				killed = true
			}
		}
		deadline.Stop()
		cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child stopped after %d acks before it was killed", round, n)
		}

		s := openTestStore(t, dir, testGenesis(0))
		rep, err := s.Verify(context.Background(), VerifyOptions{})
		if err != nil {
			t.Fatalf("round %d: chain does not verify after kill -9: %v", round, err)
		}
		for id, h := range acked {
			got, err := s.Height(id)
			if err != nil || got != h {
				t.Fatalf("round %d: acknowledged record %s at height %d: got %d, %v", round, id, h, got, err)
			}
		}
		t.Logf("round %d: %d acknowledged, chain holds %d, verified", round, len(acked), rep.Records)
		s.Close()
	}
}
