package container

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/imgpolicy"
	"github.com/strata-os/strata/repo"
)

func writePolicy(t *testing.T, dir, body string) *imgpolicy.Policy {
	p := filepath.Join(dir, "policy.json")
	os.WriteFile(p, []byte(body), 0o644)
	pol, err := imgpolicy.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

func TestSignaturePolicy(t *testing.T) {
	ctx := context.Background()
	addr, _ := startRegistry(t)
	_, _ = bigLayerImage(t, addr) // pushes addr/big:v1
	img := ImageRef{Registry, addr + "/big:v1"}
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPath := filepath.Join(dir, "cosign.pub")
	os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	sigstore := writePolicy(t, dir, fmt.Sprintf(`{"default":[{"type":"reject"}],"transports":{"docker":{"%s/big":[{"type":"sigstoreSigned","keyPath":%q}]}}}`, addr, pubPath))
	pull := func(pol *imgpolicy.Policy, regd string) (*PullResult, *repo.Repo, error) {
		r, _ := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
		res, err := Pull(ctx, r, img, PullOptions{Policy: pol, RegistriesD: regd})
		return res, r, err
	}
	sentinel := filepath.Join(dir, "sentinel")
	os.WriteFile(sentinel, []byte("untouched"), 0o644)
	refused := func(what string, err error, r *repo.Repo) {
		t.Helper()
		if b, _ := os.ReadFile(sentinel); string(b) != "untouched" {
			t.Fatalf("%s: the sentinel outside the repository changed", what)
		}
		if err == nil || !errors.Is(err, imgpolicy.ErrRejected) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s: %v", what, err)
		}
		if refs, _ := r.ListRefs(); len(refs) != 0 {
			t.Fatalf("%s: refs written: %v", what, refs)
		}
		if objs, _ := os.ReadDir(filepath.Join(r.Path(), "objects")); len(objs) != 0 {
			t.Fatalf("%s: objects written", what)
		}
	}
	_, r, err := pull(sigstore, "")
	refused("unsigned image under sigstoreSigned", err, r)

	if _, err := Sign(ctx, img, other, Access{}); err != nil {
		t.Fatal(err)
	}
	_, r, err = pull(sigstore, "")
	refused("signed by another key", err, r)

	if _, err := Sign(ctx, img, key, Access{}); err != nil {
		t.Fatal(err)
	}
	res, _, err := pull(sigstore, "")
	if err != nil || !res.Verified {
		t.Fatalf("signed image: %v", err)
	}
	if o := Origin(OstreeImageRef{SigVerifyOf(res), img}, res.ManifestDigest).String(); !strings.Contains(o, "container-image-reference=ostree-image-signed:docker://"+addr+"/big:v1") {
		t.Fatalf("origin:\n%s", o)
	}
	// Scoping: the default (reject) applies to other repositories.
	_, r, err = pull(writePolicy(t, dir, `{"default":[{"type":"reject"}]}`), "")
	refused("reject", err, r)
	if res, _, err := pull(writePolicy(t, dir, `{"default":[{"type":"insecureAcceptAnything"}]}`), ""); err != nil || res.Verified {
		t.Fatalf("insecureAcceptAnything: %v", err)
	}

	// GPG: skopeo copy --sign-by writes the lookaside signature.
	gnupg := filepath.Join(dir, "gnupg")
	os.MkdirAll(gnupg, 0o700)
	env := append(os.Environ(), "GNUPGHOME="+gnupg)
	gpg := func(args ...string) string {
		cmd := exec.Command("gpg", append([]string{"--batch", "--pinentry-mode=loopback", "--passphrase", ""}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	gpg("--quick-gen-key", "strata-test@example.org", "rsa2048", "sign", "never")
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", gnupg, "--kill", "all").Run() })
	ring := filepath.Join(dir, "pubring.gpg")
	os.WriteFile(ring, []byte(gpg("--export", "--armor", "strata-test@example.org")), 0o644)
	sigdir := filepath.Join(dir, "sigs")
	regd := filepath.Join(dir, "registries.d")
	os.MkdirAll(regd, 0o755)
	os.WriteFile(filepath.Join(regd, "test.yaml"), []byte(fmt.Sprintf("docker:\n  %s:\n    lookaside: file://%s\n    lookaside-staging: file://%s\n", addr, sigdir, sigdir)), 0o644)
	gpgPolicy := writePolicy(t, dir, fmt.Sprintf(`{"default":[{"type":"reject"}],"transports":{"docker":{"%s":[{"type":"signedBy","keyType":"GPGKeys","keyPath":%q}]}}}`, addr, ring))
	_, r, err = pull(gpgPolicy, regd)
	refused("unsigned image under signedBy", err, r)
	cmd := exec.Command("skopeo", "--registries.d", regd, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--sign-by", "strata-test@example.org", "docker://"+addr+"/big:v1", "docker://"+addr+"/gpg:v1")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy --sign-by: %v\n%s", err, out)
	}
	img = ImageRef{Registry, addr + "/gpg:v1"}
	if res, _, err := pull(gpgPolicy, regd); err != nil || !res.Verified {
		t.Fatalf("GPG-signed image: %v", err)
	}
	// The signature names gpg:v1: under another name it does not count.
	os.WriteFile(filepath.Join(regd, "test.yaml"), []byte(fmt.Sprintf("docker:\n  %s:\n    lookaside: file://%s\n", addr, sigdir)), 0o644)
	run(t, "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+addr+"/gpg:v1", "docker://"+addr+"/gpg2:v1")
	matches, _ := filepath.Glob(filepath.Join(sigdir, "gpg@sha256=*"))
	for _, m := range matches {
		os.MkdirAll(strings.Replace(m, "gpg@", "gpg2@", 1), 0o755)
		b, _ := os.ReadFile(filepath.Join(m, "signature-1"))
		os.WriteFile(filepath.Join(strings.Replace(m, "gpg@", "gpg2@", 1), "signature-1"), b, 0o644)
	}
	img = ImageRef{Registry, addr + "/gpg2:v1"}
	_, r, err = pull(gpgPolicy, regd)
	refused("signature for another name", err, r)
	// A signature that is not one (garbage where the signature is).
	if len(matches) == 0 {
		t.Fatal("skopeo wrote no lookaside signature")
	}
	for _, m := range matches {
		os.WriteFile(filepath.Join(strings.Replace(m, "gpg@", "gpg2@", 1), "signature-1"), []byte("\x00garbage, not an OpenPGP message"), 0o644)
	}
	_, r, err = pull(gpgPolicy, regd)
	refused("garbage signature", err, r)
}
