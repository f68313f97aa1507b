/*
 * Spawning a child: clone(CLONE_VM|CLONE_VFORK) on a stack of its own, as
 * glibc's posix_spawn does, but with what posix_spawn cannot do (setuid,
 * setgid, setgroups; the child's pidfd from the clone itself) and less of
 * what it does per call (no mmap'd stack, no file-action lists).
 *
 * Why this is safe beside other threads: the child shares the parent's
 * memory until it execs, so it runs only async-signal-safe code on data
 * the parent prepared before the clone (argv, env, the candidate program
 * paths, the descriptors): no malloc, no lock, no stdio. Credentials are
 * changed with the raw system calls, never glibc's setuid(), whose
 * "set for every thread" broadcast would walk the parent's thread list.
 * Every signal is blocked across the clone (the raw mask, glibc's
 * internal signals too), so no handler of the parent can run on the
 * child's stack; the child resets caught handlers to the default before
 * it unblocks signals, so one arriving between the unblock and the exec
 * does what it would do to the new program.
 *
 * Errors: the child writes the errno of the step that failed (chdir,
 * dup2, setuid, exec...) into a close-on-exec pipe and exits 127; the
 * parent reads it once the clone returns (with CLONE_VFORK, after the
 * exec or the exit): 0 bytes means the exec happened. A failed child is
 * reaped here, so TL_ENOENT/TL_EACCES/TL_EPERM come from the spawn call,
 * never as an exit status. A pipe rather than the vfork shared-memory
 * trick, because valgrind runs CLONE_VM|CLONE_VFORK as a plain fork.
 *
 * Every descriptor made here is close-on-exec; the child's standard
 * streams are set by dup2 (which clears close-on-exec on the copy), and
 * the rest (3 and up) are closed with close_range unless close_fds is
 * OFF, except pass_fds, whose close-on-exec the child clears. The sources of the dup2s are first moved to 3 and up, so that no
 * dup2 overwrites the source of a later one.
 *
 * The child gets an empty signal mask (the loop's thread may block
 * signals) and SIGPIPE and SIGXFSZ back at their defaults, as Python's
 * subprocess does (servers often ignore SIGPIPE); handlers the parent
 * caught are reset by exec itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "process_int.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

/* The child runs on this much of a heap block (its frames are a few
 * hundred bytes; sanitizers make them larger). */
#define CHILD_STACK (64 * 1024)

extern char **environ;

/* Everything the child reads, prepared by the parent. */
typedef struct child_args {
    char *const *argv;
    char *const *envp;
    char **paths;             /* candidate programs, NULL-terminated */
    int src[3];               /* dup2 source for fd i, or -1 (inherit) */
    const char *cwd;
    int new_session, new_pgroup;
    pid_t pgroup;
    int set_groups, set_gid, set_uid;
    gid_t *groups;
    size_t ngroups;
    gid_t gid;
    uid_t uid;
    int close_fds;
    int close_max;            /* close_range's fallback: fds below this */
    int errfd;                /* write end of the error pipe */
    const int *pass;          /* pass_fds: close-on-exec cleared */
    size_t npass;
    int *keep;                /* pass_fds and errfd, sorted: not closed */
    size_t nkeep;
} child_args_t;

static size_t count_strings(const char *const *v) {
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static size_t name_len(const char *s) {
    const char *eq = strchr(s, '=');
    return eq ? (size_t)(eq - s) : strlen(s);
}

/* The child's environment: NULL when it is the parent's own. */
static int build_env(const tl_subprocess_options_t *o, char ***out) {
    *out = NULL;
    if (o->env == NULL && o->env_add == NULL)
        return 0;
    const char *const *base =
        o->env ? o->env : (const char *const *)environ;
    size_t nb = count_strings(base), na = count_strings(o->env_add);
    char **env = tl__malloc((nb + na + 1) * sizeof(*env));
    if (env == NULL)
        return TL_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < nb; i++) {
        size_t len = name_len(base[i]);
        int replaced = 0;
        for (size_t j = 0; j < na && !replaced; j++)
            replaced = name_len(o->env_add[j]) == len &&
                       memcmp(o->env_add[j], base[i], len) == 0;
        if (!replaced)
            env[n++] = (char *)base[i];
    }
    for (size_t j = 0; j < na; j++)
        env[n++] = (char *)o->env_add[j];
    env[n] = NULL;
    *out = env;
    return 0;
}

/* The programs the child tries in turn, as execvp would: argv[0] itself
 * when it has a '/', else argv[0] in each directory of the parent's
 * $PATH (posix_spawnp's rule; "/bin:/usr/bin" when unset; an empty entry
 * is the current directory). One block: the pointers, then the strings. */
static int build_paths(const char *file, char ***out) {
    if (strchr(file, '/')) {
        char **v = tl__malloc(2 * sizeof(*v));
        if (v == NULL)
            return TL_ENOMEM;
        v[0] = (char *)file;
        v[1] = NULL;
        *out = v;
        return 0;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/bin:/usr/bin";
    size_t flen = strlen(file), plen = strlen(path), n = 1;
    for (const char *s = path; *s; s++)
        n += *s == ':';
    /* each entry: dir + '/' + file + NUL; "." for an empty dir */
    size_t bytes = (n + 1) * sizeof(char *) + plen + n * (flen + 3);
    char **v = tl__malloc(bytes);
    if (v == NULL)
        return TL_ENOMEM;
    char *p = (char *)(v + n + 1);
    const char *s = path;
    for (size_t i = 0; i < n; i++) {
        const char *e = strchr(s, ':');
        size_t dl = e ? (size_t)(e - s) : strlen(s);
        v[i] = p;
        if (dl == 0)
            *p++ = '.';
        memcpy(p, s, dl);
        p += dl;
        *p++ = '/';
        memcpy(p, file, flen + 1);
        p += flen + 1;
        s = e ? e + 1 : s + dl;
    }
    v[n] = NULL;
    *out = v;
    return 0;
}

/* fd moved to 3 or above (close-on-exec); the old one is closed when
 * `own`. -1 and errno on failure. */
static int high_fd(int fd, int own) {
    if (fd >= 3)
        return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    if (own)
        close(fd);
    errno = saved;
    return nfd;
}

static void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

/* The raw signal mask: unlike pthread_sigmask, it also blocks glibc's
 * internal signals (cancellation, setxid), as posix_spawn does. */
static void raw_sigmask(const sigset_t *set, sigset_t *old) {
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, set, old, _NSIG / 8);
}

/* ---- the child (shares the parent's memory until it execs) ------------ */

#if defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define TL_CHILD_NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))
#  endif
#endif
#if !defined(TL_CHILD_NO_SANITIZE) && defined(__SANITIZE_ADDRESS__)
#  define TL_CHILD_NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))
#endif
#ifndef TL_CHILD_NO_SANITIZE
#  define TL_CHILD_NO_SANITIZE
#endif

TL_CHILD_NO_SANITIZE
static void child_fail(const child_args_t *a, int err) {
    ssize_t r;
    do
        r = write(a->errfd, &err, sizeof(err));
    while (r < 0 && errno == EINTR);
    _exit(127);
}

TL_CHILD_NO_SANITIZE
static void child_close_from(const child_args_t *a, unsigned lo, unsigned hi) {
    if (lo > hi)
        return;
    if (syscall(SYS_close_range, lo, hi, 0) == 0)
        return;
    /* Kernels before 5.9: one by one, below the limit read by the parent. */
    for (unsigned fd = lo; fd <= hi && fd < (unsigned)a->close_max; fd++)
        close((int)fd);
}

TL_CHILD_NO_SANITIZE
static int child_main(void *arg) {
    const child_args_t *a = arg;
    /* Caught handlers back to the default before signals are unblocked;
     * SIGPIPE and SIGXFSZ also when ignored. glibc's internal signals
     * fail with EINVAL and are left alone. */
    for (int sig = 1; sig < _NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) != 0)
            continue;
        if (sa.sa_handler == SIG_DFL ||
            (sa.sa_handler == SIG_IGN && sig != SIGPIPE && sig != SIGXFSZ))
            continue;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigaction(sig, &sa, NULL);
    }
    if (a->new_session && setsid() < 0)
        child_fail(a, errno);
    if (a->new_pgroup && setpgid(0, a->pgroup) != 0)
        child_fail(a, errno);
    for (int i = 0; i < 3; i++)
        if (a->src[i] >= 0 && dup2(a->src[i], i) < 0)
            child_fail(a, errno);
    if (a->cwd && chdir(a->cwd) != 0)
        child_fail(a, errno);
    /* The raw calls: they change this task only (see the file comment). */
    if (a->set_groups &&
        syscall(SYS_setgroups, a->ngroups, a->groups) != 0)
        child_fail(a, errno);
#ifdef SYS_setgid32
    if (a->set_gid && syscall(SYS_setgid32, a->gid) != 0)
        child_fail(a, errno);
    if (a->set_uid && syscall(SYS_setuid32, a->uid) != 0)
        child_fail(a, errno);
#else
    if (a->set_gid && syscall(SYS_setgid, a->gid) != 0)
        child_fail(a, errno);
    if (a->set_uid && syscall(SYS_setuid, a->uid) != 0)
        child_fail(a, errno);
#endif
    for (size_t i = 0; i < a->npass; i++)
        if (fcntl(a->pass[i], F_SETFD, 0) != 0)
            child_fail(a, errno);
    if (a->close_fds) {
        unsigned lo = 3;
        for (size_t i = 0; i < a->nkeep; i++) {
            if ((unsigned)a->keep[i] > lo)
                child_close_from(a, lo, (unsigned)a->keep[i] - 1);
            lo = (unsigned)a->keep[i] + 1;
        }
        child_close_from(a, lo, ~0U);
    }
    sigset_t none;
    sigemptyset(&none);
    raw_sigmask(&none, NULL);
    /* execvp's search: skip what is not there, remember EACCES. */
    int err = ENOENT, eacces = 0;
    for (char **p = a->paths; *p; p++) {
        execve(*p, a->argv, a->envp);
        err = errno;
        if (err == EACCES)
            eacces = 1;
        else if (err != ENOENT && err != ENOTDIR && err != ESTALE &&
                 err != ENODEV && err != ETIMEDOUT)
            break;
    }
    child_fail(a, eacces && (err == ENOENT || err == ENOTDIR) ? EACCES : err);
    return 127;
}

/* ---- the parent -------------------------------------------------------- */

static int cmp_int(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

/* Clone the child and learn how its exec went. 0 and *pid (and *pidfd
 * when asked for and the kernel gives one, else -1), or the child's
 * error (the child reaped). */
static int run_child(child_args_t *a, int want_pidfd, int64_t *pid,
                     int *pidfd) {
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) != 0)
        return tl_translate_sys_error(errno);
    int rc = 0;
    if ((ep[0] = high_fd(ep[0], 1)) < 0 || (ep[1] = high_fd(ep[1], 1)) < 0) {
        rc = tl_translate_sys_error(errno);
        close_all(ep, 2);
        return rc;
    }
    a->errfd = ep[1];
    /* What close_fds spares, in order: the error pipe and pass_fds. */
    a->keep = tl__malloc((a->npass + 1) * sizeof(int));
    if (a->keep == NULL) {
        close_all(ep, 2);
        return TL_ENOMEM;
    }
    a->nkeep = 0;
    a->keep[a->nkeep++] = ep[1];
    for (size_t i = 0; i < a->npass; i++)
        a->keep[a->nkeep++] = a->pass[i];
    qsort(a->keep, a->nkeep, sizeof(int), cmp_int);
    char *stack = tl__malloc(CHILD_STACK);
    if (stack == NULL) {
        tl__free(a->keep);
        close_all(ep, 2);
        return TL_ENOMEM;
    }
    void *top = (void *)(((uintptr_t)stack + CHILD_STACK) & ~(uintptr_t)63);
    sigset_t all, old;
    memset(&all, 0xff, sizeof(all));
    raw_sigmask(&all, &old);
    int flags = CLONE_VM | CLONE_VFORK | SIGCHLD;
    int fd = -1;
    pid_t child = clone(child_main, top, flags | (want_pidfd ? CLONE_PIDFD : 0),
                        a, &fd);
    if (child < 0 && want_pidfd && errno == EINVAL) /* before Linux 5.2 */
        child = clone(child_main, top, flags, a, NULL);
    int cerr = errno;
    raw_sigmask(&old, NULL);
    tl__free(stack);
    tl__free(a->keep);
    close(ep[1]);
    if (child < 0) {
        close(ep[0]);
        return tl_translate_sys_error(cerr);
    }
    int err = 0;
    ssize_t n;
    do
        n = read(ep[0], &err, sizeof(err));
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof(err)) {
        if (fd >= 0)
            close(fd);
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
        return tl_translate_sys_error(err);
    }
    *pid = child;
    *pidfd = fd;
    return 0;
}

int tl__spawn(const char *const *argv, const tl_subprocess_options_t *o,
              int want_pidfd, int parent_fds[3], int64_t *pid, int *pidfd) {
    int child[3] = {-1, -1, -1};  /* the dup2 sources we own */
    int parent[3] = {-1, -1, -1};
    child_args_t a;
    memset(&a, 0, sizeof(a));
    char **env = NULL;
    int rc = build_env(o, &env);
    if (rc == 0)
        rc = build_paths(argv[0], &a.paths);
    if (rc == 0 && o->set_groups == TL_OPT_ON && o->ngroups > 0) {
        if ((a.groups = tl__malloc(o->ngroups * sizeof(gid_t))) == NULL)
            rc = TL_ENOMEM;
        for (size_t i = 0; rc == 0 && i < o->ngroups; i++)
            a.groups[i] = (gid_t)o->groups[i];
    }
    for (int i = 0; i < 3 && rc == 0; i++) {
        a.src[i] = -1;
        switch (o->stdio[i]) {
        case TL_PROC_PIPE: {
            int p[2];
            if (pipe2(p, O_CLOEXEC) != 0) {
                rc = tl_translate_sys_error(errno);
                break;
            }
            /* The child reads stdin's pipe and writes the others. */
            int ce = i == 0 ? p[0] : p[1], pe = i == 0 ? p[1] : p[0];
            parent[i] = pe;
            if ((child[i] = high_fd(ce, 1)) < 0)
                rc = tl_translate_sys_error(errno);
            a.src[i] = child[i];
            break;
        }
        case TL_PROC_DEVNULL:
            child[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) |
                                             O_CLOEXEC);
            if (child[i] < 0 || (child[i] = high_fd(child[i], 1)) < 0)
                rc = tl_translate_sys_error(errno);
            a.src[i] = child[i];
            break;
        case TL_PROC_FD:
            if (o->fds[i] < 3) {
                if ((child[i] = high_fd(o->fds[i], 0)) < 0)
                    rc = tl_translate_sys_error(errno);
                a.src[i] = child[i];
            } else {
                a.src[i] = o->fds[i];
            }
            break;
        case TL_PROC_STDOUT:
            a.src[i] = 1; /* after stdout was set: the same file */
            break;
        default: /* TL_PROC_INHERIT */
            break;
        }
    }
    if (rc == 0) {
        a.argv = (char *const *)argv;
        a.envp = env ? env : environ;
        a.cwd = o->cwd;
        a.new_session = o->new_session == TL_OPT_ON;
        a.new_pgroup = o->new_process_group == TL_OPT_ON || o->process_group > 0;
        a.pgroup = (pid_t)o->process_group;
        a.set_groups = o->set_groups == TL_OPT_ON;
        a.ngroups = o->ngroups;
        a.set_gid = o->set_gid == TL_OPT_ON;
        a.gid = (gid_t)o->gid;
        a.set_uid = o->set_uid == TL_OPT_ON;
        a.uid = (uid_t)o->uid;
        a.close_fds = o->close_fds != TL_OPT_OFF;
        a.pass = o->pass_fds;
        a.npass = o->npass_fds;
        struct rlimit rl;
        a.close_max = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
                              rl.rlim_cur < (1u << 20)
                          ? (int)rl.rlim_cur
                          : 1 << 20;
        rc = run_child(&a, want_pidfd, pid, pidfd);
    }
    tl__free(env);
    tl__free(a.paths);
    tl__free(a.groups);
    close_all(child, 3);
    if (rc) {
        close_all(parent, 3);
        return rc;
    }
    memcpy(parent_fds, parent, sizeof(parent));
    return 0;
}
