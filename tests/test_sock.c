/* sock: the low-level socket operations for tasks (tulip/sock.h), on real
 * kernel sockets (socketpairs and loopback). Kernel only by nature. */
#define _GNU_SOURCE
#include <poll.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tl_test.h"
#include "loop/loop_int.h"
#include "tulip/sock.h"

/* ---- helpers -------------------------------------------------------------- */

static void stream_pair(int sv[2]) {
    CU_ASSERT_EQUAL_FATAL(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void close_pair(int sv[2]) {
    close(sv[0]);
    close(sv[1]);
}

static tl_sockaddr_t name_of(int fd) {
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    socklen_t sl = sizeof a.u.bytes;
    CU_ASSERT_EQUAL(getsockname(fd, (struct sockaddr *)&a.u, &sl), 0);
    a.len = sl;
    return a;
}

static int loopback_socket(int type) {
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    return fd;
}

static int listener(void) {
    int fd = loopback_socket(SOCK_STREAM);
    CU_ASSERT_EQUAL_FATAL(listen(fd, 16), 0);
    return fd;
}

static int tcp_socket(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    return fd;
}

static size_t watched(tl_loop_t *loop) { return loop->nwatched; }

static uintptr_t result_of(tl_future_t *f) {
    void *v = (void *)(uintptr_t)0xdead;
    CU_ASSERT_EQUAL(tl_future_result(f, &v), 0);
    return (uintptr_t)v;
}

/* Fill the socket's send side until the kernel refuses more. */
static void fill(int fd) {
    static char junk[65536];
    while (send(fd, junk, sizeof junk, MSG_NOSIGNAL) > 0)
        ;
    CU_ASSERT(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void dummy(void *ctx) { (void)ctx; }

/* ---- recv ---------------------------------------------------------------- */

static void test_recv_of_data_already_there_is_done_without_a_watcher(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    CU_ASSERT_EQUAL(write(sv[1], "hello", 5), 5);
    char buf[16];
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    CU_ASSERT_EQUAL(watched(loop), 0);
    CU_ASSERT_EQUAL(result_of(f), 5);
    CU_ASSERT_EQUAL(memcmp(buf, "hello", 5), 0);
    tl_future_unref(f);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_recv_waits_until_data_arrives(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    char buf[16];
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_EQUAL(watched(loop), 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_EQUAL(write(sv[1], "abc", 3), 3);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), 0);
    CU_ASSERT_EQUAL((uintptr_t)v, 3);
    CU_ASSERT_EQUAL(memcmp(buf, "abc", 3), 0);
    CU_ASSERT_EQUAL(watched(loop), 0);
    tl_future_unref(f);
    close_pair(sv);
    tl_test_loop_free(loop);
}

typedef struct io_arg {
    int fd;
    char buf[64];
    size_t got;
    int rc;
} io_arg_t;

static int recv_task(void *arg, void **result) {
    io_arg_t *a = arg;
    (void)result;
    a->rc = tl_sock_recv(a->fd, a->buf, sizeof a->buf, &a->got);
    return a->rc;
}

static void test_recv_in_a_task_suspends_and_returns_the_bytes(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    io_arg_t a = {.fd = sv[0], .got = 99};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, recv_task, &a, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_done(tl_task_future(t)), 0);
    CU_ASSERT_EQUAL(watched(loop), 1);
    CU_ASSERT_EQUAL(write(sv[1], "ping", 4), 4);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), 0);
    CU_ASSERT_EQUAL(a.got, 4);
    CU_ASSERT_EQUAL(memcmp(a.buf, "ping", 4), 0);
    CU_ASSERT_EQUAL(watched(loop), 0);
    tl_task_unref(t);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_recv_at_end_of_file_gives_zero(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    char buf[8];
    tl_future_t *f;
    /* Waiting, then the peer shuts down. */
    CU_ASSERT_EQUAL_FATAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_EQUAL(shutdown(sv[1], SHUT_WR), 0);
    void *v = (void *)1;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), 0);
    CU_ASSERT_PTR_NULL(v);
    tl_future_unref(f);
    /* Already at EOF: done at once. */
    CU_ASSERT_EQUAL_FATAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    CU_ASSERT_EQUAL(result_of(f), 0);
    tl_future_unref(f);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_recv_of_zero_bytes_is_done_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_recv_future(loop, sv[0], NULL, 0, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    CU_ASSERT_EQUAL(result_of(f), 0);
    CU_ASSERT_EQUAL(watched(loop), 0);
    tl_future_unref(f);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_recv_reports_a_reset_connection(void) {
    tl_loop_t *loop = tl_test_loop();
    int l = listener(), c = tcp_socket();
    tl_sockaddr_t la = name_of(l);
    (void)connect(c, (struct sockaddr *)&la.u, la.len);
    int s;
    while ((s = accept4(l, NULL, NULL, SOCK_NONBLOCK)) < 0)
        CU_ASSERT_FATAL(errno == EAGAIN);
    struct linger lg = {1, 0};
    CU_ASSERT_EQUAL(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    char buf[8];
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_recv_future(loop, c, buf, sizeof buf, &f), 0);
    close(s); /* RST */
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), TL_ECONNRESET);
    tl_future_unref(f);
    close(c);
    close(l);
    tl_test_loop_free(loop);
}

/* ---- sendall ------------------------------------------------------------- */

#define BIG (8u << 20)

typedef struct big {
    int rfd, wfd;
    unsigned char *out, *in;
    size_t got;
    int send_rc, recv_rc;
} big_t;

static int big_sender(void *arg, void **result) {
    big_t *b = arg;
    (void)result;
    b->send_rc = tl_sock_sendall(b->wfd, b->out, BIG);
    return b->send_rc;
}

/* Reads little at a time and lets the loop go round in between. */
static int slow_reader(void *arg, void **result) {
    big_t *b = arg;
    (void)result;
    for (int i = 0; b->got < BIG; i++) {
        size_t n = 0;
        size_t want = BIG - b->got < 16384 ? BIG - b->got : 16384;
        int rc = tl_sock_recv(b->rfd, b->in + b->got, want, &n);
        if (rc)
            return b->recv_rc = rc;
        if (n == 0)
            return b->recv_rc = TL_EOF;
        b->got += n;
        if (i % 8 == 0 && (rc = tl_yield()))
            return b->recv_rc = rc;
    }
    return 0;
}

static int big_main(void *arg, void **result) {
    tl_loop_t *loop = tl_loop_get_running();
    tl_task_t *ts[2];
    (void)result;
    if (tl_task_spawn(loop, big_sender, arg, NULL, &ts[0]))
        return TL_EUNKNOWN;
    if (tl_task_spawn(loop, slow_reader, arg, NULL, &ts[1])) {
        tl_task_unref(ts[0]);
        return TL_EUNKNOWN;
    }
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        int r = tl_await(tl_task_future(ts[i]), NULL);
        if (r && !rc)
            rc = r;
        tl_task_unref(ts[i]);
    }
    return rc;
}

static void test_sendall_of_8_mib_to_a_slow_reader_arrives_intact(void) {
    int sv[2];
    stream_pair(sv);
    int small = 16384;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    big_t b = {.rfd = sv[0], .wfd = sv[1]};
    b.out = malloc(BIG);
    b.in = malloc(BIG);
    CU_ASSERT_FATAL(b.out && b.in);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < BIG; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        b.out[i] = (unsigned char)x;
    }
    CU_ASSERT_EQUAL(tl_run(big_main, &b, NULL, NULL), 0);
    CU_ASSERT_EQUAL(b.send_rc, 0);
    CU_ASSERT_EQUAL(b.recv_rc, 0);
    CU_ASSERT_EQUAL(b.got, BIG);
    CU_ASSERT_EQUAL(memcmp(b.out, b.in, BIG), 0);
    free(b.out);
    free(b.in);
    close_pair(sv);
}

static void test_sendall_future_completes_with_null_and_empty_is_done_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_sendall_future(loop, sv[1], "xyz", 3, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    CU_ASSERT_EQUAL(result_of(f), 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL_FATAL(tl_sock_sendall_future(loop, sv[1], NULL, 0, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    tl_future_unref(f);
    char buf[8];
    CU_ASSERT_EQUAL(read(sv[0], buf, sizeof buf), 3);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_sendall_to_a_closed_peer_fails_with_epipe(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    close(sv[0]);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_sendall_future(loop, sv[1], "xyz", 3, &f), 0);
    CU_ASSERT_EQUAL(tl_future_error(f), TL_EPIPE);
    tl_future_unref(f);
    close(sv[1]);
    tl_test_loop_free(loop);
}

/* ---- accept and connect -------------------------------------------------- */

typedef struct conn {
    int lfd, cfd, sfd;
    tl_sockaddr_t peer, target;
    int accept_rc, connect_rc;
    char echo[8];
} conn_t;

static int acceptor(void *arg, void **result) {
    conn_t *c = arg;
    (void)result;
    tl_fd_t s = -1;
    c->accept_rc = tl_sock_accept(c->lfd, &s, &c->peer);
    if (c->accept_rc)
        return c->accept_rc;
    c->sfd = s;
    size_t n = 0;
    int rc = tl_sock_recv(s, c->echo, sizeof c->echo, &n);
    if (rc == 0)
        rc = tl_sock_sendall(s, c->echo, n);
    return rc;
}

static int connector(void *arg, void **result) {
    conn_t *c = arg;
    (void)result;
    c->connect_rc = tl_sock_connect(c->cfd, &c->target);
    if (c->connect_rc)
        return c->connect_rc;
    int rc = tl_sock_sendall(c->cfd, "hi!", 3);
    char buf[8];
    size_t n = 0;
    if (rc == 0)
        rc = tl_sock_recv(c->cfd, buf, sizeof buf, &n);
    if (rc == 0 && (n != 3 || memcmp(buf, "hi!", 3)))
        rc = TL_EIO;
    return rc;
}

static void test_accept_and_connect_make_a_working_connection(void) {
    tl_loop_t *loop = tl_test_loop();
    conn_t c = {.lfd = listener(), .cfd = tcp_socket(), .sfd = -1};
    c.target = name_of(c.lfd);
    tl_task_t *a, *b;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, acceptor, &c, NULL, &a), 0);
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, connector, &c, NULL, &b), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(a), NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(b), NULL), 0);
    CU_ASSERT_EQUAL(c.accept_rc, 0);
    CU_ASSERT_EQUAL(c.connect_rc, 0);
    CU_ASSERT_FATAL(c.sfd >= 0);
    /* The accepted descriptor is non-blocking and close-on-exec. */
    CU_ASSERT(fcntl(c.sfd, F_GETFL) & O_NONBLOCK);
    CU_ASSERT(fcntl(c.sfd, F_GETFD) & FD_CLOEXEC);
    /* The peer address is the connecting socket's. */
    tl_sockaddr_t mine = name_of(c.cfd);
    CU_ASSERT_EQUAL(c.peer.len, mine.len);
    CU_ASSERT_EQUAL(memcmp(&c.peer.u, &mine.u, mine.len), 0);
    CU_ASSERT_EQUAL(watched(loop), 0);
    tl_task_unref(a);
    tl_task_unref(b);
    close(c.sfd);
    close(c.cfd);
    close(c.lfd);
    tl_test_loop_free(loop);
}

static void test_accept_future_of_a_waiting_connection_is_done_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    int l = listener(), c = tcp_socket();
    tl_sockaddr_t la = name_of(l);
    (void)connect(c, (struct sockaddr *)&la.u, la.len);
    /* Wait (outside the loop) until the connection is in the backlog. */
    struct pollfd pfd = {.fd = l, .events = POLLIN};
    CU_ASSERT_EQUAL_FATAL(poll(&pfd, 1, 5000), 1);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_accept_future(loop, l, NULL, &f), 0);
    /* Accepted by the first try: done already, nothing watched. */
    CU_ASSERT(tl_future_done(f));
    CU_ASSERT_EQUAL(watched(loop), 0);
    void *v;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), 0);
    int s = (int)(intptr_t)v;
    CU_ASSERT(s >= 0);
    close(s);
    tl_future_unref(f);
    close(c);
    close(l);
    tl_test_loop_free(loop);
}

static void test_connect_to_a_closed_port_is_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    int gone = loopback_socket(SOCK_STREAM); /* bound, never listening */
    tl_sockaddr_t to = name_of(gone);
    int c = tcp_socket();
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_connect_future(loop, c, &to, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), TL_ECONNREFUSED);
    CU_ASSERT_EQUAL(watched(loop), 0);
    tl_future_unref(f);
    close(c);
    close(gone);
    tl_test_loop_free(loop);
}

static void test_connect_rejects_a_bad_address(void) {
    tl_loop_t *loop = tl_test_loop();
    int c = tcp_socket();
    tl_future_t *f = NULL;
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    CU_ASSERT_EQUAL(tl_sock_connect_future(loop, c, NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sock_connect_future(loop, c, &a, &f), TL_EINVAL);
    a.len = sizeof a.u.bytes + 1;
    CU_ASSERT_EQUAL(tl_sock_connect_future(loop, c, &a, &f), TL_EINVAL);
    CU_ASSERT_PTR_NULL(f);
    close(c);
    tl_test_loop_free(loop);
}

/* ---- datagrams ----------------------------------------------------------- */

typedef struct udp {
    int a, b;
    tl_sockaddr_t to, from;
    char buf[32];
    size_t got, sent;
} udp_t;

static int udp_main(void *arg, void **result) {
    udp_t *u = arg;
    (void)result;
    tl_future_t *rf;
    /* The receive waits first, then the datagram comes. */
    int rc = tl_sock_recvfrom_future(tl_loop_get_running(), u->b, u->buf,
                                     sizeof u->buf, &u->from, &rf);
    if (rc)
        return rc;
    if (tl_future_done(rf)) {
        tl_future_unref(rf);
        return TL_EUNKNOWN;
    }
    rc = tl_sock_sendto(u->a, "datagram", 8, &u->to, &u->sent);
    void *v = NULL;
    if (rc == 0)
        rc = tl_await(rf, &v);
    u->got = (uintptr_t)v;
    tl_future_unref(rf);
    if (rc)
        return rc;
    /* And back, through the sequential form. */
    rc = tl_sock_sendto(u->b, "back", 4, &u->from, NULL);
    if (rc == 0)
        rc = tl_sock_recvfrom(u->a, u->buf, sizeof u->buf, &u->got, NULL);
    return rc;
}

static void test_recvfrom_and_sendto_make_a_udp_round_trip(void) {
    udp_t u = {.a = loopback_socket(SOCK_DGRAM), .b = loopback_socket(SOCK_DGRAM)};
    u.to = name_of(u.b);
    tl_sockaddr_t a_name = name_of(u.a);
    CU_ASSERT_EQUAL(tl_run(udp_main, &u, NULL, NULL), 0);
    CU_ASSERT_EQUAL(u.sent, 8);
    CU_ASSERT_EQUAL(u.from.len, a_name.len);
    CU_ASSERT_EQUAL(memcmp(&u.from.u, &a_name.u, a_name.len), 0);
    CU_ASSERT_EQUAL(u.got, 4);
    CU_ASSERT_EQUAL(memcmp(u.buf, "back", 4), 0);
    close(u.a);
    close(u.b);
}

static void test_recvfrom_truncates_a_long_datagram(void) {
    tl_loop_t *loop = tl_test_loop();
    int a = loopback_socket(SOCK_DGRAM), b = loopback_socket(SOCK_DGRAM);
    tl_sockaddr_t to = name_of(b);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_sendto_future(loop, a, "0123456789", 10, &to, &f), 0);
    CU_ASSERT_EQUAL(result_of(f), 10);
    tl_future_unref(f);
    char buf[4];
    CU_ASSERT_EQUAL_FATAL(tl_sock_recvfrom_future(loop, b, buf, sizeof buf, NULL, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    CU_ASSERT_EQUAL(result_of(f), 4);
    CU_ASSERT_EQUAL(memcmp(buf, "0123", 4), 0);
    tl_future_unref(f);
    close(a);
    close(b);
    tl_test_loop_free(loop);
}

/* ---- cancellation ---------------------------------------------------------- */

static void test_cancelling_a_recv_removes_its_watcher_and_keeps_the_fd(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    char buf[8];
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), 0);
    CU_ASSERT_EQUAL(watched(loop), 1);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(watched(loop), 0);
    CU_ASSERT_EQUAL(tl_future_cancelled(f), 1);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 0);
    /* Data arriving later is left for the next reader. */
    CU_ASSERT_EQUAL(write(sv[1], "zz", 2), 2);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), 0);
    CU_ASSERT_EQUAL(result_of(f), 2);
    tl_future_unref(f);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_cancelling_a_sendall_removes_its_watcher(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    fill(sv[1]);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_sendall_future(loop, sv[1], "more", 4, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_EQUAL(watched(loop), 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(watched(loop), 0);
    tl_future_unref(f);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_cancelling_an_accept_removes_its_watcher(void) {
    tl_loop_t *loop = tl_test_loop();
    int l = listener();
    tl_sockaddr_t peer;
    memset(&peer, 0xab, sizeof peer);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_accept_future(loop, l, &peer, &f), 0);
    CU_ASSERT_EQUAL(watched(loop), 1);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(watched(loop), 0);
    CU_ASSERT_EQUAL(peer.len, 0xabababab); /* never written */
    tl_future_unref(f);
    close(l);
    tl_test_loop_free(loop);
}

static void test_cancelling_a_connect_in_progress_removes_its_watcher(void) {
    tl_loop_t *loop = tl_test_loop();
    int l = listener(), c = tcp_socket();
    tl_sockaddr_t to = name_of(l);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_connect_future(loop, c, &to, &f), 0);
    if (tl_future_done(f) == 0) { /* TCP on loopback: EINPROGRESS */
        CU_ASSERT_EQUAL(watched(loop), 1);
        CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    }
    CU_ASSERT_EQUAL(watched(loop), 0);
    tl_future_unref(f);
    close(c);
    close(l);
    tl_test_loop_free(loop);
}

static void test_cancelling_a_recvfrom_or_sendto_removes_its_watcher(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
    char buf[8];
    tl_future_t *r, *s;
    CU_ASSERT_EQUAL_FATAL(tl_sock_recvfrom_future(loop, sv[0], buf, sizeof buf, NULL, &r), 0);
    CU_ASSERT_EQUAL(tl_future_done(r), 0);
    /* The peer's queue full: the datagram has to wait. */
    while (send(sv[1], "x", 1, 0) == 1)
        ;
    CU_ASSERT_EQUAL_FATAL(tl_sock_sendto_future(loop, sv[1], "y", 1, NULL, &s), 0);
    CU_ASSERT_EQUAL(tl_future_done(s), 0);
    CU_ASSERT_EQUAL(watched(loop), 2);
    CU_ASSERT_EQUAL(tl_future_cancel(s, NULL), 1);
    CU_ASSERT_EQUAL(watched(loop), 1);
    CU_ASSERT_EQUAL(tl_future_cancel(r, NULL), 1);
    CU_ASSERT_EQUAL(watched(loop), 0);
    tl_future_unref(r);
    tl_future_unref(s);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_cancelling_a_task_in_recv_removes_the_watcher(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    io_arg_t a = {.fd = sv[0]};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, recv_task, &a, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(watched(loop), 1);
    CU_ASSERT_EQUAL(tl_task_cancel(t, NULL), 1);
    CU_ASSERT_EQUAL(watched(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL),
                    TL_ECANCELLED);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    tl_task_unref(t);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_dropping_a_pending_op_removes_its_watcher(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    char buf[8];
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), 0);
    CU_ASSERT_EQUAL(watched(loop), 1);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(watched(loop), 0);
    CU_ASSERT_EQUAL(write(sv[1], "q", 1), 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* nothing runs on freed memory */
    close_pair(sv);
    tl_test_loop_free(loop);
}

/* A cancellation that lands after the recv completed but before the task
 * resumed: the bytes are returned, and the next suspension is cancelled. */
typedef struct late {
    int fd;
    tl_task_t *t;
    int armed, cancelled;
    char buf[8];
    size_t got;
    int rc, next_rc;
} late_t;

static int late_task(void *arg, void **result) {
    late_t *l = arg;
    (void)result;
    l->rc = tl_sock_recv(l->fd, l->buf, sizeof l->buf, &l->got);
    l->next_rc = tl_yield();
    return 0;
}

static void cancel_when_armed(void *arg) {
    late_t *l = arg;
    if (!l->armed)
        return;
    l->cancelled = tl_task_cancel(l->t, NULL);
    tl_loop_remove_writer(tl_future_get_loop(tl_task_future(l->t)), l->fd);
}

static void test_a_cancel_after_the_recv_completed_keeps_the_bytes(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    late_t l = {.fd = sv[0]};
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, late_task, &l, NULL, &l.t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    /* The writer of the same descriptor runs right after the reader. */
    CU_ASSERT_EQUAL(tl_loop_add_writer(loop, sv[0], cancel_when_armed, &l), 0);
    CU_ASSERT_EQUAL(write(sv[1], "late", 4), 4);
    l.armed = 1;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(l.t), NULL), 0);
    CU_ASSERT_EQUAL(l.cancelled, 1);
    CU_ASSERT_EQUAL(l.rc, 0);
    CU_ASSERT_EQUAL(l.got, 4);
    CU_ASSERT_EQUAL(l.next_rc, TL_ECANCELLED);
    tl_task_unref(l.t);
    close_pair(sv);
    tl_test_loop_free(loop);
}

/* ---- refusals ---------------------------------------------------------------- */

static void test_a_second_recv_while_one_waits_is_busy(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    char buf[8];
    tl_future_t *f, *g = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), 0);
    CU_ASSERT_EQUAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &g), TL_EBUSY);
    CU_ASSERT_EQUAL(tl_sock_recvfrom_future(loop, sv[0], buf, sizeof buf, NULL, &g),
                    TL_EBUSY);
    CU_ASSERT_EQUAL(tl_sock_accept_future(loop, sv[0], NULL, &g), TL_EBUSY);
    CU_ASSERT_PTR_NULL(g);
    /* The write side is another slot. */
    CU_ASSERT_EQUAL(tl_sock_sendall_future(loop, sv[0], "w", 1, &g), 0);
    CU_ASSERT_EQUAL(tl_future_done(g), 1);
    tl_future_unref(g);
    /* Even data already there is not taken from under the waiting one. */
    CU_ASSERT_EQUAL(write(sv[1], "d", 1), 1);
    g = NULL;
    CU_ASSERT_EQUAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &g), TL_EBUSY);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    tl_future_unref(f);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_a_second_sendall_while_one_waits_is_busy(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    fill(sv[1]);
    tl_future_t *f, *g = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_sock_sendall_future(loop, sv[1], "a", 1, &f), 0);
    CU_ASSERT_EQUAL(tl_sock_sendall_future(loop, sv[1], "b", 1, &g), TL_EBUSY);
    CU_ASSERT_EQUAL(tl_sock_sendto_future(loop, sv[1], "b", 1, NULL, &g), TL_EBUSY);
    CU_ASSERT_PTR_NULL(g);
    tl_future_unref(f);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_a_descriptor_someone_else_watches_is_busy(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    char buf[8];
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_loop_add_reader(loop, sv[0], dummy, NULL), 0);
    CU_ASSERT_EQUAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), TL_EBUSY);
    CU_ASSERT_PTR_NULL(f);
    tl_loop_remove_reader(loop, sv[0]);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_a_bad_descriptor_is_ebadf(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    close_pair(sv); /* sv[0] is now a closed number */
    char buf[8];
    tl_future_t *f = NULL;
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    a.len = sizeof(struct sockaddr_in);
    ((struct sockaddr_in *)&a.u)->sin_family = AF_INET;
    CU_ASSERT_EQUAL(tl_sock_recv_future(loop, -1, buf, sizeof buf, &f), TL_EBADF);
    CU_ASSERT_EQUAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), TL_EBADF);
    CU_ASSERT_EQUAL(tl_sock_sendall_future(loop, sv[0], "x", 1, &f), TL_EBADF);
    CU_ASSERT_EQUAL(tl_sock_accept_future(loop, sv[0], NULL, &f), TL_EBADF);
    CU_ASSERT_EQUAL(tl_sock_connect_future(loop, sv[0], &a, &f), TL_EBADF);
    CU_ASSERT_EQUAL(tl_sock_recvfrom_future(loop, sv[0], buf, 8, NULL, &f), TL_EBADF);
    CU_ASSERT_EQUAL(tl_sock_sendto_future(loop, sv[0], "x", 1, NULL, &f), TL_EBADF);
    CU_ASSERT_PTR_NULL(f);
    tl_test_loop_free(loop);
}

static void test_a_blocking_descriptor_is_einval(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    char buf[8];
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sock_sendall_future(loop, sv[0], "x", 1, &f), TL_EINVAL);
    CU_ASSERT_PTR_NULL(f);
    CU_ASSERT_EQUAL(watched(loop), 0);
    close_pair(sv);
    tl_test_loop_free(loop);
}

static void test_bad_arguments_are_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    tl_future_t *f = NULL;
    char buf[4];
    CU_ASSERT_EQUAL(tl_sock_recv_future(NULL, sv[0], buf, 4, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sock_recv_future(loop, sv[0], buf, 4, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sock_recv_future(loop, sv[0], NULL, 4, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sock_sendall_future(loop, sv[0], NULL, 4, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sock_sendto_future(loop, sv[0], NULL, 4, NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sock_recvfrom_future(loop, sv[0], NULL, 4, NULL, &f), TL_EINVAL);
    CU_ASSERT_PTR_NULL(f);
    /* The sequential forms need a task. */
    size_t n;
    tl_fd_t c;
    CU_ASSERT_EQUAL(tl_sock_recv(sv[0], buf, 4, &n), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_sock_sendall(sv[0], "x", 1), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_sock_accept(sv[0], &c, NULL), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_sock_recvfrom(sv[0], buf, 4, &n, NULL), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_sock_sendto(sv[0], "x", 1, NULL, &n), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_sock_accept(sv[0], NULL, NULL), TL_EINVAL);
    /* A closed loop. */
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_sock_recv_future(loop, sv[0], buf, 4, &f), TL_ECLOSED);
    tl_loop_unref(loop);
    close_pair(sv);
}

/* ---- closing the loop, memory ------------------------------------------------ */

static void test_closing_the_loop_with_pending_ops_leaks_nothing(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2], full[2], l = listener();
    stream_pair(sv);
    stream_pair(full);
    fill(full[1]);
    char buf[8];
    tl_future_t *r, *s, *a;
    io_arg_t arg = {.fd = sv[1]};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &r), 0);
    CU_ASSERT_EQUAL_FATAL(tl_sock_sendall_future(loop, full[1], "x", 1, &s), 0);
    CU_ASSERT_EQUAL_FATAL(tl_sock_accept_future(loop, l, NULL, &a), 0);
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, recv_task, &arg, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(watched(loop), 4);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(arg.rc, TL_ECANCELLED); /* the task was wound down */
    CU_ASSERT_EQUAL(tl_future_done(r), 0);
    tl_future_unref(r);
    tl_future_unref(s);
    tl_future_unref(a);
    tl_task_unref(t);
    tl_loop_unref(loop);
    close_pair(sv);
    close_pair(full);
    close(l);
}

/* One round of a waiting recv in a task, with allocation n failing;
 * returns how many allocations were made while armed. */
static long recv_round(long n) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    io_arg_t a = {.fd = sv[0], .rc = 1};
    long armed_at = tl_test_alloc_count();
    tl_test_fail_alloc_at(n);
    tl_task_t *t = NULL;
    if (tl_task_spawn(loop, recv_task, &a, NULL, &t) == 0) {
        tl_loop_run_once(loop, 0);
        CU_ASSERT_EQUAL(write(sv[1], "oom", 3), 3);
        int rc = tl_loop_run_until_complete(loop, tl_task_future(t), NULL);
        CU_ASSERT(rc == 0 || rc == TL_ENOMEM);
        if (rc == 0)
            CU_ASSERT(a.got == 3 && memcmp(a.buf, "oom", 3) == 0);
        tl_task_unref(t);
    }
    long used = tl_test_alloc_count() - armed_at;
    tl_test_fail_alloc_at(0);
    CU_ASSERT_EQUAL(watched(loop), 0);
    tl_test_loop_free(loop);
    close_pair(sv);
    return used;
}

static void test_a_recv_in_a_task_survives_every_allocation_failure(void) {
    long n = 1;
    while (recv_round(n) >= n) /* until the failure falls past the end */
        n++;
    CU_ASSERT(n > 3);
}

/* Run the acceptor and connector tasks to their end: when one fails (out
 * of memory), the other is cancelled rather than left waiting. */
static void finish_both(tl_loop_t *loop, tl_task_t *a, tl_task_t *b) {
    tl_task_t *ts[2] = {a, b};
    for (int i = 0; i < 1000; i++) {
        int done = 0;
        for (int k = 0; k < 2; k++)
            if (tl_future_done(tl_task_future(ts[k]))) {
                done++;
                if (tl_future_error(tl_task_future(ts[k])) != 0)
                    tl_task_cancel(ts[1 - k], NULL);
            }
        if (done == 2)
            return;
        tl_loop_run_once(loop, 10 * 1000000);
    }
    CU_FAIL("the tasks did not finish");
}

/* One round of accept + connect + echo in tasks, allocation n failing;
 * returns how many allocations were made while armed. */
static long conn_round(long n) {
    tl_loop_t *loop = tl_test_loop();
    conn_t c = {.lfd = listener(), .cfd = tcp_socket(), .sfd = -1};
    c.target = name_of(c.lfd);
    long armed_at = tl_test_alloc_count();
    tl_test_fail_alloc_at(n);
    tl_task_t *a = NULL, *b = NULL;
    if (tl_task_spawn(loop, acceptor, &c, NULL, &a) == 0 &&
        tl_task_spawn(loop, connector, &c, NULL, &b) == 0) {
        finish_both(loop, a, b);
        int ra = tl_future_error(tl_task_future(a));
        int rb = tl_future_error(tl_task_future(b));
        CU_ASSERT(ra == 0 || ra == TL_ENOMEM || ra == TL_ECANCELLED);
        CU_ASSERT(rb == 0 || rb == TL_ENOMEM || rb == TL_ECANCELLED);
    }
    long used = tl_test_alloc_count() - armed_at;
    tl_test_fail_alloc_at(0);
    if (a)
        tl_task_unref(a);
    if (b)
        tl_task_unref(b);
    CU_ASSERT_EQUAL(watched(loop), 0);
    tl_test_loop_free(loop);
    if (c.sfd >= 0)
        close(c.sfd);
    close(c.cfd);
    close(c.lfd);
    return used;
}

static void test_accept_and_connect_in_tasks_survive_every_allocation_failure(void) {
    long n = 1;
    while (conn_round(n) >= n)
        n++;
    CU_ASSERT(n > 3);
}

/* The future forms, each allocation failing in turn. */
static void test_every_future_form_fails_cleanly_without_memory(void) {
    {
        tl_loop_t *loop = tl_test_loop();
        int sv[2], l = listener(), u = loopback_socket(SOCK_DGRAM);
        stream_pair(sv);
        tl_sockaddr_t to = name_of(u);
        char buf[8];
        tl_future_t *f = NULL;
        tl_test_fail_alloc_at(1);
        CU_ASSERT_EQUAL(tl_sock_recv_future(loop, sv[0], buf, 8, &f), TL_ENOMEM);
        tl_test_fail_alloc_at(1);
        CU_ASSERT_EQUAL(tl_sock_sendall_future(loop, sv[0], "x", 1, &f), TL_ENOMEM);
        tl_test_fail_alloc_at(1);
        CU_ASSERT_EQUAL(tl_sock_accept_future(loop, l, NULL, &f), TL_ENOMEM);
        tl_test_fail_alloc_at(1);
        CU_ASSERT_EQUAL(tl_sock_connect_future(loop, sv[0], &to, &f), TL_ENOMEM);
        tl_test_fail_alloc_at(1);
        CU_ASSERT_EQUAL(tl_sock_recvfrom_future(loop, u, buf, 8, NULL, &f), TL_ENOMEM);
        tl_test_fail_alloc_at(1);
        CU_ASSERT_EQUAL(tl_sock_sendto_future(loop, u, "x", 1, &to, &f), TL_ENOMEM);
        tl_test_fail_alloc_at(0);
        CU_ASSERT_PTR_NULL(f);
        /* Nothing was consumed: the socket still has what was sent. */
        CU_ASSERT_EQUAL(write(sv[1], "k", 1), 1);
        CU_ASSERT_EQUAL(recv(sv[0], buf, 8, 0), 1);
        tl_test_loop_free(loop);
        close_pair(sv);
        close(l);
        close(u);
    }
}

/* The watcher's registration (the loop's table growing) fails: a recv is
 * refused, nothing consumed. */
static void test_a_watcher_that_cannot_be_registered_refuses_the_recv(void) {
    tl_loop_t *loop = tl_test_loop();
    int sv[2];
    stream_pair(sv);
    char buf[8];
    tl_future_t *f = NULL;
    int rc = TL_ENOMEM;
    /* Allocation 1 is the op; 2 is the loop's descriptor table. */
    tl_test_fail_alloc_at(2);
    rc = tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f);
    tl_test_fail_alloc_at(0);
    CU_ASSERT_EQUAL(rc, TL_ENOMEM);
    CU_ASSERT_PTR_NULL(f);
    CU_ASSERT_EQUAL(watched(loop), 0);
    tl_test_loop_free(loop);
    close_pair(sv);
}

/* Completing the op (scheduling its done callbacks) runs out of memory
 * after the bytes were read: they are kept and delivered later. */
static int count_calls;
static void count_cb(tl_future_t *f, void *ctx) {
    (void)f;
    (void)ctx;
    count_calls++;
}

static void test_a_completion_without_memory_is_retried_and_loses_nothing(void) {
    int deferred_seen = 0;
    for (long n = 1; n <= 4; n++) {
        tl_loop_t *loop = tl_test_loop();
        int sv[2];
        stream_pair(sv);
        char buf[8];
        tl_future_t *f;
        CU_ASSERT_EQUAL_FATAL(tl_sock_recv_future(loop, sv[0], buf, sizeof buf, &f), 0);
        count_calls = 0;
        CU_ASSERT_EQUAL(tl_future_add_done_callback(f, count_cb, NULL), 0);
        CU_ASSERT_EQUAL(write(sv[1], "kept", 4), 4);
        /* Use up the loop's free handle slots, so that scheduling the done
         * callbacks has to grow the table. */
        do {
            CU_ASSERT_EQUAL_FATAL(tl_loop_call_later(loop, INT64_C(1) << 50, dummy,
                                                     NULL, NULL), 0);
        } while (loop->free_slot || loop->nslots < loop->slots_cap);
        tl_test_fail_alloc_at(n);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        /* Completed in the I/O phase, the callbacks run in this very
         * iteration; a deferred completion makes them one later. */
        if (count_calls == 0)
            deferred_seen = 1;
        tl_test_fail_alloc_at(0);
        /* The peer sends nothing more: the retry does not need readiness. */
        void *v = NULL;
        CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), 0);
        CU_ASSERT_EQUAL((uintptr_t)v, 4);
        CU_ASSERT_EQUAL(memcmp(buf, "kept", 4), 0);
        tl_loop_run_once(loop, 0);
        CU_ASSERT_EQUAL(count_calls, 1);
        CU_ASSERT_EQUAL(watched(loop), 0);
        tl_future_unref(f);
        tl_test_loop_free(loop);
        close_pair(sv);
    }
    CU_ASSERT(deferred_seen);
}

TL_TEST_SUITE(sock,
              TL_TEST(test_recv_of_data_already_there_is_done_without_a_watcher),
              TL_TEST(test_recv_waits_until_data_arrives),
              TL_TEST(test_recv_in_a_task_suspends_and_returns_the_bytes),
              TL_TEST(test_recv_at_end_of_file_gives_zero),
              TL_TEST(test_recv_of_zero_bytes_is_done_at_once),
              TL_TEST(test_recv_reports_a_reset_connection),
              TL_TEST(test_sendall_of_8_mib_to_a_slow_reader_arrives_intact),
              TL_TEST(test_sendall_future_completes_with_null_and_empty_is_done_at_once),
              TL_TEST(test_sendall_to_a_closed_peer_fails_with_epipe),
              TL_TEST(test_accept_and_connect_make_a_working_connection),
              TL_TEST(test_accept_future_of_a_waiting_connection_is_done_at_once),
              TL_TEST(test_connect_to_a_closed_port_is_refused),
              TL_TEST(test_connect_rejects_a_bad_address),
              TL_TEST(test_recvfrom_and_sendto_make_a_udp_round_trip),
              TL_TEST(test_recvfrom_truncates_a_long_datagram),
              TL_TEST(test_cancelling_a_recv_removes_its_watcher_and_keeps_the_fd),
              TL_TEST(test_cancelling_a_sendall_removes_its_watcher),
              TL_TEST(test_cancelling_an_accept_removes_its_watcher),
              TL_TEST(test_cancelling_a_connect_in_progress_removes_its_watcher),
              TL_TEST(test_cancelling_a_recvfrom_or_sendto_removes_its_watcher),
              TL_TEST(test_cancelling_a_task_in_recv_removes_the_watcher),
              TL_TEST(test_dropping_a_pending_op_removes_its_watcher),
              TL_TEST(test_a_cancel_after_the_recv_completed_keeps_the_bytes),
              TL_TEST(test_a_second_recv_while_one_waits_is_busy),
              TL_TEST(test_a_second_sendall_while_one_waits_is_busy),
              TL_TEST(test_a_descriptor_someone_else_watches_is_busy),
              TL_TEST(test_a_bad_descriptor_is_ebadf),
              TL_TEST(test_a_blocking_descriptor_is_einval),
              TL_TEST(test_bad_arguments_are_refused),
              TL_TEST(test_closing_the_loop_with_pending_ops_leaks_nothing),
              TL_TEST(test_a_recv_in_a_task_survives_every_allocation_failure),
              TL_TEST(test_accept_and_connect_in_tasks_survive_every_allocation_failure),
              TL_TEST(test_every_future_form_fails_cleanly_without_memory),
              TL_TEST(test_a_watcher_that_cannot_be_registered_refuses_the_recv),
              TL_TEST(test_a_completion_without_memory_is_retried_and_loses_nothing))
