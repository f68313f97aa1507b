/*
 * Coroutines (coro.h): states, nesting, the stack each one takes from its
 * pool, and the announcements sanitizers and valgrind need. The switch itself
 * is the context implementation's (coro_ctx.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include "../core/platform.h"
#include "coro_ctx.h"
#include "stack.h"
#include "tulip/core.h"

#if defined(__SANITIZE_ADDRESS__)
#  define TL__ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define TL__ASAN 1
#  endif
#endif
#ifdef TL__ASAN
#  include <sanitizer/asan_interface.h>
#  include <sanitizer/common_interface_defs.h>
#endif

#if !defined(TL_NO_VALGRIND) && defined(__has_include)
#  if __has_include(<valgrind/valgrind.h>)
#    include <valgrind/valgrind.h>
#    define TL__VALGRIND 1
#  endif
#endif

enum { CORO_NEW, CORO_SUSPENDED, CORO_RUNNING, CORO_FINISHED };

/* Stack a coroutine must still have when it suspends on an unguarded stack
 * (the switch, and under sanitizers its announcements, go deeper). */
#define UNGUARDED_MARGIN 512

/* Lives at the top of the coroutine's own stack. */
struct tl__coro {
    tl__ctx_t ctx;
    tl__coro_t *parent; /* who resumed it: NULL for the thread's stack */
    int state;
    tl__coro_fn fn;
    void *arg;
    tl__stack_pool_t *pool;
    tl__stack_t stack;
#ifdef TL__ASAN
    void *asan_fake_caller;    /* the resumer's fake stack, while it runs */
    const void *caller_bottom; /* the resumer's stack, to switch back to */
    size_t caller_size;
#endif
#ifdef TL__VALGRIND
    unsigned vg_stack;
#endif
};

/* The record takes whole cache lines at the top; frames start below it. */
#define RECORD_SIZE ((sizeof(tl__coro_t) + 63) & ~(size_t)63)

/* Initial-exec: one thread-pointer-relative access instead of a call to
 * __tls_get_addr when tulip is a shared library (a few bytes of the static
 * TLS surplus glibc keeps for libraries loaded later). */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__ELF__)
#  define TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#  define TLS_MODEL
#endif
static TL__THREAD_LOCAL tl__coro_t *current TLS_MODEL;

#ifdef TL__ASAN
static void asan_enter(tl__coro_t *c) {
    __sanitizer_start_switch_fiber(&c->asan_fake_caller, c->stack.lo, c->stack.size);
}
static void asan_entered(tl__coro_t *c, void *fake) {
    __sanitizer_finish_switch_fiber(fake, &c->caller_bottom, &c->caller_size);
}
static void asan_leave(tl__coro_t *c, void **fake) {
    __sanitizer_start_switch_fiber(fake, c->caller_bottom, c->caller_size);
}
static void asan_left(tl__coro_t *c) {
    __sanitizer_finish_switch_fiber(c->asan_fake_caller, NULL, NULL);
}
#else
#  define asan_enter(c) ((void)0)
#  define asan_entered(c, fake) ((void)0)
#  define asan_leave(c, fake) ((void)0)
#  define asan_left(c) ((void)0)
#endif

tl__coro_t *tl__coro_current(void) { return current; }

static void coro_main(void *p) {
    tl__coro_t *c = p;
    asan_entered(c, NULL);
    c->fn(c->arg);
    c->state = CORO_FINISHED;
    current = c->parent;
    asan_leave(c, NULL); /* NULL: this fiber is gone for good */
    tl__ctx_exit(&c->ctx, 1);
    abort(); /* unreachable: a finished coroutine is never resumed */
}

int tl__coro_new(tl__stack_pool_t *pool, size_t stack_size, tl__coro_fn fn, void *arg,
                 tl__coro_t **out) {
    if (pool == NULL || fn == NULL || out == NULL)
        return TL_EINVAL;
    if (stack_size == 0)
        stack_size = TL__CORO_STACK_DEFAULT;
    if (stack_size < TL__CORO_STACK_MIN || stack_size > TL__CORO_STACK_MAX)
        return TL_EINVAL;
    size_t page = tl__stack_os_page_size();
    stack_size = (stack_size + page - 1) & ~(page - 1);
    tl__stack_t s;
    if (tl__stack_get(pool, stack_size, &s) != 0)
        return TL_ENOMEM;
#ifdef TL__ASAN
    /* Frames of the stack's last user may have left redzones behind. */
    __asan_unpoison_memory_region(s.lo, s.size);
#endif
    tl__coro_t *c = (tl__coro_t *)(s.lo + s.size - RECORD_SIZE);
    *c = (tl__coro_t){.state = CORO_NEW, .fn = fn, .arg = arg, .pool = pool, .stack = s};
    if (tl__ctx_new(&c->ctx) != 0) {
        tl__stack_put(pool, &s);
        return TL_ENOMEM;
    }
#ifdef TL__VALGRIND
    c->vg_stack = VALGRIND_STACK_REGISTER(s.lo, s.lo + s.size);
#endif
    *out = c;
    return 0;
}

/* Out of line, to keep resume's common path free of a frame; returns c so
 * that the caller keeps nothing live across the call. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline, cold))
#endif
static tl__coro_t *start(tl__coro_t *c) {
    tl__ctx_start(&c->ctx, c->stack.lo, (char *)c, coro_main, c);
    return c;
}

/* What a switch back to the resumer says: 0 suspended, 1 finished, or
 * OVERFLOWED (suspended past the end of an unguarded stack). */
#define OVERFLOWED 2

/* The switch in, for the cases that need to act after the switch back on
 * the resumer's stack: sanitizer announcements, and the overflow report for
 * unguarded stacks (it cannot run on the overflowed stack itself: the
 * dynamic linker alone may want kilobytes to bind write). */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static int enter_and_check(tl__coro_t *c) {
    asan_enter(c);
    int r = tl__ctx_enter(&c->ctx);
    asan_left(c);
    if (TL__UNLIKELY(r == OVERFLOWED))
        tl__stack_os_overflow();
    return r;
}

int tl__coro_resume(tl__coro_t *c) {
    if (c == NULL)
        return TL_EINVAL;
    if (TL__UNLIKELY(c->state != CORO_SUSPENDED)) {
        if (c->state != CORO_NEW)
            return TL_ESTATE;
        c = start(c);
    }
    c->parent = current;
    c->state = CORO_RUNNING;
    current = c;
#ifdef TL__ASAN
    return enter_and_check(c);
#else
    if (TL__UNLIKELY(c->stack.guard == TL__GUARD_NONE))
        return enter_and_check(c);
    /* A tail call: the switch back returns straight to our caller, so no
     * `ret` here meets a return-stack predictor the switch has misled. */
    return tl__ctx_enter(&c->ctx);
#endif
}

/* An unguarded stack (see coro.h) is checked when its coroutine suspends:
 * 0, or OVERFLOWED when its stack pointer is (nearly) past the end. */
static int check_unguarded(tl__coro_t *c) {
#if defined(__GNUC__) || defined(__clang__)
    char *sp = __builtin_frame_address(0);
#else
    char here, *sp = &here;
#endif
    return (uintptr_t)sp < (uintptr_t)c->stack.lo + UNGUARDED_MARGIN ? OVERFLOWED : 0;
}

void tl__coro_suspend(tl__coro_t *c) {
    if (TL__UNLIKELY(c == NULL || c != current))
        return;
    int value = 0;
    if (TL__UNLIKELY(c->stack.guard == TL__GUARD_NONE))
        value = check_unguarded(c);
    c->state = CORO_SUSPENDED;
    current = c->parent;
#ifdef TL__ASAN
    void *fake = NULL;
    asan_leave(c, &fake);
    tl__ctx_leave(&c->ctx, value);
    asan_entered(c, fake);
#else
    tl__ctx_leave(&c->ctx, value);
#endif
}

void tl__coro_free(tl__coro_t *c) {
    if (c == NULL || c->state == CORO_RUNNING)
        return;
    tl__ctx_free(&c->ctx);
#ifdef TL__VALGRIND
    VALGRIND_STACK_DEREGISTER(c->vg_stack);
#endif
    tl__stack_t s = c->stack;
    tl__stack_put(c->pool, &s);
}

const char *tl__coro_impl(void) {
#if defined(TL_CORO_ASM)
    return "asm";
#else
    return "ucontext";
#endif
}
