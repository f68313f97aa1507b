/*
 * netstack: the netstack registry (tl_loop_set_netstack) and the netstack
 * operations, driven directly on loopback sockets of the loop's netstack
 * (TL_NETSTACK picks it: these run on any stack). Kernel-only behaviour
 * (raw peers, resets, pipes, descriptors) is in test_netstack_kernel.c.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "netstack_test.h"

/* ---- harness ---------------------------------------------------------- */

int nt_in_call;
int nt_done_seq;

static void nt_recv(void *ctx, tl_ns_buf_t *buf, int status) {
    nt_peer_t *p = ctx;
    if (p->eofs && (buf || status == TL_EOF))
        p->after_eof++;
    if (buf) {
        CU_ASSERT_EQUAL(status, 0);
        p->recvs++;
        if (p->len + buf->len > p->cap) {
            p->cap = (p->len + buf->len) * 2;
            p->data = realloc(p->data, p->cap);
        }
        memcpy(p->data + p->len, buf->data, buf->len);
        p->len += buf->len;
        if (buf->from)
            p->from = *buf->from;
        if (p->hold && p->nheld < 64)
            p->held[p->nheld++] = buf;
        else
            p->ops->release(p->s, buf);
    } else if (status == TL_EOF) {
        p->eofs++;
    } else {
        p->errs++;
        p->last_err = status;
    }
    if (p->close_in_recv) {
        p->close_in_recv = 0;
        nt_close(p, 0);
    } else if (p->stop_in_recv && p->s) {
        CU_ASSERT_EQUAL(p->ops->read_stop(p->s), 0);
    }
}

static void nt_accept(void *ctx, tl_ns_sock_t *conn, int status) {
    nt_peer_t *p = ctx;
    if (conn) {
        CU_ASSERT_EQUAL(status, 0);
        if (p->nacc < 64)
            p->acc[p->nacc++] = conn;
        else
            p->ops->close(conn, 1);
    } else {
        p->acc_errs++;
        p->acc_last_err = status;
    }
}

static void nt_connected(void *ctx, int status) {
    nt_peer_t *p = ctx;
    p->connected++;
    p->conn_status = status;
}

const tl_ns_handler_t nt_handler = {nt_recv, nt_accept, nt_connected};

void nt_peer_init(nt_peer_t *p, const tl_netstack_ops_t *ops) {
    memset(p, 0, sizeof *p);
    p->ops = ops;
}

void nt_peer_free(nt_peer_t *p) {
    for (int i = 0; i < p->nheld; i++)
        p->ops->release(p->s, p->held[i]);
    p->nheld = 0;
    free(p->data);
    p->data = NULL;
    p->len = p->cap = 0;
}

void nt_close(nt_peer_t *p, int abort) {
    if (p->s == NULL)
        return;
    if (p->nheld == 0) {
        p->ops->close(p->s, abort);
        p->s = NULL;
    } else {
        p->ops->close(p->s, abort); /* keep s to release the held buffers */
    }
}

static void nt_done(tl_ns_send_t *req, int status) {
    nt_send_t *x = req->ctx;
    x->done++;
    x->status = status;
    x->order = ++nt_done_seq;
    x->in_call = nt_in_call;
}

void nt_send_init(nt_send_t *x, const void *data, size_t len) {
    memset(x, 0, sizeof *x);
    x->iov[0].base = data;
    x->iov[0].len = len;
    x->req.iov = x->iov;
    x->req.n = 1;
    x->req.done = nt_done;
    x->req.ctx = x;
}

tl_sockaddr_t nt_loopback(uint16_t port) {
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memcpy(a.u.bytes, &in, sizeof in);
    a.len = sizeof in;
    return a;
}

uint16_t nt_port(const tl_sockaddr_t *a) {
    struct sockaddr_in in;
    memcpy(&in, a->u.bytes, sizeof in);
    return ntohs(in.sin_port);
}

int nt_run_until(tl_loop_t *loop, const int *flag, int want) {
    uint64_t end = tl_now_ns() + 3000000000ull;
    while (*flag < want && tl_now_ns() < end)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1000000), 0);
    return *flag >= want;
}

void nt_spin(tl_loop_t *loop, int n) {
    for (int i = 0; i < n; i++)
        tl_loop_run_once(loop, 100000);
}

void nt_pair(tl_loop_t *loop, nt_peer_t *lp, nt_peer_t *cp, nt_peer_t *sp) {
    const tl_netstack_ops_t *ops;
    void *st;
    CU_ASSERT_EQUAL_FATAL(tl_loop_get_netstack(loop, &ops, &st), 0);
    nt_peer_init(lp, ops);
    nt_peer_init(cp, ops);
    nt_peer_init(sp, ops);
    tl_sockaddr_t any = nt_loopback(0), bound;
    CU_ASSERT_EQUAL_FATAL(ops->listen(st, &any, NULL, &nt_handler, lp, &lp->s), 0);
    CU_ASSERT_EQUAL_FATAL(ops->accept_start(lp->s), 0);
    CU_ASSERT_EQUAL_FATAL(ops->getaddr(lp->s, 0, &bound), 0);
    CU_ASSERT_NOT_EQUAL(nt_port(&bound), 0);
    CU_ASSERT_EQUAL_FATAL(ops->connect(st, &bound, NULL, &nt_handler, cp, &cp->s), 0);
    CU_ASSERT_EQUAL(cp->connected, 0); /* never inside connect() */
    CU_ASSERT_FATAL(nt_run_until(loop, &cp->connected, 1));
    CU_ASSERT_EQUAL_FATAL(cp->conn_status, 0);
    CU_ASSERT_FATAL(nt_run_until(loop, &lp->nacc, 1));
    sp->s = lp->acc[0];
    lp->nacc = 0;
    CU_ASSERT_EQUAL_FATAL(ops->set_handler(sp->s, &nt_handler, sp), 0);
}

#define RUN_UNTIL(loop, cond)                                                 \
    do {                                                                      \
        uint64_t end_ = tl_now_ns() + 3000000000ull;                          \
        while (!(cond) && tl_now_ns() < end_)                                 \
            tl_loop_run_once(loop, 1000000);                                  \
    } while (0)

/* The loop and its netstack for one test. */
#define NET_SETUP()                                                           \
    tl_loop_t *loop = tl_test_net_loop();                                     \
    const tl_netstack_ops_t *ops;                                             \
    void *st;                                                                 \
    CU_ASSERT_EQUAL_FATAL(tl_loop_get_netstack(loop, &ops, &st), 0)

/* ---- the registry ------------------------------------------------------ */

static int fake_create(tl_loop_t *loop, void *config, void **state) {
    (void)loop;
    *state = config;
    return 0;
}
static void fake_destroy(void *state) { (void)state; }

static void test_set_netstack_rejects_bad_tables(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_netstack_ops_t bad = *tl_netstack_kernel();
    CU_ASSERT_EQUAL(tl_loop_set_netstack(NULL, &bad, NULL), TL_EINVAL);
    bad.size = sizeof(bad) - 1;
    CU_ASSERT_EQUAL(tl_loop_set_netstack(loop, &bad, NULL), TL_EINVAL);
    bad = *tl_netstack_kernel();
    bad.send = NULL;
    CU_ASSERT_EQUAL(tl_loop_set_netstack(loop, &bad, NULL), TL_EINVAL);
    bad = *tl_netstack_kernel();
    bad.create = NULL;
    CU_ASSERT_EQUAL(tl_loop_set_netstack(loop, &bad, NULL), TL_EINVAL);
    /* Optional members may be missing. */
    bad = *tl_netstack_kernel();
    bad.adopt = NULL;
    bad.try_send = NULL;
    bad.sendfile = NULL;
    bad.fileno = NULL;
    CU_ASSERT_EQUAL(tl_loop_set_netstack(loop, &bad, NULL), 0);
    const tl_netstack_ops_t *got;
    void *st;
    CU_ASSERT_EQUAL(tl_loop_get_netstack(loop, &got, &st), 0);
    CU_ASSERT_PTR_EQUAL(got, &bad);
    tl_test_loop_free(loop);
}

static void test_set_netstack_busy_after_first_use(void) {
    tl_loop_t *loop = tl_test_loop();
    static int cfg;
    tl_netstack_ops_t fake = *tl_netstack_kernel();
    fake.name = "fake";
    fake.create = fake_create;
    fake.destroy = fake_destroy;
    CU_ASSERT_EQUAL(tl_loop_set_netstack(loop, &fake, &cfg), 0);
    CU_ASSERT_EQUAL(tl_loop_set_netstack(loop, NULL, NULL), 0); /* kernel again */
    CU_ASSERT_EQUAL(tl_loop_set_netstack(loop, &fake, &cfg), 0);
    const tl_netstack_ops_t *got = NULL;
    void *st = NULL;
    CU_ASSERT_EQUAL(tl_loop_get_netstack(loop, &got, &st), 0);
    CU_ASSERT_PTR_EQUAL(got, &fake);
    CU_ASSERT_PTR_EQUAL(st, &cfg); /* create got the config */
    CU_ASSERT_EQUAL(tl_loop_set_netstack(loop, NULL, NULL), TL_EBUSY);
    CU_ASSERT_EQUAL(tl_loop_set_netstack(loop, &fake, &cfg), TL_EBUSY);
    tl_test_loop_free(loop);
}

static void test_netstack_default_is_kernel(void) {
    tl_loop_t *loop = tl_test_loop();
    const tl_netstack_ops_t *got = NULL;
    void *st = NULL;
    CU_ASSERT_EQUAL(tl_loop_get_netstack(loop, &got, &st), 0);
    CU_ASSERT_PTR_EQUAL(got, tl_netstack_kernel());
    CU_ASSERT_PTR_NOT_NULL(st);
    CU_ASSERT_STRING_EQUAL(got->name, "kernel");
    void *again = NULL;
    CU_ASSERT_EQUAL(tl_loop_get_netstack(loop, NULL, &again), 0);
    CU_ASSERT_PTR_EQUAL(again, st);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_get_netstack(loop, &got, &st), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_set_netstack(loop, NULL, NULL), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static void test_netstack_get_walks_out_of_memory(void) {
    for (long n = 1;; n++) {
        tl_loop_t *loop = tl_test_loop();
        const tl_netstack_ops_t *got;
        void *st;
        tl_test_fail_alloc_at(n);
        int rc = tl_loop_get_netstack(loop, &got, &st);
        tl_test_fail_alloc_at(0);
        if (rc == 0) {
            tl_test_loop_free(loop);
            break;
        }
        CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        CU_ASSERT_EQUAL(tl_loop_get_netstack(loop, &got, &st), 0);
        tl_test_loop_free(loop);
    }
}

/* ---- connections ------------------------------------------------------- */

static void test_connect_accept_and_echo(void) {
    NET_SETUP();
    nt_peer_t lp, cp, sp;
    nt_pair(loop, &lp, &cp, &sp);
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    CU_ASSERT_EQUAL(ops->read_start(cp.s), 0);
    tl_iovec_t v[2] = {{"hel", 3}, {"lo", 2}};
    int64_t n = ops->try_send ? ops->try_send(cp.s, v, 2, NULL) : 0;
    if (n < 5) { /* a stack may take nothing at once: send the rest */
        nt_send_t x;
        nt_send_init(&x, "hello" + n, 5 - (size_t)n);
        CU_ASSERT_EQUAL(ops->send(cp.s, &x.req), 0);
        CU_ASSERT(nt_run_until(loop, &x.done, 1));
    }
    CU_ASSERT(nt_run_until(loop, (int *)&sp.len, 5));
    CU_ASSERT_EQUAL(sp.len, 5);
    CU_ASSERT_EQUAL(memcmp(sp.data, "hello", 5), 0);
    nt_send_t back;
    nt_send_init(&back, sp.data, sp.len);
    nt_in_call = 1;
    CU_ASSERT_EQUAL(ops->send(sp.s, &back.req), 0);
    nt_in_call = 0;
    CU_ASSERT_EQUAL(back.done, 0); /* never inside send() */
    CU_ASSERT(nt_run_until(loop, &back.done, 1));
    CU_ASSERT_EQUAL(back.status, 0);
    CU_ASSERT(nt_run_until(loop, (int *)&cp.len, 5));
    CU_ASSERT_EQUAL(memcmp(cp.data, "hello", 5), 0);
    tl_sockaddr_t a, b;
    CU_ASSERT_EQUAL(ops->getaddr(cp.s, 1, &a), 0);
    CU_ASSERT_EQUAL(ops->getaddr(sp.s, 0, &b), 0);
    CU_ASSERT_EQUAL(nt_port(&a), nt_port(&b));
    nt_close(&cp, 0);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    nt_peer_free(&cp);
    nt_peer_free(&sp);
    tl_test_loop_free(loop);
}

static void test_eof_is_reported_once_after_data(void) {
    NET_SETUP();
    nt_peer_t lp, cp, sp;
    nt_pair(loop, &lp, &cp, &sp);
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    nt_send_t x;
    nt_send_init(&x, "bye", 3);
    CU_ASSERT_EQUAL(ops->send(cp.s, &x.req), 0);
    CU_ASSERT_EQUAL(ops->shutdown_write(cp.s), 0);
    CU_ASSERT(nt_run_until(loop, &sp.eofs, 1));
    CU_ASSERT_EQUAL(sp.len, 3);
    CU_ASSERT_EQUAL(x.status, 0);
    nt_spin(loop, 5);
    CU_ASSERT_EQUAL(sp.eofs, 1);
    CU_ASSERT_EQUAL(sp.after_eof, 0);
    CU_ASSERT_EQUAL(sp.errs, 0);
    /* The other direction still works: half-close. */
    CU_ASSERT_EQUAL(ops->read_start(cp.s), 0);
    nt_send_t y;
    nt_send_init(&y, "ok", 2);
    CU_ASSERT_EQUAL(ops->send(sp.s, &y.req), 0);
    CU_ASSERT(nt_run_until(loop, (int *)&cp.len, 2));
    CU_ASSERT_EQUAL(y.status, 0);
    /* Sending after shutdown_write fails at once. */
    nt_send_t z;
    nt_send_init(&z, "no", 2);
    CU_ASSERT_EQUAL(ops->send(cp.s, &z.req), TL_EPIPE);
    nt_close(&cp, 0);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    nt_peer_free(&cp);
    nt_peer_free(&sp);
    tl_test_loop_free(loop);
}

/* Bulk data through send() with the reader paused, then shutdown_write:
 * every byte arrives, in order, before the EOF. */
static void test_shutdown_write_waits_for_queued_data(void) {
    NET_SETUP();
    nt_peer_t lp, cp, sp;
    nt_pair(loop, &lp, &cp, &sp);
    enum { N = 3 * 1024 * 1024 };
    unsigned char *big = malloc(N);
    for (size_t i = 0; i < N; i++)
        big[i] = nt_pat(i);
    nt_send_t a, b;
    nt_send_init(&a, big, N / 3);
    nt_send_init(&b, big + N / 3, N - N / 3);
    b.iov[0].len = N / 3;
    b.iov[1].base = big + 2 * (N / 3);
    b.iov[1].len = N - 2 * (N / 3);
    b.req.n = 2;
    CU_ASSERT_EQUAL(ops->send(cp.s, &a.req), 0);
    CU_ASSERT_EQUAL(ops->send(cp.s, &b.req), 0);
    CU_ASSERT_EQUAL(ops->shutdown_write(cp.s), 0);
    nt_spin(loop, 3); /* the peer does not read yet: sends stay queued */
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    CU_ASSERT(nt_run_until(loop, &sp.eofs, 1));
    CU_ASSERT_EQUAL_FATAL(sp.len, N);
    CU_ASSERT_EQUAL(memcmp(sp.data, big, N), 0);
    CU_ASSERT(nt_run_until(loop, &b.done, 1));
    CU_ASSERT_EQUAL(a.status, 0);
    CU_ASSERT_EQUAL(b.status, 0);
    CU_ASSERT(a.order < b.order);
    nt_close(&cp, 0);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    nt_peer_free(&cp);
    nt_peer_free(&sp);
    free(big);
    tl_test_loop_free(loop);
}

static void test_sends_complete_in_order(void) {
    NET_SETUP();
    nt_peer_t lp, cp, sp;
    nt_pair(loop, &lp, &cp, &sp);
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    nt_send_t x[8];
    char msg[8][4];
    for (int i = 0; i < 8; i++) {
        memcpy(msg[i], "m0.", 3);
        msg[i][1] = (char)('0' + i);
        nt_send_init(&x[i], msg[i], 3);
        CU_ASSERT_EQUAL(ops->send(cp.s, &x[i].req), 0);
    }
    CU_ASSERT(nt_run_until(loop, &x[7].done, 1));
    for (int i = 0; i < 8; i++) {
        CU_ASSERT_EQUAL(x[i].done, 1);
        CU_ASSERT_EQUAL(x[i].status, 0);
        if (i)
            CU_ASSERT(x[i - 1].order < x[i].order);
    }
    CU_ASSERT(nt_run_until(loop, (int *)&sp.len, 24));
    CU_ASSERT_EQUAL(memcmp(sp.data, "m0.m1.m2.m3.m4.m5.m6.m7.", 24), 0);
    nt_close(&cp, 0);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    nt_peer_free(&cp);
    nt_peer_free(&sp);
    tl_test_loop_free(loop);
}

/* Buffers lent by recv stay valid after close, until released. */
static void test_buffers_outlive_close(void) {
    NET_SETUP();
    nt_peer_t lp, cp, sp;
    nt_pair(loop, &lp, &cp, &sp);
    sp.hold = 1;
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    nt_send_t x;
    nt_send_init(&x, "kept", 4);
    CU_ASSERT_EQUAL(ops->send(cp.s, &x.req), 0);
    CU_ASSERT(nt_run_until(loop, &sp.recvs, 1));
    CU_ASSERT_EQUAL_FATAL(sp.nheld, 1);
    ops->close(sp.s, 0);
    nt_spin(loop, 2);
    CU_ASSERT_EQUAL(sp.held[0]->len, 4);
    CU_ASSERT_EQUAL(memcmp(sp.held[0]->data, "kept", 4), 0);
    nt_peer_free(&sp); /* releases after close */
    nt_close(&cp, 0);
    nt_close(&lp, 0);
    nt_peer_free(&cp);
    tl_test_loop_free(loop);
}

/* The consumer may close or stop reading inside recv. */
static void test_close_and_read_stop_inside_recv(void) {
    NET_SETUP();
    nt_peer_t lp, cp, sp;
    nt_pair(loop, &lp, &cp, &sp);
    sp.close_in_recv = 1;
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    CU_ASSERT_EQUAL(ops->read_start(cp.s), 0);
    cp.stop_in_recv = 1;
    nt_send_t x;
    nt_send_init(&x, "x", 1);
    CU_ASSERT_EQUAL(ops->send(cp.s, &x.req), 0);
    CU_ASSERT(nt_run_until(loop, &sp.recvs, 1));
    CU_ASSERT_PTR_NULL(sp.s);
    /* The client hears the close as EOF (it read_stop'ped in no recv yet). */
    CU_ASSERT(nt_run_until(loop, &cp.eofs, 1));
    nt_spin(loop, 3);
    CU_ASSERT_EQUAL(sp.recvs, 1);
    nt_close(&cp, 0);
    nt_close(&lp, 0);
    nt_peer_free(&cp);
    nt_peer_free(&sp);
    tl_test_loop_free(loop);
}

static void test_connect_refused(void) {
    NET_SETUP();
    nt_peer_t lp, cp;
    nt_peer_init(&lp, ops);
    nt_peer_init(&cp, ops);
    tl_sockaddr_t any = nt_loopback(0), bound;
    CU_ASSERT_EQUAL_FATAL(ops->listen(st, &any, NULL, &nt_handler, &lp, &lp.s), 0);
    CU_ASSERT_EQUAL(ops->getaddr(lp.s, 0, &bound), 0);
    nt_close(&lp, 0); /* nobody listens on that port any more */
    int rc = ops->connect(st, &bound, NULL, &nt_handler, &cp, &cp.s);
    if (rc == 0) {
        CU_ASSERT(nt_run_until(loop, &cp.connected, 1));
        CU_ASSERT_EQUAL(cp.conn_status, TL_ECONNREFUSED);
        nt_send_t x;
        nt_send_init(&x, "x", 1);
        CU_ASSERT_NOT_EQUAL(ops->send(cp.s, &x.req), 0); /* the socket is dead */
        nt_close(&cp, 0);
    } else {
        CU_ASSERT_EQUAL(rc, TL_ECONNREFUSED);
    }
    tl_test_loop_free(loop);
}

/* close() with sends pending completes them (TL_ECANCELLED) before it
 * returns; nothing names the socket afterwards. */
static void test_close_cancels_pending_sends_synchronously(void) {
    NET_SETUP();
    nt_peer_t lp, cp, sp;
    nt_pair(loop, &lp, &cp, &sp);
    enum { N = 16 * 1024 * 1024 };
    unsigned char *big = calloc(1, N);
    nt_send_t a, b;
    nt_send_init(&a, big, N);
    nt_send_init(&b, "tail", 4);
    CU_ASSERT_EQUAL(ops->send(cp.s, &a.req), 0);
    CU_ASSERT_EQUAL(ops->send(cp.s, &b.req), 0);
    nt_spin(loop, 3); /* the peer does not read: 16 MiB cannot all go */
    CU_ASSERT_EQUAL(a.done + b.done, 0);
    nt_close(&cp, 0);
    CU_ASSERT_EQUAL(a.done, 1);
    CU_ASSERT_EQUAL(b.done, 1);
    CU_ASSERT_EQUAL(a.status, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.status, TL_ECANCELLED);
    CU_ASSERT(a.order < b.order);
    nt_spin(loop, 3);
    CU_ASSERT_EQUAL(a.done, 1);
    nt_close(&sp, 1);
    nt_close(&lp, 0);
    free(big);
    tl_test_loop_free(loop);
}

static void test_dgram_round_trip_reports_sender(void) {
    NET_SETUP();
    nt_peer_t a, b;
    nt_peer_init(&a, ops);
    nt_peer_init(&b, ops);
    tl_sockaddr_t any = nt_loopback(0), aaddr, baddr;
    CU_ASSERT_EQUAL_FATAL(ops->open_dgram(st, &any, NULL, NULL, &nt_handler, &a, &a.s), 0);
    CU_ASSERT_EQUAL_FATAL(ops->open_dgram(st, &any, NULL, NULL, &nt_handler, &b, &b.s), 0);
    CU_ASSERT_EQUAL(ops->getaddr(a.s, 0, &aaddr), 0);
    CU_ASSERT_EQUAL(ops->getaddr(b.s, 0, &baddr), 0);
    CU_ASSERT_EQUAL(ops->read_start(a.s), 0);
    CU_ASSERT_EQUAL(ops->read_start(b.s), 0);
    nt_send_t x;
    nt_send_init(&x, "ping", 4);
    x.req.to = &aaddr;
    CU_ASSERT_EQUAL(ops->send(b.s, &x.req), 0);
    CU_ASSERT(nt_run_until(loop, &a.recvs, 1));
    CU_ASSERT_EQUAL(a.len, 4);
    CU_ASSERT_EQUAL(nt_port(&a.from), nt_port(&baddr));
    CU_ASSERT(nt_run_until(loop, &x.done, 1));
    CU_ASSERT_EQUAL(x.status, 0);
    if (ops->try_send) {
        tl_iovec_t v = {"pong!", 5};
        CU_ASSERT_EQUAL(ops->try_send(a.s, &v, 1, &a.from), 5);
        CU_ASSERT(nt_run_until(loop, &b.recvs, 1));
        CU_ASSERT_EQUAL(b.len, 5);
        CU_ASSERT_EQUAL(nt_port(&b.from), nt_port(&aaddr));
    }
    /* Datagrams keep their boundaries. */
    nt_send_t y, z;
    nt_send_init(&y, "one", 3);
    nt_send_init(&z, "", 0);
    y.req.to = z.req.to = &aaddr;
    CU_ASSERT_EQUAL(ops->send(b.s, &y.req), 0);
    CU_ASSERT_EQUAL(ops->send(b.s, &z.req), 0);
    CU_ASSERT(nt_run_until(loop, &a.recvs, 3));
    CU_ASSERT_EQUAL(a.len, 7);
    nt_close(&a, 0);
    nt_close(&b, 0);
    nt_peer_free(&a);
    nt_peer_free(&b);
    tl_test_loop_free(loop);
}

static void test_operations_reject_bad_arguments(void) {
    NET_SETUP();
    nt_peer_t lp, cp, sp;
    nt_pair(loop, &lp, &cp, &sp);
    tl_ns_sock_t *out = NULL;
    tl_sockaddr_t bad = nt_loopback(0);
    bad.len = 1;
    CU_ASSERT_NOT_EQUAL(ops->listen(st, &bad, NULL, &nt_handler, NULL, &out), 0);
    CU_ASSERT_NOT_EQUAL(ops->connect(st, &bad, NULL, &nt_handler, NULL, &out), 0);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_EQUAL(ops->read_start(lp.s), TL_EINVAL);
    CU_ASSERT_EQUAL(ops->accept_start(cp.s), TL_EINVAL);
    nt_send_t x;
    nt_send_init(&x, "x", 1);
    x.req.done = NULL;
    CU_ASSERT_EQUAL(ops->send(cp.s, &x.req), TL_EINVAL);
    CU_ASSERT_NOT_EQUAL(ops->setopt(cp.s, 12345, 1), 0);
    CU_ASSERT_EQUAL(ops->setopt(cp.s, TL_NS_OPT_NODELAY, 1), 0);
    CU_ASSERT_EQUAL(ops->setopt(cp.s, TL_NS_OPT_KEEPALIVE, 1), 0);
    nt_close(&cp, 0);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    tl_test_loop_free(loop);
}

/* A completion that closes its socket: the sends after it complete with
 * TL_ECANCELLED inside that close, and nothing runs afterwards. */
typedef struct closer {
    nt_send_t x;
    nt_peer_t *p;
} closer_t;

static void close_on_done(tl_ns_send_t *req, int status) {
    closer_t *c = req->ctx;
    c->x.done++;
    c->x.status = status;
    c->x.order = ++nt_done_seq;
    nt_close(c->p, 0);
}

static void test_close_inside_a_send_completion(void) {
    NET_SETUP();
    nt_peer_t lp, cp, sp;
    nt_pair(loop, &lp, &cp, &sp);
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    closer_t c;
    nt_send_init(&c.x, "first", 5);
    c.x.req.done = close_on_done;
    c.x.req.ctx = &c;
    c.p = &cp;
    nt_send_t later;
    nt_send_init(&later, "later", 5);
    CU_ASSERT_EQUAL(ops->send(cp.s, &c.x.req), 0);
    CU_ASSERT_EQUAL(ops->send(cp.s, &later.req), 0);
    CU_ASSERT(nt_run_until(loop, &c.x.done, 1));
    CU_ASSERT_EQUAL(c.x.status, 0);
    CU_ASSERT_PTR_NULL(cp.s);
    CU_ASSERT_EQUAL(later.done, 1);
    CU_ASSERT(later.status == 0 || later.status == TL_ECANCELLED);
    CU_ASSERT(c.x.order < later.order);
    nt_spin(loop, 3);
    CU_ASSERT_EQUAL(later.done, 1);
    CU_ASSERT(nt_run_until(loop, &sp.eofs, 1));
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    nt_peer_free(&sp);
    tl_test_loop_free(loop);
}

/* The listener closed from inside accept while more connections wait. */
static void close_listener_on_accept(void *ctx, tl_ns_sock_t *conn, int status) {
    nt_peer_t *p = ctx;
    CU_ASSERT_EQUAL(status, 0);
    if (conn)
        p->acc[p->nacc++] = conn;
    nt_close(p, 0);
}

static void test_close_listener_inside_accept(void) {
    NET_SETUP();
    nt_peer_t lp, c1, c2;
    nt_peer_init(&lp, ops);
    nt_peer_init(&c1, ops);
    nt_peer_init(&c2, ops);
    tl_ns_handler_t h = nt_handler;
    h.accept = close_listener_on_accept;
    tl_sockaddr_t any = nt_loopback(0), bound;
    CU_ASSERT_EQUAL_FATAL(ops->listen(st, &any, NULL, &h, &lp, &lp.s), 0);
    CU_ASSERT_EQUAL(ops->getaddr(lp.s, 0, &bound), 0);
    CU_ASSERT_EQUAL_FATAL(ops->connect(st, &bound, NULL, &nt_handler, &c1, &c1.s), 0);
    CU_ASSERT_EQUAL_FATAL(ops->connect(st, &bound, NULL, &nt_handler, &c2, &c2.s), 0);
    CU_ASSERT(nt_run_until(loop, &c2.connected, 1));
    CU_ASSERT(nt_run_until(loop, &c1.connected, 1));
    CU_ASSERT_EQUAL(ops->accept_start(lp.s), 0);
    CU_ASSERT(nt_run_until(loop, &lp.nacc, 1));
    nt_spin(loop, 3);
    CU_ASSERT_EQUAL(lp.nacc, 1);
    CU_ASSERT_PTR_NULL(lp.s);
    ops->close(lp.acc[0], 0);
    nt_close(&c1, 0);
    nt_close(&c2, 0);
    tl_test_loop_free(loop);
}

/* ---- out of memory ------------------------------------------------------ */

/* Listen, connect, accept, send and receive with the nth allocation
 * failing, for every n until the whole exchange succeeds: every step
 * either works or fails cleanly, and nothing leaks. */
static void test_exchange_walks_out_of_memory(void) {
    for (long n = 1; n < 200; n++) {
        tl_loop_t *loop = tl_test_net_loop();
        const tl_netstack_ops_t *ops;
        void *st;
        nt_peer_t lp, cp, sp;
        nt_peer_init(&lp, NULL);
        nt_peer_init(&cp, NULL);
        nt_peer_init(&sp, NULL);
        int ok = 0;
        nt_send_t x;
        nt_send_init(&x, "oom?", 4);
        tl_test_fail_alloc_at(n);
        if (tl_loop_get_netstack(loop, &ops, &st) != 0)
            goto out;
        lp.ops = cp.ops = sp.ops = ops;
        tl_sockaddr_t any = nt_loopback(0), bound;
        if (ops->listen(st, &any, NULL, &nt_handler, &lp, &lp.s) ||
            ops->accept_start(lp.s) || ops->getaddr(lp.s, 0, &bound))
            goto out;
        if (ops->connect(st, &bound, NULL, &nt_handler, &cp, &cp.s))
            goto out;
        RUN_UNTIL(loop, cp.connected);
        if (cp.conn_status || !cp.connected)
            goto out;
        RUN_UNTIL(loop, lp.nacc || lp.acc_errs);
        if (lp.nacc == 0)
            goto out;
        sp.s = lp.acc[0];
        if (ops->set_handler(sp.s, &nt_handler, &sp) || ops->read_start(sp.s))
            goto out;
        if (ops->send(cp.s, &x.req))
            goto out;
        RUN_UNTIL(loop, sp.recvs || sp.errs);
        RUN_UNTIL(loop, x.done);
        ok = sp.len == 4 && x.status == 0 && sp.errs == 0;
    out:
        tl_test_fail_alloc_at(0);
        nt_close(&cp, 0);
        nt_close(&sp, 0);
        nt_close(&lp, 0);
        nt_peer_free(&cp);
        nt_peer_free(&sp);
        tl_test_loop_free(loop);
        if (ok)
            return;
    }
    CU_FAIL("the exchange never succeeded");
}

TL_TEST_SUITE(netstack, TL_TEST(test_set_netstack_rejects_bad_tables),
              TL_TEST(test_set_netstack_busy_after_first_use),
              TL_TEST(test_netstack_default_is_kernel),
              TL_TEST(test_netstack_get_walks_out_of_memory),
              TL_TEST(test_connect_accept_and_echo),
              TL_TEST(test_eof_is_reported_once_after_data),
              TL_TEST(test_shutdown_write_waits_for_queued_data),
              TL_TEST(test_sends_complete_in_order),
              TL_TEST(test_buffers_outlive_close),
              TL_TEST(test_close_and_read_stop_inside_recv),
              TL_TEST(test_close_inside_a_send_completion),
              TL_TEST(test_close_listener_inside_accept),
              TL_TEST(test_connect_refused),
              TL_TEST(test_close_cancels_pending_sends_synchronously),
              TL_TEST(test_dgram_round_trip_reports_sender),
              TL_TEST(test_operations_reject_bad_arguments),
              TL_TEST(test_exchange_walks_out_of_memory));
