/*
 * Helpers of the TLS integration suites (test_tls_openssl.c,
 * test_tls_bad.c): openssl(1) as a child process (s_server / s_client)
 * with its stdin a pipe and its stdout + stderr one non-blocking pipe
 * collected while the loop runs; a free loopback port; contexts made from
 * the test certificates (tls_certs.h); a recording protocol; a server of
 * tulip's own on 127.0.0.1 port 0.
 *
 * Children are spawned with posix_spawn (not the loop's process API, so a
 * test's loop sees nothing of them) and always killed and reaped by
 * peer_stop.
 */
#ifndef TL_TLS_PEER_TEST_H
#define TL_TLS_PEER_TEST_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tl_test.h"
#include "tls_certs.h"
#include "tulip/tls.h"

extern char **environ;

/* ---- certificates and contexts ------------------------------------------ */

static inline const tl_test_certs_t *certs(void) {
    const tl_test_certs_t *c = tl_test_certs();
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return c;
}

/* A client context trusting ca (NULL: the test CA). */
static inline tl_tls_context_t *client_ctx(const char *ca) {
    tl_tls_context_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_new(TL_TLS_CLIENT, &c), 0);
    CU_ASSERT_EQUAL_FATAL(
        tl_tls_context_load_verify_file(c, ca ? ca : certs()->ca_cert), 0);
    return c;
}

/* A server context presenting cert/key (NULL: the localhost leaf). */
static inline tl_tls_context_t *server_ctx(const char *cert, const char *key) {
    tl_tls_context_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_tls_context_new(TL_TLS_SERVER, &c), 0);
    CU_ASSERT_EQUAL_FATAL(
        tl_tls_context_use_certificate_file(
            c, cert ? cert : certs()->server_cert, key ? key : certs()->server_key),
        0);
    return c;
}

/* ---- a recording protocol ------------------------------------------------ */

typedef struct prec {
    tl_transport_t *t;
    unsigned char data[65536];
    size_t len;
    int made, lost, eofs, lost_error;
    int echo;         /* write back what arrives */
    int write_on_made; /* send `greet` in connection_made */
    const char *greet;
} prec_t;

static inline void prec_made(tl_transport_t *t, void *ctx) {
    prec_t *r = ctx;
    r->t = t;
    r->made++;
    if (r->greet)
        CU_ASSERT_EQUAL(tl_transport_write(t, r->greet, strlen(r->greet)), 0);
}

static inline void prec_data(tl_transport_t *t, const void *d, size_t n,
                             void *ctx) {
    prec_t *r = ctx;
    size_t k = n < sizeof r->data - 1 - r->len ? n : sizeof r->data - 1 - r->len;
    memcpy(r->data + r->len, d, k);
    r->len += k;
    r->data[r->len] = 0;
    if (r->echo)
        CU_ASSERT_EQUAL(tl_transport_write(t, d, n), 0);
}

static inline int prec_eof(tl_transport_t *t, void *ctx) {
    (void)t;
    ((prec_t *)ctx)->eofs++;
    return 0;
}

static inline void prec_lost(tl_transport_t *t, int error, void *ctx) {
    (void)t;
    prec_t *r = ctx;
    r->lost++;
    r->lost_error = error;
}

static const tl_protocol_t prec_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = prec_made,
    .data_received = prec_data,
    .eof_received = prec_eof,
    .connection_lost = prec_lost,
};

/* A server factory handing out the records of an array in turn. */
typedef struct pfactory {
    prec_t *recs;
    int n, next, refuse;
    int echo;
    const char *greet;
} pfactory_t;

static inline int pfactory_fn(void *ctx, const tl_protocol_t **proto,
                              void **pctx) {
    pfactory_t *f = ctx;
    if (f->refuse || f->next >= f->n)
        return TL_ECONNREFUSED;
    prec_t *r = &f->recs[f->next++];
    r->echo = f->echo;
    r->greet = f->greet;
    *proto = &prec_proto;
    *pctx = r;
    return 0;
}

/* ---- running ------------------------------------------------------------- */

static inline uint64_t ms_from_now(int ms) {
    return tl_now_ns() + (uint64_t)ms * 1000000u;
}

/* Run until *flag is nonzero (at most ms): 1 if it became so. */
static inline int run_flag(tl_loop_t *loop, const int *flag, int ms) {
    uint64_t end = ms_from_now(ms);
    while (!*flag && tl_now_ns() < end)
        tl_loop_run_once(loop, 2000000);
    return *flag != 0;
}

static inline int run_fut(tl_loop_t *loop, tl_future_t *f, int ms) {
    uint64_t end = ms_from_now(ms);
    while (!tl_future_done(f) && tl_now_ns() < end)
        tl_loop_run_once(loop, 2000000);
    return tl_future_done(f) == 1;
}

static inline int run_len(tl_loop_t *loop, const prec_t *r, size_t len,
                          int ms) {
    uint64_t end = ms_from_now(ms);
    while (r->len < len && !r->lost && tl_now_ns() < end)
        tl_loop_run_once(loop, 2000000);
    return r->len >= len;
}

static inline void run_ms(tl_loop_t *loop, int ms) {
    uint64_t end = ms_from_now(ms);
    while (tl_now_ns() < end)
        tl_loop_run_once(loop, 1000000);
}

/* ---- addresses and servers --------------------------------------------- */

static inline tl_sockaddr_t loopback(int port) {
    tl_sockaddr_t a;
    CU_ASSERT_EQUAL(tl_sockaddr_from_ip("127.0.0.1", port, &a), 0);
    return a;
}

static inline int port_of(const tl_sockaddr_t *a) {
    char host[64];
    int port = 0;
    tl_sockaddr_to_string(a, host, sizeof host, &port);
    return port;
}

/* A port free on 127.0.0.1 right now (another process may take it before
 * the caller binds it: callers retry). */
static inline int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* tulip's server on 127.0.0.1, port 0 (tls: NULL for plain TCP). */
static inline tl_server_t *tulip_server(tl_loop_t *loop, pfactory_t *f,
                                        const tl_tls_options_t *tls,
                                        tl_sockaddr_t *bound) {
    tl_sockaddr_t a = loopback(0);
    tl_server_options_t o = {.size = sizeof o, .tls = tls};
    tl_server_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_server_addrs(loop, pfactory_fn, f, &a, 1, &o, &s), 0);
    CU_ASSERT_EQUAL_FATAL(tl_server_sockets(s, bound, 1), 1);
    return s;
}

/* ---- openssl children --------------------------------------------------- */

typedef struct peer {
    pid_t pid;
    int in;  /* its stdin (our write end), -1 once closed */
    int out; /* its stdout + stderr (non-blocking read end) */
    char buf[32768];
    size_t len;
    int eof;
} peer_t;

/* Spawn argv with pipes. 0, or -errno. */
static inline int peer_spawn(peer_t *p, char *const argv[]) {
    memset(p, 0, sizeof *p);
    p->in = p->out = -1;
    int pin[2], pout[2];
    if (pipe2(pin, O_CLOEXEC))
        return -errno;
    if (pipe2(pout, O_CLOEXEC)) {
        close(pin[0]);
        close(pin[1]);
        return -errno;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 2);
    int rc = posix_spawnp(&p->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pin[0]);
    close(pout[1]);
    if (rc) {
        close(pin[1]);
        close(pout[0]);
        return -rc;
    }
    p->in = pin[1];
    p->out = pout[0];
    fcntl(p->out, F_SETFL, fcntl(p->out, F_GETFL) | O_NONBLOCK);
    return 0;
}

/* Take what the child wrote so far. */
static inline void peer_poll(peer_t *p) {
    while (!p->eof && p->len < sizeof p->buf - 1) {
        ssize_t n = read(p->out, p->buf + p->len, sizeof p->buf - 1 - p->len);
        if (n > 0) {
            p->len += (size_t)n;
            p->buf[p->len] = 0;
        } else if (n == 0) {
            p->eof = 1;
        } else {
            break; /* EAGAIN (or an error: treated alike) */
        }
    }
}

/* Run the loop (or, loop NULL, just wait) until the child's output holds
 * `what` (1), or it ended without it or ms passed (0). */
static inline int peer_wait_for(peer_t *p, tl_loop_t *loop, const char *what,
                                int ms) {
    uint64_t end = ms_from_now(ms);
    for (;;) {
        peer_poll(p);
        if (strstr(p->buf, what))
            return 1;
        if (p->eof || tl_now_ns() >= end)
            return 0;
        if (loop) {
            tl_loop_run_once(loop, 1000000);
        } else {
            struct pollfd pf = {.fd = p->out, .events = POLLIN};
            poll(&pf, 1, 2);
        }
    }
}

static inline void peer_write(peer_t *p, const char *s) {
    if (p->in >= 0)
        CU_ASSERT_EQUAL(write(p->in, s, strlen(s)), (ssize_t)strlen(s));
}

static inline void peer_close_stdin(peer_t *p) {
    if (p->in >= 0)
        close(p->in);
    p->in = -1;
}

/* Kill (if needed) and reap; the pipes are closed. */
static inline void peer_stop(peer_t *p) {
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        int st;
        while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
            ;
        p->pid = 0;
    }
    peer_close_stdin(p);
    if (p->out >= 0)
        close(p->out);
    p->out = -1;
}

/* `openssl s_server` on 127.0.0.1 with the localhost leaf plus the extra
 * arguments (NULL-terminated, at most 12), ready to accept: 1 and *port, or
 * 0 (output printed). A port taken meanwhile by someone else: retried. */
static inline int s_server_start(peer_t *p, int *port, const char *const *extra) {
    const tl_test_certs_t *c = certs();
    for (int attempt = 0; attempt < 5; attempt++) {
        int pt = free_port();
        char acc[32];
        snprintf(acc, sizeof acc, "127.0.0.1:%d", pt);
        const char *argv[32] = {"openssl", "s_server", "-accept", acc,
                                "-cert", c->server_cert, "-key", c->server_key,
                                "-naccept", "1"};
        int n = 10;
        for (int i = 0; extra && extra[i] && n < 30; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;
        if (peer_spawn(p, (char *const *)argv) != 0)
            return 0;
        if (peer_wait_for(p, NULL, "ACCEPT", 3000)) {
            *port = pt;
            return 1;
        }
        int inuse = strstr(p->buf, "in use") != NULL;
        if (!inuse)
            fprintf(stderr, "s_server did not start:\n%s\n", p->buf);
        peer_stop(p);
        if (!inuse)
            return 0;
    }
    return 0;
}

#endif
