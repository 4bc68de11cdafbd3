package container

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// chunkedTree writes 240 files of 6 KB (half random, half text) under
// twelve directories; v2 rewrites six, adds three and removes two.
func chunkedTree(t *testing.T, dir string, v2 bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 240 {
		d := filepath.Join(dir, "usr/lib", fmt.Sprintf("pkg%02d", i%12))
		os.MkdirAll(d, 0o755)
		data := make([]byte, 3000)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		data = append(data, bytes.Repeat([]byte(fmt.Sprintf("file %d line\n", i)), 250)...)
		if v2 && i%40 == 7 {
			data = append(data, "changed in v2\n"...)
		}
		if v2 && (i == 100 || i == 201) {
			continue
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "usr/etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr/etc/os-release"), []byte("ID=chunked\n"), 0o644)
	if v2 {
		for i := range 3 {
			os.WriteFile(filepath.Join(dir, "usr/lib/pkg03", fmt.Sprintf("new%d", i)), bytes.Repeat([]byte{byte(i)}, 5000+i), 0o755)
		}
	}
}

// chunkedImages commits v1 and v2 of chunkedTree with ostree and pushes
// both, zstd-chunked, to registry as chunked:v1 and chunked:v2.
func chunkedImages(t *testing.T, registry string) (v1, v2 objects.Checksum) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	run(t, "ostree", "--repo="+src, "init", "--mode=archive")
	r, err := repo.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	var out [2]objects.Checksum
	for i, v2 := range []bool{false, true} {
		tree := filepath.Join(dir, fmt.Sprint("tree", i))
		chunkedTree(t, tree, v2)
		run(t, "ostree", "--repo="+src, "commit", "-b", "os", "--tree=dir="+tree, "--timestamp=2026-01-01T00:00:00Z", fmt.Sprint("--add-metadata-string=version=", i+1))
		out[i], _ = r.ResolveRev("os")
		if _, err := Encapsulate(context.Background(), r, out[i], ImageRef{Registry, fmt.Sprintf("%s/chunked:v%d", registry, i+1)}, EncapsulateOptions{MaxLayers: 8}); err != nil {
			t.Fatal(err)
		}
	}
	return out[0], out[1]
}

// layerRefs maps a repository's layer refs to their commits.
func layerRefs(t *testing.T, r *repo.Repo) map[string]objects.Checksum {
	t.Helper()
	refs, err := r.ListRefs()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]objects.Checksum{}
	for _, ref := range refs {
		if strings.Contains(ref.Path, "ostree/container/blob/") {
			out[ref.Path] = ref.Checksum
		}
	}
	return out
}

// TestChunkedUpdate: a v1 -> v2 update of a zstd-chunked image fetches
// from the changed chunk layers only the head and the new objects, with
// Range requests (bytes counted at a proxy before Debian's registry),
// gives the very commit and the same layer records as a whole pull, and
// survives a registry that ignores Range, a flipped byte and a broken
// connection.
func TestChunkedUpdate(t *testing.T) {
	ctx := context.Background()
	registry, _ := startRegistry(t)
	v1, v2 := chunkedImages(t, registry)
	retryDelay = 0

	im, err := resolve(ctx, ImageRef{Registry, registry + "/chunked:v2"}, Access{})
	if err != nil {
		t.Fatal(err)
	}
	im.src.close()
	old, err := resolve(ctx, ImageRef{Registry, registry + "/chunked:v1"}, Access{})
	if err != nil {
		t.Fatal(err)
	}
	old.src.close()
	if im.manifest.Layers[0].MediaType != MediaTypeLayerZstd || im.manifest.Layers[0].Annotations[AnnotationTOC] == "" {
		t.Fatalf("commit layer %+v: not zstd with a table of contents", im.manifest.Layers[0])
	}
	inV1 := map[string]bool{}
	for _, l := range old.manifest.Layers {
		inV1[l.Digest] = true
	}
	changed := map[string]int64{} // chunk layers of v2 not in v1
	var changedBytes int64
	for _, l := range im.manifest.Layers[1:] {
		if !inV1[l.Digest] {
			changed["/v2/chunked/blobs/"+l.Digest] = l.Size
			changedBytes += l.Size
		}
	}
	if len(changed) == 0 {
		t.Fatal("v2 changed no chunk layer")
	}

	// withV1 is a repository that pulled v1, and a proxy.
	withV1 := func(t *testing.T, p *faultProxy) (*repo.Repo, string) {
		addr := p.start(t, registry)
		r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := Pull(ctx, r, ImageRef{Registry, addr + "/chunked:v1"}, PullOptions{}); err != nil || res.BaseCommit != v1 || res.LayersPartial != 0 {
			t.Fatalf("v1 pull into an empty repository: %+v %v (want every layer whole)", res, err)
		}
		return r, addr
	}

	p := &faultProxy{}
	r, addr := withV1(t, p)
	base := p.total()
	res, err := Pull(ctx, r, ImageRef{Registry, addr + "/chunked:v2"}, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseCommit != v2 {
		t.Fatalf("imported %s, want %s", res.BaseCommit, v2)
	}
	if res.LayersPartial == 0 {
		t.Fatalf("no layer fetched in part: %+v", res)
	}
	var chunkServed int64
	var target string
	byPath, servedB := p.snapshot()
	for path, size := range changed {
		for _, rg := range byPath[path] {
			if rg == "" {
				t.Errorf("%s (%d bytes) fetched whole", path, size)
			} else if target == "" {
				target = strings.TrimPrefix(path, "/v2/chunked/blobs/")
			}
		}
		chunkServed += servedB[path]
	}
	// Eleven files of about 6 KB changed or added: the changed layers
	// are about 270 KB, the parts fetched of them a few tens of KB.
	if chunkServed*5 > changedBytes {
		t.Fatalf("served %d bytes of the changed chunk layers (%d bytes): not a partial fetch", chunkServed, changedBytes)
	}
	t.Logf("update: %d bytes in all, %d of the %d bytes of changed chunk layers; %d layers in part", p.total()-base, chunkServed, changedBytes, res.LayersPartial)
	run(t, "ostree", "--repo="+r.Path(), "fsck")

	// A whole pull of v2 records the same layer commits.
	full, err := repo.Init(filepath.Join(t.TempDir(), "full"), repo.ModeBareUser, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := Pull(ctx, full, ImageRef{Registry, registry + "/chunked:v2"}, PullOptions{}); err != nil || res.LayersPartial != 0 {
		t.Fatalf("whole pull: %+v %v", res, err)
	}
	got, want := layerRefs(t, r), layerRefs(t, full)
	for ref, c := range want {
		if got[ref] != c {
			t.Errorf("layer ref %s: %s after the partial update, %s after a whole pull", ref, got[ref], c)
		}
	}

	published := func(r *repo.Repo, digest string) []string {
		refs, _ := r.ListRefs()
		var out []string
		for _, ref := range refs {
			if strings.Contains(ref.Path, strings.TrimPrefix(digest, "sha256:")) || strings.Contains(ref.Path, "v2") {
				out = append(out, ref.Path)
			}
		}
		sort.Strings(out)
		return out
	}
	t.Run("registry ignores Range", func(t *testing.T) {
		p := &faultProxy{target: target, mode: "norange", times: 100}
		r, addr := withV1(t, p)
		res, err := Pull(ctx, r, ImageRef{Registry, addr + "/chunked:v2"}, PullOptions{})
		if err != nil || res.BaseCommit != v2 {
			t.Fatalf("%+v %v", res, err)
		}
		byPath, _ := p.snapshot()
		if got := byPath["/v2/chunked/blobs/"+target]; len(got) != 2 || got[0] == "" || got[1] != "" {
			t.Fatalf("requests of the layer whose Range was ignored: %q (want the Range request, then a whole GET)", got)
		}
		run(t, "ostree", "--repo="+r.Path(), "fsck")
	})
	t.Run("flipped byte: refused, nothing published, a re-run completes", func(t *testing.T) {
		p := &faultProxy{target: target, mode: "flip", after: 400, times: 1}
		r, addr := withV1(t, p)
		_, err := Pull(ctx, r, ImageRef{Registry, addr + "/chunked:v2"}, PullOptions{Jobs: 1})
		if err == nil || !strings.Contains(err.Error(), "layer "+target) {
			t.Fatalf("flipped range: %v", err)
		}
		if refs := published(r, target); len(refs) != 0 {
			t.Fatalf("published %v after a corrupt range", refs)
		}
		if res, err := Pull(ctx, r, ImageRef{Registry, addr + "/chunked:v2"}, PullOptions{}); err != nil || res.BaseCommit != v2 {
			t.Fatalf("re-run: %+v %v", res, err)
		}
		run(t, "ostree", "--repo="+r.Path(), "fsck")
	})
	t.Run("broken connection: tried again", func(t *testing.T) {
		p := &faultProxy{target: target, mode: "reset", after: 3000, times: 1}
		r, addr := withV1(t, p)
		res, err := Pull(ctx, r, ImageRef{Registry, addr + "/chunked:v2"}, PullOptions{})
		if err != nil || res.BaseCommit != v2 {
			t.Fatalf("%+v %v", res, err)
		}
		byPath, _ := p.snapshot()
		if n := len(byPath["/v2/chunked/blobs/"+target]); n < 2 {
			t.Fatalf("%d requests of the broken layer, want a retry", n)
		}
		run(t, "ostree", "--repo="+r.Path(), "fsck")
	})
}

// TestReadTOCRefuses: a table of contents that does not fit its image is
// refused with a message naming what is wrong.
func TestReadTOCRefuses(t *testing.T) {
	chunk := Descriptor{Digest: "sha256:" + strings.Repeat("a", 64), Size: 1000}
	obj := strings.Repeat("b", 64)
	blob := func(tc *toc) ([]byte, Descriptor) {
		var buf bytes.Buffer
		buf.WriteString("tar frames before it")
		pos, err := writeTOC(&countWriter{w: &buf, n: int64(buf.Len())}, tc)
		if err != nil {
			t.Fatal(err)
		}
		return buf.Bytes(), Descriptor{Digest: "sha256:" + strings.Repeat("c", 64), Size: int64(buf.Len()), Annotations: map[string]string{AnnotationTOC: pos}}
	}
	good := toc{Version: tocVersion, Layers: []tocLayer{{Digest: chunk.Digest, Head: 100, Objects: []string{obj}, Lengths: []int64{50}}}}
	data, d := blob(&good)
	if tc, err := readTOC(bytes.NewReader(data), d, []Descriptor{chunk}); err != nil || len(tc.Layers) != 1 || tc.Layers[0].Objects[0] != obj {
		t.Fatalf("good table: %+v %v", tc, err)
	}
	for _, c := range []struct {
		name string
		edit func(*toc)
		want string
	}{
		{"version", func(tc *toc) { tc.Version = 9 }, "version 9"},
		{"unknown layer", func(tc *toc) { tc.Layers[0].Digest = "sha256:" + strings.Repeat("d", 64) }, "not one of the image's chunk layers"},
		{"twice", func(tc *toc) { tc.Layers = append(tc.Layers, tc.Layers[0]) }, "listed twice"},
		{"past the end", func(tc *toc) { tc.Layers[0].Lengths[0] = 950 }, "past the layer's 1000 bytes"},
		{"bad checksum", func(tc *toc) { tc.Layers[0].Objects[0] = "../x" }, `object "../x"`},
		{"lengths", func(tc *toc) { tc.Layers[0].Lengths = nil }, "1 objects, 0 lengths"},
		{"empty frame", func(tc *toc) { tc.Layers[0].Lengths[0] = 0 }, "frame of 0 bytes"},
	} {
		tc := good
		tc.Layers = []tocLayer{good.Layers[0]}
		tc.Layers[0].Objects = append([]string(nil), good.Layers[0].Objects...)
		tc.Layers[0].Lengths = append([]int64(nil), good.Layers[0].Lengths...)
		c.edit(&tc)
		data, d := blob(&tc)
		_, err := readTOC(bytes.NewReader(data), d, []Descriptor{chunk})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "table of contents") {
			t.Errorf("%s: %v (want %q)", c.name, err, c.want)
		}
	}
	// The annotation must name the skippable frame inside the blob.
	for _, pos := range []string{"", "x:1", "4:10", "20:99999", "28:-1"} {
		d2 := d
		d2.Annotations = map[string]string{AnnotationTOC: pos}
		if _, err := readTOC(bytes.NewReader(data), d2, []Descriptor{chunk}); err == nil {
			t.Errorf("annotation %q accepted", pos)
		}
	}
}

// FuzzReadTOC: any table of contents either is refused or describes
// frames that lie inside the layers it names.
func FuzzReadTOC(f *testing.F) {
	f.Add([]byte(`{"version":1,"layers":[{"digest":"sha256:` + strings.Repeat("a", 64) + `","head":100,"objects":["` + strings.Repeat("b", 64) + `"],"lengths":[50]}]}`))
	f.Add([]byte(`{"version":1,"layers":[]}`))
	chunk := Descriptor{Digest: "sha256:" + strings.Repeat("a", 64), Size: 1000}
	f.Fuzz(func(t *testing.T, raw []byte) {
		enc, _ := zstd.NewWriter(nil)
		payload := enc.EncodeAll(raw, nil)
		var buf bytes.Buffer
		var hdr [8]byte
		binary.LittleEndian.PutUint32(hdr[:4], skippableMagic)
		binary.LittleEndian.PutUint32(hdr[4:], uint32(len(payload)))
		buf.Write(hdr[:])
		buf.Write(payload)
		d := Descriptor{Digest: "sha256:" + strings.Repeat("c", 64), Size: int64(buf.Len()),
			Annotations: map[string]string{AnnotationTOC: fmt.Sprintf("8:%d", len(payload))}}
		tc, err := readTOC(bytes.NewReader(buf.Bytes()), d, []Descriptor{chunk})
		if err != nil {
			return
		}
		for _, l := range tc.Layers {
			end := l.Head
			for _, n := range l.Lengths {
				end += n
			}
			if l.Digest != chunk.Digest || end > chunk.Size || len(l.Objects) != len(l.Lengths) {
				t.Fatalf("accepted %+v", l)
			}
		}
	})
}

// imageLayout reads an image's object -> chunk layout from its table of
// contents.
func imageLayout(t *testing.T, ref ImageRef) map[objects.Checksum]int {
	t.Helper()
	m, err := previousLayout(context.Background(), ref, Access{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEncapsulatePrevious: a directory that grows past a chunk's share is
// spread over chunks by path, which moves its files of v1 to other
// layers; with --previous=v1 no object of v1 changes layer, the tree is
// the same, and the export stays reproducible.
func TestEncapsulatePrevious(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	r := archiveRepo(t, src)
	file := randomFiles(t, 3, 4)
	tree := filepath.Join(dir, "tree")
	for i := range 12 {
		file(filepath.Join(tree, fmt.Sprintf("usr/lib/d%02d/f", i)), 20000)
	}
	for i := range 8 {
		file(filepath.Join(tree, fmt.Sprintf("usr/share/grow/g%d", i)), 2000)
	}
	commitTree := func(version string) objects.Checksum {
		run(t, "ostree", "--repo="+src, "commit", "-b", "os", "--tree=dir="+tree, "--timestamp=2026-01-01T00:00:00Z", "--add-metadata-string=version="+version)
		c, _ := r.ResolveRev("os")
		return c
	}
	v1 := commitTree("1")
	// v2: usr/share/grow gets far more than a chunk's share.
	for i := range 20 {
		file(filepath.Join(tree, fmt.Sprintf("usr/share/grow/new%02d", i)), 20000)
	}
	v2 := commitTree("2")
	layout := filepath.Join(dir, "layout")
	exp := func(c objects.Checksum, tag string, prev *ImageRef) *EncapsulateResult {
		res, err := Encapsulate(ctx, r, c, ImageRef{OCIDir, layout + ":" + tag}, EncapsulateOptions{MaxLayers: 6, Previous: prev})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	exp(v1, "v1", nil)
	prev := &ImageRef{OCIDir, layout + ":v1"}
	exp(v2, "plain", nil)
	withPrev := exp(v2, "prev", prev)
	if again := exp(v2, "prev2", prev); again.ManifestDigest != withPrev.ManifestDigest {
		t.Fatalf("the same commit and previous image, two digests: %s %s", withPrev.ManifestDigest, again.ManifestDigest)
	}
	l1 := imageLayout(t, *prev)
	moved := func(tag string) int {
		n := 0
		for c, k := range imageLayout(t, ImageRef{OCIDir, layout + ":" + tag}) {
			if k1, ok := l1[c]; ok && k1 != k {
				n++
			}
		}
		return n
	}
	if n := moved("plain"); n == 0 {
		t.Fatal("without --previous no object of v1 moved: the test shows nothing")
	}
	if n := moved("prev"); n != 0 {
		t.Fatalf("with --previous, %d objects of v1 changed layer", n)
	}
	// Pulled, the image with the kept layout is v2.
	dst, err := repo.Init(filepath.Join(dir, "dst"), repo.ModeBareUser, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := Pull(ctx, dst, ImageRef{OCIDir, layout + ":prev"}, PullOptions{}); err != nil || res.BaseCommit != v2 {
		t.Fatalf("pull: %+v %v", res, err)
	}
	// A previous image without a table of contents is refused by name.
	if _, err := Encapsulate(ctx, r, v1, ImageRef{OCIDir, layout + ":gz"}, EncapsulateOptions{MaxLayers: 6, Compression: CompressionGzip}); err != nil {
		t.Fatal(err)
	}
	_, err = Encapsulate(ctx, r, v2, ImageRef{OCIDir, layout + ":x"}, EncapsulateOptions{MaxLayers: 6, Previous: &ImageRef{OCIDir, layout + ":gz"}})
	if err == nil || !strings.Contains(err.Error(), "previous image") || !strings.Contains(err.Error(), "no table of contents") {
		t.Fatalf("gzip previous image: %v", err)
	}
}

// TestChunkedResumeInsideObject: a transfer that breaks in the middle of
// a large new object's frame goes on from the byte it reached (a request
// for the rest of that range), not from the start of the object.
func TestChunkedResumeInsideObject(t *testing.T) {
	ctx := context.Background()
	registry, _ := startRegistry(t)
	retryDelay = 0
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	r := archiveRepo(t, src)
	file := randomFiles(t, 5, 6)
	tree := filepath.Join(dir, "tree")
	for i := range 10 {
		file(filepath.Join(tree, fmt.Sprintf("usr/lib/big/f%d", i)), 100000)
	}
	var commits []objects.Checksum
	for i, tag := range []string{"v1", "v2"} {
		if i == 1 {
			file(filepath.Join(tree, "usr/lib/big/new"), 400000)
		}
		run(t, "ostree", "--repo="+src, "commit", "-b", "os", "--tree=dir="+tree, "--timestamp=2026-01-01T00:00:00Z")
		c, _ := r.ResolveRev("os")
		commits = append(commits, c)
		if _, err := Encapsulate(ctx, r, c, ImageRef{Registry, registry + "/resume:" + tag}, EncapsulateOptions{MaxLayers: 3}); err != nil {
			t.Fatal(err)
		}
	}
	withV1 := func(p *faultProxy) (*repo.Repo, string) {
		addr := p.start(t, registry)
		dst, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Pull(ctx, dst, ImageRef{Registry, addr + "/resume:v1"}, PullOptions{}); err != nil {
			t.Fatal(err)
		}
		return dst, addr
	}
	// A clean update finds the layer fetched in part and its ranges.
	p := &faultProxy{}
	dst, addr := withV1(p)
	if res, err := Pull(ctx, dst, ImageRef{Registry, addr + "/resume:v2"}, PullOptions{}); err != nil || res.LayersPartial != 1 || res.BaseCommit != commits[1] {
		t.Fatalf("clean update: %+v %v", res, err)
	}
	var target string
	var planned int64
	byPath, _ := p.snapshot()
	for path, rgs := range byPath {
		if len(rgs) == 1 && strings.HasPrefix(rgs[0], "bytes=") && strings.Contains(path, "/blobs/") {
			target = path[strings.LastIndex(path, "/")+1:]
			for _, rg := range strings.Split(strings.TrimPrefix(rgs[0], "bytes="), ",") {
				var a, b int64
				fmt.Sscanf(rg, "%d-%d", &a, &b)
				planned += b - a + 1
			}
		}
	}
	if target == "" || planned < 400000 {
		t.Fatalf("no layer fetched in part with the new object (%v)", byPath)
	}
	// The same update, the connection reset 250 KB into the answer.
	p = &faultProxy{target: target, mode: "reset", after: 250000, times: 1}
	dst, addr = withV1(p)
	res, err := Pull(ctx, dst, ImageRef{Registry, addr + "/resume:v2"}, PullOptions{})
	if err != nil || res.BaseCommit != commits[1] || res.LayersPartial != 1 {
		t.Fatalf("update with a reset: %+v %v", res, err)
	}
	byPath, servedB := p.snapshot()
	got := byPath["/v2/resume/blobs/"+target]
	var from int64
	if len(got) != 2 || strings.Contains(got[1], ",") {
		t.Fatalf("requests of the layer: %q (want the ranges, then the rest of one range)", got)
	}
	if _, err := fmt.Sscanf(got[1], "bytes=%d-", &from); err != nil || from < 200000 {
		t.Fatalf("the resume %q does not go on from where the transfer broke", got[1])
	}
	if served := servedB["/v2/resume/blobs/"+target]; served > planned*5/4 {
		t.Fatalf("served %d bytes of the layer for %d planned: the object was fetched again", served, planned)
	}
	run(t, "ostree", "--repo="+dst.Path(), "fsck")
}

// archiveRepo makes an archive repository at path with ostree.
func archiveRepo(t *testing.T, path string) *repo.Repo {
	t.Helper()
	run(t, "ostree", "--repo="+path, "init", "--mode=archive")
	r, err := repo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// randomFiles returns a writer of files of n incompressible bytes, the
// same bytes for the same seeds and calls.
func randomFiles(t *testing.T, seed1, seed2 uint64) func(path string, n int) {
	rng := rand.New(rand.NewPCG(seed1, seed2))
	return func(p string, n int) {
		t.Helper()
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
