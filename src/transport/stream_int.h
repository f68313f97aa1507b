/*
 * The stream object (asyncio's StreamReader + StreamReaderProtocol +
 * StreamWriter in one), shared by stream.c (buffer, reads, writes,
 * closing: the protocol side) and stream_server.c (open_connection,
 * start_server: where streams come from).
 *
 * Lifetime: a stream is reference counted (loop thread only, plain int):
 *   - the owner's reference: the caller of open_connection (dropped by
 *     tl_stream_free), or the handler task of a server connection (dropped
 *     when the handler returns);
 *   - the transport's, from the moment the stream knows its transport
 *     (connection_made, or open_connection's result) until connection_lost,
 *     because the transport calls the protocol with the stream as ctx until
 *     then;
 *   - one per task suspended in a sequential read, drain or wait_closed,
 *     so another task's tl_stream_free cannot pull the memory from under it.
 */
#ifndef TL_STREAM_INT_H
#define TL_STREAM_INT_H

#include "tulip/stream.h"

enum { TL__RD_READ = 1, TL__RD_EXACTLY, TL__RD_UNTIL, TL__RD_LINE };

/* The one read that may wait. */
typedef struct tl__read_op {
    tl_future_t *fut; /* the stream's reference; NULL: no read waits */
    int kind;
    int hold;         /* sequential form: consume when the task resumes */
    unsigned char *dst;
    size_t n;         /* read: at most; exactly: n; until/line: cap */
    const unsigned char *sep;
    size_t seplen;
    size_t searched;  /* until/line: bytes known to hold no separator start */
    unsigned char sepbuf[32]; /* short separators are copied here */
    unsigned char *sepheap;   /* longer ones here */
} tl__read_op_t;

struct tl_stream {
    tl_loop_t *loop;
    tl_transport_t *t; /* NULL before the transport is known and once lost */
    int refs;
    size_t limit;

    /* Received bytes wait in buf[start, end) (a compacting buffer). */
    unsigned char *buf;
    size_t cap, start, end;

    int err;           /* the error the connection ended with (asyncio's
                          set_exception), or 0 */
    unsigned eof : 1;       /* the peer sent EOF, or the connection ended */
    unsigned lost : 1;      /* connection_lost ran */
    unsigned tref : 1;      /* the transport's reference is held */
    unsigned closed : 1;    /* tl_stream_close (or free) was called */
    unsigned released : 1;  /* the owner's reference was dropped */
    unsigned paused : 1;    /* the stream paused reading (buffer full) */
    unsigned wpaused : 1;   /* the transport paused writing */
    unsigned upgrading : 1; /* tl_stream_start_tls: t went to the TLS engine
                               (s->t NULL) and the TLS transport's
                               connection_made has not run yet; the
                               transport's reference passes to it */

    tl__read_op_t rd;
    /* A sequential read completed but its task has not resumed yet: the
     * bytes it took are still at the front of the buffer, consumed when the
     * task resumes, or given back if the task was cancelled meanwhile. */
    tl_future_t *held_fut;
    size_t held;
    size_t partial;    /* bytes of the last read that ended TL_EINCOMPLETE */

    tl_future_t *drain;     /* the one waiting drain (the stream's ref) */
    tl_handle_t drain_yield; /* drain on a closing transport: one yield */
    tl_future_t **closers;  /* wait_closed futures (the stream's refs) */
    size_t nclosers, closers_cap;

    /* Server connections (stream_server.c). */
    struct tl__stream_server *server; /* until the handler task is spawned */
    tl_stream_handler_t handler;
    void *handler_ctx;
    tl_task_t *task;
    unsigned task_started : 1;
    unsigned task_spawned : 1;
};

/* The protocol of every stream (ctx: the stream). */
extern const tl_protocol_t tl__stm_protocol;

/* A new stream with one reference (the owner's); limit 0: 64 KiB. */
int tl__stm_new(tl_loop_t *loop, size_t limit, tl_stream_t **out);
void tl__stm_ref(tl_stream_t *s);
void tl__stm_unref(tl_stream_t *s);
/* The stream learns its transport (takes the transport's reference; while
 * upgrading, the TLS transport takes over the one held). */
void tl__stm_attach(tl_stream_t *s, tl_transport_t *t);
/* The connection ended with error (0: clean) without a connection_lost
 * to say so (an upgrade that failed, a loop closed mid-upgrade): what
 * connection_lost does. */
void tl__stm_lost(tl_stream_t *s, int error);
/* Close (if open), fail what waits with TL_ECLOSED, drop the owner's
 * reference. Idempotent. */
void tl__stm_release(tl_stream_t *s);

/* stream_server.c: a server connection's transport is known (spawn the
 * handler task), and the connection ended. */
void tl__stm_server_made(tl_stream_t *s);
void tl__stm_server_lost(tl_stream_t *s);

#endif
