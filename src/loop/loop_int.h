/*
 * The loop object, shared by the files of src/loop, and the internal entry
 * points that the modules above (future, later task) use.
 */
#ifndef TL_LOOP_INT_H
#define TL_LOOP_INT_H

#include <stdatomic.h>

#include "../core/heap.h"
#include "../core/platform.h"
#include "signal.h"
#include "tulip/loop.h"

/* An entry of the ready queue. `slot` is 0, or 1 + the index of the slot
 * that makes the entry cancellable or droppable. */
typedef struct tl__ready {
    tl_callback_t cb;
    void *ctx;
    uint32_t slot;
} tl__ready_t;

enum { SLOT_FREE, SLOT_READY, SLOT_TIMER, SLOT_CANCELLED };

/* A handle's bookkeeping; handles name a slot and its generation. */
typedef struct tl__slot {
    tl_callback_t cb;   /* for timers (ready entries carry their own) */
    void *ctx;
    tl_callback_t drop; /* called instead of cb if the entry is discarded */
    uint32_t gen;
    uint32_t next_free;
    uint8_t state;
} tl__slot_t;

typedef struct tl__fdwatch {
    tl_callback_t rcb, wcb;
    void *rctx, *wctx;
    unsigned mask;
} tl__fdwatch_t;

typedef struct tl__tsentry {
    tl_callback_t cb, drop;
    void *ctx;
} tl__tsentry_t;

/* A call handed to the loop's thread from any thread without allocating:
 * the node lives inside the object it is for (tl__loop_post_node). */
typedef struct tl__tsnode {
    struct tl__tsnode *next;
    tl_callback_t fn; /* called as fn(node) */
} tl__tsnode_t;

typedef struct tl__poller {
    tl_poller_t fn;
    void *ctx;
} tl__poller_t;

typedef struct tl__sighandler {
    tl_callback_t cb;
    void *ctx;
} tl__sighandler_t;

#define TL__EVENTS_PER_POLL 256

/* Per-loop state of the modules above the loop (tasks, later the executor),
 * without the loop knowing them: close(loop, data) runs when the loop
 * closes, after pending callbacks were dropped. */
/* PROCESS closes after TRANSPORT: pipes of children are gone by then.
 * FUTURE (the futures' memory cache) closes last: the others free futures. */
enum {
    TL__EXT_TASK,
    TL__EXT_EXECUTOR,
    TL__EXT_TRANSPORT,
    TL__EXT_PROCESS,
    TL__EXT_FUTURE,
    TL__EXT_MAX
};
typedef struct tl__loop_ext {
    void *data;
    void (*close)(tl_loop_t *loop, void *data);
} tl__loop_ext_t;

/* The futures' memory cache (src/future/fcache.c): per size class of 16
 * bytes, the chunks futures are carved from. In the loop, so that a loop
 * with no future out holds no allocation for it. */
#define TL__FCLASSES 32
typedef struct tl__fclass {
    struct tl__fchunk *all, *avail;
    size_t out, cap; /* slots out, slots in the chunks held */
} tl__fclass_t;

struct tl_loop {
    atomic_int refs;
    uintptr_t owner;
    int closed, running, stopping, debug;
    int64_t slow_ns;
    const tl_backend_ops_t *be;
    void *be_state;

    /* ready queue: a ring of cap (a power of two) entries */
    tl__ready_t *ring;
    size_t head, count, cap;

    /* handles and timers */
    tl__slot_t *slots;
    uint32_t *heap_pos;
    size_t nslots, slots_cap;
    uint32_t free_slot; /* 1 + index, 0 when none */
    tl__heap_t timers;
    uint32_t timer_seq;

    /* descriptors */
    tl__fdwatch_t *fds;
    size_t fds_cap, nwatched;
    tl_backend_event_t events[TL__EVENTS_PER_POLL];

    /* calls from other threads */
    tl__mutex_t ts_lock;
    tl__tsentry_t *ts_q, *ts_spare;
    size_t ts_n, ts_cap, ts_spare_cap;
    size_t ts_carry;       /* calls carried in ts_spare after an OOM */
    int ts_signalled;      /* guarded by ts_lock: a wakeup is on its way */
    atomic_int ts_pending; /* ts_q is not empty */
    atomic_int ts_waking;  /* senders between their unlock and their wakeup */
    _Atomic(tl__tsnode_t *) ts_nodes; /* posted nodes, newest first */

    /* signals */
    tl__sigslot_t *sig;
    tl__sighandler_t *sigh; /* TL__SIG_MAX + 1 entries, made on first use */

    /* pollers (tl_loop_add_poller), called once per iteration */
    tl__poller_t *pollers;
    size_t npollers, pollers_cap;

    tl_exception_handler_t eh;
    void *eh_ctx;

    tl__loop_ext_t ext[TL__EXT_MAX];
    tl__fclass_t fclass[TL__FCLASSES];
};

/* 0, or TL_EINVAL / TL_EWRONGTHREAD / TL_ECLOSED. */
static inline int tl__loop_check(const tl_loop_t *loop) {
    if (loop == NULL)
        return TL_EINVAL;
    if (TL__UNLIKELY(loop->owner != tl__thread_self()))
        return TL_EWRONGTHREAD;
    if (TL__UNLIKELY(loop->closed))
        return TL_ECLOSED;
    return 0;
}

/* call_soon whose ctx owns a resource: if the loop closes before cb runs,
 * drop(ctx) is called instead, so nothing leaks. */
int tl__loop_call_soon_drop(tl_loop_t *loop, tl_callback_t cb,
                            tl_callback_t drop, void *ctx);
/* The same from any thread. */
int tl__loop_call_soon_threadsafe_drop(tl_loop_t *loop, tl_callback_t cb,
                                       tl_callback_t drop, void *ctx);
/* Any thread, cannot fail for lack of memory: node->fn(node) runs on the
 * loop's thread in a later iteration (waking the loop), or inside
 * tl_loop_close if the loop closes first. TL_ECLOSED if the loop is
 * already closed: then the node was not taken. The caller must keep the
 * loop alive for the call (e.g. through a reference the node's owner
 * holds and releases in fn). */
int tl__loop_post_node(tl_loop_t *loop, tl__tsnode_t *node);
/* Run one callback, timing it in debug mode. */
void tl__loop_run_callback(tl_loop_t *loop, tl_callback_t cb, void *ctx);
/* Report a problem with just a message and an error code. */
void tl__loop_report(tl_loop_t *loop, const char *message, int error);

/* loop_io.c: descriptor and signal plumbing used by loop.c. */
void tl__loop_dispatch_io(tl_loop_t *loop, int n);
void tl__loop_take_signals(tl_loop_t *loop);
void tl__loop_close_io(tl_loop_t *loop);
int tl__ready_push(tl_loop_t *loop, tl_callback_t cb, void *ctx, uint32_t slot);

#endif
