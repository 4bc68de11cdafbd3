package compose

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/imgpolicy"
	"github.com/strata-os/strata/repo"
)

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// imageRootfs writes a small OS tree: busybox as /usr/bin, merged /usr,
// a user database, a file under /var.
func imageRootfs(t *testing.T, dir string) {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd":         "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
		"etc/group":          "root:x:0:\ndaemon:x:1:\nusers:x:100:\n",
		"etc/shadow":         "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
		"etc/gshadow":        "root:*::\ndaemon:*::\nusers:*::\n",
		"usr/lib/os-release": "ID=imagetest\n",
		"etc/old":            "to be deleted by the upper layer\n",
		"var/lib/foo/state":  "state\n",
		"usr/lib/os/data":    strings.Repeat("d", 5000),
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for l, target := range map[string]string{"usr/bin/sh": "busybox", "bin": "usr/bin", "etc/os-release": "../usr/lib/os-release"} {
		if err := os.Symlink(target, filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
}

// umociImage makes layout:tag from rootfs with umoci (one layer); with
// from, the layer goes on top of layout:from, edit changing the unpacked
// tree first (umoci records deletions as whiteouts).
func umociImage(t *testing.T, layout, tag, from, rootfs string, edit func(dir string)) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		runTool(t, "umoci", "init", "--layout", layout)
	}
	if from == "" {
		runTool(t, "umoci", "new", "--image", layout+":"+tag)
		from = tag
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	runTool(t, "umoci", "unpack", "--rootless", "--image", layout+":"+from, bundle)
	if rootfs != "" {
		runTool(t, "cp", "-a", rootfs+"/.", filepath.Join(bundle, "rootfs"))
	}
	if edit != nil {
		edit(filepath.Join(bundle, "rootfs"))
	}
	runTool(t, "umoci", "repack", "--image", layout+":"+tag, bundle)
}

// manifestDigest is the digest skopeo reports for an image.
func manifestDigest(t *testing.T, ref string) string {
	t.Helper()
	return strings.TrimSpace(runTool(t, "skopeo", "inspect", "--format", "{{.Digest}}", ref))
}

const imageSpec = `[os]
name = "img"
version = "2"

[base]
image = "oci:layout:v2"

[[files]]
path = "/etc/motd"
content = "on an image\n"

[[groups]]
name = "app"
gid = 990

[[users]]
name = "app"
uid = 990
group = "app"
home = "/var/lib/app"

[kernel]
args = ["quiet"]
`

// TestImageBase composes on a two-layer image made by umoci (the upper
// layer deletes a file and adds one): the merged tree is the base, the
// spec is applied, the layout holds, the commit records the image's
// digest; the same image and spec give the same commit from another
// directory, cache and repository; the --oci exports are read by skopeo
// and umoci, and a pull of them gives back the very commit.
func TestImageBase(t *testing.T) {
	ctx := context.Background()
	specDir := t.TempDir()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	imageRootfs(t, rootfs)
	layout := filepath.Join(specDir, "layout")
	umociImage(t, layout, "v1", "", rootfs, nil)
	umociImage(t, layout, "v2", "v1", "", func(dir string) {
		if err := os.Remove(filepath.Join(dir, "etc/old")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "usr/bin/new"), []byte("new\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	digest := manifestDigest(t, "oci:"+layout+":v2")
	specPath := filepath.Join(specDir, "img.toml")
	if err := os.WriteFile(specPath, []byte(imageSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSpec(specPath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	res, err := Build(ctx, s, Options{Repo: r, CacheDir: t.TempDir(), StrataBinary: "/bin/busybox",
		OCI: container.ImageRef{Transport: container.OCIDir, Name: filepath.Join(outDir, "out") + ":v2"}, OCIMaxLayers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseImageDigest != digest || res.Image == nil {
		t.Fatalf("base digest %q, want %q; image %+v", res.BaseImageDigest, digest, res.Image)
	}
	cm, err := r.ReadCommit(res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := cm.Metadata.String(MetaBaseImageDigest); v != digest {
		t.Errorf("commit metadata %s = %q, want %q", MetaBaseImageDigest, v, digest)
	}
	if v, _ := cm.Metadata.String("version"); v != "2" {
		t.Errorf("version %q", v)
	}

	co := filepath.Join(t.TempDir(), "co")
	if err := checkoutForTest(r, res.Commit, co); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"usr/etc/motd":       "on an image\n",
		"usr/lib/os-release": "ID=imagetest\nIMAGE_ID=img\nIMAGE_VERSION=\"2\"\n",
		"usr/bin/new":        "new\n",
		kargsFile:            "# Written by strata compose from the spec's [kernel] args.\nkargs = [\"quiet\"]\n",
	} {
		if b, err := os.ReadFile(filepath.Join(co, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", p, b, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(co, "usr/etc/old")); !os.IsNotExist(err) {
		t.Errorf("the upper layer's whiteout was not applied: /usr/etc/old: %v", err)
	}
	for _, p := range []string{"usr/bin/strata", "usr/bin/busybox", "usr/share/factory/var/lib/foo/state", sysusersFile} {
		if _, err := os.Lstat(filepath.Join(co, p)); err != nil {
			t.Errorf("missing %s: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(co, "usr/etc/passwd")); !strings.Contains(string(b), "app:x:990:990:") {
		t.Errorf("passwd:\n%s", b)
	}
	if l, err := os.Readlink(filepath.Join(co, "home")); err != nil || l != "var/home" {
		t.Errorf("/home -> %q (%v)", l, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(co, "var")); len(ents) != 0 {
		t.Errorf("/var not empty: %v", ents)
	}
	vars, _ := os.ReadFile(filepath.Join(co, tmpfilesVar))
	if !strings.Contains(string(vars), "C /var/lib/foo/state - - - -\n") {
		t.Errorf("tmpfiles:\n%s", vars)
	}

	// Reproducible: the image copied elsewhere, the spec beside it, another
	// cache and repository, the base cache off.
	specDir2 := t.TempDir()
	runTool(t, "cp", "-a", layout, filepath.Join(specDir2, "layout"))
	if err := os.WriteFile(filepath.Join(specDir2, "img.toml"), []byte(imageSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := LoadSpec(filepath.Join(specDir2, "img.toml"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(outDir, "out.tar")
	res2, err := Build(ctx, s2, Options{Repo: r2, CacheDir: t.TempDir(), StrataBinary: "/bin/busybox", NoBaseCache: true,
		OCI: container.ImageRef{Transport: container.OCIArchive, Name: archive + ":v2"}, OCIMaxLayers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Commit != res.Commit {
		t.Fatalf("same image and spec, two commits: %s %s", res.Commit, res2.Commit)
	}
	if res2.Image.ManifestDigest != res.Image.ManifestDigest {
		t.Errorf("same commit, two image digests: %s %s", res.Image.ManifestDigest, res2.Image.ManifestDigest)
	}

	// The same image from a registry on 127.0.0.1, named by digest: the
	// same commit.
	addr := startTestRegistry(t)
	runTool(t, "skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false", "oci:"+layout+":v2", "docker://"+addr+"/img:v2")
	regSpec := strings.Replace(imageSpec, `"oci:layout:v2"`, `"docker://`+addr+`/img@`+digest+`"`, 1)
	s4, err := ParseSpec(filepath.Join(t.TempDir(), "reg.toml"), []byte(regSpec))
	if err != nil {
		t.Fatal(err)
	}
	r4, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res4, err := Build(ctx, s4, Options{Repo: r4, CacheDir: t.TempDir(), StrataBinary: "/bin/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if res4.Commit != res.Commit || res4.BaseImageDigest != digest {
		t.Fatalf("from the registry: commit %s base %s, from the layout: %s %s", res4.Commit, res4.BaseImageDigest, res.Commit, digest)
	}

	// The exports, read by the real tools and pulled back.
	for _, ref := range []string{"oci:" + filepath.Join(outDir, "out") + ":v2", "oci-archive:" + archive + ":v2"} {
		var insp struct {
			Digest string
			Labels map[string]string
		}
		if err := json.Unmarshal([]byte(runTool(t, "skopeo", "inspect", ref)), &insp); err != nil {
			t.Fatal(err)
		}
		if insp.Digest != res.Image.ManifestDigest || insp.Labels["ostree.commit"] != res.Commit.String() || insp.Labels[MetaBaseImageDigest] != digest || insp.Labels["containers.bootc"] != "1" {
			t.Errorf("skopeo inspect %s: %+v", ref, insp)
		}
		ir, err := container.ParseImageRef(ref)
		if err != nil {
			t.Fatal(err)
		}
		d, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pr, err := container.Pull(ctx, d, ir, container.PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pr.BaseCommit != res.Commit {
			t.Errorf("%s carries commit %s, want %s", ref, pr.BaseCommit, res.Commit)
		}
		mc, err := d.ReadCommit(pr.MergeCommit)
		if err != nil {
			t.Fatal(err)
		}
		if mc.RootTree != cm.RootTree || mc.RootMeta != cm.RootMeta {
			t.Errorf("%s: merge commit's root %s/%s, the composed commit's %s/%s", ref, mc.RootTree, mc.RootMeta, cm.RootTree, cm.RootMeta)
		}
	}
	if out := runTool(t, "umoci", "stat", "--image", filepath.Join(outDir, "out")+":v2"); !strings.Contains(out, "strata container encapsulate") {
		t.Errorf("umoci stat:\n%s", out)
	}

	// The encapsulated export as the base of the next version (a
	// bootc-style image): its laid-out tree is taken back and the new
	// spec applied on top, as on a ref base.
	spec3 := strings.Replace(strings.Replace(imageSpec, `"oci:layout:v2"`, `"oci:`+filepath.Join(outDir, "out")+`:v2"`, 1), `version = "2"`, `version = "3"`, 1) +
		"\n[[files]]\npath = \"/etc/motd3\"\ncontent = \"v3\\n\"\n"
	s3, err := ParseSpec(filepath.Join(t.TempDir(), "v3.toml"), []byte(spec3))
	if err != nil {
		t.Fatal(err)
	}
	res3, err := Build(ctx, s3, Options{Repo: r, CacheDir: t.TempDir(), StrataBinary: "/bin/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if res3.BaseImageDigest != res.Image.ManifestDigest {
		t.Errorf("v3's base digest %s, want the export's %s", res3.BaseImageDigest, res.Image.ManifestDigest)
	}
	co3 := filepath.Join(t.TempDir(), "co")
	if err := checkoutForTest(r, res3.Commit, co3); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"usr/etc/motd":                        "on an image\n",
		"usr/etc/motd3":                       "v3\n",
		"usr/share/factory/var/lib/foo/state": "state\n",
		"usr/lib/os-release":                  "ID=imagetest\nIMAGE_ID=img\nIMAGE_VERSION=\"3\"\n",
	} {
		if b, err := os.ReadFile(filepath.Join(co3, p)); err != nil || string(b) != want {
			t.Errorf("v3 %s = %q (%v), want %q", p, b, err, want)
		}
	}
	if vars, _ := os.ReadFile(filepath.Join(co3, tmpfilesVar)); !strings.Contains(string(vars), "C /var/lib/foo/state - - - -\n") {
		t.Errorf("v3 tmpfiles lost v2's lines:\n%s", vars)
	}
	if _, err := os.Lstat(filepath.Join(co3, "etc")); !os.IsNotExist(err) {
		t.Error("v3: /etc beside /usr/etc")
	}
}

// startTestRegistry starts Debian's docker-registry on a free port of
// 127.0.0.1 and returns its address.
func startTestRegistry(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", filepath.Join(dir, "config.yml"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr
			}
		}
		if i > 100 {
			t.Fatalf("registry did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hostileLayout writes an OCI layout (tag v1) with one uncompressed layer
// made of the given tar headers, for what umoci cannot make.
func hostileLayout(t *testing.T, dir string, hs ...*tar.Header) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hs {
		body := []byte(nil)
		if h.Typeflag == tar.TypeReg {
			body = []byte("pwned\n")
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs/sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(data []byte) (string, int) {
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(dir, "blobs/sha256", h), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + h, len(data)
	}
	layer, lsize := put(b.Bytes())
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []string{layer}}})
	cd, cs := put(cfg)
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": lsize}}})
	md, ms := put(man)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json",
		"digest": md, "size": ms, "annotations": map[string]string{"org.opencontainers.image.ref.name": "v1"}}}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHostileImageBase: an image base that would take the build out of
// its tree is refused with one line naming the image (and the path), a
// sentinel directory outside is untouched, and no ref, commit or build
// directory is left: a layer with '..' or an absolute name (umoci cannot
// make one: written by hand), and images made by umoci whose /usr, /boot,
// /tmp, /var/lib/dpkg or kernel directory is a symlink out of the tree.
func TestHostileImageBase(t *testing.T) {
	ctx := context.Background()
	outside, checkOutside := outsideSentinel(t)
	up := strings.Repeat("../", 30) + strings.TrimPrefix(outside, "/")
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	imageRootfs(t, rootfs)
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	symlinked := func(path, target string) func(string) {
		return func(dir string) {
			p := filepath.Join(dir, path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name   string
		tar    []*tar.Header // a hand-made layer, or
		edit   func(string)  // an umoci image of the rootfs so edited
		want   string
		sentry error
	}{
		{name: "dotdot name", tar: []*tar.Header{{Name: "../../escape", Typeflag: tar.TypeReg, Mode: 0o644}}, want: `"../../escape"`, sentry: commit.ErrInvalidTar},
		{name: "absolute name", tar: []*tar.Header{{Name: filepath.Join(outside, "abs"), Typeflag: tar.TypeReg, Mode: 0o644}}, want: "absolute name", sentry: commit.ErrInvalidTar},
		{name: "symlink then a file through it", tar: []*tar.Header{{Name: "usr", Typeflag: tar.TypeSymlink, Linkname: outside}, {Name: "usr/evil", Typeflag: tar.TypeReg, Mode: 0o644}}, want: `"usr/evil"`, sentry: commit.ErrInvalidTar},
		// The layer's etc/ goes to usr/etc/: a /usr symlink then meets
		// that directory and the pull refuses the layer.
		{name: "usr absolute symlink", edit: symlinked("usr", outside), want: `"usr"`, sentry: commit.ErrInvalidTar},
		{name: "usr relative symlink", edit: symlinked("usr", up), want: `"usr"`, sentry: commit.ErrInvalidTar},
		{name: "usr/bin symlink", edit: symlinked("usr/bin", outside), want: "/usr/bin is a symlink", sentry: errdefs.ErrInvalid},
		{name: "boot symlink", edit: symlinked("boot", outside), want: "/boot is a symlink", sentry: errdefs.ErrInvalid},
		{name: "tmp symlink", edit: symlinked("tmp", up), want: "/tmp is a symlink", sentry: errdefs.ErrInvalid},
		{name: "var/lib/dpkg symlink", edit: symlinked("var/lib/dpkg", outside), want: "/var/lib/dpkg is a symlink", sentry: errdefs.ErrInvalid},
		{name: "kernel directory symlink", edit: symlinked("usr/lib/modules/6.1.0-evil", outside), want: "/usr/lib/modules/6.1.0-evil is a symlink", sentry: errdefs.ErrInvalid},
		{name: "etc symlink", edit: symlinked("etc", outside), want: "image oci:", sentry: errdefs.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			specDir := t.TempDir()
			layout := filepath.Join(specDir, "layout")
			if c.tar != nil {
				hostileLayout(t, layout, c.tar...)
			} else {
				umociImage(t, layout, "v1", "", rootfs, c.edit)
			}
			spec := "[os]\nname = \"hostile\"\n\n[base]\nimage = \"oci:layout:v1\"\n\n[[files]]\npath = \"/etc/motd\"\ncontent = \"x\\n\"\n\n[kernel]\nargs = [\"quiet\"]\n"
			s, err := ParseSpec(filepath.Join(specDir, "spec.toml"), []byte(spec))
			if err != nil {
				t.Fatal(err)
			}
			cache := t.TempDir()
			before := countCommits(t, r)
			_, err = Build(ctx, s, Options{Repo: r, CacheDir: cache, StrataBinary: "/bin/busybox"})
			checkOutside()
			if err == nil || !errors.Is(err, c.sentry) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "spec.toml:5: base.image: image oci:"+layout) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %v, want one %v line naming the image and %q", err, c.sentry, c.want)
			}
			t.Log(err)
			checkNothingPublished(t, r, "hostile", cache, before)
		})
	}

	// A policy that rejects the image: refused before any layer is
	// fetched; nothing in the base cache either.
	specDir := t.TempDir()
	umociImage(t, filepath.Join(specDir, "layout"), "v1", "", rootfs, nil)
	s, err := ParseSpec(filepath.Join(specDir, "spec.toml"), []byte("[os]\nname = \"hostile\"\n\n[base]\nimage = \"oci:layout:v1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	polPath := filepath.Join(specDir, "policy.json")
	if err := os.WriteFile(polPath, []byte(`{"default":[{"type":"reject"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := imgpolicy.Load(polPath)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	before := countCommits(t, r)
	_, err = Build(ctx, s, Options{Repo: r, CacheDir: cache, StrataBinary: "/bin/busybox", Pull: container.PullOptions{Policy: pol}})
	if err == nil || !strings.Contains(err.Error(), "rejected by the signature policy") || !strings.Contains(err.Error(), "spec.toml:5: base.image: ") {
		t.Fatalf("rejected image: %v", err)
	}
	checkNothingPublished(t, r, "hostile", cache, before)
	if br, err := repo.Open(filepath.Join(cache, "base-repo")); err == nil {
		if refs, _ := br.ListRefs(); len(refs) != 0 {
			t.Errorf("the base cache holds %v after a rejected image", refs)
		}
	}
	checkOutside()
}

// TestImageSpecErrors: an image base is parsed and refused as the other
// keys are, with file, line and key.
func TestImageSpecErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"[os]\nname = \"x\"\n\n[base]\nimage = \"docker-archive:x.tar\"\n":                          "s.toml:5: base.image: ",
		"[os]\nname = \"x\"\n\n[base]\nimage = \"oci:\"\n":                                          "s.toml:5: base.image: ",
		"[os]\nname = \"x\"\n\n[base]\nimage = \"oci:img\"\nmirror = \"http://x/debian\"\n":         "s.toml:4: base: components and mirror are for packages",
		"[os]\nname = \"x\"\n\n[base]\nref = \"v1\"\nvariant = \"minbase\"\n":                       "s.toml:6: base.variant: a ref base takes no variant",
		"[os]\nname = \"x\"\n\n[base]\nref = \"v1\"\npackages = [\"Bad\"]\n":                        "s.toml:6: base.packages: entry 1",
		"[os]\nname = \"x\"\n\n[base]\nimage = \"oci:img\"\nsuite = \"bookworm\"\n":                 "s.toml:4: base: give exactly one",
		"[os]\nname = \"x\"\n\n[base]\nimage = \"oci-archive:img.tar:v1\"\nvariant = \"minbase\"\n": "s.toml:6: base.variant: an image base takes no variant",
	} {
		_, err := ParseSpec("s.toml", []byte(spec))
		if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", spec, err, want)
		}
	}
	s, err := ParseSpec("/specs/s.toml", []byte("[os]\nname = \"x\"\n\n[base]\nimage = \"oci:img:v1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ref, err := s.baseImageRef(); err != nil || ref.String() != "oci:/specs/img:v1" {
		t.Errorf("relative layout: %v %v, want oci:/specs/img:v1", ref, err)
	}
}

// TestImageBaseLock: a build writes SPEC.lock with the image's digest and
// later builds hold to it. A layout whose tag moved is refused (one line,
// nothing published) until `compose lock` takes the new image; a registry
// tag that moved is pulled by the locked digest and gives the same commit.
func TestImageBaseLock(t *testing.T) {
	ctx := context.Background()
	specDir := t.TempDir()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	imageRootfs(t, rootfs)
	layout := filepath.Join(specDir, "layout")
	umociImage(t, layout, "v1", "", rootfs, nil)
	umociImage(t, layout, "v2", "v1", "", func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "usr/bin/new"), []byte("new\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	d1, d2 := manifestDigest(t, "oci:"+layout+":v1"), manifestDigest(t, "oci:"+layout+":v2")
	addr := startTestRegistry(t)
	runTool(t, "skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false", "oci:"+layout+":v1", "docker://"+addr+"/img:latest")
	runTool(t, "umoci", "tag", "--image", layout+":v1", "cur")

	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	build := func(dir, image, branch string) (*Result, error) {
		t.Helper()
		spec := strings.Replace(imageSpec, `"oci:layout:v2"`, `"`+image+`"`, 1)
		if err := os.WriteFile(filepath.Join(dir, branch+".toml"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := LoadSpec(filepath.Join(dir, branch+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		return Build(ctx, s, Options{Repo: r, Branch: branch, CacheDir: t.TempDir(), StrataBinary: "/bin/busybox"})
	}
	for _, c := range []struct{ branch, image string }{{"layout", "oci:layout:cur"}, {"registry", "docker://" + addr + "/img:latest"}} {
		res, err := build(specDir, c.image, c.branch)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ReadLock(filepath.Join(specDir, c.branch+".lock"))
		if err != nil || !res.LockWritten || l.Image != d1 || res.BaseImageDigest != d1 {
			t.Fatalf("%s: lock %+v (%v), written %v, base %s; want %s", c.branch, l, err, res.LockWritten, res.BaseImageDigest, d1)
		}
	}
	v1 := map[string]string{}
	for _, b := range []string{"layout", "registry"} {
		c, err := r.ReadRef("heads/" + b)
		if err != nil {
			t.Fatal(err)
		}
		v1[b] = c.String()
	}

	// The tags move to v2.
	runTool(t, "umoci", "tag", "--image", layout+":v2", "cur")
	runTool(t, "skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false", "oci:"+layout+":v2", "docker://"+addr+"/img:latest")

	before := countCommits(t, r)
	_, err = build(specDir, "oci:layout:cur", "layout")
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "is "+d2+", ") || !strings.Contains(err.Error(), "pins "+d1) || !strings.Contains(err.Error(), "strata compose lock") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("moved layout tag: %v", err)
	}
	if c, _ := r.ReadRef("heads/layout"); c.String() != v1["layout"] || countCommits(t, r) != before {
		t.Fatalf("a refused build moved the ref to %s or wrote a commit", c)
	}
	res, err := build(specDir, "docker://"+addr+"/img:latest", "registry")
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit.String() != v1["registry"] || res.BaseImageDigest != d1 || res.LockWritten {
		t.Fatalf("locked registry build: %s from %s (lock written %v), want %s from %s", res.Commit, res.BaseImageDigest, res.LockWritten, v1["registry"], d1)
	}

	// compose lock takes the new image.
	for _, b := range []string{"layout", "registry"} {
		s, err := LoadSpec(filepath.Join(specDir, b+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		l, err := LockSpec(ctx, s, Options{})
		if err != nil || l.Image != d2 {
			t.Fatalf("%s: lock %+v %v, want %s", b, l, err, d2)
		}
		res, err := build(specDir, s.Base.Image, b)
		if err != nil {
			t.Fatal(err)
		}
		if res.BaseImageDigest != d2 || res.Commit.String() == v1[b] {
			t.Fatalf("%s after lock: %s from %s", b, res.Commit, res.BaseImageDigest)
		}
	}
}
