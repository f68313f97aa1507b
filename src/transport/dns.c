/*
 * Name resolution through the executor (asyncio's loop.getaddrinfo and
 * getnameinfo), and the small address helpers.
 *
 * A query is a job on the loop's default executor. The worker resolves and
 * posts the answer back with a threadsafe call whose drop frees it if the
 * loop closed meanwhile; the caller's future gets the list with a
 * destructor, so whoever drops the last reference frees it. Numeric hosts
 * skip the executor (asyncio's _ipaddr_info fast path): the answer is made
 * at once and the future completed before it is returned.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>

#include "../core/alloc.h"
#include "../core/options.h"
#include "../loop/loop_int.h"
#include "tulip/dns.h"
#include "tulip/executor.h"

/* ---- addresses --------------------------------------------------------- */

int tl_sockaddr_from_native(const struct sockaddr *sa, size_t len,
                            tl_sockaddr_t *out) {
    if (sa == NULL || out == NULL || len == 0 || len > sizeof(out->u.bytes))
        return TL_EINVAL;
    memset(out, 0, sizeof(*out));
    memcpy(out->u.bytes, sa, len);
    out->len = (uint32_t)len;
    return 0;
}

int tl_sockaddr_from_ip(const char *ip, int port, tl_sockaddr_t *out) {
    if (ip == NULL || out == NULL || port < 0 || port > 65535)
        return TL_EINVAL;
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)out->u.bytes;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->len = sizeof(*v4);
        return 0;
    }
    /* IPv6, with an optional %scope: getaddrinfo with AI_NUMERICHOST
     * parses both and never touches the network. */
    if (strchr(ip, ':') == NULL)
        return TL_EINVAL;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_INET6;
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(ip, NULL, &hints, &res) != 0 || res == NULL)
        return TL_EINVAL;
    int rc = tl_sockaddr_from_native(res->ai_addr, res->ai_addrlen, out);
    freeaddrinfo(res);
    if (rc == 0)
        ((struct sockaddr_in6 *)(void *)out->u.bytes)->sin6_port =
            htons((uint16_t)port);
    return rc;
}

int tl_sockaddr_from_unix(const char *path, tl_sockaddr_t *out) {
    if (path == NULL || out == NULL || path[0] == '\0')
        return TL_EINVAL;
    memset(out, 0, sizeof(*out));
    struct sockaddr_un *un = (struct sockaddr_un *)(void *)out->u.bytes;
    size_t n = strlen(path);
    if (n >= sizeof(un->sun_path))
        return TL_ENAMETOOLONG;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n);
    if (path[0] == '@') {
        un->sun_path[0] = '\0'; /* abstract: the length says where it ends */
        out->len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        out->len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

int tl_sockaddr_family(const tl_sockaddr_t *a) {
    if (a == NULL || a->len < sizeof(sa_family_t))
        return TL_AF_UNSPEC;
    switch (((const struct sockaddr *)(const void *)a->u.bytes)->sa_family) {
    case AF_INET: return TL_AF_INET;
    case AF_INET6: return TL_AF_INET6;
    case AF_UNIX: return TL_AF_UNIX;
    default: return TL_AF_UNSPEC;
    }
}

int tl_sockaddr_port(const tl_sockaddr_t *a) {
    switch (tl_sockaddr_family(a)) {
    case TL_AF_INET:
        return ntohs(((const struct sockaddr_in *)(const void *)a->u.bytes)->sin_port);
    case TL_AF_INET6:
        return ntohs(((const struct sockaddr_in6 *)(const void *)a->u.bytes)->sin6_port);
    default:
        return 0;
    }
}

int tl_sockaddr_to_string(const tl_sockaddr_t *a, char *buf, size_t len,
                          int *port) {
    if (a == NULL || buf == NULL)
        return TL_EINVAL;
    int fam = tl_sockaddr_family(a);
    if (port)
        *port = tl_sockaddr_port(a);
    if (fam == TL_AF_INET || fam == TL_AF_INET6) {
        char tmp[INET6_ADDRSTRLEN + 16];
        const void *src = fam == TL_AF_INET
            ? (const void *)&((const struct sockaddr_in *)(const void *)a->u.bytes)->sin_addr
            : (const void *)&((const struct sockaddr_in6 *)(const void *)a->u.bytes)->sin6_addr;
        if (inet_ntop(fam == TL_AF_INET ? AF_INET : AF_INET6, src, tmp, sizeof tmp) == NULL)
            return TL_EINVAL;
        if (strlen(tmp) >= len)
            return TL_ENOSPC;
        memcpy(buf, tmp, strlen(tmp) + 1);
        return 0;
    }
    if (fam == TL_AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)(const void *)a->u.bytes;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t n = a->len > off ? a->len - off : 0;
        if (n > sizeof(un->sun_path))
            n = sizeof(un->sun_path);
        int abstract = n > 0 && un->sun_path[0] == '\0';
        if (!abstract)
            n = strnlen(un->sun_path, n);
        if (n + 1 > len)
            return TL_ENOSPC;
        memcpy(buf, un->sun_path, n);
        if (abstract)
            buf[0] = '@';
        buf[n] = '\0';
        return 0;
    }
    return TL_EAFNOSUPPORT;
}

/* ---- resolver errors and numbers -------------------------------------- */

static int eai_error(int e, int sys_errno) {
    switch (e) {
    case EAI_NONAME: return TL_EAI_NONAME;
    case EAI_AGAIN: return TL_EAI_AGAIN;
    case EAI_FAIL: return TL_EAI_FAIL;
    case EAI_FAMILY: return TL_EAI_FAMILY;
    case EAI_SERVICE: return TL_EAI_SERVICE;
    case EAI_BADFLAGS: return TL_EAI_BADFLAGS;
    case EAI_SOCKTYPE: return TL_EAI_SOCKTYPE;
    case EAI_MEMORY: return TL_ENOMEM;
#ifdef EAI_NODATA
    case EAI_NODATA: return TL_EAI_NODATA;
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY: return TL_EAI_NODATA;
#endif
    case EAI_SYSTEM: return sys_errno ? tl_translate_sys_error(sys_errno) : TL_EUNKNOWN;
    default: return TL_EUNKNOWN;
    }
}

static int native_family(int fam, int *out) {
    switch (fam) {
    case TL_AF_UNSPEC: *out = AF_UNSPEC; return 0;
    case TL_AF_INET: *out = AF_INET; return 0;
    case TL_AF_INET6: *out = AF_INET6; return 0;
    case TL_AF_UNIX: *out = AF_UNIX; return 0;
    default: return TL_EINVAL;
    }
}

static int native_socktype(int st, int *out) {
    switch (st) {
    case 0: *out = 0; return 0;
    case TL_SOCK_STREAM: *out = SOCK_STREAM; return 0;
    case TL_SOCK_DGRAM: *out = SOCK_DGRAM; return 0;
    default: return TL_EINVAL;
    }
}

static int tulip_socktype(int st) {
    return st == SOCK_STREAM ? TL_SOCK_STREAM : st == SOCK_DGRAM ? TL_SOCK_DGRAM : 0;
}

static const struct {
    int tl, sys;
} ai_flags[] = {
    {TL_AI_PASSIVE, AI_PASSIVE},         {TL_AI_CANONNAME, AI_CANONNAME},
    {TL_AI_NUMERICHOST, AI_NUMERICHOST}, {TL_AI_NUMERICSERV, AI_NUMERICSERV},
    {TL_AI_ADDRCONFIG, AI_ADDRCONFIG},   {TL_AI_V4MAPPED, AI_V4MAPPED},
    {TL_AI_ALL, AI_ALL},
};

/* ---- lists -------------------------------------------------------------- */

static void list_free(void *v) {
    tl_addrinfo_list_t *l = v;
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        tl__free(l->items[i].canonname);
    tl__free(l->items);
    tl__free(l);
}

size_t tl_addrinfo_count(const tl_addrinfo_list_t *list) {
    return list ? list->n : 0;
}

const tl_sockaddr_t *tl_addrinfo_addr(const tl_addrinfo_list_t *list, size_t i) {
    return list && i < list->n ? &list->items[i].addr : NULL;
}

/* The system's answer as a list of tulip's (entries of families tulip does
 * not know are left out). */
static int list_from(const struct addrinfo *res, tl_addrinfo_list_t **out) {
    size_t n = 0;
    for (const struct addrinfo *r = res; r; r = r->ai_next)
        n++;
    tl_addrinfo_list_t *l = tl__calloc(1, sizeof(*l));
    if (l == NULL || (n && (l->items = tl__calloc(n, sizeof(*l->items))) == NULL)) {
        tl__free(l);
        return TL_ENOMEM;
    }
    for (const struct addrinfo *r = res; r; r = r->ai_next) {
        tl_addrinfo_t *it = &l->items[l->n];
        if (tl_sockaddr_from_native(r->ai_addr, r->ai_addrlen, &it->addr))
            continue;
        it->family = tl_sockaddr_family(&it->addr);
        if (it->family == TL_AF_UNSPEC)
            continue;
        it->socktype = tulip_socktype(r->ai_socktype);
        it->protocol = r->ai_protocol;
        if (r->ai_canonname && (it->canonname = tl__strdup(r->ai_canonname)) == NULL) {
            list_free(l);
            return TL_ENOMEM;
        }
        l->n++;
    }
    *out = l;
    return 0;
}

/* ---- queries ------------------------------------------------------------ */

typedef struct query {
    tl_loop_t *loop;
    tl_future_t *user; /* the caller's future (our reference) */
    tl_future_t *job;  /* the executor's future, while queued */
    int is_name;       /* getnameinfo */
    char *host, *port;
    struct addrinfo hints;
    tl_sockaddr_t addr;
    int ni_flags;
    /* the answer, made on the worker */
    int rc;
    tl_addrinfo_list_t *list;
    tl_nameinfo_t *name;
} query_t;

static void query_free(query_t *q) {
    if (q == NULL)
        return;
    list_free(q->list);
    tl__free(q->name);
    tl__free(q->host);
    tl__free(q->port);
    if (q->user)
        tl_future_unref(q->user);
    tl__free(q);
}

/* On the loop: hand the answer to the caller's future (unless it was
 * cancelled meanwhile), then forget the query. */
static void query_deliver(void *ctx) {
    query_t *q = ctx;
    if (!tl_future_done(q->user)) {
        if (q->rc)
            tl_future_set_error(q->user, q->rc, NULL);
        else if (q->is_name) {
            if (tl_future_set_result(q->user, q->name, tl__free) == 0)
                q->name = NULL;
        } else if (tl_future_set_result(q->user, q->list, list_free) == 0) {
            q->list = NULL;
        }
    }
    query_free(q);
}

static void query_drop(void *ctx) { query_free(ctx); }

static void resolve_now(query_t *q) {
    if (q->is_name) {
        q->name = tl__calloc(1, sizeof(*q->name));
        if (q->name == NULL) {
            q->rc = TL_ENOMEM;
            return;
        }
        int fl = 0;
        fl |= q->ni_flags & TL_NI_NUMERICHOST ? NI_NUMERICHOST : 0;
        fl |= q->ni_flags & TL_NI_NUMERICSERV ? NI_NUMERICSERV : 0;
        fl |= q->ni_flags & TL_NI_NAMEREQD ? NI_NAMEREQD : 0;
        fl |= q->ni_flags & TL_NI_DGRAM ? NI_DGRAM : 0;
        fl |= q->ni_flags & TL_NI_NOFQDN ? NI_NOFQDN : 0;
        errno = 0;
        int e = getnameinfo((const struct sockaddr *)(const void *)q->addr.u.bytes,
                            q->addr.len, q->name->host, sizeof(q->name->host),
                            q->name->serv, sizeof(q->name->serv), fl);
        if (e)
            q->rc = eai_error(e, errno);
        return;
    }
    struct addrinfo *res = NULL;
    errno = 0;
    int e = getaddrinfo(q->host, q->port, &q->hints, &res);
    if (e) {
        q->rc = eai_error(e, errno);
        return;
    }
    q->rc = list_from(res, &q->list);
    freeaddrinfo(res);
}

/* On a worker: resolve, then post the answer to the loop. */
static int query_work(void *arg, void **result) {
    query_t *q = arg;
    (void)result;
    resolve_now(q);
    if (tl__loop_call_soon_threadsafe_drop(q->loop, query_deliver, query_drop, q))
        query_free(q); /* the loop is closed: nobody is waiting */
    return 0;
}

/* The executor's future is done: if it was cancelled the worker never ran
 * and the query is ours to free; otherwise the worker owns it. */
static void job_done(tl_future_t *f, void *ctx) {
    if (tl_future_cancelled(f))
        query_free(ctx);
    tl_future_unref(f);
}

/* The caller's future is done: a cancellation cancels the job too (which
 * only succeeds while it is queued). */
static void user_done(tl_future_t *f, void *ctx) {
    tl_future_t *job = ctx;
    if (tl_future_cancelled(f))
        tl_future_cancel(job, NULL);
    tl_future_unref(job);
}

/* Start q: on the executor, or (numeric) at once. Takes q in all cases. */
static int query_start(tl_loop_t *loop, query_t *q, int numeric, tl_future_t **out) {
    int rc = tl_future_new(loop, &q->user);
    if (rc) {
        query_free(q);
        return rc;
    }
    q->loop = loop;
    tl_future_ref(q->user); /* the caller's */
    if (numeric) {
        resolve_now(q);
        tl_future_t *user = q->user;
        query_deliver(q); /* frees q and our reference */
        *out = user;
        return 0;
    }
    tl_future_t *job = NULL;
    if ((rc = tl_loop_run_in_executor(loop, NULL, query_work, q, &job)))
        goto fail;
    /* From here the worker may own q: touch only what the loop owns. */
    tl_future_t *user = q->user;
    tl_future_ref(job);
    if ((rc = tl_future_add_done_callback(job, job_done, q))) {
        tl_future_unref(job);
        /* The job cannot be taken back if a worker has it; cancel it, and
         * if that worked q is ours. */
        if (tl_future_cancel(job, NULL) == 1) {
            tl_future_unref(job);
            tl_future_unref(user); /* the caller's */
            query_free(q);
            return rc;
        }
        tl_future_unref(job);
        tl_future_cancel(user, NULL);
        *out = user;
        return 0;
    }
    if (tl_future_add_done_callback(user, user_done, job)) {
        /* Without the link the caller's cancel cannot reach the job: it
         * runs, and its answer is dropped at delivery. */
        tl_future_unref(job);
    }
    *out = user;
    return 0;
fail:
    tl_future_unref(q->user); /* the caller's */
    query_free(q);
    return rc;
}

int tl_getaddrinfo(tl_loop_t *loop, const char *host, const char *port,
                   const tl_addrinfo_hints_t *hints, tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (out == NULL || (host == NULL && port == NULL))
        return TL_EINVAL;
    tl_addrinfo_hints_t h = {0};
    if (hints && (rc = tl__copy_options(&h, sizeof h, hints)))
        return rc;
    query_t *q = tl__calloc(1, sizeof(*q));
    if (q == NULL)
        return TL_ENOMEM;
    if ((rc = native_family(h.family, &q->hints.ai_family)) ||
        (rc = native_socktype(h.socktype, &q->hints.ai_socktype))) {
        tl__free(q);
        return rc;
    }
    q->hints.ai_protocol = h.protocol;
    for (size_t i = 0; i < sizeof ai_flags / sizeof ai_flags[0]; i++)
        if (h.flags & ai_flags[i].tl)
            q->hints.ai_flags |= ai_flags[i].sys;
    if ((host && (q->host = tl__strdup(host)) == NULL) ||
        (port && (q->port = tl__strdup(port)) == NULL)) {
        query_free(q);
        return TL_ENOMEM;
    }
    /* Numeric host (or none) and numeric port: no lookup can happen, so
     * answer at once (asyncio's _ipaddr_info). */
    tl_sockaddr_t tmp;
    int numeric_host = host == NULL || host[0] == '\0' ||
                       tl_sockaddr_from_ip(host, 0, &tmp) == 0;
    int numeric_port = port == NULL || (port[0] && strspn(port, "0123456789") == strlen(port));
    if (numeric_host && numeric_port && !(h.flags & TL_AI_CANONNAME))
        q->hints.ai_flags |= (host && host[0] ? AI_NUMERICHOST : 0) | AI_NUMERICSERV;
    else
        numeric_host = 0;
    return query_start(loop, q, numeric_host, out);
}

int tl_getnameinfo(tl_loop_t *loop, const tl_sockaddr_t *addr, int flags,
                   tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (out == NULL || addr == NULL || addr->len == 0 || addr->len > sizeof(addr->u.bytes))
        return TL_EINVAL;
    query_t *q = tl__calloc(1, sizeof(*q));
    if (q == NULL)
        return TL_ENOMEM;
    q->is_name = 1;
    q->addr = *addr;
    q->ni_flags = flags;
    int numeric = (flags & TL_NI_NUMERICHOST) && (flags & TL_NI_NUMERICSERV);
    return query_start(loop, q, numeric, out);
}
