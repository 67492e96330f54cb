/*
 * fleet.c - the store's SQL for this host's side of a fleet-wide budget
 * (schema/0008_fleet.sql): the one fleet_state row, the grants held
 * (fleet_leases), their use per bucket (fleet_lease_use) and the window's
 * calls per bucket (fleet_usage).  src/fleet.c decides; these functions
 * only read and write, inside the caller's transaction when it holds one.
 * Part of the store module; see store.h for the contracts.
 */
#include "error.h"
#include "internal.h"

#include <stdio.h>
#include <string.h>

static int step_done(struct pobox_store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : pobox_store_fail(st, rc, what);
}

static void text_or(sqlite3_stmt *s, int i, char *buf, size_t len)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	snprintf(buf, len, "%s", t ? (const char *)t : "");
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
	if (t && *t)
		sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

#define STATE_COLS \
	"account, host, incarnation, next_seq, epoch, serial, reported_epoch, budget, margin," \
	" window_ms, bucket_ms, bulk_limit, urgent_share, lease_ms, reserve_ms, spent, free, hosts," \
	" learning, grant_rate, last_contact_ms, last_attempt_ms, reachable, last_error, requests, soon"

int pobox_store_fleet_get(struct pobox_store *st, struct pobox_fleet_row *r, int *found)
{
	static const char sql[] = "SELECT " STATE_COLS " FROM fleet_state WHERE id = 1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	memset(r, 0, sizeof *r);
	r->budget = -1;
	int rc = sqlite3_step(s);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW) {
		text_or(s, 0, r->account, sizeof r->account);
		text_or(s, 1, r->host, sizeof r->host);
		text_or(s, 2, r->incarnation, sizeof r->incarnation);
		r->next_seq = sqlite3_column_int64(s, 3);
		text_or(s, 4, r->epoch, sizeof r->epoch);
		r->serial = sqlite3_column_int64(s, 5);
		text_or(s, 6, r->reported_epoch, sizeof r->reported_epoch);
		r->budget = pobox_store_col_int(s, 7, -1);
		r->margin = pobox_store_col_int(s, 8, 0);
		r->window_ms = pobox_store_col_int(s, 9, 0);
		r->bucket_ms = pobox_store_col_int(s, 10, 1);
		r->bulk_limit = pobox_store_col_int(s, 11, 0);
		r->urgent_share = sqlite3_column_double(s, 12);
		r->lease_ms = pobox_store_col_int(s, 13, 0);
		r->reserve_ms = pobox_store_col_int(s, 14, 0);
		r->spent = pobox_store_col_int(s, 15, 0);
		r->free = pobox_store_col_int(s, 16, 0);
		r->hosts = pobox_store_col_int(s, 17, 0);
		r->learning = (int)pobox_store_col_int(s, 18, 0);
		r->grant_rate = sqlite3_column_double(s, 19);
		r->last_contact_ms = pobox_store_col_int(s, 20, 0);
		r->last_attempt_ms = pobox_store_col_int(s, 21, 0);
		r->reachable = (int)pobox_store_col_int(s, 22, 0);
		text_or(s, 23, r->last_error, sizeof r->last_error);
		r->requests = pobox_store_col_int(s, 24, 0);
		r->soon = pobox_store_col_int(s, 25, 0);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "reading the fleet state");
}

int pobox_store_fleet_put(struct pobox_store *st, const struct pobox_fleet_row *r)
{
	static const char sql[] =
		"INSERT OR REPLACE INTO fleet_state (id, " STATE_COLS ") VALUES (1, ?1, ?2, ?3, ?4, ?5,"
		" ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23,"
		" ?24, ?25, ?26)";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, r->account, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, r->host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, r->incarnation, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, r->next_seq);
	bind_text_or_null(s, 5, r->epoch);
	sqlite3_bind_int64(s, 6, r->serial);
	bind_text_or_null(s, 7, r->reported_epoch);
	if (r->budget >= 0) {
		sqlite3_bind_int64(s, 8, r->budget);
		sqlite3_bind_int64(s, 9, r->margin);
		sqlite3_bind_int64(s, 10, r->window_ms);
		sqlite3_bind_int64(s, 11, r->bucket_ms);
		sqlite3_bind_int64(s, 12, r->bulk_limit);
		sqlite3_bind_double(s, 13, r->urgent_share);
		sqlite3_bind_int64(s, 14, r->lease_ms);
		sqlite3_bind_int64(s, 15, r->reserve_ms);
		sqlite3_bind_int64(s, 16, r->spent);
		sqlite3_bind_int64(s, 17, r->free);
		sqlite3_bind_int64(s, 18, r->hosts);
		sqlite3_bind_int(s, 19, r->learning);
	}
	sqlite3_bind_double(s, 20, r->grant_rate);
	if (r->last_contact_ms)
		sqlite3_bind_int64(s, 21, r->last_contact_ms);
	if (r->last_attempt_ms)
		sqlite3_bind_int64(s, 22, r->last_attempt_ms);
	sqlite3_bind_int(s, 23, r->reachable);
	bind_text_or_null(s, 24, r->last_error);
	sqlite3_bind_int64(s, 25, r->requests);
	sqlite3_bind_int64(s, 26, r->soon);
	return step_done(st, s, "writing the fleet state");
}

int pobox_store_fleet_leases(struct pobox_store *st,
                             int (*fn)(void *ctx, const struct pobox_fleet_lease_row *l), void *ctx)
{
	static const char sql[] =
		"SELECT id, kind = 'reserve', epoch, boot_id, granted, used, reserved, grant_coord_ms,"
		" sent_mono_ms, life_ms, start_by_mono_ms, charge_k, closed, granted_at_ms "
		"FROM fleet_leases ORDER BY id";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	struct pobox_fleet_lease_row rows[32];
	int n = 0, r, rc = 0;
	if (!s)
		return POBOX_EIO;
	/* copied out first: fn may write */
	while ((r = sqlite3_step(s)) == SQLITE_ROW && n < 32) {
		struct pobox_fleet_lease_row *l = &rows[n++];
		l->id = sqlite3_column_int64(s, 0);
		l->reserve = sqlite3_column_int(s, 1);
		text_or(s, 2, l->epoch, sizeof l->epoch);
		text_or(s, 3, l->boot_id, sizeof l->boot_id);
		l->granted = sqlite3_column_int64(s, 4);
		l->used = sqlite3_column_int64(s, 5);
		l->reserved = sqlite3_column_int64(s, 6);
		l->grant_coord_ms = sqlite3_column_int64(s, 7);
		l->sent_mono_ms = sqlite3_column_int64(s, 8);
		l->life_ms = sqlite3_column_int64(s, 9);
		l->start_by_mono_ms = sqlite3_column_int64(s, 10);
		l->charge_k = sqlite3_column_int64(s, 11);
		l->closed = sqlite3_column_int(s, 12);
		l->granted_at_ms = sqlite3_column_int64(s, 13);
	}
	sqlite3_reset(s);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return pobox_store_fail(st, r, "reading the fleet leases");
	for (int i = 0; i < n && rc == 0; i++)
		rc = fn(ctx, &rows[i]);
	return rc;
}

int pobox_store_fleet_lease_add(struct pobox_store *st, const struct pobox_fleet_lease_row *l)
{
	static const char sql[] =
		"INSERT OR IGNORE INTO fleet_leases (id, kind, epoch, granted, used, reserved, grant_coord_ms,"
		" sent_mono_ms, boot_id, life_ms, start_by_mono_ms, charge_k, closed, granted_at_ms) "
		"VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11)";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, l->id);
	sqlite3_bind_text(s, 2, l->reserve ? "reserve" : "lease", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, l->epoch, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, l->granted);
	sqlite3_bind_int64(s, 5, l->grant_coord_ms);
	sqlite3_bind_int64(s, 6, l->sent_mono_ms);
	sqlite3_bind_text(s, 7, l->boot_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 8, l->life_ms);
	sqlite3_bind_int64(s, 9, l->start_by_mono_ms);
	sqlite3_bind_int64(s, 10, l->charge_k);
	sqlite3_bind_int64(s, 11, l->granted_at_ms);
	return step_done(st, s, "recording a fleet lease");
}

int pobox_store_fleet_lease_renew(struct pobox_store *st, const struct pobox_fleet_lease_row *l)
{
	static const char sql[] =
		"UPDATE fleet_leases SET grant_coord_ms = ?2, sent_mono_ms = ?3, boot_id = ?4, life_ms = ?5,"
		" start_by_mono_ms = ?6, charge_k = ?7, granted_at_ms = ?8, closed = 0 WHERE id = ?1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, l->id);
	sqlite3_bind_int64(s, 2, l->grant_coord_ms);
	sqlite3_bind_int64(s, 3, l->sent_mono_ms);
	sqlite3_bind_text(s, 4, l->boot_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, l->life_ms);
	sqlite3_bind_int64(s, 6, l->start_by_mono_ms);
	sqlite3_bind_int64(s, 7, l->charge_k);
	sqlite3_bind_int64(s, 8, l->granted_at_ms);
	return step_done(st, s, "renewing a fleet lease");
}

int pobox_store_fleet_lease_close(struct pobox_store *st, int64_t id)
{
	static const char sql[] = "UPDATE fleet_leases SET closed = 1 WHERE id = ?1";
	return pobox_store_run(st, sql, "closing a fleet lease", 1, &id, 0, NULL);
}

int pobox_store_fleet_lease_drop(struct pobox_store *st, int64_t id)
{
	static const char uses[] = "DELETE FROM fleet_lease_use WHERE lease = ?1";
	static const char lease[] = "DELETE FROM fleet_leases WHERE id = ?1";
	int rc = pobox_store_run(st, uses, "forgetting a fleet lease", 1, &id, 0, NULL);
	return rc ? rc : pobox_store_run(st, lease, "forgetting a fleet lease", 1, &id, 0, NULL);
}

int pobox_store_fleet_lease_change(struct pobox_store *st, int64_t id, int64_t d_reserved,
                                   int64_t d_used)
{
	static const char sql[] =
		"UPDATE fleet_leases SET reserved = reserved + ?2, used = used + ?3 WHERE id = ?1";
	const int64_t v[3] = {id, d_reserved, d_used};
	return pobox_store_run(st, sql, "charging a fleet lease", 3, v, 0, NULL);
}

int pobox_store_fleet_use_add(struct pobox_store *st, int64_t lease, int64_t k, int64_t n)
{
	static const char sql[] =
		"INSERT INTO fleet_lease_use (lease, k, n) VALUES (?1, ?2, ?3) "
		"ON CONFLICT (lease, k) DO UPDATE SET n = n + excluded.n";
	const int64_t v[3] = {lease, k, n};
	return pobox_store_run(st, sql, "recording a fleet lease's use", 3, v, 0, NULL);
}

int pobox_store_fleet_usage_add(struct pobox_store *st, int64_t k, int64_t n)
{
	static const char sql[] =
		"INSERT INTO fleet_usage (k, n) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET n = n + excluded.n";
	const int64_t v[2] = {k, n};
	return pobox_store_run(st, sql, "recording the fleet history", 2, v, 0, NULL);
}

static int each_kn(struct pobox_store *st, sqlite3_stmt *s, int (*fn)(void *, int64_t, int64_t),
                   void *ctx, const char *what)
{
	int r, rc = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		if ((rc = fn(ctx, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1))) != 0)
			break;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, what);
	return rc;
}

int pobox_store_fleet_lease_uses(struct pobox_store *st, int64_t lease,
                                 int (*fn)(void *ctx, int64_t k, int64_t n), void *ctx)
{
	static const char sql[] = "SELECT k, n FROM fleet_lease_use WHERE lease = ?1 ORDER BY k";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, lease);
	return each_kn(st, s, fn, ctx, "reading a fleet lease's use");
}

int pobox_store_fleet_history(struct pobox_store *st, int64_t since_k,
                              int (*fn)(void *ctx, int64_t k, int64_t n), void *ctx)
{
	static const char sql[] = "SELECT k, n FROM fleet_usage WHERE k > ?1 ORDER BY k";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, since_k);
	return each_kn(st, s, fn, ctx, "reading the fleet history");
}

int pobox_store_fleet_usage_prune(struct pobox_store *st, int64_t before_k)
{
	static const char sql[] = "DELETE FROM fleet_usage WHERE k <= ?1";
	return pobox_store_run(st, sql, "pruning the fleet history", 1, &before_k, 0, NULL);
}

int pobox_store_fleet_recover(struct pobox_store *st, int64_t *units)
{
	static const char uses[] =
		"INSERT INTO fleet_lease_use (lease, k, n) SELECT id, charge_k, reserved FROM fleet_leases "
		"WHERE reserved > 0 ON CONFLICT (lease, k) DO UPDATE SET n = n + excluded.n";
	static const char hist[] =
		"INSERT INTO fleet_usage (k, n) SELECT charge_k, sum(reserved) FROM fleet_leases "
		"WHERE reserved > 0 GROUP BY charge_k ON CONFLICT (k) DO UPDATE SET n = n + excluded.n";
	static const char move[] =
		"UPDATE fleet_leases SET used = used + reserved, reserved = 0 WHERE reserved > 0";
	static const char count[] = "SELECT coalesce(sum(reserved), 0) FROM fleet_leases";
	const char *steps[3] = {uses, hist, move};
	int rc;
	*units = 0;
	if ((rc = pobox_store_one(st, count, "counting a dead process's fleet units", 0, NULL, units,
	                          NULL)) != 0)
		return rc;
	for (int i = 0; i < 3 && *units && rc == 0; i++)
		rc = pobox_store_run(st, steps[i], "counting a dead process's fleet units", 0, NULL, 0,
		                     NULL);
	return rc;
}

int pobox_store_fleet_held(struct pobox_store *st, int64_t mono_now_ms, const char *boot_id,
                           struct pobox_fleet_held *h)
{
	static const char sql[] =
		"SELECT kind = 'reserve', granted - used - reserved, granted, start_by_mono_ms, used "
		"FROM fleet_leases WHERE closed = 0 AND boot_id = ?1 AND start_by_mono_ms > ?2";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	int r;
	if (!s)
		return POBOX_EIO;
	memset(h, 0, sizeof *h);
	h->lease_expires_mono_ms = h->reserve_expires_mono_ms = -1;
	sqlite3_bind_text(s, 1, boot_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, mono_now_ms);
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t left = sqlite3_column_int64(s, 1), by = sqlite3_column_int64(s, 3);
		if (sqlite3_column_int(s, 0)) {
			h->reserve_left += left;
			h->reserve_granted += sqlite3_column_int64(s, 2);
			if (by > h->reserve_expires_mono_ms)
				h->reserve_expires_mono_ms = by;
		} else {
			h->lease_left += left;
			h->leases++;
			h->used_open += sqlite3_column_int64(s, 4);
			if (by > h->lease_expires_mono_ms)
				h->lease_expires_mono_ms = by;
		}
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r == SQLITE_DONE ? 0 : pobox_store_fail(st, r, "reading the fleet leases");
}
