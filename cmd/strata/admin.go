package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/sysroot"
)

// adminCmd groups the deployment verbs, as `ostree admin` does. Verbs
// register themselves with adminCmd.AddCommand in their own init().
var adminCmd = &cobra.Command{
	Use:   "admin",
	Short: "Manage deployments of an OSTree-compatible sysroot (--sysroot)",
	Args:  cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		return cmd.Help()
	},
}

func init() {
	rootCmd.AddCommand(adminCmd)
}

// sysrootOptions are the paths of the running system's state. The
// STRATA_RUN_DIR, STRATA_ROOT and STRATA_CMDLINE environment variables
// replace /run, / and /proc/cmdline, for tests that simulate a booted
// system; STRATA_ESP_DIR replaces /boot/efi (the ESP's mount point).
func sysrootOptions(cmd *cobra.Command) sysroot.Options {
	o := sysroot.Options{
		RunDir:   os.Getenv("STRATA_RUN_DIR"),
		Root:     os.Getenv("STRATA_ROOT"),
		Cmdline:  os.Getenv("STRATA_CMDLINE"),
		ESPDir:   os.Getenv("STRATA_ESP_DIR"),
		Progress: newReporter(cmd),
		Warner:   newWarner(cmd),
		OnLockWait: func(lock string) {
			fmt.Fprintf(cmd.ErrOrStderr(), "Waiting for sysroot lock %s...\n", lock)
		},
	}
	return o
}

// openSysroot loads the sysroot named by the global flags.
func openSysroot(cmd *cobra.Command) (*sysroot.Sysroot, error) {
	o := sysrootOptions(cmd)
	return sysroot.Open(sysroot.Locate(globals.sysroot, &o), o)
}

// parseIndex parses a deployment index argument.
func parseIndex(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: invalid index: %s", sysroot.ErrInvalid, s)
	}
	return n, nil
}
