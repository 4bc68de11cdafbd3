package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/checkout"
	"github.com/strata-os/strata/etcmerge"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// DeployOptions are the arguments of Deploy, with `ostree admin deploy`'s
// meanings.
type DeployOptions struct {
	// OS is the stateroot; "" means the booted deployment's.
	OS string
	// Revision is what to deploy: a ref, "remote:ref" or a checksum.
	Revision string
	// Origin is the new deployment's origin; nil writes
	// "[origin] refspec=Revision".
	Origin *repo.KeyFile
	// Kernel arguments. With none of these set the new deployment inherits
	// the merge deployment's. KargNone starts from nothing and
	// KargProcCmdline from the running kernel's command line; otherwise
	// Karg, KargAppend and KargDelete edit the merge deployment's: Karg
	// replaces every argument with the same key, KargAppend appends,
	// KargDelete removes (KEY alone when it has one value, else KEY=VALUE).
	Karg, KargAppend, KargDelete []string
	KargNone, KargProcCmdline    bool
	// NoMerge starts /etc and the kernel arguments from the new tree's
	// defaults instead of the merge deployment's.
	NoMerge bool
	// Retain keeps every current deployment; RetainPending and
	// RetainRollback keep those before or after the booted (or merge)
	// deployment. By default only the new, booted, merge, pinned and
	// other stateroots' deployments stay.
	Retain, RetainPending, RetainRollback bool
	// NotAsDefault adds the new deployment after the booted (or merge)
	// deployment instead of first.
	NotAsDefault bool
	// Stage writes the deployment now and switches to it only at
	// FinalizeStaged (at shutdown); it needs a booted deployment.
	Stage bool
	// LockFinalization makes FinalizeStaged skip the staged deployment
	// until the lock file is removed.
	LockFinalization bool
	// NoPrune skips pruning the repository after the switch.
	NoPrune bool
	// KeepEtc names files of /etc (relative to it) copied from
	// KeepEtcFrom's /etc into the new deployment's, over the image's,
	// before the switch: a factory reset keeps the mounts the install
	// wrote (fstab) with no other local change. A file KeepEtcFrom lacks
	// is skipped.
	KeepEtc     []string
	KeepEtcFrom *Deployment
}

// DeployResult reports what Deploy did.
type DeployResult struct {
	Deployment *Deployment
	// EtcModified, EtcRemoved, EtcAdded count the local /etc changes
	// carried over from the merge deployment.
	EtcModified, EtcRemoved, EtcAdded int
	// Pruned is what the final repository prune freed.
	Pruned repo.PruneStats
}

// Deploy checks out Revision as a new deployment of OS and makes it the
// default (or, with Stage, records it to become the default at
// FinalizeStaged), in the order docs/sysroot.md gives: the deployment
// fully written and synced, refs, boot files, the new loader.N entries,
// then one rename of boot/loader. It holds the sysroot lock throughout.
func (s *Sysroot) Deploy(ctx context.Context, o DeployOptions) (*DeployResult, error) {
	res := &DeployResult{}
	err := s.withLock(ctx, func() error {
		osname := o.OS
		if osname == "" {
			if s.booted == nil {
				return fmt.Errorf("%w and no --os= argument given", ErrNotBooted)
			}
			osname = s.booted.OS
		}
		if err := s.requireStateroot(osname); err != nil {
			return err
		}
		if o.Stage {
			switch {
			case s.booted == nil:
				return fmt.Errorf("cannot stage deployment: %w", ErrNotBooted)
			case o.Retain || o.RetainPending || o.RetainRollback:
				return fmt.Errorf("%w: --stage cannot currently be combined with --retain arguments", ErrInvalid)
			case o.NotAsDefault:
				return fmt.Errorf("%w: --stage cannot currently be combined with --not-as-default", ErrInvalid)
			}
		}
		if o.KargProcCmdline && o.KargNone {
			return fmt.Errorf("%w: can't specify both --karg-proc-cmdline and --karg-none", ErrInvalid)
		}
		if o.KargNone && len(o.KargDelete) > 0 {
			return fmt.Errorf("%w: can't specify both --karg-none and --karg-delete", ErrInvalid)
		}
		if o.NoMerge && len(o.KargDelete) > 0 {
			return fmt.Errorf("%w: can't specify both --no-merge and --karg-delete", ErrInvalid)
		}
		csum, err := s.repo.ResolveRev(o.Revision)
		if err != nil {
			return err
		}
		origin := o.Origin
		if origin == nil {
			origin = NewOrigin(o.Revision)
		}
		var merge *Deployment
		if !o.NoMerge {
			merge = s.MergeDeployment(osname)
		}
		if err := s.prepareCleanup(ctx); err != nil {
			return fmt.Errorf("initial cleanup: %w", err)
		}
		ka, err := s.deployKargs(o, merge)
		if err != nil {
			return err
		}
		// The image's own arguments (/usr/lib/bootc/kargs.d), as bootc
		// applies them.
		if ka, err = s.applyImageKargs(ka, csum, merge); err != nil {
			return err
		}
		if o.Stage {
			d, err := s.stage(ctx, osname, csum, origin, merge, ka, o.LockFinalization)
			res.Deployment = d
			return err
		}
		d, plan, err := s.newDeployment(ctx, osname, csum, origin, merge, ka, true)
		if err != nil {
			return err
		}
		if plan != nil {
			res.EtcModified, res.EtcRemoved, res.EtcAdded = plan.Counts()
		}
		if o.KeepEtcFrom != nil {
			if err := copyEtcFiles(s.DeploymentPath(o.KeepEtcFrom), s.DeploymentPath(d), o.KeepEtc); err != nil {
				return err
			}
		}
		res.Deployment = d
		list := s.simpleWriteList(osname, d, merge, writeFlags{
			retain: o.Retain, retainPending: o.RetainPending, retainRollback: o.RetainRollback, notDefault: o.NotAsDefault,
		})
		st, err := s.writeDeployments(ctx, list, writeOptions{newDeployment: d, postclean: true, prune: !o.NoPrune})
		res.Pruned = st
		return err
	})
	if err != nil {
		return nil, err
	}
	// Hand back the loaded deployment, with its index and boot serial.
	for _, d := range s.deployments {
		if same(d, res.Deployment) {
			res.Deployment = d
		}
	}
	return res, nil
}

// requireStateroot fails unless ostree/deploy/OS/var exists.
func (s *Sysroot) requireStateroot(osname string) error {
	if err := ValidateOSName(osname); err != nil {
		return err
	}
	if st, err := os.Stat(filepath.Join(s.path, "ostree/deploy", osname, "var")); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: no such stateroot: %s (run admin os-init %s)", ErrNotFound, osname, osname)
	}
	return nil
}

// deployKargs computes the kernel arguments of a new deployment as
// `ostree admin deploy` does; nil means "inherit from the merge
// deployment".
func (s *Sysroot) deployKargs(o DeployOptions, merge *Deployment) (*bootloader.Kargs, error) {
	if err := checkKargs(o.Karg, o.KargAppend, o.KargDelete); err != nil {
		return nil, err
	}
	var ka *bootloader.Kargs
	switch {
	case o.KargNone:
		ka = &bootloader.Kargs{}
	case o.KargProcCmdline:
		data, err := os.ReadFile(s.opts.Cmdline)
		if err != nil {
			return nil, fmt.Errorf("--karg-proc-cmdline: %w", err)
		}
		ka = &bootloader.Kargs{}
		ka.AppendCmdline(string(data))
	case merge != nil && (len(o.Karg) > 0 || len(o.KargAppend) > 0 || len(o.KargDelete) > 0):
		ka = bootloader.ParseKargs(merge.Options())
	}
	if len(o.Karg) > 0 && ka == nil {
		ka = &bootloader.Kargs{}
	}
	for _, a := range o.Karg {
		ka.Set(a)
	}
	if len(o.KargAppend) > 0 && ka == nil {
		ka = &bootloader.Kargs{}
	}
	for _, a := range o.KargAppend {
		ka.Append(a)
	}
	for _, a := range o.KargDelete {
		if ka == nil {
			return nil, fmt.Errorf("%w: --karg-delete %s: no kernel arguments to delete from", ErrInvalid, a)
		}
		if err := ka.Delete(a); err != nil {
			return nil, err
		}
	}
	return ka, nil
}

// allocateSerial returns the next deploy serial for csum in stateroot os.
func (s *Sysroot) allocateSerial(osname string, csum objects.Checksum) (int, error) {
	ents, err := os.ReadDir(filepath.Join(s.path, "ostree/deploy", osname, "deploy"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("sysroot: %w", err)
	}
	serial := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		c, n, err := parseDeployName(e.Name())
		if err == nil && c == csum && n >= serial {
			serial = n + 1
		}
	}
	return serial, nil
}

// stagingPrefix names the directory a deployment is checked out into
// before it is renamed into ostree/deploy/$os/deploy. It lives in the
// stateroot, where ostree never looks, so a crash leaves nothing ostree
// would trip over; cleanup removes it.
const stagingPrefix = ".strata-staging-"

// newDeployment writes a new deployment directory of csum: checkout, /etc
// (from usr/etc, merged with merge's local changes when finalize), the
// stateroot's /var seeded when empty, a syncfs, the rename into place,
// the origin file and, when finalize, the immutable flag. Nothing of it
// is referenced by a boot entry yet.
func (s *Sysroot) newDeployment(ctx context.Context, osname string, csum objects.Checksum, origin *repo.KeyFile, merge *Deployment, ka *bootloader.Kargs, finalize bool) (d *Deployment, plan *etcmerge.Plan, err error) {
	serial, err := s.allocateSerial(osname, csum)
	if err != nil {
		return nil, nil, err
	}
	d = &Deployment{OS: osname, Checksum: csum, Serial: serial, Origin: origin, BootSerial: -1, entry: bootloader.NewEntry()}
	if ka != nil {
		d.entry.Set("options", ka.String())
	}
	if err := s.checkSpace(csum); err != nil {
		return nil, nil, err
	}
	staging := filepath.Join(s.path, "ostree/deploy", osname, stagingPrefix+d.Name())
	if err := os.RemoveAll(staging); err != nil {
		return nil, nil, fmt.Errorf("sysroot: %w", err)
	}
	published := false
	defer func() {
		if !published {
			os.RemoveAll(staging)
		}
	}()
	if err := fsutil.CheckFailpoint("sysroot:checkout"); err != nil {
		return nil, nil, err
	}
	if err := checkout.Checkout(ctx, s.repo, csum, staging, checkout.Options{Progress: s.opts.Progress}); err != nil {
		return nil, nil, fmt.Errorf("checking out deployment tree: %w", err)
	}
	if err := checkDeploymentDirs(staging, "commit "+csum.String()); err != nil {
		return nil, nil, err
	}
	layout, err := bootloader.FindKernel(ctx, staging)
	if err != nil {
		return nil, nil, fmt.Errorf("commit %s: %w", csum, err)
	}
	d.BootChecksum = layout.BootCsum
	if err := s.checkTitle(staging, csum); err != nil {
		return nil, nil, err
	}
	if err := s.prepareEtc(ctx, staging, csum); err != nil {
		return nil, nil, err
	}
	if err := s.prepareVar(ctx, staging, osname, csum); err != nil {
		return nil, nil, err
	}
	if finalize {
		if plan, err = s.finalizeDir(ctx, d, staging, merge); err != nil {
			return nil, nil, err
		}
	}
	if err := fsutil.CheckFailpoint("sysroot:syncfs-deployment"); err != nil {
		return nil, nil, err
	}
	if err := fsutil.Syncfs(staging); err != nil {
		return nil, nil, err
	}
	final := s.DeploymentPath(d)
	if err := fsutil.MkdirAllSync(filepath.Dir(final), 0o755); err != nil {
		return nil, nil, fmt.Errorf("sysroot: %w", err)
	}
	if err := fsutil.CheckFailpoint("sysroot:publish-deployment"); err != nil {
		return nil, nil, err
	}
	if err := fsutil.Rename(staging, final); err != nil {
		return nil, nil, fmt.Errorf("publishing deployment %s: %w", d.Name(), err)
	}
	published = true
	if err := s.writeOrigin(d, origin); err != nil {
		return nil, nil, err
	}
	if finalize {
		if err := seal(final, true); err != nil {
			return nil, nil, err
		}
	}
	return d, plan, nil
}

// prepareEtc creates the deployment's /etc as a copy of usr/etc (a tree
// with only /etc gets it moved to usr/etc first, as ostree does). The
// tree's usr, usr/etc and etc are real directories (checkTreeDirs), and
// the move is resolved beneath root.
func (s *Sysroot) prepareEtc(ctx context.Context, root string, csum objects.Checksum) error {
	if err := fsutil.CheckFailpoint("sysroot:etc"); err != nil {
		return err
	}
	rootfd, err := openTree(root)
	if err != nil {
		return err
	}
	defer unix.Close(rootfd)
	if err := checkTreeDirs(rootfd, "commit "+csum.String()); err != nil {
		return err
	}
	exists := func(name string) bool {
		_, err := fsutil.LstatBeneath(rootfd, name)
		return err == nil
	}
	etc, usrEtc := filepath.Join(root, "etc"), filepath.Join(root, "usr/etc")
	switch {
	case exists("etc") && exists("usr/etc"):
		return fmt.Errorf("%w: preparing /etc: tree contains both /etc and /usr/etc", ErrInvalid)
	case exists("etc"):
		// A tree with /etc only: it becomes usr/etc, and /etc a copy.
		if err := fsutil.RenameBeneath(rootfd, "etc", "usr/etc"); err != nil {
			return fmt.Errorf("preparing /etc: %w", err)
		}
		if err := copyTree(ctx, usrEtc, etc); err != nil {
			return fmt.Errorf("preparing /etc: %w", err)
		}
		return nil
	case !exists("usr/etc"):
		return nil
	}
	if err := checkout.Checkout(ctx, s.repo, csum, etc, checkout.Options{Subpath: "/usr/etc", ForceCopy: true}); err != nil {
		return fmt.Errorf("preparing /etc: %w", err)
	}
	return nil
}

func lexists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// prepareVar seeds the stateroot's /var from the commit's /var when the
// stateroot's is empty (a new stateroot), as current ostree does; an
// existing /var is never touched.
func (s *Sysroot) prepareVar(ctx context.Context, root, osname string, csum objects.Checksum) error {
	if !lexists(filepath.Join(root, "var")) {
		return nil
	}
	v := filepath.Join(s.path, "ostree/deploy", osname, "var")
	ents, err := os.ReadDir(v)
	if err != nil {
		return fmt.Errorf("preparing /var: %w", err)
	}
	if len(ents) > 0 {
		return nil
	}
	if err := fsutil.CheckFailpoint("sysroot:var-seed"); err != nil {
		return err
	}
	if err := checkout.Checkout(ctx, s.repo, csum, v, checkout.Options{Subpath: "/var", ForceCopy: true, Union: true}); err != nil {
		return fmt.Errorf("seeding %s: %w", v, err)
	}
	return fsutil.SyncDir(v)
}

// finalizeDir completes a deployment directory at root: the kernel
// arguments inherited from merge, the /etc merge, and the removal of
// etc/.updated and var/.updated so that systemd's ConditionNeedsUpdate
// units run on the next boot. The merge is planned before anything is
// written, so an impossible merge fails with nothing changed.
func (s *Sysroot) finalizeDir(ctx context.Context, d *Deployment, root string, merge *Deployment) (*etcmerge.Plan, error) {
	if _, ok := d.entry.Get("options"); !ok && merge != nil && merge.entry != nil {
		if v, ok := merge.entry.Get("options"); ok {
			d.entry.Set("options", v)
		}
	}
	rootfd, err := openTree(root)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rootfd)
	if err := checkTreeDirs(rootfd, "deployment "+d.Name()); err != nil {
		return nil, err
	}
	var plan *etcmerge.Plan
	if merge != nil {
		mdir := s.DeploymentPath(merge)
		if err := checkDeploymentDirs(mdir, "merge deployment "+merge.Name()); err != nil {
			return nil, err
		}
		plan, err = etcmerge.NewPlan(ctx, filepath.Join(mdir, "usr/etc"), filepath.Join(mdir, "etc"), filepath.Join(root, "etc"))
		if err != nil {
			return nil, err
		}
		if err := fsutil.CheckFailpoint("sysroot:etc-merge"); err != nil {
			return nil, err
		}
		if err := plan.Apply(ctx); err != nil {
			return nil, err
		}
	}
	if err := fsutil.RemoveBeneath(rootfd, "etc/.updated"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("deployment %s: %w", d.Name(), err)
	}
	varDir := filepath.Join(s.path, "ostree/deploy", d.OS, "var")
	if s.booted != nil && s.booted.OS == d.OS {
		varDir = filepath.Join(s.opts.Root, "var")
	}
	if err := removeIfExists(filepath.Join(varDir, ".updated")); err != nil {
		return nil, err
	}
	return plan, nil
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sysroot: %w", err)
	}
	return nil
}

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutableFL = 0x10

// seal sets (or clears) the immutable flag of a deployment directory, as
// ostree does, so that nothing adds or removes top-level entries. It is a
// no-op on filesystems without the flag.
func seal(dir string, immutable bool) error {
	if immutable {
		if err := fsutil.CheckFailpoint("sysroot:seal"); err != nil {
			return err
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("sysroot: open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
			return nil
		}
		return fmt.Errorf("sysroot: get flags of %s: %w", dir, err)
	}
	nflags := flags &^ fsImmutableFL
	if immutable {
		nflags = flags | fsImmutableFL
	}
	if nflags == flags {
		return nil
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, nflags); err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil
		}
		return fmt.Errorf("sysroot: set flags of %s: %w", dir, err)
	}
	return nil
}

// copyTree copies a file, symlink or directory (recursively) with its
// mode, owner and xattrs. Symlinks are copied as symlinks, never
// followed; dst names are created new (O_EXCL), so nothing is written
// through a link.
func copyTree(ctx context.Context, src, dst string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := copyTree(ctx, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	case unix.S_IFLNK:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
	case unix.S_IFREG:
		in, err := fsutil.OpenRegular(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		_, err = fsutil.CopyContext(ctx, out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	default:
		return nil // ostree ignores other file types in /etc
	}
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	vals, names, err := fsutil.ListXattrs(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := unix.Lsetxattr(dst, n, vals[n], 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return err
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return unix.Chmod(dst, st.Mode&0o7777)
	}
	return nil
}
