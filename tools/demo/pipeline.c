/*
 * Part 6: tasks and a queue. A task runs a C function on a stack of its
 * own; a call that has to wait (tl_queue_put on a full queue, tl_queue_get
 * on an empty one, tl_sleep) suspends the task, not the loop, and the loop
 * resumes it when it can go on. So a producer and its consumers are plain
 * sequential C, as with asyncio.Queue: a bounded queue makes the producer
 * wait for room, task_done/join tell it when every item was processed, and
 * shutdown (Python 3.13) ends the consumers' gets.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "demo.h"

#define NITEMS 10
#define MAXSIZE 4
#define NCONSUMERS 3
#define WORK_MS 10
#define GUARD_MS 2000

typedef struct pipeline {
    tl_queue_t *queue;
    uint64_t t0;
    int items[NITEMS];     /* the queue carries pointers to these */
    int processed[NITEMS]; /* how often each item was processed */
    int taken[NITEMS];     /* the items in the order they left the queue */
    int ntaken;
    int waits;     /* puts that found the queue full */
    int max_qsize; /* the most items the queue held */
} pipeline_t;

typedef struct consumer {
    const char *name;
    pipeline_t *p;
    int count;  /* items it processed */
    int end_rc; /* what its last tl_queue_get returned */
} consumer_t;

/* Static: the tasks use them, and a part that fails leaves its tasks to
 * tl_loop_close, which wakes them once more after the part has returned. */
static pipeline_t pipeline;
static consumer_t consumers[NCONSUMERS];

static int producer(void *arg, void **result) {
    pipeline_t *p = arg;
    (void)result; /* stays NULL */
    for (int i = 0; i < NITEMS; i++) {
        int full = tl_queue_full(p->queue), ntaken = p->ntaken;
        if (full) {
            printf("   at %5.1f ms producer: the queue is full (%d items); item %d waits\n",
                   demo_ms_since(p->t0), tl_queue_qsize(p->queue), p->items[i]);
            p->waits++;
        }
        TASK_TRY(tl_queue_put(p->queue, &p->items[i]));
        TASK_CHECK(!full || p->ntaken > ntaken,
                   "the put of item %d did not wait for a get", p->items[i]);
        int qsize = tl_queue_qsize(p->queue);
        if (qsize > p->max_qsize)
            p->max_qsize = qsize;
    }
    printf("   at %5.1f ms producer: all %d items are in; tl_queue_join waits\n",
           demo_ms_since(p->t0), NITEMS);
    TASK_TRY(tl_queue_join(p->queue));
    for (int i = 0; i < NITEMS; i++)
        TASK_CHECK(p->processed[i] == 1, "item %d was processed %d times", i + 1,
                   p->processed[i]);
    printf("   at %5.1f ms producer: join returned, every item is done; it shuts\n"
           "               the queue down\n", demo_ms_since(p->t0));
    TASK_TRY(tl_queue_shutdown(p->queue, 0));
    return 0;
}

static int consumer(void *arg, void **result) {
    consumer_t *c = arg;
    pipeline_t *p = c->p;
    (void)result;
    for (;;) {
        void *item;
        int rc = tl_queue_get(p->queue, &item);
        if (rc == TL_EQUEUESHUTDOWN) {
            printf("   at %5.1f ms consumer %s: tl_queue_get returned TL_EQUEUESHUTDOWN;\n"
                   "               it stops after %d items\n",
                   demo_ms_since(p->t0), c->name, c->count);
            c->end_rc = rc;
            return 0;
        }
        TASK_TRY(rc);
        int n = *(int *)item;
        TASK_CHECK(p->ntaken < NITEMS && n >= 1 && n <= NITEMS, "a stray item %d", n);
        p->taken[p->ntaken++] = n;
        printf("   at %5.1f ms consumer %s takes item %d\n", demo_ms_since(p->t0),
               c->name, n);
        TASK_TRY(tl_sleep(WORK_MS * MS)); /* the work */
        p->processed[n - 1]++;
        c->count++;
        TASK_TRY(tl_queue_task_done(p->queue));
    }
}

int demo_pipeline(tl_loop_t *loop) {
    pipeline_t *p = &pipeline;
    static const char *const names[NCONSUMERS] = {"A", "B", "C"};
    memset(p, 0, sizeof *p);
    for (int i = 0; i < NITEMS; i++)
        p->items[i] = i + 1;
    tl_queue_options_t qo = {sizeof qo, TL_QUEUE_FIFO, MAXSIZE, NULL, NULL, NULL};
    TRY(tl_queue_new(loop, &qo, &p->queue));

    printf("   A producer task puts items 1..%d into a FIFO queue of maxsize %d;\n"
           "   consumer tasks A, B and C each get an item, work on it for %d ms\n"
           "   (tl_sleep) and mark it done (tl_queue_task_done). Each is a loop in\n"
           "   plain C; a put or get that must wait suspends only its task.\n",
           NITEMS, MAXSIZE, WORK_MS);
    p->t0 = tl_now_ns();
    tl_task_t *prod, *cons[NCONSUMERS];
    tl_task_options_t to = {sizeof to, "producer", 0, NULL};
    TRY(tl_task_spawn(loop, producer, p, &to, &prod));
    for (int i = 0; i < NCONSUMERS; i++) {
        consumers[i] = (consumer_t){names[i], p, 0, 0};
        to.name = names[i];
        TRY(tl_task_spawn(loop, consumer, &consumers[i], &to, &cons[i]));
    }

    int rc;
    if (demo_complete(loop, tl_task_future(prod), GUARD_MS, &rc, NULL))
        return -1;
    CHECK(rc == 0, "the producer ended with %s", tl_err_name(rc));
    for (int i = 0; i < NCONSUMERS; i++) {
        if (demo_complete(loop, tl_task_future(cons[i]), GUARD_MS, &rc, NULL))
            return -1;
        CHECK(rc == 0, "consumer %s ended with %s", names[i], tl_err_name(rc));
        CHECK(consumers[i].end_rc == TL_EQUEUESHUTDOWN, "consumer %s did not see the shutdown",
              names[i]);
    }

    CHECK(p->waits > 0, "the producer never waited for room");
    CHECK(p->max_qsize <= MAXSIZE, "the queue held %d items", p->max_qsize);
    CHECK(p->ntaken == NITEMS, "%d items were taken, not %d", p->ntaken, NITEMS);
    for (int i = 0; i < NITEMS; i++)
        CHECK(p->taken[i] == i + 1, "item %d left the queue in position %d", p->taken[i],
              i + 1);
    int total = 0;
    for (int i = 0; i < NCONSUMERS; i++)
        total += consumers[i].count;
    CHECK(total == NITEMS, "the consumers processed %d items, not %d", total, NITEMS);
    printf("   The producer waited for room %d times and the queue never held more\n"
           "   than %d items; the items left it in the order they were put (FIFO),\n"
           "   each was processed exactly once (A %d, B %d, C %d), and the shutdown\n"
           "   ended the three consumers.\n",
           p->waits, MAXSIZE, consumers[0].count, consumers[1].count, consumers[2].count);

    TRY(tl_task_unref(prod));
    for (int i = 0; i < NCONSUMERS; i++)
        TRY(tl_task_unref(cons[i]));
    TRY(tl_queue_free(p->queue));
    return 0;
}
