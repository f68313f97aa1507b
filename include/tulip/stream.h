/*
 * tulip/stream.h - asyncio's streams for tasks: a connection read and
 * written with sequential code (StreamReader + StreamWriter in one handle).
 *
 * A tl_stream_t sits on a transport with a protocol of its own (built on
 * transport.h, so it runs over TCP, Unix sockets and any netstack). Reads
 * take the caller's buffer: nothing is allocated per read. Received bytes
 * wait in the stream's buffer, which holds up to `limit` bytes (64 KiB by
 * default) before reading from the network pauses (asyncio's 2 x limit
 * rule is not needed: the limit is the pause point).
 *
 * One mechanism (DESIGN.md): each operation that waits has a future form
 * (tl_stream_*_future) that any code may use, and a sequential form that is
 * tl_await over it, for tasks (TL_ENOTASK outside one). A cancelled read
 * consumes nothing. Only one read (and one drain) may wait at a time:
 * a second gets TL_EBUSY.
 *
 * Errors: TL_EINCOMPLETE (readexactly met the end: *got tells how many
 * bytes arrived, and they are in buf), TL_ELIMITOVERRUN (readuntil: the
 * separator was not found within limit bytes; the data stays in the
 * stream), TL_ECONNRESET and the like (the connection failed), TL_ECLOSED
 * (the stream was closed).
 */
#ifndef TULIP_STREAM_H
#define TULIP_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "future.h"
#include "loop.h"
#include "task.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tl_stream tl_stream_t;

typedef struct tl_stream_options {
    size_t size;
    size_t limit;                 /* 0: 64 KiB */
    tl_connect_options_t connect; /* for the connecting functions */
    tl_server_options_t server;   /* for the server functions */
    tl_task_options_t task;       /* for each connection's task */
} tl_stream_options_t;

/* asyncio.open_connection: connect (create_connection) and complete *out
 * with a new stream (result: tl_stream_t *, the caller's: tl_stream_free). */
TL_API int tl_open_connection_future(tl_loop_t *loop, const char *host,
                                     const char *port,
                                     const tl_stream_options_t *opts,
                                     tl_future_t **out);
/* In a task: the same, awaited. */
TL_API int tl_open_connection(const char *host, const char *port,
                              const tl_stream_options_t *opts,
                              tl_stream_t **out);
TL_API int tl_open_unix_connection(const char *path,
                                   const tl_stream_options_t *opts,
                                   tl_stream_t **out);
/* Runs once per accepted connection, in a task of its own. The stream is
 * tulip's: it is closed and freed when the handler returns. */
typedef int (*tl_stream_handler_t)(tl_stream_t *s, void *ctx);

/* asyncio.start_server: a server whose connections each run handler in a
 * new task. Result of the future: tl_server_t *, the caller's. */
TL_API int tl_start_server_future(tl_loop_t *loop, tl_stream_handler_t handler,
                                  void *ctx, const char *host,
                                  const char *port,
                                  const tl_stream_options_t *opts,
                                  tl_future_t **out);
/* The same on known addresses, at once (any thread of the loop, no task
 * needed). */
TL_API int tl_start_server_addrs(tl_loop_t *loop, tl_stream_handler_t handler,
                                 void *ctx, const tl_sockaddr_t *addrs,
                                 size_t n, const tl_stream_options_t *opts,
                                 tl_server_t **out);
TL_API int tl_start_unix_server(tl_loop_t *loop, tl_stream_handler_t handler,
                                void *ctx, const char *path,
                                const tl_stream_options_t *opts,
                                tl_server_t **out);

/* ---- reading (sequential forms: in a task) ---------------------------- */

/* Up to n bytes (at least 1 unless at EOF, then *got = 0 and 0). */
TL_API int tl_stream_read(tl_stream_t *s, void *buf, size_t n, size_t *got);
/* Exactly n bytes, or TL_EINCOMPLETE at EOF (the partial bytes in buf). */
TL_API int tl_stream_readexactly(tl_stream_t *s, void *buf, size_t n,
                                 size_t *got);
/* Up to and including the separator (which may start at most limit bytes
 * in: TL_ELIMITOVERRUN otherwise, the data stays). At EOF without it:
 * TL_EINCOMPLETE with whatever was left in buf (*got, maybe 0; consumed),
 * asyncio's IncompleteReadError. The result must fit cap: TL_ENOBUFS
 * otherwise (the data stays). sep must be 1 or more bytes. */
TL_API int tl_stream_readuntil(tl_stream_t *s, const void *sep, size_t seplen,
                               void *buf, size_t cap, size_t *got);
/* readuntil("\n"), but at EOF it gives back what is left (0, *got maybe
 * 0), as asyncio's readline does. On limit overrun it returns
 * TL_ELIMITOVERRUN after dropping the line through its newline, or the
 * whole buffer when no newline was seen (the rest of the long line then
 * comes with the next read), as asyncio's readline does. */
TL_API int tl_stream_readline(tl_stream_t *s, void *buf, size_t cap,
                              size_t *got);
/* 1 when the buffer is empty and the peer sent EOF. */
TL_API int tl_stream_at_eof(const tl_stream_t *s);

/* Future forms: buf must stay valid until the future is done (or
 * cancelled); sep is copied. The result is the byte count as
 * (void *)(uintptr_t)n; errors as above; after TL_EINCOMPLETE,
 * tl_stream_partial_count tells how many bytes are in buf. */
TL_API int tl_stream_read_future(tl_stream_t *s, void *buf, size_t n,
                                 tl_future_t **out);
TL_API int tl_stream_readexactly_future(tl_stream_t *s, void *buf, size_t n,
                                        tl_future_t **out);
TL_API int tl_stream_readuntil_future(tl_stream_t *s, const void *sep,
                                      size_t seplen, void *buf, size_t cap,
                                      tl_future_t **out);

/* The byte count of the last read that ended with TL_EINCOMPLETE. */
TL_API size_t tl_stream_partial_count(const tl_stream_t *s);

/* ---- writing ---------------------------------------------------------- */

/* Queue bytes (tl_transport_write); never waits. TL_ECLOSED after close,
 * the connection's error once it failed. */
TL_API int tl_stream_write(tl_stream_t *s, const void *data, size_t len);
TL_API int tl_stream_writelines(tl_stream_t *s, const tl_iovec_t *iov,
                                size_t n);
/* Wait until the write buffer is at or below the low-water mark; fails
 * with the connection's error if it was lost. */
TL_API int tl_stream_drain(tl_stream_t *s);
TL_API int tl_stream_drain_future(tl_stream_t *s, tl_future_t **out);
TL_API int tl_stream_write_eof(tl_stream_t *s);
TL_API int tl_stream_can_write_eof(const tl_stream_t *s);

/* ---- closing ---------------------------------------------------------- */

/* Close the transport (buffered data is still sent). */
TL_API int tl_stream_close(tl_stream_t *s);
TL_API int tl_stream_is_closing(const tl_stream_t *s);
/* Wait until the connection is gone (connection_lost ran). */
TL_API int tl_stream_wait_closed(tl_stream_t *s);
TL_API int tl_stream_wait_closed_future(tl_stream_t *s, tl_future_t **out);
/* Close if needed and release the handle: a pending read or drain (of
 * another task, or a future form) fails with TL_ECLOSED; wait_closed
 * futures still complete when the connection ends. NULL is ignored. On a
 * handler's stream (start_server) this only closes it: tulip frees it when
 * the handler returns. */
TL_API void tl_stream_free(tl_stream_t *s);

/* asyncio's StreamWriter.start_tls, in a task: drain what was written,
 * upgrade the stream's connection to TLS (tls.h's tl_start_tls) and wait
 * for the handshake; the stream then reads and writes through TLS. Bytes
 * already buffered in the reader are an error (TL_ESTATE: they arrived
 * before the handshake), as is a write during the upgrade; a second
 * upgrade at once is TL_EBUSY. A failed upgrade ends the stream with the
 * handshake's error (TL_ECERTVERIFY...), a cancelled one with
 * TL_ECONNABORTED. TL_ENOTASK outside a task. */
TL_API int tl_stream_start_tls(tl_stream_t *s, const struct tl_tls_options *opts);
TL_API int tl_stream_start_tls_future(tl_stream_t *s,
                                      const struct tl_tls_options *opts,
                                      tl_future_t **out);

/* The transport under the stream (peername, sockname...), borrowed. */
TL_API tl_transport_t *tl_stream_transport(const tl_stream_t *s);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_STREAM_H */
