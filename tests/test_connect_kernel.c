/*
 * Connections that need the kernel netstack: Unix sockets (a path and a
 * Linux abstract name) and a plain listening socket made here, whose
 * accepted peer shows the bound local address and TCP_NODELAY.
 */
#include "connect_test.h"

/* A Unix stream server, connected to by path and by abstract name. */
static void unix_connect(const char *path) {
    tl_loop_t *loop = tl_test_loop();
    srv_t s;
    memset(&s, 0, sizeof s);
    CU_ASSERT_EQUAL_FATAL(
        tl_create_unix_server(loop, srv_factory, &s, path, NULL, &s.server), 0);
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_unix_connection(loop, &rec_proto, &r, path, NULL, &f), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, &v), 0);
    CU_ASSERT_EQUAL(r.made, 1);
    CU_ASSERT_PTR_EQUAL(r.t, v);
    for (int i = 0; i < 1000 && s.accepted == 0; i++)
        tl_loop_run_once(loop, 1000000);
    CU_ASSERT_EQUAL(s.accepted, 1);
    close_client(loop, &r);
    tl_future_unref(f);
    srv_stop(loop, &s);
    tl_test_loop_free(loop);
    if (path[0] != '@')
        unlink(path);
}

static void test_unix_connection_by_path(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/tulip-connect-%d.sock", (int)getpid());
    unlink(path);
    unix_connect(path);
}

static void test_unix_connection_by_abstract_name(void) {
    char path[64];
    snprintf(path, sizeof path, "@tulip-connect-%d", (int)getpid());
    unix_connect(path);
}

static void test_unix_connection_without_server_fails(void) {
    tl_loop_t *loop = tl_test_loop();
    char path[64];
    snprintf(path, sizeof path, "/tmp/tulip-connect-none-%d.sock", (int)getpid());
    unlink(path);
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_unix_connection(loop, &rec_proto, &r, path, NULL, &f), 0);
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, NULL), TL_ENOENT);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(r.made, 0);
    tl_test_loop_free(loop);
}

/* A plain listening socket made here: the kernel sees the connection,
 * bound to local_addr. */
static void test_kernel_peer_sees_local_addr(void) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CU_ASSERT_EQUAL_FATAL(listen(lfd, 4), 0);
    socklen_t sl = sizeof sin;
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(sin.sin_port));

    tl_loop_t *loop = tl_test_loop();
    tl_sockaddr_t local = ip("127.0.0.1", 0);
    tl_connect_options_t o = {.size = sizeof o, .local_addr = &local};
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection(loop, &rec_proto, &r, "127.0.0.1", port, &o, &f),
        0);
    void *v = NULL;
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, &v), 0);
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int cfd = accept(lfd, (struct sockaddr *)&peer, &pl);
    CU_ASSERT_FATAL(cfd >= 0);
    tl_sockaddr_t me;
    CU_ASSERT_EQUAL(tl_transport_get_sockname(v, &me), 0);
    CU_ASSERT_EQUAL(port_of(&me), ntohs(peer.sin_port));
    tl_fd_t fd;
    CU_ASSERT_EQUAL(tl_transport_get_fileno(v, &fd), 0);
    int nd = 0;
    socklen_t nl = sizeof nd;
    CU_ASSERT_EQUAL(getsockopt((int)fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &nd, &nl), 0);
    CU_ASSERT_EQUAL(nd != 0, 1);
    close(cfd);
    close(lfd);
    for (int i = 0; i < 1000 && !r.lost; i++)
        tl_loop_run_once(loop, 1000000);
    close_client(loop, &r);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(connect_kernel,
              TL_TEST(test_unix_connection_by_path),
              TL_TEST(test_unix_connection_by_abstract_name),
              TL_TEST(test_unix_connection_without_server_fails),
              TL_TEST(test_kernel_peer_sees_local_addr));

