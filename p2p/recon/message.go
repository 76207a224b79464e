package recon

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the first byte of every message.
const Version = 0x01

// Modes of a range.
const (
	ModeSkip        = 0
	ModeFingerprint = 1
	ModeIDList      = 2
)

// Limits on what a message may hold; a decoder refuses more.
const (
	MaxMessage = 1 << 20 // bytes
	MaxRanges  = 16384
	MaxIDs     = 8192 // in one id list
)

// ErrMalformed is returned for a message that breaks the format or limits.
var ErrMalformed = errors.New("malformed reconciliation message")

// Range is one range of a message: everything from the previous range's
// upper bound (the lowest possible item for the first) to Upper.
type Range struct {
	Upper Bound
	Mode  int
	FP    Fingerprint
	IDs   [][32]byte
}

// Encode writes ranges as a message:
//
//	message = version(1) range*
//	range   = time(varint) prefix-length(varint) prefix mode(varint) payload
//	time    = 0 for the infinite bound, else t - previous t + 1
//	payload = 16-byte fingerprint | varint count, count × 32-byte ids | nothing (skip)
func Encode(ranges []Range) []byte {
	out := []byte{Version}
	var prevT uint64
	for _, r := range ranges {
		if r.Upper.Infinite {
			out = binary.AppendUvarint(out, 0)
		} else {
			out = binary.AppendUvarint(out, r.Upper.T-prevT+1)
			prevT = r.Upper.T
		}
		out = binary.AppendUvarint(out, uint64(len(r.Upper.Prefix)))
		out = append(out, r.Upper.Prefix...)
		out = binary.AppendUvarint(out, uint64(r.Mode))
		switch r.Mode {
		case ModeFingerprint:
			out = append(out, r.FP[:]...)
		case ModeIDList:
			out = binary.AppendUvarint(out, uint64(len(r.IDs)))
			for i := range r.IDs {
				out = append(out, r.IDs[i][:]...)
			}
		}
	}
	return out
}

// Decode parses a message, checking that bounds increase and every limit.
func Decode(msg []byte) ([]Range, error) {
	if len(msg) > MaxMessage {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(msg), MaxMessage)
	}
	if len(msg) == 0 || msg[0] != Version {
		return nil, fmt.Errorf("%w: version", ErrMalformed)
	}
	p := msg[1:]
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(p)
		if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
			return 0, fmt.Errorf("%w: bad or non-minimal varint", ErrMalformed)
		}
		p = p[n:]
		return v, nil
	}
	var out []Range
	var prev *Bound
	var prevT uint64
	for len(p) > 0 {
		if len(out) == MaxRanges {
			return nil, fmt.Errorf("%w: more than %d ranges", ErrMalformed, MaxRanges)
		}
		if prev != nil && prev.Infinite {
			return nil, fmt.Errorf("%w: range after the infinite bound", ErrMalformed)
		}
		var r Range
		t, err := uv()
		if err != nil {
			return nil, err
		}
		if t == 0 {
			r.Upper.Infinite = true
		} else {
			if t-1 > ^uint64(0)-prevT {
				return nil, fmt.Errorf("%w: time overflows", ErrMalformed)
			}
			r.Upper.T = prevT + t - 1
			prevT = r.Upper.T
		}
		plen, err := uv()
		if err != nil {
			return nil, err
		}
		if plen > 32 || plen > uint64(len(p)) {
			return nil, fmt.Errorf("%w: prefix length %d", ErrMalformed, plen)
		}
		if plen > 0 {
			r.Upper.Prefix = append([]byte(nil), p[:plen]...)
			p = p[plen:]
		}
		if r.Upper.Infinite && plen != 0 {
			return nil, fmt.Errorf("%w: infinite bound with a prefix", ErrMalformed)
		}
		if prev != nil && !boundLess(*prev, r.Upper) {
			return nil, fmt.Errorf("%w: bounds do not increase", ErrMalformed)
		}
		mode, err := uv()
		if err != nil {
			return nil, err
		}
		r.Mode = int(mode)
		switch mode {
		case ModeSkip:
		case ModeFingerprint:
			if len(p) < FingerprintSize {
				return nil, fmt.Errorf("%w: short fingerprint", ErrMalformed)
			}
			copy(r.FP[:], p)
			p = p[FingerprintSize:]
		case ModeIDList:
			n, err := uv()
			if err != nil {
				return nil, err
			}
			if n > MaxIDs || n*32 > uint64(len(p)) {
				return nil, fmt.Errorf("%w: id list of %d", ErrMalformed, n)
			}
			r.IDs = make([][32]byte, n)
			for i := range r.IDs {
				copy(r.IDs[i][:], p[32*i:])
			}
			p = p[32*n:]
		default:
			return nil, fmt.Errorf("%w: mode %d", ErrMalformed, mode)
		}
		out = append(out, r)
		prev = &out[len(out)-1].Upper
	}
	return out, nil
}

// boundLess orders bounds: by time, then by prefix as bytes (a shorter
// prefix that is a prefix of a longer one comes first).
func boundLess(a, b Bound) bool {
	if a.Infinite {
		return false
	}
	if b.Infinite {
		return true
	}
	if a.T != b.T {
		return a.T < b.T
	}
	return string(a.Prefix) < string(b.Prefix)
}
