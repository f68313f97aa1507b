/*
 * The per-loop stack pool (stack.h, coro.h). Portable: the OS is reached only
 * through the tl__stack_os_* functions (and the clock, for idle ages).
 *
 * Stacks of one size form a class; a class hands out slots from chunks (one
 * mapping each, see stack.h). A chunk's slots are initialised lazily, in
 * address order (a slot's guard page is installed the first time it is handed
 * out), so a chunk costs one mapping plus one guard call per slot ever used.
 * Freed slots go on their chunk's LIFO free list; chunks with a free or fresh
 * slot are on their class's `avail` list, the one a slot was last freed into
 * first, so the warmest stack is reused next.
 *
 * A chunk with no stack in use is idle. Idle chunks are what makes a burst of
 * coroutines cheap the next time (a fresh stack costs a page fault, a guard
 * call and its share of a mapping: 15-20 us here, against ~70 ns reused),
 * and what holds memory after it. The pool keeps idle chunks, oldest first
 * on an idle list, up to the larger of TL__STACK_CACHE_BYTES and what the
 * recent peak would need again (the most bytes of busy chunks seen in the
 * current or the previous TL__STACK_EPOCH_NS, less those busy now). Past
 * that the oldest idle chunks are unmapped, at most TL__STACK_TRIM_MAX each
 * time a chunk falls idle, so no call stalls long. So a loop cycling through
 * a thousand coroutines keeps its stacks, and a burst of a million gives its
 * memory back within a couple of seconds of pool activity after it ends.
 * (Releasing pages with MADV_FREE instead was tried: reusing a lazily freed
 * page costs a dirty-bit fault, 5-10 us per stack in this VM.)
 */
#include <string.h>

#include "../core/alloc.h"
#include "../core/platform.h"
#include "stack.h"
#include "tulip/core.h"

/* The window of the peak the idle cache follows, and how many chunks one
 * call unmaps at most. */
#define TL__STACK_EPOCH_NS ((uint64_t)1000000000)
#define TL__STACK_TRIM_MAX 16

typedef struct sclass sclass_t;

typedef struct chunk {
    struct chunk *next, *prev;           /* in cls->avail, while it has a slot */
    struct chunk *all_next, *all_prev;   /* in pool->chunks */
    struct chunk *idle_next, *idle_prev; /* in pool's idle list, while idle */
    sclass_t *cls;
    char *base;
    size_t bytes;
    uint32_t nslots;
    uint32_t nfresh; /* slots [nfresh, nslots) never handed out */
    uint32_t nfree;  /* entries in free[] */
    uint32_t nlive;
    uint32_t nmprotect; /* slots whose guard is TL__GUARD_MPROTECT */
    uint8_t on_avail;
    uint8_t idle;
    uint8_t *guard;   /* per slot, once handed out */
    uint32_t free[];  /* then guard[nslots] */
} chunk_t;

struct sclass {
    sclass_t *next;
    size_t stack_size;
    size_t slot_size;
    uint32_t next_nslots;
    chunk_t *avail;
};

struct tl__stack_pool {
    size_t page;
    sclass_t *classes;
    chunk_t *chunks;
    chunk_t *idle_head, *idle_tail; /* oldest first */
    size_t mapped_bytes, idle_bytes;
    size_t peak_cur, peak_prev; /* most busy bytes this epoch, the last one */
    uint64_t epoch_start;
    size_t nchunks, maps_made, guards[3];
};

int tl__stack_pool_new(tl__stack_pool_t **out) {
    if (out == NULL)
        return TL_EINVAL;
    tl__stack_pool_t *pool = tl__calloc(1, sizeof(*pool));
    if (pool == NULL)
        return TL_ENOMEM;
    pool->page = tl__stack_os_page_size();
    *out = pool;
    return 0;
}

/* ---- lists ------------------------------------------------------------- */

static void avail_push(sclass_t *cls, chunk_t *ch) {
    ch->prev = NULL;
    ch->next = cls->avail;
    if (cls->avail)
        cls->avail->prev = ch;
    cls->avail = ch;
    ch->on_avail = 1;
}

static void avail_remove(sclass_t *cls, chunk_t *ch) {
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        cls->avail = ch->next;
    if (ch->next)
        ch->next->prev = ch->prev;
    ch->next = ch->prev = NULL;
    ch->on_avail = 0;
}

static void idle_append(tl__stack_pool_t *pool, chunk_t *ch) {
    ch->idle_next = NULL;
    ch->idle_prev = pool->idle_tail;
    if (pool->idle_tail)
        pool->idle_tail->idle_next = ch;
    else
        pool->idle_head = ch;
    pool->idle_tail = ch;
    ch->idle = 1;
    pool->idle_bytes += ch->bytes;
}

static void idle_remove(tl__stack_pool_t *pool, chunk_t *ch) {
    if (ch->idle_prev)
        ch->idle_prev->idle_next = ch->idle_next;
    else
        pool->idle_head = ch->idle_next;
    if (ch->idle_next)
        ch->idle_next->idle_prev = ch->idle_prev;
    else
        pool->idle_tail = ch->idle_prev;
    ch->idle_next = ch->idle_prev = NULL;
    ch->idle = 0;
    pool->idle_bytes -= ch->bytes;
}

/* Busy bytes grew: the epoch's peak follows. */
static void note_busy(tl__stack_pool_t *pool) {
    size_t busy = pool->mapped_bytes - pool->idle_bytes;
    if (busy > pool->peak_cur)
        pool->peak_cur = busy;
}

/* ---- chunks ------------------------------------------------------------ */

static void chunk_release(tl__stack_pool_t *pool, chunk_t *ch) {
    if (ch->idle)
        idle_remove(pool, ch);
    if (ch->on_avail)
        avail_remove(ch->cls, ch);
    if (ch->all_prev)
        ch->all_prev->all_next = ch->all_next;
    else
        pool->chunks = ch->all_next;
    if (ch->all_next)
        ch->all_next->all_prev = ch->all_prev;
    pool->mapped_bytes -= ch->bytes;
    pool->nchunks--;
    tl__stack_os_unmap(ch->base, ch->bytes, ch->nmprotect);
    tl__free(ch);
}

static int chunk_new(tl__stack_pool_t *pool, sclass_t *cls, chunk_t **out) {
    uint32_t n = cls->next_nslots;
    size_t fit = TL__STACK_CHUNK_BYTES / cls->slot_size;
    if (n > fit)
        n = fit > 0 ? (uint32_t)fit : 1;
    chunk_t *ch = tl__malloc(sizeof(*ch) + n * (sizeof(uint32_t) + 1));
    if (ch == NULL)
        return TL_ENOMEM;
    memset(ch, 0, sizeof(*ch));
    ch->bytes = n * cls->slot_size;
    void *base;
    if (tl__stack_os_map(ch->bytes, &base) != 0) {
        tl__free(ch);
        return TL_ENOMEM;
    }
    ch->base = base;
    ch->cls = cls;
    ch->nslots = n;
    ch->guard = (uint8_t *)(ch->free + n);
    ch->all_next = pool->chunks;
    if (pool->chunks)
        pool->chunks->all_prev = ch;
    pool->chunks = ch;
    pool->mapped_bytes += ch->bytes;
    pool->nchunks++;
    pool->maps_made++;
    avail_push(cls, ch);
    if (cls->next_nslots < TL__STACK_CHUNK_SLOTS_MAX)
        cls->next_nslots *= 2;
    *out = ch;
    return 0;
}

/* A chunk fell idle: keep it, then unmap the oldest idle chunks beyond what
 * the recent peak would want back. */
static void chunk_idle(tl__stack_pool_t *pool, chunk_t *ch) {
    idle_append(pool, ch);
    if (pool->idle_bytes <= TL__STACK_CACHE_BYTES)
        return; /* nothing to trim: no need for the clock */
    uint64_t now = tl__time_ns();
    if (now - pool->epoch_start >= TL__STACK_EPOCH_NS) {
        /* The clock is read only here, so an epoch may have lasted longer:
         * its peak still counts once more (keeping memory, not losing it). */
        pool->peak_prev = pool->peak_cur;
        pool->peak_cur = pool->mapped_bytes - pool->idle_bytes;
        pool->epoch_start = now;
    }
    size_t peak = pool->peak_cur > pool->peak_prev ? pool->peak_cur : pool->peak_prev;
    size_t busy = pool->mapped_bytes - pool->idle_bytes;
    size_t keep = peak > busy ? peak - busy : 0;
    if (keep < TL__STACK_CACHE_BYTES)
        keep = TL__STACK_CACHE_BYTES;
    for (int i = 0; i < TL__STACK_TRIM_MAX && pool->idle_bytes > keep; i++) {
        if (pool->idle_head == ch && ch->idle_next == NULL)
            break; /* the only idle chunk stays, however large */
        chunk_release(pool, pool->idle_head);
    }
}

void tl__stack_pool_free(tl__stack_pool_t *pool) {
    if (pool == NULL)
        return;
    while (pool->chunks)
        chunk_release(pool, pool->chunks);
    while (pool->classes) {
        sclass_t *cls = pool->classes;
        pool->classes = cls->next;
        tl__free(cls);
    }
    tl__free(pool);
}

/* ---- stacks ------------------------------------------------------------ */

static int class_for(tl__stack_pool_t *pool, size_t size, sclass_t **out) {
    for (sclass_t *cls = pool->classes; cls; cls = cls->next)
        if (cls->stack_size == size) {
            *out = cls;
            return 0;
        }
    sclass_t *cls = tl__calloc(1, sizeof(*cls));
    if (cls == NULL)
        return TL_ENOMEM;
    cls->stack_size = size;
    cls->slot_size = size + pool->page;
    cls->next_nslots = 4;
    cls->next = pool->classes;
    pool->classes = cls;
    *out = cls;
    return 0;
}

int tl__stack_get(tl__stack_pool_t *pool, size_t size, tl__stack_t *out) {
    sclass_t *cls;
    if (class_for(pool, size, &cls) != 0)
        return TL_ENOMEM;
    chunk_t *ch = cls->avail;
    if (ch == NULL && chunk_new(pool, cls, &ch) != 0) {
        if (pool->classes == cls && cls->next_nslots == 4) { /* made just now */
            pool->classes = cls->next;
            tl__free(cls);
        }
        return TL_ENOMEM;
    }
    uint32_t slot;
    if (ch->nfree > 0) {
        slot = ch->free[--ch->nfree];
    } else {
        slot = ch->nfresh++;
        ch->guard[slot] = (uint8_t)tl__stack_os_guard(ch->base + (size_t)slot * cls->slot_size);
        if (ch->guard[slot] == TL__GUARD_MPROTECT)
            ch->nmprotect++;
        pool->guards[ch->guard[slot]]++;
    }
    if (ch->nlive++ == 0) {
        if (ch->idle)
            idle_remove(pool, ch);
        note_busy(pool);
    }
    if (ch->nfree == 0 && ch->nfresh == ch->nslots)
        avail_remove(cls, ch);
    out->lo = ch->base + (size_t)slot * cls->slot_size + pool->page;
    out->size = cls->stack_size;
    out->chunk = ch;
    out->slot = slot;
    out->guard = ch->guard[slot];
    return 0;
}

void tl__stack_put(tl__stack_pool_t *pool, const tl__stack_t *s) {
    chunk_t *ch = s->chunk;
    sclass_t *cls = ch->cls;
    ch->free[ch->nfree++] = s->slot;
    if (ch->on_avail)
        avail_remove(cls, ch);
    avail_push(cls, ch);
    if (--ch->nlive == 0)
        chunk_idle(pool, ch);
}

void tl__stack_pool_stats(const tl__stack_pool_t *pool, tl__stack_stats_t *out) {
    *out = (tl__stack_stats_t){.chunks = pool->nchunks,
                               .mapped_bytes = pool->mapped_bytes,
                               .idle_bytes = pool->idle_bytes,
                               .maps_made = pool->maps_made};
    memcpy(out->guards, pool->guards, sizeof(out->guards));
}
