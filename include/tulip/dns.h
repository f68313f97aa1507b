/*
 * tulip/dns.h - socket addresses and name resolution (asyncio's
 * loop.getaddrinfo / loop.getnameinfo): the system resolver runs on the
 * executor, the answer comes back as a future of the loop.
 *
 * Addresses are tl_sockaddr_t values: a platform struct sockaddr_storage
 * and its length, so they can be copied and stored without allocation.
 * Families and flags are tulip's own numbers, the same on every platform.
 */
#ifndef TULIP_DNS_H
#define TULIP_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "future.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sockaddr;

/* Address families and socket types, as tulip numbers them. */
enum { TL_AF_UNSPEC = 0, TL_AF_INET = 1, TL_AF_INET6 = 2, TL_AF_UNIX = 3 };
enum { TL_SOCK_STREAM = 1, TL_SOCK_DGRAM = 2 };

/* A socket address of any family: the platform's struct sockaddr_storage
 * in u.bytes, its length in len. (const struct sockaddr *)&a.u reads it. */
typedef struct tl_sockaddr {
    uint32_t len;
    uint32_t reserved_;
    union {
        unsigned char bytes[128];
        uint64_t align_;
    } u;
} tl_sockaddr_t;

/* A numeric IPv4 ("127.0.0.1") or IPv6 ("::1", "fe80::1%eth0") address
 * and a port (0-65535). TL_EINVAL for anything else (names included:
 * resolve those with tl_getaddrinfo). */
TL_API int tl_sockaddr_from_ip(const char *ip, int port, tl_sockaddr_t *out);
/* A Unix socket path; a leading '@' names a Linux abstract socket (the
 * '@' becomes the leading NUL). TL_ENAMETOOLONG when it does not fit,
 * TL_EINVAL for an empty path, TL_EAFNOSUPPORT without Unix sockets. */
TL_API int tl_sockaddr_from_unix(const char *path, tl_sockaddr_t *out);
/* The address as text in buf ("127.0.0.1", "::1", a path, "@name" for an
 * abstract name) and, when port is not NULL, its port (0 for Unix).
 * TL_ENOSPC when buf is too small (46 bytes hold any IP address),
 * TL_EAFNOSUPPORT for an unknown family, TL_EINVAL for NULLs. */
TL_API int tl_sockaddr_to_string(const tl_sockaddr_t *a, char *buf, size_t len,
                                 int *port);
/* TL_AF_INET, TL_AF_INET6, TL_AF_UNIX, or TL_AF_UNSPEC (unknown or NULL). */
TL_API int tl_sockaddr_family(const tl_sockaddr_t *a);
/* The port of an IP address (0 for other families or NULL). */
TL_API int tl_sockaddr_port(const tl_sockaddr_t *a);
/* Copy a platform address of len bytes (TL_EINVAL if len is 0 or does not
 * fit tl_sockaddr_t). */
TL_API int tl_sockaddr_from_native(const struct sockaddr *sa, size_t len,
                                   tl_sockaddr_t *out);

/* ---- getaddrinfo ------------------------------------------------------ */

/* Flags of tl_addrinfo_hints_t. */
enum {
    TL_AI_PASSIVE = 1,      /* host NULL: the wildcard address (servers) */
    TL_AI_CANONNAME = 2,    /* fill canonname of the first entry */
    TL_AI_NUMERICHOST = 4,  /* host must be numeric: no lookup */
    TL_AI_NUMERICSERV = 8,  /* port must be numeric */
    TL_AI_ADDRCONFIG = 16,  /* only families the host has addresses of */
    TL_AI_V4MAPPED = 32,
    TL_AI_ALL = 64
};

typedef struct tl_addrinfo_hints {
    size_t size; /* sizeof(tl_addrinfo_hints_t), or 0 with all fields 0 */
    int family;   /* TL_AF_*; 0 any */
    int socktype; /* TL_SOCK_*; 0 any */
    int protocol; /* 0 any */
    int flags;    /* TL_AI_* */
} tl_addrinfo_hints_t;

typedef struct tl_addrinfo {
    int family, socktype, protocol;
    int reserved_;
    tl_sockaddr_t addr;
    char *canonname; /* NULL unless asked for, first entry only */
} tl_addrinfo_t;

/* The resolver's answer, in the system's order. */
typedef struct tl_addrinfo_list {
    size_t n;
    tl_addrinfo_t *items;
} tl_addrinfo_list_t;

/* asyncio's loop.getaddrinfo: resolve host and port as getaddrinfo(3)
 * does, on the loop's default executor (tl_loop_run_in_executor with ex
 * NULL). host NULL or "" means no host (with TL_AI_PASSIVE the wildcard
 * address, else loopback); port NULL means port 0; not both NULL. hints
 * NULL (or zeroed) means any family, any socket type, no flags.
 *
 * *out gets a new future of loop (one reference, the caller's). Its result
 * (tl_future_result) is a const tl_addrinfo_list_t *, in the resolver's
 * order, never empty, owned by the future: it lives as long as the future
 * and is freed with it. Entries of socket types tulip has no transport for
 * (SOCK_RAW) are left out; canonname is set on the first entry only, and
 * only with TL_AI_CANONNAME.
 *
 * A numeric host ("10.0.0.1", "::1", "fe80::1%eth0") or no host, with a
 * numeric port or none, and without TL_AI_CANONNAME, is answered at once
 * (asyncio's _ipaddr_info fast path): the future is already done when
 * this returns. Anything else is a job on the executor, and the future is
 * done on loop's thread, through the loop, once the resolver answered.
 *
 * Cancelling the future (tl_future_cancel) before a worker took the job
 * removes it (returns 1); once the resolver runs, cancel returns 0 and the
 * answer is delivered. If loop closes first, the answer is dropped (and
 * freed); the future stays pending.
 *
 * The future's error: TL_EAI_NONAME (no such host or service, or a name
 * where TL_AI_NUMERICHOST/TL_AI_NUMERICSERV asked for a number),
 * TL_EAI_AGAIN (temporary failure, e.g. no DNS server reachable),
 * TL_EAI_FAIL, TL_EAI_FAMILY, TL_EAI_SERVICE (the port does not exist for
 * the socket type), TL_EAI_NODATA (the host has no address of the family
 * asked for, or only entries tulip leaves out), TL_EAI_BADFLAGS,
 * TL_EAI_SOCKTYPE, TL_ENOMEM (the resolver or the answer's copy ran out
 * of memory), or the system error behind EAI_SYSTEM (tl_translate_sys_error).
 *
 * Call on loop's thread. Returns 0, or (and then nothing was created):
 * TL_EINVAL (NULL out, both host and port NULL, a family other than
 * TL_AF_UNSPEC/INET/INET6/UNIX, a socket type other than 0/TL_SOCK_*,
 * unknown flags, a negative protocol, or hints whose size is wrong),
 * TL_EINVAL/TL_EWRONGTHREAD/TL_ECLOSED for the loop, TL_ENOMEM. */
TL_API int tl_getaddrinfo(tl_loop_t *loop, const char *host, const char *port,
                          const tl_addrinfo_hints_t *hints, tl_future_t **out);
/* Accessors, for bindings: the count, and entry i's address (NULL past
 * the end or for NULL). */
TL_API size_t tl_addrinfo_count(const tl_addrinfo_list_t *list);
TL_API const tl_sockaddr_t *tl_addrinfo_addr(const tl_addrinfo_list_t *list,
                                             size_t i);

/* ---- getnameinfo ------------------------------------------------------ */

enum {
    TL_NI_NUMERICHOST = 1,
    TL_NI_NUMERICSERV = 2,
    TL_NI_NAMEREQD = 4, /* fail (TL_EAI_NONAME) rather than give a number */
    TL_NI_DGRAM = 8,    /* the service is a datagram one */
    TL_NI_NOFQDN = 16
};

typedef struct tl_nameinfo {
    char host[1025];
    char serv[32];
} tl_nameinfo_t;

/* asyncio's loop.getnameinfo: getnameinfo(3) of an IPv4 or IPv6 address
 * (copied: addr may go at once), on the loop's default executor. With both
 * TL_NI_NUMERICHOST and TL_NI_NUMERICSERV nothing is looked up and the
 * future is done when this returns.
 *
 * *out gets a new future of loop (the caller's reference) whose result is
 * a const tl_nameinfo_t * (host and serv NUL-terminated), owned by the
 * future and freed with it. Cancellation and a closing loop as for
 * tl_getaddrinfo. The future's error: TL_EAI_NONAME (no name, with
 * TL_NI_NAMEREQD), TL_EAI_AGAIN, TL_EAI_FAIL, TL_EAI_FAMILY, TL_ENOMEM,
 * or the system error behind EAI_SYSTEM.
 *
 * Call on loop's thread. Returns 0, or (nothing created): TL_EINVAL (NULL
 * addr or out, addr->len too large, unknown flags), TL_EAFNOSUPPORT (addr
 * is not IPv4 or IPv6), TL_EINVAL/TL_EWRONGTHREAD/TL_ECLOSED for the loop,
 * TL_ENOMEM. */
TL_API int tl_getnameinfo(tl_loop_t *loop, const tl_sockaddr_t *addr, int flags,
                          tl_future_t **out);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_DNS_H */
