// Package sign makes and checks the signatures OSTree stores beside commits
// (in the commit's detached metadata, the commitmeta object) and beside the
// summary (summary.sig): ed25519 under "ostree.sign.ed25519" and OpenPGP
// under "ostree.gpgsigs", each an array of signatures (aay) over the exact
// bytes of the commit object or summary file.
package sign

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// Metadata keys of the signature kinds.
const (
	Ed25519Key = "ostree.sign.ed25519"
	GPGKey     = "ostree.gpgsigs"
)

// ErrNoSignature is wrapped when metadata holds no signature of the kind a
// verifier checks.
var ErrNoSignature = errors.New("no signatures found")

// ErrBadSignature is wrapped when signatures exist but none verifies with a
// trusted key.
var ErrBadSignature = errors.New("signature verification failed")

var aayType = gvariant.MustParseType("aay")

// Signer makes detached signatures of one kind.
type Signer interface {
	// MetaKey is the metadata key the signatures are stored under.
	MetaKey() string
	// Sign returns a signature of data.
	Sign(ctx context.Context, data []byte) ([]byte, error)
}

// Verifier checks signatures of one kind.
type Verifier interface {
	// MetaKey is the metadata key the verifier reads.
	MetaKey() string
	// Verify checks that at least one signature in sigs is a valid
	// signature of data by a trusted key, and returns a one-line
	// description of it. Errors wrap ErrBadSignature (or ErrNoSignature
	// when sigs is empty).
	Verify(data []byte, sigs [][]byte) (string, error)
}

// Signatures returns the signatures stored under key; an entry of another
// type is an error wrapping repo.ErrCorrupt.
func Signatures(md objects.Metadata, key string) ([][]byte, error) {
	v, ok := md.Get(key)
	if !ok {
		return nil, nil
	}
	if v.Type.String() != "aay" {
		return nil, fmt.Errorf("%w: %s has type %s, want aay", repo.ErrCorrupt, key, v.Type)
	}
	var out [][]byte
	for _, s := range v.Value.([]any) {
		out = append(out, s.([]byte))
	}
	return out, nil
}

// WithSignatures returns md with key's signatures replaced by sigs (the key
// removed when sigs is empty).
func WithSignatures(md objects.Metadata, key string, sigs [][]byte) objects.Metadata {
	out := append(objects.Metadata(nil), md...)
	if len(sigs) == 0 {
		out.Delete(key)
		return out
	}
	items := make([]any, len(sigs))
	for i, s := range sigs {
		items[i] = s
	}
	out.Set(key, gvariant.Variant{Type: aayType, Value: items})
	return out
}

// Append returns md with sig added to key's signatures, as `ostree sign`
// adds one.
func Append(md objects.Metadata, key string, sig []byte) (objects.Metadata, error) {
	sigs, err := Signatures(md, key)
	if err != nil {
		return nil, err
	}
	return WithSignatures(md, key, append(sigs, sig)), nil
}

// VerifyAny checks md's signatures of data with each verifier in turn and
// succeeds on the first valid signature, as OSTree does with its
// configured verifiers. It fails with ErrNoSignature when md has no
// signature of any verifier's kind.
func VerifyAny(data []byte, md objects.Metadata, vs []Verifier) (string, error) {
	var last error
	found := false
	for _, v := range vs {
		sigs, err := Signatures(md, v.MetaKey())
		if err != nil {
			return "", err
		}
		if len(sigs) == 0 {
			continue
		}
		found = true
		msg, err := v.Verify(data, sigs)
		if err == nil {
			return msg, nil
		}
		last = err
	}
	if !found {
		return "", ErrNoSignature
	}
	return "", last
}

// SignCommit adds a signature of commit c to its detached metadata.
func SignCommit(ctx context.Context, r *repo.Repo, c objects.Checksum, s Signer) error {
	return signCommit(ctx, r, c, s.Sign, s.MetaKey(), nil)
}

// signCommit signs commit c with sign and appends the signature under
// key to its detached metadata, unless check (when not nil) refuses the
// metadata the commit has.
func signCommit(ctx context.Context, r *repo.Repo, c objects.Checksum, sign func(context.Context, []byte) ([]byte, error), key string, check func(objects.Metadata) error) error {
	data, err := r.ReadMetadata(objects.KindCommit, c)
	if err != nil {
		return err
	}
	sig, err := sign(ctx, data)
	if err != nil {
		return fmt.Errorf("sign commit %s: %w", c, err)
	}
	return UpdateCommitMeta(ctx, r, c, func(md objects.Metadata) (objects.Metadata, error) {
		if check != nil {
			if err := check(md); err != nil {
				return nil, err
			}
		}
		return Append(md, key, sig)
	})
}

// UpdateCommitMeta rewrites commit c's detached metadata with fn.
func UpdateCommitMeta(ctx context.Context, r *repo.Repo, c objects.Checksum, fn func(objects.Metadata) (objects.Metadata, error)) error {
	t, err := r.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.Abort()
	md, err := r.ReadCommitMeta(c)
	if err != nil {
		return err
	}
	md, err = fn(md)
	if err != nil {
		return err
	}
	if err := t.WriteCommitMeta(c, md); err != nil {
		return err
	}
	return t.Commit()
}

// VerifyCommit checks commit c's detached signatures with vs.
func VerifyCommit(r *repo.Repo, c objects.Checksum, vs []Verifier) (string, error) {
	data, err := r.ReadMetadata(objects.KindCommit, c)
	if err != nil {
		return "", err
	}
	md, err := r.ReadCommitMeta(c)
	if err != nil {
		return "", err
	}
	msg, err := VerifyAny(data, md, vs)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", c, err)
	}
	return msg, nil
}
