package install

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/imgpolicy"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// encapsulated exports sourceRepo's test/os with the container package
// as an ostree-ext image into an oci: layout (tag v1) and returns the
// layout, the source repository and the commit.
func encapsulated(t *testing.T) (layout, src string, c objects.Checksum) {
	t.Helper()
	src = sourceRepo(t)
	r, err := repo.Open(src)
	must(t, err)
	c, err = r.ResolveRev("test/os")
	must(t, err)
	layout = filepath.Join(t.TempDir(), "layout")
	_, err = container.Encapsulate(context.Background(), r, c, container.ImageRef{Transport: container.OCIDir, Name: layout + ":v1"}, container.EncapsulateOptions{})
	must(t, err)
	return layout, src, c
}

// rootTree is the root tree and dirmeta checksum of commit c of the
// repository at path.
func rootTree(t *testing.T, path string, c string) [2]objects.Checksum {
	t.Helper()
	r, err := repo.Open(path)
	must(t, err)
	sum, err := objects.ParseChecksum(c)
	must(t, err)
	co, err := r.ReadCommit(sum)
	must(t, err)
	return [2]objects.Checksum{co.RootTree, co.RootMeta}
}

// espFiles reads the ESP of img into path -> content, the deployment's
// commit and the root UUID replaced by placeholders.
func espFiles(t *testing.T, img string, res *Result) map[string]string {
	t.Helper()
	dir := readESP(t, img)
	csum, _, _ := strings.Cut(res.Deployment, ".")
	norm := strings.NewReplacer(csum, "CSUM", res.RootUUID, "ROOTUUID").Replace
	out := map[string]string{}
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[norm(rel)] = norm(string(data))
		return err
	}))
	return out
}

// TestToDiskFromImage installs an encapsulated image from an oci: layout
// and compares with an install of the commit it carries: the deployment's
// tree is the commit's, the ESP the same but for the deployment's
// checksum and the root UUID, ostree admin status reads the sysroot, the
// origin names the image the machine follows (--target-imgref). Bad
// references and a policy refusal write nothing; a corrupt layer blob
// fails with one line and the new image file is removed.
func TestToDiskFromImage(t *testing.T) {
	ctx := context.Background()
	layout, src, c := encapsulated(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")

	// Refused before anything is written.
	reject := filepath.Join(dir, "policy.json")
	must(t, os.WriteFile(reject, []byte(`{"default":[{"type":"reject"}]}`), 0o644))
	pol, err := imgpolicy.Load(reject)
	must(t, err)
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"missing layout", Options{SourceImage: "oci:" + filepath.Join(dir, "nothing")}, "nothing"},
		{"missing tag", Options{SourceImage: "oci:" + layout + ":v9"}, "v9"},
		{"bad target image", Options{SourceImage: "oci:" + layout, TargetImage: "quay.io/os:1"}, "target image"},
		{"both targets", Options{SourceImage: "oci:" + layout, TargetImage: "docker://127.0.0.1:1/os:1", TargetRef: "e2e:test/os"}, "mutually exclusive"},
		{"target ref of an image", Options{SourceImage: "oci:" + layout, TargetRef: "e2e:test/os"}, "give a target image"},
		{"target image of a ref", Options{SourceRepo: src, Ref: "test/os", TargetImage: "docker://127.0.0.1:1/os:1"}, "needs a source image"},
		{"ref and image", Options{SourceRepo: src, Ref: "test/os", SourceImage: "oci:" + layout}, "not both"},
		{"missing ref", Options{SourceRepo: src, Ref: "test/nothing"}, "test/nothing"},
		{"policy", Options{SourceImage: "oci:" + layout, Pull: container.PullOptions{Policy: pol}}, "reject"},
	} {
		tc.o.Size = 1 << 30
		_, err := ToDisk(ctx, img, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", tc.name, err, tc.want)
		}
		if _, err := os.Stat(img); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: the image was made (%v)", tc.name, err)
		}
	}

	// A corrupt layer blob: the manifest and config verify, the layer
	// does not while it is pulled onto the new disk; the install fails
	// with one line naming the layer and the new image file is gone.
	bad := filepath.Join(dir, "bad")
	must(t, exec.Command("cp", "-a", layout, bad).Run())
	layer := largestLayer(t, bad)
	blob := filepath.Join(bad, "blobs/sha256", strings.TrimPrefix(layer, "sha256:"))
	data, err := os.ReadFile(blob)
	must(t, err)
	data[len(data)/2] ^= 0xff
	must(t, os.WriteFile(blob, data, 0o644))
	_, err = ToDisk(ctx, img, Options{SourceImage: "oci:" + bad + ":v1", Size: 1 << 30})
	if err == nil || !strings.Contains(err.Error(), layer) || strings.Contains(err.Error(), "\n") {
		t.Errorf("corrupt layer: %v", err)
	}
	if _, err := os.Stat(img); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt layer: the image file is left (%v)", err)
	}
	if out, _ := exec.Command("losetup", "--associated", img).Output(); len(out) != 0 {
		t.Errorf("loop devices left: %s", out)
	}

	// The install of the commit, for comparison.
	refImg := filepath.Join(dir, "ref.img")
	refRes, err := ToDisk(ctx, refImg, Options{SourceRepo: src, Ref: "test/os", Size: 1 << 30, BootCountingTries: 3})
	must(t, err)

	target := "docker://127.0.0.1:5000/test/os:v1"
	res, err := ToDisk(ctx, img, Options{SourceImage: "oci:" + layout + ":v1", TargetImage: target, Size: 1 << 30, BootCountingTries: 3})
	must(t, err)
	if res.BaseCommit != c.String() || !strings.HasPrefix(res.ManifestDigest, "sha256:") {
		t.Errorf("result %+v, want base commit %s", res, c)
	}
	root := mountPart(t, img, 2, "ext4")
	if got, want := rootTree(t, filepath.Join(root, "ostree/repo"), res.Commit), rootTree(t, src, c.String()); got != want {
		t.Errorf("deployed tree %v, the commit's %v", got, want)
	}
	st := ostree(t, "admin", "status", "--sysroot="+root)
	if !strings.Contains(st, "default "+res.Commit+".0") {
		t.Errorf("ostree admin status:\n%s", st)
	}
	origin, _ := os.ReadFile(filepath.Join(root, "ostree/deploy/default/deploy", res.Deployment+".origin"))
	if !strings.Contains(string(origin), "container-image-reference=ostree-unverified-registry:127.0.0.1:5000/test/os:v1\n") ||
		!strings.Contains(string(origin), "container-image-digest="+res.ManifestDigest+"\n") {
		t.Errorf("origin:\n%s", origin)
	}
	// The image is recorded under the name the machine follows.
	r, err := repo.Open(filepath.Join(root, "ostree/repo"))
	must(t, err)
	images, err := container.List(r)
	must(t, err)
	if len(images) != 1 || images[0].Ref.String() != target || images[0].MergeCommit.String() != res.Commit {
		t.Errorf("images in the installed repository: %+v", images)
	}
	fstab, _ := os.ReadFile(filepath.Join(root, "ostree/deploy/default/deploy", res.Deployment, "etc/fstab"))
	if !strings.Contains(string(fstab), "UUID="+res.ESPUUID+" /boot/efi vfat") {
		t.Errorf("fstab:\n%s", fstab)
	}
	// The ESP is the ref install's.
	got, want := espFiles(t, img, res), espFiles(t, refImg, refRes)
	if len(got) < 4 {
		t.Errorf("ESP: %v", got)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("ESP %s: %q, the ref install has %q", p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("ESP %s: not in the ref install's", p)
		}
	}
}

// largestLayer returns the digest of the largest layer of the layout's
// only image.
func largestLayer(t *testing.T, layout string) string {
	t.Helper()
	var idx struct {
		Manifests []container.Descriptor `json:"manifests"`
	}
	data, err := os.ReadFile(filepath.Join(layout, "index.json"))
	must(t, err)
	must(t, json.Unmarshal(data, &idx))
	data, err = os.ReadFile(filepath.Join(layout, "blobs/sha256", strings.TrimPrefix(idx.Manifests[0].Digest, "sha256:")))
	must(t, err)
	var m container.Manifest
	must(t, json.Unmarshal(data, &m))
	var best container.Descriptor
	for _, l := range m.Layers {
		if l.Size > best.Size {
			best = l
		}
	}
	return best.Digest
}

// TestToFilesystemFromArchive installs an oci-archive into a directory
// (no loader): ostree admin status reads it, the origin is the archive's
// (ostree-unverified-image:oci-archive:...), the tree the commit's.
func TestToFilesystemFromArchive(t *testing.T) {
	ctx := context.Background()
	src := sourceRepo(t)
	r, err := repo.Open(src)
	must(t, err)
	c, err := r.ResolveRev("test/os")
	must(t, err)
	archive := "oci-archive:" + filepath.Join(t.TempDir(), "os.tar")
	_, err = container.Encapsulate(ctx, r, c, container.ImageRef{Transport: container.OCIArchive, Name: strings.TrimPrefix(archive, "oci-archive:")}, container.EncapsulateOptions{})
	must(t, err)
	root := t.TempDir()
	t.Cleanup(func() { // deployments are chattr +i
		ds, _ := filepath.Glob(filepath.Join(root, "ostree/deploy/*/deploy/*"))
		for _, d := range ds {
			exec.Command("chattr", "-i", d).Run()
		}
	})
	res, err := ToFilesystem(ctx, root, FSOptions{Options: Options{SourceImage: archive, Bootloader: None}, RootKarg: "root=LABEL=root"})
	must(t, err)
	if got, want := rootTree(t, filepath.Join(root, "ostree/repo"), res.Commit), rootTree(t, src, c.String()); got != want {
		t.Errorf("deployed tree %v, the commit's %v", got, want)
	}
	if st := ostree(t, "admin", "status", "--sysroot="+root); !strings.Contains(st, "default "+res.Commit+".0") {
		t.Errorf("ostree admin status:\n%s", st)
	}
	origin, _ := os.ReadFile(filepath.Join(root, "ostree/deploy/default/deploy", res.Deployment+".origin"))
	if !strings.Contains(string(origin), "container-image-reference=ostree-unverified-image:"+archive+"\n") {
		t.Errorf("origin:\n%s", origin)
	}
	// A second install into the same (now not empty) root is refused.
	if _, err := ToFilesystem(ctx, root, FSOptions{Options: Options{SourceImage: archive, Bootloader: None}, RootKarg: "root=LABEL=root"}); !errors.Is(err, errdefs.ErrExists) {
		t.Errorf("second install: %v", err)
	}
}

// TestToFilesystemPlainImage installs a plain (not encapsulated) image,
// one layer made by umoci: the pull imports it as a layer commit and a
// merge commit (its /etc moved to /usr/etc), the deployment has the
// image's kernel in a boot entry and its /etc, ostree admin status reads
// the sysroot, the origin names the layout.
func TestToFilesystemPlainImage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	layout := filepath.Join(dir, "umoci")
	umoci := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("umoci", args...).CombinedOutput(); err != nil {
			t.Fatalf("umoci %v: %v\n%s", args, err, out)
		}
	}
	umoci("init", "--layout", layout)
	umoci("new", "--image", layout+":v1")
	bundle := filepath.Join(dir, "bundle")
	umoci("unpack", "--rootless", "--image", layout+":v1", bundle)
	for p, c := range map[string]string{
		"usr/lib/modules/6.1.0-test/vmlinuz":       strings.Repeat("kernel", 1000),
		"usr/lib/modules/6.1.0-test/initramfs.img": strings.Repeat("initramfs", 1000),
		"usr/lib/os-release":                       "ID=plain\nPRETTY_NAME=\"Plain OS\"\n",
		"etc/hostname":                             "plain\n",
	} {
		full := filepath.Join(bundle, "rootfs", p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, []byte(c), 0o644))
	}
	umoci("repack", "--image", layout+":v1", bundle)

	root := t.TempDir()
	t.Cleanup(func() { // deployments are chattr +i
		ds, _ := filepath.Glob(filepath.Join(root, "ostree/deploy/*/deploy/*"))
		for _, d := range ds {
			exec.Command("chattr", "-i", d).Run()
		}
	})
	res, err := ToFilesystem(ctx, root, FSOptions{Options: Options{SourceImage: "oci:" + layout + ":v1", Bootloader: None}, RootKarg: "root=LABEL=root"})
	must(t, err)
	if res.BaseCommit != "" || !strings.HasPrefix(res.ManifestDigest, "sha256:") {
		t.Errorf("result %+v", res)
	}
	if st := ostree(t, "admin", "status", "--sysroot="+root); !strings.Contains(st, "default "+res.Commit+".0") {
		t.Errorf("ostree admin status:\n%s", st)
	}
	dpath := filepath.Join(root, "ostree/deploy/default/deploy", res.Deployment)
	origin, _ := os.ReadFile(dpath + ".origin")
	if !strings.Contains(string(origin), "container-image-reference=ostree-unverified-image:oci:"+layout+":v1\n") {
		t.Errorf("origin:\n%s", origin)
	}
	if data, err := os.ReadFile(filepath.Join(dpath, "etc/hostname")); err != nil || string(data) != "plain\n" {
		t.Errorf("/etc/hostname %q %v", data, err)
	}
	ents, _ := filepath.Glob(filepath.Join(root, "boot/loader/entries/*.conf"))
	if len(ents) != 1 {
		t.Fatalf("entries %v", ents)
	}
	if conf, _ := os.ReadFile(ents[0]); !strings.Contains(string(conf), "vmlinuz-6.1.0-test") || !strings.Contains(string(conf), "root=LABEL=root") {
		t.Errorf("entry:\n%s", conf)
	}
}
