package sysroot

import (
	"strings"

	"github.com/strata-os/strata/bootloader"
)

// kargValue returns the value of the first key=... argument of a kernel
// command line, as ostree finds ostree= in an entry's options.
func kargValue(options, key string) (string, bool) {
	for _, a := range bootloader.SplitCmdline(options) {
		if v, ok := strings.CutPrefix(a, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// counterSuffix returns an entry file name's boot-counting suffix ("+3",
// "+1-2"), or "" when it has none.
func counterSuffix(name string) string {
	if _, _, ok := bootloader.Tries(name); !ok {
		return ""
	}
	stem := strings.TrimSuffix(name, ".conf")
	return stem[len(strings.TrimSuffix(bootloader.Blessed(name), ".conf")):]
}

// withCounter inserts a boot-counting suffix before ".conf".
func withCounter(name, suffix string) string {
	return strings.TrimSuffix(name, ".conf") + suffix + ".conf"
}
