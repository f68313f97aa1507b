/*
 * udp: datagram endpoints (asyncio's create_datagram_endpoint and
 * DatagramTransport) on whichever netstack TL_NETSTACK names
 * (tl_test_net_loop). The kernel-only cases are in test_udp_kernel.c.
 *
 * Queueing is made deterministic by the "plug": a wrapper around the
 * loop's netstack whose try_send says TL_EAGAIN and whose send holds the
 * requests while plugged, until the test unplugs it (passing them on, or
 * failing them with an error).
 */
#include "udp_test.h"

/* ---- the plug: a netstack wrapper that holds sends -------------------- */

enum { PLUG_MAX = 4096 };

static struct {
    const tl_netstack_ops_t *base;
    tl_netstack_ops_t ops;
    int plugged;
    size_t n;
    struct {
        tl_ns_sock_t *s;
        tl_ns_send_t *req;
    } held[PLUG_MAX];
    long try_sends, sends;
} plug;

static int holds(tl_ns_sock_t *s) {
    for (size_t i = 0; i < plug.n; i++)
        if (plug.held[i].s == s)
            return 1;
    return 0;
}

static int64_t plug_try_send(tl_ns_sock_t *s, const tl_iovec_t *iov, size_t n,
                             const tl_sockaddr_t *to) {
    plug.try_sends++;
    CU_ASSERT_FALSE(holds(s)); /* the order rule */
    if (plug.plugged || plug.base->try_send == NULL)
        return TL_EAGAIN;
    return plug.base->try_send(s, iov, n, to);
}

static int plug_send(tl_ns_sock_t *s, tl_ns_send_t *req) {
    plug.sends++;
    if (plug.plugged || holds(s)) {
        CU_ASSERT_FATAL(plug.n < PLUG_MAX);
        plug.held[plug.n].s = s;
        plug.held[plug.n].req = req;
        plug.n++;
        return 0;
    }
    return plug.base->send(s, req);
}

/* The contract: close completes what is held with TL_ECANCELLED before
 * it returns. */
static void plug_close(tl_ns_sock_t *s, int abort) {
    size_t j = 0;
    for (size_t i = 0; i < plug.n; i++) {
        if (plug.held[i].s == s)
            plug.held[i].req->done(plug.held[i].req, TL_ECANCELLED);
        else
            plug.held[j++] = plug.held[i];
    }
    plug.n = j;
    plug.base->close(s, abort);
}

/* Pass the held requests on (status 0) or fail them with status, in
 * order. Call it from the test body (between loop iterations): the
 * completions then run as they would from the loop. */
static void unplug(int status) {
    plug.plugged = 0;
    size_t n = plug.n;
    plug.n = 0;
    for (size_t i = 0; i < n; i++) {
        tl_ns_send_t *req = plug.held[i].req;
        if (status != 0) {
            req->done(req, status);
            continue;
        }
        int rc = plug.base->send(plug.held[i].s, req);
        if (rc < 0)
            req->done(req, rc);
    }
}

/* A loop on TL_NETSTACK's stack behind the plug (not plugged yet). */
static tl_loop_t *plug_loop(void) {
    tl_loop_t *loop = tl_test_loop();
    void *config = NULL;
    memset(&plug, 0, sizeof plug);
    plug.base = tl_test_netstack_by_name(tl_test_netstack_name(), &config);
    CU_ASSERT_PTR_NOT_NULL_FATAL(plug.base);
    plug.ops = *plug.base;
    plug.ops.name = "plug";
    plug.ops.try_send = plug_try_send;
    plug.ops.send = plug_send;
    plug.ops.close = plug_close;
    CU_ASSERT_EQUAL_FATAL(tl_loop_set_netstack(loop, &plug.ops, config), 0);
    return loop;
}

/* ---- suite udp: any netstack ------------------------------------------ */

static void test_round_trip_between_two_endpoints(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t a = {0}, b = {0};
    a.echo = 1;
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t aa = sockname(ta), ba = sockname(tb);
    CU_ASSERT_NOT_EQUAL(port_of(&aa), 0);
    CU_ASSERT_NOT_EQUAL(port_of(&aa), port_of(&ba));

    CU_ASSERT_EQUAL(tl_transport_sendto(tb, "hello", 5, &aa), 0);
    CU_ASSERT_TRUE(run_until(loop, &b.dgrams, 1));
    CU_ASSERT_EQUAL(a.dgrams, 1);
    CU_ASSERT_EQUAL(b.last_len, 5);
    CU_ASSERT_EQUAL(memcmp(b.last, "hello", 5), 0);
    /* Each side sees the other's address as the sender. */
    CU_ASSERT_TRUE(same_addr(&a.last_from, &ba));
    CU_ASSERT_TRUE(same_addr(&b.last_from, &aa));

    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    CU_ASSERT_STRING_EQUAL(a.log, "MDL");
    CU_ASSERT_STRING_EQUAL(b.log, "MDL");
    CU_ASSERT_EQUAL(a.lost_error, 0);
    CU_ASSERT_EQUAL(a.errors + b.errors, 0);
    tl_test_loop_free(loop);
}

static void test_unconnected_sendto_reaches_several_peers(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t s = {0}, p[3];
    memset(p, 0, sizeof p);
    tl_transport_t *ts = endpoint(loop, &s);
    tl_transport_t *tp[3];
    tl_sockaddr_t sa = sockname(ts);
    for (int i = 0; i < 3; i++)
        tp[i] = endpoint(loop, &p[i]);
    for (int i = 0; i < 3; i++) {
        tl_sockaddr_t to = sockname(tp[i]);
        char msg[8];
        snprintf(msg, sizeof msg, "peer%d", i);
        CU_ASSERT_EQUAL(tl_transport_sendto(ts, msg, 5, &to), 0);
    }
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_TRUE(run_until(loop, &p[i].dgrams, 1));
        char msg[8];
        snprintf(msg, sizeof msg, "peer%d", i);
        CU_ASSERT_EQUAL(p[i].last_len, 5);
        CU_ASSERT_EQUAL(memcmp(p[i].last, msg, 5), 0);
        CU_ASSERT_TRUE(same_addr(&p[i].last_from, &sa));
    }
    spin(loop, 3);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(p[i].dgrams, 1);
        close_and_wait(loop, tp[i], &p[i]);
    }
    close_and_wait(loop, ts, &s);
    tl_test_loop_free(loop);
}

static void test_connected_endpoint_sends_to_its_peer(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t srv = {0}, cli = {0};
    srv.echo = 1;
    tl_transport_t *ts = endpoint(loop, &srv);
    tl_sockaddr_t sa = sockname(ts);
    tl_transport_t *tc = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_datagram_endpoint(loop, &rec_proto, &cli,
                                                      NULL, &sa, NULL, &tc),
                          0);
    tl_sockaddr_t peer, ca = sockname(tc);
    CU_ASSERT_EQUAL(tl_transport_get_peername(tc, &peer), 0);
    CU_ASSERT_TRUE(same_addr(&peer, &sa));
    CU_ASSERT_EQUAL(tl_transport_get_peername(ts, &peer), TL_ENOTCONN);
    CU_ASSERT_NOT_EQUAL(port_of(&ca), 0);

    /* NULL: the peer; the peer's own address is accepted too. */
    CU_ASSERT_EQUAL(tl_transport_sendto(tc, "one", 3, NULL), 0);
    CU_ASSERT_EQUAL(tl_transport_sendto(tc, "two", 3, &sa), 0);
    /* Another address is asyncio's ValueError. */
    tl_sockaddr_t other = ip4("127.0.0.1", port_of(&sa) == 9 ? 10 : 9);
    CU_ASSERT_EQUAL(tl_transport_sendto(tc, "bad", 3, &other), TL_EINVAL);
    CU_ASSERT_TRUE(run_until(loop, &cli.dgrams, 2));
    CU_ASSERT_EQUAL(srv.dgrams, 2);
    /* The sender's port (a stack may report the wildcard address as the
     * sockname of an endpoint that was not bound explicitly). */
    CU_ASSERT_EQUAL(port_of(&srv.last_from), port_of(&ca));
    CU_ASSERT_TRUE(same_addr(&cli.last_from, &sa));
    CU_ASSERT_EQUAL(memcmp(cli.last, "two", 3), 0);
    close_and_wait(loop, tc, &cli);
    close_and_wait(loop, ts, &srv);
    CU_ASSERT_EQUAL(cli.errors + srv.errors, 0);
    tl_test_loop_free(loop);
}

static void test_empty_datagram_is_delivered(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t ba = sockname(tb);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, NULL, 0, &ba), 0);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "", 0, &ba), 0);
    CU_ASSERT_TRUE(run_until(loop, &b.dgrams, 2));
    CU_ASSERT_EQUAL(b.bytes, 0);
    CU_ASSERT_EQUAL(b.last_len, 0);
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_callbacks_come_in_order(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t aa = sockname(ta);
    /* Sent before a's connection_made could run: still made comes first. */
    CU_ASSERT_EQUAL(tl_transport_sendto(tb, "x", 1, &aa), 0);
    CU_ASSERT_EQUAL(a.made, 0);
    CU_ASSERT_TRUE(run_until(loop, &a.dgrams, 1));
    /* Closed before anything ran: made, then lost, nothing between. */
    rec_t c = {0};
    tl_transport_t *tc = endpoint(loop, &c);
    CU_ASSERT_EQUAL(tl_transport_close(tc), 0);
    CU_ASSERT_EQUAL(tl_transport_is_closing(tc), 1);
    CU_ASSERT_TRUE(run_until(loop, &c.lost, 1));
    CU_ASSERT_STRING_EQUAL(c.log, "ML");
    CU_ASSERT_FALSE(c.lost_before_made);
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    CU_ASSERT_STRING_EQUAL(a.log, "MDL");
    CU_ASSERT_STRING_EQUAL(b.log, "ML");
    tl_test_loop_free(loop);
}

static void test_pause_reading_holds_datagrams_back(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t a = {0}, b = {0};
    a.pause_on_made = 1;
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t aa = sockname(ta);
    CU_ASSERT_EQUAL(tl_transport_sendto(tb, "held", 4, &aa), 0);
    CU_ASSERT_TRUE(run_until(loop, &a.made, 1));
    CU_ASSERT_EQUAL(tl_transport_is_reading(ta), 0);
    spin(loop, 5);
    CU_ASSERT_EQUAL(a.dgrams, 0);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(ta), 0); /* twice: fine */
    CU_ASSERT_EQUAL(tl_transport_resume_reading(ta), 0);
    CU_ASSERT_EQUAL(tl_transport_is_reading(ta), 1);
    CU_ASSERT_TRUE(run_until(loop, &a.dgrams, 1));
    CU_ASSERT_EQUAL(memcmp(a.last, "held", 4), 0);
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_close_inside_datagram_received_stops_delivery(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t a = {0}, b = {0};
    a.close_on_dgram = 1;
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t aa = sockname(ta);
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(tl_transport_sendto(tb, "z", 1, &aa), 0);
    CU_ASSERT_TRUE(run_until(loop, &a.lost, 1));
    CU_ASSERT_EQUAL(a.dgrams, 1);
    CU_ASSERT_STRING_EQUAL(a.log, "MDL");
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_abort_inside_datagram_received(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t a = {0}, b = {0};
    a.abort_on_dgram = 1;
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t aa = sockname(ta);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(tl_transport_sendto(tb, "z", 1, &aa), 0);
    CU_ASSERT_TRUE(run_until(loop, &a.lost, 1));
    CU_ASSERT_EQUAL(a.dgrams, 1);
    CU_ASSERT_EQUAL(a.lost_error, 0);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_sendto_after_close_fails(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t ba = sockname(tb);
    CU_ASSERT_EQUAL(tl_transport_ref(ta), 0);
    a.unref_on_lost = 1;
    CU_ASSERT_EQUAL(tl_transport_close(ta), 0);
    CU_ASSERT_EQUAL(tl_transport_close(ta), 0); /* again: 0 */
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "x", 1, &ba), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_pause_reading(ta), TL_ECLOSED);
    CU_ASSERT_TRUE(run_until(loop, &a.lost, 1));
    CU_ASSERT_EQUAL(a.lost_error, 0);
    close_and_wait(loop, tb, &b);
    spin(loop, 2);
    CU_ASSERT_EQUAL(b.dgrams, 0);
    tl_test_loop_free(loop);
}

static void test_sendto_after_lost_with_a_reference_fails(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t a = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_sockaddr_t aa = sockname(ta);
    CU_ASSERT_EQUAL(tl_transport_ref(ta), 0);
    CU_ASSERT_EQUAL(tl_transport_abort(ta), 0);
    CU_ASSERT_TRUE(run_until(loop, &a.lost, 1));
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "x", 1, &aa), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_close(ta), 0);
    CU_ASSERT_EQUAL(tl_transport_abort(ta), 0);
    tl_sockaddr_t s;
    CU_ASSERT_EQUAL(tl_transport_get_sockname(ta, &s), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_transport_unref(ta), 0);
    CU_ASSERT_EQUAL(a.lost, 1);
    tl_test_loop_free(loop);
}

static void test_write_is_not_a_datagram_method(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t a = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    CU_ASSERT_EQUAL(tl_transport_write(ta, "x", 1), TL_ENOTSUP);
    tl_iovec_t iov = {"x", 1};
    CU_ASSERT_EQUAL(tl_transport_writev(ta, &iov, 1), TL_ENOTSUP);
    CU_ASSERT_EQUAL(tl_transport_write_eof(ta), TL_ENOTSUP);
    CU_ASSERT_EQUAL(tl_transport_can_write_eof(ta), 0);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_transport_sendfile(ta, 0, 0, 1, &f), TL_ENOTSUP);
    close_and_wait(loop, ta, &a);
    tl_test_loop_free(loop);
}

static void test_bad_arguments_are_refused(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t a = {0};
    tl_sockaddr_t lo = ip4("127.0.0.1", 0);
    tl_transport_t *t = (tl_transport_t *)&a; /* must be reset to NULL */
    CU_ASSERT_EQUAL(tl_create_datagram_endpoint(NULL, &rec_proto, &a, &lo,
                                                NULL, NULL, &t),
                    TL_EINVAL);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_EQUAL(
        tl_create_datagram_endpoint(loop, NULL, &a, &lo, NULL, NULL, &t),
        TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_datagram_endpoint(loop, &rec_proto, &a, &lo,
                                                NULL, NULL, NULL),
                    TL_EINVAL);
    /* Neither a local nor a remote address. */
    CU_ASSERT_EQUAL(tl_create_datagram_endpoint(loop, &rec_proto, &a, NULL,
                                                NULL, NULL, &t),
                    TL_EINVAL);
    tl_sockaddr_t bad = lo;
    bad.len = 0;
    CU_ASSERT_EQUAL(tl_create_datagram_endpoint(loop, &rec_proto, &a, &bad,
                                                NULL, NULL, &t),
                    TL_EINVAL);
    bad.len = sizeof bad.u + 1;
    CU_ASSERT_EQUAL(tl_create_datagram_endpoint(loop, &rec_proto, &a, NULL,
                                                &bad, NULL, &t),
                    TL_EINVAL);
    tl_datagram_options_t o = {sizeof o, 7, 0};
    CU_ASSERT_EQUAL(tl_create_datagram_endpoint(loop, &rec_proto, &a, &lo,
                                                NULL, &o, &t),
                    TL_EINVAL);
    tl_protocol_t tiny = {.size = 1};
    CU_ASSERT_EQUAL(tl_create_datagram_endpoint(loop, &tiny, &a, &lo, NULL,
                                                NULL, &t),
                    TL_EINVAL);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_EQUAL(a.made + a.lost, 0);

    /* sendto's own checks. */
    t = endpoint(loop, &a);
    tl_sockaddr_t sa = sockname(t);
    CU_ASSERT_EQUAL(tl_transport_sendto(NULL, "x", 1, &sa), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_sendto(t, NULL, 1, &sa), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_transport_sendto(t, "x", 1, NULL), TL_EDESTADDRREQ);
    bad = sa;
    bad.len = 0;
    CU_ASSERT_EQUAL(tl_transport_sendto(t, "x", 1, &bad), TL_EINVAL);
    /* Too big for UDP over IPv4: refused before the network sees it. */
    static unsigned char big[65508];
    CU_ASSERT_EQUAL(tl_transport_sendto(t, big, sizeof big, &sa), TL_EMSGSIZE);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(t), 0);
    CU_ASSERT_EQUAL(tl_transport_get_sockname(t, NULL), TL_EINVAL);
    spin(loop, 2);
    CU_ASSERT_EQUAL(a.dgrams + a.errors, 0);
    close_and_wait(loop, t, &a);
    tl_test_loop_free(loop);
}

/* ---- queueing (the plug) ---------------------------------------------- */

static void test_blocked_datagrams_are_queued_in_order(void) {
    tl_loop_t *loop = plug_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t ba = sockname(tb);
    plug.plugged = 1;
    char msg[4] = "q0";
    for (int i = 0; i < 3; i++) {
        msg[1] = (char)('0' + i);
        CU_ASSERT_EQUAL(tl_transport_sendto(ta, msg, 2, &ba), 0);
    }
    /* Only the first was tried: the rest queue behind it. */
    CU_ASSERT_EQUAL(plug.try_sends, 1);
    CU_ASSERT_EQUAL(plug.n, 3);
    /* The copy is queued, and counted with asyncio's 8-byte header. */
    memset(msg, 0, sizeof msg);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(ta), 3 * (2 + 8));
    unplug(0);
    CU_ASSERT_TRUE(run_until(loop, &b.dgrams, 3));
    CU_ASSERT_EQUAL(memcmp(b.last, "q2", 2), 0);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(ta), 0);
    /* Once the queue is empty, sends are tried at once again. */
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "q3", 2, &ba), 0);
    CU_ASSERT_EQUAL(plug.try_sends, 2);
    CU_ASSERT_TRUE(run_until(loop, &b.dgrams, 4));
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_close_flushes_the_queue_first(void) {
    tl_loop_t *loop = plug_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t ba = sockname(tb);
    CU_ASSERT_TRUE(run_until(loop, &a.made, 1));
    plug.plugged = 1;
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(tl_transport_sendto(ta, "flush", 5, &ba), 0);
    CU_ASSERT_EQUAL(tl_transport_close(ta), 0);
    CU_ASSERT_EQUAL(tl_transport_is_closing(ta), 1);
    spin(loop, 3);
    CU_ASSERT_EQUAL(a.lost, 0); /* waiting for the queue */
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "late", 4, &ba), TL_ECLOSED);
    unplug(0);
    CU_ASSERT_TRUE(run_until(loop, &a.lost, 1));
    CU_ASSERT_EQUAL(a.lost_error, 0);
    CU_ASSERT_TRUE(run_until(loop, &b.dgrams, 3));
    spin(loop, 2);
    CU_ASSERT_EQUAL(b.dgrams, 3);
    CU_ASSERT_STRING_EQUAL(a.log, "ML");
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_abort_drops_the_queue(void) {
    tl_loop_t *loop = plug_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t ba = sockname(tb);
    CU_ASSERT_TRUE(run_until(loop, &a.made, 1));
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(ta, 20, 0), 0);
    plug.plugged = 1;
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(tl_transport_sendto(ta, "drop", 4, &ba), 0);
    CU_ASSERT_EQUAL(a.pauses, 1);
    CU_ASSERT_EQUAL(tl_transport_abort(ta), 0);
    CU_ASSERT_EQUAL(plug.n, 0); /* the stack has nothing left */
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(ta), 0);
    unplug(0);
    CU_ASSERT_TRUE(run_until(loop, &a.lost, 1));
    spin(loop, 3);
    CU_ASSERT_EQUAL(b.dgrams, 0);
    CU_ASSERT_EQUAL(a.lost_error, 0);
    /* No resume_writing or error_received for the dropped datagrams. */
    CU_ASSERT_STRING_EQUAL(a.log, "MPL");
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_abort_while_close_flushes(void) {
    tl_loop_t *loop = plug_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t ba = sockname(tb);
    plug.plugged = 1;
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "x", 1, &ba), 0);
    CU_ASSERT_EQUAL(tl_transport_close(ta), 0);
    CU_ASSERT_EQUAL(tl_transport_abort(ta), 0);
    CU_ASSERT_EQUAL(plug.n, 0);
    CU_ASSERT_TRUE(run_until(loop, &a.lost, 1));
    spin(loop, 2);
    CU_ASSERT_EQUAL(a.lost, 1);
    CU_ASSERT_EQUAL(b.dgrams, 0);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_water_marks_pause_and_resume_writing(void) {
    tl_loop_t *loop = plug_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t ba = sockname(tb);
    CU_ASSERT_TRUE(run_until(loop, &a.made, 1));
    CU_ASSERT_EQUAL(tl_transport_set_write_buffer_limits(ta, 100, 20), 0);
    static unsigned char d[50];
    plug.plugged = 1;
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, d, 50, &ba), 0); /* 58 */
    CU_ASSERT_EQUAL(a.pauses, 0);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, d, 50, &ba), 0); /* 116 */
    CU_ASSERT_EQUAL(a.pauses, 1);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(ta), 116);
    /* Paused is advice: sending more still queues. */
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, d, 50, &ba), 0);
    CU_ASSERT_EQUAL(a.pauses, 1);
    unplug(0);
    CU_ASSERT_TRUE(run_until(loop, &a.resumes, 1));
    CU_ASSERT_TRUE(run_until(loop, &b.dgrams, 3));
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(ta), 0);
    CU_ASSERT_EQUAL(a.resumes, 1);
    CU_ASSERT_STRING_EQUAL(a.log, "MPR");
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

static void test_queued_send_error_goes_to_error_received(void) {
    tl_loop_t *loop = plug_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t ba = sockname(tb);
    CU_ASSERT_TRUE(run_until(loop, &a.made, 1));
    plug.plugged = 1;
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "e1", 2, &ba), 0);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "e2", 2, &ba), 0);
    unplug(TL_ENETUNREACH);
    CU_ASSERT_EQUAL(a.errors, 2);
    CU_ASSERT_EQUAL(a.last_error, TL_ENETUNREACH);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(ta), 0);
    /* The endpoint stays open and usable. */
    CU_ASSERT_EQUAL(tl_transport_is_closing(ta), 0);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "ok", 2, &ba), 0);
    CU_ASSERT_TRUE(run_until(loop, &b.dgrams, 1));
    CU_ASSERT_EQUAL(memcmp(b.last, "ok", 2), 0);
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    CU_ASSERT_STRING_EQUAL(a.log, "MEEL");
    tl_test_loop_free(loop);
}

static void test_closing_the_loop_ends_endpoints(void) {
    tl_loop_t *loop = plug_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    (void)endpoint(loop, &b);
    tl_sockaddr_t aa = sockname(ta);
    CU_ASSERT_TRUE(run_until(loop, &a.made, 1));
    plug.plugged = 1;
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "x", 1, &aa), 0);
    CU_ASSERT_EQUAL(tl_transport_close(ta), 0); /* flushing */
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(a.lost, 1);
    CU_ASSERT_EQUAL(a.lost_error, TL_ECLOSED);
    CU_ASSERT_EQUAL(b.lost, 1);
    CU_ASSERT_EQUAL(b.lost_error, TL_ECLOSED);
    CU_ASSERT_STRING_EQUAL(b.log, "ML");
    CU_ASSERT_EQUAL(plug.n, 0);
}

/* ---- out of memory ------------------------------------------------------ */

/* Every allocation of making an endpoint fails in turn: nothing leaks and
 * the protocol hears nothing of an endpoint that was not made. */
static void test_create_walks_every_allocation_failure(void) {
    int failures = 0;
    for (long n = 1; n < 100; n++) {
        tl_loop_t *loop = tl_test_net_loop();
        rec_t a = {0};
        tl_sockaddr_t lo = ip4("127.0.0.1", 0);
        tl_transport_t *t = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl_create_datagram_endpoint(loop, &rec_proto, &a, &lo, NULL,
                                             NULL, &t);
        tl_test_fail_alloc_at(0);
        if (rc != 0) {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            CU_ASSERT_PTR_NULL(t);
            spin(loop, 1);
            CU_ASSERT_EQUAL(a.made + a.lost, 0);
            failures++;
            tl_test_loop_free(loop);
            continue;
        }
        close_and_wait(loop, t, &a);
        tl_test_loop_free(loop);
        break;
    }
    CU_ASSERT_TRUE(failures >= 2);
}

static void test_queueing_without_memory_fails_the_send(void) {
    tl_loop_t *loop = plug_loop();
    rec_t a = {0}, b = {0};
    tl_transport_t *ta = endpoint(loop, &a);
    tl_transport_t *tb = endpoint(loop, &b);
    tl_sockaddr_t ba = sockname(tb);
    plug.plugged = 1;
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "x", 1, &ba), TL_ENOMEM);
    tl_test_fail_alloc_at(0);
    CU_ASSERT_EQUAL(tl_transport_get_write_buffer_size(ta), 0);
    CU_ASSERT_EQUAL(plug.n, 0);
    CU_ASSERT_EQUAL(tl_transport_sendto(ta, "y", 1, &ba), 0);
    unplug(0);
    CU_ASSERT_TRUE(run_until(loop, &b.dgrams, 1));
    CU_ASSERT_EQUAL(b.last[0], 'y');
    close_and_wait(loop, ta, &a);
    close_and_wait(loop, tb, &b);
    tl_test_loop_free(loop);
}

/* A whole exchange (two endpoints, a queued and an immediate datagram, an
 * echo, close) with the nth allocation failing: whatever fails, nothing
 * crashes or leaks. */
static void test_exchange_survives_each_allocation_failure(void) {
    for (long n = 1; n < 200; n++) {
        tl_loop_t *loop = tl_test_net_loop();
        rec_t a = {0}, b = {0};
        b.echo = 1;
        b.oom_ok = 1;
        tl_sockaddr_t lo = ip4("127.0.0.1", 0);
        tl_transport_t *ta = NULL, *tb = NULL;
        long before = tl_test_alloc_count();
        tl_test_fail_alloc_at(n);
        int ra = tl_create_datagram_endpoint(loop, &rec_proto, &a, &lo, NULL,
                                             NULL, &ta);
        int rb = tl_create_datagram_endpoint(loop, &rec_proto, &b, &lo, NULL,
                                             NULL, &tb);
        if (ra == 0 && rb == 0) {
            tl_sockaddr_t ba = sockname(tb);
            tl_transport_sendto(ta, "ping", 4, &ba);
            for (int i = 0; i < 10 && a.dgrams == 0; i++)
                tl_loop_run_once(loop, 1000000);
        }
        long used = tl_test_alloc_count() - before;
        tl_test_fail_alloc_at(0);
        if (ta)
            close_and_wait(loop, ta, &a);
        if (tb)
            close_and_wait(loop, tb, &b);
        tl_test_loop_free(loop);
        if (used < n)
            break; /* the nth allocation was never reached: all walked */
    }
}


TL_TEST_SUITE(udp, TL_TEST(test_round_trip_between_two_endpoints),
              TL_TEST(test_unconnected_sendto_reaches_several_peers),
              TL_TEST(test_connected_endpoint_sends_to_its_peer),
              TL_TEST(test_empty_datagram_is_delivered),
              TL_TEST(test_callbacks_come_in_order),
              TL_TEST(test_pause_reading_holds_datagrams_back),
              TL_TEST(test_close_inside_datagram_received_stops_delivery),
              TL_TEST(test_abort_inside_datagram_received),
              TL_TEST(test_sendto_after_close_fails),
              TL_TEST(test_sendto_after_lost_with_a_reference_fails),
              TL_TEST(test_write_is_not_a_datagram_method),
              TL_TEST(test_bad_arguments_are_refused),
              TL_TEST(test_blocked_datagrams_are_queued_in_order),
              TL_TEST(test_close_flushes_the_queue_first),
              TL_TEST(test_abort_drops_the_queue),
              TL_TEST(test_abort_while_close_flushes),
              TL_TEST(test_water_marks_pause_and_resume_writing),
              TL_TEST(test_queued_send_error_goes_to_error_received),
              TL_TEST(test_closing_the_loop_ends_endpoints),
              TL_TEST(test_create_walks_every_allocation_failure),
              TL_TEST(test_queueing_without_memory_fails_the_send),
              TL_TEST(test_exchange_survives_each_allocation_failure))
