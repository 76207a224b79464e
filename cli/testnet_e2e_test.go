package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2ETestnet runs 'pyvnode testnet up', puts a record through the
// client on one node, watches 'testnet status' until all three hold it,
// reconciles on demand and takes the testnet down.
func TestE2ETestnet(t *testing.T) {
	needBinary(t)
	work := t.TempDir()
	dir := filepath.Join(work, "tn")
	env := append(baseEnv(), "PYVNODE_KNOWN_NODES="+filepath.Join(work, "known_nodes"))
	up := mustOK(t, runBinary(t.Context(), work, env, "testnet", "up", "--nodes", "3", "--dir", dir, "--pow-bits", "4"),
		"3 nodes (mesh)", "node1", "node2", "node3", "admin-password")
	b, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
	if err != nil {
		t.Fatalf("no cluster.json after up:\n%s", up)
	}
	var raw struct {
		Nodes []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Nodes) != 3 {
		t.Fatalf("cluster.json has %d nodes", len(raw.Nodes))
	}
	str := func(i int, k string) string { s, _ := raw.Nodes[i][k].(string); return s }
	for i := range 3 {
		for _, k := range []string{"name", "data_dir", "client_addr", "node_id", "peer_id", "admin_password_file"} {
			if str(i, k) == "" {
				t.Fatalf("cluster.json node %d lacks %s:\n%s", i, k, b)
			}
		}
	}
	downed := false
	t.Cleanup(func() {
		if !downed {
			runBinary(t.Context(), work, env, "testnet", "down", "--dir", dir)
		}
	})
	admin := func(i int) []string {
		return []string{"client", "--server", str(i, "client_addr"), "--user", "admin", "--password-file", str(i, "admin_password_file")}
	}

	mustOK(t, runBinary(t.Context(), work, env, append(admin(0), "put", "note.text", `{"text":"hello testnet"}`)...), "appended")
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := mustOK(t, runBinary(t.Context(), work, env, "testnet", "status", "--dir", dir))
		if strings.Contains(r.stdout, "all running nodes hold the same records") && strings.Count(r.stdout, " up ") == 3 &&
			strings.Count(r.stdout, "  1  ") >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the record did not reach every node:\n%s", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mustOK(t, runBinary(t.Context(), work, env, append(admin(1), "sync", str(0, "peer_id"))...), str(0, "peer_id"), "sent 0, received 0")
	mustOK(t, runBinary(t.Context(), work, env, append(admin(2), "peer", "status")...), "ready", str(0, "peer_id"), str(1, "peer_id"))
	mustFail(t, runBinary(t.Context(), work, env, append(admin(2), "sync", "not-a-peer")...), -1, "not a peer id")

	mustFail(t, runBinary(t.Context(), work, env, "testnet", "up", "--dir", dir), -1, "already holds a testnet")
	mustFail(t, runBinary(t.Context(), work, env, "testnet", "up", "--dir", filepath.Join(work, "x"), "--nodes", "0"), 2, "--nodes")

	pids := []int{}
	for i := range 3 {
		p, _ := raw.Nodes[i]["pid"].(float64)
		pids = append(pids, int(p))
	}
	mustOK(t, runBinary(t.Context(), work, env, "testnet", "down", "--dir", dir), "stopped 3 nodes")
	downed = true
	for _, p := range pids {
		if p <= 0 || syscall.Kill(p, 0) == nil {
			if b, err := os.ReadFile("/proc/" + itoa(p) + "/stat"); err == nil && !strings.Contains(string(b), ") Z ") {
				t.Errorf("node process %d still runs after down", p)
			}
		}
	}
	mustFail(t, runBinary(t.Context(), work, env, "testnet", "status", "--dir", dir), -1, "cluster.json")
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
