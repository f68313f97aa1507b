/*
 * Part 2: call_soon. The ready queue is FIFO, and each iteration runs only
 * the callbacks that were ready when it started: one scheduled by a running
 * callback waits for the next iteration, so a callback that keeps
 * rescheduling itself cannot starve the rest (asyncio's rule).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "demo.h"

typedef struct run_log {
    tl_loop_t *loop;
    int iteration; /* set by the part before each tl_loop_run_once */
    char seen[128];
} run_log_t;

typedef struct step {
    const char *name;
    run_log_t *log;
    struct step *then; /* scheduled by this one when it runs */
} step_t;

static void on_step(void *ctx) {
    step_t *s = ctx;
    run_log_t *log = s->log;
    printf("   iteration %d runs \"%s\"\n", log->iteration, s->name);
    snprintf(log->seen + strlen(log->seen), sizeof log->seen - strlen(log->seen),
             "%s%d:%s", log->seen[0] ? " " : "", log->iteration, s->name);
    if (s->then)
        CB_TRY(tl_loop_call_soon(log->loop, on_step, s->then, NULL));
}

int demo_call_soon(tl_loop_t *loop) {
    run_log_t log = {loop, 0, ""};
    step_t fourth = {"fourth", &log, NULL};
    step_t steps[] = {
        {"first", &log, &fourth},
        {"second", &log, NULL},
        {"third", &log, NULL},
    };
    printf("   call_soon \"first\", \"second\", \"third\"; when \"first\" runs it\n"
           "   schedules \"fourth\". Then two single iterations (tl_loop_run_once):\n");
    for (int i = 0; i < 3; i++)
        TRY(tl_loop_call_soon(loop, on_step, &steps[i], NULL));
    int before = demo_failures();
    for (log.iteration = 1; log.iteration <= 2; log.iteration++)
        TRY(tl_loop_run_once(loop, 0));
    CHECK(demo_failures() == before, "a callback failed (see above)");
    CHECK(strcmp(log.seen, "1:first 1:second 1:third 2:fourth") == 0,
          "unexpected order: %s", log.seen);
    printf("   FIFO within an iteration; \"fourth\", scheduled while the first batch\n"
           "   ran, waited for the next iteration.\n");
    return 0;
}
