/*
 * Spawning a child: posix_spawn, which glibc implements with
 * clone(CLONE_VM|CLONE_VFORK), so it is fast and safe beside other
 * threads (no fork of the parent's memory, nothing runs in the child but
 * the file actions and exec), and which returns the errno of a failed exec
 * (or chdir, or open) to the caller: TL_ENOENT/TL_EACCES come from the
 * spawn call, never as an exit status 127.
 *
 * Every descriptor made here is close-on-exec; the child's standard
 * streams are set by dup2 file actions (dup2 clears close-on-exec on the
 * copy), and the rest (3 and up) are closed with closefrom unless
 * close_fds is OFF. The sources of the dup2s are first moved to 3 and up,
 * so that no action overwrites the source of a later one (stdout and
 * stderr given as each other's descriptors, say).
 *
 * The child gets an empty signal mask (the loop's thread may block
 * signals) and SIGPIPE and SIGXFSZ back at their defaults, as Python's
 * subprocess does (servers often ignore SIGPIPE); handlers the
 * parent caught are reset by exec itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "process_int.h"

extern char **environ;

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

int tl__spawn(const char *const *argv, const tl_subprocess_options_t *o,
              int parent_fds[3], int64_t *pid) {
    int child[3] = {-1, -1, -1};  /* the dup2 sources we own */
    int parent[3] = {-1, -1, -1};
    char **env = NULL;
    int rc = build_env(o, &env);
    if (rc)
        return rc;
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (o->stdio[i] == TL_PROC_PIPE) {
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
        } else if (o->stdio[i] == TL_PROC_FD && o->fds[i] < 3) {
            if ((child[i] = high_fd(o->fds[i], 0)) < 0)
                rc = tl_translate_sys_error(errno);
        }
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int have_fa = 0, have_attr = 0;
    if (rc == 0) {
        int e = posix_spawn_file_actions_init(&fa);
        have_fa = e == 0;
        if (e == 0)
            have_attr = (e = posix_spawnattr_init(&attr)) == 0;
        for (int i = 0; i < 3 && e == 0; i++) {
            switch (o->stdio[i]) {
            case TL_PROC_PIPE:
                e = posix_spawn_file_actions_adddup2(&fa, child[i], i);
                break;
            case TL_PROC_DEVNULL:
                e = posix_spawn_file_actions_addopen(
                    &fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
                break;
            case TL_PROC_FD:
                e = posix_spawn_file_actions_adddup2(
                    &fa, child[i] >= 0 ? child[i] : o->fds[i], i);
                break;
            case TL_PROC_STDOUT:
                e = posix_spawn_file_actions_adddup2(&fa, 1, 2);
                break;
            default: /* TL_PROC_INHERIT */
                break;
            }
        }
        if (e == 0 && o->cwd)
            e = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
        if (e == 0 && o->close_fds != TL_OPT_OFF)
            e = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
        if (o->new_session == TL_OPT_ON)
            flags |= POSIX_SPAWN_SETSID;
        if (o->new_process_group == TL_OPT_ON || o->process_group > 0)
            flags |= POSIX_SPAWN_SETPGROUP;
        sigset_t none, def;
        sigemptyset(&none);
        sigemptyset(&def);
        sigaddset(&def, SIGPIPE);
        sigaddset(&def, SIGXFSZ);
        if (e == 0)
            e = posix_spawnattr_setflags(&attr, flags);
        if (e == 0)
            e = posix_spawnattr_setsigmask(&attr, &none);
        if (e == 0)
            e = posix_spawnattr_setsigdefault(&attr, &def);
        if (e == 0 && o->process_group > 0)
            e = posix_spawnattr_setpgroup(&attr, (pid_t)o->process_group);
        pid_t child_pid = 0;
        char *const *envp = env ? env : environ;
        if (e == 0) {
            if (strchr(argv[0], '/'))
                e = posix_spawn(&child_pid, argv[0], &fa, &attr,
                                (char *const *)argv, envp);
            else
                e = posix_spawnp(&child_pid, argv[0], &fa, &attr,
                                 (char *const *)argv, envp);
        }
        if (e)
            rc = tl_translate_sys_error(e);
        else
            *pid = child_pid;
    }
    if (have_fa)
        posix_spawn_file_actions_destroy(&fa);
    if (have_attr)
        posix_spawnattr_destroy(&attr);
    tl__free(env);
    close_all(child, 3);
    if (rc) {
        close_all(parent, 3);
        return rc;
    }
    memcpy(parent_fds, parent, sizeof(parent));
    return 0;
}
