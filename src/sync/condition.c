/*
 * asyncio.Condition. A waiter lives in two queues in turn: the condition's,
 * until it is notified, then its lock's, where it waits for the lock like an
 * acquirer and its future is done when a release hands it the lock. Moving
 * it is all a notify does (the notifier holds the lock, so nobody can be
 * handed the lock meanwhile), which is why notify never fails.
 *
 * A notified waiter that is cancelled before it gets the lock has consumed a
 * notification it will not act on; its on_cancel passes the notification to
 * the next waiter of its condition (asyncio 3.13 does the same after
 * gh-112202). Moving that waiter is all it takes, because the lock is held
 * whenever a waiter is in its queue.
 */
#include <limits.h>
#include <stdint.h>

#include "../core/alloc.h"
#include "sync_int.h"

struct tl_condition {
    tl_loop_t *loop; /* referenced */
    tl_lock_t *lock;
    int own_lock;
    tl__waitq_t q; /* waiting for a notification */
};

int tl_condition_new(tl_loop_t *loop, tl_lock_t *lock, tl_condition_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (out == NULL || (lock && lock->loop != loop))
        return TL_EINVAL;
    tl_condition_t *c = tl__calloc(1, sizeof(*c));
    if (c == NULL)
        return TL_ENOMEM;
    if (lock == NULL) {
        if ((rc = tl_lock_new(loop, &lock))) {
            tl__free(c);
            return rc;
        }
        c->own_lock = 1;
    }
    c->loop = loop;
    c->lock = lock;
    tl_loop_ref(loop);
    *out = c;
    return 0;
}

int tl_condition_free(tl_condition_t *c) {
    int rc = tl__sync_check_thread(c, c ? c->loop : NULL);
    if (rc)
        return rc;
    tl__waitq_cancel_all(&c->q);
    if (c->own_lock) {
        tl_lock_free(c->lock);
    } else {
        /* Our notified waiters in a lock that others keep using. */
        tl__waitq_t *lq = &c->lock->q;
        for (tl__waiter_t *w = lq->head, *next; w; w = next) {
            next = w->next;
            if (w->owner == c) {
                tl__waitq_unlink(lq, w);
                w->orphaned = 1;
                tl_future_cancel(tl__waiter_future(w), NULL);
                tl_future_unref(tl__waiter_future(w));
            }
        }
    }
    tl_loop_unref(c->loop);
    tl__free(c);
    return 0;
}

tl_lock_t *tl_condition_lock(const tl_condition_t *c) {
    return c ? c->lock : NULL;
}

static void pass_on(tl__waiter_t *w);

/* Notified: from now on w waits for the lock, behind its other waiters. */
static void to_lock(tl_condition_t *c, tl__waiter_t *w) {
    tl__waitq_unlink(&c->q, w);
    w->owner = c;
    w->on_cancel = pass_on;
    tl__waitq_append(&c->lock->q, w);
}

void tl__condition_pass_on(tl_condition_t *c) {
    tl__waiter_t *next = c->q.head;
    if (next)
        to_lock(c, next);
}

static void pass_on(tl__waiter_t *w) { tl__condition_pass_on(w->owner); }

int tl_condition_wait_future(tl_condition_t *c, tl_future_t **out) {
    int rc = tl__sync_check(c, c ? c->loop : NULL);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (!c->lock->locked)
        return TL_ESTATE;
    tl__waiter_t *w;
    if ((rc = tl__waiter_new(c->loop, NULL, &w)))
        return rc;
    if ((rc = tl_lock_release(c->lock))) {
        tl_future_unref(tl__waiter_future(w));
        return rc;
    }
    tl__waitq_push(&c->q, w);
    *out = tl__waiter_future(w);
    return 0;
}

int tl_condition_notify(tl_condition_t *c, size_t n) {
    int rc = tl__sync_check(c, c ? c->loop : NULL);
    if (rc)
        return rc;
    if (!c->lock->locked)
        return TL_ESTATE;
    size_t woken = 0;
    tl__waiter_t *w;
    while (woken < n && (w = c->q.head)) {
        to_lock(c, w);
        woken++;
    }
    return woken > INT_MAX ? INT_MAX : (int)woken;
}

int tl_condition_notify_all(tl_condition_t *c) {
    return tl_condition_notify(c, SIZE_MAX);
}
