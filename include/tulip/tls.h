/*
 * tulip/tls.h - TLS over any stream transport (asyncio's sslproto), with
 * BoringSSL underneath (only src/tls sees it; nothing here names it).
 *
 * A tl_tls_context_t is asyncio's SSLContext: which side it is for, the
 * certificate chain and key it presents, whom it trusts, ALPN, versions.
 * It is shared by many connections, on many loops and threads at once
 * (reference counted; configure it before its first connection: a
 * setter called after that returns TL_ESTATE).
 *
 * A TLS transport wraps another stream transport (TCP, Unix, a user-space
 * netstack's): the wrapped one's protocol becomes tulip's TLS engine, and
 * the application's protocol sees a tl_transport_t of kind "tls" with the
 * same methods and callback order as any stream transport (transport.h).
 * The application's connection_made runs only once the handshake is done;
 * a handshake that fails or times out never reaches it (create_connection's
 * future fails with the error; a server drops the connection and goes on).
 *
 * TLS connections come from:
 *   tl_create_connection / tl_create_server (and the stream functions built
 *   on them): set the options' `tls` member (transport.h);
 *   tl_start_tls: upgrade a connected transport (STARTTLS).
 *
 * Errors of a TLS connection (handshake future, connection_lost):
 *   TL_ECERTVERIFY   the peer's chain does not verify (unknown CA,
 *                    self-signed, bad signature, not yet valid...)
 *   TL_ECERTEXPIRED  the peer's certificate (or one of its chain) expired
 *   TL_ECERTHOSTNAME the certificate is not for server_hostname
 *   TL_ETLS          a protocol error: garbage instead of TLS, a bad
 *                    record, a fatal alert from the peer (e.g. it
 *                    refused our certificate), no common version, cipher or
 *                    ALPN protocol
 *   TL_ETLSEOF       the peer closed the connection without close_notify:
 *                    during the handshake, or in the middle of a record
 *                    (a truncated record), or between records (its data
 *                    may be truncated); a clean close_notify is
 *                    eof_received and connection_lost(0) as for TCP
 *   TL_ETIMEDOUT     the handshake (or the shutdown) took longer than its
 *                    timeout
 *   and the wrapped transport's own errors (TL_ECONNRESET...).
 * tl_future_error_message of a failed handshake future carries BoringSSL's
 * reason (e.g. "certificate has expired").
 *
 * Differences from a TCP transport: can_write_eof is 0 (write_eof:
 * TL_ENOTSUP, as in asyncio); eof_received's return value is ignored (a
 * close_notify ends the connection: tulip answers with its own and
 * closes); close sends close_notify after the buffered data, then closes
 * the wrapped transport (waiting at most shutdown_timeout for it to
 * flush). get_peername/get_sockname/get_fileno answer for the wrapped
 * transport.
 *
 * Flow control both ways: the write buffer size of a TLS transport counts
 * the plaintext not yet encrypted plus the wrapped transport's ciphertext
 * buffer, and pause_writing/resume_writing follow the TLS transport's water
 * marks; pausing reading stops decrypting and pauses the wrapped transport.
 * A write is encrypted into records (16 KiB) straight from the caller's
 * buffer and the records go to the wrapped transport's write, which sends
 * at once what the network takes; plaintext is copied only while the
 * handshake runs or the wrapped transport is paused.
 *
 * All connection functions: call on the loop's thread (TL_EWRONGTHREAD);
 * NULL arguments get TL_EINVAL. Context functions may be called from any
 * thread. Built without BoringSSL, every function returns TL_ENOTSUP.
 */
#ifndef TULIP_TLS_H
#define TULIP_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "future.h"
#include "loop.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tl_tls_context tl_tls_context_t;

enum { TL_TLS_CLIENT = 1, TL_TLS_SERVER = 2 };

/* Protocol versions, for the minimum / maximum. */
enum { TL_TLS_VERSION_1_2 = 0x0303, TL_TLS_VERSION_1_3 = 0x0304 };

/* Client certificates, on a server context. */
enum {
    TL_TLS_CLIENT_CERT_NONE = 0,     /* do not ask (the default) */
    TL_TLS_CLIENT_CERT_OPTIONAL = 1, /* ask; verify one if sent */
    TL_TLS_CLIENT_CERT_REQUIRED = 2  /* ask; fail without one */
};

/* 1 when this build has TLS (BoringSSL), else 0. */
TL_API int tl_tls_available(void);

/* ---- contexts --------------------------------------------------------- */

/* A new context for side TL_TLS_CLIENT or TL_TLS_SERVER (TL_EINVAL
 * otherwise), with asyncio's defaults (ssl.create_default_context):
 * TLS 1.2 minimum; a client verifies the server's chain and its hostname
 * against the system's CA bundle (loaded at the first connection unless
 * load_verify was called: $SSL_CERT_FILE, else Debian's
 * /etc/ssl/certs/ca-certificates.crt and the usual other places) and
 * resumes sessions (per server_hostname:port); a server asks no client
 * certificate and issues session tickets. *out is the caller's reference
 * (tl_tls_context_unref). */
TL_API int tl_tls_context_new(int side, tl_tls_context_t **out);
TL_API int tl_tls_context_ref(tl_tls_context_t *c);
/* Drop a reference; connections hold their own, so a context can be
 * dropped while its connections run. */
TL_API void tl_tls_context_unref(tl_tls_context_t *c);
TL_API int tl_tls_context_side(const tl_tls_context_t *c);

/* The certificate chain (PEM: the leaf first, then intermediates) and its
 * private key (PEM: RSA, ECDSA or Ed25519; unencrypted), from files or
 * memory. A server needs one; on a client it is the client certificate.
 * TL_ENOENT / TL_EACCES for a file, TL_EINVAL for PEM that does not parse
 * or a key that does not match the certificate. */
TL_API int tl_tls_context_use_certificate_file(tl_tls_context_t *c,
                                               const char *chain_path,
                                               const char *key_path);
TL_API int tl_tls_context_use_certificate_mem(tl_tls_context_t *c,
                                              const void *chain_pem,
                                              size_t chain_len,
                                              const void *key_pem,
                                              size_t key_len);
/* Trust the CA certificates (PEM, one or more) in the file or memory,
 * instead of the system bundle; may be called several times (adds).
 * Clients: to verify servers; servers: to verify client certificates. */
TL_API int tl_tls_context_load_verify_file(tl_tls_context_t *c,
                                           const char *path);
TL_API int tl_tls_context_load_verify_mem(tl_tls_context_t *c,
                                          const void *pem, size_t len);

/* The explicit opt-outs, named so they stand out in a review. The first
 * makes a client accept any certificate (no chain, no hostname check:
 * asyncio's CERT_NONE); the second keeps the chain check but not the
 * hostname's (check_hostname = False). There is no way back. */
TL_API int tl_tls_context_insecure_skip_verify(tl_tls_context_t *c);
TL_API int tl_tls_context_insecure_skip_hostname_check(tl_tls_context_t *c);

/* Server: whether to ask clients for a certificate (TL_TLS_CLIENT_CERT_*),
 * verified against load_verify's CAs. */
TL_API int tl_tls_context_set_client_cert(tl_tls_context_t *c, int mode);

/* The lowest and highest versions to speak (TL_TLS_VERSION_*; 0 for the
 * library's own bounds). TL_EINVAL for an unknown version or min > max. */
TL_API int tl_tls_context_set_versions(tl_tls_context_t *c, int min_version,
                                       int max_version);

/* ALPN, protocols in order of preference ("h2", "http/1.1"), each 1..255
 * bytes. A client offers them; a server picks the first of its own list
 * the client offered, and fails the handshake (TL_ETLS) when a client
 * offered only others. A client that offered none, or a server that has
 * none: no ALPN. */
TL_API int tl_tls_context_set_alpn(tl_tls_context_t *c,
                                   const char *const *protocols, size_t n);

/* Server, SNI: use `for_name`'s certificate (a server context with one)
 * when the client asks for `name` (exact, case-insensitive, or a
 * "*.example.com" pattern matching one label). Names without an entry get
 * c's own certificate. c holds a reference to for_name. */
TL_API int tl_tls_context_add_sni(tl_tls_context_t *c, const char *name,
                                  tl_tls_context_t *for_name);

/* Client: session resumption on (the default) or off (TL_OPT_ON /
 * TL_OPT_OFF). */
TL_API int tl_tls_context_set_session_cache(tl_tls_context_t *c, int on);

/* ---- connections ------------------------------------------------------ */

/* TLS for one connection: the `tls` member of tl_connect_options_t and
 * tl_server_options_t, and tl_start_tls's argument. */
typedef struct tl_tls_options {
    size_t size;                /* sizeof(tl_tls_options_t), or 0 */
    tl_tls_context_t *context;  /* required; its side says client/server */
    /* Client: the name sent as SNI and checked against the certificate.
     * NULL: create_connection's host (as asyncio; an IP address is checked
     * as one and sent without SNI). Required for tl_start_tls and Unix
     * sockets unless the context skips the hostname check. */
    const char *server_hostname;
    int64_t handshake_timeout_ns; /* 0: 60 s (asyncio); < 0: none */
    int64_t shutdown_timeout_ns;  /* 0: 30 s (asyncio); < 0: none */
} tl_tls_options_t;

/* asyncio's loop.start_tls: upgrade the connected stream transport t to
 * TLS and complete *out, once the handshake is done, with the new TLS
 * transport (result: tl_transport_t *, borrowed as for create_connection)
 * whose protocol is proto/proto_ctx (its connection_made runs first). From
 * the call on, t belongs to the TLS transport: its protocol is replaced,
 * and the caller must not use it again (except tl_transport_unref of a
 * reference it held). Data t had already received but not delivered is
 * the first of the handshake. A failed or cancelled handshake aborts t.
 * TL_EINVAL (t is not a stream transport, or a client without a
 * server_hostname), TL_ECLOSED (t is closing), TL_ENOTSUP (no TLS). */
TL_API int tl_start_tls(tl_transport_t *t, const tl_protocol_t *proto,
                        void *proto_ctx, const tl_tls_options_t *opts,
                        tl_future_t **out);

/* get_extra_info of a TLS transport ("tls" kind; others: TL_ENOTSUP):
 * the version (TL_TLS_VERSION_*), the cipher suite's standard name
 * ("TLS_AES_128_GCM_SHA256"; static storage), the ALPN protocol chosen
 * (*proto NULL and *len 0 when none; valid while t is), the server name a
 * client asked for (server side; NULL when none), whether the session was
 * resumed, and the peer's certificate: DER bytes copied into buf[0..cap)
 * with *len its full size (TL_ENOBUFS when cap is too small, with *len
 * set; TL_ENOENT when the peer sent none). */
TL_API int tl_tls_get_version(const tl_transport_t *t, int *version);
TL_API int tl_tls_get_cipher(const tl_transport_t *t, const char **name);
TL_API int tl_tls_get_alpn(const tl_transport_t *t, const char **proto,
                           size_t *len);
TL_API int tl_tls_get_server_name(const tl_transport_t *t, const char **name);
TL_API int tl_tls_session_reused(const tl_transport_t *t);
TL_API int tl_tls_get_peer_certificate(const tl_transport_t *t, void *buf,
                                       size_t cap, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_TLS_H */
