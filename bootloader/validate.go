package bootloader

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/strata-os/strata/errdefs"
)

// A boot entry is one "key value" line per key: a value holding a newline
// would add lines (keys) of its author's choosing, and ostree and strata
// then fail to parse the sysroot. Everything a tree or a user puts into
// an entry (kernel version directory, file names, os-release's name,
// the commit's version, kernel arguments, the stateroot name) is checked
// here before it is written.

// CheckEntryValue refuses a value that cannot be written as the rest of
// one entry line: not UTF-8, or holding a control character (newline,
// carriage return, NUL, ...). The error names the character.
func CheckEntryValue(v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: not UTF-8 text", errdefs.ErrInvalid)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: contains the control character %q", errdefs.ErrInvalid, r)
		}
	}
	return nil
}

// CheckBootName refuses a name that becomes part of a path in a boot
// entry and of a file in /boot (a kernel version, a legacy kernel file
// name): empty, ".", "..", or holding '/', white space or a control
// character.
func CheckBootName(name string) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("%w: not a file name", errdefs.ErrInvalid)
	}
	if err := CheckEntryValue(name); err != nil {
		return err
	}
	if i := strings.IndexFunc(name, unicode.IsSpace); i >= 0 {
		return fmt.Errorf("%w: contains white space", errdefs.ErrInvalid)
	}
	return nil
}

// Check refuses an entry that Format cannot write as one line per key:
// a key that does not start with an ASCII letter or holds white space or
// a control character, or a value CheckEntryValue refuses. The error
// names the key.
func (e *Entry) Check() error {
	for _, k := range e.keys {
		if err := checkKey(k); err != nil {
			return err
		}
		if err := CheckEntryValue(e.vals[k]); err != nil {
			return fmt.Errorf("boot entry key %s: %w", k, err)
		}
	}
	for _, v := range e.overlays {
		if err := CheckEntryValue(v); err != nil {
			return fmt.Errorf("boot entry key initrd: %w", err)
		}
	}
	return nil
}

func checkKey(k string) error {
	if k == "" || !isASCIIAlpha(k[0]) || strings.IndexFunc(k, unicode.IsSpace) >= 0 || CheckEntryValue(k) != nil {
		return fmt.Errorf("%w: boot entry key %q", errdefs.ErrInvalid, k)
	}
	return nil
}
