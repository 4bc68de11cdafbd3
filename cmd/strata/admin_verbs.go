package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/sysroot"
)

func init() {
	adminCmd.AddCommand(newAdminInitFSCmd(), newAdminOSInitCmd(), newAdminUndeployCmd(), newAdminSetDefaultCmd(),
		newAdminPinCmd(), newAdminCleanupCmd(), newAdminKargsCmd(), newAdminConfigDiffCmd(), newAdminBootCompleteCmd())
}

// indexVerb is an admin verb that acts on the deployment at INDEX: it
// parses the index, opens the sysroot and calls run.
func indexVerb(use, short string, run func(cmd *cobra.Command, s *sysroot.Sysroot, i int) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := parseIndex(args[0])
			if err != nil {
				return err
			}
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			return run(cmd, s, i)
		},
	}
}

// printFreed prints the space a prune freed, as ostree does.
func printFreed(cmd *cobra.Command, freed int64) {
	if freed > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "Freed objects: %s\n", gSize(uint64(freed)))
	}
}

func newAdminInitFSCmd() *cobra.Command {
	var modern bool
	cmd := &cobra.Command{
		Use:   "init-fs PATH",
		Short: "Initialize a root filesystem for deployments (ostree admin init-fs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sysroot.InitFS(args[0], modern)
		},
	}
	cmd.Flags().BoolVar(&modern, "modern", false, "only create /boot and /ostree")
	return cmd
}

func newAdminOSInitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "os-init OSNAME",
		Short: "Create a stateroot for an operating system (ostree admin os-init)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := sysrootOptions(cmd)
			if err := sysroot.InitOS(sysroot.Locate(globals.sysroot, &o), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ostree/deploy/%s initialized as OSTree root\n", args[0])
			return nil
		},
	}
}

func newAdminUndeployCmd() *cobra.Command {
	return indexVerb("undeploy INDEX", "Delete the deployment at INDEX (ostree admin undeploy)",
		func(cmd *cobra.Command, s *sysroot.Sysroot, i int) error {
			d, st, err := s.Undeploy(cmd.Context(), i)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted deployment %s\n", d.Name())
			printFreed(cmd, st.Freed)
			return nil
		})
}

func newAdminSetDefaultCmd() *cobra.Command {
	return indexVerb("set-default INDEX", "Make the deployment at INDEX the default (ostree admin set-default)",
		func(cmd *cobra.Command, s *sysroot.Sysroot, i int) error {
			_, err := s.SetDefault(cmd.Context(), i)
			return err
		})
}

func newAdminPinCmd() *cobra.Command {
	var unpin bool
	cmd := &cobra.Command{
		Use:   "pin INDEX...",
		Short: "Keep deployments from being removed by later deploys (ostree admin pin)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			state := "pinned"
			if unpin {
				state = "unpinned"
			}
			for _, a := range args {
				i, err := parseIndex(a)
				if err != nil {
					return err
				}
				changed, err := s.SetPinned(cmd.Context(), i, !unpin)
				if err != nil {
					return err
				}
				if changed {
					fmt.Fprintf(cmd.OutOrStdout(), "Deployment %s is now %s\n", a, state)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "Deployment %s is already %s\n", a, state)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&unpin, "unpin", "u", false, "unset pin")
	return cmd
}

func newAdminCleanupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cleanup",
		Short: "Delete untagged deployments, unused boot files and unreferenced objects (ostree admin cleanup)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			st, err := s.Cleanup(cmd.Context(), true)
			if err != nil {
				return err
			}
			printFreed(cmd, st.Freed)
			return nil
		},
	}
}

func newAdminKargsCmd() *cobra.Command {
	var edit sysroot.KargsEdit
	var index int
	cmd := &cobra.Command{
		Use:   "kargs [--append=ARG] [--delete=ARG] [--replace=ARG]",
		Short: "Show or change the kernel arguments of a deployment (a new boot version)",
		Long: `Without options, print the kernel arguments of the deployment (the default
one unless --index). --replace=KEY=VALUE replaces every argument named KEY,
--append=ARG adds one, --delete=KEY or --delete=KEY=VALUE removes one. The
change is written as a new boot version and switched to atomically.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			if edit.Empty() {
				d, err := s.Deployment(index)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), bootloader.WithoutKarg(d.Options(), "ostree"))
				return nil
			}
			out, err := s.EditKargs(cmd.Context(), index, edit)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&edit.Append, "append", nil, "append a kernel argument")
	cmd.Flags().StringArrayVar(&edit.Delete, "delete", nil, "delete a kernel argument (KEY or KEY=VALUE)")
	cmd.Flags().StringArrayVar(&edit.Replace, "replace", nil, "replace the kernel arguments named KEY with KEY=VALUE")
	cmd.Flags().IntVar(&index, "index", 0, "the deployment to change")
	return cmd
}

func newAdminConfigDiffCmd() *cobra.Command {
	var osName string
	cmd := &cobra.Command{
		Use:     "config-diff",
		Aliases: []string{"diff"},
		Short:   "List the local changes of /etc against the deployment's defaults (ostree admin config-diff)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			changes, err := s.ConfigDiff(cmd.Context(), osName)
			if err != nil {
				return err
			}
			for _, c := range changes {
				fmt.Fprintf(cmd.OutOrStdout(), "%c    %s\n", c.Kind, c.Path)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&osName, "os", "", "use a different operating system root than the current one")
	return cmd
}

func newAdminBootCompleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "boot-complete",
		Short: "Mark the booted deployment's boot as successful (drop its boot-counting suffix)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			_, err = s.BootComplete(cmd.Context())
			return err
		},
	}
}
