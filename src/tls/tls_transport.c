/*
 * The "tls" transport kind (asyncio's _SSLProtocolTransport): what the
 * application's protocol sees once the handshake is done. The engine
 * itself (the BIO, reading, the lower transport's protocol) is tls.c.
 *
 * Writing. With nothing queued and the lower transport not paused, a
 * write is encrypted at once, one 16 KiB record per SSL_write, straight
 * from the caller's buffer; the records go through the BIO to the lower
 * transport's write, which sends what the network takes and buffers the
 * rest. Once the lower transport pauses (its pause_writing: its protocol
 * is the engine), the rest of the plaintext is copied into a queue that
 * its resume_writing flushes. buffered = the queue + the lower transport's
 * buffer; the lower transport's water marks are kept equal to ours, so
 * its pause/resume come exactly when our count crosses ours.
 *
 * Closing sends the queue, then close_notify, then closes the lower
 * transport (it flushes first); the shutdown timer aborts it if that takes
 * too long (TL_ETIMEDOUT). connection_lost comes when the lower transport's
 * did (tls.c).
 */
#include <limits.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../core/alloc.h"
#include "../future/future_int.h"
#include "tls_engine.h"

/* ---- the plaintext queue ------------------------------------------------ */

void tl__tls_drop_queue(tls_t *e) {
    e->wq_off = e->wq_len = 0;
}

static int queue_append(tls_t *e, const unsigned char *p, size_t len) {
    if (e->wq_off && e->wq_off + e->wq_len + len > e->wq_cap) {
        memmove(e->wq, e->wq + e->wq_off, e->wq_len);
        e->wq_off = 0;
    }
    size_t need = e->wq_len + len;
    if (need < len)
        return TL_ENOMEM;
    if (need > e->wq_cap) {
        size_t cap = e->wq_cap ? e->wq_cap : TLS_RECORD;
        while (cap < need && cap <= SIZE_MAX / 2)
            cap *= 2;
        if (cap < need)
            cap = need;
        unsigned char *q = tl__realloc(e->wq, cap);
        if (q == NULL)
            return TL_ENOMEM;
        e->wq = q;
        e->wq_cap = cap;
    }
    memcpy(e->wq + e->wq_off + e->wq_len, p, len);
    e->wq_len += len;
    return 0;
}

/* Encrypt p[0..len) record by record into the lower transport, stopping
 * when it pauses (unless force). Returns the bytes taken; an SSL failure
 * ends the connection, and everything counts as taken then. */
static size_t encrypt(tls_t *e, const unsigned char *p, size_t len,
                      int force) {
    size_t taken = 0;
    while (taken < len) {
        if (e->lower_lost || e->lower->closing || e->base.lost)
            return len; /* the connection is ending: dropped */
        if (!force && e->lower->write_paused)
            break;
        size_t n = len - taken < TLS_RECORD ? len - taken : TLS_RECORD;
        e->in_ssl = 1;
        int r = SSL_write(e->ssl, p + taken, (int)n);
        e->in_ssl = 0;
        if (r <= 0) {
            int rc = tl__tls_ssl_error(e, r, SSL_get_error(e->ssl, r));
            tl__tls_fatal(e, rc);
            return len;
        }
        taken += (size_t)r;
    }
    return taken;
}

void tl__tls_settle(tls_t *e) {
    tl_transport_t *t = &e->base, *lower = e->lower;
    if (e->state != TLS_ST_OPEN || e->in_ssl || t->lost)
        return;
    /* The application may have changed our water marks (the base sets
     * them without telling the kind): the lower transport follows. Its own
     * pause state catches up at its next buffer change. */
    lower->high = t->high;
    lower->low = t->low;
    if (e->wq_len && !lower->write_paused && !t->lost) {
        size_t k = encrypt(e, e->wq + e->wq_off, e->wq_len, 0);
        e->wq_off += k;
        e->wq_len -= k;
        if (e->wq_len == 0)
            e->wq_off = 0;
    }
    if (t->lost)
        return;
    t->buffered = e->wq_len + lower->buffered;
    tl__transport_buffer_changed(t);
    /* Paused with the queue empty: the rest is the lower transport's, which
     * may sit under its high mark and so would never say when it drained.
     * Marked paused (we are its protocol), its resume_writing comes when
     * it falls to the low mark, ours. */
    if (t->write_paused && !t->lost && !lower->write_paused &&
        lower->buffered > lower->low)
        lower->write_paused = 1;
}

/* ---- the transport's methods -------------------------------------------- */

static int tls_write(tl_transport_t *t, const tl_iovec_t *iov, size_t n,
                     void *take, tl_destructor_t take_free) {
    tls_t *e = (tls_t *)t;
    int rc = 0;
    size_t taken = 0; /* of all the iovecs */
    ERR_clear_error();
    for (size_t i = 0; i < n && !t->closing; i++) {
        const unsigned char *p = iov[i].base;
        size_t len = iov[i].len, k = 0;
        if (e->wq_len == 0 && !e->in_ssl)
            k = encrypt(e, p, len, 0);
        taken += k;
        if (k < len && !t->closing) {
            if ((rc = queue_append(e, p + k, len - k)) != 0) {
                if (taken == 0)
                    break; /* nothing of the write was taken */
                tl__tls_fatal(e, rc); /* the byte stream is broken */
                rc = 0;
                break;
            }
            taken += len - k;
        }
    }
    if (take_free)
        take_free(take);
    tl__tls_settle(e);
    return rc;
}

static void shut_timeout_cb(void *ctx) {
    tls_t *e = ctx;
    e->shut_timer = 0;
    if (!e->err) {
        e->err = TL_ETIMEDOUT;
        snprintf(e->msg, sizeof e->msg, "TLS shutdown timed out");
    }
    if (!e->lower_lost)
        tl_transport_abort(e->lower);
}

static int tls_close(tl_transport_t *t) {
    tls_t *e = (tls_t *)t;
    if (e->resume_h) {
        tl_handle_cancel(e->loop, e->resume_h);
        e->resume_h = 0;
    }
    if (e->lower_lost || e->lower->closing)
        return 0; /* already ending */
    ERR_clear_error();
    if (e->wq_len)
        encrypt(e, e->wq + e->wq_off, e->wq_len, 1);
    tl__tls_drop_queue(e);
    if (!e->lower->closing && !e->shut_sent) {
        e->shut_sent = 1;
        e->in_ssl = 1;
        SSL_shutdown(e->ssl); /* close_notify, through the BIO */
        e->in_ssl = 0;
        e->bio_err = 0;
        ERR_clear_error();
    }
    t->buffered = e->lower->buffered;
    tl_transport_close(e->lower);
    if (!e->lower_lost && e->shutdown_timeout_ns > 0)
        tl_loop_call_later(e->loop, e->shutdown_timeout_ns, shut_timeout_cb, e,
                           &e->shut_timer); /* no memory: no timer */
    return 0;
}

static int tls_abort(tl_transport_t *t) {
    tls_t *e = (tls_t *)t;
    if (e->resume_h) {
        tl_handle_cancel(e->loop, e->resume_h);
        e->resume_h = 0;
    }
    tl__tls_drop_queue(e);
    if (!e->lower_lost)
        tl_transport_abort(e->lower);
    return 0;
}

static void resume_cb(void *ctx) {
    tls_t *e = ctx;
    e->resume_h = 0;
    if (e->state == TLS_ST_OPEN && !e->base.closing)
        tl__tls_pump(e);
}

static int tls_set_reading(tl_transport_t *t, int on) {
    tls_t *e = (tls_t *)t;
    if (e->lower_lost)
        return 0;
    if (!on) {
        if (e->resume_h) {
            tl_handle_cancel(e->loop, e->resume_h);
            e->resume_h = 0;
        }
        if (!e->lower->closing)
            tl_transport_pause_reading(e->lower);
        return 0;
    }
    if (!e->lower->closing && !e->lower_eof)
        tl_transport_resume_reading(e->lower);
    /* What SSL or e->kept already hold (or an EOF that waited for the
     * application) is delivered from the loop, not inside this call. */
    if (t->made && e->resume_h == 0)
        return tl_loop_call_soon(e->loop, resume_cb, e, &e->resume_h);
    return 0;
}

static void tls_made(tl_transport_t *t) {
    tl__tls_pump((tls_t *)t);
}

static int tls_getaddr(const tl_transport_t *t, int peer, tl_sockaddr_t *out) {
    const tls_t *e = (const tls_t *)t;
    return peer ? tl_transport_get_peername(e->lower, out)
                : tl_transport_get_sockname(e->lower, out);
}

static int tls_fileno(const tl_transport_t *t, tl_fd_t *out) {
    return tl_transport_get_fileno(((const tls_t *)t)->lower, out);
}

static void tls_teardown(tl_transport_t *t) {
    /* The loop closes: the lower transport is torn down right after us
     * and its connection_lost releases the engine's reference. */
    tls_t *e = (tls_t *)t;
    e->resume_h = e->shut_timer = 0; /* the loop dropped them */
    tl__tls_drop_queue(e);
}

static void tls_destroy(tl_transport_t *t) {
    tl__tls_destroy((tls_t *)t);
}

const tl__transport_vt_t tl__tls_vt = {
    .kind = "tls",
    .write = tls_write,
    .close = tls_close,
    .abort = tls_abort,
    .set_reading = tls_set_reading,
    .getaddr = tls_getaddr,
    .fileno = tls_fileno,
    .teardown = tls_teardown,
    .destroy = tls_destroy,
    .made = tls_made,
};

/* ---- tl_start_tls ---------------------------------------------------------- */

typedef struct start_fut {
    struct tl_future base;
    tl__tls_t *h; /* the handshake, until done (or cancelled) */
} start_fut_t;

static int start_cancel(tl_future_t *f, const char *message) {
    start_fut_t *s = (start_fut_t *)f;
    int rc = tl__future_cancel_base(f, message);
    if (rc != 1 || s->h == NULL)
        return rc;
    tl__tls_t *h = s->h;
    s->h = NULL;
    tl__tls_cancel(h);
    tl_future_unref(f); /* the engine's: done will not come */
    return 1;
}

static const tl__future_class_t start_class = {start_cancel, NULL};

static void start_done(void *arg, int error, tl_transport_t *tls) {
    start_fut_t *s = arg;
    tl_future_t *f = &s->base;
    const char *msg = tl__tls_error_message(s->h);
    s->h = NULL;
    int rc;
    if (error)
        rc = tl__future_complete(f, TL__FUT_ERROR, NULL, NULL, error, msg);
    else
        rc = tl__future_complete(f, TL__FUT_RESULT, tls, NULL, 0, NULL);
    if (rc && tls && rc != TL_ECLOSED) {
        /* Nobody can get the transport: it goes (made, then lost). */
        tl__loop_report(f->loop, "start_tls: could not complete the future",
                        rc);
        tl_transport_abort(tls);
    }
    tl_future_unref(f);
}

int tl_start_tls(tl_transport_t *t, const tl_protocol_t *proto,
                 void *proto_ctx, const tl_tls_options_t *opts,
                 tl_future_t **out) {
    if (out == NULL)
        return TL_EINVAL;
    *out = NULL;
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (proto == NULL || opts == NULL)
        return TL_EINVAL;
    if (t->closing)
        return TL_ECLOSED;
    const char *kind = t->vt->kind;
    if (strcmp(kind, "tcp") != 0 && strcmp(kind, "unix") != 0 &&
        strcmp(kind, "tls") != 0)
        return TL_EINVAL;
    tl_future_t *f;
    if ((rc = tl__future_create(t->loop, sizeof(start_fut_t), &start_class,
                                &f)) != 0)
        return rc;
    start_fut_t *s = (start_fut_t *)f;
    tl_future_ref(f); /* the engine's, until done or the cancel */
    rc = tl__tls_wrap(t, opts, NULL, proto, proto_ctx, start_done, s, &s->h);
    if (rc) {
        tl_future_unref(f);
        tl_future_unref(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* ---- extra info -------------------------------------------------------------- */

static int get_tls(const tl_transport_t *t, const tls_t **out) {
    int rc = tl__transport_check(t);
    if (rc)
        return rc;
    if (t->vt != &tl__tls_vt)
        return TL_ENOTSUP;
    *out = (const tls_t *)t;
    return 0;
}

int tl_tls_get_version(const tl_transport_t *t, int *version) {
    const tls_t *e;
    int rc = get_tls(t, &e);
    if (rc)
        return rc;
    if (version == NULL)
        return TL_EINVAL;
    *version = SSL_version(e->ssl);
    return 0;
}

int tl_tls_get_cipher(const tl_transport_t *t, const char **name) {
    const tls_t *e;
    int rc = get_tls(t, &e);
    if (rc)
        return rc;
    if (name == NULL)
        return TL_EINVAL;
    const SSL_CIPHER *c = SSL_get_current_cipher(e->ssl);
    *name = c ? SSL_CIPHER_standard_name(c) : NULL;
    return c ? 0 : TL_ENOENT;
}

int tl_tls_get_alpn(const tl_transport_t *t, const char **proto,
                    size_t *len) {
    const tls_t *e;
    int rc = get_tls(t, &e);
    if (rc)
        return rc;
    if (proto == NULL || len == NULL)
        return TL_EINVAL;
    const uint8_t *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(e->ssl, &p, &n);
    *proto = n ? (const char *)p : NULL;
    *len = n;
    return 0;
}

int tl_tls_get_server_name(const tl_transport_t *t, const char **name) {
    const tls_t *e;
    int rc = get_tls(t, &e);
    if (rc)
        return rc;
    if (name == NULL)
        return TL_EINVAL;
    *name = SSL_get_servername(e->ssl, TLSEXT_NAMETYPE_host_name);
    return 0;
}

int tl_tls_session_reused(const tl_transport_t *t) {
    const tls_t *e;
    int rc = get_tls(t, &e);
    if (rc)
        return rc;
    return SSL_session_reused(e->ssl) ? 1 : 0;
}

int tl_tls_get_peer_certificate(const tl_transport_t *t, void *buf, size_t cap,
                                size_t *len) {
    const tls_t *e;
    int rc = get_tls(t, &e);
    if (rc)
        return rc;
    if (len == NULL || (buf == NULL && cap))
        return TL_EINVAL;
    const STACK_OF(CRYPTO_BUFFER) *chain = SSL_get0_peer_certificates(e->ssl);
    if (chain == NULL || sk_CRYPTO_BUFFER_num(chain) == 0)
        return TL_ENOENT;
    const CRYPTO_BUFFER *leaf = sk_CRYPTO_BUFFER_value(chain, 0);
    size_t n = CRYPTO_BUFFER_len(leaf);
    *len = n;
    if (cap < n)
        return TL_ENOBUFS;
    memcpy(buf, CRYPTO_BUFFER_data(leaf), n);
    return 0;
}
