// Package container pulls container images into a repository and exports
// commits as images, with ostree-ext's formats, refs and names (see
// docs/oci.md): an encapsulated image imports to the very commit it was
// made from; a plain or derived image becomes one commit per layer under
// ostree/container/blob/ and a merge commit under ostree/container/image/.
//
// Every blob is checked against its digest and size while it streams, and
// no ref is written until what it names was read in full and verified.
package container

import (
	"fmt"
	"strings"

	"github.com/strata-os/strata/errdefs"
)

// Transport is where an image lives.
type Transport string

// Transports, with the names ostree-ext and skopeo use.
const (
	Registry   Transport = "registry"
	OCIDir     Transport = "oci"
	OCIArchive Transport = "oci-archive"
)

// ImageRef names an image: a transport and a transport-specific name
// ("HOST/NAME:TAG" or "@sha256:..." for a registry, "PATH[:TAG]" for the
// OCI transports).
type ImageRef struct {
	Transport Transport
	Name      string
}

// ParseImageRef parses "registry:NAME", "docker://NAME", "oci:DIR[:TAG]"
// or "oci-archive:FILE[:TAG]".
func ParseImageRef(s string) (ImageRef, error) {
	var r ImageRef
	switch {
	case strings.HasPrefix(s, "docker://"):
		r = ImageRef{Registry, strings.TrimPrefix(s, "docker://")}
	case strings.HasPrefix(s, "registry:"):
		r = ImageRef{Registry, strings.TrimPrefix(s, "registry:")}
	case strings.HasPrefix(s, "oci-archive:"):
		r = ImageRef{OCIArchive, strings.TrimPrefix(s, "oci-archive:")}
	case strings.HasPrefix(s, "oci:"):
		r = ImageRef{OCIDir, strings.TrimPrefix(s, "oci:")}
	default:
		return r, fmt.Errorf("%w: image reference %q: want registry:NAME, docker://NAME, oci:DIR[:TAG] or oci-archive:FILE[:TAG]", errdefs.ErrInvalid, s)
	}
	if r.Name == "" {
		return r, fmt.Errorf("%w: image reference %q names no image", errdefs.ErrInvalid, s)
	}
	return r, nil
}

// String is the reference as ostree-ext writes it: "docker://NAME" for
// a registry (ostree-ext's Display, which its image refs escape),
// "oci:PATH[:TAG]", "oci-archive:PATH[:TAG]".
func (r ImageRef) String() string {
	if r.Transport == Registry {
		return "docker://" + r.Name
	}
	return string(r.Transport) + ":" + r.Name
}

// PathTag splits an OCI transport's name into path and tag ("" if none).
func (r ImageRef) PathTag() (string, string) {
	if i := strings.LastIndexByte(r.Name, ':'); i >= 0 && !strings.Contains(r.Name[i:], "/") {
		return r.Name[:i], r.Name[i+1:]
	}
	return r.Name, ""
}

// Signature verification of an origin reference.
const (
	SigUnverified = "ostree-unverified-image"
	SigPolicy     = "ostree-image-signed"
)

// OstreeImageRef is an image reference with its signature verification,
// as origin files carry it ("ostree-unverified-registry:HOST/NAME:TAG").
type OstreeImageRef struct {
	SigVerify string
	Image     ImageRef
}

// String writes it as ostree-ext does: the short form
// "ostree-unverified-registry:NAME" for an unverified registry image.
func (o OstreeImageRef) String() string {
	if o.SigVerify == SigUnverified && o.Image.Transport == Registry {
		return "ostree-unverified-registry:" + o.Image.Name
	}
	return o.SigVerify + ":" + o.Image.String()
}

// ParseOstreeImageRef parses the forms ostree-ext accepts, except
// ostree-remote-image (ostree-level signatures on images are not
// supported).
func ParseOstreeImageRef(s string) (OstreeImageRef, error) {
	if rest, ok := strings.CutPrefix(s, "ostree-unverified-registry:"); ok {
		if rest == "" {
			return OstreeImageRef{}, fmt.Errorf("%w: %q names no image", errdefs.ErrInvalid, s)
		}
		return OstreeImageRef{SigUnverified, ImageRef{Registry, rest}}, nil
	}
	for _, p := range []string{SigUnverified, SigPolicy} {
		if rest, ok := strings.CutPrefix(s, p+":"); ok {
			r, err := ParseImageRef(rest)
			return OstreeImageRef{p, r}, err
		}
	}
	return OstreeImageRef{}, fmt.Errorf("%w: %q: want ostree-unverified-registry:, ostree-unverified-image: or ostree-image-signed", errdefs.ErrInvalid, s)
}
