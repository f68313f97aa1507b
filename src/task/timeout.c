/*
 * Timeout scopes: asyncio.timeout()/timeout_at() (3.12/3.13 timeouts.py).
 *
 * Entering records the task's cancelling() count. At the deadline the scope
 * cancels the task (one request, counted like any other). Leaving takes that
 * request back (uncancel) and turns the body's TL_ECANCELLED into
 * TL_ETIMEDOUT only when the count is then back at the recorded level: if
 * anyone else also asked to cancel the task (an outer cancel, an outer scope
 * that expired too), the cancellation is theirs and passes through.
 */
#include "../core/alloc.h"
#include "../loop/loop_int.h"
#include "task_int.h"

enum { ENTERED, EXPIRED };

struct tl_timeout {
    tl_task_t *task; /* referenced */
    int cancelling;  /* the task's cancelling() at entry */
    int state;
    tl_handle_t timer;
};

static void on_deadline(void *arg) {
    tl_timeout_t *t = arg;
    t->timer = 0;
    t->state = EXPIRED;
    tl_task_cancel(t->task, NULL);
}

/* Arm the timer for loop time when_ns (< 0: none), replacing the old one
 * only once the new one exists. */
static int arm(tl_timeout_t *t, int64_t when_ns) {
    tl_loop_t *loop = t->task->fut.loop;
    tl_handle_t h = 0;
    if (when_ns >= 0) {
        int rc = tl_loop_call_at(loop, when_ns, on_deadline, t, &h);
        if (rc)
            return rc;
    }
    if (t->timer)
        tl_handle_cancel(loop, t->timer);
    t->timer = h;
    return 0;
}

int tl_timeout_enter_at(int64_t when_ns, tl_timeout_t **out) {
    tl_task_t *task = tl_task_current();
    if (task == NULL)
        return TL_ENOTASK;
    if (out == NULL)
        return TL_EINVAL;
    tl_timeout_t *t = tl__calloc(1, sizeof(*t));
    if (t == NULL)
        return TL_ENOMEM;
    t->task = task;
    t->cancelling = task->num_cancels;
    t->state = ENTERED;
    int rc = arm(t, when_ns);
    if (rc) {
        tl__free(t);
        return rc;
    }
    tl_task_ref(task);
    *out = t;
    return 0;
}

int tl_timeout_enter(int64_t delay_ns, tl_timeout_t **out) {
    tl_task_t *task = tl_task_current();
    if (task == NULL)
        return TL_ENOTASK;
    if (delay_ns < 0)
        return tl_timeout_enter_at(-1, out);
    int64_t now = tl_loop_time(task->fut.loop);
    if (now < 0)
        return (int)now;
    int64_t when = delay_ns > INT64_MAX - now ? INT64_MAX : now + delay_ns;
    return tl_timeout_enter_at(when, out);
}

int tl_timeout_reschedule(tl_timeout_t *t, int64_t when_ns) {
    int rc = t ? tl__loop_check(t->task->fut.loop) : TL_EINVAL;
    if (rc)
        return rc;
    if (t->state != ENTERED)
        return TL_ESTATE; /* asyncio: "Cannot change state of expiring Timeout" */
    return arm(t, when_ns);
}

int tl_timeout_expired(const tl_timeout_t *t) {
    if (t == NULL)
        return TL_EINVAL;
    if (t->task->fut.loop->owner != tl__thread_self())
        return TL_EWRONGTHREAD;
    return t->state == EXPIRED;
}

int tl_timeout_exit(tl_timeout_t *t, int rc) {
    if (t == NULL)
        return TL_EINVAL;
    tl_loop_t *loop = t->task->fut.loop;
    if (loop->owner != tl__thread_self())
        return TL_EWRONGTHREAD;
    /* On a closed loop the timer is gone and nothing is converted. */
    if (!loop->closed) {
        if (t->timer)
            tl_handle_cancel(loop, t->timer);
        if (t->state == EXPIRED && tl_task_uncancel(t->task) <= t->cancelling &&
            rc == TL_ECANCELLED)
            rc = TL_ETIMEDOUT;
    }
    tl_task_unref(t->task);
    tl__free(t);
    return rc;
}
