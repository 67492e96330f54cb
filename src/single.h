/*
 * single.h - the single-call lane: one Single Profile Update call per
 * profile, many in flight over reused connections.
 *
 * A step takes the due single-lane batches (groups of profiles the
 * scheduler routed here, up to 16, the next one prepared while the current
 * one is sent), reserves one quota unit per call before making it (profiles
 * the budget cannot cover go to the bulk lane instead), sends the calls
 * from `threads` sender threads with at most `concurrency` in flight in
 * all, and records outcomes in transactions of many calls at once:
 *
 *   success=true           the profile's updates are delivered
 *   'not found'            the profile goes to the bulk lane (v2 creates it)
 *   transient failure      back to pending with backoff; dead after max_attempts
 *   Target unreachable     the lane goes offline (outage.h): the profile stays
 *                          in its batch, the next probe; calls not yet sent go
 *                          back to pending, where the scheduler leaves them
 *                          (coalescing) until a probe gets an answer
 *   our stop or deadline   calls in flight end unanswered; their profiles
 *                          stay in the batch (sending), re-sent later
 *   budget spent (429 ...) the lane is parked until the time Target names; no
 *                          attempt is counted and unsent calls are not made
 *   401/403, bad client    the lane pauses loudly; no attempt is counted
 *
 * Quota: a call that reached Target (any answer, or a failure after the
 * request was sent) is settled as used in the minute it was reserved; one
 * that never left (connection refused, name not resolved, not sent because
 * the lane stopped) is released.  After an outage the number of calls in
 * flight ramps up over recovery_ramp_ms, so a returning network sees no
 * storm.
 */
#ifndef POBOX_SINGLE_H
#define POBOX_SINGLE_H

#include "deliver.h"
#include "quota.h"

struct pobox_single_opts {
	struct pobox_quota_opts quota;
	int64_t concurrency;      /* calls in flight at once, split between the threads */
	int64_t threads;          /* sender threads (each its own connections); < 1: 1 */
	int64_t max_get_bytes, max_post_bytes;
	int64_t recovery_ramp_ms;
	struct pobox_fleet *fleet;  /* fleet_url: calls draw on the fleet's leases (fleet.h) */
};

struct pobox_singler;

int pobox_singler_new(struct pobox_singler **out, struct pobox *pb,
                      const struct pobox_deliver_opts *d, const struct pobox_single_opts *o,
                      char *err, size_t errlen);
void pobox_singler_free(struct pobox_singler *s);

/* Sends the due single-lane batches, if any.  out as for pobox_deliver_step
 * (for the single lane).  The sender threads live only inside the call.
 * After an error the singler may still hold calls in its connections: free
 * it (a further step only returns POBOX_EIO). */
int pobox_single_step(struct pobox_singler *s, struct pobox_step *out);

#endif
