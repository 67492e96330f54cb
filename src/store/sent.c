/*
 * sent.c - what Target has been sent: a profile's last delivered values
 * (the `sent` row, overlaid by delivered writes not folded into it yet),
 * folding them, and pruning delivered history.  Part of the store; see
 * schema/0006_storage.sql (invariant 5) and store.h.
 *
 * Folding keeps a value's delivery time exact: a profile's delivered
 * writes above sent_seq were all delivered by its last delivery (done_at),
 * because every cut folds a profile before it can be delivered again
 * (pobox_store_cut_profile).
 */
#include "alloc.h"
#include "cells.h"
#include "error.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static int grow(void **p, size_t elem, size_t cap)
{
	void *n = pobox_realloc(*p, elem * cap);
	if (!n)
		return POBOX_ENOMEM;
	*p = n;
	return 0;
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
	static const char head[] =
		"SELECT (SELECT cells FROM sent WHERE profile = ?1), coalesce(done_at_ms, 0) FROM profiles WHERE id = ?1";
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
	return pobox_store_each_cell_in(st, profile, sent_seq, done_seq, "reading delivered values",
	                                dvals_cell, d);
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

int pobox_store_delivered_each(struct pobox_store *st, int64_t profile, int64_t done_seq,
                               int64_t sent_seq, pobox_store_dval_fn fn, void *ctx)
{
	struct dvals d = {0};
	int rc = delivered_values(st, profile, done_seq, sent_seq, &d);
	for (size_t i = 0; i < d.n && rc == 0; i++)
		rc = fn(ctx, d.v[i].attr, d.text + d.v[i].off, d.v[i].len, d.v[i].seq, d.v[i].at_ms);
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
	static const char seq[] = "UPDATE profiles SET sent_seq = ?2 WHERE id = ?1";
	static const char put[] =
		"INSERT INTO sent (profile, cells) VALUES (?1, ?2) ON CONFLICT (profile) DO UPDATE SET cells = ?2";
	static const char drop[] = "DELETE FROM sent WHERE profile = ?1";
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
	int rc = b.nomem ? pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory") : 0;
	if (rc == 0 && d->n) {
		sqlite3_stmt *s = pobox_store_prep(st, put);
		if (!s) {
			rc = POBOX_EIO;
		} else {
			sqlite3_bind_int64(s, 1, profile);
			sqlite3_bind_text(s, 2, b.s, (int)b.len, SQLITE_STATIC);
			int r = sqlite3_step(s);
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			if (r != SQLITE_DONE)
				rc = pobox_store_fail(st, r, "folding delivered values");
		}
	} else if (rc == 0) {
		rc = pobox_store_run(st, drop, "folding delivered values", 1, &profile, 0, NULL);
	}
	pobox_cells_buf_free(&b);
	int64_t a[2] = {profile, sent_seq};
	return rc ? rc : pobox_store_run(st, seq, "folding delivered values", 2, a, 0, NULL);
}

int pobox_store_fold(struct pobox_store *st, int64_t profile, int64_t done_seq, int64_t sent_seq)
{
	struct dvals d = {0};
	int rc = delivered_values(st, profile, done_seq, sent_seq, &d);
	if (rc == 0)
		rc = save_sent(st, profile, &d, done_seq);
	dvals_free(&d);
	return rc;
}

/* ---- pruning history -------------------------------------------------------- */

static int prune(struct pobox_store *st, int64_t cutoff_ms, int delivered_only, int64_t limit,
                 int64_t *cursor, int64_t *pruned)
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
			    (!delivered && (delivered_only || x->fates < x->n)))
				continue;
			int folded = delivered && x->seq > x->sent;
			if (folded)
				rc = pobox_store_fold(st, x->profile, x->done, x->sent);
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
		rc = pobox_store_prune_batches(st, cutoff_ms);
	if (rc == 0)
		*cursor = done ? 0 : after;
	return rc;
}

int pobox_store_prune(struct pobox_store *st, int64_t cutoff_ms, int64_t limit, int64_t *cursor,
                      int64_t *pruned)
{
	return prune(st, cutoff_ms, 0, limit, cursor, pruned);
}

int pobox_store_prune_delivered(struct pobox_store *st, int64_t limit, int64_t *cursor,
                                int64_t *pruned)
{
	return prune(st, INT64_MAX, 1, limit, cursor, pruned);
}
