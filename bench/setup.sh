#!/bin/sh
# Installs what the benchmark harness needs on Debian: the reference ostree,
# debootstrap (for the minbase tree), nginx (serves the pull ops; the
# harness runs its own instance, the package's service is not needed) and
# GNU time (for measuring by hand).
# Idempotent: installs only what is missing. Run as root.
set -eu
missing=""
for p in ostree debootstrap nginx time tar; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "bench/setup.sh: nothing to install"
	exit 0
fi
echo "bench/setup.sh: apt-get install$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq $missing
