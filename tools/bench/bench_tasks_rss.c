/*
 * Memory of many sleeping tasks: N tasks (100k and 1M, or --n) that each
 * sleep in tl_sleep(1 hour) all at once, and the peak RSS of the process
 * (VmHWM of /proc/self/status, which getrusage's ru_maxrss also reports).
 * Each size runs in a fresh process (tulip-bench re-executes itself with a
 * hidden option) so the peaks of the sizes do not mix; the parent only
 * waits for it. Tasks use the default stack (64 KiB, lazily committed).
 *
 * The child spawns the N tasks, runs one loop iteration (every task takes
 * its first step and goes to sleep), checks that all N sleep, reads its
 * memory figures, then closes the loop, which winds every sleeper down
 * (its tl_sleep returns TL_ECANCELLED). rss_mib is the peak of the whole
 * process, the bench's own few MiB included; bytes_per_task is
 * (peak - the RSS before spawning) / N.
 *
 * Guard pages: the stack pool guards each stack with MADV_GUARD_INSTALL
 * where the kernel has it (every stack), otherwise with mprotect, up to a
 * quarter of vm.max_map_count per process (the rest get none; see
 * src/task/coro.h). The line says how many stacks got which kind (from the
 * pool's own counters, read through the internal headers), how many
 * mappings the process had at the peak, and vm.max_map_count before and
 * after: the benchmark never changes a sysctl. TL_STACK_GUARD=mprotect in
 * the environment forces the mprotect way (it reaches the child).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tulip.h>

#include "../../src/loop/loop_int.h"
#include "../../src/task/stack.h"
#include "../../src/task/task_int.h"
#include "bench.h"

#define SLEEP_NS ((int64_t)3600 * 1000000000)

typedef struct sleepers {
    long started, woke, cancelled;
} sleepers_t;

static int sleeper(void *arg, void **result) {
    sleepers_t *s = arg;
    *result = NULL;
    s->started++;
    int rc = tl_sleep(SLEEP_NS);
    s->woke++;
    if (rc == TL_ECANCELLED)
        s->cancelled++;
    return 0;
}

/* A "Vm...:  N kB" field of /proc/self/status in KiB, or -1. */
static long status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    size_t len = strlen(field);
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            v = strtol(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static long count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static long max_map_count(void) {
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* The loop's stack pool counters (internal: tasks keep their per-loop state
 * in the loop's task extension slot). */
static void pool_stats(tl_loop_t *loop, tl__stack_stats_t *st) {
    const tl__task_loop_t *s = loop->ext[TL__EXT_TASK].data;
    memset(st, 0, sizeof *st);
    if (s)
        tl__stack_pool_stats(s->pool, st);
}

int bench_tasks_rss_child(long n) {
    long maps_before = max_map_count();
    long rss0 = status_kib("VmRSS");
    tl_loop_t *loop;
    if (n <= 0 || tl_loop_new(NULL, &loop) != 0)
        return 1;
    sleepers_t s = {0, 0, 0};
    int rc = 0;
    bench_clock_t c0 = bench_clock_now();
    for (long i = 0; i < n && rc == 0; i++)
        rc = tl_task_spawn(loop, sleeper, &s, NULL, NULL);
    bench_clock_t c1 = bench_clock_now();
    if (rc == 0)
        rc = tl_loop_run_once(loop, 0); /* every task's first step */
    bench_clock_t c2 = bench_clock_now();
    int alive = tl_task_all(loop, NULL, 0);
    long hwm = status_kib("VmHWM"), rss = status_kib("VmRSS"), pte = status_kib("VmPTE");
    long vmas = count_lines("/proc/self/maps");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    tl__stack_stats_t st;
    pool_stats(loop, &st);
    bench_clock_t c3 = bench_clock_now();
    tl_loop_close(loop); /* resumes each sleeper once: its sleep is cancelled */
    tl_loop_unref(loop);
    bench_clock_t c4 = bench_clock_now();
    long maps_after = max_map_count();
    if (rc != 0 || s.started != n || alive != n || s.woke != n || s.cancelled != n) {
        fprintf(stderr, "tasks_rss: rc %d, %ld of %ld started, %d alive, %ld woke, "
                        "%ld cancelled at close\n", rc, s.started, n, alive, s.woke,
                s.cancelled);
        return 1;
    }
    const char *force = getenv("TL_STACK_GUARD");
    printf("{\"bench\":\"tasks_rss\",\"tasks\":%ld,\"rss_mib\":%.1f,"
           "\"bytes_per_task\":%.0f,\"rss_before_mib\":%.1f,\"rss_now_mib\":%.1f,"
           "\"ru_maxrss_mib\":%.1f,\"page_tables_mib\":%.1f,\"stack_kib\":64,"
           "\"stacks_mapped_gib\":%.2f,\"guards\":{\"madvise\":%zu,\"mprotect\":%zu,"
           "\"none\":%zu},\"guard_env\":%s%s%s,\"mappings\":%ld,"
           "\"vm_max_map_count\":%ld,\"vm_max_map_count_after\":%ld,\"sysctl_changed\":false,"
           "\"spawn_s\":%.3f,\"first_step_s\":%.3f,\"close_s\":%.3f,\"cpu_s\":%.3f}\n",
           n, (double)hwm / 1024, (double)(hwm - rss0) * 1024 / (double)n,
           (double)rss0 / 1024, (double)rss / 1024, (double)ru.ru_maxrss / 1024,
           (double)pte / 1024, (double)st.mapped_bytes / (1 << 30),
           st.guards[TL__GUARD_MADVISE], st.guards[TL__GUARD_MPROTECT],
           st.guards[TL__GUARD_NONE], force ? "\"" : "", force ? force : "null",
           force ? "\"" : "", vmas, maps_before, maps_after, bench_wall_s(&c0, &c1),
           bench_wall_s(&c1, &c2), bench_wall_s(&c3, &c4), bench_cpu_s(&c0, &c4));
    fflush(stdout);
    return maps_after != maps_before;
}

/* One size in a child process: tulip-bench --tasks-rss-child N. */
static int run_child(long n) {
    char arg[32];
    snprintf(arg, sizeof arg, "%ld", n);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("tasks_rss: fork");
        return 1;
    }
    if (pid == 0) {
        char *argv[] = {"tulip-bench", BENCH_TASKS_RSS_CHILD, arg, NULL};
        execv("/proc/self/exe", argv);
        perror("tasks_rss: exec /proc/self/exe");
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            perror("tasks_rss: waitpid");
            return 1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tasks_rss: the child for %ld tasks failed (status 0x%x)\n", n,
                (unsigned)status);
        return 1;
    }
    return 0;
}

int bench_tasks_rss(const bench_opts_t *o) {
    if (o->n)
        return run_child(o->n);
    return run_child(100000) | run_child(1000000);
}
