/*
 * Internal allocation entry points: every allocation in tulip goes through
 * these, so tl_set_allocator (and the tests' failing allocator) sees it.
 */
#ifndef TL_CORE_ALLOC_H
#define TL_CORE_ALLOC_H

#include <stddef.h>

void *tl__malloc(size_t n);
void *tl__calloc(size_t count, size_t n);
void *tl__realloc(void *ptr, size_t n);
void tl__free(void *ptr);
/* Grow an array to hold at least `need` elements of `elem` bytes, doubling;
 * *cap is updated. Returns 0, TL_ENOMEM (also when the size would overflow;
 * the old array stays valid) or TL_EINVAL for elem 0. */
int tl__grow(void **array, size_t *cap, size_t need, size_t elem);
/* A copy of s (NULL for NULL), or NULL when the allocation fails. */
char *tl__strdup(const char *s);

#endif
