/*
 * An in-process user-space netstack for the tests: the second
 * implementation of include/tulip/netstack.h, with no syscall at all.
 *
 * One stack state (one loop) is one little network. Listeners and datagram
 * sockets are bound to tl_sockaddr_t addresses (port 0: a port from the
 * stack's own counter); a connect finds the listener whose address matches
 * and makes a connected pair of endpoints; datagrams go to the datagram
 * socket bound to their destination.
 *
 * Every socket sits on one list. A loop poller (tl_loop_add_poller) walks
 * it once per loop iteration and does everything that moves: it completes
 * connects, hands accepted connections and received buffers out, moves the
 * bytes of queued sends into the peer's receive queue while the peer's
 * window has room, completes sends, and reports EOF and errors. It answers
 * "busy" while one of those can make progress, so the loop spins; a sender
 * blocked on a peer that does not read is no progress, and the loop may
 * sleep. Operations only change state; callbacks come from the poller
 * (close() completing pending sends with TL_ECANCELLED is the one
 * exception the contract makes).
 *
 * A closed socket stays on the list, marked, until the poller's next run
 * (or destroy) frees it, so a callback that closes sockets never frees
 * memory the poller is walking. Received data lives in segments allocated
 * apart from the socket: a buffer lent by recv stays valid after close and
 * release() never reads the socket.
 *
 * Like the kernel: close(0) sends EOF after the data already handed over,
 * but resets the peer (TL_ECONNRESET) when unread data is left behind;
 * abort resets the peer; a send to a peer that has gone is taken, and the
 * RST that answers it fails the socket (TL_ECONNRESET, then TL_EPIPE).
 */
#define _POSIX_C_SOURCE 200809L
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "../src/core/alloc.h"
#include "ns_test.h"
#include "ns_user_int.h"

/* ---- addresses -------------------------------------------------------- */

int tl__us_addr_parse(const tl_sockaddr_t *sa, us_addr_t *out) {
    memset(out, 0, sizeof *out);
    if (sa == NULL || sa->len < sizeof(sa_family_t) || sa->len > sizeof sa->u)
        return TL_EINVAL;
    sa_family_t fam;
    memcpy(&fam, sa->u.bytes, sizeof fam);
    if (fam == AF_INET) {
        struct sockaddr_in in;
        if (sa->len < sizeof in)
            return TL_EINVAL;
        memcpy(&in, sa->u.bytes, sizeof in);
        out->family = AF_INET;
        out->port = ntohs(in.sin_port);
        memcpy(out->ip, &in.sin_addr, 4);
        return 0;
    }
    if (fam == AF_INET6) {
        struct sockaddr_in6 in6;
        if (sa->len < sizeof in6)
            return TL_EINVAL;
        memcpy(&in6, sa->u.bytes, sizeof in6);
        out->family = AF_INET6;
        out->port = ntohs(in6.sin6_port);
        memcpy(out->ip, &in6.sin6_addr, 16);
        return 0;
    }
    if (fam == AF_UNIX) {
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t n = sa->len > off ? sa->len - off : 0;
        if (n > sizeof out->path)
            return TL_EINVAL;
        memcpy(out->path, sa->u.bytes + off, n);
        /* a filesystem name ends at its NUL; an abstract one (leading NUL)
         * is the exact bytes */
        if (n && out->path[0] != '\0')
            n = strnlen(out->path, n);
        out->family = AF_UNIX;
        out->pathlen = n;
        return 0;
    }
    return TL_EAFNOSUPPORT;
}

void tl__us_addr_format(const us_addr_t *a, tl_sockaddr_t *out) {
    memset(out, 0, sizeof *out);
    if (a->family == AF_INET) {
        struct sockaddr_in in;
        memset(&in, 0, sizeof in);
        in.sin_family = AF_INET;
        in.sin_port = htons(a->port);
        memcpy(&in.sin_addr, a->ip, 4);
        memcpy(out->u.bytes, &in, sizeof in);
        out->len = sizeof in;
    } else if (a->family == AF_INET6) {
        struct sockaddr_in6 in6;
        memset(&in6, 0, sizeof in6);
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(a->port);
        memcpy(&in6.sin6_addr, a->ip, 16);
        memcpy(out->u.bytes, &in6, sizeof in6);
        out->len = sizeof in6;
    } else {
        sa_family_t fam = AF_UNIX;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        memcpy(out->u.bytes, &fam, sizeof fam);
        memcpy(out->u.bytes + off, a->path, a->pathlen);
        out->len = (uint32_t)(off + a->pathlen);
        if (a->pathlen && a->path[0] != '\0' && a->pathlen < sizeof a->path)
            out->len++; /* the kernel counts a filesystem name's NUL */
    }
}

int tl__us_ip_wild(const us_addr_t *a) {
    static const unsigned char zero[16];
    return a->family != AF_UNIX &&
           memcmp(a->ip, zero, a->family == AF_INET ? 4 : 16) == 0;
}

static int ip_eq(const us_addr_t *a, const us_addr_t *b) {
    return a->family == b->family &&
           memcmp(a->ip, b->ip, a->family == AF_INET ? 4 : 16) == 0;
}

/* Does a socket bound to `bound` receive what is sent to `to`? */
int tl__us_addr_reaches(const us_addr_t *bound, const us_addr_t *to) {
    if (bound->family != to->family)
        return 0;
    if (bound->family == AF_UNIX)
        return bound->pathlen && bound->pathlen == to->pathlen &&
               memcmp(bound->path, to->path, to->pathlen) == 0;
    return bound->port == to->port &&
           (tl__us_ip_wild(bound) || tl__us_ip_wild(to) || ip_eq(bound, to));
}

/* Would binding b clash with a (same port, overlapping addresses)? */
static int addr_clash(const us_addr_t *a, const us_addr_t *b) {
    return tl__us_addr_reaches(a, b);
}

int tl__us_addr_eq(const us_addr_t *a, const us_addr_t *b) {
    if (a->family != b->family)
        return 0;
    if (a->family == AF_UNIX)
        return a->pathlen == b->pathlen &&
               memcmp(a->path, b->path, a->pathlen) == 0;
    return a->port == b->port && ip_eq(a, b);
}

/* ---- state, sockets, segments --------------------------------------------- */

static int port_used(us_state_t *st, int family, uint16_t port) {
    for (us_sock_t *s = st->socks; s; s = s->next)
        if (!s->closed && s->bound && s->la.family == family &&
            s->la.port == port)
            return 1;
    return 0;
}

/* Give a an address if it has none (port 0, or an unnamed Unix socket). */
static int assign(us_state_t *st, us_addr_t *a) {
    if (a->family == AF_UNIX) {
        if (a->pathlen == 0) { /* autobind: an abstract name */
            int n = snprintf(a->path + 1, sizeof a->path - 1, "tl-us-%05u",
                             (unsigned)st->next_port++);
            a->path[0] = '\0';
            a->pathlen = 1 + (size_t)n;
        }
        return 0;
    }
    if (a->port)
        return 0;
    for (int tries = 0; tries < US_PORT_LAST - US_PORT_FIRST; tries++) {
        uint16_t p = st->next_port;
        st->next_port = p >= US_PORT_LAST ? US_PORT_FIRST : p + 1;
        if (!port_used(st, a->family, p)) {
            a->port = p;
            return 0;
        }
    }
    return TL_EADDRINUSE;
}

us_sock_t *tl__us_sock_new(us_state_t *st, int kind,
                           const tl_ns_handler_t *h, void *ctx) {
    us_sock_t *s = tl__calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->st = st;
    s->kind = kind;
    if (h)
        s->h = *h;
    s->ctx = ctx;
    s->window = st->window;
    /* append: the poller walks sockets in creation order */
    s->prev = st->tail;
    if (st->tail)
        st->tail->next = s;
    else
        st->socks = s;
    st->tail = s;
    st->live++;
    return s;
}

static void seg_free(us_seg_t *g) { tl__free(g); }

static void free_rx(us_sock_t *s) {
    while (s->rx_head) {
        us_seg_t *g = s->rx_head;
        s->rx_head = g->next;
        seg_free(g);
    }
    s->rx_tail = NULL;
    s->rx_bytes = 0;
}

static void sock_unlink_free(us_state_t *st, us_sock_t *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        st->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        st->tail = s->prev;
    free_rx(s);
    tl__free(s);
}

/* Free the sockets closed since the last run (never during a walk). */
void tl__us_reap(us_state_t *st) {
    if (!st->dead)
        return;
    for (us_sock_t *s = st->socks, *next; s; s = next) {
        next = s->next;
        if (s->closed)
            sock_unlink_free(st, s);
    }
    st->dead = 0;
}

/* A segment with room for cap bytes. */
us_seg_t *tl__us_seg_new(us_state_t *st, size_t cap) {
    us_seg_t *g = tl__malloc(offsetof(us_seg_t, data) + cap);
    if (g == NULL)
        return NULL;
    memset(g, 0, offsetof(us_seg_t, data));
    g->st = st;
    g->cap = cap;
    g->magic = US_SEG_MAGIC;
    return g;
}

void tl__us_rx_append(us_sock_t *r, us_seg_t *g) {
    g->next = NULL;
    if (r->rx_tail)
        r->rx_tail->next = g;
    else
        r->rx_head = g;
    r->rx_tail = g;
    r->rx_bytes += g->len;
}

/* Copy up to max bytes of iov[*idx..] (from *off in iov[*idx]) into r's
 * receive queue, filling its last segment first. Returns the bytes copied
 * (fewer when memory runs out). */
size_t tl__us_stream_copy(us_sock_t *r, const tl_iovec_t *iov, size_t n,
                          size_t *idx, size_t *off, size_t max) {
    size_t done = 0;
    while (done < max && *idx < n) {
        if (iov[*idx].len == *off) {
            (*idx)++;
            *off = 0;
            continue;
        }
        us_seg_t *g = r->rx_tail;
        if (g == NULL || g->len == g->cap) {
            size_t want = max - done;
            if (want > US_SEG_MAX)
                want = US_SEG_MAX;
            g = tl__us_seg_new(r->st, want < US_SEG_MIN ? US_SEG_MIN : want);
            if (g == NULL)
                break;
            tl__us_rx_append(r, g);
        }
        size_t k = iov[*idx].len - *off;
        if (k > g->cap - g->len)
            k = g->cap - g->len;
        if (k > max - done)
            k = max - done;
        memcpy(g->data + g->len, (const unsigned char *)iov[*idx].base + *off,
               k);
        g->len += k;
        r->rx_bytes += k;
        *off += k;
        done += k;
    }
    return done;
}

size_t tl__us_iov_total(const tl_iovec_t *iov, size_t n) {
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += iov[i].len;
    return t;
}

/* ---- the operations ------------------------------------------------------ */


static int us_create(tl_loop_t *loop, void *config, void **state) {
    const tl_test_user_config_t *cfg = config;
    us_state_t *st = tl__calloc(1, sizeof *st);
    if (st == NULL)
        return TL_ENOMEM;
    st->loop = loop;
    st->window = cfg && cfg->window ? cfg->window : TL_TEST_USER_WINDOW;
    st->next_port = US_PORT_FIRST;
    int rc = tl_loop_add_poller(loop, tl__us_poll, st);
    if (rc) {
        tl__free(st);
        return rc;
    }
    *state = st;
    return 0;
}

static void us_destroy(void *state) {
    us_state_t *st = state;
    if (st == NULL)
        return;
    tl_loop_remove_poller(st->loop, tl__us_poll, st);
    if (st->live)
        fprintf(stderr, "ns_user: destroyed with %ld socket(s) open\n",
                st->live);
    if (st->lent)
        fprintf(stderr, "ns_user: destroyed with %ld buffer(s) not released\n",
                st->lent);
    while (st->socks)
        sock_unlink_free(st, st->socks);
    tl__free(st);
}

static int us_listen(void *state, const tl_sockaddr_t *addr,
                     const tl_ns_bind_options_t *opts,
                     const tl_ns_handler_t *handler, void *ctx,
                     tl_ns_sock_t **out) {
    us_state_t *st = state;
    us_addr_t a;
    if (st == NULL || out == NULL)
        return TL_EINVAL;
    int rc = tl__us_addr_parse(addr, &a);
    if (rc)
        return rc;
    int reuse_port = opts && opts->reuse_port;
    for (us_sock_t *o = st->socks; o; o = o->next)
        if (!o->closed && o->kind == TL_NS_LISTENER && addr_clash(&o->la, &a) &&
            !(reuse_port && o->reuse_port))
            return TL_EADDRINUSE;
    if ((rc = assign(st, &a)))
        return rc;
    us_sock_t *s = tl__us_sock_new(st, TL_NS_LISTENER, handler, ctx);
    if (s == NULL)
        return TL_ENOMEM;
    s->la = a;
    s->bound = 1;
    s->reuse_port = reuse_port;
    s->backlog = opts && opts->backlog > 0 ? opts->backlog : 100;
    *out = (tl_ns_sock_t *)s;
    return 0;
}

static int us_accept_start(tl_ns_sock_t *ls) {
    us_sock_t *s = (us_sock_t *)ls;
    if (s == NULL || s->kind != TL_NS_LISTENER)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    s->accepting = 1;
    return 0;
}

static int us_accept_stop(tl_ns_sock_t *ls) {
    us_sock_t *s = (us_sock_t *)ls;
    if (s == NULL || s->kind != TL_NS_LISTENER)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    s->accepting = 0;
    return 0;
}

static int us_connect(void *state, const tl_sockaddr_t *remote,
                      const tl_sockaddr_t *local,
                      const tl_ns_handler_t *handler, void *ctx,
                      tl_ns_sock_t **out) {
    us_state_t *st = state;
    us_addr_t ra, la;
    if (st == NULL || out == NULL)
        return TL_EINVAL;
    int rc = tl__us_addr_parse(remote, &ra);
    if (rc)
        return rc;
    if (ra.family != AF_UNIX && ra.port == 0)
        return TL_EADDRNOTAVAIL;
    if (local) {
        if ((rc = tl__us_addr_parse(local, &la)))
            return rc;
        if (la.family != ra.family)
            return TL_EAFNOSUPPORT;
    } else {
        memset(&la, 0, sizeof la);
        la.family = ra.family;
    }
    if (la.family != AF_UNIX && tl__us_ip_wild(&la)) /* the route's source: ra's */
        memcpy(la.ip, ra.ip, sizeof la.ip);
    if (la.family == AF_UNIX && la.pathlen == 0) {
        /* an unnamed client stays unnamed */
    } else if ((rc = assign(st, &la))) {
        return rc;
    }
    us_sock_t *s = tl__us_sock_new(st, TL_NS_STREAM, handler, ctx);
    if (s == NULL)
        return TL_ENOMEM;
    s->la = la;
    s->ra = ra;
    s->bound = la.family != AF_UNIX;
    s->connecting = 1;
    *out = (tl_ns_sock_t *)s;
    return 0;
}

static int us_open_dgram(void *state, const tl_sockaddr_t *local,
                         const tl_sockaddr_t *remote,
                         const tl_ns_bind_options_t *opts,
                         const tl_ns_handler_t *handler, void *ctx,
                         tl_ns_sock_t **out) {
    us_state_t *st = state;
    us_addr_t la, ra;
    int rc;
    if (st == NULL || out == NULL || (local == NULL && remote == NULL))
        return TL_EINVAL;
    if (remote && (rc = tl__us_addr_parse(remote, &ra)))
        return rc;
    if (local) {
        if ((rc = tl__us_addr_parse(local, &la)))
            return rc;
        if (remote && la.family != ra.family)
            return TL_EAFNOSUPPORT;
    } else {
        memset(&la, 0, sizeof la);
        la.family = ra.family;
    }
    int reuse_port = opts && opts->reuse_port;
    int named = la.family != AF_UNIX || la.pathlen;
    if (named && (la.family == AF_UNIX || la.port))
        for (us_sock_t *o = st->socks; o; o = o->next)
            if (!o->closed && o->kind == TL_NS_DGRAM && o->bound &&
                addr_clash(&o->la, &la) && !(reuse_port && o->reuse_port))
                return TL_EADDRINUSE;
    if (named && (rc = assign(st, &la)))
        return rc;
    us_sock_t *s = tl__us_sock_new(st, TL_NS_DGRAM, handler, ctx);
    if (s == NULL)
        return TL_ENOMEM;
    s->la = la;
    s->bound = named;
    s->reuse_port = reuse_port;
    if (remote) {
        s->ra = ra;
        s->connected = 1;
    }
    *out = (tl_ns_sock_t *)s;
    return 0;
}

static int us_set_handler(tl_ns_sock_t *ss, const tl_ns_handler_t *handler,
                          void *ctx) {
    us_sock_t *s = (us_sock_t *)ss;
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

static int us_read_start(tl_ns_sock_t *ss) {
    us_sock_t *s = (us_sock_t *)ss;
    if (s == NULL || s->kind == TL_NS_LISTENER)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    s->reading = 1;
    return 0;
}

static int us_read_stop(tl_ns_sock_t *ss) {
    us_sock_t *s = (us_sock_t *)ss;
    if (s == NULL || s->kind == TL_NS_LISTENER)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    s->reading = 0;
    return 0;
}

/* s is not read: the buffer carries what it needs, and s may be closed
 * (and freed) already. */
static void us_release(tl_ns_sock_t *ss, tl_ns_buf_t *buf) {
    (void)ss;
    if (buf == NULL)
        return;
    us_seg_t *g = buf->priv[0];
    if (g == NULL || g->magic != US_SEG_MAGIC || &g->buf != buf) {
        fprintf(stderr, "ns_user: release of a buffer it did not lend\n");
        return;
    }
    g->magic = 0;
    g->st->lent--;
    seg_free(g);
}

/* A send on a stream whose peer has gone: the bytes are taken and the RST
 * that answers them fails the socket. */
static void sent_into_void(us_sock_t *s) {
    if (!s->err)
        tl__us_fail(s, TL_ECONNRESET, TL_EPIPE);
}

static int64_t us_try_send(tl_ns_sock_t *ss, const tl_iovec_t *iov, size_t n,
                           const tl_sockaddr_t *to) {
    us_sock_t *s = (us_sock_t *)ss;
    if (s == NULL || (iov == NULL && n))
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    if (s->kind == TL_NS_DGRAM) {
        if (s->tx_head) { /* a send() is pending: this one would pass it */
            s->st->order_violations++;
            return TL_EAGAIN;
        }
        return tl__us_dgram_send(s, iov, n, to);
    }
    if (s->kind != TL_NS_STREAM)
        return TL_ENOTCONN;
    if (s->tx_err)
        return s->tx_err;
    if (s->wr_shut)
        return TL_EPIPE;
    if (s->connecting)
        return 0;
    if (s->tx_head) {
        s->st->order_violations++;
        return 0;
    }
    size_t total = tl__us_iov_total(iov, n);
    if (total == 0)
        return 0;
    if (total > INT64_MAX)
        total = INT64_MAX;
    us_sock_t *p = s->peer;
    if (p == NULL) {
        sent_into_void(s);
        return (int64_t)total;
    }
    size_t room = p->rx_bytes < p->window ? p->window - p->rx_bytes : 0;
    size_t idx = 0, off = 0;
    size_t k = tl__us_stream_copy(p, iov, n, &idx, &off, total < room ? total : room);
    if (k == 0 && room && total)
        return TL_ENOMEM;
    return (int64_t)k;
}

static int us_send(tl_ns_sock_t *ss, tl_ns_send_t *req) {
    us_sock_t *s = (us_sock_t *)ss;
    if (s == NULL || req == NULL || (req->iov == NULL && req->n) ||
        req->done == NULL)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    if (s->kind == TL_NS_LISTENER)
        return TL_ENOTCONN;
    if (s->tx_err)
        return s->tx_err;
    if (s->kind == TL_NS_STREAM && s->wr_shut)
        return TL_EPIPE;
    if (s->kind == TL_NS_DGRAM) {
        int rc = tl__us_dgram_check(s, req);
        if (rc)
            return rc;
    }
    US_SET(req, NULL, 0, 0);
    if (s->tx_tail)
        s->tx_tail->priv[0] = req;
    else
        s->tx_head = req;
    s->tx_tail = req;
    return 0;
}

static int us_shutdown_write(tl_ns_sock_t *ss) {
    us_sock_t *s = (us_sock_t *)ss;
    if (s == NULL)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    if (s->kind != TL_NS_STREAM)
        return TL_ENOTCONN;
    if (s->tx_err && !s->peer)
        return TL_ENOTCONN;
    s->wr_shut = 1;
    return 0;
}

/* Complete the sends still queued with status, in order (s may be closed
 * meanwhile by a done callback: the queue is detached first). */
static void cancel_sends(us_sock_t *s, int status) {
    tl_ns_send_t *r = s->tx_head;
    s->tx_head = s->tx_tail = NULL;
    while (r) {
        tl_ns_send_t *next = US_NEXT(r);
        r->done(r, status);
        r = next;
    }
}

/* s fails: err is reported through recv (after the data already queued),
 * tx_err answers the sends from now on. */
void tl__us_fail(us_sock_t *s, int err, int tx_err) {
    if (!s->err)
        s->err = err;
    s->tx_err = tx_err;
    if (s->peer) {
        s->peer->peer = NULL;
        s->peer = NULL;
    }
}

void tl__us_close(us_sock_t *s, int abort) {
    us_state_t *st = s->st;
    if (s->closed)
        return;
    s->closed = 1;
    st->dead = 1;
    st->live--;
    cancel_sends(s, TL_ECANCELLED);
    if (s->kind == TL_NS_STREAM) {
        us_sock_t *p = s->peer;
        if (p) {
            p->peer = NULL;
            s->peer = NULL;
            if (abort || s->rx_bytes)
                tl__us_fail(p, TL_ECONNRESET, TL_ECONNRESET);
            else
                p->eof_in = 1; /* after what p has queued */
        }
        if (s->listener) { /* never accepted: off the backlog */
            us_sock_t *l = s->listener, **pp = &l->acc_head;
            while (*pp && *pp != s)
                pp = &(*pp)->acc_next;
            if (*pp)
                *pp = s->acc_next;
            l->nacc--;
            s->listener = NULL;
        }
    } else if (s->kind == TL_NS_LISTENER) {
        /* connections nobody accepted are reset; connects still on their
         * way find no listener and are refused */
        while (s->acc_head) {
            us_sock_t *c = s->acc_head;
            tl__us_close(c, 1);
        }
    }
    free_rx(s);
}

static void us_close(tl_ns_sock_t *ss, int abort) {
    if (ss)
        tl__us_close((us_sock_t *)ss, abort);
}

static int us_getaddr(tl_ns_sock_t *ss, int peer, tl_sockaddr_t *out) {
    us_sock_t *s = (us_sock_t *)ss;
    if (s == NULL || out == NULL)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    if (!peer) {
        tl__us_addr_format(&s->la, out);
        return 0;
    }
    if (s->kind == TL_NS_LISTENER || s->connecting ||
        (s->kind == TL_NS_DGRAM && !s->connected) ||
        (s->kind == TL_NS_STREAM && !s->connected))
        return TL_ENOTCONN;
    tl__us_addr_format(&s->ra, out);
    return 0;
}

static int us_setopt(tl_ns_sock_t *ss, int opt, int value) {
    us_sock_t *s = (us_sock_t *)ss;
    if (s == NULL || value < 0)
        return TL_EINVAL;
    if (s->closed)
        return TL_ECLOSED;
    switch (opt) {
    case TL_NS_OPT_NODELAY:
    case TL_NS_OPT_KEEPALIVE:
        return s->kind == TL_NS_DGRAM ? TL_ENOPROTOOPT : 0;
    case TL_NS_OPT_BROADCAST:
        return s->kind == TL_NS_DGRAM ? 0 : TL_ENOPROTOOPT;
    case TL_NS_OPT_SNDBUF:
        return 0;
    case TL_NS_OPT_RCVBUF: /* the receive window, as the kernel's buffer */
        s->window = value > 0 ? (size_t)value : 1;
        return 0;
    default:
        return TL_ENOPROTOOPT;
    }
}

static int us_fileno(tl_ns_sock_t *s, tl_fd_t *out) {
    (void)s;
    (void)out;
    return TL_ENOTSUP;
}

static const tl_netstack_ops_t user_ops = {
    .size = sizeof(tl_netstack_ops_t),
    .name = "user",
    .create = us_create,
    .destroy = us_destroy,
    .listen = us_listen,
    .accept_start = us_accept_start,
    .accept_stop = us_accept_stop,
    .connect = us_connect,
    .open_dgram = us_open_dgram,
    .adopt = NULL,
    .set_handler = us_set_handler,
    .read_start = us_read_start,
    .read_stop = us_read_stop,
    .release = us_release,
    .try_send = us_try_send,
    .send = us_send,
    .sendfile = NULL,
    .shutdown_write = us_shutdown_write,
    .close = us_close,
    .getaddr = us_getaddr,
    .setopt = us_setopt,
    .fileno = us_fileno,
};

const tl_netstack_ops_t *tl_test_netstack_user(void) { return &user_ops; }

void tl_test_user_stats(void *state, tl_test_user_stats_t *out) {
    const us_state_t *st = state;
    memset(out, 0, sizeof *out);
    if (st == NULL)
        return;
    out->sockets = st->live;
    out->lent = st->lent;
    out->polls = st->polls;
    out->busy_polls = st->busy_polls;
    out->order_violations = st->order_violations;
    out->dgram_drops = st->dgram_drops;
}

/* The tests' TL_NETSTACK names (overrides the weak one of tests/main.c). */
const tl_netstack_ops_t *tl_test_netstack_by_name(const char *name,
                                                  void **config) {
    *config = NULL;
    if (name == NULL || strcmp(name, "kernel") == 0)
        return tl_netstack_kernel();
    if (strcmp(name, "user") == 0)
        return tl_test_netstack_user();
    if (strcmp(name, "fault") == 0)
        return tl_test_netstack_fault();
    return NULL;
}
