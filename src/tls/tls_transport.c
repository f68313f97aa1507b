/*
 * The "tls" transport kind (asyncio's _SSLProtocolTransport): what the
 * application's protocol sees once the handshake is done. The engine
 * itself (the BIO, reading, the lower transport's protocol) is tls.c.
 *
 * Writing. With nothing queued and the lower transport not paused, a
 * write is encrypted at once, one 16 KiB record per SSL_write, straight
 * from the caller's buffer; the records go through the BIO to the lower
 * transport's write (gathered, up to TLS_BATCH_RECORDS per write), which
 * sends what the network takes and buffers the rest. A chain of small
 * pieces (writev) is joined into one record first. Once the lower transport pauses (its pause_writing: its protocol
 * is the engine), the rest of the plaintext is copied into a queue that
 * its resume_writing flushes. buffered = the queue + the lower transport's
 * buffer; the lower transport's water marks are kept equal to ours, so
 * its pause/resume come exactly when our count crosses ours.
 *
 * sendfile has no zero-copy path through TLS: the file is read with
 * pread a piece at a time (64 KiB) and each piece written as above, a
 * step of a few pieces per loop iteration while the lower transport is
 * not paused; writes made meanwhile wait behind the file, and a close
 * waits for it (as over TCP). One sendfile at a time (TL_EBUSY).
 *
 * Closing sends the queue, then close_notify, then closes the lower
 * transport (it flushes first); the shutdown timer aborts it if that takes
 * too long (TL_ETIMEDOUT). connection_lost comes when the lower transport's
 * did (tls.c).
 */
#define _POSIX_C_SOURCE 200809L /* pread */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../core/alloc.h"
#include "../future/future_int.h"
#include "tls_engine.h"

/* ---- the plaintext queue ------------------------------------------------ */

static void sf_finish(tls_t *e, int status, int dropping);

void tl__tls_drop_queue(tls_t *e) {
    e->wq_off = e->wq_len = 0;
    if (e->sf)
        sf_finish(e, e->err ? e->err : TL_ECLOSED, 1);
}

/* Append p[0..len) to the growable buffer *buf (*off: where its bytes
 * start, *len_io: how many, *cap). */
static int buf_append(unsigned char **buf, size_t *off, size_t *len_io,
                      size_t *cap_io, const unsigned char *p, size_t len) {
    if (*off && *off + *len_io + len > *cap_io) {
        memmove(*buf, *buf + *off, *len_io);
        *off = 0;
    }
    size_t need = *len_io + len;
    if (need < len)
        return TL_ENOMEM;
    if (need > *cap_io) {
        size_t cap = *cap_io ? *cap_io : TLS_RECORD;
        while (cap < need && cap <= SIZE_MAX / 2)
            cap *= 2;
        if (cap < need)
            cap = need;
        unsigned char *q = tl__realloc(*buf, cap);
        if (q == NULL)
            return TL_ENOMEM;
        *buf = q;
        *cap_io = cap;
    }
    memcpy(*buf + *off + *len_io, p, len);
    *len_io += len;
    return 0;
}

static int queue_append(tls_t *e, const unsigned char *p, size_t len) {
    if (e->sf) { /* behind the file */
        size_t zero = 0;
        return buf_append(&e->sf->after, &zero, &e->sf->after_len,
                          &e->sf->after_cap, p, len);
    }
    return buf_append(&e->wq, &e->wq_off, &e->wq_len, &e->wq_cap, p, len);
}

/* Gather the records of a write of len bytes (more than one record) into
 * e->obuf, so they reach the lower transport in one write per
 * TLS_BATCH_RECORDS records. Without memory: one write per record, as
 * for a single record. */
static void batch_begin(tls_t *e, size_t len) {
    e->olen = 0;
    if (len <= TLS_RECORD)
        return;
    if (e->obuf == NULL) {
        size_t cap = TLS_BATCH_RECORDS *
                     (TLS_RECORD + SSL_max_seal_overhead(e->ssl));
        if ((e->obuf = tl__malloc(cap)) == NULL)
            return;
        e->ocap = cap;
    }
    e->batching = 1;
}

static void batch_end(tls_t *e) {
    if (!e->batching)
        return;
    e->batching = 0;
    e->olen = 0;
    tl__tls_bufs_used(e); /* obuf stays while writes flow */
}

/* Encrypt p[0..len) record by record into the lower transport, stopping
 * when it pauses (unless force). Returns the bytes taken; an SSL failure
 * ends the connection, and everything counts as taken then. */
static size_t encrypt(tls_t *e, const unsigned char *p, size_t len,
                      int force) {
    size_t taken = 0;
    int rc = 0;
    batch_begin(e, len);
    size_t rec = e->batching ? TLS_RECORD + SSL_max_seal_overhead(e->ssl) : 0;
    while (taken < len) {
        if (e->lower_lost || e->lower->closing || e->base.lost) {
            batch_end(e);
            return len; /* the connection is ending: dropped */
        }
        /* The lower transport hears of the gathered records only here:
         * its pause state is up to date once they were written. */
        if (e->olen && e->olen + rec > e->ocap &&
            (rc = tl__tls_flush_batch(e)) != 0)
            break;
        if (!force && e->olen == 0 && e->lower->write_paused)
            break;
        size_t n = len - taken < TLS_RECORD ? len - taken : TLS_RECORD;
        e->in_ssl = 1;
        int r = SSL_write(e->ssl, p + taken, (int)n);
        e->in_ssl = 0;
        if (r <= 0) {
            rc = tl__tls_ssl_error(e, r, SSL_get_error(e->ssl, r));
            break;
        }
        taken += (size_t)r;
    }
    if (rc == 0)
        rc = tl__tls_flush_batch(e);
    batch_end(e);
    if (rc) {
        tl__tls_fatal(e, rc);
        return len;
    }
    return taken;
}

static void sf_step_cb(void *ctx);

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
    if (e->sf && e->wq_len == 0 && !lower->write_paused && e->sf_h == 0 &&
        tl_loop_call_soon(e->loop, sf_step_cb, e, &e->sf_h) != 0)
        sf_finish(e, TL_ENOMEM, 0); /* (settles again) */
    if (t->lost)
        return;
    t->buffered = e->wq_len + lower->buffered +
                  (e->sf ? e->sf->after_len : 0);
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

/* A chain this long or shorter is joined into one buffer first. */
enum { TLS_JOIN_MAX = 2 * TLS_RECORD };

static int tls_write(tl_transport_t *t, const tl_iovec_t *iov, size_t n,
                     void *take, tl_destructor_t take_free) {
    tls_t *e = (tls_t *)t;
    int rc = 0;
    size_t taken = 0; /* of all the iovecs */
    ERR_clear_error();
    /* Pieces of a chain small enough for one batch are joined first: one
     * record (and one lower write) for many small pieces. */
    tl_iovec_t one;
    unsigned char *joined = NULL;
    if (n > 1) {
        size_t total = 0;
        for (size_t i = 0; i < n && total <= TLS_JOIN_MAX; i++)
            total += iov[i].len;
        if (total <= TLS_JOIN_MAX &&
            (joined = tl__malloc(total ? total : 1)) != NULL) {
            size_t off = 0;
            for (size_t i = 0; i < n; i++) {
                if (iov[i].len)
                    memcpy(joined + off, iov[i].base, iov[i].len);
                off += iov[i].len;
            }
            one.base = joined;
            one.len = total;
            iov = &one;
            n = 1;
        }
    }
    for (size_t i = 0; i < n && !t->closing; i++) {
        const unsigned char *p = iov[i].base;
        size_t len = iov[i].len, k = 0;
        if (e->wq_len == 0 && e->sf == NULL && !e->in_ssl)
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
    tl__free(joined);
    if (take_free)
        take_free(take);
    tl__tls_settle(e);
    return rc;
}

/* ---- sendfile: read pieces of the file and write them ------------------- */

/* Pieces read per step (each up to TLS_BATCH_RECORDS records) before the
 * loop runs other callbacks. */
enum { SF_PIECES_PER_STEP = 8 };

void tl__tls_sf_free(tls_t *e) {
    tl__tls_sf_t *sf = e->sf;
    if (sf == NULL)
        return;
    e->sf = NULL;
    if (sf->fut) { /* (sf_finish normally ran: this is a safety net) */
        tl__future_complete(sf->fut, TL__FUT_ERROR, NULL, NULL, TL_ECLOSED,
                            NULL);
        tl_future_unref(sf->fut);
    }
    tl__free(sf->buf);
    tl__free(sf->after);
    tl__free(sf);
}

static int do_close(tls_t *e);

/* The sendfile is over: complete its future (the bytes sent, or status),
 * then (unless dropping: the connection is ending) let the writes made
 * meanwhile follow, and a close that waited for it. */
static void sf_finish(tls_t *e, int status, int dropping) {
    tl__tls_sf_t *sf = e->sf;
    if (sf == NULL)
        return;
    if (e->sf_h) {
        tl_handle_cancel(e->loop, e->sf_h);
        e->sf_h = 0;
    }
    e->sf = NULL;
    /* (Done already: the caller cancelled it. The internal call works on
     * a closing loop too, whose teardown ends the sendfile.) */
    if (status)
        tl__future_complete(sf->fut, TL__FUT_ERROR, NULL, NULL, status, NULL);
    else
        tl__future_complete(sf->fut, TL__FUT_RESULT,
                            (void *)(uintptr_t)sf->sent, NULL, 0, NULL);
    tl_future_unref(sf->fut);
    sf->fut = NULL;
    int ok = !dropping && e->state == TLS_ST_OPEN && !e->lower_lost &&
             !e->lower->closing;
    int rc = 0;
    if (ok && sf->after_len) {
        if (e->wq_len == 0) { /* hand the buffer over */
            tl__free(e->wq);
            e->wq = sf->after;
            e->wq_off = 0;
            e->wq_len = sf->after_len;
            e->wq_cap = sf->after_cap;
            sf->after = NULL;
        } else {
            rc = buf_append(&e->wq, &e->wq_off, &e->wq_len, &e->wq_cap,
                            sf->after, sf->after_len);
        }
    }
    tl__free(sf->buf);
    tl__free(sf->after);
    tl__free(sf);
    if (!ok)
        return;
    if (rc) {
        tl__tls_fatal(e, rc); /* the byte stream is broken */
        return;
    }
    if (e->close_after_sf) {
        e->close_after_sf = 0;
        do_close(e);
        return;
    }
    if (!e->in_ssl)
        tl__tls_settle(e);
}
/* Read and encrypt pieces while the lower transport takes them (the
 * queue of earlier writes is empty), up to SF_PIECES_PER_STEP; the next
 * step is scheduled by tl__tls_settle (at once, or when the lower
 * transport resumes). */
static void sf_step_cb(void *ctx) {
    tls_t *e = ctx;
    e->sf_h = 0;
    for (int i = 0; i < SF_PIECES_PER_STEP; i++) {
        tl__tls_sf_t *sf = e->sf;
        if (sf == NULL || e->state != TLS_ST_OPEN || e->lower_lost ||
            e->lower->closing || e->wq_len || e->lower->write_paused)
            break;
        if (tl_future_done(sf->fut)) { /* cancelled: stop here */
            sf_finish(e, 0, 0);
            return;
        }
        if (sf->pos == sf->end) {
            if (sf->left == 0) {
                sf_finish(e, 0, 0);
                return;
            }
            if (sf->buf == NULL) {
                size_t cap = (size_t)TLS_RECORD * TLS_BATCH_RECORDS;
                sf->cap = sf->left < cap ? sf->left : cap;
                if ((sf->buf = tl__malloc(sf->cap)) == NULL) {
                    sf_finish(e, TL_ENOMEM, 0);
                    return;
                }
            }
            size_t want = sf->left < sf->cap ? sf->left : sf->cap;
            ssize_t r;
            do
                r = pread(sf->fd, sf->buf, want, (off_t)sf->off);
            while (r < 0 && errno == EINTR);
            if (r <= 0) {
                /* A read error ends the sendfile, not the connection; an
                 * early end of file ends it with what was sent. */
                sf_finish(e, r < 0 ? tl_translate_sys_error(errno) : 0, 0);
                return;
            }
            sf->pos = 0;
            sf->end = (size_t)r;
            sf->off += r;
            sf->left -= (size_t)r;
        }
        ERR_clear_error();
        size_t k = encrypt(e, sf->buf + sf->pos, sf->end - sf->pos, 0);
        if (e->sf != sf)
            return; /* the connection failed inside (sf was dropped) */
        sf->pos += k;
        sf->sent += k;
    }
    tl__tls_settle(e); /* the next step, if there is more */
}

static int tls_sendfile(tl_transport_t *t, tl_fd_t fd, int64_t offset,
                        size_t count, tl_future_t **out) {
    tls_t *e = (tls_t *)t;
    if (fd < 0)
        return TL_EINVAL;
    if (e->sf)
        return TL_EBUSY; /* one at a time */
    if (count == 0) { /* to the end of the file */
        struct stat sb;
        if (fstat(fd, &sb) != 0)
            return tl_translate_sys_error(errno);
        count = sb.st_size > offset ? (size_t)(sb.st_size - offset) : 0;
    }
    tl__tls_sf_t *sf = tl__calloc(1, sizeof *sf);
    if (sf == NULL)
        return TL_ENOMEM;
    tl_future_t *f;
    int rc = tl_future_new(t->loop, &f);
    if (rc) {
        tl__free(sf);
        return rc;
    }
    tl_future_ref(f); /* the engine's, until sf_finish */
    sf->fut = f;
    sf->fd = fd;
    sf->off = offset;
    sf->left = count;
    e->sf = sf;
    /* The first step comes from the loop (once earlier writes went);
     * without memory for it, the sendfile fails at once. */
    tl__tls_settle(e);
    *out = f;
    return 0;
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

static void arm_shut_timer(tls_t *e) {
    if (!e->lower_lost && e->shutdown_timeout_ns > 0 && e->shut_timer == 0)
        tl_loop_call_later(e->loop, e->shutdown_timeout_ns, shut_timeout_cb, e,
                           &e->shut_timer); /* no memory: no timer */
}

static int tls_close(tl_transport_t *t) {
    tls_t *e = (tls_t *)t;
    if (e->resume_h) {
        tl_handle_cancel(e->loop, e->resume_h);
        e->resume_h = 0;
    }
    if (e->lower_lost || e->lower->closing)
        return 0; /* already ending */
    if (e->sf) {
        /* The file goes first (as over TCP): sf_finish closes. Reading
         * stops now; the shutdown timer covers the rest of the file. */
        e->close_after_sf = 1;
        tl_transport_pause_reading(e->lower);
        arm_shut_timer(e);
        return 0;
    }
    return do_close(e);
}

/* Send the queue, close_notify, and close the lower transport. */
static int do_close(tls_t *e) {
    tl_transport_t *t = &e->base;
    if (e->lower_lost || e->lower->closing)
        return 0;
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
    arm_shut_timer(e);
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
    e->resume_h = e->shut_timer = e->sf_h = e->idle_timer = 0; /* the loop
                                                    dropped them */
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
    .sendfile = tls_sendfile,
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
