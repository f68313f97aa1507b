/*
 * Helpers shared by the test_sync_await*.c suites: a task that runs one
 * sequential form and records how it returned, so that a test can line up
 * waiters, cancel them at chosen moments and step the loop one iteration
 * at a time.
 *
 * The moments that matter: tl_task_spawn runs nothing; the first
 * iteration after it runs each task up to its first suspension (in spawn
 * order). Completing a waiter's future schedules its task's wakeup for the
 * next iteration, so between a release (or put, notify...) made by the test
 * and the next tl_loop_run_once, the woken task has not run yet: a cancel
 * made there is the late cancellation the sequential forms give back for.
 */
#ifndef TL_SYNC_AWAIT_TEST_H
#define TL_SYNC_AWAIT_TEST_H

#include "sync_test.h"
#include "tulip/task.h"

#define OP_RUNNING 1 /* op.rc until the form returns */

typedef enum op_kind {
    OP_LOCK,     /* tl_lock_acquire(obj) */
    OP_EVENT,    /* tl_event_wait(obj) */
    OP_COND,     /* tl_lock_acquire(lock of obj), then tl_condition_wait */
    OP_COND_FOR, /* the same with tl_condition_wait_for(obj, pred, pred_ctx) */
    OP_SEM,      /* tl_semaphore_acquire(obj) */
    OP_BARRIER,  /* tl_barrier_wait(obj) */
    OP_PUT,      /* tl_queue_put(obj, item) */
    OP_GET,      /* tl_queue_get(obj, &item) */
    OP_JOIN      /* tl_queue_join(obj) */
} op_kind_t;

/* What the ops of one test share: who holds the lock (a mutual-exclusion
 * check), how many hold a semaphore unit, and the order ops returned in. */
typedef struct world {
    char owner; /* id of the op (or 'T', the test) holding the lock, or 0 */
    int inside, max_inside;
    char log[64]; /* op ids in the order they returned */
    int nlog;
} world_t;

typedef struct op {
    op_kind_t kind;
    char id;
    void *obj;
    world_t *w;
    void *item; /* OP_PUT: put; OP_GET: got (untouched on failure) */
    tl_predicate_t pred;
    void *pred_ctx;
    int keep;   /* do not release what was acquired (the test will) */
    int rc;     /* OP_RUNNING, then what the form returned */
    int locked; /* lock forms: tl_lock_locked right after the return */
    int cancelling; /* tl_task_cancelling right after the return */
    long arm_at;    /* > 0: fail that allocation of the form (arm()) */
    int probe;      /* suspend once more after the form returns... */
    int probe_rc;   /* ...and record what that tl_yield returned */
    tl_task_t *task;
} op_t;

static inline tl_lock_t *op_lock(const op_t *op) {
    if (op->kind == OP_LOCK)
        return op->obj;
    if (op->kind == OP_COND || op->kind == OP_COND_FOR)
        return tl_condition_lock(op->obj);
    return NULL;
}

/* The lock forms' contract: does the caller hold the lock after rc? */
static inline int op_holds_lock(const op_t *op) {
    if (op->kind == OP_LOCK)
        return op->rc == 0;
    if (op->kind == OP_COND || op->kind == OP_COND_FOR)
        return op->rc == 0 || op->rc == TL_ECANCELLED;
    return 0;
}

static inline void claim_lock(world_t *w, char id) {
    CU_ASSERT_EQUAL(w->owner, 0); /* one owner at a time */
    w->owner = id;
}

static inline void drop_lock(world_t *w, tl_lock_t *l, char id) {
    CU_ASSERT_EQUAL(w->owner, id);
    w->owner = 0;
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
}

static int op_task(void *arg, void **result) {
    op_t *op = arg;
    (void)result;
    if (op->kind == OP_COND || op->kind == OP_COND_FOR) {
        /* The condition forms need the lock first. */
        int rc = tl_lock_acquire(tl_condition_lock(op->obj));
        if (rc) {
            op->rc = rc;
            return 0;
        }
        claim_lock(op->w, op->id);
        op->w->owner = 0; /* the wait releases it */
    }
    if (op->arm_at > 0)
        arm(op->arm_at);
    switch (op->kind) {
    case OP_LOCK: op->rc = tl_lock_acquire(op->obj); break;
    case OP_EVENT: op->rc = tl_event_wait(op->obj); break;
    case OP_COND: op->rc = tl_condition_wait(op->obj); break;
    case OP_COND_FOR:
        op->rc = tl_condition_wait_for(op->obj, op->pred, op->pred_ctx);
        break;
    case OP_SEM: op->rc = tl_semaphore_acquire(op->obj); break;
    case OP_BARRIER: op->rc = tl_barrier_wait(op->obj); break;
    case OP_PUT: op->rc = tl_queue_put(op->obj, op->item); break;
    case OP_GET: op->rc = tl_queue_get(op->obj, &op->item); break;
    case OP_JOIN: op->rc = tl_queue_join(op->obj); break;
    }
    tl_lock_t *l = op_lock(op);
    op->locked = l ? tl_lock_locked(l) : -1;
    op->cancelling = tl_task_cancelling(tl_task_current());
    if (op->probe)
        op->probe_rc = tl_yield(); /* a request still pending shows here */
    if (op->w->nlog < (int)sizeof op->w->log - 1)
        op->w->log[op->w->nlog++] = op->id;
    if (op_holds_lock(op)) {
        CU_ASSERT_EQUAL(op->locked, 1);
        claim_lock(op->w, op->id);
        if (!op->keep)
            drop_lock(op->w, l, op->id);
    } else if (op->kind == OP_SEM && op->rc == 0) {
        op->w->inside++;
        if (op->w->inside > op->w->max_inside)
            op->w->max_inside = op->w->inside;
        if (!op->keep) {
            op->w->inside--;
            CU_ASSERT_EQUAL(tl_semaphore_release(op->obj), 0);
        }
    }
    return 0;
}

/* Prepare an op (not started). */
static inline void op_init(op_t *op, op_kind_t kind, char id, void *obj,
                           world_t *w) {
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->id = id;
    op->obj = obj;
    op->w = w;
    op->rc = OP_RUNNING;
    op->probe_rc = OP_RUNNING;
    op->locked = -1;
}

/* Spawn its task; it runs in the next iteration. */
static inline void op_spawn(tl_loop_t *loop, op_t *op) {
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, op_task, op, NULL, &op->task), 0);
}

/* op_init + op_spawn. */
static inline void op_start(tl_loop_t *loop, op_t *op, op_kind_t kind, char id,
                            void *obj, world_t *w) {
    op_init(op, kind, id, obj, w);
    op_spawn(loop, op);
}

/* Waiting inside the form. */
#define ASSERT_WAITING(op) CU_ASSERT_EQUAL((op)->rc, OP_RUNNING)

/* Run the loop until the op's task is done, and drop the task. */
static inline void op_finish(tl_loop_t *loop, op_t *op) {
    if (op->task == NULL)
        return;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(op->task), NULL), 0);
    tl_task_unref(op->task);
    op->task = NULL;
}

/* Cancel the op's task: it is still running, so the request counts. */
static inline void op_cancel(op_t *op) {
    CU_ASSERT_EQUAL(tl_task_cancel(op->task, NULL), 1);
}

/* The test itself takes a free lock (as the party 'T'). */
static inline void test_takes_lock(world_t *w, tl_lock_t *l) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_lock_acquire_future(l, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    tl_future_unref(f);
    claim_lock(w, 'T');
}

static inline void test_releases_lock(world_t *w, tl_lock_t *l) {
    drop_lock(w, l, 'T');
}

#endif
