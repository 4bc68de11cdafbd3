package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/strata-os/strata/repo"
)

// Fetcher reads the files of a remote repository by their path relative to
// the repository's base URL ("summary", "objects/ab/cdef….filez").
//
// Contract: Get returns a whole file; it fails with an error wrapping
// repo.ErrNotFound when the file does not exist, and with one wrapping
// ErrTooLarge when it is longer than max bytes (without reading more than
// max+1 bytes of it). Open streams a file from byte off; start is where
// the body really begins: off when the server honoured the range, 0 when
// it sent the whole file. A failed read of an Open body is a transport
// failure. Implementations must be safe for concurrent use; they may
// retry requests, but never hand out bytes of two different responses as
// one body unless they are the same file at the same offsets.
type Fetcher interface {
	Get(ctx context.Context, path string, max int64) ([]byte, error)
	Open(ctx context.Context, path string, off int64) (body io.ReadCloser, start int64, err error)
}

// ErrTooLarge is wrapped when a fetched file exceeds its size limit.
var ErrTooLarge = errors.New("file too large")

// httpFetcher is a plain net/http Fetcher: one attempt per request, no
// retries. It is what pull uses until the fetch package's fetcher is
// plugged in through NewFetcher.
type httpFetcher struct {
	base   *url.URL
	client *http.Client
}

// NewFetcher returns the Fetcher used for an http(s) URL. It is a variable
// so that a better transport (retries, timeouts, TLS options) can replace
// the default one.
var NewFetcher = func(base string) (Fetcher, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("%w: url %q: %v", repo.ErrInvalid, base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: url %q: unsupported scheme %q", repo.ErrInvalid, base, u.Scheme)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return &httpFetcher{base: u, client: &http.Client{}}, nil
}

func (f *httpFetcher) url(p string) string {
	return f.base.ResolveReference(&url.URL{Path: p}).String()
}

func (f *httpFetcher) do(ctx context.Context, p string, off int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url(p), nil)
	if err != nil {
		return nil, err
	}
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusOK, resp.StatusCode == http.StatusPartialContent && off > 0:
		return resp, nil
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s", repo.ErrNotFound, req.URL)
	}
	resp.Body.Close()
	return nil, fmt.Errorf("GET %s: server answered %s", req.URL, resp.Status)
}

func (f *httpFetcher) Get(ctx context.Context, p string, max int64) ([]byte, error) {
	resp, err := f.do(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrTooLarge, p, resp.ContentLength, max)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", f.url(p), err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s is more than %d bytes", ErrTooLarge, p, max)
	}
	return data, nil
}

func (f *httpFetcher) Open(ctx context.Context, p string, off int64) (io.ReadCloser, int64, error) {
	resp, err := f.do(ctx, p, off)
	if err != nil {
		return nil, 0, err
	}
	start := int64(0)
	if resp.StatusCode == http.StatusPartialContent {
		// "bytes START-END/SIZE"
		cr := strings.TrimPrefix(resp.Header.Get("Content-Range"), "bytes ")
		s, _, _ := strings.Cut(cr, "-")
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n != off {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("GET %s: bad Content-Range %q for offset %d", f.url(p), resp.Header.Get("Content-Range"), off)
		}
		start = n
	}
	return resp.Body, start, nil
}
