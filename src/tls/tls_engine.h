/*
 * The TLS engine's state, shared by tls.c (wrapping, the custom BIO, the
 * handshake, reading, the wrapped transport's protocol, lifetime) and
 * tls_transport.c (the "tls" transport kind: writing, closing, flow
 * control; tl_start_tls; the extra-info getters). Only src/tls sees it.
 *
 * One allocation is the engine and, from the handshake's end on, the TLS
 * transport (its base first). Lifetime:
 *   handshake  the engine owns itself: freed once done was called (or the
 *              handshake cancelled) and the wrapped transport's
 *              connection_lost came.
 *   open       the base's references (the loop's, the users') plus one of
 *              the engine's own, held until the wrapped transport's
 *              connection_lost came (so the wrapped transport can never
 *              call into freed memory); vt->destroy frees the SSL and
 *              drops the references on the wrapped transport and the
 *              context.
 * The TLS transport's connection_lost always follows the wrapped one's
 * (or the loop's close): it is scheduled from there, with the error the
 * engine recorded first (e->err), else 0 after a close_notify, else the
 * wrapped transport's error.
 */
#ifndef TL_TLS_ENGINE_H
#define TL_TLS_ENGINE_H

#include "../transport/transport_int.h"
#include "tls_int.h"

enum {
    TLS_ST_NEW,       /* the handshake's start is scheduled */
    TLS_ST_HANDSHAKE, /* handshaking */
    TLS_ST_OPEN,      /* the TLS transport exists (e->base is live) */
    TLS_ST_FAILED,    /* done got an error, or cancelled: waiting for the
                         wrapped transport's connection_lost */
};

/* Plaintext handed to SSL_write per call: one record. */
enum { TLS_RECORD = 16 * 1024 };
/* Reading: plaintext handed to one data_received (at most), from e->rbuf,
 * sized to the ciphertext at hand. Writing: the records of one write are
 * gathered in e->obuf and handed to the wrapped transport in pieces of up
 * to TLS_BATCH_RECORDS records (one send each instead of one per record).
 * Both buffers exist only while data flows: one of a record or less goes
 * at the end of its pump, larger ones when the idle timer finds them
 * unused for a period (TLS_IDLE_NS): freeing and allocating 64 KiB per
 * pump would have malloc return memory to the system each time. */
enum { TLS_READ_MAX = 64 * 1024, TLS_BATCH_RECORDS = 4 };
#define TLS_IDLE_NS ((int64_t)100 * 1000000)

/* A tl_transport_sendfile in progress (tls_transport.c): the file is read
 * a piece at a time into buf and written through the engine; writes made
 * meanwhile wait in `after`. */
typedef struct tl__tls_sf {
    tl_future_t *fut; /* referenced: the result is `sent` */
    int fd;
    int64_t off;      /* the next byte to read */
    size_t left;      /* bytes still to read */
    size_t sent;      /* bytes encrypted so far */
    unsigned char *buf;
    size_t cap, pos, end; /* buf[pos..end): read, not yet encrypted */
    unsigned char *after; /* writes made during the sendfile */
    size_t after_len, after_cap;
} tl__tls_sf_t;

struct tl__tls {
    tl_transport_t base; /* first: the TLS transport, once open */
    tl_loop_t *loop;
    tl_transport_t *lower;    /* referenced until destroy / free */
    tl_tls_context_t *ctx;    /* referenced */
    SSL *ssl;
    int state;
    int side;
    /* until the transport exists */
    const tl_protocol_t *app_proto;
    void *app_ctx;
    tl__tls_done_fn done;
    void *done_arg;
    int64_t shutdown_timeout_ns;
    tl_handle_t start_h, hs_timer, shut_timer, resume_h;
    /* reading: the slice the wrapped transport is handing us right now,
     * then what SSL did not take of earlier ones (kept) */
    const unsigned char *in;
    size_t in_len;
    unsigned char *kept;
    size_t kept_off, kept_len, kept_cap;
    unsigned char *rbuf; /* plaintext for data_received (while data flows) */
    size_t rcap;
    /* writing: plaintext waiting while the wrapped transport is paused */
    unsigned char *wq;
    size_t wq_off, wq_len, wq_cap;
    /* records gathered for one lower write (while encrypt batches) */
    unsigned char *obuf;
    size_t olen, ocap;
    tl_handle_t idle_timer; /* frees rbuf and obuf once unused */
    tl__tls_sf_t *sf;  /* a sendfile in progress, or NULL */
    tl_handle_t sf_h;  /* its next step, scheduled */
    int err;     /* the first error of the connection (connection_lost's) */
    int bio_err; /* the wrapped transport refused a write inside SSL */
    unsigned in_ssl : 1;       /* inside an SSL call: no app callbacks */
    unsigned in_pump : 1;      /* inside pump: data arriving is kept */
    unsigned lower_eof : 1;    /* the wrapped transport's peer sent EOF */
    unsigned lower_lost : 1;   /* its connection_lost came */
    unsigned close_notify : 1; /* the peer's close_notify came */
    unsigned shut_sent : 1;    /* ours was sent (close ran) */
    unsigned self_ref : 1;     /* the engine's reference on base */
    unsigned want_flush : 1;   /* the wrapped transport resumed in SSL */
    unsigned close_after_sf : 1; /* close was called during a sendfile */
    unsigned batching : 1;     /* bio_write gathers into obuf */
    unsigned bufs_used : 1;    /* rbuf or obuf used since the idle check */
    char msg[256]; /* BoringSSL's reason for the first error */
};
typedef struct tl__tls tls_t;

/* tls.c */
/* Record the first error (and a fallback message) and abort the wrapped
 * transport; its connection_lost ends the TLS transport. */
void tl__tls_fatal(tls_t *e, int error);
/* The TL_E code for a failed SSL call (ret), reason into e->msg. */
int tl__tls_ssl_error(tls_t *e, int ret, int ssl_err);
/* Read what can be read now: the handshake, then the application's data
 * (while it reads), then the wrapped transport's EOF. */
void tl__tls_pump(tls_t *e);
/* rbuf or obuf was used: keep them until an idle period passes (the
 * timer is armed here; without memory for it they go at once). */
void tl__tls_bufs_used(tls_t *e);
/* Write the records gathered in e->obuf to the lower transport: 0 or its
 * error. */
int tl__tls_flush_batch(tls_t *e);
/* vt->destroy's work: free the SSL and buffers, drop the references on
 * the lower transport and the context (the base frees e after). */
void tl__tls_destroy(tls_t *e);

/* tls_transport.c */
extern const tl__transport_vt_t tl__tls_vt;
/* The wrapped transport's write buffer changed (or the queue did):
 * flush the queue when it may, recount buffered, pause/resume the app. */
void tl__tls_settle(tls_t *e);
/* Drop the queued plaintext (and fail a sendfile in progress: e->err,
 * else TL_ECLOSED). */
void tl__tls_drop_queue(tls_t *e);
/* Free what a sendfile left (vt->destroy, engine_free). */
void tl__tls_sf_free(tls_t *e);

#endif
