/*
 * TLS in a build without BoringSSL (TLS=0: a cross build, or a machine
 * without android-libboringssl-dev): the ABI is the same, every call says
 * TL_ENOTSUP, and tl_tls_available() is 0.
 */
#include "tls_int.h"

int tl_tls_available(void) { return 0; }

int tl_tls_context_new(int side, tl_tls_context_t **out) {
    (void)side;
    if (out)
        *out = NULL;
    return TL_ENOTSUP;
}
int tl_tls_context_ref(tl_tls_context_t *c) { (void)c; return TL_ENOTSUP; }
void tl_tls_context_unref(tl_tls_context_t *c) { (void)c; }
int tl_tls_context_side(const tl_tls_context_t *c) { (void)c; return TL_ENOTSUP; }
int tl_tls_context_use_certificate_file(tl_tls_context_t *c, const char *chain,
                                        const char *key) {
    (void)c, (void)chain, (void)key;
    return TL_ENOTSUP;
}
int tl_tls_context_use_certificate_mem(tl_tls_context_t *c, const void *chain,
                                       size_t chain_len, const void *key,
                                       size_t key_len) {
    (void)c, (void)chain, (void)chain_len, (void)key, (void)key_len;
    return TL_ENOTSUP;
}
int tl_tls_context_load_verify_file(tl_tls_context_t *c, const char *path) {
    (void)c, (void)path;
    return TL_ENOTSUP;
}
int tl_tls_context_load_verify_mem(tl_tls_context_t *c, const void *pem,
                                   size_t len) {
    (void)c, (void)pem, (void)len;
    return TL_ENOTSUP;
}
int tl_tls_context_insecure_skip_verify(tl_tls_context_t *c) {
    (void)c;
    return TL_ENOTSUP;
}
int tl_tls_context_insecure_skip_hostname_check(tl_tls_context_t *c) {
    (void)c;
    return TL_ENOTSUP;
}
int tl_tls_context_set_client_cert(tl_tls_context_t *c, int mode) {
    (void)c, (void)mode;
    return TL_ENOTSUP;
}
int tl_tls_context_set_versions(tl_tls_context_t *c, int min_version,
                                int max_version) {
    (void)c, (void)min_version, (void)max_version;
    return TL_ENOTSUP;
}
int tl_tls_context_set_alpn(tl_tls_context_t *c, const char *const *protocols,
                            size_t n) {
    (void)c, (void)protocols, (void)n;
    return TL_ENOTSUP;
}
int tl_tls_context_add_sni(tl_tls_context_t *c, const char *name,
                           tl_tls_context_t *for_name) {
    (void)c, (void)name, (void)for_name;
    return TL_ENOTSUP;
}
int tl_tls_context_set_session_cache(tl_tls_context_t *c, int on) {
    (void)c, (void)on;
    return TL_ENOTSUP;
}

int tl_start_tls(tl_transport_t *t, const tl_protocol_t *proto,
                 void *proto_ctx, const tl_tls_options_t *opts,
                 tl_future_t **out) {
    (void)t, (void)proto, (void)proto_ctx, (void)opts;
    if (out)
        *out = NULL;
    return TL_ENOTSUP;
}
int tl_tls_get_version(const tl_transport_t *t, int *version) {
    (void)t, (void)version;
    return TL_ENOTSUP;
}
int tl_tls_get_cipher(const tl_transport_t *t, const char **name) {
    (void)t, (void)name;
    return TL_ENOTSUP;
}
int tl_tls_get_alpn(const tl_transport_t *t, const char **proto, size_t *len) {
    (void)t, (void)proto, (void)len;
    return TL_ENOTSUP;
}
int tl_tls_get_server_name(const tl_transport_t *t, const char **name) {
    (void)t, (void)name;
    return TL_ENOTSUP;
}
int tl_tls_session_reused(const tl_transport_t *t) {
    (void)t;
    return TL_ENOTSUP;
}
int tl_tls_get_peer_certificate(const tl_transport_t *t, void *buf, size_t cap,
                                size_t *len) {
    (void)t, (void)buf, (void)cap, (void)len;
    return TL_ENOTSUP;
}

int tl__tls_wrap(tl_transport_t *lower, const tl_tls_options_t *opts,
                 const char *default_hostname, const tl_protocol_t *proto,
                 void *proto_ctx, tl__tls_done_fn done, void *arg,
                 tl__tls_t **h) {
    (void)lower, (void)opts, (void)default_hostname, (void)proto;
    (void)proto_ctx, (void)done, (void)arg;
    if (h)
        *h = NULL;
    return TL_ENOTSUP;
}
void tl__tls_cancel(tl__tls_t *h) { (void)h; }
int tl__tls_is_tls(const tl_transport_t *t) {
    (void)t;
    return 0;
}
const char *tl__tls_error_message(const tl__tls_t *h) {
    (void)h;
    return NULL;
}
int tl__tls_context_freeze(tl_tls_context_t *c) {
    (void)c;
    return TL_ENOTSUP;
}
