/*
 * sim_buf -- growable byte buffer with a hard maximum (see sim_buf.h).
 * Growth doubles the capacity so appends are amortised O(1); the maximum is
 * checked before any allocation so a refused append never allocates.
 */
#include "sim_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sim_buf_init(struct sim_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void sim_buf_free(struct sim_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void sim_buf_clear(struct sim_buf *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->data)
		b->data[0] = '\0';
}

static int grow(struct sim_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->failed)
		return -1;
	if (extra > (size_t)-1 - b->len - 1 || (b->max && b->len + extra > b->max)) {
		b->failed = 1;
		return -1;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (!p) {
		b->failed = 1;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int sim_buf_add(struct sim_buf *b, const void *p, size_t n)
{
	if (grow(b, n))
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int sim_buf_adds(struct sim_buf *b, const char *s)
{
	return sim_buf_add(b, s, strlen(s));
}

int sim_buf_addc(struct sim_buf *b, char c)
{
	return sim_buf_add(b, &c, 1);
}

int sim_buf_printf(struct sim_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || grow(b, (size_t)n))
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int sim_buf_add_xml(struct sim_buf *b, const char *s, size_t n)
{
	size_t i, run = 0;

	for (i = 0; i < n; i++) {
		const char *rep = NULL;
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '&': rep = "&amp;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		default:
			/* XML 1.0 cannot carry most control characters at all,
			 * not even as references: show them as '?'. */
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				rep = "?";
		}
		if (!rep)
			continue;
		sim_buf_add(b, s + run, i - run);
		sim_buf_adds(b, rep);
		run = i + 1;
	}
	return sim_buf_add(b, s + run, n - run);
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 if none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int sim_buf_add_json(struct sim_buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0;

	/* Values are arbitrary URL-decoded bytes; JSON must be UTF-8, so a
	 * byte that does not start a well-formed sequence becomes U+FFFD. */
	sim_buf_addc(b, '"');
	while (i < n) {
		unsigned char c = u[i];
		size_t ul = utf8_len(u + i, n - i);
		char esc[8];

		if (ul > 1 || (ul == 1 && c >= 0x20 && c != '"' && c != '\\')) {
			i += ul;
			continue;
		}
		sim_buf_add(b, s + run, i - run);
		if (ul == 0) {
			sim_buf_adds(b, "\\ufffd");
		} else {
			switch (c) {
			case '"': sim_buf_adds(b, "\\\""); break;
			case '\\': sim_buf_adds(b, "\\\\"); break;
			case '\n': sim_buf_adds(b, "\\n"); break;
			case '\r': sim_buf_adds(b, "\\r"); break;
			case '\t': sim_buf_adds(b, "\\t"); break;
			default:
				snprintf(esc, sizeof(esc), "\\u%04x", c);
				sim_buf_adds(b, esc);
			}
		}
		i++;
		run = i;
	}
	sim_buf_add(b, s + run, n - run);
	return sim_buf_addc(b, '"');
}

char *sim_buf_steal(struct sim_buf *b, size_t *len_out)
{
	char *p;

	if (b->failed)
		return NULL;
	if (!b->data && grow(b, 0))
		return NULL;
	b->data[b->len] = '\0';
	p = b->data;
	if (len_out)
		*len_out = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
