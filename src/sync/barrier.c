/*
 * asyncio.Barrier. The party that fills a round completes every waiter's
 * future at once, so asyncio's "draining" state (the woken tasks leaving one
 * by one while newcomers are held back) takes no time here: the barrier is
 * ready for the next round as soon as the last party arrives.
 */
#include <stdint.h>

#include "../core/alloc.h"
#include "sync_int.h"

struct tl_barrier {
    tl_loop_t *loop; /* referenced */
    int parties;
    int broken;
    tl__waitq_t q;    /* the current round */
    tl__waitq_t wake; /* released or broken, completion still to do */
};

int tl_barrier_new(tl_loop_t *loop, int parties, tl_barrier_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (out == NULL || parties < 1)
        return TL_EINVAL;
    tl_barrier_t *b = tl__calloc(1, sizeof(*b));
    if (b == NULL)
        return TL_ENOMEM;
    b->loop = loop;
    b->parties = parties;
    tl_loop_ref(loop);
    *out = b;
    return 0;
}

int tl_barrier_free(tl_barrier_t *b) {
    int rc = tl__sync_check_thread(b, b ? b->loop : NULL);
    if (rc)
        return rc;
    tl__waitq_cancel_all(&b->wake);
    tl__waitq_cancel_all(&b->q);
    tl_loop_unref(b->loop);
    tl__free(b);
    return 0;
}

static int enter(tl_barrier_t *b) {
    int rc = tl__sync_check(b, b ? b->loop : NULL);
    if (rc == 0 && b->wake.head)
        tl__waitq_flush(&b->wake);
    return rc;
}

int tl_barrier_wait_future(tl_barrier_t *b, tl_future_t **out) {
    int rc = enter(b);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (b->broken)
        return TL_EBROKEN;
    if (b->q.n + 1 < (size_t)b->parties)
        return tl__waitq_add(&b->q, b->loop, NULL, out);
    if ((rc = tl__future_new_done(b->loop, (void *)(uintptr_t)(b->parties - 1), out)))
        return rc;
    uintptr_t index = 0;
    tl__waiter_t *w;
    while ((w = b->q.head))
        tl__waitq_move(&b->q, &b->wake, w, (void *)index++, 0);
    tl__waitq_flush(&b->wake); /* what fails is retried by the next call */
    return 0;
}

int tl_barrier_abort(tl_barrier_t *b) {
    int rc = enter(b);
    if (rc)
        return rc;
    b->broken = 1;
    return tl__waitq_wake_all(&b->q, &b->wake, NULL, TL_EBROKEN);
}

int tl_barrier_reset(tl_barrier_t *b) {
    int rc = enter(b);
    if (rc)
        return rc;
    b->broken = 0;
    return tl__waitq_wake_all(&b->q, &b->wake, NULL, TL_EBROKEN);
}

int tl_barrier_parties(const tl_barrier_t *b) {
    int rc = tl__sync_check_thread(b, b ? b->loop : NULL);
    return rc ? rc : b->parties;
}

int tl_barrier_n_waiting(const tl_barrier_t *b) {
    int rc = tl__sync_check_thread(b, b ? b->loop : NULL);
    return rc ? rc : (int)b->q.n;
}

int tl_barrier_broken(const tl_barrier_t *b) {
    int rc = tl__sync_check_thread(b, b ? b->loop : NULL);
    return rc ? rc : b->broken;
}
