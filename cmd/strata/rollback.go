package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { rootCmd.AddCommand(newRollbackCmd()) }

func newRollbackCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rollback",
		Short: "Make the previous deployment the default for the next boot",
		Long: `Make the rollback deployment the default: booted into the default
deployment, the one before it; booted into an older deployment (after a
failed update), that one; not booted (--sysroot of an image), deployment 1.
A staged deployment is discarded. The switch is one atomic rename; reboot
to use it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			d, err := s.Rollback(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Next boot: %s %s\n", d.OS, d.Name())
			return nil
		},
	}
}
