package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

func baseRecord(key ed25519.PrivateKey) *Record {
	p, _ := EncodePayload(map[string]any{"text": "hello"})
	return &Record{
		Version: RecordVersion, Kind: "note.text", Payload: p,
		Origin: key.Public().(ed25519.PublicKey), Author: "alice", Created: 1_700_000_000_000_000_000,
	}
}

func TestRecordChecksNameTheCheck(t *testing.T) {
	key := testKey(1)
	cases := []struct {
		name  string
		edit  func(r *Record)
		want  error
		check string
	}{
		{"version", func(r *Record) { r.Version = 2 }, ErrVersion, "version"},
		{"empty kind", func(r *Record) { r.Kind = "" }, ErrKind, "kind"},
		{"upper kind", func(r *Record) { r.Kind = "Vote.cast" }, ErrKind, "kind"},
		{"trailing dot", func(r *Record) { r.Kind = "vote." }, ErrKind, "kind"},
		{"double dot", func(r *Record) { r.Kind = "vote..cast" }, ErrKind, "kind"},
		{"long kind", func(r *Record) { r.Kind = strings.Repeat("a", 65) }, ErrKind, "kind"},
		{"author space", func(r *Record) { r.Author = "al ice" }, ErrAuthor, "author"},
		{"short origin", func(r *Record) { r.Origin = r.Origin[:31] }, ErrOrigin, "origin"},
		{"negative time", func(r *Record) { r.Created = -1 }, ErrTime, "time"},
		{"payload not map", func(r *Record) { r.Payload = cbor.RawMessage{0x01} }, ErrPayload, "payload"},
		{"payload float", func(r *Record) { r.Payload = mustCBOR(map[string]any{"x": 1.5}) }, ErrPayload, "payload"},
		{"payload null", func(r *Record) { r.Payload = mustCBOR(map[string]any{"x": nil}) }, ErrPayload, "payload"},
		{"payload int key", func(r *Record) { r.Payload = mustCBOR(map[int]any{1: "x"}) }, ErrPayload, "payload"},
		{"payload reserved key", func(r *Record) { r.Payload = mustCBOR(map[string]any{"$bytes": "x"}) }, ErrPayload, "payload"},
		{"payload unsorted", func(r *Record) {
			// {"bb": 1, "a": 2}: keys out of canonical order.
			r.Payload = cbor.RawMessage{0xa2, 0x62, 'b', 'b', 0x01, 0x61, 'a', 0x02}
		}, ErrCanonical, "canonical"},
		{"payload long int", func(r *Record) {
			// 1 encoded in two bytes instead of one.
			r.Payload = cbor.RawMessage{0xa1, 0x61, 'a', 0x18, 0x01}
		}, ErrCanonical, "canonical"},
		{"payload tag", func(r *Record) { r.Payload = cbor.RawMessage{0xa1, 0x61, 'a', 0xc1, 0x01} }, ErrPayload, "payload"},
		{"payload too deep", func(r *Record) {
			r.Payload = mustCBOR(nested(MaxPayloadDepth + 1))
		}, ErrPayload, "payload"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := baseRecord(key)
			tc.edit(r)
			_, err := Sign(r, key, "testnet")
			if !errors.Is(err, tc.want) || CheckName(err) != tc.check {
				t.Fatalf("Sign err = %v (check %q), want %v (%q)", err, CheckName(err), tc.want, tc.check)
			}
		})
	}
}

// nested returns maps and arrays nested levels deep (the outer map is level
// 1) around a string.
func nested(levels int) map[string]any {
	var v any = "leaf"
	for i := 1; i < levels; i++ {
		if i%2 == 0 {
			v = []any{v}
		} else {
			v = map[string]any{"d": v}
		}
	}
	return map[string]any{"top": v}
}

func TestPayloadDepthLimitIsInclusive(t *testing.T) {
	if _, err := EncodePayload(nested(MaxPayloadDepth)); err != nil {
		t.Fatalf("payload %d levels deep refused: %v", MaxPayloadDepth, err)
	}
	if _, err := EncodePayload(nested(MaxPayloadDepth + 1)); !errors.Is(err, ErrPayload) {
		t.Fatalf("payload %d levels deep: err = %v", MaxPayloadDepth+1, err)
	}
}

func mustCBOR(v any) cbor.RawMessage {
	b, err := encMode.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestValidatorChecks(t *testing.T) {
	key := testKey(1)
	g := testGenesis(8)
	v := &Validator{Genesis: g}
	rec := baseRecord(key)
	if err := Mine(context.Background(), rec, 8); err != nil {
		t.Fatal(err)
	}
	good, err := Sign(rec, key, g.Network)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Check(good); err != nil {
		t.Fatalf("good record: %v", err)
	}
	if err := v.Check(mustDecode(t, good.Encode())); err != nil {
		t.Fatalf("decoded good record: %v", err)
	}

	// Signed for another network.
	other, _ := Sign(rec, key, "othernet")
	if err := v.Check(other); !errors.Is(err, ErrSignature) {
		t.Fatalf("other network signature: %v", err)
	}
	// Not enough work.
	lazy := baseRecord(key)
	lazy.Created++
	for lazy.Nonce = 0; ; lazy.Nonce++ {
		id, _ := lazy.ComputeID()
		if LeadingZeroBits(id) < 8 {
			break
		}
	}
	ls, _ := Sign(lazy, key, g.Network)
	if err := v.Check(ls); !errors.Is(err, ErrPoW) || CheckName(err) != "pow" {
		t.Fatalf("no work: %v", err)
	}
	// Originator rules.
	allowed := testKey(2)
	g2 := testGenesis(8)
	g2.Originators = map[string][]NodeID{"note.*": {NodeID(allowed.Public().(ed25519.PublicKey))}}
	if err := (&Validator{Genesis: g2}).Check(good); !errors.Is(err, ErrOriginator) {
		t.Fatalf("originator: %v", err)
	}
	g2.Originators["note.text"] = []NodeID{NodeID(key.Public().(ed25519.PublicKey))}
	if err := (&Validator{Genesis: g2}).Check(good); err != nil {
		t.Fatalf("exact kind entry should win over the prefix: %v", err)
	}
	// Clock skew.
	skew := &Validator{Genesis: g, MaxFutureSkew: time.Minute, Now: func() time.Time { return time.Unix(0, rec.Created).Add(-time.Hour) }}
	if err := skew.Check(good); !errors.Is(err, ErrTime) {
		t.Fatalf("future record: %v", err)
	}
}

func mustDecode(t *testing.T, b []byte) *SignedRecord {
	t.Helper()
	s, err := DecodeSignedRecord(b)
	if err != nil {
		t.Fatalf("DecodeSignedRecord: %v", err)
	}
	return s
}

func TestDecodeRejectsMalformedEnvelopes(t *testing.T) {
	key := testKey(1)
	good, err := Sign(baseRecord(key), key, "testnet")
	if err != nil {
		t.Fatal(err)
	}
	env := good.Encode()
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"empty":          {nil, ErrDecode},
		"not array":      {[]byte{0xa0}, ErrDecode},
		"truncated":      {env[:len(env)-1], ErrDecode},
		"trailing":       {append(bytes.Clone(env), 0x00), ErrDecode},
		"short sig":      {append(append([]byte{0x82}, good.RecordBytes()...), 0x41, 0x00), ErrSignature},
		"huge":           {append([]byte{0x82}, make([]byte, MaxRecordSize)...), ErrTooLarge},
		"extra field":    {replaceHeader(env, 0xa8, []byte{0x08, 0x00}), ErrDecode},
		"missing field":  {dropNonce(env), ErrDecode},
		"indefinite arr": {append(append([]byte{0x9f}, env[1:]...), 0xff), ErrDecode},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeSignedRecord(tc.b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// replaceHeader changes the record map's header byte and appends extra
// map content at the end of the record.
func replaceHeader(env []byte, hdr byte, extra []byte) []byte {
	sigStart := len(env) - 66
	out := []byte{0x82, hdr}
	out = append(out, env[2:sigStart]...)
	out = append(out, extra...)
	return append(out, env[sigStart:]...)
}

// dropNonce removes field 7 (nonce 0: bytes 0x07 0x00) and says the map has 6.
func dropNonce(env []byte) []byte {
	sigStart := len(env) - 66
	out := []byte{0x82, 0xa6}
	out = append(out, env[2:sigStart-2]...)
	return append(out, env[sigStart:]...)
}

func TestEnvelopeMatchesLibrary(t *testing.T) {
	key := testKey(1)
	s, err := Sign(baseRecord(key), key, "testnet")
	if err != nil {
		t.Fatal(err)
	}
	lib, err := encMode.Marshal(envelope{Record: s.RecordBytes(), Sig: s.Signature})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lib, s.Encode()) {
		t.Fatalf("hand-built envelope %x differs from library %x", s.Encode(), lib)
	}
}

func TestPayloadJSONRoundTrip(t *testing.T) {
	in := `{"text":"hé <b>","n":-42,"big":18446744073709551615,"ok":true,"list":[1,"two",{"$bytes":"AAEC"}],"map":{"z":1,"a":2}}`
	p, err := PayloadFromJSON([]byte(in))
	if err != nil {
		t.Fatalf("PayloadFromJSON: %v", err)
	}
	js, err := PayloadJSON(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"n":-42,"ok":true,"big":18446744073709551615,"map":{"a":2,"z":1},"list":[1,"two",{"$bytes":"AAEC"}],"text":"hé <b>"}`
	if string(js) != want {
		t.Fatalf("PayloadJSON = %s\nwant          %s", js, want)
	}
	p2, err := PayloadFromJSON(js)
	if err != nil || !bytes.Equal(p, p2) {
		t.Fatalf("round trip differs: %x vs %x (%v)", p, p2, err)
	}
	for _, bad := range []string{`[]`, `{"x":1.5}`, `{"x":1e3}`, `{"x":null}`, `{"x":{"$bytes":"!"}}`, `{"x":{"$bytes":"AA","y":1}}`, `{} {}`, `{"x":99999999999999999999}`} {
		if _, err := PayloadFromJSON([]byte(bad)); !errors.Is(err, ErrPayload) {
			t.Errorf("PayloadFromJSON(%s) err = %v, want ErrPayload", bad, err)
		}
	}
}

func TestMineFindsWorkAndCancels(t *testing.T) {
	key := testKey(1)
	rec := baseRecord(key)
	if err := Mine(context.Background(), rec, 12); err != nil {
		t.Fatal(err)
	}
	id, _ := rec.ComputeID()
	if LeadingZeroBits(id) < 12 {
		t.Fatalf("mined id %s has %d zero bits", id, LeadingZeroBits(id))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Mine(ctx, baseRecord(key), 32); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled mine: %v", err)
	}
	if err := Mine(context.Background(), baseRecord(key), 33); err == nil {
		t.Fatal("33 bits accepted")
	}
}

func TestLeadingZeroBits(t *testing.T) {
	for _, tc := range []struct {
		id   ID
		want int
	}{
		{ID{0x80}, 0}, {ID{0x01}, 7}, {ID{0, 0x0f}, 12}, {ID{}, 256}, {ID{0, 0, 0x40}, 17},
	} {
		if got := LeadingZeroBits(tc.id); got != tc.want {
			t.Errorf("LeadingZeroBits(%x) = %d, want %d", tc.id[:3], got, tc.want)
		}
	}
}

func TestNewSignedRecordRefusesNonOriginator(t *testing.T) {
	id := &Identity{Key: testKey(1)}
	other := &Identity{Key: testKey(2)}
	g := testGenesis(0)
	g.Originators = map[string][]NodeID{"vote.*": {other.ID()}}
	p, _ := EncodePayload(map[string]any{"x": int64(1)})
	if _, err := NewSignedRecord(context.Background(), id, g, "vote.register", p, "", time.Now()); !errors.Is(err, ErrOriginator) {
		t.Fatalf("err = %v, want ErrOriginator", err)
	}
	if _, err := NewSignedRecord(context.Background(), other, g, "vote.register", p, "", time.Now()); err != nil {
		t.Fatalf("allowed originator refused: %v", err)
	}
	if _, err := NewSignedRecord(context.Background(), id, g, "note.text", p, "", time.Now()); err != nil {
		t.Fatalf("open kind refused: %v", err)
	}
}
