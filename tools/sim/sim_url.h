/*
 * sim_url -- percent-decoding and form/query parameter parsing.
 *
 * Owns: turning raw `a=1&b=x%20y` text (a query string or an
 * application/x-www-form-urlencoded body) into decoded name/value pairs, and
 * decoding single cells of a batch file.  It never trusts its input: a bad
 * escape such as "%zz" or a lone "%" is kept literally (as a form parser in
 * a Java servlet container would reject it, we prefer to keep the byte and
 * let the semantic checks answer), decoded bytes may include NUL, and every
 * result carries its length.  It does not know which parameters mean what.
 *
 * Ownership: struct sim_params owns one arena holding every decoded string;
 * sim_params_free() releases it.  Pointers returned by sim_params_get() are
 * borrowed from that arena.
 */
#ifndef SIM_URL_H
#define SIM_URL_H

#include <stddef.h>

/*
 * Decode n bytes of src into dst (which must hold at least n bytes; the
 * result is never longer than the input).  With plus_is_space, '+' decodes
 * to ' ' as in form encoding.  Returns the decoded length.  dst may equal
 * src (in-place decoding).
 */
size_t sim_url_decode(char *dst, const char *src, size_t n, int plus_is_space);

struct sim_param {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
	int raw_plus;   /* the raw value held a literal '+' (decoded to ' ') */
	int raw_slash;  /* the raw value held a literal '/' */
};

struct sim_params {
	struct sim_param *items;
	size_t count;
	char *arena;
};

/*
 * Parse `n` bytes of form/query text.  Empty segments ("a=1&&b=2") are
 * skipped; a segment without '=' is a name with an empty value.  At most
 * max_params pairs are kept (the rest are ignored, so a hostile query of a
 * million '&' costs no memory).  Returns 0, or -1 on allocation failure
 * (then p is empty).  Call sim_params_free() in both cases.
 */
int sim_params_parse(struct sim_params *p, const char *s, size_t n, size_t max_params);
void sim_params_free(struct sim_params *p);

/* First parameter named `name` (NUL-terminated), or NULL. */
const struct sim_param *sim_params_get(const struct sim_params *p, const char *name);

#endif
