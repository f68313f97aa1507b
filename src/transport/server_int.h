/*
 * What server.c needs and shares in the transport layer: a helper of
 * pipe.c (the one file of the transport base that may make socket calls
 * of its own, kernel only), and the copy of a caller's TLS options that
 * connect.c and server.c keep (tls_options.c: their callers' options are
 * read during the call only).
 */
#ifndef TL_SERVER_INT_H
#define TL_SERVER_INT_H

#include "tulip/tls.h"

/* 1 when a server accepts connections at the Unix socket path (a connect
 * succeeds or would block), 0 when the file is stale. */
int tl__unix_path_in_use(const char *path);

/* Copy *in (only in->size bytes are read; 0 means the current size) into
 * *out for a connection of `side` (TL_TLS_CLIENT / TL_TLS_SERVER): the
 * context is referenced, a client's server_hostname duplicated (a
 * server's is ignored: NULL). TL_EINVAL (no context, a size too small to
 * hold it, a context of the other side), TL_ENOMEM, TL_ENOTSUP (a build
 * without TLS). On error nothing is held. */
int tl__tls_options_copy(const tl_tls_options_t *in, int side,
                         tl_tls_options_t *out);
/* Release what a successful copy holds (idempotent: *o is zeroed). */
void tl__tls_options_release(tl_tls_options_t *o);

#endif
