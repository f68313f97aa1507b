/*
 * Subprocesses, shared by the files of src/process: the transport object
 * (subprocess.c), spawning (spawn.c) and the per-loop child watcher
 * (watch.c).
 */
#ifndef TL_PROCESS_INT_H
#define TL_PROCESS_INT_H

#include "tulip/process.h"

typedef struct tl__proc_loop tl__proc_loop_t;

/* One standard stream of the child that is a pipe; ctx of its transport's
 * protocol. */
typedef struct tl__proc_pipe {
    tl_subprocess_t *p;
    int fd;             /* 0, 1 or 2 */
    tl_transport_t *t;  /* NULL when not a pipe or once its lost ran */
} tl__proc_pipe_t;

struct tl_subprocess {
    tl_loop_t *loop;           /* referenced until the object is freed */
    tl_subprocess_protocol_t proto;
    void *ctx;
    tl_future_t *waiter;       /* the caller's future, done after made */
    int64_t pid;
    int pidfd;                 /* -1 when none (SIGCHLD watcher or reaped) */
    int refs;                  /* the loop's (until lost), made's, users' */
    int returncode;
    unsigned exited : 1;       /* reaped; returncode set */
    unsigned made : 1;         /* connection_made ran */
    unsigned lost_ran : 1;     /* connection_lost ran */
    unsigned closing : 1;      /* tl_subprocess_close called */
    unsigned failed : 1;       /* spawn set-up failed: no user callbacks */
    unsigned watched : 1;      /* on the loop record's list */
    int npipes;                /* pipes whose lost has not run */
    tl__proc_pipe_t pipes[3];
    tl__proc_loop_t *rec;
    tl_subprocess_t *prev, *next;
};

/* ---- spawn.c ---------------------------------------------------------- */

/* Spawn (clone(CLONE_VM|CLONE_VFORK) + exec). opts is complete (copied,
 * validated). On success *pid, *pidfd (the child's pidfd, close-on-exec,
 * when want_pidfd and the kernel gives one from the clone; else -1) and,
 * for each TL_PROC_PIPE stream i, parent_fds[i] (the parent's end,
 * close-on-exec; -1 for the others). On failure (the child's own errno
 * included) nothing is open and no child is left. */
int tl__spawn(const char *const *argv, const tl_subprocess_options_t *opts,
              int want_pidfd, int parent_fds[3], int64_t *pid, int *pidfd);

/* ---- watch.c ---------------------------------------------------------- */

/* The loop's record (made on first use) and its watcher set up for one
 * more child: call before spawning, so no SIGCHLD can be missed. */
int tl__proc_watch_prepare(tl_loop_t *loop, tl__proc_loop_t **out);
/* Whether the loop watches its children with pidfds (then the spawn
 * should ask the clone for one). */
int tl__proc_watch_wants_pidfd(const tl__proc_loop_t *rec);
/* Start watching p->pid (after the spawn); pidfd is the child's from the
 * clone (taken: closed on failure) or -1 (then one is opened when the
 * loop uses pidfds). 0, or an error: p is then not watched and the caller
 * reaps the child. */
int tl__proc_watch_start(tl__proc_loop_t *rec, tl_subprocess_t *p, int pidfd);
/* No child left: drop the SIGCHLD handler (after a failed spawn). */
void tl__proc_watch_idle(tl__proc_loop_t *rec);
/* Stop watching (p unlinked, its pidfd closed). */
void tl__proc_watch_stop(tl_subprocess_t *p);
/* Kill (SIGKILL) and reap a child of a failed set-up, blocking: it was
 * just spawned and is our own, so the wait is short. */
void tl__proc_reap_now(int64_t pid);
/* Signal the child, through the pidfd when there is one. */
int tl__proc_signal(tl_subprocess_t *p, int signum);
/* Called by watch.c when the child was reaped (status is a returncode). */
void tl__proc_exited(tl_subprocess_t *p, int returncode);
/* Called by watch.c when the loop closes and p is still live. */
void tl__proc_loop_closed(tl_subprocess_t *p);

#endif
