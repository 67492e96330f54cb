/*
 * members.c - which profiles a batch holds.
 *
 * A batch lists its members in a row of its own (batch_members, a JSON
 * array of profile ids, ascending; no row: none) with the seq it was cut
 * at in the batch's row (batches.batch_seq); members
 * that leave it before it is final (a settled single call, a failed row)
 * are rows of batch_left.  So cutting a million profiles writes one list,
 * not a million profile rows, and completing the batch updates each
 * member's watermark once.
 *
 * A cut must skip (fence) the members of unfinished batches, and know the
 * seq they were cut at.  This module keeps, in memory, a 16-bit slot per
 * profile id (0: not fenced) naming the unfinished batch, built from the
 * batches' lists and rebuilt when tallies.batch_gen moves (triggers bump
 * it whenever a batch is inserted, changes state or members, or a member
 * leaves).  Two bytes a profile: 6 MB for three million.
 *
 * During a cut the members of each batch being filled are collected here
 * and written with the batch (pobox_store_members_flush).
 */
#include "alloc.h"
#include "cells.h"
#include "error.h"
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* For each profile id, 0 or the slot of the unfinished batch holding it. */
struct fence {
	int64_t gen;
	uint16_t *slot;
	size_t n;                /* profile ids covered */
	int64_t *batch_seq;      /* by slot (slot 0 unused) */
	int64_t *batch;
	size_t nslots;
};

struct cut_batch {
	int64_t batch;
	int64_t *ids;
	size_t n, cap;
	int64_t part;            /* next part of batch_members to write */
};

/* Ids per row of batch_members (~450 KB of JSON): a cut holds at most
 * this many of a batch's members in memory. */
#define MEMBERS_PART 65536

struct cut_members {
	struct cut_batch *b;
	size_t n, cap;
};

/* ---- reading lists --------------------------------------------------------- */

/* Decodes a JSON array of ids into a growing array. */
static int decode_ids(const char *text, size_t len, int64_t **ids, size_t *n, size_t *cap)
{
	struct pobox_cells_reader r;
	struct pobox_cell c;
	int k;
	if (pobox_cells_read_begin(&r, text, len, NULL) != 0)
		return -1;
	while ((k = pobox_cells_next(&r, &c)) == 1) {
		if (c.type != POBOX_CELL_INT)
			return -1;
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 256;
			int64_t *ni = pobox_realloc(*ids, nc * sizeof *ni);
			if (!ni)
				return POBOX_ENOMEM;
			*ids = ni;
			*cap = nc;
		}
		(*ids)[(*n)++] = c.i;
	}
	return k == 0 ? 0 : -1;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int pobox_store_members(struct pobox_store *st, int64_t batch, int64_t **ids, size_t *n)
{
	static const char list[] = "SELECT members FROM batch_members WHERE batch = ?1 ORDER BY part";
	static const char left[] = "SELECT profile FROM batch_left WHERE batch = ?1 ORDER BY profile";
	int64_t *v = NULL;
	size_t nv = 0, cap = 0;
	int rc = 0, r;
	sqlite3_stmt *s = pobox_store_prep(st, list);
	*ids = NULL;
	*n = 0;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, batch);
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = decode_ids((const char *)sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0),
		                &v, &nv, &cap);
	if (rc)
		r = SQLITE_DONE;
	sqlite3_reset(s);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "reading a batch's members");
	else if (rc == -1)
		rc = pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
		                "outbox %s: batch %lld lists malformed members; run `pobox doctor`",
		                st->path, (long long)batch);
	else if (rc)
		rc = pobox_errf(st->err, st->errlen, rc, "out of memory");
	if (rc == 0 && nv) {
		qsort(v, nv, sizeof *v, cmp_id);
		/* minus the ones that left (both ascending) */
		if (!(s = pobox_store_prep(st, left))) {
			rc = POBOX_EIO;
		} else {
			size_t w = 0, i = 0;
			sqlite3_bind_int64(s, 1, batch);
			while ((r = sqlite3_step(s)) == SQLITE_ROW) {
				int64_t gone = sqlite3_column_int64(s, 0);
				while (i < nv && v[i] < gone)
					v[w++] = v[i++];
				if (i < nv && v[i] == gone)
					i++;
			}
			while (i < nv)
				v[w++] = v[i++];
			nv = w;
			sqlite3_reset(s);
			if (r != SQLITE_DONE)
				rc = pobox_store_fail(st, r, "reading a batch's members");
		}
	}
	if (rc) {
		pobox_free(v);
		return rc;
	}
	*ids = v;
	*n = nv;
	return 0;
}

/* One row of batch_members: ids[0..n) as a JSON array. */
static int write_part(struct pobox_store *st, int64_t batch, int64_t part, const int64_t *ids,
                      size_t n)
{
	static const char sql[] = "INSERT OR REPLACE INTO batch_members (batch, part, members)"
	                          " VALUES (?1, ?2, ?3)";
	struct pobox_cells_buf b = {0};
	pobox_cells_open(&b);
	for (size_t i = 0; i < n; i++)
		pobox_cells_int(&b, ids[i]);
	pobox_cells_close(&b);
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	int rc;
	if (b.nomem || !s) {
		pobox_cells_buf_free(&b);
		return s ? pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory") : POBOX_EIO;
	}
	sqlite3_bind_int64(s, 1, batch);
	sqlite3_bind_int64(s, 2, part);
	sqlite3_bind_text(s, 3, b.s, (int)b.len, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	pobox_cells_buf_free(&b);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "writing a batch's members");
}

int pobox_store_members_set(struct pobox_store *st, int64_t batch, const int64_t *ids, size_t n)
{
	static const char clear[] = "DELETE FROM batch_members WHERE batch = ?1";
	int rc = pobox_store_run(st, clear, "writing a batch's members", 1, &batch, 0, NULL);
	for (size_t at = 0, part = 0; rc == 0 && at < n; at += MEMBERS_PART, part++)
		rc = write_part(st, batch, (int64_t)part, ids + at,
		                n - at < MEMBERS_PART ? n - at : MEMBERS_PART);
	return rc;
}

/* ---- the fence ----------------------------------------------------------- */

static void fence_free(struct fence *f)
{
	if (f) {
		pobox_free(f->slot);
		pobox_free(f->batch_seq);
		pobox_free(f->batch);
		pobox_free(f);
	}
}

static int fence_set(struct fence *f, int64_t id, uint16_t slot)
{
	if (id <= 0)
		return 0;
	if ((size_t)id >= f->n) {
		size_t n = f->n ? f->n : 4096;
		while (n <= (size_t)id)
			n *= 2;
		uint16_t *ns = pobox_realloc(f->slot, n * sizeof *ns);
		if (!ns)
			return POBOX_ENOMEM;
		memset(ns + f->n, 0, (n - f->n) * sizeof *ns);
		f->slot = ns;
		f->n = n;
	}
	f->slot[id] = slot;
	return 0;
}

static int current_batch_gen(struct pobox_store *st, int64_t *gen)
{
	if (pobox_store_in_tx(st)) {
		*gen = st->batch_gen;
		return 0;
	}
	return pobox_store_one(st, "SELECT batch_gen FROM tallies", "reading the tallies", 0, NULL, gen,
	                       NULL);
}

static int fence_build(struct pobox_store *st, int64_t gen)
{
	static const char sql[] =
		"SELECT id, batch_seq FROM batches WHERE state IN ('ready', 'sending', 'submitted') ORDER BY id";
	struct fence *f = pobox_calloc(1, sizeof *f);
	size_t cap = 0;
	int rc = 0, r;
	if (!f)
		return pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
	f->nslots = 1;
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s) {
		fence_free(f);
		return POBOX_EIO;
	}
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		if (f->nslots == 65535) {
			rc = pobox_errf(st->err, st->errlen, POBOX_EIO, "outbox %s: more than 65534 "
			                "unfinished batches; run `pobox doctor`", st->path);
			break;
		}
		if (f->nslots >= cap) {
			size_t c = cap ? cap * 2 : 16;
			int64_t *n = pobox_realloc(f->batch, c * sizeof *n);
			int64_t *q = pobox_realloc(f->batch_seq, c * sizeof *q);
			if (n)
				f->batch = n;
			if (q)
				f->batch_seq = q;
			if (!n || !q) {
				rc = pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
				break;
			}
			cap = c;
		}
		f->batch[f->nslots] = sqlite3_column_int64(s, 0);
		f->batch_seq[f->nslots++] = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "reading unfinished batches");
	for (size_t i = 1; i < f->nslots && rc == 0; i++) {
		int64_t *ids = NULL;
		size_t n = 0;
		if ((rc = pobox_store_members(st, f->batch[i], &ids, &n)) != 0)
			break;
		for (size_t k = 0; k < n && rc == 0; k++)
			if ((rc = fence_set(f, ids[k], (uint16_t)i)) != 0)
				rc = pobox_errf(st->err, st->errlen, rc, "out of memory");
		pobox_free(ids);
	}
	if (rc) {
		fence_free(f);
		return rc;
	}
	f->gen = gen;
	fence_free(st->fence);
	st->fence = f;
	return 0;
}

int pobox_store_fenced_by(struct pobox_store *st, int64_t profile, int64_t *batch,
                          int64_t *batch_seq)
{
	int64_t gen = 0;
	int rc = current_batch_gen(st, &gen);
	if (rc)
		return rc;
	if ((!st->fence || st->fence->gen != gen) && (rc = fence_build(st, gen)) != 0)
		return rc;
	const struct fence *f = st->fence;
	uint16_t k = profile > 0 && (size_t)profile < f->n ? f->slot[profile] : 0;
	*batch_seq = k ? f->batch_seq[k] : 0;
	if (batch)
		*batch = k ? f->batch[k] : 0;
	return 0;
}

int pobox_store_fenced(struct pobox_store *st, int64_t profile, int64_t *batch_seq)
{
	return pobox_store_fenced_by(st, profile, NULL, batch_seq);
}

/* ---- leaving ------------------------------------------------------------- */

int pobox_store_leave(struct pobox_store *st, int64_t batch, int64_t profile)
{
	static const char sql[] = "INSERT OR IGNORE INTO batch_left (batch, profile) VALUES (?1, ?2)";
	int64_t a[2] = {batch, profile};
	return pobox_store_run(st, sql, "recording a profile leaving its batch", 2, a, 0, NULL);
}

int pobox_store_hold(struct pobox_store *st, int64_t profile, int64_t since_ms)
{
	static const char sql[] =
		"INSERT INTO held (profile, since_ms) VALUES (?1, ?2) "
		"ON CONFLICT (profile) DO UPDATE SET since_ms = min(since_ms, ?2)";
	int64_t a[2] = {profile, since_ms};
	int rc = pobox_store_run(st, sql, "holding a profile back", 2, a, 0, NULL);
	if (rc == 0 && (st->d.oldest_add == 0 || since_ms < st->d.oldest_add)) {
		st->d.oldest_add = since_ms > 0 ? since_ms : 1;
		st->d.dirty = 1;
	}
	return rc;
}

struct count_ctx {
	int64_t lo, hi, n;
};

static int count_cell(void *ctx, int64_t seq, int64_t attr, const char *v, size_t len)
{
	struct count_ctx *c = ctx;
	(void)attr, (void)v, (void)len;
	if (seq > c->lo && seq <= c->hi)
		c->n++;
	return 0;
}

int pobox_store_cells_in(struct pobox_store *st, int64_t profile, int64_t lo, int64_t hi,
                         int64_t *n)
{
	struct count_ctx c = {lo, hi, 0};
	int rc = pobox_store_each_cell_in(st, profile, lo, hi, "counting updates", count_cell, &c);
	*n = c.n;
	return rc;
}

/* ---- a cut's members ----------------------------------------------------- */

void pobox_store_members_free(struct pobox_store *st)
{
	if (st->cm) {
		for (size_t i = 0; i < st->cm->n; i++)
			pobox_free(st->cm->b[i].ids);
		pobox_free(st->cm->b);
		pobox_free(st->cm);
		st->cm = NULL;
	}
	fence_free(st->fence);
	st->fence = NULL;
}

static struct cut_batch *cut_batch(struct pobox_store *st, int64_t batch, int create)
{
	if (!st->cm && (!create || !(st->cm = pobox_calloc(1, sizeof *st->cm))))
		return NULL;
	struct cut_members *m = st->cm;
	for (size_t i = 0; i < m->n; i++)
		if (m->b[i].batch == batch)
			return &m->b[i];
	if (!create)
		return NULL;
	if (m->n == m->cap) {
		size_t c = m->cap ? m->cap * 2 : 8;
		struct cut_batch *nb = pobox_realloc(m->b, c * sizeof *nb);
		if (!nb)
			return NULL;
		m->b = nb;
		m->cap = c;
	}
	m->b[m->n] = (struct cut_batch){batch, NULL, 0, 0, 0};
	return &m->b[m->n++];
}

int pobox_store_member_add(struct pobox_store *st, int64_t batch, int64_t profile)
{
	struct cut_batch *b = cut_batch(st, batch, 1);
	if (!b)
		return pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
	if (b->n == b->cap) {
		size_t c = b->cap ? b->cap * 2 : 1024;
		int64_t *ni = pobox_realloc(b->ids, c * sizeof *ni);
		if (!ni)
			return pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
		b->ids = ni;
		b->cap = c;
	}
	b->ids[b->n++] = profile;
	if (b->n < MEMBERS_PART)
		return 0;
	/* a part is full: to the outbox (the cut's transaction) */
	if (b->part == 0) {
		int rc = pobox_store_members_set(st, batch, NULL, 0);
		if (rc)
			return rc;
	}
	qsort(b->ids, b->n, sizeof *b->ids, cmp_id);
	b->n = 0;
	return write_part(st, batch, b->part++, b->ids, MEMBERS_PART);
}

int pobox_store_members_flush(struct pobox_store *st, int64_t batch)
{
	static const char seq[] = "UPDATE batches SET batch_seq = ?2 WHERE id = ?1";
	struct cut_batch *b = cut_batch(st, batch, 0);
	int rc = 0;
	if (!b)
		return 0; /* nothing collected: a rebuild keeps its members */
	qsort(b->ids, b->n, sizeof *b->ids, cmp_id);
	if (b->part == 0)
		rc = pobox_store_members_set(st, batch, b->ids, b->n);
	else if (b->n)
		rc = write_part(st, batch, b->part, b->ids, b->n);
	/* done with it: later batches may reuse the slot */
	pobox_free(b->ids);
	*b = st->cm->b[--st->cm->n];
	int64_t a[2] = {batch, st->cut_max};
	return rc ? rc : pobox_store_run(st, seq, "writing a batch's members", 2, a, 0, NULL);
}
