/*
 * ops.c - the store's SQL for operators' commands: selecting, requeueing
 * and purging dead letters, and pobox doctor's checks.  Part of the store;
 * see store.h for the contracts and schema/0006_storage.sql for the
 * invariants doctor checks.  Callers hold a transaction (a dry run rolls it
 * back).
 */
#include "alloc.h"
#include "cells.h"
#include "error.h"
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* ---- dead letters -------------------------------------------------------- */

int pobox_store_dead_select(struct pobox_store *st, const struct pobox_dead_filter *f, int64_t *n)
{
	static const char sql[] =
		"INSERT INTO temp.dead_sel (seq) SELECT seq FROM fates WHERE state = 'dead'"
		" AND (?1 IS NULL OR instr(',' || replace(?1, ' ', '') || ',', ',' || seq || ',') > 0)"
		" AND (?2 IS NULL OR instr(coalesce(last_error, ''), ?2) > 0)"
		" AND (?3 = 0 OR coalesce(dead_at_ms, 0) >= ?3)";
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

/* The selected dead updates with what requeueing needs, by profile and
 * attribute, oldest first (materialized by the sort before the first row,
 * so the writes requeueing adds do not show up in it). */
static const char SQL_SELECTED[] =
	"SELECT d.seq, w.profile, CAST(json_extract(sh.attrs, '$[' || (d.seq - w.seq) || ']') AS INTEGER),"
	"       json_extract(w.cells, '$[' || (d.seq - w.seq) || ']'), coalesce(w.source, 0), w.urgent,"
	"       p.id_type, p.profile_id, p.done_seq, p.sent_seq "
	"FROM temp.dead_sel d "
	"JOIN writes w ON w.seq = (SELECT max(x.seq) FROM writes x WHERE x.seq <= d.seq) "
	"JOIN shapes sh ON sh.id = w.shape JOIN profiles p ON p.id = w.profile "
	"ORDER BY 2, 3, 1";

struct newest {
	int64_t attr, seq;
};

struct newer_ctx {
	struct newest *v;
	size_t n, cap;
	int oom;
};

static int note_newer(struct newer_ctx *c, int64_t attr, int64_t seq)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->v[i].attr == attr) {
			if (seq > c->v[i].seq)
				c->v[i].seq = seq;
			return 0;
		}
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct newest *nv = pobox_realloc(c->v, cap * sizeof *nv);
		if (!nv) {
			c->oom = 1;
			return POBOX_ENOMEM;
		}
		c->v = nv;
		c->cap = cap;
	}
	c->v[c->n++] = (struct newest){attr, seq};
	return 0;
}

static int on_live(void *ctx, int64_t seq, int64_t attr, const char *v, size_t len)
{
	(void)v, (void)len;
	return note_newer(ctx, attr, seq);
}

/* For one profile: the newest live update of each attribute, and the seq
 * of each folded value (what a dead update may have been replaced by). */
static int newest_of(struct pobox_store *st, int64_t profile, struct newer_ctx *c)
{
	static const char rows[] =
		"SELECT seq, shape, cells, fates FROM writes WHERE profile = ?1 ORDER BY seq";
	static const char sent[] =
		"SELECT CAST(json_extract(e.value, '$[0]') AS INTEGER), json_extract(e.value, '$[2]') "
		"FROM sent x, json_each(x.cells) e WHERE x.profile = ?1";
	sqlite3_stmt *s = pobox_store_prep(st, rows);
	int rc = 0, r;
	c->n = 0;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, profile);
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = pobox_store_each_cell(st, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
		                           (const char *)sqlite3_column_text(s, 2),
		                           (size_t)sqlite3_column_bytes(s, 2), sqlite3_column_int64(s, 3),
		                           on_live, c);
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "requeueing");
	if (rc || !(s = pobox_store_prep(st, sent)))
		return rc ? rc : POBOX_EIO;
	sqlite3_bind_int64(s, 1, profile);
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = note_newer(c, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "requeueing");
	return rc;
}

static int64_t newest_seq(const struct newer_ctx *c, int64_t attr)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].attr == attr)
			return c->v[i].seq;
	return 0;
}

/* One selected dead update. */
struct sel_row {
	int64_t seq, profile, attr, source, done_seq, sent_seq;
	int urgent, id_type;
	char *value, *pid;
};

/* A dead update that is no longer dead: superseded by by_seq. */
static int undead(struct pobox_store *st, int64_t seq, int64_t by_seq)
{
	static const char sql[] =
		"UPDATE fates SET state = 'superseded', superseded_by = ?2 WHERE seq = ?1 AND state = 'dead'";
	int64_t a[2] = {seq, by_seq};
	int rc = pobox_store_run(st, sql, "requeueing", 2, a, 0, NULL);
	if (rc == 0 && sqlite3_changes(st->db)) {
		st->d.dead--;
		st->d.superseded++;
		st->d.dirty = 1;
	}
	return rc;
}

/* Requeues the selected dead updates of one profile (rows sorted by
 * attribute, then seq). */
static int requeue_profile(struct pobox_store *st, struct sel_row *r, size_t n, int64_t now_ms,
                           int64_t *requeued)
{
	struct newer_ctx nc = {0};
	struct pobox_cells_buf b = {0};
	int64_t *attrs = pobox_malloc(n * sizeof *attrs), shape, first = 0;
	size_t width = 0;
	int rc = attrs ? newest_of(st, r[0].profile, &nc) : POBOX_ENOMEM;
	/* the newest selected value of each attribute, when nothing newer
	 * replaced it, goes in again (one write for the profile) */
	pobox_cells_open(&b);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (i + 1 < n && r[i + 1].attr == r[i].attr)
			continue;
		if (newest_seq(&nc, r[i].attr) > r[i].seq)
			continue;
		attrs[width++] = r[i].attr;
		pobox_cells_str(&b, r[i].value, strlen(r[i].value));
	}
	pobox_cells_close(&b);
	if (rc == 0 && width) {
		struct pobox_profile_ref ref = {r[0].profile, r[0].done_seq, r[0].sent_seq};
		if (b.nomem)
			rc = POBOX_ENOMEM;
		else if ((rc = pobox_store_shape_id(st, attrs, width, &shape)) == 0)
			rc = pobox_store_write(st, (enum pobox_id_type)r[0].id_type, r[0].pid,
			                       strlen(r[0].pid), &ref, shape, width, b.s, b.len,
			                       (int64_t)width, now_ms, r[0].source, r[0].urgent, &first);
		*requeued += (int64_t)width;
	}
	/* every selected update points at what replaces it now: a newer live
	 * or delivered value, else the one just enqueued again */
	for (size_t i = 0; i < n && rc == 0; i++) {
		int64_t by = newest_seq(&nc, r[i].attr);
		if (by <= r[i].seq) {
			size_t k = 0;
			while (k < width && attrs[k] != r[i].attr)
				k++;
			by = first + (int64_t)k;
		}
		rc = undead(st, r[i].seq, by);
	}
	pobox_free(attrs);
	pobox_free(nc.v);
	pobox_cells_buf_free(&b);
	return rc == POBOX_ENOMEM ? pobox_errf(st->err, st->errlen, rc, "out of memory") : rc;
}

int pobox_store_dead_requeue(struct pobox_store *st, int64_t now_ms, int64_t *requeued)
{
	static const char reset[] =
		"UPDATE profiles SET attempts = 0, next_attempt_at_ms = 0, last_error = NULL "
		"WHERE id IN (SELECT w.profile FROM temp.dead_sel d JOIN writes w"
		" ON w.seq = (SELECT max(x.seq) FROM writes x WHERE x.seq <= d.seq))";
	sqlite3_stmt *s = pobox_store_prep(st, SQL_SELECTED);
	struct sel_row *rows = NULL;
	size_t n = 0, cap = 0;
	int rc = pobox_store_need_tx(st, "requeueing"), r;
	*requeued = 0;
	if (rc)
		return rc;
	if (!s)
		return POBOX_EIO;
	if ((rc = pobox_store_run(st, reset, "requeueing", 0, NULL, 0, NULL)) != 0)
		return rc;
	/* one profile at a time: rows come sorted by profile */
	for (;;) {
		r = sqlite3_step(s);
		int64_t profile = r == SQLITE_ROW ? sqlite3_column_int64(s, 1) : 0;
		if (n && (r != SQLITE_ROW || profile != rows[0].profile)) {
			rc = requeue_profile(st, rows, n, now_ms, requeued);
			for (size_t i = 0; i < n; i++) {
				pobox_free(rows[i].value);
				pobox_free(rows[i].pid);
			}
			n = 0;
			if (rc)
				break;
		}
		if (r != SQLITE_ROW)
			break;
		if (n == cap) {
			size_t c = cap ? cap * 2 : 16;
			struct sel_row *nr = pobox_realloc(rows, c * sizeof *nr);
			if (!nr) {
				rc = pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
				break;
			}
			rows = nr;
			cap = c;
		}
		struct sel_row *x = &rows[n++];
		x->seq = sqlite3_column_int64(s, 0);
		x->profile = profile;
		x->attr = sqlite3_column_int64(s, 2);
		x->value = pobox_strdup((const char *)sqlite3_column_text(s, 3));
		x->source = sqlite3_column_int64(s, 4);
		x->urgent = sqlite3_column_int(s, 5);
		x->id_type = sqlite3_column_int(s, 6);
		x->pid = pobox_strdup((const char *)sqlite3_column_text(s, 7));
		x->done_seq = sqlite3_column_int64(s, 8);
		x->sent_seq = sqlite3_column_int64(s, 9);
		if (!x->value || !x->pid) {
			rc = pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
			break;
		}
	}
	sqlite3_reset(s);
	for (size_t i = 0; i < n; i++) {
		pobox_free(rows[i].value);
		pobox_free(rows[i].pid);
	}
	pobox_free(rows);
	if (rc == 0 && r != SQLITE_DONE && r != SQLITE_ROW)
		rc = pobox_store_fail(st, r, "requeueing");
	return rc;
}

int pobox_store_dead_purge(struct pobox_store *st, int64_t *n)
{
	/* A purged update leaves its write: its cell becomes null; a write with
	 * nothing left goes. */
	static const char pick[] = "SELECT seq FROM temp.dead_sel ORDER BY seq";
	static const char blank[] =
		"UPDATE writes SET cells = json_set(cells, '$[' || (?1 - seq) || ']', json('null')),"
		" n = n - 1, fates = fates - 1 "
		"WHERE seq = (SELECT max(seq) FROM writes WHERE seq <= ?1) RETURNING seq, n";
	static const char drop_fate[] = "DELETE FROM fates WHERE seq = ?1";
	static const char drop_write[] = "DELETE FROM writes WHERE seq = ?1 AND n = 0";
	int rc = pobox_store_need_tx(st, "purging dead updates"), r;
	*n = 0;
	if (rc)
		return rc;
	sqlite3_stmt *s = pobox_store_prep(st, pick);
	if (!s)
		return POBOX_EIO;
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(s, 0), w = 0, left = 1;
		sqlite3_stmt *b = pobox_store_prep(st, blank);
		if (!b) {
			rc = POBOX_EIO;
			break;
		}
		sqlite3_bind_int64(b, 1, seq);
		int rb = sqlite3_step(b);
		if (rb == SQLITE_ROW) {
			w = sqlite3_column_int64(b, 0);
			left = sqlite3_column_int64(b, 1);
			rb = sqlite3_step(b);
		}
		sqlite3_reset(b);
		if (rb != SQLITE_DONE) {
			rc = pobox_store_fail(st, rb, "purging dead updates");
			break;
		}
		if ((rc = pobox_store_run(st, drop_fate, "purging dead updates", 1, &seq, 0, NULL)) == 0 &&
		    w && left == 0)
			rc = pobox_store_run(st, drop_write, "purging dead updates", 1, &w, 0, NULL);
		(*n)++;
	}
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "purging dead updates");
	if (rc == 0) {
		st->d.dead -= *n;
		st->d.dirty = 1;
	}
	return rc;
}

/* ---- doctor -------------------------------------------------------------- */

/* Every update's derived state, counted from the tables (what the tallies
 * must equal). */
#define RECOUNT_SQL                                                                                \
	"WITH ib AS MATERIALIZED (SELECT * FROM v_in_batch), "                                          \
	"s AS (SELECT CASE WHEN c.fates > 0 AND f.state IS NOT NULL THEN f.state"                        \
	"  WHEN c.seq <= p.done_seq THEN 'delivered'"                                                     \
	"  WHEN ib.batch IS NOT NULL AND c.seq <= ib.batch_seq THEN 'batched' ELSE 'pending' END AS st"  \
	"  FROM v_cells c JOIN profiles p ON p.id = c.profile LEFT JOIN ib ON ib.profile = c.profile"      \
	"  LEFT JOIN fates f ON c.fates > 0 AND f.seq = c.seq) "                                         \
	"SELECT (SELECT count(*) FROM s WHERE st = 'pending') + (SELECT count(*) FROM staged),"          \
	" (SELECT count(*) FROM s WHERE st = 'batched'), (SELECT count(*) FROM s WHERE st = 'delivered'),"\
	" (SELECT count(*) FROM s WHERE st = 'superseded'), (SELECT count(*) FROM s WHERE st = 'dead'),"  \
	" (SELECT count(*) FROM profiles), (SELECT count(*) FROM profile_keys),"                         \
	" (SELECT count(*) FROM profile_keys_new)"

/* One invariant: how to count what breaks it, and (when fixing it is safe,
 * i.e. loses nothing and at worst sends something again) how to fix it. */
struct check {
	const char *name;
	const char *count_sql;
	const char *fix_sql;     /* NULL: not safe to fix automatically */
	const char *advice;
	int unreadable;          /* what it finds cannot be read (or counted) */
};

static const struct check checks[] = {
	{"unfinished batches listing members that are not profiles",
	 "SELECT count(*) FROM batches b JOIN batch_members x ON x.batch = b.id"
	 " WHERE b.state IN ('ready', 'sending', 'submitted') AND"
	 " (NOT json_valid(x.members) OR EXISTS (SELECT 1 FROM json_each(x.members) m"
	 " WHERE m.type <> 'integer' OR NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = m.value)))",
	 "UPDATE batch_members SET members = (SELECT json_group_array(v) FROM (SELECT m.value AS v FROM"
	 " json_each(batch_members.members) m WHERE m.type = 'integer' AND EXISTS (SELECT 1 FROM profiles p"
	 " WHERE p.id = m.value) ORDER BY 1)) WHERE batch IN (SELECT id FROM batches WHERE state IN"
	 " ('ready', 'sending', 'submitted')) AND json_valid(members) AND EXISTS (SELECT 1 FROM"
	 " json_each(batch_members.members) m"
	 " WHERE m.type <> 'integer' OR NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = m.value))",
	 "--repair drops them from the list (nothing can be delivered for them)", 0},
	{"profiles that are members of more than one unfinished batch",
	 "SELECT count(*) FROM (SELECT profile FROM v_in_batch GROUP BY profile HAVING count(*) > 1)",
	 NULL,
	 "two batches in flight may deliver its values out of order; restore the outbox from a "
	 "backup", 1},
	{"unfinished batches that hold no profile",
	 "SELECT count(*) FROM batches b WHERE b.state IN ('ready', 'sending', 'submitted') AND NOT EXISTS"
	 " (SELECT 1 FROM v_in_batch ib WHERE ib.batch = b.id)",
	 "UPDATE batches SET state = 'dead', held = 0, finished_at_ms = ?1, last_error = 'held no profiles;"
	 " closed by pobox doctor' WHERE state IN ('ready', 'sending', 'submitted') AND NOT EXISTS"
	 " (SELECT 1 FROM v_in_batch ib WHERE ib.batch = batches.id)",
	 "--repair closes them (no update depends on them)", 0},
	{"profiles whose delivery watermark is past the newest update",
	 "SELECT count(*) FROM profiles WHERE done_seq >= (SELECT next_seq FROM tallies)"
	 " OR sent_seq > done_seq",
	 NULL,
	 "the outbox was edited by hand or restored in part; restore it from a backup", 0},
	{"writes naming a profile or shape that does not exist",
	 "SELECT count(*) FROM writes w WHERE NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = w.profile)"
	 " OR NOT EXISTS (SELECT 1 FROM shapes s WHERE s.id = w.shape)",
	 NULL,
	 "they cannot be delivered; after a backup, delete them with sqlite3: DELETE FROM writes WHERE "
	 "profile NOT IN (SELECT id FROM profiles) OR shape NOT IN (SELECT id FROM shapes)", 1},
	{"shapes naming an attribute that does not exist",
	 "SELECT count(*) FROM shapes s WHERE NOT json_valid(s.attrs) OR EXISTS (SELECT 1 FROM json_each(s.attrs) e"
	 " WHERE NOT EXISTS (SELECT 1 FROM attributes a WHERE a.id = e.value))",
	 NULL,
	 "writes of these shapes cannot be read; restore the outbox from a backup", 1},
	{"writes whose cells are not a JSON array of the shape's length",
	 "SELECT count(*) FROM writes w JOIN shapes s ON s.id = w.shape WHERE NOT json_valid(w.cells)"
	 " OR json_type(w.cells) <> 'array' OR json_array_length(w.cells) <> json_array_length(s.attrs)"
	 " OR w.n <> (SELECT count(*) FROM json_each(w.cells) e WHERE e.type <> 'null')",
	 NULL,
	 "the outbox was edited by hand; restore it from a backup", 1},
	{"update fates that belong to no write",
	 "SELECT count(*) FROM fates f WHERE NOT EXISTS (SELECT 1 FROM writes w WHERE w.seq ="
	 " (SELECT max(x.seq) FROM writes x WHERE x.seq <= f.seq) AND f.seq < w.seq + json_array_length(w.cells))",
	 "DELETE FROM fates WHERE NOT EXISTS (SELECT 1 FROM writes w WHERE w.seq ="
	 " (SELECT max(x.seq) FROM writes x WHERE x.seq <= fates.seq)"
	 " AND fates.seq < w.seq + json_array_length(w.cells))",
	 "--repair deletes them (they describe nothing)", 0},
	{"writes whose count of fates is wrong",
	 "SELECT count(*) FROM writes w WHERE w.fates <> (SELECT count(*) FROM fates f WHERE f.seq >= w.seq"
	 " AND f.seq < w.seq + json_array_length(w.cells))",
	 "UPDATE writes SET fates = (SELECT count(*) FROM fates f WHERE f.seq >= writes.seq"
	 " AND f.seq < writes.seq + json_array_length(writes.cells))"
	 " WHERE fates <> (SELECT count(*) FROM fates f WHERE f.seq >= writes.seq"
	 " AND f.seq < writes.seq + json_array_length(writes.cells))",
	 "--repair recounts them", 0},
	{"pending updates no cut would see",
	 "WITH ib AS MATERIALIZED (SELECT * FROM v_in_batch) "
	 "SELECT count(*) FROM profiles p LEFT JOIN ib ON ib.profile = p.id WHERE NOT EXISTS"
	 " (SELECT 1 FROM held h WHERE h.profile = p.id) AND EXISTS (SELECT 1 FROM writes w"
	 " WHERE w.profile = p.id AND w.n > w.fates AND w.seq > max(p.done_seq, coalesce(ib.batch_seq, 0))"
	 " AND w.seq <= (SELECT cut_seq FROM tallies))",
	 "WITH ib AS MATERIALIZED (SELECT * FROM v_in_batch) "
	 "INSERT INTO held (profile, since_ms) SELECT p.id, (SELECT min(w.enqueued_at_ms) FROM writes w"
	 " WHERE w.profile = p.id AND w.n > w.fates AND w.seq > max(p.done_seq, coalesce(ib.batch_seq, 0)))"
	 " FROM profiles p LEFT JOIN ib ON ib.profile = p.id WHERE NOT EXISTS"
	 " (SELECT 1 FROM held h WHERE h.profile = p.id) AND EXISTS (SELECT 1 FROM writes w"
	 " WHERE w.profile = p.id AND w.n > w.fates AND w.seq > max(p.done_seq, coalesce(ib.batch_seq, 0))"
	 " AND w.seq <= (SELECT cut_seq FROM tallies))",
	 "--repair puts them back in the pending set (they are cut next)", 0},
	{"profiles without exactly one right key",
	 /* profiles has no index on its ids (the keys are the index): the
	  * duplicates are found by one sort, not a scan per profile */
	 "WITH dup AS MATERIALIZED (SELECT id_type, profile_id FROM profiles GROUP BY 1, 2"
	 " HAVING count(*) > 1) "
	 "SELECT count(*) FROM profiles p WHERE (SELECT count(*) FROM (SELECT profile FROM profile_keys"
	 " WHERE khash = pobox_khash(p.id_type, p.profile_id) AND profile = p.id UNION ALL SELECT profile"
	 " FROM profile_keys_new WHERE khash = pobox_khash(p.id_type, p.profile_id) AND profile = p.id)) <> 1"
	 " OR EXISTS (SELECT 1 FROM dup d WHERE d.id_type = p.id_type AND d.profile_id = p.profile_id)",
	 NULL,
	 "run `pobox doctor --repair` to rebuild the keys; if profiles are duplicated, restore a backup", 0},
	{"batches whose count of held updates is wrong",
	 "WITH ib AS MATERIALIZED (SELECT * FROM v_in_batch) "
	 "SELECT count(*) FROM batches b WHERE b.state IN ('ready', 'sending', 'submitted') AND b.held <>"
	 " (SELECT count(*) FROM ib JOIN profiles p ON p.id = ib.profile JOIN v_cells c ON c.profile = p.id"
	 "  AND c.seq > p.done_seq AND c.seq <= ib.batch_seq WHERE ib.batch = b.id"
	 "  AND (c.fates = 0 OR NOT EXISTS (SELECT 1 FROM fates f WHERE f.seq = c.seq)))",
	 "WITH ib AS MATERIALIZED (SELECT * FROM v_in_batch) "
	 "UPDATE batches SET held = (SELECT count(*) FROM ib JOIN profiles p ON p.id = ib.profile"
	 " JOIN v_cells c ON c.profile = p.id AND c.seq > p.done_seq AND c.seq <= ib.batch_seq"
	 " WHERE ib.batch = batches.id AND (c.fates = 0 OR NOT EXISTS (SELECT 1 FROM fates f"
	 " WHERE f.seq = c.seq))) WHERE state IN ('ready', 'sending', 'submitted')",
	 "--repair recounts them", 0},
	{"quota ledger minutes with impossible counts",
	 "SELECT count(*) FROM quota_minutes WHERE used < 0 OR urgent < 0 OR urgent > used",
	 "UPDATE quota_minutes SET used = max(used, 0), urgent = min(max(urgent, 0), max(used, 0))"
	 " WHERE used < 0 OR urgent < 0 OR urgent > used",
	 "--repair clamps them (counting more used, never less)", 0},
	{"quota reservations with impossible counts",
	 "SELECT count(*) FROM quota_reservations WHERE urgent > units",
	 "UPDATE quota_reservations SET urgent = units WHERE urgent > units",
	 "--repair clamps them", 0},
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

static int exec_fix(struct pobox_store *st, const char *sql, int64_t now_ms, const char *what)
{
	sqlite3_stmt *f = NULL;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &f, NULL);
	if (rc == SQLITE_OK) {
		if (sqlite3_bind_parameter_count(f) >= 1)
			sqlite3_bind_int64(f, 1, now_ms);
		rc = sqlite3_step(f);
	}
	sqlite3_finalize(f);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, what);
}

/* The keys, made anew from the profiles (safe: they are derived). */
static int rebuild_keys(struct pobox_store *st)
{
	static const char sql[] =
		"DELETE FROM profile_keys; DELETE FROM profile_keys_new; DELETE FROM key_filter;"
		"INSERT INTO profile_keys (khash, profile) SELECT pobox_khash(id_type, profile_id), id"
		" FROM profiles ORDER BY 1, 2;"
		"UPDATE tallies SET keys_main = (SELECT count(*) FROM profile_keys), keys_new = 0,"
		" key_filter_gen = key_filter_gen + 1";
	pobox_store_keys_free(st);
	return pobox_store_exec_sql(st, sql, "rebuilding the profile keys");
}

/* The recount (RECOUNT_SQL) into want[8]. */
static int recount(struct pobox_store *st, int64_t *want)
{
	sqlite3_stmt *s = NULL;
	int r = sqlite3_prepare_v2(st->db, RECOUNT_SQL, -1, &s, NULL);
	if (r == SQLITE_OK && (r = sqlite3_step(s)) == SQLITE_ROW)
		for (int i = 0; i < 8; i++)
			want[i] = sqlite3_column_int64(s, i);
	sqlite3_finalize(s);
	return r == SQLITE_ROW ? 0 : pobox_store_fail(st, r, "recounting the outbox");
}

static int set_tallies(struct pobox_store *st, const int64_t *want)
{
	char sql[700];
	snprintf(sql, sizeof sql,
	         "UPDATE tallies SET pending = %lld, batched = %lld, delivered = %lld, superseded = %lld,"
	         " dead = %lld, profiles = %lld, keys_main = %lld, keys_new = %lld,"
	         " oldest_pending_ms = (SELECT min(m) FROM (SELECT min(since_ms) AS m FROM held"
	         " UNION ALL SELECT min(enqueued_at_ms) FROM staged UNION ALL SELECT (SELECT enqueued_at_ms"
	         " FROM writes WHERE seq > (SELECT cut_seq FROM tallies) ORDER BY seq LIMIT 1)))",
	         (long long)want[0], (long long)want[1], (long long)want[2], (long long)want[3],
	         (long long)want[4], (long long)want[5], (long long)want[6], (long long)want[7]);
	return pobox_store_exec_sql(st, sql, "repairing the tallies");
}

/* The tallies against a recount; --repair sets them from it. */
static int check_tallies(struct pobox_store *st, int repair,
                         int (*fn)(void *ctx, const char *name, int64_t problems, int fixed,
                                   const char *advice),
                         void *ctx)
{
	static const char now[] =
		"SELECT pending, batched, delivered, superseded, dead, profiles, keys_main, keys_new FROM tallies";
	int64_t have[8] = {0}, want[8] = {0};
	sqlite3_stmt *s = NULL;
	int r = sqlite3_prepare_v2(st->db, now, -1, &s, NULL);
	if (r == SQLITE_OK && (r = sqlite3_step(s)) == SQLITE_ROW)
		for (int i = 0; i < 8; i++)
			have[i] = sqlite3_column_int64(s, i);
	sqlite3_finalize(s);
	if (r != SQLITE_ROW)
		return pobox_store_fail(st, r, "reading the tallies");
	int rc = recount(st, want);
	if (rc)
		return rc;
	int64_t wrong = 0;
	for (int i = 0; i < 8; i++)
		wrong += have[i] != want[i];
	int fixed = 0;
	if (wrong && repair) {
		if ((rc = set_tallies(st, want)) != 0)
			return rc;
		fixed = 1;
	}
	char advice[400];
	snprintf(advice, sizeof advice,
	         "counts kept: pending %lld, batched %lld, delivered %lld, superseded %lld, dead %lld; "
	         "recounted: %lld, %lld, %lld, %lld, %lld; --repair sets them from the recount",
	         (long long)have[0], (long long)have[1], (long long)have[2], (long long)have[3],
	         (long long)have[4], (long long)want[0], (long long)want[1], (long long)want[2],
	         (long long)want[3], (long long)want[4]);
	return fn(ctx, "counts kept by state against a recount", wrong ? 1 : 0, fixed,
	          wrong ? advice : "");
}

int pobox_store_doctor(struct pobox_store *st, int repair, int64_t now_ms,
                       int (*fn)(void *ctx, const char *name, int64_t problems, int fixed,
                                 const char *advice),
                       void *ctx, int *integrity_ok)
{
	sqlite3_stmt *s = NULL;
	int rc = pobox_store_append_flush(st);
	if (rc)
		return rc;
	rc = sqlite3_prepare_v2(st->db, "PRAGMA integrity_check(20)", -1, &s, NULL);
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
	/* On a damaged file every answer may be wrong: report, change nothing. */
	if (bad)
		repair = 0;
	/* Writes that cannot be read make any recount wrong: the counts are
	 * then only reported. */
	int64_t unreadable = 0;
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		int64_t n = 0;
		if (checks[i].unreadable && (rc = count_of(st, checks[i].count_sql, now_ms, &n)) != 0)
			return rc;
		unreadable += n;
	}
	/* the counts first, as they were: the repairs below move updates */
	if ((rc = check_tallies(st, repair && !unreadable, fn, ctx)) != 0)
		return rc;
	int repaired = 0;
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		const struct check *c = &checks[i];
		int64_t n = 0;
		int fixed = 0;
		if ((rc = count_of(st, c->count_sql, now_ms, &n)) != 0)
			return rc;
		int keys = strncmp(c->name, "profiles without exactly one right key", 38) == 0;
		if (n && repair && (c->fix_sql || keys)) {
			rc = keys ? rebuild_keys(st) : exec_fix(st, c->fix_sql, now_ms, c->name);
			if (rc)
				return rc;
			/* duplicated profiles stay duplicated: say so */
			int64_t left = 0;
			if (keys && (rc = count_of(st, c->count_sql, now_ms, &left)) != 0)
				return rc;
			fixed = !keys || left == 0;
			repaired = 1;
		}
		if ((rc = fn(ctx, c->name, n, fixed, n ? c->advice : "")) != 0)
			return rc;
	}
	if (repaired && !unreadable) { /* the counts follow what the repairs moved */
		int64_t want[8];
		if ((rc = recount(st, want)) != 0 || (rc = set_tallies(st, want)) != 0)
			return rc;
	}
	return 0;
}
