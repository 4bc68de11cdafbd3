package compose

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/pull"
	"github.com/strata-os/strata/repo"
)

// layerBaseSpec is the smallest Debian base: minbase, nothing else. Its
// lock is kept in the cache (as the reproducibility test's), its tree in
// the base cache (the installed "strata" is busybox, so the key holds
// across source changes).
const layerBaseSpec = `[os]
name = "layerbase"
version = "1"

[base]
suite = "bookworm"
variant = "minbase"
`

// layerSpec adds less (a plain package), uuid-runtime (whose maintainer
// script allocates the system user uuidd with the base's adduser) and bc
// (which needs libreadline8 and readline-common, not in minbase: its
// dependencies resolved on top) to the base's ref.
const layerSpec = `[os]
name = "layered"
version = "2"

[base]
ref = "layerbase"
packages = ["less", "uuid-runtime", "bc"]

[[files]]
path = "/etc/motd"
content = "layered\n"
`

// layerBase builds the minbase base into a new repository and returns it.
func layerBase(t *testing.T, ctx context.Context, cache string) *repo.Repo {
	t.Helper()
	dir := filepath.Join(cache, "layer-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sp := filepath.Join(dir, "layerbase.toml")
	if err := os.WriteFile(sp, []byte(layerBaseSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSpec(sp)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(ctx, s, Options{Repo: r, CacheDir: cache, StrataBinary: "/bin/busybox"})
	if err != nil && strings.Contains(err.Error(), "no longer has") {
		// The mirror dropped a locked version: lock again.
		_ = os.Remove(LockPath(sp))
		res, err = Build(ctx, s, Options{Repo: r, CacheDir: cache, StrataBinary: "/bin/busybox"})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("base: %s", res.Summary())
	return r
}

// TestLayeredPackages: packages on a [base] ref are resolved against the
// base's dpkg database (what the base has is not installed again, what
// it lacks is), locked by sha256, installed by dpkg on top of the base's
// tree, and laid out as any build: the result lists them in the moved
// dpkg database and has their files; the same base, spec and lock give
// the same commit in two directories and repositories; a uid a package
// allocates that moved from the previous commit fails the build; a
// locked .deb that is corrupt in the cache and on the mirror is refused
// with nothing published.
func TestLayeredPackages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cache := testCache(t)
	ra := layerBase(t, ctx, cache)
	ca, _ := ra.ReadRef("heads/layerbase")
	// The second repository gets the same base commit.
	rb, err := repo.Init(filepath.Join(t.TempDir(), "repo-b"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pull.Pull(ctx, rb, pull.NewLocalSource(ra), pull.Options{Refs: []string{"layerbase"}}); err != nil {
		t.Fatal(err)
	}

	// compose lock: against the base's tree and the mirror.
	dirA := t.TempDir()
	specA := filepath.Join(dirA, "layered.toml")
	if err := os.WriteFile(specA, []byte(layerSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSpec(specA)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := LockSpec(ctx, s, Options{Repo: ra, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]LockPackage{}
	for _, p := range lock.Packages {
		names[p.Name] = p
	}
	if len(names) != 5 || names["less"].SHA256 == "" || names["uuid-runtime"].SHA256 == "" || names["bc"].SHA256 == "" ||
		names["libreadline8"].SHA256 == "" || names["readline-common"].SHA256 == "" {
		t.Fatalf("lock %+v: want less, uuid-runtime, bc, and libreadline8 and readline-common (not in minbase)", lock.Packages)
	}
	for _, inBase := range []string{"libc6", "dpkg", "base-files", "libuuid1", "adduser", "libtinfo6"} {
		if _, ok := names[inBase]; ok {
			t.Errorf("%s is in the base, and in the lock", inBase)
		}
	}
	if lock.BaseCommit != ca.String() || lock.Suite != "bookworm" {
		t.Errorf("lock base-commit %s suite %s, want %s bookworm", lock.BaseCommit, lock.Suite, ca)
	}

	// Two builds, two directories, two repositories: one commit.
	lockBytes, err := os.ReadFile(LockPath(specA))
	if err != nil {
		t.Fatal(err)
	}
	dirB := filepath.Join(t.TempDir(), "elsewhere", "deeper")
	specB := filepath.Join(dirB, "layered.toml")
	if err := os.MkdirAll(dirB, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(specB, []byte(layerSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(LockPath(specB), lockBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	sb, err := LoadSpec(specB)
	if err != nil {
		t.Fatal(err)
	}
	resA, err := Build(ctx, s, Options{Repo: ra, CacheDir: cache, StrataBinary: "/bin/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	resB, err := Build(ctx, sb, Options{Repo: rb, CacheDir: cache, StrataBinary: "/bin/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("layered: %s", resA.Summary())
	if resA.LockWritten || resB.LockWritten {
		t.Error("a build with a lock wrote one")
	}
	if resA.Commit != resB.Commit {
		t.Fatalf("same base, spec and lock gave %s and %s", resA.Commit, resB.Commit)
	}

	// The result: dpkg sees the packages in the moved database, their
	// files are there, the system user exists, no build leftovers.
	co := filepath.Join(t.TempDir(), "co")
	if err := checkoutForTest(ra, resA.Commit, co); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(co, dpkgDB), "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n", "less", "uuid-runtime", "bc", "libreadline8", "adduser").CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-query: %v\n%s", err, out)
	}
	for _, n := range []string{"less", "uuid-runtime", "bc", "libreadline8"} {
		if !strings.Contains(string(out), fmt.Sprintf("%s %s ii", n, names[n].Version)) {
			t.Errorf("dpkg-query does not list %s %s installed:\n%s", n, names[n].Version, out)
		}
	}
	if !regexp.MustCompile(`(?m)^adduser \S+ ii`).Match(out) {
		t.Errorf("the base's adduser is not installed:\n%s", out)
	}
	for _, p := range []string{"usr/bin/less", "usr/sbin/uuidd", "usr/bin/bc", "usr/etc/motd"} {
		if st, err := os.Lstat(filepath.Join(co, p)); err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s: %v", p, err)
		}
	}
	pw, _ := os.ReadFile(filepath.Join(co, "usr/etc/passwd"))
	if !strings.Contains(string(pw), "\nuuidd:") {
		t.Errorf("no uuidd user in /usr/etc/passwd:\n%s", pw)
	}
	for _, p := range []string{"usr/sbin/policy-rc.d", "etc", "var/lib/dpkg", "dev/null"} {
		if _, err := os.Lstat(filepath.Join(co, p)); !os.IsNotExist(err) {
			t.Errorf("%s is in the result (%v)", p, err)
		}
	}

	// A uid that a package allocates moved from the previous commit of
	// the branch: refused, naming it.
	pinned := layerSpec + "\n[ids]\nusers = { uuidd = 995 }\ngroups = { uuidd = 995 }\n"
	if err := os.WriteFile(specA, []byte(pinned), 0o644); err != nil {
		t.Fatal(err)
	}
	sp, err := LoadSpec(specA)
	if err != nil {
		t.Fatal(err)
	}
	before := countCommits(t, ra)
	_, err = Build(ctx, sp, Options{Repo: ra, CacheDir: cache, StrataBinary: "/bin/busybox"})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "user uuidd has uid 995") || !strings.Contains(err.Error(), "[ids]") {
		t.Fatalf("moved uid: %v", err)
	}
	if n := countCommits(t, ra); n != before {
		t.Errorf("%d commits after the refused build, %d before", n, before)
	}

	// A locked .deb corrupt in the cache, and the mirror serves another:
	// refused, naming the package; nothing published.
	var served []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		served = append(served, req.URL.Path)
		fmt.Fprint(w, "a tampered package\n")
	}))
	defer srv.Close()
	dirC := t.TempDir()
	specC := filepath.Join(dirC, "layered.toml")
	if err := os.WriteFile(specC, []byte(strings.Replace(layerSpec, "[base]\n", fmt.Sprintf("[base]\nmirror = %q\n", srv.URL+"/debian"), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(LockPath(specC), lockBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := LoadSpec(specC)
	if err != nil {
		t.Fatal(err)
	}
	cacheC := t.TempDir()
	for _, p := range lock.Packages {
		data, err := os.ReadFile(Cache{Dir: cache}.debPath(p.SHA256))
		if err != nil {
			t.Fatal(err)
		}
		if p.Name == "less" {
			data[len(data)/2] ^= 0xff
		}
		if err := writeFileMode(Cache{Dir: cacheC}.debPath(p.SHA256), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var warned []string
	before = countCommits(t, ra)
	_, err = Build(ctx, sc, Options{Repo: ra, Branch: "corrupt", CacheDir: cacheC, StrataBinary: "/bin/busybox",
		Warner: progress.WarnFunc(func(err error) { warned = append(warned, err.Error()) })})
	less := names["less"]
	if !errors.Is(err, errdefs.ErrCorrupt) || !strings.Contains(err.Error(), "package less "+less.Version) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("corrupt less: err %v, want one line naming package less and corrupt", err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "less "+less.Version) {
		t.Errorf("warnings %q, want the corrupt cached copy of less", warned)
	}
	if len(served) != 1 || served[0] != "/debian/"+less.Filename {
		t.Errorf("mirror asked for %v", served)
	}
	checkNothingPublished(t, ra, "corrupt", cacheC, before)

	// The ref moved since the lock: refused until `compose lock`.
	if err := os.WriteFile(specB, []byte(strings.Replace(layerSpec, `ref = "layerbase"`, `ref = "layered"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if sb, err = LoadSpec(specB); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(ctx, sb, Options{Repo: rb, Branch: "moved", CacheDir: cache, StrataBinary: "/bin/busybox"}); !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "strata compose lock") {
		t.Errorf("lock of another base: %v", err)
	}
}

// TestLayeredPackagesImageBase: packages on a [base] image (the minbase
// base exported as an encapsulated image): the first build resolves them
// against the image's dpkg database and writes a lock that pins the
// image's digest and the .debs; a build from that lock gives the same
// commit; the result lists the package in its dpkg database.
func TestLayeredPackagesImageBase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cache := testCache(t)
	r := layerBase(t, ctx, cache)
	base, err := r.ReadRef("heads/layerbase")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img, err := container.ParseImageRef("oci:" + filepath.Join(dir, "img") + ":1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := container.Encapsulate(ctx, r, base, img, container.EncapsulateOptions{}); err != nil {
		t.Fatal(err)
	}
	spec := "[os]\nname = \"imglayer\"\nversion = \"2\"\n\n[base]\nimage = \"oci:img:1\"\npackages = [\"less\"]\n"
	sp := filepath.Join(dir, "imglayer.toml")
	if err := os.WriteFile(sp, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSpec(sp)
	if err != nil {
		t.Fatal(err)
	}
	var sums []string
	for i := 0; i < 2; i++ {
		res, err := Build(ctx, s, Options{Repo: r, CacheDir: cache, StrataBinary: "/bin/busybox", NoBaseCache: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.LockWritten != (i == 0) {
			t.Errorf("build %d: lock written %v", i, res.LockWritten)
		}
		sums = append(sums, res.Commit.String())
		if i > 0 {
			continue
		}
		l, err := ReadLock(LockPath(sp))
		if err != nil {
			t.Fatal(err)
		}
		if l.Image != res.BaseImageDigest || len(l.Packages) != 1 || l.Packages[0].Name != "less" || l.BaseCommit != "" {
			t.Fatalf("lock: image %s (built from %s), packages %+v, base-commit %q", l.Image, res.BaseImageDigest, l.Packages, l.BaseCommit)
		}
		co := filepath.Join(t.TempDir(), "co")
		if err := checkoutForTest(r, res.Commit, co); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(co, dpkgDB), "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n", "less").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "less "+l.Packages[0].Version+" ii") {
			t.Errorf("dpkg-query less: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(co, "usr/bin/less")); err != nil {
			t.Error(err)
		}
	}
	if sums[0] != sums[1] {
		t.Errorf("the resolving build gave %s, the build from its lock %s", sums[0], sums[1])
	}
	// compose lock resolves the same: the image and the package.
	before, err := ReadLock(LockPath(sp))
	if err != nil {
		t.Fatal(err)
	}
	l, err := LockSpec(ctx, s, Options{CacheDir: cache, NoBaseCache: true})
	if err != nil {
		t.Fatal(err)
	}
	if l.Image != before.Image || fmt.Sprint(l.Packages) != fmt.Sprint(before.Packages) || l.Base != before.Base {
		t.Errorf("compose lock: %+v, the build's lock %+v", l, before)
	}
}

// TestHostileLayeredBase: a ref base whose /usr/share/doc is a symlink to
// a directory of the build machine (absolute) and whose /usr/share/man
// leads there through enough "..". dpkg follows a symlink to a directory
// where a package has a directory: run on the build machine with --root,
// it would unpack less's files into that outside directory. In the
// chroot of the tree the links resolve inside it, where they lead
// nowhere: the outside is untouched, the build fails, and no ref or
// commit is published.
func TestHostileLayeredBase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cache := testCache(t)
	r := layerBase(t, ctx, cache)
	good, err := r.ReadRef("heads/layerbase")
	if err != nil {
		t.Fatal(err)
	}
	outside, check := outsideSentinel(t)
	base := filepath.Join(t.TempDir(), "base")
	if err := checkoutForTest(r, good, base); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"usr/share/doc": outside,
		"usr/share/man": strings.Repeat("../", 25) + strings.TrimPrefix(outside, "/"),
	} {
		if err := os.RemoveAll(filepath.Join(base, link)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := ParseSpec(filepath.Join(t.TempDir(), "base.toml"), []byte(layerBaseSpec))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := commitTree(ctx, fs, &Options{Repo: r}, "evil-base", base, 1700000000, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sp := filepath.Join(dir, "evil.toml")
	if err := os.WriteFile(sp, []byte("[os]\nname = \"evil\"\n\n[base]\nref = \"evil-base\"\npackages = [\"less\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSpec(sp)
	if err != nil {
		t.Fatal(err)
	}
	buildCache := t.TempDir()
	// The package cache is shared: less is in it from the other tests.
	if err := os.Symlink(filepath.Join(cache, "debs"), filepath.Join(buildCache, "debs")); err != nil {
		t.Fatal(err)
	}
	commits := countCommits(t, r)
	_, err = Build(ctx, s, Options{Repo: r, CacheDir: buildCache, StrataBinary: "/bin/busybox"})
	check()
	if err == nil || !strings.Contains(err.Error(), "installing the locked packages") {
		t.Fatalf("err %v, want the install to fail", err)
	}
	checkNothingPublished(t, r, "evil", buildCache, commits)
}

// TestParsePrintURIs: apt's --print-uris lines become lock entries pinned
// by the index's sha256 (apt prints another hash), an epoch's %3a
// decoded; a package in no index or a malformed line is an error.
func TestParsePrintURIs(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	index := map[pkgKey]map[string]string{
		{"less", "590-2", "amd64"}:      {"SHA256": sha, "Size": "132044", "Filename": "pool/main/l/less/less_590-2_amd64.deb", "Priority": "important"},
		{"bsdutils", "1:2.38", "amd64"}: {"SHA256": sha, "Size": "10", "Filename": "pool/main/u/util-linux/bsdutils_2.38_amd64.deb"},
	}
	out := "'http://m/debian/pool/main/l/less/less_590-2_amd64.deb' less_590-2_amd64.deb 132044 MD5Sum:b6531e76cbda0d6af2dcea833040beb6\n" +
		"'http://m/debian/pool/main/u/util-linux/bsdutils_2.38_amd64.deb' bsdutils_1%3a2.38_amd64.deb 10 MD5Sum:00\n"
	pkgs, err := parsePrintURIs([]byte(out), index)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 || pkgs[0].Name != "bsdutils" || pkgs[0].Version != "1:2.38" || pkgs[1].SHA256 != sha || pkgs[1].Size != 132044 ||
		pkgs[1].Filename != "pool/main/l/less/less_590-2_amd64.deb" || pkgs[1].Priority != "important" {
		t.Fatalf("%+v", pkgs)
	}
	for _, bad := range []string{
		"'http://m/x.deb' other_1_amd64.deb 1 MD5Sum:00\n",
		"'http://m/x.deb' less_590-2_amd64.deb\n",
		"less_590-2_amd64.deb 1 2 3\n",
	} {
		if _, err := parsePrintURIs([]byte(bad), index); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestCheckLayered: after the install, the dpkg status must be the base's
// plus exactly the lock.
func TestCheckLayered(t *testing.T) {
	st := func(pkgs ...string) []byte {
		var b strings.Builder
		for i := 0; i < len(pkgs); i += 2 {
			fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nVersion: %s\n\n", pkgs[i], pkgs[i+1])
		}
		return []byte(b.String())
	}
	base, _ := installedSet(st("libc6", "2.36", "dpkg", "1.21"))
	l := &Lock{Packages: []LockPackage{{Name: "less", Version: "590"}}}
	if err := checkLayered(base, st("libc6", "2.36", "dpkg", "1.21", "less", "590"), l); err != nil {
		t.Fatal(err)
	}
	for name, after := range map[string][]byte{
		"base package removed": st("libc6", "2.36", "less", "590"),
		"other version":        st("libc6", "2.36", "dpkg", "1.21", "less", "591"),
		"not installed":        st("libc6", "2.36", "dpkg", "1.21"),
		"extra":                st("libc6", "2.36", "dpkg", "1.21", "less", "590", "vim", "9"),
		"base upgraded":        st("libc6", "2.37", "dpkg", "1.21", "less", "590"),
	} {
		if err := checkLayered(base, after, l); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
