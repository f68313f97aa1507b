/*
 * Stream transports (asyncio's _SelectorSocketTransport and the Unix pipe
 * transports) over a netstack socket: TCP and Unix connections, and the two
 * ends of a pipe.
 *
 * Writing. With nothing queued, a write goes straight to try_send (one
 * syscall on the kernel stack, no allocation); only what it did not take is
 * queued. tl_transport_write of one buffer comes in through t->write1
 * (st_write1), which over the kernel stack calls its one-buffer send
 * directly (tl__ks_send1: no iovec, no ops table, no register spills on
 * the way), the echo hot path; other stacks get try_send as before. The queue is FIFO and at most one request of it is in the stack
 * at a time (try_send may not run while a send is pending, and one request
 * in flight lets later small writes coalesce into the tail request, which
 * is still ours, instead of costing one request each). A copy request owns
 * a growable buffer; a take request (write_take) points into the caller's
 * memory and frees it when done; a file request (sendfile) uses the
 * stack's sendfile or reads and sends the file a piece at a time.
 * t->buffered counts the bytes of queued copy/take requests; it drops when
 * a request completes.
 *
 * Reading starts once connection_made ran (vt->made) and stops while the
 * user pauses it. A received buffer goes to the protocol and back to the
 * stack at once (on_recv: a plain protocol's data_received is called
 * inline, everything else goes through on_recv_slow). EOF follows asyncio: eof_received returning 0 (or no
 * eof_received) closes, nonzero stops reading and leaves the transport
 * half-open.
 *
 * Ending. close: stop reading, let the queue drain, then close the socket
 * and schedule connection_lost(0). abort, a socket error or a failed send:
 * close the socket at once (the stack completes the request it holds with
 * TL_ECANCELLED, inside close), drop the queue, connection_lost(0 or the
 * error).
 */
#define _POSIX_C_SOURCE 200809L /* pread */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "../core/platform.h"
#include "netstack_kernel_int.h"
#include "stream_transport.h"

enum { W_COPY, W_TAKE, W_FILE };
enum { MIN_CHUNK = 4096, FILE_PIECE = 256 * 1024 };

typedef struct wreq wreq_t;
struct wreq {
    tl_ns_send_t req; /* req.ctx: the transport */
    wreq_t *next;
    int kind;
    unsigned submitted : 1; /* handed to the stack */
    unsigned fallback : 1;  /* W_FILE: reading and sending ourselves */
    tl_iovec_t iov;
    unsigned char *data; /* W_COPY: owned buffer; W_TAKE: what to free */
    size_t cap;          /* W_COPY */
    tl_destructor_t take_free;
    /* W_FILE */
    tl_future_t *fut;
    tl_fd_t fd;
    int64_t off;
    size_t left, sent, piece;
};

typedef struct stream {
    tl_transport_t base;
    const tl_netstack_ops_t *ops;
    tl_ns_sock_t *sock; /* NULL once closed */
    int flavour;
    wreq_t *head, *tail;
    unsigned inflight : 1;     /* head is in the stack */
    unsigned started : 1;      /* made ran: reading may run */
    unsigned eof : 1;          /* the peer's EOF came */
    unsigned close_pending : 1; /* close: waiting for the queue */
    unsigned shut_pending : 1;  /* write_eof: waiting for the queue */
    unsigned dead : 1;          /* the socket is closed or closing */
    unsigned kfast : 1; /* ops is the kernel stack: direct one-buffer send */
} stream_t;

static void on_sent(tl_ns_send_t *req, int status);
static void submit(stream_t *s);

/* ---- requests ---------------------------------------------------------- */

static void file_finish(wreq_t *w, int status) {
    if (w->fut) {
        if (status)
            tl_future_set_error(w->fut, status, NULL);
        else
            tl_future_set_result(w->fut, (void *)(uintptr_t)w->sent, NULL);
        tl_future_unref(w->fut);
        w->fut = NULL;
    }
}

static void wreq_free(wreq_t *w, int status) {
    switch (w->kind) {
    case W_COPY:
        tl__free(w->data);
        break;
    case W_TAKE:
        if (w->take_free)
            w->take_free(w->data);
        break;
    case W_FILE:
        file_finish(w, status);
        tl__free(w->data);
        break;
    }
    tl__free(w);
}

static wreq_t *wreq_new(stream_t *s, int kind) {
    wreq_t *w = tl__calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->kind = kind;
    w->req.ctx = s;
    w->req.done = on_sent;
    w->req.iov = &w->iov;
    w->req.n = 1;
    return w;
}

static void push(stream_t *s, wreq_t *w) {
    if (s->tail)
        s->tail->next = w;
    else
        s->head = w;
    s->tail = w;
}

static wreq_t *pop(stream_t *s) {
    wreq_t *w = s->head;
    s->head = w->next;
    if (s->head == NULL)
        s->tail = NULL;
    return w;
}

static void drop_queue(stream_t *s, int status) {
    while (s->head)
        wreq_free(pop(s), status);
    s->base.buffered = 0;
}

/* ---- ending ------------------------------------------------------------ */

/* Close the socket now (abort: a reset) and forget the queue. */
static void kill_socket(stream_t *s, int abort) {
    if (s->dead)
        return;
    s->dead = 1;
    tl_ns_sock_t *sock = s->sock;
    s->sock = NULL;
    if (sock)
        s->ops->close(sock, abort); /* completes the head: on_sent sees dead */
    s->inflight = 0;
    drop_queue(s, TL_ECLOSED);
}

/* The connection failed (or was aborted: error 0). */
static void fatal(stream_t *s, int error) {
    if (s->dead)
        return;
    s->base.closing = 1;
    kill_socket(s, 1);
    tl__transport_lost(&s->base, error);
}

static void finish_close(stream_t *s) {
    kill_socket(s, 0);
    tl__transport_lost(&s->base, 0);
}

/* The queue is empty and nothing is in flight: what was waiting for it. */
static void queue_drained(stream_t *s) {
    if (s->close_pending) {
        finish_close(s);
    } else if (s->shut_pending) {
        s->shut_pending = 0;
        if (s->flavour == TL__STREAM_PIPE_WRITE) {
            finish_close(s);
            return;
        }
        int rc = s->ops->shutdown_write(s->sock);
        if (rc)
            fatal(s, rc);
    }
}

/* ---- writing ----------------------------------------------------------- */

static int file_step(stream_t *s, wreq_t *w);

/* Hand the head to the stack, while there is one and none is in flight. */
static void submit(stream_t *s) {
    while (!s->dead && !s->inflight && s->head) {
        wreq_t *w = s->head;
        int rc;
        if (w->kind == W_FILE) {
            rc = file_step(s, w);
            if (rc == 1) { /* the file is done (or failed on its own) */
                wreq_free(pop(s), 0);
                continue;
            }
        } else {
            w->submitted = 1;
            rc = s->ops->send(s->sock, &w->req);
        }
        if (rc < 0) {
            fatal(s, rc);
            return;
        }
        s->inflight = 1;
    }
    if (!s->dead && !s->inflight && s->head == NULL)
        queue_drained(s);
}

/* Whether a failed send means the connection is gone. */
static int conn_error(int status) {
    switch (status) {
    case TL_EBADF:
    case TL_EINVAL:
    case TL_EIO:
    case TL_ESPIPE:
        return 0;
    default:
        return 1;
    }
}

static void on_sent(tl_ns_send_t *req, int status) {
    wreq_t *w = (wreq_t *)req;
    stream_t *s = req->ctx;
    if (s->dead) {
        /* Inside ops->close: kill_socket drops the queue right after. */
        return;
    }
    s->inflight = 0;
    if (w->kind == W_FILE) {
        if (status == 0 && w->fallback) {
            w->sent += w->iov.len;
            w->off += (int64_t)w->iov.len;
            w->left -= w->iov.len;
        } else if (status == 0) {
            w->sent += w->piece;
            w->off += (int64_t)w->piece;
            w->left -= w->piece;
            if (w->piece == 0)
                w->left = 0; /* the file ended early */
        } else if (status == TL_ENOTSUP && !w->fallback) {
            w->fallback = 1;
            status = 0;
        }
        if (status < 0) {
            file_finish(w, status);
            if (conn_error(status)) {
                fatal(s, status);
                return;
            }
            wreq_free(pop(s), 0); /* the file's fault: go on */
            submit(s);
            return;
        }
        if (w->left == 0)
            wreq_free(pop(s), 0);
        submit(s);
        return;
    }
    size_t n = w->iov.len;
    wreq_free(pop(s), status);
    if (status < 0) {
        fatal(s, status);
        return;
    }
    s->base.buffered -= n;
    /* asyncio: resume first (the protocol may write more), then go on. */
    tl__transport_buffer_changed(&s->base);
    submit(s);
}

/* Bytes of iov[0..n) from byte `skip` on, copied into dst. */
static void gather(unsigned char *dst, const tl_iovec_t *iov, size_t n,
                   size_t skip) {
    for (size_t i = 0; i < n; i++) {
        size_t len = iov[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(dst, (const unsigned char *)iov[i].base + skip, len - skip);
        dst += len - skip;
        skip = 0;
    }
}

/* Queue the rest of a write (total bytes, skip of them already sent).
 * 0 or TL_ENOMEM (nothing queued). */
static int enqueue(stream_t *s, const tl_iovec_t *iov, size_t n, size_t total,
                   size_t skip, void *take, tl_destructor_t take_free) {
    size_t rest = total - skip;
    wreq_t *tail = s->tail;
    if (take == NULL && tail && tail->kind == W_COPY && !tail->submitted) {
        size_t need = tail->iov.len + rest;
        if (need > tail->cap) {
            size_t cap = tail->cap * 2 > need ? tail->cap * 2 : need;
            unsigned char *d = tl__realloc(tail->data, cap);
            if (d == NULL)
                return TL_ENOMEM;
            tail->data = d;
            tail->cap = cap;
            tail->iov.base = d;
        }
        gather(tail->data + tail->iov.len, iov, n, skip);
        tail->iov.len = need;
        return 0;
    }
    wreq_t *w = wreq_new(s, take ? W_TAKE : W_COPY);
    if (w == NULL)
        return TL_ENOMEM;
    if (take) {
        w->data = take;
        w->take_free = take_free;
        w->iov.base = (const unsigned char *)iov[0].base + skip;
    } else {
        w->cap = rest > MIN_CHUNK ? rest : MIN_CHUNK;
        if ((w->data = tl__malloc(w->cap)) == NULL) {
            tl__free(w);
            return TL_ENOMEM;
        }
        gather(w->data, iov, n, skip);
        w->iov.base = w->data;
    }
    w->iov.len = rest;
    push(s, w);
    return 0;
}

/* What follows a try_send that did not take the whole write (r: its
 * result; 0 when none was tried): fail on an error, else queue the rest. */
static int write_rest(stream_t *s, const tl_iovec_t *iov, size_t n,
                      size_t total, int64_t r, void *take,
                      tl_destructor_t take_free) {
    tl_transport_t *t = &s->base;
    size_t sent = 0;
    if (TL__UNLIKELY(r < 0 && r != TL_EAGAIN)) {
        if (take_free)
            take_free(take);
        fatal(s, (int)r);
        return 0;
    }
    if (r > 0)
        sent = (size_t)r;
    int rc = enqueue(s, iov, n, total, sent, take, take_free);
    if (rc) {
        if (take_free)
            take_free(take);
        if (sent == 0)
            return rc; /* nothing was taken */
        fatal(s, rc); /* part of it left: the byte stream is broken */
        return 0;
    }
    t->buffered += total - sent;
    if (!s->inflight)
        submit(s);
    tl__transport_buffer_changed(t);
    return 0;
}

static int st_write(tl_transport_t *t, const tl_iovec_t *iov, size_t n,
                    void *take, tl_destructor_t take_free) {
    stream_t *s = (stream_t *)t;
    size_t total = 0;
    int64_t r = 0;
    for (size_t i = 0; i < n; i++)
        total += iov[i].len;
    if (TL__LIKELY(s->head == NULL) && s->ops->try_send) {
        r = s->ops->try_send(s->sock, iov, n, NULL);
        if (TL__LIKELY(r >= 0 && (size_t)r == total)) {
            if (take_free)
                take_free(take);
            return 0;
        }
    }
    return write_rest(s, iov, n, total, r, take, take_free);
}

static TL__COLD int write1_rest(stream_t *s, const void *data, size_t len,
                                int64_t r) {
    tl_iovec_t iov = {data, len};
    return write_rest(s, &iov, 1, len, r, NULL, NULL);
}

static TL__COLD int write1_slow(tl_transport_t *t, const void *data,
                                size_t len) {
    tl_iovec_t iov = {data, len};
    return st_write(t, &iov, 1, NULL, NULL);
}

/* t->write1: tl_transport_write of one buffer. Over the kernel stack with
 * nothing queued it is a direct call of the stack's one-buffer send (no
 * iovec, no ops table); s->sock is set, since a transport whose socket is
 * gone is closing and the public checks stop the write before this. */
static int st_write1(tl_transport_t *t, const void *data, size_t len) {
    stream_t *s = (stream_t *)t;
    if (TL__LIKELY(s->kfast && s->head == NULL)) {
        int64_t r = tl__ks_send1(s->sock, data, len);
        if (TL__LIKELY(r == (int64_t)len))
            return 0;
        return write1_rest(s, data, len, r);
    }
    return write1_slow(t, data, len);
}

static int st_write_eof(tl_transport_t *t) {
    stream_t *s = (stream_t *)t;
    if (s->head == NULL && !s->inflight) {
        s->shut_pending = 1;
        queue_drained(s);
        return 0;
    }
    s->shut_pending = 1;
    return 0;
}

static int st_can_write_eof(const tl_transport_t *t) {
    return ((const stream_t *)t)->flavour != TL__STREAM_PIPE_READ;
}

/* ---- sendfile ------------------------------------------------------------ */

/* Start the next piece of a file request: 0 (in flight), 1 (finished:
 * the future is completed), or a connection error. */
static int file_step(stream_t *s, wreq_t *w) {
    if (w->left == 0) {
        file_finish(w, 0);
        return 1;
    }
    if (!w->fallback && s->ops->sendfile) {
        w->piece = 0;
        w->submitted = 1;
        int rc = s->ops->sendfile(s->sock, w->fd, w->off, w->left, &w->req,
                                  &w->piece);
        if (rc == 0)
            return 0;
        w->submitted = 0;
        if (rc != TL_ENOTSUP) {
            /* Refused at once (a bad descriptor...): the file's error. */
            file_finish(w, rc);
            return 1;
        }
    }
    w->fallback = 1;
    if (w->data == NULL) {
        w->cap = w->left < FILE_PIECE ? w->left : FILE_PIECE;
        if ((w->data = tl__malloc(w->cap)) == NULL) {
            file_finish(w, TL_ENOMEM);
            return 1;
        }
    }
    size_t want = w->left < w->cap ? w->left : w->cap;
    ssize_t r;
    do
        r = pread(w->fd, w->data, want, (off_t)w->off);
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
        /* A read error ends the sendfile, not the connection. */
        if (r < 0)
            file_finish(w, tl_translate_sys_error(errno));
        else
            file_finish(w, 0);
        return 1;
    }
    w->iov.base = w->data;
    w->iov.len = (size_t)r;
    w->submitted = 1;
    return s->ops->send(s->sock, &w->req);
}

static int st_sendfile(tl_transport_t *t, tl_fd_t fd, int64_t offset,
                       size_t count, tl_future_t **out) {
    stream_t *s = (stream_t *)t;
    if (fd < 0)
        return TL_EINVAL;
    if (count == 0) {
        struct stat sb;
        if (fstat(fd, &sb) != 0)
            return tl_translate_sys_error(errno);
        count = sb.st_size > offset ? (size_t)(sb.st_size - offset) : 0;
    }
    tl_future_t *f;
    int rc = tl_future_new(t->loop, &f);
    if (rc)
        return rc;
    wreq_t *w = wreq_new(s, W_FILE);
    if (w == NULL) {
        tl_future_unref(f);
        return TL_ENOMEM;
    }
    tl_future_ref(f);
    w->fut = f;
    w->fd = fd;
    w->off = offset;
    w->left = count;
    push(s, w);
    if (!s->inflight)
        submit(s);
    *out = f;
    return 0;
}

/* ---- reading ------------------------------------------------------------ */

static TL__COLD void on_recv_slow(stream_t *s, tl_ns_buf_t *buf, int status) {
    tl_transport_t *t = &s->base;
    if (buf != NULL) {
        tl_ns_sock_t *sock = s->sock;
        int rc = 0;
        if (!t->closing)
            rc = tl__transport_data(t, buf->data, buf->len);
        /* The socket may be closed now: the stack allows a late release. */
        s->ops->release(sock, buf);
        if (rc)
            fatal(s, rc);
        return;
    }
    if (s->dead)
        return;
    if (s->flavour == TL__STREAM_PIPE_WRITE) {
        /* The reader went away (the kernel stack reports TL_EPIPE). */
        fatal(s, status == TL_EOF ? TL_EPIPE : status);
        return;
    }
    if (status != TL_EOF) {
        fatal(s, status);
        return;
    }
    s->eof = 1;
    int keep_open = 0;
    if (t->proto.eof_received && !t->lost)
        keep_open = t->proto.eof_received(t, t->proto_ctx);
    if (s->dead || t->closing)
        return; /* the protocol closed or aborted meanwhile */
    if (keep_open && s->flavour != TL__STREAM_PIPE_READ) {
        s->ops->read_stop(s->sock);
        return;
    }
    /* A read pipe at EOF is over, whatever the protocol said (asyncio). */
    t->closing = 1;
    if (s->flavour == TL__STREAM_PIPE_READ) {
        finish_close(s);
        return;
    }
    s->close_pending = 1;
    if (s->head == NULL && !s->inflight)
        finish_close(s);
}

/* The hot path: data for a plain protocol (tl__transport_data's first
 * case, inline), and the buffer straight back to the stack. The transport
 * outlives the call (connection_lost, which drops the loop's reference,
 * only runs from the loop), so s is still good after data_received. */
static void on_recv(void *ctx, tl_ns_buf_t *buf, int status) {
    stream_t *s = ctx;
    tl_transport_t *t = &s->base;
    if (TL__LIKELY(buf != NULL && !t->closing &&
                   t->proto.get_buffer == NULL &&
                   t->proto.data_received != NULL)) {
        tl_ns_sock_t *sock = s->sock;
        t->proto.data_received(t, buf->data, buf->len, t->proto_ctx);
        /* The socket may be closed now: the stack allows a late release. */
        s->ops->release(sock, buf);
        return;
    }
    on_recv_slow(s, buf, status);
}

static const tl_ns_handler_t stream_handler = {
    .recv = on_recv,
    .accept = NULL,
    .connected = NULL,
};

const tl_ns_handler_t *tl__stream_handler(void) { return &stream_handler; }

static int st_set_reading(tl_transport_t *t, int on) {
    stream_t *s = (stream_t *)t;
    if (!s->started || s->eof || s->dead)
        return 0;
    return on ? s->ops->read_start(s->sock) : s->ops->read_stop(s->sock);
}

static void st_made(tl_transport_t *t) {
    stream_t *s = (stream_t *)t;
    s->started = 1;
    if (s->flavour == TL__STREAM_PIPE_WRITE || !t->reading || s->dead)
        return;
    int rc = s->ops->read_start(s->sock);
    if (rc)
        fatal(s, rc);
}

/* ---- closing and the rest --------------------------------------------- */

static int st_close(tl_transport_t *t) {
    stream_t *s = (stream_t *)t;
    if (s->dead)
        return 0;
    if (s->started && t->reading && !s->eof &&
        s->flavour != TL__STREAM_PIPE_WRITE)
        s->ops->read_stop(s->sock);
    s->close_pending = 1;
    if (s->head == NULL && !s->inflight)
        finish_close(s);
    return 0;
}

static int st_abort(tl_transport_t *t) {
    fatal((stream_t *)t, 0);
    return 0;
}

static void st_teardown(tl_transport_t *t) {
    kill_socket((stream_t *)t, 1);
}

static void st_destroy(tl_transport_t *t) {
    drop_queue((stream_t *)t, TL_ECLOSED);
}

static int st_getaddr(const tl_transport_t *t, int peer, tl_sockaddr_t *out) {
    const stream_t *s = (const stream_t *)t;
    if (s->sock == NULL)
        return TL_ECLOSED;
    return s->ops->getaddr(s->sock, peer, out);
}

static int st_fileno(const tl_transport_t *t, tl_fd_t *out) {
    const stream_t *s = (const stream_t *)t;
    if (s->sock == NULL)
        return TL_ECLOSED;
    if (s->ops->fileno == NULL)
        return TL_ENOTSUP;
    return s->ops->fileno(s->sock, out);
}

/* TCP and Unix stream connections: the same methods, another name. */
#define STREAM_SOCKET_VT(name)                                                \
    {                                                                         \
        .kind = name, .write = st_write, .write_eof = st_write_eof,           \
        .can_write_eof = st_can_write_eof, .close = st_close,                 \
        .abort = st_abort, .set_reading = st_set_reading,                     \
        .getaddr = st_getaddr, .fileno = st_fileno, .sendfile = st_sendfile,  \
        .teardown = st_teardown, .destroy = st_destroy, .made = st_made,      \
    }

static const tl__transport_vt_t vt_tcp = STREAM_SOCKET_VT("tcp");
static const tl__transport_vt_t vt_unix = STREAM_SOCKET_VT("unix");

static const tl__transport_vt_t vt_pipe_read = {
    .kind = "pipe",
    .close = st_close,
    .abort = st_abort,
    .set_reading = st_set_reading,
    .fileno = st_fileno,
    .teardown = st_teardown,
    .destroy = st_destroy,
    .made = st_made,
};

static const tl__transport_vt_t vt_pipe_write = {
    .kind = "pipe",
    .write = st_write,
    .write_eof = st_write_eof,
    .can_write_eof = st_can_write_eof,
    .close = st_close,
    .abort = st_abort,
    .fileno = st_fileno,
    .teardown = st_teardown,
    .destroy = st_destroy,
    .made = st_made,
};

/* ---- making ------------------------------------------------------------- */

int tl__stream_alloc(tl_loop_t *loop, const tl_netstack_ops_t *ops,
                     int flavour, const tl_protocol_t *proto, void *ctx,
                     tl_transport_t **out) {
    static const tl__transport_vt_t *const vts[] = {
        [TL__STREAM_TCP] = &vt_tcp,
        [TL__STREAM_UNIX] = &vt_unix,
        [TL__STREAM_PIPE_READ] = &vt_pipe_read,
        [TL__STREAM_PIPE_WRITE] = &vt_pipe_write,
    };
    if (flavour < TL__STREAM_TCP || flavour > TL__STREAM_PIPE_WRITE)
        return TL_EINVAL;
    stream_t *s = tl__calloc(1, sizeof(*s));
    if (s == NULL)
        return TL_ENOMEM;
    int rc = tl__transport_init(&s->base, vts[flavour], loop, proto, ctx);
    if (rc) {
        tl__free(s);
        return rc;
    }
    s->ops = ops;
    s->flavour = flavour;
    s->kfast = ops == tl_netstack_kernel();
    if (vts[flavour]->write)
        s->base.write1 = st_write1;
    *out = &s->base;
    return 0;
}

void tl__stream_free_unattached(tl_transport_t *t) {
    tl__transport_discard(t);
    tl__free(t);
}

int tl__stream_attach(tl_transport_t *t, tl_ns_sock_t *sock) {
    stream_t *s = (stream_t *)t;
    s->sock = sock;
    int rc = tl__transport_schedule_made(t);
    if (rc) {
        s->ops->close(sock, 1);
        tl__stream_free_unattached(t);
        return rc;
    }
    if (s->flavour == TL__STREAM_TCP)
        s->ops->setopt(sock, TL_NS_OPT_NODELAY, 1); /* asyncio's default */
    return 0;
}

int tl__stream_transport_new(tl_loop_t *loop, const tl_netstack_ops_t *ops,
                             tl_ns_sock_t *sock, const tl_protocol_t *proto,
                             void *ctx, const char *kind,
                             tl_transport_t **out) {
    if (sock == NULL || ops == NULL)
        return TL_EINVAL;
    int flavour = kind && strcmp(kind, "unix") == 0 ? TL__STREAM_UNIX
                                                    : TL__STREAM_TCP;
    tl_transport_t *t = NULL;
    int rc = out ? tl__stream_alloc(loop, ops, flavour, proto, ctx, &t)
                 : TL_EINVAL;
    if (rc == 0 && (rc = ops->set_handler(sock, &stream_handler, t)) != 0)
        tl__stream_free_unattached(t);
    if (rc) {
        ops->close(sock, 1);
        return rc;
    }
    if ((rc = tl__stream_attach(t, sock)) != 0)
        return rc;
    *out = t;
    return 0;
}
