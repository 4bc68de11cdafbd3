package grubcfg

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/errdefs"
)

func entry(t *testing.T, s string) *bootloader.Entry {
	e, err := bootloader.ParseEntry([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestConfigIsValidGRUBScript checks the generated grub.cfg with GRUB's
// own parser (grub-script-check) and its fallback structure.
func TestConfigIsValidGRUBScript(t *testing.T) {
	cfg, err := Config([]Entry{
		{Key: "new.0", Entry: entry(t, "title it's new\nlinux /ostree/os-b/vmlinuz-6\ninitrd /ostree/os-b/initramfs-6.img\noptions root=UUID=x rw ostree=/ostree/boot.1/os/b/0\n")},
		{Key: "old.0", Entry: entry(t, "title old\nlinux /ostree/os-a/vmlinuz-6\noptions ostree=/ostree/boot.1/os/a/0\n")},
	}, "/boot")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "grub.cfg")
	if err := os.WriteFile(p, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("grub-script-check", p).CombinedOutput(); err != nil {
		t.Fatalf("grub-script-check: %v\n%s\n%s", err, out, cfg)
	}
	one, err := Config([]Entry{{Key: "only.0", Entry: entry(t, "title x\nlinux /v\n")}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+"1", one, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("grub-script-check", p+"1").CombinedOutput(); err != nil {
		t.Fatalf("grub-script-check (one entry): %v\n%s\n%s", err, out, one)
	}
	s := string(cfg)
	for _, want := range []string{
		"set strata_default='new.0'",
		"load_env strata_pending strata_left",
		"if [ \"${strata_left}\" = \"0\" ]; then\n    set default=1",
		"elif [ \"${strata_left}\" = \"3\" ]; then\n    set strata_left=2\n    save_env strata_left",
		"menuentry 'it'\\''s new'",
		"linux /boot/ostree/os-b/vmlinuz-6 root=UUID=x rw ostree=/ostree/boot.1/os/b/0",
		"initrd /boot/ostree/os-b/initramfs-6.img",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, s)
		}
	}
}

// TestEnvInteropWithGrubEditenv: grub-editenv reads what UpdateEnv
// writes and the other way round.
func TestEnvInteropWithGrubEditenv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "grubenv")
	if out, err := exec.Command("grub-editenv", p, "create").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := exec.Command("grub-editenv", p, "set", "saved_entry=x", "other=a b").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if err := UpdateEnv(p, map[string]string{PendingKey: "abc.0", LeftKey: "3", "saved_entry": ""}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("grub-editenv", p, "list").CombinedOutput()
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if got, want := string(out), "other=a b\nstrata_left=3\nstrata_pending=abc.0\n"; got != want {
		t.Errorf("grub-editenv list = %q, want %q", got, want)
	}
	st, _ := os.Stat(p)
	if st.Size() != EnvSize {
		t.Errorf("size %d", st.Size())
	}
	if err := exec.Command("grub-editenv", p, "set", LeftKey+"=0").Run(); err != nil {
		t.Fatal(err)
	}
	env, err := ReadEnv(p)
	if err != nil || env[LeftKey] != "0" || env[PendingKey] != "abc.0" {
		t.Fatalf("ReadEnv = %v, %v", env, err)
	}
}

// TestConfigHostileEntry: kernel arguments and file names holding GRUB
// script syntax (';', '$', quotes, braces, '#') stay literal arguments of
// the linux and initrd commands: GRUB's parser accepts the file, the menu
// entry still ends where it should, and the lines are escaped exactly. An
// unclosed double quote, which would swallow the rest of grub.cfg, is
// refused and nothing is returned.
func TestConfigHostileEntry(t *testing.T) {
	hostile := entry(t, "title a'b;c $x\nlinux /ostree/os-b/vmlinuz-6;reboot\ninitrd /ostree/os-b/init$rd\n"+
		`options root=UUID=x it's a;reboot $prefix #c } {x} (y) a|b&c<d>e q="a b $v \z" ostree=/ostree/boot.1/os/b/0`+"\n")
	cfg, err := Config([]Entry{
		{Key: "new.0", Entry: hostile},
		{Key: "old.0", Entry: entry(t, "title old\nlinux /ostree/os-a/vmlinuz-6\noptions ostree=/ostree/boot.1/os/a/0\n")},
	}, "/boot")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "grub.cfg")
	if err := os.WriteFile(p, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("grub-script-check", p).CombinedOutput(); err != nil {
		t.Fatalf("grub-script-check: %v\n%s\n%s", err, out, cfg)
	}
	s := string(cfg)
	for _, want := range []string{
		"menuentry 'a'\\''b;c $x' --id 'strata-0' {\n" +
			`  linux /boot/ostree/os-b/vmlinuz-6\;reboot root=UUID=x it\'s a\;reboot \$prefix \#c \} \{x\} \(y\) a\|b\&c\<d\>e q="a b \$v \\z" ostree=/ostree/boot.1/os/b/0` + "\n" +
			`  initrd /boot/ostree/os-b/init\$rd` + "\n}\n",
		"menuentry 'old' --id 'strata-1' {\n  linux /boot/ostree/os-a/vmlinuz-6 ostree=/ostree/boot.1/os/a/0\n}\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, s)
		}
	}
	unclosed := entry(t, "title x\nlinux /v\noptions a=\"b c\n")
	if cfg, err := Config([]Entry{{Key: "k.0", Entry: unclosed}}, ""); !errors.Is(err, errdefs.ErrInvalid) || cfg != nil {
		t.Fatalf("unclosed quote: %v, %q", err, cfg)
	}
}

// TestUpdateEnvHostile: a grubenv without GRUB's header, larger than
// GRUB's 1024 bytes, a FIFO (which must not block) or a directory is
// refused by UpdateEnv, which then writes nothing: the file keeps its
// bytes and no temporary file is left. A grubenv planted as a symlink
// to a file outside is replaced, never written through.
func TestUpdateEnvHostile(t *testing.T) {
	set := map[string]string{PendingKey: "abc.0", LeftKey: "3"}
	valid, err := FormatEnv(map[string]string{"saved_entry": "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make func(p string) error
	}{
		{"no header", func(p string) error { return os.WriteFile(p, bytes.Repeat([]byte("#"), EnvSize), 0o644) }},
		{"oversize", func(p string) error {
			return os.WriteFile(p, append(valid, bytes.Repeat([]byte("#"), 1<<20)...), 0o644)
		}},
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o644) }},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "grubenv")
			if err := tc.make(p); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Lstat(p)
			var beforeData []byte
			if before.Mode().IsRegular() {
				beforeData, _ = os.ReadFile(p)
			}
			done := make(chan error, 1)
			go func() { done <- UpdateEnv(p, set) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), p) && !strings.Contains(err.Error(), "grubenv") {
					t.Fatalf("UpdateEnv = %v, want an error naming grubenv", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("UpdateEnv blocked")
			}
			after, err := os.Lstat(p)
			if err != nil || after.Mode() != before.Mode() || after.Size() != before.Size() {
				t.Fatalf("grubenv changed: %v -> %v (%v)", before.Mode(), after, err)
			}
			if beforeData != nil {
				if data, _ := os.ReadFile(p); !bytes.Equal(data, beforeData) {
					t.Fatal("grubenv rewritten")
				}
			}
			if des, _ := os.ReadDir(dir); len(des) != 1 {
				t.Fatalf("left in the directory: %v", des)
			}
		})
	}
	t.Run("symlink out", func(t *testing.T) {
		dir, outside := t.TempDir(), t.TempDir()
		sentinel := filepath.Join(outside, "sentinel")
		if err := os.WriteFile(sentinel, valid, 0o644); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "grubenv")
		if err := os.Symlink(sentinel, p); err != nil {
			t.Fatal(err)
		}
		if err := UpdateEnv(p, set); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(sentinel); !bytes.Equal(data, valid) {
			t.Fatal("sentinel outside written through the symlink")
		}
		if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() || st.Size() != EnvSize {
			t.Fatalf("grubenv %v %v", st, err)
		}
		env, err := ReadEnv(p)
		if err != nil || env[PendingKey] != "abc.0" || env["saved_entry"] != "x" {
			t.Fatalf("ReadEnv = %v, %v", env, err)
		}
	})
}
