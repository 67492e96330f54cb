/*
 * sim_clock -- accelerated simulated clock (see sim_clock.h).  The start
 * point and scale are written once before any thread starts; the run-time
 * offset is an atomic so requests read the clock without a lock.
 */
#include "sim_clock.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static double clock_scale = 1.0;
static int64_t start_wall_ms;
static int64_t start_mono_ns;
static _Atomic int64_t offset_ms;

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sim_clock_init(double scale)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	start_wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	start_mono_ns = mono_ns();
	clock_scale = scale > 0 ? scale : 1.0;
	atomic_store(&offset_ms, 0);
}

int64_t sim_clock_elapsed_ms(void)
{
	double real_ms = (double)(mono_ns() - start_mono_ns) / 1e6;

	return (int64_t)(real_ms * clock_scale) + atomic_load(&offset_ms);
}

int64_t sim_clock_real_elapsed_ms(void)
{
	return (mono_ns() - start_mono_ns) / 1000000;
}

int64_t sim_clock_now_ms(void)
{
	return start_wall_ms + sim_clock_elapsed_ms();
}

double sim_clock_scale(void)
{
	return clock_scale;
}

void sim_clock_advance_ms(int64_t ms)
{
	if (ms > 0)
		atomic_fetch_add(&offset_ms, ms);
}

int64_t sim_clock_real_wait_s(int64_t sim_ms)
{
	int64_t s = (int64_t)ceil((double)sim_ms / clock_scale / 1000.0);

	return s < 1 ? 1 : s;
}

void sim_clock_iso(int64_t epoch_ms, char *out, size_t out_len)
{
	time_t t = (time_t)(epoch_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, out_len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int)(epoch_ms % 1000));
}

void sim_clock_iso_offset(int64_t epoch_ms, char *out, size_t out_len)
{
	time_t t = (time_t)(epoch_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, out_len, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+00:00", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int)(epoch_ms % 1000));
}
