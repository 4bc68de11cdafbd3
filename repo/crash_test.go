package repo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testtree"
	"github.com/strata-os/strata/objects"
)

// buildStrata builds the strata CLI into dir.
func buildStrata(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "strata")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/strata-os/strata/cmd/strata").CombinedOutput()
	if err != nil {
		t.Fatalf("go build strata: %v\n%s", err, out)
	}
	return bin
}

// TestCrashDuringCommit runs `strata commit` in a child process and
// SIGKILLs it at spread-out random instants. After every kill the
// repository must be consistent: each ref names a commit whose whole tree
// is stored and verifies, no object in objects/ fails verification; and
// the next commit must succeed and leave no staging directory behind.
func TestCrashDuringCommit(t *testing.T) {
	const kills = 15
	work := t.TempDir()
	bin := buildStrata(t, work)
	base := filepath.Join(work, "tree-base")
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	testtree.Build(t, base)
	modes := []string{"bare-user", "archive"}
	repos := map[string]string{}
	commit := func(mode string, n int) *exec.Cmd {
		// Each attempt adds new content so that there is work to be
		// interrupted: a directory of small files and a streamed large
		// file.
		extra := filepath.Join(base, "attempt")
		os.RemoveAll(extra)
		if err := os.MkdirAll(extra, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 60 {
			os.WriteFile(filepath.Join(extra, fmt.Sprintf("f%02d", i)), fmt.Appendf(nil, "%s attempt %d file %d\n", mode, n, i), 0o644)
		}
		big := bytes.Repeat(fmt.Appendf(nil, "%s attempt %d;", mode, n), 600<<10/20)
		os.WriteFile(filepath.Join(extra, "big"), big, 0o644)
		return exec.Command(bin, "--repo="+repos[mode], "commit", "-b", "main", "-s", fmt.Sprintf("attempt %d", n),
			"--add-metadata-string=attempt="+fmt.Sprint(n), "--tree=dir="+base)
	}
	// Time an uninterrupted commit of new content into a repo that already
	// holds the tree, which is what every attempt does.
	full := map[string]time.Duration{}
	for _, mode := range modes {
		repos[mode] = filepath.Join(t.TempDir(), "repo")
		if out, err := exec.Command(bin, "init", "--repo="+repos[mode], "--mode="+mode).CombinedOutput(); err != nil {
			t.Fatalf("init: %v: %s", err, out)
		}
		for n := -2; n <= 0; n++ {
			start := time.Now()
			if out, err := commit(mode, n).CombinedOutput(); err != nil {
				t.Fatalf("commit: %v: %s", err, out)
			}
			if d := time.Since(start); n > -2 && (full[mode] == 0 || d < full[mode]) {
				full[mode] = d // the quicker of two warm commits
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	killed, published, interrupted := 0, 0, 0
	for i := 1; i <= kills; i++ {
		if time.Now().After(deadline) {
			t.Logf("stopping after %d attempts: time budget spent", i-1)
			break
		}
		mode := modes[i%len(modes)]
		// Spread the kills over the whole commit, start-up included.
		delay := time.Duration((float64(i-1) + rand.Float64()) / kills * float64(full[mode]))
		cmd := commit(mode, i)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		err := cmd.Wait()
		if err != nil && !strings.Contains(err.Error(), "killed") {
			t.Errorf("attempt %d failed on its own: %v: %s", i, err, stderr.String())
		}
		if err != nil {
			killed++
		}
		what := fmt.Sprintf("%s: kill %d at %v", mode, i, delay.Round(time.Millisecond))
		r, oerr := Open(repos[mode])
		if oerr != nil {
			t.Fatalf("after %s: %v", what, oerr)
		}
		for _, e := range integrityErrors(r) {
			if strings.Contains(e.Error(), "temporary file left") {
				continue // removed by the next commit, checked below
			}
			t.Errorf("after %s: %v", what, e)
		}
		if c, rerr := r.ResolveRev("main"); rerr != nil {
			t.Errorf("after %s: main: %v", what, rerr)
		} else if cm, err := r.ReadCommit(c); err == nil && cm.Subject == fmt.Sprintf("attempt %d", i) {
			published++
		}
		if len(tmpEntries(t, r)) > 0 {
			interrupted++
		}
		// The next commit succeeds and cleans up.
		if out, err := commit(mode, i).CombinedOutput(); err != nil {
			t.Fatalf("commit after %s: %v: %s", what, err, out)
		}
		for _, e := range integrityErrors(r) {
			t.Errorf("after the commit following %s: %v", what, e)
		}
		if left := tmpEntries(t, r); len(left) != 0 {
			t.Errorf("after the commit following %s: tmp/ holds %v", what, left)
		}
		cm, err := r.ReadCommit(mustResolve(t, r, "main"))
		if err != nil || cm.Subject != fmt.Sprintf("attempt %d", i) {
			t.Errorf("after %s: main is %v, %v", what, cm, err)
		}
	}
	t.Logf("commit times %v; %d of %d attempts killed mid-way, %d of them mid-transaction; %d attempts had moved main", full, killed, kills, interrupted, published)
	if killed < kills/5 {
		t.Errorf("only %d attempts were killed before finishing: the test exercised too little", killed)
	}
	for _, mode := range modes {
		if out, err := exec.Command("ostree", "--repo="+repos[mode], "fsck").CombinedOutput(); err != nil {
			t.Errorf("ostree fsck of the %s repo after the crashes: %v\n%s", mode, err, out)
		}
	}
}

func mustResolve(t *testing.T, r *Repo, rev string) objects.Checksum {
	t.Helper()
	c, err := r.ResolveRev(rev)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
