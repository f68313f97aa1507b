/*
 * A 4-ary min-heap of small inline entries, for timers. Entries carry their
 * key, so comparisons never chase pointers (libuv's pointer-linked heap
 * misses cache on every level). Ties on the key go to the lower sequence
 * number, so equal deadlines keep their scheduling order. `pos[id]` tracks
 * where each id sits, which makes removal O(log n).
 */
#ifndef TL_CORE_HEAP_H
#define TL_CORE_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct tl__heap_entry {
    uint64_t key;
    uint32_t seq;
    uint32_t id;
} tl__heap_entry_t;

typedef struct tl__heap {
    tl__heap_entry_t *v;
    size_t n, cap;
} tl__heap_t;

/* Insert; pos[e.id] is set. Returns 0 or TL_ENOMEM. */
int tl__heap_push(tl__heap_t *h, tl__heap_entry_t e, uint32_t *pos);
/* Remove the entry at index i (pos[id] of a live entry). */
void tl__heap_remove(tl__heap_t *h, size_t i, uint32_t *pos);
static inline const tl__heap_entry_t *tl__heap_top(const tl__heap_t *h) {
    return h->n ? &h->v[0] : NULL;
}
void tl__heap_free(tl__heap_t *h);

#endif
