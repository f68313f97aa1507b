/*
 * The executor (see tulip/executor.h): worker threads taking jobs from one
 * locked FIFO, each job a future of the submitting loop whose outcome comes
 * back through tl__loop_call_soon_threadsafe_drop (which folds a burst of
 * completions into one wakeup of the loop).
 *
 * A job is a future with its own class: its cancel takes the job out of the
 * queue while no worker has it. It holds, from submission until its future
 * is done (or its loop is found closed), one reference on its future (which
 * holds its loop) and one on its executor.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "../core/alloc.h"
#include "../core/platform.h"
#include "../future/future_int.h"
#include "../loop/loop_int.h"
#include "tulip/executor.h"

typedef struct tl__job tl__job_t;

struct tl_executor {
    atomic_int refs;   /* the owner's, and one per unfinished job */
    tl__mutex_t lock;
    tl__cond_t work;   /* a job was queued, or shutdown */
    tl__job_t *head, *tail; /* guarded by lock */
    /* Guarded by lock: queued jobs, workers running a job, workers waiting
     * on `work`, and signals sent to them not yet consumed. A submitter
     * wakes a worker only when the queue holds more jobs than workers are
     * looking for one, so a burst of tiny jobs does not pay a wakeup each. */
    size_t qlen, nbusy, nidle, nsignalled;
    int shut;          /* guarded by lock: no new jobs */
    int joined;        /* guarded by lock: a shutdown took on joining */
    size_t nthreads;
    tl__thread_t *threads;
};

struct tl__job {
    struct tl_future base;
    tl_executor_t *ex;
    tl_executor_fn_t fn;
    void *arg;
    void *result;
    int rc;
    int queued;        /* guarded by ex->lock */
    tl__job_t *prev, *next;
};

/* ---- references ------------------------------------------------------- */

static void executor_release(tl_executor_t *ex) {
    if (atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_acq_rel) != 1)
        return;
    tl__cond_destroy(&ex->work);
    tl__mutex_destroy(&ex->lock);
    tl__free(ex->threads);
    tl__free(ex);
}

/* The job's references, once its future is done or its loop closed. Any
 * thread (a future's last unref elsewhere is handed to its loop, or done
 * in place once the loop is closed). */
static void job_release(void *ctx) {
    tl__job_t *j = ctx;
    tl_executor_t *ex = j->ex;
    tl_future_unref(&j->base);
    executor_release(ex);
}

/* ---- the queue (ex->lock held) ------------------------------------------ */

static void queue_push(tl_executor_t *ex, tl__job_t *j) {
    j->next = NULL;
    j->prev = ex->tail;
    if (ex->tail)
        ex->tail->next = j;
    else
        ex->head = j;
    ex->tail = j;
    j->queued = 1;
    ex->qlen++;
}

static void queue_unlink(tl_executor_t *ex, tl__job_t *j) {
    if (j->prev)
        j->prev->next = j->next;
    else
        ex->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        ex->tail = j->prev;
    j->prev = j->next = NULL;
    j->queued = 0;
    ex->qlen--;
}

/* ---- delivery ----------------------------------------------------------- */

/* Post cb(job) to the job's loop from any thread. Under memory pressure the
 * post is retried (the outcome must not be lost); a closed loop drops the
 * job here. */
static void post(tl__job_t *j, tl_callback_t cb) {
    for (;;) {
        int rc = tl__loop_call_soon_threadsafe_drop(j->base.loop, cb, job_release, j);
        if (rc == 0)
            return;
        if (rc != TL_ENOMEM) { /* TL_ECLOSED */
            job_release(j);
            return;
        }
        tl__sleep_ns(1000000);
    }
}

/* On the loop's thread: give the future fn's outcome. */
static void job_complete(void *ctx) {
    tl__job_t *j = ctx;
    int rc;
    if (j->rc >= 0)
        rc = tl__future_complete(&j->base, TL__FUT_RESULT, j->result, NULL, 0, NULL);
    else if (j->rc == TL_ECANCELLED)
        rc = tl__future_complete(&j->base, TL__FUT_CANCELLED, NULL, NULL, 0, NULL);
    else
        rc = tl__future_complete(&j->base, TL__FUT_ERROR, NULL, NULL, j->rc, NULL);
    if (rc == TL_ENOMEM &&
        tl__loop_call_soon_drop(j->base.loop, job_complete, job_release, j) == 0)
        return; /* try again next iteration */
    if (rc != 0 && rc != TL_ESTATE)
        tl__loop_report(j->base.loop, "an executor job's outcome was lost", rc);
    job_release(j);
}

/* On the loop's thread: cancel a job that shutdown took out of the queue. */
static void job_cancel_queued(void *ctx) {
    tl__job_t *j = ctx;
    tl__future_cancel_base(&j->base, NULL);
    job_release(j);
}

/* The class's cancel: only a job still queued can be cancelled. */
static int job_cancel(tl_future_t *f, const char *message) {
    tl__job_t *j = (tl__job_t *)f;
    if (f->state != TL__FUT_PENDING)
        return 0;
    tl_executor_t *ex = j->ex;
    int rc = 0;
    tl__mutex_lock(&ex->lock);
    if (j->queued) {
        rc = tl__future_cancel_base(f, message);
        if (rc == 1)
            queue_unlink(ex, j);
    }
    tl__mutex_unlock(&ex->lock);
    if (rc == 1)
        job_release(j); /* the caller still holds its own reference */
    return rc;
}

static const tl__future_class_t job_class = {job_cancel, NULL};

/* ---- workers ------------------------------------------------------------ */

static void *worker_main(void *arg) {
    tl_executor_t *ex = arg;
    tl__mutex_lock(&ex->lock);
    for (;;) {
        while (ex->head == NULL && !ex->shut) {
            ex->nidle++;
            tl__cond_wait(&ex->work, &ex->lock);
            ex->nidle--;
            if (ex->nsignalled)
                ex->nsignalled--;
        }
        tl__job_t *j = ex->head;
        if (j == NULL)
            break; /* shut down and drained */
        queue_unlink(ex, j);
        ex->nbusy++;
        tl__mutex_unlock(&ex->lock);

        j->result = NULL;
        j->rc = j->fn(j->arg, &j->result);
        post(j, job_complete);

        tl__mutex_lock(&ex->lock);
        ex->nbusy--;
    }
    tl__mutex_unlock(&ex->lock);
    return NULL;
}

/* ---- the API ------------------------------------------------------------ */

static void join_workers(tl_executor_t *ex, size_t n) {
    for (size_t i = 0; i < n; i++)
        tl__thread_join(&ex->threads[i]);
}

int tl_executor_new(size_t nthreads, tl_executor_t **out) {
    if (out == NULL)
        return TL_EINVAL;
    if (nthreads == 0)
        nthreads = tl__cpu_count();
    tl_executor_t *ex = tl__calloc(1, sizeof(*ex));
    if (ex == NULL)
        return TL_ENOMEM;
    ex->threads = tl__calloc(nthreads, sizeof(*ex->threads));
    if (ex->threads == NULL) {
        tl__free(ex);
        return TL_ENOMEM;
    }
    int rc = tl__mutex_init(&ex->lock);
    if (rc == 0 && (rc = tl__cond_init(&ex->work)) != 0)
        tl__mutex_destroy(&ex->lock);
    if (rc) {
        tl__free(ex->threads);
        tl__free(ex);
        return rc;
    }
    atomic_init(&ex->refs, 1);
    ex->nthreads = nthreads;
    for (size_t i = 0; i < nthreads; i++) {
        rc = tl__thread_create(&ex->threads[i], worker_main, ex);
        if (rc) {
            tl__mutex_lock(&ex->lock);
            ex->shut = 1;
            tl__cond_broadcast(&ex->work);
            tl__mutex_unlock(&ex->lock);
            join_workers(ex, i);
            executor_release(ex);
            return rc;
        }
    }
    *out = ex;
    return 0;
}

static void default_close(tl_loop_t *loop, void *data) {
    (void)loop;
    tl_executor_t *ex = data;
    tl_executor_shutdown(ex, 1, 1);
    tl_executor_free(ex);
}

int tl_loop_run_in_executor(tl_loop_t *loop, tl_executor_t *ex,
                            tl_executor_fn_t fn, void *arg, tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (fn == NULL || out == NULL)
        return TL_EINVAL;
    if (ex == NULL) {
        ex = loop->ext[TL__EXT_EXECUTOR].data;
        if (ex == NULL) {
            if ((rc = tl_executor_new(0, &ex)) != 0)
                return rc;
            loop->ext[TL__EXT_EXECUTOR].data = ex;
            loop->ext[TL__EXT_EXECUTOR].close = default_close;
        }
    }
    tl_future_t *f;
    if ((rc = tl__future_create(loop, sizeof(tl__job_t), &job_class, &f)) != 0)
        return rc;
    tl__job_t *j = (tl__job_t *)f;
    j->ex = ex;
    j->fn = fn;
    j->arg = arg;
    tl_future_ref(f); /* the job's */
    atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);

    tl__mutex_lock(&ex->lock);
    if (ex->shut) {
        tl__mutex_unlock(&ex->lock);
        job_release(j);
        tl_future_unref(f);
        return TL_ECLOSED;
    }
    queue_push(ex, j);
    size_t looking = ex->nthreads - ex->nidle - ex->nbusy + ex->nsignalled;
    if (ex->nidle > ex->nsignalled && ex->qlen > looking) {
        ex->nsignalled++;
        tl__cond_signal(&ex->work);
    }
    tl__mutex_unlock(&ex->lock);
    *out = f;
    return 0;
}

int tl_executor_shutdown(tl_executor_t *ex, int wait, int cancel_pending) {
    if (ex == NULL)
        return TL_EINVAL;
    tl__job_t *pending = NULL;
    tl__mutex_lock(&ex->lock);
    ex->shut = 1;
    if (cancel_pending) {
        pending = ex->head;
        for (tl__job_t *j = pending; j; j = j->next)
            j->queued = 0; /* no longer cancellable through the queue */
        ex->head = ex->tail = NULL;
        ex->qlen = 0;
    }
    tl__cond_broadcast(&ex->work);
    tl__mutex_unlock(&ex->lock);

    while (pending) {
        tl__job_t *j = pending;
        pending = j->next;
        j->prev = j->next = NULL;
        if (tl__loop_check(j->base.loop) == 0)
            job_cancel_queued(j);
        else
            post(j, job_cancel_queued);
    }
    if (wait) {
        tl__mutex_lock(&ex->lock);
        int join = !ex->joined;
        ex->joined = 1;
        tl__mutex_unlock(&ex->lock);
        if (join)
            join_workers(ex, ex->nthreads);
    }
    return 0;
}

void tl_executor_free(tl_executor_t *ex) {
    if (ex == NULL)
        return;
    tl_executor_shutdown(ex, 1, 0);
    executor_release(ex);
}
