/*
 * tulip/process.h - subprocesses: asyncio's loop.subprocess_exec and
 * loop.subprocess_shell with a SubprocessTransport and a
 * SubprocessProtocol, in C.
 *
 * Spawning is clone(CLONE_VM|CLONE_VFORK) + exec, as glibc's posix_spawn
 * does it (cheap, and safe beside other threads: the child runs only
 * async-signal-safe code with every signal blocked until its handlers are
 * reset), plus credentials and the child's pidfd from the clone itself;
 * every descriptor tulip makes is close-on-exec, and the child's
 * descriptors 3 and up are closed unless close_fds is OFF. A program that
 * cannot be run (TL_ENOENT, TL_EACCES, a bad cwd, TL_EPERM for a uid change
 * not permitted...) is an error returned by the spawn call itself, never
 * an exit status 127.
 *
 * Callbacks of the process protocol, always on the loop's thread, in
 * asyncio's order:
 *
 *   connection_made        once, first (scheduled when the spawn returns)
 *   pipe_data_received*    output of the child on fd 1 or 2
 *   pipe_connection_lost   once per pipe (0, 1, 2), when it closed: 0, or
 *                          the error (TL_EPIPE: stdin's reader went away)
 *   process_exited         once, when the child was reaped
 *   connection_lost        once, last: only after process_exited AND every
 *                          pipe's pipe_connection_lost; the protocol frees
 *                          its ctx here if it owns one.
 *
 * Child exit detection: a pidfd (pidfd_open) watched with the loop's
 * reader and reaped with waitid(P_PIDFD), or where the kernel has none (or
 * $TL_CHILD_WATCHER is "sigchld" when the loop's first child is spawned),
 * a SIGCHLD handler of the loop (tl_loop_add_signal_handler) that reaps
 * only the loop's own children with waitpid(pid, WNOHANG). Several loops
 * in one process each see their own children either way.
 *
 * Lifetime: as for transports (transport.h), the subprocess transport
 * belongs to its loop until its connection_lost ran, then it is freed,
 * unless the user holds a reference (tl_subprocess_ref). Closing the loop
 * with a child still running does what asyncio's transport close does: the
 * child is killed (SIGKILL), its connection_lost runs with TL_ECLOSED
 * inside tl_loop_close, and the child is reaped by the close (which waits
 * 100 ms at most, in all, for its killed children to die), or if it is
 * not dead by then by a detached thread waiting for it, as asyncio's
 * ThreadedChildWatcher does: no zombie is left behind.
 *
 * All functions: call on the loop's thread (TL_EWRONGTHREAD otherwise);
 * NULL arguments get TL_EINVAL.
 */
#ifndef TULIP_PROCESS_H
#define TULIP_PROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "backend.h"
#include "future.h"
#include "loop.h"
#include "stream.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tl_subprocess tl_subprocess_t;

/* What a standard stream of the child is. PIPE (0) is loop.subprocess_exec's
 * default: a pipe whose transport is tl_subprocess_get_pipe_transport. */
enum {
    TL_PROC_PIPE = 0,
    TL_PROC_INHERIT = 1, /* the parent's own descriptor */
    TL_PROC_DEVNULL = 2, /* /dev/null */
    TL_PROC_FD = 3,      /* the descriptor in fds[i] (the caller keeps it) */
    TL_PROC_STDOUT = 4   /* stderr only: the same as stdout (merged) */
};

typedef struct tl_subprocess_options {
    size_t size;            /* sizeof(tl_subprocess_options_t), or 0 */
    int stdio[3];           /* TL_PROC_* for stdin, stdout, stderr */
    tl_fd_t fds[3];         /* for TL_PROC_FD */
    const char *cwd;        /* NULL: the parent's */
    /* NULL: the parent's environment; else the whole environment of the
     * child: "NAME=value" strings, NULL-terminated. */
    const char *const *env;
    /* "NAME=value" strings, NULL-terminated, set on top of env (or of the
     * parent's environment), replacing a variable of the same name. */
    const char *const *env_add;
    int close_fds;          /* TL_OPT_*: default ON (fds >= 3 closed) */
    int new_session;        /* TL_OPT_ON: setsid() in the child */
    int new_process_group;  /* TL_OPT_ON: the child leads a new group */
    int64_t process_group;  /* > 0: the child joins this process group */
    /* Credentials of the child, where permitted (root, or CAP_SETGID /
     * CAP_SETUID): each is applied only when its set_* is TL_OPT_ON, so a
     * zeroed struct keeps the parent's. In the child, after the standard
     * streams and cwd, in this order: setgroups(groups[0..ngroups)) (0
     * groups drops every supplementary group), setgid(gid), setuid(uid).
     * Note that changing uid alone keeps the parent's supplementary
     * groups (root's included): set_groups too to drop them. Refused
     * (TL_EPERM from the spawn call, no child left) when not permitted;
     * TL_EINVAL for an id outside 0..2^32-2, or groups NULL with
     * ngroups > 0, or more than 65536 groups. */
    int set_uid, set_gid, set_groups;
    int64_t uid, gid;
    const int64_t *groups;
    size_t ngroups;
    /* Descriptors the child keeps at the same numbers (Python's pass_fds):
     * close-on-exec is cleared on them in the child only, and close_fds
     * spares them. Each must be open and 3 or above: TL_EBADF / TL_EINVAL
     * otherwise. The caller keeps them (closing them after the spawn is
     * the caller's business, as with TL_PROC_FD). */
    const int *pass_fds;
    size_t npass_fds;
} tl_subprocess_options_t;

/* asyncio.SubprocessProtocol; any member may be NULL. size as for
 * tl_protocol_t (0: the current size). */
typedef struct tl_subprocess_protocol {
    size_t size;
    void (*connection_made)(tl_subprocess_t *p, void *ctx);
    /* fd is 1 or 2; data[0..len) is the transport's until the call returns. */
    void (*pipe_data_received)(tl_subprocess_t *p, int fd, const void *data,
                               size_t len, void *ctx);
    void (*pipe_connection_lost)(tl_subprocess_t *p, int fd, int error,
                                 void *ctx);
    void (*process_exited)(tl_subprocess_t *p, void *ctx);
    void (*connection_lost)(tl_subprocess_t *p, int error, void *ctx);
    /* Flow control of the stdin pipe (its write buffer's water marks). */
    void (*pause_writing)(tl_subprocess_t *p, void *ctx);
    void (*resume_writing)(tl_subprocess_t *p, void *ctx);
} tl_subprocess_protocol_t;

/* Spawn argv[0] (searched in $PATH when it has no '/') with argv
 * (NULL-terminated) and opts (NULL: defaults). Errors of the spawn are
 * returned here and nothing is left behind (proto_ctx untouched):
 * TL_ENOENT, TL_EACCES, TL_ENOTDIR..., TL_EINVAL for bad arguments or
 * options (an empty argv, TL_PROC_STDOUT for another stream than stderr,
 * TL_PROC_FD with a negative fd), TL_ENOMEM, TL_EMFILE. On success *out is
 * a new future (the caller's reference) that completes, after
 * connection_made ran, with the tl_subprocess_t * (borrowed, see
 * Lifetime). The proto table is used until connection_lost, not copied. */
TL_API int tl_subprocess_exec(tl_loop_t *loop, const char *const *argv,
                              const tl_subprocess_options_t *opts,
                              const tl_subprocess_protocol_t *proto,
                              void *proto_ctx, tl_future_t **out);
/* The same for /bin/sh -c cmd. */
TL_API int tl_subprocess_shell(tl_loop_t *loop, const char *cmd,
                               const tl_subprocess_options_t *opts,
                               const tl_subprocess_protocol_t *proto,
                               void *proto_ctx, tl_future_t **out);

TL_API int tl_subprocess_ref(tl_subprocess_t *p);
TL_API int tl_subprocess_unref(tl_subprocess_t *p);
TL_API tl_loop_t *tl_subprocess_get_loop(const tl_subprocess_t *p);
/* The child's process id (any time, also after it exited), or TL_EINVAL. */
TL_API int64_t tl_subprocess_get_pid(const tl_subprocess_t *p);
/* The transport of pipe fd (0, 1 or 2), borrowed: TL_ENOENT when that
 * stream is not a pipe or its pipe is closed already. */
TL_API int tl_subprocess_get_pipe_transport(tl_subprocess_t *p, int fd,
                                            tl_transport_t **out);
/* 0 and *code once the child was reaped: its exit status, or the negated
 * number of the signal that killed it. TL_EPENDING before. */
TL_API int tl_subprocess_get_returncode(const tl_subprocess_t *p, int *code);
/* Send a signal; TL_ESRCH... once the child was reaped (asyncio raises
 * ProcessLookupError). TL_EINVAL for a bad signal number. */
TL_API int tl_subprocess_send_signal(tl_subprocess_t *p, int signum);
TL_API int tl_subprocess_terminate(tl_subprocess_t *p); /* SIGTERM */
TL_API int tl_subprocess_kill(tl_subprocess_t *p);      /* SIGKILL */
/* asyncio's close: close every pipe, and kill the child if it still runs;
 * connection_lost follows once it was reaped and the pipes are done.
 * Again: 0. */
TL_API int tl_subprocess_close(tl_subprocess_t *p);
TL_API int tl_subprocess_is_closing(const tl_subprocess_t *p);

/* ---- high level, for tasks: asyncio.create_subprocess_exec/shell ------ */

/*
 * A tl_process_t is asyncio's Process: the child with its standard streams
 * as tl_stream_t (stream.h) for the streams that are pipes. The options are
 * tl_subprocess_options_t, so every stream is a pipe by default (asyncio's
 * create_subprocess_exec inherits by default: pass TL_PROC_INHERIT).
 *
 * The process and its streams are the caller's: tl_process_free releases
 * them. The streams are borrowed from the process (never tl_stream_free
 * them); they stay valid until tl_process_free. A stream is read and
 * written as any other; stdout/stderr end (EOF) when the child closes
 * them; writing to stdin after the child closed it fails (TL_EPIPE, from
 * tl_stream_drain or the next write).
 *
 * Waiting for the exit does not wait for the pipes (a grandchild may hold
 * them): it completes when the child was reaped.
 *
 * All functions: on the loop's thread; NULL arguments get TL_EINVAL; the
 * sequential forms return TL_ENOTASK outside a task.
 */
typedef struct tl_process tl_process_t;

/* Spawn as tl_subprocess_exec does (the same errors, from the call) and
 * complete *out, once the child runs and its streams are ready, with the
 * tl_process_t * (the caller's, tl_process_free). Cancelling the future
 * before it completed kills the child. */
TL_API int tl_process_exec_future(tl_loop_t *loop, const char *const *argv,
                                  const tl_subprocess_options_t *opts,
                                  tl_future_t **out);
TL_API int tl_process_shell_future(tl_loop_t *loop, const char *cmd,
                                   const tl_subprocess_options_t *opts,
                                   tl_future_t **out);
/* In a task: the same, awaited; *out is the caller's. */
TL_API int tl_process_exec(const char *const *argv,
                           const tl_subprocess_options_t *opts,
                           tl_process_t **out);
TL_API int tl_process_shell(const char *cmd,
                            const tl_subprocess_options_t *opts,
                            tl_process_t **out);

/* The streams (borrowed), or NULL when that stream is not a pipe (or p is
 * NULL). */
TL_API tl_stream_t *tl_process_stdin(const tl_process_t *p);
TL_API tl_stream_t *tl_process_stdout(const tl_process_t *p);
TL_API tl_stream_t *tl_process_stderr(const tl_process_t *p);
/* The child's process id, or TL_EINVAL. */
TL_API int64_t tl_process_pid(const tl_process_t *p);
/* 0 and *code once the child exited (negated signal number when killed),
 * TL_EPENDING before (asyncio's returncode None). */
TL_API int tl_process_returncode(const tl_process_t *p, int *code);
/* TL_ESRCH once the child was reaped; TL_ECLOSED once the loop closed. */
TL_API int tl_process_send_signal(tl_process_t *p, int signum);
TL_API int tl_process_terminate(tl_process_t *p);
TL_API int tl_process_kill(tl_process_t *p);

/* Wait for the exit: a future whose result is the returncode as
 * (void *)(intptr_t)code, done at once if the child exited already.
 * Cancelling it does not touch the child. TL_ECLOSED (the future's error)
 * when the loop closes first or the process is freed. */
TL_API int tl_process_wait_future(tl_process_t *p, tl_future_t **out);
/* In a task: the same, awaited; *code gets the returncode (code may be
 * NULL). Cancelled: TL_ECANCELLED and the child keeps running. */
TL_API int tl_process_wait(tl_process_t *p, int *code);

/* asyncio's communicate, in a task: write input[0..len) to stdin (if it is
 * a pipe; input may be NULL with len 0) while reading stdout and stderr to
 * their ends, concurrently (no deadlock however large both sides are),
 * then close stdin and wait for the exit. A child that closes stdin early
 * is not an error (asyncio ignores BrokenPipeError), the rest of the input
 * is dropped. On success *out, *outlen and *err, *errlen get what the child
 * wrote (buffers of the tulip allocator: free them with
 * tl_process_free_output; NULL with length 0 when nothing came or the
 * stream is not a pipe); out or err may be NULL to discard that stream
 * (it is still read, so the child cannot block on it). input must stay
 * valid until the call returns. Errors: those of the streams (TL_EBUSY
 * when another read of stdout/stderr waits), TL_ENOMEM, TL_ECANCELLED
 * (cancelled: nothing is returned, the child keeps running). */
TL_API int tl_process_communicate(tl_process_t *p, const void *input,
                                  size_t len, void **out, size_t *outlen,
                                  void **err, size_t *errlen);
/* Free a buffer of tl_process_communicate (NULL is ignored). */
TL_API void tl_process_free_output(void *buf);

/* What the child wrote, the result of tl_process_communicate_future. */
typedef struct tl_process_output {
    void *out;       /* stdout's bytes, NULL with 0 when none or no pipe */
    size_t outlen;
    void *err;       /* stderr's */
    size_t errlen;
} tl_process_output_t;

/* communicate as a future (usable from callbacks; tl_await it in a task):
 * the same work as tl_process_communicate, both outputs captured, run by
 * a task of its own whose future this is (the caller's reference), so it
 * behaves as any task's: cancelling it stops the communicate (not the
 * child) and it ends TL_ECANCELLED (dropping the reference alone does not
 * stop it; a closing loop stops it); TL_ENOMEM when the task gets no
 * stack; otherwise tl_process_communicate's outcome. The result is a
 * tl_process_output_t * owned by the future and freed with it; to keep a
 * buffer past the future, take the pointer and set the field to NULL
 * (then free it with tl_process_free_output). input must stay valid until
 * the future is done. The call itself: TL_EINVAL, TL_ENOMEM, TL_ECLOSED
 * (the process was freed), TL_EWRONGTHREAD. */
TL_API int tl_process_communicate_future(tl_process_t *p, const void *input,
                                         size_t len, tl_future_t **out);

/* Release the process: its streams are closed and freed (a read or drain
 * waiting on them fails with TL_ECLOSED, wait futures with TL_ECLOSED),
 * and if the child still runs it is killed (asyncio's transport close);
 * it is reaped in the background. Wait first to let it finish. NULL is
 * ignored; also valid after the loop closed. */
TL_API void tl_process_free(tl_process_t *p);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_PROCESS_H */
