/*
 * tulip/task.h - tasks: stackful coroutines scheduled by the loop, and the
 * ways to wait on futures from them (asyncio's tasks module).
 *
 * A task runs fn(arg, &result) on a stack of its own. Inside it, tl_await
 * suspends the task until a future is done and returns that future's
 * outcome, so sequential C code waits without blocking the loop. A task is
 * also a future (tl_task_future), completed with fn's outcome:
 *   fn returns 0             -> result *result (released by the task
 *                               option's result_destructor when freed)
 *   fn returns TL_ECANCELLED -> the task is cancelled
 *   fn returns another code  -> the task fails with that code
 *
 * Cancellation follows asyncio 3.11+: tl_task_cancel(t, msg) counts a
 * request (tl_task_cancelling), cancels the future the task awaits (its
 * tl_await returns TL_ECANCELLED), or, if the task is not waiting, makes its
 * next suspending tl_await return TL_ECANCELLED. A task that swallows the
 * cancellation and returns 0 ends with its result. tl_task_uncancel takes a
 * request back. Cancelling a finished task is a no-op (returns 0).
 *
 * Threads and ownership are the future's (future.h): a task belongs to its
 * loop's thread; tl_task_spawn gives the caller one reference; the loop holds
 * its own until the task finishes, so dropping yours does not stop it.
 */
#ifndef TULIP_TASK_H
#define TULIP_TASK_H

#include "core.h"
#include "future.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tl_task tl_task_t;

/* A task's body. Write the result through *result and return 0, or return
 * a negative TL_E* code. */
typedef int (*tl_task_fn_t)(void *arg, void **result);

typedef struct tl_task_options {
    size_t size;            /* sizeof(tl_task_options_t); zeroed = defaults */
    const char *name;       /* copied; NULL gives "Task-<n>" */
    size_t stack_size;      /* 0: 64 KiB; at least 16 KiB. Running off the
                               end faults on a guard page (see docs) */
    tl_destructor_t result_destructor; /* for the value fn returns */
} tl_task_options_t;

/* Schedule fn(arg) as a new task; its first step runs in a later
 * iteration (never inside this call). *out receives a reference the caller
 * owns; out may be NULL for a task nobody waits on. TL_EINVAL, TL_ENOMEM,
 * TL_ECLOSED, TL_EWRONGTHREAD. */
TL_API int tl_task_spawn(tl_loop_t *loop, tl_task_fn_t fn, void *arg,
                         const tl_task_options_t *opts, tl_task_t **out);
/* The task as a future (the same object, no new reference): await it, add
 * done callbacks, read its outcome, tl_future_unref it. */
TL_API tl_future_t *tl_task_future(tl_task_t *t);
/* The task behind a future, or NULL if f is not a task. */
TL_API tl_task_t *tl_task_from_future(tl_future_t *f);
TL_API int tl_task_ref(tl_task_t *t);
TL_API int tl_task_unref(tl_task_t *t);

/* Request cancellation: 1 if requested, 0 if the task is already done.
 * `message` (may be NULL) is copied and becomes the cancellation message.
 * Called on a task, tl_future_cancel does the same. */
TL_API int tl_task_cancel(tl_task_t *t, const char *message);
/* The number of pending cancellation requests. */
TL_API int tl_task_cancelling(const tl_task_t *t);
/* Take one request back; returns the remaining count (0 at least). */
TL_API int tl_task_uncancel(tl_task_t *t);

/* The name (owned by the task) and a new one (copied). */
TL_API const char *tl_task_get_name(const tl_task_t *t);
TL_API int tl_task_set_name(tl_task_t *t, const char *name);

/* The task running on the calling thread, or NULL (no reference added). */
TL_API tl_task_t *tl_task_current(void);
/* The loop's unfinished tasks: fills tasks[0..max) (borrowed pointers) and
 * returns how many there are in all (which may exceed max). */
TL_API int tl_task_all(tl_loop_t *loop, tl_task_t **tasks, size_t max);

/* Inside a task: suspend until f is done, then return its outcome as
 * tl_future_result does (0 with *result set, its error, TL_ECANCELLED).
 * A done f returns at once without suspending. If the task is cancelled
 * while waiting, f is cancelled too and TL_ECANCELLED is returned.
 * TL_ENOTASK outside a task (it never blocks the loop), TL_EINVAL for
 * NULL or a future of another loop. */
TL_API int tl_await(tl_future_t *f, void **result);
/* Inside a task: suspend for ns nanoseconds (<= 0: one loop iteration).
 * 0, TL_ECANCELLED, TL_ENOTASK. */
TL_API int tl_sleep(int64_t ns);
/* tl_sleep(0): let every other ready callback run once. */
TL_API int tl_yield(void);

/* Like asyncio.run: make a loop, run fn as its main task until it is done,
 * cancel the tasks still running and let them finish, close the loop, and
 * return fn's outcome (*result gets the value; the caller then owns it, the
 * options' result_destructor is not applied). */
TL_API int tl_run(tl_task_fn_t fn, void *arg, const tl_task_options_t *opts,
                  void **result);

/* ---- combinators -------------------------------------------------------
 * Each returns a new future (one reference, the caller's) usable from
 * callbacks, and awaitable from tasks with tl_await. The futures given are
 * referenced, not consumed. */

/* Done when every one of futs[0..n) is done. Without return_errors it fails
 * as soon as one child fails (with that child's error) or is cancelled
 * (TL_ECANCELLED), leaving the others running, as asyncio.gather does; with
 * it, it completes with result NULL once all are done, and each child's own
 * outcome is read from the child. Cancelling the gather cancels every child
 * not yet done. n == 0 completes at once. */
TL_API int tl_gather(tl_loop_t *loop, tl_future_t *const *futs, size_t n,
                     int return_errors, tl_future_t **out);

typedef enum tl_wait_when {
    TL_ALL_COMPLETED = 0,
    TL_FIRST_COMPLETED = 1,
    TL_FIRST_EXCEPTION = 2 /* first error (not cancellation) or all done */
} tl_wait_when_t;

/* Done (result NULL, never an error) when `when` is met or after timeout_ns
 * (< 0: no timeout); the children are never cancelled. Read which are done
 * with tl_future_done. TL_EINVAL for n == 0 or a bad `when`. */
TL_API int tl_wait(tl_loop_t *loop, tl_future_t *const *futs, size_t n,
                   tl_wait_when_t when, int64_t timeout_ns, tl_future_t **out);

/* f's outcome, or TL_ETIMEDOUT after timeout_ns, in which case f is
 * cancelled and the result waits for that cancellation to complete. */
TL_API int tl_wait_for(tl_future_t *f, int64_t timeout_ns, tl_future_t **out);

/* A future that mirrors f's outcome but whose cancellation leaves f
 * running. */
TL_API int tl_shield(tl_future_t *f, tl_future_t **out);

/* Iterate futures in completion order (asyncio.as_completed). */
typedef struct tl_as_completed tl_as_completed_t;
/* timeout_ns < 0: none; after it, next returns TL_ETIMEDOUT. */
TL_API int tl_as_completed_new(tl_loop_t *loop, tl_future_t *const *futs,
                               size_t n, int64_t timeout_ns,
                               tl_as_completed_t **out);
/* A future whose result is the next child to complete (a borrowed
 * tl_future_t *, valid while the iterator lives); TL_ESTATE when all n were
 * returned. */
TL_API int tl_as_completed_next_future(tl_as_completed_t *it,
                                       tl_future_t **out);
/* Inside a task: wait for the next child; *done is borrowed. */
TL_API int tl_as_completed_next(tl_as_completed_t *it, tl_future_t **done);
TL_API void tl_as_completed_free(tl_as_completed_t *it);

/* Timeout scopes, as asyncio.timeout()/timeout_at(): when the deadline
 * passes, the task is cancelled; its awaits return TL_ECANCELLED, the body
 * returns that code to the scope's end, and tl_timeout_exit turns it into
 * TL_ETIMEDOUT if this scope's cancellation is the one that remains. */
typedef struct tl_timeout tl_timeout_t;
/* Inside a task. delay_ns < 0: no deadline (set one later). */
TL_API int tl_timeout_enter(int64_t delay_ns, tl_timeout_t **out);
TL_API int tl_timeout_enter_at(int64_t when_ns, tl_timeout_t **out);
/* Move the deadline (loop time; < 0: none) while inside the scope. */
TL_API int tl_timeout_reschedule(tl_timeout_t *t, int64_t when_ns);
/* 1 once the deadline passed and the scope cancelled the task. */
TL_API int tl_timeout_expired(const tl_timeout_t *t);
/* Leave the scope with the body's outcome `rc`; returns the final outcome
 * (TL_ETIMEDOUT for a cancellation this scope caused) and frees t. */
TL_API int tl_timeout_exit(tl_timeout_t *t, int rc);

/* TaskGroup: structured concurrency. Tasks spawned into the group are
 * awaited by tl_taskgroup_wait; the first one that fails cancels the others
 * and the task waiting in the group; every error is kept. */
typedef struct tl_taskgroup tl_taskgroup_t;
TL_API int tl_taskgroup_new(tl_loop_t *loop, tl_taskgroup_t **out);
/* TL_ESTATE once the group is shutting down (after a failure or wait). */
TL_API int tl_taskgroup_spawn(tl_taskgroup_t *g, tl_task_fn_t fn, void *arg,
                              const tl_task_options_t *opts, tl_task_t **out);
/* Inside a task: wait for every task of the group. 0 when all succeeded;
 * the first failure's code otherwise (the rest via tl_taskgroup_errors);
 * TL_ECANCELLED if the waiting task itself was cancelled from outside. */
TL_API int tl_taskgroup_wait(tl_taskgroup_t *g);
/* The failed tasks, in failure order: fills tasks[0..max) (borrowed),
 * returns how many failed. */
TL_API int tl_taskgroup_errors(const tl_taskgroup_t *g, tl_task_t **tasks,
                               size_t max);
TL_API void tl_taskgroup_free(tl_taskgroup_t *g);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_TASK_H */
