#!/bin/bash
# The strata demo (`make demo`): composes a Debian 12 with systemd (v1, and
# v2 derived from it; cached under $STRATA_CACHE, default .cache), installs
# v1 on a disk image with `strata install to-disk` (systemd-boot on a vfat
# ESP), boots it under OVMF in QEMU (TCG) through the real systemd-boot,
# upgrades to v2 from inside the guest (from a repository on a second
# disk), reboots, rolls back and reboots again. Prints a short transcript
# (-v: the whole serial console too); needs root (mmdebstrap, loop devices).
# The work is done by internal/demoos/demo; see docs/boot.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:/usr/sbin:/sbin:$PATH
[ "$(id -u)" = 0 ] || { echo "demo: needs root (the compose runs mmdebstrap; install to-disk uses loop devices)" >&2; exit 1; }
exec go run ./internal/demoos/demo "$@"
