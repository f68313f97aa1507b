/*
 * Helpers shared by the netstack suites (test_netstack.c, which defines
 * them, and test_netstack_kernel.c): a recording handler for the sockets
 * of a netstack, send requests that record their completion, addresses,
 * and running a loop until something happened.
 */
#ifndef TL_NETSTACK_TEST_H
#define TL_NETSTACK_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "tl_test.h"

/* What one socket's handler saw. */
typedef struct nt_peer {
    const tl_netstack_ops_t *ops;
    tl_ns_sock_t *s;
    int hold;          /* keep received buffers (held[]) instead of releasing */
    int close_in_recv; /* close s from inside the first recv callback */
    int stop_in_recv;  /* read_stop from inside each recv callback */
    int recvs, eofs, errs, last_err, after_eof;
    int connected, conn_status;
    unsigned char *data; /* everything received, in order (malloc) */
    size_t len, cap;
    tl_ns_buf_t *held[64];
    int nheld;
    tl_sockaddr_t from; /* datagrams: the last sender */
    tl_ns_sock_t *acc[64];
    int nacc, acc_errs, acc_last_err;
} nt_peer_t;

extern const tl_ns_handler_t nt_handler;
void nt_peer_init(nt_peer_t *p, const tl_netstack_ops_t *ops);
/* Release held buffers and free data (does not close s). */
void nt_peer_free(nt_peer_t *p);

/* A send that records its completion. */
typedef struct nt_send {
    tl_ns_send_t req;
    tl_iovec_t iov[4];
    int done, status, order;
    int in_call; /* done ran while the flag nt_in_call was set */
} nt_send_t;
extern int nt_in_call; /* set around a consumer call to catch re-entrancy */
void nt_send_init(nt_send_t *x, const void *data, size_t len);
/* done callbacks run so far, in every test (order counter). */
extern int nt_done_seq;

/* 127.0.0.1:port */
tl_sockaddr_t nt_loopback(uint16_t port);
uint16_t nt_port(const tl_sockaddr_t *a);

/* Run the loop (1 ms steps) until *flag >= want, at most ~3 s. Returns
 * 1 when reached. */
int nt_run_until(tl_loop_t *loop, const int *flag, int want);
/* Run n iterations without waiting long (for "nothing more happens"). */
void nt_spin(tl_loop_t *loop, int n);

/* A connected pair on loop's netstack: listener lp, client cp, server
 * side sp (handler set, not reading). Asserts on failure. */
void nt_pair(tl_loop_t *loop, nt_peer_t *lp, nt_peer_t *cp, nt_peer_t *sp);
void nt_close(nt_peer_t *p, int abort);

/* A loop on the kernel netstack (kernel-only suites). */
#define KSETUP()                                                              \
    tl_loop_t *loop = tl_test_loop();                                         \
    const tl_netstack_ops_t *ops = tl_netstack_kernel();                      \
    void *st;                                                                 \
    CU_ASSERT_EQUAL_FATAL(tl_loop_set_netstack(loop, ops, NULL), 0);          \
    CU_ASSERT_EQUAL_FATAL(tl_loop_get_netstack(loop, NULL, &st), 0)

/* A pattern byte for offset i, to check order in bulk transfers. */
static inline unsigned char nt_pat(size_t i) {
    return (unsigned char)((i * 7 + (i >> 8)) & 0xff);
}

#endif
