/*
 * The kernel netstack's sending side: try_send, the send queue, sendfile
 * and shutdown_write.
 *
 * The echo hot path is try_send: one send(2), no queue, no watcher change;
 * a stream transport reaches it as tl__ks_send1 (one buffer, one state
 * test, then the syscall).
 * send() is the slow path (the transport calls it for what try_send left);
 * when nothing is queued and the last write was not short it still tries
 * one write at once, so a caller that sends without try_send loses no loop
 * iteration; a completion found there is reported by a call_soon (never
 * inside the caller's call). What stays is written when the socket turns
 * writable; the writer is watched only while something is queued.
 *
 * SIGPIPE: sockets write with sendmsg(MSG_NOSIGNAL). Pipes (and sendfile,
 * which has no such flag) block SIGPIPE in the calling thread around the
 * write and consume a SIGPIPE the write raised, leaving the process's
 * disposition alone (a library must not change it): three extra syscalls
 * per pipe write, none on sockets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "../core/platform.h"
#include "netstack_kernel_int.h"

/* iovecs per write (and the most a datagram may have). */
#define KIOV_MAX 64
/* sendfile bytes per call. */
#define SENDFILE_CHUNK ((size_t)1 << 20)

typedef struct tl__ksendfile {
    int fd;
    int64_t off;
    size_t left;
    size_t *sent;
} tl__ksendfile_t;

/* ---- SIGPIPE-safe writes ---------------------------------------------- */

typedef struct sigpipe_guard {
    sigset_t old;
    int was_pending;
} sigpipe_guard_t;

static void sigpipe_block(sigpipe_guard_t *g) {
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sigpipe_unblock(sigpipe_guard_t *g, int raised) {
    if (raised && !g->was_pending) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* One write of v[0..cnt): bytes written, or -errno. */
static ssize_t kwrite(tl_ns_sock_t *s, struct iovec *v, int cnt,
                      const tl_sockaddr_t *to) {
    ssize_t n;
    if (s->is_socket) {
        struct msghdr m = {0};
        m.msg_iov = v;
        m.msg_iovlen = (size_t)cnt;
        if (to) {
            m.msg_name = (void *)to->u.bytes;
            m.msg_namelen = to->len;
        }
        do
            n = sendmsg(s->fd, &m, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
    }
    sigpipe_guard_t g;
    sigpipe_block(&g);
    do
        n = writev(s->fd, v, cnt);
    while (n < 0 && errno == EINTR);
    int e = n < 0 ? errno : 0;
    sigpipe_unblock(&g, e == EPIPE);
    return n < 0 ? -e : n;
}

static int would_block(ssize_t n) { return n == -EAGAIN || n == -EWOULDBLOCK; }

/* ---- the queue -------------------------------------------------------- */

static void req_init(tl_ns_send_t *req) {
    TL__REQ_NEXT(req) = NULL;
    TL__REQ_IDX(req) = NULL;
    TL__REQ_OFF(req) = NULL;
    TL__REQ_FILE(req) = NULL;
}

static void q_push(tl_ns_sock_t *s, tl_ns_send_t *r) {
    TL__REQ_NEXT(r) = NULL;
    if (s->qtail)
        TL__REQ_NEXT(s->qtail) = r;
    else
        s->qhead = r;
    s->qtail = r;
}

static tl_ns_send_t *q_pop(tl_ns_sock_t *s) {
    tl_ns_send_t *r = s->qhead;
    if (r && (s->qhead = TL__REQ_NEXT(r)) == NULL)
        s->qtail = NULL;
    return r;
}

/* r leaves the queue, done with status (reported by flush_done). */
static void d_push(tl_ns_sock_t *s, tl_ns_send_t *r, int status) {
    tl__ksendfile_t *f = TL__REQ_FILE(r);
    if (f) {
        tl__free(f);
        TL__REQ_FILE(r) = NULL;
    }
    TL__REQ_IDX(r) = (void *)(intptr_t)status;
    TL__REQ_NEXT(r) = NULL;
    if (s->dtail)
        TL__REQ_NEXT(s->dtail) = r;
    else
        s->dhead = r;
    s->dtail = r;
}

/* Run the completions found so far, in order. The caller holds busy. */
static void flush_done(tl_ns_sock_t *s) {
    if (s->done_h) {
        tl_handle_cancel(s->st->loop, s->done_h);
        s->done_h = 0;
    }
    tl_ns_send_t *r;
    while ((r = s->dhead)) {
        if ((s->dhead = TL__REQ_NEXT(r)) == NULL)
            s->dtail = NULL;
        r->done(r, (int)(intptr_t)TL__REQ_IDX(r));
    }
}

void tl__ks_complete_all(tl_ns_sock_t *s, int status) {
    flush_done(s);
    tl_ns_send_t *r;
    while ((r = q_pop(s))) {
        d_push(s, r, status);
        flush_done(s);
    }
}

void tl__ks_req_forget(tl_ns_send_t *req) {
    tl__free(TL__REQ_FILE(req));
    TL__REQ_FILE(req) = NULL;
}

/* Take n written bytes off the head of the queue; requests fully written
 * (and empty ones) move to d*. Stops at a sendfile request. */
static void advance(tl_ns_sock_t *s, size_t n) {
    tl_ns_send_t *r;
    while ((r = s->qhead) && TL__REQ_FILE(r) == NULL) {
        size_t i = (uintptr_t)TL__REQ_IDX(r), off = (uintptr_t)TL__REQ_OFF(r);
        while (i < r->n) {
            size_t left = r->iov[i].len - off;
            if (n < left) {
                off += n;
                n = 0;
                break;
            }
            n -= left;
            i++;
            off = 0;
        }
        TL__REQ_IDX(r) = (void *)(uintptr_t)i;
        TL__REQ_OFF(r) = (void *)(uintptr_t)off;
        if (i < r->n)
            return;
        q_pop(s);
        d_push(s, r, 0);
    }
}

/* The unsent bytes of the stream queue, up to KIOV_MAX pieces, stopping at
 * a sendfile request. */
static int gather(tl_ns_sock_t *s, struct iovec *v, size_t *total) {
    int k = 0;
    *total = 0;
    for (tl_ns_send_t *r = s->qhead; r && !TL__REQ_FILE(r) && k < KIOV_MAX;
         r = TL__REQ_NEXT(r)) {
        size_t i = (uintptr_t)TL__REQ_IDX(r), off = (uintptr_t)TL__REQ_OFF(r);
        for (; i < r->n && k < KIOV_MAX; i++, off = 0) {
            size_t len = r->iov[i].len - off;
            if (len == 0)
                continue;
            v[k].iov_base = (char *)r->iov[i].base + off;
            v[k].iov_len = len;
            *total += len;
            k++;
        }
    }
    return k;
}

static int to_iovec(const tl_iovec_t *iov, size_t n, struct iovec *v,
                    size_t *total) {
    int k = 0;
    *total = 0;
    for (size_t i = 0; i < n && k < KIOV_MAX; i++) {
        if (iov[i].len == 0)
            continue;
        v[k].iov_base = (void *)iov[i].base;
        v[k].iov_len = iov[i].len;
        *total += iov[i].len;
        k++;
    }
    return k;
}

static int check_writer(tl_ns_sock_t *s) {
    if (s->closed)
        return TL_ECLOSED;
    if (s->dead)
        return s->err;
    if (s->kind == TL_NS_LISTENER || s->kind == TL_NS_PIPE_READ)
        return TL_EINVAL;
    if (s->shut_req)
        return TL_EPIPE;
    return 0;
}

/* A datagram must go in one piece. */
static int dgram_fits(size_t n) { return n <= KIOV_MAX; }

int64_t tl__ks_try_send(tl_ns_sock_t *s, const tl_iovec_t *iov, size_t n,
                        const tl_sockaddr_t *to) {
    if (s == NULL || (iov == NULL && n))
        return TL_EINVAL;
    int rc = check_writer(s);
    if (rc)
        return rc;
    int dgram = s->kind == TL_NS_DGRAM;
    if (dgram && !dgram_fits(n))
        return TL_EMSGSIZE;
    if (!dgram && to)
        return TL_EINVAL;
    if (s->qhead || s->connecting)
        return dgram ? TL_EAGAIN : 0;
    if (n == 1 && !dgram && s->is_socket) {
        /* The echo hot path (one buffer on a stream socket): send(2) as
         * is, without building an iovec array and a msghdr. */
        if (iov[0].len == 0)
            return 0;
        ssize_t w1;
        do
            w1 = send(s->fd, iov[0].base, iov[0].len, MSG_NOSIGNAL);
        while (w1 < 0 && errno == EINTR);
        if (w1 < 0) {
            if (!would_block(-errno))
                return tl_translate_sys_error(errno);
            s->wfull = 1;
            return 0;
        }
        s->wfull = (size_t)w1 < iov[0].len;
        return w1;
    }
    struct iovec v[KIOV_MAX];
    size_t total;
    int cnt = to_iovec(iov, n, v, &total);
    if (!dgram && total == 0)
        return 0;
    ssize_t w = kwrite(s, v, cnt, to);
    if (w < 0) {
        if (!would_block(w))
            return tl_translate_sys_error((int)-w);
        s->wfull = !dgram;
        return dgram ? TL_EAGAIN : 0;
    }
    s->wfull = !dgram && (size_t)w < total;
    return w;
}

/* tl__ks_send1's other outcomes: w from its send(2) (with errno). */
static TL__COLD int64_t send1_short(tl_ns_sock_t *s, const void *data,
                                    size_t len, ssize_t w) {
    if (w >= 0) {
        s->wfull = 1; /* (size_t)w < len */
        return w;
    }
    int e = w == -2 ? EINTR : errno;
    if (e == EINTR) { /* (or not tried: w -2) */
        tl_iovec_t iov = {data, len};
        return tl__ks_try_send(s, &iov, 1, NULL); /* retries */
    }
    if (!would_block(-e))
        return tl_translate_sys_error(e);
    s->wfull = 1;
    return 0;
}

int64_t tl__ks_send1(tl_ns_sock_t *s, const void *data, size_t len) {
    /* try_send's checks, for the one case that matters: a live, connected
     * stream socket with nothing queued and no short write pending (so
     * wfull needs no update when all of it goes). */
    if (TL__LIKELY(s->kind == TL_NS_STREAM && s->is_socket && !s->closed &&
                   !s->dead && !s->shut_req && !s->connecting && !s->wfull &&
                   s->qhead == NULL)) {
        ssize_t w = send(s->fd, data, len, MSG_NOSIGNAL);
        if (TL__LIKELY(w == (ssize_t)len))
            return w;
        return send1_short(s, data, len, w);
    }
    return send1_short(s, data, len, -2); /* not the common case */
}

static void flush_cb(void *ctx) {
    tl_ns_sock_t *s = ctx;
    s->done_h = 0;
    tl__ksock_enter(s);
    flush_done(s);
    if (tl__ksock_leave(s))
        return;
    if (s->pend_err) {
        int e = s->pend_err;
        s->pend_err = 0;
        tl__ksock_fail(s, e);
    }
}

int tl__ks_send(tl_ns_sock_t *s, tl_ns_send_t *req) {
    if (s == NULL || req == NULL || req->done == NULL || (req->iov == NULL && req->n))
        return TL_EINVAL;
    int rc = check_writer(s);
    if (rc)
        return rc;
    int dgram = s->kind == TL_NS_DGRAM;
    if (dgram ? !dgram_fits(req->n) : req->to != NULL)
        return dgram ? TL_EMSGSIZE : TL_EINVAL;
    req_init(req);
    tl_loop_t *loop = s->st->loop;
    if (s->qhead || s->connecting || s->wfull) {
        int was_empty = s->qhead == NULL;
        q_push(s, req); /* the writer is watched already, or will be */
        if ((rc = tl__ksock_update_watch(s)) && was_empty) {
            q_pop(s); /* it is the only one: nothing was sent */
            return rc;
        }
        return 0;
    }
    /* Nothing queued: one write now. The completion is scheduled first,
     * so that running out of memory fails before any byte leaves. */
    int scheduled = 0;
    if (s->done_h == 0) {
        if ((rc = tl_loop_call_soon(loop, flush_cb, s, &s->done_h)))
            return rc;
        scheduled = 1;
    }
    struct iovec v[KIOV_MAX];
    size_t total;
    int cnt;
    if (dgram)
        cnt = to_iovec(req->iov, req->n, v, &total);
    else {
        q_push(s, req);
        cnt = gather(s, v, &total);
    }
    ssize_t w = (cnt || dgram) ? kwrite(s, v, cnt, req->to) : 0;
    if (w < 0 && !would_block(w)) {
        if (!dgram)
            q_pop(s);
        if (scheduled) {
            tl_handle_cancel(loop, s->done_h);
            s->done_h = 0;
        }
        return tl_translate_sys_error((int)-w);
    }
    if (dgram) {
        if (w >= 0)
            d_push(s, req, 0);
        else
            q_push(s, req);
    } else {
        advance(s, w > 0 ? (size_t)w : 0);
    }
    if (s->qhead == NULL)
        return 0; /* flush_cb reports it */
    s->wfull = 1;
    if (scheduled && s->dhead == NULL) {
        tl_handle_cancel(loop, s->done_h);
        s->done_h = 0;
    }
    if ((rc = tl__ksock_update_watch(s))) {
        /* Bytes may have left: the request cannot be refused any more.
         * Fail the socket from the loop instead. */
        s->pend_err = rc;
        if (s->done_h == 0 && tl_loop_call_soon(loop, flush_cb, s, &s->done_h))
            s->done_h = 0; /* nothing left to try: close() completes it */
    }
    return 0;
}

int tl__ks_sendfile(tl_ns_sock_t *s, tl_fd_t fd, int64_t offset, size_t count,
                    tl_ns_send_t *req, size_t *sent) {
    if (s == NULL || req == NULL || req->done == NULL || sent == NULL ||
        fd < 0 || offset < 0)
        return TL_EINVAL;
    int rc = check_writer(s);
    if (rc)
        return rc;
    if (s->kind != TL_NS_STREAM && s->kind != TL_NS_PIPE_WRITE)
        return TL_EINVAL;
    tl__ksendfile_t *f = tl__malloc(sizeof(*f));
    if (f == NULL)
        return TL_ENOMEM;
    *f = (tl__ksendfile_t){fd, offset, count, sent};
    *sent = 0;
    req_init(req);
    TL__REQ_FILE(req) = f;
    int was_empty = s->qhead == NULL;
    q_push(s, req);
    if ((rc = tl__ksock_update_watch(s)) && was_empty) {
        q_pop(s);
        tl__ks_req_forget(req);
        return rc;
    }
    return 0;
}

/* The head is a sendfile request: 1 to go on with the queue, 0 to wait
 * for writable, -1 when the socket failed (s may be gone). */
static int write_file(tl_ns_sock_t *s) {
    tl_ns_send_t *r = s->qhead;
    tl__ksendfile_t *f = TL__REQ_FILE(r);
    if (f->left == 0) {
        q_pop(s);
        d_push(s, r, 0);
        return 1;
    }
    size_t chunk = f->left < SENDFILE_CHUNK ? f->left : SENDFILE_CHUNK;
    off_t off = (off_t)f->off;
    sigpipe_guard_t g;
    sigpipe_block(&g);
    ssize_t n;
    do
        n = sendfile(s->fd, f->fd, &off, chunk);
    while (n < 0 && errno == EINTR);
    int e = n < 0 ? errno : 0;
    sigpipe_unblock(&g, e == EPIPE);
    if (n > 0) {
        f->off += n;
        f->left -= (size_t)n;
        *f->sent += (size_t)n;
        if (f->left == 0) {
            q_pop(s);
            d_push(s, r, 0);
            return 1;
        }
        if ((size_t)n < chunk)
            s->wfull = 1;
        return (size_t)n < chunk ? 0 : 1;
    }
    if (n == 0) { /* the file ended before count: done, *sent says how far */
        q_pop(s);
        d_push(s, r, 0);
        return 1;
    }
    if (e == EAGAIN || e == EWOULDBLOCK)
        return 0;
    if (e == EPIPE || e == ECONNRESET || e == ENOTCONN) {
        tl__ksock_fail(s, tl_translate_sys_error(e));
        return -1;
    }
    /* The file's fault (not seekable, no sendfile for it...): this
     * request fails, the socket goes on. */
    q_pop(s);
    d_push(s, r, tl_translate_sys_error(e));
    return 1;
}

/* 0 to go on; -1 when the socket failed (s may be gone). */
static int write_stream(tl_ns_sock_t *s) {
    for (;;) {
        advance(s, 0); /* completes empty requests */
        if (s->qhead == NULL)
            return 0;
        if (TL__REQ_FILE(s->qhead)) {
            int k = write_file(s);
            if (k <= 0)
                return k;
            continue;
        }
        struct iovec v[KIOV_MAX];
        size_t total;
        int cnt = gather(s, v, &total);
        ssize_t w = kwrite(s, v, cnt, NULL);
        if (w < 0) {
            if (would_block(w))
                return 0;
            tl__ksock_fail(s, tl_translate_sys_error((int)-w));
            return -1;
        }
        advance(s, (size_t)w);
        if ((size_t)w < total) {
            s->wfull = 1;
            return 0;
        }
    }
}

static void write_dgrams(tl_ns_sock_t *s) {
    tl_ns_send_t *r;
    while ((r = s->qhead)) {
        struct iovec v[KIOV_MAX];
        size_t total;
        int cnt = to_iovec(r->iov, r->n, v, &total);
        ssize_t w = kwrite(s, v, cnt, r->to);
        if (would_block(w))
            return;
        q_pop(s);
        d_push(s, r, w < 0 ? tl_translate_sys_error((int)-w) : 0);
    }
}

void tl__ks_write_ready(tl_ns_sock_t *s) {
    s->wfull = 0;
    tl__ksock_enter(s);
    flush_done(s); /* earlier completions first */
    if (tl__ksock_leave(s))
        return;
    if (s->dead)
        return;
    if (s->kind == TL_NS_DGRAM)
        write_dgrams(s);
    else if (write_stream(s) < 0)
        return;
    tl__ksock_enter(s);
    flush_done(s);
    if (tl__ksock_leave(s) || s->dead)
        return;
    if (s->qhead == NULL && s->shut_req && !s->shut_done) {
        s->shut_done = 1;
        shutdown(s->fd, SHUT_WR); /* a reset peer: the reader will hear */
    }
    int rc = tl__ksock_update_watch(s);
    if (rc)
        tl__ksock_fail(s, rc);
}

int tl__ks_shutdown_write(tl_ns_sock_t *s) {
    if (s == NULL)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    if (s->dead)
        return s->err;
    if (s->kind != TL_NS_STREAM || !s->is_socket)
        return TL_ENOTSUP;
    if (s->shut_req)
        return 0;
    s->shut_req = 1;
    if (s->qhead || s->connecting)
        return 0; /* after the queue drains (write_ready) */
    s->shut_done = 1;
    if (shutdown(s->fd, SHUT_WR) < 0)
        return tl_translate_sys_error(errno);
    return 0;
}
