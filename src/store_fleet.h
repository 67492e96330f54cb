/*
 * store_fleet.h - the store's SQL for this host's fleet state
 * (schema/0005_fleet.sql): the one fleet_state row, the grants held
 * (fleet_leases), their use per bucket (fleet_lease_use) and the window's
 * calls per bucket (fleet_usage).  Part of the store module (sqlite3.h
 * stays in src/store*.c); fleet.c decides, these functions only read and
 * write.  Writers run inside the caller's transaction when it holds one.
 */
#ifndef POBOX_STORE_FLEET_H
#define POBOX_STORE_FLEET_H

#include "store.h"

#include <stdint.h>

struct pobox_fleet_row {
	char account[128], host[256], incarnation[40];
	char epoch[64], reported_epoch[64];   /* "" when none */
	int64_t next_seq, serial;
	/* the account and the fleet, as of the last answer; budget < 0 when none yet */
	int64_t budget, margin, window_ms, bucket_ms, bulk_limit, lease_ms, reserve_ms;
	double urgent_share, grant_rate;
	int64_t spent, free, hosts, soon;
	int learning, reachable;
	int64_t last_contact_ms, last_attempt_ms, requests;
	char last_error[300];
};

/* *found = 0 when the outbox has no fleet state yet. */
int pobox_store_fleet_get(struct pobox_store *st, struct pobox_fleet_row *r, int *found);
/* Writes the whole row (creating it). */
int pobox_store_fleet_put(struct pobox_store *st, const struct pobox_fleet_row *r);

struct pobox_fleet_lease_row {
	int64_t id;
	int reserve;
	char epoch[64], boot_id[40];
	int64_t granted, used, reserved;
	int64_t grant_coord_ms, sent_mono_ms, life_ms, start_by_mono_ms, charge_k;
	int closed;
	int64_t granted_at_ms;
};

int pobox_store_fleet_leases(struct pobox_store *st,
                             int (*fn)(void *ctx, const struct pobox_fleet_lease_row *l), void *ctx);
int pobox_store_fleet_lease_add(struct pobox_store *st, const struct pobox_fleet_lease_row *l);
int pobox_store_fleet_lease_close(struct pobox_store *st, int64_t id);
/* A grant given a new life (same id): its deadline, mapping and charge. */
int pobox_store_fleet_lease_renew(struct pobox_store *st, const struct pobox_fleet_lease_row *l);
/* Forgets a grant and its use rows (the coordinator acknowledged it). */
int pobox_store_fleet_lease_drop(struct pobox_store *st, int64_t id);
/* reserved += d_reserved, used += d_used. */
int pobox_store_fleet_lease_change(struct pobox_store *st, int64_t id, int64_t d_reserved,
                                   int64_t d_used);
/* fleet_lease_use (lease, k) += n */
int pobox_store_fleet_use_add(struct pobox_store *st, int64_t lease, int64_t k, int64_t n);
/* fleet_usage (k) += n */
int pobox_store_fleet_usage_add(struct pobox_store *st, int64_t k, int64_t n);
int pobox_store_fleet_lease_uses(struct pobox_store *st, int64_t lease,
                                 int (*fn)(void *ctx, int64_t k, int64_t n), void *ctx);
/* fleet_usage rows with k > since_k. */
int pobox_store_fleet_history(struct pobox_store *st, int64_t since_k,
                              int (*fn)(void *ctx, int64_t k, int64_t n), void *ctx);
int pobox_store_fleet_usage_prune(struct pobox_store *st, int64_t before_k);
/* Units left reserved by a process that is gone become used at their
 * grant's charge bucket.  Returns how many in *units. */
int pobox_store_fleet_recover(struct pobox_store *st, int64_t *units);

/* What the host holds, from the outbox (for status, routing, metrics):
 * units left in open grants usable now (start_by after mono_now_ms, this
 * boot), apart for leases and the reserve. */
struct pobox_fleet_held {
	int64_t lease_left, reserve_left, reserve_granted, leases, used_open;
	int64_t lease_expires_mono_ms, reserve_expires_mono_ms;  /* latest start_by, -1: none */
};
int pobox_store_fleet_held(struct pobox_store *st, int64_t mono_now_ms, const char *boot_id,
                           struct pobox_fleet_held *h);

#endif
