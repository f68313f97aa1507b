/*
 * tulip-demo: what tulip can do today, shown and checked step by step.
 * `make demo` builds and runs it. Every sentence it prints about the
 * library's behaviour is verified by the code first; any surprise makes it
 * say what went wrong and exit 1.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

static atomic_int failures;

void demo_fail(const char *fmt, ...) {
    va_list ap;
    fflush(stdout); /* keep stdout and stderr in order on a terminal */
    fputs("tulip-demo: FAILED: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    atomic_fetch_add(&failures, 1);
}

int demo_failures(void) { return atomic_load(&failures); }

double demo_ms_since(uint64_t t0) { return (double)(tl_now_ns() - t0) / 1e6; }

static void guard_expired(void *timed_out) {
    *(int *)timed_out = 1;
    tl_loop_stop(tl_loop_get_running());
}

int demo_run(tl_loop_t *loop, int guard_ms) {
    int timed_out = 0, before = demo_failures();
    tl_handle_t guard;
    TRY(tl_loop_call_later(loop, guard_ms * MS, guard_expired, &timed_out, &guard));
    TRY(tl_loop_run_forever(loop));
    tl_handle_cancel(loop, guard); /* 0 if it fired; either way it is gone */
    CHECK(!timed_out, "the loop was still waiting after %d ms", guard_ms);
    CHECK(demo_failures() == before, "a callback failed (see above)");
    return 0;
}

int demo_complete(tl_loop_t *loop, tl_future_t *f, int guard_ms, int *outcome,
                  void **result) {
    int timed_out = 0, before = demo_failures();
    tl_handle_t guard;
    TRY(tl_loop_call_later(loop, guard_ms * MS, guard_expired, &timed_out, &guard));
    *outcome = tl_loop_run_until_complete(loop, f, result);
    tl_handle_cancel(loop, guard);
    CHECK(!timed_out, "the loop was still waiting after %d ms", guard_ms);
    CHECK(demo_failures() == before, "a callback or a task failed (see above)");
    return 0;
}

/* Which backend runs the loop, and why: $TL_BACKEND or the platform's best. */
static int show_backend(tl_loop_t *loop) {
    const char *name = tl_loop_backend_name(loop);
    const char *env = getenv("TL_BACKEND");
    const tl_backend_ops_t *best = tl_backend_epoll() ? tl_backend_epoll() : tl_backend_poll();
    CHECK(name != NULL && best != NULL, "the loop has no backend name");
    if (env && tl_backend_by_name(env)) {
        CHECK(strcmp(name, env) == 0, "TL_BACKEND=%s but the loop runs on %s", env, name);
        printf("The loop runs on the \"%s\" backend, chosen by TL_BACKEND=%s;\n"
               "without it tulip picks the platform's best (\"%s\").\n",
               name, env, best->name);
    } else {
        CHECK(strcmp(name, best->name) == 0, "the default backend is %s, not %s",
              name, best->name);
        printf("The loop runs on the \"%s\" backend, the platform's best;\n"
               "run with TL_BACKEND=poll to use poll(2) instead.\n", name);
    }
    return 0;
}

static const struct {
    const char *title;
    int (*run)(tl_loop_t *loop);
} parts[] = {
    {"Timers: call_at and call_later run callbacks in deadline order", demo_timers},
    {"call_soon: callbacks run in FIFO order, one batch per iteration", demo_call_soon},
    {"Threads: call_soon_threadsafe hands work to the loop", demo_threads},
    {"Futures: one outcome, awaited, with done callbacks", demo_futures},
    {"Signals: a Unix signal handled as an ordinary loop callback", demo_signals},
    {"Tasks and a Queue: a producer and three consumers, in sequential C",
     demo_pipeline},
    {"gather under a timeout scope: every result, or TL_ETIMEDOUT", demo_gather},
    {"Cancellation: a request the task sees, cleans up after, or takes back",
     demo_cancel},
    {"A network exchange: a TCP server and 50 client tasks, all on one thread",
     demo_network},
    {"UDP: datagram endpoints answer each other on loopback", demo_udp},
    {"TLS: a server and client tasks on one loop, certificates checked",
     demo_tls},
    {"Subprocesses: a pipeline of programs and a conversation with a child",
     demo_processes},
};
enum { NPARTS = sizeof(parts) / sizeof(parts[0]) };

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines appear as they happen */
    uint64_t t0 = tl_now_ns();

    printf("tulip %s: Python asyncio's event loop, futures and tasks, in C.\n",
           tl_version_string());
    if (tl_version() != TL_VERSION_HEX) {
        demo_fail("headers are version %#x but the library is %#x",
                  (unsigned)TL_VERSION_HEX, tl_version());
        return 1;
    }
    tl_loop_t *loop;
    int rc = tl_loop_new(NULL, &loop);
    if (rc) {
        demo_fail("tl_loop_new returned %s (%s)", tl_err_name(rc), tl_strerror(rc));
        return 1;
    }
    char backend[32]; /* kept for the summary, after the loop is gone */
    snprintf(backend, sizeof backend, "%s", tl_loop_backend_name(loop));
    int passed = show_backend(loop) == 0 ? 0 : -1;
    for (int i = 0; passed == i && i < NPARTS; i++) {
        printf("\n%d. %s\n", i + 1, parts[i].title);
        if (parts[i].run(loop) == 0 && demo_failures() == 0)
            passed++;
    }

    /* Close before the last unref: close drops whatever a failed part left
     * scheduled; the unref then frees the loop. */
    if ((rc = tl_loop_close(loop)) != 0)
        demo_fail("tl_loop_close returned %s (%s)", tl_err_name(rc), tl_strerror(rc));
    if ((rc = tl_loop_unref(loop)) != 0)
        demo_fail("tl_loop_unref returned %s (%s)", tl_err_name(rc), tl_strerror(rc));

    if (passed != NPARTS || demo_failures()) {
        if (passed >= 0 && passed < NPARTS)
            fprintf(stderr, "tulip-demo: stopped in part %d (%s).\n", passed + 1,
                    parts[passed].title);
        return 1;
    }
    printf("\nSummary: all %d parts passed on the \"%s\" backend in %.0f ms; "
           "every claim above was checked.\n", NPARTS, backend, demo_ms_since(t0));
    return 0;
}
