/*
 * asyncio.Future in C. Done callbacks registered before completion are run
 * by one loop callback scheduled at completion (it is what asyncio's
 * consecutive call_soon calls amount to); callbacks added afterwards are
 * scheduled one by one.
 */
#include "tulip/future.h"

#include <stdatomic.h>
#include <stddef.h>

#include "../core/alloc.h"
#include "../loop/loop_int.h"
#include "fcache.h"
#include "future_int.h"

#define PENDING TL__FUT_PENDING
#define HAS_RESULT TL__FUT_RESULT
#define HAS_ERROR TL__FUT_ERROR
#define CANCELLED TL__FUT_CANCELLED
typedef tl__done_cb_t done_cb_t;

/* A callback added after completion, scheduled on its own. */
typedef struct late_cb {
    tl_future_t *f;
    done_cb_t cb;
} late_cb_t;

/* Mutators need a live loop on its own thread. */
static int check(const tl_future_t *f) {
    return f ? tl__loop_check(f->loop) : TL_EINVAL;
}

/* Queries only need the owning thread: once the loop is closed an outcome
 * can no longer change, so it stays readable (as asyncio's result() does). */
static int check_query(const tl_future_t *f) {
    if (f == NULL)
        return TL_EINVAL;
    return f->loop->owner == tl__thread_self() ? 0 : TL_EWRONGTHREAD;
}

int tl__future_create(tl_loop_t *loop, size_t size, const tl__future_class_t *cls,
                      tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (out == NULL || size < sizeof(tl_future_t))
        return TL_EINVAL;
    tl__fchunk_t *chunk;
    tl_future_t *f = tl__fcache_alloc(loop, size, &chunk);
    if (f == NULL)
        return TL_ENOMEM;
    f->chunk = chunk;
    atomic_init(&f->refs, 1);
    f->loop = loop;
    f->cls = cls;
    f->cbs = f->inline_cbs;
    f->cbs_cap = 2;
    tl_loop_ref(loop);
    *out = f;
    return 0;
}

int tl_future_new(tl_loop_t *loop, tl_future_t **out) {
    return tl__future_create(loop, sizeof(tl_future_t), NULL, out);
}

static void free_callbacks(tl_future_t *f) {
    if (f->cbs != f->inline_cbs)
        tl__free(f->cbs);
    f->cbs = f->inline_cbs;
    f->ncbs = 0;
    f->cbs_cap = 2;
}

static void destroy(void *arg) {
    tl_future_t *f = arg;
    tl_loop_t *loop = f->loop;
    if (f->state == HAS_ERROR && !f->retrieved &&
        tl__loop_check(loop) == 0) {
        tl_exception_context_t c = {sizeof c, "future error was never retrieved",
                                    f->error, f->message, f, NULL, NULL, 0};
        tl_loop_call_exception_handler(loop, &c);
    }
    if (f->state == HAS_RESULT && f->destructor)
        f->destructor(f->value);
    free_callbacks(f);
    if (f->cls && f->cls->finalize)
        f->cls->finalize(f);
    tl__free(f->message);
    tl__fcache_free(loop, f, f->chunk);
    tl_loop_unref(loop);
}

static void reap(void *node) {
    destroy((char *)node - offsetof(tl_future_t, reap));
}

int tl_future_ref(tl_future_t *f) {
    if (f == NULL)
        return TL_EINVAL;
    atomic_fetch_add(&f->refs, 1);
    return 0;
}

/* A last unref on another thread hands the free to the loop's thread (a
 * future's class may own loop-side state, such as a socket operation's
 * watcher, that only that thread may touch) through the node inside the
 * future, so the hand-over cannot fail. Only a closed loop, which no
 * longer runs anything, leaves the free to the calling thread. */
int tl_future_unref(tl_future_t *f) {
    if (f == NULL)
        return TL_EINVAL;
    if (atomic_fetch_sub(&f->refs, 1) != 1)
        return 0;
    if (f->loop->owner == tl__thread_self())
        destroy(f);
    else {
        f->reap.fn = reap;
        if (tl__loop_post_node(f->loop, &f->reap) != 0)
            destroy(f);
    }
    return 0;
}

tl_loop_t *tl_future_get_loop(const tl_future_t *f) { return f ? f->loop : NULL; }

/* ---- completion ------------------------------------------------------- */

static void run_callbacks(void *arg) {
    tl_future_t *f = arg;
    /* After completion nothing edits the array, so it can be walked while
     * the callbacks run. */
    for (size_t i = 0; i < f->ncbs; i++)
        f->cbs[i].cb(f, f->cbs[i].ctx);
    free_callbacks(f);
    tl_future_unref(f);
}

static void drop_callbacks(void *arg) {
    tl_future_t *f = arg;
    free_callbacks(f);
    tl_future_unref(f);
}

/* Schedule the callbacks before the state changes, so a failure leaves the
 * future pending and the caller gets TL_ENOMEM. */
static int schedule(tl_future_t *f) {
    if (f->ncbs == 0)
        return 0;
    if (f->loop->closed) {
        /* Only a closing loop completes futures now (tasks it winds
         * down): their callbacks can never run. */
        free_callbacks(f);
        return 0;
    }
    int rc = tl__loop_call_soon_drop(f->loop, run_callbacks, drop_callbacks, f);
    if (rc == 0)
        atomic_fetch_add(&f->refs, 1);
    return rc;
}

int tl__future_complete(tl_future_t *f, int state, void *value,
                        tl_destructor_t destructor, int error, const char *message) {
    if (f->state != PENDING)
        return TL_ESTATE;
    char *copy = tl__strdup(message);
    if (message && copy == NULL && state != CANCELLED)
        return TL_ENOMEM;
    int rc = schedule(f);
    if (rc) {
        tl__free(copy);
        return rc;
    }
    f->state = (uint8_t)state;
    f->value = value;
    f->destructor = destructor;
    f->error = error;
    f->message = copy;
    return 0;
}

int tl_future_set_result(tl_future_t *f, void *value, tl_destructor_t destructor) {
    int rc = check(f);
    if (rc)
        return rc;
    if (f->cls)
        return TL_EINVAL; /* a task's outcome is its function's */
    return tl__future_complete(f, HAS_RESULT, value, destructor, 0, NULL);
}

int tl_future_set_error(tl_future_t *f, int code, const char *message) {
    int rc = check(f);
    if (rc)
        return rc;
    if (code >= 0 || code == TL_ECANCELLED || f->cls)
        return TL_EINVAL;
    return tl__future_complete(f, HAS_ERROR, NULL, NULL, code, message);
}

int tl__future_cancel_base(tl_future_t *f, const char *message) {
    int rc = tl__future_complete(f, CANCELLED, NULL, NULL, TL_ECANCELLED, message);
    return rc == 0 ? 1 : rc == TL_ESTATE ? 0 : rc;
}

int tl_future_cancel(tl_future_t *f, const char *message) {
    int rc = check(f);
    if (rc)
        return rc;
    if (f->cls && f->cls->cancel)
        return f->cls->cancel(f, message);
    return tl__future_cancel_base(f, message);
}

void tl__future_steal_result(tl_future_t *f) { f->destructor = NULL; }

/* ---- queries ---------------------------------------------------------- */

int tl_future_done(const tl_future_t *f) {
    int rc = check_query(f);
    return rc ? rc : f->state != PENDING;
}

int tl_future_cancelled(const tl_future_t *f) {
    int rc = check_query(f);
    return rc ? rc : f->state == CANCELLED;
}

int tl_future_error(tl_future_t *f) {
    int rc = check_query(f);
    if (rc)
        return rc;
    switch (f->state) {
    case PENDING:
        return TL_EPENDING;
    case HAS_RESULT:
        return 0;
    default:
        f->retrieved = 1;
        return f->error;
    }
}

int tl_future_result(tl_future_t *f, void **value) {
    int rc = tl_future_error(f);
    if (rc == 0 && value)
        *value = f->value;
    return rc;
}

const char *tl_future_error_message(const tl_future_t *f) {
    return check_query(f) ? NULL : f->message;
}

/* ---- done callbacks --------------------------------------------------- */

static void run_late(void *arg) {
    late_cb_t *l = arg;
    l->cb.cb(l->f, l->cb.ctx);
    tl_future_unref(l->f);
    tl__free(l);
}

static void drop_late(void *arg) {
    late_cb_t *l = arg;
    tl_future_unref(l->f);
    tl__free(l);
}

int tl_future_add_done_callback(tl_future_t *f, tl_future_cb_t cb, void *ctx) {
    int rc = check(f);
    if (rc)
        return rc;
    if (cb == NULL)
        return TL_EINVAL;
    if (f->state == PENDING) {
        if (f->ncbs == f->cbs_cap) {
            if (f->cbs_cap > UINT32_MAX / 2)
                return TL_ENOMEM;
            uint32_t cap = f->cbs_cap * 2;
            done_cb_t *n = f->cbs == f->inline_cbs
                               ? tl__malloc(cap * sizeof(*n))
                               : tl__realloc(f->cbs, cap * sizeof(*n));
            if (n == NULL)
                return TL_ENOMEM;
            if (f->cbs == f->inline_cbs)
                for (uint32_t i = 0; i < f->ncbs; i++)
                    n[i] = f->inline_cbs[i];
            f->cbs = n;
            f->cbs_cap = cap;
        }
        f->cbs[f->ncbs++] = (done_cb_t){cb, ctx};
        return 0;
    }
    late_cb_t *l = tl__malloc(sizeof(*l));
    if (l == NULL)
        return TL_ENOMEM;
    *l = (late_cb_t){f, {cb, ctx}};
    if ((rc = tl__loop_call_soon_drop(f->loop, run_late, drop_late, l))) {
        tl__free(l);
        return rc;
    }
    atomic_fetch_add(&f->refs, 1);
    return 0;
}

int tl_future_remove_done_callback(tl_future_t *f, tl_future_cb_t cb, void *ctx) {
    int rc = check(f);
    if (rc)
        return rc;
    if (f->state != PENDING)
        return 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < f->ncbs; i++)
        if (f->cbs[i].cb != cb || f->cbs[i].ctx != ctx)
            f->cbs[k++] = f->cbs[i];
    int removed = (int)(f->ncbs - k);
    f->ncbs = k;
    return removed;
}

/* ---- run_until_complete ----------------------------------------------- */

static void stop_loop(tl_future_t *f, void *loop) {
    (void)f;
    tl_loop_stop(loop);
}

int tl_loop_run_until_complete(tl_loop_t *loop, tl_future_t *f, void **result) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (f == NULL || f->loop != loop)
        return TL_EINVAL;
    if (tl_loop_get_running() != NULL)
        return TL_ERUNNING;
    if ((rc = tl_future_add_done_callback(f, stop_loop, loop)))
        return rc;
    tl_future_ref(f); /* a callback may drop the caller's reference */
    rc = tl_loop_run_forever(loop);
    tl_future_remove_done_callback(f, stop_loop, loop);
    if (rc == 0)
        rc = f->state == PENDING ? TL_ESTOPPED : tl_future_result(f, result);
    tl_future_unref(f);
    return rc;
}
