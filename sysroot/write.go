package sysroot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

type writeFlags struct {
	retain, retainPending, retainRollback, notDefault bool
}

// simpleWriteList builds the deployment list after adding d, as ostree's
// simple_write_deployment does: d first (or, notDefault, right after the
// booted or merge deployment), keeping the booted, merge and pinned
// deployments, those of other stateroots, and what the flags retain.
func (s *Sysroot) simpleWriteList(osname string, d, merge *Deployment, f writeFlags) []*Deployment {
	var out []*Deployment
	added := false
	if !f.notDefault {
		out = append(out, d)
		added = true
	}
	retain := f.retain
	if s.booted == nil && merge == nil && (f.retainPending || f.retainRollback) {
		retain = true
	}
	beforeBooted, beforeMerge := true, true
	for _, cur := range s.deployments {
		isBooted, isMerge := same(cur, s.booted), same(cur, merge)
		if isBooted {
			beforeBooted = false
		}
		if isMerge {
			beforeMerge = false
		}
		passed := !beforeMerge
		if s.booted != nil {
			passed = !beforeBooted
		}
		if retain || cur.Pinned() || cur.OS != osname || (f.retainPending && !passed) ||
			isBooted || isMerge || (f.retainRollback && passed) {
			out = append(out, cur)
		}
		if !added && passed {
			out = append(out, d)
			added = true
		}
	}
	if !added {
		out = append(out, d)
	}
	return out
}

type writeOptions struct {
	// newDeployment is the deployment being added, whose entry gets the
	// boot-counting suffix.
	newDeployment *Deployment
	postclean     bool
	prune         bool
}

// writeDeployments makes list the deployment list, as ostree's
// write_deployments does. A staged deployment stays only when it is
// list[0]; otherwise its state and directory are removed. When the boot
// configuration of every deployment is unchanged only the ostree/boot.N
// link farm is swapped; otherwise a new boot version is written and
// switched to with one rename of boot/loader.
func (s *Sysroot) writeDeployments(ctx context.Context, list []*Deployment, o writeOptions) (repo.PruneStats, error) {
	var stats repo.PruneStats
	keepStaged := s.staged != nil && len(list) > 0 && same(list[0], s.staged)
	var nl []*Deployment
	for _, d := range list {
		if d.Staged {
			continue
		}
		c := *d
		if d.entry != nil {
			c.entry = d.entry.Clone()
		} else {
			c.entry = bootloader.NewEntry()
		}
		nl = append(nl, &c)
	}
	removedStaged := false
	if s.staged != nil && !keepStaged {
		if err := s.removeStagedState(); err != nil {
			return stats, err
		}
		if err := s.removeDeploymentDir(s.staged); err != nil {
			return stats, err
		}
		removedStaged = true
	}
	var current []*Deployment
	for _, d := range s.deployments {
		if !d.Staged {
			current = append(current, d)
		}
	}
	// Boot serials number the deployments sharing a bootcsum.
	serials := map[string]int{}
	for _, d := range nl {
		d.BootSerial = serials[d.BootChecksum]
		serials[d.BootChecksum]++
	}
	requiresNew := len(nl) != len(current)
	noop := !requiresNew
	if !requiresNew {
		for i := range nl {
			eq, err := s.bootconfigsEqual(current[i], nl[i])
			if err != nil {
				return stats, err
			}
			if !eq {
				requiresNew, noop = true, false
				break
			}
			if !same(current[i], nl[i]) {
				noop = false
			}
		}
	}
	if noop {
		if removedStaged {
			return stats, s.finishWrite(ctx, o)
		}
		return stats, nil
	}
	foundBooted := false
	for i, d := range nl {
		if same(d, s.booted) {
			foundBooted = true
		}
		if st, err := os.Stat(s.DeploymentPath(d)); err != nil || !st.IsDir() {
			return stats, fmt.Errorf("%w: unable to find expected deployment root: %s", ErrNotFound, s.DeploymentPath(d))
		}
		d.Index = i
	}
	if s.booted != nil && !foundBooted {
		return stats, fmt.Errorf("%w: attempting to remove booted deployment %s", ErrInvalid, s.booted.Name())
	}
	if requiresNew {
		if err := s.bootswap(ctx, nl, o); err != nil {
			return stats, err
		}
	} else {
		if err := s.swapBootlinksOnly(nl); err != nil {
			return stats, err
		}
	}
	if err := s.finishWrite(ctx, o); err != nil {
		return stats, err
	}
	if !o.postclean {
		if err := s.syncLoader(ctx); err != nil {
			return stats, err
		}
	}
	if o.postclean && o.prune {
		return s.prune(ctx)
	}
	return stats, nil
}

// finishWrite bumps the mtime, reloads and, with postclean, removes what
// the new state no longer references.
func (s *Sysroot) finishWrite(ctx context.Context, o writeOptions) error {
	if err := bumpMtime(s.path); err != nil {
		return err
	}
	if err := s.load(); err != nil {
		return fmt.Errorf("reloading deployments after the switch: %w", err)
	}
	if o.postclean {
		return s.prepareCleanup(ctx)
	}
	return nil
}

// bootconfigsEqual reports whether a and b boot the same way: same
// kernel, same arguments apart from ostree=, same commit version (used in
// the menu title).
func (s *Sysroot) bootconfigsEqual(a, b *Deployment) (bool, error) {
	// The entry's ostree= names the stateroot: two stateroots at one
	// position (a factory reset, then a rollback) are different entries.
	if a.BootChecksum != b.BootChecksum || a.OS != b.OS {
		return false, nil
	}
	strip := func(d *Deployment) string { return bootloader.WithoutKarg(d.Options(), "ostree") }
	if strip(a) != strip(b) {
		return false, nil
	}
	va, err := s.commitVersion(a.Checksum)
	if err != nil {
		return false, err
	}
	vb, err := s.commitVersion(b.Checksum)
	return err == nil && va == vb, err
}

// commitVersion returns a commit's "version" metadata, "" when it has none
// or is not stored.
func (s *Sysroot) commitVersion(c objects.Checksum) (string, error) {
	cm, err := s.repo.ReadCommit(c)
	if errors.Is(err, repo.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	v, _ := cm.Metadata.String("version")
	return v, nil
}

// newSubBootVersion returns the sub-boot version to write for bv: the
// other one than ostree/boot.BV's current one.
func (s *Sysroot) newSubBootVersion(bv int) (int, error) {
	cur := s.subBootVersion
	if bv != s.bootVersion {
		var err error
		if cur, err = s.readSubBootVersion(bv); err != nil {
			return 0, err
		}
	}
	return 1 - cur, nil
}

// swapBootlinksOnly re-points ostree/boot.BV at a new link farm, for a
// deployment list whose boot entries stay valid as they are.
func (s *Sysroot) swapBootlinksOnly(list []*Deployment) error {
	bv := s.bootVersion
	sub, err := s.newSubBootVersion(bv)
	if err != nil {
		return err
	}
	if err := s.writeRefs(bv, sub, list); err != nil {
		return err
	}
	if err := s.createBootlinks(bv, sub, list); err != nil {
		return err
	}
	if err := fsutil.CheckFailpoint("sysroot:syncfs-boot"); err != nil {
		return err
	}
	if err := fsutil.Syncfs(s.path); err != nil {
		return err
	}
	if err := fsutil.CheckFailpoint("sysroot:swap"); err != nil {
		return err
	}
	return fsutil.Symlink(fmt.Sprintf("boot.%d.%d", bv, sub), filepath.Join(s.path, fmt.Sprintf("ostree/boot.%d", bv)))
}

// bootswap writes boot version 1-BV for list and switches to it:
//
//  1. refs ostree/NEWBV/SUB/I for every deployment (prune keeps them);
//  2. kernels and initramfs into boot/ostree/$os-$bootcsum/ (each file
//     written durably, or hard-linked);
//  3. boot/loader.NEWBV/entries/, emptied and rewritten, then fsynced;
//  4. the ostree/boot.NEWBV.SUB link farm and the ostree/boot.NEWBV link;
//  5. boot/loader.tmp -> loader.NEWBV, then syncfs of the sysroot and
//     boot filesystems;
//  6. the switch: rename boot/loader.tmp over boot/loader, fsync boot/.
//
// Before step 6 the old boot version is untouched and still the one the
// boot loader reads; after it, the new one is complete.
func (s *Sysroot) bootswap(ctx context.Context, list []*Deployment, o writeOptions) error {
	nbv := 1 - s.bootVersion
	sub, err := s.newSubBootVersion(nbv)
	if err != nil {
		return err
	}
	if err := s.writeRefs(nbv, sub, list); err != nil {
		return err
	}
	tries, err := s.bootCountingTries()
	if err != nil {
		return err
	}
	showOS := false
	for _, d := range list[1:] {
		if d.OS != list[0].OS {
			showOS = true
		}
	}
	entries := make([][]byte, len(list))
	names := make([]string, len(list))
	for i, d := range list {
		if err := ctx.Err(); err != nil {
			return err
		}
		layout, err := bootloader.FindKernel(ctx, s.DeploymentPath(d))
		if err != nil {
			return fmt.Errorf("deployment %s: %w", d.Name(), err)
		}
		if err := s.installKernel(ctx, d, layout); err != nil {
			return err
		}
		if entries[i], err = s.entryFor(d, layout, nbv, len(list), showOS); err != nil {
			return err
		}
		// A new deployment's entry counts boot attempts; the others keep
		// their counters (or their blessing).
		names[i] = bootloader.EntryFileName(d.OS, len(list), i)
		switch {
		case o.newDeployment != nil && same(d, o.newDeployment) && tries > 0:
			names[i] = bootloader.WithTries(names[i], uint64(tries))
		case d.EntryFile != "":
			names[i] = withCounter(names[i], counterSuffix(d.EntryFile))
		}
	}
	entriesDir := filepath.Join(s.boot, fmt.Sprintf("loader.%d/entries", nbv))
	if err := fsutil.CheckFailpoint("sysroot:entries"); err != nil {
		return err
	}
	if err := os.RemoveAll(entriesDir); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	if err := fsutil.MkdirAllSync(entriesDir, 0o755); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	for i := range list {
		if err := fsutil.WriteFile(filepath.Join(entriesDir, names[i]), entries[i], 0o644); err != nil {
			return err
		}
	}
	if err := fsutil.SyncDir(filepath.Dir(entriesDir)); err != nil {
		return err
	}
	if err := s.writeGrubConfig(nbv, list, entries, o, tries); err != nil {
		return err
	}
	if err := s.createBootlinks(nbv, sub, list); err != nil {
		return err
	}
	if err := fsutil.Symlink(fmt.Sprintf("boot.%d.%d", nbv, sub), filepath.Join(s.path, fmt.Sprintf("ostree/boot.%d", nbv))); err != nil {
		return fmt.Errorf("swapping bootlinks: %w", err)
	}
	// boot/boot -> . lets the same paths work whether /boot is its own
	// filesystem or not.
	if err := os.Symlink(".", filepath.Join(s.boot, "boot")); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("sysroot: %w", err)
	}
	tmp := filepath.Join(s.boot, "loader.tmp")
	os.Remove(tmp)
	if err := os.Symlink(fmt.Sprintf("loader.%d", nbv), tmp); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	if err := fsutil.CheckFailpoint("sysroot:syncfs-boot"); err != nil {
		return err
	}
	if err := fsutil.Syncfs(s.path); err != nil {
		return err
	}
	if !sameFS(s.path, s.boot) {
		if err := fsutil.Syncfs(s.boot); err != nil {
			return err
		}
	}
	if err := fsutil.CheckFailpoint("sysroot:swap"); err != nil {
		return err
	}
	if err := fsutil.Rename(tmp, filepath.Join(s.boot, "loader")); err != nil {
		return fmt.Errorf("final bootloader swap: %w", err)
	}
	return nil
}

func sameFS(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}

// bootCountingTries reads sysroot.boot-counting-tries from the repo
// config (default 3; 0 disables boot counting).
func (s *Sysroot) bootCountingTries() (int, error) {
	v, ok := s.repo.Config().Get("sysroot", "boot-counting-tries")
	if !ok {
		return 3, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: repo config sysroot.boot-counting-tries=%q is not a number >= 0", ErrInvalid, v)
	}
	return n, nil
}

// writeRefs points ostree/BV/SUB/I at each deployment's commit.
func (s *Sysroot) writeRefs(bv, sub int, list []*Deployment) error {
	if err := fsutil.CheckFailpoint("sysroot:refs"); err != nil {
		return err
	}
	for i, d := range list {
		c := d.Checksum
		if err := s.repo.SetRef(fmt.Sprintf("heads/ostree/%d/%d/%d", bv, sub, i), &c); err != nil {
			return fmt.Errorf("deployment refs: %w", err)
		}
	}
	return nil
}

// createBootlinks writes the link farm ostree/boot.BV.SUB/$os/$bootcsum/
// $bootserial -> ../../../deploy/$os/deploy/$csum.$serial.
func (s *Sysroot) createBootlinks(bv, sub int, list []*Deployment) error {
	if err := fsutil.CheckFailpoint("sysroot:bootlinks"); err != nil {
		return err
	}
	dir := filepath.Join(s.path, fmt.Sprintf("ostree/boot.%d.%d", bv, sub))
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("creating bootlinks: %w", err)
	}
	synced := map[string]bool{}
	for _, d := range list {
		parent := filepath.Join(dir, d.OS, d.BootChecksum)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("creating bootlinks: %w", err)
		}
		target := fmt.Sprintf("../../../deploy/%s/deploy/%s", d.OS, d.Name())
		if err := os.Symlink(target, filepath.Join(parent, strconv.Itoa(d.BootSerial))); err != nil {
			return fmt.Errorf("creating bootlinks: %w", err)
		}
		synced[parent], synced[filepath.Dir(parent)] = false, false
	}
	synced[dir], synced[filepath.Dir(dir)] = false, false
	for p := range synced {
		if err := fsutil.SyncDir(p); err != nil {
			return fmt.Errorf("creating bootlinks: %w", err)
		}
	}
	return nil
}

// installKernel puts the deployment's kernel, initramfs, device tree and
// hmac into boot/ostree/$os-$bootcsum/, unless they are there already:
// hard links when /boot is the same filesystem, else durable copies. The
// sources are the files FindKernel resolved inside the deployment
// (KernelLayout.OpenFile: regular files of the tree, never a host file a
// symlink of the tree names), and what /boot gets is that very file.
func (s *Sysroot) installKernel(ctx context.Context, d *Deployment, l *bootloader.KernelLayout) error {
	if err := fsutil.CheckFailpoint("sysroot:boot-files"); err != nil {
		return err
	}
	dir := filepath.Join(s.boot, "ostree", d.OS+"-"+d.BootChecksum)
	if err := fsutil.MkdirAllSync(dir, 0o755); err != nil {
		return fmt.Errorf("installing kernel: %w", err)
	}
	files := [][2]string{{l.Kernel, l.KernelName}}
	if l.Initramfs != "" {
		files = append(files, [2]string{l.Initramfs, l.InitramfsName})
	}
	if l.Devicetree != "" && l.DevicetreeName != "" {
		files = append(files, [2]string{l.Devicetree, l.DevicetreeName})
	}
	if l.HMAC != "" {
		files = append(files, [2]string{l.HMAC, l.HMACName})
	}
	if l.Devicetree != "" && l.DevicetreeName == "" {
		dtbs, err := l.DevicetreeFiles(ctx)
		if err != nil {
			return fmt.Errorf("installing kernel of deployment %s: %w", d.Name(), err)
		}
		for _, f := range dtbs {
			files = append(files, [2]string{path.Join(l.Devicetree, f), path.Join(l.Devicetree, f)})
		}
	}
	dirs := map[string]bool{dir: true}
	for _, f := range files {
		dst := filepath.Join(dir, filepath.FromSlash(f[1]))
		if dd := filepath.Dir(dst); !dirs[dd] {
			if err := os.MkdirAll(dd, 0o755); err != nil {
				return fmt.Errorf("installing kernel: %w", err)
			}
			dirs[dd] = true
		}
		if err := installFile(ctx, l, f[0], dst); err != nil {
			return fmt.Errorf("installing kernel of deployment %s: %w", d.Name(), err)
		}
	}
	// Deepest first, so that each directory's new entries are durable.
	var ds []string
	for dd := range dirs {
		ds = append(ds, dd)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ds)))
	for _, dd := range ds {
		if err := fsutil.SyncDir(dd); err != nil {
			return err
		}
	}
	return nil
}

// installFile hard-links the tree's file name (KernelLayout.OpenFile) to
// dst, or copies it (temporary file, fsync, rename) when linking is
// impossible; an existing dst is kept. The link is made to the opened
// file itself (/proc/self/fd), so it is the inode that was checked.
func installFile(ctx context.Context, l *bootloader.KernelLayout, name, dst string) error {
	if lexists(dst) {
		return nil
	}
	in, err := l.OpenFile(name)
	if err != nil {
		return err
	}
	defer in.Close()
	err = unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", in.Fd()), unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
	if err == nil || errors.Is(err, unix.EEXIST) {
		return nil
	}
	if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EMLINK) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("link %s: %w", dst, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return err
	}
	return fsutil.WriteFileFunc(dst, os.FileMode(st.Mode&0o777), func(w io.Writer) error {
		if _, err := fsutil.CopyContext(ctx, w, in); err != nil {
			return err
		}
		if f, ok := w.(*os.File); ok {
			return f.Chown(int(st.Uid), int(st.Gid))
		}
		return nil
	})
}

// entryFor formats d's boot entry for boot version bv, as ostree's
// install_deployment_kernel fills it.
func (s *Sysroot) entryFor(d *Deployment, l *bootloader.KernelLayout, bv, n int, showOS bool) ([]byte, error) {
	e := d.entry.Clone()
	root := s.DeploymentPath(d)
	title, err := bootloader.DeploymentName(root)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", d.Name(), err)
	}
	version, err := s.commitVersion(d.Checksum)
	if err != nil {
		return nil, err
	}
	// The entry names the kernel directory d was deployed with.
	kl := *l
	kl.BootCsum = d.BootChecksum
	e.SetSpec(bootloader.EntrySpec{
		OSName: d.OS, ShowOSName: showOS,
		Name: title, Version: version,
		Index: d.Index, Count: n,
		BootVersion: bv, BootSerial: d.BootSerial,
		Kernel: &kl,
	})
	if err := e.Check(); err != nil {
		return nil, fmt.Errorf("deployment %s: %w", d.Name(), err)
	}
	return e.Format(), nil
}

// checkSpace fails before anything is written when the sysroot cannot
// hold the new deployment's copies (/etc, and the kernel and initramfs
// when /boot is elsewhere) above the repo's min-free-space-percent, or
// /boot cannot hold the kernel and initramfs.
func (s *Sysroot) checkSpace(csum objects.Checksum) error {
	etcBytes, kernelBytes, err := s.copySizes(csum)
	if err != nil {
		return err
	}
	need := etcBytes
	if !sameFS(s.path, s.boot) {
		var st unix.Statfs_t
		if err := unix.Statfs(s.boot, &st); err == nil {
			if free := st.Bavail * uint64(st.Bsize); free < kernelBytes {
				return fmt.Errorf("not enough free space in %s: %d MiB free, %d MiB needed for the kernel and initramfs", s.boot, free>>20, kernelBytes>>20)
			}
		}
	}
	if err := s.repo.CheckFreeSpace(need); err != nil {
		return fmt.Errorf("sysroot %s: %w", s.path, err)
	}
	return nil
}

// copySizes adds up, from the commit, the bytes of usr/etc and of the
// kernel files in usr/lib/modules/*/.
func (s *Sysroot) copySizes(csum objects.Checksum) (etc, kernel uint64, err error) {
	cm, err := s.repo.ReadCommit(csum)
	if err != nil {
		return 0, 0, err
	}
	sub := func(tree objects.Checksum, name string) (objects.Checksum, bool, error) {
		dt, err := s.repo.ReadDirTree(tree)
		if err != nil {
			return tree, false, err
		}
		for _, d := range dt.Dirs {
			if d.Name == name {
				return d.Tree, true, nil
			}
		}
		return tree, false, nil
	}
	usr, ok, err := sub(cm.RootTree, "usr")
	if err != nil || !ok {
		return 0, 0, err
	}
	if t, ok, err := sub(usr, "etc"); err != nil {
		return 0, 0, err
	} else if ok {
		if etc, err = s.treeBytes(t, nil); err != nil {
			return 0, 0, err
		}
	}
	lib, ok, err := sub(usr, "lib")
	if err != nil || !ok {
		return etc, 0, err
	}
	mods, ok, err := sub(lib, "modules")
	if err != nil || !ok {
		return etc, 0, err
	}
	dt, err := s.repo.ReadDirTree(mods)
	if err != nil {
		return 0, 0, err
	}
	for _, d := range dt.Dirs {
		n, err := s.treeBytes(d.Tree, func(name string) bool {
			return name == "vmlinuz" || strings.HasPrefix(name, "initramfs") || name == "devicetree"
		})
		if err != nil {
			return 0, 0, err
		}
		kernel += n
	}
	return etc, kernel, nil
}

// treeBytes adds up the sizes of a tree's files (only the top-level
// files keep selects, when set).
func (s *Sysroot) treeBytes(tree objects.Checksum, keep func(string) bool) (uint64, error) {
	dt, err := s.repo.ReadDirTree(tree)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, f := range dt.Files {
		if keep != nil && !keep(f.Name) {
			continue
		}
		sz, err := s.fileSize(f.Checksum)
		if err != nil {
			return 0, err
		}
		n += sz
	}
	if keep != nil {
		return n, nil
	}
	for _, d := range dt.Dirs {
		m, err := s.treeBytes(d.Tree, nil)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}

func (s *Sysroot) fileSize(c objects.Checksum) (uint64, error) {
	if s.repo.Mode().IsBare() {
		st, err := os.Lstat(s.repo.ObjectPath(objects.KindFile, c))
		if err != nil {
			return 0, fmt.Errorf("%w: object %s", repo.ErrNotFound, repo.ObjectName(objects.KindFile, c))
		}
		return uint64(st.Size()), nil
	}
	h, err := s.repo.ReadFileHeader(c)
	if err != nil {
		return 0, err
	}
	return h.Size, nil
}
