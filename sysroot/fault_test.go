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
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/esp"
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
//
// The operations that move boot entries run a second time on a
// systemd-boot sysroot (the ESP variant, "esp/OP"): the ESP is a plain
// directory beside the sysroot, and after every failure each entry on it
// must boot an existing deployment through an existing link farm, and
// the ESP as a whole the old or the new deployment list
// (faultESPBootable), whatever state the sysroot is in.

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
	// same: the operation does not change the deployment list.
	same bool
	// check, when set, checks the final state further.
	check func(t *testing.T, f *fixture, s *Sysroot)
	// esp runs the operation in the ESP variant too: it moves boot
	// entries, so it projects them onto the ESP. Left out: pin (no
	// entry moves) and set-default (rollback's path with one more
	// entry), to keep the matrix's time down.
	esp bool
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
		esp:   true,
		prior: func(f *fixture) { f.commit(treeSpec{version: "1"}, t0) },
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, err := s.Deploy(ctx, DeployOptions{OS: "testos", Revision: "testos/stable", Karg: []string{"root=/dev/vda1"}})
			return err
		},
	},
	{
		name:  "deploy-second",
		esp:   true,
		prior: func(f *fixture) { faultV1(f); faultV2(f) },
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, err := s.Deploy(ctx, DeployOptions{OS: "testos", Revision: "testos/stable"})
			return err
		},
		check: faultCheckMergedEtc,
	},
	{
		name: "stage-finalize",
		esp:  true,
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
		esp:   true,
		prior: func(f *fixture) { faultTwo(f) },
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, err := s.Rollback(ctx)
			return err
		},
	},
	{
		name:  "undeploy",
		esp:   true,
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
		esp:   true,
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
		esp:  true,
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
		same:       true,
	},
	{
		name: "cleanup-after-switch",
		esp:  true,
		same: true,
		prior: func(f *fixture) {
			s := faultTwo(f)
			// A deploy of v3 cut off just after its switch, as by a
			// power cut: the sysroot boots [v3, v2] from the new boot
			// version; the other boot version (loader.N, link farm) and
			// v1 are still there, and on a systemd-boot sysroot the ESP
			// still boots [v2, v1] through those links. The cleanup
			// that follows (next operation or boot) must move the ESP
			// onto the new links before it removes the old ones and v1
			// (the order of 224aff2).
			f.commit(treeSpec{version: "3", kernel: "kernel-3\n"}, t0.Add(2*time.Hour))
			var swapped atomic.Bool
			setFailpoint(f.t, func(step string) error {
				if step == "sysroot:swap" {
					swapped.Store(true)
				} else if swapped.Load() && (strings.HasPrefix(step, "esp:") || strings.HasPrefix(step, "sysroot:")) {
					return errInjected
				}
				return nil
			})
			_, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Revision: "testos/stable"})
			fsutil.Failpoint.Store(nil)
			if !errors.Is(err, errInjected) {
				f.t.Fatalf("interrupted deploy: %v", err)
			}
		},
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			_, err := s.Cleanup(ctx, true)
			return err
		},
		idempotent: true,
	},
	{
		// Blessing the booted deployment: its entry loses the boot
		// counter, on the ESP first (esp.Bless), then in loader.N.
		name: "boot-complete",
		esp:  true,
		prior: func(f *fixture) {
			s := faultTwo(f)
			f.boot(s, s.Deployments()[0])
		},
		run: func(ctx context.Context, f *fixture, s *Sysroot) error {
			ok, err := s.BootComplete(ctx)
			if err == nil && !ok && bootloader.Blessed(s.Deployments()[0].EntryFile) != s.Deployments()[0].EntryFile {
				err = errors.New("boot-complete: nothing renamed")
			}
			return err
		},
		check: func(t *testing.T, f *fixture, s *Sysroot) {
			t.Helper()
			d := s.Deployments()[0]
			if bootloader.Blessed(d.EntryFile) != d.EntryFile {
				t.Errorf("boot-complete: loader entry %s still counts", d.EntryFile)
			}
			if f.esp != "" {
				name, err := esp.Booted(f.esp, d.Name())
				if err != nil || name == "" || bootloader.Blessed(name) != name {
					t.Errorf("boot-complete: ESP entry %q (%v), want it blessed", name, err)
				}
			}
		},
		idempotent: true,
		same:       true,
	},
}

// faultTemplate is a prior state, copied for every case.
type faultTemplate struct {
	base    string // holds sysroot/, run/, cmdline and, with esp, esp/
	rootRel string // the booted deployment, relative to base; "" if not booted
	esp     bool   // a systemd-boot sysroot with its ESP at base/esp
}

// faultInstallESP makes f a systemd-boot sysroot as strata install leaves
// one: the repo config strata.bootloader and an ESP with
// loader/loader.conf, here a plain directory beside the sysroot (package
// esp writes through fsutil and needs nothing of vfat).
func faultInstallESP(f *fixture) {
	f.t.Helper()
	f.esp = filepath.Join(filepath.Dir(f.path), "esp")
	must(f.t, os.MkdirAll(filepath.Join(f.esp, "loader"), 0o755))
	must(f.t, os.WriteFile(filepath.Join(f.esp, "loader/loader.conf"), []byte("timeout 3\n"), 0o644))
	f.setConfig("strata", "bootloader", LoaderSystemdBoot)
}

func newFaultTemplate(t *testing.T, op faultOp, esp bool) faultTemplate {
	t.Helper()
	f := newFixture(t, -1)
	if esp {
		faultInstallESP(f)
	}
	op.prior(f)
	tp := faultTemplate{base: filepath.Dir(f.path), esp: esp}
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
	if tp.esp {
		f.esp = filepath.Join(base, "esp")
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

// faultESPBootable reads the ESP's loader/entries/*.conf (what
// systemd-boot reads) and checks that every entry, blessed or counting
// boots (+L, +L-D), stale generation or new, boots a complete
// deployment: ostree= names a link farm path (either boot version: the
// ESP lags the sysroot until the next esp.Sync) that exists in the
// sysroot and leads to a deployment directory with usr/, etc/ and an
// origin; the deployment is the one the entry's name gives (esp.Bless
// finds the booted entry by it); linux and initrd exist on the ESP and
// are that deployment's kernel and initramfs. It returns what the ESP
// boots, in systemd-boot's order (bootloader.SortEntries), each
// deployment once at its first entry, as faultESPSig describes it.
func faultESPBootable(path, espDir string) ([]string, error) {
	dir := filepath.Join(espDir, "loader/entries")
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ESP entries: %v", err)
	}
	var list []bootloader.LoaderEntry
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".conf") {
			continue // a temporary: systemd-boot reads *.conf only
		}
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			return nil, err
		}
		e, err := bootloader.ParseEntry(data)
		if err != nil {
			return nil, fmt.Errorf("ESP %s: %v", de.Name(), err)
		}
		list = append(list, bootloader.LoaderEntry{Name: de.Name(), Entry: e})
	}
	bootloader.SortEntries(list)
	seen := map[string]bool{}
	var parts []string
	for _, le := range list {
		name := le.Name
		m := faultESPNameRe.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("ESP %s: not a strata entry name", name)
		}
		opts := le.Entry.Value("options")
		var arg string
		for _, a := range strings.Fields(opts) {
			if v, ok := strings.CutPrefix(a, "ostree="); ok {
				arg = v
			}
		}
		lm := faultBootlinkRe.FindStringSubmatch(arg)
		if lm == nil {
			return nil, fmt.Errorf("ESP %s: ostree=%q does not name a link farm", name, arg)
		}
		dep, err := filepath.EvalSymlinks(filepath.Join(path, arg))
		if err != nil {
			return nil, fmt.Errorf("ESP %s: ostree=%s: %v", name, arg, err)
		}
		if filepath.Dir(dep) != filepath.Join(path, "ostree/deploy/testos/deploy") || !deployNameRe.MatchString(filepath.Base(dep)) {
			return nil, fmt.Errorf("ESP %s: ostree=%s leads to %s, not a deployment", name, arg, dep)
		}
		if filepath.Base(dep) != m[1] {
			return nil, fmt.Errorf("ESP %s: ostree=%s leads to deployment %s", name, arg, filepath.Base(dep))
		}
		for _, p := range []string{dep + "/usr/lib/os-release", dep + "/usr/etc", dep + "/etc", dep + ".origin"} {
			if !lexists(p) {
				return nil, fmt.Errorf("ESP %s: incomplete deployment: no %s", name, p)
			}
		}
		for k, want := range map[string]string{"linux": "vmlinuz", "initrd": "initramfs.img"} {
			v := le.Entry.Value(k)
			if !strings.HasPrefix(v, "/ostree/testos-"+lm[2]+"/") || strings.Contains(v, "..") {
				return nil, fmt.Errorf("ESP %s: %s %q is not in ostree/testos-%s", name, k, v, lm[2])
			}
			got, err := os.ReadFile(filepath.Join(espDir, v))
			if err != nil {
				return nil, fmt.Errorf("ESP %s: %s: %v", name, k, err)
			}
			exp, err := os.ReadFile(filepath.Join(dep, "usr/lib/modules", testKver, want))
			if err != nil {
				return nil, fmt.Errorf("ESP %s: %v", name, err)
			}
			if string(got) != string(exp) {
				return nil, fmt.Errorf("ESP %s: %s is %q, the deployment's is %q", name, v, got, exp)
			}
		}
		if seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		parts = append(parts, fmt.Sprintf("%.10s[%s]", m[1], bootloader.WithoutKarg(opts, "ostree")))
	}
	return parts, nil
}

// faultESPSig describes what the ESP boots when it holds s's list: each
// non-staged deployment's commit and kernel arguments (without ostree=),
// default first.
func faultESPSig(s *Sysroot) []string {
	var parts []string
	for _, d := range s.Deployments() {
		if !d.Staged {
			parts = append(parts, fmt.Sprintf("%.10s[%s]", d.Checksum, bootloader.WithoutKarg(d.Options(), "ostree")))
		}
	}
	return parts
}

// faultESPState tells which list an ESP that boots got (faultESPBootable)
// is in: "old", "new", "partial" for what an interrupted esp.Sync leaves
// (its newest generation is written default first and the older ones
// removed after it, so systemd-boot lists the first k deployments of the
// new list, then those of the old list not among them: all of them
// until the new generation is complete, then fewer as they are removed),
// "" for anything else.
func faultESPState(got, old, new []string) string {
	switch {
	case slices.Equal(got, new):
		return "new"
	case slices.Equal(got, old):
		return "old"
	}
	commit := func(e string) string { c, _, _ := strings.Cut(e, "["); return c }
	for k := 1; k <= min(len(new), len(got)); k++ {
		if !slices.Equal(got[:k], new[:k]) {
			break
		}
		var rest []string // the old list without new[:k]
		for _, e := range old {
			if !slices.ContainsFunc(new[:k], func(n string) bool { return commit(n) == commit(e) }) {
				rest = append(rest, e)
			}
		}
		if k < len(new) && slices.Equal(got[k:], rest) {
			return "partial" // the new generation being written
		}
		if k == len(new) && faultSubsequence(got[k:], rest) {
			return "partial" // the old generations being removed
		}
	}
	return ""
}

// faultSubsequence reports whether a is b with some elements left out.
func faultSubsequence(a, b []string) bool {
	for _, e := range b {
		if len(a) > 0 && a[0] == e {
			a = a[1:]
		}
	}
	return len(a) == 0
}

// faultESPShow renders a faultESPBootable list.
func faultESPShow(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, " ")
}

// faultESPConsistent checks the ESP of an interrupted sysroot (nothing
// without one) and returns its faultESPState: it may lag the sysroot
// (the next operation's esp.Sync catches up) and be caught between the
// two lists, but never boot anything else nor through a missing link or
// kernel.
func faultESPConsistent(t *testing.T, f *fixture, old, new []string) string {
	t.Helper()
	if f.esp == "" {
		return ""
	}
	got, err := faultESPBootable(f.path, f.esp)
	if err != nil {
		t.Fatal(err)
	}
	st := faultESPState(got, old, new)
	if st == "" {
		t.Fatalf("the ESP boots neither the old nor the new deployments, nor a projection between them:\n got %s\n old %s\n new %s", faultESPShow(got), faultESPShow(old), faultESPShow(new))
	}
	return st
}

// faultStatus does what status does: load, resolve every deployment's
// commit and the rollback. It returns the boot order of the loaded
// deployments (staged left out).
func faultStatus(t *testing.T, f *fixture) (*Sysroot, []string) {
	t.Helper()
	s, err := Open(f.path, Options{RunDir: f.run, Root: f.root, Cmdline: f.cmd, ESPDir: f.esp})
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
	faultESPNameRe  = regexp.MustCompile(`^strata-[0-9]+-[0-9]+-testos-([0-9a-f]{64}\.[0-9]+)(\+[0-9]+(-[0-9]+)?)?\.conf$`)
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
		// The ESP's entry generation: a re-run after an interrupted
		// esp.Sync writes the next one.
		{regexp.MustCompile(`(loader/entries/strata-)[0-9]+-`), "${1}GEN-"},
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
	tops := []string{f.path, f.run}
	if f.esp != "" {
		tops = append(tops, f.esp)
	}
	for _, top := range tops {
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

// faultESPCases keeps, for the ESP variant, the cases from the
// operation's switch (its first sysroot:swap) on, or all of them when it
// has none (cleanup). Before the switch the ESP holds the prior state's
// entries, which the template's check accepted, and is written by
// esp.Sync only (a no-op then: it holds the sysroot's list); what such a
// step could break there, a link farm, deployment or kernel the entries
// name, loader.N's entries name as well, and the plain variant fails on
// it at the same step. From the switch on the ESP lags the sysroot until
// the operation projects the new list, which is what this variant checks.
func faultESPCases(steps []string, cases []int) []int {
	for i, st := range steps {
		if st == "sysroot:swap" {
			var out []int
			for _, c := range cases {
				if c >= i {
					out = append(out, c)
				}
			}
			return out
		}
	}
	return cases
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
// operation (see faultOps) and checks what an interruption there leaves;
// the operations marked esp run again on a systemd-boot sysroot
// ("esp/OP").
func TestFaultMatrix(t *testing.T) {
	total := 0
	for _, op := range faultOps {
		t.Run(op.name, func(t *testing.T) { total += faultMatrixOp(t, op, false) })
	}
	for _, op := range faultOps {
		if op.esp {
			t.Run("esp/"+op.name, func(t *testing.T) { total += faultMatrixOp(t, op, true) })
		}
	}
	t.Logf("%d cases", total)
}

// faultMatrixOp runs the matrix of one operation, on a systemd-boot
// sysroot with its ESP when esp is set, and returns its number of cases.
func faultMatrixOp(t *testing.T, op faultOp, esp bool) int {
	ctx := context.Background()
	tp := newFaultTemplate(t, op, esp)
	// The uninterrupted run: its steps, its result.
	ref := tp.copy(t)
	s := ref.open()
	oldSig := faultSig(s)
	var oldESP []string // what the ESP boots before: it may lag the sysroot
	if esp {
		var err error
		if oldESP, err = faultESPBootable(ref.path, ref.esp); err != nil {
			t.Fatalf("the prior state: %v", err)
		}
	}
	rec := &faultRecorder{fail: -1}
	rec.install(t)
	err := op.run(ctx, ref, s)
	fsutil.Failpoint.Store(nil)
	if err != nil {
		t.Fatalf("uninterrupted %s: %v", op.name, err)
	}
	s, _ = faultStatus(t, ref)
	newSig, newESP := faultSig(s), faultESPSig(s)
	if newSig == oldSig && !op.same {
		t.Fatalf("uninterrupted %s changed nothing: %s", op.name, newSig)
	}
	faultConsistent(t, ref, oldSig, newSig, true)
	if got := faultESPConsistent(t, ref, oldESP, newESP); esp && got != "new" {
		t.Fatalf("uninterrupted %s: the ESP boots the %s deployments", op.name, got)
	}
	faultFsck(t, ref)
	if op.check != nil {
		op.check(t, ref, s)
	}
	want := faultListing(t, ref)
	steps := rec.steps
	cases := faultCases(steps)
	if esp {
		cases = faultESPCases(steps, cases)
	}
	t.Logf("%s: %d steps, %d cases; old %s; new %s", op.name, len(steps), len(cases), oldSig, newSig)
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
			// The real ostree reads only the sysroot, which the plain
			// variant has it check after the same steps.
			interop := faultInterop(rec.hit) && !esp
			state := faultConsistent(t, f, oldSig, newSig, interop)
			faultESPConsistent(t, f, oldESP, newESP)
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
			if got := faultESPConsistent(t, f, oldESP, newESP); esp && got != "new" {
				t.Fatalf("failed at %s, re-run: the ESP boots the %s deployments", rec.hit, got)
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
	return len(cases)
}

// TestFaultCheckersDetect: the checks of the matrix fail on sysroots
// that are not bootable or not clean.
func TestFaultCheckersDetect(t *testing.T) {
	tp := newFaultTemplate(t, faultOp{prior: func(f *fixture) { faultTwo(f) }}, false)
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

// TestFaultCheckersDetectESP: the ESP check of the matrix fails on ESPs
// that do not boot, or do not boot the sysroot's list, and accepts
// entries whatever their boot counter.
func TestFaultCheckersDetectESP(t *testing.T) {
	tp := newFaultTemplate(t, faultOp{prior: func(f *fixture) { faultTwo(f) }}, true)
	good := tp.copy(t)
	want := faultESPSig(good.open())
	if got, err := faultESPBootable(good.path, good.esp); err != nil || !slices.Equal(got, want) {
		t.Fatalf("the good ESP: %s, %v; want %s", faultESPShow(got), err, faultESPShow(want))
	}
	// The ESP entry of the default deployment and the other one's.
	type paths struct{ def, other, defKey, otherKey, dir, kernel, initrd string }
	at := func(f *fixture) paths {
		s := f.open()
		ds := s.Deployments()
		p := paths{defKey: ds[0].Name(), otherKey: ds[1].Name(), dir: s.DeploymentPath(ds[0])}
		ents, _ := filepath.Glob(filepath.Join(f.esp, "loader/entries/*.conf"))
		for _, e := range ents {
			switch {
			case strings.Contains(filepath.Base(e), p.defKey):
				p.def = e
			case strings.Contains(filepath.Base(e), p.otherKey):
				p.other = e
			}
		}
		k, _ := filepath.Glob(filepath.Join(f.esp, "ostree/testos-"+ds[0].BootChecksum, "vmlinuz-*"))
		i, _ := filepath.Glob(filepath.Join(f.esp, "ostree/testos-"+ds[0].BootChecksum, "initramfs-*"))
		if len(ents) != 2 || p.def == "" || p.other == "" || len(k) != 1 || len(i) != 1 {
			t.Fatalf("ESP entries %v, kernel %v, initramfs %v", ents, k, i)
		}
		p.kernel, p.initrd = k[0], i[0]
		return p
	}
	rename := func(from, to string) error { return os.Rename(from, filepath.Join(filepath.Dir(from), to)) }
	// Blessed or counting down, an entry boots the same.
	for _, counter := range []string{"", "+1-2", "+3"} {
		f := tp.copy(t)
		p := at(f)
		name := strings.TrimSuffix(bootloader.Blessed(filepath.Base(p.def)), ".conf") + counter + ".conf"
		must(t, rename(p.def, name))
		if got, err := faultESPBootable(f.path, f.esp); err != nil || !slices.Equal(got, want) {
			t.Errorf("default entry %s: %s, %v; want %s", name, faultESPShow(got), err, faultESPShow(want))
		}
	}
	cases := []struct {
		name    string
		corrupt func(f *fixture, p paths) error
	}{
		// What cleanup left before 224aff2 when interrupted between
		// its removal of the other boot version's links and its
		// projection onto the ESP: the ESP's entries still name the
		// boot version the sysroot left, whose links are gone.
		{"entries naming the removed links of the other boot version", func(f *fixture, p paths) error {
			for _, e := range []string{p.def, p.other} {
				data, err := os.ReadFile(e)
				if err != nil {
					return err
				}
				s := regexp.MustCompile(`ostree=/ostree/boot\.([01])/`).ReplaceAllStringFunc(string(data), func(m string) string {
					return strings.NewReplacer("boot.0", "boot.1", "boot.1", "boot.0").Replace(m)
				})
				if err := os.WriteFile(e, []byte(s), 0o644); err != nil {
					return err
				}
			}
			return nil
		}},
		{"link farm removed", func(f *fixture, p paths) error {
			links, _ := filepath.Glob(filepath.Join(f.path, "ostree/boot.*.*"))
			for _, l := range links {
				if err := os.RemoveAll(l); err != nil {
					return err
				}
			}
			return nil
		}},
		{"deployment removed", func(f *fixture, p paths) error { return os.Rename(p.dir, p.dir+"x") }},
		{"no origin", func(f *fixture, p paths) error { return os.Remove(p.dir + ".origin") }},
		{"no kernel on the ESP", func(f *fixture, p paths) error { return os.Remove(p.kernel) }},
		{"another initramfs on the ESP", func(f *fixture, p paths) error { return os.WriteFile(p.initrd, []byte("other\n"), 0o644) }},
		{"entry named for another deployment", func(f *fixture, p paths) error {
			return rename(p.def, strings.Replace(filepath.Base(p.def), p.defKey, p.otherKey, 1))
		}},
		{"default entry missing", func(f *fixture, p paths) error { return os.Remove(p.def) }},
		{"default entry out of tries", func(f *fixture, p paths) error {
			return rename(p.def, strings.TrimSuffix(bootloader.Blessed(filepath.Base(p.def)), ".conf")+"+0-3.conf")
		}},
		{"stray entry", func(f *fixture, p paths) error {
			return os.WriteFile(filepath.Join(f.esp, "loader/entries/other.conf"), []byte("title x\nlinux /x\n"), 0o644)
		}},
	}
	for _, c := range cases {
		f := tp.copy(t)
		if err := c.corrupt(f, at(f)); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := faultESPBootable(f.path, f.esp)
		if err == nil && faultESPState(got, want, want) != "" {
			t.Errorf("%s: not detected", c.name)
		}
		t.Logf("%s: %s, %v", c.name, faultESPShow(got), err)
	}
	// Between [b a] and [c b] (a deploy of c that drops a): what an
	// interrupted esp.Sync leaves passes, nothing else does.
	old, new := []string{"b[x]", "a[x]"}, []string{"c[x]", "b[y]"}
	for _, c := range []struct {
		got  []string
		want string
	}{
		{[]string{"b[x]", "a[x]"}, "old"},
		{[]string{"c[x]", "b[y]"}, "new"},
		{[]string{"c[x]", "b[x]", "a[x]"}, "partial"},  // c's entry written
		{[]string{"c[x]", "b[y]", "a[x]"}, "partial"},  // b's too, a's not removed yet
		{[]string{"c[x]", "a[x]"}, ""},                 // b gone first
		{[]string{"b[y]", "c[x]"}, ""},                 // other order
		{[]string{"c[x]", "b[x]"}, ""},                 // b's old arguments only
		{[]string{"c[x]"}, ""},                         // b gone
		{[]string{"a[x]", "b[x]"}, ""},                 // the old order reversed
		{[]string{"c[x]", "b[y]", "a[x]", "d[x]"}, ""}, // something else
		{nil, ""},
	} {
		if got := faultESPState(c.got, old, new); got != c.want {
			t.Errorf("ESP %v between %v and %v: %q, want %q", c.got, old, new, got, c.want)
		}
	}
}
