/*
 * dns: socket addresses, and loop.getaddrinfo / getnameinfo through the
 * executor. Only answers that are certain on any machine: numeric hosts,
 * "localhost" (127.0.0.1 in every /etc/hosts; ::1 is not everywhere), and
 * names that cannot resolve; no network.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/platform.h"
#include "tl_test.h"

/* ---- helpers ------------------------------------------------------------ */

static int threads_now(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (fp && fgets(line, sizeof line, fp))
        if (strncmp(line, "Threads:", 8) == 0)
            n = atoi(line + 8);
    if (fp)
        fclose(fp);
    return n;
}

static const tl_addrinfo_list_t *list_of(tl_future_t *f) {
    void *v = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_future_result(f, &v), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    return v;
}

/* Does the list hold ip:port with this socket type? */
static int has_entry(const tl_addrinfo_list_t *l, const char *ip, int port, int socktype) {
    for (size_t i = 0; i < l->n; i++) {
        char buf[64];
        int p = -1;
        if (tl_sockaddr_to_string(&l->items[i].addr, buf, sizeof buf, &p) == 0 &&
            strcmp(buf, ip) == 0 && p == port && l->items[i].socktype == socktype)
            return 1;
    }
    return 0;
}

/* ---- addresses ---------------------------------------------------------- */

static void test_sockaddr_from_ip_round_trips_v4_and_v6(void) {
    tl_sockaddr_t a;
    char buf[64];
    int port = -1;
    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_ip("127.0.0.1", 8080, &a), 0);
    CU_ASSERT_EQUAL(tl_sockaddr_family(&a), TL_AF_INET);
    CU_ASSERT_EQUAL(a.len, sizeof(struct sockaddr_in));
    CU_ASSERT_EQUAL(tl_sockaddr_to_string(&a, buf, sizeof buf, &port), 0);
    CU_ASSERT_STRING_EQUAL(buf, "127.0.0.1");
    CU_ASSERT_EQUAL(port, 8080);
    CU_ASSERT_EQUAL(tl_sockaddr_port(&a), 8080);

    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_ip("::1", 443, &a), 0);
    CU_ASSERT_EQUAL(tl_sockaddr_family(&a), TL_AF_INET6);
    CU_ASSERT_EQUAL(tl_sockaddr_to_string(&a, buf, sizeof buf, &port), 0);
    CU_ASSERT_STRING_EQUAL(buf, "::1");
    CU_ASSERT_EQUAL(port, 443);
    const struct sockaddr_in6 *v6 = (const void *)a.u.bytes;
    CU_ASSERT_EQUAL(v6->sin6_family, AF_INET6);
    CU_ASSERT_EQUAL(ntohs(v6->sin6_port), 443);

    /* A numeric scope: no interface needs to exist for a number. */
    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_ip("fe80::1%1", 7, &a), 0);
    CU_ASSERT_EQUAL(((const struct sockaddr_in6 *)(const void *)a.u.bytes)->sin6_scope_id, 1);
}

static void test_sockaddr_from_ip_refuses_names_and_bad_ports(void) {
    tl_sockaddr_t a;
    CU_ASSERT_EQUAL(tl_sockaddr_from_ip("localhost", 80, &a), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sockaddr_from_ip("1.2.3", 80, &a), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sockaddr_from_ip("", 80, &a), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sockaddr_from_ip("::1::2", 80, &a), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sockaddr_from_ip(NULL, 80, &a), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sockaddr_from_ip("127.0.0.1", 80, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sockaddr_from_ip("127.0.0.1", -1, &a), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sockaddr_from_ip("127.0.0.1", 65536, &a), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sockaddr_family(NULL), TL_AF_UNSPEC);
    CU_ASSERT_EQUAL(tl_sockaddr_port(NULL), 0);
}

static void test_sockaddr_from_unix_path_and_abstract_name(void) {
    tl_sockaddr_t a;
    char buf[128];
    int port = -1;
    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_unix("/tmp/tulip.sock", &a), 0);
    CU_ASSERT_EQUAL(tl_sockaddr_family(&a), TL_AF_UNIX);
    CU_ASSERT_EQUAL(tl_sockaddr_to_string(&a, buf, sizeof buf, &port), 0);
    CU_ASSERT_STRING_EQUAL(buf, "/tmp/tulip.sock");
    CU_ASSERT_EQUAL(port, 0);

    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_unix("@tulip-abstract", &a), 0);
    const struct sockaddr_un *un = (const void *)a.u.bytes;
    CU_ASSERT_EQUAL(un->sun_path[0], '\0');
    CU_ASSERT_EQUAL(a.len, offsetof(struct sockaddr_un, sun_path) + strlen("@tulip-abstract"));
    CU_ASSERT_EQUAL(tl_sockaddr_to_string(&a, buf, sizeof buf, NULL), 0);
    CU_ASSERT_STRING_EQUAL(buf, "@tulip-abstract");

    char longpath[300];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    CU_ASSERT_EQUAL(tl_sockaddr_from_unix(longpath, &a), TL_ENAMETOOLONG);
    CU_ASSERT_EQUAL(tl_sockaddr_from_unix("", &a), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_sockaddr_from_unix(NULL, &a), TL_EINVAL);
}

static void test_sockaddr_to_string_reports_a_short_buffer(void) {
    tl_sockaddr_t a;
    char buf[4];
    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_ip("10.20.30.40", 1, &a), 0);
    CU_ASSERT_EQUAL(tl_sockaddr_to_string(&a, buf, sizeof buf, NULL), TL_ENOSPC);
    CU_ASSERT_EQUAL(tl_sockaddr_to_string(NULL, buf, sizeof buf, NULL), TL_EINVAL);
    tl_sockaddr_t none = {0};
    none.len = sizeof(struct sockaddr_in);
    CU_ASSERT_EQUAL(tl_sockaddr_to_string(&none, buf, sizeof buf, NULL), TL_EAFNOSUPPORT);
}

/* ---- getaddrinfo -------------------------------------------------------- */

static void test_numeric_host_is_answered_at_once_without_the_executor(void) {
    int before = threads_now();
    tl_loop_t *loop = tl_test_loop();
    tl_addrinfo_hints_t h = {sizeof h, TL_AF_UNSPEC, TL_SOCK_STREAM, 0, 0};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_getaddrinfo(loop, "127.0.0.1", "8080", &h, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    const tl_addrinfo_list_t *l = list_of(f);
    CU_ASSERT_EQUAL(l->n, 1);
    CU_ASSERT_EQUAL(l->items[0].family, TL_AF_INET);
    CU_ASSERT_EQUAL(l->items[0].socktype, TL_SOCK_STREAM);
    CU_ASSERT_EQUAL(l->items[0].protocol, IPPROTO_TCP);
    CU_ASSERT_PTR_NULL(l->items[0].canonname);
    CU_ASSERT(has_entry(l, "127.0.0.1", 8080, TL_SOCK_STREAM));
    CU_ASSERT_EQUAL(tl_addrinfo_count(l), 1);
    CU_ASSERT_PTR_EQUAL(tl_addrinfo_addr(l, 0), &l->items[0].addr);
    CU_ASSERT_PTR_NULL(tl_addrinfo_addr(l, 1));
    tl_future_unref(f);

    /* Any socket type: one entry per type tulip has (no SOCK_RAW). */
    CU_ASSERT_EQUAL_FATAL(tl_getaddrinfo(loop, "::1", NULL, NULL, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    l = list_of(f);
    CU_ASSERT_EQUAL(l->n, 2);
    CU_ASSERT(has_entry(l, "::1", 0, TL_SOCK_STREAM));
    CU_ASSERT(has_entry(l, "::1", 0, TL_SOCK_DGRAM));
    for (size_t i = 0; i < l->n; i++)
        CU_ASSERT_EQUAL(l->items[i].family, TL_AF_INET6);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(threads_now(), before); /* no pool was started */
    tl_test_loop_free(loop);
}

static void test_passive_without_host_gives_the_wildcard_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_addrinfo_hints_t h = {sizeof h, TL_AF_INET, TL_SOCK_STREAM, 0, TL_AI_PASSIVE};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_getaddrinfo(loop, NULL, "9000", &h, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    CU_ASSERT(has_entry(list_of(f), "0.0.0.0", 9000, TL_SOCK_STREAM));
    tl_future_unref(f);
    /* "" is no host too; without PASSIVE it means loopback. */
    h.flags = 0;
    CU_ASSERT_EQUAL_FATAL(tl_getaddrinfo(loop, "", "9000", &h, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    CU_ASSERT(has_entry(list_of(f), "127.0.0.1", 9000, TL_SOCK_STREAM));
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_localhost_resolves_on_the_executor(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_addrinfo_hints_t h = {sizeof h, TL_AF_INET, TL_SOCK_STREAM, 0, TL_AI_CANONNAME};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_getaddrinfo(loop, "localhost", "80", &h, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 0); /* answered through the loop */
    void *v = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_until_complete(loop, f, &v), 0);
    const tl_addrinfo_list_t *l = v;
    CU_ASSERT_FATAL(l != NULL && l->n >= 1);
    CU_ASSERT(has_entry(l, "127.0.0.1", 80, TL_SOCK_STREAM));
    CU_ASSERT_PTR_NOT_NULL(l->items[0].canonname);
    for (size_t i = 1; i < l->n; i++)
        CU_ASSERT_PTR_NULL(l->items[i].canonname);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static int error_of(tl_loop_t *loop, const char *host, const char *port,
                    const tl_addrinfo_hints_t *h) {
    tl_future_t *f;
    int rc = tl_getaddrinfo(loop, host, port, h, &f);
    if (rc)
        return rc;
    rc = tl_loop_run_until_complete(loop, f, NULL);
    tl_future_unref(f);
    return rc;
}

static void test_resolver_errors_come_through_the_future(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_addrinfo_hints_t h = {sizeof h, 0, TL_SOCK_STREAM, 0, TL_AI_NUMERICHOST};
    /* A name where a number was required: certain, and no lookup. */
    CU_ASSERT_EQUAL(error_of(loop, "no-such-host", "80", &h), TL_EAI_NONAME);
    h.flags = TL_AI_NUMERICSERV;
    CU_ASSERT_EQUAL(error_of(loop, "127.0.0.1", "http", &h), TL_EAI_NONAME);
    h.flags = 0;
    CU_ASSERT_EQUAL(error_of(loop, "127.0.0.1", "no-such-service-xyz", &h), TL_EAI_SERVICE);
    /* An IPv6 number asked for as IPv4: no address of that family. */
    h.family = TL_AF_INET;
    CU_ASSERT_EQUAL(error_of(loop, "::1", "80", &h), TL_EAI_NODATA);
    /* .invalid never resolves (RFC 6761); a sandbox without DNS may say
     * "try again" instead of "no such name". */
    h.family = 0;
    int rc = error_of(loop, "nonexistent.invalid", NULL, &h);
    CU_ASSERT(rc == TL_EAI_NONAME || rc == TL_EAI_AGAIN);
    tl_test_loop_free(loop);
}

static void test_bad_arguments_fail_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = NULL;
    tl_addrinfo_hints_t h = {sizeof h, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(tl_getaddrinfo(NULL, "127.0.0.1", NULL, NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_getaddrinfo(loop, "127.0.0.1", NULL, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_getaddrinfo(loop, NULL, NULL, NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_getaddrinfo(loop, "", NULL, NULL, &f), TL_EINVAL);
    h.family = 99;
    CU_ASSERT_EQUAL(tl_getaddrinfo(loop, "127.0.0.1", NULL, &h, &f), TL_EINVAL);
    h.family = 0;
    h.socktype = 99;
    CU_ASSERT_EQUAL(tl_getaddrinfo(loop, "127.0.0.1", NULL, &h, &f), TL_EINVAL);
    h.socktype = 0;
    h.flags = 1 << 20;
    CU_ASSERT_EQUAL(tl_getaddrinfo(loop, "127.0.0.1", NULL, &h, &f), TL_EINVAL);
    h.flags = 0;
    h.protocol = -1;
    CU_ASSERT_EQUAL(tl_getaddrinfo(loop, "127.0.0.1", NULL, &h, &f), TL_EINVAL);
    CU_ASSERT_PTR_NULL(f);

    tl_sockaddr_t a, un;
    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_ip("127.0.0.1", 80, &a), 0);
    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_unix("/tmp/x", &un), 0);
    CU_ASSERT_EQUAL(tl_getnameinfo(loop, NULL, 0, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_getnameinfo(loop, &a, 0, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_getnameinfo(loop, &a, 1 << 20, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_getnameinfo(loop, &un, 0, &f), TL_EAFNOSUPPORT);
    CU_ASSERT_PTR_NULL(f);

    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_getaddrinfo(loop, "127.0.0.1", NULL, NULL, &f), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_getnameinfo(loop, &a, 0, &f), TL_ECLOSED);
    tl_loop_unref(loop);
}

typedef struct other {
    tl_loop_t *loop;
    int rc;
} other_t;

static void *resolve_elsewhere(void *arg) {
    other_t *o = arg;
    tl_future_t *f;
    o->rc = tl_getaddrinfo(o->loop, "127.0.0.1", NULL, NULL, &f);
    return NULL;
}

static void test_wrong_thread_is_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    other_t o = {loop, 0};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, resolve_elsewhere, &o), 0);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(o.rc, TL_EWRONGTHREAD);
    tl_test_loop_free(loop);
}

/* ---- getnameinfo -------------------------------------------------------- */

static void test_getnameinfo_numeric_is_answered_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_sockaddr_t a;
    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_ip("127.0.0.1", 80, &a), 0);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(
        tl_getnameinfo(loop, &a, TL_NI_NUMERICHOST | TL_NI_NUMERICSERV, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    void *v = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_future_result(f, &v), 0);
    const tl_nameinfo_t *ni = v;
    CU_ASSERT_STRING_EQUAL(ni->host, "127.0.0.1");
    CU_ASSERT_STRING_EQUAL(ni->serv, "80");
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_getnameinfo_numerichost_looks_the_service_up(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_sockaddr_t a;
    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_ip("127.0.0.1", 80, &a), 0);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_getnameinfo(loop, &a, TL_NI_NUMERICHOST, &f), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_until_complete(loop, f, &v), 0);
    const tl_nameinfo_t *ni = v;
    CU_ASSERT_STRING_EQUAL(ni->host, "127.0.0.1");
    /* "http" from /etc/services, or the number where there is none. */
    CU_ASSERT(strcmp(ni->serv, "http") == 0 || strcmp(ni->serv, "80") == 0);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

/* ---- cancellation and closing ------------------------------------------- */

typedef struct gate {
    atomic_int started, open;
} gate_t;

static int gated(void *arg, void **result) {
    gate_t *g = arg;
    (void)result;
    atomic_fetch_add(&g->started, 1);
    while (!atomic_load(&g->open))
        usleep(100);
    return 0;
}

static void *open_later(void *arg) {
    usleep(20000);
    atomic_store(&((gate_t *)arg)->open, 1);
    return NULL;
}

/* Occupy every worker of the loop's default executor. */
static int occupy_pool(tl_loop_t *loop, gate_t *g, tl_future_t **busy, int max) {
    int n = (int)tl__cpu_count();
    CU_ASSERT_FATAL(n <= max);
    for (int i = 0; i < n; i++)
        CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, NULL, gated, g, &busy[i]), 0);
    while (atomic_load(&g->started) < n)
        usleep(100);
    return n;
}

static void test_cancel_before_a_worker_took_it_removes_the_query(void) {
    tl_loop_t *loop = tl_test_loop();
    gate_t g = {0};
    tl_future_t *busy[256];
    int n = occupy_pool(loop, &g, busy, 256);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_getaddrinfo(loop, "localhost", "80", NULL, &f), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(tl_future_cancelled(f), 1);
    tl_future_unref(f); /* the query was freed with the job */
    atomic_store(&g.open, 1);
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, busy[i], NULL), 0);
        tl_future_unref(busy[i]);
    }
    tl_test_loop_free(loop);
}

static void test_closing_the_loop_with_queries_queued_frees_them(void) {
    tl_loop_t *loop = tl_test_loop();
    gate_t g = {0};
    tl_future_t *busy[256], *q[3];
    int n = occupy_pool(loop, &g, busy, 256);
    tl_addrinfo_hints_t h = {sizeof h, TL_AF_INET, 0, 0, 0};
    CU_ASSERT_EQUAL_FATAL(tl_getaddrinfo(loop, "localhost", "80", &h, &q[0]), 0);
    CU_ASSERT_EQUAL_FATAL(tl_getaddrinfo(loop, "localhost", NULL, &h, &q[1]), 0);
    tl_sockaddr_t a;
    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_ip("127.0.0.1", 22, &a), 0);
    CU_ASSERT_EQUAL_FATAL(tl_getnameinfo(loop, &a, 0, &q[2]), 0);
    pthread_t opener;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&opener, NULL, open_later, &g), 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0); /* shuts the pool down */
    pthread_join(opener, NULL);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(tl_future_done(q[i]), 0);
        tl_future_unref(q[i]);
    }
    for (int i = 0; i < n; i++)
        tl_future_unref(busy[i]);
    tl_loop_unref(loop);
}

/* ---- out of memory ------------------------------------------------------ */

/* Every allocation failing in turn: either the call fails with TL_ENOMEM
 * and leaves nothing, or the future ends (with TL_ENOMEM if a worker's
 * allocation failed); the allocator checks for leaks. */
static void oom_walk(const char *host, const char *port, int name) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc = {0};
    tl_test_capture_exceptions(loop, &exc); /* "lost" reports of the loop */
    tl_sockaddr_t a;
    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_ip("127.0.0.1", 80, &a), 0);
    for (long n = 1; n < 1000; n++) {
        tl_future_t *f = NULL;
        tl_test_fail_alloc_at(n);
        int rc = name ? tl_getnameinfo(loop, &a, TL_NI_NUMERICHOST, &f)
                      : tl_getaddrinfo(loop, host, port, NULL, &f);
        if (rc) {
            tl_test_fail_alloc_at(0);
            CU_ASSERT_EQUAL_FATAL(rc, TL_ENOMEM);
            CU_ASSERT_PTR_NULL(f);
            continue;
        }
        rc = tl_loop_run_until_complete(loop, f, NULL);
        tl_test_fail_alloc_at(0);
        tl_future_unref(f);
        if (rc == 0 && n > 40)
            break; /* well past every allocation the query makes */
        CU_ASSERT(rc == 0 || rc == TL_ENOMEM);
    }
    tl_test_loop_free(loop);
}

static void test_getaddrinfo_numeric_out_of_memory_is_clean(void) {
    oom_walk("127.0.0.1", "80", 0);
}

static void test_getaddrinfo_lookup_out_of_memory_is_clean(void) {
    oom_walk("localhost", "80", 0);
}

static void test_getnameinfo_out_of_memory_is_clean(void) {
    oom_walk(NULL, NULL, 1);
}

TL_TEST_SUITE(dns,
              TL_TEST(test_sockaddr_from_ip_round_trips_v4_and_v6),
              TL_TEST(test_sockaddr_from_ip_refuses_names_and_bad_ports),
              TL_TEST(test_sockaddr_from_unix_path_and_abstract_name),
              TL_TEST(test_sockaddr_to_string_reports_a_short_buffer),
              TL_TEST(test_numeric_host_is_answered_at_once_without_the_executor),
              TL_TEST(test_passive_without_host_gives_the_wildcard_at_once),
              TL_TEST(test_localhost_resolves_on_the_executor),
              TL_TEST(test_resolver_errors_come_through_the_future),
              TL_TEST(test_bad_arguments_fail_at_once),
              TL_TEST(test_wrong_thread_is_refused),
              TL_TEST(test_getnameinfo_numeric_is_answered_at_once),
              TL_TEST(test_getnameinfo_numerichost_looks_the_service_up),
              TL_TEST(test_cancel_before_a_worker_took_it_removes_the_query),
              TL_TEST(test_closing_the_loop_with_queries_queued_frees_them),
              TL_TEST(test_getaddrinfo_numeric_out_of_memory_is_clean),
              TL_TEST(test_getaddrinfo_lookup_out_of_memory_is_clean),
              TL_TEST(test_getnameinfo_out_of_memory_is_clean));
