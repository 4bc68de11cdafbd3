package sign

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// RFC 8032 test vector 1 (empty message), in OSTree's key encoding:
// libsodium's secret key is seed || public key.
const (
	rfcSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfcPub  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	rfcSig  = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestEd25519Vector(t *testing.T) {
	sk, err := ParseEd25519Secret(EncodeEd25519(append(mustHex(rfcSeed), mustHex(rfcPub)...)))
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := Ed25519Signer{Key: sk}.Sign(context.Background(), nil)
	if hex.EncodeToString(sig) != rfcSig {
		t.Fatalf("signature %x", sig)
	}
	pk, err := ParseEd25519Public(EncodeEd25519(mustHex(rfcPub)))
	if err != nil {
		t.Fatal(err)
	}
	v := &Ed25519Verifier{Keys: []ed25519.PublicKey{pk}}
	msg, err := v.Verify(nil, [][]byte{sig})
	if err != nil || !strings.Contains(msg, rfcPub) {
		t.Fatalf("verify: %q %v", msg, err)
	}
	// A secret key whose public half does not match its seed is refused.
	bad := append(mustHex(rfcSeed), make([]byte, 32)...)
	if _, err := ParseEd25519Secret(EncodeEd25519(bad)); !errors.Is(err, repo.ErrInvalid) {
		t.Errorf("mismatched secret key: %v", err)
	}
	for _, s := range []string{"", "AAAA", "!!!", EncodeEd25519(make([]byte, 31))} {
		if _, err := ParseEd25519Public(s); err == nil {
			t.Errorf("public key %q accepted", s)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	pub2, priv2, _ := ed25519.GenerateKey(nil)
	data := []byte("commit bytes")
	good, _ := Ed25519Signer{Key: priv}.Sign(context.Background(), data)
	other, _ := Ed25519Signer{Key: priv2}.Sign(context.Background(), data)
	v := &Ed25519Verifier{Keys: []ed25519.PublicKey{pub}}
	if _, err := v.Verify(data, [][]byte{good}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(data, [][]byte{other}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := v.Verify(append(data, '!'), [][]byte{good}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered data: %v", err)
	}
	if _, err := v.Verify(data, [][]byte{good[:63]}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("short signature: %v", err)
	}
	// One good signature among bad ones is enough.
	if _, err := v.Verify(data, [][]byte{other, good}); err != nil {
		t.Errorf("good among bad: %v", err)
	}
	// A revoked key does not count.
	rv := &Ed25519Verifier{Keys: []ed25519.PublicKey{pub, pub2}, Revoked: []ed25519.PublicKey{pub}}
	if _, err := rv.Verify(data, [][]byte{good}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("revoked key: %v", err)
	}
	md := WithSignatures(nil, Ed25519Key, [][]byte{good})
	if _, err := VerifyAny(data, nil, []Verifier{v}); !errors.Is(err, ErrNoSignature) {
		t.Errorf("unsigned: %v", err)
	}
	if _, err := VerifyAny(data, md, []Verifier{v}); err != nil {
		t.Errorf("signed: %v", err)
	}
}

func TestKeyFilesAndDirs(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	pub2, _, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "trusted.ed25519.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "trusted.ed25519"), []byte("garbage\n"+EncodeEd25519(pub)+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "trusted.ed25519.d", "b"), []byte(EncodeEd25519(pub2)+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "revoked.ed25519"), []byte(EncodeEd25519(pub2)+"\n"), 0o644)
	v, err := LoadEd25519KeyDirs([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Keys) != 2 || len(v.Revoked) != 1 {
		t.Fatalf("keys %d revoked %d", len(v.Keys), len(v.Revoked))
	}
	if _, err := LoadEd25519KeyDirs([]string{t.TempDir()}); err == nil {
		t.Error("empty dir gave keys")
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("nope\n"), 0o644)
	if _, err := ReadEd25519Keys(empty, false); err == nil {
		t.Error("file without keys accepted")
	}
}

func TestSignCommit(t *testing.T) {
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeArchive, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	os.WriteFile(filepath.Join(tree, "f"), []byte("x"), 0o644)
	ctx := context.Background()
	txn, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := commit.NewMTree(nil)
	if err := commit.AddDir(ctx, txn, m, tree, commit.Filter{}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := commit.Write(ctx, txn, m, commit.Options{Branch: "main", Subject: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, priv2, _ := ed25519.GenerateKey(nil)
	v := []Verifier{&Ed25519Verifier{Keys: []ed25519.PublicKey{pub}}}
	if _, err := VerifyCommit(r, res.Checksum, v); !errors.Is(err, ErrNoSignature) {
		t.Fatalf("unsigned commit: %v", err)
	}
	if err := SignCommit(ctx, r, res.Checksum, Ed25519Signer{Key: priv2}); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyCommit(r, res.Checksum, v); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signed by another key: %v", err)
	}
	if err := SignCommit(ctx, r, res.Checksum, Ed25519Signer{Key: priv}); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyCommit(r, res.Checksum, v); err != nil {
		t.Fatal(err)
	}
	md, _ := r.ReadCommitMeta(res.Checksum)
	sigs, _ := Signatures(md, Ed25519Key)
	if len(sigs) != 2 {
		t.Fatalf("%d signatures, want 2", len(sigs))
	}
	// The commitmeta is an a{sv} with the aay under ostree.sign.ed25519.
	raw, err := r.ReadMetadata(objects.KindCommitMeta, res.Checksum)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "ostree.sign.ed25519\x00") || !strings.Contains(string(raw), "\x00aay") {
		t.Errorf("commitmeta layout: %q", raw)
	}
}
