package bootloader

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// osRelease is the os-release of the test trees.
const osRelease = "NAME=\"Test OS\"\nID=testos\nPRETTY_NAME=\"Test OS 1\"\n"

const legacyCsum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// kernelScenarios are trees with each kernel layout ostree knows.
var kernelScenarios = []struct {
	name   string
	files  map[string]string
	pretty string // title's name part: PRETTY_NAME or ID
	// what FindKernel must report, relative to the deployment
	dir, kernel, initramfs, devicetree, devicetreeName, hmac string
}{
	{
		name: "modules",
		files: map[string]string{
			"usr/lib/modules/5.10.0-test/vmlinuz":       "kernel 5.10\n",
			"usr/lib/modules/5.10.0-test/initramfs.img": "initramfs 5.10\n",
			"usr/lib/modules/5.10.0-test/.vmlinuz.hmac": "hmac\n",
			"usr/lib/os-release":                        osRelease,
		},
		pretty: "Test OS 1",
		dir:    "usr/lib/modules/5.10.0-test", kernel: "vmlinuz", initramfs: "initramfs.img", hmac: ".vmlinuz.hmac",
	},
	{
		name: "devicetree-no-initramfs",
		files: map[string]string{
			"usr/lib/modules/6.1.0/vmlinuz":    "kernel 6.1\n",
			"usr/lib/modules/6.1.0/devicetree": "dtb blob\n",
			"usr/lib/modules/6.1.0/dtb/x.dtb":  "not used: devicetree wins\n",
			"usr/lib/modules/README":           "not a directory\n",
			"usr/etc/os-release":               "ID=plainos\n",
		},
		pretty: "plainos",
		dir:    "usr/lib/modules/6.1.0", kernel: "vmlinuz", devicetree: "devicetree", devicetreeName: "devicetree-6.1.0",
	},
	{
		name: "dtb-dir",
		files: map[string]string{
			"usr/lib/modules/6.2.0/vmlinuz":               "kernel 6.2\n",
			"usr/lib/modules/6.2.0/initramfs":             "initramfs 6.2 (no .img)\n",
			"usr/lib/modules/6.2.0/dtb/vendor/b.dtb":      "b\n",
			"usr/lib/modules/6.2.0/dtb/vendor/a.dtb":      "a\n",
			"usr/lib/modules/6.2.0/dtb/top.dtb":           "top\n",
			"usr/lib/modules/6.2.0/dtb/Z-upper-first.dtb": "Z\n",
			"usr/lib/os-release":                          osRelease,
		},
		pretty: "Test OS 1",
		dir:    "usr/lib/modules/6.2.0", kernel: "vmlinuz", initramfs: "initramfs", devicetree: "dtb",
	},
	{
		name: "legacy-ostree-boot",
		files: map[string]string{
			"usr/lib/ostree-boot/vmlinuz-5.4.0-" + legacyCsum:       "legacy kernel\n",
			"usr/lib/ostree-boot/initramfs-5.4.0.img-" + legacyCsum: "legacy initramfs\n",
			"usr/lib/ostree-boot/vmlinuz-not-a-checksum":            "ignored\n",
			"usr/lib/os-release":                                    osRelease,
		},
		pretty: "Test OS 1",
		dir:    "usr/lib/ostree-boot", kernel: "vmlinuz-5.4.0-" + legacyCsum, initramfs: "initramfs-5.4.0.img-" + legacyCsum,
	},
	{
		name: "legacy-wins-with-initramfs",
		files: map[string]string{
			"usr/lib/modules/5.15.0/vmlinuz":          "modules kernel without initramfs\n",
			"boot/vmlinuz-5.15.0-" + legacyCsum:       "legacy kernel\n",
			"boot/initramfs-5.15.0.img-" + legacyCsum: "legacy initramfs\n",
			"usr/lib/os-release":                      osRelease,
		},
		pretty: "Test OS 1",
		dir:    "boot", kernel: "vmlinuz-5.15.0-" + legacyCsum, initramfs: "initramfs-5.15.0.img-" + legacyCsum,
	},
}

// TestKernelAndEntriesInterop deploys each kernel layout twice with the
// real ostree and checks that FindKernel finds what ostree installed (same
// boot checksum, same names) and that entries built with this package are
// byte-identical to the ones ostree wrote, for the new default and for the
// rewritten older deployment.
func TestKernelAndEntriesInterop(t *testing.T) {
	for _, sc := range kernelScenarios {
		t.Run(sc.name, func(t *testing.T) {
			s := newOstreeSysroot(t, "testos")
			files := map[string]string{"usr/etc/hostname": "test\n"}
			for k, v := range sc.files {
				files[k] = v
			}
			tree := writeTree(t, files)
			s.commit(tree, "test/os", "1.0")
			s.deploy("test/os", "--karg=root=/dev/vda", "--karg=quiet", "--karg-append=console=ttyS0")
			first := s.entries()
			// A second deployment (same kernel, so the same bootcsum and a
			// new boot serial) with edited arguments.
			if err := os.WriteFile(filepath.Join(tree, "usr/lib/v2"), []byte("2"), 0o644); err != nil {
				t.Fatal(err)
			}
			s.commit(tree, "test/os", "")
			s.deploy("test/os", "--karg=root=/dev/vdb", "--karg-append=console=tty0", "--karg-delete=quiet")
			second := s.entries()

			dirs := s.deploymentDirs()
			if len(dirs) != 2 {
				t.Fatalf("deployments %v", dirs)
			}
			l, err := FindKernel(context.Background(), dirs[0])
			if err != nil {
				t.Fatal(err)
			}
			if name, err := DeploymentName(dirs[0]); err != nil || name != sc.pretty {
				t.Errorf("DeploymentName = %q, %v; want %q", name, err, sc.pretty)
			}
			checkLayout(t, l, dirs[0], sc.dir, sc.kernel, sc.initramfs, sc.devicetree, sc.devicetreeName, sc.hmac)
			bootDir := filepath.Join(s.dir, "boot/ostree", "testos-"+l.BootCsum)
			for _, n := range []string{l.KernelName, l.InitramfsName, l.DevicetreeName, l.HMACName} {
				if n == "" {
					continue
				}
				if _, err := os.Stat(filepath.Join(bootDir, n)); err != nil {
					t.Errorf("ostree did not install %s where FindKernel says: %v", n, err)
				}
			}
			if l.Devicetree == "dtb" {
				if _, err := os.Stat(filepath.Join(bootDir, "dtb/vendor/a.dtb")); err != nil {
					t.Error(err)
				}
			}
			golden(t, sc.name+"/bootcsum", []byte(l.BootCsum+"\n"))

			// First deploy: one entry, bootversion 1, serial 0.
			opts := ParseKargs("")
			opts.Set("root=/dev/vda")
			opts.Set("quiet")
			opts.Append("console=ttyS0")
			e1 := buildEntry(l, sc.pretty, "1.0", "testos", 1, 0, 1, 0, opts)
			checkEntries(t, first, map[string][]byte{"ostree-1-testos.conf": e1.Format()})
			golden(t, sc.name+"/first/ostree-1-testos.conf", first["ostree-1-testos.conf"])

			// Second deploy: the merge deployment's options edited as
			// `ostree admin deploy` edits them; the old one moves to index 1
			// with boot serial 1, both into loader.0.
			prev, err := ParseEntry(first["ostree-1-testos.conf"])
			if err != nil {
				t.Fatal(err)
			}
			opts2 := ParseKargs(prev.Value("options"))
			opts2.Set("root=/dev/vdb")
			opts2.Append("console=tty0")
			if err := opts2.Delete("quiet"); err != nil {
				t.Fatal(err)
			}
			newE := buildEntry(l, sc.pretty, "", "testos", 2, 0, 0, 0, opts2)
			oldE := buildEntry(l, sc.pretty, "1.0", "testos", 2, 1, 0, 1, opts)
			checkEntries(t, second, map[string][]byte{
				"ostree-2-testos.conf": newE.Format(),
				"ostree-1-testos.conf": oldE.Format(),
			})
			for name, data := range second {
				golden(t, sc.name+"/second/"+name, data)
			}
			es, err := ReadEntries(filepath.Join(s.dir, "boot/loader/entries"))
			if err != nil || len(es) != 2 || es[0].Name != "ostree-2-testos.conf" || es[1].Name != "ostree-1-testos.conf" {
				t.Errorf("ReadEntries: %v %v", es, err)
			}
		})
	}
}

// buildEntry makes the entry ostree writes for a new deployment whose
// arguments were given or inherited (so "options" is set first).
func buildEntry(l *KernelLayout, pretty, version, osname string, n, index, bootversion, serial int, kargs *Kargs) *Entry {
	e := NewEntry()
	e.Set("options", kargs.String())
	e.SetSpec(EntrySpec{
		OSName: osname, Name: pretty, Version: version, Index: index, Count: n,
		BootVersion: bootversion, BootSerial: serial, Kernel: l,
	})
	return e
}

func checkLayout(t *testing.T, l *KernelLayout, root, dir, kernel, initramfs, devicetree, devicetreeName, hmac string) {
	t.Helper()
	if l.Dir != filepath.Join(root, dir) || l.Kernel != kernel || l.Initramfs != initramfs ||
		l.Devicetree != devicetree || l.DevicetreeName != devicetreeName || l.HMAC != hmac {
		t.Errorf("layout %+v, want dir %s kernel %q initramfs %q devicetree %q (%q) hmac %q",
			l, dir, kernel, initramfs, devicetree, devicetreeName, hmac)
	}
}

func checkEntries(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	var gn, wn []string
	for n := range got {
		gn = append(gn, n)
	}
	for n := range want {
		wn = append(wn, n)
	}
	sort.Strings(gn)
	sort.Strings(wn)
	if strings.Join(gn, " ") != strings.Join(wn, " ") {
		t.Fatalf("entries %v, want %v", gn, wn)
	}
	for n, w := range want {
		if string(got[n]) != string(w) {
			t.Errorf("%s: ostree wrote\n%s\nthis package formats\n%s", n, got[n], w)
		}
		e, err := ParseEntry(got[n])
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Format()) != string(got[n]) {
			t.Errorf("%s: parse+format is not a round trip:\n%s", n, e.Format())
		}
	}
}

// TestProcCmdlineInterop: `ostree admin deploy --karg-proc-cmdline` takes
// this machine's /proc/cmdline as AppendProcCmdline does.
func TestProcCmdlineInterop(t *testing.T) {
	s := newOstreeSysroot(t, "testos")
	tree := writeTree(t, map[string]string{
		"usr/etc/hostname":                   "test\n",
		"usr/lib/os-release":                 osRelease,
		"usr/lib/modules/5.10/vmlinuz":       "k\n",
		"usr/lib/modules/5.10/initramfs.img": "i\n",
	})
	s.commit(tree, "test/os", "")
	s.deploy("test/os", "--karg-proc-cmdline", "--karg=extra=1")
	e, err := ParseEntry(s.entries()["ostree-1-testos.conf"])
	if err != nil {
		t.Fatal(err)
	}
	l, err := FindKernel(context.Background(), s.deploymentDirs()[0])
	if err != nil {
		t.Fatal(err)
	}
	var k Kargs
	if err := k.AppendProcCmdline(); err != nil {
		t.Fatal(err)
	}
	k.Set("extra=1")
	k.Set(OstreeKarg(1, "testos", l.BootCsum, 0))
	if got := e.Value("options"); got != k.String() {
		t.Errorf("ostree's options\n%q\nAppendProcCmdline gives\n%q", got, k.String())
	}
}
