package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/diff"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// reproSpec is small: minbase plus dbus (whose maintainer script
// allocates a system user), a file, a user and a unit.
const reproSpec = `[os]
name = "repro"
version = "1"

[base]
suite = "bookworm"
variant = "minbase"
packages = ["dbus", "less"]

[[files]]
path = "/etc/motd"
content = "reproducible\n"

[[groups]]
name = "app"
gid = 990

[[users]]
name = "app"
uid = 990
group = "app"
home = "/var/lib/app"

[kernel]
args = ["quiet"]
`

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), ".."))
}

func testCache(t *testing.T) string {
	c := os.Getenv("STRATA_CACHE")
	if c == "" {
		c = filepath.Join(moduleRoot(), ".cache")
	}
	if err := os.MkdirAll(c, 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

func buildStatic(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/strata")
	cmd.Dir = moduleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var commitRe = regexp.MustCompile(`commit ([0-9a-f]{64})`)

// TestReproducibleBuild builds the same spec twice from its lock, in
// different directories, with a different host name (unshare --uts),
// umask, time zone and start time, and wants the same commit checksum; on
// a mismatch it names the differing paths.
func TestReproducibleBuild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	cache := testCache(t)
	bin := buildStatic(t)
	// The lock is kept in the cache between runs (the .debs are there
	// too); it is made again when the spec changed or the mirror dropped
	// a locked version.
	lockDir := filepath.Join(cache, "repro-test")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(lockDir, "repro.toml")
	if err := os.WriteFile(specPath, []byte(reproSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSpec(specPath)
	if err != nil {
		t.Fatal(err)
	}
	relock := func() {
		t.Helper()
		out, err := exec.CommandContext(ctx, bin, "compose", "lock", specPath, "--cache="+cache).CombinedOutput()
		if err != nil {
			t.Fatalf("compose lock: %v\n%s", err, out)
		}
	}
	if l, err := ReadLock(LockPath(specPath)); errors.Is(err, errdefs.ErrNotFound) || (err == nil && l.Base != s.BaseDigest()) {
		relock()
	} else if err != nil {
		t.Fatal(err)
	}
	lock, err := os.ReadFile(LockPath(specPath))
	if err != nil {
		t.Fatal(err)
	}
	type env struct{ host, umask, tz string }
	envs := []env{{"builder-one", "022", "UTC"}, {"another-host.example", "077", "Pacific/Auckland"}}
	// The two builds run at once (each on its own directories, host name,
	// umask and time zone), the second started two seconds later.
	sums := make([]string, len(envs))
	repos := make([]string, len(envs))
	errs := make([]string, len(envs))
	var wg sync.WaitGroup
	for i, e := range envs {
		dir := filepath.Join(t.TempDir(), "b"+strings.Repeat("x", i*7))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		sp := filepath.Join(dir, "repro.toml")
		if err := os.WriteFile(sp, []byte(reproSpec), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(LockPath(sp), lock, 0o644); err != nil {
			t.Fatal(err)
		}
		rp := filepath.Join(dir, "repo")
		if _, err := repo.Init(rp, repo.ModeBare, repo.InitOptions{}); err != nil {
			t.Fatal(err)
		}
		repos[i] = rp
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 2 * time.Second)
			cmd := exec.CommandContext(ctx, "unshare", "--uts", "sh", "-c", `hostname "$H" && umask "$U" && exec "$@"`, "sh",
				bin, "compose", "build", sp, "--repo="+rp, "--cache="+cache, "--no-base-cache")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "H="+e.host, "U="+e.umask, "TZ="+e.tz, "LANG=de_DE.UTF-8")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				errs[i] = fmt.Sprintf("build %d: %v\n%s", i, err, out)
				return
			}
			m := commitRe.FindStringSubmatch(string(out))
			if m == nil {
				errs[i] = fmt.Sprintf("build %d: no commit in %q", i, out)
				return
			}
			t.Logf("build %d (host %s, umask %s, TZ %s) in %s: %s", i, e.host, e.umask, e.tz, time.Since(start).Round(time.Second), strings.TrimSpace(string(out)))
			sums[i] = m[1]
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if strings.Contains(e, "no longer has") {
			relock()
			t.Fatalf("the mirror dropped a locked package; the lock was made again: run the test again\n%s", e)
		}
		if e != "" {
			t.Fatal(e)
		}
	}
	if sums[0] == sums[1] {
		return
	}
	// Name the differing paths.
	out, err := exec.Command(bin, "pull-local", "--repo="+repos[0], repos[1], "repro").CombinedOutput()
	if err != nil {
		t.Fatalf("builds differ (%s, %s); pull-local to compare: %v\n%s", sums[0], sums[1], err, out)
	}
	r, err := repo.Open(repos[0])
	if err != nil {
		t.Fatal(err)
	}
	a, _ := objects.ParseChecksum(sums[0])
	b, _ := objects.ParseChecksum(sums[1])
	changes, err := diff.Commits(ctx, r, a, b)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range changes {
		paths = append(paths, fmt.Sprintf("%v %s", c.Kind, c.Path))
	}
	t.Fatalf("the same spec and lock gave %s and %s; differing paths:\n%s", sums[0], sums[1], strings.Join(paths, "\n"))
}
