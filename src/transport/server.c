/*
 * Servers (asyncio's Server, 3.12/3.13 semantics): listening sockets of the
 * loop's netstack, the connections they accepted, closing both.
 *
 * Accepting: each connection gets a transport allocated first and then a
 * protocol from the factory, so a refusal or a lack of memory closes just
 * that connection and the server goes on. Accept errors (TL_EMFILE...) go
 * to the loop's exception handler; the stack backs off by itself.
 *
 * Lifetime: the server is the caller's (tl_server_free) but lives on while
 * connections it accepted are open, since they point at it and its
 * wait_closed futures complete when the last one goes (3.12: done once the
 * server is closed AND every connection is gone). The listeners are
 * registered with the loop's transport layer (a closer), so a loop that
 * closes first closes them.
 *
 * TLS (opts->tls): the server keeps a copy of the options and a reference
 * to the context until it is freed. An accepted socket becomes a stream
 * transport with an inert protocol, handed to the engine (tl__tls_wrap);
 * the handshake is tracked on the server's list of handshakes (one small
 * record each), which wait_closed waits for and close_clients /
 * abort_clients give up (tl__tls_cancel: the socket is aborted). Only when
 * the handshake is done does the factory run, and its protocol is put on
 * the TLS transport before that transport's connection_made (queued by
 * the engine) runs; so a protocol exists only for a connection that is
 * made, and is owed connection_made and connection_lost as over TCP, while
 * a failed handshake costs the application nothing (it is reported to the
 * loop's exception handler in debug mode). The TLS transport then joins
 * the server's connections (t->server), so close_clients closes it
 * (close_notify) and abort_clients aborts it. A handshake that ends after
 * tl_server_free is dropped without calling the factory, whose ctx the
 * caller may have released.
 */
#define _POSIX_C_SOURCE 200809L
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "../loop/loop_int.h"
#include "../tls/tls_int.h"
#include "server_int.h"
#include "stream_transport.h"
#include "tulip/task.h"

/* A TLS handshake of an accepted connection, in progress. */
typedef struct handshake {
    tl_server_t *srv;
    tl__tls_t *h;
    struct handshake *prev, *next;
} handshake_t;

typedef struct listener {
    tl_server_t *srv;
    tl_ns_sock_t *sock;
    tl_sockaddr_t addr;
} listener_t;

struct tl_server {
    tl_loop_t *loop;
    tl__closer_t closer; /* first: the closer's address gives the server */
    const tl_netstack_ops_t *ops;
    void *state;
    tl_protocol_factory_t factory;
    void *factory_ctx;
    int flavour;  /* TL__STREAM_TCP or TL__STREAM_UNIX */
    int nodelay;  /* TCP: set on accepted connections (else cleared) */
    listener_t *ls;
    size_t nls;
    char *unix_path; /* a filesystem socket to remove on close */
    unsigned serving : 1, closed : 1, freed : 1, registered : 1;
    tl_transport_t *conns;
    size_t nconns;
    tl_future_t **waiters; /* wait_closed futures (one reference each) */
    size_t nwaiters, waiters_cap;
    tl_future_t *forever; /* serve_forever's, while one runs */
    tl_tls_options_t tls; /* the copy, when has_tls */
    int has_tls;
    handshake_t *hss;     /* handshakes in progress ... */
    size_t nhss;          /* ... and how many */
};

#define SERVER_OF(c) \
    ((tl_server_t *)((char *)(c) - offsetof(tl_server_t, closer)))

/* ---- lifetime --------------------------------------------------------- */

static void server_free(tl_server_t *s) {
    for (size_t i = 0; i < s->nwaiters; i++)
        tl_future_unref(s->waiters[i]);
    tl__free(s->waiters);
    tl__free(s->ls);
    tl__free(s->unix_path);
    if (s->has_tls)
        tl__tls_options_release(&s->tls);
    tl_loop_t *loop = s->loop;
    tl__free(s);
    tl_loop_unref(loop);
}

static void maybe_free(tl_server_t *s) {
    if (s->freed && s->closed && s->nconns == 0 && s->nhss == 0 &&
        s->forever == NULL)
        server_free(s);
}

/* Closed and no connection left: the wait_closed futures are done. */
static void wakeup(tl_server_t *s) {
    if (!s->closed || s->nconns || s->nhss)
        return;
    for (size_t i = 0; i < s->nwaiters; i++) {
        tl_future_set_result(s->waiters[i], NULL, NULL);
        tl_future_unref(s->waiters[i]);
    }
    s->nwaiters = 0;
}

static void close_listeners(tl_server_t *s) {
    for (size_t i = 0; i < s->nls; i++) {
        if (s->ls[i].sock)
            s->ops->close(s->ls[i].sock, 0);
        s->ls[i].sock = NULL;
    }
    if (s->unix_path) {
        struct stat sb;
        if (stat(s->unix_path, &sb) == 0 && S_ISSOCK(sb.st_mode))
            unlink(s->unix_path);
        tl__free(s->unix_path);
        s->unix_path = NULL;
    }
}

static void do_close(tl_server_t *s) {
    if (s->closed)
        return;
    s->closed = 1;
    s->serving = 0;
    if (s->registered) {
        tl__transport_remove_closer(s->loop, &s->closer);
        s->registered = 0;
    }
    close_listeners(s);
    if (s->forever) {
        /* serve_forever returns 0: the server was closed. */
        tl_future_set_result(s->forever, NULL, NULL);
    }
    wakeup(s);
}

/* The loop closes: the closer was already unlinked. */
static void on_loop_close(tl__closer_t *c) {
    tl_server_t *s = SERVER_OF(c);
    s->registered = 0;
    do_close(s);
    maybe_free(s);
}

void tl__server_conn_lost(tl_transport_t *t) {
    tl_server_t *s = t->server;
    if (t->sprev)
        t->sprev->snext = t->snext;
    else
        s->conns = t->snext;
    if (t->snext)
        t->snext->sprev = t->sprev;
    t->sprev = t->snext = NULL;
    t->server = NULL;
    s->nconns--;
    wakeup(s);
    maybe_free(s);
}

/* ---- accepting -------------------------------------------------------- */

static void report(tl_server_t *s, const char *msg, int error) {
    tl_exception_context_t c = {.size = sizeof(c), .message = msg,
                                .error = error};
    tl_loop_call_exception_handler(s->loop, &c);
}

/* Put t (accepted, on the server's list from now on) in s's connections. */
static void track(tl_server_t *s, tl_transport_t *t) {
    t->server = s;
    t->sprev = NULL;
    t->snext = s->conns;
    if (s->conns)
        s->conns->sprev = t;
    s->conns = t;
    s->nconns++;
}

static void hs_unlink(handshake_t *hs) {
    tl_server_t *s = hs->srv;
    if (hs->prev)
        hs->prev->next = hs->next;
    else
        s->hss = hs->next;
    if (hs->next)
        hs->next->prev = hs->prev;
    s->nhss--;
    tl__free(hs);
}

/* The engine's answer for an accepted connection. */
static void hs_done(void *arg, int error, tl_transport_t *tls) {
    handshake_t *hs = arg;
    tl_server_t *s = hs->srv;
    if (error && error != TL_ECLOSED && tl_loop_get_debug(s->loop) > 0) {
        const char *why = tl__tls_error_message(hs->h);
        char msg[320];
        snprintf(msg, sizeof msg,
                 "TLS handshake of an accepted connection failed%s%s",
                 why ? ": " : "", why ? why : "");
        report(s, msg, error);
    }
    hs_unlink(hs);
    if (error) {
        /* dropped: the engine aborted the socket */
    } else if (s->freed) {
        tl_transport_abort(tls); /* the factory's ctx may be gone */
    } else {
        const tl_protocol_t *proto = NULL;
        void *pctx = NULL;
        int rc = s->factory(s->factory_ctx, &proto, &pctx);
        if (rc == 0)
            rc = tl_transport_set_protocol(tls, proto, pctx);
        if (rc) /* refused (or a bad table): close it, go on */
            tl_transport_close(tls);
        else
            track(s, tls);
    }
    wakeup(s);
    maybe_free(s);
}

/* TLS over the accepted transport t (its protocol the inert one). */
static void start_handshake(tl_server_t *s, tl_transport_t *t) {
    static const tl_protocol_t none = {.size = sizeof(tl_protocol_t)};
    handshake_t *hs = tl__calloc(1, sizeof(*hs));
    int rc = hs ? 0 : TL_ENOMEM;
    if (rc == 0) {
        hs->srv = s;
        rc = tl__tls_wrap(t, &s->tls, NULL, &none, NULL, hs_done, hs, &hs->h);
    }
    if (rc) { /* t is still ours */
        tl__free(hs);
        tl_transport_abort(t);
        report(s, "no memory for an accepted connection", rc);
        return;
    }
    hs->next = s->hss;
    if (s->hss)
        s->hss->prev = hs;
    s->hss = hs;
    s->nhss++;
}

/* Give up every handshake in progress (their sockets are aborted). */
static void cancel_handshakes(tl_server_t *s) {
    while (s->hss) {
        handshake_t *hs = s->hss;
        tl__tls_cancel(hs->h);
        hs_unlink(hs);
    }
    wakeup(s);
}

static void on_accept(void *ctx, tl_ns_sock_t *conn, int status) {
    listener_t *l = ctx;
    tl_server_t *s = l->srv;
    if (status < 0) {
        report(s, "accepting a connection failed", status);
        return;
    }
    if (!s->serving) { /* a late one */
        s->ops->close(conn, 1);
        return;
    }
    /* The transport is set up completely (handler, connection_made
     * scheduled) before the factory runs: once a protocol exists it is
     * owed connection_made and connection_lost, where it frees its ctx,
     * so nothing may fail after the factory (an attach failing there used
     * to leak the protocol's ctx: a stream, for start_server). Until then
     * the transport carries an empty protocol, which a refusal closes
     * without a callback to anyone. */
    static const tl_protocol_t none = {.size = sizeof(tl_protocol_t)};
    tl_transport_t *t;
    int rc = tl__stream_alloc(s->loop, s->ops, s->flavour, &none, NULL, &t);
    if (rc == 0 && (rc = s->ops->set_handler(conn, tl__stream_handler(), t)))
        tl__stream_free_unattached(t);
    if (rc) {
        s->ops->close(conn, 1);
        report(s, "no memory for an accepted connection", rc);
        return;
    }
    if ((rc = tl__stream_attach(t, conn)) != 0) { /* conn is closed */
        report(s, "no memory for an accepted connection", rc);
        return;
    }
    if (s->flavour == TL__STREAM_TCP && !s->nodelay)
        s->ops->setopt(conn, TL_NS_OPT_NODELAY, 0);
    if (s->has_tls) {
        start_handshake(s, t);
        return;
    }
    const tl_protocol_t *proto = NULL;
    void *pctx = NULL;
    rc = s->factory(s->factory_ctx, &proto, &pctx);
    if (rc == 0)
        rc = tl_transport_set_protocol(t, proto, pctx);
    if (rc) {
        /* Refused (or a bad table): close that connection, go on. */
        tl_transport_close(t);
        return;
    }
    track(s, t);
}

static const tl_ns_handler_t listen_handler = {.accept = on_accept};

/* ---- making ----------------------------------------------------------- */

static int addr_port(const tl_sockaddr_t *a) {
    const struct sockaddr *sa = (const struct sockaddr *)&a->u;
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -1;
}

static void set_port(tl_sockaddr_t *a, int port) {
    struct sockaddr *sa = (struct sockaddr *)&a->u;
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

/* path, or '@name' for a Linux abstract name, as an AF_UNIX address. */
static int unix_addr(const char *path, tl_sockaddr_t *a) {
    struct sockaddr_un *un = (struct sockaddr_un *)&a->u;
    size_t n = strlen(path);
    if (n == 0)
        return TL_EINVAL;
    if (n >= sizeof(un->sun_path))
        return TL_ENAMETOOLONG;
    memset(a, 0, sizeof(*a));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n);
    if (path[0] == '@') {
        un->sun_path[0] = '\0';
        a->len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        a->len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

static int opt_on(int v, int dflt) {
    return v == TL_OPT_DEFAULT ? dflt : v > 0;
}

static int server_new(tl_loop_t *loop, tl_protocol_factory_t factory,
                      void *factory_ctx, const tl_server_options_t *o,
                      size_t n, tl_server_t **out) {
    const tl_netstack_ops_t *ops;
    void *state;
    int rc = tl__netstack(loop, &ops, &state);
    if (rc)
        return rc;
    tl_tls_options_t tls;
    if (o->tls && (rc = tl__tls_options_copy(o->tls, TL_TLS_SERVER, &tls)))
        return rc;
    tl_server_t *s = tl__calloc(1, sizeof(*s));
    if (s && (s->ls = tl__calloc(n ? n : 1, sizeof(*s->ls))) == NULL) {
        tl__free(s);
        s = NULL;
    }
    if (s == NULL) {
        if (o->tls)
            tl__tls_options_release(&tls);
        return TL_ENOMEM;
    }
    tl_loop_ref(loop); /* loop is checked: it cannot fail */
    if (o->tls) {
        s->tls = tls;
        s->has_tls = 1;
    }
    s->loop = loop;
    s->ops = ops;
    s->state = state;
    s->factory = factory;
    s->factory_ctx = factory_ctx;
    s->closer.close = on_loop_close;
    *out = s;
    return 0;
}

/* Listen on every address; all or nothing. skip_unsupported: an address
 * of a family the stack cannot open is left out (asyncio skips those),
 * as long as one is left. */
static int listen_all(tl_server_t *s, const tl_sockaddr_t *addrs, size_t n,
                      const tl_server_options_t *o, int skip_unsupported) {
    tl_ns_bind_options_t b = {.size = sizeof(b)};
    b.backlog = o->backlog > 0 ? o->backlog : 100;
    b.reuse_address = s->flavour == TL__STREAM_TCP && opt_on(o->reuse_address, 1);
    b.reuse_port = opt_on(o->reuse_port, 0);
    int rc = 0;
    /* Port 0 on several addresses: the first one's port for the rest
     * (retried a few times when that port is taken on another address). */
    for (int attempt = 0; attempt < 8; attempt++) {
        int port = -1;
        size_t i, made = 0;
        for (i = 0; i < n; i++) {
            listener_t *l = &s->ls[made];
            l->srv = s;
            l->addr = addrs[i];
            if (port > 0 && addr_port(&l->addr) == 0)
                set_port(&l->addr, port);
            const struct sockaddr *sa = (const struct sockaddr *)&l->addr.u;
            b.ipv6_only = sa->sa_family == AF_INET6;
            rc = s->ops->listen(s->state, &l->addr, &b, &listen_handler, l,
                                &l->sock);
            if (rc) {
                l->sock = NULL;
                if (skip_unsupported && rc == TL_EAFNOSUPPORT) {
                    rc = 0;
                    continue;
                }
                break;
            }
            made++;
            tl_sockaddr_t bound;
            if (s->ops->getaddr(l->sock, 0, &bound) == 0)
                l->addr = bound;
            if (port < 0 && addr_port(&addrs[i]) == 0)
                port = addr_port(&l->addr);
        }
        if (rc == 0 && made == 0)
            rc = TL_EAFNOSUPPORT;
        if (rc == 0) {
            s->nls = made;
            return 0;
        }
        for (size_t j = 0; j < made; j++) {
            s->ops->close(s->ls[j].sock, 1);
            s->ls[j].sock = NULL;
        }
        /* Only a port we chose for a later address can be retried. */
        if (!(rc == TL_EADDRINUSE && port > 0 && i < n &&
              addr_port(&addrs[i]) == 0))
            break;
    }
    return rc;
}

static int finish(tl_server_t *s, const tl_server_options_t *o,
                  tl_server_t **out) {
    int rc = tl__transport_add_closer(s->loop, &s->closer);
    if (rc)
        return rc;
    s->registered = 1;
    s->nodelay = opt_on(o->nodelay, 1);
    if (opt_on(o->start_serving, 1) && (rc = tl_server_start_serving(s))) {
        return rc;
    }
    *out = s;
    return 0;
}

/* Undo a server that failed before it was handed out. */
static void discard(tl_server_t *s) {
    s->freed = 1;
    do_close(s);
    maybe_free(s);
}

static int read_options(const tl_server_options_t *opts,
                        tl_server_options_t *o) {
    memset(o, 0, sizeof(*o));
    if (opts) {
        size_t n = opts->size ? opts->size : sizeof(*o);
        if (n < sizeof(size_t))
            return TL_EINVAL;
        memcpy(o, opts, n < sizeof(*o) ? n : sizeof(*o));
    }
    return 0;
}

static int create_addrs(tl_loop_t *loop, tl_protocol_factory_t factory,
                        void *factory_ctx, const tl_sockaddr_t *addrs,
                        size_t n, const tl_server_options_t *opts, int skip,
                        tl_server_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    tl_server_options_t o;
    if (factory == NULL || addrs == NULL || n == 0 || out == NULL ||
        read_options(opts, &o))
        return TL_EINVAL;
    tl_server_t *s;
    if ((rc = server_new(loop, factory, factory_ctx, &o, n, &s)) != 0)
        return rc;
    s->flavour = TL__STREAM_TCP;
    for (size_t i = 0; i < n; i++)
        if (((const struct sockaddr *)&addrs[i].u)->sa_family == AF_UNIX)
            s->flavour = TL__STREAM_UNIX;
    if ((rc = listen_all(s, addrs, n, &o, skip)) != 0 ||
        (rc = finish(s, &o, out)) != 0) {
        discard(s);
        return rc;
    }
    return 0;
}

int tl_create_server_addrs(tl_loop_t *loop, tl_protocol_factory_t factory,
                           void *factory_ctx, const tl_sockaddr_t *addrs,
                           size_t n, const tl_server_options_t *opts,
                           tl_server_t **out) {
    return create_addrs(loop, factory, factory_ctx, addrs, n, opts, 0, out);
}

/* ---- tl_create_server: resolve, then create_addrs ------------------------ */

typedef struct resolving {
    tl__closer_t closer; /* first */
    tl_loop_t *loop;
    tl_protocol_factory_t factory;
    void *factory_ctx;
    tl_server_options_t opts;
    tl_tls_options_t tls; /* opts.tls's copy (opts.tls points here) */
    tl_future_t *res; /* the caller's future (our reference) */
    tl_future_t *gai;
} resolving_t;

static void resolving_free(resolving_t *r) {
    tl__transport_remove_closer(r->loop, &r->closer);
    if (r->opts.tls)
        tl__tls_options_release(&r->tls);
    tl_future_unref(r->gai);
    tl_future_unref(r->res);
    tl__free(r);
}

/* The loop closes while resolving: nothing will call us any more. */
static void resolving_on_loop_close(tl__closer_t *c) {
    resolving_t *r = (resolving_t *)c;
    if (r->opts.tls)
        tl__tls_options_release(&r->tls);
    tl_future_unref(r->gai);
    tl_future_unref(r->res);
    tl__free(r);
}

static void resolved(tl_future_t *gai, void *ctx) {
    resolving_t *r = ctx;
    /* A caller that cancelled its future lets the resolution finish (it
     * cannot be withdrawn once a worker has it) and gets nothing. */
    if (tl_future_done(r->res)) {
        resolving_free(r);
        return;
    }
    const tl_addrinfo_list_t *list = NULL;
    int rc = tl_future_result(gai, (void **)&list);
    tl_sockaddr_t *addrs = NULL;
    size_t n = 0;
    if (rc == 0 && list->n == 0)
        rc = TL_EAI_NODATA;
    if (rc == 0 && (addrs = tl__calloc(list->n, sizeof(*addrs))) == NULL)
        rc = TL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < list->n; i++) {
        const tl_addrinfo_t *ai = &list->items[i];
        if (ai->socktype && ai->socktype != TL_SOCK_STREAM)
            continue;
        int dup = 0; /* asyncio makes a set of the answers */
        for (size_t j = 0; j < n && !dup; j++)
            dup = addrs[j].len == ai->addr.len &&
                  memcmp(&addrs[j].u, &ai->addr.u, ai->addr.len) == 0;
        if (!dup)
            addrs[n++] = ai->addr;
    }
    if (rc == 0 && n == 0)
        rc = TL_EAI_NODATA; /* answers, but none for a stream socket */
    tl_server_t *srv = NULL;
    if (rc == 0)
        rc = create_addrs(r->loop, r->factory, r->factory_ctx, addrs, n,
                          &r->opts, 1, &srv);
    tl__free(addrs);
    if (rc == 0 && (rc = tl_future_set_result(r->res, srv, NULL)) != 0)
        tl_server_free(srv);
    if (rc && tl_future_set_error(r->res, rc, NULL) != 0)
        tl__loop_report(r->loop, "create_server could not complete", rc);
    resolving_free(r);
}

int tl_create_server(tl_loop_t *loop, tl_protocol_factory_t factory,
                     void *factory_ctx, const char *host, const char *port,
                     const tl_server_options_t *opts, tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    tl_server_options_t o;
    if (factory == NULL || out == NULL || port == NULL ||
        read_options(opts, &o))
        return TL_EINVAL;
    resolving_t *r = tl__calloc(1, sizeof(*r));
    if (r == NULL)
        return TL_ENOMEM;
    if (o.tls && (rc = tl__tls_options_copy(o.tls, TL_TLS_SERVER, &r->tls))) {
        tl__free(r);
        return rc;
    }
    r->loop = loop;
    r->factory = factory;
    r->factory_ctx = factory_ctx;
    r->opts = o;
    if (o.tls)
        r->opts.tls = &r->tls;
    r->closer.close = resolving_on_loop_close;
    tl_addrinfo_hints_t h = {.size = sizeof(h), .family = o.family,
                             .socktype = TL_SOCK_STREAM,
                             .flags = TL_AI_PASSIVE};
    if ((rc = tl_future_new(loop, &r->res)) != 0) {
        if (r->opts.tls)
            tl__tls_options_release(&r->tls);
        tl__free(r);
        return rc;
    }
    if ((rc = tl_getaddrinfo(loop, host && *host ? host : NULL, port, &h,
                             &r->gai)) != 0 ||
        (rc = tl_future_add_done_callback(r->gai, resolved, r)) != 0 ||
        (rc = tl__transport_add_closer(loop, &r->closer)) != 0) {
        if (r->gai) {
            tl_future_remove_done_callback(r->gai, resolved, r);
            tl_future_cancel(r->gai, NULL);
        }
        tl_future_unref(r->gai);
        tl_future_unref(r->res);
        if (r->opts.tls)
            tl__tls_options_release(&r->tls);
        tl__free(r);
        return rc;
    }
    tl_future_ref(r->res);
    *out = r->res;
    return 0;
}

int tl_create_unix_server(tl_loop_t *loop, tl_protocol_factory_t factory,
                          void *factory_ctx, const char *path,
                          const tl_server_options_t *opts, tl_server_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    tl_server_options_t o;
    if (factory == NULL || path == NULL || out == NULL ||
        read_options(opts, &o))
        return TL_EINVAL;
    tl_sockaddr_t a;
    if ((rc = unix_addr(path, &a)) != 0)
        return rc;
    int abstract = path[0] == '@';
    if (!abstract) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
            /* A socket file: stale unless a server answers there. */
            if (tl__unix_path_in_use(path))
                return TL_EADDRINUSE;
            unlink(path);
        }
    }
    tl_server_t *s;
    if ((rc = server_new(loop, factory, factory_ctx, &o, 1, &s)) != 0)
        return rc;
    s->flavour = TL__STREAM_UNIX;
    if ((rc = listen_all(s, &a, 1, &o, 0)) != 0) {
        discard(s);
        return rc;
    }
    if (!abstract && (s->unix_path = tl__strdup(path)) == NULL)
        rc = TL_ENOMEM;
    if (rc || (rc = finish(s, &o, out)) != 0) {
        discard(s);
        return rc;
    }
    return 0;
}

/* ---- methods ---------------------------------------------------------- */

static int check(const tl_server_t *s) {
    if (s == NULL || s->freed)
        return TL_EINVAL;
    if (s->loop->owner != tl__thread_self())
        return TL_EWRONGTHREAD;
    return 0;
}

tl_loop_t *tl_server_get_loop(const tl_server_t *s) {
    return s ? s->loop : NULL;
}

int tl_server_start_serving(tl_server_t *s) {
    int rc = check(s);
    if (rc)
        return rc;
    if (s->closed)
        return TL_ECLOSED;
    if (s->serving)
        return 0;
    for (size_t i = 0; i < s->nls; i++) {
        if ((rc = s->ops->accept_start(s->ls[i].sock)) != 0) {
            while (i--)
                s->ops->accept_stop(s->ls[i].sock);
            return rc;
        }
    }
    s->serving = 1;
    return 0;
}

int tl_server_is_serving(const tl_server_t *s) {
    int rc = check(s);
    return rc ? rc : s->serving;
}

int tl_server_sockets(const tl_server_t *s, tl_sockaddr_t *addrs, size_t max) {
    int rc = check(s);
    if (rc)
        return rc;
    if (addrs == NULL && max)
        return TL_EINVAL;
    if (s->closed)
        return 0; /* asyncio: () once closed */
    for (size_t i = 0; i < s->nls && i < max; i++)
        addrs[i] = s->ls[i].addr;
    return (int)s->nls;
}

int tl_server_close(tl_server_t *s) {
    int rc = check(s);
    if (rc)
        return rc;
    do_close(s);
    return 0;
}

/* Closing or aborting a transport only schedules its connection_lost,
 * so the list does not change under these walks. */
int tl_server_close_clients(tl_server_t *s) {
    int rc = check(s);
    if (rc)
        return rc;
    for (tl_transport_t *t = s->conns; t; t = t->snext)
        if (!t->closing)
            tl_transport_close(t);
    cancel_handshakes(s);
    return 0;
}

int tl_server_abort_clients(tl_server_t *s) {
    int rc = check(s);
    if (rc)
        return rc;
    for (tl_transport_t *t = s->conns; t; t = t->snext)
        if (!t->lost)
            tl_transport_abort(t);
    cancel_handshakes(s);
    return 0;
}

int tl_server_wait_closed(tl_server_t *s, tl_future_t **out) {
    int rc = check(s);
    if (rc)
        return rc;
    if (out == NULL)
        return TL_EINVAL;
    tl_future_t *f;
    if ((rc = tl_future_new(s->loop, &f)) != 0)
        return rc;
    if (s->closed && s->nconns == 0 && s->nhss == 0) {
        if ((rc = tl_future_set_result(f, NULL, NULL)) != 0) {
            tl_future_unref(f);
            return rc;
        }
    } else {
        if ((rc = tl__grow((void **)&s->waiters, &s->waiters_cap,
                           s->nwaiters + 1, sizeof(*s->waiters))) != 0) {
            tl_future_unref(f);
            return rc;
        }
        tl_future_ref(f);
        s->waiters[s->nwaiters++] = f;
    }
    *out = f;
    return 0;
}

int tl_server_serve_forever(tl_server_t *s) {
    int rc = check(s);
    if (rc)
        return rc;
    if (tl_task_current() == NULL)
        return TL_ENOTASK;
    if (s->forever)
        return TL_ESTATE; /* asyncio: already being awaited */
    if (s->closed)
        return TL_ECLOSED;
    if ((rc = tl_server_start_serving(s)) != 0)
        return rc;
    tl_future_t *f;
    if ((rc = tl_future_new(s->loop, &f)) != 0)
        return rc;
    s->forever = f;
    rc = tl_await(f, NULL);
    s->forever = NULL;
    tl_future_unref(f);
    if (rc == TL_ECANCELLED || rc == TL_ECLOSED)
        do_close(s);
    maybe_free(s);
    return rc;
}

void tl_server_free(tl_server_t *s) {
    if (s == NULL || s->freed || s->loop->owner != tl__thread_self())
        return;
    s->freed = 1;
    do_close(s);
    maybe_free(s);
}

