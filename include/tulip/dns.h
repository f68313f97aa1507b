/*
 * tulip/dns.h - addresses and name resolution (placeholder until the
 * resolver lands: the address type the netstack and transports share).
 */
#ifndef TULIP_DNS_H
#define TULIP_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
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

#ifdef __cplusplus
}
#endif
#endif /* TULIP_DNS_H */
