/*
 * connect.c's inner entry point: connect to a list of known addresses
 * (what tl_create_connection does once the name is resolved). Shared with
 * the tests, which drive Happy Eyeballs over address lists that no
 * resolver of this machine would give (two families, unreachable ones).
 */
#ifndef TL_CONNECT_INT_H
#define TL_CONNECT_INT_H

#include "tulip/transport.h"

/* Connect to addrs[0..n) (copied) as tl_create_connection does after
 * resolving: filtered by opts->family and local_addr's family, reordered
 * by opts->interleave, tried with Happy Eyeballs as opts say. kind is
 * "tcp" or "unix". Same errors and outcome as tl_create_connection; n 0:
 * TL_EINVAL. */
int tl__connect_addrs(tl_loop_t *loop, const tl_protocol_t *proto,
                      void *proto_ctx, const tl_sockaddr_t *addrs, size_t n,
                      const tl_connect_options_t *opts, const char *kind,
                      tl_future_t **out);

#endif
