/*
 * Transports over descriptors the caller made (asyncio's
 * connect_read_pipe, connect_write_pipe, connect_accepted_socket): the
 * kernel netstack adopts the descriptor and a stream transport runs on it.
 * Pipes always use the kernel stack, whatever the loop's netstack is.
 *
 * Also the one socket probe server.c needs (is a Unix socket path live?):
 * this file is allowed socket calls, being the kernel's side of the base.
 */
#define _GNU_SOURCE /* SOCK_NONBLOCK, SOCK_CLOEXEC */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../loop/loop_int.h"
#include "server_int.h"
#include "stream_transport.h"

static int adopt(tl_loop_t *loop, const tl_netstack_ops_t *ops, void *state,
                 int flavour, int kind, const tl_protocol_t *proto,
                 void *ctx, tl_fd_t fd, tl_transport_t **out) {
    if (out == NULL || proto == NULL)
        return TL_EINVAL;
    if (fd < 0)
        return TL_EBADF;
    tl_transport_t *t;
    int rc = tl__stream_alloc(loop, ops, flavour, proto, ctx, &t);
    if (rc)
        return rc;
    tl_ns_sock_t *sock;
    if ((rc = ops->adopt(state, fd, kind, tl__stream_handler(), t, &sock))) {
        tl__stream_free_unattached(t); /* the caller keeps fd */
        return rc;
    }
    /* From here the descriptor is the transport's, failure or not. */
    if ((rc = tl__stream_attach(t, sock)) != 0)
        return rc;
    *out = t;
    return 0;
}

static int kernel_pipe(tl_loop_t *loop, int flavour, int kind,
                       const tl_protocol_t *proto, void *ctx, tl_fd_t fd,
                       tl_transport_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    void *state;
    if ((rc = tl__netstack_kernel_state(loop, &state)) != 0)
        return rc;
    return adopt(loop, tl_netstack_kernel(), state, flavour, kind, proto,
                 ctx, fd, out);
}

int tl_connect_read_pipe(tl_loop_t *loop, const tl_protocol_t *proto,
                         void *proto_ctx, tl_fd_t fd, tl_transport_t **out) {
    return kernel_pipe(loop, TL__STREAM_PIPE_READ, TL_NS_PIPE_READ, proto,
                       proto_ctx, fd, out);
}

int tl_connect_write_pipe(tl_loop_t *loop, const tl_protocol_t *proto,
                          void *proto_ctx, tl_fd_t fd, tl_transport_t **out) {
    return kernel_pipe(loop, TL__STREAM_PIPE_WRITE, TL_NS_PIPE_WRITE, proto,
                       proto_ctx, fd, out);
}

int tl_connect_accepted_socket(tl_loop_t *loop, const tl_protocol_t *proto,
                               void *proto_ctx, tl_fd_t fd,
                               tl_transport_t **out) {
    int rc = tl__loop_check(loop);
    if (rc)
        return rc;
    const tl_netstack_ops_t *ops;
    void *state;
    if ((rc = tl__netstack(loop, &ops, &state)) != 0)
        return rc;
    if (ops->adopt == NULL)
        return TL_ENOTSUP;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return tl_translate_sys_error(errno);
    int flavour = fd >= 0 && ss.ss_family == AF_UNIX ? TL__STREAM_UNIX
                                                     : TL__STREAM_TCP;
    return adopt(loop, ops, state, flavour, TL_NS_STREAM, proto, proto_ctx,
                 fd, out);
}

int tl__unix_path_in_use(const char *path) {
    struct sockaddr_un un;
    size_t n = strlen(path);
    if (n >= sizeof(un.sun_path))
        return 0;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    memcpy(un.sun_path, path, n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int rc = connect(fd, (struct sockaddr *)&un,
                     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1));
    int live = rc == 0 || errno == EAGAIN || errno == EINPROGRESS;
    close(fd);
    return live;
}
