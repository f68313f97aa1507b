/*
 * Making stream connections: asyncio's loop.create_connection (resolve,
 * then _connect_sock per address) with the attempts raced the way
 * staggered.staggered_race races them (Happy Eyeballs, RFC 8305), and the
 * one-address and Unix forms.
 *
 * A connection being made is a future of its own class (struct conn): the
 * future the caller gets. Its life:
 *
 *   resolving   tl_getaddrinfo's future is pending with our done callback
 *               (numeric hosts skip this: they are parsed at once);
 *   connecting  the addresses, ordered (families interleaved, RFC 8305
 *               section 4), are tried in turn; each attempt is a netstack
 *               socket whose handler->connected reports the outcome. The
 *               next attempt starts when the latest one fails, or when
 *               the Happy Eyeballs delay since the latest start has passed
 *               (a timer), whichever comes first (staggered_race's rule);
 *               with a negative delay only the failure starts it;
 *   done        the first attempt that connects wins: every other attempt
 *               is closed, the timer cancelled, the socket becomes a
 *               stream transport (connection_made is scheduled), and then
 *               the future gets the transport as its result. The ready
 *               queue is FIFO, so connection_made runs before the future's
 *               done callbacks (asyncio's create_connection also returns
 *               after connection_made ran). When every attempt failed, the
 *               future fails with the error of the attempt that failed
 *               last (when all failed alike, that common error); if the
 *               errors differ, the message lists each address and its
 *               error, as asyncio's "Multiple exceptions" OSError does.
 *
 * Cancelling the future stops everything at once: the resolution job is
 * cancelled, the attempts are closed, the timer is cancelled, and the
 * protocol sees nothing (no transport was made). Errors known before any
 * attempt (no address of a usable family) fail the future too; only bad
 * arguments and allocation failures are returned by the calls.
 *
 * What can call back into a conn: its sockets' handlers (none once
 * ops->close returned), the timer (none once tl_handle_cancel returned),
 * the resolver's done callback (which cannot be withdrawn once the future
 * scheduled it), the TLS engine's done (below; none after tl__tls_cancel)
 * and a retried completion (below). Until none of these can
 * reach it, the conn holds a reference on its own future ("busy") and is
 * registered as a closer with the transport layer, so a loop that closes
 * mid-connect closes the attempts before the netstack goes; the future
 * then stays pending (a closed loop completes nothing) and is freed at the
 * caller's last unref.
 *
 * Out of memory while completing the future (scheduling its callbacks)
 * leaves it pending: the completion is retried from the next iteration,
 * as the executor does; if the transport was made meanwhile its
 * connection_made still comes first.
 *
 * TLS (opts->tls): the options are copied at the call (the context
 * referenced, server_hostname duplicated, with create_connection's host
 * kept as the default name: NULL for the one-address and Unix forms). The
 * winning socket becomes a stream transport with an inert protocol, which
 * tl__tls_wrap hands to the engine; the conn stays busy ("handshaking")
 * until the engine's done callback, which completes the future with the
 * TLS transport (its connection_made is already queued, so it still runs
 * before the future's callbacks) or fails it with the handshake's error.
 * Cancelling the future then is tl__tls_cancel (the wrapped transport is
 * aborted, done never comes). A loop that closes mid-handshake gets done
 * with TL_ECLOSED inside tl_loop_close: the future stays pending, as for
 * any connection the loop's close cut short.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "../core/alloc.h"
#include "../future/future_int.h"
#include "../loop/loop_int.h"
#include "../tls/tls_int.h"
#include "connect_int.h"
#include "server_int.h"
#include "transport_int.h"

/* RFC 8305's suggested Connection Attempt Delay, asyncio's choice. */
#define DEFAULT_DELAY_NS INT64_C(250000000)

typedef struct conn conn_t;

typedef struct attempt {
    conn_t *conn;
    tl_ns_sock_t *sock; /* open while connecting */
    int error;          /* why it failed; 0 while not failed */
} attempt_t;

struct conn {
    struct tl_future base; /* first: the future the caller gets */
    tl_loop_t *loop;
    const tl_netstack_ops_t *ops;
    void *ns;
    const tl_protocol_t *proto; /* the caller's table (get_protocol) */
    void *proto_ctx;
    const char *kind; /* "tcp" or "unix" */
    tl_connect_options_t o; /* normalised; o.local_addr -> local */
    tl_sockaddr_t local;
    tl__closer_t closer;

    tl_future_t *resolve; /* pending resolution, or NULL */
    tl_sockaddr_t *addrs; /* n addresses in the order tried ... */
    attempt_t *att;       /* ... and their attempts (one allocation) */
    size_t n, next, live; /* next to start; attempts connecting */
    tl_handle_t timer;    /* the Happy Eyeballs delay, or 0 */
    int last_error;

    tl_tls_options_t tls; /* the copy, when has_tls */
    char *host;           /* create_connection's host: the default name */
    tl__tls_t *hs;        /* the handshake in progress, or NULL */

    tl_transport_t *made; /* the transport while delivery is retried */
    int outcome;          /* 0: made; else the error to deliver */
    char *message;        /* for a failure whose attempts' errors differ */

    unsigned busy : 1;       /* holds its reference, closer registered */
    unsigned finished : 1;   /* no attempt, timer or resolution running */
    unsigned cb_pending : 1; /* our callback on resolve may still run */
    unsigned retrying : 1;   /* a completion retry is queued */
    unsigned made_ref : 1;   /* we hold a reference on made */
    unsigned has_tls : 1;    /* opts->tls was given */
    unsigned handshaking : 1; /* the engine's done callback is owed */
    unsigned loop_gone : 1;  /* the loop closed (deliver nothing) */
};

static void conn_connected(void *ctx, int status);
static const tl_ns_handler_t attempt_handler = {NULL, NULL, conn_connected};

/* ---- addresses ------------------------------------------------------- */

static int family_of(const tl_sockaddr_t *a) { return tl_sockaddr_family(a); }

static int addr_valid(const tl_sockaddr_t *a) {
    return a->len > 0 && a->len <= sizeof(a->u.bytes);
}

/* Addresses to try, wherever they are: n of them, stride bytes apart
 * (an array of tl_sockaddr_t, or the addr members of tl_addrinfo_t). */
typedef struct addrs {
    const char *base;
    size_t stride, n;
} addrs_t;

static const tl_sockaddr_t *addr_at(const addrs_t *s, size_t i) {
    return (const tl_sockaddr_t *)(const void *)(s->base + i * s->stride);
}

/* "127.0.0.1:80", "[::1]:80", a path: for messages. */
static void addr_text(const tl_sockaddr_t *a, char *buf, size_t len) {
    char host[112];
    int port = 0;
    if (tl_sockaddr_to_string(a, host, sizeof host, &port) < 0)
        snprintf(buf, len, "?");
    else if (family_of(a) == TL_AF_INET6)
        snprintf(buf, len, "[%s]:%d", host, port);
    else if (family_of(a) == TL_AF_INET)
        snprintf(buf, len, "%s:%d", host, port);
    else
        snprintf(buf, len, "%s", host);
}

/* Order src[idx[0..n)] into dst: families interleaved as asyncio's
 * _interleave_addrinfos does (first the first `first - 1` addresses of the
 * first family, then one of each family in turn, families in the order
 * they first appear); first <= 0: as given. */
static void order_addrs(tl_sockaddr_t *dst, const addrs_t *src,
                        const size_t *idx, size_t n, int first,
                        unsigned char *used) {
    size_t out = 0;
    if (first <= 0) {
        for (size_t i = 0; i < n; i++)
            dst[out++] = *addr_at(src, idx[i]);
        return;
    }
    memset(used, 0, n);
    int f0 = family_of(addr_at(src, idx[0]));
    for (size_t i = 0; i < n && out < (size_t)first - 1; i++)
        if (family_of(addr_at(src, idx[i])) == f0) {
            dst[out++] = *addr_at(src, idx[i]);
            used[i] = 1;
        }
    /* Rounds: each takes the next unused address of every family, the
     * families in order of first appearance (that is, of their first
     * address in the list, used or not). */
    while (out < n) {
        int seen[8];
        size_t nseen = 0;
        for (size_t i = 0; i < n; i++) {
            int f = family_of(addr_at(src, idx[i]));
            size_t k = 0;
            while (k < nseen && seen[k] != f)
                k++;
            if (k < nseen)
                continue; /* this family already took its turn */
            if (nseen < sizeof(seen) / sizeof(seen[0]))
                seen[nseen++] = f;
            for (size_t j = i; j < n; j++)
                if (!used[j] && family_of(addr_at(src, idx[j])) == f) {
                    dst[out++] = *addr_at(src, idx[j]);
                    used[j] = 1;
                    break;
                }
        }
    }
}

/* ---- the conn's life --------------------------------------------------- */

static void resolved(tl_future_t *f, void *ctx);

/* Let go once nothing can call back into c any more. May free c. */
static void settle(conn_t *c) {
    if (!c->finished || c->cb_pending || c->retrying || c->handshaking ||
        !c->busy)
        return;
    c->busy = 0;
    tl__transport_remove_closer(c->loop, &c->closer);
    if (c->resolve) {
        tl_future_unref(c->resolve);
        c->resolve = NULL;
    }
    tl_future_unref(&c->base);
}

/* Stop the resolution, the timer and every attempt still connecting. */
static void stop(conn_t *c) {
    c->finished = 1;
    if (c->timer) {
        tl_handle_cancel(c->loop, c->timer);
        c->timer = 0;
    }
    for (size_t i = 0; i < c->n; i++)
        if (c->att[i].sock) {
            c->ops->close(c->att[i].sock, 1);
            c->att[i].sock = NULL;
        }
    c->live = 0;
    if (c->resolve && c->cb_pending) {
        /* Withdraw first, so the cancel below schedules nothing of ours;
         * a callback already scheduled still runs and finds c finished. */
        if (tl_future_remove_done_callback(c->resolve, resolved, c) > 0)
            c->cb_pending = 0;
        tl_future_cancel(c->resolve, NULL);
    }
}

static void drop_made(conn_t *c) {
    if (c->made_ref)
        tl_transport_unref(c->made);
    c->made_ref = 0;
    c->made = NULL;
}

static void retry_cb(void *ctx);
static void retry_drop(void *ctx);

static int complete(conn_t *c) {
    if (c->outcome == 0)
        return tl__future_complete(&c->base, TL__FUT_RESULT, c->made, NULL, 0,
                                   NULL);
    if (c->outcome == TL_ECANCELLED)
        return tl__future_complete(&c->base, TL__FUT_CANCELLED, NULL, NULL, 0,
                                   NULL);
    int rc = tl__future_complete(&c->base, TL__FUT_ERROR, NULL, NULL,
                                 c->outcome, c->message);
    if (rc == TL_ENOMEM && c->message) /* the copy of the message, maybe */
        rc = tl__future_complete(&c->base, TL__FUT_ERROR, NULL, NULL,
                                 c->outcome, NULL);
    return rc;
}

/* Give the future c's outcome, or queue a retry when that needs memory
 * there is none of. */
static void deliver(conn_t *c) {
    int rc = complete(c);
    if (rc == TL_ENOMEM) {
        if (c->made && !c->made_ref && tl_transport_ref(c->made) == 0)
            c->made_ref = 1;
        if (tl__loop_call_soon_drop(c->loop, retry_cb, retry_drop, c) == 0) {
            c->retrying = 1;
            return;
        }
    }
    if (rc != 0 && rc != TL_ESTATE)
        tl__loop_report(c->loop, "the outcome of a connection was lost", rc);
    drop_made(c);
    tl__free(c->message);
    c->message = NULL;
}

static void retry_cb(void *ctx) {
    conn_t *c = ctx;
    c->retrying = 0;
    if (c->base.state == TL__FUT_PENDING) {
        deliver(c);
    } else {
        drop_made(c);
        tl__free(c->message);
        c->message = NULL;
    }
    settle(c);
}

/* The loop closes before the retry ran: its closer settles c next. */
static void retry_drop(void *ctx) {
    conn_t *c = ctx;
    c->retrying = 0;
    drop_made(c);
}

static void finish(conn_t *c, tl_transport_t *t, int error) {
    stop(c);
    c->made = t;
    c->outcome = error;
    deliver(c);
    settle(c);
}

/* The error the future fails with once every attempt failed: the last
 * attempt's, with a message naming every address when they differ. */
static void fail_all(conn_t *c) {
    int differ = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->att[i].error && c->att[i].error != c->last_error)
            differ = 1;
    if (differ) {
        char buf[1024];
        size_t len = (size_t)snprintf(buf, sizeof buf, "multiple errors:");
        for (size_t i = 0; i < c->n && len < sizeof buf; i++) {
            char a[128];
            addr_text(&c->addrs[i], a, sizeof a);
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s %s: %s",
                                    i ? ";" : "", a,
                                    tl_strerror(c->att[i].error));
        }
        c->message = tl__strdup(buf); /* NULL: no message, that's all */
    }
    finish(c, NULL, c->last_error);
}

static void attempt_failed(conn_t *c, attempt_t *a, int error) {
    a->error = error;
    c->last_error = error;
    if (tl_loop_get_debug(c->loop) > 0) {
        char msg[192], s[128];
        addr_text(&c->addrs[a - c->att], s, sizeof s);
        snprintf(msg, sizeof msg, "connecting to %s failed", s);
        tl__loop_report(c->loop, msg, error);
    }
}

static void delay_passed(void *ctx);
static void start_handshake(conn_t *c, tl_transport_t *lower);

/* Start the next attempt; those that fail at once are skipped. When none
 * is left and none is connecting, the connection failed. May free c. */
static void start_next(conn_t *c) {
    while (c->next < c->n) {
        attempt_t *a = &c->att[c->next];
        const tl_sockaddr_t *to = &c->addrs[c->next++];
        tl_ns_sock_t *s = NULL;
        int rc = c->ops->connect(c->ns, to, c->o.local_addr, &attempt_handler,
                                 a, &s);
        if (rc == 0) {
            a->sock = s;
            c->live++;
            /* No timer (no memory): the next one waits for this one to
             * fail, as with Happy Eyeballs off. */
            if (c->next < c->n && c->o.happy_eyeballs_delay_ns >= 0)
                tl_loop_call_later(c->loop, c->o.happy_eyeballs_delay_ns,
                                   delay_passed, c, &c->timer);
            return;
        }
        attempt_failed(c, a, rc);
    }
    if (c->live == 0)
        fail_all(c);
}

static void delay_passed(void *ctx) {
    conn_t *c = ctx;
    c->timer = 0;
    start_next(c);
}

/* The first attempt that connected: it becomes the transport. */
static void win(conn_t *c, attempt_t *a) {
    tl_ns_sock_t *s = a->sock;
    a->sock = NULL;
    stop(c); /* closes the other attempts */
    int tcp = strcmp(c->kind, "tcp") == 0;
    if (tcp && c->o.keepalive > 0)
        c->ops->setopt(s, TL_NS_OPT_KEEPALIVE, 1);
    /* Under TLS the socket's transport is the engine's: until the wrap it
     * carries a protocol that does nothing (it may see connection_made). */
    static const tl_protocol_t inert = {.size = sizeof(tl_protocol_t)};
    tl_transport_t *t = NULL;
    int rc = tl__stream_transport_new(c->loop, c->ops, s,
                                      c->has_tls ? &inert : c->proto,
                                      c->has_tls ? NULL : c->proto_ctx,
                                      c->kind, &t);
    if (rc) { /* the socket is closed */
        finish(c, NULL, rc);
        return;
    }
    if (tcp && c->o.nodelay < 0)
        c->ops->setopt(s, TL_NS_OPT_NODELAY, 0);
    if (c->has_tls) {
        start_handshake(c, t);
        return;
    }
    finish(c, t, 0);
}

/* The engine's answer: the TLS transport, or the handshake's error. */
static void handshake_done(void *arg, int error, tl_transport_t *tls) {
    conn_t *c = arg;
    const char *why = error ? tl__tls_error_message(c->hs) : NULL;
    c->hs = NULL;
    c->handshaking = 0;
    if (c->loop_gone || tl_loop_is_closed(c->loop) == 1) {
        settle(c); /* a closed loop completes nothing */
        return;
    }
    c->made = error ? NULL : tls;
    c->outcome = error;
    tl__free(c->message);
    c->message = why ? tl__strdup(why) : NULL; /* NULL: no message, that's all */
    deliver(c);
    settle(c);
}

static void start_handshake(conn_t *c, tl_transport_t *lower) {
    c->handshaking = 1;
    int rc = tl__tls_wrap(lower, &c->tls, c->host, c->proto, c->proto_ctx,
                          handshake_done, c, &c->hs);
    if (rc) { /* lower is still ours */
        c->handshaking = 0;
        c->hs = NULL;
        tl_transport_abort(lower);
        finish(c, NULL, rc);
    }
}

static void conn_connected(void *ctx, int status) {
    attempt_t *a = ctx;
    conn_t *c = a->conn;
    if (status == 0) {
        win(c, a);
        return;
    }
    c->ops->close(a->sock, 1);
    a->sock = NULL;
    c->live--;
    attempt_failed(c, a, status);
    /* The latest attempt failed: the next one need not wait for the
     * delay (staggered_race). An older one failing changes nothing. */
    if (a == &c->att[c->next - 1] || c->live == 0) {
        if (c->timer) {
            tl_handle_cancel(c->loop, c->timer);
            c->timer = 0;
        }
        start_next(c);
    }
}

/* Allocate the address list and attempts for up to n addresses. */
static int alloc_addrs(conn_t *c, size_t n) {
    size_t bytes = n * (sizeof(tl_sockaddr_t) + sizeof(attempt_t));
    if (n == 0 || bytes / n != sizeof(tl_sockaddr_t) + sizeof(attempt_t))
        return TL_ENOMEM;
    void *p = tl__calloc(1, bytes);
    if (p == NULL)
        return TL_ENOMEM;
    c->addrs = p;
    c->att = (attempt_t *)(void *)(c->addrs + n);
    return 0;
}

/* Take the usable addresses of src in the order to try them, and start.
 * Errors (TL_ENOMEM, or none usable) fail the future. May free c. */
static void start_addrs(conn_t *c, const addrs_t *src) {
    size_t n = src->n;
    int rc = 0;
    size_t *idx = n ? tl__malloc(n * (sizeof(size_t) + 1)) : NULL;
    if (n && idx == NULL)
        rc = TL_ENOMEM;
    size_t m = 0;
    int want = c->o.local_addr ? family_of(c->o.local_addr) : TL_AF_UNSPEC;
    int wrong_local = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int f = family_of(addr_at(src, i));
        if (!addr_valid(addr_at(src, i)) ||
            (c->o.family != TL_AF_UNSPEC && f != c->o.family))
            continue;
        if (want != TL_AF_UNSPEC && f != want) {
            wrong_local = 1;
            continue;
        }
        idx[m++] = i;
    }
    if (rc == 0 && m == 0)
        rc = wrong_local ? TL_EAFNOSUPPORT : TL_EAI_NONAME;
    if (rc == 0)
        rc = alloc_addrs(c, m);
    if (rc) {
        tl__free(idx);
        finish(c, NULL, rc);
        return;
    }
    int first = c->o.interleave;
    if (first == 0)
        first = c->o.happy_eyeballs_delay_ns >= 0 ? 1 : -1;
    order_addrs(c->addrs, src, idx, m, first, (unsigned char *)(idx + n));
    tl__free(idx);
    c->n = m;
    for (size_t i = 0; i < m; i++)
        c->att[i].conn = c;
    start_next(c);
}

static void resolved(tl_future_t *f, void *ctx) {
    conn_t *c = ctx;
    c->cb_pending = 0;
    if (c->finished) {
        settle(c);
        return;
    }
    void *v = NULL;
    int rc = tl_future_result(f, &v);
    if (rc) {
        finish(c, NULL, rc);
        return;
    }
    const tl_addrinfo_list_t *list = v;
    addrs_t src = {NULL, sizeof(tl_addrinfo_t), 0};
    if (list && list->n) {
        src.base = (const char *)&list->items[0].addr;
        src.n = list->n;
    }
    start_addrs(c, &src); /* copies; the list goes with the future */
}

/* ---- the future's class ------------------------------------------------ */

static int conn_cancel(tl_future_t *f, const char *message) {
    conn_t *c = (conn_t *)f;
    int rc = tl__future_cancel_base(f, message);
    if (rc != 1)
        return rc;
    /* Cancelled while the completion was being retried: the caller will
     * never get the transport, so it goes (its protocol sees made, then
     * lost). */
    if (c->made)
        tl_transport_abort(c->made);
    if (c->hs) { /* mid-handshake: the engine aborts it, done never comes */
        tl__tls_cancel(c->hs);
        c->hs = NULL;
        c->handshaking = 0;
    }
    stop(c);
    settle(c);
    return 1;
}

static void conn_finalize(tl_future_t *f) {
    conn_t *c = (conn_t *)f;
    if (c->resolve)
        tl_future_unref(c->resolve);
    tl__free(c->message);
    tl__free(c->addrs);
    tl__free(c->host);
    if (c->has_tls)
        tl__tls_options_release(&c->tls);
}

static const tl__future_class_t conn_class = {conn_cancel, conn_finalize};

/* The loop closes mid-connect (before the netstack goes). */
static void conn_loop_closed(tl__closer_t *cl) {
    conn_t *c = (conn_t *)(void *)((char *)cl - offsetof(conn_t, closer));
    stop(c);
    c->cb_pending = 0; /* a closed loop runs no callback */
    c->retrying = 0;
    drop_made(c);
    /* A handshake in progress: the engine's done comes inside
     * tl_loop_close (TL_ECLOSED), and settles c. */
    c->loop_gone = 1;
    settle(c);
}

/* ---- making one ---------------------------------------------------------- */

static int check_proto(const tl_protocol_t *p) {
    return p == NULL || (p->size != 0 && p->size < sizeof(size_t)) ? TL_EINVAL
                                                                     : 0;
}

/* Read opts (NULL or a zeroed struct: defaults; only opts->size bytes are
 * read, so an older caller's shorter struct works; size 0 is the current
 * size, as for the server's options, so that a member set in a struct
 * whose size was left 0, such as tl_stream_options_t's `connect`, is not
 * silently ignored). */
static int read_opts(const tl_connect_options_t *in, tl_connect_options_t *o,
                     tl_sockaddr_t *local) {
    memset(o, 0, sizeof(*o));
    if (in) {
        size_t n = in->size && in->size < sizeof(*o) ? in->size : sizeof(*o);
        memcpy(o, in, n);
    }
    o->size = sizeof(*o);
    if (o->family != TL_AF_UNSPEC && o->family != TL_AF_INET &&
        o->family != TL_AF_INET6 && o->family != TL_AF_UNIX)
        return TL_EINVAL;
    if (o->happy_eyeballs_delay_ns == 0)
        o->happy_eyeballs_delay_ns = DEFAULT_DELAY_NS;
    if (o->local_addr) {
        if (!addr_valid(o->local_addr))
            return TL_EINVAL;
        *local = *o->local_addr;
        o->local_addr = local;
    }
    return 0;
}

/* A new conn with one reference for the caller and one of its own. */
static int conn_new(tl_loop_t *loop, const tl_protocol_t *proto,
                    void *proto_ctx, const tl_connect_options_t *opts,
                    const char *kind, conn_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if ((rc = check_proto(proto)) != 0)
        return rc;
    tl_connect_options_t o;
    tl_sockaddr_t local;
    if ((rc = read_opts(opts, &o, &local)) != 0)
        return rc;
    const tl_netstack_ops_t *ops;
    void *ns;
    if ((rc = tl__netstack(loop, &ops, &ns)) != 0)
        return rc;
    tl_tls_options_t tls;
    if (o.tls && (rc = tl__tls_options_copy(o.tls, TL_TLS_CLIENT, &tls)) != 0)
        return rc;
    tl_future_t *f;
    if ((rc = tl__future_create(loop, sizeof(conn_t), &conn_class, &f)) != 0) {
        if (o.tls)
            tl__tls_options_release(&tls);
        return rc;
    }
    conn_t *c = (conn_t *)f;
    if (o.tls) { /* from here on the finalize releases it */
        c->tls = tls;
        c->has_tls = 1;
        o.tls = &c->tls;
    }
    c->loop = loop;
    c->ops = ops;
    c->ns = ns;
    c->proto = proto;
    c->proto_ctx = proto_ctx;
    c->kind = kind;
    c->o = o;
    if (o.local_addr) {
        c->local = local;
        c->o.local_addr = &c->local;
    }
    c->closer.close = conn_loop_closed;
    if ((rc = tl__transport_add_closer(loop, &c->closer)) != 0) {
        tl_future_unref(f);
        return rc;
    }
    tl_future_ref(f);
    c->busy = 1;
    *out = c;
    return 0;
}

int tl__connect_addrs(tl_loop_t *loop, const tl_protocol_t *proto,
                      void *proto_ctx, const tl_sockaddr_t *addrs, size_t n,
                      const tl_connect_options_t *opts, const char *kind,
                      tl_future_t **out) {
    if (addrs == NULL || n == 0 || kind == NULL || out == NULL)
        return TL_EINVAL;
    conn_t *c;
    int rc = conn_new(loop, proto, proto_ctx, opts, kind, &c);
    if (rc)
        return rc;
    addrs_t src = {(const char *)addrs, sizeof(*addrs), n};
    start_addrs(c, &src); /* the caller's reference keeps c */
    *out = &c->base;
    return 0;
}

/* A decimal port, or -1. */
static int numeric_port(const char *s) {
    int v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || (v = v * 10 + (*s - '0')) > 65535)
            return -1;
    }
    return v;
}

int tl_create_connection(tl_loop_t *loop, const tl_protocol_t *proto,
                         void *proto_ctx, const char *host, const char *port,
                         const tl_connect_options_t *opts, tl_future_t **out) {
    if (host == NULL || port == NULL || out == NULL)
        return TL_EINVAL;
    if (opts && opts->size > offsetof(tl_connect_options_t, family) &&
        opts->family == TL_AF_UNIX)
        return TL_EINVAL; /* tl_create_unix_connection's */
    conn_t *c;
    int rc = conn_new(loop, proto, proto_ctx, opts, "tcp", &c);
    if (rc)
        return rc;
    /* TLS checks the certificate against host (server_hostname's default). */
    if (c->has_tls && (c->host = tl__strdup(host)) == NULL) {
        stop(c);
        settle(c);
        tl_future_unref(&c->base);
        return TL_ENOMEM;
    }
    /* A numeric host and port: no resolution (asyncio's _ipaddr_info). */
    tl_sockaddr_t addr;
    int p = numeric_port(port);
    if (p >= 0 && tl_sockaddr_from_ip(host, p, &addr) == 0) {
        addrs_t src = {(const char *)&addr, sizeof(addr), 1};
        start_addrs(c, &src);
        *out = &c->base;
        return 0;
    }
    tl_addrinfo_hints_t hints = {.size = sizeof(hints),
                                 .family = c->o.family,
                                 .socktype = TL_SOCK_STREAM};
    tl_future_t *rf = NULL;
    rc = tl_getaddrinfo(loop, host, port, &hints, &rf);
    if (rc == 0 && (rc = tl_future_add_done_callback(rf, resolved, c)) != 0) {
        tl_future_cancel(rf, NULL);
        tl_future_unref(rf);
    }
    if (rc) {
        stop(c);
        settle(c);                 /* its own reference */
        tl_future_unref(&c->base); /* the caller's */
        return rc;
    }
    c->resolve = rf;
    c->cb_pending = 1;
    *out = &c->base;
    return 0;
}

int tl_create_connection_addr(tl_loop_t *loop, const tl_protocol_t *proto,
                              void *proto_ctx, const tl_sockaddr_t *addr,
                              const tl_connect_options_t *opts,
                              tl_future_t **out) {
    if (addr == NULL || out == NULL || !addr_valid(addr))
        return TL_EINVAL;
    int f = family_of(addr);
    if (f == TL_AF_UNSPEC)
        return TL_EAFNOSUPPORT;
    tl_connect_options_t o;
    tl_sockaddr_t local;
    int rc = read_opts(opts, &o, &local);
    if (rc)
        return rc;
    o.family = TL_AF_UNSPEC; /* the address says it */
    return tl__connect_addrs(loop, proto, proto_ctx, addr, 1, &o,
                             f == TL_AF_UNIX ? "unix" : "tcp", out);
}

int tl_create_unix_connection(tl_loop_t *loop, const tl_protocol_t *proto,
                              void *proto_ctx, const char *path,
                              const tl_connect_options_t *opts,
                              tl_future_t **out) {
    if (path == NULL || out == NULL)
        return TL_EINVAL;
    tl_sockaddr_t addr;
    int rc = tl_sockaddr_from_unix(path, &addr);
    if (rc)
        return rc;
    tl_connect_options_t o;
    tl_sockaddr_t local;
    if ((rc = read_opts(opts, &o, &local)) != 0)
        return rc;
    o.family = TL_AF_UNSPEC;
    return tl__connect_addrs(loop, proto, proto_ctx, &addr, 1, &o, "unix",
                             out);
}
