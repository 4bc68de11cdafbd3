package compose

import (
	"fmt"
	"io/fs"
	"os"
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
	etc := filepath.Join(root, "usr/etc")
	if _, err := os.Lstat(filepath.Join(etc, "machine-id")); err == nil || os.IsNotExist(err) {
		if err := writeFileMode(filepath.Join(etc, "machine-id"), nil, 0o444); err != nil {
			return stats, err
		}
	}
	keys, _ := filepath.Glob(filepath.Join(etc, "ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return stats, err
		}
	}
	rm := []string{"resolv.conf", ".pwd.lock", "passwd-", "group-", "shadow-", "gshadow-", "subuid-", "subgid-"}
	if !keepHostname {
		rm = append(rm, "hostname")
	}
	for _, n := range rm {
		p := filepath.Join(etc, n)
		st, err := os.Lstat(p)
		if err != nil || st.Mode()&os.ModeSymlink != 0 {
			continue
		}
		if err := os.Remove(p); err != nil {
			return stats, err
		}
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && name == "__pycache__" {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(name, "-old") || strings.HasSuffix(name, ".dpkg-old") || strings.HasSuffix(name, ".pyc")) {
			return os.Remove(p)
		}
		if err := filterXattrs(p); err != nil {
			return fmt.Errorf("%s: %w", p, err)
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
