package container

import (
	"archive/tar"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/strata-os/strata/errdefs"
)

// Caps on what an image may declare before it is read.
const (
	// MaxManifestSize caps a manifest or an index, as containers/image does.
	MaxManifestSize = 4 << 20
	// MaxConfigSize caps an image configuration.
	MaxConfigSize = 4 << 20
)

// Media types strata reads.
const (
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtOCIConfig      = "application/vnd.oci.image.config.v1+json"
	mtDockerConfig   = "application/vnd.docker.container.image.v1+json"

	MediaTypeLayerTar     = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeLayerGzip    = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeLayerZstd    = "application/vnd.oci.image.layer.v1.tar+zstd"
	mtDockerLayerGzip     = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mtDockerLayerTar      = "application/vnd.docker.image.rootfs.diff.tar"
	annotationRefName     = "org.opencontainers.image.ref.name"
	annotationZstdChunked = "io.github.containers.zstd-chunked.manifest-checksum"
)

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	} `json:"platform,omitempty"`
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// hex returns the digest's hex part after checking its form.
func (d Descriptor) hex() (string, error) {
	if !digestRE.MatchString(d.Digest) {
		return "", fmt.Errorf("%w: digest %q is not sha256:<64 hex digits>", errdefs.ErrInvalid, d.Digest)
	}
	return d.Digest[len("sha256:"):], nil
}

// source is where an image's manifest and blobs come from. Nothing it
// returns is verified: the caller checks every byte against a digest.
type source interface {
	// top returns the descriptor of the reference's manifest (or index).
	top(ctx context.Context) (Descriptor, error)
	// fetch opens a blob or manifest from offset off.
	fetch(ctx context.Context, d Descriptor, off int64) (io.ReadCloser, error)
	close()
}

func openSource(ctx context.Context, ref ImageRef, a Access) (source, error) {
	switch ref.Transport {
	case Registry:
		return newRegistrySource(ctx, ref, a)
	case OCIDir:
		dir, tag := ref.PathTag()
		return &layoutSource{dir: dir, tag: tag}, nil
	case OCIArchive:
		return openArchive(ctx, ref)
	}
	return nil, fmt.Errorf("%w: transport %q", errdefs.ErrInvalid, ref.Transport)
}

// Access says how registries are reached: credentials and
// registries.conf. The zero value is anonymous access with no
// registries.conf (plain HTTP to 127.0.0.1, localhost and private
// addresses, HTTPS elsewhere: go-containerregistry's rule).
type Access struct {
	// Keychain gives credentials (nil: anonymous).
	Keychain authn.Keychain
	// Registries is registries.conf (nil: none): blocked registries are
	// refused, insecure ones spoken to over HTTPS without certificate
	// verification or plain HTTP.
	Registries *Registries
}

// target is an image's registry as Access reaches it.
type target struct {
	ref  name.Reference
	auth authn.Authenticator
	base http.RoundTripper
}

// target is the registry of a push: the reference as written.
func (a Access) target(ctx context.Context, ref ImageRef) (*target, error) {
	r, insecure, err := a.Registries.reference(ref)
	if err != nil {
		return nil, err
	}
	return a.endpointTarget(ctx, ref, endpoint{ref: r, insecure: insecure})
}

// endpointTarget is one endpoint with its credentials (those of its own
// registry: a mirror's, not the primary's) and transport.
func (a Access) endpointTarget(ctx context.Context, ref ImageRef, ep endpoint) (*target, error) {
	t := &target{ref: ep.ref, auth: authn.Anonymous, base: remote.DefaultTransport}
	if a.Keychain != nil {
		var err error
		if t.auth, err = authn.Resolve(ctx, a.Keychain, ep.ref.Context()); err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
	}
	if ep.insecure {
		tr := remote.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		t.base = tr
	}
	return t, nil
}

// authError turns a registry's 401 or 403 into one line that says whether
// credentials were sent and where they came from; other errors are kept.
func (t *target) authError(kc authn.Keychain, status int, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		status = te.StatusCode
	}
	if status != http.StatusUnauthorized && status != http.StatusForbidden {
		return err
	}
	host := t.ref.Context().RegistryStr()
	if fa, ok := t.auth.(fileAuth); ok {
		return fmt.Errorf("registry %s: %w: it refused the credentials from %s (HTTP %d)", host, ErrUnauthorized, fa.file, status)
	}
	return fmt.Errorf("registry %s: %w (HTTP %d) and %s", host, ErrUnauthorized, status, noCredentials(kc, host))
}

// remote returns ref's registry as a reaches it and go-containerregistry's
// options to write to it.
func (a Access) remote(ctx context.Context, ref ImageRef) (*target, []remote.Option, error) {
	t, err := a.target(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	return t, []remote.Option{remote.WithContext(ctx), remote.WithAuth(t.auth), remote.WithTransport(t.base)}, nil
}

// registrySource speaks the distribution API to one endpoint: the
// registry, a remapped location or a mirror, the first of them that
// served the manifest. Every later request (blobs, Range requests,
// signatures) goes to that endpoint.
type registrySource struct {
	ref     name.Reference // the endpoint's reference
	client  *http.Client
	authErr func(status int, err error) error
	// head is the manifest's descriptor when the endpoint was chosen.
	head *Descriptor
	// rewritten: ref is a mirror's or a remapped location's, not the
	// reference as written.
	rewritten bool
}

// newRegistrySource tries ref's pull endpoints in order (registries.conf's
// mirrors that apply, then the registry's location) and keeps the first
// that serves the manifest. An endpoint that cannot be reached or does
// not have it (refused connection, 404, 5xx, refused credentials) moves
// on to the next; when none did, the error names the image and says why
// each failed, and wraps the last (the registry's own) failure.
func newRegistrySource(ctx context.Context, ref ImageRef, a Access) (*registrySource, error) {
	eps, err := a.Registries.pullEndpoints(ref)
	if err != nil {
		return nil, err
	}
	var failed []string
	for i, ep := range eps {
		s, err := a.openEndpoint(ctx, ref, ep)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if len(eps) == 1 {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		what := ep.ref.String()
		if ep.mirror {
			what = "mirror " + what
		}
		if i < len(eps)-1 {
			failed = append(failed, what+": "+briefError(err))
			continue
		}
		return nil, fmt.Errorf("image %s: no endpoint served the manifest: %s; %s: %w", ref, strings.Join(failed, "; "), what, briefWrap{err})
	}
	panic("unreachable")
}

// openEndpoint connects to one endpoint and reads its manifest's head.
func (a Access) openEndpoint(ctx context.Context, ref ImageRef, ep endpoint) (*registrySource, error) {
	if ep.blocked != nil {
		return nil, ep.blocked
	}
	t, err := a.endpointTarget(ctx, ref, ep)
	if err != nil {
		return nil, err
	}
	authErr := func(status int, err error) error { return t.authError(a.Keychain, status, err) }
	tr, err := transport.NewWithContext(ctx, t.ref.Context().Registry, t.auth, t.base,
		[]string{t.ref.Context().Scope(transport.PullScope)})
	if err != nil {
		return nil, authErr(0, err)
	}
	s := &registrySource{ref: t.ref, client: &http.Client{Transport: tr}, authErr: authErr, rewritten: ep.rewritten}
	d, err := s.top(ctx)
	if err != nil {
		return nil, err
	}
	s.head = &d
	return s, nil
}

// briefError is err's gist for a list of failures: a certificate's or a
// network error's innermost cause ("connection refused"), else its text
// on one line.
func briefError(err error) string {
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return "certificate: " + ce.Err.Error()
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// briefWrap is an error that reads as briefError and unwraps to the
// error itself.
type briefWrap struct{ error }

func (e briefWrap) Error() string { return briefError(e.error) }

func (e briefWrap) Unwrap() error { return e.error }

func (s *registrySource) url(kind, id string) string {
	c := s.ref.Context()
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", c.Scheme(), c.RegistryStr(), c.RepositoryStr(), kind, id)
}

var acceptManifests = strings.Join([]string{mtOCIManifest, mtOCIIndex, mtDockerManifest, mtDockerList}, ",")

func (s *registrySource) top(ctx context.Context) (Descriptor, error) {
	if s.head != nil {
		return *s.head, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, s.url("manifests", s.ref.Identifier()), nil)
	if err != nil {
		return Descriptor{}, err
	}
	req.Header.Set("Accept", acceptManifests)
	resp, err := s.client.Do(req)
	if err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return Descriptor{}, fmt.Errorf("%w: manifest %s", errdefs.ErrNotFound, s.ref)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return Descriptor{}, s.authErr(resp.StatusCode, nil)
	}
	if resp.StatusCode != http.StatusOK {
		return Descriptor{}, fmt.Errorf("manifest %s: HTTP %s", s.ref, resp.Status)
	}
	d := Descriptor{MediaType: resp.Header.Get("Content-Type"), Digest: resp.Header.Get("Docker-Content-Digest"), Size: resp.ContentLength}
	if dg, ok := s.ref.(name.Digest); ok {
		d.Digest = dg.DigestStr()
	}
	return d, nil
}

func (s *registrySource) fetch(ctx context.Context, d Descriptor, off int64) (io.ReadCloser, error) {
	kind := "blobs"
	if isManifestType(d.MediaType) {
		kind = "manifests"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url(kind, d.Digest), nil)
	if err != nil {
		return nil, err
	}
	if kind == "manifests" {
		req.Header.Set("Accept", acceptManifests)
	}
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	switch {
	case off > 0 && resp.StatusCode == http.StatusPartialContent:
	case off == 0 && resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s %s", errdefs.ErrNotFound, kind, d.Digest)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		resp.Body.Close()
		return nil, s.authErr(resp.StatusCode, nil)
	default:
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: HTTP %s", kind, d.Digest, resp.Status)
	}
	return resp.Body, nil
}

func (s *registrySource) close() {}

func isManifestType(mt string) bool {
	switch mt {
	case mtOCIManifest, mtOCIIndex, mtDockerManifest, mtDockerList:
		return true
	}
	return false
}

// layoutSource reads an OCI image layout directory.
type layoutSource struct {
	dir, tag string
	cleanup  func()
}

func (s *layoutSource) top(ctx context.Context) (Descriptor, error) {
	f, err := os.Open(filepath.Join(s.dir, "index.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Descriptor{}, fmt.Errorf("%w: %s is not an OCI layout (no index.json)", errdefs.ErrNotFound, s.dir)
		}
		return Descriptor{}, err
	}
	defer f.Close()
	var idx struct {
		Manifests []Descriptor `json:"manifests"`
	}
	if err := json.NewDecoder(io.LimitReader(f, MaxManifestSize)).Decode(&idx); err != nil {
		return Descriptor{}, fmt.Errorf("%w: %s/index.json: %w", errdefs.ErrInvalid, s.dir, err)
	}
	var found []Descriptor
	for _, m := range idx.Manifests {
		if s.tag == "" || m.Annotations[annotationRefName] == s.tag {
			found = append(found, m)
		}
	}
	switch {
	case len(found) == 0 && s.tag != "":
		return Descriptor{}, fmt.Errorf("%w: no image tagged %q in %s", errdefs.ErrNotFound, s.tag, s.dir)
	case len(found) != 1:
		return Descriptor{}, fmt.Errorf("%w: %s holds %d images: name one with oci:%s:TAG", errdefs.ErrInvalid, s.dir, len(found), s.dir)
	}
	return found[0], nil
}

func (s *layoutSource) fetch(ctx context.Context, d Descriptor, off int64) (io.ReadCloser, error) {
	h, err := d.hex()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.dir, "blobs", "sha256", h))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: blob %s in %s", errdefs.ErrNotFound, d.Digest, s.dir)
		}
		return nil, err
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

func (s *layoutSource) close() {
	if s.cleanup != nil {
		s.cleanup()
	}
}

// openArchive unpacks an oci-archive (a tar of an OCI layout) into a
// private temporary directory. Only index.json, oci-layout and
// blobs/sha256/<hex> regular files are taken; anything else is refused.
func openArchive(ctx context.Context, ref ImageRef) (source, error) {
	file, tag := ref.PathTag()
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	defer f.Close()
	dir, err := os.MkdirTemp("", "strata-oci-archive-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o700); err != nil {
		cleanup()
		return nil, err
	}
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			cleanup()
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("%w: image %s: %w", errdefs.ErrInvalid, ref, err)
		}
		n := strings.TrimPrefix(filepath.Clean("/"+h.Name), "/")
		if h.Typeflag == tar.TypeDir && (n == "" || n == "blobs" || n == "blobs/sha256") {
			continue
		}
		ok := n == "index.json" || n == "oci-layout"
		if rest, isBlob := strings.CutPrefix(n, "blobs/sha256/"); isBlob && digestRE.MatchString("sha256:"+rest) {
			ok = true
		}
		if !ok || h.Typeflag != tar.TypeReg || n != strings.TrimPrefix(h.Name, "./") {
			cleanup()
			return nil, fmt.Errorf("%w: image %s: archive entry %q is not part of an OCI layout", errdefs.ErrInvalid, ref, h.Name)
		}
		out, err := os.OpenFile(filepath.Join(dir, n), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("image %s: archive entry %q: %w", ref, h.Name, err)
		}
	}
	return &layoutSource{dir: dir, tag: tag, cleanup: cleanup}, nil
}

func platformMatches(d Descriptor) bool {
	return d.Platform == nil || (d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH)
}
