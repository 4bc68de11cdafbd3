package updates

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/sysroot"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// The agent on a real sysroot (made by ostree, deployed by strata, made to
// look booted): it finds v2 on the origin's ref, stages it through the
// upgrader and calls the reboot command; a withdrawn v3 is not taken.
func TestAgentOnSysroot(t *testing.T) {
	base := t.TempDir()
	sys, runDir := filepath.Join(base, "sysroot"), filepath.Join(base, "run")
	os.MkdirAll(runDir, 0o755)
	os.MkdirAll(sys, 0o755)
	// Deployment directories are immutable (chattr +i), as ostree makes
	// them; let the temporary directory go.
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join(sys, "ostree/deploy/*/deploy/*"))
		for _, d := range dirs {
			exec.Command("chattr", "-i", d).Run()
		}
	})
	tree := filepath.Join(base, "tree")
	for p, c := range map[string]string{
		"usr/lib/modules/5.10.0-test/vmlinuz":       "kernel",
		"usr/lib/modules/5.10.0-test/initramfs.img": "initramfs",
		"usr/lib/os-release":                        "NAME=test\nID=test\nPRETTY_NAME=Test\n",
		"usr/etc/hostname":                          "test\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755)
		if err := os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "ostree", "admin", "init-fs", sys)
	run(t, "ostree", "admin", "os-init", "testos", "--sysroot="+sys)
	repoPath := filepath.Join(sys, "ostree/repo")
	commit := func(version string, meta ...string) string {
		os.WriteFile(filepath.Join(tree, "usr/lib/version"), []byte(version), 0o644)
		args := []string{"commit", "--repo=" + repoPath, "-b", "testos/stable", "--tree=dir=" + tree, "--add-metadata-string=version=" + version, "--timestamp=2026-12-0" + version + " 00:00:00"}
		for _, m := range meta {
			args = append(args, "--add-metadata-string="+m)
		}
		return run(t, "ostree", args...)
	}
	v1 := commit("1")
	cmdline := filepath.Join(base, "cmdline")
	os.WriteFile(cmdline, []byte("root=/dev/vda1\n"), 0o644)
	opts := sysroot.Options{RunDir: runDir, Cmdline: cmdline, Root: "/"}
	s, err := sysroot.Open(sys, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := s.Deploy(ctx, sysroot.DeployOptions{OS: "testos", Revision: "testos/stable"})
	if err != nil {
		t.Fatal(err)
	}
	// Boot it.
	var ostreeArg string
	for _, f := range strings.Fields(res.Deployment.Options()) {
		if strings.HasPrefix(f, "ostree=") {
			ostreeArg = f
		}
	}
	os.WriteFile(filepath.Join(runDir, "ostree-booted"), nil, 0o644)
	os.WriteFile(cmdline, []byte("root=/dev/vda1 "+ostreeArg+"\n"), 0o644)
	opts.Root = s.DeploymentPath(res.Deployment)
	bootID := filepath.Join(base, "boot_id")
	os.WriteFile(bootID, []byte("boot-1\n"), 0o644)
	marker := filepath.Join(base, "rebooted")
	system := &SysrootSystem{
		Open:          func() (*sysroot.Sysroot, error) { return sysroot.Open(sys, opts) },
		RebootCommand: []string{"touch", marker},
		BootIDPath:    bootID,
	}
	f, err := system.Facts(ctx)
	if err != nil || f.Booted != v1 || f.Staged != "" || f.BootID != "boot-1" {
		t.Fatalf("facts: %+v %v", f, err)
	}
	cfg, _ := ParseConfig("i.toml", nil)
	clk := &fakeClock{now: mustTime(t, "2026-12-07T10:00:00Z")}
	a := &Agent{Config: cfg, System: system, Clock: clk, StatePath: filepath.Join(base, "state.json"), NodeID: "n"}
	st, err := a.Run(ctx, time.Hour)
	if err != nil || st.Phase != PhaseUpToDate {
		t.Fatalf("v1 only: %+v %v", st, err)
	}
	v2 := commit("2")
	st, err = a.Run(ctx, time.Hour)
	if err != nil || st.Phase != PhaseRebooting || st.Candidate != v2 {
		t.Fatalf("v2: %+v %v", st, err)
	}
	if f, _ := system.Facts(ctx); f.Staged != v2 {
		t.Fatalf("staged %s, want %s", f.Staged, v2)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("reboot command not run")
	}
	// A withdrawn v3 is never staged.
	os.Remove(marker)
	commit("3", "strata.updates.deadend=true", "strata.updates.deadend_reason=corrupts /var")
	st, err = a.Run(ctx, time.Hour)
	if err != nil || st.Phase != PhaseDeadEnd || !strings.Contains(st.Reason, "corrupts /var") {
		t.Fatalf("v3: %+v %v", st, err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("rebooted for a dead end")
	}
	if f, _ := system.Facts(ctx); f.Staged != v2 {
		t.Fatalf("staged %s after the dead end, want v2 still", f.Staged)
	}
}
