/*
 * The transport base (asyncio's BaseTransport and the flow-control mixin):
 * what every kind of transport shares, and the public tl_transport_*
 * functions, which check their arguments, the thread and the state in one
 * place and dispatch through the kind's table (transport_int.h).
 *
 * Callback order. connection_made is scheduled when the transport is made
 * and connection_lost when it ends (tl__transport_lost); the ready queue
 * is FIFO, so made always runs first, lost last and once. The kind starts
 * reading only after made ran (vt->made), so data_received cannot come
 * first either.
 *
 * Lifetime. The loop holds one reference from init until connection_lost
 * ran; users add theirs (tl_transport_ref). Each transport also holds a
 * reference on its loop, so a user reference may outlive the loop.
 *
 * Loop close. The live transports are on a per-loop list hung in the
 * netstack record (tl__netloop_t.transports). When the loop closes, the
 * queued callbacks are discarded first (the base schedules with plain
 * call_soon: a discarded entry owns nothing, the list does), then
 * close_transports runs the closers (servers' listeners), tears down each
 * transport still live and runs its connection_lost (TL_ECLOSED, or the
 * error it had already ended with), after a connection_made that never got
 * to run, so the protocol can free what it owns.
 */
#include <stdint.h>
#include <string.h>

#include "../core/alloc.h"
#include "../loop/loop_int.h"
#include "transport_int.h"

typedef struct tl__transports {
    tl_transport_t *head;
    tl__closer_t *closers;
} tl__transports_t;

enum { DEFAULT_HIGH = 64 * 1024 };

/* ---- the loop's list -------------------------------------------------- */

static void close_transports(tl_loop_t *loop, void *data);

static int transports_of(tl_loop_t *loop, tl__transports_t **out) {
    tl__netloop_t *nl;
    int rc = tl__netloop(loop, &nl);
    if (rc)
        return rc;
    if (nl->transports == NULL) {
        tl__transports_t *ts = tl__calloc(1, sizeof(*ts));
        if (ts == NULL)
            return TL_ENOMEM;
        nl->transports = ts;
        nl->close_transports = close_transports;
    }
    *out = nl->transports;
    return 0;
}


/* The list is reached through t, not the loop: while the loop closes its
 * extension slot is already cleared. */
static void unlink_transport(tl_transport_t *t) {
    tl__transports_t *ts = t->list;
    if (t->prev)
        t->prev->next = t->next;
    else if (ts && ts->head == t)
        ts->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    t->list = NULL;
}

int tl__transport_add_closer(tl_loop_t *loop, tl__closer_t *c) {
    tl__transports_t *ts;
    int rc = transports_of(loop, &ts);
    if (rc)
        return rc;
    c->list = ts;
    c->prev = NULL;
    c->next = ts->closers;
    if (ts->closers)
        ts->closers->prev = c;
    ts->closers = c;
    return 0;
}

void tl__transport_remove_closer(tl_loop_t *loop, tl__closer_t *c) {
    (void)loop;
    tl__transports_t *ts = c->list;
    if (c->prev)
        c->prev->next = c->next;
    else if (ts && ts->closers == c)
        ts->closers = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->list = NULL;
}

/* ---- references ------------------------------------------------------- */

static void transport_free(tl_transport_t *t) {
    tl_loop_t *loop = t->loop;
    if (t->vt->destroy)
        t->vt->destroy(t);
    tl__free(t);
    tl_loop_unref(loop);
}

static void release(tl_transport_t *t) {
    if (--t->refs == 0)
        transport_free(t);
}

int tl__transport_check(const tl_transport_t *t) {
    if (t == NULL)
        return TL_EINVAL;
    if (TL__UNLIKELY(t->loop->owner != tl__thread_self()))
        return TL_EWRONGTHREAD;
    return 0;
}

int tl_transport_ref(tl_transport_t *t) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (t->lost_ran)
        return TL_ECLOSED;
    t->refs++;
    return 0;
}

int tl_transport_unref(tl_transport_t *t) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    /* Only users' references can be dropped here: the loop's one is
     * there until connection_lost returned (not just began: a callback
     * that drops a reference it never took must not free t under
     * run_lost). */
    if (t->refs <= (t->loop_ref ? 1 : 0))
        return TL_EINVAL;
    release(t);
    return 0;
}

tl_loop_t *tl_transport_get_loop(const tl_transport_t *t) {
    return t ? t->loop : NULL;
}

/* ---- setting up -------------------------------------------------------- */

static int copy_protocol(tl_protocol_t *dst, const tl_protocol_t *src) {
    if (src == NULL)
        return TL_EINVAL;
    size_t n = src->size ? src->size : sizeof(*src);
    if (n < sizeof(size_t))
        return TL_EINVAL;
    memset(dst, 0, sizeof(*dst));
    memcpy(dst, src, n < sizeof(*dst) ? n : sizeof(*dst));
    dst->size = sizeof(*dst);
    return 0;
}

int tl__transport_init(tl_transport_t *t, const tl__transport_vt_t *vt,
                       tl_loop_t *loop, const tl_protocol_t *proto,
                       void *proto_ctx) {
    int rc = copy_protocol(&t->proto, proto);
    if (rc)
        return rc;
    tl__transports_t *ts;
    if ((rc = transports_of(loop, &ts)) != 0)
        return rc;
    if ((rc = tl_loop_ref(loop)) != 0)
        return rc;
    t->vt = vt;
    t->loop = loop;
    t->proto_user = proto;
    t->proto_ctx = proto_ctx;
    t->refs = 1;
    t->loop_ref = 1;
    t->reading = 1;
    t->high = DEFAULT_HIGH;
    t->low = DEFAULT_HIGH / 4;
    t->list = ts;
    t->prev = NULL;
    t->next = ts->head;
    if (ts->head)
        ts->head->prev = t;
    ts->head = t;
    return 0;
}

void tl__transport_discard(tl_transport_t *t) {
    unlink_transport(t);
    tl_loop_unref(t->loop);
}

static void run_made(tl_transport_t *t) {
    t->made = 1;
    if (t->proto.connection_made)
        t->proto.connection_made(t, t->proto_ctx);
}

static void made_cb(void *ctx) {
    tl_transport_t *t = ctx;
    if (t->made)
        return;
    run_made(t);
    if (!t->closing && t->vt->made)
        t->vt->made(t);
}

int tl__transport_schedule_made(tl_transport_t *t) {
    int rc = tl_loop_call_soon(t->loop, made_cb, t, NULL);
    if (rc == 0)
        t->made_scheduled = 1;
    return rc;
}

/* connection_lost, then the loop's reference goes. */
static void run_lost(tl_transport_t *t) {
    if (t->lost_ran)
        return;
    if (!t->made)
        run_made(t); /* the protocol always sees made first */
    t->lost_ran = 1;
    t->closing = 1;
    t->lost = 1;
    if (t->proto.connection_lost)
        t->proto.connection_lost(t, t->lost_error, t->proto_ctx);
    unlink_transport(t);
    if (t->server)
        tl__server_conn_lost(t);
    t->loop_ref = 0;
    release(t);
}

static void lost_cb(void *ctx) {
    run_lost(ctx);
}

void tl__transport_lost(tl_transport_t *t, int error) {
    if (t->lost)
        return;
    t->lost = 1;
    t->closing = 1;
    t->lost_error = error;
    if (tl_loop_call_soon(t->loop, lost_cb, t, NULL) != 0)
        /* No memory for the queue entry: the transport stays on the
         * loop's list and its connection_lost runs when the loop closes. */
        tl__loop_report(t->loop, "could not schedule connection_lost",
                        TL_ENOMEM);
}

static void close_transports(tl_loop_t *loop, void *data) {
    (void)loop;
    tl__transports_t *ts = data;
    while (ts->closers) {
        tl__closer_t *c = ts->closers;
        ts->closers = c->next;
        if (ts->closers)
            ts->closers->prev = NULL;
        c->prev = c->next = NULL;
        c->list = NULL;
        c->close(c);
    }
    while (ts->head) {
        tl_transport_t *t = ts->head;
        if (!t->lost) {
            t->lost = 1;
            t->closing = 1;
            t->lost_error = TL_ECLOSED;
            if (t->vt->teardown)
                t->vt->teardown(t);
        }
        run_lost(t); /* unlinks t */
    }
    /* The record goes with the netloop; nothing may find ts again. */
    tl__netloop_t *nl = loop->ext[TL__EXT_TRANSPORT].data;
    if (nl && nl->transports == ts) {
        nl->transports = NULL;
        nl->close_transports = NULL;
    }
    tl__free(ts);
}

/* ---- flow control and data -------------------------------------------- */

void tl__transport_buffer_changed(tl_transport_t *t) {
    if (t->lost) /* aborted or ended: asyncio drops the buffer silently */
        return;
    if (!t->write_paused) {
        if (t->buffered > t->high) {
            t->write_paused = 1;
            if (t->proto.pause_writing)
                t->proto.pause_writing(t, t->proto_ctx);
        }
    } else if (t->buffered <= t->low) {
        t->write_paused = 0;
        if (t->proto.resume_writing)
            t->proto.resume_writing(t, t->proto_ctx);
    }
}

int tl__transport_data(tl_transport_t *t, const void *data, size_t len) {
    if (TL__LIKELY(t->proto.get_buffer == NULL)) {
        if (t->proto.data_received)
            t->proto.data_received(t, data, len, t->proto_ctx);
        return 0;
    }
    /* One buffer's worth per get_buffer, as asyncio reads: a protocol
     * that closes (or aborts) in buffer_updated gets nothing more. */
    const unsigned char *p = data;
    while (len && !t->closing) {
        void *buf = NULL;
        size_t n = 0;
        int rc = t->proto.get_buffer(t, len, &buf, &n, t->proto_ctx);
        if (rc < 0)
            return rc;
        if (buf == NULL || n == 0)
            return TL_ENOBUFS;
        if (n > len)
            n = len;
        memcpy(buf, p, n);
        p += n;
        len -= n;
        if (t->proto.buffer_updated)
            t->proto.buffer_updated(t, n, t->proto_ctx);
    }
    return 0;
}

/* ---- public methods ---------------------------------------------------- */

/* Why t cannot take a write now, or 0 (after the argument checks). */
static inline int write_state(const tl_transport_t *t) {
    if (TL__UNLIKELY(t->closing))
        return TL_ECLOSED;
    if (TL__UNLIKELY(t->eof_written))
        return TL_ESHUTDOWN;
    if (TL__UNLIKELY(t->vt->write == NULL))
        return TL_ENOTSUP;
    return 0;
}

/* Every case of tl_transport_write but the fast one (kept out of line so
 * the fast path saves no registers). */
static TL__COLD int write_slow(tl_transport_t *t, const void *data,
                               size_t len) {
    int rc = tl__transport_check(t);
    if (TL__UNLIKELY(rc))
        return rc;
    if (TL__UNLIKELY(data == NULL && len))
        return TL_EINVAL;
    if (TL__UNLIKELY((rc = write_state(t)) != 0))
        return rc;
    if (len == 0)
        return 0;
    if (t->write1)
        return t->write1(t, data, len);
    tl_iovec_t iov = {data, len};
    return t->vt->write(t, &iov, 1, NULL, NULL);
}

/* The hot path of a protocol (an echo's data_received): every check of
 * write_slow passes, so straight to the kind's one-buffer write (a tail
 * call). */
int tl_transport_write(tl_transport_t *t, const void *data, size_t len) {
    if (TL__LIKELY(t != NULL && t->write1 != NULL && data != NULL &&
                   len != 0 && !t->closing && !t->eof_written &&
                   t->loop->owner == tl__thread_self()))
        return t->write1(t, data, len);
    return write_slow(t, data, len);
}

int tl_transport_writev(tl_transport_t *t, const tl_iovec_t *iov, size_t n) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (iov == NULL && n)
        return TL_EINVAL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if ((iov[i].base == NULL && iov[i].len) || iov[i].len > SIZE_MAX - total)
            return TL_EINVAL; /* no memory, or lengths past SIZE_MAX */
        total += iov[i].len;
    }
    if ((rc = write_state(t)) != 0)
        return rc;
    if (total == 0)
        return 0;
    return t->vt->write(t, iov, n, NULL, NULL);
}

int tl_transport_write_take(tl_transport_t *t, void *data, size_t len,
                            tl_destructor_t free_fn) {
    int rc = tl__transport_check(t);
    if (rc == 0 && data == NULL && len)
        rc = TL_EINVAL;
    if (rc == 0)
        rc = write_state(t);
    if (rc || len == 0) {
        if (free_fn && data)
            free_fn(data);
        return rc;
    }
    tl_iovec_t iov = {data, len};
    /* The kind frees data with free_fn on every path, errors included. */
    return t->vt->write(t, &iov, 1, data, free_fn);
}

int tl_transport_write_eof(tl_transport_t *t) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (t->closing)
        return TL_ECLOSED;
    if (t->vt->write_eof == NULL ||
        (t->vt->can_write_eof && !t->vt->can_write_eof(t)))
        return TL_ENOTSUP;
    if (t->eof_written)
        return 0;
    if ((rc = t->vt->write_eof(t)) == 0)
        t->eof_written = 1;
    return rc;
}

int tl_transport_can_write_eof(const tl_transport_t *t) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (t->vt->write_eof == NULL)
        return 0;
    return t->vt->can_write_eof ? t->vt->can_write_eof(t) : 1;
}

int tl_transport_close(tl_transport_t *t) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (t->closing)
        return 0;
    t->closing = 1;
    return t->vt->close ? t->vt->close(t) : TL_ENOTSUP;
}

int tl_transport_abort(tl_transport_t *t) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (t->lost)
        return 0;
    t->closing = 1;
    return t->vt->abort ? t->vt->abort(t) : TL_ENOTSUP;
}

int tl_transport_is_closing(const tl_transport_t *t) {
    if (t == NULL)
        return TL_EINVAL;
    return t->closing;
}

int tl_transport_pause_reading(tl_transport_t *t) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (t->closing)
        return TL_ECLOSED;
    if (t->vt->set_reading == NULL)
        return TL_ENOTSUP;
    if (!t->reading)
        return 0;
    if ((rc = t->vt->set_reading(t, 0)) == 0)
        t->reading = 0;
    return rc;
}

int tl_transport_resume_reading(tl_transport_t *t) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (t->closing)
        return TL_ECLOSED;
    if (t->vt->set_reading == NULL)
        return TL_ENOTSUP;
    if (t->reading)
        return 0;
    t->reading = 1; /* before: the kind may deliver buffered data now */
    if ((rc = t->vt->set_reading(t, 1)) != 0)
        t->reading = 0;
    return rc;
}

int tl_transport_is_reading(const tl_transport_t *t) {
    if (t == NULL)
        return TL_EINVAL;
    return t->vt->set_reading && t->reading && !t->closing;
}

int tl_transport_set_write_buffer_limits(tl_transport_t *t, int64_t high,
                                         int64_t low) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (high < -1 || low < -1)
        return TL_EINVAL;
    if (high == -1 && low > INT64_MAX / 4)
        return TL_EINVAL; /* 4 x low does not fit */
    if (high == -1)
        high = low == -1 ? DEFAULT_HIGH : 4 * low;
    if (low == -1)
        low = high / 4;
    if (high < low)
        return TL_EINVAL;
    if (t->lost_ran)
        return TL_ECLOSED;
    t->high = (size_t)high;
    t->low = (size_t)low;
    tl__transport_buffer_changed(t);
    return 0;
}

int tl_transport_get_write_buffer_limits(const tl_transport_t *t,
                                         size_t *high, size_t *low) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (high == NULL && low == NULL)
        return TL_EINVAL;
    if (high)
        *high = t->high;
    if (low)
        *low = t->low;
    return 0;
}

size_t tl_transport_get_write_buffer_size(const tl_transport_t *t) {
    return t ? t->buffered : 0;
}

/* get_peername (peer 1) and get_sockname (peer 0). */
static int get_addr(const tl_transport_t *t, int peer, tl_sockaddr_t *out) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (t->vt->getaddr == NULL)
        return TL_ENOTSUP;
    if (t->lost)
        return TL_ECLOSED;
    return t->vt->getaddr(t, peer, out);
}

int tl_transport_get_peername(const tl_transport_t *t, tl_sockaddr_t *out) {
    return get_addr(t, 1, out);
}

int tl_transport_get_sockname(const tl_transport_t *t, tl_sockaddr_t *out) {
    return get_addr(t, 0, out);
}

int tl_transport_get_fileno(const tl_transport_t *t, tl_fd_t *out) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (t->vt->fileno == NULL)
        return TL_ENOTSUP;
    if (t->lost)
        return TL_ECLOSED;
    return t->vt->fileno(t, out);
}

int tl_transport_set_protocol(tl_transport_t *t, const tl_protocol_t *proto,
                              void *ctx) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (t->lost_ran)
        return TL_ECLOSED;
    tl_protocol_t copy;
    if ((rc = copy_protocol(&copy, proto)) != 0)
        return rc;
    t->proto = copy;
    t->proto_user = proto;
    t->proto_ctx = ctx;
    return 0;
}

int tl_transport_get_protocol(const tl_transport_t *t,
                              const tl_protocol_t **proto, void **ctx) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (proto == NULL && ctx == NULL)
        return TL_EINVAL;
    if (proto)
        *proto = t->proto_user;
    if (ctx)
        *ctx = t->proto_ctx;
    return 0;
}

int tl_transport_sendto(tl_transport_t *t, const void *data, size_t len,
                        const tl_sockaddr_t *to) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (data == NULL && len)
        return TL_EINVAL;
    if (t->vt->sendto == NULL)
        return TL_ENOTSUP;
    if (t->closing)
        return TL_ECLOSED;
    return t->vt->sendto(t, data, len, to);
}

int tl_transport_sendfile(tl_transport_t *t, tl_fd_t fd, int64_t offset,
                          size_t count, tl_future_t **out) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (out == NULL || offset < 0)
        return TL_EINVAL;
    if (t->vt->sendfile == NULL)
        return TL_ENOTSUP;
    if (t->closing)
        return TL_ECLOSED;
    if (t->eof_written)
        return TL_ESHUTDOWN;
    return t->vt->sendfile(t, fd, offset, count, out);
}
