// Package sysroot manages an OSTree-compatible system root: the
// deployments under ostree/deploy/$os/deploy, their .origin files, the
// Boot Loader Specification entries in boot/loader.N/entries, the
// ostree/boot.N link farms, the atomic boot/loader symlink swap, staged
// deployments, the sysroot lock and cleanup. The on-disk layout and every
// file format are OSTree's (ostree 2022.7 is the reference); docs/sysroot.md
// describes them and the order of the durable steps.
//
// A Sysroot is loaded from disk by Open and reflects the state at that
// moment. The mutating methods take the sysroot lock, reload the state
// under it, change the disk, and reload again, so a Sysroot stays usable
// after each of them.
package sysroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

// Errors, wrapped with the deployment, path or argument they concern.
var (
	// ErrNotFound: no such deployment, stateroot, kernel or entry.
	ErrNotFound = repo.ErrNotFound
	// ErrInvalid: a bad argument or an operation not allowed in this
	// state (undeploying the booted deployment, pinning a staged one).
	ErrInvalid = repo.ErrInvalid
	// ErrCorrupt: sysroot state that cannot be parsed.
	ErrCorrupt = repo.ErrCorrupt
	// ErrLocked: the sysroot lock is held by another process and the
	// caller asked not to wait.
	ErrLocked = errors.New("sysroot is locked by another process")
	// ErrNotBooted: the operation needs a booted deployment.
	ErrNotBooted = errors.New("not booted into an OSTree system")
	// ErrDowngrade: an upgrade would go back in time.
	ErrDowngrade = errors.New("downgrade refused")
)

// Options tell Open where the running system's state lives. The zero
// value describes a real system; tests point the fields at temporary files.
type Options struct {
	// BootDir is the directory holding loader/, loader.N/ and ostree/;
	// default PATH/boot.
	BootDir string
	// RunDir holds ostree-booted and ostree/staged-deployment; default /run.
	RunDir string
	// Root is the root of the running system, compared by device and
	// inode with each deployment directory to find the booted one;
	// default /.
	Root string
	// Cmdline is the file with the kernel command line; default
	// /proc/cmdline. A booted system has ostree= on it.
	Cmdline string
	// ESPDir is where the EFI System Partition is mounted, for the
	// systemd-boot backend (LoaderBackend); default BootDir/efi.
	ESPDir string
	// Progress receives checkout progress; nil for none.
	Progress progress.Reporter
	// Warner receives best-effort failures that do not stop an operation
	// (housekeeping that failed); nil drops them.
	Warner progress.Warner
	// NoLockWait makes the mutating methods fail with ErrLocked instead
	// of waiting when another process holds the sysroot lock.
	NoLockWait bool
	// OnLockWait, when set, is called once when a mutating method starts
	// waiting for the sysroot lock, with the lock file's path and holder.
	OnLockWait func(lockPath string)
}

// Deployment is one deployed commit.
type Deployment struct {
	// Index is the position in the deployment list: 0 is the default
	// (or the staged deployment), higher ones are older.
	Index int
	// OS is the stateroot name.
	OS string
	// Checksum is the deployed commit.
	Checksum objects.Checksum
	// Serial tells apart deployments of the same commit.
	Serial int
	// BootChecksum names the kernel/initramfs directory
	// boot/ostree/$OS-$BootChecksum.
	BootChecksum string
	// BootSerial tells apart deployments sharing a BootChecksum; -1 for a
	// staged deployment.
	BootSerial int
	// Origin is the parsed .origin file; nil when there is none.
	Origin *repo.KeyFile
	// EntryFile is the boot entry's file name in loader.N/entries
	// ("ostree-1-os.conf", "ostree-2-os+3.conf"); empty when staged.
	EntryFile string
	// Staged, Booted: see Sysroot.Staged and Sysroot.Booted.
	Staged, Booted bool

	entry *bootloader.Entry // the parsed entry; for a new deployment, its options
}

// Name returns "CHECKSUM.SERIAL", the deployment directory's name.
func (d *Deployment) Name() string { return fmt.Sprintf("%s.%d", d.Checksum, d.Serial) }

// RelPath returns the deployment directory relative to the sysroot.
func (d *Deployment) RelPath() string {
	return filepath.Join("ostree/deploy", d.OS, "deploy", d.Name())
}

// Options returns the kernel arguments of the deployment's boot entry (or,
// staged, the ones it will get), "" when unknown.
func (d *Deployment) Options() string {
	if d.entry == nil {
		return ""
	}
	return d.entry.Value("options")
}

// Refspec returns the origin's refspec, or "".
func (d *Deployment) Refspec() string {
	if d.Origin == nil {
		return ""
	}
	return d.Origin.GetDefault("origin", "refspec", "")
}

// Pinned reports whether the origin marks the deployment as pinned (kept
// by deploys that would otherwise drop it).
func (d *Deployment) Pinned() bool {
	if d.Origin == nil {
		return false
	}
	v, err := d.Origin.GetBool(transientGroup, "pinned", false)
	return err == nil && v
}

// same reports whether a and b are the same deployment on disk.
func same(a, b *Deployment) bool {
	return a != nil && b != nil && a.OS == b.OS && a.Checksum == b.Checksum && a.Serial == b.Serial
}

// transientGroup is the origin group for state that upgrades drop.
const transientGroup = "libostree-transient"

// Sysroot is a loaded system root.
type Sysroot struct {
	path string
	boot string
	opts Options
	repo *repo.Repo

	bootVersion, subBootVersion int
	deployments                 []*Deployment
	booted, staged              *Deployment
	stagedState                 *stagedState
	rootIsBooted                bool // ostree-booted present and ostree= on the command line
	rootDev, rootIno            uint64
}

// Open loads the sysroot at path: its repository, the current boot
// version and the deployments its boot entries name.
func Open(path string, o Options) (*Sysroot, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if o.BootDir == "" {
		o.BootDir = filepath.Join(path, "boot")
	}
	if o.RunDir == "" {
		o.RunDir = "/run"
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Cmdline == "" {
		o.Cmdline = "/proc/cmdline"
	}
	s := &Sysroot{path: path, boot: o.BootDir, opts: o}
	if st, err := os.Stat(filepath.Join(path, "ostree/deploy")); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not an OSTree sysroot (no ostree/deploy; run admin init-fs)", ErrNotFound, path)
	}
	r, err := repo.Open(filepath.Join(path, "ostree/repo"))
	if err != nil {
		return nil, fmt.Errorf("sysroot %s: %w", path, err)
	}
	s.repo = r
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path returns the sysroot's directory.
func (s *Sysroot) Path() string { return s.path }

// BootDir returns the boot directory.
func (s *Sysroot) BootDir() string { return s.boot }

// Repo returns the sysroot's repository (ostree/repo).
func (s *Sysroot) Repo() *repo.Repo { return s.repo }

// BootVersion returns the active boot version (the N of boot/loader.N)
// and sub-boot version (the M of ostree/boot.N.M).
func (s *Sysroot) BootVersion() (int, int) { return s.bootVersion, s.subBootVersion }

// Deployments returns the deployments in order: the staged one first,
// then as the boot entries sort (the default first).
func (s *Sysroot) Deployments() []*Deployment { return append([]*Deployment(nil), s.deployments...) }

// Booted returns the deployment the running system booted, or nil.
func (s *Sysroot) Booted() *Deployment { return s.booted }

// Staged returns the staged deployment (finalized at shutdown), or nil.
func (s *Sysroot) Staged() *Deployment { return s.staged }

// warn passes a best-effort failure to Options.Warner, if any.
func (s *Sysroot) warn(err error) {
	if s.opts.Warner != nil {
		s.opts.Warner.Warn(err)
	}
}

// DeploymentPath returns the absolute path of d's directory.
func (s *Sysroot) DeploymentPath(d *Deployment) string { return filepath.Join(s.path, d.RelPath()) }

// originPath returns the absolute path of d's .origin file.
func (s *Sysroot) originPath(d *Deployment) string { return s.DeploymentPath(d) + ".origin" }

// load (re)reads everything from disk.
func (s *Sysroot) load() error {
	s.deployments, s.booted, s.staged, s.stagedState = nil, nil, nil, nil
	s.initBooted()
	bv, err := s.readBootVersion()
	if err != nil {
		return err
	}
	sub, err := s.readSubBootVersion(bv)
	if err != nil {
		return err
	}
	s.bootVersion, s.subBootVersion = bv, sub
	entries, err := s.readEntries(bv)
	if err != nil {
		return err
	}
	var deps []*Deployment
	for _, e := range entries {
		d, err := s.parseDeployment(e)
		if err != nil {
			return err
		}
		if d == nil {
			continue
		}
		deps = append(deps, d)
	}
	sort.SliceStable(deps, func(i, j int) bool { return compareEntries(deps[i].entry, deps[j].entry) < 0 })
	if s.rootIsBooted && s.booted != nil {
		st, err := s.readStaged()
		if err != nil {
			return err
		}
		if st != nil {
			s.staged, s.stagedState = st.target, st
			deps = append([]*Deployment{st.target}, deps...)
		}
	}
	for i, d := range deps {
		d.Index = i
	}
	s.deployments = deps
	return nil
}

// initBooted decides, as ostree does, whether the running system is a
// booted OSTree system: /run/ostree-booted exists and the kernel command
// line has ostree=. The booted deployment is then the one whose directory
// is the running root (same device and inode).
func (s *Sysroot) initBooted() {
	s.rootIsBooted = false
	if _, err := os.Stat(filepath.Join(s.opts.RunDir, "ostree-booted")); err != nil {
		return
	}
	cmdline, err := os.ReadFile(s.opts.Cmdline)
	if err != nil || !hasKarg(string(cmdline), "ostree") {
		return
	}
	var st unix.Stat_t
	if err := unix.Stat(s.opts.Root, &st); err != nil {
		return
	}
	s.rootDev, s.rootIno = st.Dev, st.Ino
	s.rootIsBooted = true
}

func hasKarg(cmdline, key string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == key || strings.HasPrefix(f, key+"=") {
			return true
		}
	}
	return false
}

// readBootVersion reads boot/loader: absent means 0.
func (s *Sysroot) readBootVersion() (int, error) {
	p := filepath.Join(s.boot, "loader")
	st, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sysroot: %w", err)
	}
	if st.Mode()&os.ModeSymlink == 0 {
		return 0, fmt.Errorf("%w: %s is not a symbolic link", ErrCorrupt, p)
	}
	t, err := os.Readlink(p)
	if err != nil {
		return 0, fmt.Errorf("sysroot: %w", err)
	}
	switch t {
	case "loader.0":
		return 0, nil
	case "loader.1":
		return 1, nil
	}
	return 0, fmt.Errorf("%w: invalid target %q of %s", ErrCorrupt, t, p)
}

// readSubBootVersion reads ostree/boot.BV: absent means 0.
func (s *Sysroot) readSubBootVersion(bv int) (int, error) {
	p := filepath.Join(s.path, fmt.Sprintf("ostree/boot.%d", bv))
	t, err := os.Readlink(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sysroot: %w", err)
	}
	switch {
	case strings.HasSuffix(t, ".0"):
		return 0, nil
	case strings.HasSuffix(t, ".1"):
		return 1, nil
	}
	return 0, fmt.Errorf("%w: invalid target %q of %s", ErrCorrupt, t, p)
}

type loadedEntry struct {
	name  string
	entry *bootloader.Entry
}

// readEntries parses every regular file ending in .conf in
// loader.BV/entries (following symlinks, as ostree does).
func (s *Sysroot) readEntries(bv int) ([]loadedEntry, error) {
	dir := filepath.Join(s.boot, fmt.Sprintf("loader.%d/entries", bv))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sysroot: %w", err)
	}
	var out []loadedEntry
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("sysroot: %w", err)
		}
		if !st.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("sysroot: %w", err)
		}
		entry, err := bootloader.ParseEntry(data)
		if err != nil {
			return nil, fmt.Errorf("%w: parsing %s: %v", ErrCorrupt, p, err)
		}
		out = append(out, loadedEntry{name: e.Name(), entry: entry})
	}
	return out, nil
}

var (
	bootlinkRe   = regexp.MustCompile(`^/ostree/boot\.([01])/([^/]+)/([^/]+)/([0-9]+)$`)
	deployNameRe = regexp.MustCompile(`^([0-9a-f]+)\.([0-9]+)$`)
)

// parseDeployName splits "CHECKSUM.SERIAL".
func parseDeployName(name string) (objects.Checksum, int, error) {
	m := deployNameRe.FindStringSubmatch(name)
	if m == nil {
		return objects.Checksum{}, 0, fmt.Errorf("%w: invalid deploy name %q, expected CHECKSUM.SERIAL", ErrCorrupt, name)
	}
	c, err := objects.ParseChecksum(m[1])
	if err != nil {
		return c, 0, fmt.Errorf("%w: invalid deploy name %q: %v", ErrCorrupt, name, err)
	}
	serial, err := strconv.Atoi(m[2])
	if err != nil {
		return c, 0, fmt.Errorf("%w: invalid deploy name %q", ErrCorrupt, name)
	}
	return c, serial, nil
}

// parseDeployment resolves an entry's ostree= argument to a deployment.
// An entry without ostree= is an error for ostree's own names
// (ostree-*.conf) and is skipped (nil) for others, which belong to other
// operating systems.
func (s *Sysroot) parseDeployment(le loadedEntry) (*Deployment, error) {
	arg, ok := kargValue(le.entry.Value("options"), "ostree")
	if !ok {
		if strings.HasPrefix(le.name, "ostree-") {
			return nil, fmt.Errorf("%w: boot entry %s: no ostree= kernel argument found", ErrCorrupt, le.name)
		}
		return nil, nil
	}
	m := bootlinkRe.FindStringSubmatch(arg)
	if m == nil {
		return nil, fmt.Errorf("%w: boot entry %s: invalid ostree=%s, expected ostree=/ostree/boot.BOOTVERSION/OSNAME/BOOTCSUM/TREESERIAL", ErrCorrupt, le.name, arg)
	}
	bootSerial, _ := strconv.Atoi(m[4])
	link := filepath.Join(s.path, arg)
	target, err := os.Readlink(link)
	if err != nil {
		return nil, fmt.Errorf("%w: deployment %s in stateroot %s: %v", ErrCorrupt, arg, m[2], err)
	}
	csum, serial, err := parseDeployName(filepath.Base(target))
	if err != nil {
		return nil, fmt.Errorf("deployment %s in stateroot %s: %w", arg, m[2], err)
	}
	var st unix.Stat_t
	if err := unix.Stat(link, &st); err != nil {
		return nil, fmt.Errorf("%w: deployment %s in stateroot %s: %v", ErrCorrupt, arg, m[2], err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("%w: deployment %s in stateroot %s is not a directory", ErrCorrupt, arg, m[2])
	}
	d := &Deployment{
		OS: m[2], Checksum: csum, Serial: serial,
		BootChecksum: m[3], BootSerial: bootSerial,
		EntryFile: le.name, entry: le.entry,
	}
	if err := s.loadOrigin(d); err != nil {
		return nil, err
	}
	if s.rootIsBooted && s.booted == nil && st.Dev == s.rootDev && st.Ino == s.rootIno {
		d.Booted = true
		s.booted = d
	}
	return d, nil
}

// loadOrigin reads d's .origin file, if any.
func (s *Sysroot) loadOrigin(d *Deployment) error {
	p := s.originPath(d)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	kf, err := repo.ParseKeyFile(string(data))
	if err != nil {
		return fmt.Errorf("%w: parsing %s: %v", ErrCorrupt, p, err)
	}
	d.Origin = kf
	return nil
}

// compareEntries orders boot entries as ostree does: by "version",
// highest first (strverscmp), entries without a version last.
func compareEntries(a, b *bootloader.Entry) int {
	av, aok := a.Get("version")
	bv, bok := b.Get("version")
	switch {
	case aok && bok:
		return -bootloader.Strverscmp(av, bv)
	case aok:
		return -1
	case bok:
		return 1
	}
	return 0
}

// Deployment returns the deployment at index i.
func (s *Sysroot) Deployment(i int) (*Deployment, error) {
	if i < 0 {
		return nil, fmt.Errorf("%w: invalid deployment index %d", ErrInvalid, i)
	}
	if i >= len(s.deployments) {
		return nil, fmt.Errorf("%w: out of range deployment index %d, expected < %d", ErrNotFound, i, len(s.deployments))
	}
	return s.deployments[i], nil
}

// PendingAndRollback returns, for stateroot os ("" for the booted one),
// ostree's pending deployment (the first one of os before the booted one)
// and rollback deployment (the first one of os after the booted one).
// Without a booted deployment, the first deployment of os is pending and
// the second is rollback.
func (s *Sysroot) PendingAndRollback(osname string) (pending, rollback *Deployment) {
	if osname == "" && s.booted != nil {
		osname = s.booted.OS
	}
	foundBooted := false
	for _, d := range s.deployments {
		if d.OS != osname {
			continue
		}
		if same(d, s.booted) {
			foundBooted = true
			continue
		}
		switch {
		case s.booted == nil && pending == nil:
			pending = d
		case s.booted == nil && rollback == nil:
			rollback = d
		case s.booted != nil && !foundBooted && pending == nil:
			pending = d
		case s.booted != nil && foundBooted && rollback == nil:
			rollback = d
		}
	}
	return pending, rollback
}

// MergeDeployment returns the deployment whose /etc and kernel arguments a
// new deployment of os inherits: the booted one when it is of os,
// otherwise the first non-staged deployment of os, or nil.
func (s *Sysroot) MergeDeployment(osname string) *Deployment {
	if osname == "" && s.booted != nil {
		osname = s.booted.OS
	}
	if s.booted != nil && s.booted.OS == osname {
		return s.booted
	}
	for _, d := range s.deployments {
		if d.OS == osname && !d.Staged {
			return d
		}
	}
	return nil
}

// Stateroots lists the stateroots (ostree/deploy/*), sorted.
func (s *Sysroot) Stateroots() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.path, "ostree/deploy"))
	if err != nil {
		return nil, fmt.Errorf("sysroot: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
