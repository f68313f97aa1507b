/*
 * The subprocess transport (asyncio's BaseSubprocessTransport): the
 * child's pipes are ordinary pipe transports (transport.h) whose protocol
 * forwards to the process protocol with the stream's number, and
 * connection_lost waits for process_exited and every pipe.
 *
 * Order. Spawn schedules the pipes' connection_made, then ours, in one
 * go, so they run in one batch before any read; a callback that would
 * come first anyway (data, a pipe lost at loop close) runs connection_made
 * before itself. connection_lost is only called from a loop callback (a
 * pipe's lost, the exit watcher), never inside a user's call.
 *
 * References: the loop's (until connection_lost ran), one while made is
 * scheduled, and the user's. The object holds a reference on its loop.
 *
 * Set-up after the child exists can still fail (no memory for a pipe
 * transport, no descriptor for the pidfd): the child is then killed and
 * reaped at once, the pipes made so far are aborted, and the object lives
 * on without user callbacks (failed) until their connection_lost ran.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "../core/options.h"
#include "../loop/loop_int.h"
#include "../transport/netstack_int.h"
#include "../transport/stream_transport.h"
#include "process_int.h"

static void proc_unref(tl_subprocess_t *p) {
    if (--p->refs > 0)
        return;
    tl_loop_unref(p->loop);
    tl__free(p);
}

static void ensure_made(tl_subprocess_t *p) {
    if (p->made || p->failed)
        return;
    p->made = 1;
    if (p->proto.connection_made)
        p->proto.connection_made(p, p->ctx);
}

static void try_finish(tl_subprocess_t *p) {
    if (p->lost_ran || p->npipes > 0)
        return;
    if (p->failed) {
        p->lost_ran = 1;
        proc_unref(p);
        return;
    }
    if (!p->exited)
        return;
    ensure_made(p);
    p->lost_ran = 1;
    if (p->proto.connection_lost)
        p->proto.connection_lost(p, 0, p->ctx);
    proc_unref(p);
}

void tl__proc_exited(tl_subprocess_t *p, int returncode) {
    p->exited = 1;
    p->returncode = returncode;
    ensure_made(p);
    if (p->proto.process_exited)
        p->proto.process_exited(p, p->ctx);
    try_finish(p);
}

void tl__proc_loop_closed(tl_subprocess_t *p) {
    /* The transports closed before us: every pipe's lost ran. */
    ensure_made(p);
    p->lost_ran = 1;
    if (p->proto.connection_lost)
        p->proto.connection_lost(p, TL_ECLOSED, p->ctx);
    proc_unref(p);
}

/* ---- the pipes' protocol ---------------------------------------------- */

static void pipe_data(tl_transport_t *t, const void *data, size_t len,
                      void *ctx) {
    (void)t;
    tl__proc_pipe_t *pp = ctx;
    tl_subprocess_t *p = pp->p;
    if (p->failed)
        return;
    ensure_made(p);
    if (p->proto.pipe_data_received)
        p->proto.pipe_data_received(p, pp->fd, data, len, p->ctx);
}

static void pipe_lost(tl_transport_t *t, int error, void *ctx) {
    (void)t;
    tl__proc_pipe_t *pp = ctx;
    tl_subprocess_t *p = pp->p;
    pp->t = NULL;
    p->npipes--;
    if (!p->failed) {
        ensure_made(p);
        if (p->proto.pipe_connection_lost)
            p->proto.pipe_connection_lost(p, pp->fd, error, p->ctx);
    }
    try_finish(p);
}

static void pipe_pause(tl_transport_t *t, void *ctx) {
    (void)t;
    tl_subprocess_t *p = ((tl__proc_pipe_t *)ctx)->p;
    if (!p->failed && p->proto.pause_writing)
        p->proto.pause_writing(p, p->ctx);
}

static void pipe_resume(tl_transport_t *t, void *ctx) {
    (void)t;
    tl_subprocess_t *p = ((tl__proc_pipe_t *)ctx)->p;
    if (!p->failed && p->proto.resume_writing)
        p->proto.resume_writing(p, p->ctx);
}

static const tl_protocol_t pipe_proto = {
    .size = sizeof(tl_protocol_t),
    .data_received = pipe_data,
    .connection_lost = pipe_lost,
    .pause_writing = pipe_pause,
    .resume_writing = pipe_resume,
};

/* tl_connect_read/write_pipe, but telling who owns fd after a failure:
 * *taken says whether the descriptor is gone (closed by the transport). */
static int adopt_pipe(tl_loop_t *loop, int fd, int writer, void *ctx,
                      tl_transport_t **out, int *taken) {
    *taken = 0;
    void *state;
    int rc = tl__netstack_kernel_state(loop, &state);
    if (rc)
        return rc;
    const tl_netstack_ops_t *ops = tl_netstack_kernel();
    tl_transport_t *t;
    rc = tl__stream_alloc(loop, ops,
                          writer ? TL__STREAM_PIPE_WRITE : TL__STREAM_PIPE_READ,
                          &pipe_proto, ctx, &t);
    if (rc)
        return rc;
    tl_ns_sock_t *sock;
    rc = ops->adopt(state, fd, writer ? TL_NS_PIPE_WRITE : TL_NS_PIPE_READ,
                    tl__stream_handler(), t, &sock);
    if (rc) {
        tl__stream_free_unattached(t);
        return rc;
    }
    *taken = 1;
    if ((rc = tl__stream_attach(t, sock)) != 0)
        return rc;
    *out = t;
    return 0;
}

/* ---- spawning --------------------------------------------------------- */

static void made_cb(void *ctx) {
    tl_subprocess_t *p = ctx;
    ensure_made(p);
    tl_future_t *f = p->waiter;
    p->waiter = NULL;
    if (!tl_future_done(f))
        tl_future_set_result(f, p, NULL);
    tl_future_unref(f);
    proc_unref(p);
}

static void made_drop(void *ctx) {
    tl_subprocess_t *p = ctx;
    tl_future_unref(p->waiter);
    p->waiter = NULL;
    proc_unref(p);
}

static int check_options(const tl_subprocess_options_t *o) {
    for (int i = 0; i < 3; i++) {
        int m = o->stdio[i];
        if (m < TL_PROC_PIPE || m > TL_PROC_STDOUT)
            return TL_EINVAL;
        if (m == TL_PROC_STDOUT && i != 2)
            return TL_EINVAL;
        if (m == TL_PROC_FD && o->fds[i] < 0)
            return TL_EBADF;
    }
    if (o->process_group < 0 || o->process_group > INT32_MAX)
        return TL_EINVAL;
    /* (uid_t)-1 means "unchanged" to the kernel: not a valid id here */
    if ((o->set_uid == TL_OPT_ON && (o->uid < 0 || o->uid >= UINT32_MAX)) ||
        (o->set_gid == TL_OPT_ON && (o->gid < 0 || o->gid >= UINT32_MAX)))
        return TL_EINVAL;
    if ((o->pass_fds == NULL && o->npass_fds > 0) || o->npass_fds > 65536)
        return TL_EINVAL;
    for (size_t i = 0; i < o->npass_fds; i++) {
        if (o->pass_fds[i] < 3)
            return o->pass_fds[i] < 0 ? TL_EBADF : TL_EINVAL;
        if (fcntl(o->pass_fds[i], F_GETFD) < 0)
            return TL_EBADF;
    }
    if (o->set_groups == TL_OPT_ON) {
        if ((o->groups == NULL && o->ngroups > 0) || o->ngroups > 65536)
            return TL_EINVAL;
        for (size_t i = 0; i < o->ngroups; i++)
            if (o->groups[i] < 0 || o->groups[i] >= UINT32_MAX)
                return TL_EINVAL;
    }
    int groups = (o->new_session == TL_OPT_ON) +
                 (o->new_process_group == TL_OPT_ON) + (o->process_group > 0);
    return groups > 1 ? TL_EINVAL : 0;
}

int tl_subprocess_exec(tl_loop_t *loop, const char *const *argv,
                       const tl_subprocess_options_t *opts,
                       const tl_subprocess_protocol_t *proto, void *proto_ctx,
                       tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0' ||
        proto == NULL || out == NULL)
        return TL_EINVAL;
    tl_subprocess_options_t o;
    memset(&o, 0, sizeof(o));
    if (opts && (rc = tl__copy_options(&o, sizeof(o), opts)) != 0)
        return rc;
    if ((rc = check_options(&o)) != 0)
        return rc;

    tl_subprocess_t *p = tl__calloc(1, sizeof(*p));
    if (p == NULL)
        return TL_ENOMEM;
    size_t psz = proto->size && proto->size < sizeof(p->proto) ? proto->size
                                                               : sizeof(p->proto);
    memcpy(&p->proto, proto, psz);
    p->ctx = proto_ctx;
    p->pidfd = -1;
    p->refs = 1; /* the loop's, until connection_lost */
    for (int i = 0; i < 3; i++)
        p->pipes[i] = (tl__proc_pipe_t){p, i, NULL};
    tl__proc_loop_t *rec;
    if ((rc = tl_future_new(loop, &p->waiter)) != 0)
        goto fail_early;
    if ((rc = tl__proc_watch_prepare(loop, &rec)) != 0)
        goto fail_early;
    int fds[3], pidfd = -1;
    if ((rc = tl__spawn(argv, &o, tl__proc_watch_wants_pidfd(rec), fds,
                        &p->pid, &pidfd)) != 0) {
        tl__proc_watch_idle(rec);
        goto fail_early;
    }
    tl_loop_ref(loop);
    p->loop = loop;
    p->rec = rec;

    /* The child runs: from here a failure kills it. */
    if ((rc = tl__proc_watch_start(rec, p, pidfd)) != 0)
        goto fail_late;
    for (int i = 0; i < 3; i++) {
        if (fds[i] < 0)
            continue;
        int taken;
        rc = adopt_pipe(loop, fds[i], i == 0, &p->pipes[i], &p->pipes[i].t,
                        &taken);
        if (taken)
            fds[i] = -1;
        if (rc)
            goto fail_late;
        fds[i] = -1;
        p->npipes++;
    }
    if ((rc = tl__loop_call_soon_drop(loop, made_cb, made_drop, p)) != 0)
        goto fail_late;
    p->refs++;
    tl_future_ref(p->waiter); /* made_cb's; the caller has the first */
    *out = p->waiter;
    return 0;

fail_late:
    p->failed = 1;
    tl__proc_watch_stop(p);
    tl__proc_reap_now(p->pid);
    for (int i = 0; i < 3; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        if (p->pipes[i].t)
            tl_transport_abort(p->pipes[i].t);
    }
    tl_future_unref(p->waiter);
    p->waiter = NULL;
    try_finish(p); /* frees p unless pipes are still to report lost */
    return rc;

fail_early:
    if (p->waiter)
        tl_future_unref(p->waiter);
    tl__free(p);
    return rc;
}

int tl_subprocess_shell(tl_loop_t *loop, const char *cmd,
                        const tl_subprocess_options_t *opts,
                        const tl_subprocess_protocol_t *proto, void *proto_ctx,
                        tl_future_t **out) {
    if (cmd == NULL)
        return TL_EINVAL;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return tl_subprocess_exec(loop, argv, opts, proto, proto_ctx, out);
}

/* ---- methods ---------------------------------------------------------- */

static int check(const tl_subprocess_t *p) {
    if (p == NULL)
        return TL_EINVAL;
    if (p->loop->owner != tl__thread_self())
        return TL_EWRONGTHREAD;
    return 0;
}

int tl_subprocess_ref(tl_subprocess_t *p) {
    int rc = check(p);
    if (rc == 0)
        p->refs++;
    return rc;
}

int tl_subprocess_unref(tl_subprocess_t *p) {
    int rc = check(p);
    if (rc == 0)
        proc_unref(p);
    return rc;
}

tl_loop_t *tl_subprocess_get_loop(const tl_subprocess_t *p) {
    return p ? p->loop : NULL;
}

int64_t tl_subprocess_get_pid(const tl_subprocess_t *p) {
    return p ? p->pid : TL_EINVAL;
}

int tl_subprocess_get_pipe_transport(tl_subprocess_t *p, int fd,
                                     tl_transport_t **out) {
    int rc = check(p);
    if (rc)
        return rc;
    if (out == NULL || fd < 0 || fd > 2)
        return TL_EINVAL;
    if (p->pipes[fd].t == NULL)
        return TL_ENOENT;
    *out = p->pipes[fd].t;
    return 0;
}

int tl_subprocess_get_returncode(const tl_subprocess_t *p, int *code) {
    int rc = check(p);
    if (rc)
        return rc;
    if (code == NULL)
        return TL_EINVAL;
    if (!p->exited)
        return TL_EPENDING;
    *code = p->returncode;
    return 0;
}

int tl_subprocess_send_signal(tl_subprocess_t *p, int signum) {
    int rc = check(p);
    if (rc)
        return rc;
    if (signum < 0 || signum >= NSIG)
        return TL_EINVAL;
    if (p->exited)
        return TL_ESRCH;
    if (p->lost_ran)
        return TL_ECLOSED; /* the loop closed: the child was killed */
    return tl__proc_signal(p, signum);
}

int tl_subprocess_terminate(tl_subprocess_t *p) {
    return tl_subprocess_send_signal(p, SIGTERM);
}

int tl_subprocess_kill(tl_subprocess_t *p) {
    return tl_subprocess_send_signal(p, SIGKILL);
}

int tl_subprocess_close(tl_subprocess_t *p) {
    int rc = check(p);
    if (rc)
        return rc;
    if (p->closing || p->lost_ran)
        return 0;
    p->closing = 1;
    for (int i = 0; i < 3; i++)
        if (p->pipes[i].t)
            tl_transport_close(p->pipes[i].t);
    if (!p->exited)
        tl__proc_signal(p, SIGKILL); /* an error: it is gone already */
    return 0;
}

int tl_subprocess_is_closing(const tl_subprocess_t *p) {
    int rc = check(p);
    if (rc)
        return rc;
    return p->closing || p->lost_ran;
}
