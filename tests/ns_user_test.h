/*
 * The harness of the netstack_user suites (test_netstack_user*.c): a
 * recording endpoint for the user stack's handler, send requests that
 * record their completion, addresses, and a loop with a user stack state
 * made by hand (so the suites need nothing of the transport module).
 */
#ifndef TL_NS_USER_TEST_H
#define TL_NS_USER_TEST_H

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

static inline void ep_recv(void *ctx, tl_ns_buf_t *buf, int status) {
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

static inline void ep_accept(void *ctx, tl_ns_sock_t *conn, int status) {
    ep_t *e = ctx;
    if (status < 0) {
        e->accept_err = status;
        return;
    }
    e->accepted[e->naccepted++] = conn;
}

static inline void ep_connected(void *ctx, int status) {
    ep_t *e = ctx;
    e->connected_calls++;
    e->connected_status = status;
}

static const tl_ns_handler_t H = {ep_recv, ep_accept, ep_connected};

static inline void ep_free(ep_t *e) {
    free(e->data);
    memset(e, 0, sizeof *e);
}

typedef struct sreq {
    tl_ns_send_t req;
    tl_iovec_t iov[2];
    int done, status, seq;
} sreq_t;

static int seq;

static inline void sreq_done(tl_ns_send_t *r, int status) {
    sreq_t *q = (sreq_t *)r;
    q->done++;
    q->status = status;
    q->seq = ++seq;
}

static inline void sreq_init(sreq_t *q, const void *p, size_t n) {
    memset(q, 0, sizeof *q);
    q->iov[0].base = p;
    q->iov[0].len = n;
    q->req.iov = q->iov;
    q->req.n = 1;
    q->req.done = sreq_done;
}

static inline tl_sockaddr_t ip4(const char *ip, int port) {
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

static inline tl_sockaddr_t ip6(const char *ip, int port) {
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

static inline int port_of(const tl_sockaddr_t *a) {
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

static inline void net_open(net_t *n, tl_test_user_config_t *cfg) {
    O = tl_test_netstack_user();
    n->loop = tl_test_loop();
    n->st = NULL;
    CU_ASSERT_EQUAL_FATAL(O->create(n->loop, cfg, &n->st), 0);
}

static inline void net_close(net_t *n) {
    tl_test_user_stats_t s;
    tl_test_user_stats(n->st, &s);
    CU_ASSERT_EQUAL(s.sockets, 0);
    CU_ASSERT_EQUAL(s.lent, 0);
    CU_ASSERT_EQUAL(s.order_violations, 0);
    O->destroy(n->st);
    tl_test_loop_free(n->loop);
}

static inline void spin(net_t *n, int times) {
    for (int i = 0; i < times; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(n->loop, 0), 0);
}

/* A listener on addr with l, and a connection c <-> a (accepted). */
static inline void pair(net_t *n, const tl_sockaddr_t *addr, ep_t *l, ep_t *c,
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

static inline void close3(net_t *n, ep_t *l, ep_t *c, ep_t *a) {
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

#endif
