/*
 * Process-wide signal plumbing for loops (the one explicit global of the
 * loop module). A loop attaches a slot with its backend's wakeup; the
 * process-wide handler marks the signal pending in every slot that wants it
 * and wakes that loop. The loop then takes the pending set each iteration.
 * POSIX: signal_posix.c (sigaction). Windows: win/.
 */
#ifndef TL_LOOP_SIGNAL_H
#define TL_LOOP_SIGNAL_H

#include <stdint.h>

typedef struct tl__sigslot tl__sigslot_t;

/* The highest signal number a loop can handle (bits of a uint64_t). */
#define TL__SIG_MAX 64

/* Reserve a slot; wake(wake_state) must be async-signal-safe. */
int tl__sig_attach(tl__sigslot_t **slot, int (*wake)(void *), void *wake_state);
/* Give the slot back; no handler touches it after this returns. */
void tl__sig_detach(tl__sigslot_t *slot);
/* Start or stop catching signum for this slot (installs or restores the
 * process-wide disposition as the first or last user comes and goes).
 * TL_EINVAL for a signal that cannot be caught. */
int tl__sig_watch(tl__sigslot_t *slot, int signum, int on);
/* The signals that arrived since the last call: bit (signum - 1). */
uint64_t tl__sig_take(tl__sigslot_t *slot);
/* Cheap check for the loop's iteration. */
int tl__sig_any(tl__sigslot_t *slot);

#endif
