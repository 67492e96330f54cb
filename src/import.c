/*
 * import.c - CSV export -> outbox (see import.h).
 *
 * Owns header interpretation, per-row validation and the reject file.  CSV
 * parsing is csvio.c's, rules are validate.c's, storage is the store's.
 * A row is one write: its values packed as one JSON array (cells.h) in the
 * header's shape (attribute ids interned once, from the header), so a row
 * costs one INSERT, however many columns it has; its profile is found with
 * the store's stable-order lookup (store/keys.c).
 */
#include "import.h"
#include "alloc.h"
#include "cells.h"
#include "csvio.h"
#include "error.h"
#include "outbox.h"
#include "urlenc.h"
#include "validate.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct column {
	int64_t id;       /* interned attribute id; 0 for the id column */
	char *name;       /* the header cell (URL-decoded in batch form) */
	size_t name_len;
	const char *attr; /* name without "profile.", pointing into name */
	size_t attr_len;
};

struct import {
	struct pobox *pb;
	const struct pobox_import_opts *o;
	const char *name;
	struct pobox_import_summary sum;
	int header_done;
	int batch_form;             /* header was `batch=...`: cells are URL-encoded */
	size_t ncols;
	size_t id_col;
	enum pobox_id_type id_type;
	struct column *cols;
	int64_t source;
	int64_t shape;              /* the attribute columns, in order */
	size_t width;
	struct pobox_cells_buf cells_json;
	int64_t rows_in_tx;
	char **orig_header;         /* header as read, for the reject file */
	size_t *orig_header_lens;
	const char **cell;          /* the current row's cells, one per column */
	unsigned char *same;        /* changed_only: cell equals the last delivered value */
	size_t *cell_len;
	char *decoded;              /* scratch for URL-decoding a row */
	size_t decoded_cap;
	int64_t started_ms, last_progress_ms;
	/* The open transaction: its tallies join `sum` only when it commits
	 * (a summary counts what is in the outbox, not what was rolled back),
	 * the line of its first row (where a rolled-back import resumes) and
	 * the reject file's length when it began (rejects after a stop are cut
	 * off again, so the reject file matches the summary). */
	struct pobox_import_summary tx;
	int64_t tx_first_line;
	long tx_reject_off;
	int64_t next_line;          /* where the row after the last one read begins */
	int store_failed;           /* the stop came from the store: the transaction is lost */
	/* room checks inside a transaction (see room()) */
	int64_t appended;           /* estimated bytes appended since the last check */
	int64_t check_after;        /* ... and how many may be appended before the next */
	char reason[POBOX_ERRLEN];
};

static void trim(char **s, size_t *len)
{
	while (*len && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

enum {
	ROW_OVERHEAD = 64,     /* estimated bytes of record and index entry per update */
	CHECK_SHARE = 16,
	MIN_CHECK = 16 << 10,
};

static int store_failed(struct import *im, int rc)
{
	im->store_failed = 1;
	return rc;
}

/* The header's names, decoded (a batch= file's are %-escaped). */
static int header_names(struct import *im, const struct pobox_csv_row *row)
{
	char *err = im->pb->err;
	const size_t errlen = sizeof im->pb->err;

	for (size_t i = 0; i < im->ncols; i++) {
		char *s = row->fields[i];
		size_t len = row->lens[i];
		if (!(im->orig_header[i] = pobox_strndup(s, len)))
			return pobox_errf(err, errlen, POBOX_ENOMEM, "%s: out of memory", im->name);
		im->orig_header_lens[i] = len;
		trim(&s, &len);
		if (i == 0 && len >= 6 && memcmp(s, "batch=", 6) == 0) {
			im->batch_form = 1;
			s += 6;
			len -= 6;
		}
		char *name = pobox_malloc(len + 1);
		if (!name)
			return pobox_errf(err, errlen, POBOX_ENOMEM, "%s: out of memory", im->name);
		im->cols[i].name = name;
		if (im->batch_form) {
			size_t d = pobox_urldecode(name, s, len);
			if (d == (size_t)-1)
				return pobox_errf(err, errlen, POBOX_EINVALID,
				                  "%s:%lld: header column %zu has a malformed %%-escape",
				                  im->name, (long long)row->line, i + 1);
			len = d;
		} else {
			memcpy(name, s, len);
			name[len] = '\0';
		}
		im->cols[i].name_len = len;
		/* a NUL would end the name early everywhere it is used as a string */
		const char *nul = memchr(name, '\0', len);
		if (nul)
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "%s:%lld: header column %zu contains a NUL byte at byte offset %zu; "
			                  "fix the header (nothing was imported)",
			                  im->name, (long long)row->line, i + 1, (size_t)(nul - name));
	}
	return 0;
}

/* Which column holds the ids (--id-column, or the first) and their type. */
static int header_id_column(struct import *im, const struct pobox_csv_row *row)
{
	char *err = im->pb->err;
	const size_t errlen = sizeof im->pb->err;

	im->id_col = 0;
	if (im->o->id_column) {
		size_t i;
		for (i = 0; i < im->ncols; i++)
			if (strcmp(im->cols[i].name, im->o->id_column) == 0)
				break;
		if (i == im->ncols)
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "%s:%lld: the header has no column named '%s' (--id-column)",
			                  im->name, (long long)row->line, im->o->id_column);
		im->id_col = i;
	}
	if (im->o->have_id_type) {
		im->id_type = im->o->id_type;
	} else if (pobox_id_type_parse(im->cols[im->id_col].name, &im->id_type, im->reason,
	                               sizeof im->reason) != 0) {
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "%s:%lld: id column %zu ('%s') does not name an id type: %s; name the "
		                  "column thirdPartyId or pcId, or pass --id-type",
		                  im->name, (long long)row->line, im->id_col + 1,
		                  im->cols[im->id_col].name, im->reason);
	}
	return 0;
}

/* Validates and interns each attribute column (no name twice). */
static int header_attrs(struct import *im, const struct pobox_csv_row *row)
{
	struct pobox *pb = im->pb;
	char *err = pb->err;
	const size_t errlen = sizeof pb->err;
	int rc;

	for (size_t i = 0; i < im->ncols; i++) {
		struct column *c = &im->cols[i];
		if (i == im->id_col)
			continue;
		if (pobox_validate_attr(c->name, c->name_len, &c->attr, &c->attr_len, im->reason,
		                        sizeof im->reason) != 0)
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "%s:%lld: header column %zu: %s; fix the header (nothing was "
			                  "imported)",
			                  im->name, (long long)row->line, i + 1, im->reason);
		for (size_t j = 0; j < i; j++) {
			const struct column *d = &im->cols[j];
			if (j != im->id_col && d->attr_len == c->attr_len &&
			    memcmp(d->attr, c->attr, c->attr_len) == 0)
				return pobox_errf(err, errlen, POBOX_EINVALID,
				                  "%s:%lld: header columns %zu and %zu both name attribute "
				                  "'%.*s'; keep one (nothing was imported)",
				                  im->name, (long long)row->line, j + 1, i + 1,
				                  (int)c->attr_len, c->attr);
		}
		if ((rc = pobox_store_attr(pb->st, c->attr, c->attr_len, &c->id)) != 0)
			return store_failed(im, rc);
	}
	if (im->ncols < 2)
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "%s:%lld: the header names no attribute columns, only the id column",
		                  im->name, (long long)row->line);
	return 0;
}

/* The shape every record of this file is written with: its attribute ids. */
static int header_shape(struct import *im)
{
	int64_t *attrs = pobox_malloc(im->ncols * sizeof *attrs);
	if (!attrs)
		return pobox_errf(im->pb->err, sizeof im->pb->err, POBOX_ENOMEM, "%s: out of memory",
		                  im->name);
	im->width = 0;
	for (size_t i = 0; i < im->ncols; i++)
		if (i != im->id_col)
			attrs[im->width++] = im->cols[i].id;
	int rc = pobox_store_shape_id(im->pb->st, attrs, im->width, &im->shape);
	pobox_free(attrs);
	return rc;
}

/* The reject file is a CSV an operator can fix and import again:
 * line,reason,<the original columns>. */
static int header_reject(struct import *im)
{
	size_t n = im->ncols + 2;
	const char **f = pobox_malloc(n * sizeof *f);
	size_t *l = pobox_malloc(n * sizeof *l);
	int rc = POBOX_ENOMEM;
	if (f && l) {
		f[0] = "line", l[0] = 4;
		f[1] = "reason", l[1] = 6;
		for (size_t i = 0; i < im->ncols; i++) {
			f[i + 2] = im->orig_header[i];
			l[i + 2] = im->orig_header_lens[i];
		}
		rc = pobox_csv_write_row(im->o->reject, n, f, l);
	}
	pobox_free(f);
	pobox_free(l);
	if (rc)
		return pobox_errf(im->pb->err, sizeof im->pb->err, rc,
		                  "%s: cannot write the reject file", im->name);
	return 0;
}

static int header(struct import *im, const struct pobox_csv_row *row)
{
	struct pobox *pb = im->pb;
	int rc;

	im->ncols = row->nfields;
	im->cols = pobox_calloc(im->ncols, sizeof *im->cols);
	im->orig_header = pobox_calloc(im->ncols, sizeof *im->orig_header);
	im->orig_header_lens = pobox_calloc(im->ncols, sizeof *im->orig_header_lens);
	im->cell = pobox_calloc(im->ncols, sizeof *im->cell);
	im->cell_len = pobox_calloc(im->ncols, sizeof *im->cell_len);
	im->same = pobox_calloc(im->ncols, 1);
	if (!im->same || !im->cols || !im->orig_header || !im->orig_header_lens || !im->cell || !im->cell_len)
		return pobox_errf(pb->err, sizeof pb->err, POBOX_ENOMEM, "%s: out of memory", im->name);
	/* names first: the id column may be named by --id-column */
	if ((rc = header_names(im, row)) != 0 || (rc = header_id_column(im, row)) != 0)
		return rc;
	if ((rc = pobox_begin(pb)) != 0)
		return rc;
	if (im->o->source && (rc = pobox_store_source(pb->st, im->o->source, &im->source)) != 0)
		return store_failed(im, rc);
	if ((rc = header_attrs(im, row)) != 0 || (rc = header_shape(im)) != 0)
		return rc;
	if (im->o->reject && (rc = header_reject(im)) != 0)
		return rc;
	im->header_done = 1;
	return 0;
}

static int write_reject(struct import *im, const struct pobox_csv_row *row, const char *reason)
{
	FILE *fp = im->o->reject;
	im->tx.rejected++;
	if (im->o->on_reject)
		im->o->on_reject(im->o->reject_ctx, row->line, reason);
	if (!fp)
		return 0;
	size_t n = row->nfields + 2;
	const char **f = pobox_malloc(n * sizeof *f);
	size_t *l = pobox_malloc(n * sizeof *l);
	char line[32];
	int rc = POBOX_ENOMEM;
	if (f && l) {
		l[0] = (size_t)snprintf(line, sizeof line, "%lld", (long long)row->line);
		f[0] = line;
		f[1] = reason;
		l[1] = strlen(reason);
		for (size_t i = 0; i < row->nfields; i++) {
			f[i + 2] = row->fields[i];
			l[i + 2] = row->lens[i];
		}
		rc = pobox_csv_write_row(fp, n, f, l);
		if (rc)
			pobox_errf(im->pb->err, sizeof im->pb->err, rc, "%s: cannot write the reject file",
			           im->name);
	}
	pobox_free(f);
	pobox_free(l);
	return rc;
}

/* Fills im->cell/im->cell_len with the row's cells as they should be stored
 * (URL-decoded once, in batch form).  Returns nonzero with im->reason set on
 * a malformed escape. */
static int cells(struct import *im, const struct pobox_csv_row *row)
{
	size_t used = 0;
	if (im->batch_form) {
		size_t need = 0;
		for (size_t i = 0; i < row->nfields; i++)
			need += row->lens[i] + 1;
		if (need > im->decoded_cap) {
			char *nd = pobox_realloc(im->decoded, need);
			if (!nd)
				return pobox_errf(im->pb->err, sizeof im->pb->err, POBOX_ENOMEM,
				                  "%s: out of memory", im->name);
			im->decoded = nd;
			im->decoded_cap = need;
		}
	}
	for (size_t i = 0; i < im->ncols; i++) {
		if (i >= row->nfields) {
			im->cell[i] = "";
			im->cell_len[i] = 0;
		} else if (!im->batch_form) {
			im->cell[i] = row->fields[i];
			im->cell_len[i] = row->lens[i];
		} else {
			char *dst = im->decoded + used;
			size_t d = pobox_urldecode(dst, row->fields[i], row->lens[i]);
			if (d == (size_t)-1) {
				pobox_errf(im->reason, sizeof im->reason, POBOX_EINVALID,
				           "column %zu (%s) has a malformed %%-escape", i + 1, im->cols[i].name);
				return 1;
			}
			im->cell[i] = dst;
			im->cell_len[i] = d;
			used += d + 1;
		}
	}
	return 0;
}

struct same_ctx {
	struct import *im;
	int64_t *nonempty;
};

static int on_delivered(void *ctx, int64_t attr, const char *v, size_t len)
{
	struct same_ctx *sc = ctx;
	struct import *im = sc->im;
	for (size_t i = 0; i < im->ncols; i++) {
		if (i != im->id_col && im->cols[i].id == attr && !im->same[i] && im->cell_len[i] == len &&
		    im->cell_len[i] && memcmp(im->cell[i], v, len) == 0) {
			im->same[i] = 1;
			im->tx.unchanged++;
			(*sc->nonempty)--;
		}
	}
	return 0;
}

/* --changed-only: marks the cells whose value Target already has. */
static int mark_unchanged(struct import *im, const struct pobox_profile_ref *ref, int64_t *nonempty)
{
	memset(im->same, 0, im->ncols);
	if (!ref->id || ref->done_seq == 0)
		return 0; /* nothing of it delivered yet */
	struct same_ctx sc = {im, nonempty};
	return pobox_store_last_delivered(im->pb->st, ref->id, ref->done_seq, ref->sent_seq,
	                                  on_delivered, &sc);
}

/* The row's values as one JSON array in the header's shape: null for an
 * empty cell and for one Target already has. */
static int pack(struct import *im, const char **out, size_t *len)
{
	struct pobox_cells_buf *b = &im->cells_json;
	pobox_cells_buf_reset(b);
	pobox_cells_open(b);
	for (size_t i = 0; i < im->ncols; i++) {
		if (i == im->id_col)
			continue;
		if (im->cell_len[i] == 0 || im->same[i])
			pobox_cells_null(b);
		else
			pobox_cells_str(b, im->cell[i], im->cell_len[i]);
	}
	pobox_cells_close(b);
	if (b->nomem)
		return pobox_errf(im->pb->err, sizeof im->pb->err, POBOX_ENOMEM, "%s: out of memory",
		                  im->name);
	*out = b->s;
	*len = b->len;
	return 0;
}

static int data_row(struct import *im, const struct pobox_csv_row *row)
{
	struct pobox *pb = im->pb;
	int64_t empty = 0, nonempty = 0;
	int rc;

	im->tx.rows++;
	if (row->nfields > im->ncols) {
		snprintf(im->reason, sizeof im->reason, "row has %zu fields; the header has %zu",
		         row->nfields, im->ncols);
		return write_reject(im, row, im->reason);
	}
	if ((rc = cells(im, row)) != 0)
		return rc < 0 ? rc : write_reject(im, row, im->reason);
	const char *id = im->cell[im->id_col];
	size_t id_len = im->cell_len[im->id_col];
	if (id_len == 0) {
		snprintf(im->reason, sizeof im->reason, "profile id (column %zu) is empty",
		         im->id_col + 1);
		return write_reject(im, row, im->reason);
	}
	if (pobox_validate_profile_id(im->id_type, id, id_len, im->reason, sizeof im->reason) != 0)
		return write_reject(im, row, im->reason);

	/* Validate every cell before storing any, so a row is all or nothing. */
	for (size_t i = 0; i < im->ncols; i++) {
		if (i == im->id_col)
			continue;
		rc = pobox_validate_value(im->cell[i], im->cell_len[i], pb->opts.max_value_chars,
		                          im->reason, sizeof im->reason);
		if (rc == POBOX_SKIPPED) {
			empty++;
		} else if (rc != 0) {
			char col[POBOX_ERRLEN + 64];
			snprintf(col, sizeof col, "column %zu (%s): %s", i + 1, im->cols[i].name, im->reason);
			return write_reject(im, row, col);
		} else {
			nonempty++;
		}
	}
	im->tx.empty += empty;
	if (nonempty == 0)
		return 0;
	struct pobox_profile_ref ref;
	if ((rc = pobox_store_profile_find(pb->st, im->id_type, id, id_len, &ref)) != 0)
		return store_failed(im, rc);
	memset(im->same, 0, im->ncols);
	if (im->o->changed_only && (rc = mark_unchanged(im, &ref, &nonempty)) != 0)
		return store_failed(im, rc);
	if (nonempty == 0)
		return 0;
	const char *cells = NULL;
	size_t cells_len = 0;
	if ((rc = pack(im, &cells, &cells_len)) != 0 ||
	    (rc = pobox_store_write(pb->st, im->id_type, id, id_len, &ref, im->shape, im->width, cells,
	                            cells_len, nonempty, pobox_clock_now_ms(&pb->clock), im->source,
	                            im->o->urgent, NULL)) != 0)
		return store_failed(im, rc);
	/* a new profile's row and key, and the write (what room checks count) */
	im->appended += (int64_t)(id_len + cells_len) + 2 * ROW_OVERHEAD;
	im->tx.updates += nonempty;
	return 0;
}

/* ---- transactions and room ------------------------------------------- */

static void start_tx(struct import *im)
{
	memset(&im->tx, 0, sizeof im->tx);
	im->tx_first_line = 0;
	im->tx_reject_off = im->o->reject ? ftell(im->o->reject) : -1;
}

static void fold_tx(struct import *im)
{
	im->sum.rows += im->tx.rows;
	im->sum.updates += im->tx.updates;
	im->sum.empty += im->tx.empty;
	im->sum.rejected += im->tx.rejected;
	im->sum.unchanged += im->tx.unchanged;
	start_tx(im);
}

/* The transaction is gone: the import resumes at its first row, and the
 * rejects it wrote are cut off the reject file (when it is a file). */
static void lose_tx(struct import *im)
{
	FILE *fp = im->o->reject;
	if (im->tx_first_line)
		im->sum.stopped_line = im->tx_first_line;
	if (fp && im->tx_reject_off >= 0 && fflush(fp) == 0 &&
	    ftruncate(fileno(fp), im->tx_reject_off) == 0)
		fseek(fp, im->tx_reject_off, SEEK_SET);
	start_tx(im);
}

static int commit_tx(struct import *im)
{
	int rc = pobox_commit(im->pb);
	if (rc == 0)
		fold_tx(im);
	else
		lose_tx(im); /* a failed commit rolled back */
	return rc;
}

/* Bounds how far an import may overshoot max_outbox_size and
 * min_free_disk: before a row, once the bytes appended since the last look
 * reach a share of the room that was left then, look again (inside the
 * transaction: the store counts its uncommitted pages).  Appended bytes are
 * estimated at the cell's length plus ROW_OVERHEAD, which with
 * CHECK_SHARE = 16 keeps the growth between two looks well under an
 * eighth of the room, and under 16 KiB x 8 once the room is nearly gone:
 * far inside the promised max(1 MB, 1% of the limit). */
static int room(struct import *im)
{
	int64_t left = 0;
	if (im->appended < im->check_after)
		return 0;
	int rc = pobox_room_left(im->pb, &left);
	if (rc != 0)
		return rc; /* EFULL: the transaction is intact, the row not begun */
	im->appended = 0;
	im->check_after = left / CHECK_SHARE > MIN_CHECK ? left / CHECK_SHARE : MIN_CHECK;
	return 0;
}

static int on_row(void *ctx, const struct pobox_csv_row *row)
{
	struct import *im = ctx;
	int rc;
	if (!im->header_done) {
		if ((rc = header(im, row)) == 0)
			im->next_line = row->end_line + 1;
		return rc;
	}
	if ((rc = room(im)) != 0)
		return rc;
	if (!im->tx_first_line)
		im->tx_first_line = row->line;
	if ((rc = data_row(im, row)) != 0)
		return rc;
	im->next_line = row->end_line + 1;
	if (++im->rows_in_tx >= (im->o->rows_per_tx > 0 ? im->o->rows_per_tx : 10000)) {
		if ((rc = commit_tx(im)) != 0)
			return rc;
		im->rows_in_tx = 0;
		if ((rc = pobox_check_room(im->pb)) != 0)
			return rc; /* what is committed stays; the rest waits for room */
		if ((rc = pobox_begin(im->pb)) != 0)
			return rc;
	}
	if (im->o->progress && ((im->sum.rows + im->tx.rows) & 1023) == 0) {
		int64_t now = pobox_clock_now_ms(&im->pb->clock);
		if (now - im->last_progress_ms >= 250) {
			im->last_progress_ms = now;
			im->o->progress(im->o->progress_ctx, im->sum.rows + im->tx.rows, row->bytes_read,
			                im->o->total_bytes, now - im->started_ms);
		}
	}
	return 0;
}

/* After a stop: keeps the open transaction's rows when it is intact (a bad
 * line, no room for the next row, out of memory: what came before is
 * valid), loses it when the store failed inside it, and records where the
 * import stopped.  The error text on the handle is kept. */
static void finish_stop(struct import *im)
{
	struct pobox *pb = im->pb;
	char keep[POBOX_ERRLEN];
	memcpy(keep, pb->err, sizeof keep);
	if (pobox_store_in_tx(pb->st)) {
		if (im->store_failed) {
			pobox_rollback(pb);
			lose_tx(im);
		} else if (commit_tx(im) != 0) {
			pobox_rollback(pb);
		}
	}
	if (!im->sum.stopped_line) /* not set by a lost transaction */
		im->sum.stopped_line = im->next_line ? im->next_line : 1;
	/* a WAL swollen by the stopped import (or left by a failed commit) goes
	 * back to what it needs, so a full disk gets its space back */
	pobox_store_checkpoint(pb->st);
	memcpy(pb->err, keep, sizeof keep);
}

int pobox_import(struct pobox *pb, FILE *in, const char *name, const struct pobox_import_opts *o,
                 struct pobox_import_summary *summary)
{
	struct import im = {.pb = pb, .o = o, .name = name};
	int rc;

	pb->err[0] = '\0';
	im.started_ms = im.last_progress_ms = pobox_clock_now_ms(&pb->clock);
	start_tx(&im);
	if ((rc = pobox_check_room(pb)) != 0) {
		*summary = im.sum; /* refused before reading: stopped_line stays 0 */
		return rc;
	}
	rc = pobox_csv_read(in, name, on_row, &im, pb->err, sizeof pb->err);
	if (rc == 0 && !im.header_done)
		rc = pobox_errf(pb->err, sizeof pb->err, POBOX_EINVALID,
		                "%s: no header row (the file is empty)", name);
	if (rc == 0 && pobox_store_in_tx(pb->st) && (rc = commit_tx(&im)) != 0)
		im.store_failed = 1;
	if (rc != 0)
		finish_stop(&im);
	if (o->progress && im.header_done)
		o->progress(o->progress_ctx, im.sum.rows, -1, o->total_bytes,
		            pobox_clock_now_ms(&pb->clock) - im.started_ms);
	for (size_t i = 0; i < im.ncols; i++) {
		pobox_free(im.cols ? im.cols[i].name : NULL);
		pobox_free(im.orig_header ? im.orig_header[i] : NULL);
	}
	pobox_free(im.cols);
	pobox_free(im.orig_header);
	pobox_free(im.orig_header_lens);
	pobox_free(im.decoded);
	pobox_free(im.cell);
	pobox_free(im.cell_len);
	pobox_free(im.same);
	pobox_cells_buf_free(&im.cells_json);
	*summary = im.sum;
	return rc;
}
