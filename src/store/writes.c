/*
 * writes.c - writes and their updates: appending, moving staged sqlite3
 * rows in, the pending scan a cut reads, superseding, dead-lettering and
 * fencing updates, folding delivered values into a profile's `sent`, and
 * pruning history.  Part of the store (see schema/0005_storage.sql for the
 * layout and its invariants, store.h for the contracts).
 *
 * An update is (write, position): seq = writes.seq + position, attribute =
 * the shape's id at that position, value = the cells element there.  A
 * write's updates are all above or all below any watermark (a cut takes
 * every write present when it begins), which is why watermarks compare
 * against writes.seq alone in the SQL here.
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

static const char SQL_WRITE[] =
	"INSERT INTO writes (seq, profile, shape, cells, n, enqueued_at_ms, source, urgent) "
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

static int insert_write(struct pobox_store *st, int64_t seq, int64_t profile, int64_t shape,
                        const char *cells, size_t cells_len, int64_t n, int64_t enqueued_at_ms,
                        int64_t source, int urgent)
{
	sqlite3_stmt *s = pobox_store_prep(st, SQL_WRITE);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_int64(s, 2, profile);
	sqlite3_bind_int64(s, 3, shape);
	sqlite3_bind_text(s, 4, cells, (int)cells_len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, n);
	sqlite3_bind_int64(s, 6, enqueued_at_ms);
	if (source > 0)
		sqlite3_bind_int64(s, 7, source);
	else
		sqlite3_bind_null(s, 7);
	sqlite3_bind_int(s, 8, urgent ? 1 : 0);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "appending a write");
}

/* The profile of a write: created, or marked pending. */
static int write_profile(struct pobox_store *st, enum pobox_id_type t, const char *id, size_t len,
                         struct pobox_profile_ref *ref, int64_t enqueued_at_ms)
{
	static const char mark[] =
		"UPDATE profiles SET pending_since_ms = ?2 WHERE id = ?1 AND pending_since_ms IS NULL";
	int rc = 0;
	if (ref->id == 0) {
		rc = pobox_store_profile_create(st, t, id, len, enqueued_at_ms, &ref->id);
	} else if (!ref->pending) {
		int64_t a[2] = {ref->id, enqueued_at_ms};
		rc = pobox_store_run(st, mark, "marking a profile pending", 2, a, 0, NULL);
	}
	if (rc == 0)
		ref->pending = 1;
	return rc;
}

int pobox_store_write(struct pobox_store *st, enum pobox_id_type t, const char *id, size_t len,
                      struct pobox_profile_ref *ref, int64_t shape, size_t width,
                      const char *cells, size_t cells_len, int64_t n, int64_t enqueued_at_ms,
                      int64_t source, int urgent, int64_t *first_seq)
{
	int rc = pobox_store_need_tx(st, "appending a write");
	if (rc || (rc = write_profile(st, t, id, len, ref, enqueued_at_ms)) != 0)
		return rc;
	int64_t seq = st->next_seq + st->d.seqs;
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
	    (rc = write_profile(st, (enum pobox_id_type)r->type, r->id, r->id_len, &ref, r->enq)) != 0)
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

/* ---- expanding a write into its updates -------------------------------- */

/* One profile's updates, copied out of SQLite (its text is only valid until
 * the next step).  Reused from profile to profile. */
struct group {
	size_t n, cap;
	int64_t *seq, *attr, *enq;
	int *urgent;
	size_t *len, *off, *order;
	const char **val;
	char *text;
	size_t text_len, text_cap;
	char *pid;
	size_t pid_len, pid_cap;
	/* sorted copies handed to the callback */
	int64_t *sseq, *sattr, *senq;
	int *surgent;
	size_t *slen;
};

static void group_free(struct group *g)
{
	void *p[] = {g->seq, g->attr, g->enq, g->urgent, g->len, g->off, g->order, g->val, g->text,
	             g->pid, g->sseq, g->sattr, g->senq, g->surgent, g->slen};
	for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
		pobox_free(p[i]);
}

static int grow(void **p, size_t elem, size_t cap)
{
	void *n = pobox_realloc(*p, elem * cap);
	if (!n)
		return POBOX_ENOMEM;
	*p = n;
	return 0;
}

static int group_reserve(struct group *g)
{
	if (g->n < g->cap)
		return 0;
	size_t c = g->cap ? g->cap * 2 : 16;
	if (grow((void **)&g->seq, sizeof *g->seq, c) || grow((void **)&g->attr, sizeof *g->attr, c) ||
	    grow((void **)&g->enq, sizeof *g->enq, c) || grow((void **)&g->urgent, sizeof *g->urgent, c) ||
	    grow((void **)&g->len, sizeof *g->len, c) || grow((void **)&g->off, sizeof *g->off, c) ||
	    grow((void **)&g->order, sizeof *g->order, c) || grow((void **)&g->val, sizeof *g->val, c) ||
	    grow((void **)&g->sseq, sizeof *g->sseq, c) || grow((void **)&g->sattr, sizeof *g->sattr, c) ||
	    grow((void **)&g->senq, sizeof *g->senq, c) ||
	    grow((void **)&g->surgent, sizeof *g->surgent, c) || grow((void **)&g->slen, sizeof *g->slen, c))
		return POBOX_ENOMEM;
	g->cap = c;
	return 0;
}

static int group_add(struct group *g, int64_t seq, int64_t attr, const char *v, size_t vl,
                     int urgent, int64_t enq)
{
	if (group_reserve(g))
		return POBOX_ENOMEM;
	if (g->text_len + vl + 1 > g->text_cap) {
		size_t c = g->text_cap ? g->text_cap : 4096;
		while (c < g->text_len + vl + 1)
			c *= 2;
		if (grow((void **)&g->text, 1, c))
			return POBOX_ENOMEM;
		g->text_cap = c;
	}
	memcpy(g->text + g->text_len, v, vl);
	g->text[g->text_len + vl] = '\0';
	g->off[g->n] = g->text_len;
	g->text_len += vl + 1;
	g->seq[g->n] = seq;
	g->attr[g->n] = attr;
	g->len[g->n] = vl;
	g->urgent[g->n] = urgent;
	g->enq[g->n] = enq;
	g->n++;
	return 0;
}

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
	if (pobox_cells_read_begin(&r, cells, cells_len, scratch) != 0)
		goto bad;
	for (size_t pos = 0; (k = pobox_cells_next(&r, &c)) == 1; pos++) {
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
	if (k == 0)
		return 0;
bad:
	return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
	                  "outbox %s: write %lld has malformed cells; run `pobox doctor`", st->path,
	                  (long long)seq);
}

struct add_ctx {
	struct group *g;
	int urgent;
	int64_t enq;
};

static int add_cell(void *ctx, int64_t seq, int64_t attr, const char *v, size_t len)
{
	struct add_ctx *a = ctx;
	return group_add(a->g, seq, attr, v, len, a->urgent, a->enq);
}

static const struct group *sort_group;

static int by_attr_seq(const void *x, const void *y)
{
	size_t i = *(const size_t *)x, j = *(const size_t *)y;
	const struct group *g = sort_group;
	if (g->attr[i] != g->attr[j])
		return g->attr[i] < g->attr[j] ? -1 : 1;
	return (g->seq[i] > g->seq[j]) - (g->seq[i] < g->seq[j]);
}

/* Fills p's arrays from g, sorted by attribute, then seq. */
static void group_hand_over(struct group *g, struct pobox_prow *p)
{
	for (size_t i = 0; i < g->n; i++)
		g->order[i] = i;
	sort_group = g;
	qsort(g->order, g->n, sizeof *g->order, by_attr_seq);
	for (size_t k = 0; k < g->n; k++) {
		size_t i = g->order[k];
		g->sseq[k] = g->seq[i];
		g->sattr[k] = g->attr[i];
		g->senq[k] = g->enq[i];
		g->surgent[k] = g->urgent[i];
		g->slen[k] = g->len[i];
		g->val[k] = g->text + g->off[i];
	}
	p->n = g->n;
	p->seq = g->sseq;
	p->attr = g->sattr;
	p->value = g->val;
	p->value_len = g->slen;
	p->urgent = g->surgent;
	p->enqueued_at_ms = g->senq;
	p->profile_id = g->pid;
	p->profile_id_len = g->pid_len;
}

/* ---- scanning ----------------------------------------------------------- */

#define SCAN_COLS                                                                              \
	"SELECT p.id, p.id_type, p.profile_id, p.done_seq, p.sent_seq,"                            \
	"       coalesce(p.last_v2_at_ms, -1), p.route_bulk, p.done_at_ms IS NOT NULL,"            \
	"       w.seq, w.shape, w.cells, w.urgent, w.enqueued_at_ms, w.fates "

static const char SQL_SCAN_PENDING[] =
	SCAN_COLS
	"FROM profiles p INDEXED BY profiles_pending "
	"JOIN writes w ON w.profile = p.id AND w.seq > p.done_seq "
	"WHERE p.pending_since_ms IS NOT NULL AND p.batch IS NULL AND p.next_attempt_at_ms <= ?1 "
	"ORDER BY p.id, w.seq";

static const char SQL_SCAN_BATCH[] =
	SCAN_COLS
	/* CROSS JOIN keeps profiles outside: the batch's profiles, then theirs */
	"FROM profiles p CROSS JOIN writes w ON w.profile = p.id AND w.seq > p.done_seq "
	"     AND w.seq <= p.batch_seq "
	"WHERE p.batch = ?1 "
	"ORDER BY p.id, w.seq";

static int start_profile(struct group *g, sqlite3_stmt *s, struct pobox_prow *p)
{
	p->profile = sqlite3_column_int64(s, 0);
	p->id_type = sqlite3_column_int(s, 1) == POBOX_ID_PCID ? POBOX_ID_PCID : POBOX_ID_THIRDPARTY;
	const char *pid = (const char *)sqlite3_column_text(s, 2);
	size_t pl = (size_t)sqlite3_column_bytes(s, 2);
	if (pl + 1 > g->pid_cap) {
		if (grow((void **)&g->pid, 1, pl + 1))
			return POBOX_ENOMEM;
		g->pid_cap = pl + 1;
	}
	memcpy(g->pid, pid ? pid : "", pl);
	g->pid[pl] = '\0';
	g->pid_len = pl;
	p->done_seq = sqlite3_column_int64(s, 3);
	p->sent_seq = sqlite3_column_int64(s, 4);
	p->last_v2_at_ms = sqlite3_column_int64(s, 5);
	p->route_bulk = sqlite3_column_int(s, 6);
	p->delivered_once = sqlite3_column_int(s, 7);
	return 0;
}

static int scan(struct pobox_store *st, const char *sql, int64_t arg, pobox_prow_fn fn, void *ctx)
{
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	struct group g = {0};
	struct pobox_prow p = {0};
	int rc = 0, r, have = 0;

	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, arg);
	for (;;) {
		r = sqlite3_step(s);
		int64_t id = r == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
		if (have && (r != SQLITE_ROW || id != p.profile)) {
			/* the previous profile is complete: hand it over */
			if (g.n) {
				group_hand_over(&g, &p);
				if ((rc = fn(ctx, &p)) != 0)
					goto out;
			}
			g.n = 0;
			g.text_len = 0;
			have = 0;
		}
		if (r == SQLITE_DONE)
			break;
		if (r != SQLITE_ROW) {
			rc = pobox_store_fail(st, r, "scanning updates");
			goto out;
		}
		if (!have) {
			if ((rc = start_profile(&g, s, &p)) != 0)
				goto out;
			have = 1;
		}
		struct add_ctx a = {&g, sqlite3_column_int(s, 11), sqlite3_column_int64(s, 12)};
		if ((rc = pobox_store_each_cell(st, sqlite3_column_int64(s, 8), sqlite3_column_int64(s, 9),
		                         (const char *)sqlite3_column_text(s, 10),
		                         (size_t)sqlite3_column_bytes(s, 10), sqlite3_column_int64(s, 13),
		                         add_cell, &a)) != 0)
			goto out;
	}
out:
	sqlite3_reset(s);
	group_free(&g);
	if (rc == POBOX_ENOMEM && !st->err[0])
		pobox_errf(st->err, st->errlen, rc, "out of memory scanning updates");
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

/* ---- delivered values ---------------------------------------------------- */

/* A profile's last delivered value per attribute, being merged. */
struct dval {
	int64_t attr, seq, at_ms;
	size_t off, len;   /* into dvals.text */
};

struct dvals {
	struct dval *v;
	size_t n, cap;
	char *text;
	size_t text_len, text_cap;
	int64_t at_ms;     /* delivery time for values of unfolded writes */
};

static void dvals_free(struct dvals *d)
{
	pobox_free(d->v);
	pobox_free(d->text);
}

/* Sets attr's value when seq is newer than what is there. */
static int dvals_put(struct dvals *d, int64_t attr, const char *s, size_t len, int64_t seq,
                     int64_t at_ms)
{
	size_t i;
	for (i = 0; i < d->n; i++)
		if (d->v[i].attr == attr)
			break;
	if (i < d->n && d->v[i].seq > seq)
		return 0;
	if (i == d->n) {
		if (d->n == d->cap) {
			size_t c = d->cap ? d->cap * 2 : 16;
			if (grow((void **)&d->v, sizeof *d->v, c))
				return POBOX_ENOMEM;
			d->cap = c;
		}
		d->n++;
	}
	if (d->text_len + len + 1 > d->text_cap) {
		size_t c = d->text_cap ? d->text_cap : 1024;
		while (c < d->text_len + len + 1)
			c *= 2;
		if (grow((void **)&d->text, 1, c))
			return POBOX_ENOMEM;
		d->text_cap = c;
	}
	memcpy(d->text + d->text_len, s, len);
	d->text[d->text_len + len] = '\0';
	d->v[i] = (struct dval){attr, seq, at_ms, d->text_len, len};
	d->text_len += len + 1;
	return 0;
}

static int dvals_cell(void *ctx, int64_t seq, int64_t attr, const char *v, size_t len)
{
	struct dvals *d = ctx;
	return dvals_put(d, attr, v, len, seq, d->at_ms);
}

/* Parses a sent array ([[attr, value, seq, at_ms], ...]) into d. */
static int dvals_from_sent(struct pobox_store *st, struct dvals *d, const char *sent, size_t len)
{
	struct pobox_cells_reader r, q;
	struct pobox_cell c, e[4];
	int k, rc;
	char *scratch = pobox_malloc(len + 1);
	if (!scratch)
		return pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
	if (pobox_cells_read_begin(&r, sent, len, NULL) != 0)
		goto bad;
	while ((k = pobox_cells_next(&r, &c)) == 1) {
		if (c.type != POBOX_CELL_ARRAY || pobox_cells_read_begin(&q, c.raw, c.raw_len, scratch) != 0)
			goto bad;
		int m = 0, kk;
		while (m < 4 && (kk = pobox_cells_next(&q, &e[m])) == 1)
			m++;
		if (m != 4 || pobox_cells_next(&q, &c) != 0 || e[0].type != POBOX_CELL_INT ||
		    e[1].type != POBOX_CELL_STR || e[2].type != POBOX_CELL_INT || e[3].type != POBOX_CELL_INT)
			goto bad;
		if ((rc = dvals_put(d, e[0].i, e[1].s, e[1].len, e[2].i, e[3].i)) != 0) {
			pobox_free(scratch);
			return pobox_errf(st->err, st->errlen, rc, "out of memory");
		}
	}
	pobox_free(scratch);
	if (k == 0)
		return 0;
	scratch = NULL;
bad:
	pobox_free(scratch);
	return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
	                  "outbox %s: a profile's delivered values are malformed; run `pobox doctor`",
	                  st->path);
}

/* The profile's delivered values: sent, overlaid by delivered writes in
 * (sent_seq, done_seq]. */
static int delivered_values(struct pobox_store *st, int64_t profile, int64_t done_seq,
                            int64_t sent_seq, struct dvals *d)
{
	static const char head[] = "SELECT sent, coalesce(done_at_ms, 0) FROM profiles WHERE id = ?1";
	static const char rows[] =
		"SELECT seq, shape, cells, fates FROM writes WHERE profile = ?1 AND seq > ?2 AND seq <= ?3 "
		"ORDER BY seq";
	sqlite3_stmt *s = pobox_store_prep(st, head);
	int rc = 0, r;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, profile);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		d->at_ms = sqlite3_column_int64(s, 1);
		if (sqlite3_column_type(s, 0) != SQLITE_NULL)
			rc = dvals_from_sent(st, d, (const char *)sqlite3_column_text(s, 0),
			                     (size_t)sqlite3_column_bytes(s, 0));
	}
	sqlite3_reset(s);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return pobox_store_fail(st, r, "reading delivered values");
	if (rc || done_seq <= sent_seq)
		return rc;
	if (!(s = pobox_store_prep(st, rows)))
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, profile);
	sqlite3_bind_int64(s, 2, sent_seq);
	sqlite3_bind_int64(s, 3, done_seq);
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = pobox_store_each_cell(st, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
		                           (const char *)sqlite3_column_text(s, 2),
		                           (size_t)sqlite3_column_bytes(s, 2), sqlite3_column_int64(s, 3),
		                           dvals_cell, d);
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "reading delivered values");
	return rc;
}

int pobox_store_last_delivered(struct pobox_store *st, int64_t profile, int64_t done_seq,
                               int64_t sent_seq,
                               int (*fn)(void *ctx, int64_t attr, const char *v, size_t len),
                               void *ctx)
{
	struct dvals d = {0};
	int rc = delivered_values(st, profile, done_seq, sent_seq, &d);
	for (size_t i = 0; i < d.n && rc == 0; i++)
		rc = fn(ctx, d.v[i].attr, d.text + d.v[i].off, d.v[i].len);
	dvals_free(&d);
	return rc;
}

static int by_attr(const void *x, const void *y)
{
	const struct dval *a = x, *b = y;
	return (a->attr > b->attr) - (a->attr < b->attr);
}

/* Rewrites sent from d (sorted by attribute) and sets sent_seq. */
static int save_sent(struct pobox_store *st, int64_t profile, struct dvals *d, int64_t sent_seq)
{
	static const char sql[] = "UPDATE profiles SET sent = ?2, sent_seq = ?3 WHERE id = ?1";
	struct pobox_cells_buf b = {0};
	qsort(d->v, d->n, sizeof *d->v, by_attr);
	pobox_cells_open(&b);
	for (size_t i = 0; i < d->n; i++) {
		pobox_cells_open(&b);
		pobox_cells_int(&b, d->v[i].attr);
		pobox_cells_str(&b, d->text + d->v[i].off, d->v[i].len);
		pobox_cells_int(&b, d->v[i].seq);
		pobox_cells_int(&b, d->v[i].at_ms);
		pobox_cells_close(&b);
	}
	pobox_cells_close(&b);
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	int rc;
	if (b.nomem || !s) {
		pobox_cells_buf_free(&b);
		return s ? pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory") : POBOX_EIO;
	}
	sqlite3_bind_int64(s, 1, profile);
	if (d->n)
		sqlite3_bind_text(s, 2, b.s, (int)b.len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 2);
	sqlite3_bind_int64(s, 3, sent_seq);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	pobox_cells_buf_free(&b);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "folding delivered values");
}

/* Folds the delivered writes in (sent_seq, done_seq] into sent. */
static int fold(struct pobox_store *st, int64_t profile, int64_t done_seq, int64_t sent_seq)
{
	struct dvals d = {0};
	int rc = delivered_values(st, profile, done_seq, sent_seq, &d);
	if (rc == 0)
		rc = save_sent(st, profile, &d, done_seq);
	dvals_free(&d);
	return rc;
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

/* pending_since_ms from the profile's writes above its watermark. */
static int repend(struct pobox_store *st, int64_t profile)
{
	static const char sql[] =
		"UPDATE profiles SET pending_since_ms = (SELECT min(w.enqueued_at_ms) FROM writes w"
		" WHERE w.profile = profiles.id AND w.n > w.fates AND w.seq > max(profiles.done_seq,"
		"  CASE WHEN profiles.batch IS NOT NULL THEN profiles.batch_seq ELSE 0 END)) WHERE id = ?1";
	return pobox_store_run(st, sql, "updating the pending set", 1, &profile, 0, NULL);
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
	return repend(st, profile);
}

int pobox_store_fence(struct pobox_store *st, const struct pobox_prow *p, int64_t batch,
                      int64_t batch_seq, int64_t cells)
{
	static const char sql[] =
		"UPDATE profiles SET batch = ?2, batch_seq = ?3, batch_cells = ?4, pending_since_ms = NULL "
		"WHERE id = ?1";
	int rc = pobox_store_need_tx(st, "fencing a profile");
	if (rc == 0 && p->done_seq > p->sent_seq)
		rc = fold(st, p->profile, p->done_seq, p->sent_seq);
	int64_t a[4] = {p->profile, batch, batch_seq, cells};
	if (rc || (rc = pobox_store_run(st, sql, "fencing a profile", 4, a, 0, NULL)) != 0)
		return rc;
	st->d.pending -= cells;
	st->d.batched += cells;
	st->d.oldest_recount = 1;
	st->d.dirty = 1;
	return 0;
}

/* ---- housekeeping -------------------------------------------------------- */

int pobox_store_prune(struct pobox_store *st, int64_t cutoff_ms, int64_t limit, int64_t *cursor,
                      int64_t *pruned)
{
	/* Oldest writes first.  Deletable: no dead update, and either all
	 * delivered before the cutoff (seq <= done_seq, the profile last
	 * delivered before it; superseded ones among them too) or all
	 * superseded and enqueued before it.  The profile's delivered values
	 * are folded into `sent` first. */
	static const char pick[] =
		"SELECT w.seq, w.profile, w.n, w.fates, json_array_length(w.cells), p.done_seq, p.sent_seq,"
		"       coalesce(p.done_at_ms, 0),"
		"       (SELECT count(*) FROM fates f WHERE f.seq >= w.seq"
		"        AND f.seq < w.seq + json_array_length(w.cells) AND f.state = 'dead') "
		"FROM writes w JOIN profiles p ON p.id = w.profile "
		"WHERE w.enqueued_at_ms < ?1 AND w.seq > ?2 ORDER BY w.seq LIMIT ?3";
	static const char del_w[] = "DELETE FROM writes WHERE seq = ?1";
	static const char del_f[] = "DELETE FROM fates WHERE seq >= ?1 AND seq < ?2";
	enum { CHUNK = 512 };
	struct cand {
		int64_t seq, profile, n, fates, width, done, sent, done_at, dead;
	} *c = pobox_malloc(CHUNK * sizeof *c);
	int64_t after = *cursor, examined = 0;
	int done = 0;
	int rc = pobox_store_need_tx(st, "pruning");
	*pruned = 0;
	if (!c)
		return pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
	while (rc == 0 && examined < limit) {
		sqlite3_stmt *s = pobox_store_prep(st, pick);
		size_t n = 0;
		int r;
		if (!s) {
			rc = POBOX_EIO;
			break;
		}
		int64_t a[3] = {cutoff_ms, after, CHUNK};
		for (int i = 0; i < 3; i++)
			sqlite3_bind_int64(s, i + 1, a[i]);
		while ((r = sqlite3_step(s)) == SQLITE_ROW && n < CHUNK) {
			struct cand *x = &c[n++];
			x->seq = sqlite3_column_int64(s, 0);
			x->profile = sqlite3_column_int64(s, 1);
			x->n = sqlite3_column_int64(s, 2);
			x->fates = sqlite3_column_int64(s, 3);
			x->width = sqlite3_column_int64(s, 4);
			x->done = sqlite3_column_int64(s, 5);
			x->sent = sqlite3_column_int64(s, 6);
			x->done_at = sqlite3_column_int64(s, 7);
			x->dead = sqlite3_column_int64(s, 8);
		}
		sqlite3_reset(s);
		if (r != SQLITE_ROW && r != SQLITE_DONE) {
			rc = pobox_store_fail(st, r, "choosing what to prune");
			break;
		}
		for (size_t i = 0; i < n && rc == 0; i++) {
			const struct cand *x = &c[i];
			after = x->seq;
			examined++;
			int delivered = x->seq <= x->done;
			if (x->dead || (delivered && x->done_at >= cutoff_ms) ||
			    (!delivered && x->fates < x->n))
				continue;
			int folded = delivered && x->seq > x->sent;
			if (folded)
				rc = fold(st, x->profile, x->done, x->sent);
			int64_t b[2] = {x->seq, x->seq + x->width};
			if (rc == 0)
				rc = pobox_store_run(st, del_w, "pruning a write", 1, b, 0, NULL);
			if (rc == 0 && x->fates)
				rc = pobox_store_run(st, del_f, "pruning a write", 2, b, 0, NULL);
			if (rc == 0) {
				if (delivered)
					st->d.delivered -= x->n - x->fates;
				st->d.superseded -= x->fates;
				st->d.dirty = 1;
				*pruned += x->n;
			}
			/* the profile's sent_seq moved: later writes of it see that */
			for (size_t j = i + 1; j < n && rc == 0 && folded; j++)
				if (c[j].profile == x->profile && c[j].sent < x->done)
					c[j].sent = x->done;
		}
		if (n < CHUNK) {
			done = 1;
			break;
		}
	}
	pobox_free(c);
	if (rc == 0)
		*cursor = done ? 0 : after;
	return rc;
}
