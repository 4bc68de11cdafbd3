package bootloader

import (
	"fmt"
	"os"
	"strings"

	"github.com/strata-os/strata/errdefs"
)

// Kargs is a kernel command line with ostree's editing rules
// (ostree-kernel-args.c): an ordered list of arguments, each KEY or
// KEY=VALUE (split at the first '='; "KEY=" has an empty value, which is
// not the same as no value). The zero Kargs is an empty command line.
type Kargs struct {
	args []karg
}

type karg struct {
	key, val string
	hasVal   bool
}

func splitKarg(a string) karg {
	k, v, ok := strings.Cut(a, "=")
	return karg{key: k, val: v, hasVal: ok}
}

func (a karg) String() string {
	if a.hasVal {
		return a.key + "=" + a.val
	}
	return a.key
}

// SplitCmdline splits a command line into arguments at every space outside
// double quotes, keeping the quotes. Like ostree 2022.7 (which splits at
// every space) it keeps empty arguments, so joining the result with single
// spaces gives s back; unlike 2022.7, and like later ostree and the
// kernel, `foo="a b"` is one argument. An unterminated quote runs to the
// end. The empty string has no arguments.
func SplitCmdline(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ' ':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// ParseKargs parses a command line (an entry's "options") as
// ostree_kernel_args_from_string does, with SplitCmdline.
func ParseKargs(cmdline string) *Kargs {
	k := &Kargs{}
	for _, a := range SplitCmdline(cmdline) {
		k.Append(a)
	}
	return k
}

// Clone returns a copy of k.
func (k *Kargs) Clone() *Kargs { return &Kargs{args: append([]karg(nil), k.args...)} }

// Append adds arg at the end, whatever is there already.
func (k *Kargs) Append(arg string) { k.args = append(k.args, splitKarg(arg)) }

// procCmdlineFiltered are the arguments boot loaders add themselves, left
// out when the running kernel's command line is copied.
var procCmdlineFiltered = []string{"BOOT_IMAGE=", "initrd="}

// AppendCmdline appends the arguments of a running kernel's command line
// (the content of /proc/cmdline) as `ostree admin deploy
// --karg-proc-cmdline` does: trailing whitespace dropped, split at spaces,
// the boot loader's own BOOT_IMAGE= (GRUB) and initrd= (systemd-boot)
// arguments left out.
func (k *Kargs) AppendCmdline(cmdline string) {
	cmdline = strings.TrimRight(cmdline, " \t\n\r\v\f")
	for _, a := range SplitCmdline(cmdline) {
		filtered := false
		for _, p := range procCmdlineFiltered {
			if strings.HasPrefix(a, p) {
				filtered = true
				break
			}
		}
		if !filtered {
			k.Append(a)
		}
	}
}

// AppendProcCmdline is AppendCmdline with the content of /proc/cmdline.
func (k *Kargs) AppendProcCmdline() error {
	data, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("kernel arguments: %w", err)
	}
	k.AppendCmdline(string(data))
	return nil
}

// Set makes arg (KEY or KEY=VALUE) the only argument with its key, as
// ostree_kernel_args_replace does for `ostree admin deploy --karg`: every
// argument with that key is removed and arg takes the place of the first
// of them, or goes at the end when there was none.
func (k *Kargs) Set(arg string) {
	n := splitKarg(arg)
	out := make([]karg, 0, len(k.args)+1)
	placed := false
	for _, a := range k.args {
		switch {
		case a.key != n.key:
			out = append(out, a)
		case !placed:
			out = append(out, n)
			placed = true
		}
	}
	if !placed {
		out = append(out, n)
	}
	k.args = out
}

// Replace changes a value in place, as ostree_kernel_args_new_replace
// does: KEY=NEW gives the only KEY argument the value NEW (KEY alone
// removes its value); KEY=OLD=NEW gives the first KEY=OLD the value NEW.
// It fails with errdefs.ErrNotFound when there is no KEY (or no KEY=OLD), and
// with errdefs.ErrInvalid when KEY has several values and no OLD was given.
// The messages are ostree's.
func (k *Kargs) Replace(arg string) error {
	n := splitKarg(arg)
	idx := k.indexes(n.key)
	if len(idx) == 0 {
		return kargError(errdefs.ErrNotFound, "No key '%s' found", n.key)
	}
	if n.hasVal && strings.Contains(n.val, "=") {
		old, nv, _ := strings.Cut(n.val, "=")
		for _, i := range idx {
			if a := k.args[i]; a.hasVal && a.val == old {
				k.args[i].val = nv
				return nil
			}
		}
		return kargError(errdefs.ErrNotFound, "No karg '%s=%s' found", n.key, old)
	}
	if len(idx) > 1 {
		return kargError(errdefs.ErrInvalid, "Multiple values for key '%s' found", n.key)
	}
	k.args[idx[0]] = n
	return nil
}

// Delete removes one argument, as ostree_kernel_args_delete does: KEY
// removes the only argument with that key (whatever its value); with
// several, it removes the first bare KEY, and fails (errdefs.ErrInvalid,
// "Multiple values") when there is none; KEY=VALUE removes the first
// argument equal to it. A missing key or value fails with
// errdefs.ErrNotFound. The messages are ostree's.
func (k *Kargs) Delete(arg string) error {
	n := splitKarg(arg)
	idx := k.indexes(n.key)
	if len(idx) == 0 {
		return kargError(errdefs.ErrNotFound, "No key '%s' found", n.key)
	}
	del := -1
	if len(idx) == 1 {
		a := k.args[idx[0]]
		if n.hasVal && (!a.hasVal || a.val != n.val) {
			return kargError(errdefs.ErrNotFound, "No karg '%s=%s' found", n.key, n.val)
		}
		del = idx[0]
	} else {
		for _, i := range idx {
			if a := k.args[i]; a.hasVal == n.hasVal && a.val == n.val {
				del = i
				break
			}
		}
		if del < 0 {
			if !n.hasVal {
				return kargError(errdefs.ErrInvalid, "Multiple values for key '%s' found", arg)
			}
			return kargError(errdefs.ErrNotFound, "No karg '%s' found", arg)
		}
	}
	k.args = append(k.args[:del:del], k.args[del+1:]...)
	return nil
}

// DeleteIfPresent is Delete when arg's key is present, else nothing.
func (k *Kargs) DeleteIfPresent(arg string) error {
	if !k.Contains(arg) {
		return nil
	}
	return k.Delete(arg)
}

// Contains reports whether an argument has arg's key (a value in arg is
// ignored).
func (k *Kargs) Contains(arg string) bool { return len(k.indexes(splitKarg(arg).key)) > 0 }

// AppendIfMissing appends arg unless its key is present.
func (k *Kargs) AppendIfMissing(arg string) {
	if !k.Contains(arg) {
		k.Append(arg)
	}
}

// LastValue returns the value of the last argument with key; ok is false
// when there is none or it has no value.
func (k *Kargs) LastValue(key string) (value string, ok bool) {
	idx := k.indexes(key)
	if len(idx) == 0 {
		return "", false
	}
	a := k.args[idx[len(idx)-1]]
	return a.val, a.hasVal
}

func (k *Kargs) indexes(key string) []int {
	var idx []int
	for i, a := range k.args {
		if a.key == key {
			idx = append(idx, i)
		}
	}
	return idx
}

// Strings returns the arguments in order.
func (k *Kargs) Strings() []string {
	out := make([]string, len(k.args))
	for i, a := range k.args {
		out[i] = a.String()
	}
	return out
}

// String returns the command line: the arguments joined by single spaces.
func (k *Kargs) String() string { return strings.Join(k.Strings(), " ") }

// kargErr is an editing error: ostree's message, wrapping a sentinel.
type kargErr struct {
	msg  string
	kind error
}

func (e *kargErr) Error() string { return e.msg }
func (e *kargErr) Unwrap() error { return e.kind }

func kargError(kind error, format string, args ...any) error {
	return &kargErr{msg: fmt.Sprintf(format, args...), kind: kind}
}

// WithoutKarg returns the command line without the arguments named key
// ("key" and "key=..."), split as SplitCmdline splits it: what a
// deployment's options are without ostree= (which every entry gets anew).
func WithoutKarg(cmdline, key string) string {
	var keep []string
	for _, a := range SplitCmdline(cmdline) {
		if a != key && !strings.HasPrefix(a, key+"=") {
			keep = append(keep, a)
		}
	}
	return strings.Join(keep, " ")
}
