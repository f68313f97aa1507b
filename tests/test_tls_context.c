/* tls_context: TLS contexts alone (settings, files, PEM, freezing, refs,
 * OOM) and the build's BoringSSL linkage. Handshakes through contexts are
 * in tests/test_tls_context_hs.c. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tl_test.h"
#include "tls/tls_int.h"
#include "tls_certs.h"

/* Built without BoringSSL (TLS=0) every context function says TL_ENOTSUP:
 * only test_tls_is_available_in_this_build has something to check. */
static const tl_test_certs_t *certs(void) {
    const tl_test_certs_t *c = tl_test_certs();
    if (c == NULL)
        fprintf(stderr, "\n  tls_context: openssl(1) could not make the test "
                        "certificates (see above)\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return c;
}

static tl_tls_context_t *new_ctx(int side) {
    tl_tls_context_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_new(side, &c), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return c;
}

static tl_tls_context_t *new_server(const char *cert, const char *key) {
    tl_tls_context_t *c = new_ctx(TL_TLS_SERVER);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, cert, key), 0);
    return c;
}

static void read_all(const char *path, char **data, size_t *len) {
    CU_ASSERT_EQUAL_FATAL(tl_test_read_file(path, data, len), 0);
}

/* ---- life -------------------------------------------------------------- */

static void test_tls_is_available_in_this_build(void) {
    /* make builds with BoringSSL when its android packages are installed. */
    if (tl_tls_available())
        return;
    tl_tls_context_t *c = (tl_tls_context_t *)1;
    CU_ASSERT_EQUAL(tl_tls_context_new(TL_TLS_CLIENT, &c), TL_ENOTSUP);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(tl__tls_context_freeze(NULL), TL_ENOTSUP);
}

static void test_new_rejects_bad_side_and_null_out(void) {
    NEED_TLS();
    tl_tls_context_t *c = (tl_tls_context_t *)1;
    CU_ASSERT_EQUAL(tl_tls_context_new(0, &c), TL_EINVAL);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(tl_tls_context_new(3, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_new(-1, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_new(TL_TLS_CLIENT, NULL), TL_EINVAL);
}

static void test_new_context_knows_its_side(void) {
    NEED_TLS();
    tl_tls_context_t *cl = new_ctx(TL_TLS_CLIENT);
    tl_tls_context_t *sv = new_ctx(TL_TLS_SERVER);
    CU_ASSERT_EQUAL(tl_tls_context_side(cl), TL_TLS_CLIENT);
    CU_ASSERT_EQUAL(tl_tls_context_side(sv), TL_TLS_SERVER);
    CU_ASSERT_EQUAL(tl_tls_context_side(NULL), TL_EINVAL);
    tl_tls_context_unref(cl);
    tl_tls_context_unref(sv);
}

static void test_null_context_is_einval_everywhere(void) {
    NEED_TLS();
    const char *p[] = {"h2"};
    CU_ASSERT_EQUAL(tl_tls_context_ref(NULL), TL_EINVAL);
    tl_tls_context_unref(NULL); /* nothing */
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(NULL, "a", "b"), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(NULL, "a", 1, "b", 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(NULL, "a"), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_mem(NULL, "a", 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_insecure_skip_verify(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_insecure_skip_hostname_check(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_client_cert(NULL, 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(NULL, 0, 0), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(NULL, p, 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(NULL, "x", NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_session_cache(NULL, TL_OPT_ON), TL_EINVAL);
    CU_ASSERT_EQUAL(tl__tls_context_freeze(NULL), TL_EINVAL);
}

typedef struct ref_arg {
    tl_tls_context_t *c;
    int rounds;
} ref_arg_t;

static void *ref_thread(void *p) {
    ref_arg_t *a = p;
    for (int i = 0; i < a->rounds; i++) {
        if (tl_tls_context_ref(a->c) != 0)
            return (void *)1;
        tl_tls_context_unref(a->c);
    }
    /* Leave one reference for the main thread to see, drop it at the end. */
    tl_tls_context_unref(a->c);
    return NULL;
}

static void test_ref_and_unref_from_many_threads(void) {
    NEED_TLS();
    tl_tls_context_t *c = new_ctx(TL_TLS_SERVER);
    enum { N = 6 };
    pthread_t th[N];
    ref_arg_t a = {c, 20000};
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL_FATAL(tl_tls_context_ref(c), 0); /* one per thread */
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, ref_thread, &a), 0);
    }
    for (int i = 0; i < N; i++) {
        void *r;
        pthread_join(th[i], &r);
        CU_ASSERT_PTR_NULL(r);
    }
    CU_ASSERT_EQUAL(tl_tls_context_side(c), TL_TLS_SERVER);
    CU_ASSERT(tl_test_live_allocs() > 0);
    tl_tls_context_unref(c); /* the last one: everything freed */
    CU_ASSERT_EQUAL(tl_test_live_allocs(), 0);
}

static void test_new_fails_cleanly_without_memory(void) {
    NEED_TLS();
    for (long n = 1;; n++) {
        long before = tl_test_alloc_count();
        tl_test_fail_alloc_at(n);
        tl_tls_context_t *c = NULL;
        int rc = tl_tls_context_new(TL_TLS_CLIENT, &c);
        int hit = tl_test_alloc_count() - before >= n;
        tl_test_fail_alloc_at(0);
        if (!hit) {
            CU_ASSERT_EQUAL(rc, 0);
            tl_tls_context_unref(c);
            break;
        }
        CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_EQUAL(tl_test_live_allocs(), 0);
    }
}

/* ---- certificates and keys --------------------------------------------- */

static void test_use_certificate_file_loads_ecdsa_and_rsa(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *c = new_ctx(TL_TLS_SERVER);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->server_cert, t->server_key), 0);
    /* Again, replacing it. */
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->rsa_cert, t->rsa_key), 0);
    tl_tls_context_unref(c);
    /* A client certificate on a client context. */
    c = new_ctx(TL_TLS_CLIENT);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->client_cert, t->client_key), 0);
    tl_tls_context_unref(c);
}

static void test_use_certificate_file_reports_missing_files(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *c = new_ctx(TL_TLS_SERVER);
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such.pem", t->dir);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, missing, t->server_key), TL_ENOENT);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->server_cert, missing), TL_ENOENT);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->dir, t->server_key), TL_EISDIR);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, NULL, t->server_key), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->server_cert, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(c, missing), TL_ENOENT);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(c, NULL), TL_EINVAL);
    tl_tls_context_unref(c);
}

static void test_use_certificate_file_reports_unreadable_files(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    if (geteuid() == 0) /* root reads anything: nothing to check */
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/unreadable.pem", t->dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(chmod(path, 0), 0);
    tl_tls_context_t *c = new_ctx(TL_TLS_SERVER);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, path, t->server_key), TL_EACCES);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(c, path), TL_EACCES);
    tl_tls_context_unref(c);
    unlink(path);
}

static void test_use_certificate_mem_rejects_garbage(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    char *cert, *key;
    size_t cert_len, key_len;
    read_all(t->server_cert, &cert, &cert_len);
    read_all(t->server_key, &key, &key_len);
    tl_tls_context_t *c = new_ctx(TL_TLS_SERVER);
    static const char junk[] = "this is not PEM at all\n";
    static const char bad_pem[] = "-----BEGIN CERTIFICATE-----\nAAAA!!!!\n"
                                  "-----END CERTIFICATE-----\n";
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, junk, sizeof junk - 1, key, key_len), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, bad_pem, sizeof bad_pem - 1, key, key_len), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, cert, cert_len, junk, sizeof junk - 1), TL_EINVAL);
    /* A certificate where the key should be, and the other way round. */
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, cert, cert_len, cert, cert_len), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, key, key_len, key, key_len), TL_EINVAL);
    /* Truncated: half of each. */
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, cert, cert_len / 2, key, key_len), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, cert, cert_len, key, key_len / 2), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, cert, 0, key, key_len), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, cert, cert_len, key, 0), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, NULL, 5, key, key_len), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, cert, cert_len, NULL, 5), TL_EINVAL);
    /* Garbage after the chain's certificates. */
    char *tail = malloc(cert_len + sizeof bad_pem);
    memcpy(tail, cert, cert_len);
    memcpy(tail + cert_len, bad_pem, sizeof bad_pem - 1);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, tail, cert_len + sizeof bad_pem - 1, key, key_len), TL_EINVAL);
    free(tail);
    /* After all that, the real thing still works. */
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, cert, cert_len, key, key_len), 0);
    tl_tls_context_unref(c);
    free(cert);
    free(key);
}

static void test_use_certificate_rejects_a_key_of_another_certificate(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *c = new_ctx(TL_TLS_SERVER);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->server_cert, t->other_key), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->server_cert, t->rsa_key), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->rsa_cert, t->server_key), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->server_cert, t->server_key), 0);
    /* A failed replacement leaves the good one. */
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->other_cert, t->server_key), TL_EINVAL);
    tl_tls_context_t *sni = new_ctx(TL_TLS_SERVER);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(sni, "localhost", c), 0);
    tl_tls_context_unref(sni);
    tl_tls_context_unref(c);
}

static void test_use_certificate_mem_takes_a_chain(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    char *leaf, *ca, *key;
    size_t leaf_len, ca_len, key_len;
    read_all(t->server_cert, &leaf, &leaf_len);
    read_all(t->ca_cert, &ca, &ca_len);
    read_all(t->server_key, &key, &key_len);
    char *chain = malloc(leaf_len + ca_len);
    memcpy(chain, leaf, leaf_len);
    memcpy(chain + leaf_len, ca, ca_len);
    tl_tls_context_t *c = new_ctx(TL_TLS_SERVER);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, chain, leaf_len + ca_len, key, key_len), 0);
    /* The chain must start with the key's certificate. */
    memcpy(chain, ca, ca_len);
    memcpy(chain + ca_len, leaf, leaf_len);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_mem(c, chain, leaf_len + ca_len, key, key_len), TL_EINVAL);
    tl_tls_context_unref(c);
    free(chain);
    free(leaf);
    free(ca);
    free(key);
}

static void test_load_verify_adds_cas_and_rejects_garbage(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    char *ca, *other;
    size_t ca_len, other_len;
    read_all(t->ca_cert, &ca, &ca_len);
    read_all(t->other_ca_cert, &other, &other_len);
    tl_tls_context_t *c = new_ctx(TL_TLS_CLIENT);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(c, t->ca_cert), 0);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(c, t->ca_cert), 0); /* again */
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_mem(c, other, other_len), 0);
    /* Two in one bundle. */
    char *both = malloc(ca_len + other_len);
    memcpy(both, ca, ca_len);
    memcpy(both + ca_len, other, other_len);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_mem(c, both, ca_len + other_len), 0);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_mem(c, "junk", 4), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_mem(c, ca, ca_len - 40), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_mem(c, ca, 0), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_mem(c, NULL, 10), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(c, t->server_key), TL_EINVAL);
    tl_tls_context_unref(c);
    /* A server trusts CAs for client certificates. */
    c = new_ctx(TL_TLS_SERVER);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(c, t->ca_cert), 0);
    tl_tls_context_unref(c);
    free(both);
    free(ca);
    free(other);
}

/* ---- settings ---------------------------------------------------------- */

static void test_setters_refuse_the_wrong_side(void) {
    NEED_TLS();
    tl_tls_context_t *cl = new_ctx(TL_TLS_CLIENT);
    tl_tls_context_t *sv = new_ctx(TL_TLS_SERVER);
    CU_ASSERT_EQUAL(tl_tls_context_set_client_cert(cl, TL_TLS_CLIENT_CERT_REQUIRED), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_insecure_skip_verify(sv), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_insecure_skip_hostname_check(sv), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_session_cache(sv, TL_OPT_OFF), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(cl, "other.test", sv), TL_EINVAL);
    /* And the right side takes them. */
    CU_ASSERT_EQUAL(tl_tls_context_set_client_cert(sv, TL_TLS_CLIENT_CERT_NONE), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_client_cert(sv, TL_TLS_CLIENT_CERT_OPTIONAL), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_client_cert(sv, TL_TLS_CLIENT_CERT_REQUIRED), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_client_cert(sv, 3), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_client_cert(sv, -1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_insecure_skip_hostname_check(cl), 0);
    CU_ASSERT_EQUAL(tl_tls_context_insecure_skip_verify(cl), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_session_cache(cl, TL_OPT_OFF), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_session_cache(cl, TL_OPT_ON), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_session_cache(cl, 7), TL_EINVAL);
    tl_tls_context_unref(cl);
    tl_tls_context_unref(sv);
}

static void test_set_versions_checks_its_bounds(void) {
    NEED_TLS();
    tl_tls_context_t *c = new_ctx(TL_TLS_CLIENT);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(c, 0x0301, 0), TL_EINVAL); /* TLS 1.0 */
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(c, 0, 0x0302), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(c, 5, 0), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(c, -1, 0), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(c, TL_TLS_VERSION_1_3, TL_TLS_VERSION_1_2), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(c, TL_TLS_VERSION_1_3, 0), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(c, 0, TL_TLS_VERSION_1_2), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(c, TL_TLS_VERSION_1_2, TL_TLS_VERSION_1_3), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(c, TL_TLS_VERSION_1_3, TL_TLS_VERSION_1_3), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(c, 0, 0), 0);
    tl_tls_context_unref(c);
}

static void test_set_alpn_checks_names(void) {
    NEED_TLS();
    tl_tls_context_t *cl = new_ctx(TL_TLS_CLIENT);
    tl_tls_context_t *sv = new_ctx(TL_TLS_SERVER);
    char long_name[257];
    memset(long_name, 'a', 256);
    long_name[256] = '\0';
    const char *empty[] = {"h2", ""};
    const char *too_long[] = {long_name};
    const char *null_one[] = {"h2", NULL};
    const char *good[] = {"h2", "http/1.1"};
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(cl, empty, 2), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(cl, too_long, 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(sv, null_one, 2), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(sv, NULL, 1), TL_EINVAL);
    long_name[255] = '\0'; /* 255 bytes is the longest allowed */
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(cl, too_long, 1), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(cl, good, 2), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(sv, good, 2), 0);
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(sv, good, 1), 0); /* replaces */
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(cl, NULL, 0), 0); /* none */
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(sv, NULL, 0), 0);
    tl_tls_context_unref(cl);
    tl_tls_context_unref(sv);
}

static void test_add_sni_checks_names_and_contexts(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *c = new_server(t->server_cert, t->server_key);
    tl_tls_context_t *other = new_server(t->other_cert, t->other_key);
    tl_tls_context_t *no_cert = new_ctx(TL_TLS_SERVER);
    tl_tls_context_t *client = new_ctx(TL_TLS_CLIENT);
    const char *bad[] = {"", "a*.test", "*.", "*", "*x.test", "*.a*.test",
                         "x.*.test"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CU_ASSERT_EQUAL(tl_tls_context_add_sni(c, bad[i], other), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(c, NULL, other), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(c, "other.test", NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(c, "other.test", c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(c, "other.test", client), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(c, "other.test", no_cert), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(c, "other.test", other), 0);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(c, "*.wild.test", other), 0);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(c, "OTHER.test", other), 0); /* replaces */
    /* No loops: c has entries, so it can't be anyone's for_name. */
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(other, "localhost", c), TL_EINVAL);
    /* c keeps other alive. */
    tl_tls_context_unref(other);
    tl_tls_context_unref(no_cert);
    tl_tls_context_unref(client);
    tl_tls_context_unref(c);
}

/* Every setter of c, with arguments that would succeed before the freeze. */
static void assert_all_setters_estate(tl_tls_context_t *c, tl_tls_context_t *sni) {
    const tl_test_certs_t *t = certs();
    const char *alpn[] = {"h2"};
    int server = tl_tls_context_side(c) == TL_TLS_SERVER;
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(c, t->server_cert, t->server_key), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(c, t->ca_cert), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_tls_context_set_versions(c, 0, 0), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_tls_context_set_alpn(c, alpn, 1), TL_ESTATE);
    if (server) {
        CU_ASSERT_EQUAL(tl_tls_context_set_client_cert(c, TL_TLS_CLIENT_CERT_OPTIONAL), TL_ESTATE);
        CU_ASSERT_EQUAL(tl_tls_context_add_sni(c, "other.test", sni), TL_ESTATE);
    } else {
        CU_ASSERT_EQUAL(tl_tls_context_insecure_skip_verify(c), TL_ESTATE);
        CU_ASSERT_EQUAL(tl_tls_context_insecure_skip_hostname_check(c), TL_ESTATE);
        CU_ASSERT_EQUAL(tl_tls_context_set_session_cache(c, TL_OPT_OFF), TL_ESTATE);
    }
}

static void test_setters_fail_with_estate_once_frozen(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *cl = new_ctx(TL_TLS_CLIENT);
    CU_ASSERT_EQUAL(tl_tls_context_load_verify_file(cl, t->ca_cert), 0);
    CU_ASSERT_EQUAL(tl__tls_context_freeze(cl), 0);
    CU_ASSERT_EQUAL(tl__tls_context_freeze(cl), 0); /* twice is fine */
    assert_all_setters_estate(cl, NULL);
    /* Getters and refs still work. */
    CU_ASSERT_EQUAL(tl_tls_context_side(cl), TL_TLS_CLIENT);
    CU_ASSERT_EQUAL(tl_tls_context_ref(cl), 0);
    tl_tls_context_unref(cl);
    tl_tls_context_unref(cl);

    tl_tls_context_t *sv = new_server(t->server_cert, t->server_key);
    tl_tls_context_t *other = new_server(t->other_cert, t->other_key);
    CU_ASSERT_EQUAL(tl__tls_context_freeze(sv), 0);
    assert_all_setters_estate(sv, other);
    tl_tls_context_unref(sv);
    tl_tls_context_unref(other);
}

static void test_freezing_a_server_freezes_its_sni_contexts(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    tl_tls_context_t *sv = new_server(t->server_cert, t->server_key);
    tl_tls_context_t *other = new_server(t->other_cert, t->other_key);
    CU_ASSERT_EQUAL(tl_tls_context_add_sni(sv, "other.test", other), 0);
    CU_ASSERT_EQUAL(tl__tls_context_freeze(sv), 0);
    CU_ASSERT_EQUAL(tl_tls_context_use_certificate_file(other, t->server_cert, t->server_key), TL_ESTATE);
    tl_tls_context_unref(sv);
    tl_tls_context_unref(other);
}

static void test_freezing_a_client_loads_ssl_cert_file(void) {
    NEED_TLS();
    /* With nothing loaded, the freeze reads $SSL_CERT_FILE (here: our CA,
     * so it is fast and known), and does not fail without one. */
    const tl_test_certs_t *t = certs();
    const char *old = getenv("SSL_CERT_FILE");
    char *saved = old ? strdup(old) : NULL;
    setenv("SSL_CERT_FILE", t->ca_cert, 1);
    tl_tls_context_t *c = new_ctx(TL_TLS_CLIENT);
    CU_ASSERT_EQUAL(tl__tls_context_freeze(c), 0);
    tl_tls_context_unref(c);
    char missing[512];
    snprintf(missing, sizeof missing, "%s/none.pem", t->dir);
    setenv("SSL_CERT_FILE", missing, 1);
    c = new_ctx(TL_TLS_CLIENT);
    CU_ASSERT_EQUAL(tl__tls_context_freeze(c), 0);
    tl_tls_context_unref(c);
    if (saved) {
        setenv("SSL_CERT_FILE", saved, 1);
        free(saved);
    } else {
        unsetenv("SSL_CERT_FILE");
    }
}

/* ---- out of memory ----------------------------------------------------- */

/* Run op with the nth allocation failing for n = 1, 2, ... until op no
 * longer reaches it: each failure is TL_ENOMEM, and the context still
 * frees everything. */
typedef int (*ctx_op_fn)(tl_tls_context_t *c, tl_tls_context_t *aux);

static void oom_walk(int side, ctx_op_fn op, tl_tls_context_t *aux) {
    for (long n = 1;; n++) {
        long live = tl_test_live_allocs();
        tl_tls_context_t *c = new_ctx(side);
        long before = tl_test_alloc_count();
        tl_test_fail_alloc_at(n);
        int rc = op(c, aux);
        int hit = tl_test_alloc_count() - before >= n;
        tl_test_fail_alloc_at(0);
        if (!hit) {
            CU_ASSERT_EQUAL(rc, 0);
            tl_tls_context_unref(c);
            break;
        }
        CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        tl_tls_context_unref(c);
        CU_ASSERT_EQUAL(tl_test_live_allocs(), live);
        CU_ASSERT_FATAL(n < 100);
    }
}

static int op_use_cert_file(tl_tls_context_t *c, tl_tls_context_t *aux) {
    (void)aux;
    const tl_test_certs_t *t = tl_test_certs();
    return tl_tls_context_use_certificate_file(c, t->server_cert, t->server_key);
}

static int op_load_verify_file(tl_tls_context_t *c, tl_tls_context_t *aux) {
    (void)aux;
    return tl_tls_context_load_verify_file(c, tl_test_certs()->ca_cert);
}

static int op_set_alpn(tl_tls_context_t *c, tl_tls_context_t *aux) {
    (void)aux;
    const char *p[] = {"h2", "http/1.1"};
    return tl_tls_context_set_alpn(c, p, 2);
}

static int op_add_sni(tl_tls_context_t *c, tl_tls_context_t *aux) {
    return tl_tls_context_add_sni(c, "*.wild.test", aux);
}

static void test_setters_fail_cleanly_without_memory(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    oom_walk(TL_TLS_SERVER, op_use_cert_file, NULL);
    oom_walk(TL_TLS_CLIENT, op_load_verify_file, NULL);
    oom_walk(TL_TLS_CLIENT, op_set_alpn, NULL);
    oom_walk(TL_TLS_SERVER, op_set_alpn, NULL);
    tl_tls_context_t *other = new_server(t->other_cert, t->other_key);
    oom_walk(TL_TLS_SERVER, op_add_sni, other);
    tl_tls_context_unref(other);
}

/* ---- threads ----------------------------------------------------------- */

static void *config_thread(void *p) {
    const tl_test_certs_t *t = p;
    long bad = 0;
    for (int i = 0; i < 20; i++) {
        tl_tls_context_t *c = NULL;
        if (tl_tls_context_new(TL_TLS_SERVER, &c) != 0)
            return (void *)1;
        /* A failure leaves nothing in BoringSSL's error queue that would
         * make the next call (on this thread) fail. */
        if (tl_tls_context_use_certificate_mem(c, "junk", 4, "junk", 4) != TL_EINVAL)
            bad++;
        if (tl_tls_context_use_certificate_file(c, t->server_cert, t->other_key) != TL_EINVAL)
            bad++;
        if (tl_tls_context_use_certificate_file(c, t->server_cert, t->server_key) != 0)
            bad++;
        if (tl_tls_context_load_verify_file(c, t->ca_cert) != 0)
            bad++;
        tl_tls_context_unref(c);
    }
    return (void *)bad;
}

static void test_contexts_configure_on_several_threads(void) {
    NEED_TLS();
    const tl_test_certs_t *t = certs();
    enum { N = 4 };
    pthread_t th[N];
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, config_thread, (void *)t), 0);
    for (int i = 0; i < N; i++) {
        void *r;
        pthread_join(th[i], &r);
        CU_ASSERT_PTR_NULL(r);
    }
}

typedef struct sni_race {
    tl_tls_context_t *from, *to;
    pthread_barrier_t *go;
    int rc;
} sni_race_t;

static void *sni_race_thread(void *p) {
    sni_race_t *r = p;
    pthread_barrier_wait(r->go);
    r->rc = tl_tls_context_add_sni(r->from, "other.test", r->to);
    if (r->rc == 0)
        tl__tls_context_freeze(r->from);
    return NULL;
}

static void test_add_sni_both_ways_at_once_makes_no_loop(void) {
    NEED_TLS();
    /* Two servers naming each other from two threads: one wins, the other
     * fails (a loop of references would never be freed), and nothing
     * deadlocks with the winner's freeze. */
    const tl_test_certs_t *t = certs();
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    for (int round = 0; round < 20; round++) {
        tl_tls_context_t *a = new_server(t->server_cert, t->server_key);
        tl_tls_context_t *b = new_server(t->other_cert, t->other_key);
        sni_race_t ra = {a, b, &go, 1}, rb = {b, a, &go, 1};
        pthread_t ta, tb;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&ta, NULL, sni_race_thread, &ra), 0);
        CU_ASSERT_EQUAL_FATAL(pthread_create(&tb, NULL, sni_race_thread, &rb), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        CU_ASSERT((ra.rc == 0) != (rb.rc == 0));
        /* The loser: TL_EINVAL, or TL_ESTATE when the winner's freeze
         * (which freezes its SNI contexts) came first. */
        int lost = ra.rc ? ra.rc : rb.rc;
        CU_ASSERT(lost == TL_EINVAL || lost == TL_ESTATE);
        tl_tls_context_unref(a);
        tl_tls_context_unref(b);
    }
    pthread_barrier_destroy(&go);
    CU_ASSERT_EQUAL(tl_test_live_allocs(), 0);
}

/* ---- the build --------------------------------------------------------- */

static void test_library_links_boringssl_and_no_other_libssl(void) {
    NEED_TLS();
    char cmd[512], out[8192];
    snprintf(cmd, sizeof cmd, "ldd %s/lib/libtulip.so.1 2>&1", tl_test_build_dir());
    FILE *p = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    CU_ASSERT_EQUAL(pclose(p), 0);
    int android_ssl = 0, android_crypto = 0, other = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, "libssl") == NULL && strstr(line, "libcrypto") == NULL)
            continue;
        if (strstr(line, "/android/libssl.so"))
            android_ssl = 1;
        else if (strstr(line, "/android/libcrypto.so"))
            android_crypto = 1;
        else {
            fprintf(stderr, "\n  unexpected TLS library: %s\n", line);
            other = 1;
        }
    }
    CU_ASSERT(android_ssl);
    CU_ASSERT(android_crypto);
    CU_ASSERT_FALSE(other);
}

TL_TEST_SUITE(tls_context,
              TL_TEST(test_tls_is_available_in_this_build),
              TL_TEST(test_new_rejects_bad_side_and_null_out),
              TL_TEST(test_new_context_knows_its_side),
              TL_TEST(test_null_context_is_einval_everywhere),
              TL_TEST(test_ref_and_unref_from_many_threads),
              TL_TEST(test_new_fails_cleanly_without_memory),
              TL_TEST(test_use_certificate_file_loads_ecdsa_and_rsa),
              TL_TEST(test_use_certificate_file_reports_missing_files),
              TL_TEST(test_use_certificate_file_reports_unreadable_files),
              TL_TEST(test_use_certificate_mem_rejects_garbage),
              TL_TEST(test_use_certificate_rejects_a_key_of_another_certificate),
              TL_TEST(test_use_certificate_mem_takes_a_chain),
              TL_TEST(test_load_verify_adds_cas_and_rejects_garbage),
              TL_TEST(test_setters_refuse_the_wrong_side),
              TL_TEST(test_set_versions_checks_its_bounds),
              TL_TEST(test_set_alpn_checks_names),
              TL_TEST(test_add_sni_checks_names_and_contexts),
              TL_TEST(test_setters_fail_with_estate_once_frozen),
              TL_TEST(test_freezing_a_server_freezes_its_sni_contexts),
              TL_TEST(test_freezing_a_client_loads_ssl_cert_file),
              TL_TEST(test_setters_fail_cleanly_without_memory),
              TL_TEST(test_contexts_configure_on_several_threads),
              TL_TEST(test_add_sni_both_ways_at_once_makes_no_loop),
              TL_TEST(test_library_links_boringssl_and_no_other_libssl))
