/*
 * The TLS part: tl_start_server with the `tls` option (a server context
 * holding a P-256 certificate for localhost, made just now with
 * openssl(1) in a temp folder, removed at the end), client tasks that
 * connect with tl_open_connection and their own `tls` option (a client
 * context trusting that certificate), exchange a line each through
 * streams and show what was negotiated (version, cipher, ALPN, SNI on the
 * server's side); then a client that trusts another certificate refuses
 * the server with TL_ECERTVERIFY and BoringSSL's reason.
 *
 * Clients connect to 127.0.0.1 with server_hostname "localhost": the name
 * sent as SNI and checked against the certificate (its subjectAltName has
 * both). Client 0 runs alone first, so the others may resume the session
 * it was given (the demo reports what happened; resumption is an
 * optimisation, not a promise).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo.h"

#define NCLIENTS 8
#define GUARD_MS 5000
#define ALPN "tulip-demo/1"

typedef struct tlsdemo {
    char dir[256];
    char server_pem[320], server_key[320], other_pem[320], other_key[320], err[320];
    char host[64], port[16];
    tl_tls_context_t *server_ctx, *client_ctx, *wrong_ctx;
    tl_tls_options_t server_opts, client_opts, wrong_opts;
    tl_server_t *server;
    tl_loop_t *loop;
    int handled, served_lines, sni_localhost;
    int clients_done, resumed, agree;
    int version;
    const char *cipher;
    char alpn[32];
    int refused_rc;
    char refused_msg[200];
} tlsdemo_t;

static tlsdemo_t tdemo;

static const char *version_name(int v) {
    return v == TL_TLS_VERSION_1_3 ? "TLSv1.3" : v == TL_TLS_VERSION_1_2 ? "TLSv1.2" : "?";
}

/* ---- certificates ----------------------------------------------------- */

static void remove_certs(tlsdemo_t *d) {
    if (d->dir[0] == '\0')
        return;
    const char *files[] = {d->server_pem, d->server_key, d->other_pem, d->other_key, d->err};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(d->dir);
    d->dir[0] = '\0';
}

/* Two self-signed ECDSA P-256 certificates for localhost and 127.0.0.1,
 * made by two openssl(1) runs at once: the server's, and another one a
 * client trusts instead to show a refusal. (system() is safe beside
 * tulip's child watcher, which reaps only its own children by pid.) */
static int make_certs(tlsdemo_t *d) {
    const char *tmp = getenv("TMPDIR");
    snprintf(d->dir, sizeof d->dir, "%s/tulip-demo-tls-XXXXXX",
             tmp && *tmp && strlen(tmp) < 200 && !strchr(tmp, '\'') ? tmp : "/tmp");
    if (mkdtemp(d->dir) == NULL) {
        demo_fail("mkdtemp(%s) failed", d->dir);
        d->dir[0] = '\0';
        return -1;
    }
    snprintf(d->server_pem, sizeof d->server_pem, "%s/server.pem", d->dir);
    snprintf(d->server_key, sizeof d->server_key, "%s/server.key", d->dir);
    snprintf(d->other_pem, sizeof d->other_pem, "%s/other.pem", d->dir);
    snprintf(d->other_key, sizeof d->other_key, "%s/other.key", d->dir);
    snprintf(d->err, sizeof d->err, "%s/openssl.err", d->dir);
    const char *req = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                      "-nodes -days 2 -subj /CN=localhost "
                      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1";
    char cmd[4096];
    int len = snprintf(cmd, sizeof cmd,
             "(%s -keyout '%s' -out '%s') 2>'%s' & "
             "(%s -keyout '%s' -out '%s') 2>>'%s'; s=$?; wait $! && exit $s",
             req, d->server_key, d->server_pem, d->err, req, d->other_key, d->other_pem,
             d->err);
    CHECK(len > 0 && (size_t)len < sizeof cmd, "the openssl command is too long");
    fflush(stdout);
    int status = system(cmd);
    if (status != 0 || access(d->server_pem, R_OK) != 0 ||
        access(d->other_pem, R_OK) != 0) {
        char why[200] = "";
        FILE *f = fopen(d->err, "r");
        if (f) {
            if (fgets(why, sizeof why, f) == NULL)
                why[0] = '\0';
            fclose(f);
        }
        why[strcspn(why, "\n")] = '\0';
        demo_fail("openssl(1) made no certificate (is it installed? `make deps`)%s%s",
                  why[0] ? ": " : "", why);
        return -1;
    }
    return 0;
}

/* ---- the server: a task per connection, lines answered in upper case -- */

static int tls_handle(tl_stream_t *s, void *ctx) {
    tlsdemo_t *d = ctx;
    d->handled++;
    const char *sni = NULL;
    if (tl_tls_get_server_name(tl_stream_transport(s), &sni) == 0 && sni &&
        strcmp(sni, "localhost") == 0)
        d->sni_localhost++;
    char line[128];
    for (;;) {
        size_t got = 0;
        int rc = tl_stream_readline(s, line, sizeof line, &got);
        if (rc || got == 0)
            return 0; /* the client's close_notify: EOF */
        for (size_t i = 0; i < got; i++)
            if (line[i] >= 'a' && line[i] <= 'z')
                line[i] = (char)(line[i] - 'a' + 'A');
        d->served_lines++;
        if (tl_stream_write(s, line, got) || tl_stream_drain(s))
            return 0;
    }
}

/* ---- clients ---------------------------------------------------------- */

static int tls_client(void *arg, void **result) {
    tlsdemo_t *d = &tdemo;
    int id = (int)(intptr_t)arg;
    (void)result;
    tl_stream_options_t so = {.size = sizeof so};
    so.connect.size = sizeof so.connect;
    so.connect.tls = &d->client_opts;
    tl_stream_t *s;
    TASK_TRY(tl_open_connection(d->host, d->port, &so, &s));
    char out[64], in[64], want[64];
    int len = snprintf(out, sizeof out, "hello through tls from client %d\n", id);
    snprintf(want, sizeof want, "HELLO THROUGH TLS FROM CLIENT %d\n", id);
    size_t got = 0;
    int rc = tl_stream_write(s, out, (size_t)len);
    if (rc == 0)
        rc = tl_stream_readline(s, in, sizeof in, &got);
    if (rc == 0 && (got != (size_t)len || memcmp(in, want, got) != 0)) {
        demo_fail("client %d got \"%.*s\"", id, (int)got, in);
        rc = TL_ESTATE;
    }
    /* What the handshake settled, on the client's side. */
    tl_transport_t *t = tl_stream_transport(s);
    int version = 0;
    const char *cipher = NULL, *alpn = NULL;
    size_t alpn_len = 0;
    if (rc == 0 && (rc = tl_tls_get_version(t, &version)) == 0 &&
        (rc = tl_tls_get_cipher(t, &cipher)) == 0 &&
        (rc = tl_tls_get_alpn(t, &alpn, &alpn_len)) == 0) {
        if (id == 0) {
            d->version = version;
            d->cipher = cipher; /* static storage */
            snprintf(d->alpn, sizeof d->alpn, "%.*s", (int)alpn_len, alpn ? alpn : "");
        } else if (version == d->version && cipher && strcmp(cipher, d->cipher) == 0 &&
                   alpn_len == strlen(d->alpn) && memcmp(alpn, d->alpn, alpn_len) == 0) {
            d->agree++;
        }
        if (tl_tls_session_reused(t) == 1)
            d->resumed++;
    }
    if (rc == 0)
        rc = tl_stream_close(s); /* close_notify, then the TCP close */
    if (rc == 0)
        rc = tl_stream_wait_closed(s);
    tl_stream_free(s);
    if (rc == 0)
        d->clients_done++;
    return rc;
}

/* A client that trusts only the other certificate: the handshake fails,
 * and create_connection's future carries the code and BoringSSL's reason
 * (a protocol that never gets connection_made: the handshake never ends). */
static const tl_protocol_t refused_proto = {.size = sizeof(tl_protocol_t)};

static int wrong_client(void *arg, void **result) {
    tlsdemo_t *d = &tdemo;
    (void)arg;
    (void)result;
    tl_connect_options_t co = {.size = sizeof co, .tls = &d->wrong_opts};
    tl_future_t *f;
    TASK_TRY(tl_create_connection(d->loop, &refused_proto, NULL, d->host, d->port, &co, &f));
    void *t = NULL;
    d->refused_rc = tl_await(f, &t);
    const char *msg = tl_future_error_message(f);
    snprintf(d->refused_msg, sizeof d->refused_msg, "%s", msg ? msg : "");
    if (d->refused_rc == 0)
        tl_transport_abort(t);
    tl_future_unref(f);
    return 0;
}

/* Spawn tasks ids [from, to) of fn and wait for all of them. */
static int run_tasks(tlsdemo_t *d, tl_task_fn_t fn, int from, int to) {
    tl_task_t *tasks[NCLIENTS] = {0};
    tl_future_t *futs[NCLIENTS] = {0};
    int n = 0;
    for (int i = from; i < to; i++) {
        TRY(tl_task_spawn(d->loop, fn, (void *)(intptr_t)i, NULL, &tasks[n]));
        futs[n] = tl_task_future(tasks[n]);
        n++;
    }
    tl_future_t *all;
    int rc = tl_gather(d->loop, futs, (size_t)n, 0, &all);
    if (rc == 0) {
        int failed = demo_complete(d->loop, all, GUARD_MS, &rc, NULL);
        tl_future_unref(all);
        if (failed)
            rc = TL_ESTATE;
    }
    for (int i = 0; i < n; i++)
        tl_task_unref(tasks[i]);
    CHECK(rc == 0, "a TLS client failed: %s", tl_err_name(rc));
    return 0;
}

/* ---- the part --------------------------------------------------------- */

static int setup(tlsdemo_t *d) {
    static const char *const server_alpn[] = {ALPN, "http/1.1"};
    static const char *const client_alpn[] = {"h2", ALPN};
    TRY(tl_tls_context_new(TL_TLS_SERVER, &d->server_ctx));
    TRY(tl_tls_context_use_certificate_file(d->server_ctx, d->server_pem, d->server_key));
    TRY(tl_tls_context_set_alpn(d->server_ctx, server_alpn, 2));
    TRY(tl_tls_context_new(TL_TLS_CLIENT, &d->client_ctx));
    TRY(tl_tls_context_load_verify_file(d->client_ctx, d->server_pem));
    TRY(tl_tls_context_set_alpn(d->client_ctx, client_alpn, 2));
    TRY(tl_tls_context_new(TL_TLS_CLIENT, &d->wrong_ctx));
    TRY(tl_tls_context_load_verify_file(d->wrong_ctx, d->other_pem));
    d->server_opts = (tl_tls_options_t){.size = sizeof(tl_tls_options_t),
                                        .context = d->server_ctx};
    d->client_opts = (tl_tls_options_t){.size = sizeof(tl_tls_options_t),
                                        .context = d->client_ctx,
                                        .server_hostname = "localhost"};
    d->wrong_opts = d->client_opts;
    d->wrong_opts.context = d->wrong_ctx;

    tl_sockaddr_t addr, bound;
    tl_stream_options_t so = {.size = sizeof so};
    so.server.size = sizeof so.server;
    so.server.tls = &d->server_opts;
    TRY(tl_sockaddr_from_ip("127.0.0.1", 0, &addr));
    TRY(tl_start_server_addrs(d->loop, tls_handle, d, &addr, 1, &so, &d->server));
    CHECK(tl_server_sockets(d->server, &bound, 1) == 1, "the server has no socket");
    int port = 0;
    TRY(tl_sockaddr_to_string(&bound, d->host, sizeof d->host, &port));
    snprintf(d->port, sizeof d->port, "%d", port);
    return 0;
}

static int exchange(tlsdemo_t *d) {
    printf("   A TLS server (tl_start_server, `tls` option) listens on %s port %s\n"
           "   with a P-256 certificate for localhost that openssl(1) made just now;\n"
           "   its ALPN list is \"%s\", \"http/1.1\".\n", d->host, d->port, ALPN);
    uint64_t t0 = tl_now_ns();
    if (run_tasks(d, tls_client, 0, 1) || run_tasks(d, tls_client, 1, NCLIENTS))
        return -1;
    CHECK(d->clients_done == NCLIENTS && d->served_lines == NCLIENTS,
          "%d clients done, %d lines served", d->clients_done, d->served_lines);
    CHECK(d->version == TL_TLS_VERSION_1_3, "negotiated version %#x", d->version);
    CHECK(d->cipher != NULL && strncmp(d->cipher, "TLS_", 4) == 0, "cipher %s",
          d->cipher ? d->cipher : "(none)");
    CHECK(strcmp(d->alpn, ALPN) == 0, "ALPN \"%s\"", d->alpn);
    CHECK(d->agree == NCLIENTS - 1, "only %d clients agree on the parameters",
          d->agree + 1);
    CHECK(d->sni_localhost == NCLIENTS, "the server saw SNI localhost %d times",
          d->sni_localhost);
    printf("   %d client tasks (tl_open_connection with a `tls` option trusting that\n"
           "   certificate, server_hostname \"localhost\") each sent a line and read\n"
           "   the answer through TLS in %.1f ms.\n"
           "   Negotiated: %s, cipher %s, ALPN \"%s\"\n"
           "   (the clients offered \"h2\", \"%s\"); the server saw SNI \"localhost\"\n"
           "   on every connection.\n",
           NCLIENTS, demo_ms_since(t0), version_name(d->version), d->cipher, d->alpn, ALPN);
    if (d->resumed > 0)
        printf("   Client 0 ran first; %d of the %d after it resumed its session (a\n"
               "   ticket: no certificate sent or checked again).\n",
               d->resumed, NCLIENTS - 1);
    else
        printf("   Every client made a full handshake (no session was resumed).\n");
    return 0;
}

static int refusal(tlsdemo_t *d) {
    int handled = d->handled;
    if (run_tasks(d, wrong_client, 0, 1))
        return -1;
    CHECK(d->refused_rc == TL_ECERTVERIFY,
          "a client trusting another certificate got %s, not TL_ECERTVERIFY",
          tl_err_name(d->refused_rc));
    CHECK(d->refused_msg[0] != '\0', "the failed handshake's future has no message");
    CHECK(d->handled == handled, "the server ran its handler for a refused client");
    printf("   A client that trusts only another certificate (tl_create_connection)\n"
           "   refused the server: the future failed with %s, message\n"
           "   \"%s\".\n"
           "   The server dropped that connection; its handler never ran.\n",
           tl_err_name(d->refused_rc), d->refused_msg);
    return 0;
}

static int shutdown_server(tlsdemo_t *d) {
    tl_future_t *closed;
    int rc;
    TRY(tl_server_close(d->server));
    TRY(tl_server_wait_closed(d->server, &closed));
    int failed = demo_complete(d->loop, closed, GUARD_MS, &rc, NULL);
    tl_future_unref(closed);
    if (failed)
        return -1;
    CHECK(rc == 0, "wait_closed failed: %s", tl_err_name(rc));
    return 0;
}

static void teardown(tlsdemo_t *d) {
    if (d->server)
        tl_server_free(d->server);
    tl_tls_context_t *ctxs[] = {d->server_ctx, d->client_ctx, d->wrong_ctx};
    for (int i = 0; i < 3; i++)
        if (ctxs[i])
            tl_tls_context_unref(ctxs[i]);
    remove_certs(d);
}

int demo_tls(tl_loop_t *loop) {
    tlsdemo_t *d = &tdemo;
    memset(d, 0, sizeof *d);
    d->loop = loop;
    if (!tl_tls_available()) {
        printf("   This build has no TLS (built without BoringSSL: TLS=0); skipped.\n");
        return 0;
    }
    int rc = make_certs(d);
    if (rc == 0)
        rc = setup(d);
    if (rc == 0)
        rc = exchange(d);
    if (rc == 0)
        rc = refusal(d);
    if (d->server && shutdown_server(d) && rc == 0)
        rc = -1;
    teardown(d);
    return rc;
}
