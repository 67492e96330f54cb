/*
 * sim_url -- percent-decoding and form/query parsing (see sim_url.h).
 * All decoding happens into one arena sized like the input, so parsing a
 * query costs two allocations whatever its shape.
 */
#include "sim_url.h"

#include <stdlib.h>
#include <string.h>

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t sim_url_decode(char *dst, const char *src, size_t n, int plus_is_space)
{
	size_t i = 0, o = 0;

	while (i < n) {
		unsigned char c = (unsigned char)src[i];

		if (c == '%' && n - i >= 3) {
			int hi = hexval((unsigned char)src[i + 1]);
			int lo = hexval((unsigned char)src[i + 2]);

			if (hi >= 0 && lo >= 0) {
				dst[o++] = (char)(hi * 16 + lo);
				i += 3;
				continue;
			}
		}
		dst[o++] = (plus_is_space && c == '+') ? ' ' : (char)c;
		i++;
	}
	return o;
}

int sim_params_parse(struct sim_params *p, const char *s, size_t n, size_t max_params)
{
	size_t i, segs = 1, pos = 0, used = 0;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < n; i++)
		if (s[i] == '&')
			segs++;
	if (segs > max_params)
		segs = max_params;
	/* +2 per pair: a NUL after name and value so callers may use them as
	 * C strings when they know the text holds no NUL. */
	p->arena = malloc(n + 2 * segs + 1);
	p->items = calloc(segs ? segs : 1, sizeof(*p->items));
	if (!p->arena || !p->items)
		goto out;
	while (pos < n && p->count < max_params) {
		const char *seg = s + pos, *amp = memchr(seg, '&', n - pos);
		size_t seg_len = amp ? (size_t)(amp - seg) : n - pos;
		const char *eq = memchr(seg, '=', seg_len);
		size_t name_len = eq ? (size_t)(eq - seg) : seg_len;
		size_t val_len = eq ? seg_len - name_len - 1 : 0;
		struct sim_param *it;

		pos += seg_len + 1;
		if (seg_len == 0)
			continue;
		it = &p->items[p->count++];
		it->name = p->arena + used;
		it->name_len = sim_url_decode(p->arena + used, seg, name_len, 1);
		used += it->name_len;
		p->arena[used++] = '\0';
		it->value = p->arena + used;
		if (eq) {
			it->raw_plus = memchr(eq + 1, '+', val_len) != NULL;
			it->raw_slash = memchr(eq + 1, '/', val_len) != NULL;
			it->value_len = sim_url_decode(p->arena + used, eq + 1, val_len, 1);
		}
		used += it->value_len;
		p->arena[used++] = '\0';
	}
	rc = 0;
out:
	if (rc)
		sim_params_free(p);
	return rc;
}

void sim_params_free(struct sim_params *p)
{
	free(p->items);
	free(p->arena);
	memset(p, 0, sizeof(*p));
}

const struct sim_param *sim_params_get(const struct sim_params *p, const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < p->count; i++)
		if (p->items[i].name_len == len && memcmp(p->items[i].name, name, len) == 0)
			return &p->items[i];
	return NULL;
}
