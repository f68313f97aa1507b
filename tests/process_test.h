/* Shared by the process suites: a recording process protocol. */
#ifndef TL_PROCESS_TEST_H
#define TL_PROCESS_TEST_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tl_test.h"

typedef struct prec {
    tl_subprocess_t *p;
    int64_t pid;
    int store;              /* keep output (else only count it) */
    char *out[3];
    size_t len[3], cap[3];
    int made, exited, lost, lost_err;
    int pipe_lost[3], pipe_err[3];
    int returncode;
    char seq[16];           /* M, 0/1/2 (pipe lost), X (exited), L */
    int nseq;
    int kill_after;         /* kill once this many bytes came (0: never) */
} prec_t;

static inline void prec_seq(prec_t *r, char c) {
    if (r->nseq < (int)sizeof(r->seq) - 1)
        r->seq[r->nseq++] = c;
}

static inline void prec_made(tl_subprocess_t *p, void *ctx) {
    prec_t *r = ctx;
    r->p = p;
    r->pid = tl_subprocess_get_pid(p);
    r->made++;
    prec_seq(r, 'M');
}

static inline void prec_data(tl_subprocess_t *p, int fd, const void *d,
                             size_t n, void *ctx) {
    prec_t *r = ctx;
    if (fd < 1 || fd > 2)
        return;
    if (r->store) {
        if (r->len[fd] + n + 1 > r->cap[fd]) {
            r->cap[fd] = (r->len[fd] + n + 1) * 2;
            r->out[fd] = realloc(r->out[fd], r->cap[fd]);
        }
        memcpy(r->out[fd] + r->len[fd], d, n);
        r->out[fd][r->len[fd] + n] = 0;
    }
    r->len[fd] += n;
    if (r->kill_after && r->len[fd] >= (size_t)r->kill_after) {
        r->kill_after = 0;
        tl_subprocess_kill(p);
    }
}

static inline void prec_pipe_lost(tl_subprocess_t *p, int fd, int err,
                                  void *ctx) {
    (void)p;
    prec_t *r = ctx;
    r->pipe_lost[fd]++;
    r->pipe_err[fd] = err;
    prec_seq(r, (char)('0' + fd));
}

static inline void prec_exited(tl_subprocess_t *p, void *ctx) {
    prec_t *r = ctx;
    r->exited++;
    CU_ASSERT_EQUAL(tl_subprocess_get_returncode(p, &r->returncode), 0);
    prec_seq(r, 'X');
}

static inline void prec_lost(tl_subprocess_t *p, int err, void *ctx) {
    (void)p;
    prec_t *r = ctx;
    r->lost++;
    r->lost_err = err;
    prec_seq(r, 'L');
}

static const tl_subprocess_protocol_t prec_proto = {
    .size = sizeof(tl_subprocess_protocol_t),
    .connection_made = prec_made,
    .pipe_data_received = prec_data,
    .pipe_connection_lost = prec_pipe_lost,
    .process_exited = prec_exited,
    .connection_lost = prec_lost,
};

static inline void prec_free(prec_t *r) {
    for (int i = 0; i < 3; i++)
        free(r->out[i]);
}

static inline int64_t ptest_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Run until *flag reaches want (or 30 s pass). */
static inline void ptest_run(tl_loop_t *loop, int *flag, int want) {
    int64_t end = ptest_now() + 30 * 1000000000LL;
    while (*flag < want && ptest_now() < end)
        tl_loop_run_once(loop, 10 * 1000000);
    CU_ASSERT(*flag >= want);
}

/* Spawn argv with opts, run to connection_lost. Returns the spawn's code. */
static inline int ptest_exec(tl_loop_t *loop, const char *const *argv,
                             const tl_subprocess_options_t *o, prec_t *r) {
    tl_future_t *f = NULL;
    int rc = tl_subprocess_exec(loop, argv, o, &prec_proto, r, &f);
    if (rc)
        return rc;
    void *res = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &res), 0);
    CU_ASSERT_PTR_EQUAL(res, r->p);
    tl_future_unref(f);
    ptest_run(loop, &r->lost, 1);
    return 0;
}

static inline int ptest_sh(tl_loop_t *loop, const char *cmd,
                           const tl_subprocess_options_t *o, prec_t *r) {
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return ptest_exec(loop, argv, o, r);
}

/* 1 when /proc has no entry for pid (reaped), waiting up to 5 s. */
static inline int ptest_pid_gone(int64_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%lld", (long long)pid);
    int64_t end = ptest_now() + 5 * 1000000000LL;
    while (ptest_now() < end) {
        FILE *fp = fopen(path, "r");
        if (fp == NULL)
            return 1;
        fclose(fp);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

#endif
