package sysroot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/fsutil"
)

// The fault-injection matrix: every operation that changes a sysroot is
// run once with a recording failpoint to learn every durable step it
// passes (the sysroot:* steps and the fsutil write/fsync/rename/syncdir/
// syncfs steps inside them), then once per step on a fresh copy of the
// same prior state with an error injected at that step. After each
// failure the sysroot must boot the old or the new deployment list and
// nothing else (checked from the files, by this package and by the real
// ostree), and re-running the operation must succeed and leave the
// sysroot exactly as an uninterrupted run leaves it.

// faultOp is one operation of the matrix.
type faultOp struct {
	name string
	// prior builds the state before the operation (once, into a template
	// that every case copies).
	prior func(f *fixture)
	// run is the operation, on a Sysroot opened on the case's copy.
	run func(ctx context.Context, f *fixture, s *Sysroot) error
	// idempotent operations are simply run again when the failure already
	// left the new state; the others are finished by a cleanup then, as
	// the next operation would do first.
	idempotent bool
	// check, when set, checks the final state further.
	check func(t *testing.T, f *fixture, s *Sysroot)
}

// faultLocalEtc edits the /etc of deployment d as an administrator would:
// a modified file, an added one, a deleted one.
func faultLocalEtc(f *fixture, s *Sysroot, d *Deployment) {
	f.t.Helper()
	etc := filepath.Join(s.DeploymentPath(d), "etc")
	must(f.t, os.WriteFile(filepath.Join(etc, "hosts"), []byte("10.0.0.1 local\n"), 0o644))
	must(f.t, os.WriteFile(filepath.Join(etc, "local.conf"), []byte("added\n"), 0o600))
	must(f.t, os.Remove(filepath.Join(etc, "ssh/sshd_config")))
}

// faultCheckMergedEtc checks that the default deployment carries the
// local /etc changes of faultLocalEtc and the new defaults otherwise.
func faultCheckMergedEtc(t *testing.T, f *fixture, s *Sysroot) {
	t.Helper()
	etc := filepath.Join(s.DeploymentPath(s.Deployments()[0]), "etc")
	if got := readFile(t, filepath.Join(etc, "hosts")); got != "10.0.0.1 local\n" {
		t.Errorf("/etc merge: hosts %q", got)
	}
	if got := readFile(t, filepath.Join(etc, "local.conf")); got != "added\n" {
		t.Errorf("/etc merge: local.conf %q", got)
	}
	if got := readFile(t, filepath.Join(etc, "motd")); got != "hello 2\n" {
		t.Errorf("/etc merge: motd %q, want the new default", got)
	}
	if lexists(filepath.Join(etc, "ssh/sshd_config")) {
		t.Error("/etc merge: a locally deleted file came back")
	}
}

// faultV1, faultV2: the two deployments most priors start from; v2 has
// another kernel, so it needs its own boot directory.
func faultV1(f *fixture) *Sysroot {
	f.t.Helper()
	f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	f.deploy(s, DeployOptions{Karg: []string{"root=/dev/vda1", "quiet"}})
	faultLocalEtc(f, s, s.Deployments()[0])
	return s
}

func faultV2(f *fixture) { f.commit(treeSpec{version: "2", kernel: "kernel-2\n"}, t0.Add(time.Hour)) }

// faultTwo is [v2, v1].
func faultTwo(f *fixture) *Sysroot {
	f.t.Helper()
	s := faultV1(f)
	faultV2(f)
	f.deploy(s, DeployOptions{})
	return s
}

var faultOps = []faultOp{
	{
		name:  "deploy-first",
		prior: func(f *fixture) { f.commit(treeSpec{version: "1"}, t0) },
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, err := s.Deploy(ctx, DeployOptions{OS: "testos", Revision: "testos/stable", Karg: []string{"root=/dev/vda1"}})
			return err
		},
	},
	{
		name:  "deploy-second",
		prior: func(f *fixture) { faultV1(f); faultV2(f) },
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, err := s.Deploy(ctx, DeployOptions{OS: "testos", Revision: "testos/stable"})
			return err
		},
		check: faultCheckMergedEtc,
	},
	{
		name: "stage-finalize",
		prior: func(f *fixture) {
			s := faultV1(f)
			f.boot(s, s.Deployments()[0])
			faultV2(f)
		},
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			if _, err := s.Deploy(ctx, DeployOptions{Revision: "testos/stable", Stage: true}); err != nil {
				return err
			}
			d, err := s.FinalizeStaged(ctx)
			if err == nil && d == nil {
				err = errors.New("finalize-staged: nothing staged")
			}
			return err
		},
		check: faultCheckMergedEtc,
	},
	{
		name:  "rollback",
		prior: func(f *fixture) { faultTwo(f) },
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, err := s.Rollback(ctx)
			return err
		},
	},
	{
		name:  "undeploy",
		prior: func(f *fixture) { faultTwo(f) },
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, _, err := s.Undeploy(ctx, 1)
			return err
		},
	},
	{
		name: "set-default",
		prior: func(f *fixture) {
			s := faultTwo(f)
			f.commit(treeSpec{version: "3", kernel: "kernel-3\n"}, t0.Add(2*time.Hour))
			f.deploy(s, DeployOptions{Retain: true})
		},
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, err := s.SetDefault(ctx, 2)
			return err
		},
	},
	{
		name:  "kargs",
		prior: func(f *fixture) { faultTwo(f) },
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, err := s.EditKargs(ctx, 0, KargsEdit{Append: []string{"console=ttyS0"}, Replace: []string{"root=/dev/vda2"}, Delete: []string{"quiet"}})
			return err
		},
	},
	{
		name:  "pin",
		prior: func(f *fixture) { faultTwo(f) },
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, err := s.SetPinned(ctx, 1, true)
			return err
		},
		idempotent: true,
	},
	{
		name: "cleanup",
		prior: func(f *fixture) {
			s := faultTwo(f)
			// An interrupted deploy of v3 (ref testos/next, deleted
			// since), stopped just before the switch: a published
			// deployment with its origin, kernel, refs, the inactive
			// loader.N, link farm and loader.tmp; and a staging directory
			// of a killed deploy.
			c3 := commitTree(f.t, f.repo(), buildTree(f.t, treeSpec{version: "3", kernel: "kernel-3\n"}), "testos/next", "3", t0.Add(2*time.Hour))
			setFailpoint(f.t, func(step string) error {
				if step == "sysroot:swap" {
					return errInjected
				}
				return nil
			})
			_, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Revision: "testos/next"})
			fsutil.Failpoint.Store(nil)
			if !errors.Is(err, errInjected) {
				f.t.Fatalf("interrupted deploy: %v", err)
			}
			must(f.t, s.Repo().SetRef("heads/testos/next", nil))
			must(f.t, os.MkdirAll(filepath.Join(f.path, "ostree/deploy/testos", stagingPrefix+c3.String()+".1/usr/etc"), 0o755))
		},
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, err := s.Cleanup(ctx, true)
			return err
		},
		idempotent: true,
	},
}

// faultTemplate is a prior state, copied for every case.
type faultTemplate struct {
	base    string // holds sysroot/, run/ and cmdline
	rootRel string // the booted deployment, relative to base; "" if not booted
}

func newFaultTemplate(t *testing.T, op faultOp) faultTemplate {
	t.Helper()
	f := newFixture(t, -1)
	op.prior(f)
	tp := faultTemplate{base: filepath.Dir(f.path)}
	if f.root != "/" {
		rel, err := filepath.Rel(tp.base, f.root)
		must(t, err)
		tp.rootRel = rel
	}
	return tp
}

// copy makes a fresh sysroot in the template's state (cp -a keeps the
// hard links between the repository and the deployments).
func (tp faultTemplate) copy(t *testing.T) *fixture {
	t.Helper()
	base := faultTempDir(t)
	if out, err := exec.Command("cp", "-a", tp.base+"/.", base).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	f := &fixture{t: t, path: filepath.Join(base, "sysroot"), os: "testos", run: filepath.Join(base, "run"), root: "/", cmd: filepath.Join(base, "cmdline")}
	if tp.rootRel != "" {
		f.root = filepath.Join(base, tp.rootRel)
	}
	t.Cleanup(func() { unsealAll(f.path) })
	return f
}

// faultTempDir returns a new directory for a case's sysroot, removed at
// the end of the test: on the tmpfs /dev/shm when there is one, where
// syncfs and fsync cost nothing (the matrix tests what each step leaves,
// not the disk's durability, and syncfs of a busy shared disk would
// dominate its time), otherwise under t.TempDir.
func faultTempDir(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) != nil || st.Type != unix.TMPFS_MAGIC {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "strata-fault-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() {
		unsealAll(filepath.Join(dir, "sysroot"))
		os.RemoveAll(dir)
	})
	return dir
}

// faultSig describes what boots, in boot order: each non-staged
// deployment's commit, kernel arguments (without ostree=) and pin.
func faultSig(s *Sysroot) string {
	var parts []string
	for _, d := range s.Deployments() {
		if d.Staged {
			continue
		}
		parts = append(parts, fmt.Sprintf("%.10s[%s]pinned=%v", d.Checksum, bootloader.WithoutKarg(d.Options(), "ostree"), d.Pinned()))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}

// faultBootable reads boot/loader and its entries without this package's
// code and checks that every entry boots a complete deployment: ostree=
// names this boot version's link farm, which leads to a deployment
// directory with usr/ and etc/ and an origin file; linux and initrd exist
// under boot/ and are the deployment's kernel and initramfs. It returns
// the deployments ("CSUM.SERIAL") from the highest version (the default)
// down.
func faultBootable(path string) ([]string, error) {
	boot := filepath.Join(path, "boot")
	target, err := os.Readlink(filepath.Join(boot, "loader"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // never deployed
	}
	if err != nil || (target != "loader.0" && target != "loader.1") {
		return nil, fmt.Errorf("boot/loader -> %q: %v", target, err)
	}
	bv := strings.TrimPrefix(target, "loader.")
	ents, err := os.ReadDir(filepath.Join(boot, target, "entries"))
	if err != nil {
		return nil, fmt.Errorf("entries of the live boot version: %v", err)
	}
	type ent struct {
		version int
		name    string
	}
	var out []ent
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".conf") {
			return nil, fmt.Errorf("%s/entries: stray file %s", target, e.Name())
		}
		keys := map[string]string{}
		data, err := os.ReadFile(filepath.Join(boot, target, "entries", e.Name()))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, " "); ok {
				keys[k] = v
			}
		}
		var arg string
		for _, a := range strings.Fields(keys["options"]) {
			if v, ok := strings.CutPrefix(a, "ostree="); ok {
				arg = v
			}
		}
		m := faultBootlinkRe.FindStringSubmatch(arg)
		if m == nil || m[1] != bv {
			return nil, fmt.Errorf("%s: ostree=%q does not name boot version %s's link farm", e.Name(), arg, bv)
		}
		dir, err := filepath.EvalSymlinks(filepath.Join(path, arg))
		if err != nil {
			return nil, fmt.Errorf("%s: ostree=%s: %v", e.Name(), arg, err)
		}
		if filepath.Dir(dir) != filepath.Join(path, "ostree/deploy/testos/deploy") || !deployNameRe.MatchString(filepath.Base(dir)) {
			return nil, fmt.Errorf("%s: ostree=%s leads to %s, not a deployment", e.Name(), arg, dir)
		}
		for _, p := range []string{dir + "/usr/lib/os-release", dir + "/usr/etc", dir + "/etc", dir + ".origin"} {
			if !lexists(p) {
				return nil, fmt.Errorf("%s: incomplete deployment: no %s", e.Name(), p)
			}
		}
		for _, k := range []string{"linux", "initrd"} {
			want := "vmlinuz"
			if k == "initrd" {
				want = "initramfs.img"
			}
			if !strings.HasPrefix(keys[k], "/ostree/testos-"+m[2]+"/") {
				return nil, fmt.Errorf("%s: %s %q is not in boot/ostree/testos-%s", e.Name(), k, keys[k], m[2])
			}
			got, err := os.ReadFile(filepath.Join(boot, keys[k]))
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %v", e.Name(), k, err)
			}
			exp, err := os.ReadFile(filepath.Join(dir, "usr/lib/modules", testKver, want))
			if err != nil {
				return nil, fmt.Errorf("%s: %v", e.Name(), err)
			}
			if string(got) != string(exp) {
				return nil, fmt.Errorf("%s: %s is %q, the deployment's is %q", e.Name(), keys[k], got, exp)
			}
		}
		var v int
		if _, err := fmt.Sscan(keys["version"], &v); err != nil {
			return nil, fmt.Errorf("%s: version %q", e.Name(), keys["version"])
		}
		out = append(out, ent{v, filepath.Base(dir)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version > out[j].version })
	var names []string
	for _, e := range out {
		names = append(names, e.name)
	}
	return names, nil
}

// faultStatus does what status does: load, resolve every deployment's
// commit and the rollback. It returns the boot order of the loaded
// deployments (staged left out).
func faultStatus(t *testing.T, f *fixture) (*Sysroot, []string) {
	t.Helper()
	s, err := Open(f.path, Options{RunDir: f.run, Root: f.root, Cmdline: f.cmd})
	if err != nil {
		t.Fatalf("the sysroot does not load: %v", err)
	}
	var order []string
	for _, d := range s.Deployments() {
		if _, err := s.Repo().ReadCommit(d.Checksum); err != nil {
			t.Fatalf("status: deployment %s: %v", d.Name(), err)
		}
		if d.Origin == nil {
			t.Fatalf("status: deployment %s has no origin", d.Name())
		}
		if !d.Staged {
			order = append(order, d.Name())
		}
	}
	s.PendingAndRollback("testos")
	return s, order
}

// faultConsistent runs every check of an interrupted sysroot and returns
// whether it is in the old or the new state.
// With interop, the real ostree admin status must list the same
// deployments in the same order.
func faultConsistent(t *testing.T, f *fixture, oldSig, newSig string, interop bool) string {
	t.Helper()
	entries, err := faultBootable(f.path)
	if err != nil {
		t.Fatal(err)
	}
	s, order := faultStatus(t, f)
	if strings.Join(entries, ",") != strings.Join(order, ",") {
		t.Fatalf("boot entries %v, loaded deployments %v", entries, order)
	}
	if interop {
		if got := ostreeStatusOrder(t, f.path); got != strings.Join(order, ",") {
			t.Fatalf("ostree admin status lists %q, strata %v", got, order)
		}
	}
	switch sig := faultSig(s); sig {
	case newSig:
		return "new"
	case oldSig:
		return "old"
	default:
		t.Fatalf("the sysroot boots neither the old nor the new deployments:\n got %s\n old %s\n new %s", sig, oldSig, newSig)
	}
	return ""
}

var (
	faultHexRe      = regexp.MustCompile(`[0-9a-f]{64}`)
	faultBootlinkRe = regexp.MustCompile(`^/ostree/boot\.([01])/testos/([0-9a-f]{64})/[0-9]+$`)
	// What may differ from an uninterrupted run without anything being
	// left behind: a deployment's serial (a re-run allocates the next
	// one while an unreferenced directory still holds the first) and the
	// sub-boot version (a leftover ostree/boot.N from the interrupted
	// attempt flips it, as in ostree).
	faultNormalize = []struct {
		re   *regexp.Regexp
		repl string
	}{
		{regexp.MustCompile(`([0-9a-f]{64})\.[0-9]+`), "$1.SERIAL"},
		{regexp.MustCompile(`boot\.([01])\.[01]`), "boot.$1.SUB"},
		{regexp.MustCompile(`refs/heads/ostree/([01])/[01]`), "refs/heads/ostree/$1/SUB"},
	}
)

func faultNorm(s string) string {
	for _, n := range faultNormalize {
		s = n.re.ReplaceAllString(s, n.repl)
	}
	return s
}

// faultListing describes a sysroot copy (sysroot/ and run/) for comparing
// it with the result of an uninterrupted run: every path with its type,
// file contents (hashed) or symlink target; deployment directories and
// repository objects by name only; serials and sub-boot versions
// normalized (faultNormalize). Two paths that normalize alike are both
// kept, so a second link farm or deployment of a commit still shows.
func faultListing(t *testing.T, f *fixture) map[string]string {
	t.Helper()
	base := filepath.Dir(f.path)
	out := map[string]string{}
	add := func(rel, v string) {
		k := rel
		if v != "object" { // object names need no normalizing
			k = faultNorm(rel)
		}
		for out[k] != "" {
			k += "#again"
		}
		out[k] = v
	}
	for _, top := range []string{f.path, f.run} {
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(base, p)
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				add(rel, "-> "+faultNorm(target))
			case d.IsDir() && strings.Contains(rel, "/repo/refs/"):
				// Deleting a ref leaves its directory, as in ostree;
				// only the ref files count.
			case d.IsDir():
				add(rel, "dir")
				if filepath.Base(filepath.Dir(p)) == "deploy" && deployNameRe.MatchString(d.Name()) {
					return filepath.SkipDir // a deployment's tree
				}
			case strings.Contains(rel, "/objects/"):
				add(rel, "object")
			default:
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				add(rel, fmt.Sprintf("%.12x", sha256.Sum256(data)))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// faultListingDiff describes the differences between two listings, ""
// when there are none.
func faultListingDiff(got, want map[string]string) string {
	var diffs []string
	for p, v := range got {
		if w, ok := want[p]; !ok {
			diffs = append(diffs, "left behind: "+p+" "+v)
		} else if w != v {
			diffs = append(diffs, fmt.Sprintf("differs: %s %s, want %s", p, v, w))
		}
	}
	for p, w := range want {
		if _, ok := got[p]; !ok {
			diffs = append(diffs, "missing: "+p+" "+w)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... %d more", len(diffs)-20))
	}
	return strings.Join(diffs, "\n")
}

// faultFsck runs the real ostree fsck on the sysroot's repository.
func faultFsck(t *testing.T, f *fixture) {
	t.Helper()
	out := ostree(t, "fsck", "--repo="+filepath.Join(f.path, "ostree/repo"))
	if strings.Contains(strings.ToLower(out), "corrupt") || strings.Contains(out, "missing") {
		t.Fatalf("ostree fsck:\n%s", out)
	}
}

// faultRecorder is a failpoint that records every step and fails the
// one numbered fail (0-based; -1 for none).
type faultRecorder struct {
	mu    sync.Mutex
	steps []string
	fail  int
	hit   string
}

func (r *faultRecorder) install(t *testing.T) {
	setFailpoint(t, func(step string) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.steps = append(r.steps, step)
		if len(r.steps)-1 == r.fail {
			r.hit = step
			return errInjected
		}
		return nil
	})
}

// faultStepName shortens a recorded step for a subtest name.
func faultStepName(step, base string) string {
	s := strings.ReplaceAll(step, base, "")
	s = faultHexRe.ReplaceAllStringFunc(s, func(h string) string { return h[:6] })
	return strings.NewReplacer("/", "_", ":", "_").Replace(s)
}

// faultCases picks the steps to fail: all of them, except
//   - "write:X" and "fsync:X" followed by "rename:X": inside one
//     fsutil.WriteFile they leave the same thing (the temporary removed,
//     nothing renamed) and return the same error to the same caller as a
//     failure at "rename:X";
//   - the "remove:" steps of a prune other than its first and last object:
//     the order in which a prune deletes objects is the repo package's
//     (and tested there); here it matters only that a prune interrupted
//     at its start or end leaves a bootable sysroot, and that the re-run
//     finishes it.
func faultCases(steps []string) []int {
	var out []int
	kind := func(i int) string {
		if i < 0 || i >= len(steps) {
			return ""
		}
		k, _, _ := strings.Cut(steps[i], ":")
		return k
	}
	for i, st := range steps {
		k, path, _ := strings.Cut(st, ":")
		switch {
		case k == "write" && i+2 < len(steps) && steps[i+2] == "rename:"+path,
			k == "fsync" && i+1 < len(steps) && steps[i+1] == "rename:"+path:
			continue
		case k == "remove" && kind(i-1) == "remove" && kind(i+1) == "remove":
			continue
		}
		out = append(out, i)
	}
	return out
}

// faultInterop reports whether the real ostree checks the state a failure
// at step leaves (ostree admin status and ostree fsck). Running ostree
// after every step would take most of the time, so it runs after the
// failures at the sysroot:* steps (one per phase of every operation) and
// inside a prune (remove:*), where the repository changes; the state after
// every other step is checked by faultBootable and faultStatus, and every
// re-run by comparing its files with the uninterrupted run's, which ostree
// checked.
func faultInterop(step string) bool {
	return strings.HasPrefix(step, "sysroot:") || strings.HasPrefix(step, "remove:")
}

// TestFaultMatrix injects an error at every durable step of every
// operation (see faultOps) and checks what an interruption there leaves.
func TestFaultMatrix(t *testing.T) {
	ctx := context.Background()
	total := 0
	for _, op := range faultOps {
		t.Run(op.name, func(t *testing.T) {
			tp := newFaultTemplate(t, op)
			// The uninterrupted run: its steps, its result.
			ref := tp.copy(t)
			s := ref.open()
			oldSig := faultSig(s)
			rec := &faultRecorder{fail: -1}
			rec.install(t)
			err := op.run(ctx, ref, s)
			fsutil.Failpoint.Store(nil)
			if err != nil {
				t.Fatalf("uninterrupted %s: %v", op.name, err)
			}
			s, _ = faultStatus(t, ref)
			newSig := faultSig(s)
			if newSig == oldSig && op.name != "cleanup" {
				t.Fatalf("uninterrupted %s changed nothing: %s", op.name, newSig)
			}
			faultConsistent(t, ref, oldSig, newSig, true)
			faultFsck(t, ref)
			if op.check != nil {
				op.check(t, ref, s)
			}
			want := faultListing(t, ref)
			steps := rec.steps
			cases := faultCases(steps)
			t.Logf("%s: %d steps, %d cases; old %s; new %s", op.name, len(steps), len(cases), oldSig, newSig)
			total += len(cases)
			for _, i := range cases {
				step := steps[i]
				t.Run(fmt.Sprintf("%03d%s", i, faultStepName(step, filepath.Dir(ref.path))), func(t *testing.T) {
					f := tp.copy(t)
					s := f.open()
					rec := &faultRecorder{fail: i}
					rec.install(t)
					err := op.run(ctx, f, s)
					fsutil.Failpoint.Store(nil)
					if rec.hit == "" {
						t.Fatalf("step %d (%s) not reached this time (%d steps)", i, step, len(rec.steps))
					}
					if !errors.Is(err, errInjected) {
						t.Errorf("a failure at %s: the operation returned %v, not the injected error", rec.hit, err)
					}
					interop := faultInterop(rec.hit)
					state := faultConsistent(t, f, oldSig, newSig, interop)
					if interop {
						faultFsck(t, f)
					}
					// Re-run: the operation itself, or, when the switch
					// happened already, the cleanup that finishes it.
					if state == "old" || op.idempotent {
						err = op.run(ctx, f, f.open())
					} else {
						_, err = f.open().Cleanup(ctx, true)
					}
					if err != nil {
						t.Fatalf("failed at %s (%s state), re-run: %v", rec.hit, state, err)
					}
					if got := faultConsistent(t, f, oldSig, newSig, false); got != "new" {
						t.Fatalf("failed at %s, re-run: the %s state", rec.hit, got)
					}
					s, _ = faultStatus(t, f)
					if op.check != nil {
						op.check(t, f, s)
					}
					// The same files as the uninterrupted run, whose
					// repository ostree fsck accepted.
					if d := faultListingDiff(faultListing(t, f), want); d != "" {
						t.Errorf("failed at %s, re-run: not the sysroot an uninterrupted run leaves:\n%s", rec.hit, d)
					}
				})
			}
		})
	}
	t.Logf("%d cases", total)
}

// TestFaultCheckersDetect: the checks of the matrix fail on sysroots
// that are not bootable or not clean.
func TestFaultCheckersDetect(t *testing.T) {
	tp := newFaultTemplate(t, faultOp{prior: func(f *fixture) { faultTwo(f) }})
	good := tp.copy(t)
	want := faultListing(t, good)
	if _, err := faultBootable(good.path); err != nil {
		t.Fatalf("the good sysroot: %v", err)
	}
	if d := faultListingDiff(faultListing(t, tp.copy(t)), want); d != "" {
		t.Fatalf("two copies differ:\n%s", d)
	}
	// Paths of the default deployment on a copy.
	type paths struct{ dir, kernel, initrd, entry, farm string }
	at := func(f *fixture) paths {
		s := f.open()
		d := s.Deployments()[0]
		bv, sub := s.BootVersion()
		k, _ := filepath.Glob(filepath.Join(f.path, "boot/ostree/testos-"+d.BootChecksum, "vmlinuz-*"))
		i, _ := filepath.Glob(filepath.Join(f.path, "boot/ostree/testos-"+d.BootChecksum, "initramfs-*"))
		if len(k) != 1 || len(i) != 1 {
			t.Fatalf("kernel %v initramfs %v", k, i)
		}
		return paths{
			dir: s.DeploymentPath(d), kernel: k[0], initrd: i[0],
			entry: filepath.Join(f.path, fmt.Sprintf("boot/loader.%d/entries", bv), d.EntryFile),
			farm:  filepath.Join(f.path, fmt.Sprintf("ostree/boot.%d.%d", bv, sub)),
		}
	}
	notBootable := []struct {
		name    string
		corrupt func(f *fixture, p paths) error
	}{
		{"no origin", func(f *fixture, p paths) error { return os.Remove(p.dir + ".origin") }},
		{"no etc", func(f *fixture, p paths) error { return os.RemoveAll(p.dir + "/etc") }},
		{"no kernel", func(f *fixture, p paths) error { return os.Remove(p.kernel) }},
		{"another initramfs", func(f *fixture, p paths) error {
			os.Remove(p.initrd) // a hard link to the deployment's
			return os.WriteFile(p.initrd, []byte("other\n"), 0o644)
		}},
		{"link farm to a missing deployment", func(f *fixture, p paths) error {
			return os.Rename(p.dir, p.dir+"x")
		}},
		{"boot/loader to loader.2", func(f *fixture, p paths) error {
			os.Remove(filepath.Join(f.path, "boot/loader"))
			return os.Symlink("loader.2", filepath.Join(f.path, "boot/loader"))
		}},
		{"entry of the other boot version's farm", func(f *fixture, p paths) error {
			data, err := os.ReadFile(p.entry)
			if err != nil {
				return err
			}
			s := regexp.MustCompile(`ostree=/ostree/boot\.([01])/`).ReplaceAllStringFunc(string(data), func(m string) string {
				return strings.NewReplacer("boot.0", "boot.1", "boot.1", "boot.0").Replace(m)
			})
			return os.WriteFile(p.entry, []byte(s), 0o644)
		}},
	}
	for _, c := range notBootable {
		f := tp.copy(t)
		if err := c.corrupt(f, at(f)); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, err := faultBootable(f.path); err == nil {
			t.Errorf("%s: not detected", c.name)
		}
	}
	notClean := []struct {
		name    string
		corrupt func(f *fixture, p paths) error
	}{
		{"staging directory", func(f *fixture, p paths) error {
			return os.Mkdir(filepath.Join(f.path, "ostree/deploy/testos", stagingPrefix+"x"), 0o755)
		}},
		{"temporary file", func(f *fixture, p paths) error {
			return os.WriteFile(filepath.Join(filepath.Dir(p.dir), fsutil.TempName(p.dir+".origin")), nil, 0o644)
		}},
		{"second deployment of a commit", func(f *fixture, p paths) error {
			return os.Mkdir(strings.TrimSuffix(p.dir, ".0")+".5", 0o755)
		}},
		{"second link farm", func(f *fixture, p paths) error {
			other := p.farm[:len(p.farm)-1] + map[byte]string{'0': "1", '1': "0"}[p.farm[len(p.farm)-1]]
			return exec.Command("cp", "-a", p.farm, other).Run()
		}},
		{"orphan boot directory", func(f *fixture, p paths) error {
			return os.Mkdir(filepath.Join(f.path, "boot/ostree/testos-"+strings.Repeat("ab", 32)), 0o755)
		}},
		{"unpruned object", func(f *fixture, p paths) error {
			return os.WriteFile(filepath.Join(f.path, "ostree/repo/objects/ab", strings.Repeat("cd", 31)+".file"), []byte("x"), 0o644)
		}},
		{"stale ref", func(f *fixture, p paths) error {
			return os.WriteFile(filepath.Join(f.path, "ostree/repo/refs/heads/ostree/0/0/5"), []byte(strings.Repeat("ab", 32)+"\n"), 0o644)
		}},
	}
	for _, c := range notClean {
		f := tp.copy(t)
		p := at(f)
		os.MkdirAll(filepath.Join(f.path, "ostree/repo/objects/ab"), 0o755)
		os.MkdirAll(filepath.Join(f.path, "ostree/repo/refs/heads/ostree/0/0"), 0o755)
		if err := c.corrupt(f, p); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if faultListingDiff(faultListing(t, f), want) == "" {
			t.Errorf("%s: not detected", c.name)
		}
	}
}
