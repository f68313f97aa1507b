/*
 * Helpers of the transport suites (test_transport*.c, test_server.c,
 * test_pipe.c): a recording protocol, running a loop until something
 * happened, and a connected pair of stream transports made through the
 * loop's netstack (a server of tl_create_server_addrs on one side, a
 * netstack connect wrapped by tl__stream_transport_new on the other), so
 * the suites run on any netstack and need no connect code of their own.
 */
#ifndef TL_TRANSPORT_TEST_H
#define TL_TRANSPORT_TEST_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tl_test.h"
#include "transport/transport_int.h"

/* ---- a recording protocol --------------------------------------------- */

typedef struct rec {
    tl_transport_t *t;
    char events[64]; /* M made, D data, E eof, L lost, P pause, R resume */
    size_t nevents;
    unsigned char *data; /* plain malloc: the test's own memory */
    size_t len, cap;
    int lost_error;
    int eof_keep;     /* eof_received's return */
    int echo;         /* write back what arrives */
    int close_on_eof; /* close the transport in eof_received */
    int paused;       /* pause_writing seen, not resumed */
    int stop_on_pause; /* a writer that respects flow control */
    int made, lost, eofs, pauses, resumes;
    /* buffered protocol */
    unsigned char bbuf[7]; /* small on purpose: many get_buffer calls */
    int buffered_err;
} rec_t;

static inline void rec_event(rec_t *r, char c) {
    if (r->nevents < sizeof r->events - 1)
        r->events[r->nevents++] = c;
}

static inline void rec_add(rec_t *r, const void *d, size_t n) {
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + n)
            cap *= 2;
        r->data = realloc(r->data, cap);
        r->cap = cap;
    }
    memcpy(r->data + r->len, d, n);
    r->len += n;
}

static inline void rec_made(tl_transport_t *t, void *ctx) {
    rec_t *r = ctx;
    r->t = t;
    r->made++;
    rec_event(r, 'M');
}

static inline void rec_data(tl_transport_t *t, const void *d, size_t n,
                            void *ctx) {
    rec_t *r = ctx;
    if (r->nevents == 0 || r->events[r->nevents - 1] != 'D')
        rec_event(r, 'D');
    rec_add(r, d, n);
    if (r->echo)
        CU_ASSERT_EQUAL(tl_transport_write(t, d, n), 0);
}

static inline int rec_eof(tl_transport_t *t, void *ctx) {
    rec_t *r = ctx;
    r->eofs++;
    rec_event(r, 'E');
    if (r->close_on_eof)
        tl_transport_close(t);
    return r->eof_keep;
}

static inline void rec_lost(tl_transport_t *t, int error, void *ctx) {
    rec_t *r = ctx;
    (void)t;
    r->lost++;
    r->lost_error = error;
    rec_event(r, 'L');
}

static inline void rec_pause(tl_transport_t *t, void *ctx) {
    rec_t *r = ctx;
    (void)t;
    r->pauses++;
    CU_ASSERT_FALSE(r->paused);
    r->paused = 1;
    rec_event(r, 'P');
}

static inline void rec_resume(tl_transport_t *t, void *ctx) {
    rec_t *r = ctx;
    (void)t;
    r->resumes++;
    CU_ASSERT_TRUE(r->paused);
    r->paused = 0;
    rec_event(r, 'R');
}

static inline int rec_get_buffer(tl_transport_t *t, size_t hint, void **buf,
                                 size_t *len, void *ctx) {
    rec_t *r = ctx;
    (void)t;
    (void)hint;
    if (r->buffered_err)
        return r->buffered_err;
    *buf = r->bbuf;
    *len = sizeof r->bbuf;
    return 0;
}

static inline void rec_buffer_updated(tl_transport_t *t, size_t n,
                                      void *ctx) {
    rec_t *r = ctx;
    (void)t;
    if (r->nevents == 0 || r->events[r->nevents - 1] != 'D')
        rec_event(r, 'D');
    rec_add(r, r->bbuf, n);
}

static const tl_protocol_t rec_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = rec_made,
    .data_received = rec_data,
    .eof_received = rec_eof,
    .connection_lost = rec_lost,
    .pause_writing = rec_pause,
    .resume_writing = rec_resume,
};

static const tl_protocol_t rec_buffered_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = rec_made,
    .eof_received = rec_eof,
    .connection_lost = rec_lost,
    .get_buffer = rec_get_buffer,
    .buffer_updated = rec_buffer_updated,
};

static inline void rec_free(rec_t *r) {
    free(r->data);
    memset(r, 0, sizeof *r);
}

static inline int rec_has(const rec_t *r, const char *s) {
    return strstr(r->events, s) != NULL;
}

/* ---- running ----------------------------------------------------------- */

/* Run until *flag becomes nonzero (at most ~5 s): 1 if it did. */
static inline int run_until(tl_loop_t *loop, const int *flag) {
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (!*flag && tl_now_ns() < end)
        tl_loop_run_once(loop, 10000000);
    return *flag != 0;
}

static inline int run_until_len(tl_loop_t *loop, const rec_t *r, size_t len) {
    uint64_t end = tl_now_ns() + 5000000000ull;
    while (r->len < len && !r->lost && tl_now_ns() < end)
        tl_loop_run_once(loop, 10000000);
    return r->len >= len;
}

/* A few iterations, for "nothing happens" checks. */
static inline void run_some(tl_loop_t *loop, int n) {
    for (int i = 0; i < n; i++)
        tl_loop_run_once(loop, 1000000);
}

/* ---- filling a transport's buffer ---------------------------------------- */

/* Lock t's kernel socket buffers (SO_SNDBUF 64 KiB, SO_RCVBUF 256 KiB; the
 * kernel doubles both), so that what the kernel can hold of a stream, at
 * most about 640 KiB, no longer depends on its defaults and autotuning
 * (unlocked it absorbs megabytes, and more as time passes). The receive
 * side stays a few segments wide: a window under one loopback segment
 * (64 KiB) stalls the flow on zero-window probes. A stack without
 * descriptors (the user-space one) has a fixed window already. */
#define KERNEL_HOLDS_AT_MOST ((size_t)1 << 20)
static inline void small_kernel_buffers(tl_transport_t *t) {
    tl_fd_t fd;
    if (tl_transport_get_fileno(t, &fd) == 0) {
        int snd = 64 * 1024, rcv = 256 * 1024;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    }
}

/* Write chunk[0..len) again and again, without running the loop, until t
 * holds at least min bytes the network did not take (its peer must not be
 * reading). Returns the bytes written, 0 if t never got there. Without the
 * loop running nothing leaves t's buffer meanwhile, so when this returns
 * t has paused writing (for min above the high-water mark), whatever the
 * kernel's buffer sizes. */
static inline size_t write_until_buffered(tl_transport_t *t, const void *chunk,
                                          size_t len, size_t min) {
    size_t total = 0;
    for (int i = 0; i < 1024 && tl_transport_get_write_buffer_size(t) < min;
         i++) {
        if (tl_transport_write(t, chunk, len) != 0)
            return 0;
        total += len;
    }
    return tl_transport_get_write_buffer_size(t) >= min ? total : 0;
}

/* Whether data[0..n) is chunk[0..len) repeated. */
static inline int is_repeated(const unsigned char *data, size_t n,
                              const unsigned char *chunk, size_t len) {
    for (size_t i = 0; i < n; i += len)
        if (memcmp(data + i, chunk, n - i < len ? n - i : len) != 0)
            return 0;
    return 1;
}

/* ---- addresses ----------------------------------------------------------- */

static inline tl_sockaddr_t addr_ip(const char *ip, int port) {
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.u;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
        a.len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a.u;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, ip, &s4->sin_addr);
        a.len = sizeof *s4;
    }
    return a;
}

static inline int addr_port_of(const tl_sockaddr_t *a) {
    const struct sockaddr *sa = (const struct sockaddr *)&a->u;
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -1;
}

/* ---- a factory handing out recs ----------------------------------------- */

typedef struct factory {
    rec_t *recs;
    int n, used;
    int refuse; /* refuse this many first */
    int refused;
    const tl_protocol_t *proto;
} factory_t;

static inline int factory_fn(void *ctx, const tl_protocol_t **proto,
                             void **pctx) {
    factory_t *f = ctx;
    if (f->refused < f->refuse) {
        f->refused++;
        return TL_ECONNREFUSED;
    }
    if (f->used >= f->n)
        return TL_ENOMEM;
    *proto = f->proto ? f->proto : &rec_proto;
    *pctx = &f->recs[f->used++];
    return 0;
}

/* ---- connecting through the netstack ------------------------------------- */

typedef struct dial {
    tl_loop_t *loop;
    const tl_netstack_ops_t *ops;
    tl_ns_sock_t *sock;
    const tl_protocol_t *proto;
    rec_t *rec;
    tl_transport_t *t;
    int done, error;
} dial_t;

static inline void dial_connected(void *ctx, int status) {
    dial_t *d = ctx;
    d->done = 1;
    d->error = status;
    if (status) {
        d->ops->close(d->sock, 1);
        return;
    }
    d->error = tl__stream_transport_new(d->loop, d->ops, d->sock, d->proto,
                                        d->rec, "tcp", &d->t);
}

static const tl_ns_handler_t dial_handler = {.connected = dial_connected};

/* Connect to addr with the loop's netstack; the client transport's
 * protocol is proto with rec as ctx. 0 or the error. */
static inline int dial(tl_loop_t *loop, const tl_sockaddr_t *addr,
                       const tl_protocol_t *proto, rec_t *rec,
                       tl_transport_t **out) {
    dial_t d = {.loop = loop, .proto = proto, .rec = rec};
    void *state;
    int rc = tl_loop_get_netstack(loop, &d.ops, &state);
    if (rc)
        return rc;
    rc = d.ops->connect(state, addr, NULL, &dial_handler, &d, &d.sock);
    if (rc)
        return rc;
    run_until(loop, &d.done);
    if (!d.done) {
        d.ops->close(d.sock, 1);
        return TL_ETIMEDOUT;
    }
    if (d.error == 0)
        *out = d.t;
    return d.error;
}

/* A connected pair: a server on 127.0.0.1 whose first connection gets
 * srec, and a client with crec; both made. The server is left open. */
typedef struct pair {
    tl_server_t *server;
    factory_t f;
    tl_transport_t *st, *ct;
} pair_t;

static inline void pair_open(tl_loop_t *loop, pair_t *p, rec_t *srec,
                             rec_t *crec, const tl_protocol_t *sproto,
                             const tl_protocol_t *cproto) {
    memset(p, 0, sizeof *p);
    p->f.recs = srec;
    p->f.n = 1;
    p->f.proto = sproto;
    tl_sockaddr_t a = addr_ip("127.0.0.1", 0);
    CU_ASSERT_EQUAL_FATAL(tl_create_server_addrs(loop, factory_fn, &p->f, &a,
                                                 1, NULL, &p->server), 0);
    tl_sockaddr_t bound;
    CU_ASSERT_EQUAL_FATAL(tl_server_sockets(p->server, &bound, 1), 1);
    CU_ASSERT_EQUAL_FATAL(dial(loop, &bound, cproto ? cproto : &rec_proto,
                               crec, &p->ct), 0);
    CU_ASSERT_TRUE_FATAL(run_until(loop, &crec->made));
    CU_ASSERT_TRUE_FATAL(run_until(loop, &srec->made));
    p->st = srec->t;
}

#endif
