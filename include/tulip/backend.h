/*
 * tulip/backend.h - the poller behind a loop, as a small public ops table.
 *
 * A readiness backend tells the loop which descriptors are readable or
 * writable. tulip ships epoll (the default on Linux) and poll; the table is
 * public so an application can plug in a poller of its own through
 * tl_loop_options_t.backend. One backend instance belongs to one loop and is
 * only called from that loop's thread, except wakeup().
 */
#ifndef TULIP_BACKEND_H
#define TULIP_BACKEND_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A descriptor as the platform names it: an int fd on POSIX, a SOCKET on
 * Windows. */
#if defined(_WIN32)
typedef uintptr_t tl_fd_t;
#else
typedef int tl_fd_t;
#endif

/* Interest and readiness bits. An error or hang-up on a descriptor is
 * reported as both TL_READABLE and TL_WRITABLE (masked by the interest), so
 * the owner's next read or write sees the error, as asyncio does. */
enum {
    TL_READABLE = 1,
    TL_WRITABLE = 2
};

typedef struct tl_backend_event {
    tl_fd_t fd;
    unsigned events; /* TL_READABLE | TL_WRITABLE */
} tl_backend_event_t;

typedef struct tl_backend_ops {
    size_t size; /* sizeof(tl_backend_ops_t) */
    const char *name;
    /* Make an instance; *state is its handle for every other call.
     * Returns 0 or a TL_E* code (nothing to undo on failure). */
    int (*create)(void **state);
    /* Release everything create() made. Never fails. */
    void (*close)(void *state);
    /* Set the interest in `fd` to exactly `events` (non-zero). `prev` is the
     * interest the loop last set (0 if none), so a backend needs no table to
     * tell a new registration from a change. */
    int (*watch)(void *state, tl_fd_t fd, unsigned prev, unsigned events);
    /* Drop all interest in `fd`; `prev` is the current interest. */
    int (*unwatch)(void *state, tl_fd_t fd, unsigned prev);
    /* Wait up to timeout_ns (-1: no limit, 0: do not block) and store at
     * most `max` events. Returns their number, 0 on timeout, on a wakeup or
     * on an interrupted wait, or a TL_E* code. A wakeup is consumed here and
     * never reported as an event. */
    int (*poll)(void *state, int64_t timeout_ns, tl_backend_event_t *events,
                int max);
    /* Make a current or the next poll() return soon. Called from any
     * thread and from signal handlers: it must be thread-safe and
     * async-signal-safe. Several calls may be folded into one wakeup. */
    int (*wakeup)(void *state);
} tl_backend_ops_t;

/* The built-in backends (NULL where the platform has none). */
TL_API const tl_backend_ops_t *tl_backend_epoll(void);
TL_API const tl_backend_ops_t *tl_backend_poll(void);
/* A built-in backend by name ("epoll", "poll"); NULL if there is none. */
TL_API const tl_backend_ops_t *tl_backend_by_name(const char *name);
/* The one a loop gets without options: $TL_BACKEND if it names a built-in
 * backend, else the platform's best. */
TL_API const tl_backend_ops_t *tl_backend_default(void);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_BACKEND_H */
