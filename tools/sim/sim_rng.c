/*
 * sim_rng -- counter-based seeded randomness (see sim_rng.h).
 */
#include "sim_rng.h"

#include <stdatomic.h>

static uint64_t rng_seed;
static _Atomic uint64_t rng_counter;

uint64_t sim_rng_mix(uint64_t x)
{
	/* splitmix64 finaliser: a bijection with good avalanche. */
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void sim_rng_seed(uint64_t seed)
{
	rng_seed = seed;
	atomic_store(&rng_counter, 0);
}

uint64_t sim_rng_seed_value(void)
{
	return rng_seed;
}

uint64_t sim_rng_next(void)
{
	uint64_t k = atomic_fetch_add(&rng_counter, 1);

	return sim_rng_mix(rng_seed ^ sim_rng_mix(k));
}

double sim_rng_to_unit(uint64_t x)
{
	return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

double sim_rng_unit(void)
{
	return sim_rng_to_unit(sim_rng_next());
}

uint64_t sim_rng_below(uint64_t n)
{
	return n ? sim_rng_next() % n : 0;
}
