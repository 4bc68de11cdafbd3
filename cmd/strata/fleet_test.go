package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/fleetlock"
	"github.com/strata-os/strata/internal/etcdtest"
)

// fleetlock serve, status and release against a real etcd, through the
// binary; a machine that died holding its slot is visible in status and
// freed by release.
func TestFleetlockCLI(t *testing.T) {
	bin := buildCLI(t)
	e := etcdtest.Start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := exec.Command(bin, "fleetlock", "serve", "--etcd-endpoints="+e.Endpoint, "--listen="+addr, "--group=default=1", "--group=workers=2")
	logf, _ := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	srv.Stderr = logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	ctx := context.Background()
	dead := &fleetlock.Client{BaseURL: "http://" + addr, ID: "dead-node", Group: "default"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := dead.PreReboot(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("server never answered: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := runOut(t, bin, "fleetlock", "status", "--etcd-endpoints="+e.Endpoint)
	if err != nil || !strings.Contains(out, "default: 1 of 1 slots held: dead-node\n") || !strings.Contains(out, "workers: 0 of 2 slots held\n") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if err := (&fleetlock.Client{BaseURL: "http://" + addr, ID: "b", Group: "default"}).PreReboot(ctx); err == nil {
		t.Fatal("second holder of one slot")
	}
	out, err = runOut(t, bin, "fleetlock", "release", "dead-node", "--etcd-endpoints="+e.Endpoint)
	if err != nil || !strings.Contains(out, "released dead-node") {
		t.Fatalf("release: %v\n%s", err, out)
	}
	if out, err := runOut(t, bin, "fleetlock", "release", "dead-node", "--etcd-endpoints="+e.Endpoint); err == nil {
		t.Fatalf("second release succeeded: %s", out)
	}
	if err := (&fleetlock.Client{BaseURL: "http://" + addr, ID: "b", Group: "default"}).PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(logf.Name())
	if !strings.Contains(string(b), "pre-reboot group=default id=b: failed_lock") {
		t.Fatalf("server log:\n%s", b)
	}
	for _, bad := range [][]string{
		{"fleetlock", "serve", "--etcd-endpoints=" + e.Endpoint, "--listen=" + addr, "--group=default"},
		{"fleetlock", "serve", "--etcd-endpoints=" + e.Endpoint, "--listen=" + addr, "--group=a/b=1"},
		{"fleetlock", "status"},
	} {
		if out, err := runOut(t, bin, bad...); err == nil || !strings.HasPrefix(out, "error: ") || strings.Count(out, "\n") != 1 {
			t.Errorf("%v: %v %q", bad, err, out)
		}
	}
}

func TestUpdateStatusCLI(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	os.MkdirAll(conf, 0o755)
	os.WriteFile(filepath.Join(conf, "10-w.toml"), []byte("[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Sat\"]\nstart_time = \"23:30\"\nlength_minutes = 60\n"), 0o644)
	state := filepath.Join(dir, "state.json")
	out, err := runOut(t, bin, "update", "status", "--config-dir="+conf, "--state="+state)
	if err != nil || !strings.Contains(out, "Strategy: periodic (Sat 23:30 for 60 min UTC)") || !strings.Contains(out, "Last run: never") {
		t.Fatalf("%v\n%s", err, out)
	}
	os.WriteFile(state, []byte(`{"status":{"time":"2026-12-07T10:00:00Z","phase":"waiting-for-window","reason":"abc is staged; next maintenance window at 2026-12-12T23:30:00Z","until":"2026-12-12T23:30:00Z"}}`), 0o644)
	out, err = runOut(t, bin, "update", "status", "--config-dir="+conf, "--state="+state)
	if err != nil || !strings.Contains(out, "State: waiting-for-window: abc is staged") || !strings.Contains(out, "Next step: 2026-12-12T23:30:00Z") {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = runOut(t, bin, "update", "status", "--json", "--config-dir="+conf, "--state="+state)
	if err != nil || !strings.Contains(out, `"phase": "waiting-for-window"`) {
		t.Fatalf("%v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(conf, "20-bad.toml"), []byte("[updates]\n\nstrategy = \"periodic\"\nwindow = 3\n"), 0o644)
	out, err = runOut(t, bin, "update", "status", "--config-dir="+conf, "--state="+state)
	if want := fmt.Sprintf("error: invalid argument: %s:4: unknown key updates.window\n", filepath.Join(conf, "20-bad.toml")); err == nil || out != want {
		t.Fatalf("%v\n%q\nwant %q", err, out, want)
	}
}
