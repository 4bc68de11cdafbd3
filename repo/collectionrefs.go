package repo

import (
	"fmt"
	"strings"
)

// CollectionRefPath returns the path under refs/ of the collection ref
// (collection, name), as ostree stores it: heads/NAME when collection is
// the repository's own collection ID, else mirrors/COLLECTION/NAME.
func (r *Repo) CollectionRefPath(collection, name string) (string, error) {
	if collection == "" || ValidateRefName(name) != nil {
		return "", fmt.Errorf("%w: invalid collection ref (%q, %q)", ErrInvalid, collection, name)
	}
	if collection == r.CollectionID() {
		return "heads/" + name, nil
	}
	return "mirrors/" + collection + "/" + name, nil
}

// RefCollection splits a ref into its collection ID and name as ostree
// refs -c lists it: a local ref belongs to the repository's collection ID
// (none when the repository has none), a mirrored ref to the collection of
// its path. A remote's ref returns remote set and collection empty: its
// collection is the remote's collection-id, which the remote configuration
// holds.
func (r *Repo) RefCollection(ref Ref) (collection, name, remote string) {
	kind, rest, _ := strings.Cut(ref.Path, "/")
	switch kind {
	case "heads":
		return r.CollectionID(), rest, ""
	case "mirrors":
		collection, name, _ = strings.Cut(rest, "/")
		return collection, name, ""
	case "remotes":
		remote, name, _ = strings.Cut(rest, "/")
		return "", name, remote
	}
	return "", "", ""
}
