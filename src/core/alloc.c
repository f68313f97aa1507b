/* Allocator hooks: a process-wide table, the C library's by default. */
#include "alloc.h"
#include "options.h"

#include <stdlib.h>
#include <string.h>

#include "tulip/core.h"

static void *libc_malloc(void *ctx, size_t n) { (void)ctx; return malloc(n); }
static void *libc_realloc(void *ctx, void *p, size_t n) { (void)ctx; return realloc(p, n); }
static void libc_free(void *ctx, void *p) { (void)ctx; free(p); }

static tl_allocator_t current = {sizeof(tl_allocator_t), libc_malloc,
                                 libc_realloc, libc_free, NULL};

int tl_set_allocator(const tl_allocator_t *a) {
    if (a == NULL) {
        current.malloc = libc_malloc;
        current.realloc = libc_realloc;
        current.free = libc_free;
        current.ctx = NULL;
        return 0;
    }
    if (a->size < sizeof(tl_allocator_t) || !a->malloc || !a->realloc || !a->free)
        return TL_EINVAL;
    current = *a;
    current.size = sizeof(tl_allocator_t);
    return 0;
}

int tl_get_allocator(tl_allocator_t *out) {
    if (out == NULL)
        return TL_EINVAL;
    *out = current;
    return 0;
}

void *tl__malloc(size_t n) { return current.malloc(current.ctx, n ? n : 1); }

void *tl__calloc(size_t count, size_t n) {
    if (n != 0 && count > (size_t)-1 / n)
        return NULL;
    void *p = tl__malloc(count * n);
    if (p)
        memset(p, 0, count * n);
    return p;
}

void *tl__realloc(void *ptr, size_t n) {
    return current.realloc(current.ctx, ptr, n ? n : 1);
}

void tl__free(void *ptr) {
    if (ptr)
        current.free(current.ctx, ptr);
}

int tl__grow(void **array, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return 0;
    if (elem == 0)
        return TL_EINVAL;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > ((size_t)-1 / 2) / elem)
            return TL_ENOMEM;
        ncap *= 2;
    }
    /* The doubling is checked above; the starting capacity is not. */
    if (ncap > (size_t)-1 / elem)
        return TL_ENOMEM;
    void *p = tl__realloc(*array, ncap * elem);
    if (p == NULL)
        return TL_ENOMEM;
    *array = p;
    *cap = ncap;
    return 0;
}

char *tl__strdup(const char *s) {
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = tl__malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

int tl__copy_options(void *dst, size_t dst_size, const void *src) {
    memset(dst, 0, dst_size);
    if (src == NULL)
        return 0;
    size_t given;
    memcpy(&given, src, sizeof given);
    if (given == 0)
        return 0;
    if (given < sizeof(size_t))
        return TL_EINVAL;
    const unsigned char *extra = (const unsigned char *)src;
    for (size_t i = dst_size; i < given; i++)
        if (extra[i] != 0)
            return TL_EINVAL;
    memcpy(dst, src, given < dst_size ? given : dst_size);
    memcpy(dst, &dst_size, sizeof dst_size);
    return 0;
}
