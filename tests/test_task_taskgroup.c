/* task_taskgroup: tl_taskgroup_* (asyncio.TaskGroup, 3.13). */
#include "combinator_test.h"

#include <string.h>

/* The parent: makes a group, spawns the jobs, runs a body (a sleep of
 * body_ns, unless 0), then waits with the body's outcome. */
typedef struct parent {
    job_t *jobs;
    int njobs;
    int64_t body_ns;
    int body_fails; /* the body ends with TL_EACCES instead */
    int body_rc, wait_rc;
    int cancelling_after;
    int after_rc; /* an await after the group */
    int nerrors;
    tl_task_t *errors[4];
    int errors_rc[4];
    int all_done_at_wait; /* every job finished when wait returned */
    tl_taskgroup_t *g;
} parent_t;

static int parent_body(void *arg, void **result) {
    parent_t *p = arg;
    (void)result;
    int rc = tl_taskgroup_new(tl_loop_get_running(), &p->g);
    if (rc)
        return rc;
    for (int i = 0; i < p->njobs; i++)
        if ((rc = tl_taskgroup_spawn(p->g, tt_job, &p->jobs[i], NULL, NULL)))
            return rc;
    p->body_rc = p->body_ns ? tl_sleep(p->body_ns) : 0;
    if (p->body_rc == 0 && p->body_fails)
        p->body_rc = TL_EACCES;
    p->wait_rc = tl_taskgroup_wait(p->g, p->body_rc);
    p->all_done_at_wait = 1;
    for (int i = 0; i < p->njobs; i++)
        if (p->jobs[i].started && !p->jobs[i].finished)
            p->all_done_at_wait = 0;
    p->nerrors = tl_taskgroup_errors(p->g, p->errors, 4);
    for (int i = 0; i < p->nerrors && i < 4; i++)
        p->errors_rc[i] = tl_future_error(tl_task_future(p->errors[i]));
    p->cancelling_after = tl_task_cancelling(tl_task_current());
    tl_taskgroup_free(p->g);
    p->g = NULL;
    p->after_rc = tl_sleep(0);
    return p->wait_rc;
}

static tl_task_t *spawn_parent(tl_loop_t *loop, parent_t *p) {
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, parent_body, p, NULL, &t), 0);
    return t;
}

static void test_wait_returns_0_once_every_task_succeeded(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t jobs[3] = {{1 * MS, 0, 0, 0, 0, 0, 0, NULL}, {3 * MS, 0, 0, 0, 0, 0, 0, NULL},
                     {0, 0, 0, 0, 0, 0, 0, NULL}};
    parent_t p = {jobs, 3, 0, 0, 1, 1, 1, 1, 1, {0}, {0}, 0, NULL};
    tl_task_t *t = spawn_parent(loop, &p);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
    CU_ASSERT_EQUAL(p.wait_rc, 0);
    CU_ASSERT_EQUAL(p.all_done_at_wait, 1);
    CU_ASSERT_EQUAL(jobs[1].finished, 1);
    CU_ASSERT_EQUAL(p.nerrors, 0);
    CU_ASSERT_EQUAL(p.after_rc, 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* The first failure cancels the siblings; one of them fails while being
 * cancelled; both errors are kept, in order; the parent's wait went on
 * until all were done and its cancel count is back to 0. */
static void test_first_failure_cancels_siblings_and_every_error_is_kept(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t jobs[3] = {{1 * MS, TL_EIO, 0, 0, 0, 0, 0, NULL},
                     {FOREVER, 0, 2 * MS, TL_EPIPE, 0, 0, 0, NULL},
                     {FOREVER, 0, 0, 0, 0, 0, 0, NULL}};
    parent_t p = {jobs, 3, 0, 0, 1, 1, 1, 1, 1, {0}, {0}, 0, NULL};
    tl_task_t *t = spawn_parent(loop, &p);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_EIO);
    CU_ASSERT_EQUAL(p.wait_rc, TL_EIO);
    CU_ASSERT_EQUAL(jobs[1].was_cancelled, 1);
    CU_ASSERT_EQUAL(jobs[2].was_cancelled, 1);
    CU_ASSERT_EQUAL(p.all_done_at_wait, 1);
    CU_ASSERT_EQUAL(p.nerrors, 2);
    CU_ASSERT_EQUAL(p.errors_rc[0], TL_EIO);
    CU_ASSERT_EQUAL(p.errors_rc[1], TL_EPIPE);
    CU_ASSERT_EQUAL(p.cancelling_after, 0);
    CU_ASSERT_EQUAL(p.after_rc, 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_a_failure_interrupts_the_body(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t jobs[2] = {{1 * MS, TL_EIO, 0, 0, 0, 0, 0, NULL}, {FOREVER, 0, 0, 0, 0, 0, 0, NULL}};
    parent_t p = {jobs, 2, FOREVER, 0, 1, 1, 1, 1, 1, {0}, {0}, 0, NULL};
    tl_task_t *t = spawn_parent(loop, &p);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_EIO);
    CU_ASSERT_EQUAL(p.body_rc, TL_ECANCELLED); /* the group cancelled the parent */
    CU_ASSERT_EQUAL(p.wait_rc, TL_EIO);
    CU_ASSERT_EQUAL(p.cancelling_after, 0); /* and took it back */
    CU_ASSERT_EQUAL(p.after_rc, 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void cancel_task(void *t) { tl_task_cancel(t, "outside"); }

/* An outside cancellation of the waiting parent reaches the tasks; wait
 * returns TL_ECANCELLED after they finished. */
static void test_an_outside_cancel_during_the_wait_propagates(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t jobs[2] = {{FOREVER, 0, 3 * MS, 0, 0, 0, 0, NULL}, {FOREVER, 0, 0, 0, 0, 0, 0, NULL}};
    parent_t p = {jobs, 2, 0, 0, 1, 1, 1, 1, 1, {0}, {0}, 0, NULL};
    tl_task_t *t = spawn_parent(loop, &p);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* the parent waits */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* the tasks sleep */
    cancel_task(t);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ECANCELLED);
    CU_ASSERT_EQUAL(p.wait_rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(jobs[0].was_cancelled + jobs[1].was_cancelled, 2);
    CU_ASSERT_EQUAL(p.all_done_at_wait, 1); /* job 0's 3 ms cleanup included */
    CU_ASSERT_EQUAL(p.cancelling_after, 1); /* theirs, not taken back */
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_an_outside_cancel_during_the_body_propagates(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t jobs[1] = {{FOREVER, 0, 0, 0, 0, 0, 0, NULL}};
    parent_t p = {jobs, 1, FOREVER, 0, 1, 1, 1, 1, 1, {0}, {0}, 0, NULL};
    tl_task_t *t = spawn_parent(loop, &p);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* the body sleeps */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* the task too */
    cancel_task(t);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ECANCELLED);
    CU_ASSERT_EQUAL(p.body_rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(p.wait_rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(jobs[0].was_cancelled, 1);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_a_failing_body_aborts_the_group(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t jobs[1] = {{FOREVER, 0, 0, 0, 0, 0, 0, NULL}};
    parent_t p = {jobs, 1, 1 * MS, 1, 1, 1, 1, 1, 1, {0}, {0}, 0, NULL};
    tl_task_t *t = spawn_parent(loop, &p);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_EACCES);
    CU_ASSERT_EQUAL(jobs[0].was_cancelled, 1);
    CU_ASSERT_EQUAL(p.nerrors, 0); /* the body's error is not a task's */
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* A task fails, and while its sibling takes its time to stop, the parent
 * is also cancelled from outside: the error wins, and the outside request
 * stays pending (the parent's next await gets it). */
static void test_errors_win_over_an_outside_cancel_which_stays_pending(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t jobs[2] = {{1 * MS, TL_EIO, 0, 0, 0, 0, 0, NULL}, {FOREVER, 0, 5 * MS, 0, 0, 0, 0, NULL}};
    parent_t p = {jobs, 2, 0, 0, 1, 1, 1, 1, 1, {0}, {0}, 0, NULL};
    tl_task_t *t = spawn_parent(loop, &p);
    for (int i = 0; i < 1000 && !jobs[1].was_cancelled; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1 * MS), 0);
    CU_ASSERT_EQUAL_FATAL(jobs[1].was_cancelled, 1); /* cleaning up for 5 ms */
    cancel_task(t);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_EIO);
    CU_ASSERT_EQUAL(p.wait_rc, TL_EIO);
    CU_ASSERT_EQUAL(p.cancelling_after, 1);
    CU_ASSERT_EQUAL(p.after_rc, TL_ECANCELLED);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* ---- spawn rules, groups made outside tasks, free ------------------------ */

typedef struct waits_group {
    tl_taskgroup_t *g;
    int rc, second_rc, spawn_after_rc;
    int once; /* the group may be gone after the wait */
} waits_group_t;

static int waits_for_group(void *arg, void **result) {
    waits_group_t *w = arg;
    (void)result;
    w->rc = tl_taskgroup_wait(w->g, 0);
    if (w->once)
        return 0;
    w->second_rc = tl_taskgroup_wait(w->g, 0);
    w->spawn_after_rc = tl_taskgroup_spawn(w->g, tt_job, NULL, NULL, NULL);
    return 0;
}

static void test_a_group_made_outside_a_task_and_the_spawn_rules(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_taskgroup_t *g;
    CU_ASSERT_EQUAL_FATAL(tl_taskgroup_new(loop, &g), 0);
    CU_ASSERT_EQUAL(tl_taskgroup_wait(g, 0), TL_ENOTASK);
    job_t jobs[2] = {{1 * MS, TL_EIO, 0, 0, 0, 0, 0, NULL}, {FOREVER, 0, 0, 0, 0, 0, 0, NULL}};
    tl_task_t *t0, *t1;
    CU_ASSERT_EQUAL_FATAL(tl_taskgroup_spawn(g, tt_job, &jobs[0], NULL, &t0), 0);
    CU_ASSERT_EQUAL_FATAL(tl_taskgroup_spawn(g, tt_job, &jobs[1], NULL, &t1), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t0)), TL_EIO);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* the group hears of it */
    CU_ASSERT_EQUAL(tl_task_cancelling(t1), 1);      /* no parent: siblings only */
    CU_ASSERT_EQUAL(tl_taskgroup_spawn(g, tt_job, &jobs[1], NULL, NULL), TL_ESTATE);
    waits_group_t w = {g, 1, 1, 1, 0};
    tl_task_t *waiter;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, waits_for_group, &w, NULL, &waiter), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(waiter)), 0);
    CU_ASSERT_EQUAL(w.rc, TL_EIO);
    CU_ASSERT_EQUAL(w.second_rc, TL_ESTATE);
    CU_ASSERT_EQUAL(w.spawn_after_rc, TL_ESTATE);
    CU_ASSERT_EQUAL(tl_task_cancelling(waiter), 0);
    tl_task_t *errs[1];
    CU_ASSERT_EQUAL(tl_taskgroup_errors(g, errs, 1), 1);
    CU_ASSERT_PTR_EQUAL(errs[0], t0);
    CU_ASSERT_EQUAL(tl_taskgroup_errors(g, NULL, 0), 1);
    CU_ASSERT_EQUAL(tl_taskgroup_errors(g, NULL, 1), TL_EINVAL);
    tl_taskgroup_free(g);
    tl_task_unref(t0);
    tl_task_unref(t1);
    tl_task_unref(waiter);
    tl_test_loop_free(loop);
}

static void test_spawn_after_a_finished_wait_is_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_taskgroup_t *g;
    CU_ASSERT_EQUAL_FATAL(tl_taskgroup_new(loop, &g), 0);
    waits_group_t w = {g, 1, 1, 1, 0};
    tl_task_t *waiter;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, waits_for_group, &w, NULL, &waiter), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(waiter)), 0);
    CU_ASSERT_EQUAL(w.rc, 0); /* nothing to wait for */
    CU_ASSERT_EQUAL(w.spawn_after_rc, TL_ESTATE);
    tl_taskgroup_free(g);
    tl_task_unref(waiter);
    tl_test_loop_free(loop);
}

static void test_free_cancels_the_tasks_still_running(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_taskgroup_t *g;
    CU_ASSERT_EQUAL_FATAL(tl_taskgroup_new(loop, &g), 0);
    job_t j = {FOREVER, 0, 1 * MS, 0, 0, 0, 0, NULL};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_taskgroup_spawn(g, tt_job, &j, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_taskgroup_free(g);
    CU_ASSERT_EQUAL(tl_task_cancelling(t), 1);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ECANCELLED);
    CU_ASSERT_EQUAL(j.finished, 1);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void free_group(void *g) { tl_taskgroup_free(g); }

static void test_free_during_a_wait_takes_effect_when_it_returns(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_taskgroup_t *g;
    CU_ASSERT_EQUAL_FATAL(tl_taskgroup_new(loop, &g), 0);
    job_t j = {FOREVER, 0, 0, 0, 0, 0, 0, NULL};
    CU_ASSERT_EQUAL_FATAL(tl_taskgroup_spawn(g, tt_job, &j, NULL, NULL), 0);
    waits_group_t w = {g, 1, 1, 1, 1};
    tl_task_t *waiter;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, waits_for_group, &w, NULL, &waiter), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* the task and the waiter run */
    free_group(g);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(waiter), NULL), 0);
    CU_ASSERT_EQUAL(w.rc, 0); /* every task was cancelled, none failed */
    CU_ASSERT_EQUAL(j.was_cancelled, 1);
    tl_task_unref(waiter);
    tl_test_loop_free(loop);
}

/* A timeout scope expiring while its task waits in a group: the group is
 * aborted, and the scope turns the wait's TL_ECANCELLED into a timeout. */
static int group_under_a_timeout(void *arg, void **result) {
    job_t *j = arg;
    (void)result;
    tl_timeout_t *scope;
    tl_taskgroup_t *g;
    int rc = tl_timeout_enter(1 * MS, &scope);
    if (rc)
        return rc;
    if ((rc = tl_taskgroup_new(tl_loop_get_running(), &g)) == 0) {
        rc = tl_taskgroup_spawn(g, tt_job, j, NULL, NULL);
        rc = tl_taskgroup_wait(g, rc);
        tl_taskgroup_free(g);
    }
    return tl_timeout_exit(scope, rc);
}

static void test_a_timeout_scope_expiring_during_the_wait(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t j = {FOREVER, 0, 2 * MS, 0, 0, 0, 0, NULL};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, group_under_a_timeout, &j, NULL, &t), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ETIMEDOUT);
    CU_ASSERT_EQUAL(j.was_cancelled, 1);
    CU_ASSERT_EQUAL(j.finished, 1);
    CU_ASSERT_EQUAL(tl_task_cancelling(t), 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

typedef struct leaver {
    job_t job;
    tl_taskgroup_t *g;
} leaver_t;

/* A parent that leaves without waiting: a misuse the group reports. */
static int leaves_without_waiting(void *arg, void **result) {
    leaver_t *l = arg;
    (void)result;
    int rc = tl_taskgroup_new(tl_loop_get_running(), &l->g);
    return rc ? rc : tl_taskgroup_spawn(l->g, tt_job, &l->job, NULL, NULL);
}

static void test_a_task_failing_after_its_parent_finished_is_reported(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    leaver_t l = {{1 * MS, TL_EIO, 0, 0, 0, 0, 0, NULL}, NULL};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, leaves_without_waiting, &l, NULL, &t), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
    for (int i = 0; i < 100 && exc.count == 0; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1 * MS), 0);
    CU_ASSERT_EQUAL(exc.count, 1);
    CU_ASSERT_EQUAL(exc.last_error, TL_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(exc.last_message, "parent"));
    CU_ASSERT_EQUAL(tl_taskgroup_errors(l.g, NULL, 0), 1);
    tl_taskgroup_free(l.g);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_taskgroup_misuse(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_taskgroup_t *g = NULL;
    CU_ASSERT_EQUAL(tl_taskgroup_new(loop, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_taskgroup_new(NULL, &g), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_taskgroup_spawn(NULL, tt_job, NULL, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_taskgroup_wait(NULL, 0), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_taskgroup_errors(NULL, NULL, 0), TL_EINVAL);
    CU_ASSERT_EQUAL_FATAL(tl_taskgroup_new(loop, &g), 0);
    CU_ASSERT_EQUAL(tl_taskgroup_spawn(g, NULL, NULL, NULL, NULL), TL_EINVAL);
    tl_taskgroup_free(g);
    tl_taskgroup_free(NULL);
    tl_test_loop_free(loop);
}

static void test_taskgroup_survives_each_allocation_failing(void) {
    int made = 0, spawned = 0;
    for (long n = 1; n < 60 && !(made && spawned); n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_taskgroup_t *g = NULL;
        job_t j = {0, 0, 0, 0, 0, 0, 0, NULL};
        tl_task_t *t = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl_taskgroup_new(loop, &g);
        if (rc == 0)
            rc = tl_taskgroup_spawn(g, tt_job, &j, NULL, &t);
        tl_test_fail_alloc_at(0);
        if (g)
            made = 1;
        if (rc == 0) {
            spawned = 1;
            CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
            tl_task_unref(t);
        } else {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            CU_ASSERT_PTR_NULL(t);
        }
        tl_taskgroup_free(g);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(made && spawned);
}

static void test_the_loop_closing_during_a_wait(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t jobs[2] = {{FOREVER, 0, 0, 0, 0, 0, 0, NULL}, {FOREVER, 0, 0, 0, 0, 0, 0, NULL}};
    parent_t p = {jobs, 2, 0, 0, 1, 1, 1, 1, 1, {0}, {0}, 0, NULL};
    tl_task_t *t = spawn_parent(loop, &p);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_test_loop_free(loop); /* the parent's wait returns; it frees the group */
    CU_ASSERT_EQUAL(p.wait_rc, TL_ECANCELLED);
    CU_ASSERT_PTR_NULL(p.g);
    tl_task_unref(t);
}

TL_TEST_SUITE(task_taskgroup,
              TL_TEST(test_wait_returns_0_once_every_task_succeeded),
              TL_TEST(test_first_failure_cancels_siblings_and_every_error_is_kept),
              TL_TEST(test_a_failure_interrupts_the_body),
              TL_TEST(test_an_outside_cancel_during_the_wait_propagates),
              TL_TEST(test_an_outside_cancel_during_the_body_propagates),
              TL_TEST(test_a_failing_body_aborts_the_group),
              TL_TEST(test_errors_win_over_an_outside_cancel_which_stays_pending),
              TL_TEST(test_a_group_made_outside_a_task_and_the_spawn_rules),
              TL_TEST(test_spawn_after_a_finished_wait_is_refused),
              TL_TEST(test_free_cancels_the_tasks_still_running),
              TL_TEST(test_free_during_a_wait_takes_effect_when_it_returns),
              TL_TEST(test_a_timeout_scope_expiring_during_the_wait),
              TL_TEST(test_a_task_failing_after_its_parent_finished_is_reported),
              TL_TEST(test_taskgroup_misuse),
              TL_TEST(test_taskgroup_survives_each_allocation_failing),
              TL_TEST(test_the_loop_closing_during_a_wait))
