package protocol_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pyvnode/pyvnode/node"
	"github.com/pyvnode/pyvnode/protocol"
	"github.com/pyvnode/pyvnode/protocol/files"
)

func hexSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// userDir is where the node keeps a user's files.
func (tn *testNode) userDir(user string) string {
	return filepath.Join(node.FilesDir(tn.dir), user)
}

func upload(t *testing.T, c *protocol.Client, path string, data []byte) files.Info {
	t.Helper()
	info, err := c.Upload(context.Background(), path, bytes.NewReader(data), int64(len(data)), protocol.TransferOptions{Chunk: 8 << 10, Window: 4})
	if err != nil {
		t.Fatalf("upload %s: %v", path, err)
	}
	return info
}

// TestFilePathsRefused: paths that climb out, are absolute, carry control
// characters or name the node's metadata are refused by every file command.
func TestFilePathsRefused(t *testing.T) {
	tn := startNode(t, true)
	a := tn.admin(t)
	ctx := context.Background()
	upload(t, a, "ok.txt", []byte("fine"))
	bad := []string{
		"../x", "../../etc/passwd", "a/../../x", "a/..", "..", "/etc/passwd", "/", "//x",
		"a//b", "./a", "a/./b", "a/", "x\x00y", "x\ny", "x\ry", "\x1b[31mred", "x\x7f", `a\b`, `..\x`,
		".pyvnode", ".pyvnode/uploads", "a/.pyvnode/x", strings.Repeat("a", files.MaxPath+1),
	}
	for _, p := range bad {
		for _, cmd := range []struct {
			name string
			args map[string]any
		}{
			{"file.stat", map[string]any{"path": p}},
			{"file.read", map[string]any{"path": p, "offset": 0, "length": 10}},
			{"file.write", map[string]any{"path": p, "offset": 0, "data": []byte("x")}},
			{"file.commit", map[string]any{"path": p, "size": 1, "sha256": hexSum([]byte("x"))}},
			{"file.mkdir", map[string]any{"path": p}},
			{"file.rm", map[string]any{"path": p}},
			{"file.publish", map[string]any{"path": p}},
		} {
			if p == "/" && (cmd.name == "file.stat" || cmd.name == "file.publish") {
				continue // the root of the user's folder, by design
			}
			err := a.Call(ctx, cmd.name, cmd.args, nil)
			if !isCode(err, protocol.ErrBadRequest) || !strings.Contains(err.Error(), "bad path") {
				t.Errorf("%s %q: %v, want bad_request (bad path)", cmd.name, p, err)
			}
		}
	}
	// Nothing was created outside the user's folder, nor in it.
	ents, _ := os.ReadDir(tn.userDir("admin"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != ".pyvnode,ok.txt" {
		t.Fatalf("user folder holds %v", names)
	}
	if _, err := os.Stat(filepath.Join(node.FilesDir(tn.dir), "x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file appeared outside the user's folder: %v", err)
	}
	var ls protocol.ListFilesResult
	if err := a.Call(ctx, "file.ls", map[string]any{"path": "/"}, &ls); err != nil || len(ls.Entries) != 1 || ls.Entries[0].Path != "ok.txt" {
		t.Fatalf("file.ls / = %+v %v (the metadata folder must not show)", ls, err)
	}
}

// TestFileSymlinks: symbolic links planted in a user's folder (by anything
// but the protocol) are never followed or served, whether they point
// outside the folder or inside it.
func TestFileSymlinks(t *testing.T) {
	tn := startNode(t, true)
	a := tn.admin(t)
	ctx := context.Background()
	upload(t, a, "real.txt", []byte("inside"))
	if err := a.Call(ctx, "file.mkdir", map[string]any{"path": "d"}, nil); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.txt")
	os.WriteFile(secret, []byte("top secret"), 0o600)
	dir := tn.userDir("admin")
	for name, target := range map[string]string{
		"out": secret, "outdir": outside, "rel": "../../../../../../../../" + secret[1:],
		"in": filepath.Join(dir, "real.txt"), "inrel": "real.txt", "indir": "d",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(cmd string, args map[string]any) {
		t.Helper()
		err := a.Call(ctx, cmd, args, nil)
		if !isCode(err, protocol.ErrBadRequest) {
			t.Errorf("%s %v: %v, want bad_request", cmd, args, err)
		} else if !strings.Contains(err.Error(), "symbolic link") && !strings.Contains(err.Error(), "outside") {
			t.Errorf("%s %v: %v, want a symlink refusal", cmd, args, err)
		}
	}
	for _, p := range []string{"out", "rel", "in", "inrel", "outdir/secret.txt", "indir/x", "outdir", "indir"} {
		refused("file.stat", map[string]any{"path": p})
		refused("file.read", map[string]any{"path": p, "offset": 0, "length": 100})
		refused("file.publish", map[string]any{"path": p})
		refused("file.rm", map[string]any{"path": p})
	}
	refused("file.ls", map[string]any{"path": "outdir"})
	refused("file.ls", map[string]any{"path": "indir"})
	refused("file.rmdir", map[string]any{"path": "indir"})
	refused("file.mkdir", map[string]any{"path": "outdir/new"})
	refused("file.write", map[string]any{"path": "outdir/new", "offset": 0, "data": []byte("x")})
	// An upload onto a link is refused at commit, and the target is intact.
	payload := []byte("overwritten!")
	for _, p := range []string{"out", "in"} {
		if err := a.Call(ctx, "file.write", map[string]any{"path": p, "offset": 0, "data": payload}, nil); err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
		refused("file.commit", map[string]any{"path": p, "size": len(payload), "sha256": hexSum(payload)})
	}
	if b, _ := os.ReadFile(secret); string(b) != "top secret" {
		t.Fatalf("file outside the folder changed: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "real.txt")); string(b) != "inside" {
		t.Fatalf("link target inside the folder changed: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(outside, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("something was created through a link")
	}
	// Listings leave links out; real files are still served.
	var ls protocol.ListFilesResult
	if err := a.Call(ctx, "file.ls", nil, &ls); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ls.Entries {
		names = append(names, e.Path)
	}
	if strings.Join(names, ",") != "d,real.txt" {
		t.Fatalf("file.ls = %v", names)
	}
	var rr protocol.ReadResult
	if err := a.Call(ctx, "file.read", map[string]any{"path": "real.txt", "offset": 0, "length": 100}, &rr); err != nil || string(rr.Data) != "inside" {
		t.Fatalf("real file: %q %v", rr.Data, err)
	}
}

// TestFileQuota: writes beyond the user's quota are refused; removing files
// gives the room back.
func TestFileQuota(t *testing.T) {
	tn := startNode(t, true)
	a := tn.admin(t)
	ctx := context.Background()
	if err := a.Call(ctx, "user.quota", map[string]any{"name": "admin", "quota": 40 << 10}, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Call(ctx, "user.quota", map[string]any{"name": "admin", "quota": -1}, nil); !isCode(err, protocol.ErrBadRequest) {
		t.Fatalf("negative quota: %v", err)
	}
	first := randomBytes(24 << 10)
	upload(t, a, "first", first)
	second := randomBytes(24 << 10)
	_, err := a.Upload(ctx, "second", bytes.NewReader(second), int64(len(second)), protocol.TransferOptions{Chunk: 8 << 10})
	if !isCode(err, protocol.ErrQuota) {
		t.Fatalf("upload over the quota: %v, want quota_exceeded", err)
	}
	// A single write that would pass the quota is refused whole.
	err = a.Call(ctx, "file.write", map[string]any{"path": "third", "offset": 0, "data": make([]byte, 20<<10)}, nil)
	if !isCode(err, protocol.ErrQuota) {
		t.Fatalf("write over the quota: %v", err)
	}
	if err := a.Call(ctx, "file.rm", map[string]any{"path": "first"}, nil); err != nil {
		t.Fatal(err)
	}
	upload(t, a, "second", second)
	// Raising the quota takes effect at once.
	if err := a.Call(ctx, "user.quota", map[string]any{"name": "admin", "quota": 1 << 20}, nil); err != nil {
		t.Fatal(err)
	}
	upload(t, a, "first", first)
}

// TestUploadResume: an upload interrupted with its session continues from
// where the node stands in a new session; a resumed upload whose earlier
// part differs fails its checksum and is discarded.
func TestUploadResume(t *testing.T) {
	tn := startNode(t, true)
	a := tn.admin(t)
	ctx := context.Background()
	data := randomBytes(50 << 10)
	const part = 20 << 10
	// Session 1 sends the first part, then dies.
	s1 := tn.dial(t)
	if err := s1.Call(ctx, "login", map[string]string{"user": "admin", "password": tn.password}, nil); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < part; off += 10 << 10 {
		if err := s1.Call(ctx, "file.write", map[string]any{"path": "big", "offset": off, "data": data[off : off+10<<10]}, nil); err != nil {
			t.Fatal(err)
		}
	}
	s1.Close()
	var o protocol.OffsetResult
	if err := a.Call(ctx, "file.upload", map[string]any{"path": "big"}, &o); err != nil || o.Offset != part {
		t.Fatalf("file.upload = %+v %v", o, err)
	}
	if err := a.Call(ctx, "file.stat", map[string]any{"path": "big"}, nil); !isCode(err, protocol.ErrNotFound) {
		t.Fatalf("an unfinished upload is visible: %v", err)
	}
	// A write at the wrong offset is a conflict.
	if err := a.Call(ctx, "file.write", map[string]any{"path": "big", "offset": part + 1, "data": []byte("x")}, nil); !isCode(err, protocol.ErrConflict) {
		t.Fatalf("write at a wrong offset: %v", err)
	}
	// Session 2 resumes.
	var progress []int64
	var mu sync.Mutex
	info, err := a.Upload(ctx, "big", bytes.NewReader(data), int64(len(data)), protocol.TransferOptions{
		Chunk: 8 << 10, Resume: true, Progress: func(n int64) { mu.Lock(); progress = append(progress, n); mu.Unlock() }})
	if err != nil {
		t.Fatalf("resumed upload: %v", err)
	}
	if len(progress) == 0 || progress[0] != part {
		t.Fatalf("resume started at %v, want %d", progress, part)
	}
	if info.Size != int64(len(data)) || info.SHA256 != hexSum(data) {
		t.Fatalf("info = %+v", info)
	}
	if b, _ := os.ReadFile(filepath.Join(tn.userDir("admin"), "big")); !bytes.Equal(b, data) {
		t.Fatal("stored file differs")
	}

	// A resume over a different prefix: the checksum catches it and the
	// upload is discarded; a fresh upload then works.
	other := randomBytes(len(data))
	copy(other[part:], data[part:])
	for off := 0; off < part; off += 10 << 10 {
		if err := a.Call(ctx, "file.write", map[string]any{"path": "big2", "offset": off, "data": data[off : off+10<<10]}, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err = a.Upload(ctx, "big2", bytes.NewReader(other), int64(len(other)), protocol.TransferOptions{Chunk: 8 << 10, Resume: true})
	if !isCode(err, protocol.ErrConflict) {
		t.Fatalf("resume over a different prefix: %v, want conflict", err)
	}
	if err := a.Call(ctx, "file.upload", map[string]any{"path": "big2"}, &o); err != nil || o.Offset != 0 {
		t.Fatalf("after a checksum mismatch the upload holds %d bytes (%v)", o.Offset, err)
	}
	if err := a.Call(ctx, "file.stat", map[string]any{"path": "big2"}, nil); !isCode(err, protocol.ErrNotFound) {
		t.Fatalf("a failed upload became a file: %v", err)
	}
	upload(t, a, "big2", other)
}

// TestCommitChecks: the commit's length and SHA-256 must match what the
// node holds; a checksum mismatch discards the upload, a length mismatch
// keeps it for a retry.
func TestCommitChecks(t *testing.T) {
	tn := startNode(t, true)
	a := tn.admin(t)
	ctx := context.Background()
	data := []byte("some file content")
	write := func() {
		if err := a.Call(ctx, "file.write", map[string]any{"path": "f", "offset": 0, "data": data}, nil); err != nil {
			t.Fatal(err)
		}
	}
	offset := func() int64 {
		var o protocol.OffsetResult
		if err := a.Call(ctx, "file.upload", map[string]any{"path": "f"}, &o); err != nil {
			t.Fatal(err)
		}
		return o.Offset
	}
	write()
	if err := a.Call(ctx, "file.commit", map[string]any{"path": "f", "size": len(data) + 1, "sha256": hexSum(data)}, nil); !isCode(err, protocol.ErrBadRequest) {
		t.Fatalf("commit with a wrong size: %v", err)
	}
	if offset() != int64(len(data)) {
		t.Fatal("a size mismatch discarded the upload")
	}
	if err := a.Call(ctx, "file.commit", map[string]any{"path": "f", "size": len(data), "sha256": hexSum([]byte("other"))}, nil); !isCode(err, protocol.ErrConflict) {
		t.Fatalf("commit with a wrong checksum: %v", err)
	}
	if offset() != 0 {
		t.Fatal("a checksum mismatch kept the upload")
	}
	if err := a.Call(ctx, "file.commit", map[string]any{"path": "f", "size": len(data), "sha256": hexSum(data)}, nil); !isCode(err, protocol.ErrNotFound) {
		t.Fatalf("commit after the upload was discarded: %v", err)
	}
	if err := a.Call(ctx, "file.stat", map[string]any{"path": "f"}, nil); !isCode(err, protocol.ErrNotFound) {
		t.Fatalf("file exists after failed commits: %v", err)
	}
	write()
	var info files.Info
	if err := a.Call(ctx, "file.commit", map[string]any{"path": "f", "size": len(data), "sha256": strings.ToUpper(hexSum(data))}, &info); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if info.SHA256 != hexSum(data) || info.Size != int64(len(data)) {
		t.Fatalf("info = %+v", info)
	}
	// file.publish records the file's hash in the chain.
	var pr protocol.PublishResult
	if err := a.Call(ctx, "file.publish", map[string]any{"path": "f"}, &pr); err != nil || pr.SHA256 != hexSum(data) {
		t.Fatalf("publish: %+v %v", pr, err)
	}
}

// changeOnFirstWrite runs change once, on the first write of a download.
type changeOnFirstWrite struct {
	once   sync.Once
	change func()
}

func (w *changeOnFirstWrite) WriteAt(p []byte, off int64) (int, error) {
	w.once.Do(w.change)
	return len(p), nil
}

// TestDownloadDetectsChange: a file that changes on the node during a
// download is detected, whether its content or its size changed. (A file
// that only grows is not an error: the download is then exactly the file
// as it was when stat'ed.)
func TestDownloadDetectsChange(t *testing.T) {
	tn := startNode(t, true)
	a := tn.admin(t)
	ctx := context.Background()
	data := randomBytes(40 << 10)
	upload(t, a, "f", data)
	path := filepath.Join(tn.userDir("admin"), "f")
	opts := protocol.TransferOptions{Chunk: 4 << 10, Window: 1}

	// Unchanged: fine.
	var out bytes.Buffer
	if _, err := a.Download(ctx, "f", &bufAt{&out}, 0, nil, opts); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("download: %v", err)
	}
	// Same size, other content.
	w := &changeOnFirstWrite{change: func() {
		if err := os.WriteFile(path, randomBytes(len(data)), 0o600); err != nil {
			t.Error(err)
		}
	}}
	if _, err := a.Download(ctx, "f", w, 0, nil, opts); !errors.Is(err, protocol.ErrDownloadChecksum) {
		t.Fatalf("download of a file rewritten meanwhile: %v, want ErrDownloadChecksum", err)
	}
	// Shorter.
	upload(t, a, "f", data)
	w = &changeOnFirstWrite{change: func() {
		if err := os.Truncate(path, int64(len(data)/2)); err != nil {
			t.Error(err)
		}
	}}
	if _, err := a.Download(ctx, "f", w, 0, nil, opts); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("download of a file truncated meanwhile: %v", err)
	}
}

// bufAt is an io.WriterAt over a buffer written in order.
type bufAt struct{ b *bytes.Buffer }

func (w *bufAt) WriteAt(p []byte, off int64) (int, error) {
	if off != int64(w.b.Len()) {
		return 0, errors.New("out of order")
	}
	return w.b.Write(p)
}
