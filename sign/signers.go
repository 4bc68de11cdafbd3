package sign

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// SignerSpec names the keys `commit` and `summary -u` sign with: --sign
// (ed25519 secret keys, base64) of type --sign-type, and --gpg-sign key
// IDs found in --gpg-homedir (see NewGPGSigner).
type SignerSpec struct {
	Type       string // "ed25519" (the default when empty)
	Ed25519    []string
	GPGKeyIDs  []string
	GPGHomedir string
}

// Signers returns the signers spec names, ed25519 first; none when it
// names no key.
func Signers(ctx context.Context, spec SignerSpec) ([]Signer, error) {
	var out []Signer
	if len(spec.Ed25519) > 0 && spec.Type != "" && spec.Type != "ed25519" {
		return nil, fmt.Errorf("signature type %q is not implemented (only ed25519)", spec.Type)
	}
	for _, k := range spec.Ed25519 {
		sk, err := ParseEd25519Secret(k)
		if err != nil {
			return nil, err
		}
		out = append(out, Ed25519Signer{Key: sk})
	}
	for _, id := range spec.GPGKeyIDs {
		s, err := NewGPGSigner(ctx, id, spec.GPGHomedir)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// SignData returns the signatures of data by every signer as metadata
// (what summary.sig holds), or nil when there is no signer.
func SignData(ctx context.Context, data []byte, ss []Signer) (objects.Metadata, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	md := objects.Metadata{}
	for _, s := range ss {
		sig, err := s.Sign(ctx, data)
		if err != nil {
			return nil, fmt.Errorf("sign summary: %w", err)
		}
		if md, err = Append(md, s.MetaKey(), sig); err != nil {
			return nil, err
		}
	}
	return md, nil
}

// SignStaged signs commit c, written in transaction t, with every signer
// before t publishes it, so that the commit never appears unsigned.
func SignStaged(ctx context.Context, t *repo.Txn, c objects.Checksum, ss []Signer) error {
	if len(ss) == 0 {
		return nil
	}
	data, err := t.ReadStagedMetadata(objects.KindCommit, c)
	if err != nil {
		return err
	}
	md, err := t.Repo().ReadCommitMeta(c)
	if err != nil {
		return err
	}
	for _, s := range ss {
		sig, err := s.Sign(ctx, data)
		if err != nil {
			return fmt.Errorf("sign commit %s: %w", c, err)
		}
		if md, err = Append(md, s.MetaKey(), sig); err != nil {
			return err
		}
	}
	return t.WriteCommitMeta(c, md)
}

// DeleteEd25519Signatures removes c's ed25519 signatures that verify with
// any of keys (base64 public keys, or secret keys whose public half is
// used). A key that is neither is refused with ErrInvalid.
func DeleteEd25519Signatures(ctx context.Context, r *repo.Repo, c objects.Checksum, keys []string) error {
	if len(keys) == 0 {
		return fmt.Errorf("need at least one KEY whose signatures to delete")
	}
	var pubs []ed25519.PublicKey
	for _, k := range keys {
		if sk, err := ParseEd25519Secret(k); err == nil {
			pubs = append(pubs, sk.Public().(ed25519.PublicKey))
			continue
		}
		pk, err := ParseEd25519Public(k)
		if err != nil {
			return fmt.Errorf("%w: %q is neither an ed25519 secret nor public key", repo.ErrInvalid, k)
		}
		pubs = append(pubs, pk)
	}
	data, err := r.ReadMetadata(objects.KindCommit, c)
	if err != nil {
		return err
	}
	return UpdateCommitMeta(ctx, r, c, func(md objects.Metadata) (objects.Metadata, error) {
		sigs, err := Signatures(md, Ed25519Key)
		if err != nil {
			return nil, err
		}
		var keep [][]byte
		for _, s := range sigs {
			drop := false
			for _, p := range pubs {
				drop = drop || (len(s) == ed25519.SignatureSize && ed25519.Verify(p, data, s))
			}
			if !drop {
				keep = append(keep, s)
			}
		}
		return WithSignatures(md, Ed25519Key, keep), nil
	})
}

// LoadEd25519Verifier returns a verifier trusting the base64 public keys
// and those of keyFile (one per line) or, when both name none, the
// trusted.ed25519 files of keysDir ("" for SystemKeyDirs).
func LoadEd25519Verifier(keys []string, keyFile, keysDir string) (*Ed25519Verifier, error) {
	v := &Ed25519Verifier{}
	for _, k := range keys {
		pk, err := ParseEd25519Public(k)
		if err != nil {
			return nil, err
		}
		v.Keys = append(v.Keys, pk)
	}
	if keyFile != "" {
		ks, err := ReadEd25519Keys(keyFile, false)
		if err != nil {
			return nil, err
		}
		for _, k := range ks {
			v.Keys = append(v.Keys, ed25519.PublicKey(k))
		}
	}
	if len(v.Keys) > 0 {
		return v, nil
	}
	dirs := SystemKeyDirs
	if keysDir != "" {
		dirs = []string{keysDir}
	}
	return LoadEd25519KeyDirs(dirs)
}

// Ed25519Secrets returns the base64 secret keys and those of keyFile.
func Ed25519Secrets(keys []string, keyFile string) ([]ed25519.PrivateKey, error) {
	var secrets []ed25519.PrivateKey
	for _, k := range keys {
		sk, err := ParseEd25519Secret(k)
		if err != nil {
			return nil, err
		}
		secrets = append(secrets, sk)
	}
	if keyFile != "" {
		ks, err := ReadEd25519Keys(keyFile, true)
		if err != nil {
			return nil, err
		}
		for _, k := range ks {
			secrets = append(secrets, ed25519.PrivateKey(k))
		}
	}
	return secrets, nil
}
