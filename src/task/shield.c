/*
 * asyncio.shield: an outer future that mirrors the inner one, and whose
 * cancellation is its own (plain cancel, then it stops listening); the
 * inner future never hears of it and is kept referenced while the outer
 * lives.
 */
#include "../core/alloc.h"
#include "combinator.h"
#include "tulip/task.h"

typedef struct shield {
    tl__watch_t w; /* one child: the inner future */
    tl_future_t *fut;
} shield_t;

static void on_done(tl__watch_t *w, size_t i) {
    shield_t *s = (shield_t *)w;
    tl_future_t *inner = w->kids[i].f;
    if (tl__combo_pending(s->fut))
        tl__combo_mirror(s->fut, inner, 1);
    else
        tl_future_error(inner); /* outer cancelled: as asyncio, mark it read */
}

static int shield_cancel(tl_future_t *f, const char *message) {
    shield_t *s = tl__combo_state(f);
    int rc = tl__future_cancel_base(f, message);
    if (rc == 1)
        tl__watch_stop(&s->w, NULL);
    return rc;
}

static void shield_finalize(tl_future_t *f) {
    shield_t *s = tl__combo_state(f);
    s->fut = NULL;
    tl__watch_release(&s->w);
}

static void shield_destroy(tl__watch_t *w) {
    tl__watch_fini(w);
    tl__free(w);
}

static const tl__future_class_t shield_class = {shield_cancel, shield_finalize};

int tl_shield(tl_future_t *f, tl_future_t **out) {
    if (f == NULL || out == NULL)
        return TL_EINVAL;
    int rc = tl__watch_check(f->loop, &f, 1);
    if (rc)
        return rc;
    if (f->state != TL__FUT_PENDING) { /* as asyncio: the inner itself */
        tl_future_ref(f);
        *out = f;
        return 0;
    }
    shield_t *s = tl__calloc(1, sizeof(*s));
    if (s == NULL)
        return TL_ENOMEM;
    if ((rc = tl__watch_init(&s->w, f->loop, &f, 1, on_done, shield_destroy))) {
        tl__free(s);
        return rc;
    }
    if ((rc = tl__combo_new(f->loop, &shield_class, s, &s->fut))) {
        shield_destroy(&s->w);
        return rc;
    }
    if ((rc = tl__watch_start(&s->w))) {
        tl_future_unref(s->fut);
        return rc;
    }
    *out = s->fut;
    return 0;
}
