package main

// Deployable trees and the repositories that hold them, shared by the
// admin-deploy and pull ops of one tree.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	benchOS   = "bench"       // the stateroot of the deploy ops
	benchKver = "6.1.0-bench" // the fake kernel's version
	// updateEvery: v2 rewrites every updateEvery-th non-empty regular file
	// (about 3 %).
	updateEvery = 33
)

// osTrees are two versions of an OS made from the input tree: v1 is the
// tree made deployable (its /etc moved to /usr/etc, a small fake kernel
// and initramfs, a few /etc defaults of the harness's own), v2 an update
// of v1 that rewrites a few percent of its files. Both are hard-linked
// copies: only new directories and the rewritten files take space, and the
// input tree is never written.
type osTrees struct {
	v1, v2  string
	changed int   // files v2 rewrote
	bytes   int64 // their size in v2
}

// osTrees makes e's deployable trees on first use.
func (e *env) osTrees(ctx context.Context) (*osTrees, error) {
	if e.os != nil {
		return e.os, nil
	}
	t := &osTrees{v1: filepath.Join(e.work, "os-v1"), v2: filepath.Join(e.work, "os-v2")}
	for _, d := range []string{t.v1, t.v2} {
		if err := removeTree(d); err != nil {
			return nil, err
		}
	}
	logf("  os trees: v1 (deployable) and v2 (update), hard-linked copies of %s", e.tree)
	if err := linkCopy(ctx, e.tree, t.v1); err != nil {
		return nil, err
	}
	if err := makeDeployable(t.v1); err != nil {
		return nil, fmt.Errorf("os tree v1: %w", err)
	}
	if err := linkCopy(ctx, t.v1, t.v2); err != nil {
		return nil, err
	}
	var err error
	if t.changed, t.bytes, err = makeUpdate(t.v2); err != nil {
		return nil, fmt.Errorf("os tree v2: %w", err)
	}
	logf("  os tree v2 rewrites %d files, %.1f MiB", t.changed, float64(t.bytes)/(1<<20))
	e.os = t
	return t, nil
}

// linkCopy makes dst a copy of src whose directories are new and whose
// files are hard links to src's (cp -al keeps modes, owners and xattrs).
func linkCopy(ctx context.Context, src, dst string) error {
	out, err := exec.CommandContext(ctx, "cp", "-a", "--link", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -al %s %s: %w: %s", src, dst, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// makeDeployable turns a hard-linked copy of a root tree into one that
// both `ostree admin deploy` and `strata admin deploy` take as an OS: /etc
// becomes /usr/etc (what an image build does; ostree would otherwise do it
// at each deploy), a fake kernel and initramfs go to
// usr/lib/modules/KVER/, /usr/etc/bench holds 20 defaults that the upgrade
// op edits, /usr/etc/os-release is made when the tree has none, and the
// top-level directories a deployment expects exist. It
// only renames directories and creates new files: never does it write
// through a link into the input tree.
func makeDeployable(dir string) error {
	etc, usrEtc := filepath.Join(dir, "etc"), filepath.Join(dir, "usr", "etc")
	if _, err := os.Lstat(etc); err == nil {
		if _, err := os.Lstat(usrEtc); err == nil {
			return fmt.Errorf("%s has both /etc and /usr/etc", dir)
		}
		if err := os.MkdirAll(filepath.Dir(usrEtc), 0o755); err != nil {
			return err
		}
		if err := os.Rename(etc, usrEtc); err != nil {
			return err
		}
	}
	for _, d := range []string{"usr/etc/bench", "usr/lib/modules/" + benchKver,
		"var", "boot", "proc", "sys", "dev", "run", "tmp", "sysroot"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for i := range 20 {
		data := fmt.Sprintf("# strata bench default %d\nkey%d = value%d\n", i, i, i)
		if err := createFile(filepath.Join(usrEtc, "bench", fmt.Sprintf("conf%02d.conf", i)), []byte(data), 0o644); err != nil {
			return err
		}
	}
	// Both deploys read the title of boot entries from /etc/os-release.
	osRelease := filepath.Join(usrEtc, "os-release")
	if _, err := os.Lstat(osRelease); errors.Is(err, fs.ErrNotExist) {
		data := "NAME=\"strata bench\"\nID=bench\nPRETTY_NAME=\"strata bench tree\"\nVERSION_ID=1\n"
		if err := createFile(osRelease, []byte(data), 0o644); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewPCG(6, 1))
	for name, size := range map[string]int{"vmlinuz": 64 << 10, "initramfs.img": 32 << 10} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := createFile(filepath.Join(dir, "usr/lib/modules", benchKver, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// createFile writes a new file, failing if the name exists (so that it
// can never write into a hard-linked file).
func createFile(p string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil { // umask
		f.Close()
		return err
	}
	return f.Close()
}

// makeUpdate rewrites, in a hard-linked copy, every updateEvery-th
// non-empty regular file without xattrs (in lexical order, so the choice
// is the same on every run) and usr/etc/bench/conf01.conf: each gets its
// old bytes plus a line naming it, under a new inode with the old mode and
// owner. It returns how many files it rewrote and their new total size.
func makeUpdate(dir string) (int, int64, error) {
	var n, idx int
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() == 0 {
			return nil
		}
		idx++
		if idx%updateEvery != 1 && rel != "usr/etc/bench/conf01.conf" {
			return nil
		}
		if sz, err := unix.Llistxattr(p, nil); err != nil || sz > 0 {
			return nil // keep files with xattrs (capabilities, ...) as they are
		}
		size, err := rewrite(p, rel, fi)
		if err != nil {
			return fmt.Errorf("rewriting %s: %w", p, err)
		}
		n++
		total += size
		return nil
	})
	return n, total, err
}

// rewrite replaces the link p with a new file holding its old bytes and a
// line naming rel, with fi's mode and owner.
func rewrite(p, rel string, fi fs.FileInfo) (int64, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	data = append(data, "\nstrata-bench v2 "+rel+"\n"...)
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("no stat")
	}
	if err := os.Remove(p); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chown(int(st.Uid), int(st.Gid))
	}
	if err == nil { // after chown, which clears setuid and setgid
		err = f.Chmod(fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return int64(len(data)), err
}

// An osRepo holds the osTrees as two commits, v1 and its child v2 (ref
// bench, and refs bench-v1 and bench-v2 so that a prune keeps both),
// committed by the reference ostree.
type osRepo struct {
	path   string
	v1, v2 string // commit checksums
	// views, for an archive repo: directories that serve the repo as it
	// was after the v1 commit and after the v2 commit (their own summary
	// and refs, the repo's objects and config by symlink).
	views map[string]string
}

// osRepo makes a repo of the given mode holding the osTrees on first use.
// An archive repo also gets `summary -u` and a view per version.
func (e *env) osRepo(ctx context.Context, mode string) (*osRepo, error) {
	if r, ok := e.osRepos[mode]; ok {
		return r, nil
	}
	t, err := e.osTrees(ctx)
	if err != nil {
		return nil, err
	}
	r := &osRepo{path: filepath.Join(e.work, "os-"+mode), views: map[string]string{}}
	if err := removeTree(r.path); err != nil {
		return nil, err
	}
	logf("  fixture: %s repo of os trees v1 and v2, committed by %s", mode, e.reference.Name)
	ref := e.reference.Path
	if _, err := run(ctx, ref, "--repo="+r.path, "init", "--mode="+mode); err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	ts, err := time.Parse(time.RFC3339, e.cfg.timestamp)
	if err != nil {
		return nil, fmt.Errorf("-timestamp: %w", err)
	}
	for i, tree := range []string{t.v1, t.v2} {
		v := fmt.Sprint(i + 1)
		out, err := run(ctx, ref, "--repo="+r.path, "commit", "-b", "bench", "--tree=dir="+tree,
			"-s", "bench v"+v, "--add-metadata-string=version="+v,
			"--timestamp="+ts.Add(time.Duration(i)*24*time.Hour).Format(time.RFC3339))
		if err != nil {
			return nil, fmt.Errorf("fixture: %w", err)
		}
		csum, err := commitChecksum(out)
		if err != nil {
			return nil, fmt.Errorf("fixture: %w", err)
		}
		if _, err := run(ctx, ref, "--repo="+r.path, "refs", "--create=bench-v"+v, csum); err != nil {
			return nil, fmt.Errorf("fixture: %w", err)
		}
		if i == 0 {
			r.v1 = csum
		} else {
			r.v2 = csum
		}
		if mode == "archive" {
			if _, err := run(ctx, ref, "--repo="+r.path, "summary", "-u"); err != nil {
				return nil, fmt.Errorf("fixture: %w", err)
			}
			view := filepath.Join(e.work, "view-v"+v)
			if err := makeView(r.path, view); err != nil {
				return nil, fmt.Errorf("fixture: %w", err)
			}
			r.views["v"+v] = view
		}
	}
	if e.osRepos == nil {
		e.osRepos = map[string]*osRepo{}
	}
	e.osRepos[mode] = r
	return r, nil
}

// makeView makes dir serve the archive repo at repo as it is now: copies
// of its summary and refs, and symlinks to its config and objects (which
// only grow).
func makeView(repo, dir string) error {
	if err := removeTree(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"config", "objects"} {
		if err := os.Symlink(filepath.Join(repo, name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repo, p)
		if err != nil {
			return err
		}
		top, _, _ := strings.Cut(rel, "/")
		switch {
		case rel == ".":
			return nil
		case top != "refs" && top != "summary" && top != "summary.sig":
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return createFile(filepath.Join(dir, rel), data, 0o644)
		}
		return nil
	})
}

// writeRef points a local ref of the repo at path to csum, as ostree
// writes refs/heads files.
func writeRef(repo, ref, csum string) error {
	p := filepath.Join(repo, "refs", "heads", ref)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(csum+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// readRef returns the checksum in a ref file (refs/heads/..., refs/remotes/...).
func readRef(repo, rel string) (string, error) {
	b, err := os.ReadFile(filepath.Join(repo, "refs", rel))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// removeSysroot removes a sysroot after clearing the immutable flag that
// both ostree and strata set on deployment directories.
func removeSysroot(dir string) error {
	deps, _ := filepath.Glob(filepath.Join(dir, "ostree", "deploy", "*", "deploy", "*"))
	for _, d := range deps {
		if err := clearImmutable(d); err != nil {
			return err
		}
	}
	return removeTree(dir)
}

// clearImmutable clears FS_IMMUTABLE_FL on a directory.
func clearImmutable(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("%s: %w", dir, err)
	}
	defer unix.Close(fd)
	const immutable = 0x10 // FS_IMMUTABLE_FL
	flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&immutable == 0 {
		return nil
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags&^immutable); err != nil {
		return fmt.Errorf("clearing the immutable flag of %s: %w", dir, err)
	}
	return nil
}
