/*
 * sim_rng -- the seeded source of every random choice the simulator makes.
 *
 * Owns: reproducibility.  Draw number k of a run is splitmix64(seed, k), and
 * k comes from one atomic counter, so the same seed and the same sequence
 * of requests replay the same faults, stuck batches and shuffles -- without
 * a lock on the hot path.  (Concurrent clients see the draws in arrival
 * order, which is as replayable as their arrival order is.)
 */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <stdint.h>

void sim_rng_seed(uint64_t seed);
uint64_t sim_rng_seed_value(void);
uint64_t sim_rng_next(void);
/* Uniform in [0, 1). */
double sim_rng_unit(void);
/* Uniform in [0, n) (n > 0). */
uint64_t sim_rng_below(uint64_t n);
/* Pure helpers for callers that drew one value and split it. */
double sim_rng_to_unit(uint64_t x);
uint64_t sim_rng_mix(uint64_t x);

#endif
