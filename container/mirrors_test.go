package container

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/imgpolicy"
	"github.com/strata-os/strata/internal/registrytest"
	"github.com/strata-os/strata/ocilayer"
	"github.com/strata-os/strata/repo"
)

// loadConf writes a registries.conf and loads it.
func loadConf(t *testing.T, text string) *Registries {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := LoadRegistries(conf, true)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// deadAddr is a 127.0.0.1 port nothing listens on.
func deadAddr(t *testing.T) string { return registrytest.FreeAddr(t) }

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestMirrorEndpoints: the order and rewriting of pull endpoints, as
// containers/image's PullSourcesFromReference.
func TestMirrorEndpoints(t *testing.T) {
	rs := loadConf(t, `
[[registry]]
location = "all.test"
[[registry.mirror]]
location = "m1.test"
[[registry.mirror]]
location = "m2.test:5000/sub/"
insecure = true
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "m3.test"
pull-from-mirror = "tag-only"

[[registry]]
location = "dig.test"
mirror-by-digest-only = true
[[registry.mirror]]
location = "dm.test"

[[registry]]
prefix = "example.test/foo"
location = "127.0.0.1:5000/bar"
[[registry.mirror]]
location = "fm.test/x"

[[registry]]
prefix = "*.wild.test"
[[registry.mirror]]
location = "wm.test"

[[registry]]
location = "blk.test"
blocked = true

[[registry]]
location = "tob.test"
[[registry.mirror]]
location = "blk.test/mirror"
`)
	for _, tc := range []struct{ ref, want string }{
		{"all.test/os:v1", "mirror m1.test/os:v1, mirror m3.test/os:v1, all.test/os:v1"},
		{"all.test/os@" + testDigest, "mirror m1.test/os@" + testDigest + ", mirror+insecure m2.test:5000/sub/os@" + testDigest + ", all.test/os@" + testDigest},
		{"all.test/os", "mirror m1.test/os:latest, mirror m3.test/os:latest, all.test/os:latest"},
		{"dig.test/os:v1", "dig.test/os:v1"},
		{"dig.test/os@" + testDigest, "mirror dm.test/os@" + testDigest + ", dig.test/os@" + testDigest},
		{"example.test/foo/os:v1", "mirror fm.test/x/os:v1, 127.0.0.1:5000/bar/os:v1"},
		{"example.test/foobar/os:v1", "example.test/foobar/os:v1"},
		{"a.wild.test/os:v1", "mirror wm.test/os:v1, a.wild.test/os:v1"},
		{"tob.test/os:v1", "mirror+blocked blk.test/mirror/os:v1, tob.test/os:v1"},
		{"other.test/os:v1", "other.test/os:v1"},
	} {
		eps, err := rs.pullEndpoints(ImageRef{Registry, tc.ref})
		if err != nil {
			t.Errorf("%s: %v", tc.ref, err)
			continue
		}
		var got []string
		for _, ep := range eps {
			var tags []string
			if ep.mirror {
				tags = append(tags, "mirror")
			}
			if ep.insecure {
				tags = append(tags, "insecure")
			}
			if ep.blocked != nil {
				tags = append(tags, "blocked")
			}
			s := ep.ref.String()
			if len(tags) > 0 {
				s = strings.Join(tags, "+") + " " + s
			}
			got = append(got, s)
		}
		if strings.Join(got, ", ") != tc.want {
			t.Errorf("%s:\n got  %s\n want %s", tc.ref, strings.Join(got, ", "), tc.want)
		}
	}
	_, err := rs.pullEndpoints(ImageRef{Registry, "blk.test/os:v1"})
	oneLine(t, "blocked", err, "blk.test", "blocked by registries.conf")
	// A push goes to the reference as written, never to a mirror or a
	// remapped location.
	if r, _, err := rs.reference(ImageRef{Registry, "example.test/foo/os:v1"}); err != nil || r.String() != "example.test/foo/os:v1" {
		t.Errorf("push reference %v, %v", r, err)
	}
}

// TestMirrorConfRefused: bad mirror tables fail the whole file with one
// line naming it.
func TestMirrorConfRefused(t *testing.T) {
	for _, tc := range []struct{ conf, says string }{
		{"[[registry]]\nlocation = \"a.test\"\n[[registry.mirror]]\nlocation = \"m.test\"\npull-from-mirror = \"sometimes\"\n", `pull-from-mirror "sometimes" is not all, digest-only or tag-only`},
		{"[[registry]]\nlocation = \"a.test\"\n[[registry.mirror]]\ninsecure = true\n", "mirror 1 has no location"},
		{"[[registry]]\nlocation = \"a.test\"\n[[registry.mirror]]\nlocation = \"https://m.test\"\n", "takes no scheme"},
		{"[[registry]]\nlocation = \"a.test\"\npull-from-mirror = \"all\"\n", "pull-from-mirror belongs in a [[registry.mirror]]"},
		{"[[registry]]\nlocation = \"a.test\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.test\"\npull-from-mirror = \"tag-only\"\n", "exclude each other"},
		{"[[registry]]\nlocation = \"a.test\"\n[[registry.mirror]]\nlocation = 5\n", ""},
	} {
		conf := filepath.Join(t.TempDir(), "registries.conf")
		os.WriteFile(conf, []byte(tc.conf), 0o644)
		_, err := LoadRegistries(conf, true)
		oneLine(t, tc.says, err, conf, tc.says)
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v is not ErrInvalid", tc.says, err)
		}
	}
}

// TestRegistryMirror pulls through registries.conf mirrors from Debian's
// registry: the image lives only in the mirror; the primary is an empty
// registry; the first mirror is a port nothing listens on.
func TestRegistryMirror(t *testing.T) {
	ctx := context.Background()
	mirror := registrytest.Start(t, registrytest.Options{})
	primary := registrytest.Start(t, registrytest.Options{})
	dead := deadAddr(t)
	src, c := smallCommit(t)
	res, err := Encapsulate(ctx, src, c, ImageRef{Registry, mirror.Addr + "/os:v1"}, EncapsulateOptions{MaxLayers: 4})
	if err != nil {
		t.Fatal(err)
	}
	img := ImageRef{Registry, primary.Addr + "/os:v1"}
	byDigest := ImageRef{Registry, primary.Addr + "/os@" + res.ManifestDigest}
	newRepo := func() *repo.Repo {
		r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// A direct pull from the mirror, for reference.
	direct, err := Pull(ctx, newRepo(), ImageRef{Registry, mirror.Addr + "/os:v1"}, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mirrorConf := func(extra string) *Registries {
		return loadConf(t, "[[registry]]\nlocation = \""+primary.Addr+"\"\n"+extra+"[[registry.mirror]]\nlocation = \""+dead+"\"\n[[registry.mirror]]\nlocation = \""+mirror.Addr+"\"\n")
	}
	rs := mirrorConf("")
	for _, ref := range []ImageRef{img, byDigest} {
		r := newRepo()
		pr, err := Pull(ctx, r, ref, PullOptions{Access: Access{Registries: rs}})
		if err != nil {
			t.Fatalf("%s through the mirror: %v", ref, err)
		}
		wantName, _ := ocilayer.EscapeRef(ocilayer.ImageRefPrefix, ref.String())
		if pr.BaseCommit != c || pr.ManifestDigest != res.ManifestDigest || pr.ManifestDigest != direct.ManifestDigest || pr.ImageRefName != wantName {
			t.Fatalf("%s: commit %s digest %s name %s; want %s %s %s", ref, pr.BaseCommit, pr.ManifestDigest, pr.ImageRefName, c, res.ManifestDigest, wantName)
		}
		if got, err := r.ResolveRev(pr.ImageRefName); err != nil || got != pr.MergeCommit {
			t.Fatalf("%s: ref %s is %s, %v; want %s", ref, pr.ImageRefName, got, err, pr.MergeCommit)
		}
		refs, _ := r.ListRefs()
		for _, rf := range refs {
			if strings.Contains(rf.Name, strings.ReplaceAll(mirror.Addr, ":", "_3A_")) || strings.Contains(rf.Name, mirror.Addr) {
				t.Fatalf("a ref names the mirror: %s", rf.Name)
			}
		}
	}
	if log, _ := os.ReadFile(primary.Log); strings.Contains(string(log), "/v2/os/") {
		t.Fatalf("the primary was asked for the image although the mirror served it:\n%s", log)
	}
	if log, _ := os.ReadFile(mirror.Log); !strings.Contains(string(log), "GET /v2/os/blobs/") {
		t.Fatal("the mirror's log shows no blob fetched")
	}

	// digest-only: a pull by tag skips the mirror and fails against the
	// empty primary, writing nothing; a pull by digest uses it.
	rs = loadConf(t, "[[registry]]\nlocation = \""+primary.Addr+"\"\n[[registry.mirror]]\nlocation = \""+mirror.Addr+"\"\npull-from-mirror = \"digest-only\"\n")
	r := newRepo()
	_, err = Pull(ctx, r, img, PullOptions{Access: Access{Registries: rs}})
	oneLine(t, "digest-only mirror, pull by tag", err, "image "+img.String(), "manifest "+primary.Addr+"/os:v1")
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("tag pull: %v is not ErrNotFound", err)
	}
	if refs, _ := r.ListRefs(); len(refs) != 0 {
		t.Fatalf("a failed pull wrote refs: %v", refs)
	}
	if pr, err := Pull(ctx, r, byDigest, PullOptions{Access: Access{Registries: rs}}); err != nil || pr.BaseCommit != c {
		t.Fatalf("digest pull through a digest-only mirror: %v", err)
	}
	// mirror-by-digest-only on the registry: the same.
	rs = mirrorConf("mirror-by-digest-only = true\n")
	if !rs.Entries[0].MirrorByDigestOnly {
		t.Fatal("mirror-by-digest-only not read")
	}
	if _, err := Pull(ctx, newRepo(), img, PullOptions{Access: Access{Registries: rs}}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("tag pull with mirror-by-digest-only: %v", err)
	}
	if _, err := Pull(ctx, newRepo(), byDigest, PullOptions{Access: Access{Registries: rs}}); err != nil {
		t.Fatalf("digest pull with mirror-by-digest-only: %v", err)
	}

	// Every endpoint failing: one line naming the image and each failure.
	rs = loadConf(t, "[[registry]]\nlocation = \""+primary.Addr+"\"\n[[registry.mirror]]\nlocation = \""+dead+"\"\n")
	_, err = Pull(ctx, newRepo(), img, PullOptions{Access: Access{Registries: rs}})
	oneLine(t, "all endpoints failed", err, "image "+img.String(), "mirror "+dead+"/os:v1: connection refused", primary.Addr+"/os:v1: not found")
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("%v does not wrap the primary's ErrNotFound", err)
	}

	// A push never goes to a mirror: it lands in the primary.
	rs = mirrorConf("")
	v2 := ImageRef{Registry, primary.Addr + "/os:v2"}
	if _, err := Encapsulate(ctx, src, c, v2, EncapsulateOptions{MaxLayers: 4, Access: Access{Registries: rs}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(ctx, v2, Access{}); err != nil {
		t.Fatalf("the push did not reach the primary: %v", err)
	}
	if _, err := Resolve(ctx, ImageRef{Registry, mirror.Addr + "/os:v2"}, Access{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("the push reached the mirror: %v", err)
	}
}

// TestRegistryRemap: a prefix whose location differs is pulled from the
// location; the repository names the image as written.
func TestRegistryRemap(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	src, c := smallCommit(t)
	res, err := Encapsulate(ctx, src, c, ImageRef{Registry, reg.Addr + "/bar/os:v1"}, EncapsulateOptions{MaxLayers: 4})
	if err != nil {
		t.Fatal(err)
	}
	rs := loadConf(t, "[[registry]]\nprefix = \"example.test/foo\"\nlocation = \""+reg.Addr+"/bar\"\n")
	img := ImageRef{Registry, "example.test/foo/os:v1"}
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := Pull(ctx, r, img, PullOptions{Access: Access{Registries: rs}})
	if err != nil {
		t.Fatal(err)
	}
	wantName, _ := ocilayer.EscapeRef(ocilayer.ImageRefPrefix, img.String())
	if pr.BaseCommit != c || pr.ManifestDigest != res.ManifestDigest || pr.ImageRefName != wantName {
		t.Fatalf("pulled %s %s as %s; want %s %s %s", pr.BaseCommit, pr.ManifestDigest, pr.ImageRefName, c, res.ManifestDigest, wantName)
	}
	if log, _ := os.ReadFile(reg.Log); !strings.Contains(string(log), "GET /v2/bar/os/blobs/") {
		t.Fatal("the remapped registry's log shows no blob fetched")
	}
}

// TestMirrorChunkedRanges: an update of chunked zstd layers through a
// mirror sends its Range requests to the mirror (the primary is empty:
// a request there would fail the pull).
func TestMirrorChunkedRanges(t *testing.T) {
	ctx := context.Background()
	mirror := registrytest.Start(t, registrytest.Options{})
	primary := registrytest.Start(t, registrytest.Options{})
	v1, v2 := chunkedImages(t, mirror.Addr)
	rs := loadConf(t, "[[registry]]\nlocation = \""+primary.Addr+"\"\n[[registry.mirror]]\nlocation = \""+mirror.Addr+"\"\n")
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := Pull(ctx, r, ImageRef{Registry, primary.Addr + "/chunked:v1"}, PullOptions{Access: Access{Registries: rs}}); err != nil || res.BaseCommit != v1 {
		t.Fatalf("v1: %v", err)
	}
	res, err := Pull(ctx, r, ImageRef{Registry, primary.Addr + "/chunked:v2"}, PullOptions{Access: Access{Registries: rs}})
	if err != nil || res.BaseCommit != v2 {
		t.Fatalf("v2: %v", err)
	}
	if res.LayersPartial == 0 {
		t.Fatal("no layer was fetched in part")
	}
	if log, _ := os.ReadFile(primary.Log); strings.Contains(string(log), "/v2/chunked/") {
		t.Fatalf("the primary was asked:\n%s", log)
	}
}

// TestMirrorSigstore: "container sign" through registries.conf resolves
// the digest through the mirror and pushes the signature to the registry
// as written; a pull through a mirror reads the signature from the
// mirror (as containers/image), while the policy judges the name as
// written.
func TestMirrorSigstore(t *testing.T) {
	ctx := context.Background()
	mirror := registrytest.Start(t, registrytest.Options{})
	primary := registrytest.Start(t, registrytest.Options{})
	src, c := smallCommit(t)
	if _, err := Encapsulate(ctx, src, c, ImageRef{Registry, mirror.Addr + "/os:v1"}, EncapsulateOptions{MaxLayers: 4}); err != nil {
		t.Fatal(err)
	}
	img := ImageRef{Registry, primary.Addr + "/os:v1"}
	rs := loadConf(t, "[[registry]]\nlocation = \""+primary.Addr+"\"\n[[registry.mirror]]\nlocation = \""+mirror.Addr+"\"\n")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest, err := Sign(ctx, img, key, Access{Registries: rs})
	if err != nil {
		t.Fatal(err)
	}
	sigTag := "/os:" + SigstoreTag(digest)
	run(t, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+primary.Addr+sigTag) // the signature went to the primary
	if out, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+mirror.Addr+sigTag).CombinedOutput(); err == nil {
		t.Fatalf("the signature went to the mirror: %s", out)
	}
	dir := t.TempDir()
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub := filepath.Join(dir, "cosign.pub")
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	pol := writePolicy(t, dir, fmt.Sprintf(`{"default":[{"type":"reject"}],"transports":{"docker":{"%s/os":[{"type":"sigstoreSigned","keyPath":%q}]}}}`, primary.Addr, pub))
	// The primary's location now leads nowhere: the manifest, the layers
	// and the signature can only come from the mirror.
	rs = loadConf(t, "[[registry]]\nprefix = \""+primary.Addr+"\"\nlocation = \""+deadAddr(t)+"\"\n[[registry.mirror]]\nlocation = \""+mirror.Addr+"\"\n")
	pull := func() (*PullResult, error) {
		r, _ := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
		return Pull(ctx, r, img, PullOptions{Policy: pol, Access: Access{Registries: rs}})
	}
	if _, err := pull(); !errors.Is(err, imgpolicy.ErrRejected) {
		t.Fatalf("no signature in the mirror: %v", err)
	}
	run(t, "skopeo", "copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://"+primary.Addr+sigTag, "docker://"+mirror.Addr+sigTag)
	res, err := pull()
	if err != nil || !res.Verified || res.ManifestDigest != digest {
		t.Fatalf("signed image through the mirror: %v", err)
	}
}

// TestInsecureMirror: a mirror serving HTTPS with a certificate no one
// trusts is used only when its own table says insecure.
func TestInsecureMirror(t *testing.T) {
	ctx := context.Background()
	mirror := registrytest.Start(t, registrytest.Options{TLS: true})
	primary := deadAddr(t)
	src, c := smallCommit(t)
	push := loadConf(t, "[[registry]]\nlocation = \""+mirror.Addr+"\"\ninsecure = true\n")
	if _, err := Encapsulate(ctx, src, c, ImageRef{Registry, mirror.Addr + "/os:v1"}, EncapsulateOptions{MaxLayers: 4, Access: Access{Registries: push}}); err != nil {
		t.Fatal(err)
	}
	img := ImageRef{Registry, primary + "/os:v1"}
	for _, insecure := range []bool{false, true} {
		rs := loadConf(t, fmt.Sprintf("[[registry]]\nlocation = %q\n[[registry.mirror]]\nlocation = %q\ninsecure = %v\n", primary, mirror.Addr, insecure))
		r, _ := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
		pr, err := Pull(ctx, r, img, PullOptions{Access: Access{Registries: rs}})
		if !insecure {
			oneLine(t, "secure mirror with an untrusted certificate", err, "image "+img.String(), "mirror "+mirror.Addr+"/os:v1: certificate: x509: ", primary+"/os:v1: connection refused")
			continue
		}
		if err != nil || pr.BaseCommit != c {
			t.Fatalf("insecure mirror: %v", err)
		}
	}
}
