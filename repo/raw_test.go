package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/objects"
)

// archiveObjects writes a few files into a fresh archive repo and returns
// the repo and the objects' checksums.
func archiveObjects(t *testing.T) (*Repo, []objects.Checksum) {
	t.Helper()
	r, err := Init(filepath.Join(t.TempDir(), "src"), ModeArchive, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 600<<10)
	rand.New(rand.NewSource(1)).Read(big[:300<<10])
	var out []objects.Checksum
	for _, f := range []struct {
		h    objects.FileHeader
		data []byte
	}{
		{objects.FileHeader{Mode: objects.ModeRegular | 0o644}, []byte("hello\n")},
		{objects.FileHeader{Mode: objects.ModeRegular | 0o755, UID: 5, Xattrs: objects.Xattrs{{Name: "user.a", Value: []byte("b")}}}, nil},
		{objects.FileHeader{Mode: objects.ModeSymlink | 0o777, Target: "../x"}, nil},
		{objects.FileHeader{Mode: objects.ModeRegular | 0o600}, big},
	} {
		h := f.h
		h.Size = uint64(len(f.data))
		c, err := tx.WriteFile(&h, bytes.NewReader(f.data))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return r, out
}

func TestWriteArchiveFileVerified(t *testing.T) {
	src, sums := archiveObjects(t)
	for _, mode := range []Mode{ModeArchive, ModeBareUser} {
		dst, err := Init(filepath.Join(t.TempDir(), "dst"), mode, InitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := dst.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range sums {
			raw, err := os.ReadFile(src.ObjectPath(objects.KindFile, c))
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.WriteArchiveFileVerified(bytes.NewReader(raw), c); err != nil {
				t.Fatalf("%s: %v", mode, err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		for _, c := range sums {
			if mode == ModeArchive {
				a, _ := os.ReadFile(src.ObjectPath(objects.KindFile, c))
				b, err := os.ReadFile(dst.ObjectPath(objects.KindFile, c))
				if err != nil || !bytes.Equal(a, b) {
					t.Fatalf("archive copy of %s differs: %v", c, err)
				}
			}
			_, rc, err := dst.OpenFileVerified(c)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatalf("%s: stored %s does not verify: %v", mode, c, err)
			}
			rc.Close()
		}
	}
}

// endless is an infinite stream of empty, non-final stored deflate blocks
// after prefix: valid deflate that never ends and never produces output.
type endless struct {
	prefix []byte
	off    int // position in the 5-byte block pattern
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.prefix)
	e.prefix = e.prefix[n:]
	block := [5]byte{0, 0, 0, 0xff, 0xff} // BFINAL=0, stored, LEN=0, NLEN=0xffff
	for ; n < len(p); n++ {
		p[n] = block[e.off]
		e.off = (e.off + 1) % len(block)
	}
	return n, nil
}

// failing returns data, then err.
type failing struct {
	data []byte
	err  error
}

func (f *failing) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// stalled returns data, then nothing and no error forever.
type stalled struct{ data []byte }

func (s *stalled) Read(p []byte) (int, error) {
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestWriteArchiveFileRefuses(t *testing.T) {
	src, sums := archiveObjects(t)
	small, big := sums[0], sums[3]
	rawSmall, _ := os.ReadFile(src.ObjectPath(objects.KindFile, small))
	rawBig, _ := os.ReadFile(src.ObjectPath(objects.KindFile, big))
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		return c
	}
	hdrLen := 8 + int(rawSmall[3])
	bigHdrLen := 8 + int(rawBig[3])
	bytesOf := func(b []byte) func() io.Reader { return func() io.Reader { return bytes.NewReader(b) } }
	cases := []struct {
		name string
		in   func() io.Reader
		want objects.Checksum
	}{
		{"wrong checksum", bytesOf(rawSmall), big},
		{"flipped content", bytesOf(flip(rawSmall, len(rawSmall)-3)), small},
		{"flipped header", bytesOf(flip(rawSmall, hdrLen-2)), small},
		{"truncated", bytesOf(rawSmall[:len(rawSmall)-2]), small},
		{"truncated header", bytesOf(rawSmall[:hdrLen-1]), small},
		{"trailing junk", bytesOf(append(append([]byte(nil), rawSmall...), 'x')), small},
		{"truncated large", bytesOf(rawBig[:len(rawBig)/2]), big},
		{"flipped large", bytesOf(flip(rawBig, len(rawBig)/2)), big},
		{"trailing junk large", bytesOf(append(append([]byte(nil), rawBig...), 1, 2, 3)), big},
		{"endless", func() io.Reader { return &endless{prefix: rawSmall[:hdrLen]} }, small},
		{"endless large", func() io.Reader { return &endless{prefix: rawBig[:bigHdrLen]} }, big},
		{"endless after content", func() io.Reader { return io.MultiReader(bytes.NewReader(rawSmall), &endless{}) }, small},
		{"empty", bytesOf(nil), small},
	}
	for _, mode := range []Mode{ModeArchive, ModeBare} {
		for _, tc := range cases {
			dst, err := Init(filepath.Join(t.TempDir(), "dst"), mode, InitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tx, err := dst.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			err = tx.WriteArchiveFileVerified(tc.in(), tc.want)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s/%s: got %v, want ErrCorrupt", mode, tc.name, err)
			}
			// In a bare repo, a valid object followed by junk has been
			// staged (its content verified) before the junk is seen; the
			// caller aborts.
			junk := mode == ModeBare && (tc.name == "trailing junk" || tc.name == "trailing junk large" || tc.name == "endless after content")
			if !junk {
				// Nothing of a refused object reaches objects/.
				if err := tx.Commit(); err != nil {
					t.Errorf("%s/%s: commit after refusal: %v", mode, tc.name, err)
				}
			} else {
				tx.Abort()
			}
			for _, c := range []objects.Checksum{small, big} {
				if ok, _ := dst.HasObject(objects.KindFile, c); ok {
					t.Errorf("%s/%s: object %s stored", mode, tc.name, c)
				}
			}
		}
	}
}

// A failure of the stream itself (a reset connection) is reported as that
// failure, not as corruption, so that a puller retries it; a stream that
// stops producing data without an error fails too. Nothing is stored.
func TestWriteArchiveFileStreamErrors(t *testing.T) {
	src, sums := archiveObjects(t)
	small, big := sums[0], sums[3]
	rawSmall, _ := os.ReadFile(src.ObjectPath(objects.KindFile, small))
	rawBig, _ := os.ReadFile(src.ObjectPath(objects.KindFile, big))
	reset := errors.New("connection reset by peer")
	cases := []struct {
		name string
		in   io.Reader
		want objects.Checksum
		err  error
	}{
		{"reset in header", &failing{rawSmall[:5], reset}, small, reset},
		{"reset in content", &failing{rawSmall[:len(rawSmall)-2], reset}, small, reset},
		{"reset in large content", &failing{rawBig[:len(rawBig)/3], reset}, big, reset},
		{"stalled", &stalled{rawBig[:len(rawBig)/3]}, big, io.ErrNoProgress},
	}
	for _, mode := range []Mode{ModeArchive, ModeBareUser} {
		for _, tc := range cases {
			dst, err := Init(filepath.Join(t.TempDir(), "dst"), mode, InitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tx, err := dst.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			in := tc.in
			if f, ok := in.(*failing); ok {
				in = &failing{f.data, f.err}
			} else if s, ok := in.(*stalled); ok {
				in = &stalled{s.data}
			}
			err = tx.WriteArchiveFileVerified(in, tc.want)
			if !errors.Is(err, tc.err) || errors.Is(err, ErrCorrupt) {
				t.Errorf("%s/%s: got %v, want %v and not ErrCorrupt", mode, tc.name, err, tc.err)
			}
			if err := tx.Commit(); err != nil {
				t.Errorf("%s/%s: commit: %v", mode, tc.name, err)
			}
			if ok, _ := dst.HasObject(objects.KindFile, tc.want); ok {
				t.Errorf("%s/%s: object stored", mode, tc.name)
			}
		}
	}
}

// Transactions begun at once from many goroutines all start: a Begin's
// cleanup of stale staging directories may lock another's brand-new lock
// file for an instant, and that Begin then takes another name.
func TestConcurrentBegin(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"), ModeArchive, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			for range 30 {
				tx, err := r.Begin(context.Background())
				if err != nil {
					errs <- err
					return
				}
				tx.Abort()
			}
			errs <- nil
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Objects ostree wrote: a symlink's .filez is its header alone (no
// compressed stream), an empty file's an empty deflate block. Both are
// received as they are, in archive and bare-user repositories.
func TestWriteArchiveFileFromOstree(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "empty"), nil, 0o644)
	os.WriteFile(filepath.Join(tree, "hi"), []byte("hi\n"), 0o644)
	os.Symlink("target", filepath.Join(tree, "link"))
	for _, args := range [][]string{
		{"init", "--repo=" + src, "--mode=archive"},
		{"commit", "--repo=" + src, "-b", "m", "--tree=dir=" + tree},
	} {
		if out, err := exec.Command("ostree", args...).CombinedOutput(); err != nil {
			t.Fatalf("ostree %v: %v\n%s", args, err, out)
		}
	}
	s, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	var sums []objects.Checksum
	if err := s.ListObjects(func(o ObjectRef) error {
		if o.Kind == objects.KindFile {
			sums = append(sums, o.Checksum)
		}
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if len(sums) != 3 {
		t.Fatalf("%d file objects", len(sums))
	}
	for _, mode := range []Mode{ModeArchive, ModeBareUser} {
		dst, err := Init(filepath.Join(t.TempDir(), "dst"), mode, InitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := dst.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range sums {
			raw, _ := os.ReadFile(s.ObjectPath(objects.KindFile, c))
			if err := tx.WriteArchiveFileVerified(bytes.NewReader(raw), c); err != nil {
				t.Fatalf("%s: %v", mode, err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		for _, c := range sums {
			if _, rc, err := dst.OpenFileVerified(c); err != nil {
				t.Fatalf("%s: %v", mode, err)
			} else if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatalf("%s: %s does not verify: %v", mode, c, err)
			}
		}
		if out, err := exec.Command("ostree", "fsck", "--repo="+dst.Path(), "--all").CombinedOutput(); err != nil {
			t.Errorf("%s: ostree fsck: %v\n%s", mode, err, out)
		}
	}
}
