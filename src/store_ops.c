/*
 * store_ops.c - the store's SQL for operators' commands: selecting,
 * requeueing and purging dead letters.  Part of the store module; see
 * store.h for the contracts.  Callers hold a transaction (a dry run rolls
 * it back).
 */
#include "error.h"
#include "store_internal.h"

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

int pobox_store_dead_requeue(struct pobox_store *st, int64_t now_ms, int64_t *requeued,
                             int64_t *superseded)
{
	int rc;
	/* 1. replaced by a newer live value (pending, batched or delivered) */
	static const char stale[] =
		"UPDATE updates SET state = 'superseded', superseded_by = ("
		"  SELECT max(n.seq) FROM updates n WHERE n.profile = updates.profile"
		"  AND n.attr = updates.attr AND n.state = 'live' AND n.seq > updates.seq) "
		"WHERE seq IN (SELECT seq FROM temp.dead_sel) AND EXISTS ("
		"  SELECT 1 FROM updates n WHERE n.profile = updates.profile AND n.attr = updates.attr"
		"  AND n.state = 'live' AND n.seq > updates.seq)";
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
	*superseded = sqlite3_changes(st->db);
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
