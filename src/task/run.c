/* tl_run: asyncio.run for C. */
#include <string.h>

#include "../core/alloc.h"
#include "task_int.h"

/* Cancel what still runs and let it finish, as asyncio.run does before it
 * closes the loop: one gather with return_errors over the tasks (which marks
 * their outcomes read), then, as asyncio.run's _cancel_all_tasks, a report
 * for each task that ended with an error rather than cancelled. Tasks
 * spawned meanwhile are cancelled in the next round. */
static int cancel_remaining(tl_loop_t *loop) {
    for (;;) {
        int n = tl_task_all(loop, NULL, 0);
        if (n <= 0)
            return n;
        tl_task_t **all = tl__calloc((size_t)n, sizeof(*all));
        tl_future_t **futs = tl__calloc((size_t)n, sizeof(*futs));
        tl_future_t *gather = NULL;
        int rc = all && futs ? 0 : TL_ENOMEM;
        if (rc == 0) {
            n = tl_task_all(loop, all, (size_t)n);
            for (int i = 0; i < n; i++) {
                tl_task_cancel(all[i], NULL);
                futs[i] = tl_task_future(all[i]);
            }
            rc = tl_gather(loop, futs, (size_t)n, 1, &gather);
        }
        if (rc == 0)
            rc = tl_loop_run_until_complete(loop, gather, NULL);
        for (int i = 0; rc == 0 && i < n; i++) { /* the gather holds them */
            int err = tl_future_error(futs[i]);
            if (err < 0 && err != TL_ECANCELLED) {
                tl_exception_context_t c = {sizeof c,
                                            "unhandled error during tl_run() shutdown", err,
                                            tl_future_error_message(futs[i]), futs[i],
                                            NULL, NULL, 0};
                tl_loop_call_exception_handler(loop, &c);
            }
        }
        tl_future_unref(gather);
        tl__free(all);
        tl__free(futs);
        if (rc)
            return rc;
    }
}

int tl_run(tl_task_fn_t fn, void *arg, const tl_task_options_t *opts, void **result) {
    if (fn == NULL)
        return TL_EINVAL;
    if (tl_loop_get_running() != NULL)
        return TL_ERUNNING;
    tl_loop_t *loop;
    int rc = tl_loop_new(NULL, &loop);
    if (rc)
        return rc;
    tl_task_t *main_task;
    if ((rc = tl_task_spawn(loop, fn, arg, opts, &main_task)) == 0) {
        void *value = NULL;
        rc = tl_loop_run_until_complete(loop, tl_task_future(main_task), &value);
        if (rc == 0 && result) { /* the value is the caller's now */
            tl__future_steal_result(tl_task_future(main_task));
            *result = value;
        }
        tl_task_unref(main_task);
        cancel_remaining(loop);
    }
    tl_loop_close(loop);
    tl_loop_unref(loop);
    return rc;
}
