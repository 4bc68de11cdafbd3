package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/diff"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// JSON shapes (documented in docs/json.md).

type commitJSON struct {
	Checksum        string         `json:"checksum"`
	Parent          string         `json:"parent,omitempty"`
	Subject         string         `json:"subject"`
	Body            string         `json:"body,omitempty"`
	Timestamp       uint64         `json:"timestamp"`
	Date            string         `json:"date"`
	Version         string         `json:"version,omitempty"`
	ContentChecksum string         `json:"content_checksum"`
	RootTree        string         `json:"root_dirtree"`
	RootMeta        string         `json:"root_dirmeta"`
	Metadata        map[string]any `json:"metadata"`
}

type entryJSON struct {
	Path     string            `json:"path"`
	Type     string            `json:"type"` // file, symlink, dir
	Mode     uint32            `json:"mode"`
	UID      uint32            `json:"uid"`
	GID      uint32            `json:"gid"`
	Size     uint64            `json:"size"`
	Target   string            `json:"target,omitempty"`
	Checksum string            `json:"checksum,omitempty"`
	Xattrs   map[string]string `json:"xattrs,omitempty"` // hex values
}

type refJSON struct {
	Name     string `json:"name"`
	Checksum string `json:"checksum"`
}

type changeJSON struct {
	Kind string `json:"kind"` // M, D, A
	Path string `json:"path"`
	Dir  bool   `json:"dir"`
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonValue turns a GVariant value into plain JSON data.
func jsonValue(v any) any {
	switch x := v.(type) {
	case gvariant.Variant:
		return jsonValue(x.Value)
	case []byte:
		return hex.EncodeToString(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	case []string:
		return x
	case gvariant.Maybe:
		if !x.Valid {
			return nil
		}
		return jsonValue(x.Value)
	}
	return v
}

func contentChecksum(c *objects.Commit) string {
	h := sha256.New()
	h.Write(c.RootTree[:])
	h.Write(c.RootMeta[:])
	return hex.EncodeToString(h.Sum(nil))
}

func toCommitJSON(sum objects.Checksum, c *objects.Commit) commitJSON {
	j := commitJSON{Checksum: sum.String(), Subject: c.Subject, Body: c.Body, Timestamp: c.Timestamp,
		Date: time.Unix(int64(c.Timestamp), 0).UTC().Format(time.RFC3339), ContentChecksum: contentChecksum(c),
		RootTree: c.RootTree.String(), RootMeta: c.RootMeta.String(), Metadata: map[string]any{}}
	if !c.Parent.IsZero() {
		j.Parent = c.Parent.String()
	}
	j.Version, _ = c.Metadata.String("version")
	for _, e := range c.Metadata {
		j.Metadata[e.Key] = jsonValue(e.Value)
	}
	return j
}

// printCommit writes a commit as `ostree log`/`ostree show` do.
func printCommit(w io.Writer, sum objects.Checksum, c *objects.Commit) {
	fmt.Fprintf(w, "commit %s\n", sum)
	if !c.Parent.IsZero() {
		fmt.Fprintf(w, "Parent:  %s\n", c.Parent)
	}
	fmt.Fprintf(w, "ContentChecksum:  %s\n", contentChecksum(c))
	fmt.Fprintf(w, "Date:  %s\n", time.Unix(int64(c.Timestamp), 0).Format("2006-01-02 15:04:05 -0700"))
	if v, ok := c.Metadata.String("version"); ok {
		fmt.Fprintf(w, "Version: %s\n", v)
	}
	fmt.Fprintln(w)
	if c.Subject != "" {
		fmt.Fprintf(w, "    %s\n\n", c.Subject)
	}
	if c.Body != "" {
		for _, l := range strings.Split(strings.TrimRight(c.Body, "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
		fmt.Fprintln(w)
	}
}

func init() {
	var logJSON, logRaw bool
	logCmd := &cobra.Command{
		Use:   "log REV",
		Short: "Show the history of a ref or commit",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			c, err := r.ResolveRev(args[0])
			if err != nil {
				return err
			}
			var all []commitJSON
			out := cmd.OutOrStdout()
			for {
				cm, err := r.ReadCommit(c)
				if errors.Is(err, repo.ErrNotFound) && len(all) > 0 {
					if !logJSON {
						fmt.Fprintf(out, "<< History beyond this commit not fetched >>\n")
					}
					break
				}
				if err != nil {
					return err
				}
				switch {
				case logJSON:
				case logRaw:
					data, _ := cm.Marshal()
					v, _ := gvariant.Unmarshal(objects.CommitGVType, data)
					fmt.Fprintf(out, "commit %s\n%s\n\n", c, gvariant.Print(objects.CommitGVType, v))
				default:
					printCommit(out, c, cm)
				}
				all = append(all, toCommitJSON(c, cm))
				if cm.Parent.IsZero() {
					break
				}
				c = cm.Parent
			}
			if logJSON {
				return writeJSON(out, all)
			}
			return nil
		},
	}
	logCmd.Flags().BoolVar(&logJSON, "json", false, "print the commits as a JSON array")
	logCmd.Flags().BoolVar(&logRaw, "raw", false, "show raw variant data")
	rootCmd.AddCommand(logCmd)

	var showJSON, showRaw bool
	var metaKey, detachedKey string
	showCmd := &cobra.Command{
		Use:   "show REV",
		Short: "Show a commit",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, c, cm, err := openCommit(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case metaKey != "":
				v, ok := cm.Metadata.Get(metaKey)
				if !ok {
					return fmt.Errorf("%w: no such metadata key '%s'", repo.ErrNotFound, metaKey)
				}
				fmt.Fprintln(out, gvariant.Print(v.Type, v.Value))
			case detachedKey != "":
				md, err := r.ReadCommitMeta(c)
				if err != nil {
					return err
				}
				v, ok := md.Get(detachedKey)
				if !ok {
					return fmt.Errorf("%w: no such detached metadata key '%s'", repo.ErrNotFound, detachedKey)
				}
				fmt.Fprintln(out, gvariant.Print(v.Type, v.Value))
			case showJSON:
				return writeJSON(out, toCommitJSON(c, cm))
			case showRaw:
				data, _ := cm.Marshal()
				v, _ := gvariant.Unmarshal(objects.CommitGVType, data)
				fmt.Fprintf(out, "commit %s\n%s\n", c, gvariant.Print(objects.CommitGVType, v))
			default:
				printCommit(out, c, cm)
			}
			return nil
		},
	}
	showCmd.Flags().BoolVar(&showJSON, "json", false, "print the commit as JSON")
	showCmd.Flags().BoolVar(&showRaw, "raw", false, "show raw variant data")
	showCmd.Flags().StringVar(&metaKey, "print-metadata-key", "", "print the value of a metadata key")
	showCmd.Flags().StringVar(&detachedKey, "print-detached-metadata-key", "", "print the value of a detached metadata key")
	rootCmd.AddCommand(showCmd)

	var lsRec, lsSum, lsDirOnly, lsXattrs, lsNul, lsJSON bool
	lsCmd := &cobra.Command{
		Use:   "ls REV [PATH...]",
		Short: "List the contents of a commit",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, cm, err := openCommit(args[0])
			if err != nil {
				return err
			}
			paths := args[1:]
			if len(paths) == 0 {
				paths = []string{"/"}
			}
			l := &lister{r: r, w: cmd.OutOrStdout(), rec: lsRec, sum: lsSum, xattrs: lsXattrs, nul: lsNul, json: lsJSON}
			for _, p := range paths {
				e, err := lookup(r, cm, p)
				if err != nil {
					return err
				}
				if err := l.entry(e); err != nil {
					return err
				}
				if e.dir && !lsDirOnly {
					if err := l.children(e, e.path); err != nil {
						return err
					}
				}
			}
			if lsJSON {
				if l.entries == nil {
					l.entries = []entryJSON{}
				}
				return writeJSON(cmd.OutOrStdout(), l.entries)
			}
			return nil
		},
	}
	fl := lsCmd.Flags()
	fl.BoolVarP(&lsRec, "recursive", "R", false, "list recursively")
	fl.BoolVarP(&lsSum, "checksum", "C", false, "show object checksums")
	fl.BoolVarP(&lsDirOnly, "dironly", "d", false, "list a directory itself, not its contents")
	fl.BoolVarP(&lsXattrs, "xattrs", "X", false, "show extended attributes")
	fl.BoolVar(&lsNul, "nul-filenames-only", false, "print only file names, each followed by a NUL")
	fl.BoolVar(&lsJSON, "json", false, "print the entries as a JSON array")
	rootCmd.AddCommand(lsCmd)

	catCmd := &cobra.Command{
		Use:   "cat REV PATH...",
		Short: "Write the contents of files in a commit to standard output",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, cm, err := openCommit(args[0])
			if err != nil {
				return err
			}
			for _, p := range args[1:] {
				e, err := lookup(r, cm, p)
				if err != nil {
					return err
				}
				if e.dir {
					return fmt.Errorf("%w: %s is a directory", repo.ErrInvalid, p)
				}
				_, rc, err := r.OpenFileVerified(e.sum)
				if err != nil {
					return err
				}
				_, err = io.Copy(cmd.OutOrStdout(), rc)
				rc.Close()
				if err != nil {
					return fmt.Errorf("cat %s: %w", p, err)
				}
			}
			return nil
		},
	}
	rootCmd.AddCommand(catCmd)

	var refsDelete, refsJSON, refsList bool
	var refsCreate string
	refsCmd := &cobra.Command{
		Use:   "refs [PREFIX]",
		Short: "List, create or delete refs",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if refsCreate != "" {
				if len(args) != 1 {
					return fmt.Errorf("--create needs a commit argument")
				}
				c, err := r.ResolveRev(args[0])
				if err != nil {
					return err
				}
				p, err := repo.RefPath(refsCreate)
				if err != nil {
					return err
				}
				if _, err := r.ReadRef(p); err == nil {
					return fmt.Errorf("%w: ref %s", repo.ErrExists, refsCreate)
				}
				return r.SetRef(p, &c)
			}
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			refs, err := r.ListRefs()
			if err != nil {
				return err
			}
			var sel []repo.Ref
			for _, ref := range refs {
				if strings.HasPrefix(ref.Path, "mirrors/") {
					continue
				}
				if prefix == "" || ref.Name == prefix || strings.HasPrefix(ref.Name, strings.TrimSuffix(prefix, "/")+"/") || strings.HasPrefix(ref.Name, strings.TrimSuffix(prefix, ":")+":") {
					sel = append(sel, ref)
				}
			}
			if refsDelete {
				if prefix == "" {
					return fmt.Errorf("--delete needs a ref or prefix")
				}
				if len(sel) == 0 {
					return fmt.Errorf("%w: no refs match %s", repo.ErrNotFound, prefix)
				}
				for _, ref := range sel {
					if err := r.SetRef(ref.Path, nil); err != nil {
						return err
					}
				}
				return nil
			}
			if refsJSON {
				out2 := []refJSON{}
				for _, ref := range sel {
					out2 = append(out2, refJSON{ref.Name, ref.Checksum.String()})
				}
				return writeJSON(out, out2)
			}
			for _, ref := range sel {
				name := ref.Name
				if prefix != "" && !refsList {
					name = strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(name, prefix), "/"), ":")
					if name == "" {
						name = ref.Name
					}
				}
				fmt.Fprintln(out, name)
			}
			return nil
		},
	}
	refsCmd.Flags().BoolVar(&refsDelete, "delete", false, "delete the refs matching PREFIX")
	refsCmd.Flags().StringVar(&refsCreate, "create", "", "create NEWREF pointing to the COMMIT argument")
	refsCmd.Flags().BoolVar(&refsList, "list", false, "print full ref names even with a prefix")
	refsCmd.Flags().BoolVar(&refsJSON, "json", false, "print the refs as a JSON array")
	rootCmd.AddCommand(refsCmd)

	var single bool
	revParse := &cobra.Command{
		Use:   "rev-parse REV",
		Short: "Print the commit checksum a ref or abbreviated checksum names",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			c, err := r.ResolveRev(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), c)
			return nil
		},
	}
	revParse.Flags().BoolVarP(&single, "single", "S", false, "accepted for compatibility")
	rootCmd.AddCommand(revParse)

	var diffJSON bool
	diffCmd := &cobra.Command{
		Use:   "diff REV_A REV_B",
		Short: "Compare the trees of two commits",
		Long:  "Compare two commits' trees. Not supported yet: comparing a commit with a directory on disk, --stats, --fs-diff.",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			a, err := r.ResolveRev(args[0])
			if err != nil {
				return err
			}
			b, err := r.ResolveRev(args[1])
			if err != nil {
				return err
			}
			ch, err := diff.Commits(cmd.Context(), r, a, b)
			if err != nil {
				return err
			}
			if diffJSON {
				out := []changeJSON{}
				for _, c := range ch {
					out = append(out, changeJSON{c.Kind.String(), c.Path, c.Dir})
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			for _, c := range ch {
				fmt.Fprintf(cmd.OutOrStdout(), "%s    %s\n", c.Kind, c.Path)
			}
			return nil
		},
	}
	diffCmd.Flags().BoolVar(&diffJSON, "json", false, "print the changes as a JSON array")
	rootCmd.AddCommand(diffCmd)
}

// treeEntry is a path resolved in a commit.
type treeEntry struct {
	path       string
	dir        bool
	tree, meta objects.Checksum // dirs
	sum        objects.Checksum // files
}

func lookup(r *repo.Repo, cm *objects.Commit, p string) (*treeEntry, error) {
	clean := path.Clean("/" + p)
	e := &treeEntry{path: clean, dir: true, tree: cm.RootTree, meta: cm.RootMeta}
	if clean == "/" {
		return e, nil
	}
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	for i, name := range parts {
		dt, err := r.ReadDirTree(e.tree)
		if err != nil {
			return nil, err
		}
		found := false
		for _, d := range dt.Dirs {
			if d.Name == name {
				e.tree, e.meta, found = d.Tree, d.Meta, true
			}
		}
		if !found && i == len(parts)-1 {
			for _, f := range dt.Files {
				if f.Name == name {
					e.dir, e.sum, found = false, f.Checksum, true
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: no such file or directory: %s", repo.ErrNotFound, clean)
		}
	}
	return e, nil
}

type lister struct {
	r                           *repo.Repo
	w                           io.Writer
	rec, sum, xattrs, nul, json bool
	entries                     []entryJSON
}

var xattrsType = gvariant.MustParseType("a(ayay)")

func xattrsText(xs objects.Xattrs) string {
	v := make([]any, len(xs))
	for i, x := range xs {
		v[i] = []any{append([]byte(x.Name), 0), x.Value}
	}
	return "{ " + gvariant.Print(xattrsType, v) + " } "
}

func (l *lister) entry(e *treeEntry) error {
	if e.dir {
		dm, err := l.r.ReadDirMeta(e.meta)
		if err != nil {
			return err
		}
		return l.print(e.path, dm.Mode, dm.UID, dm.GID, 0, "", dm.Xattrs, e.tree.String()+" "+e.meta.String())
	}
	h, err := l.r.ReadFileHeader(e.sum)
	if err != nil {
		return err
	}
	return l.print(e.path, h.Mode, h.UID, h.GID, h.Size, h.Target, h.Xattrs, e.sum.String())
}

func (l *lister) print(p string, mode, uid, gid uint32, size uint64, target string, xs objects.Xattrs, sums string) error {
	if l.json {
		j := entryJSON{Path: p, Mode: mode &^ objects.ModeTypeMask, UID: uid, GID: gid, Size: size, Target: target}
		switch mode & objects.ModeTypeMask {
		case objects.ModeDir:
			j.Type = "dir"
		case objects.ModeSymlink:
			j.Type = "symlink"
		default:
			j.Type = "file"
		}
		if mode&objects.ModeTypeMask != objects.ModeDir {
			j.Checksum = sums
		}
		if len(xs) > 0 {
			j.Xattrs = map[string]string{}
			for _, x := range xs {
				j.Xattrs[x.Name] = hex.EncodeToString(x.Value)
			}
		}
		l.entries = append(l.entries, j)
		return nil
	}
	if l.nul {
		_, err := fmt.Fprintf(l.w, "%s\x00", p)
		return err
	}
	t := '-'
	switch mode & objects.ModeTypeMask {
	case objects.ModeDir:
		t = 'd'
	case objects.ModeSymlink:
		t = 'l'
	}
	line := fmt.Sprintf("%c0%04o %d %d %6d ", t, mode&0o7777, uid, gid, size)
	if l.sum {
		line += sums + " "
	}
	if l.xattrs {
		line += xattrsText(xs)
	}
	line += p
	if target != "" {
		line += " -> " + target
	}
	_, err := fmt.Fprintln(l.w, line)
	return err
}

func (l *lister) children(e *treeEntry, p string) error {
	dt, err := l.r.ReadDirTree(e.tree)
	if err != nil {
		return err
	}
	for _, f := range dt.Files {
		if err := l.entry(&treeEntry{path: path.Join(p, f.Name), sum: f.Checksum}); err != nil {
			return err
		}
	}
	for _, d := range dt.Dirs {
		sub := &treeEntry{path: path.Join(p, d.Name), dir: true, tree: d.Tree, meta: d.Meta}
		if err := l.entry(sub); err != nil {
			return err
		}
		if l.rec {
			if err := l.children(sub, sub.path); err != nil {
				return err
			}
		}
	}
	return nil
}

// openCommit opens the repository and reads the commit rev names.
func openCommit(rev string) (*repo.Repo, objects.Checksum, *objects.Commit, error) {
	r, err := openRepo()
	if err != nil {
		return nil, objects.Checksum{}, nil, err
	}
	c, err := r.ResolveRev(rev)
	if err != nil {
		return nil, c, nil, err
	}
	cm, err := r.ReadCommit(c)
	return r, c, cm, err
}
