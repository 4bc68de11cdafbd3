package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/diff"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/tree"
)

func init() { rootCmd.AddCommand(newDiffCmd()) }

func newDiffCmd() *cobra.Command {
	var stats, fsDiff, noXattrs, asJSON bool
	var ownerUID, ownerGID int64
	cmd := &cobra.Command{
		Use:   "diff [REV_OR_DIR] REV_OR_DIR",
		Short: "Compare two commits, or a commit and a directory",
		Long: "Compare two trees as `ostree diff` does and print M (modified), D (removed)\n" +
			"and A (added) paths. An argument starting with / or ./ is a directory on disk,\n" +
			"anything else a revision; one argument compares REV^ with REV. --stats counts\n" +
			"the objects both commits' histories share. Paths in a directory are printed\n" +
			"relative to it, in name order (ostree uses readdir order).",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, target := args[0]+"^", args[0]
			if len(args) == 2 {
				src, target = args[0], args[1]
			}
			if !stats {
				fsDiff = true
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			o := &diff.Options{IgnoreXattrs: noXattrs}
			if ownerUID >= 0 {
				u := uint32(ownerUID)
				o.OwnerUID = &u
			}
			if ownerGID >= 0 {
				g := uint32(ownerGID)
				o.OwnerGID = &g
			}
			var doc diffJSON
			var changes []diff.Change
			var a, b tree.Tree
			if fsDiff {
				if a, err = diffTree(r, src); err != nil {
					return err
				}
				if b, err = diffTree(r, target); err != nil {
					return err
				}
				if changes, err = diff.Compare(cmd.Context(), a, b, o); err != nil {
					return err
				}
			}
			var st diff.Stats
			if stats {
				ca, err := r.ResolveRev(src)
				if err != nil {
					return err
				}
				cb, err := r.ResolveRev(target)
				if err != nil {
					return err
				}
				if st, err = diff.CommitStats(cmd.Context(), r, ca, cb); err != nil {
					return err
				}
				doc.Stats = &statsJSON{st.ObjectsA, st.ObjectsB, st.CommonObjects, st.CommonSize}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if fsDiff {
					cs := []changeJSON{}
					for _, c := range changes {
						cs = append(cs, changeJSON{c.Kind.String(), c.Path, c.Dir})
					}
					doc.Changes = &cs
				}
				return writeJSON(out, doc)
			}
			var b2 strings.Builder
			// ostree lists all modifications, then removals, then
			// additions; within a kind, Compare's order is ostree's.
			for _, k := range []diff.Kind{diff.Modified, diff.Removed, diff.Added} {
				base := a
				if k == diff.Added {
					base = b
				}
				for _, c := range changes {
					if c.Kind != k {
						continue
					}
					p := c.Path
					if base.OnDisk() {
						p = strings.TrimPrefix(p, "/")
					}
					fmt.Fprintf(&b2, "%s    %s\n", k.Letter(), p)
				}
			}
			if stats {
				fmt.Fprintf(&b2, "[A] Object Count: %d\n[B] Object Count: %d\nCommon Object Count: %d\nCommon Object Size: %s\n",
					st.ObjectsA, st.ObjectsB, st.CommonObjects, gSize(st.CommonSize))
			}
			_, err = fmt.Fprint(out, b2.String())
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&stats, "stats", "s", false, "print object counts and the size of what both histories share")
	f.BoolVar(&fsDiff, "fs-diff", false, "print the changed paths (the default unless --stats)")
	f.BoolVar(&noXattrs, "no-xattrs", false, "ignore extended attributes of files on disk")
	f.Int64Var(&ownerUID, "owner-uid", -1, "take files on disk as owned by this user id")
	f.Int64Var(&ownerGID, "owner-gid", -1, "take files on disk as owned by this group id")
	f.BoolVar(&asJSON, "json", false, "print the changes (and stats) as JSON (see docs/json.md)")
	return cmd
}

// diffTree opens a diff argument: a directory when it starts with / or ./
// (as ostree decides), else a revision.
func diffTree(r *repo.Repo, arg string) (tree.Tree, error) {
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, "./") {
		return tree.Dir(arg), nil
	}
	c, err := r.ResolveRev(arg)
	if err != nil {
		return tree.Tree{}, err
	}
	return tree.Commit(r, c)
}
