/*
 * What the TLS engine suites (tests/test_tls.c, test_tls_sendfile.c)
 * share: certificates and contexts, options, run-until helpers, and a TLS
 * pair (a loopback connection through the loop's netstack upgraded with
 * tl_start_tls on both ends).
 */
#ifndef TL_TLS_TEST_H
#define TL_TLS_TEST_H

#include "transport_test.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "tls/tls_int.h"
#include "tls_certs.h"

/* ---- contexts and options ------------------------------------------------ */

static inline const tl_test_certs_t *certs(void) {
    const tl_test_certs_t *c = tl_test_certs();
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return c;
}

static inline tl_tls_context_t *server_ctx_with(const char *cert, const char *key) {
    tl_tls_context_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_new(TL_TLS_SERVER, &c), 0);
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_use_certificate_file(c, cert, key), 0);
    return c;
}

static inline tl_tls_context_t *server_ctx(void) {
    return server_ctx_with(certs()->server_cert, certs()->server_key);
}

static inline tl_tls_context_t *client_ctx(void) {
    tl_tls_context_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_new(TL_TLS_CLIENT, &c), 0);
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_load_verify_file(c, certs()->ca_cert),
                          0);
    return c;
}

static inline tl_tls_options_t opts_for(tl_tls_context_t *c, const char *host) {
    tl_tls_options_t o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.context = c;
    o.server_hostname = host;
    return o;
}

/* Run until f is done (at most ~5 s): 1 if it is. */
static inline int run_until_done(tl_loop_t *loop, tl_future_t *f) {
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (tl_future_done(f) != 1 && tl_now_ns() < end)
        tl_loop_run_once(loop, 10000000);
    return tl_future_done(f) == 1;
}

/* run_until_len with a deadline for bulk transfers (valgrind is slow at
 * crypto): 60 s, or the connection's end. */
static inline int run_until_len_long(tl_loop_t *loop, const rec_t *r, size_t len) {
    uint64_t end = tl_now_ns() + 60000000000ull;
    while (r->len < len && !r->lost && tl_now_ns() < end)
        tl_loop_run_once(loop, 10000000);
    return r->len >= len;
}

/* ---- a TLS pair ------------------------------------------------------------ */

/* A plain TCP pair (raw recs), both ends upgraded with tl_start_tls: the
 * server's TLS protocol gets srec, the client's crec. */
typedef struct tpair {
    pair_t raw;
    rec_t sraw, craw;
    tl_tls_context_t *sctx, *cctx;
    tl_future_t *sf, *cf;
    tl_transport_t *s, *c; /* the TLS transports (borrowed) */
    int serr, cerr;
} tpair_t;

static inline void tpair_start(tl_loop_t *loop, tpair_t *tp, rec_t *srec,
                        rec_t *crec, const tl_protocol_t *sproto,
                        const tl_protocol_t *cproto, tl_tls_context_t *sctx,
                        tl_tls_context_t *cctx, const char *host) {
    memset(tp, 0, sizeof *tp);
    pair_open(loop, &tp->raw, &tp->sraw, &tp->craw, NULL, NULL);
    tp->sctx = sctx ? sctx : server_ctx();
    tp->cctx = cctx ? cctx : client_ctx();
    tl_tls_options_t so = opts_for(tp->sctx, NULL);
    tl_tls_options_t co = opts_for(tp->cctx, host ? host : "localhost");
    CU_ASSERT_EQUAL_FATAL(tl_start_tls(tp->raw.st, sproto ? sproto : &rec_proto,
                                       srec, &so, &tp->sf), 0);
    CU_ASSERT_EQUAL_FATAL(tl_start_tls(tp->raw.ct, cproto ? cproto : &rec_proto,
                                       crec, &co, &tp->cf), 0);
    CU_ASSERT_TRUE(run_until_done(loop, tp->cf));
    CU_ASSERT_TRUE(run_until_done(loop, tp->sf));
    void *v = NULL;
    tp->cerr = tl_future_result(tp->cf, &v);
    tp->c = v;
    v = NULL;
    tp->serr = tl_future_result(tp->sf, &v);
    tp->s = v;
}

static inline void tpair_open(tl_loop_t *loop, tpair_t *tp, rec_t *srec, rec_t *crec,
                       const tl_protocol_t *sproto,
                       const tl_protocol_t *cproto) {
    tpair_start(loop, tp, srec, crec, sproto, cproto, NULL, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(tp->cerr, 0);
    CU_ASSERT_EQUAL_FATAL(tp->serr, 0);
    CU_ASSERT_TRUE_FATAL(run_until(loop, &crec->made));
    CU_ASSERT_TRUE_FATAL(run_until(loop, &srec->made));
    CU_ASSERT_PTR_EQUAL(crec->t, tp->c);
    CU_ASSERT_PTR_EQUAL(srec->t, tp->s);
}

static inline void tpair_close(tl_loop_t *loop, tpair_t *tp) {
    tl_future_unref(tp->sf);
    tl_future_unref(tp->cf);
    tl_server_free(tp->raw.server);
    tl_test_loop_free(loop);
    tl_tls_context_unref(tp->sctx);
    tl_tls_context_unref(tp->cctx);
    rec_free(&tp->sraw);
    rec_free(&tp->craw);
}

#endif
