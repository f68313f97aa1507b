/*
 * Part 1: timers. call_at (and call_later, now + delay) puts a callback in the
 * loop's timer heap, keyed by its deadline; the loop sleeps until the earliest. So timers fire in
 * deadline order whatever order they were scheduled in, never early, and a
 * timer cancelled through its handle is simply gone.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "demo.h"

typedef struct fired {
    uint64_t t0;
    const char *names[4];
    int n;
} fired_t;

typedef struct demo_timer {
    const char *name;
    int delay_ms;
    int last; /* the last one due stops the loop */
    fired_t *fired;
    tl_handle_t handle;
} demo_timer_t;

static void on_timer(void *ctx) {
    demo_timer_t *t = ctx;
    double ms = demo_ms_since(t->fired->t0);
    printf("   at %5.1f ms \"%s\" fired (due at %d ms)\n", ms, t->name, t->delay_ms);
    if (ms < t->delay_ms)
        demo_fail("\"%s\" fired %.1f ms early", t->name, t->delay_ms - ms);
    if (t->fired->n < 4)
        t->fired->names[t->fired->n++] = t->name;
    if (t->last)
        tl_loop_stop(tl_loop_get_running());
}

int demo_timers(tl_loop_t *loop) {
    fired_t fired = {0};
    demo_timer_t t[] = {
        {"slow", 60, 1, &fired, 0},
        {"fast", 20, 0, &fired, 0},
        {"medium", 40, 0, &fired, 0},
        {"doomed", 30, 0, &fired, 0},
    };
    printf("   Scheduling four timers in this order: slow (60 ms), fast (20 ms),\n"
           "   medium (40 ms), doomed (30 ms).\n");
    /* One clock reading for all four deadlines (call_at), so a slow
     * machine between two calls cannot reorder them. */
    fired.t0 = tl_now_ns();
    int64_t base = tl_loop_time(loop);
    CHECK(base >= 0, "tl_loop_time failed: %s", tl_err_name((int)base));
    for (int i = 0; i < 4; i++)
        TRY(tl_loop_call_at(loop, base + t[i].delay_ms * MS, on_timer, &t[i], &t[i].handle));

    int rc = tl_handle_cancel(loop, t[3].handle);
    CHECK(rc == 1, "tl_handle_cancel on a pending timer returned %d, not 1", rc);
    CHECK(tl_handle_pending(loop, t[3].handle) == 0, "the cancelled timer is still pending");
    printf("   Cancelled \"doomed\" through its handle: tl_handle_cancel returned 1.\n"
           "   Running the loop; it sleeps until the next deadline each time:\n");
    if (demo_run(loop, 2000))
        return -1;

    char seen[64] = "";
    for (int i = 0; i < fired.n; i++)
        snprintf(seen + strlen(seen), sizeof seen - strlen(seen), "%s%s",
                 i ? ", " : "", fired.names[i]);
    printf("   Observed order: %s.\n", seen);
    CHECK(strcmp(seen, "fast, medium, slow") == 0,
          "expected the order fast, medium, slow");
    printf("   That is deadline order, not scheduling order; none fired early, and\n"
           "   \"doomed\" never fired.\n");

    rc = tl_handle_cancel(loop, t[1].handle);
    CHECK(rc == 0, "cancelling a timer that already ran returned %d, not 0", rc);
    printf("   Cancelling \"fast\" now returns 0: it already ran, so its handle\n"
           "   refers to nothing (handles stay safe to use).\n");
    return 0;
}
