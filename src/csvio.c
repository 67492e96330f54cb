/*
 * csvio.c - streaming CSV reader and row writer (see csvio.h).
 */
#include "csvio.h"
#include "alloc.h"
#include "error.h"
#include "pobox.h"

#include <csv.h>
#include <errno.h>
#include <string.h>

struct reader {
	/* current row: fields packed into one growable buffer */
	char *buf;
	size_t buf_len, buf_cap;
	size_t *offs, *lens;
	char **ptrs;
	size_t nfields, fields_cap;
	int64_t line;        /* line being fed */
	int64_t row_line;    /* line the current row started on, 0 = none yet */
	int64_t bytes;
	int stop;            /* callback result or error code */
	int too_many;
	pobox_csv_row_fn fn;
	void *ctx;
};

static void on_field(void *s, size_t len, void *data)
{
	struct reader *r = data;
	if (r->stop)
		return;
	if (r->row_line == 0)
		r->row_line = r->line;
	if (r->nfields == POBOX_CSV_MAX_FIELDS) {
		r->too_many = 1;
		r->stop = POBOX_EINVALID;
		return;
	}
	if (r->nfields == r->fields_cap) {
		size_t ncap = r->fields_cap ? r->fields_cap * 2 : 32;
		size_t *no = pobox_realloc(r->offs, ncap * sizeof *no);
		if (no)
			r->offs = no;
		size_t *nl = pobox_realloc(r->lens, ncap * sizeof *nl);
		if (nl)
			r->lens = nl;
		char **np = pobox_realloc(r->ptrs, ncap * sizeof *np);
		if (np)
			r->ptrs = np;
		if (!no || !nl || !np) {
			r->stop = POBOX_ENOMEM;
			return;
		}
		r->fields_cap = ncap;
	}
	if (r->buf_len + len + 1 > r->buf_cap) {
		size_t ncap = r->buf_cap ? r->buf_cap : 4096;
		while (ncap < r->buf_len + len + 1)
			ncap *= 2;
		char *nb = pobox_realloc(r->buf, ncap);
		if (!nb) {
			r->stop = POBOX_ENOMEM;
			return;
		}
		r->buf = nb;
		r->buf_cap = ncap;
	}
	r->offs[r->nfields] = r->buf_len;
	r->lens[r->nfields] = len;
	if (len)
		memcpy(r->buf + r->buf_len, s, len);
	r->buf_len += len;
	r->buf[r->buf_len++] = '\0';
	r->nfields++;
}

static void on_row(int term, void *data)
{
	struct reader *r = data;
	(void)term;
	if (r->stop)
		return;
	if (r->row_line == 0)
		r->row_line = r->line;
	for (size_t i = 0; i < r->nfields; i++)
		r->ptrs[i] = r->buf + r->offs[i];
	struct pobox_csv_row row = {
		.nfields = r->nfields,
		.fields = r->ptrs,
		.lens = r->lens,
		.line = r->row_line,
		.end_line = r->line,
		.bytes_read = r->bytes,
	};
	if (r->nfields)
		r->stop = r->fn(r->ctx, &row);
	r->nfields = 0;
	r->buf_len = 0;
	r->row_line = 0;
}

/* A field over the limit: with a quote open the likely cause is a quote
 * that never closes; without one the file really holds a value that long
 * (or is not CSV text at all). */
static int too_long(const struct csv_parser *p, const struct reader *r, const char *name,
                    char *err, size_t errlen)
{
	if (p->quoted)
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "%s:%lld: a field is longer than %u bytes (a quote opened on "
		                  "line %lld that never closes?)",
		                  name, (long long)r->line, POBOX_CSV_MAX_FIELD,
		                  (long long)(r->row_line ? r->row_line : r->line));
	return pobox_errf(err, errlen, POBOX_EINVALID,
	                  "%s:%lld: a field is longer than %u bytes, the most pobox reads in one "
	                  "cell (no quote is open: the value itself is that long, or the file is "
	                  "not CSV text)",
	                  name, (long long)r->line, POBOX_CSV_MAX_FIELD);
}

/* Byte-order marks of encodings other than UTF-8: read as UTF-8, such a
 * file would fail later with a puzzling message ("attribute name is
 * empty"), so it is named at once. */
static int not_utf8(const char *s, size_t n, const char *name, char *err, size_t errlen)
{
	const char *enc = NULL, *bom = NULL;
	if (n >= 4 && memcmp(s, "\xFF\xFE\0\0", 4) == 0)
		enc = "UTF-32 (little-endian)", bom = "FF FE 00 00";
	else if (n >= 4 && memcmp(s, "\0\0\xFE\xFF", 4) == 0)
		enc = "UTF-32 (big-endian)", bom = "00 00 FE FF";
	else if (n >= 2 && memcmp(s, "\xFF\xFE", 2) == 0)
		enc = "UTF-16 (little-endian)", bom = "FF FE";
	else if (n >= 2 && memcmp(s, "\xFE\xFF", 2) == 0)
		enc = "UTF-16 (big-endian)", bom = "FE FF";
	if (!enc)
		return 0;
	return pobox_errf(err, errlen, POBOX_EINVALID,
	                  "%s:1: the file is %s text (it starts with the byte-order mark %s); pobox "
	                  "reads UTF-8: convert it first, e.g. iconv -f %.6s -t UTF-8",
	                  name, enc, bom, enc);
}

static int no_space(unsigned char c)
{
	(void)c;
	return 0;
}

/* Length of the line that starts at s, with its end: up to and including
 * its LF, CRLF or lone CR (libcsv ends a row at each of the three), or n
 * when it goes on past the block.  *ends is 1 when a line ended, 2 when
 * the block's last byte is a CR (a line end, whose LF may follow in the
 * next block), 0 otherwise. */
static size_t line_end(const char *s, size_t n, int *ends)
{
	const char *nl = memchr(s, '\n', n);
	size_t lf = nl ? (size_t)(nl - s) : n;
	const char *cr = memchr(s, '\r', lf);
	*ends = 1;
	if (cr && (size_t)(cr - s) + 1 < lf)
		return (size_t)(cr - s) + 1; /* a lone CR */
	if (nl)
		return lf + 1;               /* LF or CRLF */
	*ends = cr ? 2 : 0;
	return n;
}

int pobox_csv_read(FILE *in, const char *name, pobox_csv_row_fn fn, void *ctx, char *err,
                   size_t errlen)
{
	enum { BLOCK = POBOX_CSV_BLOCK };
	struct csv_parser p;
	struct reader r = {.line = 1, .fn = fn, .ctx = ctx};
	char *block = NULL;
	int rc = 0, first = 1;
	int cr_ended = 0; /* the last block ended in CR: an LF first in the next is its CRLF */

	if (csv_init(&p, CSV_STRICT_FINI) != 0)
		return pobox_errf(err, errlen, POBOX_ENOMEM, "%s: cannot set up the CSV parser", name);
	/* Values are kept byte for byte: libcsv would trim spaces and tabs
	 * around unquoted fields, which silently changes data. */
	csv_set_space_func(&p, no_space);
	csv_set_realloc_func(&p, pobox_realloc);
	csv_set_free_func(&p, pobox_free);
	block = pobox_malloc(BLOCK);
	if (!block) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "%s: out of memory", name);
		goto out;
	}
	for (;;) {
		size_t n = fread(block, 1, BLOCK, in);
		if (n == 0)
			break;
		char *s = block;
		if (first) {
			first = 0;
			if ((rc = not_utf8(s, n, name, err, errlen)) != 0)
				goto out;
			if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
				s += 3;
				n -= 3;
				r.bytes += 3;
			}
		}
		/* Feed line by line so callbacks know which line they are on. */
		while (n > 0) {
			int ends;
			size_t chunk = line_end(s, n, &ends);
			if (cr_ended && s[0] == '\n')
				chunk = 1, ends = 0; /* the LF of a CRLF cut by the block */
			cr_ended = 0;
			r.bytes += (int64_t)chunk;
			if (csv_parse(&p, s, chunk, on_field, on_row, &r) != chunk && !r.stop) {
				rc = pobox_errf(err, errlen, POBOX_EINVALID, "%s:%lld: CSV error: %s", name,
				                (long long)r.line, csv_strerror(csv_error(&p)));
				goto out;
			}
			if (r.stop)
				goto stopped;
			/* A row that began on this line and goes on (a quoted newline)
			 * starts here, not where its first field ends. */
			if (r.row_line == 0 && p.pstate != 0)
				r.row_line = r.line;
			if (p.entry_pos > POBOX_CSV_MAX_FIELD) {
				rc = too_long(&p, &r, name, err, errlen);
				goto out;
			}
			if (ends)
				r.line++;
			cr_ended = ends == 2;
			s += chunk;
			n -= chunk;
		}
	}
	if (ferror(in)) {
		rc = pobox_errf(err, errlen, POBOX_EIO, "%s: read error: %s", name, strerror(errno));
		goto out;
	}
	/* libcsv reports an unclosed quote only in full strict mode, which
	 * would also refuse stray quotes inside unquoted fields; check it here. */
	if ((p.pstate == 2 /* FIELD_BEGUN */ && p.quoted) ||
	    (csv_fini(&p, on_field, on_row, &r) != 0 && !r.stop)) {
		rc = pobox_errf(err, errlen, POBOX_EINVALID,
		                "%s:%lld: the file ends inside a quoted field (opened on line %lld); "
		                "close the quote",
		                name, (long long)r.line, (long long)(r.row_line ? r.row_line : r.line));
		goto out;
	}
stopped:
	if (r.stop) {
		rc = r.stop;
		if (r.too_many)
			pobox_errf(err, errlen, POBOX_EINVALID, "%s:%lld: more than %d fields in one row",
			           name, (long long)(r.row_line ? r.row_line : r.line),
			           POBOX_CSV_MAX_FIELDS);
		else if (rc == POBOX_ENOMEM)
			pobox_errf(err, errlen, POBOX_ENOMEM, "%s:%lld: out of memory", name,
			           (long long)r.line);
	}
out:
	csv_free(&p);
	pobox_free(block);
	pobox_free(r.buf);
	pobox_free(r.offs);
	pobox_free(r.lens);
	pobox_free(r.ptrs);
	return rc;
}

int pobox_csv_write_row(FILE *fp, size_t n, const char *const *fields, const size_t *lens)
{
	for (size_t i = 0; i < n; i++) {
		if (i && fputc(',', fp) == EOF)
			return POBOX_EIO;
		if (csv_fwrite(fp, fields[i], lens[i]) != 0)
			return POBOX_EIO;
	}
	return fputc('\n', fp) == EOF ? POBOX_EIO : 0;
}
