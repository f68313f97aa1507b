/* The poll(2) backend: a dense pollfd array plus an fd -> slot index. */
#define _GNU_SOURCE
#include "tulip/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>

#include "../core/alloc.h"
#include "wakeup.h"

typedef struct poll_state {
    struct pollfd *fds; /* fds[0] is the wakeup descriptor */
    size_t n, cap;
    int *slot; /* slot[fd] = index in fds, or -1 */
    size_t nslot;
    size_t next; /* where the next scan of fds[1..] starts (fairness) */
    tl__wakeup_t wake;
} poll_state_t;

static int pl_create(void **out) {
    poll_state_t *s = tl__calloc(1, sizeof(*s));
    if (s == NULL)
        return TL_ENOMEM;
    int rc = tl__grow((void **)&s->fds, &s->cap, 1, sizeof(*s->fds));
    if (rc == 0)
        rc = tl__wakeup_open(&s->wake);
    if (rc) {
        tl__free(s->fds);
        tl__free(s);
        return rc;
    }
    s->fds[0] = (struct pollfd){.fd = s->wake.rfd, .events = POLLIN};
    s->n = 1;
    *out = s;
    return 0;
}

static void pl_close(void *state) {
    poll_state_t *s = state;
    tl__wakeup_close(&s->wake);
    tl__free(s->fds);
    tl__free(s->slot);
    tl__free(s);
}

static short to_poll(unsigned events) {
    return (short)(((events & TL_READABLE) ? POLLIN : 0) |
                   ((events & TL_WRITABLE) ? POLLOUT : 0));
}

static int pl_watch(void *state, tl_fd_t fd, unsigned prev, unsigned events) {
    poll_state_t *s = state;
    if (fd < 0)
        return TL_EBADF;
    (void)prev;
    int known = (size_t)fd < s->nslot && s->slot[fd] >= 0;
    /* poll() takes any number and reports POLLNVAL forever after; refuse a
     * descriptor that is not open now, as epoll_ctl does, and before the
     * index grows to the size the number asks for (2^31 ints for a huge
     * bogus fd). */
    if (!known && fcntl(fd, F_GETFD) < 0)
        return tl_translate_sys_error(errno);
    if ((size_t)fd >= s->nslot) {
        size_t old = s->nslot;
        if (tl__grow((void **)&s->slot, &s->nslot, (size_t)fd + 1, sizeof(int)))
            return TL_ENOMEM;
        for (size_t i = old; i < s->nslot; i++)
            s->slot[i] = -1;
    }
    int i = s->slot[fd];
    if (i < 0) {
        if (tl__grow((void **)&s->fds, &s->cap, s->n + 1, sizeof(*s->fds)))
            return TL_ENOMEM;
        i = (int)s->n++;
        s->slot[fd] = i;
        s->fds[i].fd = fd;
    }
    s->fds[i].events = to_poll(events);
    s->fds[i].revents = 0;
    return 0;
}

static int pl_unwatch(void *state, tl_fd_t fd, unsigned prev) {
    poll_state_t *s = state;
    (void)prev;
    if (fd < 0 || (size_t)fd >= s->nslot || s->slot[fd] < 0)
        return 0;
    int i = s->slot[fd];
    s->slot[fd] = -1;
    s->n--;
    if ((size_t)i != s->n) {
        s->fds[i] = s->fds[s->n];
        s->slot[s->fds[i].fd] = i;
    }
    return 0;
}

static int pl_poll(void *state, int64_t timeout_ns, tl_backend_event_t *out,
                   int max) {
    poll_state_t *s = state;
    if (max <= 0)
        return TL_EINVAL;
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    int n = ppoll(s->fds, (nfds_t)s->n, tsp, NULL);
    if (n < 0)
        return errno == EINTR ? 0 : tl_translate_sys_error(errno);
    int k = 0;
    if (s->fds[0].revents) {
        tl__wakeup_drain(&s->wake);
        n--;
    }
    /* With more ready descriptors than `max`, resume the scan where the
     * last full batch stopped; starting at fds[1] every time would starve
     * the later ones while the earlier stay ready (level-triggered). */
    size_t users = s->n - 1, start = s->next < users ? s->next : 0;
    for (size_t j = 0; j < users && n > 0; j++) {
        size_t i = 1 + (start + j) % users;
        short re = s->fds[i].revents;
        if (re == 0)
            continue;
        n--;
        unsigned got = 0;
        if (re & (POLLIN | POLLPRI))
            got |= TL_READABLE;
        if (re & POLLOUT)
            got |= TL_WRITABLE;
        if (re & (POLLERR | POLLHUP | POLLNVAL))
            got |= TL_READABLE | TL_WRITABLE;
        got &= ((s->fds[i].events & POLLIN) ? TL_READABLE : 0) |
               ((s->fds[i].events & POLLOUT) ? TL_WRITABLE : 0);
        if (got) {
            out[k].fd = s->fds[i].fd;
            out[k].events = got;
            if (++k == max) {
                s->next = (start + j + 1) % users;
                break;
            }
        }
    }
    return k;
}

static int pl_wakeup(void *state) {
    return tl__wakeup_signal(&((poll_state_t *)state)->wake);
}

static const tl_backend_ops_t poll_ops = {
    sizeof(tl_backend_ops_t), "poll", pl_create, pl_close, pl_watch,
    pl_unwatch, pl_poll, pl_wakeup,
};

const tl_backend_ops_t *tl_backend_poll(void) { return &poll_ops; }
