package main

// oci-update: the same realistic Debian update (v1 the composed test OS of
// internal/testos, v2 derived from it with four more packages and /etc
// edits) fetched three ways, all through one nginx on 127.0.0.1 whose
// access log counts requests and bytes: ostree's object pull, ostree's
// static delta, and strata's container image update from Debian's
// docker-registry (nginx proxies /v2/ to it).

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-os/strata/compose"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/internal/testos"
)

// ociV2Packages and ociV2Extra make v2 from the test OS: the packages the
// issue names (apt adds their dependencies) and three /etc edits (one
// changed file, two new ones).
var ociV2Packages = []string{"curl", "less", "vim-tiny", "python3-minimal"}

const ociV2Extra = `
[[files]]
path = "/etc/motd"
content = "built by strata compose, updated to v2\n"
mode = "0644"

[[files]]
path = "/etc/sysctl.d/90-bench.conf"
content = "vm.swappiness = 10\nnet.core.somaxconn = 1024\n"
mode = "0644"

[[files]]
path = "/etc/ssh/sshd_config.d/50-bench.conf"
content = "PasswordAuthentication no\nX11Forwarding no\n"
mode = "0644"
`

// ociV2Spec is the TOML that Derive appends after [base] ref = ...
func ociV2Spec() string {
	q := make([]string, len(ociV2Packages))
	for i, p := range ociV2Packages {
		q[i] = fmt.Sprintf("%q", p)
	}
	return "packages = [" + strings.Join(q, ", ") + "]\n" + ociV2Extra
}

// ociNginxConf is nginxConf plus a proxy of /v2/ to the registry, so that
// the registry's traffic is logged in the same format as the ostree repo's.
func ociNginxConf(conf string, registry string) string {
	proxy := fmt.Sprintf(`		location /v2/ {
			proxy_pass http://%s;
			proxy_http_version 1.1;
			proxy_set_header Host $http_host;
			proxy_set_header Connection "";
			proxy_buffering off;
			client_max_body_size 0;
		}
`, registry)
	i := strings.LastIndex(conf, "root ")
	j := strings.Index(conf[i:], "\n")
	return conf[:i+j+1] + proxy + conf[i+j+1:]
}

// testosBinary picks the strata binary that a finished cached build of the
// test OS was composed with, so that testos.Get reuses it instead of
// composing again (its cache key is the spec, its lock and the digest of
// the strata binary put into the image, and any change to the source tree
// changes that binary). "" when none matches: Get then builds one.
func testosBinary(cacheDir string) (string, error) {
	raw, err := os.ReadFile(testos.SpecPath())
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cacheDir, "testos")
	lockDigest := "none"
	if l, err := compose.ReadLock(compose.LockPath(filepath.Join(dir, "specs", "testos.toml"))); err == nil {
		lockDigest = l.Digest()
	}
	bins, _ := filepath.Glob(filepath.Join(dir, "strata-*"))
	sort.Slice(bins, func(i, j int) bool { return modTime(bins[i]).After(modTime(bins[j])) })
	for _, b := range bins {
		sum, err := fsutil.FileSHA256(b)
		if err != nil {
			continue
		}
		h := sha256.Sum256([]byte(string(raw) + "\x00" + lockDigest + "\x00" + sum))
		key := hex.EncodeToString(h[:])[:16]
		if _, err := os.Stat(filepath.Join(dir, "testos-"+key, "done")); err == nil {
			return b, nil
		}
	}
	return "", nil
}

func modTime(p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// ociResult is one way of fetching the update (or v1).
type ociResult struct {
	Name    string  `json:"name"`
	Traffic traffic `json:"traffic"`
	Note    string  `json:"note,omitempty"`
}

// ociReport is what an oci-update run prints and writes.
type ociReport struct {
	Date      string      `json:"date"`
	Host      string      `json:"host"`
	Strata    string      `json:"strata"`
	V1        string      `json:"v1"`
	V2        string      `json:"v2"`
	Packages  []string    `json:"v2_packages"`
	Diff      string      `json:"diff"` // ostree diff --stats summary
	Layers    string      `json:"layers"`
	Results   []ociResult `json:"results"`
	TargetMet bool        `json:"target_met"`
}

func (r *ociReport) get(name string) traffic {
	for _, x := range r.Results {
		if x.Name == name {
			return x.Traffic
		}
	}
	return traffic{}
}

// ociUpdateMain runs the oci-update comparison.
func ociUpdateMain(ctx context.Context, cfg *config, root, strataBin string) error {
	cacheDir := os.Getenv("STRATA_CACHE")
	if cacheDir == "" {
		cacheDir = filepath.Join(root, ".cache")
	}
	o := testos.Options{CacheDir: cacheDir, StrataBinary: cfg.testosStrata}
	if o.StrataBinary == "" {
		b, err := testosBinary(cacheDir)
		if err != nil {
			return err
		}
		o.StrataBinary = b
	}
	if o.StrataBinary != "" {
		logf("test OS: cached build made with %s", o.StrataBinary)
	} else {
		logf("test OS: no cached build matches this spec; composing it (minutes)")
	}
	v1, err := testos.Get(ctx, o)
	if err != nil {
		return fmt.Errorf("test OS: %w", err)
	}
	logf("v1: %s %s", v1.Ref, v1.Commit)
	v2, err := testos.Derive(ctx, v1, "testos", "2.ocibench", ociV2Spec(), o)
	if err != nil {
		return fmt.Errorf("deriving v2: %w", err)
	}
	logf("v2: %s %s", v2.Ref, v2.Commit)

	work := filepath.Join(cfg.cache, "oci-update")
	if err := removeTree(work); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	defer func() {
		if cfg.keep {
			logf("kept %s", work)
		} else if err := removeTree(work); err != nil {
			logf("cleaning up: %v", err)
		}
	}()
	run := func(name string, args ...string) (string, error) {
		c, cancel := context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
		cmd := exec.CommandContext(c, name, args...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
		return out.String(), nil
	}
	ost := cfg.ostree
	rep := &ociReport{
		Date: time.Now().UTC().Format(time.RFC3339), Host: hostInfo(),
		Strata: gitVersion(ctx, root), V1: v1.Commit, V2: v2.Commit, Packages: ociV2Packages,
	}
	if out, err := run(ost, "--repo="+v1.Repo, "diff", "--stats", v1.Commit, v2.Commit); err == nil {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var tail []string
		for _, l := range lines {
			if strings.Contains(l, ":") && !strings.HasPrefix(l, "M ") && !strings.HasPrefix(l, "A ") && !strings.HasPrefix(l, "D ") {
				tail = append(tail, strings.TrimSpace(l))
			}
		}
		rep.Diff = strings.Join(tail, "; ")
	}

	// The ostree server side: an archive repo with both commits, ref os.
	arch := filepath.Join(work, "archive")
	if _, err := run(ost, "--repo="+arch, "init", "--mode=archive"); err != nil {
		return err
	}
	if _, err := run(ost, "--repo="+arch, "pull-local", v1.Repo, v1.Commit, v2.Commit); err != nil {
		return err
	}
	setRef := func(commit string) error {
		_, _ = run(ost, "--repo="+arch, "refs", "--delete", "os") // none yet the first time
		if _, err := run(ost, "--repo="+arch, "refs", "--create=os", commit); err != nil {
			return err
		}
		_, err := run(ost, "--repo="+arch, "summary", "-u")
		return err
	}
	if err := setRef(v1.Commit); err != nil {
		return err
	}

	// The registry, pushed to directly; pulls go through nginx.
	reg, stopReg, err := startRegistry(ctx, filepath.Join(work, "registry"))
	if err != nil {
		return err
	}
	defer stopReg()
	srv, err := startNginxWith(ctx, filepath.Join(work, "nginx"), func(c string) string { return ociNginxConf(c, reg) })
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := srv.serve(arch); err != nil {
		return err
	}
	host := strings.TrimSuffix(strings.TrimPrefix(srv.url, "http://"), "/repo")
	logf("nginx %s: /repo the archive repo, /v2/ the registry at %s", host, reg)

	measure := func(name, note string, f func() error) (traffic, error) {
		off, err := srv.mark()
		if err != nil {
			return traffic{}, err
		}
		if err := f(); err != nil {
			return traffic{}, fmt.Errorf("%s: %w", name, err)
		}
		t, err := srv.trafficSince(off)
		if err != nil {
			return t, err
		}
		rep.Results = append(rep.Results, ociResult{Name: name, Traffic: t, Note: note})
		logf("  %-28s %6d requests %12d bytes", name, t.Requests, t.Bytes)
		return t, nil
	}

	// ostree clients: one for the object pull, one for the static delta,
	// both bare (as a sysroot's repo), both with v1 pulled first.
	clients := map[string]string{}
	for _, n := range []string{"objects", "delta"} {
		c := filepath.Join(work, "ostree-"+n)
		clients[n] = c
		if _, err := run(ost, "--repo="+c, "init", "--mode=bare"); err != nil {
			return err
		}
		if _, err := run(ost, "--repo="+c, "remote", "add", "--no-gpg-verify", "origin", srv.url); err != nil {
			return err
		}
	}
	if _, err := measure("ostree pull v1", "", func() error {
		_, err := run(ost, "--repo="+clients["objects"], "pull", "--disable-verify-bindings", "origin", "os")
		return err
	}); err != nil {
		return err
	}
	if _, err := run(ost, "--repo="+clients["delta"], "pull", "--disable-verify-bindings", "origin", "os"); err != nil {
		return err
	}
	if err := setRef(v2.Commit); err != nil {
		return err
	}
	if _, err := measure("ostree pull v1->v2", "objects, no deltas on the server", func() error {
		_, err := run(ost, "--repo="+clients["objects"], "pull", "--disable-verify-bindings", "origin", "os")
		return err
	}); err != nil {
		return err
	}
	if _, err := run(ost, "--repo="+arch, "static-delta", "generate", "--from="+v1.Commit, "--to="+v2.Commit); err != nil {
		return err
	}
	if _, err := run(ost, "--repo="+arch, "summary", "-u"); err != nil {
		return err
	}
	if _, err := measure("ostree static delta v1->v2", "ostree static-delta generate --from=v1 --to=v2", func() error {
		_, err := run(ost, "--repo="+clients["delta"], "pull", "--disable-verify-bindings", "--require-static-deltas", "origin", "os")
		return err
	}); err != nil {
		return err
	}
	for n, c := range clients {
		out, err := run(ost, "--repo="+c, "rev-parse", "origin:os")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != v2.Commit {
			return fmt.Errorf("ostree %s client has %s, want v2 %s", n, strings.TrimSpace(out), v2.Commit)
		}
	}

	// strata: encapsulate (default layering) and push v1, pull it; then v2.
	img := "registry:" + host + "/os:latest"
	push := "registry:" + reg + "/os:latest"
	dst := filepath.Join(work, "strata")
	if _, err := run(strataBin, "--repo="+dst, "init", "--mode=bare"); err != nil {
		return err
	}
	if _, err := run(strataBin, "--repo="+arch, "container", "encapsulate", v1.Commit, push); err != nil {
		return err
	}
	if _, err := measure("image pull v1", "", func() error {
		_, err := run(strataBin, "--repo="+dst, "container", "image", "pull", img)
		return err
	}); err != nil {
		return err
	}
	m1, err := registryManifest(ctx, reg)
	if err != nil {
		return err
	}
	if _, err := run(strataBin, "--repo="+arch, "container", "encapsulate", v2.Commit, push); err != nil {
		return err
	}
	m2, err := registryManifest(ctx, reg)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, l := range m1 {
		have[l.Digest] = true
	}
	var changed []string
	var changedBytes, total int64
	few := 0
	for i, l := range m2 {
		total += l.Size
		if have[l.Digest] {
			continue
		}
		changedBytes += l.Size
		// How many files the layer gained over v1's layer at the same
		// index (read from the registry directly: not counted).
		gained := "?"
		if i < len(m1) {
			n, err := layerGain(ctx, reg, m1[i].Digest, l.Digest)
			if err != nil {
				return err
			}
			gained = fmt.Sprint(n)
			if n <= 3 {
				few++
			}
		}
		changed = append(changed, fmt.Sprintf("%d (%s bytes, +%s files)", i, groupDigits(l.Size), gained))
	}
	rep.Layers = fmt.Sprintf("v2 has %d layers (%s bytes); %d not in v1, %s bytes, %d of them gaining at most 3 files: layers %s", len(m2), groupDigits(total), len(changed), groupDigits(changedBytes), few, strings.Join(changed, ", "))
	logf("  %s", rep.Layers)
	if _, err := measure("image update v1->v2", fmt.Sprintf("%d of %d layers new", len(changed), len(m2)), func() error {
		_, err := run(strataBin, "--repo="+dst, "container", "image", "pull", img)
		return err
	}); err != nil {
		return err
	}

	// The same update with gzip layers (one stream a layer, fetched
	// whole), as strata wrote them before chunked layers.
	gzImg := "registry:" + host + "/osgz:latest"
	gzPush := "registry:" + reg + "/osgz:latest"
	gzDst := filepath.Join(work, "strata-gzip")
	if _, err := run(strataBin, "--repo="+gzDst, "init", "--mode=bare"); err != nil {
		return err
	}
	for i, c := range []string{v1.Commit, v2.Commit} {
		if _, err := run(strataBin, "--repo="+arch, "container", "encapsulate", "--compression=gzip", c, gzPush); err != nil {
			return err
		}
		if i == 0 {
			if _, err := run(strataBin, "--repo="+gzDst, "container", "image", "pull", gzImg); err != nil {
				return err
			}
			continue
		}
		if _, err := measure("image update v1->v2 (gzip)", "gzip layers, each changed layer fetched whole", func() error {
			_, err := run(strataBin, "--repo="+gzDst, "container", "image", "pull", gzImg)
			return err
		}); err != nil {
			return err
		}
	}

	obj, delta, im := rep.get("ostree pull v1->v2"), rep.get("ostree static delta v1->v2"), rep.get("image update v1->v2")
	rep.TargetMet = float64(im.Bytes) <= 1.5*float64(obj.Bytes) && float64(im.Requests) <= float64(obj.Requests)/10
	md := ociMarkdown(rep, obj, delta, im)
	fmt.Print(md)
	if err := os.MkdirAll(cfg.results, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.results, "oci-update.md"), []byte(md), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cfg.results, "oci-update.json"), append(js, '\n'), 0o644)
}

func ratioOf(a, b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func ociMarkdown(rep *ociReport, obj, delta, im traffic) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# oci-update %s\n\n%s; strata %s\n\nv1 %s (the test OS), v2 %s (+ %s, 3 /etc edits)\n",
		rep.Date, rep.Host, rep.Strata, rep.V1, rep.V2, strings.Join(rep.Packages, " "))
	if rep.Diff != "" {
		fmt.Fprintf(&b, "ostree diff --stats v1 v2: %s\n", rep.Diff)
	}
	fmt.Fprintf(&b, "%s\n\n", rep.Layers)
	fmt.Fprintf(&b, "| fetch | requests | bytes sent | body bytes | 4xx/5xx | note |\n|---|---:|---:|---:|---:|---|\n")
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %s |\n", r.Name, groupDigits(r.Traffic.Requests), groupDigits(r.Traffic.Bytes), groupDigits(r.Traffic.Body), r.Traffic.NotOK, r.Note)
	}
	fmt.Fprintf(&b, "\n| image update / | bytes | requests |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| ostree pull | %s | %s |\n", ratioOf(im.Bytes, obj.Bytes), ratioOf(im.Requests, obj.Requests))
	fmt.Fprintf(&b, "| static delta | %s | %s |\n", ratioOf(im.Bytes, delta.Bytes), ratioOf(im.Requests, delta.Requests))
	met := "met"
	if !rep.TargetMet {
		met = "NOT met"
	}
	fmt.Fprintf(&b, "\nTarget (image update <= 1.5x the bytes of the ostree pull in <= 1/10 of its requests): %s (bytes %s x, requests %s x)\n",
		met, ratioOf(im.Bytes, obj.Bytes), ratioOf(im.Requests, obj.Requests))
	return b.String()
}

type ociLayer struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// registryManifest reads os:latest's layers straight from the registry.
func registryManifest(ctx context.Context, reg string) ([]ociLayer, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+reg+"/v2/os/manifests/latest", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("registry manifest: %s", resp.Status)
	}
	var m struct {
		Layers []ociLayer `json:"layers"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("registry manifest: %w", err)
	}
	return m.Layers, nil
}

// layerGain counts the content objects (".file" entries under objects/)
// of layer b that layer a lacks.
func layerGain(ctx context.Context, reg, a, b string) (int, error) {
	oa, err := layerObjects(ctx, reg, a)
	if err != nil {
		return 0, err
	}
	ob, err := layerObjects(ctx, reg, b)
	if err != nil {
		return 0, err
	}
	n := 0
	for o := range ob {
		if !oa[o] {
			n++
		}
	}
	return n, nil
}

func layerObjects(ctx context.Context, reg, digest string) (map[string]bool, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+reg+"/v2/os/blobs/"+digest, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("layer %s: %s", digest, resp.Status)
	}
	br := bufio.NewReader(resp.Body)
	var zr io.Reader
	if magic, _ := br.Peek(4); bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		zd, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", digest, err)
		}
		defer zd.Close()
		zr = zd
	} else if zr, err = gzip.NewReader(br); err != nil {
		return nil, fmt.Errorf("layer %s: %w", digest, err)
	}
	tr := tar.NewReader(zr)
	objs := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", digest, err)
		}
		if i := strings.Index(h.Name, "/objects/"); i >= 0 && strings.HasSuffix(h.Name, ".file") {
			objs[h.Name[i:]] = true
		}
	}
}

// startRegistry runs Debian's docker-registry on a free 127.0.0.1 port with
// filesystem storage under dir; it returns HOST:PORT and a stop function.
func startRegistry(ctx context.Context, dir string) (string, func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	conf := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		return "", nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command("docker-registry", "serve", conf)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return "", nil, fmt.Errorf("starting docker-registry (apt-get install docker-registry): %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logFile.Close() }
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr, stop, nil
			}
		}
		if i > 100 || ctx.Err() != nil {
			stop()
			return "", nil, errors.Join(errors.New("docker-registry did not start: "+tail(filepath.Join(dir, "registry.log"), 3)), err, ctx.Err())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
