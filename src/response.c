/*
 * response.c - Target's XML answers, read with expat (see response.h).
 *
 * This module owns the XML: which elements mean what, the bounds on what is
 * kept, and turning garbage into POBOX_ETRANSIENT.  It does not judge the
 * answer (classify.c) nor fetch it (http.c).
 *
 * How the parse works
 *   1. Elements are matched by name.  <message> and <error> count at any
 *      depth (error bodies nest them); every other field only as a direct
 *      child of the root, so an unknown element that happens to contain a
 *      <status> cannot be mistaken for the batch status.
 *   2. Text is collected only for an element we want, into one buffer of at
 *      most POBOX_RESPONSE_TEXT_MAX bytes; text past the cap is dropped and
 *      the field is marked truncated (fatal for URLs, ids and counts, where
 *      a cut value would be wrong; harmless for messages).
 *   3. <profile> rows are delivered at </profile> from two fixed buffers, so
 *      500,000 rows cost no memory.
 *   4. The first error from a handler is kept and the parser stopped; expat
 *      may still call a handler or two after XML_StopParser, so every
 *      handler returns at once when an error is already set.
 */
#include "response.h"
#include "alloc.h"
#include "error.h"
#include "pobox.h"

#include <expat.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/random.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum field {
	F_NONE = 0,
	F_SUCCESS,
	F_MESSAGE,
	F_ERROR,
	F_BATCHSTATUS,
	F_PCID,
	F_BATCHID,
	F_STATUS,
	F_BATCHSIZE,
	F_CONSUMED,
	F_SUCCESSFUL,
	F_NOTFOUND,
	F_FAILED,
	F_ROW_ID,
	F_ROW_STATUS,
};

/* Direct children of the root that we read. */
static const struct {
	const char *name;
	enum field field;
} root_fields[] = {
	{"success", F_SUCCESS},
	{"batchStatus", F_BATCHSTATUS},
	{"pcId", F_PCID},
	{"batchId", F_BATCHID},
	{"status", F_STATUS},
	{"batchSize", F_BATCHSIZE},
	{"consumedCount", F_CONSUMED},
	{"successfulUpdates", F_SUCCESSFUL},
	{"profilesNotFound", F_NOTFOUND},
	{"failedUpdates", F_FAILED},
};

#define ROW_ID_MAX 1024     /* Target ids are <= 256 chars; room for escapes */
#define ROW_STATUS_MAX 64

struct pobox_response_parser {
	XML_Parser xp;
	enum pobox_answer_kind kind;
	pobox_profile_row_fn on_row;
	void *ctx;

	int rc;            /* first error, sticky */
	char errmsg[256];
	int finished;

	int depth;
	char root[64];

	enum field field;  /* element whose text is being collected */
	int field_depth;
	char *text;
	size_t text_len, text_cap;
	int text_cut;

	int row_depth;     /* depth of the open <profile>, 0 when none */
	char row_id[ROW_ID_MAX + 1];
	char row_status[ROW_STATUS_MAX + 1];
	int row_has_id;

	char *error_text;  /* <error> text, used when there is no <message> */
	struct pobox_answer ans;
};

static const char *kind_name(enum pobox_answer_kind kind)
{
	switch (kind) {
	case POBOX_ANSWER_SUBMIT: return "batch submit";
	case POBOX_ANSWER_STATUS: return "batch status";
	case POBOX_ANSWER_SINGLE: return "single update";
	case POBOX_ANSWER_ANY: break;
	}
	return "error answer";
}

static void answer_init(struct pobox_answer *a)
{
	memset(a, 0, sizeof *a);
	a->success = -1;
	a->status = POBOX_BATCH_UNKNOWN;
	a->batch_size = a->consumed_count = a->successful_updates = -1;
	a->profiles_not_found = a->failed_updates = -1;
}

void pobox_answer_free(struct pobox_answer *a)
{
	if (!a)
		return;
	pobox_free(a->message);
	pobox_free(a->status_url);
	pobox_free(a->pc_id);
	pobox_free(a->batch_id);
	pobox_free(a->status_text);
	answer_init(a);
}

/* Records the first failure and stops expat. */
static void fail(struct pobox_response_parser *p, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct pobox_response_parser *p, int code, const char *fmt, ...)
{
	if (p->rc)
		return;
	p->rc = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->errmsg, sizeof p->errmsg, fmt, ap);
	va_end(ap);
	XML_StopParser(p->xp, XML_FALSE);
}

static void nomem(struct pobox_response_parser *p)
{
	fail(p, POBOX_ENOMEM, "out of memory reading the answer from %s", kind_name(p->kind));
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Trims the collected text in place; returns its start. */
static char *trimmed(struct pobox_response_parser *p, size_t *len)
{
	char *s = p->text ? p->text : (char *)"";
	size_t n = p->text ? p->text_len : 0;
	while (n && is_space(*s))
		s++, n--;
	while (n && is_space(s[n - 1]))
		n--;
	*len = n;
	return s;
}

/* Copies the collected text into *slot unless it is already set (the first
 * occurrence wins). */
static void keep_text(struct pobox_response_parser *p, char **slot, int must_be_whole,
                      const char *name)
{
	size_t n;
	char *s = trimmed(p, &n);
	if (*slot)
		return;
	if (p->text_cut && must_be_whole) {
		fail(p, POBOX_ETRANSIENT, "answer from %s: <%s> longer than %d bytes",
		     kind_name(p->kind), name, POBOX_RESPONSE_TEXT_MAX);
		return;
	}
	*slot = pobox_strndup(s, n);
	if (!*slot)
		nomem(p);
}

static void keep_count(struct pobox_response_parser *p, int64_t *slot, const char *name)
{
	size_t n;
	char *s = trimmed(p, &n);
	int64_t v = 0;
	if (n == 0 || n > 18 || p->text_cut)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			goto bad;
		v = v * 10 + (s[i] - '0');
	}
	if (*slot < 0)
		*slot = v;
	return;
bad:;
	/* Quote at most 32 bytes, control characters shown as '?', so a hostile
	 * answer cannot put terminal escapes into our logs. */
	char shown[33];
	size_t k = 0;
	for (; k < n && k < 32; k++)
		shown[k] = ((unsigned char)s[k] < 0x20 || s[k] == 0x7f) ? '?' : s[k];
	shown[k] = '\0';
	fail(p, POBOX_ETRANSIENT, "answer from %s: <%s> is not a count: '%s'", kind_name(p->kind),
	     name, shown);
}

static void keep_row_text(struct pobox_response_parser *p, char *dst, size_t max,
                          const char *name)
{
	size_t n;
	char *s = trimmed(p, &n);
	if (n > max || p->text_cut) {
		fail(p, POBOX_ETRANSIENT, "answer from %s: <profile><%s> longer than %zu bytes",
		     kind_name(p->kind), name, max);
		return;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static void field_done(struct pobox_response_parser *p, const char *name)
{
	size_t n;
	char *s;
	switch (p->field) {
	case F_NONE:
		break;
	case F_SUCCESS:
		s = trimmed(p, &n);
		if (p->ans.success < 0) {
			if (n == 4 && strncasecmp(s, "true", 4) == 0)
				p->ans.success = 1;
			else if (n == 5 && strncasecmp(s, "false", 5) == 0)
				p->ans.success = 0;
		}
		break;
	case F_MESSAGE: keep_text(p, &p->ans.message, 0, name); break;
	case F_ERROR: keep_text(p, &p->error_text, 0, name); break;
	case F_BATCHSTATUS: keep_text(p, &p->ans.status_url, 1, name); break;
	case F_PCID: keep_text(p, &p->ans.pc_id, 1, name); break;
	case F_BATCHID: keep_text(p, &p->ans.batch_id, 1, name); break;
	case F_STATUS:
		if (p->ans.status_text)
			break;
		keep_text(p, &p->ans.status_text, 1, name);
		if (!p->ans.status_text)
			break;
		if (strcmp(p->ans.status_text, "complete") == 0)
			p->ans.status = POBOX_BATCH_COMPLETE;
		else if (strcmp(p->ans.status_text, "incomplete") == 0)
			p->ans.status = POBOX_BATCH_INCOMPLETE;
		else if (strcmp(p->ans.status_text, "stuck") == 0)
			p->ans.status = POBOX_BATCH_STUCK;
		break;
	case F_BATCHSIZE: keep_count(p, &p->ans.batch_size, name); break;
	case F_CONSUMED: keep_count(p, &p->ans.consumed_count, name); break;
	case F_SUCCESSFUL: keep_count(p, &p->ans.successful_updates, name); break;
	case F_NOTFOUND: keep_count(p, &p->ans.profiles_not_found, name); break;
	case F_FAILED: keep_count(p, &p->ans.failed_updates, name); break;
	case F_ROW_ID:
		keep_row_text(p, p->row_id, ROW_ID_MAX, "id");
		p->row_has_id = 1;
		break;
	case F_ROW_STATUS: keep_row_text(p, p->row_status, ROW_STATUS_MAX, "status"); break;
	}
}

static enum field field_for(struct pobox_response_parser *p, const char *name)
{
	if (strcmp(name, "message") == 0)
		return F_MESSAGE;
	if (strcmp(name, "error") == 0)
		return F_ERROR;
	if (p->row_depth && p->depth == p->row_depth + 1) {
		if (strcmp(name, "id") == 0)
			return F_ROW_ID;
		if (strcmp(name, "status") == 0)
			return F_ROW_STATUS;
		return F_NONE;
	}
	if (p->depth != 2)
		return F_NONE;
	for (size_t i = 0; i < sizeof root_fields / sizeof root_fields[0]; i++)
		if (strcmp(name, root_fields[i].name) == 0)
			return root_fields[i].field;
	return F_NONE;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct pobox_response_parser *p = ud;
	(void)attrs;
	if (p->rc)
		return;
	if (++p->depth > POBOX_RESPONSE_DEPTH_MAX) {
		fail(p, POBOX_ETRANSIENT, "answer from %s nests elements deeper than %d",
		     kind_name(p->kind), POBOX_RESPONSE_DEPTH_MAX);
		return;
	}
	if (p->depth == 1)
		snprintf(p->root, sizeof p->root, "%s", name);
	if (p->field != F_NONE)
		return; /* inside a collected element: its text includes children */
	if (p->depth == 2 && !p->row_depth && strcmp(name, "profile") == 0) {
		p->row_depth = p->depth;
		p->row_id[0] = p->row_status[0] = '\0';
		p->row_has_id = 0;
		return;
	}
	enum field f = field_for(p, name);
	if (f == F_NONE)
		return;
	p->field = f;
	p->field_depth = p->depth;
	p->text_len = 0;
	p->text_cut = 0;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct pobox_response_parser *p = ud;
	if (p->rc || p->field == F_NONE || len <= 0)
		return;
	size_t n = (size_t)len;
	if (p->text_len + n > POBOX_RESPONSE_TEXT_MAX) {
		n = POBOX_RESPONSE_TEXT_MAX - p->text_len;
		p->text_cut = 1;
	}
	if (p->text_len + n + 1 > p->text_cap) {
		size_t cap = p->text_cap ? p->text_cap : 256;
		while (cap < p->text_len + n + 1)
			cap *= 2;
		if (cap > POBOX_RESPONSE_TEXT_MAX + 1)
			cap = POBOX_RESPONSE_TEXT_MAX + 1;
		char *t = pobox_realloc(p->text, cap);
		if (!t) {
			nomem(p);
			return;
		}
		p->text = t;
		p->text_cap = cap;
	}
	memcpy(p->text + p->text_len, s, n);
	p->text_len += n;
	p->text[p->text_len] = '\0';
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct pobox_response_parser *p = ud;
	if (p->rc)
		return;
	if (p->field != F_NONE && p->field_depth == p->depth) {
		field_done(p, name);
		p->field = F_NONE;
	} else if (p->row_depth && p->row_depth == p->depth) {
		p->row_depth = 0;
		if (!p->row_has_id) {
			fail(p, POBOX_ETRANSIENT, "answer from %s: <profile> without <id>",
			     kind_name(p->kind));
		} else if (p->kind == POBOX_ANSWER_STATUS) {
			p->ans.profile_rows++;
			int rc = p->on_row ? p->on_row(p->ctx, p->row_id, p->row_status) : 0;
			if (rc)
				fail(p, rc < 0 ? rc : POBOX_EINVALID,
				     "reading the answer from %s: stopped by the row handler (%s)",
				     kind_name(p->kind), pobox_strerror(rc));
		}
	}
	p->depth--;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
	struct pobox_response_parser *p = ud;
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	fail(p, POBOX_ETRANSIENT, "answer from %s refused: it has a DOCTYPE", kind_name(p->kind));
}

/* Entity declarations can only appear inside a DOCTYPE, which is refused
 * above; this is a second lock on the same door. */
static void XMLCALL on_entity(void *ud, const XML_Char *name, int is_param,
                              const XML_Char *value, int value_len, const XML_Char *base,
                              const XML_Char *sysid, const XML_Char *pubid,
                              const XML_Char *notation)
{
	struct pobox_response_parser *p = ud;
	(void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid;
	(void)pubid, (void)notation;
	fail(p, POBOX_ETRANSIENT, "answer from %s refused: it declares entities",
	     kind_name(p->kind));
}

static const XML_Memory_Handling_Suite mem_suite = {
	pobox_malloc,
	pobox_realloc,
	pobox_free,
};

/* The hash salt of every parser: secret and random, drawn once per process.
 * Left to itself expat draws a fresh one from the kernel for each parser,
 * one system call per answer -- a visible cost at thousands of single
 * calls a second -- while one unknown salt protects the hash tables from
 * crafted collisions just as well. */
static unsigned long hash_salt;
static pthread_once_t hash_salt_once = PTHREAD_ONCE_INIT;

static void draw_hash_salt(void)
{
	unsigned long v = 0;
	if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
		v = 0; /* 0: expat draws its own, per parser, as before */
	hash_salt = v;
}

/* Handlers and settings of p->xp (after creation and after each reset). */
static void expat_setup(struct pobox_response_parser *p)
{
	pthread_once(&hash_salt_once, draw_hash_salt);
	if (hash_salt)
		XML_SetHashSalt(p->xp, hash_salt);
	XML_SetUserData(p->xp, p);
	XML_SetElementHandler(p->xp, on_start, on_end);
	XML_SetCharacterDataHandler(p->xp, on_text);
	XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
	XML_SetEntityDeclHandler(p->xp, on_entity);
	XML_SetParamEntityParsing(p->xp, XML_PARAM_ENTITY_PARSING_NEVER);
}

int pobox_response_parser_reset(struct pobox_response_parser *p, enum pobox_answer_kind kind,
                                pobox_profile_row_fn on_row, void *ctx, char *err, size_t errlen)
{
	/* keep expat's buffers and the text buffer; everything else anew */
	if (XML_ParserReset(p->xp, "UTF-8") != XML_TRUE)
		return pobox_errf(err, errlen, POBOX_ENOMEM, "cannot reset the XML parser");
	XML_Parser xp = p->xp;
	char *text = p->text;
	size_t text_cap = p->text_cap;
	pobox_free(p->error_text);
	pobox_answer_free(&p->ans);
	memset(p, 0, sizeof *p);
	p->xp = xp;
	p->text = text;
	p->text_cap = text_cap;
	p->kind = kind;
	p->on_row = on_row;
	p->ctx = ctx;
	answer_init(&p->ans);
	expat_setup(p);
	return 0;
}

int pobox_response_parser_new(struct pobox_response_parser **out, enum pobox_answer_kind kind,
                              pobox_profile_row_fn on_row, void *ctx, char *err, size_t errlen)
{
	int rc = 0;
	struct pobox_response_parser *p = pobox_calloc(1, sizeof *p);
	if (!p) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory creating an XML parser");
		goto out;
	}
	p->kind = kind;
	p->on_row = on_row;
	p->ctx = ctx;
	answer_init(&p->ans);
	/* Always read as UTF-8 whatever the declaration says: Target answers in
	 * UTF-8 and other encodings would only widen what can go wrong. */
	p->xp = XML_ParserCreate_MM("UTF-8", &mem_suite, NULL);
	if (!p->xp) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory creating an XML parser");
		goto out;
	}
	expat_setup(p);
out:
	if (rc) {
		pobox_response_parser_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void pobox_response_parser_free(struct pobox_response_parser *p)
{
	if (!p)
		return;
	if (p->xp)
		XML_ParserFree(p->xp);
	pobox_free(p->text);
	pobox_free(p->error_text);
	pobox_answer_free(&p->ans);
	pobox_free(p);
}

/* Runs expat over one chunk and turns its verdict into ours. */
static int run(struct pobox_response_parser *p, const char *data, size_t len, int final)
{
	do {
		int n = len > INT_MAX / 2 ? INT_MAX / 2 : (int)len;
		int last = final && (size_t)n == len;
		if (XML_Parse(p->xp, data, n, last) != XML_STATUS_OK && !p->rc) {
			enum XML_Error e = XML_GetErrorCode(p->xp);
			if (e == XML_ERROR_NO_MEMORY)
				nomem(p);
			else
				fail(p, POBOX_ETRANSIENT, "malformed XML from %s: %s at line %lu",
				     kind_name(p->kind), XML_ErrorString(e),
				     (unsigned long)XML_GetCurrentLineNumber(p->xp));
			/* fail() stops a parser that already stopped itself: harmless. */
		}
		if (p->rc)
			return p->rc;
		data += n;
		len -= (size_t)n;
	} while (len);
	return 0;
}

int pobox_response_parser_feed(struct pobox_response_parser *p, const char *data, size_t len,
                               char *err, size_t errlen)
{
	int rc = p->rc;
	if (!rc && p->finished)
		rc = pobox_errf(err, errlen, POBOX_EINVALID, "answer parser already finished");
	else if (!rc && len)
		rc = run(p, data, len, 0);
	if (rc && p->rc)
		pobox_errf(err, errlen, rc, "%s", p->errmsg);
	return rc;
}

/* The checks that make a well-formed document an answer of this kind. */
static void check_kind(struct pobox_response_parser *p)
{
	const char *what = kind_name(p->kind);
	if (strcmp(p->root, "response") != 0) {
		fail(p, POBOX_ETRANSIENT, "unexpected answer from %s: root element <%.40s>, not <response>",
		     what, p->root);
		return;
	}
	if (p->kind == POBOX_ANSWER_SUBMIT && p->ans.success == 1 &&
	    (!p->ans.status_url || !*p->ans.status_url))
		fail(p, POBOX_ETRANSIENT, "answer from %s says success but has no batchStatus URL", what);
	if (p->kind == POBOX_ANSWER_STATUS && !p->ans.status_text)
		fail(p, POBOX_ETRANSIENT, "answer from %s has no <status>", what);
}

int pobox_response_parser_finish(struct pobox_response_parser *p, struct pobox_answer *out,
                                 char *err, size_t errlen)
{
	int rc = p->rc;
	if (!rc && p->finished)
		rc = pobox_errf(err, errlen, POBOX_EINVALID, "answer parser already finished");
	if (rc)
		goto out;
	p->finished = 1;
	rc = run(p, "", 0, 1);
	if (rc)
		goto out;
	if (!p->ans.message && p->error_text) {
		p->ans.message = p->error_text;
		p->error_text = NULL;
	}
	if (p->kind != POBOX_ANSWER_ANY)
		check_kind(p);
	rc = p->rc;
out:
	if (rc) {
		if (p->rc)
			pobox_errf(err, errlen, rc, "%s", p->errmsg);
		return rc;
	}
	*out = p->ans;
	answer_init(&p->ans);
	return 0;
}

int pobox_response_parse_again(struct pobox_response_parser *p, enum pobox_answer_kind kind,
                               struct pobox_answer *out, const char *body, size_t len, char *err,
                               size_t errlen)
{
	int rc = pobox_response_parser_reset(p, kind, NULL, NULL, err, errlen);
	if (rc == 0)
		rc = pobox_response_parser_feed(p, body, len, err, errlen);
	if (rc == 0)
		rc = pobox_response_parser_finish(p, out, err, errlen);
	return rc;
}

int pobox_response_parse(enum pobox_answer_kind kind, struct pobox_answer *out,
                         const char *body, size_t len, pobox_profile_row_fn on_row, void *ctx,
                         char *err, size_t errlen)
{
	struct pobox_response_parser *p = NULL;
	int rc = pobox_response_parser_new(&p, kind, on_row, ctx, err, errlen);
	if (rc)
		goto out;
	rc = pobox_response_parser_feed(p, body, len, err, errlen);
	if (rc)
		goto out;
	rc = pobox_response_parser_finish(p, out, err, errlen);
out:
	pobox_response_parser_free(p);
	return rc;
}

/* Copies s into buf as one tidy line: tags dropped (when strip_tags),
 * control characters and whitespace runs folded to one space, at most
 * POBOX_RESPONSE_ERRTEXT_MAX bytes, cut on a UTF-8 boundary. */
static void tidy(char *buf, size_t buflen, const char *s, size_t len, int strip_tags)
{
	size_t max = POBOX_RESPONSE_ERRTEXT_MAX;
	size_t o = 0;
	int cut = 0, space = 1; /* space=1 drops leading whitespace */
	if (max > buflen - 1)
		max = buflen - 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (strip_tags && c == '<') {
			const char *gt = memchr(s + i, '>', len - i);
			if (gt) {
				i = (size_t)(gt - s);
				c = ' '; /* a tag separates words */
			}
		}
		if (c < 0x20 || c == 0x7f || c == ' ') {
			if (space)
				continue;
			c = ' ';
			space = 1;
		} else {
			space = 0;
		}
		if (o == max) {
			cut = 1;
			break;
		}
		buf[o++] = (char)c;
	}
	if (cut) {
		/* Room for the "..." first: cutting after the UTF-8 check below
		 * could end the text inside a sequence again. */
		int dots = buflen - 1 >= 3;
		if (dots && o > buflen - 4)
			o = buflen - 4;
		/* Do not end inside a UTF-8 sequence: drop continuation bytes and
		 * the lead byte they belong to. */
		size_t k = o;
		while (k > 0 && ((unsigned char)buf[k - 1] & 0xc0) == 0x80)
			k--;
		if (k > 0 && (unsigned char)buf[k - 1] >= 0xc0)
			o = k - 1;
		while (o > 0 && buf[o - 1] == ' ')
			o--;
		if (dots) {
			memcpy(buf + o, "...", 3);
			o += 3;
		}
	}
	while (o > 0 && buf[o - 1] == ' ')
		o--;
	buf[o] = '\0';
}

void pobox_response_error_text(char *buf, size_t buflen, const char *body, size_t len)
{
	struct pobox_answer a;
	if (!buf || !buflen)
		return;
	answer_init(&a);
	size_t i = 0;
	while (i < len && (is_space(body[i]) || body[i] == '\0'))
		i++;
	if (i == len) {
		snprintf(buf, buflen, "(empty body)");
		return;
	}
	if (body[i] == '<' &&
	    pobox_response_parse(POBOX_ANSWER_ANY, &a, body, len, NULL, NULL, NULL, 0) == 0 && a.message &&
	    a.message[0]) {
		tidy(buf, buflen, a.message, strlen(a.message), 0);
	} else {
		tidy(buf, buflen, body, len, 1);
	}
	pobox_answer_free(&a);
	if (!buf[0])
		snprintf(buf, buflen, "(no text)");
}
