// Package install puts a strata system onto a disk (or a disk image
// file) or into a mounted filesystem: GPT partitions, filesystems, the
// sysroot, the first deployment and the boot loader (systemd-boot on a
// vfat ESP, or GRUB for BIOS). docs/install.md describes the layout.
//
// It drives the system's own tools (sfdisk, mkfs.vfat, mkfs.ext4,
// losetup, mount, grub-install) and the sysroot package; the loader
// binaries come from the image being installed when it carries them,
// else from the host (reported through the Warner).
package install

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/grubcfg"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/pull"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sysroot"
)

// Boot loaders.
const (
	SystemdBoot = sysroot.LoaderSystemdBoot
	GRUB        = sysroot.LoaderGRUB
	None        = "none"
)

// GPT partition type GUIDs.
const (
	typeESP      = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeBIOSBoot = "21686148-6449-6E6F-744E-656564454649"
	typeRootX64  = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
)

// Loader binaries as Debian installs them (systemd-boot-efi,
// grub-pc-bin), looked for in the deployment first, then on the host.
const (
	systemdBootEFI = "usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	grubPCDir      = "usr/lib/grub/i386-pc"
)

// Options are what to install and how.
type Options struct {
	// SourceRepo holds Ref.
	SourceRepo string
	// Ref is the ref (or checksum) to deploy; a ref is created under the
	// same name in the installed system's repository.
	Ref string
	// TargetRef, when set, is the refspec the installed system follows
	// (its deployment's origin, e.g. "REMOTE:REF"), as bootc install's
	// --target-imgref: the machine is installed from Ref and upgrades
	// from TargetRef. The remote itself is configured on the machine.
	TargetRef string
	// SourceImage, instead of SourceRepo and Ref, is a container image
	// reference (oci:DIR[:TAG], oci-archive:FILE[:TAG], docker://NAME,
	// registry:NAME): the image is pulled into the new sysroot's
	// repository with container.Pull (verified, Pull.Policy checked
	// before anything is written) and its merge commit deployed with
	// ostree-ext's origin (container-image-reference), as "container
	// image deploy" does, so that upgrade follows the image.
	SourceImage string
	// TargetImage, with SourceImage, is the image the installed system
	// follows when it is not SourceImage (bootc install's
	// --target-imgref): e.g. installed from an oci: layout, following a
	// registry. Exclusive with TargetRef.
	TargetImage string
	// Pull tunes the image pull: policy, registry access, jobs, progress.
	Pull container.PullOptions
	// OS is the stateroot; default "default" (bootc's).
	OS string
	// Bootloader is SystemdBoot (the default), GRUB or None.
	Bootloader string
	// Kargs are appended to root=UUID=... rw and the image's own
	// (usr/lib/bootc/kargs.d/*.toml).
	Kargs []string
	// Wipe allows overwriting a disk that holds a partition table or a
	// filesystem.
	Wipe bool
	// Size of a new image file (default 4 GiB).
	Size int64
	// ESPSize (default 256 MiB).
	ESPSize int64
	// BootCountingTries for the first deployment's entry (0: none).
	BootCountingTries int
	// Warner receives notes that do not stop the install (loader taken
	// from the host).
	Warner   progress.Warner
	Progress progress.Reporter

	srcImg, tgtImg *container.ImageRef // parsed by defaults
}

// Result says what was installed.
type Result struct {
	Device      string // the disk or loop device written
	Deployment  string // $csum.$serial
	Commit      string
	RootUUID    string
	ESPUUID     string
	LoaderFrom  string // "image" or "host"
	Bootloader  string
	Partitions  []string
	Elapsed     time.Duration
	ImageLoaded bool // Device was a loop device set up for an image file
	// ManifestDigest and BaseCommit (the encapsulated commit, empty for
	// a plain image) of an install from SourceImage.
	ManifestDigest string
	BaseCommit     string
}

func (o *Options) defaults() error {
	o.srcImg, o.tgtImg = nil, nil
	if o.TargetImage != "" && o.TargetRef != "" {
		return fmt.Errorf("%w: a target ref and a target image are mutually exclusive", errdefs.ErrInvalid)
	}
	if o.SourceImage != "" {
		if o.Ref != "" {
			return fmt.Errorf("%w: give a source ref or a source image, not both", errdefs.ErrInvalid)
		}
		ref, err := container.ParseImageRef(o.SourceImage)
		if err != nil {
			return fmt.Errorf("source image: %w", err)
		}
		o.srcImg = &ref
		if o.TargetRef != "" {
			return fmt.Errorf("%w: target ref %q follows an OSTree ref, the source %s is an image: give a target image instead", errdefs.ErrInvalid, o.TargetRef, o.SourceImage)
		}
	}
	if o.TargetImage != "" {
		if o.srcImg == nil {
			return fmt.Errorf("%w: target image %q needs a source image (an install from an OSTree ref follows a ref: give a target ref)", errdefs.ErrInvalid, o.TargetImage)
		}
		ref, err := container.ParseImageRef(o.TargetImage)
		if err != nil {
			return fmt.Errorf("target image: %w", err)
		}
		o.tgtImg = &ref
	}
	if o.TargetRef != "" {
		remote, ref, found := strings.Cut(o.TargetRef, ":")
		if !found {
			remote, ref = "", remote
		}
		if err := repo.ValidateRefName(ref); err != nil || (found && remote == "") || strings.ContainsAny(remote, "/\n\r\x00 ") {
			return fmt.Errorf("target ref %q: want REMOTE:REF or REF: %w", o.TargetRef, errdefs.ErrInvalid)
		}
	}
	if o.OS == "" {
		o.OS = "default"
	}
	if o.Bootloader == "" {
		o.Bootloader = SystemdBoot
	}
	switch o.Bootloader {
	case SystemdBoot, GRUB, None:
	default:
		return fmt.Errorf("%w: --bootloader=%q: want systemd-boot, grub or none", errdefs.ErrInvalid, o.Bootloader)
	}
	if o.Size == 0 {
		o.Size = 4 << 30
	}
	if o.ESPSize == 0 {
		o.ESPSize = 256 << 20
	}
	if o.Ref == "" && o.srcImg == nil {
		return fmt.Errorf("%w: no --source ref or image given", errdefs.ErrInvalid)
	}
	if err := sysroot.ValidateOSName(o.OS); err != nil {
		return err
	}
	return nil
}

// checkSource refuses a source that cannot be installed before anything
// is written: a ref missing from the source repository; an image whose
// manifest or configuration cannot be read and verified, or that the
// signature policy refuses (its layers are verified while they are
// pulled, onto the new filesystem).
func (o *Options) checkSource(ctx context.Context) error {
	if o.srcImg != nil {
		_, err := container.ResolveVerified(ctx, *o.srcImg, o.Pull)
		return err
	}
	src, err := repo.Open(o.SourceRepo)
	if err != nil {
		return fmt.Errorf("source repository: %w", err)
	}
	if _, err := src.ResolveRev(o.Ref); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	return nil
}

// run runs a tool, its output in the error.
func run(ctx context.Context, stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// ToDisk installs onto target: a block device, or an image file (created
// sparse at Options.Size when missing) attached to a loop device for the
// time of the install.
func ToDisk(ctx context.Context, target string, o Options) (res *Result, err error) {
	start := time.Now()
	if err := o.defaults(); err != nil {
		return nil, err
	}
	w := progress.WarnerOrNop(o.Warner)
	res = &Result{Bootloader: o.Bootloader}
	st, err := os.Stat(target)
	// The target, then the source, are checked before anything is written.
	switch {
	case errors.Is(err, os.ErrNotExist):
		if strings.HasPrefix(target, "/dev/") {
			return nil, fmt.Errorf("%w: %s: no such device", errdefs.ErrNotFound, target)
		}
	case err != nil:
		return nil, err
	case st.Mode().IsRegular():
		if err := checkImageFree(ctx, target); err != nil {
			return nil, err
		}
		if err := checkBlank(target, o.Wipe); err != nil {
			return nil, err
		}
	case st.Mode()&os.ModeDevice != 0:
		if err := CheckDeviceFree(target); err != nil {
			return nil, err
		}
		if err := checkBlank(target, o.Wipe); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: %s is neither a block device nor a regular file", errdefs.ErrInvalid, target)
	}
	if err := o.checkSource(ctx); err != nil {
		return nil, err
	}
	if st == nil {
		f, cerr := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if cerr != nil {
			return nil, cerr
		}
		cerr = f.Truncate(o.Size)
		f.Close()
		if cerr != nil {
			os.Remove(target)
			return nil, cerr
		}
		// Removed again when the install fails (after the loop devices
		// are detached: deferred first, run last). err is the result.
		defer func() {
			if err != nil {
				os.Remove(target)
			}
		}()
	}

	// Partition table.
	var script strings.Builder
	script.WriteString("label: gpt\n")
	if o.Bootloader == GRUB {
		fmt.Fprintf(&script, "size=1MiB, type=%s, name=\"BIOS boot\"\n", typeBIOSBoot)
	} else {
		fmt.Fprintf(&script, "size=%dKiB, type=%s, name=\"ESP\"\n", o.ESPSize>>10, typeESP)
	}
	fmt.Fprintf(&script, "type=%s, name=\"root\"\n", typeRootX64)
	if _, err := run(ctx, []byte(script.String()), "sfdisk", "--quiet", "--wipe", "always", "--wipe-partitions", "always", target); err != nil {
		return nil, err
	}
	parts, err := readTable(ctx, target)
	if err != nil {
		return nil, err
	}
	dev := target
	var p1, p2 string
	if st == nil || st.Mode().IsRegular() {
		// One loop device per partition, at its offset: needs no
		// partition scanning (which containers often lack).
		res.ImageLoaded = true
		for i, pp := range parts {
			out, err := run(ctx, nil, "losetup", "--find", "--show", fmt.Sprintf("--offset=%d", pp.Start*512), fmt.Sprintf("--sizelimit=%d", pp.Size*512), target)
			if err != nil {
				return nil, err
			}
			loop := strings.TrimSpace(out)
			defer func() {
				if _, derr := run(context.WithoutCancel(ctx), nil, "losetup", "--detach", loop); derr != nil && err == nil {
					err = derr
				}
			}()
			if i == 0 {
				p1 = loop
			} else {
				p2 = loop
			}
		}
	} else {
		// Make the kernel read the new table.
		if _, err := run(ctx, nil, "blockdev", "--rereadpt", dev); err != nil {
			return nil, err
		}
		p1, p2 = partName(dev, 1), partName(dev, 2)
		if err := waitFor(ctx, p1, p2); err != nil {
			return nil, err
		}
	}
	res.Device = dev
	res.Partitions = []string{p1, p2}
	rootPart := p2
	espPart := ""
	if o.Bootloader != GRUB {
		espPart = p1
		if _, err := run(ctx, nil, "mkfs.vfat", "-F", "32", "-n", "ESP", espPart); err != nil {
			return nil, err
		}
	}
	if _, err := run(ctx, nil, "mkfs.ext4", "-q", "-F", "-L", "root", rootPart); err != nil {
		return nil, err
	}
	if res.RootUUID, err = blkUUID(ctx, rootPart); err != nil {
		return nil, err
	}
	if espPart != "" {
		if res.ESPUUID, err = blkUUID(ctx, espPart); err != nil {
			return nil, err
		}
	}
	mnt, err := os.MkdirTemp("", "strata-install-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(mnt)
	if err := unix.Mount(rootPart, mnt, "ext4", 0, ""); err != nil {
		return nil, fmt.Errorf("mount %s: %w", rootPart, err)
	}
	defer func() {
		unix.Sync()
		if uerr := unix.Unmount(mnt, 0); uerr != nil && err == nil {
			err = fmt.Errorf("unmount %s: %w", mnt, uerr)
		}
	}()
	fo := FSOptions{Options: o, rootUUID: res.RootUUID, espUUID: res.ESPUUID, espDevice: espPart, grubDisk: target, grubCoreLBA: parts[0].Start, grubCoreSectors: parts[0].Size}
	fr, err := toFilesystem(ctx, mnt, fo, w)
	if err != nil {
		return nil, err
	}
	res.Deployment, res.Commit, res.LoaderFrom = fr.Deployment, fr.Commit, fr.LoaderFrom
	res.ManifestDigest, res.BaseCommit = fr.ManifestDigest, fr.BaseCommit
	res.Elapsed = time.Since(start)
	return res, nil
}

// FSOptions are ToFilesystem's options.
type FSOptions struct {
	Options
	// RootKarg replaces root=UUID=<uuid of ROOT's filesystem>.
	RootKarg string

	rootUUID, espUUID string
	espDevice         string // mounted at ROOT/boot/efi by toFilesystem
	grubDisk          string // the disk (or image) GRUB's boot code goes to
	grubCoreLBA       int64  // the BIOS boot partition, in 512-byte sectors
	grubCoreSectors   int64
}

// ToFilesystem installs into ROOT, a mounted, empty ext4 (or other)
// filesystem: the sysroot, the first deployment and, for systemd-boot,
// the loader onto the ESP that must be mounted at ROOT/boot/efi. GRUB
// needs a disk to install to: use ToDisk.
func ToFilesystem(ctx context.Context, root string, o FSOptions) (*Result, error) {
	start := time.Now()
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.Bootloader == GRUB {
		return nil, fmt.Errorf("%w: install to-filesystem with GRUB is not supported (GRUB needs a disk: use to-disk)", errdefs.ErrInvalid)
	}
	if err := o.checkSource(ctx); err != nil {
		return nil, err
	}
	if o.RootKarg == "" {
		var st unix.Stat_t
		if err := unix.Stat(root, &st); err != nil {
			return nil, fmt.Errorf("%s: %w", root, err)
		}
		dev := fmt.Sprintf("/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
		u, err := blkUUID(ctx, dev)
		if err != nil {
			return nil, fmt.Errorf("cannot find the UUID of %s's filesystem (give --root-karg): %w", root, err)
		}
		o.rootUUID = u
	}
	if o.Bootloader == SystemdBoot {
		if !isMountpoint(filepath.Join(root, "boot/efi")) {
			return nil, fmt.Errorf("%w: %s/boot/efi is not a mount point: mount the ESP there first", errdefs.ErrInvalid, root)
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(root, "boot/efi"), &st); err == nil {
			if u, err := blkUUID(ctx, fmt.Sprintf("/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))); err == nil {
				o.espUUID = u
			}
		}
	}
	r, err := toFilesystem(ctx, root, o, progress.WarnerOrNop(o.Warner))
	if err != nil {
		return nil, err
	}
	r.Elapsed = time.Since(start)
	return r, nil
}

func toFilesystem(ctx context.Context, root string, o FSOptions, w progress.Warner) (*Result, error) {
	res := &Result{Bootloader: o.Bootloader, RootUUID: o.rootUUID, ESPUUID: o.espUUID}
	des, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, de := range des {
		if de.Name() != "lost+found" && !(de.Name() == "boot" && o.espDevice == "") {
			return nil, fmt.Errorf("%w: %s is not empty (%s)", errdefs.ErrExists, root, de.Name())
		}
	}
	var src *repo.Repo
	if o.srcImg == nil {
		src, err = repo.Open(o.SourceRepo)
		if err != nil {
			return nil, fmt.Errorf("source repository: %w", err)
		}
		csum, err := src.ResolveRev(o.Ref)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		res.Commit = csum.String()
	}
	if err := sysroot.InitFS(root, false); err != nil {
		return nil, err
	}
	if err := sysroot.InitOS(root, o.OS); err != nil {
		return nil, err
	}
	dst, err := repo.Open(filepath.Join(root, "ostree/repo"))
	if err != nil {
		return nil, err
	}
	cfg := dst.Config()
	if o.Bootloader != None {
		cfg.Set("strata", "bootloader", o.Bootloader)
	}
	cfg.Set("sysroot", "boot-counting-tries", fmt.Sprint(o.BootCountingTries))
	if err := dst.WriteConfig(cfg); err != nil {
		return nil, err
	}
	rev := o.Ref
	var origin *repo.KeyFile
	if o.TargetRef != "" {
		origin = sysroot.NewOrigin(o.TargetRef)
	}
	if o.srcImg != nil {
		po := o.Pull
		if po.Reporter == nil {
			po.Reporter = o.Progress
		}
		pr, err := container.Pull(ctx, dst, *o.srcImg, po)
		if err != nil {
			return nil, err
		}
		rev = pr.MergeCommit.String()
		res.Commit, res.ManifestDigest = rev, pr.ManifestDigest
		if !pr.BaseCommit.IsZero() {
			res.BaseCommit = pr.BaseCommit.String()
		}
		follow := *o.srcImg
		if o.tgtImg != nil {
			follow = *o.tgtImg
			if err := container.Retag(dst, *o.srcImg, follow); err != nil {
				return nil, err
			}
		}
		origin = container.Origin(container.OstreeImageRef{SigVerify: container.SigVerifyOf(pr), Image: follow}, pr.ManifestDigest)
	} else if _, err := pull.Pull(ctx, dst, pull.NewLocalSource(src), pull.Options{Refs: []string{rev}, Progress: o.Progress}); err != nil {
		return nil, fmt.Errorf("copying %s: %w", o.Ref, err)
	}
	espDir := filepath.Join(root, "boot/efi")
	if err := os.MkdirAll(espDir, 0o755); err != nil {
		return nil, err
	}
	if o.espDevice != "" {
		// A fresh ESP is assembled in a directory and copied onto the
		// new vfat filesystem with mtools at the end: the install does
		// not need vfat in the running kernel.
		stage, err := os.MkdirTemp("", "strata-install-esp-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(stage)
		espDir = stage
	}
	// The loader goes in before the first deployment: the deploy
	// projects its entry onto the ESP, which needs loader/loader.conf.
	// Its binaries come from the commit when it carries them.
	tree, err := os.MkdirTemp("", "strata-install-probe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tree)
	runDir := filepath.Join(tree, "run")
	cmdline := filepath.Join(tree, "cmdline")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cmdline, nil, 0o644); err != nil {
		return nil, err
	}
	kargs := []string{"root=UUID=" + o.rootUUID, "rw"}
	if o.RootKarg != "" {
		kargs[0] = o.RootKarg
	}
	if o.Bootloader == SystemdBoot {
		if err := writeLoaderConf(espDir); err != nil {
			return nil, err
		}
		// systemd-boot tells the OS which ESP it came from, and systemd's
		// gpt-auto generator would then stack an automount of the ESP on
		// /boot, which prepare-root has already bound to the sysroot's
		// /boot (the automount fails and the system is degraded). The
		// ESP is mounted at /boot/efi by the fstab line written below.
		kargs = append(kargs, "systemd.gpt_auto=0")
	}
	s, err := sysroot.Open(root, sysroot.Options{RunDir: runDir, Cmdline: cmdline, Root: tree, ESPDir: espDir})
	if err != nil {
		return nil, err
	}
	// The image's own (usr/lib/bootc/kargs.d) are added by the deploy.
	kargs = append(kargs, o.Kargs...)
	dr, err := s.Deploy(ctx, sysroot.DeployOptions{OS: o.OS, Revision: rev, Origin: origin, KargNone: true, KargAppend: kargs})
	if err != nil {
		return nil, err
	}
	d := dr.Deployment
	res.Deployment = d.Name()
	dpath := s.DeploymentPath(d)
	switch o.Bootloader {
	case SystemdBoot:
		from, err := installSystemdBoot(dpath, espDir, w)
		if err != nil {
			return nil, err
		}
		res.LoaderFrom = from
		if o.espUUID != "" {
			if err := appendFstab(dpath, fmt.Sprintf("UUID=%s /boot/efi vfat umask=0077,shortname=winnt 0 2\n", o.espUUID)); err != nil {
				return nil, err
			}
		}
		if o.espDevice != "" {
			if err := copyToVfat(ctx, espDir, o.espDevice); err != nil {
				return nil, err
			}
		}
		unix.Sync()
	case GRUB:
		from, err := installGRUB(ctx, root, dpath, o, w)
		if err != nil {
			return nil, err
		}
		res.LoaderFrom = from
	}
	return res, nil
}

// copyToVfat copies the tree dir onto the root of the vfat filesystem on
// dev with mtools.
func copyToVfat(ctx context.Context, dir, dev string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	args := []string{"-s", "-p", "-Q", "-i", dev}
	for _, de := range des {
		args = append(args, filepath.Join(dir, de.Name()))
	}
	args = append(args, "::/")
	cmd := exec.CommandContext(ctx, "mcopy", args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mcopy onto the ESP %s: %w: %s", dev, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// writeLoaderConf writes loader/loader.conf on the ESP: no menu unless a
// key is pressed, no default (systemd-boot then boots the first entry of
// its order, which strata's entry names control).
func writeLoaderConf(espDir string) error {
	dir := filepath.Join(espDir, "loader")
	if err := fsutil.MkdirAllSync(filepath.Join(dir, "entries"), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFile(filepath.Join(dir, "loader.conf"), []byte("timeout 0\neditor no\nauto-entries no\nauto-firmware no\n"), 0o644)
}

// maxLoaderFile bounds a boot loader file or fstab read from an image.
const maxLoaderFile = 64 << 20

// readInDeployment reads the regular file rel of the deployment at dpath,
// resolved inside it (fsutil.OpenRegularInRoot): the image's files are
// untrusted, and a symlink in it to an absolute path must not read the
// host's file, a FIFO must not block the install.
func readInDeployment(dpath, rel string) ([]byte, error) {
	fd, err := unix.Open(dpath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dpath, Err: err}
	}
	defer unix.Close(fd)
	f, err := fsutil.OpenRegularInRoot(fd, rel)
	if err != nil {
		return nil, fmt.Errorf("image's /%s: %w", rel, err)
	}
	defer f.Close()
	return fsutil.ReadAllLimit(f, maxLoaderFile)
}

// loaderFile returns the deployment's copy of rel, else the host's.
func loaderFile(dpath, rel string, w progress.Warner, what string) (string, string, error) {
	p := filepath.Join(dpath, rel)
	if _, err := os.Stat(p); err == nil {
		return p, "image", nil
	}
	h := "/" + rel
	if _, err := os.Stat(h); err != nil {
		return "", "", fmt.Errorf("%w: %s: neither the image nor the host has /%s (Debian: %s)", errdefs.ErrNotFound, what, rel, map[string]string{"systemd-boot": "systemd-boot-efi", "GRUB": "grub-pc-bin"}[what])
	}
	w.Warn(fmt.Errorf("%s: the image has no /%s; using the host's", what, rel))
	return h, "host", nil
}

// installSystemdBoot copies systemd-boot to the ESP as the removable-media
// default loader and under EFI/systemd.
func installSystemdBoot(dpath, espDir string, w progress.Warner) (string, error) {
	src, from, err := loaderFile(dpath, systemdBootEFI, w, "systemd-boot")
	if err != nil {
		return "", err
	}
	var data []byte
	if from == "image" {
		data, err = readInDeployment(dpath, systemdBootEFI)
	} else {
		data, err = fsutil.ReadFileLimit(src, maxLoaderFile)
	}
	if err != nil {
		return "", fmt.Errorf("systemd-boot: %w", err)
	}
	for _, dst := range []string{"EFI/BOOT/BOOTX64.EFI", "EFI/systemd/systemd-bootx64.efi"} {
		p := filepath.Join(espDir, dst)
		if err := fsutil.MkdirAllSync(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := fsutil.WriteFile(p, data, 0o644); err != nil {
			return "", err
		}
	}
	return from, nil
}

// installGRUB links boot/grub/grub.cfg to the live boot version's
// grub.cfg, creates grubenv, copies the image's GRUB modules (or the
// host's) to boot/grub/i386-pc, and writes GRUB's boot code as
// grub-install would, without needing the disk's partitions as devices:
// core.img (grub-mkimage: biosdisk, part_gpt, ext2, search by the root
// filesystem's UUID, prefix /boot/grub) into the BIOS boot partition with
// its first sector's block list pointing at the rest, and boot.img's code
// into the MBR (its partition table kept) pointing at core.img.
func installGRUB(ctx context.Context, root, dpath string, o FSOptions, w progress.Warner) (string, error) {
	gdir := filepath.Join(root, "boot/grub")
	if err := fsutil.MkdirAllSync(gdir, 0o755); err != nil {
		return "", err
	}
	if err := fsutil.Symlink("../loader/grub.cfg", filepath.Join(gdir, "grub.cfg")); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(gdir, "grubenv")); errors.Is(err, os.ErrNotExist) {
		data, err := grubcfg.FormatEnv(map[string]string{})
		if err != nil {
			return "", err
		}
		if err := fsutil.WriteFile(filepath.Join(gdir, "grubenv"), data, 0o644); err != nil {
			return "", err
		}
	}
	mods, from, err := loaderFile(dpath, grubPCDir, w, "GRUB")
	if err != nil {
		return "", err
	}
	if o.grubDisk == "" || o.grubCoreSectors == 0 {
		return "", fmt.Errorf("%w: GRUB needs a disk with a BIOS boot partition", errdefs.ErrInvalid)
	}
	// Modules and their lists, for insmod from $prefix.
	mdir := filepath.Join(gdir, "i386-pc")
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		return "", err
	}
	des, err := os.ReadDir(mods)
	if err != nil {
		return "", err
	}
	for _, de := range des {
		n := de.Name()
		if !de.Type().IsRegular() || !(strings.HasSuffix(n, ".mod") || strings.HasSuffix(n, ".lst")) {
			continue
		}
		data, err := fsutil.ReadFileLimit(filepath.Join(mods, n), maxLoaderFile)
		if err != nil {
			return "", err
		}
		// Not fsutil.WriteFile: a fresh filesystem of ToDisk (GRUB
		// needs its disk), synced whole (unix.Sync) before the unmount
		// that ends the install; a failed install is refused whole.
		if err := os.WriteFile(filepath.Join(mdir, n), data, 0o644); err != nil {
			return "", err
		}
	}
	tmp, err := os.MkdirTemp("", "strata-grub-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	early := fmt.Sprintf("search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n", o.rootUUID)
	if err := os.WriteFile(filepath.Join(tmp, "early.cfg"), []byte(early), 0o644); err != nil {
		return "", err
	}
	core := filepath.Join(tmp, "core.img")
	if _, err := run(ctx, nil, "grub-mkimage", "-O", "i386-pc", "-d", mods, "-o", core, "-c", filepath.Join(tmp, "early.cfg"),
		"-p", "/boot/grub", "biosdisk", "part_gpt", "ext2", "search", "search_fs_uuid"); err != nil {
		return "", err
	}
	coreImg, err := os.ReadFile(core)
	if err != nil {
		return "", err
	}
	var bootImg []byte
	if from == "image" {
		bootImg, err = readInDeployment(dpath, grubPCDir+"/boot.img")
	} else {
		bootImg, err = fsutil.ReadFileLimit(filepath.Join(mods, "boot.img"), maxLoaderFile)
	}
	if err != nil {
		return "", fmt.Errorf("GRUB: %w", err)
	}
	if err := placeGRUB(o.grubDisk, bootImg, coreImg, o.grubCoreLBA, o.grubCoreSectors); err != nil {
		return "", err
	}
	return from, nil
}

// Offsets in GRUB's i386-pc boot.img and diskboot.img (grub's
// include/grub/i386/pc/boot.h and diskboot.S).
const (
	bootKernelSector = 0x5c  // uint64: LBA of core.img's first sector
	bootDriveCheck   = 0x66  // 2-byte jump replaced by NOPs for hard disks
	bootCodeEnd      = 0x1b8 // disk signature and partition table follow
	blocklistStart   = 0x1f4 // in core.img's first sector: uint64 start, uint16 len, uint16 segment
)

// placeGRUB writes core into the BIOS boot partition at lba (of sectors
// length) and boot.img's code into the MBR of disk.
func placeGRUB(disk string, boot, core []byte, lba, sectors int64) error {
	if len(boot) != 512 || len(core) < 1024 {
		return fmt.Errorf("%w: GRUB images of unexpected size (boot.img %d, core.img %d bytes)", errdefs.ErrCorrupt, len(boot), len(core))
	}
	nsec := (int64(len(core)) + 511) / 512
	if nsec > sectors {
		return fmt.Errorf("%w: core.img (%d sectors) does not fit in the BIOS boot partition (%d)", errdefs.ErrInvalid, nsec, sectors)
	}
	core = append([]byte(nil), core...)
	core = append(core, make([]byte, int(nsec*512)-len(core))...)
	binary.LittleEndian.PutUint64(core[blocklistStart:], uint64(lba+1))
	binary.LittleEndian.PutUint16(core[blocklistStart+8:], uint16(nsec-1))
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return fmt.Errorf("reading the MBR of %s: %w", disk, err)
	}
	copy(mbr[:bootCodeEnd], boot[:bootCodeEnd])
	binary.LittleEndian.PutUint64(mbr[bootKernelSector:], uint64(lba))
	mbr[bootDriveCheck], mbr[bootDriveCheck+1] = 0x90, 0x90
	if _, err := f.WriteAt(core, lba*512); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	return f.Sync()
}

// partition is one entry of the partition table, in 512-byte sectors.
type partition struct{ Start, Size int64 }

// readTable reads the partition table sfdisk wrote.
func readTable(ctx context.Context, disk string) ([]partition, error) {
	out, err := run(ctx, nil, "sfdisk", "--json", disk)
	if err != nil {
		return nil, err
	}
	var j struct {
		PartitionTable struct {
			SectorSize int64       `json:"sectorsize"`
			Partitions []partition `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		return nil, fmt.Errorf("sfdisk --json %s: %w", disk, err)
	}
	if ss := j.PartitionTable.SectorSize; ss != 0 && ss != 512 {
		return nil, fmt.Errorf("%w: %s has %d-byte sectors (only 512 is supported)", errdefs.ErrInvalid, disk, ss)
	}
	if len(j.PartitionTable.Partitions) != 2 {
		return nil, fmt.Errorf("%w: %s: expected 2 partitions after partitioning, found %d", errdefs.ErrCorrupt, disk, len(j.PartitionTable.Partitions))
	}
	return j.PartitionTable.Partitions, nil
}

// appendFstab adds a line to the deployment's /etc/fstab (a local /etc
// change: later deployments keep it through the /etc merge).
func appendFstab(dpath, line string) error {
	p := filepath.Join(dpath, "etc/fstab")
	old, err := readInDeployment(dpath, "etc/fstab")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(old) > 0 && !bytes.HasSuffix(old, []byte("\n")) {
		old = append(old, '\n')
	}
	return fsutil.WriteFile(p, append(old, line...), 0o644)
}

// partName names partition n of dev: sda1, nvme0n1p1, loop0p1.
func partName(dev string, n int) string {
	if last := dev[len(dev)-1]; last >= '0' && last <= '9' {
		return fmt.Sprintf("%sp%d", dev, n)
	}
	return fmt.Sprintf("%s%d", dev, n)
}

// waitFor waits (up to 10 s) for device nodes to appear.
func waitFor(ctx context.Context, paths ...string) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range paths {
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: %s did not appear", errdefs.ErrNotFound, p)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func blkUUID(ctx context.Context, dev string) (string, error) {
	out, err := run(ctx, nil, "blkid", "-p", "-s", "UUID", "-o", "value", dev)
	if err != nil {
		return "", err
	}
	u := strings.TrimSpace(out)
	if u == "" {
		return "", fmt.Errorf("%w: %s has no filesystem UUID", errdefs.ErrNotFound, dev)
	}
	return u, nil
}

func isMountpoint(p string) bool {
	var a, b unix.Stat_t
	if unix.Stat(p, &a) != nil || unix.Stat(filepath.Dir(p), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// checkBlank refuses a target that holds something (a partition table or
// a filesystem signature in its first MiB) unless wipe is set.
func checkBlank(target string, wipe bool) error {
	if wipe {
		return nil
	}
	f, err := os.Open(target)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	for _, c := range buf[:n] {
		if c != 0 {
			return fmt.Errorf("%w: %s is not empty (it holds a partition table or data); give --wipe to overwrite it", errdefs.ErrExists, target)
		}
	}
	return nil
}

// checkImageFree refuses an image file attached to a loop device.
func checkImageFree(ctx context.Context, img string) error {
	out, err := run(ctx, nil, "losetup", "--associated", img)
	if err != nil {
		return err
	}
	if s := strings.TrimSpace(out); s != "" {
		dev, _, _ := strings.Cut(s, ":")
		return fmt.Errorf("%w: %s is in use: attached to %s", errdefs.ErrExists, img, dev)
	}
	return nil
}

// CheckDeviceFree refuses a block device that is mounted (it or one of
// its partitions, per /proc/self/mountinfo), held by another device
// (device-mapper, RAID: /sys/class/block/X/holders), or that the kernel
// will not open exclusively (O_EXCL: some other user claims it).
func CheckDeviceFree(dev string) error {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return fmt.Errorf("%w: %s is not a block device", errdefs.ErrInvalid, dev)
	}
	name := filepath.Base(dev)
	if real, err := filepath.EvalSymlinks(dev); err == nil {
		name = filepath.Base(real)
	}
	devs := map[string]string{fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)): name}
	parts, _ := filepath.Glob(filepath.Join("/sys/class/block", name, name+"*", "dev"))
	for _, p := range parts {
		if b, err := os.ReadFile(p); err == nil {
			devs[strings.TrimSpace(string(b))] = filepath.Base(filepath.Dir(p))
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			if n, ok := devs[f[2]]; ok {
				return fmt.Errorf("%w: %s is in use: /dev/%s is mounted at %s", errdefs.ErrExists, dev, n, f[4])
			}
		}
	}
	var names []string
	for _, n := range devs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		hs, _ := os.ReadDir(filepath.Join("/sys/class/block", n, "holders"))
		if len(hs) > 0 {
			return fmt.Errorf("%w: %s is in use: /dev/%s is held by %s", errdefs.ErrExists, dev, n, hs[0].Name())
		}
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: %s is in use: exclusive open failed: %v", errdefs.ErrExists, dev, err)
	}
	unix.Close(fd)
	return nil
}
