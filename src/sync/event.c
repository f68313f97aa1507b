/* asyncio.Event: a flag, and the waiters that set wakes all at once. */
#include "../core/alloc.h"
#include "sync_int.h"

struct tl_event {
    tl_loop_t *loop; /* referenced */
    int flag;
    tl__waitq_t q;
    tl__waitq_t wake; /* woken by a set, completion still to do */
};

int tl_event_new(tl_loop_t *loop, tl_event_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    tl_event_t *e = tl__calloc(1, sizeof(*e));
    if (e == NULL)
        return TL_ENOMEM;
    e->loop = loop;
    tl_loop_ref(loop);
    *out = e;
    return 0;
}

int tl_event_free(tl_event_t *e) {
    int rc = tl__sync_check_thread(e, e ? e->loop : NULL);
    if (rc)
        return rc;
    tl__waitq_cancel_all(&e->wake);
    tl__waitq_cancel_all(&e->q);
    tl_loop_unref(e->loop);
    tl__free(e);
    return 0;
}

/* The checks of a state-changing call, and the wakes left over from an
 * earlier set that ran out of memory. */
static int enter(tl_event_t *e) {
    int rc = tl__sync_check(e, e ? e->loop : NULL);
    if (rc == 0 && e->wake.head)
        tl__waitq_flush(&e->wake);
    return rc;
}

int tl_event_set(tl_event_t *e) {
    int rc = enter(e);
    if (rc)
        return rc;
    e->flag = 1;
    return tl__waitq_wake_all(&e->q, &e->wake, NULL, 0);
}

int tl_event_clear(tl_event_t *e) {
    int rc = enter(e);
    if (rc == 0)
        e->flag = 0;
    return rc;
}

int tl_event_is_set(const tl_event_t *e) {
    int rc = tl__sync_check_thread(e, e ? e->loop : NULL);
    return rc ? rc : e->flag;
}

int tl_event_wait_future(tl_event_t *e, tl_future_t **out) {
    int rc = enter(e);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    if (e->flag)
        return tl__future_new_done(e->loop, NULL, out);
    return tl__waitq_add(&e->q, e->loop, NULL, out);
}
