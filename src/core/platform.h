/*
 * The small platform file: what the portable modules (loop, future, and
 * later task and sync) need from the OS, without naming an OS header.
 * POSIX: platform_posix.c. Windows: win/platform_win.c.
 */
#ifndef TL_CORE_PLATFORM_H
#define TL_CORE_PLATFORM_H

#include <stdint.h>

#if defined(_MSC_VER) && !defined(__clang__)
#  define TL__THREAD_LOCAL __declspec(thread)
#else
#  define TL__THREAD_LOCAL _Thread_local
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define TL__COLD __attribute__((noinline, cold))
#  define TL__LIKELY(x) __builtin_expect(!!(x), 1)
#  define TL__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#  define TL__COLD
#  define TL__LIKELY(x) (x)
#  define TL__UNLIKELY(x) (x)
#endif

/* A cheap identity for the calling thread: the address of a thread-local
 * byte. Distinct for threads alive at the same time. The initial-exec
 * model makes it one load off the thread pointer: in -fPIC code the
 * default model calls __tls_get_addr, and every loop/transport entry point
 * checks the thread (one byte fits the static TLS surplus glibc keeps for
 * libraries that are dlopen'ed, as a language binding's is). */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
extern TL__THREAD_LOCAL char tl__thread_marker
    __attribute__((tls_model("initial-exec")));
#else
extern TL__THREAD_LOCAL char tl__thread_marker;
#endif
static inline uintptr_t tl__thread_self(void) {
    return (uintptr_t)&tl__thread_marker;
}

/* Monotonic nanoseconds (tl_now_ns). */
uint64_t tl__time_ns(void);

/* A plain mutex in storage the portable code can embed. */
typedef struct tl__mutex {
    _Alignas(16) unsigned char opaque[64];
} tl__mutex_t;
int tl__mutex_init(tl__mutex_t *m);
void tl__mutex_destroy(tl__mutex_t *m);
void tl__mutex_lock(tl__mutex_t *m);
void tl__mutex_unlock(tl__mutex_t *m);

/* A condition variable to go with tl__mutex_t. wait may wake spuriously. */
typedef struct tl__cond {
    _Alignas(16) unsigned char opaque[64];
} tl__cond_t;
int tl__cond_init(tl__cond_t *c);
void tl__cond_destroy(tl__cond_t *c);
void tl__cond_wait(tl__cond_t *c, tl__mutex_t *m);
void tl__cond_signal(tl__cond_t *c);
void tl__cond_broadcast(tl__cond_t *c);

/* A joinable thread running fn(arg). create returns 0 or a TL_E* code. */
typedef struct tl__thread {
    _Alignas(16) unsigned char opaque[16];
} tl__thread_t;
int tl__thread_create(tl__thread_t *t, void *(*fn)(void *), void *arg);
void tl__thread_join(tl__thread_t *t);
/* Online CPUs (at least 1). */
unsigned tl__cpu_count(void);
/* Sleep about ns nanoseconds (for back-off). */
void tl__sleep_ns(uint64_t ns);

/* Read an environment variable (NULL if unset). */
const char *tl__getenv(const char *name);

#endif
