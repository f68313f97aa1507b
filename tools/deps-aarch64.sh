#!/bin/sh
# Packages `make test-aarch64` needs: the aarch64 cross compiler, qemu-user
# to run the result, and CUnit built for arm64 (a Debian multiarch package,
# which needs the arm64 architecture enabled once). Installed only when
# missing, and only as root; otherwise the commands are printed.
pkgs="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libcunit1-dev:arm64"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps-aarch64: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "deps-aarch64: missing$missing; run as root:" >&2
    echo "  dpkg --add-architecture arm64 && apt-get update && apt-get install$missing" >&2
    exit 1
fi
