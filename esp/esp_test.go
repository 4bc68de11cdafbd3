package esp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/fsutil"
)

// TestSortSystemdBoot: systemd-boot's order (bootloader.SortEntries) on
// the ESP's entry names.
func TestSortSystemdBoot(t *testing.T) {
	mk := func(name, body string) bootloader.LoaderEntry {
		e, err := bootloader.ParseEntry([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return bootloader.LoaderEntry{Name: name, Entry: e}
	}
	list := []bootloader.LoaderEntry{
		mk("strata-2-2-os-x+0-3.conf", "linux /a\n"),
		mk("strata-1-2-os-y.conf", "linux /b\n"),
		mk("strata-2-1-os-y.conf", "linux /c\n"),
		mk("other.conf", "linux /d\nsort-key zz\n"),
		mk("strata-10-1-os-y+1-2.conf", "linux /e\n"),
		mk("strata-10-1-os-y+2-1.conf", "linux /f\n"),
	}
	bootloader.SortEntries(list)
	var got []string
	for _, e := range list {
		got = append(got, e.Name)
	}
	want := []string{"other.conf", "strata-10-1-os-y+2-1.conf", "strata-10-1-os-y+1-2.conf", "strata-2-1-os-y.conf", "strata-1-2-os-y.conf", "strata-2-2-os-x+0-3.conf"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("order\n got %v\nwant %v", got, want)
	}
}

// espFixture is a boot directory with kernels for three deployments and
// an ESP directory.
type espFixture struct {
	boot, esp string
	entries   map[string]Entry // by key
}

func key(c byte, serial int) string {
	return strings.Repeat(string(c), 64) + fmt.Sprintf(".%d", serial)
}

func newESPFixture(t *testing.T) *espFixture {
	dir := t.TempDir()
	f := &espFixture{boot: filepath.Join(dir, "boot"), esp: filepath.Join(dir, "esp"), entries: map[string]Entry{}}
	for _, c := range []byte{'a', 'b', 'c'} {
		kd := filepath.Join(f.boot, "ostree", "os-"+strings.Repeat(string(c), 8))
		must(t, os.MkdirAll(kd, 0o755))
		must(t, os.WriteFile(filepath.Join(kd, "vmlinuz-6"), bytes.Repeat([]byte{c}, 100000), 0o644))
		must(t, os.WriteFile(filepath.Join(kd, "initramfs-6.img"), bytes.Repeat([]byte{c, '!'}, 50000), 0o644))
		k := key(c, 0)
		conf := fmt.Sprintf("title os %c\nversion 1\noptions ostree=/ostree/boot.0/os/%s/0\nlinux /ostree/os-%s/vmlinuz-6\ninitrd /ostree/os-%s/initramfs-6.img\n",
			c, strings.Repeat(string(c), 8), strings.Repeat(string(c), 8), strings.Repeat(string(c), 8))
		f.entries[k] = Entry{Key: k, OS: "os", Conf: []byte(conf)}
	}
	return f
}

func (f *espFixture) list(counterFirst string, keys ...string) []Entry {
	var out []Entry
	for i, k := range keys {
		e := f.entries[k]
		if i == 0 {
			e.Counter = counterFirst
		}
		out = append(out, e)
	}
	return out
}

// checkBootable asserts that systemd-boot's order picks one of keys first
// and that the kernel and initramfs it names are complete on the ESP.
func (f *espFixture) checkBootable(t *testing.T, keys ...string) string {
	t.Helper()
	k, name, err := Default(f.esp)
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	for _, want := range keys {
		ok = ok || k == want
	}
	if !ok {
		t.Fatalf("systemd-boot would boot %q (%s), want one of %v", k, name, keys)
	}
	paths, err := bootPaths(f.entries[k].Conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		src, err := os.Open(filepath.Join(f.boot, p))
		if err != nil {
			t.Fatal(err)
		}
		same, err := sameFile(src, filepath.Join(f.esp, p))
		src.Close()
		if err != nil || !same {
			t.Fatalf("default %s: %s on the ESP is not complete (%v)", k, p, err)
		}
	}
	return k
}

// snapshot lists every file of the ESP with its content.
func snapshot(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if info.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "%s %d %x\n", rel, len(data), data[:min(len(data), 16)])
		}
		return nil
	})
	return b.String()
}

func setFailpoint(t *testing.T, fn func(step string) error) {
	fsutil.Failpoint.Store(&fn)
	t.Cleanup(func() { fsutil.Failpoint.Store(nil) })
}

var errInjected = errors.New("injected")

// TestSyncInterruptedAtEachStep is the ESP's fault-injection matrix:
// a projection from [a, b] to [c(+3), a] is failed at every durable step
// (esp:* steps and fsutil's write/fsync/rename/syncdir inside them).
// After each failure systemd-boot's order (bootloader.SortEntries) must pick the
// old default a or the new default c with its kernel complete on the
// ESP; the next Sync must finish the job and leave exactly the ESP an
// uninterrupted run leaves.
func TestSyncInterruptedAtEachStep(t *testing.T) {
	ctx := context.Background()
	a, b, c := key('a', 0), key('b', 0), key('c', 0)
	prior := func(t *testing.T) *espFixture {
		f := newESPFixture(t)
		must(t, Sync(ctx, f.esp, f.boot, f.list("", a, b)))
		f.checkBootable(t, a)
		return f
	}
	// Uninterrupted, with the steps recorded.
	var steps []string
	ref := prior(t)
	setFailpoint(t, func(step string) error { steps = append(steps, step); return nil })
	must(t, Sync(ctx, ref.esp, ref.boot, ref.list("+3", c, a)))
	fsutil.Failpoint.Store(nil)
	ref.checkBootable(t, c)
	want := snapshot(t, ref.esp)
	if !strings.Contains(want, "strata-2-2-os-"+c+"+3.conf") || strings.Contains(want, "os-bbbbbbbb") || strings.Contains(want, "strata-1-") {
		t.Fatalf("unexpected ESP after the sync:\n%s", want)
	}
	var espSteps int
	for _, s := range steps {
		if strings.HasPrefix(s, "esp:") {
			espSteps++
		}
	}
	if espSteps < 4 || len(steps) < 12 {
		t.Fatalf("only %d steps recorded (%d esp:*): %v", len(steps), espSteps, steps)
	}
	for i, step := range steps {
		t.Run(fmt.Sprintf("%02d-%s", i, filepath.Base(step)), func(t *testing.T) {
			f := prior(t)
			n := 0
			setFailpoint(t, func(s string) error {
				if n == i {
					n++
					return errInjected
				}
				n++
				return nil
			})
			err := Sync(ctx, f.esp, f.boot, f.list("+3", c, a))
			fsutil.Failpoint.Store(nil)
			if !errors.Is(err, errInjected) {
				t.Fatalf("step %s: Sync = %v, want the injected failure", step, err)
			}
			f.checkBootable(t, a, c)
			must(t, Sync(ctx, f.esp, f.boot, f.list("+3", c, a)))
			f.checkBootable(t, c)
			got := strings.ReplaceAll(snapshot(t, f.esp), "strata-3-", "strata-2-")
			if got != want {
				t.Errorf("after the retry the ESP differs\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestCountersCarried: the loader's renames on the ESP survive the next
// projection; a bad entry makes systemd-boot fall back; Bless and MarkBad
// rename the newest entry of a key.
func TestCountersCarried(t *testing.T) {
	ctx := context.Background()
	f := newESPFixture(t)
	a, b := key('a', 0), key('b', 0)
	must(t, Sync(ctx, f.esp, f.boot, f.list("", a)))
	must(t, Sync(ctx, f.esp, f.boot, f.list("+3", b, a)))
	name, _ := Booted(f.esp, b)
	if !strings.HasSuffix(name, "+3.conf") {
		t.Fatalf("new entry %s, want +3", name)
	}
	// The loader boots it twice.
	dir := filepath.Join(f.esp, EntriesDir)
	for range 2 {
		n, _ := Booted(f.esp, b)
		must(t, os.Rename(filepath.Join(dir, n), filepath.Join(dir, bootloader.Decrement(n))))
	}
	// A kargs change of a re-projects; b keeps +1-2.
	f.entries[a] = Entry{Key: a, OS: "os", Conf: append([]byte(nil), append(f.entries[a].Conf, "foo bar\n"...)...)}
	must(t, Sync(ctx, f.esp, f.boot, f.list("+3", b, a)))
	if n, _ := Booted(f.esp, b); !strings.HasSuffix(n, "+1-2.conf") || !strings.HasPrefix(n, "strata-3-") {
		t.Fatalf("carried entry %s, want strata-3-...+1-2.conf", n)
	}
	if _, err := MarkBad(f.esp, b); err != nil {
		t.Fatal(err)
	}
	f.checkBootable(t, a)
	if n, _ := Booted(f.esp, b); !strings.HasSuffix(n, "+0-2.conf") {
		t.Fatalf("bad entry %s", n)
	}
	if did, err := Bless(f.esp, b); err != nil || !did {
		t.Fatal(did, err)
	}
	f.checkBootable(t, b)
	if did, _ := Bless(f.esp, b); did {
		t.Error("blessing twice renamed again")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSyncHostileKernels: a kernel or initramfs on its way to the ESP
// that is a FIFO (which must not block), a directory, or a symlink out of
// the boot directory (to a sentinel "secret" outside) is refused with an
// error naming it, before any entry is written: the ESP keeps exactly
// its previous content and the secret is copied nowhere.
func TestSyncHostileKernels(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	must(t, os.WriteFile(secret, []byte("do not copy"), 0o600))
	for _, tc := range []struct {
		name  string
		plant func(p string) error
	}{
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o644) }},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }},
		{"absolute symlink out", func(p string) error { return os.Symlink(secret, p) }},
		{"relative symlink out", func(p string) error {
			rel, err := filepath.Rel(filepath.Dir(p), secret)
			if err != nil {
				return err
			}
			return os.Symlink(rel, p)
		}},
	} {
		for _, file := range []string{"vmlinuz-6", "initramfs-6.img"} {
			t.Run(tc.name+" "+file, func(t *testing.T) {
				f := newESPFixture(t)
				a, c := key('a', 0), key('c', 0)
				must(t, Sync(ctx, f.esp, f.boot, f.list("", a)))
				before := snapshot(t, f.esp)
				p := filepath.Join(f.boot, "ostree", "os-cccccccc", file)
				must(t, os.Remove(p))
				must(t, tc.plant(p))
				done := make(chan error, 1)
				go func() { done <- Sync(ctx, f.esp, f.boot, f.list("+3", c, a)) }()
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), file) {
						t.Fatalf("Sync = %v, want an error naming %s", err, file)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("Sync blocked")
				}
				if after := snapshot(t, f.esp); after != before {
					t.Fatalf("ESP changed:\n%s\nwas\n%s", after, before)
				}
				if k := f.checkBootable(t, a); k != a {
					t.Fatalf("default %s", k)
				}
				filepath.Walk(f.esp, func(q string, info os.FileInfo, err error) error {
					if err == nil && info.Mode().IsRegular() {
						if data, _ := os.ReadFile(q); bytes.Contains(data, []byte("do not copy")) {
							t.Errorf("the secret outside was copied to %s", q)
						}
					}
					return nil
				})
				if data, err := os.ReadFile(secret); err != nil || string(data) != "do not copy" {
					t.Fatalf("sentinel outside: %q %v", data, err)
				}
			})
		}
	}
}
