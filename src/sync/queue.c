/*
 * asyncio.Queue, LifoQueue and PriorityQueue, with 3.13's shutdown.
 *
 * Items are handed over, never left for a woken waiter to collect: a put
 * with getters waiting completes the oldest getter's future with the item,
 * and a get from a full queue moves the oldest putter's item in and
 * completes its future. So a getter waiting means the queue is empty, a
 * putter waiting means it is full, and a cancelled waiter has left its queue
 * before anything could be handed to it (asyncio lost wakeups here when a
 * woken waiter was cancelled before it ran, until it learned to wake the
 * next one).
 *
 * The items: a ring (FIFO takes from the front, LIFO from the back) or a
 * binary heap ordered by the compare function and then by a sequence number,
 * which keeps equal priorities first in, first out.
 */
#include <limits.h>

#include "../core/alloc.h"
#include "../core/options.h"
#include "sync_int.h"

typedef struct pq_entry {
    void *item;
    int64_t seq;
} pq_entry_t;

struct tl_queue {
    tl_loop_t *loop; /* referenced */
    tl_queue_order_t order;
    size_t maxsize;
    tl_queue_compare_t compare;
    void *compare_ctx;
    tl_destructor_t destructor;

    void **ring;      /* FIFO, LIFO: cap is a power of two */
    size_t head;
    pq_entry_t *heap; /* PRIORITY */
    size_t n, cap;
    int64_t seq_back;  /* the next put's sequence number (counts up) */
    int64_t seq_front; /* the last unget's (counts down, before every put) */

    size_t unfinished; /* put and not yet task_done */
    int shutdown;
    int drained; /* shut down with immediate: nothing stays in the queue */

    tl__waitq_t getters, putters, joiners;
    tl__waitq_t wake; /* woken by a shutdown or join, completion to do */
};

/* ---- the items -------------------------------------------------------- */

static void **ring_at(tl_queue_t *q, size_t i) {
    return &q->ring[(q->head + i) & (q->cap - 1)];
}

/* Room for one more item. 0 or TL_ENOMEM. */
static int store_reserve(tl_queue_t *q) {
    if (q->n < q->cap)
        return 0;
    if (q->order == TL_QUEUE_PRIORITY)
        return tl__grow((void **)&q->heap, &q->cap, q->n + 1, sizeof(*q->heap));
    size_t ncap = q->cap ? q->cap * 2 : 8;
    if (ncap > SIZE_MAX / sizeof(void *))
        return TL_ENOMEM;
    void **r = tl__malloc(ncap * sizeof(*r));
    if (r == NULL)
        return TL_ENOMEM;
    for (size_t i = 0; i < q->n; i++)
        r[i] = *ring_at(q, i);
    tl__free(q->ring);
    q->ring = r;
    q->head = 0;
    q->cap = ncap;
    return 0;
}

static int before(const tl_queue_t *q, const pq_entry_t *a, const pq_entry_t *b) {
    int c = q->compare(a->item, b->item, q->compare_ctx);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

static void sift_up(tl_queue_t *q, size_t i) {
    pq_entry_t e = q->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(q, &e, &q->heap[parent]))
            break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = e;
}

static void sift_down(tl_queue_t *q, size_t i) {
    pq_entry_t e = q->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->n)
            break;
        if (child + 1 < q->n && before(q, &q->heap[child + 1], &q->heap[child]))
            child++;
        if (!before(q, &q->heap[child], &e))
            break;
        q->heap[i] = q->heap[child];
        i = child;
    }
    q->heap[i] = e;
}

static void heap_insert(tl_queue_t *q, void *item, int64_t seq) {
    q->heap[q->n] = (pq_entry_t){item, seq};
    sift_up(q, q->n++);
}

/* Add at the back (after store_reserve, or after a pop). */
static void store_push(tl_queue_t *q, void *item) {
    if (q->order == TL_QUEUE_PRIORITY) {
        heap_insert(q, item, q->seq_back++);
    } else {
        *ring_at(q, q->n) = item;
        q->n++;
    }
}

/* Add where the next get finds it first (after store_reserve). */
static void store_push_front(tl_queue_t *q, void *item) {
    if (q->order == TL_QUEUE_PRIORITY) {
        heap_insert(q, item, --q->seq_front);
    } else if (q->order == TL_QUEUE_LIFO) {
        store_push(q, item);
    } else {
        q->head = (q->head - 1) & (q->cap - 1);
        q->ring[q->head] = item;
        q->n++;
    }
}

/* Remove and return the next item (q->n > 0). */
static void *store_pop(tl_queue_t *q) {
    void *item;
    if (q->order == TL_QUEUE_PRIORITY) {
        item = q->heap[0].item;
        if (--q->n > 0) {
            q->heap[0] = q->heap[q->n];
            sift_down(q, 0);
        }
    } else if (q->order == TL_QUEUE_LIFO) {
        item = *ring_at(q, --q->n);
    } else {
        item = q->ring[q->head];
        q->head = (q->head + 1) & (q->cap - 1);
        q->n--;
    }
    return item;
}

/* The position of the newest copy of item, or SIZE_MAX. */
static size_t store_find(tl_queue_t *q, const void *item) {
    size_t found = SIZE_MAX;
    if (q->order == TL_QUEUE_PRIORITY) {
        for (size_t i = 0; i < q->n; i++)
            if (q->heap[i].item == item &&
                (found == SIZE_MAX || q->heap[i].seq > q->heap[found].seq))
                found = i;
        return found;
    }
    for (size_t i = q->n; i-- > 0;)
        if (*ring_at(q, i) == item)
            return i;
    return found;
}

static void store_remove_at(tl_queue_t *q, size_t i) {
    if (q->order == TL_QUEUE_PRIORITY) {
        if (i != --q->n) {
            q->heap[i] = q->heap[q->n];
            sift_down(q, i);
            sift_up(q, i);
        }
        return;
    }
    for (; i + 1 < q->n; i++)
        *ring_at(q, i) = *ring_at(q, i + 1);
    q->n--;
}

static int is_full(const tl_queue_t *q) {
    return q->maxsize > 0 && q->n >= q->maxsize;
}

/* ---- life cycle ------------------------------------------------------- */

int tl_queue_new(tl_loop_t *loop, const tl_queue_options_t *opts,
                 tl_queue_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    tl_queue_options_t o;
    if (out == NULL || tl__copy_options(&o, sizeof o, opts) ||
        (unsigned)o.order > TL_QUEUE_PRIORITY ||
        (o.order == TL_QUEUE_PRIORITY && o.compare == NULL))
        return TL_EINVAL;
    tl_queue_t *q = tl__calloc(1, sizeof(*q));
    if (q == NULL)
        return TL_ENOMEM;
    q->loop = loop;
    q->order = o.order;
    q->maxsize = o.maxsize;
    q->compare = o.compare;
    q->compare_ctx = o.compare_ctx;
    q->destructor = o.item_destructor;
    tl_loop_ref(loop);
    *out = q;
    return 0;
}

static void drop_item(tl_queue_t *q, void *item) {
    if (q->destructor)
        q->destructor(item);
}

int tl_queue_free(tl_queue_t *q) {
    int rc = tl__sync_check_thread(q, q ? q->loop : NULL);
    if (rc)
        return rc;
    tl__waitq_cancel_all(&q->wake);
    tl__waitq_cancel_all(&q->getters);
    tl__waitq_cancel_all(&q->putters);
    tl__waitq_cancel_all(&q->joiners);
    while (q->n)
        drop_item(q, store_pop(q));
    tl__free(q->ring);
    tl__free(q->heap);
    tl_loop_unref(q->loop);
    tl__free(q);
    return 0;
}

static int enter(tl_queue_t *q) {
    int rc = tl__sync_check(q, q ? q->loop : NULL);
    if (rc == 0 && q->wake.head)
        tl__waitq_flush(&q->wake);
    return rc;
}

/* ---- put and get ------------------------------------------------------ */

/* Put into a queue that has room: to the oldest getter, else into the
 * items. 0, or TL_ENOMEM with nothing changed. */
static int deliver(tl_queue_t *q, void *item) {
    tl__waiter_t *g = q->getters.head;
    int rc = g ? tl__waitq_resolve(&q->getters, g, item, 0) : store_reserve(q);
    if (rc)
        return rc;
    if (g == NULL)
        store_push(q, item);
    q->unfinished++;
    return 0;
}

/* Take the next item (q->n > 0); the room goes to the oldest putter. Its
 * future is completed first, so a failure changes nothing, and its item
 * then takes the place just freed (no allocation). */
static int take(tl_queue_t *q, void **item) {
    tl__waiter_t *p = q->n <= q->maxsize ? q->putters.head : NULL;
    void *put = p ? p->value : NULL;
    if (p) {
        int rc = tl__waitq_resolve(&q->putters, p, NULL, 0);
        if (rc)
            return rc;
    }
    *item = store_pop(q);
    if (p) {
        store_push(q, put);
        q->unfinished++;
    }
    return 0;
}

int tl_queue_put_nowait(tl_queue_t *q, void *item) {
    int rc = enter(q);
    if (rc)
        return rc;
    if (q->shutdown)
        return TL_EQUEUESHUTDOWN;
    if (is_full(q))
        return TL_EQUEUEFULL;
    return deliver(q, item);
}

int tl_queue_put_future(tl_queue_t *q, void *item, tl_future_t **out) {
    int rc = enter(q);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (q->shutdown)
        return TL_EQUEUESHUTDOWN;
    if (is_full(q))
        return tl__waitq_add(&q->putters, q->loop, item, out);
    tl_future_t *f;
    if ((rc = tl_future_new(q->loop, &f)))
        return rc;
    if ((rc = deliver(q, item))) {
        tl_future_unref(f);
        return rc;
    }
    tl_future_set_result(f, NULL, NULL); /* no callbacks yet: cannot fail */
    *out = f;
    return 0;
}

int tl_queue_get_nowait(tl_queue_t *q, void **item) {
    int rc = enter(q);
    if (rc)
        return rc;
    if (item == NULL)
        return TL_EINVAL;
    if (q->n == 0)
        return q->shutdown ? TL_EQUEUESHUTDOWN : TL_EQUEUEEMPTY;
    return take(q, item);
}

int tl_queue_get_future(tl_queue_t *q, tl_future_t **out) {
    int rc = enter(q);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (q->n == 0) {
        if (q->shutdown)
            return TL_EQUEUESHUTDOWN;
        return tl__waitq_add(&q->getters, q->loop, NULL, out);
    }
    tl_future_t *f;
    void *item;
    if ((rc = tl_future_new(q->loop, &f)))
        return rc;
    if ((rc = take(q, &item))) {
        tl_future_unref(f);
        return rc;
    }
    tl_future_set_result(f, item, NULL);
    *out = f;
    return 0;
}

/* ---- join and shutdown ------------------------------------------------ */

int tl_queue_task_done(tl_queue_t *q) {
    int rc = enter(q);
    if (rc)
        return rc;
    if (q->unfinished == 0)
        return TL_ESTATE;
    if (--q->unfinished > 0)
        return 0;
    return tl__waitq_wake_all(&q->joiners, &q->wake, NULL, 0);
}

int tl_queue_join_future(tl_queue_t *q, tl_future_t **out) {
    int rc = enter(q);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (q->unfinished == 0)
        return tl__future_new_done(q->loop, NULL, out);
    return tl__waitq_add(&q->joiners, q->loop, NULL, out);
}

static void move_all(tl_queue_t *q, tl__waitq_t *from, int error) {
    tl__waiter_t *w;
    while ((w = from->head))
        tl__waitq_move(from, &q->wake, w, NULL, error);
}

int tl_queue_shutdown(tl_queue_t *q, int immediate) {
    int rc = enter(q);
    if (rc)
        return rc;
    q->shutdown = 1;
    if (immediate) {
        q->drained = 1;
        while (q->n) {
            drop_item(q, store_pop(q));
            if (q->unfinished)
                q->unfinished--;
        }
    }
    if (q->unfinished == 0)
        move_all(q, &q->joiners, 0);
    move_all(q, &q->getters, TL_EQUEUESHUTDOWN);
    move_all(q, &q->putters, TL_EQUEUESHUTDOWN);
    return tl__waitq_flush(&q->wake);
}

/* ---- giving back (for the sequential forms) --------------------------- */

int tl__queue_unget(tl_queue_t *q, void *item) {
    if (q->drained) {
        /* As the immediate shutdown would have dropped it. */
        drop_item(q, item);
        if (q->unfinished && --q->unfinished == 0)
            tl__waitq_wake_all(&q->joiners, &q->wake, NULL, 0);
        return 0;
    }
    tl__waiter_t *g = q->getters.head;
    int rc = g ? tl__waitq_resolve(&q->getters, g, item, 0) : store_reserve(q);
    if (rc == 0 && g == NULL)
        store_push_front(q, item);
    return rc;
}

int tl__queue_unput(tl_queue_t *q, void *item) {
    size_t i = store_find(q, item);
    if (i == SIZE_MAX)
        return TL_ESTATE;
    tl__waiter_t *p = q->n <= q->maxsize ? q->putters.head : NULL;
    void *put = p ? p->value : NULL;
    if (p) {
        int rc = tl__waitq_resolve(&q->putters, p, NULL, 0);
        if (rc)
            return rc;
    }
    store_remove_at(q, i);
    if (p)
        store_push(q, put); /* replaces the item taken back */
    else if (q->unfinished && --q->unfinished == 0)
        tl__waitq_wake_all(&q->joiners, &q->wake, NULL, 0);
    return 0;
}

/* ---- queries ---------------------------------------------------------- */

int tl_queue_qsize(const tl_queue_t *q) {
    int rc = tl__sync_check_thread(q, q ? q->loop : NULL);
    return rc ? rc : q->n > INT_MAX ? INT_MAX : (int)q->n;
}

int tl_queue_empty(const tl_queue_t *q) {
    int rc = tl__sync_check_thread(q, q ? q->loop : NULL);
    return rc ? rc : q->n == 0;
}

int tl_queue_full(const tl_queue_t *q) {
    int rc = tl__sync_check_thread(q, q ? q->loop : NULL);
    return rc ? rc : is_full(q);
}

int tl_queue_maxsize(const tl_queue_t *q, size_t *out) {
    int rc = tl__sync_check_thread(q, q ? q->loop : NULL);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    *out = q->maxsize;
    return 0;
}
