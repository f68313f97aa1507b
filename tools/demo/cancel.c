/*
 * Part 8: cancellation, as asyncio 3.11+ has it. tl_task_cancel(task, msg)
 * is a request: it counts one (tl_task_cancelling) and cancels what the
 * task awaits, so that await returns TL_ECANCELLED inside the task. The
 * task then decides: clean up and return TL_ECANCELLED (it ends cancelled,
 * with the message), or swallow the cancellation, take the request back
 * with tl_task_uncancel, go on and return its result.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

#define NSTEPS 4
#define STEP_MS 20
#define BUFFER_SIZE 4096
#define REPLY_MS 500 /* the stubborn task's wait, which is cut short */
#define FINISH_MS 10
#define GUARD_MS 2000

static const char job_message[] = "the user pressed Stop";
static const char stubborn_message[] = "please stop";
static const char stubborn_result[] = "saved";

typedef struct cancel_state {
    uint64_t t0;
    tl_event_t *ready; /* set when the target has reached the point to cancel */
    tl_task_t *target;
    const char *target_name, *message;
    /* the boss's observations */
    int cancel_rc, cancelling;
    /* the job's */
    char *buffer;
    int steps, sleep_rc, cancelling_seen;
    /* the stubborn task's */
    int uncancel_before, uncancel_after, second_sleep_rc;
} cancel_state_t;

/* Static: see pipeline.c. */
static cancel_state_t state;

/* Waits for the target to be ready, then cancels it with the message. */
static int boss(void *arg, void **result) {
    cancel_state_t *s = arg;
    (void)result;
    TASK_TRY(tl_event_wait(s->ready));
    s->cancel_rc = tl_task_cancel(s->target, s->message);
    s->cancelling = tl_task_cancelling(s->target);
    printf("      at %5.1f ms boss: tl_task_cancel(%s, \"%s\")\n"
           "                  returned %d; tl_task_cancelling(%s) is now %d\n",
           demo_ms_since(s->t0), s->target_name, s->message, s->cancel_rc, s->target_name,
           s->cancelling);
    TASK_CHECK(s->cancel_rc == 1 && s->cancelling == 1, "the cancel was not requested");
    return 0;
}

static int job(void *arg, void **result) {
    cancel_state_t *s = arg;
    (void)result;
    s->buffer = malloc(BUFFER_SIZE);
    TASK_CHECK(s->buffer != NULL, "out of memory");
    printf("      at %5.1f ms job: allocates a %d KiB buffer\n", demo_ms_since(s->t0),
           BUFFER_SIZE / 1024);
    for (int step = 1; step <= NSTEPS; step++) {
        memset(s->buffer, step, BUFFER_SIZE); /* the step's work */
        s->steps = step;
        printf("      at %5.1f ms job: step %d of %d done\n", demo_ms_since(s->t0), step,
               NSTEPS);
        if (step == 2)
            TASK_TRY(tl_event_set(s->ready)); /* the boss may go ahead */
        s->sleep_rc = tl_sleep(STEP_MS * MS);
        if (s->sleep_rc == TL_ECANCELLED) {
            s->cancelling_seen = tl_task_cancelling(tl_task_current());
            free(s->buffer);
            s->buffer = NULL;
            printf("      at %5.1f ms job: tl_sleep returned TL_ECANCELLED; it frees its\n"
                   "                  buffer and returns TL_ECANCELLED\n",
                   demo_ms_since(s->t0));
            return TL_ECANCELLED; /* the task ends cancelled */
        }
        TASK_TRY(s->sleep_rc);
    }
    free(s->buffer);
    s->buffer = NULL;
    return 0;
}

static int stubborn(void *arg, void **result) {
    cancel_state_t *s = arg;
    tl_task_t *self = tl_task_current();
    printf("      at %5.1f ms stubborn: waits up to %d ms for a reply\n", demo_ms_since(s->t0),
           REPLY_MS);
    TASK_TRY(tl_event_set(s->ready));
    s->sleep_rc = tl_sleep(REPLY_MS * MS);
    TASK_CHECK(s->sleep_rc == TL_ECANCELLED, "its tl_sleep returned %s",
               tl_err_name(s->sleep_rc));
    s->uncancel_before = tl_task_cancelling(self);
    s->uncancel_after = tl_task_uncancel(self);
    printf("      at %5.1f ms stubborn: tl_sleep returned TL_ECANCELLED; it calls\n"
           "                  tl_task_uncancel (cancelling %d -> %d) and goes on\n",
           demo_ms_since(s->t0), s->uncancel_before, s->uncancel_after);
    s->second_sleep_rc = tl_sleep(FINISH_MS * MS);
    TASK_CHECK(s->second_sleep_rc == 0, "its second tl_sleep returned %s",
               tl_err_name(s->second_sleep_rc));
    printf("      at %5.1f ms stubborn: a further %d ms tl_sleep went undisturbed;\n"
           "                  it returns \"%s\"\n",
           demo_ms_since(s->t0), FINISH_MS, stubborn_result);
    *result = (void *)stubborn_result;
    return 0;
}

/* Spawn the target and a boss that cancels it; run until both are done and
 * leave the target's outcome in *rc and *value. */
static int run_pair(tl_loop_t *loop, tl_task_fn_t fn, const char *name,
                    const char *message, int *rc, void **value) {
    cancel_state_t *s = &state;
    memset(s, 0, sizeof *s);
    s->target_name = name;
    s->message = message;
    TRY(tl_event_new(loop, &s->ready));
    s->t0 = tl_now_ns();
    tl_task_t *boss_task;
    tl_task_options_t to = {sizeof to, name, 0, NULL};
    TRY(tl_task_spawn(loop, fn, s, &to, &s->target));
    to.name = "boss";
    TRY(tl_task_spawn(loop, boss, s, &to, &boss_task));
    int boss_rc;
    if (demo_complete(loop, tl_task_future(boss_task), GUARD_MS, &boss_rc, NULL) ||
        demo_complete(loop, tl_task_future(s->target), GUARD_MS, rc, value))
        return -1;
    CHECK(boss_rc == 0, "the boss ended with %s", tl_err_name(boss_rc));
    TRY(tl_task_unref(boss_task));
    TRY(tl_event_free(s->ready));
    return 0;
}

static int show_job(tl_loop_t *loop) {
    cancel_state_t *s = &state;
    printf("   a) A job of %d steps sleeps %d ms after each; a boss task waits\n"
           "      for step 2 (an Event), then cancels the job:\n", NSTEPS, STEP_MS);
    int rc;
    if (run_pair(loop, job, "job", job_message, &rc, NULL))
        return -1;
    tl_future_t *f = tl_task_future(s->target);
    const char *msg = tl_future_error_message(f);
    CHECK(s->steps == 2, "the job did %d steps", s->steps);
    CHECK(s->sleep_rc == TL_ECANCELLED && s->cancelling_seen == 1 && s->buffer == NULL,
          "the job did not see the cancellation and clean up");
    CHECK(rc == TL_ECANCELLED && tl_future_cancelled(f) == 1, "the job ended with %s",
          tl_err_name(rc));
    CHECK(msg && strcmp(msg, job_message) == 0, "the job's message is \"%s\"",
          msg ? msg : "");
    printf("      The job stopped after 2 of %d steps, inside its sleep, and\n"
           "      run_until_complete returned %s,\n"
           "      with the message \"%s\".\n",
           NSTEPS, tl_err_name(rc), msg);
    rc = tl_task_cancel(s->target, "again");
    CHECK(rc == 0, "cancelling the finished job returned %d, not 0", rc);
    printf("      Cancelling it again returns 0: it is already done.\n");
    TRY(tl_task_unref(s->target));
    return 0;
}

static int show_stubborn(tl_loop_t *loop) {
    cancel_state_t *s = &state;
    printf("   b) A stubborn task is cancelled in the same way, but swallows it:\n");
    int rc;
    void *value = NULL;
    if (run_pair(loop, stubborn, "stubborn", stubborn_message, &rc, &value))
        return -1;
    tl_future_t *f = tl_task_future(s->target);
    CHECK(s->uncancel_before == 1 && s->uncancel_after == 0,
          "tl_task_uncancel took the count from %d to %d", s->uncancel_before,
          s->uncancel_after);
    CHECK(rc == 0 && value == stubborn_result, "the stubborn task ended with %s",
          tl_err_name(rc));
    CHECK(tl_future_cancelled(f) == 0 && tl_task_cancelling(s->target) == 0,
          "the stubborn task still counts as cancelled");
    printf("      It ended with its result \"%s\", not cancelled, and\n"
           "      tl_task_cancelling is 0. As in asyncio, cancelling a task only\n"
           "      asks: the task may catch the cancellation, and one that returns\n"
           "      normally ends with its result; uncancel() takes the request back.\n",
           (const char *)value);
    TRY(tl_task_unref(s->target));
    return 0;
}

int demo_cancel(tl_loop_t *loop) {
    return show_job(loop) || show_stubborn(loop) ? -1 : 0;
}
