package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/compose"
)

func init() { rootCmd.AddCommand(newComposeCmd()) }

func newComposeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "compose",
		Short: "Build a bootable commit from one TOML spec (Debian via mmdebstrap)",
		Long: `Build a bootable, reproducible OSTree commit from one TOML spec: a Debian base
made by mmdebstrap from locked packages (or an existing ref), the spec's files,
users, groups, units and kernel arguments, laid out for an image-based boot
(/etc in /usr/etc, /var as tmpfiles.d lines, the dpkg database in
/usr/lib/sysimage/dpkg, kernel and initramfs in /usr/lib/modules/$kver, an
initramfs that runs strata prepare-root). See docs/compose.md.

Packages are cached in $STRATA_CACHE (default .cache). The mirror is the one
of apt's configuration on this machine (/etc/apt/sources.list*), unless the
spec's [base] mirror names one.

Not supported yet: an OCI image as the base (image = "oci:..."), --oci export,
adding packages on top of a ref base.`,
	}
	cmd.AddCommand(newComposeBuildCmd(), newComposeLockCmd())
	return cmd
}

func newComposeBuildCmd() *cobra.Command {
	var branch, strataBin, cacheDir string
	var keep, noBaseCache bool
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

The strata binary installed into the image (and its initramfs) is this one
unless --strata-binary names another; it must be static (CGO_ENABLED=0).

Not supported yet: --oci (export as an OCI image), image = "oci:..." bases.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := compose.LoadSpec(args[0])
			if err != nil {
				return err
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			res, err := compose.Build(cmd.Context(), s, compose.Options{
				Repo: r, Branch: branch, CacheDir: cacheDir, StrataBinary: strataBin, Keep: keep, NoBaseCache: noBaseCache,
				Progress: newReporter(cmd), Warner: newWarner(cmd),
			})
			if err != nil {
				return err
			}
			if res.LockWritten {
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", compose.LockPath(s.Path))
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Summary())
			return nil
		},
	}
	cmd.Flags().StringVarP(&branch, "branch", "b", "", "ref to commit to (default: the spec's os.name)")
	cmd.Flags().StringVar(&strataBin, "strata-binary", "", "static strata binary to install in the image (default: this one)")
	cmd.Flags().StringVar(&cacheDir, "cache", "", "package and build cache (default: $STRATA_CACHE, else .cache)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the build directory (for debugging)")
	cmd.Flags().BoolVar(&noBaseCache, "no-base-cache", false, "always run mmdebstrap (do not reuse or store the cached base tree of the lock)")
	return cmd
}

func newComposeLockCmd() *cobra.Command {
	var strataBin, cacheDir string
	cmd := &cobra.Command{
		Use:   "lock SPEC.toml",
		Short: "Resolve the spec's Debian packages against the mirror and write SPEC.lock",
		Long: `Resolve the spec's [base] against the mirror (a full mmdebstrap run) and write
SPEC.lock beside it: every .deb with its version, sha256, size and pool path,
and the SOURCE_DATE_EPOCH of the builds made from it. The packages are added to
the cache, so the next build needs no download.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := compose.LoadSpec(args[0])
			if err != nil {
				return err
			}
			l, err := compose.LockSpec(cmd.Context(), s, compose.Options{
				CacheDir: cacheDir, StrataBinary: strataBin, Progress: newReporter(cmd), Warner: newWarner(cmd),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d packages\n", compose.LockPath(s.Path), len(l.Packages))
			return nil
		},
	}
	cmd.Flags().StringVar(&strataBin, "strata-binary", "", "static strata binary to install in the image (default: this one)")
	cmd.Flags().StringVar(&cacheDir, "cache", "", "package and build cache (default: $STRATA_CACHE, else .cache)")
	return cmd
}
