/*
 * What every transport shares (struct tl_transport and its base
 * operations in transport.c), and the per-kind operations table that the
 * public tl_transport_* functions dispatch through. Kinds: stream
 * connections (TCP, Unix, pipes: stream_transport.c), datagram endpoints
 * (udp.c), later TLS (src/tls) over another transport.
 */
#ifndef TL_TRANSPORT_INT_H
#define TL_TRANSPORT_INT_H

#include "netstack_int.h"
#include "tulip/transport.h"

/* Per-kind operations. A NULL member means the kind cannot (the public
 * function returns TL_ENOTSUP). The public functions check the arguments,
 * the thread and the closing state before calling these. */
typedef struct tl__transport_vt {
    const char *kind; /* "tcp", "unix", "pipe", "udp", "tls" */
    /* Write the chain; take != NULL: the single buffer iov[0] is handed
     * over and freed with take_free(take) when sent (or on error). */
    int (*write)(tl_transport_t *t, const tl_iovec_t *iov, size_t n,
                 void *take, tl_destructor_t take_free);
    int (*write_eof)(tl_transport_t *t);
    int (*can_write_eof)(const tl_transport_t *t);
    int (*close)(tl_transport_t *t);
    int (*abort)(tl_transport_t *t);
    int (*set_reading)(tl_transport_t *t, int on);
    int (*getaddr)(const tl_transport_t *t, int peer, tl_sockaddr_t *out);
    int (*fileno)(const tl_transport_t *t, tl_fd_t *out);
    int (*sendto)(tl_transport_t *t, const void *data, size_t len,
                  const tl_sockaddr_t *to);
    int (*sendfile)(tl_transport_t *t, tl_fd_t fd, int64_t offset,
                    size_t count, tl_future_t **out);
    /* The loop is closing: drop everything now, no callbacks scheduled
     * (the base then runs connection_lost(TL_ECLOSED)). Only called for a
     * transport the kind has not yet reported lost. */
    void (*teardown)(tl_transport_t *t);
    /* Free the kind's part; the base frees t itself afterwards. Runs at
     * the last reference, possibly after the loop closed: it must not
     * touch the netstack (the kind released its socket before it called
     * tl__transport_lost, or in teardown). */
    void (*destroy)(tl_transport_t *t);
    /* Optional: connection_made has just run (the kind starts reading
     * here, so no data_received can come first). Not called when the
     * transport is already closing. */
    void (*made)(tl_transport_t *t);
} tl__transport_vt_t;

struct tl_transport {
    const tl__transport_vt_t *vt;
    /* Optional, set by the kind after tl__transport_init (NULL: none): the
     * fast path of tl_transport_write, one buffer of len > 0, no take.
     * Called only once the public checks passed (the thread, not closing,
     * no write_eof); same contract as vt->write(t, {data, len}, 1, NULL,
     * NULL). Not a vt member, so the write costs one load less. */
    int (*write1)(tl_transport_t *t, const void *data, size_t len);
    tl_loop_t *loop;
    tl_protocol_t proto; /* a full-size copy of the caller's table */
    void *proto_ctx;
    int refs;          /* the loop's one (until lost) + the users' */
    unsigned closing : 1;     /* close or abort called, or lost */
    unsigned lost : 1;        /* connection_lost scheduled or ran */
    unsigned made : 1;        /* connection_made ran */
    unsigned reading : 1;     /* the user has not paused reading */
    unsigned write_paused : 1; /* pause_writing was called, not resumed */
    unsigned eof_written : 1; /* write_eof was called (writes: ESHUTDOWN) */
    unsigned made_scheduled : 1; /* connection_made is queued */
    unsigned lost_ran : 1;    /* connection_lost ran */
    unsigned loop_ref : 1;    /* the loop's reference is among refs: until
                                 connection_lost returned */
    int lost_error;    /* what connection_lost gets */
    size_t high, low;  /* water marks */
    size_t buffered;   /* bytes written, not yet handed to the network */
    tl_transport_t *prev, *next; /* the loop's live transports */
    void *list;        /* the list they are on (transport.c's) */
    void *server;      /* the tl_server_t that accepted it, or NULL */
    tl_transport_t *sprev, *snext; /* that server's connections */
    const tl_protocol_t *proto_user; /* the caller's table (get_protocol) */
};

/* Set up the base of a transport the kind allocated (zeroed, size of its
 * own struct): copies proto (checking its size: TL_EINVAL), registers t
 * with the loop, default water marks, reading on, one reference (the
 * loop's). */
int tl__transport_init(tl_transport_t *t, const tl__transport_vt_t *vt,
                       tl_loop_t *loop, const tl_protocol_t *proto,
                       void *proto_ctx);
/* Undo tl__transport_init for a transport that failed before
 * connection_made was scheduled (no callback runs); the kind then frees
 * its part and t. */
void tl__transport_discard(tl_transport_t *t);
/* Schedule connection_made (the first callback). TL_ENOMEM. */
int tl__transport_schedule_made(tl_transport_t *t);
/* The kind changed t->buffered: call pause_writing / resume_writing as
 * the water marks say. */
void tl__transport_buffer_changed(tl_transport_t *t);
/* The connection is over (error 0 for a clean end): mark it closing and
 * lost, and schedule connection_lost(error) (after connection_made if that
 * has not run yet); after it ran the loop's reference is dropped (and
 * vt->destroy + free follow at the last reference). Idempotent. */
void tl__transport_lost(tl_transport_t *t, int error);
/* Hand received bytes to the protocol now: data_received, or for a
 * buffered protocol get_buffer/buffer_updated until all is copied. 0, or
 * the protocol's error (a failed get_buffer, TL_ENOBUFS for an empty
 * buffer): the kind then ends the connection with that error. Stops early
 * (0) when the protocol closed or aborted the transport meanwhile. */
int tl__transport_data(tl_transport_t *t, const void *data, size_t len);

/* The public functions' common check: 0, TL_EINVAL (NULL),
 * TL_EWRONGTHREAD. */
int tl__transport_check(const tl_transport_t *t);

/* Something of the transport layer that holds netstack sockets and is not
 * a transport (a server's listeners): close(c) runs when the loop closes,
 * before the transports are aborted and the stacks destroyed; it must
 * release the sockets (and may free c). */
typedef struct tl__closer tl__closer_t;
struct tl__closer {
    tl__closer_t *prev, *next;
    void *list; /* transport.c's */
    void (*close)(tl__closer_t *c);
};
/* Register / unregister c with the loop's transport layer. TL_ENOMEM and
 * the loop checks' errors. Removing an unregistered closer is a no-op. */
int tl__transport_add_closer(tl_loop_t *loop, tl__closer_t *c);
void tl__transport_remove_closer(tl_loop_t *loop, tl__closer_t *c);

/* server.c: a connection of the server (t->server) is gone (its
 * connection_lost ran). */
void tl__server_conn_lost(tl_transport_t *t);

/* stream_transport.c: a stream connection (TCP, Unix) over sock, which it
 * now owns (closed on failure too). kind: "tcp" (TCP_NODELAY set) or
 * "unix". connection_made is scheduled; reading starts after it. */
int tl__stream_transport_new(tl_loop_t *loop, const tl_netstack_ops_t *ops,
                             tl_ns_sock_t *sock, const tl_protocol_t *proto,
                             void *ctx, const char *kind,
                             tl_transport_t **out);

#endif
