/* tl_run: asyncio.run for C. */
#include <string.h>

#include "../core/alloc.h"
#include "task_int.h"

typedef struct waitall {
    size_t left;
    tl_future_t *done;
} waitall_t;

static void one_finished(tl_future_t *f, void *arg) {
    waitall_t *w = arg;
    tl_future_error(f); /* a cancelled task's outcome is expected */
    if (--w->left == 0)
        tl_future_set_result(w->done, NULL, NULL);
}

/* Cancel what still runs and let it finish, as asyncio.run does before it
 * closes the loop. Tasks spawned meanwhile are cancelled in the next round. */
static int cancel_remaining(tl_loop_t *loop) {
    for (;;) {
        int n = tl_task_all(loop, NULL, 0);
        if (n <= 0)
            return n;
        tl_task_t **all = tl__calloc((size_t)n, sizeof(*all));
        waitall_t w = {0, NULL};
        int rc = all ? tl_future_new(loop, &w.done) : TL_ENOMEM;
        if (rc == 0) {
            n = tl_task_all(loop, all, (size_t)n);
            for (int i = 0; i < n && rc == 0; i++) {
                tl_task_cancel(all[i], NULL);
                if ((rc = tl_future_add_done_callback(tl_task_future(all[i]),
                                                      one_finished, &w)) == 0)
                    w.left++;
            }
        }
        tl__free(all);
        if (rc == 0)
            rc = tl_loop_run_until_complete(loop, w.done, NULL);
        tl_future_unref(w.done);
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
