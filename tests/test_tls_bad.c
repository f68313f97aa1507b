/*
 * tls_bad: what goes wrong. tulip's client facing bad certificates
 * (expired, self-signed, the wrong host, an unknown CA, and the opt-outs
 * that accept them), a peer speaking something else than TLS, a truncated
 * record, a peer stalling mid-handshake (the handshake timeout); tulip's
 * server facing a client sending garbage or stalling (dropped, the server
 * goes on) and an openssl s_client killed without close_notify; errors of
 * the `tls` options; out of memory while setting a TLS connection up.
 * Peers are tulip's own servers on the TL_NETSTACK stack, except the
 * openssl child (kernel).
 */
#include "tls_peer_test.h"

/* ---- tulip's client against bad servers -------------------------------- */

typedef struct attempt {
    int rc;          /* the future's outcome */
    char msg[256];   /* its error message, if any */
    prec_t c;        /* the client's protocol */
    prec_t s[2];     /* the server's */
    int server_made;
} attempt_t;

/* A tulip TLS server with cert/key; a client with cctx connecting to it
 * as `name` (NULL: no server_hostname, the host "127.0.0.1" is checked). */
static void try_connect(attempt_t *a, const char *cert, const char *key,
                        tl_tls_context_t *cctx, const char *name) {
    memset(a, 0, sizeof *a);
    tl_loop_t *loop = tl_test_net_loop();
    tl_tls_context_t *sctx = server_ctx(cert, key);
    tl_tls_options_t stls = {.size = sizeof stls, .context = sctx};
    pfactory_t fac = {.recs = a->s, .n = 2, .echo = 1};
    tl_sockaddr_t bound;
    tl_server_t *srv = tulip_server(loop, &fac, &stls, &bound);
    tl_tls_context_unref(sctx);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port_of(&bound));
    tl_tls_options_t ctls = {.size = sizeof ctls, .context = cctx,
                             .server_hostname = name};
    tl_connect_options_t o = {.size = sizeof o, .tls = &ctls};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection(loop, &prec_proto, &a->c, "127.0.0.1", ps, &o, &f),
        0);
    CU_ASSERT_TRUE(run_fut(loop, f, 5000));
    void *v = NULL;
    a->rc = tl_future_result(f, &v);
    const char *m = tl_future_error_message(f);
    if (m)
        snprintf(a->msg, sizeof a->msg, "%s", m);
    if (a->rc == 0) { /* a working connection: one echo */
        CU_ASSERT_EQUAL(tl_transport_write(v, "x", 1), 0);
        CU_ASSERT_TRUE(run_len(loop, &a->c, 1, 5000));
        tl_transport_close(v);
        CU_ASSERT_TRUE(run_flag(loop, &a->c.lost, 5000));
    }
    run_ms(loop, 5);
    a->server_made = a->s[0].made;
    tl_future_unref(f);
    tl_server_free(srv);
    tl_test_loop_free(loop);
}

static void test_expired_certificate_fails(void) {
    NEED_TLS();
    const tl_test_certs_t *c = certs();
    tl_tls_context_t *cctx = client_ctx(NULL);
    attempt_t a;
    try_connect(&a, c->expired_cert, c->expired_key, cctx, "localhost");
    CU_ASSERT_EQUAL(a.rc, TL_ECERTEXPIRED);
    CU_ASSERT_EQUAL(a.c.made, 0);
    CU_ASSERT_EQUAL(a.server_made, 0);
    tl_tls_context_unref(cctx);
}

static void test_self_signed_certificate_fails(void) {
    NEED_TLS();
    const tl_test_certs_t *c = certs();
    tl_tls_context_t *cctx = client_ctx(NULL);
    attempt_t a;
    try_connect(&a, c->self_cert, c->self_key, cctx, "localhost");
    CU_ASSERT_EQUAL(a.rc, TL_ECERTVERIFY);
    CU_ASSERT_EQUAL(a.c.made, 0);
    tl_tls_context_unref(cctx);
}

static void test_wrong_host_fails(void) {
    NEED_TLS();
    tl_tls_context_t *cctx = client_ctx(NULL);
    attempt_t a;
    try_connect(&a, NULL, NULL, cctx, "wrong.test");
    CU_ASSERT_EQUAL(a.rc, TL_ECERTHOSTNAME);
    CU_ASSERT_EQUAL(a.c.made, 0);
    tl_tls_context_unref(cctx);
}

static void test_unknown_ca_fails(void) {
    NEED_TLS();
    tl_tls_context_t *cctx = client_ctx(certs()->other_ca_cert);
    attempt_t a;
    try_connect(&a, NULL, NULL, cctx, "localhost");
    CU_ASSERT_EQUAL(a.rc, TL_ECERTVERIFY);
    tl_tls_context_unref(cctx);
}

static void test_skip_verify_accepts_self_signed(void) {
    NEED_TLS();
    const tl_test_certs_t *c = certs();
    tl_tls_context_t *cctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_new(TL_TLS_CLIENT, &cctx), 0);
    CU_ASSERT_EQUAL(tl_tls_context_insecure_skip_verify(cctx), 0);
    attempt_t a;
    try_connect(&a, c->self_cert, c->self_key, cctx, "wrong.test");
    CU_ASSERT_EQUAL(a.rc, 0);
    CU_ASSERT_EQUAL(a.c.made, 1);
    CU_ASSERT_STRING_EQUAL((char *)a.c.data, "x");
    tl_tls_context_unref(cctx);
}

static void test_skip_hostname_check_accepts_wrong_host(void) {
    NEED_TLS();
    tl_tls_context_t *cctx = client_ctx(NULL);
    CU_ASSERT_EQUAL(tl_tls_context_insecure_skip_hostname_check(cctx), 0);
    attempt_t a;
    try_connect(&a, NULL, NULL, cctx, "wrong.test");
    CU_ASSERT_EQUAL(a.rc, 0);
    CU_ASSERT_EQUAL(a.server_made, 1);
    tl_tls_context_unref(cctx);
    /* ... but the chain is still checked. */
    cctx = client_ctx(NULL);
    CU_ASSERT_EQUAL(tl_tls_context_insecure_skip_hostname_check(cctx), 0);
    try_connect(&a, certs()->self_cert, certs()->self_key, cctx, "wrong.test");
    CU_ASSERT_EQUAL(a.rc, TL_ECERTVERIFY);
    tl_tls_context_unref(cctx);
}

/* ---- tulip's client against peers that do not speak TLS ----------------- */

/* A plain TCP server whose connections send `greet` (len bytes) when made
 * and, close_after, close; or say nothing at all (greet NULL). */
typedef struct raw_srv {
    tl_server_t *srv;
    tl_sockaddr_t addr;
    prec_t recs[2];
    pfactory_t fac;
} raw_srv_t;

static void raw_start(tl_loop_t *loop, raw_srv_t *r) {
    memset(r, 0, sizeof *r);
    r->fac = (pfactory_t){.recs = r->recs, .n = 2};
    r->srv = tulip_server(loop, &r->fac, NULL, &r->addr);
}

/* A TLS client to it: the future's outcome (ms at most). */
static int raw_client(tl_loop_t *loop, raw_srv_t *r, prec_t *c,
                      int64_t timeout_ns, int ms) {
    tl_tls_context_t *cctx = client_ctx(NULL);
    tl_tls_options_t ctls = {.size = sizeof ctls, .context = cctx,
                             .server_hostname = "localhost",
                             .handshake_timeout_ns = timeout_ns};
    tl_connect_options_t o = {.size = sizeof o, .tls = &ctls};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &prec_proto, c, &r->addr, &o, &f), 0);
    tl_tls_context_unref(cctx);
    CU_ASSERT_TRUE(run_fut(loop, f, ms));
    void *v;
    int rc = tl_future_done(f) ? tl_future_result(f, &v) : TL_EPENDING;
    tl_future_unref(f);
    return rc;
}

static void raw_stop(tl_loop_t *loop, raw_srv_t *r) {
    tl_server_close_clients(r->srv);
    tl_future_t *w;
    CU_ASSERT_EQUAL(tl_server_wait_closed(r->srv, &w), 0);
    tl_server_close(r->srv);
    CU_ASSERT_TRUE(run_fut(loop, w, 5000));
    tl_future_unref(w);
    tl_server_free(r->srv);
}

static void test_http_answer_instead_of_handshake_fails(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    raw_srv_t r;
    raw_start(loop, &r);
    r.fac.greet = "HTTP/1.1 200 OK\r\n\r\n";
    prec_t c = {0};
    CU_ASSERT_EQUAL(raw_client(loop, &r, &c, 0, 5000), TL_ETLS);
    CU_ASSERT_EQUAL(c.made, 0);
    raw_stop(loop, &r);
    tl_test_loop_free(loop);
}

/* The first 10 bytes of a real TLS record: the header of a handshake
 * record (type 22, version 3.3, length 122) and the start of the
 * ServerHello it carries (type 2, length 118, version 3.3). */
static const char truncated_record[10] = {0x16, 0x03, 0x03, 0x00, 0x7a,
                                          0x02, 0x00, 0x00, 0x76, 0x03};

/* Answer the ClientHello with the truncated record and a FIN (write_eof:
 * the socket stays open for reading, so the rest of the client's bytes
 * cannot turn the close into a reset). */
static void answer_truncated(tl_transport_t *t, const void *d, size_t n,
                             void *ctx) {
    (void)d, (void)n;
    prec_t *r = ctx;
    if (r->len++ == 0) {
        tl_transport_write(t, truncated_record, sizeof truncated_record);
        tl_transport_write_eof(t);
    }
}

static const tl_protocol_t truncating_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = prec_made,
    .data_received = answer_truncated,
    .connection_lost = prec_lost,
};

static int truncating_factory(void *ctx, const tl_protocol_t **proto,
                              void **pctx) {
    *proto = &truncating_proto;
    *pctx = ctx;
    return 0;
}

static void test_truncated_record_fails(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    prec_t srec = {0};
    tl_sockaddr_t a = loopback(0), bound;
    tl_server_t *srv = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_server_addrs(loop, truncating_factory,
                                                 &srec, &a, 1, NULL, &srv),
                          0);
    CU_ASSERT_EQUAL(tl_server_sockets(srv, &bound, 1), 1);
    raw_srv_t r = {.srv = srv, .addr = bound};
    prec_t c = {0};
    int rc = raw_client(loop, &r, &c, 0, 5000);
    /* The record's header promised 122 bytes; 5 of them came, then the
     * peer's FIN: at the TCP level a cut record and a close without
     * close_notify are the same event, and tls.h answers both with
     * TL_ETLSEOF (an error, no hang, no leak). */
    CU_ASSERT_EQUAL(rc, TL_ETLSEOF);
    CU_ASSERT_EQUAL(c.made, 0);
    CU_ASSERT_TRUE(run_flag(loop, &srec.lost, 5000)); /* the client went */
    tl_server_free(srv);
    tl_test_loop_free(loop);
}

static void test_stalled_handshake_times_out(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    raw_srv_t r;
    raw_start(loop, &r); /* accepts and never answers */
    prec_t c = {0};
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(raw_client(loop, &r, &c, 100000000, 3000), TL_ETIMEDOUT);
    uint64_t took = tl_now_ns() - t0;
    CU_ASSERT_TRUE(took >= 90000000 && took < 2000000000);
    CU_ASSERT_EQUAL(c.made, 0);
    /* The server's side sees its connection end (the client aborted). */
    CU_ASSERT_TRUE(run_flag(loop, &r.recs[0].lost, 5000));
    raw_stop(loop, &r);
    tl_test_loop_free(loop);
}

static void test_cancel_mid_handshake(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    raw_srv_t r;
    raw_start(loop, &r);
    tl_tls_context_t *cctx = client_ctx(NULL);
    tl_tls_options_t ctls = {.size = sizeof ctls, .context = cctx,
                             .server_hostname = "localhost"};
    tl_connect_options_t o = {.size = sizeof o, .tls = &ctls};
    prec_t c = {0};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &prec_proto, &c, &r.addr, &o, &f), 0);
    CU_ASSERT_TRUE(run_flag(loop, &r.recs[0].made, 5000)); /* handshaking */
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_TRUE(tl_future_cancelled(f));
    CU_ASSERT_TRUE(run_flag(loop, &r.recs[0].lost, 5000));
    CU_ASSERT_EQUAL(c.made, 0);
    tl_future_unref(f);
    tl_tls_context_unref(cctx);
    raw_stop(loop, &r);
    tl_test_loop_free(loop);
}

/* ---- tulip's server against bad clients --------------------------------- */

static void test_server_drops_garbage_client_and_goes_on(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    tl_test_exc_t exc = {0};
    tl_test_capture_exceptions(loop, &exc);
    tl_loop_set_debug(loop, 1);
    tl_tls_context_t *sctx = server_ctx(NULL, NULL);
    tl_tls_options_t stls = {.size = sizeof stls, .context = sctx};
    prec_t srec[2];
    memset(srec, 0, sizeof srec);
    pfactory_t fac = {.recs = srec, .n = 2, .echo = 1};
    tl_sockaddr_t bound;
    tl_server_t *srv = tulip_server(loop, &fac, &stls, &bound);
    tl_tls_context_unref(sctx);
    /* The garbage client: plain TCP, an HTTP request. */
    prec_t g = {.greet = "GET / HTTP/1.0\r\n\r\n"};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &prec_proto, &g, &bound, NULL, &f), 0);
    CU_ASSERT_TRUE(run_flag(loop, &g.lost, 5000)); /* dropped */
    tl_future_unref(f);
    CU_ASSERT_EQUAL(fac.next, 0); /* no protocol was made for it */
    run_ms(loop, 2);
    CU_ASSERT_TRUE(exc.count >= 1);
    CU_ASSERT_EQUAL(exc.last_error, TL_ETLS);
    /* A good client next. */
    attempt_t a;
    memset(&a, 0, sizeof a);
    tl_tls_context_t *cctx = client_ctx(NULL);
    tl_tls_options_t ctls = {.size = sizeof ctls, .context = cctx,
                             .server_hostname = "localhost"};
    tl_connect_options_t o = {.size = sizeof o, .tls = &ctls};
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &prec_proto, &a.c, &bound, &o, &f), 0);
    tl_tls_context_unref(cctx);
    CU_ASSERT_TRUE(run_fut(loop, f, 5000));
    void *v;
    CU_ASSERT_EQUAL_FATAL(tl_future_result(f, &v), 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_transport_write(v, "ok", 2), 0);
    CU_ASSERT_TRUE(run_len(loop, &a.c, 2, 5000));
    CU_ASSERT_EQUAL(srec[0].made, 1);
    tl_transport_close(v);
    CU_ASSERT_TRUE(run_flag(loop, &srec[0].lost, 5000));
    tl_server_free(srv);
    tl_test_loop_free(loop);
}

static void test_server_drops_stalled_client_at_timeout(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL);
    tl_tls_options_t stls = {.size = sizeof stls, .context = sctx,
                             .handshake_timeout_ns = 100000000};
    prec_t srec[1];
    memset(srec, 0, sizeof srec);
    pfactory_t fac = {.recs = srec, .n = 1};
    tl_sockaddr_t bound;
    tl_server_t *srv = tulip_server(loop, &fac, &stls, &bound);
    tl_tls_context_unref(sctx);
    prec_t g = {0}; /* says nothing */
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &prec_proto, &g, &bound, NULL, &f), 0);
    CU_ASSERT_TRUE(run_fut(loop, f, 5000));
    tl_future_unref(f);
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_TRUE(run_flag(loop, &g.lost, 3000));
    uint64_t took = tl_now_ns() - t0;
    CU_ASSERT_TRUE(took >= 50000000 && took < 2000000000);
    CU_ASSERT_EQUAL(fac.next, 0);
    tl_future_t *w;
    CU_ASSERT_EQUAL(tl_server_close(srv), 0);
    CU_ASSERT_EQUAL(tl_server_wait_closed(srv, &w), 0);
    CU_ASSERT_TRUE(run_fut(loop, w, 1000)); /* nothing left */
    tl_future_unref(w);
    tl_server_free(srv);
    tl_test_loop_free(loop);
}

static void test_killed_s_client_ends_without_close_notify(void) {
    NEED_TLS();
    const tl_test_certs_t *c = certs();
    tl_loop_t *loop = tl_test_loop();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL);
    tl_tls_options_t tls = {.size = sizeof tls, .context = sctx};
    prec_t srec[1];
    memset(srec, 0, sizeof srec);
    pfactory_t fac = {.recs = srec, .n = 1};
    tl_sockaddr_t bound;
    tl_server_t *s = tulip_server(loop, &fac, &tls, &bound);
    tl_tls_context_unref(sctx);
    char conn[32];
    snprintf(conn, sizeof conn, "127.0.0.1:%d", port_of(&bound));
    const char *argv[] = {"openssl", "s_client", "-connect", conn, "-CAfile",
                          c->ca_cert, "-servername", "localhost", NULL};
    peer_t p;
    CU_ASSERT_EQUAL_FATAL(peer_spawn(&p, (char *const *)argv), 0);
    CU_ASSERT_TRUE(run_flag(loop, &srec[0].made, 5000));
    peer_write(&p, "partial");
    CU_ASSERT_TRUE(run_len(loop, &srec[0], 7, 5000));
    peer_stop(&p); /* SIGKILL: the kernel closes the socket, no alert */
    CU_ASSERT_TRUE(run_flag(loop, &srec[0].lost, 5000));
    CU_ASSERT_TRUE(srec[0].lost_error == TL_ETLSEOF ||
                   srec[0].lost_error == TL_ECONNRESET);
    tl_server_free(s);
    tl_test_loop_free(loop);
}

/* ---- the options -------------------------------------------------------- */

static void test_tls_option_errors(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL), *cctx = client_ctx(NULL);
    tl_sockaddr_t a = loopback(9);
    tl_future_t *f = NULL;
    /* A server context to connect, a client one to serve, none at all. */
    tl_tls_options_t t = {.size = sizeof t, .context = sctx};
    tl_connect_options_t co = {.size = sizeof co, .tls = &t};
    CU_ASSERT_EQUAL(tl_create_connection(loop, &prec_proto, NULL, "127.0.0.1",
                                         "9", &co, &f),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(
        tl_create_connection_addr(loop, &prec_proto, NULL, &a, &co, &f),
        TL_EINVAL);
    CU_ASSERT_EQUAL(
        tl_create_unix_connection(loop, &prec_proto, NULL, "@tulip-t3", &co, &f),
        TL_EINVAL);
    t.context = NULL;
    CU_ASSERT_EQUAL(tl_create_connection(loop, &prec_proto, NULL, "127.0.0.1",
                                         "9", &co, &f),
                    TL_EINVAL);
    t.context = cctx;
    t.size = 4; /* too small to hold the context */
    CU_ASSERT_EQUAL(tl_create_connection(loop, &prec_proto, NULL, "127.0.0.1",
                                         "9", &co, &f),
                    TL_EINVAL);
    CU_ASSERT_PTR_NULL(f);
    t.size = sizeof t;
    tl_server_options_t so = {.size = sizeof so, .tls = &t}; /* client ctx */
    tl_server_t *srv = NULL;
    tl_sockaddr_t any = loopback(0);
    pfactory_t fac = {0};
    CU_ASSERT_EQUAL(tl_create_server_addrs(loop, pfactory_fn, &fac, &any, 1,
                                           &so, &srv),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_server(loop, pfactory_fn, &fac, "127.0.0.1", "0",
                                     &so, &f),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_unix_server(loop, pfactory_fn, &fac, "@tulip-t3",
                                          &so, &srv),
                    TL_EINVAL);
    CU_ASSERT_PTR_NULL(srv);
    /* The one-address form has no host to check: without server_hostname
     * the handshake cannot start (the future fails with TL_EINVAL). */
    prec_t srec[1];
    memset(srec, 0, sizeof srec);
    pfactory_t sf = {.recs = srec, .n = 1};
    tl_tls_options_t st = {.size = sizeof st, .context = sctx};
    tl_sockaddr_t bound;
    srv = tulip_server(loop, &sf, &st, &bound);
    tl_tls_options_t ct = {.size = sizeof ct, .context = cctx};
    co.tls = &ct;
    prec_t c = {0};
    int rc = tl_create_connection_addr(loop, &prec_proto, &c, &bound, &co, &f);
    if (rc == 0) {
        CU_ASSERT_TRUE(run_fut(loop, f, 5000));
        void *v;
        rc = tl_future_result(f, &v);
        tl_future_unref(f);
    }
    CU_ASSERT_EQUAL(rc, TL_EINVAL);
    CU_ASSERT_EQUAL(c.made, 0);
    tl_server_free(srv);
    run_ms(loop, 5);
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(cctx);
    tl_test_loop_free(loop);
}

/* Every allocation of a TLS connection's setup (client and server side,
 * in one loop) fails in turn: each attempt ends cleanly, with the
 * connection or an error, and leaks nothing. */
static void test_tls_connect_setup_out_of_memory(void) {
    NEED_TLS();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL), *cctx = client_ctx(NULL);
    int ok = 0;
    for (long n = 1; n < 400 && !ok; n++) {
        tl_loop_t *loop = tl_test_net_loop();
        tl_test_exc_t exc = {0}; /* the server's reports of its failures */
        tl_test_capture_exceptions(loop, &exc);
        prec_t srec[1], c;
        memset(srec, 0, sizeof srec);
        memset(&c, 0, sizeof c);
        pfactory_t fac = {.recs = srec, .n = 1, .echo = 1};
        tl_tls_options_t st = {.size = sizeof st, .context = sctx,
                               .handshake_timeout_ns = 200000000};
        tl_sockaddr_t any = loopback(0), bound;
        tl_server_options_t so = {.size = sizeof so, .tls = &st};
        tl_server_t *srv = NULL;
        if (tl_create_server_addrs(loop, pfactory_fn, &fac, &any, 1, &so,
                                   &srv) != 0 ||
            tl_server_sockets(srv, &bound, 1) != 1) {
            CU_FAIL("no server");
            tl_test_loop_free(loop);
            break;
        }
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port_of(&bound));
        tl_tls_options_t ct = {.size = sizeof ct, .context = cctx,
                               .handshake_timeout_ns = 200000000};
        tl_connect_options_t co = {.size = sizeof co, .tls = &ct};
        tl_future_t *f = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl_create_connection(loop, &prec_proto, &c, "127.0.0.1", ps,
                                      &co, &f);
        if (rc) {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        } else {
            run_fut(loop, f, 1000);
            void *v;
            rc = tl_future_done(f) ? tl_future_result(f, &v) : TL_EPENDING;
            if (rc == 0 && !c.lost) {
                tl_transport_write(v, "hi", 2);
                run_len(loop, &c, 2, 1000);
                ok = c.len == 2;
                if (!c.lost) /* borrowed: gone once lost */
                    tl_transport_close(v);
                run_flag(loop, &c.lost, 1000);
            }
            tl_future_unref(f);
        }
        tl_test_fail_alloc_at(0);
        tl_server_free(srv);
        run_ms(loop, 2);
        tl_test_loop_free(loop);
    }
    CU_ASSERT_TRUE(ok); /* past the last allocation it works */
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(cctx);
}

TL_TEST_SUITE(tls_bad,
              TL_TEST(test_expired_certificate_fails),
              TL_TEST(test_self_signed_certificate_fails),
              TL_TEST(test_wrong_host_fails),
              TL_TEST(test_unknown_ca_fails),
              TL_TEST(test_skip_verify_accepts_self_signed),
              TL_TEST(test_skip_hostname_check_accepts_wrong_host),
              TL_TEST(test_http_answer_instead_of_handshake_fails),
              TL_TEST(test_truncated_record_fails),
              TL_TEST(test_stalled_handshake_times_out),
              TL_TEST(test_cancel_mid_handshake),
              TL_TEST(test_server_drops_garbage_client_and_goes_on),
              TL_TEST(test_server_drops_stalled_client_at_timeout),
              TL_TEST(test_killed_s_client_ends_without_close_notify),
              TL_TEST(test_tls_option_errors),
              TL_TEST(test_tls_connect_setup_out_of_memory))
