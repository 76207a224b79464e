// Package files keeps each user's files under the node's data directory,
// with strict containment: every path is checked by name, then opened
// through an os.Root so that nothing (".." or a symbolic link) can reach
// outside the user's folder, and symbolic links are never served at all.
// Uploads are resumable by offset and checked with SHA-256 before they
// replace a file; each user has a quota.
package files

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors callers branch on.
var (
	ErrBadPath   = errors.New("bad path")
	ErrNotFound  = errors.New("no such file or directory")
	ErrExists    = errors.New("already exists")
	ErrQuota     = errors.New("quota exceeded")
	ErrOffset    = errors.New("upload offset does not match what the node holds")
	ErrChecksum  = errors.New("SHA-256 of the upload does not match")
	ErrNotEmpty  = errors.New("directory not empty")
	ErrIsDir     = errors.New("is a directory")
	ErrNotDir    = errors.New("not a directory")
	ErrSymlink   = errors.New("symbolic links are not served")
	ErrTooLarge  = errors.New("request too large")
	ErrNoUpload  = errors.New("no upload in progress for that path")
	ErrBadLength = errors.New("upload length does not match")
)

// metaDir holds uploads in progress and cached checksums inside each
// user's folder. Users cannot name it.
const metaDir = ".pyvnode"

// MaxPath bounds a path's length.
const MaxPath = 1024

// Info describes a file or directory.
type Info struct {
	Path    string    `json:"path" cbor:"path"`
	Size    int64     `json:"size" cbor:"size"`
	Dir     bool      `json:"dir" cbor:"dir"`
	ModTime time.Time `json:"mtime" cbor:"mtime"`
	SHA256  string    `json:"sha256,omitempty" cbor:"sha256,omitempty"`
}

// Store is the files of every user of a node.
type Store struct {
	root  string
	quota func(user string) int64

	mu    sync.Mutex
	usage map[string]int64 // bytes per user, computed on first use
	locks map[string]*sync.Mutex
	// running SHA-256 of uploads written in order, so a commit need not
	// read the upload again; missing after a restart (then it does)
	sums map[string]*runningSum
}

type runningSum struct {
	h   hash.Hash
	end int64
}

// maxRunningSums bounds the hash states kept for uploads in progress.
const maxRunningSums = 1024

// Open returns the store rooted at dir (created if needed). quota gives a
// user's limit in bytes.
func Open(dir string, quota func(user string) int64) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Store{root: dir, quota: quota, usage: map[string]int64{}, locks: map[string]*sync.Mutex{}, sums: map[string]*runningSum{}}, nil
}

// CleanPath checks a user-supplied path and returns it in canonical form:
// relative, slash-separated, no empty, "." or ".." parts, no control
// characters, not naming the node's own metadata.
func CleanPath(p string, allowRoot bool) (string, error) {
	if len(p) > MaxPath {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadPath, MaxPath)
	}
	if p == "" || p == "." || p == "/" {
		if allowRoot {
			return ".", nil
		}
		return "", fmt.Errorf("%w: empty path", ErrBadPath)
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w: %q is absolute; paths are relative to your folder", ErrBadPath, p)
	}
	for _, part := range strings.Split(p, "/") {
		switch {
		case part == "" || part == ".":
			return "", fmt.Errorf("%w: %q has an empty or '.' part", ErrBadPath, p)
		case part == "..":
			return "", fmt.Errorf("%w: %q climbs out with '..'", ErrBadPath, p)
		case strings.EqualFold(part, metaDir):
			// Case-insensitively: on macOS and Windows file systems
			// ".PYVNODE" is the same folder.
			return "", fmt.Errorf("%w: %q is reserved", ErrBadPath, metaDir)
		}
		for _, r := range part {
			if r < 0x20 || r == 0x7f || r == '\\' {
				return "", fmt.Errorf("%w: %q contains a control character or backslash", ErrBadPath, p)
			}
		}
	}
	return path.Clean(p), nil
}

// userRoot opens the user's folder as an os.Root, creating it.
func (s *Store) userRoot(user string) (*os.Root, error) {
	dir := filepath.Join(s.root, user)
	if err := os.MkdirAll(filepath.Join(dir, metaDir, "uploads"), 0o700); err != nil {
		return nil, err
	}
	return os.OpenRoot(dir)
}

func (s *Store) lock(user string) func() {
	s.mu.Lock()
	l := s.locks[user]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[user] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// mapErr turns filesystem errors into the package's errors, keeping the
// detail for the message.
func mapErr(p string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOTEMPTY):
		// Before ErrExist: Go counts "not empty" as a kind of "exists".
		return fmt.Errorf("%w: %s", ErrNotEmpty, p)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s", ErrNotFound, p)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %s", ErrExists, p)
	case strings.Contains(err.Error(), "escapes from parent") || strings.Contains(err.Error(), "path escapes"):
		return fmt.Errorf("%w: %s leads outside your folder", ErrBadPath, p)
	case strings.Contains(err.Error(), "not a directory"):
		return fmt.Errorf("%w: %s", ErrNotDir, p)
	case strings.Contains(err.Error(), "directory not empty"):
		return fmt.Errorf("%w: %s", ErrNotEmpty, p)
	}
	return err
}

// lstat refuses symbolic links anywhere in the path.
func lstat(r *os.Root, p string) (fs.FileInfo, error) {
	parts := strings.Split(p, "/")
	for i := range parts {
		fi, err := r.Lstat(strings.Join(parts[:i+1], "/"))
		if err != nil {
			return nil, mapErr(p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: %s", ErrSymlink, p)
		}
	}
	return r.Lstat(p)
}

// Usage returns the bytes a user's files take, uploads included.
func (s *Store) Usage(user string) (int64, error) {
	s.mu.Lock()
	u, ok := s.usage[user]
	s.mu.Unlock()
	if ok {
		return u, nil
	}
	var total int64
	err := filepath.WalkDir(filepath.Join(s.root, user), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.usage[user] = total
	s.mu.Unlock()
	return total, nil
}

func (s *Store) addUsage(user string, delta int64) {
	s.mu.Lock()
	if _, ok := s.usage[user]; ok {
		s.usage[user] += delta
	}
	s.mu.Unlock()
}

// Stat describes a path; for a file it includes the SHA-256.
func (s *Store) Stat(user, p string) (Info, error) {
	p, err := CleanPath(p, true)
	if err != nil {
		return Info{}, err
	}
	r, err := s.userRoot(user)
	if err != nil {
		return Info{}, err
	}
	defer r.Close()
	fi, err := lstat(r, p)
	if err != nil {
		return Info{}, err
	}
	info := Info{Path: p, Size: fi.Size(), Dir: fi.IsDir(), ModTime: fi.ModTime().UTC()}
	if fi.IsDir() {
		info.Size = 0
		return info, nil
	}
	if info.SHA256, err = s.checksum(r, p, fi); err != nil {
		return Info{}, err
	}
	return info, nil
}

// checksum returns a file's SHA-256, from the cache when the file has not
// changed since it was computed.
func (s *Store) checksum(r *os.Root, p string, fi fs.FileInfo) (string, error) {
	key := sumKey(p)
	// The stamp comes from the opened file itself, so the hash computed
	// below is of the file the stamp describes.
	f, err := r.Open(p)
	if err != nil {
		return "", mapErr(p, err)
	}
	defer f.Close()
	if ofi, err := f.Stat(); err == nil {
		fi = ofi
	}
	stamp := fileStamp(fi)
	if b, err := r.ReadFile(key); err == nil {
		if stored, sum, ok := strings.Cut(string(b), "\n"); ok && stored == stamp && len(sum) == 64 {
			return sum, nil
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	_ = r.WriteFile(key, []byte(stamp+"\n"+sum), 0o600) // a cache: failure costs only time
	return sum, nil
}

func sumKey(p string) string {
	h := sha256.Sum256([]byte(p))
	return metaDir + "/sum-" + hex.EncodeToString(h[:16])
}

func uploadKey(p string) string {
	h := sha256.Sum256([]byte(p))
	return metaDir + "/uploads/" + hex.EncodeToString(h[:16])
}

// List returns a directory's entries, by name. Symbolic links are left out.
func (s *Store) List(user, p string) ([]Info, error) {
	p, err := CleanPath(p, true)
	if err != nil {
		return nil, err
	}
	r, err := s.userRoot(user)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if p != "." {
		fi, err := lstat(r, p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%w: %s", ErrNotDir, p)
		}
	}
	d, err := r.Open(p)
	if err != nil {
		return nil, mapErr(p, err)
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, mapErr(p, err)
	}
	out := []Info{}
	for _, e := range ents {
		if strings.EqualFold(e.Name(), metaDir) || e.Type()&fs.ModeSymlink != 0 {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		full := e.Name()
		if p != "." {
			full = p + "/" + e.Name()
		}
		in := Info{Path: full, Size: fi.Size(), Dir: fi.IsDir(), ModTime: fi.ModTime().UTC()}
		if in.Dir {
			in.Size = 0
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Mkdir creates a directory (its parent must exist).
func (s *Store) Mkdir(user, p string) error {
	p, err := CleanPath(p, false)
	if err != nil {
		return err
	}
	r, err := s.userRoot(user)
	if err != nil {
		return err
	}
	defer r.Close()
	if dir := path.Dir(p); dir != "." {
		if _, err := lstat(r, dir); err != nil {
			return err
		}
	}
	return mapErr(p, r.Mkdir(p, 0o700))
}

// Rmdir removes an empty directory.
func (s *Store) Rmdir(user, p string) error {
	p, err := CleanPath(p, false)
	if err != nil {
		return err
	}
	r, err := s.userRoot(user)
	if err != nil {
		return err
	}
	defer r.Close()
	fi, err := lstat(r, p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s", ErrNotDir, p)
	}
	return mapErr(p, r.Remove(p))
}

// Remove deletes a file.
func (s *Store) Remove(user, p string) error {
	p, err := CleanPath(p, false)
	if err != nil {
		return err
	}
	defer s.lock(user)()
	r, err := s.userRoot(user)
	if err != nil {
		return err
	}
	defer r.Close()
	fi, err := lstat(r, p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%w: %s (use rmdir)", ErrIsDir, p)
	}
	if err := r.Remove(p); err != nil {
		return mapErr(p, err)
	}
	_ = r.Remove(sumKey(p))
	s.addUsage(user, -fi.Size())
	return nil
}

// UploadOffset is how many bytes of an upload to p the node holds: where a
// resumed upload continues.
func (s *Store) UploadOffset(user, p string) (int64, error) {
	p, err := CleanPath(p, false)
	if err != nil {
		return 0, err
	}
	r, err := s.userRoot(user)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	fi, err := r.Lstat(uploadKey(p))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Write appends data to the upload of p at offset, which must be where the
// upload ends (0 starts it over). It returns the new end.
func (s *Store) Write(user, p string, offset int64, data []byte) (int64, error) {
	p, err := CleanPath(p, false)
	if err != nil {
		return 0, err
	}
	defer s.lock(user)()
	r, err := s.userRoot(user)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	if dir := path.Dir(p); dir != "." {
		fi, err := lstat(r, dir)
		if err != nil {
			return 0, err
		}
		if !fi.IsDir() {
			return 0, fmt.Errorf("%w: %s", ErrNotDir, dir)
		}
	}
	key := uploadKey(p)
	var have int64
	if fi, err := r.Lstat(key); err == nil {
		have = fi.Size()
	}
	if offset != 0 && offset != have {
		return have, fmt.Errorf("%w: asked to write at %d, the node holds %d bytes", ErrOffset, offset, have)
	}
	used, err := s.Usage(user)
	if err != nil {
		return 0, err
	}
	grow := offset + int64(len(data)) - have
	if q := s.quota(user); used+grow > q {
		return have, fmt.Errorf("%w: %d of %d bytes used", ErrQuota, used, q)
	}
	flags := os.O_WRONLY | os.O_CREATE
	if offset == 0 {
		flags |= os.O_TRUNC
	}
	f, err := r.OpenFile(key, flags, 0o600)
	if err != nil {
		return 0, err
	}
	if _, err := f.WriteAt(data, offset); err != nil {
		f.Close()
		s.dropSum(user, p)
		return 0, err
	}
	if err := f.Close(); err != nil {
		s.dropSum(user, p)
		return 0, err
	}
	s.addUsage(user, grow)
	s.extendSum(user, p, offset, data)
	return offset + int64(len(data)), nil
}

// Commit finishes the upload of p: its length and SHA-256 must be the ones
// given. The file is synced and then replaces p.
func (s *Store) Commit(user, p string, size int64, sum string) (Info, error) {
	p, err := CleanPath(p, false)
	if err != nil {
		return Info{}, err
	}
	defer s.lock(user)()
	r, err := s.userRoot(user)
	if err != nil {
		return Info{}, err
	}
	defer r.Close()
	key := uploadKey(p)
	f, err := r.Open(key)
	if errors.Is(err, fs.ErrNotExist) {
		if size != 0 {
			return Info{}, fmt.Errorf("%w: %s", ErrNoUpload, p)
		}
		// An empty file needs no write.
		if f, err = r.OpenFile(key, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return Info{}, err
		}
		f.Close()
		f, err = r.Open(key)
	}
	if err != nil {
		return Info{}, err
	}
	var n int64
	var h hash.Hash
	if rs := s.takeSum(user, p); rs != nil && rs.end == size {
		h, n = rs.h, rs.end
		if fi, serr := f.Stat(); serr != nil || fi.Size() != n {
			h = nil // the file is not what was hashed: read it
		}
	}
	if h == nil {
		h = sha256.New()
		n, err = io.Copy(h, f)
	}
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return Info{}, err
	}
	if n != size {
		return Info{}, fmt.Errorf("%w: the node holds %d bytes, the commit says %d", ErrBadLength, n, size)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if !strings.EqualFold(got, sum) {
		_ = r.Remove(key)
		s.addUsage(user, -n)
		return Info{}, fmt.Errorf("%w: node computed %s, client sent %s; the upload was discarded", ErrChecksum, got, sum)
	}
	var replaced int64
	if fi, err := lstat(r, p); err == nil {
		if fi.IsDir() {
			return Info{}, fmt.Errorf("%w: %s", ErrIsDir, p)
		}
		replaced = fi.Size()
	} else if !errors.Is(err, ErrNotFound) {
		return Info{}, err
	}
	if err := r.Rename(key, p); err != nil {
		return Info{}, mapErr(p, err)
	}
	s.addUsage(user, -replaced)
	fi, err := r.Lstat(p)
	if err != nil {
		return Info{}, err
	}
	_ = r.WriteFile(sumKey(p), []byte(fileStamp(fi)+"\n"+got), 0o600)
	return Info{Path: p, Size: fi.Size(), ModTime: fi.ModTime().UTC(), SHA256: got}, nil
}

// Read returns up to n bytes of p from offset, and whether they reach the
// end of the file.
func (s *Store) Read(user, p string, offset int64, n int) ([]byte, bool, error) {
	p, err := CleanPath(p, false)
	if err != nil {
		return nil, false, err
	}
	if offset < 0 || n < 0 {
		return nil, false, fmt.Errorf("%w: negative offset or length", ErrBadPath)
	}
	r, err := s.userRoot(user)
	if err != nil {
		return nil, false, err
	}
	defer r.Close()
	fi, err := lstat(r, p)
	if err != nil {
		return nil, false, err
	}
	if fi.IsDir() {
		return nil, false, fmt.Errorf("%w: %s", ErrIsDir, p)
	}
	f, err := r.Open(p)
	if err != nil {
		return nil, false, mapErr(p, err)
	}
	defer f.Close()
	if offset >= fi.Size() {
		return []byte{}, true, nil
	}
	buf := make([]byte, min(int64(n), fi.Size()-offset))
	m, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	return buf[:m], offset+int64(m) >= fi.Size(), nil
}

func sumKeyOf(user, p string) string { return user + "\x00" + p }

// extendSum feeds data written at offset into the upload's running hash
// when it continues it; offset 0 starts a new one.
func (s *Store) extendSum(user, p string, offset int64, data []byte) {
	k := sumKeyOf(user, p)
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.sums[k]
	if offset == 0 {
		if len(s.sums) >= maxRunningSums {
			clear(s.sums) // rare: commits fall back to reading the upload
		}
		rs = &runningSum{h: sha256.New()}
		s.sums[k] = rs
	}
	if rs == nil || rs.end != offset {
		delete(s.sums, k)
		return
	}
	rs.h.Write(data)
	rs.end += int64(len(data))
}

func (s *Store) takeSum(user, p string) *runningSum {
	k := sumKeyOf(user, p)
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.sums[k]
	delete(s.sums, k)
	return rs
}

func (s *Store) dropSum(user, p string) { s.takeSum(user, p) }

// fileStamp identifies a file's content version for the checksum cache:
// size, modification time, change time and inode.
func fileStamp(fi fs.FileInfo) string {
	st := strconv.FormatInt(fi.Size(), 10) + " " + strconv.FormatInt(fi.ModTime().UnixNano(), 10)
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st += " " + strconv.FormatInt(sys.Ctim.Nano(), 10) + " " + strconv.FormatUint(sys.Ino, 10)
	}
	return st
}
