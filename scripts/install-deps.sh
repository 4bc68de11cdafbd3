#!/bin/sh
# Installs what strata's build, tests and demo need on a Debian 12 machine:
# Debian packages (ostree as the reference implementation, attr, gnupg, ...)
# and a Go toolchain >= the go.mod version, fetched from the Go module proxy
# when the machine has none. Idempotent; prints what it does.
#   usage: scripts/install-deps.sh [test|demo|bench]...
set -eu
cd "$(dirname "$0")/.."
want_go=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)

# test: ostree is the reference; qemu, Debian's kernel, busybox and
# e2fsprogs are for the end-to-end boots; ostree-boot gives ostree-prepare-root
# for the boot interop test; etcd-server is the FleetLock store the fleetlock
# and updates tests start on 127.0.0.1; docker-registry, skopeo, umoci and
# buildah are the references of the container tests; mmdebstrap builds the
# composed Debian of the compose and internal/testos tests; fdisk (sfdisk),
# dosfstools, mtools, grub-pc-bin, grub-common, ovmf and systemd-boot-efi
# are what install to-disk and the real-loader e2e boots use.
# test only: golang-docker-credential-helpers (docker-credential-pass) and
# pass are the real credential helper the container credHelpers test runs
# (over a throwaway GnuPG key and password store).
# demo (`make demo`) needs a subset of the same: mmdebstrap (the compose of
# the Debian it boots), fdisk, dosfstools, mtools, e2fsprogs (install
# to-disk and the update disk), qemu-system-x86 and ovmf (the boots; the
# systemd-boot it boots is Debian's systemd-boot-efi inside the image).
need_pkgs="ostree attr gnupg ca-certificates curl unzip xz-utils python3-gi gir1.2-glib-2.0 qemu-system-x86 linux-image-amd64 busybox-static e2fsprogs ostree-boot etcd-server docker-registry skopeo umoci buildah mmdebstrap fdisk dosfstools mtools grub-pc-bin grub-common ovmf systemd-boot-efi zstd"
for what in "$@"; do
	case "$what" in
	test) need_pkgs="$need_pkgs golang-docker-credential-helpers pass" ;;
	demo) ;;
	bench) need_pkgs="$need_pkgs debootstrap time nginx bc" ;;
	esac
done

missing=""
for p in $need_pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "install-deps: apt-get install$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq $missing >/dev/null
fi

# Go: use the one on PATH or in /usr/local/go when new enough; otherwise
# fetch the official toolchain module from the Go module proxy.
version_ok() { # $1 = "go1.26.8" style
	v=${1#go}
	[ "$(printf '%s\n%s\n' "$want_go" "$v" | sort -V | head -n1)" = "$want_go" ]
}
for g in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go /opt/strata-go/bin/go; do
	if [ -n "$g" ] && [ -x "$g" ]; then
		v=$("$g" env GOVERSION 2>/dev/null || true)
		if [ -n "$v" ] && version_ok "$v"; then
			echo "install-deps: using $g ($v)" >&2
			ln -sf "$g" /usr/local/bin/go 2>/dev/null || true
			exit 0
		fi
	fi
done
proxy=${GOPROXY:-https://proxy.golang.org}
proxy=${proxy%%,*}
list=$(curl -fsSL "$proxy/golang.org/toolchain/@v/list")
want_mm=$(echo "$want_go" | cut -d. -f1,2)
tv=$(echo "$list" | sed -n "s/^v0.0.1-go\(${want_mm}\(\.[0-9]*\)\?\)\.linux-amd64$/\1/p" | sort -V | tail -n1)
[ -n "$tv" ] || { echo "install-deps: no go$want_go toolchain on $proxy" >&2; exit 1; }
echo "install-deps: fetching go$tv from the module proxy" >&2
tmp=$(mktemp -d)
curl -fsSL -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$tv.linux-amd64.zip"
unzip -q "$tmp/go.zip" -d "$tmp"
rm -rf /opt/strata-go
mv "$tmp/golang.org/toolchain@v0.0.1-go$tv.linux-amd64" /opt/strata-go
chmod +x /opt/strata-go/bin/* /opt/strata-go/pkg/tool/*/* 2>/dev/null || true
ln -sf /opt/strata-go/bin/go /usr/local/bin/go
rm -rf "$tmp"
go version
