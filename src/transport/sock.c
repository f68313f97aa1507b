/*
 * Low-level socket operations for tasks (include/tulip/sock.h): asyncio's
 * loop.sock_* methods of selector_events.py, on the loop's readiness
 * watchers. Kernel descriptors only; the netstack is not involved.
 *
 * An operation is a request (what to do, and how far it got) inside a
 * future of its own class (sock_op_t): the op *is* the future the caller
 * gets, so an operation costs one allocation, and none when the system
 * call succeeds at once in a sequential form.
 *
 * Lifetime. The watcher borrows the op: the op holds no reference on
 * itself. Whoever awaits it holds one; cancelling it, or dropping its last
 * reference, removes the watcher (the finalize hook), so a watcher never
 * outlives its op. A closing loop drops every watcher without calling
 * anything, and the pending futures are freed by their last unref like any
 * other. That is why this file needs no per-loop state and no close hook.
 *
 * Busy. The loop has one reader and one writer per descriptor; an
 * operation starts only if that side is free (loop->fds, read from
 * loop_int.h), else TL_EBUSY: it never replaces someone's watcher.
 *
 * Out of memory at completion. Completing a future whose callbacks are
 * registered (a task awaiting it) schedules them, which can fail; the
 * system call has then already happened (bytes received, a connection
 * accepted). Its outcome is kept in the op ("deferred") and completion is
 * retried from a call_soon and from the watcher, which stays registered;
 * the system call is not repeated. A deferred accept that ends cancelled
 * or freed closes the descriptor it accepted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "../future/future_int.h"
#include "../loop/loop_int.h"
#include "../task/task_int.h"
#include "tulip/sock.h"
#include "tulip/task.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

enum { OP_RECV, OP_RECVFROM, OP_ACCEPT, OP_SENDALL, OP_SENDTO, OP_CONNECT };
/* connect: call connect(2) (first, or again after EAGAIN), or read
 * SO_ERROR once a connection in progress made the socket writable. */
enum { CONNECT_CALL, CONNECT_CHECK };

typedef struct sock_req {
    tl_fd_t fd;
    uint8_t kind;
    uint8_t phase;    /* connect's CONNECT_* */
    uint8_t has_addr; /* addr holds connect's or sendto's destination */
    char *buf;        /* the caller's; const for the sending kinds */
    size_t len, done; /* done: sendall's progress */
    tl_sockaddr_t *addr_out; /* accept's peer, recvfrom's sender, or NULL */
    tl_sockaddr_t addr; /* the destination, or the source until delivered */
} sock_req_t;

typedef struct sock_op {
    struct tl_future fut; /* first: the op is its future */
    sock_req_t r;
    uint8_t watching;      /* TL_READABLE / TL_WRITABLE while ours, or 0 */
    uint8_t deferred;      /* d_rc/d_val wait to be delivered */
    uint8_t retry_pending; /* a retry_complete is scheduled */
    int d_rc;
    uintptr_t d_val;
} sock_op_t;

static unsigned side_of(int kind) {
    return kind == OP_RECV || kind == OP_RECVFROM || kind == OP_ACCEPT
               ? TL_READABLE
               : TL_WRITABLE;
}

static int sys_error(int e) { return tl_translate_sys_error(e); }

static struct sockaddr *sa_of(tl_sockaddr_t *a) { return (struct sockaddr *)&a->u; }

/* ---- the system calls --------------------------------------------------- */

static int do_accept(sock_req_t *r, uintptr_t *val) {
    socklen_t sl = (socklen_t)sizeof r->addr.u.bytes;
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__) || defined(__DragonFly__)
    int c = accept4(r->fd, sa_of(&r->addr), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0)
        return -1;
#else
    int c = accept(r->fd, sa_of(&r->addr), &sl);
    if (c < 0)
        return -1;
    int fl = fcntl(c, F_GETFL);
    if (fl < 0 || fcntl(c, F_SETFL, fl | O_NONBLOCK) < 0 ||
        fcntl(c, F_SETFD, FD_CLOEXEC) < 0) {
        int e = errno;
        close(c);
        errno = e;
        return -1;
    }
#endif
    r->addr.len = sl <= sizeof r->addr.u.bytes ? (uint32_t)sl : 0;
    *val = (uintptr_t)(intptr_t)c;
    return 0;
}

static int connect_step(sock_req_t *r) {
    if (r->phase == CONNECT_CHECK) {
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
            return sys_error(errno);
        /* asyncio's _sock_connect_cb: still in progress means wait on. */
        if (err == EINPROGRESS || err == EINTR)
            return TL_EAGAIN;
        return err ? sys_error(err) : 0;
    }
    if (connect(r->fd, sa_of(&r->addr), (socklen_t)r->addr.len) == 0)
        return 0;
    switch (errno) {
    case EINPROGRESS:
    case EINTR: /* the connection goes on asynchronously (POSIX) */
        r->phase = CONNECT_CHECK;
        return TL_EAGAIN;
    case EAGAIN: /* a Unix listener's backlog is full: try again later */
        return TL_EAGAIN;
    default:
        return sys_error(errno);
    }
}

/* Try the operation once (as far as it goes without blocking): 0 with
 * *val when it is done, TL_EAGAIN to wait for readiness, or its error. */
static int attempt(sock_req_t *r, uintptr_t *val) {
    for (;;) {
        ssize_t n = 0;
        switch (r->kind) {
        case OP_RECV:
            if (r->len == 0) { /* nothing to wait for */
                *val = 0;
                return 0;
            }
            n = recv(r->fd, r->buf, r->len, 0);
            break;
        case OP_RECVFROM: {
            socklen_t sl = (socklen_t)sizeof r->addr.u.bytes;
            n = recvfrom(r->fd, r->buf, r->len, 0, sa_of(&r->addr), &sl);
            if (n >= 0)
                r->addr.len = sl <= sizeof r->addr.u.bytes ? (uint32_t)sl : 0;
            break;
        }
        case OP_ACCEPT:
            if (do_accept(r, val) == 0)
                return 0;
            n = -1;
            break;
        case OP_SENDALL:
            while (r->done < r->len) {
                n = send(r->fd, r->buf + r->done, r->len - r->done, MSG_NOSIGNAL);
                if (n < 0)
                    break;
                r->done += (size_t)n;
            }
            if (r->done == r->len)
                n = 0; /* the result is NULL */
            break;
        case OP_SENDTO:
            n = sendto(r->fd, r->buf, r->len, MSG_NOSIGNAL,
                       r->has_addr ? sa_of(&r->addr) : NULL,
                       r->has_addr ? (socklen_t)r->addr.len : 0);
            break;
        default: /* OP_CONNECT */
            return connect_step(r);
        }
        if (n >= 0) {
            *val = (uintptr_t)n;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return TL_EAGAIN;
        return sys_error(errno);
    }
}

/* Whether a request that would block has already changed something: a
 * sendall sent part of its bytes, a connect is in progress. */
static int started(const sock_req_t *r) {
    return (r->kind == OP_SENDALL && r->done > 0) ||
           (r->kind == OP_CONNECT && r->phase == CONNECT_CHECK);
}

/* Hand the source address to the caller, once the operation succeeded. */
static void deliver(sock_req_t *r) {
    if (r->addr_out && (r->kind == OP_ACCEPT || r->kind == OP_RECVFROM))
        *r->addr_out = r->addr;
}

/* ---- checks --------------------------------------------------------------- */

static int check_fd(tl_loop_t *loop, tl_fd_t fd, unsigned side) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (fd < 0)
        return TL_EBADF;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return sys_error(errno);
    if (!(fl & O_NONBLOCK))
        return TL_EINVAL; /* it would block the loop */
    if ((size_t)fd < loop->fds_cap && (loop->fds[fd].mask & side))
        return TL_EBUSY;
    return 0;
}

static int check_addr(const tl_sockaddr_t *a) {
    return a->len == 0 || a->len > sizeof a->u.bytes ? TL_EINVAL : 0;
}

/* ---- the op (a future class) -------------------------------------------- */

static void on_ready(void *ctx);

static int is_ours(const sock_op_t *op) {
    const tl_loop_t *loop = op->fut.loop;
    size_t i = (size_t)op->r.fd;
    /* tl__loop_check: a closed loop has no table any more, and another
     * thread (a last unref there whose hand-over failed) must not read it. */
    if (!op->watching || tl__loop_check(loop) || i >= loop->fds_cap)
        return 0;
    const tl__fdwatch_t *w = &loop->fds[i];
    return op->watching == TL_READABLE ? w->rcb == on_ready && w->rctx == op
                                       : w->wcb == on_ready && w->wctx == op;
}

static void unwatch(sock_op_t *op) {
    if (is_ours(op)) {
        if (op->watching == TL_READABLE)
            tl_loop_remove_reader(op->fut.loop, op->r.fd);
        else
            tl_loop_remove_writer(op->fut.loop, op->r.fd);
    }
    op->watching = 0;
}

static int watch(sock_op_t *op) {
    unsigned side = side_of(op->r.kind);
    int rc = side == TL_READABLE
                 ? tl_loop_add_reader(op->fut.loop, op->r.fd, on_ready, op)
                 : tl_loop_add_writer(op->fut.loop, op->r.fd, on_ready, op);
    if (rc == 0)
        op->watching = (uint8_t)side;
    return rc;
}

/* A deferred outcome that will never be delivered: give back what it owns. */
static void discard_deferred(sock_op_t *op) {
    if (op->deferred && op->d_rc == 0 && op->r.kind == OP_ACCEPT)
        close((int)(intptr_t)op->d_val);
    op->deferred = 0;
}

static int op_cancel(tl_future_t *f, const char *message) {
    sock_op_t *op = (sock_op_t *)f;
    int rc = tl__future_cancel_base(f, message);
    if (rc == 1) {
        unwatch(op);
        discard_deferred(op);
    }
    return rc;
}

static void op_finalize(tl_future_t *f) {
    sock_op_t *op = (sock_op_t *)f;
    unwatch(op); /* dropped while pending: nobody can read the outcome */
    discard_deferred(op);
}

static const tl__future_class_t op_class = {op_cancel, op_finalize};

static int complete(sock_op_t *op, int rc, uintptr_t val) {
    return rc == 0 ? tl__future_complete(&op->fut, TL__FUT_RESULT, (void *)val,
                                         NULL, 0, NULL)
                   : tl__future_complete(&op->fut, TL__FUT_ERROR, NULL, NULL, rc,
                                         NULL);
}

static void retry_complete(void *ctx);

static void retry_drop(void *ctx) {
    sock_op_t *op = ctx;
    op->retry_pending = 0;
    tl_future_unref(&op->fut);
}

/* Complete op with the outcome of its system call (see "Out of memory at
 * completion" above). */
static void finish(sock_op_t *op, int rc, uintptr_t val) {
    if (complete(op, rc, val) == 0) {
        op->deferred = 0;
        unwatch(op);
        if (rc == 0)
            deliver(&op->r);
        return;
    }
    op->deferred = 1;
    op->d_rc = rc;
    op->d_val = val;
    if (op->retry_pending)
        return;
    tl_loop_t *loop = op->fut.loop;
    tl_future_ref(&op->fut);
    if (tl__loop_call_soon_drop(loop, retry_complete, retry_drop, op) == 0) {
        op->retry_pending = 1;
        return;
    }
    tl_future_unref(&op->fut);
    tl__loop_report(loop, "a socket operation could not complete its future "
                          "(it retries when the socket is ready again)",
                    TL_ENOMEM);
}

static void retry_complete(void *ctx) {
    sock_op_t *op = ctx;
    op->retry_pending = 0;
    if (op->fut.state == TL__FUT_PENDING && op->deferred)
        finish(op, op->d_rc, op->d_val);
    tl_future_unref(&op->fut);
}

static void on_ready(void *ctx) {
    sock_op_t *op = ctx;
    if (op->deferred) {
        finish(op, op->d_rc, op->d_val);
        return;
    }
    uintptr_t val = 0;
    int rc = attempt(&op->r, &val);
    if (rc != TL_EAGAIN)
        finish(op, rc, val);
}

static int op_new(tl_loop_t *loop, const sock_req_t *r, sock_op_t **out) {
    tl_future_t *f;
    int rc = tl__future_create(loop, sizeof(sock_op_t), &op_class, &f);
    if (rc)
        return rc;
    sock_op_t *op = (sock_op_t *)f;
    op->r = *r;
    *out = op;
    return 0;
}

/* ---- the two forms -------------------------------------------------------- */

/* The future form: make the op, try at once, wait if that would block. */
static int start(tl_loop_t *loop, sock_req_t *r, tl_future_t **out) {
    if (out == NULL)
        return TL_EINVAL;
    int rc = check_fd(loop, r->fd, side_of(r->kind));
    if (rc)
        return rc;
    sock_op_t *op;
    /* Allocated before the attempt: a result must never be lost to a
     * failed allocation after the system call. */
    if ((rc = op_new(loop, r, &op)))
        return rc;
    uintptr_t val = 0;
    rc = attempt(&op->r, &val);
    if (rc == TL_EAGAIN && (rc = watch(op)) != 0 && !started(&op->r)) {
        tl_future_unref(&op->fut); /* nothing happened: a plain refusal */
        return rc;
    }
    if (op->watching) {
        *out = &op->fut;
        return 0;
    }
    /* Done, or the watcher could not be registered after the operation
     * began: that is the future's error. No callbacks yet: completing
     * cannot fail. */
    complete(op, rc, val);
    if (rc == 0)
        deliver(&op->r);
    *out = &op->fut;
    return 0;
}

/* The sequential form: the same attempt without a future, then await the
 * future form's op. *val gets the result on success. */
static int run(sock_req_t *r, uintptr_t *val) {
    tl_task_t *t = tl_task_current();
    if (t == NULL)
        return TL_ENOTASK;
    tl_loop_t *loop = tl_future_get_loop(tl_task_future(t));
    int rc = check_fd(loop, r->fd, side_of(r->kind));
    if (rc)
        return rc;
    rc = attempt(r, val);
    if (rc != TL_EAGAIN) {
        if (rc == 0)
            deliver(r);
        return rc;
    }
    sock_op_t *op;
    if ((rc = op_new(loop, r, &op)))
        return rc;
    if ((rc = watch(op))) {
        tl_future_unref(&op->fut);
        return rc;
    }
    void *v = NULL;
    rc = tl_await(&op->fut, &v);
    if (rc != 0) {
        if (tl_future_done(&op->fut) == 0)
            tl_future_cancel(&op->fut, NULL); /* the loop closed under us */
        else if (tl_future_result(&op->fut, &v) == 0) {
            /* Cancelled after it completed: the operation stands. */
            tl__task_keep_cancel(t);
            rc = 0;
        }
    }
    *val = (uintptr_t)v;
    tl_future_unref(&op->fut);
    return rc;
}

/* ---- the public calls ------------------------------------------------------ */

static sock_req_t req(tl_fd_t fd, int kind, const void *buf, size_t len) {
    sock_req_t r;
    memset(&r, 0, sizeof r);
    r.fd = fd;
    r.kind = (uint8_t)kind;
    r.buf = (char *)(uintptr_t)buf; /* the sending kinds only read it */
    r.len = len;
    return r;
}

int tl_sock_recv_future(tl_loop_t *loop, tl_fd_t fd, void *buf, size_t len,
                        tl_future_t **out) {
    if (buf == NULL && len > 0)
        return TL_EINVAL;
    sock_req_t r = req(fd, OP_RECV, buf, len);
    return start(loop, &r, out);
}

int tl_sock_recv(tl_fd_t fd, void *buf, size_t len, size_t *got) {
    if (buf == NULL && len > 0)
        return TL_EINVAL;
    sock_req_t r = req(fd, OP_RECV, buf, len);
    uintptr_t v = 0;
    int rc = run(&r, &v);
    if (rc == 0 && got)
        *got = (size_t)v;
    return rc;
}

int tl_sock_sendall_future(tl_loop_t *loop, tl_fd_t fd, const void *data,
                           size_t len, tl_future_t **out) {
    if (data == NULL && len > 0)
        return TL_EINVAL;
    sock_req_t r = req(fd, OP_SENDALL, data, len);
    return start(loop, &r, out);
}

int tl_sock_sendall(tl_fd_t fd, const void *data, size_t len) {
    if (data == NULL && len > 0)
        return TL_EINVAL;
    sock_req_t r = req(fd, OP_SENDALL, data, len);
    uintptr_t v;
    return run(&r, &v);
}

int tl_sock_accept_future(tl_loop_t *loop, tl_fd_t fd, tl_sockaddr_t *peer,
                          tl_future_t **out) {
    sock_req_t r = req(fd, OP_ACCEPT, NULL, 0);
    r.addr_out = peer;
    return start(loop, &r, out);
}

int tl_sock_accept(tl_fd_t fd, tl_fd_t *conn, tl_sockaddr_t *peer) {
    if (conn == NULL)
        return TL_EINVAL; /* the descriptor would leak */
    sock_req_t r = req(fd, OP_ACCEPT, NULL, 0);
    r.addr_out = peer;
    uintptr_t v = 0;
    int rc = run(&r, &v);
    if (rc == 0)
        *conn = (tl_fd_t)(intptr_t)v;
    return rc;
}

static int connect_req(tl_fd_t fd, const tl_sockaddr_t *addr, sock_req_t *r) {
    if (addr == NULL || check_addr(addr))
        return TL_EINVAL;
    *r = req(fd, OP_CONNECT, NULL, 0);
    r->addr = *addr;
    r->has_addr = 1;
    return 0;
}

int tl_sock_connect_future(tl_loop_t *loop, tl_fd_t fd, const tl_sockaddr_t *addr,
                           tl_future_t **out) {
    sock_req_t r;
    int rc = connect_req(fd, addr, &r);
    return rc ? rc : start(loop, &r, out);
}

int tl_sock_connect(tl_fd_t fd, const tl_sockaddr_t *addr) {
    sock_req_t r;
    uintptr_t v;
    int rc = connect_req(fd, addr, &r);
    return rc ? rc : run(&r, &v);
}

int tl_sock_recvfrom_future(tl_loop_t *loop, tl_fd_t fd, void *buf, size_t len,
                            tl_sockaddr_t *from, tl_future_t **out) {
    if (buf == NULL && len > 0)
        return TL_EINVAL;
    sock_req_t r = req(fd, OP_RECVFROM, buf, len);
    r.addr_out = from;
    return start(loop, &r, out);
}

int tl_sock_recvfrom(tl_fd_t fd, void *buf, size_t len, size_t *got,
                     tl_sockaddr_t *from) {
    if (buf == NULL && len > 0)
        return TL_EINVAL;
    sock_req_t r = req(fd, OP_RECVFROM, buf, len);
    r.addr_out = from;
    uintptr_t v = 0;
    int rc = run(&r, &v);
    if (rc == 0 && got)
        *got = (size_t)v;
    return rc;
}

static int sendto_req(tl_fd_t fd, const void *data, size_t len,
                      const tl_sockaddr_t *to, sock_req_t *r) {
    if ((data == NULL && len > 0) || (to && check_addr(to)))
        return TL_EINVAL;
    *r = req(fd, OP_SENDTO, data, len);
    if (to) {
        r->addr = *to;
        r->has_addr = 1;
    }
    return 0;
}

int tl_sock_sendto_future(tl_loop_t *loop, tl_fd_t fd, const void *data,
                          size_t len, const tl_sockaddr_t *to, tl_future_t **out) {
    sock_req_t r;
    int rc = sendto_req(fd, data, len, to, &r);
    return rc ? rc : start(loop, &r, out);
}

int tl_sock_sendto(tl_fd_t fd, const void *data, size_t len,
                   const tl_sockaddr_t *to, size_t *sent) {
    sock_req_t r;
    uintptr_t v = 0;
    int rc = sendto_req(fd, data, len, to, &r);
    if (rc == 0)
        rc = run(&r, &v);
    if (rc == 0 && sent)
        *sent = (size_t)v;
    return rc;
}
