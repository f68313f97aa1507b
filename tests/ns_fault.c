/*
 * A fault-injecting netstack for the tests: the kernel netstack behind a
 * table that forwards every operation, counts it in the tl_test_fault_t
 * given as config (NULL: a zeroed one of its own, nothing armed) and
 * injects what the test armed there (see ns_test.h): accepts failing with
 * TL_EMFILE, sends failing with TL_ECONNRESET, connects refused, 1-byte
 * short writes, EAGAIN storms and delayed reads.
 *
 * Each socket is wrapped: the kernel socket reports to the wrapper's own
 * handler, which passes events on (or holds, or replaces them). Delayed
 * reads and refused connects are delivered by a loop poller, so no
 * callback comes from inside an operation. A wrapper that was closed
 * stays until the consumer has released every buffer it was lent (release
 * may come after close) and the poller's next run frees it.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "../src/core/alloc.h"
#include "ns_test.h"

typedef struct fs_held {
    struct fs_held *next;
    tl_ns_buf_t *buf;
    int status;
} fs_held_t;

typedef struct fs_state fs_state_t;

typedef struct fs_sock {
    fs_state_t *st;
    struct fs_sock *next, *prev;
    tl_ns_sock_t *k; /* the kernel's; NULL for a refused connect */
    int kind;
    tl_ns_handler_t h;
    void *ctx;
    int closed, reading;
    int dead;           /* injected send error: what sends get from now */
    int refuse;         /* a connect to report refused (then 0) */
    long lent;          /* buffers the consumer holds */
    fs_held_t *held, *held_tail; /* delayed receive events */
} fs_sock_t;

struct fs_state {
    tl_loop_t *loop;
    const tl_netstack_ops_t *k;
    void *kstate;
    tl_test_fault_t *f;
    tl_test_fault_t own; /* when no config was given */
    fs_sock_t *socks;
    int dead; /* closed wrappers are waiting */
};

static int fs_poll(tl_loop_t *loop, void *ctx);

static fs_sock_t *fs_new(fs_state_t *st, int kind, const tl_ns_handler_t *h,
                         void *ctx) {
    fs_sock_t *s = tl__calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->st = st;
    s->kind = kind;
    if (h)
        s->h = *h;
    s->ctx = ctx;
    s->next = st->socks;
    if (st->socks)
        st->socks->prev = s;
    st->socks = s;
    st->f->live++;
    return s;
}

static void fs_free(fs_state_t *st, fs_sock_t *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        st->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    st->f->live--;
    tl__free(s);
}

/* Free the closed wrappers whose buffers all came back. */
static void fs_reap(fs_state_t *st) {
    if (!st->dead)
        return;
    st->dead = 0;
    for (fs_sock_t *s = st->socks, *next; s; s = next) {
        next = s->next;
        if (s->closed && s->lent == 0)
            fs_free(st, s);
        else if (s->closed)
            st->dead = 1;
    }
}

/* ---- what the kernel reports -------------------------------------------- */

static void deliver(fs_sock_t *s, tl_ns_buf_t *buf, int status) {
    if (buf)
        s->lent++;
    s->h.recv(s->ctx, buf, status);
}

static void k_recv(void *ctx, tl_ns_buf_t *buf, int status) {
    fs_sock_t *s = ctx;
    tl_test_fault_t *f = s->st->f;
    f->recvs++;
    if (s->closed || s->dead || s->h.recv == NULL) {
        if (buf) /* a reset socket drops what arrives */
            s->st->k->release(s->k, buf);
        return;
    }
    if (f->delay_reads > 0 || s->held) {
        fs_held_t *e = tl__malloc(sizeof *e);
        if (e) {
            if (f->delay_reads > 0) {
                f->delay_reads--;
                f->injected++;
            }
            e->next = NULL;
            e->buf = buf;
            e->status = status;
            if (s->held_tail)
                s->held_tail->next = e;
            else
                s->held = e;
            s->held_tail = e;
            return;
        }
        if (s->held) { /* no memory to keep order: drop, as a NIC would */
            if (buf)
                s->st->k->release(s->k, buf);
            return;
        }
    }
    deliver(s, buf, status);
}

static void k_connected(void *ctx, int status) {
    fs_sock_t *s = ctx;
    if (!s->closed && s->h.connected)
        s->h.connected(s->ctx, status);
}

static const tl_ns_handler_t k_conn_handler = {k_recv, NULL, k_connected};

static void k_accept(void *ctx, tl_ns_sock_t *conn, int status) {
    fs_sock_t *l = ctx;
    fs_state_t *st = l->st;
    tl_test_fault_t *f = st->f;
    if (l->closed || l->h.accept == NULL) {
        if (conn)
            st->k->close(conn, 1);
        return;
    }
    if (status < 0 || conn == NULL) {
        l->h.accept(l->ctx, NULL, status < 0 ? status : TL_EINVAL);
        return;
    }
    f->accepts++;
    int err = 0;
    fs_sock_t *c = NULL;
    if (f->fail_accept_at && f->accepts == f->fail_accept_at) {
        err = f->accept_error ? f->accept_error : TL_EMFILE;
        f->injected++;
    } else if ((c = fs_new(st, TL_NS_STREAM, NULL, NULL)) == NULL) {
        err = TL_ENOMEM;
    } else {
        c->k = conn;
        if ((err = st->k->set_handler(conn, &k_conn_handler, c)) != 0) {
            fs_free(st, c);
            c = NULL;
        }
    }
    if (err) { /* as libuv's EMFILE dance: take the connection and drop it */
        st->k->close(conn, 1);
        l->h.accept(l->ctx, NULL, err);
        return;
    }
    l->h.accept(l->ctx, (tl_ns_sock_t *)c, 0);
}

static const tl_ns_handler_t k_listen_handler = {NULL, k_accept, NULL};

/* ---- the operations ------------------------------------------------------ */

/* Without a config, faults may come from $TL_FAULTS, to run whole suites
 * under them: "short_writes", "eagain=K", "delay=K", comma-separated
 * (TL_NETSTACK=fault TL_FAULTS=short_writes,delay=100 make test ...). */
static void faults_from_env(tl_test_fault_t *f) {
    const char *e = getenv("TL_FAULTS");
    while (e && *e) {
        if (strncmp(e, "short_writes", 12) == 0)
            f->short_writes = 1;
        else if (strncmp(e, "eagain=", 7) == 0)
            f->eagain_try_sends = strtol(e + 7, NULL, 10);
        else if (strncmp(e, "delay=", 6) == 0)
            f->delay_reads = strtol(e + 6, NULL, 10);
        e = strchr(e, ',');
        if (e)
            e++;
    }
}

static int fs_create(tl_loop_t *loop, void *config, void **state) {
    fs_state_t *st = tl__calloc(1, sizeof *st);
    if (st == NULL)
        return TL_ENOMEM;
    st->loop = loop;
    st->k = tl_netstack_kernel();
    st->f = config ? config : &st->own;
    if (config == NULL)
        faults_from_env(&st->own);
    int rc = st->k->create(loop, NULL, &st->kstate);
    if (rc == 0 && (rc = tl_loop_add_poller(loop, fs_poll, st)) != 0)
        st->k->destroy(st->kstate);
    if (rc) {
        tl__free(st);
        return rc;
    }
    *state = st;
    return 0;
}

static void drop_held(fs_sock_t *s) {
    while (s->held) {
        fs_held_t *e = s->held;
        s->held = e->next;
        if (e->buf)
            s->st->k->release(s->k, e->buf);
        tl__free(e);
    }
    s->held_tail = NULL;
}

static void fs_destroy(void *state) {
    fs_state_t *st = state;
    if (st == NULL)
        return;
    tl_loop_remove_poller(st->loop, fs_poll, st);
    while (st->socks) {
        fs_sock_t *s = st->socks;
        if (!s->closed && s->k)
            st->k->close(s->k, 1);
        drop_held(s);
        fs_free(st, s);
    }
    st->k->destroy(st->kstate);
    tl__free(st);
}

static int fs_listen(void *state, const tl_sockaddr_t *addr,
                     const tl_ns_bind_options_t *opts,
                     const tl_ns_handler_t *handler, void *ctx,
                     tl_ns_sock_t **out) {
    fs_state_t *st = state;
    if (st == NULL || out == NULL)
        return TL_EINVAL;
    fs_sock_t *s = fs_new(st, TL_NS_LISTENER, handler, ctx);
    if (s == NULL)
        return TL_ENOMEM;
    int rc = st->k->listen(st->kstate, addr, opts, &k_listen_handler, s, &s->k);
    if (rc) {
        fs_free(st, s);
        return rc;
    }
    st->f->listens++;
    *out = (tl_ns_sock_t *)s;
    return 0;
}

static int fs_connect(void *state, const tl_sockaddr_t *remote,
                      const tl_sockaddr_t *local,
                      const tl_ns_handler_t *handler, void *ctx,
                      tl_ns_sock_t **out) {
    fs_state_t *st = state;
    tl_test_fault_t *f;
    if (st == NULL || out == NULL || remote == NULL)
        return TL_EINVAL;
    f = st->f;
    fs_sock_t *s = fs_new(st, TL_NS_STREAM, handler, ctx);
    if (s == NULL)
        return TL_ENOMEM;
    f->connects++;
    if (f->fail_connect_at && f->connects == f->fail_connect_at) {
        s->refuse = f->connect_error ? f->connect_error : TL_ECONNREFUSED;
        s->dead = s->refuse;
        f->injected++;
    } else {
        int rc = st->k->connect(st->kstate, remote, local, &k_conn_handler, s,
                                &s->k);
        if (rc) {
            f->connects--;
            fs_free(st, s);
            return rc;
        }
    }
    *out = (tl_ns_sock_t *)s;
    return 0;
}

static int fs_open_dgram(void *state, const tl_sockaddr_t *local,
                         const tl_sockaddr_t *remote,
                         const tl_ns_bind_options_t *opts,
                         const tl_ns_handler_t *handler, void *ctx,
                         tl_ns_sock_t **out) {
    fs_state_t *st = state;
    if (st == NULL || out == NULL)
        return TL_EINVAL;
    fs_sock_t *s = fs_new(st, TL_NS_DGRAM, handler, ctx);
    if (s == NULL)
        return TL_ENOMEM;
    int rc = st->k->open_dgram(st->kstate, local, remote, opts,
                               &k_conn_handler, s, &s->k);
    if (rc) {
        fs_free(st, s);
        return rc;
    }
    st->f->dgrams++;
    *out = (tl_ns_sock_t *)s;
    return 0;
}

static int fs_adopt(void *state, tl_fd_t fd, int kind,
                    const tl_ns_handler_t *handler, void *ctx,
                    tl_ns_sock_t **out) {
    fs_state_t *st = state;
    if (st == NULL || out == NULL)
        return TL_EINVAL;
    if (st->k->adopt == NULL)
        return TL_ENOTSUP;
    fs_sock_t *s = fs_new(st, kind, handler, ctx);
    if (s == NULL)
        return TL_ENOMEM;
    const tl_ns_handler_t *kh =
        kind == TL_NS_LISTENER ? &k_listen_handler : &k_conn_handler;
    int rc = st->k->adopt(st->kstate, fd, kind, kh, s, &s->k);
    if (rc) {
        fs_free(st, s);
        return rc;
    }
    *out = (tl_ns_sock_t *)s;
    return 0;
}

#define SOCK(ss, s)                                                         \
    fs_sock_t *s = (fs_sock_t *)(ss);                                       \
    if (s == NULL)                                                          \
        return TL_EINVAL;                                                   \
    if (s->closed)                                                          \
        return TL_ECLOSED

static int fs_accept_start(tl_ns_sock_t *ss) {
    SOCK(ss, s);
    return s->st->k->accept_start(s->k);
}

static int fs_accept_stop(tl_ns_sock_t *ss) {
    SOCK(ss, s);
    return s->st->k->accept_stop(s->k);
}

static int fs_set_handler(tl_ns_sock_t *ss, const tl_ns_handler_t *handler,
                          void *ctx) {
    SOCK(ss, s);
    if (handler)
        s->h = *handler;
    else
        memset(&s->h, 0, sizeof s->h);
    s->ctx = ctx;
    return 0;
}

static int fs_read_start(tl_ns_sock_t *ss) {
    SOCK(ss, s);
    int rc = s->k ? s->st->k->read_start(s->k) : 0;
    if (rc == 0)
        s->reading = 1;
    return rc;
}

static int fs_read_stop(tl_ns_sock_t *ss) {
    SOCK(ss, s);
    int rc = s->k ? s->st->k->read_stop(s->k) : 0;
    if (rc == 0)
        s->reading = 0;
    return rc;
}

static void fs_release(tl_ns_sock_t *ss, tl_ns_buf_t *buf) {
    fs_sock_t *s = (fs_sock_t *)ss;
    if (s == NULL || buf == NULL)
        return;
    s->lent--;
    s->st->k->release(s->k, buf);
    if (s->closed && s->lent == 0)
        s->st->dead = 1; /* the poller frees it */
}

static int64_t fs_try_send(tl_ns_sock_t *ss, const tl_iovec_t *iov, size_t n,
                           const tl_sockaddr_t *to) {
    SOCK(ss, s);
    tl_test_fault_t *f = s->st->f;
    f->try_sends++;
    f->send_ops++;
    if (s->dead)
        return s->dead;
    if (f->fail_send_at && f->send_ops == f->fail_send_at) {
        s->dead = f->send_error ? f->send_error : TL_ECONNRESET;
        f->injected++;
        return s->dead;
    }
    if (f->eagain_try_sends > 0) {
        f->eagain_try_sends--;
        f->injected++;
        return s->kind == TL_NS_DGRAM ? TL_EAGAIN : 0;
    }
    if (s->st->k->try_send == NULL)
        return 0;
    int64_t k;
    if (f->short_writes && s->kind == TL_NS_STREAM) {
        size_t i = 0;
        while (i < n && iov[i].len == 0)
            i++;
        if (i == n)
            return 0;
        tl_iovec_t one = {iov[i].base, 1};
        k = s->st->k->try_send(s->k, &one, 1, to);
        if (k > 0)
            f->injected++;
    } else {
        k = s->st->k->try_send(s->k, iov, n, to);
    }
    if (k > 0)
        f->try_send_bytes += k;
    return k;
}

static int fs_send(tl_ns_sock_t *ss, tl_ns_send_t *req) {
    SOCK(ss, s);
    tl_test_fault_t *f = s->st->f;
    f->sends++;
    f->send_ops++;
    if (s->dead)
        return s->dead;
    if (f->fail_send_at && f->send_ops == f->fail_send_at) {
        s->dead = f->send_error ? f->send_error : TL_ECONNRESET;
        f->injected++;
        return s->dead;
    }
    return s->st->k->send(s->k, req);
}

static int fs_sendfile(tl_ns_sock_t *ss, tl_fd_t fd, int64_t offset,
                       size_t count, tl_ns_send_t *req, size_t *sent) {
    SOCK(ss, s);
    if (s->st->k->sendfile == NULL)
        return TL_ENOTSUP;
    if (s->dead)
        return s->dead;
    return s->st->k->sendfile(s->k, fd, offset, count, req, sent);
}

static int fs_shutdown_write(tl_ns_sock_t *ss) {
    SOCK(ss, s);
    return s->k ? s->st->k->shutdown_write(s->k) : TL_ENOTCONN;
}

static void fs_close(tl_ns_sock_t *ss, int abort) {
    fs_sock_t *s = (fs_sock_t *)ss;
    if (s == NULL || s->closed)
        return;
    s->closed = 1;
    s->st->f->closes++;
    s->st->dead = 1;
    drop_held(s);
    if (s->k)
        s->st->k->close(s->k, abort);
}

static int fs_getaddr(tl_ns_sock_t *ss, int peer, tl_sockaddr_t *out) {
    SOCK(ss, s);
    return s->k ? s->st->k->getaddr(s->k, peer, out) : TL_ENOTCONN;
}

static int fs_setopt(tl_ns_sock_t *ss, int opt, int value) {
    SOCK(ss, s);
    return s->k ? s->st->k->setopt(s->k, opt, value) : 0;
}

static int fs_fileno(tl_ns_sock_t *ss, tl_fd_t *out) {
    SOCK(ss, s);
    if (s->k == NULL || s->st->k->fileno == NULL)
        return TL_ENOTSUP;
    return s->st->k->fileno(s->k, out);
}

/* Deliver refused connects, and one held receive event per socket a run. */
static int fs_poll(tl_loop_t *loop, void *ctx) {
    fs_state_t *st = ctx;
    (void)loop;
    fs_reap(st);
    int busy = 0;
    for (fs_sock_t *s = st->socks; s; s = s->next) {
        if (s->closed)
            continue;
        if (s->refuse) {
            int err = s->refuse;
            s->refuse = 0;
            if (s->h.connected)
                s->h.connected(s->ctx, err);
            continue;
        }
        if (s->held && s->reading && s->h.recv) {
            fs_held_t *e = s->held;
            s->held = e->next;
            if (s->held == NULL)
                s->held_tail = NULL;
            tl_ns_buf_t *buf = e->buf;
            int status = e->status;
            tl__free(e);
            deliver(s, buf, status);
        }
    }
    fs_reap(st);
    for (fs_sock_t *s = st->socks; s && !busy; s = s->next)
        if (!s->closed && (s->refuse || (s->held && s->reading && s->h.recv)))
            busy = 1;
    return busy;
}

static const tl_netstack_ops_t fault_ops = {
    .size = sizeof(tl_netstack_ops_t),
    .name = "fault",
    .create = fs_create,
    .destroy = fs_destroy,
    .listen = fs_listen,
    .accept_start = fs_accept_start,
    .accept_stop = fs_accept_stop,
    .connect = fs_connect,
    .open_dgram = fs_open_dgram,
    .adopt = fs_adopt,
    .set_handler = fs_set_handler,
    .read_start = fs_read_start,
    .read_stop = fs_read_stop,
    .release = fs_release,
    .try_send = fs_try_send,
    .send = fs_send,
    .sendfile = fs_sendfile,
    .shutdown_write = fs_shutdown_write,
    .close = fs_close,
    .getaddr = fs_getaddr,
    .setopt = fs_setopt,
    .fileno = fs_fileno,
};

const tl_netstack_ops_t *tl_test_netstack_fault(void) { return &fault_ops; }
