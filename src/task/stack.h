/*
 * Coroutine stacks: the pool (stack_pool.c, portable) and the few OS calls it
 * needs (stack_posix.c; a Windows build would bring its own). coro.h tells
 * what the pool promises; this is how coro.c and the OS layer meet it.
 *
 * Layout of a chunk, one mapping of n equal slots, lowest address first:
 *
 *     | guard | stack 0 ......... | guard | stack 1 ......... | ...
 *             ^lo            top^
 *
 * Each slot is one page (the guard) plus the stack; the coroutine's record
 * sits at the top of its stack.
 */
#ifndef TL_TASK_STACK_H
#define TL_TASK_STACK_H

#include <stddef.h>
#include <stdint.h>

#include "coro.h"

/* Idle chunks (no stack in use) the pool keeps for reuse at least, in bytes
 * of address space; more while a recent peak may come back (stack_pool.c). */
#define TL__STACK_CACHE_BYTES ((size_t)16 << 20)
/* A chunk holds at most this many bytes of slots, and at most
 * TL__STACK_CHUNK_SLOTS_MAX slots; a pool's first chunk of a size holds 4. */
#define TL__STACK_CHUNK_BYTES ((size_t)8 << 20)
#define TL__STACK_CHUNK_SLOTS_MAX 256

/* ---- the OS layer ------------------------------------------------------ */

/* How the page below a stack guards it. */
enum {
    TL__GUARD_NONE = 0,     /* none: an untouched spare page */
    TL__GUARD_MPROTECT = 1, /* PROT_NONE: costs about two kernel mappings */
    TL__GUARD_MADVISE = 2   /* MADV_GUARD_INSTALL marker: costs no mapping */
};

/* The page size (a power of two). */
size_t tl__stack_os_page_size(void);

/* Map `bytes` (a page multiple) of private, lazily committed read/write
 * memory, without swap reservation or huge pages. 0 or TL_ENOMEM. */
int tl__stack_os_map(size_t bytes, void **out);

/* Unmap what tl__stack_os_map returned, after giving back the guard budget
 * of its `mprotect_guards` TL__GUARD_MPROTECT pages. */
void tl__stack_os_unmap(void *base, size_t bytes, size_t mprotect_guards);

/* Make the page at `page` (inside a mapping of ours) a guard page, the best
 * way this process can afford: returns the TL__GUARD_* kind it got. Never
 * fails; TL__GUARD_NONE means the page stays ordinary (and untouched). */
int tl__stack_os_guard(void *page);

/* A coroutine ran past the end of a stack without a guard page: say so on
 * stderr and abort, using as little stack as possible. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noreturn))
#endif
void tl__stack_os_overflow(void);

/* Test hook: force a guard kind for the whole process (-1: back to what the
 * probe finds), and with budget > 0 the number of mprotect guard pages the
 * process may hold (0: a quarter of vm.max_map_count). */
void tl__stack_os_force_guard(int kind, long budget);

/* ---- the pool ---------------------------------------------------------- */

typedef struct tl__stack {
    char *lo;      /* lowest usable byte, just above the guard page */
    size_t size;   /* usable bytes: the stack's top is lo + size */
    void *chunk;   /* the pool's bookkeeping for the slot */
    uint32_t slot;
    uint8_t guard; /* TL__GUARD_* */
} tl__stack_t;

/* A stack of `size` bytes (a page multiple, at least one page) in *out.
 * 0 or TL_ENOMEM. Its memory holds whatever its last user left there. */
int tl__stack_get(tl__stack_pool_t *pool, size_t size, tl__stack_t *out);

/* Give a stack back to the pool it came from. */
void tl__stack_put(tl__stack_pool_t *pool, const tl__stack_t *s);

/* What a pool holds, for tests and benchmarks. */
typedef struct tl__stack_stats {
    size_t chunks;       /* mappings held now */
    size_t mapped_bytes; /* their size */
    size_t idle_bytes;   /* of which in chunks with no stack in use */
    size_t maps_made;    /* chunks mapped over the pool's life */
    size_t guards[3];    /* slots set up, by TL__GUARD_* kind, over its life */
} tl__stack_stats_t;
void tl__stack_pool_stats(const tl__stack_pool_t *pool, tl__stack_stats_t *out);

#endif
