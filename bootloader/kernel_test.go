package bootloader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/errdefs"
)

func TestFindKernelErrors(t *testing.T) {
	ctx := context.Background()
	other := "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	for _, tc := range []struct {
		name  string
		files map[string]string
		err   error
	}{
		{"empty", map[string]string{"usr/bin/sh": "x"}, ErrNoKernel},
		{"modules without vmlinuz", map[string]string{"usr/lib/modules/5.0/modules.dep": "", "usr/lib/modules/6.0/vmlinuz/": ""}, ErrNoKernel},
		{"vmlinuz symlink to nothing", map[string]string{"usr/lib/modules/5.0/vmlinuz": "->nowhere"}, ErrNoKernel},
		{"legacy without checksum", map[string]string{"boot/vmlinuz-5.0": "k"}, ErrNoKernel},
		{"legacy mismatch", map[string]string{"boot/vmlinuz-5.0-" + legacyCsum: "k", "boot/initramfs-5.0.img-" + other: "i"}, errdefs.ErrInvalid},
		{"legacy dt mismatch", map[string]string{"boot/vmlinuz-5.0-" + legacyCsum: "k", "boot/devicetree-5.0-" + other: "d"}, errdefs.ErrInvalid},
	} {
		_, err := FindKernel(ctx, writeTree(t, tc.files))
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.err)
		}
	}
	if !errors.Is(ErrNoKernel, errdefs.ErrNotFound) {
		t.Error("ErrNoKernel is not ErrNotFound")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := FindKernel(cctx, writeTree(t, map[string]string{"usr/lib/modules/5.0/vmlinuz": "k"})); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestBootCsum pins the checksum arithmetic: kernel, initramfs, then the
// dtb/ files in byte order, symlinks followed, dangling ones skipped.
func TestBootCsum(t *testing.T) {
	root := writeTree(t, map[string]string{
		"usr/lib/modules/5.0/vmlinuz":           "K",
		"usr/lib/modules/5.0/initramfs.img":     "->../../../../initrd.real",
		"initrd.real":                           "I",
		"usr/lib/modules/5.0/dtb/b/x.dtb":       "X",
		"usr/lib/modules/5.0/dtb/a.dtb":         "A",
		"usr/lib/modules/5.0/dtb/c-link.dtb":    "->a.dtb",
		"usr/lib/modules/5.0/dtb/d-dangling":    "->nowhere",
		"usr/lib/modules/5.0/dtb/B-upper-first": "U",
	})
	l, err := FindKernel(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("K" + "I" + "U" + "A" + "X" + "A"))
	if want := hex.EncodeToString(sum[:]); l.BootCsum != want {
		t.Errorf("bootcsum %s, want %s", l.BootCsum, want)
	}
	if l.Devicetree != "dtb" || l.DevicetreeName != "" || l.Initramfs != "initramfs.img" || l.InitramfsName != "initramfs-5.0.img" {
		t.Errorf("layout %+v", l)
	}
	// An unreadable initramfs (a directory) is an error, not "none".
	if err := os.Remove(filepath.Join(root, "usr/lib/modules/5.0/initramfs.img")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "usr/lib/modules/5.0/initramfs.img"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := FindKernel(context.Background(), root); err == nil {
		t.Error("initramfs.img directory accepted")
	}
}
