/*
 * Part 5: signals. A C signal handler may run on any thread, at any moment,
 * and may do almost nothing safely. tulip's handler only records the signal
 * and wakes the loop; the callback given to tl_loop_add_signal_handler then
 * runs later as an ordinary loop callback, on the loop thread, where it may
 * call anything (asyncio's loop.add_signal_handler).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

#define RAISE_AFTER_MS 30

typedef struct sig_watch {
    tl_loop_t *loop;
    pthread_t loop_thread;
    uint64_t t0;
    int calls;
    int inside_loop; /* the callback ran as a loop callback on the loop thread */
} sig_watch_t;

static void on_sigusr1(void *ctx) {
    sig_watch_t *s = ctx;
    s->calls++;
    s->inside_loop = tl_loop_get_running() == s->loop &&
                     pthread_equal(pthread_self(), s->loop_thread);
    printf("   at %5.1f ms the SIGUSR1 callback runs, on the loop thread\n",
           demo_ms_since(s->t0));
    tl_loop_stop(s->loop); /* anything goes here: this is not a signal handler */
}

static void *raiser(void *arg) {
    (void)arg;
    struct timespec nap = {0, RAISE_AFTER_MS * MS};
    nanosleep(&nap, NULL);
    if (kill(getpid(), SIGUSR1) != 0)
        demo_fail("kill: %s", strerror(errno));
    return NULL;
}

int demo_signals(tl_loop_t *loop) {
    sig_watch_t s = {loop, pthread_self(), 0, 0, 0};
    TRY(tl_loop_add_signal_handler(loop, SIGUSR1, on_sigusr1, &s));
    printf("   Handling SIGUSR1 in the loop; a thread sends it with kill(getpid(), ...)\n"
           "   after %d ms, while the loop sleeps.\n", RAISE_AFTER_MS);
    s.t0 = tl_now_ns();
    pthread_t tid;
    int err = pthread_create(&tid, NULL, raiser, NULL);
    CHECK(err == 0, "pthread_create: %s", strerror(err));
    int rc = demo_run(loop, 2000);
    err = pthread_join(tid, NULL);
    CHECK(err == 0, "pthread_join: %s", strerror(err));
    if (rc)
        return -1;
    CHECK(s.calls == 1, "the callback ran %d times, not once", s.calls);
    CHECK(s.inside_loop, "the callback did not run inside the loop, on its thread");

    rc = tl_loop_remove_signal_handler(loop, SIGUSR1);
    CHECK(rc == 1, "tl_loop_remove_signal_handler returned %d, not 1", rc);
    rc = tl_loop_remove_signal_handler(loop, SIGUSR1);
    CHECK(rc == 0, "removing it twice returned %d, not 0", rc);
    struct sigaction now;
    CHECK(sigaction(SIGUSR1, NULL, &now) == 0, "sigaction: %s", strerror(errno));
    CHECK(now.sa_handler == SIG_DFL, "SIGUSR1's disposition was not restored");
    printf("   Removed the handler (1 removed; a second removal finds none): the\n"
           "   process's previous disposition for SIGUSR1 is back.\n");
    return 0;
}
