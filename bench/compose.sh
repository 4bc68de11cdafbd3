#!/bin/bash
# Wall time of `strata compose` on the test OS spec (internal/testos/testos.toml):
#   full       build without a lock: resolve against the mirror, mmdebstrap, layout, commit
#              (packages already in $STRATA_CACHE are not downloaded again)
#   from-lock  build from the lock written by `full`, base cache cold (mmdebstrap runs; the base is stored)
#   file       recompose after a one-file change (same lock: the base comes from the cache)
#   layered    recompose after a one-package change as a layer: [base] ref = the previous version
#              (bench/file), packages = ["less"]; no lock: resolve against its dpkg database, fetch, dpkg --root
#   layered-lock  the same from the lock `layered` wrote
#   package    recompose after a one-package change to the base's own list (less added): the lock
#              changes, so mmdebstrap runs (the full path)
# Usage: bench/compose.sh    (root, network to the Debian mirror of apt's configuration)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${STRATA_CACHE:-$PWD/.cache}
mkdir -p "$cache"
work=$(mktemp -d /var/tmp/strata-compose-bench.XXXXXX)
trap 'chattr -R -i "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
CGO_ENABLED=0 go build -trimpath -o "$work/strata" ./cmd/strata
S="$work/strata"
mkdir "$work/spec"
cp internal/testos/testos.toml "$work/spec/os.toml"
"$S" init --repo="$work/repo" --mode=bare >/dev/null
build() { "$S" compose build "$work/spec/os.toml" --repo="$work/repo" --cache="$cache" -b "bench/$1"; }
timed() { # name cmd...
	local s e
	s=$(date +%s.%N)
	out=$("${@:2}")
	e=$(date +%s.%N)
	printf '%-10s %7.1f s   %s\n' "$1" "$(echo "$e - $s" | bc)" "$out"
}
# A base cached by an earlier run would make from-lock a hit.
rm -rf "$cache/base-repo"
timed full build full
timed from-lock build from-lock
sed -i 's|content = "built by strata compose\\n"|content = "built by strata compose, again\\n"|' "$work/spec/os.toml"
timed file build file
mkdir "$work/layer"
cat >"$work/layer/os.toml" <<'EOF'
[os]
name = "testos"
version = "2"

[base]
ref = "bench/file"
packages = ["less"]
EOF
layer() { "$S" compose build "$work/layer/os.toml" --repo="$work/repo" --cache="$cache" -b "bench/$1"; }
timed layered layer layered
timed layered-lock layer layered-lock
sed -i 's|"systemd-boot-efi"\]|"systemd-boot-efi", "less"]|' "$work/spec/os.toml"
rm "$work/spec/os.lock"
timed package build package
