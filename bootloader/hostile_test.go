package bootloader

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/errdefs"
)

// TestFindKernelHostile plants boot files that lead out of the tree, to
// /dev/zero, or are FIFOs: each is refused (or, for the kernel, not
// taken), promptly, and a host file is never what the layout names.
func TestFindKernelHostile(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "host"), []byte("host file"), 0o644); err != nil {
		t.Fatal(err)
	}
	host := filepath.Join(outside, "host")
	rel := strings.Repeat("../", 30) + strings.TrimPrefix(host, "/")
	for _, tc := range []struct {
		name  string
		files map[string]string
		fifo  string
		err   error
	}{
		{"kernel absolute out", map[string]string{"usr/lib/modules/5.0/vmlinuz": "->" + host}, "", ErrNoKernel},
		{"kernel relative out", map[string]string{"usr/lib/modules/5.0/vmlinuz": "->" + rel}, "", ErrNoKernel},
		{"kernel /dev/zero", map[string]string{"usr/lib/modules/5.0/vmlinuz": "->/dev/zero"}, "", ErrNoKernel},
		{"kernel fifo", map[string]string{"usr/lib/modules/5.0/": ""}, "usr/lib/modules/5.0/vmlinuz", ErrNoKernel},
		{"initramfs out", map[string]string{"usr/lib/modules/5.0/vmlinuz": "k", "usr/lib/modules/5.0/initramfs.img": "->" + host}, "", errdefs.ErrInvalid},
		{"initramfs /dev/zero", map[string]string{"usr/lib/modules/5.0/vmlinuz": "k", "usr/lib/modules/5.0/initramfs.img": "->/dev/zero"}, "", errdefs.ErrInvalid},
		{"initramfs fifo", map[string]string{"usr/lib/modules/5.0/vmlinuz": "k"}, "usr/lib/modules/5.0/initramfs.img", errdefs.ErrInvalid},
		{"devicetree out", map[string]string{"usr/lib/modules/5.0/vmlinuz": "k", "usr/lib/modules/5.0/devicetree": "->" + rel}, "", errdefs.ErrInvalid},
		{"dtb fifo", map[string]string{"usr/lib/modules/5.0/vmlinuz": "k", "usr/lib/modules/5.0/dtb/": ""}, "usr/lib/modules/5.0/dtb/x.dtb", errdefs.ErrInvalid},
		{"hmac out", map[string]string{"usr/lib/modules/5.0/vmlinuz": "k", "usr/lib/modules/5.0/.vmlinuz.hmac": "->" + host}, "", errdefs.ErrInvalid},
		{"modules out", map[string]string{"usr/lib/modules": "->" + outside}, "", ErrNoKernel},
		{"kver newline", map[string]string{"usr/lib/modules/5.0\ntitle x/vmlinuz": "k"}, "", errdefs.ErrInvalid},
		{"kver space", map[string]string{"usr/lib/modules/5.0 x/vmlinuz": "k"}, "", errdefs.ErrInvalid},
		{"legacy out", map[string]string{"boot/vmlinuz-5.0-" + legacyCsum: "->" + host}, "", errdefs.ErrInvalid},
		{"legacy newline", map[string]string{"boot/vmlinuz-5.0\nx-" + legacyCsum: "k"}, "", errdefs.ErrInvalid},
	} {
		root := writeTree(t, tc.files)
		if tc.fifo != "" {
			if err := unix.Mkfifo(filepath.Join(root, tc.fifo), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		l, err := FindKernel(context.Background(), root)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: %+v, %v; want %v", tc.name, l, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error of several lines: %q", tc.name, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %v", tc.name, d)
		}
	}
}

func TestDeploymentNameHostile(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"dev zero":  {"usr/lib/os-release": "->/dev/zero"},
		"directory": {"usr/lib/os-release/": ""},
		"too large": {"usr/lib/os-release": "ID=x\n#" + strings.Repeat("x", MaxOSReleaseSize)},
	} {
		if _, err := DeploymentName(writeTree(t, files)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A symlink inside the tree is followed inside it.
	root := writeTree(t, map[string]string{"usr/lib/os-release": "->/etc/real", "etc/real": "PRETTY_NAME=inside\n"})
	if n, err := DeploymentName(root); err != nil || n != "inside" {
		t.Errorf("in-tree symlink: %q %v", n, err)
	}
}

func TestBootNameChecks(t *testing.T) {
	for _, ok := range []string{"6.1.0-13-amd64", "5.14.0-362.el9.x86_64", "vmlinuz-6.1+deb12"} {
		if err := CheckBootName(ok); err != nil {
			t.Errorf("CheckBootName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "6.1\n", "6.1 x", "6.1\tx", "a\x00", "a\x7f", "\xff"} {
		if err := CheckBootName(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("CheckBootName(%q): %v", bad, err)
		}
	}
	e := NewEntry()
	e.Set("title", "Debian GNU/Linux 12 (bookworm) 1.0 (ostree:0)")
	e.Set("options", `root=/dev/vda1 quiet foo="a b"`)
	if err := e.Check(); err != nil {
		t.Fatal(err)
	}
	e.Set("title", "x\nlinux /evil")
	if err := e.Check(); !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "title") {
		t.Errorf("title with a newline: %v", err)
	}
	e.Set("title", "ok")
	e.Set("bad key", "v")
	if err := e.Check(); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("key with a space: %v", err)
	}
}
