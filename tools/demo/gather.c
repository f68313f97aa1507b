/*
 * Part 7: gather under a timeout scope. tl_gather is one future for many
 * (asyncio.gather); a task awaits it and then reads each child's result, in
 * the order the children were listed. A timeout scope (asyncio.timeout())
 * bounds whatever the task awaits inside it: at the deadline it cancels the
 * task, the await returns TL_ECANCELLED, the gather cancels the children
 * still running, and tl_timeout_exit turns that cancellation, the scope's
 * own, into TL_ETIMEDOUT.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "demo.h"

#define NCHILDREN 4
#define STEP_MS 20 /* square(k) sleeps k * STEP_MS */
#define LONG_MS 1000
#define SHORT_MS 55 /* between square(2) and square(3), with room for latency */
#define GUARD_MS 2000

typedef struct child {
    int k;       /* computes k * k */
    int square;  /* the result; the task's result points here */
    int rc;      /* what its tl_sleep returned */
    uint64_t t0; /* the round's */
} child_t;

typedef struct round {
    int deadline_ms;
    child_t children[NCHILDREN];
    tl_task_t *tasks[NCHILDREN];
    tl_future_t *futs[NCHILDREN]; /* the same, as futures */
    uint64_t t0;                  /* when the coordinator started */
    int await_rc, expired, cancelling_inside, gather_cancelled, exit_rc;
    int cancelling_after;
    double gathered_ms;
} round_t;

static const int listed[NCHILDREN] = {3, 1, 4, 2}; /* the gather's order */
/* Static: see pipeline.c. */
static round_t rounds[2];

static int square(void *arg, void **result) {
    child_t *c = arg;
    char name[16];
    snprintf(name, sizeof name, "square(%d)", c->k);
    c->rc = tl_sleep(c->k * STEP_MS * MS);
    if (c->rc == TL_ECANCELLED) {
        printf("      at %5.1f ms %s: its tl_sleep returned TL_ECANCELLED\n",
               demo_ms_since(c->t0), name);
        return TL_ECANCELLED; /* the task ends cancelled */
    }
    TASK_TRY(c->rc);
    c->square = c->k * c->k;
    printf("      at %5.1f ms %s returns %d\n", demo_ms_since(c->t0), name, c->square);
    *result = &c->square;
    return 0;
}

/* The body of the timeout scope: spawn the children, gather them, await the
 * gather. Returns the await's outcome, for the scope to convert. */
static int gather_children(round_t *r, tl_timeout_t *scope) {
    tl_loop_t *loop = tl_loop_get_running();
    tl_future_t *all;
    for (int i = 0; i < NCHILDREN; i++) {
        child_t *c = &r->children[i];
        *c = (child_t){listed[i], 0, 1 /* not yet */, r->t0};
        TASK_TRY(tl_task_spawn(loop, square, c, NULL, &r->tasks[i]));
        r->futs[i] = tl_task_future(r->tasks[i]);
    }
    TASK_TRY(tl_gather(loop, r->futs, NCHILDREN, 0, &all));
    r->await_rc = tl_await(all, NULL);
    r->gathered_ms = demo_ms_since(r->t0);
    r->expired = tl_timeout_expired(scope);
    r->cancelling_inside = tl_task_cancelling(tl_task_current());
    r->gather_cancelled = tl_future_cancelled(all);
    TASK_TRY(tl_future_unref(all));
    return r->await_rc;
}

/* The coordinating task of a round: the gather inside a timeout scope, then
 * a wait for each child to be done. */
static int coordinator(void *arg, void **result) {
    round_t *r = arg;
    (void)result; /* stays NULL */
    tl_timeout_t *scope;
    r->t0 = tl_now_ns();
    /* Entered before the children sleep, so its deadline comes before the
     * end of any sleep meant to outlast it. */
    TASK_TRY(tl_timeout_enter(r->deadline_ms * MS, &scope));
    r->exit_rc = tl_timeout_exit(scope, gather_children(r, scope));
    r->cancelling_after = tl_task_cancelling(tl_task_current());
    TASK_CHECK(r->await_rc == 0 || r->gather_cancelled == 1, "the gather ended with %s",
               tl_err_name(r->await_rc));
    /* A gather cancelled at its first cancelled child may leave others
     * finishing; awaiting a done task returns at once. */
    for (int i = 0; i < NCHILDREN; i++) {
        int rc = tl_await(r->futs[i], NULL);
        TASK_CHECK(rc == 0 || rc == TL_ECANCELLED, "square(%d) ended with %s", listed[i],
                   tl_err_name(rc));
    }
    return 0;
}

/* Run one round in a coordinating task. */
static int run_round(tl_loop_t *loop, round_t *r, const char *label, int deadline_ms) {
    memset(r, 0, sizeof *r);
    r->deadline_ms = deadline_ms;
    printf("   %s Spawning and gathering them inside tl_timeout_enter(%d ms):\n", label,
           deadline_ms);
    tl_task_t *task;
    tl_task_options_t to = {sizeof to, "coordinator", 0, NULL};
    TRY(tl_task_spawn(loop, coordinator, r, &to, &task));
    int rc;
    if (demo_complete(loop, tl_task_future(task), GUARD_MS, &rc, NULL))
        return -1;
    CHECK(rc == 0, "the coordinating task ended with %s", tl_err_name(rc));
    TRY(tl_task_unref(task));
    return 0;
}

static int drop_children(round_t *r) {
    for (int i = 0; i < NCHILDREN; i++)
        if (r->tasks[i])
            TRY(tl_task_unref(r->tasks[i]));
    return 0;
}

/* Claims about round a), in which every child had time to finish. */
static int show_complete(const round_t *r) {
    char results[64] = "";
    CHECK(r->await_rc == 0 && r->exit_rc == 0 && !r->expired,
          "the gather gave %s, the scope %s", tl_err_name(r->await_rc),
          tl_err_name(r->exit_rc));
    for (int i = 0; i < NCHILDREN; i++) {
        void *value = NULL;
        TRY(tl_future_result(tl_task_future(r->tasks[i]), &value));
        CHECK(value == &r->children[i].square, "square(%d) has a stray result", listed[i]);
        snprintf(results + strlen(results), sizeof results - strlen(results), "%s%d",
                 i ? ", " : "", *(int *)value);
    }
    CHECK(strcmp(results, "9, 1, 16, 4") == 0, "the results read %s", results);
    CHECK(r->gathered_ms >= NCHILDREN * STEP_MS, "the gather was done after %.1f ms",
          r->gathered_ms);
    printf("      The gather was done after %.1f ms, when the slowest child was,\n"
           "      and tl_timeout_exit returned 0. Read child by child in the\n"
           "      gather's order, the results are %s: the order of the list\n"
           "      (3, 1, 4, 2), not the order of completion.\n",
           r->gathered_ms, results);
    return 0;
}

/* Claims about round b), whose deadline came while children slept. */
static int show_timeout(const round_t *r) {
    char done[64] = "", cancelled[64] = "";
    CHECK(r->expired == 1, "the scope did not expire");
    CHECK(r->await_rc == TL_ECANCELLED, "tl_await on the gather returned %s",
          tl_err_name(r->await_rc));
    CHECK(r->cancelling_inside == 1 && r->cancelling_after == 0,
          "tl_task_cancelling was %d inside the scope and %d after it",
          r->cancelling_inside, r->cancelling_after);
    CHECK(r->exit_rc == TL_ETIMEDOUT, "tl_timeout_exit returned %s", tl_err_name(r->exit_rc));
    CHECK(r->gathered_ms >= SHORT_MS, "the gather ended after %.1f ms", r->gathered_ms);
    for (int k = 1; k <= NCHILDREN; k++) {
        int i = 0;
        while (listed[i] != k)
            i++;
        const child_t *c = &r->children[i];
        void *value = NULL;
        int rc = tl_future_result(tl_task_future(r->tasks[i]), &value);
        int finished = rc == 0 && c->rc == 0 && value == &c->square && c->square == k * k;
        CHECK(finished || (rc == TL_ECANCELLED && c->rc == TL_ECANCELLED),
              "square(%d) ended with %s", k, tl_err_name(rc));
        /* These sleeps end after the deadline, and timers run in deadline
         * order. The others normally finish first (a loop woken very late,
         * with both deadlines passed, would cancel them too, as asyncio's). */
        CHECK(!finished || k * STEP_MS < SHORT_MS, "square(%d) finished after the deadline",
              k);
        char *list = finished ? done : cancelled;
        snprintf(list + strlen(list), 64 - strlen(list), "%ssquare(%d)", list[0] ? ", " : "",
                 k);
    }
    printf("      At %d ms the scope cancelled our task (tl_task_cancelling 1), so\n"
           "      tl_await on the gather returned TL_ECANCELLED and the gather\n"
           "      cancelled the children still running. tl_timeout_exit took the\n"
           "      request back (cancelling 0) and returned TL_ETIMEDOUT instead.\n"
           "      Finished: %s; cancelled: %s.\n",
           SHORT_MS, done[0] ? done : "none", cancelled);
    return 0;
}

int demo_gather(tl_loop_t *loop) {
    printf("   A task gathers four child tasks: square(k) sleeps k * %d ms and\n"
           "   returns k * k; they are listed in the order 3, 1, 4, 2.\n", STEP_MS);
    int rc = run_round(loop, &rounds[0], "a)", LONG_MS) || show_complete(&rounds[0]) ||
             drop_children(&rounds[0]) || run_round(loop, &rounds[1], "b)", SHORT_MS) ||
             show_timeout(&rounds[1]) || drop_children(&rounds[1]);
    return rc ? -1 : 0;
}
