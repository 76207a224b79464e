package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frames on pyvnode's libp2p streams: a uvarint length, then that many
// bytes, the first of which is the frame type. docs/REPLICATION.md lists
// the types.
const (
	frameRecon  = 0x01 // body: a reconciliation message (package recon)
	frameNeed   = 0x02 // body: n × 32-byte record ids the sender lacks
	frameDone   = 0x03 // no body: the sender's reconciliation is over
	frameRecord = 0x04 // body: replication count (1 byte) || envelope
	frameEnd    = 0x05 // no body: the sender has sent every record
	frameStored = 0x06 // no body: the sender has stored every record it received
	frameHello  = 0x10 // body: CBOR hello
)

// maxFrame bounds a frame: the largest is a reconciliation message
// (recon.MaxMessage) plus its type byte.
const maxFrame = 1<<20 + 1

// maxNeedIDs bounds the ids of one NEED frame.
const maxNeedIDs = 8192

var errFrame = errors.New("malformed frame")

func writeFrame(w io.Writer, typ byte, body []byte) (int, error) {
	var hdr [binary.MaxVarintLen64 + 1]byte
	n := binary.PutUvarint(hdr[:], uint64(len(body)+1))
	hdr[n] = typ
	if _, err := w.Write(hdr[:n+1]); err != nil {
		return 0, err
	}
	if len(body) > 0 {
		if _, err := w.Write(body); err != nil {
			return 0, err
		}
	}
	return n + 1 + len(body), nil
}

// readFrame reads one frame of at most limit bytes (type included).
func readFrame(r *bufio.Reader, limit int) (byte, []byte, int, error) {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, 0, io.EOF
		}
		return 0, nil, 0, fmt.Errorf("%w: length: %v", errFrame, err)
	}
	if size == 0 || size > uint64(limit) {
		return 0, nil, 0, fmt.Errorf("%w: length %d outside 1..%d", errFrame, size, limit)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, 0, fmt.Errorf("%w: body: %v", errFrame, io.ErrUnexpectedEOF)
	}
	return buf[0], buf[1:], int(size) + uvarintLen(size), nil
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}
