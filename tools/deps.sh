#!/bin/sh
# Install the Debian packages tulip's build, tests and reports need, when
# some are missing. As root it runs apt-get; otherwise it prints the command.
pkgs="gcc g++ make pkg-config libcunit1-dev valgrind lcov binutils"
# TLS: BoringSSL (headers and libraries under android/), and openssl(1) as
# the tests' real peer and certificate maker.
case "$(dpkg --print-architecture 2>/dev/null)" in
amd64|arm64) pkgs="$pkgs android-libboringssl-dev openssl" ;;
esac
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "deps: missing$missing; run as root: apt-get install$missing" >&2
fi
