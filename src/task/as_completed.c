/*
 * asyncio.as_completed (3.13's iterator): children come out in the order
 * they complete, as the futures themselves. Distinct futures are watched
 * once each (asyncio takes set(fs)). When the timeout passes, every child
 * not seen yet is replaced by a timeout marker, so each remaining next gives
 * TL_ETIMEDOUT.
 *
 * Completed children queue in `ready`; next_future's futures ("waiters")
 * queue in `waiters` and are resolved oldest first. A waiter cancelled
 * before it was resolved is skipped; one resolved while the task awaiting it
 * was being cancelled gives its child back to the front of the queue (as
 * asyncio's Queue.get leaves the item in the queue until the getter runs).
 */
#include <stdlib.h>
#include <string.h>

#include "../core/alloc.h"
#include "combinator.h"
#include "tulip/task.h"

struct tl_as_completed {
    tl__watch_t w;           /* one child per distinct future */
    tl_future_t **ready;     /* w.n slots: completion order, NULL = timed out */
    size_t head, tail;       /* ready[head..tail) not handed out yet */
    tl_future_t **waiters;   /* w.n slots, oldest first (referenced) */
    size_t nwaiters;
    size_t handed;           /* children handed out */
    size_t seen;             /* children that completed */
    unsigned busy;           /* tasks inside tl_as_completed_next */
    uint8_t timed_out, freed;
};

/* next_future's futures: only the iterator completes them. */
static const tl__future_class_t waiter_class = {NULL, NULL};

/* Waiters cancelled by their holders leave the queue. */
static void prune(tl_as_completed_t *it) {
    size_t k = 0;
    for (size_t i = 0; i < it->nwaiters; i++) {
        if (it->waiters[i]->state == TL__FUT_PENDING)
            it->waiters[k++] = it->waiters[i];
        else
            tl_future_unref(it->waiters[i]);
    }
    it->nwaiters = k;
}

static int resolve(tl_future_t *waiter, tl_future_t *child) {
    return child ? tl__future_complete(waiter, TL__FUT_RESULT, child, NULL, 0, NULL)
                 : tl__future_complete(waiter, TL__FUT_ERROR, NULL, NULL, TL_ETIMEDOUT, NULL);
}

static void deliver(tl_as_completed_t *it) {
    prune(it);
    while (it->head < it->tail && it->nwaiters > 0) {
        int rc = resolve(it->waiters[0], it->ready[it->head]);
        if (rc) { /* out of memory: the next completion tries again */
            tl__loop_report(it->w.loop, "as_completed could not resolve a waiter", rc);
            return;
        }
        it->head++;
        it->handed++;
        tl_future_unref(it->waiters[0]);
        memmove(it->waiters, it->waiters + 1, --it->nwaiters * sizeof(*it->waiters));
    }
}

static void on_done(tl__watch_t *w, size_t i) {
    tl_as_completed_t *it = (tl_as_completed_t *)w;
    if (it->timed_out || it->freed)
        return;
    it->ready[it->tail++] = w->kids[i].f;
    if (++it->seen == w->n)
        tl__watch_cancel_timer(w);
    deliver(it);
}

static void on_timer(tl__watch_t *w) {
    tl_as_completed_t *it = (tl_as_completed_t *)w;
    it->timed_out = 1;
    for (size_t i = 0; i < w->n; i++)
        if (w->kids[i].state != TL__KID_SEEN)
            it->ready[it->tail++] = NULL;
    tl__watch_stop(w, NULL);
    deliver(it);
}

static void destroy(tl__watch_t *w) {
    tl_as_completed_t *it = (tl_as_completed_t *)w;
    tl__watch_fini(w);
    tl__free(it->ready);
    tl__free(it);
}

typedef struct ptr_index {
    uintptr_t p;
    size_t i;
} ptr_index_t;

static int by_pointer(const void *a, const void *b) {
    const ptr_index_t *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* futs without repeats, first occurrences in order, in *uniq (to free). */
static int distinct(tl_future_t *const *futs, size_t n, tl_future_t ***uniq, size_t *m) {
    tl_future_t **u = tl__calloc(n ? n : 1, sizeof(*u));
    ptr_index_t *s = tl__calloc(n ? n : 1, sizeof(*s));
    if (u == NULL || s == NULL) {
        tl__free(u);
        tl__free(s);
        return TL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        s[i] = (ptr_index_t){(uintptr_t)futs[i], i};
    qsort(s, n, sizeof(*s), by_pointer);
    for (size_t i = 0; i < n; i++)
        u[i] = futs[i];
    for (size_t i = 1; i < n; i++)
        if (s[i].p == s[i - 1].p)
            u[s[i].i] = NULL; /* a later occurrence */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (u[i])
            u[k++] = u[i];
    tl__free(s);
    *uniq = u;
    *m = k;
    return 0;
}

int tl_as_completed_new(tl_loop_t *loop, tl_future_t *const *futs, size_t n,
                        int64_t timeout_ns, tl_as_completed_t **out) {
    int rc = tl__watch_check(loop, futs, n);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    tl_future_t **uniq;
    size_t m;
    if ((rc = distinct(futs, n, &uniq, &m)))
        return rc;
    tl_as_completed_t *it = tl__calloc(1, sizeof(*it));
    if (it == NULL || (it->ready = tl__calloc(2 * (m ? m : 1), sizeof(void *))) == NULL) {
        tl__free(it);
        tl__free(uniq);
        return TL_ENOMEM;
    }
    it->waiters = it->ready + (m ? m : 1);
    rc = tl__watch_init(&it->w, loop, uniq, m, on_done, destroy);
    tl__free(uniq);
    if (rc) {
        tl__free(it->ready);
        tl__free(it);
        return rc;
    }
    it->w.on_timer = on_timer;
    if ((m > 0 && timeout_ns >= 0 && (rc = tl__watch_timer(&it->w, timeout_ns))) ||
        (rc = tl__watch_start(&it->w))) {
        tl__watch_release(&it->w);
        return rc;
    }
    *out = it;
    return 0;
}

int tl_as_completed_next_future(tl_as_completed_t *it, tl_future_t **out) {
    int rc = it ? tl__loop_check(it->w.loop) : TL_EINVAL;
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (it->freed)
        return TL_ESTATE;
    prune(it);
    if (it->handed + it->nwaiters >= it->w.n)
        return TL_ESTATE;
    tl_future_t *wt;
    if ((rc = tl__future_create(it->w.loop, sizeof(*wt), &waiter_class, &wt)))
        return rc;
    if (it->head < it->tail) {
        resolve(wt, it->ready[it->head++]); /* nothing to schedule: cannot fail */
        it->handed++;
    } else {
        tl_future_ref(wt);
        it->waiters[it->nwaiters++] = wt;
    }
    *out = wt;
    return 0;
}

int tl_as_completed_next(tl_as_completed_t *it, tl_future_t **done) {
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    int rc = it ? tl__loop_check(it->w.loop) : TL_EINVAL;
    if (rc)
        return rc;
    if (done == NULL)
        return TL_EINVAL;
    prune(it);
    if (!it->freed && it->head < it->tail && it->nwaiters == 0) {
        tl_future_t *c = it->ready[it->head++]; /* ready: no future needed */
        it->handed++;
        if (c == NULL)
            return TL_ETIMEDOUT;
        *done = c;
        return 0;
    }
    tl_future_t *wt;
    if ((rc = tl_as_completed_next_future(it, &wt)))
        return rc;
    void *v = NULL;
    it->busy++;
    rc = tl_await(wt, &v);
    it->busy--;
    if (rc == 0) {
        *done = v;
    } else if (rc != TL_ETIMEDOUT) {
        if (wt->state == TL__FUT_PENDING) {
            tl_future_cancel(wt, NULL); /* withdrawn: pruned later */
        } else if (!it->freed && (wt->state == TL__FUT_RESULT || wt->error == TL_ETIMEDOUT)) {
            /* Resolved, then the task was cancelled before it ran: give the
             * child back to whoever asks next. */
            it->ready[--it->head] = wt->state == TL__FUT_RESULT ? wt->value : NULL;
            it->handed--;
            deliver(it);
        }
    }
    tl_future_unref(wt);
    if (it->freed && it->busy == 0)
        tl__watch_release(&it->w);
    return rc;
}

void tl_as_completed_free(tl_as_completed_t *it) {
    if (it == NULL || it->w.loop->owner != tl__thread_self() || it->freed)
        return;
    it->freed = 1;
    for (size_t i = 0; i < it->nwaiters; i++) {
        tl_future_cancel(it->waiters[i], NULL); /* wake whoever awaits it */
        tl_future_unref(it->waiters[i]);
    }
    it->nwaiters = 0;
    tl__watch_stop(&it->w, NULL);
    if (it->busy == 0) /* else the last next to return releases it */
        tl__watch_release(&it->w);
}
