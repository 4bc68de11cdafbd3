package sysroot

import (
	"os"
	"path/filepath"
)

// Locate returns the sysroot path to open for path (the --sysroot flag;
// "" is "/", the running system). A booted system (RUN/ostree-booted)
// whose / has no ostree/ (the deployment tree does not link it) is reached
// through /sysroot, the physical root prepare-root mounts there; o.BootDir
// is then set to /boot when that holds the loader.
func Locate(path string, o *Options) string {
	if path == "" {
		path = "/"
	}
	if path != "/" {
		return path
	}
	run := o.RunDir
	if run == "" {
		run = "/run"
	}
	if _, err := os.Stat(filepath.Join(run, "ostree-booted")); err != nil {
		return path
	}
	if _, err := os.Stat("/ostree/deploy"); err == nil {
		return path
	}
	if _, err := os.Stat("/sysroot/ostree/deploy"); err == nil {
		if _, err := os.Lstat("/boot/loader"); err == nil {
			o.BootDir = "/boot"
		}
		return "/sysroot"
	}
	return path
}

// IsBooted reports whether the running system was booted from an OSTree
// deployment (RUN/ostree-booted exists; RUN is o.RunDir, default /run).
func IsBooted(o Options) bool {
	run := o.RunDir
	if run == "" {
		run = "/run"
	}
	_, err := os.Stat(filepath.Join(run, "ostree-booted"))
	return err == nil
}

// Roles returns the pending and rollback deployments as `status` shows
// them: booted, PendingAndRollback of the booted stateroot; not booted, no
// pending one and the rollback target `strata rollback` uses (the second
// deployment of deployment 0's stateroot).
func (s *Sysroot) Roles() (pending, rollback *Deployment) {
	pending, rollback = s.PendingAndRollback("")
	if s.Booted() == nil {
		pending = nil
		if ds := s.Deployments(); len(ds) > 0 {
			_, rollback = s.PendingAndRollback(ds[0].OS)
		}
	}
	return pending, rollback
}
