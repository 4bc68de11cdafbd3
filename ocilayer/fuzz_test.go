package ocilayer

import (
	"archive/tar"
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

func FuzzEscapeRef(f *testing.F) {
	for _, s := range []string{"sha256:abc", "docker://127.0.0.1:5000/os:v1", "oci:/a/b_c:tag", "a//b/", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := EscapeRef("p", s)
		if err != nil {
			return
		}
		if repo.ValidateRefName(ref) != nil {
			t.Fatalf("%q escapes to an invalid ref %q", s, ref)
		}
		back, err := UnescapeRef("p", ref)
		if err != nil || back != s {
			t.Fatalf("%q -> %q -> %q, %v", s, ref, back, err)
		}
	})
}

func tarBytes(hs ...*tar.Header) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hs {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	return b.Bytes()
}

// FuzzImportObjects feeds arbitrary layers to the encapsulated-layer
// reader: it must never panic, and whatever it accepts is verified.
func FuzzImportObjects(f *testing.F) {
	xs := objects.MarshalXattrs(nil)
	xsum := objects.Sum(xs).String()
	f.Add(tarBytes(&tar.Header{Name: objectsPrefix + xsum[:2] + "/" + xsum[2:] + ".file-xattrs", Typeflag: tar.TypeReg, Size: int64(len(xs)), Mode: 0o644}))
	f.Add(tarBytes(&tar.Header{Name: objectsPrefix + "00/" + xsum[2:] + ".commit", Typeflag: tar.TypeReg, Size: 10, Mode: 0o644}))
	f.Add(tarBytes(&tar.Header{Name: "../x", Typeflag: tar.TypeReg, Size: 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := repo.Init(filepath.Join(t.TempDir(), "r"), repo.ModeBareUser, repo.InitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := r.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Abort()
		ImportObjects(context.Background(), tx, bytes.NewReader(data), false, nil)
	})
}
