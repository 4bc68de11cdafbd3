package health

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/install"
	"github.com/strata-os/strata/sysroot"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// booted installs a small OS into a directory (no boot loader) with the
// real ostree as the source and opens it as the booted system.
func booted(t *testing.T) (*sysroot.Sysroot, func() *sysroot.Sysroot) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for p, c := range map[string]string{
		"usr/lib/modules/6.1.0-test/vmlinuz":       "kernel",
		"usr/lib/modules/6.1.0-test/initramfs.img": "initramfs",
		"usr/lib/os-release":                       "ID=test\n",
	} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644))
	}
	src := filepath.Join(dir, "repo")
	for _, args := range [][]string{{"init", "--repo=" + src, "--mode=bare-user"}, {"commit", "--repo=" + src, "-b", "os", "--tree=dir=" + tree}} {
		if out, err := exec.Command("ostree", args...).CombinedOutput(); err != nil {
			t.Fatalf("ostree %v: %v %s", args, err, out)
		}
	}
	root := filepath.Join(dir, "sysroot")
	must(t, os.Mkdir(root, 0o755))
	res, err := install.ToFilesystem(context.Background(), root, install.FSOptions{
		Options:  install.Options{SourceRepo: src, Ref: "os", Bootloader: install.None, BootCountingTries: 3},
		RootKarg: "root=/dev/test",
	})
	must(t, err)
	t.Cleanup(func() {
		exec.Command("chattr", "-i", filepath.Join(root, "ostree/deploy/default/deploy", res.Deployment)).Run()
	})
	run := filepath.Join(dir, "run")
	must(t, os.MkdirAll(run, 0o755))
	must(t, os.WriteFile(filepath.Join(run, "ostree-booted"), nil, 0o644))
	open := func() *sysroot.Sysroot {
		s0, err := sysroot.Open(root, sysroot.Options{RunDir: run, Cmdline: "/dev/null", Root: "/"})
		must(t, err)
		d := s0.Deployments()[0]
		must(t, os.WriteFile(filepath.Join(dir, "cmdline"), []byte(d.Options()+"\n"), 0o644))
		s, err := sysroot.Open(root, sysroot.Options{RunDir: run, Cmdline: filepath.Join(dir, "cmdline"), Root: filepath.Join(root, "ostree/deploy/default/deploy", res.Deployment)})
		must(t, err)
		if s.Booted() == nil {
			t.Fatal("fixture not booted")
		}
		return s
	}
	return open(), open
}

func script(t *testing.T, root, rel, body string) {
	p := filepath.Join(root, rel)
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
}

func TestFailingRequiredCheckMarksBad(t *testing.T) {
	s, reopen := booted(t)
	root := t.TempDir()
	marker := filepath.Join(root, "red-ran")
	script(t, root, "usr/lib/greenboot/check/required.d/10-ok.sh", "exit 0")
	script(t, root, "etc/greenboot/check/required.d/20-app.sh", "echo app down; exit 1")
	script(t, root, "usr/lib/greenboot/check/required.d/20-app.sh", "exit 0") // hidden by /etc's
	script(t, root, "etc/greenboot/check/required.d/30-never.sh", "exit 0")
	script(t, root, "etc/greenboot/red.d/10-note.sh", "touch "+marker)
	res, err := Check(context.Background(), s, Options{Root: root})
	must(t, err)
	if res.Healthy || res.FailedCheck != "/etc/greenboot/check/required.d/20-app.sh" || !strings.Contains(res.Output, "app down") {
		t.Fatalf("result %+v", res)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("red.d did not run")
	}
	for _, p := range res.Ran {
		if strings.HasSuffix(p, "30-never.sh") {
			t.Error("a check after the failed required one ran")
		}
	}
	st, err := ReadState(filepath.Join(root, DefaultStateFile))
	if err != nil || st == nil || st.FailedCheck != res.FailedCheck || !st.MarkedBad {
		t.Fatalf("state %+v %v", st, err)
	}
	if b := reopen().Booted(); !strings.Contains(b.EntryFile, "+0-") {
		t.Errorf("entry %s not marked bad", b.EntryFile)
	}
	// The next boot (the previous deployment's, in a real rollback)
	// passes its checks: the failure stays recorded for strata status,
	// and a later healthy run keeps it still.
	must(t, os.Remove(filepath.Join(root, "etc/greenboot/check/required.d/20-app.sh")))
	for run := 1; run <= 2; run++ {
		res2, err := Check(context.Background(), reopen(), Options{Root: root})
		must(t, err)
		if !res2.Healthy {
			t.Fatalf("run %d: %+v", run, res2)
		}
		st, err := ReadState(filepath.Join(root, DefaultStateFile))
		must(t, err)
		if f := st.Failure(); !st.Healthy || f == nil || f.FailedCheck != res.FailedCheck || f.Deployment != res.Deployment || f.LastFailure != nil {
			t.Fatalf("run %d: state %+v, failure %+v", run, st, f)
		}
	}
}

func TestPassingChecksBless(t *testing.T) {
	s, reopen := booted(t)
	if b := s.Booted(); !strings.Contains(b.EntryFile, "+3") {
		t.Fatalf("fixture entry %s has no counter", b.EntryFile)
	}
	root := t.TempDir()
	script(t, root, "etc/greenboot/check/required.d/10-ok.sh", "exit 0")
	script(t, root, "etc/greenboot/check/wanted.d/10-meh.sh", "exit 1")
	var warned []string
	res, err := Check(context.Background(), s, Options{Root: root, Warner: warnFunc(func(err error) { warned = append(warned, err.Error()) })})
	must(t, err)
	if !res.Healthy || len(warned) != 1 {
		t.Fatalf("result %+v, warnings %v", res, warned)
	}
	if b := reopen().Booted(); strings.Contains(b.EntryFile, "+") {
		t.Errorf("entry %s not blessed", b.EntryFile)
	}
}

type warnFunc func(error)

func (f warnFunc) Warn(err error) { f(err) }

// TestHostileCheckDirs: what a check directory holds besides executable
// files is not run (a non-executable file, a FIFO, which must not block
// the run, a directory, a dangling symlink); a symlink to an executable
// runs, as greenboot's do. A state file planted as a symlink to a file
// outside is replaced, never written through: the sentinel keeps its
// bytes.
func TestHostileCheckDirs(t *testing.T) {
	s, reopen := booted(t)
	root := t.TempDir()
	outside := t.TempDir()
	sentinel := filepath.Join(outside, "sentinel")
	must(t, os.WriteFile(sentinel, []byte("keep"), 0o644))
	req := filepath.Join(root, "etc/greenboot/check/required.d")
	script(t, root, "etc/greenboot/check/required.d/10-ok.sh", "exit 0")
	must(t, os.WriteFile(filepath.Join(req, "20-notexec.sh"), []byte("#!/bin/sh\nexit 1\n"), 0o644))
	must(t, unix.Mkfifo(filepath.Join(req, "30-fifo"), 0o755))
	must(t, os.Mkdir(filepath.Join(req, "40-dir"), 0o755))
	must(t, os.Symlink(filepath.Join(outside, "missing"), filepath.Join(req, "50-dangling")))
	target := filepath.Join(outside, "linked.sh")
	must(t, os.WriteFile(target, []byte("#!/bin/sh\nexit 0\n"), 0o755))
	must(t, os.Symlink(target, filepath.Join(req, "60-linked")))
	state := filepath.Join(root, DefaultStateFile)
	must(t, os.MkdirAll(filepath.Dir(state), 0o755))
	must(t, os.Symlink(sentinel, state))

	res, err := Check(context.Background(), s, Options{Root: root})
	must(t, err)
	if !res.Healthy || strings.Join(res.Ran, " ") != filepath.Join(req, "10-ok.sh")+" "+filepath.Join(req, "60-linked") {
		t.Fatalf("result %+v", res)
	}
	if data, err := os.ReadFile(sentinel); err != nil || string(data) != "keep" {
		t.Fatalf("sentinel outside: %q %v", data, err)
	}
	if st, err := os.Lstat(state); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("state file %v %v", st, err)
	}
	if st, err := ReadState(state); err != nil || st == nil || !st.Healthy {
		t.Fatalf("state %+v %v", st, err)
	}
	if b := reopen().Booted(); strings.Contains(b.EntryFile, "+") {
		t.Errorf("entry %s not blessed", b.EntryFile)
	}
}
