/* sync_barrier: asyncio.Barrier through its future form: rounds of N
 * parties driven by callbacks, arrival indices, cancelled parties, abort and
 * reset, freeing, running out of memory. */
#include <stdint.h>

#include "sync_test.h"

static tl_barrier_t *new_barrier(tl_loop_t *loop, int parties) {
    tl_barrier_t *b = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_barrier_new(loop, parties, &b), 0);
    return b;
}

static void arrive(tl_barrier_t *b, waiter_t *w, int id, wlog_t *log) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_barrier_wait_future(b, &f), 0);
    watch(w, f, id, log);
}

static int index_of(const waiter_t *w) { return (int)(uintptr_t)w->value; }

static void test_bad_arguments_are_rejected(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_barrier_t *b = NULL;
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_barrier_new(loop, 0, &b), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_new(loop, -3, &b), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_new(NULL, 2, &b), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_new(loop, 2, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_free(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_wait_future(NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_abort(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_reset(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_parties(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_broken(NULL), TL_EINVAL);
    b = new_barrier(loop, 2);
    CU_ASSERT_EQUAL(tl_barrier_wait_future(b, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_parties(b), 2);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 0);
    CU_ASSERT_EQUAL(tl_barrier_broken(b), 0);
    tl_barrier_free(b);
    tl_test_loop_free(loop);
}

static void test_a_barrier_of_one_never_waits(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_barrier_t *b = new_barrier(loop, 1);
    for (int i = 0; i < 3; i++) {
        tl_future_t *f = NULL;
        void *v = (void *)1;
        CU_ASSERT_EQUAL(tl_barrier_wait_future(b, &f), 0);
        CU_ASSERT_EQUAL(tl_future_result(f, &v), 0);
        CU_ASSERT_PTR_EQUAL(v, NULL); /* index 0 */
        tl_future_unref(f);
    }
    tl_barrier_free(b);
    tl_test_loop_free(loop);
}

static void test_parties_pass_together_with_their_arrival_indices(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_barrier_t *b = new_barrier(loop, 3);
    waiter_t w[3];
    arrive(b, &w[0], 0, NULL);
    arrive(b, &w[1], 1, NULL);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 2);
    spin(loop, 2);
    ASSERT_PENDING(&w[0]);
    ASSERT_PENDING(&w[1]);
    arrive(b, &w[2], 2, NULL);
    CU_ASSERT_EQUAL(tl_future_done(w[2].f), 1); /* the last one, at once */
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 0);
    spin(loop, 1);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(w[i].rc, 0);
        CU_ASSERT_EQUAL(index_of(&w[i]), i);
        unwatch(&w[i]);
    }
    tl_barrier_free(b);
    tl_test_loop_free(loop);
}

/* N parties, each a chain of callbacks that arrives again as soon as it
 * passes: every round, all N pass in the same iteration, with distinct
 * indices, and no party gets ahead of the others. */
enum { PARTIES = 5, ROUNDS = 4 };

typedef struct party {
    tl_barrier_t *b;
    int id;
    int round; /* rounds passed */
    int indices_seen; /* bitmask of indices, OR-ed over rounds */
    int *passes_per_round;
    tl_future_t *f;
} party_t;

static void party_passed(tl_future_t *f, void *ctx);

static void party_arrive(party_t *p) {
    CU_ASSERT_EQUAL_FATAL(tl_barrier_wait_future(p->b, &p->f), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(p->f, party_passed, p), 0);
}

static void party_passed(tl_future_t *f, void *ctx) {
    party_t *p = ctx;
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_future_result(f, &v), 0);
    p->indices_seen |= 1 << (int)(uintptr_t)v;
    p->passes_per_round[p->round]++;
    p->round++;
    tl_future_unref(f);
    p->f = NULL;
    if (p->round < ROUNDS)
        party_arrive(p);
}

static void test_n_parties_driven_by_callbacks_pass_round_after_round(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_barrier_t *b = new_barrier(loop, PARTIES);
    party_t p[PARTIES];
    int passes[ROUNDS] = {0};
    for (int i = 0; i < PARTIES; i++) {
        p[i] = (party_t){b, i, 0, 0, passes, NULL};
        party_arrive(&p[i]);
    }
    for (int r = 0; r < ROUNDS; r++) {
        spin(loop, 1);
        for (int k = 0; k < ROUNDS; k++)
            CU_ASSERT_EQUAL(passes[k], k <= r ? PARTIES : 0);
        for (int i = 0; i < PARTIES; i++)
            CU_ASSERT_EQUAL(p[i].round, r + 1);
    }
    spin(loop, 1);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 0);
    /* Over the rounds every index went to someone, each round a
     * permutation: the OR of all indices seen covers 0..PARTIES-1. */
    int all = 0;
    for (int i = 0; i < PARTIES; i++)
        all |= p[i].indices_seen;
    CU_ASSERT_EQUAL(all, (1 << PARTIES) - 1);
    tl_barrier_free(b);
    tl_test_loop_free(loop);
}

static void test_a_cancelled_party_no_longer_counts(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_barrier_t *b = new_barrier(loop, 3);
    waiter_t a, bb, c, d;
    arrive(b, &a, 1, NULL);
    arrive(b, &bb, 2, NULL);
    CU_ASSERT_EQUAL(tl_future_cancel(a.f, NULL), 1);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 1);
    arrive(b, &c, 3, NULL); /* would have filled the round with a */
    spin(loop, 1);
    ASSERT_PENDING(&bb);
    ASSERT_PENDING(&c);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 2);
    arrive(b, &d, 4, NULL);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(bb.rc, 0);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(d.rc, 0);
    CU_ASSERT_EQUAL(index_of(&bb), 0);
    CU_ASSERT_EQUAL(index_of(&c), 1);
    CU_ASSERT_EQUAL(index_of(&d), 2);
    unwatch(&a);
    unwatch(&bb);
    unwatch(&c);
    unwatch(&d);
    tl_barrier_free(b);
    tl_test_loop_free(loop);
}

static void test_abort_breaks_the_waiters_and_later_waits_until_reset(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_barrier_t *b = new_barrier(loop, 3);
    waiter_t a, bb;
    arrive(b, &a, 1, NULL);
    arrive(b, &bb, 2, NULL);
    CU_ASSERT_EQUAL(tl_barrier_abort(b), 0);
    CU_ASSERT_EQUAL(tl_barrier_broken(b), 1);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_EBROKEN);
    CU_ASSERT_EQUAL(bb.rc, TL_EBROKEN);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_barrier_wait_future(b, &f), TL_EBROKEN);
    CU_ASSERT_EQUAL(tl_barrier_abort(b), 0); /* again: still broken */
    CU_ASSERT_EQUAL(tl_barrier_reset(b), 0);
    CU_ASSERT_EQUAL(tl_barrier_broken(b), 0);
    unwatch(&a);
    unwatch(&bb);
    /* Usable again. */
    arrive(b, &a, 1, NULL);
    arrive(b, &bb, 2, NULL);
    waiter_t c;
    arrive(b, &c, 3, NULL);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, 0);
    CU_ASSERT_EQUAL(bb.rc, 0);
    CU_ASSERT_EQUAL(c.rc, 0);
    unwatch(&a);
    unwatch(&bb);
    unwatch(&c);
    tl_barrier_free(b);
    tl_test_loop_free(loop);
}

static void test_reset_breaks_the_waiters_and_starts_an_empty_round(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_barrier_t *b = new_barrier(loop, 2);
    waiter_t a, c, d;
    arrive(b, &a, 1, NULL);
    CU_ASSERT_EQUAL(tl_barrier_reset(b), 0);
    CU_ASSERT_EQUAL(tl_barrier_broken(b), 0);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 0);
    arrive(b, &c, 2, NULL);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_EBROKEN);
    ASSERT_PENDING(&c); /* a no longer counts */
    arrive(b, &d, 3, NULL);
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(index_of(&c), 0);
    CU_ASSERT_EQUAL(index_of(&d), 1);
    unwatch(&a);
    unwatch(&c);
    unwatch(&d);
    tl_barrier_free(b);
    tl_test_loop_free(loop);
}

static void test_free_cancels_the_waiters(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_barrier_t *b = new_barrier(loop, 3);
    waiter_t a;
    arrive(b, &a, 1, NULL);
    CU_ASSERT_EQUAL(tl_barrier_free(b), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    unwatch(&a);
    tl_test_loop_free(loop);
}

typedef struct foreign {
    tl_barrier_t *b;
    int rc[5];
} foreign_t;

static void foreign_calls(void *ctx) {
    foreign_t *t = ctx;
    tl_future_t *f = NULL;
    t->rc[0] = tl_barrier_wait_future(t->b, &f);
    t->rc[1] = tl_barrier_abort(t->b);
    t->rc[2] = tl_barrier_reset(t->b);
    t->rc[3] = tl_barrier_n_waiting(t->b);
    t->rc[4] = tl_barrier_free(t->b);
}

static void test_other_threads_and_closed_loops_are_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_barrier_t *b = new_barrier(loop, 2);
    foreign_t t = {b, {0}};
    on_other_thread(foreign_calls, &t);
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(t.rc[i], TL_EWRONGTHREAD);
    tl_loop_close(loop);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_barrier_wait_future(b, &f), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_barrier_abort(b), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_barrier_parties(b), 2);
    CU_ASSERT_EQUAL(tl_barrier_free(b), 0);
    tl_loop_unref(loop);
}

/* ---- running out of memory -------------------------------------------- */

static void test_new_and_wait_survive_allocation_failures(void) {
    tl_loop_t *loop = tl_test_loop();
    for (long n = 1; n < WALK_MAX; n++) {
        tl_barrier_t *b = NULL;
        arm(n);
        int rc = tl_barrier_new(loop, 2, &b);
        int hit = disarm(n);
        if (rc == 0)
            tl_barrier_free(b);
        else
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        if (!hit)
            break;
    }
    tl_barrier_t *b = new_barrier(loop, 2);
    for (long n = 1; n < WALK_MAX; n++) {
        tl_future_t *f = NULL;
        arm(n);
        int rc = tl_barrier_wait_future(b, &f);
        int hit = disarm(n);
        if (rc == 0) {
            CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 1);
            tl_future_cancel(f, NULL);
            tl_future_unref(f);
        } else {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 0);
        }
        if (!hit)
            break;
    }
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 0);
    tl_barrier_free(b);
    tl_test_loop_free(loop);
}

/* The last party arrives but the others cannot all be woken: it still
 * passes (index parties-1), and the rest pass on the next call. */
static void test_a_round_short_of_memory_is_finished_by_the_next_call(void) {
    int failures = 0;
    for (long n = 1; n < WALK_MAX; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_barrier_t *b = new_barrier(loop, 3);
        waiter_t a, c;
        arrive(b, &a, 1, NULL);
        arrive(b, &c, 2, NULL);
        tl_future_t *last = NULL;
        arm(n);
        int rc = tl_barrier_wait_future(b, &last);
        int hit = disarm(n);
        if (rc == 0) {
            void *v = NULL;
            CU_ASSERT_EQUAL(tl_future_result(last, &v), 0);
            CU_ASSERT_EQUAL((int)(uintptr_t)v, 2);
            tl_future_unref(last);
            if (!tl_future_done(a.f) || !tl_future_done(c.f)) {
                failures++;
                CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 0); /* not in a round */
                CU_ASSERT_EQUAL(tl_barrier_broken(b), 0);
                /* The next call, here the first arrival of a new round. */
                tl_future_t *next = NULL;
                CU_ASSERT_EQUAL(tl_barrier_wait_future(b, &next), 0);
                CU_ASSERT_EQUAL(tl_future_done(a.f), 1);
                CU_ASSERT_EQUAL(tl_future_done(c.f), 1);
                CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 1);
                tl_future_unref(next);
            }
        } else {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM); /* making its own future */
            CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 2);
            CU_ASSERT_EQUAL(tl_barrier_wait_future(b, &last), 0);
            tl_future_unref(last);
        }
        spin(loop, 1);
        CU_ASSERT_EQUAL(a.rc, 0);
        CU_ASSERT_EQUAL(c.rc, 0);
        CU_ASSERT_EQUAL(index_of(&a), 0);
        CU_ASSERT_EQUAL(index_of(&c), 1);
        unwatch(&a);
        unwatch(&c);
        tl_barrier_free(b);
        tl_test_loop_free(loop);
        if (!hit)
            break;
    }
    CU_ASSERT(failures > 0);
}

TL_TEST_SUITE(sync_barrier,
              TL_TEST(test_bad_arguments_are_rejected),
              TL_TEST(test_a_barrier_of_one_never_waits),
              TL_TEST(test_parties_pass_together_with_their_arrival_indices),
              TL_TEST(test_n_parties_driven_by_callbacks_pass_round_after_round),
              TL_TEST(test_a_cancelled_party_no_longer_counts),
              TL_TEST(test_abort_breaks_the_waiters_and_later_waits_until_reset),
              TL_TEST(test_reset_breaks_the_waiters_and_starts_an_empty_round),
              TL_TEST(test_free_cancels_the_waiters),
              TL_TEST(test_other_threads_and_closed_loops_are_refused),
              TL_TEST(test_new_and_wait_survive_allocation_failures),
              TL_TEST(test_a_round_short_of_memory_is_finished_by_the_next_call));
