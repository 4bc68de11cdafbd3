package sign

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// GPGSigner makes OpenPGP signatures as OSTree stores them under
// "ostree.gpgsigs": binary detached signatures (SHA-512) of the signed
// bytes, by one secret key.
type GPGSigner struct {
	// Now is the signature time; nil means time.Now.
	Now func() time.Time

	entity *openpgp.Entity
	sub    uint64 // the subkey asked for by ID, or 0 for the best signing key
}

// secretKeyExts name the files of a gpg home directory that may hold
// secret keys in a form strata reads (see NewGPGSigner).
var secretKeyExts = []string{".asc", ".key", ".sec", ".pgp"}

// NewGPGSignerFromKeyring returns a signer for the secret key keyID (an 8-
// or 16-digit key ID or a fingerprint of a primary key or subkey, or a
// user ID's name or email) found in data: binary or ASCII-armored
// OpenPGP secret keys (`gpg --export-secret-keys [-a]`, secring.gpg). The
// key must not be passphrase-protected.
func NewGPGSignerFromKeyring(data []byte, keyID string) (*GPGSigner, error) {
	bodies, err := dearmor(data)
	if err != nil {
		return nil, err
	}
	var protected bool
	for _, body := range bodies {
		el, err := openpgp.ReadKeyRing(bytes.NewReader(body))
		if err != nil {
			continue
		}
		for _, e := range el {
			sub, ok := matchEntity(e, keyID)
			if !ok || e.PrivateKey == nil {
				continue
			}
			s := &GPGSigner{entity: e, sub: sub}
			k, ok := e.SigningKeyById(time.Now(), sub)
			if !ok || k.PrivateKey == nil || k.PrivateKey.Dummy() {
				continue
			}
			if k.PrivateKey.Encrypted {
				protected = true
				continue
			}
			return s, nil
		}
	}
	if protected {
		return nil, fmt.Errorf("%w: gpg key %s is passphrase-protected; strata signs only with unprotected keys", repo.ErrInvalid, keyID)
	}
	return nil, fmt.Errorf("%w: no usable secret signing key %s", repo.ErrNotFound, keyID)
}

// matchEntity reports whether id names e (its primary key, a subkey, or
// a user ID) and returns the subkey's ID when it names a subkey.
func matchEntity(e *openpgp.Entity, id string) (uint64, bool) {
	hexID := strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(strings.ReplaceAll(id, " ", ""), "0x"), "0X"))
	if _, err := hex.DecodeString(hexID); err == nil && len(hexID) >= 8 {
		has := func(fpr []byte) bool {
			return strings.HasSuffix(strings.ToUpper(hex.EncodeToString(fpr)), hexID)
		}
		if has(e.PrimaryKey.Fingerprint) {
			return 0, true
		}
		for _, sk := range e.Subkeys {
			if has(sk.PublicKey.Fingerprint) {
				return sk.PublicKey.KeyId, true
			}
		}
		return 0, false
	}
	want := strings.ToLower(strings.Trim(id, "<>"))
	for name, ident := range e.Identities {
		if strings.Contains(strings.ToLower(name), want) || ident.UserId != nil && strings.EqualFold(ident.UserId.Email, want) {
			return 0, true
		}
	}
	return 0, false
}

// DefaultGPGHome returns gpg's home directory: $GNUPGHOME, else ~/.gnupg.
func DefaultGPGHome() string {
	if d := os.Getenv("GNUPGHOME"); d != "" {
		return d
	}
	h, _ := os.UserHomeDir()
	return filepath.Join(h, ".gnupg")
}

// NewGPGSigner finds the secret key keyID for signing, as `ostree commit
// --gpg-sign=KEYID --gpg-homedir=HOMEDIR` does. HOMEDIR ("" means
// DefaultGPGHome) is searched for secret keys strata can read itself:
// secring.gpg (GnuPG 1.x and 2.0) and exported key files named *.asc,
// *.key, *.sec or *.pgp; HOMEDIR may also be such a file. GnuPG 2.1 and
// later keep secret keys in private-keys-v1.d, a format strata does not
// read: for those, when a `gpg` program is on $PATH, strata runs
// `gpg --homedir HOMEDIR --batch --export-secret-keys KEYID` and uses its
// output. Passphrase-protected keys are not supported.
func NewGPGSigner(ctx context.Context, keyID, homedir string) (*GPGSigner, error) {
	if keyID == "" {
		return nil, fmt.Errorf("%w: empty gpg key ID", repo.ErrInvalid)
	}
	if homedir == "" {
		homedir = DefaultGPGHome()
	}
	st, err := os.Stat(homedir)
	if err != nil {
		return nil, fmt.Errorf("gpg home directory: %w", err)
	}
	var files []string
	if st.IsDir() {
		files = append(files, filepath.Join(homedir, "secring.gpg"))
		ents, _ := os.ReadDir(homedir)
		for _, e := range ents {
			for _, ext := range secretKeyExts {
				if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ext) {
					files = append(files, filepath.Join(homedir, e.Name()))
				}
			}
		}
	} else {
		files = append(files, homedir)
	}
	var firstErr error
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s, err := NewGPGSignerFromKeyring(data, keyID)
		if err == nil {
			return s, nil
		}
		if firstErr == nil && !errors.Is(err, repo.ErrNotFound) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, fmt.Errorf("gpg key %s in %s: %w", keyID, homedir, firstErr)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("gpg key %s: %w: no usable secret key in %s", keyID, repo.ErrNotFound, homedir)
	}
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		return nil, fmt.Errorf("gpg key %s: %w: no secret key strata can read in %s (secring.gpg or an exported *.asc/*.key/*.sec/*.pgp file), and no gpg program to export it from private-keys-v1.d", keyID, repo.ErrNotFound, homedir)
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, gpg, "--homedir", homedir, "--batch", "--no-tty",
		"--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys", keyID)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gpg key %s: `gpg --homedir %s --export-secret-keys` failed (%v): %s", keyID, homedir, err, strings.TrimSpace(stderr.String()))
	}
	if out.Len() == 0 {
		return nil, fmt.Errorf("gpg key %s: %w: no such secret key in %s", keyID, repo.ErrNotFound, homedir)
	}
	s, err := NewGPGSignerFromKeyring(out.Bytes(), keyID)
	if err != nil {
		return nil, fmt.Errorf("gpg key %s in %s: %w", keyID, homedir, err)
	}
	return s, nil
}

func (s *GPGSigner) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// MetaKey implements Signer.
func (*GPGSigner) MetaKey() string { return GPGKey }

// Fingerprint returns the signing key's primary fingerprint (upper-case
// hex).
func (s *GPGSigner) Fingerprint() string {
	return strings.ToUpper(hex.EncodeToString(s.entity.PrimaryKey.Fingerprint))
}

// KeyID returns the 16-digit ID of the key that signs (a subkey's when the
// key has a signing subkey).
func (s *GPGSigner) KeyID() string {
	if k, ok := s.entity.SigningKeyById(s.now(), s.sub); ok {
		return fmt.Sprintf("%016X", k.PublicKey.KeyId)
	}
	return fmt.Sprintf("%016X", s.entity.PrimaryKey.KeyId)
}

// PublicKey returns the signer's public key in binary form, for a keyring.
func (s *GPGSigner) PublicKey() ([]byte, error) {
	var b bytes.Buffer
	if err := s.entity.Serialize(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Sign implements Signer: a binary detached signature of data.
func (s *GPGSigner) Sign(ctx context.Context, data []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg := &packet.Config{DefaultHash: crypto.SHA512, Time: s.now, SigningKeyId: s.sub}
	var b bytes.Buffer
	if err := openpgp.DetachSign(&b, s.entity, bytes.NewReader(data), cfg); err != nil {
		return nil, fmt.Errorf("gpg key %s: %w", s.Fingerprint(), err)
	}
	return b.Bytes(), nil
}

// keyIDs returns the IDs of the signer's keys: the
// primary key and its subkeys.
func (s *GPGSigner) keyIDs() []uint64 {
	ids := []uint64{s.entity.PrimaryKey.KeyId}
	for _, sk := range s.entity.Subkeys {
		ids = append(ids, sk.PublicKey.KeyId)
	}
	return ids
}

// gpgIssuers returns the issuer key IDs (upper-case hex, 16 digits) and
// fingerprints (when the signature records one) of the signature packets
// in sig.
func gpgIssuers(sig []byte) (ids, fprs []string) {
	pkts, err := splitPackets(sig)
	if err != nil {
		return nil, nil
	}
	for _, p := range pkts {
		pp, err := packet.Read(bytes.NewReader(p.raw))
		if err != nil {
			continue
		}
		s, ok := pp.(*packet.Signature)
		if !ok {
			continue
		}
		if s.IssuerKeyId != nil {
			ids = append(ids, fmt.Sprintf("%016X", *s.IssuerKeyId))
		}
		if len(s.IssuerFingerprint) > 0 {
			fprs = append(fprs, strings.ToUpper(hex.EncodeToString(s.IssuerFingerprint)))
		}
	}
	return ids, fprs
}

// GPGSignCommit adds s's signature to commit c's detached metadata, as
// `ostree gpg-sign` does: a commit that already has a signature by the
// same key (its primary key or a subkey) is left alone and the error
// wraps repo.ErrExists.
func GPGSignCommit(ctx context.Context, r *repo.Repo, c objects.Checksum, s *GPGSigner) error {
	return signCommit(ctx, r, c, s.Sign, GPGKey, func(md objects.Metadata) error {
		sigs, err := Signatures(md, GPGKey)
		if err != nil {
			return err
		}
		for _, old := range sigs {
			ids, _ := gpgIssuers(old)
			for _, id := range ids {
				for _, mine := range s.keyIDs() {
					if id == fmt.Sprintf("%016X", mine) {
						return fmt.Errorf("%w: commit %s is already signed with GPG key %s", repo.ErrExists, c, s.Fingerprint())
					}
				}
			}
		}
		return nil
	})
}

// DeleteGPGSignatures removes the OpenPGP signatures of commit c made by
// any of keyIDs (8- or 16-digit key IDs or fingerprints of the key that
// made the signature: a subkey's when a subkey signed) and returns how
// many it removed, as `ostree gpg-sign --delete` does. Signatures that
// match no key ID stay; no match is not an error.
func DeleteGPGSignatures(ctx context.Context, r *repo.Repo, c objects.Checksum, keyIDs []string) (int, error) {
	n := 0
	err := UpdateCommitMeta(ctx, r, c, func(md objects.Metadata) (objects.Metadata, error) {
		sigs, err := Signatures(md, GPGKey)
		if err != nil {
			return nil, err
		}
		var keep [][]byte
		for _, s := range sigs {
			ids, fprs := gpgIssuers(s)
			if issuedBy(ids, fprs, keyIDs) {
				n++
				continue
			}
			keep = append(keep, s)
		}
		return WithSignatures(md, GPGKey, keep), nil
	})
	return n, err
}

func issuedBy(ids, fprs, keyIDs []string) bool {
	for _, k := range keyIDs {
		k = strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(strings.ReplaceAll(k, " ", ""), "0x"), "0X"))
		if len(k) < 8 {
			continue
		}
		for _, f := range fprs {
			if strings.HasSuffix(f, k) {
				return true
			}
		}
		for _, id := range ids {
			if strings.HasSuffix(id, k) || len(k) > 16 && strings.HasSuffix(k, id) {
				return true
			}
		}
	}
	return false
}
