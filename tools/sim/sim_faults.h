/*
 * sim_faults -- which realities of a remote service a request meets.
 *
 * Owns: the per-request fault decision (outage window, dropped connection,
 * injected 5xx, injected 429, reset mid-answer, malformed body, latency),
 * made once per request from the current plan with the seeded generator,
 * and the mangling of a body into a malformed one.  Decisions are drawn in
 * a fixed order and only for faults whose rate is above zero, so a plan
 * with no faults costs nothing and a run replays with the same seed.
 * Answering is sim_server's job.
 */
#ifndef SIM_FAULTS_H
#define SIM_FAULTS_H

#include <stddef.h>
#include <stdint.h>

#include "sim_config.h"

struct sim_fault {
	int outage;        /* inside the outage window */
	int drop;          /* read the request, close without answering */
	int error_code;    /* injected 5xx, or 0 */
	int too_many;      /* injected 429 */
	int reset;         /* cut the answer by a TCP reset */
	int malformed;     /* 0: no, 1: truncate, 2: garble */
	uint64_t mangle_draw;
	int64_t delay_ms;  /* real ms before answering */
};

void sim_faults_decide(const struct sim_config *cfg, struct sim_fault *f);
/* Make body (len bytes, in place) malformed per f; updates *len. */
void sim_faults_mangle(const struct sim_fault *f, char *body, size_t *len);

#endif
