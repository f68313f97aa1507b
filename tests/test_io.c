/*
 * io: readers and writers on pipes and socketpairs (asyncio's add_reader
 * family). Every test runs against each built-in backend.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tl_test.h"

#define MS (1000000LL)

static const tl_backend_ops_t *backend_at(int i) {
    return i == 0 ? tl_backend_epoll() : i == 1 ? tl_backend_poll() : NULL;
}

/* Runs body once per built-in backend, on a fresh loop. */
#define FOR_EACH_BACKEND(loop)                                                 \
    for (int be_i_ = 0; be_i_ < 2; be_i_++)                                   \
        for (tl_loop_t *loop = loop_on(backend_at(be_i_)); loop;               \
             tl_test_loop_free(loop), loop = NULL)

static tl_loop_t *loop_on(const tl_backend_ops_t *be) {
    if (be == NULL)
        return NULL;
    tl_loop_options_t o = {sizeof o, be, 0, 0};
    tl_loop_t *loop = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    CU_ASSERT_STRING_EQUAL(tl_loop_backend_name(loop), be->name);
    return loop;
}

static void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void make_pipe(int p[2]) {
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    nonblock(p[0]);
    nonblock(p[1]);
}

static void make_socketpair(int sv[2]) {
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    nonblock(sv[0]);
    nonblock(sv[1]);
}

static void close2(int p[2]) {
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

typedef struct watch {
    tl_loop_t *loop;
    int fd;
    int calls;
    int bytes;
    int eof;
    int read_one;     /* read one byte per call */
    int remove_self;  /* remove_reader inside the callback */
    int remove_rc;
    struct watch *other; /* remove its reader */
    int other_rc;
} watch_t;

static void on_readable(void *arg) {
    watch_t *w = arg;
    w->calls++;
    if (w->read_one) {
        char c;
        ssize_t n = read(w->fd, &c, 1);
        if (n == 1)
            w->bytes++;
        else if (n == 0)
            w->eof++;
    }
    if (w->remove_self)
        w->remove_rc = tl_loop_remove_reader(w->loop, w->fd);
    if (w->other)
        w->other_rc = tl_loop_remove_reader(w->loop, w->other->fd);
}

static void on_writable(void *arg) {
    watch_t *w = arg;
    w->calls++;
    if (w->remove_self)
        w->remove_rc = tl_loop_remove_writer(w->loop, w->fd);
}

static void count(void *arg) { (*(int *)arg)++; }

static void test_readable_callback_runs_each_iteration_until_drained(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        watch_t w = {.loop = loop, .fd = p[0], .read_one = 1};
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], on_readable, &w), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 0); /* nothing to read yet */
        CU_ASSERT_EQUAL(write(p[1], "abc", 3), 3);
        for (int i = 1; i <= 3; i++) {
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            CU_ASSERT_EQUAL(w.calls, i);
        }
        CU_ASSERT_EQUAL(w.bytes, 3);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 3); /* drained: level-triggered quiet */
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
        close2(p);
    }
}

static void test_readable_wakes_a_blocking_run_once(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        watch_t w = {.loop = loop, .fd = p[0], .read_one = 1};
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], on_readable, &w), 0);
        CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
        uint64_t t0 = tl_now_ns();
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1000 * MS), 0);
        CU_ASSERT(tl_now_ns() - t0 < 300 * MS);
        CU_ASSERT_EQUAL(w.calls, 1);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
        close2(p);
    }
}

static void test_add_reader_replaces_the_existing_one(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        watch_t a = {.loop = loop, .fd = p[0]}, b = {.loop = loop, .fd = p[0]};
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], on_readable, &a), 0);
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], on_readable, &b), 0);
        CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(a.calls, 0);
        CU_ASSERT_EQUAL(b.calls, 1);
        /* one watcher, so one removal */
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(b.calls, 1);
        close2(p);
    }
}

static void test_remove_returns_1_then_0(void) {
    FOR_EACH_BACKEND(loop) {
        int sv[2];
        make_socketpair(sv);
        int n = 0;
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, sv[0]), 0); /* never added */
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, 1000), 0);  /* beyond the table */
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, sv[0], count, &n), 0);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, sv[0]), 0); /* only a reader */
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, sv[0]), 1);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, sv[0]), 0);
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, sv[0], count, &n), 0);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, sv[0]), 1);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, sv[0]), 0);
        CU_ASSERT_EQUAL(write(sv[1], "x", 1), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(n, 0);
        close2(sv);
    }
}

static void test_writer_runs_on_a_writable_socket(void) {
    FOR_EACH_BACKEND(loop) {
        int sv[2];
        make_socketpair(sv);
        watch_t w = {.loop = loop, .fd = sv[0]};
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, sv[0], on_writable, &w), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 2); /* still writable, still called */
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, sv[0]), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 2);
        close2(sv);
    }
}

static void test_writer_is_quiet_while_the_socket_is_full(void) {
    FOR_EACH_BACKEND(loop) {
        int sv[2];
        make_socketpair(sv);
        char buf[4096];
        memset(buf, 'x', sizeof buf);
        while (write(sv[0], buf, sizeof buf) > 0)
            ;
        CU_ASSERT_EQUAL(errno, EAGAIN);
        watch_t w = {.loop = loop, .fd = sv[0]};
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, sv[0], on_writable, &w), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 0);
        /* drain the peer: room appears, the writer runs */
        while (read(sv[1], buf, sizeof buf) > 0)
            ;
        for (int i = 0; i < 20 && w.calls == 0; i++)
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 10 * MS), 0);
        CU_ASSERT(w.calls >= 1);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, sv[0]), 1);
        close2(sv);
    }
}

static void test_reader_and_writer_on_one_fd_are_independent(void) {
    FOR_EACH_BACKEND(loop) {
        int sv[2];
        make_socketpair(sv);
        watch_t r = {.loop = loop, .fd = sv[0], .read_one = 1};
        watch_t w = {.loop = loop, .fd = sv[0]};
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, sv[0], on_writable, &w), 0);
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, sv[0], on_readable, &r), 0);
        CU_ASSERT_EQUAL(write(sv[1], "ab", 2), 2);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(r.calls, 1);
        CU_ASSERT_EQUAL(w.calls, 1);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, sv[0]), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(r.calls, 2); /* the reader survived */
        CU_ASSERT_EQUAL(w.calls, 1);
        CU_ASSERT_EQUAL(r.bytes, 2);
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, sv[0], on_writable, &w), 0);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, sv[0]), 1);
        CU_ASSERT_EQUAL(write(sv[1], "c", 1), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(r.calls, 2);
        CU_ASSERT_EQUAL(w.calls, 2);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, sv[0]), 1);
        close2(sv);
    }
}

static void test_reader_can_remove_itself(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        watch_t w = {.loop = loop, .fd = p[0], .remove_self = 1, .remove_rc = -1};
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], on_readable, &w), 0);
        CU_ASSERT_EQUAL(write(p[1], "xyz", 3), 3);
        for (int i = 0; i < 3; i++)
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 1);
        CU_ASSERT_EQUAL(w.remove_rc, 1);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 0);
        close2(p);
    }
}

static void test_writer_can_remove_itself(void) {
    FOR_EACH_BACKEND(loop) {
        int sv[2];
        make_socketpair(sv);
        watch_t w = {.loop = loop, .fd = sv[0], .remove_self = 1, .remove_rc = -1};
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, sv[0], on_writable, &w), 0);
        for (int i = 0; i < 3; i++)
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 1);
        CU_ASSERT_EQUAL(w.remove_rc, 1);
        close2(sv);
    }
}

static void test_removed_watcher_reported_in_the_same_batch_does_not_run(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2], q[2];
        make_pipe(p);
        make_pipe(q);
        watch_t a = {.loop = loop, .fd = p[0]}, b = {.loop = loop, .fd = q[0]};
        a.other = &b;
        b.other = &a;
        a.other_rc = b.other_rc = -1;
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], on_readable, &a), 0);
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, q[0], on_readable, &b), 0);
        CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
        CU_ASSERT_EQUAL(write(q[1], "x", 1), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        /* Both were ready in one poll; whichever ran first removed the
         * other, which then must not run. */
        CU_ASSERT_EQUAL(a.calls + b.calls, 1);
        CU_ASSERT_EQUAL(a.calls ? a.other_rc : b.other_rc, 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(a.calls + b.calls, 2); /* the survivor is still watched */
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]) + tl_loop_remove_reader(loop, q[0]), 1);
        close2(p);
        close2(q);
    }
}

typedef struct swap {
    tl_loop_t *loop;
    int fd;
    watch_t *replacement;
    int calls;
} swap_t;

static void replace_own_reader(void *arg) {
    swap_t *s = arg;
    s->calls++;
    tl_loop_add_reader(s->loop, s->fd, on_readable, s->replacement);
}

static void test_reader_replaced_inside_its_callback_takes_effect_next_iteration(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        watch_t next = {.loop = loop, .fd = p[0]};
        swap_t s = {loop, p[0], &next, 0};
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], replace_own_reader, &s), 0);
        CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(s.calls, 1);
        CU_ASSERT_EQUAL(next.calls, 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(s.calls, 1);
        CU_ASSERT_EQUAL(next.calls, 1);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
        close2(p);
    }
}

static void test_negative_fd_is_a_bad_descriptor(void) {
    FOR_EACH_BACKEND(loop) {
        int n = 0;
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, -1, count, &n), TL_EBADF);
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, -5, count, &n), TL_EBADF);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, -1), TL_EBADF);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, -1), TL_EBADF);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(n, 0);
    }
}

static void test_fd_that_is_not_open_is_a_bad_descriptor(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        int fd = p[0];
        close2(p); /* fd names nothing now */
        int n = 0;
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, fd, count, &n), TL_EBADF);
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, fd, count, &n), TL_EBADF);
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, 4000, count, &n), TL_EBADF);
        /* A huge number is refused as a descriptor before anything grows
         * to the size it asks for: with allocations failing, still EBADF
         * (and never an attempt at a table of 2^31 entries). */
        long allocs = tl_test_alloc_count();
        tl_test_fail_alloc_at(1);
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, 2000000000, count, &n), TL_EBADF);
        tl_test_fail_alloc_at(1);
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, INT_MAX, count, &n), TL_EBADF);
        tl_test_fail_alloc_at(0);
        CU_ASSERT_EQUAL(tl_test_alloc_count(), allocs);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, 2000000000), 0);
        /* nothing was registered */
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, fd), 0);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, fd), 0);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, 4000), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(n, 0);
    }
}

static void test_fd_closed_without_removing_its_watcher_does_not_crash(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        int fd = p[0];
        watch_t w = {.loop = loop, .fd = fd};
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, fd, on_readable, &w), 0);
        CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
        close2(p); /* behind the loop's back */
        for (int i = 0; i < 3; i++) {
            int rc = tl_loop_run_once(loop, 0);
            CU_ASSERT(rc == 0 || rc < 0); /* an error, perhaps, not a crash */
        }
        /* The watcher is still the loop's to forget. */
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, fd), 1);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, fd), 0);
        int calls = w.calls;
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, calls);
        /* The number can be watched again once something reuses it. */
        int q[2];
        make_pipe(q);
        int again = q[0] == fd ? q[0] : q[1] == fd ? q[1] : -1;
        if (again == q[0]) {
            watch_t v = {.loop = loop, .fd = again, .read_one = 1};
            CU_ASSERT_EQUAL(tl_loop_add_reader(loop, again, on_readable, &v), 0);
            CU_ASSERT_EQUAL(write(q[1], "y", 1), 1);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            CU_ASSERT_EQUAL(v.calls, 1);
            CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, again), 1);
        }
        close2(q);
    }
}

static void test_hang_up_is_reported_as_readable(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        watch_t w = {.loop = loop, .fd = p[0], .read_one = 1};
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], on_readable, &w), 0);
        close(p[1]);
        p[1] = -1;
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 1);
        CU_ASSERT_EQUAL(w.eof, 1);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
        close2(p);

        int sv[2];
        make_socketpair(sv);
        watch_t s = {.loop = loop, .fd = sv[0], .read_one = 1};
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, sv[0], on_readable, &s), 0);
        close(sv[1]);
        sv[1] = -1;
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(s.calls, 1);
        CU_ASSERT_EQUAL(s.eof, 1);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, sv[0]), 1);
        close2(sv);
    }
}

static void test_error_on_a_write_end_is_reported_to_its_writer(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        char buf[4096];
        memset(buf, 'x', sizeof buf);
        while (write(p[1], buf, sizeof buf) > 0)
            ;
        watch_t w = {.loop = loop, .fd = p[1]};
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, p[1], on_writable, &w), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 0); /* full */
        close(p[0]); /* the reader goes away: writes would fail, EPIPE */
        p[0] = -1;
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 1);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, p[1]), 1);
        close2(p);
    }
}

static void test_watchers_on_high_descriptor_numbers_work(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        int hi = fcntl(p[0], F_DUPFD, 900);
        CU_ASSERT_FATAL(hi >= 900);
        watch_t w = {.loop = loop, .fd = hi, .read_one = 1};
        int low = 0;
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, p[1], count, &low), 0);
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, hi, on_readable, &w), 0);
        CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 1);
        CU_ASSERT_EQUAL(low, 1); /* the smaller one still works */
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, hi), 1);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, p[1]), 1);
        close(hi);
        close2(p);
    }
}

/* More ready descriptors than one poll returns: all must be served, and
 * none starved, even when the first ones stay ready forever. */
static void test_more_ready_descriptors_than_a_batch_are_all_served(void) {
    enum { N = 600 };
    static int fds[N];
    static int calls[N];
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        CU_ASSERT_EQUAL(write(p[1], "x", 1), 1); /* every dup is readable */
        int opened = 0;
        for (int i = 0; i < N; i++) {
            fds[i] = dup(p[0]);
            if (fds[i] < 0)
                break;
            opened++;
            calls[i] = 0;
            CU_ASSERT_EQUAL(tl_loop_add_reader(loop, fds[i], count, &calls[i]), 0);
        }
        CU_ASSERT_EQUAL_FATAL(opened, N);
        for (int it = 0; it < 6; it++)
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        int starved = 0;
        for (int i = 0; i < N; i++)
            starved += calls[i] == 0;
        if (starved)
            fprintf(stderr, "\n  %s: %d of %d ready descriptors never served\n",
                    tl_loop_backend_name(loop), starved, N);
        CU_ASSERT_EQUAL(starved, 0);
        for (int i = 0; i < N; i++) {
            CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, fds[i]), 1);
            close(fds[i]);
        }
        close2(p);
    }
}

static void test_watching_fails_cleanly_when_memory_runs_out(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        int hi = fcntl(p[0], F_DUPFD, 700);
        CU_ASSERT_FATAL(hi >= 700);
        int n = 0, failures = 0;
        for (long k = 1; k < 10; k++) {
            tl_test_fail_alloc_at(k);
            int rc = tl_loop_add_reader(loop, hi, count, &n);
            tl_test_fail_alloc_at(0);
            if (rc == 0)
                break;
            failures++;
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, hi), 0);
        }
        CU_ASSERT(failures >= 1);
        CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(n, 1);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, hi), 1);
        close(hi);
        close2(p);
    }
}

static void test_close_forgets_watchers_and_leaves_fds_open(void) {
    FOR_EACH_BACKEND(loop) {
        int p[2];
        make_pipe(p);
        int n = 0;
        tl_loop_t *other = loop_on(backend_at(be_i_));
        CU_ASSERT_EQUAL(tl_loop_add_reader(other, p[0], count, &n), 0);
        CU_ASSERT_EQUAL(tl_loop_add_writer(other, p[1], count, &n), 0);
        tl_test_loop_free(other);
        CU_ASSERT_EQUAL(n, 0);
        /* the loop never closes a descriptor it watched */
        CU_ASSERT(fcntl(p[0], F_GETFD) >= 0);
        CU_ASSERT(fcntl(p[1], F_GETFD) >= 0);
        CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
        close2(p);
    }
}

static void sleep_5ms_reader(void *arg) {
    watch_t *w = arg;
    w->calls++;
    usleep(5000);
}

static void test_slow_reader_is_reported_in_debug_mode(void) {
    FOR_EACH_BACKEND(loop) {
        tl_test_exc_t exc;
        tl_test_capture_exceptions(loop, &exc);
        CU_ASSERT_EQUAL(tl_loop_set_debug(loop, 1), 0);
        CU_ASSERT_EQUAL(tl_loop_set_slow_callback_duration(loop, MS), 0);
        int sv[2];
        make_socketpair(sv);
        watch_t w = {.loop = loop, .fd = sv[0]};
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, sv[0], sleep_5ms_reader, &w), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(w.calls, 1);
        CU_ASSERT_EQUAL(exc.count, 1);
        CU_ASSERT(exc.last_duration_ns >= 5 * MS);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, sv[0]), 1);
        close2(sv);
    }
}

TL_TEST_SUITE(io,
              TL_TEST(test_readable_callback_runs_each_iteration_until_drained),
              TL_TEST(test_readable_wakes_a_blocking_run_once),
              TL_TEST(test_add_reader_replaces_the_existing_one),
              TL_TEST(test_remove_returns_1_then_0),
              TL_TEST(test_writer_runs_on_a_writable_socket),
              TL_TEST(test_writer_is_quiet_while_the_socket_is_full),
              TL_TEST(test_reader_and_writer_on_one_fd_are_independent),
              TL_TEST(test_reader_can_remove_itself),
              TL_TEST(test_writer_can_remove_itself),
              TL_TEST(test_removed_watcher_reported_in_the_same_batch_does_not_run),
              TL_TEST(test_reader_replaced_inside_its_callback_takes_effect_next_iteration),
              TL_TEST(test_negative_fd_is_a_bad_descriptor),
              TL_TEST(test_fd_that_is_not_open_is_a_bad_descriptor),
              TL_TEST(test_fd_closed_without_removing_its_watcher_does_not_crash),
              TL_TEST(test_hang_up_is_reported_as_readable),
              TL_TEST(test_error_on_a_write_end_is_reported_to_its_writer),
              TL_TEST(test_watchers_on_high_descriptor_numbers_work),
              TL_TEST(test_more_ready_descriptors_than_a_batch_are_all_served),
              TL_TEST(test_watching_fails_cleanly_when_memory_runs_out),
              TL_TEST(test_close_forgets_watchers_and_leaves_fds_open),
              TL_TEST(test_slow_reader_is_reported_in_debug_mode))
