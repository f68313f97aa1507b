/*
 * Subprocesses: a shell-style pipeline and a conversation with a child,
 * from one task (asyncio's create_subprocess_exec, in C).
 *
 * The pipeline is `printf ... | sort | uniq -c`: three children chained
 * through two pipes the demo makes and hands over as TL_PROC_FD (the
 * children inherit them as stdin/stdout; the parent closes its copies so
 * each reader sees EOF when its writer exits); only uniq's stdout comes
 * back to tulip, as a stream, read to its end with tl_process_communicate.
 *
 * The conversation: a shell loop that answers each line it reads with the
 * line's length; the task writes a line, reads the answer with
 * tl_stream_readline, several times, then closes stdin and waits for the
 * exit code. Last, a child killed mid-run reports -SIGKILL as asyncio's
 * returncode does.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "demo.h"

#define GUARD_MS 5000

static const char *const words[] = {"pear", "apple", "pear", "fig",
                                    "apple", "pear", "kiwi", "pear"};
enum { NWORDS = sizeof(words) / sizeof(words[0]) };

/* Pipeline: the output of uniq -c, parsed back into counts. */
static int pipeline(void) {
    int a[2], b[2];
    TASK_CHECK(pipe2(a, O_CLOEXEC) == 0, "pipe2 failed");
    if (pipe2(b, O_CLOEXEC) != 0) {
        close(a[0]);
        close(a[1]);
        TASK_CHECK(0, "pipe2 failed");
    }
    const char *producer[NWORDS + 3] = {"printf", "%s\\n"};
    for (int i = 0; i < NWORDS; i++)
        producer[i + 2] = words[i];
    producer[NWORDS + 2] = NULL;
    const char *sort_argv[] = {"sort", NULL};
    const char *uniq_argv[] = {"uniq", "-c", NULL};

    /* printf > a[1];  sort < a[0] > b[1];  uniq -c < b[0] > (a stream) */
    tl_subprocess_options_t po = {.size = sizeof po};
    po.stdio[0] = TL_PROC_DEVNULL;
    po.stdio[1] = TL_PROC_FD;
    po.fds[1] = a[1];
    po.stdio[2] = TL_PROC_INHERIT;
    tl_subprocess_options_t so = po;
    so.stdio[0] = TL_PROC_FD;
    so.fds[0] = a[0];
    so.fds[1] = b[1];
    tl_subprocess_options_t uo = {.size = sizeof uo};
    uo.stdio[0] = TL_PROC_FD;
    uo.fds[0] = b[0];
    uo.stdio[2] = TL_PROC_INHERIT;
    tl_process_t *p1 = NULL, *p2 = NULL, *p3 = NULL;
    int rc = tl_process_exec(producer, &po, &p1);
    if (rc == 0)
        rc = tl_process_exec(sort_argv, &so, &p2);
    if (rc == 0)
        rc = tl_process_exec(uniq_argv, &uo, &p3);
    /* The children hold the pipes now: without closing ours, sort would
     * never see EOF. */
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    void *out = NULL;
    size_t outlen = 0;
    int codes[3] = {-1, -1, -1};
    if (rc == 0)
        rc = tl_process_communicate(p3, NULL, 0, &out, &outlen, NULL, NULL);
    if (rc == 0)
        rc = tl_process_wait(p1, &codes[0]);
    if (rc == 0)
        rc = tl_process_wait(p2, &codes[1]);
    if (rc == 0)
        rc = tl_process_wait(p3, &codes[2]);
    tl_process_free(p1);
    tl_process_free(p2);
    tl_process_free(p3);
    if (rc) {
        tl_process_free_output(out);
        TASK_TRY(rc);
    }
    printf("   printf | sort | uniq -c, three children chained with TL_PROC_FD;\n"
           "   uniq's stdout, read by the task to its end:\n");
    int apple = 0, fig = 0, kiwi = 0, pear = 0, lines = 0;
    char *s = out;
    for (char *end = s ? s + outlen : s; s && s < end;) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        if (nl == NULL)
            break;
        *nl = '\0';
        int n = 0;
        char w[16] = "";
        if (sscanf(s, "%d %15s", &n, w) == 2) {
            printf("      %d %s\n", n, w);
            lines++;
            apple += strcmp(w, "apple") == 0 ? n : 0;
            fig += strcmp(w, "fig") == 0 ? n : 0;
            kiwi += strcmp(w, "kiwi") == 0 ? n : 0;
            pear += strcmp(w, "pear") == 0 ? n : 0;
        }
        s = nl + 1;
    }
    tl_process_free_output(out);
    TASK_CHECK(lines == 4 && apple == 2 && fig == 1 && kiwi == 1 && pear == 4,
               "uniq -c counted apple %d fig %d kiwi %d pear %d in %d lines",
               apple, fig, kiwi, pear, lines);
    TASK_CHECK(codes[0] == 0 && codes[1] == 0 && codes[2] == 0,
               "exit codes %d %d %d", codes[0], codes[1], codes[2]);
    printf("   All three exited 0; the counts are right (pear 4, apple 2, fig 1,\n"
           "   kiwi 1).\n");
    return 0;
}

/* A conversation: each line written gets its length back. */
static int conversation(void) {
    tl_process_t *p;
    TASK_TRY(tl_process_shell(
        "while IFS= read -r l; do printf '%s %s\\n' \"${#l}\" \"$l\"; done; exit 3",
        NULL, &p));
    static const char *const say[] = {"hello", "tulip", "subprocesses in C"};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        char line[64], want[64], got[64];
        int n = snprintf(line, sizeof line, "%s\n", say[i]);
        snprintf(want, sizeof want, "%zu %s\n", strlen(say[i]), say[i]);
        size_t len = 0;
        if ((rc = tl_stream_write(tl_process_stdin(p), line, (size_t)n)) ||
            (rc = tl_stream_drain(tl_process_stdin(p))) ||
            (rc = tl_stream_readline(tl_process_stdout(p), got, sizeof got - 1,
                                     &len)))
            break;
        got[len] = '\0';
        if (strcmp(got, want) != 0) {
            demo_fail("the child answered \"%s\" to \"%s\"", got, say[i]);
            rc = TL_ESTATE;
            break;
        }
        printf("   task -> child: %-20s child -> task: %s", say[i], got);
    }
    int code = -1;
    if (rc == 0)
        rc = tl_stream_write_eof(tl_process_stdin(p));
    if (rc == 0)
        rc = tl_process_wait(p, &code);
    tl_process_free(p);
    TASK_TRY(rc);
    TASK_CHECK(code == 3, "the shell exited %d, not 3", code);
    printf("   The task closed the child's stdin: its read loop ended and it\n"
           "   exited with code %d, which tl_process_wait returned.\n", code);

    const char *sleeper[] = {"sleep", "30", NULL};
    TASK_TRY(tl_process_exec(sleeper, NULL, &p));
    rc = tl_process_kill(p);
    if (rc == 0)
        rc = tl_process_wait(p, &code);
    tl_process_free(p);
    TASK_TRY(rc);
    TASK_CHECK(code == -SIGKILL, "a killed child's returncode is %d", code);
    printf("   sleep 30, killed: returncode %d (minus the signal number, as in\n"
           "   asyncio).\n", code);
    return 0;
}

static int processes_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    int rc = pipeline();
    return rc ? rc : conversation();
}

int demo_processes(tl_loop_t *loop) {
    uint64_t t0 = tl_now_ns();
    tl_task_t *t;
    TRY(tl_task_spawn(loop, processes_main, NULL, NULL, &t));
    int rc;
    tl_future_t *f = tl_task_future(t);
    if (demo_complete(loop, f, GUARD_MS, &rc, NULL)) {
        tl_task_unref(t);
        return -1;
    }
    tl_task_unref(t);
    CHECK(rc == 0, "the processes task failed: %s", tl_err_name(rc));
    printf("   Five children spawned, waited for and reaped in %.0f ms, all\n"
           "   from one task on the loop's thread.\n", demo_ms_since(t0));
    return 0;
}
