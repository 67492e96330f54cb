/*
 * outage.h - a lane that cannot reach Target: when to try again, what to
 * say, and how the pause is recorded.
 *
 * A call that never reached Target (connection refused, host name not
 * resolved) costs no attempt, so the item's own attempt count cannot drive
 * its backoff.  Instead the lane goes offline: nothing of it is sent until
 * one probe (the next due call) at a time finds the network back.  The
 * probe delay is capped exponential backoff with full jitter (backoff.h)
 * over the number of failed probes, so it grows from backoff_base to
 * backoff_cap and an outage of a day costs a few hundred probes, and the
 * network is found again within backoff_cap of its return.  Items keep
 * their state while offline: no rows are re-cut, no retry times written.
 *
 *        up --unreachable: pobox_outage_failed (START)--> down
 *      down --unreachable: pobox_outage_failed (NONE, or SUMMARY every
 *              POBOX_OUTAGE_SUMMARY_MS)--> down
 *      down --an answer: pobox_outage_ok (END)--> up
 *
 * So an outage logs one line when it starts, a summary every ten minutes,
 * and one line when it ends, whatever its length.  The pause is the lane's
 * row in `lanes` with class "offline" until the next probe (so `status`
 * and the metrics show it); an answer on either lane lifts both lanes'
 * offline pauses, since they talk to the same Target.  Not thread-safe:
 * callers serialise (the single lane under its mutex).
 */
#ifndef POBOX_OUTAGE_H
#define POBOX_OUTAGE_H

#include "backoff.h"
#include "pobox.h"

#include <stdint.h>

#define POBOX_OUTAGE_SUMMARY_MS (10 * 60 * 1000)

enum pobox_outage_event {
	POBOX_OUTAGE_NONE = 0,  /* nothing to say */
	POBOX_OUTAGE_START,     /* the lane just went offline */
	POBOX_OUTAGE_SUMMARY,   /* still offline: time for a summary */
	POBOX_OUTAGE_END,       /* the lane is back */
};

struct pobox_outage {
	const char *lane;          /* "bulk" or "single" (static) */
	struct pobox_backoff backoff;
	int64_t down_since_ms;     /* -1: up */
	int64_t probes;            /* unreachable calls since down_since_ms */
	int64_t last_said_ms;      /* the start or the last summary */
	int64_t next_probe_ms;     /* when the lane may try again */
	int64_t ended_down_ms;     /* END: how long it was down */
	char reason[200];          /* the first failure's text */
};

void pobox_outage_init(struct pobox_outage *o, const char *lane, int64_t base_ms, int64_t cap_ms,
                       uint64_t seed);
int pobox_outage_down(const struct pobox_outage *o);

/* An unreachable call at now_ms: sets next_probe_ms and returns what to
 * log (START, SUMMARY or NONE).  reason (may be NULL) is kept from the
 * first failure. */
enum pobox_outage_event pobox_outage_failed(struct pobox_outage *o, int64_t now_ms,
                                            const char *reason);
/* A call got an answer: END when that ends an outage, else NONE. */
enum pobox_outage_event pobox_outage_ok(struct pobox_outage *o, int64_t now_ms);

/* Writes the log line for ev (nothing for NONE). */
void pobox_outage_log(const struct pobox_outage *o, enum pobox_outage_event ev, int64_t now_ms);

/* The lane's pause until o->next_probe_ms (class "offline").  Inside the
 * caller's transaction. */
int pobox_outage_pause(struct pobox *pb, const struct pobox_outage *o);
/* Lifts every lane's offline pause (an answer came: the network is back). */
int pobox_outage_lift(struct pobox *pb);

#endif
