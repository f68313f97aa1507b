/*
 * The test harness shared by every suite.
 *
 * A suite is a file tests/test_<area>.c that ends with
 *     TL_TEST_SUITE(area, TL_TEST(test_x), TL_TEST(test_y));
 * and registers itself (no list to edit). Every test runs with tulip's
 * allocator replaced by a counting one: a test that leaves a tulip
 * allocation behind fails. tl_test_fail_alloc_at(n) makes the nth
 * allocation from now on fail, to walk the out-of-memory paths.
 */
#ifndef TL_TEST_H
#define TL_TEST_H

#include <CUnit/CUnit.h>
#include <stddef.h>

#include "tulip.h"

typedef struct tl_test_case {
    const char *name;
    void (*fn)(void);
} tl_test_case_t;

void tl_test_add_suite(const char *name, const tl_test_case_t *cases);

#define TL_TEST(fn) {#fn, fn}
#define TL_TEST_SUITE(area, ...)                                              \
    static const tl_test_case_t area##_cases[] = {__VA_ARGS__, {NULL, NULL}}; \
    __attribute__((constructor)) static void area##_register(void) {          \
        tl_test_add_suite(#area, area##_cases);                               \
    }

/* Allocations made through tulip's hooks and not yet freed. */
long tl_test_live_allocs(void);
/* The nth allocation (1 = the next one) fails, once; 0 disarms. */
void tl_test_fail_alloc_at(long n);
/* Allocations made through the hooks since the start of the test. */
long tl_test_alloc_count(void);

/* Exceptions reported through a loop's handler, captured for asserts. */
typedef struct tl_test_exc {
    int count;
    int last_error;
    char last_message[256];
    char last_error_message[256];
    tl_future_t *last_future;
    int64_t last_duration_ns;
} tl_test_exc_t;
/* Install a handler on loop that records into *exc. */
void tl_test_capture_exceptions(tl_loop_t *loop, tl_test_exc_t *exc);

/* A new loop (asserting success) and its close + unref. */
tl_loop_t *tl_test_loop(void);
void tl_test_loop_free(tl_loop_t *loop);

/* A new loop whose netstack is the one TL_NETSTACK names: "kernel" (the
 * default), "user" (the in-process user-space stack of tests/ns_user.c) or
 * "fault" (the kernel behind the fault-injecting wrapper, no faults armed).
 * The transport and stream conformance suites make their loops with it, so
 * `TL_NETSTACK=user make test SUITES=...` runs them on the user stack. */
tl_loop_t *tl_test_net_loop(void);
const char *tl_test_netstack_name(void);
/* Which table a name means (NULL: unknown), and its config. */
const tl_netstack_ops_t *tl_test_netstack_by_name(const char *name,
                                                  void **config);

/* The build folder of the flavour under test (TL_TEST_BUILD, "build"). */
const char *tl_test_build_dir(void);

#endif
