package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sysroot"
)

func init() {
	adminCmd.AddCommand(newAdminDeployCmd(), newAdminUpgradeCmd(), newAdminFinalizeStagedCmd())
}

func newAdminDeployCmd() *cobra.Command {
	var o sysroot.DeployOptions
	var originFile string
	deploy := &cobra.Command{
		Use:   "deploy REFSPEC",
		Short: "Check out a commit as a new deployment and make it the default (ostree admin deploy)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Revision = args[0]
			if originFile != "" {
				data, err := fsutil.ReadFileLimit(originFile, maxArgFileSize)
				if err != nil {
					return fmt.Errorf("--origin-file: %w", err)
				}
				kf, err := repo.ParseKeyFile(string(data))
				if err != nil {
					return fmt.Errorf("--origin-file %s: %w", originFile, err)
				}
				o.Origin = kf
			}
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			res, err := s.Deploy(cmd.Context(), o)
			if err != nil {
				return err
			}
			printDeployResult(cmd.OutOrStdout(), res)
			return nil
		},
	}
	fl := deploy.Flags()
	fl.StringVar(&o.OS, "os", "", "use a different operating system root than the current one")
	fl.StringVar(&originFile, "origin-file", "", "specify the origin file")
	fl.BoolVar(&o.NoPrune, "no-prune", false, "don't prune the repo when done")
	fl.BoolVar(&o.NoMerge, "no-merge", false, "do not apply configuration (/etc and kernel arguments) from the booted deployment")
	fl.BoolVar(&o.Retain, "retain", false, "do not delete previous deployments")
	fl.BoolVar(&o.Stage, "stage", false, "complete the deployment at OS shutdown (admin finalize-staged)")
	fl.BoolVar(&o.LockFinalization, "lock-finalization", false, "prevent automatic deployment finalization on shutdown")
	fl.BoolVar(&o.RetainPending, "retain-pending", false, "do not delete pending deployments")
	fl.BoolVar(&o.RetainRollback, "retain-rollback", false, "do not delete rollback deployments")
	fl.BoolVar(&o.NotAsDefault, "not-as-default", false, "append rather than prepend the new deployment")
	fl.BoolVar(&o.KargProcCmdline, "karg-proc-cmdline", false, "import the current /proc/cmdline")
	fl.StringArrayVar(&o.Karg, "karg", nil, "set kernel argument NAME=VALUE, replacing any earlier one with the same name")
	fl.StringArrayVar(&o.KargAppend, "karg-append", nil, "append kernel argument NAME=VALUE (for arguments that can repeat, like console=)")
	fl.BoolVar(&o.KargNone, "karg-none", false, "do not import kernel arguments")
	fl.StringArrayVar(&o.KargDelete, "karg-delete", nil, "delete kernel argument NAME or NAME=VALUE if it exists")
	fl.MarkHidden("lock-finalization")
	return deploy
}

func newAdminUpgradeCmd() *cobra.Command {
	var uo sysroot.UpgradeOptions
	upgrade := &cobra.Command{
		Use:   "upgrade",
		Short: "Deploy the newest commit of the default deployment's origin (ostree admin upgrade)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			uo.Puller = upgradePuller(cmd)
			res, err := s.Upgrade(cmd.Context(), uo)
			if err != nil {
				return err
			}
			if !res.Changed {
				fmt.Fprintln(cmd.OutOrStdout(), "No update available.")
				return nil
			}
			if res.Deploy != nil {
				printDeployResult(cmd.OutOrStdout(), res.Deploy)
			}
			return nil
		},
	}
	ufl := upgrade.Flags()
	ufl.StringVar(&uo.OS, "os", "", "use a different operating system root than the current one")
	ufl.BoolVar(&uo.AllowDowngrade, "allow-downgrade", false, "permit deployment of chronologically older trees")
	ufl.BoolVar(&uo.PullOnly, "pull-only", false, "do not create a deployment, just download")
	ufl.BoolVar(&uo.DeployOnly, "deploy-only", false, "do not pull, only deploy")
	ufl.BoolVar(&uo.Stage, "stage", false, "stage the deployment (finalization at reboot time)")
	return upgrade
}

func newAdminFinalizeStagedCmd() *cobra.Command {
	var hold bool
	finalize := &cobra.Command{
		Use:   "finalize-staged",
		Short: "Make the staged deployment the default (run at shutdown by strata-finalize-staged.service)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o := sysrootOptions(cmd)
			if !sysroot.IsBooted(o) {
				return nil // not a booted OSTree system: nothing to do, as ostree
			}
			s, err := sysroot.Open(sysroot.Locate(globals.sysroot, &o), o)
			if err != nil {
				return err
			}
			if hold {
				// Keep /boot open (an automount stays mounted) until the
				// service is stopped.
				f, err := os.Open(s.BootDir())
				if err != nil {
					return err
				}
				defer f.Close()
				<-cmd.Context().Done()
				return nil
			}
			d, err := s.FinalizeStaged(cmd.Context())
			if err != nil {
				return err
			}
			if d != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "Finalized deployment %s\n", d.Name())
			}
			return nil
		},
	}
	finalize.Flags().BoolVar(&hold, "hold", false, "hold /boot open until stopped")
	return finalize
}

// printDeployResult prints what ostree's journal messages say on a
// terminal: the /etc merge counts and the space the prune freed.
func printDeployResult(w io.Writer, res *sysroot.DeployResult) {
	if res.EtcModified+res.EtcRemoved+res.EtcAdded > 0 {
		fmt.Fprintf(w, "Copying /etc changes: %d modified, %d removed, %d added\n", res.EtcModified, res.EtcRemoved, res.EtcAdded)
	}
	if res.Deployment != nil && res.Deployment.Staged {
		fmt.Fprintf(w, "Staged deployment %s; it becomes the default at shutdown\n", res.Deployment.Name())
		startFinalizeUnit(w)
	}
	if res.Pruned.Freed > 0 {
		fmt.Fprintf(w, "Freed objects: %s\n", gSize(uint64(res.Pruned.Freed)))
	}
}

// startFinalizeUnit starts strata-finalize-staged.service after a
// staging, as current ostree starts ostree-finalize-staged.service: the
// unit's ExecStop finalizes at shutdown, so it must be active by then.
// Only under systemd (/run/systemd/system); a failure is a warning, the
// deployment stays staged.
func startFinalizeUnit(w io.Writer) {
	if _, err := os.Stat("/run/systemd/system"); err != nil || os.Getenv("STRATA_RUN_DIR") != "" {
		return
	}
	if out, err := exec.Command("systemctl", "start", "strata-finalize-staged.service").CombinedOutput(); err != nil {
		fmt.Fprintf(w, "warning: starting strata-finalize-staged.service: %v: %s\n", err, out)
	}
}
