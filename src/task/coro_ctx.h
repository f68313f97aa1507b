/*
 * The seam between coro.c (portable: states, the pool, sanitizers) and one
 * context implementation: coro_asm.c with coro_switch_<arch>.S, or
 * coro_ucontext.c. A Windows Fibers one (win/) would provide the same five
 * functions, keeping its fiber handles in the two pointers.
 *
 * A coroutine's context pair holds the coroutine's own saved context and
 * that of whoever resumed it last; only one resume of a coroutine is ever in
 * progress, so one caller slot is enough.
 */
#ifndef TL_TASK_CORO_CTX_H
#define TL_TASK_CORO_CTX_H

#include "coro.h"

#if !defined(TL_CORO_ASM) && !defined(TL_CORO_UCONTEXT)
#  if (defined(__x86_64__) || defined(__aarch64__)) && !defined(_WIN32)
#    define TL_CORO_ASM 1
#  else
#    define TL_CORO_UCONTEXT 1
#  endif
#endif

typedef struct tl__ctx {
    void *self;   /* asm: the coroutine's saved stack pointer */
    void *caller; /* asm: its resumer's saved stack pointer */
} tl__ctx_t;

/* Set up what a context pair needs beyond its two words (ucontext
 * allocates its records). 0 or TL_ENOMEM. */
int tl__ctx_new(tl__ctx_t *x);
void tl__ctx_free(tl__ctx_t *x);

/* Prepare the first switch into the coroutine: it will call entry(arg) on
 * the stack [lo, hi) (hi 16-byte aligned), with the FP control state (and,
 * for ucontext, the signal mask) in force now. entry must never return. */
void tl__ctx_start(tl__ctx_t *x, char *lo, char *hi, void (*entry)(void *), void *arg);

#if defined(TL_CORO_ASM)
/* coro_switch_<arch>.S: save the callee-saved registers and FP control on
 * the current stack, store the stack pointer in *save_sp, load load_sp and
 * restore what it holds; the tl__ctx_swap call that saved load_sp then
 * returns `value`. */
int tl__ctx_swap(void **save_sp, void *load_sp, int value);

/* Switch from the resumer into the coroutine; returns the value the
 * coroutine passes to tl__ctx_leave or tl__ctx_exit. A tail call in
 * tl__coro_resume, so the switch back lands straight in resume's caller. */
static inline int tl__ctx_enter(tl__ctx_t *x) {
    return tl__ctx_swap(&x->caller, x->self, 0);
}
/* Switch from the coroutine back to its resumer, whose enter returns value. */
static inline void tl__ctx_leave(tl__ctx_t *x, int value) {
    tl__ctx_swap(&x->self, x->caller, value);
}
/* The last switch out of a finished coroutine. */
static inline void tl__ctx_exit(tl__ctx_t *x, int value) {
    tl__ctx_swap(&x->self, x->caller, value);
}
#else
int tl__ctx_enter(tl__ctx_t *x);
void tl__ctx_leave(tl__ctx_t *x, int value);
void tl__ctx_exit(tl__ctx_t *x, int value);
#endif

#endif
