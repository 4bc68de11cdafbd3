package pull

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testtree"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/remote"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sign"
)

var ctx = context.Background()

// fixture is an archive repository with the testtree committed on main.
type fixture struct {
	src    *repo.Repo
	tree   string
	commit objects.Checksum
	srv    *server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	testtree.Build(t, tree)
	src := initRepo(t, repo.ModeArchive)
	c := makeCommit(t, src, "main", tree, commitOpts{})
	updateSummary(t, src, nil)
	return &fixture{src: src, tree: tree, commit: c, srv: serve(t, src.Path())}
}

func TestPullHTTPAllModes(t *testing.T) {
	f := newFixture(t)
	want := objectSet(t, f.src)
	for _, mode := range []repo.Mode{repo.ModeArchive, repo.ModeBare, repo.ModeBareUser} {
		t.Run(mode.String(), func(t *testing.T) {
			dst := initRepo(t, mode)
			f.srv.take()
			var plans []Plan
			res, err := Pull(ctx, dst, httpSource(t, f.srv, dst), Options{
				Remote: "origin", Refs: []string{"main"},
				OnPlan: func(p Plan) error { plans = append(plans, p); return nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := dst.ReadRef("remotes/origin/main")
			if err != nil || got != f.commit {
				t.Fatalf("ref: %v %v, want %s", got, err, f.commit)
			}
			if !reflect.DeepEqual(objectSet(t, dst), want) {
				t.Errorf("objects differ:\n got %v\nwant %v", objectSet(t, dst), want)
			}
			fsckOK(t, dst)
			if len(plans) != 1 || plans[0].Commits != 1 || plans[0].Content == 0 || plans[0].ContentBytes != -1 {
				t.Errorf("plan %+v", plans)
			}
			if int(res.ContentFetched) != plans[0].Content || len(res.Refs) != 1 {
				t.Errorf("result %+v", res)
			}
			if mode == repo.ModeArchive {
				// Archive to archive: the .filez are stored as they came.
				for _, o := range want {
					if !strings.HasSuffix(o, ".file") {
						continue
					}
					c, _ := objects.ParseChecksum(strings.TrimSuffix(o, ".file"))
					a, _ := os.ReadFile(f.src.ObjectPath(objects.KindFile, c))
					b, _ := os.ReadFile(dst.ObjectPath(objects.KindFile, c))
					if string(a) != string(b) {
						t.Fatalf("%s differs from the source's", o)
					}
				}
			}
			// A second pull changes nothing and fetches no object.
			f.srv.take()
			res, err = Pull(ctx, dst, httpSource(t, f.srv, dst), Options{Remote: "origin", Refs: []string{"main"}})
			if err != nil {
				t.Fatal(err)
			}
			reqs := f.srv.take()
			if len(res.Refs) != 0 || res.ContentFetched != 0 || countSuffix(reqs, ".filez") != 0 || countSuffix(reqs, ".dirtree") != 0 {
				t.Errorf("second pull: %+v, requests %v", res, reqs)
			}
		})
	}
}

func TestPullUpdateFetchesOnlyChanges(t *testing.T) {
	src := initRepo(t, repo.ModeArchive)
	files := map[string]string{"usr/bin/a": "a", "usr/bin/b": "b", "usr/lib/c": "c", "etc/d": "d", "e": "e"}
	c1 := makeCommit(t, src, "main", writeTree(t, files), commitOpts{})
	updateSummary(t, src, nil)
	srv := serve(t, src.Path())
	dst := initRepo(t, repo.ModeBareUser)
	if _, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}}); err != nil {
		t.Fatal(err)
	}
	files["usr/bin/a"] = "a2"
	files["usr/new"] = "new"
	c2 := makeCommit(t, src, "main", writeTree(t, files), commitOpts{ts: time.Unix(1700000100, 0)})
	updateSummary(t, src, nil)
	srv.take()
	res, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}, TimestampCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.take()
	// Two new files; new dirtrees for /, /usr and /usr/bin; the commit.
	if n := countSuffix(reqs, ".filez"); n != 2 {
		t.Errorf("fetched %d files, want 2: %v", n, reqs)
	}
	if n := countSuffix(reqs, ".dirtree"); n != 3 {
		t.Errorf("fetched %d dirtrees, want 3: %v", n, reqs)
	}
	if n := countSuffix(reqs, ".commit"); n != 1 {
		t.Errorf("fetched %d commits, want 1: %v", n, reqs)
	}
	if len(res.Refs) != 1 || res.Refs[0].Old != c1 || res.Refs[0].New != c2 || res.Refs[0].Name != "o:main" {
		t.Errorf("refs %+v", res.Refs)
	}
	fsckOK(t, dst)
}

func TestPullLocal(t *testing.T) {
	f := newFixture(t)
	// archive -> bare-user -> archive -> bare: each step imports from a
	// local repository of another mode.
	prev := f.src
	for _, mode := range []repo.Mode{repo.ModeBareUser, repo.ModeArchive, repo.ModeBare} {
		dst := initRepo(t, mode)
		res, err := Pull(ctx, dst, NewLocalSource(prev), Options{Refs: []string{"main"}})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if c, err := dst.ReadRef("heads/main"); err != nil || c != f.commit {
			t.Fatalf("%s: ref %v %v", mode, c, err)
		}
		if !res.Local {
			t.Error("not local")
		}
		fsckOK(t, dst)
		prev = dst
	}
	if !reflect.DeepEqual(objectSet(t, prev), objectSet(t, f.src)) {
		t.Error("objects differ after three local pulls")
	}
}

func TestPullMirrorAndDepth(t *testing.T) {
	src := initRepo(t, repo.ModeArchive)
	var commits []objects.Checksum
	for i := range 4 {
		commits = append(commits, makeCommit(t, src, "main", writeTree(t, map[string]string{"f": strings.Repeat("x", i)}), commitOpts{ts: time.Unix(int64(1700000000+i), 0)}))
	}
	makeCommit(t, src, "other", writeTree(t, map[string]string{"g": "g"}), commitOpts{})
	updateSummary(t, src, nil)
	srv := serve(t, src.Path())
	dst := initRepo(t, repo.ModeArchive)
	if _, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Mirror: true, Depth: 2}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"heads/main", "heads/other"} {
		want, _ := src.ReadRef(ref)
		if got, err := dst.ReadRef(ref); err != nil || got != want {
			t.Errorf("%s: %v %v", ref, got, err)
		}
	}
	for i, c := range commits {
		ok, _ := dst.HasObject(objects.KindCommit, c)
		if ok != (i >= 1) {
			t.Errorf("commit %d stored: %v", i, ok)
		}
	}
	a, _ := os.ReadFile(filepath.Join(src.Path(), "summary"))
	b, _ := os.ReadFile(filepath.Join(dst.Path(), "summary"))
	if string(a) != string(b) {
		t.Error("mirror did not copy the summary")
	}
	fsckOK(t, dst)
	// Depth -1 reaches the first commit.
	if _, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Mirror: true, Refs: []string{"main"}, Depth: -1}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := dst.HasObject(objects.KindCommit, commits[0]); !ok {
		t.Error("depth -1 did not reach the first commit")
	}
	fsckOK(t, dst)
}

func TestPullCommitOnlyThenFull(t *testing.T) {
	f := newFixture(t)
	dst := initRepo(t, repo.ModeBareUser)
	if _, err := Pull(ctx, dst, httpSource(t, f.srv, dst), Options{Remote: "o", Refs: []string{"main"}, CommitOnly: true}); err != nil {
		t.Fatal(err)
	}
	if p, _ := dst.IsCommitPartial(f.commit); !p {
		t.Fatal("commit-only pull did not mark the commit partial")
	}
	if got := objectSet(t, dst); len(got) != 1 {
		t.Fatalf("commit-only pull stored %v", got)
	}
	fsckOK(t, dst)
	if _, err := Pull(ctx, dst, httpSource(t, f.srv, dst), Options{Remote: "o", Refs: []string{"main"}}); err != nil {
		t.Fatal(err)
	}
	if p, _ := dst.IsCommitPartial(f.commit); p {
		t.Error("full pull left the partial marker")
	}
	if !reflect.DeepEqual(objectSet(t, dst), objectSet(t, f.src)) {
		t.Error("objects differ")
	}
	fsckOK(t, dst)
}

func TestPullSubpath(t *testing.T) {
	src := initRepo(t, repo.ModeArchive)
	c := makeCommit(t, src, "main", writeTree(t, map[string]string{"usr/bin/a": "a", "usr/lib/b": "b", "etc/c": "c", "top": "t"}), commitOpts{})
	updateSummary(t, src, nil)
	srv := serve(t, src.Path())
	dst := initRepo(t, repo.ModeArchive)
	res, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}, Subpaths: []string{"usr/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.Content != 1 {
		t.Errorf("subpath pull fetched %d files, want 1", res.Plan.Content)
	}
	if p, _ := dst.IsCommitPartial(c); !p {
		t.Error("subpath pull did not mark the commit partial")
	}
	fsckOK(t, dst)
}

// TestPullPlanSizes: with ostree.sizes the plan knows the bytes, and a
// disk too small is refused before anything is written.
func TestPullPlanSizes(t *testing.T) {
	src := initRepo(t, repo.ModeArchive)
	makeCommit(t, src, "main", writeTree(t, map[string]string{"a": "a", "b/c": "c", "b/d": "d"}), commitOpts{sizes: true})
	updateSummary(t, src, nil)
	srv := serve(t, src.Path())
	dst := initRepo(t, repo.ModeBareUser)
	var plan Plan
	_, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}, OnPlan: func(p Plan) error { plan = p; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Content != 3 || plan.ContentBytes != 3000 || plan.DiskBytes != 6000+plan.MetadataBytes {
		t.Errorf("plan %+v", plan)
	}
	// A repo that must keep 99% free refuses.
	dst2 := initRepo(t, repo.ModeBareUser)
	kf := dst2.Config()
	kf.Set("core", "min-free-space-percent", "99")
	if err := dst2.WriteConfig(kf); err != nil {
		t.Fatal(err)
	}
	dst2, _ = repo.Open(dst2.Path())
	_, err = Pull(ctx, dst2, httpSource(t, srv, dst2), Options{Remote: "o", Refs: []string{"main"}})
	if err == nil || !strings.Contains(err.Error(), "free space") {
		t.Fatalf("pull into a full disk: %v", err)
	}
	if got := objectSet(t, dst2); len(got) != 0 {
		t.Errorf("refused pull wrote %v", got)
	}
}

// TestPullRefused: each case ends in a clear error, with no object of the
// commit written and no ref moved.
func TestPullRefused(t *testing.T) {
	pub, priv := newKey(t)
	_, otherPriv := newKey(t)
	files := map[string]string{"a": "a", "d/b": "b"}
	cases := []struct {
		name    string
		setup   func(t *testing.T, src *repo.Repo) // makes main
		opts    Options
		wantErr error
		before  func(t *testing.T, src, dst *repo.Repo)
	}{
		{
			name: "unsigned commit",
			setup: func(t *testing.T, src *repo.Repo) {
				makeCommit(t, src, "main", writeTree(t, files), commitOpts{})
				updateSummary(t, src, priv) // a signed summary does not make up for it
			},
			opts:    Options{Policy: Policy{Sign: ed(pub), SummarySign: ed(pub)}},
			wantErr: sign.ErrNoSignature,
		},
		{
			name: "wrong key",
			setup: func(t *testing.T, src *repo.Repo) {
				c := makeCommit(t, src, "main", writeTree(t, files), commitOpts{})
				signCommit(t, src, c, otherPriv)
				updateSummary(t, src, nil)
			},
			opts:    Options{Policy: Policy{Sign: ed(pub)}},
			wantErr: sign.ErrBadSignature,
		},
		{
			name: "summary signed with the wrong key",
			setup: func(t *testing.T, src *repo.Repo) {
				c := makeCommit(t, src, "main", writeTree(t, files), commitOpts{})
				signCommit(t, src, c, priv)
				updateSummary(t, src, otherPriv)
			},
			opts:    Options{Policy: Policy{Sign: ed(pub), SummarySign: ed(pub)}},
			wantErr: sign.ErrBadSignature,
		},
		{
			name: "unsigned summary",
			setup: func(t *testing.T, src *repo.Repo) {
				c := makeCommit(t, src, "main", writeTree(t, files), commitOpts{})
				signCommit(t, src, c, priv)
				updateSummary(t, src, nil)
			},
			opts:    Options{Policy: Policy{SummarySign: ed(pub)}},
			wantErr: sign.ErrNoSignature,
		},
		{
			name: "bound to another ref",
			setup: func(t *testing.T, src *repo.Repo) {
				c := makeCommit(t, src, "other", writeTree(t, files), commitOpts{})
				if err := src.SetRef("heads/main", &c); err != nil {
					t.Fatal(err)
				}
				updateSummary(t, src, nil)
			},
			wantErr: ErrBinding,
		},
		{
			name: "no binding with a collection id",
			setup: func(t *testing.T, src *repo.Repo) {
				makeCommit(t, src, "main", writeTree(t, files), commitOpts{noBind: true})
				updateSummary(t, src, nil)
			},
			opts:    Options{Policy: Policy{CollectionID: "org.example.Os"}},
			wantErr: ErrBinding,
		},
		{
			name: "tampered object",
			setup: func(t *testing.T, src *repo.Repo) {
				makeCommit(t, src, "main", writeTree(t, map[string]string{"a": strings.Repeat("content ", 100)}), commitOpts{})
				updateSummary(t, src, nil)
				var victim string
				filepath.WalkDir(filepath.Join(src.Path(), "objects"), func(p string, d os.DirEntry, err error) error {
					if strings.HasSuffix(p, ".filez") {
						victim = p
					}
					return nil
				})
				data, _ := os.ReadFile(victim)
				data[len(data)-5] ^= 0xff
				os.WriteFile(victim, data, 0o644)
			},
			wantErr: repo.ErrCorrupt,
		},
		{
			name: "tampered commit",
			setup: func(t *testing.T, src *repo.Repo) {
				c := makeCommit(t, src, "main", writeTree(t, files), commitOpts{})
				updateSummary(t, src, nil)
				p := src.ObjectPath(objects.KindCommit, c)
				data, _ := os.ReadFile(p)
				data[len(data)-70] ^= 1
				os.WriteFile(p, data, 0o644)
			},
			wantErr: repo.ErrCorrupt,
		},
		{
			name: "downgrade",
			setup: func(t *testing.T, src *repo.Repo) {
				makeCommit(t, src, "main", writeTree(t, files), commitOpts{ts: time.Unix(1600000000, 0)})
				updateSummary(t, src, nil)
			},
			before: func(t *testing.T, src, dst *repo.Repo) {
				// dst tracks a newer commit of its own.
				makeCommit(t, dst, "o:main", writeTree(t, map[string]string{"new": "er"}), commitOpts{ts: time.Unix(1700000000, 0), noBind: true})
			},
			opts:    Options{TimestampCheck: true},
			wantErr: ErrDowngrade,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := initRepo(t, repo.ModeArchive)
			tc.setup(t, src)
			srv := serve(t, src.Path())
			dst := initRepo(t, repo.ModeBareUser)
			if tc.before != nil {
				tc.before(t, src, dst)
			}
			before := objectSet(t, dst)
			refBefore, _ := dst.ReadRef("remotes/o/main")
			o := tc.opts
			o.Remote, o.Refs = "o", []string{"main"}
			_, err := Pull(ctx, dst, httpSource(t, srv, dst), o)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			t.Logf("refused: %v", err)
			if ref, _ := dst.ReadRef("remotes/o/main"); ref != refBefore {
				t.Errorf("ref moved to %s", ref)
			}
			after := objectSet(t, dst)
			for _, o := range after {
				if strings.HasSuffix(o, ".commit") && !contains(before, o) {
					t.Errorf("commit %s written", o)
				}
			}
			if tc.name != "tampered object" && !reflect.DeepEqual(after, before) {
				t.Errorf("objects written: %v", after)
			}
			fsckOK(t, dst)
		})
	}
	// The happy path of the same policy passes.
	src := initRepo(t, repo.ModeArchive)
	c := makeCommit(t, src, "main", writeTree(t, files), commitOpts{})
	signCommit(t, src, c, priv)
	updateSummary(t, src, priv)
	srv := serve(t, src.Path())
	dst := initRepo(t, repo.ModeBareUser)
	res, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}, Policy: Policy{Sign: ed(pub), SummarySign: ed(pub)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signatures) != 1 || !strings.Contains(res.Signatures[0], "verified") {
		t.Errorf("signatures %v", res.Signatures)
	}
	if md, _ := dst.ReadCommitMeta(c); md == nil {
		t.Error("detached metadata not stored")
	}
}

func ed(pub []byte) []sign.Verifier {
	return []sign.Verifier{&sign.Ed25519Verifier{Keys: []ed25519.PublicKey{pub}}}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPuller: the sysroot.Puller-shaped entry point pulls a configured
// remote's ref and refuses a commit older than timestampCheckFrom.
func TestPuller(t *testing.T) {
	src := initRepo(t, repo.ModeArchive)
	old := makeCommit(t, src, "main", writeTree(t, map[string]string{"a": "1"}), commitOpts{ts: time.Unix(1600000000, 0)})
	updateSummary(t, src, nil)
	srv := serve(t, src.Path())
	dst := initRepo(t, repo.ModeBareUser)
	cfg := remote.New(dst, "")
	if _, err := cfg.Add("o", srv.URL, remote.AddOptions{Options: []remote.Option{{Key: "gpg-verify", Value: "false"}}}); err != nil {
		t.Fatal(err)
	}
	p := &Puller{Config: func(r *repo.Repo) (*remote.Config, error) { return remote.New(r, ""), nil }}
	if err := p.Pull(ctx, dst, "o", "main", objects.Checksum{}); err != nil {
		t.Fatal(err)
	}
	// dst now has a newer local commit; pulling the old one against it is
	// a downgrade.
	newer := makeCommit(t, dst, "local", writeTree(t, map[string]string{"b": "2"}), commitOpts{ts: time.Unix(1700000000, 0)})
	makeCommit(t, src, "main", writeTree(t, map[string]string{"a": "3"}), commitOpts{ts: time.Unix(1650000000, 0)})
	updateSummary(t, src, nil)
	err := p.Pull(ctx, dst, "o", "main", newer)
	if !errors.Is(err, ErrDowngrade) {
		t.Fatalf("got %v, want ErrDowngrade", err)
	}
	if c, _ := dst.ReadRef("remotes/o/main"); c != old {
		t.Error("refused pull moved the ref")
	}
	if err := p.Pull(ctx, dst, "o", "main", old); err != nil {
		t.Fatalf("upgrade from the old commit: %v", err)
	}
}

// TestPullWithoutSummary: refs are read from refs/heads when the remote
// has no summary; mirroring every ref then needs one; summary signatures,
// when required, refuse the pull.
func TestPullWithoutSummary(t *testing.T) {
	src := initRepo(t, repo.ModeArchive)
	c := makeCommit(t, src, "main", writeTree(t, map[string]string{"a": "a"}), commitOpts{})
	srv := serve(t, src.Path())
	dst := initRepo(t, repo.ModeBareUser)
	if _, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := dst.ReadRef("remotes/o/main"); got != c {
		t.Errorf("ref %s, want %s", got, c)
	}
	if countSuffix(srv.take(), "/refs/heads/main") != 1 {
		t.Error("refs/heads/main not read")
	}
	if _, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Mirror: true}); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("mirror without a summary: %v", err)
	}
	pub, _ := newKey(t)
	if _, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}, Policy: Policy{SummarySign: ed(pub)}}); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("required summary signatures without a summary: %v", err)
	}
	if _, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"nosuch"}}); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("missing ref: %v", err)
	}
}

// A repository that is not archive cannot be pulled over HTTP.
func TestPullRefusesBareRemote(t *testing.T) {
	src := initRepo(t, repo.ModeBareUser)
	makeCommit(t, src, "main", writeTree(t, map[string]string{"a": "a"}), commitOpts{})
	srv := serve(t, src.Path())
	dst := initRepo(t, repo.ModeBareUser)
	_, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}})
	if !errors.Is(err, repo.ErrInvalid) || !strings.Contains(err.Error(), "bare-user") {
		t.Fatalf("got %v", err)
	}
	// The same repository as a local source is fine.
	if _, err := Pull(ctx, dst, NewLocalSource(src), Options{Refs: []string{"main"}}); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyFor reads OSTree's remote keys into a Policy.
func TestPolicyFor(t *testing.T) {
	t.Setenv("OSTREE_GPG_HOME", t.TempDir()) // no global keyrings
	pub, priv := newKey(t)
	src := initRepo(t, repo.ModeArchive)
	signed := makeCommit(t, src, "signed", writeTree(t, map[string]string{"a": "a"}), commitOpts{})
	signCommit(t, src, signed, priv)
	makeCommit(t, src, "unsigned", writeTree(t, map[string]string{"b": "b"}), commitOpts{})
	updateSummary(t, src, priv)
	srv := serve(t, src.Path())
	keyFile := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keyFile, []byte("not a key\n"+sign.EncodeEd25519(pub)+"\n"), 0o644)
	dst := initRepo(t, repo.ModeBareUser)
	cfg := remote.New(dst, "")
	add := func(name string, opts ...remote.Option) *remote.Remote {
		t.Helper()
		if _, err := cfg.Add(name, srv.URL, remote.AddOptions{Options: opts}); err != nil {
			t.Fatal(err)
		}
		rm, err := cfg.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		return rm
	}
	noGPG := remote.Option{Key: "gpg-verify", Value: "false"}
	cases := []struct {
		rm        *remote.Remote
		policyErr bool
		signedOK  bool
		unsignOK  bool
	}{
		{add("inline", noGPG, remote.Option{Key: "verification-ed25519-key", Value: sign.EncodeEd25519(pub)}, remote.Option{Key: "sign-verify", Value: "ed25519"}, remote.Option{Key: "sign-verify-summary", Value: "true"}), false, true, false},
		{add("file", noGPG, remote.Option{Key: "verification-ed25519-file", Value: keyFile}, remote.Option{Key: "sign-verify", Value: "ed25519"}), false, true, false},
		{add("nokeys", noGPG, remote.Option{Key: "sign-verify", Value: "ed25519"}), true, false, false},
		{add("badtype", noGPG, remote.Option{Key: "sign-verify", Value: "spki"}), true, false, false},
		{add("off", noGPG, remote.Option{Key: "sign-verify", Value: "false"}), false, true, true},
		{add("gpgnokeys"), true, false, false},
	}
	for _, tc := range cases {
		p, err := PolicyFor(cfg, tc.rm)
		if (err != nil) != tc.policyErr {
			t.Errorf("%s: policy: %v", tc.rm.Name, err)
			continue
		}
		if err != nil {
			t.Logf("%s: %v", tc.rm.Name, err)
			continue
		}
		for ref, ok := range map[string]bool{"signed": tc.signedOK, "unsigned": tc.unsignOK} {
			_, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: tc.rm.Name, Refs: []string{ref}, Policy: p})
			if (err == nil) != ok {
				t.Errorf("%s: pull %s: %v", tc.rm.Name, ref, err)
			}
		}
	}
}
