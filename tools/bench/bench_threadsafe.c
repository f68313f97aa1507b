/*
 * Cross-thread wake-ups, measured as micro/uv_async.c measures libuv's
 * uv_async_send: two threads, each running a loop of its own. The main
 * thread's callback wakes the peer loop with call_soon_threadsafe, the peer's
 * callback wakes the main loop back, and so on for N round trips (default
 * 100,000, micro.sh's figure). One wake-up is in flight at a time, so each
 * costs a real wake-up of a sleeping loop.
 *
 * "per_s" is wake-ups per second (two per round trip, wall time), uv_async's
 * wakeups_per_s. Placements, as uv_async names them: "unpinned" (the
 * scheduler decides), "cpu0+cpu1" (--pin) and "same-cpu" (both on CPU 0; run
 * with a fifth of the round trips, as micro.sh does). cpu_s is the whole
 * process (both threads), user + sys.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <tulip.h>

#include "bench.h"

typedef struct pingpong {
    tl_loop_t *main_loop;
    _Atomic(tl_loop_t *) peer_loop; /* published by the peer thread */
    atomic_int stop;
    uint64_t roundtrips, target, peer_calls;
    int peer_cpu; /* -1: not pinned */
    int failed;
} pingpong_t;

static void pin_self(int cpu) {
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void on_main(void *ctx);

static void on_peer(void *ctx) {
    pingpong_t *p = ctx;
    tl_loop_t *peer = atomic_load(&p->peer_loop);
    if (atomic_load_explicit(&p->stop, memory_order_acquire)) {
        tl_loop_stop(peer);
        return;
    }
    p->peer_calls++;
    if (tl_loop_call_soon_threadsafe(p->main_loop, on_main, p) != 0) {
        p->failed = 1; /* the main loop would wait forever: give up */
        tl_loop_stop(peer);
    }
}

static void on_main(void *ctx) {
    pingpong_t *p = ctx;
    tl_loop_t *peer = atomic_load(&p->peer_loop);
    if (++p->roundtrips >= p->target)
        atomic_store_explicit(&p->stop, 1, memory_order_release);
    if (tl_loop_call_soon_threadsafe(peer, on_peer, p) != 0)
        p->failed = 1;
    if (p->roundtrips >= p->target || p->failed)
        tl_loop_stop(p->main_loop);
}

static void *peer_main(void *arg) {
    pingpong_t *p = arg;
    tl_loop_t *loop;
    pin_self(p->peer_cpu);
    if (tl_loop_new(NULL, &loop) != 0) {
        p->failed = 1;
        atomic_store(&p->peer_loop, (tl_loop_t *)NULL);
        atomic_store_explicit(&p->stop, 1, memory_order_release);
        return NULL;
    }
    atomic_store(&p->peer_loop, loop);
    tl_loop_run_forever(loop);
    tl_loop_close(loop);
    tl_loop_unref(loop);
    return NULL;
}

/* placement: "unpinned", "cpu0+cpu1" or "same-cpu". */
static int pingpong_once(long n, const char *placement) {
    pingpong_t p = {.target = (uint64_t)n, .peer_cpu = -1};
    int main_cpu = -1;
    if (strcmp(placement, "cpu0+cpu1") == 0)
        main_cpu = 0, p.peer_cpu = 1;
    else if (strcmp(placement, "same-cpu") == 0)
        main_cpu = 0, p.peer_cpu = 0;
    atomic_init(&p.peer_loop, NULL);
    atomic_init(&p.stop, 0);

    /* Pin the main thread for this run only; restore its mask afterwards. */
    cpu_set_t saved;
    pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);
    pin_self(main_cpu);
    pthread_t th;
    if (tl_loop_new(NULL, &p.main_loop) != 0)
        p.main_loop = NULL;
    if (p.main_loop == NULL || pthread_create(&th, NULL, peer_main, &p) != 0) {
        fprintf(stderr, "threadsafe: cannot start\n");
        if (p.main_loop)
            tl_loop_unref(p.main_loop);
        pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
        return 1;
    }
    while (atomic_load(&p.peer_loop) == NULL && !atomic_load(&p.stop))
        sched_yield();
    tl_loop_t *peer = atomic_load(&p.peer_loop);

    bench_clock_t t0 = bench_clock_now();
    int rc = peer ? tl_loop_call_soon_threadsafe(peer, on_peer, &p) : TL_ENOMEM;
    if (rc == 0)
        rc = tl_loop_run_forever(p.main_loop);
    bench_clock_t t1 = bench_clock_now();
    pthread_join(th, NULL);
    tl_loop_close(p.main_loop);
    tl_loop_unref(p.main_loop);
    pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);

    double secs = bench_wall_s(&t0, &t1), wakeups = 2.0 * (double)p.roundtrips;
    printf("{\"bench\":\"threadsafe\",\"placement\":\"%s\",\"roundtrips\":%llu,"
           "\"per_s\":%.0f,\"peer_wakeups\":%llu,\"seconds\":%.3f,"
           "\"wakeups_per_s\":%.0f,\"ns_per_wakeup\":%.1f,\"roundtrip_us\":%.2f,"
           "\"cpu_s\":%.3f,\"user_s\":%.3f,\"clock\":\"wall\"}\n",
           placement, (unsigned long long)p.roundtrips, wakeups / secs,
           (unsigned long long)p.peer_calls, secs, wakeups / secs,
           secs * 1e9 / wakeups, secs * 1e6 / (double)p.roundtrips,
           bench_cpu_s(&t0, &t1), bench_user_s(&t0, &t1));
    fflush(stdout);
    return rc != 0 || p.failed || p.roundtrips != p.target;
}

int bench_threadsafe(const bench_opts_t *o) {
    long n = o->n ? o->n : 100000;
    const char *pl = o->placement;
    int failed = 0;
    if (pl == NULL || strcmp(pl, "unpinned") == 0)
        failed |= pingpong_once(n, "unpinned");
    if (pl == NULL || strcmp(pl, "pin") == 0)
        failed |= pingpong_once(n, "cpu0+cpu1");
    if (pl == NULL || strcmp(pl, "same-cpu") == 0)
        failed |= pingpong_once(n / 5 > 0 ? n / 5 : 1, "same-cpu");
    return failed;
}
