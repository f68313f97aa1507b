/*
 * The wakeup descriptor shared by the POSIX backends: eventfd on Linux, a
 * non-blocking pipe elsewhere. signal() is async-signal-safe.
 */
#ifndef TL_BACKEND_WAKEUP_H
#define TL_BACKEND_WAKEUP_H

typedef struct tl__wakeup {
    int rfd; /* watched for readability */
    int wfd; /* written to wake (== rfd for eventfd) */
} tl__wakeup_t;

int tl__wakeup_open(tl__wakeup_t *w);
void tl__wakeup_close(tl__wakeup_t *w);
int tl__wakeup_signal(tl__wakeup_t *w);
void tl__wakeup_drain(tl__wakeup_t *w);

#endif
