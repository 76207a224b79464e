package ledger

import (
	"io"

	"bytes"
	"context"
	"errors"
	"github.com/transparency-dev/merkle/compact"
	"strings"
	"testing"
	"time"
)

func TestExportImportRoundTrip(t *testing.T) {
	g := testGenesis(2)
	src, recs := buildChain(t, g, 300)
	id := &Identity{Key: testKey(7)}
	var buf bytes.Buffer
	if err := src.Export(context.Background(), &buf, ExportOptions{Identity: id}); err != nil {
		t.Fatalf("Export: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(recs)+2 {
		t.Fatalf("export has %d lines, want %d", len(lines), len(recs)+2)
	}

	// The trailer's checkpoint verifies and states the source's head.
	er, err := NewExportReader(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := er.Next(); err != nil {
			break
		}
	}
	if er.Trailer == nil {
		t.Fatal("no trailer")
	}
	cp, err := OpenCheckpoint([]byte(er.Trailer.Checkpoint), id.ID())
	if err != nil {
		t.Fatalf("OpenCheckpoint: %v", err)
	}
	if h := src.Head(); cp.Size != h.Size || cp.Root != h.Root || cp.Link != h.Link || cp.Network != g.Network {
		t.Fatalf("checkpoint %+v, head %+v", cp, h)
	}

	dst := openTestStore(t, t.TempDir(), g)
	defer dst.Close()
	rep, err := Import(context.Background(), dst, bytes.NewReader(buf.Bytes()), ImportOptions{Batch: 64})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if rep.Appended != 300 || rep.Existing != 0 || dst.Head() != src.Head() {
		t.Fatalf("import report %+v, head %+v vs %+v", rep, dst.Head(), src.Head())
	}
	// Importing again appends nothing.
	rep, err = Import(context.Background(), dst, bytes.NewReader(buf.Bytes()), ImportOptions{})
	if err != nil || rep.Appended != 0 || rep.Existing != 300 {
		t.Fatalf("second import: %+v, %v", rep, err)
	}
}

func TestImportRefusesBadExports(t *testing.T) {
	g := testGenesis(2)
	src, _ := buildChain(t, g, 20)
	var buf bytes.Buffer
	if err := src.Export(context.Background(), &buf, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	lines := strings.Split(strings.TrimSuffix(good, "\n"), "\n")
	sigOf := func(line string) string {
		i := strings.Index(line, `"signature":"`) + len(`"signature":"`)
		return line[i : i+128]
	}
	flipSig := strings.Replace(lines[5], sigOf(lines[5]), "00"+sigOf(lines[5])[2:], 1)
	cases := map[string]struct {
		text string
		want error
	}{
		"bad signature":  {strings.Replace(good, lines[5], flipSig, 1), ErrSignature},
		"changed kind":   {strings.Replace(good, lines[3], strings.Replace(lines[3], `"kind":"note.text"`, `"kind":"note.other"`, 1), 1), ErrDecode},
		"truncated":      {strings.Join(lines[:10], "\n") + "\n", nil},
		"garbage line":   {strings.Replace(good, lines[4], "{not json", 1), nil},
		"other network":  {strings.Replace(good, `"network":"testnet"`, `"network":"elsewhere"`, 1), nil},
		"empty":          {"", nil},
		"unknown fields": {strings.Replace(good, lines[2], strings.Replace(lines[2], `{`, `{"extra":1,`, 1), 1), nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dst := openTestStore(t, t.TempDir(), g)
			defer dst.Close()
			_, err := Import(context.Background(), dst, strings.NewReader(tc.text), ImportOptions{Batch: 4})
			if err == nil {
				t.Fatal("import succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// Whatever was appended before the bad line still verifies.
			if _, err := dst.Verify(context.Background(), VerifyOptions{}); err != nil {
				t.Fatalf("chain after refused import: %v", err)
			}
		})
	}
}

func TestCheckpointRejectsTampering(t *testing.T) {
	id := &Identity{Key: testKey(9)}
	cp := &Checkpoint{Network: "testnet", Node: id.ID(), Size: 5, Root: Hash{1}, Link: Hash{2}, Time: time.Unix(1700000000, 5).UTC()}
	msg, err := SignCheckpoint(cp, id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenCheckpoint(msg, id.ID())
	if err != nil || *got != *cp {
		t.Fatalf("OpenCheckpoint = %+v, %v; want %+v", got, err, cp)
	}
	tampered := bytes.Replace(msg, []byte("\n5\n"), []byte("\n6\n"), 1)
	if _, err := OpenCheckpoint(tampered, id.ID()); err == nil {
		t.Fatal("tampered size accepted")
	}
	other := &Identity{Key: testKey(10)}
	if _, err := OpenCheckpoint(msg, other.ID()); err == nil {
		t.Fatal("checkpoint accepted as another node's")
	}
}

func TestPartialExportCarriesPrefix(t *testing.T) {
	g := testGenesis(0)
	src, recs := buildChain(t, g, 100)
	var buf bytes.Buffer
	if err := src.Export(context.Background(), &buf, ExportOptions{From: 37}); err != nil {
		t.Fatal(err)
	}
	er, err := NewExportReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if er.Header.PrevLink == nil || len(er.Header.PrevRange) == 0 {
		t.Fatalf("header lacks the prefix: %+v", er.Header)
	}
	// Continue the links and the compact range from the header alone.
	link := *er.Header.PrevLink
	var hashes [][]byte
	for _, h := range er.Header.PrevRange {
		hashes = append(hashes, bytes.Clone(h[:]))
	}
	rng, err := (&compact.RangeFactory{Hash: hasher.HashChildren}).NewRange(0, 37, hashes)
	if err != nil {
		t.Fatalf("prev_range is not the compact range of [0,37): %v", err)
	}
	n := 0
	for {
		x, err := er.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if x.ID != recs[37+n].ID {
			t.Fatalf("line %d is record %s", n, x.ID)
		}
		link = NextLink(link, x.ID)
		if link != x.Link {
			t.Fatalf("link at %d does not continue from prev_link", x.Height)
		}
		l := LeafHash(x.ID)
		rng.Append(l[:], nil)
		n++
	}
	root, _ := rng.GetRootHash(nil)
	if n != 63 || Hash(root) != er.Trailer.Root || link != er.Trailer.Link {
		t.Fatalf("partial export does not reach the trailer: %d lines", n)
	}
	if err := src.Export(context.Background(), &bytes.Buffer{}, ExportOptions{From: 101}); err == nil {
		t.Fatal("export from beyond the head succeeded")
	}
}
