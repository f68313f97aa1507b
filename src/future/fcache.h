/*
 * A per-loop cache of future memory (future.c's allocator): futures of the
 * same size are carved out of chunks and recycled on the loop's thread,
 * so a future costs neither a malloc nor a free in steady state, and a
 * burst of them touches fresh memory in large chunks (which the kernel may
 * back with huge pages: a burst of a million executor jobs no longer pays
 * a first-touch page fault per 4 KiB).
 *
 * Chunks come from tl__malloc (the test allocator sees them, and their
 * failure is the future's TL_ENOMEM). The cache's table is in the loop
 * (tl__fclass_t), hooked to its TL__EXT_FUTURE slot so that its chunks go
 * when the loop closes; a chunk that still has futures out lives on until
 * the last of them is freed, on whatever thread that happens. A loop with
 * no future out holds no chunk.
 */
#ifndef TL_FUTURE_FCACHE_H
#define TL_FUTURE_FCACHE_H

#include <stddef.h>

#include "tulip/loop.h"

typedef struct tl__fchunk tl__fchunk_t;

/* Zeroed memory for a future of `size` bytes (loop's thread, loop open),
 * and in *chunk what tl__fcache_free needs to take it back (NULL when it
 * came from tl__calloc: sizes the cache does not keep). NULL: no memory. */
void *tl__fcache_alloc(tl_loop_t *loop, size_t size, tl__fchunk_t **chunk);
/* Give the memory back; any thread. On the loop's thread while the cache
 * lives it is kept for the next future; elsewhere it only releases its
 * chunk's hold. */
void tl__fcache_free(tl_loop_t *loop, void *mem, tl__fchunk_t *chunk);

#endif
