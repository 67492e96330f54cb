/*
 * store_ops.c - the store's SQL for operators' commands: selecting,
 * requeueing and purging dead letters.  Part of the store module; see
 * store.h for the contracts.  Callers hold a transaction (a dry run rolls
 * it back).
 */
#include "error.h"
#include "internal.h"

#include <stdio.h>
#include <string.h>

int pobox_store_dead_select(struct pobox_store *st, const struct pobox_dead_filter *f, int64_t *n)
{
	static const char sql[] =
		"INSERT INTO temp.dead_sel (seq) SELECT seq FROM updates WHERE state = 'dead'"
		" AND (?1 IS NULL OR instr(',' || replace(?1, ' ', '') || ',', ',' || seq || ',') > 0)"
		" AND (?2 IS NULL OR instr(coalesce(last_error, ''), ?2) > 0)"
		" AND (?3 = 0 OR coalesce(dead_at_ms, enqueued_at_ms) >= ?3)";
	int rc = pobox_store_exec_sql(st, "CREATE TEMP TABLE IF NOT EXISTS dead_sel (seq INTEGER PRIMARY KEY);"
	                              "DELETE FROM temp.dead_sel", "selecting dead updates");
	if (rc)
		return rc;
	if (!f->ids && !f->reason && !f->since_ms && !f->all)
		return pobox_errf(st->err, st->errlen, POBOX_EINVALID,
		                  "no selection: give --id, --reason, --since or --all");
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	if (f->ids)
		sqlite3_bind_text(s, 1, f->ids, -1, SQLITE_STATIC);
	if (f->reason)
		sqlite3_bind_text(s, 2, f->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, f->since_ms);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return pobox_store_fail(st, rc, "selecting dead updates");
	*n = sqlite3_changes(st->db);
	return 0;
}

int pobox_store_dead_requeue(struct pobox_store *st, int64_t now_ms, int64_t *requeued)
{
	int rc;
	/* 1. replaced by a newer value: a live one (pending, batched or
	 * delivered), or a delivered one housekeeping has already folded into
	 * profile_state (its seq is kept there) */
	static const char stale[] =
		"UPDATE updates SET state = 'superseded', superseded_by = max("
		"  coalesce((SELECT max(n.seq) FROM updates n WHERE n.profile = updates.profile"
		"   AND n.attr = updates.attr AND n.state = 'live' AND n.seq > updates.seq), 0),"
		"  coalesce((SELECT ps.seq FROM profile_state ps WHERE ps.profile = updates.profile"
		"   AND ps.attr = updates.attr AND ps.seq > updates.seq), 0)) "
		"WHERE seq IN (SELECT seq FROM temp.dead_sel) AND (EXISTS ("
		"  SELECT 1 FROM updates n WHERE n.profile = updates.profile AND n.attr = updates.attr"
		"  AND n.state = 'live' AND n.seq > updates.seq) OR EXISTS ("
		"  SELECT 1 FROM profile_state ps WHERE ps.profile = updates.profile"
		"  AND ps.attr = updates.attr AND ps.seq > updates.seq))";
	/* 2. the newest selected value per profile+attribute goes in again */
	static const char again[] =
		"INSERT INTO updates (profile, attr, value, enqueued_at_ms, source, urgent) "
		"SELECT profile, attr, value, ?1, source, urgent FROM updates WHERE seq IN ("
		"  SELECT max(seq) FROM updates WHERE seq IN (SELECT seq FROM temp.dead_sel)"
		"  AND state = 'dead' GROUP BY profile, attr) ORDER BY seq";
	/* 3. every selected row still dead points at its replacement */
	static const char point[] =
		"UPDATE updates SET state = 'superseded', superseded_by = ("
		"  SELECT max(n.seq) FROM updates n WHERE n.profile = updates.profile"
		"  AND n.attr = updates.attr AND n.state = 'live') "
		"WHERE seq IN (SELECT seq FROM temp.dead_sel) AND state = 'dead'";
	static const char reset[] =
		"UPDATE profiles SET attempts = 0, next_attempt_at_ms = 0, last_error = NULL "
		"WHERE batch IS NULL AND id IN (SELECT profile FROM updates WHERE seq IN "
		"(SELECT seq FROM temp.dead_sel))";
	if ((rc = pobox_store_exec_sql(st, stale, "requeueing")) != 0)
		return rc;
	sqlite3_stmt *s = pobox_store_prep(st, again);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, now_ms);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return pobox_store_fail(st, rc, "requeueing");
	*requeued = sqlite3_changes(st->db);
	if ((rc = pobox_store_exec_sql(st, point, "requeueing")) != 0)
		return rc;
	return pobox_store_exec_sql(st, reset, "requeueing");
}

int pobox_store_dead_purge(struct pobox_store *st, int64_t *n)
{
	int rc = pobox_store_exec_sql(st, "DELETE FROM updates WHERE seq IN (SELECT seq FROM temp.dead_sel)",
	                              "purging dead updates");
	if (rc == 0)
		*n = sqlite3_changes(st->db);
	return rc;
}

/* One invariant: how to count what breaks it, and (when fixing it is safe,
 * i.e. loses nothing and at worst sends something again) how to fix it. */
struct check {
	const char *name;
	const char *count_sql;
	const char *fix_sql;     /* NULL: not safe to fix automatically */
	const char *advice;
};

static const struct check checks[] = {
	{"profiles held by a batch that is missing or already final",
	 "SELECT count(*) FROM profiles p WHERE p.batch IS NOT NULL AND NOT EXISTS (SELECT 1 FROM batches b"
	 " WHERE b.id = p.batch AND b.state IN ('ready', 'sending', 'submitted'))",
	 "UPDATE profiles SET batch = NULL WHERE batch IS NOT NULL AND NOT EXISTS (SELECT 1 FROM batches b"
	 " WHERE b.id = profiles.batch AND b.state IN ('ready', 'sending', 'submitted'))",
	 "--repair puts their updates back to pending (they are sent again: Target's updates are "
	 "idempotent sets)"},
	{"unfinished batches that hold no profile",
	 "SELECT count(*) FROM batches b WHERE b.state IN ('ready', 'sending', 'submitted') AND NOT EXISTS"
	 " (SELECT 1 FROM profiles p WHERE p.batch = b.id)",
	 "UPDATE batches SET state = 'dead', finished_at_ms = ?1, last_error = 'held no profiles; closed by"
	 " pobox doctor' WHERE state IN ('ready', 'sending', 'submitted') AND NOT EXISTS"
	 " (SELECT 1 FROM profiles p WHERE p.batch = batches.id)",
	 "--repair closes them (no update depends on them)"},
	{"profiles whose delivery watermark is past the newest update",
	 "SELECT count(*) FROM profiles WHERE done_seq > coalesce((SELECT seq FROM sqlite_sequence"
	 " WHERE name = 'updates'), 0) OR batch_seq > coalesce((SELECT seq FROM sqlite_sequence"
	 " WHERE name = 'updates'), 0)",
	 NULL,
	 "the outbox was edited by hand or restored in part; restore it from a backup"},
	{"updates naming a profile or attribute that does not exist",
	 "SELECT count(*) FROM updates u WHERE NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = u.profile)"
	 " OR NOT EXISTS (SELECT 1 FROM attributes a WHERE a.id = u.attr)",
	 NULL,
	 "they cannot be delivered; after a backup, delete them with sqlite3: DELETE FROM updates WHERE "
	 "profile NOT IN (SELECT id FROM profiles) OR attr NOT IN (SELECT id FROM attributes)"},
	{"quota ledger minutes with impossible counts",
	 "SELECT count(*) FROM quota_minutes WHERE used < 0 OR urgent < 0 OR urgent > used",
	 "UPDATE quota_minutes SET used = max(used, 0), urgent = min(max(urgent, 0), max(used, 0))"
	 " WHERE used < 0 OR urgent < 0 OR urgent > used",
	 "--repair clamps them (counting more used, never less)"},
	{"quota reservations with impossible counts",
	 "SELECT count(*) FROM quota_reservations WHERE urgent > units",
	 "UPDATE quota_reservations SET urgent = units WHERE urgent > units",
	 "--repair clamps them"},
	{"live updates already marked with a dead-letter time",
	 "SELECT count(*) FROM updates WHERE state = 'live' AND dead_at_ms IS NOT NULL",
	 "UPDATE updates SET dead_at_ms = NULL WHERE state = 'live' AND dead_at_ms IS NOT NULL",
	 "--repair clears the stray time"},
};

static int count_of(struct pobox_store *st, const char *sql, int64_t now_ms, int64_t *n)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		if (sqlite3_bind_parameter_count(s) >= 1)
			sqlite3_bind_int64(s, 1, now_ms);
		rc = sqlite3_step(s);
		*n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "checking the outbox");
}

int pobox_store_doctor(struct pobox_store *st, int repair, int64_t now_ms,
                       int (*fn)(void *ctx, const char *name, int64_t problems, int fixed,
                                 const char *advice),
                       void *ctx, int *integrity_ok)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, "PRAGMA integrity_check(20)", -1, &s, NULL);
	int64_t bad = 0;
	char first[300] = "";
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			const char *m = (const char *)sqlite3_column_text(s, 0);
			if (m && strcmp(m, "ok") != 0) {
				if (!bad++)
					snprintf(first, sizeof first, "%s", m);
			}
		}
	}
	sqlite3_finalize(s);
	*integrity_ok = 0;
	if (rc != SQLITE_DONE) {
		pobox_store_note_damage(st, rc, sqlite3_errmsg(st->db));
		return pobox_errf(st->err, st->errlen, pobox_store_code(rc),
		                  "outbox %s: SQLite's integrity check cannot even run: %s", st->path,
		                  sqlite3_errmsg(st->db));
	}
	/* damage is recorded for every process; a healthy file loses the mark,
	 * and nothing is repaired inside a damaged one (writing there can only
	 * spread the damage) */
	if (bad) {
		char msg[360];
		snprintf(msg, sizeof msg, "integrity_check: %s", first);
		pobox_store_note_damage(st, SQLITE_CORRUPT, msg);
		repair = 0;
	} else {
		*integrity_ok = 1;
		if ((rc = pobox_store_clear_damage(st)) != 0)
			return rc;
	}
	char advice[600];
	snprintf(advice, sizeof advice,
	         "SQLite reports damage (%s); stop pobox, copy the outbox aside, and recover it with "
	         "`sqlite3 OUTBOX .recover | sqlite3 NEW` or restore a backup", first);
	if ((rc = fn(ctx, "SQLite integrity check", bad, 0, bad ? advice : "")) != 0)
		return rc;
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		const struct check *c = &checks[i];
		int64_t n = 0;
		int fixed = 0;
		if ((rc = count_of(st, c->count_sql, now_ms, &n)) != 0)
			return rc;
		if (n && repair && c->fix_sql) {
			sqlite3_stmt *f = NULL;
			rc = sqlite3_prepare_v2(st->db, c->fix_sql, -1, &f, NULL);
			if (rc == SQLITE_OK) {
				if (sqlite3_bind_parameter_count(f) >= 1)
					sqlite3_bind_int64(f, 1, now_ms);
				rc = sqlite3_step(f);
			}
			sqlite3_finalize(f);
			if (rc != SQLITE_DONE)
				return pobox_store_fail(st, rc, c->name);
			fixed = 1;
		}
		if ((rc = fn(ctx, c->name, n, fixed, n ? c->advice : "")) != 0)
			return rc;
	}
	return 0;
}
