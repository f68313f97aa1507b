/*
 * The spawn itself (src/process/spawn.c): credentials (uid, gid, groups)
 * where permitted, the child's signal state, the $PATH search and its
 * errors, spawning while other threads allocate, and the pidfd taken
 * from the clone. Runs as root (CI) and as a user: each test checks what
 * holds for the credentials it runs with.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "process_test.h"

static int is_root(void) { return geteuid() == 0; }

/* $PATH set to `path` (NULL: unset); returns the old value to restore. */
static char *set_path(const char *path) {
    const char *saved = getenv("PATH");
    char *old = saved ? strdup(saved) : NULL;
    if (path)
        setenv("PATH", path, 1);
    else
        unsetenv("PATH");
    return old;
}

static void restore_path(char *old) {
    if (old)
        setenv("PATH", old, 1);
    else
        unsetenv("PATH");
    free(old);
}

static void test_uid_and_gid_where_permitted(void) {
    tl_loop_t *loop = tl_test_loop();
    uid_t uid0 = geteuid();
    gid_t gid0 = getegid();
    int ngroups0 = getgroups(0, NULL);
    prec_t a = {.store = 1};
    const char *id[] = {"id", "-u", NULL};
    /* not root: becoming root is never permitted (65534 could be us) */
    tl_subprocess_options_t o = {.size = sizeof(o), .set_uid = TL_OPT_ON,
                                 .uid = is_root() ? 65534 : 0};
    int rc = ptest_exec(loop, id, &o, &a);
    if (is_root()) {
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(a.out[1], "65534\n");
        CU_ASSERT_EQUAL(a.returncode, 0);
    } else {
        CU_ASSERT_EQUAL(rc, TL_EPERM);
        CU_ASSERT_EQUAL(a.made, 0);
    }
    /* gid and an empty group list: "id -G" is the gid alone */
    prec_t b = {.store = 1};
    const char *idg[] = {"id", "-G", NULL};
    tl_subprocess_options_t g = {.size = sizeof(g), .set_gid = TL_OPT_ON,
                                 .gid = is_root() ? 65534 : 0,
                                 .set_groups = TL_OPT_ON,
                                 .set_uid = TL_OPT_ON, .uid = 65534};
    rc = ptest_exec(loop, idg, &g, &b);
    if (is_root()) {
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(b.out[1], "65534\n");
    } else {
        CU_ASSERT_EQUAL(rc, TL_EPERM);
    }
    /* the parent's credentials are untouched (raw calls in the child) */
    CU_ASSERT_EQUAL(geteuid(), uid0);
    CU_ASSERT_EQUAL(getegid(), gid0);
    CU_ASSERT_EQUAL(getgroups(0, NULL), ngroups0);
    prec_free(&a);
    prec_free(&b);
    tl_test_loop_free(loop);
}

static void test_supplementary_groups_are_set(void) {
    if (!is_root())
        return; /* setgroups needs CAP_SETGID */
    tl_loop_t *loop = tl_test_loop();
    prec_t a = {.store = 1};
    const int64_t groups[] = {65534, 4242};
    const char *idg[] = {"id", "-G", NULL};
    tl_subprocess_options_t g = {.size = sizeof(g), .set_gid = TL_OPT_ON,
                                 .gid = 65534, .set_groups = TL_OPT_ON,
                                 .groups = groups, .ngroups = 2,
                                 .set_uid = TL_OPT_ON, .uid = 65534};
    CU_ASSERT_EQUAL(ptest_exec(loop, idg, &g, &a), 0);
    CU_ASSERT_STRING_EQUAL(a.out[1], "65534 4242\n");
    prec_free(&a);
    tl_test_loop_free(loop);
}

static void test_own_uid_is_always_permitted(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t a = {.store = 1};
    const char *id[] = {"id", "-u", NULL};
    tl_subprocess_options_t o = {.size = sizeof(o), .set_uid = TL_OPT_ON,
                                 .uid = getuid(), .set_gid = TL_OPT_ON,
                                 .gid = getgid()};
    CU_ASSERT_EQUAL(ptest_exec(loop, id, &o, &a), 0);
    char want[32];
    snprintf(want, sizeof(want), "%u\n", (unsigned)getuid());
    CU_ASSERT_STRING_EQUAL(a.out[1], want);
    prec_free(&a);
    tl_test_loop_free(loop);
}

static void test_bad_credentials_are_rejected(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {0};
    tl_future_t *f = NULL;
    const char *t[] = {"true", NULL};
    tl_subprocess_options_t o = {.size = sizeof(o), .set_uid = TL_OPT_ON, .uid = -1};
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f), TL_EINVAL);
    o.uid = (int64_t)UINT32_MAX; /* (uid_t)-1: "unchanged" to the kernel */
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f), TL_EINVAL);
    tl_subprocess_options_t g = {.size = sizeof(g), .set_gid = TL_OPT_ON,
                                 .gid = (int64_t)1 << 40};
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &g, &prec_proto, &r, &f), TL_EINVAL);
    tl_subprocess_options_t s = {.size = sizeof(s), .set_groups = TL_OPT_ON,
                                 .ngroups = 2};
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &s, &prec_proto, &r, &f), TL_EINVAL);
    const int64_t bad[] = {1, -3};
    s.groups = bad;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &s, &prec_proto, &r, &f), TL_EINVAL);
    s.ngroups = 65537;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &s, &prec_proto, &r, &f), TL_EINVAL);
    /* unset flags: the ids are ignored, whatever they hold */
    tl_subprocess_options_t off = {.size = sizeof(off), .uid = -5, .gid = -5};
    prec_t ok = {0};
    CU_ASSERT_EQUAL(ptest_exec(loop, t, &off, &ok), 0);
    CU_ASSERT_EQUAL(ok.returncode, 0);
    CU_ASSERT_PTR_NULL(f);
    tl_loop_run_once(loop, 0);
    CU_ASSERT_EQUAL(r.made, 0);
    tl_test_loop_free(loop);
}

static void test_credentials_out_of_memory_walk(void) {
    int completed = 0;
    const int64_t groups[] = {0};
    for (long n = 1; n < 100 && !completed; n++) {
        tl_loop_t *loop = tl_test_loop();
        prec_t r = {0};
        tl_future_t *f = NULL;
        const char *t[] = {"true", NULL};
        tl_subprocess_options_t o = {.size = sizeof(o), .set_groups = TL_OPT_ON,
                                     .groups = groups, .ngroups = 1,
                                     .set_uid = TL_OPT_ON, .uid = getuid()};
        long before = tl_test_alloc_count();
        tl_test_fail_alloc_at(n);
        int rc = tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f);
        tl_test_fail_alloc_at(0);
        completed = tl_test_alloc_count() - before < n;
        if (rc == 0) {
            tl_future_unref(f);
            ptest_run(loop, &r.lost, 1);
        } else {
            CU_ASSERT(rc == TL_ENOMEM || (!is_root() && rc == TL_EPERM));
            if (rc == TL_EPERM)
                completed = 1;
        }
        tl_test_loop_free(loop);
    }
    CU_ASSERT(completed);
}

/* The mask bits of "SigBlk:" / "SigIgn:" in /proc/self/status output. */
static unsigned long long status_mask(const char *text, const char *key) {
    const char *s = text ? strstr(text, key) : NULL;
    return s ? strtoull(s + strlen(key), NULL, 16) : ~0ULL;
}

static void test_child_signal_state_is_reset(void) {
    tl_loop_t *loop = tl_test_loop();
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe, old_usr2;
    sigaction(SIGPIPE, &ign, &old_pipe);
    sigaction(SIGUSR2, &ign, &old_usr2);
    sigset_t usr1, old_mask;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, &old_mask);
    prec_t a = {.store = 1};
    const char *argv[] = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL};
    CU_ASSERT_EQUAL(ptest_exec(loop, argv, NULL, &a), 0);
    unsigned long long blk = status_mask(a.out[1], "SigBlk:");
    unsigned long long ig = status_mask(a.out[1], "SigIgn:");
    CU_ASSERT_EQUAL(blk, 0);                                /* empty mask */
    CU_ASSERT_EQUAL(ig & (1ULL << (SIGPIPE - 1)), 0);       /* default */
    CU_ASSERT_NOT_EQUAL(ig & (1ULL << (SIGUSR2 - 1)), 0);  /* stays ignored */
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    sigaction(SIGUSR2, &old_usr2, NULL);
    prec_free(&a);
    tl_test_loop_free(loop);
}

static void test_path_search_reports_eacces_and_skips_it(void) {
    tl_loop_t *loop = tl_test_loop();
    char d1[] = "/tmp/tulip-path1-XXXXXX", d2[] = "/tmp/tulip-path2-XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(d1) != NULL && mkdtemp(d2) != NULL);
    char p1[96], p2[96];
    snprintf(p1, sizeof(p1), "%s/tl-prog", d1);
    snprintf(p2, sizeof(p2), "%s/tl-prog", d2);
    FILE *fp = fopen(p1, "w"); /* not executable */
    CU_ASSERT_FATAL(fp != NULL);
    fputs("#!/bin/sh\necho one\n", fp);
    fclose(fp);
    chmod(p1, 0644);
    char *old = set_path(NULL);
    char path[256];
    snprintf(path, sizeof(path), "/nonexistent-dir:%s", d1);
    setenv("PATH", path, 1);
    const char *prog[] = {"tl-prog", NULL};
    prec_t r = {.store = 1};
    tl_future_t *f = NULL;
    /* root may "execute" a 0644 file only if some x bit is set: EACCES */
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, prog, NULL, &prec_proto, &r, &f), TL_EACCES);
    /* an executable one later in $PATH is found past the EACCES */
    fp = fopen(p2, "w");
    CU_ASSERT_FATAL(fp != NULL);
    fputs("#!/bin/sh\necho two\n", fp);
    fclose(fp);
    chmod(p2, 0755);
    snprintf(path, sizeof(path), "%s::%s", d1, d2);
    setenv("PATH", path, 1);
    CU_ASSERT_EQUAL(ptest_exec(loop, prog, NULL, &r), 0);
    CU_ASSERT_STRING_EQUAL(r.out[1], "two\n");
    restore_path(old);
    unlink(p1);
    unlink(p2);
    rmdir(d1);
    rmdir(d2);
    prec_free(&r);
    tl_test_loop_free(loop);
}

static void test_missing_program_is_enoent_every_way(void) {
    tl_loop_t *loop = tl_test_loop();
    /* a $PATH entry we may not search would make it EACCES (execvp's rule) */
    char *old = set_path("/usr/bin:/bin");
    prec_t r = {0};
    tl_future_t *f = NULL;
    const char *missing[] = {"tulip-no-such-program", NULL};
    const char *rel[] = {"./tulip-no-such-program", NULL};
    const char *notdir[] = {"/etc/passwd/x", NULL};
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, missing, NULL, &prec_proto, &r, &f), TL_ENOENT);
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, rel, NULL, &prec_proto, &r, &f), TL_ENOENT);
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, notdir, NULL, &prec_proto, &r, &f), TL_ENOTDIR);
    unsetenv("PATH"); /* "/bin:/usr/bin" */
    const char *t[] = {"true", NULL};
    prec_t ok = {0};
    CU_ASSERT_EQUAL(ptest_exec(loop, t, NULL, &ok), 0);
    setenv("PATH", "", 1); /* only the current directory */
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, NULL, &prec_proto, &r, &f), TL_ENOENT);
    restore_path(old);
    tl_loop_run_once(loop, 0);
    CU_ASSERT_EQUAL(r.made, 0);
    tl_test_loop_free(loop);
}

static volatile int churn_stop;

static void *churn(void *arg) {
    (void)arg;
    while (!churn_stop) {
        void *p = malloc(1000);
        free(p);
        char *e = getenv("HOME");
        (void)e;
    }
    return NULL;
}

static void test_spawning_while_other_threads_allocate(void) {
    tl_loop_t *loop = tl_test_loop();
    pthread_t th[2];
    churn_stop = 0;
    for (int i = 0; i < 2; i++)
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, churn, NULL) == 0);
    enum { N = 40 };
    prec_t r[N];
    memset(r, 0, sizeof(r));
    int lost = 0;
    for (int i = 0; i < N; i++) {
        r[i].store = 1;
        tl_future_t *f;
        const char *argv[] = {"echo", "x", NULL};
        CU_ASSERT_EQUAL_FATAL(tl_subprocess_exec(loop, argv, NULL, &prec_proto, &r[i], &f), 0);
        tl_future_unref(f);
    }
    /* The clones happened beside the allocating threads; stop them before
     * waiting for the children (under valgrind two spinning threads would
     * starve the loop thread of valgrind's one lock for many seconds). */
    churn_stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    int64_t end = ptest_now() + 30 * 1000000000LL;
    while (lost < N && ptest_now() < end) {
        tl_loop_run_once(loop, 10 * 1000000);
        lost = 0;
        for (int i = 0; i < N; i++)
            lost += r[i].lost;
    }
    CU_ASSERT_EQUAL(lost, N);
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(r[i].returncode, 0);
        CU_ASSERT_STRING_EQUAL(r[i].out[1] ? r[i].out[1] : "", "x\n");
        prec_free(&r[i]);
    }
    tl_test_loop_free(loop);
}

/* A loop of its own on another thread, spawning and reaping 20 children
 * while the main thread does the same. */
typedef struct loop_thread {
    int ok;
} loop_thread_t;

static void *spawn_on_own_loop(void *arg) {
    loop_thread_t *lt = arg;
    tl_loop_t *loop;
    if (tl_loop_new(NULL, &loop) != 0)
        return NULL;
    enum { N = 20 };
    prec_t r[N];
    memset(r, 0, sizeof(r));
    int lost = 0, spawned = 0;
    for (int i = 0; i < N; i++) {
        tl_future_t *f;
        const char *argv[] = {"true", NULL};
        if (tl_subprocess_exec(loop, argv, NULL, &prec_proto, &r[i], &f) == 0) {
            tl_future_unref(f);
            spawned++;
        }
    }
    int64_t end = ptest_now() + 30 * 1000000000LL;
    while (lost < spawned && ptest_now() < end) {
        tl_loop_run_once(loop, 10 * 1000000);
        lost = 0;
        for (int i = 0; i < N; i++)
            lost += r[i].lost;
    }
    lt->ok = spawned == N && lost == N;
    for (int i = 0; i < N; i++)
        lt->ok = lt->ok && r[i].returncode == 0;
    tl_loop_close(loop);
    tl_loop_unref(loop);
    return NULL;
}

static void test_loops_on_two_threads_spawn_at_once(void) {
    loop_thread_t a = {0}, b = {0};
    pthread_t ta, tb;
    CU_ASSERT_FATAL(pthread_create(&ta, NULL, spawn_on_own_loop, &a) == 0);
    CU_ASSERT_FATAL(pthread_create(&tb, NULL, spawn_on_own_loop, &b) == 0);
    loop_thread_t c = {0};
    spawn_on_own_loop(&c);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CU_ASSERT(a.ok && b.ok && c.ok);
}

static int next_fd(void) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    close(fd);
    return fd;
}

static void test_spawn_leaks_no_descriptor(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t w = {0};
    const char *t[] = {"true", NULL};
    CU_ASSERT_EQUAL(ptest_exec(loop, t, NULL, &w), 0); /* the loop's set-up */
    int before = next_fd();
    const char *missing[] = {"/nonexistent/tulip-no-such-program", NULL};
    prec_t r = {0};
    tl_future_t *f = NULL;
    tl_subprocess_options_t o = {.size = sizeof(o)};
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(tl_subprocess_exec(loop, missing, &o, &prec_proto, &r, &f), TL_ENOENT);
    o.stdio[0] = o.stdio[1] = o.stdio[2] = TL_PROC_DEVNULL;
    o.cwd = "/nonexistent-dir";
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f), TL_ENOENT);
    o.cwd = NULL;
    prec_t a = {0};
    CU_ASSERT_EQUAL(ptest_exec(loop, t, &o, &a), 0);
    CU_ASSERT_EQUAL(next_fd(), before);
    tl_test_loop_free(loop);
}

static void test_pass_fds_survive_close_fds(void) {
    tl_loop_t *loop = tl_test_loop();
    int a[2], b[2];
    CU_ASSERT_FATAL(pipe2(a, O_CLOEXEC) == 0 && pipe2(b, O_CLOEXEC) == 0);
    int pass[] = {b[1], a[1]}; /* any order */
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "echo one >&%d; echo two >&%d", a[1], b[1]);
    tl_subprocess_options_t o = {.size = sizeof(o), .pass_fds = pass,
                                 .npass_fds = 2};
    prec_t r = {0};
    CU_ASSERT_EQUAL(ptest_sh(loop, cmd, &o, &r), 0);
    CU_ASSERT_EQUAL(r.returncode, 0);
    close(a[1]);
    close(b[1]);
    char buf[16] = {0};
    CU_ASSERT_EQUAL(read(a[0], buf, sizeof(buf) - 1), 4);
    CU_ASSERT_STRING_EQUAL(buf, "one\n");
    memset(buf, 0, sizeof(buf));
    CU_ASSERT_EQUAL(read(b[0], buf, sizeof(buf) - 1), 4);
    CU_ASSERT_STRING_EQUAL(buf, "two\n");
    /* the parent's copies stay close-on-exec */
    CU_ASSERT(fcntl(a[0], F_GETFD) & FD_CLOEXEC);
    close(a[0]);
    close(b[0]);
    /* without pass_fds the same descriptor is gone in the child */
    int c[2];
    CU_ASSERT_FATAL(pipe2(c, 0) == 0); /* inheritable on purpose */
    snprintf(cmd, sizeof(cmd), "echo x >&%d", c[1]);
    prec_t q = {0};
    CU_ASSERT_EQUAL(ptest_sh(loop, cmd, NULL, &q), 0);
    CU_ASSERT_NOT_EQUAL(q.returncode, 0);
    close(c[0]);
    close(c[1]);
    tl_test_loop_free(loop);
}

static void test_bad_pass_fds_are_rejected(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {0};
    tl_future_t *f = NULL;
    const char *t[] = {"true", NULL};
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int one[] = {1}, neg[] = {-1}, closed[] = {fd};
    close(fd);
    tl_subprocess_options_t o = {.size = sizeof(o), .pass_fds = one, .npass_fds = 1};
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f), TL_EINVAL);
    o.pass_fds = neg;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f), TL_EBADF);
    o.pass_fds = closed;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f), TL_EBADF);
    o.pass_fds = NULL;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f), TL_EINVAL);
    CU_ASSERT_PTR_NULL(f);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(process_spawn,
              TL_TEST(test_pass_fds_survive_close_fds),
              TL_TEST(test_bad_pass_fds_are_rejected),
              TL_TEST(test_uid_and_gid_where_permitted),
              TL_TEST(test_supplementary_groups_are_set),
              TL_TEST(test_own_uid_is_always_permitted),
              TL_TEST(test_bad_credentials_are_rejected),
              TL_TEST(test_credentials_out_of_memory_walk),
              TL_TEST(test_child_signal_state_is_reset),
              TL_TEST(test_path_search_reports_eacces_and_skips_it),
              TL_TEST(test_missing_program_is_enoent_every_way),
              TL_TEST(test_spawning_while_other_threads_allocate),
              TL_TEST(test_loops_on_two_threads_spawn_at_once),
              TL_TEST(test_spawn_leaks_no_descriptor))
