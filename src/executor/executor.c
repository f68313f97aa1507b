/*
 * The executor (see tulip/executor.h): worker threads running jobs, each
 * job a future of the submitting loop.
 *
 * A job is a future with its own class: its cancel takes the job out of the
 * queue while no worker has it. It holds, from submission until its future
 * is done (or its loop is found closed), one reference on its future (which
 * holds its loop), one on its executor and one on its loop's port. Its kind
 * (executor_int.h, carried in the class pointer) says what it owns.
 *
 * Going out: a submitter pushes the job onto a lock-free stack (`incoming`)
 * and takes the executor's lock only when no worker is looking for work;
 * whoever holds the lock moves the stack, oldest first, into the FIFO that
 * workers take from and cancel unlinks from. See the wake rule at
 * worker_main: a burst of small jobs costs the loop neither a lock nor a
 * futex wake per job, and jobs queued behind long ones still wake a
 * sleeping worker.
 *
 * Coming back (libuv's loop->wq + uv_async, without the lock): every loop
 * that submits jobs has a *port*, a lock-free list of finished jobs. Only
 * the push that finds the list empty posts a drain to the loop (through a
 * node inside the port: tl__loop_post_node); the drain takes the whole list in
 * one exchange and completes the futures, DRAIN_BATCH per callback. A
 * burst of completions costs one post and one wakeup of the loop, and no
 * allocation.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include "../core/alloc.h"
#include "../core/platform.h"
#include "../future/future_int.h"
#include "../loop/loop_int.h"
#include "executor_int.h"

typedef struct tl__job tl__job_t;

/* A loop's port: lives in the loop's TL__EXT_EXECUTOR slot until the loop
 * closes, and after that while a job or a post still needs it. */
typedef struct port {
    /* Loop thread (and posts): references, jobs taken but not completed
     * yet (oldest first), whether a drain is queued for them. */
    atomic_int refs;           /* the loop's, one per job, one per drain */
    tl__job_t *backlog, *backlog_tail;
    int continuing;
    tl_loop_t *loop;           /* not a reference; read on its thread only */
    tl_executor_t *default_ex;
    /* Workers push here: a cache line away from refs. (Padding, not
     * _Alignas: the allocator hooks promise 16-byte alignment only.) */
    char pad_[64];
    _Atomic(tl__job_t *) done; /* newest first; PORT_CLOSED */
    tl__tsnode_t post;         /* the drain's hand-over to the loop */
    atomic_int posted;         /* post is on its way (not yet run) */
    char pad2_[64];
} port_t;

/* The port's list once its loop closed: jobs are released where they end. */
static char port_closed_mark;
#define PORT_CLOSED ((tl__job_t *)(void *)&port_closed_mark)

struct tl_executor {
    /* What the submitting loop reads or writes per job, then what workers
     * write per job, a cache line apart (padding: the allocator hooks
     * promise 16-byte alignment only). */
    atomic_int refs;   /* the owner's, and one per unfinished job */
    size_t nthreads;
    tl__thread_t *threads;
    /* Submitted jobs, newest first: submitters push without the lock;
     * whoever holds the lock moves them to the FIFO (take_incoming). */
    char pad1_[64];
    _Atomic(tl__job_t *) incoming;
    char pad2_[64];
    /* Awake workers not inside a job's fn (see the wake rule). Lowered
     * under lock; raised under lock, or by a worker whose fn returned. */
    atomic_size_t nlooking;
    atomic_size_t queued; /* qlen, for the spinning worker to watch */
    atomic_int shut;   /* written under lock: no new jobs (the spinner
                        * watches it: kept off the line refs is on) */
    char pad3_[64];
    tl__mutex_t lock;
    tl__cond_t work;   /* a job was queued, or shutdown */
    tl__job_t *head, *tail; /* guarded by lock: the FIFO */
    /* Guarded by lock: queued jobs, workers waiting on `work`, signals sent
     * to them not yet consumed, and whether a worker is spinning. */
    size_t qlen, nidle, nsignalled;
    int spinning;
    int joined;        /* guarded by lock: a shutdown took on joining */
};

struct tl__job {
    struct tl_future base;
    tl_executor_t *ex;
    port_t *port;
    tl_executor_fn_t fn;
    void *arg;
    union {
        tl__job_t *prev; /* while queued */
        void *result;    /* once a worker took it */
    } u;
    tl__job_t *next;     /* ex's queue, then the port's list */
    int rc;
    int queued;          /* guarded by ex->lock */
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

static void port_ref(port_t *p) {
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

static void port_unref(port_t *p) {
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        tl__free(p);
}

/* The job's references, once its future is done or its loop closed. Any
 * thread (a future's last unref elsewhere is handed to its loop, or done
 * in place once the loop is closed). */
static void job_release_refs(tl__job_t *j) {
    tl_executor_t *ex = j->ex;
    port_t *p = j->port;
    tl_future_unref(&j->base);
    port_unref(p);
    executor_release(ex);
}

static const tl__job_kind_t *job_kind(const tl__job_t *j) {
    return (const tl__job_kind_t *)(const void *)j->base.cls;
}

/* The job ends: its argument is freed (its kind says how) and its
 * references go. */
static void job_release(void *ctx) {
    tl__job_t *j = ctx;
    const tl__job_kind_t *k = job_kind(j);
    if (k->arg_free)
        k->arg_free(j->arg);
    job_release_refs(j);
}

/* The job ends without its outcome reaching the future (its loop closed):
 * a result fn made is freed too. */
static void job_drop(void *ctx) {
    tl__job_t *j = ctx;
    const tl__job_kind_t *k = job_kind(j);
    if (j->rc >= 0 && j->u.result && k->result_destructor)
        k->result_destructor(j->u.result);
    job_release(j);
}

/* ---- the queue (ex->lock held) ------------------------------------------ */

static void queue_push(tl_executor_t *ex, tl__job_t *j) {
    j->next = NULL;
    j->u.prev = ex->tail;
    if (ex->tail)
        ex->tail->next = j;
    else
        ex->head = j;
    ex->tail = j;
    j->queued = 1;
    ex->qlen++;
    atomic_store_explicit(&ex->queued, ex->qlen, memory_order_relaxed);
}

static void queue_unlink(tl_executor_t *ex, tl__job_t *j) {
    if (j->u.prev)
        j->u.prev->next = j->next;
    else
        ex->head = j->next;
    if (j->next)
        j->next->u.prev = j->u.prev;
    else
        ex->tail = j->u.prev;
    j->u.prev = j->next = NULL;
    j->queued = 0;
    ex->qlen--;
    atomic_store_explicit(&ex->queued, ex->qlen, memory_order_relaxed);
}

/* Move what submitters pushed to the FIFO, oldest first. */
static void take_incoming(tl_executor_t *ex) {
    if (atomic_load(&ex->incoming) == NULL)
        return;
    tl__job_t *j = atomic_exchange(&ex->incoming, NULL), *fifo = NULL;
    while (j) {
        tl__job_t *next = j->next;
        j->next = fifo;
        fifo = j;
        j = next;
    }
    while (fifo) {
        j = fifo;
        fifo = j->next;
        queue_push(ex, j);
    }
}

/* Wake one sleeping worker if the queued jobs outnumber the workers awake
 * to take them. Awake workers are those looking for a job (they will take
 * one without a signal) and those signalled but not yet running. */
static void wake_if_needed_but(tl_executor_t *ex, size_t self) {
    size_t looking = atomic_load_explicit(&ex->nlooking, memory_order_relaxed) - self;
    if (ex->nidle > ex->nsignalled && ex->qlen > looking + ex->nsignalled) {
        ex->nsignalled++;
        tl__cond_signal(&ex->work);
    }
}

static void wake_if_needed(tl_executor_t *ex) {
    wake_if_needed_but(ex, 0);
}

/* ---- delivery ------------------------------------------------------------ */

/* On the loop's thread: give the future fn's outcome. */
static void job_complete(void *ctx) {
    tl__job_t *j = ctx;
    int rc;
    if (j->rc >= 0)
        rc = tl__future_complete(&j->base, TL__FUT_RESULT, j->u.result,
                                 job_kind(j)->result_destructor, 0, NULL);
    else if (j->rc == TL_ECANCELLED)
        rc = tl__future_complete(&j->base, TL__FUT_CANCELLED, NULL, NULL, 0, NULL);
    else
        rc = tl__future_complete(&j->base, TL__FUT_ERROR, NULL, NULL, j->rc, NULL);
    if (rc == 0) {
        job_release(j);
        return;
    }
    if (rc == TL_ENOMEM &&
        tl__loop_call_soon_drop(j->base.loop, job_complete, job_drop, j) == 0)
        return; /* try again next iteration */
    if (rc != TL_ESTATE)
        tl__loop_report(j->base.loop, "an executor job's outcome was lost", rc);
    job_drop(j);
}

/* At most this many futures are completed per drain callback; the rest
 * wait for a continuation queued behind the callbacks those completions
 * scheduled, so a backlog of a million outcomes never needs a million
 * ready-queue entries at once. */
#define DRAIN_BATCH 1024

static void port_drain_drop(void *ctx);
static void port_continue(void *ctx);

/* On the loop's thread: complete the port's jobs, oldest first. */
static void port_drain(void *ctx) {
    port_t *p = ctx;
    tl__job_t *j = atomic_exchange_explicit(&p->done, NULL, memory_order_acquire);
    tl__job_t *fifo = NULL, *last = j;
    while (j) { /* the list is newest first */
        tl__job_t *next = j->next;
        j->next = fifo;
        fifo = j;
        j = next;
    }
    if (fifo) {
        if (p->backlog)
            p->backlog_tail->next = fifo;
        else
            p->backlog = fifo;
        p->backlog_tail = last;
    }
    for (int n = 0; p->backlog; n++) {
        if (n == DRAIN_BATCH) {
            if (p->continuing)
                break;
            if (tl__loop_call_soon_drop(p->loop, port_continue, port_drain_drop, p) == 0) {
                p->continuing = 1;
                port_ref(p);
                break;
            } /* else complete them all now */
        }
        j = p->backlog;
        if ((p->backlog = j->next) == NULL)
            p->backlog_tail = NULL;
        j->next = NULL;
        job_complete(j);
    }
    port_unref(p); /* this drain's */
}

static void port_continue(void *ctx) {
    port_t *p = ctx;
    p->continuing = 0;
    port_drain(p);
}

/* The posted drain, on the loop's thread: inside tl_loop_close the port's
 * close takes the list instead. */
static void port_posted(void *node) {
    port_t *p = (port_t *)(void *)((char *)node - offsetof(port_t, post));
    /* Before the drain takes the list: a push after that posts anew. */
    atomic_store(&p->posted, 0);
    if (tl__loop_check(p->loop) == 0)
        port_drain(p);
    else
        port_unref(p);
}

/* A continuation was dropped: the loop closed, and the port's close takes
 * the list. (Should a loop ever drop it while open, drain now, as the list
 * stays non-empty and no worker would post again.) */
static void port_drain_drop(void *ctx) {
    port_t *p = ctx;
    if (tl__loop_check(p->loop) == 0) {
        port_drain(p);
        return;
    }
    port_unref(p);
}

/* Post the drain from any thread; the caller's port reference goes with
 * it. The post is a node inside the port, so it needs no memory and
 * cannot fail but for a closed loop, whose port's close takes the list.
 * The node can be on its way only once: a push that finds the list empty
 * while it is (a continuation drained the list meanwhile) leaves the list
 * to it, as it takes the list after clearing `posted`. */
static void port_post(port_t *p, tl_loop_t *loop) {
    if (atomic_exchange(&p->posted, 1) || tl__loop_post_node(loop, &p->post) != 0)
        port_unref(p);
}

/* Any thread: hand a finished (or cancelled, rc TL_ECANCELLED) job to its
 * loop. The push that makes the list non-empty posts the drain. Once the
 * push is made, the loop may complete and release j at any moment, so that
 * pusher first takes a reference on the port and on the loop (held by j's
 * future until then) to make its post with. */
static void deliver(tl__job_t *j) {
    port_t *p = j->port;
    tl__job_t *old = atomic_load_explicit(&p->done, memory_order_relaxed);
    while (old != NULL) {
        if (old == PORT_CLOSED) {
            job_drop(j);
            return;
        }
        j->next = old; /* a drain is already on its way */
        if (atomic_compare_exchange_weak_explicit(&p->done, &old, j, memory_order_release,
                                                  memory_order_relaxed))
            return;
    }
    tl_loop_t *loop = j->base.loop;
    tl_loop_ref(loop);
    port_ref(p);
    for (;;) {
        if (old == PORT_CLOSED) {
            job_drop(j);
            port_unref(p);
            break;
        }
        j->next = old;
        if (atomic_compare_exchange_weak_explicit(&p->done, &old, j, memory_order_release,
                                                  memory_order_relaxed)) {
            if (old == NULL)
                port_post(p, loop);
            else
                port_unref(p);
            break;
        }
    }
    tl_loop_unref(loop);
}

/* The class's cancel: only a job still queued can be cancelled. */
int tl__job_cancel(tl_future_t *f, const char *message) {
    tl__job_t *j = (tl__job_t *)f;
    if (f->state != TL__FUT_PENDING)
        return 0;
    tl_executor_t *ex = j->ex;
    int rc = 0;
    tl__mutex_lock(&ex->lock);
    take_incoming(ex); /* j may not have reached the FIFO yet */
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

static const tl__job_kind_t plain_job = TL__JOB_KIND(NULL, NULL);

/* ---- workers ------------------------------------------------------------ */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* How long the spinning worker watches an empty queue before sleeping:
 * long enough to bridge the gaps of a burst of submissions, short enough
 * to cost little after the last one, or on a machine with no CPU to spare
 * (there the spinner takes CPU time from the submitter). On the 2-vCPU
 * VM 10-200 us measured alike; 2 us brought back a wakeup every few jobs
 * (0.15-0.33 M jobs/s and 210-290 k context switches, against 0.53-0.56 M
 * and 30-36 k for 20 us; tools/bench/RESULTS.md). */
#define SPIN_NS 20000

/* ex->lock held on entry and exit; returns with a job queued, shut set,
 * or SPIN_NS spent. Only one worker spins at a time; it stays counted as
 * looking, so submitters leave it to take the next job. */
static void spin(tl_executor_t *ex) {
    ex->spinning = 1;
    tl__mutex_unlock(&ex->lock);
    uint64_t deadline = tl__time_ns() + SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&ex->incoming, memory_order_relaxed) ||
            atomic_load_explicit(&ex->queued, memory_order_relaxed) ||
            atomic_load_explicit(&ex->shut, memory_order_relaxed))
            break;
        cpu_relax();
        if ((i & 63) == 0 && tl__time_ns() > deadline)
            break;
    }
    tl__mutex_lock(&ex->lock);
    ex->spinning = 0;
}

/* The wake rule. A worker counts as looking (nlooking) while it is awake
 * and not inside a job's fn: from waking, or from fn returning, until it
 * has taken its next job, so also while it delivers an outcome or spins.
 * A looking worker is certain to look at `incoming` again before it
 * sleeps, and fn is the only part of a round that can take long. So:
 * - a submitter that sees a worker looking after its push leaves the job
 *   to it (no lock); one that sees none takes the lock and signals when
 *   the queue holds more jobs than looking and signalled workers;
 * - a worker that takes a job applies the same rule to what is left, so
 *   wakeups cascade through the pool (paid by workers, not the loop) while
 *   work remains;
 * - stopping to look is "lower nlooking, then look at incoming once more",
 *   against the submitter's "push, then read nlooking" (all seq_cst): one
 *   of the two sees the other, so no job is left with every worker asleep.
 * One worker finding the queue empty spins for up to SPIN_NS before it
 * sleeps: a burst of submissions slower than the pool then does not cost
 * a sleep and a futex wake per job either (without it the loop paid one
 * wake per job: 0.3 M jobs/s against 0.6 M/s with it, on the 2-vCPU VM). */
static void *worker_main(void *arg) {
    tl_executor_t *ex = arg;
    tl__mutex_lock(&ex->lock);
    atomic_fetch_add(&ex->nlooking, 1);
    for (;;) {
        take_incoming(ex);
        if (ex->head == NULL && !ex->shut) {
            if (!ex->spinning) {
                spin(ex);
                take_incoming(ex);
                if (ex->head || ex->shut)
                    continue;
            }
            /* Stop looking, then look once more: a submitter that still
             * saw this worker looking pushed before this last look (both
             * are seq_cst), one that did not takes the lock and signals. */
            atomic_fetch_sub(&ex->nlooking, 1);
            if (atomic_load(&ex->incoming) == NULL) {
                ex->nidle++;
                tl__cond_wait(&ex->work, &ex->lock);
                ex->nidle--;
                if (ex->nsignalled)
                    ex->nsignalled--;
            }
            atomic_fetch_add(&ex->nlooking, 1);
            continue;
        }
        tl__job_t *j = ex->head;
        if (j == NULL)
            break; /* shut down and drained */
        queue_unlink(ex, j);
        wake_if_needed_but(ex, 1); /* for what is left, not counting this worker */
        tl__mutex_unlock(&ex->lock);
        /* Stop looking, then look at what was pushed meanwhile: a submitter
         * that still saw this worker looking pushed before this look (both
         * seq_cst); one that did not makes its own wake decision. */
        atomic_fetch_sub(&ex->nlooking, 1);
        if (atomic_load(&ex->incoming) != NULL) {
            tl__mutex_lock(&ex->lock);
            take_incoming(ex);
            wake_if_needed(ex);
            tl__mutex_unlock(&ex->lock);
        }

        j->u.result = NULL;
        j->rc = j->fn(j->arg, &j->u.result);
        atomic_fetch_add(&ex->nlooking, 1);
        deliver(j);

        tl__mutex_lock(&ex->lock);
    }
    atomic_fetch_sub(&ex->nlooking, 1);
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
    atomic_init(&ex->nlooking, 0);
    atomic_init(&ex->queued, 0);
    atomic_init(&ex->incoming, NULL);
    atomic_init(&ex->shut, 0);
    ex->nthreads = nthreads;
    for (size_t i = 0; i < nthreads; i++) {
        rc = tl__thread_create(&ex->threads[i], worker_main, ex);
        if (rc) {
            tl__mutex_lock(&ex->lock);
            atomic_store(&ex->shut, 1);
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

/* The loop closes: shut its default executor down (cancelling what is
 * queued, waiting for what runs), then close the port and release the jobs
 * whose outcome came too late. Later deliveries release themselves. */
static void port_close(tl_loop_t *loop, void *data) {
    (void)loop;
    port_t *p = data;
    if (p->default_ex) {
        tl_executor_shutdown(p->default_ex, 1, 1);
        tl_executor_free(p->default_ex);
        p->default_ex = NULL;
    }
    tl__job_t *j = atomic_exchange_explicit(&p->done, PORT_CLOSED, memory_order_acquire);
    if (p->backlog) { /* older than the list, and no longer touched */
        p->backlog_tail->next = j;
        j = p->backlog;
        p->backlog = p->backlog_tail = NULL;
    }
    while (j) {
        tl__job_t *next = j->next;
        job_drop(j);
        j = next;
    }
    port_unref(p);
}

/* The loop's port, made on first use (loop thread). */
static int loop_port(tl_loop_t *loop, port_t **out) {
    port_t *p = loop->ext[TL__EXT_EXECUTOR].data;
    if (p == NULL) {
        if ((p = tl__calloc(1, sizeof(*p))) == NULL)
            return TL_ENOMEM;
        atomic_init(&p->done, NULL);
        atomic_init(&p->refs, 1);
        p->post.fn = port_posted;
        atomic_init(&p->posted, 0);
        p->loop = loop;
        loop->ext[TL__EXT_EXECUTOR].data = p;
        loop->ext[TL__EXT_EXECUTOR].close = port_close;
    }
    *out = p;
    return 0;
}

int tl_loop_run_in_executor(tl_loop_t *loop, tl_executor_t *ex,
                            tl_executor_fn_t fn, void *arg, tl_future_t **out) {
    return tl__loop_run_job(loop, ex, &plain_job, fn, arg, out);
}

int tl__loop_run_job(tl_loop_t *loop, tl_executor_t *ex, const tl__job_kind_t *kind,
                     tl_executor_fn_t fn, void *arg, tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (fn == NULL || out == NULL || kind == NULL)
        return TL_EINVAL;
    port_t *p;
    if ((rc = loop_port(loop, &p)) != 0)
        return rc;
    if (ex == NULL) {
        ex = p->default_ex;
        if (ex == NULL) {
            if ((rc = tl_executor_new(0, &ex)) != 0)
                return rc;
            p->default_ex = ex;
        }
    }
    tl_future_t *f;
    if ((rc = tl__future_create(loop, sizeof(tl__job_t), &kind->cls, &f)) != 0)
        return rc;
    tl__job_t *j = (tl__job_t *)f;
    j->ex = ex;
    j->port = p;
    j->fn = fn;
    j->arg = arg;
    tl_future_ref(f); /* the job's */
    port_ref(p);
    atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);

    if (atomic_load(&ex->shut))
        goto closed;
    j->queued = 1;
    tl__job_t *top = atomic_load_explicit(&ex->incoming, memory_order_relaxed);
    do
        j->next = top;
    while (!atomic_compare_exchange_weak(&ex->incoming, &top, j));
    /* The lock only when no worker is looking (see the wake rule), or
     * when a shutdown came in between: then the job is withdrawn unless the
     * shutdown already took it (then the future is, or will be, done). */
    if (atomic_load(&ex->nlooking) == 0 || atomic_load(&ex->shut)) {
        tl__mutex_lock(&ex->lock);
        take_incoming(ex);
        if (atomic_load(&ex->shut) && j->queued) {
            queue_unlink(ex, j);
            tl__mutex_unlock(&ex->lock);
            goto closed;
        }
        wake_if_needed(ex);
        tl__mutex_unlock(&ex->lock);
    }
    *out = f;
    return 0;
closed: /* nothing was taken: arg stays the caller's */
    job_release_refs(j);
    tl_future_unref(f);
    return TL_ECLOSED;
}

int tl_executor_shutdown(tl_executor_t *ex, int wait, int cancel_pending) {
    if (ex == NULL)
        return TL_EINVAL;
    tl__job_t *pending = NULL;
    tl__mutex_lock(&ex->lock);
    atomic_store(&ex->shut, 1);
    take_incoming(ex);
    if (cancel_pending) {
        pending = ex->head;
        for (tl__job_t *j = pending; j; j = j->next)
            j->queued = 0; /* no longer cancellable through the queue */
        ex->head = ex->tail = NULL;
        ex->qlen = 0;
        atomic_store_explicit(&ex->queued, 0, memory_order_relaxed);
    }
    tl__cond_broadcast(&ex->work);
    tl__mutex_unlock(&ex->lock);

    while (pending) {
        tl__job_t *j = pending;
        pending = j->next;
        j->u.prev = j->next = NULL;
        j->rc = TL_ECANCELLED;
        if (tl__loop_check(j->base.loop) == 0)
            job_complete(j); /* the calling thread's own loop: at once */
        else
            deliver(j);
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
