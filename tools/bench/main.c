/*
 * tulip-bench - tulip's micro benchmarks, one JSON line per run on stdout.
 *
 *   tulip-bench [NAME...] [--n N] [--max-ms M] [--pattern random|step]
 *               [--placement unpinned|pin|same-cpu]
 *
 * NAMEs: call_soon, timers, threadsafe, switch, tasks, tasks_rss,
 * lock_handoff, queue_handoff, executor, spawn, tls_raw_handshake,
 * tls_raw_bulk, tls_handshake, tls_bulk; none means all of them. Each mirrors a
 * program of the reference harness (/work/shared/bench) so the figures can
 * sit side by side with it, or is one of the tasks issue's figures:
 *
 *   call_soon   micro/asyncio_callsoon.py's call_soon chain (callbacks/s,
 *               median of 3 runs on fresh loops)
 *   timers      micro/uv_timers.c: 1M timers, random [0,1000] ms and step;
 *               the figure is CPU time per timer (start + dispatch)
 *   threadsafe  micro/uv_async.c: call_soon_threadsafe ping-pong between
 *               two loops on two threads (wake-ups/s), three placements
 *   switch      micro/ctxswitch.c: one switch of the coroutine layer
 *               (src/task/coro.h) in ns, and its coroutine life cycle;
 *               "impl" is the build's (make CORO=asm|ucontext)
 *   tasks       micro/asyncio_callsoon.py's tasks figure: 1M no-op tasks
 *               spawned, run and finished in batches of 1000 (tasks/s)
 *   tasks_rss   peak RSS with 100k and 1M tasks asleep at once, each size
 *               in a fresh child process (the 1M one needs ~4.5 GiB of
 *               memory and, in a VM, half a minute of page faults)
 *   lock_handoff, queue_handoff
 *               a Lock passed back and forth between two tasks, and items
 *               through a Queue of maxsize 1 from a producer to a consumer
 *               task (per second)
 *
 *   executor    micro/uv_threadpool.c: 1M no-op jobs queued at once on a
 *               4-thread executor, each completion counted by a done
 *               callback (jobs/s)
 *
 *   spawn       spawn + wait of 1000 /bin/true, 50 at a time, with the
 *               task API (tl_process_exec, tl_process_wait) (processes/s;
 *               tools/bench/spawn_asyncio.py is asyncio's side)
 *
 *   tls_raw_handshake, tls_raw_bulk
 *               BoringSSL alone, a client and a server SSL joined by a
 *               memory BIO pair: TLS 1.3 handshakes/s (ECDSA P-256) and
 *               MiB/s through an in-memory echo, the limit for the next two
 *   tls_handshake, tls_bulk
 *               the same through tulip on loopback (one loop, one thread):
 *               connect + handshake + close per second, and MiB/s through a
 *               TLS echo beside the same load over plain TCP
 *
 * --n sets the size of every selected benchmark (callbacks, timers, round
 * trips, switches, tasks, hand-offs or items; same-cpu runs a fifth of it,
 * as micro.sh does; tasks_rss then runs that one size). Pin single-threaded
 * runs yourself as micro.sh does: taskset -c 1 tulip-bench call_soon timers.
 * Exit status: 0, 1 if a benchmark's own check failed, 2 for bad arguments.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <tulip.h>

#include "bench.h"

static const struct {
    const char *name;
    int (*run)(const bench_opts_t *o);
} benches[] = {
    {"call_soon", bench_call_soon},
    {"timers", bench_timers},
    {"threadsafe", bench_threadsafe},
    {"switch", bench_switch},
    {"tasks", bench_tasks},
    {"tasks_rss", bench_tasks_rss},
    {"lock_handoff", bench_lock_handoff},
    {"queue_handoff", bench_queue_handoff},
    {"executor", bench_executor},
    {"spawn", bench_spawn},
    {"tls_raw_handshake", bench_tls_raw_handshake},
    {"tls_raw_bulk", bench_tls_raw_bulk},
    {"tls_handshake", bench_tls_handshake},
    {"tls_bulk", bench_tls_bulk},
};
enum { NBENCH = sizeof benches / sizeof benches[0] };

bench_clock_t bench_clock_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    bench_clock_t c = {
        tl_now_ns(),
        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
    };
    return c;
}

double bench_wall_s(const bench_clock_t *a, const bench_clock_t *b) {
    return (double)(b->wall_ns - a->wall_ns) / 1e9;
}

double bench_user_s(const bench_clock_t *a, const bench_clock_t *b) {
    return b->user_s - a->user_s;
}

double bench_cpu_s(const bench_clock_t *a, const bench_clock_t *b) {
    return (b->user_s + b->sys_s) - (a->user_s + a->sys_s);
}

double bench_median(const double *v, int k) {
    double s[16];
    if (k < 1 || k > 16)
        return -1;
    for (int i = 0; i < k; i++) { /* insertion sort of a copy: k is small */
        int j = i;
        for (; j > 0 && s[j - 1] > v[i]; j--)
            s[j] = s[j - 1];
        s[j] = v[i];
    }
    return k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2;
}

static void usage(FILE *f) {
    fprintf(f, "usage: tulip-bench [NAME...] [--n N] [--max-ms M] "
               "[--pattern random|step] [--placement unpinned|pin|same-cpu]\n"
               "names:");
    for (int i = 0; i < NBENCH; i++)
        fprintf(f, " %s", benches[i].name);
    fprintf(f, "\n");
}

/* A positive count from "--opt N" or "--opt=N"; -1 if malformed. */
static long count_arg(const char *s) {
    char *end;
    long v = s ? strtol(s, &end, 10) : -1;
    return (s == NULL || *s == '\0' || *end != '\0' || v < 0) ? -1 : v;
}

int main(int argc, char **argv) {
    bench_opts_t o = {0, -1, NULL, NULL};
    int selected[NBENCH] = {0}, any = 0;

    if (argc == 3 && strcmp(argv[1], BENCH_TASKS_RSS_CHILD) == 0)
        return bench_tasks_rss_child(count_arg(argv[2])) != 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (strncmp(a, "--", 2) == 0) {
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            if (len == 6 && strncmp(a, "--help", 6) == 0) {
                usage(stdout);
                return 0;
            }
            val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (len == 3 && strncmp(a, "--n", 3) == 0 && count_arg(val) > 0) {
                o.n = count_arg(val);
            } else if (len == 8 && strncmp(a, "--max-ms", 8) == 0 && count_arg(val) >= 0) {
                o.max_ms = count_arg(val);
            } else if (len == 9 && strncmp(a, "--pattern", 9) == 0 && val &&
                       (!strcmp(val, "random") || !strcmp(val, "step"))) {
                o.pattern = val;
            } else if (len == 11 && strncmp(a, "--placement", 11) == 0 && val &&
                       (!strcmp(val, "unpinned") || !strcmp(val, "pin") ||
                        !strcmp(val, "same-cpu"))) {
                o.placement = val;
            } else {
                fprintf(stderr, "tulip-bench: bad option or value: %s\n", a);
                usage(stderr);
                return 2;
            }
            continue;
        }
        int k = 0;
        while (k < NBENCH && strcmp(a, benches[k].name) != 0)
            k++;
        if (k == NBENCH) {
            fprintf(stderr, "tulip-bench: unknown benchmark '%s'\n", a);
            usage(stderr);
            return 2;
        }
        selected[k] = any = 1;
    }

    int failed = 0;
    for (int k = 0; k < NBENCH; k++)
        if (!any || selected[k])
            failed |= benches[k].run(&o) != 0;
    return failed;
}
