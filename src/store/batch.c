/*
 * store_batch.c - the store's SQL for delivery: scanning pending updates by
 * profile, fencing profiles into batches, batch rows and their lifecycle,
 * completion, dead letters, the per-minute call ledger, lane pauses and
 * housekeeping.  Part of the store module (see store.h for contracts, and
 * schema/0002_delivery.sql for the state model).
 *
 * Every function here runs inside the caller's transaction where the caller
 * holds one; the deliverer and scheduler decide where transactions begin
 * and end, so that each state change is exactly one transaction.
 */
#include "alloc.h"
#include "error.h"
#include "internal.h"

#include <stdio.h>
#include <string.h>

const char *const pobox_batch_state_names[POBOX_B_COUNT] = {
	"ready", "sending", "submitted", "done", "dead", "split", "replaced",
};

/* ---- scanning ----------------------------------------------------------- */

static const char SQL_SCAN_PENDING[] =
	"SELECT p.id, p.id_type, p.profile_id, p.done_seq, coalesce(p.last_v2_at_ms, -1),"
	"       u.seq, u.attr, u.value, u.urgent, u.enqueued_at_ms, p.route_bulk, p.done_at_ms IS NOT NULL "
	"FROM profiles p JOIN updates u ON u.state = 'live' AND u.profile = p.id AND u.seq > p.done_seq "
	"WHERE p.batch IS NULL AND p.next_attempt_at_ms <= ?1 "
	/* u.profile, not p.id: then the index already gives this order and
	 * SQLite does not sort millions of rows in a temporary B-tree */
	"ORDER BY u.profile, u.attr, u.seq";

static const char SQL_SCAN_BATCH[] =
	"SELECT p.id, p.id_type, p.profile_id, p.done_seq, coalesce(p.last_v2_at_ms, -1),"
	"       u.seq, u.attr, u.value, u.urgent, u.enqueued_at_ms, p.route_bulk, p.done_at_ms IS NOT NULL "
	/* CROSS JOIN keeps profiles outside: without statistics SQLite would
	 * otherwise walk every live update of the outbox for each batch */
	"FROM profiles p CROSS JOIN updates u ON u.state = 'live' AND u.profile = p.id "
	"     AND u.seq > p.done_seq AND u.seq <= p.batch_seq "
	"WHERE p.batch = ?1 "
	"ORDER BY p.id, u.attr, u.seq";

/* One profile's rows, copied out of SQLite (its text is only valid until
 * the next step).  Reused from profile to profile. */
struct group {
	size_t n, cap;
	int64_t *seq, *attr, *enq;
	int *urgent;
	size_t *len;
	size_t *off;
	const char **val;
	char *text;
	size_t text_len, text_cap;
	char *pid;
	size_t pid_len, pid_cap;
};

static void group_free(struct group *g)
{
	pobox_free(g->seq);
	pobox_free(g->attr);
	pobox_free(g->enq);
	pobox_free(g->urgent);
	pobox_free(g->len);
	pobox_free(g->off);
	pobox_free(g->val);
	pobox_free(g->text);
	pobox_free(g->pid);
}

static int grow(void **p, size_t elem, size_t cap)
{
	void *n = pobox_realloc(*p, elem * cap);
	if (!n)
		return POBOX_ENOMEM;
	*p = n;
	return 0;
}

static int group_add(struct group *g, sqlite3_stmt *s)
{
	if (g->n == g->cap) {
		size_t c = g->cap ? g->cap * 2 : 16;
		if (grow((void **)&g->seq, sizeof *g->seq, c) || grow((void **)&g->attr, sizeof *g->attr, c) ||
		    grow((void **)&g->enq, sizeof *g->enq, c) || grow((void **)&g->urgent, sizeof *g->urgent, c) ||
		    grow((void **)&g->len, sizeof *g->len, c) || grow((void **)&g->off, sizeof *g->off, c) ||
		    grow((void **)&g->val, sizeof *g->val, c))
			return POBOX_ENOMEM;
		g->cap = c;
	}
	const char *v = (const char *)sqlite3_column_text(s, 7);
	size_t vl = (size_t)sqlite3_column_bytes(s, 7);
	if (g->text_len + vl + 1 > g->text_cap) {
		size_t c = g->text_cap ? g->text_cap : 4096;
		while (c < g->text_len + vl + 1)
			c *= 2;
		if (grow((void **)&g->text, 1, c))
			return POBOX_ENOMEM;
		g->text_cap = c;
	}
	memcpy(g->text + g->text_len, v ? v : "", vl);
	g->text[g->text_len + vl] = '\0';
	g->off[g->n] = g->text_len;
	g->text_len += vl + 1;
	g->seq[g->n] = sqlite3_column_int64(s, 5);
	g->attr[g->n] = sqlite3_column_int64(s, 6);
	g->len[g->n] = vl;
	g->urgent[g->n] = sqlite3_column_int(s, 8);
	g->enq[g->n] = sqlite3_column_int64(s, 9);
	g->n++;
	return 0;
}

static int scan(struct pobox_store *st, const char *sql, int64_t arg, pobox_prow_fn fn, void *ctx)
{
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	struct group g = {0};
	struct pobox_prow p = {0};
	int rc = 0, r;
	int64_t cur = 0;

	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, arg);
	for (;;) {
		r = sqlite3_step(s);
		int64_t id = r == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
		if (g.n && (r != SQLITE_ROW || id != cur)) {
			/* the previous profile is complete: hand it over */
			for (size_t i = 0; i < g.n; i++)
				g.val[i] = g.text + g.off[i];
			p.n = g.n;
			p.seq = g.seq;
			p.attr = g.attr;
			p.value = g.val;
			p.value_len = g.len;
			p.urgent = g.urgent;
			p.enqueued_at_ms = g.enq;
			p.profile_id = g.pid;
			p.profile_id_len = g.pid_len;
			if ((rc = fn(ctx, &p)) != 0)
				goto out;
			g.n = 0;
			g.text_len = 0;
		}
		if (r == SQLITE_DONE)
			break;
		if (r != SQLITE_ROW) {
			rc = pobox_store_fail(st, r, "scanning updates");
			goto out;
		}
		if (g.n == 0) {
			cur = id;
			p.profile = id;
			const char *t = (const char *)sqlite3_column_text(s, 1);
			p.id_type = t && strcmp(t, "pcId") == 0 ? POBOX_ID_PCID : POBOX_ID_THIRDPARTY;
			const char *pid = (const char *)sqlite3_column_text(s, 2);
			size_t pl = (size_t)sqlite3_column_bytes(s, 2);
			if (pl + 1 > g.pid_cap) {
				if (grow((void **)&g.pid, 1, pl + 1)) {
					rc = POBOX_ENOMEM;
					goto out;
				}
				g.pid_cap = pl + 1;
			}
			memcpy(g.pid, pid ? pid : "", pl);
			g.pid[pl] = '\0';
			g.pid_len = pl;
			p.done_seq = sqlite3_column_int64(s, 3);
			p.last_v2_at_ms = sqlite3_column_int64(s, 4);
			p.route_bulk = sqlite3_column_int(s, 10);
			p.delivered_once = sqlite3_column_int(s, 11);
		}
		if ((rc = group_add(&g, s)) != 0)
			goto out;
	}
out:
	sqlite3_reset(s);
	group_free(&g);
	return rc;
}

int pobox_store_scan_pending(struct pobox_store *st, int64_t now_ms, pobox_prow_fn fn, void *ctx)
{
	return scan(st, SQL_SCAN_PENDING, now_ms, fn, ctx);
}

int pobox_store_scan_batch(struct pobox_store *st, int64_t batch, pobox_prow_fn fn, void *ctx)
{
	return scan(st, SQL_SCAN_BATCH, batch, fn, ctx);
}

/* ---- small statements ------------------------------------------------- */

/* Runs a prepared statement that returns no rows, with up to 4 int64 binds
 * and optional text binds at given positions. */
static int run(struct pobox_store *st, const char *sql, const char *what, int nint,
               const int64_t *ints, int ntext, const char *const *texts)
{
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	for (int i = 0; i < nint; i++)
		sqlite3_bind_int64(s, i + 1, ints[i]);
	for (int i = 0; i < ntext; i++) {
		if (texts[i])
			sqlite3_bind_text(s, nint + i + 1, texts[i], -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, nint + i + 1);
	}
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : pobox_store_fail(st, rc, what);
}

/* First column of the first row as int64 (*out untouched when no row). */
static int one_int(struct pobox_store *st, const char *sql, const char *what, int nint,
                   const int64_t *ints, int64_t *out, int *found)
{
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	for (int i = 0; i < nint; i++)
		sqlite3_bind_int64(s, i + 1, ints[i]);
	int rc = sqlite3_step(s);
	if (found)
		*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : pobox_store_fail(st, rc, what);
}

int pobox_store_each_attr(struct pobox_store *st,
                          int (*fn)(void *ctx, int64_t id, const char *name), void *ctx)
{
	static const char sql[] = "SELECT id, name FROM attributes ORDER BY id";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	int rc = 0, r;
	if (!s)
		return POBOX_EIO;
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		if ((rc = fn(ctx, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1))) != 0)
			break;
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "reading attributes");
	return rc;
}

int pobox_store_last_delivered(struct pobox_store *st, int64_t profile, int64_t done_seq,
                               int (*fn)(void *ctx, int64_t attr, const char *v, size_t len),
                               void *ctx)
{
	/* newest delivered live row per attribute, then pruned values for the
	 * attributes without one */
	static const char sql[] =
		"SELECT attr, value FROM ("
		"  SELECT attr, value, row_number() OVER (PARTITION BY attr ORDER BY seq DESC) AS rn"
		"  FROM updates WHERE state = 'live' AND profile = ?1 AND seq <= ?2) WHERE rn = 1 "
		"UNION ALL "
		"SELECT ps.attr, ps.value FROM profile_state ps WHERE ps.profile = ?1 AND NOT EXISTS "
		"  (SELECT 1 FROM updates u WHERE u.state = 'live' AND u.profile = ?1 AND u.attr = ps.attr"
		"   AND u.seq <= ?2)";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	int rc = 0, r;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, profile);
	sqlite3_bind_int64(s, 2, done_seq);
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		if ((rc = fn(ctx, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
		             (size_t)sqlite3_column_bytes(s, 1))) != 0)
			break;
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "reading delivered values");
	return rc;
}

int pobox_store_profile_find(struct pobox_store *st, enum pobox_id_type t, const char *id,
                             size_t len, int64_t *profile, int64_t *done_seq, int *found)
{
	static const char sql[] =
		"SELECT id, done_seq FROM profiles WHERE id_type = ?1 AND profile_id = ?2";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, pobox_id_type_name(t), -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, id, (int)len, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW) {
		*profile = sqlite3_column_int64(s, 0);
		*done_seq = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "finding a profile");
}

int pobox_store_supersede(struct pobox_store *st, int64_t seq, int64_t by_seq)
{
	static const char sql[] =
		"UPDATE updates SET state = 'superseded', superseded_by = ?2 WHERE seq = ?1";
	int64_t a[2] = {seq, by_seq};
	return run(st, sql, "superseding an update", 2, a, 0, NULL);
}

int pobox_store_kill_rows(struct pobox_store *st, int64_t profile, int64_t done_seq, int64_t upto,
                          const char *reason, int64_t attempts)
{
	static const char sql[] =
		"UPDATE updates SET state = 'dead', attempts = ?4, last_error = ?5,"
		" dead_at_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) "
		"WHERE state = 'live' AND profile = ?1 AND seq > ?2 AND seq <= ?3";
	int64_t a[4] = {profile, done_seq, upto, attempts};
	const char *t[1] = {reason};
	return run(st, sql, "dead-lettering updates", 4, a, 1, t);
}

int pobox_store_fence(struct pobox_store *st, int64_t profile, int64_t batch, int64_t batch_seq)
{
	static const char sql[] = "UPDATE profiles SET batch = ?2, batch_seq = ?3 WHERE id = ?1";
	int64_t a[3] = {profile, batch, batch_seq};
	return run(st, sql, "fencing a profile", 3, a, 0, NULL);
}

int pobox_store_fence_range(struct pobox_store *st, int64_t lo, int64_t hi, int64_t batch,
                            int64_t batch_seq, int64_t now_ms)
{
	/* the same conditions as SQL_SCAN_PENDING, so exactly the profiles the
	 * scan yielded in this range (and did not route elsewhere) */
	static const char sql[] =
		"UPDATE profiles SET batch = ?3, batch_seq = ?4 WHERE id BETWEEN ?1 AND ?2"
		" AND batch IS NULL AND next_attempt_at_ms <= ?5 AND EXISTS (SELECT 1 FROM updates u"
		" WHERE u.state = 'live' AND u.profile = profiles.id AND u.seq > profiles.done_seq)";
	int64_t a[5] = {lo, hi, batch, batch_seq, now_ms};
	return run(st, sql, "fencing profiles", 5, a, 0, NULL);
}

/* ---- batch rows --------------------------------------------------------- */

void pobox_batch_free(struct pobox_batch *b)
{
	if (!b)
		return;
	pobox_free(b->reason);
	pobox_free(b->payload);
	pobox_free(b->status_url);
	pobox_free(b->remote_status);
	pobox_free(b->last_error);
	memset(b, 0, sizeof *b);
}

int pobox_store_batch_new(struct pobox_store *st, int api, enum pobox_id_type t,
                          const char *reason, int64_t parent, int64_t resubmits, int64_t now_ms,
                          int64_t *id)
{
	static const char sql[] =
		"INSERT INTO batches (api, id_type, state, reason, parent, resubmits, profiles, updates,"
		"                     bytes, payload, payload_crc32, created_at_ms, next_at_ms) "
		"VALUES (?5, ?6, 'ready', ?7, nullif(?1, 0), ?2, 0, 0, 0, x'', 0, ?3, ?4)";
	int64_t a[4] = {parent, resubmits, now_ms, now_ms};
	const char *txt[3] = {api == 1 ? "v1" : "v2", pobox_id_type_name(t), reason};
	int rc = run(st, sql, "creating a batch", 4, a, 3, txt);
	if (rc == 0)
		*id = sqlite3_last_insert_rowid(st->db);
	return rc;
}

int pobox_store_batch_payload(struct pobox_store *st, int64_t id, int64_t profiles,
                              int64_t updates, int64_t carried, int64_t bytes,
                              const void *part1, size_t len1, const void *part2, size_t len2,
                              uint32_t crc)
{
	/* A zeroblob of the right size, then the parts written into it in
	 * place: SQLite never builds the whole (tens of MB) record in memory and
	 * the caller need not join the parts first. */
	static const char sql[] =
		"UPDATE batches SET profiles = ?2, updates = ?3, carried = ?4, bytes = ?5,"
		" payload_crc32 = ?6, payload = zeroblob(?7) WHERE id = ?1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	sqlite3_blob *b = NULL;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, profiles);
	sqlite3_bind_int64(s, 3, updates);
	sqlite3_bind_int64(s, 4, carried);
	sqlite3_bind_int64(s, 5, bytes);
	sqlite3_bind_int64(s, 6, (int64_t)crc);
	sqlite3_bind_int64(s, 7, (int64_t)(len1 + len2));
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return pobox_store_fail(st, rc, "storing a batch payload");
	rc = sqlite3_blob_open(st->db, "main", "batches", "payload", id, 1, &b);
	if (rc == SQLITE_OK && len1)
		rc = sqlite3_blob_write(b, part1, (int)len1, 0);
	if (rc == SQLITE_OK && len2)
		rc = sqlite3_blob_write(b, part2, (int)len2, (int)len1);
	int rc2 = sqlite3_blob_close(b);
	if (rc == SQLITE_OK)
		rc = rc2;
	return rc == SQLITE_OK ? 0 : pobox_store_fail(st, rc, "writing a batch payload");
}

int pobox_store_batch_delete_empty(struct pobox_store *st, int64_t id)
{
	static const char sql[] =
		"DELETE FROM batches WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM profiles WHERE batch = ?1)";
	int64_t a[1] = {id};
	return run(st, sql, "dropping an empty batch", 1, a, 0, NULL);
}

int pobox_store_batch_copy_payload(struct pobox_store *st, int64_t to, int64_t from)
{
	static const char sql[] =
		"UPDATE batches SET (profiles, updates, carried, bytes, payload, payload_crc32) = "
		"(SELECT profiles, updates, carried, bytes, payload, payload_crc32 FROM batches WHERE id = ?2) "
		"WHERE id = ?1";
	int64_t a[2] = {to, from};
	return run(st, sql, "copying a batch payload", 2, a, 0, NULL);
}

static char *dup_col(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);
	return t ? pobox_strdup(t) : NULL;
}

static int64_t int_or(sqlite3_stmt *s, int i, int64_t dflt)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? dflt : sqlite3_column_int64(s, i);
}

int pobox_store_batch_get(struct pobox_store *st, int64_t id, int with_payload,
                          struct pobox_batch *out)
{
	static const char sql[] =
		"SELECT id, api, id_type, state, reason, parent, resubmits, profiles, updates, carried,"
		" bytes, CASE WHEN ?2 THEN payload END, payload_crc32, status_url, attempts, polls,"
		" next_at_ms, remote_status, last_http_status, last_error, created_at_ms, submitted_at_ms,"
		" finished_at_ms, batch_size, successful_updates, profiles_not_found, failed_updates "
		"FROM batches WHERE id = ?1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	struct pobox_batch b;
	int rc;
	if (!s)
		return POBOX_EIO;
	memset(&b, 0, sizeof b);
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int(s, 2, with_payload);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return pobox_errf(st->err, st->errlen, POBOX_ENOTFOUND, "no batch %lld in %s",
		                  (long long)id, st->path);
	}
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return pobox_store_fail(st, rc, "reading a batch");
	}
	b.id = sqlite3_column_int64(s, 0);
	b.api = strcmp((const char *)sqlite3_column_text(s, 1), "v1") == 0 ? 1 : 2;
	b.id_type = strcmp((const char *)sqlite3_column_text(s, 2), "pcId") == 0 ? POBOX_ID_PCID
	                                                                         : POBOX_ID_THIRDPARTY;
	const char *state = (const char *)sqlite3_column_text(s, 3);
	for (int i = 0; i < POBOX_B_COUNT; i++)
		if (strcmp(state, pobox_batch_state_names[i]) == 0)
			b.state = (enum pobox_batch_state)i;
	b.reason = dup_col(s, 4);
	b.parent = int_or(s, 5, 0);
	b.resubmits = sqlite3_column_int64(s, 6);
	b.profiles = sqlite3_column_int64(s, 7);
	b.updates = sqlite3_column_int64(s, 8);
	b.carried = sqlite3_column_int64(s, 9);
	b.bytes = sqlite3_column_int64(s, 10);
	rc = 0;
	if (with_payload) {
		b.payload_len = (size_t)sqlite3_column_bytes(s, 11);
		b.payload = pobox_malloc(b.payload_len);
		if (!b.payload)
			rc = POBOX_ENOMEM;
		else if (b.payload_len)
			memcpy(b.payload, sqlite3_column_blob(s, 11), b.payload_len);
	}
	b.payload_crc32 = (uint32_t)sqlite3_column_int64(s, 12);
	b.status_url = dup_col(s, 13);
	b.attempts = sqlite3_column_int64(s, 14);
	b.polls = sqlite3_column_int64(s, 15);
	b.next_at_ms = sqlite3_column_int64(s, 16);
	b.remote_status = dup_col(s, 17);
	b.last_http_status = int_or(s, 18, 0);
	b.last_error = dup_col(s, 19);
	b.created_at_ms = sqlite3_column_int64(s, 20);
	b.submitted_at_ms = int_or(s, 21, 0);
	b.finished_at_ms = int_or(s, 22, 0);
	b.batch_size = int_or(s, 23, -1);
	b.successful_updates = int_or(s, 24, -1);
	b.profiles_not_found = int_or(s, 25, -1);
	b.failed_updates = int_or(s, 26, -1);
	sqlite3_reset(s);
	if (rc == 0 && !b.reason)
		rc = POBOX_ENOMEM;
	if (rc != 0) {
		pobox_batch_free(&b);
		return pobox_errf(st->err, st->errlen, rc, "out of memory reading batch %lld",
		                  (long long)id);
	}
	*out = b;
	return 0;
}

int pobox_store_batch_save(struct pobox_store *st, const struct pobox_batch *b)
{
	static const char sql[] =
		"UPDATE batches SET state = ?2, attempts = ?3, polls = ?4, next_at_ms = ?5,"
		" last_http_status = nullif(?6, 0), submitted_at_ms = nullif(?7, 0),"
		" finished_at_ms = nullif(?8, 0), batch_size = nullif(?9, -1),"
		" successful_updates = nullif(?10, -1), profiles_not_found = nullif(?11, -1),"
		" failed_updates = nullif(?12, -1), status_url = ?13, remote_status = ?14,"
		" last_error = ?15 WHERE id = ?1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	const int64_t ints[] = {b->id, b->state, b->attempts, b->polls, b->next_at_ms,
	                        b->last_http_status, b->submitted_at_ms, b->finished_at_ms,
	                        b->batch_size, b->successful_updates, b->profiles_not_found,
	                        b->failed_updates};
	for (int i = 0; i < 12; i++)
		sqlite3_bind_int64(s, i + 1, ints[i]);
	sqlite3_bind_text(s, 2, pobox_batch_state_names[b->state], -1, SQLITE_STATIC);
	const char *txt[] = {b->status_url, b->remote_status, b->last_error};
	for (int i = 0; i < 3; i++) {
		if (txt[i])
			sqlite3_bind_text(s, 13 + i, txt[i], -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, 13 + i);
	}
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "saving a batch");
}

int pobox_store_batch_next(struct pobox_store *st, int submitted_only, int64_t *id,
                           int64_t *next_at_ms)
{
	static const char any[] =
		"SELECT id, next_at_ms FROM batches WHERE state IN ('ready', 'sending', 'submitted') "
		"AND lane = 'bulk' ORDER BY next_at_ms, id LIMIT 1";
	static const char submitted[] =
		"SELECT id, next_at_ms FROM batches WHERE state = 'submitted' "
		"AND lane = 'bulk' ORDER BY next_at_ms, id LIMIT 1";
	sqlite3_stmt *s = pobox_store_prep(st, submitted_only ? submitted : any);
	if (!s)
		return POBOX_EIO;
	int rc = sqlite3_step(s);
	*id = 0;
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*next_at_ms = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "finding due batches");
}

int pobox_store_in_flight(struct pobox_store *st, int64_t *count)
{
	static const char sql[] =
		"SELECT count(*) FROM batches WHERE state = 'submitted' AND lane = 'bulk'";
	*count = 0;
	return one_int(st, sql, "counting batches in flight", 0, NULL, count, NULL);
}

int pobox_store_lane_unpause_auth(struct pobox_store *st)
{
	/* a new run with (perhaps) a fixed token or client, or a network that
	 * is back: lift auth, configuration and offline pauses and make the
	 * batches they held back due now */
	static const char due[] =
		"UPDATE batches SET next_at_ms = 0 WHERE state IN ('ready', 'sending', 'submitted')"
		" AND (lane IN (SELECT lane FROM lanes WHERE pause_class IN ('auth', 'config', 'offline'))"
		"      OR last_http_status IN (401, 403))";
	static const char lift[] =
		"UPDATE lanes SET paused_until_ms = 0, pause_class = NULL, pause_reason = NULL"
		" WHERE pause_class IN ('auth', 'config', 'offline')";
	int rc = run(st, due, "lifting an auth pause", 0, NULL, 0, NULL);
	return rc ? rc : run(st, lift, "lifting an auth pause", 0, NULL, 0, NULL);
}

int pobox_store_unfinished(struct pobox_store *st, int64_t *count)
{
	static const char sql[] =
		"SELECT count(*) FROM batches WHERE state IN ('ready', 'sending', 'submitted')";
	*count = 0;
	return one_int(st, sql, "counting unfinished batches", 0, NULL, count, NULL);
}

int pobox_store_pending(struct pobox_store *st, int64_t now_ms, int64_t *due_profiles,
                        int64_t *later_profiles, int64_t *next_due_ms, int64_t *oldest_ms)
{
	static const char sql[] =
		"SELECT count(DISTINCT CASE WHEN p.next_attempt_at_ms <= ?1 THEN p.id END),"
		"       count(DISTINCT CASE WHEN p.next_attempt_at_ms > ?1 THEN p.id END),"
		"       min(CASE WHEN p.next_attempt_at_ms > ?1 THEN p.next_attempt_at_ms END),"
		"       min(u.enqueued_at_ms) "
		"FROM profiles p JOIN updates u ON u.state = 'live' AND u.profile = p.id AND u.seq > p.done_seq "
		"WHERE p.batch IS NULL";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, now_ms);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*due_profiles = sqlite3_column_int64(s, 0);
		*later_profiles = sqlite3_column_int64(s, 1);
		*next_due_ms = int_or(s, 2, -1);
		*oldest_ms = int_or(s, 3, -1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : pobox_store_fail(st, rc, "counting pending updates");
}

int pobox_store_batch_move(struct pobox_store *st, int64_t from, int64_t to, int64_t max_profile)
{
	static const char sql[] =
		"UPDATE profiles SET batch = ?2 WHERE batch = ?1 AND (?3 < 0 OR id <= ?3)";
	int64_t a[3] = {from, to, max_profile};
	return run(st, sql, "moving profiles between batches", 3, a, 0, NULL);
}

int pobox_store_batch_median(struct pobox_store *st, int64_t batch, int64_t *profile_id)
{
	static const char sql[] =
		"SELECT id FROM profiles WHERE batch = ?1 ORDER BY id "
		"LIMIT 1 OFFSET (SELECT (count(*) - 1) / 2 FROM profiles WHERE batch = ?1)";
	int64_t a[1] = {batch};
	*profile_id = -1;
	return one_int(st, sql, "bisecting a batch", 1, a, profile_id, NULL);
}

int pobox_store_batch_delivered(struct pobox_store *st, int64_t batch, int v2, int64_t now_ms)
{
	static const char sql[] =
		"UPDATE profiles SET done_seq = batch_seq, done_at_ms = ?2, batch = NULL, attempts = 0,"
		" next_attempt_at_ms = 0, last_error = NULL, route_bulk = 0,"
		" last_v2_at_ms = CASE WHEN ?3 THEN ?2 ELSE last_v2_at_ms END "
		"WHERE batch = ?1";
	int64_t a[3] = {batch, now_ms, v2};
	return run(st, sql, "recording a delivery", 3, a, 0, NULL);
}

int pobox_store_batch_release(struct pobox_store *st, int64_t batch)
{
	static const char sql[] = "UPDATE profiles SET batch = NULL WHERE batch = ?1";
	int64_t a[1] = {batch};
	return run(st, sql, "releasing a batch's profiles", 1, a, 0, NULL);
}

int pobox_store_batch_kill(struct pobox_store *st, int64_t batch, const char *reason)
{
	static const char kill[] =
		"UPDATE updates SET state = 'dead', last_error = ?2,"
		" attempts = (SELECT attempts FROM batches WHERE id = ?1),"
		" last_http_status = (SELECT last_http_status FROM batches WHERE id = ?1),"
		" dead_at_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) "
		"WHERE state = 'live' AND seq IN ("
		"  SELECT u.seq FROM profiles p JOIN updates u ON u.profile = p.id AND u.state = 'live'"
		"  AND u.seq > p.done_seq AND u.seq <= p.batch_seq WHERE p.batch = ?1)";
	int64_t a[1] = {batch};
	const char *t[1] = {reason};
	int rc = run(st, kill, "dead-lettering a batch", 1, a, 1, t);
	return rc ? rc : pobox_store_batch_release(st, batch);
}

int pobox_store_batch_retry_rows(struct pobox_store *st, int64_t batch, const char *reason,
                                 int64_t next_at_ms, int64_t max_attempts, int64_t *killed)
{
	/* RETURNING rows are all computed by the first step, so the kills
	 * below run after the release is complete */
	static const char sql[] =
		"UPDATE profiles SET batch = NULL, attempts = attempts + 1, next_attempt_at_ms = ?2,"
		" last_error = ?3 WHERE batch = ?1 RETURNING id, done_seq, batch_seq, attempts";
	struct dying {
		int64_t id, done, upto, attempts;
	} *v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0, r;
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	*killed = 0;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, batch);
	sqlite3_bind_int64(s, 2, next_at_ms);
	sqlite3_bind_text(s, 3, reason, -1, SQLITE_STATIC);
	while ((r = sqlite3_step(s)) == SQLITE_ROW && rc == 0) {
		if (sqlite3_column_int64(s, 3) < max_attempts)
			continue;
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 16;
			struct dying *nv = pobox_realloc(v, nc * sizeof *nv);
			if (!nv) {
				rc = pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
				break;
			}
			v = nv;
			cap = nc;
		}
		v[n].id = sqlite3_column_int64(s, 0);
		v[n].done = sqlite3_column_int64(s, 1);
		v[n].upto = sqlite3_column_int64(s, 2);
		v[n++].attempts = sqlite3_column_int64(s, 3);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "returning a batch's rows to pending");
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = pobox_store_kill_rows(st, v[i].id, v[i].done, v[i].upto, reason, v[i].attempts);
	if (rc == 0)
		*killed = (int64_t)n;
	pobox_free(v);
	return rc;
}

int pobox_store_row_failed(struct pobox_store *st, int64_t batch, enum pobox_id_type t,
                           const char *profile_id, const char *reason, int64_t next_at_ms,
                           int64_t max_attempts, int *found)
{
	static const char find[] =
		"SELECT id, done_seq, batch_seq, attempts FROM profiles "
		"WHERE id_type = ?2 AND profile_id = ?3 AND batch = ?1";
	static const char fail_sql[] =
		"UPDATE profiles SET batch = NULL, attempts = ?2, next_attempt_at_ms = ?3,"
		" last_error = ?4 WHERE id = ?1";
	sqlite3_stmt *s = pobox_store_prep(st, find);
	int64_t id, done, upto, attempts;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, batch);
	sqlite3_bind_text(s, 2, pobox_id_type_name(t), -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, profile_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(s, 0);
		done = sqlite3_column_int64(s, 1);
		upto = sqlite3_column_int64(s, 2);
		attempts = sqlite3_column_int64(s, 3) + 1;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return pobox_store_fail(st, rc, "finding a failed row's profile");
	int64_t a[3] = {id, attempts, next_at_ms};
	const char *txt[1] = {reason};
	if ((rc = run(st, fail_sql, "recording a failed row", 3, a, 1, txt)) != 0)
		return rc;
	if (attempts >= max_attempts)
		rc = pobox_store_kill_rows(st, id, done, upto, reason, attempts);
	return rc;
}

/* ---- ledgers and lanes -------------------------------------------------- */

int pobox_store_bulk_call(struct pobox_store *st, int64_t now_ms, int64_t limit,
                          int64_t *retry_at_ms)
{
	static const char prune[] = "DELETE FROM bulk_calls WHERE at_ms <= ?1 - 60000";
	static const char count[] =
		"SELECT count(*), min(at_ms) FROM bulk_calls WHERE at_ms > ?1 - 60000";
	static const char add[] = "INSERT INTO bulk_calls (at_ms) VALUES (?1)";
	int64_t a[1] = {now_ms};
	int rc = run(st, prune, "pruning the call ledger", 1, a, 0, NULL);
	if (rc)
		return rc;
	sqlite3_stmt *s = pobox_store_prep(st, count);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, now_ms);
	rc = sqlite3_step(s);
	int64_t n = 0, oldest = now_ms;
	if (rc == SQLITE_ROW) {
		n = sqlite3_column_int64(s, 0);
		oldest = int_or(s, 1, now_ms);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return pobox_store_fail(st, rc, "reading the call ledger");
	if (n >= limit) {
		*retry_at_ms = oldest + 60000 + 1;
		return POBOX_EBUSY;
	}
	return run(st, add, "recording a bulk call", 1, a, 0, NULL);
}

int pobox_store_lane_get(struct pobox_store *st, const char *lane, int64_t *until_ms,
                         char *cls, size_t cls_len, char *reason, size_t reason_len)
{
	static const char sql[] =
		"SELECT paused_until_ms, coalesce(pause_class, ''), coalesce(pause_reason, '') "
		"FROM lanes WHERE lane = ?1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_text(s, 1, lane, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	*until_ms = 0;
	if (rc == SQLITE_ROW) {
		*until_ms = sqlite3_column_int64(s, 0);
		if (cls)
			snprintf(cls, cls_len, "%s", sqlite3_column_text(s, 1));
		if (reason)
			snprintf(reason, reason_len, "%s", sqlite3_column_text(s, 2));
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "reading a lane");
}

int pobox_store_lane_pause(struct pobox_store *st, const char *lane, int64_t until_ms,
                           const char *cls, const char *reason)
{
	static const char sql[] =
		"UPDATE lanes SET paused_until_ms = ?1, pause_class = ?2, pause_reason = ?3 WHERE lane = ?4";
	int64_t a[1] = {until_ms};
	const char *t[3] = {cls, reason, lane};
	return run(st, sql, "pausing a lane", 1, a, 3, t);
}

/* ---- generic rows and housekeeping ----------------------------------- */

int pobox_store_each_row(struct pobox_store *st, const char *sql, int has_arg, int64_t arg1,
                         int (*fn)(void *ctx, int ncols, const char *const *names,
                                   const char *const *values),
                         void *ctx)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return pobox_store_fail(st, rc, "preparing a query");
	if (has_arg)
		sqlite3_bind_int64(s, 1, arg1);
	int n = sqlite3_column_count(s);
	const char *names[64], *vals[64];
	if (n > 64)
		n = 64;
	for (int i = 0; i < n; i++)
		names[i] = sqlite3_column_name(s, i);
	int r, out = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		for (int i = 0; i < n; i++)
			vals[i] = (const char *)sqlite3_column_text(s, i);
		if ((out = fn(ctx, n, names, vals)) != 0)
			break;
	}
	if (out == 0 && r != SQLITE_DONE)
		out = pobox_store_fail(st, r, "running a query");
	sqlite3_finalize(s);
	return out;
}

int pobox_store_prune(struct pobox_store *st, int64_t cutoff_ms, int64_t limit, int64_t *pruned)
{
	/* One set of profiles per call: their newest delivered value per
	 * attribute goes to profile_state (so --changed-only and carry-forward
	 * keep it), then their delivered rows are deleted. */
	static const char pick[] =
		"INSERT INTO temp.prune_set (id) SELECT DISTINCT p.id FROM profiles p JOIN updates u"
		" ON u.profile = p.id AND u.state = 'live' AND u.seq <= p.done_seq"
		" WHERE p.done_at_ms < ?1 LIMIT ?2";
	static const char fold[] =
		"INSERT INTO profile_state (profile, attr, value, sent_at_ms, seq) "
		"SELECT profile, attr, value, sent, seq FROM ("
		"  SELECT u.profile, u.attr, u.value, p.done_at_ms AS sent, u.seq,"
		"         row_number() OVER (PARTITION BY u.profile, u.attr ORDER BY u.seq DESC) AS rn"
		"  FROM profiles p JOIN updates u ON u.profile = p.id AND u.state = 'live' AND u.seq <= p.done_seq"
		"  WHERE p.id IN (SELECT id FROM temp.prune_set)) WHERE rn = 1 "
		"ON CONFLICT (profile, attr) DO UPDATE SET value = excluded.value, sent_at_ms = excluded.sent_at_ms,"
		" seq = excluded.seq WHERE excluded.seq > profile_state.seq";
	static const char del_delivered[] =
		"DELETE FROM updates WHERE seq IN (SELECT u.seq FROM profiles p JOIN updates u"
		" ON u.profile = p.id AND u.state = 'live' AND u.seq <= p.done_seq"
		" WHERE p.id IN (SELECT id FROM temp.prune_set))";
	static const char del_superseded[] =
		"DELETE FROM updates WHERE seq IN (SELECT seq FROM updates WHERE state = 'superseded'"
		" AND enqueued_at_ms < ?1 LIMIT ?2)";
	int64_t a[2] = {cutoff_ms, limit};
	int rc;
	*pruned = 0;
	if ((rc = pobox_store_exec_sql(st, "CREATE TEMP TABLE IF NOT EXISTS prune_set "
	                               "(id INTEGER PRIMARY KEY); DELETE FROM temp.prune_set",
	                               "preparing housekeeping")) != 0)
		return rc;
	if ((rc = run(st, pick, "choosing profiles to prune", 2, a, 0, NULL)) != 0 ||
	    (rc = run(st, fold, "keeping delivered values", 0, NULL, 0, NULL)) != 0 ||
	    (rc = run(st, del_delivered, "pruning delivered updates", 0, NULL, 0, NULL)) != 0)
		return rc;
	*pruned += sqlite3_changes(st->db);
	if ((rc = run(st, del_superseded, "pruning superseded updates", 2, a, 0, NULL)) != 0)
		return rc;
	*pruned += sqlite3_changes(st->db);
	return 0;
}
