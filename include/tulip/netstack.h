/*
 * tulip/netstack.h - the seam between transports and the network.
 *
 * Transports (TCP, Unix sockets, UDP, pipes; TLS above them) never make a
 * socket call themselves: they go through a netstack, a table of operations
 * with a state per loop. The kernel is the default netstack; a user-space
 * stack (DPDK, F-Stack, AF_XDP, or the in-process stack of the tests)
 * implements the same table and plugs in with tl_loop_set_netstack, without
 * a change to any transport.
 *
 * The shape is completion-style, so that a stack that owns its memory can
 * host it (Seastar's network_stack, F-Stack):
 *   - received bytes arrive as buffers the stack owns; the consumer hands
 *     each back with release(), possibly later (a stream may keep one);
 *   - a send hands over a chain of buffers with a completion that tells the
 *     sender when the stack is done with the memory (no copy on the way);
 *     try_send is the fast path that sends (or copies) at once;
 *   - connect, accept and reads complete through the socket's handler.
 * A readiness backend (epoll, poll) implements this by reading into pooled
 * buffers when a descriptor is readable and writing queued chains when it is
 * writable; a completion backend (io_uring, IOCP) maps it directly.
 *
 * Rules every stack keeps, and every transport may rely on:
 *   - Everything happens on the loop's thread. Handler callbacks and send
 *     completions run from the loop (its poll or dispatch phase, or a
 *     callback it scheduled), never from inside an operation the consumer
 *     called, with one exception: close() completes the socket's pending
 *     sends (TL_ECANCELLED) before it returns. After close() returns no
 *     callback names that socket again.
 *   - Sends on one socket complete in the order they were made; bytes of a
 *     stream socket leave in that order, try_send's included.
 *   - A stream socket reports the end of the peer's data once (recv with
 *     status TL_EOF) and then nothing more but errors; an error (status < 0)
 *     is final: the socket is dead and only close() is left to call.
 *   - Buffers handed out by recv stay valid until release(), which may come
 *     after close(); all of them must be released before the stack is
 *     destroyed (the loop closes transports first). A release after close
 *     names a socket that is gone: a stack must not read it then (keep
 *     what release needs in the buffer's priv, or keep the socket's
 *     memory until its buffers are back).
 *   - EOF and errors of a stream socket are reported through recv, so a
 *     consumer that stopped reading learns of them when it reads again or
 *     when a send fails.
 *   - Unspecified cases a consumer must not rely on: try_send while a
 *     send is pending (a stack may return 0), sends after shutdown_write
 *     (a stack may fail them with TL_EPIPE), the handler of an accepted
 *     connection before set_handler (events wait until reading starts).
 *
 * A stack that must be polled (a NIC queue, a shared-memory ring) registers
 * a poller on the loop (tl_loop_add_poller, loop.h): the loop calls it once
 * per iteration; while any poller says it has work, the loop does not sleep
 * in the kernel (run-to-completion), and the kernel reactor (timers,
 * signals, pipes, processes) keeps running beside it with a zero timeout.
 */
#ifndef TULIP_NETSTACK_H
#define TULIP_NETSTACK_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "dns.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A socket of some netstack: opaque, defined by the stack. */
typedef struct tl_ns_sock tl_ns_sock_t;

/* One piece of memory. */
typedef struct tl_iovec {
    const void *base;
    size_t len;
} tl_iovec_t;

/* A received buffer, lent by the stack until release(). The consumer reads
 * data[0..len) and, for datagrams, from; it may advance data and shrink len
 * as it consumes (the stack frees by its own bookkeeping, not by data).
 * priv belongs to the stack. */
typedef struct tl_ns_buf {
    const unsigned char *data;
    size_t len;
    const tl_sockaddr_t *from; /* datagram sockets: the sender; else NULL */
    void *priv[3];
} tl_ns_buf_t;

/* A send: the chain iov[0..n) (the stack may keep the array pointer too),
 * and done(req, status), called once when the stack no longer needs the
 * memory: status 0 when every byte was handed to the network, or an error
 * (TL_ECONNRESET, TL_EPIPE, TL_ECANCELLED when the socket closed first...).
 * to: datagram sockets only, the destination (NULL: the connected peer).
 * The request itself belongs to the sender and must stay valid until done
 * runs; priv is the stack's while it holds the request. */
typedef struct tl_ns_send tl_ns_send_t;
struct tl_ns_send {
    const tl_iovec_t *iov;
    size_t n;
    const tl_sockaddr_t *to;
    void (*done)(tl_ns_send_t *req, int status);
    void *ctx; /* the sender's */
    void *priv[4];
};

/* What a socket reports; set by the consumer (set_handler, or at creation).
 * Any member may be NULL when the socket cannot produce it. */
typedef struct tl_ns_handler {
    /* Stream and datagram sockets, while reading is started: buf != NULL
     * with status 0 is data (the consumer now holds buf until release);
     * buf == NULL with status TL_EOF: the peer will send nothing more;
     * status < 0: the socket failed (for datagram sockets a failure is an
     * ICMP-style error of one send, and the socket stays usable). */
    void (*recv)(void *ctx, tl_ns_buf_t *buf, int status);
    /* Listeners: a new connection, now the consumer's (it sets the
     * handler and starts reading), or status < 0 when accepting failed.
     * A stack backs off by itself when it runs out of descriptors
     * (TL_EMFILE/TL_ENFILE), reporting the error once per episode; the
     * listener keeps serving. */
    void (*accept)(void *ctx, tl_ns_sock_t *conn, int status);
    /* connect() finished: 0, or why it failed (the socket is then dead). */
    void (*connected)(void *ctx, int status);
} tl_ns_handler_t;

/* Kinds of socket, and of descriptor given to adopt(). */
enum {
    TL_NS_STREAM = 1,   /* a connected byte stream (TCP, Unix) */
    TL_NS_LISTENER = 2, /* a listening stream socket */
    TL_NS_DGRAM = 3,    /* a datagram socket (UDP, Unix datagram) */
    TL_NS_PIPE_READ = 4,  /* adopt only: the read end of a pipe or tty */
    TL_NS_PIPE_WRITE = 5  /* adopt only: the write end */
};

/* Socket options for setopt(); value is 0/1 unless noted. */
enum {
    TL_NS_OPT_NODELAY = 1,   /* TCP_NODELAY */
    TL_NS_OPT_KEEPALIVE = 2,
    TL_NS_OPT_BROADCAST = 3, /* datagram sockets */
    TL_NS_OPT_SNDBUF = 4,    /* bytes */
    TL_NS_OPT_RCVBUF = 5     /* bytes */
};

/* Options of listen() and open_dgram(); zeroed means defaults. */
typedef struct tl_ns_bind_options {
    size_t size;
    int backlog;       /* listen: 0 means 100 (asyncio's default) */
    int reuse_address; /* SO_REUSEADDR */
    int reuse_port;    /* SO_REUSEPORT: TL_ENOTSUP where absent */
    int ipv6_only;     /* IPV6_V6ONLY for AF_INET6 */
    int broadcast;     /* datagram: SO_BROADCAST */
} tl_ns_bind_options_t;

/* The operations of a netstack. Errors are TL_E* codes. Operations that
 * create a socket return it in *out and take its handler and ctx at once,
 * so no event can be missed. Optional operations may be NULL (the caller
 * then gets TL_ENOTSUP or falls back, as noted). */
typedef struct tl_netstack_ops {
    size_t size; /* sizeof(tl_netstack_ops_t) */
    const char *name;

    /* The stack's state for one loop, made when the loop first needs a
     * netstack and freed (destroy) when the loop closes, after every
     * socket of it was closed. config is what tl_loop_set_netstack got. */
    int (*create)(tl_loop_t *loop, void *config, void **state);
    void (*destroy)(void *state);

    /* A listening socket on addr (port 0: the stack picks one; read it
     * with getaddr). Connections arrive through handler->accept while
     * accepting is started (accept_start/accept_stop). */
    int (*listen)(void *state, const tl_sockaddr_t *addr,
                  const tl_ns_bind_options_t *opts,
                  const tl_ns_handler_t *handler, void *ctx,
                  tl_ns_sock_t **out);
    int (*accept_start)(tl_ns_sock_t *listener);
    int (*accept_stop)(tl_ns_sock_t *listener);

    /* Start connecting a stream socket to remote (from local when not
     * NULL); handler->connected reports the outcome. Errors known at once
     * (TL_EAFNOSUPPORT, TL_EMFILE...) are returned and nothing is made. */
    int (*connect)(void *state, const tl_sockaddr_t *remote,
                   const tl_sockaddr_t *local, const tl_ns_handler_t *handler,
                   void *ctx, tl_ns_sock_t **out);

    /* A datagram socket bound to local (NULL: any address of remote's
     * family) and connected to remote (NULL: unconnected). */
    int (*open_dgram)(void *state, const tl_sockaddr_t *local,
                      const tl_sockaddr_t *remote,
                      const tl_ns_bind_options_t *opts,
                      const tl_ns_handler_t *handler, void *ctx,
                      tl_ns_sock_t **out);

    /* Optional: wrap a descriptor the caller made (an accepted socket, a
     * pipe end) as a socket of this stack, which then owns and closes it.
     * kind says what it is. Only stacks over the kernel have it. */
    int (*adopt)(void *state, tl_fd_t fd, int kind,
                 const tl_ns_handler_t *handler, void *ctx,
                 tl_ns_sock_t **out);

    /* Replace a socket's handler (an accepted connection gets its own). */
    int (*set_handler)(tl_ns_sock_t *s, const tl_ns_handler_t *handler,
                       void *ctx);

    /* Deliver received data through handler->recv until read_stop. */
    int (*read_start)(tl_ns_sock_t *s);
    int (*read_stop)(tl_ns_sock_t *s);
    /* Give back a buffer that recv lent. */
    void (*release)(tl_ns_sock_t *s, tl_ns_buf_t *buf);

    /* Optional fast path: send what can go at once, without keeping any
     * memory of the caller's. Returns the number of bytes taken (0 when
     * none can go now), or an error. Never call it while a send() of the
     * same socket is pending (order). Datagram sockets: the whole datagram
     * or TL_EAGAIN, to the given address or the connected peer (to NULL). */
    int64_t (*try_send)(tl_ns_sock_t *s, const tl_iovec_t *iov, size_t n,
                        const tl_sockaddr_t *to);
    /* Send a chain; ownership of its memory passes to the stack until
     * req->done. Returns 0 (queued) or an error known at once (then done
     * is not called). */
    int (*send)(tl_ns_sock_t *s, tl_ns_send_t *req);

    /* Optional: send count bytes of file fd from offset without passing
     * them through user memory (sendfile(2)); done(req, status) as for a
     * send, with the bytes sent in *sent. NULL: the caller reads and
     * sends. Queued behind earlier sends. */
    int (*sendfile)(tl_ns_sock_t *s, tl_fd_t fd, int64_t offset,
                    size_t count, tl_ns_send_t *req, size_t *sent);

    /* Close the sending side once every queued send is out (write_eof). */
    int (*shutdown_write)(tl_ns_sock_t *s);
    /* Release the socket. abort != 0 resets a stream connection (RST)
     * and drops unsent data; 0 lets queued sends finish in the kernel's
     * own time where the stack can (the kernel's graceful close) and
     * completes the requests still held with TL_ECANCELLED. */
    void (*close)(tl_ns_sock_t *s, int abort);

    /* The socket's own (peer 0) or its peer's (peer 1) address. */
    int (*getaddr)(tl_ns_sock_t *s, int peer, tl_sockaddr_t *out);
    int (*setopt)(tl_ns_sock_t *s, int opt, int value);
    /* The kernel descriptor behind s, or TL_ENOTSUP for a stack without. */
    int (*fileno)(tl_ns_sock_t *s, tl_fd_t *out);
} tl_netstack_ops_t;

/* The kernel netstack (epoll/poll readiness over the loop's backend). */
TL_API const tl_netstack_ops_t *tl_netstack_kernel(void);

/* Make ops (with config, passed to ops->create) the netstack of loop's
 * transports. Call before the loop makes its first transport: TL_EBUSY
 * once it has one. ops NULL restores the kernel. The ops table and config
 * must outlive the loop. TL_EINVAL (NULL loop, a table whose size is too
 * small or that lacks a required operation), TL_EWRONGTHREAD, TL_ECLOSED. */
TL_API int tl_loop_set_netstack(tl_loop_t *loop, const tl_netstack_ops_t *ops,
                                void *config);

/* The loop's netstack and its state (made now if not yet); for stacks that
 * wrap another and for tests. TL_ENOMEM, or what ops->create returned. */
TL_API int tl_loop_get_netstack(tl_loop_t *loop, const tl_netstack_ops_t **ops,
                                void **state);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_NETSTACK_H */
