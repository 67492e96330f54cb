/*
 * cells.c - JSON arrays of a write's values (see cells.h).
 *
 * The encoder writes the shortest valid form: no white space, a string's
 * '"' and '\\' escaped with a backslash, control characters as \n, \t, \r,
 * \b, \f or \u00XX; every other byte (UTF-8 included) as it is.  The
 * decoder is strict JSON for arrays of strings, integers, nulls and one
 * level of nested arrays; it never reads past `end`.
 */
#include "cells.h"
#include "alloc.h"
#include "urlenc.h"

#include <stdio.h>
#include <string.h>

/* ---- encoding ---------------------------------------------------------- */

static int reserve(struct pobox_cells_buf *b, size_t more)
{
	if (b->nomem)
		return -1;
	if (b->len + more + 1 <= b->cap)
		return 0;
	size_t n = b->cap ? b->cap : 256;
	while (n < b->len + more + 1)
		n *= 2;
	char *ns = pobox_realloc(b->s, n);
	if (!ns) {
		b->nomem = 1;
		return -1;
	}
	b->s = ns;
	b->cap = n;
	return 0;
}

void pobox_cells_buf_reset(struct pobox_cells_buf *b)
{
	b->len = 0;
	b->nomem = 0;
	b->elems = 0;
	if (b->s)
		b->s[0] = '\0';
}

void pobox_cells_buf_free(struct pobox_cells_buf *b)
{
	pobox_free(b->s);
	memset(b, 0, sizeof *b);
}

static void sep(struct pobox_cells_buf *b)
{
	if (b->elems++ && reserve(b, 1) == 0)
		b->s[b->len++] = ',';
}

void pobox_cells_open(struct pobox_cells_buf *b)
{
	sep(b);
	if (reserve(b, 1) == 0)
		b->s[b->len++] = '[';
	b->elems = 0;
}

void pobox_cells_close(struct pobox_cells_buf *b)
{
	if (reserve(b, 1) == 0) {
		b->s[b->len++] = ']';
		b->s[b->len] = '\0';
	}
	b->elems = 1; /* the closed array is an element of the enclosing one */
}

void pobox_cells_null(struct pobox_cells_buf *b)
{
	sep(b);
	if (reserve(b, 4) == 0) {
		memcpy(b->s + b->len, "null", 4);
		b->len += 4;
	}
}

void pobox_cells_int(struct pobox_cells_buf *b, int64_t v)
{
	sep(b);
	if (reserve(b, 24) == 0)
		b->len += (size_t)snprintf(b->s + b->len, 24, "%lld", (long long)v);
}

void pobox_cells_str(struct pobox_cells_buf *b, const char *v, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	sep(b);
	/* worst case: every byte a \u00XX escape */
	if (reserve(b, len * 6 + 2) != 0)
		return;
	char *o = b->s + b->len;
	*o++ = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = (char)c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\n': *o++ = 'n'; break;
		case '\t': *o++ = 't'; break;
		case '\r': *o++ = 'r'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->s);
}

/* ---- decoding ---------------------------------------------------------- */

static void skip_ws(struct pobox_cells_reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

int pobox_cells_read_begin(struct pobox_cells_reader *r, const char *text, size_t len,
                           char *scratch)
{
	r->p = text;
	r->end = text + len;
	r->scratch = scratch;
	r->used = 0;
	r->first = 1;
	skip_ws(r);
	if (r->p >= r->end || *r->p != '[')
		return -1;
	r->p++;
	return 0;
}

static int read_u4(struct pobox_cells_reader *r, unsigned *out)
{
	if (r->end - r->p < 4)
		return -1;
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		int h = pobox_hexval((unsigned char)r->p[i]);
		if (h < 0)
			return -1;
		v = v * 16 + (unsigned)h;
	}
	r->p += 4;
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* r->p is just past the opening quote. */
static int read_string(struct pobox_cells_reader *r, struct pobox_cell *out)
{
	const char *start = r->p;
	while (r->p < r->end && *r->p != '"' && *r->p != '\\') {
		if ((unsigned char)*r->p < 0x20)
			return -1;
		r->p++;
	}
	if (r->p >= r->end)
		return -1;
	if (*r->p == '"') { /* nothing to unescape: point into the input */
		out->s = start;
		out->len = (size_t)(r->p - start);
		r->p++;
		return 0;
	}
	/* unescape into scratch */
	if (!r->scratch)
		return -1;
	char *o = r->scratch + r->used;
	size_t n = (size_t)(r->p - start);
	memcpy(o, start, n);
	while (r->p < r->end && *r->p != '"') {
		unsigned char c = (unsigned char)*r->p;
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			o[n++] = (char)c;
			r->p++;
			continue;
		}
		if (++r->p >= r->end)
			return -1;
		char e = *r->p++;
		switch (e) {
		case '"': o[n++] = '"'; break;
		case '\\': o[n++] = '\\'; break;
		case '/': o[n++] = '/'; break;
		case 'b': o[n++] = '\b'; break;
		case 'f': o[n++] = '\f'; break;
		case 'n': o[n++] = '\n'; break;
		case 'r': o[n++] = '\r'; break;
		case 't': o[n++] = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (read_u4(r, &cp) != 0)
				return -1;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u')
					return -1;
				r->p += 2;
				if (read_u4(r, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
					return -1;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				return -1;
			}
			/* \uXXXX is 6 bytes for at most 3 UTF-8 bytes, a pair is 12 for 4 */
			n += put_utf8(o + n, cp);
			break;
		}
		default:
			return -1;
		}
	}
	if (r->p >= r->end)
		return -1;
	r->p++;
	out->s = o;
	out->len = n;
	r->used += n;
	return 0;
}

static int read_int(struct pobox_cells_reader *r, struct pobox_cell *out)
{
	int neg = 0;
	uint64_t v = 0;
	if (*r->p == '-') {
		neg = 1;
		r->p++;
	}
	const char *digits = r->p;
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		unsigned d = (unsigned)(*r->p - '0');
		if (v > (UINT64_C(9223372036854775808) - d) / 10)
			return -1;
		v = v * 10 + d;
		r->p++;
	}
	if (r->p == digits || (r->p - digits > 1 && *digits == '0'))
		return -1;
	if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E'))
		return -1; /* not an integer: none of our forms has one */
	if (!neg && v > INT64_MAX)
		return -1;
	out->i = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Skips a nested array (of scalars) and records its text. */
static int read_array(struct pobox_cells_reader *r, struct pobox_cell *out)
{
	const char *start = r->p - 1;
	int in_str = 0;
	while (r->p < r->end) {
		char c = *r->p++;
		if (in_str) {
			if (c == '\\') {
				if (r->p >= r->end)
					return -1;
				r->p++;
			} else if (c == '"') {
				in_str = 0;
			}
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[') {
			return -1; /* deeper than our forms go */
		} else if (c == ']') {
			out->raw = start;
			out->raw_len = (size_t)(r->p - start);
			return 0;
		}
	}
	return -1;
}

int pobox_cells_next(struct pobox_cells_reader *r, struct pobox_cell *out)
{
	skip_ws(r);
	if (r->p >= r->end)
		return -1;
	if (*r->p == ']') {
		r->p++;
		return 0;
	}
	if (!r->first) {
		if (*r->p != ',')
			return -1;
		r->p++;
		skip_ws(r);
		if (r->p >= r->end)
			return -1;
	}
	r->first = 0;
	memset(out, 0, sizeof *out);
	char c = *r->p;
	if (c == '"') {
		r->p++;
		out->type = POBOX_CELL_STR;
		return read_string(r, out) == 0 ? 1 : -1;
	}
	if (c == 'n') {
		if (r->end - r->p < 4 || memcmp(r->p, "null", 4) != 0)
			return -1;
		r->p += 4;
		out->type = POBOX_CELL_NULL;
		return 1;
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		out->type = POBOX_CELL_INT;
		return read_int(r, out) == 0 ? 1 : -1;
	}
	if (c == '[') {
		r->p++;
		out->type = POBOX_CELL_ARRAY;
		return read_array(r, out) == 0 ? 1 : -1;
	}
	return -1;
}

int pobox_cells_read_shape(const char *text, size_t len, int64_t *ids, size_t max, size_t *n)
{
	struct pobox_cells_reader r;
	struct pobox_cell c;
	int k;
	*n = 0;
	if (pobox_cells_read_begin(&r, text, len, NULL) != 0)
		return -1;
	while ((k = pobox_cells_next(&r, &c)) == 1) {
		if (c.type != POBOX_CELL_INT || *n >= max)
			return -1;
		ids[(*n)++] = c.i;
	}
	return k == 0 ? 0 : -1;
}
