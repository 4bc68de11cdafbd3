package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/sysroot"
)

func init() { rootCmd.AddCommand(newResetCmd()) }

func newResetCmd() *cobra.Command {
	var osname, newOS string
	var cleanup bool
	cmd := &cobra.Command{
		Use:   "reset [--os=NAME] [--new-os=NAME] | --cleanup",
		Short: "Factory reset: a new stateroot with the image's /etc and an empty /var",
		Long: `Factory reset (as proposed in bootc#404): os-init a new stateroot (NAME-reset-N
unless --new-os) and deploy the booted commit into it with /etc from the
image (no merge of local changes; /etc/fstab, with the install's mounts, is
copied), an empty /var and the same kernel
arguments, as the default for the next boot. The old stateroot, its /etc
and /var stay: 'strata rollback' from the reset deployment goes back to
it, until 'strata reset --cleanup' removes its deployments and its
directory (with its /var). Not supported: keeping selected files across
the reset.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if cleanup {
				gone, err := s.ResetCleanup(cmd.Context(), osname)
				if err != nil {
					return err
				}
				if gone == "" {
					fmt.Fprintln(w, "Nothing to clean up")
				} else {
					fmt.Fprintf(w, "Removed stateroot %s\n", gone)
				}
				return nil
			}
			res, name, err := s.Reset(cmd.Context(), sysroot.ResetOptions{OS: osname, NewOS: newOS})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "Next boot: %s %s (fresh /etc and /var); the old stateroot stays until strata reset --cleanup\n", name, res.Deployment.Name())
			return nil
		},
	}
	cmd.Flags().StringVar(&osname, "os", "", "stateroot to reset (default: the booted one)")
	cmd.Flags().StringVar(&newOS, "new-os", "", "name of the new stateroot")
	cmd.Flags().BoolVar(&cleanup, "cleanup", false, "remove the stateroot a reset replaced")
	return cmd
}
