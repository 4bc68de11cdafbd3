package remote

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/repo"
)

func newRepo(t *testing.T) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeArchive, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func names(t *testing.T, c *Config) string {
	t.Helper()
	all, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, r := range all {
		n = append(n, r.Name)
	}
	return strings.Join(n, ",")
}

func TestAddListDelete(t *testing.T) {
	r := newRepo(t)
	c := New(r, "")
	if _, err := c.Add("zed", "http://example.com/repo", AddOptions{Options: []Option{{"gpg-verify", "false"}, {"branches", "a;b;"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add("alpha", "file:///srv/repo", AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := names(t, c); got != "alpha,zed" {
		t.Fatalf("list %q", got)
	}
	if _, err := c.Add("alpha", "file:///other", AddOptions{}); !errors.Is(err, repo.ErrExists) {
		t.Fatalf("second add: %v", err)
	}
	if added, err := c.Add("alpha", "file:///other", AddOptions{IfNotExists: true}); err != nil || added {
		t.Fatalf("add --if-not-exists: %v %v", added, err)
	}
	z, err := c.Get("zed")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := z.GPGVerify(); err != nil || v {
		t.Errorf("gpg-verify %v %v", v, err)
	}
	if got := strings.Join(z.GetList("branches"), ","); got != "a,b" {
		t.Errorf("branches %q", got)
	}
	a, _ := c.Get("alpha")
	if v, _ := a.GPGVerify(); !v {
		t.Error("gpg-verify defaults to true")
	}
	// Reopening reads what was written.
	r2, err := repo.Open(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, New(r2, "")); got != "alpha,zed" {
		t.Fatalf("after reopen: %q", got)
	}
	if err := c.Delete("zed", false); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("zed", false); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	if err := c.Delete("zed", true); err != nil {
		t.Fatalf("delete --if-exists: %v", err)
	}
	if got := names(t, c); got != "alpha" {
		t.Fatalf("list %q", got)
	}
}

func TestInvalid(t *testing.T) {
	c := New(newRepo(t), "")
	for _, n := range []string{"", "a b", ".x", "a/b", `a"`} {
		if _, err := c.Add(n, "http://x", AddOptions{}); !errors.Is(err, repo.ErrInvalid) {
			t.Errorf("name %q: %v", n, err)
		}
	}
	if _, err := c.Add("x", "", AddOptions{}); !errors.Is(err, repo.ErrInvalid) {
		t.Errorf("empty url: %v", err)
	}
	if _, err := c.Add("x", "http://x", AddOptions{Options: []Option{{"a=b", "c"}}}); !errors.Is(err, repo.ErrInvalid) {
		t.Errorf("bad key: %v", err)
	}
}

func TestRemotesDir(t *testing.T) {
	r := newRepo(t)
	dir := filepath.Join(t.TempDir(), "remotes.d")
	c := New(r, dir)
	if _, err := c.Add("sys", "https://updates.example.com/repo", AddOptions{InRemotesDir: true}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "sys.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "[remote \"sys\"]\nurl=https://updates.example.com/repo\n"; string(data) != want {
		t.Errorf("sys.conf = %q", data)
	}
	if _, err := c.Add("local", "file:///x", AddOptions{}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ignored.txt"), []byte("[remote \"nope\"]\nurl=x\n"), 0o644)
	if got := names(t, c); got != "local,sys" {
		t.Fatalf("list %q", got)
	}
	// Without the directory, only the config is read.
	if got := names(t, New(r, "")); got != "local" {
		t.Fatalf("list without remotes.d %q", got)
	}
	// The same remote in two places is an error.
	os.WriteFile(filepath.Join(dir, "dup.conf"), []byte("[remote \"local\"]\nurl=file:///y\n"), 0o644)
	if _, err := c.List(); err == nil || !strings.Contains(err.Error(), "multiple") {
		t.Fatalf("duplicate: %v", err)
	}
	os.Remove(filepath.Join(dir, "dup.conf"))
	if err := c.Delete("sys", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sys.conf")); !os.IsNotExist(err) {
		t.Fatalf("sys.conf still there: %v", err)
	}
}

// TestOstreeInterop: ostree reads remotes strata wrote, and the reverse.
func TestOstreeInterop(t *testing.T) {
	r := newRepo(t)
	c := New(r, "")
	if _, err := c.Add("fromstrata", "https://a.example/repo", AddOptions{Options: []Option{{"gpg-verify", "false"}, {"branches", "x;y;"}}}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ostree", append([]string{"--repo=" + r.Path()}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ostree %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("remote", "add", "--set=gpg-verify-summary=true", "fromostree", "http://b.example/repo", "main")
	if got := run("remote", "list", "-u"); got != "fromostree  http://b.example/repo\nfromstrata  https://a.example/repo\n" {
		t.Errorf("ostree remote list -u:\n%s", got)
	}
	if got := run("config", "get", `remote "fromstrata".branches`); got != "x;y;\n" {
		t.Errorf("ostree config get branches: %q", got)
	}
	r2, err := repo.Open(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	c2 := New(r2, "")
	o, err := c2.Get("fromostree")
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := o.URL(); u != "http://b.example/repo" {
		t.Errorf("url %q", u)
	}
	if v, _ := o.GPGVerifySummary(); !v {
		t.Error("gpg-verify-summary not read")
	}
	if err := c2.Delete("fromostree", false); err != nil {
		t.Fatal(err)
	}
	if got := run("remote", "list"); got != "fromstrata\n" {
		t.Errorf("after strata delete, ostree lists %q", got)
	}
}
