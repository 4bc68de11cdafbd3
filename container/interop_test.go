package container

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/internal/registrytest"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startRegistry runs Debian's docker-registry on 127.0.0.1
// (registrytest) and returns HOST:PORT and the path of its log (the
// access log counts bytes served).
func startRegistry(t *testing.T) (string, string) {
	t.Helper()
	r := registrytest.Start(t, registrytest.Options{})
	return r.Addr, r.Log
}

// makeTree writes a small OS tree with busybox (so a RUN has a shell).
func makeTree(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"bin", "usr/bin", "usr/lib/os", "etc", "var"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755)
	os.Symlink("busybox", filepath.Join(dir, "bin/sh"))
	os.WriteFile(filepath.Join(dir, "usr/bin/old"), []byte("old\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr/lib/os/data"), bytes.Repeat([]byte("d"), 100000), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/os-release"), []byte("ID=test\n"), 0o644)
	os.Link(filepath.Join(dir, "usr/bin/old"), filepath.Join(dir, "usr/bin/old-link"))
}

func TestEncapsulateRoundTripRegistry(t *testing.T) {
	ctx := context.Background()
	addr, _ := startRegistry(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	makeTree(t, tree)
	os.Rename(filepath.Join(tree, "etc"), filepath.Join(tree, "usr/etc"))
	src := filepath.Join(dir, "src")
	run(t, "ostree", "--repo="+src, "init", "--mode=archive")
	run(t, "ostree", "--repo="+src, "commit", "-b", "os", "--tree=dir="+tree, "--add-metadata-string=version=1.0", "--timestamp=2026-01-01T00:00:00Z", "-s", "v1")
	want := strings.TrimSpace(run(t, "ostree", "--repo="+src, "rev-parse", "os"))
	r, err := repo.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := objects.ParseChecksum(want)
	imgName := addr + "/os:v1"
	res, err := Encapsulate(ctx, r, c, ImageRef{Registry, imgName}, EncapsulateOptions{MaxLayers: 8})
	if err != nil {
		t.Fatal(err)
	}
	// Reproducible: a second export of the same commit, same digest.
	res2, err := Encapsulate(ctx, r, c, ImageRef{OCIDir, filepath.Join(dir, "layout") + ":v1"}, EncapsulateOptions{MaxLayers: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.ManifestDigest != res2.ManifestDigest {
		t.Fatalf("same commit, two digests: %s %s", res.ManifestDigest, res2.ManifestDigest)
	}
	// skopeo reads what strata pushed, and copies it to an oci: layout.
	run(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+imgName)
	run(t, "skopeo", "copy", "--src-tls-verify=false", "docker://"+imgName, "oci:"+filepath.Join(dir, "skopeo")+":v1")
	for _, mode := range []string{"archive", "bare", "bare-user", "bare-user-only"} {
		for _, ref := range []ImageRef{{Registry, imgName}, {OCIDir, filepath.Join(dir, "skopeo") + ":v1"}} {
			dst := filepath.Join(t.TempDir(), "repo")
			run(t, "ostree", "--repo="+dst, "init", "--mode="+mode)
			d, err := repo.Open(dst)
			if err != nil {
				t.Fatal(err)
			}
			pr, err := Pull(ctx, d, ref, PullOptions{})
			if err != nil {
				t.Fatalf("%s %s: %v", mode, ref, err)
			}
			if pr.BaseCommit.String() != want {
				t.Fatalf("%s %s: imported %s, want %s", mode, ref, pr.BaseCommit, want)
			}
			if pr.ManifestDigest != res.ManifestDigest {
				t.Fatalf("digest %s, want %s", pr.ManifestDigest, res.ManifestDigest)
			}
			run(t, "ostree", "--repo="+dst, "fsck")
			// The merge commit has the same tree.
			if a, b := run(t, "ostree", "--repo="+dst, "ls", "-R", "-C", want), run(t, "ostree", "--repo="+dst, "ls", "-R", "-C", pr.MergeCommit.String()); a != b {
				t.Fatalf("merge tree differs from the encapsulated commit's")
			}
			// A second pull fetches nothing.
			pr2, err := Pull(ctx, d, ref, PullOptions{})
			if err != nil || pr2.LayersFetched != 0 || pr2.MergeCommit != pr.MergeCommit {
				t.Fatalf("second pull: %+v %v", pr2, err)
			}
		}
	}
}

// TestEncapsulateOCIArchive exports a commit to oci-archive: twice (same
// bytes, same digest as the oci: export), skopeo reads and copies it, and
// a pull from the archive imports the very commit.
func TestEncapsulateOCIArchive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	makeTree(t, tree)
	os.Rename(filepath.Join(tree, "etc"), filepath.Join(tree, "usr/etc"))
	src := filepath.Join(dir, "src")
	run(t, "ostree", "--repo="+src, "init", "--mode=archive")
	run(t, "ostree", "--repo="+src, "commit", "-b", "os", "--tree=dir="+tree, "--add-metadata-string=version=1.0", "--timestamp=2026-01-01T00:00:00Z", "-s", "v1")
	want := strings.TrimSpace(run(t, "ostree", "--repo="+src, "rev-parse", "os"))
	r, err := repo.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := objects.ParseChecksum(want)
	layoutRes, err := Encapsulate(ctx, r, c, ImageRef{OCIDir, filepath.Join(dir, "layout") + ":v1"}, EncapsulateOptions{MaxLayers: 4})
	if err != nil {
		t.Fatal(err)
	}
	var archives [][]byte
	for _, name := range []string{"a.tar", "b.tar"} {
		res, err := Encapsulate(ctx, r, c, ImageRef{OCIArchive, filepath.Join(dir, name) + ":v1"}, EncapsulateOptions{MaxLayers: 4})
		if err != nil {
			t.Fatal(err)
		}
		if res.ManifestDigest != layoutRes.ManifestDigest {
			t.Fatalf("archive digest %s, layout %s", res.ManifestDigest, layoutRes.ManifestDigest)
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		archives = append(archives, b)
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Fatal("two exports of one commit are different archives")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".strata-encapsulate-*")); len(left) != 0 {
		t.Errorf("temporary layouts left: %v", left)
	}
	arch := "oci-archive:" + filepath.Join(dir, "a.tar") + ":v1"
	if out := run(t, "skopeo", "inspect", arch); !strings.Contains(out, layoutRes.ManifestDigest) || !strings.Contains(out, `"ostree.commit": "`+want+`"`) {
		t.Errorf("skopeo inspect %s:\n%s", arch, out)
	}
	run(t, "skopeo", "copy", arch, "oci:"+filepath.Join(dir, "skopeo")+":v1")
	dst := filepath.Join(dir, "dst")
	run(t, "ostree", "--repo="+dst, "init", "--mode=bare-user")
	d, err := repo.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := Pull(ctx, d, ImageRef{OCIArchive, filepath.Join(dir, "a.tar") + ":v1"}, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pr.BaseCommit.String() != want || pr.ManifestDigest != layoutRes.ManifestDigest {
		t.Fatalf("pulled %s (%s), want %s (%s)", pr.BaseCommit, pr.ManifestDigest, want, layoutRes.ManifestDigest)
	}
	run(t, "ostree", "--repo="+dst, "fsck")
}

// TestBuildahUmociImages imports plain images built by buildah (a RUN
// layer with a whiteout) and umoci.
func TestBuildahUmociImages(t *testing.T) {
	ctx := context.Background()
	addr, _ := startRegistry(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "rootfs")
	makeTree(t, tree)
	run(t, "tar", "-C", tree, "-cf", filepath.Join(dir, "rootfs.tar"), ".")
	os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM scratch\nADD rootfs.tar /\nRUN echo new > /usr/bin/new && rm /usr/bin/old /usr/bin/old-link && mkdir -p /tmp/junk && echo x > /tmp/junk/f\n"), 0o644)
	st := []string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs"}
	run(t, "buildah", append(st, "bud", "--layers", "--isolation", "chroot", "-t", "localhost/strata-test:latest", "-f", filepath.Join(dir, "Containerfile"), dir)...)
	run(t, "buildah", append(st, "push", "localhost/strata-test:latest", "oci:"+filepath.Join(dir, "buildah")+":v1")...)
	run(t, "skopeo", "copy", "--dest-tls-verify=false", "oci:"+filepath.Join(dir, "buildah")+":v1", "docker://"+addr+"/plain:v1")

	dst := filepath.Join(dir, "repo")
	run(t, "ostree", "--repo="+dst, "init", "--mode=bare-user")
	d, _ := repo.Open(dst)
	pr, err := Pull(ctx, d, ImageRef{Registry, addr + "/plain:v1"}, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !pr.BaseCommit.IsZero() || pr.LayersFetched != 2 {
		t.Fatalf("plain image: %+v", pr)
	}
	ls := run(t, "ostree", "--repo="+dst, "ls", "-R", pr.MergeCommit.String())
	for _, must := range []string{"/usr/bin/new", "/usr/etc/os-release", "/bin/busybox", "/usr/lib/os/data"} {
		if !strings.Contains(ls, must+"\n") {
			t.Errorf("merge commit lacks %s:\n%s", must, ls)
		}
	}
	for _, not := range []string{"/usr/bin/old\n", ".wh.", " /etc/os-release", "/tmp/junk"} {
		if strings.Contains(ls, not) {
			t.Errorf("merge commit has %q:\n%s", not, ls)
		}
	}
	refs := run(t, "ostree", "--repo="+dst, "refs")
	if !strings.Contains(refs, "ostree/container/blob/sha256_3A_") || !strings.Contains(refs, "ostree/container/image/docker_3A__2F__2F_127_2E_0_2E_0_2E_1_3A_") {
		t.Errorf("refs are not ostree-ext's:\n%s", refs)
	}
	run(t, "ostree", "--repo="+dst, "fsck")

	// umoci: a layout with one layer.
	ul := filepath.Join(dir, "umoci")
	run(t, "umoci", "init", "--layout", ul)
	run(t, "umoci", "new", "--image", ul+":v1")
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--rootless", "--image", ul+":v1", bundle)
	run(t, "cp", "-a", tree+"/.", filepath.Join(bundle, "rootfs"))
	run(t, "umoci", "repack", "--image", ul+":v1", bundle)
	pu, err := Pull(ctx, d, ImageRef{OCIDir, ul + ":v1"}, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ls = run(t, "ostree", "--repo="+dst, "ls", "-R", pu.MergeCommit.String())
	if !strings.Contains(ls, "/usr/bin/old-link\n") || !strings.Contains(ls, "/usr/etc/os-release\n") {
		t.Errorf("umoci image:\n%s", ls)
	}
}

// layout writes an OCI layout with the given layer blobs.
func writeTestLayout(t *testing.T, dir string, layers [][]byte, mt string, edit func(m *Manifest, cfg map[string]any)) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	put := func(b []byte) string {
		s := sha256.Sum256(b)
		h := hex.EncodeToString(s[:])
		os.WriteFile(filepath.Join(dir, "blobs", "sha256", h), b, 0o644)
		return "sha256:" + h
	}
	var diffs []any
	m := Manifest{SchemaVersion: 2, MediaType: mtOCIManifest}
	for _, l := range layers {
		d := put(l)
		diffs = append(diffs, d)
		m.Layers = append(m.Layers, Descriptor{MediaType: mt, Digest: d, Size: int64(len(l))})
	}
	cfg := map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffs}}
	if edit != nil {
		edit(&m, cfg)
	}
	cb, _ := json.Marshal(cfg)
	m.Config = Descriptor{MediaType: mtOCIConfig, Digest: put(cb), Size: int64(len(cb))}
	mb, _ := json.Marshal(m)
	md := put(mb)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{"mediaType": mtOCIManifest, "digest": md, "size": len(mb), "annotations": map[string]string{annotationRefName: "v1"}}}})
	os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// editIndex rewrites the layout's index.json, edit changing its one
// manifest descriptor.
func editIndex(t *testing.T, dir string, edit func(d map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "index.json")
	b, _ := os.ReadFile(p)
	var ix map[string]any
	if err := json.Unmarshal(b, &ix); err != nil {
		t.Fatal(err)
	}
	edit(ix["manifests"].([]any)[0].(map[string]any))
	b, _ = json.Marshal(ix)
	os.WriteFile(p, b, 0o644)
}

// editManifest rewrites the layout's manifest blob and points the index
// at the new one.
func editManifest(t *testing.T, dir string, edit func(m *Manifest)) {
	t.Helper()
	editIndex(t, dir, func(d map[string]any) {
		b, _ := os.ReadFile(filepath.Join(dir, "blobs/sha256", d["digest"].(string)[7:]))
		var m Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		edit(&m)
		b, _ = json.Marshal(m)
		s := sha256.Sum256(b)
		os.WriteFile(filepath.Join(dir, "blobs/sha256", hex.EncodeToString(s[:])), b, 0o644)
		d["digest"], d["size"] = "sha256:"+hex.EncodeToString(s[:]), len(b)
	})
}

func tarOf(t *testing.T, hs ...*tar.Header) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hs {
		if h.Typeflag == tar.TypeReg {
			h.Size = 2
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("x\n"))
		}
	}
	tw.Close()
	return b.Bytes()
}

func TestHostileImages(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	sentinel := filepath.Join(base, "sentinel")
	os.WriteFile(sentinel, []byte("untouched"), 0o644)
	reg := func(n string) *tar.Header { return &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644} }
	cases := []struct {
		name   string
		layers [][]byte
		mt     string
		edit   func(m *Manifest, cfg map[string]any)
		mangle func(t *testing.T, dir string) // after the layout is written
		want   string
		is     error
		image  bool // refused before any layer: the error names no layer
	}{
		{name: "dotdot", layers: [][]byte{tarOf(t, reg("usr/../../sentinel"))}, want: `".."`},
		{name: "absolute", layers: [][]byte{tarOf(t, reg("/usr/x"))}, want: "absolute"},
		{name: "escaping hard link", layers: [][]byte{tarOf(t, reg("usr/a"), &tar.Header{Typeflag: tar.TypeLink, Name: "usr/b", Linkname: "../sentinel"})}, want: "hard link"},
		{name: "device", layers: [][]byte{tarOf(t, &tar.Header{Typeflag: tar.TypeChar, Name: "usr/null", Mode: 0o666, Devmajor: 1, Devminor: 3})}, want: "character device"},
		{name: "unknown media type", layers: [][]byte{tarOf(t, reg("usr/a"))}, mt: "application/x-strange", want: "unknown layer media type"},
		{name: "wrong digest", layers: [][]byte{tarOf(t, reg("usr/a"))}, edit: func(m *Manifest, cfg map[string]any) {
			m.Layers[0].Digest = "sha256:" + strings.Repeat("0", 64)
		}, want: "sha256:0000"},
		{name: "999 TiB layer", layers: [][]byte{tarOf(t, reg("usr/a"))}, edit: func(m *Manifest, cfg map[string]any) {
			m.Layers[0].Size = 999 << 40
		}, is: ErrNoSpace, image: true},
		{name: "layer larger than its size", layers: [][]byte{tarOf(t, reg("usr/a"))}, edit: func(m *Manifest, cfg map[string]any) {
			m.Layers[0].Size--
		}, want: "larger than its descriptor", is: errdefs.ErrCorrupt},
		{name: "escaping symlink", layers: [][]byte{tarOf(t,
			&tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/up", Linkname: "../../..", Mode: 0o777},
			reg("usr/up/sentinel"))}, want: "usr/up"},
		{name: "whiteout of dotdot", layers: [][]byte{tarOf(t, reg("usr/.wh..."))}, want: "names no file"},
		{name: "manifest wrong digest", mangle: func(t *testing.T, dir string) {
			zero := strings.Repeat("0", 64)
			editIndex(t, dir, func(d map[string]any) {
				b, _ := os.ReadFile(filepath.Join(dir, "blobs/sha256", d["digest"].(string)[7:]))
				os.WriteFile(filepath.Join(dir, "blobs/sha256", zero), b, 0o644)
				d["digest"] = "sha256:" + zero
			})
		}, want: "manifest hashes to", is: errdefs.ErrCorrupt, image: true},
		{name: "manifest size lies", mangle: func(t *testing.T, dir string) {
			editIndex(t, dir, func(d map[string]any) { d["size"] = d["size"].(float64) - 1 })
		}, want: "its descriptor says", is: errdefs.ErrCorrupt, image: true},
		{name: "index names a strange media type", mangle: func(t *testing.T, dir string) {
			editIndex(t, dir, func(d map[string]any) { d["mediaType"] = "application/x-strange" })
		}, want: "unknown manifest media type", is: errdefs.ErrInvalid, image: true},
		{name: "manifest of a strange media type", edit: func(m *Manifest, cfg map[string]any) {
			m.MediaType = mtOCIConfig
		}, mangle: func(t *testing.T, dir string) {
			editIndex(t, dir, func(d map[string]any) { delete(d, "mediaType") })
		}, want: "unknown manifest media type", is: errdefs.ErrInvalid, image: true},
		{name: "config of a strange media type", mangle: func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *Manifest) { m.Config.MediaType = "application/x-strange" })
		}, want: "unknown config media type", is: errdefs.ErrInvalid, image: true},
		{name: "config wrong digest", mangle: func(t *testing.T, dir string) {
			zero := strings.Repeat("0", 64)
			editManifest(t, dir, func(m *Manifest) {
				b, _ := os.ReadFile(filepath.Join(dir, "blobs/sha256", m.Config.Digest[7:]))
				os.WriteFile(filepath.Join(dir, "blobs/sha256", zero), b, 0o644)
				m.Config.Digest = "sha256:" + zero
			})
		}, want: "config hashes to", is: errdefs.ErrCorrupt, image: true},
		{name: "oversize config", mangle: func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *Manifest) { m.Config.Size = MaxConfigSize + 1 })
		}, want: "over the", is: errdefs.ErrInvalid, image: true},
		{name: "oversize index", mangle: func(t *testing.T, dir string) {
			editIndex(t, dir, func(d map[string]any) { d["pad"] = strings.Repeat("x", MaxManifestSize) })
		}, want: "index.json", is: errdefs.ErrInvalid, image: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(base, strings.ReplaceAll(tc.name, " ", "-"))
			mt := tc.mt
			if mt == "" {
				mt = MediaTypeLayerTar
			}
			layers := tc.layers
			if layers == nil {
				layers = [][]byte{tarOf(t, reg("usr/a"))}
			}
			writeTestLayout(t, dir, layers, mt, tc.edit)
			if tc.mangle != nil {
				tc.mangle(t, dir)
			}
			if tc.name == "wrong digest" {
				// The blob the manifest names exists but holds other bytes.
				os.WriteFile(filepath.Join(dir, "blobs/sha256", strings.Repeat("0", 64)), tc.layers[0], 0o644)
			}
			dst := filepath.Join(t.TempDir(), "repo")
			r, err := repo.Init(dst, repo.ModeBareUser, repo.InitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = Pull(ctx, r, ImageRef{OCIDir, dir + ":v1"}, PullOptions{})
			if err == nil {
				t.Fatal("hostile image imported")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, "image oci:"+dir) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q: want one line naming the image and %q", msg, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if tc.is == ErrNoSpace && time.Since(start) > 5*time.Second {
				t.Errorf("free-space check took %v", time.Since(start))
			}
			if !tc.image && tc.name != "unknown media type" && !strings.Contains(msg, "layer sha256:") {
				t.Errorf("error %q does not name the layer", msg)
			}
			refs, _ := r.ListRefs()
			if len(refs) != 0 {
				t.Errorf("refs published: %v", refs)
			}
			if objs, _ := os.ReadDir(filepath.Join(dst, "objects")); tc.image && len(objs) != 0 {
				t.Errorf("objects written for an image refused before its layers")
			}
			if b, _ := os.ReadFile(sentinel); string(b) != "untouched" {
				t.Fatal("sentinel outside the repo changed")
			}
		})
	}
	// An oversize manifest is refused before it is read.
	dir := filepath.Join(base, "big")
	writeTestLayout(t, dir, [][]byte{tarOf(t, reg("usr/a"))}, MediaTypeLayerTar, nil)
	idx, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	var ix map[string]any
	json.Unmarshal(idx, &ix)
	ix["manifests"].([]any)[0].(map[string]any)["size"] = MaxManifestSize + 1
	idx, _ = json.Marshal(ix)
	os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
	r, _ := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
	_, err := Pull(ctx, r, ImageRef{OCIDir, dir + ":v1"}, PullOptions{})
	if err == nil || !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "over the") {
		t.Errorf("oversize manifest: %v", err)
	}
}
