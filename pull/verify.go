package pull

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/sign"
)

// Errors a pull is refused with (besides sign.ErrNoSignature and
// sign.ErrBadSignature, and repo.ErrCorrupt for bytes that do not match
// their checksum).
var (
	// ErrBinding: the commit is bound to other refs or another
	// collection than the one it was pulled as.
	ErrBinding = errors.New("commit binding mismatch")
	// ErrDowngrade: under TimestampCheck, the new commit is older than
	// the one the ref points at.
	ErrDowngrade = errors.New("downgrade refused")
)

// Policy is what a pull requires of what it receives. The zero Policy
// checks checksums and ref bindings only.
type Policy struct {
	// GPG, when set, must verify an OpenPGP signature (ostree.gpgsigs) of
	// every commit (OSTree's gpg-verify).
	GPG sign.Verifier
	// Sign, when not empty, must verify a signature of every commit with
	// one of its verifiers (OSTree's sign-verify).
	Sign []sign.Verifier
	// SummaryGPG and SummarySign are the same for the summary file,
	// whose signatures are in summary.sig (gpg-verify-summary,
	// sign-verify-summary). The summary is then required.
	SummaryGPG  sign.Verifier
	SummarySign []sign.Verifier
	// CollectionID is the remote's collection ID: when set, commits must
	// carry a ref binding and a collection binding equal to it.
	CollectionID string
	// DisableBindings skips the ref and collection binding checks.
	DisableBindings bool
}

// verifiesCommits reports whether commits must be signed.
func (p *Policy) verifiesCommits() bool { return p.GPG != nil || len(p.Sign) > 0 }

// verifiesSummary reports whether the summary must be signed.
func (p *Policy) verifiesSummary() bool { return p.SummaryGPG != nil || len(p.SummarySign) > 0 }

// verify checks data's signatures in md: a valid GPG signature when gpg is
// set, and a valid signature of one of the kinds in others when it is not
// empty. It returns the verifiers' one-line descriptions.
func verify(what string, data []byte, md objects.Metadata, gpg sign.Verifier, others []sign.Verifier) ([]string, error) {
	var msgs []string
	if gpg != nil {
		msg, err := sign.VerifyAny(data, md, []sign.Verifier{gpg})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		msgs = append(msgs, msg)
	}
	if len(others) > 0 {
		msg, err := sign.VerifyAny(data, md, others)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// checkBindings verifies a commit's ref and collection bindings as OSTree
// does: the ref binding, when present, must list ref (unless the commit
// was pulled by checksum, ref ""); with a collection ID both bindings are
// required and the collection binding must equal it.
func checkBindings(c objects.Checksum, cm *objects.Commit, ref, collection string) error {
	refs, hasRefs, err := stringList(cm.Metadata, "ostree.ref-binding")
	if err != nil {
		return fmt.Errorf("commit %s: %w", c, err)
	}
	if !hasRefs {
		if collection == "" {
			return nil
		}
		return fmt.Errorf("%w: commit %s: expected commit metadata to have ref binding information, found none", ErrBinding, c)
	}
	if ref != "" {
		found := false
		for _, r := range refs {
			found = found || r == ref
		}
		if !found {
			list := "no refs"
			if len(refs) > 0 {
				list = "'" + strings.Join(refs, "', '") + "'"
			}
			return fmt.Errorf("%w: commit %s has no requested ref '%s' in ref binding metadata (%s)", ErrBinding, c, ref, list)
		}
	}
	if collection != "" {
		got, ok := cm.Metadata.String("ostree.collection-binding")
		if !ok {
			return fmt.Errorf("%w: commit %s: expected commit metadata to have collection ID binding information, found none", ErrBinding, c)
		}
		if got != collection {
			return fmt.Errorf("%w: commit %s has collection ID '%s' in collection binding metadata, while the remote it came from has collection ID '%s'", ErrBinding, c, got, collection)
		}
	}
	return nil
}

// stringList reads an "as" metadata entry.
func stringList(md objects.Metadata, key string) ([]string, bool, error) {
	v, ok := md.Get(key)
	if !ok {
		return nil, false, nil
	}
	if v.Type.String() != "as" {
		return nil, true, fmt.Errorf("%w: metadata %s has type %s, want as", ErrBinding, key, v.Type)
	}
	var out []string
	for _, s := range v.Value.([]any) {
		out = append(out, s.(string))
	}
	return out, true, nil
}

// checkTimestamp refuses a new commit older than the current one, as
// OSTree's --timestamp-check does (equal timestamps pass).
func checkTimestamp(cur objects.Checksum, curTS uint64, next objects.Checksum, nextTS uint64) error {
	if nextTS >= curTS || cur == next {
		return nil
	}
	f := func(ts uint64) string { return time.Unix(int64(ts), 0).UTC().Format(time.RFC3339) }
	return fmt.Errorf("%w: upgrade target revision '%s' with timestamp '%s' is chronologically older than current revision '%s' with timestamp '%s'",
		ErrDowngrade, next, f(nextTS), cur, f(curTS))
}
