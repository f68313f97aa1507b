/*
 * netstack_user: the user-space test netstack (tests/ns_user.c) through
 * its operations, checking what a transport relies on (netstack.h):
 * connects and accepts, bytes in order, the receive window, lent buffers,
 * EOF, resets, close semantics, datagrams, no callback from inside an
 * operation, and a loop that spins only while the stack has work.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "ns_test.h"
#include "tl_test.h"

#define MS (1000000LL)

static const tl_netstack_ops_t *O;

/* ---- harness ------------------------------------------------------------ */

typedef struct ep {
    tl_ns_sock_t *s;
    int connected_calls, connected_status;
    int recv_calls, eof, err, after_final;
    unsigned char *data;
    size_t len, cap;
    int hold;
    tl_ns_buf_t *held[64];
    int nheld;
    tl_ns_sock_t *accepted[200];
    int naccepted, accept_err;
    const tl_sockaddr_t *last_from;
    tl_sockaddr_t from;
} ep_t;

static void ep_recv(void *ctx, tl_ns_buf_t *buf, int status) {
    ep_t *e = ctx;
    e->recv_calls++;
    if (e->err)
        e->after_final++;
    if (buf) {
        CU_ASSERT_EQUAL(status, 0);
        if (e->eof)
            e->after_final++;
        if (e->len + buf->len > e->cap) {
            e->cap = (e->len + buf->len) * 2;
            e->data = realloc(e->data, e->cap);
        }
        memcpy(e->data + e->len, buf->data, buf->len);
        e->len += buf->len;
        if (buf->from)
            e->from = *buf->from;
        if (e->hold && e->nheld < 64)
            e->held[e->nheld++] = buf;
        else
            O->release(e->s, buf);
    } else if (status == TL_EOF) {
        e->eof++;
    } else {
        e->err = status;
    }
}

static void ep_accept(void *ctx, tl_ns_sock_t *conn, int status) {
    ep_t *e = ctx;
    if (status < 0) {
        e->accept_err = status;
        return;
    }
    e->accepted[e->naccepted++] = conn;
}

static void ep_connected(void *ctx, int status) {
    ep_t *e = ctx;
    e->connected_calls++;
    e->connected_status = status;
}

static const tl_ns_handler_t H = {ep_recv, ep_accept, ep_connected};

static void ep_free(ep_t *e) {
    free(e->data);
    memset(e, 0, sizeof *e);
}

typedef struct sreq {
    tl_ns_send_t req;
    tl_iovec_t iov[2];
    int done, status, seq;
} sreq_t;

static int seq;

static void sreq_done(tl_ns_send_t *r, int status) {
    sreq_t *q = (sreq_t *)r;
    q->done++;
    q->status = status;
    q->seq = ++seq;
}

static void sreq_init(sreq_t *q, const void *p, size_t n) {
    memset(q, 0, sizeof *q);
    q->iov[0].base = p;
    q->iov[0].len = n;
    q->req.iov = q->iov;
    q->req.n = 1;
    q->req.done = sreq_done;
}

static tl_sockaddr_t ip4(const char *ip, int port) {
    tl_sockaddr_t a;
    struct sockaddr_in in;
    memset(&a, 0, sizeof a);
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &in.sin_addr);
    memcpy(a.u.bytes, &in, sizeof in);
    a.len = sizeof in;
    return a;
}

static tl_sockaddr_t ip6(const char *ip, int port) {
    tl_sockaddr_t a;
    struct sockaddr_in6 in6;
    memset(&a, 0, sizeof a);
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, ip, &in6.sin6_addr);
    memcpy(a.u.bytes, &in6, sizeof in6);
    a.len = sizeof in6;
    return a;
}

static int port_of(const tl_sockaddr_t *a) {
    struct sockaddr_in in;
    memcpy(&in, a->u.bytes, sizeof in);
    return ntohs(in.sin_port);
}

/* A loop with the user stack's state made by hand (not the loop's
 * netstack), so these tests need nothing of the transport module. */
typedef struct net {
    tl_loop_t *loop;
    void *st;
} net_t;

static void net_open(net_t *n, tl_test_user_config_t *cfg) {
    O = tl_test_netstack_user();
    n->loop = tl_test_loop();
    n->st = NULL;
    CU_ASSERT_EQUAL_FATAL(O->create(n->loop, cfg, &n->st), 0);
}

static void net_close(net_t *n) {
    tl_test_user_stats_t s;
    tl_test_user_stats(n->st, &s);
    CU_ASSERT_EQUAL(s.sockets, 0);
    CU_ASSERT_EQUAL(s.lent, 0);
    CU_ASSERT_EQUAL(s.order_violations, 0);
    O->destroy(n->st);
    tl_test_loop_free(n->loop);
}

static void spin(net_t *n, int times) {
    for (int i = 0; i < times; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(n->loop, 0), 0);
}

/* A listener on addr with l, and a connection c <-> a (accepted). */
static void pair(net_t *n, const tl_sockaddr_t *addr, ep_t *l, ep_t *c,
                 ep_t *a) {
    tl_sockaddr_t bound;
    CU_ASSERT_EQUAL_FATAL(O->listen(n->st, addr, NULL, &H, l, &l->s), 0);
    CU_ASSERT_EQUAL(O->accept_start(l->s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l->s, 0, &bound), 0);
    CU_ASSERT_EQUAL_FATAL(O->connect(n->st, &bound, NULL, &H, c, &c->s), 0);
    spin(n, 3);
    CU_ASSERT_EQUAL_FATAL(c->connected_calls, 1);
    CU_ASSERT_EQUAL(c->connected_status, 0);
    CU_ASSERT_EQUAL_FATAL(l->naccepted, 1);
    a->s = l->accepted[0];
    CU_ASSERT_EQUAL(O->set_handler(a->s, &H, a), 0);
    CU_ASSERT_EQUAL(O->read_start(a->s), 0);
    CU_ASSERT_EQUAL(O->read_start(c->s), 0);
}

static void close3(net_t *n, ep_t *l, ep_t *c, ep_t *a) {
    if (c->s)
        O->close(c->s, 0);
    if (a->s)
        O->close(a->s, 0);
    if (l->s)
        O->close(l->s, 0);
    spin(n, 1);
    ep_free(l);
    ep_free(c);
    ep_free(a);
}

/* ---- addresses, listen, connect ------------------------------------------ */

static void test_listen_port_zero_takes_a_port_of_the_stack(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l1 = {0}, l2 = {0}, l3 = {0};
    tl_sockaddr_t any = ip4("127.0.0.1", 0), a1, a2;
    CU_ASSERT_EQUAL(O->listen(n.st, &any, NULL, &H, &l1, &l1.s), 0);
    CU_ASSERT_EQUAL(O->listen(n.st, &any, NULL, &H, &l2, &l2.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l1.s, 0, &a1), 0);
    CU_ASSERT_EQUAL(O->getaddr(l2.s, 0, &a2), 0);
    CU_ASSERT_NOT_EQUAL(port_of(&a1), 0);
    CU_ASSERT_NOT_EQUAL(port_of(&a1), port_of(&a2));
    CU_ASSERT_EQUAL(O->listen(n.st, &a1, NULL, &H, &l3, &l3.s), TL_EADDRINUSE);
    tl_sockaddr_t wild = ip4("0.0.0.0", port_of(&a1));
    CU_ASSERT_EQUAL(O->listen(n.st, &wild, NULL, &H, &l3, &l3.s),
                    TL_EADDRINUSE);
    CU_ASSERT_EQUAL(O->getaddr(l1.s, 1, &a2), TL_ENOTCONN);
    tl_sockaddr_t six = ip6("::1", 0);
    CU_ASSERT_EQUAL(O->listen(n.st, &six, NULL, &H, &l3, &l3.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l3.s, 0, &a2), 0);
    CU_ASSERT_EQUAL(a2.len, sizeof(struct sockaddr_in6));
    O->close(l1.s, 0);
    O->close(l2.s, 0);
    O->close(l3.s, 0);
    /* the address is free again once closed */
    CU_ASSERT_EQUAL(O->listen(n.st, &a1, NULL, &H, &l1, &l1.s), 0);
    O->close(l1.s, 0);
    net_close(&n);
}

static void test_bad_addresses_fail_at_once(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t e = {0};
    tl_sockaddr_t bad;
    memset(&bad, 0, sizeof bad);
    CU_ASSERT_EQUAL(O->listen(n.st, &bad, NULL, &H, &e, &e.s), TL_EINVAL);
    bad.len = sizeof(struct sockaddr_in);
    bad.u.bytes[0] = 99; /* a family nobody knows */
    CU_ASSERT_EQUAL(O->listen(n.st, &bad, NULL, &H, &e, &e.s),
                    TL_EAFNOSUPPORT);
    CU_ASSERT_EQUAL(O->connect(n.st, &bad, NULL, &H, &e, &e.s),
                    TL_EAFNOSUPPORT);
    tl_sockaddr_t zero = ip4("127.0.0.1", 0);
    CU_ASSERT_EQUAL(O->connect(n.st, &zero, NULL, &H, &e, &e.s),
                    TL_EADDRNOTAVAIL);
    CU_ASSERT_EQUAL(O->listen(n.st, NULL, NULL, &H, &e, &e.s), TL_EINVAL);
    CU_ASSERT_EQUAL(O->open_dgram(n.st, NULL, NULL, NULL, &H, &e, &e.s),
                    TL_EINVAL);
    CU_ASSERT_PTR_NULL(O->adopt);
    CU_ASSERT_PTR_NULL(O->sendfile);
    net_close(&n);
}

static void test_connect_makes_a_pair_with_matching_addresses(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0), x, y;
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->getaddr(c.s, 0, &x), 0);
    CU_ASSERT_EQUAL(O->getaddr(a.s, 1, &y), 0);
    CU_ASSERT_EQUAL(x.len, y.len);
    CU_ASSERT_EQUAL(memcmp(x.u.bytes, y.u.bytes, x.len), 0);
    CU_ASSERT_EQUAL(O->getaddr(c.s, 1, &x), 0);
    CU_ASSERT_EQUAL(O->getaddr(a.s, 0, &y), 0);
    CU_ASSERT_EQUAL(memcmp(x.u.bytes, y.u.bytes, x.len), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &y), 0);
    CU_ASSERT_EQUAL(port_of(&x), port_of(&y));
    CU_ASSERT_EQUAL(O->setopt(c.s, TL_NS_OPT_NODELAY, 1), 0);
    CU_ASSERT_EQUAL(O->setopt(c.s, TL_NS_OPT_KEEPALIVE, 1), 0);
    CU_ASSERT_EQUAL(O->setopt(c.s, 12345, 1), TL_ENOPROTOOPT);
    tl_fd_t fd;
    CU_ASSERT_EQUAL(O->fileno(c.s, &fd), TL_ENOTSUP);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_connect_to_a_wildcard_listener_over_ipv6(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0};
    tl_sockaddr_t any = ip6("::", 0), bound, x;
    CU_ASSERT_EQUAL_FATAL(O->listen(n.st, &any, NULL, &H, &l, &l.s), 0);
    CU_ASSERT_EQUAL(O->accept_start(l.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &bound), 0);
    tl_sockaddr_t to = ip6("::1", port_of(&bound));
    CU_ASSERT_EQUAL_FATAL(O->connect(n.st, &to, NULL, &H, &c, &c.s), 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.connected_status, 0);
    CU_ASSERT_EQUAL_FATAL(l.naccepted, 1);
    CU_ASSERT_EQUAL(O->getaddr(l.accepted[0], 0, &x), 0);
    CU_ASSERT_EQUAL(memcmp(x.u.bytes, to.u.bytes, to.len), 0);
    O->close(l.accepted[0], 0);
    O->close(c.s, 0);
    O->close(l.s, 0);
    ep_free(&l);
    ep_free(&c);
    net_close(&n);
}

static void test_connect_to_nobody_is_refused_from_the_loop(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t c = {0};
    tl_sockaddr_t to = ip4("127.0.0.1", 9), x;
    CU_ASSERT_EQUAL_FATAL(O->connect(n.st, &to, NULL, &H, &c, &c.s), 0);
    CU_ASSERT_EQUAL(c.connected_calls, 0); /* not from inside connect */
    CU_ASSERT_EQUAL(O->getaddr(c.s, 1, &x), TL_ENOTCONN);
    spin(&n, 1);
    CU_ASSERT_EQUAL(c.connected_calls, 1);
    CU_ASSERT_EQUAL(c.connected_status, TL_ECONNREFUSED);
    sreq_t q;
    sreq_init(&q, "x", 1);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), TL_ECONNREFUSED);
    CU_ASSERT_EQUAL(O->try_send(c.s, q.iov, 1, NULL), TL_ECONNREFUSED);
    O->close(c.s, 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.connected_calls, 1);
    ep_free(&c);
    net_close(&n);
}

static void test_accept_waits_for_accept_start_and_backlog_bounds_connects(
    void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c[3] = {{0}};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0), bound;
    tl_ns_bind_options_t o = {sizeof o, 2, 0, 0, 0, 0};
    CU_ASSERT_EQUAL_FATAL(O->listen(n.st, &addr, &o, &H, &l, &l.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &bound), 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(O->connect(n.st, &bound, NULL, &H, &c[i], &c[i].s), 0);
    spin(&n, 3);
    /* two fit the backlog and are connected; the third waits */
    CU_ASSERT_EQUAL(c[0].connected_status, 0);
    CU_ASSERT_EQUAL(c[1].connected_calls, 1);
    CU_ASSERT_EQUAL(c[2].connected_calls, 0);
    CU_ASSERT_EQUAL(l.naccepted, 0);
    CU_ASSERT_EQUAL(O->accept_start(l.s), 0);
    spin(&n, 3);
    CU_ASSERT_EQUAL(l.naccepted, 3);
    CU_ASSERT_EQUAL(c[2].connected_status, 0);
    CU_ASSERT_EQUAL(O->accept_stop(l.s), 0);
    CU_ASSERT_EQUAL(O->read_start(l.s), TL_EINVAL);
    CU_ASSERT_EQUAL(O->accept_start(c[0].s), TL_EINVAL);
    for (int i = 0; i < 3; i++) {
        O->close(l.accepted[i], 0);
        O->close(c[i].s, 0);
        ep_free(&c[i]);
    }
    O->close(l.s, 0);
    ep_free(&l);
    net_close(&n);
}

static void test_closing_a_listener_resets_what_it_never_accepted(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, late = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0), bound;
    CU_ASSERT_EQUAL_FATAL(O->listen(n.st, &addr, NULL, &H, &l, &l.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &bound), 0);
    CU_ASSERT_EQUAL(O->connect(n.st, &bound, NULL, &H, &c, &c.s), 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.connected_status, 0);
    CU_ASSERT_EQUAL(O->connect(n.st, &bound, NULL, &H, &late, &late.s), 0);
    O->close(l.s, 0);
    CU_ASSERT_EQUAL(O->read_start(c.s), 0);
    spin(&n, 3);
    CU_ASSERT_EQUAL(c.err, TL_ECONNRESET);
    CU_ASSERT_EQUAL(late.connected_status, TL_ECONNREFUSED);
    CU_ASSERT_EQUAL(l.naccepted, 0);
    O->close(c.s, 0);
    O->close(late.s, 0);
    ep_free(&l);
    ep_free(&c);
    ep_free(&late);
    net_close(&n);
}

static void test_unix_addresses_connect_by_path(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0}, d = {0};
    tl_sockaddr_t addr, x;
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, "/tmp/tulip-user-stack.sock");
    memset(&addr, 0, sizeof addr);
    memcpy(addr.u.bytes, &un, sizeof un);
    addr.len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) +
                          strlen(un.sun_path) + 1);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &x), 0);
    CU_ASSERT_EQUAL(x.len, addr.len);
    CU_ASSERT_EQUAL(memcmp(x.u.bytes, addr.u.bytes, addr.len), 0);
    CU_ASSERT_EQUAL(O->getaddr(a.s, 1, &x), 0); /* the client is unnamed */
    CU_ASSERT_EQUAL(x.len, sizeof(sa_family_t));
    CU_ASSERT_EQUAL(O->listen(n.st, &addr, NULL, &H, &d, &d.s), TL_EADDRINUSE);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

/* ---- bytes ---------------------------------------------------------------- */

static void test_bytes_flow_in_order_and_sends_complete_in_order(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    static unsigned char big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    tl_iovec_t v[2] = {{big, 10}, {big + 10, 5}};
    CU_ASSERT_EQUAL(O->try_send(c.s, v, 2, NULL), 15);
    sreq_t q1, q2, q3;
    sreq_init(&q1, big + 15, 1000);
    sreq_init(&q2, big + 1015, sizeof big - 1015 - 5);
    sreq_init(&q3, big + sizeof big - 5, 5);
    q3.iov[1] = q3.iov[0];
    q3.iov[0].len = 0; /* an empty piece is skipped */
    q3.req.n = 2;
    q3.iov[0].base = big; /* (any pointer for 0 bytes) */
    CU_ASSERT_EQUAL(O->send(c.s, &q1.req), 0);
    CU_ASSERT_EQUAL(O->send(c.s, &q2.req), 0);
    CU_ASSERT_EQUAL(O->send(c.s, &q3.req), 0);
    CU_ASSERT_EQUAL(q1.done, 0); /* never from inside send */
    for (int i = 0; i < 50 && !q3.done; i++)
        spin(&n, 1);
    CU_ASSERT_EQUAL(q1.done, 1);
    CU_ASSERT_EQUAL(q3.done, 1);
    CU_ASSERT_EQUAL(q1.status | q2.status | q3.status, 0);
    CU_ASSERT(q1.seq < q2.seq && q2.seq < q3.seq);
    spin(&n, 3);
    CU_ASSERT_EQUAL_FATAL(a.len, sizeof big);
    CU_ASSERT_EQUAL(memcmp(a.data, big, sizeof big), 0);
    /* and the other way */
    CU_ASSERT_EQUAL(O->try_send(a.s, v, 1, NULL), 10);
    spin(&n, 1);
    CU_ASSERT_EQUAL(c.len, 10);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_window_stops_a_sender_whose_peer_does_not_read(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(a.s), 0);
    static unsigned char buf[TL_TEST_USER_WINDOW + 1000];
    memset(buf, 'w', sizeof buf);
    tl_iovec_t v = {buf, sizeof buf};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), TL_TEST_USER_WINDOW);
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 0);
    sreq_t q;
    sreq_init(&q, buf, 1000);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), 0);
    spin(&n, 5);
    CU_ASSERT_EQUAL(q.done, 0); /* pending while the window is shut */
    tl_test_user_stats_t st;
    tl_test_user_stats(n.st, &st);
    long busy = st.busy_polls;
    spin(&n, 3);
    tl_test_user_stats(n.st, &st);
    CU_ASSERT_EQUAL(st.busy_polls, busy); /* blocked is not busy */
    CU_ASSERT_EQUAL(O->read_start(a.s), 0);
    for (int i = 0; i < 10 && !q.done; i++)
        spin(&n, 1);
    CU_ASSERT_EQUAL(q.done, 1);
    CU_ASSERT_EQUAL(q.status, 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(a.len, TL_TEST_USER_WINDOW + 1000);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_rcvbuf_sets_the_window(void) {
    net_t n;
    tl_test_user_config_t cfg = {sizeof cfg, 100};
    net_open(&n, &cfg);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(a.s), 0);
    char buf[500] = {0};
    tl_iovec_t v = {buf, sizeof buf};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 100);
    CU_ASSERT_EQUAL(O->setopt(a.s, TL_NS_OPT_RCVBUF, 300), 0);
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 200);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_lent_buffers_stay_valid_after_close_until_release(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    a.hold = 1;
    tl_iovec_t v = {"hello", 5};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 5);
    spin(&n, 1);
    CU_ASSERT_EQUAL_FATAL(a.nheld, 1);
    tl_test_user_stats_t st;
    tl_test_user_stats(n.st, &st);
    CU_ASSERT_EQUAL(st.lent, 1);
    tl_ns_buf_t *b = a.held[0];
    O->close(a.s, 0);
    spin(&n, 2); /* the socket is gone; the buffer is not */
    CU_ASSERT_EQUAL(b->len, 5);
    CU_ASSERT_EQUAL(memcmp(b->data, "hello", 5), 0);
    b->data++; /* the consumer may advance it */
    b->len--;
    O->release(a.s, b);
    a.s = NULL;
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_shutdown_write_sends_eof_after_queued_data(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    sreq_t q;
    sreq_init(&q, "abc", 3);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), 0);
    CU_ASSERT_EQUAL(O->shutdown_write(c.s), 0);
    CU_ASSERT_EQUAL(O->shutdown_write(c.s), 0);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), TL_EPIPE);
    tl_iovec_t v = {"x", 1};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), TL_EPIPE);
    spin(&n, 3);
    CU_ASSERT_EQUAL(q.done, 1);
    CU_ASSERT_EQUAL(a.len, 3);
    CU_ASSERT_EQUAL(a.eof, 1);
    CU_ASSERT_EQUAL(a.after_final, 0);
    /* half-open: the other way still works */
    CU_ASSERT_EQUAL(O->try_send(a.s, &v, 1, NULL), 1);
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.len, 1);
    CU_ASSERT_EQUAL(c.eof, 0);
    CU_ASSERT_EQUAL(O->shutdown_write(l.s), TL_ENOTCONN);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_close_gives_the_peer_eof_after_its_data(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(a.s), 0);
    tl_iovec_t v = {"data", 4};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 4);
    O->close(c.s, 0);
    c.s = NULL;
    CU_ASSERT_EQUAL(O->read_start(a.s), 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(a.len, 4);
    CU_ASSERT_EQUAL(a.eof, 1);
    CU_ASSERT_EQUAL(a.err, 0);
    /* writing into the closed connection: taken, then reset, then EPIPE */
    CU_ASSERT_EQUAL(O->try_send(a.s, &v, 1, NULL), 4);
    spin(&n, 1);
    CU_ASSERT_EQUAL(a.err, TL_ECONNRESET);
    CU_ASSERT_EQUAL(O->try_send(a.s, &v, 1, NULL), TL_EPIPE);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_close_with_unread_data_resets_the_peer(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(a.s), 0);
    tl_iovec_t v = {"unread", 6};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 6);
    O->close(a.s, 0);
    a.s = NULL;
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.err, TL_ECONNRESET);
    CU_ASSERT_EQUAL(c.eof, 0);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_abort_resets_the_peer_and_fails_its_pending_sends(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(c.s), 0);
    static unsigned char buf[TL_TEST_USER_WINDOW];
    tl_iovec_t v = {buf, sizeof buf};
    CU_ASSERT_EQUAL(O->try_send(a.s, &v, 1, NULL), TL_TEST_USER_WINDOW);
    sreq_t q;
    sreq_init(&q, "z", 1);
    CU_ASSERT_EQUAL(O->send(a.s, &q.req), 0); /* blocked by the window */
    tl_iovec_t w = {"before", 6};
    CU_ASSERT_EQUAL(O->try_send(c.s, &w, 1, NULL), 6);
    O->close(c.s, 1);
    c.s = NULL;
    spin(&n, 2);
    CU_ASSERT_EQUAL(q.done, 1);
    CU_ASSERT_EQUAL(q.status, TL_ECONNRESET);
    CU_ASSERT_EQUAL(a.len, 6); /* what had arrived, then the reset */
    CU_ASSERT_EQUAL(a.err, TL_ECONNRESET);
    CU_ASSERT_EQUAL(a.eof, 0);
    CU_ASSERT_EQUAL(O->send(a.s, &q.req), TL_ECONNRESET);
    spin(&n, 2);
    CU_ASSERT_EQUAL(a.after_final, 0);
    close3(&n, &l, &c, &a);
    net_close(&n);
}


static void test_close_cancels_pending_sends_before_returning(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(a.s), 0);
    static unsigned char buf[TL_TEST_USER_WINDOW];
    tl_iovec_t v = {buf, sizeof buf};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), TL_TEST_USER_WINDOW);
    sreq_t q1, q2;
    sreq_init(&q1, "1", 1);
    sreq_init(&q2, "2", 1);
    CU_ASSERT_EQUAL(O->send(c.s, &q1.req), 0);
    CU_ASSERT_EQUAL(O->send(c.s, &q2.req), 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(q1.done, 0);
    O->close(c.s, 0);
    CU_ASSERT_EQUAL(q1.done, 1);
    CU_ASSERT_EQUAL(q1.status, TL_ECANCELLED);
    CU_ASSERT_EQUAL(q2.status, TL_ECANCELLED);
    CU_ASSERT(q1.seq < q2.seq);
    int calls = c.recv_calls + c.connected_calls;
    CU_ASSERT_EQUAL(O->read_start(a.s), 0);
    spin(&n, 3);
    CU_ASSERT_EQUAL(c.recv_calls + c.connected_calls, calls);
    CU_ASSERT_EQUAL(q1.done + q2.done, 2);
    CU_ASSERT_EQUAL(a.len, TL_TEST_USER_WINDOW); /* what was sent arrives */
    CU_ASSERT_EQUAL(a.eof, 1);
    c.s = NULL;
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_try_send_during_pending_send_takes_nothing(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    sreq_t q;
    sreq_init(&q, "first", 5);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), 0);
    tl_iovec_t v = {"second", 6};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 0); /* order kept */
    tl_test_user_stats_t st;
    tl_test_user_stats(n.st, &st);
    CU_ASSERT_EQUAL(st.order_violations, 1);
    spin(&n, 2);
    CU_ASSERT_EQUAL(a.len, 5);
    O->close(c.s, 0);
    O->close(a.s, 0);
    O->close(l.s, 0);
    /* net_close checks the count; this test made one on purpose */
    O->destroy(n.st);
    tl_test_loop_free(n.loop);
    ep_free(&l);
    ep_free(&c);
    ep_free(&a);
}

/* ---- datagrams ------------------------------------------------------------ */

static void test_datagrams_reach_the_bound_socket_with_the_sender(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t r = {0}, s = {0}, k = {0};
    tl_sockaddr_t any = ip4("127.0.0.1", 0), raddr, saddr;
    CU_ASSERT_EQUAL_FATAL(O->open_dgram(n.st, &any, NULL, NULL, &H, &r, &r.s),
                          0);
    CU_ASSERT_EQUAL(O->getaddr(r.s, 0, &raddr), 0);
    CU_ASSERT_EQUAL(O->getaddr(r.s, 1, &saddr), TL_ENOTCONN);
    CU_ASSERT_EQUAL(O->open_dgram(n.st, &raddr, NULL, NULL, &H, &k, &k.s),
                    TL_EADDRINUSE);
    CU_ASSERT_EQUAL_FATAL(O->open_dgram(n.st, NULL, &raddr, NULL, &H, &s, &s.s),
                          0);
    CU_ASSERT_EQUAL(O->getaddr(s.s, 0, &saddr), 0);
    CU_ASSERT_EQUAL(O->read_start(r.s), 0);
    tl_iovec_t v[2] = {{"ping", 4}, {"!", 1}};
    CU_ASSERT_EQUAL(O->try_send(s.s, v, 2, NULL), 5);
    sreq_t q;
    sreq_init(&q, "pong", 4);
    CU_ASSERT_EQUAL(O->send(s.s, &q.req), 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(q.done, 1);
    CU_ASSERT_EQUAL(q.status, 0);
    CU_ASSERT_EQUAL(r.recv_calls, 2);
    CU_ASSERT_EQUAL(r.len, 9);
    CU_ASSERT_EQUAL(memcmp(r.data, "ping!pong", 9), 0);
    CU_ASSERT_EQUAL(port_of(&r.from), port_of(&saddr)); /* the sender */
    /* unconnected: the destination is needed */
    CU_ASSERT_EQUAL(O->try_send(r.s, v, 1, NULL), TL_EDESTADDRREQ);
    CU_ASSERT_EQUAL(O->try_send(r.s, v, 1, &saddr), 4);
    CU_ASSERT_EQUAL(O->read_start(s.s), 0);
    spin(&n, 1);
    CU_ASSERT_EQUAL(s.len, 4);
    static unsigned char huge[70000];
    tl_iovec_t h = {huge, sizeof huge};
    CU_ASSERT_EQUAL(O->try_send(s.s, &h, 1, NULL), TL_EMSGSIZE);
    CU_ASSERT_EQUAL(O->shutdown_write(s.s), TL_ENOTCONN);
    O->close(r.s, 0);
    O->close(s.s, 0);
    ep_free(&r);
    ep_free(&s);
    net_close(&n);
}

static void test_connected_datagram_to_nobody_reports_refused(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t s = {0};
    tl_sockaddr_t to = ip6("::1", 9);
    CU_ASSERT_EQUAL_FATAL(O->open_dgram(n.st, NULL, &to, NULL, &H, &s, &s.s),
                          0);
    CU_ASSERT_EQUAL(O->read_start(s.s), 0);
    tl_iovec_t v = {"?", 1};
    CU_ASSERT_EQUAL(O->try_send(s.s, &v, 1, NULL), 1);
    CU_ASSERT_EQUAL(s.err, 0);
    spin(&n, 1);
    CU_ASSERT_EQUAL(s.err, TL_ECONNREFUSED);
    /* the socket stays usable */
    s.err = 0;
    CU_ASSERT_EQUAL(O->try_send(s.s, &v, 1, NULL), 1);
    spin(&n, 1);
    CU_ASSERT_EQUAL(s.err, TL_ECONNREFUSED);
    O->close(s.s, 0);
    ep_free(&s);
    net_close(&n);
}

/* ---- the loop ------------------------------------------------------------- */

static void test_loop_spins_only_while_work_is_in_flight(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0), bound;
    CU_ASSERT_EQUAL_FATAL(O->listen(n.st, &addr, NULL, &H, &l, &l.s), 0);
    CU_ASSERT_EQUAL(O->accept_start(l.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &bound), 0);
    CU_ASSERT_EQUAL_FATAL(O->connect(n.st, &bound, NULL, &H, &c, &c.s), 0);
    /* the first run connects; the accept is still to do, so the poller
     * says busy and the loop does not sleep its 2 s */
    int64_t t0 = tl_loop_time(n.loop);
    CU_ASSERT_EQUAL(tl_loop_run_once(n.loop, 2000 * MS), 0);
    CU_ASSERT_EQUAL(c.connected_calls, 1);
    CU_ASSERT_EQUAL(l.naccepted, 0);
    CU_ASSERT(tl_loop_time(n.loop) - t0 < 500 * MS);
    /* the next run accepts, and then nothing is left: it sleeps */
    t0 = tl_loop_time(n.loop);
    CU_ASSERT_EQUAL(tl_loop_run_once(n.loop, 20 * MS), 0);
    CU_ASSERT_EQUAL(l.naccepted, 1);
    CU_ASSERT(tl_loop_time(n.loop) - t0 >= 19 * MS);
    t0 = tl_loop_time(n.loop);
    CU_ASSERT_EQUAL(tl_loop_run_once(n.loop, 20 * MS), 0);
    CU_ASSERT(tl_loop_time(n.loop) - t0 >= 19 * MS);
    tl_test_user_stats_t st;
    tl_test_user_stats(n.st, &st);
    CU_ASSERT_EQUAL(st.polls, 3);
    CU_ASSERT_EQUAL(st.busy_polls, 1);
    O->close(l.accepted[0], 0);
    O->close(c.s, 0);
    O->close(l.s, 0);
    ep_free(&l);
    ep_free(&c);
    net_close(&n);
}

/* ---- out of memory -------------------------------------------------------- */

static void test_out_of_memory_fails_cleanly(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0), bound;
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(O->listen(n.st, &addr, NULL, &H, &l, &l.s), TL_ENOMEM);
    CU_ASSERT_EQUAL_FATAL(O->listen(n.st, &addr, NULL, &H, &l, &l.s), 0);
    CU_ASSERT_EQUAL(O->accept_start(l.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &bound), 0);
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(O->connect(n.st, &bound, NULL, &H, &c, &c.s), TL_ENOMEM);
    CU_ASSERT_EQUAL_FATAL(O->connect(n.st, &bound, NULL, &H, &c, &c.s), 0);
    tl_test_fail_alloc_at(1); /* the server's end: made on the next run */
    spin(&n, 1);
    CU_ASSERT_EQUAL(c.connected_calls, 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.connected_status, 0);
    CU_ASSERT_EQUAL_FATAL(l.naccepted, 1);
    a.s = l.accepted[0];
    CU_ASSERT_EQUAL(O->set_handler(a.s, &H, &a), 0);
    CU_ASSERT_EQUAL(O->read_start(a.s), 0);
    tl_iovec_t v = {"abc", 3};
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), TL_ENOMEM);
    sreq_t q;
    sreq_init(&q, "abc", 3);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), 0);
    tl_test_fail_alloc_at(1); /* the copy fails once, and is retried */
    spin(&n, 3);
    CU_ASSERT_EQUAL(q.done, 1);
    CU_ASSERT_EQUAL(a.len, 3);
    tl_test_fail_alloc_at(1);
    void *st2 = NULL;
    CU_ASSERT_EQUAL(O->create(n.loop, NULL, &st2), TL_ENOMEM);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

/* ---- through the loop's netstack seam ------------------------------------- */

static void test_loop_takes_the_user_stack(void) {
    tl_loop_t *loop = tl_test_loop();
    void *config = NULL;
    const tl_netstack_ops_t *ops = tl_test_netstack_by_name("user", &config);
    CU_ASSERT_PTR_EQUAL_FATAL(ops, tl_test_netstack_user());
    CU_ASSERT_PTR_NOT_NULL(tl_test_netstack_by_name("fault", &config));
    CU_ASSERT_PTR_EQUAL(tl_test_netstack_by_name("kernel", &config),
                        tl_netstack_kernel());
    CU_ASSERT_PTR_NULL(tl_test_netstack_by_name("nonesuch", &config));
    CU_ASSERT_EQUAL_FATAL(tl_loop_set_netstack(loop, ops, NULL), 0);
    const tl_netstack_ops_t *got = NULL;
    void *st = NULL;
    CU_ASSERT_EQUAL(tl_loop_get_netstack(loop, &got, &st), 0);
    CU_ASSERT_PTR_EQUAL(got, ops);
    CU_ASSERT_PTR_NOT_NULL(st);
    tl_test_loop_free(loop); /* destroys the stack, removes its poller */
}

TL_TEST_SUITE(netstack_user,
              TL_TEST(test_listen_port_zero_takes_a_port_of_the_stack),
              TL_TEST(test_bad_addresses_fail_at_once),
              TL_TEST(test_connect_makes_a_pair_with_matching_addresses),
              TL_TEST(test_connect_to_a_wildcard_listener_over_ipv6),
              TL_TEST(test_connect_to_nobody_is_refused_from_the_loop),
              TL_TEST(test_accept_waits_for_accept_start_and_backlog_bounds_connects),
              TL_TEST(test_closing_a_listener_resets_what_it_never_accepted),
              TL_TEST(test_unix_addresses_connect_by_path),
              TL_TEST(test_bytes_flow_in_order_and_sends_complete_in_order),
              TL_TEST(test_window_stops_a_sender_whose_peer_does_not_read),
              TL_TEST(test_rcvbuf_sets_the_window),
              TL_TEST(test_lent_buffers_stay_valid_after_close_until_release),
              TL_TEST(test_shutdown_write_sends_eof_after_queued_data),
              TL_TEST(test_close_gives_the_peer_eof_after_its_data),
              TL_TEST(test_close_with_unread_data_resets_the_peer),
              TL_TEST(test_abort_resets_the_peer_and_fails_its_pending_sends),
              TL_TEST(test_close_cancels_pending_sends_before_returning),
              TL_TEST(test_try_send_during_pending_send_takes_nothing),
              TL_TEST(test_datagrams_reach_the_bound_socket_with_the_sender),
              TL_TEST(test_connected_datagram_to_nobody_reports_refused),
              TL_TEST(test_loop_spins_only_while_work_is_in_flight),
              TL_TEST(test_out_of_memory_fails_cleanly),
              TL_TEST(test_loop_takes_the_user_stack));
