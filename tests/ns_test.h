/*
 * The test netstacks (tests only, linked into tulip-tests):
 *
 * - the user-space stack (tests/ns_user.c): an in-process network with no
 *   syscall at all. Stream sockets connect to listeners of the same stack
 *   state (one loop), datagram sockets reach bound datagram sockets; bytes
 *   move between endpoints through buffer queues that a loop poller drives
 *   (run-to-completion: the poller says "busy" while it has work in
 *   flight). Each connection has a bounded receive window, so a peer that
 *   does not read stops the sender (flow control).
 * - the fault wrapper (tests/ns_fault.c): the kernel netstack behind a
 *   table that counts operations and injects the faults armed in a
 *   tl_test_fault_t (the config given to tl_loop_set_netstack), which the
 *   test may change at any time.
 */
#ifndef TL_NS_TEST_H
#define TL_NS_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "tulip.h"

/* ---- the user-space stack --------------------------------------------- */

/* Config of the user stack (may be NULL: defaults). */
typedef struct tl_test_user_config {
    size_t size;
    size_t window; /* receive window of a socket in bytes; 0: 256 KiB */
} tl_test_user_config_t;

#define TL_TEST_USER_WINDOW (256 * 1024)

const tl_netstack_ops_t *tl_test_netstack_user(void);

/* What a user stack state has done, for asserts. */
typedef struct tl_test_user_stats {
    long sockets;          /* sockets not yet closed */
    long lent;             /* received buffers handed out, not yet released */
    long polls;            /* poller runs */
    long busy_polls;       /* runs that answered "busy" */
    long order_violations; /* try_send called while a send() was pending */
    long dgram_drops;      /* datagrams dropped (receiver's queue full) */
} tl_test_user_stats_t;
void tl_test_user_stats(void *state, tl_test_user_stats_t *out);

/* ---- the fault wrapper -------------------------------------------------- */

/* Faults to inject and the operation counts. Numbers are 1-based counts
 * since the stack was created (arm the next one with e.g.
 * f.fail_accept_at = f.accepts + 1); 0 disarms. */
typedef struct tl_test_fault {
    size_t size;
    /* the Nth accepted connection is closed at once and reported to the
     * listener as accept_error (0: TL_EMFILE) */
    long fail_accept_at;
    int accept_error;
    /* the Nth send or try_send (one count for both) fails with send_error
     * (0: TL_ECONNRESET); the socket then fails every send with it and
     * drops what it receives */
    long fail_send_at;
    int send_error;
    /* the Nth connect never reaches the kernel; connected reports
     * connect_error (0: TL_ECONNREFUSED) from the loop */
    long fail_connect_at;
    int connect_error;
    /* stream try_send takes at most 1 byte */
    int short_writes;
    /* the next K try_sends take nothing (stream: 0, datagram: TL_EAGAIN) */
    long eagain_try_sends;
    /* the next K receive events are held back and delivered later, one a
     * loop iteration */
    long delay_reads;

    /* counts */
    long listens, accepts, connects, dgrams;
    long sends, try_sends, send_ops; /* send_ops = sends + try_sends */
    long try_send_bytes;
    long recvs, closes;
    long injected; /* faults injected */
    long live;     /* sockets of the wrapper not yet freed */
} tl_test_fault_t;

const tl_netstack_ops_t *tl_test_netstack_fault(void);

#endif
