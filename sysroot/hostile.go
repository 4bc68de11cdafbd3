package sysroot

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
)

// A deployment tree comes from a commit strata does not trust: any of its
// entries may be a symlink pointing out of the sysroot. Everything a
// deploy writes, renames or removes inside a deployment is therefore
// resolved beneath the deployment's directory without following symlinks
// (fsutil.*Beneath), and the directories it writes below must be real
// directories.

// treeDirs are the directories of a deployment that deploy writes below
// (the /etc move, the /etc copy and merge), that the stateroot's /var is
// seeded from, or that prepare-root mounts on at boot (var, sysroot):
// when present they must be real directories, not symlinks or files.
var treeDirs = []string{"usr", "usr/etc", "etc", "var", "sysroot"}

// openTree opens a deployment directory for resolving names beneath it.
func openTree(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("sysroot: open %s: %w", dir, err)
	}
	return fd, nil
}

// checkTreeDirs refuses a tree whose usr, usr/etc, etc, var or sysroot
// exists and is not a real directory; what names the tree in the error ("commit CSUM",
// "deployment NAME").
func checkTreeDirs(rootfd int, what string) error {
	for _, name := range treeDirs {
		st, err := fsutil.LstatBeneath(rootfd, name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: /%s: %w", what, name, err)
		}
		if kind := fileKind(st.Mode); kind != "directory" {
			return fmt.Errorf("%w: %s: /%s is a %s, not a directory", ErrInvalid, what, name, kind)
		}
	}
	return nil
}

// checkDeploymentDirs is checkTreeDirs on a deployment directory.
func checkDeploymentDirs(dir, what string) error {
	fd, err := openTree(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return checkTreeDirs(fd, what)
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFREG:
		return "regular file"
	}
	return "special file"
}

// checkKargs refuses kernel arguments that cannot go into a boot entry
// (a newline would add lines to it), before anything is written.
func checkKargs(lists ...[]string) error {
	for _, l := range lists {
		for _, a := range l {
			if err := bootloader.CheckEntryValue(a); err != nil {
				return fmt.Errorf("kernel argument %q: %w", a, err)
			}
		}
	}
	return nil
}

// checkTitle refuses, before the deployment is published, a tree whose
// entry title (os-release's PRETTY_NAME or ID, and the commit's version)
// cannot be written into a boot entry, or whose os-release cannot be
// read.
func (s *Sysroot) checkTitle(root string, csum objects.Checksum) error {
	name, err := bootloader.DeploymentName(root)
	if err != nil {
		return fmt.Errorf("commit %s: %w", csum, err)
	}
	if err := bootloader.CheckEntryValue(name); err != nil {
		return fmt.Errorf("commit %s: os-release name %q: %w", csum, name, err)
	}
	version, err := s.commitVersion(csum)
	if err != nil {
		return err
	}
	if err := bootloader.CheckEntryValue(version); err != nil {
		return fmt.Errorf("commit %s: version %q: %w", csum, version, err)
	}
	return nil
}
