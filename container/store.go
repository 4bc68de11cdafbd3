package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/ocilayer"
	"github.com/strata-os/strata/repo"
)

// ImageInfo is a pulled image as the repository records it.
type ImageInfo struct {
	Ref            ImageRef
	MergeCommit    objects.Checksum
	ManifestDigest string
	Version        string
	Timestamp      uint64
	Layers         []string // digests
}

// Inspect reads what the merge commit c records of its image.
func Inspect(r *repo.Repo, c objects.Checksum) (*ImageInfo, error) {
	co, err := r.ReadCommit(c)
	if err != nil {
		return nil, err
	}
	info := &ImageInfo{MergeCommit: c, Timestamp: co.Timestamp}
	info.ManifestDigest, _ = co.Metadata.String(MetaManifestDig)
	info.Version, _ = co.Metadata.String("version")
	raw, ok := co.Metadata.String(MetaManifest)
	if !ok {
		return nil, fmt.Errorf("%w: commit %s has no %s: not an image's merge commit", errdefs.ErrInvalid, c, MetaManifest)
	}
	var m Manifest
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("%w: commit %s: manifest: %w", errdefs.ErrCorrupt, c, err)
	}
	for _, l := range m.Layers {
		info.Layers = append(info.Layers, l.Digest)
	}
	return info, nil
}

// List returns the images pulled into r, by reference.
func List(r *repo.Repo) ([]ImageInfo, error) {
	refs, err := r.ListRefs()
	if err != nil {
		return nil, err
	}
	var out []ImageInfo
	for _, ref := range refs {
		name, ok := strings.CutPrefix(ref.Path, "heads/")
		if !ok || !strings.HasPrefix(name, ocilayer.ImageRefPrefix+"/") {
			continue
		}
		s, err := ocilayer.UnescapeRef(ocilayer.ImageRefPrefix, name)
		if err != nil {
			return nil, err
		}
		ir, err := ParseImageRef(s)
		if err != nil {
			return nil, err
		}
		info, err := Inspect(r, ref.Checksum)
		if err != nil {
			return nil, err
		}
		info.Ref = ir
		out = append(out, *info)
	}
	return out, nil
}

// Remove deletes the image ref of ref (its layers stay until Prune).
func Remove(r *repo.Repo, ref ImageRef) error {
	name, err := ocilayer.EscapeRef(ocilayer.ImageRefPrefix, ref.String())
	if err != nil {
		return err
	}
	if _, err := r.ReadRef("heads/" + name); err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("%w: image %s is not in the repository", errdefs.ErrNotFound, ref)
		}
		return err
	}
	return r.SetRef("heads/"+name, nil)
}

// Retag records the image pulled as from under the name to instead (its
// merge commit unchanged): bootc install's --target-imgref, where the
// image is pulled from a local copy (an oci: layout) and the installed
// machine follows another reference (a registry). The ref of to is
// written before the ref of from is removed.
func Retag(r *repo.Repo, from, to ImageRef) error {
	fromName, err := ocilayer.EscapeRef(ocilayer.ImageRefPrefix, from.String())
	if err != nil {
		return err
	}
	toName, err := ocilayer.EscapeRef(ocilayer.ImageRefPrefix, to.String())
	if err != nil {
		return err
	}
	if fromName == toName {
		return nil
	}
	c, err := r.ReadRef("heads/" + fromName)
	if err != nil {
		return fmt.Errorf("image %s: %w", from, err)
	}
	if err := r.SetRef("heads/"+toName, &c); err != nil {
		return err
	}
	return r.SetRef("heads/"+fromName, nil)
}

// Prune deletes the layer refs no image uses (keep names merge commits
// that count as used too, such as deployed ones), then the objects that
// no ref reaches. It returns how many layer refs it removed.
func Prune(ctx context.Context, r *repo.Repo, keep []objects.Checksum) (int, repo.PruneStats, error) {
	images, err := List(r)
	if err != nil {
		return 0, repo.PruneStats{}, err
	}
	used := map[string]bool{}
	for _, im := range images {
		for _, l := range im.Layers {
			used[l] = true
		}
	}
	for _, c := range keep {
		if info, err := Inspect(r, c); err == nil {
			for _, l := range info.Layers {
				used[l] = true
			}
		}
	}
	refs, err := r.ListRefs()
	if err != nil {
		return 0, repo.PruneStats{}, err
	}
	n := 0
	for _, ref := range refs {
		name, ok := strings.CutPrefix(ref.Path, "heads/")
		if !ok || !strings.HasPrefix(name, ocilayer.LayerRefPrefix+"/") {
			continue
		}
		d, err := ocilayer.UnescapeRef(ocilayer.LayerRefPrefix, name)
		if err != nil || used[d] {
			continue
		}
		if err := r.SetRef(ref.Path, nil); err != nil {
			return n, repo.PruneStats{}, err
		}
		n++
	}
	st, err := r.Prune(ctx, repo.PruneOptions{RefsOnly: true, Depth: -1})
	return n, st, err
}

// Origin returns the origin ostree-ext writes for a deployment of ref,
// plus the manifest digest strata verified.
func Origin(ref OstreeImageRef, digest string) *repo.KeyFile {
	kf := &repo.KeyFile{}
	kf.Set("origin", "container-image-reference", ref.String())
	if digest != "" {
		kf.Set("origin", "container-image-digest", digest)
	}
	return kf
}

// OriginImage reads the image an origin names; ok is false for an origin
// without container-image-reference (an OSTree refspec).
func OriginImage(kf *repo.KeyFile) (ref OstreeImageRef, ok bool, err error) {
	if kf == nil {
		return ref, false, nil
	}
	s, found := kf.Get("origin", "container-image-reference")
	if !found || s == "" {
		return ref, false, nil
	}
	ref, err = ParseOstreeImageRef(s)
	return ref, true, err
}

// SigVerifyOf is the origin's verification prefix for a pull: signed
// when the policy required signatures and they held.
func SigVerifyOf(res *PullResult) string {
	if res != nil && res.Verified {
		return SigPolicy
	}
	return SigUnverified
}
