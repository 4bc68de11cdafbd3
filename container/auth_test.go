package container

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/internal/registrytest"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// smallCommit commits makeTree's tree with the real ostree.
func smallCommit(t *testing.T) (*repo.Repo, objects.Checksum) {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	makeTree(t, tree)
	os.Rename(filepath.Join(tree, "etc"), filepath.Join(tree, "usr/etc"))
	src := filepath.Join(dir, "src")
	run(t, "ostree", "--repo="+src, "init", "--mode=archive")
	run(t, "ostree", "--repo="+src, "commit", "-b", "os", "--tree=dir="+tree, "--timestamp=2026-01-01T00:00:00Z", "-s", "v1")
	r, err := repo.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.ResolveRev("os")
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

func oneLine(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	msg := err.Error()
	t.Logf("%s: %s", what, msg)
	if strings.Contains(msg, "\n") {
		t.Fatalf("%s: the error is not one line: %q", what, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("%s: %q does not say %q", what, msg, w)
		}
	}
}

// TestRegistryAuth: Debian's registry with htpasswd authentication
// refuses anonymous pulls and pushes with one clear line naming it; the
// credentials of an auth.json (alone, or found in a list of files with a
// missing one first) push, pull and sign; wrong ones are refused naming
// the file; skopeo with the same file agrees.
func TestRegistryAuth(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{Users: map[string]string{"alice": "s3cret"}})
	good := reg.AuthFile(t, "alice", "s3cret")
	bad := reg.AuthFile(t, "alice", "wrong")
	src, c := smallCommit(t)
	img := ImageRef{Registry, reg.Addr + "/os:v1"}

	_, err := Encapsulate(ctx, src, c, img, EncapsulateOptions{MaxLayers: 4})
	oneLine(t, "anonymous push", err, "registry "+reg.Addr, "authentication required")
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("anonymous push: %v is not ErrUnauthorized", err)
	}
	res, err := Encapsulate(ctx, src, c, img, EncapsulateOptions{MaxLayers: 4, Access: Access{Keychain: AuthFileKeychain(good)}})
	if err != nil {
		t.Fatal(err)
	}

	dst, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Pull(ctx, dst, img, PullOptions{})
	oneLine(t, "anonymous pull", err, "image docker://"+reg.Addr+"/os:v1", "registry "+reg.Addr, "authentication required")
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("anonymous pull: %v is not ErrUnauthorized", err)
	}
	_, err = Pull(ctx, dst, img, PullOptions{Access: Access{Keychain: AuthFileKeychain(bad)}})
	oneLine(t, "wrong password", err, "registry "+reg.Addr, "refused the credentials from "+bad)
	if refs, _ := dst.ListRefs(); len(refs) != 0 {
		t.Fatalf("a refused pull wrote refs: %v", refs)
	}
	kc := NewKeychain(filepath.Join(t.TempDir(), "missing.json"), good)
	pr, err := Pull(ctx, dst, img, PullOptions{Access: Access{Keychain: kc}})
	if err != nil {
		t.Fatal(err)
	}
	if pr.BaseCommit != c || pr.ManifestDigest != res.ManifestDigest {
		t.Fatalf("pulled %s (%s), want %s (%s)", pr.BaseCommit, pr.ManifestDigest, c, res.ManifestDigest)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := Sign(ctx, img, key, Access{}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("anonymous sign: %v", err)
	}
	if _, err := Sign(ctx, img, key, Access{Keychain: kc}); err != nil {
		t.Fatal(err)
	}

	// skopeo agrees: refused without credentials, the same digest with them.
	if out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "--no-creds", "docker://"+img.Name).CombinedOutput(); err == nil {
		t.Fatalf("skopeo inspect without credentials succeeded:\n%s", out)
	}
	var insp struct{ Digest string }
	if err := json.Unmarshal([]byte(run(t, "skopeo", "inspect", "--tls-verify=false", "--authfile", good, "docker://"+img.Name)), &insp); err != nil {
		t.Fatal(err)
	}
	if insp.Digest != res.ManifestDigest {
		t.Fatalf("skopeo sees %s, strata pushed %s", insp.Digest, res.ManifestDigest)
	}
}

func TestKeychainFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// "dXNlcjpwYXNz" is user:pass, "bnM6cHc=" ns:pw, "ZDpodWI=" d:hub.
	a := write("a.json", `{"auths":{"reg.test:5000/team":{"auth":"bnM6cHc="},"reg.test:5000":{"auth":"dXNlcjpwYXNz"}}}`)
	b := write("b.json", `{"auths":{"https://index.docker.io/v1/":{"auth":"ZDpodWI="},"reg.test:5000":{"auth":"aWdub3JlZDp4"}}}`)
	kc := NewKeychain(a, b)
	for _, tc := range []struct{ ref, user, pass string }{
		{"reg.test:5000/team/os:v1", "ns", "pw"},
		{"reg.test:5000/team/sub/os", "ns", "pw"},
		{"reg.test:5000/teams/os", "user", "pass"}, // path components, not string prefixes
		{"reg.test:5000/os", "user", "pass"},       // a.json first
		{"library/debian", "d", "hub"},             // Docker's legacy key
		{"other.test/os", "", ""},
	} {
		r, err := name.ParseReference(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		au, err := kc.Resolve(r.Context())
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := authn.Authorization(context.Background(), au)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != tc.user || cfg.Password != tc.pass {
			t.Errorf("%s: %q:%q, want %q:%q", tc.ref, cfg.Username, cfg.Password, tc.user, tc.pass)
		}
	}
	repoOf := func(s string) name.Repository { r, _ := name.NewRepository(s); return r }

	malformed := write("bad.json", `{"auths":{"reg.test:5000":`)
	_, err := NewKeychain(a, malformed).Resolve(repoOf("other.test/os"))
	oneLine(t, "malformed", err, malformed, "not a containers-auth.json file")
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("malformed: %v", err)
	}
	notB64 := write("notb64.json", `{"auths":{"reg.test:5000":{"auth":"%%%"}}}`)
	_, err = NewKeychain(notB64).Resolve(repoOf("reg.test:5000/os"))
	oneLine(t, "bad auth", err, notB64, "USER:PASSWORD")
	_, err = AuthFileKeychain(filepath.Join(dir, "missing.json")).Resolve(repoOf("reg.test:5000/os"))
	oneLine(t, "missing --authfile", err, filepath.Join(dir, "missing.json"))
	big := write("big.json", `{"auths":{}}`+strings.Repeat(" ", MaxAuthFileSize))
	_, err = NewKeychain(big).Resolve(repoOf("reg.test:5000/os"))
	oneLine(t, "oversized", err, big)
	os.Mkdir(filepath.Join(dir, "fifo-dir"), 0o755)
	_, err = NewKeychain(filepath.Join(dir, "fifo-dir")).Resolve(repoOf("reg.test:5000/os"))
	oneLine(t, "a directory", err, filepath.Join(dir, "fifo-dir"))
}

// TestSystemAuthFiles follows ostree-ext's globals.rs: for root the first
// of /run/ostree, /etc/ostree and /usr/lib/ostree auth.json that exists;
// none gives anonymous access (the user's files are not read).
func TestSystemAuthFiles(t *testing.T) {
	root := t.TempDir()
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(root, "user.json"))
	want := []string{"/run/ostree/auth.json", "/etc/ostree/auth.json", "/usr/lib/ostree/auth.json"}
	if os.Getuid() != 0 {
		t.Setenv("XDG_RUNTIME_DIR", "/xdg-run")
		t.Setenv("XDG_CONFIG_HOME", "/xdg-config")
		want = []string{"/xdg-run/ostree/auth.json", "/xdg-config/ostree/auth.json"}
	}
	got := SystemAuthFiles(root)
	for i := range want {
		want[i] = filepath.Join(root, want[i])
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("SystemAuthFiles = %v, want %v", got, want)
	}
	if kc := SystemKeychain(root); len(kc.Files()) != 0 {
		t.Fatalf("no file: keychain reads %v", kc.Files())
	}
	for i := len(want) - 1; i >= 0; i-- {
		os.MkdirAll(filepath.Dir(want[i]), 0o755)
		os.WriteFile(want[i], []byte(`{"auths":{}}`), 0o600)
		if kc := SystemKeychain(root); strings.Join(kc.Files(), " ") != want[i] {
			t.Fatalf("with %s: keychain reads %v", want[i], kc.Files())
		}
	}
}

// TestUserAuthFiles follows containers-auth.json(5): $REGISTRY_AUTH_FILE
// alone, else the runtime file, the config file, Docker's.
func TestUserAuthFiles(t *testing.T) {
	t.Setenv("REGISTRY_AUTH_FILE", "/explicit.json")
	if got := UserAuthFiles(); len(got) != 1 || got[0] != "/explicit.json" {
		t.Fatalf("with REGISTRY_AUTH_FILE: %v", got)
	}
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", "/xdg-run")
	t.Setenv("XDG_CONFIG_HOME", "/xdg-config")
	t.Setenv("DOCKER_CONFIG", "/docker")
	want := "/xdg-run/containers/auth.json /xdg-config/containers/auth.json /docker/config.json"
	if got := strings.Join(UserAuthFiles(), " "); got != want {
		t.Fatalf("UserAuthFiles = %s, want %s", got, want)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("HOME", "/home/u")
	want = fmt.Sprintf("/run/containers/%d/auth.json /home/u/.config/containers/auth.json /home/u/.docker/config.json", os.Getuid())
	if got := strings.Join(UserAuthFiles(), " "); got != want {
		t.Fatalf("UserAuthFiles = %s, want %s", got, want)
	}
}
