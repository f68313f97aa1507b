/*
 * tulip/future.h - asyncio.Future in C.
 *
 * A future is pending until it gets exactly one outcome: a result (a pointer
 * with an optional destructor), an error (a negative TL_E* code and an
 * optional message), or cancellation (with an optional message).
 *
 * Ownership: tl_future_new returns a future holding one reference, owned by
 * the caller. Whoever keeps a pointer beyond the current call takes a
 * reference with tl_future_ref and gives it back with tl_future_unref; the
 * last unref frees the future, runs the result's destructor and frees the
 * messages. The loop holds its own reference while done callbacks are
 * scheduled, so dropping yours early is safe. A future holds a reference on
 * its loop.
 *
 * Threads: a future belongs to its loop's thread; every function but
 * ref/unref and get_loop returns TL_EWRONGTHREAD elsewhere. ref/unref are
 * atomic; a last unref on another thread hands the free over to the loop's
 * thread (the hand-over needs no memory, so it cannot fail; only if the
 * loop is closed does the free happen on the calling thread).
 *
 * A closed loop: functions that change a future return TL_ECLOSED; the
 * queries (done, cancelled, result, error, error_message) keep answering,
 * since an outcome can no longer change.
 *
 * Memory: completing a future with callbacks registered schedules them,
 * which may need memory; on TL_ENOMEM the future stays pending (set_result,
 * set_error and cancel then change nothing). A loop keeps the memory of
 * its freed futures for new ones (through the allocator, in chunks it gives
 * back as they empty, the last ones when the loop closes), so futures made
 * and freed at a steady rate cost no allocation.
 *
 * Errors never retrieved: a future freed in the error state whose error was
 * never read (tl_future_result or tl_future_error) is reported through the
 * loop's exception handler, like asyncio's "exception was never retrieved".
 * Cancellation is not reported.
 */
#ifndef TULIP_FUTURE_H
#define TULIP_FUTURE_H

#include "core.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Done callbacks get the future (borrowed for the call) and their ctx. */
typedef void (*tl_future_cb_t)(tl_future_t *future, void *ctx);
/* Releases a result value when the future is freed. */
typedef void (*tl_destructor_t)(void *value);

/* A new pending future on `loop` (refcount 1, the caller's).
 * TL_EINVAL, TL_ECLOSED, TL_EWRONGTHREAD, TL_ENOMEM. */
TL_API int tl_future_new(tl_loop_t *loop, tl_future_t **out);
TL_API int tl_future_ref(tl_future_t *f);
TL_API int tl_future_unref(tl_future_t *f);
/* The loop the future belongs to (no reference is added), or NULL. */
TL_API tl_loop_t *tl_future_get_loop(const tl_future_t *f);

/* Complete with a result. On success the future owns `value`: `destructor`
 * (may be NULL) is called on it when the future is freed (the value is the
 * destructor's context). On failure the caller keeps it. TL_ESTATE if the
 * future is already done, TL_EINVAL on a task (its outcome is its
 * function's), TL_ENOMEM. Done callbacks are scheduled with call_soon; none
 * runs inside this call. */
TL_API int tl_future_set_result(tl_future_t *f, void *value,
                                tl_destructor_t destructor);
/* Complete with an error: `code` is a negative TL_E* code other than
 * TL_ECANCELLED (use tl_future_cancel), `message` (may be NULL) is copied.
 * TL_EINVAL for a bad code, TL_ESTATE if already done. */
TL_API int tl_future_set_error(tl_future_t *f, int code, const char *message);
/* Cancel: 1 if the future was pending and is now cancelled, 0 if it was
 * already done (nothing changes), TL_ENOMEM. `message` (may be NULL) is
 * copied; if copying it fails the future is still cancelled, without the
 * message. On a task this is tl_task_cancel (a request, see task.h). */
TL_API int tl_future_cancel(tl_future_t *f, const char *message);

/* 1 or 0 (or a TL_E* code for a bad call). */
TL_API int tl_future_done(const tl_future_t *f);
TL_API int tl_future_cancelled(const tl_future_t *f);
/* The outcome: 0 and *value (if value is not NULL) for a result; the error
 * code for an error; TL_ECANCELLED when cancelled; TL_EPENDING while not
 * done. The value stays owned by the future. Marks an error retrieved. */
TL_API int tl_future_result(tl_future_t *f, void **value);
/* The error code (0 for a result, TL_ECANCELLED, TL_EPENDING). Marks an
 * error retrieved. */
TL_API int tl_future_error(tl_future_t *f);
/* The message given with the error or the cancellation, or NULL. Owned by
 * the future. */
TL_API const char *tl_future_error_message(const tl_future_t *f);

/* Call cb(f, ctx) once the future is done, through the loop's call_soon
 * (never from inside this call, even if the future is already done). The
 * same pair may be added more than once; callbacks run in the order added. */
TL_API int tl_future_add_done_callback(tl_future_t *f, tl_future_cb_t cb,
                                       void *ctx);
/* Remove every registration of (cb, ctx) that has not been scheduled yet;
 * returns how many were removed (always 0 once the future is done, since its
 * callbacks are then already scheduled). */
TL_API int tl_future_remove_done_callback(tl_future_t *f, tl_future_cb_t cb,
                                          void *ctx);

/* Run the loop until f is done, then return f's outcome as
 * tl_future_result does (0 with *result set, an error code, or
 * TL_ECANCELLED). TL_ESTOPPED if tl_loop_stop ended the run first;
 * TL_EINVAL if f belongs to another loop; TL_ERUNNING if a loop runs. */
TL_API int tl_loop_run_until_complete(tl_loop_t *loop, tl_future_t *f,
                                      void **result);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_FUTURE_H */
