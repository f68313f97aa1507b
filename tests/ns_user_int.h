/*
 * The user-space test netstack's insides, shared by tests/ns_user.c (the
 * operations) and tests/ns_user_io.c (the poller and datagrams).
 */
#ifndef TL_NS_USER_INT_H
#define TL_NS_USER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "tulip.h"

/* Ports the stack hands out (the kernel's ephemeral range). */
#define US_PORT_FIRST 32768
#define US_PORT_LAST 60999
/* Segments of a receive queue: at least MIN bytes of room (small sends
 * share one), at most MAX bytes each (the 64 KiB a NIC-sized chain gives). */
#define US_SEG_MIN 4096
#define US_SEG_MAX 65536
#define US_SEG_MAGIC 0x75736567u /* "useg" */
/* The largest datagram (IPv4 UDP payload). */
#define US_DGRAM_MAX 65507

/* An address, parsed (family is the platform's AF_*). */
typedef struct us_addr {
    int family;
    uint16_t port;
    unsigned char ip[16];
    size_t pathlen;
    char path[108];
} us_addr_t;

typedef struct us_state us_state_t;

/* A piece of a receive queue; lent to the consumer as &buf. */
typedef struct us_seg {
    tl_ns_buf_t buf;
    struct us_seg *next;
    us_state_t *st;
    uint32_t magic;
    size_t cap, len;
    tl_sockaddr_t from; /* datagrams: the sender */
    unsigned char data[];
} us_seg_t;

typedef struct us_sock {
    us_state_t *st;
    struct us_sock *next, *prev; /* the state's list */
    int kind;                    /* TL_NS_STREAM, _LISTENER, _DGRAM */
    tl_ns_handler_t h;
    void *ctx;
    us_addr_t la, ra; /* local; remote (streams, connected datagrams) */
    unsigned bound : 1, reuse_port : 1, closed : 1, reading : 1,
        accepting : 1, connecting : 1, connected : 1, wr_shut : 1,
        fin_sent : 1, eof_in : 1, eof_done : 1, err_done : 1;
    int err;    /* to report through recv once the data is out (final) */
    int tx_err; /* what sends get from now on */

    /* receive queue (bytes not yet handed out) and its window */
    us_seg_t *rx_head, *rx_tail;
    size_t rx_bytes, window;
    /* queued sends (req->priv: next, iov index, offset) */
    tl_ns_send_t *tx_head, *tx_tail;

    /* streams: the other end, while both are open */
    struct us_sock *peer;
    /* listeners: connections made, not yet accepted */
    struct us_sock *acc_head;
    int nacc, backlog;
    /* a connection on a listener's backlog */
    struct us_sock *listener, *acc_next;

    /* datagram sockets: ICMP-style errors to report */
    int dg_errs;
} us_sock_t;

struct us_state {
    tl_loop_t *loop;
    us_sock_t *socks, *tail;
    size_t window;
    unsigned next_port;
    int dead; /* closed sockets wait on the list */
    long live, lent, polls, busy_polls, order_violations, dgram_drops;
};

/* A queued send's place: req->priv holds the next request, the iov index
 * and the offset in that iov. */
#define US_NEXT(r) ((tl_ns_send_t *)(r)->priv[0])
#define US_IDX(r) ((size_t)(uintptr_t)(r)->priv[1])
#define US_OFF(r) ((size_t)(uintptr_t)(r)->priv[2])
#define US_SET(r, next, idx, off)                                           \
    ((r)->priv[0] = (next), (r)->priv[1] = (void *)(uintptr_t)(idx),       \
     (r)->priv[2] = (void *)(uintptr_t)(off))

int tl__us_addr_parse(const tl_sockaddr_t *sa, us_addr_t *out);
void tl__us_addr_format(const us_addr_t *a, tl_sockaddr_t *out);
void tl__us_close(us_sock_t *s, int abort);
/* Addresses: does a socket bound to `bound` get what is sent to `to`? */
int tl__us_addr_reaches(const us_addr_t *bound, const us_addr_t *to);
int tl__us_addr_eq(const us_addr_t *a, const us_addr_t *b);
int tl__us_ip_wild(const us_addr_t *a);
us_sock_t *tl__us_sock_new(us_state_t *st, int kind,
                           const tl_ns_handler_t *h, void *ctx);
void tl__us_reap(us_state_t *st);
us_seg_t *tl__us_seg_new(us_state_t *st, size_t cap);
void tl__us_rx_append(us_sock_t *r, us_seg_t *g);
size_t tl__us_stream_copy(us_sock_t *r, const tl_iovec_t *iov, size_t n,
                          size_t *idx, size_t *off, size_t max);
size_t tl__us_iov_total(const tl_iovec_t *iov, size_t n);
/* s fails: err goes to recv after the queued data, tx_err to sends. */
void tl__us_fail(us_sock_t *s, int err, int tx_err);
int tl__us_poll(tl_loop_t *loop, void *ctx);
/* Datagram sends: deliver now (try_send: the datagram's length or an
 * error); check a send request before queueing it. */
int64_t tl__us_dgram_send(us_sock_t *s, const tl_iovec_t *iov, size_t n,
                          const tl_sockaddr_t *to);
int tl__us_dgram_check(us_sock_t *s, const tl_ns_send_t *req);

#endif
