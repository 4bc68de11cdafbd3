package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/health"
	"github.com/strata-os/strata/progress"
)

func init() { rootCmd.AddCommand(newHealthCmd()) }

func newHealthCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Greenboot-compatible health checks of the booted deployment",
	}
	cmd.AddCommand(newHealthCheckCmd())
	return cmd
}

func newHealthCheckCmd() *cobra.Command {
	var reboot bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Run the health checks; bless the boot or mark it bad",
		Long: `Run the executables of /etc/greenboot/check/required.d and wanted.d (and the
same under /usr/lib/greenboot; a name in /etc hides the one in /usr/lib) in
name order. All required checks pass: the boot entry is blessed (as
admin boot-complete), then green.d runs. One fails: the result is recorded
in /var/lib/strata/health.json (strata status shows it), the entry is
marked bad at once (the boot loader starts the previous deployment next
time), red.d runs and, with --reboot, the machine reboots. Failing wanted
checks are warnings. strata-health.service runs this before
boot-complete.target (docs/install.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			res, err := health.Check(cmd.Context(), s, health.Options{
				StateFile: os.Getenv("STRATA_HEALTH_STATE"),
				Warner:    progress.WarnFunc(func(err error) { fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err) }),
			})
			if err != nil {
				return err
			}
			if res.Healthy {
				fmt.Fprintf(cmd.OutOrStdout(), "healthy: %d check(s) passed; boot of %s blessed\n", len(res.Ran), res.Deployment)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "unhealthy: required check %s failed; boot of %s marked bad\n", res.FailedCheck, res.Deployment)
			if reboot {
				fmt.Fprintln(cmd.OutOrStdout(), "rebooting into the previous deployment")
				if out, err := exec.Command("systemctl", "reboot").CombinedOutput(); err != nil {
					return fmt.Errorf("systemctl reboot: %v: %s", err, out)
				}
			}
			return fmt.Errorf("health check %s failed", res.FailedCheck)
		},
	}
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot at once when a required check fails")
	return cmd
}
