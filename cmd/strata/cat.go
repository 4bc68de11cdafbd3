package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/tree"
)

func init() { rootCmd.AddCommand(newCatCmd()) }

func newCatCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cat COMMIT PATH...",
		Short: "Write the contents of files of a commit to standard output",
		Long: "Write the contents of files of a commit to standard output. Symlinks are\n" +
			"followed inside the commit. Every byte is verified against the file's checksum\n" +
			"before it is written: a corrupt object fails with nothing of it printed.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, root, err := openRevTree(args[0])
			if err != nil {
				return err
			}
			for _, p := range args[1:] {
				e, err := tree.Resolve(r, root, p)
				if err != nil {
					return err
				}
				if e.Dir {
					return errorf(repo.ErrInvalid, "%s: is a directory", e.Path)
				}
				_, rc, err := r.OpenFileVerified(e.File)
				if err != nil {
					return err
				}
				err = catVerified(cmd.OutOrStdout(), rc)
				rc.Close()
				if err != nil {
					return fmt.Errorf("cat %s: %w", p, err)
				}
			}
			return nil
		},
	}
	return cmd
}
