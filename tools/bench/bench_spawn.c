/*
 * spawn: asyncio's create_subprocess_exec + wait of 1000 /bin/true (--n),
 * 50 at a time: 50 worker tasks each take the next index until all are
 * spawned, each child inheriting the standard streams (asyncio's default,
 * so tools/bench/spawn_asyncio.py does the same work). Wall clock, the
 * median of 3 runs: {"bench":"spawn","processes":N,"per_s":...}.
 *
 * Beside it, the same work without any loop, as the kernel's floor: a
 * plain C loop of vfork + execve + waitpid(-1), 50 children at a time
 * ("raw_vfork_per_s", median of 3, measured in between tulip's runs so
 * both see the same machine load). And CPU time per child (getrusage):
 * the parent's ("cpu_us_per_spawn": tulip's own cost, the part a library
 * can change) and the children's ("child_cpu_us_per_spawn": exec,
 * dynamic loading and exit of /bin/true, which no spawner avoids).
 */
#define _GNU_SOURCE
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
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

extern char **environ;

/* vfork + exec of /bin/true: its own function, so the caller's locals
 * live in no frame the child touches. */
__attribute__((noinline)) static pid_t start_true(void) {
    static char *argv[] = {"/bin/true", NULL};
    pid_t pid = vfork();
    if (pid == 0) {
        execve(argv[0], argv, environ);
        _exit(127);
    }
    return pid;
}

/* The floor: n children of /bin/true, 50 at a time, no loop at all. */
static double raw_vfork_per_s(long n) {
    long started = 0, running = 0, done = 0;
    bench_clock_t a = bench_clock_now();
    while (done < n) {
        while (running < CONCURRENCY && started < n) {
            pid_t pid = start_true();
            if (pid < 0)
                return -1;
            started++;
            running++;
        }
        int st;
        if (waitpid(-1, &st, 0) > 0) {
            running--;
            done++;
        }
    }
    bench_clock_t b = bench_clock_now();
    return (double)n / bench_wall_s(&a, &b);
}

static double children_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int bench_spawn(const bench_opts_t *o) {
    long n = o->n > 0 ? o->n : 1000;
    double per_s[3], raw[3], cpu_us[3], child_us[3];
    int ok = 1;
    for (int k = 0; k < 3; k++) {
        run.n = n;
        run.next = run.done = run.failed = 0;
        double c0 = children_cpu_s();
        bench_clock_t a = bench_clock_now();
        int rc = tl_run(bench_main, NULL, NULL, NULL);
        bench_clock_t b = bench_clock_now();
        if (rc != 0 || run.failed || run.done != n) {
            fprintf(stderr, "spawn: rc %d, %ld failed, %ld done\n", rc,
                    run.failed, run.done);
            ok = 0;
        }
        per_s[k] = (double)n / bench_wall_s(&a, &b);
        cpu_us[k] = bench_cpu_s(&a, &b) * 1e6 / (double)n;
        child_us[k] = (children_cpu_s() - c0) * 1e6 / (double)n;
        raw[k] = raw_vfork_per_s(n);
    }
    printf("{\"bench\":\"spawn\",\"processes\":%ld,\"concurrency\":%d,"
           "\"per_s\":%.0f,\"runs_per_s\":[%.0f,%.0f,%.0f],"
           "\"raw_vfork_per_s\":%.0f,\"cpu_us_per_spawn\":%.0f,"
           "\"child_cpu_us_per_spawn\":%.0f,\"clock\":\"wall, median of 3\"}\n",
           n, CONCURRENCY, bench_median(per_s, 3), per_s[0], per_s[1],
           per_s[2], bench_median(raw, 3), bench_median(cpu_us, 3),
           bench_median(child_us, 3));
    return ok ? 0 : 1;
}
