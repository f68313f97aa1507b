#include "heap.h"

#include "alloc.h"

static inline int before(const tl__heap_entry_t *a, const tl__heap_entry_t *b) {
    if (a->key != b->key)
        return a->key < b->key;
    return (int32_t)(a->seq - b->seq) < 0; /* wraps like TCP sequence numbers */
}

static void sift_up(tl__heap_t *h, size_t i, uint32_t *pos) {
    tl__heap_entry_t e = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (!before(&e, &h->v[parent]))
            break;
        h->v[i] = h->v[parent];
        pos[h->v[i].id] = (uint32_t)i;
        i = parent;
    }
    h->v[i] = e;
    pos[e.id] = (uint32_t)i;
}

static void sift_down(tl__heap_t *h, size_t i, uint32_t *pos) {
    tl__heap_entry_t e = h->v[i];
    for (;;) {
        size_t first = 4 * i + 1;
        if (first >= h->n)
            break;
        size_t best = first, last = first + 4 < h->n ? first + 4 : h->n;
        for (size_t c = first + 1; c < last; c++)
            if (before(&h->v[c], &h->v[best]))
                best = c;
        if (!before(&h->v[best], &e))
            break;
        h->v[i] = h->v[best];
        pos[h->v[i].id] = (uint32_t)i;
        i = best;
    }
    h->v[i] = e;
    pos[e.id] = (uint32_t)i;
}

int tl__heap_push(tl__heap_t *h, tl__heap_entry_t e, uint32_t *pos) {
    int rc = tl__grow((void **)&h->v, &h->cap, h->n + 1, sizeof(*h->v));
    if (rc)
        return rc;
    h->v[h->n++] = e;
    sift_up(h, h->n - 1, pos);
    return 0;
}

void tl__heap_remove(tl__heap_t *h, size_t i, uint32_t *pos) {
    h->n--;
    if (i == h->n)
        return;
    h->v[i] = h->v[h->n];
    if (i > 0 && before(&h->v[i], &h->v[(i - 1) / 4]))
        sift_up(h, i, pos);
    else
        sift_down(h, i, pos);
}

void tl__heap_free(tl__heap_t *h) {
    tl__free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
