package apps

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/pyvnode/pyvnode/ledger"
)

// benchVotes makes a ballot and n vote records: each voter registers and
// casts; every 10th casts again, every 50th uncasts, every 100th is then
// withdrawn (the mix of 'pyvnode bench tally').
func benchVotes(b *testing.B, n int) (defs, recs []*VoteRec) {
	b.Helper()
	id := func(i int) ledger.ID {
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], uint64(i))
		return sha256.Sum256(buf[:])
	}
	enc := func(p map[string]any) []byte {
		raw, err := ledger.EncodePayload(p)
		if err != nil {
			b.Fatal(err)
		}
		return raw
	}
	const t0 = int64(1_800_000_000) * 1e9
	defs = []*VoteRec{NewVoteRec(id(-1), KindBallot, t0, enc(map[string]any{"ballot": "b", "question": "Q?",
		"choices": []any{"alice", "bob", "carol"}, "opens": int64(1_800_000_000), "closes": int64(1_900_000_000)}))}
	choices := []string{"alice", "bob", "carol"}
	for v := 0; len(recs) < n; v++ {
		seq := []string{KindRegister, KindCast}
		if v%10 == 0 {
			seq = append(seq, KindCast)
		}
		if v%50 == 0 {
			seq = append(seq, KindUncast)
		}
		if v%100 == 0 {
			seq = append(seq, KindWithdraw)
		}
		for _, k := range seq {
			if len(recs) == n {
				break
			}
			p := map[string]any{"ballot": "b", "voter": fmt.Sprintf("voter-%07d", v), "eid": fmt.Sprintf("%032x", v)}
			if k == KindCast {
				p["choice"] = choices[(v+len(recs))%3]
			}
			i := len(recs)
			recs = append(recs, NewVoteRec(id(i), k, t0+int64(i+1)*1000, enc(p)))
		}
	}
	return defs, recs
}

// BenchmarkTally1M is the tally of a ballot with 1,000,000 vote records
// already in memory (as a running node holds them). 'pyvnode bench tally'
// measures the whole command, reading the chain from disk.
func BenchmarkTally1M(b *testing.B) {
	defs, recs := benchVotes(b, 1_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t, err := ComputeTally("bench", "b", append([]*VoteRec(nil), defs...), append([]*VoteRec(nil), recs...))
		if err != nil {
			b.Fatal(err)
		}
		if t.Records != 1_000_001 {
			b.Fatalf("tally read %d records", t.Records)
		}
	}
}
