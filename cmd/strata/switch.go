package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/upgrader"
)

func init() { rootCmd.AddCommand(newSwitchCmd(), newUpgradeCmd()) }

// reboot asks systemd to reboot, for --apply.
func reboot(cmd *cobra.Command) error {
	fmt.Fprintln(cmd.ErrOrStderr(), "Rebooting into the new deployment")
	c := exec.CommandContext(cmd.Context(), "systemctl", "reboot")
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	return c.Run()
}

func printUpgrade(cmd *cobra.Command, res *upgrader.Result) {
	w := cmd.OutOrStdout()
	if res.Deploy != nil {
		printDeployResult(w, res.Deploy)
	}
	if res.Image.Image.Name != "" {
		fmt.Fprintf(w, "Image: %s\n", res.Image)
		if res.Digest != "" {
			fmt.Fprintf(w, "Digest: %s\n", res.Digest)
		}
		if res.Version != "" {
			fmt.Fprintf(w, "Version: %s\n", res.Version)
		}
		if pr := res.Pull; pr != nil {
			fmt.Fprintf(w, "Layers: %d fetched (%d of them in part; %d bytes), %d already present\n", pr.LayersFetched, pr.LayersPartial, pr.BytesFetched, pr.LayersReused)
		}
	}
	if !res.To.IsZero() {
		fmt.Fprintf(w, "Commit: %s\n", res.To)
	}
}

func newSwitchCmd() *cobra.Command {
	p := imagePullFlags{access: accessFlags{system: true}}
	var o upgrader.Options
	var transport string
	var apply bool
	cmd := &cobra.Command{
		Use:   "switch [--transport=registry|oci|oci-archive] IMAGE",
		Short: "Deploy a container image and follow it from now on (bootc switch)",
		Long: `Pull IMAGE into the sysroot's repository and deploy it with an origin that
follows it (container-image-reference=ostree-unverified-registry:IMAGE, as
bootc writes it); later "strata upgrade" runs follow the image. /etc and the
kernel arguments are carried over. On a booted system the deployment is staged
(it becomes the default at shutdown); --apply reboots into it at once.
IMAGE is HOST/NAME[:TAG] for --transport=registry (the default), DIR[:TAG] for
oci and FILE[:TAG] for oci-archive.

The signature policy (--policy, else /etc/containers/policy.json when it
exists) is checked before anything is written; the origin then says
ostree-image-signed. Not supported yet: Fulcio/Rekor.

` + accessHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := container.ParseImageRef(transport + ":" + args[0])
			if err != nil {
				return err
			}
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			if o.Pull, err = p.options(cmd); err != nil {
				return err
			}
			o.Stage = s.Booted() != nil
			res, err := upgrader.Switch(cmd.Context(), s, ref, o)
			if err != nil {
				return err
			}
			printUpgrade(cmd, res)
			if !res.Changed {
				fmt.Fprintln(cmd.OutOrStdout(), "Already on this image.")
				return nil
			}
			if apply {
				return reboot(cmd)
			}
			return nil
		},
	}
	p.add(cmd)
	cmd.Flags().StringVar(&transport, "transport", "registry", "registry, oci or oci-archive")
	cmd.Flags().StringVar(&o.OS, "os", "", "the stateroot (default: the booted one)")
	cmd.Flags().BoolVar(&o.Retain, "retain", false, "keep every current deployment")
	cmd.Flags().BoolVar(&apply, "apply", false, "reboot into the new deployment")
	return cmd
}

func newUpgradeCmd() *cobra.Command {
	p := imagePullFlags{access: accessFlags{system: true}}
	var o upgrader.Options
	var apply bool
	cmd := &cobra.Command{
		Use:   "upgrade [--check] [--download-only] [--apply]",
		Short: "Update to the newest version of what the system follows (bootc upgrade)",
		Long: `Follow the merge deployment's origin: a container image
(container-image-reference, written by "strata switch" or ostree-ext/bootc) or
an OSTree refspec (as "strata admin upgrade").

For an image, the manifest is read and compared with the deployed digest; when
it changed, only the missing layers are fetched, and the new merge commit is
deployed with /etc and kernel arguments carried over. On a booted system the
new deployment is staged (the default at shutdown).

  --check          only say whether an update is available (an image: manifest
                   and config only; a refspec: the commit is pulled, nothing
                   deployed); exit status 0 either way
  --download-only  fetch the update, do not deploy it
  --apply          after deploying, reboot into the update (systemctl reboot);
                   nothing happens when there is no update. The update agent
                   (strata update, timer-driven) runs upgrades with --apply.

Exit status: 0 when up to date or updated; non-zero on any error (nothing of a
failed update is deployed).

` + accessHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Check && (o.DownloadOnly || apply) {
				return fmt.Errorf("%w: --check cannot be combined with --download-only or --apply", errdefs.ErrInvalid)
			}
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			if o.Pull, err = p.options(cmd); err != nil {
				return err
			}
			o.Stage = s.Booted() != nil
			o.Puller = upgradePuller(cmd)
			res, err := upgrader.Upgrade(cmd.Context(), s, o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch {
			case !res.Changed:
				fmt.Fprintln(w, "No update available.")
				return nil
			case o.Check:
				fmt.Fprintln(w, "Update available.")
			case o.DownloadOnly:
				fmt.Fprintln(w, "Update downloaded (not deployed).")
			}
			printUpgrade(cmd, res)
			if apply && res.Deploy != nil {
				return reboot(cmd)
			}
			return nil
		},
	}
	p.add(cmd)
	cmd.Flags().StringVar(&o.OS, "os", "", "the stateroot (default: the booted one)")
	cmd.Flags().BoolVar(&o.Check, "check", false, "only check whether an update is available")
	cmd.Flags().BoolVar(&o.DownloadOnly, "download-only", false, "download the update without deploying it")
	cmd.Flags().BoolVar(&apply, "apply", false, "reboot into the update once deployed")
	return cmd
}
