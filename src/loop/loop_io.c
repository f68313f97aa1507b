/*
 * The loop's edges: readers and writers on raw descriptors (asyncio's
 * add_reader family), signal handlers, the exception handler and debug mode.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../core/alloc.h"
#include "loop_int.h"
#include "tulip/future.h"

/* ---- readers and writers ---------------------------------------------- */

static int fd_index(tl_fd_t fd, size_t *out) {
#if defined(_WIN32)
    *out = (size_t)fd;
#else
    if (fd < 0)
        return TL_EBADF;
    *out = (size_t)fd;
#endif
    return 0;
}

static int set_watch(tl_loop_t *loop, tl_fd_t fd, unsigned which,
                     tl_callback_t cb, void *ctx) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (cb == NULL)
        return TL_EINVAL;
    size_t i;
    if ((rc = fd_index(fd, &i)))
        return rc;
    unsigned prev = i < loop->fds_cap ? loop->fds[i].mask : 0, next = prev | which;
    /* The backend first: it is what tells a bad descriptor (EBADF) from a
     * good one, before the table grows to the size the number asks for. */
    if (next != prev && (rc = loop->be->watch(loop->be_state, fd, prev, next)))
        return rc;
    if (i >= loop->fds_cap) {
        size_t old = loop->fds_cap;
        if (tl__grow((void **)&loop->fds, &loop->fds_cap, i + 1, sizeof(*loop->fds))) {
            loop->be->unwatch(loop->be_state, fd, next); /* prev is 0 here */
            return TL_ENOMEM;
        }
        for (size_t k = old; k < loop->fds_cap; k++)
            loop->fds[k] = (tl__fdwatch_t){0};
    }
    tl__fdwatch_t *w = &loop->fds[i];
    if (prev == 0)
        loop->nwatched++;
    w->mask = next;
    if (which == TL_READABLE) {
        w->rcb = cb;
        w->rctx = ctx;
    } else {
        w->wcb = cb;
        w->wctx = ctx;
    }
    return 0;
}

static int clear_watch(tl_loop_t *loop, tl_fd_t fd, unsigned which) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    size_t i;
    if ((rc = fd_index(fd, &i)))
        return rc;
    if (i >= loop->fds_cap || !(loop->fds[i].mask & which))
        return 0;
    tl__fdwatch_t *w = &loop->fds[i];
    unsigned next = w->mask & ~which;
    rc = next ? loop->be->watch(loop->be_state, fd, w->mask, next)
              : loop->be->unwatch(loop->be_state, fd, w->mask);
    /* Forget the watcher even if the backend complained (the fd may be
     * closed already): the callback must not run again. */
    if (next == 0)
        loop->nwatched--;
    w->mask = next;
    if (which == TL_READABLE)
        w->rcb = NULL, w->rctx = NULL;
    else
        w->wcb = NULL, w->wctx = NULL;
    (void)rc;
    return 1;
}

int tl_loop_add_reader(tl_loop_t *loop, tl_fd_t fd, tl_callback_t cb, void *ctx) {
    return set_watch(loop, fd, TL_READABLE, cb, ctx);
}
int tl_loop_add_writer(tl_loop_t *loop, tl_fd_t fd, tl_callback_t cb, void *ctx) {
    return set_watch(loop, fd, TL_WRITABLE, cb, ctx);
}
int tl_loop_remove_reader(tl_loop_t *loop, tl_fd_t fd) {
    return clear_watch(loop, fd, TL_READABLE);
}
int tl_loop_remove_writer(tl_loop_t *loop, tl_fd_t fd) {
    return clear_watch(loop, fd, TL_WRITABLE);
}

void tl__loop_dispatch_io(tl_loop_t *loop, int n) {
    for (int k = 0; k < n && !loop->closed; k++) {
        size_t i = (size_t)loop->events[k].fd;
        unsigned ev = loop->events[k].events;
        /* Re-read the table before each call: a callback may remove or
         * replace watchers, or grow the table. */
        if ((ev & TL_READABLE) && i < loop->fds_cap && loop->fds[i].rcb)
            tl__loop_run_callback(loop, loop->fds[i].rcb, loop->fds[i].rctx);
        if ((ev & TL_WRITABLE) && !loop->closed && i < loop->fds_cap &&
            loop->fds[i].wcb)
            tl__loop_run_callback(loop, loop->fds[i].wcb, loop->fds[i].wctx);
    }
}

/* ---- signals ---------------------------------------------------------- */

static int backend_wakeup(void *loop) {
    tl_loop_t *l = loop;
    return l->be->wakeup(l->be_state);
}

int tl_loop_add_signal_handler(tl_loop_t *loop, int signum, tl_callback_t cb,
                               void *ctx) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (cb == NULL || signum < 1 || signum > TL__SIG_MAX)
        return TL_EINVAL;
    if (loop->sigh == NULL) {
        loop->sigh = tl__calloc(TL__SIG_MAX + 1, sizeof(*loop->sigh));
        if (loop->sigh == NULL)
            return TL_ENOMEM;
    }
    if (loop->sig == NULL && (rc = tl__sig_attach(&loop->sig, backend_wakeup, loop)))
        return rc;
    if ((rc = tl__sig_watch(loop->sig, signum, 1)))
        return rc;
    loop->sigh[signum].cb = cb;
    loop->sigh[signum].ctx = ctx;
    return 0;
}

int tl_loop_remove_signal_handler(tl_loop_t *loop, int signum) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (signum < 1 || signum > TL__SIG_MAX)
        return TL_EINVAL;
    if (loop->sigh == NULL || loop->sigh[signum].cb == NULL)
        return 0;
    tl__sig_watch(loop->sig, signum, 0);
    loop->sigh[signum].cb = NULL;
    loop->sigh[signum].ctx = NULL;
    return 1;
}

void tl__loop_take_signals(tl_loop_t *loop) {
    uint64_t got = tl__sig_take(loop->sig);
    for (int signum = 1; got; signum++, got >>= 1) {
        if (!(got & 1) || loop->sigh[signum].cb == NULL)
            continue;
        int rc = tl__ready_push(loop, loop->sigh[signum].cb, loop->sigh[signum].ctx, 0);
        if (rc)
            tl__loop_report(loop, "a signal could not be delivered", rc);
    }
}

void tl__loop_close_io(tl_loop_t *loop) {
    for (size_t i = 0; i < loop->fds_cap; i++)
        if (loop->fds[i].mask)
            loop->be->unwatch(loop->be_state, (tl_fd_t)i, loop->fds[i].mask);
    tl__free(loop->fds);
    loop->fds = NULL;
    loop->fds_cap = loop->nwatched = 0;
    if (loop->sig)
        tl__sig_detach(loop->sig);
    loop->sig = NULL;
    tl__free(loop->sigh);
    loop->sigh = NULL;
}

/* ---- exception handler and debug mode --------------------------------- */

int tl_loop_set_exception_handler(tl_loop_t *loop, tl_exception_handler_t handler,
                                  void *ctx) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    loop->eh = handler;
    loop->eh_ctx = ctx;
    return 0;
}

int tl_loop_default_exception_handler(tl_loop_t *loop,
                                      const tl_exception_context_t *c) {
    /* Like every loop function: the owner's thread, an open loop. */
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (c == NULL || c->message == NULL)
        return TL_EINVAL;
    char line[512];
    int n = snprintf(line, sizeof line, "tulip: %s", c->message);
    if (c->error && n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - n, " [%s: %s]", tl_err_name(c->error),
                      tl_strerror(c->error));
    if (c->error_message && n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - n, " (%s)", c->error_message);
    if (c->future && n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - n, " future=%p", (void *)c->future);
    if (c->callback && n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - n, " callback ctx=%p", c->callback_ctx);
    if (c->duration_ns && n < (int)sizeof line)
        snprintf(line + n, sizeof line - n, " took %.3f ms",
                 (double)c->duration_ns / 1e6);
    fprintf(stderr, "%s\n", line);
    return 0;
}

int tl_loop_call_exception_handler(tl_loop_t *loop, const tl_exception_context_t *c) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (c == NULL || c->message == NULL || c->size < sizeof(size_t))
        return TL_EINVAL;
    /* Callers built against an older, shorter struct get zeroes. */
    tl_exception_context_t full = {0};
    memcpy(&full, c, c->size < sizeof full ? c->size : sizeof full);
    full.size = sizeof full;
    if (loop->eh)
        loop->eh(loop, &full, loop->eh_ctx);
    else
        tl_loop_default_exception_handler(loop, &full);
    return 0;
}

void tl__loop_report(tl_loop_t *loop, const char *message, int error) {
    tl_exception_context_t c = {sizeof c, message, error, NULL, NULL, NULL, NULL, 0};
    tl_loop_call_exception_handler(loop, &c);
}

void tl__loop_run_callback(tl_loop_t *loop, tl_callback_t cb, void *ctx) {
    if (TL__LIKELY(!loop->debug)) {
        cb(ctx);
        return;
    }
    uint64_t t0 = tl__time_ns();
    cb(ctx);
    int64_t took = (int64_t)(tl__time_ns() - t0);
    if (took >= loop->slow_ns && !loop->closed) {
        tl_exception_context_t c = {sizeof c, "slow callback", 0, NULL, NULL,
                                    cb, ctx, took};
        tl_loop_call_exception_handler(loop, &c);
    }
}

int tl_loop_set_debug(tl_loop_t *loop, int enabled) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    loop->debug = enabled != 0;
    return 0;
}

int tl_loop_get_debug(const tl_loop_t *loop) {
    int rc = tl__loop_check(loop);
    return rc ? rc : loop->debug;
}

int tl_loop_set_slow_callback_duration(tl_loop_t *loop, int64_t ns) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (ns <= 0)
        return TL_EINVAL;
    loop->slow_ns = ns;
    return 0;
}
