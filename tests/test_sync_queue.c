/* sync_queue: asyncio.Queue, LifoQueue and PriorityQueue through the
 * future forms: orders, maxsize, hand-over to waiting getters and putters,
 * the cancel-while-woken races for get and put, freeing, memory. Join and
 * shutdown are in test_sync_queue_shutdown.c. */
#include <stdint.h>
#include <string.h>

#include "sync_test.h"

/* ---- options and arguments -------------------------------------------- */

static int by_value(const void *a, const void *b, void *ctx) {
    (void)ctx;
    return (num(a) > num(b)) - (num(a) < num(b));
}

static void test_bad_options_and_arguments_are_rejected(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = NULL;
    tl_future_t *f = NULL;
    void *v = NULL;
    size_t max = 0;
    tl_queue_options_t o = {sizeof o, TL_QUEUE_PRIORITY, 0, NULL, NULL, NULL};
    CU_ASSERT_EQUAL(tl_queue_new(loop, &o, &q), TL_EINVAL); /* no compare */
    o.order = (tl_queue_order_t)7;
    o.compare = by_value;
    CU_ASSERT_EQUAL(tl_queue_new(loop, &o, &q), TL_EINVAL);
    o.order = TL_QUEUE_FIFO;
    o.size = 2;
    CU_ASSERT_EQUAL(tl_queue_new(loop, &o, &q), TL_EINVAL);
    /* A newer, longer struct is accepted when what this version does not
     * know is zero. */
    struct {
        tl_queue_options_t o;
        char more[8];
    } newer;
    memset(&newer, 0, sizeof newer);
    newer.o.size = sizeof newer;
    newer.more[3] = 1;
    CU_ASSERT_EQUAL(tl_queue_new(loop, &newer.o, &q), TL_EINVAL);
    newer.more[3] = 0;
    CU_ASSERT_EQUAL(tl_queue_new(loop, &newer.o, &q), 0);
    tl_queue_free(q);
    CU_ASSERT_EQUAL(tl_queue_new(NULL, NULL, &q), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_new(loop, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_free(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_put_future(NULL, NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_get_future(NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_get_nowait(NULL, &v), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_qsize(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_empty(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_full(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_maxsize(NULL, &max), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_task_done(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_join_future(NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_shutdown(NULL, 0), TL_EINVAL);
    q = new_queue(loop, TL_QUEUE_FIFO, 0);
    CU_ASSERT_EQUAL(tl_queue_put_future(q, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_get_future(q, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_get_nowait(q, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_join_future(q, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_maxsize(q, NULL), TL_EINVAL);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_defaults_are_an_unbounded_fifo(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_queue_new(loop, NULL, &q), 0);
    size_t max = 99;
    CU_ASSERT_EQUAL(tl_queue_maxsize(q, &max), 0);
    CU_ASSERT_EQUAL(max, 0);
    /* A zeroed options struct (even its size) means the same. */
    tl_queue_options_t o;
    memset(&o, 0, sizeof o);
    tl_queue_t *q2 = NULL;
    CU_ASSERT_EQUAL(tl_queue_new(loop, &o, &q2), 0);
    for (int i = 0; i < 1000; i++) {
        CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(i)), 0);
        CU_ASSERT_EQUAL(tl_queue_full(q), 0);
    }
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 1000);
    for (int i = 0; i < 1000; i++)
        CU_ASSERT_EQUAL(get_now(q), i);
    CU_ASSERT_EQUAL(tl_queue_empty(q), 1);
    /* NULL is an item like any other. */
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q2, NULL), 0);
    void *v = item(5);
    CU_ASSERT_EQUAL(tl_queue_get_nowait(q2, &v), 0);
    CU_ASSERT_PTR_NULL(v);
    tl_queue_free(q2);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_lifo_takes_the_newest_first(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_LIFO, 0);
    for (int i = 0; i < 20; i++)
        CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(i)), 0);
    for (int i = 19; i >= 10; i--)
        CU_ASSERT_EQUAL(get_now(q), i);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(100)), 0);
    CU_ASSERT_EQUAL(get_now(q), 100);
    for (int i = 9; i >= 0; i--)
        CU_ASSERT_EQUAL(get_now(q), i);
    CU_ASSERT_EQUAL(get_now(q), TL_EQUEUEEMPTY);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_priority_takes_the_smallest_first_and_equals_in_put_order(void) {
    tl_loop_t *loop = tl_test_loop();
    int calls = 0;
    tl_queue_options_t o = {sizeof o, TL_QUEUE_PRIORITY, 0, by_priority, &calls, NULL};
    tl_queue_t *q = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_queue_new(loop, &o, &q), 0);
    /* 60 items, priorities 0..4 in a scrambled order, serials increasing. */
    int serial = 0;
    for (int i = 0; i < 60; i++) {
        int prio = (i * 7 + 3) % 5;
        CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(prio * 1000 + serial++)), 0);
    }
    CU_ASSERT(calls > 0);
    int last = -1;
    for (int i = 0; i < 60; i++) {
        int v = get_now(q);
        CU_ASSERT(v > last); /* priority first, then serial: increasing */
        last = v;
    }
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_nowait_calls_report_full_and_empty(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 2);
    size_t max = 0;
    CU_ASSERT_EQUAL(tl_queue_maxsize(q, &max), 0);
    CU_ASSERT_EQUAL(max, 2);
    CU_ASSERT_EQUAL(get_now(q), TL_EQUEUEEMPTY);
    CU_ASSERT_EQUAL(tl_queue_empty(q), 1);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(2)), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(3)), TL_EQUEUEFULL);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 2);
    CU_ASSERT_EQUAL(tl_queue_full(q), 1);
    CU_ASSERT_EQUAL(tl_queue_empty(q), 0);
    CU_ASSERT_EQUAL(get_now(q), 1);
    CU_ASSERT_EQUAL(tl_queue_full(q), 0);
    CU_ASSERT_EQUAL(get_now(q), 2);
    CU_ASSERT_EQUAL(get_now(q), TL_EQUEUEEMPTY);
    /* put_future and get_future complete at once when they can. */
    tl_future_t *f = NULL;
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_queue_put_future(q, item(7), &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_queue_get_future(q, &f), 0);
    CU_ASSERT_EQUAL(tl_future_result(f, &v), 0);
    CU_ASSERT_EQUAL(num(v), 7);
    tl_future_unref(f);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

/* ---- waiting getters and putters --------------------------------------- */

static void test_a_put_hands_the_item_to_the_oldest_getter(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 0);
    wlog_t log = {0};
    waiter_t g[3];
    for (int i = 0; i < 3; i++)
        get(q, &g[i], i, &log);
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 0);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(10 + i)), 0);
        CU_ASSERT_EQUAL(tl_queue_qsize(q), 0); /* straight to the getter */
    }
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 3);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(log.ids[i], i);
        CU_ASSERT_EQUAL(g[i].rc, 0);
        CU_ASSERT_EQUAL(num(g[i].value), 10 + i);
        unwatch(&g[i]);
    }
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_a_full_queue_makes_put_wait_until_a_get_makes_room(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 1);
    wlog_t log = {0};
    waiter_t p[3];
    for (int i = 0; i < 3; i++)
        put(q, &p[i], i + 1, &log);
    CU_ASSERT_EQUAL(tl_future_done(p[0].f), 1);
    spin(loop, 1);
    ASSERT_PENDING(&p[1]);
    ASSERT_PENDING(&p[2]);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(9)), TL_EQUEUEFULL);
    for (int i = 1; i <= 3; i++) {
        CU_ASSERT_EQUAL(get_now(q), i);
        CU_ASSERT_EQUAL(tl_queue_qsize(q), i < 3 ? 1 : 0); /* refilled */
    }
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 3);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(log.ids[i], i + 1);
        CU_ASSERT_EQUAL(p[i].rc, 0);
        unwatch(&p[i]);
    }
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

/* ---- the cancel-while-woken races ------------------------------------- */

typedef struct race {
    tl_queue_t *q;
    waiter_t *victim;
    int cancel_rc, op_rc;
    void *got;
} race_t;

static void cancel_victim(void *ctx) {
    race_t *r = ctx;
    r->cancel_rc = tl_future_cancel(r->victim->f, NULL);
}
static void put_one(void *ctx) {
    race_t *r = ctx;
    r->op_rc = tl_queue_put_nowait(r->q, item(42));
}
static void get_one(void *ctx) {
    race_t *r = ctx;
    r->op_rc = tl_queue_get_nowait(r->q, &r->got);
}

static void test_getter_cancelled_just_before_a_put_does_not_lose_the_item(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 0);
    waiter_t a, b;
    get(q, &a, 1, NULL);
    get(q, &b, 2, NULL);
    race_t r = {q, &a, -1, -1, NULL};
    tl_loop_call_soon(loop, cancel_victim, &r, NULL);
    tl_loop_call_soon(loop, put_one, &r, NULL);
    spin(loop, 2);
    CU_ASSERT_EQUAL(r.cancel_rc, 1);
    CU_ASSERT_EQUAL(r.op_rc, 0);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(num(b.value), 42);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 0);
    unwatch(&a);
    unwatch(&b);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_getter_cancelled_just_after_a_put_owns_the_item(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 0);
    waiter_t a, b;
    get(q, &a, 1, NULL);
    get(q, &b, 2, NULL);
    race_t r = {q, &a, -1, -1, NULL};
    tl_loop_call_soon(loop, put_one, &r, NULL);
    tl_loop_call_soon(loop, cancel_victim, &r, NULL);
    spin(loop, 2);
    CU_ASSERT_EQUAL(r.cancel_rc, 0); /* too late: the item is a's */
    CU_ASSERT_EQUAL(a.rc, 0);
    CU_ASSERT_EQUAL(num(a.value), 42);
    ASSERT_PENDING(&b);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(43)), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(num(b.value), 43);
    unwatch(&a);
    unwatch(&b);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_putter_cancelled_just_before_a_get_does_not_lose_the_room(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 1);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    waiter_t a, b;
    put(q, &a, 2, NULL);
    put(q, &b, 3, NULL);
    race_t r = {q, &a, -1, -1, NULL};
    tl_loop_call_soon(loop, cancel_victim, &r, NULL);
    tl_loop_call_soon(loop, get_one, &r, NULL);
    spin(loop, 2);
    CU_ASSERT_EQUAL(r.cancel_rc, 1);
    CU_ASSERT_EQUAL(r.op_rc, 0);
    CU_ASSERT_EQUAL(num(r.got), 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 1);
    CU_ASSERT_EQUAL(get_now(q), 3); /* b's item; a's was never put */
    CU_ASSERT_EQUAL(get_now(q), TL_EQUEUEEMPTY);
    unwatch(&a);
    unwatch(&b);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_putter_cancelled_just_after_a_get_has_put_its_item(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 1);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    waiter_t a, b;
    put(q, &a, 2, NULL);
    put(q, &b, 3, NULL);
    race_t r = {q, &a, -1, -1, NULL};
    tl_loop_call_soon(loop, get_one, &r, NULL);
    tl_loop_call_soon(loop, cancel_victim, &r, NULL);
    spin(loop, 2);
    CU_ASSERT_EQUAL(r.cancel_rc, 0);
    CU_ASSERT_EQUAL(a.rc, 0);
    ASSERT_PENDING(&b);
    CU_ASSERT_EQUAL(get_now(q), 2);
    CU_ASSERT_EQUAL(get_now(q), 3);
    unwatch(&a);
    unwatch(&b);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

/* A random walk of puts, gets (waiting and not), cancels and iterations on
 * a bounded FIFO queue, checked after every step: no item lost, none
 * duplicated, FIFO order kept, and nobody left waiting for what is there. */
static unsigned next_rand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

enum { OP_PUT, OP_GET };
typedef struct op {
    tl_future_t *f;
    int kind, item, seen;
} op_t;

static void test_random_interleavings_lose_and_duplicate_no_item(void) {
    tl_loop_t *loop = tl_test_loop();
    enum { MAX = 3, N = 600 };
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, MAX);
    static op_t ops[N];
    static int put_seq[2 * N], got_seq[2 * N];
    int nops = 0, nput = 0, ngot = 0, serial = 1;
    unsigned seed = 4242;
    for (int step = 0; step < 4000; step++) {
        unsigned r = next_rand(&seed) % 10;
        if (r < 2 && nops < N) {
            op_t *o = &ops[nops++];
            o->kind = OP_PUT;
            o->item = serial++;
            o->seen = 0;
            CU_ASSERT_EQUAL_FATAL(tl_queue_put_future(q, item(o->item), &o->f), 0);
        } else if (r < 4 && nops < N) {
            op_t *o = &ops[nops++];
            o->kind = OP_GET;
            o->seen = 0;
            CU_ASSERT_EQUAL_FATAL(tl_queue_get_future(q, &o->f), 0);
        } else if (r < 5) {
            int rc = tl_queue_put_nowait(q, item(serial));
            CU_ASSERT(rc == 0 || rc == TL_EQUEUEFULL);
            if (rc == 0)
                put_seq[nput++] = serial++;
        } else if (r < 6) {
            int v = get_now(q);
            CU_ASSERT(v > 0 || v == TL_EQUEUEEMPTY);
            if (v > 0)
                got_seq[ngot++] = v;
        } else if (r < 8 && nops > 0) {
            tl_future_cancel(ops[next_rand(&seed) % (unsigned)nops].f, NULL);
        } else {
            spin(loop, 1);
        }
        /* Record what completed in this step (at most one hand-over per
         * step, so the order is the queue's). */
        int pending_get = 0, pending_put = 0;
        for (int i = 0; i < nops; i++) {
            op_t *o = &ops[i];
            if (!tl_future_done(o->f)) {
                pending_get += o->kind == OP_GET;
                pending_put += o->kind == OP_PUT;
                continue;
            }
            if (o->seen)
                continue;
            o->seen = 1;
            void *v = NULL;
            if (tl_future_result(o->f, &v) != 0)
                continue; /* cancelled */
            if (o->kind == OP_PUT)
                put_seq[nput++] = o->item;
            else
                got_seq[ngot++] = num(v);
        }
        int size = tl_queue_qsize(q);
        CU_ASSERT_EQUAL(ngot + size, nput);
        if (pending_get)
            CU_ASSERT_EQUAL(size, 0);
        if (pending_put)
            CU_ASSERT_EQUAL(size, MAX);
    }
    for (int i = 0; i < ngot; i++)
        CU_ASSERT_EQUAL(got_seq[i], put_seq[i]);
    CU_ASSERT(ngot > 100); /* the walk did exercise the queue */
    for (int i = 0; i < nops; i++)
        tl_future_unref(ops[i].f);
    tl_queue_free(q);
    spin(loop, 1);
    tl_test_loop_free(loop);
}

/* ---- freeing, threads, closed loops ----------------------------------- */

static void test_free_releases_the_items_and_cancels_every_waiter(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_owning_queue(loop, 2);
    tl_queue_t *empty = new_queue(loop, TL_QUEUE_LIFO, 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(2)), 0);
    waiter_t putter, joiner, getter;
    put(q, &putter, 3, NULL);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_queue_join_future(q, &f), 0);
    watch(&joiner, f, 1, NULL);
    get(empty, &getter, 1, NULL);
    CU_ASSERT_EQUAL(tl_queue_free(q), 0);
    CU_ASSERT_EQUAL(tl_queue_free(empty), 0);
    CU_ASSERT_EQUAL(destroyed[1], 1);
    CU_ASSERT_EQUAL(destroyed[2], 1);
    CU_ASSERT_EQUAL(destroyed[3], 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(putter.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(joiner.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(getter.rc, TL_ECANCELLED);
    unwatch(&putter);
    unwatch(&joiner);
    unwatch(&getter);
    tl_test_loop_free(loop);
}

typedef struct foreign {
    tl_queue_t *q;
    int rc[7];
} foreign_t;

static void foreign_calls(void *ctx) {
    foreign_t *t = ctx;
    tl_future_t *f = NULL;
    void *v = NULL;
    t->rc[0] = tl_queue_put_nowait(t->q, NULL);
    t->rc[1] = tl_queue_get_nowait(t->q, &v);
    t->rc[2] = tl_queue_get_future(t->q, &f);
    t->rc[3] = tl_queue_qsize(t->q);
    t->rc[4] = tl_queue_task_done(t->q);
    t->rc[5] = tl_queue_shutdown(t->q, 1);
    t->rc[6] = tl_queue_free(t->q);
}

static void test_other_threads_and_closed_loops_are_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_owning_queue(loop, 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    foreign_t t = {q, {0}};
    on_other_thread(foreign_calls, &t);
    for (int i = 0; i < 7; i++)
        CU_ASSERT_EQUAL(t.rc[i], TL_EWRONGTHREAD);
    tl_loop_close(loop);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(2)), TL_ECLOSED);
    CU_ASSERT_EQUAL(get_now(q), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 1);
    CU_ASSERT_EQUAL(tl_queue_free(q), 0);
    CU_ASSERT_EQUAL(destroyed[1], 1);
    tl_loop_unref(loop);
}

/* ---- running out of memory -------------------------------------------- */

static void test_new_survives_allocation_failures(void) {
    tl_loop_t *loop = tl_test_loop();
    for (long n = 1; n < WALK_MAX; n++) {
        tl_queue_t *q = NULL;
        arm(n);
        int rc = tl_queue_new(loop, NULL, &q);
        int hit = disarm(n);
        if (rc == 0)
            tl_queue_free(q);
        else
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        if (!hit)
            break;
    }
    tl_test_loop_free(loop);
}

/* put_nowait and put_future into a queue whose storage must grow, for each
 * order: a failure leaves the queue as it was. */
static void test_put_survives_allocation_failures(void) {
    tl_loop_t *loop = tl_test_loop();
    for (int order = 0; order < 3; order++) {
        for (int future = 0; future < 2; future++) {
            int calls = 0;
            tl_queue_options_t o = {sizeof o, (tl_queue_order_t)order, 0,
                                    by_priority, &calls, NULL};
            tl_queue_t *q = NULL;
            CU_ASSERT_EQUAL_FATAL(tl_queue_new(loop, &o, &q), 0);
            int size = 0, failures = 0;
            for (int k = 0; k < 40; k++) { /* crosses several growths */
                for (long n = 1; n < WALK_MAX; n++) {
                    tl_future_t *f = NULL;
                    arm(n);
                    int rc = future ? tl_queue_put_future(q, item(size), &f)
                                    : tl_queue_put_nowait(q, item(size));
                    int hit = disarm(n);
                    if (rc == 0) {
                        size++;
                        if (f)
                            tl_future_unref(f);
                    } else {
                        failures++;
                        CU_ASSERT_EQUAL(rc, TL_ENOMEM);
                    }
                    CU_ASSERT_EQUAL(tl_queue_qsize(q), size);
                    if (!hit)
                        break;
                }
            }
            CU_ASSERT(failures >= 4);
            for (int i = 0; i < size; i++) {
                int v = get_now(q);
                CU_ASSERT_EQUAL(v, order == TL_QUEUE_LIFO ? size - 1 - i : i);
            }
            tl_queue_free(q);
        }
    }
    tl_test_loop_free(loop);
}

static void test_waiting_get_put_and_join_survive_allocation_failures(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 1);
    for (int what = 0; what < 3; what++) {
        if (what == 1)
            CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0); /* full */
        for (long n = 1; n < WALK_MAX; n++) {
            tl_future_t *f = NULL;
            arm(n);
            int rc = what == 0   ? tl_queue_get_future(q, &f)
                     : what == 1 ? tl_queue_put_future(q, item(2), &f)
                                 : tl_queue_join_future(q, &f);
            int hit = disarm(n);
            if (rc == 0) {
                CU_ASSERT_EQUAL(tl_future_done(f), 0);
                tl_future_cancel(f, NULL);
                tl_future_unref(f);
            } else {
                CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            }
            CU_ASSERT_EQUAL(tl_queue_qsize(q), what == 0 ? 0 : 1);
            if (!hit)
                break;
        }
    }
    CU_ASSERT_EQUAL(get_now(q), 1);
    tl_queue_free(q);
    spin(loop, 1);
    tl_test_loop_free(loop);
}

/* A get that must wake a waiting putter, and a put that must wake a
 * waiting getter: when the wake fails, nothing is taken or put. */
static void test_hand_overs_that_cannot_wake_the_waiter_change_nothing(void) {
    int failures = 0;
    for (int side = 0; side < 2; side++) {
        for (long n = 1; n < WALK_MAX; n++) {
            tl_loop_t *loop = tl_test_loop();
            tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 1);
            waiter_t w;
            if (side == 0) {
                CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
                put(q, &w, 2, NULL);
            } else {
                get(q, &w, 1, NULL);
            }
            arm(n);
            int rc = side == 0 ? get_now(q) : tl_queue_put_nowait(q, item(7));
            int hit = disarm(n);
            if (rc == TL_ENOMEM) {
                failures++;
                CU_ASSERT_EQUAL(tl_future_done(w.f), 0);
                CU_ASSERT_EQUAL(tl_queue_qsize(q), side == 0 ? 1 : 0);
                rc = side == 0 ? get_now(q) : tl_queue_put_nowait(q, item(7));
            }
            CU_ASSERT_EQUAL(rc, side == 0 ? 1 : 0);
            spin(loop, 1);
            CU_ASSERT_EQUAL(w.rc, 0);
            if (side == 0) {
                CU_ASSERT_EQUAL(get_now(q), 2);
            } else {
                CU_ASSERT_EQUAL(num(w.value), 7);
            }
            unwatch(&w);
            tl_queue_free(q);
            tl_test_loop_free(loop);
            if (!hit)
                break;
        }
    }
    CU_ASSERT(failures >= 2);
}

TL_TEST_SUITE(sync_queue,
              TL_TEST(test_bad_options_and_arguments_are_rejected),
              TL_TEST(test_defaults_are_an_unbounded_fifo),
              TL_TEST(test_lifo_takes_the_newest_first),
              TL_TEST(test_priority_takes_the_smallest_first_and_equals_in_put_order),
              TL_TEST(test_nowait_calls_report_full_and_empty),
              TL_TEST(test_a_put_hands_the_item_to_the_oldest_getter),
              TL_TEST(test_a_full_queue_makes_put_wait_until_a_get_makes_room),
              TL_TEST(test_getter_cancelled_just_before_a_put_does_not_lose_the_item),
              TL_TEST(test_getter_cancelled_just_after_a_put_owns_the_item),
              TL_TEST(test_putter_cancelled_just_before_a_get_does_not_lose_the_room),
              TL_TEST(test_putter_cancelled_just_after_a_get_has_put_its_item),
              TL_TEST(test_random_interleavings_lose_and_duplicate_no_item),
              TL_TEST(test_free_releases_the_items_and_cancels_every_waiter),
              TL_TEST(test_other_threads_and_closed_loops_are_refused),
              TL_TEST(test_new_survives_allocation_failures),
              TL_TEST(test_put_survives_allocation_failures),
              TL_TEST(test_waiting_get_put_and_join_survive_allocation_failures),
              TL_TEST(test_hand_overs_that_cannot_wake_the_waiter_change_nothing));
