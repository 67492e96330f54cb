/*
 * json.c - the strict JSON reader (see json.h).
 *
 * One recursive-descent pass over the bytes, depth-limited, appending a
 * token per value (and per member name).  Strings are only checked here
 * (escapes, UTF-8, no control characters); decoding happens on demand, so
 * a document costs its token array and nothing else.
 */
#include "json.h"
#include "alloc.h"
#include "error.h"
#include "pobox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const char *s;
	size_t len, pos;
	struct pobox_json *doc;
	size_t cap, max;
	int depth;
	char *err;
	size_t errlen;
};

static int fail(struct parser *p, const char *what)
{
	return pobox_errf(p->err, p->errlen, POBOX_EINVALID, "%s at byte %zu", what, p->pos);
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
	                           p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

/* Appends a token; *idx is its index. */
static int add_tok(struct parser *p, enum pobox_json_type t, size_t *idx)
{
	struct pobox_json *d = p->doc;
	if (d->n == p->max)
		return fail(p, "too many values");
	if (d->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		if (cap > p->max)
			cap = p->max;
		struct pobox_json_tok *nt = pobox_realloc(d->toks, cap * sizeof *nt);
		if (!nt)
			return pobox_errf(p->err, p->errlen, POBOX_ENOMEM, "out of memory reading JSON");
		d->toks = nt;
		p->cap = cap;
	}
	*idx = d->n++;
	memset(&d->toks[*idx], 0, sizeof d->toks[*idx]);
	d->toks[*idx].type = t;
	d->toks[*idx].start = p->pos;
	return 0;
}

static int hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return 0;
	}
	*out = v;
	return 1;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 if bad
 * (overlong forms, surrogates and values past U+10FFFF are bad). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F))
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
			return 0;
		return 4;
	}
	return 0;
}

/* A string starting at the opening quote: checked, token added. */
static int parse_string(struct parser *p)
{
	size_t idx;
	int rc;
	p->pos++; /* the quote */
	if ((rc = add_tok(p, POBOX_JSON_STRING, &idx)) != 0)
		return rc;
	while (p->pos < p->len) {
		unsigned char c = (unsigned char)p->s[p->pos];
		if (c == '"') {
			p->doc->toks[idx].len = p->pos - p->doc->toks[idx].start;
			p->doc->toks[idx].end = idx + 1;
			p->pos++;
			return 0;
		}
		if (c < 0x20)
			return fail(p, "control character in a string");
		if (c == '\\') {
			if (p->pos + 1 >= p->len)
				break;
			char e = p->s[p->pos + 1];
			if (strchr("\"\\/bfnrt", e) && e) {
				p->pos += 2;
				continue;
			}
			unsigned u, lo;
			if (e != 'u' || p->pos + 6 > p->len || !hex4(p->s + p->pos + 2, &u))
				return fail(p, "bad escape in a string");
			if (u >= 0xDC00 && u <= 0xDFFF)
				return fail(p, "lone low surrogate in a string");
			if (u >= 0xD800 && u <= 0xDBFF) {
				if (p->pos + 12 > p->len || p->s[p->pos + 6] != '\\' || p->s[p->pos + 7] != 'u' ||
				    !hex4(p->s + p->pos + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
					return fail(p, "high surrogate without its low half in a string");
				p->pos += 12;
				continue;
			}
			p->pos += 6;
			continue;
		}
		size_t n = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
		if (!n)
			return fail(p, "invalid UTF-8 in a string");
		p->pos += n;
	}
	return fail(p, "unterminated string");
}

static int parse_number(struct parser *p)
{
	size_t idx, i;
	int rc;
	if ((rc = add_tok(p, POBOX_JSON_NUMBER, &idx)) != 0)
		return rc;
	i = p->pos;
	if (i < p->len && p->s[i] == '-')
		i++;
	if (i < p->len && p->s[i] == '0') {
		i++;
	} else if (i < p->len && p->s[i] >= '1' && p->s[i] <= '9') {
		while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
			i++;
	} else {
		return fail(p, "bad number");
	}
	if (i < p->len && p->s[i] == '.') {
		size_t d = ++i;
		while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
			i++;
		if (i == d) {
			p->pos = i;
			return fail(p, "digits expected after '.'");
		}
	}
	if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
		i++;
		if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
			i++;
		size_t d = i;
		while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
			i++;
		if (i == d) {
			p->pos = i;
			return fail(p, "digits expected in an exponent");
		}
	}
	p->doc->toks[idx].len = i - p->pos;
	p->doc->toks[idx].end = idx + 1;
	p->pos = i;
	return 0;
}

static int parse_value(struct parser *p);

static int parse_container(struct parser *p, int object)
{
	size_t idx;
	int rc;
	if (++p->depth > POBOX_JSON_MAX_DEPTH)
		return fail(p, "nesting too deep");
	if ((rc = add_tok(p, object ? POBOX_JSON_OBJECT : POBOX_JSON_ARRAY, &idx)) != 0)
		return rc;
	p->pos++; /* { or [ */
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == (object ? '}' : ']')) {
		p->pos++;
		goto done;
	}
	for (;;) {
		skip_ws(p);
		if (object) {
			if (p->pos >= p->len || p->s[p->pos] != '"')
				return fail(p, "member name expected");
			if ((rc = parse_string(p)) != 0)
				return rc;
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
				return fail(p, "':' expected after a member name");
			p->pos++;
		}
		if ((rc = parse_value(p)) != 0)
			return rc;
		p->doc->toks[idx].size++;
		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == (object ? '}' : ']')) {
			p->pos++;
			break;
		}
		return fail(p, object ? "',' or '}' expected" : "',' or ']' expected");
	}
done:
	p->doc->toks[idx].len = p->pos - p->doc->toks[idx].start;
	p->doc->toks[idx].end = p->doc->n;
	p->depth--;
	return 0;
}

static int literal(struct parser *p, const char *word, enum pobox_json_type t)
{
	size_t n = strlen(word), idx;
	int rc;
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return fail(p, "unexpected character");
	if ((rc = add_tok(p, t, &idx)) != 0)
		return rc;
	p->doc->toks[idx].len = n;
	p->doc->toks[idx].end = idx + 1;
	p->pos += n;
	return 0;
}

static int parse_value(struct parser *p)
{
	skip_ws(p);
	if (p->pos >= p->len)
		return fail(p, "value expected");
	switch (p->s[p->pos]) {
	case '{': return parse_container(p, 1);
	case '[': return parse_container(p, 0);
	case '"': return parse_string(p);
	case 't': return literal(p, "true", POBOX_JSON_TRUE);
	case 'f': return literal(p, "false", POBOX_JSON_FALSE);
	case 'n': return literal(p, "null", POBOX_JSON_NULL);
	default:
		if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
			return parse_number(p);
		return fail(p, "unexpected character");
	}
}

int pobox_json_parse(struct pobox_json *doc, const char *text, size_t len, size_t max_tokens,
                     char *err, size_t errlen)
{
	struct parser p = {text, len, 0, doc, 0, max_tokens ? max_tokens : 1, 0, err, errlen};
	int rc;
	memset(doc, 0, sizeof *doc);
	doc->text = text;
	doc->len = len;
	if (!text)
		return pobox_errf(err, errlen, POBOX_EINVALID, "no JSON text");
	if ((rc = parse_value(&p)) != 0)
		return rc;
	skip_ws(&p);
	if (p.pos != len)
		return fail(&p, "text after the JSON value");
	return 0;
}

void pobox_json_free(struct pobox_json *doc)
{
	if (!doc)
		return;
	pobox_free(doc->toks);
	doc->toks = NULL;
	doc->n = 0;
}

int pobox_json_next_member(const struct pobox_json *doc, long obj, long *name_tok)
{
	if (obj < 0 || (size_t)obj >= doc->n || doc->toks[obj].type != POBOX_JSON_OBJECT)
		return 0;
	size_t next = *name_tok < 0 ? (size_t)obj + 1 : doc->toks[doc->toks[*name_tok].end].end;
	if (next >= doc->toks[obj].end)
		return 0;
	*name_tok = (long)next;
	return 1;
}

/* Decodes the raw string bytes s[0..n) into out (room for n + 1 bytes:
 * decoding never grows a string); returns the decoded length. */
static size_t decode(const char *s, size_t n, char *out)
{
	size_t i = 0, o = 0;
	while (i < n) {
		if (s[i] != '\\') {
			out[o++] = s[i++];
			continue;
		}
		char e = s[i + 1];
		unsigned u = 0, lo = 0;
		i += 2;
		switch (e) {
		case 'b': out[o++] = '\b'; continue;
		case 'f': out[o++] = '\f'; continue;
		case 'n': out[o++] = '\n'; continue;
		case 'r': out[o++] = '\r'; continue;
		case 't': out[o++] = '\t'; continue;
		case 'u': break;
		default: out[o++] = e; continue;
		}
		hex4(s + i, &u); /* checked by the parser */
		i += 4;
		if (u >= 0xD800 && u <= 0xDBFF) {
			hex4(s + i + 2, &lo);
			i += 6;
			u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
		}
		if (u < 0x80) {
			out[o++] = (char)u;
		} else if (u < 0x800) {
			out[o++] = (char)(0xC0 | u >> 6);
			out[o++] = (char)(0x80 | (u & 0x3F));
		} else if (u < 0x10000) {
			out[o++] = (char)(0xE0 | u >> 12);
			out[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
			out[o++] = (char)(0x80 | (u & 0x3F));
		} else {
			out[o++] = (char)(0xF0 | u >> 18);
			out[o++] = (char)(0x80 | ((u >> 12) & 0x3F));
			out[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
			out[o++] = (char)(0x80 | (u & 0x3F));
		}
	}
	out[o] = '\0';
	return o;
}

int pobox_json_string(const struct pobox_json *doc, long tok, char **out, size_t *len)
{
	if (tok < 0 || (size_t)tok >= doc->n || doc->toks[tok].type != POBOX_JSON_STRING)
		return POBOX_EINVALID;
	const struct pobox_json_tok *t = &doc->toks[tok];
	char *s = pobox_malloc(t->len + 1);
	if (!s)
		return POBOX_ENOMEM;
	size_t n = decode(doc->text + t->start, t->len, s);
	if (len)
		*len = n;
	*out = s;
	return 0;
}

int pobox_json_string_is(const struct pobox_json *doc, long tok, const char *want)
{
	if (tok < 0 || (size_t)tok >= doc->n || doc->toks[tok].type != POBOX_JSON_STRING)
		return 0;
	const struct pobox_json_tok *t = &doc->toks[tok];
	size_t wl = strlen(want);
	/* the common case, no escapes: compare in place */
	if (!memchr(doc->text + t->start, '\\', t->len))
		return t->len == wl && memcmp(doc->text + t->start, want, wl) == 0;
	char buf[256], *s = t->len < sizeof buf ? buf : pobox_malloc(t->len + 1);
	if (!s)
		return 0;
	size_t n = decode(doc->text + t->start, t->len, s);
	int eq = n == wl && memcmp(s, want, wl) == 0;
	if (s != buf)
		pobox_free(s);
	return eq;
}

long pobox_json_get(const struct pobox_json *doc, long obj, const char *name)
{
	long m = -1;
	while (pobox_json_next_member(doc, obj, &m))
		if (pobox_json_string_is(doc, m, name))
			return m + 1;
	return -1;
}

int pobox_json_double(const struct pobox_json *doc, long tok, double *out)
{
	if (tok < 0 || (size_t)tok >= doc->n || doc->toks[tok].type != POBOX_JSON_NUMBER)
		return POBOX_EINVALID;
	const struct pobox_json_tok *t = &doc->toks[tok];
	char buf[64];
	if (t->len >= sizeof buf)
		return POBOX_EINVALID;
	memcpy(buf, doc->text + t->start, t->len);
	buf[t->len] = '\0';
	errno = 0;
	double v = strtod(buf, NULL);
	if (errno == ERANGE)
		return POBOX_EINVALID;
	*out = v;
	return 0;
}

int pobox_json_int64(const struct pobox_json *doc, long tok, int64_t *out)
{
	if (tok < 0 || (size_t)tok >= doc->n || doc->toks[tok].type != POBOX_JSON_NUMBER)
		return POBOX_EINVALID;
	const struct pobox_json_tok *t = &doc->toks[tok];
	char buf[32];
	if (t->len >= sizeof buf || memchr(doc->text + t->start, '.', t->len) ||
	    memchr(doc->text + t->start, 'e', t->len) || memchr(doc->text + t->start, 'E', t->len))
		return POBOX_EINVALID;
	memcpy(buf, doc->text + t->start, t->len);
	buf[t->len] = '\0';
	errno = 0;
	long long v = strtoll(buf, NULL, 10);
	if (errno == ERANGE)
		return POBOX_EINVALID;
	*out = v;
	return 0;
}
