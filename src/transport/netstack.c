/*
 * The netstack registry: which netstack a loop's transports use, and the
 * per-loop record of the transport module (the loop's TL__EXT_TRANSPORT
 * slot, see netstack_int.h).
 *
 * The record is made on first use. The stack's state is made lazily too,
 * when the first transport (or tl_loop_get_netstack) needs it; from then on
 * the choice is fixed (TL_EBUSY), because sockets of one stack cannot move
 * to another. When the loop closes, the transport layer aborts what is
 * still open first (close_transports), then the stacks are destroyed: the
 * loop's own one, then the kernel's (a wrapping stack may use the kernel
 * below it until its destroy).
 */
#include "../core/alloc.h"
#include "../loop/loop_int.h"
#include "netstack_int.h"

static void netloop_close(tl_loop_t *loop, void *data) {
    tl__netloop_t *nl = data;
    if (nl->close_transports)
        nl->close_transports(loop, nl->transports);
    if (nl->state)
        nl->ops->destroy(nl->state);
    if (nl->kernel_state)
        tl_netstack_kernel()->destroy(nl->kernel_state);
    tl__free(nl);
}

int tl__netloop(tl_loop_t *loop, tl__netloop_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    tl__netloop_t *nl = loop->ext[TL__EXT_TRANSPORT].data;
    if (nl == NULL) {
        if ((nl = tl__calloc(1, sizeof(*nl))) == NULL)
            return TL_ENOMEM;
        nl->ops = tl_netstack_kernel();
        loop->ext[TL__EXT_TRANSPORT].data = nl;
        loop->ext[TL__EXT_TRANSPORT].close = netloop_close;
    }
    *out = nl;
    return 0;
}

int tl__netstack(tl_loop_t *loop, const tl_netstack_ops_t **ops, void **state) {
    tl__netloop_t *nl;
    int rc = tl__netloop(loop, &nl);
    if (rc)
        return rc;
    if (nl->state == NULL) {
        void *s = NULL;
        if ((rc = nl->ops->create(loop, nl->config, &s)) != 0)
            return rc;
        nl->state = s;
    }
    if (ops)
        *ops = nl->ops;
    if (state)
        *state = nl->state;
    return 0;
}

int tl__netstack_kernel_state(tl_loop_t *loop, void **state) {
    tl__netloop_t *nl;
    int rc = tl__netloop(loop, &nl);
    if (rc)
        return rc;
    const tl_netstack_ops_t *k = tl_netstack_kernel();
    if (nl->ops == k)
        return tl__netstack(loop, NULL, state);
    if (nl->kernel_state == NULL) {
        void *s = NULL;
        if ((rc = k->create(loop, NULL, &s)) != 0)
            return rc;
        nl->kernel_state = s;
    }
    *state = nl->kernel_state;
    return 0;
}

/* Every operation a transport calls without checking for NULL. */
static int ops_valid(const tl_netstack_ops_t *o) {
    return o->size >= sizeof(tl_netstack_ops_t) && o->create && o->destroy &&
           o->listen && o->accept_start && o->accept_stop && o->connect &&
           o->open_dgram && o->set_handler && o->read_start && o->read_stop &&
           o->release && o->send && o->shutdown_write && o->close &&
           o->getaddr && o->setopt;
}

int tl_loop_set_netstack(tl_loop_t *loop, const tl_netstack_ops_t *ops,
                         void *config) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (ops == NULL) {
        ops = tl_netstack_kernel();
        config = NULL;
    }
    if (!ops_valid(ops))
        return TL_EINVAL;
    tl__netloop_t *nl = loop->ext[TL__EXT_TRANSPORT].data;
    if (nl && (nl->state || nl->kernel_state))
        return TL_EBUSY;
    if (nl == NULL && (rc = tl__netloop(loop, &nl)) != 0)
        return rc;
    nl->ops = ops;
    nl->config = config;
    return 0;
}

int tl_loop_get_netstack(tl_loop_t *loop, const tl_netstack_ops_t **ops,
                         void **state) {
    return tl__netstack(loop, ops, state);
}
