package sysroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/repo"
)

// InitFS creates a sysroot at path (which must exist), as `ostree admin
// init-fs` does: boot/, and unless modern also dev/, home/, proc/, run/,
// sys/, root/ (0700) and tmp/ (01777); then ostree/deploy/ and a bare
// repository in ostree/repo. Existing directories are kept. Modes are
// subject to the umask, as ostree's are.
func InitFS(path string, modern bool) error {
	if st, err := os.Stat(path); err != nil {
		return fmt.Errorf("init-fs: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("%w: init-fs: %s is not a directory", ErrInvalid, path)
	}
	if err := fsutil.CheckFailpoint("sysroot:init-fs"); err != nil {
		return err
	}
	dirs := []struct {
		name string
		mode os.FileMode
	}{{"boot", 0o755}}
	if !modern {
		dirs = append(dirs, []struct {
			name string
			mode os.FileMode
		}{{"dev", 0o755}, {"home", 0o755}, {"proc", 0o755}, {"run", 0o755}, {"sys", 0o755}, {"root", 0o700}, {"tmp", 0o1777}}...)
	}
	for _, d := range dirs {
		p := filepath.Join(path, d.name)
		if err := mkdirSync(p, d.mode); err != nil {
			return fmt.Errorf("init-fs: %w", err)
		}
		if d.name == "tmp" {
			if err := os.Chmod(p, os.ModeSticky|0o777); err != nil {
				return fmt.Errorf("init-fs: %w", err)
			}
		}
	}
	return ensureInitialized(path)
}

// mkdirSync creates dir (mkdir -p) and syncs its parent.
func mkdirSync(dir string, mode os.FileMode) error {
	if err := fsutil.MkdirAllSync(dir, mode&os.ModePerm); err != nil {
		return err
	}
	return nil
}

// ensureInitialized creates ostree/repo (bare) and ostree/deploy.
func ensureInitialized(path string) error {
	for _, d := range []string{"ostree/repo", "ostree/deploy"} {
		if err := mkdirSync(filepath.Join(path, d), 0o755); err != nil {
			return fmt.Errorf("init %s: %w", path, err)
		}
	}
	if _, err := repo.Init(filepath.Join(path, "ostree/repo"), repo.ModeBare, repo.InitOptions{}); err != nil {
		return fmt.Errorf("init %s: %w", path, err)
	}
	return nil
}

// ValidateOSName checks a stateroot name: one path component.
func ValidateOSName(name string) error {
	// The name goes into boot entries (title, paths, ostree=): no white
	// space or control characters.
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") || bootloader.CheckBootName(name) != nil {
		return fmt.Errorf("%w: invalid stateroot name %q", ErrInvalid, name)
	}
	return nil
}

// InitOS creates the stateroot name in the sysroot at path, as `ostree
// admin os-init` does: ostree/deploy/NAME/var with tmp (01777), lib, log,
// and the symlinks run -> ../run and lock -> ../run/lock. The sysroot is
// initialized first when needed. It is an error if the stateroot exists.
func InitOS(path, name string) error {
	if err := ValidateOSName(name); err != nil {
		return err
	}
	if err := ensureInitialized(path); err != nil {
		return err
	}
	if err := fsutil.CheckFailpoint("sysroot:os-init"); err != nil {
		return err
	}
	osdir := filepath.Join(path, "ostree/deploy", name)
	if err := os.Mkdir(osdir, 0o777); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: stateroot %s (%s)", repo.ErrExists, name, osdir)
		}
		return fmt.Errorf("os-init: %w", err)
	}
	steps := []func() error{
		func() error { return os.Mkdir(filepath.Join(osdir, "var"), 0o777) },
		func() error { return os.Mkdir(filepath.Join(osdir, "var/tmp"), 0o777) },
		func() error { return os.Chmod(filepath.Join(osdir, "var/tmp"), os.ModeSticky|0o777) },
		func() error { return os.Mkdir(filepath.Join(osdir, "var/lib"), 0o777) },
		func() error { return os.Mkdir(filepath.Join(osdir, "var/log"), 0o755) },
		func() error { return os.Symlink("../run", filepath.Join(osdir, "var/run")) },
		func() error { return os.Symlink("../run/lock", filepath.Join(osdir, "var/lock")) },
		func() error { return fsutil.SyncDir(filepath.Join(osdir, "var")) },
		func() error { return fsutil.SyncDir(osdir) },
		func() error { return fsutil.SyncDir(filepath.Dir(osdir)) },
	}
	for _, f := range steps {
		if err := f(); err != nil {
			return fmt.Errorf("os-init %s: %w", name, err)
		}
	}
	return bumpMtime(path)
}

// bumpMtime touches ostree/deploy, as ostree does after every change so
// that other processes notice.
func bumpMtime(path string) error {
	now := time.Now()
	if err := os.Chtimes(filepath.Join(path, "ostree/deploy"), now, now); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	return nil
}
