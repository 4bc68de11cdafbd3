package sign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// The interop tests run the real gpg and ostree. Keys are made once per
// test binary (ed25519: milliseconds) in a directory removed by TestMain.

type gpgKeys struct {
	dir  string
	home string // GnuPG 2.2 homedir (pubring.kbx, private-keys-v1.d)
	// good and other are keys in home; expired is a key in expiredHome
	// whose gpg.conf fakes a time in 2020 when it was valid.
	good, other, expired string // fingerprints
	// sub is a certify-only primary key with an ed25519 signing subkey
	// (subID); rsa an RSA-2048 key. Both in home.
	sub, subID, rsa   string
	expiredHome       string
	goodPub, otherPub []byte // binary exports
	goodPubArmored    []byte
	expiredPub        []byte
	subPub, rsaPub    []byte
	goodRevocation    []byte // gpg's revocation certificate, usable
}

var (
	gpgOnce    sync.Once
	gpgFixture *gpgKeys
	gpgErr     error
	gpgTmp     string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if gpgFixture != nil {
		for _, h := range []string{gpgFixture.home, gpgFixture.expiredHome} {
			exec.Command("gpgconf", "--homedir", h, "--kill", "all").Run()
		}
	}
	if gpgTmp != "" {
		os.RemoveAll(gpgTmp)
	}
	os.Exit(code)
}

func gpgRun(home string, args ...string) ([]byte, error) {
	cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("gpg %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

func genKey(home, uid, expire string, extra ...string) (string, error) {
	return genKeyAlgo(home, uid, "ed25519", "sign", expire, extra...)
}

func genKeyAlgo(home, uid, algo, usage, expire string, extra ...string) (string, error) {
	if _, err := gpgRun(home, append(extra, "--quick-gen-key", uid, algo, usage, expire)...); err != nil {
		return "", err
	}
	out, err := gpgRun(home, "--with-colons", "--list-keys", uid)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Split(l, ":"); f[0] == "fpr" && len(f) > 9 {
			return f[9], nil
		}
	}
	return "", fmt.Errorf("no fingerprint for %s", uid)
}

func testGPG(t *testing.T) *gpgKeys {
	t.Helper()
	gpgOnce.Do(func() {
		k := &gpgKeys{}
		gpgFixture = k
		if gpgTmp, gpgErr = os.MkdirTemp("", "strata-gpg-"); gpgErr != nil {
			return
		}
		k.dir = gpgTmp
		k.home, k.expiredHome = filepath.Join(k.dir, "home"), filepath.Join(k.dir, "expired")
		for _, h := range []string{k.home, k.expiredHome} {
			if gpgErr = os.Mkdir(h, 0o700); gpgErr != nil {
				return
			}
		}
		if k.good, gpgErr = genKey(k.home, "Strata Good <good@example.com>", "never"); gpgErr != nil {
			return
		}
		if k.other, gpgErr = genKey(k.home, "Strata Other <other@example.com>", "never"); gpgErr != nil {
			return
		}
		if k.rsa, gpgErr = genKeyAlgo(k.home, "Strata RSA <rsa@example.com>", "rsa2048", "sign", "never"); gpgErr != nil {
			return
		}
		if k.sub, gpgErr = genKeyAlgo(k.home, "Strata Sub <sub@example.com>", "ed25519", "cert", "never"); gpgErr != nil {
			return
		}
		if _, gpgErr = gpgRun(k.home, "--quick-add-key", k.sub, "ed25519", "sign", "never"); gpgErr != nil {
			return
		}
		var out []byte
		if out, gpgErr = gpgRun(k.home, "--with-colons", "--list-keys", k.sub); gpgErr != nil {
			return
		}
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Split(l, ":"); f[0] == "sub" && len(f) > 4 {
				k.subID = f[4]
			}
		}
		if k.subPub, gpgErr = gpgRun(k.home, "--export", k.sub); gpgErr != nil {
			return
		}
		if k.rsaPub, gpgErr = gpgRun(k.home, "--export", k.rsa); gpgErr != nil {
			return
		}
		// Valid from 2020-01-01 for two days; ostree signs with it at
		// the faked time gpg.conf sets.
		if k.expired, gpgErr = genKey(k.expiredHome, "Strata Expired <expired@example.com>", "2d", "--faked-system-time", "20200101T000000!"); gpgErr != nil {
			return
		}
		if gpgErr = os.WriteFile(filepath.Join(k.expiredHome, "gpg.conf"), []byte("faked-system-time 20200101T120000!\n"), 0o600); gpgErr != nil {
			return
		}
		if k.goodPub, gpgErr = gpgRun(k.home, "--export", k.good); gpgErr != nil {
			return
		}
		if k.goodPubArmored, gpgErr = gpgRun(k.home, "--export", "--armor", k.good); gpgErr != nil {
			return
		}
		if k.otherPub, gpgErr = gpgRun(k.home, "--export", k.other); gpgErr != nil {
			return
		}
		if k.expiredPub, gpgErr = gpgRun(k.expiredHome, "--export", k.expired); gpgErr != nil {
			return
		}
		var rev []byte
		if rev, gpgErr = os.ReadFile(filepath.Join(k.home, "openpgp-revocs.d", k.good+".rev")); gpgErr != nil {
			return
		}
		// gpg protects its stored certificate with a ':' before the
		// armor; remove it, as its instructions say.
		k.goodRevocation = bytes.Replace(rev, []byte(":-----BEGIN"), []byte("-----BEGIN"), 1)
	})
	if gpgErr != nil {
		t.Fatal(gpgErr)
	}
	return gpgFixture
}

func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeKeyringFile(t *testing.T, data ...[]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys.gpg")
	if err := os.WriteFile(p, bytes.Join(data, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func verifierOf(t *testing.T, data ...[]byte) *GPGVerifier {
	t.Helper()
	v := NewGPGVerifier()
	for _, d := range data {
		if err := v.AddKeyring(d, "test"); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// TestGPGInteropOstreeSigns: commits and summaries that ostree signs
// verify with strata against the keyring `ostree remote add --gpg-import`
// writes; wrong, expired and revoked keys and tampered bytes are refused.
func TestGPGInteropOstreeSigns(t *testing.T) {
	k := testGPG(t)
	dir := t.TempDir()
	rp := filepath.Join(dir, "repo")
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "f"), []byte("hello\n"), 0o644)
	runCmd(t, "ostree", "--repo="+rp, "init", "--mode=archive")
	sum := func(args ...string) objects.Checksum {
		out := runCmd(t, "ostree", append([]string{"--repo=" + rp, "commit", "--tree=dir=" + tree, "-s", "x"}, args...)...)
		c, err := objects.ParseChecksum(strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	signed := sum("-b", "main", "--gpg-sign="+k.good, "--gpg-homedir="+k.home)
	unsigned := sum("-b", "unsigned")
	expired := sum("-b", "expired", "--gpg-sign="+k.expired, "--gpg-homedir="+k.expiredHome)
	bySub := sum("-b", "sub", "--gpg-sign="+k.sub, "--gpg-homedir="+k.home)
	byRSA := sum("-b", "rsa", "--gpg-sign="+k.rsa, "--gpg-homedir="+k.home)
	runCmd(t, "ostree", "--repo="+rp, "summary", "-u", "--gpg-sign="+k.good, "--gpg-homedir="+k.home)

	// The keyring as ostree writes it for a remote, in a client repo.
	client := filepath.Join(dir, "client")
	runCmd(t, "ostree", "--repo="+client, "init", "--mode=archive")
	runCmd(t, "ostree", "--repo="+client, "remote", "add", "--gpg-import="+writeKeyringFile(t, k.goodPubArmored), "origin", "file://"+rp)
	v, err := LoadGPGVerifier(GPGKeyrings{RepoPath: client, Remote: "origin", GlobalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if v.NumKeys() != 1 || v.Fingerprints()[0] != k.good {
		t.Fatalf("ostree's keyring gave keys %v, want %s", v.Fingerprints(), k.good)
	}

	r, err := repo.Open(rp)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := VerifyCommit(r, signed, []Verifier{v})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, k.good) || !strings.Contains(msg, k.good[24:]) || !strings.Contains(msg, "good@example.com") {
		t.Errorf("success message %q does not name key %s", msg, k.good)
	}

	// A signing subkey (the message names it and the primary key) and
	// an RSA key.
	subV := verifierOf(t, k.subPub, k.rsaPub)
	if msg, err := VerifyCommit(r, bySub, []Verifier{subV}); err != nil || !strings.Contains(msg, k.subID) || !strings.Contains(msg, k.sub) {
		t.Errorf("subkey signature: %q %v (want subkey %s of %s)", msg, err, k.subID, k.sub)
	}
	if msg, err := VerifyCommit(r, byRSA, []Verifier{subV}); err != nil || !strings.Contains(msg, "RSA") {
		t.Errorf("RSA signature: %q %v", msg, err)
	}

	// summary.sig, an a{sv} with ostree.gpgsigs over the summary bytes.
	sdata, err := os.ReadFile(filepath.Join(rp, "summary"))
	if err != nil {
		t.Fatal(err)
	}
	sigData, err := os.ReadFile(filepath.Join(rp, "summary.sig"))
	if err != nil {
		t.Fatal(err)
	}
	smd, err := objects.ParseMetadata(sigData)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyAny(sdata, smd, []Verifier{v}); err != nil {
		t.Fatalf("summary: %v", err)
	}
	tampered := append([]byte(nil), sdata...)
	tampered[len(tampered)/2] ^= 1
	if _, err := VerifyAny(tampered, smd, []Verifier{v}); !errors.Is(err, ErrBadSignature) || errors.Is(err, ErrKeyMissing) {
		t.Errorf("tampered summary: %v", err)
	}
	cdata, err := r.ReadMetadata(objects.KindCommit, signed)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := r.ReadCommitMeta(signed)
	if err != nil {
		t.Fatal(err)
	}
	cdata = append([]byte(nil), cdata...)
	cdata[len(cdata)-1] ^= 0x80
	if _, err := VerifyAny(cdata, cmd, []Verifier{v}); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), k.good[24:]) {
		t.Errorf("tampered commit: %v", err)
	}

	for _, tc := range []struct {
		name   string
		c      objects.Checksum
		v      *GPGVerifier
		want   error
		naming string
	}{
		{"unsigned", unsigned, v, ErrNoSignature, ""},
		{"wrong key", signed, verifierOf(t, k.otherPub), ErrKeyMissing, k.good[24:]},
		{"expired key", expired, verifierOf(t, k.goodPub, k.expiredPub), ErrKeyExpired, k.expired[24:]},
		{"revoked key", signed, verifierOf(t, k.goodPub, k.goodRevocation), ErrKeyRevoked, k.good[24:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyCommit(r, tc.c, []Verifier{tc.v})
			t.Log(err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("error %q does not name key %s", err, tc.naming)
			}
		})
	}
	// ostree agrees about the expired key.
	kd := filepath.Join(dir, "kd")
	os.MkdirAll(kd, 0o755)
	os.WriteFile(filepath.Join(kd, "keys.gpg"), append(append([]byte(nil), k.goodPub...), k.expiredPub...), 0o644)
	if out := runCmd(t, "ostree", "--repo="+rp, "show", "--gpg-homedir="+kd, "expired"); !strings.Contains(out, "Key expired") {
		t.Errorf("ostree does not call the key expired:\n%s", out)
	}

	// A revocation certificate imported into the remote's keyring, as
	// `remote gpg-import` would, revokes the key for later verifications.
	ring := RemoteKeyringPath(client, "origin")
	if _, err := ImportKeys(context.Background(), ring, k.goodRevocation, nil); err != nil {
		t.Fatal(err)
	}
	v2, err := LoadGPGVerifier(GPGKeyrings{RepoPath: client, Remote: "origin", GlobalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyCommit(r, signed, []Verifier{v2}); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("after importing the revocation: %v", err)
	}
	// gpg reads the keyring strata wrote and sees the key revoked.
	out, err := exec.Command("gpg", "--homedir", k.dir, "--no-default-keyring", "--keyring", ring, "--with-colons", "--list-keys").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pub:r:") {
		t.Errorf("gpg on strata's keyring: %v\n%s", err, out)
	}
}

// TestGPGInteropStrataSigns: commits strata signs (with a GnuPG 2.2 homedir
// through gpg's export, or with an exported key file) pass `ostree pull`
// with gpg-verify and `ostree show`; a commit signed by a key the remote
// does not trust fails the pull.
func TestGPGInteropStrataSigns(t *testing.T) {
	k := testGPG(t)
	ctx := context.Background()
	dir := t.TempDir()
	rp := filepath.Join(dir, "repo")
	r, err := repo.Init(rp, repo.ModeArchive, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "f"), []byte("hello\n"), 0o644)
	mk := func(branch string, s Signer) objects.Checksum {
		t.Helper()
		txn, err := r.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer txn.Abort()
		m := commit.NewMTree(nil)
		if err := commit.AddDir(ctx, txn, m, tree, commit.Filter{}, nil); err != nil {
			t.Fatal(err)
		}
		res, err := commit.Write(ctx, txn, m, commit.Options{Branch: branch, Subject: branch})
		if err != nil {
			t.Fatal(err)
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := SignCommit(ctx, r, res.Checksum, s); err != nil {
			t.Fatal(err)
		}
		return res.Checksum
	}
	// GnuPG 2.2 homedir: strata exports the key with gpg.
	viaGPG, err := NewGPGSigner(ctx, k.good, k.home)
	if err != nil {
		t.Fatal(err)
	}
	if viaGPG.Fingerprint() != k.good {
		t.Fatalf("signer key %s, want %s", viaGPG.Fingerprint(), k.good)
	}
	// A directory with an exported secret key: no gpg needed.
	sec, err := gpgRun(k.home, "--export-secret-keys", "--armor", k.other)
	if err != nil {
		t.Fatal(err)
	}
	keyDir := filepath.Join(dir, "keydir")
	os.MkdirAll(keyDir, 0o700)
	os.WriteFile(filepath.Join(keyDir, "other.asc"), sec, 0o600)
	fromFile, err := NewGPGSigner(ctx, k.other[24:], keyDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewGPGSigner(ctx, k.good, keyDir); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("key not in the directory: %v", err)
	}
	good := mk("main", viaGPG)
	mk("other", fromFile)
	for _, id := range []string{k.sub, k.rsa[24:]} {
		s, err := NewGPGSigner(ctx, id, k.home)
		if err != nil {
			t.Fatal(err)
		}
		if id == k.sub && s.KeyID() != k.subID {
			t.Errorf("signing with %s uses key %s, want its signing subkey %s", id, s.KeyID(), k.subID)
		}
		mk("by-"+id[len(id)-4:], s)
	}
	armored, err := gpgRun(k.home, "--export", "--armor", k.good, k.sub, k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	trusted := writeKeyringFile(t, armored)

	client := filepath.Join(dir, "client")
	runCmd(t, "ostree", "--repo="+client, "init", "--mode=archive")
	runCmd(t, "ostree", "--repo="+client, "remote", "add", "--gpg-import="+trusted, "origin", "file://"+rp)
	runCmd(t, "ostree", "--repo="+client, "pull", "origin", "main", "by-"+k.sub[36:], "by-"+k.rsa[36:])
	if out := runCmd(t, "ostree", "--repo="+client, "rev-parse", "origin:main"); strings.TrimSpace(out) != good.String() {
		t.Fatalf("pulled %s, want %s", out, good)
	}
	out, err := exec.Command("ostree", "--repo="+client, "pull", "origin", "other").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "public key not found") {
		t.Errorf("ostree pulled a commit signed by an untrusted key: %v\n%s", err, out)
	}
	// ostree show with a keyring directory holding both keys: good
	// signatures from each.
	kd := filepath.Join(dir, "kd")
	os.MkdirAll(kd, 0o755)
	os.WriteFile(filepath.Join(kd, "keys.gpg"), append(append([]byte(nil), k.goodPub...), k.otherPub...), 0o644)
	for _, ref := range []string{"main", "other"} {
		if out := runCmd(t, "ostree", "--repo="+rp, "show", "--gpg-homedir="+kd, ref); !strings.Contains(out, "Good signature") {
			t.Errorf("ostree show %s:\n%s", ref, out)
		}
	}
	// And strata's verifier accepts its own signatures too.
	if _, err := VerifyCommit(r, good, []Verifier{verifierOf(t, k.goodPub)}); err != nil {
		t.Error(err)
	}
}
