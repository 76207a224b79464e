package ledger

import (
	"context"
	"os"
	"runtime/pprof"
	"testing"
	"time"
)

func TestTmpProfImport(t *testing.T) {
	if os.Getenv("TMPPROF") == "" {
		t.Skip()
	}
	g := testGenesis(0)
	s := openTestStore(t, t.TempDir(), g)
	defer s.Close()
	recs := signedBatch(t, g, tmpEnv("TMP_N", 300000), 2)
	items := make([]Pending, len(recs))
	for i, r := range recs {
		items[i] = Pending{Record: r, Source: "import"}
	}
	f, _ := os.Create("/tmp/imp.prof")
	pprof.StartCPUProfile(f)
	start := time.Now()
	var prev *Ticket
	for lo := 0; lo < len(items); lo += 4096 {
		tk, err := s.Submit(context.Background(), items[lo:min(lo+4096, len(items))])
		if err != nil {
			t.Fatal(err)
		}
		if prev != nil {
			prev.Wait()
		}
		prev = tk
	}
	prev.Wait()
	el := time.Since(start)
	pprof.StopCPUProfile()
	t.Logf("%.0f rec/s", float64(len(items))/el.Seconds())
}
