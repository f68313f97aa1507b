/*
 * Streams (asyncio's streams.py): StreamReader, StreamReaderProtocol and
 * StreamWriter in one object over a transport.
 *
 * One mechanism: a read that cannot finish at once becomes the stream's
 * one pending read op, a future completed from the protocol callbacks
 * (data_received, eof_received, connection_lost) by copying from the
 * stream's buffer into the caller's. The sequential forms try the buffer
 * first (no allocation when the bytes are there) and otherwise tl_await
 * that future.
 *
 * Semantics, checked against CPython 3.12 streams.py:
 *   - An error the connection ended with (asyncio's set_exception) is
 *     returned by the next read even when bytes are still buffered, as
 *     asyncio raises reader._exception before looking at the buffer. A
 *     clean end (connection_lost(0)) is EOF: buffered bytes, then 0.
 *   - read(n): what is buffered, up to n; waits only when nothing is; 0
 *     at EOF and for n == 0.
 *   - readexactly at EOF consumes the partial bytes into buf and returns
 *     TL_EINCOMPLETE (IncompleteReadError.partial).
 *   - readuntil: the separator may start at most `limit` bytes in
 *     (TL_ELIMITOVERRUN otherwise, the data stays); at EOF without it,
 *     TL_EINCOMPLETE with what was left (consumed).
 *   - readline: at EOF, the rest without a newline and 0; on overrun the
 *     line is dropped through its newline when the newline was seen, else
 *     the whole buffer is dropped (the rest of the long line arrives later),
 *     and TL_ELIMITOVERRUN (asyncio's ValueError).
 *   - Reading pauses when the buffer holds `limit` bytes (asyncio pauses at
 *     2 x limit) and resumes when a read takes it below; a read that must
 *     wait resumes it (asyncio's _wait_for_data), so a readexactly of more
 *     than limit bytes still completes.
 *   - eof_received keeps the connection half-open (the writer may go on).
 *   - drain: the connection's error first; then, on a closing transport,
 *     one loop iteration (asyncio's sleep(0)) before looking again; after
 *     the loss TL_ECLOSED if we closed it, TL_ECONNRESET if not (asyncio's
 *     "Connection lost"); waits while the transport paused writing; a loss
 *     without error while waiting completes it.
 *   - wait_closed completes in connection_lost, with its error if any.
 *   - A cancelled read consumes nothing: its bytes stay buffered. A task
 *     cancelled after its read completed but before it resumed gives the
 *     bytes back (the stream holds them until the task resumes).
 *   - tl_stream_free fails a pending read or drain with TL_ECLOSED (not a
 *     cancellation: the task that waited was not cancelled).
 */
#include "stream_int.h"

#include <string.h>

#include "../core/alloc.h"
#include "../loop/loop_int.h"

#define DEFAULT_LIMIT ((size_t)64 * 1024)

static int check(const tl_stream_t *s) {
    return s ? tl__loop_check(s->loop) : TL_EINVAL;
}

static size_t avail(const tl_stream_t *s) { return s->end - s->start; }

/* ---- lifetime ---------------------------------------------------------- */

int tl__stm_new(tl_loop_t *loop, size_t limit, tl_stream_t **out) {
    tl_stream_t *s = tl__calloc(1, sizeof(*s));
    if (s == NULL)
        return TL_ENOMEM;
    s->loop = loop;
    s->refs = 1;
    s->limit = limit ? limit : DEFAULT_LIMIT;
    *out = s;
    return 0;
}

void tl__stm_ref(tl_stream_t *s) { s->refs++; }

static void clear_op(tl_stream_t *s) {
    tl_future_unref(s->rd.fut);
    tl__free(s->rd.sepheap);
    memset(&s->rd, 0, sizeof s->rd);
}

static void clear_drain(tl_stream_t *s) {
    tl_future_unref(s->drain);
    s->drain = NULL;
    if (s->drain_yield) {
        tl_handle_cancel(s->loop, s->drain_yield);
        s->drain_yield = 0;
    }
}

void tl__stm_unref(tl_stream_t *s) {
    if (--s->refs > 0)
        return;
    if (s->rd.fut)
        clear_op(s);
    clear_drain(s);
    for (size_t i = 0; i < s->nclosers; i++)
        tl_future_unref(s->closers[i]);
    tl__free(s->closers);
    tl__free(s->buf);
    tl__free(s);
}

void tl__stm_attach(tl_stream_t *s, tl_transport_t *t) {
    if (s->upgrading) { /* the TLS transport after tl_stream_start_tls */
        s->upgrading = 0;
        s->t = t;
        s->wpaused = 0;
        if (s->closed) /* closed while the handshake ran */
            tl_transport_close(t);
        return;
    }
    if (s->tref || s->lost)
        return;
    s->t = t;
    s->tref = 1;
    s->refs++;
}

/* Complete a future the stream made; failures (no memory to schedule the
 * callbacks, a closing loop) leave it pending, which only a closing loop
 * should ever see. */
static int complete(tl_future_t *f, int rc, size_t count) {
    return rc == 0 ? tl_future_set_result(f, (void *)(uintptr_t)count, NULL)
                   : tl_future_set_error(f, rc, NULL);
}

void tl__stm_release(tl_stream_t *s) {
    if (s->released)
        return;
    s->released = 1;
    s->closed = 1;
    if (s->t && !tl_transport_is_closing(s->t))
        tl_transport_close(s->t);
    if (s->rd.fut) {
        if (!tl_future_done(s->rd.fut))
            complete(s->rd.fut, TL_ECLOSED, 0);
        clear_op(s);
    }
    if (s->drain) {
        if (!tl_future_done(s->drain))
            complete(s->drain, TL_ECLOSED, 0);
        clear_drain(s);
    }
    tl__stm_unref(s);
}

void tl_stream_free(tl_stream_t *s) {
    if (s == NULL || tl__loop_check(s->loop) == TL_EWRONGTHREAD)
        return;
    if (s->handler) { /* a handler's stream: released when it returns */
        tl_stream_close(s);
        return;
    }
    tl__stm_release(s);
}

/* ---- the buffer -------------------------------------------------------- */

static void maybe_resume(tl_stream_t *s) {
    if (s->paused && s->t && avail(s) < s->limit) {
        s->paused = 0;
        tl_transport_resume_reading(s->t);
    }
}

/* Consume k bytes from the front. */
static void take(tl_stream_t *s, size_t k) {
    s->start += k;
    if (s->start == s->end)
        s->start = s->end = 0;
    maybe_resume(s);
}

static int append(tl_stream_t *s, const void *data, size_t len) {
    if (s->cap - s->end < len && s->start) {
        memmove(s->buf, s->buf + s->start, avail(s));
        s->end -= s->start;
        s->start = 0;
    }
    if (s->cap - s->end < len) {
        size_t need = s->end + len;
        if (need < s->end)
            return TL_ENOMEM;
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < need) {
            if (cap > SIZE_MAX / 2)
                return TL_ENOMEM;
            cap *= 2;
        }
        unsigned char *b = tl__realloc(s->buf, cap);
        if (b == NULL)
            return TL_ENOMEM;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->end, data, len);
    s->end += len;
    return 0;
}

static size_t find(const unsigned char *h, size_t hl, const unsigned char *n,
                   size_t nl) {
    if (hl < nl)
        return SIZE_MAX;
    const unsigned char *p = h, *last = h + (hl - nl);
    while (p <= last) {
        p = memchr(p, n[0], (size_t)(last - p) + 1);
        if (p == NULL)
            return SIZE_MAX;
        if (memcmp(p, n, nl) == 0)
            return (size_t)(p - h);
        p++;
    }
    return SIZE_MAX;
}

/* ---- reads ------------------------------------------------------------- */

static void copy(unsigned char *dst, const unsigned char *src, size_t n) {
    if (n)
        memcpy(dst, src, n);
}

/* Run op against the buffer. 1: finished with *rc, *count bytes copied to
 * dst (or the partial count) and *consume bytes to take from the front;
 * 0: it must wait for more. Nothing is consumed here. */
static int op_try(tl_stream_t *s, tl__read_op_t *op, int *rc, size_t *count,
                  size_t *consume) {
    size_t av = avail(s);
    const unsigned char *b = s->buf ? s->buf + s->start : NULL;
    *rc = 0;
    *count = *consume = 0;
    if (s->err) {
        *rc = s->err;
        return 1;
    }
    switch (op->kind) {
    case TL__RD_READ:
        if (op->n == 0)
            return 1;
        if (av == 0)
            return s->eof;
        *count = *consume = av < op->n ? av : op->n;
        copy(op->dst, b, *count);
        return 1;
    case TL__RD_EXACTLY:
        if (av >= op->n) {
            *count = *consume = op->n;
        } else if (s->eof) {
            *count = *consume = av;
            *rc = TL_EINCOMPLETE;
        } else {
            return 0;
        }
        copy(op->dst, b, *count);
        return 1;
    default: { /* until, line */
        int line = op->kind == TL__RD_LINE;
        size_t i = b ? find(b + op->searched, av - op->searched, op->sep, op->seplen)
                     : SIZE_MAX;
        if (i != SIZE_MAX) {
            size_t isep = op->searched + i, total = isep + op->seplen;
            if (isep > s->limit) {
                *rc = TL_ELIMITOVERRUN;
                *consume = line ? total : 0;
            } else if (total > op->n) {
                *rc = TL_ENOBUFS;
            } else {
                *count = *consume = total;
                copy(op->dst, b, total);
            }
            return 1;
        }
        if (av >= op->seplen)
            op->searched = av + 1 - op->seplen;
        if (op->searched > s->limit) {
            *rc = TL_ELIMITOVERRUN;
            *consume = line ? av : 0;
            return 1;
        }
        if (!s->eof)
            return 0;
        if (av > op->n) {
            *rc = TL_ENOBUFS;
            return 1;
        }
        *count = *consume = av;
        copy(op->dst, b, av);
        if (!line)
            *rc = TL_EINCOMPLETE;
        return 1;
    }
    }
}

/* The pending read, if any, after something changed (data, EOF, loss). */
static void deliver(tl_stream_t *s) {
    tl__read_op_t *op = &s->rd;
    if (op->fut == NULL)
        return;
    if (tl_future_done(op->fut)) { /* cancelled: it consumed nothing */
        clear_op(s);
        return;
    }
    int rc;
    size_t count, consume;
    if (!op_try(s, op, &rc, &count, &consume))
        return;
    if (complete(op->fut, rc, count))
        return; /* still pending; tried again at the next event */
    if (rc == TL_EINCOMPLETE)
        s->partial = count;
    if (op->hold) {
        s->held_fut = op->fut;
        s->held = consume;
    }
    clear_op(s);
    if (s->held_fut == NULL)
        take(s, consume);
}

/* Start a read: finish it at once if the buffer allows (*out = NULL, the
 * outcome returned, *count set), or register it as the pending read and
 * give the caller a reference to its future (*out). */
static int start_read(tl_stream_t *s, const tl__read_op_t *op, int hold,
                      tl_future_t **out, size_t *count) {
    *out = NULL;
    *count = 0;
    if (s->rd.fut && tl_future_done(s->rd.fut))
        clear_op(s); /* a cancelled one */
    if (s->rd.fut || s->held_fut)
        return TL_EBUSY;
    tl__read_op_t now = *op;
    int rc;
    size_t consume;
    if (op_try(s, &now, &rc, count, &consume)) {
        if (rc == TL_EINCOMPLETE)
            s->partial = *count;
        take(s, consume);
        return rc;
    }
    tl_future_t *f;
    if ((rc = tl_future_new(s->loop, &f)))
        return rc;
    s->rd = now;
    if (op->sep) {
        unsigned char *sep = s->rd.sepbuf;
        if (op->seplen > sizeof s->rd.sepbuf &&
            (sep = s->rd.sepheap = tl__malloc(op->seplen)) == NULL) {
            memset(&s->rd, 0, sizeof s->rd);
            tl_future_unref(f);
            return TL_ENOMEM;
        }
        memcpy(sep, op->sep, op->seplen);
        s->rd.sep = sep;
    }
    s->rd.hold = hold;
    s->rd.fut = f;
    tl_future_ref(f);
    *out = f;
    if (s->paused && s->t) { /* it needs more than the buffer holds */
        s->paused = 0;
        tl_transport_resume_reading(s->t);
    }
    return 0;
}

static int read_future(tl_stream_t *s, const tl__read_op_t *op,
                       tl_future_t **out) {
    tl_future_t *f;
    size_t count;
    int rc = start_read(s, op, 0, &f, &count);
    if (f) {
        *out = f;
        return 0;
    }
    if (rc == TL_EBUSY || rc == TL_ENOMEM)
        return rc;
    /* Done at once: a done future. The bytes are taken already, so a
     * failure to make it loses them; only a full memory can cause that. */
    int outcome = rc;
    if ((rc = tl_future_new(s->loop, &f)) == 0 &&
        (rc = complete(f, outcome, count)) != 0)
        tl_future_unref(f);
    if (rc == 0)
        *out = f;
    return rc;
}

/* The sequential form: tl_await over the read's future, when it waits. */
static int read_seq(tl_stream_t *s, const tl__read_op_t *op, size_t *got) {
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    tl_future_t *f;
    size_t count;
    int rc = start_read(s, op, 1, &f, &count);
    if (f) {
        void *v = NULL;
        tl__stm_ref(s);
        rc = tl_await(f, &v);
        if (s->held_fut == f) {
            size_t k = s->held;
            s->held_fut = NULL;
            s->held = 0;
            if (rc != TL_ECANCELLED)
                take(s, k);
            /* else: cancelled after the read completed: nothing consumed */
        }
        if (s->rd.fut == f) { /* still registered: cancelled, or the await
                                 failed before waiting */
            if (!tl_future_done(f))
                tl_future_cancel(f, NULL);
            clear_op(s);
        }
        count = rc == 0 ? (size_t)(uintptr_t)v
                        : rc == TL_EINCOMPLETE ? s->partial : 0;
        tl_future_unref(f);
        tl__stm_unref(s);
    }
    if (got)
        *got = count;
    return rc;
}

static int check_read(const tl_stream_t *s, const void *buf, size_t n) {
    int rc = check(s);
    if (rc == 0 && buf == NULL && n)
        rc = TL_EINVAL;
    return rc;
}

int tl_stream_read(tl_stream_t *s, void *buf, size_t n, size_t *got) {
    int rc = check_read(s, buf, n);
    if (rc)
        return rc;
    tl__read_op_t op = {.kind = TL__RD_READ, .dst = buf, .n = n};
    return read_seq(s, &op, got);
}

int tl_stream_readexactly(tl_stream_t *s, void *buf, size_t n, size_t *got) {
    int rc = check_read(s, buf, n);
    if (rc)
        return rc;
    tl__read_op_t op = {.kind = TL__RD_EXACTLY, .dst = buf, .n = n};
    return read_seq(s, &op, got);
}

static int until_op(tl_stream_t *s, int kind, const void *sep, size_t seplen,
                    void *buf, size_t cap, tl__read_op_t *op) {
    int rc = check_read(s, buf, cap);
    if (rc == 0 && (sep == NULL || seplen == 0))
        rc = TL_EINVAL;
    *op = (tl__read_op_t){.kind = kind, .dst = buf, .n = cap, .sep = sep,
                          .seplen = seplen};
    return rc;
}

int tl_stream_readuntil(tl_stream_t *s, const void *sep, size_t seplen,
                        void *buf, size_t cap, size_t *got) {
    tl__read_op_t op;
    int rc = until_op(s, TL__RD_UNTIL, sep, seplen, buf, cap, &op);
    return rc ? rc : read_seq(s, &op, got);
}

int tl_stream_readline(tl_stream_t *s, void *buf, size_t cap, size_t *got) {
    tl__read_op_t op;
    int rc = until_op(s, TL__RD_LINE, "\n", 1, buf, cap, &op);
    return rc ? rc : read_seq(s, &op, got);
}

int tl_stream_read_future(tl_stream_t *s, void *buf, size_t n,
                          tl_future_t **out) {
    int rc = check_read(s, buf, n);
    if (rc || out == NULL)
        return rc ? rc : TL_EINVAL;
    tl__read_op_t op = {.kind = TL__RD_READ, .dst = buf, .n = n};
    return read_future(s, &op, out);
}

int tl_stream_readexactly_future(tl_stream_t *s, void *buf, size_t n,
                                 tl_future_t **out) {
    int rc = check_read(s, buf, n);
    if (rc || out == NULL)
        return rc ? rc : TL_EINVAL;
    tl__read_op_t op = {.kind = TL__RD_EXACTLY, .dst = buf, .n = n};
    return read_future(s, &op, out);
}

int tl_stream_readuntil_future(tl_stream_t *s, const void *sep, size_t seplen,
                               void *buf, size_t cap, tl_future_t **out) {
    tl__read_op_t op;
    int rc = until_op(s, TL__RD_UNTIL, sep, seplen, buf, cap, &op);
    if (rc || out == NULL)
        return rc ? rc : TL_EINVAL;
    return read_future(s, &op, out);
}

size_t tl_stream_partial_count(const tl_stream_t *s) {
    return s ? s->partial : 0;
}

int tl_stream_at_eof(const tl_stream_t *s) {
    int rc = check(s);
    if (rc)
        return rc;
    return s->eof && avail(s) == s->held;
}

/* ---- the protocol ------------------------------------------------------ */

static void p_made(tl_transport_t *t, void *ctx) {
    tl_stream_t *s = ctx;
    tl__stm_attach(s, t);
    if (s->handler)
        tl__stm_server_made(s);
}

static void p_data(tl_transport_t *t, const void *data, size_t len,
                   void *ctx) {
    tl_stream_t *s = ctx;
    if (s->err)
        return;
    if (append(s, data, len)) {
        s->err = TL_ENOMEM; /* asyncio's MemoryError, for the reader */
        tl_transport_abort(t);
        deliver(s);
        return;
    }
    deliver(s);
    if (!s->paused && s->rd.fut == NULL && avail(s) >= s->limit &&
        tl_transport_pause_reading(t) == 0)
        s->paused = 1;
}

static int p_eof(tl_transport_t *t, void *ctx) {
    (void)t;
    tl_stream_t *s = ctx;
    s->eof = 1;
    deliver(s);
    return 1; /* half-open: the writer may go on (TLS ignores it) */
}

static void p_pause(tl_transport_t *t, void *ctx) {
    (void)t;
    ((tl_stream_t *)ctx)->wpaused = 1;
}

static void p_resume(tl_transport_t *t, void *ctx) {
    (void)t;
    tl_stream_t *s = ctx;
    s->wpaused = 0;
    if (s->drain && !s->drain_yield) {
        if (!tl_future_done(s->drain))
            complete(s->drain, 0, 0);
        clear_drain(s);
    }
}

static void p_lost(tl_transport_t *t, int error, void *ctx) {
    (void)t;
    tl__stm_lost(ctx, error);
}

void tl__stm_lost(tl_stream_t *s, int error) {
    s->lost = 1;
    s->t = NULL;
    s->paused = 0;
    if (error && !s->err)
        s->err = error;
    if (!s->err)
        s->eof = 1;
    deliver(s);
    if (s->drain && !s->drain_yield) {
        if (!tl_future_done(s->drain))
            complete(s->drain, error, 0);
        clear_drain(s);
    }
    for (size_t i = 0; i < s->nclosers; i++) {
        if (!tl_future_done(s->closers[i]))
            complete(s->closers[i], error, 0);
        tl_future_unref(s->closers[i]);
    }
    s->nclosers = 0;
    if (s->handler)
        tl__stm_server_lost(s);
    if (s->tref) {
        s->tref = 0;
        tl__stm_unref(s);
    }
}

const tl_protocol_t tl__stm_protocol = {
    .size = sizeof(tl_protocol_t),
    .connection_made = p_made,
    .data_received = p_data,
    .eof_received = p_eof,
    .connection_lost = p_lost,
    .pause_writing = p_pause,
    .resume_writing = p_resume,
};

/* ---- writing ----------------------------------------------------------- */

/* Why the stream cannot write, or 0. */
static int write_state(const tl_stream_t *s) {
    if (s->closed)
        return TL_ECLOSED;
    if (s->err)
        return s->err;
    if (s->upgrading)
        return TL_ESTATE; /* the TLS handshake runs */
    return s->t ? 0 : TL_ECLOSED;
}

int tl_stream_write(tl_stream_t *s, const void *data, size_t len) {
    int rc = check(s);
    if (rc == 0 && data == NULL && len)
        rc = TL_EINVAL;
    if (rc == 0)
        rc = write_state(s);
    return rc ? rc : tl_transport_write(s->t, data, len);
}

int tl_stream_writelines(tl_stream_t *s, const tl_iovec_t *iov, size_t n) {
    int rc = check(s);
    if (rc == 0 && iov == NULL && n)
        rc = TL_EINVAL;
    if (rc == 0)
        rc = write_state(s);
    return rc ? rc : tl_transport_writev(s->t, iov, n);
}

int tl_stream_write_eof(tl_stream_t *s) {
    int rc = check(s);
    if (rc == 0)
        rc = write_state(s);
    return rc ? rc : tl_transport_write_eof(s->t);
}

int tl_stream_can_write_eof(const tl_stream_t *s) {
    int rc = check(s);
    if (rc)
        return rc;
    return s->t ? tl_transport_can_write_eof(s->t) : 0;
}

/* The drain's outcome now: 1 done (*rc), 0 it must wait. */
static int drain_try(const tl_stream_t *s, int *rc) {
    *rc = 0;
    if (s->err)
        *rc = s->err;
    else if (s->lost || s->t == NULL)
        *rc = s->closed ? TL_ECLOSED : TL_ECONNRESET;
    else if (!s->wpaused)
        return 1;
    else
        return 0;
    return 1;
}

/* The one iteration a drain on a closing transport waits. */
static void drain_yielded(void *ctx) {
    tl_stream_t *s = ctx;
    s->drain_yield = 0;
    int rc = 0;
    if (s->drain == NULL)
        return;
    if (tl_future_done(s->drain)) { /* cancelled */
        clear_drain(s);
    } else if (drain_try(s, &rc)) {
        complete(s->drain, rc, 0);
        clear_drain(s);
    } /* else: paused; resume_writing or connection_lost completes it */
}

static int drain_start(tl_stream_t *s, tl_future_t **out) {
    *out = NULL;
    if (s->drain && tl_future_done(s->drain))
        clear_drain(s);
    if (s->drain)
        return TL_EBUSY;
    tl_future_t *f;
    int rc = tl_future_new(s->loop, &f);
    if (rc)
        return rc;
    int closing = s->err == 0 && s->t && (s->closed || tl_transport_is_closing(s->t));
    if (closing) {
        rc = tl_loop_call_soon(s->loop, drain_yielded, s, &s->drain_yield);
        if (rc) {
            tl_future_unref(f);
            return rc;
        }
    } else {
        int now;
        if (drain_try(s, &now)) {
            if ((rc = complete(f, now, 0))) {
                tl_future_unref(f);
                return rc;
            }
            *out = f;
            return 0;
        }
    }
    s->drain = f;
    tl_future_ref(f);
    *out = f;
    return 0;
}

int tl_stream_drain_future(tl_stream_t *s, tl_future_t **out) {
    int rc = check(s);
    if (rc || out == NULL)
        return rc ? rc : TL_EINVAL;
    return drain_start(s, out);
}

int tl_stream_drain(tl_stream_t *s) {
    int rc = check(s);
    if (rc)
        return rc;
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    if (s->err == 0 && !s->wpaused && s->t && !s->closed &&
        !tl_transport_is_closing(s->t) && (s->drain == NULL || tl_future_done(s->drain)))
        return 0; /* the fast path: nothing to wait for */
    tl_future_t *f;
    if ((rc = drain_start(s, &f)))
        return rc;
    tl__stm_ref(s);
    rc = tl_await(f, NULL);
    if (s->drain == f) { /* cancelled, or the await failed */
        if (!tl_future_done(f))
            tl_future_cancel(f, NULL);
        clear_drain(s);
    }
    tl_future_unref(f);
    tl__stm_unref(s);
    return rc;
}

/* ---- closing ----------------------------------------------------------- */

int tl_stream_close(tl_stream_t *s) {
    int rc = check(s);
    if (rc)
        return rc;
    s->closed = 1;
    if (s->t && !tl_transport_is_closing(s->t))
        return tl_transport_close(s->t);
    return 0;
}

int tl_stream_is_closing(const tl_stream_t *s) {
    int rc = check(s);
    if (rc)
        return rc;
    if (s->upgrading)
        return s->closed;
    return s->closed || s->lost || s->t == NULL || tl_transport_is_closing(s->t) == 1;
}

int tl_stream_wait_closed_future(tl_stream_t *s, tl_future_t **out) {
    int rc = check(s);
    if (rc || out == NULL)
        return rc ? rc : TL_EINVAL;
    tl_future_t *f;
    if ((rc = tl_future_new(s->loop, &f)))
        return rc;
    if (s->lost || s->t == NULL) {
        if ((rc = complete(f, s->lost ? s->err : 0, 0))) {
            tl_future_unref(f);
            return rc;
        }
        *out = f;
        return 0;
    }
    /* Forget the waiters that gave up (cancelled) before adding one. */
    size_t k = 0;
    for (size_t i = 0; i < s->nclosers; i++) {
        if (tl_future_done(s->closers[i]))
            tl_future_unref(s->closers[i]);
        else
            s->closers[k++] = s->closers[i];
    }
    s->nclosers = k;
    void *arr = s->closers;
    if ((rc = tl__grow(&arr, &s->closers_cap, k + 1, sizeof(*s->closers)))) {
        tl_future_unref(f);
        return rc;
    }
    s->closers = arr;
    s->closers[s->nclosers++] = f;
    tl_future_ref(f);
    *out = f;
    return 0;
}

int tl_stream_wait_closed(tl_stream_t *s) {
    int rc = check(s);
    if (rc)
        return rc;
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    if (s->lost)
        return s->err;
    tl_future_t *f;
    if ((rc = tl_stream_wait_closed_future(s, &f)))
        return rc;
    tl__stm_ref(s);
    rc = tl_await(f, NULL);
    tl_future_unref(f);
    tl__stm_unref(s);
    return rc;
}

tl_transport_t *tl_stream_transport(const tl_stream_t *s) {
    return s && tl__loop_check(s->loop) == 0 ? s->t : NULL;
}
