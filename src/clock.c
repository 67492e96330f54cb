/*
 * clock.c - the real and the manual clock.
 */
#include "clock.h"

#include <time.h>

int64_t pobox_clock_real_ms(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pobox_clock_manual_ms(void *ctx) { return *(const int64_t *)ctx; }
