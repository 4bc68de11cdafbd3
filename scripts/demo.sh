#!/bin/bash
# The strata demo (`make demo`): builds two versions of a tiny OS, installs
# version 1 on an ext4 disk image with strata, boots it in QEMU (TCG)
# through a BLS boot loader with boot counting, updates to version 2 from
# inside the guest (from a repository on a second disk), reboots, rolls back
# and reboots again. Prints a short transcript; needs root (loop mounts).
# The work is done by internal/demoos/demo; see docs/boot.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:/usr/sbin:/sbin:$PATH
[ "$(id -u)" = 0 ] || { echo "demo: needs root (it loop-mounts disk images)" >&2; exit 1; }
exec go run ./internal/demoos/demo "$@"
