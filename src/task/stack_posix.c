/*
 * The OS side of coroutine stacks on POSIX systems: mapping chunks, guard
 * pages, and the once-per-process choice of how to guard (stack.h).
 *
 * Process-wide state, explicit: the guard way found by the probe, and the
 * count of mprotect guard pages all pools hold, against a budget of a quarter
 * of vm.max_map_count (each such page splits a mapping: about two VMAs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "stack.h"
#include "tulip/core.h"

/* Linux 6.13's lightweight guard regions; older headers lack the name. */
#if defined(__linux__) && !defined(MADV_GUARD_INSTALL)
#  define MADV_GUARD_INSTALL 102
#endif

#ifndef MAP_NORESERVE
#  define MAP_NORESERVE 0
#endif
#ifndef MAP_STACK
#  define MAP_STACK 0
#endif

/* 0 until probed, then 1 + TL__GUARD_*. */
static atomic_int guard_way;
static atomic_long mprotect_guards;
static atomic_long mprotect_budget;

size_t tl__stack_os_page_size(void) {
    static atomic_size_t page;
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);
    if (p == 0) {
        long v = sysconf(_SC_PAGESIZE);
        p = v > 0 ? (size_t)v : 4096;
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

static long read_max_map_count(void) {
    long n = 65530; /* Linux's default */
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f != NULL) {
        long v;
        if (fscanf(f, "%ld", &v) == 1 && v > 0)
            n = v;
        fclose(f);
    }
    return n;
}

/* Whether MADV_GUARD_INSTALL works here: the kernel must accept it, and a
 * system call writing into the page must then fail with EFAULT. That second
 * check catches emulators (qemu-user) that answer 0 without guarding. */
static int madvise_guards_work(void) {
#ifdef MADV_GUARD_INSTALL
    size_t pg = tl__stack_os_page_size();
    void *p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    int ok = madvise(p, pg, MADV_GUARD_INSTALL) == 0 &&
             uname((struct utsname *)p) == -1 && errno == EFAULT;
    munmap(p, pg);
    return ok;
#else
    return 0;
#endif
}

static int probe(void) {
    atomic_store(&mprotect_budget, read_max_map_count() / 4);
    const char *env = getenv("TL_STACK_GUARD");
    if (env != NULL && strcmp(env, "none") == 0)
        return TL__GUARD_NONE;
    if (env != NULL && strcmp(env, "mprotect") == 0)
        return TL__GUARD_MPROTECT;
    if (env != NULL && strcmp(env, "madvise") == 0)
        return TL__GUARD_MADVISE; /* falls back to mprotect page by page */
    return madvise_guards_work() ? TL__GUARD_MADVISE : TL__GUARD_MPROTECT;
}

static int way(void) {
    int w = atomic_load_explicit(&guard_way, memory_order_relaxed);
    if (w == 0) {
        w = 1 + probe(); /* racing probes find the same answer */
        atomic_store(&guard_way, w);
    }
    return w - 1;
}

void tl__stack_os_force_guard(int kind, long budget) {
    atomic_store(&mprotect_budget, budget > 0 ? budget : read_max_map_count() / 4);
    atomic_store(&guard_way, kind < 0 ? 0 : 1 + kind);
}

int tl__stack_os_map(size_t bytes, void **out) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return TL_ENOMEM;
#ifdef MADV_NOHUGEPAGE
    /* With THP "always", the first touch of a stack could otherwise commit
     * a 2 MiB page for a 4 KiB frame. Failure is harmless. */
    (void)madvise(p, bytes, MADV_NOHUGEPAGE);
#endif
    *out = p;
    return 0;
}

void tl__stack_os_unmap(void *base, size_t bytes, size_t mprotect_pages) {
    munmap(base, bytes);
    if (mprotect_pages)
        atomic_fetch_sub(&mprotect_guards, (long)mprotect_pages);
}

void tl__stack_os_overflow(void) {
    static const char msg[] = "tulip: coroutine stack overflow (a stack without a guard page)\n";
    ssize_t n = write(2, msg, sizeof(msg) - 1);
    (void)n;
    abort();
}

int tl__stack_os_guard(void *page) {
    size_t pg = tl__stack_os_page_size();
    int w = way();
#ifdef MADV_GUARD_INSTALL
    if (w == TL__GUARD_MADVISE && madvise(page, pg, MADV_GUARD_INSTALL) == 0)
        return TL__GUARD_MADVISE;
#endif
    if (w != TL__GUARD_NONE) {
        long n = atomic_fetch_add(&mprotect_guards, 1);
        /* ENOMEM here is the kernel's mapping limit: the page stays plain. */
        if (n < atomic_load_explicit(&mprotect_budget, memory_order_relaxed) &&
            mprotect(page, pg, PROT_NONE) == 0)
            return TL__GUARD_MPROTECT;
        atomic_fetch_sub(&mprotect_guards, 1);
    }
    return TL__GUARD_NONE;
}
