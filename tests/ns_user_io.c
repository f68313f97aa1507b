/*
 * The user-space test netstack's poller (what moves: connects, accepts,
 * bytes, completions, EOF and errors) and its datagrams. See ns_user.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "../src/core/alloc.h"
#include "ns_test.h"
#include "ns_user_int.h"

static tl_ns_send_t *pop_send(us_sock_t *s) {
    tl_ns_send_t *r = s->tx_head;
    s->tx_head = US_NEXT(r);
    if (s->tx_head == NULL)
        s->tx_tail = NULL;
    return r;
}

static us_sock_t *find_listener(us_state_t *st, const us_addr_t *to) {
    for (us_sock_t *l = st->socks; l; l = l->next)
        if (!l->closed && l->kind == TL_NS_LISTENER &&
            tl__us_addr_reaches(&l->la, to))
            return l;
    return NULL;
}

static size_t room_of(const us_sock_t *p) {
    return p->rx_bytes < p->window ? p->window - p->rx_bytes : 0;
}

/* Lend g to the consumer of s. */
static void lend(us_sock_t *s, us_seg_t *g, const tl_sockaddr_t *from) {
    g->next = NULL;
    g->buf.data = g->data;
    g->buf.len = g->len;
    g->buf.from = from;
    g->buf.priv[0] = g;
    s->st->lent++;
    s->h.recv(s->ctx, &g->buf, 0);
}

/* ---- streams ------------------------------------------------------------ */

/* A connect reaches its listener: the pair is made and the server's end
 * waits on the backlog; no listener: refused. */
static void connect_step(us_sock_t *s) {
    us_state_t *st = s->st;
    us_sock_t *l = find_listener(st, &s->ra);
    if (l == NULL) {
        s->connecting = 0;
        s->tx_err = TL_ECONNREFUSED;
        if (s->h.connected)
            s->h.connected(s->ctx, TL_ECONNREFUSED);
        return;
    }
    if (l->nacc >= l->backlog)
        return; /* a full backlog: the SYN waits */
    us_sock_t *c = tl__us_sock_new(st, TL_NS_STREAM, NULL, NULL);
    if (c == NULL)
        return; /* tried again next run */
    c->la = l->la;
    if (c->la.family != AF_UNIX && tl__us_ip_wild(&c->la))
        memcpy(c->la.ip, s->ra.ip, sizeof c->la.ip);
    c->ra = s->la;
    c->connected = 1;
    c->peer = s;
    s->peer = c;
    c->listener = l;
    us_sock_t **pp = &l->acc_head;
    while (*pp)
        pp = &(*pp)->acc_next;
    *pp = c;
    l->nacc++;
    s->connecting = 0;
    s->connected = 1;
    if (s->h.connected)
        s->h.connected(s->ctx, 0);
}

/* Move queued sends into the peer's window, completing each one whose
 * last byte went; then the FIN, once every send is out. */
static void tx_step(us_sock_t *s) {
    while (s->tx_head && !s->closed) {
        tl_ns_send_t *r = s->tx_head;
        if (s->tx_err) {
            pop_send(s);
            r->done(r, s->tx_err);
            continue;
        }
        if (s->connecting)
            return;
        us_sock_t *p = s->peer;
        if (p == NULL) { /* taken; the RST that answers fails s */
            tl__us_fail(s, TL_ECONNRESET, TL_EPIPE);
            pop_send(s);
            r->done(r, 0);
            continue;
        }
        size_t room = room_of(p);
        if (room == 0)
            return;
        size_t idx = US_IDX(r), off = US_OFF(r);
        tl__us_stream_copy(p, r->iov, r->n, &idx, &off, room);
        while (idx < r->n && off == r->iov[idx].len) {
            idx++;
            off = 0;
        }
        if (idx < r->n) { /* the window is full (or memory ran out) */
            US_SET(r, US_NEXT(r), idx, off);
            return;
        }
        pop_send(s);
        r->done(r, 0);
    }
    if (!s->closed && !s->tx_head && s->wr_shut && !s->fin_sent &&
        s->connected) {
        s->fin_sent = 1;
        if (s->peer)
            s->peer->eof_in = 1;
    }
}

/* Hand out the received data, then EOF, then the error. */
static void rx_step(us_sock_t *s) {
    while (!s->closed && s->reading && s->h.recv) {
        us_seg_t *g = s->rx_head;
        if (g) {
            s->rx_head = g->next;
            if (s->rx_head == NULL)
                s->rx_tail = NULL;
            s->rx_bytes -= g->len;
            lend(s, g, NULL);
        } else if (s->eof_in && !s->eof_done) {
            s->eof_done = 1;
            s->h.recv(s->ctx, NULL, TL_EOF);
        } else if (s->err && !s->err_done) {
            s->err_done = 1;
            s->h.recv(s->ctx, NULL, s->err);
        } else {
            return;
        }
    }
}

static void listener_step(us_sock_t *l) {
    while (!l->closed && l->accepting && l->h.accept && l->acc_head) {
        us_sock_t *c = l->acc_head;
        l->acc_head = c->acc_next;
        l->nacc--;
        c->acc_next = NULL;
        c->listener = NULL;
        l->h.accept(l->ctx, (tl_ns_sock_t *)c, 0);
    }
}

/* ---- datagrams ---------------------------------------------------------- */

static int dgram_dest(us_sock_t *s, const tl_sockaddr_t *to, size_t total,
                      us_addr_t *dst) {
    if (to) {
        int rc = tl__us_addr_parse(to, dst);
        if (rc)
            return rc;
    } else if (s->connected) {
        *dst = s->ra;
    } else {
        return TL_EDESTADDRREQ;
    }
    if (dst->family != s->la.family)
        return TL_EAFNOSUPPORT;
    if (dst->family != AF_UNIX && dst->port == 0)
        return TL_EINVAL;
    if (total > US_DGRAM_MAX)
        return TL_EMSGSIZE;
    return 0;
}

int tl__us_dgram_check(us_sock_t *s, const tl_ns_send_t *req) {
    us_addr_t dst;
    return dgram_dest(s, req->to, tl__us_iov_total(req->iov, req->n), &dst);
}

int64_t tl__us_dgram_send(us_sock_t *s, const tl_iovec_t *iov, size_t n,
                          const tl_sockaddr_t *to) {
    us_state_t *st = s->st;
    us_addr_t dst;
    size_t total = tl__us_iov_total(iov, n);
    int rc = dgram_dest(s, to, total, &dst);
    if (rc)
        return rc;
    us_addr_t src = s->la; /* as the receiver sees it */
    if (src.family != AF_UNIX && tl__us_ip_wild(&src))
        memcpy(src.ip, dst.ip, sizeof src.ip);
    us_sock_t *r = NULL;
    for (us_sock_t *o = st->socks; o && r == NULL; o = o->next)
        if (!o->closed && o->kind == TL_NS_DGRAM && o->bound &&
            tl__us_addr_reaches(&o->la, &dst) &&
            (!o->connected || tl__us_addr_reaches(&o->ra, &src)))
            r = o;
    if (r == NULL) { /* port unreachable: connected sockets hear of it */
        if (s->connected)
            s->dg_errs++;
        return (int64_t)total;
    }
    if (r->rx_bytes + total > r->window) {
        st->dgram_drops++;
        return (int64_t)total;
    }
    us_seg_t *g = tl__us_seg_new(st, total ? total : 1);
    if (g == NULL)
        return TL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        memcpy(g->data + g->len, iov[i].base, iov[i].len);
        g->len += iov[i].len;
    }
    tl__us_addr_format(&src, &g->from);
    tl__us_rx_append(r, g);
    return (int64_t)total;
}

static void dgram_step(us_sock_t *s) {
    while (!s->closed && s->tx_head) {
        tl_ns_send_t *r = pop_send(s);
        int64_t rc = tl__us_dgram_send(s, r->iov, r->n, r->to);
        r->done(r, rc < 0 ? (int)rc : 0);
    }
    while (!s->closed && s->reading && s->h.recv) {
        us_seg_t *g = s->rx_head;
        if (g) {
            s->rx_head = g->next;
            if (s->rx_head == NULL)
                s->rx_tail = NULL;
            s->rx_bytes -= g->len;
            lend(s, g, &g->from);
        } else if (s->dg_errs) {
            s->dg_errs--;
            s->h.recv(s->ctx, NULL, TL_ECONNREFUSED);
        } else {
            return;
        }
    }
}

/* ---- the poller --------------------------------------------------------- */

/* Could the poller's next run make progress on s? */
static int has_work(us_sock_t *s) {
    int rx = s->reading && s->h.recv;
    switch (s->kind) {
    case TL_NS_STREAM:
        if (s->connecting) {
            us_sock_t *l = find_listener(s->st, &s->ra);
            return l == NULL || l->nacc < l->backlog;
        }
        if (s->tx_head &&
            (s->tx_err || s->peer == NULL || room_of(s->peer) > 0))
            return 1;
        if (s->wr_shut && !s->fin_sent && !s->tx_head && s->connected)
            return 1;
        return rx && (s->rx_head || (s->eof_in && !s->eof_done) ||
                      (s->err && !s->err_done));
    case TL_NS_LISTENER:
        return s->accepting && s->h.accept && s->acc_head;
    default:
        return s->tx_head || (rx && (s->rx_head || s->dg_errs));
    }
}

int tl__us_poll(tl_loop_t *loop, void *ctx) {
    us_state_t *st = ctx;
    (void)loop;
    st->polls++;
    tl__us_reap(st);
    /* Callbacks may close sockets (they stay listed until the reap) and
     * make new ones (appended, so this walk reaches them too). */
    for (us_sock_t *s = st->socks; s; s = s->next) {
        if (s->closed)
            continue;
        if (s->kind == TL_NS_STREAM) {
            if (s->connecting)
                connect_step(s);
            if (!s->closed && !s->connecting)
                tx_step(s);
            if (!s->closed)
                rx_step(s);
        } else if (s->kind == TL_NS_LISTENER) {
            listener_step(s);
        } else {
            dgram_step(s);
        }
    }
    tl__us_reap(st);
    for (us_sock_t *s = st->socks; s; s = s->next)
        if (!s->closed && has_work(s)) {
            st->busy_polls++;
            return 1;
        }
    return 0;
}
