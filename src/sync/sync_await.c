/*
 * The sequential forms: tl_await over the future forms, preceded by the
 * same fast path the future form would take (so an uncontended acquire, put
 * or get makes no future and never suspends, as in asyncio).
 *
 * One case needs more than the await. A task can be cancelled after the
 * future it awaits was completed but before the task resumed; the future
 * then owns what it got (the lock, a unit, an item, the lock again after a
 * notification) and the await reports TL_ECANCELLED. What the future got is
 * given back, so that it passes to the next waiter as if this one had been
 * skipped; if that is impossible (memory ran out, or for a put, a getter
 * already has the item), the operation stands and its success is returned
 * rather than a cancellation that would misstate who owns what. The
 * cancellation request then stays pending, for the task's next suspension
 * to report, as one made while the task runs would.
 *
 * A condition wait also re-acquires the lock after a failed wait, so it
 * must know when its future was cancelled because the condition (or the
 * lock) was freed: then there is nothing left to take back.
 */
#include <stdint.h>

#include "../task/task_int.h"
#include "sync_int.h"
#include "tulip/task.h"

/* What a failed await leaves (await_future's *got). */
#define GOT_NOTHING 0
#define GOT_RESULT 1 /* f has a result: the late cancellation above */
#define GOT_ORPHANED 2 /* f was cancelled because its object was freed */

/* Await f and drop the caller's reference. *got tells what a failed await
 * left; *value gets the result either way. */
static int await_future(tl_future_t *f, void **value, int *got) {
    void *v = NULL;
    int rc = tl_await(f, &v);
    *got = GOT_NOTHING;
    if (rc != 0) {
        if (tl_future_done(f) == 0)
            tl_future_cancel(f, NULL); /* never waited: withdraw */
        else if (tl_future_result(f, &v) == 0)
            *got = GOT_RESULT;
        else if (tl__waiter_orphaned(f))
            *got = GOT_ORPHANED;
    }
    if (value)
        *value = v;
    tl_future_unref(f);
    return rc;
}

/* The operation stood although the task was cancelled: the request the
 * await consumed is made pending again, message and count unchanged.
 * Returns 0. */
static int stands(void) {
    tl__task_keep_cancel(tl_task_current());
    return 0;
}

/* tl_lock_acquire in a task; *got as await_future's, and GOT_RESULT with
 * 0 if the lock could not be given back. */
static int lock_acquire(tl_lock_t *l, int *got) {
    *got = GOT_NOTHING;
    int rc = tl__lock_try_acquire(l);
    if (rc != TL_EAGAIN)
        return rc;
    tl_future_t *f;
    if ((rc = tl_lock_acquire_future(l, &f)))
        return rc;
    rc = await_future(f, NULL, got);
    if (*got == GOT_RESULT && tl_lock_release(l) != 0)
        rc = 0;
    return rc;
}

int tl_lock_acquire(tl_lock_t *l) {
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    int got, rc = lock_acquire(l, &got);
    return rc == 0 && got == GOT_RESULT ? stands() : rc;
}

int tl_semaphore_acquire(tl_semaphore_t *s) {
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    int rc = tl__semaphore_try_acquire(s), got;
    if (rc != TL_EAGAIN)
        return rc;
    tl_future_t *f;
    if ((rc = tl_semaphore_acquire_future(s, &f)))
        return rc;
    rc = await_future(f, NULL, &got);
    if (got == GOT_RESULT && tl_semaphore_release(s) != 0)
        rc = stands();
    return rc;
}

int tl_event_wait(tl_event_t *e) {
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    tl_future_t *f;
    int rc = tl_event_wait_future(e, &f), got;
    return rc ? rc : await_future(f, NULL, &got);
}

int tl_condition_wait(tl_condition_t *c) {
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    tl_lock_t *lock = tl_condition_lock(c); /* c may be freed meanwhile */
    tl_future_t *f;
    int rc = tl_condition_wait_future(c, &f), got;
    if (rc)
        return rc; /* the lock is still held */
    if ((rc = await_future(f, NULL, &got)) == 0)
        return 0;
    if (got == GOT_RESULT) {
        /* Notified and holding the lock: the notification goes on. */
        tl__condition_pass_on(c);
        return rc;
    }
    /* Not holding the lock: take it back, however often the task is
     * cancelled meanwhile, as asyncio's wait does; unless the condition
     * was freed (with its own lock), or the lock was. */
    while (got != GOT_ORPHANED) {
        int again = lock_acquire(lock, &got);
        if (again == 0)
            return rc;
        if (again != TL_ECANCELLED)
            return again;
        rc = TL_ECANCELLED;
    }
    return rc;
}

int tl_condition_wait_for(tl_condition_t *c, tl_predicate_t pred, void *ctx) {
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    int rc = tl_lock_locked(tl_condition_lock(c));
    if (rc < 0)
        return rc;
    if (rc == 0)
        return TL_ESTATE;
    if (pred == NULL)
        return TL_EINVAL;
    while (!pred(ctx))
        if ((rc = tl_condition_wait(c)))
            return rc;
    return 0;
}

int tl_barrier_wait(tl_barrier_t *b) {
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    tl_future_t *f;
    void *index;
    int rc = tl_barrier_wait_future(b, &f), got;
    if (rc == 0)
        rc = await_future(f, &index, &got);
    return rc ? rc : (int)(uintptr_t)index;
}

int tl_queue_put(tl_queue_t *q, void *item) {
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    int rc = tl_queue_put_nowait(q, item), got;
    if (rc != TL_EQUEUEFULL)
        return rc;
    tl_future_t *f;
    if ((rc = tl_queue_put_future(q, item, &f)))
        return rc;
    rc = await_future(f, NULL, &got);
    if (got == GOT_RESULT && tl__queue_unput(q, item) != 0)
        rc = stands();
    return rc;
}

int tl_queue_get(tl_queue_t *q, void **item) {
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    if (item == NULL)
        return TL_EINVAL;
    int rc = tl_queue_get_nowait(q, item), got;
    if (rc != TL_EQUEUEEMPTY)
        return rc;
    tl_future_t *f;
    void *v;
    if ((rc = tl_queue_get_future(q, &f)))
        return rc;
    rc = await_future(f, &v, &got);
    if (got == GOT_RESULT && tl__queue_unget(q, v) != 0)
        rc = stands();
    if (rc == 0)
        *item = v;
    return rc;
}

int tl_queue_join(tl_queue_t *q) {
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    tl_future_t *f;
    int rc = tl_queue_join_future(q, &f), got;
    return rc ? rc : await_future(f, NULL, &got);
}

