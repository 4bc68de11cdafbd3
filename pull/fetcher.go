package pull

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/strata-os/strata/fetch"
	"github.com/strata-os/strata/remote"
	"github.com/strata-os/strata/repo"
)

// Fetcher reads the files of a remote repository by their path relative to
// the repository's base URL ("summary", "objects/ab/cdef….filez").
//
// Contract: Get returns a whole file; it fails with an error wrapping
// repo.ErrNotFound when the file does not exist, and with one wrapping
// ErrTooLarge when it is longer than max bytes (without reading much more
// than max bytes of it). Open streams a file from byte off (the body's
// first byte is the file's byte off). Transport failures are retried by
// the Fetcher as it sees fit; a body read that fails has given up. A
// resumed body is never a splice of two versions of a file.
// Implementations must be safe for concurrent use.
type Fetcher interface {
	Get(ctx context.Context, path string, max int64) ([]byte, error)
	Open(ctx context.Context, path string, off int64) (io.ReadCloser, error)
}

// ErrTooLarge is wrapped when a fetched file exceeds its size limit.
var ErrTooLarge = errors.New("file too large")

// netFetcher adapts a fetch.Fetcher (retries with backoff, Range resume,
// timeouts, TLS) to Fetcher, mapping its sentinels to repo's.
type netFetcher struct{ f *fetch.Fetcher }

// NewFetcher returns the Fetcher of an http(s):// (or file:// archive)
// base URL.
func NewFetcher(base string, o fetch.Options) (Fetcher, error) {
	f, err := fetch.New(base, o)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", repo.ErrInvalid, err)
	}
	return &netFetcher{f: f}, nil
}

func mapFetchErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fetch.ErrNotFound):
		return fmt.Errorf("%w: %w", repo.ErrNotFound, err)
	case errors.Is(err, fetch.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return err
}

func (n *netFetcher) Get(ctx context.Context, path string, max int64) ([]byte, error) {
	data, err := n.f.Get(ctx, path, max)
	return data, mapFetchErr(err)
}

func (n *netFetcher) Open(ctx context.Context, path string, off int64) (io.ReadCloser, error) {
	b, err := n.f.Open(ctx, path, off, 0)
	if err != nil {
		return nil, mapFetchErr(err)
	}
	return errMapBody{b}, nil
}

// Stats returns the transport's counters.
func (n *netFetcher) Stats() fetch.Stats { return n.f.Stats() }

type errMapBody struct{ *fetch.Body }

func (b errMapBody) Read(p []byte) (int, error) {
	n, err := b.Body.Read(p)
	if err != nil && err != io.EOF {
		err = mapFetchErr(err)
	}
	return n, err
}

// FetchOptions returns the transport options a remote's keys ask for, as
// OSTree names them: tls-ca-path, tls-client-cert-path,
// tls-client-key-path, tls-permissive, proxy, http2; MaxParallel is
// DefaultParallel.
func FetchOptions(rm *remote.Remote) (fetch.Options, error) {
	o := fetch.Options{MaxParallel: DefaultParallel}
	o.TLSCAPath = rm.GetDefault("tls-ca-path", "")
	o.TLSClientCertPath = rm.GetDefault("tls-client-cert-path", "")
	o.TLSClientKeyPath = rm.GetDefault("tls-client-key-path", "")
	o.Proxy = rm.GetDefault("proxy", "")
	var err error
	if o.TLSPermissive, err = rm.GetBool("tls-permissive", false); err != nil {
		return o, err
	}
	h2, err := rm.GetBool("http2", true)
	if err != nil {
		return o, err
	}
	o.DisableHTTP2 = !h2
	return o, nil
}
