package bootloader

import (
	"errors"
	"reflect"
	"testing"

	"github.com/strata-os/strata/errdefs"
)

func TestSplitCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"a b=c", []string{"a", "b=c"}},
		{"a  b", []string{"a", "", "b"}}, // ostree 2022.7 keeps empty arguments
		{" a ", []string{"", "a", ""}},
		{`foo="a b" c`, []string{`foo="a b"`, "c"}},
		{`foo="a b`, []string{`foo="a b`}},
		{`x="" y`, []string{`x=""`, "y"}},
	} {
		got := SplitCmdline(tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if k := ParseKargs(tc.in); k.String() != tc.in {
			t.Errorf("ParseKargs(%q).String() = %q: not a round trip", tc.in, k.String())
		}
	}
}

func TestKargsEdit(t *testing.T) {
	type op struct {
		kind, arg string
	}
	for _, tc := range []struct {
		name  string
		start string
		ops   []op
		want  string
		err   error  // of the last op
		msg   string // of the last op
	}{
		{name: "append", start: "a=1", ops: []op{{"append", "a=2"}, {"append", "b"}}, want: "a=1 a=2 b"},
		{name: "set replaces all at first position", start: "x a=1 y a=2 z", ops: []op{{"set", "a=3"}}, want: "x a=3 y z"},
		{name: "set appends new", start: "x", ops: []op{{"set", "a=3"}}, want: "x a=3"},
		{name: "set bare key", start: "quiet=1", ops: []op{{"set", "quiet"}}, want: "quiet"},
		{name: "set ostree=", start: "root=/dev/vda ostree=/ostree/boot.0/os/c/0 quiet", ops: []op{{"set", "ostree=/ostree/boot.1/os/c/0"}}, want: "root=/dev/vda ostree=/ostree/boot.1/os/c/0 quiet"},
		{name: "delete key single", start: "a=1 b", ops: []op{{"delete", "a"}}, want: "b"},
		{name: "delete key=value single", start: "a=1 b", ops: []op{{"delete", "a=1"}}, want: "b"},
		{name: "delete key=wrong single", start: "a=1 b", ops: []op{{"delete", "a=2"}}, want: "a=1 b", err: errdefs.ErrNotFound, msg: "No karg 'a=2' found"},
		{name: "delete bare single with value given", start: "a b", ops: []op{{"delete", "a="}}, want: "a b", err: errdefs.ErrNotFound, msg: "No karg 'a=' found"},
		{name: "delete missing", start: "a", ops: []op{{"delete", "b"}}, want: "a", err: errdefs.ErrNotFound, msg: "No key 'b' found"},
		{name: "delete one of several", start: "c=1 c=2 c=3", ops: []op{{"delete", "c=2"}}, want: "c=1 c=3"},
		{name: "delete ambiguous", start: "c=1 c=2", ops: []op{{"delete", "c"}}, want: "c=1 c=2", err: errdefs.ErrInvalid, msg: "Multiple values for key 'c' found"},
		{name: "delete bare among several", start: "c=1 c c=2", ops: []op{{"delete", "c"}}, want: "c=1 c=2"},
		{name: "delete first equal", start: "c=1 d c=1", ops: []op{{"delete", "c=1"}}, want: "d c=1"},
		{name: "delete value missing among several", start: "c=1 c=2", ops: []op{{"delete", "c=3"}}, want: "c=1 c=2", err: errdefs.ErrNotFound, msg: "No karg 'c=3' found"},
		{name: "delete empty vs none", start: "c= c", ops: []op{{"delete", "c="}}, want: "c"},
		{name: "replace single", start: "a=1 b", ops: []op{{"replace", "a=2"}}, want: "a=2 b"},
		{name: "replace to bare", start: "a=1 b", ops: []op{{"replace", "a"}}, want: "a b"},
		{name: "replace old=new", start: "c=1 c=2 c=3", ops: []op{{"replace", "c=2=9"}}, want: "c=1 c=9 c=3"},
		{name: "replace old missing", start: "c=1 c=2", ops: []op{{"replace", "c=5=9"}}, want: "c=1 c=2", err: errdefs.ErrNotFound, msg: "No karg 'c=5' found"},
		{name: "replace ambiguous", start: "c=1 c=2", ops: []op{{"replace", "c=9"}}, want: "c=1 c=2", err: errdefs.ErrInvalid, msg: "Multiple values for key 'c' found"},
		{name: "replace missing", start: "a", ops: []op{{"replace", "b=1"}}, want: "a", err: errdefs.ErrNotFound, msg: "No key 'b' found"},
		{name: "replace value with =", start: "a=x", ops: []op{{"replace", "a=x=y=z"}}, want: "a=y=z"},
		{name: "append if missing", start: "a=1", ops: []op{{"appendifmissing", "a=2"}, {"appendifmissing", "b=1"}}, want: "a=1 b=1"},
		{name: "delete if present", start: "a=1", ops: []op{{"deleteifpresent", "b"}, {"deleteifpresent", "a"}}, want: ""},
		{name: "quoted arg is one", start: `a="x y" b`, ops: []op{{"delete", `a="x y"`}}, want: "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := ParseKargs(tc.start)
			var err error
			for _, o := range tc.ops {
				switch o.kind {
				case "append":
					k.Append(o.arg)
					err = nil
				case "set":
					k.Set(o.arg)
					err = nil
				case "delete":
					err = k.Delete(o.arg)
				case "replace":
					err = k.Replace(o.arg)
				case "appendifmissing":
					k.AppendIfMissing(o.arg)
					err = nil
				case "deleteifpresent":
					err = k.DeleteIfPresent(o.arg)
				default:
					t.Fatalf("bad op %q", o.kind)
				}
			}
			if got := k.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.err == nil {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, tc.err) || err.Error() != tc.msg {
				t.Errorf("error %v, want %q wrapping %v", err, tc.msg, tc.err)
			}
		})
	}
}

func TestKargsLookups(t *testing.T) {
	k := ParseKargs("a=1 b a=2 c=")
	if v, ok := k.LastValue("a"); !ok || v != "2" {
		t.Errorf("LastValue(a) = %q, %v", v, ok)
	}
	if _, ok := k.LastValue("b"); ok {
		t.Error("LastValue(b) has a value")
	}
	if v, ok := k.LastValue("c"); !ok || v != "" {
		t.Errorf("LastValue(c) = %q, %v", v, ok)
	}
	if !k.Contains("a=zzz") || k.Contains("d") {
		t.Error("Contains wrong")
	}
	c := k.Clone()
	c.Append("z")
	if k.String() == c.String() {
		t.Error("Clone shares storage")
	}
	if !reflect.DeepEqual(k.Strings(), []string{"a=1", "b", "a=2", "c="}) {
		t.Errorf("Strings = %q", k.Strings())
	}
}

func TestAppendCmdline(t *testing.T) {
	k := ParseKargs("root=/dev/vda")
	k.AppendCmdline("BOOT_IMAGE=/vmlinuz-6.1 initrd=\\initrd.img ro quiet console=ttyS0\n")
	if got, want := k.String(), "root=/dev/vda ro quiet console=ttyS0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var p Kargs
	if err := p.AppendProcCmdline(); err != nil {
		t.Fatal(err)
	}
	if len(p.Strings()) == 0 {
		t.Error("empty /proc/cmdline?")
	}
}

func TestWithoutKarg(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"root=/dev/vda1 ostree=/ostree/boot.0/os/x/0 quiet", "root=/dev/vda1 quiet"},
		{"ostree ostree=a ostreex=b", "ostreex=b"},
		{`a="x ostree=y" ostree=z`, `a="x ostree=y"`},
		{"", ""},
	} {
		if got := WithoutKarg(c.in, "ostree"); got != c.want {
			t.Errorf("WithoutKarg(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
