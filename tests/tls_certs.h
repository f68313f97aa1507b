/*
 * Test certificates for the TLS suites, made at test time with openssl(1)
 * (never checked in) in a temporary folder removed at exit.
 */
#ifndef TL_TLS_CERTS_H
#define TL_TLS_CERTS_H

#include <stddef.h>

typedef struct tl_test_certs {
    const char *dir;             /* the temp folder holding them */
    const char *ca_cert;         /* CA "tulip test CA" (PEM file paths) */
    const char *server_cert, *server_key;   /* ECDSA P-256 leaf by the CA:
                                    SAN DNS:localhost, IP:127.0.0.1, IP:::1 */
    const char *other_cert, *other_key;     /* leaf by the CA for "other.test"
                                    and "*.wild.test" (SNI tests) */
    const char *client_cert, *client_key;   /* client leaf by the CA (CN tulip client) */
    const char *expired_cert, *expired_key; /* leaf by the CA for localhost,
                                    valid only in the past */
    const char *self_cert, *self_key;       /* self-signed, localhost */
    const char *other_ca_cert;              /* a second CA that signed nothing here */
    const char *rsa_cert, *rsa_key;         /* RSA 2048 leaf by the CA, localhost */
} tl_test_certs_t;

/* Made once per test run with openssl(1) (never checked in), removed at
 * exit. NULL if openssl fails (the calling test then fails with a clear
 * message; the reason is printed to stderr once). Thread-safe. */
const tl_test_certs_t *tl_test_certs(void);

/* Read a whole file into a malloc'd buffer (for the _mem variants; the
 * caller free()s *data, which is also NUL-terminated). 0 or -errno. */
int tl_test_read_file(const char *path, char **data, size_t *len);


/* A build without TLS (TLS=0): every TLS call is TL_ENOTSUP. A TLS test
 * starts with NEED_TLS(): there it checks that much and stops. */
#define NEED_TLS()                                                            \
    do {                                                                      \
        if (!tl_tls_available()) {                                            \
            tl_tls_context_t *nc_ = NULL;                                     \
            CU_ASSERT_EQUAL(tl_tls_context_new(TL_TLS_CLIENT, &nc_),          \
                            TL_ENOTSUP);                                      \
            return;                                                           \
        }                                                                     \
    } while (0)

#endif
