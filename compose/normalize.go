package compose

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/fsutil"
)

// XattrAllowlist is the extended attributes a composed tree keeps; every
// other one (user.*, security.selinux of the build host, ...) is removed,
// so the build machine's filesystem cannot change the commit.
var XattrAllowlist = map[string]bool{
	"security.capability": true,
}

// NormalizeStats counts what normalize saw.
type NormalizeStats struct {
	Files int64 // regular files and symlinks kept
	Bytes int64 // their size
}

// Normalize makes a laid-out tree (etc in usr/etc) independent of how and
// when it was built, removing what identifies a build or a machine:
//   - /usr/etc/machine-id empty (systemd fills it at first boot);
//   - ssh host keys (strata-ssh-keygen.service makes them at first boot);
//   - /usr/etc/hostname unless the spec sets one, /usr/etc/resolv.conf
//     when it is a file (the build host's);
//   - backups: *-old, *.dpkg-old, passwd- and its siblings, .pwd.lock;
//   - Python bytecode (__pycache__, *.pyc): it embeds source mtimes and
//     is not reproducible between builds; Python runs without it;
//   - extended attributes not in XattrAllowlist.
//
// Timestamps need no care: OSTree does not record them. keepHostname keeps
// /usr/etc/hostname.
func Normalize(root string, keepHostname bool) (NormalizeStats, error) {
	var stats NormalizeStats
	t, err := openTree(root)
	if err != nil {
		return stats, err
	}
	defer t.Close()
	const etc = "usr/etc"
	if _, err := t.Lstat(path.Join(etc, "machine-id")); err == nil || os.IsNotExist(err) {
		if err := t.writeFile(path.Join(etc, "machine-id"), nil, 0o444); err != nil {
			return stats, err
		}
	} else {
		return stats, err
	}
	var ssh []fs.DirEntry
	if st, err := t.Lstat(path.Join(etc, "ssh")); err == nil && st.IsDir() {
		if ssh, err = t.readDir(path.Join(etc, "ssh")); err != nil {
			return stats, err
		}
	} else if err != nil && !os.IsNotExist(err) {
		return stats, err
	}
	for _, k := range ssh {
		if strings.HasPrefix(k.Name(), "ssh_host_") {
			if err := t.Remove(path.Join(etc, "ssh", k.Name())); err != nil {
				return stats, err
			}
		}
	}
	rm := []string{"resolv.conf", ".pwd.lock", "passwd-", "group-", "shadow-", "gshadow-", "subuid-", "subgid-"}
	if !keepHostname {
		rm = append(rm, "hostname")
	}
	for _, n := range rm {
		p := path.Join(etc, n)
		st, err := t.Lstat(p)
		if err != nil || st.Mode()&os.ModeSymlink != 0 {
			continue
		}
		if err := t.Remove(p); err != nil {
			return stats, err
		}
	}
	// The walk descends only into directories (never through a
	// symlink), resolved beneath the tree; removals go through it too.
	// Extended attributes have no os.Root call: they are removed by the
	// path the walk found, whose every component is a directory of the
	// tree (nothing else changes the tree meanwhile).
	err = fs.WalkDir(t.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && name == "__pycache__" {
			if err := t.RemoveAll(p); err != nil {
				return err
			}
			return fs.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(name, "-old") || strings.HasSuffix(name, ".dpkg-old") || strings.HasSuffix(name, ".pyc")) {
			return t.Remove(p)
		}
		if err := filterXattrs(filepath.Join(root, p)); err != nil {
			return fmt.Errorf("/%s: %w", p, err)
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			stats.Files++
			stats.Bytes += info.Size()
		}
		return nil
	})
	return stats, err
}

func filterXattrs(p string) error {
	_, names, err := fsutil.ListXattrs(p)
	if err != nil {
		return err
	}
	for _, n := range names {
		if XattrAllowlist[n] {
			continue
		}
		if err := unix.Lremovexattr(p, n); err != nil && err != unix.ENODATA {
			return fmt.Errorf("removing xattr %s: %w", n, err)
		}
	}
	return nil
}
