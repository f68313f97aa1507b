/*
 * The per-loop cache of future memory (see fcache.h).
 *
 * Sizes are rounded up to 16 bytes (the allocator's promised alignment);
 * each size has its own chunks. A chunk hands out slots it never handed
 * out before from its end (so a fresh chunk is not touched before it is
 * used) and slots given back from a free list threaded through them.
 *
 * Lifetime: a chunk holds a count of references, one for the cache while
 * it holds the chunk plus one per slot out. On the loop's thread, while
 * the cache lives, slots come and go through the free lists and the count
 * follows; a slot given back anywhere else (a future freed on another
 * thread once its loop closed) only drops its reference. When the loop
 * closes, the cache drops its own: chunks with nothing out go at once, the
 * others with their last slot.
 *
 * Memory is given back as it empties: a size keeps chunks with nothing out
 * only while it holds less than twice what is out (plus SPARE_SLOTS), and
 * none once it has no future out at all, so after a burst the cache
 * shrinks back and a loop at rest holds nothing. Chunks
 * grow with the number of futures out (from one slot), so futures made
 * one at a time cost an allocation each, as without the cache.
 */
#define _DEFAULT_SOURCE /* madvise's MADV_HUGEPAGE */
#include "fcache.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../core/alloc.h"
#include "../loop/loop_int.h"

#if defined(__SANITIZE_ADDRESS__)
#define FC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FC_ASAN 1
#endif
#endif
#ifdef FC_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ALIGN 16
#define NCLASSES TL__FCLASSES
#define MAX_SIZE (NCLASSES * ALIGN)  /* larger futures use tl__calloc */
#define MIN_SLOTS 1
/* An empty chunk is let go only if what is left holds twice the futures
 * out plus this many: memory follows use without a chunk coming and going
 * at every swing of a small working set. */
#define SPARE_SLOTS 64
/* A chunk grows with the number of slots out, up to this: large enough
 * that the kernel can back most of it with 2 MiB pages, small enough to
 * give memory back soon after a burst. */
#define MAX_CHUNK_BYTES ((size_t)8 << 20)
#define HUGE_MIN_BYTES ((size_t)4 << 20)

typedef tl__fclass_t fclass_t;

struct tl__fchunk {
    atomic_int refs;     /* the cache's (while it holds the chunk) + slots out */
    uint32_t cap;        /* slots */
    uint32_t carved;     /* slots ever handed out (from the end) */
    uint32_t nfree;      /* slots in `free` */
    size_t slot;         /* bytes per slot */
    fclass_t *cls;       /* loop's thread, while the cache lives */
    void *free;          /* given-back slots, linked through their first word */
    tl__fchunk_t *prev, *next;   /* the class's chunks */
    tl__fchunk_t *aprev, *anext; /* the class's chunks with a slot to give */
    int avail;
    char *slots;
};

#define HDR ((sizeof(tl__fchunk_t) + ALIGN - 1) / ALIGN * ALIGN)

/* ---- chunk lists ------------------------------------------------------- */

static void avail_link(fclass_t *cls, tl__fchunk_t *c) {
    c->aprev = NULL;
    c->anext = cls->avail;
    if (cls->avail)
        cls->avail->aprev = c;
    cls->avail = c;
    c->avail = 1;
}

static void avail_unlink(fclass_t *cls, tl__fchunk_t *c) {
    if (c->aprev)
        c->aprev->anext = c->anext;
    else
        cls->avail = c->anext;
    if (c->anext)
        c->anext->aprev = c->aprev;
    c->aprev = c->anext = NULL;
    c->avail = 0;
}

static void chunk_free(tl__fchunk_t *c) {
    UNPOISON(c->slots, (size_t)c->cap * c->slot);
    tl__free(c);
}

/* Drop one reference; the last frees the chunk. Any thread. */
static void chunk_unref(tl__fchunk_t *c) {
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        chunk_free(c);
}

/* The cache lets the chunk go (it is empty, or the loop closes). */
static void chunk_drop(fclass_t *cls, tl__fchunk_t *c) {
    if (c->avail)
        avail_unlink(cls, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        cls->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->cls = NULL;
    cls->cap -= c->cap;
    chunk_unref(c);
}

#define HUGE ((size_t)2 << 20)

/* A large chunk asks the kernel for huge pages: a burst then costs a page
 * fault per 2 MiB instead of per 4 KiB. Its slots start at a 2 MiB
 * boundary and its allocation reaches the next one past them, so every
 * huge page is the chunk's own; the slack before them is never touched,
 * so it costs address space, not memory. Only a hint. */
#if defined(__linux__) && defined(MADV_HUGEPAGE)
#define HUGE_PAGES 1
#endif

static size_t chunk_bytes(size_t slots_bytes) {
#ifdef HUGE_PAGES
    if (slots_bytes >= HUGE_MIN_BYTES)
        return HDR + HUGE + (slots_bytes + HUGE - 1) / HUGE * HUGE;
#endif
    return HDR + slots_bytes;
}

static char *place_slots(tl__fchunk_t *c, size_t slots_bytes) {
    char *s = (char *)c + HDR;
#ifdef HUGE_PAGES
    if (slots_bytes >= HUGE_MIN_BYTES) {
        s = (char *)(((uintptr_t)s + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
        (void)madvise(s, (slots_bytes + HUGE - 1) / HUGE * HUGE, MADV_HUGEPAGE);
    }
#else
    (void)slots_bytes;
#endif
    return s;
}

static tl__fchunk_t *chunk_new(fclass_t *cls, size_t slot) {
    size_t want = cls->out, most = MAX_CHUNK_BYTES / slot;
    if (want < MIN_SLOTS)
        want = MIN_SLOTS;
    if (want > most)
        want = most;
    tl__fchunk_t *c = tl__malloc(chunk_bytes(want * slot));
    if (c == NULL)
        return NULL;
    memset(c, 0, sizeof(*c));
    atomic_init(&c->refs, 1);
    c->cap = (uint32_t)want;
    c->slot = slot;
    c->cls = cls;
    c->slots = place_slots(c, want * slot);
    POISON(c->slots, want * slot);
    c->next = cls->all;
    if (cls->all)
        cls->all->prev = c;
    cls->all = c;
    avail_link(cls, c);
    cls->cap += want;
    return c;
}

/* ---- the cache ----------------------------------------------------------- */

static void cache_close(tl_loop_t *loop, void *data) {
    (void)loop;
    fclass_t *table = data;
    for (int i = 0; i < NCLASSES; i++)
        while (table[i].all)
            chunk_drop(&table[i], table[i].all);
}

/* A class with nothing out keeps nothing: a loop at rest holds no memory
 * for futures (and a future made and freed alone costs one allocation,
 * as without the cache). */
static void class_rest(fclass_t *cls) {
    tl__fchunk_t *c = cls->all;
    while (c) {
        tl__fchunk_t *next = c->next;
        if (c->nfree == c->carved)
            chunk_drop(cls, c);
        c = next;
    }
}

void *tl__fcache_alloc(tl_loop_t *loop, size_t size, tl__fchunk_t **chunk) {
    *chunk = NULL;
    if (size > MAX_SIZE || size == 0)
        return tl__calloc(1, size);
    if (loop->ext[TL__EXT_FUTURE].data == NULL) {
        loop->ext[TL__EXT_FUTURE].data = loop->fclass;
        loop->ext[TL__EXT_FUTURE].close = cache_close;
    }
    size_t idx = (size - 1) / ALIGN, slot = (idx + 1) * ALIGN;
    fclass_t *cls = &loop->fclass[idx];
    tl__fchunk_t *c = cls->avail;
    if (c == NULL && (c = chunk_new(cls, slot)) == NULL)
        return NULL;
    char *s;
    if (c->free) {
        s = c->free;
        UNPOISON(s, slot);
        c->free = *(void **)(void *)s;
        c->nfree--;
    } else {
        s = c->slots + (size_t)c->carved++ * slot;
        UNPOISON(s, slot);
    }
    if (c->free == NULL && c->carved == c->cap)
        avail_unlink(cls, c);
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    cls->out++;
    memset(s, 0, size);
    *chunk = c;
    return s;
}

void tl__fcache_free(tl_loop_t *loop, void *mem, tl__fchunk_t *c) {
    if (c == NULL) {
        tl__free(mem);
        return;
    }
    /* While the loop's cache lives (it is made once, on an open loop, and
     * goes at close), every chunk of this loop's futures is its own. */
    if (loop->owner != tl__thread_self() || loop->ext[TL__EXT_FUTURE].data == NULL) {
        chunk_unref(c);
        return;
    }
    fclass_t *cls = c->cls;
    *(void **)mem = c->free;
    c->free = mem;
    c->nfree++;
    POISON(mem, c->slot);
    if (!c->avail)
        avail_link(cls, c);
    cls->out--;
    atomic_fetch_sub_explicit(&c->refs, 1, memory_order_relaxed); /* not the last: the cache holds one */
    if (cls->out == 0)
        class_rest(cls);
    else if (c->nfree == c->carved && cls->cap - c->cap >= 2 * cls->out + SPARE_SLOTS)
        chunk_drop(cls, c);
}
