/*
 * Helpers of the datagram suites (test_udp.c: any netstack;
 * test_udp_kernel.c: the kernel's): addresses, a recording datagram
 * protocol, and running a loop until something happened.
 */
#ifndef TL_UDP_TEST_H
#define TL_UDP_TEST_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ns_test.h"
#include "tl_test.h"

/* ---- addresses -------------------------------------------------------- */

static inline tl_sockaddr_t ip4(const char *ip, int port) {
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_port = htons((uint16_t)port);
    CU_ASSERT_EQUAL(inet_pton(AF_INET, ip, &in.sin_addr), 1);
    memcpy(a.u.bytes, &in, sizeof in);
    a.len = sizeof in;
    return a;
}

static inline tl_sockaddr_t ip6(const char *ip, int port) {
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in6 in;
    memset(&in, 0, sizeof in);
    in.sin6_family = AF_INET6;
    in.sin6_port = htons((uint16_t)port);
    CU_ASSERT_EQUAL(inet_pton(AF_INET6, ip, &in.sin6_addr), 1);
    memcpy(a.u.bytes, &in, sizeof in);
    a.len = sizeof in;
    return a;
}

static inline int family_of(const tl_sockaddr_t *a) {
    sa_family_t f;
    memcpy(&f, a->u.bytes, sizeof f);
    return f;
}

static inline int port_of(const tl_sockaddr_t *a) {
    if (family_of(a) == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, a->u.bytes, sizeof in);
        return ntohs(in.sin_port);
    }
    struct sockaddr_in6 in;
    memcpy(&in, a->u.bytes, sizeof in);
    return ntohs(in.sin6_port);
}

/* Same family, address and port. */
static inline int same_addr(const tl_sockaddr_t *a, const tl_sockaddr_t *b) {
    if (family_of(a) != family_of(b) || port_of(a) != port_of(b))
        return 0;
    if (family_of(a) == AF_INET) {
        struct sockaddr_in x, y;
        memcpy(&x, a->u.bytes, sizeof x);
        memcpy(&y, b->u.bytes, sizeof y);
        return x.sin_addr.s_addr == y.sin_addr.s_addr;
    }
    struct sockaddr_in6 x, y;
    memcpy(&x, a->u.bytes, sizeof x);
    memcpy(&y, b->u.bytes, sizeof y);
    return memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
}

/* ---- a recording protocol --------------------------------------------- */

typedef struct rec {
    tl_transport_t *t;
    char log[64]; /* M made, D datagram, E error, P pause, R resume, L lost */
    int nlog;
    int made, dgrams, errors, lost, pauses, resumes;
    int paused; /* pause_writing in force */
    int last_error, lost_error;
    size_t bytes, last_len;
    unsigned char last[2048];
    tl_sockaddr_t last_from;
    int lost_before_made;
    /* behaviour */
    int echo;          /* send each datagram back to its sender */
    int close_on_dgram, abort_on_dgram;
    int pause_on_made; /* pause_reading inside connection_made */
    int oom_ok;        /* the echo may fail with TL_ENOMEM */
    int unref_on_lost; /* drop a reference taken by the test */
} rec_t;

static inline void logc(rec_t *r, char c) {
    if (r->nlog < (int)sizeof r->log - 1)
        r->log[r->nlog++] = c;
}

static inline void on_made(tl_transport_t *t, void *ctx) {
    rec_t *r = ctx;
    r->t = t;
    r->made++;
    logc(r, 'M');
    if (r->pause_on_made)
        CU_ASSERT_EQUAL(tl_transport_pause_reading(t), 0);
}

static inline void on_dgram(tl_transport_t *t, const void *data, size_t len,
                     const tl_sockaddr_t *from, void *ctx) {
    rec_t *r = ctx;
    r->dgrams++;
    if (r->nlog < 8 || r->log[r->nlog - 1] != 'D')
        logc(r, 'D');
    r->bytes += len;
    r->last_len = len;
    if (len <= sizeof r->last && len)
        memcpy(r->last, data, len);
    CU_ASSERT_PTR_NOT_NULL(from);
    if (from)
        r->last_from = *from;
    if (r->echo) {
        int rc = tl_transport_sendto(t, data, len, from);
        CU_ASSERT(rc == 0 || (r->oom_ok && rc == TL_ENOMEM));
    }
    if (r->close_on_dgram)
        CU_ASSERT_EQUAL(tl_transport_close(t), 0);
    if (r->abort_on_dgram)
        CU_ASSERT_EQUAL(tl_transport_abort(t), 0);
}

static inline void on_error(tl_transport_t *t, int error, void *ctx) {
    (void)t;
    rec_t *r = ctx;
    r->errors++;
    r->last_error = error;
    logc(r, 'E');
}

static inline void on_pause(tl_transport_t *t, void *ctx) {
    (void)t;
    rec_t *r = ctx;
    CU_ASSERT_FALSE(r->paused);
    r->paused = 1;
    r->pauses++;
    logc(r, 'P');
}

static inline void on_resume(tl_transport_t *t, void *ctx) {
    (void)t;
    rec_t *r = ctx;
    CU_ASSERT_TRUE(r->paused);
    r->paused = 0;
    r->resumes++;
    logc(r, 'R');
}

static inline void on_lost(tl_transport_t *t, int error, void *ctx) {
    rec_t *r = ctx;
    if (!r->made)
        r->lost_before_made = 1;
    r->lost++;
    r->lost_error = error;
    logc(r, 'L');
    if (r->unref_on_lost)
        CU_ASSERT_EQUAL(tl_transport_unref(t), 0);
}

static const tl_protocol_t rec_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = on_made,
    .connection_lost = on_lost,
    .pause_writing = on_pause,
    .resume_writing = on_resume,
    .datagram_received = on_dgram,
    .error_received = on_error,
};

/* ---- helpers ---------------------------------------------------------- */

/* Run the loop until *counter reaches target (1 when it did). */
static inline int run_until(tl_loop_t *loop, const int *counter, int target) {
    for (int i = 0; i < 2000 && *counter < target; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 2000000), 0);
    return *counter >= target;
}

/* A few iterations, for "nothing more happens". */
static inline void spin(tl_loop_t *loop, int n) {
    for (int i = 0; i < n; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1000000), 0);
}

/* An endpoint on 127.0.0.1, port picked by the stack; unconnected. */
static inline tl_transport_t *endpoint(tl_loop_t *loop, rec_t *r) {
    tl_sockaddr_t any = ip4("127.0.0.1", 0);
    tl_transport_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_datagram_endpoint(loop, &rec_proto, r, &any, NULL, NULL, &t),
        0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

static inline tl_sockaddr_t sockname(tl_transport_t *t) {
    tl_sockaddr_t a;
    memset(&a, 0, sizeof a);
    CU_ASSERT_EQUAL(tl_transport_get_sockname(t, &a), 0);
    return a;
}

/* Close t and run until its connection_lost ran. */
static inline void close_and_wait(tl_loop_t *loop, tl_transport_t *t, rec_t *r) {
    if (!r->lost) {
        CU_ASSERT_EQUAL(tl_transport_close(t), 0);
        CU_ASSERT_TRUE(run_until(loop, &r->lost, 1));
    }
    CU_ASSERT_EQUAL(r->lost, 1);
}


#endif
