package commit

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// Options describe the commit object and how it is published.
type Options struct {
	// Branch is the ref ("main" or "remote:main") to update; empty with
	// Orphan.
	Branch  string
	Orphan  bool
	Subject string
	Body    string
	// Timestamp defaults to now.
	Timestamp time.Time
	// Parent: nil takes the branch's current commit (if any); a pointer to
	// the zero checksum means no parent.
	Parent *objects.Checksum
	// Metadata is added in order, before the bindings.
	Metadata objects.Metadata
	// NoBindings leaves out ostree.ref-binding and ostree.collection-binding.
	NoBindings bool
	// BindRefs are bound in addition to Branch.
	BindRefs []string
	// SkipIfUnchanged returns the parent, writing nothing, when the tree is
	// the parent's.
	SkipIfUnchanged bool
	// Bootable adds ostree.bootable and ostree.linux (KernelVersion,
	// BootableMetadata) as `ostree commit --bootable` does; a tree without
	// exactly one kernel is refused.
	Bootable bool
}

// Result is what Write produced.
type Result struct {
	Checksum objects.Checksum
	// Skipped is set when SkipIfUnchanged found the tree unchanged.
	Skipped bool
}

// Write writes the tree m and a commit object for it in t, and queues the
// branch's ref update; the caller commits t. The commit object is built
// exactly as `ostree commit` builds it, so the same tree, subject, body,
// timestamp and metadata give the same checksum.
func Write(ctx context.Context, t *repo.Txn, m *MTree, o Options) (Result, error) {
	r := t.Repo()
	var res Result
	var refPath string
	if !o.Orphan {
		if o.Branch == "" {
			return res, fmt.Errorf("%w: a branch is required unless the commit is an orphan", repo.ErrInvalid)
		}
		p, err := repo.RefPath(o.Branch)
		if err != nil {
			return res, err
		}
		refPath = p
	}
	md := append(objects.Metadata(nil), o.Metadata...)
	if o.Bootable {
		kver, err := KernelVersion(r, m)
		if err != nil {
			return res, err
		}
		md = BootableMetadata(md, kver)
	}
	var parent objects.Checksum
	if o.Parent != nil {
		parent = *o.Parent
	} else if refPath != "" {
		if c, err := r.ReadRef(refPath); err == nil {
			parent = c
		}
	}
	tree, meta, err := m.Write(t)
	if err != nil {
		return res, err
	}
	if o.SkipIfUnchanged && !parent.IsZero() {
		pc, err := r.ReadCommit(parent)
		if err == nil && pc.RootTree == tree && pc.RootMeta == meta {
			return Result{Checksum: parent, Skipped: true}, nil
		}
	}
	ts := o.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	if !o.NoBindings {
		bindings := append([]string(nil), o.BindRefs...)
		if o.Branch != "" {
			bindings = append(bindings, o.Branch)
		}
		sort.Strings(bindings)
		// As ostree 2022.7 does: the ref binding is always appended (an
		// orphan gets an empty list), even when the caller's metadata
		// already has the key; the collection binding only when it has not.
		md = append(md, objects.MetaEntry{Key: "ostree.ref-binding", Value: gvariant.Variant{Type: asType, Value: bindings}})
		if id := r.CollectionID(); id != "" {
			if _, ok := md.Get("ostree.collection-binding"); !ok {
				md = append(md, objects.MetaEntry{Key: "ostree.collection-binding", Value: gvariant.Variant{Type: sType, Value: id}})
			}
		}
	}
	c := objects.Commit{
		Metadata:  md,
		Parent:    parent,
		Subject:   o.Subject,
		Body:      o.Body,
		Timestamp: uint64(ts.Unix()),
		RootTree:  tree,
		RootMeta:  meta,
	}
	data, err := c.Marshal()
	if err != nil {
		return res, err
	}
	sum, err := t.WriteMetadata(objects.KindCommit, data)
	if err != nil {
		return res, err
	}
	if refPath != "" {
		if err := t.SetRef(refPath, &sum); err != nil {
			return res, err
		}
	}
	return Result{Checksum: sum}, nil
}

var (
	asType = gvariant.MustParseType("as")
	sType  = gvariant.MustParseType("s")
)

// AddRef overlays the tree of an existing commit (rev) onto m at its root.
func AddRef(t *repo.Txn, m *MTree, rev string) error {
	r := t.Repo()
	c, err := r.ResolveRev(rev)
	if err != nil {
		return err
	}
	cm, err := r.ReadCommit(c)
	if err != nil {
		return err
	}
	if len(m.files) == 0 && len(m.dirs) == 0 && m.lazyTree == nil {
		m.SetLazy(cm.RootTree, cm.RootMeta)
		return nil
	}
	return overlayTree(r, m, cm.RootTree, cm.RootMeta)
}

func overlayTree(r *repo.Repo, m *MTree, tree, meta objects.Checksum) error {
	dm, err := r.ReadDirMeta(meta)
	if err != nil {
		return err
	}
	m.Meta = dm
	dt, err := r.ReadDirTree(tree)
	if err != nil {
		return err
	}
	for _, f := range dt.Files {
		if err := m.checkOverlay(r, f.Name, false); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		slot, err := m.SetFile(r, f.Name)
		if err != nil {
			return err
		}
		*slot = f.Checksum
	}
	for _, d := range dt.Dirs {
		if err := m.checkOverlay(r, d.Name, true); err != nil {
			return fmt.Errorf("%s: %w", d.Name, err)
		}
		sub, err := m.Lookup(r, d.Name)
		if err != nil {
			return err
		}
		if sub == nil {
			sub, err = m.Dir(r, d.Name, nil)
			if err != nil {
				return err
			}
			sub.SetLazy(d.Tree, d.Meta)
			continue
		}
		if err := overlayTree(r, sub, d.Tree, d.Meta); err != nil {
			return err
		}
	}
	return nil
}
