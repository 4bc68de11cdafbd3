package compose

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
)

// buildTree is the tree being composed, opened as an os.Root: every
// write, mkdir, symlink, rename, removal and read that compose makes in
// it resolves its name beneath the tree. A symlink of the tree that
// leads outside it (absolute, or with enough "..") is an error naming
// the path, never followed; one that stays inside is followed, so the
// write still lands in the tree. A [base] ref is a tree strata did not
// make: its /usr, /etc, /boot or /var may be symlinks planted to lead
// these writes out.
//
// Names are slash-separated, relative to the tree ("usr/etc/passwd").
// Only the tree's own systemctl, run in a chroot of it, touches the tree
// otherwise (its symlinks then resolve inside the chroot).
type buildTree struct {
	*os.Root
}

func openTree(dir string) (*buildTree, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &buildTree{r}, nil
}

// maxTreeFile bounds a configuration file of the tree that compose reads
// whole (passwd, group, os-release, tmpfiles.d): the tree is not trusted
// to keep them small.
const maxTreeFile = 16 << 20

// readFile reads the regular file rel, at most maxTreeFile bytes; a FIFO,
// device or directory is refused before a byte is read. A missing file
// is an error satisfying errors.Is(err, fs.ErrNotExist).
func (t *buildTree) readFile(rel string) ([]byte, error) {
	f, err := t.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("/%s: %w", rel, fsutil.ErrNotRegular)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTreeFile+1))
	if err != nil {
		return nil, fmt.Errorf("read /%s: %w", rel, err)
	}
	if len(data) > maxTreeFile {
		return nil, fmt.Errorf("/%s: %w (%d bytes)", rel, fsutil.ErrTooLarge, maxTreeFile)
	}
	return data, nil
}

// readDir lists the directory rel, sorted by name.
func (t *buildTree) readDir(rel string) ([]fs.DirEntry, error) {
	return fs.ReadDir(t.FS(), rel)
}

// mkdirAll makes the directory rel and its missing parents with mode,
// whatever the umask. An existing rel that is not a directory (a symlink
// included) is an error.
func (t *buildTree) mkdirAll(rel string, mode os.FileMode) error {
	if rel == "." || rel == "" {
		return nil
	}
	if st, err := t.Lstat(rel); err == nil {
		if st.IsDir() {
			return nil
		}
		return fmt.Errorf("/%s exists and is not a directory: %w", rel, errdefs.ErrExists)
	}
	if err := t.mkdirAll(path.Dir(rel), 0o755); err != nil {
		return err
	}
	if err := t.Mkdir(rel, mode.Perm()); err != nil && !os.IsExist(err) {
		return err
	}
	return t.Chmod(rel, mode)
}

// writeFile writes the file rel of the tree with mode, whatever the
// umask, its parents made 0755 when missing. Whatever was at rel (a
// symlink included) is replaced, never followed. Not durable: the tree is
// committed, and the commit is what is synced.
func (t *buildTree) writeFile(rel string, b []byte, mode os.FileMode) error {
	return t.writeFunc(rel, mode, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// copyIn copies the file src of the build machine to rel in the tree,
// as writeFile does.
func (t *buildTree) copyIn(src, rel string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return t.writeFunc(rel, mode, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

func (t *buildTree) writeFunc(rel string, mode os.FileMode, fill func(io.Writer) error) error {
	if err := t.mkdirAll(path.Dir(rel), 0o755); err != nil {
		return fmt.Errorf("writing /%s: %w", rel, err)
	}
	if err := t.Remove(rel); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("writing /%s: %w", rel, err)
	}
	f, err := t.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing /%s: %w", rel, err)
	}
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("writing /%s: %w", rel, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// emptyDir removes what the directory rel holds (not rel itself); a
// missing rel is no error. A symlink at rel is left alone: the caller's
// mkdirAll refuses it.
func (t *buildTree) emptyDir(rel string) error {
	st, err := t.Lstat(rel)
	if os.IsNotExist(err) || (err == nil && !st.IsDir()) {
		return nil
	}
	if err != nil {
		return err
	}
	ents, err := t.readDir(rel)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := t.RemoveAll(path.Join(rel, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
