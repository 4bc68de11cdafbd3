// Package imgpolicy evaluates the subset of containers-policy.json(5)
// strata supports: insecureAcceptAnything, reject, sigstoreSigned with a
// public key (cosign's simple-signing payloads), and signedBy with GPG
// keys (the "atomic container signature" skopeo copy --sign-by writes),
// scoped per transport by registry, namespace and repository as
// containers/image scopes them. Signatures are given to it; fetching them
// is the caller's (container) job. Evaluation happens before anything of
// an image is written.
package imgpolicy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/strata-os/strata/errdefs"
)

// DefaultPath is where skopeo and podman read the policy.
const DefaultPath = "/etc/containers/policy.json"

// ErrRejected is returned when the policy refuses an image.
var ErrRejected = errors.New("rejected by the signature policy")

// Requirement is one entry of a policy's requirement list.
type Requirement struct {
	Type           string          `json:"type"`
	KeyType        string          `json:"keyType,omitempty"`
	KeyPath        string          `json:"keyPath,omitempty"`
	KeyPaths       []string        `json:"keyPaths,omitempty"`
	KeyData        []byte          `json:"keyData,omitempty"`
	SignedIdentity json.RawMessage `json:"signedIdentity,omitempty"`
}

// Policy is a parsed containers-policy.json.
type Policy struct {
	Default    []Requirement                       `json:"default"`
	Transports map[string]map[string][]Requirement `json:"transports"`
	path       string
}

// Load reads and checks a policy file.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses a policy; path names it in errors.
func Parse(path string, data []byte) (*Policy, error) {
	p := &Policy{path: path}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("%w: policy %s: %w", errdefs.ErrInvalid, path, err)
	}
	if p.Default == nil {
		return nil, fmt.Errorf("%w: policy %s: no \"default\" requirements", errdefs.ErrInvalid, path)
	}
	check := func(where string, rs []Requirement) error {
		if len(rs) == 0 {
			return fmt.Errorf("%w: policy %s: %s: an empty requirement list", errdefs.ErrInvalid, path, where)
		}
		for _, r := range rs {
			switch r.Type {
			case "insecureAcceptAnything", "reject":
			case "signedBy":
				if r.KeyType != "GPGKeys" {
					return fmt.Errorf("%w: policy %s: %s: signedBy keyType %q (only GPGKeys)", errdefs.ErrInvalid, path, where, r.KeyType)
				}
				if r.KeyPath == "" && len(r.KeyPaths) == 0 && len(r.KeyData) == 0 {
					return fmt.Errorf("%w: policy %s: %s: signedBy without keyPath, keyPaths or keyData", errdefs.ErrInvalid, path, where)
				}
			case "sigstoreSigned":
				if r.KeyPath == "" && len(r.KeyData) == 0 {
					return fmt.Errorf("%w: policy %s: %s: sigstoreSigned without keyPath or keyData (Fulcio and Rekor are not supported)", errdefs.ErrInvalid, path, where)
				}
			default:
				return fmt.Errorf("%w: policy %s: %s: unknown requirement type %q", errdefs.ErrInvalid, path, where, r.Type)
			}
			if len(r.SignedIdentity) > 0 {
				var id struct {
					Type string `json:"type"`
				}
				if err := json.Unmarshal(r.SignedIdentity, &id); err != nil || (id.Type != "matchRepoDigestOrExact" && id.Type != "matchRepository" && id.Type != "matchExact") {
					return fmt.Errorf("%w: policy %s: %s: signedIdentity %s (only matchRepoDigestOrExact, matchRepository, matchExact)", errdefs.ErrInvalid, path, where, r.SignedIdentity)
				}
			}
		}
		return nil
	}
	if err := check("default", p.Default); err != nil {
		return nil, err
	}
	for tr, scopes := range p.Transports {
		for sc, rs := range scopes {
			if err := check(fmt.Sprintf("transports.%s[%q]", tr, sc), rs); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// Requirements returns the requirements for an image: transport is
// "docker", "oci" or "oci-archive"; scope is the image's full reference
// ("HOST/REPO:TAG") for docker, its path for the OCI transports. The most
// specific scope wins: the reference, the repository, each parent
// namespace, the host, "*.domain" wildcards, the transport's "", then
// default.
func (p *Policy) Requirements(transport, scope string) []Requirement {
	scopes := p.Transports[transport]
	var cands []string
	if transport == "docker" {
		cands = append(cands, scope)
		repo := scope
		if i := strings.IndexByte(repo, '@'); i >= 0 {
			repo = repo[:i]
		} else if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
			repo = repo[:i]
		}
		for s := repo; s != ""; {
			cands = append(cands, s)
			i := strings.LastIndexByte(s, '/')
			if i < 0 {
				break
			}
			s = s[:i]
		}
		host, _, _ := strings.Cut(repo, "/")
		host, _, _ = strings.Cut(host, ":")
		for d := host; ; {
			i := strings.IndexByte(d, '.')
			if i < 0 {
				break
			}
			d = d[i+1:]
			cands = append(cands, "*."+d)
		}
	} else {
		path, _, _ := strings.Cut(scope, ":")
		cands = append(cands, scope, path)
	}
	cands = append(cands, "")
	for _, c := range cands {
		if rs, ok := scopes[c]; ok {
			return rs
		}
	}
	return p.Default
}

// NeedsSignatures reports which kinds of signature rs ask for.
func NeedsSignatures(rs []Requirement) (sigstore, gpg bool) {
	for _, r := range rs {
		switch r.Type {
		case "sigstoreSigned":
			sigstore = true
		case "signedBy":
			gpg = true
		}
	}
	return
}

// Signatures are what the caller found for an image.
type Signatures struct {
	// Sigstore are cosign signatures: payload and base64 signature.
	Sigstore []SigstoreSignature
	// Simple are "atomic container signature" OpenPGP messages.
	Simple [][]byte
}

// SigstoreSignature is one layer of a cosign signature manifest.
type SigstoreSignature struct {
	Payload   []byte
	Signature string // base64, the dev.cosignproject.cosign/signature annotation
}

// Image is what a signature must vouch for.
type Image struct {
	// DockerReference is "HOST/REPO:TAG" (or "HOST/REPO@sha256:...").
	DockerReference string
	// Digest is the manifest digest, "sha256:...".
	Digest string
}

// Check evaluates rs for img with sigs: every requirement must hold.
// The error says which requirement failed and why.
func Check(rs []Requirement, img Image, sigs Signatures) error {
	for _, r := range rs {
		var err error
		switch r.Type {
		case "insecureAcceptAnything":
		case "reject":
			err = fmt.Errorf("%w: the policy says reject", ErrRejected)
		case "sigstoreSigned":
			err = checkSigstore(r, img, sigs.Sigstore)
		case "signedBy":
			err = checkSimple(r, img, sigs.Simple)
		default:
			err = fmt.Errorf("%w: unknown requirement %q", ErrRejected, r.Type)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Payload is the JSON both signature formats sign (what a signer
// marshals and checkPayload reads).
type Payload struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// checkPayload checks what a verified payload says against img.
func checkPayload(data []byte, wantType string, r Requirement, img Image) error {
	var p Payload
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("signature payload: %w", err)
	}
	if p.Critical.Type != wantType {
		return fmt.Errorf("signature payload of type %q, want %q", p.Critical.Type, wantType)
	}
	if p.Critical.Image.DockerManifestDigest != img.Digest {
		return fmt.Errorf("signature is for manifest %s, not %s", p.Critical.Image.DockerManifestDigest, img.Digest)
	}
	idType := "matchRepoDigestOrExact"
	if len(r.SignedIdentity) > 0 {
		var id struct {
			Type string `json:"type"`
		}
		json.Unmarshal(r.SignedIdentity, &id)
		idType = id.Type
	}
	signed, want := p.Critical.Identity.DockerReference, img.DockerReference
	repoOf := func(s string) string {
		if i := strings.IndexByte(s, '@'); i >= 0 {
			return s[:i]
		}
		if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
			return s[:i]
		}
		return s
	}
	ok := false
	switch idType {
	case "matchExact":
		ok = signed == want
	case "matchRepository":
		ok = repoOf(signed) == repoOf(want)
	default: // matchRepoDigestOrExact
		if strings.Contains(want, "@") {
			ok = repoOf(signed) == repoOf(want)
		} else {
			ok = signed == want
		}
	}
	if !ok {
		return fmt.Errorf("signature names %q, the image is %q (%s)", signed, want, idType)
	}
	return nil
}
