package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/repo"
)

func init() {
	var o repo.PruneOptions
	var keep, deleteCommit string
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete unreachable objects",
		Long: `Delete objects that nothing keeps. By default every stored commit is kept and
only objects no commit reaches are deleted; with --refs-only, refs (to
--depth parents) are the only roots. Takes the repository lock exclusively.
Not supported yet: --static-deltas-only, --retain-branch-depth, --only-branch.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			if keep != "" {
				if o.KeepYoungerThan, err = parseTimestamp(keep); err != nil {
					return fmt.Errorf("--keep-younger-than: %w", err)
				}
			}
			if deleteCommit != "" {
				c, err := r.ResolveRev(deleteCommit)
				if err != nil {
					return err
				}
				o.DeleteCommit = &c
			}
			st, err := r.Prune(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Total objects: %d\n", st.Total)
			switch {
			case st.Deleted == 0:
				fmt.Fprintln(out, "No unreachable objects")
			case o.NoPrune:
				fmt.Fprintf(out, "Would delete: %d objects, freeing %s\n", st.Deleted, formatSize(st.Freed))
			default:
				fmt.Fprintf(out, "Deleted %d objects, %s freed\n", st.Deleted, formatSize(st.Freed))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.NoPrune, "no-prune", false, "only display unreachable objects; don't delete")
	fl.BoolVar(&o.RefsOnly, "refs-only", false, "only compute reachability via refs")
	fl.IntVar(&o.Depth, "depth", -1, "only traverse DEPTH parents for each commit (-1: all)")
	fl.StringVar(&deleteCommit, "delete-commit", "", "delete this commit (refused while a ref points to it)")
	fl.StringVar(&keep, "keep-younger-than", "", "delete commits older than DATE that no ref points to")
	fl.BoolVar(&o.CommitOnly, "commit-only", false, "only traverse and delete commit objects")
	rootCmd.AddCommand(cmd)
}

// formatSize renders a byte count as GLib's g_format_size does.
func formatSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d bytes", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1000)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}
