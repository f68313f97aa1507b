/*
 * tulip/sync.h - synchronization primitives for tasks and callbacks
 * (asyncio's locks and queues modules): Lock, Event, Condition, Semaphore,
 * BoundedSemaphore, Barrier and Queue (FIFO, LIFO, priority).
 *
 * Like asyncio's, these are not thread-safe: an object belongs to the thread
 * of the loop it was created on. Every function returns TL_EINVAL for a NULL
 * handle or out-parameter and TL_EWRONGTHREAD from another thread; those that
 * change state or wait also return TL_ECLOSED once the loop is closed. The
 * queries (tl_lock_locked, tl_queue_qsize, ...) still answer after the close.
 *
 * Waiting. Every operation that may wait has one implementation, the future
 * form (`..._future`), and a sequential form for tasks that is tl_await over
 * it (task.h):
 *   - the future form returns 0 and a new future in *out (one reference, the
 *     caller's), done when the operation has happened; if it can happen at
 *     once, the future is already done. An error detected at the call (bad
 *     argument, broken barrier, shut-down queue, ...) is returned directly
 *     and no future is made. An error that comes while waiting is the
 *     future's error.
 *   - the sequential form may only be called from inside a task
 *     (TL_ENOTASK elsewhere) and returns the outcome.
 * Waiters are served in FIFO order, and the resource is handed over when a
 * waiter is woken: a lock released while tasks wait stays locked and its
 * next owner's future is done, so a newcomer cannot barge in between.
 *
 * Cancellation. A waiting future is completed only by its object
 * (tl_future_set_result and tl_future_set_error on it return TL_EINVAL).
 * Cancelling it (tl_future_cancel, or cancelling the task that awaits it)
 * withdraws the waiter from the queue within the call: it is never woken
 * and takes nothing. Handing over and completing the future are one step,
 * so a wakeup can never be lost to a waiter cancelled at the moment it is
 * woken: a future already done can no longer be cancelled and owns what it
 * got, and a cancelled one is no longer there to be handed anything. If a
 * task is cancelled after its future was completed but before the task
 * resumed, the sequential form gives the resource back (releases the lock or
 * semaphore, returns the item to the queue, passes a condition's
 * notification on) so that it goes to the next waiter, and returns
 * TL_ECANCELLED. Where it cannot (memory ran out, or a getter already has
 * the item a put placed), the operation stands and the form returns 0; the
 * cancellation then stays pending and the task's next suspension reports
 * it.
 *
 * Memory. Waiting allocates one future: TL_ENOMEM then leaves everything as
 * it was. Waking a waiter completes its future, which can also fail for
 * lack of memory when the loop cannot schedule the future's done callbacks.
 * An operation that wakes one waiter in exchange for something (release,
 * put, get) then returns TL_ENOMEM and changes nothing. One that wakes many
 * (set, shutdown, abort, reset, the task_done that ends a join, the last
 * party of a barrier) makes its change, and the waiters it could not wake
 * yet are woken by the next call on the same object that changes state or
 * waits (repeating the call is enough); it returns TL_ENOMEM in that case,
 * except where noted. A notify only moves waiters and never fails.
 *
 * Freeing an object while tasks or callbacks wait on it cancels their
 * futures (their awaits return TL_ECANCELLED).
 */
#ifndef TULIP_SYNC_H
#define TULIP_SYNC_H

#include "core.h"
#include "future.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Lock --------------------------------------------------------------
 * asyncio.Lock: a mutual-exclusion lock with no owner (any code may release
 * it) that is not reentrant: acquiring it twice without a release waits
 * forever. */
typedef struct tl_lock tl_lock_t;

/* A new unlocked lock on `loop`, owned by the caller (tl_lock_free).
 * TL_EINVAL, TL_ECLOSED, TL_EWRONGTHREAD, TL_ENOMEM. */
TL_API int tl_lock_new(tl_loop_t *loop, tl_lock_t **out);
/* Free the lock, cancelling the futures of the waiters (and of the
 * Condition waiters queued for it). A Condition that uses the lock must be
 * freed first. Allowed after the loop was closed. TL_EINVAL, TL_EWRONGTHREAD
 * (nothing is freed). */
TL_API int tl_lock_free(tl_lock_t *l);
/* Acquire: the future is done (result NULL) once the lock is the caller's;
 * at once if it is unlocked, otherwise when every earlier waiter has had
 * and released it. The caller must then call tl_lock_release. */
TL_API int tl_lock_acquire_future(tl_lock_t *l, tl_future_t **out);
/* Inside a task: acquire, waiting as long as needed. 0 (the lock is
 * held), TL_ECANCELLED (it is not), TL_ENOMEM, TL_ENOTASK. */
TL_API int tl_lock_acquire(tl_lock_t *l);
/* Release: the first waiter, if any, now holds the lock (its future is
 * done); otherwise the lock is unlocked. TL_ESTATE if the lock is not
 * locked; TL_ENOMEM (the lock stays held) if the waiter could not be woken. */
TL_API int tl_lock_release(tl_lock_t *l);
/* 1 if the lock is held, 0 if not. */
TL_API int tl_lock_locked(const tl_lock_t *l);

/* ---- Event -------------------------------------------------------------
 * asyncio.Event: a flag that tasks wait to see set. */
typedef struct tl_event tl_event_t;

/* A new event, not set. TL_EINVAL, TL_ECLOSED, TL_EWRONGTHREAD, TL_ENOMEM. */
TL_API int tl_event_new(tl_loop_t *loop, tl_event_t **out);
/* Free the event, cancelling the futures of its waiters. */
TL_API int tl_event_free(tl_event_t *e);
/* Set the flag and wake every waiter (their futures are done, result
 * NULL); waits that begin while it is set finish at once. Setting a set
 * event changes nothing. TL_ENOMEM: set, but some waiters are not woken
 * yet (see Memory above). */
TL_API int tl_event_set(tl_event_t *e);
/* Reset the flag: later waits wait for the next set. */
TL_API int tl_event_clear(tl_event_t *e);
/* 1 if the flag is set, 0 if not. */
TL_API int tl_event_is_set(const tl_event_t *e);
/* Wait: the future is done (result NULL) once the flag is set; at once if
 * it is. */
TL_API int tl_event_wait_future(tl_event_t *e, tl_future_t **out);
/* Inside a task: wait for the flag. 0, TL_ECANCELLED, TL_ENOMEM,
 * TL_ENOTASK. */
TL_API int tl_event_wait(tl_event_t *e);

/* ---- Condition ---------------------------------------------------------
 * asyncio.Condition: waiting for a notification while holding a lock.
 * Acquire and release the condition through its lock (tl_condition_lock).
 * A wait releases the lock, waits for a notification, and acquires the
 * lock again before it completes; a notified waiter queues for the lock
 * behind those already waiting for it. Spurious wakeups can happen (see
 * tl_condition_wait_future), so wait in a loop that re-checks the state,
 * or use tl_condition_wait_for. */
typedef struct tl_condition tl_condition_t;

/* A predicate for tl_condition_wait_for: nonzero when the awaited state is
 * reached. It runs in the waiting task with the lock held. */
typedef int (*tl_predicate_t)(void *ctx);

/* A new condition using `lock` (which must belong to the same loop, and
 * outlive the condition; several conditions may share one lock), or, if
 * lock is NULL, a lock of its own that tl_condition_free frees.
 * TL_EINVAL (NULL out, a lock of another loop), TL_ECLOSED, TL_EWRONGTHREAD,
 * TL_ENOMEM. */
TL_API int tl_condition_new(tl_loop_t *loop, tl_lock_t *lock,
                            tl_condition_t **out);
/* Free the condition (and its own lock), cancelling the futures of its
 * waiters, including those notified and waiting for the lock. */
TL_API int tl_condition_free(tl_condition_t *c);
/* The condition's lock (borrowed, valid while the condition lives), or
 * NULL for a NULL condition. */
TL_API tl_lock_t *tl_condition_lock(const tl_condition_t *c);
/* Wait: the lock, which the caller must hold (TL_ESTATE otherwise), is
 * released at once; the future is done (result NULL) once the waiter was
 * notified and then holds the lock again. If the future is cancelled, or
 * fails, the caller does NOT hold the lock. A waiter that is cancelled
 * after it was notified but before it got the lock passes its notification
 * to the next waiter, which may make a spurious wakeup. TL_ENOMEM leaves
 * the lock held. */
TL_API int tl_condition_wait_future(tl_condition_t *c, tl_future_t **out);
/* Inside a task: tl_condition_wait_future, and always with the lock held
 * again on return, as asyncio's wait: if the task is cancelled the lock is
 * re-acquired (however often it is cancelled meanwhile) before
 * TL_ECANCELLED is returned; except when the condition is freed (or its
 * lock) while the task waits: then TL_ECANCELLED without the lock, which
 * may be gone. 0, TL_ECANCELLED, TL_ESTATE, TL_ENOMEM (if memory ran out
 * after the lock was released, it is not held), TL_ENOTASK. */
TL_API int tl_condition_wait(tl_condition_t *c);
/* Inside a task, holding the lock: wait until pred(ctx) is nonzero,
 * checking it first and after every wakeup (asyncio's wait_for). 0 with
 * the lock held, or tl_condition_wait's error. */
TL_API int tl_condition_wait_for(tl_condition_t *c, tl_predicate_t pred,
                                 void *ctx);
/* Wake up to n waiters, oldest first: each then waits for the lock, which
 * the caller must hold (TL_ESTATE otherwise). Returns how many were woken
 * (at most INT_MAX counted). Never fails for lack of memory. */
TL_API int tl_condition_notify(tl_condition_t *c, size_t n);
/* Wake every waiter; returns how many, as tl_condition_notify. */
TL_API int tl_condition_notify_all(tl_condition_t *c);

/* ---- Semaphore and BoundedSemaphore -----------------------------------
 * asyncio.Semaphore: a counter that acquire decrements, waiting while it
 * is 0, and release increments. A BoundedSemaphore refuses a release that
 * would raise the counter above its initial value. */
typedef struct tl_semaphore tl_semaphore_t;

/* A new semaphore with the counter at `value` (>= 0, TL_EINVAL otherwise).
 * TL_ECLOSED, TL_EWRONGTHREAD, TL_ENOMEM. */
TL_API int tl_semaphore_new(tl_loop_t *loop, int value, tl_semaphore_t **out);
/* A bounded one: releases beyond `value` fail with TL_ERANGE. */
TL_API int tl_bounded_semaphore_new(tl_loop_t *loop, int value,
                                    tl_semaphore_t **out);
/* Free it, cancelling the futures of its waiters. */
TL_API int tl_semaphore_free(tl_semaphore_t *s);
/* Acquire: the future is done (result NULL) once a unit is the caller's;
 * at once if the counter is above 0, otherwise when a release hands one
 * over (oldest waiter first). */
TL_API int tl_semaphore_acquire_future(tl_semaphore_t *s, tl_future_t **out);
/* Inside a task: acquire. 0, TL_ECANCELLED (nothing was taken), TL_ENOMEM,
 * TL_ENOTASK. */
TL_API int tl_semaphore_acquire(tl_semaphore_t *s);
/* Release a unit: to the first waiter if any, otherwise to the counter.
 * TL_ERANGE for a bounded semaphore already at its initial value, or when
 * the counter would pass INT_MAX; TL_ENOMEM (nothing released) if the
 * waiter could not be woken. */
TL_API int tl_semaphore_release(tl_semaphore_t *s);
/* 1 if an acquire would wait (the counter is 0), 0 if not. */
TL_API int tl_semaphore_locked(const tl_semaphore_t *s);
/* The counter (>= 0). */
TL_API int tl_semaphore_value(const tl_semaphore_t *s);

/* ---- Barrier -----------------------------------------------------------
 * asyncio.Barrier: `parties` waiters block until the last one arrives, then
 * all pass together, and the barrier is ready for the next round. */
typedef struct tl_barrier tl_barrier_t;

/* A new barrier for `parties` (>= 1, TL_EINVAL otherwise) waiters.
 * TL_ECLOSED, TL_EWRONGTHREAD, TL_ENOMEM. */
TL_API int tl_barrier_new(tl_loop_t *loop, int parties, tl_barrier_t **out);
/* Free it, cancelling the futures of its waiters. */
TL_API int tl_barrier_free(tl_barrier_t *b);
/* Arrive and wait for the round to fill. The future's result is the
 * party's arrival index in its round, 0 .. parties-1, as a pointer-sized
 * integer (size_t)(uintptr_t)value: the party that fills the round gets
 * parties-1 and a future done at once, and the waiters, in arrival order,
 * 0 .. parties-2 (indices are renumbered over waiters that were cancelled
 * before the round filled, which no longer count). The future fails with
 * TL_EBROKEN if the barrier is aborted or reset while it waits. TL_EBROKEN
 * at once on a broken barrier. If memory runs out while the last party
 * releases the others, it still returns 0 and they are released by the
 * next call on the barrier. */
TL_API int tl_barrier_wait_future(tl_barrier_t *b, tl_future_t **out);
/* Inside a task: arrive and wait. The arrival index (>= 0), TL_EBROKEN,
 * TL_ECANCELLED, TL_ENOMEM, TL_ENOTASK. */
TL_API int tl_barrier_wait(tl_barrier_t *b);
/* Break the barrier: the waiters fail with TL_EBROKEN, and so does every
 * later wait until tl_barrier_reset. */
TL_API int tl_barrier_abort(tl_barrier_t *b);
/* Return to the empty, unbroken state: the waiters fail with TL_EBROKEN. */
TL_API int tl_barrier_reset(tl_barrier_t *b);
/* The number of parties. */
TL_API int tl_barrier_parties(const tl_barrier_t *b);
/* The number of waiters in the current round (cancelled ones excluded). */
TL_API int tl_barrier_n_waiting(const tl_barrier_t *b);
/* 1 if broken, 0 if not. */
TL_API int tl_barrier_broken(const tl_barrier_t *b);

/* ---- Queue -------------------------------------------------------------
 * asyncio.Queue, LifoQueue and PriorityQueue: items are void pointers
 * (NULL is a valid item). put hands the item to the queue, get hands it to
 * the getter, who then owns it; an item still in the queue when it is
 * freed, or dropped by an immediate shutdown, is released with the
 * item_destructor if one was given (otherwise simply forgotten). A put that
 * fails or is cancelled leaves the item with the caller. */
typedef struct tl_queue tl_queue_t;

typedef enum tl_queue_order {
    TL_QUEUE_FIFO = 0,    /* asyncio.Queue: first in, first out */
    TL_QUEUE_LIFO = 1,    /* asyncio.LifoQueue: last in, first out */
    TL_QUEUE_PRIORITY = 2 /* asyncio.PriorityQueue: smallest first */
} tl_queue_order_t;

/* Orders items for TL_QUEUE_PRIORITY: negative if a comes out before b,
 * positive if after, 0 for equal priority (equal items come out in the
 * order they were put). It must not call into the queue. */
typedef int (*tl_queue_compare_t)(const void *a, const void *b, void *ctx);

typedef struct tl_queue_options {
    size_t size;            /* sizeof(tl_queue_options_t); zeroed = defaults */
    tl_queue_order_t order; /* TL_QUEUE_FIFO by default */
    size_t maxsize;         /* 0: unbounded; otherwise put waits while full */
    tl_queue_compare_t compare; /* required for TL_QUEUE_PRIORITY */
    void *compare_ctx;          /* passed to compare */
    /* Releases items the queue drops (tl_queue_free, immediate shutdown);
     * may be NULL. It must not call into the queue. */
    tl_destructor_t item_destructor;
} tl_queue_options_t;

/* A new empty queue; opts may be NULL (an unbounded FIFO queue).
 * TL_EINVAL (a bad option: an unknown order, PRIORITY without compare),
 * TL_ECLOSED, TL_EWRONGTHREAD, TL_ENOMEM. */
TL_API int tl_queue_new(tl_loop_t *loop, const tl_queue_options_t *opts,
                        tl_queue_t **out);
/* Free the queue: cancel the futures of its getters, putters and joiners
 * (the putters' items stay theirs) and release the items left in it. */
TL_API int tl_queue_free(tl_queue_t *q);

/* Put an item: the future is done (result NULL) once the item is in the
 * queue (or handed to a waiting getter); at once if the queue is not full,
 * otherwise when a get makes room (oldest putter first). If the future is
 * cancelled, or fails with TL_EQUEUESHUTDOWN because the queue was shut
 * down while it waited, the item was not put. TL_EQUEUESHUTDOWN at once if
 * the queue is shut down. */
TL_API int tl_queue_put_future(tl_queue_t *q, void *item, tl_future_t **out);
/* Inside a task: put, waiting for room. 0, TL_EQUEUESHUTDOWN,
 * TL_ECANCELLED (the item was not put), TL_ENOMEM, TL_ENOTASK. */
TL_API int tl_queue_put(tl_queue_t *q, void *item);
/* Put without waiting. TL_EQUEUEFULL if the queue is full,
 * TL_EQUEUESHUTDOWN if it is shut down, TL_ENOMEM; the item stays the
 * caller's on any error. */
TL_API int tl_queue_put_nowait(tl_queue_t *q, void *item);

/* Get an item: the future's result is the item (the getter's from then
 * on); done at once if the queue has one, otherwise when one is put
 * (oldest getter first). The future fails with TL_EQUEUESHUTDOWN if the
 * queue is shut down while it waits. TL_EQUEUESHUTDOWN at once if the queue
 * is shut down and empty. */
TL_API int tl_queue_get_future(tl_queue_t *q, tl_future_t **out);
/* Inside a task: get, waiting for an item (*item, which must not be NULL,
 * is set only on success). 0, TL_EQUEUESHUTDOWN, TL_ECANCELLED (nothing
 * was taken), TL_ENOMEM, TL_ENOTASK. */
TL_API int tl_queue_get(tl_queue_t *q, void **item);
/* Get without waiting. TL_EQUEUEEMPTY if the queue is empty,
 * TL_EQUEUESHUTDOWN if it is empty and shut down, TL_ENOMEM (nothing
 * taken: a putter waiting for the room could not be woken). */
TL_API int tl_queue_get_nowait(tl_queue_t *q, void **item);

/* The number of items in the queue (capped at INT_MAX). */
TL_API int tl_queue_qsize(const tl_queue_t *q);
/* 1 if the queue has no item, 0 if it has. */
TL_API int tl_queue_empty(const tl_queue_t *q);
/* 1 if the queue is bounded and holds maxsize items, 0 if not. */
TL_API int tl_queue_full(const tl_queue_t *q);
/* The maxsize the queue was made with (0: unbounded), in *out. */
TL_API int tl_queue_maxsize(const tl_queue_t *q, size_t *out);

/* Tell the queue that the processing of an item taken with get is
 * complete. Each put counts one unfinished item; when task_done brings the
 * count to 0, every joiner is woken. TL_ESTATE if called more times than
 * items were put. */
TL_API int tl_queue_task_done(tl_queue_t *q);
/* Wait until every item put has been marked done: the future is done
 * (result NULL) once the unfinished count is 0; at once if it is. */
TL_API int tl_queue_join_future(tl_queue_t *q, tl_future_t **out);
/* Inside a task: join. 0, TL_ECANCELLED, TL_ENOMEM, TL_ENOTASK. */
TL_API int tl_queue_join(tl_queue_t *q);

/* Shut the queue down (Python 3.13): from now on put and put_nowait fail
 * with TL_EQUEUESHUTDOWN; get and get_nowait keep returning the items left
 * and fail with TL_EQUEUESHUTDOWN once the queue is empty. With `immediate`
 * the items left are dropped at once (released with the item_destructor),
 * each counting as a task_done (joiners are woken when the count reaches
 * 0), so gets fail at once. Every blocked getter and putter fails with
 * TL_EQUEUESHUTDOWN. Shutting down again is allowed (an immediate shutdown
 * after a plain one drops the items then). */
TL_API int tl_queue_shutdown(tl_queue_t *q, int immediate);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_SYNC_H */
