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
 * asyncio's gather, wait, wait_for, shield, as_completed, timeout and
 * TaskGroup. Where these comments are silent, asyncio 3.12/3.13 is the
 * reference.
 *
 * The futures given are referenced (never consumed) for as long as the
 * combinator needs them. Each combinator returning a future returns a new
 * one (one reference, the caller's) that is usable from loop callbacks and
 * awaitable from tasks with tl_await; only the combinator completes it
 * (tl_future_set_result/set_error on it are TL_EINVAL). A result value it
 * passes on from a child is borrowed: the child keeps it (and frees it), and
 * the combinator's future keeps the child referenced while it lives.
 * Unless said otherwise, children already done count as completing in the
 * next loop iteration, as asyncio's done callbacks on them would run.
 *
 * Dropping the last reference to a pending combinator detaches it: its
 * children keep running and are no longer watched.
 *
 * Errors of every constructor: TL_EINVAL (NULL out, a NULL child, a child of
 * another loop, a bad argument), TL_ENOMEM (nothing is left behind),
 * TL_EWRONGTHREAD, TL_ECLOSED. The task-only calls (tl_timeout_enter*,
 * tl_as_completed_next, tl_taskgroup_wait) return TL_ENOTASK outside a task.
 */

/* asyncio.gather. Done when every one of futs[0..n) is done.
 *   return_errors == 0: the first child to fail or be cancelled completes
 *     the gather at once with that child's error (code and message) or
 *     cancellation; the other children keep running (and errors they end
 *     with later are marked retrieved, so none is reported unretrieved).
 *     Once all succeed, the result is NULL.
 *   return_errors != 0: result NULL once all are done, whatever their
 *     outcomes (each read from the child; their errors count as retrieved).
 * Cancelling the gather (tl_future_cancel, or cancelling a task that awaits
 * it) cancels every child not yet done, with the message, and returns 1 if
 * one of them was cancelled; the gather then ends cancelled through its
 * children: at the first cancelled child (return_errors == 0), or once all
 * are done (return_errors != 0), cancelled even if some child finished
 * normally. If no child could be cancelled (all already done), cancel
 * returns 0 and changes nothing, as asyncio's.
 * n == 0 gives a gather already done (result NULL). The same future may
 * appear more than once. */
TL_API int tl_gather(tl_loop_t *loop, tl_future_t *const *futs, size_t n,
                     int return_errors, tl_future_t **out);

typedef enum tl_wait_when {
    TL_ALL_COMPLETED = 0,
    TL_FIRST_COMPLETED = 1,
    TL_FIRST_EXCEPTION = 2 /* first error (not cancellation) or all done */
} tl_wait_when_t;

/* asyncio.wait. A future done (result NULL, never an error) when `when` is
 * met or after timeout_ns (< 0: no timeout; 0: the next iteration); find
 * which children are done with tl_future_done. The children are never
 * cancelled, not even when the wait is (that only stops the wait).
 * With TL_FIRST_EXCEPTION, the error of the failed child that ends the
 * wait is read (so marked retrieved), as asyncio's f.exception() does.
 * TL_EINVAL for n == 0 or a bad `when`. */
TL_API int tl_wait(tl_loop_t *loop, tl_future_t *const *futs, size_t n,
                   tl_wait_when_t when, int64_t timeout_ns, tl_future_t **out);

/* asyncio.wait_for (3.12). A future with f's outcome, or TL_ETIMEDOUT:
 *   - f done before the deadline (or already done: then the wait_for is
 *     done at once, whatever the timeout): f's result, error or
 *     cancellation;
 *   - at the deadline f is cancelled and the wait_for waits for f to finish:
 *     f cancelled gives TL_ETIMEDOUT; f done when the deadline came, or
 *     swallowing the cancellation, gives f's own outcome (its result wins);
 *   - timeout_ns < 0: no deadline; 0: cancel f at once (then as above).
 * Cancelling the wait_for cancels f (returns 1) and the wait_for ends when f
 * does: cancelled if f is (this cancellation wins over the timeout),
 * otherwise with f's outcome; if f was already done, the wait_for is
 * cancelled at once. */
TL_API int tl_wait_for(tl_future_t *f, int64_t timeout_ns, tl_future_t **out);

/* asyncio.shield. A future that mirrors f's outcome; cancelling it cancels
 * only it, leaving f running (the shield keeps f referenced while it lives;
 * keep a reference of your own to read f's outcome after that). f cancelled
 * gives a cancelled shield. If f is already done, *out
 * is f itself with a new reference, as asyncio returns the inner future. */
TL_API int tl_shield(tl_future_t *f, tl_future_t **out);

/* asyncio.as_completed (3.13): iterate futures in completion order, as the
 * futures themselves. A future given twice is yielded once. timeout_ns < 0:
 * none; when it passes, each remaining next gives TL_ETIMEDOUT (children
 * that completed before it still come first). The iterator references the
 * futures; *done and waiter results are borrowed, valid until
 * tl_as_completed_free. */
typedef struct tl_as_completed tl_as_completed_t;
TL_API int tl_as_completed_new(tl_loop_t *loop, tl_future_t *const *futs,
                               size_t n, int64_t timeout_ns,
                               tl_as_completed_t **out);
/* A new future (the caller's reference) whose result is the next child to
 * complete, in the order the futures were asked for, or whose error is
 * TL_ETIMEDOUT. Cancelling it gives its turn to the next one. TL_ESTATE
 * once as many futures were asked for (not cancelled) as there are
 * distinct children, or after tl_as_completed_free. */
TL_API int tl_as_completed_next_future(tl_as_completed_t *it,
                                       tl_future_t **out);
/* Inside a task: wait for the next child. 0 with *done set, TL_ETIMEDOUT,
 * TL_ESTATE when all were returned, TL_ECANCELLED if the task was cancelled
 * (a child it was being handed goes back to the front, for the next
 * caller), TL_ENOTASK. */
TL_API int tl_as_completed_next(tl_as_completed_t *it, tl_future_t **done);
/* Stop watching and release the futures; pending next futures are
 * cancelled. A task inside tl_as_completed_next returns TL_ECANCELLED and
 * the memory goes when it has. NULL is ignored. */
TL_API void tl_as_completed_free(tl_as_completed_t *it);

/* Timeout scopes: asyncio.timeout()/timeout_at(). Use as
 *     tl_timeout_t *t;
 *     if ((rc = tl_timeout_enter(50 * 1000000, &t)) == 0)
 *         rc = tl_timeout_exit(t, body());
 * The scope belongs to the task that entered it. Entering records the
 * task's tl_task_cancelling() count. When the deadline passes, the scope
 * cancels the task (tl_task_cancel: one more request), so whatever it awaits
 * returns TL_ECANCELLED and the body should return that code. Leaving takes
 * that request back (tl_task_uncancel) and turns the body's TL_ECANCELLED
 * into TL_ETIMEDOUT only if the count is then back at the recorded level:
 * a cancellation anyone else also requested (an outer cancel, an enclosing
 * scope that expired too) passes through as TL_ECANCELLED. So nested scopes
 * each convert only their own expiry. Deadlines are loop time
 * (tl_loop_time); one already passed fires in the next iteration. */
typedef struct tl_timeout tl_timeout_t;
/* Inside a task: enter with a deadline delay_ns from now (< 0: none; set
 * one later with tl_timeout_reschedule). */
TL_API int tl_timeout_enter(int64_t delay_ns, tl_timeout_t **out);
/* The same with an absolute loop time (< 0: none). */
TL_API int tl_timeout_enter_at(int64_t when_ns, tl_timeout_t **out);
/* Move the deadline (loop time; < 0: none) while inside the scope, before
 * it expired (TL_ESTATE after). */
TL_API int tl_timeout_reschedule(tl_timeout_t *t, int64_t when_ns);
/* 1 once the deadline passed and the scope cancelled the task, else 0. */
TL_API int tl_timeout_expired(const tl_timeout_t *t);
/* Leave the scope with the body's outcome `rc`: returns the final outcome
 * (rc, or TL_ETIMEDOUT as described above), cancels the timer and frees t.
 * Call it exactly once, from any point on the loop's thread (on a closed
 * loop it only frees t and returns rc); TL_EINVAL for NULL,
 * TL_EWRONGTHREAD (t is then not freed). */
TL_API int tl_timeout_exit(tl_timeout_t *t, int rc);

/* TaskGroup: asyncio.TaskGroup (3.13) structured concurrency. Use as
 *     tl_taskgroup_t *g;
 *     tl_taskgroup_new(loop, &g);                  // async with TaskGroup()
 *     rc = tl_taskgroup_spawn(g, fn, arg, NULL, NULL);
 *     ... the body: more spawns, awaits; rc is its outcome ...
 *     rc = tl_taskgroup_wait(g, rc);               // the end of the block
 *     tl_taskgroup_free(g);
 * The group's parent task is the task that made it (or, for a group made
 * outside any task, the one that waits). The first task of the group to
 * fail (an error, not a cancellation) cancels every other task of the group
 * and cancels the parent once, interrupting whatever it awaits (the body, or
 * the wait, which goes on waiting); tl_taskgroup_wait takes that request
 * back. Every failure is kept. */
typedef struct tl_taskgroup tl_taskgroup_t;
/* A new group on loop; may be called outside a task. */
TL_API int tl_taskgroup_new(tl_loop_t *loop, tl_taskgroup_t **out);
/* tl_task_spawn into the group (same options; *out, if out is not NULL,
 * gets a reference the caller owns). Allowed from any code on the loop's
 * thread until the group shuts down: TL_ESTATE once a failure or a
 * cancellation aborted it, or once its wait saw every task finish. */
TL_API int tl_taskgroup_spawn(tl_taskgroup_t *g, tl_task_fn_t fn, void *arg,
                              const tl_task_options_t *opts, tl_task_t **out);
/* Inside the parent task: leave the group's block with the body's outcome
 * `body_rc` (0, or the error or TL_ECANCELLED the body ended with). A
 * failing or cancelled body aborts the group (cancels its tasks). Then
 * waits until every task of the group is done, whatever happens meanwhile:
 * cancelling the parent while it waits aborts the group too. Returns
 *   - the first failed task's error code if any task failed (the rest via
 *     tl_taskgroup_errors), else body_rc if it is an error;
 *   - TL_ECANCELLED if the parent was cancelled by anyone but the group
 *     (during the body, body_rc == TL_ECANCELLED, or during the wait) and
 *     no task failed; a cancellation that loses to errors stays pending on
 *     the parent (its next await returns TL_ECANCELLED);
 *   - 0 otherwise.
 * One wait per group: TL_ESTATE for a second one, or from another task
 * than the parent. If the loop closes during the wait, the tasks are
 * cancelled and TL_ECANCELLED returned at once. */
TL_API int tl_taskgroup_wait(tl_taskgroup_t *g, int body_rc);
/* The failed tasks, in failure order: fills tasks[0..max) (borrowed, valid
 * until tl_taskgroup_free), returns how many failed. Their errors were read
 * by the group, so none is reported unretrieved. */
TL_API int tl_taskgroup_errors(const tl_taskgroup_t *g, tl_task_t **tasks,
                               size_t max);
/* Free the group. Tasks still running are cancelled (not waited for: they
 * finish on their own). Freed during a wait, the group goes when the wait
 * returns. NULL is ignored. Call tl_taskgroup_wait first if the parent may
 * have been cancelled by the group (it takes that request back). */
TL_API void tl_taskgroup_free(tl_taskgroup_t *g);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_TASK_H */
