/*
 * Option structs start with `size_t size`. This copies what a caller gave
 * into the library's own struct: size 0 (a zeroed struct) means defaults; a
 * shorter struct (an older caller) leaves the rest zero; a longer one (a
 * newer caller) is accepted when the fields this library does not know are
 * zero, so ignoring them changes nothing. TL_EINVAL otherwise.
 */
#ifndef TL_CORE_OPTIONS_H
#define TL_CORE_OPTIONS_H

#include <stddef.h>

int tl__copy_options(void *dst, size_t dst_size, const void *src);

#endif
