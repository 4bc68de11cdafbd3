package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/repo"
)

func init() {
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
				if o.KeepYoungerThan, err = parsePruneDate(keep, time.Now()); err != nil {
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
	fl.StringVar(&keep, "keep-younger-than", "", "prune all commits older than DATE")
	fl.BoolVar(&o.CommitOnly, "commit-only", false, "only traverse and delete commit objects")
	rootCmd.AddCommand(cmd)
}

// parsePruneDate reads the dates `ostree prune --keep-younger-than` is
// given: absolute ones (local time unless a zone is written) and "N UNIT
// ago", "now", "today", "yesterday".
func parsePruneDate(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "now":
		return now, nil
	case "today":
		y, m, d := now.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, now.Location()), nil
	case "yesterday":
		y, m, d := now.Date()
		return time.Date(y, m, d-1, 0, 0, 0, 0, now.Location()), nil
	}
	if rest, ok := strings.CutSuffix(strings.ToLower(s), " ago"); ok {
		f := strings.Fields(rest)
		if len(f) == 2 {
			n, err := strconv.Atoi(f[0])
			unit := strings.TrimSuffix(f[1], "s")
			if err == nil && n >= 0 {
				switch unit {
				case "second", "sec":
					return now.Add(-time.Duration(n) * time.Second), nil
				case "minute", "min":
					return now.Add(-time.Duration(n) * time.Minute), nil
				case "hour":
					return now.Add(-time.Duration(n) * time.Hour), nil
				case "day":
					return now.AddDate(0, 0, -n), nil
				case "week":
					return now.AddDate(0, 0, -7*n), nil
				case "month":
					return now.AddDate(0, -n, 0), nil
				case "year":
					return now.AddDate(-n, 0, 0), nil
				}
			}
		}
		return time.Time{}, fmt.Errorf("could not parse date %q", s)
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return parseTimestamp(s)
}

// formatSize renders a byte count as GLib's g_format_size does: SI units,
// a no-break space before kB, MB and GB.
func formatSize(n int64) string {
	switch {
	case n == 1:
		return "1 byte"
	case n < 1000:
		return fmt.Sprintf("%d bytes", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f\u00a0kB", float64(n)/1000)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f\u00a0MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f\u00a0GB", float64(n)/1e9)
}
