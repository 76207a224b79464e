package ledger

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// fuzzVectors loads testdata/vectors.json so every fuzz target starts from
// the documented examples.
func fuzzVectors(f *testing.F) *Vectors {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var v Vectors
	if err := json.Unmarshal(b, &v); err != nil {
		f.Fatal(err)
	}
	return &v
}

func FuzzDecodeSignedRecord(f *testing.F) {
	v := fuzzVectors(f)
	env := mustHex(v.Envelope)
	f.Add(env)
	f.Add(env[:40])
	f.Add([]byte{0x82, 0xa0, 0x40})
	f.Add(mustHex(v.RecordCBOR))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSignedRecord(b)
		if err != nil {
			if CheckName(err) == "" {
				t.Fatalf("error without a check name: %v", err)
			}
			return
		}
		if !bytes.Equal(s.Encode(), b) {
			t.Fatalf("decoded envelope re-encodes differently:\n in %x\nout %x", b, s.Encode())
		}
		again, err := s.Record.Encode()
		if err != nil || !bytes.Equal(again, s.RecordBytes()) {
			t.Fatalf("record re-encodes differently: %v", err)
		}
		if _, err := PayloadJSON(s.Payload); err != nil {
			t.Fatalf("accepted payload cannot be shown as JSON: %v", err)
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	v := fuzzVectors(f)
	f.Add(mustHex(v.RecordCBOR))
	f.Add([]byte{0xa7})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		again, err := r.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("record re-encodes differently: %x vs %x (%v)", b, again, err)
		}
	})
}

func FuzzPayload(f *testing.F) {
	v := fuzzVectors(f)
	f.Add(mustHex(v.PayloadCBOR))
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x61, 'a', 0xf9, 0x3c, 0x00}) // a half float
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := CheckPayload(b); err != nil {
			return
		}
		js, err := PayloadJSON(b)
		if err != nil {
			t.Fatalf("accepted payload has no JSON form: %v", err)
		}
		back, err := PayloadFromJSON(js)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("payload -> JSON -> payload differs: %x -> %s -> %x (%v)", b, js, back, err)
		}
	})
}

func FuzzPayloadFromJSON(f *testing.F) {
	v := fuzzVectors(f)
	f.Add(v.PayloadJSON)
	f.Add(`{"a":[1,-2,{"$bytes":"AA=="}],"b":true}`)
	f.Add(`{"x":1.0}`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := PayloadFromJSON([]byte(s))
		if err != nil {
			return
		}
		if err := CheckPayload(p); err != nil {
			t.Fatalf("PayloadFromJSON produced an invalid payload: %v", err)
		}
		js, err := PayloadJSON(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := PayloadFromJSON(js)
		if err != nil || !bytes.Equal(p, p2) {
			t.Fatalf("JSON round trip differs (%v)", err)
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	v := fuzzVectors(f)
	f.Add([]byte(v.CheckpointNote))
	f.Add([]byte(strings.Replace(v.CheckpointNote, "\n3\n", "\n03\n", 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := OpenCheckpoint(b, NodeID{})
		if err != nil {
			return
		}
		// An accepted checkpoint's body is exactly what we would write.
		if !bytes.HasPrefix(b, []byte(cp.Text())) {
			t.Fatalf("accepted checkpoint body differs from its re-encoding:\n%q\n%q", b, cp.Text())
		}
	})
}

func FuzzParseGenesis(f *testing.F) {
	v := fuzzVectors(f)
	f.Add(v.GenesisJSON)
	f.Add(`{"network":"x","pow_bits":0,"originators":{"vote.*":["` + v.NodeID + `"]}}`)
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGenesis([]byte(s))
		if err != nil {
			return
		}
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		g2, err := ParseGenesis(b)
		if err != nil || g2.Hash() != g.Hash() {
			t.Fatalf("genesis does not survive a round trip: %v", err)
		}
	})
}

func FuzzExportRecordLine(f *testing.F) {
	v := fuzzVectors(f)
	f.Add(v.ExportLine)
	f.Fuzz(func(t *testing.T, line string) {
		var x ExportRecord
		if strictJSON([]byte(line), &x) != nil {
			return
		}
		rec, err := x.SignedRecord()
		if err != nil {
			return
		}
		if hex.EncodeToString(rec.RecordBytes()) != hex.EncodeToString(x.Record) {
			t.Fatal("record bytes changed")
		}
	})
}
