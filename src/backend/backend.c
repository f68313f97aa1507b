/* The registry of built-in backends and the default choice. */
#include "tulip/backend.h"

#include <string.h>

#include "../core/platform.h"

const tl_backend_ops_t *tl_backend_by_name(const char *name) {
    if (name == NULL)
        return NULL;
    if (strcmp(name, "epoll") == 0)
        return tl_backend_epoll();
    if (strcmp(name, "poll") == 0)
        return tl_backend_poll();
    return NULL;
}

const tl_backend_ops_t *tl_backend_default(void) {
    const tl_backend_ops_t *b = tl_backend_by_name(tl__getenv("TL_BACKEND"));
    if (b == NULL)
        b = tl_backend_epoll();
    if (b == NULL)
        b = tl_backend_poll();
    return b;
}
