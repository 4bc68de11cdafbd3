package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/imgpolicy"
	"github.com/strata-os/strata/install"
	"github.com/strata-os/strata/progress"
)

func init() { rootCmd.AddCommand(newInstallCmd()) }

// installImageHelp ends the --help of to-disk and to-filesystem.
const installImageHelp = `

--source is a ref (or checksum) of --repo, or an image: oci:DIR[:TAG],
oci-archive:FILE[:TAG], docker://HOST/NAME:TAG, registry:HOST/NAME:TAG. An
image is checked (manifest, config, signature policy: --policy, else
/etc/containers/policy.json when it exists) before anything is written,
pulled into the new system's repository (every blob verified) and deployed
with container-image-reference=... as its origin: "strata upgrade" follows
it, or --target-imgref. Registry credentials: --authfile, else the
system's, as bootc (/run/ostree/auth.json, /etc/ostree/auth.json,
/usr/lib/ostree/auth.json); registries.conf as "strata container --help"
says. --target-ref goes with a ref, --target-imgref with an image.`

// installFlags are shared by to-disk and to-filesystem.
type installFlags struct {
	source, target, targetImg, osname, loader string
	kargs                                     []string
	tries                                     int
	pull                                      imagePullFlags
}

func (f *installFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.source, "source", "", "what to install: a ref (or checksum) of --repo, or an image (oci:DIR[:TAG], oci-archive:FILE[:TAG], docker://HOST/NAME:TAG, registry:HOST/NAME:TAG)")
	fl.StringVar(&f.target, "target-ref", "", "refspec the installed system follows for upgrades (REMOTE:REF, its origin; default the --source ref); add the remote on the machine")
	fl.StringVar(&f.targetImg, "target-imgref", "", "with an image --source: the image the installed system follows for upgrades (default the --source image)")
	fl.StringVar(&f.pull.policy, "policy", "", "signature policy for an image --source (containers-policy.json; default "+imgpolicy.DefaultPath+" when it exists)")
	fl.StringVar(&f.pull.registriesD, "registries.d", container.DefaultRegistriesD, "where lookaside signature locations are configured")
	fl.IntVar(&f.pull.jobs, "jobs", 4, "image layers fetched at once")
	fl.IntVar(&f.pull.retries, "retries", 5, "times a broken layer download resumes (HTTP Range) before failing")
	f.pull.access.system = true
	f.pull.access.add(cmd)
	fl.StringVar(&f.osname, "os", "default", "stateroot name")
	fl.StringVar(&f.loader, "bootloader", install.SystemdBoot, "systemd-boot (UEFI, vfat ESP), grub (BIOS) or none")
	fl.StringArrayVar(&f.kargs, "karg", nil, "append a kernel argument (repeatable)")
	fl.IntVar(&f.tries, "boot-counting-tries", 3, "tries of each new deployment's entry before the loader falls back (0: no counting)")
}

// isImageRef says whether --source names a container image (by its
// transport) rather than a ref of --repo.
func isImageRef(s string) bool {
	for _, p := range []string{"oci:", "oci-archive:", "docker://", "registry:", "ostree-unverified-", "ostree-image-signed:", "ostree-remote-"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func (f *installFlags) options(cmd *cobra.Command) (install.Options, error) {
	o := install.Options{
		TargetRef: f.target, TargetImage: f.targetImg, OS: f.osname, Bootloader: f.loader,
		Kargs: f.kargs, BootCountingTries: f.tries, Progress: newReporter(cmd),
		Warner: progress.WarnFunc(func(err error) { fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err) }),
	}
	if !isImageRef(f.source) {
		o.SourceRepo, o.Ref = repoPath(), f.source
		return o, nil
	}
	if strings.HasPrefix(f.source, "ostree-") {
		return o, fmt.Errorf("--source=%s: give the image reference without the ostree- verification prefix (oci:, oci-archive:, docker://, registry:); the signature policy is --policy", f.source)
	}
	o.SourceImage = f.source
	var err error
	o.Pull, err = f.pull.options(cmd)
	return o, err
}

// installed names what was installed.
func installed(o install.Options, res *install.Result) string {
	if o.SourceImage != "" {
		return fmt.Sprintf("%s (%s, commit %s)", o.SourceImage, res.ManifestDigest, res.Commit)
	}
	return o.Ref
}

func newInstallCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install a strata system to a disk or a filesystem",
		Long: `Install --source as the first deployment of a new system, with its boot
loader (docs/install.md). --source is a ref (or checksum) of --repo, or a
container image (oci:DIR[:TAG], oci-archive:FILE[:TAG], docker://HOST/NAME:TAG
or registry:HOST/NAME:TAG; an ostree-ext encapsulated image, as "container
encapsulate" and "compose build --oci" make it, or a plain image), pulled into
the new system's repository (every blob verified; the signature policy,
--policy or /etc/containers/policy.json, checked before anything is written)
and deployed with the image origin (container-image-reference=...), as
"container image deploy" does: "strata upgrade" on the installed machine
follows the image, or --target-imgref when given (bootc's: e.g. installed
from an oci: layout, following a registry). --target-ref (an OSTree
REMOTE:REF) goes with a ref --source, --target-imgref with an image.

Not supported yet: to-filesystem with GRUB, UEFI GRUB, Secure Boot (shim),
ostree-ext's ostree-remote-image references.`,
	}
	cmd.AddCommand(newInstallToDiskCmd(), newInstallToFilesystemCmd())
	return cmd
}

func newInstallToDiskCmd() *cobra.Command {
	var f installFlags
	var wipe bool
	var size int64
	cmd := &cobra.Command{
		Use:   "to-disk DEVICE-OR-IMAGE-FILE",
		Short: "Partition a disk (or an image file) and install onto it",
		Long: `Write a GPT to DEVICE (or IMAGE-FILE, created sparse when missing and set up
on a loop device for the install): with systemd-boot a vfat ESP (256 MiB)
and an ext4 root; with GRUB a BIOS boot partition and an ext4 root. The
root holds the OSTree sysroot and the first deployment (kernel arguments
root=UUID=... rw, the image's usr/lib/bootc/kargs.d and --karg). The loader
binaries come from the image when it carries them (Debian's
systemd-boot-efi, grub-pc-bin), else from the host (a warning says so).

A disk that is mounted, held by another device or opened exclusively
elsewhere, and an image attached to a loop device, are refused; a disk or
image that is not empty needs --wipe. A failed install removes the image
file it created.` + installImageHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(cmd)
			if err != nil {
				return err
			}
			o.Wipe, o.Size = wipe, size
			res, err := install.ToDisk(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Installed %s as %s on %s with %s", installed(o, res), res.Deployment, args[0], res.Bootloader)
			if res.LoaderFrom != "" {
				fmt.Fprintf(out, " (loader from the %s)", res.LoaderFrom)
			}
			fmt.Fprintf(out, "\nroot UUID %s", res.RootUUID)
			if res.ESPUUID != "" {
				fmt.Fprintf(out, ", ESP UUID %s", res.ESPUUID)
			}
			fmt.Fprintf(out, "; %.1fs\n", res.Elapsed.Seconds())
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&wipe, "wipe", false, "overwrite a disk or image that is not empty")
	cmd.Flags().Int64Var(&size, "size", 4<<30, "size in bytes of a new image file")
	return cmd
}

func newInstallToFilesystemCmd() *cobra.Command {
	var f installFlags
	var rootKarg string
	cmd := &cobra.Command{
		Use:   "to-filesystem ROOT",
		Short: "Install into an empty mounted filesystem",
		Long: `Install into ROOT, an empty mounted filesystem (lost+found allowed). With
systemd-boot the ESP must be mounted at ROOT/boot/efi. The kernel command
line gets root=UUID=<ROOT's filesystem UUID> (or --root-karg) and rw. GRUB
is not supported here (it needs a disk: use to-disk).` + installImageHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(cmd)
			if err != nil {
				return err
			}
			res, err := install.ToFilesystem(cmd.Context(), args[0], install.FSOptions{Options: o, RootKarg: rootKarg})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Installed %s as %s into %s with %s\n", installed(o, res), res.Deployment, args[0], res.Bootloader)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&rootKarg, "root-karg", "", "the root= kernel argument (default root=UUID=<ROOT's filesystem>)")
	return cmd
}
