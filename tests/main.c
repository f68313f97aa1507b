/*
 * tulip-tests: runs every registered CUnit suite, or the suites named on the
 * command line. Exit status 0 only when every test passed.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "tl_test.h"

#define MAX_SUITES 256

static struct {
    const char *name;
    const tl_test_case_t *cases;
} suites[MAX_SUITES];
static int nsuites;

void tl_test_add_suite(const char *name, const tl_test_case_t *cases) {
    if (nsuites == MAX_SUITES) {
        fprintf(stderr, "tl_test: too many suites\n");
        exit(2);
    }
    suites[nsuites].name = name;
    suites[nsuites].cases = cases;
    nsuites++;
}

/* ---- counting allocator ----------------------------------------------- */

typedef union header {
    size_t size;
    max_align_t align;
} header_t;

/* Atomic: threaded tests allocate from several threads. */
static _Atomic long live, count, fail_at;

static int should_fail(void) {
    atomic_fetch_add(&count, 1);
    long armed = atomic_load(&fail_at);
    while (armed > 0) {
        if (atomic_compare_exchange_weak(&fail_at, &armed, armed - 1))
            return armed == 1;
    }
    return 0;
}

static void *t_malloc(void *ctx, size_t n) {
    (void)ctx;
    if (should_fail())
        return NULL;
    header_t *h = malloc(sizeof(header_t) + n);
    if (h == NULL)
        return NULL;
    h->size = n;
    live++;
    return h + 1;
}

static void t_free(void *ctx, void *p) {
    (void)ctx;
    if (p == NULL)
        return;
    live--;
    free((header_t *)p - 1);
}

static void *t_realloc(void *ctx, void *p, size_t n) {
    if (p == NULL)
        return t_malloc(ctx, n);
    if (should_fail())
        return NULL;
    header_t *h = realloc((header_t *)p - 1, sizeof(header_t) + n);
    if (h == NULL)
        return NULL;
    h->size = n;
    return h + 1;
}

long tl_test_live_allocs(void) { return live; }
long tl_test_alloc_count(void) { return count; }
void tl_test_fail_alloc_at(long n) { fail_at = n; }

/* ---- shared helpers --------------------------------------------------- */

static void capture(tl_loop_t *loop, const tl_exception_context_t *c, void *ctx) {
    (void)loop;
    tl_test_exc_t *e = ctx;
    e->count++;
    e->last_error = c->error;
    snprintf(e->last_message, sizeof e->last_message, "%s", c->message);
    snprintf(e->last_error_message, sizeof e->last_error_message, "%s",
             c->error_message ? c->error_message : "");
    e->last_future = c->future;
    e->last_duration_ns = c->duration_ns;
}

void tl_test_capture_exceptions(tl_loop_t *loop, tl_test_exc_t *exc) {
    memset(exc, 0, sizeof *exc);
    CU_ASSERT_EQUAL(tl_loop_set_exception_handler(loop, capture, exc), 0);
}

tl_loop_t *tl_test_loop(void) {
    tl_loop_t *loop = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(NULL, &loop), 0);
    return loop;
}

void tl_test_loop_free(tl_loop_t *loop) {
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

/* The netstack named by TL_NETSTACK ("kernel" by default); the test
 * stacks (tests/ns_user.c) override this weak default. */
__attribute__((weak)) const tl_netstack_ops_t *
tl_test_netstack_by_name(const char *name, void **config) {
    *config = NULL;
    return name == NULL || strcmp(name, "kernel") == 0 ? tl_netstack_kernel()
                                                       : NULL;
}

const char *tl_test_netstack_name(void) {
    const char *n = getenv("TL_NETSTACK");
    return n && *n ? n : "kernel";
}

tl_loop_t *tl_test_net_loop(void) {
    tl_loop_t *loop = tl_test_loop();
    void *config = NULL;
    const tl_netstack_ops_t *ops =
        tl_test_netstack_by_name(tl_test_netstack_name(), &config);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ops);
    CU_ASSERT_EQUAL_FATAL(tl_loop_set_netstack(loop, ops, config), 0);
    return loop;
}

const char *tl_test_build_dir(void) {
    const char *b = getenv("TL_TEST_BUILD");
    return b && *b ? b : "build";
}

/* ---- running ---------------------------------------------------------- */

/* CUnit calls test functions without arguments, so every test goes through
 * this trampoline, which finds the real function and checks for leaks. */
static void trampoline(void) {
    const char *suite = CU_get_current_suite()->pName;
    const char *test = CU_get_current_test()->pName;
    for (int s = 0; s < nsuites; s++) {
        if (strcmp(suites[s].name, suite) != 0)
            continue;
        for (const tl_test_case_t *c = suites[s].cases; c->name; c++) {
            if (strcmp(c->name, test) != 0)
                continue;
            long before = live;
            fail_at = 0;
            count = 0;
            c->fn();
            fail_at = 0;
            if (live != before)
                fprintf(stderr, "\n  %s/%s: %ld tulip allocation(s) leaked\n",
                        suite, test, live - before);
            CU_ASSERT_EQUAL(live, before);
            return;
        }
    }
}

static int wanted(const char *name, int argc, char **argv) {
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv) {
    tl_allocator_t a = {sizeof a, t_malloc, t_realloc, t_free, NULL};
    if (tl_set_allocator(&a) != 0)
        return 2;
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    for (int s = 0; s < nsuites; s++) {
        if (!wanted(suites[s].name, argc, argv))
            continue;
        CU_pSuite suite = CU_add_suite(suites[s].name, NULL, NULL);
        for (const tl_test_case_t *c = suites[s].cases; c->name; c++)
            CU_add_test(suite, c->name, trampoline);
    }
    CU_basic_set_mode(getenv("TL_TEST_VERBOSE") ? CU_BRM_VERBOSE : CU_BRM_NORMAL);
    CU_basic_run_tests();
    unsigned ran = CU_get_number_of_tests_run();
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned bad_asserts = CU_get_number_of_failures();
    CU_cleanup_registry();
    printf("\n%u passed, %u failed\n", ran - failed, failed);
    return (ran == 0 || failed || bad_asserts) ? 1 : 0;
}
