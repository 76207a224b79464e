package files

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fixedBug(t *testing.T, what string) {
	t.Helper()
	t.Fatal("a fixed bug is back: " + what)
}

// newStore opens a store with one quota for everybody; root is the
// store's directory.
func newStore(t *testing.T, quota int64) (*Store, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "files")
	s, err := Open(root, func(string) int64 { return quota })
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func put(t *testing.T, s *Store, user, p string, data []byte) Info {
	t.Helper()
	for off := 0; off < len(data); off += 1000 {
		end := min(off+1000, len(data))
		if _, err := s.Write(user, p, int64(off), data[off:end]); err != nil {
			t.Fatalf("write %s at %d: %v", p, off, err)
		}
	}
	info, err := s.Commit(user, p, int64(len(data)), sum(data))
	if err != nil {
		t.Fatalf("commit %s: %v", p, err)
	}
	return info
}

func TestCleanPath(t *testing.T) {
	good := map[string]string{
		"a": "a", "a/b": "a/b", "a b/c d.txt": "a b/c d.txt", "...": "...", "..a": "..a", "a..": "a..",
		".hidden": ".hidden", "é/ü": "é/ü", ".pyvnodex": ".pyvnodex", "x.pyvnode": "x.pyvnode",
		strings.Repeat("a", MaxPath): strings.Repeat("a", MaxPath),
	}
	for in, want := range good {
		got, err := CleanPath(in, false)
		if err != nil || got != want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{
		"", ".", "/", "..", "../a", "a/..", "a/../b", "a/../../b", "/a", "//a", "/../a", "a//b", "a/", "./a", "a/.",
		"a/./b", ".pyvnode", ".pyvnode/uploads/x", "a/.pyvnode", "a\x00", "a\nb", "\r", "\t", "a\x1fb", "a\x7f",
		`a\b`, `..\..\x`, strings.Repeat("a", MaxPath+1),
	}
	for _, in := range bad {
		if got, err := CleanPath(in, false); !errors.Is(err, ErrBadPath) {
			t.Errorf("CleanPath(%q) = %q, %v; want ErrBadPath", in, got, err)
		}
	}
	for _, root := range []string{"", ".", "/"} {
		if got, err := CleanPath(root, true); err != nil || got != "." {
			t.Errorf("CleanPath(%q, root allowed) = %q, %v", root, got, err)
		}
	}
	if _, err := CleanPath("..", true); !errors.Is(err, ErrBadPath) {
		t.Errorf("'..' with the root allowed: %v", err)
	}
}

// TestCleanPathReservedNameCase: the reserved metadata folder is matched
// case-sensitively (CleanPath, part == metaDir). On a case-insensitive file
// system (macOS, Windows defaults) ".PYVNODE/sum-..." names the node's own
// checksum cache, which a user could then forge: Stat would report, and
// file.publish sign into the chain, a SHA-256 the file does not have.
func TestCleanPathReservedNameCase(t *testing.T) {
	for _, p := range []string{".PYVNODE", ".Pyvnode/uploads/x", "a/.pyVnode"} {
		if _, err := CleanPath(p, false); !errors.Is(err, ErrBadPath) {
			fixedBug(t, "'.PYVNODE' is not reserved; it aliases the metadata folder on case-insensitive file systems (files.go CleanPath)")
			t.Errorf("CleanPath(%q): %v, want ErrBadPath", p, err)
		}
	}
}

// FuzzCleanPath: a path CleanPath accepts is relative, never climbs out,
// names no metadata and no control character, is already canonical (so
// cleaning it again changes nothing), and stays inside any folder it is
// joined to.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"", ".", "/", "a", "a/b", "../a", "a/../b", "a//b", "a/", "/a", ".pyvnode", "a/.pyvnode/b",
		"a\x00b", "a\\b", "é", "\xff\xfe", "....", ". /a", " ", "a/ /b", strings.Repeat("ab/", 400)} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, p string, allowRoot bool) {
		out, err := CleanPath(p, allowRoot)
		if err != nil {
			if !errors.Is(err, ErrBadPath) || out != "" {
				t.Fatalf("CleanPath(%q) = %q, %v: a refusal must be ErrBadPath and empty", p, out, err)
			}
			return
		}
		if out == "." {
			if !allowRoot || (p != "" && p != "." && p != "/") {
				t.Fatalf("CleanPath(%q, %v) = \".\"", p, allowRoot)
			}
			return
		}
		if out != p {
			t.Fatalf("CleanPath(%q) = %q: accepted paths must already be canonical", p, out)
		}
		if path.Clean(out) != out || filepath.Clean(out) != out {
			t.Fatalf("CleanPath(%q) = %q is not clean", p, out)
		}
		if path.IsAbs(out) || filepath.IsAbs(out) || !filepath.IsLocal(out) {
			t.Fatalf("CleanPath(%q) = %q is not local", p, out)
		}
		if len(out) > MaxPath {
			t.Fatalf("CleanPath accepted %d bytes", len(out))
		}
		for _, part := range strings.Split(out, "/") {
			if part == "" || part == "." || part == ".." || part == metaDir {
				t.Fatalf("CleanPath(%q) = %q has part %q", p, out, part)
			}
			for _, r := range part {
				if r < 0x20 || r == 0x7f || r == '\\' {
					t.Fatalf("CleanPath(%q) = %q has %U", p, out, r)
				}
			}
		}
		again, err := CleanPath(out, allowRoot)
		if err != nil || again != out {
			t.Fatalf("CleanPath(CleanPath(%q)) = %q, %v", p, again, err)
		}
		root := "/srv/files/user"
		if j := filepath.Join(root, out); !strings.HasPrefix(j, root+"/") || strings.HasPrefix(j, root+"/"+metaDir+"/") {
			t.Fatalf("%q joined to the user's folder is %q", out, j)
		}
		if utf8.ValidString(p) && !fs.ValidPath(out) {
			t.Fatalf("CleanPath(%q) = %q is not a valid fs path", p, out)
		}
	})
}

func TestFileLifecycle(t *testing.T) {
	s, root := newStore(t, 1<<20)
	data := bytes.Repeat([]byte("pyvnode "), 500)
	if err := s.Mkdir("u", "docs"); err != nil {
		t.Fatal(err)
	}
	info := put(t, s, "u", "docs/a.txt", data)
	if info.Path != "docs/a.txt" || info.Size != int64(len(data)) || info.SHA256 != sum(data) || info.Dir {
		t.Fatalf("commit info %+v", info)
	}
	st, err := s.Stat("u", "docs/a.txt")
	if err != nil || st.SHA256 != sum(data) || st.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v %v", st, err)
	}
	got, eof, err := s.Read("u", "docs/a.txt", 0, 100)
	if err != nil || eof || !bytes.Equal(got, data[:100]) {
		t.Fatalf("Read = %d bytes, eof %v, %v", len(got), eof, err)
	}
	got, eof, err = s.Read("u", "docs/a.txt", int64(len(data))-10, 100)
	if err != nil || !eof || !bytes.Equal(got, data[len(data)-10:]) {
		t.Fatalf("Read at the end = %d bytes, eof %v, %v", len(got), eof, err)
	}
	if got, eof, err = s.Read("u", "docs/a.txt", int64(len(data))+5, 10); err != nil || !eof || len(got) != 0 {
		t.Fatalf("Read past the end = %d bytes, eof %v, %v", len(got), eof, err)
	}
	if _, _, err := s.Read("u", "docs/a.txt", -1, 10); !errors.Is(err, ErrBadPath) {
		t.Fatalf("Read at a negative offset: %v", err)
	}
	// The checksum follows the content (a change on disk is not hidden by
	// the cache).
	newData := append([]byte("changed "), data...)
	os.WriteFile(filepath.Join(root, "u", "docs", "a.txt"), newData, 0o600)
	if st, _ := s.Stat("u", "docs/a.txt"); st.SHA256 != sum(newData) {
		t.Fatal("Stat served a stale checksum")
	}
	ls, err := s.List("u", "")
	if err != nil || len(ls) != 1 || ls[0].Path != "docs" || !ls[0].Dir {
		t.Fatalf("List root = %+v %v", ls, err)
	}
	if ls, _ := s.List("u", "docs"); len(ls) != 1 || ls[0].Path != "docs/a.txt" {
		t.Fatalf("List docs = %+v", ls)
	}
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"mkdir existing", s.Mkdir("u", "docs"), ErrExists},
		{"mkdir without parent", s.Mkdir("u", "x/y"), ErrNotFound},
		{"mkdir under a file", s.Mkdir("u", "docs/a.txt/y"), ErrNotDir},
		{"rmdir a file", s.Rmdir("u", "docs/a.txt"), ErrNotDir},
		{"remove a dir", s.Remove("u", "docs"), ErrIsDir},
		{"remove missing", s.Remove("u", "nope"), ErrNotFound},
		{"list a file", func() error { _, err := s.List("u", "docs/a.txt"); return err }(), ErrNotDir},
		{"read a dir", func() error { _, _, err := s.Read("u", "docs", 0, 1); return err }(), ErrIsDir},
		{"stat missing", func() error { _, err := s.Stat("u", "nope"); return err }(), ErrNotFound},
		{"write under a file", func() error { _, err := s.Write("u", "docs/a.txt/b", 0, []byte("x")); return err }(), ErrNotDir},
		{"write without parent", func() error { _, err := s.Write("u", "x/b", 0, []byte("x")); return err }(), ErrNotFound},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	// Commit onto a directory is refused.
	if _, err := s.Write("u", "docs", 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit("u", "docs", 1, sum([]byte("x"))); !errors.Is(err, ErrIsDir) {
		t.Fatalf("commit onto a directory: %v", err)
	}
	if err := s.Remove("u", "docs/a.txt"); err != nil {
		t.Fatal(err)
	}
	if err := s.Rmdir("u", "docs"); err != nil {
		t.Fatal(err)
	}
	// An empty file needs only a commit.
	if info, err := s.Commit("u", "empty", 0, sum(nil)); err != nil || info.Size != 0 {
		t.Fatalf("empty file: %+v %v", info, err)
	}
	// Users do not see each other's files.
	if _, err := s.Stat("v", "empty"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another user's file: %v", err)
	}
}

// TestRmdirNotEmpty: removing a directory that still has entries must say
// so. mapErr (files.go) tests errors.Is(err, fs.ErrExist) before its
// "directory not empty" case, and syscall.Errno counts ENOTEMPTY as
// fs.ErrExist, so the answer is ErrExists ("already exists: docs"; on the
// wire "exists") instead of ErrNotEmpty ("bad_request").
func TestRmdirNotEmpty(t *testing.T) {
	s, _ := newStore(t, 1<<20)
	if err := s.Mkdir("u", "docs"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "u", "docs/a", []byte("x"))
	err := s.Rmdir("u", "docs")
	if err == nil {
		t.Fatal("removed a directory that is not empty")
	}
	if !errors.Is(err, ErrNotEmpty) {
		fixedBug(t, "Rmdir of a non-empty directory answers ErrExists (files.go mapErr)")
		t.Fatalf("Rmdir of a non-empty directory: %v, want ErrNotEmpty", err)
	}
}

// plant makes symbolic links in user u's folder: to a file and a folder
// outside it, to a file and a folder inside it, and a relative one out.
func plant(t *testing.T, s *Store, root string) (outsideFile string) {
	t.Helper()
	if err := s.Mkdir("u", "d"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "u", "real", []byte("inside"))
	outside := t.TempDir()
	outsideFile = filepath.Join(outside, "secret")
	os.WriteFile(outsideFile, []byte("secret"), 0o600)
	dir := filepath.Join(root, "u")
	for name, target := range map[string]string{
		"out": outsideFile, "outdir": outside, "rel": "../../../../../../../../../../" + strings.TrimPrefix(outsideFile, "/"),
		"in": filepath.Join(dir, "real"), "inrel": "real", "indir": "d", "d/up": "..", "loop": "loop",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return outsideFile
}

func TestSymlinksAreNeverFollowed(t *testing.T) {
	s, root := newStore(t, 1<<20)
	outsideFile := plant(t, s, root)
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrSymlink) && !errors.Is(err, ErrBadPath) {
			t.Errorf("%s: %v, want ErrSymlink or ErrBadPath", what, err)
		}
	}
	for _, p := range []string{"out", "rel", "in", "inrel", "loop", "outdir", "indir", "outdir/secret", "indir/x", "d/up", "d/up/real"} {
		_, err := s.Stat("u", p)
		refused("Stat "+p, err)
		_, _, err = s.Read("u", p, 0, 10)
		refused("Read "+p, err)
		refused("Remove "+p, s.Remove("u", p))
		refused("Rmdir "+p, s.Rmdir("u", p))
	}
	for _, p := range []string{"outdir", "indir", "d/up"} {
		_, err := s.List("u", p)
		refused("List "+p, err)
		refused("Mkdir "+p+"/new", s.Mkdir("u", p+"/new"))
		_, err = s.Write("u", p+"/new", 0, []byte("x"))
		refused("Write "+p+"/new", err)
	}
	for _, p := range []string{"out", "in", "loop"} {
		if _, err := s.Write("u", p, 0, []byte("pwned")); err != nil {
			t.Fatalf("write upload %s: %v", p, err)
		}
		_, err := s.Commit("u", p, 5, sum([]byte("pwned")))
		refused("Commit "+p, err)
	}
	if b, _ := os.ReadFile(outsideFile); string(b) != "secret" {
		t.Fatalf("outside file now %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "u", "real")); string(b) != "inside" {
		t.Fatalf("inside file now %q", b)
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(outsideFile), "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a file was created through a link")
	}
	ls, err := s.List("u", "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ls {
		names = append(names, e.Path)
	}
	if strings.Join(names, ",") != "d,real" {
		t.Fatalf("List shows %v", names)
	}
	// Usage does not count what links point to.
	if u, err := s.Usage("u"); err != nil || u > 1000 {
		t.Fatalf("usage %d %v", u, err)
	}
}

// TestMetadataIsReserved: the node's metadata folder cannot be named, and
// does not show in listings.
func TestMetadataIsReserved(t *testing.T) {
	s, root := newStore(t, 1<<20)
	put(t, s, "u", "a", []byte("abc"))
	for _, p := range []string{".pyvnode", ".pyvnode/uploads", "x/.pyvnode"} {
		if _, err := s.Stat("u", p); !errors.Is(err, ErrBadPath) {
			t.Errorf("Stat %s: %v", p, err)
		}
		if _, err := s.Write("u", p, 0, []byte("x")); !errors.Is(err, ErrBadPath) {
			t.Errorf("Write %s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "u", metaDir, "uploads")); err != nil {
		t.Fatalf("metadata folder: %v", err)
	}
	ls, _ := s.List("u", ".")
	if len(ls) != 1 || ls[0].Path != "a" {
		t.Fatalf("List shows %+v", ls)
	}
}

func TestQuota(t *testing.T) {
	s, _ := newStore(t, 1000)
	if _, err := s.Write("u", "a", 0, make([]byte, 600)); err != nil {
		t.Fatal(err)
	}
	if off, err := s.Write("u", "a", 600, make([]byte, 500)); !errors.Is(err, ErrQuota) || off != 600 {
		t.Fatalf("write over the quota: %d %v", off, err)
	}
	if off, _ := s.UploadOffset("u", "a"); off != 600 {
		t.Fatalf("a refused write changed the upload: %d", off)
	}
	// Another upload shares the same quota.
	if _, err := s.Write("u", "b", 0, make([]byte, 500)); !errors.Is(err, ErrQuota) {
		t.Fatalf("second upload over the quota: %v", err)
	}
	// Starting an upload over frees what it held.
	if _, err := s.Write("u", "a", 0, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write("u", "b", 0, make([]byte, 800)); err != nil {
		t.Fatalf("after restarting the other upload: %v", err)
	}
	if _, err := s.Commit("u", "b", 800, sum(make([]byte, 800))); err != nil {
		t.Fatal(err)
	}
	// A failed commit gives its room back.
	if _, err := s.Write("u", "a", 100, make([]byte, 50)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit("u", "a", 150, sum([]byte("not it"))); !errors.Is(err, ErrChecksum) {
		t.Fatal(err)
	}
	// Replacing a file counts only the difference once committed.
	if _, err := s.Write("u", "c", 0, make([]byte, 150)); err != nil {
		t.Fatalf("room of a discarded upload not returned: %v", err)
	}
	if _, err := s.Commit("u", "c", 150, sum(make([]byte, 150))); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("u", "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write("u", "d", 0, make([]byte, 800)); err != nil {
		t.Fatalf("room of a removed file not returned: %v", err)
	}
	// A new store (a restart) computes the same usage from disk.
	used, _ := s.Usage("u")
	s2, err := Open(s.root, s.quota)
	if err != nil {
		t.Fatal(err)
	}
	used2, _ := s2.Usage("u")
	if used2 < used || used2 > used+1000 {
		t.Fatalf("usage %d before restart, %d after", used, used2)
	}
	// Another user has their own quota.
	if _, err := s.Write("v", "a", 0, make([]byte, 900)); err != nil {
		t.Fatalf("another user's quota: %v", err)
	}
}

func TestUploadResumeAndChecks(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 300)
	for _, restart := range []bool{false, true} {
		name := map[bool]string{false: "same store", true: "after a restart"}[restart]
		t.Run(name, func(t *testing.T) {
			s, root := newStore(t, 1<<20)
			if off, err := s.UploadOffset("u", "f"); err != nil || off != 0 {
				t.Fatalf("offset before any write: %d %v", off, err)
			}
			if _, err := s.Write("u", "f", 0, data[:1000]); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write("u", "f", 1000, data[1000:2000]); err != nil {
				t.Fatal(err)
			}
			if restart {
				var err error
				if s, err = Open(root, s.quota); err != nil {
					t.Fatal(err)
				}
			}
			if off, err := s.UploadOffset("u", "f"); err != nil || off != 2000 {
				t.Fatalf("offset = %d %v", off, err)
			}
			for _, bad := range []int64{1999, 2001, -1, 5000} {
				if off, err := s.Write("u", "f", bad, data[:10]); !errors.Is(err, ErrOffset) || off != 2000 {
					t.Fatalf("write at %d: %d %v", bad, off, err)
				}
			}
			if _, err := s.Stat("u", "f"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("upload visible before commit: %v", err)
			}
			if _, err := s.Write("u", "f", 2000, data[2000:]); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Commit("u", "f", int64(len(data))-1, sum(data)); !errors.Is(err, ErrBadLength) {
				t.Fatalf("commit with a short length: %v", err)
			}
			if off, _ := s.UploadOffset("u", "f"); off != int64(len(data)) {
				t.Fatal("a length mismatch discarded the upload")
			}
			info, err := s.Commit("u", "f", int64(len(data)), sum(data))
			if err != nil || info.SHA256 != sum(data) {
				t.Fatalf("commit: %+v %v", info, err)
			}
			if b, _ := os.ReadFile(filepath.Join(root, "u", "f")); !bytes.Equal(b, data) {
				t.Fatal("stored content differs")
			}
			if off, _ := s.UploadOffset("u", "f"); off != 0 {
				t.Fatalf("upload still there after commit: %d", off)
			}
			if _, err := s.Commit("u", "f", int64(len(data)), sum(data)); !errors.Is(err, ErrNoUpload) {
				t.Fatalf("second commit: %v", err)
			}
		})
	}
}

// TestCommitVerifiesContent: the checksum a commit checks is the content's,
// whatever path the upload took (restarts at 0, refused writes, pieces
// rewritten); a mismatch discards the upload.
func TestCommitVerifiesContent(t *testing.T) {
	s, _ := newStore(t, 1<<20)
	a := bytes.Repeat([]byte("a"), 3000)
	b := bytes.Repeat([]byte("b"), 3000)
	// Start with a, restart with b: the commit must be b's.
	s.Write("u", "f", 0, a[:1000])
	s.Write("u", "f", 1000, a[1000:2000])
	s.Write("u", "f", 0, b[:1000])
	s.Write("u", "f", 1000, b[1000:])
	if _, err := s.Commit("u", "f", 3000, sum(append(b[:1000:1000], a[1000:]...))); !errors.Is(err, ErrChecksum) {
		t.Fatalf("commit with a stale mix: %v", err)
	}
	if off, _ := s.UploadOffset("u", "f"); off != 0 {
		t.Fatal("a checksum mismatch kept the upload")
	}
	if _, err := s.Stat("u", "f"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed commit made a file: %v", err)
	}
	s.Write("u", "f", 0, b[:1000])
	s.Write("u", "f", 5, b[:10]) // refused: wrong offset
	s.Write("u", "f", 1000, b[1000:])
	if _, err := s.Commit("u", "f", 3000, sum(b)); err != nil {
		t.Fatalf("commit of b: %v", err)
	}
}
