/*
 * tulip/executor.h - a thread pool for blocking work: asyncio's
 * loop.run_in_executor over concurrent.futures.ThreadPoolExecutor, in C.
 *
 * An executor owns a fixed set of worker threads and a FIFO queue of jobs.
 * tl_loop_run_in_executor queues fn(arg) and returns a future of the calling
 * loop; a worker runs fn, and the outcome is delivered to the future on the
 * loop's own thread, in batches (completions from many jobs share one
 * wakeup of the loop and one callback). One executor may serve any number
 * of loops on any threads.
 *
 * Cost: submitting takes no lock and wakes no thread while a worker is
 * awake to take the job; a worker that finds the queue empty watches it
 * for up to 20 us before it sleeps (one worker at a time), so bursts of
 * small jobs do not pay a thread wakeup each. A job's future comes from
 * the loop's cache of future memory (see future.h), so a burst of jobs
 * touches fresh memory in large chunks rather than a malloc each.
 *
 * Lifetime: a queued or running job holds a reference on its future (and so
 * on its loop) and on its executor, so neither goes away under it. If the
 * job's loop is closed before the outcome arrives, the outcome is dropped
 * (fn's result is not freed by tulip: it is the job's to own) and the
 * references are released where that is found: on the worker thread, or
 * in tl_loop_close for outcomes that had arrived but not been delivered.
 */
#ifndef TULIP_EXECUTOR_H
#define TULIP_EXECUTOR_H

#include <stddef.h>

#include "core.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tl_executor tl_executor_t;

/* A job, run on a worker thread. Return 0 and set *result (it becomes the
 * future's result, with no destructor; *result starts as NULL), or a
 * negative TL_E* code, which becomes the future's error (TL_ECANCELLED
 * cancels the future). A positive return counts as 0. fn must not call
 * functions of the loop other than the thread-safe ones. */
typedef int (*tl_executor_fn_t)(void *arg, void **result);

/* A new executor with nthreads workers (0: the number of online CPUs),
 * started at once. The caller owns it and frees it with tl_executor_free.
 * TL_EINVAL for a NULL out, TL_ENOMEM, or the system's error when a thread
 * cannot start (none is left running). *out is set only on success. */
TL_API int tl_executor_new(size_t nthreads, tl_executor_t **out);

/* Queue fn(arg) on ex and return, in *out, a new future of loop (one
 * reference, the caller's) that gets fn's outcome on loop's thread.
 * ex NULL: the loop's default executor, created on first use with one
 * worker per CPU and shut down (waiting for running jobs, cancelling queued
 * ones) when the loop closes.
 *
 * Cancelling the future (tl_future_cancel) before a worker took the job
 * removes it: fn never runs and cancel returns 1. Once fn is running,
 * cancel returns 0, changes nothing, and fn's outcome is delivered
 * (concurrent.futures' rule).
 *
 * Call on loop's thread. TL_EINVAL (NULL loop, fn or out), TL_EWRONGTHREAD,
 * TL_ECLOSED (the loop is closed, or ex is shut down), TL_ENOMEM. */
TL_API int tl_loop_run_in_executor(tl_loop_t *loop, tl_executor_t *ex,
                                   tl_executor_fn_t fn, void *arg,
                                   tl_future_t **out);

/* Stop accepting jobs: later tl_loop_run_in_executor calls on ex return
 * TL_ECLOSED. Jobs already queued still run unless cancel_pending is set, in
 * which case they are removed and their futures cancelled (at once for the
 * calling thread's own open loop, else through a callback on each future's
 * loop). wait != 0 returns after every worker has finished its last job
 * and exited; wait == 0 returns at once (the workers finish the queue and
 * exit by themselves). Any thread but a worker of ex may call it; calling
 * it again is harmless (0). TL_EINVAL for NULL. */
TL_API int tl_executor_shutdown(tl_executor_t *ex, int wait, int cancel_pending);

/* tl_executor_shutdown(ex, 1, 0) if not done yet, then release the
 * caller's executor. Its memory goes when the last job holding it is
 * finished. Not from a worker of ex. NULL is ignored. */
TL_API void tl_executor_free(tl_executor_t *ex);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_EXECUTOR_H */
