/*
 * backoff.c - capped exponential backoff with full jitter, and the recovery
 * ramp (see backoff.h).
 *
 * This module owns only arithmetic on numbers it is given; it keeps no
 * global state and reads no clock.  The PRNG is splitmix64: tiny, fast,
 * good enough for spreading retries, and exactly reproducible from a seed,
 * which a cryptographic generator would not give us.
 */
#include "backoff.h"

void pobox_backoff_init(struct pobox_backoff *b, int64_t base_ms, int64_t cap_ms,
                        int64_t floor_ms, uint64_t seed)
{
	if (base_ms < 1)
		base_ms = 1;
	if (cap_ms < base_ms)
		cap_ms = base_ms;
	if (floor_ms < 0)
		floor_ms = 0;
	if (floor_ms > cap_ms)
		floor_ms = cap_ms;
	b->base_ms = base_ms;
	b->cap_ms = cap_ms;
	b->floor_ms = floor_ms;
	b->state = seed;
}

uint64_t pobox_backoff_rand(struct pobox_backoff *b)
{
	uint64_t z = (b->state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

int64_t pobox_backoff_ceiling_ms(const struct pobox_backoff *b, unsigned attempt)
{
	int64_t c = b->base_ms;
	/* Double until the cap: at most 63 doublings matter, and stopping at the
	 * cap means base * 2^n is never computed past INT64_MAX. */
	for (unsigned i = 0; i < attempt && c < b->cap_ms; i++)
		c = c > b->cap_ms / 2 ? b->cap_ms : c * 2;
	return c < b->cap_ms ? c : b->cap_ms;
}

int64_t pobox_backoff_delay_ms(struct pobox_backoff *b, unsigned attempt, int64_t retry_after_ms)
{
	int64_t ceiling = pobox_backoff_ceiling_ms(b, attempt);
	int64_t delay = b->floor_ms;
	if (ceiling > b->floor_ms) {
		uint64_t span = (uint64_t)(ceiling - b->floor_ms) + 1;
		/* The modulo bias is below span / 2^64: irrelevant for delays. */
		delay += (int64_t)(pobox_backoff_rand(b) % span);
	} else {
		(void)pobox_backoff_rand(b); /* one draw per call keeps replays aligned */
	}
	if (retry_after_ms >= 0 && retry_after_ms > delay)
		delay = retry_after_ms;
	return delay;
}

int64_t pobox_backoff_ramp(int64_t now_ms, int64_t recovered_at_ms, int64_t ramp_ms, int64_t full)
{
	if (full <= 1)
		return full;
	if (recovered_at_ms < 0 || ramp_ms <= 0)
		return full;
	if (now_ms < recovered_at_ms)
		return 1;
	/* Compare as a difference so huge times cannot overflow the sum. */
	if (now_ms - recovered_at_ms >= ramp_ms)
		return full;
	/* 1 + (full - 1) * elapsed / ramp, in floating point: (full - 1) *
	 * elapsed can exceed int64 for large inputs, a double cannot overflow
	 * here and the result is below full, so it converts back exactly. */
	double frac = (double)(now_ms - recovered_at_ms) / (double)ramp_ms;
	int64_t v = 1 + (int64_t)((double)(full - 1) * frac);
	if (v < 1)
		v = 1;
	if (v > full)
		v = full;
	return v;
}
