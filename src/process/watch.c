/*
 * Child exit detection, per loop (the loop's TL__EXT_PROCESS record).
 *
 * pidfd (Linux 5.3+): each child's pidfd is watched with the loop's
 * reader; it turns readable when the child exits, and waitid(P_PIDFD)
 * reaps exactly that child. No signal, no race with other reapers of
 * other pids, and several loops never see each other's children.
 *
 * SIGCHLD (kernels without pidfd_open, or $TL_CHILD_WATCHER=sigchld when
 * the loop's record is made): the loop's SIGCHLD handler, installed before
 * the spawn (so an early exit cannot be missed) while the loop has
 * children, tries waitpid(pid, WNOHANG) for each child of this loop only
 * (never waitpid(-1), which would steal other loops' and the program's
 * children). SIGCHLD is shared: every loop with children gets the call and
 * checks its own.
 *
 * A child reaped by someone else (waitpid(-1) elsewhere, SIGCHLD ignored)
 * gets returncode 255, as asyncio does.
 *
 * Loop close with children still running: all killed (SIGKILL, asyncio's
 * transport close), then reaped by the close itself, which waits for them
 * 100 ms at most in all (killed children die within microseconds); one
 * that is not dead by then (asleep in the kernel) is reaped by a detached
 * thread blocked in waitpid (asyncio's ThreadedChildWatcher), so the close
 * never blocks for long and no zombie stays.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "../loop/loop_int.h"
#include "process_int.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct tl__proc_loop {
    tl_loop_t *loop;
    tl_subprocess_t *head;
    int use_sigchld;
    int sig_installed;
};

static int pidfd_open_(int64_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static int status_code(int status) {
    if (WIFSIGNALED(status))
        return -WTERMSIG(status);
    return WEXITSTATUS(status);
}

static void link_p(tl__proc_loop_t *rec, tl_subprocess_t *p) {
    p->prev = NULL;
    p->next = rec->head;
    if (rec->head)
        rec->head->prev = p;
    rec->head = p;
    p->rec = rec;
    p->watched = 1;
}

static void unlink_p(tl_subprocess_t *p) {
    tl__proc_loop_t *rec = p->rec;
    if (p->prev)
        p->prev->next = p->next;
    else
        rec->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    p->watched = 0;
}

/* ---- the two watchers ------------------------------------------------- */

static void on_pidfd(void *ctx) {
    tl_subprocess_t *p = ctx;
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    int r;
    do
        r = waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG);
    while (r < 0 && errno == EINTR);
    int code;
    if (r < 0)
        code = 255; /* reaped by someone else (ECHILD) */
    else if (si.si_pid == 0)
        return; /* not yet (spurious wakeup) */
    else
        code = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
    tl__proc_watch_stop(p);
    tl__proc_exited(p, code);
}

static void on_sigchld(void *ctx) {
    tl__proc_loop_t *rec = ctx;
    /* First collect (unlinking), then report: the callbacks may spawn or
     * close, which changes the list. */
    tl_subprocess_t *done = NULL, *p = rec->head;
    while (p) {
        tl_subprocess_t *next = p->next;
        int status = 0;
        pid_t r;
        do
            r = waitpid((pid_t)p->pid, &status, WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r != 0) {
            p->returncode = r < 0 ? 255 : status_code(status);
            unlink_p(p);
            p->next = done;
            done = p;
        }
        p = next;
    }
    while (done) {
        p = done;
        done = p->next;
        p->next = NULL;
        tl__proc_watch_stop(p); /* may remove the handler */
        tl__proc_exited(p, p->returncode);
    }
}

/* ---- the record ------------------------------------------------------- */

static void *reaper(void *arg) {
    pid_t pid = (pid_t)(intptr_t)arg;
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return NULL;
}

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void kill_child(tl_subprocess_t *p) {
    if (p->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
    else
        kill((pid_t)p->pid, SIGKILL);
}

/* The loop is closing and p's child was sent SIGKILL: reap it, waiting
 * for its death until `deadline` at most (a killed child is gone within
 * microseconds unless it sleeps in the kernel), through its pidfd when it
 * has one. One that outlives the deadline is left to a detached thread. */
static void abandon(tl_subprocess_t *p, int64_t deadline) {
    int status = 0;
    pid_t r;
    for (;;) {
        r = waitpid((pid_t)p->pid, &status, WNOHANG);
        int64_t left = deadline - mono_ns();
        if (r != 0 || left <= 0)
            break;
        if (p->pidfd >= 0) {
            struct pollfd pfd = {p->pidfd, POLLIN, 0};
            poll(&pfd, 1, (int)(left / 1000000) + 1);
        } else {
            struct timespec ts = {0, 200000}; /* 0.2 ms */
            nanosleep(&ts, NULL);
        }
    }
    if (p->pidfd >= 0) {
        close(p->pidfd); /* the closing loop drops its watcher itself */
        p->pidfd = -1;
    }
    if (r == (pid_t)p->pid) {
        p->exited = 1;
        p->returncode = status_code(status);
        return;
    }
    if (r < 0)
        return; /* someone else reaped it */
    pthread_attr_t a;
    pthread_t th;
    int ok = pthread_attr_init(&a) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 64 * 1024);
        ok = pthread_create(&th, &a, reaper, (void *)(intptr_t)p->pid) == 0;
        pthread_attr_destroy(&a);
    }
    if (!ok)
        reaper((void *)(intptr_t)p->pid); /* killed: a short wait */
}

/* How long a closing loop waits for its killed children, in all. */
#define CLOSE_REAP_NS (100 * 1000000LL)

static void rec_close(tl_loop_t *loop, void *data) {
    (void)loop;
    tl__proc_loop_t *rec = data;
    /* Kill them all first, so they die while we wait for the first. */
    for (tl_subprocess_t *p = rec->head; p; p = p->next)
        kill_child(p);
    int64_t deadline = mono_ns() + CLOSE_REAP_NS;
    while (rec->head) {
        tl_subprocess_t *p = rec->head;
        unlink_p(p);
        abandon(p, deadline);
        tl__proc_loop_closed(p);
    }
    tl__free(rec);
}

int tl__proc_watch_prepare(tl_loop_t *loop, tl__proc_loop_t **out) {
    tl__proc_loop_t *rec = loop->ext[TL__EXT_PROCESS].data;
    if (rec == NULL) {
        if ((rec = tl__calloc(1, sizeof(*rec))) == NULL)
            return TL_ENOMEM;
        rec->loop = loop;
        const char *w = getenv("TL_CHILD_WATCHER");
        if (w && strcmp(w, "sigchld") == 0) {
            rec->use_sigchld = 1;
        } else {
            int fd = pidfd_open_(getpid());
            if (fd >= 0)
                close(fd);
            else
                rec->use_sigchld = errno == ENOSYS || errno == EPERM;
        }
        loop->ext[TL__EXT_PROCESS].data = rec;
        loop->ext[TL__EXT_PROCESS].close = rec_close;
    }
    if (rec->use_sigchld && !rec->sig_installed) {
        int rc = tl_loop_add_signal_handler(loop, SIGCHLD, on_sigchld, rec);
        if (rc)
            return rc;
        rec->sig_installed = 1;
    }
    *out = rec;
    return 0;
}

/* Without children the SIGCHLD handler goes (the program's own
 * disposition comes back). */
static void idle(tl__proc_loop_t *rec) {
    if (rec->head == NULL && rec->sig_installed && !rec->loop->closed) {
        tl_loop_remove_signal_handler(rec->loop, SIGCHLD);
        rec->sig_installed = 0;
    }
}

void tl__proc_watch_idle(tl__proc_loop_t *rec) { idle(rec); }

int tl__proc_watch_wants_pidfd(const tl__proc_loop_t *rec) {
    return !rec->use_sigchld;
}

int tl__proc_watch_start(tl__proc_loop_t *rec, tl_subprocess_t *p, int pidfd) {
    if (rec->use_sigchld && pidfd >= 0) {
        close(pidfd);
        pidfd = -1;
    }
    if (!rec->use_sigchld) {
        int fd = pidfd >= 0 ? pidfd : pidfd_open_(p->pid);
        if (fd < 0)
            return tl_translate_sys_error(errno);
        int rc = tl_loop_add_reader(rec->loop, fd, on_pidfd, p);
        if (rc) {
            close(fd);
            return rc;
        }
        p->pidfd = fd;
    }
    link_p(rec, p);
    return 0;
}

void tl__proc_watch_stop(tl_subprocess_t *p) {
    if (p->pidfd >= 0) {
        if (!p->loop->closed)
            tl_loop_remove_reader(p->loop, p->pidfd);
        close(p->pidfd);
        p->pidfd = -1;
    }
    if (p->watched)
        unlink_p(p);
    idle(p->rec);
}

void tl__proc_reap_now(int64_t pid) {
    kill((pid_t)pid, SIGKILL);
    reaper((void *)(intptr_t)pid);
}

int tl__proc_signal(tl_subprocess_t *p, int signum) {
    int r = p->pidfd >= 0
                ? (int)syscall(SYS_pidfd_send_signal, p->pidfd, signum, NULL, 0)
                : kill((pid_t)p->pid, signum);
    return r == 0 ? 0 : tl_translate_sys_error(errno);
}
