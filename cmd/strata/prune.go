package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/repo"
)

func init() { rootCmd.AddCommand(newPruneCmd()) }

func newPruneCmd() *cobra.Command {
	var o repo.PruneOptions
	var keep, deleteCommit string
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Search for unreachable objects",
		Long: `Delete objects that nothing keeps. By default every stored commit is kept and
only objects no commit reaches are deleted; with --refs-only, the refs
(heads, remotes and mirrors, to --depth parents) are the only roots. Static
deltas to commits no longer stored are deleted too. Takes the repository
lock exclusively, waiting for running transactions.

--keep-younger-than=DATE keeps each ref's commit and its ancestors back to
the first one older than DATE ("2024-01-31", "2024-01-31 12:00:00",
"@UNIX-SECONDS", "3 days ago", "1 week ago"); --delete-commit deletes one
commit no ref points to and leaves a tombstone for it.

Not supported: --static-deltas-only, --retain-branch-depth, --only-branch.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			if keep != "" {
				if o.KeepYoungerThan, err = commit.ParseDate(keep, time.Now()); err != nil {
					return fmt.Errorf("--keep-younger-than: %w", err)
				}
			}
			if deleteCommit != "" {
				if o.NoPrune {
					return fmt.Errorf("cannot specify both --delete-commit and --no-prune")
				}
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
			if o.CommitOnly {
				fmt.Fprintf(out, "Total (commit only) objects: %d\n", st.Total)
			} else {
				fmt.Fprintf(out, "Total objects: %d\n", st.Total)
			}
			switch {
			case st.Deleted == 0:
				fmt.Fprintln(out, "No unreachable objects")
			case o.NoPrune:
				fmt.Fprintf(out, "Would delete: %d objects, freeing %s\n", st.Deleted, gSize(uint64(st.Freed)))
			default:
				fmt.Fprintf(out, "Deleted %d objects, %s freed\n", st.Deleted, gSize(uint64(st.Freed)))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.NoPrune, "no-prune", false, "only display unreachable objects; don't delete")
	fl.BoolVar(&o.RefsOnly, "refs-only", false, "only compute reachability via refs")
	fl.IntVar(&o.Depth, "depth", -1, "only traverse DEPTH parents for each commit (-1: all)")
	fl.StringVar(&deleteCommit, "delete-commit", "", "delete this commit (refused while a ref points to it)")
	fl.StringVar(&keep, "keep-younger-than", "", "prune all commits older than DATE")
	fl.BoolVar(&o.CommitOnly, "commit-only", false, "only traverse and delete commit objects")
	return cmd
}
