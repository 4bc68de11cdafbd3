package pull

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/strata-os/strata/fetch"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/remote"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sign"
)

// OpenSource returns the Source for a remote URL: a LocalSource for file://
// URLs (and plain paths), of any mode, as OSTree imports from them; an
// HTTPSource otherwise. contentURL is the remote's contenturl ("" for
// url). partialDir is where to keep partial downloads (see PartialDir); o
// configures the transport (see FetchOptions).
func OpenSource(rawURL, contentURL, partialDir string, o fetch.Options) (Source, error) {
	if p, ok := localPath(rawURL); ok {
		r, err := repo.Open(p)
		if err != nil {
			return nil, fmt.Errorf("remote repository %s: %w", rawURL, err)
		}
		return NewLocalSource(r), nil
	}
	meta, err := NewFetcher(rawURL, o)
	if err != nil {
		return nil, err
	}
	content := meta
	if contentURL != "" && contentURL != rawURL {
		if content, err = NewFetcher(contentURL, o); err != nil {
			return nil, err
		}
	}
	return NewHTTPSource(meta, content, partialDir), nil
}

func localPath(u string) (string, bool) {
	if strings.HasPrefix(u, "/") {
		return u, true
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "file" {
		return "", false
	}
	return pu.Path, true
}

// PolicyFor builds the verification policy of a remote from its options,
// as OSTree reads them: gpg-verify (default true) and gpg-verify-summary
// with the remote's imported keyring, gpgkeypath and the global keyrings;
// sign-verify and sign-verify-summary ("true" for every signature type,
// with the configured keys or else the system's, or a list of types, each
// needing configured keys: verification-ed25519-key, -file);
// collection-id.
func PolicyFor(cfg *remote.Config, rm *remote.Remote) (Policy, error) {
	return policyFor(cfg, rm, true)
}

// SummaryPolicyFor is PolicyFor for the summary alone (listing a remote's
// refs needs no commit verifier).
func SummaryPolicyFor(cfg *remote.Config, rm *remote.Remote) (Policy, error) {
	return policyFor(cfg, rm, false)
}

func policyFor(cfg *remote.Config, rm *remote.Remote, commits bool) (Policy, error) {
	var p Policy
	p.CollectionID = rm.GetDefault("collection-id", "")
	gpgCommits, err := rm.GPGVerify()
	if err != nil {
		return p, err
	}
	gpgCommits = gpgCommits && commits
	gpgSummary, err := rm.GPGVerifySummary()
	if err != nil {
		return p, err
	}
	if gpgCommits || gpgSummary {
		v, err := gpgVerifier(cfg, rm)
		if err != nil {
			return p, err
		}
		if gpgCommits {
			p.GPG = v
		}
		if gpgSummary {
			p.SummaryGPG = v
		}
	}
	if commits {
		if p.Sign, err = signVerifiers(rm, "sign-verify"); err != nil {
			return p, err
		}
	}
	if p.SummarySign, err = signVerifiers(rm, "sign-verify-summary"); err != nil {
		return p, err
	}
	return p, nil
}

// gpgVerifier loads the OpenPGP keys OSTree trusts for rm: its keyring
// (in the repository, else in remotes.d), its gpgkeypath, and the global
// keyring directory when it has no keyring of its own.
func gpgVerifier(cfg *remote.Config, rm *remote.Remote) (sign.Verifier, error) {
	v, err := sign.LoadGPGVerifier(sign.GPGKeyrings{
		RepoPath:   cfg.Repo().Path(),
		Remote:     rm.Name,
		RemotesDir: cfg.RemotesDir(),
		KeyPaths:   rm.GetList("gpgkeypath"),
	})
	if err != nil {
		return nil, err
	}
	if v.NumKeys() == 0 {
		return nil, fmt.Errorf("remote %s: gpg-verify is on but no GPG keys are trusted for it (import some with remote gpg-import, set gpgkeypath, or put keyrings in %s): %w", rm.Name, sign.DefaultGPGKeyringDir(), sign.ErrBadSignature)
	}
	return v, nil
}

// signVerifiers reads sign-verify or sign-verify-summary.
func signVerifiers(rm *remote.Remote, key string) ([]sign.Verifier, error) {
	raw, ok := rm.Get(key)
	if !ok || raw == "" {
		return nil, nil
	}
	var types []string
	required := true
	switch raw {
	case "true", "1":
		types, required = []string{"ed25519"}, false
	case "false", "0":
		return nil, nil
	default:
		types = rm.GetList(key)
	}
	var out []sign.Verifier
	for _, t := range types {
		if t != "ed25519" {
			return nil, fmt.Errorf("%w: remote %s: %s: signature type %q is not implemented (only ed25519)", repo.ErrInvalid, rm.Name, key, t)
		}
		v, err := ed25519Verifier(rm, required)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// ed25519Verifier loads verification-ed25519-file and -key; with neither,
// it fails when required, and otherwise trusts the system's keys.
func ed25519Verifier(rm *remote.Remote, required bool) (sign.Verifier, error) {
	v := &sign.Ed25519Verifier{}
	file, hasFile := rm.Get("verification-ed25519-file")
	inline, hasInline := rm.Get("verification-ed25519-key")
	if !hasFile && !hasInline {
		if required {
			return nil, fmt.Errorf("%w: remote %s: no keys found for required signapi type ed25519", repo.ErrInvalid, rm.Name)
		}
		sv, err := sign.LoadEd25519KeyDirs(sign.SystemKeyDirs)
		if err != nil {
			return nil, fmt.Errorf("remote %s: %w", rm.Name, err)
		}
		return sv, nil
	}
	if hasFile {
		keys, err := sign.ReadEd25519Keys(file, false)
		if err != nil {
			return nil, fmt.Errorf("remote %s: failed loading ed25519 keys from %s: %w", rm.Name, file, err)
		}
		for _, k := range keys {
			v.Keys = append(v.Keys, ed25519.PublicKey(k))
		}
	}
	if hasInline {
		k, err := sign.ParseEd25519Public(inline)
		if err != nil {
			return nil, fmt.Errorf("remote %s: verification-ed25519-key: %w", rm.Name, err)
		}
		v.Keys = append(v.Keys, k)
	}
	if len(v.Keys) == 0 {
		return nil, errors.New("no ed25519 keys")
	}
	return v, nil
}

// OpenRemote returns the Source and the verification Policy of a
// configured remote of cfg's repository: its url (or urlOverride) and
// contenturl, its transport keys (FetchOptions), partial downloads under
// PartialDir.
func OpenRemote(cfg *remote.Config, rm *remote.Remote, urlOverride string) (Source, Policy, error) {
	u := urlOverride
	if u == "" {
		var err error
		if u, err = rm.URL(); err != nil {
			return nil, Policy{}, err
		}
	}
	fo, err := FetchOptions(rm)
	if err != nil {
		return nil, Policy{}, err
	}
	src, err := OpenSource(u, rm.GetDefault("contenturl", ""), PartialDir(cfg.Repo()), fo)
	if err != nil {
		return nil, Policy{}, err
	}
	policy, err := PolicyFor(cfg, rm)
	if err != nil {
		return nil, Policy{}, err
	}
	return src, policy, nil
}

// Puller pulls one ref of a configured remote, verified as the remote's
// configuration says; it has the shape of sysroot.Puller (`strata
// upgrade`, `admin upgrade`).
type Puller struct {
	// Config returns the remote configuration of a repository (the CLI
	// reads remotes.d for the system repository).
	Config func(r *repo.Repo) (*remote.Config, error)
	// Progress, when set, receives the pull's phases.
	Progress progress.Reporter
	// Warner, when set, receives the pull's best-effort failures.
	Warner progress.Warner
}

// Pull pulls remoteName's ref into r (refs/remotes/REMOTE/REF). A commit
// older than timestampCheckFrom (when not zero) is refused with an error
// wrapping ErrDowngrade before anything of it is written.
func (p *Puller) Pull(ctx context.Context, r *repo.Repo, remoteName, ref string, timestampCheckFrom objects.Checksum) error {
	cfg, err := p.Config(r)
	if err != nil {
		return err
	}
	rm, err := cfg.Get(remoteName)
	if err != nil {
		return err
	}
	src, policy, err := OpenRemote(cfg, rm, "")
	if err != nil {
		return err
	}
	_, err = Pull(ctx, r, src, Options{Remote: rm.Name, Refs: []string{ref}, Policy: policy,
		TimestampCheckFrom: timestampCheckFrom, Progress: p.Progress, Warner: p.Warner})
	return err
}
