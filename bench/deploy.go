package main

// admin deploy: each binary deploys into a sysroot it made itself, whose
// repo holds the same objects (pulled by the reference ostree from the
// bare osRepo).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// newSysroot makes a sysroot with b's `admin init-fs` and `admin os-init`,
// sets sysroot.bootloader=none in its repo (no boot loader configuration
// is generated, as in strata's interop tests) and
// sysroot.boot-counting-tries=0 (strata's entries then have ostree's
// names; ostree 2022.7 ignores the key), pulls the bare osRepo's
// commits v1 and v2 into it with the reference ostree (by checksum, hard
// links where it can), and writes local refs bench (v1) and bench-v2 (so
// that the prune after a deploy keeps v2).
func newSysroot(ctx context.Context, e *env, b binary) (string, *osRepo, error) {
	fix, err := e.osRepo(ctx, "bare")
	if err != nil {
		return "", nil, err
	}
	s := e.scratch("sysroot-" + b.Name)
	repo := filepath.Join(s, "ostree", "repo")
	steps := [][]string{
		{b.Path, "admin", "init-fs", s},
		{b.Path, "admin", "os-init", "--sysroot=" + s, benchOS},
		{e.reference.Path, "config", "--repo=" + repo, "set", "sysroot.bootloader", "none"},
		{e.reference.Path, "config", "--repo=" + repo, "set", "sysroot.boot-counting-tries", "0"},
		{e.reference.Path, "--repo=" + repo, "pull-local", fix.path, fix.v1, fix.v2},
	}
	if err := os.MkdirAll(s, 0o755); err != nil {
		return "", nil, err
	}
	for _, st := range steps {
		if _, err := run(ctx, st[0], st[1:]...); err != nil {
			_ = removeSysroot(s)
			return "", nil, err
		}
	}
	for ref, csum := range map[string]string{"bench": fix.v1, "bench-v2": fix.v2} {
		if err := writeRef(repo, ref, csum); err != nil {
			_ = removeSysroot(s)
			return "", nil, err
		}
	}
	return s, fix, nil
}

// deployArgs is the timed command of both deploy ops.
func deployArgs(s string) []string {
	return []string{"admin", "deploy", "--sysroot=" + s, "--os=" + benchOS, "bench"}
}

// deployOp times the first deployment of v1 into a fresh sysroot.
func deployOp(ctx context.Context, e *env, b binary) (*trial, error) {
	s, fix, err := newSysroot(ctx, e, b)
	if err != nil {
		return nil, err
	}
	return &trial{
		Args:    deployArgs(s),
		Result:  func([]byte) (string, error) { return deploymentDigest(s, fix.v1) },
		Cleanup: func() error { return removeSysroot(s) },
	}, nil
}

// upgradeOp deploys v1 (untimed), changes the deployment's /etc the way
// an administrator would (an edit, an addition, a deletion, a mode
// change), moves ref bench to v2 and times the deployment of v2: the new
// deployment's /etc is the three-way merge, v1 stays as the rollback.
func upgradeOp(ctx context.Context, e *env, b binary) (*trial, error) {
	s, fix, err := newSysroot(ctx, e, b)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*trial, error) {
		_ = removeSysroot(s)
		return nil, err
	}
	if _, err := run(ctx, b.Path, deployArgs(s)...); err != nil {
		return fail(err)
	}
	etc := filepath.Join(deploymentDir(s, fix.v1), "etc", "bench")
	if err := localEtcChanges(etc); err != nil {
		return fail(fmt.Errorf("editing %s: %w", etc, err))
	}
	if err := writeRef(filepath.Join(s, "ostree", "repo"), "bench", fix.v2); err != nil {
		return fail(err)
	}
	return &trial{
		Args:    deployArgs(s),
		Result:  func([]byte) (string, error) { return deploymentDigest(s, fix.v2) },
		Cleanup: func() error { return removeSysroot(s) },
	}, nil
}

// localEtcChanges edits a deployment's /etc/bench (made from the
// osTrees' usr/etc/bench) as an administrator would.
func localEtcChanges(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "conf02.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("local = edit\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, "conf03.conf")); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, "conf04.conf"), 0o600); err != nil {
		return err
	}
	return createFile(filepath.Join(dir, "local.conf"), []byte("added = locally\n"), 0o640)
}

// deploymentDir is the directory of the first deployment of csum.
func deploymentDir(s, csum string) string {
	return filepath.Join(s, "ostree", "deploy", benchOS, "deploy", csum+".0")
}

// deploymentDigest digests what both binaries must agree on after a
// deploy: the deployment's tree (with its /etc), its origin file and the
// boot loader entries. An ostree that deploys the same commit the same way
// gives the same digest.
func deploymentDigest(s, csum string) (string, error) {
	dir := deploymentDir(s, csum)
	d, err := treeDigest(dir)
	if err != nil {
		return "", err
	}
	var parts []string
	origin, err := os.ReadFile(dir + ".origin")
	if err != nil {
		return "", err
	}
	parts = append(parts, string(origin))
	entries, err := filepath.Glob(filepath.Join(s, "boot", "loader", "entries", "*.conf"))
	if err != nil {
		return "", err
	}
	sort.Strings(entries)
	for _, p := range entries {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		parts = append(parts, filepath.Base(p)+"\n"+string(b))
	}
	if len(entries) == 0 {
		return "", fmt.Errorf("%s: no boot loader entries", s)
	}
	return d + ", " + shortDigest(strings.Join(parts, "\x00")), nil
}

// shortDigest is a short hex SHA-256 of s, labelled as boot state.
func shortDigest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "boot " + hex.EncodeToString(sum[:])[:16]
}
