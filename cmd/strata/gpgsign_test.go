package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGPGSignCLI: commit --gpg-sign, summary -u --gpg-sign and gpg-sign
// with a GnuPG 2.2 homedir; `ostree pull` with gpg-verify and
// gpg-verify-summary accepts the result; gpg-sign --verify names the key;
// a second signature by the same key is refused; --delete removes it and
// ostree then refuses the unsigned commit.
func TestGPGSignCLI(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "gnupg")
	os.Mkdir(home, 0o700)
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	gpg := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...).Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return string(out)
	}
	gpg("--quick-gen-key", "CLI Test <cli@example.com>", "ed25519", "sign", "never")
	fpr := ""
	for _, l := range strings.Split(gpg("--with-colons", "--list-keys"), "\n") {
		if f := strings.Split(l, ":"); f[0] == "fpr" && fpr == "" {
			fpr = f[9]
		}
	}
	pub := filepath.Join(dir, "pub.asc")
	os.WriteFile(pub, []byte(gpg("--export", "--armor", fpr)), 0o644)

	run := func(name string, args ...string) string {
		t.Helper()
		out, err := runOut(t, name, args...)
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return out
	}
	rp := filepath.Join(dir, "repo")
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "f"), []byte("data\n"), 0o644)
	run(bin, "--repo="+rp, "init", "--mode=archive")
	c := strings.TrimSpace(run(bin, "--repo="+rp, "commit", "-b", "main", "-s", "signed", "--tree=dir="+tree, "--gpg-sign="+fpr, "--gpg-homedir="+home))
	run(bin, "--repo="+rp, "summary", "-u", "--gpg-sign="+fpr[32:], "--gpg-homedir="+home)

	if out, err := runOut(t, bin, "--repo="+rp, "gpg-sign", c, fpr, "--gpg-homedir="+home); err == nil || !strings.Contains(out, "already signed") {
		t.Errorf("second signature by the same key: %v\n%s", err, out)
	}
	kr := filepath.Join(dir, "pub.gpg")
	os.WriteFile(kr, []byte(gpg("--export", fpr)), 0o644)
	if out := run(bin, "--repo="+rp, "gpg-sign", "--verify", "main", "--keyring="+kr); !strings.Contains(out, fpr) || !strings.Contains(out, "cli@example.com") {
		t.Errorf("gpg-sign --verify: %s", out)
	}
	if out, err := runOut(t, bin, "--repo="+rp, "gpg-sign", "--verify", "main"); err == nil || !strings.Contains(out, "public key not found") || !strings.Contains(out, fpr[24:]) {
		t.Errorf("verify without the key: %v\n%s", err, out)
	}

	pull := func(client string) (string, error) {
		run("ostree", "--repo="+client, "init", "--mode=archive")
		run("ostree", "--repo="+client, "remote", "add", "--gpg-import="+pub, "--set=gpg-verify-summary=true", "origin", "file://"+rp)
		return runOut(t, "ostree", "--repo="+client, "pull", "origin", "main")
	}
	if out, err := pull(filepath.Join(dir, "client1")); err != nil {
		t.Fatalf("ostree pull of strata's GPG-signed commit and summary: %v\n%s", err, out)
	}
	// The keyring strata's remote add writes (sign.MergeKeys) verifies too.
	run(bin, "--repo="+rp, "remote", "add", "--gpg-import="+pub, "self", "file://"+rp)
	if out := run(bin, "--repo="+rp, "gpg-sign", "--verify", "--remote=self", c); !strings.Contains(out, "Good signature") {
		t.Errorf("verify with the remote's keyring: %s", out)
	}

	if out := run(bin, "--repo="+rp, "gpg-sign", "-d", c, fpr[24:]); !strings.Contains(out, "Signatures deleted: 1") {
		t.Errorf("delete: %s", out)
	}
	if out, err := runOut(t, bin, "--repo="+rp, "gpg-sign", "--verify", "--remote=self", c); err == nil || !strings.Contains(out, "no signatures") {
		t.Errorf("verify of the unsigned commit: %v\n%s", err, out)
	}
	if out, err := pull(filepath.Join(dir, "client2")); err == nil {
		t.Errorf("ostree pulled the commit after its signature was deleted:\n%s", out)
	}
	// gpg-sign adds it back, and ostree accepts it again.
	run(bin, "--repo="+rp, "gpg-sign", c, fpr, "--gpg-homedir="+home)
	if out, err := pull(filepath.Join(dir, "client3")); err != nil {
		t.Errorf("ostree pull after gpg-sign: %v\n%s", err, out)
	}
}
