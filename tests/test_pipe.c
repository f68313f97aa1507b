/*
 * Pipe transports (always the kernel, whatever the loop's netstack:
 * these tests use tl_test_net_loop on purpose) and
 * tl_connect_accepted_socket.
 */
#include "transport_test.h"

#include <fcntl.h>
#include <unistd.h>

static void test_read_pipe_delivers_then_eof(void) {
    tl_loop_t *loop = tl_test_net_loop();
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    rec_t r = {.eof_keep = 1}; /* a read pipe closes at EOF anyway */
    tl_transport_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_connect_read_pipe(loop, &rec_proto, &r, fds[0],
                                               &t), 0);
    CU_ASSERT_EQUAL(write(fds[1], "abc", 3), 3);
    CU_ASSERT_TRUE(run_until_len(loop, &r, 3));
    CU_ASSERT_EQUAL(tl_transport_write(t, "x", 1), TL_ENOTSUP);
    CU_ASSERT_EQUAL(tl_transport_can_write_eof(t), 0);
    CU_ASSERT_EQUAL(tl_transport_write_eof(t), TL_ENOTSUP);
    tl_fd_t fd;
    CU_ASSERT_EQUAL(tl_transport_get_fileno(t, &fd), 0);
    CU_ASSERT_EQUAL(fd, fds[0]);
    close(fds[1]);
    CU_ASSERT_TRUE(run_until(loop, &r.lost));
    CU_ASSERT_STRING_EQUAL(r.events, "MDEL");
    CU_ASSERT_EQUAL(r.lost_error, 0);
    tl_test_loop_free(loop);
    rec_free(&r);
}

static void test_write_pipe_reader_closes_is_epipe(void) {
    tl_loop_t *loop = tl_test_net_loop();
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    rec_t r = {0};
    tl_transport_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_connect_write_pipe(loop, &rec_proto, &r, fds[1],
                                                &t), 0);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(t), TL_ENOTSUP);
    CU_ASSERT_EQUAL(tl_transport_write(t, "hi", 2), 0);
    char b[4];
    run_some(loop, 2);
    CU_ASSERT_EQUAL(read(fds[0], b, sizeof b), 2);
    close(fds[0]);
    CU_ASSERT_TRUE(run_until(loop, &r.lost));
    CU_ASSERT_EQUAL(r.lost_error, TL_EPIPE);
    CU_ASSERT_STRING_EQUAL(r.events, "ML");
    tl_test_loop_free(loop);
    rec_free(&r);
}

static void test_write_pipe_write_eof_closes(void) {
    tl_loop_t *loop = tl_test_net_loop();
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    rec_t r = {0}, rr = {0};
    tl_transport_t *t, *rt;
    CU_ASSERT_EQUAL_FATAL(tl_connect_write_pipe(loop, &rec_proto, &r, fds[1],
                                                &t), 0);
    CU_ASSERT_EQUAL_FATAL(tl_connect_read_pipe(loop, &rec_proto, &rr, fds[0],
                                               &rt), 0);
    CU_ASSERT_EQUAL(tl_transport_can_write_eof(t), 1);
    CU_ASSERT_EQUAL(tl_transport_write(t, "end", 3), 0);
    CU_ASSERT_EQUAL(tl_transport_write_eof(t), 0);
    CU_ASSERT_TRUE(run_until(loop, &r.lost));
    CU_ASSERT_EQUAL(r.lost_error, 0);
    CU_ASSERT_TRUE(run_until(loop, &rr.lost));
    CU_ASSERT_EQUAL(rr.len, 3);
    CU_ASSERT_STRING_EQUAL(rr.events, "MDEL");
    tl_test_loop_free(loop);
    rec_free(&r);
    rec_free(&rr);
}

/* A full pipe: the write buffer grows, pause_writing, the reader drains,
 * resume_writing, every byte in order. */
static void test_write_pipe_flow_control(void) {
    tl_loop_t *loop = tl_test_net_loop();
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    rec_t r = {0};
    tl_transport_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_connect_write_pipe(loop, &rec_proto, &r, fds[1],
                                                &t), 0);
    run_some(loop, 1);
    size_t n = 1 << 20;
    unsigned char *b = malloc(n), *got = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 7 + (i >> 9));
    CU_ASSERT_EQUAL(tl_transport_write(t, b, n), 0);
    CU_ASSERT_TRUE(r.paused);
    CU_ASSERT_TRUE(tl_transport_get_write_buffer_size(t) > 65536);
    size_t have = 0;
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (have < n && tl_now_ns() < end) {
        ssize_t k = read(fds[0], got + have, n - have);
        if (k > 0)
            have += (size_t)k;
        tl_loop_run_once(loop, 0);
    }
    CU_ASSERT_EQUAL(have, n);
    CU_ASSERT_TRUE(memcmp(got, b, n) == 0);
    CU_ASSERT_EQUAL(r.pauses, 1);
    CU_ASSERT_EQUAL(r.resumes, 1);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(t), 0);
    free(b);
    free(got);
    close(fds[0]);
    tl_test_loop_free(loop);
    rec_free(&r);
}

static void test_pipe_bad_arguments(void) {
    tl_loop_t *loop = tl_test_net_loop();
    tl_transport_t *t;
    rec_t r = {0};
    CU_ASSERT_EQUAL(tl_connect_read_pipe(loop, &rec_proto, &r, -1, &t),
                    TL_EBADF);
    CU_ASSERT_EQUAL(tl_connect_read_pipe(loop, NULL, &r, 0, &t), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_connect_write_pipe(NULL, &rec_proto, &r, 1, &t),
                    TL_EINVAL);
    tl_test_loop_free(loop);
}

/* ---- kernel: an accepted socket ----------------------------------------- */

static void test_connect_accepted_socket(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    rec_t r = {.echo = 1};
    tl_transport_t *t;
    CU_ASSERT_EQUAL_FATAL(
        tl_connect_accepted_socket(loop, &rec_proto, &r, sv[0], &t), 0);
    CU_ASSERT_EQUAL(write(sv[1], "ping", 4), 4);
    CU_ASSERT_TRUE(run_until_len(loop, &r, 4));
    char b[8];
    run_some(loop, 1);
    CU_ASSERT_EQUAL(read(sv[1], b, sizeof b), 4);
    close(sv[1]);
    CU_ASSERT_TRUE(run_until(loop, &r.lost));
    CU_ASSERT_STRING_EQUAL(r.events, "MDEL");
    tl_test_loop_free(loop);
    rec_free(&r);
}

TL_TEST_SUITE(pipe,
              TL_TEST(test_read_pipe_delivers_then_eof),
              TL_TEST(test_write_pipe_reader_closes_is_epipe),
              TL_TEST(test_write_pipe_write_eof_closes),
              TL_TEST(test_write_pipe_flow_control),
              TL_TEST(test_pipe_bad_arguments));

TL_TEST_SUITE(pipe_kernel, TL_TEST(test_connect_accepted_socket));
