/*
 * asyncio.wait and asyncio.wait_for.
 *
 * wait watches the children until its condition holds or its timer fires;
 * it never touches their outcomes (FIRST_EXCEPTION reads a child's error,
 * which, as in asyncio, marks it retrieved).
 *
 * wait_for follows 3.12, where it is `async with timeout(): await f`: at the
 * deadline f is cancelled and the result waits for f to finish; f's outcome
 * then decides: cancelled gives TL_ETIMEDOUT, anything else (f swallowed the
 * cancellation, or was already done when the deadline came) is returned as
 * is. Cancelling the wait_for cancels f the same way, and a cancellation of
 * the wait_for wins over its timeout.
 */
#include "../core/alloc.h"
#include "combinator.h"
#include "tulip/task.h"

/* ---- wait ---------------------------------------------------------------- */

typedef struct waiter {
    tl__watch_t w;
    tl_future_t *fut; /* the wait; it owns this state */
    size_t left;
    tl_wait_when_t when;
} waiter_t;

static void wait_finish(waiter_t *s) {
    tl__watch_stop(&s->w, NULL);
    tl__combo_complete(s->fut, TL__FUT_RESULT, NULL, 0, NULL);
}

static void wait_on_done(tl__watch_t *w, size_t i) {
    waiter_t *s = (waiter_t *)w;
    tl_future_t *f = w->kids[i].f;
    s->left--;
    if (!tl__combo_pending(s->fut))
        return;
    if (s->left == 0 || s->when == TL_FIRST_COMPLETED ||
        (s->when == TL_FIRST_EXCEPTION && f->state == TL__FUT_ERROR &&
         tl_future_error(f) != 0))
        wait_finish(s);
}

static void wait_on_timer(tl__watch_t *w) {
    waiter_t *s = (waiter_t *)w;
    if (tl__combo_pending(s->fut))
        wait_finish(s);
}

static int wait_cancel(tl_future_t *f, const char *message) {
    waiter_t *s = tl__combo_state(f);
    int rc = tl__future_cancel_base(f, message);
    if (rc == 1)
        tl__watch_stop(&s->w, NULL);
    return rc;
}

static void wait_finalize(tl_future_t *f) {
    waiter_t *s = tl__combo_state(f);
    s->fut = NULL;
    tl__watch_release(&s->w);
}

static void wait_destroy(tl__watch_t *w) {
    tl__watch_fini(w);
    tl__free(w);
}

static const tl__future_class_t wait_class = {wait_cancel, wait_finalize};

int tl_wait(tl_loop_t *loop, tl_future_t *const *futs, size_t n,
            tl_wait_when_t when, int64_t timeout_ns, tl_future_t **out) {
    int rc = tl__watch_check(loop, futs, n);
    if (rc)
        return rc;
    if (n == 0 || out == NULL ||
        (when != TL_ALL_COMPLETED && when != TL_FIRST_COMPLETED &&
         when != TL_FIRST_EXCEPTION))
        return TL_EINVAL;
    waiter_t *s = tl__calloc(1, sizeof(*s));
    if (s == NULL)
        return TL_ENOMEM;
    if ((rc = tl__watch_init(&s->w, loop, futs, n, wait_on_done, wait_destroy))) {
        tl__free(s);
        return rc;
    }
    if ((rc = tl__combo_new(loop, &wait_class, s, &s->fut))) {
        wait_destroy(&s->w);
        return rc;
    }
    s->left = n;
    s->when = when;
    s->w.on_timer = wait_on_timer;
    /* The timer first: starting is the step that cannot be undone. */
    if ((timeout_ns >= 0 && (rc = tl__watch_timer(&s->w, timeout_ns))) ||
        (rc = tl__watch_start(&s->w))) {
        tl_future_unref(s->fut); /* wait_finalize releases the state */
        return rc;
    }
    *out = s->fut;
    return 0;
}

/* ---- wait_for ------------------------------------------------------------ */

typedef struct wait_for {
    tl__watch_t w; /* one child: the inner future */
    tl_future_t *fut;
    char *cancel_msg;
    uint8_t expired;          /* the deadline passed and f was cancelled */
    uint8_t cancel_requested; /* the wait_for itself was cancelled */
    uint8_t must_cancel;      /* ... and f refused: end cancelled anyway */
} wait_for_t;

/* The inner future is done: give the wait_for its outcome. */
static void wf_settle(wait_for_t *s) {
    tl_future_t *f = s->w.kids[0].f;
    tl__watch_stop(&s->w, NULL);
    if (s->must_cancel || (s->cancel_requested && f->state == TL__FUT_CANCELLED)) {
        tl_future_error(f);
        tl__combo_complete(s->fut, TL__FUT_CANCELLED, NULL, TL_ECANCELLED, s->cancel_msg);
    } else if (s->expired && f->state == TL__FUT_CANCELLED) {
        tl__combo_complete(s->fut, TL__FUT_ERROR, NULL, TL_ETIMEDOUT, NULL);
    } else {
        tl__combo_mirror(s->fut, f, 1);
    }
}

static void wf_on_done(tl__watch_t *w, size_t i) {
    wait_for_t *s = (wait_for_t *)w;
    (void)i;
    if (tl__combo_pending(s->fut))
        wf_settle(s);
}

static void wf_expire(wait_for_t *s) {
    tl_future_t *f = s->w.kids[0].f;
    s->expired = 1;
    if (f->state != TL__FUT_PENDING)
        wf_settle(s); /* done at the deadline: its outcome wins */
    else
        tl_future_cancel(f, NULL); /* then wait for it to finish */
}

static void wf_on_timer(tl__watch_t *w) {
    wait_for_t *s = (wait_for_t *)w;
    if (tl__combo_pending(s->fut))
        wf_expire(s);
}

static int wf_cancel(tl_future_t *fut, const char *message) {
    wait_for_t *s = tl__combo_state(fut);
    tl_future_t *f = s->w.kids[0].f;
    if (!tl__combo_pending(fut))
        return 0;
    if (f->state != TL__FUT_PENDING) { /* its outcome is on its way: too late */
        int rc = tl__future_cancel_base(fut, message);
        if (rc == 1)
            tl__watch_stop(&s->w, NULL);
        return rc;
    }
    s->cancel_requested = 1;
    tl__free(s->cancel_msg);
    s->cancel_msg = tl__strdup(message); /* NULL on failure: no message */
    tl__watch_cancel_timer(&s->w);
    if (tl_future_cancel(f, message) != 1)
        s->must_cancel = 1;
    return 1;
}

static void wf_finalize(tl_future_t *fut) {
    wait_for_t *s = tl__combo_state(fut);
    s->fut = NULL;
    tl__watch_release(&s->w);
}

static void wf_destroy(tl__watch_t *w) {
    wait_for_t *s = (wait_for_t *)w;
    tl__watch_fini(w);
    tl__free(s->cancel_msg);
    tl__free(s);
}

static const tl__future_class_t wait_for_class = {wf_cancel, wf_finalize};

int tl_wait_for(tl_future_t *f, int64_t timeout_ns, tl_future_t **out) {
    if (f == NULL || out == NULL)
        return TL_EINVAL;
    tl_loop_t *loop = f->loop;
    int rc = tl__watch_check(loop, &f, 1);
    if (rc)
        return rc;
    wait_for_t *s = tl__calloc(1, sizeof(*s));
    if (s == NULL)
        return TL_ENOMEM;
    if ((rc = tl__watch_init(&s->w, loop, &f, 1, wf_on_done, wf_destroy))) {
        tl__free(s);
        return rc;
    }
    if ((rc = tl__combo_new(loop, &wait_for_class, s, &s->fut))) {
        wf_destroy(&s->w);
        return rc;
    }
    s->w.on_timer = wf_on_timer;
    if (f->state != TL__FUT_PENDING) {
        /* `await f` returns at once, whatever the timeout. */
        rc = tl__combo_mirror(s->fut, f, 0);
    } else if (timeout_ns == 0) {
        /* 3.12's timeout <= 0: cancel now and wait for f to finish. */
        if ((rc = tl__watch_start(&s->w)) == 0) {
            s->expired = 1;
            rc = tl_future_cancel(f, NULL);
            rc = rc < 0 ? rc : 0;
        }
    } else {
        if (timeout_ns > 0)
            rc = tl__watch_timer(&s->w, timeout_ns);
        if (rc == 0)
            rc = tl__watch_start(&s->w);
    }
    if (rc) {
        tl_future_unref(s->fut); /* wf_finalize releases the state */
        return rc;
    }
    *out = s->fut;
    return 0;
}
