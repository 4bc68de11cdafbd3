package demoos

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-os/strata/bootloader"
)

// Entry is a Boot Loader Specification entry as the demo loader sees it:
// its file name and the values it boots with.
type Entry struct {
	File    string // file name in loader/entries, e.g. ostree-2-demo+3.conf
	Title   string
	Version string
	Linux   string
	Initrd  string
	Options string
}

// Bad reports an entry whose boot counter ran out (NAME+0-DONE.conf): a
// loader sorts it after every other entry.
func (e *Entry) Bad() bool { return bootloader.Bad(e.File) }

// Tries returns the boot counter of the entry's name; ok is false when it
// has none (never counted, or blessed by boot-complete).
func (e *Entry) Tries() (left, done uint64, ok bool) { return bootloader.Tries(e.File) }

// Entries reads every *.conf of loader/entries from the boot directory
// of the sysroot mounted at mnt, in the order a BLS loader with boot
// counting (systemd-boot) lists them, the default first
// (bootloader.SortEntries: exhausted counters last, then the highest
// version).
func Entries(mnt string) ([]*Entry, error) {
	dir := filepath.Join(mnt, "boot/loader/entries")
	names, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return nil, err
	}
	var les []bootloader.LoaderEntry
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		be, err := bootloader.ParseEntry(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		les = append(les, bootloader.LoaderEntry{Name: filepath.Base(n), Entry: be})
	}
	if len(les) == 0 {
		return nil, fmt.Errorf("no boot entries in %s", dir)
	}
	bootloader.SortEntries(les)
	out := make([]*Entry, 0, len(les))
	for _, le := range les {
		e := &Entry{File: le.Name, Title: le.Entry.Value("title"), Version: le.Entry.Value("version"),
			Linux: le.Entry.Value("linux"), Initrd: le.Entry.Value("initrd"), Options: le.Entry.Value("options")}
		if e.Linux == "" {
			return nil, fmt.Errorf("boot entry %s: no linux line", filepath.Join(dir, le.Name))
		}
		out = append(out, e)
	}
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
	if left, _, ok := e.Tries(); ok && left > 0 {
		b.Renamed = bootloader.Decrement(e.File)
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
