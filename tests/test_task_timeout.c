/* task_timeout: timeout scopes (asyncio.timeout / timeout_at). */
#include "combinator_test.h"

#include <string.h>

/* A task body: what it does inside its scope(s), and what it saw. */
typedef struct scope_run {
    int64_t delay;       /* the scope's deadline, from now (< 0: none) */
    int64_t body_sleep;  /* what the body awaits */
    int64_t move_to;     /* if >= 0: reschedule to now + move_to first */
    int body_rc;         /* what the body's await returned */
    int exit_rc;         /* what tl_timeout_exit returned */
    int expired;
    int cancelling_after; /* tl_task_cancelling() after the exit */
    int after_rc;        /* an await after the scope */
    tl_timeout_t *scope;
} scope_run_t;

static int in_scope(void *arg, void **result) {
    scope_run_t *s = arg;
    (void)result;
    int rc = tl_timeout_enter(s->delay, &s->scope);
    if (rc)
        return rc;
    if (s->move_to >= 0)
        tl_timeout_reschedule(s->scope, tl_loop_time(tl_loop_get_running()) + s->move_to);
    s->body_rc = tl_sleep(s->body_sleep);
    s->expired = tl_timeout_expired(s->scope);
    s->exit_rc = tl_timeout_exit(s->scope, s->body_rc);
    s->cancelling_after = tl_task_cancelling(tl_task_current());
    s->after_rc = tl_sleep(0);
    return s->exit_rc;
}

static tl_task_t *spawn_scope(tl_loop_t *loop, scope_run_t *s) {
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, in_scope, s, NULL, &t), 0);
    return t;
}

static void test_an_expired_scope_turns_its_cancellation_into_a_timeout(void) {
    tl_loop_t *loop = tl_test_loop();
    scope_run_t s = {2 * MS, FOREVER, -1, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = spawn_scope(loop, &s);
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ETIMEDOUT);
    CU_ASSERT(tl_now_ns() - t0 >= 2 * MS);
    CU_ASSERT_EQUAL(s.body_rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(s.expired, 1);
    CU_ASSERT_EQUAL(s.cancelling_after, 0); /* the request was taken back */
    CU_ASSERT_EQUAL(s.after_rc, 0);         /* and is not delivered again */
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_a_scope_that_did_not_expire_passes_the_outcome_through(void) {
    tl_loop_t *loop = tl_test_loop();
    scope_run_t s = {10000 * MS, 1 * MS, -1, 1, 1, 1, 1, 1, NULL};
    tl_task_t *t = spawn_scope(loop, &s);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
    CU_ASSERT_EQUAL(s.expired, 0);
    CU_ASSERT_EQUAL(s.exit_rc, 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_deadline_set_while_inside_a_scope_entered_without_one(void) {
    tl_loop_t *loop = tl_test_loop();
    scope_run_t s = {-1, FOREVER, 2 * MS, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = spawn_scope(loop, &s);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ETIMEDOUT);
    CU_ASSERT_EQUAL(s.expired, 1);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_deadline_moved_later_while_inside(void) {
    tl_loop_t *loop = tl_test_loop();
    scope_run_t s = {1 * MS, 4 * MS, 10000 * MS, 1, 1, 1, 1, 1, NULL};
    tl_task_t *t = spawn_scope(loop, &s);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
    CU_ASSERT_EQUAL(s.body_rc, 0);
    CU_ASSERT_EQUAL(s.expired, 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* Moved while the task awaits, from a loop callback. */
static void push_deadline_to_now(void *arg) {
    scope_run_t *s = arg;
    CU_ASSERT_EQUAL(tl_timeout_reschedule(s->scope, 0), 0); /* in the past */
}

static void test_deadline_moved_from_outside_while_the_task_awaits(void) {
    tl_loop_t *loop = tl_test_loop();
    scope_run_t s = {FOREVER, FOREVER, -1, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = spawn_scope(loop, &s);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, push_deadline_to_now, &s, NULL), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ETIMEDOUT);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* The race the issue names: the scope expires and, before the task
 * resumes, someone else cancels it too. The outer cancel must win. */
static void test_an_outer_cancel_inside_an_expired_scope_wins(void) {
    tl_loop_t *loop = tl_test_loop();
    scope_run_t s = {1 * MS, FOREVER, -1, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = spawn_scope(loop, &s);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* in the scope */
    for (int i = 0; i < 100 && tl_task_cancelling(t) == 0; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1 * MS), 0);
    CU_ASSERT_EQUAL_FATAL(tl_timeout_expired(s.scope), 1); /* not resumed yet */
    CU_ASSERT_EQUAL(tl_task_cancel(t, "outer"), 1);
    CU_ASSERT_EQUAL(tl_task_cancelling(t), 2);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ECANCELLED);
    CU_ASSERT_EQUAL(s.exit_rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(s.cancelling_after, 1); /* the outer request stays */
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_an_outer_cancel_before_the_deadline_passes_through(void) {
    tl_loop_t *loop = tl_test_loop();
    scope_run_t s = {10000 * MS, FOREVER, -1, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = spawn_scope(loop, &s);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_task_cancel(t, NULL), 1);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ECANCELLED);
    CU_ASSERT_EQUAL(s.expired, 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* The timeout fires while the task awaits something else than a sleep: a
 * child task, which the cancellation reaches too. */
typedef struct awaits_child {
    job_t child;
    int rc, exit_rc;
} awaits_child_t;

static int awaits_a_child_in_a_scope(void *arg, void **result) {
    awaits_child_t *a = arg;
    (void)result;
    tl_timeout_t *scope;
    tl_task_t *child;
    int rc = tl_timeout_enter(2 * MS, &scope);
    if (rc)
        return rc;
    if ((rc = tl_task_spawn(tl_loop_get_running(), tt_job, &a->child, NULL, &child)) == 0) {
        a->rc = tl_await(tl_task_future(child), NULL);
        tl_task_unref(child);
    }
    a->exit_rc = tl_timeout_exit(scope, a->rc);
    return a->exit_rc;
}

static void test_timeout_firing_while_the_task_awaits_a_child(void) {
    tl_loop_t *loop = tl_test_loop();
    awaits_child_t a = {{FOREVER, 0, 1 * MS, 0, 0, 0, 0, NULL}, 1, 1};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, awaits_a_child_in_a_scope, &a, NULL, &t), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ETIMEDOUT);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(a.child.was_cancelled, 1);
    CU_ASSERT_EQUAL(a.child.finished, 1); /* the await waited for it */
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* A gather under a timeout scope: the deadline cancels the gather's
 * children through the task's await. */
static int gathers_in_a_scope(void *arg, void **result) {
    job_t *jobs = arg;
    (void)result;
    tl_loop_t *loop = tl_loop_get_running();
    tl_timeout_t *scope;
    int rc = tl_timeout_enter(2 * MS, &scope);
    if (rc)
        return rc;
    tl_task_t *t[2];
    tl_future_t *f[2], *g;
    for (int i = 0; i < 2; i++) {
        tl_task_spawn(loop, tt_job, &jobs[i], NULL, &t[i]);
        f[i] = tl_task_future(t[i]);
    }
    if ((rc = tl_gather(loop, f, 2, 0, &g)) == 0) {
        rc = tl_await(g, NULL);
        tl_future_unref(g);
    }
    tl_task_unref(t[0]);
    tl_task_unref(t[1]);
    return tl_timeout_exit(scope, rc);
}

static void test_a_gather_under_a_timeout_scope(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t jobs[2] = {{0, 0, 0, 0, 0, 0, 0, NULL}, {FOREVER, 0, 0, 0, 0, 0, 0, NULL}};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, gathers_in_a_scope, jobs, NULL, &t), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ETIMEDOUT);
    CU_ASSERT_EQUAL(jobs[0].finished, 1);
    CU_ASSERT_EQUAL(jobs[1].was_cancelled, 1);
    CU_ASSERT_EQUAL(tl_task_all(loop, NULL, 0), 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* Nested scopes: each converts only its own expiry. */
typedef struct nested {
    int64_t outer, inner; /* deadlines from now */
    int64_t block;        /* block the thread this long inside both */
    int inner_rc, outer_rc;
} nested_t;

static int nests(void *arg, void **result) {
    nested_t *n = arg;
    (void)result;
    tl_timeout_t *o, *i;
    int rc = tl_timeout_enter(n->outer, &o);
    if (rc)
        return rc;
    if ((rc = tl_timeout_enter(n->inner, &i))) {
        tl_timeout_exit(o, 0);
        return rc;
    }
    if (n->block)
        tt_block(n->block); /* both deadlines pass before the next iteration */
    rc = tl_sleep(FOREVER);
    n->inner_rc = tl_timeout_exit(i, rc);
    n->outer_rc = tl_timeout_exit(o, n->inner_rc);
    return tl_task_cancelling(tl_task_current()) == 0 ? 0 : TL_EUNKNOWN;
}

static void run_nested(nested_t *n) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, nests, n, NULL, &t), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_nested_scopes_each_convert_only_their_own_expiry(void) {
    nested_t inner_first = {FOREVER, 1 * MS, 0, 0, 0};
    run_nested(&inner_first);
    CU_ASSERT_EQUAL(inner_first.inner_rc, TL_ETIMEDOUT);
    CU_ASSERT_EQUAL(inner_first.outer_rc, TL_ETIMEDOUT); /* passed through */
    nested_t outer_first = {1 * MS, FOREVER, 0, 0, 0};
    run_nested(&outer_first);
    CU_ASSERT_EQUAL(outer_first.inner_rc, TL_ECANCELLED); /* not its own */
    CU_ASSERT_EQUAL(outer_first.outer_rc, TL_ETIMEDOUT);
    nested_t both = {1 * MS, 1 * MS, 3 * MS, 0, 0};
    run_nested(&both);
    CU_ASSERT_EQUAL(both.inner_rc, TL_ECANCELLED); /* the outer one remains */
    CU_ASSERT_EQUAL(both.outer_rc, TL_ETIMEDOUT);
}

static int swallows_in_scope(void *arg, void **result) {
    (void)arg;
    (void)result;
    tl_timeout_t *t;
    int rc = tl_timeout_enter(1 * MS, &t);
    if (rc)
        return rc;
    rc = tl_sleep(FOREVER);
    rc = tl_timeout_exit(t, rc == TL_ECANCELLED ? 0 : TL_EUNKNOWN); /* handled */
    if (rc || tl_task_cancelling(tl_task_current()) != 0)
        return TL_EUNKNOWN;
    return tl_sleep(0); /* nothing pending */
}

static void test_a_body_that_handles_the_cancellation_ends_normally(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, swallows_in_scope, NULL, NULL, &t), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static int misuses_scopes(void *arg, void **result) {
    (void)arg;
    (void)result;
    tl_timeout_t *t;
    if (tl_timeout_enter(1, NULL) != TL_EINVAL || tl_timeout_enter_at(0, NULL) != TL_EINVAL)
        return TL_EUNKNOWN;
    int rc = tl_timeout_enter_at(0, &t); /* already passed */
    if (rc)
        return rc;
    rc = tl_sleep(FOREVER);
    if (rc != TL_ECANCELLED || tl_timeout_expired(t) != 1)
        return TL_EUNKNOWN;
    if (tl_timeout_reschedule(t, -1) != TL_ESTATE) /* expired: too late */
        return TL_EUNKNOWN;
    return tl_timeout_exit(t, rc) == TL_ETIMEDOUT ? 0 : TL_EUNKNOWN;
}

static void test_scope_misuse_and_a_passed_deadline(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_timeout_t *t = NULL;
    CU_ASSERT_EQUAL(tl_timeout_enter(1 * MS, &t), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_timeout_enter_at(0, &t), TL_ENOTASK);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_EQUAL(tl_timeout_exit(NULL, 0), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_timeout_reschedule(NULL, 0), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_timeout_expired(NULL), TL_EINVAL);
    tl_task_t *task;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, misuses_scopes, NULL, NULL, &task), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(task)), 0);
    tl_task_unref(task);
    tl_test_loop_free(loop);
}

/* A task left in its scope when the loop closes: the exit still frees it. */
static void test_a_scope_open_when_the_loop_closes(void) {
    tl_loop_t *loop = tl_test_loop();
    scope_run_t s = {FOREVER, FOREVER, -1, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = spawn_scope(loop, &s);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(s.exit_rc, TL_ECANCELLED);
    tl_task_unref(t);
}

static long fail_at;
static int enter_rc;

static int enters_with_failure(void *arg, void **result) {
    (void)arg;
    (void)result;
    tl_timeout_t *t = NULL;
    tl_test_fail_alloc_at(fail_at);
    enter_rc = tl_timeout_enter(50 * MS, &t);
    tl_test_fail_alloc_at(0);
    if (enter_rc)
        return t == NULL ? 0 : TL_EUNKNOWN;
    if (tl_timeout_reschedule(t, -1) != 0)
        return TL_EUNKNOWN;
    return tl_timeout_exit(t, 0);
}

static void test_enter_survives_each_allocation_failing(void) {
    for (fail_at = 1; fail_at < 20; fail_at++) {
        tl_loop_t *loop = tl_test_loop();
        tl_task_t *t;
        CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, enters_with_failure, NULL, NULL, &t), 0);
        CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
        tl_task_unref(t);
        tl_test_loop_free(loop);
        if (enter_rc == 0)
            return;
        CU_ASSERT_EQUAL(enter_rc, TL_ENOMEM);
    }
    CU_FAIL("enter never succeeded");
}

TL_TEST_SUITE(task_timeout,
              TL_TEST(test_an_expired_scope_turns_its_cancellation_into_a_timeout),
              TL_TEST(test_a_scope_that_did_not_expire_passes_the_outcome_through),
              TL_TEST(test_deadline_set_while_inside_a_scope_entered_without_one),
              TL_TEST(test_deadline_moved_later_while_inside),
              TL_TEST(test_deadline_moved_from_outside_while_the_task_awaits),
              TL_TEST(test_an_outer_cancel_inside_an_expired_scope_wins),
              TL_TEST(test_an_outer_cancel_before_the_deadline_passes_through),
              TL_TEST(test_timeout_firing_while_the_task_awaits_a_child),
              TL_TEST(test_a_gather_under_a_timeout_scope),
              TL_TEST(test_nested_scopes_each_convert_only_their_own_expiry),
              TL_TEST(test_a_body_that_handles_the_cancellation_ends_normally),
              TL_TEST(test_scope_misuse_and_a_passed_deadline),
              TL_TEST(test_a_scope_open_when_the_loop_closes),
              TL_TEST(test_enter_survives_each_allocation_failing))
