/* POSIX side of the platform file: clock, mutex, condition variable,
 * threads, errno translation. */
#define _GNU_SOURCE
#include "platform.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tulip/core.h"

TL__THREAD_LOCAL char tl__thread_marker;

_Static_assert(sizeof(pthread_mutex_t) <= sizeof(tl__mutex_t),
               "tl__mutex_t too small for pthread_mutex_t");

uint64_t tl__time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t tl_now_ns(void) { return tl__time_ns(); }

int tl__mutex_init(tl__mutex_t *m) {
    int rc = pthread_mutex_init((pthread_mutex_t *)(void *)m->opaque, NULL);
    return rc ? tl_translate_sys_error(rc) : 0;
}
void tl__mutex_destroy(tl__mutex_t *m) {
    pthread_mutex_destroy((pthread_mutex_t *)(void *)m->opaque);
}
void tl__mutex_lock(tl__mutex_t *m) {
    pthread_mutex_lock((pthread_mutex_t *)(void *)m->opaque);
}
void tl__mutex_unlock(tl__mutex_t *m) {
    pthread_mutex_unlock((pthread_mutex_t *)(void *)m->opaque);
}

_Static_assert(sizeof(pthread_cond_t) <= sizeof(tl__cond_t),
               "tl__cond_t too small for pthread_cond_t");
_Static_assert(sizeof(pthread_t) <= sizeof(tl__thread_t),
               "tl__thread_t too small for pthread_t");

#define COND(c) ((pthread_cond_t *)(void *)(c)->opaque)
#define MUTEX(m) ((pthread_mutex_t *)(void *)(m)->opaque)

int tl__cond_init(tl__cond_t *c) {
    int rc = pthread_cond_init(COND(c), NULL);
    return rc ? tl_translate_sys_error(rc) : 0;
}
void tl__cond_destroy(tl__cond_t *c) { pthread_cond_destroy(COND(c)); }
void tl__cond_wait(tl__cond_t *c, tl__mutex_t *m) {
    pthread_cond_wait(COND(c), MUTEX(m));
}
void tl__cond_signal(tl__cond_t *c) { pthread_cond_signal(COND(c)); }
void tl__cond_broadcast(tl__cond_t *c) { pthread_cond_broadcast(COND(c)); }

int tl__thread_create(tl__thread_t *t, void *(*fn)(void *), void *arg) {
    int rc = pthread_create((pthread_t *)(void *)t->opaque, NULL, fn, arg);
    return rc ? tl_translate_sys_error(rc) : 0;
}
void tl__thread_join(tl__thread_t *t) {
    pthread_join(*(pthread_t *)(void *)t->opaque, NULL);
}

unsigned tl__cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

void tl__sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

const char *tl__getenv(const char *name) { return getenv(name); }

int tl_translate_sys_error(int e) {
    if (e < 0)
        e = -e;
    switch (e) {
    case 0: return 0;
    case EPERM: return TL_EPERM;
    case ENOENT: return TL_ENOENT;
    case ESRCH: return TL_ESRCH;
    case EINTR: return TL_EINTR;
    case EIO: return TL_EIO;
    case ENXIO: return TL_ENXIO;
    case E2BIG: return TL_E2BIG;
    case EBADF: return TL_EBADF;
    case ECHILD: return TL_ECHILD;
    case EAGAIN: return TL_EAGAIN;
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK: return TL_EAGAIN;
#endif
    case ENOMEM: return TL_ENOMEM;
    case EACCES: return TL_EACCES;
    case EFAULT: return TL_EFAULT;
    case EBUSY: return TL_EBUSY;
    case EEXIST: return TL_EEXIST;
    case EXDEV: return TL_EXDEV;
    case ENODEV: return TL_ENODEV;
    case ENOTDIR: return TL_ENOTDIR;
    case EISDIR: return TL_EISDIR;
    case EINVAL: return TL_EINVAL;
    case ENFILE: return TL_ENFILE;
    case EMFILE: return TL_EMFILE;
    case ENOTTY: return TL_ENOTTY;
    case EFBIG: return TL_EFBIG;
    case ENOSPC: return TL_ENOSPC;
    case ESPIPE: return TL_ESPIPE;
    case EROFS: return TL_EROFS;
    case EMLINK: return TL_EMLINK;
    case EPIPE: return TL_EPIPE;
    case ERANGE: return TL_ERANGE;
    case ENAMETOOLONG: return TL_ENAMETOOLONG;
    case ENOSYS: return TL_ENOSYS;
    case ENOTEMPTY: return TL_ENOTEMPTY;
    case ELOOP: return TL_ELOOP;
    case ENOTSOCK: return TL_ENOTSOCK;
    case EDESTADDRREQ: return TL_EDESTADDRREQ;
    case EMSGSIZE: return TL_EMSGSIZE;
    case EPROTOTYPE: return TL_EPROTOTYPE;
    case ENOPROTOOPT: return TL_ENOPROTOOPT;
    case EPROTONOSUPPORT: return TL_EPROTONOSUPPORT;
    case ENOTSUP: return TL_ENOTSUP;
#if EOPNOTSUPP != ENOTSUP
    case EOPNOTSUPP: return TL_ENOTSUP;
#endif
    case EAFNOSUPPORT: return TL_EAFNOSUPPORT;
    case EADDRINUSE: return TL_EADDRINUSE;
    case EADDRNOTAVAIL: return TL_EADDRNOTAVAIL;
    case ENETDOWN: return TL_ENETDOWN;
    case ENETUNREACH: return TL_ENETUNREACH;
    case ECONNABORTED: return TL_ECONNABORTED;
    case ECONNRESET: return TL_ECONNRESET;
    case ENOBUFS: return TL_ENOBUFS;
    case EISCONN: return TL_EISCONN;
    case ENOTCONN: return TL_ENOTCONN;
    case ESHUTDOWN: return TL_ESHUTDOWN;
    case ETIMEDOUT: return TL_ETIMEDOUT;
    case ECONNREFUSED: return TL_ECONNREFUSED;
    case EHOSTUNREACH: return TL_EHOSTUNREACH;
    case EALREADY: return TL_EALREADY;
    case EINPROGRESS: return TL_EINPROGRESS;
    case ECANCELED: return TL_ECANCELLED;
    default: return TL_EUNKNOWN;
    }
}
