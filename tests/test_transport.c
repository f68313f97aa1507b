/*
 * Stream transports over the loop's netstack (tl_test_net_loop: run with
 * TL_NETSTACK=kernel|user|fault): asyncio's callback order, closing,
 * half-close, flow control both ways, buffered protocols, references,
 * loop close, bad arguments and out-of-memory walks.
 */
#include "transport_test.h"

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void pair_close(tl_loop_t *loop, pair_t *p) {
    tl_server_free(p->server);
    tl_test_loop_free(loop);
}

/* ---- callback order ------------------------------------------------------ */

static void test_connection_made_first_lost_last_once(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {.echo = 1}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "hello", 5), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &c, 5));
    CU_ASSERT_EQUAL(memcmp(c.data, "hello", 5), 0);
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    run_some(loop, 3);
    CU_ASSERT_STRING_EQUAL(c.events, "MDL");
    CU_ASSERT_STRING_EQUAL(s.events, "MDEL");
    CU_ASSERT_EQUAL(c.lost, 1);
    CU_ASSERT_EQUAL(s.lost, 1);
    CU_ASSERT_EQUAL(c.lost_error, 0);
    CU_ASSERT_EQUAL(s.lost_error, 0);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void test_no_data_before_connection_made(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    /* The server's write reaches the client; its protocol saw M first. */
    CU_ASSERT_EQUAL(tl_transport_write(p.st, "x", 1), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &c, 1));
    CU_ASSERT_EQUAL(c.events[0], 'M');
    CU_ASSERT_EQUAL(tl_transport_get_loop(p.ct), loop);
    CU_ASSERT_TRUE(tl_transport_can_write_eof(p.ct));
    pair_close(loop, &p);
    CU_ASSERT_EQUAL(c.lost_error, TL_ECLOSED);
    rec_free(&s);
    rec_free(&c);
}

/* ---- closing ------------------------------------------------------------- */

static void test_write_after_close_fails(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_is_closing(p.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_is_closing(p.ct), 1);
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "x", 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_write_eof(p.ct), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(p.ct), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_resume_reading(p.ct), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_is_reading(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void test_write_after_write_eof_fails(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {.eof_keep = 1}, c = {.eof_keep = 1};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "abc", 3), 0);
    CU_ASSERT_EQUAL(tl_transport_write_eof(p.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_write_eof(p.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "x", 1), TL_ESHUTDOWN);
    void *mem = malloc(4);
    CU_ASSERT_EQUAL(tl_transport_write_take(p.ct, mem, 4, free), TL_ESHUTDOWN);
    CU_ASSERT_TRUE(run_until(loop, &s.eofs));
    CU_ASSERT_EQUAL(s.len, 3);
    CU_ASSERT_STRING_EQUAL(s.events, "MDE");
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

/* The client half-closes; the server keeps its side open (eof_received
 * returns nonzero), can still write, and closes later. */
static void test_half_close_from_client(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {.eof_keep = 1}, c = {.eof_keep = 1};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_write_eof(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.eofs));
    run_some(loop, 3);
    CU_ASSERT_EQUAL(s.lost, 0);
    CU_ASSERT_EQUAL(tl_transport_is_closing(p.st), 0);
    CU_ASSERT_EQUAL(tl_transport_write(p.st, "late", 4), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &c, 4));
    CU_ASSERT_EQUAL(memcmp(c.data, "late", 4), 0);
    CU_ASSERT_EQUAL(tl_transport_close(p.st), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_TRUE(run_until(loop, &c.eofs));
    CU_ASSERT_EQUAL(c.lost, 0); /* half-open too: it closes when it wants */
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_STRING_EQUAL(s.events, "MEL");
    CU_ASSERT_STRING_EQUAL(c.events, "MDEL");
    CU_ASSERT_EQUAL(s.lost_error, 0);
    CU_ASSERT_EQUAL(c.lost_error, 0);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

/* The server half-closes first; the client keeps writing. */
static void test_half_close_from_server(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {.eof_keep = 0}, c = {.eof_keep = 1};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_write(p.st, "bye", 3), 0);
    CU_ASSERT_EQUAL(tl_transport_write_eof(p.st), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.eofs));
    CU_ASSERT_EQUAL(c.len, 3);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "more", 4), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s, 4));
    /* Now the client ends too; the server's eof_received returns 0 and
     * it closes itself. */
    CU_ASSERT_EQUAL(tl_transport_write_eof(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_STRING_EQUAL(s.events, "MDEL");
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void test_eof_received_zero_closes(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {.eof_keep = 0}, c = {.eof_keep = 0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_write_eof(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_STRING_EQUAL(s.events, "MEL");
    CU_ASSERT_STRING_EQUAL(c.events, "MEL");
    CU_ASSERT_EQUAL(s.lost_error, 0);
    CU_ASSERT_EQUAL(c.lost_error, 0);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void test_eof_received_null_closes(void) {
    tl_loop_t *loop = tl_test_net_loop();
    tl_protocol_t np = rec_proto;
    np.eof_received = NULL;
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, &np, NULL);
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_STRING_EQUAL(s.events, "ML");
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void fill(unsigned char *b, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((i * 131 + seed) >> 3);
}

/* The peer does not read and the kernel's buffers are bounded: more than
 * the kernel can ever take stays in the transport's buffer, so close must
 * wait for the reader, whatever the kernel's sizes. */
static void test_close_flushes_pending_data_first(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(p.st), 0);
    small_kernel_buffers(p.ct);
    small_kernel_buffers(p.st);
    size_t len = 256 * 1024;
    unsigned char *chunk = malloc(len);
    fill(chunk, len, 7);
    size_t n = write_until_buffered(p.ct, chunk, len,
                                    2 * KERNEL_HOLDS_AT_MOST);
    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_EQUAL(c.pauses, 1);
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    run_some(loop, 5);
    CU_ASSERT_EQUAL(c.lost, 0); /* still flushing */
    CU_ASSERT_TRUE(tl_transport_get_write_buffer_size(p.ct) > 65536);
    CU_ASSERT_EQUAL(tl_transport_resume_reading(p.st), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_EQUAL(s.len, n);
    CU_ASSERT_TRUE(s.len == n && is_repeated(s.data, n, chunk, len));
    CU_ASSERT_EQUAL(c.lost_error, 0);
    CU_ASSERT_EQUAL(s.lost_error, 0);
    CU_ASSERT_STRING_EQUAL(c.events, "MPRL");
    free(chunk);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void test_abort_with_data_pending(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(p.st), 0);
    small_kernel_buffers(p.ct);
    small_kernel_buffers(p.st);
    size_t len = 256 * 1024;
    unsigned char *big = calloc(1, len);
    size_t n = write_until_buffered(p.ct, big, len, 1 << 20);
    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_EQUAL(tl_transport_abort(p.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(p.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_abort(p.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_EQUAL(c.lost, 0); /* scheduled, not run inside abort */
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_EQUAL(c.lost_error, 0);
    CU_ASSERT_STRING_EQUAL(c.events, "MPL"); /* no resume after an abort */
    CU_ASSERT_EQUAL(tl_transport_resume_reading(p.st), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_TRUE(s.len <= n - (1 << 20)); /* the buffered MiB was dropped */
    free(big);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

/* ---- reading ------------------------------------------------------------- */

static void test_pause_resume_reading(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_is_reading(p.st), 1);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(p.st), 0);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(p.st), 0);
    CU_ASSERT_EQUAL(tl_transport_is_reading(p.st), 0);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "abc", 3), 0);
    CU_ASSERT_EQUAL(tl_transport_write_eof(p.ct), 0);
    run_some(loop, 20);
    CU_ASSERT_EQUAL(s.len, 0);
    CU_ASSERT_EQUAL(s.eofs, 0);
    CU_ASSERT_EQUAL(tl_transport_resume_reading(p.st), 0);
    CU_ASSERT_EQUAL(tl_transport_resume_reading(p.st), 0);
    CU_ASSERT_EQUAL(tl_transport_is_reading(p.st), 1);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_EQUAL(s.len, 3);
    CU_ASSERT_STRING_EQUAL(s.events, "MDEL");
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

/* Paused before connection_made ran: reading never starts until resumed. */
static void pause_in_made(tl_transport_t *t, void *ctx) {
    rec_made(t, ctx);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(t), 0);
}

static void test_pause_reading_in_connection_made(void) {
    tl_loop_t *loop = tl_test_net_loop();
    tl_protocol_t pp = rec_proto;
    pp.connection_made = pause_in_made;
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, &pp, NULL);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "abc", 3), 0);
    run_some(loop, 20);
    CU_ASSERT_EQUAL(s.len, 0);
    CU_ASSERT_EQUAL(tl_transport_resume_reading(p.st), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s, 3));
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void test_buffered_protocol(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, &rec_buffered_proto, NULL);
    unsigned char msg[1000];
    fill(msg, sizeof msg, 3);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, msg, sizeof msg), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s, sizeof msg));
    CU_ASSERT_TRUE(s.len == sizeof msg && !memcmp(s.data, msg, sizeof msg));
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_STRING_EQUAL(s.events, "MDEL");
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void test_buffered_protocol_error_aborts(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {.buffered_err = TL_EPROTOTYPE}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, &rec_buffered_proto, NULL);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "abc", 3), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_EQUAL(s.lost_error, TL_EPROTOTYPE);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static int empty_buffer(tl_transport_t *t, size_t hint, void **buf,
                        size_t *len, void *ctx) {
    (void)t, (void)hint, (void)ctx;
    *buf = NULL;
    *len = 0;
    return 0;
}

static void test_buffered_protocol_empty_buffer_is_enobufs(void) {
    tl_loop_t *loop = tl_test_net_loop();
    tl_protocol_t bp = rec_buffered_proto;
    bp.get_buffer = empty_buffer;
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, &bp, NULL);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "abc", 3), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_EQUAL(s.lost_error, TL_ENOBUFS);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void test_set_protocol(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0}, s2 = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    const tl_protocol_t *got;
    void *gctx;
    CU_ASSERT_EQUAL(tl_transport_get_protocol(p.st, &got, &gctx), 0);
    CU_ASSERT_PTR_EQUAL(gctx, &s);
    CU_ASSERT_EQUAL(tl_transport_set_protocol(p.st, &rec_proto, &s2), 0);
    CU_ASSERT_EQUAL(tl_transport_get_protocol(p.st, &got, &gctx), 0);
    CU_ASSERT_PTR_EQUAL(got, &rec_proto);
    CU_ASSERT_PTR_EQUAL(gctx, &s2);
    CU_ASSERT_EQUAL(tl_transport_set_protocol(p.st, NULL, &s2), TL_EINVAL);
    tl_protocol_t bad = {.size = 1};
    CU_ASSERT_EQUAL(tl_transport_set_protocol(p.st, &bad, &s2), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "abc", 3), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s2, 3));
    CU_ASSERT_EQUAL(s.len, 0);
    CU_ASSERT_EQUAL(s2.made, 0); /* the new one gets no connection_made */
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &s2.lost));
    CU_ASSERT_EQUAL(s.lost, 0);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&s2);
    rec_free(&c);
}

/* A buffered protocol that closes in buffer_updated gets nothing more:
 * reading stops at once (asyncio reads at most one buffer's worth per
 * get_buffer, so nothing more is read after close). The rest of the bytes
 * already received used to be handed over through more get_buffer calls. */
static void close_in_updated(tl_transport_t *t, size_t n, void *ctx) {
    rec_buffer_updated(t, n, ctx);
    if (tl_transport_is_closing(t))
        return;
    /* Output still queued, so the close has to wait for it (the transport
     * is closing, not yet lost). */
    small_kernel_buffers(t);
    static unsigned char big[2 * KERNEL_HOLDS_AT_MOST];
    CU_ASSERT_EQUAL(tl_transport_write(t, big, sizeof big), 0);
    CU_ASSERT_TRUE(tl_transport_get_write_buffer_size(t) > 0);
    CU_ASSERT_EQUAL(tl_transport_close(t), 0);
}

static void test_buffered_protocol_close_stops_delivery(void) {
    tl_loop_t *loop = tl_test_net_loop();
    tl_protocol_t bp = rec_buffered_proto;
    bp.buffer_updated = close_in_updated;
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, &bp, NULL);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "0123456789abcdef", 16), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_EQUAL(s.len, sizeof s.bbuf); /* one buffer, then closed */
    CU_ASSERT_STRING_EQUAL(s.events, "MDL");
    CU_ASSERT_EQUAL(s.lost_error, 0);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

/* Dropping a reference one does not hold is an error, also inside
 * connection_lost, where the loop's own reference is still held until the
 * callback returns (it used to be dropped there: a use after free). */
static void unref_in_lost(tl_transport_t *t, int error, void *ctx) {
    rec_lost(t, error, ctx);
    CU_ASSERT_EQUAL(tl_transport_unref(t), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_ref(t), TL_ECLOSED);
}

static void test_unref_without_a_reference_in_connection_lost_fails(void) {
    tl_loop_t *loop = tl_test_net_loop();
    tl_protocol_t up = rec_proto;
    up.connection_lost = unref_in_lost;
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, &up);
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    run_some(loop, 2);
    CU_ASSERT_EQUAL(c.lost, 1);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

/* ---- writing ------------------------------------------------------------- */

static int take_frees;
static void take_free(void *p) {
    take_frees++;
    free(p);
}

static void test_write_take_and_writev(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    take_frees = 0;
    char *m = malloc(5);
    memcpy(m, "hello", 5);
    CU_ASSERT_EQUAL(tl_transport_write_take(p.ct, m, 5, take_free), 0);
    tl_iovec_t iov[3] = {{" ", 1}, {"wor", 3}, {"ld", 2}};
    CU_ASSERT_EQUAL(tl_transport_writev(p.ct, iov, 3), 0);
    CU_ASSERT_EQUAL(tl_transport_writev(p.ct, iov, 0), 0);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "x", 0), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s, 11));
    CU_ASSERT_EQUAL(memcmp(s.data, "hello world", 11), 0);
    CU_ASSERT_EQUAL(take_frees, 1);
    /* Taken memory is freed on error returns too. */
    m = malloc(3);
    CU_ASSERT_EQUAL(tl_transport_write_take(p.ct, m, 0, take_free), 0);
    CU_ASSERT_EQUAL(take_frees, 2);
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    m = malloc(3);
    CU_ASSERT_EQUAL(tl_transport_write_take(p.ct, m, 3, take_free), TL_ECLOSED);
    CU_ASSERT_EQUAL(take_frees, 3);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

/* Writes that do not go at once are queued in order, whatever their form. */
static void test_queued_writes_keep_their_order(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(p.st), 0);
    size_t big = 2 << 20;
    unsigned char *b = malloc(big);
    fill(b, big, 1);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, b, big), 0);
    unsigned char *expect = malloc(big + 3000 * 4);
    memcpy(expect, b, big);
    size_t n = big;
    take_frees = 0;
    for (int i = 0; i < 3000; i++) {
        unsigned char w[4] = {(unsigned char)i, (unsigned char)(i >> 8), 'a',
                              'b'};
        memcpy(expect + n, w, 4);
        n += 4;
        if (i % 100 == 7) {
            unsigned char *m = malloc(4);
            memcpy(m, w, 4);
            CU_ASSERT_EQUAL(tl_transport_write_take(p.ct, m, 4, take_free), 0);
        } else if (i % 2) {
            tl_iovec_t iov[2] = {{w, 2}, {w + 2, 2}};
            CU_ASSERT_EQUAL(tl_transport_writev(p.ct, iov, 2), 0);
        } else {
            CU_ASSERT_EQUAL(tl_transport_write(p.ct, w, 4), 0);
        }
    }
    CU_ASSERT_EQUAL(tl_transport_resume_reading(p.st), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s, n));
    CU_ASSERT_TRUE(s.len == n && memcmp(s.data, expect, n) == 0);
    CU_ASSERT_EQUAL(take_frees, 30);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(p.ct), 0);
    free(b);
    free(expect);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void test_water_marks_set_get_invalid(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    size_t hi, lo;
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_limits(p.ct, &hi, &lo), 0);
    CU_ASSERT_EQUAL(hi, 65536);
    CU_ASSERT_EQUAL(lo, 16384);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(p.ct, -1, 1000), 0);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_limits(p.ct, &hi, &lo), 0);
    CU_ASSERT_EQUAL(hi, 4000);
    CU_ASSERT_EQUAL(lo, 1000);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(p.ct, 100, -1), 0);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_limits(p.ct, &hi, &lo), 0);
    CU_ASSERT_EQUAL(hi, 100);
    CU_ASSERT_EQUAL(lo, 25);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(p.ct, 10, 20),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(p.ct, -2, 0),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(p.ct, 0, -5),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(p.ct, 0, 0), 0);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(p.ct, -1, -1), 0);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_limits(p.ct, &hi, &lo), 0);
    CU_ASSERT_EQUAL(hi, 65536);
    CU_ASSERT_EQUAL(lo, 16384);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_limits(p.ct, NULL, NULL),
                    TL_EINVAL);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

/* Sizes that overflow are refused, not wrapped: a low mark whose 4x does
 * not fit (signed overflow), a writev whose lengths add up past SIZE_MAX
 * (the wrapped total sent garbage or nothing). The transport stays usable. */
static void test_overflowing_sizes_are_refused(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    size_t hi, lo;
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(p.ct, -1, INT64_MAX),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(
                        p.ct, -1, INT64_MAX / 4 + 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_limits(p.ct, &hi, &lo), 0);
    CU_ASSERT_EQUAL(hi, 65536); /* unchanged */
    CU_ASSERT_EQUAL(lo, 16384);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(p.ct, -1,
                                                         INT64_MAX / 4), 0);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_limits(p.ct, &hi, &lo), 0);
    CU_ASSERT_EQUAL(hi, (size_t)(INT64_MAX / 4) * 4);
    CU_ASSERT_EQUAL(lo, (size_t)(INT64_MAX / 4));
    static char byte = 'x';
    tl_iovec_t wrap[2] = {{&byte, SIZE_MAX}, {&byte, 2}};
    CU_ASSERT_EQUAL(tl_transport_writev(p.ct, wrap, 2), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(p.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "ok", 2), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s, 2));
    CU_ASSERT_TRUE(s.len == 2 && memcmp(s.data, "ok", 2) == 0);
    CU_ASSERT_EQUAL(c.lost, 0);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

/* pause_writing when the buffer crosses high, resume_writing when it
 * falls to low, strictly alternating; lowering high at once pauses. The
 * writes run without the loop (write_until_buffered), so what the kernel
 * takes meanwhile cannot drain the buffer between a pause and the checks
 * (it used to, under load: the test was flaky). */
static void test_pause_resume_writing_alternate(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(p.st), 0);
    size_t chunk = 1 << 20;
    unsigned char *b = calloc(1, chunk);
    size_t total = 0;
    for (int round = 0; round < 3; round++) {
        /* Write until paused (the peer does not read). */
        size_t n = write_until_buffered(p.ct, b, chunk, 65536 + 1);
        CU_ASSERT_FATAL(n > 0);
        total += n;
        CU_ASSERT_TRUE(c.paused);
        CU_ASSERT_EQUAL(c.pauses, round + 1);
        CU_ASSERT_TRUE(tl_transport_get_write_buffer_size(p.ct) > 65536);
        /* Writing more while paused is allowed (no second pause). */
        CU_ASSERT_EQUAL(tl_transport_write(p.ct, b, 10), 0);
        total += 10;
        CU_ASSERT_EQUAL(c.pauses, round + 1);
        CU_ASSERT_EQUAL(tl_transport_resume_reading(p.st), 0);
        CU_ASSERT_TRUE(run_until_len(loop, &s, total));
        CU_ASSERT_FALSE(c.paused);
        CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(p.ct), 0);
        CU_ASSERT_EQUAL(tl_transport_pause_reading(p.st), 0);
    }
    CU_ASSERT_EQUAL(c.pauses, 3);
    CU_ASSERT_EQUAL(c.resumes, 3);
    CU_ASSERT_STRING_EQUAL(c.events, "MPRPRPR");
    /* Limits take effect at once: with high out of reach, fill the buffer
     * a little; then a high below it pauses, a low above it resumes. */
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(
                        p.ct, INT64_C(1) << 40, 0), 0);
    size_t n = write_until_buffered(p.ct, b, chunk, 1);
    CU_ASSERT_FATAL(n > 0);
    total += n;
    size_t buffered = tl_transport_get_write_buffer_size(p.ct);
    CU_ASSERT_EQUAL(c.pauses, 3);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(
                        p.ct, (int64_t)buffered - 1, 0), 0);
    CU_ASSERT_EQUAL(c.pauses, 4);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(
                        p.ct, (int64_t)buffered + 10, (int64_t)buffered + 10),
                    0);
    CU_ASSERT_EQUAL(c.resumes, 4);
    CU_ASSERT_EQUAL(tl_transport_resume_reading(p.st), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s, total));
    free(b);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void test_sendfile_sends_the_file(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    char path[] = "/tmp/tulip-sendfile-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    unlink(path);
    size_t n = 300000;
    unsigned char *b = malloc(n);
    fill(b, n, 9);
    CU_ASSERT_EQUAL(write(fd, b, n), (ssize_t)n);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "<", 1), 0);
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_transport_sendfile(p.ct, fd, 1000, 0, &f), 0);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, ">", 1), 0);
    void *res;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &res), 0);
    CU_ASSERT_EQUAL((uintptr_t)res, n - 1000);
    tl_future_unref(f);
    CU_ASSERT_TRUE(run_until_len(loop, &s, n - 1000 + 2));
    CU_ASSERT_EQUAL(s.len, n - 1000 + 2);
    CU_ASSERT_EQUAL(s.data[0], '<');
    CU_ASSERT_TRUE(memcmp(s.data + 1, b + 1000, n - 1000) == 0);
    CU_ASSERT_EQUAL(s.data[n - 1000 + 1], '>');
    /* A count within the file, and errors. */
    CU_ASSERT_EQUAL(tl_transport_sendfile(p.ct, fd, 0, 10, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &res), 0);
    CU_ASSERT_EQUAL((uintptr_t)res, 10);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_transport_sendfile(p.ct, fd, -1, 10, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_sendfile(p.ct, fd, 0, 10, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_sendfile(p.ct, -1, 0, 10, &f), TL_EINVAL);
    close(fd);
    free(b);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

/* ---- references, loop close, arguments ---------------------------------- */

static void test_ref_unref_after_lost(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_unref(p.ct), TL_EINVAL); /* none of ours */
    CU_ASSERT_EQUAL(tl_transport_ref(p.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "x", 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_ref(p.ct), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_is_closing(p.ct), 1);
    tl_sockaddr_t a;
    CU_ASSERT_EQUAL(tl_transport_get_peername(p.ct, &a), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(p.ct, -1, -1),
                    TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_unref(p.ct), 0); /* freed now */
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

static void test_reference_outlives_the_loop(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_ref(p.ct), 0);
    tl_server_free(p.server);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(c.lost_error, TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "x", 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_unref(p.ct), 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
    rec_free(&s);
    rec_free(&c);
}

static void test_loop_close_with_live_transports_leaks_nothing(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    /* Pending output, a paused reader, a half-closed side. */
    CU_ASSERT_EQUAL(tl_transport_pause_reading(p.st), 0);
    unsigned char *b = calloc(1, 1 << 20);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, b, 1 << 20), 0);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, b, 1 << 20), 0);
    CU_ASSERT_EQUAL(tl_transport_write_eof(p.st), 0);
    free(b);
    tl_test_loop_free(loop); /* the server is still the caller's */
    CU_ASSERT_EQUAL(c.lost, 1);
    CU_ASSERT_EQUAL(s.lost, 1);
    CU_ASSERT_EQUAL(c.lost_error, TL_ECLOSED);
    CU_ASSERT_EQUAL(s.lost_error, TL_ECLOSED);
    tl_server_free(p.server);
    rec_free(&s);
    rec_free(&c);
}

/* A transport whose connection_made never got to run still sees it
 * before connection_lost when the loop closes. */
static void test_loop_close_before_made_runs_both(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t c = {0};
    const tl_netstack_ops_t *ops;
    void *state;
    CU_ASSERT_EQUAL_FATAL(tl_loop_get_netstack(loop, &ops, &state), 0);
    tl_sockaddr_t a = addr_ip("127.0.0.1", 0);
    static const tl_ns_handler_t none = {0};
    tl_ns_sock_t *l, *sock;
    CU_ASSERT_EQUAL_FATAL(ops->listen(state, &a, NULL, &none, NULL, &l), 0);
    CU_ASSERT_EQUAL_FATAL(ops->getaddr(l, 0, &a), 0);
    CU_ASSERT_EQUAL_FATAL(ops->connect(state, &a, NULL, &none, NULL, &sock),
                          0);
    tl_transport_t *t;
    CU_ASSERT_EQUAL_FATAL(tl__stream_transport_new(loop, ops, sock,
                                                   &rec_proto, &c, "tcp", &t),
                          0);
    CU_ASSERT_EQUAL(c.made, 0); /* scheduled */
    ops->close(l, 0);
    tl_test_loop_free(loop);
    CU_ASSERT_STRING_EQUAL(c.events, "ML");
    CU_ASSERT_EQUAL(c.lost_error, TL_ECLOSED);
    rec_free(&c);
}

typedef struct wt {
    tl_transport_t *t;
    int rc[4];
} wt_t;

static void *wrong_thread(void *arg) {
    wt_t *w = arg;
    w->rc[0] = tl_transport_write(w->t, "x", 1);
    w->rc[1] = tl_transport_close(w->t);
    w->rc[2] = tl_transport_ref(w->t);
    w->rc[3] = tl_transport_pause_reading(w->t);
    return NULL;
}

static void test_bad_arguments_and_wrong_thread(void) {
    CU_ASSERT_EQUAL(tl_transport_write(NULL, "x", 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_close(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_abort(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_ref(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_unref(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_is_closing(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(NULL), 0);
    CU_ASSERT_PTR_NULL(tl_transport_get_loop(NULL));
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, NULL, 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, NULL, 0), 0);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "x", 0), 0);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(p.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_writev(p.ct, NULL, 1), TL_EINVAL);
    tl_iovec_t bad = {NULL, 3};
    CU_ASSERT_EQUAL(tl_transport_writev(p.ct, &bad, 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_get_peername(p.ct, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_get_protocol(p.ct, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_sendto(p.ct, "x", 1, NULL), TL_ENOTSUP);
    tl_sockaddr_t peer, self;
    CU_ASSERT_EQUAL(tl_transport_get_peername(p.ct, &peer), 0);
    CU_ASSERT_EQUAL(tl_transport_get_sockname(p.st, &self), 0);
    CU_ASSERT_EQUAL(addr_port_of(&peer), addr_port_of(&self));
    tl_fd_t fd;
    int rc = tl_transport_get_fileno(p.ct, &fd);
    CU_ASSERT_TRUE(rc == 0 || rc == TL_ENOTSUP);
    wt_t w = {.t = p.ct};
    pthread_t th;
    pthread_create(&th, NULL, wrong_thread, &w);
    pthread_join(th, NULL);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(w.rc[i], TL_EWRONGTHREAD);
    pair_close(loop, &p);
    rec_free(&s);
    rec_free(&c);
}

/* ---- out of memory ------------------------------------------------------ */

/* Make a pair, echo, close; with the nth allocation failing. Returns 0
 * when everything went through. */
static int oom_scenario(long n, long *used) {
    tl_loop_t *loop = NULL;
    if (tl_loop_new(NULL, &loop))
        return -1;
    void *config = NULL;
    const tl_netstack_ops_t *ops =
        tl_test_netstack_by_name(tl_test_netstack_name(), &config);
    tl_loop_set_netstack(loop, ops, config);
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_test_fail_alloc_at(n);
    long armed = tl_test_alloc_count();
    int ok = -1;
    rec_t s = {.echo = 1}, c = {0};
    factory_t f = {.recs = &s, .n = 1};
    tl_sockaddr_t a = addr_ip("127.0.0.1", 0), bound;
    tl_server_t *srv = NULL;
    tl_transport_t *ct = NULL;
    if (tl_create_server_addrs(loop, factory_fn, &f, &a, 1, NULL, &srv))
        goto out;
    if (tl_server_sockets(srv, &bound, 1) != 1)
        goto out;
    if (dial(loop, &bound, &rec_proto, &c, &ct))
        goto out;
    if (!run_until(loop, &c.made))
        goto out;
    unsigned char big[100000] = {1};
    if (tl_transport_write(ct, "ping", 4) ||
        tl_transport_write(ct, big, sizeof big))
        goto out;
    run_until_len(loop, &c, 4 + sizeof big);
    if (c.len != 4 + sizeof big)
        goto out;
    tl_transport_close(ct);
    run_until(loop, &s.lost);
    ok = s.lost && c.lost ? 0 : -1;
out:
    *used = tl_test_alloc_count() - armed;
    tl_test_fail_alloc_at(0);
    tl_server_free(srv);
    tl_loop_close(loop);
    tl_loop_unref(loop);
    CU_ASSERT_TRUE(c.made == c.lost); /* lost for every made */
    CU_ASSERT_TRUE(s.made == s.lost);
    /* A protocol the factory handed out always hears connection_lost (it
     * frees its ctx there), even when the transport could not be set up. */
    CU_ASSERT_EQUAL(f.used, s.lost);
    CU_ASSERT_TRUE(c.lost <= 1 && s.lost <= 1);
    rec_free(&s);
    rec_free(&c);
    return ok;
}

static void test_out_of_memory_walk(void) {
    long live = tl_test_live_allocs();
    int passed = 0;
    for (long n = 1; n < 2000 && !passed; n++) {
        long used = 0;
        passed = oom_scenario(n, &used) == 0 && used < n;
        CU_ASSERT_EQUAL(tl_test_live_allocs(), live);
    }
    CU_ASSERT_TRUE(passed);
}

TL_TEST_SUITE(transport,
              TL_TEST(test_connection_made_first_lost_last_once),
              TL_TEST(test_no_data_before_connection_made),
              TL_TEST(test_write_after_close_fails),
              TL_TEST(test_write_after_write_eof_fails),
              TL_TEST(test_half_close_from_client),
              TL_TEST(test_half_close_from_server),
              TL_TEST(test_eof_received_zero_closes),
              TL_TEST(test_eof_received_null_closes),
              TL_TEST(test_close_flushes_pending_data_first),
              TL_TEST(test_abort_with_data_pending),
              TL_TEST(test_pause_resume_reading),
              TL_TEST(test_pause_reading_in_connection_made),
              TL_TEST(test_buffered_protocol),
              TL_TEST(test_buffered_protocol_error_aborts),
              TL_TEST(test_buffered_protocol_empty_buffer_is_enobufs),
              TL_TEST(test_buffered_protocol_close_stops_delivery),
              TL_TEST(test_unref_without_a_reference_in_connection_lost_fails),
              TL_TEST(test_set_protocol),
              TL_TEST(test_write_take_and_writev),
              TL_TEST(test_queued_writes_keep_their_order),
              TL_TEST(test_water_marks_set_get_invalid),
              TL_TEST(test_overflowing_sizes_are_refused),
              TL_TEST(test_pause_resume_writing_alternate),
              TL_TEST(test_sendfile_sends_the_file),
              TL_TEST(test_ref_unref_after_lost),
              TL_TEST(test_reference_outlives_the_loop),
              TL_TEST(test_loop_close_with_live_transports_leaks_nothing),
              TL_TEST(test_loop_close_before_made_runs_both),
              TL_TEST(test_bad_arguments_and_wrong_thread),
              TL_TEST(test_out_of_memory_walk));
