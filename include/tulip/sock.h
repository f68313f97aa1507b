/*
 * tulip/sock.h - low-level socket operations for tasks: asyncio's
 * loop.sock_recv, sock_recv_into, sock_sendall, sock_accept, sock_connect,
 * sock_recvfrom and sock_sendto, on kernel descriptors the caller owns.
 *
 * This is the kernel-only convenience layer, as asyncio's (which needs a
 * non-blocking socket object): the operations use the loop's readiness
 * watchers (tl_loop_add_reader/add_writer) directly and never go through
 * the loop's netstack, so they work on any readiness backend whatever
 * netstack the loop uses, and only on kernel sockets. Transports, servers
 * and streams are the portable layer; use these for protocols written as
 * sequential code over a socket you made yourself.
 *
 * One mechanism. Each operation has one implementation that returns a
 * future of the loop (tl_sock_*_future); the sequential forms (tl_sock_recv,
 * ...) are tl_await over it, for tasks. Both first try the system call at
 * once (asyncio does): an operation that can complete without waiting is
 * done when the call returns (a sequential form then makes no future and
 * never suspends), and a watcher is registered only when the call would
 * block (EAGAIN).
 *
 * The descriptor:
 *   - belongs to the caller: tulip never closes it, not on an error, not on
 *     a cancellation, not when the loop closes. Finish or cancel the
 *     operations on it before closing it.
 *   - must be non-blocking: a blocking one is refused with TL_EINVAL (the
 *     check is one fcntl; asyncio raises ValueError, in debug mode only,
 *     but a blocking socket would stall the whole loop, so tulip always
 *     checks). A closed or invalid descriptor is TL_EBADF.
 *   - has one reader slot and one writer slot in the loop, so at most one
 *     read-side operation (recv, recvfrom, accept) and one write-side
 *     operation (sendall, sendto, connect) may wait on it at a time. Another
 *     one while one waits, or while anything else watches that side of the
 *     descriptor (tl_loop_add_reader, a transport), is TL_EBUSY, and nothing
 *     is tried. (asyncio replaces the previous watcher, which then never
 *     completes; tulip refuses instead.)
 *
 * Futures. *out receives a new future (one reference, the caller's); only
 * the operation completes it (tl_future_set_result/set_error on it are
 * TL_EINVAL). Its result value is an integer carried in the pointer
 * (documented per call) and owns nothing. Its error is a TL_E* code
 * (tl_translate_sys_error of the system's errno: TL_ECONNRESET,
 * TL_ECONNREFUSED, TL_EPIPE, TL_ENOTSOCK, ...).
 *
 * Cancelling the future (tl_future_cancel, or cancelling a task awaiting
 * it) removes the watcher at once; nothing happens to the descriptor, and
 * buffers and out-parameters given to the operation are no longer touched.
 * Dropping the last reference to a pending operation cancels it the same
 * way (nobody could read its outcome). Closing the loop drops the watchers;
 * pending futures stay pending and are freed by their last unref.
 *
 * Memory handed to an operation (buf, data, peer, from) must stay valid
 * until its future is done, or until it is cancelled.
 *
 * Errors returned by every call (and then no future was made and nothing
 * was tried): TL_EINVAL (NULL loop or out, a NULL buffer with a length > 0,
 * a blocking descriptor, an address whose length is 0 or too long),
 * TL_EBADF, TL_EBUSY, TL_EWRONGTHREAD, TL_ECLOSED, TL_ENOMEM (or the
 * backend's error registering the watcher; except that a sendall which
 * already sent part of its bytes, or a connect already under way, then
 * returns its future failed with that error, since something happened). The
 * sequential forms return TL_ENOTASK outside a task, and whatever the
 * operation ended with: 0, its error, or TL_ECANCELLED if the task was
 * cancelled while it waited. If the task was cancelled after the operation
 * completed but before the task resumed, the operation stands (the bytes
 * were received or sent, the connection accepted): the sequential form
 * returns its success, and the cancellation stays pending for the task's
 * next suspension, as tulip's sync primitives do.
 *
 * Signals: sends use MSG_NOSIGNAL where the platform has it, so writing
 * to a connection the peer closed fails with TL_EPIPE instead of raising
 * SIGPIPE.
 */
#ifndef TULIP_SOCK_H
#define TULIP_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "backend.h"
#include "dns.h"
#include "future.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- receiving -----------------------------------------------------------
 * asyncio's sock_recv and sock_recv_into. In C they are the same call: the
 * caller's buffer receives the bytes (no sock_recv_into alias is exported).
 */

/* Receive up to len bytes into buf: one recv(2) once the socket is
 * readable. The future's result is the count, (void *)(uintptr_t)n; 0
 * means end of file (the peer shut down its side), or len was 0 (then
 * nothing waits: it is done at once). */
TL_API int tl_sock_recv_future(tl_loop_t *loop, tl_fd_t fd, void *buf,
                               size_t len, tl_future_t **out);
/* In a task: tl_sock_recv_future and await it. *got (may be NULL) gets
 * the count, 0 at end of file. */
TL_API int tl_sock_recv(tl_fd_t fd, void *buf, size_t len, size_t *got);

/* ---- sending ------------------------------------------------------------ */

/* Send all of data[0..len) (send(2) as often as it takes, waiting for the
 * socket to be writable in between); the future's result is NULL once the
 * last byte was handed to the kernel. The bytes are not copied: data must
 * stay valid and unchanged until the future is done.
 * On an error, or when cancelled part-way, an unspecified prefix of data
 * was sent (asyncio's sock_sendall leaves the same uncertainty): the
 * connection's byte stream is then in an unknown state and should be
 * closed. */
TL_API int tl_sock_sendall_future(tl_loop_t *loop, tl_fd_t fd,
                                  const void *data, size_t len,
                                  tl_future_t **out);
/* In a task: tl_sock_sendall_future and await it. */
TL_API int tl_sock_sendall(tl_fd_t fd, const void *data, size_t len);

/* ---- accepting and connecting ------------------------------------------- */

/* Accept one connection on a listening socket. The future's result is the
 * new descriptor, (void *)(intptr_t)fd: non-blocking and close-on-exec,
 * owned by whoever reads the result (the future does not close it), so
 * read the outcome of every such future that completes. If peer is not
 * NULL, the peer's address is written there when the future completes
 * successfully (never after a cancellation). Errors of accept(2) other than
 * EAGAIN and EINTR fail the future (TL_ECONNABORTED, TL_EMFILE, ...), as
 * asyncio's sock_accept does. */
TL_API int tl_sock_accept_future(tl_loop_t *loop, tl_fd_t fd,
                                 tl_sockaddr_t *peer, tl_future_t **out);
/* In a task: tl_sock_accept_future and await it. *conn gets the new
 * descriptor (the caller owns it); peer may be NULL. */
TL_API int tl_sock_accept(tl_fd_t fd, tl_fd_t *conn, tl_sockaddr_t *peer);

/* Connect to addr (copied: it may go at once). The future's result is NULL
 * once connected: a connect(2) that is in progress (EINPROGRESS, EINTR)
 * waits for the socket to be writable, then reads SO_ERROR, as asyncio's
 * sock_connect does; a Unix socket whose listener's backlog is full
 * (EAGAIN) retries the connect(2) when the socket is writable. Errors:
 * TL_ECONNREFUSED, TL_ETIMEDOUT, TL_ENETUNREACH, TL_EISCONN, ...
 * Cancelling leaves the socket in whatever state the kernel has it in (a
 * connection may be half-way): close it. */
TL_API int tl_sock_connect_future(tl_loop_t *loop, tl_fd_t fd,
                                  const tl_sockaddr_t *addr,
                                  tl_future_t **out);
/* In a task: tl_sock_connect_future and await it. */
TL_API int tl_sock_connect(tl_fd_t fd, const tl_sockaddr_t *addr);

/* ---- datagrams ---------------------------------------------------------- */

/* Receive one datagram (asyncio's sock_recvfrom and sock_recvfrom_into)
 * into buf: the future's result is its length, (void *)(uintptr_t)n,
 * truncated to len when the datagram was longer (the rest is discarded,
 * as recvfrom(2) does). If from is not NULL, the sender's address is
 * written there, as the kernel gives it, when the future completes
 * successfully. */
TL_API int tl_sock_recvfrom_future(tl_loop_t *loop, tl_fd_t fd, void *buf,
                                   size_t len, tl_sockaddr_t *from,
                                   tl_future_t **out);
/* In a task: tl_sock_recvfrom_future and await it. got and from may be
 * NULL. */
TL_API int tl_sock_recvfrom(tl_fd_t fd, void *buf, size_t len, size_t *got,
                            tl_sockaddr_t *from);

/* Send data[0..len) as one datagram to `to` (copied; NULL for a connected
 * socket), waiting for the socket to be writable if the kernel's buffer is
 * full. The future's result is the count sent, (void *)(uintptr_t)n. data
 * must stay valid until the future is done. */
TL_API int tl_sock_sendto_future(tl_loop_t *loop, tl_fd_t fd,
                                 const void *data, size_t len,
                                 const tl_sockaddr_t *to, tl_future_t **out);
/* In a task: tl_sock_sendto_future and await it. sent may be NULL. */
TL_API int tl_sock_sendto(tl_fd_t fd, const void *data, size_t len,
                          const tl_sockaddr_t *to, size_t *sent);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_SOCK_H */
