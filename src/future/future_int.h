/*
 * The future object, for the modules that extend it (a task is a future
 * whose cancel differs, as asyncio's Task subclasses Future).
 */
#ifndef TL_FUTURE_INT_H
#define TL_FUTURE_INT_H

#include <stdatomic.h>

#include "../loop/loop_int.h"
#include "tulip/future.h"

enum { TL__FUT_PENDING, TL__FUT_RESULT, TL__FUT_ERROR, TL__FUT_CANCELLED };

/* What a kind of future does differently. */
typedef struct tl__future_class {
    /* tl_future_cancel on such a future calls this instead. */
    int (*cancel)(tl_future_t *f, const char *message);
    /* Release the extension's fields just before the memory goes. */
    void (*finalize)(tl_future_t *f);
} tl__future_class_t;

typedef struct tl__done_cb {
    tl_future_cb_t cb;
    void *ctx;
} tl__done_cb_t;

struct tl__fchunk;

struct tl_future {
    atomic_int refs;
    uint8_t state;
    uint8_t retrieved;
    int error;
    uint32_t ncbs, cbs_cap;
    tl_loop_t *loop;
    const tl__future_class_t *cls; /* NULL for a plain future */
    void *value;
    tl_destructor_t destructor;
    char *message;
    tl__done_cb_t *cbs; /* points at inline_cbs until more are needed */
    struct tl__fchunk *chunk; /* where the memory came from (fcache.h) */
    union {
        tl__done_cb_t inline_cbs[2];
        /* Once the last reference went on another thread: the hand-over
         * of the free to the loop's thread (it needs no memory, so it
         * cannot fail; callbacks never run then, so the space is free). */
        tl__tsnode_t reap;
    };
};

/* A pending future of `size` bytes (at least sizeof(struct tl_future)),
 * zeroed past the base. A future with a class refuses the public
 * set_result/set_error (only its owner completes it, through
 * tl__future_complete). */
int tl__future_create(tl_loop_t *loop, size_t size, const tl__future_class_t *cls,
                      tl_future_t **out);
/* Complete f (state TL__FUT_*), bypassing the class. `message` is copied
 * (for a cancellation a failed copy only loses the message). 0, TL_ESTATE,
 * TL_ENOMEM (f stays pending). */
int tl__future_complete(tl_future_t *f, int state, void *value,
                        tl_destructor_t destructor, int error, const char *message);
/* The base class's cancel (asyncio's Future.cancel). */
int tl__future_cancel_base(tl_future_t *f, const char *message);
/* Take the result value out: the destructor will not run on it. */
void tl__future_steal_result(tl_future_t *f);

#endif
