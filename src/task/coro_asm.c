/*
 * The hand-written context implementation (coro_ctx.h): the switch is in
 * coro_switch_x86_64.S / coro_switch_aarch64.S; this file lays out the first
 * frame a new coroutine's stack needs, in the shape the switch restores.
 *
 * x86-64 SysV, the saved frame, from the saved stack pointer up (64 bytes):
 *     +0  MXCSR (4 bytes), x87 control word (2), padding (2)
 *     +8  r15, r14, r13, r12, rbx, rbp
 *     +56 the address to continue at
 * aarch64 AAPCS64 (176 bytes):
 *     +0  x19..x28   +80 x29 (fp), x30 (lr: the address to continue at)
 *     +96 d8..d15    +160 FPCR (8 bytes), padding (8)
 * A new stack holds one such frame just below its top whose continuation is
 * the boot stub (tl__ctx_boot): it calls entry(arg), both passed in
 * callee-saved registers (r12/r13, x19/x20), with the stack pointer at the
 * top, 16-byte aligned as the ABIs want at a call.
 */
#include "coro_ctx.h"

#if defined(TL_CORO_ASM)

#include <stdint.h>
#include <string.h>

#if defined(_WIN32) || !(defined(__x86_64__) || defined(__aarch64__))
#  error "CORO=asm has x86-64 (SysV) and aarch64 switches only; build with CORO=ucontext"
#endif

void tl__ctx_boot(void); /* in the .S: never called from C */

int tl__ctx_new(tl__ctx_t *x) {
    x->self = x->caller = NULL;
    return 0;
}

void tl__ctx_free(tl__ctx_t *x) { (void)x; }

void tl__ctx_start(tl__ctx_t *x, char *lo, char *hi, void (*entry)(void *), void *arg) {
    (void)lo;
#if defined(__x86_64__)
    uint64_t *f = (uint64_t *)(void *)hi - 8;
    uint32_t mxcsr;
    uint16_t x87cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(x87cw));
    f[0] = (uint64_t)mxcsr | (uint64_t)x87cw << 32;
    f[1] = 0;                       /* r15 */
    f[2] = 0;                       /* r14 */
    f[3] = (uint64_t)(uintptr_t)entry; /* r13 */
    f[4] = (uint64_t)(uintptr_t)arg;   /* r12 */
    f[5] = 0;                       /* rbx */
    f[6] = 0;                       /* rbp: ends frame-pointer chains */
    f[7] = (uint64_t)(uintptr_t)tl__ctx_boot;
#else
    uint64_t *f = (uint64_t *)(void *)hi - 22;
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    memset(f, 0, 22 * sizeof(*f));
    f[0] = (uint64_t)(uintptr_t)arg;   /* x19 */
    f[1] = (uint64_t)(uintptr_t)entry; /* x20 */
    f[10] = 0;                         /* x29: ends frame-pointer chains */
    f[11] = (uint64_t)(uintptr_t)tl__ctx_boot; /* x30 */
    f[20] = fpcr;
#endif
    x->self = f;
}

#else
typedef int tl__coro_asm_unused;
#endif
