package testos

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestComposedOSDeploys composes the test OS (or takes it from the cache)
// and checks that it passes ostree fsck, deploys with strata and with
// ostree, and that the deployment has the image layout of docs/compose.md.
func TestComposedOSDeploys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	start := time.Now()
	img, err := Get(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("test OS %s = %s (kernels %v) in %s", img.Ref, img.Commit, img.Kernels, time.Since(start).Round(time.Second))
	if len(img.Kernels) != 1 {
		t.Fatalf("kernels %v", img.Kernels)
	}
	kver := img.Kernels[0]
	run(t, "ostree", "fsck", "--repo="+img.Repo)
	if got := run(t, "ostree", "show", "--repo="+img.Repo, "--print-metadata-key=ostree.linux", img.Ref); strings.TrimSpace(got) != "'"+kver+"'" {
		t.Fatalf("ostree.linux %s", got)
	}
	if got := run(t, "ostree", "show", "--repo="+img.Repo, "--print-metadata-key=ostree.bootable", img.Ref); strings.TrimSpace(got) != "true" {
		t.Fatalf("ostree.bootable %s", got)
	}
	bin, err := BuildStrata(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"strata", "ostree"} {
		t.Run(tool, func(t *testing.T) {
			sr := filepath.Join(t.TempDir(), "sysroot")
			if err := os.MkdirAll(sr, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = exec.Command("chattr", "-R", "-i", sr).Run() })
			if tool == "strata" {
				run(t, bin, "admin", "init-fs", sr)
				run(t, bin, "admin", "--sysroot="+sr, "os-init", "testos")
				run(t, bin, "pull-local", "--repo="+sr+"/ostree/repo", img.Repo, img.Ref)
				run(t, bin, "admin", "--sysroot="+sr, "deploy", "--os=testos", img.Ref)
			} else {
				run(t, "ostree", "admin", "init-fs", sr)
				run(t, "ostree", "admin", "os-init", "--sysroot="+sr, "testos")
				run(t, "ostree", "pull-local", "--repo="+sr+"/ostree/repo", img.Repo, img.Ref)
				run(t, "ostree", "admin", "deploy", "--sysroot="+sr, "--os=testos", img.Ref)
			}
			run(t, "ostree", "fsck", "--repo="+sr+"/ostree/repo")
			status := run(t, "ostree", "admin", "status", "--sysroot="+sr)
			if !strings.Contains(status, img.Commit+".0") {
				t.Fatalf("ostree admin status:\n%s", status)
			}
			entries, _ := filepath.Glob(filepath.Join(sr, "boot/loader/entries/*.conf"))
			if len(entries) != 1 {
				t.Fatalf("entries %v", entries)
			}
			entry, _ := os.ReadFile(entries[0])
			if !strings.Contains(string(entry), "vmlinuz-"+kver) || !strings.Contains(string(entry), "initramfs-"+kver+".img") {
				t.Fatalf("entry:\n%s", entry)
			}
			// strata applies the image's kargs.d (bootc's behaviour);
			// ostree 2022.7 does not know it.
			if tool == "strata" && !strings.Contains(string(entry), "console=ttyS0,115200") {
				t.Fatalf("entry lacks the spec's kernel argument:\n%s", entry)
			}
			dep := filepath.Join(sr, "ostree/deploy/testos/deploy", img.Commit+".0")
			checkLayout(t, dep, kver)
		})
	}
}

func checkLayout(t *testing.T, dep, kver string) {
	t.Helper()
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dep, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for p, want := range map[string]string{
		"home": "var/home", "root": "var/roothome", "opt": "var/opt", "srv": "var/srv", "mnt": "var/mnt",
		"usr/local": "../var/usrlocal", "ostree": "sysroot/ostree",
	} {
		if got, err := os.Readlink(filepath.Join(dep, p)); err != nil || got != want {
			t.Errorf("/%s -> %q (%v), want %q", p, got, err, want)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dep, "var")); len(ents) != 0 {
		t.Errorf("/var of the deployment is not empty: %v", ents)
	}
	for _, p := range []string{"boot", "sysroot", "usr/etc/passwd", "usr/bin/strata", "usr/lib/modules/" + kver + "/vmlinuz",
		"usr/lib/modules/" + kver + "/initramfs.img", "usr/share/initramfs-tools/hooks/strata",
		"usr/share/initramfs-tools/scripts/local-bottom/strata", "usr/lib/systemd/system/strata-finalize-staged.service",
		"etc/systemd/system/multi-user.target.wants/strata-finalize-staged.service",
		"etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
		"usr/lib/bootc/kargs.d/10-strata-compose.toml"} {
		if _, err := os.Lstat(filepath.Join(dep, p)); err != nil {
			t.Errorf("missing /%s: %v", p, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dep, "boot")); len(ents) != 0 {
		t.Errorf("/boot not empty: %v", ents)
	}
	if read("etc/motd") != "built by strata compose\n" {
		t.Error("/etc/motd")
	}
	if !strings.Contains(read("etc/passwd"), "app:x:990:990::/var/lib/app:/usr/sbin/nologin\n") || !strings.Contains(read("etc/group"), "app:x:990:\n") {
		t.Error("user/group app not in /etc/passwd, /etc/group")
	}
	if !strings.Contains(read("usr/lib/sysusers.d/strata-compose.conf"), "u app 990:990") {
		t.Error("sysusers.d")
	}
	if read("etc/machine-id") != "" {
		t.Error("machine-id not empty")
	}
	if keys, _ := filepath.Glob(filepath.Join(dep, "etc/ssh/ssh_host_*")); len(keys) != 0 {
		t.Errorf("ssh host keys in the image: %v", keys)
	}
	if !strings.Contains(read("usr/lib/sysimage/dpkg/status"), "Package: systemd\n") {
		t.Error("dpkg database not in /usr/lib/sysimage/dpkg")
	}
	vars := read("usr/lib/tmpfiles.d/strata-compose-var.conf")
	for _, want := range []string{"L /var/lib/dpkg - - - - ../../usr/lib/sysimage/dpkg", "d /var/home 0755 root root -", "d /var/roothome 0700 root root -"} {
		if !strings.Contains(vars, want+"\n") {
			t.Errorf("tmpfiles.d lacks %q", want)
		}
	}
	if !strings.Contains(read("usr/lib/os-release"), "IMAGE_ID=testos\n") {
		t.Error("os-release IMAGE_ID")
	}
	// dpkg -l works from the image's own dpkg once /var/lib/dpkg is the
	// link tmpfiles.d makes at boot.
	list := run(t, "dpkg-query", "--admindir="+filepath.Join(dep, "usr/lib/sysimage/dpkg"), "-W", "-f=${Package}\n", "systemd")
	if strings.TrimSpace(list) != "systemd" {
		t.Errorf("dpkg-query: %q", list)
	}
	// The initramfs runs strata prepare-root.
	ls := run(t, "chroot", dep, "lsinitramfs", "/usr/lib/modules/"+kver+"/initramfs.img")
	for _, want := range []string{"usr/bin/strata", "scripts/local-bottom/strata", "virtio_blk.ko", "ext4.ko"} {
		if !strings.Contains(ls, want) {
			t.Errorf("initramfs lacks %s", want)
		}
	}
}
