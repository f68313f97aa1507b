/*
 * The portable context implementation (coro_ctx.h) over POSIX ucontext:
 * getcontext + makecontext prepare a new coroutine at its first resume,
 * swapcontext switches, setcontext leaves a finished one. Each switch also
 * saves and restores the signal mask (a system call: this is why it is slow)
 * and the floating-point environment.
 *
 * A ucontext_t is large (about 1 KiB on x86-64, 4.5 KiB on aarch64), so the
 * pair lives in one allocation per coroutine rather than on its stack.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE 1
#include "coro_ctx.h"

#if defined(TL_CORO_UCONTEXT)

#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

#include "../core/alloc.h"
#include "tulip/core.h"

typedef struct uctx {
    ucontext_t self;
    ucontext_t caller;
    void (*entry)(void *);
    void *arg;
    int value; /* passed by leave/exit to enter */
} uctx_t;

int tl__ctx_new(tl__ctx_t *x) {
    /* Zeroed: AddressSanitizer's swapcontext reads uc_stack of the target,
     * and the caller's record never gets one. */
    uctx_t *u = tl__calloc(1, sizeof(*u));
    if (u == NULL)
        return TL_ENOMEM;
    x->self = u;
    x->caller = NULL;
    return 0;
}

void tl__ctx_free(tl__ctx_t *x) {
    tl__free(x->self);
    x->self = NULL;
}

/* makecontext passes int arguments only: the record's address comes in two
 * halves. */
static void boot(unsigned hi, unsigned lo) {
    uctx_t *u = (uctx_t *)(uintptr_t)(((uint64_t)hi << 32) | lo);
    u->entry(u->arg);
    abort(); /* entry never returns */
}

void tl__ctx_start(tl__ctx_t *x, char *lo, char *hi, void (*entry)(void *), void *arg) {
    uctx_t *u = x->self;
    u->entry = entry;
    u->arg = arg;
    if (getcontext(&u->self) != 0)
        abort(); /* cannot fail on a valid pointer */
    u->self.uc_stack.ss_sp = lo;
    u->self.uc_stack.ss_size = (size_t)(hi - lo);
    u->self.uc_stack.ss_flags = 0;
    u->self.uc_link = NULL;
    uint64_t p = (uint64_t)(uintptr_t)u;
    makecontext(&u->self, (void (*)(void))boot, 2, (unsigned)(p >> 32),
                (unsigned)(p & 0xffffffffu));
}

int tl__ctx_enter(tl__ctx_t *x) {
    uctx_t *u = x->self;
    swapcontext(&u->caller, &u->self);
    return u->value;
}

void tl__ctx_leave(tl__ctx_t *x, int value) {
    uctx_t *u = x->self;
    u->value = value;
    swapcontext(&u->self, &u->caller);
}

void tl__ctx_exit(tl__ctx_t *x, int value) {
    uctx_t *u = x->self;
    u->value = value;
    setcontext(&u->caller);
}

#else
typedef int tl__coro_ucontext_unused;
#endif
