package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math/bits"
	"runtime"
	"sync"
)

// MaxPowBits bounds the network's proof-of-work setting. 32 bits is already
// about four billion hashes per record.
const MaxPowBits = 32

// LeadingZeroBits counts the zero bits at the start of the id, reading it as
// a big-endian number.
func LeadingZeroBits(id ID) int {
	n := 0
	for _, b := range id {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// CheckPow reports whether id carries at least want leading zero bits.
func CheckPow(id ID, want int) error {
	if got := LeadingZeroBits(id); got < want {
		return checkErr(ErrPoW, "id %s has %d leading zero bits, network requires %d", id, got, want)
	}
	return nil
}

// Mine sets rec.Nonce to a value that gives the record's id at least
// powBits leading zero bits. It searches on every core and stops early when
// ctx is cancelled, returning ctx.Err().
//
// Nonce is the last field of the encoding (key 7), so the bytes before it are
// hashed once and each attempt only hashes the nonce on top of a clone of
// that state.
func Mine(ctx context.Context, rec *Record, powBits int) error {
	if powBits < 0 || powBits > MaxPowBits {
		return fmt.Errorf("proof-of-work bits %d out of range 0..%d", powBits, MaxPowBits)
	}
	rec.Nonce = 0
	if powBits == 0 {
		return nil
	}
	enc, err := rec.Encode()
	if err != nil {
		return err
	}
	// With Nonce 0 the encoding ends in 0x07 0x00: key 7, unsigned 0.
	prefix := enc[:len(enc)-1]
	base := sha256.New()
	base.Write(prefix)

	workers := runtime.GOMAXPROCS(0)
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func(start uint64) {
			defer wg.Done()
			if n, ok := mineRange(inner, base, start, uint64(workers), powBits); ok {
				results <- n
				cancel()
			}
		}(uint64(w))
	}
	wg.Wait()
	close(results)
	n, ok := <-results
	if !ok {
		return fmt.Errorf("mining cancelled: %w", ctx.Err())
	}
	rec.Nonce = n
	return nil
}

func mineRange(ctx context.Context, base hash.Hash, start, step uint64, powBits int) (uint64, bool) {
	var (
		buf [9]byte
		sum ID
	)
	cloner := base.(hash.Cloner)
	for n, i := start, 0; ; n, i = n+step, i+1 {
		if i&1023 == 0 && ctx.Err() != nil {
			return 0, false
		}
		h, err := cloner.Clone()
		if err != nil {
			panic("sha256 state cannot be cloned: " + err.Error())
		}
		h.Write(appendCBORUint(buf[:0], n))
		h.Sum(sum[:0])
		if LeadingZeroBits(sum) >= powBits {
			return n, true
		}
	}
}

// appendCBORUint appends the preferred (shortest) CBOR encoding of an
// unsigned integer, major type 0.
func appendCBORUint(b []byte, n uint64) []byte { return appendCBORHead(b, 0, n) }

// appendCBORHead appends the shortest CBOR head of a major type and argument.
func appendCBORHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, m|27), n)
	}
}
