package sign

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/strata-os/strata/repo"
)

// Reasons an OpenPGP signature is not accepted. Each is wrapped, together
// with ErrBadSignature, by the error of a verification whose last
// signature failed for that reason (OSTree reports the last signature's
// reason too).
var (
	ErrKeyMissing       = errors.New("public key not found")
	ErrKeyExpired       = errors.New("key expired")
	ErrKeyRevoked       = errors.New("key revoked")
	ErrSignatureExpired = errors.New("signature expired")
)

// GPGVerifier checks OpenPGP signatures (OSTree's "ostree.gpgsigs": each
// entry a binary detached signature of the commit object or summary) with
// a set of trusted public keys, the way OSTree does with gpgme: a
// signature counts when it verifies with a trusted key that is neither
// expired nor revoked at the time of verification and the signature
// itself has not expired. No web of trust is involved: every key in the
// keyrings is trusted.
//
// Add keys with the Add* methods (or build one with LoadGPGVerifier), then
// call Verify; a GPGVerifier is safe for concurrent Verify calls once its
// keys are loaded.
type GPGVerifier struct {
	// Now is the time at which expiry and revocation are judged; nil
	// means time.Now.
	Now func() time.Time

	ring    keyringSet
	sources []string

	once     sync.Once
	entities openpgp.EntityList
}

// NewGPGVerifier returns a verifier with no trusted keys.
func NewGPGVerifier() *GPGVerifier { return &GPGVerifier{} }

// AddKeyring trusts the keys in data: one or more OpenPGP public (or
// secret) keys, binary (a keyring file such as $remote.trustedkeys.gpg or
// `gpg --export` output) or ASCII-armored. Keys seen twice are merged, as
// gpg merges keyrings, so a revocation in one keyring revokes the key from
// another. source names data in errors.
func (v *GPGVerifier) AddKeyring(data []byte, source string) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil // an empty keyring, as `remote add` may leave
	}
	_, _, lone, err := v.ring.add(data)
	if err != nil {
		return fmt.Errorf("gpg keyring %s: %w", source, err)
	}
	if _, err := v.ring.revoke(lone); err != nil {
		return fmt.Errorf("gpg keyring %s: %w", source, err)
	}
	v.sources = append(v.sources, source)
	v.once = sync.Once{}
	return nil
}

// AddKeyringFile trusts the keys in the file at path. A file that does not
// exist is skipped, as OSTree skips missing keyrings.
func (v *GPGVerifier) AddKeyringFile(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gpg keyring: %w", err)
	}
	return v.AddKeyring(data, path)
}

// AddKeyringDir trusts the keys in dir's regular files named *.gpg, except
// trustdb.gpg and secring.gpg, in name order: OSTree's rule for keyring
// directories (the global trusted.gpg.d and --gpg-homedir of verifying
// commands). A missing directory is an error.
func (v *GPGVerifier) AddKeyringDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("gpg keyring directory: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(n, ".gpg") || n == "trustdb.gpg" || n == "secring.gpg" {
			continue
		}
		if err := v.AddKeyringFile(filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// AddKeyPath trusts the keys named by one entry of a remote's gpgkeypath
// option: every regular file directly in it when path is a directory, else
// the file itself (ASCII-armored or binary keys).
func (v *GPGVerifier) AddKeyPath(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("gpgkeypath: %w", err)
	}
	if !st.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("gpgkeypath: %w", err)
		}
		return v.AddKeyring(data, path)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("gpgkeypath: %w", err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			f := filepath.Join(path, e.Name())
			data, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("gpgkeypath: %w", err)
			}
			if err := v.AddKeyring(data, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// NumKeys returns the number of trusted primary keys.
func (v *GPGVerifier) NumKeys() int { return len(v.ring.blocks) }

// Fingerprints returns the trusted primary keys' fingerprints (upper-case
// hex, as gpg prints them).
func (v *GPGVerifier) Fingerprints() []string {
	var out []string
	for _, b := range v.ring.blocks {
		out = append(out, strings.ToUpper(hex.EncodeToString(b.fpr)))
	}
	return out
}

func (v *GPGVerifier) keys() openpgp.EntityList {
	v.once.Do(func() {
		// Keys go-crypto cannot use (unknown algorithms, broken
		// self-signatures) are skipped, as gpg skips them.
		v.entities, _ = openpgp.ReadKeyRing(bytes.NewReader(v.ring.bytes()))
	})
	return v.entities
}

func (v *GPGVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// MetaKey implements Verifier.
func (*GPGVerifier) MetaKey() string { return GPGKey }

// GPGSignature describes one checked OpenPGP signature.
type GPGSignature struct {
	// KeyID is the signing key's 16-digit ID (upper-case hex), a subkey's
	// when a subkey signed.
	KeyID string
	// Fingerprint is the signing key's fingerprint and
	// PrimaryFingerprint its primary key's; both are empty when the key
	// is not trusted.
	Fingerprint, PrimaryFingerprint string
	// UserID is the primary user ID of the signing key ("Name <email>").
	UserID    string
	Algorithm string
	Created   time.Time
	// Err is nil for a valid signature; otherwise it says why it is not:
	// it wraps ErrKeyMissing, ErrKeyExpired, ErrKeyRevoked,
	// ErrSignatureExpired, or ErrBadSignature for any other failure.
	Err error
}

// String describes the signature and its verdict on one line.
func (s GPGSignature) String() string {
	if s.Err == nil {
		return s.describe() + ": good"
	}
	return fmt.Sprintf("%s: %v", s.describe(), s.Err)
}

func (s GPGSignature) describe() string {
	var b strings.Builder
	b.WriteString("signature")
	if !s.Created.IsZero() {
		fmt.Fprintf(&b, " made %s", s.Created.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	if s.Algorithm != "" {
		fmt.Fprintf(&b, " using %s", s.Algorithm)
	}
	if s.KeyID != "" {
		fmt.Fprintf(&b, " key ID %s", s.KeyID)
	}
	if s.UserID != "" {
		fmt.Fprintf(&b, " %q", s.UserID)
	}
	if s.PrimaryFingerprint != "" {
		fmt.Fprintf(&b, " (primary key fingerprint %s)", s.PrimaryFingerprint)
	}
	return b.String()
}

// Verify implements Verifier: at least one of sigs must be a valid
// signature of data by a trusted key. On success it returns a line naming
// the signing key (ID, user ID, primary key fingerprint). Otherwise the
// error describes every signature and wraps ErrBadSignature and the
// reason of the last one (ErrKeyMissing, ErrKeyExpired, ErrKeyRevoked,
// ErrSignatureExpired), or ErrNoSignature when sigs is empty.
func (v *GPGVerifier) Verify(data []byte, sigs [][]byte) (string, error) {
	good, _, err := v.VerifySignatures(data, sigs)
	if err != nil {
		return "", err
	}
	return "gpg: Good " + good.describe(), nil
}

// VerifySignatures checks every signature in sigs (each entry one or more
// binary OpenPGP signature packets) and returns the first valid one and
// the description of all of them. It fails as Verify does when none is
// valid.
func (v *GPGVerifier) VerifySignatures(data []byte, sigs [][]byte) (good GPGSignature, all []GPGSignature, err error) {
	var pkts []rawPacket
	for i, s := range sigs {
		ps, err := splitPackets(s)
		if err != nil {
			all = append(all, GPGSignature{Err: badSig("entry %d is not OpenPGP signature data (%s)", i, strings.TrimPrefix(err.Error(), repo.ErrInvalid.Error()+": "))})
			continue
		}
		pkts = append(pkts, ps...)
	}
	if len(pkts) == 0 && len(all) == 0 {
		return GPGSignature{}, nil, fmt.Errorf("gpg: %w", ErrNoSignature)
	}
	found := -1
	for _, p := range pkts {
		r := v.check(data, p)
		if r.Err == nil && found < 0 {
			found = len(all)
		}
		all = append(all, r)
	}
	if found >= 0 {
		return all[found], all, nil
	}
	descs := make([]string, len(all))
	for i, s := range all {
		descs[len(all)-1-i] = s.String()
	}
	msg := "gpg: " + ErrBadSignature.Error() + ": " + strings.Join(descs, "; ")
	last := all[len(all)-1].Err
	for _, reason := range []error{ErrKeyMissing, ErrKeyRevoked, ErrKeyExpired, ErrSignatureExpired} {
		if errors.Is(last, reason) {
			return GPGSignature{}, all, &gpgError{msg, []error{ErrBadSignature, reason}}
		}
	}
	return GPGSignature{}, all, &gpgError{msg, []error{ErrBadSignature}}
}

// gpgError is a failed verification: its message describes every
// signature and it wraps ErrBadSignature and the last signature's reason.
type gpgError struct {
	msg     string
	reasons []error
}

func (e *gpgError) Error() string   { return e.msg }
func (e *gpgError) Unwrap() []error { return e.reasons }

// badSig returns an error wrapping ErrBadSignature with a message of its
// own.
func badSig(format string, args ...any) error {
	return &gpgError{fmt.Sprintf(format, args...), []error{ErrBadSignature}}
}

// check verifies one signature packet.
func (v *GPGVerifier) check(data []byte, p rawPacket) GPGSignature {
	var res GPGSignature
	if p.tag != tagSignature {
		res.Err = badSig("OpenPGP packet of tag %d is not a signature", p.tag)
		return res
	}
	pp, err := packet.Read(bytes.NewReader(p.raw))
	if err != nil {
		res.Err = badSig("unreadable signature (%v)", err)
		return res
	}
	sig, ok := pp.(*packet.Signature)
	if !ok {
		res.Err = badSig("unreadable signature")
		return res
	}
	res.Created = sig.CreationTime
	res.Algorithm = algoName(sig.PubKeyAlgo)
	switch {
	case sig.IssuerKeyId != nil:
		res.KeyID = fmt.Sprintf("%016X", *sig.IssuerKeyId)
	case len(sig.IssuerFingerprint) >= 8:
		res.KeyID = strings.ToUpper(hex.EncodeToString(sig.IssuerFingerprint[len(sig.IssuerFingerprint)-8:]))
	}
	if sig.SigType != packet.SigTypeBinary {
		// OSTree signs binary data; a text signature (canonical line
		// endings) is not a signature of the object's bytes.
		res.Err = badSig("signature of type %#x, want binary (0x00)", uint8(sig.SigType))
		return res
	}
	cfg := &packet.Config{Time: v.now}
	keys := v.keys()
	_, signer, err := openpgp.VerifyDetachedSignature(keys, bytes.NewReader(data), bytes.NewReader(p.raw), cfg)
	if signer == nil && sig.IssuerKeyId != nil {
		// A bad signature: still name the key it claims.
		if ks := keys.KeysById(*sig.IssuerKeyId); len(ks) > 0 {
			signer = ks[0].Entity
		}
	}
	if signer != nil {
		res.PrimaryFingerprint = strings.ToUpper(hex.EncodeToString(signer.PrimaryKey.Fingerprint))
		res.Fingerprint = res.PrimaryFingerprint
		if sig.IssuerKeyId != nil {
			for _, k := range keys.KeysById(*sig.IssuerKeyId) {
				if k.Entity == signer {
					res.Fingerprint = strings.ToUpper(hex.EncodeToString(k.PublicKey.Fingerprint))
				}
			}
		}
		if id := signer.PrimaryIdentity(); id != nil {
			res.UserID = id.Name
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		where := "not in the trusted keyrings"
		switch {
		case v.NumKeys() == 0:
			where = "no trusted keys are configured"
		case signer != nil:
			where = "the key is trusted but not marked for signing"
		}
		res.Err = fmt.Errorf("%w (%s)", ErrKeyMissing, where)
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		res.Err = ErrKeyRevoked
	case errors.Is(err, pgperrors.ErrKeyExpired):
		res.Err = ErrKeyExpired
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		res.Err = ErrSignatureExpired
	default:
		res.Err = badSig("BAD signature (%v)", err)
	}
	return res
}

func algoName(a packet.PublicKeyAlgorithm) string {
	switch a {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		return "RSA"
	case packet.PubKeyAlgoDSA:
		return "DSA"
	case packet.PubKeyAlgoECDSA:
		return "ECDSA"
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoEd25519:
		return "EdDSA"
	case packet.PubKeyAlgoEd448:
		return "Ed448"
	}
	return fmt.Sprintf("algorithm %d", a)
}

// DefaultGPGKeyringDir is the global keyring directory OSTree reads when a
// remote has no keyring of its own: $OSTREE_GPG_HOME when set, else
// /usr/share/ostree/trusted.gpg.d (ostree's $datadir/ostree/trusted.gpg.d).
func DefaultGPGKeyringDir() string {
	if d := os.Getenv("OSTREE_GPG_HOME"); d != "" {
		return d
	}
	return "/usr/share/ostree/trusted.gpg.d"
}

// GPGKeyrings says where the trusted keys for a verification are, with
// OSTree's rules (ostree-repo.c, _ostree_repo_gpg_prepare_verifier).
type GPGKeyrings struct {
	// RepoPath is the repository directory.
	RepoPath string
	// Remote is the remote whose keys are trusted: the keyring
	// $RepoPath/$Remote.trustedkeys.gpg, else
	// $RemotesDir/$Remote.trustedkeys.gpg, and the files in KeyPaths.
	// Empty means every *.gpg keyring in RepoPath (OSTree's check of a
	// commit already pulled, e.g. `ostree show`).
	Remote string
	// RemotesDir is the remotes.d directory the remote's config comes
	// from (/etc/ostree/remotes.d for the system repository), or "".
	RemotesDir string
	// KeyPaths is the remote's gpgkeypath option, split on ';' and ','.
	KeyPaths []string
	// GlobalDir is the global keyring directory, read (as OSTree does)
	// only when the remote has no keyring file of its own or Remote is
	// empty. "" means DefaultGPGKeyringDir(); "-" disables it.
	GlobalDir string
	// KeyringDir is an extra keyring directory to read (the
	// --gpg-homedir of OSTree's verifying commands), or "".
	KeyringDir string
}

// LoadGPGVerifier builds a verifier from the keyrings k names.
func LoadGPGVerifier(k GPGKeyrings) (*GPGVerifier, error) {
	v := NewGPGVerifier()
	global := true
	if k.Remote == "" {
		if k.RepoPath != "" {
			if err := v.AddKeyringDir(k.RepoPath); err != nil {
				return nil, err
			}
		}
	} else {
		for _, dir := range []string{k.RepoPath, k.RemotesDir} {
			if dir == "" {
				continue
			}
			p := RemoteKeyringPath(dir, k.Remote)
			data, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("remote %s: gpg keyring: %w", k.Remote, err)
			}
			if err := v.AddKeyring(data, p); err != nil {
				return nil, fmt.Errorf("remote %s: %w", k.Remote, err)
			}
			global = false
			break
		}
		for _, p := range k.KeyPaths {
			if err := v.AddKeyPath(p); err != nil {
				return nil, fmt.Errorf("remote %s: %w", k.Remote, err)
			}
		}
	}
	if global && k.GlobalDir != "-" {
		dir := k.GlobalDir
		if dir == "" {
			dir = DefaultGPGKeyringDir()
		}
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			if err := v.AddKeyringDir(dir); err != nil {
				return nil, err
			}
		}
	}
	if k.KeyringDir != "" {
		if err := v.AddKeyringDir(k.KeyringDir); err != nil {
			return nil, err
		}
	}
	return v, nil
}
