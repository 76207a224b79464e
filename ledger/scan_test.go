package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
)

// scanRecords appends records of varied shapes: kinds of every length
// class, nested and large payloads, long authors and sources, big times.
func scanRecords(t *testing.T, s *Store, g *Genesis) {
	t.Helper()
	key := testKey(3)
	var items []Pending
	for i := range 300 {
		p := map[string]any{"n": int64(i - 150), "text": fmt.Sprintf("record %d", i)}
		switch i % 5 {
		case 1:
			p["deep"] = map[string]any{"a": []any{int64(1), map[string]any{"b": []byte{1, 2, 3}}, true}, "c": uint64(1) << 63}
		case 2:
			p["big"] = bytes.Repeat([]byte{'x'}, 30_000+i) // long byte string: 2-byte length
		case 3:
			p["list"] = make([]any, 300) // 2-byte array length
			for k := range 300 {
				p["list"].([]any)[k] = int64(k)
			}
		}
		raw, err := EncodePayload(p)
		if err != nil {
			t.Fatal(err)
		}
		kind := []string{"a", "note.text", "vote.cast", "k" + string(bytes.Repeat([]byte{'x'}, 40))}[i%4]
		rec := &Record{Version: RecordVersion, Kind: kind, Payload: raw, Origin: key.Public().(ed25519.PublicKey),
			Author: string(bytes.Repeat([]byte{'u'}, i%64)), Created: int64(i) * 1_000_003 << (i % 34)}
		sr, err := Sign(rec, key, g.Network)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, Pending{Record: sr, Source: string(bytes.Repeat([]byte{'s'}, i%100)), Replication: uint8(i)})
	}
	res, err := s.AppendBatch(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}

func TestScanAgreesWithIterate(t *testing.T) {
	g := testGenesis(0)
	s := openTestStore(t, t.TempDir(), g)
	defer s.Close()
	scanRecords(t, s, g)
	var want []ScanEntry
	err := s.Iterate(context.Background(), 0, func(r *SignedRecord, e Entry) error {
		want = append(want, ScanEntry{Height: e.Height, ID: r.ID, Kind: r.Kind, Created: r.Created, Payload: bytes.Clone(r.Payload)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []uint64{0, 1, 137, 299} {
		var got []ScanEntry
		err := s.Scan(context.Background(), from, func(e *ScanEntry) error {
			c := *e
			c.Payload = bytes.Clone(e.Payload)
			got = append(got, c)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want)-int(from) {
			t.Fatalf("from %d: scan gave %d entries, want %d", from, len(got), len(want)-int(from))
		}
		for i, e := range got {
			w := want[int(from)+i]
			if e.Height != w.Height || e.ID != w.ID || e.Kind != w.Kind || e.Created != w.Created || !bytes.Equal(e.Payload, w.Payload) {
				t.Fatalf("from %d, entry %d: scan %+v, iterate %+v", from, i, e, w)
			}
		}
	}
}

// FuzzScanFrame: the fast reader never panics, and whatever it accepts the
// full decoder reads the same way (when it accepts it too).
func FuzzScanFrame(f *testing.F) {
	g := testGenesis(0)
	key := testKey(4)
	for i := range 4 {
		r := makeRecord(f, key, g, i)
		e := Entry{Height: uint64(i), ID: r.ID, Source: "local", Received: int64(i) - 2}
		f.Add(encodeEntry(&e, make([]Hash, i), r))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		var se ScanEntry
		ok := scanFrame(v, &se)
		e, _, env, err := decodeEntry(v)
		if err != nil {
			return
		}
		rec, err := decodeStored(e, env)
		if err != nil || !ok {
			return
		}
		if se.Height != e.Height || se.ID != e.ID || se.Kind != rec.Kind || se.Created != rec.Created || !bytes.Equal(se.Payload, rec.Payload) {
			t.Fatalf("scan %+v, decode %+v / %s %d", se, e, rec.Kind, rec.Created)
		}
	})
}

func TestReadOnlyStore(t *testing.T) {
	g := testGenesis(0)
	dir := t.TempDir()
	s := openTestStore(t, dir, g)
	scanRecords(t, s, g)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(Options{Dir: dir, Genesis: g, Logger: quietLogger(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if ro.Count() != 300 {
		t.Fatalf("read-only store holds %d records, want 300", ro.Count())
	}
	n := 0
	if err := ro.Scan(context.Background(), 0, func(*ScanEntry) error { n++; return nil }); err != nil || n != 300 {
		t.Fatalf("scan read %d records: %v", n, err)
	}
	if _, err := ro.Append(context.Background(), makeRecord(t, testKey(9), g, 1), 0, "local"); err == nil {
		t.Fatal("a read-only store took an append")
	}
}
