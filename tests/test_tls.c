/*
 * The TLS engine (src/tls/tls.c, tls_transport.c): tulip client against
 * tulip server over loopback TCP made through the loop's netstack
 * (tl_test_net_loop: run with TL_NETSTACK=kernel|user|fault), upgraded
 * with tl_start_tls on both ends. Handshake, echo both ways, callback
 * order, close_notify, abort, EOF without close_notify, flow control both
 * ways, buffered protocols, handshake failures (timeout, garbage,
 * certificate errors), the extra-info getters, loop close mid-handshake,
 * cancel, bad arguments and an out-of-memory walk. sendfile through TLS:
 * test_tls_sendfile.c.
 */
#include "tls_test.h"

/* ---- handshake and data ------------------------------------------------------ */

static void test_handshake_and_echo(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {.echo = 1}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl__tls_is_tls(tp.c), 1);
    CU_ASSERT_EQUAL(tl__tls_is_tls(tp.raw.ct), 0);
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "hello", 5), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &c, 5));
    CU_ASSERT_EQUAL(memcmp(c.data, "hello", 5), 0);
    CU_ASSERT_EQUAL(s.len, 5);
    CU_ASSERT_STRING_EQUAL(c.events, "MD");
    CU_ASSERT_STRING_EQUAL(s.events, "MD");
    /* The plain protocols were replaced: they saw nothing of it. */
    CU_ASSERT_EQUAL(tp.sraw.len, 0);
    CU_ASSERT_EQUAL(tp.craw.len, 0);
    CU_ASSERT_EQUAL(tp.craw.lost, 0);
    tpair_close(loop, &tp);
    CU_ASSERT_EQUAL(c.lost_error, TL_ECLOSED);
    CU_ASSERT_EQUAL(c.lost, 1);
    rec_free(&s);
    rec_free(&c);
}

static void check_big_echo(size_t total, int from_server) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {.echo = 1}, c = {.echo = 1};
    if (from_server)
        c.echo = 1, s.echo = 0;
    else
        s.echo = 1, c.echo = 0;
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    unsigned char *big = malloc(total);
    for (size_t i = 0; i < total; i++)
        big[i] = (unsigned char)(i * 7 + (i >> 13));
    rec_t *back = from_server ? &s : &c;
    rec_t *far = from_server ? &c : &s;
    tl_transport_t *w = from_server ? tp.s : tp.c;
    CU_ASSERT_EQUAL(tl_transport_write(w, big, total), 0);
    CU_ASSERT_TRUE(run_until_len_long(loop, back, total));
    CU_ASSERT_EQUAL(far->len, total);
    CU_ASSERT_EQUAL(back->len, total);
    if (back->len == total)
        CU_ASSERT_EQUAL(memcmp(back->data, big, total), 0);
    CU_ASSERT_EQUAL(tl_transport_close(w), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_EQUAL(c.lost_error, 0);
    CU_ASSERT_EQUAL(s.lost_error, 0);
    free(big);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_echo_8mib_from_client(void) {
    NEED_TLS();
    check_big_echo(8u << 20, 0);
}

static void test_echo_8mib_from_server(void) {
    NEED_TLS();
    check_big_echo(8u << 20, 1);
}

static void test_writev_and_write_take(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    tl_iovec_t iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    CU_ASSERT_EQUAL(tl_transport_writev(tp.c, iov, 3), 0);
    char *heap = malloc(4);
    memcpy(heap, "fghi", 4);
    CU_ASSERT_EQUAL(tl_transport_write_take(tp.c, heap, 4, free), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s, 9));
    CU_ASSERT_EQUAL(memcmp(s.data, "abcdefghi", 9), 0);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

/* ---- closing ------------------------------------------------------------------ */

static void test_close_sends_close_notify(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "bye", 3), 0);
    CU_ASSERT_EQUAL(tl_transport_close(tp.c), 0);
    CU_ASSERT_EQUAL(tl_transport_is_closing(tp.c), 1);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    run_some(loop, 3);
    /* The data, then close_notify: eof_received, then lost(0), once. */
    CU_ASSERT_STRING_EQUAL(s.events, "MDEL");
    CU_ASSERT_STRING_EQUAL(c.events, "ML");
    CU_ASSERT_EQUAL(s.len, 3);
    CU_ASSERT_EQUAL(s.lost_error, 0);
    CU_ASSERT_EQUAL(c.lost_error, 0);
    CU_ASSERT_EQUAL(s.lost, 1);
    CU_ASSERT_EQUAL(c.lost, 1);
    CU_ASSERT_EQUAL(s.eofs, 1);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_close_notify_ignores_eof_keep_open(void) {
    NEED_TLS();
    /* eof_received's answer is ignored: the engine answers with its own
     * close_notify and closes. */
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {.eof_keep = 1}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_close(tp.c), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_STRING_EQUAL(s.events, "MEL");
    CU_ASSERT_EQUAL(s.lost_error, 0);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_write_after_close_fails(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_ref(tp.c), 0); /* to call it after lost */
    CU_ASSERT_EQUAL(tl_transport_close(tp.c), 0);
    CU_ASSERT_EQUAL(tl_transport_close(tp.c), 0);
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "x", 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(tp.c), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_is_reading(tp.c), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "x", 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_ref(tp.c), TL_ECLOSED);
    int v = 0;
    CU_ASSERT_EQUAL(tl_tls_get_version(tp.c, &v), 0); /* still answers */
    CU_ASSERT_EQUAL(tl_transport_unref(tp.c), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_write_eof_not_supported(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_can_write_eof(tp.c), 0);
    CU_ASSERT_EQUAL(tl_transport_write_eof(tp.c), TL_ENOTSUP);
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "x", 1), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s, 1));
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_abort(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "lost", 4), 0);
    CU_ASSERT_EQUAL(tl_transport_abort(tp.c), 0);
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "x", 1), TL_ECLOSED);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_EQUAL(c.lost_error, 0);
    CU_ASSERT_STRING_EQUAL(c.events, "ML");
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    /* The server saw a reset or an EOF without close_notify. */
    CU_ASSERT_NOT_EQUAL(s.lost_error, 0);
    CU_ASSERT_EQUAL(s.eofs, 0);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_eof_without_close_notify_is_tlseof(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_write(tp.s, "last", 4), 0);
    run_some(loop, 2);
    /* Close the server's plain transport under its TLS: a FIN, no
     * close_notify. */
    CU_ASSERT_EQUAL(tl_transport_close(tp.raw.st), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_EQUAL(c.lost_error, TL_ETLSEOF);
    CU_ASSERT_EQUAL(c.len, 4); /* what came before the EOF was delivered */
    CU_ASSERT_EQUAL(c.eofs, 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_EQUAL(s.lost_error, 0);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

/* A protocol that closes its transport when the first data comes. */
static void close_on_data(tl_transport_t *t, const void *d, size_t n,
                          void *ctx) {
    rec_data(t, d, n, ctx);
    tl_transport_close(t);
    CU_ASSERT_EQUAL(tl_transport_write(t, "x", 1), TL_ECLOSED);
}

static void test_close_from_data_received(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tl_protocol_t sp = rec_proto;
    sp.data_received = close_on_data;
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, &sp, NULL);
    /* Two records in one go: the second is not delivered after close. */
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "one", 3), 0);
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "two", 3), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_EQUAL(s.lost_error, 0);
    CU_ASSERT_EQUAL(c.lost_error, 0);
    CU_ASSERT_STRING_EQUAL(c.events, "MEL");
    CU_ASSERT_EQUAL(s.lost, 1);
    CU_ASSERT_TRUE(s.len == 3 || s.len == 6);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

/* A protocol that aborts its transport when the first data comes. */
static void abort_on_data(tl_transport_t *t, const void *d, size_t n,
                          void *ctx) {
    rec_data(t, d, n, ctx);
    CU_ASSERT_EQUAL(tl_transport_abort(t), 0);
    CU_ASSERT_EQUAL(tl_transport_write(t, "x", 1), TL_ECLOSED);
}

static void test_abort_from_data_received(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tl_protocol_t sp = rec_proto;
    sp.data_received = abort_on_data;
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, &sp, NULL);
    static unsigned char big[256 * 1024];
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, big, sizeof big), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    run_some(loop, 3);
    CU_ASSERT_EQUAL(s.lost_error, 0);
    CU_ASSERT_STRING_EQUAL(s.events, "MDL"); /* nothing after the abort */
    CU_ASSERT_TRUE(s.len < sizeof big);
    CU_ASSERT_NOT_EQUAL(c.lost_error, 0);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_shutdown_timeout_aborts(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    memset(&tp, 0, sizeof tp);
    pair_open(loop, &tp.raw, &tp.sraw, &tp.craw, NULL, NULL);
    tp.sctx = server_ctx();
    tp.cctx = client_ctx();
    tl_tls_options_t so = opts_for(tp.sctx, NULL);
    so.shutdown_timeout_ns = 50 * 1000000;
    tl_tls_options_t co = opts_for(tp.cctx, "localhost");
    CU_ASSERT_EQUAL_FATAL(tl_start_tls(tp.raw.st, &rec_proto, &s, &so, &tp.sf),
                          0);
    CU_ASSERT_EQUAL_FATAL(tl_start_tls(tp.raw.ct, &rec_proto, &c, &co, &tp.cf),
                          0);
    CU_ASSERT_TRUE(run_until(loop, &s.made));
    CU_ASSERT_TRUE(run_until(loop, &c.made));
    small_kernel_buffers(tp.raw.st);
    small_kernel_buffers(tp.raw.ct);
    /* The client reads nothing: the server's close cannot flush. */
    CU_ASSERT_EQUAL(tl_transport_pause_reading(c.t), 0);
    static unsigned char chunk[64 * 1024];
    CU_ASSERT_TRUE(write_until_buffered(s.t, chunk, sizeof chunk,
                                        2 * KERNEL_HOLDS_AT_MOST) > 0);
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_transport_close(s.t), 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_EQUAL(s.lost_error, TL_ETIMEDOUT);
    CU_ASSERT_TRUE(tl_now_ns() - t0 >= 45 * 1000000ull);
    CU_ASSERT_STRING_EQUAL(s.events, "MPL");
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

/* done closes the new TLS transport at once: its protocol sees made, then
 * lost(0), and the peer a close_notify. */
static void hs_done_close(void *arg, int error, tl_transport_t *tls) {
    int *calls = arg;
    ++*calls;
    CU_ASSERT_EQUAL(error, 0);
    if (tls)
        CU_ASSERT_EQUAL(tl_transport_close(tls), 0);
}

static void test_done_closes_the_transport(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0}, sr = {0}, cr = {0};
    pair_t p;
    pair_open(loop, &p, &sr, &cr, NULL, NULL);
    tl_tls_context_t *sc = server_ctx(), *cc = client_ctx();
    tl_tls_options_t so = opts_for(sc, NULL), co = opts_for(cc, NULL);
    tl_future_t *sf;
    int calls = 0;
    CU_ASSERT_EQUAL(tl_start_tls(p.st, &rec_proto, &s, &so, &sf), 0);
    /* The default hostname is the wrap's (create_connection's host). */
    CU_ASSERT_EQUAL(tl__tls_wrap(p.ct, &co, "localhost", &rec_proto, &c,
                                 hs_done_close, &calls, NULL), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_EQUAL(calls, 1);
    CU_ASSERT_STRING_EQUAL(c.events, "ML");
    CU_ASSERT_EQUAL(c.lost_error, 0);
    CU_ASSERT_STRING_EQUAL(s.events, "MEL");
    CU_ASSERT_EQUAL(s.lost_error, 0);
    tl_future_unref(sf);
    tl_server_free(p.server);
    tl_test_loop_free(loop);
    tl_tls_context_unref(sc);
    tl_tls_context_unref(cc);
    rec_free(&s);
    rec_free(&c);
    rec_free(&sr);
    rec_free(&cr);
}

/* ---- reading and flow control ---------------------------------------------------- */

static void test_pause_reading_holds_data(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(tp.c), 0);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(tp.c), 0);
    CU_ASSERT_EQUAL(tl_transport_is_reading(tp.c), 0);
    CU_ASSERT_EQUAL(tl_transport_write(tp.s, "held", 4), 0);
    run_some(loop, 10);
    CU_ASSERT_EQUAL(c.len, 0);
    CU_ASSERT_EQUAL(tl_transport_resume_reading(tp.c), 0);
    CU_ASSERT_EQUAL(c.len, 0); /* delivered from the loop, not inside */
    CU_ASSERT_TRUE(run_until_len(loop, &c, 4));
    CU_ASSERT_EQUAL(memcmp(c.data, "held", 4), 0);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_close_notify_waits_for_paused_reader(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(tp.c), 0);
    CU_ASSERT_EQUAL(tl_transport_write(tp.s, "data", 4), 0);
    CU_ASSERT_EQUAL(tl_transport_close(tp.s), 0);
    run_some(loop, 10);
    CU_ASSERT_EQUAL(c.len, 0);
    CU_ASSERT_EQUAL(c.eofs, 0);
    CU_ASSERT_EQUAL(tl_transport_resume_reading(tp.c), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_STRING_EQUAL(c.events, "MDEL");
    CU_ASSERT_EQUAL(c.lost_error, 0);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_backpressure(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    small_kernel_buffers(tp.raw.st);
    small_kernel_buffers(tp.raw.ct);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(tp.c), 0);
    static unsigned char chunk[64 * 1024];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (unsigned char)(i * 31 + (i >> 8));
    /* More than the kernel holds, so the buffer cannot drain into it. */
    size_t sent = write_until_buffered(tp.s, chunk, sizeof chunk,
                                       2 * KERNEL_HOLDS_AT_MOST);
    CU_ASSERT_TRUE_FATAL(sent > 0);
    CU_ASSERT_EQUAL(s.pauses, 1);
    CU_ASSERT_TRUE(s.paused);
    /* Writes while paused are queued as plaintext and counted. */
    size_t before = tl_transport_get_write_buffer_size(tp.s);
    CU_ASSERT_EQUAL(tl_transport_write(tp.s, chunk, sizeof chunk), 0);
    sent += sizeof chunk;
    CU_ASSERT_TRUE(tl_transport_get_write_buffer_size(tp.s) >=
                   before + sizeof chunk);
    run_some(loop, 20);
    /* The reader does not read: nothing drains past the kernel, the buffer
     * stays bounded and the writer stays paused. */
    CU_ASSERT_TRUE(s.paused);
    CU_ASSERT_TRUE(tl_transport_get_write_buffer_size(tp.s) <= sent);
    CU_ASSERT_EQUAL(c.len, 0);
    CU_ASSERT_EQUAL(tl_transport_resume_reading(tp.c), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &c, sent));
    CU_ASSERT_EQUAL(c.len, sent);
    CU_ASSERT_TRUE(run_until(loop, &s.resumes));
    CU_ASSERT_FALSE(s.paused);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(tp.s), 0);
    CU_ASSERT_TRUE(is_repeated(c.data, c.len, chunk, sizeof chunk));
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_buffered_protocol(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, &rec_buffered_proto);
    unsigned char msg[1000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)(i * 13);
    CU_ASSERT_EQUAL(tl_transport_write(tp.s, msg, sizeof msg), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &c, sizeof msg));
    CU_ASSERT_EQUAL(memcmp(c.data, msg, sizeof msg), 0);
    /* A failing get_buffer ends the connection with its error. */
    c.buffered_err = TL_EIO;
    CU_ASSERT_EQUAL(tl_transport_write(tp.s, "x", 1), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_EQUAL(c.lost_error, TL_EIO);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

/* ---- extra info --------------------------------------------------------------- */

static void test_extra_info(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    int v = 0;
    CU_ASSERT_EQUAL(tl_tls_get_version(tp.c, &v), 0);
    CU_ASSERT_EQUAL(v, TL_TLS_VERSION_1_3);
    const char *name = NULL;
    CU_ASSERT_EQUAL(tl_tls_get_cipher(tp.s, &name), 0);
    CU_ASSERT_PTR_NOT_NULL(name);
    if (name)
        CU_ASSERT_EQUAL(strncmp(name, "TLS_", 4), 0);
    const char *alpn = "x";
    size_t alen = 9;
    CU_ASSERT_EQUAL(tl_tls_get_alpn(tp.c, &alpn, &alen), 0);
    CU_ASSERT_PTR_NULL(alpn);
    CU_ASSERT_EQUAL(alen, 0);
    CU_ASSERT_EQUAL(tl_tls_get_server_name(tp.s, &name), 0);
    CU_ASSERT_PTR_NOT_NULL(name);
    if (name)
        CU_ASSERT_STRING_EQUAL(name, "localhost");
    CU_ASSERT_EQUAL(tl_tls_session_reused(tp.c), 0);
    size_t len = 0;
    CU_ASSERT_EQUAL(tl_tls_get_peer_certificate(tp.c, NULL, 0, &len),
                    TL_ENOBUFS);
    CU_ASSERT_TRUE(len > 100);
    unsigned char der[8192];
    CU_ASSERT_EQUAL(tl_tls_get_peer_certificate(tp.c, der, sizeof der, &len), 0);
    CU_ASSERT_EQUAL(der[0], 0x30); /* a DER SEQUENCE */
    CU_ASSERT_EQUAL(tl_tls_get_peer_certificate(tp.s, der, sizeof der, &len),
                    TL_ENOENT); /* the client sent none */
    /* Addresses are the plain transport's. */
    tl_sockaddr_t a, b;
    CU_ASSERT_EQUAL(tl_transport_get_peername(tp.c, &a), 0);
    CU_ASSERT_EQUAL(tl_transport_get_peername(tp.raw.ct, &b), 0);
    CU_ASSERT_EQUAL(tl_sockaddr_port(&a), tl_sockaddr_port(&b));
    CU_ASSERT_EQUAL(tl_transport_get_sockname(tp.s, &a), 0);
    CU_ASSERT_EQUAL(tl_sockaddr_port(&a), tl_sockaddr_port(&b));
    tl_fd_t fd;
    int rc = tl_transport_get_fileno(tp.c, &fd);
    CU_ASSERT_TRUE(rc == 0 || rc == TL_ENOTSUP);
    /* Not a TLS transport / bad arguments. */
    CU_ASSERT_EQUAL(tl_tls_get_version(tp.raw.ct, &v), TL_ENOTSUP);
    CU_ASSERT_EQUAL(tl_tls_get_cipher(tp.raw.ct, &name), TL_ENOTSUP);
    CU_ASSERT_EQUAL(tl_tls_session_reused(tp.raw.ct), TL_ENOTSUP);
    CU_ASSERT_EQUAL(tl_tls_get_version(NULL, &v), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_get_version(tp.c, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_get_peer_certificate(tp.c, der, 1, NULL), TL_EINVAL);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

/* ---- handshake failures ------------------------------------------------------------ */

static void check_verify_error(const char *cert, const char *key,
                               const char *host, int want) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_start(loop, &tp, &s, &c, NULL, NULL,
                cert ? server_ctx_with(cert, key) : NULL, NULL, host);
    CU_ASSERT_EQUAL(tp.cerr, want);
    CU_ASSERT_PTR_NULL(tp.c);
    const char *m = tl_future_error_message(tp.cf);
    CU_ASSERT_PTR_NOT_NULL(m);
    /* The server hears the client's alert. */
    CU_ASSERT_NOT_EQUAL(tp.serr, 0);
    CU_ASSERT_PTR_NULL(tp.s);
    run_some(loop, 3);
    /* The plain transports were aborted; no protocol saw anything. */
    CU_ASSERT_EQUAL(s.made + c.made, 0);
    CU_ASSERT_EQUAL(tp.craw.lost + tp.sraw.lost, 0);
    tpair_close(loop, &tp);
    rec_free(&s);
    rec_free(&c);
}

static void test_self_signed_fails_verify(void) {
    NEED_TLS();
    check_verify_error(certs()->self_cert, certs()->self_key, NULL,
                       TL_ECERTVERIFY);
}

static void test_expired_certificate(void) {
    NEED_TLS();
    check_verify_error(certs()->expired_cert, certs()->expired_key, NULL,
                       TL_ECERTEXPIRED);
}

static void test_wrong_hostname(void) {
    NEED_TLS();
    check_verify_error(NULL, NULL, "wrong.test", TL_ECERTHOSTNAME);
}

/* The done callback of tl__tls_wrap, recorded. */
typedef struct hs_rec {
    int calls, error;
    tl_transport_t *tls;
    char msg[256];
} hs_rec_t;

static void hs_done(void *arg, int error, tl_transport_t *tls) {
    hs_rec_t *h = arg;
    h->calls++;
    h->error = error;
    h->tls = tls;
}

static void test_handshake_timeout(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    tl_tls_context_t *cc = client_ctx();
    tl_tls_options_t o = opts_for(cc, "localhost");
    o.handshake_timeout_ns = 100 * 1000000; /* the server never answers */
    rec_t app = {0};
    tl_future_t *f;
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, &rec_proto, &app, &o, &f), 0);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    uint64_t took = tl_now_ns() - t0;
    CU_ASSERT_EQUAL(tl_future_error(f), TL_ETIMEDOUT);
    CU_ASSERT_TRUE(took >= 90 * 1000000ull && took < 2000 * 1000000ull);
    CU_ASSERT_PTR_NOT_NULL(tl_future_error_message(f));
    /* The server's plain end got the ClientHello, then lost the link. */
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    CU_ASSERT_TRUE(s.len > 0);
    CU_ASSERT_EQUAL(app.made, 0);
    tl_future_unref(f);
    tl_server_free(p.server);
    tl_test_loop_free(loop);
    tl_tls_context_unref(cc);
    rec_free(&s);
    rec_free(&c);
    rec_free(&app);
}

static void test_garbage_instead_of_handshake(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    tl_tls_context_t *cc = client_ctx(), *sc = server_ctx();
    tl_tls_options_t co = opts_for(cc, "localhost"), so = opts_for(sc, NULL);
    rec_t app = {0}, sapp = {0};
    tl_future_t *f, *sf;
    /* The client speaks TLS, the server answers in HTTP. */
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, &rec_proto, &app, &co, &f), 0);
    CU_ASSERT_EQUAL(tl_transport_write(p.st, "GET / HTTP/1.0\r\n\r\n", 18), 0);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(tl_future_error(f), TL_ETLS);
    CU_ASSERT_PTR_NOT_NULL(tl_future_error_message(f));
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    tl_future_unref(f);
    tl_server_free(p.server);
    /* And a server that gets HTTP instead of a ClientHello. */
    rec_t s2 = {0}, c2 = {0};
    pair_open(loop, &p, &s2, &c2, NULL, NULL);
    CU_ASSERT_EQUAL(tl_start_tls(p.st, &rec_proto, &sapp, &so, &sf), 0);
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "GET / HTTP/1.0\r\n\r\n", 18), 0);
    CU_ASSERT_TRUE(run_until_done(loop, sf));
    CU_ASSERT_EQUAL(tl_future_error(sf), TL_ETLS);
    CU_ASSERT_TRUE(run_until(loop, &c2.lost));
    CU_ASSERT_EQUAL(app.made + sapp.made, 0);
    tl_future_unref(sf);
    tl_server_free(p.server);
    tl_test_loop_free(loop);
    tl_tls_context_unref(cc);
    tl_tls_context_unref(sc);
    rec_free(&s);
    rec_free(&c);
    rec_free(&s2);
    rec_free(&c2);
}

static void test_peer_closes_during_handshake(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    tl_tls_context_t *cc = client_ctx();
    tl_tls_options_t o = opts_for(cc, "localhost");
    rec_t app = {0};
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, &rec_proto, &app, &o, &f), 0);
    CU_ASSERT_EQUAL(tl_transport_close(p.st), 0);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    int err = tl_future_error(f);
    /* A FIN during the handshake; a reset only if our ClientHello hit the
     * closed socket first. */
    CU_ASSERT_TRUE(err == TL_ETLSEOF || err == TL_ECONNRESET || err == TL_EPIPE);
    CU_ASSERT_EQUAL(app.made, 0);
    tl_future_unref(f);
    tl_server_free(p.server);
    tl_test_loop_free(loop);
    tl_tls_context_unref(cc);
    rec_free(&s);
    rec_free(&c);
    rec_free(&app);
}

static void test_loop_close_during_handshake(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    tl_tls_context_t *cc = client_ctx();
    tl_tls_options_t o = opts_for(cc, "localhost");
    rec_t app = {0};
    hs_rec_t h = {0};
    tl__tls_t *hh = NULL;
    CU_ASSERT_EQUAL(tl__tls_wrap(p.ct, &o, NULL, &rec_proto, &app, hs_done, &h,
                                 &hh), 0);
    CU_ASSERT_PTR_NOT_NULL(hh);
    CU_ASSERT_EQUAL(h.calls, 0); /* never from inside wrap */
    run_some(loop, 2);           /* the ClientHello goes; no answer */
    CU_ASSERT_EQUAL(h.calls, 0);
    tl_server_free(p.server);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(h.calls, 1);
    CU_ASSERT_EQUAL(h.error, TL_ECLOSED);
    CU_ASSERT_PTR_NULL(h.tls);
    CU_ASSERT_EQUAL(app.made, 0);
    tl_tls_context_unref(cc);
    rec_free(&s);
    rec_free(&c);
    rec_free(&app);
}

static void test_loop_close_with_open_connection(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    tpair_t tp;
    tpair_open(loop, &tp, &s, &c, NULL, NULL);
    /* A user reference outlives the loop. */
    CU_ASSERT_EQUAL(tl_transport_ref(tp.c), 0);
    CU_ASSERT_EQUAL(tl_transport_write(tp.c, "x", 1), 0);
    tl_future_unref(tp.sf);
    tl_future_unref(tp.cf);
    tl_server_free(tp.raw.server);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(c.lost_error, TL_ECLOSED);
    CU_ASSERT_EQUAL(s.lost_error, TL_ECLOSED);
    CU_ASSERT_STRING_EQUAL(c.events, "ML");
    CU_ASSERT_EQUAL(tl_transport_unref(tp.c), 0);
    tl_tls_context_unref(tp.sctx);
    tl_tls_context_unref(tp.cctx);
    rec_free(&tp.sraw);
    rec_free(&tp.craw);
    rec_free(&s);
    rec_free(&c);
}

static void test_cancel_start_tls(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    tl_tls_context_t *cc = client_ctx();
    tl_tls_options_t o = opts_for(cc, "localhost");
    rec_t app = {0};
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, &rec_proto, &app, &o, &f), 0);
    run_some(loop, 2);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(tl_future_cancelled(f), 1);
    CU_ASSERT_TRUE(run_until(loop, &s.lost)); /* the plain end was aborted */
    run_some(loop, 3);
    CU_ASSERT_EQUAL(app.made, 0);
    tl_future_unref(f);
    /* Cancelled before the handshake even started. */
    rec_t s2 = {0}, c2 = {0};
    tl_server_free(p.server);
    pair_open(loop, &p, &s2, &c2, NULL, NULL);
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, &rec_proto, &app, &o, &f), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    tl_future_unref(f);
    CU_ASSERT_TRUE(run_until(loop, &s2.lost));
    tl_server_free(p.server);
    tl_test_loop_free(loop);
    tl_tls_context_unref(cc);
    rec_free(&s);
    rec_free(&c);
    rec_free(&s2);
    rec_free(&c2);
    rec_free(&app);
}

/* ---- starting TLS from a server's connection_made ---------------------------------- */

typedef struct starter {
    tl_tls_context_t *ctx;
    rec_t *app;
    tl_future_t *f;
} starter_t;

static void starter_made(tl_transport_t *t, void *ctx) {
    starter_t *st = ctx;
    tl_tls_options_t o = opts_for(st->ctx, NULL);
    CU_ASSERT_EQUAL(tl_start_tls(t, &rec_proto, st->app, &o, &st->f), 0);
}

static const tl_protocol_t starter_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = starter_made,
};

static int starter_factory(void *ctx, const tl_protocol_t **proto,
                           void **pctx) {
    *proto = &starter_proto;
    *pctx = ctx;
    return 0;
}

static void test_start_tls_in_connection_made(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t sapp = {.echo = 1}, capp = {0}, craw = {0};
    starter_t st = {.ctx = server_ctx(), .app = &sapp};
    tl_sockaddr_t a = addr_ip("127.0.0.1", 0), bound;
    tl_server_t *srv;
    CU_ASSERT_EQUAL_FATAL(tl_create_server_addrs(loop, starter_factory, &st, &a,
                                                 1, NULL, &srv), 0);
    CU_ASSERT_EQUAL_FATAL(tl_server_sockets(srv, &bound, 1), 1);
    tl_transport_t *ct = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(loop, &bound, &rec_proto, &craw, &ct), 0);
    tl_tls_context_t *cc = client_ctx();
    tl_tls_options_t o = opts_for(cc, "127.0.0.1"); /* checked as an IP */
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_start_tls(ct, &rec_proto, &capp, &o, &f), 0);
    CU_ASSERT_TRUE(run_until_done(loop, f));
    CU_ASSERT_EQUAL(tl_future_error(f), 0);
    CU_ASSERT_TRUE(run_until(loop, &capp.made));
    CU_ASSERT_EQUAL(tl_transport_write(capp.t, "ping", 4), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &capp, 4));
    CU_ASSERT_EQUAL(memcmp(capp.data, "ping", 4), 0);
    CU_ASSERT_PTR_NOT_NULL(st.f);
    CU_ASSERT_EQUAL(tl_transport_close(capp.t), 0);
    CU_ASSERT_TRUE(run_until(loop, &sapp.lost));
    CU_ASSERT_EQUAL(sapp.lost_error, 0);
    tl_future_unref(f);
    if (st.f)
        tl_future_unref(st.f);
    tl_server_free(srv);
    tl_test_loop_free(loop);
    tl_tls_context_unref(cc);
    tl_tls_context_unref(st.ctx);
    rec_free(&sapp);
    rec_free(&capp);
    rec_free(&craw);
}

/* ---- bad arguments and out of memory -------------------------------------------------- */

static void test_start_tls_bad_arguments(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    tl_tls_context_t *cc = client_ctx();
    tl_tls_options_t o = opts_for(cc, "localhost");
    tl_future_t *f = (tl_future_t *)&o;
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, &rec_proto, NULL, &o, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_start_tls(NULL, &rec_proto, NULL, &o, &f), TL_EINVAL);
    CU_ASSERT_PTR_NULL(f);
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, NULL, NULL, &o, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, &rec_proto, NULL, NULL, &f), TL_EINVAL);
    tl_tls_options_t bad = o;
    bad.context = NULL;
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, &rec_proto, NULL, &bad, &f), TL_EINVAL);
    bad = o;
    bad.size = 4;
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, &rec_proto, NULL, &bad, &f), TL_EINVAL);
    /* A client that checks hostnames needs one. */
    bad = o;
    bad.server_hostname = NULL;
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, &rec_proto, NULL, &bad, &f), TL_EINVAL);
    /* The transport is untouched by the failures: it still works. */
    CU_ASSERT_EQUAL(tl_transport_write(p.ct, "ok", 2), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &s, 2));
    CU_ASSERT_EQUAL(c.lost, 0);
    /* A closing transport. */
    CU_ASSERT_EQUAL(tl_transport_close(p.ct), 0);
    CU_ASSERT_EQUAL(tl_start_tls(p.ct, &rec_proto, NULL, &o, &f), TL_ECLOSED);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    tl_server_free(p.server);
    tl_test_loop_free(loop);
    tl_tls_context_unref(cc);
    rec_free(&s);
    rec_free(&c);
}

static void test_start_tls_out_of_memory(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &s, &c, NULL, NULL);
    tl_tls_context_t *cc = client_ctx();
    tl_tls_options_t o = opts_for(cc, "localhost");
    rec_t app = {0};
    tl_future_t *f = NULL;
    int rc = TL_ENOMEM, n;
    for (n = 1; n < 100; n++) {
        tl_test_fail_alloc_at(n);
        rc = tl_start_tls(p.ct, &rec_proto, &app, &o, &f);
        tl_test_fail_alloc_at(0);
        if (rc == 0)
            break;
        CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        CU_ASSERT_PTR_NULL(f);
        /* The transport is untouched: still its protocol's. */
        const tl_protocol_t *pr = NULL;
        CU_ASSERT_EQUAL(tl_transport_get_protocol(p.ct, &pr, NULL), 0);
        CU_ASSERT_PTR_EQUAL(pr, &rec_proto);
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(n > 2);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    tl_future_unref(f);
    CU_ASSERT_TRUE(run_until(loop, &s.lost));
    tl_server_free(p.server);
    tl_test_loop_free(loop);
    tl_tls_context_unref(cc);
    rec_free(&s);
    rec_free(&c);
    rec_free(&app);
}

TL_TEST_SUITE(tls, TL_TEST(test_handshake_and_echo),
              TL_TEST(test_echo_8mib_from_client),
              TL_TEST(test_echo_8mib_from_server),
              TL_TEST(test_writev_and_write_take),
              TL_TEST(test_close_sends_close_notify),
              TL_TEST(test_close_notify_ignores_eof_keep_open),
              TL_TEST(test_write_after_close_fails),
              TL_TEST(test_write_eof_not_supported), TL_TEST(test_abort),
              TL_TEST(test_eof_without_close_notify_is_tlseof),
              TL_TEST(test_close_from_data_received),
              TL_TEST(test_abort_from_data_received),
              TL_TEST(test_shutdown_timeout_aborts),
              TL_TEST(test_done_closes_the_transport),
              TL_TEST(test_pause_reading_holds_data),
              TL_TEST(test_close_notify_waits_for_paused_reader),
              TL_TEST(test_backpressure), TL_TEST(test_buffered_protocol),
              TL_TEST(test_extra_info),
              TL_TEST(test_self_signed_fails_verify),
              TL_TEST(test_expired_certificate), TL_TEST(test_wrong_hostname),
              TL_TEST(test_handshake_timeout),
              TL_TEST(test_garbage_instead_of_handshake),
              TL_TEST(test_peer_closes_during_handshake),
              TL_TEST(test_loop_close_during_handshake),
              TL_TEST(test_loop_close_with_open_connection),
              TL_TEST(test_cancel_start_tls),
              TL_TEST(test_start_tls_in_connection_made),
              TL_TEST(test_start_tls_bad_arguments),
              TL_TEST(test_start_tls_out_of_memory));
