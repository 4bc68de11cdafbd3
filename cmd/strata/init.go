package main

import (
	"github.com/spf13/cobra"

	"github.com/strata-os/strata/repo"
)

func init() { rootCmd.AddCommand(newInitCmd()) }

func newInitCmd() *cobra.Command {
	var mode, collection string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize a new empty repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := repo.ParseMode(mode)
			if err != nil {
				return err
			}
			_, err = repo.Init(repoPath(), m, repo.InitOptions{CollectionID: collection})
			return err
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "bare", "repository mode: bare, bare-user, bare-user-only or archive")
	cmd.Flags().StringVar(&collection, "collection-id", "", "globally unique ID for this repository as a collection of refs")
	return cmd
}
