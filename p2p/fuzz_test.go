package p2p

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/pyvnode/pyvnode/ledger"
)

// fuzzRecords are valid signed records to seed the corpora with.
func fuzzRecords(f *testing.F) []*ledger.SignedRecord {
	f.Helper()
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	id := &ledger.Identity{Key: ed25519.NewKeyFromSeed(seed)}
	g := ledger.NewGenesis("fuzznet")
	g.PowBits = 0
	var out []*ledger.SignedRecord
	for i, m := range []map[string]any{
		{},
		{"text": "hello", "n": int64(1)},
		{"blob": bytes.Repeat([]byte{0xab}, 2000), "tags": []any{"a", "b"}},
	} {
		p, err := ledger.EncodePayload(m)
		if err != nil {
			f.Fatal(err)
		}
		rec, err := ledger.NewSignedRecord(context.Background(), id, g, "note.text", p, "fuzz",
			time.Unix(1_700_000_000+int64(i), 0))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func messageID(data []byte) string { return gossipMessageID(&pb.Message{Data: data}) }

// FuzzDecodeGossip: DecodeGossip accepts exactly the messages of this
// version within the size bounds, splits them without copying surprises,
// gives back what EncodeGossip made, and the message id never lets a
// broken message stand for a valid one.
func FuzzDecodeGossip(f *testing.F) {
	for _, rec := range fuzzRecords(f) {
		for _, c := range []uint8{0, 1, 255} {
			msg := EncodeGossip(rec, c)
			f.Add(msg)
			bad := bytes.Clone(msg)
			bad[0] = 0x02
			f.Add(bad)
			f.Add(rec.Encode()) // an envelope alone: no version byte
		}
	}
	f.Add([]byte{})
	f.Add([]byte{GossipVersion})
	f.Add([]byte{GossipVersion, 0})
	f.Add([]byte{GossipVersion, 0, 0x82})
	f.Add(append([]byte{GossipVersion, 0}, make([]byte, ledger.MaxRecordSize+1)...))

	f.Fuzz(func(t *testing.T, data []byte) {
		repl, env, err := DecodeGossip(data)
		valid := len(data) >= 3 && data[0] == GossipVersion && len(data) <= maxGossip
		if (err == nil) != valid {
			t.Fatalf("DecodeGossip(%d bytes, version %x): err %v, want valid=%v", len(data), data[:min(1, len(data))], err, valid)
		}
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("error %v is not a frame error", err)
			}
		} else {
			if repl != data[1] || !bytes.Equal(env, data[2:]) {
				t.Fatalf("split %d bytes into count %d and %d bytes", len(data), repl, len(env))
			}
			if rec, err := ledger.DecodeSignedRecord(env); err == nil {
				// Envelopes are canonical: a decoded record encodes back
				// to the very message.
				if back := EncodeGossip(rec, repl); !bytes.Equal(back, data) {
					t.Fatalf("EncodeGossip(DecodeGossip(m)) differs from m")
				}
			}
		}

		id := messageID(data)
		if len(data) >= 2 && data[0] == GossipVersion {
			// Named by the envelope alone: the same whatever the count.
			want := sha256.Sum256(data[2:])
			if id != string(want[:]) {
				t.Fatalf("id of a version-%d message is not the hash of its envelope", GossipVersion)
			}
			other := bytes.Clone(data)
			other[1]++
			if messageID(other) != id {
				t.Fatalf("the replication count changes the message id")
			}
		} else if len(id) == sha256.Size {
			t.Fatalf("a message that is not of version %d has an id like one that is", GossipVersion)
		}
		// A broken message never shares its id with a message of this
		// version: neither the same tail under another version byte, nor
		// a version-1 message whose envelope is these very bytes.
		if len(data) >= 2 {
			v1 := bytes.Clone(data)
			v1[0] = GossipVersion
			other := bytes.Clone(data)
			if other[0] == GossipVersion {
				other[0] = 0x02
			}
			if messageID(other) == messageID(v1) {
				t.Fatalf("version %#x and version %#x over the same envelope share a message id", other[0], GossipVersion)
			}
		}
		if len(data) == 0 || data[0] != GossipVersion {
			if messageID(data) == messageID(append([]byte{GossipVersion, 0}, data...)) {
				t.Fatalf("a broken message shares its id with the message carrying it as envelope")
			}
		}
	})
}

// FuzzDecodeHello: DecodeHello never panics, refuses what is too large,
// and what it accepts encodes to a fixed point that decodes to the same
// hello, through a frame too.
func FuzzDecodeHello(f *testing.F) {
	g := ledger.NewGenesis("fuzznet")
	gh := g.Hash()
	for _, h := range []Hello{
		{Version: HelloVersion, Network: "fuzznet", Genesis: gh[:], Software: "0.1.0"},
		{Version: 2, Network: "x", Genesis: nil},
		{},
		{Network: string(bytes.Repeat([]byte("n"), 900)), Genesis: make([]byte, 100)},
	} {
		f.Add(EncodeHello(h))
	}
	f.Add([]byte{})
	f.Add([]byte{0xa0})                                     // empty map
	f.Add([]byte{0xa1, 0x05, 0x00})                         // unknown key
	f.Add([]byte{0xa2, 0x01, 0x01, 0x01, 0x02})             // duplicate key
	f.Add([]byte{0xbf, 0x01, 0x01, 0xff})                   // indefinite map
	f.Add([]byte{0xa1, 0x02, 0x62, 0xff, 0xfe})             // invalid UTF-8
	f.Add([]byte{0xa1, 0x01, 0x1b, 0, 0, 0, 0, 0, 0, 0, 1}) // non-shortest integer
	f.Add(make([]byte, maxHello+1))

	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := DecodeHello(data)
		if len(data) > maxHello && err == nil {
			t.Fatalf("a hello of %d bytes accepted, limit %d", len(data), maxHello)
		}
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("error %v is not a frame error", err)
			}
			return
		}
		enc := EncodeHello(h)
		if len(enc) > maxHello {
			return // the fields the input left out made it longer
		}
		h2, err := DecodeHello(enc)
		if err != nil {
			t.Fatalf("DecodeHello(EncodeHello(h)): %v", err)
		}
		if !sameHello(h, h2) {
			t.Fatalf("hello changes through encode and decode: %+v → %+v", h, h2)
		}
		if again := EncodeHello(h2); !bytes.Equal(again, enc) {
			t.Fatalf("EncodeHello is not a fixed point: %x then %x", enc, again)
		}
		var buf bytes.Buffer
		if _, err := writeFrame(&buf, frameHello, enc); err != nil {
			t.Fatal(err)
		}
		h3, err := readHello(bufio.NewReader(&buf))
		if err != nil || !sameHello(h, h3) {
			t.Fatalf("hello does not come back through a frame: %+v, %v", h3, err)
		}
	})
}

func sameHello(a, b Hello) bool {
	return a.Version == b.Version && a.Network == b.Network && a.Software == b.Software && bytes.Equal(a.Genesis, b.Genesis)
}

// FuzzReadFrame: readFrame, fed any bytes in small reads, never panics
// nor reads past a frame, keeps to its limit, reports a clean end only
// between frames, and what it reads is what writeFrame would have written.
func FuzzReadFrame(f *testing.F) {
	frame := func(typ byte, body []byte) []byte {
		var b bytes.Buffer
		writeFrame(&b, typ, body)
		return b.Bytes()
	}
	f.Add(frame(frameDone, nil), uint32(0))
	f.Add(frame(frameNeed, make([]byte, 64)), uint32(0))
	f.Add(append(frame(frameRecon, []byte{1, 2, 3}), frame(frameEnd, nil)...), uint32(3))
	f.Add(append(frame(frameRecon, []byte{1, 2, 3}), frame(frameEnd, nil)...), uint32(4))
	f.Add(frame(frameRecord, make([]byte, 300)), uint32(100))
	f.Add(binary.AppendUvarint(nil, 1<<40), uint32(0))
	f.Add([]byte{0x00}, uint32(0))
	f.Add([]byte{0x81, 0x00, frameDone}, uint32(0)) // length 1, not in its shortest form
	f.Add(bytes.Repeat([]byte{0xff}, 11), uint32(0))
	f.Add(frame(frameStored, nil)[:0], uint32(1))
	f.Add(frame(frameRecon, make([]byte, 200))[:100], uint32(0))

	f.Fuzz(func(t *testing.T, data []byte, limit uint32) {
		lim := int(limit % (maxFrame + 1))
		if lim == 0 {
			lim = maxFrame
		}
		src := bytes.NewReader(data)
		r := bufio.NewReaderSize(src, 16)
		consumed := func() int { return len(data) - src.Len() - r.Buffered() }
		for frames := 0; ; frames++ {
			if frames > len(data) {
				t.Fatalf("%d frames out of %d bytes", frames, len(data))
			}
			start := consumed()
			typ, body, n, err := readFrame(r, lim)
			end := consumed()
			if errors.Is(err, io.EOF) {
				if err != io.EOF {
					t.Fatalf("end of input reported as %v", err)
				}
				if start != len(data) || end != len(data) {
					t.Fatalf("clean end reported with %d of %d bytes read", start, len(data))
				}
				return
			}
			if err != nil {
				if !errors.Is(err, errFrame) {
					t.Fatalf("error %v is not a frame error", err)
				}
				return
			}
			size := len(body) + 1
			if size > lim {
				t.Fatalf("frame of %d bytes read under limit %d", size, lim)
			}
			raw := data[start:end]
			hdr := raw[:len(raw)-size]
			v, k := binary.Uvarint(hdr)
			if k != len(hdr) || v != uint64(size) {
				t.Fatalf("read %d bytes for a frame of %d: header %x", len(raw), size, hdr)
			}
			if raw[len(hdr)] != typ || !bytes.Equal(raw[len(hdr)+1:], body) {
				t.Fatalf("frame type or body is not what was sent")
			}
			if n != uvarintLen(uint64(size))+size {
				t.Fatalf("readFrame counted %d bytes for a frame of %d", n, size)
			}
			if len(hdr) == uvarintLen(uint64(size)) {
				// In its shortest form the frame is exactly what writeFrame
				// writes.
				var b bytes.Buffer
				if w, err := writeFrame(&b, typ, body); err != nil || w != n || !bytes.Equal(b.Bytes(), raw) {
					t.Fatalf("writeFrame(%#x, %d bytes) = %x (%d, %v), read %x", typ, len(body), b.Bytes(), w, err, raw)
				}
			}
		}
	})
}
