/*
 * Part 4: futures. A future is pending until it gets exactly one outcome: a
 * result, an error (a TL_E* code and a message) or cancellation. Done
 * callbacks are scheduled with call_soon, never run inside the call that
 * completes the future. tl_loop_run_until_complete runs the loop until a
 * future is done and returns its outcome. An error nobody read is reported
 * through the loop's exception handler when the future is freed, like
 * asyncio's "exception was never retrieved".
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

/* What this part observes; every callback reaches it through its ctx. */
typedef struct watch {
    tl_future_t *future; /* the one a) resolves */
    char seen[64];       /* done callbacks, in the order they ran */
    int freed;           /* the result's destructor ran */
    int reports;         /* exception handler calls */
    int report_error;
    char report_message[64];
} watch_t;

typedef struct named {
    const char *name;
    watch_t *w;
} named_t;

/* The result of a): a destructor gets only the value, so the value says
 * where to record that it was freed. */
typedef struct answer {
    watch_t *w;
    char text[8];
} answer_t;

static void on_done(tl_future_t *f, void *ctx) {
    named_t *n = ctx;
    void *value = NULL;
    int rc = tl_future_result(f, &value);
    printf("      done callback \"%s\": the future holds \"%s\"\n", n->name,
           rc == 0 && value ? ((answer_t *)value)->text : tl_err_name(rc));
    snprintf(n->w->seen + strlen(n->w->seen), sizeof n->w->seen - strlen(n->w->seen),
             "%s%s", n->w->seen[0] ? " " : "", n->name);
}

static void free_answer(void *value) {
    answer_t *a = value;
    a->w->freed = 1;
    free(a);
}

static void resolve(void *ctx) {
    watch_t *w = ctx;
    answer_t *a = malloc(sizeof *a);
    if (a == NULL) {
        demo_fail("out of memory");
        return;
    }
    *a = (answer_t){w, "42"};
    int rc = tl_future_set_result(w->future, a, free_answer);
    if (rc) {
        free(a); /* on failure the caller keeps the value */
        demo_fail("tl_future_set_result returned %s", tl_err_name(rc));
    }
}

static void cancel_it(void *f) {
    int rc = tl_future_cancel(f, "the user closed the window");
    if (rc != 1)
        demo_fail("tl_future_cancel on a pending future returned %d, not 1", rc);
}

static void refuse(void *f) {
    CB_TRY(tl_future_set_error(f, TL_ECONNREFUSED, "db.example:5432 said no"));
}

static void on_exception(tl_loop_t *loop, const tl_exception_context_t *c, void *ctx) {
    watch_t *w = ctx;
    (void)loop;
    printf("      exception handler: %s:\n        %s (%s), \"%s\"\n", c->message,
           tl_err_name(c->error), tl_strerror(c->error),
           c->error_message ? c->error_message : "");
    w->reports++;
    w->report_error = c->error;
    snprintf(w->report_message, sizeof w->report_message, "%s",
             c->error_message ? c->error_message : "");
}

/* A future resolved by a timer, with done callbacks before and after. */
static int show_result(tl_loop_t *loop, watch_t *w) {
    named_t first = {"first", w}, second = {"second", w}, late = {"late", w};
    tl_future_t *f;
    TRY(tl_future_new(loop, &f));
    w->future = f;
    TRY(tl_future_add_done_callback(f, on_done, &first));
    TRY(tl_future_add_done_callback(f, on_done, &second));
    TRY(tl_loop_call_later(loop, 30 * MS, resolve, w, NULL));
    printf("   a) A timer sets a future's result in 30 ms; two done callbacks wait\n"
           "      on it and tl_loop_run_until_complete runs the loop meanwhile:\n");
    uint64_t t0 = tl_now_ns();
    void *value = NULL;
    TRY(tl_loop_run_until_complete(loop, f, &value));
    double ms = demo_ms_since(t0);
    const char *text = value ? ((answer_t *)value)->text : "";
    CHECK(strcmp(text, "42") == 0, "unexpected result \"%s\"", text);
    CHECK(strcmp(w->seen, "first second") == 0, "done callbacks ran as: %s", w->seen);
    CHECK(ms >= 30, "the future completed after %.1f ms, before its timer", ms);
    printf("      It returned \"%s\" after %.1f ms; the callbacks ran first, in the\n"
           "      order they were added.\n", text, ms);

    TRY(tl_future_add_done_callback(f, on_done, &late));
    CHECK(strcmp(w->seen, "first second") == 0, "a late callback ran re-entrantly");
    printf("      A callback added to the finished future does not run inside\n"
           "      tl_future_add_done_callback, but on the next iteration:\n");
    TRY(tl_loop_run_once(loop, 0));
    CHECK(strcmp(w->seen, "first second late") == 0, "done callbacks ran as: %s", w->seen);

    TRY(tl_future_unref(f));
    CHECK(w->freed, "dropping the last reference did not free the result");
    printf("      Dropping our reference freed the future and, through the\n"
           "      destructor given with it, the result.\n");
    return 0;
}

/* A future cancelled, with a message, while someone waits for it. */
static int show_cancel(tl_loop_t *loop) {
    tl_future_t *f;
    TRY(tl_future_new(loop, &f));
    TRY(tl_loop_call_later(loop, 20 * MS, cancel_it, f, NULL));
    printf("   b) A timer cancels a future after 20 ms while run_until_complete waits:\n");
    int rc = tl_loop_run_until_complete(loop, f, NULL);
    const char *msg = tl_future_error_message(f);
    printf("      It returned %s (%s),\n      with the message \"%s\".\n",
           tl_err_name(rc), tl_strerror(rc), msg ? msg : "");
    CHECK(rc == TL_ECANCELLED, "expected TL_ECANCELLED");
    CHECK(tl_future_cancelled(f) == 1, "tl_future_cancelled is not 1");
    CHECK(msg && strcmp(msg, "the user closed the window") == 0, "wrong message");
    rc = tl_future_cancel(f, NULL);
    CHECK(rc == 0, "cancelling twice returned %d, not 0", rc);
    printf("      Cancelling it again returns 0: it is already done.\n");
    TRY(tl_future_unref(f));
    return 0;
}

/* A future failed with an error code and a message. */
static int show_error(tl_loop_t *loop) {
    tl_future_t *f;
    TRY(tl_future_new(loop, &f));
    TRY(tl_loop_call_soon(loop, refuse, f, NULL));
    printf("   c) A callback fails a future with TL_ECONNREFUSED and a message:\n");
    int rc = tl_loop_run_until_complete(loop, f, NULL);
    const char *msg = tl_future_error_message(f);
    printf("      run_until_complete returned %s (%s),\n      with the message \"%s\".\n",
           tl_err_name(rc), tl_strerror(rc), msg ? msg : "");
    CHECK(rc == TL_ECONNREFUSED, "expected TL_ECONNREFUSED");
    CHECK(msg && strcmp(msg, "db.example:5432 said no") == 0, "wrong message");
    rc = tl_future_set_result(f, NULL, NULL);
    CHECK(rc == TL_ESTATE, "a second outcome gave %s, not TL_ESTATE", tl_err_name(rc));
    printf("      Setting a result now fails with TL_ESTATE: a future has one outcome.\n");
    TRY(tl_future_unref(f));
    return 0;
}

/* An error nobody read, reported when the future is freed. */
static int show_unretrieved(tl_loop_t *loop, watch_t *w) {
    tl_future_t *f;
    TRY(tl_future_new(loop, &f));
    TRY(tl_future_set_error(f, TL_EIO, "the disk went away"));
    printf("   d) A future fails with TL_EIO and nobody reads the error. Dropping\n"
           "      the last reference reports it through our exception handler:\n");
    TRY(tl_future_unref(f));
    CHECK(w->reports == 1, "the exception handler ran %d times, not once", w->reports);
    CHECK(w->report_error == TL_EIO && strcmp(w->report_message, "the disk went away") == 0,
          "the report does not describe the lost error");
    printf("      Only this one was reported: the errors of b) and c) were read by\n"
           "      run_until_complete, and cancellation is never reported.\n");
    return 0;
}

int demo_futures(tl_loop_t *loop) {
    watch_t w = {0};
    /* Installed first, so it would also catch a wrong report from b) or c). */
    TRY(tl_loop_set_exception_handler(loop, on_exception, &w));
    int rc = show_result(loop, &w) || show_cancel(loop) || show_error(loop) ||
             show_unretrieved(loop, &w);
    TRY(tl_loop_set_exception_handler(loop, NULL, NULL)); /* the default again */
    return rc ? -1 : 0;
}
