package main

import (
	"github.com/spf13/cobra"

	"github.com/strata-os/strata/checkout"
)

func init() { rootCmd.AddCommand(newCheckoutCmd()) }

func newCheckoutCmd() *cobra.Command {
	var o checkout.Options
	var allowNoent bool
	cmd := &cobra.Command{
		Use:   "checkout [OPTIONS] COMMIT [DESTINATION]",
		Short: "Check out a commit into a filesystem tree",
		Long: `Write the tree of COMMIT into DESTINATION (default: the COMMIT argument as
given). File objects are hard-linked from bare repositories where the mode
allows (bare as root, bare-user-only, bare-user with -U) and copied
otherwise, with content verified against its checksum as it is copied.
Not supported yet: --whiteouts, --fsync, --bareuseronly-dirs, --skip-list.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			c, err := r.ResolveRev(args[0])
			if err != nil {
				if allowNoent {
					return nil
				}
				return err
			}
			dest := args[0]
			if len(args) == 2 {
				dest = args[1]
			}
			o.Progress = newReporter(cmd)
			err = checkout.Checkout(cmd.Context(), r, c, dest, o)
			if err != nil && allowNoent && isNotFound(err) && o.Subpath != "" {
				return nil
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&o.UserMode, "user-mode", "U", false, "do not change file ownership or set setuid/setgid bits or xattrs")
	fl.BoolVarP(&o.RequireHardlinks, "require-hardlinks", "H", false, "fail if a file cannot be hard-linked from the repository")
	fl.BoolVar(&o.Union, "union", false, "keep existing directories, overwrite existing files")
	fl.BoolVar(&o.UnionAdd, "union-add", false, "keep existing directories and files")
	fl.StringVar(&o.Subpath, "subpath", "", "check out only this path of the tree")
	fl.BoolVarP(&o.ForceCopy, "force-copy", "C", false, "never hard-link, always copy")
	fl.BoolVar(&allowNoent, "allow-noent", false, "do nothing if the commit or subpath does not exist")
	return cmd
}
