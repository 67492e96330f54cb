/*
 * sim_limits -- rolling-window call limits on the simulated clock.
 *
 * Owns: "at most N calls in any window of W ms", used for the 50 bulk calls
 * a minute (batchUpdate and batchStatus share one window) and the single-
 * update budget per rolling 24 hours.  It remembers the time of each of the
 * last N admitted calls in a ring, so it is exact for any N (8 bytes per
 * unit of budget: 8 MB for the default million) and can say precisely when
 * the next call will be admitted.  Refused calls are not recorded, so a
 * client that backs off recovers.  A limit of 0 means unlimited.
 */
#ifndef SIM_LIMITS_H
#define SIM_LIMITS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct sim_window {
	pthread_mutex_t lock;
	int64_t *ts;       /* ring of admission times, oldest at head */
	size_t limit;
	size_t head, count;
	int64_t window_ms;
};

int sim_window_init(struct sim_window *w, size_t limit, int64_t window_ms);
void sim_window_destroy(struct sim_window *w);
/* Change the limit (history is kept up to the new size).  0 or -1. */
int sim_window_set_limit(struct sim_window *w, size_t limit);
void sim_window_reset(struct sim_window *w);
/* Admit one call at now_ms: returns 1, or 0 with *next_ms = the simulated
 * time at which a call will next be admitted. */
int sim_window_take(struct sim_window *w, int64_t now_ms, int64_t *next_ms);
/* Calls admitted within the window ending at now_ms. */
size_t sim_window_used(struct sim_window *w, int64_t now_ms);

#endif
