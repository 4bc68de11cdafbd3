package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/fsutil"
	"golang.org/x/sys/unix"
)

// Factory reset (bootc#404): a new stateroot with /etc from the image and
// an empty /var, deployed from the booted commit; the old stateroot stays
// (a rollback goes back to it) until ResetCleanup removes it.

// ResetGroup and ResetFromKey record, in the new deployment's origin,
// which stateroot the reset replaced.
const (
	ResetGroup   = "strata"
	ResetFromKey = "reset-from"
)

// ResetOptions are the arguments of Reset.
type ResetOptions struct {
	// OS is the stateroot to reset; "" is the booted one.
	OS string
	// NewOS names the new stateroot; "" picks OS's base name + "-reset-N".
	NewOS string
}

// ResetKeepEtc are the files of /etc a reset keeps: the mounts the
// install wrote (the ESP at /boot/efi), without which the reset system
// could not reach its boot loader to bless its boot.
var ResetKeepEtc = []string{"fstab"}

var resetSuffix = regexp.MustCompile(`-reset-[0-9]+$`)

// Reset os-inits a new stateroot and deploys into it the commit of OS's
// booted (or, not booted, first) deployment, with /etc from the image (no
// merge), an empty /var and the same kernel arguments; it becomes the
// default. Every deployment of the old stateroot is kept.
func (s *Sysroot) Reset(ctx context.Context, o ResetOptions) (*DeployResult, string, error) {
	src := s.booted
	if o.OS != "" && (src == nil || src.OS != o.OS) {
		src = nil
		for _, d := range s.deployments {
			if d.OS == o.OS && !d.Staged {
				src = d
				break
			}
		}
	}
	if src == nil {
		return nil, "", fmt.Errorf("%w: no deployment of stateroot %q to reset", ErrNotFound, o.OS)
	}
	newOS := o.NewOS
	if newOS == "" {
		base := resetSuffix.ReplaceAllString(src.OS, "")
		for n := 1; ; n++ {
			newOS = base + "-reset-" + strconv.Itoa(n)
			if _, err := os.Lstat(filepath.Join(s.path, "ostree/deploy", newOS)); os.IsNotExist(err) {
				break
			}
		}
	}
	if err := InitOS(s.path, newOS); err != nil {
		return nil, "", err
	}
	origin := setOriginKey(removeTransient(src.Origin), ResetGroup, ResetFromKey, src.OS)
	res, err := s.Deploy(ctx, DeployOptions{
		OS: newOS, Revision: src.Checksum.String(), Origin: origin, NoMerge: true,
		KargAppend: strings.Fields(bootloader.WithoutKarg(src.Options(), "ostree")),
		KeepEtc:    ResetKeepEtc, KeepEtcFrom: src,
	})
	if err != nil {
		return nil, newOS, err
	}
	return res, newOS, nil
}

// resetFrom is the stateroot d's reset replaced ("" when none).
func resetFrom(d *Deployment) string {
	if d == nil || d.Origin == nil {
		return ""
	}
	v, _ := d.Origin.Get(ResetGroup, ResetFromKey)
	return v
}

// ResetCleanup removes the stateroot the reset of OS (default: the booted
// one) replaced: its deployments, then ostree/deploy/OLD with its /var.
// It returns the removed stateroot's name ("" when there was none).
func (s *Sysroot) ResetCleanup(ctx context.Context, osname string) (string, error) {
	if osname == "" {
		if s.booted == nil {
			return "", fmt.Errorf("%w and no --os= argument given", ErrNotBooted)
		}
		osname = s.booted.OS
	}
	var keep *Deployment
	for _, d := range s.deployments {
		if d.OS == osname && resetFrom(d) != "" {
			keep = d
			break
		}
	}
	old := resetFrom(keep)
	if old == "" || old == osname {
		return "", nil
	}
	// The name comes from an origin file and is removed as a directory
	// under ostree/deploy: "..", a path or anything no stateroot can be
	// named would remove something else.
	if ValidateOSName(old) != nil {
		return "", fmt.Errorf("%w: %s's origin: %s=%q is no stateroot name", ErrCorrupt, keep.OS, ResetFromKey, old)
	}
	if s.booted != nil && s.booted.OS == old {
		return "", fmt.Errorf("%w: the booted deployment is in stateroot %s", ErrInvalid, old)
	}
	removed := false
	err := s.withLock(ctx, func() error {
		var list []*Deployment
		for _, d := range s.deployments {
			if d.OS != old {
				list = append(list, d)
			}
		}
		if len(list) != len(s.deployments) {
			removed = true
			if _, err := s.writeDeployments(ctx, list, writeOptions{postclean: true, prune: true}); err != nil {
				return err
			}
		}
		dir := filepath.Join(s.path, "ostree/deploy", old)
		if _, err := os.Lstat(dir); os.IsNotExist(err) {
			return nil
		}
		removed = true
		if err := removeTree(dir); err != nil {
			return err
		}
		return fsutil.SyncDir(filepath.Dir(dir))
	})
	if !removed {
		old = ""
	}
	return old, err
}

// maxKeptEtcFile bounds a file KeepEtc copies.
const maxKeptEtcFile = 1 << 20

// copyEtcFiles copies the regular files names (relative to etc/) from
// the deployment at from into the one at to, each resolved beneath its
// tree (a symlink is not followed), and written durably with
// fsutil.WriteFile. A name from lacks is skipped.
func copyEtcFiles(from, to string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	fromfd, err := openTree(from)
	if err != nil {
		return err
	}
	defer unix.Close(fromfd)
	// The new deployment's etc is a real directory (checkTreeDirs), and
	// the rename of fsutil.WriteFile replaces a symlink at the name
	// instead of following it.
	for _, name := range names {
		if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
			return fmt.Errorf("%w: /etc file to keep %q: want a plain name", ErrInvalid, name)
		}
		f, err := fsutil.OpenRegularInRoot(fromfd, "etc/"+name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("deployment %s: etc/%s: %w", from, name, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return err
		}
		data, err := fsutil.ReadAllLimit(f, maxKeptEtcFile)
		f.Close()
		if err != nil {
			return fmt.Errorf("deployment %s: etc/%s: %w", from, name, err)
		}
		if err := fsutil.WriteFile(filepath.Join(to, "etc", name), data, os.FileMode(st.Mode&0o777)); err != nil {
			return fmt.Errorf("deployment %s: etc/%s: %w", to, name, err)
		}
	}
	return nil
}
