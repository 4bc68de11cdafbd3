package container

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/internal/registrytest"
	"github.com/strata-os/strata/repo"
)

// passStore is Debian's docker-credential-pass over a throwaway password
// store: a GnuPG home with a key without passphrase and a pass store in
// temporary directories, given to the helper (a child of strata) through
// the environment.
type passStore struct{ t *testing.T }

func newPassStore(t *testing.T) passStore {
	t.Helper()
	// gpg-agent's socket lives in GNUPGHOME: keep its path short.
	gnupg, err := os.MkdirTemp("", "sgpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", gnupg, "--kill", "gpg-agent").Run()
		os.RemoveAll(gnupg)
	})
	os.Chmod(gnupg, 0o700)
	t.Setenv("GNUPGHOME", gnupg)
	t.Setenv("PASSWORD_STORE_DIR", filepath.Join(t.TempDir(), "pass"))
	params := filepath.Join(gnupg, "key.params")
	os.WriteFile(params, []byte("%no-protection\nKey-Type: EDDSA\nKey-Curve: ed25519\nSubkey-Type: ECDH\nSubkey-Curve: cv25519\nName-Real: strata test\nName-Email: test@strata.invalid\nExpire-Date: 0\n%commit\n"), 0o600)
	run(t, "gpg", "--batch", "--gen-key", params)
	var fpr string
	for _, l := range strings.Split(run(t, "gpg", "--batch", "--list-keys", "--with-colons"), "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if fpr == "" {
		t.Fatal("gpg made no key")
	}
	run(t, "pass", "init", fpr)
	return passStore{t}
}

// helper runs docker-credential-pass VERB with stdin.
func (p passStore) helper(verb, stdin string) {
	p.t.Helper()
	cmd := exec.Command("docker-credential-pass", verb)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("docker-credential-pass %s: %v\n%s", verb, err, out)
	}
}

func (p passStore) store(server, user, secret string) {
	p.t.Helper()
	b, _ := json.Marshal(map[string]string{"ServerURL": server, "Username": user, "Secret": secret})
	p.helper("store", string(b))
}

func (p passStore) erase(server string) { p.t.Helper(); p.helper("erase", server) }

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCredentialHelperPass pulls from Debian's registry with htpasswd
// through a credHelpers entry and Debian's real docker-credential-pass
// (pass and GnuPG underneath): the stored credentials pull; a wrong stored
// password is refused in one line naming the helper (and not quoting the
// secret); nothing stored means anonymous access, refused with the
// registry's clear line. As containers/image does, the helper shadows the
// same file's "auths" for its registry, and a helper that holds nothing
// lets the next file answer.
func TestCredentialHelperPass(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{Users: map[string]string{"alice": "s3cret"}})
	good := reg.AuthFile(t, "alice", "s3cret")
	src, c := smallCommit(t)
	img := ImageRef{Registry, reg.Addr + "/os:v1"}
	res, err := Encapsulate(ctx, src, c, img, EncapsulateOptions{MaxLayers: 4, Access: Access{Keychain: AuthFileKeychain(good)}})
	if err != nil {
		t.Fatal(err)
	}
	// Each pull into an empty repository: a refused one must write no ref.
	pull := func(kc authn.Keychain) (*PullResult, error) {
		t.Helper()
		dst, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pr, err := Pull(ctx, dst, img, PullOptions{Access: Access{Keychain: kc}})
		if refs, _ := dst.ListRefs(); err != nil && len(refs) != 0 {
			t.Fatalf("a refused pull wrote refs: %v", refs)
		}
		return pr, err
	}

	ps := newPassStore(t)
	helperFile := writeJSON(t, map[string]any{"credHelpers": map[string]string{reg.Addr: "pass"}})
	// With good credentials beside the helper, in the same file.
	var goodDoc map[string]any
	b, _ := os.ReadFile(good)
	json.Unmarshal(b, &goodDoc)
	goodDoc["credHelpers"] = map[string]string{reg.Addr: "pass"}
	bothFile := writeJSON(t, goodDoc)

	// Nothing stored: anonymous, refused by the registry.
	_, err = pull(AuthFileKeychain(helperFile))
	oneLine(t, "nothing stored", err, "registry "+reg.Addr, "authentication required", "docker-credential-pass held none")
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("nothing stored: %v is not ErrUnauthorized", err)
	}
	// ... and the same file's auths are not read for that registry.
	_, err = pull(AuthFileKeychain(bothFile))
	oneLine(t, "nothing stored, auths beside", err, "authentication required", "docker-credential-pass held none")
	// ... but the next file is.
	if _, err := pull(NewKeychain(helperFile, good)); err != nil {
		t.Fatalf("helper empty, next file good: %v", err)
	}

	// A wrong password stored: refused, naming the helper, not the secret.
	const wrong = "wr0ng-s3cret-xyzzy"
	ps.store(reg.Addr, "alice", wrong)
	_, err = pull(AuthFileKeychain(helperFile))
	oneLine(t, "wrong stored password", err, "registry "+reg.Addr, "refused the credentials from docker-credential-pass (credHelpers in "+helperFile+")", "HTTP 401")
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("the error quotes the secret: %v", err)
	}
	// The helper wins over good auths in the same file.
	_, err = pull(AuthFileKeychain(bothFile))
	oneLine(t, "helper before auths", err, "refused the credentials from docker-credential-pass")

	// The right password stored: the pull succeeds.
	ps.erase(reg.Addr)
	ps.store(reg.Addr, "alice", "s3cret")
	pr, err := pull(AuthFileKeychain(helperFile))
	if err != nil {
		t.Fatal(err)
	}
	if pr.BaseCommit != c || pr.ManifestDigest != res.ManifestDigest {
		t.Fatalf("pulled %s (%s), want %s (%s)", pr.BaseCommit, pr.ManifestDigest, c, res.ManifestDigest)
	}

	// "<token>" is an identity token (a registry refresh token).
	ps.store("tok.test:5000", "<token>", "refresh-me")
	tokFile := writeJSON(t, map[string]any{"credHelpers": map[string]string{"tok.test:5000": "pass"}})
	au, err := AuthFileKeychain(tokFile).ResolveContext(ctx, name.MustParseReference("tok.test:5000/os:v1").Context())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := authn.Authorization(ctx, au)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IdentityToken != "refresh-me" || cfg.Username != "" || cfg.Password != "" {
		t.Fatalf("<token> gave %+v", cfg)
	}
}

// TestCredentialHelperFailures injects the helper's failures with small
// scripts on PATH: each is one line naming the helper and the registry,
// except the protocol's "credentials not found" answer (anonymous).
func TestCredentialHelperFailures(t *testing.T) {
	bin := t.TempDir()
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	script := func(name, body string) {
		if err := os.WriteFile(filepath.Join(bin, "docker-credential-"+name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The server asked for arrives on stdin, with nothing else.
	script("echo", `read -r s; [ "$1" = get ] || exit 3; printf '{"ServerURL":"%s","Username":"u-%s","Secret":"pw"}' "$s" "$s"`)
	script("notfound", `echo "credentials not found in native keychain"; exit 1`)
	script("broken", `echo "the keyring is locked"; echo second line; exit 4`)
	script("garbage", `echo 'Username: u, Secret: hunter2'`)
	script("huge", `head -c 200000 /dev/zero | tr '\0' ' '; echo '{"Username":"u","Secret":"s"}'`)
	script("hang", `exec sleep 60`)
	oldTimeout := helperTimeout
	helperTimeout = 500 * time.Millisecond
	t.Cleanup(func() { helperTimeout = oldTimeout })

	repoOf := func(s string) name.Repository { r, _ := name.NewRepository(s); return r }
	resolve := func(helper, ref string) (authn.AuthConfig, error) {
		host := repoOf(ref).RegistryStr()
		if host == name.DefaultRegistry {
			host = "docker.io"
		}
		f := writeJSON(t, map[string]any{"credHelpers": map[string]string{host: helper}})
		au, err := AuthFileKeychain(f).ResolveContext(context.Background(), repoOf(ref))
		if err != nil {
			return authn.AuthConfig{}, err
		}
		if au == authn.Anonymous {
			return authn.AuthConfig{}, nil
		}
		cfg, err := authn.Authorization(context.Background(), au)
		return *cfg, err
	}
	cfg, err := resolve("echo", "reg.test:5000/team/os")
	if err != nil || cfg.Username != "u-reg.test:5000" || cfg.Password != "pw" {
		t.Fatalf("echo: %+v %v", cfg, err)
	}
	// Docker Hub is asked as containers/image asks it.
	if cfg, err := resolve("echo", "library/debian"); err != nil || cfg.Username != "u-docker.io" {
		t.Fatalf("echo for Docker Hub: %+v %v", cfg, err)
	}
	if cfg, err := resolve("notfound", "reg.test:5000/os"); err != nil || cfg != (authn.AuthConfig{}) {
		t.Fatalf("notfound: %+v %v", cfg, err)
	}
	_, err = resolve("broken", "reg.test:5000/os")
	oneLine(t, "broken", err, "credential helper docker-credential-broken for registry reg.test:5000", "exit status 4", "the keyring is locked")
	_, err = resolve("garbage", "reg.test:5000/os")
	oneLine(t, "garbage", err, "docker-credential-garbage", "reg.test:5000", "not JSON")
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("garbage: the error quotes the answer: %v", err)
	}
	_, err = resolve("huge", "reg.test:5000/os")
	oneLine(t, "huge", err, "docker-credential-huge", "over 65536 bytes")
	start := time.Now()
	_, err = resolve("hang", "reg.test:5000/os")
	oneLine(t, "hang", err, "docker-credential-hang", "reg.test:5000", "no answer within 500ms")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a hanging helper held the pull %s", d)
	}
	_, err = resolve("absent", "reg.test:5000/os")
	oneLine(t, "absent", err, "docker-credential-absent", "not found on PATH")
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("absent: %v", err)
	}
	// A helper name is a name on PATH, never a path.
	f := writeJSON(t, map[string]any{"credHelpers": map[string]string{"reg.test:5000": "../../bin/sh"}})
	_, err = NewKeychain(f).Resolve(repoOf("reg.test:5000/os"))
	oneLine(t, "path as helper", err, f, "is not a name")
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("path as helper: %v", err)
	}
	f = writeJSON(t, map[string]any{"credHelpers": map[string]string{"reg.test:5000/team": "echo"}})
	_, err = NewKeychain(f).Resolve(repoOf("reg.test:5000/os"))
	oneLine(t, "namespaced helper key", err, f, "not a registry")
	// Helpers are only run for their registry.
	f = writeJSON(t, map[string]any{"credHelpers": map[string]string{"other.test": "hang"}})
	if au, err := NewKeychain(f).Resolve(repoOf("reg.test:5000/os")); err != nil || au != authn.Anonymous {
		t.Fatalf("other registry's helper: %v %v", au, err)
	}
}
