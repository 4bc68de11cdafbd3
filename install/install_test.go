package install

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/grubcfg"
)

// sourceRepo commits a small bootable-looking tree with the real ostree.
func sourceRepo(t *testing.T) string {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for p, c := range map[string]string{
		"usr/lib/modules/6.1.0-test/vmlinuz":       strings.Repeat("kernel", 1000),
		"usr/lib/modules/6.1.0-test/initramfs.img": strings.Repeat("initramfs", 1000),
		"usr/lib/os-release":                       "ID=test\nPRETTY_NAME=\"Test OS\"\n",
		"usr/etc/fstab":                            "# fstab\n",
		"usr/lib/bootc/kargs.d/10-console.toml":    "kargs = [\"console=ttyS0,115200\", \"quiet\"]\n",
	} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644))
	}
	r := filepath.Join(dir, "repo")
	ostree(t, "init", "--repo="+r, "--mode=bare-user")
	ostree(t, "commit", "--repo="+r, "-b", "test/os", "--tree=dir="+tree, "--add-metadata-string=version=1")
	return r
}

func ostree(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ostree", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mountPart mounts partition n (1-based) of img read-only until the test
// ends.
func mountPart(t *testing.T, img string, n int, fstype string) string {
	parts, err := readTable(context.Background(), img)
	must(t, err)
	dir := t.TempDir()
	p := parts[n-1]
	out, err := exec.Command("mount", "-t", fstype, "-o", fmt.Sprintf("ro,loop,offset=%d,sizelimit=%d", p.Start*512, p.Size*512), img, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// readESP copies the ESP (partition 1, vfat) of img into a directory with
// mtools (the test machine's kernel may lack vfat).
func readESP(t *testing.T, img string) string {
	parts, err := readTable(context.Background(), img)
	must(t, err)
	dir := t.TempDir()
	cmd := exec.Command("mcopy", "-s", "-n", "-i", fmt.Sprintf("%s@@%d", img, parts[0].Start*512), "::/*", dir)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v %s", err, out)
	}
	return dir
}

type sfdiskJSON struct {
	PartitionTable struct {
		Label      string `json:"label"`
		Partitions []struct {
			Type string `json:"type"`
			Size int64  `json:"size"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func partitions(t *testing.T, img string) sfdiskJSON {
	out, err := exec.Command("sfdisk", "--json", img).Output()
	must(t, err)
	var j sfdiskJSON
	must(t, json.Unmarshal(out, &j))
	return j
}

func TestToDiskSystemdBoot(t *testing.T) {
	ctx := context.Background()
	src := sourceRepo(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	var warnings []string
	// A target ref that is no refspec is refused before anything is written.
	for _, bad := range []string{"e2e:", ":test/os", "e2e:../x", "a/b:test/os", "e2e:test os"} {
		if _, err := ToDisk(ctx, img, Options{SourceRepo: src, Ref: "test/os", TargetRef: bad, Size: 1 << 30}); err == nil || !strings.Contains(err.Error(), "target ref") {
			t.Errorf("target ref %q: %v", bad, err)
		}
		if _, err := os.Stat(img); !os.IsNotExist(err) {
			t.Fatalf("target ref %q: the image was made (%v)", bad, err)
		}
	}
	res, err := ToDisk(ctx, img, Options{SourceRepo: src, Ref: "test/os", TargetRef: "e2e:test/os", Size: 1 << 30, BootCountingTries: 3,
		Warner: warnFunc(func(err error) { warnings = append(warnings, err.Error()) })})
	must(t, err)
	if res.LoaderFrom != "host" || len(warnings) != 1 || !strings.Contains(warnings[0], "using the host's") {
		t.Errorf("loader from %q, warnings %q", res.LoaderFrom, warnings)
	}
	pt := partitions(t, img)
	if pt.PartitionTable.Label != "gpt" || len(pt.PartitionTable.Partitions) != 2 ||
		pt.PartitionTable.Partitions[0].Type != typeESP || pt.PartitionTable.Partitions[1].Type != typeRootX64 {
		t.Fatalf("partition table %+v", pt)
	}
	espDir := readESP(t, img)
	root := mountPart(t, img, 2, "ext4")
	host, _ := os.ReadFile("/" + systemdBootEFI)
	for _, p := range []string{"EFI/BOOT/BOOTX64.EFI", "EFI/systemd/systemd-bootx64.efi"} {
		got, err := os.ReadFile(filepath.Join(espDir, p))
		if err != nil || string(got) != string(host) {
			t.Errorf("%s on the ESP is not systemd-boot (%v)", p, err)
		}
	}
	ents, _ := filepath.Glob(filepath.Join(espDir, "loader/entries/*.conf"))
	if len(ents) != 1 || !strings.HasPrefix(filepath.Base(ents[0]), "strata-1-1-default-") || !strings.HasSuffix(ents[0], ".0+3.conf") {
		t.Fatalf("ESP entries %v", ents)
	}
	conf, _ := os.ReadFile(ents[0])
	for _, want := range []string{"root=UUID=" + res.RootUUID + " rw systemd.gpt_auto=0 console=ttyS0,115200 quiet ostree=/ostree/boot.", "linux /ostree/default-"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("entry lacks %q:\n%s", want, conf)
		}
	}
	k, _ := filepath.Glob(filepath.Join(espDir, "ostree/default-*/vmlinuz-6.1.0-test"))
	if len(k) != 1 {
		t.Errorf("kernel on the ESP: %v", k)
	}
	// ostree reads the sysroot.
	st := ostree(t, "admin", "status", "--sysroot="+root)
	if !strings.Contains(st, "default "+res.Commit+".0") {
		t.Errorf("ostree admin status:\n%s", st)
	}
	// The machine follows the target ref.
	origin, _ := os.ReadFile(filepath.Join(root, "ostree/deploy/default/deploy", res.Deployment+".origin"))
	if !strings.Contains(string(origin), "refspec=e2e:test/os\n") {
		t.Errorf("origin:\n%s", origin)
	}
	fstab, _ := os.ReadFile(filepath.Join(root, "ostree/deploy/default/deploy", res.Deployment, "etc/fstab"))
	if !strings.Contains(string(fstab), "UUID="+res.ESPUUID+" /boot/efi vfat") {
		t.Errorf("fstab:\n%s", fstab)
	}
	// Refusals: in use, not empty. Nothing written.
	before, _ := os.ReadFile(img)
	if _, err := ToDisk(ctx, img, Options{SourceRepo: src, Ref: "test/os", Wipe: true}); err == nil || !strings.Contains(err.Error(), "is in use: attached to /dev/loop") {
		t.Errorf("install onto an attached image: %v", err)
	}
	loopOf := func(dir string) string {
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		for _, l := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(l); len(f) > 9 && f[4] == dir {
				return f[len(f)-2]
			}
		}
		return ""
	}
	if dev := loopOf(root); dev == "" {
		t.Error("root mount not found")
	} else {
		if err := CheckDeviceFree(dev); err == nil || !strings.Contains(err.Error(), "is mounted at "+root) {
			t.Errorf("CheckDeviceFree(%s) = %v", dev, err)
		}
		// A target that is a symlink to the mounted device, or to the
		// attached image, is the device or image it names.
		link := filepath.Join(t.TempDir(), "disk")
		must(t, os.Symlink(dev, link))
		if _, err := ToDisk(ctx, link, Options{SourceRepo: src, Ref: "test/os", Wipe: true}); err == nil || !strings.Contains(err.Error(), "is mounted at "+root) {
			t.Errorf("install onto a symlink to a mounted device: %v", err)
		}
		must(t, os.Remove(link))
		must(t, os.Symlink(img, link))
		if _, err := ToDisk(ctx, link, Options{SourceRepo: src, Ref: "test/os", Wipe: true}); err == nil || !strings.Contains(err.Error(), "is in use: attached to /dev/loop") {
			t.Errorf("install onto a symlink to an attached image: %v", err)
		}
	}
	must(t, exec.Command("umount", root).Run())
	if _, err := ToDisk(ctx, img, Options{SourceRepo: src, Ref: "test/os"}); err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "--wipe") {
		t.Errorf("install onto a used image without --wipe: %v", err)
	}
	after, _ := os.ReadFile(img)
	if string(before) != string(after) {
		t.Error("a refused install changed the image")
	}
}

type warnFunc func(error)

func (f warnFunc) Warn(err error) { f(err) }

func TestToDiskGRUB(t *testing.T) {
	ctx := context.Background()
	src := sourceRepo(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	res, err := ToDisk(ctx, img, Options{SourceRepo: src, Ref: "test/os", Bootloader: GRUB, Size: 1 << 30, BootCountingTries: 3})
	must(t, err)
	pt := partitions(t, img)
	if len(pt.PartitionTable.Partitions) != 2 || pt.PartitionTable.Partitions[0].Type != typeBIOSBoot {
		t.Fatalf("partition table %+v", pt)
	}
	root := mountPart(t, img, 2, "ext4")
	cfg := filepath.Join(root, "boot/grub/grub.cfg")
	if l, _ := os.Readlink(cfg); l != "../loader/grub.cfg" {
		t.Errorf("boot/grub/grub.cfg -> %q", l)
	}
	if out, err := exec.Command("grub-script-check", cfg).CombinedOutput(); err != nil {
		t.Errorf("grub-script-check: %v %s", err, out)
	}
	data, _ := os.ReadFile(cfg)
	if !strings.Contains(string(data), "linux /boot/ostree/default-") || !strings.Contains(string(data), "set strata_default='"+res.Deployment+"'") {
		t.Errorf("grub.cfg:\n%s", data)
	}
	env, err := grubcfg.ReadEnv(filepath.Join(root, "boot/grub/grubenv"))
	if err != nil || env[grubcfg.PendingKey] != res.Deployment || env[grubcfg.LeftKey] != "3" {
		t.Errorf("grubenv %v %v", env, err)
	}
	if _, err := os.Stat(filepath.Join(root, "boot/grub/i386-pc/normal.mod")); err != nil {
		t.Errorf("grub modules: %v", err)
	}
	// The boot code: GRUB's MBR and core.img in the BIOS boot partition.
	f, _ := os.Open(img)
	defer f.Close()
	mbr := make([]byte, 512)
	f.ReadAt(mbr, 0)
	if !strings.Contains(string(mbr), "GRUB") {
		t.Error("no GRUB boot code in the MBR")
	}
}

// TestToDiskRefusesFIFO: a target that is neither a regular file nor a
// block device (a FIFO, which must not block, a directory) is refused
// with one line naming it; nothing is created next to it.
func TestToDiskRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo, sub := filepath.Join(dir, "fifo"), filepath.Join(dir, "dir")
	must(t, unix.Mkfifo(fifo, 0o644))
	must(t, os.Mkdir(sub, 0o755))
	for _, target := range []string{fifo, sub} {
		done := make(chan error, 1)
		go func() {
			_, err := ToDisk(context.Background(), target, Options{SourceRepo: dir, Ref: "test/os", Wipe: true})
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), target+" is neither a block device nor a regular file") {
				t.Errorf("ToDisk(%s) = %v", target, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("ToDisk(%s) blocked", target)
		}
	}
	if des, _ := os.ReadDir(dir); len(des) != 2 {
		t.Errorf("left in the directory: %v", des)
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo %v %v", st, err)
	}
}

// TestImageFilesReadInside: the image's systemd-boot binary and
// /etc/fstab, planted as symlinks to a sentinel outside the deployment
// (absolute and relative) or as a FIFO, are not read from outside: a
// symlink resolves inside the deployment (systemd-boot: missing, an error
// naming it; fstab: missing, so it is just the new line), a FIFO is an
// error naming it, nothing blocks, the ESP holds no loader and the
// sentinel is unchanged.
func TestImageFilesReadInside(t *testing.T) {
	outside := t.TempDir()
	sentinel := filepath.Join(outside, "secret")
	must(t, os.WriteFile(sentinel, []byte("host secret"), 0o600))
	for _, tc := range []struct {
		name  string
		plant func(p string) error
	}{
		{"absolute symlink", func(p string) error { return os.Symlink(sentinel, p) }},
		{"relative symlink", func(p string) error {
			rel, err := filepath.Rel(filepath.Dir(p), sentinel)
			if err != nil {
				return err
			}
			return os.Symlink(rel, p)
		}},
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dpath, espDir := t.TempDir(), t.TempDir()
			for _, rel := range []string{systemdBootEFI, "etc/fstab"} {
				p := filepath.Join(dpath, rel)
				must(t, os.MkdirAll(filepath.Dir(p), 0o755))
				must(t, tc.plant(p))
			}
			done := make(chan [2]error, 1)
			go func() {
				_, e1 := installSystemdBoot(dpath, espDir, nil)
				done <- [2]error{e1, appendFstab(dpath, "UUID=x /boot/efi vfat defaults 0 2\n")}
			}()
			select {
			case errs := <-done:
				if errs[0] == nil || !strings.Contains(errs[0].Error(), systemdBootEFI) {
					t.Errorf("systemd-boot: %v, want an error naming it", errs[0])
				}
				// A symlink resolves inside the deployment, where its
				// target does not exist: fstab is then just the new line.
				if tc.name == "fifo" {
					if errs[1] == nil || !strings.Contains(errs[1].Error(), "etc/fstab") {
						t.Errorf("fstab: %v, want an error naming it", errs[1])
					}
				} else if data, err := os.ReadFile(filepath.Join(dpath, "etc/fstab")); errs[1] != nil || err != nil || string(data) != "UUID=x /boot/efi vfat defaults 0 2\n" {
					t.Errorf("fstab %q %v %v", data, errs[1], err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("blocked")
			}
			if des, _ := os.ReadDir(espDir); len(des) != 0 {
				t.Errorf("ESP holds %v", des)
			}
			if data, _ := os.ReadFile(sentinel); string(data) != "host secret" {
				t.Errorf("sentinel %q", data)
			}
		})
	}
}
