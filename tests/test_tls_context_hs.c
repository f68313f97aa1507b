/*
 * tls_context_hs: what context settings do to real handshakes, tulip
 * client against tulip server over loopback TCP on the TL_NETSTACK stack
 * (tl_create_server_addrs / tl_create_connection_addr with the `tls`
 * options): SNI picking the certificate, ALPN choice and mismatch, session
 * resumption per host:port, client certificates required / optional, and
 * protocol version bounds that don't meet.
 */
#include "transport_test.h"

#include <stdio.h>

#include "tls_certs.h"

static const tl_test_certs_t *certs(void) {
    const tl_test_certs_t *c = tl_test_certs();
    if (c == NULL)
        fprintf(stderr, "\n  tls_context_hs: openssl(1) could not make the "
                        "test certificates (see above)\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return c;
}

static tl_tls_context_t *server_ctx(const char *cert, const char *key) {
    tl_tls_context_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_new(TL_TLS_SERVER, &c), 0);
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_use_certificate_file(c, cert, key), 0);
    return c;
}

static tl_tls_context_t *client_ctx(void) {
    tl_tls_context_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_new(TL_TLS_CLIENT, &c), 0);
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_load_verify_file(c, certs()->ca_cert), 0);
    return c;
}

/* ---- a TLS server and connections to it ---------------------------------- */

typedef struct hs_server {
    tl_loop_t *loop;
    tl_server_t *srv;
    tl_sockaddr_t addr;
    factory_t fac;
    rec_t recs[4];
} hs_server_t;

static void server_start(hs_server_t *h, tl_tls_context_t *sctx) {
    memset(h, 0, sizeof *h);
    h->loop = tl_test_net_loop();
    for (int i = 0; i < 4; i++)
        h->recs[i].echo = 1;
    h->fac.recs = h->recs;
    h->fac.n = 4;
    tl_tls_options_t tls = {.size = sizeof tls, .context = sctx};
    tl_server_options_t o = {.size = sizeof o, .tls = &tls};
    tl_sockaddr_t any = addr_ip("127.0.0.1", 0);
    CU_ASSERT_EQUAL_FATAL(tl_create_server_addrs(h->loop, factory_fn, &h->fac,
                                                 &any, 1, &o, &h->srv), 0);
    CU_ASSERT_EQUAL_FATAL(tl_server_sockets(h->srv, &h->addr, 1), 1);
}

static void server_stop(hs_server_t *h) {
    run_some(h->loop, 3);
    tl_server_free(h->srv);
    tl_test_loop_free(h->loop);
    for (int i = 0; i < 4; i++)
        rec_free(&h->recs[i]);
}

/* One client connection, as `host`, with cctx. */
typedef struct conn {
    int rc;         /* the handshake's outcome */
    int lost_error; /* a connection that failed after its handshake */
    rec_t c;
    char alpn[64];
    char server_name[64]; /* what the server's side saw */
    int reused;
    int version;
    int server_made;
} conn_t;

/* Connect, echo one byte (which also brings TLS 1.3 session tickets in),
 * note what both ends negotiated, then close. */
static void connect_as(hs_server_t *h, tl_tls_context_t *cctx,
                       const char *host, int refusal, conn_t *out) {
    memset(out, 0, sizeof *out);
    int before = h->fac.used;
    tl_tls_options_t tls = {.size = sizeof tls, .context = cctx,
                            .server_hostname = host};
    tl_connect_options_t o = {.size = sizeof o, .tls = &tls};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_connection_addr(h->loop, &rec_proto,
                                                    &out->c, &h->addr, &o, &f), 0);
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (tl_future_done(f) != 1 && tl_now_ns() < end)
        tl_loop_run_once(h->loop, 10000000);
    CU_ASSERT_EQUAL_FATAL(tl_future_done(f), 1);
    void *v = NULL;
    out->rc = tl_future_result(f, &v);
    tl_future_unref(f);
    if (out->rc != 0)
        return;
    tl_transport_t *t = v;
    if (refusal) {
        /* Write nothing: data the server never reads would make its close
         * a reset, which may overtake its alert. */
        CU_ASSERT_TRUE(run_until(h->loop, &out->c.lost));
        out->lost_error = out->c.lost_error;
        rec_free(&out->c);
        return;
    }
    CU_ASSERT_EQUAL(tl_transport_write(t, "x", 1), 0);
    run_until_len(h->loop, &out->c, 1);
    if (out->c.lost) { /* the server refused us after our handshake */
        out->lost_error = out->c.lost_error;
        return;
    }
    const char *p = NULL;
    size_t n = 0;
    if (tl_tls_get_alpn(t, &p, &n) == 0 && p && n < sizeof out->alpn)
        memcpy(out->alpn, p, n);
    out->reused = tl_tls_session_reused(t);
    tl_tls_get_version(t, &out->version);
    if (h->fac.used > before) {
        rec_t *s = &h->recs[h->fac.used - 1];
        out->server_made = s->made;
        const char *name = NULL;
        if (s->t && tl_tls_get_server_name(s->t, &name) == 0 && name)
            snprintf(out->server_name, sizeof out->server_name, "%s", name);
    }
    CU_ASSERT_EQUAL(tl_transport_close(t), 0);
    CU_ASSERT_TRUE(run_until(h->loop, &out->c.lost));
    rec_free(&out->c);
}

static void connect_once(hs_server_t *h, tl_tls_context_t *cctx,
                         const char *host, conn_t *out) {
    connect_as(h, cctx, host, 0, out);
}

/* A connection the server should refuse after the client's handshake. */
static void connect_refused(hs_server_t *h, tl_tls_context_t *cctx,
                            const char *host, conn_t *out) {
    connect_as(h, cctx, host, 1, out);
}

/* ---- SNI ------------------------------------------------------------------ */

static void test_sni_picks_the_certificate_for_the_name(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *sctx = server_ctx(t->server_cert, t->server_key);
    tl_tls_context_t *other = server_ctx(t->other_cert, t->other_key);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(sctx, "other.test", other), 0);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(sctx, "*.wild.test", other), 0);
    tl_tls_context_unref(other); /* sctx keeps it */
    tl_tls_context_t *cctx = client_ctx();
    hs_server_t h;
    server_start(&h, sctx);
    conn_t c;
    /* The client checks the name against the certificate it got, so a
     * success shows which one the server picked. */
    connect_once(&h, cctx, "other.test", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_STRING_EQUAL(c.server_name, "other.test");
    connect_once(&h, cctx, "OTHER.TEST", &c); /* names ignore case */
    CU_ASSERT_EQUAL(c.rc, 0);
    connect_once(&h, cctx, "a.wild.test", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    /* One label only, and the wildcard's own domain does not match: the
     * default certificate (localhost) comes, and its name is wrong. */
    connect_once(&h, cctx, "b.a.wild.test", &c);
    CU_ASSERT_EQUAL(c.rc, TL_ECERTHOSTNAME);
    connect_once(&h, cctx, "wild.test", &c);
    CU_ASSERT_EQUAL(c.rc, TL_ECERTHOSTNAME);
    connect_once(&h, cctx, "localhost", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_STRING_EQUAL(c.server_name, "localhost");
    /* An IP address is checked as one and sent without SNI. */
    connect_once(&h, cctx, "127.0.0.1", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_STRING_EQUAL(c.server_name, "");
    server_stop(&h);
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(cctx);
}

/* ---- ALPN ----------------------------------------------------------------- */

static void test_alpn_server_picks_its_first_preference(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    const char *sp[] = {"h2", "http/1.1"}, *cp[] = {"http/1.1", "spdy/3", "h2"};
    tl_tls_context_t *sctx = server_ctx(t->server_cert, t->server_key);
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(sctx, sp, 2), 0);
    tl_tls_context_t *cctx = client_ctx();
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(cctx, cp, 3), 0);
    tl_tls_context_t *plain = client_ctx(); /* offers nothing */
    hs_server_t h;
    server_start(&h, sctx);
    conn_t c;
    connect_once(&h, cctx, "localhost", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_STRING_EQUAL(c.alpn, "h2");
    connect_once(&h, plain, "localhost", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_STRING_EQUAL(c.alpn, "");
    server_stop(&h);
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(cctx);
    tl_tls_context_unref(plain);
}

static void test_alpn_without_overlap_fails_the_handshake(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    const char *sp[] = {"h2"}, *cp[] = {"http/1.1"};
    tl_tls_context_t *sctx = server_ctx(t->server_cert, t->server_key);
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(sctx, sp, 1), 0);
    tl_tls_context_t *cctx = client_ctx();
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(cctx, cp, 1), 0);
    hs_server_t h;
    server_start(&h, sctx);
    conn_t c;
    connect_once(&h, cctx, "localhost", &c);
    CU_ASSERT_EQUAL(c.rc, TL_ETLS);
    CU_ASSERT_EQUAL(c.c.made, 0);
    CU_ASSERT_EQUAL(h.recs[0].made, 0);
    server_stop(&h);
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(cctx);
}

static void test_alpn_of_a_server_without_a_list_is_none(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    const char *cp[] = {"h2"};
    tl_tls_context_t *sctx = server_ctx(t->server_cert, t->server_key);
    tl_tls_context_t *cctx = client_ctx();
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(cctx, cp, 1), 0);
    hs_server_t h;
    server_start(&h, sctx);
    conn_t c;
    connect_once(&h, cctx, "localhost", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_STRING_EQUAL(c.alpn, "");
    server_stop(&h);
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(cctx);
}

/* ---- session resumption --------------------------------------------------- */

static void check_resumption(int max_version) {
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *sctx = server_ctx(t->server_cert, t->server_key);
    tl_tls_context_t *cctx = client_ctx();
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(cctx, 0, max_version), 0);
    tl_tls_context_t *off = client_ctx();
    CU_ASSERT_EQUAL(tl_tls_context_set_session_cache(off, TL_OPT_OFF), 0);
    hs_server_t h;
    server_start(&h, sctx);
    conn_t c;
    connect_once(&h, cctx, "localhost", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(c.reused, 0);
    CU_ASSERT_EQUAL(c.version, max_version ? max_version : TL_TLS_VERSION_1_3);
    connect_once(&h, cctx, "localhost", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(c.reused, 1);
    /* Sessions are per host:port: another name starts afresh. */
    connect_once(&h, cctx, "127.0.0.1", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(c.reused, 0);
    /* And a client with the cache off never resumes. */
    connect_once(&h, off, "localhost", &c);
    connect_once(&h, off, "localhost", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(c.reused, 0);
    server_stop(&h);
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(cctx);
    tl_tls_context_unref(off);
}

static void test_second_connection_resumes_the_session_tls13(void) {
    NEED_TLS();
    check_resumption(0);
}

static void test_second_connection_resumes_the_session_tls12(void) {
    NEED_TLS();
    check_resumption(TL_TLS_VERSION_1_2);
}

/* ---- client certificates ------------------------------------------------- */

/* A refused client: TLS 1.3 finishes the client's handshake before the
 * server judges its certificate, so the refusal (an alert: TL_ETLS) comes
 * either as the handshake's error or as connection_lost's. */
static int refused(const conn_t *c) {
    return c->rc == TL_ETLS || (c->rc == 0 && c->lost_error == TL_ETLS);
}

static void test_client_certificate_required(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *sctx = server_ctx(t->server_cert, t->server_key);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(sctx, t->ca_cert), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_client_cert(sctx, TL_TLS_CLIENT_CERT_REQUIRED), 0);
    tl_tls_context_t *none = client_ctx();
    tl_tls_context_t *good = client_ctx();
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(good, t->client_cert, t->client_key), 0);
    tl_tls_context_t *self = client_ctx();
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(self, t->self_cert, t->self_key), 0);
    hs_server_t h;
    server_start(&h, sctx);
    conn_t c;
    connect_refused(&h, none, "localhost", &c);
    CU_ASSERT(refused(&c));
    connect_refused(&h, self, "localhost", &c);
    CU_ASSERT(refused(&c));
    CU_ASSERT_EQUAL(h.fac.used, 0); /* the server made no protocol */
    connect_once(&h, good, "localhost", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(c.lost_error, 0);
    CU_ASSERT_EQUAL(c.server_made, 1);
    server_stop(&h);
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(none);
    tl_tls_context_unref(good);
    tl_tls_context_unref(self);
}

static void test_client_certificate_optional(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *sctx = server_ctx(t->server_cert, t->server_key);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(sctx, t->ca_cert), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_client_cert(sctx, TL_TLS_CLIENT_CERT_OPTIONAL), 0);
    tl_tls_context_t *none = client_ctx();
    tl_tls_context_t *self = client_ctx();
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(self, t->self_cert, t->self_key), 0);
    hs_server_t h;
    server_start(&h, sctx);
    conn_t c;
    connect_once(&h, none, "localhost", &c); /* none sent: fine */
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(c.lost_error, 0);
    connect_refused(&h, self, "localhost", &c); /* one sent must verify */
    CU_ASSERT(refused(&c));
    server_stop(&h);
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(none);
    tl_tls_context_unref(self);
}

/* ---- versions -------------------------------------------------------------- */

static void test_versions_that_do_not_meet_fail_with_etls(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *sctx = server_ctx(t->server_cert, t->server_key);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(sctx, TL_TLS_VERSION_1_3, 0), 0);
    tl_tls_context_t *old = client_ctx();
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(old, 0, TL_TLS_VERSION_1_2), 0);
    hs_server_t h;
    server_start(&h, sctx);
    conn_t c;
    connect_once(&h, old, "localhost", &c);
    CU_ASSERT_EQUAL(c.rc, TL_ETLS);
    CU_ASSERT_EQUAL(h.fac.used, 0);
    server_stop(&h);
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(old);
}

static void test_rsa_certificate_works(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *sctx = server_ctx(t->rsa_cert, t->rsa_key);
    tl_tls_context_t *cctx = client_ctx();
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(cctx, 0, TL_TLS_VERSION_1_2), 0);
    hs_server_t h;
    server_start(&h, sctx);
    conn_t c;
    connect_once(&h, cctx, "localhost", &c);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(c.version, TL_TLS_VERSION_1_2);
    server_stop(&h);
    tl_tls_context_unref(sctx);
    tl_tls_context_unref(cctx);
}

TL_TEST_SUITE(tls_context_hs,
              TL_TEST(test_sni_picks_the_certificate_for_the_name),
              TL_TEST(test_alpn_server_picks_its_first_preference),
              TL_TEST(test_alpn_without_overlap_fails_the_handshake),
              TL_TEST(test_alpn_of_a_server_without_a_list_is_none),
              TL_TEST(test_second_connection_resumes_the_session_tls13),
              TL_TEST(test_second_connection_resumes_the_session_tls12),
              TL_TEST(test_client_certificate_required),
              TL_TEST(test_client_certificate_optional),
              TL_TEST(test_versions_that_do_not_meet_fail_with_etls),
              TL_TEST(test_rsa_certificate_works))
