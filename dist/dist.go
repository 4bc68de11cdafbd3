// Package dist holds the files strata installs into the systems it
// composes: systemd units (systemd/) and the initramfs-tools hook and
// script that run `strata prepare-root` (initramfs-tools/). They are
// embedded so one binary carries them.
package dist

import "embed"

// Files is the tree under dist/: systemd/*.service|*.timer,
// initramfs-tools/hooks/strata, initramfs-tools/scripts/local-bottom/strata.
//
//go:embed systemd initramfs-tools
var Files embed.FS
