/*
 * clock.h - the one clock all time-based logic reads.
 *
 * Every module takes "now" from a struct pobox_clock so tests can move time
 * forward instead of sleeping.  The default reads CLOCK_REALTIME.
 */
#ifndef POBOX_CLOCK_H
#define POBOX_CLOCK_H

#include <stdint.h>

struct pobox_clock {
	int64_t (*now_ms)(void *ctx);  /* Unix time in milliseconds */
	void *ctx;
};

/* The real clock. */
int64_t pobox_clock_real_ms(void *ctx);

static inline int64_t pobox_clock_now_ms(const struct pobox_clock *c)
{
	return c->now_ms(c->ctx);
}

/* A manual clock for tests: ctx points at an int64_t holding now in ms. */
int64_t pobox_clock_manual_ms(void *ctx);

#endif
