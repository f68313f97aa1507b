/*
 * The wait queue every primitive of src/sync is built on: a FIFO of
 * waiters, where a waiter IS the future its caller got (a future of its own
 * class, future_int.h), so waiting costs one allocation.
 *
 * Only the primitive completes a waiter (the public set_result/set_error
 * refuse futures with a class); the caller can only cancel it, and the
 * class's cancel unlinks it from its queue in the same call. So a queue
 * holds pending waiters and nothing else, and a wakeup can never be lost
 * to a cancelled waiter: handing a resource over and completing the future
 * are one step (tl__waitq_resolve), a waiter that was cancelled is no longer
 * there to be handed anything, and one that was handed something can no
 * longer be cancelled.
 *
 * A primitive that wakes many waiters at once moves them, with the outcome
 * each is to get, to its `wake` queue and flushes it. Completing a future
 * can fail for lack of memory (the loop cannot schedule its callbacks); such
 * waiters stay in the wake queue, and the next flush (each state-changing
 * call of the primitive starts with one) retries them.
 */
#ifndef TL_SYNC_WAITQ_H
#define TL_SYNC_WAITQ_H

#include <stddef.h>

#include "../future/future_int.h"

typedef struct tl__waitq tl__waitq_t;
typedef struct tl__waiter tl__waiter_t;

struct tl__waiter {
    struct tl_future base; /* first: the waiter is its caller's future */
    tl__waiter_t *prev, *next;
    tl__waitq_t *q; /* the queue it is in, or NULL */
    void *value;    /* a putter's item; in a wake queue, the result to give */
    int error;      /* in a wake queue: 0 for a result, or the error */
    /* Called when the waiter was cancelled and taken out of its queue
     * (not when tl__waitq_cancel_all cancels it); `owner` is its own. */
    void (*on_cancel)(tl__waiter_t *w);
    void *owner;
    /* Cancelled because the object it waited on was freed: the task
     * awaiting it must not touch that object again. */
    int orphaned;
};

/* A queued waiter holds one reference, owned by its queue. */
struct tl__waitq {
    tl__waiter_t *head, *tail;
    size_t n;
};

/* A new pending waiter on loop, not queued, holding one reference: the
 * caller's. TL_ENOMEM (or the loop's error). */
int tl__waiter_new(tl_loop_t *loop, void *value, tl__waiter_t **out);
static inline tl_future_t *tl__waiter_future(tl__waiter_t *w) { return &w->base; }

/* Queue w at the tail, taking a reference for the queue. */
void tl__waitq_push(tl__waitq_t *q, tl__waiter_t *w);
/* tl__waiter_new + tl__waitq_push; *out gets the caller's reference. */
int tl__waitq_add(tl__waitq_t *q, tl_loop_t *loop, void *value,
                  tl_future_t **out);
/* Unlink or append without touching the reference (moving a waiter from
 * one queue to another). */
void tl__waitq_unlink(tl__waitq_t *q, tl__waiter_t *w);
void tl__waitq_append(tl__waitq_t *q, tl__waiter_t *w);

/* Complete w's future with value (error 0) or error, then take it out of q
 * and drop the queue's reference. On failure (TL_ENOMEM) w stays queued and
 * pending. */
int tl__waitq_resolve(tl__waitq_t *q, tl__waiter_t *w, void *value, int error);
/* Move w from q to the wake queue with the outcome it is to get. */
void tl__waitq_move(tl__waitq_t *q, tl__waitq_t *wake, tl__waiter_t *w,
                    void *value, int error);
/* Move every waiter of q to wake with the same outcome, then flush. */
int tl__waitq_wake_all(tl__waitq_t *q, tl__waitq_t *wake, void *value,
                       int error);
/* Resolve the waiters of a wake queue, oldest first, stopping at the first
 * failure (returned; the rest stay). */
int tl__waitq_flush(tl__waitq_t *wake);

/* Cancel every waiter's future and empty the queue (its owner is being
 * freed; a future the loop cannot cancel any more just stays pending).
 * The waiters are marked orphaned. */
void tl__waitq_cancel_all(tl__waitq_t *q);
/* 1 if f is a waiter marked orphaned, 0 otherwise. */
int tl__waiter_orphaned(const tl_future_t *f);

/* A new future already done with `value` (it has no callbacks yet, so
 * completing it cannot fail). */
int tl__future_new_done(tl_loop_t *loop, void *value, tl_future_t **out);

#endif
