/*
 * The kernel netstack over a readiness backend (epoll, poll): sockets and
 * pipes are non-blocking descriptors watched through the loop's
 * level-triggered readers and writers; received bytes are read into pooled
 * buffers lent to the consumer. See netstack_kernel_int.h for the shape and
 * include/tulip/netstack.h for the contract.
 *
 * Reading: one read of up to 64 KiB per buffer; when a read fills the
 * buffer the socket may hold more, so up to 4 buffers (256 KiB, asyncio's
 * read size per event) are read in one readiness event, and a short read
 * ends the event (the socket is drained, no extra EAGAIN call). Buffers are
 * 64 KiB rather than 256 KiB because a consumer may keep one (a stream's
 * unread data), and the common echo-sized read then pins 64 KiB, not 256.
 * A buffer released during the recv callback (the usual case) goes back to
 * the stack's free list and serves the next read: no malloc per read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "../core/platform.h"
#include "netstack_kernel_int.h"

/* Full buffers read per readiness event (see above). */
#define READS_PER_EVENT 4
/* Datagrams received per readiness event: bounded so one busy socket
 * cannot starve the others. */
#define DGRAMS_PER_EVENT 16

/* ---- buffer pool ------------------------------------------------------ */

static tl__kbuf_t *buf_get(tl__kstate_t *st) {
    tl__kbuf_t *b = st->free;
    if (b) {
        st->free = b->next;
        st->nfree--;
        return b;
    }
    return tl__malloc(sizeof(*b));
}

static void buf_put(tl__kstate_t *st, tl__kbuf_t *b) {
    if (st->nfree < TL__KBUF_KEEP) {
        b->next = st->free;
        st->free = b;
        st->nfree++;
    } else {
        tl__free(b);
    }
}

static tl_ns_buf_t *lend(tl_ns_sock_t *s, tl__kbuf_t *b, size_t n,
                         const tl_sockaddr_t *from) {
    b->nb.data = b->data;
    b->nb.len = n;
    b->nb.from = from;
    b->nb.priv[0] = b;
    b->nb.priv[1] = b->nb.priv[2] = NULL;
    s->lent++;
    return &b->nb;
}

static void k_release(tl_ns_sock_t *s, tl_ns_buf_t *buf) {
    tl__kbuf_t *b;
    if (TL__UNLIKELY(s == NULL || buf == NULL || (b = buf->priv[0]) == NULL))
        return;
    buf->priv[0] = NULL; /* a second release is harmless */
    buf_put(s->st, b);
    s->lent--;
    if (TL__UNLIKELY(s->closed))
        tl__ksock_maybe_free(s);
}

/* ---- sockets ---------------------------------------------------------- */

int tl__kfd_prepare(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return tl_translate_sys_error(errno);
    int fd_fl = fcntl(fd, F_GETFD);
    if (fd_fl < 0 ||
        (!(fd_fl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fd_fl | FD_CLOEXEC) < 0))
        return tl_translate_sys_error(errno);
    return 0;
}

int tl__kaddr(const tl_sockaddr_t *a, int *family, unsigned *len) {
    if (a == NULL || a->len < sizeof(sa_family_t) || a->len > sizeof(a->u.bytes))
        return TL_EINVAL;
    sa_family_t f;
    memcpy(&f, a->u.bytes, sizeof f);
    if (f != AF_INET && f != AF_INET6 && f != AF_UNIX)
        return TL_EAFNOSUPPORT;
    *family = f;
    *len = a->len;
    return 0;
}

int tl__ksock_new(tl__kstate_t *st, int fd, int kind, int is_socket,
                  const tl_ns_handler_t *h, void *ctx, tl_ns_sock_t **out) {
    tl_ns_sock_t *s = tl__calloc(1, sizeof(*s));
    if (s == NULL)
        return TL_ENOMEM;
    s->st = st;
    s->fd = fd;
    s->kind = (unsigned char)kind;
    s->is_socket = is_socket != 0;
    if (h)
        s->h = *h;
    s->ctx = ctx;
    s->next = st->socks;
    if (st->socks)
        st->socks->prev = s;
    st->socks = s;
    *out = s;
    return 0;
}

static void unlink_sock(tl_ns_sock_t *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        s->st->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

void tl__ksock_discard(tl_ns_sock_t *s) {
    unlink_sock(s);
    tl__free(s);
}

void tl__ksock_maybe_free(tl_ns_sock_t *s) {
    if (s->closed && s->busy == 0 && s->lent == 0)
        tl__ksock_discard(s);
}

int tl__ksock_leave(tl_ns_sock_t *s) {
    s->busy--;
    if (s->closed) {
        tl__ksock_maybe_free(s);
        return 1;
    }
    return 0;
}

int tl__ksock_update_watch(tl_ns_sock_t *s) {
    tl_loop_t *loop = s->st->loop;
    int want_r = 0, want_w = 0, rc = 0;
    if (!s->closed && !s->dead) {
        if (s->kind == TL_NS_LISTENER)
            want_r = s->accepting && s->retry_h == 0;
        else if (s->kind == TL_NS_PIPE_WRITE)
            want_r = !s->eof; /* the reader's close shows as an error */
        else
            want_r = s->reading && !s->connecting && !s->eof;
        want_w = (s->connecting && s->conn_h == 0) || s->qhead != NULL ||
                 (s->dhead != NULL && s->done_h == 0);
    }
    if (want_r != (int)s->rwatch) {
        if (!want_r) {
            tl_loop_remove_reader(loop, s->fd);
            s->rwatch = 0;
        } else if ((rc = tl_loop_add_reader(loop, s->fd, tl__ksock_on_readable, s)) == 0) {
            s->rwatch = 1;
        }
    }
    if (want_w != (int)s->wwatch) {
        int wrc = 0;
        if (!want_w) {
            tl_loop_remove_writer(loop, s->fd);
            s->wwatch = 0;
        } else if ((wrc = tl_loop_add_writer(loop, s->fd, tl__ksock_on_writable, s)) == 0) {
            s->wwatch = 1;
        }
        if (rc == 0)
            rc = wrc;
    }
    return rc;
}

void tl__ksock_fail(tl_ns_sock_t *s, int err) {
    if (s->dead || s->closed)
        return;
    s->dead = 1;
    s->err = err;
    tl__ksock_update_watch(s); /* removes both watchers */
    tl__ksock_enter(s);
    tl__ks_complete_all(s, err);
    if (!s->closed && s->h.recv &&
        (s->reading || s->kind == TL_NS_PIPE_WRITE))
        s->h.recv(s->ctx, NULL, err);
    tl__ksock_leave(s);
}

/* Deliver a buffer (or drop it when nobody listens). 1: stop, s may be
 * gone or no longer reading. */
static int deliver(tl_ns_sock_t *s, tl__kbuf_t *b, size_t n,
                   const tl_sockaddr_t *from) {
    tl_ns_buf_t *nb = lend(s, b, n, from);
    if (TL__UNLIKELY(s->h.recv == NULL)) {
        k_release(s, nb);
        return 0;
    }
    tl__ksock_enter(s);
    s->h.recv(s->ctx, nb, 0);
    if (TL__UNLIKELY(tl__ksock_leave(s)))
        return 1;
    return !s->reading || s->dead || s->eof;
}

/* A stream read returned n <= 0 into b (errno set when n < 0): 1 to stop
 * (EOF, an error, drained), 0 to read again (EINTR). */
static TL__COLD int read_end(tl_ns_sock_t *s, tl__kbuf_t *b, ssize_t n) {
    int e = n < 0 ? errno : 0;
    buf_put(s->st, b);
    if (n < 0) {
        if (e == EINTR)
            return 0;
        if (e != EAGAIN && e != EWOULDBLOCK)
            tl__ksock_fail(s, tl_translate_sys_error(e));
        return 1;
    }
    s->eof = 1;
    tl__ksock_update_watch(s);
    if (s->h.recv) {
        tl__ksock_enter(s);
        s->h.recv(s->ctx, NULL, TL_EOF);
        tl__ksock_leave(s);
    }
    return 1;
}

static TL__COLD tl__kbuf_t *buf_alloc(tl_ns_sock_t *s) {
    tl__kbuf_t *b = tl__malloc(sizeof(*b));
    if (b == NULL)
        tl__ksock_fail(s, TL_ENOMEM);
    return b;
}

static void read_stream(tl_ns_sock_t *s) {
    tl__kstate_t *st = s->st;
    for (int i = 0; i < READS_PER_EVENT; i++) {
        tl__kbuf_t *b = st->free;
        if (TL__LIKELY(b != NULL)) {
            st->free = b->next;
            st->nfree--;
        } else if ((b = buf_alloc(s)) == NULL) {
            return;
        }
        ssize_t n = read(s->fd, b->data, TL__KBUF_SIZE);
        if (TL__UNLIKELY(n <= 0)) {
            if (read_end(s, b, n))
                return;
            continue; /* EINTR: once more (the loop bound is loose) */
        }
        /* deliver(), inline: the hot path of every stream read. */
        b->nb.data = b->data;
        b->nb.len = (size_t)n;
        b->nb.from = NULL;
        b->nb.priv[0] = b;
        s->lent++;
        if (TL__UNLIKELY(s->h.recv == NULL)) {
            k_release(s, &b->nb); /* nobody listens: dropped */
            if ((size_t)n < TL__KBUF_SIZE)
                return;
            continue;
        }
        tl__ksock_enter(s);
        s->h.recv(s->ctx, &b->nb, 0);
        s->busy--;
        if (TL__UNLIKELY(s->closed)) {
            tl__ksock_maybe_free(s);
            return;
        }
        if ((size_t)n < TL__KBUF_SIZE || !s->reading || s->dead || s->eof)
            return;
    }
}

/* Datagrams: one per buffer, with its sender. A datagram larger than a
 * buffer (only Unix datagram sockets can carry one: UDP payloads stop at
 * 65,507/65,527 bytes) is dropped and reported as TL_EMSGSIZE rather than
 * handed over cut. Errors (ICMP port unreachable on a connected UDP socket
 * shows as ECONNREFUSED) are reported and the socket stays usable. */
static void read_dgram(tl_ns_sock_t *s) {
    for (int i = 0; i < DGRAMS_PER_EVENT; i++) {
        tl__kbuf_t *b = buf_get(s->st);
        if (b == NULL) {
            /* A datagram socket outlives an error (the contract): report
             * it; the datagram stays queued in the kernel and the next
             * readable event tries again. */
            if (s->h.recv) {
                tl__ksock_enter(s);
                s->h.recv(s->ctx, NULL, TL_ENOMEM);
                tl__ksock_leave(s);
            }
            return;
        }
        struct iovec v = {b->data, TL__KBUF_SIZE};
        struct msghdr m = {0};
        memset(&b->from, 0, sizeof b->from);
        m.msg_name = b->from.u.bytes;
        m.msg_namelen = sizeof b->from.u.bytes;
        m.msg_iov = &v;
        m.msg_iovlen = 1;
        ssize_t n;
        do
            n = recvmsg(s->fd, &m, 0);
        while (n < 0 && errno == EINTR);
        int err = 0;
        if (n < 0) {
            err = errno;
            buf_put(s->st, b);
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            err = tl_translate_sys_error(err);
        } else if (m.msg_flags & MSG_TRUNC) {
            buf_put(s->st, b);
            err = TL_EMSGSIZE;
        }
        if (err) {
            if (s->h.recv) {
                tl__ksock_enter(s);
                s->h.recv(s->ctx, NULL, err);
                if (tl__ksock_leave(s) || !s->reading)
                    return;
            }
            continue;
        }
        b->from.len = m.msg_namelen;
        if (deliver(s, b, (size_t)n, &b->from))
            return;
    }
}

static TL__COLD void on_readable_other(tl_ns_sock_t *s);

void tl__ksock_on_readable(void *ctx) {
    tl_ns_sock_t *s = ctx;
    if (TL__LIKELY(s->kind == TL_NS_STREAM && s->reading)) {
        read_stream(s);
        return;
    }
    on_readable_other(s);
}

static void on_readable_other(tl_ns_sock_t *s) {
    if (!s->reading && (s->kind == TL_NS_STREAM || s->kind == TL_NS_DGRAM ||
                        s->kind == TL_NS_PIPE_READ)) {
        tl__ksock_update_watch(s); /* a lazy read_stop: drop the watch now */
        return;
    }
    switch (s->kind) {
    case TL_NS_LISTENER:
        tl__ks_accept_ready(s);
        break;
    case TL_NS_DGRAM:
        read_dgram(s);
        break;
    case TL_NS_PIPE_WRITE:
        /* A write end is readable only when its reader went away (an
         * error on a pipe), as asyncio's _UnixWritePipeTransport sees it:
         * the queued sends fail and recv hears TL_EPIPE. */
        s->eof = 1;
        tl__ksock_fail(s, TL_EPIPE);
        break;
    default:
        read_stream(s);
        break;
    }
}

void tl__ksock_on_writable(void *ctx) {
    tl_ns_sock_t *s = ctx;
    if (s->connecting)
        tl__ks_connect_done(s);
    else
        tl__ks_write_ready(s);
}

/* ---- operations ------------------------------------------------------- */

static int k_create(tl_loop_t *loop, void *config, void **state) {
    (void)config;
    if (loop == NULL || state == NULL)
        return TL_EINVAL;
    tl__kstate_t *st = tl__calloc(1, sizeof(*st));
    if (st == NULL)
        return TL_ENOMEM;
    st->loop = loop;
    st->reserve = -1;
    *state = st;
    return 0;
}

static void k_close(tl_ns_sock_t *s, int abort);

/* Sockets still open are closed gracefully; records kept alive only by
 * lent buffers are freed too (the contract has every buffer released
 * before this, so nobody can name them any more). */
static void k_destroy(void *state) {
    tl__kstate_t *st = state;
    if (st == NULL)
        return;
    while (st->socks) {
        tl_ns_sock_t *s = st->socks;
        if (!s->closed)
            k_close(s, 0);
        if (st->socks == s)
            tl__ksock_discard(s);
    }
    while (st->free) {
        tl__kbuf_t *b = st->free;
        st->free = b->next;
        tl__free(b);
    }
    if (st->reserve >= 0)
        close(st->reserve);
    tl__free(st);
}

static int k_adopt(void *state, tl_fd_t fd, int kind,
                   const tl_ns_handler_t *handler, void *ctx,
                   tl_ns_sock_t **out) {
    tl__kstate_t *st = state;
    if (st == NULL || out == NULL || kind < TL_NS_STREAM || kind > TL_NS_PIPE_WRITE)
        return TL_EINVAL;
    if (fd < 0)
        return TL_EBADF;
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return tl_translate_sys_error(errno);
    int is_socket = S_ISSOCK(sb.st_mode);
    if (!is_socket && kind <= TL_NS_DGRAM)
        return TL_ENOTSOCK;
    int rc = tl__kfd_prepare(fd);
    if (rc)
        return rc;
    if (kind == TL_NS_LISTENER && st->reserve < 0)
        st->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
    tl_ns_sock_t *s;
    if ((rc = tl__ksock_new(st, fd, kind, is_socket, handler, ctx, &s)))
        return rc;
    if (kind == TL_NS_PIPE_WRITE && (rc = tl__ksock_update_watch(s))) {
        tl__ksock_discard(s); /* the caller keeps fd */
        return rc;
    }
    *out = s;
    return 0;
}

static int k_set_handler(tl_ns_sock_t *s, const tl_ns_handler_t *handler,
                         void *ctx) {
    if (s == NULL)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    if (handler)
        s->h = *handler;
    else
        memset(&s->h, 0, sizeof s->h);
    s->ctx = ctx;
    return 0;
}

static int k_read_start(tl_ns_sock_t *s) {
    if (s == NULL || s->kind == TL_NS_LISTENER)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    if (s->kind == TL_NS_PIPE_WRITE || s->reading)
        return 0; /* a write pipe always watches for its reader's end */
    s->reading = 1;
    int rc = tl__ksock_update_watch(s);
    if (rc)
        s->reading = 0;
    return rc;
}

static int k_read_stop(tl_ns_sock_t *s) {
    if (s == NULL || s->kind == TL_NS_LISTENER)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    if (s->kind == TL_NS_PIPE_WRITE || !s->reading)
        return 0;
    /* Lazy: the reader watch stays until a readable event finds the socket
     * not reading (tl__ksock_on_readable drops it then), so a stop and a
     * start in one turn (a stream paused at its limit, then read by its
     * task) cost no epoll_ctl; any other update_watch drops it too. */
    s->reading = 0;
    return 0;
}

static void k_close(tl_ns_sock_t *s, int abort) {
    if (s == NULL || s->closed)
        return;
    tl_loop_t *loop = s->st->loop;
    s->closed = 1;
    tl__ksock_update_watch(s); /* removes both watchers */
    if (s->conn_h)
        tl_handle_cancel(loop, s->conn_h);
    if (s->retry_h)
        tl_handle_cancel(loop, s->retry_h);
    s->conn_h = s->retry_h = 0;
    if (abort && s->is_socket && s->kind == TL_NS_STREAM) {
        struct linger l = {1, 0};
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(s->fd);
    s->fd = -1;
    tl__ksock_enter(s);
    tl__ks_complete_all(s, TL_ECANCELLED);
    s->busy--;
    tl__ksock_maybe_free(s);
}

static int k_getaddr(tl_ns_sock_t *s, int peer, tl_sockaddr_t *out) {
    if (s == NULL || out == NULL)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    memset(out, 0, sizeof *out);
    socklen_t len = sizeof out->u.bytes;
    struct sockaddr *sa = (struct sockaddr *)out->u.bytes;
    if ((peer ? getpeername(s->fd, sa, &len) : getsockname(s->fd, sa, &len)) < 0)
        return tl_translate_sys_error(errno);
    out->len = len;
    return 0;
}

static int k_setopt(tl_ns_sock_t *s, int opt, int value) {
    if (s == NULL)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    int level = SOL_SOCKET, name;
    switch (opt) {
    case TL_NS_OPT_NODELAY:
        level = IPPROTO_TCP, name = TCP_NODELAY, value = value != 0;
        break;
    case TL_NS_OPT_KEEPALIVE:
        name = SO_KEEPALIVE, value = value != 0;
        break;
    case TL_NS_OPT_BROADCAST:
        name = SO_BROADCAST, value = value != 0;
        break;
    case TL_NS_OPT_SNDBUF:
        name = SO_SNDBUF;
        break;
    case TL_NS_OPT_RCVBUF:
        name = SO_RCVBUF;
        break;
    default:
        return TL_EINVAL;
    }
    if (!s->is_socket)
        return TL_ENOTSOCK;
    if (setsockopt(s->fd, level, name, &value, sizeof value) < 0)
        return tl_translate_sys_error(errno);
    return 0;
}

static int k_fileno(tl_ns_sock_t *s, tl_fd_t *out) {
    if (s == NULL || out == NULL)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    *out = s->fd;
    return 0;
}

static const tl_netstack_ops_t kernel_ops = {
    .size = sizeof(tl_netstack_ops_t),
    .name = "kernel",
    .create = k_create,
    .destroy = k_destroy,
    .listen = tl__ks_listen,
    .accept_start = tl__ks_accept_start,
    .accept_stop = tl__ks_accept_stop,
    .connect = tl__ks_connect,
    .open_dgram = tl__ks_open_dgram,
    .adopt = k_adopt,
    .set_handler = k_set_handler,
    .read_start = k_read_start,
    .read_stop = k_read_stop,
    .release = k_release,
    .try_send = tl__ks_try_send,
    .send = tl__ks_send,
    .sendfile = tl__ks_sendfile,
    .shutdown_write = tl__ks_shutdown_write,
    .close = k_close,
    .getaddr = k_getaddr,
    .setopt = k_setopt,
    .fileno = k_fileno,
};

const tl_netstack_ops_t *tl_netstack_kernel(void) { return &kernel_ops; }
