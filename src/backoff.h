/*
 * backoff.h - how long to wait before trying again, and how fast to ramp back
 * up after an outage.
 *
 * This module owns the arithmetic only: capped exponential backoff with full
 * jitter (DESIGN.md rule 6) drawn from a seeded PRNG kept on the struct, and a
 * linear recovery ramp.  It does not decide *whether* to retry (classify.h
 * does), does not count attempts (the outbox does) and does not read the
 * clock: callers pass now_ms from their struct pobox_clock, so tests and
 * replays are exact.
 *
 * Full jitter (the AWS architecture blog's name for it): the delay for
 * attempt n is uniform in [floor, max(floor, min(cap, base * 2^n))].  Waiting
 * a random fraction of the exponential ceiling, instead of the ceiling
 * itself, spreads out clients that failed together so they do not come back
 * together.  A server's Retry-After is a minimum on top of that: pobox never
 * comes back earlier than it was told to.
 */
#ifndef POBOX_BACKOFF_H
#define POBOX_BACKOFF_H

#include <stdint.h>

struct pobox_backoff {
	int64_t base_ms;   /* ceiling of attempt 0; > 0 */
	int64_t cap_ms;    /* largest ceiling; >= base_ms */
	int64_t floor_ms;  /* smallest delay ever returned (except none asked); 0 = none */
	uint64_t state;    /* splitmix64 state: same seed, same delays */
};

/* Sets up b.  Out-of-range values are corrected rather than refused (base
 * at least 1 ms, cap at least base, floor between 0 and cap) because a
 * backoff must always produce a usable delay. */
void pobox_backoff_init(struct pobox_backoff *b, int64_t base_ms, int64_t cap_ms,
                        int64_t floor_ms, uint64_t seed);

/* The next 64 random bits (splitmix64).  Deterministic for a seed. */
uint64_t pobox_backoff_rand(struct pobox_backoff *b);

/* The ceiling for attempt n, min(cap, base * 2^n), without overflow for any
 * n (attempt 0 is the first retry). */
int64_t pobox_backoff_ceiling_ms(const struct pobox_backoff *b, unsigned attempt);

/* The delay before retry number `attempt`: uniform in
 * [floor, max(floor, ceiling(attempt))], then raised to retry_after_ms when
 * that is >= 0 (pass -1 when the server said nothing).  Advances the PRNG. */
int64_t pobox_backoff_delay_ms(struct pobox_backoff *b, unsigned attempt, int64_t retry_after_ms);

/* The recovery ramp: how many calls (or calls in flight) to allow at now_ms,
 * after the lane recovered at recovered_at_ms from a period of failures.
 * Rises linearly from 1 at recovered_at_ms to `full` at recovered_at_ms +
 * ramp_ms, so a fleet coming back online does not hit Target with its whole
 * backlog at once.  Returns `full` when there is no ramp (recovered_at_ms < 0,
 * ramp_ms <= 0, or the ramp is over), and 1 before the recovery instant.
 * Never returns less than 1 unless full is <= 0 (then it returns full). */
int64_t pobox_backoff_ramp(int64_t now_ms, int64_t recovered_at_ms, int64_t ramp_ms, int64_t full);

#endif
