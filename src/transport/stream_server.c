/*
 * Where streams come from: asyncio's open_connection and start_server.
 *
 * open_connection's future is a future class of its own (an "opener") that
 * owns the new stream until it hands it over as its result; cancelling it
 * cancels create_connection's future. The done callback it registers on
 * that future holds no reference (a closing loop drops callbacks without
 * running them): it reaches the opener through a small link, which the
 * opener's finalize cuts (and frees behind the callback, FIFO) if it goes
 * first. So a caller may drop the future at any time, and a loop closed
 * while connecting leaks nothing once the caller drops it.
 *
 * start_server: each accepted connection gets a stream, and once its
 * transport exists (connection_made) a task running the handler; the
 * stream is the handler's, closed and released when the handler returns
 * (the handler's outcome is the task's: an error nobody reads is reported
 * as "never retrieved", like the exception of asyncio's client_connected_cb
 * task). A handler task that never gets to run (cancelled first, or the
 * loop closed first) is caught by a sentinel queued behind its first step.
 *
 * Server.close and wait_closed are the transport server's: since asyncio
 * 3.12, wait_closed waits until every connection is gone; a connection is
 * gone when its transport's connection_lost ran, which for a handler
 * stream happens after the handler returned (the stream closes then) or
 * when the peer or tl_server_close_clients ends it.
 */
#include <stddef.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/options.h"
#include "../future/future_int.h"
#include "../loop/loop_int.h"
#include "stream_int.h"
#include "transport_int.h"

/* ---- open_connection --------------------------------------------------- */

typedef struct opener opener_t;
typedef struct link {
    opener_t *o; /* NULL once the opener is gone */
} link_t;

struct opener {
    struct tl_future fut;
    tl_stream_t *s;  /* the opener's until handed over as the result */
    tl_future_t *cf; /* create_connection's */
    link_t *link;    /* while our callback on cf may still run */
};

static void on_connected(tl_future_t *cf, void *ctx) {
    link_t *l = ctx;
    opener_t *o = l->o;
    if (o == NULL)
        return; /* the opener went first; the reaper frees l */
    o->link = NULL;
    tl__free(l);
    void *tp = NULL;
    int rc = tl_future_result(cf, &tp);
    tl_future_unref(o->cf);
    o->cf = NULL;
    tl_stream_t *s = o->s;
    if (o->fut.state != TL__FUT_PENDING) /* cancelled meanwhile */
        return;
    if (rc == 0) {
        /* connection_made may not have run yet: the stream is usable now. */
        tl__stm_attach(s, tp);
        if (tl__future_complete(&o->fut, TL__FUT_RESULT, s, NULL, 0, NULL) == 0) {
            o->s = NULL;
            return;
        }
        rc = TL_ENOMEM;
    }
    /* On failure the stream was never a transport's; the finalize frees it
     * (and on success it would close it). */
    tl__future_complete(&o->fut, TL__FUT_ERROR, NULL, NULL, rc, NULL);
}

static void reap(void *ctx) { tl__free(ctx); }

static int opener_cancel(tl_future_t *f, const char *message) {
    opener_t *o = (opener_t *)f;
    int rc = tl__future_cancel_base(f, message);
    if (rc == 1 && o->cf)
        tl_future_cancel(o->cf, message);
    return rc;
}

static void opener_finalize(tl_future_t *f) {
    opener_t *o = (opener_t *)f;
    if (o->link) {
        if (o->cf && tl_future_done(o->cf) == 0) {
            tl_future_remove_done_callback(o->cf, on_connected, o->link);
            tl_future_cancel(o->cf, NULL);
            tl__free(o->link);
        } else {
            /* Our callback is scheduled (or was dropped by a closing loop):
             * cut it off, and free the link behind it. */
            o->link->o = NULL;
            if (tl_loop_is_closed(f->loop) == 1 ||
                tl__loop_call_soon_drop(f->loop, reap, reap, o->link) == TL_ECLOSED)
                tl__free(o->link);
            /* (no memory for the reaper: the link is lost, not freed early) */
        }
        o->link = NULL;
    }
    tl_future_unref(o->cf);
    if (o->s)
        tl__stm_release(o->s);
}

static const tl__future_class_t opener_class = {opener_cancel, opener_finalize};

static int open_future(tl_loop_t *loop, const char *host, const char *port,
                       const char *path, const tl_stream_options_t *opts,
                       tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    tl_stream_options_t o;
    if (out == NULL || (path == NULL && (host == NULL || port == NULL)) ||
        tl__copy_options(&o, sizeof o, opts))
        return TL_EINVAL;
    tl_stream_t *s = NULL;
    tl_future_t *f = NULL;
    link_t *l = tl__malloc(sizeof *l);
    if (l == NULL || (rc = tl__stm_new(loop, o.limit, &s)) ||
        (rc = tl__future_create(loop, sizeof(opener_t), &opener_class, &f))) {
        tl__free(l);
        if (s)
            tl__stm_unref(s);
        return rc ? rc : TL_ENOMEM;
    }
    opener_t *op = (opener_t *)f;
    tl_future_t *cf;
    rc = path ? tl_create_unix_connection(loop, &tl__stm_protocol, s, path,
                                          &o.connect, &cf)
              : tl_create_connection(loop, &tl__stm_protocol, s, host, port,
                                     &o.connect, &cf);
    if (rc == 0 && (rc = tl_future_add_done_callback(cf, on_connected, l))) {
        /* Stop the attempt; if it had already connected, the transport is
         * closed through the stream. */
        tl_future_cancel(cf, NULL);
        void *tp;
        if (tl_future_result(cf, &tp) == 0) {
            tl__stm_attach(s, tp);
            tl__stm_release(s);
            s = NULL;
        }
        tl_future_unref(cf);
    }
    if (rc) {
        tl__free(l);
        if (s)
            tl__stm_unref(s);
        tl_future_unref(f);
        return rc;
    }
    l->o = op;
    op->link = l;
    op->cf = cf;
    op->s = s;
    *out = f;
    return 0;
}

int tl_open_connection_future(tl_loop_t *loop, const char *host,
                              const char *port, const tl_stream_options_t *opts,
                              tl_future_t **out) {
    if (host == NULL || port == NULL)
        return TL_EINVAL;
    return open_future(loop, host, port, NULL, opts, out);
}

static int open_seq(const char *host, const char *port, const char *path,
                    const tl_stream_options_t *opts, tl_stream_t **out) {
    if (out == NULL)
        return TL_EINVAL;
    tl_task_t *cur = tl_task_current();
    if (cur == NULL)
        return TL_ENOTASK;
    tl_future_t *f;
    int rc = open_future(tl_future_get_loop(tl_task_future(cur)), host, port,
                         path, opts, &f);
    if (rc)
        return rc;
    void *v = NULL;
    rc = tl_await(f, &v);
    if (rc == 0)
        *out = v;
    else if (rc == TL_ECANCELLED && tl_future_result(f, &v) == 0)
        tl__stm_release(v); /* connected, but the task was cancelled */
    tl_future_unref(f);
    return rc;
}

int tl_open_connection(const char *host, const char *port,
                       const tl_stream_options_t *opts, tl_stream_t **out) {
    if (host == NULL || port == NULL)
        return TL_EINVAL;
    return open_seq(host, port, NULL, opts, out);
}

int tl_open_unix_connection(const char *path, const tl_stream_options_t *opts,
                            tl_stream_t **out) {
    if (path == NULL)
        return TL_EINVAL;
    return open_seq(NULL, NULL, path, opts, out);
}

/* ---- start_server ------------------------------------------------------ */

/* What the protocol factory needs. References: the server's (dropped when
 * its wait_closed future completes, or by the transport layer's closer if
 * the loop closes first), and one per accepted connection until its handler
 * task is spawned (the task name is copied then). */
typedef struct tl__stream_server {
    tl__closer_t closer; /* a loop closing first drops the server's ref */
    int registered;
    int refs;
    tl_loop_t *loop;
    tl_stream_handler_t handler;
    void *ctx;
    size_t limit;
    tl_task_options_t task;
    char *name;
} sserv_t;

static void sserv_unref(sserv_t *v) {
    if (--v->refs == 0) {
        tl__free(v->name);
        tl__free(v);
    }
}

static int factory(void *fctx, const tl_protocol_t **proto, void **pctx) {
    sserv_t *v = fctx;
    tl_stream_t *s;
    int rc = tl__stm_new(v->loop, v->limit, &s);
    if (rc)
        return rc;
    s->handler = v->handler;
    s->handler_ctx = v->ctx;
    s->server = v;
    v->refs++;
    *proto = &tl__stm_protocol;
    *pctx = s;
    return 0;
}

static int handler_main(void *arg, void **result) {
    (void)result;
    tl_stream_t *s = arg;
    s->task_started = 1;
    int rc = s->handler(s, s->handler_ctx);
    tl__stm_release(s);
    return rc;
}

/* Queued right behind the handler task's first step: by the time it runs
 * (or is dropped by a closing loop) the handler has started or never will,
 * and then its reference is released here. */
static void sentinel(void *arg) {
    tl_stream_t *s = arg;
    if (!s->task_started)
        tl__stm_release(s);
    tl__stm_unref(s);
}

void tl__stm_server_made(tl_stream_t *s) {
    sserv_t *v = s->server;
    if (v == NULL || s->task_spawned)
        return;
    s->server = NULL;
    tl_task_options_t o = v->task;
    o.name = v->name;
    tl_task_t *task;
    int rc = tl_task_spawn(s->loop, handler_main, s, &o, &task);
    if (rc == 0) {
        tl__stm_ref(s);
        if (tl__loop_call_soon_drop(s->loop, sentinel, sentinel, s)) {
            tl__stm_unref(s);
            tl_task_cancel(task, NULL); /* its body will never run */
            rc = TL_ENOMEM;
        } else {
            s->task_spawned = 1;
        }
        tl_task_unref(task);
    }
    sserv_unref(v);
    if (rc) { /* no task to serve it: refuse the connection */
        if (s->t)
            tl_transport_abort(s->t);
        tl__stm_release(s);
    }
}

void tl__stm_server_lost(tl_stream_t *s) {
    if (s->server) { /* lost before connection_made (not expected) */
        sserv_unref(s->server);
        s->server = NULL;
    }
}

static void on_server_closed(tl_future_t *f, void *ctx) {
    (void)f;
    sserv_t *v = ctx;
    if (v->registered) {
        tl__transport_remove_closer(v->loop, &v->closer);
        v->registered = 0;
    }
    sserv_unref(v);
}

/* The loop closes before the server's wait_closed completed (its callbacks
 * will never run): no factory call can come any more. */
static void on_loop_close(tl__closer_t *c) {
    sserv_t *v = (sserv_t *)((char *)c - offsetof(sserv_t, closer));
    v->registered = 0;
    sserv_unref(v);
}

static int sserv_new(tl_loop_t *loop, tl_stream_handler_t handler, void *ctx,
                     const tl_stream_options_t *opts, sserv_t **out,
                     tl_stream_options_t *o) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (handler == NULL || out == NULL || tl__copy_options(o, sizeof *o, opts))
        return TL_EINVAL;
    sserv_t *v = tl__calloc(1, sizeof *v);
    if (v == NULL)
        return TL_ENOMEM;
    v->refs = 1;
    v->loop = loop;
    v->handler = handler;
    v->ctx = ctx;
    v->limit = o->limit;
    v->task = o->task;
    if (o->task.name && (v->name = tl__strdup(o->task.name)) == NULL) {
        tl__free(v);
        return TL_ENOMEM;
    }
    v->task.name = NULL;
    *out = v;
    return 0;
}

/* The server exists: watch its wait_closed future, whose completion means
 * no factory call and no connection can need v any more. */
static int watch_server(sserv_t *v, tl_server_t *srv) {
    tl_future_t *w;
    v->closer.close = on_loop_close;
    int rc = tl__transport_add_closer(v->loop, &v->closer);
    if (rc)
        return rc;
    if ((rc = tl_server_wait_closed(srv, &w)) == 0) {
        rc = tl_future_add_done_callback(w, on_server_closed, v);
        tl_future_unref(w);
    }
    if (rc)
        tl__transport_remove_closer(v->loop, &v->closer);
    else
        v->registered = 1;
    return rc;
}

static int server_done(sserv_t *v, int rc, tl_server_t *srv,
                       tl_server_t **out) {
    if (rc == 0 && (rc = watch_server(v, srv)) != 0)
        tl_server_free(srv); /* nothing was accepted yet */
    if (rc) {
        sserv_unref(v);
        return rc;
    }
    *out = srv;
    return 0;
}

int tl_start_server_addrs(tl_loop_t *loop, tl_stream_handler_t handler,
                          void *ctx, const tl_sockaddr_t *addrs, size_t n,
                          const tl_stream_options_t *opts, tl_server_t **out) {
    tl_stream_options_t o;
    sserv_t *v;
    int rc = sserv_new(loop, handler, ctx, opts, &v, &o);
    if (rc)
        return rc;
    tl_server_t *srv = NULL;
    rc = tl_create_server_addrs(loop, factory, v, addrs, n, &o.server, &srv);
    return server_done(v, rc, srv, out);
}

int tl_start_unix_server(tl_loop_t *loop, tl_stream_handler_t handler,
                         void *ctx, const char *path,
                         const tl_stream_options_t *opts, tl_server_t **out) {
    tl_stream_options_t o;
    sserv_t *v;
    int rc = sserv_new(loop, handler, ctx, opts, &v, &o);
    if (rc)
        return rc;
    tl_server_t *srv = NULL;
    rc = tl_create_unix_server(loop, factory, v, path, &o.server, &srv);
    return server_done(v, rc, srv, out);
}

/* create_server's future completed (the caller's callbacks come after
 * this one, registered first). */
static void on_server_made(tl_future_t *f, void *ctx) {
    sserv_t *v = ctx;
    void *srv;
    if (tl_future_result(f, &srv) != 0) {
        sserv_unref(v); /* no server */
    } else if (watch_server(v, srv) != 0) {
        /* No memory to watch it: stop it listening, so no factory call can
         * come; connections accepted so far hold v until their spawn. */
        tl_server_close(srv);
        sserv_unref(v);
    }
}

int tl_start_server_future(tl_loop_t *loop, tl_stream_handler_t handler,
                           void *ctx, const char *host, const char *port,
                           const tl_stream_options_t *opts, tl_future_t **out) {
    tl_stream_options_t o;
    sserv_t *v;
    int rc = sserv_new(loop, handler, ctx, opts, &v, &o);
    if (rc)
        return rc;
    tl_future_t *f;
    if ((rc = tl_create_server(loop, factory, v, host, port, &o.server, &f))) {
        sserv_unref(v);
        return rc;
    }
    if ((rc = tl_future_add_done_callback(f, on_server_made, v))) {
        tl_future_cancel(f, NULL);
        void *srv;
        if (tl_future_result(f, &srv) == 0)
            tl_server_free(srv);
        tl_future_unref(f);
        sserv_unref(v);
        return rc;
    }
    *out = f;
    return 0;
}
