package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"path"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/tree"
)

func init() { rootCmd.AddCommand(newLsCmd()) }

func newLsCmd() *cobra.Command {
	var l lister
	cmd := &cobra.Command{
		Use:   "ls COMMIT [PATH...]",
		Short: "List paths of a commit",
		Long: "List paths of a commit as `ostree ls` does: each PATH (default /) and, for a\n" +
			"directory, its entries. Symlinks are not followed.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, root, err := openRevTree(args[0])
			if err != nil {
				return err
			}
			l.r, l.w = r, cmd.OutOrStdout()
			l.entries = []entryJSON{}
			paths := args[1:]
			if len(paths) == 0 {
				paths = []string{"/"}
			}
			for _, p := range paths {
				if err := l.argument(root, p); err != nil {
					return fmt.Errorf("inspecting path '%s': %w", p, err)
				}
			}
			if l.json {
				return writeJSON(l.w, l.entries)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&l.dirOnly, "dironly", "d", false, "do not list the contents of directory arguments")
	f.BoolVarP(&l.recursive, "recursive", "R", false, "list directories recursively")
	f.BoolVarP(&l.checksum, "checksum", "C", false, "print checksums")
	f.BoolVarP(&l.xattrs, "xattrs", "X", false, "print extended attributes")
	f.BoolVar(&l.nul, "nul-filenames-only", false, "print only paths, each followed by a NUL byte")
	f.BoolVar(&l.json, "json", false, "print the entries as a JSON array (see docs/json.md)")
	return cmd
}

type lister struct {
	r                                               *repo.Repo
	w                                               io.Writer
	dirOnly, recursive, checksum, xattrs, nul, json bool
	entries                                         []entryJSON
}

func (l *lister) argument(root tree.Tree, p string) error {
	e, err := tree.Lookup(l.r, root, p)
	if err != nil {
		return err
	}
	if err := l.entry(e); err != nil {
		return err
	}
	if e.Dir && (l.recursive || !l.dirOnly) {
		return l.children(e)
	}
	return nil
}

// children lists a directory as ostree enumerates it: files, then
// directories, each by name; -R descends right after each directory.
func (l *lister) children(dir tree.Entry) error {
	dt, err := l.r.ReadDirTree(dir.Tree)
	if err != nil {
		return err
	}
	for _, f := range dt.Files {
		if err := l.entry(tree.Entry{Path: path.Join(dir.Path, f.Name), File: f.Checksum}); err != nil {
			return err
		}
	}
	for _, d := range dt.Dirs {
		sub := tree.Entry{Path: path.Join(dir.Path, d.Name), Dir: true, Tree: d.Tree, Meta: d.Meta}
		if err := l.entry(sub); err != nil {
			return err
		}
		if l.recursive {
			if err := l.children(sub); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *lister) entry(e tree.Entry) error {
	if l.nul && !l.json {
		_, err := fmt.Fprintf(l.w, "%s\x00", e.Path)
		return err
	}
	var h objects.FileHeader
	if e.Dir {
		dm, err := l.r.ReadDirMeta(e.Meta)
		if err != nil {
			return err
		}
		h = objects.FileHeader{UID: dm.UID, GID: dm.GID, Mode: dm.Mode, Xattrs: dm.Xattrs}
	} else {
		fh, err := l.r.ReadFileHeader(e.File)
		if err != nil {
			return err
		}
		h = *fh
	}
	if l.json {
		l.entries = append(l.entries, entryJSONFor(e, &h))
		return nil
	}
	t := '?'
	switch h.Mode & objects.ModeTypeMask {
	case objects.ModeRegular:
		t = '-'
	case objects.ModeDir:
		t = 'd'
	case objects.ModeSymlink:
		t = 'l'
	}
	line := fmt.Sprintf("%c0%04o %d %d %6d ", t, h.Mode&^objects.ModeTypeMask, h.UID, h.GID, h.Size)
	if l.checksum {
		if e.Dir {
			line += e.Tree.String() + " " + e.Meta.String() + " "
		} else {
			line += e.File.String() + " "
		}
	}
	if l.xattrs {
		line += "{ " + xattrsText(h.Xattrs) + " } "
	}
	line += e.Path
	if h.IsSymlink() {
		line += " -> " + h.Target
	}
	_, err := fmt.Fprintln(l.w, line)
	return err
}

func entryJSONFor(e tree.Entry, h *objects.FileHeader) entryJSON {
	j := entryJSON{Path: e.Path, Mode: h.Mode &^ objects.ModeTypeMask, UID: h.UID, GID: h.GID, Size: h.Size, Target: h.Target}
	switch {
	case e.Dir:
		j.Type, j.Dirtree, j.Dirmeta = "dir", e.Tree.String(), e.Meta.String()
	case h.IsSymlink():
		j.Type, j.Checksum = "symlink", e.File.String()
	default:
		j.Type, j.Checksum = "file", e.File.String()
	}
	if len(h.Xattrs) > 0 {
		j.Xattrs = make(map[string]string, len(h.Xattrs))
		for _, x := range h.Xattrs {
			j.Xattrs[x.Name] = hex.EncodeToString(x.Value)
		}
	}
	return j
}
