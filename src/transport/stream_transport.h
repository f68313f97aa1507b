/*
 * Stream transports' internal entry points for the files that make them
 * (pipe.c adopts a descriptor with the transport's handler, so it needs
 * the transport before the socket exists).
 */
#ifndef TL_STREAM_TRANSPORT_H
#define TL_STREAM_TRANSPORT_H

#include "transport_int.h"

enum {
    TL__STREAM_TCP,        /* TCP_NODELAY set; write_eof is a FIN */
    TL__STREAM_UNIX,       /* a Unix stream socket */
    TL__STREAM_PIPE_READ,  /* reading only */
    TL__STREAM_PIPE_WRITE  /* writing only; write_eof closes */
};

/* A stream transport with no socket yet (base set up, nothing scheduled).
 * TL_ENOMEM, TL_EINVAL (proto). */
int tl__stream_alloc(tl_loop_t *loop, const tl_netstack_ops_t *ops,
                     int flavour, const tl_protocol_t *proto, void *ctx,
                     tl_transport_t **out);
/* The handler (with the transport as ctx) its socket must report to. */
const tl_ns_handler_t *tl__stream_handler(void);
/* Give t its socket and schedule connection_made. On failure (TL_ENOMEM)
 * the socket is closed and t freed, with no callback. */
int tl__stream_attach(tl_transport_t *t, tl_ns_sock_t *sock);
/* Free a transport that never got a socket (no callback runs). */
void tl__stream_free_unattached(tl_transport_t *t);

#endif
