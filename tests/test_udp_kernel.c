/*
 * udp_kernel: datagram endpoints on the kernel netstack: ICMP errors,
 * broadcast permission, IPv6, reuse_port, descriptors, Unix datagrams and
 * a flood against a receiver that does not read.
 */
#include "udp_test.h"

static tl_loop_t *kernel_loop(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL_FATAL(tl_loop_set_netstack(loop, tl_netstack_kernel(), NULL),
                          0);
    return loop;
}

/* A port on 127.0.0.1 where nobody listens (bound, then closed). */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&in, sizeof in), 0);
    socklen_t len = sizeof in;
    CU_ASSERT_EQUAL(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    close(fd);
    return ntohs(in.sin_port);
}

static void test_icmp_port_unreachable_reports_error_received(void) {
    tl_loop_t *loop = kernel_loop();
    int port = closed_port();
    tl_sockaddr_t dst = ip4("127.0.0.1", port);
    rec_t a = {0};
    tl_transport_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &a,
                                                      NULL, &dst, NULL, &t),
                          0);
    CU_ASSERT_TRUE(run_until(loop, &a.made, 1));
    CU_ASSERT_EQUAL(tl_transport_sendto(t, "anyone?", 7, NULL), 0);
    CU_ASSERT_TRUE(run_until(loop, &a.errors, 1));
    CU_ASSERT_EQUAL(a.last_error, TL_ECONNREFUSED);
    CU_ASSERT_EQUAL(tl_transport_is_closing(t), 0);
    CU_ASSERT_EQUAL(a.lost, 0);

    /* Still usable: once someone listens there, datagrams arrive. */
    rec_t s = {0};
    s.echo = 1;
    tl_transport_t *ts = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &s,
                                                      &dst, NULL, NULL, &ts),
                          0);
    CU_ASSERT_EQUAL(tl_transport_sendto(t, "now?", 4, NULL), 0);
    CU_ASSERT_TRUE(run_until(loop, &a.dgrams, 1));
    CU_ASSERT_EQUAL(memcmp(a.last, "now?", 4), 0);
    close_and_wait(loop, t, &a);
    close_and_wait(loop, ts, &s);
    CU_ASSERT_STRING_EQUAL(a.log, "MEDL");
    tl_test_loop_free(loop);
}

static void test_broadcast_needs_allow_broadcast(void) {
    tl_loop_t *loop = kernel_loop();
    tl_sockaddr_t lo = ip4("127.0.0.1", 0);
    tl_sockaddr_t bc = ip4("255.255.255.255", 9);
    tl_sockaddr_t lbc = ip4("127.255.255.255", 9);
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = NULL, *tb = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &a,
                                                      &lo, NULL, NULL, &ta),
                          0);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "b", 1, &bc), TL_EACCES);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "b", 1, &lbc), TL_EACCES);
    tl_datagram_options_t o = {sizeof o, 0, TL_OPT_ON};
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &b,
                                                      &lo, NULL, &o, &tb),
                          0);
    /* Permitted (a host without a route for it says ENETUNREACH). */
    int rc = tl_transport_sendto(tb, "b", 1, &bc);
    CU_ASSERT_TRUE(rc == 0 || rc == TL_ENETUNREACH);
    CU_ASSERT_EQUAL(tl_transport_sendto(tb, "b", 1, &lbc), 0);
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_ipv6_loopback_round_trip(void) {
    tl_loop_t *loop = kernel_loop();
    tl_sockaddr_t lo = ip6("::1", 0);
    rec_t a = {0}, b = {0};
    b.echo = 1;
    tl_transport_t *ta = NULL, *tb = NULL;
    int rc = tl_create_datagram_endpoint(loop, &rec_proto, &a, &lo, NULL,
                                         NULL, &ta);
    if (rc == TL_EADDRNOTAVAIL || rc == TL_EAFNOSUPPORT) {
        fprintf(stderr, "(no IPv6 loopback: skipped) ");
        tl_test_loop_free(loop);
        return;
    }
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &b,
                                                      &lo, NULL, NULL, &tb),
                          0);
    tl_sockaddr_t aa = sockname(ta), ba = sockname(tb);
    CU_ASSERT_EQUAL(family_of(&aa), AF_INET6);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "six", 3, &ba), 0);
    CU_ASSERT_TRUE(run_until(loop, &a.dgrams, 1));
    CU_ASSERT_TRUE(same_addr(&a.last_from, &ba));
    CU_ASSERT_TRUE(same_addr(&b.last_from, &aa));
    /* IPv6 allows 65527 bytes, one more is too many. */
    static unsigned char big[65528];
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, big, sizeof big, &ba),
                    TL_EMSGSIZE);
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

/* The kernel stack cannot get a receive buffer: the endpoint hears
 * TL_ENOMEM through error_received, stays open, and the datagram (still
 * queued in the kernel) arrives on the next turn. */
static void test_receive_buffer_shortage_keeps_the_endpoint(void) {
    tl_loop_t *loop = kernel_loop();
    tl_sockaddr_t lo = ip4("127.0.0.1", 0);
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = NULL, *tb = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &a, &lo,
                                                      NULL, NULL, &ta), 0);
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &b, &lo,
                                                      NULL, NULL, &tb), 0);
    CU_ASSERT_TRUE(run_until(loop, &b.made, 1));
    CU_ASSERT_TRUE(run_until(loop, &a.made, 1));
    tl_sockaddr_t ba = sockname(tb);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "one", 3, &ba), 0);
    /* b has never read, so its stack has no pooled buffer yet: the first
     * allocation of the next turn is that buffer. */
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1000 * 1000000LL), 0);
    tl_test_fail_alloc_at(0);
    CU_ASSERT_EQUAL(b.errors, 1);
    CU_ASSERT_EQUAL(b.last_error, TL_ENOMEM);
    CU_ASSERT_EQUAL(b.dgrams, 0);
    CU_ASSERT_TRUE(run_until(loop, &b.dgrams, 1));
    CU_ASSERT_EQUAL(b.last_len, 3);
    CU_ASSERT_EQUAL(memcmp(b.last, "one", 3), 0);
    CU_ASSERT_EQUAL(b.lost, 0);
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_largest_ipv4_datagram_goes_through(void) {
    tl_loop_t *loop = kernel_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t ba = sockname(tb);
    static unsigned char big[65507];
    memset(big, 0xab, sizeof big);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, big, sizeof big, &ba), 0);
    CU_ASSERT_TRUE(run_until(loop, &b.dgrams, 1));
    CU_ASSERT_EQUAL(b.bytes, sizeof big);
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_reuse_port_shares_a_port(void) {
    tl_loop_t *loop = kernel_loop();
    tl_datagram_options_t o = {sizeof o, TL_OPT_ON, 0};
    tl_sockaddr_t lo = ip4("127.0.0.1", 0);
    rec_t a = {0}, b = {0}, c = {0};
    tl_transport_t *ta = NULL, *tb = NULL, *tc = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &a,
                                                      &lo, NULL, &o, &ta),
                          0);
    tl_sockaddr_t aa = sockname(ta);
    CU_ASSERT_EQUAL(tl_create_datagram_endpoint(loop, &rec_proto, &c, &aa,
                                                NULL, NULL, &tc),
                    TL_EADDRINUSE);
    CU_ASSERT_PTR_NULL(tc);
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &b,
                                                      &aa, NULL, &o, &tb),
                          0);
    tl_sockaddr_t ba = sockname(tb);
    CU_ASSERT_EQUAL(port_of(&aa), port_of(&ba));
    tl_fd_t fd = -1;
    CU_ASSERT_EQUAL(tl_transport_get_fileno(ta, &fd), 0);
    CU_ASSERT_TRUE(fd >= 0);
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    CU_ASSERT_EQUAL(c.made + c.lost, 0);
    tl_test_loop_free(loop);
}

/* An abstract Unix datagram address (Linux): no file to clean up. */
static tl_sockaddr_t unix_abstract(const char *name) {
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    size_t n = strlen(name);
    memcpy(un.sun_path + 1, name, n);
    memcpy(a.u.bytes, &un, sizeof un);
    a.len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    return a;
}

static void test_unix_datagram_endpoints(void) {
    tl_loop_t *loop = kernel_loop();
    char n1[64], n2[64];
    snprintf(n1, sizeof n1, "tulip-udp-test-%d-a", (int)getpid());
    snprintf(n2, sizeof n2, "tulip-udp-test-%d-b", (int)getpid());
    tl_sockaddr_t a1 = unix_abstract(n1), a2 = unix_abstract(n2);
    rec_t a = {0}, b = {0};
    b.echo = 1;
    tl_transport_t *ta = NULL, *tb = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &b,
                                                      &a2, NULL, NULL, &tb),
                          0);
    /* Bound and connected to b. */
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &a,
                                                      &a1, &a2, NULL, &ta),
                          0);
    tl_sockaddr_t peer;
    CU_ASSERT_EQUAL(tl_transport_get_peername(ta, &peer), 0);
    CU_ASSERT_EQUAL(peer.len, a2.len);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "unix", 4, NULL), 0);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "unix", 4, &a2), 0);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "unix", 4, &a1), TL_EINVAL);
    CU_ASSERT_TRUE(run_until(loop, &a.dgrams, 2));
    /* No UDP size limit here: 70000 bytes is one datagram for the kernel
     * (or its own TL_EMSGSIZE where the socket buffer is smaller), more
     * than the stack's receive buffer (64 KiB): the receiver hears
     * error_received(TL_EMSGSIZE) instead of a cut datagram. */
    static unsigned char big[70000];
    int rc = tl_transport_sendto(ta, big, sizeof big, NULL);
    CU_ASSERT(rc == 0 || rc == TL_EMSGSIZE || rc == TL_ENOBUFS);
    if (rc == 0) {
        CU_ASSERT_TRUE(run_until(loop, &b.errors, 1));
        CU_ASSERT_EQUAL(b.last_error, TL_EMSGSIZE);
        CU_ASSERT_EQUAL(b.dgrams, 2);
    }
    CU_ASSERT_EQUAL(b.last_from.len, a1.len);
    CU_ASSERT_EQUAL(memcmp(a.last, "unix", 4), 0);
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

/* The flood: a sender that obeys pause_writing pushes 10000 datagrams at a
 * receiver that does not read (then reads slowly). The kernel drops what
 * does not fit; the sender's buffer never goes past the high-water mark by
 * more than one datagram. */
typedef struct flood {
    rec_t r;
    tl_transport_t *t;
    tl_sockaddr_t to;
    int left;
    size_t max_buffered;
    int send_errors;
} flood_t;

static void flood_pump(flood_t *f) {
    static unsigned char d[1000];
    while (f->left > 0 && !f->r.paused) {
        int rc = tl_transport_sendto(f->t, d, sizeof d, &f->to);
        if (rc != 0)
            f->send_errors++;
        f->left--;
        size_t b = tl_transport_get_write_buffer_size(f->t);
        if (b > f->max_buffered)
            f->max_buffered = b;
    }
}

static void flood_resume(tl_transport_t *t, void *ctx) {
    on_resume(t, ctx);
    flood_pump(ctx);
}

static void test_flood_against_a_paused_receiver_is_bounded(void) {
    /* The kernel behind the fault wrapper, every try_send refused: each
     * datagram goes through the stack's send queue, so the water marks
     * are what holds the sender back. */
    tl_test_fault_t fc;
    memset(&fc, 0, sizeof fc);
    fc.size = sizeof fc;
    fc.eagain_try_sends = 1L << 40;
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL_FATAL(
        tl_loop_set_netstack(loop, tl_test_netstack_fault(), &fc), 0);
    rec_t rx = {0};
    rx.pause_on_made = 1;
    tl_transport_t *trx = endpoint(loop, &rx);
    flood_t f;
    memset(&f, 0, sizeof f);
    tl_protocol_t p = rec_proto;
    p.resume_writing = flood_resume;
    tl_sockaddr_t lo = ip4("127.0.0.1", 0);
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &p, &f, &lo, NULL,
                                                      NULL, &f.t),
                          0);
    f.to = sockname(trx);
    f.left = 10000;
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(f.t, 16384, 4096), 0);
    CU_ASSERT_TRUE(run_until(loop, &f.r.made, 1));
    flood_pump(&f);
    CU_ASSERT_EQUAL(f.r.pauses, 1);
    for (int i = 0; i < 20000 && f.left > 0; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1000000), 0);
    CU_ASSERT_EQUAL(f.left, 0);
    CU_ASSERT_EQUAL(f.send_errors, 0);
    CU_ASSERT_TRUE(f.r.pauses > 100);
    CU_ASSERT_TRUE(f.max_buffered > 16384);
    CU_ASSERT_TRUE(f.max_buffered <= 16384 + 1008);
    CU_ASSERT_EQUAL(f.r.errors, 0);
    CU_ASSERT_TRUE(fc.sends >= 10000);
    /* The receiver wakes up and reads what the kernel kept. */
    CU_ASSERT_EQUAL(tl_transport_resume_reading(trx), 0);
    CU_ASSERT_TRUE(run_until(loop, &rx.dgrams, 1));
    spin(loop, 5);
    CU_ASSERT_TRUE(rx.dgrams <= 10000);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(f.t), 0);
    close_and_wait(loop, f.t, &f.r);
    close_and_wait(loop, trx, &rx);
    CU_ASSERT_EQUAL(f.r.pauses, f.r.resumes);
    tl_test_loop_free(loop);
}


TL_TEST_SUITE(udp_kernel,
              TL_TEST(test_icmp_port_unreachable_reports_error_received),
              TL_TEST(test_broadcast_needs_allow_broadcast),
              TL_TEST(test_ipv6_loopback_round_trip),
              TL_TEST(test_largest_ipv4_datagram_goes_through),
              TL_TEST(test_receive_buffer_shortage_keeps_the_endpoint),
              TL_TEST(test_reuse_port_shares_a_port),
              TL_TEST(test_unix_datagram_endpoints),
              TL_TEST(test_flood_against_a_paused_receiver_is_bounded))
