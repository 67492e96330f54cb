/*
 * verify.c - what Target was sent, per profile, and the record of each
 * verification.  Part of the store; see store.h ("verification") and
 * schema/0007_verify.sql.  The comparison itself is verify.c in src/.
 *
 * What was sent of a profile:
 *
 *   delivered   its last delivered value per attribute (sent.c: the folded
 *               `sent` row overlaid by delivered writes above sent_seq), each
 *               with the time Target confirmed it
 *   in flight   when it is a member of a bulk batch in state `submitted`
 *               (Target took the batch and has not reported it complete):
 *               the live updates that batch carries, (done_seq, batch_seq],
 *               newest per attribute, over the delivered ones, sent when the
 *               batch was submitted
 *
 * A batch that is ready or sending has not reached Target: its values do
 * not count yet, the delivered ones do.  Single-lane batches are final
 * within a call's time and are not looked at.
 *
 * Choosing profiles streams the candidates once (the profiles with a
 * delivery, then the members of submitted batches never delivered before;
 * or one batch's members) through a reservoir of the sample's size, so
 * memory is the sample, not the outbox.
 */
#include "alloc.h"
#include "cells.h"
#include "error.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const pobox_verify_class_names[POBOX_VC_COUNT] = {
	"matching", "not_yet_applied", "different", "missing",
};

/* ---- submitted batches --------------------------------------------------- */

struct subs {
	int64_t *id, *at_ms;   /* bulk batches in state submitted, ascending id */
	size_t n;
};

static void subs_free(struct subs *s)
{
	pobox_free(s->id);
	pobox_free(s->at_ms);
}

static int subs_load(struct pobox_store *st, struct subs *out)
{
	static const char sql[] =
		"SELECT id, coalesce(submitted_at_ms, 0) FROM batches "
		"WHERE lane = 'bulk' AND state = 'submitted' ORDER BY id";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	size_t cap = 0;
	int r, rc = 0;
	memset(out, 0, sizeof *out);
	if (!s)
		return POBOX_EIO;
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW) {
		if (out->n == cap) {
			size_t c = cap ? cap * 2 : 16;
			int64_t *a = pobox_realloc(out->id, c * sizeof *a);
			if (a)
				out->id = a;
			int64_t *b = a ? pobox_realloc(out->at_ms, c * sizeof *b) : NULL;
			if (!b) {
				rc = pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
				break;
			}
			out->at_ms = b;
			cap = c;
		}
		out->id[out->n] = sqlite3_column_int64(s, 0);
		out->at_ms[out->n++] = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "reading submitted batches");
	if (rc)
		subs_free(out);
	return rc;
}

/* When profile is in one of the submitted batches: 1, with that batch's
 * submit time and cut seq.  0 when not, negative on error. */
static int in_flight(struct pobox_store *st, const struct subs *subs, int64_t profile,
                     int64_t *at_ms, int64_t *batch_seq)
{
	int64_t batch = 0, seq = 0;
	int rc = pobox_store_fenced_by(st, profile, &batch, &seq);
	if (rc)
		return rc;
	for (size_t i = 0; batch && i < subs->n; i++) {
		if (subs->id[i] == batch) {
			*at_ms = subs->at_ms[i];
			*batch_seq = seq;
			return 1;
		}
	}
	return 0;
}

/* ---- choosing profiles --------------------------------------------------- */

struct pick {
	const struct pobox_verify_sel *sel;
	struct subs subs;
	int64_t *res;
	size_t n, cap;
	int64_t seen;
	uint64_t rng;
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A profile that matched: into the reservoir (algorithm R). */
static int take(struct pobox_store *st, struct pick *pk, int64_t id)
{
	int64_t k = pk->sel->sample;
	pk->seen++;
	if (k > 0 && (int64_t)pk->n >= k) {
		uint64_t j = splitmix(&pk->rng) % (uint64_t)pk->seen;
		if (j < (uint64_t)k)
			pk->res[j] = id;
		return 0;
	}
	if (pk->n == pk->cap) {
		size_t c = pk->cap ? pk->cap * 2 : 64;
		int64_t *r = pobox_realloc(pk->res, c * sizeof *r);
		if (!r)
			return pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
		pk->res = r;
		pk->cap = c;
	}
	pk->res[pk->n++] = id;
	return 0;
}

/* A candidate with its last delivery (done_at_ms, 0: none): taken when
 * something of it was sent, at or after since_ms. */
static int consider(struct pobox_store *st, struct pick *pk, int64_t id, int64_t done_seq,
                    int64_t done_at_ms)
{
	int64_t since = pk->sel->since_ms, at = done_seq > 0 ? done_at_ms : -1, fat = 0, fseq = 0;
	if (at < 0 || (since > 0 && at < since)) {
		int k = in_flight(st, &pk->subs, id, &fat, &fseq);
		if (k < 0)
			return k;
		if (k && fat > at)
			at = fat;
	}
	if (at < 0 || (since > 0 && at < since))
		return 0;
	return take(st, pk, id);
}

/* A profile's delivery watermark: *found = 0 when there is no such profile. */
static int profile_done(struct pobox_store *st, int64_t id, int64_t *done_seq, int64_t *done_at,
                        int *found)
{
	static const char sql[] = "SELECT done_seq, coalesce(done_at_ms, 0) FROM profiles WHERE id = ?1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, id);
	int r = sqlite3_step(s);
	*found = r == SQLITE_ROW;
	if (*found) {
		*done_seq = sqlite3_column_int64(s, 0);
		*done_at = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : pobox_store_fail(st, r, "reading a profile");
}

/* Every id listed for batch (all its member parts, those that left
 * included: a single call's profiles leave as they settle). */
static int each_member(struct pobox_store *st, int64_t batch, struct pick *pk,
                       int (*fn)(struct pobox_store *, struct pick *, int64_t), int64_t *listed)
{
	static const char sql[] = "SELECT members FROM batch_members WHERE batch = ?1 ORDER BY part";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc = 0, r;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, batch);
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW) {
		struct pobox_cells_reader rd;
		struct pobox_cell c;
		int k;
		if (pobox_cells_read_begin(&rd, (const char *)sqlite3_column_text(s, 0),
		                           (size_t)sqlite3_column_bytes(s, 0), NULL) != 0) {
			rc = -1;
			break;
		}
		while (rc == 0 && (k = pobox_cells_next(&rd, &c)) == 1) {
			if (c.type != POBOX_CELL_INT) {
				rc = -1;
			} else if (n == cap) {
				size_t nc = cap ? cap * 2 : 256;
				int64_t *ni = pobox_realloc(ids, nc * sizeof *ni);
				if (!ni)
					rc = POBOX_ENOMEM;
				else
					ids = ni, cap = nc;
			}
			if (rc == 0)
				ids[n++] = c.i;
		}
		if (rc == 0 && k != 0)
			rc = -1;
	}
	if (rc)
		r = SQLITE_DONE;
	sqlite3_reset(s);
	if (r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "reading a batch's members");
	else if (rc == -1)
		rc = pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
		                "outbox %s: batch %lld lists malformed members; run `pobox doctor`", st->path,
		                (long long)batch);
	else if (rc == POBOX_ENOMEM)
		rc = pobox_errf(st->err, st->errlen, rc, "out of memory");
	/* the statement is done before fn runs queries of its own */
	*listed = (int64_t)n;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = fn(st, pk, ids[i]);
	pobox_free(ids);
	return rc;
}

static int consider_member(struct pobox_store *st, struct pick *pk, int64_t id)
{
	int64_t done_seq = 0, done_at = 0;
	int found = 0, rc = profile_done(st, id, &done_seq, &done_at, &found);
	return rc || !found ? rc : consider(st, pk, id, done_seq, done_at);
}

/* Members of submitted batches that were never delivered before (those
 * that were came with the scan). */
static int consider_fresh(struct pobox_store *st, struct pick *pk, int64_t id)
{
	int64_t done_seq = 0, done_at = 0;
	int found = 0, rc = profile_done(st, id, &done_seq, &done_at, &found);
	return rc || !found || done_seq > 0 ? rc : consider(st, pk, id, 0, 0);
}

static int pick_all(struct pobox_store *st, struct pick *pk)
{
	static const char sql[] =
		"SELECT id, done_seq, coalesce(done_at_ms, 0) FROM profiles WHERE done_seq > 0 ORDER BY id";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	int rc = 0, r;
	int64_t listed;
	if (!s)
		return POBOX_EIO;
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = consider(st, pk, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
		              sqlite3_column_int64(s, 2));
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "choosing profiles to verify");
	for (size_t i = 0; i < pk->subs.n && rc == 0; i++)
		rc = each_member(st, pk->subs.id[i], pk, consider_fresh, &listed);
	return rc;
}

/* One batch's members: the batch must be one Target took. */
static int pick_batch(struct pobox_store *st, struct pick *pk, int64_t batch)
{
	static const char sql[] = "SELECT state, parent FROM batches WHERE id = ?1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	char state[16] = "";
	int64_t listed = 0;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, batch);
	int r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		snprintf(state, sizeof state, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return pobox_store_fail(st, r, "reading a batch");
	if (r == SQLITE_DONE)
		return pobox_errf(st->err, st->errlen, POBOX_ENOTFOUND, "there is no batch %lld (see pobox batches)",
		                  (long long)batch);
	if (strcmp(state, "split") == 0 || strcmp(state, "replaced") == 0)
		return pobox_errf(st->err, st->errlen, POBOX_EINVALID,
		                  "batch %lld was %s: verify the batches made from it (pobox batches lists "
		                  "them with their parent)", (long long)batch, state);
	if (strcmp(state, "submitted") != 0 && strcmp(state, "done") != 0)
		return pobox_errf(st->err, st->errlen, POBOX_EINVALID,
		                  "batch %lld is %s: Target has not taken it, so there is nothing to verify",
		                  (long long)batch, state);
	int rc = each_member(st, batch, pk, consider_member, &listed);
	if (rc == 0 && listed == 0)
		return pobox_errf(st->err, st->errlen, POBOX_EINVALID,
		                  "batch %lld finished before the retention period: its list of profiles "
		                  "is gone (use --since or --id instead)", (long long)batch);
	return rc;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int pobox_store_verify_pick(struct pobox_store *st, const struct pobox_verify_sel *sel,
                            int64_t **ids, size_t *n, int64_t *population)
{
	struct pick pk = {.sel = sel, .rng = sel->seed};
	int rc = subs_load(st, &pk.subs);
	*ids = NULL;
	*n = 0;
	*population = 0;
	if (rc == 0 && sel->profile > 0)
		rc = consider_member(st, &pk, sel->profile);
	else if (rc == 0 && sel->batch > 0)
		rc = pick_batch(st, &pk, sel->batch);
	else if (rc == 0)
		rc = pick_all(st, &pk);
	/* a batch lists a profile once; the two passes of pick_all never
	 * take one twice (consider_fresh skips delivered ones) */
	subs_free(&pk.subs);
	if (rc) {
		pobox_free(pk.res);
		return rc;
	}
	if (pk.n)
		qsort(pk.res, pk.n, sizeof *pk.res, cmp_id);
	*ids = pk.res;
	*n = pk.n;
	*population = pk.seen;
	return 0;
}

/* ---- what was sent of one profile ---------------------------------------- */

struct sent_acc {
	struct pobox_store *st;
	struct pobox_sent_profile *p;
	int64_t *attr, *seq;      /* by index of p->v */
	size_t cap;
	int in_flight;
	int64_t at_ms;            /* for in-flight values */
};

/* Sets attr's value (the newer seq wins). */
static int acc_put(struct sent_acc *a, int64_t attr, const char *v, size_t len, int64_t seq,
                   int64_t at_ms, int in_flight)
{
	struct pobox_sent_profile *p = a->p;
	size_t i;
	for (i = 0; i < p->n && a->attr[i] != attr; i++)
		;
	if (i < p->n && a->seq[i] > seq)
		return 0;
	if (i == p->n) {
		if (p->n == a->cap) {
			/* cap grows only once all three have: each is at least that big */
			size_t c = a->cap ? a->cap * 2 : 16;
			struct pobox_sent_value *nv = pobox_realloc(p->v, c * sizeof *nv);
			if (!nv)
				return POBOX_ENOMEM;
			p->v = nv;
			int64_t *na = pobox_realloc(a->attr, c * sizeof *na);
			if (!na)
				return POBOX_ENOMEM;
			a->attr = na;
			int64_t *ns = pobox_realloc(a->seq, c * sizeof *ns);
			if (!ns)
				return POBOX_ENOMEM;
			a->seq = ns;
			a->cap = c;
		}
		memset(&p->v[i], 0, sizeof p->v[i]);
		p->n++;
	}
	char *copy = pobox_malloc(len + 1);
	if (!copy)
		return POBOX_ENOMEM;
	memcpy(copy, v, len);
	copy[len] = '\0';
	pobox_free(p->v[i].value);
	p->v[i].value = copy;
	p->v[i].value_len = len;
	p->v[i].sent_at_ms = at_ms;
	p->v[i].in_flight = in_flight;
	a->attr[i] = attr;
	a->seq[i] = seq;
	return 0;
}

static int acc_delivered(void *ctx, int64_t attr, const char *v, size_t len, int64_t seq,
                         int64_t at_ms)
{
	struct sent_acc *a = ctx;
	return acc_put(a, attr, v, len, seq, at_ms, 0);
}

static int acc_cell(void *ctx, int64_t seq, int64_t attr, const char *v, size_t len)
{
	struct sent_acc *a = ctx;
	return acc_put(a, attr, v, len, seq, a->at_ms, 1);
}

/* The live updates of profile in (lo, hi], as in flight since at_ms. */
static int acc_in_flight(struct sent_acc *a, int64_t profile, int64_t lo, int64_t hi)
{
	return pobox_store_each_cell_in(a->st, profile, lo, hi, "reading a batch's updates", acc_cell, a);
}

/* Names the attributes (they were ids). */
static int acc_names(struct sent_acc *a)
{
	static const char sql[] = "SELECT name FROM attributes WHERE id = ?1";
	struct pobox_store *st = a->st;
	for (size_t i = 0; i < a->p->n; i++) {
		sqlite3_stmt *s = pobox_store_prep(st, sql);
		if (!s)
			return POBOX_EIO;
		sqlite3_bind_int64(s, 1, a->attr[i]);
		int r = sqlite3_step(s);
		if (r == SQLITE_ROW)
			a->p->v[i].attr = pobox_strdup((const char *)sqlite3_column_text(s, 0));
		sqlite3_reset(s);
		if (r != SQLITE_ROW && r != SQLITE_DONE)
			return pobox_store_fail(st, r, "reading attribute names");
		if (r == SQLITE_DONE)
			return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
			                  "outbox %s: attribute %lld has no name; run `pobox doctor`", st->path,
			                  (long long)a->attr[i]);
		if (!a->p->v[i].attr)
			return POBOX_ENOMEM;
	}
	return 0;
}

static int by_name(const void *x, const void *y)
{
	const struct pobox_sent_value *a = x, *b = y;
	return strcmp(a->attr, b->attr);
}

void pobox_sent_profile_free(struct pobox_sent_profile *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		pobox_free(p->v[i].attr);
		pobox_free(p->v[i].value);
	}
	pobox_free(p->v);
	pobox_free(p->profile_id);
	memset(p, 0, sizeof *p);
}

int pobox_store_verify_sent(struct pobox_store *st, int64_t profile, struct pobox_sent_profile *out)
{
	static const char sql[] =
		"SELECT id_type, profile_id, done_seq, sent_seq FROM profiles WHERE id = ?1";
	struct sent_acc a = {.st = st, .p = out};
	struct subs subs = {0};
	int64_t done_seq = 0, sent_seq = 0, bseq = 0;
	int rc = 0, r, k;
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	memset(out, 0, sizeof *out);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, profile);
	if ((r = sqlite3_step(s)) == SQLITE_ROW) {
		out->id = profile;
		out->id_type = (enum pobox_id_type)sqlite3_column_int(s, 0);
		out->profile_id = pobox_strdup((const char *)sqlite3_column_text(s, 1));
		done_seq = sqlite3_column_int64(s, 2);
		sent_seq = sqlite3_column_int64(s, 3);
		if (!out->profile_id)
			rc = POBOX_ENOMEM;
	}
	sqlite3_reset(s);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return pobox_store_fail(st, r, "reading a profile");
	if (r == SQLITE_DONE)
		return pobox_errf(st->err, st->errlen, POBOX_ENOTFOUND, "no profile %lld in the outbox",
		                  (long long)profile);
	if (rc == 0 && done_seq > 0)
		rc = pobox_store_delivered_each(st, profile, done_seq, sent_seq, acc_delivered, &a);
	if (rc == 0)
		rc = subs_load(st, &subs);
	if (rc == 0 && (k = in_flight(st, &subs, profile, &a.at_ms, &bseq)) != 0)
		rc = k < 0 ? k : acc_in_flight(&a, profile, done_seq, bseq);
	if (rc == 0)
		rc = acc_names(&a);
	subs_free(&subs);
	pobox_free(a.attr);
	pobox_free(a.seq);
	if (rc == POBOX_ENOMEM)
		rc = pobox_errf(st->err, st->errlen, rc, "out of memory");
	if (rc) {
		pobox_sent_profile_free(out);
		return rc;
	}
	if (out->n)
		qsort(out->v, out->n, sizeof *out->v, by_name);
	return 0;
}

/* ---- the record ---------------------------------------------------------- */

static void bind_age(sqlite3_stmt *s, int i, int64_t v)
{
	if (v < 0)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_int64(s, i, v);
}

static int save_run(struct pobox_store *st, struct pobox_verify_record *r)
{
	static const char sql[] =
		"INSERT INTO verifications (started_at_ms, finished_at_ms, selection, grace_ms, population,"
		" profiles, fetch_errors, matching, not_yet_applied, different, missing,"
		" matching_min_age_ms, matching_max_age_ms, not_yet_applied_min_age_ms,"
		" not_yet_applied_max_age_ms, different_min_age_ms, different_max_age_ms,"
		" missing_min_age_ms, missing_max_age_ms, interrupted, exit_code)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
		" ?19, ?20, ?21)";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	int64_t a[] = {r->started_at_ms, r->finished_at_ms};
	sqlite3_bind_int64(s, 1, a[0]);
	sqlite3_bind_int64(s, 2, a[1]);
	sqlite3_bind_text(s, 3, r->selection, -1, SQLITE_STATIC);
	int64_t b[] = {r->grace_ms, r->population, r->profiles, r->fetch_errors};
	for (int i = 0; i < 4; i++)
		sqlite3_bind_int64(s, 4 + i, b[i]);
	for (int c = 0; c < POBOX_VC_COUNT; c++) {
		sqlite3_bind_int64(s, 8 + c, r->count[c]);
		bind_age(s, 12 + 2 * c, r->min_age_ms[c]);
		bind_age(s, 13 + 2 * c, r->max_age_ms[c]);
	}
	sqlite3_bind_int(s, 20, r->interrupted);
	sqlite3_bind_int(s, 21, r->exit_code);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return pobox_store_fail(st, rc, "recording a verification");
	r->id = sqlite3_last_insert_rowid(st->db);
	return 0;
}

static int save_finding(struct pobox_store *st, int64_t run, int64_t n,
                        const struct pobox_verify_finding *f)
{
	static const char sql[] =
		"INSERT INTO verify_findings (verification, n, class, why, id_type, profile_id, attr, sent,"
		" sent_at_ms, in_flight, target, target_modified_at_ms)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, run);
	sqlite3_bind_int64(s, 2, n);
	sqlite3_bind_text(s, 3, pobox_verify_class_names[f->cls], -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, f->why, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, f->id_type == POBOX_ID_PCID ? "pcId" : "thirdPartyId", -1,
	                  SQLITE_STATIC);
	sqlite3_bind_text(s, 6, f->profile_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, f->attr, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 8, f->sent, (int)f->sent_len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 9, f->sent_at_ms);
	sqlite3_bind_int(s, 10, f->in_flight);
	if (f->target)
		sqlite3_bind_text(s, 11, f->target, (int)f->target_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 11);
	bind_age(s, 12, f->target_modified_at_ms);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "recording a verification's findings");
}

int pobox_store_verify_save(struct pobox_store *st, struct pobox_verify_record *r,
                            const struct pobox_verify_finding *f, size_t nf)
{
	static const char old_f[] =
		"DELETE FROM verify_findings WHERE verification <= ?1";
	static const char old_v[] = "DELETE FROM verifications WHERE id <= ?1";
	int rc = pobox_store_begin(st);
	if (rc)
		return rc;
	rc = save_run(st, r);
	for (size_t i = 0; i < nf && i < POBOX_VERIFY_KEEP_FINDINGS && rc == 0; i++)
		rc = save_finding(st, r->id, (int64_t)i + 1, &f[i]);
	int64_t keep_after = r->id - POBOX_VERIFY_KEEP_RUNS;
	if (rc == 0 && keep_after > 0)
		rc = pobox_store_run(st, old_f, "dropping old verifications", 1, &keep_after, 0, NULL);
	if (rc == 0 && keep_after > 0)
		rc = pobox_store_run(st, old_v, "dropping old verifications", 1, &keep_after, 0, NULL);
	if (rc == 0)
		return pobox_store_commit(st);
	pobox_store_rollback(st);
	return rc;
}

int pobox_store_verify_last(struct pobox_store *st, struct pobox_verify_record *out, int *found)
{
	static const char sql[] =
		"SELECT id, started_at_ms, finished_at_ms, selection, grace_ms, population, profiles,"
		" fetch_errors, matching, not_yet_applied, different, missing,"
		" coalesce(matching_min_age_ms, -1), coalesce(matching_max_age_ms, -1),"
		" coalesce(not_yet_applied_min_age_ms, -1), coalesce(not_yet_applied_max_age_ms, -1),"
		" coalesce(different_min_age_ms, -1), coalesce(different_max_age_ms, -1),"
		" coalesce(missing_min_age_ms, -1), coalesce(missing_max_age_ms, -1),"
		" interrupted, exit_code FROM verifications ORDER BY id DESC LIMIT 1";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	memset(out, 0, sizeof *out);
	*found = 0;
	if (!s)
		return POBOX_EIO;
	int r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		*found = 1;
		out->id = sqlite3_column_int64(s, 0);
		out->started_at_ms = sqlite3_column_int64(s, 1);
		out->finished_at_ms = sqlite3_column_int64(s, 2);
		snprintf(out->selection, sizeof out->selection, "%s", (const char *)sqlite3_column_text(s, 3));
		out->grace_ms = sqlite3_column_int64(s, 4);
		out->population = sqlite3_column_int64(s, 5);
		out->profiles = sqlite3_column_int64(s, 6);
		out->fetch_errors = sqlite3_column_int64(s, 7);
		for (int c = 0; c < POBOX_VC_COUNT; c++) {
			out->count[c] = sqlite3_column_int64(s, 8 + c);
			out->min_age_ms[c] = sqlite3_column_int64(s, 12 + 2 * c);
			out->max_age_ms[c] = sqlite3_column_int64(s, 13 + 2 * c);
		}
		out->interrupted = sqlite3_column_int(s, 20);
		out->exit_code = sqlite3_column_int(s, 21);
	}
	sqlite3_reset(s);
	return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : pobox_store_fail(st, r, "reading the last verification");
}

int pobox_store_verify_json(struct pobox_store *st, int64_t id, char **out)
{
	/* shares of the attributes compared; ages in seconds */
	static const char sql[] =
		"WITH v AS (SELECT *, max(matching + not_yet_applied + different + missing, 1) AS total"
		"           FROM verifications WHERE id = ?1)"
		"SELECT json_object('id', id,"
		" 'started_at', strftime('%Y-%m-%dT%H:%M:%fZ', started_at_ms / 1000.0, 'unixepoch'),"
		" 'finished_at', strftime('%Y-%m-%dT%H:%M:%fZ', finished_at_ms / 1000.0, 'unixepoch'),"
		" 'selection', selection, 'grace_s', grace_ms / 1000.0, 'population', population,"
		" 'profiles', profiles, 'fetch_errors', fetch_errors,"
		" 'attributes', matching + not_yet_applied + different + missing,"
		" 'classes', json_object("
		"  'matching', json_object('attributes', matching, 'share', round(matching * 1.0 / total, 4),"
		"   'min_age_s', matching_min_age_ms / 1000.0, 'max_age_s', matching_max_age_ms / 1000.0),"
		"  'not_yet_applied', json_object('attributes', not_yet_applied,"
		"   'share', round(not_yet_applied * 1.0 / total, 4),"
		"   'min_age_s', not_yet_applied_min_age_ms / 1000.0,"
		"   'max_age_s', not_yet_applied_max_age_ms / 1000.0),"
		"  'different', json_object('attributes', different, 'share', round(different * 1.0 / total, 4),"
		"   'min_age_s', different_min_age_ms / 1000.0, 'max_age_s', different_max_age_ms / 1000.0),"
		"  'missing', json_object('attributes', missing, 'share', round(missing * 1.0 / total, 4),"
		"   'min_age_s', missing_min_age_ms / 1000.0, 'max_age_s', missing_max_age_ms / 1000.0)),"
		" 'interrupted', json(CASE interrupted WHEN 1 THEN 'true' ELSE 'false' END),"
		" 'exit_code', exit_code,"
		" 'findings', (SELECT json_group_array(json_object('class', class, 'why', why,"
		"   'id_type', id_type, 'profile_id', profile_id, 'attr', attr, 'sent', sent,"
		"   'sent_at', strftime('%Y-%m-%dT%H:%M:%fZ', sent_at_ms / 1000.0, 'unixepoch'),"
		"   'in_flight', json(CASE in_flight WHEN 1 THEN 'true' ELSE 'false' END),"
		"   'target', target, 'target_modified_at',"
		"   strftime('%Y-%m-%dT%H:%M:%fZ', target_modified_at_ms / 1000.0, 'unixepoch')))"
		"   FROM (SELECT * FROM verify_findings WHERE verification = ?1 ORDER BY n)))"
		" FROM v";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	*out = NULL;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, id);
	int r = sqlite3_step(s), rc = 0;
	if (r == SQLITE_ROW && !(*out = pobox_strdup((const char *)sqlite3_column_text(s, 0))))
		rc = pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
	sqlite3_reset(s);
	if (r == SQLITE_DONE)
		return pobox_errf(st->err, st->errlen, POBOX_ENOTFOUND, "no verification %lld", (long long)id);
	if (r != SQLITE_ROW)
		return pobox_store_fail(st, r, "reading a verification");
	return rc;
}
