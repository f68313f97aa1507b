/*
 * Stream transports on the kernel netstack with raw kernel peers: resets
 * mid-write, a peer that never reads, many concurrent connections, IPv6,
 * sendfile of a large file.
 */
#include "transport_test.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

/* A raw listening socket on addr's family (port 0); its address in *a. */
static int raw_listener(const char *ip, tl_sockaddr_t *a) {
    *a = addr_ip(ip, 0);
    const struct sockaddr *sa = (const struct sockaddr *)&a->u;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, sa, a->len) || listen(fd, 16)) {
        close(fd);
        return -1;
    }
    socklen_t len = sizeof a->u;
    getsockname(fd, (struct sockaddr *)&a->u, &len);
    a->len = len;
    return fd;
}

static void test_peer_reset_mid_write(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_sockaddr_t a;
    int lfd = raw_listener("127.0.0.1", &a);
    CU_ASSERT_FATAL(lfd >= 0);
    rec_t c = {0};
    tl_transport_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(loop, &a, &rec_proto, &c, &t), 0);
    int peer = accept(lfd, NULL, NULL);
    CU_ASSERT_FATAL(peer >= 0);
    CU_ASSERT_TRUE(run_until(loop, &c.made));
    size_t n = 8 << 20;
    unsigned char *b = calloc(1, n);
    CU_ASSERT_EQUAL(tl_transport_write(t, b, n), 0);
    CU_ASSERT_TRUE(tl_transport_get_write_buffer_size(t) > 0);
    CU_ASSERT_EQUAL(tl_transport_ref(t), 0); /* to look at it after lost */
    struct linger l = {1, 0};
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(peer); /* RST, data unread */
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_TRUE(c.lost_error == TL_ECONNRESET || c.lost_error == TL_EPIPE);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(t), 0);
    CU_ASSERT_EQUAL(tl_transport_unref(t), 0);
    CU_ASSERT_EQUAL(c.lost, 1);
    free(b);
    close(lfd);
    tl_test_loop_free(loop);
    rec_free(&c);
}

/* A writer that respects flow control: writes while not paused. */
typedef struct flood {
    tl_transport_t *t;
    int paused;
    size_t written, max_buffered;
} flood_t;

static void flood_pause(tl_transport_t *t, void *ctx) {
    (void)t;
    ((flood_t *)ctx)->paused = 1;
}
static void flood_resume(tl_transport_t *t, void *ctx) {
    (void)t;
    ((flood_t *)ctx)->paused = 0;
}
static void flood_made(tl_transport_t *t, void *ctx) {
    ((flood_t *)ctx)->t = t;
}

static void test_peer_never_reads_memory_stays_bounded(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_sockaddr_t a;
    int lfd = raw_listener("127.0.0.1", &a);
    CU_ASSERT_FATAL(lfd >= 0);
    static const tl_protocol_t fp = {.size = sizeof(tl_protocol_t),
                                     .connection_made = flood_made,
                                     .pause_writing = flood_pause,
                                     .resume_writing = flood_resume};
    flood_t fl = {0};
    tl_transport_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(loop, &a, &fp, (rec_t *)(void *)&fl, &t), 0);
    int peer = accept(lfd, NULL, NULL);
    CU_ASSERT_FATAL(peer >= 0);
    static unsigned char chunk[16384];
    long live0 = tl_test_live_allocs();
    for (int i = 0; i < 300; i++) {
        while (!fl.paused) {
            CU_ASSERT_EQUAL_FATAL(tl_transport_write(t, chunk, sizeof chunk),
                                  0);
            fl.written += sizeof chunk;
        }
        size_t buf = tl_transport_get_write_buffer_size(t);
        if (buf > fl.max_buffered)
            fl.max_buffered = buf;
        tl_loop_run_once(loop, 0);
    }
    /* The kernel took its socket buffers' worth; we hold about high. */
    CU_ASSERT_TRUE(fl.paused);
    CU_ASSERT_TRUE(fl.max_buffered <= 65536 + sizeof chunk);
    CU_ASSERT_TRUE(tl_test_live_allocs() - live0 < 16);
    CU_ASSERT_TRUE(fl.written < (64u << 20));
    close(peer);
    close(lfd);
    tl_test_loop_free(loop);
}

/* ---- many connections ----------------------------------------------------- */

static void test_concurrent_connections_echo(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    int n = 1000;
    if ((rlim_t)(2 * n + 64) > rl.rlim_cur)
        n = (int)((rl.rlim_cur - 64) / 2); /* sized to the limit */
    CU_ASSERT_FATAL(n >= 100);
    tl_loop_t *loop = tl_test_loop();
    rec_t *srec = calloc((size_t)n, sizeof *srec);
    rec_t *crec = calloc((size_t)n, sizeof *crec);
    dial_t *d = calloc((size_t)n, sizeof *d);
    for (int i = 0; i < n; i++)
        srec[i].echo = 1;
    factory_t f = {.recs = srec, .n = n};
    tl_sockaddr_t a = addr_ip("127.0.0.1", 0), bound;
    tl_server_options_t o = {.size = sizeof o, .backlog = 1024};
    tl_server_t *s;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_server_addrs(loop, factory_fn, &f, &a, 1, &o, &s), 0);
    CU_ASSERT_EQUAL(tl_server_sockets(s, &bound, 1), 1);
    const tl_netstack_ops_t *ops;
    void *state;
    CU_ASSERT_EQUAL_FATAL(tl_loop_get_netstack(loop, &ops, &state), 0);
    for (int i = 0; i < n; i++) {
        d[i] = (dial_t){.loop = loop, .ops = ops, .proto = &rec_proto,
                        .rec = &crec[i]};
        CU_ASSERT_EQUAL_FATAL(
            ops->connect(state, &bound, NULL, &dial_handler, &d[i], &d[i].sock),
            0);
    }
    int all = 0, sent = 0;
    uint64_t end = tl_now_ns() + 20000000000ull;
    while (!all && tl_now_ns() < end) {
        tl_loop_run_once(loop, 10000000);
        all = 1;
        for (int i = 0; i < n; i++) {
            if (crec[i].made && !crec[i].nevents)
                continue;
            if (crec[i].made == 1 && crec[i].len == 0 && d[i].t &&
                !d[i].t->eof_written && sent < n &&
                tl_transport_get_write_buffer_size(d[i].t) == 0 &&
                !crec[i].close_on_eof) {
                char msg[32];
                int k = snprintf(msg, sizeof msg, "message %05d", i);
                CU_ASSERT_EQUAL(tl_transport_write(d[i].t, msg, (size_t)k), 0);
                crec[i].close_on_eof = 1; /* marks "sent" */
                sent++;
            }
            if (crec[i].len < 13)
                all = 0;
        }
    }
    CU_ASSERT_TRUE(all);
    int errors = 0;
    for (int i = 0; i < n; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "message %05d", i);
        if (crec[i].len != 13 || memcmp(crec[i].data, msg, 13) != 0)
            errors++;
        if (d[i].t)
            tl_transport_close(d[i].t);
    }
    CU_ASSERT_EQUAL(errors, 0);
    tl_future_t *w;
    CU_ASSERT_EQUAL(tl_server_wait_closed(s, &w), 0);
    tl_server_close(s);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, w, NULL), 0);
    tl_future_unref(w);
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(srec[i].lost, 1);
        rec_free(&srec[i]);
        rec_free(&crec[i]);
    }
    tl_server_free(s);
    tl_test_loop_free(loop);
    free(srec);
    free(crec);
    free(d);
}

static void test_ipv6_and_ipv4_echo(void) {
    const char *ips[2] = {"127.0.0.1", "::1"};
    for (int i = 0; i < 2; i++) {
        tl_loop_t *loop = tl_test_loop();
        rec_t srec = {.echo = 1}, c = {0};
        factory_t f = {.recs = &srec, .n = 1};
        tl_sockaddr_t a = addr_ip(ips[i], 0), bound;
        tl_server_t *s;
        int rc = tl_create_server_addrs(loop, factory_fn, &f, &a, 1, NULL, &s);
        if (i == 1 && rc == TL_EADDRNOTAVAIL) { /* host without IPv6 */
            tl_test_loop_free(loop);
            continue;
        }
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        CU_ASSERT_EQUAL(tl_server_sockets(s, &bound, 1), 1);
        tl_transport_t *t = NULL;
        CU_ASSERT_EQUAL_FATAL(dial(loop, &bound, &rec_proto, &c, &t), 0);
        tl_sockaddr_t peer;
        CU_ASSERT_EQUAL(tl_transport_get_peername(t, &peer), 0);
        CU_ASSERT_EQUAL(((struct sockaddr *)&peer.u)->sa_family,
                        i ? AF_INET6 : AF_INET);
        CU_ASSERT_EQUAL(tl_transport_write(t, "v4v6", 4), 0);
        CU_ASSERT_TRUE(run_until_len(loop, &c, 4));
        tl_fd_t fd;
        CU_ASSERT_EQUAL(tl_transport_get_fileno(t, &fd), 0);
        int nd = 0;
        socklen_t sl = sizeof nd;
        getsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &nd, &sl);
        CU_ASSERT_EQUAL(nd != 0, 1); /* on by default */
        tl_server_free(s);
        tl_test_loop_free(loop);
        rec_free(&srec);
        rec_free(&c);
    }
}

static uint32_t checksum(const unsigned char *p, size_t n) {
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + p[i]) % 65521;
        b = (b + a) % 65521;
    }
    return (b << 16) | a;
}

static void test_sendfile_four_mib(void) {
    tl_loop_t *loop = tl_test_loop();
    rec_t srec = {0}, c = {0};
    pair_t p;
    pair_open(loop, &p, &srec, &c, NULL, NULL);
    char path[] = "/tmp/tulip-h3-sf-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    unlink(path);
    size_t n = 4 << 20;
    unsigned char *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((i * 2654435761u) >> 13);
    CU_ASSERT_EQUAL(write(fd, b, n), (ssize_t)n);
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_transport_sendfile(p.ct, fd, 0, 0, &f), 0);
    void *res;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &res), 0);
    CU_ASSERT_EQUAL((uintptr_t)res, n);
    tl_future_unref(f);
    CU_ASSERT_TRUE(run_until_len(loop, &srec, n));
    CU_ASSERT_EQUAL(srec.len, n);
    CU_ASSERT_EQUAL(checksum(srec.data, srec.len), checksum(b, n));
    close(fd);
    free(b);
    tl_server_free(p.server);
    tl_test_loop_free(loop);
    rec_free(&srec);
    rec_free(&c);
}

/* ---- the one-buffer write path ------------------------------------------ */

/* Byte k of the test stream. */
static unsigned char pattern(size_t k) { return (unsigned char)(k % 251); }

/* Small writes, without the loop running, until the kernel's socket
 * buffer is full (tl_transport_write's direct send then gets a would-block
 * or a short write and queues the rest) and on behind the queue; the peer
 * then reads every byte, in order. */
static void test_small_writes_past_a_full_socket_keep_order(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_sockaddr_t a;
    int lfd = raw_listener("127.0.0.1", &a);
    CU_ASSERT_FATAL(lfd >= 0);
    rec_t c = {0};
    tl_transport_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(loop, &a, &rec_proto, &c, &t), 0);
    int peer = accept(lfd, NULL, NULL);
    CU_ASSERT_FATAL(peer >= 0);
    CU_ASSERT_TRUE(run_until(loop, &c.made));
    small_kernel_buffers(t);
    unsigned char chunk[100];
    size_t total = 0;
    int behind = 0;
    while (behind < 50 && total < (64u << 20)) {
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = pattern(total + i);
        CU_ASSERT_EQUAL_FATAL(tl_transport_write(t, chunk, sizeof chunk), 0);
        total += sizeof chunk;
        if (tl_transport_get_write_buffer_size(t) > 0)
            behind++;
    }
    CU_ASSERT_EQUAL(behind, 50);
    fcntl(peer, F_SETFL, fcntl(peer, F_GETFL) | O_NONBLOCK);
    static unsigned char in[65536];
    size_t got = 0, bad = 0;
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (got < total && tl_now_ns() < end) {
        ssize_t n = read(peer, in, sizeof in);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++)
                bad += in[i] != pattern(got + (size_t)i);
            got += (size_t)n;
        } else {
            tl_loop_run_once(loop, 1000000);
        }
    }
    CU_ASSERT_EQUAL(got, total);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(t), 0);
    /* The queue drained: the next write goes straight out again. */
    CU_ASSERT_EQUAL(tl_transport_write(t, "z", 1), 0);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(t), 0);
    CU_ASSERT_EQUAL(tl_transport_close(t), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_EQUAL(c.lost_error, 0);
    close(peer);
    close(lfd);
    tl_test_loop_free(loop);
    rec_free(&c);
}

/* The socket's buffer is full (filled behind the transport's back) while
 * the transport holds nothing: the direct send would block, so the whole
 * write is queued and goes once the peer reads. */
static void test_write_to_a_full_socket_is_queued_whole(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_sockaddr_t a;
    int lfd = raw_listener("127.0.0.1", &a);
    CU_ASSERT_FATAL(lfd >= 0);
    rec_t c = {0};
    tl_transport_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(loop, &a, &rec_proto, &c, &t), 0);
    int peer = accept(lfd, NULL, NULL);
    CU_ASSERT_FATAL(peer >= 0);
    CU_ASSERT_TRUE(run_until(loop, &c.made));
    small_kernel_buffers(t);
    tl_fd_t fd;
    CU_ASSERT_EQUAL_FATAL(tl_transport_get_fileno(t, &fd), 0);
    static unsigned char fill[4096];
    memset(fill, 'f', sizeof fill);
    size_t filled = 0;
    for (;;) { /* the descriptor is non-blocking: until EAGAIN */
        ssize_t n = send(fd, fill, sizeof fill, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        filled += (size_t)n;
    }
    CU_ASSERT_TRUE(filled > 0);
    CU_ASSERT_EQUAL(tl_transport_write(t, "0123456789", 10), 0);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(t), 10);
    CU_ASSERT_EQUAL(tl_transport_write(t, "abc", 3), 0); /* behind it */
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(t), 13);
    fcntl(peer, F_SETFL, fcntl(peer, F_GETFL) | O_NONBLOCK);
    static unsigned char in[65536];
    unsigned char tail[13];
    size_t got = 0, want = filled + 13;
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (got < want && tl_now_ns() < end) {
        ssize_t n = read(peer, in, sizeof in);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++)
                if (got + (size_t)i >= filled)
                    tail[got + (size_t)i - filled] = in[i];
            got += (size_t)n;
        } else {
            tl_loop_run_once(loop, 1000000);
        }
    }
    CU_ASSERT_EQUAL(got, want);
    CU_ASSERT_EQUAL(memcmp(tail, "0123456789abc", 13), 0);
    run_some(loop, 2);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(t), 0);
    CU_ASSERT_EQUAL(tl_transport_close(t), 0);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    close(peer);
    close(lfd);
    tl_test_loop_free(loop);
    rec_free(&c);
}

/* A write with nothing queued to a peer that reset the connection fails
 * inside the direct send: the transport is lost with the error, and later
 * writes are refused. */
static void test_write_to_a_reset_peer_ends_the_transport(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_sockaddr_t a;
    int lfd = raw_listener("127.0.0.1", &a);
    CU_ASSERT_FATAL(lfd >= 0);
    rec_t c = {0};
    tl_transport_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(loop, &a, &rec_proto, &c, &t), 0);
    int peer = accept(lfd, NULL, NULL);
    CU_ASSERT_FATAL(peer >= 0);
    CU_ASSERT_TRUE(run_until(loop, &c.made));
    CU_ASSERT_EQUAL(tl_transport_pause_reading(t), 0); /* hear it by writing */
    struct linger l = {1, 0};
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(peer); /* RST */
    usleep(2000); /* the RST crosses loopback */
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0 && !tl_transport_is_closing(t); i++)
        rc = tl_transport_write(t, "x", 1);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(tl_transport_is_closing(t), 1);
    CU_ASSERT_EQUAL(tl_transport_write(t, "x", 1), TL_ECLOSED);
    CU_ASSERT_TRUE(run_until(loop, &c.lost));
    CU_ASSERT_TRUE(c.lost_error == TL_ECONNRESET || c.lost_error == TL_EPIPE);
    CU_ASSERT_EQUAL(c.lost, 1);
    close(lfd);
    tl_test_loop_free(loop);
    rec_free(&c);
}

TL_TEST_SUITE(transport_kernel,
              TL_TEST(test_peer_reset_mid_write),
              TL_TEST(test_peer_never_reads_memory_stays_bounded),
              TL_TEST(test_concurrent_connections_echo),
              TL_TEST(test_ipv6_and_ipv4_echo),
              TL_TEST(test_sendfile_four_mib),
              TL_TEST(test_small_writes_past_a_full_socket_keep_order),
              TL_TEST(test_write_to_a_full_socket_is_queued_whole),
              TL_TEST(test_write_to_a_reset_peer_ends_the_transport));
