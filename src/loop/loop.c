/*
 * The event loop's life cycle and iteration (asyncio's base_events): the
 * ready queue, handles, timers, calls from other threads, run/stop/close.
 * Descriptors, signals and the exception handler are in loop_io.c.
 */
#include <string.h>

#include "../core/alloc.h"
#include "../core/options.h"
#include "loop_int.h"
#include "tulip/loop.h"

#define DEFAULT_SLOW_NS (100 * 1000000LL)

static TL__THREAD_LOCAL tl_loop_t *running_loop;

/* ---- ready queue ------------------------------------------------------ */

/* Out of line, so the push it guards inlines without saving registers. */
TL__COLD static int ring_grow(tl_loop_t *loop) {
    size_t ncap = loop->cap ? loop->cap * 2 : 1024;
    tl__ready_t *r = tl__malloc(ncap * sizeof(*r));
    if (r == NULL)
        return TL_ENOMEM;
    for (size_t i = 0; i < loop->count; i++)
        r[i] = loop->ring[(loop->head + i) & (loop->cap - 1)];
    tl__free(loop->ring);
    loop->ring = r;
    loop->head = 0;
    loop->cap = ncap;
    return 0;
}

int tl__ready_push(tl_loop_t *loop, tl_callback_t cb, void *ctx, uint32_t slot) {
    if (TL__UNLIKELY(loop->count == loop->cap) && ring_grow(loop))
        return TL_ENOMEM;
    tl__ready_t *e = &loop->ring[(loop->head + loop->count) & (loop->cap - 1)];
    e->cb = cb;
    e->ctx = ctx;
    e->slot = slot;
    loop->count++;
    return 0;
}

/* ---- handles ---------------------------------------------------------- */

static tl_handle_t handle_of(tl_loop_t *loop, uint32_t id) {
    return ((uint64_t)loop->slots[id].gen << 32) | (uint64_t)(id + 1);
}

/* A slot for a new handle, or (uint32_t)-1 when out of memory. */
static uint32_t slot_alloc(tl_loop_t *loop) {
    uint32_t id;
    if (loop->free_slot) {
        id = loop->free_slot - 1;
        loop->free_slot = loop->slots[id].next_free;
    } else {
        if (loop->nslots >= UINT32_MAX - 1)
            return (uint32_t)-1;
        size_t cap = loop->slots_cap;
        if (tl__grow((void **)&loop->slots, &cap, loop->nslots + 1,
                     sizeof(*loop->slots)))
            return (uint32_t)-1;
        size_t pcap = loop->slots_cap;
        if (tl__grow((void **)&loop->heap_pos, &pcap, cap, sizeof(uint32_t))) {
            /* keep slots_cap as the capacity both arrays have */
            return (uint32_t)-1;
        }
        loop->slots_cap = cap;
        id = (uint32_t)loop->nslots++;
        loop->slots[id].gen = 1;
    }
    tl__slot_t *s = &loop->slots[id];
    s->drop = NULL;
    s->next_free = 0;
    return id;
}

static void slot_free(tl_loop_t *loop, uint32_t id) {
    tl__slot_t *s = &loop->slots[id];
    s->state = SLOT_FREE;
    s->gen = s->gen + 1 ? s->gen + 1 : 1;
    s->next_free = loop->free_slot;
    loop->free_slot = id + 1;
}

/* The slot a live handle names, or NULL. */
static tl__slot_t *slot_of(tl_loop_t *loop, tl_handle_t h, uint32_t *id) {
    uint32_t idx = (uint32_t)h;
    if (idx == 0 || idx > loop->nslots)
        return NULL;
    tl__slot_t *s = &loop->slots[idx - 1];
    if (s->gen != (uint32_t)(h >> 32) || s->state == SLOT_FREE)
        return NULL;
    *id = idx - 1;
    return s;
}

int tl_handle_cancel(tl_loop_t *loop, tl_handle_t h) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    uint32_t id;
    tl__slot_t *s = slot_of(loop, h, &id);
    if (s == NULL || s->state == SLOT_CANCELLED)
        return 0;
    if (s->state == SLOT_TIMER) {
        tl__heap_remove(&loop->timers, loop->heap_pos[id], loop->heap_pos);
        if (s->drop)
            s->drop(s->ctx);
        slot_free(loop, id);
    } else {
        s->state = SLOT_CANCELLED; /* its ready entry skips it */
    }
    return 1;
}

int tl_handle_pending(tl_loop_t *loop, tl_handle_t h) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    uint32_t id;
    tl__slot_t *s = slot_of(loop, h, &id);
    return s != NULL && s->state != SLOT_CANCELLED;
}

/* ---- scheduling ------------------------------------------------------- */

static int push_slotted(tl_loop_t *loop, tl_callback_t cb, tl_callback_t drop,
                        void *ctx, tl_handle_t *handle) {
    uint32_t id = slot_alloc(loop);
    if (id == (uint32_t)-1)
        return TL_ENOMEM;
    if (tl__ready_push(loop, cb, ctx, id + 1)) {
        slot_free(loop, id);
        return TL_ENOMEM;
    }
    loop->slots[id].state = SLOT_READY;
    loop->slots[id].drop = drop;
    loop->slots[id].ctx = ctx;
    if (handle)
        *handle = handle_of(loop, id);
    return 0;
}

int tl_loop_call_soon(tl_loop_t *loop, tl_callback_t cb, void *ctx,
                      tl_handle_t *handle) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (cb == NULL)
        return TL_EINVAL;
    if (handle == NULL)
        return tl__ready_push(loop, cb, ctx, 0);
    return push_slotted(loop, cb, NULL, ctx, handle);
}

int tl__loop_call_soon_drop(tl_loop_t *loop, tl_callback_t cb,
                            tl_callback_t drop, void *ctx) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    return push_slotted(loop, cb, drop, ctx, NULL);
}

int tl_loop_call_at(tl_loop_t *loop, int64_t when_ns, tl_callback_t cb,
                    void *ctx, tl_handle_t *handle) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (cb == NULL)
        return TL_EINVAL;
    uint32_t id = slot_alloc(loop);
    if (id == (uint32_t)-1)
        return TL_ENOMEM;
    tl__heap_entry_t e = {when_ns < 0 ? 0 : (uint64_t)when_ns,
                          loop->timer_seq++, id};
    if (tl__heap_push(&loop->timers, e, loop->heap_pos)) {
        slot_free(loop, id);
        return TL_ENOMEM;
    }
    tl__slot_t *s = &loop->slots[id];
    s->state = SLOT_TIMER;
    s->cb = cb;
    s->ctx = ctx;
    if (handle)
        *handle = handle_of(loop, id);
    return 0;
}

int tl_loop_call_later(tl_loop_t *loop, int64_t delay_ns, tl_callback_t cb,
                       void *ctx, tl_handle_t *handle) {
    if (delay_ns < 0)
        delay_ns = 0;
    uint64_t now = tl__time_ns();
    int64_t when = (uint64_t)delay_ns > (uint64_t)INT64_MAX - now
                       ? INT64_MAX
                       : (int64_t)(now + (uint64_t)delay_ns);
    return tl_loop_call_at(loop, when, cb, ctx, handle);
}

/* ---- calls from other threads ----------------------------------------- */

int tl__loop_call_soon_threadsafe_drop(tl_loop_t *loop, tl_callback_t cb,
                                       tl_callback_t drop, void *ctx) {
    if (loop == NULL || cb == NULL)
        return TL_EINVAL;
    int rc = 0, wake = 0;
    tl__mutex_lock(&loop->ts_lock);
    if (loop->closed) {
        rc = TL_ECLOSED;
    } else if (tl__grow((void **)&loop->ts_q, &loop->ts_cap, loop->ts_n + 1,
                        sizeof(*loop->ts_q))) {
        rc = TL_ENOMEM;
    } else {
        loop->ts_q[loop->ts_n++] = (tl__tsentry_t){cb, drop, ctx};
        atomic_store(&loop->ts_pending, 1);
        /* One wakeup per batch, written after unlocking so the
         * woken loop does not find the lock still held; ts_waking keeps
         * close() from releasing the backend in between. */
        if (!loop->ts_signalled) {
            loop->ts_signalled = 1;
            wake = 1;
            atomic_fetch_add(&loop->ts_waking, 1);
        }
    }
    tl__mutex_unlock(&loop->ts_lock);
    if (wake) {
        loop->be->wakeup(loop->be_state);
        atomic_fetch_sub_explicit(&loop->ts_waking, 1, memory_order_release);
    }
    return rc;
}

int tl_loop_call_soon_threadsafe(tl_loop_t *loop, tl_callback_t cb, void *ctx) {
    return tl__loop_call_soon_threadsafe_drop(loop, cb, NULL, ctx);
}

/* ts_nodes once the loop is closed. */
static char nodes_closed_mark;
#define NODES_CLOSED ((tl__tsnode_t *)(void *)&nodes_closed_mark)

int tl__loop_post_node(tl_loop_t *loop, tl__tsnode_t *node) {
    /* Once the node is pushed, the loop may run it and drop the last
     * reference its owner held on the loop: hold one for the wakeup.
     * ts_waking is raised before the push, so a close that takes the
     * list after it waits for the wakeup to be written. */
    tl_loop_ref(loop);
    atomic_fetch_add(&loop->ts_waking, 1);
    int rc = 0;
    tl__tsnode_t *old = atomic_load(&loop->ts_nodes);
    do {
        if (old == NODES_CLOSED) {
            rc = TL_ECLOSED;
            break;
        }
        node->next = old;
    } while (!atomic_compare_exchange_weak(&loop->ts_nodes, &old, node));
    if (rc == 0 && old == NULL) /* the first since the loop took the list */
        loop->be->wakeup(loop->be_state);
    atomic_fetch_sub_explicit(&loop->ts_waking, 1, memory_order_release);
    tl_loop_unref(loop);
    return rc;
}

/* Run a list of posted nodes (newest first), oldest first. */
static void run_nodes(tl_loop_t *loop, tl__tsnode_t *n) {
    tl__tsnode_t *fifo = NULL;
    while (n) {
        tl__tsnode_t *next = n->next;
        n->next = fifo;
        fifo = n;
        n = next;
    }
    while (fifo) {
        n = fifo;
        fifo = n->next; /* fn may free the node */
        tl__loop_run_callback(loop, n->fn, n);
    }
}

static int push_threadsafe(tl_loop_t *loop, const tl__tsentry_t *e) {
    return e->drop ? push_slotted(loop, e->cb, e->drop, e->ctx, NULL)
                   : tl__ready_push(loop, e->cb, e->ctx, 0);
}

/* Move the calls other threads queued onto the ready queue. If that runs
 * out of memory, the calls not yet moved are carried (at the front of the
 * spare array) and tried first on the next iteration, which does not
 * sleep meanwhile: a call from another thread is never lost. */
static void take_threadsafe(tl_loop_t *loop) {
    if (loop->ts_carry) {
        size_t k = 0;
        while (k < loop->ts_carry && push_threadsafe(loop, &loop->ts_spare[k]) == 0)
            k++;
        loop->ts_carry -= k;
        memmove(loop->ts_spare, loop->ts_spare + k, loop->ts_carry * sizeof(*loop->ts_spare));
        if (loop->ts_carry)
            return; /* still short of memory; the queue keeps filling */
    }
    tl__mutex_lock(&loop->ts_lock);
    tl__tsentry_t *q = loop->ts_q;
    size_t n = loop->ts_n, cap = loop->ts_cap;
    loop->ts_q = loop->ts_spare;
    loop->ts_cap = loop->ts_spare_cap;
    loop->ts_n = 0;
    loop->ts_signalled = 0;
    atomic_store(&loop->ts_pending, 0);
    tl__mutex_unlock(&loop->ts_lock);
    size_t i = 0;
    while (i < n && push_threadsafe(loop, &q[i]) == 0)
        i++;
    if (i < n) {
        memmove(q, q + i, (n - i) * sizeof(*q));
        loop->ts_carry = n - i;
    }
    loop->ts_spare = q;
    loop->ts_spare_cap = cap;
}

/* ---- life cycle ------------------------------------------------------- */

int tl_loop_new(const tl_loop_options_t *opts, tl_loop_t **out) {
    if (out == NULL)
        return TL_EINVAL;
    tl_loop_options_t o;
    if (tl__copy_options(&o, sizeof o, opts) || o.slow_callback_ns < 0)
        return TL_EINVAL;
    const tl_backend_ops_t *be = o.backend ? o.backend : tl_backend_default();
    if (be == NULL || be->size < sizeof(tl_backend_ops_t) || !be->create ||
        !be->close || !be->watch || !be->unwatch || !be->poll || !be->wakeup)
        return TL_EINVAL;

    tl_loop_t *loop = tl__calloc(1, sizeof(*loop));
    if (loop == NULL)
        return TL_ENOMEM;
    int rc = tl__mutex_init(&loop->ts_lock);
    if (rc) {
        tl__free(loop);
        return rc;
    }
    rc = be->create(&loop->be_state);
    if (rc) {
        tl__mutex_destroy(&loop->ts_lock);
        tl__free(loop);
        return rc;
    }
    atomic_init(&loop->refs, 1);
    atomic_init(&loop->ts_pending, 0);
    atomic_init(&loop->ts_nodes, NULL);
    loop->owner = tl__thread_self();
    loop->be = be;
    if (o.debug == 0) {
        const char *env = tl__getenv("TL_DEBUG");
        loop->debug = env != NULL && strcmp(env, "1") == 0;
    } else {
        loop->debug = o.debug > 0;
    }
    loop->slow_ns = o.slow_callback_ns ? o.slow_callback_ns : DEFAULT_SLOW_NS;
    *out = loop;
    return 0;
}

/* Discard a ready entry without running it. */
static void discard(tl_loop_t *loop, const tl__ready_t *e) {
    if (e->slot) {
        tl__slot_t *s = &loop->slots[e->slot - 1];
        if (s->drop)
            s->drop(e->ctx);
        slot_free(loop, e->slot - 1);
    }
}

int tl_loop_close(tl_loop_t *loop) {
    if (loop == NULL)
        return TL_EINVAL;
    if (loop->owner != tl__thread_self())
        return TL_EWRONGTHREAD;
    if (loop->closed)
        return 0;
    if (loop->running)
        return TL_ERUNNING;
    tl__mutex_lock(&loop->ts_lock);
    loop->closed = 1; /* from here on no thread adds work */
    tl__mutex_unlock(&loop->ts_lock);
    tl__tsnode_t *nodes = atomic_exchange(&loop->ts_nodes, NODES_CLOSED);
    while (atomic_load_explicit(&loop->ts_waking, memory_order_acquire))
        ; /* a sender is still writing its wakeup: a few instructions */

    /* Release what pending work owns. Drops may call back into the loop;
     * they get TL_ECLOSED. */
    while (loop->count) {
        tl__ready_t e = loop->ring[loop->head];
        loop->head = (loop->head + 1) & (loop->cap - 1);
        loop->count--;
        discard(loop, &e);
    }
    while (loop->timers.n) {
        uint32_t id = loop->timers.v[0].id;
        tl__heap_remove(&loop->timers, 0, loop->heap_pos);
        if (loop->slots[id].drop)
            loop->slots[id].drop(loop->slots[id].ctx);
        slot_free(loop, id);
    }
    for (size_t i = 0; i < loop->ts_n; i++)
        if (loop->ts_q[i].drop)
            loop->ts_q[i].drop(loop->ts_q[i].ctx);
    loop->ts_n = 0;
    for (size_t i = 0; i < loop->ts_carry; i++)
        if (loop->ts_spare[i].drop)
            loop->ts_spare[i].drop(loop->ts_spare[i].ctx);
    loop->ts_carry = 0;
    run_nodes(loop, nodes);
    for (int i = 0; i < TL__EXT_MAX; i++) {
        tl__loop_ext_t ext = loop->ext[i];
        loop->ext[i] = (tl__loop_ext_t){0};
        if (ext.close)
            ext.close(loop, ext.data);
    }
    tl__loop_close_io(loop);
    loop->be->close(loop->be_state);
    loop->be_state = NULL;

    tl__free(loop->ring);
    tl__free(loop->slots);
    tl__free(loop->heap_pos);
    tl__heap_free(&loop->timers);
    tl__free(loop->ts_q);
    tl__free(loop->ts_spare);
    tl__free(loop->pollers);
    loop->pollers = NULL;
    loop->npollers = loop->pollers_cap = 0;
    loop->ring = NULL;
    loop->slots = NULL;
    loop->heap_pos = NULL;
    loop->ts_q = loop->ts_spare = NULL;
    loop->cap = loop->count = loop->nslots = loop->slots_cap = 0;
    loop->ts_cap = loop->ts_spare_cap = 0;
    loop->free_slot = 0;
    return 0;
}

int tl_loop_ref(tl_loop_t *loop) {
    if (loop == NULL)
        return TL_EINVAL;
    atomic_fetch_add(&loop->refs, 1);
    return 0;
}

int tl_loop_unref(tl_loop_t *loop) {
    if (loop == NULL)
        return TL_EINVAL;
    if (atomic_fetch_sub(&loop->refs, 1) != 1)
        return 0;
    if (!loop->closed && loop->owner == tl__thread_self() && !loop->running)
        tl_loop_close(loop);
    tl__mutex_destroy(&loop->ts_lock);
    tl__free(loop);
    return 0;
}

/* ---- running ---------------------------------------------------------- */

static int64_t poll_timeout(tl_loop_t *loop, int64_t max_wait) {
    if (loop->count || loop->stopping || atomic_load(&loop->ts_pending) || loop->ts_carry ||
        atomic_load_explicit(&loop->ts_nodes, memory_order_relaxed) ||
        (loop->sig && tl__sig_any(loop->sig)))
        return 0;
    const tl__heap_entry_t *top = tl__heap_top(&loop->timers);
    if (top == NULL)
        return max_wait;
    uint64_t now = tl__time_ns();
    int64_t wait = top->key > now ? (int64_t)(top->key - now) : 0;
    return (max_wait >= 0 && max_wait < wait) ? max_wait : wait;
}

static void expire_timers(tl_loop_t *loop) {
    if (loop->timers.n == 0)
        return;
    uint64_t now = tl__time_ns();
    const tl__heap_entry_t *top;
    while ((top = tl__heap_top(&loop->timers)) && top->key <= now) {
        uint32_t id = top->id;
        tl__slot_t *s = &loop->slots[id];
        if (tl__ready_push(loop, s->cb, s->ctx, id + 1)) {
            tl__loop_report(loop, "could not queue an expired timer", TL_ENOMEM);
            return; /* it stays in the heap and is tried again */
        }
        tl__heap_remove(&loop->timers, 0, loop->heap_pos);
        loop->slots[id].state = SLOT_READY;
    }
}

/* Run the pollers; nonzero when one of them says the loop must not sleep.
 * A poller may remove pollers (itself included), so the array is walked by
 * index and re-read each step. */
static int run_pollers(tl_loop_t *loop) {
    int busy = 0;
    for (size_t i = 0; i < loop->npollers && !loop->closed; i++) {
        tl__poller_t p = loop->pollers[i];
        if (p.fn(loop, p.ctx))
            busy = 1;
        if (i < loop->npollers && (loop->pollers[i].fn != p.fn || loop->pollers[i].ctx != p.ctx))
            i--; /* removed: the next one moved into its place */
    }
    return busy;
}

int tl_loop_add_poller(tl_loop_t *loop, tl_poller_t fn, void *ctx) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (fn == NULL)
        return TL_EINVAL;
    for (size_t i = 0; i < loop->npollers; i++)
        if (loop->pollers[i].fn == fn && loop->pollers[i].ctx == ctx)
            return TL_EEXIST;
    if (tl__grow((void **)&loop->pollers, &loop->pollers_cap, loop->npollers + 1,
                 sizeof(*loop->pollers)))
        return TL_ENOMEM;
    loop->pollers[loop->npollers++] = (tl__poller_t){fn, ctx};
    return 0;
}

int tl_loop_remove_poller(tl_loop_t *loop, tl_poller_t fn, void *ctx) {
    if (loop == NULL || fn == NULL)
        return TL_EINVAL;
    if (loop->owner != tl__thread_self())
        return TL_EWRONGTHREAD;
    for (size_t i = 0; i < loop->npollers; i++)
        if (loop->pollers[i].fn == fn && loop->pollers[i].ctx == ctx) {
            memmove(&loop->pollers[i], &loop->pollers[i + 1],
                    (loop->npollers - i - 1) * sizeof(*loop->pollers));
            loop->npollers--;
            return 1;
        }
    return 0;
}

/* One iteration, as the header describes. */
static int iterate(tl_loop_t *loop, int64_t max_wait) {
    if (loop->npollers && run_pollers(loop))
        max_wait = 0;
    int64_t timeout = poll_timeout(loop, max_wait);
    if (timeout != 0 || loop->nwatched) {
        int n = loop->be->poll(loop->be_state, timeout, loop->events,
                               TL__EVENTS_PER_POLL);
        if (n < 0)
            return n;
        tl__loop_dispatch_io(loop, n);
    }
    if (atomic_load_explicit(&loop->ts_pending, memory_order_acquire) || loop->ts_carry)
        take_threadsafe(loop);
    if (atomic_load_explicit(&loop->ts_nodes, memory_order_relaxed))
        run_nodes(loop, atomic_exchange_explicit(&loop->ts_nodes, NULL, memory_order_acquire));
    if (loop->sig && tl__sig_any(loop->sig))
        tl__loop_take_signals(loop);
    expire_timers(loop);

    /* Only what is ready now runs; later additions wait a turn. */
    for (size_t todo = loop->count; todo > 0 && !loop->closed; todo--) {
        tl__ready_t e = loop->ring[loop->head];
        loop->head = (loop->head + 1) & (loop->cap - 1);
        loop->count--;
        if (e.slot) {
            uint32_t id = e.slot - 1;
            int cancelled = loop->slots[id].state == SLOT_CANCELLED;
            if (cancelled) {
                discard(loop, &e);
                continue;
            }
            slot_free(loop, id);
        }
        tl__loop_run_callback(loop, e.cb, e.ctx);
    }
    return 0;
}

static int run_begin(tl_loop_t *loop) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (running_loop != NULL)
        return TL_ERUNNING;
    running_loop = loop;
    loop->running = 1;
    atomic_fetch_add(&loop->refs, 1); /* callbacks may drop the last ref */
    return 0;
}

static void run_end(tl_loop_t *loop) {
    loop->running = 0;
    running_loop = NULL;
    tl_loop_unref(loop);
}

int tl_loop_run_forever(tl_loop_t *loop) {
    int rc = run_begin(loop);
    if (rc)
        return rc;
    for (;;) {
        rc = iterate(loop, -1);
        if (rc || loop->stopping)
            break;
    }
    loop->stopping = 0;
    run_end(loop);
    return rc;
}

int tl_loop_run_once(tl_loop_t *loop, int64_t timeout_ns) {
    int rc = run_begin(loop);
    if (rc)
        return rc;
    rc = iterate(loop, timeout_ns < 0 ? -1 : timeout_ns);
    /* A stop asked for before or during this iteration is satisfied by
     * returning; left set, it would cut the next run_forever short. */
    loop->stopping = 0;
    run_end(loop);
    return rc;
}

int tl_loop_stop(tl_loop_t *loop) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    loop->stopping = 1;
    return 0;
}

void tl_loop_stop_cb(void *loop) { tl_loop_stop(loop); }

int tl_loop_is_running(const tl_loop_t *loop) {
    if (loop == NULL)
        return TL_EINVAL;
    if (loop->owner != tl__thread_self())
        return TL_EWRONGTHREAD;
    return loop->running;
}

int tl_loop_is_closed(const tl_loop_t *loop) {
    if (loop == NULL)
        return TL_EINVAL;
    if (loop->owner != tl__thread_self())
        return TL_EWRONGTHREAD;
    return loop->closed;
}

int64_t tl_loop_time(const tl_loop_t *loop) {
    int rc = tl__loop_check(loop);
    return rc ? rc : (int64_t)tl__time_ns();
}

tl_loop_t *tl_loop_get_running(void) { return running_loop; }

const char *tl_loop_backend_name(const tl_loop_t *loop) {
    return loop ? loop->be->name : NULL;
}
