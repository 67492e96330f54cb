/*
 * batch.c - the store's SQL for batch rows and their lifecycle: creating
 * and filling them, completion, releasing and dead-lettering what they
 * hold, splitting, the per-minute call ledger and lane pauses.  Part of the
 * store (see store.h for contracts, schema/0002_delivery.sql for the batch
 * states and schema/0006_storage.sql for how updates are kept).  Moving
 * updates between batched, pending, delivered and dead keeps the tallies:
 * a batch's `held` says how many move (members.c keeps who is in it).
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

/* ---- small statements ------------------------------------------------- */

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

/* ---- batch rows --------------------------------------------------------- */

void pobox_batch_free(struct pobox_batch *b)
{
	if (!b)
		return;
	pobox_free(b->reason);
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
		"                     bytes, payload_crc32, created_at_ms, next_at_ms) "
		"VALUES (?5, ?6, 'ready', ?7, nullif(?1, 0), ?2, 0, 0, 0, 0, ?3, ?4)";
	int64_t a[4] = {parent, resubmits, now_ms, now_ms};
	const char *txt[3] = {api == 1 ? "v1" : "v2", pobox_id_type_name(t), reason};
	int rc = pobox_store_run(st, sql, "creating a batch", 4, a, 3, txt);
	if (rc == 0)
		*id = sqlite3_last_insert_rowid(st->db);
	return rc;
}

int pobox_store_payload_part(struct pobox_store *st, int64_t batch, int64_t part,
                             const void *data, size_t len)
{
	static const char sql[] =
		"INSERT OR REPLACE INTO batch_payloads (batch, part, payload) VALUES (?1, ?2, ?3)";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, batch);
	sqlite3_bind_int64(s, 2, part);
	sqlite3_bind_blob(s, 3, len ? data : "", (int)len, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "writing a batch payload");
}

int pobox_store_payload_clear(struct pobox_store *st, int64_t batch)
{
	static const char sql[] = "DELETE FROM batch_payloads WHERE batch = ?1";
	return pobox_store_run(st, sql, "clearing a batch payload", 1, &batch, 0, NULL);
}

int pobox_store_batch_payload(struct pobox_store *st, int64_t id, int64_t profiles,
                              int64_t updates, int64_t carried, int64_t bytes,
                              const void *head, size_t head_len, uint32_t crc)
{
	static const char sql[] =
		"UPDATE batches SET profiles = ?2, updates = ?3, held = ?3, carried = ?4, bytes = ?5,"
		" payload_crc32 = ?6 WHERE id = ?1";
	int64_t a[6] = {id, profiles, updates, carried, bytes, (int64_t)crc};
	int rc = pobox_store_run(st, sql, "storing a batch payload", 6, a, 0, NULL);
	if (rc == 0)
		rc = pobox_store_payload_part(st, id, 0, head, head_len);
	return rc ? rc : pobox_store_members_flush(st, id);
}

int pobox_store_payload_next(struct pobox_store *st, int64_t batch, int64_t after,
                             int64_t *part, void **buf, size_t *cap, size_t *len)
{
	static const char sql[] = "SELECT part, payload FROM batch_payloads"
	                          " WHERE batch = ?1 AND part > ?2 ORDER BY part LIMIT 1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	int rc = 0;
	*len = 0;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, batch);
	sqlite3_bind_int64(s, 2, after);
	int r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(s, 1);
		const void *data = sqlite3_column_blob(s, 1);
		if (n > *cap) {
			void *nb = pobox_realloc(*buf, n);
			if (!nb)
				rc = pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
			else {
				*buf = nb;
				*cap = n;
			}
		}
		if (rc == 0 && n) {
			memcpy(*buf, data, n);
			*len = n;
			*part = sqlite3_column_int64(s, 0);
		}
	} else if (r != SQLITE_DONE) {
		rc = pobox_store_fail(st, r, "reading a batch payload");
	}
	sqlite3_reset(s);
	return rc;
}

int pobox_store_prune_batches(struct pobox_store *st, int64_t cutoff_ms)
{
#define OLD_FINISHED                                                                        \
	"(SELECT id FROM batches WHERE state IN ('done', 'dead', 'split', 'replaced')"       \
	" AND finished_at_ms < ?1 AND (EXISTS (SELECT 1 FROM batch_payloads WHERE batch = id)" \
	" OR EXISTS (SELECT 1 FROM batch_members WHERE batch = id)) LIMIT 16)"
	static const char payloads[] = "DELETE FROM batch_payloads WHERE batch IN " OLD_FINISHED;
	static const char members[] = "DELETE FROM batch_members WHERE batch IN " OLD_FINISHED;
#undef OLD_FINISHED
	/* members first: the payloads' subquery still sees these batches */
	int rc = pobox_store_run(st, members, "pruning old batches", 1, &cutoff_ms, 0, NULL);
	return rc ? rc : pobox_store_run(st, payloads, "pruning old batches", 1, &cutoff_ms, 0, NULL);
}

int pobox_store_batch_delete_empty(struct pobox_store *st, int64_t id)
{
	static const char sql[] = "DELETE FROM batches WHERE id = ?1 AND NOT EXISTS"
	                          " (SELECT 1 FROM batch_members WHERE batch = ?1 AND members <> '[]')";
	int64_t a[1] = {id};
	return pobox_store_run(st, sql, "dropping an empty batch", 1, a, 0, NULL);
}

int pobox_store_batch_copy_payload(struct pobox_store *st, int64_t to, int64_t from)
{
	static const char sql[] =
		"UPDATE batches SET (profiles, updates, carried, bytes, payload_crc32) = "
		"(SELECT profiles, updates, carried, bytes, payload_crc32 FROM batches WHERE id = ?2) "
		"WHERE id = ?1";
	static const char parts[] =
		"INSERT OR REPLACE INTO batch_payloads (batch, part, payload)"
		" SELECT ?1, part, payload FROM batch_payloads WHERE batch = ?2";
	int64_t a[2] = {to, from};
	int rc = pobox_store_run(st, sql, "copying a batch payload", 2, a, 0, NULL);
	return rc ? rc : pobox_store_run(st, parts, "copying a batch payload", 2, a, 0, NULL);
}

static char *dup_col(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);
	return t ? pobox_strdup(t) : NULL;
}


int pobox_store_batch_get(struct pobox_store *st, int64_t id, struct pobox_batch *out)
{
	static const char sql[] =
		"SELECT id, api, id_type, state, reason, parent, resubmits, profiles, updates, carried,"
		" bytes, NULL, payload_crc32, status_url, attempts, polls,"
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
	b.parent = pobox_store_col_int(s, 5, 0);
	b.resubmits = sqlite3_column_int64(s, 6);
	b.profiles = sqlite3_column_int64(s, 7);
	b.updates = sqlite3_column_int64(s, 8);
	b.carried = sqlite3_column_int64(s, 9);
	b.bytes = sqlite3_column_int64(s, 10);
	rc = 0;
	b.payload_crc32 = (uint32_t)sqlite3_column_int64(s, 12);
	b.status_url = dup_col(s, 13);
	b.attempts = sqlite3_column_int64(s, 14);
	b.polls = sqlite3_column_int64(s, 15);
	b.next_at_ms = sqlite3_column_int64(s, 16);
	b.remote_status = dup_col(s, 17);
	b.last_http_status = pobox_store_col_int(s, 18, 0);
	b.last_error = dup_col(s, 19);
	b.created_at_ms = sqlite3_column_int64(s, 20);
	b.submitted_at_ms = pobox_store_col_int(s, 21, 0);
	b.finished_at_ms = pobox_store_col_int(s, 22, 0);
	b.batch_size = pobox_store_col_int(s, 23, -1);
	b.successful_updates = pobox_store_col_int(s, 24, -1);
	b.profiles_not_found = pobox_store_col_int(s, 25, -1);
	b.failed_updates = pobox_store_col_int(s, 26, -1);
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
	return pobox_store_one(st, sql, "counting batches in flight", 0, NULL, count, NULL);
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
	int rc = pobox_store_run(st, due, "lifting an auth pause", 0, NULL, 0, NULL);
	return rc ? rc : pobox_store_run(st, lift, "lifting an auth pause", 0, NULL, 0, NULL);
}

int pobox_store_unfinished(struct pobox_store *st, int64_t *count)
{
	static const char sql[] =
		"SELECT count(*) FROM batches WHERE state IN ('ready', 'sending', 'submitted')";
	*count = 0;
	return pobox_store_one(st, sql, "counting unfinished batches", 0, NULL, count, NULL);
}

/* ---- members moving ------------------------------------------------------ */

static int set_held(struct pobox_store *st, int64_t batch, int64_t delta)
{
	static const char sql[] = "UPDATE batches SET held = held + ?2 WHERE id = ?1";
	int64_t a[2] = {batch, delta};
	return pobox_store_run(st, sql, "counting a batch's updates", 2, a, 0, NULL);
}

struct batch_info {
	int64_t held, batch_seq;
};

static int batch_info(struct pobox_store *st, int64_t batch, struct batch_info *bi)
{
	static const char sql[] = "SELECT held, batch_seq FROM batches WHERE id = ?1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, batch);
	int rc = sqlite3_step(s);
	bi->held = bi->batch_seq = 0;
	if (rc == SQLITE_ROW) {
		bi->held = sqlite3_column_int64(s, 0);
		bi->batch_seq = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "reading a batch");
}

/* The live updates profile ids[0..n) have in (done_seq, batch_seq]. */
static int held_by(struct pobox_store *st, const int64_t *ids, size_t n, int64_t batch_seq,
                   int64_t *held)
{
	int rc = 0;
	*held = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		int64_t done = 0, k = 0;
		if ((rc = pobox_store_one(st, "SELECT done_seq FROM profiles WHERE id = ?1",
		                          "counting a batch's updates", 1, &ids[i], &done, NULL)) == 0 &&
		    (rc = pobox_store_cells_in(st, ids[i], done, batch_seq, &k)) == 0)
			*held += k;
	}
	return rc;
}

int pobox_store_batch_move(struct pobox_store *st, int64_t from, int64_t to, int64_t max_profile)
{
	static const char copy[] =
		"UPDATE batches SET batch_seq = (SELECT batch_seq FROM batches WHERE id = ?2) WHERE id = ?1";
	int64_t *ids = NULL, moved = 0;
	size_t n = 0, k = 0;
	struct batch_info bi;
	int rc = batch_info(st, from, &bi);
	if (rc == 0)
		rc = pobox_store_members(st, from, &ids, &n);
	while (rc == 0 && k < n && (max_profile < 0 || ids[k] <= max_profile))
		k++;
	/* all of them: the held count goes along; some: counted */
	if (rc == 0)
		rc = k == n ? 0 : held_by(st, ids, k, bi.batch_seq, &moved);
	if (rc == 0 && k == n)
		moved = bi.held;
	int64_t a[2] = {to, from};
	if (rc == 0 && (rc = pobox_store_members_set(st, to, ids, k)) == 0 &&
	    (rc = pobox_store_members_set(st, from, ids + k, n - k)) == 0 &&
	    (rc = pobox_store_run(st, copy, "moving a batch's members", 2, a, 0, NULL)) == 0 &&
	    (rc = set_held(st, to, moved)) == 0)
		rc = set_held(st, from, -moved);
	pobox_free(ids);
	return rc;
}

int pobox_store_batch_median(struct pobox_store *st, int64_t batch, int64_t *profile_id)
{
	int64_t *ids = NULL;
	size_t n = 0;
	int rc = pobox_store_members(st, batch, &ids, &n);
	*profile_id = rc == 0 && n ? ids[(n - 1) / 2] : -1;
	pobox_free(ids);
	return rc;
}

/* ---- ends of a batch ----------------------------------------------------- */

/* A final state ends its members' membership (the caller's batch_save
 * then records the rest of the outcome). */
static int finish(struct pobox_store *st, int64_t batch, const char *state, int64_t now_ms)
{
	static const char sql[] =
		"UPDATE batches SET state = ?3, finished_at_ms = coalesce(finished_at_ms, nullif(?2, 0)) "
		"WHERE id = ?1";
	int64_t a[2] = {batch, now_ms};
	const char *t[1] = {state};
	return pobox_store_run(st, sql, "finishing a batch", 2, a, 1, t);
}

/* Its members that have not left it, as a subquery on ?1. */
#define MEMBERS_OF(b)                                                                          \
	"(SELECT CAST(m.value AS INTEGER) FROM batch_members x, json_each(x.members) m"              \
	" WHERE x.batch = " b " AND NOT EXISTS (SELECT 1 FROM batch_left l WHERE l.batch = x.batch"   \
	" AND l.profile = CAST(m.value AS INTEGER)))"

/* Each member's watermark moves to the batch's seq, 32 to a statement
 * (in id order: the rows are near each other). */
static int members_delivered(struct pobox_store *st, const int64_t *ids, size_t n,
                             int64_t batch_seq, int v2, int64_t now_ms)
{
#define Q4 "?,?,?,?"
#define Q32 Q4 "," Q4 "," Q4 "," Q4 "," Q4 "," Q4 "," Q4 "," Q4
	static const char sql[] =
		"UPDATE profiles SET done_seq = max(done_seq, ?3), done_at_ms = ?1, attempts = 0,"
		" next_attempt_at_ms = 0, last_error = NULL, route_bulk = 0,"
		" last_v2_at_ms = CASE WHEN ?2 THEN ?1 ELSE last_v2_at_ms END "
		"WHERE id IN (" Q32 ")";
#undef Q32
#undef Q4
	int rc = 0;
	for (size_t at = 0; at < n && rc == 0; at += 32) {
		sqlite3_stmt *s = pobox_store_prep(st, sql);
		if (!s)
			return POBOX_EIO;
		sqlite3_bind_int64(s, 1, now_ms);
		sqlite3_bind_int(s, 2, v2);
		sqlite3_bind_int64(s, 3, batch_seq);
		for (size_t i = 0; i < 32; i++) /* unused places repeat the first */
			sqlite3_bind_int64(s, (int)i + 4, ids[at + (at + i < n ? i : 0)]);
		int r = sqlite3_step(s);
		sqlite3_reset(s);
		if (r != SQLITE_DONE)
			rc = pobox_store_fail(st, r, "recording a delivery");
	}
	return rc;
}

int pobox_store_batch_delivered(struct pobox_store *st, int64_t batch, int v2, int64_t now_ms)
{
	struct batch_info bi;
	int64_t *ids = NULL;
	size_t n = 0;
	int rc = pobox_store_need_tx(st, "recording a delivery");
	if (rc || (rc = batch_info(st, batch, &bi)) != 0 ||
	    (rc = pobox_store_members(st, batch, &ids, &n)) != 0)
		return rc;
	rc = members_delivered(st, ids, n, bi.batch_seq, v2, now_ms);
	pobox_free(ids);
	if (rc || (rc = set_held(st, batch, -bi.held)) != 0 || (rc = finish(st, batch, "done", now_ms)) != 0)
		return rc;
	st->d.batched -= bi.held;
	st->d.delivered += bi.held;
	if (now_ms > st->d.last_delivery_ms)
		st->d.last_delivery_ms = now_ms;
	st->d.dirty = 1;
	return 0;
}

/* Its members back to the pending set (held). */
static const char SQL_HOLD_MEMBERS[] =
	"INSERT INTO held (profile, since_ms) "
	"SELECT p.id, (SELECT min(w.enqueued_at_ms) FROM writes w WHERE w.profile = p.id"
	"  AND w.seq > p.done_seq AND w.n > w.fates) "
	"FROM profiles p WHERE p.id IN " MEMBERS_OF("?1") " AND EXISTS (SELECT 1 FROM writes w"
	"  WHERE w.profile = p.id AND w.seq > p.done_seq AND w.n > w.fates) "
	"ON CONFLICT (profile) DO UPDATE SET since_ms = min(since_ms, excluded.since_ms)";

int pobox_store_batch_release(struct pobox_store *st, int64_t batch)
{
	struct batch_info bi;
	int rc = pobox_store_need_tx(st, "releasing a batch");
	if (rc || (rc = batch_info(st, batch, &bi)) != 0 ||
	    (rc = pobox_store_run(st, SQL_HOLD_MEMBERS, "releasing a batch", 1, &batch, 0, NULL)) != 0 ||
	    (rc = set_held(st, batch, -bi.held)) != 0 ||
	    (rc = finish(st, batch, "dead", 0)) != 0)
		return rc;
	st->d.batched -= bi.held;
	st->d.pending += bi.held;
	st->d.oldest_recount = 1;
	st->d.dirty = 1;
	return 0;
}

int pobox_store_batch_kill(struct pobox_store *st, int64_t batch, const char *reason)
{
	/* every live update the batch carries, with the batch's attempts and
	 * last HTTP status */
	static const char kill[] =
		"INSERT INTO fates (seq, state, attempts, last_error, dead_at_ms, last_http_status) "
		"SELECT w.seq + e.key, 'dead', b.attempts, ?2,"
		"       CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), b.last_http_status "
		"FROM batches b JOIN profiles p ON p.id IN " MEMBERS_OF("?1") " "
		"JOIN writes w ON w.profile = p.id AND w.seq > p.done_seq AND w.seq <= b.batch_seq, "
		"     json_each(w.cells) e "
		"WHERE b.id = ?1 AND e.type <> 'null'"
		" AND (w.fates = 0 OR NOT EXISTS (SELECT 1 FROM fates f WHERE f.seq = w.seq + e.key))";
	static const char count[] =
		"UPDATE writes SET fates = (SELECT count(*) FROM fates f WHERE f.seq >= writes.seq"
		" AND f.seq < writes.seq + json_array_length(writes.cells)) "
		"WHERE seq IN (SELECT w.seq FROM profiles p JOIN writes w ON w.profile = p.id"
		" AND w.seq > p.done_seq AND w.seq <= (SELECT batch_seq FROM batches WHERE id = ?1)"
		" WHERE p.id IN " MEMBERS_OF("?1") ")";
	const char *t[1] = {reason};
	struct batch_info bi;
	int rc = pobox_store_need_tx(st, "dead-lettering a batch");
	if (rc || (rc = batch_info(st, batch, &bi)) != 0 ||
	    (rc = pobox_store_run(st, kill, "dead-lettering a batch", 1, &batch, 1, t)) != 0 ||
	    (rc = pobox_store_run(st, count, "dead-lettering a batch", 1, &batch, 0, NULL)) != 0 ||
	    (rc = set_held(st, batch, -bi.held)) != 0)
		return rc;
	/* newer updates of its members (not in it) are pending: held */
	if ((rc = pobox_store_run(st, SQL_HOLD_MEMBERS, "dead-lettering a batch", 1, &batch, 0, NULL)) != 0 ||
	    (rc = finish(st, batch, "dead", 0)) != 0)
		return rc;
	st->d.batched -= bi.held;
	st->d.dead += bi.held;
	st->d.oldest_recount = 1;
	st->d.dirty = 1;
	return 0;
}

int pobox_store_profile_release(struct pobox_store *st, int64_t batch, int64_t profile,
                                int64_t cells, int route_bulk, int charge, int64_t next_at_ms,
                                const char *reason, int64_t max_attempts, int *killed)
{
	static const char sql[] =
		"UPDATE profiles SET route_bulk = max(route_bulk, ?2), attempts = attempts + ?3,"
		" next_attempt_at_ms = ?4, last_error = coalesce(?5, last_error) "
		"WHERE id = ?1 RETURNING attempts, done_seq";
	static const char since[] =
		"SELECT min(w.enqueued_at_ms) FROM writes w WHERE w.profile = ?1 AND w.seq > ?2"
		" AND w.n > w.fates";
	int64_t attempts = 0, done = 0, oldest = 0;
	struct batch_info bi;
	int rc = pobox_store_need_tx(st, "releasing a profile");
	*killed = 0;
	if (rc || (rc = batch_info(st, batch, &bi)) != 0 ||
	    (rc = pobox_store_leave(st, batch, profile)) != 0)
		return rc;
	if (sqlite3_changes(st->db) == 0)
		return 0; /* it had left already: settled */
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, profile);
	sqlite3_bind_int(s, 2, route_bulk);
	sqlite3_bind_int(s, 3, charge);
	sqlite3_bind_int64(s, 4, next_at_ms);
	if (reason)
		sqlite3_bind_text(s, 5, reason, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		attempts = sqlite3_column_int64(s, 0);
		done = sqlite3_column_int64(s, 1);
		rc = sqlite3_step(s);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return pobox_store_fail(st, rc, "releasing a profile");
	int64_t a[2] = {profile, done};
	if ((rc = set_held(st, batch, -cells)) != 0 ||
	    (rc = pobox_store_one(st, since, "releasing a profile", 2, a, &oldest, NULL)) != 0 ||
	    (rc = pobox_store_hold(st, profile, oldest > 0 ? oldest : 1)) != 0)
		return rc;
	st->d.batched -= cells;
	st->d.pending += cells;
	st->d.oldest_recount = 1;
	st->d.dirty = 1;
	if (!charge || attempts < max_attempts)
		return 0;
	*killed = 1;
	return pobox_store_kill_rows(st, profile, done, bi.batch_seq, reason ? reason : "gave up",
	                             attempts);
}

int pobox_store_batch_retry_rows(struct pobox_store *st, int64_t batch, const char *reason,
                                 int64_t next_at_ms, int64_t max_attempts, int64_t *killed)
{
	/* each member that has not left counts an attempt and waits; RETURNING
	 * rows are all computed by the first step */
	static const char sql[] =
		"UPDATE profiles SET attempts = attempts + 1, next_attempt_at_ms = ?2, last_error = ?3 "
		"WHERE id IN " MEMBERS_OF("?1") " RETURNING id, done_seq, attempts";
	struct dying {
		int64_t id, done, attempts;
	} *v = NULL;
	size_t n = 0, cap = 0;
	struct batch_info bi;
	int rc, r = SQLITE_DONE;
	*killed = 0;
	if ((rc = batch_info(st, batch, &bi)) != 0)
		return rc;
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, batch);
	sqlite3_bind_int64(s, 2, next_at_ms);
	sqlite3_bind_text(s, 3, reason, -1, SQLITE_STATIC);
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_int64(s, 2) < max_attempts)
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
		v[n++].attempts = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "returning a batch's rows to pending");
	/* all go back to pending; those out of attempts then die, up to what
	 * the batch carried (newer updates stay pending) */
	if (rc == 0)
		rc = pobox_store_batch_release(st, batch);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = pobox_store_kill_rows(st, v[i].id, v[i].done, bi.batch_seq, reason, v[i].attempts);
	if (rc == 0)
		*killed = (int64_t)n;
	pobox_free(v);
	return rc;
}

int pobox_store_row_failed(struct pobox_store *st, int64_t batch, enum pobox_id_type t,
                           const char *profile_id, const char *reason, int64_t next_at_ms,
                           int64_t max_attempts, int *found)
{
	struct pobox_profile_ref ref;
	struct batch_info bi;
	int64_t fence = 0, cells = 0;
	int killed;
	int rc = pobox_store_profile_find(st, t, profile_id, strlen(profile_id), &ref);
	*found = 0;
	if (rc || !ref.id)
		return rc;
	/* a member of this batch: the fence knows which batch holds whom */
	int64_t holder = 0;
	if ((rc = batch_info(st, batch, &bi)) != 0 ||
	    (rc = pobox_store_fenced_by(st, ref.id, &holder, &fence)) != 0 || holder != batch)
		return rc;
	*found = 1;
	if ((rc = pobox_store_cells_in(st, ref.id, ref.done_seq, bi.batch_seq, &cells)) != 0)
		return rc;
	return pobox_store_profile_release(st, batch, ref.id, cells, 0, 1, next_at_ms, reason,
	                                   max_attempts, &killed);
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
	int rc = pobox_store_run(st, prune, "pruning the call ledger", 1, a, 0, NULL);
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
		oldest = pobox_store_col_int(s, 1, now_ms);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return pobox_store_fail(st, rc, "reading the call ledger");
	if (n >= limit) {
		*retry_at_ms = oldest + 60000 + 1;
		return POBOX_EBUSY;
	}
	return pobox_store_run(st, add, "recording a bulk call", 1, a, 0, NULL);
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
	return pobox_store_run(st, sql, "pausing a lane", 1, a, 3, t);
}

/* ---- generic rows and housekeeping ----------------------------------- */

int pobox_store_each_row(struct pobox_store *st, const char *sql, int has_arg, int64_t arg1,
                         int (*fn)(void *ctx, int ncols, const char *const *names,
                                   const char *const *values),
                         void *ctx)
{
	sqlite3_stmt *s = NULL;
	int rc = pobox_store_append_flush(st);
	if (rc)
		return rc;
	rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
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
