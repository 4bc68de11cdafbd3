package fsutil

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/sys/unix"
)

// hostileRoot builds ROOT with a real directory, symlinks that lead out
// of it (absolute and relative) and one that stays inside, and an
// OUTSIDE directory holding a sentinel file.
func hostileRoot(t *testing.T) (root, outside string, fd int) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root + "/a/b", outside, root + "/outside"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range map[string]string{root + "/a/f": "inside", outside + "/sentinel": "outside", root + "/outside/x": "in-root x"} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for l, target := range map[string]string{"abs": outside, "rel": "../outside", "in": "a", "absin": "/a/f", "loop": "loop"} {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return root, outside, fd
}

func checkSentinel(t *testing.T, outside string) {
	t.Helper()
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "sentinel" {
		t.Fatalf("outside directory changed: %v", ents)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "sentinel")); err != nil || string(b) != "outside" {
		t.Fatalf("sentinel changed: %q %v", b, err)
	}
}

// bothResolvers runs f with openat2 and with the component-by-component
// fallback.
func bothResolvers(t *testing.T, f func(t *testing.T)) {
	t.Run("openat2", f)
	t.Run("fallback", func(t *testing.T) {
		noOpenat2.Store(true)
		defer noOpenat2.Store(false)
		f(t)
	})
}

func readFD(t *testing.T, fd int) string {
	t.Helper()
	f := os.NewFile(uintptr(fd), "x")
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenBeneath(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		_, outside, root := hostileRoot(t)
		fd, err := OpenBeneath(root, "a/f", unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := readFD(t, fd); got != "inside" {
			t.Fatalf("a/f: %q", got)
		}
		for _, name := range []string{"abs/sentinel", "rel/sentinel", "in/f", "absin", "../outside/sentinel", "/etc/passwd", "a/../../outside/sentinel", "loop"} {
			fd, err := OpenBeneath(root, name, unix.O_RDONLY, 0)
			if err == nil {
				unix.Close(fd)
				t.Errorf("OpenBeneath(%s) succeeded", name)
			} else if !errors.Is(err, ErrUnsafePath) {
				t.Errorf("OpenBeneath(%s): %v, want ErrUnsafePath", name, err)
			}
		}
		// Creating through a symlink fails too, and creates nothing.
		if fd, err := OpenBeneath(root, "abs/new", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644); err == nil {
			unix.Close(fd)
			t.Error("created abs/new")
		}
		checkSentinel(t, outside)
	})
}

func TestOpenInRoot(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		_, outside, root := hostileRoot(t)
		for name, want := range map[string]string{"in/f": "inside", "absin": "inside", "a/b/../f": "inside", "../../a/f": "inside", "rel/x": "in-root x"} {
			fd, err := OpenInRoot(root, name, unix.O_RDONLY)
			if err != nil {
				t.Errorf("OpenInRoot(%s): %v", name, err)
				continue
			}
			if got := readFD(t, fd); got != want {
				t.Errorf("OpenInRoot(%s) = %q, want %q", name, got, want)
			}
		}
		// An absolute symlink to the outside directory resolves inside the
		// root, where there is no sentinel.
		if fd, err := OpenInRoot(root, "abs/sentinel", unix.O_RDONLY); err == nil {
			t.Errorf("abs/sentinel opened: %q", readFD(t, fd))
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("abs/sentinel: %v, want not found", err)
		}
		if _, err := OpenInRoot(root, "loop", unix.O_RDONLY); err == nil {
			t.Error("loop opened")
		}
		checkSentinel(t, outside)
	})
}

func TestBeneathWrites(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		rootPath, outside, root := hostileRoot(t)
		if err := MkdirBeneath(root, "a/c", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := RenameBeneath(root, "a/f", "a/c/g"); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(rootPath, "a/c/g")); err != nil || string(b) != "inside" {
			t.Fatalf("renamed file: %q %v", b, err)
		}
		// A symlink itself may be renamed or removed: it is not followed.
		if err := RenameBeneath(root, "in", "in2"); err != nil {
			t.Fatal(err)
		}
		if err := RemoveBeneath(root, "in2"); err != nil {
			t.Fatal(err)
		}
		if err := RemoveBeneath(root, "a/b"); err != nil {
			t.Fatal(err)
		}
		if err := RemoveBeneath(root, "a/b"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("removing a missing name: %v", err)
		}
		for _, err := range []error{
			MkdirBeneath(root, "abs/new", 0o755),
			MkdirBeneath(root, "rel/new", 0o755),
			RenameBeneath(root, "a/c", "abs/c"),
			RenameBeneath(root, "abs/sentinel", "stolen"),
			RemoveBeneath(root, "abs/sentinel"),
			RemoveBeneath(root, "rel/sentinel"),
			RemoveBeneath(root, "../outside/sentinel"),
		} {
			if !errors.Is(err, ErrUnsafePath) {
				t.Errorf("got %v, want ErrUnsafePath", err)
			}
		}
		if _, err := LstatBeneath(root, "abs/sentinel"); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("LstatBeneath through a symlink: %v", err)
		}
		if st, err := LstatBeneath(root, "abs"); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("LstatBeneath(abs): %v", err)
		}
		checkSentinel(t, outside)
	})
}

func TestOpenRegular(t *testing.T) {
	rootPath, _, root := hostileRoot(t)
	for _, p := range []string{filepath.Join(rootPath, "fifo"), "/dev/zero", rootPath} {
		if f, err := OpenRegular(p); err == nil {
			f.Close()
			t.Errorf("OpenRegular(%s) succeeded", p)
		} else if !errors.Is(err, ErrNotRegular) {
			t.Errorf("OpenRegular(%s): %v", p, err)
		}
	}
	if _, err := OpenRegularInRoot(root, "fifo"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("OpenRegularInRoot(fifo): %v", err)
	}
	big := filepath.Join(rootPath, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFileLimit(big, 99); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadFileLimit over the limit: %v", err)
	}
	if b, err := ReadFileLimit(big, 100); err != nil || len(b) != 100 {
		t.Errorf("ReadFileLimit at the limit: %d %v", len(b), err)
	}
}

func TestCopyContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	w := writerFunc(func(b []byte) (int, error) {
		if n += len(b); n > 1<<20 {
			cancel()
		}
		return len(b), nil
	})
	if _, err := CopyContext(ctx, w, f); !errors.Is(err, context.Canceled) {
		t.Fatalf("CopyContext: %v", err)
	}
}

func TestContextReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := ContextReader(ctx, f)
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, context.Canceled) {
		t.Fatalf("copy after cancel: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func TestSameContent(t *testing.T) {
	big := strings.Repeat("x", 600<<10)
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{big, big, true},
		{big, big[:len(big)-1] + "y", false},
		{big, big + "z", false},
		{big + "z", big, false},
		{"a", "", false},
	} {
		if got, err := SameContent(strings.NewReader(tc.a), strings.NewReader(tc.b)); err != nil || got != tc.want {
			t.Errorf("SameContent(%d bytes, %d bytes) = %v, %v; want %v", len(tc.a), len(tc.b), got, err, tc.want)
		}
	}
	boom := errors.New("boom")
	if _, err := SameContent(strings.NewReader("a"), io.MultiReader(strings.NewReader("a"), iotest.ErrReader(boom))); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
}
