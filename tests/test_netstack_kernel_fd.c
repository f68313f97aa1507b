/*
 * netstack_kernel_fd: the kernel netstack with other descriptors than TCP
 * sockets: Unix stream sockets (by path and abstract name), Unix and UDP
 * datagrams, adopted socketpairs and pipes (SIGPIPE-safe), sendfile.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "netstack_test.h"

/* ---- Unix sockets ------------------------------------------------------ */

static tl_sockaddr_t unix_addr(const char *path, int abstract) {
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    size_t n = strlen(path);
    memcpy(un.sun_path + (abstract ? 1 : 0), path, n);
    memcpy(a.u.bytes, &un, sizeof un);
    /* An abstract name is exactly its bytes (no terminator counted). */
    /* Path: the name and its terminator. Abstract: the leading NUL and the
     * name's bytes, no terminator. The same count either way. */
    a.len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    return a;
}

static void unix_round_trip(tl_loop_t *loop, void *st, tl_sockaddr_t *addr) {
    const tl_netstack_ops_t *ops = tl_netstack_kernel();
    nt_peer_t lp, cp, sp;
    nt_peer_init(&lp, ops);
    nt_peer_init(&cp, ops);
    nt_peer_init(&sp, ops);
    CU_ASSERT_EQUAL_FATAL(ops->listen(st, addr, NULL, &nt_handler, &lp, &lp.s), 0);
    CU_ASSERT_EQUAL_FATAL(ops->accept_start(lp.s), 0);
    tl_sockaddr_t got;
    CU_ASSERT_EQUAL(ops->getaddr(lp.s, 0, &got), 0);
    CU_ASSERT_EQUAL(got.len, addr->len);
    CU_ASSERT_EQUAL(memcmp(got.u.bytes, addr->u.bytes, addr->len), 0);
    CU_ASSERT_EQUAL_FATAL(ops->connect(st, addr, NULL, &nt_handler, &cp, &cp.s), 0);
    CU_ASSERT_EQUAL(cp.connected, 0); /* reported from the loop */
    CU_ASSERT(nt_run_until(loop, &cp.connected, 1));
    CU_ASSERT_EQUAL(cp.conn_status, 0);
    CU_ASSERT(nt_run_until(loop, &lp.nacc, 1));
    sp.s = lp.acc[0];
    CU_ASSERT_EQUAL(ops->set_handler(sp.s, &nt_handler, &sp), 0);
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    tl_iovec_t v = {"unix", 4};
    CU_ASSERT_EQUAL(ops->try_send(cp.s, &v, 1, NULL), 4);
    CU_ASSERT(nt_run_until(loop, (int *)&sp.len, 4));
    CU_ASSERT_EQUAL(memcmp(sp.data, "unix", 4), 0);
    /* NODELAY is a TCP option. */
    CU_ASSERT_NOT_EQUAL(ops->setopt(cp.s, TL_NS_OPT_NODELAY, 1), 0);
    nt_close(&cp, 0);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    nt_peer_free(&sp);
}

static void test_unix_stream_by_path(void) {
    KSETUP();
    char path[64];
    snprintf(path, sizeof path, "/tmp/tl-ns-%d.sock", (int)getpid());
    unlink(path);
    tl_sockaddr_t a = unix_addr(path, 0);
    unix_round_trip(loop, st, &a);
    unlink(path);
    tl_test_loop_free(loop);
}

static void test_unix_stream_abstract_name(void) {
    KSETUP();
    char name[64];
    snprintf(name, sizeof name, "tl-ns-abstract-%d", (int)getpid());
    tl_sockaddr_t a = unix_addr(name, 1);
    unix_round_trip(loop, st, &a);
    tl_test_loop_free(loop);
}

static void test_unix_connect_reported_from_the_loop_before_data(void) {
    KSETUP();
    char name[64];
    snprintf(name, sizeof name, "tl-ns-early-%d", (int)getpid());
    tl_sockaddr_t a = unix_addr(name, 1);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    CU_ASSERT_EQUAL_FATAL(bind(l, (struct sockaddr *)a.u.bytes, a.len), 0);
    CU_ASSERT_EQUAL_FATAL(listen(l, 4), 0);
    nt_peer_t cp;
    nt_peer_init(&cp, ops);
    CU_ASSERT_EQUAL_FATAL(ops->connect(st, &a, NULL, &nt_handler, &cp, &cp.s), 0);
    CU_ASSERT_EQUAL(ops->read_start(cp.s), 0);
    int fd = accept(l, NULL, NULL);
    CU_ASSERT_EQUAL(write(fd, "hi", 2), 2); /* data is there before the report */
    CU_ASSERT(nt_run_until(loop, &cp.recvs, 1));
    CU_ASSERT_EQUAL(cp.connected, 1); /* connected came first */
    close(fd);
    close(l);
    nt_close(&cp, 0);
    nt_peer_free(&cp);
    tl_test_loop_free(loop);
}

static void test_unix_dgram_round_trip(void) {
    KSETUP();
    char n1[64], n2[64];
    snprintf(n1, sizeof n1, "tl-ns-d1-%d", (int)getpid());
    snprintf(n2, sizeof n2, "tl-ns-d2-%d", (int)getpid());
    tl_sockaddr_t a1 = unix_addr(n1, 1), a2 = unix_addr(n2, 1);
    nt_peer_t p1, p2;
    nt_peer_init(&p1, ops);
    nt_peer_init(&p2, ops);
    CU_ASSERT_EQUAL_FATAL(ops->open_dgram(st, &a1, NULL, NULL, &nt_handler, &p1, &p1.s), 0);
    CU_ASSERT_EQUAL_FATAL(ops->open_dgram(st, &a2, &a1, NULL, &nt_handler, &p2, &p2.s), 0);
    CU_ASSERT_EQUAL(ops->read_start(p1.s), 0);
    tl_iovec_t v = {"dgram", 5};
    CU_ASSERT_EQUAL(ops->try_send(p2.s, &v, 1, NULL), 5);
    CU_ASSERT(nt_run_until(loop, &p1.recvs, 1));
    CU_ASSERT_EQUAL(p1.from.len, a2.len);
    CU_ASSERT_EQUAL(memcmp(p1.from.u.bytes, a2.u.bytes, a2.len), 0);
    /* A datagram bigger than a buffer is reported, not cut. */
    int big = 1 << 20;
    tl_fd_t f2;
    CU_ASSERT_EQUAL(ops->fileno(p2.s, &f2), 0);
    setsockopt(f2, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    tl_fd_t f1;
    CU_ASSERT_EQUAL(ops->fileno(p1.s, &f1), 0);
    setsockopt(f1, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    size_t huge = 100000;
    unsigned char *h = calloc(1, huge);
    tl_iovec_t hv = {h, huge};
    int64_t r = ops->try_send(p2.s, &hv, 1, NULL);
    if (r == (int64_t)huge) {
        CU_ASSERT(nt_run_until(loop, &p1.errs, 1));
        CU_ASSERT_EQUAL(p1.last_err, TL_EMSGSIZE);
        CU_ASSERT_EQUAL(p1.recvs, 1);
    }
    free(h);
    nt_close(&p1, 0);
    nt_close(&p2, 0);
    nt_peer_free(&p1);
    tl_test_loop_free(loop);
}

/* A receiver that does not read fills a Unix datagram socket: send()
 * queues the rest and every datagram arrives, in order, once it reads. */
static void test_dgram_send_queue_waits_for_room(void) {
    KSETUP();
    char n1[64];
    snprintf(n1, sizeof n1, "tl-ns-q-%d", (int)getpid());
    tl_sockaddr_t a1 = unix_addr(n1, 1);
    nt_peer_t p1, p2;
    nt_peer_init(&p1, ops);
    nt_peer_init(&p2, ops);
    CU_ASSERT_EQUAL_FATAL(ops->open_dgram(st, &a1, NULL, NULL, &nt_handler, &p1, &p1.s), 0);
    CU_ASSERT_EQUAL_FATAL(ops->open_dgram(st, NULL, &a1, NULL, &nt_handler, &p2, &p2.s), 0);
    enum { M = 200 };
    static nt_send_t x[M];
    static unsigned char msg[M][1000];
    for (int i = 0; i < M; i++) {
        memset(msg[i], i, sizeof msg[i]);
        nt_send_init(&x[i], msg[i], sizeof msg[i]);
        CU_ASSERT_EQUAL_FATAL(ops->send(p2.s, &x[i].req), 0);
    }
    nt_spin(loop, 3);
    CU_ASSERT_EQUAL(x[M - 1].done, 0); /* queued: the receiver is full */
    tl_iovec_t v = {"x", 1};
    CU_ASSERT_EQUAL(ops->try_send(p2.s, &v, 1, NULL), TL_EAGAIN);
    CU_ASSERT_EQUAL(ops->read_start(p1.s), 0);
    CU_ASSERT(nt_run_until(loop, &p1.recvs, M));
    CU_ASSERT_EQUAL_FATAL(p1.len, M * sizeof msg[0]);
    for (int i = 0; i < M; i++)
        CU_ASSERT_EQUAL(p1.data[i * sizeof msg[0]], (unsigned char)i);
    CU_ASSERT(nt_run_until(loop, &x[M - 1].done, 1));
    for (int i = 1; i < M; i++)
        CU_ASSERT(x[i - 1].order < x[i].order);
    nt_close(&p1, 0);
    nt_close(&p2, 0);
    nt_peer_free(&p1);
    tl_test_loop_free(loop);
}

static void test_adopt_socketpair_as_stream(void) {
    KSETUP();
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    nt_peer_t a, b;
    nt_peer_init(&a, ops);
    nt_peer_init(&b, ops);
    CU_ASSERT_EQUAL_FATAL(ops->adopt(st, sv[0], TL_NS_STREAM, &nt_handler, &a, &a.s), 0);
    CU_ASSERT_EQUAL_FATAL(ops->adopt(st, sv[1], TL_NS_STREAM, &nt_handler, &b, &b.s), 0);
    CU_ASSERT_EQUAL(ops->read_start(b.s), 0);
    nt_send_t x;
    nt_send_init(&x, "pair", 4);
    CU_ASSERT_EQUAL(ops->send(a.s, &x.req), 0);
    CU_ASSERT_EQUAL(ops->shutdown_write(a.s), 0);
    CU_ASSERT(nt_run_until(loop, &b.eofs, 1));
    CU_ASSERT_EQUAL(b.len, 4);
    CU_ASSERT_EQUAL(x.status, 0);
    nt_close(&a, 0);
    nt_close(&b, 0);
    nt_peer_free(&b);
    tl_test_loop_free(loop);
}

/* ICMP port unreachable on a connected UDP socket: reported, and the
 * socket keeps working. */
static void test_udp_refused_keeps_socket_usable(void) {
    KSETUP();
    nt_peer_t p, q;
    nt_peer_init(&p, ops);
    nt_peer_init(&q, ops);
    tl_sockaddr_t any = nt_loopback(0), qa;
    CU_ASSERT_EQUAL_FATAL(ops->open_dgram(st, &any, NULL, NULL, &nt_handler, &q, &q.s), 0);
    CU_ASSERT_EQUAL(ops->getaddr(q.s, 0, &qa), 0);
    nt_close(&q, 0); /* now nobody listens on qa */
    CU_ASSERT_EQUAL_FATAL(ops->open_dgram(st, NULL, &qa, NULL, &nt_handler, &p, &p.s), 0);
    CU_ASSERT_EQUAL(ops->read_start(p.s), 0);
    tl_iovec_t v = {"anyone?", 7};
    CU_ASSERT_EQUAL(ops->try_send(p.s, &v, 1, NULL), 7);
    CU_ASSERT(nt_run_until(loop, &p.errs, 1));
    CU_ASSERT_EQUAL(p.last_err, TL_ECONNREFUSED);
    /* Still usable: a new receiver on the same port gets the next one. */
    nt_peer_init(&q, ops);
    CU_ASSERT_EQUAL_FATAL(ops->open_dgram(st, &qa, NULL, NULL, &nt_handler, &q, &q.s), 0);
    CU_ASSERT_EQUAL(ops->read_start(q.s), 0);
    int64_t r;
    do
        r = ops->try_send(p.s, &v, 1, NULL);
    while (r == TL_ECONNREFUSED); /* a second ICMP error may be pending */
    CU_ASSERT_EQUAL(r, 7);
    CU_ASSERT(nt_run_until(loop, &q.recvs, 1));
    nt_close(&p, 0);
    nt_close(&q, 0);
    nt_peer_free(&p);
    nt_peer_free(&q);
    tl_test_loop_free(loop);
}

/* ---- pipes ------------------------------------------------------------- */

static void test_adopt_pipe_read_and_write(void) {
    KSETUP();
    int p[2];
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    nt_peer_t r, w;
    nt_peer_init(&r, ops);
    nt_peer_init(&w, ops);
    CU_ASSERT_EQUAL(ops->adopt(st, p[0], 99, &nt_handler, &r, &r.s), TL_EINVAL);
    CU_ASSERT_EQUAL(ops->adopt(st, p[0], TL_NS_STREAM, &nt_handler, &r, &r.s), TL_ENOTSOCK);
    CU_ASSERT_EQUAL_FATAL(ops->adopt(st, p[0], TL_NS_PIPE_READ, &nt_handler, &r, &r.s), 0);
    CU_ASSERT_EQUAL_FATAL(ops->adopt(st, p[1], TL_NS_PIPE_WRITE, &nt_handler, &w, &w.s), 0);
    CU_ASSERT(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    CU_ASSERT(fcntl(p[1], F_GETFD) & FD_CLOEXEC);
    CU_ASSERT_EQUAL(ops->read_start(r.s), 0);
    CU_ASSERT_EQUAL(ops->shutdown_write(w.s), TL_ENOTSUP);
    tl_iovec_t v = {"pipe", 4};
    CU_ASSERT_EQUAL(ops->try_send(w.s, &v, 1, NULL), 4);
    nt_send_t x;
    nt_send_init(&x, "line", 4);
    CU_ASSERT_EQUAL(ops->send(w.s, &x.req), 0);
    CU_ASSERT(nt_run_until(loop, (int *)&r.len, 8));
    CU_ASSERT_EQUAL(memcmp(r.data, "pipeline", 8), 0);
    CU_ASSERT(nt_run_until(loop, &x.done, 1));
    nt_close(&w, 0);
    CU_ASSERT(nt_run_until(loop, &r.eofs, 1));
    nt_close(&r, 0);
    nt_peer_free(&r);
    tl_test_loop_free(loop);
}

/* The reader going away: the write end hears it (TL_EPIPE), queued sends
 * fail, and no SIGPIPE kills the process (its disposition is the
 * default, which would). */
static void test_write_pipe_detects_reader_close_without_sigpipe(void) {
    KSETUP();
    struct sigaction old, dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, &old);
    int p[2];
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    nt_peer_t w;
    nt_peer_init(&w, ops);
    CU_ASSERT_EQUAL_FATAL(ops->adopt(st, p[1], TL_NS_PIPE_WRITE, &nt_handler, &w, &w.s), 0);
    close(p[0]);
    tl_iovec_t v = {"x", 1};
    CU_ASSERT_EQUAL(ops->try_send(w.s, &v, 1, NULL), TL_EPIPE); /* alive */
    CU_ASSERT(nt_run_until(loop, &w.errs, 1));
    CU_ASSERT_EQUAL(w.last_err, TL_EPIPE);
    nt_send_t x;
    nt_send_init(&x, "y", 1);
    CU_ASSERT_EQUAL(ops->send(w.s, &x.req), TL_EPIPE);
    sigset_t pending;
    sigpending(&pending);
    CU_ASSERT_FALSE(sigismember(&pending, SIGPIPE));
    nt_close(&w, 0);
    sigaction(SIGPIPE, &old, NULL);
    tl_test_loop_free(loop);
}

static void test_sendfile_sends_a_file_behind_earlier_sends(void) {
    KSETUP();
    nt_peer_t lp, cp, sp;
    nt_pair(loop, &lp, &cp, &sp);
    char path[] = "/tmp/tl-ns-sendfile-XXXXXX";
    int f = mkstemp(path);
    CU_ASSERT_FATAL(f >= 0);
    unlink(path);
    enum { N = 3 * 1024 * 1024 + 17 };
    unsigned char *data = malloc(N);
    for (size_t i = 0; i < N; i++)
        data[i] = nt_pat(i);
    CU_ASSERT_EQUAL_FATAL(write(f, data, N), N);
    CU_ASSERT_EQUAL(ops->read_start(sp.s), 0);
    nt_send_t head, file, tail;
    nt_send_init(&head, "<<", 2);
    nt_send_init(&file, NULL, 0);
    nt_send_init(&tail, ">>", 2);
    size_t sent = 99;
    CU_ASSERT_EQUAL(ops->send(cp.s, &head.req), 0);
    CU_ASSERT_EQUAL(ops->sendfile(cp.s, f, 5, N - 5, &file.req, &sent), 0);
    CU_ASSERT_EQUAL(ops->send(cp.s, &tail.req), 0);
    CU_ASSERT(nt_run_until(loop, &tail.done, 1));
    CU_ASSERT_EQUAL(file.status, 0);
    CU_ASSERT_EQUAL(sent, N - 5);
    CU_ASSERT(head.order < file.order && file.order < tail.order);
    CU_ASSERT(nt_run_until(loop, (int *)&sp.len, N - 5 + 4));
    CU_ASSERT_EQUAL_FATAL(sp.len, N - 5 + 4);
    CU_ASSERT_EQUAL(memcmp(sp.data, "<<", 2), 0);
    CU_ASSERT_EQUAL(memcmp(sp.data + 2, data + 5, N - 5), 0);
    CU_ASSERT_EQUAL(memcmp(sp.data + 2 + N - 5, ">>", 2), 0);
    /* A file shorter than count: done, with *sent saying how far. */
    nt_send_t more;
    nt_send_init(&more, NULL, 0);
    CU_ASSERT_EQUAL(ops->sendfile(cp.s, f, N - 10, 100, &more.req, &sent), 0);
    CU_ASSERT(nt_run_until(loop, &more.done, 1));
    CU_ASSERT_EQUAL(more.status, 0);
    CU_ASSERT_EQUAL(sent, 10);
    close(f);
    free(data);
    nt_close(&cp, 0);
    nt_close(&sp, 0);
    nt_close(&lp, 0);
    nt_peer_free(&sp);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(netstack_kernel_fd,
              TL_TEST(test_unix_stream_by_path),
              TL_TEST(test_unix_stream_abstract_name),
              TL_TEST(test_unix_connect_reported_from_the_loop_before_data),
              TL_TEST(test_unix_dgram_round_trip),
              TL_TEST(test_dgram_send_queue_waits_for_room),
              TL_TEST(test_adopt_socketpair_as_stream),
              TL_TEST(test_udp_refused_keeps_socket_usable),
              TL_TEST(test_adopt_pipe_read_and_write),
              TL_TEST(test_write_pipe_detects_reader_close_without_sigpipe),
              TL_TEST(test_sendfile_sends_a_file_behind_earlier_sends));
