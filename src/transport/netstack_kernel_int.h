/*
 * The kernel netstack's insides, shared by its files:
 *   netstack_kernel.c        state, buffer pool, socket lifetime, reading,
 *                            adopt, addresses and options, the ops table
 *   netstack_kernel_send.c   try_send, the send queue, sendfile, shutdown
 *   netstack_kernel_open.c   listen/accept (with the EMFILE reserve),
 *                            connect, datagram sockets
 *
 * Readiness comes from the loop's level-triggered fd watchers: a socket
 * watches readable while reading (or accepting) is started and it can
 * still produce something, and writable only while something is queued
 * (or a connect is in flight), so the echo hot path (try_send takes all)
 * never touches the writer watch.
 *
 * Lifetime: a socket is freed when it is closed, no buffer of it is lent
 * out and no callback of it is running (busy), so a consumer may close it
 * from inside any callback and release buffers after close.
 */
#ifndef TL_NETSTACK_KERNEL_INT_H
#define TL_NETSTACK_KERNEL_INT_H

#include "tulip/netstack.h"

/* One read (or one datagram) at most; the buffers of the pool. */
#define TL__KBUF_SIZE (64 * 1024)
/* Free buffers a stack keeps for reuse (the rest go back to malloc). */
#define TL__KBUF_KEEP 16

typedef struct tl__kstate tl__kstate_t;

/* A pooled receive buffer: the lent tl_ns_buf_t lives in it, so the
 * pointer the consumer holds stays valid until release. */
typedef struct tl__kbuf {
    tl_ns_buf_t nb;
    struct tl__kbuf *next; /* the pool's free list */
    tl_sockaddr_t from;    /* datagrams: the sender */
    unsigned char data[TL__KBUF_SIZE];
} tl__kbuf_t;

struct tl__kstate {
    tl_loop_t *loop;
    tl_ns_sock_t *socks; /* every socket not yet freed (closed ones too) */
    tl__kbuf_t *free;
    unsigned nfree;
    int reserve; /* the spare descriptor for EMFILE, -1 when none */
};

struct tl_ns_sock {
    tl__kstate_t *st;
    tl_ns_sock_t *prev, *next;
    int fd;
    unsigned char kind;   /* TL_NS_* */
    unsigned is_socket : 1; /* sendmsg/MSG_NOSIGNAL, shutdown, options */
    unsigned reading : 1;
    unsigned accepting : 1;
    unsigned connecting : 1;
    unsigned closed : 1;
    unsigned eof : 1;       /* TL_EOF delivered (or the write pipe's end) */
    unsigned dead : 1;      /* a final error happened (err) */
    unsigned shut_req : 1;  /* shutdown_write asked, waiting for the queue */
    unsigned shut_done : 1;
    unsigned rwatch : 1, wwatch : 1; /* what the loop watches now */
    unsigned wfull : 1;     /* a write was short: wait for writable */
    unsigned emfile : 1;    /* in an EMFILE episode (reported once) */
    int err;                /* the final error, when dead */
    int pend_err;           /* a failure found inside a consumer's call,
                               reported by the flush callback (done_h) */
    unsigned busy;          /* our callbacks running on it */
    unsigned lent;          /* buffers the consumer holds */
    tl_ns_handler_t h;
    void *ctx;
    /* Sends: q* still have bytes to go; d* went out completely and wait
     * for done(0), which the flush callback (done_h) or the next writable
     * event runs, in order, before any later completion. */
    tl_ns_send_t *qhead, *qtail, *dhead, *dtail;
    tl_handle_t done_h;  /* scheduled flush of d* */
    tl_handle_t conn_h;  /* scheduled connected() of an immediate connect */
    tl_handle_t retry_h; /* listener: accept retry after running out of fds */
};

/* A request's bookkeeping in req->priv. */
#define TL__REQ_NEXT(r) ((r)->priv[0])
#define TL__REQ_IDX(r) ((r)->priv[1])  /* (uintptr_t) iov index; on d*:
                                          the (intptr_t) status */
#define TL__REQ_OFF(r) ((r)->priv[2])  /* (uintptr_t) offset in it */
#define TL__REQ_FILE(r) ((r)->priv[3]) /* tl__ksendfile_t * or NULL */

/* netstack_kernel.c */
int tl__ksock_new(tl__kstate_t *st, int fd, int kind, int is_socket,
                  const tl_ns_handler_t *h, void *ctx, tl_ns_sock_t **out);
/* Free the record only (fd already closed or never owned). */
void tl__ksock_discard(tl_ns_sock_t *s);
/* Bring the loop's watchers in line with the socket's state. */
int tl__ksock_update_watch(tl_ns_sock_t *s);
/* The socket failed for good: complete every send with err, stop
 * watching, tell recv (once, when reading). Loop context only. */
void tl__ksock_fail(tl_ns_sock_t *s, int err);
/* Free s if closed and nothing holds it. */
void tl__ksock_maybe_free(tl_ns_sock_t *s);
/* Callback guard: enter before calling the consumer, leave after;
 * leave returns nonzero when s was closed meanwhile (do not touch s
 * again: it may be freed). */
static inline void tl__ksock_enter(tl_ns_sock_t *s) { s->busy++; }
int tl__ksock_leave(tl_ns_sock_t *s);
/* The loop's fd callbacks (ctx: the socket). */
void tl__ksock_on_readable(void *ctx);
void tl__ksock_on_writable(void *ctx);
/* Set O_NONBLOCK and FD_CLOEXEC. */
int tl__kfd_prepare(int fd);
/* Check an address and give its family (AF_*) and length. */
int tl__kaddr(const tl_sockaddr_t *a, int *family, unsigned *len);

/* netstack_kernel_send.c */
int64_t tl__ks_try_send(tl_ns_sock_t *s, const tl_iovec_t *iov, size_t n,
                        const tl_sockaddr_t *to);
/* try_send of one buffer, len > 0, no address: what a stream transport
 * over this stack calls directly (not through the ops table) for a write
 * with nothing queued. The common case (a connected stream socket with
 * nothing queued that takes it all) is one send(2) after one state test;
 * the rest is tl__ks_try_send's. */
int64_t tl__ks_send1(tl_ns_sock_t *s, const void *data, size_t len);
int tl__ks_send(tl_ns_sock_t *s, tl_ns_send_t *req);
int tl__ks_sendfile(tl_ns_sock_t *s, tl_fd_t fd, int64_t offset,
                    size_t count, tl_ns_send_t *req, size_t *sent);
int tl__ks_shutdown_write(tl_ns_sock_t *s);
/* Writable: write the queue (or finish a connect). */
void tl__ks_write_ready(tl_ns_sock_t *s);
/* Complete every held request: d* with 0, q* with status (close, fail). */
void tl__ks_complete_all(tl_ns_sock_t *s, int status);
/* Free a sendfile record of a request that never got queued or done. */
void tl__ks_req_forget(tl_ns_send_t *req);

/* netstack_kernel_open.c */
int tl__ks_listen(void *state, const tl_sockaddr_t *addr,
                  const tl_ns_bind_options_t *opts,
                  const tl_ns_handler_t *handler, void *ctx,
                  tl_ns_sock_t **out);
int tl__ks_accept_start(tl_ns_sock_t *s);
int tl__ks_accept_stop(tl_ns_sock_t *s);
void tl__ks_accept_ready(tl_ns_sock_t *s);
int tl__ks_connect(void *state, const tl_sockaddr_t *remote,
                   const tl_sockaddr_t *local, const tl_ns_handler_t *handler,
                   void *ctx, tl_ns_sock_t **out);
void tl__ks_connect_done(tl_ns_sock_t *s);
int tl__ks_open_dgram(void *state, const tl_sockaddr_t *local,
                      const tl_sockaddr_t *remote,
                      const tl_ns_bind_options_t *opts,
                      const tl_ns_handler_t *handler, void *ctx,
                      tl_ns_sock_t **out);

#endif
