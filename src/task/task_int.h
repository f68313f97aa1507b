/* The task object and the loop's task bookkeeping, shared by src/task. */
#ifndef TL_TASK_INT_H
#define TL_TASK_INT_H

#include "../future/future_int.h"
#include "coro.h"
#include "tulip/task.h"


struct tl_task {
    struct tl_future fut; /* first: a task is a future */
    tl__coro_t *coro;     /* from the first step until it finishes */
    size_t stack_size;
    tl_task_fn_t fn;
    void *arg;
    void *value; /* what fn wrote through its result pointer */
    int rc;      /* what fn returned */
    tl_destructor_t result_destructor;
    tl_future_t *waiter; /* the future tl_await waits for (referenced) */
    char *name;          /* NULL: "Task-<number>", made on demand */
    char *cancel_msg;
    uint64_t number;
    int num_cancels;     /* cancelling() */
    uint8_t must_cancel; /* deliver TL_ECANCELLED at the next suspension */
    uint8_t started, alive;
    uint8_t closing; /* the loop closed: resumed one last time */
    struct tl__task_loop *owner;
    struct tl_task *prev, *next; /* the loop's unfinished tasks */
    char default_name[24];
};

typedef struct tl__task_loop {
    tl__stack_pool_t *pool;
    tl_task_t *head;
    size_t count;
    uint64_t spawned;
} tl__task_loop_t;

/* The cancellation that an await of t just reported stays pending (with its
 * message), for t's next suspension: for code that reported success
 * instead because the operation it awaited could not be undone. */
void tl__task_keep_cancel(tl_task_t *t);

#endif
