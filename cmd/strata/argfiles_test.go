package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestArgFilesBounded: files named on the command line (-F, --gpg-import,
// --keyring, --keys-file, --origin-file) are read only when they are
// regular files: a FIFO (which would block) and /dev/zero (which never
// ends) are refused at once, with one line naming the file.
func TestArgFilesBounded(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	r := filepath.Join(dir, "repo")
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "--mode=archive"},
		{"commit", "-b", "main", "--tree=dir=" + src},
		{"remote", "add", "--no-gpg-verify", "o", "http://127.0.0.1:1/"},
	} {
		if out, err := runOut(t, bin, append([]string{"--repo=" + r}, args...)...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	for _, path := range []string{fifo, "/dev/zero"} {
		for _, args := range [][]string{
			{"commit", "-b", "main", "-F", path, "--tree=dir=" + src},
			{"remote", "add", "--gpg-import", path, "p", "http://127.0.0.1:1/"},
			{"remote", "gpg-import", "o", "--keyring", path},
			{"sign", "--keys-file", path, "main"},
			{"gpg-sign", "--verify", "--keyring", path, "main"},
			{"admin", "deploy", "--sysroot=" + filepath.Join(dir, "nosysroot"), "--os=x", "--origin-file", path, "main"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			cmd := exec.CommandContext(ctx, bin, append([]string{"--repo=" + r}, args...)...)
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			timedOut := ctx.Err() != nil
			cancel()
			if timedOut {
				t.Errorf("%v: still running after 10s", args)
				continue
			}
			code := cmd.ProcessState.ExitCode()
			if out, _ := runOut(t, bin, "--repo="+r, "remote", "list"); strings.Contains(out, "p") {
				t.Fatalf("%v: remote p added: %q", args, out)
			}
			if err == nil || code != 1 || !strings.Contains(errb.String(), path) || !strings.Contains(errb.String(), "not a regular file") || strings.Count(errb.String(), "\n") != 1 {
				t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
			}
		}
	}
}

// TestRemoteAddBadKeys: remote add --gpg-import with a file that holds no
// OpenPGP keys (garbage, or empty) fails naming the file and adds no remote.
func TestRemoteAddBadKeys(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	r := filepath.Join(dir, "repo")
	if out, err := runOut(t, bin, "--repo="+r, "init", "--mode=archive"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for name, data := range map[string]string{"garbage": "not a key\n", "empty": ""} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(data), 0o644)
		out, err := runOut(t, bin, "--repo="+r, "remote", "add", "--gpg-import", path, "p", "http://127.0.0.1:1/")
		if err == nil || !strings.Contains(out, path) || strings.Count(out, "\n") != 1 {
			t.Errorf("%s: err %v, output %q", name, err, out)
		}
		if out, _ := runOut(t, bin, "--repo="+r, "remote", "list"); out != "" {
			t.Fatalf("%s: remote added: %q", name, out)
		}
		if _, err := os.Stat(filepath.Join(r, "p.trustedkeys.gpg")); !os.IsNotExist(err) {
			t.Errorf("%s: keyring written (%v)", name, err)
		}
	}
}

// TestGPGImportStdinBounded: keys on standard input are read up to the
// key file limit (remote gpg-import --stdin read without one): more is
// refused with one line, and the remote keeps no keyring.
func TestGPGImportStdinBounded(t *testing.T) {
	bin := buildCLI(t)
	r := filepath.Join(t.TempDir(), "repo")
	for _, args := range [][]string{{"init", "--mode=archive"}, {"remote", "add", "--no-gpg-verify", "o", "http://127.0.0.1:1/"}} {
		if out, err := runOut(t, bin, append([]string{"--repo=" + r}, args...)...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	for _, args := range [][]string{
		{"remote", "gpg-import", "o", "--stdin"},
		{"remote", "add", "--gpg-import", "-", "p", "http://127.0.0.1:1/"},
	} {
		cmd := exec.Command(bin, append([]string{"--repo=" + r}, args...)...)
		cmd.Stdin = io.LimitReader(zeros{}, maxKeyringSize+1)
		out, err := cmd.CombinedOutput()
		if err == nil || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "standard input: larger than allowed") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(r, "*.trustedkeys.gpg")); len(m) != 0 {
		t.Errorf("keyrings written: %v", m)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
