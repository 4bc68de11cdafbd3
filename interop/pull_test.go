package interop

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoServer serves a repository directory over HTTP on 127.0.0.1 and
// counts the requests by path; delay slows every object request down.
type repoServer struct {
	URL   string
	mu    sync.Mutex
	paths []string
	delay time.Duration
}

func serveRepo(t *testing.T, dir string) *repoServer {
	t.Helper()
	s := &repoServer{}
	fs := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		d := s.delay
		s.mu.Unlock()
		if d > 0 && strings.HasPrefix(r.URL.Path, "/objects/") {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// take returns and forgets the paths requested so far.
func (s *repoServer) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.paths
	s.paths = nil
	return p
}

func countExt(paths []string, ext string) int {
	n := 0
	for _, p := range paths {
		if strings.HasSuffix(p, ext) {
			n++
		}
	}
	return n
}

func ostreeFsck(t *testing.T, repoDir string) {
	t.Helper()
	mustRun(t, "ostree", "fsck", "--repo="+repoDir)
}

// ostreeArchive makes an archive repo with ostree: the fixture tree on
// main (with ostree.sizes), summary updated.
func ostreeArchive(t *testing.T, extra ...string) (dir, rev string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "ostree-archive")
	mustRun(t, "ostree", "init", "--repo="+dir, "--mode=archive")
	args := append([]string{"commit", "--repo=" + dir, "-b", "main", "-s", "ostree made", "--generate-sizes", "--tree=dir=" + fixtureTree(t)}, extra...)
	rev = strings.TrimSpace(mustRun(t, "ostree", args...))
	mustRun(t, "ostree", "summary", "--repo="+dir, "-u")
	return dir, rev
}

func strataRemoteRepo(t *testing.T, mode, url string, addArgs ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "strata-"+mode)
	mustRun(t, strataBin, "init", "--repo="+dir, "--mode="+mode)
	mustRun(t, strataBin, append([]string{"remote", "add", "--repo=" + dir, "origin", url}, addArgs...)...)
	return dir
}

// pullEvents parses `pull --json` output.
func pullEvents(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	ev := map[string]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("pull --json line %q: %v", sc.Text(), err)
		}
		ev[m["event"].(string)] = m
	}
	return ev
}

// TestPullFromOstree: strata pulls an archive repo ostree made, into every
// mode, and ostree fsck accepts the result; the plan knows the bytes from
// ostree.sizes; an update fetches only what changed.
func TestPullFromOstree(t *testing.T) {
	src, rev := ostreeArchive(t)
	srv := serveRepo(t, src)
	for _, mode := range []string{"bare-user", "archive", "bare"} {
		t.Run(mode, func(t *testing.T) {
			dst := strataRemoteRepo(t, mode, srv.URL, "--no-gpg-verify")
			srv.take()
			out := mustRun(t, strataBin, "pull", "--repo="+dst, "--json", "origin", "main")
			ev := pullEvents(t, out)
			plan, done := ev["plan"], ev["done"]
			if plan == nil || done == nil {
				t.Fatalf("pull --json printed no plan or done line:\n%s", out)
			}
			if _, ok := plan["content_bytes"]; !ok {
				t.Errorf("plan without content_bytes although the commit has ostree.sizes: %v", plan)
			}
			if got := strings.TrimSpace(mustRun(t, "ostree", "rev-parse", "--repo="+dst, "origin:main")); got != rev {
				t.Errorf("origin:main = %s, want %s", got, rev)
			}
			if n := countExt(srv.take(), ".filez"); float64(n) != plan["content_objects"].(float64) || n == 0 {
				t.Errorf("fetched %d files, plan said %v", n, plan["content_objects"])
			}
			ostreeFsck(t, dst)
			if mode == "archive" && !equalStrings(objectNames(t, dst), objectNames(t, src)) {
				t.Error("archive pull: objects differ from ostree's")
			}
		})
	}
	// An update: one file changed, one added.
	dst := strataRemoteRepo(t, "bare-user", srv.URL, "--no-gpg-verify")
	mustRun(t, strataBin, "pull", "--repo="+dst, "origin", "main")
	ov := t.TempDir()
	os.WriteFile(filepath.Join(ov, "hello.txt"), []byte("changed by the update\n"), 0o644)
	os.MkdirAll(filepath.Join(ov, "usr/lib"), 0o755)
	os.WriteFile(filepath.Join(ov, "usr/lib/added"), []byte("added by the update\n"), 0o644)
	rev2 := strings.TrimSpace(mustRun(t, "ostree", "commit", "--repo="+src, "-b", "main", "-s", "update", "--generate-sizes", "--tree=ref=main", "--tree=dir="+ov))
	mustRun(t, "ostree", "summary", "--repo="+src, "-u")
	srv.take()
	out := mustRun(t, strataBin, "pull", "--repo="+dst, "origin", "main")
	reqs := srv.take()
	if n := countExt(reqs, ".filez"); n != 2 {
		t.Errorf("update fetched %d files, want 2 (%s)", n, strings.TrimSpace(out))
	}
	if n := countExt(reqs, ".commit"); n != 1 {
		t.Errorf("update fetched %d commits, want 1", n)
	}
	t.Logf("update: %d requests: %s", len(reqs), strings.TrimSpace(out))
	if got := strings.TrimSpace(mustRun(t, "ostree", "rev-parse", "--repo="+dst, "origin:main")); got != rev2 {
		t.Errorf("after update origin:main = %s, want %s", got, rev2)
	}
	ostreeFsck(t, dst)
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestOstreePullsStrata: ostree pulls strata's archive repo and summary.
func TestOstreePullsStrata(t *testing.T) {
	src := filepath.Join(t.TempDir(), "strata-archive")
	mustRun(t, strataBin, "init", "--repo="+src, "--mode=archive")
	rev := strings.TrimSpace(mustRun(t, strataBin, "commit", "--repo="+src, "-b", "main", "-s", "strata made", "--tree=dir="+fixtureTree(t)))
	mustRun(t, strataBin, "summary", "--repo="+src, "-u")
	srv := serveRepo(t, src)
	for _, mode := range []string{"bare-user", "archive"} {
		dst := filepath.Join(t.TempDir(), "ostree-"+mode)
		mustRun(t, "ostree", "init", "--repo="+dst, "--mode="+mode)
		mustRun(t, "ostree", "remote", "add", "--repo="+dst, "--no-gpg-verify", "origin", srv.URL)
		if refs := mustRun(t, "ostree", "remote", "refs", "--repo="+dst, "origin"); refs != "origin:main\n" {
			t.Errorf("ostree remote refs: %q", refs)
		}
		mustRun(t, "ostree", "pull", "--repo="+dst, "origin", "main")
		if got := strings.TrimSpace(mustRun(t, "ostree", "rev-parse", "--repo="+dst, "origin:main")); got != rev {
			t.Errorf("%s: origin:main = %s, want %s", mode, got, rev)
		}
		ostreeFsck(t, dst)
	}
	// strata's remote verbs read the same config ostree wrote.
	dst := filepath.Join(t.TempDir(), "ostree-config")
	mustRun(t, "ostree", "init", "--repo="+dst, "--mode=archive")
	mustRun(t, "ostree", "remote", "add", "--repo="+dst, "--no-gpg-verify", "origin", srv.URL)
	for _, args := range [][]string{{"remote", "list"}, {"remote", "list", "-u"}, {"remote", "show-url", "origin"}, {"remote", "refs", "origin"}, {"remote", "summary", "origin"}} {
		want := mustRun(t, "ostree", append(args[:1:1], append([]string{"--repo=" + dst}, args[1:]...)...)...)
		got := mustRun(t, strataBin, append(args[:1:1], append([]string{"--repo=" + dst}, args[1:]...)...)...)
		if got != want {
			t.Errorf("%s:\nstrata: %q\nostree: %q", strings.Join(args, " "), got, want)
		}
	}
}

// TestPullRemoteConfigInterop: remotes strata adds are ones ostree reads,
// and the other way round.
func TestPullRemoteConfigInterop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	mustRun(t, strataBin, "init", "--repo="+dir, "--mode=archive")
	mustRun(t, strataBin, "remote", "add", "--repo="+dir, "--no-gpg-verify", "--set=branches=main;", "a", "http://example.com/a")
	mustRun(t, strataBin, "remote", "add", "--repo="+dir, "--if-not-exists", "a", "http://example.com/other")
	mustRun(t, "ostree", "remote", "add", "--repo="+dir, "b", "http://example.com/b")
	if got := mustRun(t, "ostree", "remote", "list", "-u", "--repo="+dir); got != "a  http://example.com/a\nb  http://example.com/b\n" {
		t.Errorf("ostree remote list -u: %q", got)
	}
	if got := mustRun(t, "ostree", "config", "--repo="+dir, "get", `remote "a".gpg-verify`); got != "false\n" {
		t.Errorf("gpg-verify: %q", got)
	}
	mustRun(t, strataBin, "remote", "delete", "--repo="+dir, "b")
	mustRun(t, strataBin, "remote", "delete", "--repo="+dir, "--if-exists", "b")
	if r := execTool(strataBin, "remote", "delete", "--repo="+dir, "b"); r.err == nil {
		t.Error("deleting a missing remote succeeded")
	}
	if got := mustRun(t, "ostree", "remote", "list", "--repo="+dir); got != "a\n" {
		t.Errorf("after delete: %q", got)
	}
}

// TestPullLocalInterop: pull-local from an ostree bare-user repo into a
// strata archive repo, which ostree then checks.
func TestPullLocalInterop(t *testing.T) {
	src := filepath.Join(t.TempDir(), "ostree-bare-user")
	mustRun(t, "ostree", "init", "--repo="+src, "--mode=bare-user")
	rev := strings.TrimSpace(mustRun(t, "ostree", "commit", "--repo="+src, "-b", "main", "-s", "s", "--tree=dir="+fixtureTree(t)))
	dst := filepath.Join(t.TempDir(), "strata-archive")
	mustRun(t, strataBin, "init", "--repo="+dst, "--mode=archive")
	out := mustRun(t, strataBin, "pull-local", "--repo="+dst, src)
	if !strings.Contains(out, "content objects imported") {
		t.Errorf("pull-local said %q", out)
	}
	if got := strings.TrimSpace(mustRun(t, "ostree", "rev-parse", "--repo="+dst, "main")); got != rev {
		t.Errorf("main = %s, want %s", got, rev)
	}
	ostreeFsck(t, dst)
	mustRun(t, strataBin, "pull-local", "--repo="+dst, "--remote=o", src, "main")
	if got := strings.TrimSpace(mustRun(t, "ostree", "rev-parse", "--repo="+dst, "o:main")); got != rev {
		t.Errorf("o:main = %s, want %s", got, rev)
	}
}

// gpgHome makes a GnuPG home with two signing keys and returns it with
// the keys' fingerprints.
func gpgHome(t *testing.T) (home, good, other string) {
	t.Helper()
	home, err := os.MkdirTemp("", "strata-pull-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	os.Chmod(home, 0o700)
	gen := func(uid string) string {
		gpg(t, home, "--quick-gen-key", uid, "ed25519", "sign", "never")
		for _, l := range strings.Split(gpg(t, home, "--with-colons", "--list-keys", uid), "\n") {
			if f := strings.Split(l, ":"); f[0] == "fpr" && len(f) > 9 {
				return f[9]
			}
		}
		t.Fatalf("no fingerprint for %s", uid)
		return ""
	}
	return home, gen("Pull Good <good@example.com>"), gen("Pull Other <other@example.com>")
}

func gpg(t *testing.T, home string, args ...string) string {
	t.Helper()
	cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("gpg %s: %v %s", strings.Join(args, " "), err, msg)
	}
	return string(out)
}

// TestPullGPGSignedFromOstree: ostree signs commits and the summary with
// GnuPG; strata verifies them with keys imported by remote add
// --gpg-import and remote gpg-import, and refuses an unsigned commit (even
// under a signed summary) and a commit signed by an untrusted key.
func TestPullGPGSignedFromOstree(t *testing.T) {
	home, good, other := gpgHome(t)
	pubGood := filepath.Join(home, "good.gpg")
	os.WriteFile(pubGood, []byte(gpg(t, home, "--export", good)), 0o644)
	src := filepath.Join(t.TempDir(), "signed")
	mustRun(t, "ostree", "init", "--repo="+src, "--mode=archive")
	commit := func(branch, key string) string {
		args := []string{"commit", "--repo=" + src, "-b", branch, "-s", branch, "--tree=dir=" + fixtureTree(t)}
		if key != "" {
			args = append(args, "--gpg-sign="+key, "--gpg-homedir="+home)
		}
		return strings.TrimSpace(mustRun(t, "ostree", args...))
	}
	signed := commit("signed", good)
	commit("unsigned", "")
	commit("other", other)
	mustRun(t, "ostree", "summary", "--repo="+src, "-u", "--gpg-sign="+good, "--gpg-homedir="+home)
	srv := serveRepo(t, src)

	dst := strataRemoteRepo(t, "bare-user", srv.URL, "--gpg-import="+pubGood, "--set=gpg-verify-summary=true")
	mustRun(t, strataBin, "pull", "--repo="+dst, "origin", "signed")
	if got := strings.TrimSpace(mustRun(t, "ostree", "rev-parse", "--repo="+dst, "origin:signed")); got != signed {
		t.Errorf("origin:signed = %s, want %s", got, signed)
	}
	// ostree itself accepts what strata stored, signatures included.
	mustRun(t, "ostree", "fsck", "--repo="+dst)
	mustRun(t, "ostree", "show", "--repo="+dst, "--gpg-verify-remote=origin", "origin:signed")
	for _, ref := range []string{"unsigned", "other"} {
		r := execTool(strataBin, "pull", "--repo="+dst, "origin", ref)
		if r.err == nil {
			t.Errorf("pull of %s succeeded", ref)
		}
		t.Logf("%s refused: %s", ref, strings.TrimSpace(r.errOut))
		if out := execTool("ostree", "rev-parse", "--repo="+dst, "origin:"+ref); out.err == nil {
			t.Errorf("ref origin:%s written", ref)
		}
	}
	// A remote without the key refuses the signed commit too; importing
	// it with remote gpg-import fixes that.
	dst2 := strataRemoteRepo(t, "archive", srv.URL)
	if r := execTool(strataBin, "pull", "--repo="+dst2, "origin", "signed"); r.err == nil {
		t.Error("pull without trusted keys succeeded")
	}
	if out := mustRun(t, strataBin, "remote", "gpg-import", "--repo="+dst2, "origin", "-k", pubGood); out != "Imported 1 GPG key to remote \"origin\"\n" {
		t.Errorf("gpg-import said %q", out)
	}
	mustRun(t, strataBin, "pull", "--repo="+dst2, "origin", "signed")
	ostreeFsck(t, dst2)
	// A summary signed by another key is refused when summaries are
	// verified.
	mustRun(t, "ostree", "summary", "--repo="+src, "-u", "--gpg-sign="+other, "--gpg-homedir="+home)
	if r := execTool(strataBin, "pull", "--repo="+dst, "origin", "signed"); r.err == nil {
		t.Error("pull with a summary signed by an untrusted key succeeded")
	}
}

// TestPullKilledAndResumed: a strata pull killed (SIGKILL) at random
// instants leaves a repository ostree fsck accepts, with the ref unset,
// and the pulls that follow finish the job without fetching again what
// was kept.
func TestPullKilledAndResumed(t *testing.T) {
	tree := t.TempDir()
	for i := range 300 {
		p := filepath.Join(tree, fmt.Sprintf("d%02d/f%03d", i%17, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(fmt.Sprintf("file %d %s\n", i, strings.Repeat("x", i))), 0o644)
	}
	big := make([]byte, 4<<20)
	rand.New(rand.NewSource(1)).Read(big)
	os.WriteFile(filepath.Join(tree, "big"), big, 0o644)
	src := filepath.Join(t.TempDir(), "src")
	mustRun(t, "ostree", "init", "--repo="+src, "--mode=archive")
	rev := strings.TrimSpace(mustRun(t, "ostree", "commit", "--repo="+src, "-b", "main", "-s", "s", "--tree=dir="+tree))
	mustRun(t, "ostree", "summary", "--repo="+src, "-u")
	srv := serveRepo(t, src)
	srv.delay = 25 * time.Millisecond
	dst := strataRemoteRepo(t, "bare-user", srv.URL, "--no-gpg-verify")
	files := 0
	for _, o := range objectNames(t, src) {
		if strings.HasSuffix(o, ".file") {
			files++
		}
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	kills, total := 0, 0
	var last int
	for attempt := 0; ; attempt++ {
		cmd := exec.Command(strataBin, "pull", "--repo="+dst, "--max-fetches=3", "origin", "main")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		killed := false
		if attempt < 5 {
			// Later attempts run longer, past the first batch publish.
			wait := time.Duration(300+attempt*350+rng.Intn(400)) * time.Millisecond
			select {
			case err = <-done:
			case <-time.After(wait):
				// On a loaded machine the first publish (every
				// FlushInterval, after a syncfs) can come later than
				// the wait: the kill must fall after it for the test
				// to say anything about what was kept, so it waits
				// (bounded) for the first published object too.
				deadline := time.Now().Add(20 * time.Second)
				for attempt > 0 && len(objectNames(t, dst)) == 0 && time.Now().Before(deadline) {
					select {
					case err = <-done:
						goto exited
					case <-time.After(50 * time.Millisecond):
					}
				}
				cmd.Process.Signal(syscall.SIGKILL)
				err = <-done
				killed = true
			exited:
			}
		} else {
			err = <-done
		}
		last = countExt(srv.take(), ".filez")
		total += last
		if !killed {
			if err != nil {
				t.Fatalf("pull: %v\n%s", err, out.String())
			}
			break
		}
		kills++
		ostreeFsck(t, dst)
		if r := execTool("ostree", "rev-parse", "--repo="+dst, "origin:main"); r.err == nil {
			if strings.TrimSpace(r.out) != rev {
				t.Fatalf("killed pull left origin:main at %s", r.out)
			}
			continue // killed after the ref moved: the pull was done
		}
		t.Logf("killed pull %d after fetching %d objects; %d objects stored", attempt, last, len(objectNames(t, dst)))
	}
	if got := strings.TrimSpace(mustRun(t, "ostree", "rev-parse", "--repo="+dst, "origin:main")); got != rev {
		t.Fatalf("origin:main = %s, want %s", got, rev)
	}
	ostreeFsck(t, dst)
	t.Logf("%d kills, %d file objects, %d .filez requests in all, %d by the last pull", kills, files, total, last)
	// What the killed pulls verified was kept: the last one fetched only
	// the rest.
	if kills > 0 && last >= files {
		t.Errorf("the final pull fetched %d objects of %d: nothing was kept", last, files)
	}
	if left, _ := os.ReadDir(filepath.Join(dst, "tmp", "cache", "strata-partial")); len(left) != 0 {
		t.Errorf("partial downloads left: %d", len(left))
	}
}
