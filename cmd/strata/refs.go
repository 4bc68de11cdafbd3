package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/remote"
	"github.com/strata-os/strata/repo"
)

type refsOptions struct {
	del, list, revision, collections, force, asJSON bool
	create                                          string
}

func init() { rootCmd.AddCommand(newRefsCmd()) }

func newRefsCmd() *cobra.Command {
	var o refsOptions
	cmd := &cobra.Command{
		Use:   "refs [PREFIX...]",
		Short: "List, create or delete refs",
		Long: "List refs (local ones and REMOTE:REF), those under each PREFIX with the prefix\n" +
			"cut off unless --list; with --delete remove the refs matching each PREFIX; with\n" +
			"--create=NEWREF point a new ref at the existing commit named by the argument.\n" +
			"With -c, refs are listed, created and deleted as (COLLECTION-ID, REF).",
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			switch {
			case len(args) == 0 && o.del:
				return errorf(repo.ErrInvalid, "At least one PREFIX is required when deleting refs")
			case len(args) == 0 && o.create != "":
				return errorf(repo.ErrInvalid, "You must specify a revision when creating a new ref")
			case len(args) > 1 && o.create != "":
				return errorf(repo.ErrInvalid, "You must specify only 1 existing ref when creating a new ref")
			}
			if len(args) == 0 {
				args = []string{""}
			}
			var listed []namedRef
			for _, a := range args {
				refs, err := o.run(r, a)
				if err != nil {
					return err
				}
				listed = append(listed, refs...)
			}
			if o.del || o.create != "" {
				return nil
			}
			out := cmd.OutOrStdout()
			if o.asJSON {
				js := []refJSON{}
				for _, n := range listed {
					js = append(js, refJSON{Name: n.full, Checksum: n.ref.Checksum.String(), CollectionID: n.collection})
				}
				return writeJSON(out, js)
			}
			for _, n := range listed {
				if o.revision {
					fmt.Fprintf(out, "%s\t%s\n", n.name, n.ref.Checksum)
				} else {
					fmt.Fprintln(out, n.name)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.del, "delete", false, "delete the refs matching each PREFIX instead of listing them")
	f.BoolVar(&o.list, "list", false, "do not cut the prefix from listed refs")
	f.BoolVarP(&o.revision, "revision", "r", false, "show each ref's commit")
	f.StringVar(&o.create, "create", "", "create NEWREF for the existing commit named by the argument")
	f.BoolVarP(&o.collections, "collections", "c", false, "list, create or delete refs with their collection IDs")
	f.BoolVar(&o.force, "force", false, "overwrite an existing ref when creating")
	f.BoolVar(&o.asJSON, "json", false, "print the refs as a JSON array (see docs/json.md)")
	return cmd
}

// namedRef is a ref as listed: name is what the text listing prints (the
// prefix cut off), full its whole name.
type namedRef struct {
	name, full string
	collection string
	ref        repo.Ref
}

// run lists, creates or deletes for one argument ("" for none).
func (o *refsOptions) run(r *repo.Repo, arg string) ([]namedRef, error) {
	all, err := r.ListRefs()
	if err != nil {
		return nil, err
	}
	if o.create != "" {
		return nil, o.createRef(r, all, arg)
	}
	var sel []namedRef
	if o.collections {
		sel, err = collectionRefs(r, all, arg)
	} else {
		sel, err = refsMatching(all, arg, !o.list && !o.asJSON)
	}
	if err != nil {
		return nil, err
	}
	if o.del {
		for _, n := range sel {
			if err := r.SetRef(n.ref.Path, nil); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	return sel, nil
}

// refsMatching selects refs as ostree_repo_list_refs does: all local and
// remote refs, or those a prefix names, which is a ref (listed by its
// whole name) or a directory of refs ("os" lists "os/main" as "main" when
// cut). "REMOTE:" names all refs of a remote.
func refsMatching(all []repo.Ref, prefix string, cut bool) ([]namedRef, error) {
	var out []namedRef
	add := func(name, full string, ref repo.Ref) {
		out = append(out, namedRef{name: name, full: full, ref: ref})
	}
	if prefix == "" {
		for _, ref := range all {
			if strings.HasPrefix(ref.Path, "heads/") || strings.HasPrefix(ref.Path, "remotes/") {
				add(ref.Name, ref.Name, ref)
			}
		}
	} else {
		rem, refPrefix, err := parseRefspecPrefix(prefix)
		if err != nil {
			return nil, err
		}
		target := "heads"
		if rem != "" {
			target = "remotes/" + rem
		}
		if refPrefix != "." {
			target += "/" + refPrefix
		}
		qualify := func(s string) string {
			if rem != "" {
				return rem + ":" + s
			}
			return s
		}
		for _, ref := range all {
			if ref.Path == target {
				add(qualify(refPrefix), ref.Name, ref)
			} else if rel, ok := strings.CutPrefix(ref.Path, target+"/"); ok {
				name := rel
				if !cut && refPrefix != "." {
					name = refPrefix + "/" + rel
				}
				add(qualify(name), ref.Name, ref)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// parseRefspecPrefix splits "[REMOTE:]REF" and validates both; "REMOTE:"
// and "REMOTE:." name all of a remote's refs (ref ".").
func parseRefspecPrefix(s string) (string, string, error) {
	rem, ref, hasRemote := strings.Cut(s, ":")
	if !hasRemote {
		rem, ref = "", s
	}
	if hasRemote && remote.ValidateName(rem) != nil {
		return "", "", errorf(repo.ErrInvalid, "listing refs: invalid refspec %s", s)
	}
	if hasRemote && (ref == "" || ref == ".") {
		return rem, ".", nil
	}
	if repo.ValidateRefName(ref) != nil {
		return "", "", errorf(repo.ErrInvalid, "listing refs: invalid refspec %s", s)
	}
	return rem, ref, nil
}

// collectionRefs lists refs with collection IDs as ostree refs -c does:
// local refs under the repository's collection ID (if it has one), mirrored
// refs, and refs of remotes that have a collection-id, all or those of the
// collection named by match.
func collectionRefs(r *repo.Repo, all []repo.Ref, match string) ([]namedRef, error) {
	var out []namedRef
	remoteColl := map[string]string{}
	var cfg *remote.Config
	for _, ref := range all {
		coll, name, rem := r.RefCollection(ref)
		if rem != "" {
			c, ok := remoteColl[rem]
			if !ok {
				if cfg == nil {
					var err error
					if cfg, _, err = remoteConfig(r); err != nil {
						return nil, err
					}
				}
				if rc, err := cfg.Get(rem); err == nil {
					c, _ = rc.Get("collection-id")
				} else if !errors.Is(err, repo.ErrNotFound) {
					return nil, err
				}
				remoteColl[rem] = c
			}
			coll = c
		}
		if coll == "" || match != "" && coll != match {
			continue
		}
		n := "(" + coll + ", " + name + ")"
		out = append(out, namedRef{name: n, full: name, collection: coll, ref: ref})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].collection != out[j].collection {
			return out[i].collection < out[j].collection
		}
		return out[i].full < out[j].full
	})
	return out, nil
}

// createRef points o.create at the commit rev names.
func (o *refsOptions) createRef(r *repo.Repo, all []repo.Ref, rev string) error {
	var p string
	if o.collections {
		coll, name, _ := strings.Cut(o.create, ":")
		var err error
		if p, err = r.CollectionRefPath(coll, name); err != nil {
			return errorf(repo.ErrInvalid, "invalid collection ref %q (want COLLECTION-ID:REF)", o.create)
		}
	} else {
		var err error
		if p, err = repo.RefPath(o.create); err != nil {
			return err
		}
	}
	for _, ref := range all {
		if ref.Path == p && !o.force {
			return errorf(repo.ErrExists, "--create specified but ref %s already exists", o.create)
		}
		if strings.HasPrefix(ref.Path, p+"/") || strings.HasPrefix(p, ref.Path+"/") {
			return errorf(repo.ErrExists, "cannot create ref %s: ref %s is in the way", o.create, ref.Name)
		}
	}
	c, err := r.ResolveRev(rev)
	if err != nil {
		return err
	}
	return r.SetRef(p, &c)
}
