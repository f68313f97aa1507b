/* The epoll backend: level-triggered, one epoll instance per loop. */
#define _GNU_SOURCE
#include "tulip/backend.h"

#ifdef __linux__
#include <errno.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "wakeup.h"

#define WAKE_TAG UINT64_MAX
#define MAX_BATCH 1024

/* Whether epoll_pwait2 (nanosecond timeouts, Linux 5.11+) exists; learnt
 * once per process, so a kernel (or valgrind) without it is asked once. */
static atomic_int no_pwait2;

typedef struct epoll_state {
    int epfd;
    tl__wakeup_t wake;
    struct epoll_event ev[MAX_BATCH];
} epoll_state_t;

/* The interest travels with each registration, so reported errors can be
 * masked by it without a table. */
static uint64_t tag(int fd, unsigned events) {
    return (uint64_t)(uint32_t)fd | ((uint64_t)events << 32);
}

static uint32_t to_epoll(unsigned events) {
    return ((events & TL_READABLE) ? EPOLLIN : 0) |
           ((events & TL_WRITABLE) ? EPOLLOUT : 0);
}

static int ep_create(void **out) {
    epoll_state_t *s = tl__malloc(sizeof(*s));
    if (s == NULL)
        return TL_ENOMEM;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int rc = tl_translate_sys_error(errno);
        tl__free(s);
        return rc;
    }
    int rc = tl__wakeup_open(&s->wake);
    if (rc == 0) {
        /* Edge-triggered: every write is reported once, so the counter
         * needs no read to re-arm it (one syscall less per wakeup); it
         * would take 2^64 writes to fill. */
        struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.u64 = WAKE_TAG};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake.rfd, &e) < 0) {
            rc = tl_translate_sys_error(errno);
            tl__wakeup_close(&s->wake);
        }
    }
    if (rc) {
        close(s->epfd);
        tl__free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void ep_close(void *state) {
    epoll_state_t *s = state;
    tl__wakeup_close(&s->wake);
    close(s->epfd);
    tl__free(s);
}

static int ep_watch(void *state, tl_fd_t fd, unsigned prev, unsigned events) {
    epoll_state_t *s = state;
    struct epoll_event e = {.events = to_epoll(events), .data.u64 = tag(fd, events)};
    int op = prev ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(s->epfd, op, fd, &e) == 0)
        return 0;
    /* The fd was closed and reopened behind the loop's back: the old
     * registration died with it, so register afresh. */
    if (op == EPOLL_CTL_MOD && errno == ENOENT &&
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) == 0)
        return 0;
    return tl_translate_sys_error(errno);
}

static int ep_unwatch(void *state, tl_fd_t fd, unsigned prev) {
    epoll_state_t *s = state;
    (void)prev;
    struct epoll_event e = {0};
    if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, &e) == 0 || errno == ENOENT ||
        errno == EBADF)
        return 0; /* closing an fd already removed it */
    return tl_translate_sys_error(errno);
}

static int wait_events(epoll_state_t *s, int64_t timeout_ns, int max) {
    if (timeout_ns > 0 && !atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {(time_t)(timeout_ns / 1000000000),
                              (long)(timeout_ns % 1000000000)};
        int n = epoll_pwait2(s->epfd, s->ev, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store(&no_pwait2, 1);
    }
    int ms = -1;
    if (timeout_ns >= 0) /* round up: waking early would spin */
        ms = timeout_ns > (int64_t)INT32_MAX * 1000000 ? INT32_MAX
                                                       : (int)((timeout_ns + 999999) / 1000000);
    return epoll_wait(s->epfd, s->ev, max, ms);
}

static int ep_poll(void *state, int64_t timeout_ns, tl_backend_event_t *out,
                   int max) {
    epoll_state_t *s = state;
    if (max > MAX_BATCH)
        max = MAX_BATCH;
    if (max <= 0)
        return TL_EINVAL;
    int n = wait_events(s, timeout_ns, max);
    if (n < 0)
        return errno == EINTR ? 0 : tl_translate_sys_error(errno);
    int k = 0;
    for (int i = 0; i < n; i++) {
        uint64_t t = s->ev[i].data.u64;
        if (t == WAKE_TAG) {
            continue;
        }
        uint32_t e = s->ev[i].events;
        unsigned interest = (unsigned)(t >> 32), got = 0;
        if (e & (EPOLLIN | EPOLLPRI | EPOLLRDHUP))
            got |= TL_READABLE;
        if (e & EPOLLOUT)
            got |= TL_WRITABLE;
        if (e & (EPOLLERR | EPOLLHUP))
            got |= TL_READABLE | TL_WRITABLE;
        out[k].fd = (int)(uint32_t)t;
        out[k].events = got & interest;
        if (out[k].events)
            k++;
    }
    return k;
}

static int ep_wakeup(void *state) {
    return tl__wakeup_signal(&((epoll_state_t *)state)->wake);
}

static const tl_backend_ops_t epoll_ops = {
    sizeof(tl_backend_ops_t), "epoll", ep_create, ep_close, ep_watch,
    ep_unwatch, ep_poll, ep_wakeup,
};

const tl_backend_ops_t *tl_backend_epoll(void) { return &epoll_ops; }

#else
const tl_backend_ops_t *tl_backend_epoll(void) { return NULL; }
#endif
