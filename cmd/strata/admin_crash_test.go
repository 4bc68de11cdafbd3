package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/sysroot"
)

// Kill-based fault tests: the strata binary runs each admin operation as
// a child process that SIGKILLs itself at a durable step
// (STRATA_CRASH_AT=STEP@N); after each kill the sysroot must boot the old
// or the new deployment list and nothing else, `strata status` and
// `ostree admin status` must read it, and re-running the command must
// leave the sysroot exactly as an uninterrupted run does. The in-process
// counterpart, with an error at every step, is sysroot/fault_test.go.

// crashEnv is a sysroot for CLI tests: BASE/sysroot, BASE/run (the
// STRATA_RUN_DIR) and BASE/cmdline (STRATA_CMDLINE), and, when booted,
// the booted deployment's directory (STRATA_ROOT).
type crashEnv struct {
	t    *testing.T
	bin  string
	base string
	root string
}

func (e *crashEnv) sysroot() string { return filepath.Join(e.base, "sysroot") }
func (e *crashEnv) repo() string    { return filepath.Join(e.base, "sysroot/ostree/repo") }

// command runs strata with the env's sysroot and run dir; --sysroot is
// added to every command but commit.
func (e *crashEnv) command(ctx context.Context, extraEnv []string, args ...string) *exec.Cmd {
	if args[0] != "commit" && args[0] != "refs" {
		args = append(append([]string{}, args...), "--sysroot="+e.sysroot())
	}
	cmd := exec.CommandContext(ctx, e.bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") {
			env = append(env, kv)
		}
	}
	env = append(env, "STRATA_RUN_DIR="+filepath.Join(e.base, "run"), "STRATA_CMDLINE="+filepath.Join(e.base, "cmdline"))
	if e.root != "" {
		env = append(env, "STRATA_ROOT="+e.root)
	}
	cmd.Env = append(env, extraEnv...)
	return cmd
}

func (e *crashEnv) run(extraEnv []string, args ...string) (string, error) {
	out, err := e.command(context.Background(), extraEnv, args...).CombinedOutput()
	return string(out), err
}

func (e *crashEnv) ok(args ...string) string {
	e.t.Helper()
	out, err := e.run(nil, args...)
	if err != nil {
		e.t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// crashKilled reports whether err is a death by SIGKILL.
func crashKilled(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
}

// newCrashEnv makes an empty sysroot with stateroot testos.
func newCrashEnv(t *testing.T, bin string) *crashEnv {
	t.Helper()
	e := &crashEnv{t: t, bin: bin, base: crashTempDir(t)}
	for _, d := range []string{"sysroot", "run"} {
		if err := os.MkdirAll(filepath.Join(e.base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.base, "cmdline"), []byte("root=/dev/vda1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("admin", "init-fs", e.sysroot())
	e.ok("admin", "os-init", "testos")
	return e
}

// crashTempDir returns a new directory removed at the end of the test, on
// the tmpfs /dev/shm when there is one: every case copies a sysroot and
// runs syncfs several times, which on a busy shared disk would take most
// of the time (a SIGKILL, unlike a power cut, does not lose what was not
// synced, so the disk's durability is not what these tests check).
func crashTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC {
		if d, err := os.MkdirTemp("/dev/shm", "strata-crash-"); err == nil {
			dir = d
		}
	}
	t.Cleanup(func() {
		ds, _ := filepath.Glob(filepath.Join(dir, "sysroot/ostree/deploy/*/deploy/*"))
		for _, d := range ds {
			clearImmutable(d)
		}
		os.RemoveAll(dir)
	})
	return dir
}

// commit commits a small OS tree of version v on ref (testos/stable by
// default); kernel names its kernel's content; extra adds files.
func (e *crashEnv) commit(ref, v, kernel string, extra map[string]string, hours int) string {
	e.t.Helper()
	dir := crashTempDir(e.t)
	files := map[string]string{
		"usr/lib/modules/6.1.0/vmlinuz":       kernel,
		"usr/lib/modules/6.1.0/initramfs.img": "initramfs for " + kernel,
		"usr/lib/os-release":                  "ID=testos\nPRETTY_NAME=\"Test OS\"\n",
		"usr/etc/hosts":                       "127.0.0.1 localhost\n",
		"usr/etc/motd":                        "hello " + v + "\n",
		"usr/etc/ssh/sshd_config":             "Port 22\n",
		"usr/bin/true":                        v + "\n",
	}
	for k, c := range extra {
		files[k] = c
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	ts := time.Date(2024, 1, 2, hours, 0, 0, 0, time.UTC).Format(time.RFC3339)
	return strings.TrimSpace(e.ok("commit", "--repo="+e.repo(), "-b", ref, "--tree=dir="+dir, "-s", v,
		"--add-metadata-string=version="+v, "--timestamp="+ts))
}

// crashStatus is what `strata status --json` says.
type crashStatus struct {
	Deployments []struct {
		Checksum   string `json:"checksum"`
		Serial     int    `json:"serial"`
		Staged     bool   `json:"staged"`
		Pinned     bool   `json:"pinned"`
		KernelArgs string `json:"kernel_args"`
	} `json:"deployments"`
}

func (e *crashEnv) status() crashStatus {
	e.t.Helper()
	out, err := e.command(context.Background(), nil, "status", "--json").Output()
	if err != nil {
		e.t.Fatalf("strata status --json: %v", err)
	}
	var st crashStatus
	if err := json.Unmarshal(out, &st); err != nil {
		e.t.Fatalf("strata status --json: %v\n%s", err, out)
	}
	return st
}

// sig describes what boots, in boot order (as the sysroot package's
// fault test does): commit, kernel arguments without ostree=, pin.
func (st crashStatus) sig() string {
	var parts []string
	for _, d := range st.Deployments {
		if d.Staged {
			continue
		}
		var ka []string
		for _, a := range strings.Fields(d.KernelArgs) {
			if !strings.HasPrefix(a, "ostree=") {
				ka = append(ka, a)
			}
		}
		parts = append(parts, fmt.Sprintf("%.10s[%s]pinned=%v", d.Checksum, strings.Join(ka, " "), d.Pinned))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}

// order lists the non-staged deployments, "CSUM.SERIAL".
func (st crashStatus) order() string {
	var out []string
	for _, d := range st.Deployments {
		if !d.Staged {
			out = append(out, fmt.Sprintf("%s.%d", d.Checksum, d.Serial))
		}
	}
	return strings.Join(out, ",")
}

// boot makes the env look booted into deployment 0.
func (e *crashEnv) boot() {
	e.t.Helper()
	st := e.status()
	d := st.Deployments[0]
	var arg string
	for _, a := range strings.Fields(d.KernelArgs) {
		if strings.HasPrefix(a, "ostree=") {
			arg = a
		}
	}
	if err := os.WriteFile(filepath.Join(e.base, "run/ostree-booted"), nil, 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.base, "cmdline"), []byte("root=/dev/vda1 "+arg+"\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.root = filepath.Join(e.sysroot(), "ostree/deploy/testos/deploy", fmt.Sprintf("%s.%d", d.Checksum, d.Serial))
}

// editEtc changes deployment 0's /etc as an administrator would.
func (e *crashEnv) editEtc() {
	e.t.Helper()
	st := e.status()
	etc := filepath.Join(e.sysroot(), "ostree/deploy/testos/deploy", fmt.Sprintf("%s.%d", st.Deployments[0].Checksum, st.Deployments[0].Serial), "etc")
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte("10.0.0.1 local\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(etc, "ssh/sshd_config")); err != nil {
		e.t.Fatal(err)
	}
}

// copy makes a fresh copy of the env (cp -a keeps the hard links between
// the repository and the deployments).
func (e *crashEnv) copy(t *testing.T) *crashEnv {
	t.Helper()
	c := &crashEnv{t: t, bin: e.bin, base: crashTempDir(t)}
	if out, err := exec.Command("cp", "-a", e.base+"/.", c.base).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	if e.root != "" {
		c.root = c.base + strings.TrimPrefix(e.root, e.base)
	}
	return c
}

// open loads the env's sysroot in this process, as the CLI would.
func (e *crashEnv) open() *sysroot.Sysroot {
	e.t.Helper()
	s, err := sysroot.Open(e.sysroot(), sysroot.Options{RunDir: filepath.Join(e.base, "run"), Cmdline: filepath.Join(e.base, "cmdline"), Root: e.root})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

var (
	crashBootlinkRe = regexp.MustCompile(`^/ostree/boot\.([01])/testos/([0-9a-f]{64})/[0-9]+$`)
	crashDeployRe   = regexp.MustCompile(`^[0-9a-f]{64}\.[0-9]+$`)
)

// crashBootable reads boot/loader and its entries and checks that every
// entry boots a complete deployment: ostree= names this boot version's
// link farm, which leads to a deployment directory with usr/, usr/etc,
// etc/ and an origin; linux and initrd exist under boot/ and are the
// deployment's kernel and initramfs. It returns the deployments from the
// highest version (the default) down.
func crashBootable(path string) (string, error) {
	boot := filepath.Join(path, "boot")
	target, err := os.Readlink(filepath.Join(boot, "loader"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil || (target != "loader.0" && target != "loader.1") {
		return "", fmt.Errorf("boot/loader -> %q: %v", target, err)
	}
	ents, err := os.ReadDir(filepath.Join(boot, target, "entries"))
	if err != nil {
		return "", err
	}
	type ent struct {
		version int
		name    string
	}
	var out []ent
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(boot, target, "entries", e.Name()))
		if err != nil || !strings.HasSuffix(e.Name(), ".conf") {
			return "", fmt.Errorf("%s/entries/%s: %v", target, e.Name(), err)
		}
		keys := map[string]string{}
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
		m := crashBootlinkRe.FindStringSubmatch(arg)
		if m == nil || "loader."+m[1] != target {
			return "", fmt.Errorf("%s: ostree=%q is not a link of %s", e.Name(), arg, target)
		}
		dir, err := filepath.EvalSymlinks(filepath.Join(path, arg))
		if err != nil {
			return "", fmt.Errorf("%s: %v", e.Name(), err)
		}
		if filepath.Dir(dir) != filepath.Join(path, "ostree/deploy/testos/deploy") || !crashDeployRe.MatchString(filepath.Base(dir)) {
			return "", fmt.Errorf("%s: ostree=%s leads to %s", e.Name(), arg, dir)
		}
		for _, p := range []string{dir + "/usr/lib/os-release", dir + "/usr/etc", dir + "/etc", dir + ".origin"} {
			if _, err := os.Lstat(p); err != nil {
				return "", fmt.Errorf("%s: incomplete deployment: %v", e.Name(), err)
			}
		}
		for k, name := range map[string]string{"linux": "vmlinuz", "initrd": "initramfs.img"} {
			if !strings.HasPrefix(keys[k], "/ostree/testos-"+m[2]+"/") {
				return "", fmt.Errorf("%s: %s %q not in boot/ostree/testos-%s", e.Name(), k, keys[k], m[2])
			}
			got, err1 := os.ReadFile(filepath.Join(boot, keys[k]))
			want, err2 := os.ReadFile(filepath.Join(dir, "usr/lib/modules/6.1.0", name))
			if err1 != nil || err2 != nil || string(got) != string(want) {
				return "", fmt.Errorf("%s: %s %s is not the deployment's %s (%v, %v)", e.Name(), k, keys[k], name, err1, err2)
			}
		}
		var v int
		if _, err := fmt.Sscan(keys["version"], &v); err != nil {
			return "", fmt.Errorf("%s: version %q", e.Name(), keys["version"])
		}
		out = append(out, ent{v, filepath.Base(dir)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version > out[j].version })
	var names []string
	for _, e := range out {
		names = append(names, e.name)
	}
	return strings.Join(names, ","), nil
}

// ostreeOrder lists the deployments as `ostree admin status` does.
func (e *crashEnv) ostreeOrder() string {
	e.t.Helper()
	var out []string
	for _, line := range strings.Split(ostreeOut(e.t, "admin", "status", "--sysroot="+e.sysroot()), "\n") {
		fs := strings.Fields(line)
		if len(fs) > 0 && fs[0] == "*" {
			fs = fs[1:]
		}
		if len(fs) >= 2 && fs[0] == "testos" {
			out = append(out, fs[1])
		}
	}
	return strings.Join(out, ",")
}

// consistent checks an interrupted sysroot from its files, through
// `strata status --json` and, with interop, `ostree admin status`, and
// returns "old" or "new".
func (e *crashEnv) consistent(oldSig, newSig string, interop bool) string {
	e.t.Helper()
	entries, err := crashBootable(e.sysroot())
	if err != nil {
		e.t.Fatal(err)
	}
	st := e.status()
	if st.order() != entries {
		e.t.Fatalf("strata status lists %s, the boot entries %s", st.order(), entries)
	}
	if interop {
		if got := e.ostreeOrder(); got != entries {
			e.t.Fatalf("ostree admin status lists %s, the boot entries %s", got, entries)
		}
	}
	switch sig := st.sig(); sig {
	case newSig:
		return "new"
	case oldSig:
		return "old"
	default:
		e.t.Fatalf("boots neither the old nor the new deployments:\n got %s\n old %s\n new %s", sig, oldSig, newSig)
	}
	return ""
}

// What may differ from an uninterrupted run with nothing left behind: a
// deployment serial and the sub-boot version (see sysroot/fault_test.go).
var crashNormalize = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`([0-9a-f]{64})\.[0-9]+`), "$1.SERIAL"},
	{regexp.MustCompile(`boot\.([01])\.[01]`), "boot.$1.SUB"},
	{regexp.MustCompile(`refs/heads/ostree/([01])/[01]`), "refs/heads/ostree/$1/SUB"},
}

// listing describes the env's sysroot/ and run/ for comparison with an
// uninterrupted run: paths with types, file contents (hashed), symlink
// targets; deployment trees, objects and ref directories by name only.
func (e *crashEnv) listing() map[string]string {
	e.t.Helper()
	norm := func(s string) string {
		for _, n := range crashNormalize {
			s = n.re.ReplaceAllString(s, n.repl)
		}
		return s
	}
	out := map[string]string{}
	add := func(rel, v string) {
		k := rel
		if v != "object" {
			k = norm(rel)
		}
		for out[k] != "" {
			k += "#again"
		}
		out[k] = v
	}
	for _, top := range []string{"sysroot", "run"} {
		err := filepath.WalkDir(filepath.Join(e.base, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(e.base, p)
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				add(rel, "-> "+norm(target))
			case d.IsDir() && strings.Contains(rel, "/repo/refs/"):
			case d.IsDir():
				add(rel, "dir")
				if filepath.Base(filepath.Dir(p)) == "deploy" && crashDeployRe.MatchString(d.Name()) {
					return filepath.SkipDir
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
			e.t.Fatal(err)
		}
	}
	return out
}

func crashListingDiff(got, want map[string]string) string {
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
	return strings.Join(diffs, "\n")
}

func (e *crashEnv) fsck() {
	e.t.Helper()
	if out := ostreeOut(e.t, "fsck", "--repo="+e.repo()); strings.Contains(strings.ToLower(out), "corrupt") {
		e.t.Fatalf("ostree fsck:\n%s", out)
	}
}

// crashCmd is one command of an operation: its CLI arguments and the same
// operation through the sysroot package, used to learn its steps.
type crashCmd struct {
	args []string
	lib  func(ctx context.Context, s *sysroot.Sysroot) error
}

type crashOp struct {
	name       string
	prior      func(e *crashEnv)
	cmds       []crashCmd
	idempotent bool
}

func crashV1(e *crashEnv) {
	e.commit("testos/stable", "1", "kernel-1\n", nil, 0)
	e.ok("admin", "deploy", "--os=testos", "--karg=root=/dev/vda1", "--karg=quiet", "testos/stable")
	e.editEtc()
}

func crashTwo(e *crashEnv) {
	crashV1(e)
	e.commit("testos/stable", "2", "kernel-2\n", nil, 1)
	e.ok("admin", "deploy", "--os=testos", "testos/stable")
}

var crashOps = []crashOp{
	{
		name:  "deploy-first",
		prior: func(e *crashEnv) { e.commit("testos/stable", "1", "kernel-1\n", nil, 0) },
		cmds: []crashCmd{{[]string{"admin", "deploy", "--os=testos", "--karg=root=/dev/vda1", "testos/stable"}, func(ctx context.Context, s *sysroot.Sysroot) error {
			_, err := s.Deploy(ctx, sysroot.DeployOptions{OS: "testos", Revision: "testos/stable", Karg: []string{"root=/dev/vda1"}})
			return err
		}}},
	},
	{
		name:  "deploy-second",
		prior: func(e *crashEnv) { crashV1(e); e.commit("testos/stable", "2", "kernel-2\n", nil, 1) },
		cmds: []crashCmd{{[]string{"admin", "deploy", "--os=testos", "testos/stable"}, func(ctx context.Context, s *sysroot.Sysroot) error {
			_, err := s.Deploy(ctx, sysroot.DeployOptions{OS: "testos", Revision: "testos/stable"})
			return err
		}}},
	},
	{
		name:  "stage-finalize",
		prior: func(e *crashEnv) { crashV1(e); e.boot(); e.commit("testos/stable", "2", "kernel-2\n", nil, 1) },
		cmds: []crashCmd{
			{[]string{"admin", "deploy", "--stage", "testos/stable"}, func(ctx context.Context, s *sysroot.Sysroot) error {
				_, err := s.Deploy(ctx, sysroot.DeployOptions{Revision: "testos/stable", Stage: true})
				return err
			}},
			{[]string{"admin", "finalize-staged"}, func(ctx context.Context, s *sysroot.Sysroot) error {
				_, err := s.FinalizeStaged(ctx)
				return err
			}},
		},
	},
	{
		name:  "rollback",
		prior: crashTwo,
		cmds: []crashCmd{{[]string{"rollback"}, func(ctx context.Context, s *sysroot.Sysroot) error {
			_, err := s.Rollback(ctx)
			return err
		}}},
	},
	{
		name:  "undeploy",
		prior: crashTwo,
		cmds: []crashCmd{{[]string{"admin", "undeploy", "1"}, func(ctx context.Context, s *sysroot.Sysroot) error {
			_, _, err := s.Undeploy(ctx, 1)
			return err
		}}},
	},
	{
		name: "set-default",
		prior: func(e *crashEnv) {
			crashTwo(e)
			e.commit("testos/stable", "3", "kernel-3\n", nil, 2)
			e.ok("admin", "deploy", "--os=testos", "--retain", "testos/stable")
		},
		cmds: []crashCmd{{[]string{"admin", "set-default", "2"}, func(ctx context.Context, s *sysroot.Sysroot) error {
			_, err := s.SetDefault(ctx, 2)
			return err
		}}},
	},
	{
		name:  "kargs",
		prior: crashTwo,
		cmds: []crashCmd{{[]string{"admin", "kargs", "--append=console=ttyS0", "--replace=root=/dev/vda2", "--delete=quiet"}, func(ctx context.Context, s *sysroot.Sysroot) error {
			_, err := s.EditKargs(ctx, 0, sysroot.KargsEdit{Append: []string{"console=ttyS0"}, Replace: []string{"root=/dev/vda2"}, Delete: []string{"quiet"}})
			return err
		}}},
	},
	{
		name:  "pin",
		prior: crashTwo,
		cmds: []crashCmd{{[]string{"admin", "pin", "1"}, func(ctx context.Context, s *sysroot.Sysroot) error {
			_, err := s.SetPinned(ctx, 1, true)
			return err
		}}},
		idempotent: true,
	},
	{
		name: "cleanup",
		prior: func(e *crashEnv) {
			crashTwo(e)
			// Deploys of v3 (on a ref deleted since) killed after the
			// checkout (a staging directory) and just before the switch
			// (a deployment, kernel, refs, loader.N, link farm).
			e.commit("testos/next", "3", "kernel-3\n", nil, 2)
			for _, at := range []string{"sysroot:etc", "sysroot:swap"} {
				if out, err := e.run([]string{"STRATA_CRASH_AT=" + at}, "admin", "deploy", "--os=testos", "testos/next"); !crashKilled(err) {
					e.t.Fatalf("deploy killed at %s: %v\n%s", at, err, out)
				}
			}
			if err := os.Remove(filepath.Join(e.repo(), "refs/heads/testos/next")); err != nil {
				e.t.Fatal(err)
			}
		},
		cmds: []crashCmd{{[]string{"admin", "cleanup"}, func(ctx context.Context, s *sysroot.Sysroot) error {
			_, err := s.Cleanup(ctx, true)
			return err
		}}},
		idempotent: true,
	},
}

// crashRecord runs op's commands through the sysroot package on e,
// recording the failpoints each passes.
func crashRecord(t *testing.T, e *crashEnv, op crashOp) [][]string {
	t.Helper()
	var mu sync.Mutex
	var steps []string
	f := func(step string) error {
		mu.Lock()
		steps = append(steps, step)
		mu.Unlock()
		return nil
	}
	fsutil.Failpoint.Store(&f)
	defer fsutil.Failpoint.Store(nil)
	var out [][]string
	for _, c := range op.cmds {
		steps = nil
		if err := c.lib(context.Background(), e.open()); err != nil {
			t.Fatalf("%s through the sysroot package: %v", strings.Join(c.args, " "), err)
		}
		out = append(out, steps)
	}
	return out
}

// crashKill is one kill: command cmd of the operation dies at the nth
// time it reaches step.
type crashKill struct {
	cmd  int
	step string
	nth  int
}

// crashKills picks where to kill: at every step a SIGKILL can leave a
// different state at, which is before each sysroot:* step and before each
// change (rename:, remove:, etcmerge:), each of the first and last object
// of a prune. Before write:X or fsync:X the state is the one before
// rename:X (a temporary file, not renamed), and syncdir/syncfs change
// nothing a kill can see.
func crashKills(steps [][]string, base string) []crashKill {
	var out []crashKill
	for c, list := range steps {
		seen := map[string]int{}
		kind := func(i int) string {
			if i < 0 || i >= len(list) {
				return ""
			}
			k, _, _ := strings.Cut(list[i], ":")
			return k
		}
		for i, st := range list {
			seen[st]++
			switch k := kind(i); {
			case k == "remove" && kind(i-1) == "remove" && kind(i+1) == "remove":
			case k == "sysroot" || k == "rename" || k == "remove" || k == "etcmerge":
				out = append(out, crashKill{c, strings.ReplaceAll(st, base, "BASE"), seen[st]})
			}
		}
	}
	return out
}

// TestAdminKilled is the kill-based fault matrix (see crashOps), then
// deploys of a larger tree killed at random instants.
func TestAdminKilled(t *testing.T) {
	bin := buildCrashCLI(t)
	total := 0
	for _, op := range crashOps {
		t.Run(op.name, func(t *testing.T) {
			tmpl := newCrashEnv(t, bin)
			op.prior(tmpl)
			rec := tmpl.copy(t)
			steps := crashRecord(t, rec, op)
			kills := crashKills(steps, rec.base)
			// The uninterrupted run through the CLI.
			ref := tmpl.copy(t)
			oldSig := ref.status().sig()
			for _, c := range op.cmds {
				ref.ok(c.args...)
			}
			newSig := ref.status().sig()
			if newSig == oldSig && op.name != "cleanup" {
				t.Fatalf("%s changed nothing: %s", op.name, newSig)
			}
			ref.consistent(oldSig, newSig, true)
			ref.fsck()
			want := ref.listing()
			if d := crashListingDiff(rec.listing(), want); d != "" {
				t.Fatalf("the CLI and the sysroot package give different sysroots:\n%s", d)
			}
			t.Logf("%s: %d kills", op.name, len(kills))
			total += len(kills)
			for _, k := range kills {
				name := fmt.Sprintf("%d-%s@%d", k.cmd, k.step, k.nth)
				name = regexp.MustCompile(`[0-9a-f]{64}`).ReplaceAllStringFunc(name, func(h string) string { return h[:6] })
				t.Run(strings.NewReplacer("BASE/", "", "/", "_").Replace(name), func(t *testing.T) {
					e := tmpl.copy(t)
					for _, c := range op.cmds[:k.cmd] {
						e.ok(c.args...)
					}
					spec := fmt.Sprintf("STRATA_CRASH_AT=%s@%d", strings.ReplaceAll(k.step, "BASE", e.base), k.nth)
					if out, err := e.run([]string{spec}, op.cmds[k.cmd].args...); !crashKilled(err) {
						t.Fatalf("%s not killed: %v\n%s", spec, err, out)
					}
					interop := strings.HasPrefix(k.step, "sysroot:") || strings.HasPrefix(k.step, "remove:")
					state := e.consistent(oldSig, newSig, interop)
					if interop {
						e.fsck()
					}
					if state == "old" || op.idempotent {
						for _, c := range op.cmds {
							e.ok(c.args...)
						}
					} else {
						e.ok("admin", "cleanup")
					}
					// The files of the uninterrupted run (whose status
					// was checked) mean the same deployments and entries.
					if _, err := crashBootable(e.sysroot()); err != nil {
						t.Fatalf("killed at %s (%s state), re-run: %v", k.step, state, err)
					}
					if d := crashListingDiff(e.listing(), want); d != "" {
						t.Errorf("killed at %s (%s state), re-run: not the sysroot an uninterrupted run leaves:\n%s", k.step, state, d)
					}
				})
			}
		})
	}
	t.Logf("%d kills", total)
	t.Run("random", func(t *testing.T) { crashRandom(t, bin) })
}

// crashRandom kills deploys of a larger tree (2000 files, 500 of them in
// /etc, which is copied and merged) at random instants of its run.
func crashRandom(t *testing.T, bin string) {
	tmpl := newCrashEnv(t, bin)
	crashV1(tmpl)
	many := map[string]string{}
	for i := 0; i < 2000; i++ {
		dir := "usr/share/many"
		if i%4 == 0 {
			dir = "usr/etc/many"
		}
		many[fmt.Sprintf("%s/%02d/file-%d", dir, i%32, i)] = strings.Repeat(fmt.Sprint(i), 1+i%300)
	}
	tmpl.commit("testos/stable", "2", "kernel-2\n", many, 1)
	ref := tmpl.copy(t)
	oldSig := ref.status().sig()
	start := time.Now()
	ref.ok("admin", "deploy", "--os=testos", "testos/stable")
	took := time.Since(start)
	newSig := ref.status().sig()
	want := ref.listing()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	states := map[string]int{}
	for i := 0; i < 5; i++ {
		e := tmpl.copy(t)
		// After the process start-up, before the end of a deploy.
		delay := took/3 + time.Duration(rng.Int63n(int64(took*2/3)))
		cmd := e.command(context.Background(), nil, "admin", "deploy", "--os=testos", "testos/stable")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		cmd.Wait()
		state := e.consistent(oldSig, newSig, true)
		states[state]++
		e.fsck()
		if state == "old" {
			e.ok("admin", "deploy", "--os=testos", "testos/stable")
		} else {
			e.ok("admin", "cleanup")
		}
		e.consistent(oldSig, newSig, false)
		if d := crashListingDiff(e.listing(), want); d != "" {
			t.Errorf("killed after %v of %v (%s state), re-run: not the sysroot an uninterrupted run leaves:\n%s", delay, took, state, d)
		}
	}
	t.Logf("deploy of the larger tree: %v; states after the kills: %v", took, states)
}

// crashClean checks that the env's sysroot is consistent and holds
// nothing but its deployments: the boot entries, `strata status` and
// `ostree admin status` agree, ostree fsck passes, and there is one
// loader.N, the live link farm only, no staging directory or temporary
// file, a directory and origin per deployment, a boot directory per
// kernel in use. It returns the status.
func (e *crashEnv) clean() crashStatus {
	e.t.Helper()
	entries, err := crashBootable(e.sysroot())
	if err != nil {
		e.t.Fatal(err)
	}
	st := e.status()
	if st.order() != entries || e.ostreeOrder() != entries {
		e.t.Fatalf("entries %s, strata status %s, ostree admin status %s", entries, st.order(), e.ostreeOrder())
	}
	e.fsck()
	var doc struct {
		BootVersion    int `json:"boot_version"`
		SubBootVersion int `json:"sub_boot_version"`
		Deployments    []struct {
			Checksum     string `json:"checksum"`
			Serial       int    `json:"serial"`
			BootChecksum string `json:"boot_checksum"`
		} `json:"deployments"`
	}
	out, err := e.command(context.Background(), nil, "status", "--json").Output()
	if err != nil || json.Unmarshal(out, &doc) != nil {
		e.t.Fatalf("status --json: %v\n%s", err, out)
	}
	want := map[string]bool{
		fmt.Sprintf("boot/loader.%d", doc.BootVersion): true, "boot/loader": true,
		fmt.Sprintf("ostree/boot.%d", doc.BootVersion): true, fmt.Sprintf("ostree/boot.%d.%d", doc.BootVersion, doc.SubBootVersion): true,
		"ostree/deploy/testos/deploy": true, "ostree/deploy/testos/var": true,
	}
	for _, d := range doc.Deployments {
		p := fmt.Sprintf("ostree/deploy/testos/deploy/%s.%d", d.Checksum, d.Serial)
		want[p], want[p+".origin"], want["boot/ostree/testos-"+d.BootChecksum] = true, true, true
	}
	for _, pattern := range []string{"boot/loader*", "ostree/boot.*", "ostree/.*", "ostree/deploy/testos/*", "ostree/deploy/testos/.*",
		"ostree/deploy/testos/deploy/*", "ostree/deploy/testos/deploy/.*", "boot/ostree/*", "ostree/repo/refs/heads/ostree/*/*/.*"} {
		m, _ := filepath.Glob(filepath.Join(e.sysroot(), pattern))
		for _, p := range m {
			rel, _ := filepath.Rel(e.sysroot(), p)
			if !want[rel] {
				e.t.Errorf("left behind: %s", rel)
			}
			delete(want, rel)
		}
	}
	for rel := range want {
		e.t.Errorf("missing: %s", rel)
	}
	return st
}

// crashHoldLock takes the sysroot lock as ostree does (an OFD write lock
// on ostree/lock, nothing written in it) and returns its release, which
// unlinks the file first as the holder does.
func crashHoldLock(t *testing.T, e *crashEnv) func() {
	t.Helper()
	p := filepath.Join(e.sysroot(), "ostree/lock")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			unix.Unlink(p)
			unix.Close(fd)
		})
	}
	t.Cleanup(release)
	return release
}

// crashProc is a running child with its output collected.
type crashProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan error
}

func (p *crashProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *crashProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func crashStart(t *testing.T, cmd *exec.Cmd) *crashProc {
	t.Helper()
	p := &crashProc{cmd: cmd, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p, p
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	return p
}

// waitOutput waits until the child has printed s.
func (p *crashProc) waitOutput(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q in:\n%s", strings.Join(p.cmd.Args, " "), s, p.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *crashProc) wait(t *testing.T) {
	t.Helper()
	if err := <-p.done; err != nil {
		t.Errorf("%s: %v\n%s", strings.Join(p.cmd.Args, " "), err, p.output())
	}
}

// TestAdminConcurrent runs admin commands at once on one sysroot: strata
// and strata (two deploys, deploy and cleanup) wait for each other, say
// for which lock and holder, and end with every deployment present;
// strata and ostree exclude each other both ways.
func TestAdminConcurrent(t *testing.T) {
	bin := buildCLI(t)
	tmpl := newCrashEnv(t, bin)
	crashV1(tmpl)
	tmpl.commit("testos/stable", "2", "kernel-2\n", nil, 1)
	deploy := []string{"admin", "deploy", "--os=testos", "--retain", "testos/stable"}
	ctx := context.Background()

	// Reference: the same commands one after the other.
	seq := tmpl.copy(t)
	seq.ok(deploy...)
	seq.ok(deploy...)
	wantTwo := seq.listing()
	seq = tmpl.copy(t)
	seq.ok("admin", "cleanup")
	seq.ok(deploy...)
	wantCleanup := seq.listing()

	for _, c := range []struct {
		name string
		cmds [][]string
		want map[string]string
	}{
		{"deploy+deploy", [][]string{deploy, deploy}, wantTwo},
		{"deploy+cleanup", [][]string{deploy, {"admin", "cleanup"}}, wantCleanup},
	} {
		t.Run(c.name+"/waiting", func(t *testing.T) {
			e := tmpl.copy(t)
			release := crashHoldLock(t, e)
			var procs []*crashProc
			for _, args := range c.cmds {
				procs = append(procs, crashStart(t, e.command(ctx, nil, args...)))
			}
			for _, p := range procs {
				p.waitOutput(t, "Waiting for sysroot lock "+filepath.Join(e.sysroot(), "ostree/lock")+" (held by another process (ostree?))")
			}
			if got := e.status().sig(); got != tmpl.status().sig() {
				t.Fatalf("changed under the lock: %s", got)
			}
			release()
			for _, p := range procs {
				p.wait(t)
			}
			e.clean()
			if d := crashListingDiff(e.listing(), c.want); d != "" {
				t.Errorf("not the sysroot of the same commands one after the other:\n%s", d)
			}
		})
		t.Run(c.name+"/race", func(t *testing.T) {
			for round := 0; round < 3; round++ {
				e := tmpl.copy(t)
				var procs []*crashProc
				for _, args := range c.cmds {
					procs = append(procs, crashStart(t, e.command(ctx, nil, args...)))
				}
				for _, p := range procs {
					p.wait(t)
					// The one that waited names the other, by pid.
					if out := p.output(); strings.Contains(out, "Waiting for sysroot lock") && !regexp.MustCompile(`\(held by strata \(pid [0-9]+\)\)`).MatchString(out) {
						t.Errorf("lock message without the holder: %q", out)
					}
				}
				e.clean()
				if d := crashListingDiff(e.listing(), c.want); d != "" {
					t.Errorf("round %d: not the sysroot of the same commands one after the other:\n%s", round, d)
				}
			}
		})
	}

	t.Run("strata+ostree/race", func(t *testing.T) {
		e := tmpl.copy(t)
		n := len(e.status().Deployments)
		for round := 0; round < 3; round++ {
			s := crashStart(t, e.command(ctx, nil, deploy...))
			o := crashStart(t, exec.Command("ostree", "admin", "deploy", "--sysroot="+e.sysroot(), "--os=testos", "--retain", "testos/stable"))
			s.wait(t)
			o.wait(t)
			if got := len(e.clean().Deployments); got != n+2 {
				t.Fatalf("round %d: %d deployments, want %d", round, got, n+2)
			}
			n += 2
		}
	})

	// strata holds the lock while it reads the kernel command line for
	// --karg-proc-cmdline: a FIFO keeps it there until the test writes.
	t.Run("ostree-waits-for-strata", func(t *testing.T) {
		e := tmpl.copy(t)
		fifo := filepath.Join(e.base, "cmdline-fifo")
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		before := e.status().sig()
		// Killed at the end if the test fails while it waits on the FIFO.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s := crashStart(t, e.command(ctx, []string{"STRATA_CMDLINE=" + fifo}, "admin", "deploy", "--os=testos", "--karg-proc-cmdline", "testos/stable"))
		lock := filepath.Join(e.sysroot(), "ostree/lock")
		deadline := time.Now().Add(20 * time.Second)
		for {
			if data, _ := os.ReadFile(lock); string(data) == fmt.Sprintf("strata %d\n", s.cmd.Process.Pid) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("strata did not take the lock:\n%s", s.output())
			}
			time.Sleep(2 * time.Millisecond)
		}
		o := crashStart(t, exec.Command("ostree", "admin", "deploy", "--sysroot="+e.sysroot(), "--os=testos", "testos/stable"))
		select {
		case err := <-o.done:
			t.Fatalf("ostree admin deploy ran under strata's lock: %v\n%s", err, o.output())
		case <-time.After(700 * time.Millisecond):
		}
		if got := e.status().sig(); got != before {
			t.Fatalf("changed while strata held the lock: %s", got)
		}
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteString("root=/dev/vda9 quiet\n")
		w.Close()
		s.wait(t)
		o.wait(t)
		// ostree deployed after strata finished: its deployment (the
		// default) inherited strata's kernel arguments.
		st := e.clean()
		if len(st.Deployments) != 2 || st.sig() != fmt.Sprintf("%.10s[root=/dev/vda9 quiet]pinned=false %.10s[root=/dev/vda9 quiet]pinned=false", st.Deployments[0].Checksum, st.Deployments[1].Checksum) {
			t.Fatalf("after strata then ostree: %s", st.sig())
		}
	})
}
