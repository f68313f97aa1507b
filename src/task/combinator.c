/* What the combinators share: see combinator.h. */
#include "combinator.h"

#include "../core/alloc.h"

/* ---- lifetime ------------------------------------------------------------ */

static void reap(void *arg);

/* Free a released watch once nothing scheduled can reach it. */
static void maybe_free(tl__watch_t *w) {
    if (!w->released || w->queued)
        return;
    if (w->inflight == 0 || w->loop->closed) {
        w->destroy(w);
        return;
    }
    /* Child callbacks are scheduled: free behind them. */
    if (tl__loop_call_soon_drop(w->loop, reap, reap, w) == 0)
        w->queued++;
}

static void reap(void *arg) {
    tl__watch_t *w = arg;
    /* Whatever was scheduled before it has run, or was dropped with it. */
    w->queued--;
    w->inflight = 0;
    maybe_free(w);
}

int tl__watch_fired(tl__watch_t *w) {
    w->inflight--;
    if (!w->released)
        return 0;
    maybe_free(w);
    return 1;
}

int tl__watch_add(tl__watch_t *w, tl_future_t *f, tl_future_cb_t cb, void *ctx) {
    int rc = tl_future_add_done_callback(f, cb, ctx);
    if (rc == 0)
        w->inflight++;
    return rc;
}

void tl__watch_remove(tl__watch_t *w, tl_future_t *f, tl_future_cb_t cb, void *ctx) {
    int n = tl_future_remove_done_callback(f, cb, ctx);
    if (n > 0)
        w->inflight -= (size_t)n;
}

void tl__watch_release(tl__watch_t *w) {
    tl__watch_stop(w, NULL);
    w->released = 1;
    maybe_free(w);
}

/* ---- a fixed set of children --------------------------------------------- */

int tl__watch_check(tl_loop_t *loop, tl_future_t *const *futs, size_t n) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (futs == NULL && n > 0)
        return TL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (futs[i] == NULL || futs[i]->loop != loop)
            return TL_EINVAL;
    return 0;
}

int tl__watch_init(tl__watch_t *w, tl_loop_t *loop, tl_future_t *const *futs,
                   size_t n, void (*on_done)(tl__watch_t *, size_t),
                   void (*destroy)(tl__watch_t *)) {
    *w = (tl__watch_t){0};
    w->kids = tl__calloc(n ? n : 1, sizeof(*w->kids));
    if (w->kids == NULL)
        return TL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        w->kids[i] = (tl__kid_t){futs[i], w, TL__KID_IDLE};
        tl_future_ref(futs[i]);
    }
    w->n = n;
    w->loop = loop;
    w->on_done = on_done;
    w->destroy = destroy;
    tl_loop_ref(loop);
    return 0;
}

void tl__watch_fini(tl__watch_t *w) {
    for (size_t i = 0; i < w->n; i++)
        tl_future_unref(w->kids[i].f);
    tl__free(w->kids);
    tl_loop_unref(w->loop);
}

static void kid_done(tl_future_t *f, void *arg) {
    tl__kid_t *k = arg;
    tl__watch_t *w = k->w;
    (void)f;
    if (tl__watch_fired(w))
        return;
    k->state = TL__KID_SEEN;
    w->on_done(w, (size_t)(k - w->kids));
}

/* The children that were done at start, in order. */
static void kick(void *arg) {
    tl__watch_t *w = arg;
    w->queued--;
    if (w->released) {
        maybe_free(w);
        return;
    }
    for (size_t i = 0; i < w->n; i++)
        if (w->kids[i].state == TL__KID_KICK) {
            w->kids[i].state = TL__KID_SEEN;
            w->on_done(w, i);
        }
}

static void kick_drop(void *arg) {
    tl__watch_t *w = arg;
    w->queued--;
    maybe_free(w);
}

int tl__watch_start(tl__watch_t *w) {
    int rc = 0, kicks = 0;
    size_t i;
    for (i = 0; i < w->n && rc == 0; i++) {
        tl__kid_t *k = &w->kids[i];
        if (k->f->state != TL__FUT_PENDING) {
            k->state = TL__KID_KICK;
            kicks = 1;
        } else if ((rc = tl__watch_add(w, k->f, kid_done, k)) == 0) {
            k->state = TL__KID_WATCHING;
        }
    }
    if (rc == 0 && kicks) {
        rc = tl__loop_call_soon_drop(w->loop, kick, kick_drop, w);
        if (rc == 0)
            w->queued++;
    }
    if (rc == 0)
        return 0;
    for (i = 0; i < w->n; i++) {
        tl__kid_t *k = &w->kids[i];
        if (k->state == TL__KID_WATCHING)
            tl__watch_remove(w, k->f, kid_done, k);
        k->state = TL__KID_IDLE;
    }
    return rc;
}

static void timer_fired(void *arg) {
    tl__watch_t *w = arg;
    w->timer = 0;
    w->on_timer(w);
}

int tl__watch_timer(tl__watch_t *w, int64_t delay_ns) {
    return tl_loop_call_later(w->loop, delay_ns, timer_fired, w, &w->timer);
}

void tl__watch_cancel_timer(tl__watch_t *w) {
    if (w->timer) {
        tl_handle_cancel(w->loop, w->timer); /* TL_ECLOSED: already dropped */
        w->timer = 0;
    }
}

void tl__watch_stop(tl__watch_t *w, tl_future_cb_t handoff) {
    for (size_t i = 0; i < w->n; i++) {
        tl__kid_t *k = &w->kids[i];
        if (k->state != TL__KID_WATCHING || k->f->state != TL__FUT_PENDING)
            continue; /* done: its callback is scheduled already */
        size_t before = w->inflight;
        tl__watch_remove(w, k->f, kid_done, k);
        if (w->inflight == before)
            continue; /* the loop is closed */
        k->state = TL__KID_OFF;
        if (handoff)
            tl_future_add_done_callback(k->f, handoff, NULL);
    }
    tl__watch_cancel_timer(w);
}

/* ---- the combinator's future --------------------------------------------- */

int tl__combo_new(tl_loop_t *loop, const tl__future_class_t *cls, void *state,
                  tl_future_t **out) {
    int rc = tl__future_create(loop, sizeof(tl__combo_t), cls, out);
    if (rc == 0)
        ((tl__combo_t *)*out)->state = state;
    return rc;
}

void tl__combo_complete(tl_future_t *f, int state, void *value, int error,
                        const char *message) {
    int rc = tl__future_complete(f, state, value, NULL, error, message);
    if (rc == TL_ENOMEM && message)
        rc = tl__future_complete(f, state, value, NULL, error, NULL);
    if (rc && rc != TL_ESTATE)
        tl__loop_report(f->loop, "a combinator could not complete its future", rc);
}

int tl__combo_mirror(tl_future_t *f, tl_future_t *src, int lossy) {
    int err = tl_future_error(src); /* marks it retrieved */
    int state = src->state;
    void *value = state == TL__FUT_RESULT ? src->value : NULL;
    if (lossy) {
        tl__combo_complete(f, state, value, err, src->message);
        return 0;
    }
    return tl__future_complete(f, state, value, NULL, err, src->message);
}
