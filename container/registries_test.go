package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/strata-os/strata/internal/registrytest"
	"github.com/strata-os/strata/repo"
)

func TestLoadRegistries(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	os.WriteFile(conf, []byte(`
unqualified-search-registries = ["one.test"]

[[registry]]
location = "reg.test:5000"
insecure = true

[[registry]]
prefix = "reg.test:5000/blocked"
blocked = true

[[registry]]
prefix = "*.wild.test"
blocked = true

[[registry]]
prefix = "remap.test/os"
location = "elsewhere.test/os"

[[registry]]
location = "dropin.test"
insecure = true

[[registry.mirror]]
location = "mirror.test"
`), 0o644)
	os.Mkdir(conf+".d", 0o755)
	// The drop-in replaces dropin.test's entry and the search list.
	os.WriteFile(filepath.Join(conf+".d", "50-a.conf"), []byte(`
unqualified-search-registries = ["two.test"]
[[registry]]
location = "dropin.test"
blocked = true
`), 0o644)
	os.WriteFile(filepath.Join(conf+".d", "ignored.txt"), []byte(`not toml [[`), 0o644)
	rs, err := LoadRegistries(conf, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.UnqualifiedSearch) != 1 || rs.UnqualifiedSearch[0] != "two.test" {
		t.Errorf("unqualified-search-registries: %v", rs.UnqualifiedSearch)
	}
	for _, tc := range []struct {
		ref      string
		insecure bool
		err      error
	}{
		{"reg.test:5000/os:v1", true, nil},
		{"reg.test:5000/blockedness/os", true, nil}, // a path component, not a string prefix
		{"reg.test:5000/blocked/os:v1", false, ErrBlocked},
		{"reg.test:5000/blocked", false, ErrBlocked},
		{"a.wild.test/os", false, ErrBlocked},
		{"a.b.wild.test:443/os", false, ErrBlocked},
		{"wild.test/os", false, nil},
		{"dropin.test/os", false, ErrBlocked},
		{"remap.test/os:v1", false, nil}, // a push goes to the name as written
		{"remap.test/other", false, nil},
		{"other.test/os", false, nil},
	} {
		r, insecure, err := rs.reference(ImageRef{Registry, tc.ref})
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("%s: error %v, want %v", tc.ref, err, tc.err)
			continue
		}
		if err != nil {
			oneLine(t, tc.ref, err, tc.ref)
			continue
		}
		if insecure != tc.insecure || (r.Context().Scheme() == "http") != tc.insecure {
			t.Errorf("%s: insecure %v (scheme %s), want %v", tc.ref, insecure, r.Context().Scheme(), tc.insecure)
		}
	}
	// No file: nothing configured, unless the file was named.
	if rs, err := LoadRegistries(filepath.Join(dir, "none.conf"), false); err != nil || len(rs.Entries) != 0 {
		t.Fatalf("missing default file: %v %v", rs, err)
	}
	_, err = LoadRegistries(filepath.Join(dir, "none.conf"), true)
	oneLine(t, "missing named file", err, filepath.Join(dir, "none.conf"))
	// A malformed drop-in fails the whole, naming the file.
	bad := filepath.Join(conf+".d", "90-bad.conf")
	os.WriteFile(bad, []byte("[[registry]]\nlocation = \n"), 0o644)
	_, err = LoadRegistries(conf, true)
	oneLine(t, "malformed drop-in", err, bad)
	os.WriteFile(bad, []byte("[[registry]]\nlocation = \"http://x.test\"\n"), 0o644)
	_, err = LoadRegistries(conf, true)
	oneLine(t, "scheme", err, bad, "no scheme")
	os.WriteFile(bad, []byte("[registries.insecure]\nregistries = [\"v1.test\"]\n[registries.block]\nregistries = [\"v1b.test\"]\n"), 0o644)
	rs, err = LoadRegistries(conf, true)
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{"v1.test/os": "insecure", "v1b.test/os": "blocked"} {
		r, _ := name.ParseReference(ref)
		e := rs.Find(r)
		if e == nil || (want == "insecure") != e.Insecure || (want == "blocked") != e.Blocked {
			t.Errorf("version 1 %s: %+v, want %s", ref, e, want)
		}
	}
}

// TestInsecureRegistry: a registry serving HTTPS with a certificate no one
// trusts on 127.0.0.1 is refused until registries.conf lists it insecure;
// then strata pushes and pulls (HTTPS without verification, as podman).
// A blocked registry is refused before any connection, naming the file.
func TestInsecureRegistry(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	src, c := smallCommit(t)
	img := ImageRef{Registry, reg.Addr + "/os:v1"}
	if _, err := Encapsulate(ctx, src, c, img, EncapsulateOptions{MaxLayers: 4}); err == nil {
		t.Fatal("a push to an untrusted certificate succeeded")
	}
	conf := filepath.Join(t.TempDir(), "registries.conf")
	os.WriteFile(conf, []byte("[[registry]]\nlocation = \""+reg.Addr+"\"\ninsecure = true\n"), 0o644)
	rs, err := LoadRegistries(conf, true)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Encapsulate(ctx, src, c, img, EncapsulateOptions{MaxLayers: 4, Access: Access{Registries: rs}})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(ctx, dst, img, PullOptions{}); err == nil {
		t.Fatal("a pull from an untrusted certificate succeeded")
	}
	pr, err := Pull(ctx, dst, img, PullOptions{Access: Access{Registries: rs}})
	if err != nil {
		t.Fatal(err)
	}
	if pr.BaseCommit != c || pr.ManifestDigest != res.ManifestDigest {
		t.Fatalf("pulled %s %s", pr.BaseCommit, pr.ManifestDigest)
	}
	run(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+img.Name)

	os.WriteFile(conf, []byte("[[registry]]\nlocation = \""+reg.Addr+"\"\nblocked = true\n"), 0o644)
	if rs, err = LoadRegistries(conf, true); err != nil {
		t.Fatal(err)
	}
	fresh, _ := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
	_, err = Pull(ctx, fresh, img, PullOptions{Access: Access{Registries: rs}})
	oneLine(t, "blocked", err, "registry "+reg.Addr, "blocked by registries.conf", conf)
	if !errors.Is(err, ErrBlocked) {
		t.Fatalf("blocked: %v", err)
	}
	if refs, _ := fresh.ListRefs(); len(refs) != 0 {
		t.Fatalf("a blocked pull wrote refs: %v", refs)
	}
	_, err = Encapsulate(ctx, src, c, img, EncapsulateOptions{MaxLayers: 4, Access: Access{Registries: rs}})
	oneLine(t, "blocked push", err, "blocked by registries.conf")
}
