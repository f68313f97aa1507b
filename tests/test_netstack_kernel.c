/*
 * netstack_kernel: what only the kernel netstack can show over TCP: raw
 * socket peers, resets, full socket buffers, bind options, running out of
 * descriptors while accepting, and the watcher changes an echo costs.
 * Unix sockets, datagrams, pipes and sendfile: test_netstack_kernel_fd.c.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netstack_test.h"

/* A blocking raw client of addr (with that receive buffer, if not 0). */
static int raw_rcvbuf;
static int raw_connect(const tl_sockaddr_t *a) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    if (raw_rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &raw_rcvbuf, sizeof raw_rcvbuf);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (const struct sockaddr *)a->u.bytes, a->len), 0);
    return fd;
}

/* A kernel listener accepting into lp, and a raw client connected to it;
 * sp is the accepted side. */
static int raw_pair(tl_loop_t *loop, void *st, nt_peer_t *lp, nt_peer_t *sp) {
    const tl_netstack_ops_t *ops = tl_netstack_kernel();
    nt_peer_init(lp, ops);
    nt_peer_init(sp, ops);
    tl_sockaddr_t any = nt_loopback(0), bound;
    CU_ASSERT_EQUAL_FATAL(ops->listen(st, &any, NULL, &nt_handler, lp, &lp->s), 0);
    CU_ASSERT_EQUAL_FATAL(ops->accept_start(lp->s), 0);
    CU_ASSERT_EQUAL_FATAL(ops->getaddr(lp->s, 0, &bound), 0);
    int fd = raw_connect(&bound);
    CU_ASSERT_FATAL(nt_run_until(loop, &lp->nacc, 1));
    sp->s = lp->acc[0];
    CU_ASSERT_EQUAL(ops->set_handler(sp->s, &nt_handler, sp), 0);
    return fd;
}

static void test_sockets_are_nonblocking_and_cloexec(void) {
    KSETUP();
    nt_peer_t lp, sp;
    int fd = raw_pair(loop, st, &lp, &sp);
    tl_fd_t k;
    CU_ASSERT_EQUAL(ops->fileno(sp.s, &k), 0);
    CU_ASSERT(fcntl(k, F_GETFL) & O_NONBLOCK);
    CU_ASSERT(fcntl(k, F_GETFD) & FD_CLOEXEC);
    CU_ASSERT_EQUAL(ops->fileno(lp.s, &k), 0);
    CU_ASSERT(fcntl(k, F_GETFL) & O_NONBLOCK);
    CU_ASSERT(fcntl(k, F_GETFD) & FD_CLOEXEC);
    close(fd);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    tl_test_loop_free(loop);
}

/* try_send takes what fits; send() queues the rest behind it and the
 * peer gets every byte in order once it reads. */
static void test_partial_writes_with_a_full_socket_buffer(void) {
    KSETUP();
    nt_peer_t lp, sp;
    raw_rcvbuf = 4096; /* before connecting: shrinking a window stalls TCP */
    int fd = raw_pair(loop, st, &lp, &sp);
    raw_rcvbuf = 0;
    CU_ASSERT_EQUAL(ops->setopt(sp.s, TL_NS_OPT_SNDBUF, 4096), 0);
    enum { N = 2 * 1024 * 1024 };
    unsigned char *big = malloc(N);
    for (size_t i = 0; i < N; i++)
        big[i] = nt_pat(i);
    tl_iovec_t v = {big, N};
    int64_t took = ops->try_send(sp.s, &v, 1, NULL);
    CU_ASSERT(took > 0 && took < N);
    /* Until the buffer is full and try_send takes nothing more. */
    for (int64_t more = 1; more > 0; took += more) {
        tl_iovec_t v2 = {big + took, N - (size_t)took};
        more = ops->try_send(sp.s, &v2, 1, NULL);
        CU_ASSERT_FATAL(more >= 0);
    }
    nt_send_t a, b;
    nt_send_init(&a, big + took, (N - (size_t)took) / 2);
    size_t mid = (size_t)took + (N - (size_t)took) / 2;
    nt_send_init(&b, big + mid, N - mid);
    CU_ASSERT_EQUAL(ops->send(sp.s, &a.req), 0);
    CU_ASSERT_EQUAL(ops->send(sp.s, &b.req), 0);
    /* While send() is pending try_send takes nothing (order). */
    CU_ASSERT_EQUAL(ops->try_send(sp.s, &v, 1, NULL), 0);
    nt_spin(loop, 3);
    CU_ASSERT_EQUAL(a.done, 0);
    /* Now the peer reads, with the loop running in between. */
    unsigned char *got = malloc(N);
    size_t have = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (have < N && tl_now_ns() < end) {
        ssize_t r = read(fd, got + have, N - have);
        if (r > 0)
            have += (size_t)r;
        tl_loop_run_once(loop, 0);
    }
    if (have != N)
        fprintf(stderr, "have %zu of %d; took %lld a.done %d\n", have, N, (long long)took, a.done);
    CU_ASSERT_EQUAL_FATAL(have, N);
    CU_ASSERT_EQUAL(memcmp(got, big, N), 0);
    CU_ASSERT(nt_run_until(loop, &b.done, 1));
    CU_ASSERT_EQUAL(a.status, 0);
    CU_ASSERT_EQUAL(b.status, 0);
    CU_ASSERT(a.order < b.order);
    close(fd);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    free(big);
    free(got);
    tl_test_loop_free(loop);
}

static void linger0_close(int fd) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void test_peer_reset_is_reported_once(void) {
    KSETUP();
    nt_peer_t lp, sp;
    int fd = raw_pair(loop, st, &lp, &sp);
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    linger0_close(fd);
    CU_ASSERT(nt_run_until(loop, &sp.errs, 1));
    CU_ASSERT_EQUAL(sp.last_err, TL_ECONNRESET);
    nt_spin(loop, 3);
    CU_ASSERT_EQUAL(sp.errs, 1);
    CU_ASSERT_EQUAL(sp.eofs, 0);
    /* The socket is dead: sends fail at once. */
    nt_send_t x;
    nt_send_init(&x, "x", 1);
    CU_ASSERT_EQUAL(ops->send(sp.s, &x.req), TL_ECONNRESET);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    nt_peer_free(&sp);
    tl_test_loop_free(loop);
}

/* A reset seen while writing fails the queued sends and tells recv. */
static void test_reset_while_sending_fails_queued_sends(void) {
    KSETUP();
    nt_peer_t lp, sp;
    int fd = raw_pair(loop, st, &lp, &sp);
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    enum { N = 8 * 1024 * 1024 };
    unsigned char *big = calloc(1, N);
    nt_send_t a;
    nt_send_init(&a, big, N);
    CU_ASSERT_EQUAL(ops->send(sp.s, &a.req), 0);
    nt_spin(loop, 2);
    linger0_close(fd);
    CU_ASSERT(nt_run_until(loop, &a.done, 1));
    CU_ASSERT(a.status == TL_ECONNRESET || a.status == TL_EPIPE);
    CU_ASSERT(nt_run_until(loop, &sp.errs, 1));
    nt_spin(loop, 2);
    CU_ASSERT_EQUAL(sp.errs, 1);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    nt_peer_free(&sp);
    free(big);
    tl_test_loop_free(loop);
}

static void test_abort_resets_the_peer(void) {
    KSETUP();
    nt_peer_t lp, sp;
    int fd = raw_pair(loop, st, &lp, &sp);
    nt_close(&sp, 1);
    char c;
    ssize_t r = read(fd, &c, 1);
    CU_ASSERT_EQUAL(r, -1);
    CU_ASSERT_EQUAL(errno, ECONNRESET);
    close(fd);
    nt_close(&lp, 0);
    tl_test_loop_free(loop);
}

static void test_graceful_close_is_eof_for_the_peer(void) {
    KSETUP();
    nt_peer_t lp, sp;
    int fd = raw_pair(loop, st, &lp, &sp);
    tl_iovec_t v = {"last", 4};
    CU_ASSERT_EQUAL(ops->try_send(sp.s, &v, 1, NULL), 4);
    nt_close(&sp, 0);
    char buf[8];
    CU_ASSERT_EQUAL(read(fd, buf, sizeof buf), 4);
    CU_ASSERT_EQUAL(read(fd, buf, sizeof buf), 0);
    close(fd);
    nt_close(&lp, 0);
    tl_test_loop_free(loop);
}

static void test_connect_to_a_raw_listener(void) {
    KSETUP();
    int l = socket(AF_INET, SOCK_STREAM, 0);
    tl_sockaddr_t a = nt_loopback(0);
    CU_ASSERT_EQUAL_FATAL(bind(l, (struct sockaddr *)a.u.bytes, a.len), 0);
    CU_ASSERT_EQUAL_FATAL(listen(l, 4), 0);
    socklen_t len = sizeof a.u.bytes;
    getsockname(l, (struct sockaddr *)a.u.bytes, &len);
    nt_peer_t cp;
    nt_peer_init(&cp, ops);
    CU_ASSERT_EQUAL_FATAL(ops->connect(st, &a, NULL, &nt_handler, &cp, &cp.s), 0);
    /* Sends and shutdown made before the connection is up wait for it. */
    nt_send_t x;
    nt_send_init(&x, "early", 5);
    CU_ASSERT_EQUAL(ops->send(cp.s, &x.req), 0);
    CU_ASSERT_EQUAL(ops->shutdown_write(cp.s), 0);
    CU_ASSERT(nt_run_until(loop, &cp.connected, 1));
    CU_ASSERT_EQUAL(cp.conn_status, 0);
    CU_ASSERT(nt_run_until(loop, &x.done, 1));
    int fd = accept(l, NULL, NULL);
    char buf[8];
    CU_ASSERT_EQUAL(read(fd, buf, sizeof buf), 5);
    CU_ASSERT_EQUAL(read(fd, buf, sizeof buf), 0);
    close(fd);
    close(l);
    nt_close(&cp, 0);
    tl_test_loop_free(loop);
}

/* Closing the loop with sockets still open (listening, connected, with
 * queued sends) frees everything: the kernel stack closes what the
 * transports left (the contract has them close everything first; other
 * stacks may only complain). */
static void test_loop_close_with_live_sockets(void) {
    KSETUP();
    nt_peer_t lp, cp, sp;
    nt_pair(loop, &lp, &cp, &sp);
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    CU_ASSERT_EQUAL(ops->read_start(cp.s), 0);
    static unsigned char big[4 << 20];
    nt_send_t a;
    nt_send_init(&a, big, sizeof big);
    CU_ASSERT_EQUAL(ops->send(sp.s, &a.req), 0);
    nt_spin(loop, 2);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(a.done, 1); /* completed by the close, not leaked */
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
    nt_peer_free(&cp);
    nt_peer_free(&sp);
}

static int sockopt(const tl_netstack_ops_t *ops, tl_ns_sock_t *s, int level,
                   int name) {
    tl_fd_t fd;
    int v = -1;
    socklen_t len = sizeof v;
    CU_ASSERT_EQUAL(ops->fileno(s, &fd), 0);
    CU_ASSERT_EQUAL(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

static void test_listen_applies_bind_options(void) {
    KSETUP();
    nt_peer_t a, b;
    nt_peer_init(&a, ops);
    nt_peer_init(&b, ops);
    tl_ns_bind_options_t o = {sizeof o, 0, 1, 1, 0, 0};
    tl_sockaddr_t any = nt_loopback(0), bound;
    CU_ASSERT_EQUAL_FATAL(ops->listen(st, &any, &o, &nt_handler, &a, &a.s), 0);
    CU_ASSERT(sockopt(ops, a.s, SOL_SOCKET, SO_REUSEADDR) != 0);
    CU_ASSERT(sockopt(ops, a.s, SOL_SOCKET, SO_REUSEPORT) != 0);
    CU_ASSERT_EQUAL(ops->getaddr(a.s, 0, &bound), 0);
    /* SO_REUSEPORT: a second listener on the same port. */
    CU_ASSERT_EQUAL(ops->listen(st, &bound, &o, &nt_handler, &b, &b.s), 0);
    nt_close(&b, 0);
    /* Without it the port is taken. */
    tl_ns_bind_options_t plain = {0};
    nt_peer_init(&b, ops);
    CU_ASSERT_EQUAL(ops->listen(st, &bound, &plain, &nt_handler, &b, &b.s), TL_EADDRINUSE);
    CU_ASSERT_PTR_NULL(b.s);
    nt_close(&a, 0);
    /* IPv6 only, where the host has IPv6. */
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe >= 0) {
        close(probe);
        tl_sockaddr_t six;
        memset(&six, 0, sizeof six);
        struct sockaddr_in6 in6;
        memset(&in6, 0, sizeof in6);
        in6.sin6_family = AF_INET6;
        in6.sin6_addr = in6addr_any;
        memcpy(six.u.bytes, &in6, sizeof in6);
        six.len = sizeof in6;
        tl_ns_bind_options_t v6 = {sizeof v6, 5, 0, 0, 1, 0};
        nt_peer_init(&a, ops);
        CU_ASSERT_EQUAL_FATAL(ops->listen(st, &six, &v6, &nt_handler, &a, &a.s), 0);
        CU_ASSERT_EQUAL(sockopt(ops, a.s, IPPROTO_IPV6, IPV6_V6ONLY), 1);
        nt_close(&a, 0);
    }
    tl_ns_bind_options_t neg = {sizeof neg, -1, 0, 0, 0, 0};
    nt_peer_init(&a, ops);
    CU_ASSERT_EQUAL(ops->listen(st, &any, &neg, &nt_handler, &a, &a.s), TL_EINVAL);
    tl_test_loop_free(loop);
}

/* ---- running out of descriptors ---------------------------------------- */

static int iterations;
static int count_iterations(tl_loop_t *loop, void *ctx) {
    (void)loop;
    (void)ctx;
    iterations++;
    return 0;
}

/* The child's side of the EMFILE test; its exit status says what broke. */
static int emfile_steps(tl_loop_t *loop, int to_parent, int from_parent) {
    const tl_netstack_ops_t *ops = tl_netstack_kernel();
    void *st;
    if (tl_loop_get_netstack(loop, NULL, &st))
        return 11;
    nt_peer_t lp;
    nt_peer_init(&lp, ops);
    tl_sockaddr_t any = nt_loopback(0), bound;
    if (ops->listen(st, &any, NULL, &nt_handler, &lp, &lp.s) ||
        ops->accept_start(lp.s) || ops->getaddr(lp.s, 0, &bound))
        return 12;
    tl_loop_add_poller(loop, count_iterations, NULL);
    nt_spin(loop, 2); /* the loop's own descriptors are made now */
    /* Leave room for 3 more descriptors. */
    int probe = dup(0);
    close(probe);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = (rlim_t)probe + 3;
    if (setrlimit(RLIMIT_NOFILE, &rl))
        return 13;
    int room = 0; /* free numbers under the limit */
    for (int fd = 0; fd < probe + 3; fd++)
        room += fcntl(fd, F_GETFD) < 0;
    uint16_t port = nt_port(&bound);
    if (write(to_parent, &port, sizeof port) != sizeof port)
        return 14;
    char c;
    if (read(from_parent, &c, 1) != 1) /* the parent connected 10 clients */
        return 15;
    iterations = 0;
    uint64_t end = tl_now_ns() + 200000000ull;
    while (tl_now_ns() < end)
        tl_loop_run_once(loop, 10000000);
    if (lp.nacc != room)
        return 16;
    if (lp.acc_errs != 1 || lp.acc_last_err != TL_EMFILE)
        return 17;
    if (iterations > 60) /* 200 ms at 10 ms steps is ~20: no spinning */
        return 18;
    for (int i = 0; i < lp.nacc; i++)
        ops->close(lp.acc[i], 0);
    lp.nacc = 0;
    if (write(to_parent, "k", 1) != 1) /* connect one more */
        return 19;
    end = tl_now_ns() + 3000000000ull;
    while (lp.nacc == 0 && tl_now_ns() < end)
        tl_loop_run_once(loop, 10000000);
    if (lp.nacc != 1)
        return 20;
    return 0;
}

/* Valgrind checks the child's leaks too: free everything on the way out. */
static int emfile_child(int to_parent, int from_parent) {
    tl_loop_t *loop;
    if (tl_loop_new(NULL, &loop))
        return 10;
    int rc = emfile_steps(loop, to_parent, from_parent);
    tl_loop_close(loop); /* closes what is still open */
    tl_loop_unref(loop);
    return rc;
}

static void test_accept_backs_off_when_out_of_descriptors(void) {
    int up[2], down[2];
    CU_ASSERT_EQUAL_FATAL(pipe(up), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(down), 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        _exit(emfile_child(up[1], down[0]));
    }
    close(up[1]);
    close(down[0]);
    uint16_t port = 0;
    CU_ASSERT_EQUAL_FATAL(read(up[0], &port, sizeof port), sizeof port);
    tl_sockaddr_t a = nt_loopback(port);
    int clients[11];
    for (int i = 0; i < 10; i++)
        clients[i] = raw_connect(&a);
    CU_ASSERT_EQUAL(write(down[1], "g", 1), 1);
    char c;
    int n = 10;
    if (read(up[0], &c, 1) == 1)
        clients[n++] = raw_connect(&a);
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status));
    if (WEXITSTATUS(status))
        fprintf(stderr, "emfile child: step %d failed\n", WEXITSTATUS(status));
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
    for (int i = 0; i < n; i++)
        close(clients[i]);
    close(up[0]);
    close(down[1]);
}

/* ---- what a message costs ----------------------------------------------- */

/* An echo over the kernel stack: one read and one write per message, and
 * no watcher changes (the writer is never armed when try_send takes all).
 * Counted through the loop's backend: a wrapper counts watch calls. */
static const tl_backend_ops_t *real_be;
static int watch_calls;
static int cnt_create(void **out) { return real_be->create(out); }
static void cnt_close(void *s) { real_be->close(s); }
static int cnt_watch(void *s, tl_fd_t fd, unsigned prev, unsigned ev) {
    watch_calls++;
    return real_be->watch(s, fd, prev, ev);
}
static int cnt_unwatch(void *s, tl_fd_t fd, unsigned prev) {
    watch_calls++;
    return real_be->unwatch(s, fd, prev);
}
static int cnt_poll(void *s, int64_t t, tl_backend_event_t *ev, int max) {
    return real_be->poll(s, t, ev, max);
}
static int cnt_wakeup(void *s) { return real_be->wakeup(s); }

typedef struct echo {
    const tl_netstack_ops_t *ops;
    tl_ns_sock_t *s;
    int msgs;
    int64_t sent_bytes;
} echo_t;

static void echo_recv(void *ctx, tl_ns_buf_t *buf, int status) {
    echo_t *e = ctx;
    if (buf) {
        tl_iovec_t v = {buf->data, buf->len};
        e->sent_bytes += e->ops->try_send(e->s, &v, 1, NULL);
        e->ops->release(e->s, buf);
        e->msgs++;
    }
    (void)status;
}

static void test_echo_makes_no_watcher_changes(void) {
    real_be = tl_backend_epoll();
    tl_backend_ops_t be = {sizeof be, "counting", cnt_create, cnt_close,
                           cnt_watch, cnt_unwatch, cnt_poll, cnt_wakeup};
    tl_loop_options_t o = {sizeof o, &be, 0, 0};
    tl_loop_t *loop;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    const tl_netstack_ops_t *ops = tl_netstack_kernel();
    void *st;
    CU_ASSERT_EQUAL_FATAL(tl_loop_get_netstack(loop, NULL, &st), 0);
    nt_peer_t lp, sp;
    int fd = raw_pair(loop, st, &lp, &sp);
    echo_t e = {ops, sp.s, 0, 0};
    tl_ns_handler_t h = {echo_recv, NULL, NULL};
    CU_ASSERT_EQUAL(ops->set_handler(sp.s, &h, &e), 0);
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    int before = watch_calls;
    char msg[64] = "ping", back[64];
    for (int i = 0; i < 200; i++) {
        CU_ASSERT_EQUAL_FATAL(write(fd, msg, sizeof msg), (ssize_t)sizeof msg);
        int want = i + 1;
        CU_ASSERT_FATAL(nt_run_until(loop, &e.msgs, want));
        CU_ASSERT_EQUAL_FATAL(read(fd, back, sizeof back), (ssize_t)sizeof back);
    }
    CU_ASSERT_EQUAL(watch_calls - before, 0);
    CU_ASSERT_EQUAL(e.sent_bytes, 200 * 64);
    close(fd);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(netstack_kernel, TL_TEST(test_sockets_are_nonblocking_and_cloexec),
              TL_TEST(test_partial_writes_with_a_full_socket_buffer),
              TL_TEST(test_peer_reset_is_reported_once),
              TL_TEST(test_reset_while_sending_fails_queued_sends),
              TL_TEST(test_abort_resets_the_peer),
              TL_TEST(test_graceful_close_is_eof_for_the_peer),
              TL_TEST(test_connect_to_a_raw_listener),
              TL_TEST(test_loop_close_with_live_sockets),
              TL_TEST(test_listen_applies_bind_options),
              TL_TEST(test_accept_backs_off_when_out_of_descriptors),
              TL_TEST(test_echo_makes_no_watcher_changes));
