/*
 * sim_counters -- what the simulator has seen, for tests and demos.
 *
 * Owns: lock-free counters of calls by endpoint and outcome, and of rows and
 * batches, rendered as the JSON of GET /_sim/counters.  Every request is
 * counted exactly once, under the outcome it was answered with.
 */
#ifndef SIM_COUNTERS_H
#define SIM_COUNTERS_H

#include "sim_buf.h"

enum sim_endpoint {
	SIM_EP_BATCH_V1,
	SIM_EP_BATCH_V2,
	SIM_EP_BATCH_STATUS,
	SIM_EP_SINGLE,
	SIM_EP_FETCH,
	SIM_EP_CONTROL,
	SIM_EP_UNKNOWN,
	SIM_EP_IMS_TOKEN,        /* POST /ims/token/v3 */
	SIM_EP_ADMIN_TOKEN,      /* /{tenant}/target/authentication/token */
	SIM_EP_COUNT
};

enum sim_outcome {
	SIM_OUT_OK,              /* answered as asked (incl. not-found fetch) */
	SIM_OUT_REFUSED,         /* success=false / 4xx for the request itself */
	SIM_OUT_NOT_FOUND,       /* single update / status of an unknown id */
	SIM_OUT_RATE_LIMITED,    /* 503: bulk calls per minute */
	SIM_OUT_BUDGET,          /* 429: single-update budget spent */
	SIM_OUT_UNAUTHORIZED,    /* 401 */
	SIM_OUT_FORBIDDEN,       /* 403 */
	SIM_OUT_FAULT_ERROR,     /* injected 5xx */
	SIM_OUT_FAULT_429,       /* injected 429 */
	SIM_OUT_FAULT_DROP,      /* closed without answer */
	SIM_OUT_FAULT_RESET,     /* reset mid-answer */
	SIM_OUT_FAULT_MALFORMED, /* garbled/truncated XML */
	SIM_OUT_OUTAGE,          /* inside the outage window */
	SIM_OUT_COUNT
};

enum sim_stat {
	SIM_ST_ROWS_RECEIVED,
	SIM_ST_ROWS_APPLIED,        /* rows that changed or created a profile */
	SIM_ST_ROWS_SKIPPED_EMPTY,  /* rows with only empty values */
	SIM_ST_ROWS_NOT_FOUND,
	SIM_ST_ROWS_FAILED,
	SIM_ST_ROWS_LOST_TO_OVERRIDE, /* rows whose earlier v2 values were lost */
	SIM_ST_ATTRS_LOST_TO_OVERRIDE,
	SIM_ST_ROWS_LOST_STUCK,     /* rows of stuck batches, never applied */
	SIM_ST_BATCHES_ACCEPTED,
	SIM_ST_BATCHES_PROCESSED,
	SIM_ST_BATCHES_STUCK,
	SIM_ST_SINGLE_APPLIED,
	SIM_ST_SINGLE_DROPPED_SILENT,
	SIM_ST_VISITS,
	SIM_ST_IMS_TOKENS_ISSUED,
	SIM_ST_PROFILE_TOKENS_CREATED,   /* Admin API POST */
	SIM_ST_PROFILE_TOKENS_RETRIEVED, /* Admin API GET that found one */
	SIM_ST_EXPIRED_TOKEN_REFUSALS,   /* 401s for an expired profile token */
	SIM_ST_VALUES_SET,               /* POST /_sim/set: values changed behind the client */
	SIM_ST_COUNT
};

void sim_counters_call(enum sim_endpoint ep, enum sim_outcome out);
void sim_counters_add(enum sim_stat st, unsigned long n);
unsigned long sim_counters_get(enum sim_stat st);
void sim_counters_reset(void);
/* Appends the JSON object (extra: already-rendered members to add, or ""). */
int sim_counters_json(struct sim_buf *out, const char *extra);

#endif
