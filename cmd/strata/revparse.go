package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

func init() { rootCmd.AddCommand(newRevParseCmd()) }

func newRevParseCmd() *cobra.Command {
	var single bool
	cmd := &cobra.Command{
		Use:   "rev-parse REV...",
		Short: "Print the commit checksum each ref or (abbreviated) checksum names",
		Long: "Print the commit each REV names: a ref, REMOTE:REF, a full or abbreviated\n" +
			"checksum, any of them followed by ^ for each parent to go back. With --single,\n" +
			"print the repository's only commit (an error when it has none or several).",
		RunE: func(cmd *cobra.Command, args []string) error {
			if single && len(args) > 0 {
				return errorf(repo.ErrInvalid, "Cannot specify arguments with --single")
			}
			if !single && len(args) == 0 {
				return errorf(repo.ErrInvalid, "REV must be specified")
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if single {
				var found []objects.Checksum
				err := r.ListObjects(func(o repo.ObjectRef) error {
					if o.Kind == objects.KindCommit {
						found = append(found, o.Checksum)
					}
					return nil
				}, nil)
				switch {
				case err != nil:
					return err
				case len(found) > 1:
					return errorf(repo.ErrInvalid, "Multiple commit objects found")
				case len(found) == 0:
					return errorf(repo.ErrNotFound, "No commit objects found")
				}
				fmt.Fprintln(out, found[0])
				return nil
			}
			for _, rev := range args {
				c, err := r.ResolveRev(rev)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, c)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&single, "single", "S", false, "print the repository's only commit")
	return cmd
}
