/*
 * Part 9: a real network exchange. A TCP server made with tl_start_server
 * runs one task per connection (asyncio.start_server); 50 client tasks
 * connect at once with tl_open_connection, each sends a few lines and
 * reads every reply back with tl_stream_readline. All of it is sequential
 * C in tasks on one loop and one thread, over real sockets on loopback.
 *
 * Part 10: UDP. Two datagram endpoints (create_datagram_endpoint) on
 * loopback: the client sends "ping <n>" to the server's address, the
 * server's protocol answers each datagram to its sender, and the client
 * checks every answer and who sent it.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "demo.h"

#define NCLIENTS 50
#define NLINES 4
#define GUARD_MS 5000

typedef struct net {
    uint64_t t0;
    tl_sockaddr_t addr; /* the server's, port chosen by the system */
    char host[64], port[16];
    int connections; /* handler tasks started */
    int served_lines;
    int active, max_active; /* connections open at the same time */
    int clients_done;
    tl_server_t *server;
} net_t;

static net_t net;

/* The server side: one task per connection, echoing lines in upper case. */
static int handle(tl_stream_t *s, void *ctx) {
    net_t *n = ctx;
    n->connections++;
    if (++n->active > n->max_active)
        n->max_active = n->active;
    char line[128];
    int rc;
    for (;;) {
        size_t got = 0;
        rc = tl_stream_readline(s, line, sizeof line, &got);
        if (rc || got == 0)
            break;
        for (size_t i = 0; i < got; i++)
            if (line[i] >= 'a' && line[i] <= 'z')
                line[i] = (char)(line[i] - 'a' + 'A');
        n->served_lines++;
        if ((rc = tl_stream_write(s, line, got)) || (rc = tl_stream_drain(s)))
            break;
    }
    n->active--;
    return rc;
}

typedef struct client {
    net_t *n;
    int id;
} client_t;

static client_t clients[NCLIENTS];

static int client(void *arg, void **result) {
    client_t *c = arg;
    (void)result;
    tl_stream_t *s;
    TASK_TRY(tl_open_connection(c->n->host, c->n->port, NULL, &s));
    int rc = 0;
    for (int i = 0; i < NLINES && rc == 0; i++) {
        char out[64], in[64], want[64];
        int len = snprintf(out, sizeof out, "hello %d from client %d\n", i, c->id);
        snprintf(want, sizeof want, "HELLO %d FROM CLIENT %d\n", i, c->id);
        size_t got = 0;
        if ((rc = tl_stream_write(s, out, (size_t)len)) ||
            (rc = tl_stream_readline(s, in, sizeof in, &got)))
            break;
        if (got != (size_t)len || memcmp(in, want, got) != 0) {
            demo_fail("client %d got \"%.*s\" for line %d", c->id, (int)got, in, i);
            rc = TL_ESTATE;
        }
    }
    if (rc == 0)
        rc = tl_stream_write_eof(s);
    if (rc == 0) {
        size_t got = 1;
        char b;
        rc = tl_stream_read(s, &b, 1, &got); /* the server closes: EOF */
        if (rc == 0 && got != 0)
            rc = TL_ESTATE;
    }
    tl_stream_free(s);
    if (rc == 0)
        c->n->clients_done++;
    return rc;
}

int demo_network(tl_loop_t *loop) {
    net_t *n = &net;
    memset(n, 0, sizeof *n);
    TRY(tl_sockaddr_from_ip("127.0.0.1", 0, &n->addr));
    TRY(tl_start_server_addrs(loop, handle, n, &n->addr, 1, NULL, &n->server));
    tl_sockaddr_t bound;
    CHECK(tl_server_sockets(n->server, &bound, 1) == 1, "the server has no socket");
    int port = 0;
    TRY(tl_sockaddr_to_string(&bound, n->host, sizeof n->host, &port));
    snprintf(n->port, sizeof n->port, "%d", port);
    printf("   A line-upper-casing server listens on %s port %s (the system chose\n"
           "   the port); each connection runs its own task that loops on\n"
           "   tl_stream_readline and writes the answer back.\n", n->host, n->port);

    n->t0 = tl_now_ns();
    tl_task_t *tasks[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        clients[i] = (client_t){n, i};
        TRY(tl_task_spawn(loop, client, &clients[i], NULL, &tasks[i]));
    }
    tl_future_t *all;
    tl_future_t *futs[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++)
        futs[i] = tl_task_future(tasks[i]);
    TRY(tl_gather(loop, futs, NCLIENTS, 0, &all));
    int rc;
    if (demo_complete(loop, all, GUARD_MS, &rc, NULL))
        return -1;
    tl_future_unref(all);
    for (int i = 0; i < NCLIENTS; i++)
        tl_task_unref(tasks[i]);
    CHECK(rc == 0, "a client failed: %s", tl_err_name(rc));
    CHECK(n->clients_done == NCLIENTS, "%d clients finished", n->clients_done);
    CHECK(n->served_lines == NCLIENTS * NLINES, "the server answered %d lines",
          n->served_lines);
    printf("   %d client tasks connected at once (tl_open_connection), sent %d lines\n"
           "   each and checked every answer: %d lines in %.1f ms, with up to %d\n"
           "   connections open at the same time, all on one thread.\n",
           NCLIENTS, NLINES, n->served_lines, demo_ms_since(n->t0), n->max_active);
    CHECK(n->max_active > 1, "the connections never overlapped");

    tl_future_t *closed;
    TRY(tl_server_close(n->server));
    TRY(tl_server_wait_closed(n->server, &closed));
    if (demo_complete(loop, closed, GUARD_MS, &rc, NULL))
        return -1;
    tl_future_unref(closed);
    CHECK(rc == 0, "wait_closed failed: %s", tl_err_name(rc));
    CHECK(n->active == 0, "%d connections still open", n->active);
    tl_server_free(n->server);
    printf("   The clients sent EOF and the handlers returned; tl_server_close and\n"
           "   tl_server_wait_closed then saw every connection gone.\n");
    return 0;
}

/* ---- part 10: UDP ----------------------------------------------------- */

#define NPINGS 5

typedef struct udp {
    tl_transport_t *server, *client;
    tl_sockaddr_t server_addr, client_addr;
    int answered, received, made;
    char last[64];
} udp_t;

static udp_t udp;

static void udp_made(tl_transport_t *t, void *ctx) {
    (void)t;
    ((udp_t *)ctx)->made++;
}

static void server_datagram(tl_transport_t *t, const void *data, size_t len,
                            const tl_sockaddr_t *from, void *ctx) {
    udp_t *u = ctx;
    char reply[64];
    int n = snprintf(reply, sizeof reply, "pong %.*s", (int)(len > 5 ? len - 5 : 0),
                     (const char *)data + 5);
    u->answered++;
    CB_TRY(tl_transport_sendto(t, reply, (size_t)n, from));
}

static void client_datagram(tl_transport_t *t, const void *data, size_t len,
                            const tl_sockaddr_t *from, void *ctx) {
    udp_t *u = ctx;
    (void)t;
    char a[64], b[64];
    int pa = -1, pb = -2;
    if (tl_sockaddr_to_string(from, a, sizeof a, &pa) ||
        tl_sockaddr_to_string(&u->server_addr, b, sizeof b, &pb) || pa != pb ||
        strcmp(a, b) != 0)
        demo_fail("a datagram came from %s port %d, not from the server", a, pa);
    snprintf(u->last, sizeof u->last, "%.*s", (int)len, (const char *)data);
    if (++u->received == NPINGS)
        tl_loop_stop(tl_transport_get_loop(t));
}

static const tl_protocol_t server_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = udp_made,
    .datagram_received = server_datagram,
};
static const tl_protocol_t client_proto = {
    .size = sizeof(tl_protocol_t),
    .connection_made = udp_made,
    .datagram_received = client_datagram,
};

int demo_udp(tl_loop_t *loop) {
    udp_t *u = &udp;
    memset(u, 0, sizeof *u);
    tl_sockaddr_t any;
    TRY(tl_sockaddr_from_ip("127.0.0.1", 0, &any));
    TRY(tl_create_datagram_endpoint(loop, &server_proto, u, &any, NULL, NULL, &u->server));
    TRY(tl_transport_get_sockname(u->server, &u->server_addr));
    TRY(tl_create_datagram_endpoint(loop, &client_proto, u, NULL, &u->server_addr, NULL,
                                    &u->client));
    char host[64];
    int port;
    TRY(tl_sockaddr_to_string(&u->server_addr, host, sizeof host, &port));
    printf("   A UDP endpoint on %s port %d answers each \"ping <n>\" with \"pong <n>\"\n"
           "   to whoever sent it; a second endpoint, connected to it, sends %d pings.\n",
           host, port, NPINGS);
    for (int i = 1; i <= NPINGS; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "ping %d", i);
        TRY(tl_transport_sendto(u->client, msg, (size_t)n, NULL));
    }
    if (demo_run(loop, GUARD_MS))
        return -1;
    CHECK(u->made == 2, "connection_made ran %d times", u->made);
    CHECK(u->answered == NPINGS && u->received == NPINGS, "%d answered, %d received",
          u->answered, u->received);
    printf("   The server answered %d datagrams and the client got them all from the\n"
           "   server's address (the last: \"%s\").\n", u->received, u->last);
    TRY(tl_transport_close(u->client));
    TRY(tl_transport_close(u->server));
    TRY(tl_loop_run_once(loop, 0));
    TRY(tl_loop_run_once(loop, 0));
    return 0;
}
