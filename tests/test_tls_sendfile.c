/*
 * sendfile through TLS (src/tls/tls_transport.c): the file is read in
 * pieces and written through the engine, as asyncio's fallback does:
 * a file between writes, offsets and counts, bad files (the future fails,
 * not the connection), flow control, close (the file goes first), abort,
 * loop close, cancel and an out-of-memory walk. Any netstack
 * (tl_test_net_loop).
 */
#include "tls_test.h"

/* ---- sendfile (read and written through the engine) ------------------------ */

/* A temporary file of n pattern bytes (unlinked: the fd keeps it). */
static int temp_file(size_t n, unsigned char **content) {
    char path[] = "/tmp/tulip-tls-sendfile-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    unlink(path);
    unsigned char *d = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        d[i] = (unsigned char)(i * 13 + (i >> 11));
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, d + off, n - off);
        CU_ASSERT_TRUE_FATAL(w > 0);
        off += (size_t)w;
    }
    *content = d;
    return fd;
}

/* The future's result: the bytes sent, or -1 (an error). */
static long sent_of(tl_future_t *f) {
    void *v = NULL;
    return tl_future_result(f, &v) == 0 ? (long)(uintptr_t)v : -1;
}

static void test_sendfile_sends_a_file_between_writes(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    size_t n = (1u << 20) + 123;
    unsigned char *d;
    int fd = temp_file(n, &d);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "pre", 3), 0);
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, fd, 0, 0, &f), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    /* A second one waits for nobody: one at a time. */
    tl_future_t *f2 = NULL;
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, fd, 0, 0, &f2), TL_EBUSY);
    CU_ASSERT_PTR_NULL(f2);
    /* Writes made meanwhile go after the file. */
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "po", 2), 0);
    tl_iovec_t iov[2] = {{"s", 1}, {"t", 1}};
    CU_ASSERT_EQUAL(tl_transport_writev(tp.c, iov, 2), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 0); /* never inside the call */
    CU_ASSERT_TRUE(run_until_len_long(loop, &s, n + 7));
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(sent_of(f), (long)n);
    CU_ASSERT_EQUAL_FATAL(s.len, n + 7);
    CU_ASSERT_EQUAL(memcmp(s.data, "pre", 3), 0);
    CU_ASSERT_EQUAL(memcmp(s.data + 3, d, n), 0);
    CU_ASSERT_EQUAL(memcmp(s.data + 3 + n, "post", 4), 0);
    /* The connection goes on. */
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "!", 1), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s, n + 8));
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(tp.c), 0);
    tl_future_unref(f);
    close(fd);
    free(d);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_sendfile_offset_and_count(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    size_t n = 200000;
    unsigned char *d;
    int fd = temp_file(n, &d);
    tl_future_t *f = NULL;
    /* A piece from the middle. */
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.s, fd, 1000, 70000, &f), 0);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(sent_of(f), 70000);
    tl_future_unref(f);
    /* count past the end: what there is. */
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.s, fd, (int64_t)n - 10, 100, &f),
                    0);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(sent_of(f), 10);
    tl_future_unref(f);
    /* count 0: to the end; an offset at or past the end: nothing. */
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.s, fd, (int64_t)n - 5, 0, &f), 0);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(sent_of(f), 5);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.s, fd, (int64_t)n + 5, 0, &f), 0);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(sent_of(f), 0);
    tl_future_unref(f);
    CU_ASSERT_TRUE(run_until_len_long(loop, &c, 70015));
    CU_ASSERT_EQUAL_FATAL(c.len, 70015);
    CU_ASSERT_EQUAL(memcmp(c.data, d + 1000, 70000), 0);
    CU_ASSERT_EQUAL(memcmp(c.data + 70000, d + n - 10, 10), 0);
    CU_ASSERT_EQUAL(memcmp(c.data + 70010, d + n - 5, 5), 0);
    close(fd);
    free(d);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_sendfile_bad_file_fails_not_the_connection(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, -1, 0, 10, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, 0, -1, 10, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, 0, 0, 10, NULL), TL_EINVAL);
    /* A descriptor that is not open: fstat says so at once (count 0)... */
    char path[] = "/tmp/tulip-tls-sendfile-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    unlink(path);
    close(fd);
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, fd, 0, 0, &f), TL_EBADF);
    CU_ASSERT_PTR_NULL(f);
    /* ... pread later (a count given): the future's error. */
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, fd, 0, 100, &f), 0);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(tl_future_error(f), TL_EBADF);
    tl_future_unref(f);
    /* A directory cannot be read. */
    int dfd = open("/tmp", O_RDONLY);
    CU_ASSERT_TRUE_FATAL(dfd >= 0);
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, dfd, 0, 100, &f), 0);
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "after", 5), 0);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(tl_future_error(f), TL_EISDIR);
    tl_future_unref(f);
    close(dfd);
    /* The connection goes on, the write made meanwhile included. */
    CU_ASSERT_TRUE(run_until_len(loop, &s, 5));
    CU_ASSERT_EQUAL(memcmp(s.data, "after", 5), 0);
    CU_ASSERT_EQUAL(c.lost, 0);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_sendfile_honours_flow_control(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    size_t n = 4u << 20;
    unsigned char *d;
    int fd = temp_file(n, &d);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(tp.s), 0);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, fd, 0, 0, &f), 0);
    run_some(loop, 50);
    /* The peer does not read: the file stops once the buffers are full. */
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_TRUE(tl_transport_get_write_buffer_size(tp.c) <= 256u << 10);
    CU_ASSERT_EQUAL(tl_transport_resume_reading(tp.s), 0);
    CU_ASSERT_TRUE(run_until_len_long(loop, &s, n));
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(sent_of(f), (long)n);
    CU_ASSERT_EQUAL_FATAL(s.len, n);
    CU_ASSERT_EQUAL(memcmp(s.data, d, n), 0);
    tl_future_unref(f);
    close(fd);
    free(d);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_close_during_sendfile_sends_the_file_first(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    size_t n = 1u << 20;
    unsigned char *d;
    int fd = temp_file(n, &d);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, fd, 0, 0, &f), 0);
    CU_ASSERT_EQUAL(tl_transport_close(tp.c), 0);
    CU_ASSERT_EQUAL(tl_transport_is_closing(tp.c), 1);
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "x", 1), TL_ECLOSED);
    CU_ASSERT_TRUE(run_until_len_long(loop, &s, n));
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(sent_of(f), (long)n);
    CU_ASSERT_EQUAL_FATAL(s.len, n);
    CU_ASSERT_EQUAL(memcmp(s.data, d, n), 0);
    /* Then close_notify: a clean end on both sides. */
    CU_ASSERT_EQUAL(s.eofs, 1);
    CU_ASSERT_EQUAL(s.lost_error, 0);
    CU_ASSERT_EQUAL(c.lost_error, 0);
    tl_future_unref(f);
    close(fd);
    free(d);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_abort_during_sendfile_fails_it(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    size_t n = 1u << 20;
    unsigned char *d;
    int fd = temp_file(n, &d);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, fd, 0, 0, &f), 0);
    run_some(loop, 2);
    CU_ASSERT_EQUAL(tl_transport_abort(tp.c), 0);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(tl_future_error(f), TL_ECLOSED);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_TRUE(s.len < n);
    tl_future_unref(f);
    close(fd);
    free(d);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_loop_close_during_sendfile(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    size_t n = 8u << 20; /* more than the socket buffers take */
    unsigned char *d;
    int fd = temp_file(n, &d);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_transport_pause_reading(tp.s), 0);
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, fd, 0, 0, &f), 0);
    run_some(loop, 5);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    tl_future_t *keep = f; /* outlives the loop */
    tpair_close(loop, &tp); /* frees everything, the future fails */
    CU_ASSERT_EQUAL(tl_future_done(keep), 1);
    CU_ASSERT_EQUAL(tl_future_error(keep), TL_ECLOSED);
    tl_future_unref(keep);
    close(fd);
    free(d);
    rec_free(&s);
    rec_free(&c);
}

static void test_sendfile_cancelled_stops(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    size_t n = 4u << 20;
    unsigned char *d;
    int fd = temp_file(n, &d);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_transport_pause_reading(tp.s), 0);
    CU_ASSERT_EQUAL(tl_transport_sendfile(tp.c, fd, 0, 0, &f), 0);
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "tail", 4), 0);
    run_some(loop, 5);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(tl_transport_resume_reading(tp.s), 0);
    /* What was encrypted arrives, then the write made meanwhile. */
    uint64_t end = tl_now_ns() + 5000000000ull;
    while ((s.len < 4 || memcmp(s.data + s.len - 4, "tail", 4) != 0) &&
           tl_now_ns() < end)
        tl_loop_run_once(loop, 10000000);
    CU_ASSERT_TRUE_FATAL(s.len >= 4 && s.len < n);
    CU_ASSERT_EQUAL(memcmp(s.data + s.len - 4, "tail", 4), 0);
    CU_ASSERT_EQUAL(memcmp(s.data, d, s.len - 4), 0);
    tl_future_unref(f);
    close(fd);
    free(d);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_sendfile_out_of_memory(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    unsigned char *d;
    int fd = temp_file(100, &d);
    tl_future_t *f = NULL;
    int rc = TL_ENOMEM, n;
    for (n = 1; n < 20; n++) {
        tl_test_fail_alloc_at(n);
        rc = tl_transport_sendfile(tp.c, fd, 0, 0, &f);
        tl_test_fail_alloc_at(0);
        if (rc == 0)
            break;
        CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        CU_ASSERT_PTR_NULL(f);
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(n > 1);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(sent_of(f), 100);
    tl_future_unref(f);
    CU_ASSERT_TRUE(run_until_len(loop, &s, 100));
    CU_ASSERT_EQUAL(memcmp(s.data, d, 100), 0);
    close(fd);
    free(d);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

TL_TEST_SUITE(tls_sendfile, TL_TEST(test_sendfile_sends_a_file_between_writes),
              TL_TEST(test_sendfile_offset_and_count),
              TL_TEST(test_sendfile_bad_file_fails_not_the_connection),
              TL_TEST(test_sendfile_honours_flow_control),
              TL_TEST(test_close_during_sendfile_sends_the_file_first),
              TL_TEST(test_abort_during_sendfile_fails_it),
              TL_TEST(test_loop_close_during_sendfile),
              TL_TEST(test_sendfile_cancelled_stops),
              TL_TEST(test_sendfile_out_of_memory));
