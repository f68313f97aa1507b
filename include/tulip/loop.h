/*
 * tulip/loop.h - the event loop: asyncio's base event loop, in C.
 *
 * A loop belongs to the thread that created it: every function here except
 * tl_loop_call_soon_threadsafe, tl_loop_ref and tl_loop_unref returns
 * TL_EWRONGTHREAD when called from another thread, and TL_ECLOSED once the
 * loop is closed. Any number of loops may exist in a process and in a thread,
 * but a thread runs at most one at a time.
 *
 * One iteration: wait for I/O (not at all if callbacks are ready), run the
 * reader and writer callbacks of ready descriptors, move expired timers,
 * signals and callbacks from other threads to the ready queue, then run the
 * callbacks that were ready at that point, in FIFO order. A callback
 * scheduled while that batch runs waits for the next iteration.
 */
#ifndef TULIP_LOOP_H
#define TULIP_LOOP_H

#include "core.h"
#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tl_loop tl_loop_t;
typedef struct tl_future tl_future_t;

/* A scheduled callback or timer, for cancelling it. 0 is never a valid
 * handle. A handle stays safe to use after its callback ran or the loop
 * recycled it: it then simply refers to nothing. Handles are per loop:
 * give one only to the loop that issued it. */
typedef uint64_t tl_handle_t;

/* Option structs: set size = sizeof the struct you built against; a zeroed
 * struct (size 0 included) means defaults. A struct from a newer header is
 * accepted when the fields this library does not know are zero. */
typedef struct tl_loop_options {
    size_t size; /* sizeof(tl_loop_options_t), or 0 with every field 0 */
    /* The poller; NULL picks tl_backend_default() ($TL_BACKEND or epoll). */
    const tl_backend_ops_t *backend;
    /* Debug mode: > 0 on, < 0 off, 0 follows $TL_DEBUG ("1" turns it on). */
    int debug;
    /* In debug mode, callbacks running longer than this are reported;
     * 0 means 100 ms, asyncio's default. */
    int64_t slow_callback_ns;
} tl_loop_options_t;

/* Create a loop owned by the calling thread, with one reference held by the
 * caller. opts may be NULL. TL_EINVAL for a bad option, TL_ENOMEM, or the
 * backend's error. *out is set only on success. */
TL_API int tl_loop_new(const tl_loop_options_t *opts, tl_loop_t **out);

/* References. tl_loop_ref may be called from any thread (another thread that
 * calls tl_loop_call_soon_threadsafe holds one so the loop's memory stays
 * valid). The last unref frees the loop, closing it first if needed (when
 * that happens on a thread other than the owner, or while the loop runs, the
 * close is skipped and the resources leak: close it properly). */
TL_API int tl_loop_ref(tl_loop_t *loop);
TL_API int tl_loop_unref(tl_loop_t *loop);

/* Close: drop every pending callback, timer, reader, writer and signal
 * handler without running them, and release the backend. The loop object
 * stays valid (every call then returns TL_ECLOSED) until its last unref.
 * TL_ERUNNING while the loop runs; closing twice returns 0. */
TL_API int tl_loop_close(tl_loop_t *loop);

/* Run until tl_loop_stop. TL_ERUNNING if this or another loop already runs
 * in this thread. Returns 0 after a stop, or a backend error (the loop is
 * still usable). */
TL_API int tl_loop_run_forever(tl_loop_t *loop);
/* Run a single iteration, waiting at most timeout_ns for I/O (-1: as long as
 * needed; 0: do not wait), for embedding the loop in another one. A stop
 * requested before or during it is used up by it. */
TL_API int tl_loop_run_once(tl_loop_t *loop, int64_t timeout_ns);
/* Ask a running loop to return once the current iteration is done. Called
 * while the loop is not running, the next run performs one iteration and
 * returns, as asyncio does. From another thread, schedule it with
 * tl_loop_call_soon_threadsafe(loop, tl_loop_stop_cb, loop). */
TL_API int tl_loop_stop(tl_loop_t *loop);
/* tl_loop_stop as a tl_callback_t (ctx is the loop). */
TL_API void tl_loop_stop_cb(void *loop);

/* 1 or 0; TL_EINVAL for NULL. Safe to call on a closed loop. */
TL_API int tl_loop_is_running(const tl_loop_t *loop);
TL_API int tl_loop_is_closed(const tl_loop_t *loop);
/* The loop's clock in nanoseconds (tl_now_ns); call_at deadlines use it.
 * A negative TL_E* code on error. */
TL_API int64_t tl_loop_time(const tl_loop_t *loop);
/* The loop running in the calling thread, or NULL. */
TL_API tl_loop_t *tl_loop_get_running(void);
/* The backend's name ("epoll", "poll", ...), or NULL for a NULL loop. Any
 * thread, closed or not. */
TL_API const char *tl_loop_backend_name(const tl_loop_t *loop);

/* Schedule cb(ctx) for the next iteration; FIFO among call_soon callbacks.
 * `handle` may be NULL; if not, it receives a handle for tl_handle_cancel.
 * TL_EINVAL for a NULL cb, TL_ENOMEM, TL_ECLOSED, TL_EWRONGTHREAD. */
TL_API int tl_loop_call_soon(tl_loop_t *loop, tl_callback_t cb, void *ctx,
                             tl_handle_t *handle);
/* Schedule cb(ctx) after delay_ns (a negative delay counts as 0). Timers due
 * at the same time run in the order they were scheduled. */
TL_API int tl_loop_call_later(tl_loop_t *loop, int64_t delay_ns,
                              tl_callback_t cb, void *ctx,
                              tl_handle_t *handle);
/* Schedule cb(ctx) at loop time when_ns (tl_loop_time's clock). */
TL_API int tl_loop_call_at(tl_loop_t *loop, int64_t when_ns, tl_callback_t cb,
                           void *ctx, tl_handle_t *handle);
/* Schedule cb(ctx) from any thread; the loop wakes up if it sleeps.
 * Callbacks from one thread run in the order they were sent. Callbacks
 * still queued when the loop closes are dropped. Not async-signal-safe (it
 * takes a lock): use tl_loop_add_signal_handler for signals. */
TL_API int tl_loop_call_soon_threadsafe(tl_loop_t *loop, tl_callback_t cb,
                                        void *ctx);

/* Cancel a scheduled callback or timer: 1 if it was pending and will not
 * run, 0 if it already ran, was cancelled, or h is 0. */
TL_API int tl_handle_cancel(tl_loop_t *loop, tl_handle_t h);
/* 1 while the callback is scheduled and not cancelled, else 0. */
TL_API int tl_handle_pending(tl_loop_t *loop, tl_handle_t h);

/* Watch a descriptor (level-triggered): cb(ctx) runs in every iteration in
 * which fd is readable (writable). Adding replaces an existing reader
 * (writer) of that fd. The loop never closes fd; remove the watchers before
 * closing it. TL_EBADF for a negative or invalid fd, or the backend's error. */
TL_API int tl_loop_add_reader(tl_loop_t *loop, tl_fd_t fd, tl_callback_t cb,
                              void *ctx);
TL_API int tl_loop_add_writer(tl_loop_t *loop, tl_fd_t fd, tl_callback_t cb,
                              void *ctx);
/* 1 if a watcher was removed, 0 if there was none. */
TL_API int tl_loop_remove_reader(tl_loop_t *loop, tl_fd_t fd);
TL_API int tl_loop_remove_writer(tl_loop_t *loop, tl_fd_t fd);

/* A poller: called once per loop iteration, before the loop decides how
 * long to wait for events. It must not block. It may do work (deliver a
 * user-space network stack's packets, run callbacks) and returns nonzero
 * when it has more to do soon (work in flight that will progress without
 * an event the loop can sleep on), zero when the loop may sleep; work it
 * did in this call does not count (callbacks it scheduled keep the loop
 * awake by themselves). A stack that wants pure busy-polling returns 1
 * always and pays a core for it. While any
 * poller returns nonzero the loop polls its backend with a zero timeout
 * instead of sleeping (run-to-completion, spinning): timers, descriptors
 * and signals keep working beside it. */
typedef int (*tl_poller_t)(tl_loop_t *loop, void *ctx);
/* Add a poller (the same fn and ctx twice: TL_EEXIST). Pollers run in the
 * order they were added. TL_EINVAL, TL_EWRONGTHREAD, TL_ECLOSED,
 * TL_ENOMEM. */
TL_API int tl_loop_add_poller(tl_loop_t *loop, tl_poller_t fn, void *ctx);
/* 1 if the poller was removed, 0 if there was none. It may be called from
 * inside a poller (itself or another), which is then not called again. */
TL_API int tl_loop_remove_poller(tl_loop_t *loop, tl_poller_t fn, void *ctx);

/* Run cb(ctx) as a loop callback after signal `signum` arrives (several
 * arrivals before the callback runs are folded into one call). Replaces
 * this loop's previous handler for signum. Several loops may handle the same
 * signal: each gets its own callback. While any loop handles a signal, the
 * process-wide disposition is tulip's; the previous one is restored when the
 * last handler is removed. TL_EINVAL for a signal that cannot be caught
 * (SIGKILL, SIGSTOP, out of range); TL_ENOSYS where signals do not exist. */
TL_API int tl_loop_add_signal_handler(tl_loop_t *loop, int signum,
                                      tl_callback_t cb, void *ctx);
/* 1 if a handler was removed, 0 if there was none. */
TL_API int tl_loop_remove_signal_handler(tl_loop_t *loop, int signum);

/* What went wrong, handed to the exception handler. Only `message` is
 * always set; the pointers are borrowed for the duration of the call. */
typedef struct tl_exception_context {
    size_t size;           /* sizeof(tl_exception_context_t) */
    const char *message;   /* what happened, in words */
    int error;             /* a TL_E* code, or 0 */
    const char *error_message; /* the text given with the error, or NULL */
    tl_future_t *future;   /* the future concerned, or NULL */
    tl_callback_t callback; /* the callback concerned, or NULL */
    void *callback_ctx;
    int64_t duration_ns;   /* for slow-callback reports, else 0 */
} tl_exception_context_t;

typedef void (*tl_exception_handler_t)(tl_loop_t *loop,
                                       const tl_exception_context_t *context,
                                       void *ctx);

/* Install a handler (NULL restores the default, which prints one line with
 * the context to stderr). It runs on the loop's thread. */
TL_API int tl_loop_set_exception_handler(tl_loop_t *loop,
                                         tl_exception_handler_t handler,
                                         void *ctx);
/* Report through the installed handler. TL_EINVAL without a message. */
TL_API int tl_loop_call_exception_handler(tl_loop_t *loop,
                                          const tl_exception_context_t *c);
/* The default handler's behaviour, for handlers that want to chain to it. */
TL_API int tl_loop_default_exception_handler(tl_loop_t *loop,
                                             const tl_exception_context_t *c);

/* Debug mode: callbacks slower than the threshold are reported through the
 * exception handler (error 0, duration_ns set). */
TL_API int tl_loop_set_debug(tl_loop_t *loop, int enabled);
/* 1 or 0, or a TL_E* code. */
TL_API int tl_loop_get_debug(const tl_loop_t *loop);
TL_API int tl_loop_set_slow_callback_duration(tl_loop_t *loop, int64_t ns);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_LOOP_H */
