package webbench_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyvnode/pyvnode/web/webbench"
)

var quiet = slog.New(slog.DiscardHandler)

var benchRecords = flag.Int("webbench.records", 100_000, "chain size of BenchmarkAPI50Clients")

// The benchmark's node is built once per process and stopped by TestMain.
var (
	benchOnce sync.Once
	benchNode *webbench.Node
	benchErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if benchNode != nil {
		if err := benchNode.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "close the benchmark's node: %v\n", err)
		}
	}
	os.Exit(code)
}

// smallNode starts a node of n records for one test.
func smallNode(t *testing.T, n int) *webbench.Node {
	t.Helper()
	nd, err := webbench.StartNode(t.Context(), webbench.NodeConfig{Dir: t.TempDir() + "/data", Records: n})
	if err != nil {
		t.Fatalf("StartNode: %v", err)
	}
	t.Cleanup(func() {
		if err := nd.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if got := nd.Store().Count(); got != uint64(n) {
		t.Fatalf("the node holds %d records, want %d", got, n)
	}
	return nd
}

func TestRun(t *testing.T) {
	nd := smallNode(t, 500)
	for _, tc := range []struct {
		name       string
		revalidate bool
		only       string
		want       []string
	}{
		{"plain", false, "", []string{webbench.Records, webbench.Proof}},
		{"revalidate", true, "", []string{webbench.Records, webbench.Proof, webbench.RecordsRevalidate, webbench.ProofRevalidate}},
		{"only proofs", false, webbench.Proof, []string{webbench.Proof}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := webbench.Run(t.Context(), webbench.Config{
				URL: nd.URL(), Clients: 4, Duration: 300 * time.Millisecond, Revalidate: tc.revalidate, Only: tc.only, Logger: quiet,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if rep.ChainSize != 500 || rep.KnownIDs != 500 {
				t.Errorf("chain size %d, known ids %d; want 500 and 500", rep.ChainSize, rep.KnownIDs)
			}
			if len(rep.Endpoints) != len(tc.want) {
				t.Fatalf("endpoints %+v, want %v", rep.Endpoints, tc.want)
			}
			for _, name := range tc.want {
				ep := rep.Endpoint(name)
				if ep == nil {
					t.Fatalf("no endpoint %q in %+v", name, rep.Endpoints)
				}
				if ep.Requests == 0 || ep.Errors != 0 || ep.Wrong != 0 || ep.P99ms <= 0 || ep.PerSecond <= 0 {
					t.Errorf("%s: %+v; want requests, no errors, p99 > 0", name, ep)
				}
				if ep.P50ms > ep.P90ms || ep.P90ms > ep.P99ms || ep.P99ms > ep.Maxms {
					t.Errorf("%s: percentiles out of order: %+v", name, ep)
				}
			}
		})
	}
}

// TestRunRequests runs a fixed number of requests, with pages that reach
// beyond the head.
func TestRunRequests(t *testing.T) {
	nd := smallNode(t, 120)
	rep, err := webbench.Run(t.Context(), webbench.Config{URL: nd.URL(), Clients: 3, Requests: 12, KnownIDs: 30, Page: 150, Logger: quiet})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Requests != 12 {
		t.Errorf("made %d requests, want 12", rep.Requests)
	}
	if rep.KnownIDs < 30 {
		t.Errorf("known ids %d, want at least 30", rep.KnownIDs)
	}
}

// TestRunCatchesWrongAnswers puts a proxy in front of the node that
// tampers with one kind of answer: the run must fail and say why.
func TestRunCatchesWrongAnswers(t *testing.T) {
	nd := smallNode(t, 200)
	target, err := url.Parse(nd.URL())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		path   string
		tamper func([]byte) []byte
		want   string
	}{
		{"proof node", "/api/proof/inclusion", func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"proof":["`)) + len(`"proof":["`)
			b[i] = flipHex(b[i])
			return b
		}, "does not verify"},
		{"record bytes", "/api/records", func(b []byte) []byte {
			i := bytes.LastIndex(b, []byte(`"record":"`)) + len(`"record":"`)
			b[i] = flipHex(b[i])
			return b
		}, "not the hash"},
		{"no ETag", "/api/proof/inclusion", nil, "no ETag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := httputil.NewSingleHostReverseProxy(target)
			var tampered sync.Once
			proxy.ModifyResponse = func(resp *http.Response) error {
				if resp.Request.URL.Path != tc.path || resp.StatusCode != http.StatusOK {
					return nil
				}
				if tc.tamper == nil {
					resp.Header.Del("ETag")
					return nil
				}
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					return err
				}
				resp.Body.Close()
				// Only after the ids are read: tamper with one answer of the run.
				if strings.HasPrefix(tc.path, "/api/records") && !strings.HasSuffix(resp.Request.URL.RawQuery, "count=50") {
					resp.Body = io.NopCloser(bytes.NewReader(b))
					return nil
				}
				tampered.Do(func() { b = tc.tamper(b) })
				resp.Body = io.NopCloser(bytes.NewReader(b))
				resp.ContentLength = int64(len(b))
				resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
				return nil
			}
			srv := httptest.NewServer(proxy)
			defer srv.Close()
			rep, err := webbench.Run(t.Context(), webbench.Config{URL: srv.URL, Clients: 2, Requests: 20, Revalidate: tc.tamper == nil, Logger: quiet})
			if !errors.Is(err, webbench.ErrFailed) {
				t.Fatalf("Run: %v; want ErrFailed", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run: %v; want it to say %q", err, tc.want)
			}
			if rep != nil && rep.Wrong == 0 {
				t.Errorf("report counts no wrong answers: %+v", rep)
			}
		})
	}
}

func flipHex(c byte) byte {
	if c == '0' {
		return '1'
	}
	return '0'
}

func TestRunRefusesBadConfig(t *testing.T) {
	for _, cfg := range []webbench.Config{
		{URL: ""},
		{URL: "ftp://x"},
		{URL: "http://127.0.0.1:1", Clients: -1},
		{URL: "http://127.0.0.1:1", Page: 501},
		{URL: "http://127.0.0.1:1", Duration: 2 * time.Hour},
		{URL: "http://127.0.0.1:1", Only: "consistency"},
	} {
		if _, err := webbench.Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) accepted the config", cfg)
		}
	}
}

// BenchmarkAPI50Clients is the figure of issue 6: 50 concurrent clients
// read pages of 50 records and inclusion proofs from a node of
// -webbench.records records (default 100,000). Each iteration is a 5 s run.
//
//	go test ./web/webbench -run '^$' -bench API50 -benchtime 1x
func BenchmarkAPI50Clients(b *testing.B) {
	benchOnce.Do(func() {
		benchNode, benchErr = webbench.StartNode(context.Background(), webbench.NodeConfig{Records: *benchRecords})
	})
	if benchErr != nil {
		b.Fatalf("StartNode: %v", benchErr)
	}
	var last *webbench.Report
	for b.Loop() {
		rep, err := webbench.Run(b.Context(), webbench.Config{URL: benchNode.URL(), Clients: 50, Duration: 5 * time.Second, Logger: quiet})
		if err != nil {
			b.Fatalf("Run: %v", err)
		}
		last = rep
	}
	for _, ep := range last.Endpoints {
		name := strings.ReplaceAll(ep.Name, " ", "-")
		b.ReportMetric(ep.PerSecond, name+"-req/s")
		b.ReportMetric(ep.P50ms, name+"-p50-ms")
		b.ReportMetric(ep.P99ms, name+"-p99-ms")
	}
	b.ReportMetric(last.PerSecond, "req/s")
	b.ReportMetric(last.ProcessCores, "cores-used")
	b.ReportMetric(0, "ns/op")
}
