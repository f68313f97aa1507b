/* build: the shared library's ABI surface and the installed copy. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_test.h"

/* Run a shell command, collecting its output; returns its exit status. */
static int run(const char *cmd, char *out, size_t outsz) {
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    size_t n = 0;
    if (out) {
        n = fread(out, 1, outsz - 1, p);
        out[n] = '\0';
    } else {
        char sink[4096];
        while (fread(sink, 1, sizeof sink, p) > 0)
            ;
    }
    return pclose(p);
}

static void test_shared_library_exports_only_tl_names(void) {
    char cmd[512], out[65536];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only %s/lib/libtulip.so.1 2>&1",
             tl_test_build_dir());
    CU_ASSERT_EQUAL_FATAL(run(cmd, out, sizeof out), 0);
    int exported = 0, bad = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char *name = strrchr(line, ' ');
        name = name ? name + 1 : line;
        if (strcmp(name, "TULIP_1") == 0) /* the version node */
            continue;
        exported++;
        if (strncmp(name, "tl_", 3) != 0 || strncmp(name, "tl__", 4) == 0) {
            fprintf(stderr, "\n  unexpected export: %s\n", name);
            bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(exported > 40);
}

static void test_shared_library_has_soname_and_versioned_symbols(void) {
    char cmd[512], out[8192];
    snprintf(cmd, sizeof cmd, "readelf -dW %s/lib/libtulip.so.1", tl_test_build_dir());
    CU_ASSERT_EQUAL_FATAL(run(cmd, out, sizeof out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Library soname: [libtulip.so.1]"));
    snprintf(cmd, sizeof cmd, "objdump -T %s/lib/libtulip.so.1 | grep -c ' TULIP_1 *tl_loop_new$'",
             tl_test_build_dir());
    CU_ASSERT_EQUAL(run(cmd, out, sizeof out), 0);
}

static void test_public_headers_compile_alone_as_c_and_cxx(void) {
    /* Each header stands alone, as C11 and as C++ (extern "C"). */
    const char *headers[] = {"tulip.h", "tulip/core.h", "tulip/backend.h",
                             "tulip/loop.h", "tulip/future.h",
                             "tulip/sync.h", "tulip/task.h",
                             "tulip/executor.h"};
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "printf '#include <%s>\\nint main(void){return 0;}\\n' | "
                 "cc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -x c -fsyntax-only - 2>&1",
                 headers[i]);
        CU_ASSERT_EQUAL(run(cmd, NULL, 0), 0);
        snprintf(cmd, sizeof cmd,
                 "printf '#include <%s>\\nint main(){return 0;}\\n' | "
                 "c++ -Wall -Wextra -Werror -Iinclude -x c++ -fsyntax-only - 2>&1",
                 headers[i]);
        CU_ASSERT_EQUAL(run(cmd, NULL, 0), 0);
    }
}

static void test_public_headers_name_no_platform_header(void) {
    char out[4096];
    int rc = run("grep -nE '#include <(sys/|windows|winsock|pthread|signal|unistd|openssl)' "
                 "include/tulip.h include/tulip/*.h", out, sizeof out);
    CU_ASSERT_NOT_EQUAL(rc, 0); /* grep found nothing */
    CU_ASSERT_STRING_EQUAL(out, "");
}

static void test_installed_library_builds_a_program_through_pkg_config(void) {
    char out[4096];
    int rc = run("sh tools/check-install.sh build/install-check 2>&1", out, sizeof out);
    if (rc != 0)
        fprintf(stderr, "\n%s\n", out);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "install check: ok"));
}

TL_TEST_SUITE(build,
              TL_TEST(test_shared_library_exports_only_tl_names),
              TL_TEST(test_shared_library_has_soname_and_versioned_symbols),
              TL_TEST(test_public_headers_compile_alone_as_c_and_cxx),
              TL_TEST(test_public_headers_name_no_platform_header),
              TL_TEST(test_installed_library_builds_a_program_through_pkg_config))
