/*
 * tulip/core.h - error codes, monotonic time, version, allocator hooks.
 *
 * Every tulip function that can fail returns an int: 0 (or a count) on
 * success, a negative TL_E* code on failure. The numbers are tulip's own and
 * are the same on every platform; system errors are translated on the way in
 * (tl_translate_sys_error). Results are written through out-parameters.
 */
#ifndef TULIP_CORE_H
#define TULIP_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* TL_API marks the exported ABI; everything else is hidden. */
#if defined(_WIN32)
#  if defined(TL_BUILDING_DLL)
#    define TL_API __declspec(dllexport)
#  elif defined(TL_STATIC)
#    define TL_API
#  else
#    define TL_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define TL_API __attribute__((visibility("default")))
#else
#  define TL_API
#endif

#define TL_VERSION_MAJOR 0
#define TL_VERSION_MINOR 1
#define TL_VERSION_PATCH 0
#define TL_VERSION_HEX \
    ((TL_VERSION_MAJOR << 16) | (TL_VERSION_MINOR << 8) | TL_VERSION_PATCH)

/* The version of the library actually loaded, as TL_VERSION_HEX encodes it;
 * compare with TL_VERSION_HEX to detect a header/library mismatch. */
TL_API unsigned tl_version(void);
/* "MAJOR.MINOR.PATCH", a static string. */
TL_API const char *tl_version_string(void);

/*
 * Error codes. XX(name, value, message). The values of the POSIX-derived
 * codes are Linux's errno numbers, negated; they are fixed by this table, not
 * by the platform, so a Windows or BSD build returns the same numbers.
 * Codes below -3000 are tulip's own. New codes are only ever added.
 */
#define TL_ERRNO_MAP(XX)                                                      \
    XX(EPERM, -1, "operation not permitted")                                  \
    XX(ENOENT, -2, "no such file or directory")                               \
    XX(ESRCH, -3, "no such process")                                          \
    XX(EINTR, -4, "interrupted system call")                                  \
    XX(EIO, -5, "i/o error")                                                  \
    XX(ENXIO, -6, "no such device or address")                                \
    XX(E2BIG, -7, "argument list too long")                                   \
    XX(EBADF, -9, "bad file descriptor")                                      \
    XX(ECHILD, -10, "no child processes")                                     \
    XX(EAGAIN, -11, "resource temporarily unavailable")                       \
    XX(ENOMEM, -12, "not enough memory")                                      \
    XX(EACCES, -13, "permission denied")                                      \
    XX(EFAULT, -14, "bad address")                                            \
    XX(EBUSY, -16, "resource busy")                                           \
    XX(EEXIST, -17, "file exists")                                            \
    XX(EXDEV, -18, "cross-device link")                                       \
    XX(ENODEV, -19, "no such device")                                         \
    XX(ENOTDIR, -20, "not a directory")                                       \
    XX(EISDIR, -21, "is a directory")                                         \
    XX(EINVAL, -22, "invalid argument")                                       \
    XX(ENFILE, -23, "file table overflow")                                    \
    XX(EMFILE, -24, "too many open files")                                    \
    XX(ENOTTY, -25, "inappropriate ioctl for device")                         \
    XX(EFBIG, -27, "file too large")                                          \
    XX(ENOSPC, -28, "no space left on device")                                \
    XX(ESPIPE, -29, "invalid seek")                                           \
    XX(EROFS, -30, "read-only file system")                                   \
    XX(EMLINK, -31, "too many links")                                         \
    XX(EPIPE, -32, "broken pipe")                                             \
    XX(ERANGE, -34, "result out of range")                                    \
    XX(ENAMETOOLONG, -36, "name too long")                                    \
    XX(ENOSYS, -38, "function not implemented")                               \
    XX(ENOTEMPTY, -39, "directory not empty")                                 \
    XX(ELOOP, -40, "too many symbolic links encountered")                     \
    XX(ENOTSOCK, -88, "socket operation on non-socket")                       \
    XX(EDESTADDRREQ, -89, "destination address required")                     \
    XX(EMSGSIZE, -90, "message too long")                                     \
    XX(EPROTOTYPE, -91, "protocol wrong type for socket")                     \
    XX(ENOPROTOOPT, -92, "protocol not available")                            \
    XX(EPROTONOSUPPORT, -93, "protocol not supported")                        \
    XX(ENOTSUP, -95, "operation not supported")                               \
    XX(EAFNOSUPPORT, -97, "address family not supported")                     \
    XX(EADDRINUSE, -98, "address already in use")                             \
    XX(EADDRNOTAVAIL, -99, "address not available")                           \
    XX(ENETDOWN, -100, "network is down")                                     \
    XX(ENETUNREACH, -101, "network is unreachable")                           \
    XX(ECONNABORTED, -103, "software caused connection abort")                \
    XX(ECONNRESET, -104, "connection reset by peer")                          \
    XX(ENOBUFS, -105, "no buffer space available")                            \
    XX(EISCONN, -106, "socket is already connected")                          \
    XX(ENOTCONN, -107, "socket is not connected")                             \
    XX(ESHUTDOWN, -108, "cannot send after transport endpoint shutdown")      \
    XX(ETIMEDOUT, -110, "operation timed out")                                \
    XX(ECONNREFUSED, -111, "connection refused")                              \
    XX(EHOSTUNREACH, -113, "host is unreachable")                             \
    XX(EALREADY, -114, "operation already in progress")                       \
    XX(EINPROGRESS, -115, "operation in progress")                            \
    XX(ECANCELLED, -125, "operation cancelled")                               \
    XX(EUNKNOWN, -3000, "unknown error")                                      \
    XX(EOF, -3001, "end of file")                                             \
    XX(ECLOSED, -3002, "handle or loop is closed")                            \
    XX(EWRONGTHREAD, -3003, "called from a thread that does not own the loop")\
    XX(ESTATE, -3004, "invalid state for this operation")                     \
    XX(EPENDING, -3005, "the future is not done yet")                         \
    XX(ERUNNING, -3006, "a loop is already running in this thread")           \
    XX(ESTOPPED, -3007, "the loop stopped before the future completed")       \
    XX(EQUEUEFULL, -3008, "queue is full")                                    \
    XX(EQUEUEEMPTY, -3009, "queue is empty")                                  \
    XX(ENOTASK, -3010, "not called from inside a task")                       \
    XX(EBROKEN, -3011, "the barrier is broken")                               \
    XX(EQUEUESHUTDOWN, -3012, "the queue is shut down")                      \
    XX(EAI_NONAME, -3013, "name or service not known")                        \
    XX(EAI_AGAIN, -3014, "temporary failure in name resolution")              \
    XX(EAI_FAIL, -3015, "non-recoverable failure in name resolution")         \
    XX(EAI_FAMILY, -3016, "address family not supported by the resolver")    \
    XX(EAI_SERVICE, -3017, "service not supported for the socket type")       \
    XX(EAI_NODATA, -3018, "the host has no address of the requested kind")    \
    XX(EAI_BADFLAGS, -3019, "bad flags for name resolution")                  \
    XX(EAI_SOCKTYPE, -3020, "socket type not supported by the resolver")      \
    XX(EINCOMPLETE, -3021, "end of stream before the expected bytes")         \
    XX(ELIMITOVERRUN, -3022, "separator not found within the buffer limit") \
    XX(ETLS, -3023, "TLS protocol error")                                     \
    XX(ECERTVERIFY, -3024, "certificate verification failed")                 \
    XX(ECERTEXPIRED, -3025, "certificate has expired")                        \
    XX(ECERTHOSTNAME, -3026, "certificate does not match the host name")      \
    XX(ETLSEOF, -3027, "TLS peer closed without close_notify")

typedef enum tl_errno {
#define TL__ERRNO_ENUM(name, value, msg) TL_##name = (value),
    TL_ERRNO_MAP(TL__ERRNO_ENUM)
#undef TL__ERRNO_ENUM
    TL_ERRNO_LAST_ = -3999
} tl_errno_t;

/* A static, human-readable message for a code; "unknown error" for any value
 * that is not a TL_E* code (never NULL). 0 gives "success". */
TL_API const char *tl_strerror(int err);
/* The constant's name ("TL_EAGAIN"); "TL_EUNKNOWN" for an unknown value and
 * "TL_OK" for 0 (never NULL). */
TL_API const char *tl_err_name(int err);
/* Translate a platform error (an errno value on POSIX, positive or negated)
 * into a TL_E* code. 0 stays 0; an errno without a counterpart gives
 * TL_EUNKNOWN. */
TL_API int tl_translate_sys_error(int sys_errno);

/* Monotonic time in nanoseconds from an unspecified origin; never goes back. */
TL_API uint64_t tl_now_ns(void);

/*
 * Allocator hooks. Every allocation tulip makes goes through these. `ctx` is
 * passed back on each call. realloc follows C's realloc (NULL ptr allocates,
 * NULL result leaves the block alone); free(NULL) must be a no-op.
 *
 * Process-wide: install before creating any tulip object, or keep the new
 * allocator compatible with blocks the old one handed out (a wrapper around
 * the old one is). Not thread-safe against concurrent allocations.
 */
typedef struct tl_allocator {
    size_t size; /* sizeof(tl_allocator_t) */
    void *(*malloc)(void *ctx, size_t n);
    void *(*realloc)(void *ctx, void *ptr, size_t n);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
} tl_allocator_t;

/* Install `a` (copied); NULL restores the C library's allocator.
 * TL_EINVAL if a function is missing or a->size is too small. */
TL_API int tl_set_allocator(const tl_allocator_t *a);
/* The allocator in force (copied into *out). TL_EINVAL if out is NULL. */
TL_API int tl_get_allocator(tl_allocator_t *out);

/* The one callback shape for scheduled work (call_soon, timers, readers,
 * writers, signals): ctx is the pointer given when it was registered. */
typedef void (*tl_callback_t)(void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* TULIP_CORE_H */
