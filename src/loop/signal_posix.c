/*
 * Signals delivered to loops. One sigaction per signal for the whole
 * process, installed while at least one loop handles it. Each attached loop
 * has a slot in a list the handler walks without locks; `walkers` counts
 * handlers in the middle of a walk, so detach unlinks a slot, waits until
 * no walk that could still reach it is running, then frees it (a slot must
 * not outlive its loop: it came from tulip's allocator).
 */
#define _GNU_SOURCE
#include "signal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "../core/alloc.h"
#include "tulip/core.h"

struct tl__sigslot {
    struct tl__sigslot *_Atomic next;
    _Atomic uint64_t wanted;
    _Atomic uint64_t pending;
    int (*wake)(void *);
    void *wake_state;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct tl__sigslot *_Atomic slots; /* changed under lock */
static atomic_int walkers;                 /* handlers walking `slots` */
static int users[TL__SIG_MAX + 1];                /* guarded by lock */
static struct sigaction saved[TL__SIG_MAX + 1];   /* guarded by lock */

static uint64_t bit(int signum) { return (uint64_t)1 << (signum - 1); }

static void on_signal(int signum) {
    int saved_errno = errno;
    uint64_t b = bit(signum);
    atomic_fetch_add(&walkers, 1);
    for (struct tl__sigslot *s = atomic_load(&slots); s; s = atomic_load(&s->next)) {
        if (atomic_load(&s->wanted) & b) {
            atomic_fetch_or(&s->pending, b);
            s->wake(s->wake_state);
        }
    }
    atomic_fetch_sub(&walkers, 1);
    errno = saved_errno;
}

int tl__sig_attach(tl__sigslot_t **out, int (*wake)(void *), void *wake_state) {
    struct tl__sigslot *s = tl__calloc(1, sizeof(*s));
    if (s == NULL)
        return TL_ENOMEM;
    s->wake = wake;
    s->wake_state = wake_state;
    pthread_mutex_lock(&lock);
    atomic_store(&s->next, atomic_load(&slots));
    atomic_store(&slots, s); /* published complete */
    pthread_mutex_unlock(&lock);
    *out = s;
    return 0;
}

static int catchable(int signum) {
    return signum >= 1 && signum <= TL__SIG_MAX && signum < NSIG &&
           signum != SIGKILL && signum != SIGSTOP;
}

int tl__sig_watch(tl__sigslot_t *s, int signum, int on) {
    if (!catchable(signum))
        return TL_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&lock);
    uint64_t b = bit(signum), had = atomic_load(&s->wanted) & b;
    if (on && !had) {
        if (users[signum] == 0) {
            struct sigaction sa;
            memset(&sa, 0, sizeof(sa));
            sa.sa_handler = on_signal;
            sa.sa_flags = SA_RESTART;
            sigfillset(&sa.sa_mask);
            if (sigaction(signum, &sa, &saved[signum]) < 0)
                rc = tl_translate_sys_error(errno);
        }
        if (rc == 0) {
            users[signum]++;
            atomic_fetch_or(&s->wanted, b);
        }
    } else if (!on && had) {
        atomic_fetch_and(&s->wanted, ~b);
        atomic_fetch_and(&s->pending, ~b);
        if (--users[signum] == 0)
            sigaction(signum, &saved[signum], NULL);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void tl__sig_detach(tl__sigslot_t *s) {
    for (int signum = 1; signum <= TL__SIG_MAX; signum++)
        if (atomic_load(&s->wanted) & bit(signum))
            tl__sig_watch(s, signum, 0);
    pthread_mutex_lock(&lock);
    struct tl__sigslot *_Atomic *link = &slots;
    while (atomic_load(link) != s)
        link = &atomic_load(link)->next;
    atomic_store(link, atomic_load(&s->next));
    pthread_mutex_unlock(&lock);
    /* A handler that starts from now on cannot reach s; wait out one that
     * started earlier (it may be about to call s->wake). */
    while (atomic_load(&walkers) != 0)
        sched_yield();
    tl__free(s);
}

uint64_t tl__sig_take(tl__sigslot_t *s) {
    return atomic_exchange(&s->pending, 0) & atomic_load(&s->wanted);
}

int tl__sig_any(tl__sigslot_t *s) {
    return atomic_load_explicit(&s->pending, memory_order_relaxed) != 0;
}
