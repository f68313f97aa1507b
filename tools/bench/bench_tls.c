/*
 * tls_handshake, tls_bulk: TLS through tulip on loopback, one loop on one
 * thread holding both ends (a tulip TLS echo server and tulip TLS clients),
 * so every cycle spent is tulip's and BoringSSL's, as in the raw memory-BIO
 * loop of bench_tls_raw.c (the limit these are judged against) plus the
 * loop, the transports and the kernel's loopback TCP.
 *
 *   tls_handshake  --n connections (default 2000), 16 at a time: connect,
 *                  full TLS 1.3 handshake (ECDSA P-256, the client
 *                  verifying chain and name, session resumption off),
 *                  close (close_notify); counted when both ends saw
 *                  connection_lost. The same over plain TCP (connect,
 *                  close) beside it. Median of 3 each:
 *                  {"bench":"tls_handshake","per_s":..,"per_cpu_s":..,
 *                  "plain_per_s":..,"plain_per_cpu_s":..}
 *   tls_bulk       one connection to a protocol echo server (tulip-echo's:
 *                  data_received writes back, reading pauses while the
 *                  write buffer is high); the client keeps 128 KiB in
 *                  flight in 16 KiB writes and checks every byte that
 *                  comes back; --n MiB (default 256). The same code with
 *                  the `tls` options NULL gives the plain TCP figure.
 *                  Median of 3 each:
 *                  {"bench":"tls_bulk","mib_s":..,"plain_mib_s":..,
 *                  "mib_cpu_s":..,"plain_mib_cpu_s":..} (per CPU second:
 *                  the figure that holds on a busy machine).
 *                  TL_BENCH_BULK=tls (or plain) runs only that variant,
 *                  for strace -c, perf and callgrind.
 *
 * The certificate is made in memory (bench_tls_make_cert) and given with
 * tl_tls_context_use_certificate_mem; the client trusts it through
 * load_verify_mem. Without TLS in the build both print a skip line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tulip.h>

#include "bench.h"

#define CONCURRENCY 16
#define CHUNK (16 * 1024)
#define WINDOW (128 * 1024)
#define GUARD_NS (120 * 1000000000LL)

typedef struct tls_env {
    char *cert, *key;
    size_t cert_len, key_len;
    tl_tls_context_t *server, *client;
} tls_env_t;

static void env_free(tls_env_t *e) {
    if (e->server)
        tl_tls_context_unref(e->server);
    if (e->client)
        tl_tls_context_unref(e->client);
    free(e->cert);
    free(e->key);
    memset(e, 0, sizeof *e);
}

/* Server and client contexts, TLS 1.3 only; the client trusts the
 * self-signed certificate and resumes nothing (every handshake is full). */
static int env_init(tls_env_t *e, const char *bench) {
    memset(e, 0, sizeof *e);
    int rc = bench_tls_make_cert(&e->cert, &e->cert_len, &e->key, &e->key_len);
    if (rc == 0)
        rc = tl_tls_context_new(TL_TLS_SERVER, &e->server);
    if (rc == 0)
        rc = tl_tls_context_use_certificate_mem(e->server, e->cert, e->cert_len,
                                                e->key, e->key_len);
    if (rc == 0)
        rc = tl_tls_context_set_versions(e->server, TL_TLS_VERSION_1_3,
                                         TL_TLS_VERSION_1_3);
    if (rc == 0)
        rc = tl_tls_context_new(TL_TLS_CLIENT, &e->client);
    if (rc == 0)
        rc = tl_tls_context_load_verify_mem(e->client, e->cert, e->cert_len);
    if (rc == 0)
        rc = tl_tls_context_set_versions(e->client, TL_TLS_VERSION_1_3,
                                         TL_TLS_VERSION_1_3);
    if (rc == 0)
        rc = tl_tls_context_set_session_cache(e->client, TL_OPT_OFF);
    if (rc) {
        env_free(e);
        if (rc == TL_ENOTSUP)
            printf("{\"bench\":\"%s\",\"skipped\":\"built without TLS\"}\n", bench);
        else
            fprintf(stderr, "%s: setup: %s\n", bench, tl_strerror(rc));
    }
    return rc;
}

/* A loop with a listening server on 127.0.0.1 (a port the system picks). */
typedef struct rig {
    tl_loop_t *loop;
    tl_server_t *server;
    tl_sockaddr_t addr;
    int timed_out;
    const char *error; /* the first failure, for stderr */
    char msg[256];
} rig_t;

static void rig_fail(rig_t *r, const char *what, int code, const char *detail) {
    if (r->error == NULL) {
        snprintf(r->msg, sizeof r->msg, "%s: %s%s%s", what, tl_err_name(code),
                 detail ? ": " : "", detail ? detail : "");
        r->error = r->msg;
    }
    tl_loop_stop(r->loop);
}

static void guard(void *ctx) {
    rig_t *r = ctx;
    r->timed_out = 1;
    tl_loop_stop(r->loop);
}

static int rig_open(rig_t *r, tl_protocol_factory_t factory, void *fctx,
                    const tl_tls_options_t *tls) {
    memset(r, 0, sizeof *r);
    tl_sockaddr_t any;
    tl_server_options_t so = {.size = sizeof so, .backlog = 1024, .tls = tls};
    int rc = tl_loop_new(NULL, &r->loop);
    if (rc == 0 && (rc = tl_sockaddr_from_ip("127.0.0.1", 0, &any)) == 0 &&
        (rc = tl_create_server_addrs(r->loop, factory, fctx, &any, 1, &so,
                                     &r->server)) == 0 &&
        tl_server_sockets(r->server, &r->addr, 1) != 1)
        rc = TL_ESTATE;
    return rc;
}

/* Run until a callback stops the loop (or the guard fires). */
static int rig_run(rig_t *r) {
    tl_handle_t h;
    int rc = tl_loop_call_later(r->loop, GUARD_NS, guard, r, &h);
    if (rc == 0)
        rc = tl_loop_run_forever(r->loop);
    if (rc == 0)
        tl_handle_cancel(r->loop, h);
    if (rc == 0 && r->timed_out)
        rc = TL_ETIMEDOUT;
    return rc;
}

static int rig_close(rig_t *r) {
    int rc = 0;
    if (r->server) {
        tl_future_t *f = NULL;
        tl_server_close(r->server);
        tl_server_abort_clients(r->server);
        if (tl_server_wait_closed(r->server, &f) == 0) {
            rc = tl_loop_run_until_complete(r->loop, f, NULL);
            tl_future_unref(f);
        }
        tl_server_free(r->server);
    }
    if (r->loop) {
        tl_loop_close(r->loop);
        tl_loop_unref(r->loop);
    }
    return rc;
}

/* ---- tls_handshake ---------------------------------------------------- */

typedef struct hs {
    rig_t rig;
    const tl_tls_options_t *tls;
    long n, started, client_lost, server_made, server_lost;
    int checked;
    const char *cipher;
} hs_t;

static void hs_server_made(tl_transport_t *t, void *ctx) {
    (void)t;
    ((hs_t *)ctx)->server_made++;
}

static void hs_stop_when_done(hs_t *h) {
    if (h->client_lost == h->n && h->server_lost == h->n)
        tl_loop_stop(h->rig.loop);
}

static void hs_server_lost(tl_transport_t *t, int error, void *ctx) {
    hs_t *h = ctx;
    (void)t;
    (void)error; /* the client may go before the server's close_notify */
    h->server_lost++;
    hs_stop_when_done(h);
}

static const tl_protocol_t hs_server_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = hs_server_made,
    .connection_lost = hs_server_lost,
};

static int hs_factory(void *fctx, const tl_protocol_t **proto, void **ctx) {
    *proto = &hs_server_proto;
    *ctx = fctx;
    return 0;
}

static void hs_start(hs_t *h);

/* The handshake is done: check what was negotiated once, then close. */
static void hs_client_made(tl_transport_t *t, void *ctx) {
    hs_t *h = ctx;
    if (!h->checked) {
        int version = 0, rc = tl_tls_get_version(t, &version);
        if (rc == 0)
            rc = tl_tls_get_cipher(t, &h->cipher);
        if (rc == 0 && (version != TL_TLS_VERSION_1_3 || tl_tls_session_reused(t) != 0))
            rc = TL_ESTATE;
        if (rc)
            rig_fail(&h->rig, "negotiated", rc, "not a full TLS 1.3 handshake");
        h->checked = 1;
    }
    tl_transport_close(t);
}

static void hs_client_lost(tl_transport_t *t, int error, void *ctx) {
    hs_t *h = ctx;
    (void)t;
    if (error)
        rig_fail(&h->rig, "client connection_lost", error, NULL);
    h->client_lost++;
    if (h->started < h->n)
        hs_start(h);
    hs_stop_when_done(h);
}

static const tl_protocol_t hs_client_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = hs_client_made,
    .connection_lost = hs_client_lost,
};

static void hs_connected(tl_future_t *f, void *ctx) {
    hs_t *h = ctx;
    int rc = tl_future_error(f);
    if (rc)
        rig_fail(&h->rig, "connect", rc, tl_future_error_message(f));
    tl_future_unref(f);
}

static void hs_start(hs_t *h) {
    tl_connect_options_t co = {.size = sizeof co, .tls = h->tls};
    tl_future_t *f;
    h->started++;
    int rc = tl_create_connection_addr(h->rig.loop, &hs_client_proto, h, &h->rig.addr,
                                       &co, &f);
    if (rc == 0)
        rc = tl_future_add_done_callback(f, hs_connected, h);
    if (rc)
        rig_fail(&h->rig, "tl_create_connection_addr", rc, NULL);
}

/* One run of n connections: per wall second and per CPU second, or -1
 * after saying why. client_tls NULL: plain TCP, the same code. */
static double hs_once(long n, const tl_tls_options_t *server_tls,
                      const tl_tls_options_t *client_tls, double *per_cpu_s,
                      const char **cipher) {
    static hs_t h;
    memset(&h, 0, sizeof h);
    int rc = rig_open(&h.rig, hs_factory, &h, server_tls);
    h.tls = client_tls;
    h.n = n;
    h.checked = client_tls == NULL; /* nothing negotiated to check */
    bench_clock_t a = bench_clock_now();
    for (int i = 0; rc == 0 && i < CONCURRENCY && h.started < n; i++)
        hs_start(&h);
    if (rc == 0)
        rc = rig_run(&h.rig);
    bench_clock_t b = bench_clock_now();
    double r = -1;
    if (rc || h.rig.error || h.client_lost != n || h.server_made != n) {
        fprintf(stderr, "tls_handshake (%s): %s; %ld of %ld done, %ld made on the server\n",
                client_tls ? "tls" : "plain", h.rig.error ? h.rig.error : tl_strerror(rc),
                h.client_lost, n, h.server_made);
    } else {
        r = (double)n / bench_wall_s(&a, &b);
        *per_cpu_s = (double)n / bench_cpu_s(&a, &b);
        if (h.cipher)
            *cipher = h.cipher; /* static storage */
    }
    rig_close(&h.rig);
    return r;
}

int bench_tls_handshake(const bench_opts_t *o) {
    long n = o->n > 0 ? o->n : 2000;
    tls_env_t e;
    int rc0 = env_init(&e, "tls_handshake");
    if (rc0)
        return rc0 == TL_ENOTSUP ? 0 : 1;
    tl_tls_options_t so = {.size = sizeof so, .context = e.server};
    tl_tls_options_t co = {.size = sizeof co, .context = e.client,
                           .server_hostname = "localhost"};
    double tls[3], tls_cpu[3], plain[3], plain_cpu[3];
    int ok = 1;
    const char *cipher = "";
    for (int k = 0; k < 3 && ok; k++) { /* interleaved: both see the same noise */
        tls[k] = hs_once(n, &so, &co, &tls_cpu[k], &cipher);
        plain[k] = hs_once(n, NULL, NULL, &plain_cpu[k], &cipher);
        ok = tls[k] > 0 && plain[k] > 0;
    }
    env_free(&e);
    if (ok)
        printf("{\"bench\":\"tls_handshake\",\"handshakes\":%ld,\"concurrency\":%d,"
               "\"version\":\"TLSv1.3\",\"cert\":\"ECDSA P-256\",\"cipher\":\"%s\","
               "\"per_s\":%.0f,\"per_cpu_s\":%.0f,\"plain_per_s\":%.0f,"
               "\"plain_per_cpu_s\":%.0f}\n",
               n, CONCURRENCY, cipher, bench_median(tls, 3), bench_median(tls_cpu, 3),
               bench_median(plain, 3), bench_median(plain_cpu, 3));
    return ok ? 0 : 1;
}

/* ---- tls_bulk --------------------------------------------------------- */

static uint8_t pattern[CHUNK]; /* every write sends it whole */

static void echo_data(tl_transport_t *t, const void *data, size_t len, void *ctx) {
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

static const tl_protocol_t echo_proto = {
    .size = sizeof(tl_protocol_t),
    .data_received = echo_data,
    .pause_writing = echo_pause,
    .resume_writing = echo_resume,
};

static int echo_factory(void *fctx, const tl_protocol_t **proto, void **ctx) {
    (void)fctx;
    *proto = &echo_proto;
    *ctx = NULL;
    return 0;
}

typedef struct bulk {
    rig_t rig;
    tl_transport_t *t;
    uint64_t total, sent, received;
    bench_clock_t c0, c1;
    int finished;
} bulk_t;

static void bulk_pump(bulk_t *b) {
    while (b->sent < b->total && b->sent - b->received < WINDOW) {
        /* chunks start at multiples of CHUNK: offset 0 of the pattern */
        int rc = tl_transport_write(b->t, pattern, CHUNK);
        if (rc) {
            rig_fail(&b->rig, "write", rc, NULL);
            return;
        }
        b->sent += CHUNK;
    }
}

static void bulk_made(tl_transport_t *t, void *ctx) {
    bulk_t *b = ctx;
    b->t = t;
    b->c0 = bench_clock_now(); /* after the handshake: bulk only */
    bulk_pump(b);
}

static void bulk_data(tl_transport_t *t, const void *data, size_t len, void *ctx) {
    bulk_t *b = ctx;
    (void)t;
    size_t off = (size_t)(b->received % CHUNK);
    const uint8_t *p = data;
    while (len > 0) { /* compare in pieces that stay inside one chunk */
        size_t n = len < CHUNK - off ? len : CHUNK - off;
        if (memcmp(p, pattern + off, n) != 0) {
            rig_fail(&b->rig, "echo", TL_ESTATE, "the bytes came back changed");
            return;
        }
        p += n;
        len -= n;
        b->received += n;
        off = 0;
    }
    if (b->received == b->total) {
        b->c1 = bench_clock_now();
        b->finished = 1;
        tl_transport_close(b->t);
    } else {
        bulk_pump(b);
    }
}

static void bulk_lost(tl_transport_t *t, int error, void *ctx) {
    bulk_t *b = ctx;
    (void)t;
    if (error)
        rig_fail(&b->rig, "client connection_lost", error, NULL);
    else if (b->received != b->total)
        rig_fail(&b->rig, "client connection_lost", TL_ESTATE, "before the end");
    tl_loop_stop(b->rig.loop);
}

static const tl_protocol_t bulk_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = bulk_made,
    .data_received = bulk_data,
    .connection_lost = bulk_lost,
};

static void bulk_connected(tl_future_t *f, void *ctx) {
    bulk_t *b = ctx;
    int rc = tl_future_error(f);
    if (rc)
        rig_fail(&b->rig, "connect", rc, tl_future_error_message(f));
    tl_future_unref(f);
}

/* MiB/s of one echo run (wall, and per CPU second in *cpu), or -1 after
 * saying why. */
static double bulk_once(long mib, const tl_tls_options_t *server_tls,
                        const tl_tls_options_t *client_tls, double *cpu) {
    static bulk_t b;
    memset(&b, 0, sizeof b);
    b.total = (uint64_t)mib * 1024 * 1024;
    tl_connect_options_t co = {.size = sizeof co, .tls = client_tls};
    tl_future_t *f;
    int rc = rig_open(&b.rig, echo_factory, NULL, server_tls);
    if (rc == 0)
        rc = tl_create_connection_addr(b.rig.loop, &bulk_proto, &b, &b.rig.addr, &co, &f);
    if (rc == 0)
        rc = tl_future_add_done_callback(f, bulk_connected, &b);
    if (rc == 0)
        rc = rig_run(&b.rig);
    double r = -1;
    if (rc || b.rig.error || !b.finished)
        fprintf(stderr, "tls_bulk (%s): %s\n", client_tls ? "tls" : "plain",
                b.rig.error ? b.rig.error : tl_strerror(rc ? rc : TL_ESTATE));
    else {
        r = (double)mib / bench_wall_s(&b.c0, &b.c1);
        *cpu = (double)mib / bench_cpu_s(&b.c0, &b.c1);
    }
    rig_close(&b.rig);
    return r;
}

int bench_tls_bulk(const bench_opts_t *o) {
    long mib = o->n > 0 ? o->n : 256;
    tls_env_t e;
    int rc0 = env_init(&e, "tls_bulk");
    if (rc0)
        return rc0 == TL_ENOTSUP ? 0 : 1;
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (uint8_t)((i * 7) % 251);
    tl_tls_options_t so = {.size = sizeof so, .context = e.server};
    tl_tls_options_t co = {.size = sizeof co, .context = e.client,
                           .server_hostname = "localhost"};
    double tls[3] = {0}, plain[3] = {0}, tls_cpu[3] = {0}, plain_cpu[3] = {0};
    int ok = 1;
    /* TL_BENCH_BULK=tls or plain runs only that variant (for strace -c,
     * perf record and callgrind); the other prints 0. */
    const char *only = getenv("TL_BENCH_BULK");
    int do_tls = only == NULL || strcmp(only, "plain") != 0;
    int do_plain = only == NULL || strcmp(only, "tls") != 0;
    for (int k = 0; k < 3 && ok; k++) { /* interleaved: both see the same noise */
        if (do_tls)
            tls[k] = bulk_once(mib, &so, &co, &tls_cpu[k]);
        if (do_plain)
            plain[k] = bulk_once(mib, NULL, NULL, &plain_cpu[k]);
        ok = (!do_tls || tls[k] > 0) && (!do_plain || plain[k] > 0);
    }
    env_free(&e);
    if (ok)
        printf("{\"bench\":\"tls_bulk\",\"mib\":%ld,\"chunk\":%d,\"window\":%d,"
               "\"mib_s\":%.0f,\"plain_mib_s\":%.0f,\"mib_cpu_s\":%.0f,"
               "\"plain_mib_cpu_s\":%.0f}\n",
               mib, CHUNK, WINDOW, bench_median(tls, 3), bench_median(plain, 3),
               bench_median(tls_cpu, 3), bench_median(plain_cpu, 3));
    return ok ? 0 : 1;
}
