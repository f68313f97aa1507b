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
     * (tl__transport_lost is then called by the base with TL_ECLOSED). */
    void (*teardown)(tl_transport_t *t);
    /* Free the kind's part; the base frees t itself afterwards. */
    void (*destroy)(tl_transport_t *t);
} tl__transport_vt_t;

struct tl_transport {
    const tl__transport_vt_t *vt;
    tl_loop_t *loop;
    tl_protocol_t proto; /* a full-size copy of the caller's table */
    void *proto_ctx;
    int refs;          /* the loop's one (until lost) + the users' */
    unsigned closing : 1;     /* close or abort called, or lost */
    unsigned lost : 1;        /* connection_lost scheduled or ran */
    unsigned made : 1;        /* connection_made ran */
    unsigned reading : 1;     /* the user has not paused reading */
    unsigned write_paused : 1; /* pause_writing was called, not resumed */
    size_t high, low;  /* water marks */
    size_t buffered;   /* bytes written, not yet handed to the network */
    tl_transport_t *prev, *next; /* the loop's live transports */
    void *server;      /* the tl_server_t that accepted it, or NULL */
};

/* Set up the base of a transport the kind allocated (zeroed, size of its
 * own struct): copies proto (checking its size: TL_EINVAL), registers t
 * with the loop, default water marks, reading on, one reference (the
 * loop's). */
int tl__transport_init(tl_transport_t *t, const tl__transport_vt_t *vt,
                       tl_loop_t *loop, const tl_protocol_t *proto,
                       void *proto_ctx);
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
/* Call a protocol callback now (for the kinds): no-op when NULL. */
void tl__transport_data(tl_transport_t *t, const void *data, size_t len);

#endif
