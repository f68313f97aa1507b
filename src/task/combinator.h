/*
 * What the combinators (gather, wait, wait_for, shield, as_completed,
 * TaskGroup) share: watching futures through done callbacks, and the future
 * a combinator returns.
 *
 * Watching without owning. A combinator's state is the ctx of the done
 * callbacks it registers on its children, but those callbacks hold no
 * reference on it: a closing loop drops scheduled callbacks without running
 * them, so a reference held by a callback could leak. Instead, whoever owns
 * the state (the combinator's future, an iterator, a group) releases it when
 * it goes: callbacks still registered on pending children are withdrawn (a
 * pending future's callback can always be removed), and the state is freed
 * once no callback already scheduled can reach it: at once if there is none
 * or the loop is closed (which dropped them), otherwise by a "reaper"
 * scheduled behind them (the ready queue is FIFO; the reaper's drop frees the
 * state too if the loop closes first). Only if scheduling the reaper runs out
 * of memory is the state freed by the last of those callbacks instead (and
 * leaked if the loop closes before they run).
 *
 * A fixed set of children (tl__watch_init/start) is watched one callback per
 * child; children already done when watching starts are handed to on_done by
 * a single callback scheduled at start (as asyncio's add_done_callback on a
 * done future schedules the callback), so that starting is all or nothing:
 * it either succeeds or leaves nothing registered and nothing scheduled.
 */
#ifndef TL_TASK_COMBINATOR_H
#define TL_TASK_COMBINATOR_H

#include "../future/future_int.h"
#include "../loop/loop_int.h"

typedef struct tl__watch tl__watch_t;

enum { TL__KID_IDLE, TL__KID_WATCHING, TL__KID_KICK, TL__KID_SEEN, TL__KID_OFF };

typedef struct tl__kid {
    tl_future_t *f; /* referenced until the state is freed */
    tl__watch_t *w;
    uint8_t state;  /* TL__KID_* */
} tl__kid_t;

struct tl__watch {
    tl_loop_t *loop; /* referenced */
    /* kids[i] is done (called once per child, not after release). */
    void (*on_done)(tl__watch_t *w, size_t i);
    /* The timer of tl__watch_timer fired. */
    void (*on_timer)(tl__watch_t *w);
    /* Free the object embedding w; it calls tl__watch_fini. */
    void (*destroy)(tl__watch_t *w);
    tl__kid_t *kids;
    size_t n;
    size_t inflight; /* callbacks registered on futures and not yet run */
    unsigned queued; /* callbacks of ours scheduled (kick, reaper) */
    tl_handle_t timer;
    uint8_t released;
};

/* 0 if loop is usable here and futs[0..n) are non-NULL futures of loop. */
int tl__watch_check(tl_loop_t *loop, tl_future_t *const *futs, size_t n);
/* Set w up over futs[0..n) (referenced). On failure (TL_ENOMEM) w holds
 * nothing and tl__watch_fini is not needed. */
int tl__watch_init(tl__watch_t *w, tl_loop_t *loop, tl_future_t *const *futs,
                   size_t n, void (*on_done)(tl__watch_t *, size_t),
                   void (*destroy)(tl__watch_t *));
/* Register on every child (all or nothing). 0 or TL_ENOMEM. */
int tl__watch_start(tl__watch_t *w);
/* on_timer(w) after delay_ns (one timer per watch). */
int tl__watch_timer(tl__watch_t *w, int64_t delay_ns);
void tl__watch_cancel_timer(tl__watch_t *w);
/* No more interest: withdraw from the children still pending (handing each
 * to handoff(f, NULL) if given: that never allocates, since a slot was just
 * freed) and cancel the timer. A child that completed before this may still
 * reach on_done (its callback is already scheduled). */
void tl__watch_stop(tl__watch_t *w, tl_future_cb_t handoff);
/* The owner lets go: stop, then free as described above. */
void tl__watch_release(tl__watch_t *w);
/* Drop the children and the loop (for destroy). */
void tl__watch_fini(tl__watch_t *w);

/* Watching futures one by one (TaskGroup): cb(f, ctx) with ctx reaching w.
 * tl__watch_fired must open every such callback: it returns 1 when the
 * owner released w, and the callback must then return at once. */
int tl__watch_add(tl__watch_t *w, tl_future_t *f, tl_future_cb_t cb, void *ctx);
void tl__watch_remove(tl__watch_t *w, tl_future_t *f, tl_future_cb_t cb, void *ctx);
int tl__watch_fired(tl__watch_t *w);

/* ---- the future a combinator returns ------------------------------------ */

/* A future of a class of the combinator's, pointing at its state. */
typedef struct tl__combo {
    struct tl_future fut;
    void *state;
} tl__combo_t;

int tl__combo_new(tl_loop_t *loop, const tl__future_class_t *cls, void *state,
                  tl_future_t **out);
static inline void *tl__combo_state(tl_future_t *f) { return ((tl__combo_t *)f)->state; }
static inline int tl__combo_pending(const tl_future_t *f) {
    return f->state == TL__FUT_PENDING;
}
/* Complete f from a callback: out of memory, the message is dropped first;
 * if even that fails, the loop's exception handler is told (f stays
 * pending, as a future that cannot schedule its callbacks does). */
void tl__combo_complete(tl_future_t *f, int state, void *value, int error,
                        const char *message);
/* Complete f with src's outcome (src is done): the same result value
 * (borrowed: src keeps it and its destructor; keep src referenced while f
 * lives), error and message, or cancellation. Marks src's error retrieved.
 * lossy: as tl__combo_complete; otherwise TL_ENOMEM is returned. */
int tl__combo_mirror(tl_future_t *f, tl_future_t *src, int lossy);

#endif
