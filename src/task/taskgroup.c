/*
 * asyncio.TaskGroup (3.13 taskgroups.py): tl_taskgroup_new is `async with
 * TaskGroup() as g:` entering, the code up to tl_taskgroup_wait is its body,
 * and tl_taskgroup_wait(g, body_rc) is __aexit__.
 *
 * The parent task is the one that made the group (or, for a group made
 * outside any task, the one that waits). The first task to fail (an error,
 * not a cancellation) aborts the group, cancelling every other task, and
 * cancels the parent once, so whatever the body awaits returns
 * TL_ECANCELLED; wait takes that request back (uncancel). A cancellation of
 * the parent from anyone else, seen by the body (body_rc) or during the
 * wait, also aborts the group, and wait returns TL_ECANCELLED once every
 * task is done, unless tasks failed: their errors come first.
 *
 * The wait awaits one future whose class refuses cancellation: cancelling
 * the waiting parent aborts the group from inside that refusal, and the
 * task's pending cancellation (asyncio's must_cancel) makes the await return
 * TL_ECANCELLED only once every task is done. So the wait needs no
 * allocation of its own and no loop around the await.
 */
#include "../core/alloc.h"
#include "combinator.h"
#include "task_int.h"

typedef struct member {
    struct member *prev, *next;
    tl_task_t *task; /* referenced */
    tl_taskgroup_t *g;
} member_t;

struct tl_taskgroup {
    tl__watch_t w;               /* one done callback per live task */
    member_t *live;              /* unfinished tasks */
    member_t *failed, *failed_tail; /* in failure order */
    size_t nlive, nfailed;
    tl_task_t *parent;           /* referenced once known, until wait ends */
    tl_future_t *done;           /* what wait awaits: every task finished */
    uint8_t aborting;            /* tasks were cancelled: no more spawns */
    uint8_t exiting, waiting, finished;
    uint8_t parent_cancel_requested; /* we cancelled the parent: uncancel it */
    uint8_t propagate;           /* the parent was cancelled by someone else */
    uint8_t free_pending;        /* freed while a task waits in it */
};

static void abort_group(tl_taskgroup_t *g) {
    g->aborting = 1;
    for (member_t *m = g->live; m; m = m->next)
        tl_task_cancel(m->task, NULL);
}

static void unlink_live(tl_taskgroup_t *g, member_t *m) {
    if (m->prev)
        m->prev->next = m->next;
    else
        g->live = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->prev = m->next = NULL;
    g->nlive--;
}

static void on_task_done(tl_future_t *f, void *arg) {
    member_t *m = arg;
    tl_taskgroup_t *g = m->g;
    if (tl__watch_fired(&g->w))
        return;
    unlink_live(g, m);
    if (g->waiting && g->nlive == 0)
        tl__combo_complete(g->done, TL__FUT_RESULT, NULL, 0, NULL);
    int err = tl_future_error(f); /* read: the group reports it */
    if (err == 0 || err == TL_ECANCELLED) {
        tl_task_unref(m->task);
        tl__free(m);
        return;
    }
    if (g->failed_tail)
        g->failed_tail->next = m;
    else
        g->failed = m;
    g->failed_tail = m;
    g->nfailed++;
    if (g->parent && g->parent->fut.state != TL__FUT_PENDING) {
        tl_exception_context_t c = {sizeof c,
                                    "a TaskGroup task failed after its parent task finished",
                                    err, f->message, f, NULL, NULL, 0};
        tl_loop_call_exception_handler(g->w.loop, &c);
        return;
    }
    if (!g->aborting && !g->parent_cancel_requested) {
        abort_group(g);
        if (g->parent) {
            g->parent_cancel_requested = 1;
            tl_task_cancel(g->parent, NULL);
        }
    }
}

/* Cancelling the waiting parent lands here: abort, but stay pending. */
static int done_cancel(tl_future_t *f, const char *message) {
    tl_taskgroup_t *g = tl__combo_state(f);
    (void)message;
    if (tl__combo_pending(f) && !g->aborting) {
        g->propagate = 1;
        abort_group(g);
    }
    return 0;
}

static const tl__future_class_t done_class = {done_cancel, NULL};

static void free_members(member_t *m) {
    while (m) {
        member_t *next = m->next;
        tl_task_unref(m->task);
        tl__free(m);
        m = next;
    }
}

static void destroy(tl__watch_t *w) {
    tl_taskgroup_t *g = (tl_taskgroup_t *)w;
    free_members(g->live);
    free_members(g->failed);
    if (g->parent)
        tl_task_unref(g->parent);
    tl_future_unref(g->done);
    tl__watch_fini(w);
    tl__free(g);
}

int tl_taskgroup_new(tl_loop_t *loop, tl_taskgroup_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    tl_taskgroup_t *g = tl__calloc(1, sizeof(*g));
    if (g == NULL)
        return TL_ENOMEM;
    if ((rc = tl__watch_init(&g->w, loop, NULL, 0, NULL, destroy))) {
        tl__free(g);
        return rc;
    }
    if ((rc = tl__combo_new(loop, &done_class, g, &g->done))) {
        tl__watch_fini(&g->w);
        tl__free(g);
        return rc;
    }
    tl_task_t *me = tl_task_current();
    if (me && me->fut.loop == loop) {
        g->parent = me;
        tl_task_ref(me);
    }
    *out = g;
    return 0;
}

int tl_taskgroup_spawn(tl_taskgroup_t *g, tl_task_fn_t fn, void *arg,
                       const tl_task_options_t *opts, tl_task_t **out) {
    int rc = g ? tl__loop_check(g->w.loop) : TL_EINVAL;
    if (rc)
        return rc;
    /* Shutting down, or finished (asyncio also refuses once the exit has
     * seen every task end). */
    if (g->aborting || g->finished || g->free_pending || (g->exiting && g->nlive == 0))
        return TL_ESTATE;
    member_t *m = tl__calloc(1, sizeof(*m));
    if (m == NULL)
        return TL_ENOMEM;
    tl_task_t *t;
    if ((rc = tl_task_spawn(g->w.loop, fn, arg, opts, &t))) {
        tl__free(m);
        return rc;
    }
    m->task = t;
    m->g = g;
    if ((rc = tl__watch_add(&g->w, &t->fut, on_task_done, m))) {
        tl_task_cancel(t, NULL); /* never runs its body */
        tl_task_unref(t);
        tl__free(m);
        return rc;
    }
    m->next = g->live;
    if (g->live)
        g->live->prev = m;
    g->live = m;
    g->nlive++;
    if (out) {
        tl_task_ref(t);
        *out = t;
    }
    return 0;
}

int tl_taskgroup_wait(tl_taskgroup_t *g, int body_rc) {
    tl_task_t *me = tl_task_current();
    if (me == NULL)
        return TL_ENOTASK;
    int rc = g ? tl__loop_check(g->w.loop) : TL_EINVAL;
    if (rc)
        return rc;
    if (g->waiting || g->finished || g->free_pending || (g->parent && g->parent != me))
        return TL_ESTATE;
    if (g->parent == NULL) {
        g->parent = me;
        tl_task_ref(me);
    }
    g->exiting = 1;
    g->propagate = body_rc == TL_ECANCELLED;
    if (body_rc < 0 && !g->aborting)
        abort_group(g); /* the body failed or was cancelled */
    int waited = 0;
    if (g->nlive > 0) {
        g->waiting = 1;
        waited = tl_await(g->done, NULL);
        g->waiting = 0;
        /* A cancellation that came once the tasks were done. */
        if (waited == TL_ECANCELLED && !g->aborting) {
            g->propagate = 1;
            abort_group(g);
        }
    }
    g->finished = 1;
    int result = 0;
    if (g->nlive > 0) {
        /* The await could not wait (the loop is closing and every await now
         * fails at once): the tasks are cancelled and left to the loop. */
        abort_group(g);
        result = waited ? waited : TL_ECANCELLED;
    } else {
        if (g->parent_cancel_requested) {
            g->parent_cancel_requested = 0;
            if (tl_task_uncancel(g->parent) == 0)
                g->propagate = 0; /* the only request was ours */
        }
        int body_failed = body_rc < 0 && body_rc != TL_ECANCELLED;
        if (g->propagate && g->nfailed == 0) {
            result = TL_ECANCELLED;
        } else if (g->nfailed > 0 || body_failed) {
            result = g->nfailed ? g->failed->task->fut.error : body_rc;
            /* Errors win over an outside cancellation, which stays pending
             * (3.13: uncancel and cancel again, keeping the count). */
            if (tl_task_cancelling(g->parent) > 0) {
                tl_task_uncancel(g->parent);
                tl_task_cancel(g->parent, NULL);
            }
        }
    }
    tl_task_unref(g->parent);
    g->parent = NULL;
    if (g->free_pending) {
        g->free_pending = 0;
        tl_taskgroup_free(g);
    }
    return result;
}

int tl_taskgroup_errors(const tl_taskgroup_t *g, tl_task_t **tasks, size_t max) {
    if (g == NULL || (tasks == NULL && max > 0))
        return TL_EINVAL;
    if (g->w.loop->owner != tl__thread_self())
        return TL_EWRONGTHREAD;
    size_t i = 0;
    for (member_t *m = g->failed; m && i < max; m = m->next)
        tasks[i++] = m->task;
    return (int)g->nfailed;
}

void tl_taskgroup_free(tl_taskgroup_t *g) {
    if (g == NULL || g->w.loop->owner != tl__thread_self())
        return;
    if (g->waiting) { /* the wait frees it when it returns */
        g->free_pending = 1;
        abort_group(g);
        return;
    }
    for (member_t *m = g->live; m; m = m->next) {
        tl__watch_remove(&g->w, &m->task->fut, on_task_done, m);
        tl_task_cancel(m->task, NULL);
    }
    tl__watch_release(&g->w);
}
