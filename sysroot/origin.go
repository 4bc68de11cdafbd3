package sysroot

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/repo"
)

// NewOrigin returns the origin ostree writes for a deployment of refspec:
// "[origin]\nrefspec=REFSPEC\n".
func NewOrigin(refspec string) *repo.KeyFile {
	kf := &repo.KeyFile{}
	kf.Set("origin", "refspec", refspec)
	return kf
}

// setOriginKey sets group.key in kf. A new group is separated from the
// previous one by a blank line, as GLib's key files write it.
func setOriginKey(kf *repo.KeyFile, group, key, value string) *repo.KeyFile {
	if kf == nil {
		kf = &repo.KeyFile{}
	}
	if !kf.HasGroup(group) {
		text := kf.String()
		if text != "" {
			text += "\n"
		}
		parsed, err := repo.ParseKeyFile(text + "[" + group + "]\n")
		if err == nil {
			kf = parsed
		}
	}
	kf.Set(group, key, value)
	return kf
}

// cloneOrigin copies kf (nil stays nil).
func cloneOrigin(kf *repo.KeyFile) *repo.KeyFile {
	if kf == nil {
		return nil
	}
	c, err := repo.ParseKeyFile(kf.String())
	if err != nil {
		return kf
	}
	return c
}

// removeTransient drops the libostree-transient group (pins and other
// state that an upgrade does not carry over), as ostree's upgrader does.
func removeTransient(kf *repo.KeyFile) *repo.KeyFile {
	kf = cloneOrigin(kf)
	if kf != nil {
		// The blank line before the group stays, as with GLib.
		kf.DeleteGroup(transientGroup)
	}
	return kf
}

// writeOrigin durably writes d's .origin file (nothing when origin is nil).
func (s *Sysroot) writeOrigin(d *Deployment, origin *repo.KeyFile) error {
	if origin == nil {
		return nil
	}
	if err := fsutil.CheckFailpoint("sysroot:origin"); err != nil {
		return err
	}
	if err := fsutil.WriteFile(s.originPath(d), []byte(origin.String()), 0o644); err != nil {
		return fmt.Errorf("writing origin of %s: %w", d.Name(), err)
	}
	// Temporaries of origin writes whose process was killed (admin pin
	// runs no cleanup).
	if err := fsutil.RemoveStaleTemps(filepath.Dir(s.originPath(d))); err != nil {
		s.warn(err)
	}
	return nil
}

// SetPinned pins or unpins the deployment at index: a pinned deployment
// is kept by deploys that would otherwise drop it. The pin lives in the
// origin file, [libostree-transient] pinned=true, as ostree keeps it. It
// reports whether anything changed.
func (s *Sysroot) SetPinned(ctx context.Context, index int, pinned bool) (changed bool, err error) {
	err = s.withLock(ctx, func() error {
		d, err := s.Deployment(index)
		if err != nil {
			return err
		}
		if d.Pinned() == pinned {
			return nil
		}
		if d.Staged {
			return fmt.Errorf("%w: cannot pin staged deployment %s", ErrInvalid, d.Name())
		}
		origin := cloneOrigin(d.Origin)
		if pinned {
			origin = setOriginKey(origin, transientGroup, "pinned", "true")
		} else {
			origin.Delete(transientGroup, "pinned")
		}
		if err := s.writeOrigin(d, origin); err != nil {
			return err
		}
		changed = true
		return bumpMtime(s.path)
	})
	return changed, err
}
