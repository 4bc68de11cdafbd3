package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// A treeSpec is one input tree. Trees are built once under the cache
// directory and reused by later runs: a tree directory exists only when it
// was built completely (it is built beside its final name and renamed).
type treeSpec struct {
	Name string
	// Dir is the tree's directory name under <cache>/trees; it encodes every
	// parameter that changes the tree, so a changed parameter builds anew.
	Dir   func(cfg *config) string
	Desc  func(cfg *config) string
	Build func(ctx context.Context, cfg *config, dir string) error
}

var treeSpecs = []treeSpec{
	{
		Name: "small",
		Dir:  func(*config) string { return "small-v2" },
		Desc: func(*config) string {
			return "synthetic from a fixed seed: 2,000 files, 61 directories, 200 symlinks"
		},
		Build: buildSmall,
	},
	{
		Name:  "minbase",
		Dir:   func(cfg *config) string { return "minbase-" + cfg.suite },
		Desc:  func(cfg *config) string { return "Debian " + cfg.suite + " minbase (debootstrap --variant=minbase)" },
		Build: buildMinbase,
	},
	{
		Name: "usr",
		Dir:  func(cfg *config) string { return fmt.Sprintf("usr-v2-%dM", cfg.usrMiB) },
		Desc: func(cfg *config) string {
			return fmt.Sprintf("about %d MiB of this machine's /usr (bin, sbin, libexec, lib/<triplet>, share; lexical prefixes)", cfg.usrMiB)
		},
		Build: buildUsr,
	},
}

func lookupTree(name string) (treeSpec, bool) {
	for _, t := range treeSpecs {
		if t.Name == name {
			return t, true
		}
	}
	return treeSpec{}, false
}

// ensureTree returns the directory of spec's tree, building it first when
// the cache does not hold it yet.
func ensureTree(ctx context.Context, cfg *config, spec treeSpec) (string, error) {
	dir := filepath.Join(cfg.cache, "trees", spec.Dir(cfg))
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return dir, nil
	}
	tmp := dir + ".tmp"
	if err := removeTree(tmp); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	logf("building tree %s in %s (once; later runs reuse it)", spec.Name, dir)
	start := time.Now()
	if err := spec.Build(ctx, cfg, tmp); err != nil {
		if rerr := removeTree(tmp); rerr != nil {
			logf("leaving %s: %v", tmp, rerr)
		}
		return "", fmt.Errorf("building tree %s: %w", spec.Name, err)
	}
	n, err := sanitize(tmp)
	if err != nil {
		return "", fmt.Errorf("building tree %s: %w", spec.Name, err)
	}
	if n > 0 {
		logf("removed %d device nodes, fifos and sockets from %s (commit takes directories, regular files and symlinks only)", n, spec.Name)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	logf("built tree %s in %s", spec.Name, time.Since(start).Round(time.Second))
	return dir, nil
}

// buildSmall writes a synthetic tree from a fixed seed: the same bytes on
// every machine. Sizes are skewed like an OS tree (most files small, a few
// large), half the files are compressible text and half random bytes.
func buildSmall(_ context.Context, _ *config, dir string) error {
	rng := rand.New(rand.NewPCG(20240101, 1))
	dirs := []string{dir}
	for i := range 60 {
		parent := dirs[rng.IntN(len(dirs))]
		d := filepath.Join(parent, fmt.Sprintf("d%02d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		dirs = append(dirs, d)
	}
	words := strings.Fields("the quick brown fox jumps over lazy dog lorem ipsum dolor sit amet config value true false null lib usr share bin include")
	var files []string
	for i := range 2000 {
		var size int
		switch p := rng.IntN(100); {
		case p < 3:
			size = 0
		case p < 70:
			size = rng.IntN(4 << 10)
		case p < 98:
			size = 4<<10 + rng.IntN(60<<10)
		default:
			size = 64<<10 + rng.IntN(512<<10)
		}
		buf := make([]byte, size)
		if i%2 == 0 {
			for j := 0; j < size; {
				j += copy(buf[j:], words[rng.IntN(len(words))]+" ")
			}
		} else {
			for j := range buf {
				buf[j] = byte(rng.Uint32())
			}
		}
		mode := fs.FileMode(0o644)
		if rng.IntN(10) == 0 {
			mode = 0o755
		}
		name := filepath.Join(dirs[rng.IntN(len(dirs))], fmt.Sprintf("f%04d", i))
		if err := os.WriteFile(name, buf, mode); err != nil {
			return err
		}
		if err := os.Chmod(name, mode); err != nil { // umask
			return err
		}
		files = append(files, name)
	}
	for i := range 200 {
		target, err := filepath.Rel(dir, files[rng.IntN(len(files))])
		if err != nil {
			return err
		}
		link := filepath.Join(dir, fmt.Sprintf("l%03d", i))
		if err := os.Symlink(target, link); err != nil {
			return err
		}
	}
	return nil
}

// buildMinbase runs debootstrap against the Debian mirror apt uses.
func buildMinbase(ctx context.Context, cfg *config, dir string) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return errors.New("debootstrap not found: run bench/setup.sh")
	}
	mirror := cfg.mirror
	if mirror == "" {
		var err error
		if mirror, err = aptMirror("/etc/apt", cfg.suite); err != nil {
			return fmt.Errorf("%w (pass -mirror=URL)", err)
		}
	}
	logPath := strings.TrimSuffix(dir, ".tmp") + ".log"
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	args := []string{"--variant=minbase", cfg.suite, dir, mirror}
	logf("debootstrap %s (log: %s)", strings.Join(args, " "), logPath)
	cmd := exec.CommandContext(ctx, "debootstrap", args...)
	cmd.Stdout = lf
	cmd.Stderr = lf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap: %w: %s", err, tail(logPath, 5))
	}
	// Caches that a real image build would drop; their size would only
	// measure how many .debs this mirror served.
	for _, p := range []string{"var/cache/apt/archives", "var/lib/apt/lists"} {
		ents, err := os.ReadDir(filepath.Join(dir, p))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.Type().IsRegular() && e.Name() != "lock" {
				if err := os.Remove(filepath.Join(dir, p, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// usrSources lists where the usr tree takes files from and each source's
// share of the size budget; a source smaller than its share passes the rest
// on to the next one.
var usrSources = []struct {
	path  string
	share int // percent
}{
	{"/usr/bin", 20},
	{"/usr/sbin", 3},
	{"/usr/libexec", 5},
	{"/usr/lib/" + multiarch(), 37},
	{"/usr/share", 35},
}

func multiarch() string {
	if m, err := filepath.Glob("/usr/lib/*-linux-gnu*"); err == nil && len(m) > 0 {
		slices.Sort(m)
		return filepath.Base(m[0])
	}
	return "x86_64-linux-gnu"
}

// buildUsr copies, with tar (ownership, modes, hard links and xattrs kept),
// the lexical prefix of each usrSources directory that fits its budget,
// counting each file's bytes once however many names it has.
// The selection is deterministic for a given /usr.
func buildUsr(ctx context.Context, cfg *config, dir string) error {
	budget := int64(cfg.usrMiB) << 20
	var list []string
	var carry, total int64
	seen := map[[2]uint64]bool{}
	for _, src := range usrSources {
		allow := budget*int64(src.share)/100 + carry
		var used int64
		// Parents of the source, so that tar recreates them with their modes.
		for p := filepath.Dir(src.path); p != "/"; p = filepath.Dir(p) {
			if !slices.Contains(list, p[1:]) {
				list = append(list, p[1:])
			}
		}
		errFull := errors.New("full")
		err := filepath.WalkDir(src.path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
					return nil
				}
				return err
			}
			if d.Type().IsRegular() {
				fi, err := d.Info()
				if err != nil {
					return err
				}
				size := fi.Size()
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
					id := [2]uint64{st.Dev, st.Ino}
					if seen[id] {
						size = 0 // another name of a file already counted
					}
					seen[id] = true
				}
				if used+size > allow {
					return errFull
				}
				used += size
			} else if !d.IsDir() && d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			list = append(list, p[1:])
			return nil
		})
		if err != nil && !errors.Is(err, errFull) {
			return err
		}
		carry = allow - used
		total += used
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	logf("copying %d entries, %d MiB of /usr with tar", len(list), total>>20)
	pack := exec.CommandContext(ctx, "tar", "--create", "--file=-", "--directory=/",
		"--xattrs", "--xattrs-include=*", "--acls", "--no-recursion", "--null", "--files-from=-")
	pack.Stdin = strings.NewReader(strings.Join(list, "\x00") + "\x00")
	unpack := exec.CommandContext(ctx, "tar", "--extract", "--file=-", "--directory="+dir,
		"--xattrs", "--xattrs-include=*", "--acls", "--same-owner", "--same-permissions")
	pipe, err := pack.StdoutPipe()
	if err != nil {
		return err
	}
	unpack.Stdin = pipe
	var packErr, unpackErr bytes.Buffer
	pack.Stderr = &packErr
	unpack.Stderr = &unpackErr
	if err := unpack.Start(); err != nil {
		return err
	}
	if err := pack.Run(); err != nil {
		_ = unpack.Wait()
		return fmt.Errorf("tar --create: %w", commandError(err, &packErr))
	}
	if err := unpack.Wait(); err != nil {
		return fmt.Errorf("tar --extract: %w", commandError(err, &unpackErr))
	}
	return nil
}

// sanitize removes what neither ostree nor strata commit: device nodes,
// fifos and sockets (debootstrap's /dev). It returns how many it removed.
func sanitize(dir string) (int, error) {
	if err := checkNoMounts(dir); err != nil {
		return 0, err
	}
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if t := d.Type(); t.IsDir() || t.IsRegular() || t&fs.ModeSymlink != 0 {
			return nil
		}
		n++
		return os.Remove(p)
	})
	return n, err
}

// removeTree removes dir and everything in it, refusing when something is
// mounted inside (debootstrap mounts /proc and /sys in its target; a
// removal must never walk into the host's).
func removeTree(dir string) error {
	if err := checkNoMounts(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

func checkNoMounts(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == abs || strings.HasPrefix(mp, abs+"/") {
			return fmt.Errorf("%s is mounted inside %s; unmount it first", mp, abs)
		}
	}
	return sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// treeStats counts a tree's entries; bytes counts each inode once.
type treeStats struct {
	Files, Dirs, Symlinks int
	Bytes                 int64
}

func statTree(dir string) (treeStats, error) {
	var st treeStats
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch t := d.Type(); {
		case t.IsDir():
			st.Dirs++
		case t&fs.ModeSymlink != 0:
			st.Symlinks++
		case t.IsRegular():
			st.Files++
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if sys, ok := fi.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 {
				if seen[sys.Ino] {
					return nil
				}
				seen[sys.Ino] = true
			}
			st.Bytes += fi.Size()
		}
		return nil
	})
	return st, err
}

// aptMirror finds the Debian mirror apt uses for suite, from one-line
// sources.list files and deb822 .sources files under root (/etc/apt).
func aptMirror(root, suite string) (string, error) {
	files := []string{filepath.Join(root, "sources.list")}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(root, "sources.list.d", pat))
		files = append(files, m...)
	}
	slices.Sort(files[1:])
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uri string
		if strings.HasSuffix(f, ".sources") {
			uri = deb822Mirror(string(data), suite)
		} else {
			uri = oneLineMirror(string(data), suite)
		}
		if uri != "" {
			return uri, nil
		}
	}
	return "", fmt.Errorf("no deb source for suite %s in %s", suite, root)
}

func oneLineMirror(data, suite string) string {
	for line := range strings.Lines(data) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 2 && f[1] == suite && usableMirror(f[0]) {
			return f[0]
		}
	}
	return ""
}

func deb822Mirror(data, suite string) string {
	for _, para := range strings.Split(strings.ReplaceAll(data, "\r", ""), "\n\n") {
		fields := map[string]string{}
		for line := range strings.Lines(para) {
			line = strings.TrimRight(line, "\n")
			if line == "" || line[0] == '#' || line[0] == ' ' || line[0] == '\t' {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if strings.EqualFold(fields["enabled"], "no") ||
			!slices.Contains(strings.Fields(fields["types"]), "deb") ||
			!slices.Contains(strings.Fields(fields["suites"]), suite) {
			continue
		}
		for _, u := range strings.Fields(fields["uris"]) {
			if usableMirror(u) {
				return u
			}
		}
	}
	return ""
}

func usableMirror(uri string) bool {
	return strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://") ||
		strings.HasPrefix(uri, "file:")
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
