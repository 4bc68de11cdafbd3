package sign

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/repo"
)

// ParseEd25519Secret parses a secret key as OSTree writes it: base64 of
// libsodium's 64-byte secret key (seed followed by public key).
func ParseEd25519Secret(s string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: incorrect ed25519 secret key (want base64 of %d bytes)", repo.ErrInvalid, ed25519.PrivateKeySize)
	}
	k := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
	if !bytes.Equal(k[32:], b[32:]) {
		return nil, fmt.Errorf("%w: incorrect ed25519 secret key (public half does not match the seed)", repo.ErrInvalid)
	}
	return k, nil
}

// ParseEd25519Public parses a public key: base64 of 32 bytes.
func ParseEd25519Public(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: incorrect ed25519 public key (want base64 of %d bytes)", repo.ErrInvalid, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// EncodeEd25519 returns a key in OSTree's base64 form.
func EncodeEd25519(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// Ed25519Signer signs with one secret key.
type Ed25519Signer struct{ Key ed25519.PrivateKey }

// MetaKey implements Signer.
func (Ed25519Signer) MetaKey() string { return Ed25519Key }

// Sign implements Signer.
func (s Ed25519Signer) Sign(_ context.Context, data []byte) ([]byte, error) {
	return ed25519.Sign(s.Key, data), nil
}

// Ed25519Verifier trusts a set of public keys, minus revoked ones.
type Ed25519Verifier struct {
	Keys    []ed25519.PublicKey
	Revoked []ed25519.PublicKey
}

// MetaKey implements Verifier.
func (*Ed25519Verifier) MetaKey() string { return Ed25519Key }

// Verify implements Verifier.
func (v *Ed25519Verifier) Verify(data []byte, sigs [][]byte) (string, error) {
	if len(sigs) == 0 {
		return "", fmt.Errorf("ed25519: %w", ErrNoSignature)
	}
	if len(v.Keys) == 0 {
		return "", fmt.Errorf("ed25519: %w: no public keys loaded", ErrBadSignature)
	}
	tried := 0
	for _, s := range sigs {
		if len(s) != ed25519.SignatureSize {
			return "", fmt.Errorf("ed25519: %w: invalid signature length of %d bytes, expected %d", ErrBadSignature, len(s), ed25519.SignatureSize)
		}
		for _, k := range v.Keys {
			if v.revoked(k) {
				continue
			}
			tried++
			if ed25519.Verify(k, data, s) {
				return fmt.Sprintf("ed25519: Signature verified successfully with key '%s'", hex.EncodeToString(k)), nil
			}
		}
	}
	return "", fmt.Errorf("ed25519: %w: signature couldn't be verified; tried %d keys", ErrBadSignature, tried)
}

func (v *Ed25519Verifier) revoked(k ed25519.PublicKey) bool {
	for _, r := range v.Revoked {
		if bytes.Equal(r, k) {
			return true
		}
	}
	return false
}

// MaxKeysFileSize bounds an ed25519 keys file (--keys-file, file: in
// verification-ed25519-file, the trusted.ed25519 files): some 180,000
// secret keys.
const MaxKeysFileSize = 16 << 20

// ReadEd25519Keys reads a keys file: one base64 key per line. Lines that
// are not keys of the wanted size (32 for public, 64 for secret) are
// skipped, as OSTree skips them; a file with no valid key is an error.
func ReadEd25519Keys(path string, secret bool) ([][]byte, error) {
	data, err := fsutil.ReadFileLimit(path, MaxKeysFileSize)
	if err != nil {
		return nil, fmt.Errorf("ed25519 keys: %w", err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if secret {
			if k, err := ParseEd25519Secret(line); err == nil {
				out = append(out, k)
			}
		} else if k, err := ParseEd25519Public(line); err == nil {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: ed25519: no valid keys in file %s", repo.ErrInvalid, path)
	}
	return out, nil
}

// SystemKeyDirs are where OSTree looks for trusted.ed25519 and
// revoked.ed25519 (and their .d directories) when a remote configures no
// keys.
var SystemKeyDirs = []string{"/etc/ostree", "/usr/share/ostree"}

// LoadEd25519KeyDirs builds a verifier from basedirs' trusted.ed25519,
// trusted.ed25519.d/*, revoked.ed25519 and revoked.ed25519.d/*. It fails
// when no trusted key is found.
func LoadEd25519KeyDirs(basedirs []string) (*Ed25519Verifier, error) {
	v := &Ed25519Verifier{}
	load := func(name string) [][]byte {
		var keys [][]byte
		for _, d := range basedirs {
			files := []string{filepath.Join(d, name)}
			ents, _ := os.ReadDir(filepath.Join(d, name+".d"))
			var more []string
			for _, e := range ents {
				more = append(more, filepath.Join(d, name+".d", e.Name()))
			}
			sort.Strings(more)
			for _, f := range append(files, more...) {
				if k, err := ReadEd25519Keys(f, false); err == nil {
					keys = append(keys, k...)
				}
			}
		}
		return keys
	}
	for _, k := range load("trusted.ed25519") {
		v.Keys = append(v.Keys, k)
	}
	for _, k := range load("revoked.ed25519") {
		v.Revoked = append(v.Revoked, k)
	}
	if len(v.Keys) == 0 {
		return nil, fmt.Errorf("%w: ed25519: no keys loaded from %s", repo.ErrNotFound, strings.Join(basedirs, ", "))
	}
	return v, nil
}
