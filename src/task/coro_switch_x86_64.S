/*
 * The x86-64 SysV context switch (coro_ctx.h, frame layout in coro_asm.c).
 *
 *     int tl__ctx_swap(void **save_sp, void *load_sp, int value);
 *
 * `value` becomes the return value of the tl__ctx_swap call that saved
 * load_sp (passed through in edx, returned in eax).
 *
 * Saves what the ABI says a call preserves: rbx rbp r12-r15, the MXCSR and
 * the x87 control word (their control bits are callee-saved; stmxcsr stores
 * the MXCSR whole), stores rsp, loads the other stack and restores the same
 * from it.
 *
 * It ends in "pop; jmp" rather than "ret": the target is never where the
 * return-stack predictor thinks, so ret costs a misprediction on every
 * switch, while an indirect jump's target is learnt (coroutines mostly
 * suspend from one place). Both sides of a switch have the same frame, so
 * the CFI stays true across the stack change. Measured here (AMD EPYC VM),
 * ns a switch in a ping-pong: this switch 5.4; the same ending in ret 12.3;
 * without the FP control state 3.3; comparing the FP control words and
 * loading them only on a change 8.3 (the compare waits on the stores).
 *
 * Built when CORO=asm (the default on x86-64). No .note.gnu.property: this
 * code is not shadow-stack (CET) compatible, so neither is what links it.
 */
#if defined(__x86_64__) && !defined(TL_CORO_UCONTEXT) && !defined(_WIN32)

    .text
    .p2align 4
    .globl  tl__ctx_swap
    .hidden tl__ctx_swap
    .type   tl__ctx_swap, @function
tl__ctx_swap:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    movl    %edx, %eax
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    popq    %r14
    .cfi_adjust_cfa_offset -8
    popq    %r13
    .cfi_adjust_cfa_offset -8
    popq    %r12
    .cfi_adjust_cfa_offset -8
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    .cfi_register rip, rcx
    jmpq    *%rcx
    .cfi_endproc
    .size   tl__ctx_swap, .-tl__ctx_swap

/* A new coroutine's first continuation: entry(arg) from r13(r12). The
 * undefined return address tells debuggers and unwinders the stack ends. */
    .p2align 4
    .globl  tl__ctx_boot
    .hidden tl__ctx_boot
    .type   tl__ctx_boot, @function
tl__ctx_boot:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r12, %rdi
    callq   *%r13
    ud2
    .cfi_endproc
    .size   tl__ctx_boot, .-tl__ctx_boot

#endif

#if defined(__ELF__)
    .section .note.GNU-stack, "", @progbits
#endif
