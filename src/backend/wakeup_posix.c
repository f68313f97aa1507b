#define _GNU_SOURCE
#include "wakeup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "tulip/core.h"

int tl__wakeup_open(tl__wakeup_t *w) {
#ifdef __linux__
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return tl_translate_sys_error(errno);
    w->rfd = w->wfd = fd;
#else
    int p[2];
    if (pipe(p) < 0)
        return tl_translate_sys_error(errno);
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
    }
    w->rfd = p[0];
    w->wfd = p[1];
#endif
    return 0;
}

void tl__wakeup_close(tl__wakeup_t *w) {
    if (w->wfd != w->rfd)
        close(w->wfd);
    close(w->rfd);
    w->rfd = w->wfd = -1;
}

int tl__wakeup_signal(tl__wakeup_t *w) {
    int saved = errno; /* may run inside a signal handler */
    uint64_t one = 1;
    ssize_t n;
    do
        n = write(w->wfd, &one, w->wfd == w->rfd ? sizeof(one) : 1);
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the counter or the pipe is full, so a wakeup is pending. */
    int rc = (n < 0 && errno != EAGAIN) ? tl_translate_sys_error(errno) : 0;
    errno = saved;
    return rc;
}

void tl__wakeup_drain(tl__wakeup_t *w) {
    char buf[64];
    ssize_t n;
    do
        n = read(w->rfd, buf, w->rfd == w->wfd ? sizeof(uint64_t) : sizeof(buf));
    while ((n > 0 && w->rfd != w->wfd) || (n < 0 && errno == EINTR));
}
