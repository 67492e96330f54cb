/*
 * sim_clock -- the simulator's (possibly accelerated) clock.
 *
 * Owns: what time it is for the simulated Target.  Simulated time starts at
 * the real wall-clock time when the simulator starts and then runs `scale`
 * times faster than real time (measured on CLOCK_MONOTONIC so it never jumps
 * backwards), plus any offset added at run time (POST /_sim/clock).  Every
 * limit window, processing delay, status lifetime and timestamp the
 * simulator shows uses this clock.  It also converts simulated durations to
 * the real seconds a client must wait (Retry-After), and formats ISO-8601.
 */
#ifndef SIM_CLOCK_H
#define SIM_CLOCK_H

#include <stddef.h>
#include <stdint.h>

void sim_clock_init(double scale);
/* Simulated wall-clock time, milliseconds since the Unix epoch. */
int64_t sim_clock_now_ms(void);
/* Simulated milliseconds since start. */
int64_t sim_clock_elapsed_ms(void);
/* Real (not simulated) milliseconds since start, for rates a client sets
 * in real time. */
int64_t sim_clock_real_elapsed_ms(void);
double sim_clock_scale(void);
/* Jump simulated time forward (never backwards). */
void sim_clock_advance_ms(int64_t ms);
/* Real seconds (rounded up, at least 1) a client waits for `sim_ms`. */
int64_t sim_clock_real_wait_s(int64_t sim_ms);
/* "2024-05-01T12:00:00.123Z"; out must hold 32 bytes. */
void sim_clock_iso(int64_t epoch_ms, char *out, size_t out_len);
/* The same with an explicit +00:00 offset, as the profile API shows. */
void sim_clock_iso_offset(int64_t epoch_ms, char *out, size_t out_len);

#endif
