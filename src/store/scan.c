/*
 * scan.c - what a cut reads: the pending set, and the profiles of a batch.
 *
 * The pending set is the profiles in `held` and the profiles of writes
 * above tallies.cut_seq (schema/0006_storage.sql).  pobox_store_scan_pending
 * visits each once - held ones first, in id order, then in the order of
 * their first new write - and
 *
 *   fenced by an unfinished batch, or waiting for a retry time
 *       -> held (with the enqueue time of its oldest pending update);
 *   otherwise -> handed to the cut with every live update above its
 *       delivery watermark, sorted by attribute then seq; the cut takes it
 *       into a batch (pobox_store_cut_profile) or dead-letters it
 *       (pobox_store_kill_rows); one it leaves is held.
 *
 * When the scan ends, cut_seq moves to the newest seq: every write below it
 * has been seen, and what is still pending of it is held.  A cut writes no
 * profile row: a profile joins a batch in the batch's member list
 * (members.c), written when the batch is filled.
 *
 * Memory: one profile's updates at a time, a bit per profile id for "seen",
 * and the fence (two bytes per profile id).
 */
#include "alloc.h"
#include "error.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- one profile's updates ---------------------------------------------- */

struct ucell {
	int64_t seq, attr, enq;
	int urgent;
	size_t off, len;
};

/* Copied out of SQLite (its text is only valid until the next step), and
 * reused from profile to profile. */
struct group {
	struct ucell *c;
	size_t n, cap;
	char *text;
	size_t text_len, text_cap;
	/* handed to the callback */
	int64_t *seq, *attr, *enq;
	int *urgent;
	size_t *len;
	const char **val;
	size_t out_cap;
	char *pid;
	size_t pid_cap;
};

static void group_free(struct group *g)
{
	void *p[] = {g->c, g->text, g->seq, g->attr, g->enq, g->urgent, g->len, g->val, g->pid};
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

struct add_ctx {
	struct group *g;
	int urgent;
	int64_t enq;
};

static int add_cell(void *ctx, int64_t seq, int64_t attr, const char *v, size_t len)
{
	struct add_ctx *a = ctx;
	struct group *g = a->g;
	if (g->n == g->cap) {
		size_t c = g->cap ? g->cap * 2 : 32;
		if (grow((void **)&g->c, sizeof *g->c, c))
			return POBOX_ENOMEM;
		g->cap = c;
	}
	if (g->text_len + len + 1 > g->text_cap) {
		size_t c = g->text_cap ? g->text_cap : 4096;
		while (c < g->text_len + len + 1)
			c *= 2;
		if (grow((void **)&g->text, 1, c))
			return POBOX_ENOMEM;
		g->text_cap = c;
	}
	memcpy(g->text + g->text_len, v, len);
	g->text[g->text_len + len] = '\0';
	g->c[g->n++] = (struct ucell){seq, attr, a->enq, a->urgent, g->text_len, len};
	g->text_len += len + 1;
	return 0;
}

static int by_attr_seq(const void *x, const void *y)
{
	const struct ucell *a = x, *b = y;
	if (a->attr != b->attr)
		return a->attr < b->attr ? -1 : 1;
	return (a->seq > b->seq) - (a->seq < b->seq);
}

/* Sorts g's updates by attribute, then seq, into p's arrays. */
static int hand_over(struct group *g, struct pobox_prow *p)
{
	if (g->n > g->out_cap) {
		size_t c = g->n;
		if (grow((void **)&g->seq, sizeof *g->seq, c) || grow((void **)&g->attr, sizeof *g->attr, c) ||
		    grow((void **)&g->enq, sizeof *g->enq, c) || grow((void **)&g->urgent, sizeof *g->urgent, c) ||
		    grow((void **)&g->len, sizeof *g->len, c) || grow((void **)&g->val, sizeof *g->val, c))
			return POBOX_ENOMEM;
		g->out_cap = c;
	}
	qsort(g->c, g->n, sizeof *g->c, by_attr_seq);
	for (size_t i = 0; i < g->n; i++) {
		const struct ucell *c = &g->c[i];
		g->seq[i] = c->seq;
		g->attr[i] = c->attr;
		g->enq[i] = c->enq;
		g->urgent[i] = c->urgent;
		g->len[i] = c->len;
		g->val[i] = g->text + c->off;
	}
	p->n = g->n;
	p->seq = g->seq;
	p->attr = g->attr;
	p->value = g->val;
	p->value_len = g->len;
	p->urgent = g->urgent;
	p->enqueued_at_ms = g->enq;
	return 0;
}

static const char SQL_PROFILE[] =
	"SELECT id_type, profile_id, done_seq, sent_seq, coalesce(last_v2_at_ms, -1), route_bulk,"
	"       done_at_ms IS NOT NULL, next_attempt_at_ms FROM profiles WHERE id = ?1";
static const char SQL_UPDATES[] =
	"SELECT seq, shape, cells, urgent, enqueued_at_ms, fates FROM writes "
	"WHERE profile = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq";

/* Reads the profile row into p (its id copied into g); *next_at = its
 * retry time.  POBOX_ENOTFOUND when there is no such profile. */
static int load_profile(struct pobox_store *st, int64_t id, struct group *g, struct pobox_prow *p,
                        int64_t *next_at)
{
	sqlite3_stmt *s = pobox_store_prep(st, SQL_PROFILE);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, id);
	int r = sqlite3_step(s), rc = 0;
	if (r == SQLITE_ROW) {
		size_t pl = (size_t)sqlite3_column_bytes(s, 1);
		if (pl + 1 > g->pid_cap && grow((void **)&g->pid, 1, (g->pid_cap = pl + 1))) {
			rc = POBOX_ENOMEM;
		} else {
			memcpy(g->pid, sqlite3_column_text(s, 1), pl);
			g->pid[pl] = '\0';
			p->profile = id;
			p->id_type = sqlite3_column_int(s, 0) == POBOX_ID_PCID ? POBOX_ID_PCID
			                                                       : POBOX_ID_THIRDPARTY;
			p->profile_id = g->pid;
			p->profile_id_len = pl;
			p->done_seq = sqlite3_column_int64(s, 2);
			p->sent_seq = sqlite3_column_int64(s, 3);
			p->last_v2_at_ms = sqlite3_column_int64(s, 4);
			p->route_bulk = sqlite3_column_int(s, 5);
			p->delivered_once = sqlite3_column_int(s, 6);
			*next_at = sqlite3_column_int64(s, 7);
		}
	}
	sqlite3_reset(s);
	if (r == SQLITE_DONE)
		return POBOX_ENOTFOUND;
	if (r != SQLITE_ROW)
		return pobox_store_fail(st, r, "reading a profile");
	return rc ? pobox_errf(st->err, st->errlen, rc, "out of memory") : 0;
}

/* The profile's live updates in (lo, hi] into g; *oldest = the enqueue
 * time of the oldest write with one (-1: none). */
static int load_updates(struct pobox_store *st, int64_t profile, int64_t lo, int64_t hi,
                        struct group *g, int64_t *oldest)
{
	sqlite3_stmt *s = pobox_store_prep(st, SQL_UPDATES);
	int rc = 0, r;
	g->n = 0;
	g->text_len = 0;
	*oldest = -1;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, profile);
	sqlite3_bind_int64(s, 2, lo);
	sqlite3_bind_int64(s, 3, hi);
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW) {
		size_t before = g->n;
		struct add_ctx a = {g, sqlite3_column_int(s, 3), sqlite3_column_int64(s, 4)};
		rc = pobox_store_each_cell(st, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
		                           (const char *)sqlite3_column_text(s, 2),
		                           (size_t)sqlite3_column_bytes(s, 2), sqlite3_column_int64(s, 5),
		                           add_cell, &a);
		if (g->n > before && (*oldest < 0 || a.enq < *oldest))
			*oldest = a.enq;
	}
	sqlite3_reset(s);
	if (rc == POBOX_ENOMEM)
		return pobox_errf(st->err, st->errlen, rc, "out of memory reading updates");
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(st, r, "reading updates");
	return rc;
}

/* ---- the pending set ------------------------------------------------------ */

struct visit {
	struct pobox_store *st;
	int64_t now_ms;
	pobox_prow_fn fn;
	void *ctx;
	struct group g;
	unsigned char *seen;
	size_t seen_bytes;
};

static int mark_seen(struct visit *v, int64_t id)
{
	size_t byte = (size_t)id / 8;
	if (byte >= v->seen_bytes) {
		size_t n = v->seen_bytes ? v->seen_bytes : 4096;
		while (n <= byte)
			n *= 2;
		unsigned char *nb = pobox_realloc(v->seen, n);
		if (!nb)
			return POBOX_ENOMEM;
		memset(nb + v->seen_bytes, 0, n - v->seen_bytes);
		v->seen = nb;
		v->seen_bytes = n;
	}
	int was = v->seen[byte] & (1u << (id & 7));
	v->seen[byte] |= (unsigned char)(1u << (id & 7));
	return was ? 1 : 0;
}

static int unhold(struct pobox_store *st, int64_t profile)
{
	return pobox_store_run(st, "DELETE FROM held WHERE profile = ?1", "updating the pending set", 1,
	                       &profile, 0, NULL);
}

/* One pending profile: held back, or handed to the cut. */
static int visit(struct visit *v, int64_t id, int from_held)
{
	struct pobox_store *st = v->st;
	struct pobox_prow p = {0};
	int64_t next_at = 0, fence_seq = 0, oldest;
	int rc = mark_seen(v, id);
	if (rc)
		return rc < 0 ? pobox_errf(st->err, st->errlen, rc, "out of memory") : 0;
	if ((rc = load_profile(st, id, &v->g, &p, &next_at)) != 0)
		return rc == POBOX_ENOTFOUND
		       ? pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
		                    "outbox %s: a write names profile %lld, which does not exist; run "
		                    "`pobox doctor`", st->path, (long long)id)
		       : rc;
	if ((rc = pobox_store_fenced(st, id, &fence_seq)) != 0)
		return rc;
	int64_t lo = fence_seq > p.done_seq ? fence_seq : p.done_seq;
	if ((rc = load_updates(st, id, lo, INT64_MAX, &v->g, &oldest)) != 0)
		return rc;
	if (v->g.n == 0) /* nothing pending (any more) */
		return from_held ? unhold(st, id) : 0;
	if (fence_seq || next_at > v->now_ms)
		return pobox_store_hold(st, id, oldest);
	if (from_held && (rc = unhold(st, id)) != 0)
		return rc;
	if ((rc = hand_over(&v->g, &p)) != 0)
		return pobox_errf(st->err, st->errlen, rc, "out of memory");
	st->taken = 0;
	if ((rc = v->fn(v->ctx, &p)) != 0)
		return rc;
	/* neither batched nor dead-lettered: it waits */
	return st->taken ? 0 : pobox_store_hold(st, id, oldest);
}

/* The held profiles, copied out first: visiting changes held. */
static int visit_held(struct visit *v)
{
	static const char sql[] = "SELECT profile FROM held ORDER BY profile";
	sqlite3_stmt *s = pobox_store_prep(v->st, sql);
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc = 0, r;
	if (!s)
		return POBOX_EIO;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap && grow((void **)&ids, sizeof *ids, (cap = cap ? cap * 2 : 256))) {
			rc = pobox_errf(v->st->err, v->st->errlen, POBOX_ENOMEM, "out of memory");
			break;
		}
		ids[n++] = sqlite3_column_int64(s, 0);
	}
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(v->st, r, "reading held profiles");
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = visit(v, ids[i], 1);
	pobox_free(ids);
	return rc;
}

/* A new write's profile, read with it: most have that one write only
 * (last_write says so), and then nothing else is read. */
static const char SQL_NEW[] =
	"SELECT w.profile, w.seq, w.shape, w.cells, w.urgent, w.enqueued_at_ms, w.fates,"
	"       p.id_type, p.profile_id, p.done_seq, p.sent_seq, coalesce(p.last_v2_at_ms, -1),"
	"       p.route_bulk, p.done_at_ms IS NOT NULL, p.next_attempt_at_ms, p.last_write "
	"FROM writes w JOIN profiles p ON p.id = w.profile WHERE w.seq > ?1 ORDER BY w.seq";

/* The profile's columns of a SQL_NEW row into p (id copied into g). */
static int new_profile(struct group *g, sqlite3_stmt *s, struct pobox_prow *p)
{
	size_t pl = (size_t)sqlite3_column_bytes(s, 8);
	if (pl + 1 > g->pid_cap && grow((void **)&g->pid, 1, (g->pid_cap = pl + 1)))
		return POBOX_ENOMEM;
	memcpy(g->pid, sqlite3_column_text(s, 8), pl);
	g->pid[pl] = '\0';
	p->profile = sqlite3_column_int64(s, 0);
	p->id_type = sqlite3_column_int(s, 7) == POBOX_ID_PCID ? POBOX_ID_PCID : POBOX_ID_THIRDPARTY;
	p->profile_id = g->pid;
	p->profile_id_len = pl;
	p->done_seq = sqlite3_column_int64(s, 9);
	p->sent_seq = sqlite3_column_int64(s, 10);
	p->last_v2_at_ms = sqlite3_column_int64(s, 11);
	p->route_bulk = sqlite3_column_int(s, 12);
	p->delivered_once = sqlite3_column_int(s, 13);
	return 0;
}

/* A profile met at its first write no cut has seen (so it is not held:
 * every pending update of it is above cut_seq, the oldest in this write). */
static int visit_first(struct visit *v, sqlite3_stmt *s)
{
	struct pobox_store *st = v->st;
	struct pobox_prow p = {0};
	int64_t id = sqlite3_column_int64(s, 0), seq = sqlite3_column_int64(s, 1);
	int64_t enq = sqlite3_column_int64(s, 5), fence = 0, oldest = enq;
	int rc;
	if ((rc = new_profile(&v->g, s, &p)) != 0)
		return pobox_errf(st->err, st->errlen, rc, "out of memory");
	if ((rc = pobox_store_fenced(st, id, &fence)) != 0)
		return rc;
	if (fence || sqlite3_column_int64(s, 14) > v->now_ms)
		return pobox_store_hold(st, id, enq);
	v->g.n = 0;
	v->g.text_len = 0;
	if (sqlite3_column_int64(s, 15) == seq) {
		struct add_ctx a = {&v->g, sqlite3_column_int(s, 4), enq};
		rc = pobox_store_each_cell(st, seq, sqlite3_column_int64(s, 2),
		                           (const char *)sqlite3_column_text(s, 3),
		                           (size_t)sqlite3_column_bytes(s, 3), sqlite3_column_int64(s, 6),
		                           add_cell, &a);
		if (rc == POBOX_ENOMEM)
			rc = pobox_errf(st->err, st->errlen, rc, "out of memory reading updates");
	} else { /* later writes too: read them all */
		rc = load_updates(st, id, p.done_seq, INT64_MAX, &v->g, &oldest);
	}
	if (rc || v->g.n == 0)
		return rc;
	if ((rc = hand_over(&v->g, &p)) != 0)
		return pobox_errf(st->err, st->errlen, rc, "out of memory");
	st->taken = 0;
	if ((rc = v->fn(v->ctx, &p)) != 0)
		return rc;
	return st->taken ? 0 : pobox_store_hold(st, id, oldest);
}

/* The profiles of the writes no cut has seen, in seq order. */
static int visit_new(struct visit *v, int64_t cut_seq)
{
	sqlite3_stmt *s = pobox_store_prep(v->st, SQL_NEW);
	int rc = 0, r;
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, cut_seq);
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW) {
		int seen = mark_seen(v, sqlite3_column_int64(s, 0));
		if (seen < 0)
			rc = pobox_errf(v->st->err, v->st->errlen, POBOX_ENOMEM, "out of memory");
		else if (!seen)
			rc = visit_first(v, s);
	}
	sqlite3_reset(s);
	if (rc == 0 && r != SQLITE_DONE)
		rc = pobox_store_fail(v->st, r, "reading new writes");
	return rc;
}

int pobox_store_scan_pending(struct pobox_store *st, int64_t now_ms, pobox_prow_fn fn, void *ctx)
{
	static const char done[] = "UPDATE tallies SET cut_seq = ?1";
	struct visit v = {.st = st, .now_ms = now_ms, .fn = fn, .ctx = ctx};
	int rc = pobox_store_need_tx(st, "cutting");
	if (rc)
		return rc;
	int64_t max_seq = st->next_seq + st->d.seqs - 1;
	st->cut_max = max_seq;
	if ((rc = visit_held(&v)) == 0 && (rc = visit_new(&v, st->cut_seq)) == 0 &&
	    (rc = pobox_store_run(st, done, "moving the cut watermark", 1, &max_seq, 0, NULL)) == 0) {
		st->cut_seq = max_seq;
		st->d.oldest_recount = 1;
		st->d.dirty = 1;
	}
	group_free(&v.g);
	pobox_free(v.seen);
	return rc;
}

int pobox_store_cut_profile(struct pobox_store *st, const struct pobox_prow *p, int64_t batch,
                            int64_t cells)
{
	int rc = pobox_store_need_tx(st, "cutting a profile");
	if (rc == 0 && p->done_seq > p->sent_seq)
		rc = pobox_store_fold(st, p->profile, p->done_seq, p->sent_seq);
	if (rc || (rc = pobox_store_member_add(st, batch, p->profile)) != 0)
		return rc;
	st->taken = 1;
	st->d.pending -= cells;
	st->d.batched += cells;
	st->d.oldest_recount = 1;
	st->d.dirty = 1;
	return 0;
}

/* ---- a batch's profiles ---------------------------------------------------- */

int pobox_store_scan_batch(struct pobox_store *st, int64_t batch, pobox_prow_fn fn, void *ctx)
{
	struct group g = {0};
	struct pobox_prow p = {0};
	int64_t *ids = NULL, batch_seq = 0, next_at, oldest;
	size_t n = 0;
	int rc = pobox_store_one(st, "SELECT batch_seq FROM batches WHERE id = ?1", "reading a batch", 1,
	                         &batch, &batch_seq, NULL);
	if (rc == 0)
		rc = pobox_store_members(st, batch, &ids, &n);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if ((rc = load_profile(st, ids[i], &g, &p, &next_at)) == POBOX_ENOTFOUND) {
			rc = 0; /* doctor reports members that are not profiles */
			continue;
		}
		if (rc || (rc = load_updates(st, ids[i], p.done_seq, batch_seq, &g, &oldest)) != 0)
			break;
		if (g.n == 0)
			continue;
		if ((rc = hand_over(&g, &p)) != 0)
			rc = pobox_errf(st->err, st->errlen, rc, "out of memory");
		else
			rc = fn(ctx, &p);
	}
	pobox_free(ids);
	group_free(&g);
	return rc;
}

/* ---- counting the pending set -------------------------------------------- */

int pobox_store_pending(struct pobox_store *st, int64_t now_ms, int64_t *due_profiles,
                        int64_t *later_profiles, int64_t *next_due_ms, int64_t *oldest_ms)
{
	/* O(pending): the profiles of the writes no cut has seen count as due
	 * (the next cut holds those that are fenced); held ones are looked at
	 * one by one (they are few: fenced, or waiting for a retry time) */
	static const char fresh[] =
		"SELECT count(DISTINCT profile), min(enqueued_at_ms) FROM writes"
		" WHERE seq > (SELECT cut_seq FROM tallies)";
	static const char staged[] =
		"SELECT count(DISTINCT id_type || ':' || profile_id), min(enqueued_at_ms) FROM staged";
	static const char held[] =
		"SELECT h.profile, h.since_ms, p.next_attempt_at_ms FROM held h JOIN profiles p"
		" ON p.id = h.profile";
	int64_t due = 0, later = 0, next_due = -1, oldest = -1;
	int rc = 0, r;
	for (int i = 0; i < 2 && rc == 0; i++) {
		sqlite3_stmt *s = pobox_store_prep(st, i ? staged : fresh);
		if (!s)
			return POBOX_EIO;
		if ((r = sqlite3_step(s)) == SQLITE_ROW) {
			due += sqlite3_column_int64(s, 0);
			int64_t t = pobox_store_col_int(s, 1, -1);
			if (t >= 0 && (oldest < 0 || t < oldest))
				oldest = t;
		}
		sqlite3_reset(s);
		if (r != SQLITE_ROW)
			rc = pobox_store_fail(st, r, "counting pending updates");
	}
	/* the held rows are copied first: the fence may read batches */
	struct hrow {
		int64_t id, since, at;
	} *h = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s = rc ? NULL : pobox_store_prep(st, held);
	if (rc == 0 && !s)
		rc = POBOX_EIO;
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap && grow((void **)&h, sizeof *h, (cap = cap ? cap * 2 : 64))) {
			rc = pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
			break;
		}
		h[n++] = (struct hrow){sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
		                       sqlite3_column_int64(s, 2)};
	}
	if (s) {
		sqlite3_reset(s);
		if (rc == 0 && r != SQLITE_DONE)
			rc = pobox_store_fail(st, r, "counting pending updates");
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		int64_t fence = 0;
		if ((rc = pobox_store_fenced(st, h[i].id, &fence)) != 0 || fence)
			continue; /* waits for its batch: neither due nor later */
		if (h[i].at > now_ms) {
			later++;
			if (next_due < 0 || h[i].at < next_due)
				next_due = h[i].at;
		} else {
			due++;
		}
		if (oldest < 0 || h[i].since < oldest)
			oldest = h[i].since;
	}
	pobox_free(h);
	if (rc == 0) {
		*due_profiles = due;
		*later_profiles = later;
		*next_due_ms = next_due;
		*oldest_ms = oldest;
	}
	return rc;
}
