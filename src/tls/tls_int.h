/*
 * src/tls's internal contracts. The first part is what the rest of tulip
 * uses (connect.c, server.c, stream.c wrap a transport with
 * tl__tls_wrap); it names no BoringSSL type, and builds without BoringSSL
 * get it from tls_none.c (TL_ENOTSUP). The second part, between the
 * context (context.c) and the engine (tls.c), is seen only by the files of
 * src/tls that define TL_TLS_INTERNAL: only they include BoringSSL.
 */
#ifndef TL_TLS_INT_H
#define TL_TLS_INT_H

#include "tulip/tls.h"

/* ---- for the transport layer (connect.c, server.c, stream.c) ---------- */

typedef struct tl__tls tl__tls_t;

/* The handshake ended: error 0 and the TLS transport (its connection_made
 * is already scheduled, so it runs before anything the callee schedules),
 * or an error and NULL (the wrapped transport was aborted). */
typedef void (*tl__tls_done_fn)(void *arg, int error, tl_transport_t *tls);

/* Put TLS over `lower`, a connected stream transport of the loop (its
 * connection_made may or may not have run), for the application protocol
 * proto/proto_ctx, and start the handshake. opts->context's side says
 * client or server. default_hostname: the client's server_hostname when
 * opts->server_hostname is NULL (create_connection's host; NULL for none).
 *
 * 0: lower now belongs to the engine (its protocol is replaced; data it
 * holds undelivered goes to the handshake), and done(arg, ...) will be
 * called exactly once, on the loop's thread, never from inside this call:
 * at the handshake's end, on its failure or timeout, or with TL_ECLOSED
 * when the loop closes first (inside tl_loop_close). *h (when h is not
 * NULL) is a handle for tl__tls_cancel, valid until done is called.
 * An error (TL_EINVAL: bad options, a client with no hostname to check;
 * TL_ENOMEM; TL_ENOTSUP without BoringSSL): lower is untouched (the caller
 * still owns it and aborts it) and done will not be called. */
int tl__tls_wrap(tl_transport_t *lower, const tl_tls_options_t *opts,
                 const char *default_hostname, const tl_protocol_t *proto,
                 void *proto_ctx, tl__tls_done_fn done, void *arg,
                 tl__tls_t **h);

/* Give up a handshake in progress (a cancelled create_connection or
 * start_tls): the wrapped transport is aborted, and done is NOT called.
 * Only before done was called. */
void tl__tls_cancel(tl__tls_t *h);

/* 1 when t is a TLS transport. */
int tl__tls_is_tls(const tl_transport_t *t);

/* BoringSSL's reason for a failed handshake (e.g. "certificate has
 * expired"), for tl_future_error_message; NULL when there is none. Valid
 * only inside done, for the h that tl__tls_wrap gave. */
const char *tl__tls_error_message(const tl__tls_t *h);

/* Freeze context c as its first connection would (setters: TL_ESTATE
 * afterwards), without making one; for tests. TL_EINVAL for NULL. */
int tl__tls_context_freeze(tl_tls_context_t *c);

#ifdef TL_TLS_INTERNAL
/* ---- between context.c and tls.c (BoringSSL types) -------------------- */
#include <openssl/ssl.h>

/* A new SSL for one connection of context c, set for c's side: a client
 * sends SNI for server_hostname (unless it is an IP address or NULL) and
 * verifies the chain and the name as c says; session_key ("host:port", or
 * NULL: no resumption) picks the session to resume and where new tickets
 * are kept. The first call loads the system CA bundle when a client
 * verifies and load_verify was never called, and freezes c (setters:
 * TL_ESTATE afterwards). TL_EINVAL: a client that checks hostnames without
 * server_hostname. TL_ENOMEM. The caller frees it with SSL_free. */
int tl__tls_context_new_ssl(tl_tls_context_t *c, const char *server_hostname,
                            const char *session_key, SSL **out);

/* The TL_E code for a failed SSL call (ret and SSL_get_error's answer
 * err), from the error queue and the verify result: TL_ECERTVERIFY,
 * TL_ECERTEXPIRED, TL_ECERTHOSTNAME, TL_ETLS, or the errno of a syscall
 * error. Writes BoringSSL's reason into msg[0..cap) (NUL-terminated) when
 * msg is not NULL. Clears the thread's error queue. */
int tl__tls_error(const SSL *ssl, int ret, int err, char *msg, size_t cap);
#endif

#endif /* TL_TLS_INT_H */
