package protocol

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
)

// putApp submits kind with payload p and returns the result or error.
func putApp(t testing.TB, c *Client, kind string, p map[string]any) (PutResult, error) {
	t.Helper()
	raw, err := ledger.EncodePayload(p)
	if err != nil {
		t.Fatal(err)
	}
	var r PutResult
	err = c.Call(context.Background(), "put", map[string]any{"kind": kind, "payload": cbor.RawMessage(raw)}, &r)
	return r, err
}

func mustPut(t testing.TB, c *Client, kind string, p map[string]any) PutResult {
	t.Helper()
	r, err := putApp(t, c, kind, p)
	if err != nil {
		t.Fatalf("%s %v: %v", kind, p, err)
	}
	return r
}

// wantRefused checks a refusal with the rule in Check.
func wantRefused(t *testing.T, err error, rule string) {
	t.Helper()
	pe, ok := err.(*Error)
	if !ok || pe.Code != ErrRefused.Code || pe.Check != rule {
		t.Fatalf("got %v, want refused (%s)", err, rule)
	}
}

// ballotSetup makes a ballot and registers voter v1, returning its eid.
func ballotSetup(t testing.TB, ts *testServer, auth *Client) string {
	t.Helper()
	now := time.Now()
	mustPut(t, auth, apps.KindBallot, map[string]any{"ballot": "b1", "question": "Yes or no?", "choices": []any{"yes", "no"},
		"opens": now.Add(-time.Minute).Unix(), "closes": now.Add(time.Hour).Unix()})
	r := mustPut(t, auth, apps.KindRegister, map[string]any{"ballot": "b1", "voter": "v1"})
	var got RecordResult
	if err := auth.Call(context.Background(), "get", map[string]any{"id": r.ID}, &got); err != nil {
		t.Fatal(err)
	}
	p, err := ledger.DecodePayload(got.Payload)
	if err != nil {
		t.Fatal(err)
	}
	eid, _ := p["eid"].(string)
	if len(eid) != apps.EIDHexLen {
		t.Fatalf("registration payload %v: the node did not allocate an eid", p)
	}
	return eid
}

func TestAppRoles(t *testing.T) {
	ts := startServer(t, serverOptions{})
	clients := map[string]*Client{}
	for _, u := range []string{"admin", "writer", "reader", "authority"} {
		clients[u] = ts.dial(t)
		ts.login(t, clients[u], u)
	}
	ballot := map[string]any{"ballot": "b1", "question": "Q?", "choices": []any{"a", "b"}, "opens": int64(0), "closes": time.Now().Add(time.Hour).Unix()}
	// Only an authority makes ballots; an admin is not one.
	for _, u := range []string{"admin", "writer"} {
		if _, err := putApp(t, clients[u], apps.KindBallot, ballot); errCode(err) != ErrForbidden.Code {
			t.Errorf("%s made a ballot: %v", u, err)
		}
	}
	if _, err := putApp(t, clients["reader"], apps.KindBallot, ballot); errCode(err) != ErrForbidden.Code {
		t.Errorf("reader made a ballot: %v", err)
	}
	mustPut(t, clients["authority"], apps.KindBallot, ballot)
	// Registration and withdrawal too; a client may not choose the eid.
	if _, err := putApp(t, clients["writer"], apps.KindRegister, map[string]any{"ballot": "b1", "voter": "v1"}); errCode(err) != ErrForbidden.Code {
		t.Errorf("writer registered a voter: %v", err)
	}
	_, err := putApp(t, clients["authority"], apps.KindRegister, map[string]any{"ballot": "b1", "voter": "v1", "eid": "00000000000000000000000000000000"})
	wantRefused(t, err, apps.RuleEIDAllocated)
	// An authority is a writer for everything else.
	mustPut(t, clients["authority"], "note.text", map[string]any{"text": "generic records still work"})
	mustPut(t, clients["writer"], apps.KindFund, map[string]any{"fund": "f1", "name": "Fund", "currency": "EUR"})
	// Reserved kinds this version does not define, and file.*, are refused.
	for _, kind := range []string{"vote.recount", "charity.gift", "resource.burn", "file.publish"} {
		if _, err := putApp(t, clients["writer"], kind, map[string]any{"x": "y"}); errCode(err) != ErrInvalidRecord.Code {
			t.Errorf("put %s: %v, want invalid_record", kind, err)
		}
	}
	// A malformed application payload is refused with the field named.
	_, err = putApp(t, clients["writer"], apps.KindDonation, map[string]any{"fund": "f1", "amount": int64(-5), "currency": "EUR"})
	if pe, ok := err.(*Error); !ok || pe.Code != ErrInvalidRecord.Code || pe.Check != "payload" {
		t.Errorf("negative donation: %v", err)
	}
	if n := ts.be.st.Count(); n != 3 {
		t.Errorf("chain holds %d records, want 3 (ballot, note, fund)", n)
	}
}

func TestAppVoteFlowAndReceipt(t *testing.T) {
	ts := startServer(t, serverOptions{})
	auth, clerk, anon := ts.dial(t), ts.dial(t), ts.dial(t)
	ts.login(t, auth, "authority")
	ts.login(t, clerk, "writer")
	eid := ballotSetup(t, ts, auth)
	ctx := context.Background()

	_, err := putApp(t, auth, apps.KindRegister, map[string]any{"ballot": "b1", "voter": "v1"})
	wantRefused(t, err, apps.RuleDupRegister)
	_, err = putApp(t, clerk, apps.KindCast, map[string]any{"ballot": "b1", "voter": "v2", "eid": eid, "choice": "yes"})
	wantRefused(t, err, apps.RuleNotRegistered)
	_, err = putApp(t, clerk, apps.KindCast, map[string]any{"ballot": "b1", "voter": "v1", "eid": eid, "choice": "maybe"})
	wantRefused(t, err, apps.RuleUnknownChoice)
	_, err = putApp(t, clerk, apps.KindCast, map[string]any{"ballot": "nope", "voter": "v1", "eid": eid, "choice": "yes"})
	wantRefused(t, err, apps.RuleNoDefinition)
	cast := mustPut(t, clerk, apps.KindCast, map[string]any{"ballot": "b1", "voter": "v1", "eid": eid, "choice": "yes"})
	mustPut(t, clerk, "note.text", map[string]any{"text": "the chain grows after the receipt"})

	// The receipt verifies against the node, offline parts included.
	var rc apps.Receipt
	if err := anon.Call(ctx, "receipt", map[string]any{"id": cast.ID}, &rc); err != nil {
		t.Fatal(err)
	}
	if rc.Record != cast.ID || rc.Height != cast.Height || rc.Kind != apps.KindCast || rc.Node != ts.be.id.ID() {
		t.Fatalf("receipt %+v for put %+v", rc, cast)
	}
	mustPut(t, clerk, "note.text", map[string]any{"text": "and again"})
	chk, err := VerifyReceipt(ctx, anon, &rc)
	if err != nil {
		t.Fatal(err)
	}
	if !chk.Consistent || chk.ServerSize <= rc.Size || chk.ServerHeight != rc.Height {
		t.Errorf("check %+v", chk)
	}
	// A receipt round-trips through JSON (the file the CLI writes).
	b, _ := json.Marshal(&rc)
	back, err := apps.ParseReceipt(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyReceipt(ctx, anon, back); err != nil {
		t.Fatalf("receipt after JSON: %v", err)
	}
	// Tampered receipts fail.
	tamper := map[string]func(r *apps.Receipt){
		"height":     func(r *apps.Receipt) { r.Height++ },
		"root":       func(r *apps.Receipt) { r.Root[0] ^= 1 },
		"record":     func(r *apps.Receipt) { r.Record[5] ^= 1 },
		"kind":       func(r *apps.Receipt) { r.Kind = apps.KindUncast },
		"network":    func(r *apps.Receipt) { r.Network = "other" },
		"checkpoint": func(r *apps.Receipt) { r.Checkpoint = r.Checkpoint[:len(r.Checkpoint)-10] + "AAAAAAAAA\n" },
		"proof":      func(r *apps.Receipt) { r.Proof = r.Proof[:len(r.Proof)-1] },
	}
	for name, f := range tamper {
		bad := rc
		bad.Proof = append([]ledger.HexBytes{}, rc.Proof...)
		f(&bad)
		if _, err := VerifyReceipt(ctx, anon, &bad); err == nil {
			t.Errorf("receipt with a changed %s verified", name)
		}
	}

	// The tally over the protocol.
	mustPut(t, auth, apps.KindWithdraw, map[string]any{"ballot": "b1", "voter": "v1", "eid": eid})
	_, err = putApp(t, clerk, apps.KindCast, map[string]any{"ballot": "b1", "voter": "v1", "eid": eid, "choice": "no"})
	wantRefused(t, err, apps.RuleWithdrawn)
	var tally apps.Tally
	if err := anon.Call(ctx, "vote.tally", map[string]any{"ballot": "b1"}, &tally); err != nil {
		t.Fatal(err)
	}
	if tally.Registered != 1 || tally.Withdrawn != 1 || tally.Voted != 0 || len(tally.Violations) != 0 || tally.Records != 4 {
		t.Errorf("tally %+v", tally)
	}
	if err := anon.Call(ctx, "vote.tally", map[string]any{"ballot": "none"}, &tally); errCode(err) != ErrNotFound.Code {
		t.Errorf("tally of a missing ballot: %v", err)
	}
	var bl BallotsResult
	if err := anon.Call(ctx, "vote.ballots", nil, &bl); err != nil || len(bl.Ballots) != 1 || bl.Ballots[0].Ballot != "b1" {
		t.Errorf("ballots %+v, %v", bl, err)
	}
}

func TestAppVoterKey(t *testing.T) {
	ts := startServer(t, serverOptions{})
	auth, clerk := ts.dial(t), ts.dial(t)
	ts.login(t, auth, "authority")
	ts.login(t, clerk, "writer")
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	mustPut(t, auth, apps.KindBallot, map[string]any{"ballot": "b1", "question": "Q?", "choices": []any{"yes", "no"},
		"opens": now.Add(-time.Minute).Unix(), "closes": now.Add(time.Hour).Unix()})
	r := mustPut(t, auth, apps.KindRegister, map[string]any{"ballot": "b1", "voter": "v1", "key": []byte(pub)})
	var got RecordResult
	if err := auth.Call(context.Background(), "get", map[string]any{"id": r.ID}, &got); err != nil {
		t.Fatal(err)
	}
	p, _ := ledger.DecodePayload(got.Payload)
	eid := p["eid"].(string)
	sign := func(choice string, seq uint64, key ed25519.PrivateKey) []byte {
		return ed25519.Sign(key, apps.VoterMessage("sectest", apps.KindCast, "b1", "v1", eid, choice, seq))
	}
	cast := func(choice string, seq uint64, sig []byte) error {
		m := map[string]any{"ballot": "b1", "voter": "v1", "eid": eid, "choice": choice, "seq": seq}
		if sig != nil {
			m["sig"] = sig
		}
		_, err := putApp(t, clerk, apps.KindCast, m)
		return err
	}
	wantRefused(t, cast("yes", 1, nil), apps.RuleBadSignature)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	wantRefused(t, cast("yes", 1, sign("yes", 1, other)), apps.RuleBadSignature)
	wantRefused(t, cast("no", 1, sign("yes", 1, priv)), apps.RuleBadSignature) // signed another choice
	if err := cast("yes", 5, sign("yes", 5, priv)); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, cast("yes", 5, sign("yes", 5, priv)), apps.RuleReplay)
	if err := cast("no", 6, sign("no", 6, priv)); err != nil {
		t.Fatal(err)
	}
	var tally apps.Tally
	if err := clerk.Call(context.Background(), "vote.tally", map[string]any{"ballot": "b1"}, &tally); err != nil {
		t.Fatal(err)
	}
	if tally.Counts[1].Votes != 1 || tally.Voted != 1 || tally.Replaced != 1 {
		t.Errorf("tally %+v", tally)
	}
}

func TestAppCharityAndResources(t *testing.T) {
	ts := startServer(t, serverOptions{})
	w := ts.dial(t)
	ts.login(t, w, "writer")
	ctx := context.Background()
	mustPut(t, w, apps.KindFund, map[string]any{"fund": "z", "name": "Zakat", "currency": "EUR", "operator": "Mosque council"})
	mustPut(t, w, apps.KindDonation, map[string]any{"fund": "z", "amount": int64(10000), "currency": "EUR", "source": "friday", "donor": "uid-0123456789abcdef0123456789abcdef"})
	mustPut(t, w, apps.KindDisbursement, map[string]any{"fund": "z", "amount": int64(2500), "currency": "EUR", "target": "food bank", "notes": "winter"})
	_, err := putApp(t, w, apps.KindDisbursement, map[string]any{"fund": "z", "amount": int64(7501), "currency": "EUR", "target": "x"})
	wantRefused(t, err, apps.RuleOverdraft)
	_, err = putApp(t, w, apps.KindDonation, map[string]any{"fund": "z", "amount": int64(1), "currency": "USD"})
	wantRefused(t, err, apps.RuleCurrency)
	var rep apps.FundReport
	if err := w.Call(ctx, "charity.report", map[string]any{"fund": "z"}, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Received != 10000 || rep.Disbursed != 2500 || rep.Balance != 7500 || len(rep.BySource) != 1 || rep.ByTarget[0].Name != "food bank" {
		t.Errorf("report %+v", rep)
	}
	var funds FundsResult
	if err := w.Call(ctx, "charity.funds", nil, &funds); err != nil || len(funds.Funds) != 1 {
		t.Errorf("funds %+v %v", funds, err)
	}

	mustPut(t, w, apps.KindAccount, map[string]any{"account": "lab", "unit": "cpu-hours"})
	mustPut(t, w, apps.KindAccount, map[string]any{"account": "ops", "unit": "cpu-hours", "overdraft": true})
	mustPut(t, w, apps.KindAllocate, map[string]any{"account": "lab", "amount": int64(10)})
	_, err = putApp(t, w, apps.KindUse, map[string]any{"account": "lab", "amount": int64(11)})
	wantRefused(t, err, apps.RuleOverdraft)
	mustPut(t, w, apps.KindUse, map[string]any{"account": "ops", "amount": int64(3)})
	mustPut(t, w, apps.KindTransfer, map[string]any{"from": "lab", "to": "ops", "amount": int64(4)})
	var rr apps.ResourceReport
	if err := w.Call(ctx, "resource.report", map[string]any{"period": "year"}, &rr); err != nil {
		t.Fatal(err)
	}
	if len(rr.Accounts) != 2 || rr.Accounts[0].Balance != 6 || rr.Accounts[1].Balance != 1 || len(rr.Usage) != 1 {
		t.Errorf("resource report %+v", rr)
	}
	if err := w.Call(ctx, "resource.report", map[string]any{"period": "week"}, &rr); errCode(err) != ErrBadRequest.Code {
		t.Errorf("bad period: %v", err)
	}
}

// BenchmarkVerifyReceipt measures what 'pyvnode verify-receipt' does once
// connected: fetch the record and the proofs, and check them all (on
// loopback). BenchmarkVerifyReceiptDial adds the connection and handshake.
func BenchmarkVerifyReceipt(b *testing.B) {
	ts, c, rc := receiptBenchSetup(b)
	_ = ts
	b.ResetTimer()
	for b.Loop() {
		if _, err := VerifyReceipt(context.Background(), c, rc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyReceiptDial(b *testing.B) {
	ts, _, rc := receiptBenchSetup(b)
	nid := ts.be.id.ID()
	b.ResetTimer()
	for b.Loop() {
		c, err := Dial(context.Background(), ts.addr, Options{ExpectNode: &nid})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := VerifyReceipt(context.Background(), c, rc); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// receiptBenchSetup casts a vote on a chain of 100,000 records and takes
// its receipt.
func receiptBenchSetup(b *testing.B) (*testServer, *Client, *apps.Receipt) {
	ts := startServer(b, serverOptions{limits: looseConnLimits(Limits{})})
	auth, clerk := ts.dial(b), ts.dial(b)
	ts.login(b, auth, "authority")
	ts.login(b, clerk, "writer")
	eid := ballotSetup(b, ts, auth)
	fill := func(n int) {
		items := make([]ledger.Pending, 0, 4096)
		for i := range n {
			rec, err := ledger.NewSignedRecord(context.Background(), ts.be.id, ts.be.g, "bench.note", cbor.RawMessage{0xa1, 0x61, 'n', byte(i & 0x17)}, "", time.Now())
			if err != nil {
				b.Fatal(err)
			}
			items = append(items, ledger.Pending{Record: rec, Source: "bench"})
			if len(items) == cap(items) || i == n-1 {
				if _, err := ts.be.st.AppendBatch(context.Background(), items); err != nil {
					b.Fatal(err)
				}
				items = items[:0]
			}
		}
	}
	fill(50_000)
	cast := mustPut(b, clerk, apps.KindCast, map[string]any{"ballot": "b1", "voter": "v1", "eid": eid, "choice": "yes"})
	var rc apps.Receipt
	if err := clerk.Call(context.Background(), "receipt", map[string]any{"id": cast.ID}, &rc); err != nil {
		b.Fatal(err)
	}
	fill(50_000)
	return ts, clerk, &rc
}
