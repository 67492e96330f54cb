/*
 * sim_faults -- per-request fault decisions (see sim_faults.h).
 */
#include "sim_faults.h"

#include <string.h>

#include "sim_clock.h"
#include "sim_rng.h"

static int hit(double rate)
{
	return rate > 0 && sim_rng_unit() < rate;
}

void sim_faults_decide(const struct sim_config *cfg, struct sim_fault *f)
{
	int64_t since_ms;

	memset(f, 0, sizeof(*f));
	if (cfg->outage_len_s > 0) {
		since_ms = sim_clock_elapsed_ms() - cfg->published_ms;
		if (since_ms >= cfg->outage_start_s * 1000 &&
		    since_ms < (cfg->outage_start_s + cfg->outage_len_s) * 1000)
			f->outage = 1;
	}
	f->delay_ms = cfg->latency_ms;
	if (cfg->latency_jitter_ms > 0)
		f->delay_ms += (int64_t)sim_rng_below((uint64_t)cfg->latency_jitter_ms);
	if (f->outage)
		return;
	/* One fault per request, in this order of precedence. */
	if (hit(cfg->drop_rate)) {
		f->drop = 1;
	} else if (hit(cfg->error_rate)) {
		f->error_code = cfg->error_codes[sim_rng_below(cfg->n_error_codes)];
	} else if (hit(cfg->rate_429)) {
		f->too_many = 1;
	} else if (hit(cfg->reset_rate)) {
		f->reset = 1;
	} else if (hit(cfg->malformed_rate)) {
		f->mangle_draw = sim_rng_next();
		f->malformed = 1 + (int)(f->mangle_draw & 1);
	}
}

void sim_faults_mangle(const struct sim_fault *f, char *body, size_t *len)
{
	size_t n = *len, cut, i;
	uint64_t d = f->mangle_draw >> 1;

	if (!f->malformed || n < 2)
		return;
	if (f->malformed == 1) {
		/* Truncate somewhere strictly inside the body. */
		cut = 1 + (size_t)(d % (n - 1));
		*len = cut;
		return;
	}
	/* Garble: break the markup -- every '<' in the second half becomes
	 * '{' (every '}' a ')') and the first '>' is dropped, so no XML or
	 * JSON parser can accept it. */
	for (i = n / 2; i < n; i++)
		if (body[i] == '<')
			body[i] = '{';
	for (i = n / 2; i < n; i++)
		if (body[i] == '}')
			body[i] = ')';   /* the same for JSON answers */
	for (i = 0; i < n; i++)
		if (body[i] == '>') {
			memmove(body + i, body + i + 1, n - i - 1);
			*len = n - 1;
			break;
		}
}
