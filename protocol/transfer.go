package protocol

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pyvnode/pyvnode/protocol/files"
)

// ErrDownloadChecksum: what arrived does not hash to the node's SHA-256.
var ErrDownloadChecksum = errors.New("SHA-256 of the download does not match the node's")

// TransferOptions tune Upload and Download. Zero values mean defaults.
type TransferOptions struct {
	// Chunk is the bytes per request. Default 1 MiB (the node's default
	// max_file_chunk).
	Chunk int
	// Window is how many requests are in flight at once. Default 8.
	Window int
	// Resume continues where an earlier transfer stopped instead of
	// starting over.
	Resume bool
	// Progress is called with the bytes done so far.
	Progress func(done int64)
}

func (o *TransferOptions) defaults() {
	if o.Chunk <= 0 {
		o.Chunk = 1 << 20
	}
	if o.Window <= 0 {
		o.Window = 8
	}
	if o.Progress == nil {
		o.Progress = func(int64) {}
	}
}

// Upload stores size bytes read from r as path in the user's folder. The
// SHA-256 of the whole content is computed here and checked by the node
// before the file replaces path. With Resume, it continues an upload the
// node already holds part of (after checking nothing; the final checksum
// catches a prefix that differs).
func (c *Client) Upload(ctx context.Context, path string, r io.ReaderAt, size int64, opts TransferOptions) (files.Info, error) {
	opts.defaults()
	var off int64
	if opts.Resume {
		var o OffsetResult
		if err := c.Call(ctx, "file.upload", pathArgs{Path: path}, &o); err != nil {
			return files.Info{}, err
		}
		if o.Offset <= size {
			off = o.Offset
		}
	}
	// The checksum covers the whole file: the part the node already holds
	// is hashed from the local copy, the rest as it is sent.
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, off)); err != nil {
		return files.Info{}, fmt.Errorf("read local file: %w", err)
	}
	opts.Progress(off)
	type inflight struct {
		p   *Pending
		end int64
	}
	var queue []inflight
	wait := func() error {
		f := queue[0]
		queue = queue[1:]
		var o OffsetResult
		if err := f.p.Wait(ctx, &o); err != nil {
			return err
		}
		if o.Offset != f.end {
			return fmt.Errorf("node holds %d bytes after a write that should end at %d", o.Offset, f.end)
		}
		opts.Progress(f.end)
		return nil
	}
	buf := make([]byte, opts.Chunk)
	for off < size { // an empty file needs only the commit
		n := min(int64(opts.Chunk), size-off)
		chunk := buf[:n]
		if _, err := r.ReadAt(chunk, off); err != nil && !errors.Is(err, io.EOF) {
			return files.Info{}, fmt.Errorf("read local file: %w", err)
		}
		h.Write(chunk)
		// The request is encoded now, so buf can be reused at once.
		p, err := c.Send("file.write", writeArgs{Path: path, Offset: off, Data: chunk})
		if err != nil {
			return files.Info{}, err
		}
		off += n
		queue = append(queue, inflight{p, off})
		if len(queue) >= opts.Window {
			if err := wait(); err != nil {
				return files.Info{}, err
			}
		}
	}
	for len(queue) > 0 {
		if err := wait(); err != nil {
			return files.Info{}, err
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	var info files.Info
	if err := c.Call(ctx, "file.commit", commitArgs{Path: path, Size: size, SHA256: sum}, &info); err != nil {
		return files.Info{}, err
	}
	return info, nil
}

// Download writes path from the user's folder to w and checks the SHA-256
// of what arrived against the node's. With Resume, the bytes already in w
// (resumeFrom of them) are kept and hashed from r.
func (c *Client) Download(ctx context.Context, path string, w io.WriterAt, resumeFrom int64, have io.ReaderAt, opts TransferOptions) (files.Info, error) {
	opts.defaults()
	var info files.Info
	if err := c.Call(ctx, "file.stat", pathArgs{Path: path}, &info); err != nil {
		return files.Info{}, err
	}
	if info.Dir {
		return files.Info{}, fmt.Errorf("%s is a directory", path)
	}
	h := sha256.New()
	off := int64(0)
	if opts.Resume && resumeFrom > 0 && resumeFrom <= info.Size && have != nil {
		if _, err := io.Copy(h, io.NewSectionReader(have, 0, resumeFrom)); err != nil {
			return files.Info{}, fmt.Errorf("read the partial local file: %w", err)
		}
		off = resumeFrom
	}
	opts.Progress(off)
	type inflight struct {
		p   *Pending
		off int64
	}
	var queue []inflight
	next := off
	wait := func() error {
		f := queue[0]
		queue = queue[1:]
		var rr ReadResult
		if err := f.p.Wait(ctx, &rr); err != nil {
			return err
		}
		if int64(len(rr.Data)) != min(int64(opts.Chunk), info.Size-f.off) {
			return fmt.Errorf("%s changed on the node during the download", path)
		}
		if _, err := w.WriteAt(rr.Data, f.off); err != nil {
			return fmt.Errorf("write local file: %w", err)
		}
		h.Write(rr.Data) // answers come in request order: the stream is sequential
		opts.Progress(f.off + int64(len(rr.Data)))
		return nil
	}
	for next < info.Size || len(queue) > 0 {
		for next < info.Size && len(queue) < opts.Window {
			p, err := c.Send("file.read", readArgs{Path: path, Offset: next, Length: opts.Chunk})
			if err != nil {
				return files.Info{}, err
			}
			queue = append(queue, inflight{p, next})
			next += int64(opts.Chunk)
		}
		if err := wait(); err != nil {
			return files.Info{}, err
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, info.SHA256) {
		return files.Info{}, fmt.Errorf("%w: received %s, the node has %s", ErrDownloadChecksum, got, info.SHA256)
	}
	return info, nil
}
