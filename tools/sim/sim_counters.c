/*
 * sim_counters -- atomic counters (see sim_counters.h).  Relaxed ordering is
 * enough: readers want totals, not a happens-before relation.
 */
#include "sim_counters.h"

#include <stdatomic.h>

static _Atomic unsigned long calls[SIM_EP_COUNT][SIM_OUT_COUNT];
static _Atomic unsigned long stats[SIM_ST_COUNT];

static const char *const ep_names[SIM_EP_COUNT] = {
	"batch_update_v1", "batch_update_v2", "batch_status", "single_update",
	"profile_fetch", "control", "unknown", "ims_token", "admin_token",
};

static const char *const out_names[SIM_OUT_COUNT] = {
	"ok", "refused", "not_found", "rate_limited", "budget_exhausted",
	"unauthorized", "forbidden", "fault_error", "fault_429", "fault_drop",
	"fault_reset", "fault_malformed", "outage",
};

static const char *const st_names[SIM_ST_COUNT] = {
	"rows_received", "rows_applied", "rows_skipped_empty", "rows_not_found",
	"rows_failed", "rows_lost_to_override", "attributes_lost_to_override",
	"rows_lost_stuck", "batches_accepted", "batches_processed", "batches_stuck",
	"single_updates_applied", "single_updates_dropped_silently", "visits",
	"ims_tokens_issued", "profile_tokens_created", "profile_tokens_retrieved",
	"expired_token_refusals", "values_set",
};

void sim_counters_call(enum sim_endpoint ep, enum sim_outcome out)
{
	atomic_fetch_add_explicit(&calls[ep][out], 1, memory_order_relaxed);
}

void sim_counters_add(enum sim_stat st, unsigned long n)
{
	atomic_fetch_add_explicit(&stats[st], n, memory_order_relaxed);
}

unsigned long sim_counters_get(enum sim_stat st)
{
	return atomic_load_explicit(&stats[st], memory_order_relaxed);
}

void sim_counters_reset(void)
{
	int e, o;

	for (e = 0; e < SIM_EP_COUNT; e++)
		for (o = 0; o < SIM_OUT_COUNT; o++)
			atomic_store(&calls[e][o], 0);
	for (e = 0; e < SIM_ST_COUNT; e++)
		atomic_store(&stats[e], 0);
}

int sim_counters_json(struct sim_buf *out, const char *extra)
{
	int e, o;

	/* Every endpoint and outcome is always present (zeros included), so
	 * a test can read any counter without checking for its existence. */
	sim_buf_adds(out, "{\"calls\":{");
	for (e = 0; e < SIM_EP_COUNT; e++) {
		unsigned long total = 0;

		sim_buf_printf(out, "%s\"%s\":{", e ? "," : "", ep_names[e]);
		for (o = 0; o < SIM_OUT_COUNT; o++) {
			unsigned long v = atomic_load_explicit(&calls[e][o], memory_order_relaxed);

			total += v;
			sim_buf_printf(out, "\"%s\":%lu,", out_names[o], v);
		}
		sim_buf_printf(out, "\"total\":%lu}", total);
	}
	sim_buf_adds(out, "}");
	for (e = 0; e < SIM_ST_COUNT; e++)
		sim_buf_printf(out, ",\"%s\":%lu", st_names[e],
		               atomic_load_explicit(&stats[e], memory_order_relaxed));
	if (extra && *extra)
		sim_buf_printf(out, ",%s", extra);
	return sim_buf_addc(out, '}');
}
