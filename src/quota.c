/*
 * quota.c - budget arithmetic and reservation owners (see quota.h).  The
 * ledger's SQL is the store's (store/quota.c).
 */
#include "quota.h"
#include "fleet.h"
#include "outbox.h"
#include "store.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STALE_MS (15 * 60000)

static char owner[160];
static char host[64];

/* A process's start time (clock ticks since boot), to tell a pid reused by
 * another process from the one that reserved. */
static unsigned long long start_time(long pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p)
		return 0;
	unsigned long long v = 0;
	int field = 2;
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field == 22)
		v = strtoull(p, NULL, 10);
	return v;
}

const char *pobox_quota_owner(void)
{
	if (!owner[0]) {
		if (gethostname(host, sizeof host) != 0)
			snprintf(host, sizeof host, "unknown");
		host[sizeof host - 1] = '\0';
		snprintf(owner, sizeof owner, "%s:%ld:%llu", host, (long)getpid(),
		         start_time((long)getpid()));
	}
	return owner;
}

/* Alive: on this host, the pid runs and started when the owner says. */
static int owner_alive(const char *o)
{
	char h[64];
	long pid;
	unsigned long long started;
	pobox_quota_owner();
	if (sscanf(o, "%63[^:]:%ld:%llu", h, &pid, &started) != 3)
		return 0;
	if (strcmp(h, host) != 0)
		return 1; /* another host: only age can tell (see reap) */
	if (kill((pid_t)pid, 0) != 0 && errno != EPERM)
		return 0;
	return start_time(pid) == started;
}

struct reap_ctx {
	struct pobox *pb;
	int64_t now_ms;
};

static int reap_one(void *ctx, const char *o)
{
	struct reap_ctx *r = ctx;
	if (strcmp(o, pobox_quota_owner()) == 0 || owner_alive(o))
		return 0;
	return pobox_store_quota_reap(r->pb->st, o);
}

int pobox_quota_reap(struct pobox *pb, int64_t now_ms)
{
	struct reap_ctx r = {pb, now_ms};
	int rc = pobox_store_quota_owners(pb->st, reap_one, &r);
	if (rc)
		return rc;
	/* reservations of any owner older than STALE_MS: no call takes that long */
	return pobox_store_quota_reap_before(pb->st, (now_ms - STALE_MS) / 60000);
}

struct orphan_ctx {
	struct pobox *pb;
	int64_t units;
};

static int count_orphan(void *ctx, const char *o)
{
	struct orphan_ctx *oc = ctx;
	if (strcmp(o, pobox_quota_owner()) == 0 || owner_alive(o))
		return 0;
	char sql[400];
	char esc[200];
	size_t k = 0;
	for (const char *p = o; *p && k + 2 < sizeof esc; p++) { /* quote for SQL */
		if (*p == '\'')
			esc[k++] = '\'';
		esc[k++] = *p;
	}
	esc[k] = '\0';
	snprintf(sql, sizeof sql, "SELECT coalesce(sum(units), 0) FROM quota_reservations WHERE owner = '%s'",
	         esc);
	int64_t n = 0;
	int rc = pobox_store_query_int64(oc->pb->st, sql, &n);
	oc->units += n;
	return rc;
}

int pobox_quota_orphaned(struct pobox *pb, int64_t now_ms, int64_t *units)
{
	struct orphan_ctx oc = {pb, 0};
	int64_t old = 0;
	int rc = pobox_store_quota_owners(pb->st, count_orphan, &oc);
	if (rc == 0) {
		char sql[160];
		snprintf(sql, sizeof sql, "SELECT coalesce(sum(units), 0) FROM quota_reservations WHERE minute < %lld",
		         (long long)((now_ms - STALE_MS) / 60000));
		rc = pobox_store_query_int64(pb->st, sql, &old);
	}
	*units = oc.units + old;
	return rc;
}

struct rate_ctx {
	int64_t now_min, last_hour, first_min;
};

static int rate_row(void *ctx, int64_t minute, int64_t used, int64_t urgent)
{
	struct rate_ctx *r = ctx;
	(void)urgent;
	if (minute > r->now_min - 60)
		r->last_hour += used;
	if (used > 0 && (r->first_min < 0 || minute < r->first_min))
		r->first_min = minute;
	return 0;
}

static int64_t at_least0(int64_t v) { return v > 0 ? v : 0; }

/* The fleet's part of the budget, as the outbox last heard it. */
static int fleet_read(struct pobox *pb, const struct pobox_quota_opts *o, struct pobox_quota *q)
{
	struct pobox_quota_fleet *f = &q->fleet;
	struct pobox_fleet_row r;
	struct pobox_fleet_held h;
	int64_t mono = pobox_fleet_mono_ms();
	int found, rc;
	if ((rc = pobox_store_fleet_get(pb->st, &r, &found)) != 0 ||
	    (rc = pobox_store_fleet_held(pb->st, mono, pobox_fleet_boot_id(), &h)) != 0)
		return rc;
	f->known = found && r.budget >= 0;
	f->reachable = found && r.reachable;
	f->learning = r.learning;
	f->account_budget = f->known ? r.budget : o->single_budget;
	f->margin = f->known ? r.margin : 0;
	f->window_ms = r.window_ms;
	f->fleet_used = r.spent;
	f->fleet_free = r.free;
	f->hosts = r.hosts;
	f->lease_left = h.lease_left;
	f->leases = h.leases;
	f->reserve_left = h.reserve_left;
	f->reserve_granted = h.reserve_granted;
	f->lease_expires_in_ms = h.lease_expires_mono_ms >= 0 ? h.lease_expires_mono_ms - mono : -1;
	f->reserve_expires_in_ms = h.reserve_expires_mono_ms >= 0 ? h.reserve_expires_mono_ms - mono : -1;
	f->last_contact_ms = r.last_contact_ms;
	f->last_attempt_ms = r.last_attempt_ms;
	f->requests = r.requests;
	f->grant_rate = r.grant_rate;
	snprintf(f->account, sizeof f->account, "%s", r.account);
	snprintf(f->host, sizeof f->host, "%s", r.host);
	snprintf(f->last_error, sizeof f->last_error, "%s", r.last_error);

	double share = f->known ? r.urgent_share : o->urgent_reserve;
	q->budget = f->account_budget - f->margin;
	q->reserve = (int64_t)((double)q->budget * share);
	if (f->reachable) {
		int64_t soon = r.soon; /* the next leases are likely to cover this much more */
		q->remaining = h.lease_left + at_least0(r.free) + soon;
		q->left_urgent = q->remaining;
		q->left_normal = h.lease_left + at_least0(r.free - q->reserve) + soon;
	} else {
		int64_t keep = (int64_t)((double)h.reserve_granted * share);
		q->remaining = h.lease_left + h.reserve_left;
		q->left_urgent = q->remaining;
		q->left_normal = h.lease_left + at_least0(h.reserve_left - keep);
	}
	return 0;
}

int pobox_quota_read(struct pobox *pb, const struct pobox_quota_opts *o, int64_t now_ms,
                     struct pobox_quota *q)
{
	int rc;
	memset(q, 0, sizeof *q);
	if (o->fleet) {
		/* this host's own calls still come from its ledger */
		if ((rc = pobox_store_quota_sum(pb->st, now_ms, &q->used, &q->urgent_used, &q->reserved)) != 0 ||
		    (rc = fleet_read(pb, o, q)) != 0)
			return rc;
		q->exhausted_at_ms = q->frees_at_ms = -1;
		return 0;
	}
	double share = o->fleet_share > 0 && o->fleet_share <= 1 ? o->fleet_share : 1;
	q->budget = (int64_t)((double)o->single_budget * share);
	q->reserve = (int64_t)((double)q->budget * o->urgent_reserve);
	if ((rc = pobox_store_quota_sum(pb->st, now_ms, &q->used, &q->urgent_used, &q->reserved)) != 0)
		return rc;
	q->remaining = q->budget - q->used - q->reserved;
	if (q->remaining < 0)
		q->remaining = 0;
	q->left_urgent = q->remaining;
	q->left_normal = q->remaining - q->reserve > 0 ? q->remaining - q->reserve : 0;
	struct rate_ctx r = {now_ms / 60000, 0, -1};
	if ((rc = pobox_store_quota_minutes(pb->st, now_ms, rate_row, &r)) != 0)
		return rc;
	q->exhausted_at_ms = -1;
	if (r.last_hour > 0) {
		int64_t ms = (int64_t)((double)q->remaining / (double)r.last_hour * 3600000.0);
		if (ms < 86400000)
			q->exhausted_at_ms = now_ms + ms;
	}
	q->frees_at_ms = r.first_min >= 0 ? (r.first_min + 1440) * 60000 : -1;
	return 0;
}
