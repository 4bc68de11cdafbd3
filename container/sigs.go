package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/imgpolicy"
)

// DefaultRegistriesD is where containers/image reads lookaside locations.
const DefaultRegistriesD = "/etc/containers/registries.d"

// policyTransport is the policy's name for a transport.
func policyTransport(t Transport) string {
	if t == Registry {
		return "docker"
	}
	return string(t)
}

// dockerReference is NAME as containers/image normalises it for a
// policy scope and a signature's identity (a missing tag is "latest").
func dockerReference(name string) string {
	last := name[strings.LastIndexByte(name, '/')+1:]
	if !strings.Contains(name, "@") && !strings.Contains(last, ":") {
		return name + ":latest"
	}
	return name
}

// checkPolicy evaluates o.Policy for im, fetching the signatures its
// requirements need. It returns whether signatures were verified.
func checkPolicy(ctx context.Context, im *image, o PullOptions) (bool, error) {
	if o.Policy == nil {
		return false, nil
	}
	scope := im.ref.Name
	if im.ref.Transport == Registry {
		scope = dockerReference(scope)
	}
	rs := o.Policy.Requirements(policyTransport(im.ref.Transport), scope)
	wantSigstore, wantGPG := imgpolicy.NeedsSignatures(rs)
	var sigs imgpolicy.Signatures
	var err error
	if wantSigstore {
		if sigs.Sigstore, err = sigstoreSignatures(ctx, im); err != nil {
			return false, err
		}
	}
	if wantGPG {
		dir := o.RegistriesD
		if dir == "" {
			dir = DefaultRegistriesD
		}
		if sigs.Simple, err = lookasideSignatures(ctx, dir, im); err != nil {
			return false, err
		}
	}
	img := imgpolicy.Image{DockerReference: dockerReference(im.ref.Name), Digest: im.digest}
	if err := imgpolicy.Check(rs, img, sigs); err != nil {
		return false, err
	}
	return wantSigstore || wantGPG, nil
}

// SigstoreTag is cosign's tag for the signatures of manifest digest d.
func SigstoreTag(d string) string { return strings.Replace(d, ":", "-", 1) + ".sig" }

// sigstoreSignatures reads the cosign signature manifest of im (none is
// not an error: the policy then refuses).
func sigstoreSignatures(ctx context.Context, im *image) ([]imgpolicy.SigstoreSignature, error) {
	rs, ok := im.src.(*registrySource)
	if !ok {
		return nil, nil // signatures travel with registry images only
	}
	tag := rs.ref.Context().Tag(SigstoreTag(im.digest))
	sigSrc := &registrySource{ref: tag, client: rs.client, authErr: rs.authErr}
	top, err := sigSrc.top(ctx)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signatures: %w", err)
	}
	raw, err := readSmall(ctx, sigSrc, top, MaxManifestSize, "signature manifest")
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: signature manifest: %w", errdefs.ErrInvalid, err)
	}
	var out []imgpolicy.SigstoreSignature
	for _, l := range m.Layers {
		if l.MediaType != imgpolicy.SigstoreMediaType {
			continue
		}
		payload, err := readSmall(ctx, sigSrc, l, 1<<20, "signature payload")
		if err != nil {
			return nil, err
		}
		out = append(out, imgpolicy.SigstoreSignature{Payload: payload, Signature: l.Annotations[imgpolicy.SigstoreAnnotation]})
	}
	return out, nil
}

// registriesD is the part of a registries.d file strata reads.
type registriesD struct {
	DefaultDocker *lookasideEntry           `yaml:"default-docker"`
	Docker        map[string]lookasideEntry `yaml:"docker"`
}

type lookasideEntry struct {
	Lookaside string `yaml:"lookaside"`
	Sigstore  string `yaml:"sigstore"` // the older name
}

func (e lookasideEntry) url() string {
	if e.Lookaside != "" {
		return e.Lookaside
	}
	return e.Sigstore
}

// lookasideURL finds the lookaside base for a docker reference in the
// YAML files of dir, the most specific scope winning, as containers/image.
func lookasideURL(dir, ref string) (string, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	sort.Strings(files)
	var def string
	scopes := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		var c registriesD
		if err := yaml.Unmarshal(data, &c); err != nil {
			return "", fmt.Errorf("%w: %s: %w", errdefs.ErrInvalid, f, err)
		}
		if c.DefaultDocker != nil && c.DefaultDocker.url() != "" {
			def = c.DefaultDocker.url()
		}
		for k, v := range c.Docker {
			if v.url() != "" {
				scopes[k] = v.url()
			}
		}
	}
	repo := ref
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	} else if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	for _, c := range append([]string{ref}, parents(repo)...) {
		if u, ok := scopes[c]; ok {
			return u, nil
		}
	}
	return def, nil
}

func parents(s string) []string {
	var out []string
	for s != "" {
		out = append(out, s)
		i := strings.LastIndexByte(s, '/')
		if i < 0 {
			break
		}
		s = s[:i]
	}
	return out
}

// lookasideSignatures reads signature-1, -2, ... for im from its
// lookaside location (file:// or http(s)://), as containers/image lays
// them out: BASE/PATH@sha256=HEX/signature-N (PATH: the repository
// without the host).
func lookasideSignatures(ctx context.Context, dir string, im *image) ([][]byte, error) {
	if im.ref.Transport != Registry {
		return nil, nil
	}
	ref := dockerReference(im.ref.Name)
	if rs, ok := im.src.(*registrySource); ok && rs.rewritten {
		// As containers/image: the lookaside of the endpoint that served
		// the manifest (a mirror's), though the policy judges the
		// reference as written.
		ref = qualifiedName(rs.ref)
	}
	base, err := lookasideURL(dir, ref)
	if err != nil || base == "" {
		return nil, err
	}
	repo := ref
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	} else if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	// containers/image names the directory after the repository's path
	// without the registry host (reference.Path).
	if _, path, ok := strings.Cut(repo, "/"); ok {
		repo = path
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("%w: lookaside %q: %w", errdefs.ErrInvalid, base, err)
	}
	var out [][]byte
	for n := 1; n <= 16; n++ {
		rel := fmt.Sprintf("%s@%s/signature-%d", repo, strings.Replace(im.digest, ":", "=", 1), n)
		var data []byte
		switch u.Scheme {
		case "file":
			data, err = readCapped(filepath.Join(u.Path, filepath.FromSlash(rel)))
			if errors.Is(err, os.ErrNotExist) {
				return out, nil
			}
		case "http", "https":
			data, err = httpGetCapped(ctx, strings.TrimSuffix(base, "/")+"/"+rel)
			if errors.Is(err, errdefs.ErrNotFound) {
				return out, nil
			}
		default:
			return nil, fmt.Errorf("%w: lookaside %q: only file, http and https", errdefs.ErrInvalid, base)
		}
		if err != nil {
			return nil, fmt.Errorf("signature %s: %w", rel, err)
		}
		out = append(out, data)
	}
	return out, nil
}

func readCapped(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

func httpGetCapped(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, errdefs.ErrNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
