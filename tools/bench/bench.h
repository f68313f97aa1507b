/*
 * What the benchmarks of tulip-bench share: their options, a clock pair
 * (wall and CPU), and the one entry point each benchmark file provides.
 *
 * A benchmark prints one JSON line per variant on stdout and nothing else
 * there; problems go to stderr. It returns 0 when its own checks pass
 * (every callback ran, timers fired in order, ...), 1 otherwise.
 */
#ifndef TULIP_BENCH_H
#define TULIP_BENCH_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_opts {
    long n;                /* size (callbacks, timers, round trips); 0: default */
    long max_ms;           /* timers: largest random timeout; -1: default */
    const char *pattern;   /* timers: "random", "step" or NULL for both */
    const char *placement; /* threadsafe: "unpinned", "pin", "same-cpu", NULL: all */
} bench_opts_t;

/* Wall clock and the process's CPU time at one instant. */
typedef struct bench_clock {
    uint64_t wall_ns;
    double user_s, sys_s; /* getrusage(RUSAGE_SELF): every thread */
} bench_clock_t;

bench_clock_t bench_clock_now(void);
/* Seconds from a to b, wall, user CPU and user+sys CPU. */
double bench_wall_s(const bench_clock_t *a, const bench_clock_t *b);
double bench_user_s(const bench_clock_t *a, const bench_clock_t *b);
double bench_cpu_s(const bench_clock_t *a, const bench_clock_t *b);
/* Median of k values (1 <= k <= 16; v is left alone), -1 for a bad k. */
double bench_median(const double *v, int k);

int bench_call_soon(const bench_opts_t *o);
int bench_timers(const bench_opts_t *o);
int bench_threadsafe(const bench_opts_t *o);
int bench_switch(const bench_opts_t *o);
int bench_tasks(const bench_opts_t *o);
int bench_tasks_rss(const bench_opts_t *o);
int bench_lock_handoff(const bench_opts_t *o);
int bench_queue_handoff(const bench_opts_t *o);
int bench_executor(const bench_opts_t *o);
int bench_spawn(const bench_opts_t *o);
int bench_tls_raw_handshake(const bench_opts_t *o);
int bench_tls_raw_bulk(const bench_opts_t *o);
int bench_tls_handshake(const bench_opts_t *o);
int bench_tls_bulk(const bench_opts_t *o);

/* A fresh ECDSA P-256 key and a self-signed certificate for localhost and
 * 127.0.0.1, as PEM (malloc'd, NUL-terminated; bench_tls_raw.c, the one
 * file that sees BoringSSL). TL_ENOTSUP in a build without TLS. */
int bench_tls_make_cert(char **cert_pem, size_t *cert_len, char **key_pem,
                        size_t *key_len);

/* tasks_rss runs each size in a fresh process: tulip-bench re-executes
 * itself as `tulip-bench --tasks-rss-child N` (a hidden option main()
 * hands to bench_tasks_rss_child, which measures N sleeping tasks). */
#define BENCH_TASKS_RSS_CHILD "--tasks-rss-child"
int bench_tasks_rss_child(long n);

#endif
