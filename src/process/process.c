/*
 * Processes for tasks (asyncio's create_subprocess_exec/shell, Process,
 * SubprocessStreamProtocol): a process protocol over the subprocess
 * transport that feeds a tl_stream_t per piped standard stream.
 *
 * The pipes' transports keep the subprocess transport's protocol (it
 * counts them for connection_lost); our process protocol forwards each
 * pipe's callbacks to its stream through the stream's own protocol table
 * (tl__stm_protocol), and attaches the stream to the pipe's transport in
 * connection_made, so the stream writes, pauses reading and closes the
 * pipe directly, as over any transport.
 *
 * References of a tl_process_t: the user's (held by the exec future until
 * it hands the process over), the protocol's (until the subprocess
 * transport's connection_lost), and one per running communicate. Streams:
 * the process holds each one's owner reference until the user's is
 * dropped; an attached stream lives on (the transport's reference) until
 * its pipe's lost, which we forward (fwd[]).
 *
 * communicate runs in the calling task: it keeps one drain of stdin and
 * one read per output stream pending, and waits for the first of them to
 * finish (tl_wait, FIRST_COMPLETED) until stdin is written and both
 * outputs ended; no other task or callback ever points at its state, so
 * cancellation and a closing loop just cancel the pending futures.
 */
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/options.h"
#include "../future/future_int.h"
#include "../loop/loop_int.h"
#include "../transport/stream_int.h"
#include "process_int.h"

#define FEED_CHUNK ((size_t)256 * 1024) /* stdin written per drain */
#define READ_MIN ((size_t)64 * 1024)    /* free room for each read */

typedef struct opener opener_t;
typedef struct comm_job comm_job_t;

struct tl_process {
    tl_loop_t *loop;          /* referenced */
    tl_subprocess_t *sp;      /* referenced once connection_made ran */
    tl_stream_t *s[3];        /* the owner's references; NULL: no pipe, or
                                 released */
    tl_stream_t *fwd[3];      /* attached streams, until their pipe's lost */
    int refs;
    int returncode;
    unsigned exited : 1;
    unsigned lost : 1;        /* the subprocess's connection_lost ran */
    unsigned released : 1;    /* the user's reference was dropped */
    tl_future_t **waiters;    /* wait futures (references) */
    size_t nwaiters, wcap;
    opener_t *opener;         /* the exec future, until it hands p over */
    comm_job_t *jobs;         /* communicate futures not started yet */
};

struct opener {
    struct tl_future fut;
    tl_process_t *p; /* the user's reference, until handed over */
};

static int check(const tl_process_t *p) {
    return p ? tl__loop_check(p->loop) : TL_EINVAL;
}

static void drop_jobs(tl_process_t *p);

static void proc_unref(tl_process_t *p) {
    if (--p->refs > 0)
        return;
    drop_jobs(p);
    if (p->sp)
        tl_subprocess_unref(p->sp);
    tl__free(p->waiters);
    tl_loop_t *loop = p->loop;
    tl__free(p);
    tl_loop_unref(loop);
}

/* Complete every wait future: with the returncode (rc 0) or rc. */
static void finish_waiters(tl_process_t *p, int rc) {
    for (size_t i = 0; i < p->nwaiters; i++) {
        tl_future_t *f = p->waiters[i];
        if (!tl_future_done(f)) {
            if (rc == 0)
                tl_future_set_result(f, (void *)(intptr_t)p->returncode, NULL);
            else
                tl_future_set_error(f, rc, NULL);
        }
        tl_future_unref(f);
    }
    p->nwaiters = 0;
}

/* Drop the user's reference: close the streams, kill a running child. */
static void proc_release(tl_process_t *p) {
    p->released = 1;
    finish_waiters(p, TL_ECLOSED);
    for (int i = 0; i < 3; i++) {
        tl_stream_t *s = p->s[i];
        p->s[i] = NULL;
        if (s)
            tl__stm_release(s); /* attached ones live on in fwd[i] */
    }
    if (p->sp)
        tl_subprocess_close(p->sp); /* else connection_made closes it */
    proc_unref(p);
}

/* ---- the exec future ---------------------------------------------------- */

static void opener_handover(opener_t *o) {
    tl_process_t *p = o->p;
    p->opener = NULL;
    /* A closing loop: nobody could take the result, the finalize
     * releases the process. */
    if (o->fut.state != TL__FUT_PENDING || p->loop->closed)
        return;
    if (tl__future_complete(&o->fut, TL__FUT_RESULT, p, NULL, 0, NULL) == 0)
        o->p = NULL; /* the caller's now */
    /* else (a closing loop): the finalize releases it */
}

static void opener_drop(opener_t *o) {
    tl_process_t *p = o->p;
    if (p == NULL)
        return;
    o->p = NULL;
    p->opener = NULL;
    proc_release(p);
}

static int opener_cancel(tl_future_t *f, const char *message) {
    int rc = tl__future_cancel_base(f, message);
    if (rc == 1)
        opener_drop((opener_t *)f);
    return rc;
}

static void opener_finalize(tl_future_t *f) { opener_drop((opener_t *)f); }

static const tl__future_class_t opener_class = {opener_cancel,
                                                opener_finalize};

/* ---- the process protocol ----------------------------------------------- */

static void pr_made(tl_subprocess_t *sp, void *ctx) {
    tl_process_t *p = ctx;
    p->sp = sp;
    tl_subprocess_ref(sp);
    for (int i = 0; i < 3; i++) {
        if (p->s[i] == NULL)
            continue;
        tl_transport_t *t;
        if (tl_subprocess_get_pipe_transport(sp, i, &t) == 0) {
            tl__stm_attach(p->s[i], t);
            p->fwd[i] = p->s[i];
        } else {
            /* Cannot happen (made precedes every pipe's lost); at EOF. */
            tl__stm_protocol.connection_lost(NULL, 0, p->s[i]);
        }
    }
    if (p->released)
        tl_subprocess_close(sp);
    else if (p->opener)
        opener_handover(p->opener);
}

static void pr_data(tl_subprocess_t *sp, int fd, const void *data, size_t len,
                    void *ctx) {
    tl_process_t *p = ctx;
    tl_transport_t *t;
    if (p->fwd[fd] && tl_subprocess_get_pipe_transport(sp, fd, &t) == 0)
        tl__stm_protocol.data_received(t, data, len, p->fwd[fd]);
}

static void pr_pipe_lost(tl_subprocess_t *sp, int fd, int error, void *ctx) {
    (void)sp;
    tl_process_t *p = ctx;
    tl_stream_t *s = p->fwd[fd];
    p->fwd[fd] = NULL;
    if (s)
        tl__stm_protocol.connection_lost(NULL, error, s);
}

static void pr_pause(tl_subprocess_t *sp, void *ctx) {
    (void)sp;
    tl_process_t *p = ctx;
    if (p->fwd[0])
        tl__stm_protocol.pause_writing(NULL, p->fwd[0]);
}

static void pr_resume(tl_subprocess_t *sp, void *ctx) {
    (void)sp;
    tl_process_t *p = ctx;
    if (p->fwd[0])
        tl__stm_protocol.resume_writing(NULL, p->fwd[0]);
}

static void pr_exited(tl_subprocess_t *sp, void *ctx) {
    tl_process_t *p = ctx;
    p->exited = 1;
    tl_subprocess_get_returncode(sp, &p->returncode);
    finish_waiters(p, 0);
}

static void pr_lost(tl_subprocess_t *sp, int error, void *ctx) {
    (void)sp;
    tl_process_t *p = ctx;
    p->lost = 1;
    finish_waiters(p, error ? error : TL_ECLOSED); /* only if not exited */
    proc_unref(p);
}

static const tl_subprocess_protocol_t process_proto = {
    .size = sizeof(tl_subprocess_protocol_t),
    .connection_made = pr_made,
    .pipe_data_received = pr_data,
    .pipe_connection_lost = pr_pipe_lost,
    .process_exited = pr_exited,
    .connection_lost = pr_lost,
    .pause_writing = pr_pause,
    .resume_writing = pr_resume,
};

/* ---- spawning ------------------------------------------------------------ */

static int spawn_future(tl_loop_t *loop, const char *const *argv,
                        const char *cmd, const tl_subprocess_options_t *opts,
                        tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (out == NULL || (argv == NULL && cmd == NULL))
        return TL_EINVAL;
    tl_subprocess_options_t o;
    memset(&o, 0, sizeof o);
    if (opts && (rc = tl__copy_options(&o, sizeof o, opts)) != 0)
        return rc;
    tl_process_t *p = tl__calloc(1, sizeof *p);
    if (p == NULL)
        return TL_ENOMEM;
    p->loop = loop;
    p->refs = 1;
    tl_future_t *f = NULL, *sf = NULL;
    for (int i = 0; i < 3 && rc == 0; i++)
        if (o.stdio[i] == TL_PROC_PIPE)
            rc = tl__stm_new(loop, 0, &p->s[i]);
    if (rc == 0)
        rc = tl__future_create(loop, sizeof(opener_t), &opener_class, &f);
    if (rc == 0)
        rc = argv ? tl_subprocess_exec(loop, argv, &o, &process_proto, p, &sf)
                  : tl_subprocess_shell(loop, cmd, &o, &process_proto, p, &sf);
    if (rc) {
        for (int i = 0; i < 3; i++)
            if (p->s[i])
                tl__stm_unref(p->s[i]);
        if (f)
            tl_future_unref(f);
        tl__free(p);
        return rc;
    }
    tl_future_unref(sf); /* connection_made tells us instead */
    tl_loop_ref(loop);
    p->refs++; /* the protocol's, until connection_lost */
    opener_t *op = (opener_t *)f;
    op->p = p;
    p->opener = op;
    *out = f;
    return 0;
}

int tl_process_exec_future(tl_loop_t *loop, const char *const *argv,
                           const tl_subprocess_options_t *opts,
                           tl_future_t **out) {
    if (argv == NULL)
        return TL_EINVAL;
    return spawn_future(loop, argv, NULL, opts, out);
}

int tl_process_shell_future(tl_loop_t *loop, const char *cmd,
                            const tl_subprocess_options_t *opts,
                            tl_future_t **out) {
    if (cmd == NULL)
        return TL_EINVAL;
    return spawn_future(loop, NULL, cmd, opts, out);
}

static tl_loop_t *task_loop(void) {
    tl_task_t *cur = tl_task_current();
    return cur ? tl_future_get_loop(tl_task_future(cur)) : NULL;
}

static int spawn_seq(const char *const *argv, const char *cmd,
                     const tl_subprocess_options_t *opts, tl_process_t **out) {
    if (out == NULL || (argv == NULL && cmd == NULL))
        return TL_EINVAL;
    tl_loop_t *loop = task_loop();
    if (loop == NULL)
        return TL_ENOTASK;
    tl_future_t *f;
    int rc = spawn_future(loop, argv, cmd, opts, &f);
    if (rc)
        return rc;
    void *v = NULL;
    rc = tl_await(f, &v);
    if (rc == 0)
        *out = v;
    else if (tl_future_done(f) == 1 && tl_future_result(f, &v) == 0)
        tl_process_free(v); /* done, but our task was cancelled meanwhile */
    tl_future_unref(f);
    return rc;
}

int tl_process_exec(const char *const *argv,
                    const tl_subprocess_options_t *opts, tl_process_t **out) {
    return spawn_seq(argv, NULL, opts, out);
}

int tl_process_shell(const char *cmd, const tl_subprocess_options_t *opts,
                     tl_process_t **out) {
    return spawn_seq(NULL, cmd, opts, out);
}

/* ---- accessors and signals ---------------------------------------------- */

tl_stream_t *tl_process_stdin(const tl_process_t *p) {
    return p ? p->s[0] : NULL;
}

tl_stream_t *tl_process_stdout(const tl_process_t *p) {
    return p ? p->s[1] : NULL;
}

tl_stream_t *tl_process_stderr(const tl_process_t *p) {
    return p ? p->s[2] : NULL;
}

int64_t tl_process_pid(const tl_process_t *p) {
    return p && p->sp ? tl_subprocess_get_pid(p->sp) : TL_EINVAL;
}

int tl_process_returncode(const tl_process_t *p, int *code) {
    if (p == NULL || code == NULL)
        return TL_EINVAL;
    if (!p->exited)
        return TL_EPENDING;
    *code = p->returncode;
    return 0;
}

int tl_process_send_signal(tl_process_t *p, int signum) {
    int rc = check(p);
    if (rc)
        return rc;
    return p->sp ? tl_subprocess_send_signal(p->sp, signum) : TL_ESTATE;
}

int tl_process_terminate(tl_process_t *p) {
    return tl_process_send_signal(p, SIGTERM);
}

int tl_process_kill(tl_process_t *p) {
    return tl_process_send_signal(p, SIGKILL);
}

void tl_process_free(tl_process_t *p) {
    if (p == NULL || tl__loop_check(p->loop) == TL_EWRONGTHREAD ||
        p->released)
        return;
    proc_release(p);
}

void tl_process_free_output(void *buf) { tl__free(buf); }

/* ---- wait ---------------------------------------------------------------- */

int tl_process_wait_future(tl_process_t *p, tl_future_t **out) {
    int rc = check(p);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (!p->exited && (p->lost || p->released))
        return TL_ECLOSED;
    tl_future_t *f;
    if ((rc = tl_future_new(p->loop, &f)) != 0)
        return rc;
    if (p->exited) {
        rc = tl_future_set_result(f, (void *)(intptr_t)p->returncode, NULL);
    } else {
        /* Forget waiters that were cancelled meanwhile. */
        size_t k = 0;
        for (size_t i = 0; i < p->nwaiters; i++) {
            if (tl_future_done(p->waiters[i]))
                tl_future_unref(p->waiters[i]);
            else
                p->waiters[k++] = p->waiters[i];
        }
        p->nwaiters = k;
        rc = tl__grow((void **)&p->waiters, &p->wcap, k + 1,
                      sizeof(tl_future_t *));
        if (rc == 0) {
            tl_future_ref(f);
            p->waiters[p->nwaiters++] = f;
        }
    }
    if (rc) {
        tl_future_unref(f);
        return rc;
    }
    *out = f;
    return 0;
}

int tl_process_wait(tl_process_t *p, int *code) {
    int rc = check(p);
    if (rc)
        return rc;
    if (p->exited) {
        if (code)
            *code = p->returncode;
        return 0;
    }
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    tl_future_t *f;
    if ((rc = tl_process_wait_future(p, &f)) != 0)
        return rc;
    void *v = NULL;
    rc = tl_await(f, &v);
    tl_future_unref(f);
    if (rc == 0 && code)
        *code = (int)(intptr_t)v;
    return rc;
}

/* ---- communicate --------------------------------------------------------- */

typedef struct reader {
    tl_future_t *f;     /* the pending read */
    unsigned char *buf;
    size_t len, cap;
    int open;           /* not at EOF yet */
} reader_t;

static int start_read(tl_process_t *p, int fd, reader_t *r) {
    tl_stream_t *s = p->s[fd];
    if (s == NULL)
        return TL_ECLOSED;
    if (r->cap - r->len < READ_MIN) {
        size_t cap = r->cap ? r->cap * 2 : READ_MIN;
        if (cap < r->cap)
            return TL_ENOMEM;
        unsigned char *b = tl__realloc(r->buf, cap);
        if (b == NULL)
            return TL_ENOMEM;
        r->buf = b;
        r->cap = cap;
    }
    return tl_stream_read_future(s, r->buf + r->len, r->cap - r->len, &r->f);
}

/* A read finished: its bytes are ours, or the stream ended. */
static int end_read(reader_t *r) {
    void *v = NULL;
    int rc = tl_future_result(r->f, &v);
    tl_future_unref(r->f);
    r->f = NULL;
    if (rc)
        return rc;
    size_t n = (size_t)(uintptr_t)v;
    if (n == 0)
        r->open = 0;
    r->len += n;
    return 0;
}

static int broken(int rc) { return rc == TL_EPIPE || rc == TL_ECONNRESET; }

/* Give a reader's bytes to the caller (or drop them). */
static void hand_out(reader_t *r, void **out, size_t *outlen) {
    if (out && r->len) {
        *out = r->buf;
        *outlen = r->len;
        r->buf = NULL;
    } else if (out) {
        *out = NULL;
        *outlen = 0;
    }
    tl__free(r->buf);
    r->buf = NULL;
}

int tl_process_communicate(tl_process_t *p, const void *input, size_t len,
                           void **out, size_t *outlen, void **err,
                           size_t *errlen) {
    int rc = check(p);
    if (rc)
        return rc;
    if ((input == NULL && len) || (out && outlen == NULL) ||
        (err && errlen == NULL))
        return TL_EINVAL;
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    if (p->released)
        return TL_ECLOSED;
    p->refs++;
    const unsigned char *in = input;
    size_t off = 0;
    int feeding = p->s[0] != NULL;
    tl_future_t *drain = NULL;
    reader_t rd[2];
    memset(rd, 0, sizeof rd);
    rd[0].open = p->s[1] != NULL;
    rd[1].open = p->s[2] != NULL;

    while (rc == 0 && (feeding || rd[0].open || rd[1].open)) {
        /* Start what is not pending. */
        if (feeding && drain == NULL) {
            tl_stream_t *s = p->s[0];
            if (s == NULL) {
                rc = TL_ECLOSED;
                break;
            }
            if (off < len) {
                size_t k = len - off < FEED_CHUNK ? len - off : FEED_CHUNK;
                rc = tl_stream_write(s, in + off, k);
                off += k;
                if (rc == 0)
                    rc = tl_stream_drain_future(s, &drain);
                if (broken(rc)) {
                    rc = 0;
                    off = len; /* the child does not read: drop the rest */
                }
                if (rc)
                    break;
            }
            if (off >= len && drain == NULL) {
                tl_stream_close(s);
                feeding = 0;
            }
        }
        for (int j = 0; j < 2 && rc == 0; j++)
            if (rd[j].open && rd[j].f == NULL)
                rc = start_read(p, j + 1, &rd[j]);
        if (rc)
            break;

        tl_future_t *futs[3];
        size_t n = 0;
        int ready = 0;
        if (drain)
            futs[n++] = drain;
        for (int j = 0; j < 2; j++)
            if (rd[j].f)
                futs[n++] = rd[j].f;
        for (size_t i = 0; i < n; i++)
            ready |= tl_future_done(futs[i]) == 1;
        if (n && !ready) {
            tl_future_t *w;
            if ((rc = tl_wait(p->loop, futs, n, TL_FIRST_COMPLETED, -1, &w)))
                break;
            rc = tl_await(w, NULL);
            tl_future_unref(w);
            if (rc)
                break;
        }

        /* Take what finished. */
        if (drain && tl_future_done(drain) == 1) {
            int e = tl_future_result(drain, NULL);
            tl_future_unref(drain);
            drain = NULL;
            if (broken(e))
                off = len;
            else if (e)
                rc = e;
        }
        for (int j = 0; j < 2 && rc == 0; j++)
            if (rd[j].f && tl_future_done(rd[j].f) == 1)
                rc = end_read(&rd[j]);
    }
    if (rc == 0)
        rc = tl_process_wait(p, NULL);

    /* What is still pending is cancelled; what failed meanwhile (the
     * streams closed under us) is dropped: rc already says why we stop. */
    if (drain) {
        tl_future_cancel(drain, NULL);
        tl_future_error(drain);
        tl_future_unref(drain);
    }
    for (int j = 0; j < 2; j++) {
        if (rd[j].f) {
            /* A cancelled read writes no more into the buffer. */
            tl_future_cancel(rd[j].f, NULL);
            tl_future_error(rd[j].f);
            tl_future_unref(rd[j].f);
        }
    }
    if (rc == 0) {
        hand_out(&rd[0], out, outlen);
        hand_out(&rd[1], err, errlen);
    } else {
        tl__free(rd[0].buf);
        tl__free(rd[1].buf);
    }
    proc_unref(p);
    return rc;
}

/* ---- communicate as a future -------------------------------------------- */

/*
 * tl_process_communicate run by a task of its own, whose future is the
 * caller's: cancelling it, a stack it cannot get, a closing loop all give
 * that future the task's outcome, as for any task. The job (the task's
 * argument) waits on the process's list until the body starts and takes
 * it, with a reference on the process; a task that never starts leaves
 * its job on the list, and the process's last reference cancels such
 * tasks (one not started never runs once cancelled) and frees the jobs.
 */
struct comm_job {
    comm_job_t *next;
    tl_process_t *p;     /* the process whose list holds the job */
    tl_task_t *task;     /* referenced */
    const void *input;
    size_t len;
};

static void job_free(comm_job_t *j) {
    tl_task_unref(j->task);
    tl__free(j);
}

static void unlink_job(comm_job_t *j) {
    for (comm_job_t **q = &j->p->jobs; *q; q = &(*q)->next)
        if (*q == j) {
            *q = j->next;
            break;
        }
}

static void drop_jobs(tl_process_t *p) {
    while (p->jobs) {
        comm_job_t *j = p->jobs;
        p->jobs = j->next;
        tl_task_cancel(j->task, NULL);
        job_free(j);
    }
}

static void output_free(void *v) {
    tl_process_output_t *o = v;
    tl__free(o->out);
    tl__free(o->err);
    tl__free(o);
}

static int comm_main(void *arg, void **result) {
    comm_job_t *j = arg;
    tl_process_t *p = j->p;
    unlink_job(j);
    p->refs++;
    tl_process_output_t *o = tl__calloc(1, sizeof(*o));
    int rc = o ? tl_process_communicate(p, j->input, j->len, &o->out,
                                        &o->outlen, &o->err, &o->errlen)
               : TL_ENOMEM;
    job_free(j);
    proc_unref(p);
    if (rc) {
        if (o)
            output_free(o);
        return rc;
    }
    *result = o;
    return 0;
}

int tl_process_communicate_future(tl_process_t *p, const void *input,
                                  size_t len, tl_future_t **out) {
    int rc = check(p);
    if (rc)
        return rc;
    if ((input == NULL && len) || out == NULL)
        return TL_EINVAL;
    if (p->released)
        return TL_ECLOSED;
    comm_job_t *j = tl__calloc(1, sizeof(*j));
    if (j == NULL)
        return TL_ENOMEM;
    j->p = p;
    j->input = input;
    j->len = len;
    tl_task_options_t to = {.size = sizeof(to), .name = "communicate",
                            .result_destructor = output_free};
    tl_task_t *t;
    if ((rc = tl_task_spawn(p->loop, comm_main, j, &to, &t)) != 0) {
        tl__free(j);
        return rc;
    }
    tl_task_ref(t); /* the job's; the caller has the first */
    j->task = t;
    j->next = p->jobs;
    p->jobs = j;
    *out = tl_task_future(t);
    return 0;
}
