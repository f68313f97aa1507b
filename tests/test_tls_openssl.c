/*
 * tls_openssl: TLS through create_connection / create_server and the
 * streams, against real peers: `openssl s_server` (Debian's OpenSSL 3.0, a
 * child process) facing tulip's client, `openssl s_client` facing tulip's
 * server, and tulip against itself (create_connection/create_server,
 * open_connection/start_server, STARTTLS with tl_stream_start_tls).
 * Certificates come from tls_certs.h (made at test time). The openssl
 * tests use the kernel netstack (the child needs a real socket); the
 * tulip-only ones run on the one TL_NETSTACK names.
 */
#include "tls_peer_test.h"

/* ---- tulip's client against openssl s_server -------------------------- */

typedef struct www {
    const char *host;             /* what create_connection gets */
    tl_tls_context_t *ctx;        /* the client's */
    int version;                  /* seen */
    char cipher[64];
    char alpn[32];
    size_t cert_len;
    int cert_is_der, cert_small_enobufs;
    int handshake_rc;             /* the future's outcome */
    prec_t r;
} www_t;

/* s_server -www (plus extra) on a port; tulip connects, records what the
 * getters say, asks for the page and reads it to the end. */
static void www_exchange(www_t *w, const char *const *extra) {
    peer_t p;
    int port = 0;
    CU_ASSERT_FATAL(s_server_start(&p, &port, extra));
    tl_loop_t *loop = tl_test_loop();
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    tl_tls_options_t tls = {.size = sizeof tls, .context = w->ctx};
    tl_connect_options_t o = {.size = sizeof o, .tls = &tls};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection(loop, &prec_proto, &w->r, w->host, ps, &o, &f), 0);
    CU_ASSERT_TRUE(run_fut(loop, f, 5000));
    void *v = NULL;
    w->handshake_rc = tl_future_result(f, &v);
    if (w->handshake_rc == 0) {
        tl_transport_t *t = v;
        CU_ASSERT_EQUAL(w->r.made, 1); /* connection_made ran first */
        CU_ASSERT_PTR_EQUAL(w->r.t, t);
        CU_ASSERT_EQUAL(tl_tls_get_version(t, &w->version), 0);
        const char *c = NULL;
        if (tl_tls_get_cipher(t, &c) == 0 && c)
            snprintf(w->cipher, sizeof w->cipher, "%s", c);
        const char *a = NULL;
        size_t alen = 0;
        if (tl_tls_get_alpn(t, &a, &alen) == 0 && a && alen < sizeof w->alpn) {
            memcpy(w->alpn, a, alen);
            w->alpn[alen] = 0;
        }
        unsigned char small[4], der[4096];
        size_t len = 0;
        w->cert_small_enobufs =
            tl_tls_get_peer_certificate(t, small, sizeof small, &len) ==
            TL_ENOBUFS;
        if (tl_tls_get_peer_certificate(t, der, sizeof der, &w->cert_len) == 0)
            w->cert_is_der = w->cert_len == len && der[0] == 0x30 &&
                             memmem(der, w->cert_len, "localhost", 9) != NULL;
        const char *req = "GET / HTTP/1.0\r\n\r\n";
        CU_ASSERT_EQUAL(tl_transport_write(t, req, strlen(req)), 0);
        CU_ASSERT_TRUE(run_flag(loop, &w->r.lost, 5000));
    }
    tl_future_unref(f);
    tl_test_loop_free(loop);
    peer_stop(&p);
}

static void test_client_gets_page_over_tls13_checking_localhost(void) {
    NEED_TLS();
    www_t w = {.host = "localhost", .ctx = client_ctx(NULL)};
    const char *extra[] = {"-www", "-tls1_3", NULL};
    www_exchange(&w, extra);
    CU_ASSERT_EQUAL(w.handshake_rc, 0);
    CU_ASSERT_EQUAL(w.version, TL_TLS_VERSION_1_3);
    CU_ASSERT_TRUE(strncmp(w.cipher, "TLS_AES_", 8) == 0 ||
                   strncmp(w.cipher, "TLS_CHACHA20", 12) == 0);
    CU_ASSERT_EQUAL(w.alpn[0], 0); /* none offered */
    CU_ASSERT_TRUE(w.cert_small_enobufs);
    CU_ASSERT_TRUE(w.cert_is_der);
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)w.r.data, "HTTP/1.0 200 ok"));
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)w.r.data, "TLSv1.3"));
    /* s_server -www ends its answer with close_notify, or closes (ETLSEOF) */
    CU_ASSERT_TRUE(w.r.lost_error == 0 || w.r.lost_error == TL_ETLSEOF);
    tl_tls_context_unref(w.ctx);
}

static void test_client_speaks_tls12_checking_ip_address(void) {
    NEED_TLS();
    /* host 127.0.0.1: the name checked is the IP (its SAN), sent as no SNI */
    www_t w = {.host = "127.0.0.1", .ctx = client_ctx(NULL)};
    const char *extra[] = {"-www", "-tls1_2", NULL};
    www_exchange(&w, extra);
    CU_ASSERT_EQUAL(w.handshake_rc, 0);
    CU_ASSERT_EQUAL(w.version, TL_TLS_VERSION_1_2);
    CU_ASSERT_PTR_NOT_NULL(strstr(w.cipher, "ECDHE_ECDSA"));
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)w.r.data, "HTTP/1.0 200 ok"));
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)w.r.data, "TLSv1.2"));
    tl_tls_context_unref(w.ctx);
}

static void test_client_negotiates_alpn_with_s_server(void) {
    NEED_TLS();
    www_t w = {.host = "127.0.0.1", .ctx = client_ctx(NULL)};
    const char *protos[] = {"h2", "http/1.1"};
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(w.ctx, protos, 2), 0);
    const char *extra[] = {"-www", "-alpn", "http/1.1", NULL};
    www_exchange(&w, extra);
    CU_ASSERT_EQUAL(w.handshake_rc, 0);
    CU_ASSERT_STRING_EQUAL(w.alpn, "http/1.1");
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)w.r.data, "HTTP/1.0 200 ok"));
    tl_tls_context_unref(w.ctx);
}

static void test_client_certificate_required_by_s_server(void) {
    NEED_TLS();
    const tl_test_certs_t *c = certs();
    www_t w = {.host = "127.0.0.1", .ctx = client_ctx(NULL)};
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(w.ctx, c->client_cert,
                                                        c->client_key),
                    0);
    const char *extra[] = {"-www", "-Verify", "1", "-CAfile", c->ca_cert, NULL};
    www_exchange(&w, extra);
    CU_ASSERT_EQUAL(w.handshake_rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)w.r.data, "HTTP/1.0 200 ok"));
    tl_tls_context_unref(w.ctx);
}

static void test_client_without_required_certificate_fails_tls12(void) {
    NEED_TLS();
    /* TLS 1.2: the server refuses during the handshake (a fatal alert).
     * (Under 1.3 the client's handshake ends first and the alert ends the
     * connection afterwards.) */
    www_t w = {.host = "127.0.0.1", .ctx = client_ctx(NULL)};
    const char *extra[] = {"-www", "-tls1_2", "-Verify", "1", "-CAfile",
                           certs()->ca_cert, NULL};
    www_exchange(&w, extra);
    CU_ASSERT_EQUAL(w.handshake_rc, TL_ETLS);
    CU_ASSERT_EQUAL(w.r.made, 0);
    tl_tls_context_unref(w.ctx);
}

/* ---- openssl s_client against tulip's server ---------------------------- */

static void test_s_client_echoes_through_tulip_server(void) {
    NEED_TLS();
    const tl_test_certs_t *c = certs();
    tl_loop_t *loop = tl_test_loop();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL);
    tl_tls_options_t tls = {.size = sizeof tls, .context = sctx};
    prec_t srec[1];
    memset(srec, 0, sizeof srec);
    pfactory_t fac = {.recs = srec, .n = 1, .echo = 1};
    tl_sockaddr_t bound;
    tl_server_t *s = tulip_server(loop, &fac, &tls, &bound);
    tl_tls_context_unref(sctx); /* the server holds its own reference */
    char conn[32];
    snprintf(conn, sizeof conn, "127.0.0.1:%d", port_of(&bound));
    const char *argv[] = {"openssl", "s_client", "-connect", conn, "-CAfile",
                          c->ca_cert, "-servername", "localhost", NULL};
    peer_t p;
    CU_ASSERT_EQUAL_FATAL(peer_spawn(&p, (char *const *)argv), 0);
    CU_ASSERT_TRUE(run_flag(loop, &srec[0].made, 5000));
    peer_write(&p, "hello tulip\n");
    CU_ASSERT_TRUE(peer_wait_for(&p, loop, "hello tulip", 5000));
    CU_ASSERT_TRUE(strstr(p.buf, "Verification: OK") != NULL ||
                   strstr(p.buf, "Verify return code: 0") != NULL);
    CU_ASSERT_STRING_EQUAL((char *)srec[0].data, "hello tulip\n");
    const char *sni = NULL;
    CU_ASSERT_EQUAL(tl_tls_get_server_name(srec[0].t, &sni), 0);
    CU_ASSERT_PTR_NOT_NULL(sni);
    if (sni)
        CU_ASSERT_STRING_EQUAL(sni, "localhost");
    int ver = 0;
    CU_ASSERT_EQUAL(tl_tls_get_version(srec[0].t, &ver), 0);
    CU_ASSERT_EQUAL(ver, TL_TLS_VERSION_1_3);
    /* stdin's end: s_client says close_notify, a clean end for tulip */
    peer_close_stdin(&p);
    CU_ASSERT_TRUE(run_flag(loop, &srec[0].lost, 5000));
    CU_ASSERT_EQUAL(srec[0].lost_error, 0);
    peer_stop(&p);
    tl_server_free(s);
    tl_test_loop_free(loop);
}

/* ---- tulip against itself ----------------------------------------------- */

static void test_tulip_client_and_server_echo(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL), *cctx = client_ctx(NULL);
    tl_tls_options_t stls = {.size = sizeof stls, .context = sctx};
    prec_t srec[3], crec[3];
    memset(srec, 0, sizeof srec);
    memset(crec, 0, sizeof crec);
    pfactory_t fac = {.recs = srec, .n = 3, .echo = 1};
    tl_sockaddr_t bound;
    tl_server_t *s = tulip_server(loop, &fac, &stls, &bound);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port_of(&bound));
    /* The options are read during the call only. */
    tl_tls_options_t ctls = {.size = sizeof ctls, .context = cctx,
                             .server_hostname = "localhost"};
    tl_connect_options_t o = {.size = sizeof o, .tls = &ctls};
    tl_future_t *f[2];
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL_FATAL(tl_create_connection(loop, &prec_proto, &crec[i],
                                                   "127.0.0.1", ps, &o, &f[i]),
                              0);
    memset(&ctls, 0, sizeof ctls);
    tl_tls_context_unref(sctx);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_TRUE_FATAL(run_fut(loop, f[i], 5000));
        void *v;
        CU_ASSERT_EQUAL_FATAL(tl_future_result(f[i], &v), 0);
        CU_ASSERT_EQUAL(tl_transport_write(v, "ping", 4), 0);
        CU_ASSERT_TRUE(run_len(loop, &crec[i], 4, 5000));
        CU_ASSERT_STRING_EQUAL((char *)crec[i].data, "ping");
        tl_future_unref(f[i]);
    }
    const char *sni = NULL;
    CU_ASSERT_EQUAL(tl_tls_get_server_name(srec[0].t, &sni), 0);
    CU_ASSERT_PTR_NOT_NULL(sni);
    CU_ASSERT_EQUAL(tl_tls_session_reused(crec[0].t), 0);
    /* A third connection of the same context resumes a session (a ticket
     * came with the first echo); its options are a new struct. */
    tl_tls_options_t ctls3 = {.size = sizeof ctls3, .context = cctx,
                              .server_hostname = "localhost"};
    tl_connect_options_t o3 = {.size = sizeof o3, .tls = &ctls3};
    tl_future_t *f3;
    CU_ASSERT_EQUAL_FATAL(tl_create_connection(loop, &prec_proto, &crec[2],
                                               "127.0.0.1", ps, &o3, &f3),
                          0);
    CU_ASSERT_TRUE_FATAL(run_fut(loop, f3, 5000));
    CU_ASSERT_EQUAL(tl_future_error(f3), 0);
    tl_future_unref(f3);
    CU_ASSERT_EQUAL(tl_tls_session_reused(crec[2].t), 1);
    CU_ASSERT_TRUE(run_flag(loop, &srec[2].made, 5000));
    CU_ASSERT_EQUAL(tl_tls_session_reused(srec[2].t), 1);
    tl_transport_abort(crec[2].t);
    CU_ASSERT_TRUE(run_flag(loop, &srec[2].lost, 5000));
    /* The client closes the first: close_notify, a clean end both sides. */
    CU_ASSERT_EQUAL(tl_transport_close(crec[0].t), 0);
    CU_ASSERT_TRUE(run_flag(loop, &srec[0].lost, 5000));
    CU_ASSERT_EQUAL(srec[0].lost_error, 0);
    CU_ASSERT_TRUE(run_flag(loop, &crec[0].lost, 5000));
    CU_ASSERT_EQUAL(crec[0].lost_error, 0);
    /* close_clients closes the TLS transport: the client gets close_notify
     * (eof, then a clean connection_lost), and wait_closed completes. */
    tl_future_t *w;
    CU_ASSERT_EQUAL(tl_server_wait_closed(s, &w), 0);
    CU_ASSERT_EQUAL(tl_server_close(s), 0);
    CU_ASSERT_FALSE(tl_future_done(w));
    CU_ASSERT_EQUAL(tl_server_close_clients(s), 0);
    CU_ASSERT_TRUE(run_flag(loop, &crec[1].lost, 5000));
    CU_ASSERT_EQUAL(crec[1].lost_error, 0);
    CU_ASSERT_EQUAL(crec[1].eofs, 1);
    CU_ASSERT_TRUE(run_fut(loop, w, 5000));
    CU_ASSERT_EQUAL(srec[1].lost_error, 0);
    tl_future_unref(w);
    tl_server_free(s);
    tl_test_loop_free(loop);
    tl_tls_context_unref(cctx);
}

/* tl_create_server resolves first: the TLS options must outlive the call
 * in its own copy. */
static void test_create_server_keeps_its_own_tls_options(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL), *cctx = client_ctx(NULL);
    tl_tls_options_t stls = {.size = sizeof stls, .context = sctx};
    prec_t srec[1], c;
    memset(srec, 0, sizeof srec);
    memset(&c, 0, sizeof c);
    pfactory_t fac = {.recs = srec, .n = 1, .echo = 1};
    tl_server_options_t so = {.size = sizeof so, .tls = &stls};
    tl_future_t *sf;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_server(loop, pfactory_fn, &fac, "127.0.0.1", "0", &so, &sf),
        0);
    memset(&stls, 0, sizeof stls);
    tl_tls_context_unref(sctx);
    CU_ASSERT_TRUE_FATAL(run_fut(loop, sf, 5000));
    void *v = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_future_result(sf, &v), 0);
    tl_server_t *srv = v;
    tl_future_unref(sf);
    tl_sockaddr_t bound;
    CU_ASSERT_EQUAL(tl_server_sockets(srv, &bound, 1), 1);
    tl_tls_options_t ctls = {.size = sizeof ctls, .context = cctx,
                             .server_hostname = "localhost"};
    tl_connect_options_t co = {.size = sizeof co, .tls = &ctls};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &prec_proto, &c, &bound, &co, &f), 0);
    CU_ASSERT_TRUE(run_fut(loop, f, 5000));
    CU_ASSERT_EQUAL_FATAL(tl_future_result(f, &v), 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_transport_write(v, "resolved", 8), 0);
    CU_ASSERT_TRUE(run_len(loop, &c, 8, 5000));
    tl_transport_close(v);
    CU_ASSERT_TRUE(run_flag(loop, &srec[0].lost, 5000));
    tl_server_free(srv);
    /* And a create_server dropped while it resolves releases its copy. */
    sctx = server_ctx(NULL, NULL);
    stls = (tl_tls_options_t){.size = sizeof stls, .context = sctx};
    CU_ASSERT_EQUAL_FATAL(
        tl_create_server(loop, pfactory_fn, &fac, "127.0.0.1", "0", &so, &sf),
        0);
    tl_tls_context_unref(sctx);
    tl_future_cancel(sf, NULL);
    tl_future_unref(sf);
    run_ms(loop, 20);
    tl_test_loop_free(loop);
    tl_tls_context_unref(cctx);
}

static void test_server_wait_closed_covers_handshakes(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL);
    tl_tls_options_t stls = {.size = sizeof stls, .context = sctx};
    prec_t srec[1], raw;
    memset(srec, 0, sizeof srec);
    memset(&raw, 0, sizeof raw);
    pfactory_t fac = {.recs = srec, .n = 1};
    tl_sockaddr_t bound;
    tl_server_t *s = tulip_server(loop, &fac, &stls, &bound);
    tl_tls_context_unref(sctx);
    /* A plain TCP client that never starts its handshake. */
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &prec_proto, &raw, &bound, NULL, &f), 0);
    CU_ASSERT_TRUE(run_fut(loop, f, 5000));
    tl_future_unref(f);
    run_ms(loop, 10);
    tl_future_t *w;
    CU_ASSERT_EQUAL(tl_server_close(s), 0);
    CU_ASSERT_EQUAL(tl_server_wait_closed(s, &w), 0);
    run_ms(loop, 10);
    CU_ASSERT_FALSE(tl_future_done(w)); /* the handshake still runs */
    CU_ASSERT_EQUAL(srec[0].made, 0);
    CU_ASSERT_EQUAL(tl_server_close_clients(s), 0); /* gives it up */
    CU_ASSERT_TRUE(run_fut(loop, w, 5000));
    CU_ASSERT_TRUE(run_flag(loop, &raw.lost, 5000));
    CU_ASSERT_EQUAL(srec[0].made, 0); /* the factory never ran */
    CU_ASSERT_EQUAL(fac.next, 0);
    tl_future_unref(w);
    tl_server_free(s);
    tl_test_loop_free(loop);
}

static void test_server_freed_mid_handshake_lives_until_it_ends(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL);
    tl_tls_options_t stls = {.size = sizeof stls, .context = sctx};
    prec_t srec[1], raw;
    memset(srec, 0, sizeof srec);
    memset(&raw, 0, sizeof raw);
    pfactory_t fac = {.recs = srec, .n = 1};
    tl_sockaddr_t bound;
    tl_server_t *s = tulip_server(loop, &fac, &stls, &bound);
    tl_tls_context_unref(sctx);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &prec_proto, &raw, &bound, NULL, &f), 0);
    CU_ASSERT_TRUE(run_fut(loop, f, 5000));
    tl_future_unref(f);
    run_ms(loop, 10); /* accepted: the server's handshake waits */
    tl_server_free(s); /* it lives on while the handshake runs */
    CU_ASSERT_EQUAL(tl_transport_close(raw.t), 0);
    CU_ASSERT_TRUE(run_flag(loop, &raw.lost, 5000));
    run_ms(loop, 10); /* the handshake fails: the server goes (no leak) */
    CU_ASSERT_EQUAL(fac.next, 0);
    tl_test_loop_free(loop);
}

static void test_loop_closed_mid_handshake_leaks_nothing(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_net_loop();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL), *cctx = client_ctx(NULL);
    tl_tls_options_t stls = {.size = sizeof stls, .context = sctx};
    tl_tls_options_t ctls = {.size = sizeof ctls, .context = cctx,
                             .server_hostname = "localhost"};
    /* A TLS server (its handshake waits for the ClientHello) and a plain
     * one that never answers (the client's handshake waits): both sides
     * are mid-handshake when the loop closes. */
    prec_t srec[1], prec[1], crec, raw;
    memset(srec, 0, sizeof srec);
    memset(prec, 0, sizeof prec);
    memset(&crec, 0, sizeof crec);
    memset(&raw, 0, sizeof raw);
    pfactory_t fac = {.recs = srec, .n = 1}, pfac = {.recs = prec, .n = 1};
    tl_sockaddr_t bound, pbound;
    tl_server_t *s = tulip_server(loop, &fac, &stls, &bound);
    tl_server_t *ps = tulip_server(loop, &pfac, NULL, &pbound);
    tl_future_t *rf, *f;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &prec_proto, &raw, &bound, NULL, &rf),
        0);
    tl_connect_options_t o = {.size = sizeof o, .tls = &ctls};
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &prec_proto, &crec, &pbound, &o, &f),
        0);
    CU_ASSERT_TRUE(run_fut(loop, rf, 5000));
    CU_ASSERT_TRUE(run_flag(loop, &prec[0].made, 5000));
    run_ms(loop, 5);
    CU_ASSERT_FALSE(tl_future_done(f));
    tl_server_free(s); /* alive while its handshake runs */
    tl_server_free(ps);
    tl_test_loop_free(loop);
    CU_ASSERT_FALSE(tl_future_done(f)); /* a closed loop completes nothing */
    CU_ASSERT_EQUAL(crec.made, 0);
    CU_ASSERT_EQUAL(fac.next, 0);
    tl_future_unref(f);
    tl_future_unref(rf);
    tl_tls_context_unref(cctx);
    tl_tls_context_unref(sctx);
}

/* ---- streams ------------------------------------------------------------ */

typedef struct sworld {
    tl_loop_t *loop;
    tl_tls_options_t stls, ctls;
    char port[16];
    int handled, handler_rc, client_rc, client_done;
    int starttls;      /* the handler expects "STARTTLS\n" first */
    int extra_bytes;   /* the client sends bytes after STARTTLS at once */
    int version;       /* the client's transport after the upgrade */
    int distrust;      /* the client trusts another CA: the upgrade fails */
    int after_rc;      /* the client's read after a failed upgrade */
} sworld_t;

static int echo_line(tl_stream_t *s) {
    char line[256];
    size_t got = 0;
    int rc = tl_stream_readline(s, line, sizeof line, &got);
    if (rc == 0 && got)
        rc = tl_stream_write(s, line, got);
    if (rc == 0)
        rc = tl_stream_drain(s);
    return rc;
}

static int s_handler(tl_stream_t *s, void *ctx) {
    sworld_t *w = ctx;
    int rc = 0;
    if (w->starttls) {
        char line[64];
        size_t got = 0;
        if (w->extra_bytes)
            rc = tl_stream_readexactly(s, line, 9, &got);
        else
            rc = tl_stream_readline(s, line, sizeof line, &got);
        if (rc == 0 && (got != 9 || memcmp(line, "STARTTLS\n", 9) != 0))
            rc = TL_EINVAL;
        if (rc == 0 && w->extra_bytes) {
            /* The rest came with it: upgrading now would lose it. */
            CU_ASSERT_EQUAL(tl_stream_start_tls(s, &w->stls), TL_ESTATE);
            w->handler_rc = TL_ESTATE;
            w->handled++;
            return 0;
        }
        if (rc == 0 && (rc = tl_stream_write(s, "GO\n", 3)) == 0 &&
            (rc = tl_stream_drain(s)) == 0)
            rc = tl_stream_start_tls(s, &w->stls);
    }
    if (rc == 0)
        rc = echo_line(s);
    w->handler_rc = rc;
    w->handled++;
    return 0;
}

static int s_client(void *arg, void **result) {
    (void)result;
    sworld_t *w = arg;
    tl_stream_options_t o = {.size = sizeof o};
    if (!w->starttls)
        o.connect.tls = &w->ctls;
    tl_stream_t *s = NULL;
    int rc = tl_open_connection("127.0.0.1", w->port, &o, &s);
    char line[256];
    size_t got = 0;
    if (rc == 0 && w->starttls) {
        if (w->extra_bytes) {
            rc = tl_stream_write(s, "STARTTLS\nX", 10);
            if (rc == 0)
                rc = tl_stream_read(s, line, sizeof line, &got); /* EOF */
            goto out;
        }
        rc = tl_stream_write(s, "STARTTLS\n", 9);
        if (rc == 0)
            rc = tl_stream_readline(s, line, sizeof line, &got);
        if (rc == 0 && (got != 3 || memcmp(line, "GO\n", 3)))
            rc = TL_EINVAL;
        if (rc == 0)
            rc = tl_stream_start_tls(s, &w->ctls);
        if (rc && w->distrust) { /* the stream ended with the upgrade */
            size_t n = 0;
            w->after_rc = tl_stream_read(s, line, sizeof line, &n);
            CU_ASSERT_EQUAL(tl_stream_write(s, "x", 1), w->after_rc);
            goto out;
        }
        if (rc == 0)
            CU_ASSERT_EQUAL(tl_stream_start_tls(s, NULL), TL_EINVAL);
    }
    if (rc == 0)
        tl_tls_get_version(tl_stream_transport(s), &w->version);
    if (rc == 0)
        rc = tl_stream_write(s, "over tls\n", 9);
    if (rc == 0)
        rc = tl_stream_readline(s, line, sizeof line, &got);
    if (rc == 0 && (got != 9 || memcmp(line, "over tls\n", 9)))
        rc = TL_EINVAL;
out:
    tl_stream_free(s);
    w->client_rc = rc;
    w->client_done = 1;
    return 0;
}

static void sworld_run(sworld_t *w) {
    w->loop = tl_test_net_loop();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL);
    tl_tls_context_t *cctx = client_ctx(w->distrust ? certs()->other_ca_cert
                                                    : NULL);
    w->stls = (tl_tls_options_t){.size = sizeof w->stls, .context = sctx};
    w->ctls = (tl_tls_options_t){.size = sizeof w->ctls, .context = cctx,
                                 .server_hostname = "localhost"};
    tl_stream_options_t so = {.size = sizeof so};
    if (!w->starttls)
        so.server.tls = &w->stls;
    tl_sockaddr_t a = loopback(0), bound;
    tl_server_t *srv = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_start_server_addrs(w->loop, s_handler, w, &a, 1, &so, &srv), 0);
    CU_ASSERT_EQUAL_FATAL(tl_server_sockets(srv, &bound, 1), 1);
    snprintf(w->port, sizeof w->port, "%d", port_of(&bound));
    tl_task_t *task;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(w->loop, s_client, w, NULL, &task), 0);
    CU_ASSERT_TRUE(run_flag(w->loop, &w->client_done, 5000));
    CU_ASSERT_TRUE(run_flag(w->loop, &w->handled, 5000));
    tl_task_unref(task);
    tl_future_t *wc;
    CU_ASSERT_EQUAL(tl_server_close(srv), 0);
    CU_ASSERT_EQUAL(tl_server_wait_closed(srv, &wc), 0);
    CU_ASSERT_TRUE(run_fut(w->loop, wc, 5000));
    tl_future_unref(wc);
    tl_server_free(srv);
    tl_test_loop_free(w->loop);
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(cctx);
}

static void test_streams_over_tls(void) {
    NEED_TLS();
    sworld_t w = {0};
    sworld_run(&w);
    CU_ASSERT_EQUAL(w.client_rc, 0);
    CU_ASSERT_EQUAL(w.handler_rc, 0);
    CU_ASSERT_TRUE(w.version == TL_TLS_VERSION_1_3 ||
                   w.version == TL_TLS_VERSION_1_2);
}

static void test_stream_starttls_upgrades_both_ends(void) {
    NEED_TLS();
    sworld_t w = {.starttls = 1};
    sworld_run(&w);
    CU_ASSERT_EQUAL(w.client_rc, 0);
    CU_ASSERT_EQUAL(w.handler_rc, 0);
    CU_ASSERT_EQUAL(w.version, TL_TLS_VERSION_1_3);
}

static void test_stream_starttls_with_buffered_bytes_fails(void) {
    NEED_TLS();
    sworld_t w = {.starttls = 1, .extra_bytes = 1};
    sworld_run(&w);
    CU_ASSERT_EQUAL(w.handler_rc, TL_ESTATE);
    CU_ASSERT_EQUAL(w.client_rc, 0); /* it read the end of the plain stream */
}

static void test_stream_starttls_failure_ends_the_stream(void) {
    NEED_TLS();
    sworld_t w = {.starttls = 1, .distrust = 1};
    sworld_run(&w);
    CU_ASSERT_EQUAL(w.client_rc, TL_ECERTVERIFY);
    CU_ASSERT_EQUAL(w.after_rc, TL_ECERTVERIFY);
    CU_ASSERT_NOT_EQUAL(w.handler_rc, 0); /* the server's upgrade failed */
}

/* The future forms, without tasks: a stream from open_connection_future
 * to a plain server that never answers, upgraded; then the upgrade is
 * cancelled (cancel = 1) or the loop closes under it (cancel = 0). */
static void starttls_abandoned(int cancel) {
    tl_loop_t *loop = tl_test_net_loop();
    prec_t prec[1];
    memset(prec, 0, sizeof prec);
    pfactory_t fac = {.recs = prec, .n = 1};
    tl_sockaddr_t bound;
    tl_server_t *srv = tulip_server(loop, &fac, NULL, &bound);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port_of(&bound));
    tl_future_t *of;
    CU_ASSERT_EQUAL_FATAL(
        tl_open_connection_future(loop, "127.0.0.1", ps, NULL, &of), 0);
    CU_ASSERT_TRUE_FATAL(run_fut(loop, of, 5000));
    void *v = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_future_result(of, &v), 0);
    tl_stream_t *s = v;
    tl_future_unref(of);
    tl_tls_context_t *cctx = client_ctx(NULL);
    tl_tls_options_t ctls = {.size = sizeof ctls, .context = cctx,
                             .server_hostname = "localhost"};
    tl_future_t *uf;
    CU_ASSERT_EQUAL_FATAL(tl_stream_start_tls_future(s, &ctls, &uf), 0);
    tl_tls_context_unref(cctx);
    tl_future_t *again = NULL;
    CU_ASSERT_EQUAL(tl_stream_start_tls_future(s, &ctls, &again), TL_EBUSY);
    CU_ASSERT_EQUAL(tl_stream_write(s, "x", 1), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_stream_is_closing(s), 0);
    CU_ASSERT_TRUE(run_flag(loop, &prec[0].made, 5000));
    run_ms(loop, 5);
    CU_ASSERT_FALSE(tl_future_done(uf));
    if (cancel) {
        CU_ASSERT_EQUAL(tl_future_cancel(uf, NULL), 1);
        CU_ASSERT_TRUE(run_flag(loop, &prec[0].lost, 5000));
        run_ms(loop, 5);
        char buf[8];
        tl_future_t *rf;
        CU_ASSERT_EQUAL(tl_stream_read_future(s, buf, sizeof buf, &rf), 0);
        CU_ASSERT_TRUE(tl_future_done(rf));
        CU_ASSERT_EQUAL(tl_future_error(rf), TL_ECONNABORTED);
        tl_future_unref(rf);
        tl_stream_free(s);
        tl_server_free(srv);
        tl_test_loop_free(loop);
    } else {
        tl_server_free(srv);
        tl_test_loop_free(loop);
        CU_ASSERT_FALSE(tl_future_done(uf));
        tl_stream_free(s);
    }
    tl_future_unref(uf);
}

static void test_stream_starttls_cancelled(void) {
    NEED_TLS();
    starttls_abandoned(1);
}

static void test_stream_starttls_loop_closed_midway(void) {
    NEED_TLS();
    starttls_abandoned(0);
}

/* TLS over a Unix socket: no host to check but server_hostname's. */
static void test_tls_over_unix_socket(void) {
    NEED_TLS();
    tl_loop_t *loop = tl_test_loop();
    tl_tls_context_t *sctx = server_ctx(NULL, NULL), *cctx = client_ctx(NULL);
    tl_tls_options_t stls = {.size = sizeof stls, .context = sctx};
    tl_tls_options_t ctls = {.size = sizeof ctls, .context = cctx,
                             .server_hostname = "localhost"};
    prec_t srec[1], c;
    memset(srec, 0, sizeof srec);
    memset(&c, 0, sizeof c);
    pfactory_t fac = {.recs = srec, .n = 1, .echo = 1};
    char path[64];
    snprintf(path, sizeof path, "@tulip-t3-tls-%d", (int)getpid());
    tl_server_options_t so = {.size = sizeof so, .tls = &stls};
    tl_server_t *srv = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_unix_server(loop, pfactory_fn, &fac, path, &so, &srv), 0);
    tl_connect_options_t co = {.size = sizeof co, .tls = &ctls};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_unix_connection(loop, &prec_proto, &c, path, &co, &f), 0);
    CU_ASSERT_TRUE(run_fut(loop, f, 5000));
    void *v;
    CU_ASSERT_EQUAL_FATAL(tl_future_result(f, &v), 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_transport_write(v, "unix", 4), 0);
    CU_ASSERT_TRUE(run_len(loop, &c, 4, 5000));
    CU_ASSERT_STRING_EQUAL((char *)c.data, "unix");
    tl_transport_close(v);
    CU_ASSERT_TRUE(run_flag(loop, &srec[0].lost, 5000));
    CU_ASSERT_EQUAL(srec[0].lost_error, 0);
    /* Without server_hostname there is nothing to check the name against. */
    ctls.server_hostname = NULL;
    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL_FATAL(
        tl_create_unix_connection(loop, &prec_proto, &c, path, &co, &f), 0);
    CU_ASSERT_TRUE(run_fut(loop, f, 5000));
    CU_ASSERT_EQUAL(tl_future_error(f), TL_EINVAL);
    tl_future_unref(f);
    tl_server_free(srv);
    run_ms(loop, 5);
    tl_test_loop_free(loop);
    tl_tls_context_unref(cctx);
    tl_tls_context_unref(sctx);
}

static void test_stream_starttls_argument_errors(void) {
    NEED_TLS();
    tl_tls_options_t o = {.size = sizeof o};
    CU_ASSERT_EQUAL(tl_stream_start_tls(NULL, &o), TL_EINVAL);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_stream_start_tls_future(NULL, &o, &f), TL_EINVAL);
    CU_ASSERT_PTR_NULL(f);
}

TL_TEST_SUITE(tls_openssl,
              TL_TEST(test_client_gets_page_over_tls13_checking_localhost),
              TL_TEST(test_client_speaks_tls12_checking_ip_address),
              TL_TEST(test_client_negotiates_alpn_with_s_server),
              TL_TEST(test_client_certificate_required_by_s_server),
              TL_TEST(test_client_without_required_certificate_fails_tls12),
              TL_TEST(test_s_client_echoes_through_tulip_server),
              TL_TEST(test_tulip_client_and_server_echo),
              TL_TEST(test_create_server_keeps_its_own_tls_options),
              TL_TEST(test_server_wait_closed_covers_handshakes),
              TL_TEST(test_server_freed_mid_handshake_lives_until_it_ends),
              TL_TEST(test_loop_closed_mid_handshake_leaks_nothing),
              TL_TEST(test_streams_over_tls),
              TL_TEST(test_stream_starttls_upgrades_both_ends),
              TL_TEST(test_stream_starttls_with_buffered_bytes_fails),
              TL_TEST(test_stream_starttls_failure_ends_the_stream),
              TL_TEST(test_stream_starttls_cancelled),
              TL_TEST(test_stream_starttls_loop_closed_midway),
              TL_TEST(test_tls_over_unix_socket),
              TL_TEST(test_stream_starttls_argument_errors))
