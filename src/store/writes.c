/*
 * writes.c - writes and their updates: shapes, appending, moving staged
 * sqlite3 rows in, reading a write's live updates, superseding and
 * dead-lettering them.  Part of the store (see schema/0006_storage.sql for
 * the layout and its invariants, store.h for the contracts); the cut's
 * scan is scan.c's, delivered values and pruning sent.c's.
 *
 * An update is (write, position): seq = writes.seq + position, attribute =
 * the shape's id at that position, value = the cells element there.  A
 * write's updates are all above or all below any watermark (a cut takes
 * every write present when it begins), which is why watermarks compare
 * against writes.seq alone in the SQL of the store.
 *
 * Every function that changes a state's count adds to the transaction's
 * tallies (st->d); they are written at commit.
 */
#include "alloc.h"
#include "cells.h"
#include "error.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- shapes ------------------------------------------------------------ */

void pobox_store_shapes_free(struct pobox_store *st)
{
	for (size_t i = 0; i < st->nshapes; i++)
		pobox_free(st->shapes[i].attrs);
	pobox_free(st->shapes);
	st->shapes = NULL;
	st->nshapes = 0;
}

int pobox_store_shape(struct pobox_store *st, int64_t id, const struct shape **out)
{
	static const char sql[] = "SELECT attrs FROM shapes WHERE id = ?1";
	if (id <= 0)
		return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
		                  "outbox %s: a write names shape %lld; run `pobox doctor`", st->path,
		                  (long long)id);
	if ((size_t)id < st->nshapes && st->shapes[id].attrs) {
		*out = &st->shapes[id];
		return 0;
	}
	if ((size_t)id >= st->nshapes) {
		size_t n = (size_t)id + 64;
		struct shape *ns = pobox_realloc(st->shapes, n * sizeof *ns);
		if (!ns)
			return pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
		memset(ns + st->nshapes, 0, (n - st->nshapes) * sizeof *ns);
		st->shapes = ns;
		st->nshapes = n;
	}
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s), bad = 1;
	struct shape *sh = &st->shapes[id];
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);
		size_t len = (size_t)sqlite3_column_bytes(s, 0);
		size_t max = len / 2 + 1, n = 0;
		int64_t *a = pobox_malloc(max * sizeof *a);
		if (!a) {
			sqlite3_reset(s);
			return pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
		}
		if (pobox_cells_read_shape(t, len, a, max, &n) == 0 && n > 0) {
			sh->id = id;
			sh->n = n;
			sh->attrs = a;
			bad = 0;
		} else {
			pobox_free(a);
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return pobox_store_fail(st, rc, "reading a shape");
	if (bad)
		return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
		                  "outbox %s: shape %lld is missing or malformed; run `pobox doctor`",
		                  st->path, (long long)id);
	*out = sh;
	return 0;
}

/* ---- appending ---------------------------------------------------------- */

static int insert_write(struct pobox_store *st, int64_t seq, int64_t profile, int64_t shape,
                        const char *cells, size_t cells_len, int64_t n, int64_t enqueued_at_ms,
                        int64_t source, int urgent)
{
	return pobox_store_append_write(st, seq, profile, shape, cells, cells_len, n, enqueued_at_ms,
	                                source, urgent);
}

/* The profile of a write at seq: created when new, else its newest write
 * moves (the write is pending by being above the cut watermark). */
static int write_profile(struct pobox_store *st, enum pobox_id_type t, const char *id, size_t len,
                         struct pobox_profile_ref *ref, int64_t seq)
{
	static const char sql[] =
		"UPDATE profiles SET last_write = max(last_write, ?2) WHERE id = ?1";
	if (ref->id == 0)
		return pobox_store_profile_create(st, t, id, len, seq, &ref->id);
	if (pobox_store_append_last_write(st, ref->id, seq))
		return 0; /* created by this transaction: its buffered row says so */
	int64_t a[2] = {ref->id, seq};
	return pobox_store_run(st, sql, "noting a profile's write", 2, a, 0, NULL);
}

int pobox_store_write(struct pobox_store *st, enum pobox_id_type t, const char *id, size_t len,
                      struct pobox_profile_ref *ref, int64_t shape, size_t width,
                      const char *cells, size_t cells_len, int64_t n, int64_t enqueued_at_ms,
                      int64_t source, int urgent, int64_t *first_seq)
{
	int64_t seq = st->next_seq + st->d.seqs;
	int rc = pobox_store_need_tx(st, "appending a write");
	if (rc || (rc = write_profile(st, t, id, len, ref, seq)) != 0)
		return rc;
	if ((rc = insert_write(st, seq, ref->id, shape, cells, cells_len, n, enqueued_at_ms, source,
	                       urgent)) != 0)
		return rc;
	st->d.seqs += (int64_t)width;
	st->d.pending += n;
	if (st->d.oldest_add == 0 || enqueued_at_ms < st->d.oldest_add)
		st->d.oldest_add = enqueued_at_ms > 0 ? enqueued_at_ms : 1;
	st->d.dirty = 1;
	if (first_seq)
		*first_seq = seq;
	return 0;
}

/* ---- staged rows from sqlite3 ------------------------------------------ */

struct staged_row {
	int64_t seq, attr, enq, source;
	int type, urgent;
	char *id, *value;
	size_t id_len, value_len;
};

static int ingest_one(struct pobox_store *st, const struct staged_row *r)
{
	static const char drop[] = "DELETE FROM staged WHERE seq = ?1";
	struct pobox_profile_ref ref;
	struct pobox_cells_buf b = {0};
	int64_t shape;
	int rc;
	if (r->type != POBOX_ID_PCID && r->type != POBOX_ID_THIRDPARTY)
		return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
		                  "outbox %s: staged update %lld has id type %d; run `pobox doctor`",
		                  st->path, (long long)r->seq, r->type);
	if ((rc = pobox_store_profile_find(st, (enum pobox_id_type)r->type, r->id, r->id_len, &ref)) != 0 ||
	    (rc = pobox_store_shape_id(st, &r->attr, 1, &shape)) != 0 ||
	    (rc = write_profile(st, (enum pobox_id_type)r->type, r->id, r->id_len, &ref, r->seq)) != 0)
		return rc;
	pobox_cells_open(&b);
	pobox_cells_str(&b, r->value, r->value_len);
	pobox_cells_close(&b);
	if (b.nomem)
		rc = pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
	else
		rc = insert_write(st, r->seq, ref.id, shape, b.s, b.len, 1, r->enq, r->source, r->urgent);
	pobox_cells_buf_free(&b);
	if (rc == 0)
		rc = pobox_store_run(st, drop, "moving a staged update", 1, &r->seq, 0, NULL);
	return rc; /* tallies: the trigger counted it pending and took its seq */
}

int pobox_store_ingest(struct pobox_store *st, int64_t *moved)
{
	static const char sql[] =
		"SELECT seq, id_type, profile_id, attr, value, enqueued_at_ms, coalesce(source, 0), urgent "
		"FROM staged ORDER BY seq LIMIT 256";
	enum { CHUNK = 256 };
	struct staged_row rows[CHUNK];
	int rc = pobox_store_need_tx(st, "moving staged updates");
	*moved = 0;
	while (rc == 0) {
		sqlite3_stmt *s = pobox_store_prep(st, sql);
		size_t n = 0;
		int r;
		if (!s)
			return POBOX_EIO;
		/* copied out first: moving a row deletes it */
		while (n < CHUNK && (r = sqlite3_step(s)) == SQLITE_ROW) {
			struct staged_row *x = &rows[n];
			x->seq = sqlite3_column_int64(s, 0);
			x->type = sqlite3_column_int(s, 1);
			x->id_len = (size_t)sqlite3_column_bytes(s, 2);
			x->id = pobox_strndup((const char *)sqlite3_column_text(s, 2), x->id_len);
			x->attr = sqlite3_column_int64(s, 3);
			x->value_len = (size_t)sqlite3_column_bytes(s, 4);
			x->value = pobox_strndup((const char *)sqlite3_column_text(s, 4), x->value_len);
			x->enq = sqlite3_column_int64(s, 5);
			x->source = sqlite3_column_int64(s, 6);
			x->urgent = sqlite3_column_int(s, 7);
			n++;
			if (!x->id || !x->value) {
				r = SQLITE_NOMEM;
				break;
			}
		}
		sqlite3_reset(s);
		if (r != SQLITE_ROW && r != SQLITE_DONE)
			rc = pobox_store_fail(st, r, "reading staged updates");
		for (size_t i = 0; i < n; i++) {
			if (rc == 0 && (rc = ingest_one(st, &rows[i])) == 0)
				(*moved)++;
			pobox_free(rows[i].id);
			pobox_free(rows[i].value);
		}
		if (n < CHUNK)
			break;
	}
	return rc;
}

/* ---- a write's updates ------------------------------------------------- */

/* The seqs of a write's updates that have a fates row (they are not live). */
static int write_fates(struct pobox_store *st, int64_t seq, size_t width, int64_t *out, size_t max,
                       size_t *n)
{
	static const char sql[] = "SELECT seq FROM fates WHERE seq >= ?1 AND seq < ?2";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	int r;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_int64(s, 2, seq + (int64_t)width);
	*n = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		if (*n < max)
			out[(*n)++] = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return r == SQLITE_DONE ? 0 : pobox_store_fail(st, r, "reading update fates");
}

int pobox_store_each_cell(struct pobox_store *st, int64_t seq, int64_t shape_id, const char *cells,
                          size_t cells_len, int64_t nfates, pobox_store_cell_fn fn, void *ctx)
{
	const struct shape *sh;
	struct pobox_cells_reader r;
	struct pobox_cell c;
	int64_t dead[64];
	size_t ndead = 0;
	int rc, k;
	if ((rc = pobox_store_shape(st, shape_id, &sh)) != 0)
		return rc;
	if (nfates > 0 && (rc = write_fates(st, seq, sh->n, dead, 64, &ndead)) != 0)
		return rc;
	int many = nfates > 64; /* more than we keep: ask per update */
	char *scratch = pobox_store_scratch(st, cells_len + 1);
	if (!scratch)
		return pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
	size_t pos = 0;
	if (pobox_cells_read_begin(&r, cells, cells_len, scratch) != 0)
		goto bad;
	for (; (k = pobox_cells_next(&r, &c)) == 1; pos++) {
		if (pos >= sh->n || (c.type != POBOX_CELL_STR && c.type != POBOX_CELL_NULL))
			goto bad;
		if (c.type == POBOX_CELL_NULL)
			continue;
		int64_t useq = seq + (int64_t)pos;
		int live = 1;
		for (size_t i = 0; i < ndead && live; i++)
			live = dead[i] != useq;
		if (live && many) {
			int64_t one = 0;
			int found = 0;
			if ((rc = pobox_store_one(st, "SELECT 1 FROM fates WHERE seq = ?1", "reading fates",
			                          1, &useq, &one, &found)) != 0)
				return rc;
			live = !found;
		}
		if (live && (rc = fn(ctx, useq, sh->attrs[pos], c.s, c.len)) != 0)
			return rc;
	}
	if (k == 0 && pos == sh->n) /* one cell per position of the shape: no fewer either */
		return 0;
bad:
	return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
	                  "outbox %s: write %lld has malformed cells; run `pobox doctor`", st->path,
	                  (long long)seq);
}

/* ---- fates ---------------------------------------------------------------- */

int pobox_store_supersede(struct pobox_store *st, int64_t seq, int64_t by_seq)
{
	static const char add[] =
		"INSERT INTO fates (seq, state, superseded_by) VALUES (?1, 'superseded', ?2)";
	static const char count[] =
		"UPDATE writes SET fates = fates + 1 WHERE seq = (SELECT max(seq) FROM writes WHERE seq <= ?1)";
	int64_t a[2] = {seq, by_seq};
	int rc = pobox_store_need_tx(st, "superseding an update");
	if (rc || (rc = pobox_store_run(st, add, "superseding an update", 2, a, 0, NULL)) != 0 ||
	    (rc = pobox_store_run(st, count, "superseding an update", 1, a, 0, NULL)) != 0)
		return rc;
	st->d.pending--;
	st->d.superseded++;
	st->d.dirty = 1;
	return 0;
}

/* Dead-letters the live updates of the profile's writes in (lo, hi]:
 * *n = how many. */
static int kill_range(struct pobox_store *st, int64_t profile, int64_t lo, int64_t hi,
                      const char *reason, int64_t attempts, int64_t http, int64_t *n)
{
	static const char add[] =
		"INSERT INTO fates (seq, state, attempts, last_error, dead_at_ms, last_http_status) "
		"SELECT w.seq + e.key, 'dead', ?4, ?6,"
		"       CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), nullif(?5, 0) "
		"FROM writes w, json_each(w.cells) e "
		"WHERE w.profile = ?1 AND w.seq > ?2 AND w.seq <= ?3 AND e.type <> 'null'"
		" AND (w.fates = 0 OR NOT EXISTS (SELECT 1 FROM fates f WHERE f.seq = w.seq + e.key))";
	static const char count[] =
		"UPDATE writes SET fates = (SELECT count(*) FROM fates f WHERE f.seq >= writes.seq"
		" AND f.seq < writes.seq + json_array_length(writes.cells)) "
		"WHERE profile = ?1 AND seq > ?2 AND seq <= ?3";
	int64_t a[5] = {profile, lo, hi, attempts, http};
	const char *t[1] = {reason};
	int rc = pobox_store_run(st, add, "dead-lettering updates", 5, a, 1, t);
	if (rc)
		return rc;
	*n = sqlite3_changes(st->db);
	return pobox_store_run(st, count, "dead-lettering updates", 3, a, 0, NULL);
}

int pobox_store_kill_rows(struct pobox_store *st, int64_t profile, int64_t done_seq, int64_t upto,
                          const char *reason, int64_t attempts)
{
	int64_t n = 0;
	int rc = pobox_store_need_tx(st, "dead-lettering updates");
	if (rc || (rc = kill_range(st, profile, done_seq, upto, reason, attempts, 0, &n)) != 0)
		return rc;
	/* they were pending: the cut found them so, or a release put them back */
	st->d.pending -= n;
	st->d.dead += n;
	st->d.oldest_recount = 1;
	st->d.dirty = 1;
	st->taken = 1;
	return 0;
}

int pobox_store_each_cell_in(struct pobox_store *st, int64_t profile, int64_t lo, int64_t hi,
                             const char *what, pobox_store_cell_fn fn, void *ctx)
{
	static const char sql[] =
		"SELECT seq, shape, cells, fates FROM writes WHERE profile = ?1 AND seq > ?2 AND seq <= ?3 "
		"ORDER BY seq";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	int rc = 0, r = SQLITE_DONE;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, profile);
	sqlite3_bind_int64(s, 2, lo);
	sqlite3_bind_int64(s, 3, hi);
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = pobox_store_each_cell(st, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
		                           (const char *)sqlite3_column_text(s, 2),
		                           (size_t)sqlite3_column_bytes(s, 2), sqlite3_column_int64(s, 3),
		                           fn, ctx);
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, what);
	return rc;
}
