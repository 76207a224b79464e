package recon

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
)

func item(seed uint64, t uint64) Item {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	return Item{T: t, ID: sha256.Sum256(b[:])}
}

// run reconciles two sets to the end and returns what each side learned,
// the round trips (messages from the initiator) and the bytes exchanged.
func run(t testing.TB, a, b *Set, branch, idmax int) (aHave, aNeed, bHave, bNeed map[[32]byte]bool, trips, bytes int) {
	return runFrame(t, a, b, branch, idmax, 0)
}

func runFrame(t testing.TB, a, b *Set, branch, idmax, frame int) (aHave, aNeed, bHave, bNeed map[[32]byte]bool, trips, bytes int) {
	ra := &Reconciler{Set: a, Branch: branch, IDListMax: idmax, FrameLimit: frame}
	rb := &Reconciler{Set: b, Branch: branch, IDListMax: idmax, FrameLimit: frame}
	aHave, aNeed, bHave, bNeed = map[[32]byte]bool{}, map[[32]byte]bool{}, map[[32]byte]bool{}, map[[32]byte]bool{}
	msg := ra.Initiate()
	side := 1 // who receives msg: 1 = b, 0 = a
	for msg != nil {
		bytes += len(msg)
		if side == 1 {
			trips++
		}
		var st *Step
		var err error
		if side == 1 {
			st, err = rb.Reconcile(msg)
		} else {
			st, err = ra.Reconcile(msg)
		}
		if err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
		have, need := aHave, aNeed
		if side == 1 {
			have, need = bHave, bNeed
		}
		for _, id := range st.Have {
			have[id] = true
		}
		for _, id := range st.Need {
			need[id] = true
		}
		msg = st.Reply
		side ^= 1
		if trips > 10_000 {
			t.Fatal("no end")
		}
		if frame > 0 && len(msg) > frame+4096 {
			t.Fatalf("a %d-byte message with a %d-byte frame limit", len(msg), frame)
		}
	}
	return
}

func TestReconcileFindsExactDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ common, onlyA, onlyB, branch, idmax, frame int }{
		{0, 0, 0, 16, 16, 0}, {0, 5, 0, 16, 16, 0}, {0, 0, 40, 16, 16, 0}, {100, 0, 0, 16, 16, 0},
		{1000, 1, 0, 16, 16, 0}, {1000, 0, 1, 16, 16, 0}, {5000, 37, 41, 16, 16, 0},
		{20000, 500, 3, 4, 2, 0}, {3000, 3000, 3000, 16, 16, 0}, {50000, 10, 10, 32, 8, 0},
		{20000, 400, 400, 16, 16, 2048}, // small frames: more rounds, same answer
	} {
		t.Run(fmt.Sprintf("%d+%d+%d/b%d/t%d/f%d", tc.common, tc.onlyA, tc.onlyB, tc.branch, tc.idmax, tc.frame), func(t *testing.T) {
			a, b := NewSet(), NewSet()
			onlyA, onlyB := map[[32]byte]bool{}, map[[32]byte]bool{}
			seed := rng.Uint64()
			for i := 0; i < tc.common; i++ {
				it := item(seed+uint64(i), uint64(rng.IntN(1000))) // many equal times
				a.Insert(it)
				b.Insert(it)
			}
			for i := 0; i < tc.onlyA; i++ {
				it := item(seed+1e9+uint64(i), uint64(rng.IntN(1000)))
				a.Insert(it)
				onlyA[it.ID] = true
			}
			for i := 0; i < tc.onlyB; i++ {
				it := item(seed+2e9+uint64(i), uint64(rng.IntN(1000)))
				b.Insert(it)
				onlyB[it.ID] = true
			}
			aHave, aNeed, bHave, bNeed, _, _ := runFrame(t, a, b, tc.branch, tc.idmax, tc.frame)
			// Together the two sides learn the exact symmetric difference.
			learnedA := union(aHave, bNeed) // in a, not in b
			learnedB := union(bHave, aNeed) // in b, not in a
			if !equalSets(learnedA, onlyA) || !equalSets(learnedB, onlyB) {
				t.Fatalf("learned %d/%d, want %d/%d", len(learnedA), len(learnedB), len(onlyA), len(onlyB))
			}
		})
	}
}

func union(x, y map[[32]byte]bool) map[[32]byte]bool {
	out := map[[32]byte]bool{}
	for k := range x {
		out[k] = true
	}
	for k := range y {
		out[k] = true
	}
	return out
}

func equalSets(x, y map[[32]byte]bool) bool {
	if len(x) != len(y) {
		return false
	}
	for k := range x {
		if !y[k] {
			return false
		}
	}
	return true
}

func TestSetFingerprintMatchesDirectSum(t *testing.T) {
	s := NewSet()
	var all []Item
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 5000 {
		it := item(uint64(i), uint64(rng.IntN(300)))
		s.Insert(it)
		all = append(all, it)
	}
	if s.Insert(all[17]) {
		t.Fatal("duplicate inserted")
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Less(all[j]) })
	for _, r := range [][2]int{{0, 0}, {0, 5000}, {13, 700}, {511, 513}, {4000, 5000}, {2500, 2501}} {
		var acc accumulator
		for i := r[0]; i < r[1]; i++ {
			acc.add(&all[i].ID)
			if s.At(i) != all[i] {
				t.Fatalf("At(%d) differs", i)
			}
		}
		if got := s.Fingerprint(r[0], r[1]); got != acc.fingerprint(r[1]-r[0]) {
			t.Fatalf("Fingerprint%v differs", r)
		}
	}
	for i := 1; i < len(all); i++ {
		if all[i-1] == all[i] {
			continue
		}
		b := boundBetween(all[i-1], all[i])
		if got := s.Find(b); got != i {
			t.Fatalf("Find(bound between %d and %d) = %d", i-1, i, got)
		}
	}
}

func TestMessageRoundTrip(t *testing.T) {
	rs := []Range{
		{Upper: Bound{T: 5}, Mode: ModeSkip},
		{Upper: Bound{T: 5, Prefix: []byte{1, 2}}, Mode: ModeFingerprint, FP: Fingerprint{9}},
		{Upper: Bound{T: 900}, Mode: ModeIDList, IDs: [][32]byte{{1}, {2}}},
		{Upper: Bound{Infinite: true}, Mode: ModeIDList},
	}
	b := Encode(rs)
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(Encode(got)) != string(b) {
		t.Fatal("re-encoding differs")
	}
	for _, bad := range [][]byte{nil, {2}, {1, 0, 0, 0, 1}, append(append([]byte{}, b...), 7)} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%x) accepted", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode([]Range{{Upper: Bound{T: 5, Prefix: []byte{1}}, Mode: ModeFingerprint}, {Upper: Bound{Infinite: true}, Mode: ModeIDList, IDs: [][32]byte{{3}}}}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := Decode(b)
		if err != nil {
			return
		}
		if string(Encode(rs)) != string(b) {
			t.Fatalf("decode/encode differs: %x", b)
		}
		// Any valid message can be processed against any set.
		s := NewSet()
		for i := range 100 {
			s.Insert(item(uint64(i), uint64(i%7)))
		}
		if _, err := (&Reconciler{Set: s}).Reconcile(b); err != nil {
			t.Fatalf("valid message refused: %v", err)
		}
	})
}
