package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSwitchUpgradeStatus: switch to an oci: image, see it in status (and
// ostree admin status reads the sysroot), upgrade when the tag moves,
// fetching only the changed layers, and no update the second time.
func TestSwitchUpgradeStatus(t *testing.T) {
	f := newAdminFixture(t)
	s := "--sysroot=" + f.sysroot
	repoFlag := "--repo=" + filepath.Join(f.sysroot, "ostree/repo")
	layout := filepath.Join(t.TempDir(), "layout")
	f.ok(repoFlag, "container", "encapsulate", "--max-layers=16", "testos/stable", "oci:"+layout+":os")

	out := f.ok("switch", s, "--os=testos", "--transport=oci", layout+":os")
	if !strings.Contains(out, "Image: ostree-unverified-image:oci:"+layout+":os") || !strings.Contains(out, "Version: 1.0") {
		t.Fatalf("switch:\n%s", out)
	}
	st := f.ok("status", s)
	if !strings.Contains(st, "Image:     ostree-unverified-image:oci:"+layout+":os") || !regexp.MustCompile(`Digest:    sha256:[0-9a-f]{64}`).MatchString(st) {
		t.Fatalf("status:\n%s", st)
	}
	if out, err := exec.Command("ostree", "admin", "status", s).CombinedOutput(); err != nil || !strings.Contains(string(out), "testos") {
		t.Fatalf("ostree admin status: %v\n%s", err, out)
	}
	origin, _ := filepath.Glob(filepath.Join(f.sysroot, "ostree/deploy/testos/deploy/*.origin"))
	if len(origin) != 1 {
		t.Fatalf("origins: %v", origin)
	}
	if out := f.ok("upgrade", s, "--os=testos"); !strings.Contains(out, "No update available.") {
		t.Fatalf("upgrade without a new image:\n%s", out)
	}

	f.commit("2.0", "2024-02-01 00:00:00")
	f.ok(repoFlag, "container", "encapsulate", "--max-layers=16", "testos/stable", "oci:"+layout+":os")
	if out := f.ok("upgrade", s, "--os=testos", "--check"); !strings.Contains(out, "Update available.") || !strings.Contains(out, "Version: 2.0") {
		t.Fatalf("upgrade --check:\n%s", out)
	}
	// A policy that rejects the image: no deployment, no ref, no object of
	// the new image, and the sentinel outside the sysroot untouched.
	sentinel := filepath.Join(filepath.Dir(f.sysroot), "sentinel")
	os.WriteFile(sentinel, []byte("untouched"), 0o644)
	reject := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(reject, []byte(`{"default":[{"type":"reject"}]}`), 0o644)
	deploysBefore, _ := filepath.Glob(filepath.Join(f.sysroot, "ostree/deploy/testos/deploy/*"))
	refsBefore := f.ok(repoFlag, "refs")
	f.fail("rejected by the signature policy", "upgrade", s, "--os=testos", "--policy="+reject)
	f.fail("rejected by the signature policy", "switch", s, "--os=testos", "--transport=oci", "--policy="+reject, layout+":os")
	if deploys, _ := filepath.Glob(filepath.Join(f.sysroot, "ostree/deploy/testos/deploy/*")); strings.Join(deploys, " ") != strings.Join(deploysBefore, " ") {
		t.Fatalf("a rejected image changed the deployments: %v, was %v", deploys, deploysBefore)
	}
	if refs := f.ok(repoFlag, "refs"); refs != refsBefore {
		t.Fatalf("a rejected image changed the refs:\n%s\nwas:\n%s", refs, refsBefore)
	}
	if b, _ := os.ReadFile(sentinel); string(b) != "untouched" {
		t.Fatal("the sentinel outside the sysroot changed")
	}
	out = f.ok("upgrade", s, "--os=testos")
	m := regexp.MustCompile(`Layers: (\d+) fetched \((\d+) of them in part; \d+ bytes\), (\d+) already present`).FindStringSubmatch(out)
	if m == nil || m[1] != "2" || m[2] != "1" {
		// The commit layer, and of the chunk holding usr/bin/true only
		// its head and that file.
		t.Fatalf("upgrade fetched other than 2 layers, one of them in part:\n%s", out)
	}
	if st := f.ok("status", s); !strings.Contains(st, "testos 2.0") {
		t.Fatalf("status after upgrade:\n%s", st)
	}
	if out := f.ok("upgrade", s, "--os=testos"); !strings.Contains(out, "No update available.") {
		t.Fatalf("second upgrade:\n%s", out)
	}
	f.fail("--check cannot be combined", "upgrade", s, "--os=testos", "--check", "--apply")
	f.fail("image oci:/nonexistent:os", "switch", s, "--os=testos", "--transport=oci", "/nonexistent:os")
	// --json: progress and the result as JSON lines.
	fresh := filepath.Join(t.TempDir(), "repo")
	f.ok("init", "--repo="+fresh, "--mode=bare-user")
	lines := strings.Split(strings.TrimSpace(f.ok("--repo="+fresh, "container", "image", "pull", "--json", "oci:"+layout+":os")), "\n")
	var last struct {
		Event         string `json:"event"`
		LayersFetched int    `json:"layers-fetched"`
		Digest        string `json:"manifest-digest"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Event != "pulled" || last.LayersFetched < 2 || !strings.HasPrefix(last.Digest, "sha256:") {
		t.Fatalf("pull --json: %v\n%s", err, strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[0], `"event":"phase"`) {
		t.Fatalf("pull --json has no progress lines:\n%s", strings.Join(lines, "\n"))
	}
	// unencapsulate prints the commit the image carries: the one exported.
	want := strings.TrimSpace(f.ok(repoFlag, "rev-parse", "testos/stable"))
	again := filepath.Join(t.TempDir(), "repo2")
	f.ok("init", "--repo="+again, "--mode=archive")
	if got := strings.TrimSpace(f.ok("--repo="+again, "container", "unencapsulate", "oci:"+layout+":os")); got != want {
		t.Fatalf("unencapsulate printed %q, want %s", got, want)
	}
	list := f.ok(repoFlag, "container", "image", "list")
	if !strings.Contains(list, "oci:"+layout+":os ") {
		t.Fatalf("image list:\n%s", list)
	}
}
