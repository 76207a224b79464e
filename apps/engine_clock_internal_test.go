package apps

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/ledger"
)

// TestEngineSameInstantSubmission: when the clock does not advance between
// two submissions (a coarse clock), the second must still come after the
// first in canonical order, whatever its id: a disbursement checked as
// "after the donation" must not be appended "before" it and show as a
// violation in the node's own report.
func TestEngineSameInstantSubmission(t *testing.T) {
	g := ledger.NewGenesis("testnet")
	g.PowBits = 0
	st, err := ledger.Open(ledger.Options{Dir: t.TempDir(), Genesis: g, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ident := &ledger.Identity{Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))}
	put := func(ctx context.Context, kind string, payload cbor.RawMessage, author string, created time.Time) (*ledger.SignedRecord, ledger.Entry, error) {
		rec, err := ledger.NewSignedRecord(ctx, ident, g, kind, payload, author, created)
		if err != nil {
			return nil, ledger.Entry{}, err
		}
		ent, err := st.Append(ctx, rec, 0, "local")
		return rec, ent, err
	}
	e := NewEngine("testnet", st, put)
	ctx := context.Background()
	clock := time.Unix(1_800_000_000, 0)
	e.now = func() time.Time { return clock }
	submit := func(kind string, p map[string]any) (*ledger.SignedRecord, error) {
		raw, err := ledger.EncodePayload(p)
		if err != nil {
			t.Fatal(err)
		}
		rec, _, err := e.Submit(ctx, kind, raw, "alice")
		return rec, err
	}
	for i := range 64 {
		fund := fmt.Sprintf("f%d", i)
		clock = clock.Add(time.Second)
		if _, err := submit(KindFund, map[string]any{"fund": fund, "name": "F", "currency": "EUR"}); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Second) // the donation and the disbursement share this instant
		don, err := submit(KindDonation, map[string]any{"fund": fund, "currency": "EUR", "amount": uint64(100)})
		if err != nil {
			t.Fatal(err)
		}
		dis, err := submit(KindDisbursement, map[string]any{"fund": fund, "currency": "EUR", "amount": uint64(100)})
		if err != nil {
			t.Fatalf("disbursement refused: %v", err)
		}
		if bytes.Compare(dis.ID[:], don.ID[:]) > 0 {
			continue // sorts after the donation: no clash this time
		}
		x, err := e.Index(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r, err := x.FundReport(fund)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Violations) != 0 || r.Disbursed != 100 {
			t.Fatalf("the engine accepted disbursement %s, yet the report of fund %s has disbursed %d and violations %+v",
				dis.ID, fund, r.Disbursed, r.Violations)
		}
		return
	}
	t.Fatal("no disbursement sorted before its donation in 64 tries")
}

// TestEngineSameInstantVote: a ballot, a registration and a cast made
// while the clock stands still all count, whatever their ids.
func TestEngineSameInstantVote(t *testing.T) {
	g := ledger.NewGenesis("testnet")
	g.PowBits = 0
	st, err := ledger.Open(ledger.Options{Dir: t.TempDir(), Genesis: g, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ident := &ledger.Identity{Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))}
	e := NewEngine("testnet", st, func(ctx context.Context, kind string, payload cbor.RawMessage, author string, created time.Time) (*ledger.SignedRecord, ledger.Entry, error) {
		rec, err := ledger.NewSignedRecord(ctx, ident, g, kind, payload, author, created)
		if err != nil {
			return nil, ledger.Entry{}, err
		}
		ent, err := st.Append(ctx, rec, 0, "local")
		return rec, ent, err
	})
	clock := time.Unix(1_800_000_000, 0)
	e.now = func() time.Time { return clock }
	ctx := context.Background()
	submit := func(kind string, p map[string]any) *ledger.SignedRecord {
		raw, err := ledger.EncodePayload(p)
		if err != nil {
			t.Fatal(err)
		}
		rec, _, err := e.Submit(ctx, kind, raw, "alice")
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		return rec
	}
	for i := range 32 {
		b := fmt.Sprintf("b%d", i)
		submit(KindBallot, map[string]any{"ballot": b, "question": "Q?", "choices": []any{"x", "y"},
			"opens": clock.Unix() - 1, "closes": clock.Unix() + 3600})
		reg := submit(KindRegister, map[string]any{"ballot": b, "voter": "v"})
		p, _ := ledger.DecodePayload(reg.Payload)
		submit(KindCast, map[string]any{"ballot": b, "voter": "v", "eid": p["eid"], "choice": "x"})
		x, err := e.Index(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tl, err := x.Tally(b)
		if err != nil {
			t.Fatal(err)
		}
		if tl.Registered != 1 || tl.Voted != 1 || len(tl.Violations) != 0 {
			t.Fatalf("ballot %s made at one instant: %+v", b, tl)
		}
	}
}
