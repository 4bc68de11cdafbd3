#!/bin/bash
# The strata demo: builds a tiny OS tree (busybox), commits two versions to
# a repository, shows and lists them, diffs them, checks one out and
# verifies the repository with fsck. Prints a short transcript.
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo/out
rm -rf "$out"
mkdir -p "$out"
go build -o "$out/strata" ./cmd/strata
S="$out/strata --repo=$out/repo"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

step "Build a tiny OS tree (busybox, /usr/etc, /usr/lib/os-release)"
root="$out/rootfs"
mkdir -p "$root"/usr/{bin,sbin,lib,etc} "$root"/{proc,sys,dev,run,tmp,var,sysroot}
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/usr/bin/busybox"
for app in sh ls cat echo mount uname; do ln -s busybox "$root/usr/bin/$app"; done
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
printf 'NAME="strata demo"\nVERSION_ID=1\n' > "$root/usr/lib/os-release"
printf 'demo\n' > "$root/usr/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/usr/etc/passwd"
echo "$(find "$root" | wc -l) entries, $(du -sh "$root" | cut -f1)"

step "Create an archive-mode repository and commit version 1"
run $S init --mode=archive
v1=$(run $S commit -b demo/stable --tree=dir="$root" -s "Demo OS 1" --add-metadata-string=version=1)
echo "$v1"

step "Version 2: change os-release, add a file, remove one"
printf 'NAME="strata demo"\nVERSION_ID=2\n' > "$root/usr/lib/os-release"
printf 'motd for v2\n' > "$root/usr/etc/motd"
rm "$root/usr/etc/hostname"
v2=$(run $S commit -b demo/stable --tree=dir="$root" -s "Demo OS 2" --add-metadata-string=version=2)
echo "$v2"

step "History, metadata and contents"
run $S log demo/stable
run $S show demo/stable --print-metadata-key=version
run $S ls demo/stable /usr/lib
run $S diff demo/stable^ demo/stable

step "Check out version 1 and read a file from it"
run $S checkout -U "$v1" "$out/checkout-v1"
run cat "$out/checkout-v1/usr/lib/os-release"

step "Verify every object"
run $S fsck

step "The real ostree reads the same repository"
run ostree --repo="$out/repo" fsck | tail -n1
run ostree --repo="$out/repo" rev-parse demo/stable
echo
echo "demo complete: $out/repo holds 2 commits; strata and ostree agree on $v2"
