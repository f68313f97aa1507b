/*
 * tulip-echo: a single-threaded echo server for benchmarks (the load
 * generator of ../shared/bench drives it beside libuv, raw epoll and
 * uvloop). It prints nothing per connection, listens on --host (127.0.0.1)
 * at --port, and exits on SIGTERM or SIGINT.
 *
 *   --mode protocol  a protocol whose data_received writes the bytes back
 *                    (asyncio's Protocol echo); reading pauses while the
 *                    transport's write buffer is above its high-water mark,
 *                    so a client that never reads cannot grow the server
 *   --mode stream    one task per connection: read, write, drain
 *                    (asyncio's start_server echo)
 *   --backend epoll|poll
 *   --tls CERT KEY   TLS on every connection (tls.h): a server context with
 *                    the PEM certificate chain CERT and its private key KEY,
 *                    the server's `tls` option; both modes. Clients that fail
 *                    the handshake are dropped (the server goes on).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tulip.h"

/* ---- protocol mode ---------------------------------------------------- */

static void echo_data(tl_transport_t *t, const void *data, size_t len,
                      void *ctx) {
    (void)ctx;
    tl_transport_write(t, data, len);
}

static void echo_pause(tl_transport_t *t, void *ctx) {
    (void)ctx;
    tl_transport_pause_reading(t);
}

static void echo_resume(tl_transport_t *t, void *ctx) {
    (void)ctx;
    tl_transport_resume_reading(t);
}

static const tl_protocol_t echo_protocol = {
    .size = sizeof(tl_protocol_t),
    .data_received = echo_data,
    .pause_writing = echo_pause,
    .resume_writing = echo_resume,
};

static int echo_factory(void *fctx, const tl_protocol_t **proto, void **ctx) {
    (void)fctx;
    *proto = &echo_protocol;
    *ctx = NULL;
    return 0;
}

/* ---- stream mode ------------------------------------------------------ */

static int echo_stream(tl_stream_t *s, void *ctx) {
    (void)ctx;
    /* A buffer per connection: a pending read fills its buffer when the
     * data arrives, before the task runs again, so tasks cannot share one. */
    enum { BUF = 64 * 1024 };
    char *buf = malloc(BUF);
    if (buf == NULL)
        return TL_ENOMEM;
    int rc;
    for (;;) {
        size_t got = 0;
        rc = tl_stream_read(s, buf, BUF, &got);
        if (rc || got == 0)
            break;
        if ((rc = tl_stream_write(s, buf, got)) || (rc = tl_stream_drain(s)))
            break;
    }
    free(buf);
    /* A client that resets or goes away ends its connection: that is not
     * an error of the server's (returning it would report it). */
    (void)rc;
    return 0;
}

/* ---- main ------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr, "usage: tulip-echo --port P [--host H] "
                    "[--mode protocol|stream] [--backend epoll|poll]\n"
                    "                  [--tls CERT KEY]\n"
                    "  --tls CERT KEY  serve TLS with the PEM certificate chain CERT\n"
                    "                  and its private key KEY\n");
}

/* A server context with the certificate, or NULL after saying why. */
static tl_tls_context_t *server_context(const char *cert, const char *key) {
    tl_tls_context_t *c = NULL;
    int rc = tl_tls_context_new(TL_TLS_SERVER, &c);
    if (rc == 0 && (rc = tl_tls_context_use_certificate_file(c, cert, key)) != 0) {
        tl_tls_context_unref(c);
        c = NULL;
    }
    if (rc)
        fprintf(stderr, "tulip-echo: --tls %s %s: %s\n", cert, key,
                rc == TL_ENOTSUP ? "this build has no TLS" : tl_strerror(rc));
    return c;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *mode = "protocol", *backend = NULL;
    const char *cert = NULL, *key = NULL;
    int port = -1;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && i + 2 < argc && strcmp(a, "--tls") == 0) {
            cert = v;
            key = argv[++i + 1];
        } else if (v && strcmp(a, "--port") == 0)
            port = atoi(v);
        else if (v && strcmp(a, "--host") == 0)
            host = v;
        else if (v && strcmp(a, "--mode") == 0)
            mode = v;
        else if (v && strcmp(a, "--backend") == 0)
            backend = v;
        else {
            usage();
            return 2;
        }
    }
    int streams = strcmp(mode, "stream") == 0 || strcmp(mode, "streams") == 0;
    if (port < 0 || port > 65535 || (!streams && strcmp(mode, "protocol") != 0)) {
        usage();
        return 2;
    }
    tl_loop_options_t lo = {.size = sizeof(lo)};
    if (backend && (lo.backend = tl_backend_by_name(backend)) == NULL) {
        fprintf(stderr, "tulip-echo: unknown backend %s\n", backend);
        return 2;
    }
    tl_sockaddr_t addr;
    int rc = tl_sockaddr_from_ip(host, port, &addr);
    if (rc) {
        fprintf(stderr, "tulip-echo: bad host %s: %s\n", host, tl_strerror(rc));
        return 2;
    }
    tl_tls_context_t *tls = NULL;
    if (cert && (tls = server_context(cert, key)) == NULL)
        return 1;
    tl_tls_options_t to = {.size = sizeof(to), .context = tls};
    tl_loop_t *loop = NULL;
    if ((rc = tl_loop_new(&lo, &loop))) {
        fprintf(stderr, "tulip-echo: loop: %s\n", tl_strerror(rc));
        if (tls)
            tl_tls_context_unref(tls);
        return 1;
    }
    tl_server_t *server = NULL;
    tl_server_options_t so = {.size = sizeof(so), .backlog = 1024,
                              .tls = tls ? &to : NULL};
    if (streams) {
        tl_stream_options_t st = {.size = sizeof(st), .server = so};
        rc = tl_start_server_addrs(loop, echo_stream, NULL, &addr, 1, &st, &server);
    } else {
        rc = tl_create_server_addrs(loop, echo_factory, NULL, &addr, 1, &so, &server);
    }
    if (rc == 0)
        rc = tl_loop_add_signal_handler(loop, SIGTERM, tl_loop_stop_cb, loop);
    if (rc == 0)
        rc = tl_loop_add_signal_handler(loop, SIGINT, tl_loop_stop_cb, loop);
    if (rc == 0)
        rc = tl_loop_run_forever(loop);
    if (rc)
        fprintf(stderr, "tulip-echo: %s\n", tl_strerror(rc));
    tl_server_free(server);
    tl_loop_close(loop);
    tl_loop_unref(loop);
    if (tls)
        tl_tls_context_unref(tls); /* the server held its own reference */
    return rc ? 1 : 0;
}
