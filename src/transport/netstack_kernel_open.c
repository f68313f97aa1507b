/*
 * The kernel netstack's ways to get a socket: listen and accept, connect,
 * datagram sockets.
 *
 * Running out of descriptors while accepting (EMFILE/ENFILE) would make a
 * level-triggered listener spin: the pending connection keeps it readable.
 * As libuv does, each stack keeps one spare descriptor (opened at the first
 * listen): on EMFILE it closes the spare, accepts and closes what is
 * pending (those clients see their connection closed rather than hang),
 * and reopens the spare. The error is reported once per episode (until a
 * connection is accepted again). If the spare cannot be had, the listener
 * stops watching for a short while instead (ACCEPT_RETRY_NS).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netstack_kernel_int.h"

#define ACCEPTS_PER_EVENT 32
#define ACCEPT_DRAIN_MAX 1024
#define ACCEPT_RETRY_NS (100 * 1000 * 1000)
#define DEFAULT_BACKLOG 100

static void bind_options(const tl_ns_bind_options_t *in, tl_ns_bind_options_t *o) {
    memset(o, 0, sizeof *o);
    if (in && in->size >= sizeof(size_t))
        memcpy(o, in, in->size < sizeof *o ? in->size : sizeof *o);
}

static int set_int(int fd, int level, int name, int v) {
    return setsockopt(fd, level, name, &v, sizeof v) < 0
               ? tl_translate_sys_error(errno)
               : 0;
}

static int apply_options(int fd, int family, const tl_ns_bind_options_t *o,
                         int dgram) {
    int rc = 0;
    if (family == AF_UNIX)
        return 0;
    if (o->reuse_address && (rc = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)))
        return rc;
    if (o->reuse_port) {
#ifdef SO_REUSEPORT
        if ((rc = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)))
            return rc;
#else
        return TL_ENOTSUP;
#endif
    }
    if (family == AF_INET6 && o->ipv6_only &&
        (rc = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)))
        return rc;
    if (dgram && o->broadcast && (rc = set_int(fd, SOL_SOCKET, SO_BROADCAST, 1)))
        return rc;
    return 0;
}

static void open_reserve(tl__kstate_t *st) {
    if (st->reserve < 0)
        st->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int tl__ks_listen(void *state, const tl_sockaddr_t *addr,
                  const tl_ns_bind_options_t *opts,
                  const tl_ns_handler_t *handler, void *ctx,
                  tl_ns_sock_t **out) {
    tl__kstate_t *st = state;
    int family, rc;
    unsigned len;
    if (st == NULL || out == NULL)
        return TL_EINVAL;
    if ((rc = tl__kaddr(addr, &family, &len)))
        return rc;
    tl_ns_bind_options_t o;
    bind_options(opts, &o);
    if (o.backlog < 0)
        return TL_EINVAL;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return tl_translate_sys_error(errno);
    if ((rc = apply_options(fd, family, &o, 0)) == 0) {
        if (bind(fd, (const struct sockaddr *)addr->u.bytes, len) < 0 ||
            listen(fd, o.backlog ? o.backlog : DEFAULT_BACKLOG) < 0)
            rc = tl_translate_sys_error(errno);
    }
    tl_ns_sock_t *s = NULL;
    if (rc == 0)
        rc = tl__ksock_new(st, fd, TL_NS_LISTENER, 1, handler, ctx, &s);
    if (rc) {
        close(fd);
        return rc;
    }
    open_reserve(st);
    *out = s;
    return 0;
}

int tl__ks_accept_start(tl_ns_sock_t *s) {
    if (s == NULL || s->kind != TL_NS_LISTENER)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    if (s->accepting)
        return 0;
    s->accepting = 1;
    int rc = tl__ksock_update_watch(s);
    if (rc)
        s->accepting = 0;
    return rc;
}

int tl__ks_accept_stop(tl_ns_sock_t *s) {
    if (s == NULL || s->kind != TL_NS_LISTENER)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    s->accepting = 0;
    if (s->retry_h) {
        tl_handle_cancel(s->st->loop, s->retry_h);
        s->retry_h = 0;
    }
    tl__ksock_update_watch(s);
    return 0;
}

/* Tell the listener's consumer; 1 when s was closed meanwhile. */
static int report(tl_ns_sock_t *s, int err) {
    if (s->h.accept == NULL)
        return 0;
    tl__ksock_enter(s);
    s->h.accept(s->ctx, NULL, err);
    return tl__ksock_leave(s);
}

static void retry_cb(void *ctx) {
    tl_ns_sock_t *s = ctx;
    s->retry_h = 0;
    tl__ksock_update_watch(s);
}

/* Stop watching the listener for a while (no spare descriptor). */
static void back_off(tl_ns_sock_t *s) {
    if (tl_loop_call_later(s->st->loop, ACCEPT_RETRY_NS, retry_cb, s, &s->retry_h))
        s->retry_h = 0; /* out of memory too: keep watching */
    tl__ksock_update_watch(s);
}

static int accept_fd(int lfd) {
    int fd;
    do
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    return fd;
}

static void out_of_fds(tl_ns_sock_t *s, int e) {
    tl__kstate_t *st = s->st;
    if (st->reserve >= 0) {
        close(st->reserve);
        st->reserve = -1;
        for (int i = 0; i < ACCEPT_DRAIN_MAX; i++) {
            int fd = accept_fd(s->fd);
            if (fd < 0)
                break;
            close(fd);
        }
        open_reserve(st);
    }
    if (st->reserve < 0)
        back_off(s);
    if (!s->emfile) {
        s->emfile = 1;
        report(s, tl_translate_sys_error(e));
    }
}

/* accept(2) errors that concern one connection (Linux passes pending
 * network errors through accept): try the next one. */
static int transient(int e) {
    return e == ECONNABORTED || e == EPROTO || e == ENETDOWN ||
           e == ENOPROTOOPT || e == EHOSTDOWN || e == ENONET ||
           e == EHOSTUNREACH || e == EOPNOTSUPP || e == ENETUNREACH ||
           e == EPERM;
}

void tl__ks_accept_ready(tl_ns_sock_t *s) {
    for (int i = 0; i < ACCEPTS_PER_EVENT && s->accepting; i++) {
        int fd = accept_fd(s->fd);
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return;
            if (e == EMFILE || e == ENFILE) {
                out_of_fds(s, e);
                return;
            }
            if (transient(e))
                continue;
            /* ENOBUFS, ENOMEM...: report and give the kernel time. */
            back_off(s);
            report(s, tl_translate_sys_error(e));
            return;
        }
        tl_ns_sock_t *c;
        if (tl__ksock_new(s->st, fd, TL_NS_STREAM, 1, NULL, NULL, &c)) {
            close(fd); /* that client sees its connection closed */
            if (report(s, TL_ENOMEM))
                return;
            continue;
        }
        s->emfile = 0;
        if (s->h.accept == NULL) {
            tl_netstack_kernel()->close(c, 0);
            continue;
        }
        tl__ksock_enter(s);
        s->h.accept(s->ctx, c, 0);
        if (tl__ksock_leave(s))
            return;
    }
}

/* ---- connect ---------------------------------------------------------- */

/* An immediate connect (Unix sockets) is reported from the loop. Until
 * then the socket counts as connecting, so no read reaches the consumer
 * before connected(). */
static void connected_soon(void *ctx) {
    tl_ns_sock_t *s = ctx;
    s->conn_h = 0;
    tl__ks_connect_done(s);
}

void tl__ks_connect_done(tl_ns_sock_t *s) {
    int err = 0;
    if (s->conn_h) { /* writable before the scheduled report: same thing */
        tl_handle_cancel(s->st->loop, s->conn_h);
        s->conn_h = 0;
    } else {
        socklen_t l = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
            err = errno;
    }
    s->connecting = 0;
    if (err) {
        s->dead = 1;
        s->err = tl_translate_sys_error(err);
        tl__ksock_update_watch(s);
        tl__ksock_enter(s);
        if (s->h.connected)
            s->h.connected(s->ctx, s->err);
        if (!s->closed)
            tl__ks_complete_all(s, s->err);
        tl__ksock_leave(s);
        return;
    }
    int rc = tl__ksock_update_watch(s);
    tl__ksock_enter(s);
    if (s->h.connected)
        s->h.connected(s->ctx, 0);
    if (tl__ksock_leave(s))
        return;
    if (rc)
        tl__ksock_fail(s, rc);
    else if (s->qhead || s->shut_req)
        tl__ks_write_ready(s); /* it is writable: no need to wait */
}

static int family_of(const tl_sockaddr_t *a, const tl_sockaddr_t *b,
                     int *family) {
    int fa = 0, fb = 0, rc;
    unsigned len;
    if (a && (rc = tl__kaddr(a, &fa, &len)))
        return rc;
    if (b && (rc = tl__kaddr(b, &fb, &len)))
        return rc;
    if ((a && b && fa != fb) || (!a && !b))
        return TL_EINVAL;
    *family = a ? fa : fb;
    return 0;
}

int tl__ks_connect(void *state, const tl_sockaddr_t *remote,
                   const tl_sockaddr_t *local, const tl_ns_handler_t *handler,
                   void *ctx, tl_ns_sock_t **out) {
    tl__kstate_t *st = state;
    int family, rc;
    if (st == NULL || out == NULL || remote == NULL)
        return TL_EINVAL;
    if ((rc = family_of(remote, local, &family)))
        return rc;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return tl_translate_sys_error(errno);
    tl_ns_sock_t *s = NULL;
    if (local && bind(fd, (const struct sockaddr *)local->u.bytes, local->len) < 0)
        rc = tl_translate_sys_error(errno);
    if (rc == 0)
        rc = tl__ksock_new(st, fd, TL_NS_STREAM, 1, handler, ctx, &s);
    if (rc == 0) {
        s->connecting = 1;
        if (connect(fd, (const struct sockaddr *)remote->u.bytes, remote->len) == 0)
            rc = tl_loop_call_soon(st->loop, connected_soon, s, &s->conn_h);
        else if (errno == EINPROGRESS || errno == EINTR)
            rc = tl__ksock_update_watch(s);
        else
            rc = tl_translate_sys_error(errno); /* EAGAIN: a full Unix backlog */
    }
    if (rc) {
        if (s)
            tl__ksock_discard(s);
        close(fd);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- datagram sockets ------------------------------------------------- */

int tl__ks_open_dgram(void *state, const tl_sockaddr_t *local,
                      const tl_sockaddr_t *remote,
                      const tl_ns_bind_options_t *opts,
                      const tl_ns_handler_t *handler, void *ctx,
                      tl_ns_sock_t **out) {
    tl__kstate_t *st = state;
    int family, rc;
    if (st == NULL || out == NULL)
        return TL_EINVAL;
    if ((rc = family_of(local, remote, &family)))
        return rc;
    tl_ns_bind_options_t o;
    bind_options(opts, &o);
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return tl_translate_sys_error(errno);
    rc = apply_options(fd, family, &o, 1);
    if (rc == 0 && local &&
        bind(fd, (const struct sockaddr *)local->u.bytes, local->len) < 0)
        rc = tl_translate_sys_error(errno);
    if (rc == 0 && remote &&
        connect(fd, (const struct sockaddr *)remote->u.bytes, remote->len) < 0)
        rc = tl_translate_sys_error(errno);
    tl_ns_sock_t *s = NULL;
    if (rc == 0)
        rc = tl__ksock_new(st, fd, TL_NS_DGRAM, 1, handler, ctx, &s);
    if (rc) {
        close(fd);
        return rc;
    }
    *out = s;
    return 0;
}
