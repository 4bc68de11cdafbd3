// Command strata is the command-line interface to strata: OSTree-compatible
// plumbing verbs (init, commit, checkout, fsck, ...) and bootc-style
// porcelain. This package parses flags and renders results only; the work
// is done by the library packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/tree"
)

// version is strata's version: set at link time with
// -ldflags "-X main.version=VERSION", else taken from the module's build
// information (a tagged `go install`), else "devel".
var version string

// buildVersion returns the version `strata --version` prints.
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// globals holds the global flags.
var globals struct {
	repo    string
	sysroot string
	verbose bool
}

var rootCmd = &cobra.Command{
	Use:           "strata",
	Short:         "Atomic, image-based OS updates, compatible with OSTree",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func init() {
	rootCmd.PersistentFlags().StringVar(&globals.repo, "repo", "", "path to the repository (default: $OSTREE_REPO, the current directory if it is a repo, or /sysroot/ostree/repo)")
	rootCmd.PersistentFlags().StringVar(&globals.sysroot, "sysroot", "/", "path to the system root")
	rootCmd.PersistentFlags().BoolVarP(&globals.verbose, "verbose", "v", false, "print warnings about best-effort steps that failed (stale temporaries not removed, ...)")
	rootCmd.Version = buildVersion()
	rootCmd.SetVersionTemplate(fmt.Sprintf("strata {{.Version}}\nOSTree repository format %d (repo_version=%d), as ostree writes it\n", repo.FormatVersion, repo.FormatVersion))
}

// newWarner returns the Warner the library's best-effort failures go to:
// with --verbose, one "warning: ..." line on stderr each; otherwise none.
func newWarner(cmd *cobra.Command) progress.Warner {
	if !globals.verbose {
		return progress.NopWarner{}
	}
	w := cmd.ErrOrStderr()
	var mu sync.Mutex
	return progress.WarnFunc(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(w, "warning:", err)
	})
}

// repoPath picks the repository as ostree does: --repo, $OSTREE_REPO, the
// current directory when it holds a config, else /sysroot/ostree/repo.
func repoPath() string {
	if globals.repo != "" {
		return globals.repo
	}
	if p := os.Getenv("OSTREE_REPO"); p != "" {
		return p
	}
	if _, err := os.Stat("config"); err == nil {
		if _, err := os.Stat("objects"); err == nil {
			return "."
		}
	}
	return "/sysroot/ostree/repo"
}

// openRepo opens the repository named by the global flags.
func openRepo() (*repo.Repo, error) {
	return repo.Open(repoPath())
}

// openRev opens the repository named by the global flags and resolves
// rev in it.
func openRev(rev string) (*repo.Repo, objects.Checksum, error) {
	r, err := openRepo()
	if err != nil {
		return nil, objects.Checksum{}, err
	}
	c, err := r.ResolveRev(rev)
	if err != nil {
		return nil, objects.Checksum{}, err
	}
	return r, c, nil
}

// openRevTree opens the repository named by the global flags and the tree
// of the commit rev names, for the verbs that read paths of a commit.
func openRevTree(rev string) (*repo.Repo, tree.Tree, error) {
	r, c, err := openRev(rev)
	if err != nil {
		return nil, tree.Tree{}, err
	}
	root, err := tree.Commit(r, c)
	return r, root, err
}

func main() {
	// STRATA_CPUPROFILE=FILE writes a CPU profile, for performance work.
	if p := os.Getenv("STRATA_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := rootCmd.ExecuteContext(ctx)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "error: interrupted")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// isNotFound reports a missing ref, commit, object or path.
func isNotFound(err error) bool { return errors.Is(err, repo.ErrNotFound) }
