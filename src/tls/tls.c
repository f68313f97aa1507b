/*
 * The TLS engine (asyncio's sslproto.SSLProtocol): it becomes the
 * protocol of a connected stream transport (the "lower" one), runs the
 * handshake over it, and then is the "tls" transport the application's
 * protocol sees (tls_transport.c).
 *
 * I/O without double copies. The SSL's BIO (one custom BIO for both
 * directions) reads from the slice the lower transport's data_received is
 * handing us at that moment; what SSL did not take of it (a record that
 * arrived while the application's reading is paused, or before its
 * connection_made ran) is kept in e->kept for the next round, and read
 * first. The BIO's write is tl_transport_write on the lower transport:
 * ciphertext goes to the network at once, and only what the kernel does
 * not take is buffered (by the lower transport). A write of several
 * records gathers them first (e->obuf, up to TLS_BATCH_RECORDS): one
 * send for four records costs one copy of the ciphertext and saves three
 * system calls. Reading decrypts as many records as are at hand (up to
 * TLS_READ_MAX) into one data_received.
 *
 * Re-entrancy. No application callback runs inside an SSL call (e->in_ssl):
 * the lower transport's pause_writing, which can come from inside SSL_write
 * through the BIO, only marks; the bookkeeping runs after the call. Data
 * the lower transport delivers while the engine is already reading
 * (e->in_pump) is kept, after what is left of the slice being read.
 *
 * The handshake starts from a call_soon (done never runs inside
 * tl__tls_wrap) and ends in done(arg, 0, tls) once SSL_do_handshake
 * succeeds: the TLS transport is made there and its connection_made
 * scheduled; records that arrived with the handshake's last flight wait
 * in e->kept until connection_made ran (vt->made).
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../core/alloc.h"
#include "tls_engine.h"

#define HANDSHAKE_TIMEOUT_NS ((int64_t)60 * 1000000000) /* asyncio's */
#define SHUTDOWN_TIMEOUT_NS ((int64_t)30 * 1000000000)
enum { KEPT_KEEP = 64 * 1024 }; /* a kept buffer larger goes once empty */

static void engine_free(tls_t *e);

/* ---- errors ------------------------------------------------------------ */

static void set_msg(tls_t *e, const char *s) {
    if (e->msg[0] == '\0')
        snprintf(e->msg, sizeof e->msg, "%s", s);
}

int tl__tls_ssl_error(tls_t *e, int ret, int ssl_err) {
    if (e->bio_err) { /* the lower transport refused a write */
        int rc = e->bio_err;
        e->bio_err = 0;
        ERR_clear_error();
        set_msg(e, tl_strerror(rc));
        return rc;
    }
    char msg[sizeof e->msg];
    int rc = tl__tls_error(e->ssl, ret, ssl_err, msg, sizeof msg);
    set_msg(e, msg);
    return rc;
}

/* An error that only says the lower transport is already ending (its
 * connection_lost brings the real one). */
static int lower_going(const tls_t *e, int error) {
    return error == TL_ECLOSED && (e->lower_lost || e->lower->closing);
}

static void cancel_handle(tls_t *e, tl_handle_t *h) {
    if (*h) {
        tl_handle_cancel(e->loop, *h);
        *h = 0;
    }
}

static void cancel_all(tls_t *e) {
    cancel_handle(e, &e->start_h);
    cancel_handle(e, &e->hs_timer);
    cancel_handle(e, &e->shut_timer);
    cancel_handle(e, &e->resume_h);
    cancel_handle(e, &e->sf_h);
    cancel_handle(e, &e->idle_timer);
}

/* ---- the handshake's end ------------------------------------------------ */

static void fail_handshake(tls_t *e, int error) {
    if (e->state != TLS_ST_NEW && e->state != TLS_ST_HANDSHAKE)
        return;
    e->state = TLS_ST_FAILED;
    e->err = error;
    set_msg(e, tl_strerror(error));
    cancel_all(e);
    if (!e->lower_lost)
        tl_transport_abort(e->lower);
    tl__tls_done_fn done = e->done;
    e->done = NULL;
    done(e->done_arg, error, NULL);
    if (e->lower_lost)
        engine_free(e);
}

static void handshake_ok(tls_t *e) {
    cancel_handle(e, &e->hs_timer);
    int rc = tl__transport_init(&e->base, &tl__tls_vt, e->loop, e->app_proto,
                                e->app_ctx);
    if (rc == 0 && (rc = tl__transport_schedule_made(&e->base)) != 0) {
        tl__transport_discard(&e->base);
        memset(&e->base, 0, sizeof e->base);
    }
    if (rc) {
        fail_handshake(e, rc);
        return;
    }
    e->base.refs++; /* the engine's own, until the lower one is lost */
    e->self_ref = 1;
    e->state = TLS_ST_OPEN;
    /* Both start from the same water marks; tl__tls_settle keeps the lower
     * transport's equal to ours. */
    e->lower->high = e->base.high;
    e->lower->low = e->base.low;
    tl__tls_done_fn done = e->done;
    e->done = NULL;
    done(e->done_arg, 0, &e->base);
}

static void handshake_step(tls_t *e) {
    e->in_ssl = 1;
    int r = SSL_do_handshake(e->ssl);
    e->in_ssl = 0;
    if (r == 1) {
        handshake_ok(e);
        return;
    }
    int se = SSL_get_error(e->ssl, r);
    if (se == SSL_ERROR_WANT_READ)
        return;
    int rc = tl__tls_ssl_error(e, r, se);
    if (lower_going(e, rc))
        return; /* its connection_lost ends the handshake */
    fail_handshake(e, rc);
}

/* ---- failing an open connection ---------------------------------------- */

void tl__tls_fatal(tls_t *e, int error) {
    if (e->state == TLS_ST_NEW || e->state == TLS_ST_HANDSHAKE) {
        fail_handshake(e, error);
        return;
    }
    if (e->state != TLS_ST_OPEN)
        return;
    if (!e->err && !lower_going(e, error)) {
        e->err = error;
        set_msg(e, tl_strerror(error));
    }
    e->base.closing = 1;
    cancel_handle(e, &e->resume_h);
    tl__tls_drop_queue(e);
    if (!e->lower_lost)
        tl_transport_abort(e->lower);
}

/* ---- reading ------------------------------------------------------------ */

/* The peer's close_notify: the application's eof_received (its answer is
 * ignored), then our close_notify and the close. */
static void got_close_notify(tls_t *e) {
    tl_transport_t *t = &e->base;
    e->close_notify = 1;
    if (t->closing)
        return;
    if (t->proto.eof_received)
        t->proto.eof_received(t, t->proto_ctx);
    if (!t->closing)
        tl_transport_close(t);
}

/* Plaintext bytes that one data_received may get: what SSL holds
 * decrypted plus the ciphertext at hand (a record's plaintext is never
 * longer than the record), at least one record (SSL may hold the start of
 * one from an earlier slice), at most TLS_READ_MAX. */
static size_t read_size(const tls_t *e) {
    size_t n = (size_t)SSL_pending(e->ssl) + e->in_len + e->kept_len;
    if (n < TLS_RECORD)
        n = TLS_RECORD; /* SSL may hold the start of a record */
    return n < TLS_READ_MAX ? n : TLS_READ_MAX;
}

/* Decrypt and deliver while the application reads: as many records as
 * fit per data_received (up to TLS_READ_MAX), so a burst costs the
 * application as few calls as it would over plain TCP. 1 when SSL wants
 * more ciphertext (everything readable was read), else 0. */
static int read_records(tls_t *e) {
    tl_transport_t *t = &e->base;
    while (e->state == TLS_ST_OPEN && t->reading && !t->closing) {
        unsigned char *buf;
        size_t cap;
        int buffered = t->proto.get_buffer != NULL;
        if (buffered) {
            void *b = NULL;
            size_t n = 0;
            int rc = t->proto.get_buffer(t, read_size(e), &b, &n,
                                         t->proto_ctx);
            if (rc < 0 || b == NULL || n == 0) {
                tl__tls_fatal(e, rc < 0 ? rc : TL_ENOBUFS);
                return 0;
            }
            if (t->closing)
                return 0;
            buf = b;
            cap = n;
        } else {
            /* An idle connection holds no plaintext buffer (see
             * tls_engine.h); a burst grows it to TLS_READ_MAX at most. */
            size_t want = read_size(e);
            if (e->rbuf == NULL || e->rcap < want) {
                unsigned char *nb = tl__realloc(e->rbuf, want);
                if (nb == NULL) {
                    if (e->rbuf == NULL) {
                        tl__tls_fatal(e, TL_ENOMEM);
                        return 0;
                    }
                } else {
                    e->rbuf = nb;
                    e->rcap = want;
                }
            }
            buf = e->rbuf;
            cap = e->rcap;
        }
        size_t got = 0;
        int status = 0; /* 0 buffer full, 1 wants more, 2 close_notify, <0 */
        while (got < cap) {
            size_t want = cap - got < INT_MAX ? cap - got : INT_MAX;
            e->in_ssl = 1;
            int r = SSL_read(e->ssl, buf + got, (int)want);
            e->in_ssl = 0;
            if (r > 0) {
                got += (size_t)r;
                continue;
            }
            int se = SSL_get_error(e->ssl, r);
            if (se == SSL_ERROR_WANT_READ)
                status = 1;
            else if (se == SSL_ERROR_ZERO_RETURN)
                status = 2;
            else
                status = tl__tls_ssl_error(e, r, se);
            break;
        }
        if (got) {
            if (buffered) {
                if (t->proto.buffer_updated)
                    t->proto.buffer_updated(t, got, t->proto_ctx);
            } else if (t->proto.data_received) {
                t->proto.data_received(t, buf, got, t->proto_ctx);
            }
        }
        if (status < 0) {
            tl__tls_fatal(e, status);
            return 0;
        }
        if (status == 1)
            return 1;
        if (status == 2) {
            /* A protocol that paused in the callback hears of it when it
             * resumes (SSL_read answers close_notify again). */
            if (t->reading)
                got_close_notify(e);
            return 0;
        }
    }
    return 0;
}

static int read_app(tls_t *e) {
    int drained = read_records(e);
    if (e->rbuf && e->rcap <= TLS_RECORD) {
        tl__free(e->rbuf); /* small: not worth keeping */
        e->rbuf = NULL;
        e->rcap = 0;
    } else if (e->rbuf) {
        tl__tls_bufs_used(e);
    }
    return drained;
}

static void idle_cb(void *ctx) {
    tls_t *e = ctx;
    e->idle_timer = 0;
    if (e->bufs_used && e->state == TLS_ST_OPEN && !e->base.lost) {
        tl__tls_bufs_used(e); /* still flowing: look again later */
        return;
    }
    tl__free(e->rbuf);
    e->rbuf = NULL;
    e->rcap = 0;
    tl__free(e->obuf);
    e->obuf = NULL;
    e->ocap = e->olen = 0;
}

void tl__tls_bufs_used(tls_t *e) {
    if (e->idle_timer) {
        e->bufs_used = 1;
        return;
    }
    e->bufs_used = 0;
    if (e->state == TLS_ST_OPEN && !e->base.lost &&
        tl_loop_call_later(e->loop, TLS_IDLE_NS, idle_cb, e,
                           &e->idle_timer) == 0)
        return;
    idle_cb(e); /* no timer: free them now */
}

/* The lower transport's peer closed without close_notify (everything
 * before it was read): TL_ETLSEOF. */
static void eof_without_notify(tls_t *e) {
    if (!e->err) {
        e->err = TL_ETLSEOF;
        set_msg(e, "unexpected EOF (no close_notify)");
    }
    e->base.closing = 1;
    cancel_handle(e, &e->resume_h);
    tl__tls_drop_queue(e);
    tl_transport_close(e->lower);
}

void tl__tls_pump(tls_t *e) {
    if (e->in_pump)
        return;
    e->in_pump = 1;
    ERR_clear_error(); /* stale errors would turn WANT_READ into errors */
    if (e->state == TLS_ST_HANDSHAKE)
        handshake_step(e);
    int drained = 0;
    if (e->state == TLS_ST_OPEN && e->base.made && !e->base.lost)
        drained = read_app(e);
    e->in_pump = 0;
    if (e->state != TLS_ST_OPEN)
        return;
    if (drained && e->lower_eof && !e->close_notify && !e->base.closing)
        eof_without_notify(e);
    tl__tls_settle(e); /* SSL_read may have written (post-handshake) */
}

/* Append data to e->kept. */
static int keep(tls_t *e, const void *data, size_t len) {
    if (len == 0)
        return 0;
    if (e->kept_off && e->kept_off + e->kept_len + len > e->kept_cap) {
        memmove(e->kept, e->kept + e->kept_off, e->kept_len);
        e->kept_off = 0;
    }
    size_t need = e->kept_len + len;
    if (need > e->kept_cap) {
        size_t cap = e->kept_cap ? e->kept_cap * 2 : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *k = tl__realloc(e->kept, cap);
        if (k == NULL)
            return TL_ENOMEM;
        e->kept = k;
        e->kept_cap = cap;
    }
    memcpy(e->kept + e->kept_off + e->kept_len, data, len);
    e->kept_len += len;
    return 0;
}

/* Keep the rest of the slice being read (before data arriving later). */
static int keep_slice(tls_t *e) {
    int rc = keep(e, e->in, e->in_len);
    e->in = NULL;
    e->in_len = 0;
    return rc;
}

static int wants_data(const tls_t *e) {
    return e->state == TLS_ST_NEW || e->state == TLS_ST_HANDSHAKE ||
           (e->state == TLS_ST_OPEN && !e->base.closing);
}

/* ---- the lower transport's protocol ------------------------------------- */

static void lower_data(tl_transport_t *lower, const void *data, size_t len,
                       void *ctx) {
    (void)lower;
    tls_t *e = ctx;
    if (!wants_data(e))
        return;
    if (e->state == TLS_ST_NEW || e->in_pump) {
        int rc = keep_slice(e);
        if (rc == 0)
            rc = keep(e, data, len);
        if (rc)
            tl__tls_fatal(e, rc);
        return;
    }
    e->in = data;
    e->in_len = len;
    tl__tls_pump(e);
    int rc = wants_data(e) ? keep_slice(e) : 0;
    e->in = NULL;
    e->in_len = 0;
    if (rc)
        tl__tls_fatal(e, rc);
    else if (e->kept_len == 0 && e->kept_cap > KEPT_KEEP) {
        tl__free(e->kept); /* a burst is over: idle connections stay small */
        e->kept = NULL;
        e->kept_cap = e->kept_off = 0;
    }
}

static int lower_eof(tl_transport_t *lower, void *ctx) {
    (void)lower;
    tls_t *e = ctx;
    e->lower_eof = 1;
    switch (e->state) {
    case TLS_ST_NEW:
    case TLS_ST_HANDSHAKE:
        /* An end of stream before the handshake finished, possibly in the
         * middle of a record: a close without close_notify (asyncio says
         * ConnectionResetError; TL_ETLSEOF tells a reset from a FIN). */
        set_msg(e, "connection closed during the TLS handshake");
        fail_handshake(e, TL_ETLSEOF);
        return 1;
    case TLS_ST_OPEN:
        /* Stay half-open: the engine closes the lower transport once what
         * came before the EOF was read (the application may be paused). */
        if (!e->base.closing)
            tl__tls_pump(e);
        return 1;
    default:
        return 0;
    }
}

static void lower_lost(tl_transport_t *lower, int error, void *ctx) {
    (void)lower;
    tls_t *e = ctx;
    e->lower_lost = 1;
    cancel_all(e);
    switch (e->state) {
    case TLS_ST_NEW:
    case TLS_ST_HANDSHAKE:
        if (error == 0) {
            set_msg(e, "connection closed during the TLS handshake");
            error = TL_ETLSEOF;
        }
        fail_handshake(e, error); /* frees e */
        return;
    case TLS_ST_FAILED:
        engine_free(e);
        return;
    default:
        break;
    }
    int final = e->err ? e->err : e->close_notify ? 0 : error;
    tl__transport_lost(&e->base, final);
    tl__tls_drop_queue(e);
    if (e->self_ref) {
        e->self_ref = 0;
        tl_transport_unref(&e->base); /* may free e (vt->destroy) */
    }
}

static void lower_pause(tl_transport_t *lower, void *ctx) {
    (void)lower;
    tls_t *e = ctx;
    if (!e->in_ssl)
        tl__tls_settle(e);
}

static void lower_resume(tl_transport_t *lower, void *ctx) {
    (void)lower;
    tls_t *e = ctx;
    if (!e->in_ssl)
        tl__tls_settle(e);
}

static const tl_protocol_t engine_proto = {
    .size = sizeof(tl_protocol_t),
    .data_received = lower_data,
    .eof_received = lower_eof,
    .connection_lost = lower_lost,
    .pause_writing = lower_pause,
    .resume_writing = lower_resume,
};

/* ---- the BIO ------------------------------------------------------------- */

static int bio_read(BIO *b, char *out, int len) {
    tls_t *e = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t want = len > 0 ? (size_t)len : 0, got = 0;
    if (e->kept_len && want) {
        size_t n = e->kept_len < want ? e->kept_len : want;
        memcpy(out, e->kept + e->kept_off, n);
        e->kept_off += n;
        e->kept_len -= n;
        if (e->kept_len == 0)
            e->kept_off = 0;
        got = n;
    }
    if (e->in_len && got < want) {
        size_t n = e->in_len < want - got ? e->in_len : want - got;
        memcpy(out + got, e->in, n);
        e->in += n;
        e->in_len -= n;
        got += n;
    }
    if (got == 0) {
        BIO_set_retry_read(b); /* never EOF: the engine handles that */
        return -1;
    }
    return (int)got;
}

/* Hand the gathered records to the lower transport (inside an SSL call,
 * or marked as one: its pause_writing only marks). */
int tl__tls_flush_batch(tls_t *e) {
    if (e->olen == 0)
        return 0;
    unsigned was = e->in_ssl;
    e->in_ssl = 1;
    int rc = tl_transport_write(e->lower, e->obuf, e->olen);
    e->in_ssl = was;
    e->olen = 0;
    return rc;
}

static int bio_write(BIO *b, const char *in, int len) {
    tls_t *e = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    int rc = 0;
    if (e->batching) { /* encrypt is gathering records */
        size_t n = (size_t)len;
        if (e->olen + n > e->ocap)
            rc = tl__tls_flush_batch(e);
        if (rc == 0 && n <= e->ocap) {
            memcpy(e->obuf + e->olen, in, n);
            e->olen += n;
            return len;
        }
    }
    if (rc == 0)
        rc = tl_transport_write(e->lower, in, (size_t)len);
    if (rc) {
        e->bio_err = rc;
        return -1;
    }
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

/* One method for the process, made at the first connection. */
static _Atomic(BIO_METHOD *) bio_method;

static BIO_METHOD *get_bio_method(void) {
    BIO_METHOD *m = atomic_load(&bio_method);
    if (m)
        return m;
    m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tulip");
    if (m == NULL || !BIO_meth_set_read(m, bio_read) ||
        !BIO_meth_set_write(m, bio_write) || !BIO_meth_set_ctrl(m, bio_ctrl) ||
        !BIO_meth_set_create(m, bio_create)) {
        if (m)
            BIO_meth_free(m);
        ERR_clear_error();
        return NULL;
    }
    BIO_METHOD *expected = NULL;
    if (!atomic_compare_exchange_strong(&bio_method, &expected, m)) {
        BIO_meth_free(m); /* another thread's won */
        return expected;
    }
    return m;
}

/* ---- timers and scheduled steps ------------------------------------------ */

static void start_cb(void *ctx) {
    tls_t *e = ctx;
    e->start_h = 0;
    if (e->state != TLS_ST_NEW)
        return;
    e->state = TLS_ST_HANDSHAKE;
    tl__tls_pump(e);
}

static void hs_timeout_cb(void *ctx) {
    tls_t *e = ctx;
    e->hs_timer = 0;
    set_msg(e, "TLS handshake timed out");
    fail_handshake(e, TL_ETIMEDOUT);
}

/* ---- lifetime ------------------------------------------------------------- */

/* Free an engine that never became a transport (or whose transport init
 * was undone): what a transport's destroy releases, then the engine. */
static void engine_free(tls_t *e) {
    tl__tls_destroy(e);
    tl__free(e);
}

void tl__tls_destroy(tls_t *e) {
    cancel_all(e);
    SSL_free(e->ssl);
    e->ssl = NULL;
    tl_transport_unref(e->lower);
    tl_tls_context_unref(e->ctx);
    tl__free(e->kept);
    tl__free(e->rbuf);
    tl__free(e->wq);
    tl__free(e->obuf);
    e->kept = e->rbuf = e->wq = e->obuf = NULL;
    tl__tls_sf_free(e);
}

/* ---- wrapping ---------------------------------------------------------- */

/* "host:port" of the lower transport's peer, for session resumption;
 * 0 when there is none (no hostname, no port, too long). */
static int session_key(tl_transport_t *lower, const char *host, char *buf,
                       size_t cap) {
    tl_sockaddr_t a;
    if (host == NULL || tl_transport_get_peername(lower, &a) != 0)
        return 0;
    int port = tl_sockaddr_port(&a);
    if (port <= 0)
        return 0;
    int n = snprintf(buf, cap, "%s:%d", host, port);
    return n > 0 && (size_t)n < cap;
}

int tl__tls_wrap(tl_transport_t *lower, const tl_tls_options_t *opts,
                 const char *default_hostname, const tl_protocol_t *proto,
                 void *proto_ctx, tl__tls_done_fn done, void *arg,
                 tl__tls_t **h) {
    if (h)
        *h = NULL;
    int rc = tl__transport_check(lower);
    if (rc)
        return rc;
    if (opts == NULL || proto == NULL || done == NULL ||
        (proto->size != 0 && proto->size < sizeof(size_t)))
        return TL_EINVAL;
    tl_tls_options_t o;
    memset(&o, 0, sizeof o);
    size_t osize = opts->size ? opts->size : sizeof o;
    if (osize < offsetof(tl_tls_options_t, context) + sizeof(void *))
        return TL_EINVAL;
    memcpy(&o, opts, osize < sizeof o ? osize : sizeof o);
    if (o.context == NULL)
        return TL_EINVAL;
    int side = tl_tls_context_side(o.context);
    if (side != TL_TLS_CLIENT && side != TL_TLS_SERVER)
        return TL_EINVAL;
    if (lower->closing)
        return TL_ECLOSED;
    if (lower->vt->write == NULL || lower->vt->set_reading == NULL)
        return TL_EINVAL; /* not a stream transport */

    const char *host = NULL;
    char keybuf[320];
    const char *key = NULL;
    if (side == TL_TLS_CLIENT) {
        host = o.server_hostname ? o.server_hostname : default_hostname;
        if (session_key(lower, host, keybuf, sizeof keybuf))
            key = keybuf;
    }

    tls_t *e = tl__calloc(1, sizeof *e);
    if (e == NULL)
        return TL_ENOMEM;
    if ((rc = tl__tls_context_new_ssl(o.context, host, key, &e->ssl)) != 0) {
        tl__free(e);
        return rc;
    }
    BIO_METHOD *m = get_bio_method();
    BIO *b = m ? BIO_new(m) : NULL;
    if (b == NULL) {
        ERR_clear_error();
        SSL_free(e->ssl);
        tl__free(e);
        return TL_ENOMEM;
    }
    BIO_set_data(b, e);
    SSL_set_bio(e->ssl, b, b); /* one reference, the SSL's */
    e->loop = lower->loop;
    if ((rc = tl_loop_call_soon(e->loop, start_cb, e, &e->start_h)) != 0) {
        SSL_free(e->ssl);
        tl__free(e);
        return rc;
    }
    int64_t hs = o.handshake_timeout_ns ? o.handshake_timeout_ns
                                        : HANDSHAKE_TIMEOUT_NS;
    if (hs > 0 &&
        (rc = tl_loop_call_later(e->loop, hs, hs_timeout_cb, e,
                                 &e->hs_timer)) != 0) {
        tl_handle_cancel(e->loop, e->start_h);
        SSL_free(e->ssl);
        tl__free(e);
        return rc;
    }
    /* Nothing fails from here on. */
    e->shutdown_timeout_ns = o.shutdown_timeout_ns ? o.shutdown_timeout_ns
                                                   : SHUTDOWN_TIMEOUT_NS;
    e->side = side;
    e->state = TLS_ST_NEW;
    e->app_proto = proto;
    e->app_ctx = proto_ctx;
    e->done = done;
    e->done_arg = arg;
    tl_tls_context_ref(o.context);
    e->ctx = o.context;
    tl_transport_ref(lower);
    e->lower = lower;
    tl_transport_set_protocol(lower, &engine_proto, e);
    tl_transport_resume_reading(lower); /* the handshake reads */
    if (h)
        *h = e;
    return 0;
}

void tl__tls_cancel(tl__tls_t *e) {
    if (e == NULL ||
        (e->state != TLS_ST_NEW && e->state != TLS_ST_HANDSHAKE))
        return;
    e->state = TLS_ST_FAILED;
    e->done = NULL;
    cancel_all(e);
    if (e->lower_lost) {
        engine_free(e);
        return;
    }
    tl_transport_abort(e->lower); /* its connection_lost frees e */
}

const char *tl__tls_error_message(const tl__tls_t *h) {
    return h && h->msg[0] ? h->msg : NULL;
}

int tl__tls_is_tls(const tl_transport_t *t) {
    return t != NULL && t->vt == &tl__tls_vt;
}
