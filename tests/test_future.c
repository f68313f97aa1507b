/* future: asyncio.Future semantics - outcomes, done callbacks, references,
 * errors never retrieved, bad calls, run_until_complete, closing. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tl_test.h"

/* ---- helpers ---------------------------------------------------------- */

/* A string comparison that fails, rather than crashes, on NULL. */
#define ASSERT_STR(got, want)                                                 \
    do {                                                                      \
        const char *got_ = (got);                                             \
        CU_ASSERT_PTR_NOT_NULL(got_);                                         \
        if (got_)                                                             \
            CU_ASSERT_STRING_EQUAL(got_, want);                               \
    } while (0)

/* Done callbacks append their id to a shared log. */
typedef struct cb_log {
    int ids[64];
    int n;
} cb_log_t;

typedef struct entry {
    cb_log_t *log;
    int id;
    tl_future_t *seen; /* the future the callback was given */
    int outcome;       /* tl_future_error() inside the callback */
} entry_t;

static void record(tl_future_t *f, void *ctx) {
    entry_t *e = ctx;
    e->seen = f;
    e->outcome = tl_future_error(f);
    if (e->log->n < 64)
        e->log->ids[e->log->n++] = e->id;
}

static void other_record(tl_future_t *f, void *ctx) { record(f, ctx); }

static void count_call(void *ctx) { (*(int *)ctx)++; }

/* Run iterations that do not wait for I/O. */
static void spin(tl_loop_t *loop, int iterations) {
    for (int i = 0; i < iterations; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
}

/* A result value whose destructor counts its calls and the thread. */
typedef struct value {
    int destroyed;
    pthread_t thread;
    int seen_by_callback;
} value_t;

static void destroy_value(void *p) {
    value_t *v = p;
    v->destroyed++;
    v->thread = pthread_self();
}

static tl_future_t *new_future(tl_loop_t *loop) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &f), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    return f;
}

/* ---- states ----------------------------------------------------------- */

static void test_new_future_is_pending(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_EQUAL(tl_future_cancelled(f), 0);
    void *v = (void *)&v;
    CU_ASSERT_EQUAL(tl_future_result(f, &v), TL_EPENDING);
    CU_ASSERT_PTR_EQUAL(v, (void *)&v); /* untouched */
    CU_ASSERT_EQUAL(tl_future_error(f), TL_EPENDING);
    CU_ASSERT_PTR_NULL(tl_future_error_message(f));
    CU_ASSERT_PTR_EQUAL(tl_future_get_loop(f), loop);
    CU_ASSERT_EQUAL(tl_future_unref(f), 0);
    tl_test_loop_free(loop);
}

static void test_new_future_rejects_bad_arguments(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = (tl_future_t *)&f;
    CU_ASSERT_EQUAL(tl_future_new(NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_new(loop, NULL), TL_EINVAL);
    CU_ASSERT_PTR_EQUAL(f, (tl_future_t *)&f); /* *out set only on success */
    tl_test_loop_free(loop);
}

static void test_set_result_makes_the_future_done(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    int x = 42;
    CU_ASSERT_EQUAL(tl_future_set_result(f, &x, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    CU_ASSERT_EQUAL(tl_future_cancelled(f), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_future_result(f, &v), 0);
    CU_ASSERT_PTR_EQUAL(v, &x);
    CU_ASSERT_EQUAL(tl_future_result(f, NULL), 0); /* value may be NULL */
    CU_ASSERT_EQUAL(tl_future_error(f), 0);
    CU_ASSERT_PTR_NULL(tl_future_error_message(f));
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_set_result_accepts_a_null_value(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    void *v = &v;
    CU_ASSERT_EQUAL(tl_future_result(f, &v), 0);
    CU_ASSERT_PTR_NULL(v);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_set_result_twice_is_an_error(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    value_t a = {0}, b = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &a, destroy_value), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, &b, destroy_value), TL_ESTATE);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_future_result(f, &v), 0);
    CU_ASSERT_PTR_EQUAL(v, &a);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(a.destroyed, 1);
    CU_ASSERT_EQUAL(b.destroyed, 0); /* the failed call left b to the caller */
    tl_test_loop_free(loop);
}

static void test_result_destructor_runs_once_when_the_last_reference_goes(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    value_t a = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &a, destroy_value), 0);
    CU_ASSERT_EQUAL(tl_future_ref(f), 0);
    CU_ASSERT_EQUAL(tl_future_ref(f), 0);
    CU_ASSERT_EQUAL(tl_future_unref(f), 0);
    CU_ASSERT_EQUAL(tl_future_unref(f), 0);
    spin(loop, 2);
    CU_ASSERT_EQUAL(a.destroyed, 0);
    CU_ASSERT_EQUAL(tl_future_unref(f), 0);
    CU_ASSERT_EQUAL(a.destroyed, 1);
    CU_ASSERT(pthread_equal(a.thread, pthread_self()));
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.destroyed, 1);
    tl_test_loop_free(loop);
}

static void test_destructor_is_not_run_for_a_pending_or_failed_future(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    value_t a = {0};
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(tl_future_set_result(f, &a, destroy_value), TL_ESTATE);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(a.destroyed, 0);
    f = new_future(loop);
    tl_future_unref(f); /* pending when freed: nothing to destroy */
    tl_test_loop_free(loop);
}

static void test_set_error_copies_the_message(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    char msg[32] = "peer went away";
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_ECONNRESET, msg), 0);
    strcpy(msg, "overwritten");
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    CU_ASSERT_EQUAL(tl_future_cancelled(f), 0);
    ASSERT_STR(tl_future_error_message(f), "peer went away");
    CU_ASSERT_PTR_NOT_EQUAL(tl_future_error_message(f), msg);
    CU_ASSERT_EQUAL(tl_future_error(f), TL_ECONNRESET);
    void *v = (void *)&v;
    CU_ASSERT_EQUAL(tl_future_result(f, &v), TL_ECONNRESET);
    CU_ASSERT_PTR_EQUAL(v, (void *)&v); /* untouched on an error */
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_set_error_without_a_message(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_ETIMEDOUT, NULL), 0);
    CU_ASSERT_PTR_NULL(tl_future_error_message(f));
    CU_ASSERT_EQUAL(tl_future_error(f), TL_ETIMEDOUT);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_set_error_rejects_codes_that_are_not_errors(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_set_error(f, 0, "zero"), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_set_error(f, 1, "positive"), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_set_error(f, 22, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_ECANCELLED, "use cancel"), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_PTR_NULL(tl_future_error_message(f));
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_EIO, "ok"), 0);
    CU_ASSERT_EQUAL(tl_future_error(f), TL_EIO);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_set_error_on_a_done_future_is_an_error(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *r = new_future(loop), *e = new_future(loop), *c = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_set_result(r, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_set_error(e, TL_EIO, "first"), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(c, "stop"), 1);
    CU_ASSERT_EQUAL(tl_future_set_error(r, TL_EPIPE, "late"), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_future_set_error(e, TL_EPIPE, "late"), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_future_set_error(c, TL_EPIPE, "late"), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_future_set_result(e, NULL, NULL), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_future_error(r), 0);
    CU_ASSERT_EQUAL(tl_future_error(e), TL_EIO);
    ASSERT_STR(tl_future_error_message(e), "first");
    CU_ASSERT_EQUAL(tl_future_error(c), TL_ECANCELLED);
    ASSERT_STR(tl_future_error_message(c), "stop");
    tl_future_unref(r);
    tl_future_unref(e);
    tl_future_unref(c);
    tl_test_loop_free(loop);
}

static void test_cancel_returns_1_then_0(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    char msg[16] = "enough";
    CU_ASSERT_EQUAL(tl_future_cancel(f, msg), 1);
    strcpy(msg, "changed");
    CU_ASSERT_EQUAL(tl_future_cancel(f, "again"), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    CU_ASSERT_EQUAL(tl_future_cancelled(f), 1);
    ASSERT_STR(tl_future_error_message(f), "enough");
    void *v = (void *)&v;
    CU_ASSERT_EQUAL(tl_future_result(f, &v), TL_ECANCELLED);
    CU_ASSERT_PTR_EQUAL(v, (void *)&v);
    CU_ASSERT_EQUAL(tl_future_error(f), TL_ECANCELLED);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_cancel_without_a_message(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_PTR_NULL(tl_future_error_message(f));
    CU_ASSERT_EQUAL(tl_future_cancelled(f), 1);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_cancel_after_completion_changes_nothing(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *r = new_future(loop), *e = new_future(loop);
    int x = 1;
    CU_ASSERT_EQUAL(tl_future_set_result(r, &x, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_set_error(e, TL_EPIPE, "broken"), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(r, "no"), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(e, "no"), 0);
    CU_ASSERT_EQUAL(tl_future_cancelled(r), 0);
    CU_ASSERT_EQUAL(tl_future_cancelled(e), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_future_result(r, &v), 0);
    CU_ASSERT_PTR_EQUAL(v, &x);
    CU_ASSERT_PTR_NULL(tl_future_error_message(r));
    CU_ASSERT_EQUAL(tl_future_error(e), TL_EPIPE);
    ASSERT_STR(tl_future_error_message(e), "broken");
    tl_future_unref(r);
    tl_future_unref(e);
    tl_test_loop_free(loop);
}

/* ---- done callbacks --------------------------------------------------- */

static void test_done_callbacks_never_run_inside_set_result(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    cb_log_t log = {0};
    entry_t e = {&log, 1, NULL, 1};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    CU_ASSERT_EQUAL(log.n, 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 1);
    CU_ASSERT_PTR_EQUAL(e.seen, f);
    CU_ASSERT_EQUAL(e.outcome, 0);
    spin(loop, 2);
    CU_ASSERT_EQUAL(log.n, 1); /* exactly once */
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_done_callbacks_never_run_inside_set_error_or_cancel(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = new_future(loop), *b = new_future(loop);
    cb_log_t log = {0};
    entry_t ea = {&log, 1, NULL, 1}, eb = {&log, 2, NULL, 1};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(a, record, &ea), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(b, record, &eb), 0);
    CU_ASSERT_EQUAL(tl_future_set_error(a, TL_EIO, "x"), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(b, NULL), 1);
    CU_ASSERT_EQUAL(log.n, 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 2);
    CU_ASSERT_EQUAL(log.ids[0], 1);
    CU_ASSERT_EQUAL(log.ids[1], 2);
    CU_ASSERT_EQUAL(ea.outcome, TL_EIO);
    CU_ASSERT_EQUAL(eb.outcome, TL_ECANCELLED);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

static void test_done_callbacks_run_in_the_order_added(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    cb_log_t log = {0};
    entry_t e[9];
    for (int i = 0; i < 9; i++) { /* past the inline slots and a regrowth */
        e[i] = (entry_t){&log, i, NULL, 1};
        CU_ASSERT_EQUAL(tl_future_add_done_callback(f, i % 2 ? record : other_record,
                                                    &e[i]), 0);
    }
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL_FATAL(log.n, 9);
    for (int i = 0; i < 9; i++)
        CU_ASSERT_EQUAL(log.ids[i], i);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

typedef struct seq {
    int next, bad, calls;
} seq_t;

static int seq_ids[1500];

static void in_sequence(tl_future_t *f, void *ctx) {
    seq_t *s = ctx;
    void *v = NULL;
    tl_future_result(f, &v);
    if (*(int *)v != s->next)
        s->bad++;
    s->next++;
    s->calls++;
}

static void test_callbacks_of_many_futures_run_in_completion_order(void) {
    enum { N = 1500 }; /* more than the ready queue first holds */
    tl_loop_t *loop = tl_test_loop();
    static tl_future_t *fs[N];
    seq_t s = {0, 0, 0};
    for (int i = 0; i < N; i++) {
        fs[i] = new_future(loop);
        CU_ASSERT_EQUAL(tl_future_add_done_callback(fs[i], in_sequence, &s), 0);
    }
    /* Completed in reverse creation order: that order is what counts. */
    for (int i = 0; i < N; i++) {
        seq_ids[i] = i;
        CU_ASSERT_EQUAL(tl_future_set_result(fs[N - 1 - i], &seq_ids[i], NULL), 0);
    }
    CU_ASSERT_EQUAL(s.calls, 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(s.calls, N);
    CU_ASSERT_EQUAL(s.bad, 0);
    for (int i = 0; i < N; i++)
        tl_future_unref(fs[i]);
    tl_test_loop_free(loop);
}

static void test_callback_added_after_completion_is_scheduled(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    cb_log_t log = {0};
    entry_t e = {&log, 7, NULL, 1};
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_EPIPE, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e), 0);
    CU_ASSERT_EQUAL(log.n, 0); /* never from inside the call */
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 1);
    CU_ASSERT_PTR_EQUAL(e.seen, f);
    CU_ASSERT_EQUAL(e.outcome, TL_EPIPE);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_callbacks_added_after_completion_run_after_earlier_ones(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    cb_log_t log = {0};
    entry_t e[4];
    for (int i = 0; i < 4; i++)
        e[i] = (entry_t){&log, i, NULL, 1};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e[0]), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e[1]), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e[2]), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e[3]), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL_FATAL(log.n, 4);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(log.ids[i], i);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_same_callback_added_twice_runs_twice(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop), *g = new_future(loop);
    cb_log_t log = {0};
    entry_t e = {&log, 5, NULL, 1};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(g, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(g, record, &e), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(g, record, &e), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 4);
    tl_future_unref(f);
    tl_future_unref(g);
    tl_test_loop_free(loop);
}

static void test_remove_done_callback_removes_every_matching_pair(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    cb_log_t log = {0};
    entry_t x = {&log, 1, NULL, 1}, y = {&log, 2, NULL, 1};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &x), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &y), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &x), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, other_record, &x), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &x), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &y), 0);
    CU_ASSERT_EQUAL(tl_future_remove_done_callback(f, record, &x), 3);
    CU_ASSERT_EQUAL(tl_future_remove_done_callback(f, record, &x), 0);
    CU_ASSERT_EQUAL(tl_future_remove_done_callback(f, other_record, &y), 0);
    CU_ASSERT_EQUAL(tl_future_remove_done_callback(f, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    spin(loop, 1);
    /* What is left runs in its original order: y, other(x), y. */
    CU_ASSERT_EQUAL_FATAL(log.n, 3);
    CU_ASSERT_EQUAL(log.ids[0], 2);
    CU_ASSERT_EQUAL(log.ids[1], 1);
    CU_ASSERT_EQUAL(log.ids[2], 2);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_removing_every_callback_schedules_nothing(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    cb_log_t log = {0};
    entry_t x = {&log, 1, NULL, 1};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &x), 0);
    CU_ASSERT_EQUAL(tl_future_remove_done_callback(f, record, &x), 1);
    long before = tl_test_alloc_count();
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_test_alloc_count(), before);
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 0);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_remove_done_callback_returns_0_once_done(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    cb_log_t log = {0};
    entry_t x = {&log, 1, NULL, 1};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &x), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_remove_done_callback(f, record, &x), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 1); /* it was already scheduled */
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &x), 0);
    CU_ASSERT_EQUAL(tl_future_remove_done_callback(f, record, &x), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 2);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

/* A callback that registers another on the same future. */
typedef struct chain {
    cb_log_t log;
    entry_t second;
    int add_rc;
} chain_t;

static void add_another(tl_future_t *f, void *ctx) {
    chain_t *c = ctx;
    c->log.ids[c->log.n++] = 100;
    c->add_rc = tl_future_add_done_callback(f, record, &c->second);
}

static void test_callback_can_add_another_callback(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    chain_t c = {0};
    c.second = (entry_t){&c.log, 200, NULL, 1};
    c.add_rc = 1;
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, add_another, &c), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.add_rc, 0);
    CU_ASSERT_EQUAL(c.log.n, 1); /* the new one waits for the next iteration */
    spin(loop, 1);
    CU_ASSERT_EQUAL_FATAL(c.log.n, 2);
    CU_ASSERT_EQUAL(c.log.ids[1], 200);
    CU_ASSERT_PTR_EQUAL(c.second.seen, f);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

/* A callback that owns the only reference the program keeps and drops it. */
typedef struct dropper {
    int calls;
    int result_rc;
    value_t *value;
    int destroyed_during_call;
} dropper_t;

static void drop_reference(tl_future_t *f, void *ctx) {
    dropper_t *d = ctx;
    d->calls++;
    CU_ASSERT_EQUAL(tl_future_unref(f), 0);
    /* The loop still holds its own reference: f stays valid. */
    d->result_rc = tl_future_result(f, NULL);
    d->destroyed_during_call = d->value ? d->value->destroyed : 0;
}

static void see_value(tl_future_t *f, void *ctx) {
    value_t *v = ctx;
    void *got = NULL;
    if (tl_future_result(f, &got) == 0 && got == v && v->destroyed == 0)
        v->seen_by_callback++;
}

static void test_callback_can_drop_the_last_reference(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    value_t v = {0};
    dropper_t d = {0, 1, &v, -1};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, drop_reference, &d), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, see_value, &v), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
    spin(loop, 1); /* must not crash or touch freed memory */
    CU_ASSERT_EQUAL(d.calls, 1);
    CU_ASSERT_EQUAL(d.result_rc, 0);
    CU_ASSERT_EQUAL(d.destroyed_during_call, 0);
    CU_ASSERT_EQUAL(v.seen_by_callback, 1); /* the next callback still saw it */
    CU_ASSERT_EQUAL(v.destroyed, 1);        /* and then it was freed */
    tl_test_loop_free(loop);
}

static void test_late_callback_can_drop_the_last_reference(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    value_t v = {0};
    dropper_t d = {0, 1, &v, -1};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, drop_reference, &d), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, see_value, &v), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(d.calls, 1);
    CU_ASSERT_EQUAL(d.result_rc, 0);
    CU_ASSERT_EQUAL(d.destroyed_during_call, 0);
    CU_ASSERT_EQUAL(v.seen_by_callback, 1);
    CU_ASSERT_EQUAL(v.destroyed, 1);
    tl_test_loop_free(loop);
}

static void test_unref_right_after_set_result_keeps_the_future_for_its_callbacks(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    value_t v = {0};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, see_value, &v), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, see_value, &v), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, see_value, &v), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
    CU_ASSERT_EQUAL(tl_future_unref(f), 0);
    CU_ASSERT_EQUAL(v.destroyed, 0); /* the loop holds it for the callbacks */
    spin(loop, 1);
    CU_ASSERT_EQUAL(v.seen_by_callback, 3);
    CU_ASSERT_EQUAL(v.destroyed, 1);
    tl_test_loop_free(loop);
}

static void test_unref_right_after_adding_a_late_callback_keeps_the_future(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    value_t v = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, see_value, &v), 0);
    CU_ASSERT_EQUAL(tl_future_unref(f), 0);
    CU_ASSERT_EQUAL(v.destroyed, 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(v.seen_by_callback, 1);
    CU_ASSERT_EQUAL(v.destroyed, 1);
    tl_test_loop_free(loop);
}

static void test_add_done_callback_rejects_a_null_callback(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, NULL, NULL), TL_EINVAL);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

/* ---- memory: the loop's cache of futures ------------------------------ */

typedef struct unref_job {
    tl_future_t *f;
    int times;
    int rc;
} unref_job_t;
static void *unref_in_thread(void *arg);

/* Every allocation on the way fails once: TL_ENOMEM, nothing leaks (the
 * runner checks), and the next try works. */
static void test_future_new_out_of_memory_is_clean(void) {
    for (long n = 1; n < 6; n++) {
        tl_loop_t *loop = tl_test_loop(); /* fresh: no cache yet */
        tl_future_t *f = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl_future_new(loop, &f);
        tl_test_fail_alloc_at(0);
        CU_ASSERT(rc == 0 || rc == TL_ENOMEM);
        if (rc) {
            CU_ASSERT_PTR_NULL(f);
            CU_ASSERT_EQUAL(tl_future_new(loop, &f), 0);
        }
        CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
        tl_future_unref(f);
        tl_test_loop_free(loop);
    }
}

/* Futures freed on the loop's thread are reused: while a loop has
 * futures out, a steady stream of new ones costs no allocation. */
static void test_recycled_futures_allocate_nothing(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *kept = new_future(loop);
    long before = 0;
    for (int i = 0; i < 1000; i++) {
        if (i == 1) /* the first round sized the cache */
            before = tl_test_alloc_count();
        tl_future_t *f = new_future(loop), *g = new_future(loop);
        CU_ASSERT_EQUAL(tl_future_done(f), 0); /* memory comes back clean */
        CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
        tl_future_unref(g);
        tl_future_unref(f);
    }
    CU_ASSERT_EQUAL(tl_test_alloc_count(), before);
    tl_future_unref(kept);
    tl_test_loop_free(loop);
}

/* A loop with no future out holds no memory for them. */
static void test_a_loop_at_rest_holds_no_future_memory(void) {
    tl_loop_t *loop = tl_test_loop();
    long live = tl_test_live_allocs();
    tl_future_t *fs[100];
    for (int i = 0; i < 100; i++)
        fs[i] = new_future(loop);
    CU_ASSERT(tl_test_live_allocs() > live);
    for (int i = 0; i < 100; i++)
        tl_future_unref(fs[i]);
    CU_ASSERT_EQUAL(tl_test_live_allocs(), live);
    tl_test_loop_free(loop);
}

/* A burst of futures (large enough for the cache's largest chunks) is
 * given back as it is freed, whatever the order: afterwards the loop holds
 * what it held before. */
static void test_a_burst_of_futures_is_given_back(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_unref(new_future(loop));
    long live = tl_test_live_allocs();
    enum { N = 80000 };
    tl_future_t **fs = malloc(N * sizeof(*fs));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fs);
    for (int i = 0; i < N; i++)
        fs[i] = new_future(loop);
    CU_ASSERT(tl_test_live_allocs() > live);
    for (int i = 0; i < N; i += 2) /* every other, then the rest backwards */
        tl_future_unref(fs[i]);
    for (int i = N - 1; i > 0; i -= 2)
        tl_future_unref(fs[i]);
    CU_ASSERT_EQUAL(tl_test_live_allocs(), live);
    /* and the memory serves again */
    for (int i = 0; i < N / 4; i++)
        fs[i] = new_future(loop);
    for (int i = 0; i < N / 4; i++) {
        CU_ASSERT_EQUAL(tl_future_set_result(fs[i], NULL, NULL), 0);
        tl_future_unref(fs[i]);
    }
    spin(loop, 1);
    free(fs);
    tl_test_loop_free(loop);
}

/* Futures that outlive their loop's close keep their memory until their
 * last unref, on the loop's thread or another one. */
static void test_futures_outliving_their_closed_loop_are_freed_later(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop), *g = new_future(loop);
    value_t v = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(g, &v, destroy_value), 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(v.destroyed, 0);
    unref_job_t j = {g, 1, -1};
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, unref_in_thread, &j), 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(v.destroyed, 1);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

/* ---- references and threads ------------------------------------------ */

static void test_ref_and_unref_reject_null(void) {
    CU_ASSERT_EQUAL(tl_future_ref(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_unref(NULL), TL_EINVAL);
    CU_ASSERT_PTR_NULL(tl_future_get_loop(NULL));
}

static void test_future_keeps_its_loop_alive(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0); /* the caller's reference */
    /* The future's reference keeps the loop usable. */
    CU_ASSERT_EQUAL(tl_loop_is_closed(loop), 0);
    cb_log_t log = {0};
    entry_t e = {&log, 1, NULL, 1};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(log.n, 1);
    CU_ASSERT_EQUAL(tl_future_unref(f), 0); /* frees the loop too */
}


static void *unref_in_thread(void *arg) {
    unref_job_t *j = arg;
    j->rc = 0;
    for (int i = 0; i < j->times; i++)
        j->rc |= tl_future_unref(j->f);
    return NULL;
}

static void *ref_unref_in_thread(void *arg) {
    unref_job_t *j = arg;
    j->rc = 0;
    for (int i = 0; i < j->times; i++) {
        j->rc |= tl_future_ref(j->f);
        j->rc |= tl_future_unref(j->f);
    }
    return NULL;
}

/* PER unref jobs in a row (see the many-threads test). */
static void *unref_many(void *arg) {
    unref_job_t *j = arg;
    for (int k = 0; k < 64; k++)
        unref_in_thread(&j[k]);
    return NULL;
}

static void run_thread(void *(*fn)(void *), void *arg) {
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, fn, arg), 0);
    CU_ASSERT_EQUAL(pthread_join(t, NULL), 0);
}

static void test_unref_from_another_thread_frees_on_the_loop_thread(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    value_t v = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
    unref_job_t j = {f, 1, -1};
    run_thread(unref_in_thread, &j);
    CU_ASSERT_EQUAL(j.rc, 0);
    CU_ASSERT_EQUAL(v.destroyed, 0); /* handed over, not freed there */
    /* The handover woke the loop: this iteration does not block. */
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 2000000000), 0);
    CU_ASSERT(tl_now_ns() - t0 < 1000000000u);
    CU_ASSERT_EQUAL(v.destroyed, 1);
    CU_ASSERT(pthread_equal(v.thread, pthread_self()));
    tl_test_loop_free(loop);
}

static void *unref_in_thread_out_of_memory(void *arg) {
    tl_test_fail_alloc_at(1); /* whatever the hand-over would allocate */
    void *r = unref_in_thread(arg);
    tl_test_fail_alloc_at(0);
    return r;
}

/* The free of a future whose class owns loop-side state (a socket
 * operation's watcher) must happen on the loop's thread even when memory
 * runs out: the hand-over cannot fail. */
static void test_unref_from_another_thread_out_of_memory_still_frees_on_the_loop_thread(void) {
    tl_loop_t *loop = tl_test_loop(); /* fresh: its hand-over queues are empty */
    tl_future_t *f = new_future(loop);
    value_t v = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
    unref_job_t j = {f, 1, -1};
    run_thread(unref_in_thread_out_of_memory, &j);
    CU_ASSERT_EQUAL(j.rc, 0);
    CU_ASSERT_EQUAL(v.destroyed, 0); /* not on the other thread */
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 2000000000), 0);
    CU_ASSERT(tl_now_ns() - t0 < 1000000000u);
    CU_ASSERT_EQUAL(v.destroyed, 1);
    CU_ASSERT(pthread_equal(v.thread, pthread_self()));
    tl_test_loop_free(loop);
}

/* Many threads handing frees over at once: each is freed once, on the
 * loop's thread. */
static void test_unrefs_from_many_threads_all_free_on_the_loop_thread(void) {
    tl_loop_t *loop = tl_test_loop();
    enum { N = 8, PER = 64 };
    static value_t vals[N * PER];
    memset(vals, 0, sizeof vals);
    static tl_future_t *futs[N][PER];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < PER; k++) {
            futs[i][k] = new_future(loop);
            CU_ASSERT_EQUAL(tl_future_set_result(futs[i][k], &vals[i * PER + k], destroy_value), 0);
        }
    pthread_t t[N];
    static unref_job_t jobs[N][PER];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < PER; k++)
            jobs[i][k] = (unref_job_t){futs[i][k], 1, -1};
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, unref_many, jobs[i]), 0);
    int freed = 0;
    for (int round = 0; round < 1000 && freed < N * PER; round++) {
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1000000), 0);
        freed = 0;
        for (int i = 0; i < N * PER; i++)
            freed += vals[i].destroyed;
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    spin(loop, 1);
    for (int i = 0; i < N * PER; i++) {
        CU_ASSERT_EQUAL(vals[i].destroyed, 1);
        CU_ASSERT(pthread_equal(vals[i].thread, pthread_self()));
    }
    tl_test_loop_free(loop);
}

static void *unref_after_a_while(void *arg) {
    unref_job_t *j = arg;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    return unref_in_thread(j);
}

static void test_unref_from_another_thread_wakes_a_sleeping_loop(void) {
    tl_loop_t *loop = tl_test_loop();
    int ran = 0;
    /* Two rounds size both of the loop's hand-over queues, so the other
     * thread allocates nothing (the test allocator is single-threaded). */
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, count_call, &ran), 0);
        spin(loop, 1);
    }
    CU_ASSERT_EQUAL(ran, 2);
    tl_future_t *f = new_future(loop);
    value_t v = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
    unref_job_t j = {f, 1, -1};
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, unref_after_a_while, &j), 0);
    uint64_t t0 = tl_now_ns();
    for (int i = 0; i < 5 && v.destroyed == 0; i++) /* a wakeup may come early */
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 2000000000), 0);
    uint64_t took = tl_now_ns() - t0;
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(v.destroyed, 1);
    CU_ASSERT(pthread_equal(v.thread, pthread_self()));
    CU_ASSERT(took < 1000000000u);
    tl_test_loop_free(loop);
}

static void test_unref_from_another_thread_that_is_not_the_last_frees_nothing(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    value_t v = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
    tl_future_ref(f);
    unref_job_t j = {f, 1, -1};
    run_thread(unref_in_thread, &j);
    spin(loop, 1);
    CU_ASSERT_EQUAL(v.destroyed, 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(v.destroyed, 1);
    tl_test_loop_free(loop);
}

static void test_unref_from_another_thread_after_close_still_frees(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    value_t v = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    unref_job_t j = {f, 1, -1};
    run_thread(unref_in_thread, &j);
    CU_ASSERT_EQUAL(j.rc, 0);
    CU_ASSERT_EQUAL(v.destroyed, 1); /* no loop can take it any more */
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static void test_loop_close_frees_futures_handed_over_by_other_threads(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_future_t *f = new_future(loop), *g = new_future(loop);
    value_t v = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
    CU_ASSERT_EQUAL(tl_future_set_error(g, TL_EIO, "never read"), 0);
    unref_job_t jf = {f, 1, -1}, jg = {g, 1, -1};
    run_thread(unref_in_thread, &jf);
    run_thread(unref_in_thread, &jg);
    CU_ASSERT_EQUAL(v.destroyed, 0);
    tl_test_loop_free(loop); /* the queued frees happen here */
    CU_ASSERT_EQUAL(v.destroyed, 1);
    CU_ASSERT_EQUAL(exc.count, 0); /* a closing loop reports nothing */
}

static void test_references_are_atomic_across_threads(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    value_t v = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
    enum { THREADS = 4, ROUNDS = 20000 };
    pthread_t t[THREADS];
    unref_job_t j[THREADS];
    for (int i = 0; i < THREADS; i++) {
        j[i] = (unref_job_t){f, ROUNDS, -1};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, ref_unref_in_thread, &j[i]), 0);
    }
    for (int i = 0; i < ROUNDS; i++) {
        tl_future_ref(f);
        tl_future_unref(f);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(j[i].rc, 0);
    }
    spin(loop, 1);
    CU_ASSERT_EQUAL(v.destroyed, 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(v.destroyed, 1);
    tl_test_loop_free(loop);
}

/* ---- errors never retrieved ------------------------------------------- */

static void test_unretrieved_error_is_reported_when_freed(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_ECONNRESET, "peer went away"), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1); /* queries do not retrieve */
    CU_ASSERT_EQUAL(tl_future_cancelled(f), 0);
    ASSERT_STR(tl_future_error_message(f), "peer went away");
    tl_future_t *addr = f;
    CU_ASSERT_EQUAL(exc.count, 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(exc.count, 1);
    CU_ASSERT_EQUAL(exc.last_error, TL_ECONNRESET);
    CU_ASSERT_STRING_EQUAL(exc.last_error_message, "peer went away");
    CU_ASSERT_PTR_EQUAL(exc.last_future, addr);
    CU_ASSERT(strlen(exc.last_message) > 0);
    tl_test_loop_free(loop);
}

static void note_done(tl_future_t *f, void *ctx) {
    *(int *)ctx += tl_future_done(f) == 1 && tl_future_cancelled(f) == 0;
}

static void test_unretrieved_error_seen_only_by_a_callback_is_reported_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_future_t *f = new_future(loop);
    int seen = 0;
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, note_done, &seen), 0);
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_EPIPE, NULL), 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(exc.count, 0); /* the loop still holds it */
    spin(loop, 1);                 /* note_done does not read the error */
    CU_ASSERT_EQUAL(seen, 1);
    CU_ASSERT_EQUAL(exc.count, 1);
    CU_ASSERT_EQUAL(exc.last_error, TL_EPIPE);
    CU_ASSERT_STRING_EQUAL(exc.last_error_message, "");
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(exc.count, 1);
}

static void test_retrieved_errors_are_not_reported(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_future_t *a = new_future(loop), *b = new_future(loop), *c = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_set_error(a, TL_EIO, "a"), 0);
    CU_ASSERT_EQUAL(tl_future_set_error(b, TL_EIO, "b"), 0);
    CU_ASSERT_EQUAL(tl_future_set_error(c, TL_EIO, "c"), 0);
    CU_ASSERT_EQUAL(tl_future_error(a), TL_EIO);
    CU_ASSERT_EQUAL(tl_future_result(b, NULL), TL_EIO);
    cb_log_t log = {0};
    entry_t e = {&log, 1, NULL, 1}; /* record() calls tl_future_error */
    CU_ASSERT_EQUAL(tl_future_add_done_callback(c, record, &e), 0);
    spin(loop, 1);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_future_unref(c);
    CU_ASSERT_EQUAL(exc.count, 0);
    tl_test_loop_free(loop);
}

static void test_cancellations_and_results_are_not_reported(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_future_t *a = new_future(loop), *b = new_future(loop), *c = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_cancel(a, "bye"), 1);
    CU_ASSERT_EQUAL(tl_future_set_result(b, NULL, NULL), 0);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_future_unref(c); /* still pending */
    CU_ASSERT_EQUAL(exc.count, 0);
    tl_test_loop_free(loop);
}

static void test_unretrieved_error_freed_from_another_thread_is_reported_on_the_loop(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_ETIMEDOUT, "slow"), 0);
    tl_future_t *addr = f;
    unref_job_t j = {f, 1, -1};
    run_thread(unref_in_thread, &j);
    CU_ASSERT_EQUAL(exc.count, 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(exc.count, 1);
    CU_ASSERT_EQUAL(exc.last_error, TL_ETIMEDOUT);
    CU_ASSERT_STRING_EQUAL(exc.last_error_message, "slow");
    CU_ASSERT_PTR_EQUAL(exc.last_future, addr);
    tl_test_loop_free(loop);
}

/* ---- bad calls -------------------------------------------------------- */

static void test_every_function_rejects_null(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_future_new(NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_ref(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_unref(NULL), TL_EINVAL);
    CU_ASSERT_PTR_NULL(tl_future_get_loop(NULL));
    CU_ASSERT_EQUAL(tl_future_set_result(NULL, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_set_error(NULL, TL_EIO, "x"), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_cancel(NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_done(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_cancelled(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_result(NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_error(NULL), TL_EINVAL);
    CU_ASSERT_PTR_NULL(tl_future_error_message(NULL));
    CU_ASSERT_EQUAL(tl_future_add_done_callback(NULL, record, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_remove_done_callback(NULL, record, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, NULL, NULL), TL_EINVAL);
    f = new_future(loop);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(NULL, f, NULL), TL_EINVAL);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_mutators_fail_once_the_loop_is_closed(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    cb_log_t log = {0};
    entry_t e = {&log, 1, NULL, 1};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e), 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    tl_future_t *g = (tl_future_t *)&g;
    CU_ASSERT_EQUAL(tl_future_new(loop, &g), TL_ECLOSED);
    CU_ASSERT_PTR_EQUAL(g, (tl_future_t *)&g);
    value_t v = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_EIO, "x"), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_future_cancel(f, "x"), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_future_remove_done_callback(f, record, &e), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), TL_ECLOSED);
    /* The outcome can still be read: it can no longer change. */
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_EQUAL(tl_future_cancelled(f), 0);
    CU_ASSERT_EQUAL(tl_future_result(f, NULL), TL_EPENDING);
    CU_ASSERT_EQUAL(tl_future_error(f), TL_EPENDING);
    CU_ASSERT_PTR_NULL(tl_future_error_message(f));
    CU_ASSERT_PTR_EQUAL(tl_future_get_loop(f), loop);
    CU_ASSERT_EQUAL(tl_future_ref(f), 0);
    CU_ASSERT_EQUAL(tl_future_unref(f), 0);
    CU_ASSERT_EQUAL(tl_future_unref(f), 0);
    CU_ASSERT_EQUAL(log.n, 0);
    CU_ASSERT_EQUAL(v.destroyed, 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static void test_outcomes_stay_readable_after_the_loop_closes(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *r = new_future(loop), *e = new_future(loop), *c = new_future(loop);
    int x = 3;
    CU_ASSERT_EQUAL(tl_future_set_result(r, &x, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_set_error(e, TL_EPIPE, "pipe"), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(c, "cancel"), 1);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_future_done(r), 1);
    CU_ASSERT_EQUAL(tl_future_result(r, &v), 0);
    CU_ASSERT_PTR_EQUAL(v, &x);
    CU_ASSERT_EQUAL(tl_future_error(e), TL_EPIPE);
    ASSERT_STR(tl_future_error_message(e), "pipe");
    CU_ASSERT_EQUAL(tl_future_cancelled(c), 1);
    CU_ASSERT_EQUAL(tl_future_result(c, NULL), TL_ECANCELLED);
    ASSERT_STR(tl_future_error_message(c), "cancel");
    tl_future_unref(r);
    tl_future_unref(e);
    tl_future_unref(c);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

/* Everything a foreign thread gets back, checked on the main thread. */
typedef struct foreign {
    tl_loop_t *loop;
    tl_future_t *f;
    int new_rc, set_result_rc, set_error_rc, cancel_rc, done_rc, cancelled_rc;
    int result_rc, error_rc, add_rc, remove_rc, ruc_rc, ref_rc, unref_rc;
    const char *message;
    tl_loop_t *get_loop;
    tl_future_t *made;
} foreign_t;

static void *call_everything(void *arg) {
    foreign_t *x = arg;
    x->made = NULL;
    x->new_rc = tl_future_new(x->loop, &x->made);
    x->set_result_rc = tl_future_set_result(x->f, NULL, NULL);
    x->set_error_rc = tl_future_set_error(x->f, TL_EIO, "x");
    x->cancel_rc = tl_future_cancel(x->f, NULL);
    x->done_rc = tl_future_done(x->f);
    x->cancelled_rc = tl_future_cancelled(x->f);
    x->result_rc = tl_future_result(x->f, NULL);
    x->error_rc = tl_future_error(x->f);
    x->message = tl_future_error_message(x->f);
    x->add_rc = tl_future_add_done_callback(x->f, record, NULL);
    x->remove_rc = tl_future_remove_done_callback(x->f, record, NULL);
    x->ruc_rc = tl_loop_run_until_complete(x->loop, x->f, NULL);
    x->get_loop = tl_future_get_loop(x->f);
    x->ref_rc = tl_future_ref(x->f);
    x->unref_rc = tl_future_unref(x->f);
    return NULL;
}

static void test_every_function_fails_from_another_thread(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_EPIPE, "mine"), 0);
    foreign_t x = {.loop = loop, .f = f};
    run_thread(call_everything, &x);
    CU_ASSERT_EQUAL(x.new_rc, TL_EWRONGTHREAD);
    CU_ASSERT_PTR_NULL(x.made);
    CU_ASSERT_EQUAL(x.set_result_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(x.set_error_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(x.cancel_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(x.done_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(x.cancelled_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(x.result_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(x.error_rc, TL_EWRONGTHREAD);
    CU_ASSERT_PTR_NULL(x.message);
    CU_ASSERT_EQUAL(x.add_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(x.remove_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(x.ruc_rc, TL_EWRONGTHREAD);
    CU_ASSERT_PTR_EQUAL(x.get_loop, loop);
    CU_ASSERT_EQUAL(x.ref_rc, 0);
    CU_ASSERT_EQUAL(x.unref_rc, 0);
    /* Nothing changed, and the foreign reads did not retrieve the error. */
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    ASSERT_STR(tl_future_error_message(f), "mine");
    tl_future_unref(f);
    CU_ASSERT_EQUAL(exc.count, 1);
    tl_test_loop_free(loop);
}

/* ---- run_until_complete ----------------------------------------------- */

static void set_result_cb(void *f) { tl_future_set_result(f, (void *)0x1234, NULL); }
static void set_error_cb(void *f) { tl_future_set_error(f, TL_ECONNREFUSED, "refused"); }
static void cancel_cb(void *f) { tl_future_cancel(f, "no longer needed"); }

static void test_run_until_complete_returns_the_result(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1000000, set_result_cb, f, NULL), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), 0);
    CU_ASSERT_PTR_EQUAL(v, (void *)0x1234);
    CU_ASSERT_EQUAL(tl_loop_is_running(loop), 0);
    CU_ASSERT_PTR_NULL(tl_loop_get_running());
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_run_until_complete_returns_the_error_and_retrieves_it(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, set_error_cb, f, NULL), 0);
    void *v = (void *)&v;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), TL_ECONNREFUSED);
    CU_ASSERT_PTR_EQUAL(v, (void *)&v);
    ASSERT_STR(tl_future_error_message(f), "refused");
    tl_future_unref(f);
    CU_ASSERT_EQUAL(exc.count, 0);
    tl_test_loop_free(loop);
}

static void test_run_until_complete_returns_ecancelled(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, cancel_cb, f, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), TL_ECANCELLED);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_run_until_complete_returns_estopped_when_stopped_first(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    cb_log_t log = {0};
    entry_t e = {&log, 1, NULL, 1};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, record, &e), 0);
    CU_ASSERT_EQUAL(tl_loop_stop(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), TL_ESTOPPED);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    /* Its stop callback was taken back: only the user's remains. */
    CU_ASSERT_EQUAL(tl_future_remove_done_callback(f, record, &e), 1);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1000000, set_result_cb, f, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void stop_loop_cb(void *loop) { tl_loop_stop(loop); }

static void test_run_until_complete_returns_estopped_when_a_callback_stops(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1000000, stop_loop_cb, loop, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), TL_ESTOPPED);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_run_until_complete_rejects_a_future_of_another_loop(void) {
    tl_loop_t *a = tl_test_loop(), *b = tl_test_loop();
    tl_future_t *f = new_future(b);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(a, f, NULL), TL_EINVAL);
    tl_future_unref(f);
    tl_test_loop_free(a);
    tl_test_loop_free(b);
}

typedef struct nested {
    tl_loop_t *loop, *other;
    tl_future_t *f, *g;
    int rc_same, rc_other;
} nested_t;

static void run_nested(void *arg) {
    nested_t *n = arg;
    n->rc_same = tl_loop_run_until_complete(n->loop, n->f, NULL);
    n->rc_other = tl_loop_run_until_complete(n->other, n->g, NULL);
    tl_future_set_result(n->f, NULL, NULL);
}

static void test_run_until_complete_fails_inside_a_running_loop(void) {
    tl_loop_t *loop = tl_test_loop(), *other = tl_test_loop();
    nested_t n = {loop, other, new_future(loop), new_future(other), 1, 1};
    CU_ASSERT_EQUAL(tl_future_set_result(n.g, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, run_nested, &n, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, n.f, NULL), 0);
    CU_ASSERT_EQUAL(n.rc_same, TL_ERUNNING);
    CU_ASSERT_EQUAL(n.rc_other, TL_ERUNNING);
    tl_future_unref(n.f);
    tl_future_unref(n.g);
    tl_test_loop_free(loop);
    tl_test_loop_free(other);
}

static void test_run_until_complete_with_a_done_future_returns_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_set_result(f, (void *)0x77, NULL), 0);
    void *v = NULL;
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), 0);
    CU_ASSERT(tl_now_ns() - t0 < 200000000u);
    CU_ASSERT_PTR_EQUAL(v, (void *)0x77);
    /* The loop is not left stopping: a later run still waits for work. */
    tl_future_t *g = new_future(loop);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 2000000, set_result_cb, g, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, g, &v), 0);
    CU_ASSERT_PTR_EQUAL(v, (void *)0x1234);
    tl_future_unref(f);
    tl_future_unref(g);
    tl_test_loop_free(loop);
}

static void test_run_until_complete_with_an_errored_done_future(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop), *g = new_future(loop);
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_ENOENT, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(g, NULL), 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), TL_ENOENT);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, g, NULL), TL_ECANCELLED);
    tl_future_unref(f);
    tl_future_unref(g);
    tl_test_loop_free(loop);
}

static void drop_in_callback(void *f) {
    tl_future_set_result(f, (void *)0x99, NULL);
    tl_future_unref(f); /* the caller of run_until_complete gave its ref */
}

static void test_run_until_complete_survives_the_caller_reference_being_dropped(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f = new_future(loop);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, drop_in_callback, f, NULL), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), 0);
    CU_ASSERT_PTR_EQUAL(v, (void *)0x99);
    tl_test_loop_free(loop);
}

/* ---- closing ---------------------------------------------------------- */

static void test_closing_a_loop_drops_scheduled_callbacks_without_leaking(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = new_future(loop), *b = new_future(loop), *c = new_future(loop);
    cb_log_t log = {0};
    entry_t e[6];
    for (int i = 0; i < 6; i++)
        e[i] = (entry_t){&log, i, NULL, 1};
    for (int i = 0; i < 4; i++) /* a grown array */
        CU_ASSERT_EQUAL(tl_future_add_done_callback(a, record, &e[i]), 0);
    value_t va = {0}, vb = {0};
    CU_ASSERT_EQUAL(tl_future_set_result(a, &va, destroy_value), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(b, &vb, destroy_value), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(b, record, &e[4]), 0); /* late */
    CU_ASSERT_EQUAL(tl_future_add_done_callback(c, record, &e[5]), 0); /* pending */
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(log.n, 0); /* dropped, never run */
    CU_ASSERT_EQUAL(va.destroyed, 0);
    CU_ASSERT_EQUAL(vb.destroyed, 0);
    CU_ASSERT_EQUAL(tl_future_done(a), 1);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_future_unref(c);
    CU_ASSERT_EQUAL(va.destroyed, 1);
    CU_ASSERT_EQUAL(vb.destroyed, 1);
    CU_ASSERT_EQUAL(log.n, 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static void test_closing_a_loop_after_the_futures_were_released(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = new_future(loop);
    cb_log_t log = {0};
    entry_t e = {&log, 1, NULL, 1};
    value_t va = {0};
    CU_ASSERT_EQUAL(tl_future_add_done_callback(a, record, &e), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(a, &va, destroy_value), 0);
    tl_future_unref(a); /* only the loop holds it now */
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(va.destroyed, 1);
    CU_ASSERT_EQUAL(log.n, 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

TL_TEST_SUITE(future,
              TL_TEST(test_new_future_is_pending),
              TL_TEST(test_new_future_rejects_bad_arguments),
              TL_TEST(test_set_result_makes_the_future_done),
              TL_TEST(test_set_result_accepts_a_null_value),
              TL_TEST(test_set_result_twice_is_an_error),
              TL_TEST(test_result_destructor_runs_once_when_the_last_reference_goes),
              TL_TEST(test_destructor_is_not_run_for_a_pending_or_failed_future),
              TL_TEST(test_set_error_copies_the_message),
              TL_TEST(test_set_error_without_a_message),
              TL_TEST(test_set_error_rejects_codes_that_are_not_errors),
              TL_TEST(test_set_error_on_a_done_future_is_an_error),
              TL_TEST(test_cancel_returns_1_then_0),
              TL_TEST(test_cancel_without_a_message),
              TL_TEST(test_cancel_after_completion_changes_nothing),
              TL_TEST(test_done_callbacks_never_run_inside_set_result),
              TL_TEST(test_done_callbacks_never_run_inside_set_error_or_cancel),
              TL_TEST(test_done_callbacks_run_in_the_order_added),
              TL_TEST(test_callbacks_of_many_futures_run_in_completion_order),
              TL_TEST(test_callback_added_after_completion_is_scheduled),
              TL_TEST(test_callbacks_added_after_completion_run_after_earlier_ones),
              TL_TEST(test_same_callback_added_twice_runs_twice),
              TL_TEST(test_remove_done_callback_removes_every_matching_pair),
              TL_TEST(test_removing_every_callback_schedules_nothing),
              TL_TEST(test_remove_done_callback_returns_0_once_done),
              TL_TEST(test_callback_can_add_another_callback),
              TL_TEST(test_callback_can_drop_the_last_reference),
              TL_TEST(test_late_callback_can_drop_the_last_reference),
              TL_TEST(test_unref_right_after_set_result_keeps_the_future_for_its_callbacks),
              TL_TEST(test_unref_right_after_adding_a_late_callback_keeps_the_future),
              TL_TEST(test_add_done_callback_rejects_a_null_callback),
              TL_TEST(test_ref_and_unref_reject_null),
              TL_TEST(test_future_keeps_its_loop_alive),
              TL_TEST(test_future_new_out_of_memory_is_clean),
    TL_TEST(test_recycled_futures_allocate_nothing),
    TL_TEST(test_a_loop_at_rest_holds_no_future_memory),
    TL_TEST(test_a_burst_of_futures_is_given_back),
    TL_TEST(test_futures_outliving_their_closed_loop_are_freed_later),
    TL_TEST(test_unref_from_another_thread_frees_on_the_loop_thread),
    TL_TEST(test_unref_from_another_thread_out_of_memory_still_frees_on_the_loop_thread),
    TL_TEST(test_unrefs_from_many_threads_all_free_on_the_loop_thread),
              TL_TEST(test_unref_from_another_thread_wakes_a_sleeping_loop),
              TL_TEST(test_unref_from_another_thread_that_is_not_the_last_frees_nothing),
              TL_TEST(test_unref_from_another_thread_after_close_still_frees),
              TL_TEST(test_loop_close_frees_futures_handed_over_by_other_threads),
              TL_TEST(test_references_are_atomic_across_threads),
              TL_TEST(test_unretrieved_error_is_reported_when_freed),
              TL_TEST(test_unretrieved_error_seen_only_by_a_callback_is_reported_once),
              TL_TEST(test_retrieved_errors_are_not_reported),
              TL_TEST(test_cancellations_and_results_are_not_reported),
              TL_TEST(test_unretrieved_error_freed_from_another_thread_is_reported_on_the_loop),
              TL_TEST(test_every_function_rejects_null),
              TL_TEST(test_mutators_fail_once_the_loop_is_closed),
              TL_TEST(test_outcomes_stay_readable_after_the_loop_closes),
              TL_TEST(test_every_function_fails_from_another_thread),
              TL_TEST(test_run_until_complete_returns_the_result),
              TL_TEST(test_run_until_complete_returns_the_error_and_retrieves_it),
              TL_TEST(test_run_until_complete_returns_ecancelled),
              TL_TEST(test_run_until_complete_returns_estopped_when_stopped_first),
              TL_TEST(test_run_until_complete_returns_estopped_when_a_callback_stops),
              TL_TEST(test_run_until_complete_rejects_a_future_of_another_loop),
              TL_TEST(test_run_until_complete_fails_inside_a_running_loop),
              TL_TEST(test_run_until_complete_with_a_done_future_returns_at_once),
              TL_TEST(test_run_until_complete_with_an_errored_done_future),
              TL_TEST(test_run_until_complete_survives_the_caller_reference_being_dropped),
              TL_TEST(test_closing_a_loop_drops_scheduled_callbacks_without_leaking),
              TL_TEST(test_closing_a_loop_after_the_futures_were_released))
