package demoos

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// cpioWriter writes the "newc" cpio format the kernel unpacks as an
// initramfs.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	n   int64
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.n % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte) error {
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	if err := c.write([]byte(hdr)); err != nil {
		return err
	}
	if err := c.write(append([]byte(name), 0)); err != nil {
		return err
	}
	if err := c.pad(); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return err
	}
	return c.pad()
}

func (c *cpioWriter) close() error {
	return c.entry("TRAILER!!!", 0, nil)
}

// writeCpioDir archives the tree at dir (regular files, directories,
// symlinks) with paths relative to it.
func writeCpioDir(w io.Writer, dir string) error {
	c := &cpioWriter{w: w}
	var paths []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		perm := uint32(st.Mode().Perm())
		switch {
		case st.Mode().IsDir():
			err = c.entry(rel, 0o040000|perm, nil)
		case st.Mode()&os.ModeSymlink != 0:
			t, lerr := os.Readlink(p)
			if lerr != nil {
				return lerr
			}
			err = c.entry(rel, 0o120777, []byte(t))
		case st.Mode().IsRegular():
			data, rerr := os.ReadFile(p)
			if rerr != nil {
				return rerr
			}
			err = c.entry(rel, 0o100000|perm, data)
		default:
			return fmt.Errorf("cpio: unsupported file %s", p)
		}
		if err != nil {
			return err
		}
	}
	return c.close()
}
