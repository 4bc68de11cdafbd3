package repo

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/compress/flate"
	"github.com/strata-os/strata/objects"
)

// archiveObject serialises a .filez object: header, then raw deflate.
func archiveObject(h *objects.FileHeader, content []byte) []byte {
	var b bytes.Buffer
	b.Write(h.MarshalArchive())
	if h.IsRegular() {
		zw, _ := flate.NewWriter(&b, 6)
		zw.Write(content)
		zw.Close()
	}
	return b.Bytes()
}

// decodeArchive decodes a .filez independently of the code under test and
// returns its checksum, or false when it is not a well-formed object of at
// most 1 MiB of content (with nothing after its compressed stream, which
// strata refuses).
func decodeArchive(data []byte) (objects.Checksum, []byte, bool) {
	var c objects.Checksum
	br := bytes.NewReader(data)
	h, err := objects.ReadArchiveHeader(br)
	if err != nil || h.Validate() != nil || h.Size > 1<<20 {
		return c, nil, false
	}
	var content []byte
	if br.Len() > 0 || h.Size > 0 {
		// The stream must hold exactly the content and end the object:
		// bytes.Reader is a ByteReader, so flate reads no further than
		// its end.
		content, err = io.ReadAll(io.LimitReader(flate.NewReader(br), int64(h.Size)+1))
		if err != nil || uint64(len(content)) != h.Size || br.Len() != 0 {
			return c, nil, false
		}
	}
	hs := objects.NewFileHasher(h)
	hs.Write(content)
	hs.Sum(c[:0])
	return c, content, true
}

// FuzzWriteArchiveFile feeds arbitrary bytes, as a .filez received from the
// network, to Txn.WriteArchiveFileVerified, into an archive repository (the
// object kept as it is) and a bare-user one (re-encoded). It must not panic
// and must allocate in proportion to its input (a header may declare any
// size); bytes that do not hash to the wanted checksum stage nothing; an
// accepted object reads back, verified, with the content it was sent.
func FuzzWriteArchiveFile(f *testing.F) {
	reg := &objects.FileHeader{Mode: objects.ModeRegular | 0o644, Size: 11, Xattrs: objects.Xattrs{{Name: "user.x", Value: []byte("v")}}}
	f.Add(archiveObject(reg, []byte("hello world")), false)
	f.Add(archiveObject(&objects.FileHeader{Mode: objects.ModeSymlink | 0o777, Target: "../target"}, nil), true)
	f.Add(archiveObject(&objects.FileHeader{Mode: objects.ModeRegular | 0o755}, nil), false)
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // above smallFile
	f.Add(archiveObject(&objects.FileHeader{Mode: objects.ModeRegular | 0o600, Size: uint64(len(big))}, big), true)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, false)
	repos := map[bool]*Repo{}
	for _, bare := range []bool{false, true} {
		mode := ModeArchive
		if bare {
			mode = ModeBareUser
		}
		r, err := Init(filepath.Join(f.TempDir(), mode.String()), mode, InitOptions{})
		if err != nil {
			f.Fatal(err)
		}
		r.fsync = false
		repos[bare] = r
	}
	f.Fuzz(func(t *testing.T, data []byte, bare bool) {
		r := repos[bare]
		want, content, ok := decodeArchive(data)
		if !ok {
			want = objects.Sum(data) // any checksum: nothing may be stored
		}
		had, err := r.HasObject(objects.KindFile, want)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := r.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Abort()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err = tx.WriteArchiveFileVerified(bytes.NewReader(data), want)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20+8*uint64(len(data))+2*uint64(len(content)) {
			t.Fatalf("%d bytes of input allocated %d bytes", len(data), alloc)
		}
		if err != nil {
			if ok {
				t.Fatalf("well-formed object refused: %v", err)
			}
			if staged, _ := tx.Has(objects.KindFile, want); staged && !had {
				t.Fatalf("refused object staged: %v", err)
			}
			return
		}
		if !ok {
			t.Fatalf("object accepted that does not decode")
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		_, rc, err := r.OpenFileVerified(want)
		if err != nil {
			t.Fatalf("accepted object does not open: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("accepted object does not read back: %v", err)
		}
		if !bytes.Equal(got, content) {
			t.Fatalf("accepted object reads back %d bytes, sent %d", len(got), len(content))
		}
	})
}
