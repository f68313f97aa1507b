/* core: error codes, names, version, monotonic time, allocator hooks. */
#include <errno.h>
#include <string.h>

#include "tl_test.h"

static void test_error_codes_are_negative_and_named(void) {
#define CHECK(name, value, msg)                                   \
    CU_ASSERT(TL_##name < 0);                                     \
    CU_ASSERT_STRING_EQUAL(tl_err_name(TL_##name), "TL_" #name);  \
    CU_ASSERT_STRING_EQUAL(tl_strerror(TL_##name), msg);
    TL_ERRNO_MAP(CHECK)
#undef CHECK
}

static void test_error_numbers_are_fixed(void) {
    /* The ABI promises these numbers on every platform. */
    CU_ASSERT_EQUAL(TL_EAGAIN, -11);
    CU_ASSERT_EQUAL(TL_EINVAL, -22);
    CU_ASSERT_EQUAL(TL_ENOMEM, -12);
    CU_ASSERT_EQUAL(TL_ECANCELLED, -125);
    CU_ASSERT_EQUAL(TL_ETIMEDOUT, -110);
    CU_ASSERT_EQUAL(TL_ECONNRESET, -104);
    CU_ASSERT_EQUAL(TL_ECLOSED, -3002);
}

static void test_unknown_codes_have_a_message(void) {
    CU_ASSERT_STRING_EQUAL(tl_strerror(0), "success");
    CU_ASSERT_STRING_EQUAL(tl_err_name(0), "TL_OK");
    CU_ASSERT_STRING_EQUAL(tl_strerror(-123456), "unknown error");
    CU_ASSERT_STRING_EQUAL(tl_err_name(-123456), "TL_EUNKNOWN");
    CU_ASSERT_STRING_EQUAL(tl_strerror(42), "unknown error");
}

static void test_sys_errors_translate(void) {
    CU_ASSERT_EQUAL(tl_translate_sys_error(0), 0);
    CU_ASSERT_EQUAL(tl_translate_sys_error(EAGAIN), TL_EAGAIN);
    CU_ASSERT_EQUAL(tl_translate_sys_error(EWOULDBLOCK), TL_EAGAIN);
    CU_ASSERT_EQUAL(tl_translate_sys_error(-ECONNRESET), TL_ECONNRESET);
    CU_ASSERT_EQUAL(tl_translate_sys_error(ECANCELED), TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_translate_sys_error(EMFILE), TL_EMFILE);
    CU_ASSERT_EQUAL(tl_translate_sys_error(99999), TL_EUNKNOWN);
}

static void test_version_matches_header(void) {
    CU_ASSERT_EQUAL(tl_version(), TL_VERSION_HEX);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", TL_VERSION_MAJOR, TL_VERSION_MINOR,
             TL_VERSION_PATCH);
    CU_ASSERT_STRING_EQUAL(tl_version_string(), want);
}

static void test_monotonic_time_advances(void) {
    uint64_t a = tl_now_ns();
    uint64_t b = tl_now_ns();
    CU_ASSERT(b >= a);
    CU_ASSERT(a > 0);
}

static void test_allocator_rejects_incomplete_tables(void) {
    tl_allocator_t cur;
    CU_ASSERT_EQUAL(tl_get_allocator(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_get_allocator(&cur), 0);
    tl_allocator_t bad = cur;
    bad.free = NULL;
    CU_ASSERT_EQUAL(tl_set_allocator(&bad), TL_EINVAL);
    bad = cur;
    bad.size = 4;
    CU_ASSERT_EQUAL(tl_set_allocator(&bad), TL_EINVAL);
    tl_allocator_t after;
    CU_ASSERT_EQUAL(tl_get_allocator(&after), 0);
    CU_ASSERT_PTR_EQUAL(after.malloc, cur.malloc);
}

static void test_allocator_hook_sees_loop_allocations(void) {
    long before = tl_test_alloc_count();
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT(tl_test_alloc_count() > before);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(core,
              TL_TEST(test_error_codes_are_negative_and_named),
              TL_TEST(test_error_numbers_are_fixed),
              TL_TEST(test_unknown_codes_have_a_message),
              TL_TEST(test_sys_errors_translate),
              TL_TEST(test_version_matches_header),
              TL_TEST(test_monotonic_time_advances),
              TL_TEST(test_allocator_rejects_incomplete_tables),
              TL_TEST(test_allocator_hook_sees_loop_allocations))
