/*
 * What server.c needs from pipe.c, the one file of the transport base that
 * may make socket calls of its own (kernel only).
 */
#ifndef TL_SERVER_INT_H
#define TL_SERVER_INT_H

/* 1 when a server accepts connections at the Unix socket path (a connect
 * succeeds or would block), 0 when the file is stale. */
int tl__unix_path_in_use(const char *path);

#endif
