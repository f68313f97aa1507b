/*
 * Datagram endpoints (asyncio's _SelectorDatagramTransport and
 * loop.create_datagram_endpoint), over any netstack.
 *
 * Callbacks, in asyncio's order: connection_made (scheduled at creation);
 * then, once it ran, datagram_received(data, len, from) for each datagram
 * and error_received(err) for what the network reports (ICMP errors such
 * as TL_ECONNREFUSED on a connected endpoint whose peer port is closed,
 * and failures of queued datagrams); the endpoint stays open after an
 * error. pause_writing/resume_writing around the water marks;
 * connection_lost last, once. A datagram larger than the stack's receive
 * buffer (64 KiB for the kernel's; only Unix datagrams can be) arrives as
 * error_received(TL_EMSGSIZE), never cut.
 *
 * Sending (tl_transport_sendto). A datagram is tried at once (the stack's
 * try_send). What cannot go now is copied into a request of its own and
 * handed to the stack's send(), which keeps the requests in order; so the
 * "queue" is the set of requests the stack holds, and t->buffered counts
 * them as len + 8 each (asyncio adds the UDP header's 8 bytes, so a flood
 * of empty datagrams counts too). While any request is held, later
 * datagrams queue behind it (try_send must not jump the queue).
 *
 * Errors: what is known at the call is returned and nothing is sent or
 * queued: TL_EINVAL (bad arguments; a `to` that differs from the peer of a
 * connected endpoint, asyncio's ValueError), TL_EDESTADDRREQ (no `to` on
 * an unconnected endpoint), TL_EMSGSIZE (more than 65507 bytes over IPv4,
 * 65527 over IPv6, checked before the stack sees it), TL_ECLOSED, TL_ENOMEM,
 * and any error the stack reports for an immediate send (TL_EACCES for a
 * broadcast without allow_broadcast, TL_ENETUNREACH...; on a connected
 * endpoint the kernel may report here an ICMP error an earlier datagram
 * caused, TL_ECONNREFUSED). asyncio instead calls error_received from
 * inside sendto for an OSError of an immediate send; a C caller checks
 * the return, and so error_received never runs inside a method call.
 * A queued datagram that fails later goes to error_received. (Like
 * asyncio, pause_writing does run inside the sendto that crosses the
 * high-water mark.)
 *
 * Closing: close stops reading at once and waits until the stack has
 * sent every queued datagram, then releases the socket and schedules
 * connection_lost(0). abort releases the socket at once, dropping the
 * queue (no error_received, no resume_writing for them), and schedules
 * connection_lost(0).
 */
#include <string.h>

#ifdef _WIN32
#  include <winsock2.h>
#  include <ws2tcpip.h>
#else
#  include <netinet/in.h>
#  include <sys/socket.h>
#endif

#include "../core/alloc.h"
#include "../core/options.h"
#include "../loop/loop_int.h"
#include "transport_int.h"

/* asyncio's estimate of a datagram's overhead in the write buffer. */
enum { UDP_HEADER = 8 };
/* The largest UDP payloads: 65535 - 20 (IPv4 header) - 8, and 65535 - 8
 * (IPv6's payload length counts the UDP header, not its own). */
enum { UDP_MAX_IPV4 = 65507, UDP_MAX_IPV6 = 65527 };

typedef struct udp udp_t;

/* One queued datagram: the request, its one-piece chain, the destination
 * and a copy of the bytes, in one allocation. */
typedef struct udp_send {
    tl_ns_send_t req; /* first: done() gets it back */
    tl_iovec_t iov;
    size_t cost; /* what it adds to t->buffered */
    tl_sockaddr_t to;
    unsigned char data[];
} udp_send_t;

struct udp {
    tl_transport_t base; /* first: the base allocates and frees us as t */
    const tl_netstack_ops_t *ops;
    tl_ns_sock_t *sock; /* NULL once released */
    int family;         /* AF_* of the socket */
    int connected;
    tl_sockaddr_t sockname, peer; /* cached: asyncio's extra info */
    size_t held;        /* requests the stack holds */
    unsigned started : 1;   /* connection_made ran; reading may start */
    unsigned read_on : 1;   /* read_start is in force */
    unsigned dropping : 1;  /* releasing the socket: completions are ours */
};

static const struct sockaddr *sa(const tl_sockaddr_t *a) {
    return (const struct sockaddr *)(const void *)a->u.bytes;
}

static int addr_valid(const tl_sockaddr_t *a) {
    return a->len >= sizeof(sa(a)->sa_family) && a->len <= sizeof(a->u.bytes);
}

/* Is `to` the connected peer? Family, address and port (and the scope of
 * an IPv6 address) are compared; IPv6 flow labels are not part of who the
 * peer is. Other families: the bytes. */
static int same_peer(const tl_sockaddr_t *a, const tl_sockaddr_t *b) {
    const struct sockaddr *x = sa(a), *y = sa(b);
    if (x->sa_family != y->sa_family)
        return 0;
    if (x->sa_family == AF_INET) {
        if (a->len < sizeof(struct sockaddr_in) ||
            b->len < sizeof(struct sockaddr_in))
            return 0;
        const struct sockaddr_in *p = (const void *)a->u.bytes;
        const struct sockaddr_in *q = (const void *)b->u.bytes;
        return p->sin_port == q->sin_port &&
               p->sin_addr.s_addr == q->sin_addr.s_addr;
    }
    if (x->sa_family == AF_INET6) {
        if (a->len < sizeof(struct sockaddr_in6) ||
            b->len < sizeof(struct sockaddr_in6))
            return 0;
        const struct sockaddr_in6 *p = (const void *)a->u.bytes;
        const struct sockaddr_in6 *q = (const void *)b->u.bytes;
        return p->sin6_port == q->sin6_port &&
               p->sin6_scope_id == q->sin6_scope_id &&
               memcmp(&p->sin6_addr, &q->sin6_addr, sizeof p->sin6_addr) == 0;
    }
    return a->len == b->len && memcmp(a->u.bytes, b->u.bytes, a->len) == 0;
}

static size_t max_datagram(const udp_t *u) {
    if (u->family == AF_INET)
        return UDP_MAX_IPV4;
    if (u->family == AF_INET6)
        return UDP_MAX_IPV6;
    return SIZE_MAX; /* Unix datagrams and the like: the stack decides */
}

/* Give the socket back to the stack. abort: drop what it still holds
 * (their completions come back inside close and are only freed). */
static void release_sock(udp_t *u, int abort) {
    tl_ns_sock_t *s = u->sock;
    if (s == NULL)
        return;
    u->dropping = 1;
    u->sock = NULL;
    u->read_on = 0;
    u->ops->close(s, abort);
    u->dropping = 0;
    u->base.buffered = 0; /* nothing is held any more */
    u->held = 0;
}

/* The endpoint cannot go on (reading could not start). */
static void udp_fail(udp_t *u, int err) {
    u->base.closing = 1;
    release_sock(u, 1);
    tl__transport_lost(&u->base, err);
}

/* close() waited for the queue: is it empty now? */
static void maybe_finish_close(udp_t *u) {
    if (u->base.closing && !u->base.lost && u->held == 0) {
        release_sock(u, 0);
        tl__transport_lost(&u->base, 0);
    }
}

/* ---- the netstack's callbacks ----------------------------------------- */

static void on_recv(void *ctx, tl_ns_buf_t *buf, int status) {
    udp_t *u = ctx;
    tl_transport_t *t = &u->base;
    if (buf != NULL) {
        /* The protocol may close or abort us inside the call: the buffer
         * still goes back to this socket (release may follow close). */
        tl_ns_sock_t *s = u->sock;
        const tl_netstack_ops_t *ops = u->ops;
        if (!t->closing && t->proto.datagram_received)
            t->proto.datagram_received(t, buf->data, buf->len, buf->from,
                                       t->proto_ctx);
        ops->release(s, buf);
        return;
    }
    /* A datagram socket's errors are not final (ICMP errors of one send);
     * TL_EOF means nothing for datagrams. */
    if (status < 0 && status != TL_EOF && !t->closing &&
        t->proto.error_received)
        t->proto.error_received(t, status, t->proto_ctx);
}

static void on_sent(tl_ns_send_t *req, int status) {
    udp_send_t *e = (udp_send_t *)req;
    udp_t *u = req->ctx;
    tl_transport_t *t = &u->base;
    size_t cost = e->cost;
    tl__free(e);
    if (u->dropping)
        return; /* release_sock resets the counts */
    u->held--;
    t->buffered -= cost;
    if (status < 0 && status != TL_ECANCELLED && !t->lost &&
        t->proto.error_received)
        t->proto.error_received(t, status, t->proto_ctx);
    if (t->lost)
        return; /* aborted from error_received */
    tl__transport_buffer_changed(t);
    maybe_finish_close(u);
}

static const tl_ns_handler_t udp_handler = {on_recv, NULL, NULL};

/* ---- the kind's operations -------------------------------------------- */

static int udp_sendto(tl_transport_t *t, const void *data, size_t len,
                      const tl_sockaddr_t *to) {
    udp_t *u = (udp_t *)t;
    if (u->sock == NULL)
        return TL_ECLOSED;
    if (to != NULL) {
        if (!addr_valid(to))
            return TL_EINVAL;
        if (u->connected) {
            if (!same_peer(to, &u->peer))
                return TL_EINVAL;
            to = NULL; /* send(), as asyncio does for a connected socket */
        }
    } else if (!u->connected) {
        return TL_EDESTADDRREQ;
    }
    if (len > max_datagram(u))
        return TL_EMSGSIZE;
    if (data == NULL)
        data = ""; /* an empty datagram: no stack should see a NULL base */

    if (u->held == 0 && u->ops->try_send) {
        tl_iovec_t iov = {data, len};
        int64_t n = u->ops->try_send(u->sock, &iov, 1, to);
        if (n >= 0 && (size_t)n == len)
            return 0;
        if (n < 0 && n != TL_EAGAIN)
            return (int)n;
        /* TL_EAGAIN (or nothing taken): queue it. */
    }

    udp_send_t *e = tl__malloc(sizeof(*e) + len);
    if (e == NULL)
        return TL_ENOMEM;
    memset(&e->req, 0, sizeof e->req);
    if (len)
        memcpy(e->data, data, len);
    e->iov.base = e->data;
    e->iov.len = len;
    e->cost = len + UDP_HEADER;
    e->req.iov = &e->iov;
    e->req.n = 1;
    e->req.done = on_sent;
    e->req.ctx = u;
    if (to != NULL) {
        e->to = *to;
        e->req.to = &e->to;
    }
    int rc = u->ops->send(u->sock, &e->req);
    if (rc < 0) {
        tl__free(e);
        return rc;
    }
    u->held++;
    t->buffered += e->cost;
    tl__transport_buffer_changed(t);
    return 0;
}

static void udp_made(tl_transport_t *t) {
    udp_t *u = (udp_t *)t;
    u->started = 1;
    if (!t->reading || u->sock == NULL)
        return;
    int rc = u->ops->read_start(u->sock);
    if (rc < 0)
        udp_fail(u, rc);
    else
        u->read_on = 1;
}

static int udp_set_reading(tl_transport_t *t, int on) {
    udp_t *u = (udp_t *)t;
    /* Before connection_made ran, the base's t->reading is all there is:
     * made() starts reading if it is still on. */
    if (!u->started || u->sock == NULL || (on != 0) == u->read_on)
        return 0;
    int rc = on ? u->ops->read_start(u->sock) : u->ops->read_stop(u->sock);
    if (rc == 0)
        u->read_on = on != 0;
    return rc;
}

static int udp_close(tl_transport_t *t) {
    udp_t *u = (udp_t *)t;
    t->closing = 1;
    if (u->read_on && u->sock) {
        u->ops->read_stop(u->sock);
        u->read_on = 0;
    }
    maybe_finish_close(u);
    return 0;
}

static int udp_abort(tl_transport_t *t) {
    udp_t *u = (udp_t *)t;
    t->closing = 1;
    release_sock(u, 1);
    tl__transport_lost(t, 0);
    return 0;
}

static void udp_teardown(tl_transport_t *t) {
    release_sock((udp_t *)t, 1);
}

static int udp_getaddr(const tl_transport_t *t, int peer, tl_sockaddr_t *out) {
    const udp_t *u = (const udp_t *)t;
    if (peer && !u->connected)
        return TL_ENOTCONN;
    *out = peer ? u->peer : u->sockname;
    return 0;
}

static int udp_fileno(const tl_transport_t *t, tl_fd_t *out) {
    const udp_t *u = (const udp_t *)t;
    if (u->sock == NULL)
        return TL_ECLOSED;
    if (u->ops->fileno == NULL)
        return TL_ENOTSUP;
    return u->ops->fileno(u->sock, out);
}

static int udp_can_write_eof(const tl_transport_t *t) {
    (void)t;
    return 0;
}

static void udp_destroy(tl_transport_t *t) {
    /* The socket went before connection_lost (release_sock); nothing of
     * the netstack may be touched here (the loop may be gone). */
    (void)t;
}

static const tl__transport_vt_t udp_vt = {
    .kind = "udp",
    .write = NULL, /* sendto is the method: tl_transport_write is ENOTSUP */
    .write_eof = NULL,
    .can_write_eof = udp_can_write_eof,
    .close = udp_close,
    .abort = udp_abort,
    .set_reading = udp_set_reading,
    .getaddr = udp_getaddr,
    .fileno = udp_fileno,
    .sendto = udp_sendto,
    .sendfile = NULL,
    .teardown = udp_teardown,
    .destroy = udp_destroy,
    .made = udp_made,
};

/* ---- making an endpoint ----------------------------------------------- */

int tl_create_datagram_endpoint(tl_loop_t *loop, const tl_protocol_t *proto,
                                void *proto_ctx, const tl_sockaddr_t *local,
                                const tl_sockaddr_t *remote,
                                const tl_datagram_options_t *opts,
                                tl_transport_t **out) {
    if (out != NULL)
        *out = NULL;
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (proto == NULL || out == NULL || (local == NULL && remote == NULL) ||
        (local && !addr_valid(local)) || (remote && !addr_valid(remote)))
        return TL_EINVAL;
    tl_datagram_options_t o;
    if ((rc = tl__copy_options(&o, sizeof o, opts)) != 0)
        return rc;
    if (o.reuse_port < TL_OPT_OFF || o.reuse_port > TL_OPT_ON ||
        o.allow_broadcast < TL_OPT_OFF || o.allow_broadcast > TL_OPT_ON)
        return TL_EINVAL;
    if (proto->size != 0 && proto->size < sizeof(size_t))
        return TL_EINVAL;

    const tl_netstack_ops_t *ops;
    void *state;
    if ((rc = tl__netstack(loop, &ops, &state)) != 0)
        return rc;

    udp_t *u = tl__calloc(1, sizeof(*u));
    if (u == NULL)
        return TL_ENOMEM;
    u->ops = ops;
    u->family = sa(local ? local : remote)->sa_family;
    u->connected = remote != NULL;

    tl_ns_bind_options_t bo;
    memset(&bo, 0, sizeof bo);
    bo.size = sizeof bo;
    bo.reuse_port = o.reuse_port == TL_OPT_ON;
    bo.broadcast = o.allow_broadcast == TL_OPT_ON;
    /* No events reach u before reading starts, which is after init. */
    if ((rc = ops->open_dgram(state, local, remote, &bo, &udp_handler, u,
                              &u->sock)) != 0)
        goto fail;
    if ((rc = ops->getaddr(u->sock, 0, &u->sockname)) != 0)
        goto fail;
    if (u->connected && (rc = ops->getaddr(u->sock, 1, &u->peer)) != 0)
        goto fail;

    tl_transport_t *t = &u->base;
    if ((rc = tl__transport_init(t, &udp_vt, loop, proto, proto_ctx)) != 0)
        goto fail;
    if ((rc = tl__transport_schedule_made(t)) != 0) {
        tl__transport_discard(t); /* no callback ran or will */
        goto fail;
    }
    *out = t;
    return 0;

fail:
    if (u->sock)
        ops->close(u->sock, 1);
    tl__free(u);
    return rc;
}
