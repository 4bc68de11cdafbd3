package etcmerge

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-os/strata/repo"
)

type mergeCase struct {
	name              string
	orig, local, next tree
	want              tree   // the merged new /etc
	err               string // a conflict naming the path, with nothing written
	ignored           []string
}

var mergeCases = []mergeCase{
	{
		name: "untouched file takes the new default",
		orig: tree{"a": F("1")}, local: tree{"a": F("1")}, next: tree{"a": F("2")},
		want: tree{"a": F("2")},
	},
	{
		name: "local edit wins over the new default",
		orig: tree{"a": F("1"), "b": F("b")}, local: tree{"a": F("local"), "b": F("b")}, next: tree{"a": F("2"), "b": F("b2")},
		want: tree{"a": F("local"), "b": F("b2")},
	},
	{
		name: "local addition",
		orig: tree{"a": F("1")}, local: tree{"a": F("1"), "new.conf": F("mine").m(0o600)}, next: tree{"a": F("2")},
		want: tree{"a": F("2"), "new.conf": F("mine").m(0o600)},
	},
	{
		name: "local addition replaces a new default of the same name",
		orig: tree{}, local: tree{"x": F("mine")}, next: tree{"x": F("theirs")},
		want: tree{"x": F("mine")},
	},
	{
		name: "local deletion",
		orig: tree{"a": F("1"), "b": F("b")}, local: tree{"b": F("b")}, next: tree{"a": F("2"), "b": F("b")},
		want: tree{"b": F("b")},
	},
	{
		name: "mode change carries the whole file",
		orig: tree{"a": F("1")}, local: tree{"a": F("1").m(0o600)}, next: tree{"a": F("2")},
		want: tree{"a": F("1").m(0o600)},
	},
	{
		name: "setuid and sticky modes survive",
		orig: tree{"a": F("1"), "d/": D()}, local: tree{"a": F("1").m(0o4755), "d/": D().m(0o1777)}, next: tree{"a": F("1"), "d": D()},
		want: tree{"a": F("1").m(0o4755), "d": D()}, // a modified directory that still exists keeps the new default (ostree)
	},
	{
		name: "owner change",
		orig: tree{"a": F("1")}, local: tree{"a": F("1").own(1234, 5678)}, next: tree{"a": F("2")},
		want: tree{"a": F("1").own(1234, 5678)},
	},
	{
		name: "xattr-only change is not a change (ostree ignores xattrs in the diff)",
		orig: tree{"a": F("1")}, local: tree{"a": F("1").x("user.k", "v")}, next: tree{"a": F("2")},
		want: tree{"a": F("2")},
	},
	{
		name:  "xattrs are copied with a changed file",
		orig:  tree{"a": F("1")},
		local: tree{"a": F("local").x("user.k", "v").x("security.selinux", "system_u:object_r:etc_t:s0")},
		next:  tree{"a": F("2")},
		want:  tree{"a": F("local").x("user.k", "v").x("security.selinux", "system_u:object_r:etc_t:s0")},
	},
	{
		name: "symlink retarget",
		orig: tree{"l": L("x"), "m": L("y")}, local: tree{"l": L("y").x("security.selinux", "l_t"), "m": L("y")}, next: tree{"l": L("x"), "m": L("z")},
		want: tree{"l": L("y").x("security.selinux", "l_t"), "m": L("z")},
	},
	{
		name: "symlink owner change",
		orig: tree{"l": L("x")}, local: tree{"l": L("x").own(7, 8)}, next: tree{"l": L("x")},
		want: tree{"l": L("x").own(7, 8)},
	},
	{
		name: "file replaced by a symlink locally",
		orig: tree{"a": F("1")}, local: tree{"a": L("/usr/share/a")}, next: tree{"a": F("2")},
		want: tree{"a": L("/usr/share/a")},
	},
	{
		name: "locally edited file that became a directory: conflict",
		orig: tree{"a": F("1")}, local: tree{"a": F("local")}, next: tree{"a/": D(), "a/x": F("x")},
		err: "modified config file newly defaults to directory 'a', cannot merge",
	},
	{
		name: "local directory made a file while the default is still a directory: conflict",
		orig: tree{"d/": D(), "d/x": F("x")}, local: tree{"d": F("file now")}, next: tree{"d/": D(), "d/x": F("x2")},
		err: "modified config file newly defaults to directory 'd', cannot merge",
	},
	{
		name: "local file made a directory, new default a file: the directory wins",
		orig: tree{"a": F("1")}, local: tree{"a/": D().m(0o750), "a/x": F("x"), "a/s/y": F("y")}, next: tree{"a": F("2")},
		want: tree{"a/": D().m(0o750), "a/x": F("x"), "a/s/y": F("y")},
	},
	{
		name: "local file made a directory, new default a directory too: ostree keeps the new one",
		orig: tree{"a": F("1")}, local: tree{"a/": D(), "a/x": F("x")}, next: tree{"a/": D(), "a/n": F("n")},
		want: tree{"a/": D(), "a/n": F("n")},
	},
	{
		name: "file added in a directory that is a file in the new defaults: conflict",
		orig: tree{"d/": D()}, local: tree{"d/": D(), "d/new": F("n")}, next: tree{"d": F("file")},
		err: "cannot copy 'd/new': 'd' is not a directory in the new defaults",
	},
	{
		name: "file added below a symlink of the new defaults: conflict",
		orig: tree{"d/": D()}, local: tree{"d/": D(), "d/new": F("n")}, next: tree{"d": L("/usr/share/d"), "real/": D()},
		err: "cannot copy 'd/new': 'd' is a symlink in the new defaults",
	},
	{
		name: "deleted file below a file of the new defaults: conflict",
		orig: tree{"d/x": F("x")}, local: tree{"d/": D()}, next: tree{"d": F("file")},
		err: "cannot remove locally deleted 'd/x': 'd' is not a directory in the new defaults",
	},
	{
		name: "deleted file below a directory gone from the new defaults: nothing to do",
		orig: tree{"d/x": F("x"), "k": F("k")}, local: tree{"d/": D(), "k": F("k")}, next: tree{"k": F("k2")},
		want: tree{"k": F("k2")},
	},
	{
		name: "added directory with contents",
		orig: tree{"a": F("1")},
		local: tree{"a": F("1"), "new/": D().m(0o700).own(3, 4), "new/f": F("f").m(0o640), "new/sub/g": F("g"),
			"new/sub/l": L("../f"), "new/empty/": D().m(0o711)},
		next: tree{"a": F("2")},
		want: tree{"a": F("2"), "new/": D().m(0o700).own(3, 4), "new/f": F("f").m(0o640), "new/sub/g": F("g"),
			"new/sub/l": L("../f"), "new/empty/": D().m(0o711)},
	},
	{
		name: "added directory merged into a new default directory of the same name",
		orig: tree{}, local: tree{"d/": D().m(0o700), "d/mine": F("m")}, next: tree{"d/": D(), "d/theirs": F("t")},
		want: tree{"d/": D().m(0o700), "d/mine": F("m"), "d/theirs": F("t")},
	},
	{
		name: "deleted directory goes with what the new defaults added to it",
		orig: tree{"d/": D(), "d/x": F("x"), "d/s/y": F("y")}, local: tree{}, next: tree{"d/": D(), "d/x": F("x2"), "d/s/y": F("y"), "d/new": F("n")},
		want: tree{},
	},
	{
		name: "file deleted in the new defaults but locally modified survives",
		orig: tree{"a": F("1"), "d/x": F("x")}, local: tree{"a": F("local"), "d/": D().m(0o700), "d/x": F("local x")}, next: tree{},
		want: tree{"a": F("local"), "d/": D().m(0o700), "d/x": F("local x")},
	},
	{
		name: "parent directory of a copied file takes the local attributes",
		orig: tree{"d/": D(), "d/x": F("x")}, local: tree{"d/": D().m(0o750).own(0, 9), "d/x": F("x"), "d/new": F("n")}, next: tree{"d/": D(), "d/x": F("x2")},
		want: tree{"d/": D().m(0o750).own(0, 9), "d/x": F("x2"), "d/new": F("n")},
	},
	{
		name: "directory mode change alone is not carried (ostree)",
		orig: tree{"d/": D(), "d/x": F("x")}, local: tree{"d/": D().m(0o700), "d/x": F("x")}, next: tree{"d/": D(), "d/x": F("x2")},
		want: tree{"d/": D(), "d/x": F("x2")},
	},
	{
		name: "deep addition creates the missing parents with local attributes",
		orig: tree{}, local: tree{"a/": D().m(0o701), "a/b/": D().m(0o702), "a/b/c": F("c")}, next: tree{},
		want: tree{"a/": D().m(0o701), "a/b/": D().m(0o702), "a/b/c": F("c")},
	},
	{
		name: "added FIFO is skipped, and the default it replaces is removed",
		orig: tree{}, local: tree{"fifo": P(), "a": P()}, next: tree{"a": F("default")},
		want: tree{}, ignored: []string{"a", "fifo"},
	},
	{
		name: "FIFO inside an added directory: conflict",
		orig: tree{}, local: tree{"d/": D(), "d/fifo": P()}, next: tree{},
		err: "cannot copy 'd/fifo': not a regular file, symlink or directory",
	},
	{
		name: "modified file in an unchanged directory",
		orig: tree{"ssh/sshd_config": F("a"), "ssh/moduli": F("m")}, local: tree{"ssh/sshd_config": F("local"), "ssh/moduli": F("m")},
		next: tree{"ssh/sshd_config": F("new"), "ssh/moduli": F("m2"), "ssh/extra": F("e")},
		want: tree{"ssh/sshd_config": F("local"), "ssh/moduli": F("m2"), "ssh/extra": F("e")},
	},
}

func TestMerge(t *testing.T) {
	ctx := context.Background()
	for _, tc := range mergeCases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			orig, local, next := filepath.Join(root, "orig"), filepath.Join(root, "local"), filepath.Join(root, "next")
			buildTree(t, orig, tc.orig)
			buildTree(t, local, tc.local)
			buildTree(t, next, tc.next)
			before := snapshot(t, next, true)
			p, err := NewPlan(ctx, orig, local, next)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrConflict) || !errors.Is(err, repo.ErrInvalid) {
					t.Fatalf("err %v, want a conflict %q", err, tc.err)
				}
				if d := diffSnapshots(snapshot(t, next, true), before); d != "" {
					t.Fatalf("NewPlan wrote:\n%s", d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := diffSnapshots(snapshot(t, next, true), before); d != "" {
				t.Fatalf("NewPlan wrote:\n%s", d)
			}
			if err := p.Apply(ctx); err != nil {
				t.Fatal(err)
			}
			wantDir := filepath.Join(root, "want")
			buildTree(t, wantDir, tc.want)
			if d := diffSnapshots(snapshot(t, next, false), snapshot(t, wantDir, false)); d != "" {
				t.Errorf("merged /etc differs:\n%s", d)
			}
			ign := p.Ignored()
			if len(ign) == 0 {
				ign = nil
			}
			sortStrings(ign)
			if !reflect.DeepEqual(ign, tc.ignored) {
				t.Errorf("ignored %q, want %q", ign, tc.ignored)
			}
		})
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
