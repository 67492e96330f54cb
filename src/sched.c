/*
 * sched.c - cutting batches (see sched.h for the rules).
 *
 * Owns the batch file format: `batch=<idtype>,<attr>,...` then one row per
 * profile, every name and value UTF-8 percent-encoded (urlenc.c), LF line
 * ends.  Cells are written directly rather than through libcsv's writer:
 * libcsv always quotes fields, and in a form-urlencoded batch a quote would
 * become part of the value; percent-encoding already leaves no comma, quote
 * or newline in any cell, so no quoting is needed.
 *
 * Memory does not depend on batch size: each open batch holds at most a
 * part (PART_BYTES) of compressed output before it goes to the outbox, its
 * members go there in parts too (store/members.c), and one profile's rows
 * are in hand at a time; the updates themselves are streamed from the
 * store.
 */
#include "sched.h"
#include "alloc.h"
#include "error.h"
#include "outbox.h"
#include "store.h"
#include "urlenc.h"
#include "zpayload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPEN 4         /* open batches per id type */
#define ZLEVEL 1           /* fast: payloads are built once and read rarely */
/* compressed bytes of a payload part: a builder stores its rows' output
 * whenever it has this much */
#define PART_BYTES ((size_t)1 << 20)

struct attr_name {
	char *name;            /* as stored */
	char *enc;             /* percent-encoded */
	size_t enc_len;
};

struct builder {
	int64_t id;            /* batch row */
	int api;
	enum pobox_id_type type;
	int64_t *cols;         /* attribute ids in column order */
	size_t ncols, capcols;
	int32_t *colpos;       /* attribute id -> column index, -1 when absent */
	struct pobox_zwriter rows;
	int64_t next_part;     /* of the payload: rows' parts are 1.. */
	int64_t nrows, updates, carried, bytes; /* bytes: header + rows, encoded */
	int64_t last_used;     /* for choosing which to close */
};

struct cell {
	int64_t attr;
	const char *value;
	size_t len;
	int carried;
	int32_t pos;           /* column in the chosen builder */
};

struct single_group {
	int64_t id, n, updates, bytes;
};

struct cut {
	struct pobox *pb;
	int64_t max_seq;         /* newest update when the cut began: every row it takes is <= */
	struct single_group single[2];      /* [id type - 1]: open single-lane batch */
	int64_t single_assigned, single_assigned_urgent;
	const struct pobox_sched_opts *o;
	struct pobox_cut_summary *sum;
	int64_t now_ms;
	struct attr_name *names;
	size_t nnames;
	struct builder *open[4][MAX_OPEN];  /* [(id type - 1) * 2 + api - 1] */
	int64_t fixed_batch;   /* >0: build only this batch (pobox_sched_build) */
	int64_t tick;
	/* per profile scratch */
	struct cell *cells;
	size_t ncells, capcells;
	char *carry_text;      /* carried values, copied out of the store */
	size_t carry_len, carry_cap;
	char *enc;             /* encoding scratch */
	size_t enc_cap;
	char *line;            /* one row */
	size_t line_len, line_cap;
};

void pobox_sched_opts_init(struct pobox_sched_opts *o)
{
	o->api_thirdparty = 2;
	o->api_pcid = 1;
	o->max_rows = 500000;
	o->max_bytes = 49000000;
	o->carry_window_ms = 24 * 3600000LL;
	o->profile_cap_bytes = POBOX_PROFILE_CAP_BYTES;
	o->single_enabled = 0;
	o->single_group = 2000;
	o->max_get_bytes = 8192;
	o->max_post_bytes = 61440;
}

int64_t pobox_single_query_len(enum pobox_id_type t, const char *id, size_t id_len,
                               const char *const *names, const char *const *values,
                               const size_t *value_lens, size_t n)
{
	int64_t len = (t == POBOX_ID_PCID ? 7 : 15) + (int64_t)pobox_urlencoded_len(id, id_len);
	for (size_t i = 0; i < n; i++)
		len += 9 + (int64_t)pobox_urlencoded_len(names[i], strlen(names[i])) + 1 +
		       (int64_t)pobox_urlencoded_len(values[i], value_lens[i]);
	return len;
}

static int api_for(const struct pobox_sched_opts *o, enum pobox_id_type t)
{
	return t == POBOX_ID_PCID ? o->api_pcid : o->api_thirdparty;
}

/* ---- attribute names ------------------------------------------------ */

static int load_name(void *ctx, int64_t id, const char *name)
{
	struct cut *c = ctx;
	if ((size_t)id >= c->nnames) {
		size_t n = (size_t)id + 64;
		struct attr_name *nn = pobox_realloc(c->names, n * sizeof *nn);
		if (!nn)
			return POBOX_ENOMEM;
		memset(nn + c->nnames, 0, (n - c->nnames) * sizeof *nn);
		c->names = nn;
		c->nnames = n;
	}
	size_t len = strlen(name);
	struct attr_name *a = &c->names[id];
	a->name = pobox_strdup(name);
	a->enc = pobox_malloc(pobox_urlencoded_len(name, len) + 1);
	if (!a->name || !a->enc)
		return POBOX_ENOMEM;
	a->enc_len = pobox_urlencode(a->enc, name, len);
	return 0;
}

static void free_names(struct cut *c)
{
	for (size_t i = 0; i < c->nnames; i++) {
		pobox_free(c->names[i].name);
		pobox_free(c->names[i].enc);
	}
	pobox_free(c->names);
	c->names = NULL;
	c->nnames = 0;
}

/* ---- builders ----------------------------------------------------------- */

static void builder_free(struct builder *b)
{
	if (!b)
		return;
	pobox_free(b->cols);
	pobox_free(b->colpos);
	pobox_zwriter_free(&b->rows);
	pobox_free(b);
}

static int64_t header_bytes(const struct cut *c, const struct builder *b)
{
	int64_t n = 6 + (int64_t)strlen(pobox_id_type_name(b->type)) + 1; /* batch=type\n */
	for (size_t i = 0; i < b->ncols; i++)
		n += 1 + (int64_t)c->names[b->cols[i]].enc_len;
	return n;
}

static int builder_new(struct cut *c, enum pobox_id_type t, int api, const char *reason,
                       struct builder **out)
{
	struct builder *b = pobox_calloc(1, sizeof *b);
	int rc;
	if (!b)
		return POBOX_ENOMEM;
	b->type = t;
	b->api = api;
	b->colpos = pobox_malloc(c->nnames * sizeof *b->colpos);
	if (!b->colpos) {
		rc = POBOX_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < c->nnames; i++)
		b->colpos[i] = -1;
	if ((rc = pobox_zwriter_init(&b->rows, ZLEVEL)) != 0)
		goto fail;
	b->next_part = 1;
	if (c->fixed_batch > 0) {
		b->id = c->fixed_batch;
		if ((rc = pobox_store_payload_clear(c->pb->st, b->id)) != 0)
			goto fail;
	} else if ((rc = pobox_store_batch_new(c->pb->st, b->api, t, reason, 0, 0, c->now_ms,
	                                       &b->id)) != 0) {
		goto fail;
	}
	b->bytes = header_bytes(c, b);
	*out = b;
	return 0;
fail:
	builder_free(b);
	return rc;
}

/* Writes the header, joins it to the rows and stores the payload. */
/* The rows' compressed output so far, as the next part of the payload,
 * once there is at least `least` of it. */
static int store_part(struct cut *c, struct builder *b, size_t least)
{
	if (b->rows.len == 0 || b->rows.len < least)
		return 0;
	int rc = pobox_store_payload_part(c->pb->st, b->id, b->next_part, b->rows.out, b->rows.len);
	if (rc == 0) {
		b->next_part++;
		pobox_zwriter_taken(&b->rows);
	}
	return rc;
}

static int builder_close(struct cut *c, struct builder *b)
{
	struct pobox_zwriter h;
	int rc;
	/* opened for a profile that then did not fit: no batch after all */
	if (b->nrows == 0 && c->fixed_batch == 0)
		return pobox_store_batch_delete_empty(c->pb->st, b->id);
	if ((rc = pobox_zwriter_init(&h, ZLEVEL)) != 0)
		return rc;
	const char *tn = pobox_id_type_name(b->type);
	if ((rc = pobox_zwriter_write(&h, "batch=", 6)) != 0 ||
	    (rc = pobox_zwriter_write(&h, tn, strlen(tn))) != 0)
		goto out;
	for (size_t i = 0; i < b->ncols; i++) {
		const struct attr_name *a = &c->names[b->cols[i]];
		if ((rc = pobox_zwriter_write(&h, ",", 1)) != 0 ||
		    (rc = pobox_zwriter_write(&h, a->enc, a->enc_len)) != 0)
			goto out;
	}
	if ((rc = pobox_zwriter_write(&h, "\n", 1)) != 0 || (rc = pobox_zwriter_finish(&h)) != 0 ||
	    (rc = pobox_zwriter_finish(&b->rows)) != 0 || (rc = store_part(c, b, 0)) != 0)
		goto out;
	if ((int64_t)(h.in_bytes + b->rows.in_bytes) != b->bytes) {
		rc = pobox_errf(c->pb->err, sizeof c->pb->err, POBOX_EIO,
		                "batch %lld: built %llu bytes but counted %lld (a bug)", (long long)b->id,
		                (unsigned long long)(h.in_bytes + b->rows.in_bytes), (long long)b->bytes);
		goto out;
	}
	uint32_t crc = pobox_crc32_combine(h.crc, b->rows.crc, b->rows.in_bytes);
	rc = pobox_store_batch_payload(c->pb->st, b->id, b->nrows, b->updates, b->carried, b->bytes,
	                               h.out, h.len, crc);
	if (rc == 0) {
		c->sum->batches++;
		c->sum->bytes += b->bytes;
	}
out:
	pobox_zwriter_free(&h);
	return rc;
}

/* ---- one profile ------------------------------------------------------- */

static int close_single(struct cut *c, struct single_group *g)
{
	int rc = 0;
	if (g->id)
		rc = pobox_store_single_batch_counts(c->pb->st, g->id, g->n, g->updates, g->bytes);
	if (rc == 0 && g->id)
		c->sum->batches++;
	memset(g, 0, sizeof *g);
	return rc;
}

static int add_cell(struct cut *c, int64_t attr, const char *v, size_t len, int carried)
{
	if (c->ncells == c->capcells) {
		size_t n = c->capcells ? c->capcells * 2 : 32;
		struct cell *nc = pobox_realloc(c->cells, n * sizeof *nc);
		if (!nc)
			return POBOX_ENOMEM;
		c->cells = nc;
		c->capcells = n;
	}
	c->cells[c->ncells++] = (struct cell){attr, v, len, carried, -1};
	return 0;
}

struct carry_ctx {
	struct cut *c;
	size_t first_cell;  /* cells before this are this profile's own */
};

static int on_delivered(void *ctx, int64_t attr, const char *v, size_t len)
{
	struct carry_ctx *cc = ctx;
	struct cut *c = cc->c;
	for (size_t i = 0; i < cc->first_cell; i++)
		if (c->cells[i].attr == attr)
			return 0; /* a new value is being sent */
	/* Copy: the store's text is gone after this call.  Offsets, not
	 * pointers, until all values are in (the buffer may move). */
	if (c->carry_len + len + 1 > c->carry_cap) {
		size_t n = c->carry_cap ? c->carry_cap : 4096;
		while (n < c->carry_len + len + 1)
			n *= 2;
		char *nb = pobox_realloc(c->carry_text, n);
		if (!nb)
			return POBOX_ENOMEM;
		c->carry_text = nb;
		c->carry_cap = n;
	}
	memcpy(c->carry_text + c->carry_len, v, len);
	c->carry_text[c->carry_len + len] = '\0';
	int rc = add_cell(c, attr, (const char *)(uintptr_t)c->carry_len, len, 1);
	c->carry_len += len + 1;
	return rc;
}

/* How many new columns cells need in b, and whether the row stays dense. */
static int fits(const struct cut *c, const struct builder *b, int64_t row_bytes, size_t *newcols)
{
	size_t add = 0;
	int64_t maxpos = -1;
	int64_t head = 0;
	for (size_t i = 0; i < c->ncells; i++) {
		int32_t p = (size_t)c->cells[i].attr < c->nnames ? b->colpos[c->cells[i].attr] : -1;
		if (p < 0) {
			p = (int32_t)(b->ncols + add++);
			head += 1 + (int64_t)c->names[c->cells[i].attr].enc_len;
		}
		if (p > maxpos)
			maxpos = p;
	}
	*newcols = add;
	int64_t empties = maxpos + 1 - (int64_t)c->ncells;
	if (b->nrows > 0 && empties > (int64_t)c->ncells)
		return 0;
	if (b->nrows + 1 > c->o->max_rows)
		return 0;
	/* row_bytes counts each cell once; empty cells add a comma each */
	if (b->bytes + head + row_bytes + empties > c->o->max_bytes)
		return 0;
	return 1;
}

static int cmp_pos(const void *a, const void *b)
{
	const struct cell *x = a, *y = b;
	return (x->pos > y->pos) - (x->pos < y->pos);
}

static int ensure(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	char *nb = pobox_realloc(*buf, n);
	if (!nb)
		return POBOX_ENOMEM;
	*buf = nb;
	*cap = n;
	return 0;
}

static int write_row(struct cut *c, struct builder *b, const struct pobox_prow *p)
{
	int rc;
	/* positions: existing columns, then new ones appended in cell order */
	for (size_t i = 0; i < c->ncells; i++) {
		struct cell *x = &c->cells[i];
		int32_t pos = b->colpos[x->attr];
		if (pos < 0) {
			if (b->ncols == b->capcols) {
				size_t n = b->capcols ? b->capcols * 2 : 16;
				int64_t *nc = pobox_realloc(b->cols, n * sizeof *nc);
				if (!nc)
					return POBOX_ENOMEM;
				b->cols = nc;
				b->capcols = n;
			}
			pos = (int32_t)b->ncols;
			b->cols[b->ncols++] = x->attr;
			b->colpos[x->attr] = pos;
			b->bytes += 1 + (int64_t)c->names[x->attr].enc_len;
		}
		x->pos = pos;
	}
	qsort(c->cells, c->ncells, sizeof *c->cells, cmp_pos);
	/* id, then each column up to the last one this row uses */
	c->line_len = 0;
	size_t need = pobox_urlencoded_len(p->profile_id, p->profile_id_len) + 1;
	if ((rc = ensure(&c->line, &c->line_cap, need)) != 0)
		return rc;
	c->line_len = pobox_urlencode(c->line, p->profile_id, p->profile_id_len);
	int32_t col = 0;
	for (size_t i = 0; i < c->ncells; i++) {
		const struct cell *x = &c->cells[i];
		size_t enc = pobox_urlencoded_len(x->value, x->len);
		if ((rc = ensure(&c->line, &c->line_cap,
		                 c->line_len + (size_t)(x->pos - col) + 1 + enc + 2)) != 0)
			return rc;
		while (col < x->pos) { /* empty cells */
			c->line[c->line_len++] = ',';
			col++;
		}
		c->line[c->line_len++] = ',';
		c->line_len += pobox_urlencode(c->line + c->line_len, x->value, x->len);
		col++;
		if (x->carried)
			b->carried++;
	}
	c->line[c->line_len++] = '\n';
	if ((rc = pobox_zwriter_write(&b->rows, c->line, c->line_len)) != 0 ||
	    (rc = store_part(c, b, PART_BYTES)) != 0)
		return rc;
	b->bytes += (int64_t)c->line_len;
	b->nrows++;
	b->last_used = ++c->tick;
	return 0;
}

/* Puts the profile in the single lane when it belongs there: returns 0
 * when it did, 1 when the profile should go bulk, <0 on error. */
static int route_single(struct cut *c, const struct pobox_prow *p, size_t own)
{
	const struct pobox_sched_opts *o = c->o;
	int urgent = 0, rc;
	if (p->route_bulk || (p->id_type == POBOX_ID_THIRDPARTY && !p->delivered_once &&
	                      !o->assume_profiles_exist))
		return 1; /* a single call cannot create the profile */
	for (size_t i = 0; i < p->n && !urgent; i++)
		urgent = p->urgent[i] && p->seq[i] > p->done_seq;
	if (urgent) {
		if (c->single_assigned >= o->single_left_urgent) {
			c->sum->single_refused++;
			c->sum->single_refused_urgent++;
			return 1;
		}
	} else if (o->pending_estimate > o->single_max_pending) {
		return 1;
	} else if (c->single_assigned >= o->single_left_normal) {
		c->sum->single_refused++; /* the budget, not the profile, sent it bulk */
		return 1;
	}
	int64_t q = pobox_single_query_len(p->id_type, p->profile_id, p->profile_id_len, NULL, NULL,
	                                   NULL, 0);
	for (size_t i = 0; i < own; i++)
		q += 9 + (int64_t)c->names[c->cells[i].attr].enc_len + 1 +
		     (int64_t)pobox_urlencoded_len(c->cells[i].value, c->cells[i].len);
	if (o->single_url_base + q > o->max_post_bytes)
		return 1; /* too big for one call: bulk */
	if (o->single_hold) { /* offline: it waits, pending (held), for the lane */
		c->sum->single_held++;
		return 0;
	}
	struct single_group *g = &c->single[p->id_type == POBOX_ID_PCID ? 0 : 1];
	if (g->id == 0 && (rc = pobox_store_single_batch_new(c->pb->st, p->id_type, c->now_ms, &g->id)) != 0)
		return rc;
	if ((rc = pobox_store_cut_profile(c->pb->st, p, g->id, (int64_t)own)) != 0)
		return rc;
	g->n++;
	g->updates += (int64_t)own;
	g->bytes += q;
	c->single_assigned++;
	c->sum->single_profiles++;
	c->sum->single_urgent += urgent;
	c->sum->profiles++;
	c->sum->updates += (int64_t)own;
	if (g->n >= o->single_group)
		return close_single(c, g);
	return 0;
}

/* Stores an open batch and frees its slot. */
static int retire(struct cut *c, struct builder **slot)
{
	int rc = builder_close(c, *slot);
	builder_free(*slot);
	*slot = NULL;
	return rc;
}

/* The slot of the batch a row of row_bytes goes into: an open one of its
 * kind where the row stays dense and fits, else a new one (storing the
 * least recently used one when all slots are taken).  0, 1 when the row
 * does not fit even an empty batch, or <0. */
static int choose(struct cut *c, enum pobox_id_type t, int api, int64_t row_bytes,
                  struct builder ***out)
{
	struct builder **open = c->open[(t == POBOX_ID_PCID ? 0 : 2) + api - 1];
	size_t best_new = (size_t)-1, nc;
	int best = -1, rc;
	for (int i = 0; i < MAX_OPEN; i++) {
		if (open[i] && fits(c, open[i], row_bytes, &nc) && nc < best_new) {
			best = i;
			best_new = nc;
		}
	}
	if (best < 0 && c->fixed_batch > 0 && open[0])
		best = 0; /* rebuilding: one batch, no choice */
	if (best >= 0) {
		*out = &open[best];
		return 0;
	}
	for (int i = 0; i < MAX_OPEN && best < 0; i++)
		if (!open[i])
			best = i;
	if (best < 0) {
		best = 0;
		for (int i = 1; i < MAX_OPEN; i++)
			if (open[i]->last_used < open[best]->last_used)
				best = i;
		if ((rc = retire(c, &open[best])) != 0)
			return rc;
	}
	if ((rc = builder_new(c, t, api, "cut", &open[best])) != 0)
		return rc;
	*out = &open[best];
	return !fits(c, open[best], row_bytes, &nc) && c->fixed_batch == 0;
}

/* A batch that is full is stored at once: its slot is free for the next. */
static int retire_full(struct cut *c, struct builder **used)
{
	const struct builder *u = *used;
	/* full: no room for another row of this batch's mean size */
	int64_t mean = (u->bytes - header_bytes(c, u)) / u->nrows;
	if (u->nrows >= c->o->max_rows || u->bytes + mean > c->o->max_bytes)
		return retire(c, used);
	return 0;
}

static int on_profile(void *ctx, const struct pobox_prow *p)
{
	struct cut *c = ctx;
	struct pobox *pb = c->pb;
	int rc;
	int64_t upto = 0;
	size_t own = 0;

	c->ncells = 0;
	c->carry_len = 0;
	/* coalesce: rows come sorted by attribute, then enqueue order */
	for (size_t i = 0; i < p->n; i++) {
		if (p->seq[i] > upto)
			upto = p->seq[i];
		if (i + 1 < p->n && p->attr[i + 1] == p->attr[i]) {
			/* find this attribute's winner: the last row of the run */
			size_t w = i + 1;
			while (w + 1 < p->n && p->attr[w + 1] == p->attr[i])
				w++;
			if (c->fixed_batch == 0) {
				if ((rc = pobox_store_supersede(pb->st, p->seq[i], p->seq[w])) != 0)
					return rc;
				c->sum->superseded++;
			}
			continue;
		}
		if ((size_t)p->attr[i] >= c->nnames || !c->names[p->attr[i]].name)
			return pobox_errf(pb->err, sizeof pb->err, POBOX_ECORRUPT,
			                  "update %lld names attribute %lld, which does not exist; run "
			                  "`pobox doctor`", (long long)p->seq[i], (long long)p->attr[i]);
		if ((rc = add_cell(c, p->attr[i], p->value[i], p->value_len[i], 0)) != 0)
			return rc;
		own++;
	}
	int64_t updates = (int64_t)own;
	if (c->fixed_batch == 0 && c->o->single_enabled) {
		int rc2 = route_single(c, p, own);
		if (rc2 != 1)
			return rc2; /* 0: sent to the single lane; <0: error */
	}
	/* a profile a single call did not find goes by v2, which creates it */
	int api = p->route_bulk ? 2 : api_for(c->o, p->id_type);
	/* v2 override safety: a profile delivered by v2 within the window gets
	 * its earlier attributes in this row too */
	if (api == 2 && c->o->carry_window_ms > 0 && p->last_v2_at_ms >= 0 &&
	    c->now_ms - p->last_v2_at_ms <= c->o->carry_window_ms) {
		struct carry_ctx cc = {c, own};
		if ((rc = pobox_store_last_delivered(pb->st, p->profile, p->done_seq, p->sent_seq,
		                                     on_delivered, &cc)) != 0)
			return rc;
		for (size_t i = own; i < c->ncells; i++)
			c->cells[i].value = c->carry_text + (uintptr_t)c->cells[i].value;
	}
	/* Target's per-profile cap, and the encoded row size */
	int64_t raw = 0, row_bytes = (int64_t)pobox_urlencoded_len(p->profile_id, p->profile_id_len) + 1;
	for (size_t i = 0; i < c->ncells; i++) {
		raw += (int64_t)strlen(c->names[c->cells[i].attr].name) + (int64_t)c->cells[i].len;
		row_bytes += 1 + (int64_t)pobox_urlencoded_len(c->cells[i].value, c->cells[i].len);
	}
	if (raw > c->o->profile_cap_bytes && c->fixed_batch == 0) {
		char why[200];
		snprintf(why, sizeof why, "profile data is %lld bytes, over Target's %lld-byte "
		         "per-profile cap", (long long)raw, (long long)c->o->profile_cap_bytes);
		c->sum->dead_profiles++;
		return pobox_store_kill_rows(pb->st, p->profile, p->done_seq, upto, why, 0);
	}
	struct builder **slot = NULL;
	if ((rc = choose(c, p->id_type, api, row_bytes, &slot)) < 0)
		return rc;
	if (rc == 1) {
		char why[200];
		snprintf(why, sizeof why, "profile row is %lld bytes encoded, more than "
		         "max_batch_bytes allows", (long long)row_bytes);
		c->sum->dead_profiles++;
		return pobox_store_kill_rows(pb->st, p->profile, p->done_seq, upto, why, 0);
	}
	struct builder *best = *slot;
	if ((rc = write_row(c, best, p)) != 0)
		return rc;
	best->updates += updates;
	c->sum->profiles++;
	c->sum->updates += updates;
	c->sum->carried += (int64_t)(c->ncells - own);
	if (c->fixed_batch > 0)
		return 0;
	if ((rc = pobox_store_cut_profile(pb->st, p, best->id, updates)) != 0)
		return rc;
	return retire_full(c, slot);
}

static int run_cut(struct cut *c)
{
	int rc = pobox_store_each_attr(c->pb->st, load_name, c);
	if (rc == 0)
		rc = pobox_store_query_int64(c->pb->st, "SELECT next_seq - 1 FROM tallies", &c->max_seq);
	if (rc == 0) {
		if (c->fixed_batch > 0)
			rc = pobox_store_scan_batch(c->pb->st, c->fixed_batch, on_profile, c);
		else
			rc = pobox_store_scan_pending(c->pb->st, c->now_ms, on_profile, c);
	}
	for (int t = 0; t < 2; t++)
		if (rc == 0)
			rc = close_single(c, &c->single[t]);
	for (int t = 0; t < 4; t++) {
		for (int i = 0; i < MAX_OPEN; i++) {
			struct builder *b = c->open[t][i];
			if (b && rc == 0)
				rc = builder_close(c, b);
			builder_free(b);
			c->open[t][i] = NULL;
		}
	}
	free_names(c);
	pobox_free(c->cells);
	pobox_free(c->carry_text);
	pobox_free(c->line);
	pobox_free(c->enc);
	return rc;
}

int pobox_sched_cut(struct pobox *pb, const struct pobox_sched_opts *o,
                    struct pobox_cut_summary *sum)
{
	struct pobox_cut_summary s = {0};
	struct cut c = {.pb = pb, .o = o, .sum = &s};
	int rc;
	if ((rc = pobox_begin(pb)) != 0)
		return rc;
	c.now_ms = pobox_clock_now_ms(&pb->clock);
	int64_t first = 0, staged = 0;
	/* sqlite3 producers' rows first: their seqs are older than later writes' */
	rc = pobox_store_ingest(pb->st, &staged);
	if (rc == 0 && o->dry_run)
		rc = pobox_store_query_int64(pb->st, "SELECT coalesce(max(id), 0) + 1 FROM batches", &first);
	if (rc == 0)
		rc = run_cut(&c);
	if (rc == 0 && o->dry_run) {
		if (o->plan_fn)
			rc = o->plan_fn(o->plan_ctx, pb, first);
		char keep[POBOX_ERRLEN];
		memcpy(keep, pb->err, sizeof keep);
		pobox_rollback(pb);
		memcpy(pb->err, keep, sizeof keep);
	} else if (rc == 0)
		rc = pobox_commit(pb);
	else {
		char keep[POBOX_ERRLEN];
		memcpy(keep, pb->err, sizeof keep);
		pobox_rollback(pb);
		memcpy(pb->err, keep, sizeof keep);
	}
	if (rc == 0) {
		sum->batches += s.batches;
		sum->profiles += s.profiles;
		sum->updates += s.updates;
		sum->superseded += s.superseded;
		sum->carried += s.carried;
		sum->bytes += s.bytes;
		sum->dead_profiles += s.dead_profiles;
		sum->single_profiles += s.single_profiles;
		sum->single_urgent += s.single_urgent;
		sum->single_refused += s.single_refused;
		sum->single_refused_urgent += s.single_refused_urgent;
		sum->single_held += s.single_held;
	}
	return rc;
}

int pobox_sched_build(struct pobox *pb, const struct pobox_sched_opts *o, int64_t batch)
{
	struct pobox_cut_summary s = {0};
	struct cut c = {.pb = pb, .o = o, .sum = &s, .fixed_batch = batch};
	c.now_ms = pobox_clock_now_ms(&pb->clock);
	return run_cut(&c);
}
