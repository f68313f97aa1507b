/*
 * The copy of a caller's TLS options (tl_tls_options_t) that connect.c and
 * server.c keep, since their callers' options are read during the call
 * only: the context referenced, a client's server_hostname duplicated.
 */
#include <stddef.h>
#include <string.h>

#include "../core/alloc.h"
#include "server_int.h"

int tl__tls_options_copy(const tl_tls_options_t *in, int side,
                         tl_tls_options_t *out) {
    memset(out, 0, sizeof(*out));
    size_t n = in->size ? in->size : sizeof(*out);
    if (n < offsetof(tl_tls_options_t, context) + sizeof(in->context))
        return TL_EINVAL;
    memcpy(out, in, n < sizeof(*out) ? n : sizeof(*out));
    out->size = sizeof(*out);
    tl_tls_context_t *c = out->context;
    out->context = NULL;
    out->server_hostname = NULL;
    if (c == NULL)
        return TL_EINVAL;
    int rc = tl_tls_context_side(c);
    if (rc < 0)
        return rc; /* TL_ENOTSUP: no TLS in this build */
    if (rc != side)
        return TL_EINVAL;
    const char *name = n >= offsetof(tl_tls_options_t, server_hostname) +
                                    sizeof(in->server_hostname)
                           ? in->server_hostname
                           : NULL;
    if (side == TL_TLS_CLIENT && name && (name = tl__strdup(name)) == NULL)
        return TL_ENOMEM;
    if ((rc = tl_tls_context_ref(c)) != 0) {
        tl__free((char *)name);
        return rc;
    }
    out->context = c;
    out->server_hostname = side == TL_TLS_CLIENT ? name : NULL;
    return 0;
}

void tl__tls_options_release(tl_tls_options_t *o) {
    tl__free((char *)o->server_hostname);
    if (o->context)
        tl_tls_context_unref(o->context);
    memset(o, 0, sizeof(*o));
}
