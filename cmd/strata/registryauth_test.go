package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/registrytest"
)

// TestRegistryCredentials: against Debian's registry with htpasswd
// authentication, pushes and pulls without credentials fail with one line
// naming the registry; --authfile and $REGISTRY_AUTH_FILE give them to
// pull and encapsulate; switch and upgrade (the system's pulls) take
// --authfile but not the user's $REGISTRY_AUTH_FILE, as bootc; a malformed
// file and a blocked registry are one clear line each.
func TestRegistryCredentials(t *testing.T) {
	f := newAdminFixture(t)
	reg := registrytest.Start(t, registrytest.Options{Users: map[string]string{"alice": "s3cret"}})
	good := reg.AuthFile(t, "alice", "s3cret")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.json")
	os.WriteFile(empty, []byte(`{}`), 0o600)
	noCreds := []string{"REGISTRY_AUTH_FILE=" + empty}
	userCreds := []string{"REGISTRY_AUTH_FILE=" + good}
	s := "--sysroot=" + f.sysroot
	repoFlag := "--repo=" + filepath.Join(f.sysroot, "ostree/repo")
	img := "registry:" + reg.Addr + "/os:v1"

	fail := func(env []string, want []string, args ...string) {
		t.Helper()
		out, err := f.run(env, args...)
		if err == nil {
			t.Fatalf("strata %s succeeded:\n%s", strings.Join(args, " "), out)
		}
		if !strings.HasPrefix(out, "error: ") || strings.Count(out, "\n") != 1 {
			t.Fatalf("strata %s: not one error line:\n%s", strings.Join(args, " "), out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("strata %s: %q does not say %q", strings.Join(args, " "), out, w)
			}
		}
	}
	okEnv := func(env []string, args ...string) string {
		t.Helper()
		out, err := f.run(env, args...)
		if err != nil {
			t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	authRequired := []string{"registry " + reg.Addr, "authentication required"}

	fail(noCreds, authRequired, repoFlag, "container", "encapsulate", "--max-layers=8", "testos/stable", img)
	okEnv(noCreds, repoFlag, "container", "encapsulate", "--max-layers=8", "--authfile="+good, "testos/stable", img)

	fresh := func() string {
		r := filepath.Join(t.TempDir(), "repo")
		f.ok("init", "--repo="+r, "--mode=bare-user")
		return "--repo=" + r
	}
	r1 := fresh()
	fail(noCreds, authRequired, r1, "container", "image", "pull", img)
	if refs := f.ok(r1, "refs"); refs != "" {
		t.Fatalf("a refused pull wrote refs:\n%s", refs)
	}
	okEnv(userCreds, r1, "container", "image", "pull", img)
	okEnv(noCreds, fresh(), "container", "image", "pull", "--authfile="+good, img)

	// The system's pulls read bootc's files, not the user's.
	fail(userCreds, authRequired, "switch", s, "--os=testos", reg.Addr+"/os:v1")
	out := okEnv(noCreds, "switch", s, "--os=testos", "--authfile="+good, reg.Addr+"/os:v1")
	if !strings.Contains(out, "Image: ostree-unverified-registry:"+reg.Addr+"/os:v1") {
		t.Fatalf("switch:\n%s", out)
	}
	fail(noCreds, authRequired, "upgrade", s, "--os=testos")
	if out := okEnv(noCreds, "upgrade", s, "--os=testos", "--authfile="+good); !strings.Contains(out, "No update available.") {
		t.Fatalf("upgrade:\n%s", out)
	}

	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"auths":`), 0o600)
	fail(nil, []string{bad, "not a containers-auth.json file"}, fresh(), "container", "image", "pull", "--authfile="+bad, img)
	fail(nil, []string{filepath.Join(dir, "missing.json")}, fresh(), "container", "image", "pull", "--authfile="+filepath.Join(dir, "missing.json"), img)

	conf := filepath.Join(dir, "registries.conf")
	os.WriteFile(conf, []byte("[[registry]]\nlocation = \""+reg.Addr+"\"\nblocked = true\n"), 0o644)
	blocked := []string{"registry " + reg.Addr + " is blocked by registries.conf", conf}
	fail(userCreds, blocked, fresh(), "container", "image", "pull", "--registries-conf="+conf, img)
	fail(append([]string{"CONTAINERS_REGISTRIES_CONF=" + conf}, userCreds...), blocked, fresh(), "container", "image", "pull", img)
	fail(nil, blocked, "upgrade", s, "--os=testos", "--authfile="+good, "--registries-conf="+conf)
	fail(nil, []string{filepath.Join(dir, "none.conf")}, fresh(), "container", "image", "pull", "--registries-conf="+filepath.Join(dir, "none.conf"), img)
}

// TestSwitchThroughMirror: switch and upgrade with a registries.conf whose
// registry is a port nothing listens on and whose mirror is Debian's
// registry holding the image: the deployment's origin and status name the
// image as written, never the mirror; without the mirror the same
// upgrade fails with one line naming the image.
func TestSwitchThroughMirror(t *testing.T) {
	f := newAdminFixture(t)
	mirror := registrytest.Start(t, registrytest.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	primary := l.Addr().String()
	l.Close()
	s := "--sysroot=" + f.sysroot
	f.ok("--repo="+filepath.Join(f.sysroot, "ostree/repo"), "container", "encapsulate", "--max-layers=8", "testos/stable", "registry:"+mirror.Addr+"/os:v1")
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	os.WriteFile(conf, []byte("[[registry]]\nlocation = \""+primary+"\"\n[[registry.mirror]]\nlocation = \""+mirror.Addr+"\"\n"), 0o644)
	out := f.ok("switch", s, "--os=testos", "--registries-conf="+conf, primary+"/os:v1")
	if !strings.Contains(out, "Image: ostree-unverified-registry:"+primary+"/os:v1") {
		t.Fatalf("switch:\n%s", out)
	}
	origins, _ := filepath.Glob(filepath.Join(f.sysroot, "ostree/deploy/testos/deploy/*.origin"))
	if len(origins) != 1 {
		t.Fatalf("origins: %v", origins)
	}
	origin, _ := os.ReadFile(origins[0])
	if !strings.Contains(string(origin), "container-image-reference=ostree-unverified-registry:"+primary+"/os:v1\n") || strings.Contains(string(origin), mirror.Addr) {
		t.Fatalf("origin:\n%s", origin)
	}
	if out := f.ok("upgrade", s, "--os=testos", "--registries-conf="+conf); !strings.Contains(out, "No update available.") {
		t.Fatalf("upgrade through the mirror:\n%s", out)
	}
	none := filepath.Join(dir, "none.conf")
	os.WriteFile(none, nil, 0o644)
	f.fail(primary+"/os:v1", "upgrade", s, "--os=testos", "--registries-conf="+none)
}
