package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"syscall"
)

// openFile opens a file:// fetch: the same contract as HTTP without the
// network (no retries: a local read error is not transient).
func (f *Fetcher) openFile(ctx context.Context, u *url.URL, offset, maxSize int64) (_ *Body, err error) {
	name := u.Redacted()
	if err := f.acquire(ctx); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	var file *os.File
	defer func() {
		if err != nil {
			if file != nil {
				file.Close()
			}
			f.release()
		}
	}()
	f.requests.Add(1)
	file, err = os.Open(u.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("fetch %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	st, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("fetch %s: not a regular file", name)
	}
	size := st.Size()
	if maxSize > 0 && size > maxSize {
		return nil, fmt.Errorf("fetch %s: %d bytes, more than %d: %w", name, size, maxSize, ErrTooLarge)
	}
	if offset > size {
		return nil, fmt.Errorf("fetch %s: %w: offset %d is beyond the end (%d bytes)", name, ErrChanged, offset, size)
	}
	if offset > 0 {
		if _, err := file.Seek(offset, io.SeekStart); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", name, err)
		}
	}
	r := &fileReader{ctx: ctx, f: f, file: file, name: name, pos: offset, maxSize: maxSize}
	return &Body{r: r, size: size - offset}, nil
}

// fileReader reads a local file, honouring ctx and the cap (the file may
// grow while it is read).
type fileReader struct {
	ctx     context.Context
	f       *Fetcher
	file    *os.File
	name    string
	pos     int64
	maxSize int64
	err     error
}

func (r *fileReader) close() {
	r.file.Close()
	r.f.release()
}

func (r *fileReader) final() error { return r.err }

func (r *fileReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if err := r.ctx.Err(); err != nil {
		r.err = fmt.Errorf("fetch %s: %w", r.name, err)
		return 0, r.err
	}
	if r.maxSize > 0 && int64(len(p)) > r.maxSize-r.pos+1 {
		p = p[:r.maxSize-r.pos+1]
	}
	n, err := r.file.Read(p)
	r.f.bytes.Add(int64(n))
	r.pos += int64(n)
	if r.maxSize > 0 && r.pos > r.maxSize {
		over := r.pos - r.maxSize
		r.pos = r.maxSize
		r.err = fmt.Errorf("fetch %s: more than %d bytes: %w", r.name, r.maxSize, ErrTooLarge)
		return n - int(over), r.err
	}
	if err != nil && err != io.EOF {
		r.err = fmt.Errorf("fetch %s: %w", r.name, err)
		return n, r.err
	}
	return n, err
}
