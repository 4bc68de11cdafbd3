package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// An op is one benchmarked operation: both binaries run it with the same
// arguments against the same input.
//
// To add an operation, append to ops. Prepare does the untimed set-up of one
// run and returns the command to time; Setup does set-up shared by every run
// of the op on one tree (start a server, ...); set-up shared by several ops
// of a tree lives in env (env.osRepo, env.server) and is torn down by
// env.close when the tree is done.
type op struct {
	Name string
	Desc string
	// Setup, if set, runs once per tree before the op's first run; the
	// returned teardown runs after its last.
	Setup func(ctx context.Context, e *env) (teardown func(), err error)
	// Prepare readies one run by b (untimed) and returns what to time.
	Prepare func(ctx context.Context, e *env, b binary) (*trial, error)
}

// A trial is one timed command and what to do after it.
type trial struct {
	Args []string // the command's arguments after the binary
	// Result, if set, runs after the last measured run succeeded and returns
	// a token that must be equal for both binaries when they agree (a commit
	// checksum, a digest of a checked-out tree).
	Result func(stdout []byte) (string, error)
	// Counters, if set, runs right after every timed run and returns
	// figures of that run other than its cost (HTTP requests and bytes
	// served); the report gives their medians.
	Counters func() (map[string]int64, error)
	// Cleanup, if set, runs (untimed) when every run of the op is done;
	// see benchOp for why not after each run.
	Cleanup func() error
}

// A binary is one side of the comparison.
type binary struct {
	Name string // "ostree" or "strata"
	Path string
}

var ops = []op{
	{
		Name:    "commit-bare",
		Desc:    "init --mode=bare (untimed), then commit -b bench --tree=dir=TREE into the fresh repo",
		Prepare: commitOp("bare"),
	},
	{
		Name:    "commit-archive",
		Desc:    "init --mode=archive (untimed), then commit -b bench --tree=dir=TREE into the fresh repo",
		Prepare: commitOp("archive"),
	},
	{
		Name: "checkout",
		Desc: "checkout bench DEST from a bare repo made by ostree (hard links as root)",
		Prepare: func(ctx context.Context, e *env, b binary) (*trial, error) {
			repo, err := e.fixture(ctx, "bare")
			if err != nil {
				return nil, err
			}
			dest := e.scratch("checkout-" + b.Name)
			return &trial{
				Args:    []string{"--repo=" + repo, "checkout", "bench", dest},
				Result:  func([]byte) (string, error) { return treeDigest(dest) },
				Cleanup: func() error { return removeTree(dest) },
			}, nil
		},
	},
	{
		Name:    "fsck-bare",
		Desc:    "fsck of a bare repo made by ostree",
		Prepare: fsckOp("bare"),
	},
	{
		Name:    "fsck-archive",
		Desc:    "fsck of an archive repo made by ostree",
		Prepare: fsckOp("archive"),
	},
	{
		Name:    "admin-deploy",
		Desc:    "admin deploy of os tree v1 into a fresh sysroot (init-fs, os-init, pull-local untimed)",
		Prepare: deployOp,
	},
	{
		Name:    "admin-deploy-upgrade",
		Desc:    "admin deploy of v2 on top of a v1 deployment with local /etc changes (three-way /etc merge)",
		Prepare: upgradeOp,
	},
	{
		Name:    "pull-archive",
		Desc:    "pull of os tree v1 from nginx on 127.0.0.1 into a fresh archive repo",
		Prepare: pullOp("archive", false),
	},
	{
		Name:    "pull-bare",
		Desc:    "pull of os tree v1 from nginx on 127.0.0.1 into a fresh bare repo",
		Prepare: pullOp("bare", false),
	},
	{
		Name:    "pull-update-archive",
		Desc:    "pull of v2 from nginx into an archive repo holding v1 (pulled untimed)",
		Prepare: pullOp("archive", true),
	},
	{
		Name:    "pull-update-bare",
		Desc:    "pull of v2 from nginx into a bare repo holding v1 (pulled untimed)",
		Prepare: pullOp("bare", true),
	},
}

func lookupOp(name string) (op, bool) {
	for _, o := range ops {
		if o.Name == name {
			return o, true
		}
	}
	return op{}, false
}

func commitOp(mode string) func(context.Context, *env, binary) (*trial, error) {
	return func(ctx context.Context, e *env, b binary) (*trial, error) {
		repo := e.scratch("repo-" + mode + "-" + b.Name)
		if _, err := run(ctx, b.Path, "--repo="+repo, "init", "--mode="+mode); err != nil {
			_ = removeTree(repo)
			return nil, err
		}
		return &trial{
			Args:    commitArgs(e, repo),
			Result:  commitChecksum,
			Cleanup: func() error { return removeTree(repo) },
		}, nil
	}
}

func commitArgs(e *env, repo string) []string {
	return []string{"--repo=" + repo, "commit", "-b", "bench", "--tree=dir=" + e.tree,
		"-s", "bench", "--timestamp=" + e.cfg.timestamp}
}

// commitChecksum takes the checksum `commit` prints.
func commitChecksum(stdout []byte) (string, error) {
	s := strings.TrimSpace(string(stdout))
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return "", fmt.Errorf("commit printed %q, not a checksum", s)
	}
	return s, nil
}

func fsckOp(mode string) func(context.Context, *env, binary) (*trial, error) {
	return func(ctx context.Context, e *env, b binary) (*trial, error) {
		repo, err := e.fixture(ctx, mode)
		if err != nil {
			return nil, err
		}
		return &trial{
			Args:   []string{"--repo=" + repo, "fsck"},
			Result: func([]byte) (string, error) { return "exit 0", nil },
		}, nil
	}
}

// env is what the ops of one tree share.
type env struct {
	name      string // the tree's name
	cfg       *config
	tree      string // the input tree
	work      string // scratch space for this tree, on the tree's file system
	reference binary // makes fixtures
	fixtures  map[string]string
	n         int

	os      *osTrees           // deployable v1 and v2 trees, made on first use
	osRepos map[string]*osRepo // by mode, made on first use
	srv     *server            // nginx serving the archive osRepo
	closers []func() error     // run by close, last first
}

// close tears down what the tree's ops shared (the server).
func (e *env) close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	e.closers = nil
	return errors.Join(errs...)
}

// scratch returns a fresh path under the work directory that does not exist.
func (e *env) scratch(prefix string) string {
	e.n++
	return filepath.Join(e.work, fmt.Sprintf("%s-%d", prefix, e.n))
}

// fixture returns a repository of the given mode that holds the tree as ref
// bench, committed by the reference binary (ostree) once per tree, so both
// binaries read the same bytes.
func (e *env) fixture(ctx context.Context, mode string) (string, error) {
	if p, ok := e.fixtures[mode]; ok {
		return p, nil
	}
	repo := filepath.Join(e.work, "fixture-"+mode)
	if err := removeTree(repo); err != nil {
		return "", err
	}
	logf("  fixture: %s repo committed by %s", mode, e.reference.Name)
	if _, err := run(ctx, e.reference.Path, "--repo="+repo, "init", "--mode="+mode); err != nil {
		return "", fmt.Errorf("fixture: %w", err)
	}
	if _, err := run(ctx, e.reference.Path, commitArgs(e, repo)...); err != nil {
		return "", fmt.Errorf("fixture: %w", err)
	}
	e.fixtures[mode] = repo
	return repo, nil
}

// treeDigest hashes what a checkout must reproduce: every entry's path,
// type, permission bits, owner, symlink target and file contents, and
// whether a file is hard-linked (so a copying checkout differs from a
// linking one). Timestamps are not part of OSTree's model and are left out.
func treeDigest(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat", p)
		}
		fmt.Fprintf(h, "%q %o %d:%d", rel, uint32(st.Mode), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " -> %q", target)
		case fi.Mode().IsRegular():
			fmt.Fprintf(h, " %d linked=%t ", fi.Size(), st.Nlink > 1)
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
		}
		h.Write([]byte{'\n'})
		return nil
	})
	if err != nil {
		return "", err
	}
	return "tree " + hex.EncodeToString(h.Sum(nil))[:16], nil
}
