package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/registrytest"
)

// mountRoot mounts partition 2 of img read-write until the test ends.
func mountRoot(t *testing.T, img string) string {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		PartitionTable struct {
			Partitions []struct{ Start, Size int64 } `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &j); err != nil || len(j.PartitionTable.Partitions) != 2 {
		t.Fatalf("partition table of %s: %v %s", img, err, out)
	}
	p := j.PartitionTable.Partitions[1]
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ext4", "-o", fmt.Sprintf("loop,offset=%d,sizelimit=%d", p.Start*512, p.Size*512), img, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// TestInstallFromImage: "install to-disk --source=oci:LAYOUT
// --target-imgref=docker://REGISTRY/os:v1" (GRUB) installs the
// encapsulated commit with the registry image as its origin: ostree reads
// the sysroot, "upgrade" on the installed system finds no update (the
// same manifest digest), then follows v2 pushed to the registry (Debian's
// docker-registry on 127.0.0.1). "install to-filesystem
// --source=registry:..." pulls from the registry. Bad references and
// conflicting targets are one line each and create no image file.
func TestInstallFromImage(t *testing.T) {
	f := newAdminFixture(t)
	reg := registrytest.Start(t, registrytest.Options{})
	repoFlag := "--repo=" + filepath.Join(f.sysroot, "ostree/repo")
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	regImg := reg.Addr + "/os:v1"
	f.ok(repoFlag, "container", "encapsulate", "testos/stable", "oci:"+layout+":v1")
	f.ok(repoFlag, "container", "encapsulate", "testos/stable", "registry:"+regImg)
	commit := strings.TrimSpace(f.ok(repoFlag, "rev-parse", "testos/stable"))

	img := filepath.Join(dir, "disk.img")
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"names no image", []string{"--source=oci:"}},
		{"missing", []string{"--source=oci:" + filepath.Join(dir, "missing")}},
		{"mutually exclusive", []string{"--source=oci:" + layout, "--target-ref=e2e:os", "--target-imgref=docker://" + regImg}},
		{"target image", []string{"--source=oci:" + layout, "--target-imgref=" + regImg}},
		{"without the ostree- verification prefix", []string{"--source=ostree-unverified-registry:" + regImg}},
		{"needs a source image", []string{"--source=testos/stable", "--target-imgref=docker://" + regImg}},
	} {
		f.fail(tc.want, append([]string{repoFlag, "install", "to-disk", img, "--size=1073741824"}, tc.args...)...)
		if _, err := os.Stat(img); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%v: the image file was made", tc.args)
		}
	}

	out := f.ok("install", "to-disk", img, "--size=1073741824", "--bootloader=grub", "--source=oci:"+layout+":v1", "--target-imgref=docker://"+regImg)
	if !strings.Contains(out, "Installed oci:"+layout+":v1 (sha256:") || !strings.Contains(out, "with grub") {
		t.Errorf("install:\n%s", out)
	}
	root := mountRoot(t, img)
	st, err := exec.Command("ostree", "admin", "status", "--sysroot="+root).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "default ") {
		t.Fatalf("ostree admin status: %v\n%s", err, st)
	}
	origins, _ := filepath.Glob(filepath.Join(root, "ostree/deploy/default/deploy/*.origin"))
	if len(origins) != 1 {
		t.Fatalf("origins %v", origins)
	}
	origin, _ := os.ReadFile(origins[0])
	if !strings.Contains(string(origin), "container-image-reference=ostree-unverified-registry:"+regImg+"\n") {
		t.Errorf("origin:\n%s", origin)
	}
	if _, err := os.Stat(filepath.Join(root, "boot/loader/grub.cfg")); err != nil {
		t.Errorf("grub.cfg: %v", err)
	}
	// The deployment's tree is the encapsulated commit's: ostree diffs
	// nothing between them (the commit's objects are in the new repository).
	deployed := strings.TrimSuffix(filepath.Base(origins[0]), ".0.origin")
	if d, err := exec.Command("ostree", "diff", "--repo="+filepath.Join(root, "ostree/repo"), commit, deployed).CombinedOutput(); err != nil || len(d) != 0 {
		t.Errorf("ostree diff %s %s: %v\n%s", commit, deployed, err, d)
	}

	// upgrade on the installed system follows the registry image.
	s := "--sysroot=" + root
	if out := f.ok("upgrade", s, "--os=default"); !strings.Contains(out, "No update available.") {
		t.Errorf("upgrade before v2:\n%s", out)
	}
	f.commit("2.0", "2024-02-01 00:00:00")
	f.ok(repoFlag, "container", "encapsulate", "testos/stable", "registry:"+regImg)
	f.ok("upgrade", s, "--os=default")
	if st := f.ok("status", s, "--json"); !strings.Contains(st, `"2.0"`) {
		t.Errorf("status after the upgrade:\n%s", st)
	}

	// to-filesystem straight from the registry (no loader).
	fsroot := t.TempDir()
	t.Cleanup(func() {
		ds, _ := filepath.Glob(filepath.Join(fsroot, "ostree/deploy/*/deploy/*"))
		for _, d := range ds {
			clearImmutable(d)
		}
	})
	f.ok("install", "to-filesystem", fsroot, "--bootloader=none", "--root-karg=root=LABEL=root", "--source=registry:"+regImg)
	origins, _ = filepath.Glob(filepath.Join(fsroot, "ostree/deploy/default/deploy/*.origin"))
	if len(origins) != 1 {
		t.Fatalf("origins %v", origins)
	}
	if origin, _ := os.ReadFile(origins[0]); !strings.Contains(string(origin), "container-image-reference=ostree-unverified-registry:"+regImg+"\n") {
		t.Errorf("origin:\n%s", origin)
	}
}
