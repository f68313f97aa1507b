/* The wait queue shared by the primitives of src/sync (see waitq.h). */
#include "waitq.h"

/* tl_future_cancel on a waiter: cancelled, it leaves its queue at once. */
static int waiter_cancel(tl_future_t *f, const char *message) {
    tl__waiter_t *w = (tl__waiter_t *)f;
    int rc = tl__future_cancel_base(f, message);
    if (rc == 1 && w->q) {
        tl__waitq_unlink(w->q, w);
        if (w->on_cancel)
            w->on_cancel(w);
        tl_future_unref(f); /* the queue's; the caller still holds one */
    }
    return rc;
}

static const tl__future_class_t waiter_class = {waiter_cancel, NULL};

int tl__waiter_new(tl_loop_t *loop, void *value, tl__waiter_t **out) {
    tl_future_t *f;
    int rc = tl__future_create(loop, sizeof(tl__waiter_t), &waiter_class, &f);
    if (rc)
        return rc;
    tl__waiter_t *w = (tl__waiter_t *)f;
    w->value = value;
    *out = w;
    return 0;
}

void tl__waitq_append(tl__waitq_t *q, tl__waiter_t *w) {
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->q = q;
    q->n++;
}

void tl__waitq_unlink(tl__waitq_t *q, tl__waiter_t *w) {
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->prev = w->next = NULL;
    w->q = NULL;
    q->n--;
}

void tl__waitq_push(tl__waitq_t *q, tl__waiter_t *w) {
    tl_future_ref(tl__waiter_future(w));
    tl__waitq_append(q, w);
}

int tl__waitq_add(tl__waitq_t *q, tl_loop_t *loop, void *value,
                  tl_future_t **out) {
    tl__waiter_t *w;
    int rc = tl__waiter_new(loop, value, &w);
    if (rc)
        return rc;
    tl__waitq_push(q, w);
    *out = tl__waiter_future(w);
    return 0;
}

int tl__waitq_resolve(tl__waitq_t *q, tl__waiter_t *w, void *value, int error) {
    int rc = error ? tl__future_complete(&w->base, TL__FUT_ERROR, NULL, NULL, error, NULL)
                   : tl__future_complete(&w->base, TL__FUT_RESULT, value, NULL, 0, NULL);
    if (rc)
        return rc;
    tl__waitq_unlink(q, w);
    tl_future_unref(tl__waiter_future(w));
    return 0;
}

void tl__waitq_move(tl__waitq_t *q, tl__waitq_t *wake, tl__waiter_t *w,
                    void *value, int error) {
    tl__waitq_unlink(q, w);
    w->value = value;
    w->error = error;
    tl__waitq_append(wake, w);
}

int tl__waitq_flush(tl__waitq_t *wake) {
    while (wake->head) {
        tl__waiter_t *w = wake->head;
        int rc = tl__waitq_resolve(wake, w, w->value, w->error);
        if (rc)
            return rc;
    }
    return 0;
}

int tl__waitq_wake_all(tl__waitq_t *q, tl__waitq_t *wake, void *value,
                       int error) {
    while (q->head)
        tl__waitq_move(q, wake, q->head, value, error);
    return tl__waitq_flush(wake);
}

void tl__waitq_cancel_all(tl__waitq_t *q) {
    while (q->head) {
        tl__waiter_t *w = q->head;
        tl__waitq_unlink(q, w); /* first: no on_cancel, nothing to unlink */
        w->orphaned = 1;
        tl_future_cancel(tl__waiter_future(w), NULL);
        tl_future_unref(tl__waiter_future(w));
    }
}

int tl__waiter_orphaned(const tl_future_t *f) {
    return f->cls == &waiter_class && ((const tl__waiter_t *)f)->orphaned;
}

int tl__future_new_done(tl_loop_t *loop, void *value, tl_future_t **out) {
    int rc = tl_future_new(loop, out);
    if (rc == 0)
        tl_future_set_result(*out, value, NULL);
    return rc;
}
