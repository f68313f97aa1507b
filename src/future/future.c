/*
 * asyncio.Future in C. Done callbacks registered before completion are run
 * by one loop callback scheduled at completion (it is what asyncio's
 * consecutive call_soon calls amount to); callbacks added afterwards are
 * scheduled one by one.
 */
#include "tulip/future.h"

#include <stdatomic.h>

#include "../core/alloc.h"
#include "../loop/loop_int.h"

enum { PENDING, HAS_RESULT, HAS_ERROR, CANCELLED };

typedef struct done_cb {
    tl_future_cb_t cb;
    void *ctx;
} done_cb_t;

struct tl_future {
    atomic_int refs;
    uint8_t state;
    uint8_t retrieved;
    int error;
    tl_loop_t *loop;
    void *value;
    tl_destructor_t destructor;
    char *message;
    done_cb_t *cbs; /* points at inline_cbs until more are needed */
    size_t ncbs, cbs_cap;
    done_cb_t inline_cbs[2];
};

/* A callback added after completion, scheduled on its own. */
typedef struct late_cb {
    tl_future_t *f;
    done_cb_t cb;
} late_cb_t;

static int check(const tl_future_t *f) {
    return f ? tl__loop_check(f->loop) : TL_EINVAL;
}

int tl_future_new(tl_loop_t *loop, tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    tl_future_t *f = tl__calloc(1, sizeof(*f));
    if (f == NULL)
        return TL_ENOMEM;
    atomic_init(&f->refs, 1);
    f->loop = loop;
    f->cbs = f->inline_cbs;
    f->cbs_cap = 2;
    tl_loop_ref(loop);
    *out = f;
    return 0;
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
    tl__free(f->message);
    tl__free(f);
    tl_loop_unref(loop);
}

/* Freed on the loop thread, or here if the loop can no longer take it. */
static void destroy_quietly(void *arg) {
    tl_future_t *f = arg;
    f->retrieved = 1;
    destroy(f);
}

int tl_future_ref(tl_future_t *f) {
    if (f == NULL)
        return TL_EINVAL;
    atomic_fetch_add(&f->refs, 1);
    return 0;
}

int tl_future_unref(tl_future_t *f) {
    if (f == NULL)
        return TL_EINVAL;
    if (atomic_fetch_sub(&f->refs, 1) != 1)
        return 0;
    if (f->loop->owner == tl__thread_self() ||
        tl__loop_call_soon_threadsafe_drop(f->loop, destroy, destroy_quietly, f))
        destroy(f);
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
    int rc = tl__loop_call_soon_drop(f->loop, run_callbacks, drop_callbacks, f);
    if (rc == 0)
        atomic_fetch_add(&f->refs, 1);
    return rc;
}

int tl_future_set_result(tl_future_t *f, void *value, tl_destructor_t destructor) {
    int rc = check(f);
    if (rc)
        return rc;
    if (f->state != PENDING)
        return TL_ESTATE;
    if ((rc = schedule(f)))
        return rc;
    f->state = HAS_RESULT;
    f->value = value;
    f->destructor = destructor;
    return 0;
}

int tl_future_set_error(tl_future_t *f, int code, const char *message) {
    int rc = check(f);
    if (rc)
        return rc;
    if (code >= 0 || code == TL_ECANCELLED)
        return TL_EINVAL;
    if (f->state != PENDING)
        return TL_ESTATE;
    char *copy = tl__strdup(message);
    if (message && copy == NULL)
        return TL_ENOMEM;
    if ((rc = schedule(f))) {
        tl__free(copy);
        return rc;
    }
    f->state = HAS_ERROR;
    f->error = code;
    f->message = copy;
    return 0;
}

int tl_future_cancel(tl_future_t *f, const char *message) {
    int rc = check(f);
    if (rc)
        return rc;
    if (f->state != PENDING)
        return 0;
    if ((rc = schedule(f)))
        return rc;
    f->state = CANCELLED;
    f->error = TL_ECANCELLED;
    f->message = tl__strdup(message); /* NULL on failure: cancelled anyway */
    return 1;
}

/* ---- queries ---------------------------------------------------------- */

int tl_future_done(const tl_future_t *f) {
    int rc = check(f);
    return rc ? rc : f->state != PENDING;
}

int tl_future_cancelled(const tl_future_t *f) {
    int rc = check(f);
    return rc ? rc : f->state == CANCELLED;
}

int tl_future_error(tl_future_t *f) {
    int rc = check(f);
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
    return check(f) ? NULL : f->message;
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
            size_t cap = f->cbs_cap * 2;
            done_cb_t *n = f->cbs == f->inline_cbs
                               ? tl__malloc(cap * sizeof(*n))
                               : tl__realloc(f->cbs, cap * sizeof(*n));
            if (n == NULL)
                return TL_ENOMEM;
            if (f->cbs == f->inline_cbs)
                for (size_t i = 0; i < f->ncbs; i++)
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
    size_t k = 0;
    for (size_t i = 0; i < f->ncbs; i++)
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
