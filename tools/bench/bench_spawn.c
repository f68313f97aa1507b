/*
 * spawn: asyncio's create_subprocess_exec + wait of 1000 /bin/true (--n),
 * 50 at a time: 50 worker tasks each take the next index until all are
 * spawned, each child inheriting the standard streams (asyncio's default,
 * so tools/bench/spawn_asyncio.py does the same work). Wall clock, the
 * median of 3 runs: {"bench":"spawn","processes":N,"per_s":...}.
 */
#include <stdio.h>

#include <tulip.h>

#include "bench.h"

#define CONCURRENCY 50

static struct {
    long n, next, done, failed;
} run;

static int worker(void *arg, void **result) {
    (void)arg;
    (void)result;
    const char *argv[] = {"/bin/true", NULL};
    tl_subprocess_options_t o = {.size = sizeof o};
    o.stdio[0] = o.stdio[1] = o.stdio[2] = TL_PROC_INHERIT;
    while (run.next < run.n) {
        run.next++;
        tl_process_t *p;
        int code = -1;
        if (tl_process_exec(argv, &o, &p) != 0) {
            run.failed++;
            continue;
        }
        if (tl_process_wait(p, &code) != 0 || code != 0)
            run.failed++;
        run.done++;
        tl_process_free(p);
    }
    return 0;
}

static int bench_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    tl_loop_t *loop = tl_future_get_loop(tl_task_future(tl_task_current()));
    tl_task_t *t[CONCURRENCY];
    int nt = 0;
    for (int i = 0; i < CONCURRENCY; i++)
        if (tl_task_spawn(loop, worker, NULL, NULL, &t[nt]) == 0)
            nt++;
    for (int i = 0; i < nt; i++) {
        tl_await(tl_task_future(t[i]), NULL);
        tl_task_unref(t[i]);
    }
    return nt == CONCURRENCY ? 0 : TL_ENOMEM;
}

int bench_spawn(const bench_opts_t *o) {
    long n = o->n > 0 ? o->n : 1000;
    double per_s[3];
    int ok = 1;
    for (int k = 0; k < 3; k++) {
        run.n = n;
        run.next = run.done = run.failed = 0;
        bench_clock_t a = bench_clock_now();
        int rc = tl_run(bench_main, NULL, NULL, NULL);
        bench_clock_t b = bench_clock_now();
        if (rc != 0 || run.failed || run.done != n) {
            fprintf(stderr, "spawn: rc %d, %ld failed, %ld done\n", rc,
                    run.failed, run.done);
            ok = 0;
        }
        per_s[k] = (double)n / bench_wall_s(&a, &b);
    }
    printf("{\"bench\":\"spawn\",\"processes\":%ld,\"concurrency\":%d,"
           "\"per_s\":%.0f}\n",
           n, CONCURRENCY, bench_median(per_s, 3));
    return ok ? 0 : 1;
}
