/*
 * Coroutine contexts: the stackful coroutines tasks run on, and the per-loop
 * pool their stacks come from. Internal to tulip (tasks build on it; nothing
 * here is exported).
 *
 * A coroutine runs fn(arg) on a stack of its own. tl__coro_resume switches
 * into it; inside, tl__coro_suspend switches back to whoever resumed it, and
 * the next resume continues after that suspend. Nothing passes through a
 * switch but control: callers exchange values through memory they share.
 * Everything here is single-threaded: a pool and its coroutines belong to the
 * thread of their loop, and a coroutine is only ever resumed on that thread.
 *
 * Implementations, chosen at build time (`make CORO=asm|ucontext`, which
 * defines TL_CORO_ASM or TL_CORO_UCONTEXT); tl__coro_impl() names the one
 * built in:
 *   asm       a hand-written switch (coro_switch_x86_64.S, coro_switch_aarch64.S):
 *             about 6 ns a switch on x86-64, resume and suspend included. The
 *             default on x86-64 (SysV ABI) and aarch64 (AAPCS64).
 *   ucontext  getcontext/makecontext/swapcontext (coro_ucontext.c): portable
 *             POSIX, hundreds of ns a switch (swapcontext makes a sigprocmask
 *             system call each time). The default elsewhere; kept and tested.
 * A Windows build would plug Fibers in behind the same functions (coro_ctx.h
 * is the seam); no stack or context type leaks through this header.
 *
 * What a switch carries (per coroutine) and what it does not (per thread):
 *   - Per coroutine, always: its stack, and the registers the ABI says a call
 *     preserves. x86-64: rbx rbp r12-r15, rsp, the MXCSR (whole register) and
 *     the x87 control word. aarch64: x19-x28, x29 (fp), x30 (lr), sp, d8-d15
 *     (the low halves of v8-v15; nothing of SVE/SME beyond that), and the FPCR.
 *     So a rounding mode or flush-to-zero set inside a coroutine stays with
 *     it, and the resumer finds its own unchanged when resume returns.
 *     aarch64's ABI calls the FPCR global state rather than callee-saved; the
 *     asm switch saves it anyway so both architectures, and ucontext (whose
 *     setcontext restores it), behave alike.
 *   - A new coroutine starts with the FP control state of the thread at its
 *     first resume (as if fn had been called from there).
 *   - FP exception flags: asm carries them in the MXCSR on x86-64 but not the
 *     x87 status word, nor the FPSR on aarch64, so treat them as unspecified
 *     after a switch (as the ABIs do after any call). ucontext carries them.
 *   - The signal mask: per thread with asm (a switch makes no system call);
 *     per coroutine with ucontext (swapcontext saves and restores it, and a
 *     new coroutine starts with the mask in force at its first resume).
 *   - errno and all other thread-local storage: per thread, whatever the
 *     implementation (a coroutine may see another coroutine's errno after a
 *     switch, exactly as after any call that may set it).
 * The asm objects carry no CET/BTI property notes, so a binary that links
 * them is not marked for x86 shadow stacks or arm64 BTI and the loader leaves
 * those off.
 *
 * Stacks. Each coroutine's stack is taken from a pool (one per loop): memory
 * mapped with MAP_NORESERVE, lazily committed (a page costs memory only once
 * touched, so a 64 KiB stack that never goes deeper than 4 KiB costs 4 KiB),
 * never transparent-huge-paged, carved from chunks of up to 8 MiB so that
 * mapping costs are shared. The coroutine's own record (about 128 bytes)
 * lives at the top of its stack: a coroutine costs no allocation of its own
 * (asm), and a sleeping one whose frames fit in a page costs one page.
 * Freed stacks go back to the pool and are reused, most recent first (their
 * pages are warm): a fresh stack costs a page fault and a guard call (15-30 us
 * in the VM measured), a reused one nothing. Idle chunks are kept up to
 * 16 MiB, or as much as the pool's peak of the last second or two would use
 * again; beyond that they are unmapped as the pool goes on being used
 * (stack_pool.c), so a burst's memory goes back within seconds.
 *
 * Guard pages. Below every stack lies one page that is not part of it. The
 * pool makes it a guard page, so that running off the end of a stack (deep
 * recursion, a large local array) faults with SIGSEGV on that page instead of
 * silently overwriting the stack below it, in one of two ways:
 *   - MADV_GUARD_INSTALL (Linux 6.13+): a guard marker in the page tables,
 *     which costs no mapping, so every stack is guarded however many exist;
 *   - otherwise mprotect(PROT_NONE), which splits the mapping: about two of
 *     the kernel's memory mappings (VMAs) per stack, and Linux allows
 *     vm.max_map_count of them per process (65530 by default). The pool
 *     guards stacks this way while the process's guard pages stay within a
 *     quarter of that limit (about 16000 stacks by default, so half of the
 *     mappings stay free for everything else in the process); stacks beyond
 *     that, or refused by the kernel, get no guard: the page below stays
 *     mapped and untouched, absorbing (not detecting) an overflow of up to a
 *     page, and a coroutine that suspends with less than 512 bytes of its
 *     stack left (or past its end) makes its resumer print a message and
 *     abort the process. Raise vm.max_map_count (sysctl) to guard every
 *     stack on older kernels.
 *   Guards cost no memory either way. Without mprotect guards a chunk is a
 *   single mapping, and adjacent chunks merge: a million stacks with
 *   MADV_GUARD_INSTALL measured one VMA all told.
 * TL_STACK_GUARD=madvise|mprotect|none in the environment forces one way
 * (read once per process).
 * The first 16 KiB of a stack are its minimum: below that, resume's own
 * frames and a C library call or two would not fit.
 *
 * Sanitizers and valgrind: under AddressSanitizer every switch is announced
 * with __sanitizer_start/finish_switch_fiber and a reused stack is unpoisoned;
 * when <valgrind/valgrind.h> exists each stack is registered with
 * VALGRIND_STACK_REGISTER while a coroutine owns it.
 */
#ifndef TL_TASK_CORO_H
#define TL_TASK_CORO_H

#include <stddef.h>

typedef struct tl__stack_pool tl__stack_pool_t; /* one per loop, single-threaded */
typedef struct tl__coro tl__coro_t;             /* a coroutine: stack + saved contexts */
typedef void (*tl__coro_fn)(void *arg);

/* Default and minimum stack sizes, in bytes. */
#define TL__CORO_STACK_DEFAULT ((size_t)64 * 1024)
#define TL__CORO_STACK_MIN ((size_t)16 * 1024)
/* Largest stack size accepted (1 GiB). */
#define TL__CORO_STACK_MAX ((size_t)1 << 30)

/* A new, empty pool in *out. Maps nothing until a coroutine needs a stack.
 * TL_EINVAL if out is NULL, TL_ENOMEM. */
int tl__stack_pool_new(tl__stack_pool_t **out);

/* Unmaps every stack the pool holds and frees it. Every coroutine taken from
 * it must have been freed first (their stacks are unmapped regardless).
 * NULL is ignored. */
void tl__stack_pool_free(tl__stack_pool_t *pool);

/* A coroutine that will run fn(arg) on its own stack of stack_size bytes
 * (0 = TL__CORO_STACK_DEFAULT; rounded up to whole pages; the top 128 bytes
 * hold the coroutine's record), taken from pool. Does not start it: the first
 * tl__coro_resume calls fn. The caller frees it with tl__coro_free.
 * TL_EINVAL for a NULL pool, fn or out, or a size below TL__CORO_STACK_MIN or
 * above TL__CORO_STACK_MAX; TL_ENOMEM when the pool's bookkeeping or a new
 * stack mapping cannot be had. */
int tl__coro_new(tl__stack_pool_t *pool, size_t stack_size, tl__coro_fn fn, void *arg,
                 tl__coro_t **out);

/* Switch into c until it calls tl__coro_suspend or fn returns. Returns 1 when
 * fn has returned (c is finished), 0 when c suspended. May be called from the
 * thread's own stack or from inside another coroutine (nesting: c's suspend
 * then comes back to that coroutine). TL_ESTATE if c is finished or running
 * (c is the current coroutine or one of those that resumed it); TL_EINVAL for
 * NULL. */
int tl__coro_resume(tl__coro_t *c);

/* From inside c (c must be tl__coro_current()): switch back to whoever
 * resumed it; returns when c is next resumed. Called from anywhere else it
 * does nothing. */
void tl__coro_suspend(tl__coro_t *c);

/* The coroutine running on this thread, or NULL on the thread's own stack. */
tl__coro_t *tl__coro_current(void);

/* Free c: finished or never started (its stack goes back to the pool it came
 * from). A suspended coroutine may be freed too: its frames are dropped
 * without being unwound (whatever they own is leaked). A running one is left
 * alone. NULL is ignored. */
void tl__coro_free(tl__coro_t *c);

/* "asm" or "ucontext": the implementation built in. */
const char *tl__coro_impl(void);

#endif
