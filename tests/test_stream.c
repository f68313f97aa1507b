/* stream: asyncio's streams (open_connection, start_server, StreamReader,
 * StreamWriter) over real loopback connections, on the netstack that
 * TL_NETSTACK names (tl_test_net_loop). A few tests look inside the stream
 * (transport/stream_int.h) to check what the API cannot show: the buffer
 * never grows past limit + one delivery, and a late cancellation gives
 * its bytes back. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tl_test.h"
#include "transport/stream_int.h"

#define MS 1000000LL

/* ---- fixtures ---------------------------------------------------------- */

typedef struct world world_t;
typedef int (*client_fn_t)(world_t *w);

struct world {
    tl_loop_t *loop;
    tl_server_t *srv;
    char port[16];
    tl_stream_options_t opts;     /* the clients' */
    client_fn_t client;
    /* what the handler does */
    int (*serve)(world_t *w, tl_stream_t *s);
    tl_stream_t *server_side;     /* the last handler's stream */
    tl_future_t *gate;            /* handlers may wait on it */
    int handled, handler_rc;
    int n;                        /* a size or count the test sets */
    char unix_path[108];
};

static int handler(tl_stream_t *s, void *ctx) {
    world_t *w = ctx;
    w->server_side = s;
    int rc = w->serve ? w->serve(w, s) : 0;
    w->handler_rc = rc;
    w->handled++;
    if (w->server_side == s)
        w->server_side = NULL;
    return rc == TL_ECANCELLED ? rc : 0;
}

static void loopback(tl_sockaddr_t *a) {
    memset(a, 0, sizeof *a);
    struct sockaddr_in *in = (struct sockaddr_in *)&a->u;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->len = sizeof *in;
}

static void world_start(world_t *w, const tl_stream_options_t *server_opts) {
    w->loop = tl_test_net_loop();
    tl_sockaddr_t a;
    loopback(&a);
    CU_ASSERT_EQUAL_FATAL(tl_start_server_addrs(w->loop, handler, w, &a, 1,
                                                server_opts, &w->srv), 0);
    tl_sockaddr_t bound;
    CU_ASSERT_EQUAL_FATAL(tl_server_sockets(w->srv, &bound, 1), 1);
    snprintf(w->port, sizeof w->port, "%u",
             ntohs(((struct sockaddr_in *)&bound.u)->sin_port));
}

static void run(tl_loop_t *loop, tl_future_t *f) {
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
}

static void world_end(world_t *w) {
    if (w->gate) {
        tl_future_cancel(w->gate, NULL);
        tl_future_unref(w->gate);
    }
    if (w->srv) {
        tl_future_t *f;
        CU_ASSERT_EQUAL(tl_server_close(w->srv), 0);
        CU_ASSERT_EQUAL_FATAL(tl_server_wait_closed(w->srv, &f), 0);
        run(w->loop, f);
        tl_future_unref(f);
        tl_server_free(w->srv);
    }
    tl_test_loop_free(w->loop);
}

static int client_main(void *arg, void **result) {
    (void)result;
    world_t *w = arg;
    return w->client(w);
}

/* Run w->client in a task to its end; returns its outcome. */
static int run_client(world_t *w, client_fn_t fn) {
    w->client = fn;
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(w->loop, client_main, w, NULL, &t), 0);
    int rc = tl_loop_run_until_complete(w->loop, tl_task_future(t), NULL);
    tl_task_unref(t);
    return rc;
}

static tl_stream_t *connect_(world_t *w) {
    tl_stream_t *s = NULL;
    int rc = tl_open_connection("127.0.0.1", w->port, &w->opts, &s);
    CU_ASSERT_EQUAL(rc, 0);
    return rc ? NULL : s;
}

/* ---- handlers ---------------------------------------------------------- */

/* Echo lines until EOF. */
static int serve_echo_lines(world_t *w, tl_stream_t *s) {
    (void)w;
    char line[256];
    for (;;) {
        size_t got;
        int rc = tl_stream_readline(s, line, sizeof line, &got);
        if (rc)
            return rc;
        if (got == 0)
            return 0;
        if ((rc = tl_stream_write(s, line, got)) || (rc = tl_stream_drain(s)))
            return rc;
    }
}

/* Write a fixed script (with gaps, so it arrives in pieces), then return. */
static const char *script[8];
static int script_gap_ms;

static int serve_script(world_t *w, tl_stream_t *s) {
    (void)w;
    for (int i = 0; script[i]; i++) {
        int rc = tl_stream_write(s, script[i], strlen(script[i]));
        if (rc == 0)
            rc = tl_stream_drain(s);
        if (rc == 0 && script_gap_ms)
            rc = tl_sleep(script_gap_ms * MS);
        if (rc)
            return rc;
    }
    return 0; /* the stream closes: the client sees EOF */
}

/* Wait on the gate, then read everything until EOF (counting in w->n). */
static int serve_sink_after_gate(world_t *w, tl_stream_t *s) {
    int rc = tl_await(w->gate, NULL);
    if (rc)
        return rc;
    static char buf[65536];
    for (;;) {
        size_t got;
        if ((rc = tl_stream_read(s, buf, sizeof buf, &got)) || got == 0)
            return rc;
        w->n += (int)got;
    }
}

/* Wait on the gate only (the connection stays open, never read). */
static int serve_hold(world_t *w, tl_stream_t *s) {
    (void)s;
    return tl_await(w->gate, NULL);
}

/* ---- echo -------------------------------------------------------------- */

static int echo_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    char buf[64];
    size_t got = 0;
    CU_ASSERT_EQUAL(tl_stream_write(s, "hello\nwor", 9), 0);
    CU_ASSERT_EQUAL(tl_stream_write(s, "ld\n", 3), 0);
    CU_ASSERT_EQUAL(tl_stream_drain(s), 0);
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, sizeof buf, &got), 0);
    CU_ASSERT(got == 6 && memcmp(buf, "hello\n", 6) == 0);
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, sizeof buf, &got), 0);
    CU_ASSERT(got == 6 && memcmp(buf, "world\n", 6) == 0);
    CU_ASSERT_EQUAL(tl_stream_can_write_eof(s), 1);
    CU_ASSERT_EQUAL(tl_stream_write_eof(s), 0);
    /* The handler sees EOF, returns, and its stream closes. */
    CU_ASSERT_EQUAL(tl_stream_read(s, buf, sizeof buf, &got), 0);
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT_EQUAL(tl_stream_at_eof(s), 1);
    CU_ASSERT_EQUAL(tl_stream_is_closing(s), 0);
    CU_ASSERT_EQUAL(tl_stream_close(s), 0);
    CU_ASSERT_EQUAL(tl_stream_is_closing(s), 1);
    CU_ASSERT_EQUAL(tl_stream_wait_closed(s), 0);
    CU_ASSERT_PTR_NULL(tl_stream_transport(s));
    tl_stream_free(s);
    return 0;
}

static void test_echo_client_server_with_readline(void) {
    world_t w = {0};
    w.serve = serve_echo_lines;
    world_start(&w, NULL);
    CU_ASSERT_EQUAL(run_client(&w, echo_client), 0);
    CU_ASSERT_EQUAL(w.handled, 1);
    CU_ASSERT_EQUAL(w.handler_rc, 0);
    world_end(&w);
}

/* ---- reading ----------------------------------------------------------- */

static int incomplete_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    char buf[16] = {0};
    size_t got = 99;
    CU_ASSERT_EQUAL(tl_stream_read(s, buf, 0, &got), 0); /* read(0): b'' */
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT_EQUAL(tl_stream_at_eof(s), 0);
    CU_ASSERT_EQUAL(tl_stream_readexactly(s, buf, 10, &got), TL_EINCOMPLETE);
    CU_ASSERT_EQUAL(got, 5);
    CU_ASSERT_EQUAL(memcmp(buf, "abcde", 5), 0);
    CU_ASSERT_EQUAL(tl_stream_at_eof(s), 1); /* the partial was consumed */
    CU_ASSERT_EQUAL(tl_stream_readexactly(s, buf, 0, &got), 0);
    CU_ASSERT_EQUAL(tl_stream_read(s, buf, sizeof buf, &got), 0);
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, sizeof buf, &got), 0);
    CU_ASSERT_EQUAL(got, 0);
    tl_stream_free(s);
    return 0;
}

static void test_readexactly_at_eof_is_incomplete_with_the_partial_bytes(void) {
    world_t w = {0};
    script[0] = "ab";
    script[1] = "cde";
    script[2] = NULL;
    script_gap_ms = 1;
    w.serve = serve_script;
    world_start(&w, NULL);
    CU_ASSERT_EQUAL(run_client(&w, incomplete_client), 0);
    world_end(&w);
}

static int split_sep_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    char buf[64];
    size_t got = 0;
    CU_ASSERT_EQUAL(tl_stream_readuntil(s, "--END--", 7, buf, sizeof buf, &got), 0);
    CU_ASSERT(got == 12 && memcmp(buf, "first--END--", 12) == 0);
    CU_ASSERT_EQUAL(tl_stream_readuntil(s, "--END--", 7, buf, sizeof buf, &got), 0);
    CU_ASSERT(got == 8 && memcmp(buf, "2--END--", 8) == 0);
    /* EOF without the separator: the rest, TL_EINCOMPLETE. */
    CU_ASSERT_EQUAL(tl_stream_readuntil(s, "--END--", 7, buf, sizeof buf, &got),
                    TL_EINCOMPLETE);
    CU_ASSERT(got == 4 && memcmp(buf, "tail", 4) == 0);
    CU_ASSERT_EQUAL(tl_stream_readuntil(s, "--END--", 7, buf, sizeof buf, &got),
                    TL_EINCOMPLETE);
    CU_ASSERT_EQUAL(got, 0);
    tl_stream_free(s);
    return 0;
}

static void test_readuntil_finds_a_separator_split_across_packets(void) {
    world_t w = {0};
    script[0] = "first--E";
    script[1] = "N";
    script[2] = "D--2--";
    script[3] = "END--t";
    script[4] = "ail";
    script[5] = NULL;
    script_gap_ms = 2;
    w.serve = serve_script;
    world_start(&w, NULL);
    CU_ASSERT_EQUAL(run_client(&w, split_sep_client), 0);
    world_end(&w);
}

static int overrun_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    char buf[128];
    size_t got = 9;
    /* 40 bytes without a newline, limit 16: overrun, and the data stays. */
    CU_ASSERT_EQUAL(tl_stream_readuntil(s, "\n", 1, buf, sizeof buf, &got),
                    TL_ELIMITOVERRUN);
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT_EQUAL(tl_stream_readexactly(s, buf, 41, &got), 0);
    CU_ASSERT_EQUAL(memcmp(buf, "0123456789012345678901234567890123456789\n", 41), 0);
    /* A line that fits the limit but not the caller's buffer. */
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, 4, &got), TL_ENOBUFS);
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, sizeof buf, &got), 0);
    CU_ASSERT(got == 6 && memcmp(buf, "short\n", 6) == 0);
    /* readline drops an overlong line through its newline. */
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, sizeof buf, &got), TL_ELIMITOVERRUN);
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, sizeof buf, &got), 0);
    CU_ASSERT(got == 5 && memcmp(buf, "next\n", 5) == 0);
    tl_stream_free(s);
    return 0;
}

static void test_limit_overrun_leaves_the_data_and_readline_drops_the_line(void) {
    world_t w = {0};
    script[0] = "0123456789012345678901234567890123456789\nshort\n";
    script[1] = "abcdefghijabcdefghijabcdefghij\nnext\n";
    script[2] = NULL;
    script_gap_ms = 2;
    w.serve = serve_script;
    w.opts = (tl_stream_options_t){.size = sizeof w.opts, .limit = 16};
    world_start(&w, NULL);
    CU_ASSERT_EQUAL(run_client(&w, overrun_client), 0);
    world_end(&w);
}

/* The peer sends 1 MiB; the client reads 1 KiB at a time, yielding between
 * reads. The buffer pauses the transport at the limit. */
static size_t max_buffered;
static int paused_seen;

static int serve_blast(world_t *w, tl_stream_t *s) {
    (void)w;
    static unsigned char chunk[65536];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (unsigned char)(i * 7);
    for (int i = 0; i < 16; i++) {
        int rc = tl_stream_write(s, chunk, sizeof chunk);
        if (rc == 0)
            rc = tl_stream_drain(s);
        if (rc)
            return rc;
    }
    return 0;
}

static int slow_reader_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    unsigned char buf[1024];
    size_t total = 0, got;
    int bad = 0;
    for (;;) {
        int rc = tl_stream_read(s, buf, sizeof buf, &got);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        if (got == 0)
            break;
        for (size_t i = 0; i < got; i++)
            bad += buf[i] != (unsigned char)(((total + i) % 65536) * 7);
        total += got;
        size_t b = s->end - s->start;
        if (b > max_buffered)
            max_buffered = b;
        paused_seen |= s->paused;
        tl_yield();
    }
    CU_ASSERT_EQUAL(total, 16 * 65536);
    CU_ASSERT_EQUAL(bad, 0);
    tl_stream_free(s);
    return 0;
}

static void test_reading_pauses_when_the_buffer_reaches_the_limit(void) {
    world_t w = {0};
    w.serve = serve_blast;
    w.opts = (tl_stream_options_t){.size = sizeof w.opts, .limit = 16384};
    max_buffered = 0;
    paused_seen = 0;
    world_start(&w, NULL);
    CU_ASSERT_EQUAL(run_client(&w, slow_reader_client), 0);
    CU_ASSERT_EQUAL(paused_seen, 1);
    /* limit + one delivery (the transports read up to 256 KiB at a time) */
    CU_ASSERT(max_buffered <= 16384 + 256 * 1024);
    CU_ASSERT(max_buffered >= 16384);
    world_end(&w);
}

/* ---- writing and drain ------------------------------------------------- */

/* Lock a stream's kernel socket buffers (SO_SNDBUF 64 KiB, SO_RCVBUF 256
 * KiB; doubled by the kernel), so what the kernel can hold of it is bounded
 * (under 1 MiB) instead of growing with autotuning. No descriptor (the
 * user-space stack): its window is fixed already. */
static void lock_kernel_buffers(tl_stream_t *s) {
    tl_fd_t fd;
    if (s && tl_transport_get_fileno(tl_stream_transport(s), &fd) == 0) {
        int snd = 64 * 1024, rcv = 256 * 1024;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    }
}

/* Write until the transport pauses writing (the peer does not read) and
 * holds more than the kernel could ever take off it: the writes do not
 * yield, so nothing leaves the buffer meanwhile, and afterwards the
 * buffer stays above the low-water mark however long the test waits
 * (it used to stop at the first pause, just above high, and the kernel
 * could then drain it to low under load: a flaky drain test). */
static int fill(world_t *w, tl_stream_t *s) {
    static unsigned char chunk[65536];
    tl_transport_t *t = tl_stream_transport(s);
    for (int i = 0; i < 5000 && w->server_side == NULL; i++)
        if (tl_sleep(MS)) /* the handler starts on the server's side */
            break;
    CU_ASSERT_PTR_NOT_NULL(w->server_side);
    lock_kernel_buffers(s);
    lock_kernel_buffers(w->server_side);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(t, 65536, 16384), 0);
    for (int i = 0; i < 4096 && tl_transport_get_write_buffer_size(t) < (2u << 20);
         i++) {
        int rc = tl_stream_write(s, chunk, sizeof chunk);
        if (rc)
            return rc;
    }
    CU_ASSERT(tl_transport_get_write_buffer_size(t) >= (2u << 20));
    CU_ASSERT_EQUAL(s->wpaused, 1);
    return 0;
}

static int drain_waits_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    CU_ASSERT_EQUAL(fill(w, s), 0);
    tl_future_t *d, *d2;
    CU_ASSERT_EQUAL_FATAL(tl_stream_drain_future(s, &d), 0);
    CU_ASSERT_EQUAL(tl_stream_drain_future(s, &d2), TL_EBUSY);
    CU_ASSERT_EQUAL(tl_sleep(5 * MS), 0);
    CU_ASSERT_EQUAL(tl_future_done(d), 0); /* blocked: nobody reads */
    CU_ASSERT_EQUAL(tl_future_set_result(w->gate, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_await(d, NULL), 0); /* the peer reads: it completes */
    tl_future_unref(d);
    CU_ASSERT_EQUAL(tl_stream_drain(s), 0);
    CU_ASSERT_EQUAL(tl_stream_close(s), 0);
    CU_ASSERT_EQUAL(tl_stream_wait_closed(s), 0);
    tl_stream_free(s);
    return 0;
}

static void test_drain_waits_while_the_peer_does_not_read(void) {
    world_t w = {0};
    w.serve = serve_sink_after_gate;
    world_start(&w, NULL);
    CU_ASSERT_EQUAL_FATAL(tl_future_new(w.loop, &w.gate), 0);
    CU_ASSERT_EQUAL(run_client(&w, drain_waits_client), 0);
    world_end(&w);
}

static int drain_reset_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    CU_ASSERT_EQUAL(fill(w, s), 0);
    /* The peer resets the connection while we wait. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(w->server_side);
    CU_ASSERT_EQUAL(tl_transport_abort(tl_stream_transport(w->server_side)), 0);
    int rc = tl_stream_drain(s);
    CU_ASSERT(rc < 0 && rc != TL_ECANCELLED);
    /* The error is the connection's from now on. */
    CU_ASSERT_EQUAL(tl_stream_write(s, "x", 1), rc);
    char b[4];
    size_t got;
    CU_ASSERT_EQUAL(tl_stream_read(s, b, sizeof b, &got), rc);
    CU_ASSERT_EQUAL(tl_stream_wait_closed(s), rc);
    tl_stream_free(s);
    return 0;
}

static void test_drain_fails_when_the_peer_resets(void) {
    world_t w = {0};
    w.serve = serve_hold;
    world_start(&w, NULL);
    CU_ASSERT_EQUAL_FATAL(tl_future_new(w.loop, &w.gate), 0);
    CU_ASSERT_EQUAL(run_client(&w, drain_reset_client), 0);
    world_end(&w);
}

static int closed_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    CU_ASSERT_EQUAL(tl_stream_close(s), 0);
    CU_ASSERT_EQUAL(tl_stream_close(s), 0);
    CU_ASSERT_EQUAL(tl_stream_write(s, "x", 1), TL_ECLOSED);
    tl_iovec_t iov = {"x", 1};
    CU_ASSERT_EQUAL(tl_stream_writelines(s, &iov, 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_stream_write_eof(s), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_stream_wait_closed(s), 0);
    CU_ASSERT_EQUAL(tl_stream_drain(s), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_stream_write(s, "x", 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_stream_can_write_eof(s), 0);
    tl_stream_free(s);
    return 0;
}

static void test_write_after_close_fails(void) {
    world_t w = {0};
    w.serve = serve_echo_lines;
    world_start(&w, NULL);
    CU_ASSERT_EQUAL(run_client(&w, closed_client), 0);
    world_end(&w);
}

/* ---- concurrency, cancellation, freeing -------------------------------- */

typedef struct reader {
    tl_stream_t *s;
    int rc;
    size_t got;
    char buf[32];
    int done;
} reader_t;

static int reader_main(void *arg, void **result) {
    (void)result;
    reader_t *r = arg;
    r->rc = tl_stream_read(r->s, r->buf, sizeof r->buf, &r->got);
    r->done = 1;
    return 0;
}

static int busy_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    reader_t r = {s, 1, 0, {0}, 0};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(w->loop, reader_main, &r, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_yield(), 0); /* r waits in its read */
    char b[8];
    size_t got;
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_stream_read(s, b, sizeof b, &got), TL_EBUSY);
    CU_ASSERT_EQUAL(tl_stream_readexactly_future(s, b, 1, &f), TL_EBUSY);
    CU_ASSERT_EQUAL(tl_stream_readuntil_future(s, "\n", 1, b, sizeof b, &f), TL_EBUSY);
    CU_ASSERT_EQUAL(tl_stream_write(s, "ping\n", 5), 0);
    CU_ASSERT_EQUAL(tl_await(tl_task_future(t), NULL), 0);
    CU_ASSERT_EQUAL(r.rc, 0);
    CU_ASSERT(r.got == 5 && memcmp(r.buf, "ping\n", 5) == 0);
    tl_task_unref(t);
    tl_stream_free(s);
    return 0;
}

static void test_a_second_concurrent_read_is_busy(void) {
    world_t w = {0};
    w.serve = serve_echo_lines;
    world_start(&w, NULL);
    CU_ASSERT_EQUAL(run_client(&w, busy_client), 0);
    world_end(&w);
}

static int cancel_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    reader_t r = {s, 1, 0, {0}, 0};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(w->loop, reader_main, &r, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_yield(), 0);
    CU_ASSERT_EQUAL(tl_task_cancel(t, NULL), 1);
    CU_ASSERT_EQUAL(tl_await(tl_task_future(t), NULL), 0);
    CU_ASSERT_EQUAL(r.rc, TL_ECANCELLED);
    tl_task_unref(t);
    /* Nothing was lost: the echo comes to the next read. */
    CU_ASSERT_EQUAL(tl_stream_write(s, "abc\n", 4), 0);
    char b[8];
    size_t got;
    CU_ASSERT_EQUAL(tl_stream_readexactly(s, b, 4, &got), 0);
    CU_ASSERT_EQUAL(memcmp(b, "abc\n", 4), 0);

    /* A read that completed, its task cancelled before it resumed: the
     * bytes go back to the stream. Deliver by hand to control the timing. */
    reader_t r2 = {s, 1, 0, {0}, 0};
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(w->loop, reader_main, &r2, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_yield(), 0);
    tl__stm_protocol.data_received(s->t, "late", 4, s);
    CU_ASSERT_PTR_NOT_NULL(s->held_fut); /* completed, not resumed */
    CU_ASSERT_EQUAL(tl_task_cancel(t, NULL), 1);
    CU_ASSERT_EQUAL(tl_await(tl_task_future(t), NULL), 0);
    CU_ASSERT_EQUAL(r2.rc, TL_ECANCELLED);
    tl_task_unref(t);
    CU_ASSERT_EQUAL(tl_stream_readexactly(s, b, 4, &got), 0);
    CU_ASSERT_EQUAL(memcmp(b, "late", 4), 0);

    /* The future form cancelled by its owner: the same. */
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_stream_read_future(s, b, sizeof b, &f), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_stream_write(s, "xyz\n", 4), 0);
    CU_ASSERT_EQUAL(tl_stream_readline(s, b, sizeof b, &got), 0);
    CU_ASSERT(got == 4 && memcmp(b, "xyz\n", 4) == 0);
    tl_stream_free(s);
    return 0;
}

static void test_a_cancelled_read_loses_no_bytes(void) {
    world_t w = {0};
    w.serve = serve_echo_lines;
    world_start(&w, NULL);
    CU_ASSERT_EQUAL(run_client(&w, cancel_client), 0);
    world_end(&w);
}

static int free_pending_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    reader_t r = {s, 1, 0, {0}, 0};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(w->loop, reader_main, &r, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_yield(), 0);
    tl_stream_free(s); /* r's read fails; the memory waits for r */
    CU_ASSERT_EQUAL(tl_await(tl_task_future(t), NULL), 0);
    CU_ASSERT_EQUAL(r.rc, TL_ECLOSED);
    tl_task_unref(t);
    return 0;
}

static void test_free_with_a_read_pending_in_another_task_fails_it_closed(void) {
    world_t w = {0};
    w.serve = serve_echo_lines;
    world_start(&w, NULL);
    CU_ASSERT_EQUAL(run_client(&w, free_pending_client), 0);
    world_end(&w);
}

/* ---- many clients, unix ------------------------------------------------- */

static int one_echo(void *arg, void **result) {
    (void)result;
    world_t *w = arg;
    tl_stream_t *s = NULL;
    int rc = tl_open_connection("127.0.0.1", w->port, NULL, &s);
    if (rc)
        return rc;
    char buf[32], line[32];
    int n = snprintf(line, sizeof line, "client %p\n", (void *)&n);
    size_t got = 0;
    if ((rc = tl_stream_write(s, line, (size_t)n)) == 0 &&
        (rc = tl_stream_readline(s, buf, sizeof buf, &got)) == 0 &&
        (got != (size_t)n || memcmp(buf, line, got) != 0))
        rc = TL_EIO;
    tl_stream_free(s);
    if (rc == 0)
        w->n++;
    return rc;
}

static void test_a_hundred_concurrent_clients(void) {
    world_t w = {0};
    w.serve = serve_echo_lines;
    world_start(&w, NULL);
    enum { N = 100 };
    tl_future_t *futs[N];
    for (int i = 0; i < N; i++) {
        tl_task_t *t;
        CU_ASSERT_EQUAL_FATAL(tl_task_spawn(w.loop, one_echo, &w, NULL, &t), 0);
        futs[i] = tl_task_future(t);
    }
    tl_future_t *g;
    CU_ASSERT_EQUAL_FATAL(tl_gather(w.loop, futs, N, 0, &g), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(w.loop, g, NULL), 0);
    tl_future_unref(g);
    for (int i = 0; i < N; i++)
        tl_future_unref(futs[i]);
    CU_ASSERT_EQUAL(w.n, N);
    world_end(&w); /* wait_closed: every handler's connection is gone */
    CU_ASSERT_EQUAL(w.handled, N);
}

static int unix_client(world_t *w) {
    tl_stream_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_open_unix_connection(w->unix_path, NULL, &s), 0);
    char buf[16];
    size_t got;
    CU_ASSERT_EQUAL(tl_stream_write(s, "unix\n", 5), 0);
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, sizeof buf, &got), 0);
    CU_ASSERT(got == 5 && memcmp(buf, "unix\n", 5) == 0);
    tl_stream_free(s);
    return 0;
}

static void unix_round(const char *path) {
    world_t w = {0};
    w.serve = serve_echo_lines;
    w.loop = tl_test_net_loop();
    snprintf(w.unix_path, sizeof w.unix_path, "%s", path);
    int rc = tl_start_unix_server(w.loop, handler, &w, path, NULL, &w.srv);
    if (rc == TL_ENOTSUP || rc == TL_EAFNOSUPPORT) { /* a stack without Unix */
        tl_test_loop_free(w.loop);
        return;
    }
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(run_client(&w, unix_client), 0);
    world_end(&w);
    CU_ASSERT_EQUAL(w.handled, 1);
}

static void test_unix_streams_on_a_path_and_an_abstract_name(void) {
    char path[108];
    snprintf(path, sizeof path, "/tmp/tl-stream-%d.sock", (int)getpid());
    unix_round(path);
    unlink(path);
    snprintf(path, sizeof path, "@tl-stream-%d", (int)getpid());
    unix_round(path);
}

/* ---- errors, OOM, loop close ------------------------------------------- */

static int args_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    char b[4];
    size_t got;
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_stream_read(NULL, b, 4, &got), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_stream_read(s, NULL, 4, &got), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_stream_readuntil(s, "", 0, b, 4, &got), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_stream_readuntil(s, NULL, 1, b, 4, &got), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_stream_read_future(s, b, 4, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_stream_drain_future(NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_stream_write(NULL, "x", 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_stream_write(s, NULL, 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_stream_at_eof(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_stream_close(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_open_connection(NULL, "1", NULL, &s), TL_EINVAL);
    CU_ASSERT_PTR_NULL(tl_stream_transport(NULL));
    tl_stream_free(NULL);
    /* A separator longer than the inline copy, through the future form. */
    char big[40], dst[64];
    memset(big, '=', sizeof big);
    CU_ASSERT_EQUAL_FATAL(tl_stream_readuntil_future(s, big, sizeof big, dst,
                                                     sizeof dst, &f), 0);
    char msg[48];
    memcpy(msg, "ab", 2);
    memset(msg + 2, '=', 40);
    CU_ASSERT_EQUAL(tl_stream_write(s, msg, 42), 0);
    CU_ASSERT_EQUAL(tl_stream_write(s, "\n", 1), 0); /* the echo handler */
    void *v;
    CU_ASSERT_EQUAL(tl_await(f, &v), 0);
    CU_ASSERT_EQUAL((size_t)(uintptr_t)v, 42);
    tl_future_unref(f);
    tl_stream_free(s);
    return 0;
}

static void test_bad_arguments_and_outside_a_task(void) {
    world_t w = {0};
    w.serve = serve_echo_lines;
    world_start(&w, NULL);
    CU_ASSERT_EQUAL(run_client(&w, args_client), 0);
    tl_stream_t *s;
    CU_ASSERT_EQUAL(tl_open_connection("127.0.0.1", w.port, NULL, &s), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_start_server_addrs(w.loop, NULL, NULL, NULL, 0, NULL, &w.srv),
                    TL_EINVAL);
    /* The future form from plain code; reads outside a task: TL_ENOTASK. */
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_open_connection_future(w.loop, "127.0.0.1", w.port,
                                                    NULL, &f), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(w.loop, f, &v), 0);
    s = v;
    char b[4];
    size_t got;
    CU_ASSERT_EQUAL(tl_stream_read(s, b, sizeof b, &got), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_stream_drain(s), TL_ENOTASK);
    tl_future_unref(f);
    tl_stream_free(s);
    /* A future dropped before it completes cleans up after itself. */
    CU_ASSERT_EQUAL_FATAL(tl_open_connection_future(w.loop, "127.0.0.1", w.port,
                                                    NULL, &f), 0);
    tl_future_unref(f);
    world_end(&w);
}

/* Every allocation of a connect + echo + close, failed in turn. */
static int oom_client(world_t *w) {
    tl_stream_t *s = NULL;
    int rc = tl_open_connection("127.0.0.1", w->port, NULL, &s);
    if (rc)
        return rc;
    char buf[16];
    size_t got;
    if ((rc = tl_stream_write(s, "oom\n", 4)) == 0)
        rc = tl_stream_readline(s, buf, sizeof buf, &got);
    tl_stream_free(s);
    return rc;
}

static void test_allocation_failures_leak_nothing(void) {
    int clean = 0;
    for (long n = 1; n < 400 && !clean; n++) {
        world_t w = {0};
        w.serve = serve_echo_lines;
        world_start(&w, NULL);
        w.client = oom_client;
        tl_task_t *t;
        CU_ASSERT_EQUAL_FATAL(tl_task_spawn(w.loop, client_main, &w, NULL, &t), 0);
        long before = tl_test_alloc_count();
        tl_test_fail_alloc_at(n);
        /* Bound the run: a failure may leave a peer waiting forever. */
        tl_future_t *to;
        int rc = tl_wait_for(tl_task_future(t), 500 * MS, &to);
        if (rc == 0) {
            rc = tl_loop_run_until_complete(w.loop, to, NULL);
            tl_future_unref(to);
        }
        clean = tl_test_alloc_count() - before < n;
        tl_test_fail_alloc_at(0);
        if (clean)
            CU_ASSERT_EQUAL(rc, 0);
        tl_task_unref(t);
        /* Close the server and let its connections end (bounded), then
         * close the loop with whatever is left. */
        tl_future_t *wc, *wto;
        CU_ASSERT_EQUAL(tl_server_close(w.srv), 0);
        if (tl_server_wait_closed(w.srv, &wc) == 0) {
            if (tl_wait_for(wc, 500 * MS, &wto) == 0) {
                tl_loop_run_until_complete(w.loop, wto, NULL);
                tl_future_unref(wto);
            }
            tl_future_unref(wc);
        }
        for (int i = 0; i < 4; i++)
            tl_loop_run_once(w.loop, 0);
        tl_server_free(w.srv);
        tl_test_loop_free(w.loop);
    }
    CU_ASSERT_EQUAL(clean, 1);
}

static tl_future_t *live_signal;

static int live_client(world_t *w) {
    tl_stream_t *s = connect_(w);
    if (s == NULL)
        return TL_EIO;
    /* A pending read (future form) and a stream left open. */
    static char b[8];
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_stream_read_future(s, b, sizeof b, &f), 0);
    tl_future_unref(f);
    return tl_future_set_result(live_signal, s, NULL);
}

static void test_loop_close_with_live_streams_leaks_nothing(void) {
    world_t w = {0};
    w.serve = serve_hold; /* the handler waits on the gate, forever */
    world_start(&w, NULL);
    CU_ASSERT_EQUAL_FATAL(tl_future_new(w.loop, &w.gate), 0);
    CU_ASSERT_EQUAL_FATAL(tl_future_new(w.loop, &live_signal), 0);
    tl_task_t *t;
    w.client = live_client;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(w.loop, client_main, &w, NULL, &t), 0);
    run(w.loop, live_signal);
    tl_task_unref(t);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_future_result(live_signal, &v), 0);
    tl_stream_t *client = v;
    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    for (int i = 0; i < 5 && w.server_side == NULL; i++)
        tl_loop_run_once(w.loop, 1 * MS); /* the handler starts and waits */
    CU_ASSERT_PTR_NOT_NULL(w.server_side);
    tl_server_free(w.srv);
    CU_ASSERT_EQUAL(tl_loop_close(w.loop), 0);
    tl_stream_free(client);
    tl_future_unref(live_signal);
    tl_future_unref(w.gate);
    CU_ASSERT_EQUAL(tl_loop_unref(w.loop), 0);
}

TL_TEST_SUITE(stream,
              TL_TEST(test_echo_client_server_with_readline),
              TL_TEST(test_readexactly_at_eof_is_incomplete_with_the_partial_bytes),
              TL_TEST(test_readuntil_finds_a_separator_split_across_packets),
              TL_TEST(test_limit_overrun_leaves_the_data_and_readline_drops_the_line),
              TL_TEST(test_reading_pauses_when_the_buffer_reaches_the_limit),
              TL_TEST(test_drain_waits_while_the_peer_does_not_read),
              TL_TEST(test_drain_fails_when_the_peer_resets),
              TL_TEST(test_write_after_close_fails),
              TL_TEST(test_a_second_concurrent_read_is_busy),
              TL_TEST(test_a_cancelled_read_loses_no_bytes),
              TL_TEST(test_free_with_a_read_pending_in_another_task_fails_it_closed),
              TL_TEST(test_a_hundred_concurrent_clients),
              TL_TEST(test_unix_streams_on_a_path_and_an_abstract_name),
              TL_TEST(test_bad_arguments_and_outside_a_task),
              TL_TEST(test_allocation_failures_leak_nothing),
              TL_TEST(test_loop_close_with_live_streams_leaks_nothing))
