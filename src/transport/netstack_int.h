/*
 * The transport module's per-loop state (kept in the loop's
 * TL__EXT_TRANSPORT slot): the netstack in use and its state, the kernel
 * netstack's state for pipes (which always use the kernel), and the live
 * transports and servers, closed when the loop closes.
 */
#ifndef TL_NETSTACK_INT_H
#define TL_NETSTACK_INT_H

#include "tulip/netstack.h"

typedef struct tl__netloop {
    const tl_netstack_ops_t *ops; /* the loop's netstack (kernel by default) */
    void *config;
    void *state;        /* ops->create's, made on first use */
    void *kernel_state; /* the kernel netstack's, when ops is not the kernel */

    /* The transport layer's own: called first when the loop closes, to
     * abort what is still open (before the stacks are destroyed). */
    void *transports;
    void (*close_transports)(tl_loop_t *loop, void *transports);
} tl__netloop_t;

/* The loop's record, made on first use (TL_ENOMEM, or the loop check's
 * error). Loop thread only. */
int tl__netloop(tl_loop_t *loop, tl__netloop_t **out);
/* The loop's netstack and its state, created now if needed. */
int tl__netstack(tl_loop_t *loop, const tl_netstack_ops_t **ops, void **state);
/* The kernel netstack's state on loop, whatever netstack the loop uses. */
int tl__netstack_kernel_state(tl_loop_t *loop, void **state);

#endif
