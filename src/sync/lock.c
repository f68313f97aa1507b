/*
 * asyncio.Lock. A release with waiters hands the lock straight to the oldest
 * one (the lock stays locked, its future is done), so ownership never
 * passes through an unlocked state that a newcomer or a cancellation could
 * steal or lose.
 */
#include "../core/alloc.h"
#include "sync_int.h"

int tl_lock_new(tl_loop_t *loop, tl_lock_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    tl_lock_t *l = tl__calloc(1, sizeof(*l));
    if (l == NULL)
        return TL_ENOMEM;
    l->loop = loop;
    tl_loop_ref(loop);
    *out = l;
    return 0;
}

int tl_lock_free(tl_lock_t *l) {
    int rc = tl__sync_check_thread(l, l ? l->loop : NULL);
    if (rc)
        return rc;
    tl__waitq_cancel_all(&l->q);
    tl_loop_unref(l->loop);
    tl__free(l);
    return 0;
}

int tl__lock_try_acquire(tl_lock_t *l) {
    int rc = tl__sync_check(l, l ? l->loop : NULL);
    if (rc)
        return rc;
    if (l->locked)
        return TL_EAGAIN;
    l->locked = 1;
    return 0;
}

int tl_lock_acquire_future(tl_lock_t *l, tl_future_t **out) {
    int rc = tl__sync_check(l, l ? l->loop : NULL);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (l->locked)
        return tl__waitq_add(&l->q, l->loop, NULL, out);
    if ((rc = tl__future_new_done(l->loop, NULL, out)) == 0)
        l->locked = 1;
    return rc;
}

int tl_lock_release(tl_lock_t *l) {
    int rc = tl__sync_check(l, l ? l->loop : NULL);
    if (rc)
        return rc;
    if (!l->locked)
        return TL_ESTATE;
    tl__waiter_t *w = l->q.head;
    if (w == NULL) {
        l->locked = 0;
        return 0;
    }
    return tl__waitq_resolve(&l->q, w, NULL, 0);
}

int tl_lock_locked(const tl_lock_t *l) {
    int rc = tl__sync_check_thread(l, l ? l->loop : NULL);
    return rc ? rc : l->locked;
}
