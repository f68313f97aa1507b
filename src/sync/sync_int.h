/*
 * What the files of src/sync share beyond the wait queue: the lock (which
 * conditions queue their notified waiters on), the fast paths the sequential
 * forms take before making a future, and the ways they give back what a
 * future got when the task awaiting it was cancelled too late to withdraw.
 */
#ifndef TL_SYNC_INT_H
#define TL_SYNC_INT_H

#include "../loop/loop_int.h"
#include "tulip/sync.h"
#include "waitq.h"

struct tl_lock {
    tl_loop_t *loop; /* referenced */
    int locked;
    /* Waiters for the lock: acquirers and notified condition waiters.
     * Entries join only while the lock is held, and a release that unlocks
     * leaves the queue empty, so an unlocked lock has no waiters. */
    tl__waitq_t q;
};

/* Checks shared by every entry point: the object and its loop. */
static inline int tl__sync_check(const void *obj, tl_loop_t *loop) {
    return obj ? tl__loop_check(loop) : TL_EINVAL;
}
/* The same for queries and free, which only need the owning thread. */
static inline int tl__sync_check_thread(const void *obj, const tl_loop_t *loop) {
    if (obj == NULL)
        return TL_EINVAL;
    return loop->owner == tl__thread_self() ? 0 : TL_EWRONGTHREAD;
}

/* Take the resource without waiting: 0 if taken, TL_EAGAIN if the caller
 * would have to wait, or the entry point's error. */
int tl__lock_try_acquire(tl_lock_t *l);
int tl__semaphore_try_acquire(tl_semaphore_t *s);

/* A condition waiter got the lock back but its task was cancelled: pass the
 * notification it consumed to the next waiter (the lock is held). */
void tl__condition_pass_on(tl_condition_t *c);
/* Give back an item a get took: to the oldest getter, else to the head of
 * the queue (dropped as an immediate shutdown drops them if one happened).
 * 0, or TL_ENOMEM (the caller keeps the item). */
int tl__queue_unget(tl_queue_t *q, void *item);
/* Take back an item a put placed, if it is still in the queue (the room goes
 * to the oldest putter). 0 if taken back, TL_ESTATE if a getter already has
 * it, TL_ENOMEM (left in the queue). */
int tl__queue_unput(tl_queue_t *q, void *item);

#endif
