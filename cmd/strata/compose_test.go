package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestComposeImageBaseOCIExport: compose build on an umoci image base
// with --oci=oci-archive:..., then the real tools read the result: ostree
// shows the base image's digest in the commit, skopeo reads the export,
// and `container image pull` of it gives back the very commit, whose tree
// ostree lists the same in both repositories. A bad --oci fails with one
// line before anything is built.
func TestComposeImageBaseOCIExport(t *testing.T) {
	f := &adminFixture{t: t, bin: buildCLI(t)}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range map[string]string{
		"usr/bin/busybox":    string(bb),
		"usr/lib/os-release": "ID=clitest\n",
		"etc/passwd":         "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":          "root:x:0:\n",
		"etc/shadow":         "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":        "root:*::\n",
	} {
		full := filepath.Join(rootfs, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	layout := filepath.Join(dir, "layout")
	bundle := filepath.Join(dir, "bundle")
	for _, args := range [][]string{
		{"umoci", "init", "--layout", layout},
		{"umoci", "new", "--image", layout + ":v1"},
		{"umoci", "unpack", "--rootless", "--image", layout + ":v1", bundle},
		{"cp", "-a", rootfs + "/.", filepath.Join(bundle, "rootfs")},
		{"umoci", "repack", "--image", layout + ":v1", bundle},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	baseDigest := strings.TrimSpace(mustOut(t, "skopeo", "inspect", "--format", "{{.Digest}}", "oci:"+layout+":v1"))
	spec := filepath.Join(dir, "cli.toml")
	if err := os.WriteFile(spec, []byte("[os]\nname = \"cli\"\nversion = \"3\"\n\n[base]\nimage = \"oci:layout:v1\"\n\n[[files]]\npath = \"/etc/motd\"\ncontent = \"cli\\n\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	mustOut(t, "ostree", "--repo="+src, "init", "--mode=bare")
	mustOut(t, "ostree", "--repo="+dst, "init", "--mode=bare-user")
	archive := "oci-archive:" + filepath.Join(dir, "out.tar") + ":v3"

	f.fail("--oci: ", "compose", "build", spec, "--repo="+src, "--cache="+filepath.Join(dir, "cache"), "--strata-binary=/bin/busybox", "--oci=docker-archive:x.tar")
	if refs := mustOut(t, "ostree", "--repo="+src, "refs"); refs != "" {
		t.Fatalf("a refused --oci left refs: %s", refs)
	}

	out := mustOut(t, f.bin, "compose", "build", spec, "--repo="+src, "--cache="+filepath.Join(dir, "cache"), "--strata-binary=/bin/busybox", "--oci="+archive, "--oci-max-layers=4")
	m := regexp.MustCompile(`(?m)^cli: 0 packages, \d+ files, [0-9.]+ MiB, commit ([0-9a-f]{64}), .*\n` + regexp.QuoteMeta(archive) + `: (sha256:[0-9a-f]{64})\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("compose build printed:\n%s", out)
	}
	commit, imgDigest := m[1], m[2]
	if got := mustOut(t, "ostree", "--repo="+src, "show", "--print-metadata-key=org.opencontainers.image.base.digest", commit); strings.TrimSpace(got) != "'"+baseDigest+"'" {
		t.Errorf("base digest in the commit: %s, want %s", got, baseDigest)
	}
	if got := strings.TrimSpace(mustOut(t, "skopeo", "inspect", "--format", "{{.Digest}} {{index .Labels \"ostree.commit\"}}", archive)); got != imgDigest+" "+commit {
		t.Errorf("skopeo inspect: %s, want %s %s", got, imgDigest, commit)
	}
	pull := exec.Command(f.bin, "--repo="+dst, "container", "image", "pull", archive)
	var stderr bytes.Buffer
	pull.Stderr = &stderr
	merge, err := pull.Output()
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Encapsulated commit: "+commit) {
		t.Errorf("pull of the export:\n%s", stderr.String())
	}
	a := mustOut(t, "ostree", "--repo="+src, "ls", "-R", "-C", commit)
	b := mustOut(t, "ostree", "--repo="+dst, "ls", "-R", "-C", strings.TrimSpace(string(merge)))
	if a != b || !strings.Contains(a, "/usr/etc/motd") {
		t.Errorf("the pulled image's tree differs from the composed commit's:\n%s\n---\n%s", a, b)
	}
	mustOut(t, "ostree", "--repo="+dst, "fsck")
	mustOut(t, "ostree", "--repo="+src, "fsck")

	// --oci-previous: the same build exported again keeping the first
	// export's layout is the very image (the layout is the rule's).
	f.fail("--oci-previous needs --oci", "compose", "build", spec, "--repo="+src, "--oci-previous="+archive)
	again := "oci:" + filepath.Join(dir, "again") + ":v3"
	out = mustOut(t, f.bin, "compose", "build", spec, "--repo="+src, "--cache="+filepath.Join(dir, "cache"), "--strata-binary=/bin/busybox", "--oci="+again, "--oci-max-layers=4", "--oci-previous="+archive)
	if !strings.Contains(out, again+": "+imgDigest+"\n") {
		t.Fatalf("the export with --oci-previous of itself is not the same image (%s):\n%s", imgDigest, out)
	}
}

func mustOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}
