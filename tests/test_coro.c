/* coro: coroutine contexts and their stack pool (src/task/coro.h). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tl_test.h"
#if defined(__has_include)
#  if __has_include(<valgrind/valgrind.h>)
#    include <valgrind/valgrind.h>
#  endif
#endif
#ifndef RUNNING_ON_VALGRIND
#  define RUNNING_ON_VALGRIND 0
#endif
#include "../src/task/coro.h"
#include "../src/task/stack.h"

static tl__stack_pool_t *new_pool(void) {
    tl__stack_pool_t *pool = NULL;
    CU_ASSERT_EQUAL_FATAL(tl__stack_pool_new(&pool), 0);
    return pool;
}

static tl__coro_t *new_coro(tl__stack_pool_t *pool, size_t size, tl__coro_fn fn, void *arg) {
    tl__coro_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(tl__coro_new(pool, size, fn, arg, &c), 0);
    return c;
}

/* ---- resume, suspend, finish ------------------------------------------ */

typedef struct pingpong {
    tl__coro_t *self;
    int in, out, rounds;
} pingpong_t;

static void doubler(void *arg) {
    pingpong_t *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        p->out = p->in * 2;
        tl__coro_suspend(p->self);
    }
    p->out = -1;
}

static void test_ping_pong_passes_values_through_memory(void) {
    tl__stack_pool_t *pool = new_pool();
    pingpong_t p = {.rounds = 10};
    p.self = new_coro(pool, 0, doubler, &p);
    for (int i = 0; i < 10; i++) {
        p.in = i + 1;
        CU_ASSERT_EQUAL(tl__coro_resume(p.self), 0);
        CU_ASSERT_EQUAL(p.out, 2 * (i + 1));
    }
    CU_ASSERT_EQUAL(tl__coro_resume(p.self), 1);
    CU_ASSERT_EQUAL(p.out, -1);
    tl__coro_free(p.self);
    tl__stack_pool_free(pool);
}

static void set_flag(void *arg) { *(int *)arg = 1; }

static void test_finishing_returns_one_then_resume_is_estate(void) {
    tl__stack_pool_t *pool = new_pool();
    int ran = 0;
    tl__coro_t *c = new_coro(pool, 0, set_flag, &ran);
    CU_ASSERT_EQUAL(ran, 0); /* tl__coro_new does not start it */
    CU_ASSERT_EQUAL(tl__coro_resume(c), 1);
    CU_ASSERT_EQUAL(ran, 1);
    CU_ASSERT_EQUAL(tl__coro_resume(c), TL_ESTATE);
    CU_ASSERT_EQUAL(tl__coro_resume(c), TL_ESTATE);
    CU_ASSERT_EQUAL(tl__coro_resume(NULL), TL_EINVAL);
    tl__coro_free(c);
    tl__stack_pool_free(pool);
}

static void test_free_never_started_and_suspended(void) {
    tl__stack_pool_t *pool = new_pool();
    int ran = 0;
    tl__coro_free(new_coro(pool, 0, set_flag, &ran));
    CU_ASSERT_EQUAL(ran, 0);
    pingpong_t p = {.rounds = 5};
    p.self = new_coro(pool, 0, doubler, &p);
    CU_ASSERT_EQUAL(tl__coro_resume(p.self), 0);
    tl__coro_free(p.self); /* dropped while suspended */
    tl__coro_free(NULL);
    tl__stack_pool_free(pool);
    tl__stack_pool_free(NULL);
}

typedef struct who {
    tl__coro_t *self;
    tl__coro_t *seen;
    int freed_self_ignored;
} who_t;

static void record_current(void *arg) {
    who_t *w = arg;
    w->seen = tl__coro_current();
    tl__coro_free(w->self); /* running: ignored */
    w->freed_self_ignored = tl__coro_current() == w->self;
    tl__coro_suspend(w->self);
    w->seen = tl__coro_current();
}

static void test_current_names_the_running_coroutine(void) {
    tl__stack_pool_t *pool = new_pool();
    CU_ASSERT_PTR_NULL(tl__coro_current());
    who_t w = {0};
    w.self = new_coro(pool, 0, record_current, &w);
    tl__coro_suspend(w.self); /* not inside it: nothing happens */
    CU_ASSERT_EQUAL(tl__coro_resume(w.self), 0);
    CU_ASSERT_PTR_EQUAL(w.seen, w.self);
    CU_ASSERT(w.freed_self_ignored);
    CU_ASSERT_PTR_NULL(tl__coro_current());
    w.seen = NULL;
    CU_ASSERT_EQUAL(tl__coro_resume(w.self), 1);
    CU_ASSERT_PTR_EQUAL(w.seen, w.self);
    CU_ASSERT_PTR_NULL(tl__coro_current());
    tl__coro_free(w.self);
    tl__stack_pool_free(pool);
}

/* ---- many, nested ------------------------------------------------------ */

#define MANY 200
#define MANY_ROUNDS 5

typedef struct worker {
    tl__coro_t *self;
    int id, count;
    int *log, *nlog;
} worker_t;

static void work(void *arg) {
    worker_t *w = arg;
    for (int i = 0; i < MANY_ROUNDS; i++) {
        w->count++;
        w->log[(*w->nlog)++] = w->id;
        tl__coro_suspend(w->self);
    }
}

static void test_many_coroutines_interleave(void) {
    tl__stack_pool_t *pool = new_pool();
    static worker_t w[MANY];
    static int log[MANY * MANY_ROUNDS];
    int nlog = 0;
    for (int i = 0; i < MANY; i++) {
        w[i] = (worker_t){.id = i, .log = log, .nlog = &nlog};
        w[i].self = new_coro(pool, 0, work, &w[i]);
    }
    for (int r = 0; r < MANY_ROUNDS; r++)
        for (int i = 0; i < MANY; i++)
            CU_ASSERT_EQUAL(tl__coro_resume(w[i].self), 0);
    int finished = 0;
    for (int i = 0; i < MANY; i++)
        finished += tl__coro_resume(w[i].self);
    CU_ASSERT_EQUAL(finished, MANY);
    CU_ASSERT_EQUAL(nlog, MANY * MANY_ROUNDS);
    int in_order = 1;
    for (int k = 0; k < nlog; k++)
        in_order &= log[k] == k % MANY;
    CU_ASSERT(in_order);
    for (int i = 0; i < MANY; i++) {
        CU_ASSERT_EQUAL(w[i].count, MANY_ROUNDS);
        tl__coro_free(w[i].self);
    }
    tl__stack_pool_free(pool);
}

typedef struct nest {
    tl__coro_t *outer, *inner;
    char trace[32];
    int n;
    int outer_from_inner; /* resume(outer) from inside inner */
    int current_ok;
} nest_t;

static void inner_fn(void *arg) {
    nest_t *t = arg;
    t->trace[t->n++] = 'i';
    t->current_ok &= tl__coro_current() == t->inner;
    t->outer_from_inner = tl__coro_resume(t->outer);
    tl__coro_suspend(t->inner); /* back to outer, not to the thread */
    t->trace[t->n++] = 'j';
}

static void outer_fn(void *arg) {
    nest_t *t = arg;
    t->trace[t->n++] = 'o';
    CU_ASSERT_EQUAL(tl__coro_resume(t->inner), 0);
    t->current_ok &= tl__coro_current() == t->outer;
    t->trace[t->n++] = 'p';
    tl__coro_suspend(t->outer);
    t->trace[t->n++] = 'q';
    CU_ASSERT_EQUAL(tl__coro_resume(t->inner), 1);
    t->trace[t->n++] = 'r';
}

static void test_nested_resume_returns_to_the_resumer(void) {
    tl__stack_pool_t *pool = new_pool();
    nest_t t = {.current_ok = 1};
    t.outer = new_coro(pool, 0, outer_fn, &t);
    t.inner = new_coro(pool, 0, inner_fn, &t);
    CU_ASSERT_EQUAL(tl__coro_resume(t.outer), 0);
    CU_ASSERT_STRING_EQUAL(t.trace, "oip");
    CU_ASSERT_EQUAL(t.outer_from_inner, TL_ESTATE); /* outer is running */
    CU_ASSERT_PTR_NULL(tl__coro_current());
    CU_ASSERT_EQUAL(tl__coro_resume(t.outer), 1);
    CU_ASSERT_STRING_EQUAL(t.trace, "oipqjr");
    CU_ASSERT(t.current_ok);
    tl__coro_free(t.inner);
    tl__coro_free(t.outer);
    tl__stack_pool_free(pool);
}

/* ---- registers and floating point -------------------------------------- */

typedef struct regs {
    tl__coro_t *self;
    volatile long seed;
    long sum;
    double dsum;
} regs_t;

/* Overwrites the callee-saved registers with junk right before suspending:
 * if the switch failed to restore the resumer's, the resumer would see it. */
static void scramble_and_suspend(tl__coro_t *c) {
#if defined(__x86_64__)
    __asm__ volatile("movq $-1, %%rbx\n\tmovq $-1, %%r12\n\tmovq $-1, %%r13\n\t"
                     "movq $-1, %%r14\n\tmovq $-1, %%r15\n\t"
                     ::: "rbx", "r12", "r13", "r14", "r15", "memory");
#elif defined(__aarch64__)
    __asm__ volatile("mov x19, #-1\n\tmov x20, #-1\n\tmov x21, #-1\n\tmov x22, #-1\n\t"
                     "mov x23, #-1\n\tmov x24, #-1\n\tmov x25, #-1\n\tmov x26, #-1\n\t"
                     "mov x27, #-1\n\tmov x28, #-1\n\tfmov d8, #-1.0\n\tfmov d9, #-1.0\n\t"
                     "fmov d10, #-1.0\n\tfmov d11, #-1.0\n\tfmov d12, #-1.0\n\t"
                     "fmov d13, #-1.0\n\tfmov d14, #-1.0\n\tfmov d15, #-1.0\n\t"
                     ::: "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
                       "x28", "d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15",
                       "memory");
#endif
    tl__coro_suspend(c);
}

/* Many integer and double values live across each suspension. */
static void busy_values(void *arg) {
    regs_t *r = arg;
    long a = r->seed, b = a * 3, c = a + 7, d = a ^ 0x55, e = a * a, f = a - 11, g = a << 3;
    double x = (double)a / 3.0, y = x * 1.5, z = x + 0.25, u = y - z, v = x * x;
    for (int i = 0; i < 4; i++) {
        scramble_and_suspend(r->self);
        a += b; b += c; c += d; d += e; e += f; f += g; g += a;
        x += y; y += z; z += u; u += v; v += x / 7.0;
    }
    r->sum = a + b + c + d + e + f + g;
    r->dsum = x + y + z + u + v;
}

/* The same computation, without any switch, for reference. */
static void busy_reference(long seed, long *sum, double *dsum) {
    long a = seed, b = a * 3, c = a + 7, d = a ^ 0x55, e = a * a, f = a - 11, g = a << 3;
    double x = (double)a / 3.0, y = x * 1.5, z = x + 0.25, u = y - z, v = x * x;
    for (int i = 0; i < 4; i++) {
        a += b; b += c; c += d; d += e; e += f; f += g; g += a;
        x += y; y += z; z += u; u += v; v += x / 7.0;
    }
    *sum = a + b + c + d + e + f + g;
    *dsum = x + y + z + u + v;
}

static void test_registers_and_doubles_survive_switches(void) {
    tl__stack_pool_t *pool = new_pool();
    regs_t r = {.seed = 1234567};
    r.self = new_coro(pool, 0, busy_values, &r);
    volatile long seed = 42;
    long p = seed, q = p * 5, s = p + 9, t = p ^ 0x3c, w = p * p, k = p - 2;
    double m = (double)p / 7.0, n = m * 2.5, o = m + 0.125;
    int rc;
    while ((rc = tl__coro_resume(r.self)) == 0) {
        p += q; q += s; s += t; t += w; w += k; k += p;
        m += n; n += o; o += m / 3.0;
    }
    CU_ASSERT_EQUAL(rc, 1);
    long want_sum;
    double want_dsum;
    busy_reference(r.seed, &want_sum, &want_dsum);
    CU_ASSERT_EQUAL(r.sum, want_sum);
    CU_ASSERT(r.dsum == want_dsum);
    /* This side's values, by the same five-step recurrence without switches. */
    long p2 = seed, q2 = p2 * 5, s2 = p2 + 9, t2 = p2 ^ 0x3c, w2 = p2 * p2, k2 = p2 - 2;
    double m2 = (double)p2 / 7.0, n2 = m2 * 2.5, o2 = m2 + 0.125;
    for (int i = 0; i < 4; i++) {
        p2 += q2; q2 += s2; s2 += t2; t2 += w2; w2 += k2; k2 += p2;
        m2 += n2; n2 += o2; o2 += m2 / 3.0;
    }
    CU_ASSERT_EQUAL(p + q + s + t + w + k, p2 + q2 + s2 + t2 + w2 + k2);
    CU_ASSERT(m + n + o == m2 + n2 + o2);
    tl__coro_free(r.self);
    tl__stack_pool_free(pool);
}

#if defined(__x86_64__) || defined(__aarch64__)
#  define HAVE_FP_CONTROL 1
/* Rounding-mode control, without libm: the MXCSR (x86-64) or FPCR. */
enum { ROUND_NEAREST, ROUND_UP, ROUND_DOWN };
static unsigned long fp_control(void) {
#  if defined(__x86_64__)
    uint32_t v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v & 0xffc0; /* control bits, not the sticky flags */
#  else
    unsigned long v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
#  endif
}
static void set_rounding(int mode) {
#  if defined(__x86_64__)
    static const uint32_t rc[] = {0, 2u << 13, 1u << 13};
    uint32_t v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    v = (v & ~(3u << 13)) | rc[mode];
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
#  else
    static const unsigned long rm[] = {0, 1ul << 22, 2ul << 22};
    unsigned long v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    v = (v & ~(3ul << 22)) | rm[mode];
    __asm__ volatile("msr fpcr, %0" : : "r"(v));
#  endif
}
#  if defined(__x86_64__)
static uint16_t x87_control(void) {
    uint16_t cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return cw;
}
static void set_x87_control(uint16_t cw) { __asm__ volatile("fldcw %0" : : "m"(cw)); }
#  endif

/* 1/3 in double: round-up and round-to-nearest give different last bits. */
static double third(void) {
    volatile double one = 1.0, three = 3.0;
    return one / three;
}

typedef struct fpstate {
    tl__coro_t *self;
    unsigned long first_seen, after_suspend;
    double up_third;
    int up_kept;
    uint16_t x87_inside;
} fpstate_t;

static void fp_worker(void *arg) {
    fpstate_t *f = arg;
    f->first_seen = fp_control();
    set_rounding(ROUND_UP);
    f->up_third = third();
#  if defined(__x86_64__)
    set_x87_control((uint16_t)((x87_control() & ~0x0c00) | 0x0800)); /* x87: round up */
    f->x87_inside = x87_control();
#  endif
    tl__coro_suspend(f->self);
    f->after_suspend = fp_control();
    f->up_kept = third() == f->up_third;
    set_rounding(ROUND_NEAREST);
}
#endif

static void test_fp_control_state_is_per_coroutine(void) {
#ifdef HAVE_FP_CONTROL
    tl__stack_pool_t *pool = new_pool();
    fpstate_t f = {0};
    f.self = new_coro(pool, 0, fp_worker, &f);
    unsigned long mine = fp_control();
    double nearest_third = third();
#  if defined(__x86_64__)
    uint16_t my_x87 = x87_control();
#  endif
    CU_ASSERT_EQUAL(tl__coro_resume(f.self), 0);
    CU_ASSERT_EQUAL(f.first_seen, mine);
    CU_ASSERT_EQUAL(fp_control(), mine); /* its round-up stayed inside */
    CU_ASSERT(third() == nearest_third);
    if (!RUNNING_ON_VALGRIND) /* valgrind computes SSE in round-to-nearest only */
        CU_ASSERT(f.up_third != nearest_third);
#  if defined(__x86_64__)
    CU_ASSERT_EQUAL(x87_control(), my_x87);
    CU_ASSERT_NOT_EQUAL(f.x87_inside, my_x87);
#  endif
    set_rounding(ROUND_DOWN); /* and ours does not leak in */
    unsigned long down = fp_control();
    CU_ASSERT_EQUAL(tl__coro_resume(f.self), 1);
    CU_ASSERT(f.up_kept);
    CU_ASSERT_NOT_EQUAL(f.after_suspend, down);
    CU_ASSERT_EQUAL(fp_control(), down);
    set_rounding(ROUND_NEAREST);
    CU_ASSERT_EQUAL(fp_control(), mine);
    tl__coro_free(f.self);
    tl__stack_pool_free(pool);
#endif
}

static void test_new_coroutine_starts_with_the_resumers_fp_control(void) {
#ifdef HAVE_FP_CONTROL
    tl__stack_pool_t *pool = new_pool();
    fpstate_t f = {0};
    f.self = new_coro(pool, 0, fp_worker, &f); /* created under nearest */
    set_rounding(ROUND_DOWN);
    unsigned long down = fp_control();
    CU_ASSERT_EQUAL(tl__coro_resume(f.self), 0);
    CU_ASSERT_EQUAL(f.first_seen, down);
    CU_ASSERT_EQUAL(fp_control(), down);
    set_rounding(ROUND_NEAREST);
    CU_ASSERT_EQUAL(tl__coro_resume(f.self), 1);
    tl__coro_free(f.self);
    tl__stack_pool_free(pool);
#endif
}

/* ---- stacks ------------------------------------------------------------ */

static void test_stack_sizes_are_checked(void) {
    tl__stack_pool_t *pool = new_pool();
    tl__coro_t *c = NULL;
    int ran = 0;
    CU_ASSERT_EQUAL(tl__coro_new(pool, TL__CORO_STACK_MIN - 1, set_flag, &ran, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl__coro_new(pool, 4096, set_flag, &ran, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl__coro_new(pool, TL__CORO_STACK_MAX + 1, set_flag, &ran, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl__coro_new(pool, SIZE_MAX, set_flag, &ran, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl__coro_new(NULL, 0, set_flag, &ran, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl__coro_new(pool, 0, NULL, &ran, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl__coro_new(pool, 0, set_flag, &ran, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl__stack_pool_new(NULL), TL_EINVAL);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(tl__coro_new(pool, TL__CORO_STACK_MIN, set_flag, &ran, &c), 0);
    CU_ASSERT_EQUAL(tl__coro_resume(c), 1);
    CU_ASSERT_EQUAL(ran, 1);
    tl__coro_free(c);
    tl__stack_pool_free(pool);
}

typedef struct where {
    uintptr_t local;
} where_t;

static void note_local(void *arg) {
    volatile char here = 0;
    ((where_t *)arg)->local = (uintptr_t)&here;
}

/* The address of a local in fn tells which stack it ran on. */
static uintptr_t run_and_note(tl__stack_pool_t *pool, size_t size, int keep, tl__coro_t **out) {
    where_t w = {0};
    tl__coro_t *c = new_coro(pool, size, note_local, &w);
    CU_ASSERT_EQUAL(tl__coro_resume(c), 1);
    if (keep)
        *out = c;
    else
        tl__coro_free(c);
    return w.local;
}

static void test_freed_stack_is_reused(void) {
    tl__stack_pool_t *pool = new_pool();
    uintptr_t first = run_and_note(pool, 0, 0, NULL);
    CU_ASSERT_EQUAL(run_and_note(pool, 0, 0, NULL), first);
    tl__coro_t *held;
    CU_ASSERT_EQUAL(run_and_note(pool, 0, 1, &held), first);
    uintptr_t other = run_and_note(pool, 0, 0, NULL); /* first is taken */
    CU_ASSERT_NOT_EQUAL(other, first);
    tl__coro_free(held);
    CU_ASSERT_EQUAL(run_and_note(pool, 0, 0, NULL), first); /* most recent first */
    tl__stack_pool_free(pool);
}

static void test_sizes_round_up_to_pages(void) {
    /* 16 KiB + 1 rounds up to the next page, the same stacks as that size. */
    size_t page = tl__stack_os_page_size();
    tl__stack_pool_t *pool = new_pool();
    uintptr_t odd = run_and_note(pool, TL__CORO_STACK_MIN + 1, 0, NULL);
    CU_ASSERT_EQUAL(run_and_note(pool, TL__CORO_STACK_MIN + page, 0, NULL), odd);
    CU_ASSERT_NOT_EQUAL(run_and_note(pool, TL__CORO_STACK_MIN, 0, NULL), odd);
    CU_ASSERT_NOT_EQUAL(run_and_note(pool, TL__CORO_STACK_MIN + 2 * page, 0, NULL), odd);
    tl__stack_pool_free(pool);
}

static void test_many_stacks_of_mixed_sizes(void) {
    /* More than a chunk's worth, and past the idle cache when they end. */
    enum { N = 700 };
    static tl__coro_t *cs[N];
    static where_t ws[N];
    tl__stack_pool_t *pool = new_pool();
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            size_t size = i % 3 == 0 ? TL__CORO_STACK_MIN : i % 3 == 1 ? 0 : 128 * 1024;
            cs[i] = new_coro(pool, size, note_local, &ws[i]);
        }
        for (int i = 0; i < N; i++)
            CU_ASSERT_EQUAL(tl__coro_resume(cs[i]), 1);
        int distinct = 1;
        for (int i = 1; i < N; i++)
            distinct &= ws[i].local != ws[i - 1].local;
        CU_ASSERT(distinct);
        for (int i = 0; i < N; i++)
            tl__coro_free(cs[i]);
    }
    tl__stack_pool_free(pool);
}

static void test_pool_maps_chunks_and_guards_every_stack(void) {
    tl__stack_pool_t *pool = new_pool();
    tl__stack_stats_t st;
    tl__stack_pool_stats(pool, &st);
    CU_ASSERT_EQUAL(st.chunks, 0); /* nothing until a coroutine needs it */
    tl__coro_t *c = new_coro(pool, 0, set_flag, &(int){0});
    tl__stack_pool_stats(pool, &st);
    CU_ASSERT_EQUAL(st.chunks, 1);
    CU_ASSERT_EQUAL(st.maps_made, 1);
    CU_ASSERT_EQUAL(st.mapped_bytes, 4 * (TL__CORO_STACK_DEFAULT + tl__stack_os_page_size()));
    CU_ASSERT_EQUAL(st.idle_bytes, 0);
    CU_ASSERT_EQUAL(st.guards[TL__GUARD_NONE], 0); /* far below any budget */
    CU_ASSERT_EQUAL(st.guards[TL__GUARD_MPROTECT] + st.guards[TL__GUARD_MADVISE], 1);
    tl__coro_free(c);
    tl__stack_pool_stats(pool, &st);
    CU_ASSERT_EQUAL(st.idle_bytes, st.mapped_bytes); /* kept for reuse */
    tl__stack_pool_free(pool);
}

static void test_a_burst_keeps_its_stacks_for_the_next(void) {
    /* 600 stacks (40 MiB, beyond the fixed idle cache) alive at once, all
     * freed, then again: the pool follows its recent peak, maps nothing. */
    enum { N = 600 };
    static tl__coro_t *cs[N];
    static pingpong_t ps[N];
    tl__stack_pool_t *pool = new_pool();
    tl__stack_stats_t st;
    size_t maps = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            ps[i] = (pingpong_t){.rounds = 1};
            cs[i] = ps[i].self = new_coro(pool, 0, doubler, &ps[i]);
            CU_ASSERT_EQUAL(tl__coro_resume(cs[i]), 0);
        }
        for (int i = 0; i < N; i++) {
            CU_ASSERT_EQUAL(tl__coro_resume(cs[i]), 1);
            tl__coro_free(cs[i]);
        }
        tl__stack_pool_stats(pool, &st);
        CU_ASSERT_EQUAL(st.idle_bytes, st.mapped_bytes);
        CU_ASSERT(st.mapped_bytes >= N * TL__CORO_STACK_DEFAULT);
        if (round == 0)
            maps = st.maps_made;
    }
    CU_ASSERT_EQUAL(st.maps_made, maps);
    tl__stack_pool_free(pool);
}

static void test_past_the_guard_budget_stacks_still_come(void) {
    /* The mprotect way with room for 8 guard pages (as if vm.max_map_count
     * were nearly used up): 20 stacks all work, 8 guarded; freeing them
     * gives the budget back. */
    enum { N = 20 };
    tl__coro_t *cs[N];
    where_t ws[N];
    tl__stack_os_force_guard(TL__GUARD_MPROTECT, 8);
    for (int round = 0; round < 2; round++) {
        tl__stack_pool_t *pool = new_pool();
        for (int i = 0; i < N; i++) {
            cs[i] = new_coro(pool, TL__CORO_STACK_MIN, note_local, &ws[i]);
            CU_ASSERT_EQUAL(tl__coro_resume(cs[i]), 1);
        }
        tl__stack_stats_t st;
        tl__stack_pool_stats(pool, &st);
        CU_ASSERT_EQUAL(st.guards[TL__GUARD_MPROTECT], 8);
        CU_ASSERT_EQUAL(st.guards[TL__GUARD_NONE], N - 8);
        for (int i = 0; i < N; i++)
            tl__coro_free(cs[i]);
        tl__stack_pool_free(pool);
    }
    tl__stack_os_force_guard(-1, 0);
}

/* Recursion eating about 1 KiB a level; stops `limit` bytes below `top`
 * and then calls at_bottom. */
typedef struct deep {
    tl__coro_t *self;
    uintptr_t top;
    size_t limit;
    int suspend_at_bottom;
    long reached;
} deep_t;

static long descend(deep_t *d) {
    volatile char buf[1000];
    memset((char *)buf, 0x5a, sizeof buf);
    uintptr_t here = (uintptr_t)buf;
    if (d->top - here >= d->limit) {
        d->reached = (long)(d->top - here);
        if (d->suspend_at_bottom)
            tl__coro_suspend(d->self);
        return buf[0];
    }
    return descend(d) + buf[1];
}

static void go_deep(void *arg) {
    deep_t *d = arg;
    volatile char mark = 0;
    d->top = (uintptr_t)&mark;
    descend(d);
}

static void test_deep_recursion_that_fits(void) {
    tl__stack_pool_t *pool = new_pool();
    deep_t d = {.limit = 200 * 1024};
    d.self = new_coro(pool, 256 * 1024, go_deep, &d);
    CU_ASSERT_EQUAL(tl__coro_resume(d.self), 1);
    CU_ASSERT(d.reached >= 200 * 1024);
    tl__coro_free(d.self);
    tl__stack_pool_free(pool);
}

/* In a child: a 16 KiB coroutine goes `limit` bytes deep and suspends
 * there. Returns the child's wait status. */
static int overflow_in_child(int guard, size_t limit) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* no sanitizer report: just die */
        signal(SIGABRT, SIG_DFL);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 2); /* the expected abort message */
        if (guard >= 0)
            tl__stack_os_force_guard(guard, 0);
        tl__stack_pool_t *pool;
        tl__coro_t *c;
        deep_t d = {.limit = limit, .suspend_at_bottom = 1};
        if (tl__stack_pool_new(&pool) != 0 ||
            tl__coro_new(pool, TL__CORO_STACK_MIN, go_deep, &d, &c) != 0)
            _exit(2);
        d.self = c;
        int rc = tl__coro_resume(c);
        tl__coro_free(c);
        tl__stack_pool_free(pool);
        _exit(rc == 0 ? 0 : 3);
    }
    int status = 0;
    CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
    return status;
}

static void test_stack_overflow_faults_on_the_guard_page(void) {
    /* Whatever way this process guards (probed), running 2 KiB past the
     * end of a 16 KiB stack must kill with SIGSEGV, not corrupt memory. */
    int st = overflow_in_child(-1, TL__CORO_STACK_MIN + 2048);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    st = overflow_in_child(TL__GUARD_MPROTECT, TL__CORO_STACK_MIN + 2048);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    /* Within bounds, the same child exits normally. */
    st = overflow_in_child(-1, TL__CORO_STACK_MIN - 4096);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_unguarded_stack_overflow_aborts_at_suspend(void) {
    /* Without a guard the spare page absorbs a small overflow (here a few
     * hundred bytes, plus sanitizer runtime frames), and the suspend that
     * finds the stack pointer there aborts. */
    int st = overflow_in_child(TL__GUARD_NONE, TL__CORO_STACK_MIN);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    st = overflow_in_child(TL__GUARD_NONE, TL__CORO_STACK_MIN - 4096);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- allocation failures ----------------------------------------------- */

static void test_failed_allocations_give_enomem_without_leaks(void) {
    long live = tl_test_live_allocs();
    tl__stack_pool_t *pool = NULL;
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(tl__stack_pool_new(&pool), TL_ENOMEM);
    CU_ASSERT_EQUAL(tl_test_live_allocs(), live);
    /* Fail each allocation tl__coro_new makes on a fresh pool in turn. */
    int succeeded = 0;
    for (long n = 1; n < 20 && !succeeded; n++) {
        pool = new_pool();
        long before = tl_test_live_allocs();
        int ran = 0;
        tl__coro_t *c = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl__coro_new(pool, 0, set_flag, &ran, &c);
        tl_test_fail_alloc_at(0);
        if (rc == 0) {
            succeeded = 1;
            CU_ASSERT(n > 1); /* at least one allocation was walked */
            CU_ASSERT_EQUAL(tl__coro_resume(c), 1);
            tl__coro_free(c);
        } else {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            CU_ASSERT_PTR_NULL(c);
            /* Nothing beyond what the pool caches (freed with it below). */
            CU_ASSERT(tl_test_live_allocs() - before <= 2);
            /* The pool still works after the failure. */
            CU_ASSERT_EQUAL(tl__coro_new(pool, 0, set_flag, &ran, &c), 0);
            CU_ASSERT_EQUAL(tl__coro_resume(c), 1);
            tl__coro_free(c);
        }
        tl__stack_pool_free(pool);
        CU_ASSERT_EQUAL(tl_test_live_allocs(), live);
    }
    CU_ASSERT(succeeded);
}

static void test_impl_is_named(void) {
    const char *impl = tl__coro_impl();
    CU_ASSERT(strcmp(impl, "asm") == 0 || strcmp(impl, "ucontext") == 0);
#if defined(TL_CORO_UCONTEXT)
    CU_ASSERT_STRING_EQUAL(impl, "ucontext");
#endif
}

TL_TEST_SUITE(coro,
              TL_TEST(test_ping_pong_passes_values_through_memory),
              TL_TEST(test_finishing_returns_one_then_resume_is_estate),
              TL_TEST(test_free_never_started_and_suspended),
              TL_TEST(test_current_names_the_running_coroutine),
              TL_TEST(test_many_coroutines_interleave),
              TL_TEST(test_nested_resume_returns_to_the_resumer),
              TL_TEST(test_registers_and_doubles_survive_switches),
              TL_TEST(test_fp_control_state_is_per_coroutine),
              TL_TEST(test_new_coroutine_starts_with_the_resumers_fp_control),
              TL_TEST(test_stack_sizes_are_checked),
              TL_TEST(test_freed_stack_is_reused),
              TL_TEST(test_sizes_round_up_to_pages),
              TL_TEST(test_many_stacks_of_mixed_sizes),
              TL_TEST(test_pool_maps_chunks_and_guards_every_stack),
              TL_TEST(test_a_burst_keeps_its_stacks_for_the_next),
              TL_TEST(test_past_the_guard_budget_stacks_still_come),
              TL_TEST(test_deep_recursion_that_fits),
              TL_TEST(test_stack_overflow_faults_on_the_guard_page),
              TL_TEST(test_unguarded_stack_overflow_aborts_at_suspend),
              TL_TEST(test_failed_allocations_give_enomem_without_leaks),
              TL_TEST(test_impl_is_named))
