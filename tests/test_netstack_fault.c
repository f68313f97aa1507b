/*
 * netstack_fault: the fault-injecting wrapper (tests/ns_fault.c) around the
 * kernel netstack. First its operations, then transports and servers over
 * it (SQLite's way: fail the Nth accept, the Nth send, shorten every write,
 * storm with EAGAIN, delay the reads) and check that the loop keeps
 * serving, that only the connection hit ends, that every byte arrives in
 * order, and that nothing leaks (the runner checks tulip allocations, and
 * the wrapper's own sockets are counted).
 */
#include "ns_test.h"
#include "transport_test.h"

#define MS (1000000LL)

/* ---- through the operations ---------------------------------------------- */

typedef struct ep {
    tl_ns_sock_t *s;
    int connected, status;
    int recvs, eof, err;
    unsigned char data[4096];
    size_t len;
    tl_ns_sock_t *conns[8];
    int nconns, accept_err, accept_errs;
} ep_t;

static const tl_netstack_ops_t *O;

static void ep_recv(void *ctx, tl_ns_buf_t *buf, int status) {
    ep_t *e = ctx;
    e->recvs++;
    if (buf) {
        size_t n = buf->len;
        if (n > sizeof e->data - e->len)
            n = sizeof e->data - e->len;
        memcpy(e->data + e->len, buf->data, n);
        e->len += n;
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
        e->accept_errs++;
        return;
    }
    e->conns[e->nconns++] = conn;
}

static void ep_connected(void *ctx, int status) {
    ep_t *e = ctx;
    e->connected++;
    e->status = status;
}

static const tl_ns_handler_t H = {ep_recv, ep_accept, ep_connected};

typedef struct fnet {
    tl_loop_t *loop;
    void *st;
    tl_test_fault_t f;
} fnet_t;

static void fnet_open(fnet_t *n) {
    memset(&n->f, 0, sizeof n->f);
    n->f.size = sizeof n->f;
    n->loop = tl_test_loop();
    CU_ASSERT_EQUAL_FATAL(
        tl_loop_set_netstack(n->loop, tl_test_netstack_fault(), &n->f), 0);
    CU_ASSERT_EQUAL_FATAL(tl_loop_get_netstack(n->loop, &O, &n->st), 0);
    CU_ASSERT_PTR_EQUAL(O, tl_test_netstack_fault());
}

static void fnet_close(fnet_t *n) {
    tl_test_loop_free(n->loop);
    CU_ASSERT_EQUAL(n->f.live, 0); /* every wrapper freed */
}

static int run_until_n(tl_loop_t *loop, const int *flag, int want) {
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (*flag < want && tl_now_ns() < end)
        tl_loop_run_once(loop, 10 * MS);
    return *flag >= want;
}

/* A listener l on 127.0.0.1 and, when c is given, a client c connected to
 * it (accepted as l->conns[l->nconns - 1], reading into a). */
static void listen_on(fnet_t *n, ep_t *l, tl_sockaddr_t *bound) {
    tl_sockaddr_t a = addr_ip("127.0.0.1", 0);
    CU_ASSERT_EQUAL_FATAL(O->listen(n->st, &a, NULL, &H, l, &l->s), 0);
    CU_ASSERT_EQUAL(O->accept_start(l->s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l->s, 0, bound), 0);
}

static void connect_to(fnet_t *n, ep_t *l, const tl_sockaddr_t *bound,
                       ep_t *c, ep_t *a) {
    int want = l->nconns + 1;
    CU_ASSERT_EQUAL_FATAL(O->connect(n->st, bound, NULL, &H, c, &c->s), 0);
    CU_ASSERT_TRUE_FATAL(run_until_n(n->loop, &c->connected, 1));
    CU_ASSERT_EQUAL_FATAL(c->status, 0);
    CU_ASSERT_TRUE_FATAL(run_until_n(n->loop, &l->nconns, want));
    a->s = l->conns[want - 1];
    CU_ASSERT_EQUAL(O->set_handler(a->s, &H, a), 0);
    CU_ASSERT_EQUAL(O->read_start(a->s), 0);
    CU_ASSERT_EQUAL(O->read_start(c->s), 0);
}

static void run_for_len(tl_loop_t *loop, const ep_t *e, size_t len) {
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (e->len < len && !e->err && tl_now_ns() < end)
        tl_loop_run_once(loop, 10 * MS);
}

static void close_all(ep_t *l, ep_t *c, ep_t *a) {
    if (c && c->s)
        O->close(c->s, 0);
    if (a && a->s)
        O->close(a->s, 0);
    if (l && l->s)
        O->close(l->s, 0);
}

static void test_wrapper_forwards_and_counts(void) {
    fnet_t n;
    fnet_open(&n);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t bound, x, y;
    listen_on(&n, &l, &bound);
    connect_to(&n, &l, &bound, &c, &a);
    tl_iovec_t v = {"hello", 5};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 5);
    run_for_len(n.loop, &a, 5);
    CU_ASSERT_EQUAL(a.len, 5);
    CU_ASSERT_EQUAL(memcmp(a.data, "hello", 5), 0);
    CU_ASSERT_EQUAL(O->getaddr(a.s, 1, &x), 0);
    CU_ASSERT_EQUAL(O->getaddr(c.s, 0, &y), 0);
    CU_ASSERT_EQUAL(memcmp(x.u.bytes, y.u.bytes, x.len), 0);
    tl_fd_t fd;
    CU_ASSERT_EQUAL(O->fileno(c.s, &fd), 0); /* the kernel's */
    CU_ASSERT_EQUAL(O->setopt(c.s, TL_NS_OPT_NODELAY, 1), 0);
    CU_ASSERT_EQUAL(n.f.listens, 1);
    CU_ASSERT_EQUAL(n.f.connects, 1);
    CU_ASSERT_EQUAL(n.f.accepts, 1);
    CU_ASSERT_EQUAL(n.f.try_sends, 1);
    CU_ASSERT_EQUAL(n.f.try_send_bytes, 5);
    CU_ASSERT(n.f.recvs >= 1);
    CU_ASSERT_EQUAL(n.f.injected, 0);
    CU_ASSERT_EQUAL(n.f.live, 3);
    close_all(&l, &c, &a);
    CU_ASSERT_EQUAL(n.f.closes, 3);
    fnet_close(&n);
}

static void test_nth_accept_fails_and_the_listener_keeps_accepting(void) {
    fnet_t n;
    fnet_open(&n);
    ep_t l = {0}, c1 = {0}, c2 = {0}, a = {0};
    tl_sockaddr_t bound;
    listen_on(&n, &l, &bound);
    n.f.fail_accept_at = n.f.accepts + 1;
    CU_ASSERT_EQUAL_FATAL(O->connect(n.st, &bound, NULL, &H, &c1, &c1.s), 0);
    CU_ASSERT_TRUE(run_until_n(n.loop, &l.accept_errs, 1));
    CU_ASSERT_EQUAL(l.accept_err, TL_EMFILE);
    CU_ASSERT_EQUAL(l.nconns, 0);
    CU_ASSERT_EQUAL(n.f.injected, 1);
    /* the dropped connection is reset under its client: its connect
     * fails, or its reading does (the kernel's timing decides) */
    CU_ASSERT_TRUE(run_until_n(n.loop, &c1.connected, 1));
    if (c1.status == 0) {
        CU_ASSERT_EQUAL(O->read_start(c1.s), 0);
        uint64_t end = tl_now_ns() + 5000000000ull;
        while (!c1.err && !c1.eof && tl_now_ns() < end)
            tl_loop_run_once(n.loop, 10 * MS);
        CU_ASSERT(c1.err == TL_ECONNRESET || c1.eof);
    } else {
        CU_ASSERT_EQUAL(c1.status, TL_ECONNRESET);
    }
    /* and the next one is served */
    connect_to(&n, &l, &bound, &c2, &a);
    CU_ASSERT_EQUAL(l.accept_errs, 1);
    close_all(&l, &c2, &a);
    O->close(c1.s, 0);
    fnet_close(&n);
}

static void test_nth_connect_is_refused_from_the_loop(void) {
    fnet_t n;
    fnet_open(&n);
    ep_t l = {0}, c = {0};
    tl_sockaddr_t bound, x;
    listen_on(&n, &l, &bound);
    n.f.fail_connect_at = n.f.connects + 1;
    CU_ASSERT_EQUAL_FATAL(O->connect(n.st, &bound, NULL, &H, &c, &c.s), 0);
    CU_ASSERT_EQUAL(c.connected, 0); /* not from inside connect */
    CU_ASSERT_TRUE(run_until_n(n.loop, &c.connected, 1));
    CU_ASSERT_EQUAL(c.status, TL_ECONNREFUSED);
    CU_ASSERT_EQUAL(O->getaddr(c.s, 1, &x), TL_ENOTCONN);
    tl_iovec_t v = {"x", 1};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), TL_ECONNREFUSED);
    run_some(n.loop, 3);
    CU_ASSERT_EQUAL(l.nconns, 0); /* it never reached the listener */
    CU_ASSERT_EQUAL(c.connected, 1);
    close_all(&l, &c, NULL);
    fnet_close(&n);
}

typedef struct sreq {
    tl_ns_send_t req;
    tl_iovec_t iov;
    int done, status;
} sreq_t;

static void sreq_done(tl_ns_send_t *r, int status) {
    sreq_t *q = (sreq_t *)r;
    q->done++;
    q->status = status;
}

static void test_nth_send_fails_with_reset_and_stays_failed(void) {
    fnet_t n;
    fnet_open(&n);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t bound;
    listen_on(&n, &l, &bound);
    connect_to(&n, &l, &bound, &c, &a);
    n.f.fail_send_at = n.f.send_ops + 2;
    tl_iovec_t v = {"ok", 2};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 2);
    sreq_t q = {.iov = {"no", 2}};
    q.req.iov = &q.iov;
    q.req.n = 1;
    q.req.done = sreq_done;
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), TL_ECONNRESET);
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), TL_ECONNRESET);
    /* another socket is untouched */
    CU_ASSERT_EQUAL(O->try_send(a.s, &v, 1, NULL), 2);
    run_for_len(n.loop, &c, 2);
    CU_ASSERT_EQUAL(c.len, 0); /* a failed socket drops what arrives */
    run_for_len(n.loop, &a, 2);
    CU_ASSERT_EQUAL(a.len, 2);
    CU_ASSERT_EQUAL(q.done, 0);
    CU_ASSERT_EQUAL(n.f.injected, 1);
    CU_ASSERT_EQUAL(n.f.sends, 1);
    CU_ASSERT_EQUAL(n.f.try_sends, 3);
    close_all(&l, &c, &a);
    fnet_close(&n);
}

static void test_short_writes_take_one_byte(void) {
    fnet_t n;
    fnet_open(&n);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t bound;
    listen_on(&n, &l, &bound);
    connect_to(&n, &l, &bound, &c, &a);
    n.f.short_writes = 1;
    tl_iovec_t v[2] = {{"", 0}, {"abc", 3}};
    size_t sent = 0;
    for (int i = 0; i < 3; i++) {
        v[1].base = "abc" + sent;
        v[1].len = 3 - sent;
        CU_ASSERT_EQUAL(O->try_send(c.s, v, 2, NULL), 1);
        sent++;
    }
    CU_ASSERT_EQUAL(O->try_send(c.s, v, 1, NULL), 0); /* nothing to take */
    run_for_len(n.loop, &a, 3);
    CU_ASSERT_EQUAL(memcmp(a.data, "abc", 3), 0);
    CU_ASSERT_EQUAL(n.f.try_send_bytes, 3);
    close_all(&l, &c, &a);
    fnet_close(&n);
}

static void test_eagain_storm_takes_nothing_then_passes(void) {
    fnet_t n;
    fnet_open(&n);
    ep_t l = {0}, c = {0}, a = {0}, d = {0};
    tl_sockaddr_t bound;
    listen_on(&n, &l, &bound);
    connect_to(&n, &l, &bound, &c, &a);
    tl_sockaddr_t local = addr_ip("127.0.0.1", 0);
    CU_ASSERT_EQUAL_FATAL(
        O->open_dgram(n.st, &local, NULL, NULL, &H, &d, &d.s), 0);
    CU_ASSERT_EQUAL(n.f.dgrams, 1);
    n.f.eagain_try_sends = 3;
    tl_iovec_t v = {"z", 1};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 0);
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 0);
    CU_ASSERT_EQUAL(O->try_send(d.s, &v, 1, &local), TL_EAGAIN);
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 1);
    CU_ASSERT_EQUAL(n.f.injected, 3);
    CU_ASSERT_EQUAL(n.f.eagain_try_sends, 0);
    run_for_len(n.loop, &a, 1);
    CU_ASSERT_EQUAL(a.len, 1);
    O->close(d.s, 0);
    close_all(&l, &c, &a);
    fnet_close(&n);
}

static void test_delayed_reads_arrive_later_and_in_order(void) {
    fnet_t n;
    fnet_open(&n);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t bound;
    listen_on(&n, &l, &bound);
    connect_to(&n, &l, &bound, &c, &a);
    n.f.delay_reads = 2;
    tl_iovec_t v = {"one", 3};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 3);
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (n.f.delay_reads > 1 && tl_now_ns() < end)
        tl_loop_run_once(n.loop, 10 * MS);
    CU_ASSERT_EQUAL(n.f.delay_reads, 1); /* held, not yet given */
    tl_iovec_t w = {"two", 3};
    CU_ASSERT_EQUAL(O->try_send(c.s, &w, 1, NULL), 3);
    CU_ASSERT_EQUAL(O->shutdown_write(c.s), 0);
    end = tl_now_ns() + 5000000000ull;
    while (!a.eof && tl_now_ns() < end)
        tl_loop_run_once(n.loop, 10 * MS);
    CU_ASSERT_EQUAL(a.len, 6);
    CU_ASSERT_EQUAL(memcmp(a.data, "onetwo", 6), 0);
    CU_ASSERT_EQUAL(a.eof, 1);
    close_all(&l, &c, &a);
    fnet_close(&n);
}

/* A consumer that keeps a buffer past close: the wrapper stays until it
 * comes back. */
static tl_ns_buf_t *kept;
static void keep_recv(void *ctx, tl_ns_buf_t *buf, int status) {
    (void)status;
    if (buf && kept == NULL)
        kept = buf;
    else if (buf)
        O->release(ctx, buf);
}

static void test_held_events_and_lent_buffers_survive_close(void) {
    fnet_t n;
    fnet_open(&n);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t bound;
    listen_on(&n, &l, &bound);
    connect_to(&n, &l, &bound, &c, &a);
    tl_ns_handler_t kh = {keep_recv, NULL, NULL};
    CU_ASSERT_EQUAL(O->set_handler(a.s, &kh, a.s), 0);
    kept = NULL;
    tl_iovec_t v = {"kept", 4};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 4);
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (kept == NULL && tl_now_ns() < end)
        tl_loop_run_once(n.loop, 10 * MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(kept);
    /* and a held event is dropped (released) by close */
    n.f.delay_reads = 1;
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 4);
    end = tl_now_ns() + 5000000000ull;
    while (n.f.delay_reads && tl_now_ns() < end)
        tl_loop_run_once(n.loop, 10 * MS);
    CU_ASSERT_EQUAL(O->read_stop(a.s), 0); /* keep it held */
    run_some(n.loop, 2);
    O->close(a.s, 0);
    run_some(n.loop, 2);
    CU_ASSERT_EQUAL(n.f.live, 3); /* a's wrapper waits for its buffer */
    CU_ASSERT_EQUAL(memcmp(kept->data, "kept", 4), 0);
    O->release(a.s, kept);
    run_some(n.loop, 1);
    CU_ASSERT_EQUAL(n.f.live, 2);
    a.s = NULL;
    close_all(&l, &c, &a);
    fnet_close(&n);
}

static void test_create_out_of_memory_fails_cleanly(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_fault_t f = {.size = sizeof f};
    const tl_netstack_ops_t *ops = tl_test_netstack_fault();
    int rc = TL_ENOMEM;
    for (long i = 1; rc == TL_ENOMEM && i < 50; i++) {
        void *st = NULL;
        tl_test_fail_alloc_at(i);
        rc = ops->create(loop, &f, &st);
        tl_test_fail_alloc_at(0);
        if (rc == 0)
            ops->destroy(st);
        else
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
    }
    CU_ASSERT_EQUAL(rc, 0);
    tl_test_loop_free(loop);
}

/* ---- transports and servers over the wrapper ----------------------------- */

typedef struct srv {
    tl_loop_t *loop;
    tl_test_fault_t f;
    tl_test_exc_t exc;
    tl_server_t *server;
    rec_t recs[8];
    factory_t fac;
    tl_sockaddr_t bound;
} srv_t;

/* An echo server (when echo) on 127.0.0.1 over the fault stack. */
static void srv_open(srv_t *s, int echo) {
    memset(s, 0, sizeof *s);
    s->f.size = sizeof s->f;
    s->loop = tl_test_loop();
    tl_test_capture_exceptions(s->loop, &s->exc);
    CU_ASSERT_EQUAL_FATAL(
        tl_loop_set_netstack(s->loop, tl_test_netstack_fault(), &s->f), 0);
    for (int i = 0; i < 8; i++)
        s->recs[i].echo = echo;
    s->fac.recs = s->recs;
    s->fac.n = 8;
    tl_sockaddr_t a = addr_ip("127.0.0.1", 0);
    CU_ASSERT_EQUAL_FATAL(tl_create_server_addrs(s->loop, factory_fn, &s->fac,
                                                 &a, 1, NULL, &s->server),
                          0);
    CU_ASSERT_EQUAL_FATAL(tl_server_sockets(s->server, &s->bound, 1), 1);
}

static void srv_close(srv_t *s) {
    tl_server_free(s->server);
    run_some(s->loop, 3);
    tl_test_loop_free(s->loop);
    CU_ASSERT_EQUAL(s->f.live, 0);
    for (int i = 0; i < 8; i++)
        rec_free(&s->recs[i]);
}

static void finish(srv_t *s, rec_t *c) {
    if (c->t && !c->lost) {
        tl_transport_close(c->t);
        run_until(s->loop, &c->lost);
    }
}

static void test_server_keeps_serving_after_an_emfile_accept(void) {
    srv_t s;
    srv_open(&s, 1);
    s.f.fail_accept_at = s.f.accepts + 1;
    rec_t c1 = {0}, c2 = {0};
    tl_transport_t *t1 = NULL, *t2 = NULL;
    /* dropped by the server: the connect fails, or the connection is
     * lost right after (the kernel's timing decides) */
    int rc = dial(s.loop, &s.bound, &rec_proto, &c1, &t1);
    if (rc == 0) {
        CU_ASSERT_TRUE(run_until(s.loop, &c1.lost));
    } else {
        CU_ASSERT_EQUAL(rc, TL_ECONNRESET);
    }
    CU_ASSERT_EQUAL(s.f.injected, 1);
    CU_ASSERT_EQUAL(s.fac.used, 0);
    CU_ASSERT_EQUAL_FATAL(dial(s.loop, &s.bound, &rec_proto, &c2, &t2), 0);
    CU_ASSERT_TRUE(run_until(s.loop, &c2.made));
    CU_ASSERT_EQUAL(tl_transport_write(t2, "ping", 4), 0);
    CU_ASSERT_TRUE(run_until_len(s.loop, &c2, 4));
    CU_ASSERT_EQUAL(memcmp(c2.data, "ping", 4), 0);
    CU_ASSERT_EQUAL(s.fac.used, 1);
    finish(&s, &c2);
    srv_close(&s);
    rec_free(&c1);
    rec_free(&c2);
}

static void test_a_reset_send_ends_only_that_connection(void) {
    srv_t s;
    srv_open(&s, 1);
    rec_t c1 = {0}, c2 = {0};
    tl_transport_t *t1 = NULL, *t2 = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(s.loop, &s.bound, &rec_proto, &c1, &t1), 0);
    CU_ASSERT_EQUAL_FATAL(dial(s.loop, &s.bound, &rec_proto, &c2, &t2), 0);
    CU_ASSERT_TRUE(run_until(s.loop, &c1.made));
    CU_ASSERT_TRUE(run_until(s.loop, &c2.made));
    CU_ASSERT_TRUE(run_until(s.loop, &s.recs[1].made));
    s.f.fail_send_at = s.f.send_ops + 1;
    CU_ASSERT_EQUAL(tl_transport_write(t1, "boom", 4), 0);
    CU_ASSERT_TRUE(run_until(s.loop, &c1.lost));
    CU_ASSERT_EQUAL(c1.lost_error, TL_ECONNRESET);
    CU_ASSERT_EQUAL(s.f.injected, 1);
    /* the server's end of it goes too; the other connection serves on */
    CU_ASSERT_TRUE(run_until(s.loop, &s.recs[0].lost));
    CU_ASSERT_EQUAL(tl_transport_write(t2, "still", 5), 0);
    CU_ASSERT_TRUE(run_until_len(s.loop, &c2, 5));
    CU_ASSERT_EQUAL(memcmp(c2.data, "still", 5), 0);
    CU_ASSERT_EQUAL(s.recs[1].lost, 0);
    finish(&s, &c2);
    srv_close(&s);
    rec_free(&c1);
    rec_free(&c2);
}

static void test_one_byte_writes_deliver_every_byte_in_order(void) {
    srv_t s;
    srv_open(&s, 0);
    rec_t c = {0};
    tl_transport_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(s.loop, &s.bound, &rec_proto, &c, &t), 0);
    CU_ASSERT_TRUE(run_until(s.loop, &s.recs[0].made));
    s.f.short_writes = 1;
    enum { CHUNK = 500, CHUNKS = 200 };
    static unsigned char msg[CHUNK * CHUNKS];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)(i * 31 + i / 251);
    for (int i = 0; i < CHUNKS; i++) {
        CU_ASSERT_EQUAL(tl_transport_write(t, msg + i * CHUNK, CHUNK), 0);
        if (i % 3 == 0)
            tl_loop_run_once(s.loop, 0);
    }
    CU_ASSERT_TRUE(run_until_len(s.loop, &s.recs[0], sizeof msg));
    CU_ASSERT_EQUAL_FATAL(s.recs[0].len, sizeof msg);
    CU_ASSERT_EQUAL(memcmp(s.recs[0].data, msg, sizeof msg), 0);
    CU_ASSERT(s.f.injected > 0);
    finish(&s, &c);
    srv_close(&s);
    rec_free(&c);
}

static void test_eagain_storms_and_late_reads_lose_nothing(void) {
    srv_t s;
    srv_open(&s, 1);
    rec_t c = {0};
    tl_transport_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(s.loop, &s.bound, &rec_proto, &c, &t), 0);
    CU_ASSERT_TRUE(run_until(s.loop, &s.recs[0].made));
    s.f.eagain_try_sends = 40;
    s.f.delay_reads = 40;
    enum { CHUNK = 1000, CHUNKS = 60 };
    static unsigned char msg[CHUNK * CHUNKS];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)(i * 13 + 7);
    for (int i = 0; i < CHUNKS; i++) {
        CU_ASSERT_EQUAL(tl_transport_write(t, msg + i * CHUNK, CHUNK), 0);
        tl_loop_run_once(s.loop, 0);
    }
    CU_ASSERT_TRUE(run_until_len(s.loop, &c, sizeof msg));
    CU_ASSERT_EQUAL_FATAL(c.len, sizeof msg);
    CU_ASSERT_EQUAL(memcmp(c.data, msg, sizeof msg), 0);
    CU_ASSERT(s.f.injected > 0);
    CU_ASSERT_EQUAL(c.lost, 0);
    finish(&s, &c);
    srv_close(&s);
    rec_free(&c);
}

TL_TEST_SUITE(netstack_fault, TL_TEST(test_wrapper_forwards_and_counts),
              TL_TEST(test_nth_accept_fails_and_the_listener_keeps_accepting),
              TL_TEST(test_nth_connect_is_refused_from_the_loop),
              TL_TEST(test_nth_send_fails_with_reset_and_stays_failed),
              TL_TEST(test_short_writes_take_one_byte),
              TL_TEST(test_eagain_storm_takes_nothing_then_passes),
              TL_TEST(test_delayed_reads_arrive_later_and_in_order),
              TL_TEST(test_held_events_and_lent_buffers_survive_close),
              TL_TEST(test_create_out_of_memory_fails_cleanly),
              TL_TEST(test_server_keeps_serving_after_an_emfile_accept),
              TL_TEST(test_a_reset_send_ends_only_that_connection),
              TL_TEST(test_one_byte_writes_deliver_every_byte_in_order),
              TL_TEST(test_eagain_storms_and_late_reads_lose_nothing));
