package ledger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Records live in append-only segment files of frames; Badger holds the
// indexes (see docs/FORMAT.md §12 and docs/design/storage.md for why).
//
// A frame is: payload length (4 bytes, big-endian) | CRC-32C of the payload
// (4 bytes, big-endian) | payload (a stored entry, entry.go).

const frameHeaderLen = 8

// maxFramePayload bounds a frame: a record plus its bookkeeping.
const maxFramePayload = MaxRecordSize + 4096

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// framePos says where a frame is: its segment, the offset of its header and
// the length of its payload.
type framePos struct {
	seg uint32
	off int64
	n   uint32
}

// end is the offset just after the frame.
func (p framePos) end() int64 { return p.off + frameHeaderLen + int64(p.n) }

func appendFrame(buf, payload []byte) []byte {
	var h [frameHeaderLen]byte
	binary.BigEndian.PutUint32(h[:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
	return append(append(buf, h[:]...), payload...)
}

// errTorn marks the end of the last segment where an append that was never
// acknowledged was cut short: a frame whose header or payload runs past the
// end of the file, a zero-filled remainder, or a last frame failing its
// checksum with nothing valid after it.
var errTorn = errors.New("torn frame at the end of the chain")

// errDamaged marks a frame that fails its checks anywhere else: that is
// damage, never the trace of a crash.
var errDamaged = errors.New("damaged frame")

// frameError is a bad frame found by a scan.
type frameError struct {
	pos  framePos
	why  string
	torn bool // could be the tail of an unacknowledged append
}

func (e *frameError) Error() string {
	kind := errDamaged
	if e.torn {
		kind = errTorn
	}
	return fmt.Sprintf("%v: %s at %d: %s", kind, segName(e.pos.seg), e.pos.off, e.why)
}

func (e *frameError) Is(target error) bool {
	return target == errTorn && e.torn || target == errDamaged && !e.torn
}

type segmentSet struct {
	dir     string
	maxSize int64

	mu    sync.RWMutex
	files map[uint32]*os.File
	last  uint32
}

func segName(n uint32) string { return fmt.Sprintf("%08d.seg", n) }

// openSegments opens every segment in dir, creating dir and segment 0 when
// there are none.
func openSegments(dir string, maxSize int64) (*segmentSet, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	s := &segmentSet{dir: dir, maxSize: maxSize, files: map[uint32]*os.File{}}
	var nums []uint32
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil || segName(uint32(n)) != e.Name() {
			return nil, fmt.Errorf("unexpected file %s in %s", e.Name(), dir)
		}
		nums = append(nums, uint32(n))
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	for i, n := range nums {
		if n != uint32(i) {
			return nil, fmt.Errorf("segment %s is missing from %s", segName(uint32(i)), dir)
		}
		f, err := os.OpenFile(filepath.Join(dir, segName(n)), os.O_RDWR, 0o600)
		if err != nil {
			s.close()
			return nil, err
		}
		s.files[n] = f
		s.last = n
	}
	if len(nums) == 0 {
		if _, err := s.create(0); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// create makes segment n and makes its directory entry durable.
func (s *segmentSet) create(n uint32) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, segName(n)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return nil, err
	}
	s.mu.Lock()
	s.files[n] = f
	if n > s.last {
		s.last = n
	}
	s.mu.Unlock()
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *segmentSet) file(n uint32) (*os.File, error) {
	s.mu.RLock()
	f := s.files[n]
	s.mu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("segment %s does not exist", segName(n))
	}
	return f, nil
}

// chunk is bytes to write at a position of a segment.
type chunk struct {
	seg  uint32
	off  int64
	data []byte
}

// write writes chunks (creating segments as needed) and syncs each
// segment before writing to the next, so frames reach the disk in chain
// order even across a new segment. Only when it returns nil are the frames
// durable.
func (s *segmentSet) write(chunks []chunk) error {
	for _, c := range chunks {
		f, err := s.file(c.seg)
		if err != nil {
			if f, err = s.create(c.seg); err != nil {
				return fmt.Errorf("create segment: %w", err)
			}
		}
		if _, err := f.WriteAt(c.data, c.off); err != nil {
			return fmt.Errorf("write segment %s: %w", segName(c.seg), err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync segment %s: %w", segName(c.seg), err)
		}
	}
	return nil
}

// syncFrom syncs segments from seg to the last, and their directory.
func (s *segmentSet) syncFrom(seg uint32) error {
	s.mu.RLock()
	last := s.last
	s.mu.RUnlock()
	for n := seg; n <= last; n++ {
		f, err := s.file(n)
		if err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync segment %s: %w", segName(n), err)
		}
	}
	return syncDir(s.dir)
}

// readFrame reads and checks one frame's payload.
func (s *segmentSet) readFrame(p framePos) ([]byte, error) {
	if p.n == 0 || p.n > maxFramePayload {
		return nil, fmt.Errorf("%w: %s at %d: index gives a frame length of %d", errDamaged, segName(p.seg), p.off, p.n)
	}
	f, err := s.file(p.seg)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, frameHeaderLen+int(p.n))
	if _, err := f.ReadAt(buf, p.off); err != nil {
		return nil, fmt.Errorf("read %s at %d: %w", segName(p.seg), p.off, err)
	}
	payload, err := checkFrame(buf)
	if err != nil {
		return nil, fmt.Errorf("%s at %d: %w", segName(p.seg), p.off, err)
	}
	return payload, nil
}

func checkFrame(buf []byte) ([]byte, error) {
	n := binary.BigEndian.Uint32(buf[:4])
	if int(n) != len(buf)-frameHeaderLen {
		return nil, fmt.Errorf("%w: length %d, index says %d", errDamaged, n, len(buf)-frameHeaderLen)
	}
	payload := buf[frameHeaderLen:]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(buf[4:8]) {
		return nil, fmt.Errorf("%w: checksum mismatch", errDamaged)
	}
	return payload, nil
}

// scan reads frames in order from segment seg at offset off to the end of
// the last segment, calling fn with each frame's position and payload (fn
// owns the payload). A bad frame ends the scan: with errTorn, wrapped, when
// it can only be the unacknowledged tail of the last segment (pos then
// says where to cut), with errDamaged otherwise.
func (s *segmentSet) scan(seg uint32, off int64, fn func(p framePos, payload []byte) error) (pos framePos, err error) {
	s.mu.RLock()
	last := s.last
	s.mu.RUnlock()
	endSeg, endOff := seg, off
	for ; seg <= last; seg, off = seg+1, 0 {
		endSeg, endOff = seg, off
		f, err := s.file(seg)
		if err != nil {
			return framePos{seg: seg, off: off}, err
		}
		st, err := f.Stat()
		if err != nil {
			return framePos{seg: seg, off: off}, err
		}
		size := st.Size()
		if off > size {
			return framePos{seg: seg, off: off}, fmt.Errorf("%w: %s is %d bytes, the index expects at least %d", errDamaged, segName(seg), size, off)
		}
		r := bufio.NewReaderSize(io.NewSectionReader(f, off, size-off), 1<<16)
		var hdr [frameHeaderLen]byte
		for off < size {
			pos = framePos{seg: seg, off: off}
			bad := func(why string) error {
				return &frameError{pos: pos, why: why, torn: seg == last && s.tornAt(f, size, off)}
			}
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
					return pos, bad("header cut short")
				}
				return pos, fmt.Errorf("read %s at %d: %w", segName(seg), off, err)
			}
			n := binary.BigEndian.Uint32(hdr[:4])
			if n == 0 || n > maxFramePayload {
				return pos, bad(fmt.Sprintf("frame length %d", n))
			}
			payload := make([]byte, n)
			if _, err := io.ReadFull(r, payload); err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
					return pos, bad("payload cut short")
				}
				return pos, fmt.Errorf("read %s at %d: %w", segName(seg), off, err)
			}
			if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
				return pos, bad("checksum mismatch")
			}
			pos.n = n
			if err := fn(pos, payload); err != nil {
				return pos, err
			}
			off = pos.end()
			endOff = off
		}
	}
	return framePos{seg: endSeg, off: endOff}, nil
}

// tornAt decides whether a bad frame at off in the last segment is the
// trace of an interrupted append: true when nothing that looks like a valid
// frame follows it. An interrupted append leaves a short or zero-filled
// tail (the file may have grown before the data reached it); a damaged
// frame in the middle is followed by the frames written after it.
func (s *segmentSet) tornAt(f *os.File, size, off int64) bool {
	var hdr [frameHeaderLen]byte
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return true // not even a whole header: cut short
	}
	n := int64(binary.BigEndian.Uint32(hdr[:4]))
	if n == 0 || n > maxFramePayload {
		return allZero(f, off, size)
	}
	next := off + frameHeaderLen + n
	if next+frameHeaderLen > size {
		return true
	}
	return !validFrameAt(f, next, size)
}

func validFrameAt(f *os.File, off, size int64) bool {
	var hdr [frameHeaderLen]byte
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return false
	}
	n := int64(binary.BigEndian.Uint32(hdr[:4]))
	if n == 0 || n > maxFramePayload || off+frameHeaderLen+n > size {
		return false
	}
	payload := make([]byte, n)
	if _, err := f.ReadAt(payload, off+frameHeaderLen); err != nil {
		return false
	}
	return crc32.Checksum(payload, castagnoli) == binary.BigEndian.Uint32(hdr[4:])
}

func allZero(f *os.File, off, size int64) bool {
	buf := make([]byte, 1<<16)
	for off < size {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for _, b := range buf[:n] {
			if b != 0 {
				return false
			}
		}
		if err != nil && n == 0 {
			return false
		}
		off += int64(n)
	}
	return true
}

// truncate cuts segment seg at off and removes every later segment: used
// on recovery to drop a torn, never acknowledged tail.
func (s *segmentSet) truncate(seg uint32, off int64) error {
	f, err := s.file(seg)
	if err != nil {
		return err
	}
	if err := f.Truncate(off); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := seg + 1; n <= s.last; n++ {
		if g := s.files[n]; g != nil {
			g.Close()
			delete(s.files, n)
		}
		if err := os.Remove(filepath.Join(s.dir, segName(n))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	s.last = seg
	return syncDir(s.dir)
}

// endOf is the size of segment seg.
func (s *segmentSet) endOf(seg uint32) (int64, error) {
	f, err := s.file(seg)
	if err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (s *segmentSet) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for n, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
		delete(s.files, n)
	}
	return first
}

func (s *segmentSet) lastSeg() uint32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last
}
