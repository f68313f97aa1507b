/*
 * TLS contexts (asyncio's SSLContext) over BoringSSL's SSL_CTX.
 *
 * A context is configured by its setters, then frozen by its first
 * connection (tl__tls_context_new_ssl): from then on its SSL_CTX and
 * settings are read-only, so connections on many threads share it without
 * locks. The mutex guards the configuration until the freeze, the freeze
 * itself (which loads the system CA bundle once), and the client session
 * cache, which keeps changing.
 *
 * Each SSL made here carries, in its ex_data, a tl__tls_ssl_data_t: a
 * reference to the context that made it (SNI may switch the SSL's SSL_CTX
 * to another context's, but ALPN, client certificates and the session
 * cache stay those of the context the connection was made from) and the
 * session key under which new client sessions are kept. The reference is
 * dropped when the SSL is freed.
 *
 * Cycles: add_sni refuses a for_name context that has SNI entries of its
 * own (under one process-wide lock), so references between contexts never
 * loop and the last unref always frees.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../core/alloc.h"
#include "tls_int.h"

/* Client sessions kept per context (the oldest goes first). */
#define TL__TLS_SESSION_MAX 256
/* PEM files larger than this are refused (TL_EFBIG). */
#define TL__TLS_PEM_MAX (64u << 20)

typedef struct sni_entry {
    char *name; /* "host.example" or "*.example" */
    tl_tls_context_t *ctx;
} sni_entry_t;

typedef struct sess_entry {
    char *key; /* "host:port" */
    SSL_SESSION *sess;
} sess_entry_t;

struct tl_tls_context {
    atomic_long refs;
    int side;
    SSL_CTX *ctx;
    pthread_mutex_t lock;
    int frozen;
    int has_cert;
    int verify_loaded;  /* load_verify was called */
    int skip_verify;
    int skip_hostname;
    int client_cert;    /* TL_TLS_CLIENT_CERT_* */
    int session_cache;  /* client: resume sessions */
    uint8_t *alpn;      /* wire format: length-prefixed names */
    size_t alpn_len;
    sni_entry_t *sni;
    size_t nsni, sni_cap;
    sess_entry_t *sess;
    size_t nsess, sess_cap;
};

/* What each SSL carries (ex_data): see the file comment. */
typedef struct tl__tls_ssl_data {
    tl_tls_context_t *owner;
    char key[]; /* session key, "" for none */
} tl__tls_ssl_data_t;

/* ---- process-wide ------------------------------------------------------ */

static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static int ex_index = -1;
/* Held by add_sni, so two contexts can't be made each other's for_name. */
static pthread_mutex_t sni_lock = PTHREAD_MUTEX_INITIALIZER;

static void ssl_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
                          int index, long argl, void *argp) {
    (void)parent, (void)ad, (void)index, (void)argl, (void)argp;
    tl__tls_ssl_data_t *d = ptr;
    if (d == NULL)
        return;
    tl_tls_context_unref(d->owner);
    tl__free(d);
}

static void ex_init(void) {
    ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, ssl_data_free);
}

static tl__tls_ssl_data_t *ssl_data(const SSL *ssl) {
    return ex_index < 0 ? NULL : SSL_get_ex_data(ssl, ex_index);
}

int tl_tls_available(void) { return 1; }

/* ---- callbacks --------------------------------------------------------- */

/* Server, SNI: switch the SSL to the certificate of the entry for the name
 * the client asked (exact names first, then "*.x" matching one label). */
static int servername_cb(SSL *ssl, int *out_alert, void *arg) {
    (void)arg;
    tl__tls_ssl_data_t *d = ssl_data(ssl);
    if (d == NULL || d->owner->nsni == 0)
        return SSL_TLSEXT_ERR_OK;
    const tl_tls_context_t *c = d->owner;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL || *name == '\0')
        return SSL_TLSEXT_ERR_OK;
    const sni_entry_t *hit = NULL;
    for (size_t i = 0; i < c->nsni && hit == NULL; i++)
        if (c->sni[i].name[0] != '*' && strcasecmp(c->sni[i].name, name) == 0)
            hit = &c->sni[i];
    const char *dot = strchr(name, '.');
    for (size_t i = 0; i < c->nsni && hit == NULL && dot && dot != name; i++)
        if (c->sni[i].name[0] == '*' && strcasecmp(c->sni[i].name + 1, dot) == 0)
            hit = &c->sni[i];
    if (hit == NULL)
        return SSL_TLSEXT_ERR_OK;
    if (SSL_set_SSL_CTX(ssl, hit->ctx->ctx) == NULL) {
        *out_alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* Server, ALPN: the first of our protocols the client offered; none in
 * common fails the handshake (no_application_protocol). */
static int alpn_select_cb(SSL *ssl, const uint8_t **out, uint8_t *out_len,
                          const uint8_t *in, unsigned in_len, void *arg) {
    (void)arg;
    tl__tls_ssl_data_t *d = ssl_data(ssl);
    if (d == NULL || d->owner->alpn_len == 0)
        return SSL_TLSEXT_ERR_NOACK;
    const tl_tls_context_t *c = d->owner;
    for (size_t i = 0; i < c->alpn_len; i += 1u + c->alpn[i]) {
        const uint8_t *mine = c->alpn + i;
        for (unsigned j = 0; j < in_len; j += 1u + in[j]) {
            if (j + 1u + in[j] > in_len)
                break;
            if (in[j] == mine[0] && memcmp(in + j + 1, mine + 1, mine[0]) == 0) {
                *out = in + j + 1;
                *out_len = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Client: a new session (after the handshake in TLS 1.2; when a ticket
 * arrives in TLS 1.3) is kept under the connection's session key. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess) {
    tl__tls_ssl_data_t *d = ssl_data(ssl);
    if (d == NULL || d->key[0] == '\0' || !SSL_SESSION_is_resumable(sess))
        return 0;
    tl_tls_context_t *c = d->owner;
    int taken = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nsess; i++) {
        if (strcmp(c->sess[i].key, d->key) == 0) {
            SSL_SESSION_free(c->sess[i].sess);
            c->sess[i].sess = sess;
            taken = 1;
            break;
        }
    }
    if (!taken) {
        if (c->nsess == TL__TLS_SESSION_MAX) {
            tl__free(c->sess[0].key);
            SSL_SESSION_free(c->sess[0].sess);
            memmove(c->sess, c->sess + 1, --c->nsess * sizeof *c->sess);
        }
        char *key = NULL;
        if (tl__grow((void **)&c->sess, &c->sess_cap, c->nsess + 1,
                     sizeof *c->sess) == 0 &&
            (key = tl__strdup(d->key)) != NULL) {
            c->sess[c->nsess].key = key;
            c->sess[c->nsess++].sess = sess;
            taken = 1;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return taken;
}

/* Never prompt for a password: encrypted keys are refused. */
static int no_password(char *buf, int size, int rwflag, void *u) {
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

/* ---- life -------------------------------------------------------------- */

int tl_tls_context_new(int side, tl_tls_context_t **out) {
    if (out == NULL)
        return TL_EINVAL;
    *out = NULL;
    if (side != TL_TLS_CLIENT && side != TL_TLS_SERVER)
        return TL_EINVAL;
    tl_tls_context_t *c = tl__calloc(1, sizeof *c);
    if (c == NULL)
        return TL_ENOMEM;
    c->ctx = SSL_CTX_new(TLS_method());
    if (c->ctx == NULL || pthread_mutex_init(&c->lock, NULL) != 0) {
        SSL_CTX_free(c->ctx);
        tl__free(c);
        ERR_clear_error();
        return TL_ENOMEM;
    }
    atomic_init(&c->refs, 1);
    c->side = side;
    c->session_cache = 1;
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c->ctx, TLS1_3_VERSION);
    if (side == TL_TLS_CLIENT) {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_CLIENT);
        SSL_CTX_sess_set_new_cb(c->ctx, new_session_cb);
    } else {
        static const uint8_t sid_ctx[] = "tulip";
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_id_context(c->ctx, sid_ctx, sizeof sid_ctx - 1);
        SSL_CTX_set_tlsext_servername_callback(c->ctx, servername_cb);
        SSL_CTX_set_alpn_select_cb(c->ctx, alpn_select_cb, NULL);
    }
    SSL_CTX_set_default_passwd_cb(c->ctx, no_password);
    *out = c;
    return 0;
}

int tl_tls_context_ref(tl_tls_context_t *c) {
    if (c == NULL)
        return TL_EINVAL;
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return 0;
}

void tl_tls_context_unref(tl_tls_context_t *c) {
    if (c == NULL ||
        atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < c->nsess; i++) {
        tl__free(c->sess[i].key);
        SSL_SESSION_free(c->sess[i].sess);
    }
    tl__free(c->sess);
    for (size_t i = 0; i < c->nsni; i++) {
        tl__free(c->sni[i].name);
        tl_tls_context_unref(c->sni[i].ctx);
    }
    tl__free(c->sni);
    tl__free(c->alpn);
    SSL_CTX_free(c->ctx);
    pthread_mutex_destroy(&c->lock);
    tl__free(c);
}

int tl_tls_context_side(const tl_tls_context_t *c) {
    return c ? c->side : TL_EINVAL;
}

/* Setters: lock c, refuse a frozen one. */
static int setter_begin(tl_tls_context_t *c) {
    pthread_mutex_lock(&c->lock);
    if (c->frozen) {
        pthread_mutex_unlock(&c->lock);
        return TL_ESTATE;
    }
    return 0;
}

static int setter_end(tl_tls_context_t *c, int rc) {
    ERR_clear_error();
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* ---- PEM --------------------------------------------------------------- */

/* A whole file, in a tulip buffer the caller frees. */
static int read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return tl_translate_sys_error(errno);
    size_t cap = 0, n = 0;
    char *buf = NULL;
    int rc = 0;
    for (;;) {
        if (n == cap && (rc = tl__grow((void **)&buf, &cap, n + 4096, 1)) != 0)
            break;
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                rc = tl_translate_sys_error(errno ? errno : EIO);
            break;
        }
        if (n > TL__TLS_PEM_MAX) {
            rc = TL_EFBIG;
            break;
        }
    }
    fclose(f);
    if (rc != 0) {
        tl__free(buf);
        return rc;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* 1 when the error queue says only "no more PEM blocks". */
static int pem_ended(void) {
    uint32_t e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_PEM &&
           ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

/* Every certificate in pem (at least one, and nothing but certificates
 * after them), in order. */
static int parse_certs(const void *pem, size_t len, STACK_OF(X509) **out) {
    *out = NULL;
    if (len > INT_MAX)
        return TL_EINVAL;
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    if (b == NULL || sk == NULL) {
        BIO_free(b);
        sk_X509_free(sk);
        return TL_ENOMEM;
    }
    int rc = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, no_password, NULL)) != NULL) {
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            rc = TL_ENOMEM;
            break;
        }
    }
    if (rc == 0 && (sk_X509_num(sk) == 0 || !pem_ended()))
        rc = TL_EINVAL;
    BIO_free(b);
    ERR_clear_error();
    if (rc != 0) {
        sk_X509_pop_free(sk, X509_free);
        return rc;
    }
    *out = sk;
    return 0;
}

static int parse_key(const void *pem, size_t len, EVP_PKEY **out) {
    *out = NULL;
    if (len > INT_MAX)
        return TL_EINVAL;
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    if (b == NULL)
        return TL_ENOMEM;
    *out = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
    BIO_free(b);
    ERR_clear_error();
    return *out ? 0 : TL_EINVAL;
}

int tl_tls_context_use_certificate_mem(tl_tls_context_t *c,
                                       const void *chain_pem, size_t chain_len,
                                       const void *key_pem, size_t key_len) {
    if (c == NULL || chain_pem == NULL || key_pem == NULL || chain_len == 0 ||
        key_len == 0)
        return TL_EINVAL;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    int rc = parse_certs(chain_pem, chain_len, &chain);
    if (rc == 0)
        rc = parse_key(key_pem, key_len, &key);
    X509 *leaf = rc == 0 ? sk_X509_value(chain, 0) : NULL;
    if (rc == 0 && !X509_check_private_key(leaf, key))
        rc = TL_EINVAL;
    if (rc == 0 && (rc = setter_begin(c)) == 0) {
        /* Checked above, so a failure here is BoringSSL's allocation. */
        int ok = SSL_CTX_use_certificate(c->ctx, leaf) &&
                 SSL_CTX_clear_chain_certs(c->ctx);
        for (size_t i = 1; ok && i < sk_X509_num(chain); i++)
            ok = SSL_CTX_add1_chain_cert(c->ctx, sk_X509_value(chain, i));
        ok = ok && SSL_CTX_use_PrivateKey(c->ctx, key) &&
             SSL_CTX_check_private_key(c->ctx);
        if (ok)
            c->has_cert = 1;
        rc = setter_end(c, ok ? 0 : TL_ENOMEM);
    }
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rc;
}

int tl_tls_context_use_certificate_file(tl_tls_context_t *c,
                                        const char *chain_path,
                                        const char *key_path) {
    if (c == NULL || chain_path == NULL || key_path == NULL)
        return TL_EINVAL;
    char *chain = NULL, *key = NULL;
    size_t chain_len = 0, key_len = 0;
    int rc = read_file(chain_path, &chain, &chain_len);
    if (rc == 0)
        rc = read_file(key_path, &key, &key_len);
    if (rc == 0)
        rc = tl_tls_context_use_certificate_mem(c, chain, chain_len, key,
                                                key_len);
    tl__free(chain);
    tl__free(key);
    return rc;
}

int tl_tls_context_load_verify_mem(tl_tls_context_t *c, const void *pem,
                                   size_t len) {
    if (c == NULL || pem == NULL || len == 0)
        return TL_EINVAL;
    STACK_OF(X509) *certs = NULL;
    int rc = parse_certs(pem, len, &certs);
    if (rc == 0 && (rc = setter_begin(c)) == 0) {
        X509_STORE *store = SSL_CTX_get_cert_store(c->ctx);
        /* A certificate already trusted is not an error (BoringSSL ignores
         * duplicates); anything else is its allocation failing. */
        for (size_t i = 0; rc == 0 && i < sk_X509_num(certs); i++)
            if (!X509_STORE_add_cert(store, sk_X509_value(certs, i)))
                rc = TL_ENOMEM;
        if (rc == 0)
            c->verify_loaded = 1;
        rc = setter_end(c, rc);
    }
    sk_X509_pop_free(certs, X509_free);
    return rc;
}

int tl_tls_context_load_verify_file(tl_tls_context_t *c, const char *path) {
    if (c == NULL || path == NULL)
        return TL_EINVAL;
    char *pem = NULL;
    size_t len = 0;
    int rc = read_file(path, &pem, &len);
    if (rc == 0)
        rc = tl_tls_context_load_verify_mem(c, pem, len);
    tl__free(pem);
    return rc;
}

/* ---- settings ---------------------------------------------------------- */

int tl_tls_context_insecure_skip_verify(tl_tls_context_t *c) {
    if (c == NULL || c->side != TL_TLS_CLIENT)
        return TL_EINVAL;
    int rc = setter_begin(c);
    if (rc != 0)
        return rc;
    c->skip_verify = 1;
    c->skip_hostname = 1;
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    return setter_end(c, 0);
}

int tl_tls_context_insecure_skip_hostname_check(tl_tls_context_t *c) {
    if (c == NULL || c->side != TL_TLS_CLIENT)
        return TL_EINVAL;
    int rc = setter_begin(c);
    if (rc != 0)
        return rc;
    c->skip_hostname = 1;
    return setter_end(c, 0);
}

int tl_tls_context_set_client_cert(tl_tls_context_t *c, int mode) {
    if (c == NULL || c->side != TL_TLS_SERVER ||
        (mode != TL_TLS_CLIENT_CERT_NONE &&
         mode != TL_TLS_CLIENT_CERT_OPTIONAL &&
         mode != TL_TLS_CLIENT_CERT_REQUIRED))
        return TL_EINVAL;
    int rc = setter_begin(c);
    if (rc != 0)
        return rc;
    int flags = mode == TL_TLS_CLIENT_CERT_NONE ? SSL_VERIFY_NONE
                : mode == TL_TLS_CLIENT_CERT_OPTIONAL
                    ? SSL_VERIFY_PEER
                    : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(c->ctx, flags, NULL);
    c->client_cert = mode;
    return setter_end(c, 0);
}

static int version_ok(int v) {
    return v == 0 || v == TL_TLS_VERSION_1_2 || v == TL_TLS_VERSION_1_3;
}

/* 0 means tulip's bounds: TLS 1.2 (asyncio's minimum) to TLS 1.3. */
int tl_tls_context_set_versions(tl_tls_context_t *c, int min_version,
                                int max_version) {
    if (c == NULL || !version_ok(min_version) || !version_ok(max_version))
        return TL_EINVAL;
    uint16_t lo = min_version ? (uint16_t)min_version : TLS1_2_VERSION;
    uint16_t hi = max_version ? (uint16_t)max_version : TLS1_3_VERSION;
    if (lo > hi)
        return TL_EINVAL;
    int rc = setter_begin(c);
    if (rc != 0)
        return rc;
    int ok = SSL_CTX_set_min_proto_version(c->ctx, lo) &&
             SSL_CTX_set_max_proto_version(c->ctx, hi);
    return setter_end(c, ok ? 0 : TL_EINVAL);
}

int tl_tls_context_set_alpn(tl_tls_context_t *c, const char *const *protocols,
                            size_t n) {
    if (c == NULL || (n > 0 && protocols == NULL))
        return TL_EINVAL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = protocols[i] ? strlen(protocols[i]) : 0;
        if (len == 0 || len > 255)
            return TL_EINVAL;
        total += 1 + len;
        if (total > 0xffff)
            return TL_EINVAL;
    }
    uint8_t *wire = NULL;
    if (total > 0) {
        wire = tl__malloc(total);
        if (wire == NULL)
            return TL_ENOMEM;
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(protocols[i]);
            wire[at++] = (uint8_t)len;
            memcpy(wire + at, protocols[i], len);
            at += len;
        }
    }
    int rc = setter_begin(c);
    if (rc != 0) {
        tl__free(wire);
        return rc;
    }
    /* SSL_CTX_set_alpn_protos returns 0 on success. */
    if (c->side == TL_TLS_CLIENT &&
        SSL_CTX_set_alpn_protos(c->ctx, wire ? wire : (const uint8_t *)"",
                                (unsigned)total) != 0) {
        tl__free(wire);
        return setter_end(c, TL_ENOMEM);
    }
    tl__free(c->alpn);
    c->alpn = wire;
    c->alpn_len = total;
    return setter_end(c, 0);
}

/* "name.example" (no '*') or "*.example" with a non-empty rest. */
static int sni_name_ok(const char *name) {
    size_t len = strlen(name);
    if (len == 0 || len > 255)
        return 0;
    const char *star = strchr(name, '*');
    if (star == NULL)
        return 1;
    return star == name && name[1] == '.' && name[2] != '\0' &&
           strchr(name + 1, '*') == NULL;
}

int tl_tls_context_add_sni(tl_tls_context_t *c, const char *name,
                           tl_tls_context_t *for_name) {
    if (c == NULL || name == NULL || for_name == NULL || for_name == c ||
        c->side != TL_TLS_SERVER || for_name->side != TL_TLS_SERVER ||
        !sni_name_ok(name))
        return TL_EINVAL;
    /* for_name's lock is never held with c's (a freeze holds c's, then
     * its targets'); its entries change only under sni_lock, held here. */
    pthread_mutex_lock(&sni_lock);
    pthread_mutex_lock(&for_name->lock);
    int usable = for_name->has_cert && for_name->nsni == 0;
    pthread_mutex_unlock(&for_name->lock);
    int rc = setter_begin(c);
    if (rc != 0) {
        pthread_mutex_unlock(&sni_lock);
        return rc;
    }
    size_t i = 0;
    while (i < c->nsni && strcasecmp(c->sni[i].name, name) != 0)
        i++;
    if (!usable) {
        rc = TL_EINVAL;
    } else if (i < c->nsni) { /* a new certificate for a known name */
        tl_tls_context_ref(for_name);
        tl_tls_context_unref(c->sni[i].ctx);
        c->sni[i].ctx = for_name;
    } else if ((rc = tl__grow((void **)&c->sni, &c->sni_cap, c->nsni + 1,
                              sizeof *c->sni)) == 0) {
        char *copy = tl__strdup(name);
        if (copy == NULL) {
            rc = TL_ENOMEM;
        } else {
            tl_tls_context_ref(for_name);
            c->sni[c->nsni].name = copy;
            c->sni[c->nsni++].ctx = for_name;
        }
    }
    rc = setter_end(c, rc);
    pthread_mutex_unlock(&sni_lock);
    return rc;
}

int tl_tls_context_set_session_cache(tl_tls_context_t *c, int on) {
    if (c == NULL || c->side != TL_TLS_CLIENT ||
        (on != TL_OPT_ON && on != TL_OPT_OFF && on != TL_OPT_DEFAULT))
        return TL_EINVAL;
    int rc = setter_begin(c);
    if (rc != 0)
        return rc;
    c->session_cache = on != TL_OPT_OFF;
    return setter_end(c, 0);
}

/* ---- connections ------------------------------------------------------- */

/* The system's CA bundle, as Python's ssl and Go look for it. */
static void load_system_cas(tl_tls_context_t *c) {
    static const char *const bundles[] = {
        "/etc/ssl/certs/ca-certificates.crt", /* Debian, Ubuntu, Alpine */
        "/etc/pki/tls/certs/ca-bundle.crt",   /* Fedora, RHEL */
        "/etc/ssl/cert.pem",                  /* macOS, BSDs, Alpine */
    };
    const char *env = getenv("SSL_CERT_FILE");
    if (env && *env) {
        SSL_CTX_load_verify_locations(c->ctx, env, NULL);
    } else {
        for (size_t i = 0; i < sizeof bundles / sizeof *bundles; i++)
            if (SSL_CTX_load_verify_locations(c->ctx, bundles[i], NULL))
                break;
    }
    /* No bundle: every chain fails to verify (TL_ECERTVERIFY), as it
     * should on a machine that trusts nothing. */
    ERR_clear_error();
}

/* The first connection: load what is still missing, then read-only. SNI
 * targets are frozen too, since connections use their SSL_CTX. */
static void freeze(tl_tls_context_t *c) {
    pthread_mutex_lock(&c->lock);
    if (!c->frozen) {
        if (c->side == TL_TLS_CLIENT && !c->skip_verify && !c->verify_loaded)
            load_system_cas(c);
        for (size_t i = 0; i < c->nsni; i++) {
            tl_tls_context_t *t = c->sni[i].ctx;
            pthread_mutex_lock(&t->lock);
            t->frozen = 1;
            pthread_mutex_unlock(&t->lock);
        }
        c->frozen = 1;
    }
    pthread_mutex_unlock(&c->lock);
}

int tl__tls_context_freeze(tl_tls_context_t *c) {
    if (c == NULL)
        return TL_EINVAL;
    freeze(c);
    return 0;
}

static int is_ip_address(const char *s) {
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* The client's name checks and SNI for server_hostname. */
static int set_hostname(tl_tls_context_t *c, SSL *ssl, const char *host) {
    int check = !c->skip_verify && !c->skip_hostname;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    if (is_ip_address(host)) /* checked as an address, never sent as SNI */
        return !check || X509_VERIFY_PARAM_set1_ip_asc(param, host) ? 0
                                                                    : TL_EINVAL;
    if (strlen(host) > 255 || !SSL_set_tlsext_host_name(ssl, host))
        return TL_EINVAL;
    if (check) {
        X509_VERIFY_PARAM_set_hostflags(param,
                                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (!X509_VERIFY_PARAM_set1_host(param, host, strlen(host)))
            return TL_EINVAL;
    }
    return 0;
}

int tl__tls_context_new_ssl(tl_tls_context_t *c, const char *server_hostname,
                            const char *session_key, SSL **out) {
    if (out == NULL)
        return TL_EINVAL;
    *out = NULL;
    if (c == NULL)
        return TL_EINVAL;
    freeze(c); /* c's settings are read-only from here on */
    if (server_hostname && *server_hostname == '\0')
        server_hostname = NULL;
    if (c->side == TL_TLS_CLIENT && server_hostname == NULL &&
        !c->skip_verify && !c->skip_hostname)
        return TL_EINVAL;
    pthread_once(&ex_once, ex_init);
    if (ex_index < 0)
        return TL_ENOMEM;

    int resume = c->side == TL_TLS_CLIENT && c->session_cache &&
                 session_key != NULL && *session_key != '\0';
    size_t klen = resume ? strlen(session_key) : 0;
    tl__tls_ssl_data_t *d = tl__malloc(sizeof *d + klen + 1);
    if (d == NULL)
        return TL_ENOMEM;
    memcpy(d->key, resume ? session_key : "", klen + 1);
    d->owner = c;
    SSL *ssl = SSL_new(c->ctx);
    if (ssl == NULL || !SSL_set_ex_data(ssl, ex_index, d)) {
        SSL_free(ssl);
        tl__free(d);
        ERR_clear_error();
        return TL_ENOMEM;
    }
    tl_tls_context_ref(c); /* dropped by ssl_data_free */

    int rc = 0;
    if (c->side == TL_TLS_CLIENT) {
        SSL_set_connect_state(ssl);
        if (server_hostname)
            rc = set_hostname(c, ssl, server_hostname);
        if (rc == 0 && resume) {
            pthread_mutex_lock(&c->lock);
            for (size_t i = 0; i < c->nsess; i++)
                if (strcmp(c->sess[i].key, session_key) == 0) {
                    if (!SSL_set_session(ssl, c->sess[i].sess))
                        rc = TL_ENOMEM;
                    break;
                }
            pthread_mutex_unlock(&c->lock);
        }
    } else {
        SSL_set_accept_state(ssl);
        /* Client certificates verify against this context's CAs even when
         * SNI switches the SSL to another context's SSL_CTX. */
        if (c->client_cert != TL_TLS_CLIENT_CERT_NONE &&
            !SSL_set1_verify_cert_store(ssl, SSL_CTX_get_cert_store(c->ctx)))
            rc = TL_ENOMEM;
    }
    ERR_clear_error();
    if (rc != 0) {
        SSL_free(ssl);
        return rc;
    }
    *out = ssl;
    return 0;
}
