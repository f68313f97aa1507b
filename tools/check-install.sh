#!/bin/sh
# Install tulip into a scratch root, build a tiny program against the
# installed copy through pkg-config, run it, then uninstall and check that
# nothing is left behind. Used by tests/test_build.c; usable by hand.
set -eu
B=${1:-build/install-check}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
make -s --no-print-directory B="$B" SANITIZE= COVERAGE= install DESTDIR="$root" PREFIX=/usr/local >/dev/null
cat >"$root/hello.c" <<'C'
#include <stdio.h>
#include <tulip.h>
static void hello(void *ctx) { printf("tulip %s says %s\n", tl_version_string(), (char *)ctx); }
int main(void) {
    tl_loop_t *loop;
    if (tl_version() != TL_VERSION_HEX || tl_loop_new(NULL, &loop) != 0)
        return 1;
    tl_loop_call_soon(loop, hello, "hello", NULL);
    tl_loop_run_once(loop, 0);
    tl_loop_close(loop);
    tl_loop_unref(loop);
    return 0;
}
C
export PKG_CONFIG_PATH="$root/usr/local/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root"
flags=$(pkg-config --cflags --libs tulip)
${CC:-cc} -std=c11 -Wall -Werror -o "$root/hello" "$root/hello.c" $flags
readelf -d "$root/hello" | grep -q 'NEEDED.*\[libtulip\.so\.1\]'
out=$(LD_LIBRARY_PATH="$root/usr/local/lib" "$root/hello")
[ "$out" = "tulip $(pkg-config --modversion tulip) says hello" ]
make -s --no-print-directory B="$B" uninstall DESTDIR="$root" PREFIX=/usr/local >/dev/null
left=$(find "$root/usr" -type f -o -type l)
[ -z "$left" ] || { echo "left after uninstall: $left" >&2; exit 1; }
echo "install check: ok ($out)"
