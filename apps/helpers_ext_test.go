package apps_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
)

// Shared helpers of the external (apps_test) tests.

const testNet = "testnet"

// idGen hands out distinct record ids: SHA-256 of a counter.
type idGen struct{ n uint64 }

func (g *idGen) next() ledger.ID {
	g.n++
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], g.n)
	return sha256.Sum256(b[:])
}

// smallID is 00 00 kk 00…00, the illustrative ids of docs/APPLICATIONS.md.
func smallID(k byte) ledger.ID {
	var id ledger.ID
	id[2] = k
	return id
}

// enc encodes a payload or fails the test.
func enc(t testing.TB, m map[string]any) []byte {
	t.Helper()
	raw, err := ledger.EncodePayload(m)
	if err != nil {
		t.Fatalf("EncodePayload(%v): %v", m, err)
	}
	return raw
}

// sec turns Unix seconds into Unix nanoseconds.
func sec(s int64) int64 { return s * 1e9 }

// eid makes a well-formed electronic id from a number.
func eid(n int) string { return fmt.Sprintf("%032x", n) }

// digestOf is SHA-256 over the ids in the order given.
func digestOf(ids ...ledger.ID) ledger.Hash {
	h := sha256.New()
	for _, id := range ids {
		h.Write(id[:])
	}
	var out ledger.Hash
	copy(out[:], h.Sum(nil))
	return out
}

// canonicalIDs sorts keys in canonical order (created, then id) and returns the ids.
func canonicalIDs(keys []apps.Key) []ledger.ID {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b apps.Key) int { return a.Compare(b) })
	out := make([]ledger.ID, len(keys))
	for i, k := range keys {
		out[i] = k.ID
	}
	return out
}

// ruleMap is the violations as id -> rule; it fails on a record listed twice.
func ruleMap(t testing.TB, vs []apps.Violation) map[ledger.ID]string {
	t.Helper()
	m := map[ledger.ID]string{}
	for _, v := range vs {
		if _, dup := m[v.ID]; dup {
			t.Errorf("record %s has two violations", v.ID)
		}
		m[v.ID] = v.Rule
	}
	return m
}

// wantRules checks that the violations are exactly want (id -> rule).
func wantRules(t testing.TB, vs []apps.Violation, want map[ledger.ID]string) {
	t.Helper()
	got := ruleMap(t, vs)
	for id, rule := range want {
		if got[id] != rule {
			t.Errorf("record %s: rule %q, want %q", id.String()[:12], got[id], rule)
		}
	}
	for id, rule := range got {
		if _, ok := want[id]; !ok {
			v := findViolation(vs, id)
			t.Errorf("unexpected violation of record %s: %s: %s", id.String()[:12], rule, v.Detail)
		}
	}
}

func findViolation(vs []apps.Violation, id ledger.ID) *apps.Violation {
	for i := range vs {
		if vs[i].ID == id {
			return &vs[i]
		}
	}
	return nil
}

// wantRef checks that the violation of record id refers to ref (nil: no ref).
func wantRef(t testing.TB, vs []apps.Violation, id ledger.ID, ref *ledger.ID) {
	t.Helper()
	v := findViolation(vs, id)
	if v == nil {
		t.Errorf("no violation for record %s", id)
		return
	}
	switch {
	case ref == nil && v.Ref != nil:
		t.Errorf("violation %s of %s has ref %s, want none", v.Rule, id.String()[:12], v.Ref)
	case ref != nil && v.Ref == nil:
		t.Errorf("violation %s of %s has no ref, want %s", v.Rule, id.String()[:12], ref)
	case ref != nil && *v.Ref != *ref:
		t.Errorf("violation %s of %s has ref %s, want %s", v.Rule, id.String()[:12], v.Ref, ref)
	}
}

// wantSortedViolations checks the canonical order of a violation list.
func wantSortedViolations(t testing.TB, vs []apps.Violation) {
	t.Helper()
	for i := 1; i < len(vs); i++ {
		a, b := apps.Key{Created: vs[i-1].Created, ID: vs[i-1].ID}, apps.Key{Created: vs[i].Created, ID: vs[i].ID}
		if !a.Less(b) {
			t.Errorf("violations %d and %d are not in canonical order", i-1, i)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantLines checks that text contains each line (exactly, as a whole line).
func wantLines(t testing.TB, text string, lines ...string) {
	t.Helper()
	have := strings.Split(text, "\n")
	for _, l := range lines {
		if !slices.Contains(have, l) {
			t.Errorf("output lacks line %q; output:\n%s", l, text)
		}
	}
}

func textOf(write func(*bytes.Buffer)) string {
	var b bytes.Buffer
	write(&b)
	return b.String()
}
