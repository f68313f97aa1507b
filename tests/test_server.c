/*
 * Servers: start/close/wait_closed (3.12: waits for the connections),
 * close_clients/abort_clients, serve_forever in a task, refusing
 * factories, accept errors, address in use, several addresses on one
 * port 0, create_server through the resolver. The `server` suite runs on
 * any netstack (tl_test_net_loop); `server_kernel` has Unix sockets and
 * descriptor counts.
 */
#include "transport_test.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/un.h>
#include <unistd.h>

#include "ns_test.h"

static tl_server_t *server_on(tl_loop_t *loop, factory_t *f, const char *ip,
                              tl_sockaddr_t *bound) {
    tl_sockaddr_t a = addr_ip(ip, 0);
    tl_server_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_server_addrs(loop, factory_fn, f, &a, 1, NULL, &s), 0);
    CU_ASSERT_EQUAL_FATAL(tl_server_sockets(s, bound, 1), 1);
    return s;
}

static void test_start_close_wait_closed(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t srec = {0}, c = {0};
    factory_t f = {.recs = &srec, .n = 1};
    tl_server_options_t o = {.size = sizeof o, .start_serving = TL_OPT_OFF};
    tl_sockaddr_t a = addr_ip("127.0.0.1", 0), bound;
    tl_server_t *s;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_server_addrs(loop, factory_fn, &f, &a, 1, &o, &s), 0);
    CU_ASSERT_PTR_EQUAL(tl_server_get_loop(s), loop);
    CU_ASSERT_EQUAL(tl_server_is_serving(s), 0);
    CU_ASSERT_EQUAL(tl_server_start_serving(s), 0);
    CU_ASSERT_EQUAL(tl_server_start_serving(s), 0);
    CU_ASSERT_EQUAL(tl_server_is_serving(s), 1);
    CU_ASSERT_EQUAL(tl_server_sockets(s, &bound, 1), 1);
    CU_ASSERT_TRUE(addr_port_of(&bound) > 0);
    tl_transport_t *ct = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(loop, &bound, &rec_proto, &c, &ct), 0);
    CU_ASSERT_TRUE(run_until(loop, &srec.made));
    tl_future_t *w;
    CU_ASSERT_EQUAL(tl_server_wait_closed(s, &w), 0);
    CU_ASSERT_EQUAL(tl_server_close(s), 0);
    CU_ASSERT_EQUAL(tl_server_close(s), 0);
    CU_ASSERT_EQUAL(tl_server_is_serving(s), 0);
    CU_ASSERT_EQUAL(tl_server_sockets(s, &bound, 1), 0);
    CU_ASSERT_EQUAL(tl_server_start_serving(s), TL_ECLOSED);
    run_some(loop, 5);
    CU_ASSERT_FALSE(tl_future_done(w)); /* a connection is still open */
    CU_ASSERT_EQUAL(tl_transport_write(srec.t, "hi", 2), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &c, 2));
    CU_ASSERT_EQUAL(tl_transport_close(ct), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, w, NULL), 0);
    CU_ASSERT_TRUE(srec.lost);
    tl_future_unref(w);
    /* Once closed and empty: done at once. */
    CU_ASSERT_EQUAL(tl_server_wait_closed(s, &w), 0);
    CU_ASSERT_TRUE(tl_future_done(w));
    tl_future_unref(w);
    tl_server_free(s);
    tl_test_loop_free(loop);
    rec_free(&srec);
    rec_free(&c);
}

static void test_close_clients_and_abort_clients(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t srec[4] = {{0}}, c[4] = {{0}};
    factory_t f = {.recs = srec, .n = 4};
    tl_sockaddr_t bound;
    tl_server_t *s = server_on(loop, &f, "127.0.0.1", &bound);
    tl_transport_t *ct[4];
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL_FATAL(dial(loop, &bound, &rec_proto, &c[i], &ct[i]),
                              0);
        CU_ASSERT_TRUE(run_until(loop, &srec[i].made));
    }
    tl_future_t *w;
    CU_ASSERT_EQUAL(tl_server_wait_closed(s, &w), 0);
    CU_ASSERT_EQUAL(tl_server_close(s), 0);
    CU_ASSERT_EQUAL(tl_server_close_clients(s), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, w, NULL), 0);
    tl_future_unref(w);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(srec[i].lost, 1);
        CU_ASSERT_EQUAL(srec[i].lost_error, 0);
        CU_ASSERT_TRUE(run_until(loop, &c[i].lost));
    }
    tl_server_free(s);

    /* abort_clients on a server that still serves. */
    rec_t s2[2] = {{0}}, c2[2] = {{0}};
    factory_t f2 = {.recs = s2, .n = 2};
    s = server_on(loop, &f2, "127.0.0.1", &bound);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL_FATAL(dial(loop, &bound, &rec_proto, &c2[i], &ct[i]),
                              0);
        CU_ASSERT_TRUE(run_until(loop, &s2[i].made));
    }
    CU_ASSERT_EQUAL(tl_server_abort_clients(s), 0);
    CU_ASSERT_EQUAL(tl_server_is_serving(s), 1);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_TRUE(run_until(loop, &s2[i].lost));
        CU_ASSERT_EQUAL(s2[i].lost_error, 0);
        CU_ASSERT_TRUE(run_until(loop, &c2[i].lost));
    }
    tl_server_free(s);
    tl_test_loop_free(loop);
    for (int i = 0; i < 4; i++) {
        rec_free(&srec[i]);
        rec_free(&c[i]);
    }
    for (int i = 0; i < 2; i++) {
        rec_free(&s2[i]);
        rec_free(&c2[i]);
    }
}

/* ---- serve_forever ---------------------------------------------------------- */

static int serve_task(void *arg, void **result) {
    (void)result;
    return tl_server_serve_forever(arg);
}

static void test_serve_forever_cancelled_closes(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t srec = {0};
    factory_t f = {.recs = &srec, .n = 1};
    tl_server_options_t o = {.size = sizeof o, .start_serving = TL_OPT_OFF};
    tl_sockaddr_t a = addr_ip("127.0.0.1", 0);
    tl_server_t *s;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_server_addrs(loop, factory_fn, &f, &a, 1, &o, &s), 0);
    CU_ASSERT_EQUAL(tl_server_serve_forever(s), TL_ENOTASK);
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, serve_task, s, NULL, &t), 0);
    run_some(loop, 3);
    CU_ASSERT_EQUAL(tl_server_is_serving(s), 1);
    CU_ASSERT_EQUAL(tl_task_cancel(t, NULL), 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL),
                    TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_server_is_serving(s), 0);
    CU_ASSERT_EQUAL(tl_server_sockets(s, &a, 1), 0);
    tl_task_unref(t);
    tl_server_free(s);
    tl_test_loop_free(loop);
}

static void test_serve_forever_returns_when_closed(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t srec = {0};
    factory_t f = {.recs = &srec, .n = 1};
    tl_sockaddr_t bound;
    tl_server_t *s = server_on(loop, &f, "127.0.0.1", &bound);
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, serve_task, s, NULL, &t), 0);
    run_some(loop, 3);
    tl_server_free(s); /* closes: serve_forever returns 0 */
    CU_ASSERT_EQUAL(
        tl_loop_run_until_complete(loop, tl_task_future(t), NULL), 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* ---- accepting -------------------------------------------------------------- */

static void test_factory_refusing_closes_that_connection_only(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t srec = {0}, c1 = {0}, c2 = {0};
    factory_t f = {.recs = &srec, .n = 1, .refuse = 1};
    tl_sockaddr_t bound;
    tl_server_t *s = server_on(loop, &f, "127.0.0.1", &bound);
    tl_transport_t *t1 = NULL, *t2 = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(loop, &bound, &rec_proto, &c1, &t1), 0);
    CU_ASSERT_TRUE(run_until(loop, &c1.lost)); /* closed by the server */
    CU_ASSERT_EQUAL(f.refused, 1);
    CU_ASSERT_EQUAL_FATAL(dial(loop, &bound, &rec_proto, &c2, &t2), 0);
    CU_ASSERT_TRUE(run_until(loop, &srec.made));
    CU_ASSERT_EQUAL(tl_transport_write(t2, "ok", 2), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &srec, 2));
    tl_server_free(s);
    tl_test_loop_free(loop);
    rec_free(&srec);
    rec_free(&c1);
    rec_free(&c2);
}

static void test_address_in_use_leaves_nothing_open(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t srec = {0};
    factory_t f = {.recs = &srec, .n = 1};
    tl_sockaddr_t bound;
    tl_server_t *s = server_on(loop, &f, "127.0.0.1", &bound);
    long live = tl_test_live_allocs();
    tl_sockaddr_t two[2] = {addr_ip("127.0.0.1", 0), bound};
    tl_server_t *s2 = NULL;
    CU_ASSERT_EQUAL(
        tl_create_server_addrs(loop, factory_fn, &f, two, 2, NULL, &s2),
        TL_EADDRINUSE);
    CU_ASSERT_PTR_NULL(s2);
    run_some(loop, 2); /* a stack may free closed sockets a little later */
    CU_ASSERT_EQUAL(tl_test_live_allocs(), live);
    /* Bad arguments. */
    CU_ASSERT_EQUAL(tl_create_server_addrs(loop, NULL, &f, two, 1, NULL, &s2),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(
        tl_create_server_addrs(loop, factory_fn, &f, two, 0, NULL, &s2),
        TL_EINVAL);
    CU_ASSERT_EQUAL(tl_server_close(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_server_is_serving(NULL), TL_EINVAL);
    tl_server_free(NULL);
    tl_server_free(s);
    tl_test_loop_free(loop);
    rec_free(&srec);
}

static void test_port_zero_on_several_addresses_is_one_port(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t srec[2] = {{0}}, c[2] = {{0}};
    factory_t f = {.recs = srec, .n = 2};
    tl_sockaddr_t two[2] = {addr_ip("127.0.0.1", 0), addr_ip("127.0.0.2", 0)};
    tl_server_t *s;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_server_addrs(loop, factory_fn, &f, two, 2, NULL, &s), 0);
    tl_sockaddr_t got[3];
    CU_ASSERT_EQUAL(tl_server_sockets(s, got, 3), 2);
    CU_ASSERT_TRUE(addr_port_of(&got[0]) > 0);
    CU_ASSERT_EQUAL(addr_port_of(&got[0]), addr_port_of(&got[1]));
    for (int i = 0; i < 2; i++) {
        tl_transport_t *t = NULL;
        CU_ASSERT_EQUAL(dial(loop, &got[i], &rec_proto, &c[i], &t), 0);
        CU_ASSERT_TRUE(run_until(loop, &srec[i].made));
    }
    tl_server_free(s);
    tl_test_loop_free(loop);
    for (int i = 0; i < 2; i++) {
        rec_free(&srec[i]);
        rec_free(&c[i]);
    }
}

static void test_create_server_resolves(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t srec = {0}, c = {0};
    factory_t f = {.recs = &srec, .n = 1};
    tl_future_t *fut;
    CU_ASSERT_EQUAL_FATAL(tl_create_server(loop, factory_fn, &f, "127.0.0.1",
                                           "0", NULL, &fut), 0);
    tl_server_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_loop_run_until_complete(loop, fut, (void **)&s), 0);
    tl_future_unref(fut);
    tl_sockaddr_t bound;
    CU_ASSERT_EQUAL(tl_server_sockets(s, &bound, 1), 1);
    tl_transport_t *t = NULL;
    CU_ASSERT_EQUAL(dial(loop, &bound, &rec_proto, &c, &t), 0);
    CU_ASSERT_TRUE(run_until(loop, &srec.made));
    CU_ASSERT_EQUAL(tl_create_server(loop, factory_fn, &f, NULL, NULL, NULL,
                                     &fut), TL_EINVAL);
    /* The port is taken now: the future fails. */
    char port[16];
    snprintf(port, sizeof port, "%d", addr_port_of(&bound));
    CU_ASSERT_EQUAL_FATAL(tl_create_server(loop, factory_fn, &f, "127.0.0.1",
                                           port, NULL, &fut), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, fut, NULL),
                    TL_EADDRINUSE);
    tl_future_unref(fut);
    tl_server_free(s);
    tl_test_loop_free(loop);
    rec_free(&srec);
    rec_free(&c);
}

/* A server's connections outlive a freed server; loop close ends them. */
static void test_loop_close_with_open_server(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t srec = {0}, c = {0};
    factory_t f = {.recs = &srec, .n = 1};
    tl_sockaddr_t bound;
    tl_server_t *s = server_on(loop, &f, "127.0.0.1", &bound);
    tl_transport_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(dial(loop, &bound, &rec_proto, &c, &t), 0);
    CU_ASSERT_TRUE(run_until(loop, &srec.made));
    tl_future_t *w;
    CU_ASSERT_EQUAL(tl_server_wait_closed(s, &w), 0);
    tl_server_free(s); /* the connection keeps it alive */
    CU_ASSERT_EQUAL(tl_transport_write(t, "x", 1), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &srec, 1));
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(srec.lost_error, TL_ECLOSED);
    tl_future_unref(w);
    rec_free(&srec);
    rec_free(&c);
}

/* ---- kernel: EMFILE through the fault stack, Unix sockets, fds ------------- */

static void test_accept_error_reported_and_serving_continues(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_fault_t fault = {.size = sizeof fault};
    CU_ASSERT_EQUAL_FATAL(
        tl_loop_set_netstack(loop, tl_test_netstack_fault(), &fault), 0);
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    rec_t srec = {0}, c1 = {0}, c2 = {0};
    factory_t f = {.recs = &srec, .n = 1};
    tl_sockaddr_t bound;
    tl_server_t *s = server_on(loop, &f, "127.0.0.1", &bound);
    fault.fail_accept_at = fault.accepts + 1;
    fault.accept_error = TL_EMFILE;
    tl_transport_t *t = NULL;
    dial(loop, &bound, &rec_proto, &c1, &t); /* refused or reset */
    CU_ASSERT_TRUE(run_until(loop, &exc.count));
    CU_ASSERT_EQUAL(exc.last_error, TL_EMFILE);
    CU_ASSERT_EQUAL(tl_server_is_serving(s), 1);
    CU_ASSERT_EQUAL_FATAL(dial(loop, &bound, &rec_proto, &c2, &t), 0);
    CU_ASSERT_TRUE(run_until(loop, &srec.made));
    tl_server_free(s);
    tl_test_loop_free(loop);
    rec_free(&srec);
    rec_free(&c1);
    rec_free(&c2);
}

static int count_fds(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_address_in_use_closes_the_sockets(void) {
    tl_loop_t *loop = tl_test_loop();
    rec_t srec = {0};
    factory_t f = {.recs = &srec, .n = 1};
    tl_sockaddr_t bound;
    tl_server_t *s = server_on(loop, &f, "127.0.0.1", &bound);
    int fds = count_fds();
    tl_sockaddr_t two[2] = {addr_ip("127.0.0.1", 0), bound};
    tl_server_t *s2 = NULL;
    CU_ASSERT_EQUAL(
        tl_create_server_addrs(loop, factory_fn, &f, two, 2, NULL, &s2),
        TL_EADDRINUSE);
    CU_ASSERT_EQUAL(count_fds(), fds);
    tl_server_free(s);
    tl_test_loop_free(loop);
    rec_free(&srec);
}

static tl_sockaddr_t unix_addr(const char *path) {
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    struct sockaddr_un *un = (struct sockaddr_un *)&a.u;
    un->sun_family = AF_UNIX;
    size_t n = strlen(path);
    memcpy(un->sun_path, path, n);
    if (path[0] == '@') {
        un->sun_path[0] = 0;
        a.len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        a.len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return a;
}

static void unix_roundtrip(tl_loop_t *loop, const char *path) {
    rec_t srec = {.echo = 1}, c = {0};
    factory_t f = {.recs = &srec, .n = 1};
    tl_server_t *s;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_unix_server(loop, factory_fn, &f, path, NULL, &s), 0);
    tl_sockaddr_t a = unix_addr(path);
    const tl_netstack_ops_t *ops;
    void *state;
    CU_ASSERT_EQUAL_FATAL(tl_loop_get_netstack(loop, &ops, &state), 0);
    dial_t d = {.loop = loop, .ops = ops, .proto = &rec_proto, .rec = &c};
    CU_ASSERT_EQUAL_FATAL(
        ops->connect(state, &a, NULL, &dial_handler, &d, &d.sock), 0);
    CU_ASSERT_TRUE(run_until(loop, &d.done));
    CU_ASSERT_EQUAL_FATAL(d.error, 0);
    CU_ASSERT_TRUE(run_until(loop, &c.made));
    CU_ASSERT_EQUAL(tl_transport_write(d.t, "unix!", 5), 0);
    CU_ASSERT_TRUE(run_until_len(loop, &c, 5));
    CU_ASSERT_TRUE(c.len == 5 && memcmp(c.data, "unix!", 5) == 0);
    /* A live server at the path: in use (its probe is refused, as the
     * factory has nothing more to give). */
    tl_server_t *s2;
    if (path[0] != '@') {
        CU_ASSERT_EQUAL(
            tl_create_unix_server(loop, factory_fn, &f, path, NULL, &s2),
            TL_EADDRINUSE);
    }
    tl_server_free(s);
    if (path[0] != '@')
        CU_ASSERT_EQUAL(access(path, F_OK), -1); /* removed on close */
    CU_ASSERT_EQUAL(tl_transport_close(d.t), 0);
    CU_ASSERT_TRUE(run_until(loop, &srec.lost));
    rec_free(&srec);
    rec_free(&c);
}

static void test_unix_server_and_abstract_name(void) {
    tl_loop_t *loop = tl_test_loop();
    char path[64];
    snprintf(path, sizeof path, "/tmp/tulip-h3-%d.sock", (int)getpid());
    /* A stale socket file is removed first. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    tl_sockaddr_t a = unix_addr(path);
    unlink(path);
    CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&a.u, a.len), 0);
    close(fd);
    CU_ASSERT_EQUAL(access(path, F_OK), 0);
    unix_roundtrip(loop, path);
    char abs[64];
    snprintf(abs, sizeof abs, "@tulip-h3-%d", (int)getpid());
    unix_roundtrip(loop, abs);
    tl_server_t *s;
    rec_t r = {0};
    factory_t f = {.recs = &r, .n = 1};
    CU_ASSERT_EQUAL(tl_create_unix_server(loop, factory_fn, &f, "", NULL, &s),
                    TL_EINVAL);
    tl_test_loop_free(loop);
}

static void test_ipv4_and_ipv6_on_one_port(void) {
    tl_loop_t *loop = tl_test_loop();
    rec_t srec[2] = {{0}}, c[2] = {{0}};
    factory_t f = {.recs = srec, .n = 2};
    tl_future_t *fut;
    /* NULL host: every local address (0.0.0.0 and ::), one port. */
    CU_ASSERT_EQUAL_FATAL(
        tl_create_server(loop, factory_fn, &f, NULL, "0", NULL, &fut), 0);
    tl_server_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_loop_run_until_complete(loop, fut, (void **)&s), 0);
    tl_future_unref(fut);
    tl_sockaddr_t got[4];
    int n = tl_server_sockets(s, got, 4);
    CU_ASSERT_TRUE(n >= 1);
    int port = addr_port_of(&got[0]);
    for (int i = 1; i < n && i < 4; i++)
        CU_ASSERT_EQUAL(addr_port_of(&got[i]), port);
    const char *ips[2] = {"127.0.0.1", "::1"};
    for (int i = 0; i < 2; i++) {
        tl_sockaddr_t a = addr_ip(ips[i], port);
        tl_transport_t *t = NULL;
        int rc = dial(loop, &a, &rec_proto, &c[i], &t);
        if (i == 1 && n < 2)
            continue; /* no IPv6 on this host */
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_TRUE(run_until(loop, &srec[i].made));
    }
    tl_server_free(s);
    tl_test_loop_free(loop);
    for (int i = 0; i < 2; i++) {
        rec_free(&srec[i]);
        rec_free(&c[i]);
    }
}

TL_TEST_SUITE(server,
              TL_TEST(test_start_close_wait_closed),
              TL_TEST(test_close_clients_and_abort_clients),
              TL_TEST(test_serve_forever_cancelled_closes),
              TL_TEST(test_serve_forever_returns_when_closed),
              TL_TEST(test_factory_refusing_closes_that_connection_only),
              TL_TEST(test_address_in_use_leaves_nothing_open),
              TL_TEST(test_port_zero_on_several_addresses_is_one_port),
              TL_TEST(test_create_server_resolves),
              TL_TEST(test_loop_close_with_open_server));

TL_TEST_SUITE(server_kernel,
              TL_TEST(test_accept_error_reported_and_serving_continues),
              TL_TEST(test_address_in_use_closes_the_sockets),
              TL_TEST(test_unix_server_and_abstract_name),
              TL_TEST(test_ipv4_and_ipv6_on_one_port));
