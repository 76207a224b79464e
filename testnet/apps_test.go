package testnet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/cli"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol"
	"github.com/pyvnode/pyvnode/testnet"
)

// voting drives a ballot on a testnet as the authority and a clerk of each
// node.
type voting struct {
	t      *testing.T
	c      *testnet.Cluster
	auth   []*protocol.Client
	clerk  []*protocol.Client
	ballot string
	eids   map[string]string // voter@node -> eid
	puts   int
}

func newVoting(t *testing.T, ctx context.Context, c *testnet.Cluster) *voting {
	v := &voting{t: t, c: c, ballot: "mayor-2026", eids: map[string]string{}}
	for i := range c.Nodes() {
		for _, u := range []struct{ name, role string }{{"elect", "authority"}, {"clerk", "writer"}} {
			if err := c.Call(ctx, i, "user.add", map[string]string{"name": u.name, "role": u.role, "password": "pw-" + u.name + "-0123456789"}, nil); err != nil {
				t.Fatal(err)
			}
		}
		a, err := c.ClientAs(ctx, i, "elect", "pw-elect-0123456789")
		if err != nil {
			t.Fatal(err)
		}
		w, err := c.ClientAs(ctx, i, "clerk", "pw-clerk-0123456789")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close(); w.Close() })
		v.auth, v.clerk = append(v.auth, a), append(v.clerk, w)
	}
	return v
}

func (v *voting) put(ctx context.Context, cl *protocol.Client, kind string, p map[string]any) (protocol.PutResult, error) {
	raw, err := ledger.EncodePayload(p)
	if err != nil {
		v.t.Fatal(err)
	}
	var r protocol.PutResult
	err = cl.Call(ctx, "put", map[string]any{"kind": kind, "payload": cbor.RawMessage(raw)}, &r)
	if err == nil {
		v.puts++
	}
	return r, err
}

func (v *voting) must(ctx context.Context, cl *protocol.Client, kind string, p map[string]any) protocol.PutResult {
	v.t.Helper()
	r, err := v.put(ctx, cl, kind, p)
	if err != nil {
		v.t.Fatalf("%s %v: %v", kind, p, err)
	}
	return r
}

// register registers voter on node i and remembers the eid it got there.
func (v *voting) register(ctx context.Context, i int, voter string) string {
	v.t.Helper()
	r := v.must(ctx, v.auth[i], apps.KindRegister, map[string]any{"ballot": v.ballot, "voter": voter})
	var got protocol.RecordResult
	if err := v.auth[i].Call(ctx, "get", map[string]any{"id": r.ID}, &got); err != nil {
		v.t.Fatal(err)
	}
	p, err := ledger.DecodePayload(got.Payload)
	if err != nil {
		v.t.Fatal(err)
	}
	eid := p["eid"].(string)
	v.eids[fmt.Sprintf("%s@%d", voter, i)] = eid
	return eid
}

func (v *voting) cast(ctx context.Context, i int, voter, eid, choice string) {
	v.t.Helper()
	v.must(ctx, v.clerk[i], apps.KindCast, map[string]any{"ballot": v.ballot, "voter": voter, "eid": eid, "choice": choice})
}

// refused checks that node i refuses a submission with the rule.
func (v *voting) refused(ctx context.Context, cl *protocol.Client, rule, kind string, p map[string]any) {
	v.t.Helper()
	_, err := v.put(ctx, cl, kind, p)
	pe, ok := err.(*protocol.Error)
	if !ok || pe.Code != protocol.ErrRefused.Code || pe.Check != rule {
		v.t.Fatalf("%s %v: got %v, want refused (%s)", kind, p, err, rule)
	}
}

// TestVotingAcrossPartition runs a ballot on three nodes: registrations
// and casts on different nodes, then clashing records on both sides of a
// partition. After the heal every node must print the same tally, the
// violations must name the clashes, and a reader that knows only the
// export format and docs/APPLICATIONS.md must compute the same figures.
func TestVotingAcrossPartition(t *testing.T) {
	c := up(t, 3, "mesh")
	ctx := within(t, 3*time.Minute)
	v := newVoting(t, ctx, c)
	now := time.Now()
	v.must(ctx, v.auth[0], apps.KindBallot, map[string]any{"ballot": v.ballot, "question": "Who should be mayor?",
		"choices": []any{"alice", "bob", "carol"}, "opens": now.Add(-time.Minute).Unix(), "closes": now.Add(time.Hour).Unix()})
	wait := func(nodes ...int) {
		t.Helper()
		if _, err := c.WaitConverged(ctx, 0, nodes...); err != nil {
			t.Fatal(err)
		}
	}
	wait()

	// Registrations and casts spread over the nodes.
	eid := map[string]string{}
	for k, voter := range []string{"v1", "v2", "v3", "v4", "v5", "v6"} {
		eid[voter] = v.register(ctx, k%3, voter)
	}
	wait()
	v.cast(ctx, 0, "v1", eid["v1"], "alice")
	v.cast(ctx, 1, "v2", eid["v2"], "bob")
	v.cast(ctx, 2, "v3", eid["v3"], "carol")
	v.cast(ctx, 0, "v4", eid["v4"], "alice")
	wait()
	v.cast(ctx, 1, "v4", eid["v4"], "bob") // replaces alice
	v.cast(ctx, 2, "v5", eid["v5"], "alice")
	wait()
	v.must(ctx, v.clerk[0], apps.KindUncast, map[string]any{"ballot": v.ballot, "voter": "v5", "eid": eid["v5"]})
	v.cast(ctx, 1, "v6", eid["v6"], "bob")
	wait()
	v.must(ctx, v.auth[2], apps.KindWithdraw, map[string]any{"ballot": v.ballot, "voter": "v6", "eid": eid["v6"], "reason": "moved away"})
	wait()

	// Every node refuses what breaks a rule it can see.
	v.refused(ctx, v.auth[1], apps.RuleDupRegister, apps.KindRegister, map[string]any{"ballot": v.ballot, "voter": "v1"})
	v.refused(ctx, v.clerk[2], apps.RuleWithdrawn, apps.KindCast, map[string]any{"ballot": v.ballot, "voter": "v6", "eid": eid["v6"], "choice": "alice"})
	v.refused(ctx, v.clerk[0], apps.RuleNotRegistered, apps.KindCast, map[string]any{"ballot": v.ballot, "voter": "nobody", "eid": eid["v1"], "choice": "alice"})
	v.refused(ctx, v.clerk[1], apps.RuleWrongEID, apps.KindCast, map[string]any{"ballot": v.ballot, "voter": "v1", "eid": eid["v2"], "choice": "alice"})

	// Partition node 1 | nodes 2 and 3; each side accepts what clashes
	// with the other's records.
	if err := c.Partition(ctx, []int{0}, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	before := v.puts
	eA := v.register(ctx, 0, "v7") // v7 registered on both sides
	eB := v.register(ctx, 2, "v7")
	v.cast(ctx, 0, "v7", eA, "alice")
	v.cast(ctx, 2, "v7", eB, "bob")
	v.cast(ctx, 0, "v1", eid["v1"], "bob") // v1 changes their mind on both sides
	v.cast(ctx, 1, "v1", eid["v1"], "carol")
	v.must(ctx, v.auth[0], apps.KindWithdraw, map[string]any{"ballot": v.ballot, "voter": "v3", "eid": eid["v3"]})
	v.cast(ctx, 2, "v3", eid["v3"], "alice") // after the withdrawal, which side 2 has not seen
	v.must(ctx, v.clerk[1], apps.KindUncast, map[string]any{"ballot": v.ballot, "voter": "v2", "eid": eid["v2"]})
	v.cast(ctx, 0, "v2", eid["v2"], "alice")
	during := v.puts - before
	if _, err := c.WaitConverged(ctx, 0, 1, 2); err != nil {
		t.Fatal(err)
	}
	a, _, err := c.Digest(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := c.Digest(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a+b != 2*(v.puts-during)+during {
		t.Fatalf("during the partition the sides hold %d and %d records; %d were made before it and %d during", a, b, v.puts-during, during)
	}
	if err := c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	total, err := c.WaitConverged(ctx, v.puts)
	if err != nil {
		t.Fatal(err)
	}
	if total != v.puts {
		t.Fatalf("after the heal the nodes hold %d records, %d were made", total, v.puts)
	}

	// Every node prints the same tally, byte for byte, through the CLI.
	known := filepath.Join(t.TempDir(), "known_nodes")
	var texts, jsons [][]byte
	for _, nd := range c.Nodes() {
		texts = append(texts, runCLI(t, "tally", "--server", nd.ClientAddr, "--known-nodes", known, v.ballot))
		jsons = append(jsons, runCLI(t, "tally", "--server", nd.ClientAddr, "--known-nodes", known, "--json", v.ballot))
	}
	for i := 1; i < len(texts); i++ {
		if !bytes.Equal(texts[i], texts[0]) || !bytes.Equal(jsons[i], jsons[0]) {
			t.Fatalf("node %d prints another tally than node 1:\n%s\n---\n%s", i+1, texts[i], texts[0])
		}
	}
	t.Logf("tally on every node:\n%s", texts[0])
	var tally apps.Tally
	if err := json.Unmarshal(jsons[0], &tally); err != nil {
		t.Fatal(err)
	}
	// The records were made one after another on one clock, so canonical
	// order is the order they were made in: v7's registration on node 3
	// came second (a duplicate) and the cast with its eid names the wrong
	// eid; v3's cast on node 3 came after its withdrawal on node 1; v1's
	// later cast (carol) replaced the earlier (bob); v2's cast (alice) came
	// after its uncast.
	rules := map[string]int{}
	for _, vi := range tally.Violations {
		rules[vi.Rule]++
	}
	if len(tally.Violations) != 3 || rules[apps.RuleDupRegister] != 1 || rules[apps.RuleWrongEID] != 1 || rules[apps.RuleWithdrawn] != 1 {
		t.Errorf("violations %v: want one each of duplicate-registration, wrong-eid (v7) and after-withdrawal (v3)", rules)
	}
	if tally.Registered != 7 || tally.Withdrawn != 2 || tally.Effective != 5 || tally.Voted != 4 || tally.Replaced != 3 {
		t.Errorf("registered %d withdrawn %d effective %d voted %d replaced %d, want 7, 2, 5, 4, 3",
			tally.Registered, tally.Withdrawn, tally.Effective, tally.Voted, tally.Replaced)
	}
	want := []apps.ChoiceCount{{Choice: "alice", Votes: 2}, {Choice: "bob", Votes: 1}, {Choice: "carol", Votes: 1}}
	if !slices.Equal(tally.Counts, want) {
		t.Errorf("counts %v, want %v", tally.Counts, want)
	}
	if tally.Records != v.puts {
		t.Errorf("the tally read %d records, %d were made", tally.Records, v.puts)
	}

	// An export of one node, tallied by the CLI and by an independent
	// reader, gives the same figures.
	if err := c.Stop(2); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(t.TempDir(), "chain.jsonl")
	runCLI(t, "chain", "export", "--data", c.Nodes()[2].DataDir, "--out", export)
	if got := runCLI(t, "tally", "--export", export, v.ballot); !bytes.Equal(got, texts[0]) {
		t.Fatalf("tally --export prints\n%s\nthe nodes print\n%s", got, texts[0])
	}
	ind, err := independentTally(export, v.ballot)
	if err != nil {
		t.Fatal(err)
	}
	compareIndependent(t, &tally, ind)
}

// runCLI runs pyvnode in-process and returns its standard output.
func runCLI(t *testing.T, args ...string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), append([]string{"pyvnode"}, args...), cli.Env{Stdout: &out, Stderr: &errb, Stdin: bytes.NewReader(nil)})
	if code != 0 {
		t.Fatalf("pyvnode %v: exit %d\n%s", args, code, errb.String())
	}
	return out.Bytes()
}

// compareIndependent checks the node's tally against the independent one.
func compareIndependent(t *testing.T, tally *apps.Tally, ind *indepTally) {
	t.Helper()
	counts := map[string]int{}
	for _, cc := range tally.Counts {
		counts[cc.Choice] = cc.Votes
	}
	if fmt.Sprint(counts) != fmt.Sprint(ind.Counts) {
		t.Errorf("counts: node %v, independent %v", counts, ind.Counts)
	}
	if tally.Registered != ind.Registered || tally.Withdrawn != ind.Withdrawn || tally.Effective != ind.Effective || tally.Voted != ind.Voted {
		t.Errorf("voters: node %d/%d/%d/%d, independent %d/%d/%d/%d (registered/withdrawn/effective/voted)",
			tally.Registered, tally.Withdrawn, tally.Effective, tally.Voted, ind.Registered, ind.Withdrawn, ind.Effective, ind.Voted)
	}
	var mine []string
	for _, vi := range tally.Violations {
		mine = append(mine, vi.ID.String()+" "+vi.Rule)
	}
	var theirs []string
	for id, rule := range ind.Violations {
		theirs = append(theirs, id+" "+rule)
	}
	slices.Sort(mine)
	slices.Sort(theirs)
	if !slices.Equal(mine, theirs) {
		t.Errorf("violations: node %v, independent %v", mine, theirs)
	}
	if tally.Digest.String() != ind.Digest {
		t.Errorf("digest: node %s, independent %s", tally.Digest, ind.Digest)
	}
}
