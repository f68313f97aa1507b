/*
 * Name resolution through the executor (asyncio's loop.getaddrinfo and
 * getnameinfo), and the small address helpers.
 *
 * A query is a job of the loop's default executor whose kind
 * (src/executor/executor_int.h) owns both ends: the query (host and port
 * copies, hints) is freed when the job ends whatever happens to it, and
 * the answer is the future's result with its destructor, or is freed
 * where it is dropped (the loop closed first). The caller's future *is*
 * the job, so cancelling it before a worker took it removes the job.
 * Numeric hosts and ports skip the executor (asyncio's _ipaddr_info fast
 * path): getaddrinfo with AI_NUMERICHOST|AI_NUMERICSERV cannot touch the
 * network, so it runs at once and the future is done when returned.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>

#include "../core/alloc.h"
#include "../core/options.h"
#include "../executor/executor_int.h"
#include "../loop/loop_int.h"
#include "tulip/dns.h"

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
        it->canonname = NULL;
        it->family = tl_sockaddr_family(&it->addr);
        if (it->family == TL_AF_UNSPEC)
            continue;
        it->socktype = tulip_socktype(r->ai_socktype);
        if (it->socktype == 0)
            continue; /* SOCK_RAW and the like: no tulip transport uses them */
        it->protocol = r->ai_protocol;
        if (r->ai_canonname && l->n == 0 &&
            (it->canonname = tl__strdup(r->ai_canonname)) == NULL) {
            list_free(l);
            return TL_ENOMEM;
        }
        l->n++;
    }
    *out = l;
    return 0;
}

/* ---- queries ------------------------------------------------------------ */

/* A query: the job's argument, freed when the job ends (gai_kind). */
typedef struct query {
    char *host, *port;
    struct addrinfo hints;
    tl_sockaddr_t addr;
    int ni_flags;
} query_t;

static void query_free(void *v) {
    query_t *q = v;
    tl__free(q->host);
    tl__free(q->port);
    tl__free(q);
}

/* On a worker (or at once for numeric queries): the answer, or a code. */
static int gai_work(void *arg, void **result) {
    query_t *q = arg;
    struct addrinfo *res = NULL;
    errno = 0;
    int e = getaddrinfo(q->host, q->port, &q->hints, &res);
    if (e)
        return eai_error(e, errno);
    tl_addrinfo_list_t *l = NULL;
    int rc = list_from(res, &l);
    freeaddrinfo(res);
    if (rc == 0 && l->n == 0) { /* only entries tulip cannot use */
        list_free(l);
        return TL_EAI_NODATA;
    }
    *result = l;
    return rc;
}

static int gni_work(void *arg, void **result) {
    query_t *q = arg;
    tl_nameinfo_t *name = tl__calloc(1, sizeof(*name));
    if (name == NULL)
        return TL_ENOMEM;
    int fl = 0;
    fl |= q->ni_flags & TL_NI_NUMERICHOST ? NI_NUMERICHOST : 0;
    fl |= q->ni_flags & TL_NI_NUMERICSERV ? NI_NUMERICSERV : 0;
    fl |= q->ni_flags & TL_NI_NAMEREQD ? NI_NAMEREQD : 0;
    fl |= q->ni_flags & TL_NI_DGRAM ? NI_DGRAM : 0;
    fl |= q->ni_flags & TL_NI_NOFQDN ? NI_NOFQDN : 0;
    errno = 0;
    int e = getnameinfo((const struct sockaddr *)(const void *)q->addr.u.bytes,
                        q->addr.len, name->host, sizeof(name->host), name->serv,
                        sizeof(name->serv), fl);
    if (e) {
        tl__free(name);
        return eai_error(e, errno);
    }
    *result = name;
    return 0;
}

static const tl__job_kind_t gai_kind = TL__JOB_KIND(list_free, query_free);
static const tl__job_kind_t gni_kind = TL__JOB_KIND(tl__free, query_free);

/* Start q (which this takes in every case): on the default executor, or,
 * for a numeric query, at once into a future that is done on return. */
static int query_start(tl_loop_t *loop, query_t *q, const tl__job_kind_t *kind,
                       tl_executor_fn_t fn, int numeric, tl_future_t **out) {
    int rc;
    if (!numeric) {
        if ((rc = tl__loop_run_job(loop, NULL, kind, fn, q, out)) != 0)
            query_free(q);
        return rc;
    }
    tl_future_t *f;
    if ((rc = tl_future_new(loop, &f)) != 0) {
        query_free(q);
        return rc;
    }
    void *value = NULL;
    rc = fn(q, &value);
    query_free(q);
    if (rc == 0) {
        rc = tl_future_set_result(f, value, kind->result_destructor);
        if (rc)
            kind->result_destructor(value);
    } else if (rc != TL_ENOMEM) {
        rc = tl_future_set_error(f, rc, NULL);
    }
    if (rc) { /* out of memory: nothing is left behind */
        tl_future_unref(f);
        return rc;
    }
    *out = f;
    return 0;
}

static int is_number(const char *s) {
    return s[0] != '\0' && strspn(s, "0123456789") == strlen(s);
}

int tl_getaddrinfo(tl_loop_t *loop, const char *host, const char *port,
                   const tl_addrinfo_hints_t *hints, tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    if (host && host[0] == '\0')
        host = NULL; /* "" is no host, as NULL */
    if (out == NULL || (host == NULL && port == NULL))
        return TL_EINVAL;
    tl_addrinfo_hints_t h = {0};
    if (hints && (rc = tl__copy_options(&h, sizeof h, hints)))
        return rc;
    int known = 0;
    for (size_t i = 0; i < sizeof ai_flags / sizeof ai_flags[0]; i++)
        known |= ai_flags[i].tl;
    if (h.flags & ~known || h.protocol < 0)
        return TL_EINVAL;
    query_t *q = tl__calloc(1, sizeof(*q));
    if (q == NULL)
        return TL_ENOMEM;
    if ((rc = native_family(h.family, &q->hints.ai_family)) ||
        (rc = native_socktype(h.socktype, &q->hints.ai_socktype))) {
        query_free(q);
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
    /* Numeric host (or none) and numeric port (or none): no lookup can
     * happen, so answer at once (asyncio's _ipaddr_info). A canonical name
     * is left to the resolver, as is anything else. */
    tl_sockaddr_t tmp;
    int numeric = (host == NULL || tl_sockaddr_from_ip(host, 0, &tmp) == 0) &&
                  (port == NULL || is_number(port)) && !(h.flags & TL_AI_CANONNAME);
    if (numeric)
        q->hints.ai_flags |= (host ? AI_NUMERICHOST : 0) | AI_NUMERICSERV;
    return query_start(loop, q, &gai_kind, gai_work, numeric, out);
}

int tl_getnameinfo(tl_loop_t *loop, const tl_sockaddr_t *addr, int flags,
                   tl_future_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    enum { KNOWN = TL_NI_NUMERICHOST | TL_NI_NUMERICSERV | TL_NI_NAMEREQD |
                   TL_NI_DGRAM | TL_NI_NOFQDN };
    if (out == NULL || addr == NULL || addr->len > sizeof(addr->u.bytes) ||
        (flags & ~KNOWN))
        return TL_EINVAL;
    int fam = tl_sockaddr_family(addr);
    if (fam != TL_AF_INET && fam != TL_AF_INET6)
        return TL_EAFNOSUPPORT;
    query_t *q = tl__calloc(1, sizeof(*q));
    if (q == NULL)
        return TL_ENOMEM;
    q->addr = *addr;
    q->ni_flags = flags;
    int numeric = (flags & TL_NI_NUMERICHOST) && (flags & TL_NI_NUMERICSERV);
    return query_start(loop, q, &gni_kind, gni_work, numeric, out);
}
