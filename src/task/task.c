/*
 * Tasks (asyncio's Task): a future whose outcome is a coroutine's, stepped
 * by the loop. A step resumes the coroutine until it awaits (suspends) or
 * returns. The done callback of the awaited future resumes the task
 * directly, as asyncio's __wakeup calls __step, so a wakeup costs no extra
 * trip through the ready queue.
 *
 * References: the caller of tl_task_spawn owns one; the task holds one on
 * itself until it finishes ("alive"); a scheduled step holds one.
 */
#include "tulip/task.h"

#include <stdio.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/options.h"
#include "../future/future_int.h"
#include "../loop/loop_int.h"
#include "coro.h"
#include "task_int.h"

static TL__THREAD_LOCAL tl_task_t *current;

/* ---- per-loop state --------------------------------------------------- */

static void loop_state_close(tl_loop_t *loop, void *data);
static void resume(tl_task_t *t);

static tl__task_loop_t *loop_state(tl_loop_t *loop) {
    tl__task_loop_t *s = loop->ext[TL__EXT_TASK].data;
    if (s)
        return s;
    s = tl__calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if (tl__stack_pool_new(&s->pool)) {
        tl__free(s);
        return NULL;
    }
    loop->ext[TL__EXT_TASK].data = s;
    loop->ext[TL__EXT_TASK].close = loop_state_close;
    return s;
}

static void unlink_task(tl__task_loop_t *s, tl_task_t *t) {
    if (t->prev)
        t->prev->next = t->next;
    else
        s->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    s->count--;
}

/* The loop closes with tasks unfinished. One that never started is simply
 * freed. One suspended in an await is resumed a last time, its await
 * returning TL_ECANCELLED, like Python's coroutine close(): every await it
 * tries from then on fails at once (the loop is closed), so it returns and
 * the code on its stack releases what it holds. A task must therefore end
 * when its awaits fail. */
static void loop_state_close(tl_loop_t *loop, void *data) {
    (void)loop;
    tl__task_loop_t *s = data;
    while (s->head) {
        tl_task_t *t = s->head;
        tl_future_ref(&t->fut);
        if (t->started && t->coro) {
            t->closing = 1;
            resume(t); /* normally runs to its end: finish() unlinks it */
        }
        if (t->alive) { /* never started, or it suspended again anyway */
            unlink_task(s, t);
            tl__coro_free(t->coro);
            t->coro = NULL;
            t->alive = 0;
            tl_future_unref(&t->fut);
        }
        tl_future_unref(&t->fut);
    }
    tl__stack_pool_free(s->pool);
    tl__free(s);
}

/* ---- the future class ------------------------------------------------- */

static int task_cancel(tl_future_t *f, const char *message);

static void task_finalize(tl_future_t *f) {
    tl_task_t *t = (tl_task_t *)f;
    if (t->coro)
        tl__coro_free(t->coro); /* never started (spawn failed half-way) */
    tl__free(t->name);
    tl__free(t->cancel_msg);
}

static const tl__future_class_t task_class = {task_cancel, task_finalize};

tl_future_t *tl_task_future(tl_task_t *t) { return t ? &t->fut : NULL; }

tl_task_t *tl_task_from_future(tl_future_t *f) {
    return f && f->cls == &task_class ? (tl_task_t *)f : NULL;
}

int tl_task_ref(tl_task_t *t) { return tl_future_ref(tl_task_future(t)); }
int tl_task_unref(tl_task_t *t) { return tl_future_unref(tl_task_future(t)); }

/* ---- stepping --------------------------------------------------------- */

static void entry(void *arg) {
    tl_task_t *t = arg;
    t->rc = t->fn(t->arg, &t->value);
}

/* The coroutine returned: give the task fn's outcome. */
static void finish(tl_task_t *t) {
    tl__coro_free(t->coro);
    t->coro = NULL;
    unlink_task(t->owner, t);
    int rc;
    if (t->rc >= 0)
        rc = tl__future_complete(&t->fut, TL__FUT_RESULT, t->value,
                                 t->result_destructor, 0, NULL);
    else if (t->rc == TL_ECANCELLED)
        rc = tl__future_complete(&t->fut, TL__FUT_CANCELLED, NULL, NULL,
                                 TL_ECANCELLED, t->cancel_msg);
    else
        rc = tl__future_complete(&t->fut, TL__FUT_ERROR, NULL, NULL, t->rc, NULL);
    if (rc) /* only TL_ENOMEM: the waiters cannot be told */
        tl__loop_report(t->fut.loop, "a finished task could not notify its waiters", rc);
    t->alive = 0;
    tl_future_unref(&t->fut);
}

/* Run the task until it suspends or returns. */
static void resume(tl_task_t *t) {
    tl_task_t *outer = current;
    current = t;
    int finished = tl__coro_resume(t->coro);
    current = outer;
    if (finished == 1)
        finish(t);
}

/* The first step, or a step after tl_yield. */
static void step(void *arg) {
    tl_task_t *t = arg;
    if (!t->started) {
        t->started = 1;
        if (t->must_cancel) {
            /* Cancelled before it ran: like a coroutine that gets
             * CancelledError thrown in at its first line. */
            t->must_cancel = 0;
            t->rc = TL_ECANCELLED;
            finish(t);
            tl_future_unref(&t->fut);
            return;
        }
        /* The stack is taken only now, so tasks spawned in bulk hold none
         * until they run, and one that finishes at once gives it back for
         * the next. Without memory for it the task fails. */
        int rc = tl__coro_new(t->owner->pool, t->stack_size, entry, t, &t->coro);
        if (rc) {
            t->rc = rc;
            finish(t);
            tl_future_unref(&t->fut);
            return;
        }
    }
    resume(t);
    tl_future_unref(&t->fut); /* the step's reference */
}

static void drop_step(void *arg) { tl_future_unref(&((tl_task_t *)arg)->fut); }

static int schedule_step(tl_task_t *t) {
    int rc = tl__loop_call_soon_drop(t->fut.loop, step, drop_step, t);
    if (rc == 0)
        tl_future_ref(&t->fut);
    return rc;
}

/* Done callback of the awaited future: resume the task right here. */
static void wakeup(tl_future_t *f, void *arg) {
    tl_task_t *t = arg;
    (void)f;
    if (t->coro == NULL)
        return; /* the loop is closing */
    tl_future_ref(&t->fut);
    resume(t);
    tl_future_unref(&t->fut);
}

/* Suspend the running task; after it is resumed, a pending cancellation
 * request wins over whatever woke it (asyncio's _must_cancel). */
static int suspend(tl_task_t *t) {
    tl__coro_suspend(t->coro);
    if (t->closing)
        return TL_ECANCELLED;
    if (t->must_cancel) {
        t->must_cancel = 0;
        return TL_ECANCELLED;
    }
    return 0;
}

/* ---- public API ------------------------------------------------------- */

int tl_task_spawn(tl_loop_t *loop, tl_task_fn_t fn, void *arg,
                  const tl_task_options_t *opts, tl_task_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    tl_task_options_t o;
    if (tl__copy_options(&o, sizeof o, opts))
        return TL_EINVAL;
    if (fn == NULL || (o.stack_size != 0 && (o.stack_size < TL__CORO_STACK_MIN ||
                                             o.stack_size > TL__CORO_STACK_MAX)))
        return TL_EINVAL;
    tl__task_loop_t *s = loop_state(loop);
    if (s == NULL)
        return TL_ENOMEM;
    tl_future_t *f;
    if ((rc = tl__future_create(loop, sizeof(tl_task_t), &task_class, &f)))
        return rc;
    tl_task_t *t = (tl_task_t *)f;
    t->owner = s;
    t->fn = fn;
    t->arg = arg;
    t->result_destructor = o.result_destructor;
    t->number = ++s->spawned;
    if (o.name && (t->name = tl__strdup(o.name)) == NULL) {
        tl_future_unref(f);
        return TL_ENOMEM;
    }
    t->stack_size = o.stack_size;
    if ((rc = schedule_step(t))) {
        tl_future_unref(f);
        return rc;
    }
    t->alive = 1;
    tl_future_ref(f);
    t->next = s->head;
    if (s->head)
        s->head->prev = t;
    s->head = t;
    s->count++;
    if (out)
        *out = t;
    else
        tl_future_unref(f);
    return 0;
}

static int task_cancel(tl_future_t *f, const char *message) {
    tl_task_t *t = (tl_task_t *)f;
    if (f->state != TL__FUT_PENDING)
        return 0;
    t->num_cancels++;
    char *copy = tl__strdup(message); /* NULL on failure: cancel anyway */
    tl__free(t->cancel_msg);
    t->cancel_msg = copy;
    if (t->waiter && tl_future_cancel(t->waiter, message) == 1)
        return 1;
    t->must_cancel = 1;
    return 1;
}

int tl_task_cancel(tl_task_t *t, const char *message) {
    return tl_future_cancel(tl_task_future(t), message);
}

void tl__task_keep_cancel(tl_task_t *t) {
    if (t && t->fut.state == TL__FUT_PENDING && t->num_cancels > 0)
        t->must_cancel = 1;
}

int tl_task_cancelling(const tl_task_t *t) {
    int rc = t ? tl__loop_check(t->fut.loop) : TL_EINVAL;
    return rc ? rc : t->num_cancels;
}

int tl_task_uncancel(tl_task_t *t) {
    int rc = t ? tl__loop_check(t->fut.loop) : TL_EINVAL;
    if (rc)
        return rc;
    if (t->num_cancels > 0 && --t->num_cancels == 0)
        t->must_cancel = 0;
    return t->num_cancels;
}

const char *tl_task_get_name(const tl_task_t *t) {
    if (t == NULL || t->fut.loop->owner != tl__thread_self())
        return NULL;
    if (t->name)
        return t->name;
    tl_task_t *mt = (tl_task_t *)t; /* the default name is made on demand */
    snprintf(mt->default_name, sizeof mt->default_name, "Task-%llu",
             (unsigned long long)t->number);
    return t->default_name;
}

int tl_task_set_name(tl_task_t *t, const char *name) {
    int rc = t ? tl__loop_check(t->fut.loop) : TL_EINVAL;
    if (rc)
        return rc;
    if (name == NULL)
        return TL_EINVAL;
    char *copy = tl__strdup(name);
    if (copy == NULL)
        return TL_ENOMEM;
    tl__free(t->name);
    t->name = copy;
    return 0;
}

tl_task_t *tl_task_current(void) { return current; }

int tl_task_all(tl_loop_t *loop, tl_task_t **tasks, size_t max) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (tasks == NULL && max > 0)
        return TL_EINVAL;
    tl__task_loop_t *s = loop->ext[TL__EXT_TASK].data;
    if (s == NULL)
        return 0;
    size_t i = 0;
    for (tl_task_t *t = s->head; t; t = t->next)
        if (i < max)
            tasks[i++] = t;
    return (int)s->count;
}

int tl_await(tl_future_t *f, void **result) {
    tl_task_t *t = current;
    if (t == NULL)
        return TL_ENOTASK;
    if (f == NULL || f->loop != t->fut.loop)
        return TL_EINVAL;
    if (f == &t->fut)
        return TL_EINVAL; /* a task cannot wait for itself */
    if (f->state != TL__FUT_PENDING)
        return tl_future_result(f, result);
    int rc = tl_future_add_done_callback(f, wakeup, t);
    if (rc)
        return rc;
    tl_future_ref(f);
    t->waiter = f;
    /* Cancelled while running: the first thing awaited is cancelled. If it
     * refuses (a gather whose children are all done), the request stays
     * pending and this await returns TL_ECANCELLED once f is done, as
     * asyncio's __step keeps _must_cancel when the waiter's cancel fails. */
    if (t->must_cancel && tl_future_cancel(f, t->cancel_msg) == 1)
        t->must_cancel = 0;
    rc = suspend(t);
    t->waiter = NULL;
    if (rc == 0)
        rc = tl_future_result(f, result);
    else
        tl_future_error(f); /* its outcome was superseded, not lost */
    tl_future_unref(f);
    return rc;
}

static void sleep_done(void *f) { tl_future_set_result(f, NULL, NULL); }

int tl_sleep(int64_t ns) {
    tl_task_t *t = current;
    if (t == NULL)
        return TL_ENOTASK;
    if (ns <= 0) {
        int rc = schedule_step(t);
        return rc ? rc : suspend(t);
    }
    tl_future_t *f;
    int rc = tl_future_new(t->fut.loop, &f);
    if (rc)
        return rc;
    tl_handle_t h;
    if ((rc = tl_loop_call_later(t->fut.loop, ns, sleep_done, f, &h)) == 0) {
        rc = tl_await(f, NULL);
        tl_handle_cancel(t->fut.loop, h);
    }
    tl_future_unref(f);
    return rc;
}

int tl_yield(void) { return tl_sleep(0); }
