/*
 * outage.c - the offline state of a lane (see outage.h).
 *
 * Owns the probe schedule and the outage's log lines; the lane's pause row
 * is written through the store.  Whether a failure means "unreachable" is
 * the caller's (from http.h's failure category).
 */
#include "outage.h"
#include "log.h"
#include "outbox.h"
#include "store.h"

#include <stdio.h>
#include <string.h>

void pobox_outage_init(struct pobox_outage *o, const char *lane, int64_t base_ms, int64_t cap_ms,
                       uint64_t seed)
{
	memset(o, 0, sizeof *o);
	o->lane = lane;
	o->down_since_ms = -1;
	pobox_backoff_init(&o->backoff, base_ms, cap_ms, 0, seed);
}

int pobox_outage_down(const struct pobox_outage *o)
{
	return o->down_since_ms >= 0;
}

enum pobox_outage_event pobox_outage_failed(struct pobox_outage *o, int64_t now_ms,
                                            const char *reason)
{
	enum pobox_outage_event ev = POBOX_OUTAGE_NONE;
	if (o->down_since_ms < 0) {
		o->down_since_ms = now_ms;
		o->probes = 0;
		o->last_said_ms = now_ms;
		snprintf(o->reason, sizeof o->reason, "%s", reason ? reason : "unreachable");
		ev = POBOX_OUTAGE_START;
	} else if (now_ms - o->last_said_ms >= POBOX_OUTAGE_SUMMARY_MS) {
		o->last_said_ms = now_ms;
		ev = POBOX_OUTAGE_SUMMARY;
	}
	/* the first retry waits up to backoff_base, each failed probe doubles
	 * the ceiling, up to backoff_cap */
	o->next_probe_ms = now_ms + pobox_backoff_delay_ms(&o->backoff, (unsigned)o->probes, -1);
	o->probes++;
	return ev;
}

enum pobox_outage_event pobox_outage_ok(struct pobox_outage *o, int64_t now_ms)
{
	if (o->down_since_ms < 0)
		return POBOX_OUTAGE_NONE;
	o->ended_down_ms = now_ms - o->down_since_ms;
	o->down_since_ms = -1;
	o->next_probe_ms = 0;
	return POBOX_OUTAGE_END;
}

void pobox_outage_log(const struct pobox_outage *o, enum pobox_outage_event ev, int64_t now_ms)
{
	int64_t next = o->next_probe_ms > now_ms ? o->next_probe_ms - now_ms : 0;
	switch (ev) {
	case POBOX_OUTAGE_NONE:
		break;
	case POBOX_OUTAGE_START:
		pobox_log(POBOX_LOG_WARN, "network_down",
		          "lane=%s next_probe_in_ms=%lld reason=\"%s\" (nothing is sent on this lane "
		          "until a probe gets an answer; no attempts are counted)",
		          o->lane, (long long)next, o->reason);
		break;
	case POBOX_OUTAGE_SUMMARY:
		pobox_log(POBOX_LOG_WARN, "network_still_down",
		          "lane=%s down_s=%lld probes=%lld next_probe_in_ms=%lld reason=\"%s\"", o->lane,
		          (long long)((now_ms - o->down_since_ms) / 1000), (long long)o->probes,
		          (long long)next, o->reason);
		break;
	case POBOX_OUTAGE_END:
		pobox_log(POBOX_LOG_INFO, "network_back", "lane=%s down_s=%lld probes=%lld", o->lane,
		          (long long)(o->ended_down_ms / 1000), (long long)o->probes);
		break;
	}
}

int pobox_outage_pause(struct pobox *pb, const struct pobox_outage *o)
{
	char why[300];
	snprintf(why, sizeof why, "Target unreachable since %llds: %s",
	         (long long)((pobox_clock_now_ms(&pb->clock) - o->down_since_ms) / 1000), o->reason);
	return pobox_store_lane_pause(pb->st, o->lane, o->next_probe_ms, "offline", why);
}

int pobox_outage_lift(struct pobox *pb)
{
	static const char *const lanes[] = {"bulk", "single"};
	char cls[16];
	int64_t until;
	int rc = 0;
	for (int i = 0; i < 2 && rc == 0; i++) {
		rc = pobox_store_lane_get(pb->st, lanes[i], &until, cls, sizeof cls, NULL, 0);
		if (rc == 0 && until > 0 && strcmp(cls, "offline") == 0)
			rc = pobox_store_lane_pause(pb->st, lanes[i], 0, NULL, NULL);
	}
	return rc;
}
