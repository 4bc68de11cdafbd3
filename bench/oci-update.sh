#!/bin/sh
# Bytes and requests a registry serves for a container image update:
# v1 is a copy of parts of the host's /usr, v2 changes a few files
# (SIZE of them), both encapsulated by strata (64 chunks) and pushed to
# Debian's docker-registry on 127.0.0.1; a fresh repo pulls v1, then v2.
# Usage: [TREE_DIRS="/usr/bin /usr/lib/python3.11"] bench/oci-update.sh STRATA_BINARY [CHANGED_FILES]
set -eu
strata=$(realpath "$1")
changed=${2:-5}
work=$(mktemp -d)
trap 'kill $regpid 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/reg.yml" <<CFG
version: 0.1
log:
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $work/regdata
http:
  addr: 127.0.0.1:$port
CFG
docker-registry serve "$work/reg.yml" > "$work/reg.log" 2>&1 &
regpid=$!
until curl -sf "http://127.0.0.1:$port/v2/" >/dev/null; do sleep 0.2; done

for d in ${TREE_DIRS:-/usr/bin /usr/lib/python3.11 /usr/share/perl}; do
	mkdir -p "$work/tree$(dirname "$d")"
	cp -a "$d" "$work/tree$d"
done
find "$work/tree" -type f -o -type l -o -type d | grep -v -E '^[[:print:]]+$' | while read -r f; do rm -rf "$f"; done || true
ostree --repo="$work/src" init --mode=archive
ostree --repo="$work/src" commit -b os --tree=dir="$work/tree" --add-metadata-string=version=1 --timestamp=2026-01-01T00:00:00Z >/dev/null
"$strata" --repo="$work/src" container encapsulate os "registry:127.0.0.1:$port/os:latest" >/dev/null
find "$work/tree" -type f | sort | awk -v n="$changed" 'NR % 97 == 0 && c < n { print; c++ }' | while read -r f; do echo "changed" >> "$f"; done
ostree --repo="$work/src" commit -b os --tree=dir="$work/tree" --add-metadata-string=version=2 --timestamp=2026-02-01T00:00:00Z >/dev/null
ostree --repo="$work/dst" init --mode=bare-user
count() { awk '/"GET \/v2\/[^ ]*\/(blobs|manifests)\// { n++; b += $(NF-2) } END { printf "%d requests, %d bytes\n", n, b }' "$work/reg.log"; }
# v1 is pushed as the tag; push v2 under another tag first so the pull of v1 is measured alone
: > "$work/reg.log"
"$strata" --repo="$work/dst" container image pull "registry:127.0.0.1:$port/os:latest" >/dev/null 2>&1
echo "v1 full pull: $(count)"
"$strata" --repo="$work/src" container encapsulate os "registry:127.0.0.1:$port/os:latest" >/dev/null
: > "$work/reg.log"
"$strata" --repo="$work/dst" container image pull "registry:127.0.0.1:$port/os:latest" 2>&1 >/dev/null | sed 's/^/  /'
echo "v1->v2 update pull ($changed files changed): $(count)"
du -sb "$work/tree" | awk '{ printf "tree: %d bytes\n", $1 }'
