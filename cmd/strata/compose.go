package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/compose"
	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/imgpolicy"
)

func init() { rootCmd.AddCommand(newComposeCmd()) }

func newComposeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "compose",
		Short: "Build a bootable commit from one TOML spec (Debian via mmdebstrap, a ref or an OCI image)",
		Long: `Build a bootable, reproducible OSTree commit from one TOML spec: a Debian base
made by mmdebstrap from locked packages (or an existing ref), the spec's files,
users, groups, units and kernel arguments, laid out for an image-based boot
(/etc in /usr/etc, /var as tmpfiles.d lines, the dpkg database in
/usr/lib/sysimage/dpkg, kernel and initramfs in /usr/lib/modules/$kver, an
initramfs that runs strata prepare-root). See docs/compose.md.

Packages are cached in $STRATA_CACHE (default .cache). The mirror is the one
of apt's configuration on this machine (/etc/apt/sources.list*), unless the
spec's [base] mirror names one.

The base is one of: Debian packages (suite), an existing ref, or an OCI image
(image = "oci:DIR[:TAG]", "oci-archive:FILE[:TAG]" or "docker://HOST/NAME..."),
whose merged layers are the tree the spec is applied to.

With a ref or image base, [base] packages are installed on top of its tree
(layering): the lock pins the base (commit or image digest) and every .deb
installed on top, resolved against the base's own dpkg database; the build
installs exactly those with the base's apt and dpkg in a chroot, offline.
A change to the base's own package list is a new base (a full compose).`,
	}
	cmd.AddCommand(newComposeBuildCmd(), newComposeLockCmd())
	return cmd
}

func newComposeBuildCmd() *cobra.Command {
	var branch, strataBin, cacheDir, oci, ociPrevious, policy, registriesD string
	var keep, noBaseCache bool
	var maxLayers int
	var access accessFlags
	cmd := &cobra.Command{
		Use:   "build SPEC.toml",
		Short: "Compose SPEC.toml into a commit (writes SPEC.lock first when there is none)",
		Long: `Compose SPEC.toml into a commit on -b REF (default: the spec's os.name) of
--repo. The packages installed are exactly those of SPEC.lock, from the
package cache, verified by sha256; a missing lock is made first (as
'strata compose lock' does). The commit has no parent, its timestamp is the
lock's SOURCE_DATE_EPOCH, and it is the same, bit for bit, for the same spec,
lock and strata binary. Prints a one-line summary.

The tree mmdebstrap makes from a lock is cached ($STRATA_CACHE/base-repo): a
rebuild with the same lock (only files, users, units or kernel arguments
changed) skips mmdebstrap; --no-base-cache always runs it.

An image base (image = "oci:DIR[:TAG]", "oci-archive:FILE[:TAG]", relative to
the spec, or "docker://HOST/NAME:TAG|@sha256:..."; plain HTTP for 127.0.0.1,
localhost and private addresses) is pulled into the base cache as
'container image pull' does (only missing layers; every blob verified; the
signature policy of --policy, else /etc/containers/policy.json when present,
asked first), its merged tree checked out and the spec applied. The commit's
timestamp is the image's created time (unless [os] source-date-epoch), its
metadata records the image's manifest digest as
org.opencontainers.image.base.digest: the same image digest and spec give the
same commit. SPEC.lock pins the image's manifest digest (written by the first
build or 'strata compose lock'): a registry image is then pulled by that
digest even if its tag moved; a layout or archive whose tag names another image
is refused until 'strata compose lock' takes it. An image whose /usr, /etc,
/boot, /tmp, /var/lib/dpkg or another directory the build writes below is a
symlink is refused.

--oci=IMGREF exports the commit, once written, as an encapsulated image
(ostree-ext's format, as 'strata container encapsulate' writes it:
--oci-max-layers layers, reproducible) to oci:DIR[:TAG], oci-archive:FILE[:TAG]
or registry:HOST/NAME:TAG; the image digest is printed on a second line.
--oci-previous=IMGREF keeps an earlier export's layer layout (as 'container
encapsulate --previous').

The strata binary installed into the image (and its initramfs) is this one
unless --strata-binary names another; it must be static (CGO_ENABLED=0).

An image base's pull and a registry --oci push use the credentials and
registries.conf below, as 'container image pull' and 'container encapsulate'
do.

Not supported yet: packages on top of a ref or image base.

` + accessHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var dest container.ImageRef
			if oci != "" {
				d, err := container.ParseImageRef(oci)
				if err != nil {
					return fmt.Errorf("--oci: %w", err)
				}
				dest = d
			}
			var prev *container.ImageRef
			if ociPrevious != "" {
				if oci == "" {
					return fmt.Errorf("--oci-previous needs --oci")
				}
				p, err := container.ParseImageRef(ociPrevious)
				if err != nil {
					return fmt.Errorf("--oci-previous: %w", err)
				}
				prev = &p
			}
			s, err := compose.LoadSpec(args[0])
			if err != nil {
				return err
			}
			pol, err := loadPolicy(policy)
			if err != nil {
				return err
			}
			acc, err := access.get()
			if err != nil {
				return err
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			res, err := compose.Build(cmd.Context(), s, compose.Options{
				Repo: r, Branch: branch, CacheDir: cacheDir, StrataBinary: strataBin, Keep: keep, NoBaseCache: noBaseCache,
				Pull: container.PullOptions{Policy: pol, RegistriesD: registriesD, Access: acc}, OCI: dest, OCIMaxLayers: maxLayers, OCIPrevious: prev,
				Progress: newReporter(cmd), Warner: newWarner(cmd),
			})
			if err != nil {
				return err
			}
			if res.LockWritten {
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", compose.LockPath(s.Path))
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Summary())
			if res.Image != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", dest, res.Image.ManifestDigest)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&branch, "branch", "b", "", "ref to commit to (default: the spec's os.name)")
	cmd.Flags().StringVar(&strataBin, "strata-binary", "", "static strata binary to install in the image (default: this one)")
	cmd.Flags().StringVar(&cacheDir, "cache", "", "package and build cache (default: $STRATA_CACHE, else .cache)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the build directory (for debugging)")
	cmd.Flags().BoolVar(&noBaseCache, "no-base-cache", false, "always run mmdebstrap (do not reuse or store the cached base tree of the lock); an image base is pulled into a temporary repository")
	cmd.Flags().StringVar(&oci, "oci", "", "export the commit as an encapsulated image to IMGREF (oci:DIR[:TAG], oci-archive:FILE[:TAG], registry:HOST/NAME:TAG)")
	cmd.Flags().IntVar(&maxLayers, "oci-max-layers", 64, "most layers in the --oci image (2-128)")
	cmd.Flags().StringVar(&ociPrevious, "oci-previous", "", "an earlier --oci export (IMGREF) whose layer layout the new image keeps (as encapsulate --previous)")
	cmd.Flags().StringVar(&policy, "policy", "", "signature policy for an image base (containers-policy.json; default "+imgpolicy.DefaultPath+" when it exists)")
	cmd.Flags().StringVar(&registriesD, "registries.d", container.DefaultRegistriesD, "where lookaside signature locations of an image base are configured")
	access.add(cmd)
	return cmd
}

func newComposeLockCmd() *cobra.Command {
	var strataBin, cacheDir, policy, registriesD string
	var access accessFlags
	cmd := &cobra.Command{
		Use:   "lock SPEC.toml",
		Short: "Resolve the spec's Debian packages (or base image) and write SPEC.lock",
		Long: `Resolve the spec's [base] against the mirror (a full mmdebstrap run) and write
SPEC.lock beside it: every .deb with its version, sha256, size and pool path,
and the SOURCE_DATE_EPOCH of the builds made from it. The packages are added to
the cache, so the next build needs no download.

For an image base (image = "..."), the image's manifest and config are read
(no layers) and SPEC.lock pins its manifest digest; builds then use exactly
that image.

With packages on a ref base (ref = "...", read from --repo) or an image base,
the base's tree is taken and the packages resolved against its dpkg database
(apt-get --print-uris against the mirror, no mmdebstrap): SPEC.lock pins the
base commit (or image digest) and every .deb installed on top. An image base
is then pulled (into $STRATA_CACHE/base-repo) after its signature policy is
asked, as build does (--policy, --registries.d).

` + accessHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := compose.LoadSpec(args[0])
			if err != nil {
				return err
			}
			acc, err := access.get()
			if err != nil {
				return err
			}
			o := compose.Options{
				CacheDir: cacheDir, StrataBinary: strataBin, Progress: newReporter(cmd), Warner: newWarner(cmd),
				Pull: container.PullOptions{Access: acc},
			}
			if s.Base.Image != "" && len(s.Base.Packages) > 0 {
				// The image's layers are pulled: its policy is asked.
				if o.Pull.Policy, err = loadPolicy(policy); err != nil {
					return err
				}
				o.Pull.RegistriesD = registriesD
			}
			if s.Base.Ref != "" && len(s.Base.Packages) > 0 {
				// Resolved against the ref's tree.
				if o.Repo, err = openRepo(); err != nil {
					return err
				}
			}
			l, err := compose.LockSpec(cmd.Context(), s, o)
			if err != nil {
				return err
			}
			if l.Image != "" && len(l.Packages) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: image %s\n", compose.LockPath(s.Path), l.Image)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d packages\n", compose.LockPath(s.Path), len(l.Packages))
			return nil
		},
	}
	cmd.Flags().StringVar(&strataBin, "strata-binary", "", "static strata binary to install in the image (default: this one)")
	cmd.Flags().StringVar(&cacheDir, "cache", "", "package and build cache (default: $STRATA_CACHE, else .cache)")
	cmd.Flags().StringVar(&policy, "policy", "", "signature policy for an image base with packages, whose layers are pulled (containers-policy.json; default "+imgpolicy.DefaultPath+" when it exists)")
	cmd.Flags().StringVar(&registriesD, "registries.d", container.DefaultRegistriesD, "where lookaside signature locations of an image base are configured")
	access.add(cmd)
	return cmd
}
