/*
 * Helpers shared by the connection suites (test_connect.c,
 * test_connect_eyeballs.c, test_connect_cancel.c, test_connect_kernel.c):
 * a recording client protocol, a server on the netstack under test, loop
 * running with deadlines, and `wrap`, a netstack table that passes
 * everything to the one under test (TL_NETSTACK) except connects to the
 * addresses a test names, which hang (W_BLACKHOLE) or fail (W_FAIL_NOW:
 * at once; W_FAIL_LATER: reported from the loop) as told.
 */
#ifndef TL_CONNECT_TEST_H
#define TL_CONNECT_TEST_H

/* Include this first: clock_gettime needs POSIX. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tl_test.h"
#include "transport/connect_int.h"

/* ---- a recording protocol ------------------------------------------- */

typedef struct rec {
    int made, lost, lost_error, step, made_step, done_step;
    tl_transport_t *t;
} rec_t;

static inline void rec_made(tl_transport_t *t, void *ctx) {
    rec_t *r = ctx;
    r->made++;
    r->made_step = ++r->step;
    r->t = t;
}

static inline void rec_lost(tl_transport_t *t, int error, void *ctx) {
    (void)t;
    rec_t *r = ctx;
    r->lost++;
    r->lost_error = error;
}

static const tl_protocol_t rec_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = rec_made,
    .connection_lost = rec_lost,
};

static inline void rec_done(tl_future_t *f, void *ctx) {
    (void)f;
    rec_t *r = ctx;
    r->done_step = ++r->step;
}

/* ---- a server --------------------------------------------------------- */

typedef struct srv {
    tl_server_t *server;
    tl_sockaddr_t addr;
    char port[16];
    int accepted, lost;
    tl_sockaddr_t peer; /* of the last accepted connection */
} srv_t;

static inline void srv_made(tl_transport_t *t, void *ctx) {
    srv_t *s = ctx;
    s->accepted++;
    tl_transport_get_peername(t, &s->peer);
}

static inline void srv_lost(tl_transport_t *t, int error, void *ctx) {
    (void)t;
    (void)error;
    ((srv_t *)ctx)->lost++;
}

static const tl_protocol_t srv_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = srv_made,
    .connection_lost = srv_lost,
};

static inline int srv_factory(void *fctx, const tl_protocol_t **p, void **pctx) {
    *p = &srv_proto;
    *pctx = fctx;
    return 0;
}

static inline int port_of(const tl_sockaddr_t *a) {
    const struct sockaddr *sa = (const void *)a->u.bytes;
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
}

static inline tl_sockaddr_t ip(const char *host, int port) {
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    CU_ASSERT_EQUAL_FATAL(tl_sockaddr_from_ip(host, port, &a), 0);
    return a;
}

/* Listen on host (port 0); 0 or the error (a stack without IPv6...). */
static inline int srv_start(tl_loop_t *loop, srv_t *s, const char *host) {
    memset(s, 0, sizeof *s);
    tl_sockaddr_t a = ip(host, 0);
    int rc = tl_create_server_addrs(loop, srv_factory, s, &a, 1, NULL,
                                    &s->server);
    if (rc)
        return rc;
    CU_ASSERT_EQUAL(tl_server_sockets(s->server, &s->addr, 1), 1);
    snprintf(s->port, sizeof s->port, "%d", port_of(&s->addr));
    return 0;
}

/* Free the server and wait until its connections are gone (the clients
 * closed theirs), so no transport is left when the loop closes. */
static inline void srv_stop(tl_loop_t *loop, srv_t *s) {
    if (s->server)
        tl_server_free(s->server);
    s->server = NULL;
    for (int i = 0; i < 1000 && s->lost < s->accepted; i++)
        tl_loop_run_once(loop, 1000000);
    CU_ASSERT_EQUAL(s->lost, s->accepted);
}

/* ---- running ------------------------------------------------------------ */

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void flag_done(tl_future_t *f, void *ctx) {
    (void)f;
    *(int *)ctx = 1;
}

/* Run until f's done callbacks ran (as an await would return), or ms
 * passed (then TL_ETIMEDOUT); f's outcome. */
static inline int run_for(tl_loop_t *loop, tl_future_t *f, int ms, void **value) {
    int done = 0;
    CU_ASSERT_EQUAL_FATAL(tl_future_add_done_callback(f, flag_done, &done), 0);
    int64_t end = now_ns() + (int64_t)ms * 1000000;
    while (!done && now_ns() < end)
        tl_loop_run_once(loop, 1000000);
    if (!done) {
        tl_future_remove_done_callback(f, flag_done, &done);
        return TL_ETIMEDOUT;
    }
    return tl_future_result(f, value);
}

/* Run the loop for about ms. */
static inline void spin(tl_loop_t *loop, int ms) {
    int64_t end = now_ns() + (int64_t)ms * 1000000;
    while (now_ns() < end)
        tl_loop_run_once(loop, 1000000);
}

/* Close what a connected client made and let it finish. */
static inline void close_client(tl_loop_t *loop, rec_t *r) {
    if (r->t && !r->lost) {
        tl_transport_close(r->t);
        for (int i = 0; i < 1000 && !r->lost; i++)
            tl_loop_run_once(loop, 1000000);
    }
    CU_ASSERT_EQUAL(r->lost, 1);
}

/* ---- the wrapping netstack ------------------------------------------- */

enum { W_PASS, W_BLACKHOLE, W_FAIL_NOW, W_FAIL_LATER };

typedef struct fake {
    struct fake *next;
    tl_ns_handler_t h;
    void *ctx;
    tl_handle_t later;
    int error;
} fake_t;

static struct {
    const tl_netstack_ops_t *inner;
    void *inner_config;
    tl_netstack_ops_t ops;
    tl_loop_t *loop;
    struct {
        tl_sockaddr_t addr;
        int mode, error;
    } rules[8];
    int nrules;
    tl_sockaddr_t connects[16];
    int64_t connect_ns[16];
    int nconnects;
    fake_t *fakes;
    int fakes_live, fakes_closed;
    int setopt_opt[8], setopt_val[8], nsetopts;
} W;

static inline int w_create(tl_loop_t *loop, void *config, void **state) {
    (void)config;
    W.loop = loop;
    return W.inner->create(loop, W.inner_config, state);
}

static inline int same_addr(const tl_sockaddr_t *a, const tl_sockaddr_t *b) {
    return a->len == b->len && memcmp(a->u.bytes, b->u.bytes, a->len) == 0;
}

static inline void fake_fire(void *ctx) {
    fake_t *f = ctx;
    f->later = 0;
    f->h.connected(f->ctx, f->error);
}

static inline int w_connect(void *state, const tl_sockaddr_t *remote,
                     const tl_sockaddr_t *local, const tl_ns_handler_t *h,
                     void *ctx, tl_ns_sock_t **out) {
    if (W.nconnects < 16) {
        W.connects[W.nconnects] = *remote;
        W.connect_ns[W.nconnects++] = now_ns();
    }
    for (int i = 0; i < W.nrules; i++) {
        if (!same_addr(remote, &W.rules[i].addr))
            continue;
        if (W.rules[i].mode == W_FAIL_NOW)
            return W.rules[i].error;
        fake_t *f = calloc(1, sizeof *f);
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        f->h = *h;
        f->ctx = ctx;
        f->error = W.rules[i].error;
        if (W.rules[i].mode == W_FAIL_LATER &&
            tl_loop_call_soon(W.loop, fake_fire, f, &f->later) != 0) {
            free(f);
            return TL_ENOMEM;
        }
        f->next = W.fakes;
        W.fakes = f;
        W.fakes_live++;
        *out = (tl_ns_sock_t *)(void *)f;
        return 0;
    }
    return W.inner->connect(state, remote, local, h, ctx, out);
}

static inline void w_close(tl_ns_sock_t *s, int abort) {
    for (fake_t **p = &W.fakes; *p; p = &(*p)->next) {
        if ((void *)*p != (void *)s)
            continue;
        fake_t *f = *p;
        *p = f->next;
        if (f->later)
            tl_handle_cancel(W.loop, f->later);
        free(f);
        W.fakes_live--;
        W.fakes_closed++;
        return;
    }
    W.inner->close(s, abort);
}

static inline int w_setopt(tl_ns_sock_t *s, int opt, int value) {
    if (W.nsetopts < 8) {
        W.setopt_opt[W.nsetopts] = opt;
        W.setopt_val[W.nsetopts++] = value;
    }
    return W.inner->setopt(s, opt, value);
}

/* A loop whose netstack is the one under test behind the wrapper. */
static inline tl_loop_t *wrap_loop(void) {
    memset(&W, 0, sizeof W);
    W.inner = tl_test_netstack_by_name(tl_test_netstack_name(), &W.inner_config);
    CU_ASSERT_PTR_NOT_NULL_FATAL(W.inner);
    W.ops = *W.inner;
    W.ops.name = "wrap";
    W.ops.create = w_create;
    W.ops.connect = w_connect;
    W.ops.close = w_close;
    W.ops.setopt = w_setopt;
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL_FATAL(tl_loop_set_netstack(loop, &W.ops, NULL), 0);
    return loop;
}

static inline void wrap_rule(tl_sockaddr_t a, int mode, int error) {
    CU_ASSERT_FATAL(W.nrules < 8);
    W.rules[W.nrules].addr = a;
    W.rules[W.nrules].mode = mode;
    W.rules[W.nrules++].error = error;
}

/* An address nothing listens on (a closed server's port). */
static inline tl_sockaddr_t dead_addr(tl_loop_t *loop, const char *host) {
    srv_t s;
    CU_ASSERT_EQUAL_FATAL(srv_start(loop, &s, host), 0);
    tl_sockaddr_t a = s.addr;
    srv_stop(loop, &s);
    spin(loop, 2);
    return a;
}

static inline int have_ipv6(tl_loop_t *loop) {
    srv_t s;
    if (srv_start(loop, &s, "::1") != 0)
        return 0;
    srv_stop(loop, &s);
    return 1;
}


#endif
