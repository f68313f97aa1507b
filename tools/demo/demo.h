/*
 * The tulip demo: a short walk through what the library does today. Each
 * part prints what happens and why, checks every claim it prints, and
 * returns 0, or -1 after saying what went wrong (the demo then exits 1).
 */
#ifndef TULIP_DEMO_H
#define TULIP_DEMO_H

#include <stdint.h>

#include "tulip.h"

#define MS (1000000LL) /* nanoseconds in a millisecond: tulip counts in ns */

/* Say what failed, on stderr; callable from any thread. Parts and
 * demo_run() notice it through demo_failures(). */
void demo_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int demo_failures(void);

/* Milliseconds since t0 (a tl_now_ns() reading). */
double demo_ms_since(uint64_t t0);

/* Run the loop until one of its callbacks calls tl_loop_stop. A guard timer
 * fails the part after guard_ms, so a broken demo stops instead of hanging.
 * Fails too if a callback reported a failure meanwhile. */
int demo_run(tl_loop_t *loop, int guard_ms);

/* Run the loop until f is done (tl_loop_run_until_complete) and store f's
 * outcome in *outcome (0 or a TL_E* code) and its result in *result (result
 * may be NULL). A guard timer fails the part after guard_ms, as demo_run's;
 * fails too if a callback or a task reported a failure meanwhile. */
int demo_complete(tl_loop_t *loop, tl_future_t *f, int guard_ms, int *outcome,
                  void **result);

/* In a part: a tulip call that returns a negative code ends the part. */
#define TRY(call)                                                              \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ < 0) {                                                         \
            demo_fail("%s returned %s (%s)", #call, tl_err_name(rc_),          \
                      tl_strerror(rc_));                                       \
            return -1;                                                         \
        }                                                                      \
    } while (0)

/* In a callback, which cannot return an error: report it and go on. */
#define CB_TRY(call)                                                           \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ < 0)                                                           \
            demo_fail("%s returned %s (%s)", #call, tl_err_name(rc_),          \
                      tl_strerror(rc_));                                       \
    } while (0)

/* A claim the demo is about to print (or just printed) must hold. */
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            demo_fail(__VA_ARGS__);                                            \
            return -1;                                                         \
        }                                                                      \
    } while (0)

/* In a task's body, which ends with a TL_E* code: as TRY and CHECK, but the
 * task ends with the failed call's code, or TL_ESTATE for a false claim. */
#define TASK_TRY(call)                                                         \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ < 0) {                                                         \
            demo_fail("%s returned %s (%s)", #call, tl_err_name(rc_),          \
                      tl_strerror(rc_));                                       \
            return rc_;                                                        \
        }                                                                      \
    } while (0)

#define TASK_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            demo_fail(__VA_ARGS__);                                            \
            return TL_ESTATE;                                                  \
        }                                                                      \
    } while (0)

/* The parts, in the order main() runs them. */
int demo_timers(tl_loop_t *loop);
int demo_call_soon(tl_loop_t *loop);
int demo_threads(tl_loop_t *loop);
int demo_futures(tl_loop_t *loop);
int demo_signals(tl_loop_t *loop);
int demo_pipeline(tl_loop_t *loop);
int demo_gather(tl_loop_t *loop);
int demo_cancel(tl_loop_t *loop);
int demo_network(tl_loop_t *loop);
int demo_udp(tl_loop_t *loop);
int demo_tls(tl_loop_t *loop);
int demo_processes(tl_loop_t *loop);

#endif /* TULIP_DEMO_H */
