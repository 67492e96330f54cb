/*
 * json.h - a small, strict, bounded JSON reader for the answers pobox reads
 * from Adobe (IMS and Admin API tokens, a token_command's output, the
 * credential cache, profile fetches).
 *
 * Owns: checking a document against RFC 8259 (grammar, UTF-8, escapes
 * including surrogate pairs, no trailing text) and a flat view of it: an
 * array of tokens in document order, each value knowing where its subtree
 * ends, so an object's members are found without building a tree.  It does
 * not write JSON (the SQLite JSON functions do that for --json output) and
 * knows nothing about what the documents mean.
 *
 * Why not SQLite's JSON functions: the readers of these documents
 * (credentials, above all) run without an outbox handle, and must say
 * where a document is malformed ("expected ':' at byte 17"); and the token
 * must not pass through the store.  Limits keep hostile input cheap: a
 * nesting depth of POBOX_JSON_MAX_DEPTH, a caller-given number of tokens,
 * and input sizes the caller bounds (every HTTP body already is).
 *
 * Ownership: pobox_json_parse borrows the text (it must outlive the
 * document) and owns the token array (pobox_json_free).  Strings come out
 * decoded in buffers the caller frees with pobox_free.
 */
#ifndef POBOX_JSON_H
#define POBOX_JSON_H

#include <stddef.h>
#include <stdint.h>

#define POBOX_JSON_MAX_DEPTH 32

enum pobox_json_type {
	POBOX_JSON_NULL,
	POBOX_JSON_FALSE,
	POBOX_JSON_TRUE,
	POBOX_JSON_NUMBER,
	POBOX_JSON_STRING,
	POBOX_JSON_ARRAY,
	POBOX_JSON_OBJECT,
};

struct pobox_json_tok {
	enum pobox_json_type type;
	size_t start, len;   /* raw bytes: a string's between its quotes */
	size_t size;         /* an object's members, an array's elements */
	size_t end;          /* index of the first token after this subtree */
};

/* An object member is two tokens: its name (a STRING), then its value. */
struct pobox_json {
	const char *text;
	size_t len;
	struct pobox_json_tok *toks;
	size_t n;
};

/* Parses text (len bytes; need not be NUL-terminated) holding one JSON value
 * (token 0) and nothing but whitespace around it.  At most max_tokens
 * tokens.  Returns 0, POBOX_EINVALID with "<problem> at byte N" in err, or
 * POBOX_ENOMEM.  *doc is always initialised (free it either way). */
int pobox_json_parse(struct pobox_json *doc, const char *text, size_t len, size_t max_tokens,
                     char *err, size_t errlen);
void pobox_json_free(struct pobox_json *doc);

/* The value of member `name` of object token obj, or -1 (not an object, no
 * such member).  With duplicate names the first wins. */
long pobox_json_get(const struct pobox_json *doc, long obj, const char *name);

/* Iterates an object's members: *name_tok is the name, the value follows
 * it.  Start with *name_tok = -1; returns 1 while there is a member, 0 at
 * the end. */
int pobox_json_next_member(const struct pobox_json *doc, long obj, long *name_tok);

/* The decoded string of a STRING token, NUL-terminated (*len, if given, is
 * its length; it may hold NUL bytes from \u0000).  Returns 0, POBOX_EINVALID
 * (not a string), POBOX_ENOMEM. */
int pobox_json_string(const struct pobox_json *doc, long tok, char **out, size_t *len);

/* Whether a STRING token decodes to exactly s. */
int pobox_json_string_is(const struct pobox_json *doc, long tok, const char *s);

/* A NUMBER token as a double, or as an integer (POBOX_EINVALID when it has a
 * fraction or exponent, or is out of range). */
int pobox_json_double(const struct pobox_json *doc, long tok, double *out);
int pobox_json_int64(const struct pobox_json *doc, long tok, int64_t *out);

#endif
