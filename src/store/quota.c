/*
 * store_quota.c - the store's SQL for the single-call lane: the quota
 * ledger (schema/0003_single.sql), single-lane batches and profile
 * outcomes, and the cheap checks the service loop makes between cuts.
 * Part of the store module; see store.h for the contracts.
 */
#include "alloc.h"
#include "error.h"
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int step_done(struct pobox_store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : pobox_store_fail(st, rc, what);
}

int pobox_store_quota_sum(struct pobox_store *st, int64_t now_ms, int64_t *used,
                          int64_t *urgent_used, int64_t *reserved)
{
	static const char sql[] =
		"SELECT (SELECT coalesce(sum(used), 0) FROM quota_minutes WHERE minute > ?1 - 1440),"
		"       (SELECT coalesce(sum(urgent), 0) FROM quota_minutes WHERE minute > ?1 - 1440),"
		"       (SELECT coalesce(sum(units), 0) FROM quota_reservations WHERE minute > ?1 - 1440)";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, now_ms / 60000);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*used = sqlite3_column_int64(s, 0);
		*urgent_used = sqlite3_column_int64(s, 1);
		*reserved = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : pobox_store_fail(st, rc, "reading the quota ledger");
}

int pobox_store_quota_reserve(struct pobox_store *st, const char *owner, int64_t now_ms,
                              int64_t n, int64_t urgent)
{
	static const char sql[] =
		"INSERT INTO quota_reservations (owner, minute, units, urgent) VALUES (?1, ?2, ?3, ?4) "
		"ON CONFLICT (owner, minute) DO UPDATE SET units = units + ?3, urgent = urgent + ?4";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now_ms / 60000);
	sqlite3_bind_int64(s, 3, n);
	sqlite3_bind_int64(s, 4, urgent);
	return step_done(st, s, "reserving quota");
}

int pobox_store_quota_settle(struct pobox_store *st, const char *owner, int64_t minute,
                             int64_t used, int64_t urgent_used, int64_t released,
                             int64_t urgent_released)
{
	static const char dec[] =
		"UPDATE quota_reservations SET units = units - ?3, urgent = max(urgent - ?4, 0) "
		"WHERE owner = ?1 AND minute = ?2";
	static const char drop[] =
		"DELETE FROM quota_reservations WHERE owner = ?1 AND minute = ?2 AND units = 0";
	static const char add[] =
		"INSERT INTO quota_minutes (minute, used, urgent) VALUES (?1, ?2, ?3) "
		"ON CONFLICT (minute) DO UPDATE SET used = used + ?2, urgent = urgent + ?3";
	sqlite3_stmt *s;
	int rc;
	if (!(s = pobox_store_prep(st, dec)))
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, minute);
	sqlite3_bind_int64(s, 3, used + released);
	sqlite3_bind_int64(s, 4, urgent_used + urgent_released);
	if ((rc = step_done(st, s, "settling quota")) != 0)
		return rc;
	if (!(s = pobox_store_prep(st, drop)))
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, minute);
	if ((rc = step_done(st, s, "settling quota")) != 0 || used == 0)
		return rc;
	if (!(s = pobox_store_prep(st, add)))
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, minute);
	sqlite3_bind_int64(s, 2, used);
	sqlite3_bind_int64(s, 3, urgent_used);
	return step_done(st, s, "counting quota");
}

int pobox_store_quota_owners(struct pobox_store *st,
                             int (*fn)(void *ctx, const char *owner), void *ctx)
{
	static const char sql[] = "SELECT DISTINCT owner FROM quota_reservations";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	char owners[32][128];
	int n = 0, r, rc = 0;
	if (!s)
		return POBOX_EIO;
	/* copy out first: fn may reap (write) */
	while ((r = sqlite3_step(s)) == SQLITE_ROW && n < 32)
		snprintf(owners[n++], sizeof owners[0], "%s", sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return pobox_store_fail(st, r, "reading quota owners");
	for (int i = 0; i < n && rc == 0; i++)
		rc = fn(ctx, owners[i]);
	return rc;
}

int pobox_store_quota_reap(struct pobox_store *st, const char *owner)
{
	static const char add[] =
		"INSERT INTO quota_minutes (minute, used, urgent) "
		"SELECT minute, units, urgent FROM quota_reservations WHERE owner = ?1 AND units > 0 "
		"ON CONFLICT (minute) DO UPDATE SET used = used + excluded.used, urgent = urgent + excluded.urgent";
	static const char del[] = "DELETE FROM quota_reservations WHERE owner = ?1";
	sqlite3_stmt *s;
	int rc;
	if (!(s = pobox_store_prep(st, add)))
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, owner, -1, SQLITE_STATIC);
	if ((rc = step_done(st, s, "reaping reservations")) != 0)
		return rc;
	if (!(s = pobox_store_prep(st, del)))
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, owner, -1, SQLITE_STATIC);
	return step_done(st, s, "reaping reservations");
}

int pobox_store_quota_reap_before(struct pobox_store *st, int64_t minute)
{
	static const char add[] =
		"INSERT INTO quota_minutes (minute, used, urgent) "
		"SELECT minute, sum(units), sum(urgent) FROM quota_reservations WHERE minute < ?1 AND units > 0 "
		"GROUP BY minute "
		"ON CONFLICT (minute) DO UPDATE SET used = used + excluded.used, urgent = urgent + excluded.urgent";
	static const char del[] = "DELETE FROM quota_reservations WHERE minute < ?1";
	sqlite3_stmt *s;
	int rc;
	if (!(s = pobox_store_prep(st, add)))
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, minute);
	if ((rc = step_done(st, s, "reaping old reservations")) != 0)
		return rc;
	if (!(s = pobox_store_prep(st, del)))
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, minute);
	return step_done(st, s, "reaping old reservations");
}

int pobox_store_quota_minutes(struct pobox_store *st, int64_t now_ms,
                              int (*fn)(void *ctx, int64_t minute, int64_t used, int64_t urgent),
                              void *ctx)
{
	static const char sql[] =
		"SELECT minute, used, urgent FROM quota_minutes WHERE minute > ?1 - 1440 ORDER BY minute";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	int r, rc = 0;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, now_ms / 60000);
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		if ((rc = fn(ctx, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
		             sqlite3_column_int64(s, 2))) != 0)
			break;
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "reading the quota ledger");
	return rc;
}

int pobox_store_profiles_delivered(struct pobox_store *st, int64_t batch,
                                   const int64_t *profiles, const int64_t *cells, size_t n,
                                   int64_t now_ms)
{
	/* 32 profiles per statement: one statement per call was a third of
	 * the settling cost.  Unused places stay NULL and match nothing. */
#define Q4 "?,?,?,?"
#define Q32 Q4 "," Q4 "," Q4 "," Q4 "," Q4 "," Q4 "," Q4 "," Q4
#define L4 "(?1,?),(?1,?),(?1,?),(?1,?)"
#define L32 L4 "," L4 "," L4 "," L4 "," L4 "," L4 "," L4 "," L4
	enum { CHUNK = 32 };
	static const char sql[] =
		"UPDATE profiles SET done_seq = max(done_seq, (SELECT batch_seq FROM batches WHERE id = ?1)),"
		" done_at_ms = ?2, attempts = 0, next_attempt_at_ms = 0, last_error = NULL, route_bulk = 0 "
		"WHERE id IN (" Q32 ")";
	static const char left[] = "INSERT OR IGNORE INTO batch_left (batch, profile) VALUES " L32;
#undef L32
#undef L4
#undef Q32
#undef Q4
	int64_t moved = 0;
	int rc = pobox_store_need_tx(st, "recording deliveries");
	if (rc)
		return rc;
	for (size_t at = 0; at < n && rc == 0; at += CHUNK) {
		sqlite3_stmt *s = pobox_store_prep(st, sql), *l = pobox_store_prep(st, left);
		if (!s || !l)
			return POBOX_EIO;
		sqlite3_bind_int64(s, 1, batch);
		sqlite3_bind_int64(s, 2, now_ms);
		sqlite3_bind_int64(l, 1, batch);
		for (size_t i = 0; i < CHUNK; i++) {
			/* unused places repeat the chunk's first profile: harmless */
			int64_t id = profiles[at + (at + i < n ? i : 0)];
			sqlite3_bind_int64(s, (int)i + 3, id);
			sqlite3_bind_int64(l, (int)i + 2, id);
			if (at + i < n)
				moved += cells[at + i];
		}
		if ((rc = step_done(st, s, "recording deliveries")) == 0)
			rc = step_done(st, l, "recording deliveries");
	}
	if (rc == 0) {
		int64_t a[2] = {batch, -moved};
		rc = pobox_store_run(st, "UPDATE batches SET held = held + ?2 WHERE id = ?1",
		                     "counting a batch's updates", 2, a, 0, NULL);
	}
	if (rc)
		return rc;
	st->d.batched -= moved;
	st->d.delivered += moved;
	if (now_ms > st->d.last_delivery_ms)
		st->d.last_delivery_ms = now_ms;
	st->d.dirty = 1;
	return 0;
}

int pobox_store_single_batch_new(struct pobox_store *st, enum pobox_id_type t, int64_t now_ms,
                                 int64_t *id)
{
	static const char sql[] =
		"INSERT INTO batches (lane, api, id_type, state, profiles, updates, bytes,"
		"                     payload_crc32, created_at_ms, next_at_ms) "
		"VALUES ('single', 'single', ?1, 'ready', 0, 0, 0, 0, ?2, ?2)";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, pobox_id_type_name(t), -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now_ms);
	int rc = step_done(st, s, "creating a single-lane batch");
	if (rc == 0)
		*id = sqlite3_last_insert_rowid(st->db);
	return rc;
}

int pobox_store_single_batch_counts(struct pobox_store *st, int64_t id, int64_t profiles,
                                    int64_t updates, int64_t bytes)
{
	static const char sql[] =
		"UPDATE batches SET profiles = ?2, updates = ?3, held = ?3, bytes = ?4 WHERE id = ?1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, profiles);
	sqlite3_bind_int64(s, 3, updates);
	sqlite3_bind_int64(s, 4, bytes);
	int rc = step_done(st, s, "counting a single-lane batch");
	return rc ? rc : pobox_store_members_flush(st, id);
}

int pobox_store_single_batch_finish(struct pobox_store *st, int64_t batch, int64_t now_ms,
                                    int64_t ok, int64_t not_found, int64_t failed)
{
	static const char sql[] =
		"UPDATE batches SET state = 'done', finished_at_ms = ?2,"
		" successful_updates = coalesce(successful_updates, 0) + ?3,"
		" profiles_not_found = coalesce(profiles_not_found, 0) + ?4,"
		" failed_updates = coalesce(failed_updates, 0) + ?5 "
		"WHERE id = ?1 AND (SELECT count(*) FROM batch_left WHERE batch = ?1) >= (SELECT coalesce(sum(json_array_length(members)), 0) FROM batch_members WHERE batch = ?1)";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, batch);
	sqlite3_bind_int64(s, 2, now_ms);
	sqlite3_bind_int64(s, 3, ok);
	sqlite3_bind_int64(s, 4, not_found);
	sqlite3_bind_int64(s, 5, failed);
	return step_done(st, s, "finishing a single-lane batch");
}

int pobox_store_lane_next(struct pobox_store *st, const char *lane, int64_t except, int64_t *id,
                          int64_t *next_at_ms)
{
	static const char sql[] =
		"SELECT id, next_at_ms FROM batches WHERE state IN ('ready', 'sending', 'submitted') "
		"AND lane = ?1 AND id <> ?2 ORDER BY next_at_ms, id LIMIT 1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, lane, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, except);
	int rc = sqlite3_step(s);
	*id = 0;
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*next_at_ms = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "finding due work");
}

int pobox_store_newest(struct pobox_store *st, int64_t after_seq, int64_t *max_seq,
                       int *urgent_after, int64_t *oldest_after_ms)
{
	/* the tallies, and only the writes (and staged rows) after after_seq */
	static const char sql[] =
		"SELECT (SELECT next_seq - 1 FROM tallies),"
		"       EXISTS (SELECT 1 FROM writes WHERE seq > ?1 AND urgent = 1)"
		"       OR EXISTS (SELECT 1 FROM staged WHERE seq > ?1 AND urgent = 1),"
		"       (SELECT min(t) FROM (SELECT min(enqueued_at_ms) AS t FROM writes WHERE seq > ?1"
		"        UNION ALL SELECT min(enqueued_at_ms) FROM staged WHERE seq > ?1))";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, after_seq);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*max_seq = sqlite3_column_int64(s, 0);
		*urgent_after = sqlite3_column_int(s, 1);
		*oldest_after_ms = pobox_store_col_int(s, 2, -1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : pobox_store_fail(st, rc, "checking for new updates");
}

int64_t pobox_store_used_bytes(struct pobox_store *st)
{
	/* pages in use, wherever they are (main file or WAL): the WAL file keeps
	 * its high-water size while any reader holds an old snapshot, so file
	 * sizes overstate what the outbox holds */
	int64_t pages = 0, free_pages = 0, size = 0;
	if (pobox_store_query_int64(st, "PRAGMA page_count", &pages) != 0 ||
	    pobox_store_query_int64(st, "PRAGMA freelist_count", &free_pages) != 0 ||
	    pobox_store_query_int64(st, "PRAGMA page_size", &size) != 0)
		return pobox_store_file_bytes(st);
	return (pages - free_pages) * size;
}

void pobox_store_space(struct pobox_store *st, int64_t *used, int64_t *unwritten)
{
	static const char sql[] = "SELECT p.page_count, f.freelist_count, s.page_size FROM "
	                          "pragma_page_count p, pragma_freelist_count f, pragma_page_size s";
	int64_t pages = 0, free_pages = 0, size = 0;
	int cache = 0, hi = 0;
	struct stat sb;
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (s && sqlite3_step(s) == SQLITE_ROW) {
		pages = sqlite3_column_int64(s, 0);
		free_pages = sqlite3_column_int64(s, 1);
		size = sqlite3_column_int64(s, 2);
	}
	if (s)
		sqlite3_reset(s);
	if (!size) { /* cannot tell: the files' sizes are an upper bound */
		*used = pobox_store_file_bytes(st);
		*unwritten = 0;
		return;
	}
	*used = (pages - free_pages) * size;
	/* only a write transaction has dirty pages; the cache's memory bounds
	 * them (what did not fit went to the WAL already, and is on disk) */
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_db_status(st->db, SQLITE_DBSTATUS_CACHE_USED, &cache, &hi, 0);
	int64_t grow = stat(st->path, &sb) == 0 ? pages * size - (int64_t)sb.st_size : 0;
	*unwritten = (int64_t)cache + (grow > 0 ? grow : 0);
}

void pobox_store_checkpoint(struct pobox_store *st)
{
	sqlite3_busy_timeout(st->db, 1000);
	sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	sqlite3_busy_timeout(st->db, st->busy_timeout_ms);
}

int64_t pobox_store_file_bytes(struct pobox_store *st)
{
	char buf[4096];
	struct stat sb;
	int64_t n = 0;
	if (stat(st->path, &sb) == 0)
		n += (int64_t)sb.st_size;
	snprintf(buf, sizeof buf, "%s-wal", st->path);
	if (stat(buf, &sb) == 0)
		n += (int64_t)sb.st_size;
	return n;
}

struct has_attr {
	int64_t attr;
	int found;
};

static int on_pending_cell(void *ctx, int64_t seq, int64_t attr, const char *v, size_t len)
{
	struct has_attr *h = ctx;
	(void)seq, (void)v, (void)len;
	if (attr == h->attr)
		h->found = 1;
	return 0;
}

int pobox_store_pending_exists(struct pobox_store *st, enum pobox_id_type t, const char *id,
                               size_t id_len, const char *attr, size_t attr_len, int *exists)
{
	/* pending = above the delivered and batched watermarks, live */
	static const char attr_sql[] = "SELECT id FROM attributes WHERE name = ?1";
	static const char rows[] =
		"SELECT seq, shape, cells, fates FROM writes WHERE profile = ?1 AND seq > ?2";
	struct pobox_profile_ref ref;
	struct has_attr h = {0, 0};
	int rc, r;
	*exists = 0;
	if ((rc = pobox_store_profile_find(st, t, id, id_len, &ref)) != 0 || !ref.id)
		return rc;
	sqlite3_stmt *s = pobox_store_prep(st, attr_sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, attr, (int)attr_len, SQLITE_STATIC);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		h.attr = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (r != SQLITE_ROW)
		return r == SQLITE_DONE ? 0 : pobox_store_fail(st, r, "checking pending updates");
	int64_t fence = 0;
	if ((rc = pobox_store_fenced(st, ref.id, &fence)) != 0)
		return rc;
	if (!(s = pobox_store_prep(st, rows)))
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, ref.id);
	sqlite3_bind_int64(s, 2, fence > ref.done_seq ? fence : ref.done_seq);
	while (rc == 0 && !h.found && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = pobox_store_each_cell(st, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
		                           (const char *)sqlite3_column_text(s, 2),
		                           (size_t)sqlite3_column_bytes(s, 2), sqlite3_column_int64(s, 3),
		                           on_pending_cell, &h);
	sqlite3_reset(s);
	if (rc == 0 && !h.found && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "checking pending updates");
	*exists = h.found;
	return rc;
}

int pobox_store_count_calls(struct pobox_store *st, const char *lane, long http_status,
                            int64_t calls, int64_t errors)
{
	static const char sql[] =
		"INSERT INTO call_counts (lane, http_status, calls, errors) VALUES (?1, ?2, ?3, ?4) "
		"ON CONFLICT (lane, http_status) DO UPDATE SET calls = calls + ?3, errors = errors + ?4";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, lane, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, http_status);
	sqlite3_bind_int64(s, 3, calls);
	sqlite3_bind_int64(s, 4, errors);
	return step_done(st, s, "counting calls");
}

int pobox_store_count_call(struct pobox_store *st, const char *lane, long http_status, int error)
{
	return pobox_store_count_calls(st, lane, http_status, 1, error ? 1 : 0);
}
