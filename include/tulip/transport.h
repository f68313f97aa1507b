/*
 * tulip/transport.h - asyncio's transports and protocols, in C: TCP and
 * Unix stream connections, servers, UDP endpoints and pipes.
 *
 * A protocol is a table of callbacks plus a ctx pointer, the C form of an
 * asyncio.Protocol instance. A transport is the loop's end of a connection;
 * it calls the protocol's callbacks, always on the loop's thread, in
 * asyncio's order:
 *
 *   connection_made  once, first (scheduled with call_soon after the
 *                    transport exists, as asyncio does)
 *   data_received*   (or get_buffer + buffer_updated, for a buffered
 *                    protocol), while reading is not paused
 *   eof_received     at most once, when the peer closed its sending side;
 *                    it returns nonzero to keep the connection half-open
 *                    (the protocol may still write, and closes later), or
 *                    zero and the transport closes itself
 *   pause_writing / resume_writing  in strict alternation, around the
 *                    write buffer crossing the high / falling to the low
 *                    water mark
 *   connection_lost  once, last, with 0 for a normal close or EOF, or the
 *                    error that ended the connection (TL_ECONNRESET...);
 *                    the protocol frees its ctx here if it owns one.
 *
 * Lifetime (DESIGN.md): a transport belongs to its loop until its
 * connection_lost has run, then it is freed, unless the user holds a
 * reference (tl_transport_ref): then calls on it return TL_ECLOSED until
 * the last tl_transport_unref. Closing the loop aborts the transports that
 * are left (their connection_lost runs with TL_ECLOSED inside
 * tl_loop_close).
 *
 * Writes are tried at once; only what the network does not take is copied
 * into the transport's buffer (or, for tl_transport_write_take, kept without
 * a copy). Reading delivers up to 256 KiB at a time (asyncio's figure).
 *
 * Every network call goes through the loop's netstack (netstack.h), so the
 * same transports run over the kernel or a user-space stack. Pipes always
 * use the kernel.
 *
 * All functions: call on the loop's thread (TL_EWRONGTHREAD otherwise);
 * NULL arguments get TL_EINVAL.
 */
#ifndef TULIP_TRANSPORT_H
#define TULIP_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "dns.h"
#include "future.h"
#include "loop.h"
#include "netstack.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tl_transport tl_transport_t;
typedef struct tl_server tl_server_t;
struct tl_tls_options; /* tls.h */

/* A protocol: any member may be NULL (nothing to call). size is
 * sizeof(tl_protocol_t) of the caller's header (0 is taken as the current
 * size), so the table can grow. ctx is given with the table when the
 * transport is made. */
typedef struct tl_protocol {
    size_t size;
    void (*connection_made)(tl_transport_t *t, void *ctx);
    /* data[0..len) is the transport's until the call returns. */
    void (*data_received)(tl_transport_t *t, const void *data, size_t len,
                          void *ctx);
    /* Return nonzero to keep the connection half-open. NULL: close. */
    int (*eof_received)(tl_transport_t *t, void *ctx);
    void (*connection_lost)(tl_transport_t *t, int error, void *ctx);
    void (*pause_writing)(tl_transport_t *t, void *ctx);
    void (*resume_writing)(tl_transport_t *t, void *ctx);
    /* Buffered protocol (asyncio.BufferedProtocol): when get_buffer is set
     * it is used instead of data_received. It returns 0 and a buffer of
     * at least 1 byte (*buf, *len; sizehint is what the transport has, or
     * 0 when unknown) that the transport fills, then buffer_updated tells
     * how many bytes it wrote. A negative return or an empty buffer is a
     * protocol error: the transport aborts with that error (TL_ENOBUFS for
     * an empty buffer). */
    int (*get_buffer)(tl_transport_t *t, size_t sizehint, void **buf,
                      size_t *len, void *ctx);
    void (*buffer_updated)(tl_transport_t *t, size_t nbytes, void *ctx);
    /* Datagram protocols. */
    void (*datagram_received)(tl_transport_t *t, const void *data, size_t len,
                              const tl_sockaddr_t *from, void *ctx);
    /* A send or receive of a datagram endpoint failed (ICMP errors such
     * as TL_ECONNREFUSED); the endpoint stays open. */
    void (*error_received)(tl_transport_t *t, int error, void *ctx);
} tl_protocol_t;

/* Makes the protocol of a connection a server accepted: return 0 with the
 * table and its ctx, or a negative code to refuse the connection (it is
 * closed, and the server goes on). */
typedef int (*tl_protocol_factory_t)(void *factory_ctx,
                                     const tl_protocol_t **proto,
                                     void **proto_ctx);

/* ---- transport methods ------------------------------------------------ */

TL_API int tl_transport_ref(tl_transport_t *t);
TL_API int tl_transport_unref(tl_transport_t *t);
TL_API tl_loop_t *tl_transport_get_loop(const tl_transport_t *t);

/* Send data: what the network takes at once goes, the rest is copied into
 * the write buffer. 0, or TL_ECLOSED after close/abort or once the
 * connection is lost, TL_ESHUTDOWN after write_eof, TL_ENOMEM (nothing of
 * data was taken). Errors of the connection itself are not returned here:
 * they end the connection through connection_lost. len 0 is a no-op. */
TL_API int tl_transport_write(tl_transport_t *t, const void *data, size_t len);
TL_API int tl_transport_writev(tl_transport_t *t, const tl_iovec_t *iov,
                               size_t n);
/* write without a copy: the transport takes data (freed with
 * free_fn(data) once sent, or at once on an error return). */
TL_API int tl_transport_write_take(tl_transport_t *t, void *data, size_t len,
                                   tl_destructor_t free_fn);
/* Close the sending side once the buffer is flushed (a FIN). Reading
 * continues. TL_ENOTSUP when the transport cannot (can_write_eof 0). */
TL_API int tl_transport_write_eof(tl_transport_t *t);
TL_API int tl_transport_can_write_eof(const tl_transport_t *t);
/* Close after the buffered data is sent: reading stops at once,
 * connection_lost(0) follows once the buffer is empty. Again: 0. */
TL_API int tl_transport_close(tl_transport_t *t);
/* Close at once, dropping buffered data (a reset for TCP);
 * connection_lost(0) is scheduled. */
TL_API int tl_transport_abort(tl_transport_t *t);
/* 1 once close or abort was called or the connection is lost. */
TL_API int tl_transport_is_closing(const tl_transport_t *t);

/* Stop and restart calling data_received. Pausing twice, or resuming a
 * transport that reads: 0 (asyncio 3.7+: no error). TL_ECLOSED when
 * closing. */
TL_API int tl_transport_pause_reading(tl_transport_t *t);
TL_API int tl_transport_resume_reading(tl_transport_t *t);
TL_API int tl_transport_is_reading(const tl_transport_t *t);

/* Water marks in bytes; -1 for asyncio's defaults: high 64 KiB, low
 * high/4; only low given: high = 4 x low. TL_EINVAL unless
 * high >= low >= 0. Takes effect at once (may call pause/resume_writing). */
TL_API int tl_transport_set_write_buffer_limits(tl_transport_t *t,
                                                int64_t high, int64_t low);
TL_API int tl_transport_get_write_buffer_limits(const tl_transport_t *t,
                                                size_t *high, size_t *low);
/* Bytes written but not yet handed to the network. */
TL_API size_t tl_transport_get_write_buffer_size(const tl_transport_t *t);

/* get_extra_info, typed: the addresses (TL_ENOTCONN / TL_ENOTSUP when the
 * transport has none), and the kernel descriptor (TL_ENOTSUP on a
 * user-space netstack). */
TL_API int tl_transport_get_peername(const tl_transport_t *t,
                                     tl_sockaddr_t *out);
TL_API int tl_transport_get_sockname(const tl_transport_t *t,
                                     tl_sockaddr_t *out);
TL_API int tl_transport_get_fileno(const tl_transport_t *t, tl_fd_t *out);

/* Switch the protocol (the new one gets no connection_made). */
TL_API int tl_transport_set_protocol(tl_transport_t *t,
                                     const tl_protocol_t *proto, void *ctx);
TL_API int tl_transport_get_protocol(const tl_transport_t *t,
                                     const tl_protocol_t **proto, void **ctx);

/* Datagram endpoints: send one datagram to `to` (NULL: the connected
 * peer). What cannot go at once is copied and queued (flow control as for
 * writes; each queued datagram counts len + 8 bytes, as in asyncio). len 0
 * sends an empty datagram. Errors known at the call are returned and
 * nothing is sent: TL_EMSGSIZE for a datagram too big (over 65507 bytes
 * on IPv4, 65527 on IPv6), TL_EDESTADDRREQ without a peer, TL_EINVAL for
 * a `to` that is not the peer of a connected endpoint, TL_ECLOSED,
 * TL_ENOMEM, and what the network says at once (TL_EACCES: a broadcast
 * without allow_broadcast; on a connected endpoint possibly an ICMP error
 * an earlier datagram caused). A queued datagram that fails later goes to
 * error_received. tl_transport_write is TL_ENOTSUP on an endpoint. */
TL_API int tl_transport_sendto(tl_transport_t *t, const void *data, size_t len,
                               const tl_sockaddr_t *to);

/* Send count bytes of file fd from offset through the kernel's zero-copy
 * path (sendfile(2)), or by reading and writing where that is absent; the
 * future's result is the number of bytes sent, as (void *)(uintptr_t)n.
 * Other writes wait until it is done. count 0: to the end of the file. */
TL_API int tl_transport_sendfile(tl_transport_t *t, tl_fd_t fd, int64_t offset,
                                 size_t count, tl_future_t **out);

/* ---- making connections ----------------------------------------------- */

/* Three-state option values: zero means the default. */
enum { TL_OPT_DEFAULT = 0, TL_OPT_ON = 1, TL_OPT_OFF = -1 };

typedef struct tl_connect_options {
    size_t size;               /* sizeof(tl_connect_options_t), or 0 */
    int family;                /* TL_AF_*: restrict resolution; 0 any */
    const tl_sockaddr_t *local_addr; /* bind before connecting */
    /* Happy Eyeballs (RFC 8305): the delay before the next address is
     * tried while earlier attempts are still pending. 0: 250 ms; < 0:
     * off (addresses tried one after another). */
    int64_t happy_eyeballs_delay_ns;
    /* Addresses of alternating families: 0 means 1 when Happy Eyeballs
     * is on (RFC 8305), else as resolved. */
    int interleave;
    int nodelay;               /* TCP_NODELAY: default ON */
    int keepalive;             /* SO_KEEPALIVE: default OFF */
    /* TLS over the connection (tls.h), NULL: none. The future completes
     * with the TLS transport once the handshake is done; its failure
     * (TL_ECERTVERIFY...) fails the future. server_hostname defaults to
     * host. The options are read during the call only. */
    const struct tl_tls_options *tls;
} tl_connect_options_t;

/* asyncio's loop.create_connection: resolve host:port (through the
 * executor, numeric hosts at once), connect to the addresses (Happy
 * Eyeballs), make a transport with proto/proto_ctx, and complete *out
 * with it (the result is the tl_transport_t *, borrowed: see Lifetime)
 * after connection_made is scheduled. Failure: the future's error is the
 * one of the last attempt (each attempt's error is reported to the loop's
 * exception handler in debug mode); resolution errors are TL_EAI_*.
 * Cancelling the future stops the attempts. proto_ctx is not touched on
 * failure.
 * Details (src/transport/connect.c): connection_made runs before the
 * future's done callbacks. The next attempt starts when the latest one
 * fails or the delay since its start passed. When attempts failed with
 * different errors, tl_future_error_message lists each address and its
 * error (asyncio's "Multiple exceptions"). With local_addr only addresses
 * of its family are tried (none left: TL_EAFNOSUPPORT); an address of the
 * wrong opts->family is skipped (none left: TL_EAI_NONAME). The proto
 * table is used (not copied) until the transport exists and is kept by
 * it for tl_transport_get_protocol. Dropping the future does not stop the
 * connection (as with a task); a loop that closes frees everything and
 * leaves the future pending. */
TL_API int tl_create_connection(tl_loop_t *loop, const tl_protocol_t *proto,
                                void *proto_ctx, const char *host,
                                const char *port,
                                const tl_connect_options_t *opts,
                                tl_future_t **out);
/* The same to one known address (no resolution, no Happy Eyeballs). */
TL_API int tl_create_connection_addr(tl_loop_t *loop,
                                     const tl_protocol_t *proto,
                                     void *proto_ctx,
                                     const tl_sockaddr_t *addr,
                                     const tl_connect_options_t *opts,
                                     tl_future_t **out);
/* A Unix stream socket at path ('@name': a Linux abstract name). */
TL_API int tl_create_unix_connection(tl_loop_t *loop,
                                     const tl_protocol_t *proto,
                                     void *proto_ctx, const char *path,
                                     const tl_connect_options_t *opts,
                                     tl_future_t **out);
/* Wrap a connected stream socket the caller made (it now belongs to the
 * transport). Kernel netstack only. */
TL_API int tl_connect_accepted_socket(tl_loop_t *loop,
                                      const tl_protocol_t *proto,
                                      void *proto_ctx, tl_fd_t fd,
                                      tl_transport_t **out);

/* Pipes (always the kernel): the read end or the write end of a pipe,
 * FIFO or character device, set non-blocking and owned by the transport
 * from here on. A read pipe has no write methods (TL_ENOTSUP) and a write
 * pipe no read methods; a write pipe reports the reader going away as
 * connection_lost(TL_EPIPE) or (0) when it closes cleanly. */
TL_API int tl_connect_read_pipe(tl_loop_t *loop, const tl_protocol_t *proto,
                                void *proto_ctx, tl_fd_t fd,
                                tl_transport_t **out);
TL_API int tl_connect_write_pipe(tl_loop_t *loop, const tl_protocol_t *proto,
                                 void *proto_ctx, tl_fd_t fd,
                                 tl_transport_t **out);

/* ---- servers ---------------------------------------------------------- */

typedef struct tl_server_options {
    size_t size;       /* sizeof(tl_server_options_t), or 0 */
    int family;        /* TL_AF_*: restrict resolution; 0 any */
    int backlog;       /* 0: 100 */
    int reuse_address; /* default ON on POSIX (asyncio) */
    int reuse_port;    /* default OFF */
    int start_serving; /* default ON; OFF: call tl_server_start_serving */
    int nodelay;       /* accepted TCP connections: default ON */
    /* TLS on every accepted connection (tls.h; a server context), NULL:
     * none. The factory's protocol gets connection_made after the
     * handshake; a connection whose handshake fails is dropped (reported
     * to the loop's exception handler in debug mode). The server keeps
     * its own copy of the options and a reference to the context. */
    const struct tl_tls_options *tls;
} tl_server_options_t;

/* asyncio's loop.create_server: resolve host (NULL or "": every local
 * address, IPv4 and IPv6) and port ("0": one the system picks, the same
 * for every address when it can), listen on each address, and complete
 * *out with the server (result: tl_server_t *, the caller's; free it with
 * tl_server_free). Each accepted connection gets a protocol from
 * factory(factory_ctx, ...). TL_EADDRINUSE and the like fail the future
 * and leave nothing open. */
TL_API int tl_create_server(tl_loop_t *loop, tl_protocol_factory_t factory,
                            void *factory_ctx, const char *host,
                            const char *port, const tl_server_options_t *opts,
                            tl_future_t **out);
/* The same on known addresses, at once (no resolution). */
TL_API int tl_create_server_addrs(tl_loop_t *loop,
                                  tl_protocol_factory_t factory,
                                  void *factory_ctx,
                                  const tl_sockaddr_t *addrs, size_t n,
                                  const tl_server_options_t *opts,
                                  tl_server_t **out);
/* A Unix stream server at path ('@name': abstract). A stale socket file
 * at path is removed first (asyncio does); TL_EADDRINUSE if another
 * server answers there. */
TL_API int tl_create_unix_server(tl_loop_t *loop, tl_protocol_factory_t factory,
                                 void *factory_ctx, const char *path,
                                 const tl_server_options_t *opts,
                                 tl_server_t **out);

TL_API tl_loop_t *tl_server_get_loop(const tl_server_t *s);
/* Start (again) accepting; 0 when already serving. */
TL_API int tl_server_start_serving(tl_server_t *s);
TL_API int tl_server_is_serving(const tl_server_t *s);
/* The bound addresses: fills up to max, returns how many there are. */
TL_API int tl_server_sockets(const tl_server_t *s, tl_sockaddr_t *addrs,
                             size_t max);
/* Stop listening (the listening sockets close); connections stay. */
TL_API int tl_server_close(tl_server_t *s);
/* Close (abort) every connection the server accepted and still has. */
TL_API int tl_server_close_clients(tl_server_t *s);
TL_API int tl_server_abort_clients(tl_server_t *s);
/* A future done once the server is closed and every connection it
 * accepted is gone (asyncio 3.12+). */
TL_API int tl_server_wait_closed(tl_server_t *s, tl_future_t **out);
/* In a task: start serving and wait until the server is closed (0) or
 * the task is cancelled (TL_ECANCELLED; the server is then closed). */
TL_API int tl_server_serve_forever(tl_server_t *s);
/* Close if not closed, and release the caller's server. Connections
 * still open keep running; wait_closed futures complete when they end. */
TL_API void tl_server_free(tl_server_t *s);

/* ---- datagram endpoints ----------------------------------------------- */

typedef struct tl_datagram_options {
    size_t size;
    int reuse_port;      /* default OFF */
    int allow_broadcast; /* default OFF */
} tl_datagram_options_t;

/* asyncio's create_datagram_endpoint on known addresses: bound to local
 * (NULL: any address of remote's family), connected to remote (NULL:
 * unconnected; sendto then needs an address). One of the two is needed
 * (TL_EINVAL). connection_made is scheduled as for streams;
 * datagram_received gets each datagram, error_received the errors. */
TL_API int tl_create_datagram_endpoint(tl_loop_t *loop,
                                       const tl_protocol_t *proto,
                                       void *proto_ctx,
                                       const tl_sockaddr_t *local,
                                       const tl_sockaddr_t *remote,
                                       const tl_datagram_options_t *opts,
                                       tl_transport_t **out);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_TRANSPORT_H */
