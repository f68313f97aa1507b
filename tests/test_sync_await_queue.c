/* sync_await_queue: tl_queue_put, tl_queue_get and tl_queue_join in real
 * tasks: a producer and a consumer move 10k items through a small bounded
 * queue, each blocking on the other, in FIFO, LIFO and priority order;
 * waiting putters fill the room gets make, oldest first; join returns after
 * the last task_done. */
#include "sync_await_test.h"

/* A producer task and a consumer task move `n` items through a small
 * bounded queue, so each keeps blocking on the other. An item is its serial
 * s (put in order 0, 1, ...) plus, for the priority queue, a priority in
 * the bits above 16 (pseudo-random, so the order is not the put order).
 *
 * What each get must return: FIFO, the next serial. LIFO and priority, an
 * item that beats every item known to be in the queue: those whose put
 * returned and that no get returned yet (`live`). An item handed straight
 * to the waiting consumer was never in the queue: it is neither counted
 * nor checked. One
 * producer puts in serial order, so the queue always holds its items in
 * serial order, and equal priorities come out first in, first out. */
#define FLOW_ITEMS 10000
#define FLOW_MAX 8

typedef struct flow {
    tl_queue_t *q;
    tl_queue_order_t order;
    unsigned char got[FLOW_ITEMS];
    int live[FLOW_MAX + 4], nlive;
    int consumer_waits; /* the consumer's get is about to wait */
    int handed;         /* a put went straight to that waiting get */
    int consumed;
    int full_seen, empty_seen, bad;
    long compared; /* order checks made */
} flow_t;

static void *flow_item(const flow_t *fl, int s) {
    if (fl->order != TL_QUEUE_PRIORITY)
        return item(s);
    unsigned r = (unsigned)s * 2654435761u;
    return item((int)((r >> 28) << 16) | s);
}

static int flow_serial(const void *v) { return num(v) & 0xffff; }

static int flow_compare(const void *a, const void *b, void *ctx) {
    (void)ctx;
    int pa = num(a) >> 16, pb = num(b) >> 16;
    return (pa > pb) - (pa < pb);
}

/* Does the item got (serial s) come out before the one still queued? */
static int comes_first(const flow_t *fl, int s, int other) {
    if (fl->order == TL_QUEUE_LIFO)
        return s > other;
    int ps = num(flow_item(fl, s)) >> 16, po = num(flow_item(fl, other)) >> 16;
    return ps < po || (ps == po && s < other);
}

static int flow_producer(void *arg, void **result) {
    flow_t *fl = arg;
    (void)result;
    for (int s = 0; s < FLOW_ITEMS; s++) {
        if (tl_queue_full(fl->q))
            fl->full_seen++;
        int direct = fl->consumer_waits && !fl->handed;
        if (direct)
            fl->handed = 1;
        int rc = tl_queue_put(fl->q, flow_item(fl, s));
        if (rc) {
            fl->bad++;
            return rc;
        }
        if (!direct && !fl->got[s]) {
            if (fl->nlive == FLOW_MAX + 4) {
                fl->bad++; /* more items queued than maxsize allows */
                return TL_EUNKNOWN;
            }
            fl->live[fl->nlive++] = s;
        }
        if (s % 7 == 3)
            CU_ASSERT_EQUAL(tl_yield(), 0);
    }
    return 0;
}

static int flow_consumer(void *arg, void **result) {
    flow_t *fl = arg;
    (void)result;
    for (int i = 0; i < FLOW_ITEMS; i++) {
        if (tl_queue_empty(fl->q)) {
            fl->empty_seen++;
            fl->consumer_waits = 1;
        }
        void *v = NULL;
        int waited = fl->consumer_waits;
        int rc = tl_queue_get(fl->q, &v);
        fl->consumer_waits = fl->handed = 0;
        if (rc) {
            fl->bad++;
            return rc;
        }
        int s = flow_serial(v);
        if (s >= FLOW_ITEMS || fl->got[s] || v != flow_item(fl, s)) {
            fl->bad++;
            return TL_EUNKNOWN;
        }
        fl->got[s] = 1;
        fl->consumed++;
        if (fl->order == TL_QUEUE_FIFO && s != i)
            fl->bad++;
        for (int j = 0; j < fl->nlive; j++) {
            if (fl->live[j] == s)
                fl->live[j--] = fl->live[--fl->nlive];
            else if (!waited && (fl->compared++, !comes_first(fl, s, fl->live[j])))
                fl->bad++;
        }
        if (i % 5 == 2)
            CU_ASSERT_EQUAL(tl_yield(), 0);
    }
    return 0;
}

static void move_items(tl_queue_order_t order) {
    tl_loop_t *loop = tl_test_loop();
    static flow_t fl;
    memset(&fl, 0, sizeof fl);
    fl.order = order;
    tl_queue_options_t o = {sizeof o, order, FLOW_MAX, flow_compare, NULL, NULL};
    CU_ASSERT_EQUAL_FATAL(tl_queue_new(loop, &o, &fl.q), 0);
    tl_task_t *producer, *consumer;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, flow_consumer, &fl, NULL, &consumer), 0);
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, flow_producer, &fl, NULL, &producer), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(consumer), NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(producer), NULL), 0);
    CU_ASSERT_EQUAL(fl.consumed, FLOW_ITEMS);
    CU_ASSERT_EQUAL(fl.bad, 0);
    CU_ASSERT(fl.compared > FLOW_ITEMS); /* the order checks had teeth */
    CU_ASSERT(fl.full_seen > 0);  /* the producer did wait for room */
    CU_ASSERT(fl.empty_seen > 0); /* and the consumer for items */
    CU_ASSERT_EQUAL(tl_queue_qsize(fl.q), 0);
    tl_task_unref(producer);
    tl_task_unref(consumer);
    tl_queue_free(fl.q);
    tl_test_loop_free(loop);
}

static void test_queue_fifo_tasks_move_10k_items_in_order(void) {
    move_items(TL_QUEUE_FIFO);
}

static void test_queue_lifo_tasks_get_the_newest_item(void) {
    move_items(TL_QUEUE_LIFO);
}

static void test_queue_priority_tasks_get_the_smallest_item(void) {
    move_items(TL_QUEUE_PRIORITY);
}

static int by_value(const void *a, const void *b, void *ctx) {
    (void)ctx;
    return (num(a) > num(b)) - (num(a) < num(b));
}

/* Five putter tasks on a queue of two: the first two put at once, the
 * others wait; each get makes room that the oldest waiting putter fills. */
static void gets_with_putters_waiting(tl_queue_order_t order, const int *expect) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_options_t o = {sizeof o, order, 2, by_value, NULL, NULL};
    tl_queue_t *q = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_queue_new(loop, &o, &q), 0);
    static const int put[5] = {50, 40, 30, 20, 10};
    world_t w = {0};
    op_t p[5], g;
    for (int i = 0; i < 5; i++) {
        op_init(&p[i], OP_PUT, (char)('A' + i), q, &w);
        p[i].item = item(put[i]);
        op_spawn(loop, &p[i]);
    }
    spin(loop, 1);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 2);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(p[i].rc, i < 2 ? 0 : OP_RUNNING);
    }
    for (int i = 0; i < 5; i++) {
        op_start(loop, &g, OP_GET, 'G', q, &w);
        op_finish(loop, &g);
        CU_ASSERT_EQUAL(g.rc, 0);
        CU_ASSERT_EQUAL(num(g.item), expect[i]);
    }
    for (int i = 0; i < 5; i++) {
        op_finish(loop, &p[i]);
        CU_ASSERT_EQUAL(p[i].rc, 0);
    }
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 0);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_queue_get_order_with_putters_waiting(void) {
    static const int fifo[5] = {50, 40, 30, 20, 10};
    static const int lifo[5] = {40, 30, 20, 10, 50};
    static const int prio[5] = {40, 30, 20, 10, 50};
    gets_with_putters_waiting(TL_QUEUE_FIFO, fifo);
    gets_with_putters_waiting(TL_QUEUE_LIFO, lifo);
    gets_with_putters_waiting(TL_QUEUE_PRIORITY, prio);
}

typedef struct worker {
    tl_queue_t *q;
    world_t *w;
    int n;
} worker_t;

/* Take n items and mark each done a little later. */
static int queue_worker(void *arg, void **result) {
    worker_t *k = arg;
    (void)result;
    for (int i = 0; i < k->n; i++) {
        void *v;
        CU_ASSERT_EQUAL(tl_queue_get(k->q, &v), 0);
        CU_ASSERT_EQUAL(tl_yield(), 0);
        k->w->log[k->w->nlog++] = 'w';
        CU_ASSERT_EQUAL(tl_queue_task_done(k->q), 0);
    }
    return 0;
}

static void test_queue_join_returns_after_the_last_task_done(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 0);
    world_t w = {0};
    op_t j[3];
    /* Nothing unfinished: at once. */
    op_start(loop, &j[0], OP_JOIN, 'A', q, &w);
    spin(loop, 1);
    CU_ASSERT_EQUAL(j[0].rc, 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(i)), 0);
    op_start(loop, &j[1], OP_JOIN, 'B', q, &w);
    op_start(loop, &j[2], OP_JOIN, 'C', q, &w);
    worker_t k = {q, &w, 3};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, queue_worker, &k, NULL, &t), 0);
    spin(loop, 1);
    ASSERT_WAITING(&j[1]);
    ASSERT_WAITING(&j[2]);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(j[1].rc, 0);
    CU_ASSERT_EQUAL(j[2].rc, 0);
    CU_ASSERT_STRING_EQUAL(w.log, "AwwwBC");
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    tl_task_unref(t);
    for (int i = 0; i < 3; i++)
        op_finish(loop, &j[i]);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(sync_await_queue,
              TL_TEST(test_queue_fifo_tasks_move_10k_items_in_order),
              TL_TEST(test_queue_lifo_tasks_get_the_newest_item),
              TL_TEST(test_queue_priority_tasks_get_the_smallest_item),
              TL_TEST(test_queue_get_order_with_putters_waiting),
              TL_TEST(test_queue_join_returns_after_the_last_task_done));
