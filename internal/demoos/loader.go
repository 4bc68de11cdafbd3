package demoos

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Entry is a Boot Loader Specification entry as the demo loader sees it.
type Entry struct {
	File    string // file name in loader/entries, e.g. ostree-2-demo+3.conf
	Title   string
	Version string
	Linux   string
	Initrd  string
	Options string
	// Left and Done are the boot-counting tries left and done from the
	// file name (NAME+LEFT[-DONE].conf); Left is -1 when the entry is not
	// counted (blessed, or never counted).
	Left, Done int
}

// Bad reports an entry whose boot counter ran out: systemd-boot sorts it
// after every other entry.
func (e *Entry) Bad() bool { return e.Left == 0 }

// ParseEntry parses a BLS entry file's text; name is its file name.
func ParseEntry(name, text string) (*Entry, error) {
	e := &Entry{File: name}
	e.Left, e.Done = countOf(name)
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		v = strings.TrimSpace(v)
		switch k {
		case "title":
			e.Title = v
		case "version":
			e.Version = v
		case "linux":
			e.Linux = v
		case "initrd":
			e.Initrd = v
		case "options":
			e.Options = v
		}
	}
	if e.Linux == "" {
		return nil, fmt.Errorf("boot entry %s: no linux line", name)
	}
	return e, nil
}

// countOf parses the boot-counting suffix of an entry file name as
// systemd-boot does: "+LEFT.conf" or "+LEFT-DONE.conf". It returns -1, 0
// for a name without one.
func countOf(name string) (left, done int) {
	base := strings.TrimSuffix(name, ".conf")
	i := strings.LastIndexByte(base, '+')
	if i < 0 {
		return -1, 0
	}
	l, d, hasDone := strings.Cut(base[i+1:], "-")
	left, err := strconv.Atoi(l)
	if err != nil || left < 0 {
		return -1, 0
	}
	if hasDone {
		if done, err = strconv.Atoi(d); err != nil || done < 0 {
			return -1, 0
		}
	}
	return left, done
}

// decremented is the file name systemd-boot renames a counted entry to
// before booting it: one try fewer left, one more done.
func decremented(e *Entry) string {
	base := strings.TrimSuffix(e.File, ".conf")
	base = base[:strings.LastIndexByte(base, '+')]
	return fmt.Sprintf("%s+%d-%d.conf", base, e.Left-1, e.Done+1)
}

// SortEntries orders entries as a BLS loader with boot counting picks
// them, the default first: entries whose counter ran out last, then the
// highest version, then the highest file name.
func SortEntries(es []*Entry) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Bad() != b.Bad() {
			return b.Bad()
		}
		if c := versionCompare(a.Version, b.Version); c != 0 {
			return c > 0
		}
		return a.File > b.File
	})
}

// versionCompare compares BLS versions: numerically when both are
// integers (OSTree writes integers), as strings otherwise.
func versionCompare(a, b string) int {
	ai, aerr := strconv.Atoi(a)
	bi, berr := strconv.Atoi(b)
	if aerr == nil && berr == nil {
		switch {
		case ai < bi:
			return -1
		case ai > bi:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}

// Entries reads loader/entries from the boot directory of the sysroot
// mounted at mnt, the default first (see SortEntries).
func Entries(mnt string) ([]*Entry, error) {
	dir := filepath.Join(mnt, "boot/loader/entries")
	names, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		e, err := ParseEntry(filepath.Base(n), string(data))
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no boot entries in %s", dir)
	}
	SortEntries(out)
	return out, nil
}

// Boot is what the demo loader hands to QEMU.
type Boot struct {
	Entry   *Entry // the chosen entry, as it was before any rename
	Renamed string // its new file name when its counter was decremented
	Kernel  string // copies of the entry's kernel and initramfs
	Initrd  string
	Options string // the entry's options line
	Entries []*Entry
}

// LoadDefault does a boot loader's work on the sysroot disk image img:
// it reads the BLS entries, picks the default one, decrements its
// boot counter by renaming the entry file (systemd-boot's scheme: a
// counted entry that is booted and never blessed runs out of tries and
// sorts last), and copies its kernel and initramfs into dir.
func LoadDefault(img, dir string) (b *Boot, err error) {
	mnt, err := os.MkdirTemp(dir, "mnt-")
	if err != nil {
		return nil, err
	}
	umount, err := MountImage(img, mnt)
	if err != nil {
		return nil, err
	}
	defer func() {
		if uerr := umount(); err == nil && uerr != nil {
			err = uerr
		}
		os.Remove(mnt)
	}()
	entries, err := Entries(mnt)
	if err != nil {
		return nil, err
	}
	e := entries[0]
	b = &Boot{Entry: e, Options: e.Options, Entries: entries}
	if e.Left > 0 {
		b.Renamed = decremented(e)
		edir := filepath.Join(mnt, "boot/loader/entries")
		if err := os.Rename(filepath.Join(edir, e.File), filepath.Join(edir, b.Renamed)); err != nil {
			return nil, fmt.Errorf("counting a boot of %s: %w", e.File, err)
		}
	}
	b.Kernel, b.Initrd, err = BootFiles(mnt, e, dir)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// bootPath finds a kernel or initramfs named by an entry: BLS paths are
// relative to the partition holding the entries, which is /boot of the
// physical root here (or the root itself when /boot is a partition).
func bootPath(mnt, p string) (string, error) {
	for _, c := range []string{filepath.Join(mnt, "boot", p), filepath.Join(mnt, p)} {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("boot file %s not found under %s", p, mnt)
}

// BootFiles copies an entry's kernel and initramfs out of the mounted
// sysroot into dir, as a boot loader would load them.
func BootFiles(mnt string, e *Entry, dir string) (kernel, initrd string, err error) {
	kp, err := bootPath(mnt, e.Linux)
	if err != nil {
		return "", "", err
	}
	kernel = filepath.Join(dir, "vmlinuz")
	if err := copyFile(kp, kernel, 0o644); err != nil {
		return "", "", err
	}
	if e.Initrd != "" {
		ip, err := bootPath(mnt, e.Initrd)
		if err != nil {
			return "", "", err
		}
		initrd = filepath.Join(dir, "initrd")
		if err := copyFile(ip, initrd, 0o644); err != nil {
			return "", "", err
		}
	}
	return kernel, initrd, nil
}
