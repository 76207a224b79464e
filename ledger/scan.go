package ledger

import (
	"context"
	"fmt"
)

// ScanEntry is what Scan gives of each record: enough for views that read
// every record (the applications' tallies) without the cost of decoding
// and re-checking each one in full.
type ScanEntry struct {
	Height  uint64
	ID      ID
	Kind    string
	Created int64
	// Payload aliases the store's read buffer: it is valid only during the
	// callback; copy it to keep it.
	Payload []byte
}

// Scan calls fn for every record from height from up to the head. It
// reads the frames as Iterate does (CRC-checked), but takes the kind,
// creation time and payload straight out of the record's canonical
// encoding instead of decoding and re-checking the whole record: every
// stored record passed those checks when it was appended, and 'chain
// verify' recomputes them. A frame the fast reader does not recognise is
// decoded the slow way, so Scan never gives less than Iterate.
func (s *Store) Scan(ctx context.Context, from uint64, fn func(*ScanEntry) error) error {
	size := s.Count()
	var se ScanEntry
	return s.iterateFrames(ctx, from, size, func(h uint64, _ framePos, payload []byte) error {
		if !scanFrame(payload, &se) {
			e, _, env, err := decodeEntry(payload)
			if err != nil {
				return err
			}
			rec, err := decodeStored(e, env)
			if err != nil {
				return err
			}
			se = ScanEntry{Height: e.Height, ID: e.ID, Kind: rec.Kind, Created: rec.Created, Payload: rec.Payload}
		}
		if se.Height != h {
			return fmt.Errorf("segments hold entry %d where %d belongs", se.Height, h)
		}
		return fn(&se)
	})
}

// ReadCBORHead reads the head of the CBOR data item at b[i:]: major type,
// argument and the index after the head (for fast readers of canonical
// payloads that fall back to a full decoder on anything unexpected).
func ReadCBORHead(b []byte, i int) (major byte, arg uint64, next int, ok bool) {
	return cborHead(b, i)
}

// cborHead reads a CBOR item head at b[i:]: major type, argument, and the
// index after the head. Indefinite lengths and reserved values fail.
func cborHead(b []byte, i int) (major byte, arg uint64, next int, ok bool) {
	if i >= len(b) {
		return 0, 0, 0, false
	}
	major, info := b[i]>>5, b[i]&31
	i++
	switch {
	case info < 24:
		return major, uint64(info), i, true
	case info == 24:
		if i+1 > len(b) {
			return 0, 0, 0, false
		}
		return major, uint64(b[i]), i + 1, true
	case info == 25:
		if i+2 > len(b) {
			return 0, 0, 0, false
		}
		return major, uint64(b[i])<<8 | uint64(b[i+1]), i + 2, true
	case info == 26:
		if i+4 > len(b) {
			return 0, 0, 0, false
		}
		var v uint64
		for _, c := range b[i : i+4] {
			v = v<<8 | uint64(c)
		}
		return major, v, i + 4, true
	case info == 27:
		if i+8 > len(b) {
			return 0, 0, 0, false
		}
		var v uint64
		for _, c := range b[i : i+8] {
			v = v<<8 | uint64(c)
		}
		return major, v, i + 8, true
	}
	return 0, 0, 0, false
}

// cborSkip returns the index after the data item at b[i:] (no tags, no
// indefinite lengths), at most depth containers deep.
func cborSkip(b []byte, i, depth int) (int, bool) {
	major, arg, next, ok := cborHead(b, i)
	if !ok || depth < 0 {
		return 0, false
	}
	switch major {
	case 0, 1, 7:
		return next, true
	case 2, 3:
		if arg > uint64(len(b)-next) {
			return 0, false
		}
		return next + int(arg), true
	case 4, 5:
		n := arg
		if n > uint64(len(b)-next) { // every item takes a byte at least
			return 0, false
		}
		if major == 5 {
			n *= 2 // cannot wrap: n is below len(b)
		}
		if n > uint64(len(b)-next) {
			return 0, false
		}
		for range n {
			if next, ok = cborSkip(b, next, depth-1); !ok {
				return 0, false
			}
		}
		return next, true
	}
	return 0, false
}

// scanBytes reads a byte or text string of the given major type.
func scanBytes(b []byte, i int, major byte) ([]byte, int, bool) {
	m, n, next, ok := cborHead(b, i)
	if !ok || m != major || n > uint64(len(b)-next) {
		return nil, 0, false
	}
	return b[next : next+int(n)], next + int(n), true
}

// scanFrame reads a stored entry frame (see encodeEntry) and the record in
// it, as laid out by the core deterministic encoding.
func scanFrame(v []byte, se *ScanEntry) bool {
	if len(v) == 0 || v[0] != 0x88 {
		return false
	}
	m, h, i, ok := cborHead(v, 1)
	if !ok || m != 0 {
		return false
	}
	id, i, ok := scanBytes(v, i, 2)
	if !ok || len(id) != 32 {
		return false
	}
	if _, i, ok = scanBytes(v, i, 2); !ok { // link
		return false
	}
	for range 4 { // replication, source, received, nodes
		if i, ok = cborSkip(v, i, 2); !ok {
			return false
		}
	}
	// The envelope: [record map, signature].
	if i >= len(v) || v[i] != 0x82 {
		return false
	}
	i++
	if i >= len(v) || v[i] != 0xa7 { // map of 7
		return false
	}
	i++
	var kind []byte
	var created uint64
	var payload []byte
	for key := byte(1); key <= 7; key++ {
		if i >= len(v) || v[i] != key {
			return false
		}
		i++
		switch key {
		case 2:
			if kind, i, ok = scanBytes(v, i, 3); !ok {
				return false
			}
		case 3:
			start := i
			if i, ok = cborSkip(v, i, MaxPayloadDepth+1); !ok || v[start]>>5 != 5 {
				return false
			}
			payload = v[start:i]
		case 6:
			var mj byte
			if mj, created, i, ok = cborHead(v, i); !ok || mj != 0 || created > 1<<63-1 {
				return false
			}
		default:
			if i, ok = cborSkip(v, i, 1); !ok {
				return false
			}
		}
	}
	se.Height = h
	copy(se.ID[:], id)
	if string(kind) != se.Kind { // most records repeat the kind before them
		se.Kind = string(kind)
	}
	se.Created = int64(created)
	se.Payload = payload
	return true
}
