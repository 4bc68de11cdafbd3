package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// Cleanup removes what the current deployments do not reference, as
// `ostree admin cleanup` does: the inactive boot version's entries and
// link farms, deployment directories no boot entry (or the staged state)
// names, kernel directories in boot/ostree no deployment uses, leftovers
// of interrupted strata deploys; it rewrites the deployment refs
// ostree/BV/SUB/I; and with prune it prunes the repository to the refs
// (depth 0), as ostree does for the system repository.
func (s *Sysroot) Cleanup(ctx context.Context, prune bool) (repo.PruneStats, error) {
	var st repo.PruneStats
	err := s.withLock(ctx, func() error {
		if err := s.prepareCleanup(ctx); err != nil {
			return err
		}
		if prune {
			var err error
			st, err = s.prune(ctx)
			return err
		}
		return nil
	})
	return st, err
}

// prepareCleanup is Cleanup without the prune, under the lock.
func (s *Sysroot) prepareCleanup(ctx context.Context) error {
	s.removeStaleTemps()
	// The ESP first: until it holds the current boot version's entries,
	// the old version's ostree/boot.N links are what its entries name,
	// and removing them first made a power cut in between unbootable
	// (found by TestDebianFinalizePowerCut).
	if err := s.syncLoader(ctx); err != nil {
		return err
	}
	if err := s.cleanupOtherBootversions(); err != nil {
		return fmt.Errorf("cleaning bootversions: %w", err)
	}
	if err := s.cleanupDeployments(ctx); err != nil {
		return fmt.Errorf("cleaning deployments: %w", err)
	}
	if err := s.cleanupBootDirs(); err != nil {
		return fmt.Errorf("cleaning boot directories: %w", err)
	}
	if err := s.regenerateRefs(); err != nil {
		return fmt.Errorf("generating deployment refs: %w", err)
	}
	return nil
}

// removeStaleTemps removes the temporary files (fsutil.TempName) that a
// process killed during a durable write left in the directories the
// sysroot writes: origins in ostree/deploy/$os/deploy, the ostree/boot.N
// symlink in ostree/, deployment refs in refs/heads/ostree/N/M, kernel
// copies in boot/ostree/$os-$bootcsum and the staged state in RUN/ostree.
// Nothing references them; what cannot be removed goes to the Warner
// (housekeeping: nothing stops on it).
func (s *Sysroot) removeStaleTemps() {
	dirs := []string{filepath.Join(s.path, "ostree"), filepath.Dir(s.stagedPath())}
	for _, pattern := range []string{
		filepath.Join(s.path, "ostree/deploy/*/deploy"),
		filepath.Join(s.path, "ostree/repo/refs/heads/ostree/*/*"),
		filepath.Join(s.boot, "ostree/*"),
	} {
		m, _ := filepath.Glob(pattern)
		dirs = append(dirs, m...)
	}
	for _, d := range dirs {
		if err := fsutil.RemoveStaleTemps(d); err != nil {
			s.warn(err)
		}
	}
}

// cleanupOtherBootversions removes boot/loader.OTHER, ostree/boot.OTHER*
// and ostree/boot.BV.OTHERSUB.
func (s *Sysroot) cleanupOtherBootversions() error {
	if err := fsutil.CheckFailpoint("sysroot:cleanup-bootversions"); err != nil {
		return err
	}
	obv, osub := 1-s.bootVersion, 1-s.subBootVersion
	paths := []string{
		filepath.Join(s.boot, fmt.Sprintf("loader.%d", obv)),
		filepath.Join(s.boot, "loader.tmp"),
		filepath.Join(s.path, fmt.Sprintf("ostree/boot.%d", obv)),
		filepath.Join(s.path, fmt.Sprintf("ostree/boot.%d.0", obv)),
		filepath.Join(s.path, fmt.Sprintf("ostree/boot.%d.1", obv)),
		filepath.Join(s.path, fmt.Sprintf("ostree/boot.%d.%d", s.bootVersion, osub)),
	}
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// cleanupDeployments removes every deployment directory (and origin) that
// is not a current deployment, and strata's staging directories.
func (s *Sysroot) cleanupDeployments(ctx context.Context) error {
	if err := fsutil.CheckFailpoint("sysroot:cleanup-deployments"); err != nil {
		return err
	}
	active := map[string]bool{}
	for _, d := range s.deployments {
		active[d.RelPath()] = true
	}
	roots, err := s.Stateroots()
	if err != nil {
		return err
	}
	for _, osname := range roots {
		sr := filepath.Join(s.path, "ostree/deploy", osname)
		ents, err := os.ReadDir(sr)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), stagingPrefix) {
				if err := removeTree(filepath.Join(sr, e.Name())); err != nil {
					return err
				}
			}
		}
		ents, err = os.ReadDir(filepath.Join(sr, "deploy"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			if !e.IsDir() {
				continue
			}
			csum, serial, err := parseDeployName(e.Name())
			if err != nil {
				continue // not ours to judge
			}
			d := &Deployment{OS: osname, Checksum: csum, Serial: serial}
			if active[d.RelPath()] {
				continue
			}
			if err := s.removeDeploymentDir(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeDeploymentDir deletes a deployment's origin and directory, never
// the running root's.
func (s *Sysroot) removeDeploymentDir(d *Deployment) error {
	dir := s.DeploymentPath(d)
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return removeIfExists(s.originPath(d))
		}
		return fmt.Errorf("sysroot: %w", err)
	}
	if s.rootIsBooted && st.Dev == s.rootDev && st.Ino == s.rootIno {
		return nil
	}
	if err := seal(dir, false); err != nil {
		return err
	}
	if err := removeIfExists(s.originPath(d)); err != nil {
		return err
	}
	return removeTree(dir)
}

// removeTree deletes a tree, clearing immutable flags that would stop it.
func removeTree(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	seal(dir, false)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("sysroot: %w", err)
	}
	return nil
}

// cleanupBootDirs removes boot/ostree/$os-$bootcsum directories that no
// deployment uses.
func (s *Sysroot) cleanupBootDirs() error {
	if err := fsutil.CheckFailpoint("sysroot:cleanup-bootdirs"); err != nil {
		return err
	}
	active := map[string]bool{}
	for _, d := range s.deployments {
		active[d.BootChecksum] = true
	}
	dir := filepath.Join(s.boot, "ostree")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		i := strings.LastIndexByte(e.Name(), '-')
		if i < 0 {
			continue
		}
		csum := e.Name()[i+1:]
		if _, err := objects.ParseChecksum(csum); err != nil || strings.ContainsAny(csum, "ABCDEF") {
			continue
		}
		if active[csum] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// regenerateRefs points ostree/BV/SUB/I at each current deployment
// (the staged one included) and deletes the refs of other boot versions.
func (s *Sysroot) regenerateRefs() error {
	if err := s.writeRefs(s.bootVersion, s.subBootVersion, s.deployments); err != nil {
		return err
	}
	if err := fsutil.CheckFailpoint("sysroot:cleanup-refs"); err != nil {
		return err
	}
	refs, err := s.repo.ListRefs()
	if err != nil {
		return err
	}
	keep := fmt.Sprintf("heads/ostree/%d/%d/", s.bootVersion, s.subBootVersion)
	for _, r := range refs {
		if !strings.HasPrefix(r.Path, "heads/ostree/") {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(r.Path, "heads/ostree/"), "/")
		if len(parts) != 3 || (parts[0] != "0" && parts[0] != "1") || (parts[1] != "0" && parts[1] != "1") {
			continue
		}
		stale := !strings.HasPrefix(r.Path, keep)
		if !stale {
			// A ref of the current prefix beyond the current deployments.
			var i int
			if _, err := fmt.Sscanf(parts[2], "%d", &i); err == nil && i >= len(s.deployments) {
				stale = true
			}
		}
		if stale {
			if err := s.repo.SetRef(r.Path, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// prune prunes the repository to its refs, depth 0, as ostree prunes the
// system repository; every deployment has a ref, so none loses objects.
func (s *Sysroot) prune(ctx context.Context) (repo.PruneStats, error) {
	if err := fsutil.CheckFailpoint("sysroot:prune"); err != nil {
		return repo.PruneStats{}, err
	}
	st, err := s.repo.Prune(ctx, repo.PruneOptions{RefsOnly: true, Depth: 0})
	if err != nil {
		return st, fmt.Errorf("pruning system repository: %w", err)
	}
	return st, nil
}
