package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/sysroot"
)

func init() {
	var modern bool
	initFS := &cobra.Command{
		Use:   "init-fs PATH",
		Short: "Initialize a root filesystem for deployments (ostree admin init-fs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sysroot.InitFS(args[0], modern)
		},
	}
	initFS.Flags().BoolVar(&modern, "modern", false, "only create /boot and /ostree")
	adminCmd.AddCommand(initFS)

	adminCmd.AddCommand(&cobra.Command{
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
	})

	adminCmd.AddCommand(&cobra.Command{
		Use:   "undeploy INDEX",
		Short: "Delete the deployment at INDEX (ostree admin undeploy)",
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
			d, st, err := s.Undeploy(cmd.Context(), i)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted deployment %s\n", d.Name())
			if st.Freed > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "Freed objects: %s\n", gSize(uint64(st.Freed)))
			}
			return nil
		},
	})

	adminCmd.AddCommand(&cobra.Command{
		Use:   "set-default INDEX",
		Short: "Make the deployment at INDEX the default (ostree admin set-default)",
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
			_, err = s.SetDefault(cmd.Context(), i)
			return err
		},
	})

	var unpin bool
	pin := &cobra.Command{
		Use:   "pin INDEX...",
		Short: "Keep deployments from being removed by later deploys (ostree admin pin)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
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
				state := "pinned"
				if unpin {
					state = "unpinned"
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
	pin.Flags().BoolVarP(&unpin, "unpin", "u", false, "unset pin")
	adminCmd.AddCommand(pin)

	adminCmd.AddCommand(&cobra.Command{
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
			if st.Freed > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "Freed objects: %s\n", gSize(uint64(st.Freed)))
			}
			return nil
		},
	})

	var edit sysroot.KargsEdit
	var kargsIndex int
	kargs := &cobra.Command{
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
				d, err := s.Deployment(kargsIndex)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), bootloader.WithoutKarg(d.Options(), "ostree"))
				return nil
			}
			out, err := s.EditKargs(cmd.Context(), kargsIndex, edit)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	kargs.Flags().StringArrayVar(&edit.Append, "append", nil, "append a kernel argument")
	kargs.Flags().StringArrayVar(&edit.Delete, "delete", nil, "delete a kernel argument (KEY or KEY=VALUE)")
	kargs.Flags().StringArrayVar(&edit.Replace, "replace", nil, "replace the kernel arguments named KEY with KEY=VALUE")
	kargs.Flags().IntVar(&kargsIndex, "index", 0, "the deployment to change")
	adminCmd.AddCommand(kargs)

	var diffOS string
	configDiff := &cobra.Command{
		Use:     "config-diff",
		Aliases: []string{"diff"},
		Short:   "List the local changes of /etc against the deployment's defaults (ostree admin config-diff)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			changes, err := s.ConfigDiff(cmd.Context(), diffOS)
			if err != nil {
				return err
			}
			for _, c := range changes {
				fmt.Fprintf(cmd.OutOrStdout(), "%c    %s\n", c.Kind, c.Path)
			}
			return nil
		},
	}
	configDiff.Flags().StringVar(&diffOS, "os", "", "use a different operating system root than the current one")
	adminCmd.AddCommand(configDiff)

	adminCmd.AddCommand(&cobra.Command{
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
	})
}
