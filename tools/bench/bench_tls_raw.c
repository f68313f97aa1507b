/*
 * tls_raw_handshake, tls_raw_bulk: the limit tulip's TLS is judged
 * against. A client SSL and a server SSL in one thread, joined by a
 * BoringSSL BIO pair (memory, no sockets, no loop): what BoringSSL alone
 * costs for the same work tools/bench/bench_tls.c does through tulip.
 *
 *   tls_raw_handshake  full TLS 1.3 handshakes, ECDSA P-256 certificate
 *                      (X25519 key exchange, BoringSSL's default), the
 *                      client verifying the chain and the name as tulip's
 *                      client does; a new SSL pair each time, no
 *                      resumption; --n handshakes (default 2000). Median
 *                      of 3 runs: {"bench":"tls_raw_handshake","per_s":..,
 *                      "per_cpu_s":..} (per wall second, per CPU second:
 *                      the second holds on a busy machine)
 *   tls_raw_bulk       an echo in memory: the client SSL_writes 16 KiB,
 *                      the server SSL_reads it and SSL_writes it back, the
 *                      client SSL_reads it (each byte encrypted and
 *                      decrypted twice, as through a TLS echo); --n MiB
 *                      (default 512). Median of 3:
 *                      {"bench":"tls_raw_bulk","mib_s":..,"mib_cpu_s":..}
 *
 * This is the one tool that includes BoringSSL (the Makefile adds its
 * headers and -DTL_BENCH_TLS when tulip is built with TLS); without it the
 * benches print a skip line. The certificate is made here, in memory
 * (bench_tls_make_cert, which bench_tls.c also uses).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tulip.h>

#include "bench.h"

#ifdef TL_BENCH_TLS
#include <openssl/bio.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* A fresh P-256 key and a self-signed certificate for "localhost" and
 * 127.0.0.1 (subjectAltName), valid from an hour ago for a day. */
static int make_cert(EVP_PKEY **out_key, X509 **out_cert) {
    EVP_PKEY *pkey = EVP_PKEY_new();
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    X509 *x = X509_new();
    X509_EXTENSION *san = NULL;
    int ok = pkey && ec && x && EC_KEY_generate_key(ec) &&
             EVP_PKEY_assign_EC_KEY(pkey, ec);
    if (ok)
        ec = NULL; /* pkey owns it now */
    ok = ok && X509_set_version(x, X509_VERSION_3) &&
         ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
         X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
         X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
         X509_set_pubkey(x, pkey) &&
         X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const uint8_t *)"localhost", -1, -1, 0) &&
         X509_set_issuer_name(x, X509_get_subject_name(x));
    if (ok) {
        san = X509V3_EXT_nconf_nid(NULL, NULL, NID_subject_alt_name,
                                   "DNS:localhost,IP:127.0.0.1");
        ok = san != NULL && X509_add_ext(x, san, -1);
    }
    ok = ok && X509_sign(x, pkey, EVP_sha256());
    X509_EXTENSION_free(san);
    EC_KEY_free(ec);
    if (!ok) {
        EVP_PKEY_free(pkey);
        X509_free(x);
        return -1;
    }
    *out_key = pkey;
    *out_cert = x;
    return 0;
}

static char *bio_to_string(BIO *b, size_t *len) {
    const uint8_t *p;
    size_t n;
    char *s = NULL;
    if (BIO_mem_contents(b, &p, &n) && (s = malloc(n + 1)) != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
        *len = n;
    }
    return s;
}

int bench_tls_make_cert(char **cert_pem, size_t *cert_len, char **key_pem,
                        size_t *key_len) {
    EVP_PKEY *pkey;
    X509 *x;
    if (make_cert(&pkey, &x))
        return -1;
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    int ok = cb && kb && PEM_write_bio_X509(cb, x) &&
             PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL);
    *cert_pem = ok ? bio_to_string(cb, cert_len) : NULL;
    *key_pem = ok ? bio_to_string(kb, key_len) : NULL;
    BIO_free(cb);
    BIO_free(kb);
    EVP_PKEY_free(pkey);
    X509_free(x);
    if (*cert_pem == NULL || *key_pem == NULL) {
        free(*cert_pem);
        free(*key_pem);
        *cert_pem = *key_pem = NULL;
        return -1;
    }
    return 0;
}

typedef struct raw {
    SSL_CTX *server, *client;
} raw_t;

static void raw_free(raw_t *r) {
    SSL_CTX_free(r->server);
    SSL_CTX_free(r->client);
}

/* Both contexts TLS 1.3 only; the client trusts the certificate itself and
 * checks the name (tulip's client does both); no client session cache. */
static int raw_init(raw_t *r) {
    EVP_PKEY *pkey;
    X509 *x;
    memset(r, 0, sizeof *r);
    if (make_cert(&pkey, &x))
        return -1;
    r->server = SSL_CTX_new(TLS_method());
    r->client = SSL_CTX_new(TLS_method());
    int ok = r->server && r->client &&
             SSL_CTX_set_min_proto_version(r->server, TLS1_3_VERSION) &&
             SSL_CTX_set_max_proto_version(r->server, TLS1_3_VERSION) &&
             SSL_CTX_set_min_proto_version(r->client, TLS1_3_VERSION) &&
             SSL_CTX_set_max_proto_version(r->client, TLS1_3_VERSION) &&
             SSL_CTX_use_certificate(r->server, x) &&
             SSL_CTX_use_PrivateKey(r->server, pkey) &&
             X509_STORE_add_cert(SSL_CTX_get_cert_store(r->client), x);
    if (ok) {
        SSL_CTX_set_verify(r->client, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_session_cache_mode(r->client, SSL_SESS_CACHE_OFF);
    }
    EVP_PKEY_free(pkey);
    X509_free(x);
    if (!ok) {
        raw_free(r);
        return -1;
    }
    return 0;
}

typedef struct pair {
    SSL *c, *s;
} pair_t;

static void pair_free(pair_t *p) {
    SSL_free(p->c);
    SSL_free(p->s);
}

/* A client and a server SSL joined by a BIO pair (64 KiB each way: room
 * for a few 16 KiB records), not yet shaken hands. */
static int pair_new(raw_t *r, pair_t *p) {
    BIO *cb = NULL, *sb = NULL;
    p->c = SSL_new(r->client);
    p->s = SSL_new(r->server);
    if (p->c == NULL || p->s == NULL ||
        !BIO_new_bio_pair(&cb, 64 * 1024, &sb, 64 * 1024)) {
        pair_free(p);
        return -1;
    }
    SSL_set_bio(p->c, cb, cb); /* each SSL takes the one reference */
    SSL_set_bio(p->s, sb, sb);
    SSL_set_connect_state(p->c);
    SSL_set_accept_state(p->s);
    X509_VERIFY_PARAM_set1_host(SSL_get0_param(p->c), "localhost", 9);
    SSL_set_tlsext_host_name(p->c, "localhost");
    return 0;
}

/* 0 when ret is a success or a "call again" (the other side must move). */
static int want(SSL *ssl, int ret) {
    if (ret > 0)
        return 0;
    int e = SSL_get_error(ssl, ret);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

static void report_ssl_error(const char *what);

/* BoringSSL clears the thread's error queue at the start of each call:
 * a failure is reported before the other side runs. */
static int handshake(pair_t *p) {
    int cdone = 0, sdone = 0;
    for (int turns = 0; !(cdone && sdone); turns++) {
        int rc = SSL_do_handshake(p->c);
        cdone = rc == 1;
        if (want(p->c, rc) || turns > 100) {
            long v = SSL_get_verify_result(p->c);
            if (v != X509_V_OK)
                fprintf(stderr, "client: %s\n", X509_verify_cert_error_string(v));
            report_ssl_error("client handshake");
            return -1;
        }
        int rs = SSL_do_handshake(p->s);
        sdone = rs == 1;
        if (want(p->s, rs)) {
            report_ssl_error("server handshake");
            return -1;
        }
    }
    return 0;
}

static void report_ssl_error(const char *what) {
    char buf[256];
    unsigned long e;
    int any = 0;
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        fprintf(stderr, "%s: %s\n", what, buf);
        any = 1;
    }
    if (!any)
        fprintf(stderr, "%s: failed\n", what);
}

int bench_tls_raw_handshake(const bench_opts_t *o) {
    long n = o->n > 0 ? o->n : 2000;
    raw_t r;
    if (raw_init(&r)) {
        report_ssl_error("tls_raw_handshake: setup");
        return 1;
    }
    double per_s[3], per_cpu_s[3];
    int ok = 1;
    const char *cipher = "";
    for (int k = 0; k < 3 && ok; k++) {
        bench_clock_t a = bench_clock_now();
        for (long i = 0; i < n && ok; i++) {
            pair_t p;
            if (pair_new(&r, &p) || handshake(&p) ||
                SSL_version(p.c) != TLS1_3_VERSION || SSL_session_reused(p.c) ||
                SSL_get_verify_result(p.c) != X509_V_OK) {
                report_ssl_error("tls_raw_handshake");
                ok = 0;
            } else {
                cipher = SSL_CIPHER_standard_name(SSL_get_current_cipher(p.c));
            }
            pair_free(&p);
        }
        bench_clock_t b = bench_clock_now();
        per_s[k] = (double)n / bench_wall_s(&a, &b);
        per_cpu_s[k] = (double)n / bench_cpu_s(&a, &b);
    }
    raw_free(&r);
    if (!ok)
        return 1;
    printf("{\"bench\":\"tls_raw_handshake\",\"handshakes\":%ld,\"version\":\"TLSv1.3\","
           "\"cert\":\"ECDSA P-256\",\"cipher\":\"%s\",\"per_s\":%.0f,\"per_cpu_s\":%.0f}\n",
           n, cipher, bench_median(per_s, 3), bench_median(per_cpu_s, 3));
    return 0;
}

/* Read exactly len bytes from ssl into buf, moving the peer along. */
static int read_all(SSL *ssl, uint8_t *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        int rc = SSL_read(ssl, buf + got, (int)(len - got));
        if (rc <= 0)
            return -1; /* the records are all in the BIO already */
        got += (size_t)rc;
    }
    return 0;
}

enum { CHUNK = 16 * 1024 };

int bench_tls_raw_bulk(const bench_opts_t *o) {
    long mib = o->n > 0 ? o->n : 512;
    raw_t r;
    pair_t p;
    if (raw_init(&r)) {
        report_ssl_error("tls_raw_bulk: setup");
        return 1;
    }
    if (pair_new(&r, &p)) {
        raw_free(&r);
        report_ssl_error("tls_raw_bulk: setup");
        return 1;
    }
    static uint8_t out[CHUNK], mid[CHUNK], in[CHUNK];
    for (size_t i = 0; i < CHUNK; i++)
        out[i] = (uint8_t)(i * 7);
    int ok = handshake(&p) == 0;
    double mib_s[3], mib_cpu_s[3];
    long chunks = mib * (1024 * 1024 / CHUNK);
    for (int k = 0; k < 3 && ok; k++) {
        bench_clock_t a = bench_clock_now();
        for (long i = 0; i < chunks && ok; i++) {
            ok = SSL_write(p.c, out, CHUNK) == CHUNK && read_all(p.s, mid, CHUNK) == 0 &&
                 SSL_write(p.s, mid, CHUNK) == CHUNK && read_all(p.c, in, CHUNK) == 0;
        }
        bench_clock_t b = bench_clock_now();
        mib_s[k] = (double)mib / bench_wall_s(&a, &b);
        mib_cpu_s[k] = (double)mib / bench_cpu_s(&a, &b);
    }
    ok = ok && memcmp(in, out, CHUNK) == 0;
    if (!ok)
        report_ssl_error("tls_raw_bulk");
    else
        printf("{\"bench\":\"tls_raw_bulk\",\"mib\":%ld,\"chunk\":%d,\"cipher\":\"%s\","
               "\"mib_s\":%.0f,\"mib_cpu_s\":%.0f}\n",
               mib, CHUNK, SSL_CIPHER_standard_name(SSL_get_current_cipher(p.c)),
               bench_median(mib_s, 3), bench_median(mib_cpu_s, 3));
    pair_free(&p);
    raw_free(&r);
    return ok ? 0 : 1;
}

#else /* no BoringSSL in this build */

int bench_tls_make_cert(char **cert_pem, size_t *cert_len, char **key_pem,
                        size_t *key_len) {
    (void)cert_len;
    (void)key_len;
    *cert_pem = *key_pem = NULL;
    return TL_ENOTSUP;
}

int bench_tls_raw_handshake(const bench_opts_t *o) {
    (void)o;
    printf("{\"bench\":\"tls_raw_handshake\",\"skipped\":\"built without TLS\"}\n");
    return 0;
}

int bench_tls_raw_bulk(const bench_opts_t *o) {
    (void)o;
    printf("{\"bench\":\"tls_raw_bulk\",\"skipped\":\"built without TLS\"}\n");
    return 0;
}

#endif
