package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/fsutil"
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
	installCrashHook(os.Getenv("STRATA_CRASH_AT"))
}

// installCrashHook makes the process SIGKILL itself at a failpoint, for
// kill-based and power-cut tests: STRATA_CRASH_AT=STEP kills at the first
// time the durable step STEP (e.g. "sysroot:swap", see sysroot.Steps) is
// reached, STRATA_CRASH_AT=STEP@N at the Nth time. Nothing happens when
// the variable is empty.
func installCrashHook(spec string) {
	if spec == "" {
		return
	}
	step, nth := spec, 1
	if i := strings.LastIndexByte(spec, '@'); i > 0 {
		if n, err := strconv.Atoi(spec[i+1:]); err == nil && n > 0 {
			step, nth = spec[:i], n
		}
	}
	var mu sync.Mutex
	seen := 0
	f := func(s string) error {
		if s != step {
			return nil
		}
		mu.Lock()
		seen++
		hit := seen == nth
		mu.Unlock()
		if hit {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns: the signal is on its way
		}
		return nil
	}
	fsutil.Failpoint.Store(&f)
}

// sysrootOptions are the paths of the running system's state. The
// STRATA_RUN_DIR, STRATA_ROOT and STRATA_CMDLINE environment variables
// replace /run, / and /proc/cmdline, for tests that simulate a booted
// system.
func sysrootOptions(cmd *cobra.Command) sysroot.Options {
	o := sysroot.Options{
		RunDir:   os.Getenv("STRATA_RUN_DIR"),
		Root:     os.Getenv("STRATA_ROOT"),
		Cmdline:  os.Getenv("STRATA_CMDLINE"),
		Progress: newReporter(cmd),
		Warner:   newWarner(cmd),
		OnLockWait: func(lock string) {
			fmt.Fprintf(cmd.ErrOrStderr(), "Waiting for sysroot lock %s...\n", lock)
		},
	}
	return o
}

// sysrootPath picks the sysroot: --sysroot, whose default / is the
// running system. A booted system whose / has no ostree/ (the deployment
// tree does not link it) is reached through /sysroot, the physical root
// prepare-root mounts there, with /boot as the boot directory when it
// holds the loader.
func sysrootPath(o *sysroot.Options) string {
	p := globals.sysroot
	if p == "" {
		p = "/"
	}
	if p != "/" {
		return p
	}
	run := o.RunDir
	if run == "" {
		run = "/run"
	}
	if _, err := os.Stat(filepath.Join(run, "ostree-booted")); err != nil {
		return p
	}
	if _, err := os.Stat("/ostree/deploy"); err == nil {
		return p
	}
	if _, err := os.Stat("/sysroot/ostree/deploy"); err == nil {
		if _, err := os.Lstat("/boot/loader"); err == nil {
			o.BootDir = "/boot"
		}
		return "/sysroot"
	}
	return p
}

// openSysroot loads the sysroot named by the global flags.
func openSysroot(cmd *cobra.Command) (*sysroot.Sysroot, error) {
	o := sysrootOptions(cmd)
	return sysroot.Open(sysrootPath(&o), o)
}

// parseIndex parses a deployment index argument.
func parseIndex(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: invalid index: %s", sysroot.ErrInvalid, s)
	}
	return n, nil
}
