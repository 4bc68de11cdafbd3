package sysroot

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/etcmerge"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// Undeploy removes the deployment at index (not the booted one), then
// cleans up and prunes, as `ostree admin undeploy` does. It returns the
// removed deployment.
func (s *Sysroot) Undeploy(ctx context.Context, index int) (*Deployment, repo.PruneStats, error) {
	var gone *Deployment
	var st repo.PruneStats
	err := s.withLock(ctx, func() error {
		d, err := s.Deployment(index)
		if err != nil {
			return err
		}
		if same(d, s.booted) {
			return fmt.Errorf("%w: cannot undeploy currently booted deployment %d", ErrInvalid, index)
		}
		gone = d
		var list []*Deployment
		for _, x := range s.deployments {
			if !same(x, d) {
				list = append(list, x)
			}
		}
		st, err = s.writeDeployments(ctx, list, writeOptions{postclean: true, prune: true})
		return err
	})
	return gone, st, err
}

// SetDefault makes the deployment at index the default (index 0), the
// others keeping their order. A staged deployment is dropped (it would
// no longer be the default).
func (s *Sysroot) SetDefault(ctx context.Context, index int) (*Deployment, error) {
	var d *Deployment
	err := s.withLock(ctx, func() error {
		var err error
		if d, err = s.Deployment(index); err != nil {
			return err
		}
		if d.Staged {
			return fmt.Errorf("%w: deployment %d is staged; it becomes the default at finalize-staged", ErrInvalid, index)
		}
		list := []*Deployment{d}
		for _, x := range s.deployments {
			if !same(x, d) {
				list = append(list, x)
			}
		}
		_, err = s.writeDeployments(ctx, list, writeOptions{postclean: true, prune: true})
		return err
	})
	return d, err
}

// Rollback makes the previous deployment the default, as `bootc rollback`
// does: when booted into the default deployment, the rollback deployment
// (the next one of the booted stateroot); when booted into a deployment
// that is not the default, the booted one; when not booted, deployment 1.
// A staged deployment is discarded. It returns the new default.
func (s *Sysroot) Rollback(ctx context.Context) (*Deployment, error) {
	var target *Deployment
	err := s.withLock(ctx, func() error {
		var first *Deployment
		for _, d := range s.deployments {
			if !d.Staged {
				first = d
				break
			}
		}
		switch {
		case s.booted != nil && !same(first, s.booted):
			target = s.booted
		case s.booted != nil:
			_, target = s.PendingAndRollback(s.booted.OS)
		case first != nil:
			_, target = s.PendingAndRollback(first.OS)
		}
		if target == nil {
			// After a factory reset, the rollback is the replaced
			// stateroot's newest deployment, until ResetCleanup.
			cur := s.booted
			if cur == nil {
				cur = first
			}
			if from := resetFrom(cur); from != "" {
				// The newest one whose boot was not marked bad (a
				// health check that failed before the reset); all
				// bad, the newest.
				for _, d := range s.deployments {
					if d.OS == from && !d.Staged && (target == nil || bootloader.Bad(target.EntryFile) && !bootloader.Bad(d.EntryFile)) {
						target = d
					}
				}
			}
		}
		if target == nil {
			return fmt.Errorf("%w: no rollback deployment", ErrNotFound)
		}
		list := []*Deployment{target}
		for _, x := range s.deployments {
			if !same(x, target) && !x.Staged {
				list = append(list, x)
			}
		}
		_, err := s.writeDeployments(ctx, list, writeOptions{postclean: true, prune: true})
		return err
	})
	return target, err
}

// KargsEdit is a kernel-argument change: Replace sets KEY=VALUE (every
// argument with the key goes), Append adds an argument, Delete removes
// KEY (when it has one value) or KEY=VALUE.
type KargsEdit struct {
	Append, Delete, Replace []string
}

// Empty reports whether the edit changes nothing.
func (e KargsEdit) Empty() bool { return len(e.Append)+len(e.Delete)+len(e.Replace) == 0 }

// EditKargs changes the kernel arguments of the deployment at index and
// writes them as a new boot version (the deployment's boot entry changes,
// so the switch is the same atomic rename as a deploy). ostree= cannot be
// edited. It returns the new arguments, without ostree=.
func (s *Sysroot) EditKargs(ctx context.Context, index int, e KargsEdit) (string, error) {
	var out string
	err := s.withLock(ctx, func() error {
		d, err := s.Deployment(index)
		if err != nil {
			return err
		}
		if d.Staged {
			return fmt.Errorf("%w: deployment %d is staged: change its kernel arguments by staging again", ErrInvalid, index)
		}
		if err := checkKargs(e.Replace, e.Append, e.Delete); err != nil {
			return err
		}
		ka := bootloader.ParseKargs(d.Options())
		for _, a := range append(append(append([]string{}, e.Replace...), e.Append...), e.Delete...) {
			if k, _, _ := strings.Cut(a, "="); k == "ostree" || a == "" {
				return fmt.Errorf("%w: kernel argument %q cannot be edited", ErrInvalid, a)
			}
		}
		for _, a := range e.Replace {
			ka.Set(a)
		}
		for _, a := range e.Append {
			ka.Append(a)
		}
		for _, a := range e.Delete {
			if err := ka.Delete(a); err != nil {
				return err
			}
		}
		nd := *d
		nd.entry = d.entry.Clone()
		nd.entry.Set("options", ka.String())
		list := make([]*Deployment, 0, len(s.deployments))
		for _, x := range s.deployments {
			if same(x, d) {
				list = append(list, &nd)
			} else {
				list = append(list, x)
			}
		}
		if _, err := s.writeDeployments(ctx, list, writeOptions{postclean: true, prune: true}); err != nil {
			return err
		}
		out = bootloader.WithoutKarg(ka.String(), "ostree")
		return nil
	})
	return out, err
}

// stage writes a staged deployment: the directory now (checkout, /etc
// from usr/etc, origin), the state in RUN/ostree/staged-deployment, and
// refs; /etc merge, sealing and the boot entries wait for FinalizeStaged.
// A previously staged deployment is replaced.
func (s *Sysroot) stage(ctx context.Context, osname string, csum objects.Checksum, origin *repo.KeyFile, merge *Deployment, ka *bootloader.Kargs, lockFinalization bool) (*Deployment, error) {
	if lockFinalization {
		p := filepath.Join(s.opts.RunDir, stagedLockedFile)
		if err := fsutil.MkdirAllSync(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("staged deployment: %w", err)
		}
		if err := fsutil.WriteFile(p, nil, 0o640); err != nil {
			return nil, err
		}
	}
	d, _, err := s.newDeployment(ctx, osname, csum, origin, merge, ka, false)
	if err != nil {
		return nil, err
	}
	st := &stagedState{target: d, merge: merge}
	if ka != nil {
		st.hasKargs, st.kargs = true, ka.Strings()
	}
	if err := s.writeStaged(st); err != nil {
		return nil, err
	}
	if prev := s.staged; prev != nil && !same(prev, d) {
		if err := s.removeDeploymentDir(prev); err != nil {
			return nil, err
		}
	}
	if err := bumpMtime(s.path); err != nil {
		return nil, err
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	if err := s.prepareCleanup(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// FinalizeStaged turns the staged deployment into the default one, as
// ostree-finalize-staged.service does at shutdown: the state file is
// removed first (an interrupted finalization leaves the old default, and
// cleanup removes the half-finalized directory), then the /etc merge with
// the merge deployment recorded at staging time, sealing, and the switch
// to a new boot version. It returns nil when nothing is staged or
// finalization is locked (RUN/ostree/staged-deployment-locked).
func (s *Sysroot) FinalizeStaged(ctx context.Context) (*Deployment, error) {
	var done *Deployment
	err := s.withLock(ctx, func() error {
		if s.staged == nil {
			return nil
		}
		if lexists(filepath.Join(s.opts.RunDir, stagedLockedFile)) {
			return nil
		}
		staged, st := s.staged, s.stagedState
		var merge *Deployment
		if st.merge != nil {
			for _, d := range s.deployments {
				if same(d, st.merge) {
					merge = d
				}
			}
			if merge == nil {
				return fmt.Errorf("%w: failed to find merge deployment %s for staged", ErrNotFound, st.merge.Name())
			}
		}
		if err := s.removeStagedState(); err != nil {
			return err
		}
		dir := s.DeploymentPath(staged)
		if _, err := s.finalizeDir(ctx, staged, dir, merge); err != nil {
			return err
		}
		if err := fsutil.Syncfs(dir); err != nil {
			return err
		}
		if err := s.writeOrigin(staged, staged.Origin); err != nil {
			return err
		}
		if err := seal(dir, true); err != nil {
			return err
		}
		nd := *staged
		nd.Staged = false
		// The staged state is gone from disk: forget it here too.
		s.staged, s.stagedState = nil, nil
		s.deployments = s.deployments[1:]
		list := s.simpleWriteList(staged.OS, &nd, merge, writeFlags{})
		if _, err := s.writeDeployments(ctx, list, writeOptions{newDeployment: &nd, postclean: true}); err != nil {
			return err
		}
		done = &nd
		return nil
	})
	if done != nil {
		for _, d := range s.deployments {
			if same(d, done) {
				done = d
			}
		}
	}
	return done, err
}

// BootComplete marks the booted deployment's boot as good: its entry file
// loses the systemd-boot counting suffix (ostree-1-os+2-1.conf becomes
// ostree-1-os.conf), so the boot loader stops counting down. It reports
// whether anything was renamed.
func (s *Sysroot) BootComplete(ctx context.Context) (bool, error) {
	renamed := false
	err := s.withLock(ctx, func() error {
		b := s.booted
		if b == nil {
			return fmt.Errorf("boot-complete: %w", ErrNotBooted)
		}
		did, err := s.blessLoader(b)
		if err != nil {
			return fmt.Errorf("boot-complete: %w", err)
		}
		renamed = did
		blessed := bootloader.Blessed(b.EntryFile)
		if blessed == b.EntryFile {
			return nil
		}
		dir := filepath.Join(s.boot, fmt.Sprintf("loader.%d/entries", s.bootVersion))
		if err := fsutil.CheckFailpoint("sysroot:boot-complete"); err != nil {
			return err
		}
		if err := fsutil.Rename(filepath.Join(dir, b.EntryFile), filepath.Join(dir, blessed)); err != nil {
			return fmt.Errorf("boot-complete: %w", err)
		}
		renamed = true
		return nil
	})
	return renamed, err
}

// EtcChange is one local change of a deployment's /etc against its
// defaults in usr/etc.
type EtcChange struct {
	// Kind is 'M' (modified), 'D' (deleted) or 'A' (added).
	Kind byte
	// Path is relative to /etc ("hosts", "ssh/sshd_config").
	Path string
}

// ConfigDiff lists the local /etc changes of the booted deployment, or,
// with osname, of that stateroot's merge deployment, as `ostree admin
// config-diff` does: modified, then deleted, then added.
func (s *Sysroot) ConfigDiff(ctx context.Context, osname string) ([]EtcChange, error) {
	var d *Deployment
	if osname != "" {
		if d = s.MergeDeployment(osname); d == nil {
			return nil, fmt.Errorf("%w: no deployment for OS '%s'", ErrNotFound, osname)
		}
	} else if d = s.booted; d == nil {
		return nil, fmt.Errorf("%w and no --os= argument given", ErrNotBooted)
	}
	dir := s.DeploymentPath(d)
	if err := checkDeploymentDirs(dir, "deployment "+d.Name()); err != nil {
		return nil, err
	}
	changes, err := etcmerge.Diff(ctx, filepath.Join(dir, "usr/etc"), filepath.Join(dir, "etc"))
	if err != nil {
		return nil, err
	}
	out := make([]EtcChange, len(changes))
	for i, c := range changes {
		out[i] = EtcChange{Kind: c.Kind.Letter(), Path: c.Path}
	}
	return out, nil
}

// Puller fetches a ref from a remote into the sysroot's repository, for
// Upgrade. The pull package implements it; the CLI wires it in.
type Puller interface {
	// Pull fetches remote's ref into r (refs/remotes/REMOTE/REF). When
	// timestampCheckFrom is not zero, Pull MUST refuse (with an error
	// wrapping ErrDowngrade) a commit older than that one, before writing
	// anything of it. Pull may be called again after an error.
	Pull(ctx context.Context, r *repo.Repo, remote, ref string, timestampCheckFrom objects.Checksum) error
}

// UpgradeOptions are the arguments of Upgrade.
type UpgradeOptions struct {
	// OS is the stateroot; "" means the booted one.
	OS string
	// AllowDowngrade permits deploying an older commit.
	AllowDowngrade bool
	// Stage stages the new deployment instead of switching now.
	Stage bool
	// DeployOnly does not pull, even when the refspec names a remote.
	DeployOnly bool
	// PullOnly pulls without deploying.
	PullOnly bool
	// Puller pulls refspecs with a remote; nil fails for those (unless
	// DeployOnly).
	Puller Puller
}

// UpgradeResult reports what Upgrade did.
type UpgradeResult struct {
	// Changed is false when the origin's ref still names the merge
	// deployment's commit ("No update available").
	Changed bool
	From    objects.Checksum
	To      objects.Checksum
	Deploy  *DeployResult // nil unless a deployment was written
}

// Upgrade re-deploys the merge deployment's origin refspec when it moved,
// as `ostree admin upgrade` does: pull (when the refspec has a remote and
// a Puller is set), resolve, refuse a commit older than the current one
// unless AllowDowngrade, then deploy it with the same origin (transient
// state such as the pin dropped) and inherited /etc and kernel
// arguments.
func (s *Sysroot) Upgrade(ctx context.Context, o UpgradeOptions) (*UpgradeResult, error) {
	if o.PullOnly && o.DeployOnly {
		return nil, fmt.Errorf("%w: cannot simultaneously specify --pull-only and --deploy-only", ErrInvalid)
	}
	osname := o.OS
	if osname == "" {
		if s.booted == nil {
			return nil, fmt.Errorf("%w and no --os= argument given", ErrNotBooted)
		}
		osname = s.booted.OS
	}
	merge := s.MergeDeployment(osname)
	if merge == nil {
		return nil, fmt.Errorf("%w: no previous deployment for OS '%s'", ErrNotFound, osname)
	}
	if merge.Origin == nil {
		return nil, fmt.Errorf("%w: no origin known for deployment %s", ErrNotFound, merge.Name())
	}
	if v, ok := merge.Origin.Get("origin", "unconfigured-state"); ok {
		return nil, fmt.Errorf("%w: origin unconfigured-state: %s", ErrInvalid, v)
	}
	refspec := merge.Refspec()
	if refspec == "" {
		return nil, fmt.Errorf("%w: no origin/refspec in current deployment origin; cannot upgrade via ostree", ErrNotFound)
	}
	res := &UpgradeResult{From: merge.Checksum}
	remote, ref, hasRemote := strings.Cut(refspec, ":")
	if !hasRemote {
		ref = refspec
	}
	if hasRemote && !o.DeployOnly {
		if o.Puller == nil {
			return nil, fmt.Errorf("%w: refspec %s names remote %s, and no puller is available", ErrInvalid, refspec, remote)
		}
		var from objects.Checksum
		if !o.AllowDowngrade {
			from = merge.Checksum
		}
		if err := o.Puller.Pull(ctx, s.repo, remote, ref, from); err != nil {
			return nil, fmt.Errorf("pulling %s: %w", refspec, err)
		}
	}
	if override, ok := merge.Origin.Get("origin", "override-commit"); ok && override != "" {
		c, err := objects.ParseChecksum(override)
		if err != nil {
			return nil, fmt.Errorf("%w: origin override-commit %q", ErrInvalid, override)
		}
		res.To = c
	} else {
		c, err := s.repo.ResolveRev(refspec)
		if err != nil {
			return nil, err
		}
		res.To = c
	}
	if res.To == res.From {
		return res, nil
	}
	res.Changed = true
	if !o.AllowDowngrade {
		if err := s.checkTimestamps(res.From, res.To); err != nil {
			return nil, err
		}
	}
	if o.PullOnly {
		return res, nil
	}
	dr, err := s.Deploy(ctx, DeployOptions{
		OS: osname, Revision: res.To.String(), Origin: removeTransient(merge.Origin), Stage: o.Stage,
	})
	if err != nil {
		return nil, err
	}
	res.Deploy = dr
	return res, nil
}

// checkTimestamps refuses going from a commit to an older one, with
// ostree's message.
func (s *Sysroot) checkTimestamps(from, to objects.Checksum) error {
	a, err := s.repo.ReadCommit(from)
	if err != nil {
		return err
	}
	b, err := s.repo.ReadCommit(to)
	if err != nil {
		return err
	}
	if b.Timestamp > a.Timestamp || b.Timestamp == a.Timestamp {
		return nil
	}
	return fmt.Errorf("%w: upgrade target revision '%s' with timestamp '%s' is chronologically older than current revision '%s' with timestamp '%s'; use --allow-downgrade to permit",
		ErrDowngrade, to, formatTimestamp(b.Timestamp), from, formatTimestamp(a.Timestamp))
}

// formatTimestamp renders Unix seconds as GLib's "%c" does in the C
// locale, in UTC.
func formatTimestamp(ts uint64) string {
	return time.Unix(int64(ts), 0).UTC().Format("Mon Jan _2 15:04:05 2006")
}
