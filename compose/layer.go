package compose

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
)

// Packages on a [base] ref or image ("layering", as rpm-ostree and a
// Containerfile's `RUN apt-get install` do): the base tree, taken back
// into dpkg's shape by unlayout, gets exactly the locked .debs installed
// with the build's environment, then the layout, normalization and commit
// of every build follow.
//
// Resolution (compose lock, or a build without a lock) asks the build
// machine's apt, with a private configuration that sees only the base's
// dpkg status and the mirror of apt's configuration, which .debs the
// request needs on top of what the base has (apt-get install
// --print-uris), each pinned by the sha256 of the mirror's signed index;
// they are fetched into the package cache through the same verified
// fetch as a Debian base's. The build installs them with the tree's own
// apt and dpkg in a chroot of it, from a flat local repository of exactly
// the locked .debs (localRepo) that is the only source apt sees.

// hasLayer says whether the spec installs packages on a ref or image base.
func (s *Spec) hasLayer() bool {
	return len(s.Base.Packages) > 0 && (s.Base.Ref != "" || s.Base.Image != "")
}

// treeStatus reads the dpkg status of the tree at root (in the build's
// shape: var/lib/dpkg/status), a regular file beneath root.
func treeStatus(root string) ([]byte, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	f, err := fsutil.OpenRegularInRoot(int(dir.Fd()), "var/lib/dpkg/status")
	if err != nil {
		return nil, fmt.Errorf("the base's dpkg database (/var/lib/dpkg/status, /usr/lib/sysimage/dpkg/status in a composed tree): %w", err)
	}
	defer f.Close()
	return fsutil.ReadAllLimit(f, maxStatusSize)
}

// installedSet maps the installed packages of a dpkg status to their
// versions.
func installedSet(status []byte) (map[string]string, error) {
	m := map[string]string{}
	err := parseControl(bytes.NewReader(status), func(f map[string]string) error {
		if f["Status"] == "install ok installed" {
			m[f["Package"]] = f["Version"]
		}
		return nil
	})
	return m, err
}

// baseSuite is the Debian suite of the tree: VERSION_CODENAME of its
// os-release.
func baseSuite(t *buildTree) (string, error) {
	b, err := t.readFile("usr/lib/os-release")
	if os.IsNotExist(err) {
		b, err = t.readFile("etc/os-release")
	}
	if err != nil {
		return "", fmt.Errorf("the base's os-release: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VERSION_CODENAME="); ok {
			v = strings.Trim(v, `"'`)
			if v != "" && !strings.ContainsAny(v, " /") {
				return v, nil
			}
		}
	}
	return "", fmt.Errorf("the base's os-release has no VERSION_CODENAME: packages need a Debian base: %w", errdefs.ErrInvalid)
}

// hostArch is the build machine's dpkg architecture.
func hostArch(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "dpkg", "--print-architecture").Output()
	if err != nil {
		return "", fmt.Errorf("dpkg --print-architecture: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// aptConf writes a private configuration of apt into the directory
// hostDir, which apt sees as dir (the same, or the path inside a chroot):
// its own state, cache, lists and (empty) configuration directories,
// status as dpkg's status, source as its only source, the trusted keys of
// keys (a root directory: etc/apt/trusted.gpg*), no recommends (as
// mmdebstrap). extra is appended. It returns the file to give as
// APT_CONFIG, as apt sees it.
func aptConf(hostDir, dir, keys, arch, status, source, extra string) (string, error) {
	for _, d := range []string{"state/lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "log"} {
		if err := mkdirAllMode(filepath.Join(hostDir, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := writeFileMode(filepath.Join(hostDir, "etc/sources.list"), []byte(source+"\n"), 0o644); err != nil {
		return "", err
	}
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "Dir::State %s;\nDir::State::status %s;\nDir::Cache %s;\nDir::Etc %s;\nDir::Log %s;\n",
		q(filepath.Join(dir, "state")+"/"), q(status), q(filepath.Join(dir, "cache")+"/"), q(filepath.Join(dir, "etc")+"/"), q(filepath.Join(dir, "log")+"/"))
	fmt.Fprintf(&b, "Dir::Etc::Trusted %s;\nDir::Etc::TrustedParts %s;\n",
		q(filepath.Join(keys, "etc/apt/trusted.gpg")), q(filepath.Join(keys, "etc/apt/trusted.gpg.d")+"/"))
	fmt.Fprintf(&b, "APT::Architecture %s;\nAPT::Architectures { %s; };\n", q(arch), q(arch))
	b.WriteString("APT::Install-Recommends \"false\";\nAPT::Install-Suggests \"false\";\nAcquire::Languages \"none\";\nAPT::Sandbox::User \"root\";\n")
	b.WriteString(extra)
	return filepath.Join(dir, "apt.conf"), writeFileMode(filepath.Join(hostDir, "apt.conf"), []byte(b.String()), 0o644)
}

// runApt runs apt-get (wrapped: in a chroot) with the configuration conf
// and the build's environment.
func runApt(ctx context.Context, conf string, epoch int64, wrap []string, args ...string) ([]byte, error) {
	argv := append(append(append([]string(nil), wrap...), "apt-get"), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(buildEnv(epoch), "APT_CONFIG="+conf)
	cmd.Dir = "/"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		lines := strings.Split(msg, "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		return nil, fmt.Errorf("apt-get %s: %v:\n  %s", args[len(args)-1], err, strings.Join(lines, "\n  "))
	}
	return out, nil
}

// resolveLayer resolves the spec's packages against the base tree at root
// (build shape) and the mirror: it returns the lock of the .debs to
// install on top (their dependencies that the base has are not
// reinstalled), each fetched into the cache and verified.
func resolveLayer(ctx context.Context, s *Spec, o *Options, work, root string, epoch int64) (*Lock, error) {
	t, err := openTree(root)
	if err != nil {
		return nil, err
	}
	suite, err := baseSuite(t)
	t.Close()
	if err != nil {
		return nil, err
	}
	status, err := treeStatus(root)
	if err != nil {
		return nil, err
	}
	_, line, err := mirrorFor(s, o, suite)
	if err != nil {
		return nil, err
	}
	arch, err := hostArch(ctx)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(work, "apt-resolve")
	// A copy of the status: apt reads it, and nothing of the tree is
	// locked or written.
	if err := writeFileMode(filepath.Join(dir, "status"), status, 0o644); err != nil {
		return nil, err
	}
	conf, err := aptConf(dir, dir, o.HostRoot, arch, filepath.Join(dir, "status"), line, "")
	if err != nil {
		return nil, err
	}
	o.Progress.Phase("resolve", "steps", 2)
	pkgs, err := func() ([]LockPackage, error) {
		defer o.Progress.Done()
		if _, err := runApt(ctx, conf, epoch, nil, "-q", "update"); err != nil {
			return nil, err
		}
		o.Progress.Add(1)
		// --no-remove: a request that would take a package of the base
		// away is an error, never a silent removal.
		out, err := runApt(ctx, conf, epoch, nil, append([]string{"-qq", "--print-uris", "--no-remove", "-y", "install"}, s.Base.Packages...)...)
		if err != nil {
			return nil, fmt.Errorf("%s: [base] packages on the base: %w", s.Path, err)
		}
		o.Progress.Add(1)
		index, err := readIndexes(filepath.Join(dir, "state/lists"))
		if err != nil {
			return nil, err
		}
		return parsePrintURIs(out, index)
	}()
	if err != nil {
		return nil, err
	}
	l := &Lock{Version: LockVersion, Base: s.BaseDigest(), SourceDateEpoch: epoch, Suite: suite, Packages: pkgs}
	if err := fetchLocked(ctx, s, o, l); err != nil {
		return nil, err
	}
	return l, nil
}

// parsePrintURIs parses `apt-get --print-uris` lines ('URI'
// NAME_VERSION_ARCH.deb SIZE HASH) into the packages to install, each
// pinned by the sha256, size, pool path and priority of the mirror's
// index (apt verified it against the signed Release).
func parsePrintURIs(out []byte, index map[pkgKey]map[string]string) ([]LockPackage, error) {
	var pkgs []LockPackage
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		parts := strings.Split(strings.TrimSuffix(f[min(1, len(f)-1)], ".deb"), "_")
		if len(f) != 4 || !strings.HasPrefix(f[0], "'") || !strings.HasSuffix(f[1], ".deb") || len(parts) != 3 {
			return nil, fmt.Errorf("apt-get --print-uris: unexpected line %q: %w", line, errdefs.ErrInvalid)
		}
		k := pkgKey{parts[0], strings.ReplaceAll(parts[1], "%3a", ":"), parts[2]}
		ix, ok := index[k]
		if !ok {
			return nil, fmt.Errorf("%s %s (%s) is in no package index of the mirror: %w", k.name, k.version, k.arch, errdefs.ErrNotFound)
		}
		size, _ := strconv.ParseInt(ix["Size"], 10, 64)
		p := LockPackage{Name: k.name, Version: k.version, Arch: k.arch, SHA256: ix["SHA256"], Size: size, Filename: ix["Filename"], Priority: ix["Priority"]}
		if !pkgRe.MatchString(p.Name) || len(p.SHA256) != 64 || p.Filename == "" || strings.Contains(p.Filename, "..") || strings.HasPrefix(p.Filename, "/") {
			return nil, fmt.Errorf("the mirror's index entry of %s %s: bad name, sha256 or filename: %w", k.name, k.version, errdefs.ErrInvalid)
		}
		pkgs = append(pkgs, p)
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs, nil
}

// policyRC is usr/sbin/policy-rc.d while packages are installed: no
// service is started (invoke-rc.d and deb-systemd-invoke ask it).
const policyRC = "usr/sbin/policy-rc.d"

// layerDevices are the device nodes the maintainer scripts get: the build
// machine's, bind-mounted over empty files in a private mount namespace
// (the files are dropped with /dev by the layout).
var layerDevices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// layerDir is where the build's apt configuration and the local
// repository of the locked .debs are put inside the tree while the
// packages are installed (/run: emptied by the layout).
const layerDir = "run/strata-layer"

// installLayer installs exactly the locked packages l into the tree at
// root (build shape), from the verified cache: the tree's own apt and
// dpkg, run in a chroot of the tree (every path they write resolves
// inside it, whatever its symlinks), in new mount, network and pid
// namespaces: no network, a /proc of their own, the build's environment
// (SOURCE_DATE_EPOCH, LC_ALL=C, TZ=UTC, umask 022) and a policy-rc.d that
// starts no service. The only source apt sees is a flat repository of
// exactly the locked .debs (localRepo, in the tree's /run). Then the
// tree's dpkg status must be the base's plus exactly the lock.
func installLayer(ctx context.Context, s *Spec, o *Options, l *Lock, root string, epoch int64) error {
	if len(l.Packages) == 0 {
		return nil
	}
	before, err := treeStatus(root)
	if err != nil {
		return err
	}
	base, err := installedSet(before)
	if err != nil {
		return err
	}
	arch, err := hostArch(ctx)
	if err != nil {
		return err
	}
	t, err := openTree(root)
	if err != nil {
		return err
	}
	defer t.Close()
	if st, err := t.Stat("usr/bin/apt-get"); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("the base has no apt (/usr/bin/apt-get), which installs its packages: %w", errdefs.ErrInvalid)
	}
	// Whatever the base has at layerDir goes (links in it included):
	// what is written there below is written by path.
	if err := t.RemoveAll(layerDir); err != nil {
		return err
	}
	// What dpkg and the maintainer scripts write to: the composed base's
	// /var is empty (the layout makes it again).
	for _, d := range []string{"var/log", "var/cache/debconf", "var/lib", layerDir} {
		if err := t.mkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, d := range layerDevices {
		if err := t.writeFile(path.Join("dev", d), nil, 0o644); err != nil {
			return err
		}
	}
	for _, d := range []string{"proc", "dev/pts"} {
		if err := t.mkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// The directory was made through the tree's os.Root: no link in it
	// leads out.
	if err := localRepo(ctx, filepath.Join(root, layerDir, "repo"), Cache{Dir: o.CacheDir}, l); err != nil {
		return err
	}
	// [ids] pins, before the scripts that would allocate them run.
	if len(s.IDs.Users)+len(s.IDs.Groups) > 0 {
		for _, n := range []string{"passwd", "group", "shadow", "gshadow"} {
			if st, err := t.Lstat("etc/" + n); err == nil && !st.Mode().IsRegular() {
				return fmt.Errorf("the base's /etc/%s is not a regular file (%s): %w", n, st.Mode().Type(), errdefs.ErrInvalid)
			}
		}
		pins := filepath.Join(root, layerDir, "pins.sh")
		if err := pinScript(pins, s.IDs, epoch); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "sh", pins, root)
		cmd.Env = buildEnv(epoch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("[ids] pins: %v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	restore, err := denyServices(t)
	if err != nil {
		return err
	}
	defer restore()
	in := "/" + layerDir
	extra := fmt.Sprintf("DPkg::Options { %s; %s; };\n", strconv.Quote("--force-unsafe-io"), strconv.Quote("--path-exclude=/usr/share/doc/*/changelog*"))
	conf, err := aptConf(filepath.Join(root, layerDir, "apt"), in+"/apt", in+"/apt", arch, "/var/lib/dpkg/status",
		"deb [trusted=yes] file:"+in+"/repo ./", extra)
	if err != nil {
		return err
	}
	o.Progress.Phase("configure", "packages", int64(len(l.Packages)))
	defer o.Progress.Done()
	// The mounts live in the private mount namespace and go with it.
	wrap := []string{"unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "sh", "-c",
		`set -e; r=$1; shift; umask 022
for d in ` + strings.Join(layerDevices, " ") + `; do mount --bind "/dev/$d" "$r/dev/$d"; done
mount -t proc proc "$r/proc"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts" 2>/dev/null || true
exec chroot "$r" "$@"`, "sh", root}
	if _, err := runApt(ctx, conf, epoch, wrap, "-q", "update"); err != nil {
		return err
	}
	args := []string{"-q", "-y", "--no-remove", "--allow-downgrades", "install"}
	for _, p := range l.Packages {
		args = append(args, p.Name+"="+p.Version)
	}
	if _, err := runApt(ctx, conf, epoch, wrap, args...); err != nil {
		return fmt.Errorf("installing the locked packages on the base: %w", err)
	}
	o.Progress.Add(int64(len(l.Packages)))
	if err := t.RemoveAll(layerDir); err != nil {
		return err
	}
	after, err := treeStatus(root)
	if err != nil {
		return err
	}
	return checkLayered(base, after, l)
}

// denyServices puts a policy-rc.d that denies every service start into
// the tree; restore puts back what was there.
func denyServices(t *buildTree) (restore func(), err error) {
	old, rerr := t.readFile(policyRC)
	var mode os.FileMode
	switch {
	case rerr == nil:
		st, err := t.Stat(policyRC)
		if err != nil {
			return nil, err
		}
		mode = st.Mode().Perm()
	case !os.IsNotExist(rerr):
		return nil, rerr
	}
	if err := t.writeFile(policyRC, []byte("#!/bin/sh\n# strata compose: no service starts while packages are installed.\nexit 101\n"), 0o755); err != nil {
		return nil, err
	}
	return func() {
		if rerr == nil {
			_ = t.writeFile(policyRC, old, mode)
		} else {
			_ = t.Remove(policyRC)
		}
	}, nil
}

// checkLayered compares the tree's dpkg status after the install with the
// base's and the lock: every locked package installed at its version,
// every package of the base still installed, nothing else.
func checkLayered(base map[string]string, after []byte, l *Lock) error {
	now, err := installedSet(after)
	if err != nil {
		return err
	}
	locked := map[string]string{}
	for _, p := range l.Packages {
		locked[p.Name] = p.Version
	}
	var bad []string
	for n, v := range locked {
		if now[n] != v {
			bad = append(bad, fmt.Sprintf("%s %s not installed (have %q)", n, v, now[n]))
		}
	}
	for n := range base {
		if _, ok := now[n]; !ok {
			bad = append(bad, n+" of the base removed")
		}
	}
	for n, v := range now {
		if _, ok := locked[n]; !ok && base[n] != v {
			bad = append(bad, fmt.Sprintf("%s %s not in the lock", n, v))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return fmt.Errorf("the packages installed on the base are not the lock's (run `strata compose lock` again): %s: %w", strings.Join(bad, "; "), errdefs.ErrInvalid)
	}
	return nil
}
