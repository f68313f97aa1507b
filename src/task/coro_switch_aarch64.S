/*
 * The aarch64 (AAPCS64) context switch (coro_ctx.h, frame layout in
 * coro_asm.c).
 *
 *     int tl__ctx_swap(void **save_sp, void *load_sp, int value);
 *
 * `value` becomes the return value of the tl__ctx_swap call that saved
 * load_sp (passed through in w2, returned in w0).
 * Saves what the ABI says a call preserves: x19-x28, x29, x30, sp and d8-d15
 * (the low 64 bits of v8-v15), plus the FPCR, which AAPCS64 calls global
 * state: saved so rounding and flush-to-zero modes are per coroutine as on
 * x86-64 and under ucontext. The FPCR is written only when it differs, since
 * a write to it can stall the pipeline on some cores. x18 (the platform
 * register) and the FPSR flags are left alone.
 *
 * It ends in "br x30" rather than "ret" for the reason coro_switch_x86_64.S
 * gives: the return-stack predictor is always wrong about a switch.
 *
 * Built when CORO=asm (the default on aarch64). No BTI/PAC/GCS property
 * note: a binary linking this is not marked for them, so they stay off.
 */
#if defined(__aarch64__) && !defined(TL_CORO_UCONTEXT) && !defined(_WIN32)

    .text
    .p2align 4
    .globl  tl__ctx_swap
    .hidden tl__ctx_swap
    .type   tl__ctx_swap, %function
tl__ctx_swap:
    .cfi_startproc
    sub     sp, sp, #176
    .cfi_adjust_cfa_offset 176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8,  d9,  [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x10, sp
    str     x10, [x0]
    mov     sp, x1
    mov     w0, w2
    ldr     x10, [sp, #160]
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x10
1:  ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8,  d9,  [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #176
    .cfi_adjust_cfa_offset -176
    br      x30
    .cfi_endproc
    .size   tl__ctx_swap, .-tl__ctx_swap

/* A new coroutine's first continuation: entry(arg) from x20(x19). The
 * undefined return address tells debuggers and unwinders the stack ends. */
    .p2align 4
    .globl  tl__ctx_boot
    .hidden tl__ctx_boot
    .type   tl__ctx_boot, %function
tl__ctx_boot:
    .cfi_startproc
    .cfi_undefined x30
    mov     x0, x19
    blr     x20
    brk     #0
    .cfi_endproc
    .size   tl__ctx_boot, .-tl__ctx_boot

#endif

#if defined(__ELF__)
    .section .note.GNU-stack, "", %progbits
#endif
