/*
 * Subprocesses (process.h) with real programs: exit codes, signals,
 * capture, pipes both ways, options, spawn errors, many children, loop
 * close with a live child, out-of-memory walks. The suite process runs
 * on the pidfd watcher; process_sigchld runs the watcher-sensitive tests
 * again with TL_CHILD_WATCHER=sigchld.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "process_test.h"

static void test_exit_codes_of_true_false_and_sh(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t a = {0}, b = {0}, c = {0};
    const char *t[] = {"true", NULL}, *f[] = {"false", NULL};
    CU_ASSERT_EQUAL(ptest_exec(loop, t, NULL, &a), 0);
    CU_ASSERT_EQUAL(ptest_exec(loop, f, NULL, &b), 0);
    CU_ASSERT_EQUAL(ptest_sh(loop, "exit 7", NULL, &c), 0);
    CU_ASSERT_EQUAL(a.returncode, 0);
    CU_ASSERT_EQUAL(b.returncode, 1);
    CU_ASSERT_EQUAL(c.returncode, 7);
    /* asyncio's order: made first, lost last, after exit and the pipes */
    CU_ASSERT_EQUAL(a.seq[0], 'M');
    CU_ASSERT_EQUAL(a.nseq, 6);
    CU_ASSERT_EQUAL(a.seq[5], 'L');
    CU_ASSERT_PTR_NOT_NULL(strchr(a.seq, 'X'));
    CU_ASSERT(a.pipe_lost[0] == 1 && a.pipe_lost[1] == 1 && a.pipe_lost[2] == 1);
    CU_ASSERT_EQUAL(a.lost_err, 0);
    tl_test_loop_free(loop);
}

static void test_killed_child_returncode_is_negative_signal(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t a = {0}, b = {0};
    const char *argv[] = {"sleep", "10", NULL};
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, argv, NULL, &prec_proto, &a, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    tl_future_unref(f);
    int code;
    CU_ASSERT_EQUAL(tl_subprocess_get_returncode(a.p, &code), TL_EPENDING);
    CU_ASSERT(tl_subprocess_get_pid(a.p) > 0);
    CU_ASSERT_EQUAL(tl_subprocess_kill(a.p), 0);
    ptest_run(loop, &a.lost, 1);
    CU_ASSERT_EQUAL(a.returncode, -SIGKILL);

    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, argv, NULL, &prec_proto, &b, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    tl_future_unref(f);
    tl_subprocess_ref(b.p); /* keep it past connection_lost */
    CU_ASSERT_EQUAL(tl_subprocess_terminate(b.p), 0);
    ptest_run(loop, &b.lost, 1);
    CU_ASSERT_EQUAL(b.returncode, -SIGTERM);
    CU_ASSERT_EQUAL(tl_subprocess_get_returncode(b.p, &code), 0);
    CU_ASSERT_EQUAL(code, -SIGTERM);
    CU_ASSERT_EQUAL(tl_subprocess_send_signal(b.p, SIGTERM), TL_ESRCH);
    CU_ASSERT_EQUAL(tl_subprocess_send_signal(b.p, 1000), TL_EINVAL);
    tl_transport_t *t;
    CU_ASSERT_EQUAL(tl_subprocess_get_pipe_transport(b.p, 1, &t), TL_ENOENT);
    CU_ASSERT_EQUAL(tl_subprocess_get_pipe_transport(b.p, 3, &t), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_subprocess_close(b.p), 0);
    CU_ASSERT_EQUAL(tl_subprocess_is_closing(b.p), 1);
    CU_ASSERT_PTR_EQUAL(tl_subprocess_get_loop(b.p), loop);
    CU_ASSERT_EQUAL(tl_subprocess_unref(b.p), 0);
    tl_test_loop_free(loop);
}

static void test_stdout_and_stderr_are_captured(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {.store = 1};
    CU_ASSERT_EQUAL(ptest_sh(loop, "echo out; echo err >&2; exit 3", NULL, &r), 0);
    CU_ASSERT_STRING_EQUAL(r.out[1], "out\n");
    CU_ASSERT_STRING_EQUAL(r.out[2], "err\n");
    CU_ASSERT_EQUAL(r.returncode, 3);
    prec_free(&r);
    tl_test_loop_free(loop);
}

static void test_stderr_merged_into_stdout(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {.store = 1};
    tl_subprocess_options_t o = {.size = sizeof(o)};
    o.stdio[2] = TL_PROC_STDOUT;
    CU_ASSERT_EQUAL(ptest_sh(loop, "echo a; echo b >&2; echo c", &o, &r), 0);
    CU_ASSERT_STRING_EQUAL(r.out[1], "a\nb\nc\n");
    CU_ASSERT_EQUAL(r.len[2], 0);
    CU_ASSERT_EQUAL(r.pipe_lost[2], 0); /* no pipe for stderr */
    prec_free(&r);
    tl_test_loop_free(loop);
}

static void test_stdin_to_cat_and_back(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {.store = 1};
    const char *argv[] = {"cat", NULL};
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, argv, NULL, &prec_proto, &r, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    tl_future_unref(f);
    tl_transport_t *in;
    CU_ASSERT_EQUAL(tl_subprocess_get_pipe_transport(r.p, 0, &in), 0);
    CU_ASSERT_EQUAL(tl_transport_write(in, "hello ", 6), 0);
    CU_ASSERT_EQUAL(tl_transport_write(in, "cat", 3), 0);
    CU_ASSERT_EQUAL(tl_transport_write_eof(in), 0);
    ptest_run(loop, &r.lost, 1);
    CU_ASSERT_STRING_EQUAL(r.out[1], "hello cat");
    CU_ASSERT_EQUAL(r.returncode, 0);
    prec_free(&r);
    tl_test_loop_free(loop);
}

/* 64 MiB into cat's stdin and out of its stdout, through the pipe
 * transports, with flow control both ways (the reader never pauses). */
typedef struct big {
    prec_t r;
    size_t sent, total, checked;
    int paused, bad;
    tl_transport_t *in;
    char chunk[65536];
} big_t;

static void big_fill(big_t *b) {
    while (!b->paused && b->sent < b->total) {
        size_t n = b->total - b->sent < sizeof(b->chunk) ? b->total - b->sent
                                                           : sizeof(b->chunk);
        for (size_t i = 0; i < n; i++)
            b->chunk[i] = (char)((b->sent + i) % 251);
        CU_ASSERT_EQUAL_FATAL(tl_transport_write(b->in, b->chunk, n), 0);
        b->sent += n;
    }
    if (b->sent == b->total && !b->paused)
        tl_transport_write_eof(b->in);
}

static void big_pause(tl_subprocess_t *p, void *ctx) {
    (void)p;
    ((big_t *)ctx)->paused = 1;
}

static void big_resume(tl_subprocess_t *p, void *ctx) {
    (void)p;
    big_t *b = ctx;
    b->paused = 0;
    big_fill(b);
}

static void big_data(tl_subprocess_t *p, int fd, const void *d, size_t n,
                     void *ctx) {
    (void)p;
    big_t *b = ctx;
    const unsigned char *s = d;
    if (fd == 1)
        for (size_t i = 0; i < n; i++, b->checked++)
            if (s[i] != (unsigned char)(b->checked % 251))
                b->bad++;
}

static void big_made(tl_subprocess_t *p, void *ctx) { prec_made(p, ctx); }

static void test_64_mib_through_cat_both_ways(void) {
    tl_loop_t *loop = tl_test_loop();
    static big_t b;
    memset(&b, 0, sizeof(b));
    b.total = (size_t)64 << 20;
    tl_subprocess_protocol_t proto = prec_proto;
    proto.connection_made = big_made;
    proto.pipe_data_received = big_data;
    proto.pause_writing = big_pause;
    proto.resume_writing = big_resume;
    const char *argv[] = {"cat", NULL};
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, argv, NULL, &proto, &b, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_subprocess_get_pipe_transport(b.r.p, 0, &b.in), 0);
    big_fill(&b);
    ptest_run(loop, &b.r.lost, 1);
    CU_ASSERT_EQUAL(b.checked, b.total);
    CU_ASSERT_EQUAL(b.bad, 0);
    CU_ASSERT_EQUAL(b.r.returncode, 0);
    tl_test_loop_free(loop);
}

static void test_cwd_and_env(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t a = {.store = 1}, b = {.store = 1};
    const char *add[] = {"TL_PT_FOO=bar", "HOME=/nowhere", NULL};
    tl_subprocess_options_t o = {.size = sizeof(o), .cwd = "/tmp", .env_add = add};
    CU_ASSERT_EQUAL(ptest_sh(loop, "pwd; echo $TL_PT_FOO $HOME; echo ${PATH:+path}", &o, &a), 0);
    CU_ASSERT_STRING_EQUAL(a.out[1], "/tmp\nbar /nowhere\npath\n");
    const char *env[] = {"A=1", NULL};
    tl_subprocess_options_t o2 = {.size = sizeof(o2), .env = env, .env_add = add};
    CU_ASSERT_EQUAL(ptest_sh(loop, "echo $A $TL_PT_FOO ${HOME:-nohome} ${USER:-nouser}", &o2, &b), 0);
    CU_ASSERT_STRING_EQUAL(b.out[1], "1 bar /nowhere nouser\n");
    prec_free(&a);
    prec_free(&b);
    tl_test_loop_free(loop);
}

static void test_spawn_errors_come_from_the_call(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {0};
    tl_future_t *f = NULL;
    const char *missing[] = {"tulip-no-such-program", NULL};
    const char *missing_abs[] = {"/nonexistent/prog", NULL};
    /* A $PATH entry we may not search would make it TL_EACCES (execvp's
     * rule: test_process_spawn covers it), so search a known one. */
    const char *saved = getenv("PATH");
    char *old_path = saved ? strdup(saved) : NULL;
    setenv("PATH", "/usr/bin:/bin", 1);
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, missing, NULL, &prec_proto, &r, &f), TL_ENOENT);
    if (old_path)
        setenv("PATH", old_path, 1);
    free(old_path);
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, missing_abs, NULL, &prec_proto, &r, &f), TL_ENOENT);
    char path[] = "/tmp/tulip-noexec-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, "#!/bin/sh\n", 10), 10);
    close(fd);
    chmod(path, 0644);
    const char *noexec[] = {path, NULL};
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, noexec, NULL, &prec_proto, &r, &f), TL_EACCES);
    unlink(path);
    tl_subprocess_options_t o = {.size = sizeof(o), .cwd = "/nonexistent-dir"};
    const char *t[] = {"true", NULL};
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f), TL_ENOENT);
    CU_ASSERT_PTR_NULL(f);
    tl_loop_run_once(loop, 0);
    CU_ASSERT_EQUAL(r.made, 0); /* nothing was called */
    tl_test_loop_free(loop);
}

static void test_bad_arguments_are_rejected(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {0};
    tl_future_t *f = NULL;
    const char *t[] = {"true", NULL}, *empty[] = {NULL}, *blank[] = {"", NULL};
    CU_ASSERT_EQUAL(tl_subprocess_exec(NULL, t, NULL, &prec_proto, &r, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, NULL, NULL, &prec_proto, &r, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, empty, NULL, &prec_proto, &r, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, blank, NULL, &prec_proto, &r, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, NULL, NULL, &r, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, NULL, &prec_proto, &r, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_subprocess_shell(loop, NULL, NULL, &prec_proto, &r, &f), TL_EINVAL);
    tl_subprocess_options_t o = {.size = sizeof(o)};
    o.stdio[1] = TL_PROC_STDOUT;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f), TL_EINVAL);
    o.stdio[1] = 99;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f), TL_EINVAL);
    o.stdio[1] = TL_PROC_FD;
    o.fds[1] = -1;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &o, &prec_proto, &r, &f), TL_EBADF);
    tl_subprocess_options_t g = {.size = sizeof(g), .new_session = TL_OPT_ON,
                                 .new_process_group = TL_OPT_ON};
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &g, &prec_proto, &r, &f), TL_EINVAL);
    tl_subprocess_options_t neg = {.size = sizeof(neg), .process_group = -5};
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, t, &neg, &prec_proto, &r, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_subprocess_get_pid(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_subprocess_kill(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_subprocess_close(NULL), TL_EINVAL);
    tl_test_loop_free(loop);
}

static void test_devnull_inherit_and_given_fd(void) {
    tl_loop_t *loop = tl_test_loop();
    int p[2];
    CU_ASSERT_FATAL(pipe2(p, O_CLOEXEC) == 0);
    prec_t r = {.store = 1};
    tl_subprocess_options_t o = {.size = sizeof(o)};
    o.stdio[0] = TL_PROC_DEVNULL;
    o.stdio[1] = TL_PROC_FD;
    o.fds[1] = p[1];
    o.stdio[2] = TL_PROC_DEVNULL;
    CU_ASSERT_EQUAL(ptest_sh(loop, "cat; echo given; echo hidden >&2", &o, &r), 0);
    close(p[1]);
    char buf[64] = {0};
    CU_ASSERT_EQUAL(read(p[0], buf, sizeof(buf) - 1), 6);
    CU_ASSERT_STRING_EQUAL(buf, "given\n");
    close(p[0]);
    CU_ASSERT_EQUAL(r.nseq, 3); /* M X L: no pipes at all */
    CU_ASSERT_STRING_EQUAL(r.seq, "MXL");
    prec_free(&r);
    tl_test_loop_free(loop);
}

static void test_close_fds_by_default(void) {
    tl_loop_t *loop = tl_test_loop();
    int fd = open("/dev/null", O_RDONLY); /* inheritable on purpose */
    CU_ASSERT_FATAL(fd >= 3);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "test -e /proc/self/fd/%d", fd);
    prec_t a = {0}, b = {0};
    CU_ASSERT_EQUAL(ptest_sh(loop, cmd, NULL, &a), 0);
    CU_ASSERT_EQUAL(a.returncode, 1);
    tl_subprocess_options_t o = {.size = sizeof(o), .close_fds = TL_OPT_OFF};
    CU_ASSERT_EQUAL(ptest_sh(loop, cmd, &o, &b), 0);
    CU_ASSERT_EQUAL(b.returncode, 0);
    close(fd);
    tl_test_loop_free(loop);
}

/* Fields 5 (pgrp) and 6 (session) of /proc/pid/stat. */
static void pgrp_sid(int64_t pid, long *pgrp, long *sid) {
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
    FILE *fp = fopen(path, "r");
    CU_ASSERT_FATAL(fp != NULL);
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = 0;
    const char *s = strrchr(buf, ')');
    char st;
    long ppid;
    CU_ASSERT_EQUAL(sscanf(s + 2, "%c %ld %ld %ld", &st, &ppid, pgrp, sid), 4);
}

static void test_new_session_and_process_group(void) {
    tl_loop_t *loop = tl_test_loop();
    const char *argv[] = {"sleep", "10", NULL};
    tl_subprocess_options_t o1 = {.size = sizeof(o1), .new_session = TL_OPT_ON};
    tl_subprocess_options_t o2 = {.size = sizeof(o2), .new_process_group = TL_OPT_ON};
    const tl_subprocess_options_t *opts[] = {&o1, &o2};
    for (int i = 0; i < 2; i++) {
        prec_t r = {0};
        tl_future_t *f;
        CU_ASSERT_EQUAL(tl_subprocess_exec(loop, argv, opts[i], &prec_proto, &r, &f), 0);
        CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
        tl_future_unref(f);
        int64_t pid = tl_subprocess_get_pid(r.p);
        long pgrp, sid;
        pgrp_sid(pid, &pgrp, &sid);
        CU_ASSERT_EQUAL(pgrp, pid);
        if (i == 0) {
            CU_ASSERT_EQUAL(sid, pid);
        } else {
            CU_ASSERT_EQUAL(sid, getsid(0));
        }
        CU_ASSERT_EQUAL(tl_subprocess_close(r.p), 0); /* kills it */
        ptest_run(loop, &r.lost, 1);
        CU_ASSERT_EQUAL(r.returncode, -SIGKILL);
    }
    tl_test_loop_free(loop);
}

static void test_child_killed_mid_write(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {.kill_after = 100000};
    const char *argv[] = {"yes", NULL};
    CU_ASSERT_EQUAL(ptest_exec(loop, argv, NULL, &r), 0);
    CU_ASSERT_EQUAL(r.returncode, -SIGKILL);
    CU_ASSERT(r.len[1] >= 100000);
    CU_ASSERT_EQUAL(r.pipe_lost[1], 1);
    CU_ASSERT_EQUAL(r.seq[r.nseq - 1], 'L');
    tl_test_loop_free(loop);
}

static void test_child_closes_stdout_early(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {.store = 1};
    CU_ASSERT_EQUAL(ptest_sh(loop, "echo x; exec 1>&-; sleep 0.05; exit 4", NULL, &r), 0);
    CU_ASSERT_STRING_EQUAL(r.out[1], "x\n");
    CU_ASSERT_EQUAL(r.returncode, 4);
    /* stdout's pipe was lost before the exit, connection_lost after it */
    CU_ASSERT(strchr(r.seq, '1') < strchr(r.seq, 'X'));
    CU_ASSERT_EQUAL(r.seq[r.nseq - 1], 'L');
    prec_free(&r);
    tl_test_loop_free(loop);
}

static void test_stdin_closed_by_parent_while_child_reads(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {.store = 1};
    const char *argv[] = {"cat", NULL};
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, argv, NULL, &prec_proto, &r, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    tl_future_unref(f);
    tl_transport_t *in;
    CU_ASSERT_EQUAL(tl_subprocess_get_pipe_transport(r.p, 0, &in), 0);
    CU_ASSERT_EQUAL(tl_transport_write(in, "abc", 3), 0);
    CU_ASSERT_EQUAL(tl_transport_close(in), 0);
    ptest_run(loop, &r.lost, 1);
    CU_ASSERT_STRING_EQUAL(r.out[1], "abc");
    CU_ASSERT_EQUAL(r.returncode, 0);
    CU_ASSERT_EQUAL(r.pipe_err[0], 0);
    prec_free(&r);
    tl_test_loop_free(loop);
}

/* The subprocess the exec future hands over is borrowed: a child that
 * exits at once (true) can have its pipes lost, be reaped and get its
 * connection_lost (which frees it) in the very iteration that completes
 * the future (typically on the SIGCHLD watcher, or under valgrind where
 * the spawn is slow). A reference wanted beyond connection_lost is taken
 * in connection_made, before any of that can run. */
static void held_made(tl_subprocess_t *p, void *ctx) {
    prec_made(p, ctx);
    CU_ASSERT_EQUAL(tl_subprocess_ref(p), 0);
}

static void test_writing_to_a_child_that_exited_is_epipe(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {0};
    tl_subprocess_protocol_t proto = prec_proto;
    proto.connection_made = held_made;
    const char *argv[] = {"true", NULL};
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, argv, NULL, &proto, &r, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(r.made, 1);
    tl_subprocess_t *p = r.p; /* ours: held_made's reference */
    ptest_run(loop, &r.exited, 1);
    tl_transport_t *in;
    if (tl_subprocess_get_pipe_transport(p, 0, &in) == 0) {
        static char buf[1 << 20];
        tl_transport_write(in, buf, sizeof(buf));
    }
    ptest_run(loop, &r.lost, 1);
    CU_ASSERT(r.pipe_err[0] == TL_EPIPE || r.pipe_err[0] == 0);
    CU_ASSERT_EQUAL(tl_subprocess_unref(p), 0);
    tl_test_loop_free(loop);
}

#define NCHILD 100
static void test_hundred_concurrent_children(void) {
    tl_loop_t *loop = tl_test_loop();
    static prec_t r[NCHILD];
    memset(r, 0, sizeof(r));
    tl_subprocess_options_t o = {.size = sizeof(o)};
    o.stdio[0] = TL_PROC_DEVNULL;
    o.stdio[2] = TL_PROC_DEVNULL;
    for (int i = 0; i < NCHILD; i++) {
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "echo %d; exit %d", i, i);
        const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
        r[i].store = 1;
        tl_future_t *f;
        CU_ASSERT_EQUAL_FATAL(tl_subprocess_exec(loop, argv, &o, &prec_proto, &r[i], &f), 0);
        tl_future_unref(f);
    }
    int64_t end = ptest_now() + 30 * 1000000000LL;
    int done = 0;
    while (done < NCHILD && ptest_now() < end) {
        tl_loop_run_once(loop, 10 * 1000000);
        done = 0;
        for (int i = 0; i < NCHILD; i++)
            done += r[i].lost;
    }
    CU_ASSERT_EQUAL(done, NCHILD);
    for (int i = 0; i < NCHILD; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d\n", i);
        CU_ASSERT_EQUAL(r[i].returncode, i);
        CU_ASSERT(r[i].out[1] && strcmp(r[i].out[1], want) == 0);
        prec_free(&r[i]);
    }
    tl_test_loop_free(loop);
}

static void test_two_loops_each_see_their_children(void) {
    tl_loop_t *a = tl_test_loop(), *b = tl_test_loop();
    prec_t ra = {0}, rb = {0};
    tl_future_t *fa, *fb;
    CU_ASSERT_EQUAL(tl_subprocess_shell(a, "exit 5", NULL, &prec_proto, &ra, &fa), 0);
    CU_ASSERT_EQUAL(tl_subprocess_shell(b, "exit 6", NULL, &prec_proto, &rb, &fb), 0);
    tl_future_unref(fa);
    tl_future_unref(fb);
    int64_t end = ptest_now() + 10 * 1000000000LL;
    while ((!ra.lost || !rb.lost) && ptest_now() < end) {
        tl_loop_run_once(a, 1000000);
        tl_loop_run_once(b, 1000000);
    }
    CU_ASSERT_EQUAL(ra.returncode, 5);
    CU_ASSERT_EQUAL(rb.returncode, 6);
    tl_test_loop_free(a);
    tl_test_loop_free(b);
}

static void test_loop_close_with_live_child_reaps_it(void) {
    tl_loop_t *loop = tl_test_loop();
    prec_t r = {0}, q = {0};
    const char *argv[] = {"sleep", "10", NULL};
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, argv, NULL, &prec_proto, &r, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    tl_future_unref(f);
    int64_t pid = tl_subprocess_get_pid(r.p);
    /* a second one whose connection_made never got to run */
    CU_ASSERT_EQUAL(tl_subprocess_exec(loop, argv, NULL, &prec_proto, &q, &f), 0);
    tl_future_unref(f);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(r.lost, 1);
    CU_ASSERT_EQUAL(r.lost_err, TL_ECLOSED);
    CU_ASSERT_EQUAL(r.exited, 0);
    CU_ASSERT_EQUAL(q.made, 1);
    CU_ASSERT_EQUAL(q.lost, 1);
    CU_ASSERT_EQUAL(r.seq[r.nseq - 1], 'L');
    CU_ASSERT(ptest_pid_gone(pid)); /* killed and reaped: no zombie */
    CU_ASSERT(q.pid > 0);
    CU_ASSERT(ptest_pid_gone(q.pid));
}

static void test_out_of_memory_while_spawning(void) {
    int completed = 0;
    for (long n = 1; n < 200 && !completed; n++) {
        tl_loop_t *loop = tl_test_loop();
        prec_t r = {.store = 1};
        tl_future_t *f = NULL;
        long before = tl_test_alloc_count();
        tl_test_fail_alloc_at(n);
        int rc = tl_subprocess_shell(loop, "echo hi", NULL, &prec_proto, &r, &f);
        if (rc == 0) {
            tl_future_unref(f);
            int64_t end = ptest_now() + 5 * 1000000000LL;
            while (!r.lost && ptest_now() < end)
                tl_loop_run_once(loop, 1000000);
        } else {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            for (int i = 0; i < 3; i++)
                tl_loop_run_once(loop, 0);
            CU_ASSERT_EQUAL(r.made, 0);
        }
        tl_test_fail_alloc_at(0);
        completed = tl_test_alloc_count() - before < n;
        if (completed) {
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT_STRING_EQUAL(r.out[1], "hi\n");
        }
        prec_free(&r);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(completed);
}

/* The same tests on the SIGCHLD watcher. */
#define SIGCHLD_VARIANT(name)                                                 \
    static void name##_sigchld(void) {                                        \
        setenv("TL_CHILD_WATCHER", "sigchld", 1);                             \
        name();                                                               \
        unsetenv("TL_CHILD_WATCHER");                                         \
    }
SIGCHLD_VARIANT(test_exit_codes_of_true_false_and_sh)
SIGCHLD_VARIANT(test_killed_child_returncode_is_negative_signal)
SIGCHLD_VARIANT(test_stdin_to_cat_and_back)
SIGCHLD_VARIANT(test_child_killed_mid_write)
SIGCHLD_VARIANT(test_child_closes_stdout_early)
SIGCHLD_VARIANT(test_writing_to_a_child_that_exited_is_epipe)
SIGCHLD_VARIANT(test_hundred_concurrent_children)
SIGCHLD_VARIANT(test_two_loops_each_see_their_children)
SIGCHLD_VARIANT(test_loop_close_with_live_child_reaps_it)
SIGCHLD_VARIANT(test_out_of_memory_while_spawning)

TL_TEST_SUITE(process,
              TL_TEST(test_exit_codes_of_true_false_and_sh),
              TL_TEST(test_killed_child_returncode_is_negative_signal),
              TL_TEST(test_stdout_and_stderr_are_captured),
              TL_TEST(test_stderr_merged_into_stdout),
              TL_TEST(test_stdin_to_cat_and_back),
              TL_TEST(test_64_mib_through_cat_both_ways),
              TL_TEST(test_cwd_and_env),
              TL_TEST(test_spawn_errors_come_from_the_call),
              TL_TEST(test_bad_arguments_are_rejected),
              TL_TEST(test_devnull_inherit_and_given_fd),
              TL_TEST(test_close_fds_by_default),
              TL_TEST(test_new_session_and_process_group),
              TL_TEST(test_child_killed_mid_write),
              TL_TEST(test_child_closes_stdout_early),
              TL_TEST(test_stdin_closed_by_parent_while_child_reads),
              TL_TEST(test_writing_to_a_child_that_exited_is_epipe),
              TL_TEST(test_hundred_concurrent_children),
              TL_TEST(test_two_loops_each_see_their_children),
              TL_TEST(test_loop_close_with_live_child_reaps_it),
              TL_TEST(test_out_of_memory_while_spawning));

TL_TEST_SUITE(process_sigchld,
              TL_TEST(test_exit_codes_of_true_false_and_sh_sigchld),
              TL_TEST(test_killed_child_returncode_is_negative_signal_sigchld),
              TL_TEST(test_stdin_to_cat_and_back_sigchld),
              TL_TEST(test_child_killed_mid_write_sigchld),
              TL_TEST(test_child_closes_stdout_early_sigchld),
              TL_TEST(test_writing_to_a_child_that_exited_is_epipe_sigchld),
              TL_TEST(test_hundred_concurrent_children_sigchld),
              TL_TEST(test_two_loops_each_see_their_children_sigchld),
              TL_TEST(test_loop_close_with_live_child_reaps_it_sigchld),
              TL_TEST(test_out_of_memory_while_spawning_sigchld));
