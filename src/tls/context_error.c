/*
 * tl__tls_error: what a failed SSL call means as a TL_E* code, with
 * BoringSSL's reason for tl_future_error_message.
 *
 * A verification failure is told by the error queue (the handshake failed
 * with CERTIFICATE_VERIFY_FAILED) and the SSL's verify result says which:
 * only then is the result trusted, since a client that skips verification
 * keeps a failed result on a connection that goes on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls_int.h"

static int verify_code(long v) {
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED: /* the leaf's or any in its chain */
        return TL_ECERTEXPIRED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
    case X509_V_ERR_EMAIL_MISMATCH:
        return TL_ECERTHOSTNAME;
    default:
        return TL_ECERTVERIFY;
    }
}

static void put(char *msg, size_t cap, const char *s) {
    if (msg && cap)
        snprintf(msg, cap, "%s", s);
}

int tl__tls_error(const SSL *ssl, int ret, int err, char *msg, size_t cap) {
    int saved_errno = errno;
    if (msg && cap)
        msg[0] = '\0';
    /* The first error is the cause; a verification failure anywhere in the
     * queue wins. */
    uint32_t first = 0, e;
    int verify_failed = 0;
    while ((e = ERR_get_error()) != 0) {
        if (first == 0)
            first = e;
        if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
            ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
            verify_failed = 1;
    }
    int rc;
    if (err == SSL_ERROR_SSL || (err == SSL_ERROR_SYSCALL && first != 0)) {
        long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        if (verify_failed && v != X509_V_OK) {
            rc = verify_code(v);
            put(msg, cap, X509_verify_cert_error_string(v));
        } else {
            rc = TL_ETLS;
            if (first != 0 && msg && cap)
                ERR_error_string_n(first, msg, cap);
            else
                put(msg, cap, "TLS protocol error");
        }
    } else if (err == SSL_ERROR_SYSCALL) {
        /* The transport under the SSL ended (ret 0) or failed. */
        if (ret != 0 && saved_errno != 0) {
            rc = tl_translate_sys_error(saved_errno);
            put(msg, cap, strerror(saved_errno));
        } else {
            rc = TL_ETLSEOF;
            put(msg, cap, "unexpected EOF (no close_notify)");
        }
    } else if (err == SSL_ERROR_ZERO_RETURN) {
        rc = TL_EOF;
        put(msg, cap, "close_notify received");
    } else if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        rc = TL_EAGAIN;
        put(msg, cap, "TLS wants more I/O");
    } else {
        rc = TL_ETLS;
        put(msg, cap, "TLS error");
    }
    ERR_clear_error();
    return rc;
}
