/*
 * Executor internals for the modules above it (transport's resolver): jobs
 * that own their argument and their result.
 *
 * A job kind is a static object naming what the executor must free: the
 * kind rides in the job's future class pointer, so it costs a job no
 * memory. Define one with TL__JOB_KIND(result_destructor, arg_free).
 */
#ifndef TL_EXECUTOR_INT_H
#define TL_EXECUTOR_INT_H

#include "../future/future_int.h"
#include "tulip/executor.h"

typedef struct tl__job_kind {
    tl__future_class_t cls; /* the executor's job class: TL__JOB_KIND fills it */
    /* The result's destructor: given to the future with fn's result, or
     * called on the result where an outcome is dropped (the loop closed).
     * NULL: the result is not freed by tulip. */
    tl_destructor_t result_destructor;
    /* Called on arg exactly once when the job ends, whether fn ran or not
     * (completed, cancelled, shut down, loop closed), on the thread where
     * it ends. Not called when the submission itself fails. NULL: none. */
    void (*arg_free)(void *arg);
} tl__job_kind_t;

/* The cancel of every job (the class hook), for TL__JOB_KIND. */
int tl__job_cancel(tl_future_t *f, const char *message);

#define TL__JOB_KIND(result_destructor, arg_free) \
    {{tl__job_cancel, NULL}, (result_destructor), (arg_free)}

/* tl_loop_run_in_executor with a kind (kind must outlive the job: make it
 * static). The same errors; on an error nothing was taken (arg_free is not
 * called). */
int tl__loop_run_job(tl_loop_t *loop, tl_executor_t *ex, const tl__job_kind_t *kind,
                     tl_executor_fn_t fn, void *arg, tl_future_t **out);

#endif
