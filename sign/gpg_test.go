package sign

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/strata-os/strata/repo"
)

// newTestKey makes an ed25519 OpenPGP key created at created, valid for
// lifetime (0: forever).
func newTestKey(t testing.TB, name string, created time.Time, lifetime time.Duration) *openpgp.Entity {
	t.Helper()
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return created }, KeyLifetimeSecs: uint32(lifetime / time.Second)}
	e, err := openpgp.NewEntity(name, "", strings.ToLower(name)+"@example.com", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func publicKey(t testing.TB, e *openpgp.Entity) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := e.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func armoredPublicKey(t testing.TB, e *openpgp.Entity) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(publicKey(t, e))
	w.Close()
	return b.Bytes()
}

func signAt(t testing.TB, e *openpgp.Entity, data []byte, at time.Time) []byte {
	t.Helper()
	s := &GPGSigner{entity: e, Now: func() time.Time { return at }}
	sig, err := s.Sign(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestGPGVerify(t *testing.T) {
	now := time.Now()
	data := []byte("commit object bytes")
	good := newTestKey(t, "Good", now.Add(-3*time.Hour), 0)
	other := newTestKey(t, "Other", now.Add(-time.Hour), 0)
	expired := newTestKey(t, "Expired", now.Add(-48*time.Hour), 24*time.Hour)
	revoked := newTestKey(t, "Revoked", now.Add(-time.Hour), 0)
	revokedPub := func() []byte {
		if err := revoked.RevokeKey(packet.KeyCompromised, "lost", nil); err != nil {
			t.Fatal(err)
		}
		return publicKey(t, revoked)
	}

	goodSig := signAt(t, good, data, now)
	otherSig := signAt(t, other, data, now)
	expiredSig := signAt(t, expired, data, now.Add(-47*time.Hour))
	revokedSig := signAt(t, revoked, data, now)
	sigExpiring := func() []byte {
		s := &GPGSigner{entity: good, Now: func() time.Time { return now.Add(-2 * time.Hour) }}
		cfg := &packet.Config{Time: s.Now, SigLifetimeSecs: 60}
		var b bytes.Buffer
		if err := openpgp.DetachSign(&b, good, bytes.NewReader(data), cfg); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}()

	v := NewGPGVerifier()
	for _, k := range [][]byte{publicKey(t, good), armoredPublicKey(t, expired), revokedPub()} {
		if err := v.AddKeyring(k, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if v.NumKeys() != 3 {
		t.Fatalf("%d keys", v.NumKeys())
	}
	keyID := func(e *openpgp.Entity) string { return e.PrimaryKey.KeyIdString() }

	msg, err := v.Verify(data, [][]byte{goodSig})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(msg)
	fpr := strings.ToUpper(good.PrimaryKey.KeyIdString())
	if !strings.Contains(msg, fpr) || !strings.Contains(msg, "Good <good@example.com>") {
		t.Errorf("message %q lacks the key ID %s or user ID", msg, fpr)
	}
	// One good signature among bad ones is enough, wherever it is.
	if _, err := v.Verify(data, [][]byte{otherSig, goodSig}); err != nil {
		t.Errorf("good after unknown: %v", err)
	}
	if _, err := v.Verify(data, [][]byte{append(append([]byte(nil), otherSig...), goodSig...)}); err != nil {
		t.Errorf("two packets in one entry: %v", err)
	}

	for _, tc := range []struct {
		name   string
		data   []byte
		sigs   [][]byte
		want   error
		naming string
	}{
		{"tampered", append([]byte("x"), data...), [][]byte{goodSig}, ErrBadSignature, keyID(good)},
		{"unknown key", data, [][]byte{otherSig}, ErrKeyMissing, keyID(other)},
		{"expired key", data, [][]byte{expiredSig}, ErrKeyExpired, keyID(expired)},
		{"revoked key", data, [][]byte{revokedSig}, ErrKeyRevoked, keyID(revoked)},
		{"expired signature", data, [][]byte{sigExpiring}, ErrSignatureExpired, keyID(good)},
		{"no signature", data, nil, ErrNoSignature, ""},
		{"garbage", data, [][]byte{[]byte("not a signature")}, ErrBadSignature, ""},
		{"truncated", data, [][]byte{goodSig[:len(goodSig)-3]}, ErrBadSignature, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(tc.data, tc.sigs)
			t.Log(err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(strings.ToUpper(err.Error()), strings.ToUpper(tc.naming)) {
				t.Errorf("error %q does not name key %s", err, tc.naming)
			}
			if tc.want != ErrNoSignature && !errors.Is(err, ErrBadSignature) {
				t.Errorf("error %v does not wrap ErrBadSignature", err)
			}
		})
	}

	// The same key seen again with its revocation (another keyring) is
	// revoked: keyrings merge as gpg merges them.
	v2 := NewGPGVerifier()
	v2.AddKeyring(publicKey(t, good), "a")
	g2 := *good
	g2.Revocations = nil
	if err := g2.RevokeKey(packet.KeySuperseded, "", nil); err != nil {
		t.Fatal(err)
	}
	v2.AddKeyring(publicKey(t, &g2), "b")
	if v2.NumKeys() != 1 {
		t.Fatalf("merged keyring has %d keys", v2.NumKeys())
	}
	if _, err := v2.Verify(data, [][]byte{goodSig}); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("key revoked in a second keyring: %v", err)
	}
	// An empty verifier says so.
	if _, err := NewGPGVerifier().Verify(data, [][]byte{goodSig}); !errors.Is(err, ErrKeyMissing) || !strings.Contains(err.Error(), "no trusted keys") {
		t.Errorf("empty keyring: %v", err)
	}
}

func TestGPGSignerKeySelection(t *testing.T) {
	e := newTestKey(t, "Signer", time.Now().Add(-time.Minute), 0)
	var sec bytes.Buffer
	if err := e.SerializePrivate(&sec, nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{e.PrimaryKey.KeyIdString(), e.PrimaryKey.KeyIdShortString(), "0x" + e.PrimaryKey.KeyIdString(), strings.ToLower(hexFpr(e.PrimaryKey.Fingerprint)), "signer@example.com", "<signer@example.com>"} {
		s, err := NewGPGSignerFromKeyring(sec.Bytes(), id)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if s.Fingerprint() != hexFpr(e.PrimaryKey.Fingerprint) {
			t.Errorf("%s: fingerprint %s", id, s.Fingerprint())
		}
	}
	if _, err := NewGPGSignerFromKeyring(sec.Bytes(), "DEADBEEFDEADBEEF"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("unknown key: %v", err)
	}
	// A public key cannot sign.
	if _, err := NewGPGSignerFromKeyring(publicKey(t, e), e.PrimaryKey.KeyIdString()); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("public key only: %v", err)
	}
	// A passphrase-protected key is refused by name.
	if err := e.EncryptPrivateKeys([]byte("pw"), nil); err != nil {
		t.Fatal(err)
	}
	sec.Reset()
	e.SerializePrivateWithoutSigning(&sec, nil)
	if _, err := NewGPGSignerFromKeyring(sec.Bytes(), e.PrimaryKey.KeyIdString()); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("protected key: %v", err)
	}
}

func hexFpr(b []byte) string { return strings.ToUpper(strings.TrimSpace(string(bytesHex(b)))) }

func bytesHex(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

func TestImportKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ring := RemoteKeyringPath(dir, "origin")
	if filepath.Base(ring) != "origin.trustedkeys.gpg" {
		t.Fatalf("keyring name %s", ring)
	}
	a := newTestKey(t, "Alpha", time.Now().Add(-time.Hour), 0)
	b := newTestKey(t, "Beta", time.Now().Add(-time.Hour), 0)
	both := append(armoredPublicKey(t, a), armoredPublicKey(t, b)...)

	// Selecting an absent key writes nothing.
	if _, err := ImportKeys(ctx, ring, both, []string{"0123456789ABCDEF"}); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("unknown key ID: %v", err)
	}
	if _, err := os.Stat(ring); !os.IsNotExist(err) {
		t.Fatalf("keyring written after a failed import: %v", err)
	}
	n, err := ImportKeys(ctx, ring, both, []string{b.PrimaryKey.KeyIdString()})
	if err != nil || n != 1 {
		t.Fatalf("import Beta: %d %v", n, err)
	}
	n, err = ImportKeys(ctx, ring, both, nil)
	if err != nil || n != 1 {
		t.Fatalf("import both: %d %v", n, err)
	}
	n, err = ImportKeys(ctx, ring, both, nil)
	if err != nil || n != 0 {
		t.Fatalf("import again: %d %v", n, err)
	}
	v, err := LoadGPGVerifier(GPGKeyrings{RepoPath: dir, Remote: "origin", GlobalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if v.NumKeys() != 2 {
		t.Fatalf("keyring holds %d keys", v.NumKeys())
	}
	data := []byte("summary")
	sig := signAt(t, a, data, time.Now())
	if _, err := v.Verify(data, [][]byte{sig}); err != nil {
		t.Fatal(err)
	}
	// A revocation certificate on its own revokes the imported key.
	if err := a.RevokeKey(packet.KeyRetired, "", nil); err != nil {
		t.Fatal(err)
	}
	var cert bytes.Buffer
	w, _ := armor.Encode(&cert, openpgp.PublicKeyType, nil)
	a.Revocations[0].Serialize(w)
	w.Close()
	if _, err := ImportKeys(ctx, ring, cert.Bytes(), nil); err != nil {
		t.Fatalf("import revocation: %v", err)
	}
	v, _ = LoadGPGVerifier(GPGKeyrings{RepoPath: dir, Remote: "origin", GlobalDir: "-"})
	if _, err := v.Verify(data, [][]byte{sig}); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("after revocation: %v", err)
	}
	// Garbage is refused and leaves the keyring as it was.
	before, _ := os.ReadFile(ring)
	if _, err := ImportKeys(ctx, ring, []byte("hello"), nil); !errors.Is(err, repo.ErrInvalid) {
		t.Errorf("garbage import: %v", err)
	}
	after, _ := os.ReadFile(ring)
	if !bytes.Equal(before, after) {
		t.Error("failed import changed the keyring")
	}
}

func TestLoadGPGVerifierRules(t *testing.T) {
	repoDir, global, remotesD := t.TempDir(), t.TempDir(), t.TempDir()
	a := newTestKey(t, "Remote", time.Now().Add(-time.Hour), 0)
	g := newTestKey(t, "Global", time.Now().Add(-time.Hour), 0)
	o := newTestKey(t, "Other", time.Now().Add(-time.Hour), 0)
	os.WriteFile(filepath.Join(global, "vendor.gpg"), publicKey(t, g), 0o644)
	os.WriteFile(filepath.Join(global, "trustdb.gpg"), []byte("not a keyring"), 0o644)
	os.WriteFile(filepath.Join(global, "README"), []byte("not a keyring"), 0o644)
	os.WriteFile(filepath.Join(repoDir, "other.trustedkeys.gpg"), publicKey(t, o), 0o644)
	kp := filepath.Join(t.TempDir(), "key.asc")
	os.WriteFile(kp, armoredPublicKey(t, o), 0o644)

	count := func(k GPGKeyrings) int {
		t.Helper()
		v, err := LoadGPGVerifier(k)
		if err != nil {
			t.Fatal(err)
		}
		return v.NumKeys()
	}
	// No keyring of the remote's own: the global directory is used.
	if n := count(GPGKeyrings{RepoPath: repoDir, Remote: "origin", GlobalDir: global}); n != 1 {
		t.Errorf("global fallback: %d keys", n)
	}
	// The remote's keyring in remotes.d replaces the global one.
	os.WriteFile(filepath.Join(remotesD, "origin.trustedkeys.gpg"), publicKey(t, a), 0o644)
	if n := count(GPGKeyrings{RepoPath: repoDir, Remote: "origin", RemotesDir: remotesD, GlobalDir: global}); n != 1 {
		t.Errorf("remotes.d keyring: %d keys", n)
	}
	// gpgkeypath adds to it.
	if n := count(GPGKeyrings{RepoPath: repoDir, Remote: "origin", RemotesDir: remotesD, GlobalDir: global, KeyPaths: []string{kp}}); n != 2 {
		t.Errorf("gpgkeypath: %d keys", n)
	}
	// No remote: every remote keyring of the repository, plus the global.
	if n := count(GPGKeyrings{RepoPath: repoDir, GlobalDir: global}); n != 2 {
		t.Errorf("all remotes: %d keys", n)
	}
	if _, err := LoadGPGVerifier(GPGKeyrings{RepoPath: repoDir, Remote: "origin", KeyPaths: []string{filepath.Join(repoDir, "missing.asc")}}); err == nil {
		t.Error("missing gpgkeypath accepted")
	}
}

func TestSplitPackets(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		tags []int
		ok   bool
	}{
		{"new format", []byte{0xc2, 2, 'a', 'b'}, []int{2}, true},
		{"new two-byte length", append([]byte{0xc2, 192, 8}, make([]byte, 200)...), []int{2}, true},
		{"new four-byte length", append([]byte{0xc2, 255, 0, 0, 0, 3}, 1, 2, 3), []int{2}, true},
		{"old one-byte", []byte{0x88, 1, 0, 0xb4, 1, 'x'}, []int{2, 13}, true},
		{"old two-byte", append([]byte{0x89, 0, 2}, 1, 2), []int{2}, true},
		{"old indeterminate", []byte{0x8b, 1, 2, 3}, []int{2}, true},
		{"not a packet", []byte{0x02, 1, 0}, nil, false},
		{"truncated body", []byte{0xc2, 5, 1}, nil, false},
		{"huge length", []byte{0xc2, 255, 0xff, 0xff, 0xff, 0xff}, nil, false},
		{"partial length", []byte{0xc2, 0xe1, 1, 2}, nil, false},
		{"lone byte", []byte{0xc2}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := splitPackets(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v", err)
			}
			if err != nil {
				if !errors.Is(err, repo.ErrInvalid) {
					t.Errorf("error %v does not wrap ErrInvalid", err)
				}
				return
			}
			var tags []int
			for _, p := range ps {
				tags = append(tags, p.tag)
			}
			if len(tags) != len(tc.tags) {
				t.Fatalf("tags %v, want %v", tags, tc.tags)
			}
			for i := range tags {
				if tags[i] != tc.tags[i] {
					t.Fatalf("tags %v, want %v", tags, tc.tags)
				}
			}
		})
	}
}

// FuzzGPGVerify feeds arbitrary keyrings and signatures to the parsers of
// untrusted OpenPGP bytes: nothing may panic, and nothing verifies.
func FuzzGPGVerify(f *testing.F) {
	e := newTestKey(f, "Fuzz", time.Now().Add(-time.Hour), 0)
	sig := signAt(f, e, []byte("data"), time.Now())
	f.Add(publicKey(f, e), sig)
	f.Add(armoredPublicKey(f, e), sig[:10])
	f.Add([]byte{0xc6, 0}, []byte{0xc2, 0})
	f.Fuzz(func(t *testing.T, ring, sig []byte) {
		v := NewGPGVerifier()
		_ = v.AddKeyring(ring, "fuzz")
		if _, err := v.Verify([]byte("other data"), [][]byte{sig}); err == nil {
			t.Fatal("a signature of other data verified")
		}
		_, _, _ = parseKeyBlocks(sig)
	})
}

func TestIssuedBy(t *testing.T) {
	ids := []string{"0123456789ABCDEF"}
	fprs := []string{"AAAABBBBCCCCDDDDEEEEFFFF0123456789ABCDEF"}
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"0123456789ABCDEF", true},
		{"89abcdef", true},
		{"0x89ABCDEF", true},
		{"AAAABBBBCCCCDDDDEEEEFFFF0123456789ABCDEF", true},
		{"AAAA BBBB CCCC DDDD EEEE FFFF 0123 4567 89AB CDEF", true},
		{"ABCDEF", false}, // too short to be a key ID
		{"FEDCBA9876543210", false},
	} {
		if got := issuedBy(ids, fprs, []string{tc.key}); got != tc.want {
			t.Errorf("%s: %v", tc.key, got)
		}
	}
	// A signature that records only the issuer key ID matches a full
	// fingerprint ending in it.
	if !issuedBy(ids, nil, []string{"AAAABBBBCCCCDDDDEEEEFFFF0123456789ABCDEF"}) {
		t.Error("fingerprint against key ID")
	}
}
