package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
)

// A ref name is '/'-separated components of word characters, '-', '.' and
// '_', each starting with a word character (OSTree's ostree_validate_rev).
// Word characters are Unicode letters, digits and '_', as in OSTree's
// GRegex (so "ü" is a valid ref, "a b" and ".x" are not).
var refComponent = regexp.MustCompile(`^[\p{L}\p{N}_][-.\p{L}\p{N}_]*$`)

// ValidateRefName checks a branch name such as "os/x86_64/stable".
func ValidateRefName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty ref name", ErrInvalid)
	}
	for _, c := range strings.Split(name, "/") {
		if !refComponent.MatchString(c) {
			return fmt.Errorf("%w: invalid ref name %q", ErrInvalid, name)
		}
	}
	return nil
}

// validateRefPath checks a path under refs/: heads/NAME, remotes/R/NAME or
// mirrors/COLLECTION/NAME.
func validateRefPath(p string) error {
	kind, rest, ok := strings.Cut(p, "/")
	if !ok {
		return fmt.Errorf("%w: invalid ref path %q", ErrInvalid, p)
	}
	switch kind {
	case "heads":
		return ValidateRefName(rest)
	case "remotes", "mirrors":
		owner, name, ok := strings.Cut(rest, "/")
		if !ok || !refComponent.MatchString(owner) {
			return fmt.Errorf("%w: invalid ref path %q", ErrInvalid, p)
		}
		return ValidateRefName(name)
	}
	return fmt.Errorf("%w: invalid ref path %q", ErrInvalid, p)
}

// RefPath converts a user-facing ref ("main" or "origin:main") to its path
// under refs/.
func RefPath(ref string) (string, error) {
	p := "heads/" + ref
	if remote, name, ok := strings.Cut(ref, ":"); ok {
		p = "remotes/" + remote + "/" + name
	}
	return p, validateRefPath(p)
}

func (r *Repo) writeRef(ref string, sum *objects.Checksum) error {
	p := filepath.Join(r.path, "refs", filepath.FromSlash(ref))
	if sum == nil {
		err := os.Remove(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete ref %s: %w", ref, err)
		}
		return fsutil.SyncDir(filepath.Dir(p))
	}
	if err := fsutil.MkdirAllSync(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write ref %s: %w", ref, err)
	}
	return fsutil.WriteFile(p, []byte(sum.String()+"\n"), 0o644)
}

// SetRef durably points a ref (a path under refs/, see Txn.SetRef) at a
// commit that must already be stored, or deletes it when sum is nil.
func (r *Repo) SetRef(ref string, sum *objects.Checksum) error {
	if err := validateRefPath(ref); err != nil {
		return err
	}
	if sum != nil {
		ok, err := r.HasObject(objects.KindCommit, *sum)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: commit %s (for ref %s)", ErrNotFound, sum, ref)
		}
	}
	return r.writeRef(ref, sum)
}

// maxRefFileSize bounds a ref file read (64 hex digits and a newline).
const maxRefFileSize = 4096

// ReadRef reads a ref by its path under refs/. A ref file that is not a
// regular file (a FIFO) or is too large is an error, not a wait.
func (r *Repo) ReadRef(ref string) (objects.Checksum, error) {
	data, err := fsutil.ReadFileLimit(filepath.Join(r.path, "refs", filepath.FromSlash(ref)), maxRefFileSize)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return objects.Checksum{}, fmt.Errorf("%w: ref %s", ErrNotFound, ref)
		}
		return objects.Checksum{}, err
	}
	c, err := objects.ParseChecksum(strings.TrimSpace(string(data)))
	if err != nil {
		return c, fmt.Errorf("%w: ref %s: %v", ErrCorrupt, ref, err)
	}
	return c, nil
}

// Ref is one ref and its target.
type Ref struct {
	Name     string // as users write it: "main", "origin:main", or "(collection, main)" for mirrors
	Path     string // under refs/: "heads/main"
	Checksum objects.Checksum
}

// ListRefs lists refs under refs/heads, refs/remotes and refs/mirrors,
// sorted by name.
func (r *Repo) ListRefs() ([]Ref, error) {
	var out []Ref
	root := filepath.Join(r.path, "refs")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if validateRefPath(rel) != nil {
			return nil
		}
		c, err := r.ReadRef(rel)
		if err != nil {
			return err
		}
		out = append(out, Ref{Name: refDisplayName(rel), Path: rel, Checksum: c})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

func refDisplayName(p string) string {
	kind, rest, _ := strings.Cut(p, "/")
	switch kind {
	case "heads":
		return rest
	case "remotes":
		remote, name, _ := strings.Cut(rest, "/")
		return remote + ":" + name
	}
	coll, name, _ := strings.Cut(rest, "/")
	return "(" + coll + ", " + name + ")"
}

// ResolveRev resolves what users type for a commit: a full checksum, a
// unique abbreviated one, a ref ("main"), a remote ref ("origin:main"), any
// of those followed by '^' once or more for ancestors.
func (r *Repo) ResolveRev(rev string) (objects.Checksum, error) {
	base := strings.TrimRight(rev, "^")
	depth := len(rev) - len(base)
	c, err := r.resolveBase(base)
	if err != nil {
		return c, err
	}
	for range depth {
		cm, err := r.ReadCommit(c)
		if err != nil {
			return c, err
		}
		if cm.Parent.IsZero() {
			return c, fmt.Errorf("%w: commit %s has no parent (resolving %s)", ErrNotFound, c, rev)
		}
		c = cm.Parent
	}
	return c, nil
}

// resolveBase resolves in ostree's order: a full checksum; an abbreviated
// one (lower-case hex, any length) matching exactly one stored commit, which
// wins over a ref of the same name, and is an error when it matches several;
// then a ref.
func (r *Repo) resolveBase(rev string) (objects.Checksum, error) {
	if c, err := objects.ParseChecksum(rev); err == nil && !strings.ContainsAny(rev, "ABCDEF") {
		return c, nil
	}
	if isLowerHex(rev) && len(rev) < 64 {
		c, n, err := r.resolvePrefix(rev)
		if err != nil {
			return c, err
		}
		switch {
		case n == 1:
			return c, nil
		case n > 1:
			return objects.Checksum{}, fmt.Errorf("%w: abbreviated checksum %q is ambiguous (%d commits)", ErrInvalid, rev, n)
		}
	}
	if p, err := RefPath(rev); err == nil {
		c, err := r.ReadRef(p)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return c, err
		}
		// OSTree also accepts "remote/name" for a remote ref.
		if !strings.Contains(rev, ":") && strings.Contains(rev, "/") {
			if c, err := r.ReadRef("remotes/" + rev); err == nil {
				return c, nil
			}
		}
	}
	return objects.Checksum{}, fmt.Errorf("%w: no such ref or commit %q", ErrNotFound, rev)
}

// resolvePrefix returns the number of stored commits whose checksum starts
// with prefix and, when there is one, that commit.
func (r *Repo) resolvePrefix(prefix string) (objects.Checksum, int, error) {
	var found []objects.Checksum
	scan := func(sub string) error {
		ents, err := os.ReadDir(filepath.Join(r.path, "objects", sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for _, e := range ents {
			base, ok := strings.CutSuffix(e.Name(), ".commit")
			if ok && strings.HasPrefix(sub+base, prefix) {
				if c, err := objects.ParseChecksum(sub + base); err == nil {
					found = append(found, c)
				}
			}
		}
		return nil
	}
	if len(prefix) >= 2 {
		if err := scan(prefix[:2]); err != nil {
			return objects.Checksum{}, 0, err
		}
	} else {
		for _, d := range "0123456789abcdef" {
			if err := scan(prefix + string(d)); err != nil {
				return objects.Checksum{}, 0, err
			}
		}
	}
	if len(found) != 1 {
		return objects.Checksum{}, len(found), nil
	}
	return found[0], 1, nil
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}
