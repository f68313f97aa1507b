/*
 * asyncio.Semaphore and BoundedSemaphore. A release with waiters hands its
 * unit straight to the oldest waiter (the counter stays 0), so the counter
 * is above 0 only when nobody waits, and no unit is ever left waiting for
 * a task that might be cancelled before it takes it.
 */
#include <limits.h>

#include "../core/alloc.h"
#include "sync_int.h"

struct tl_semaphore {
    tl_loop_t *loop; /* referenced */
    int value;
    int bound; /* the initial value for a bounded semaphore, else -1 */
    tl__waitq_t q;
};

static int make(tl_loop_t *loop, int value, int bounded, tl_semaphore_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (out == NULL || value < 0)
        return TL_EINVAL;
    tl_semaphore_t *s = tl__calloc(1, sizeof(*s));
    if (s == NULL)
        return TL_ENOMEM;
    s->loop = loop;
    s->value = value;
    s->bound = bounded ? value : -1;
    tl_loop_ref(loop);
    *out = s;
    return 0;
}

int tl_semaphore_new(tl_loop_t *loop, int value, tl_semaphore_t **out) {
    return make(loop, value, 0, out);
}

int tl_bounded_semaphore_new(tl_loop_t *loop, int value, tl_semaphore_t **out) {
    return make(loop, value, 1, out);
}

int tl_semaphore_free(tl_semaphore_t *s) {
    int rc = tl__sync_check_thread(s, s ? s->loop : NULL);
    if (rc)
        return rc;
    tl__waitq_cancel_all(&s->q);
    tl_loop_unref(s->loop);
    tl__free(s);
    return 0;
}

int tl__semaphore_try_acquire(tl_semaphore_t *s) {
    int rc = tl__sync_check(s, s ? s->loop : NULL);
    if (rc)
        return rc;
    if (s->value == 0)
        return TL_EAGAIN;
    s->value--;
    return 0;
}

int tl_semaphore_acquire_future(tl_semaphore_t *s, tl_future_t **out) {
    int rc = tl__sync_check(s, s ? s->loop : NULL);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (s->value == 0)
        return tl__waitq_add(&s->q, s->loop, NULL, out);
    if ((rc = tl__future_new_done(s->loop, NULL, out)) == 0)
        s->value--;
    return rc;
}

int tl_semaphore_release(tl_semaphore_t *s) {
    int rc = tl__sync_check(s, s ? s->loop : NULL);
    if (rc)
        return rc;
    if (s->value == (s->bound >= 0 ? s->bound : INT_MAX))
        return TL_ERANGE;
    tl__waiter_t *w = s->q.head;
    if (w == NULL) {
        s->value++;
        return 0;
    }
    return tl__waitq_resolve(&s->q, w, NULL, 0);
}

int tl_semaphore_locked(const tl_semaphore_t *s) {
    int rc = tl__sync_check_thread(s, s ? s->loop : NULL);
    return rc ? rc : s->value == 0;
}

int tl_semaphore_value(const tl_semaphore_t *s) {
    int rc = tl__sync_check_thread(s, s ? s->loop : NULL);
    return rc ? rc : s->value;
}
