package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/prepareroot"
)

func init() { rootCmd.AddCommand(newPrepareRootCmd()) }

func newPrepareRootCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "prepare-root SYSROOT",
		Short: "Set up the booted deployment at SYSROOT (run from the initramfs)",
		Long: `Run from an initramfs after the physical root is mounted at SYSROOT, with the
contract of ostree-prepare-root: the deployment named by ostree= on the kernel
command line becomes the root at SYSROOT, with /usr read-only, /etc writable,
the stateroot's var on /var, the physical root at /sysroot (read-only when the
repo config has [sysroot] readonly=true) and /run/ostree-booted. Then
switch_root to SYSROOT. Not supported: composefs, /boot automounts.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := prepareroot.Run(args[0], prepareroot.Options{})
			if err != nil {
				return fmt.Errorf("prepare-root: cannot boot: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "strata prepare-root: booting %s (stateroot %s)\n", d.Path, d.OS)
			return nil
		},
	}
	return cmd
}
