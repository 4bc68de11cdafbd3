// Package esp projects a sysroot's live boot entries and kernels onto a
// vfat EFI System Partition for systemd-boot, in an order that keeps the
// ESP bootable into the old or the new default at every instant although
// vfat has neither symlinks nor an atomic rename over an existing name
// (docs/install.md, "ESP write order").
//
// The sysroot keeps OSTree's layout on its own filesystem (boot/loader ->
// loader.N, so `ostree admin status` reads it); this package only copies:
//
//	ESP/ostree/$os-$bootcsum/vmlinuz-$kver ...   content-addressed kernel copies
//	ESP/loader/entries/strata-G-V-$os-$key.conf  one generation G of entries
//
// Entry files of a newer generation sort above every older one in
// systemd-boot's order (bootloader.SortEntries), so writing the new generation's
// default first switches the default in one file creation, and older
// generations are removed last.
package esp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
)

// Steps lists the failpoints Sync passes, in order
// (fsutil.CheckFailpoint("esp:STEP")); fsutil adds its own write/fsync/
// rename/syncdir steps inside each.
var Steps = []string{
	"esp:kernels",
	"esp:entries",
	"esp:remove-stale",
	"esp:remove-kernels",
	"esp:bless",
}

// Entry is one live boot entry to project, default first.
type Entry struct {
	// Key names the deployment for good ("$csum.$serial"); the counter of
	// an ESP entry is carried to the next generation by this key.
	Key string
	// OS is the stateroot.
	OS string
	// Conf is the entry file's content (linux/initrd paths relative to
	// the boot directory, as on the sysroot).
	Conf []byte
	// Counter is the boot-counting suffix of the sysroot's entry
	// ("+3", "+2-1" or ""), used when the ESP has no entry for Key yet.
	Counter string
}

// EntriesDir is the ESP's entry directory, relative to the ESP.
const EntriesDir = "loader/entries"

var nameRE = regexp.MustCompile(`^strata-([0-9]+)-([0-9]+)-(.+)-([0-9a-f]{64}\.[0-9]+)$`)

// espEntry is one strata entry found on the ESP.
type espEntry struct {
	name    string // file name, with counter and .conf
	gen     int
	key     string
	counter string
}

// parseName parses strata-G-V-OS-KEY[+L[-D]].conf.
func parseName(name string) (espEntry, bool) {
	if !strings.HasSuffix(name, ".conf") || strings.HasPrefix(name, ".") {
		return espEntry{}, false
	}
	base := strings.TrimSuffix(bootloader.Blessed(name), ".conf")
	m := nameRE.FindStringSubmatch(base)
	if m == nil {
		return espEntry{}, false
	}
	g, err := strconv.Atoi(m[1])
	if err != nil {
		return espEntry{}, false
	}
	return espEntry{name: name, gen: g, key: m[4], counter: counterOf(name)}, true
}

// counterOf returns the "+L-D" suffix of an entry name, "" without one.
func counterOf(name string) string {
	b := bootloader.Blessed(name)
	if b == name {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(name, strings.TrimSuffix(b, ".conf")), ".conf")
}

// EntryName returns the ESP file name of entry index i of n in
// generation gen.
func EntryName(gen, n, i int, e Entry, counter string) string {
	return "strata-" + strconv.Itoa(gen) + "-" + strconv.Itoa(n-i) + "-" + strings.ToLower(e.OS) + "-" + e.Key + counter + ".conf"
}

// readESP lists the strata entries on the ESP.
func readESP(esp string) ([]espEntry, error) {
	des, err := os.ReadDir(filepath.Join(esp, EntriesDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("esp: %w", err)
	}
	var out []espEntry
	for _, de := range des {
		if e, ok := parseName(de.Name()); ok && de.Type().IsRegular() {
			out = append(out, e)
		}
	}
	return out, nil
}

// Sync makes the ESP at esp boot the entries (default first) with their
// kernels copied from bootDir. Order (each write durable: temporary name,
// fsync, rename, fsync of the directory):
//
//  1. kernels: every file an entry names (linux, initrd, devicetree) is
//     copied to the same path on the ESP unless an identical copy is
//     there; the directories are named by the boot checksum, so a file
//     at its final name is never rewritten with other content;
//  2. entries: generation G = newest on the ESP + 1; the new default's
//     entry is written first (from that instant it sorts first), then
//     the others;
//  3. remove-stale: entries of older generations are removed;
//  4. remove-kernels: kernel directories no entry names are removed.
//
// An interrupted Sync leaves the old or the new default first in
// systemd-boot's order; the next Sync finishes it. A Sync whose newest
// generation already equals entries only does steps 3 and 4.
func Sync(ctx context.Context, esp, bootDir string, entries []Entry) error {
	if len(entries) == 0 {
		return fmt.Errorf("%w: esp: no boot entries to write", errdefs.ErrInvalid)
	}
	dir := filepath.Join(esp, EntriesDir)
	if err := fsutil.MkdirAllSync(dir, 0o755); err != nil {
		return fmt.Errorf("esp: %w", err)
	}
	fsutil.RemoveStaleTemps(dir)
	have, err := readESP(esp)
	if err != nil {
		return err
	}
	gen := 0
	for _, e := range have {
		gen = max(gen, e.gen)
	}
	current, err := generation(esp, have, gen)
	if err != nil {
		return err
	}
	if !sameEntries(current, entries) {
		if err := copyKernels(ctx, esp, bootDir, entries); err != nil {
			return err
		}
		// The newest counter of each key wins (it is the one the loader
		// last renamed).
		counters := map[string]string{}
		sort.Slice(have, func(i, j int) bool { return have[i].gen < have[j].gen })
		for _, e := range have {
			counters[e.key] = e.counter
		}
		gen++
		if err := fsutil.CheckFailpoint("esp:entries"); err != nil {
			return err
		}
		for i, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			c, ok := counters[e.Key]
			if !ok {
				c = e.Counter
			}
			name := EntryName(gen, len(entries), i, e, c)
			if err := fsutil.WriteFile(filepath.Join(dir, name), e.Conf, 0o644); err != nil {
				return fmt.Errorf("esp: %w", err)
			}
		}
	}
	if err := fsutil.CheckFailpoint("esp:remove-stale"); err != nil {
		return err
	}
	have, err = readESP(esp)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range have {
		if e.gen < gen {
			if err := os.Remove(filepath.Join(dir, e.name)); err != nil {
				return fmt.Errorf("esp: %w", err)
			}
			removed = true
		}
	}
	if removed {
		if err := fsutil.SyncDir(dir); err != nil {
			return fmt.Errorf("esp: %w", err)
		}
	}
	return removeKernels(esp, entries)
}

// onESP is an entry of the ESP's newest generation: its key and content.
type onESP struct {
	key  string
	conf []byte
}

// generation returns the entries of generation gen on the ESP, default
// first.
func generation(esp string, have []espEntry, gen int) ([]onESP, error) {
	type item struct {
		v int
		e onESP
	}
	var items []item
	for _, e := range have {
		if e.gen != gen {
			continue
		}
		m := nameRE.FindStringSubmatch(strings.TrimSuffix(bootloader.Blessed(e.name), ".conf"))
		v, _ := strconv.Atoi(m[2])
		data, err := os.ReadFile(filepath.Join(esp, EntriesDir, e.name))
		if err != nil {
			return nil, fmt.Errorf("esp: %w", err)
		}
		items = append(items, item{v, onESP{e.key, data}})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].v > items[j].v })
	out := make([]onESP, len(items))
	for i := range items {
		out[i] = items[i].e
	}
	return out, nil
}

func sameEntries(cur []onESP, want []Entry) bool {
	if len(cur) != len(want) {
		return false
	}
	for i := range cur {
		if cur[i].key != want[i].Key || !bytes.Equal(cur[i].conf, want[i].Conf) {
			return false
		}
	}
	return true
}

// bootPaths returns the files an entry names, relative to the boot
// directory, refusing names that would leave it.
func bootPaths(conf []byte) ([]string, error) {
	e, err := bootloader.ParseEntry(conf)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range []string{"linux", "initrd", "devicetree"} {
		v, ok := e.Get(k)
		if !ok || v == "" {
			continue
		}
		p := filepath.Clean("/" + v)
		if p != "/"+strings.TrimPrefix(v, "/") || strings.Contains(v, "..") {
			return nil, fmt.Errorf("%w: esp: entry path %q", errdefs.ErrInvalid, v)
		}
		out = append(out, strings.TrimPrefix(p, "/"))
	}
	for _, v := range e.OverlayInitrds() {
		p := filepath.Clean("/" + v)
		if strings.Contains(v, "..") {
			return nil, fmt.Errorf("%w: esp: entry path %q", errdefs.ErrInvalid, v)
		}
		out = append(out, strings.TrimPrefix(p, "/"))
	}
	return out, nil
}

// copyKernels copies every file the entries name onto the ESP unless an
// identical copy is already there. Every source is opened first, beneath
// bootDir (fsutil.OpenRegularInRoot: a symlink resolves inside bootDir,
// never out of it), and must be a regular file: a FIFO, device, directory
// or missing file is refused before the first byte is written to the ESP.
func copyKernels(ctx context.Context, esp, bootDir string, entries []Entry) error {
	if err := fsutil.CheckFailpoint("esp:kernels"); err != nil {
		return err
	}
	bootfd, err := unix.Open(bootDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("esp: %w", &os.PathError{Op: "open", Path: bootDir, Err: err})
	}
	defer unix.Close(bootfd)
	type source struct {
		rel string
		f   *os.File
	}
	var srcs []source
	defer func() {
		for _, s := range srcs {
			s.f.Close()
		}
	}()
	for _, e := range entries {
		paths, err := bootPaths(e.Conf)
		if err != nil {
			return err
		}
		for _, rel := range paths {
			f, err := fsutil.OpenRegularInRoot(bootfd, rel)
			if err != nil {
				return fmt.Errorf("esp: %s: %w", rel, err)
			}
			srcs = append(srcs, source{rel, f})
		}
	}
	for _, s := range srcs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copyKernel(ctx, s.f, filepath.Join(esp, s.rel)); err != nil {
			return fmt.Errorf("esp: %s: %w", s.rel, err)
		}
	}
	return nil
}

// copyKernel copies in to dst unless dst holds the same bytes.
func copyKernel(ctx context.Context, in *os.File, dst string) error {
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return err
	}
	same, err := sameFile(in, dst)
	if err != nil || same {
		return err
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := fsutil.MkdirAllSync(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	fsutil.RemoveStaleTemps(filepath.Dir(dst))
	return fsutil.WriteFileFunc(dst, 0o644, func(w io.Writer) error {
		_, err := fsutil.CopyContext(ctx, w, in)
		return err
	})
}

// sameFile reports whether dst exists with exactly the bytes of src
// (read from its current offset).
func sameFile(src *os.File, dst string) (bool, error) {
	ds, err := os.Lstat(dst)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ss, err := src.Stat()
	if err != nil {
		return false, err
	}
	if !ds.Mode().IsRegular() || ss.Size() != ds.Size() {
		return false, nil
	}
	b, err := fsutil.OpenRegular(dst)
	if err != nil {
		return false, err
	}
	defer b.Close()
	return fsutil.SameContent(src, b)
}

// removeKernels removes the ESP's ostree/$os-$bootcsum directories that
// no entry names.
func removeKernels(esp string, entries []Entry) error {
	if err := fsutil.CheckFailpoint("esp:remove-kernels"); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, e := range entries {
		paths, err := bootPaths(e.Conf)
		if err != nil {
			return err
		}
		for _, p := range paths {
			if d, _, ok := strings.Cut(p, "/"); ok && d == "ostree" {
				if parts := strings.SplitN(p, "/", 3); len(parts) == 3 {
					keep[parts[1]] = true
				}
			}
		}
	}
	root := filepath.Join(esp, "ostree")
	des, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("esp: %w", err)
	}
	removed := false
	for _, de := range des {
		if !de.IsDir() || keep[de.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, de.Name())); err != nil {
			return fmt.Errorf("esp: %w", err)
		}
		removed = true
	}
	if removed {
		return fsutil.SyncDir(root)
	}
	return nil
}

// Booted returns the file name of the newest generation's entry for key
// ("" when the ESP has none).
func Booted(esp, key string) (string, error) {
	have, err := readESP(esp)
	if err != nil {
		return "", err
	}
	best := espEntry{gen: -1}
	for _, e := range have {
		if e.key == key && e.gen > best.gen {
			best = e
		}
	}
	return best.name, nil
}

// Bless drops the boot counter of key's newest entry, as
// systemd-bless-boot does for the entry it booted. It reports whether it
// renamed anything.
func Bless(esp, key string) (bool, error) {
	return rename(esp, key, bootloader.Blessed)
}

// MarkBad gives key's newest entry a counter with no tries left
// (+0-DONE), as `systemd-bless-boot bad` does: systemd-boot sorts it last
// and boots the next entry from then on.
func MarkBad(esp, key string) (bool, error) {
	return rename(esp, key, func(name string) string {
		_, done, _ := bootloader.Tries(name)
		base := strings.TrimSuffix(bootloader.Blessed(name), ".conf")
		return base + "+0-" + strconv.FormatUint(done, 10) + ".conf"
	})
}

func rename(esp, key string, to func(string) string) (bool, error) {
	name, err := Booted(esp, key)
	if err != nil || name == "" {
		return false, err
	}
	nn := to(name)
	if nn == name {
		return false, nil
	}
	if err := fsutil.CheckFailpoint("esp:bless"); err != nil {
		return false, err
	}
	dir := filepath.Join(esp, EntriesDir)
	if err := fsutil.Rename(filepath.Join(dir, name), filepath.Join(dir, nn)); err != nil {
		return false, fmt.Errorf("esp: %w", err)
	}
	return true, nil
}

// Default returns the key of the entry systemd-boot boots by default
// from the ESP (the first of bootloader.SortEntries), "" with no entries. Other
// entries (not strata's) on the ESP take part in the order as they would
// in the loader.
func Default(esp string) (key, name string, err error) {
	des, err := os.ReadDir(filepath.Join(esp, EntriesDir))
	if errors.Is(err, os.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("esp: %w", err)
	}
	var list []bootloader.LoaderEntry
	for _, de := range des {
		n := de.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(strings.ToLower(n), ".conf") || strings.HasPrefix(n, "auto-") || !de.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(esp, EntriesDir, n))
		if err != nil {
			return "", "", fmt.Errorf("esp: %w", err)
		}
		e, err := bootloader.ParseEntry(data)
		if err != nil {
			continue
		}
		if _, ok := e.Get("linux"); !ok {
			continue
		}
		list = append(list, bootloader.LoaderEntry{Name: n, Entry: e})
	}
	if len(list) == 0 {
		return "", "", nil
	}
	bootloader.SortEntries(list)
	if p, ok := parseName(list[0].Name); ok {
		return p.key, list[0].Name, nil
	}
	return "", list[0].Name, nil
}
