/*
 * STARTTLS on a stream: asyncio's StreamWriter.start_tls, over tls.h's
 * tl_start_tls.
 *
 * The stream's transport goes to the TLS engine with the stream's own
 * protocol (tl__stm_protocol, ctx the stream) for the TLS transport. From
 * the call on the stream has no transport (s->t NULL, s->upgrading): the
 * reference the stream holds for its transport's sake passes to the TLS
 * transport, whose connection_made (p_made -> tl__stm_attach) makes it the
 * stream's transport before tl_start_tls's future completes, and whose
 * connection_lost drops it as usual. A handshake that fails or is
 * cancelled makes no TLS transport and ends the old one without a
 * connection_lost to the stream: the future's callback ends the stream
 * (tl__stm_lost) with the handshake's error (TL_ECONNABORTED when
 * cancelled, so that a read does not look like a cancellation of its own).
 *
 * The future the caller gets is a class of its own ("upgrade"), so
 * cancelling it cancels the handshake. Until tl_start_tls's future has
 * called back (or the loop closed first: a closer, as a closed loop runs
 * no callback), the upgrade holds a reference on itself and on the stream.
 */
#include <stddef.h>

#include "../core/alloc.h"
#include "../future/future_int.h"
#include "../loop/loop_int.h"
#include "stream_int.h"
#include "transport_int.h"
#include "tulip/tls.h"

typedef struct upgrade {
    struct tl_future fut; /* first: the caller's future */
    tl__closer_t closer;
    tl_stream_t *s;
    tl_future_t *sf; /* tl_start_tls's, while our callback is owed */
} upgrade_t;

#define UPGRADE_OF(c) \
    ((upgrade_t *)(void *)((char *)(c) - offsetof(upgrade_t, closer)))

/* Nothing can call back into u any more: drop what it holds. */
static void up_settle(upgrade_t *u) {
    tl__transport_remove_closer(u->s->loop, &u->closer);
    tl_future_unref(u->sf);
    u->sf = NULL;
    tl__stm_unref(u->s);
    tl_future_unref(&u->fut);
}

/* The stream's connection is gone with error, as no connection_lost will
 * tell it (no TLS transport was made). */
static void end_stream(tl_stream_t *s, int error) {
    if (!s->upgrading)
        return;
    s->upgrading = 0;
    tl__stm_lost(s, error);
}

static void on_handshake(tl_future_t *sf, void *ctx) {
    upgrade_t *u = ctx;
    void *v = NULL;
    int rc = tl_future_result(sf, &v);
    if (rc)
        end_stream(u->s, rc == TL_ECANCELLED ? TL_ECONNABORTED : rc);
    if (u->fut.state == TL__FUT_PENDING) {
        if (rc == 0)
            tl__future_complete(&u->fut, TL__FUT_RESULT, NULL, NULL, 0, NULL);
        else if (rc == TL_ECANCELLED)
            tl__future_complete(&u->fut, TL__FUT_CANCELLED, NULL, NULL, rc,
                                NULL);
        else if (tl__future_complete(&u->fut, TL__FUT_ERROR, NULL, NULL, rc,
                                     tl_future_error_message(sf)) == TL_ENOMEM)
            tl__future_complete(&u->fut, TL__FUT_ERROR, NULL, NULL, rc, NULL);
    }
    up_settle(u);
}

/* The loop closes before the handshake's future called back. */
static void up_loop_closed(tl__closer_t *c) {
    upgrade_t *u = UPGRADE_OF(c);
    end_stream(u->s, TL_ECLOSED);
    up_settle(u);
}

static int up_cancel(tl_future_t *f, const char *message) {
    upgrade_t *u = (upgrade_t *)f;
    int rc = tl__future_cancel_base(f, message);
    if (rc == 1 && u->sf)
        tl_future_cancel(u->sf, message); /* on_handshake ends the stream */
    return rc;
}

static const tl__future_class_t upgrade_class = {up_cancel, NULL};

int tl_stream_start_tls_future(tl_stream_t *s, const tl_tls_options_t *opts,
                               tl_future_t **out) {
    if (s == NULL || opts == NULL || out == NULL)
        return TL_EINVAL;
    int rc = tl__loop_check(s->loop);
    if (rc)
        return rc;
    if (s->upgrading)
        return TL_EBUSY;
    if (s->err)
        return s->err;
    if (s->closed || s->lost || s->t == NULL)
        return TL_ECLOSED;
    if (s->end != s->start || s->held_fut)
        return TL_ESTATE; /* bytes that came before the handshake */
    tl_future_t *f;
    if ((rc = tl__future_create(s->loop, sizeof(upgrade_t), &upgrade_class,
                                &f)) != 0)
        return rc;
    upgrade_t *u = (upgrade_t *)f;
    u->s = s;
    u->closer.close = up_loop_closed;
    if ((rc = tl__transport_add_closer(s->loop, &u->closer)) != 0) {
        tl_future_unref(f);
        return rc;
    }
    tl_future_t *sf;
    if ((rc = tl_start_tls(s->t, &tl__stm_protocol, s, opts, &sf)) != 0) {
        tl__transport_remove_closer(s->loop, &u->closer);
        tl_future_unref(f);
        return rc;
    }
    /* The old transport is the engine's now. */
    s->t = NULL;
    s->upgrading = 1;
    s->paused = 0;
    if ((rc = tl_future_add_done_callback(sf, on_handshake, u)) != 0) {
        /* No memory to learn the outcome: give the handshake up. */
        tl_future_cancel(sf, NULL);
        tl_future_unref(sf);
        tl__transport_remove_closer(s->loop, &u->closer);
        tl_future_unref(f);
        end_stream(s, TL_ECONNABORTED);
        return rc;
    }
    u->sf = sf;
    tl__stm_ref(s);
    tl_future_ref(f); /* its own, until on_handshake */
    *out = f;
    return 0;
}

int tl_stream_start_tls(tl_stream_t *s, const tl_tls_options_t *opts) {
    if (s == NULL)
        return TL_EINVAL;
    int rc = tl__loop_check(s->loop);
    if (rc)
        return rc;
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    if (opts == NULL)
        return TL_EINVAL;
    /* asyncio drains the writer first: what was written before the
     * upgrade leaves in the clear before the handshake starts. */
    if (!s->upgrading && (rc = tl_stream_drain(s)) != 0)
        return rc;
    tl_future_t *f;
    if ((rc = tl_stream_start_tls_future(s, opts, &f)) != 0)
        return rc;
    tl__stm_ref(s);
    rc = tl_await(f, NULL);
    if (!tl_future_done(f)) /* the await itself failed */
        tl_future_cancel(f, NULL);
    tl_future_unref(f);
    tl__stm_unref(s);
    return rc;
}
