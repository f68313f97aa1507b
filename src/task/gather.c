/*
 * asyncio.gather: one future for many. Its class's cancel is asyncio's
 * _GatheringFuture.cancel: it cancels the children rather than the gather,
 * which then ends cancelled through them (return_errors == 0: the first
 * cancelled child completes it; otherwise, once all are done, the request
 * recorded here makes it cancelled even if a child finished normally).
 */
#include "../core/alloc.h"
#include "combinator.h"
#include "tulip/task.h"

typedef struct gather {
    tl__watch_t w;
    tl_future_t *fut; /* the gather; it owns this state */
    size_t left;      /* children not seen yet */
    char *cancel_msg;
    uint8_t return_errors, cancel_requested;
} gather_t;

/* Children finishing after the gather was done and freed: asyncio's
 * callback still reads their exception, so none is reported unretrieved. */
static void mark_retrieved(tl_future_t *f, void *ctx) {
    (void)ctx;
    tl_future_error(f);
}

static void on_done(tl__watch_t *w, size_t i) {
    gather_t *g = (gather_t *)w;
    tl_future_t *child = w->kids[i].f;
    int err = tl_future_error(child); /* marks it retrieved, as asyncio does */
    g->left--;
    if (!tl__combo_pending(g->fut))
        return;
    if (err && !g->return_errors) {
        tl__combo_complete(g->fut, err == TL_ECANCELLED ? TL__FUT_CANCELLED : TL__FUT_ERROR,
                           NULL, err, child->message);
        return;
    }
    if (g->left > 0)
        return;
    if (g->cancel_requested)
        tl__combo_complete(g->fut, TL__FUT_CANCELLED, NULL, TL_ECANCELLED, g->cancel_msg);
    else
        tl__combo_complete(g->fut, TL__FUT_RESULT, NULL, 0, NULL);
}

static int gather_cancel(tl_future_t *f, const char *message) {
    gather_t *g = tl__combo_state(f);
    if (!tl__combo_pending(f))
        return 0;
    int any = 0;
    for (size_t i = 0; i < g->w.n; i++)
        if (tl_future_cancel(g->w.kids[i].f, message) == 1)
            any = 1;
    if (any) {
        g->cancel_requested = 1;
        tl__free(g->cancel_msg);
        g->cancel_msg = tl__strdup(message); /* NULL on failure: no message */
    }
    return any;
}

static void gather_finalize(tl_future_t *f) {
    gather_t *g = tl__combo_state(f);
    g->fut = NULL;
    tl__watch_stop(&g->w, tl__combo_pending(f) ? NULL : mark_retrieved);
    tl__watch_release(&g->w);
}

static void gather_destroy(tl__watch_t *w) {
    gather_t *g = (gather_t *)w;
    tl__watch_fini(w);
    tl__free(g->cancel_msg);
    tl__free(g);
}

static const tl__future_class_t gather_class = {gather_cancel, gather_finalize};

int tl_gather(tl_loop_t *loop, tl_future_t *const *futs, size_t n,
              int return_errors, tl_future_t **out) {
    int rc = tl__watch_check(loop, futs, n);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    gather_t *g = tl__calloc(1, sizeof(*g));
    if (g == NULL)
        return TL_ENOMEM;
    if ((rc = tl__watch_init(&g->w, loop, futs, n, on_done, gather_destroy))) {
        tl__free(g);
        return rc;
    }
    if ((rc = tl__combo_new(loop, &gather_class, g, &g->fut))) {
        gather_destroy(&g->w);
        return rc;
    }
    g->left = n;
    g->return_errors = return_errors != 0;
    if (n == 0) /* done at once; nothing is registered on it yet */
        rc = tl__future_complete(g->fut, TL__FUT_RESULT, NULL, NULL, 0, NULL);
    else
        rc = tl__watch_start(&g->w);
    if (rc) {
        tl_future_unref(g->fut); /* gather_finalize releases the state */
        return rc;
    }
    *out = g->fut;
    return 0;
}
