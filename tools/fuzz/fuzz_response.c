/*
 * fuzz_response - libFuzzer harness for Target's XML answers (src/response.c):
 * batchUpdate (submit), batchStatus and single-update answers, and error
 * bodies.  The first input byte picks the answer kind (low 2 bits) and the
 * chunking (the rest); the body is parsed three ways:
 *   whole     pobox_response_parse(), rows reported to a callback;
 *   chunked   a stream parser fed pieces of 1..64 bytes chosen from the body
 *             itself, as libcurl hands them over;
 *   again     pobox_response_parse_again() on a parser kept from the last
 *             input (the reset path the single lane uses).
 * Properties: the three agree on the result code and on every field; a
 * success answers what the kind promises (submit success -> a status URL,
 * status -> a <status>); strings are NUL-terminated and within the caps; the
 * rows seen are the same in both row-reporting parses.  Then
 * pobox_response_error_text() is run with buffers of several sizes: always
 * terminated, within its size, and valid UTF-8 when the body is.
 */
#include "fuzz_check.h"
#include "response.h"
#include "pobox.h"

#include <stdint.h>
#include <string.h>

struct rows {
	uint64_t hash;
	int64_t n;
};

static int on_row(void *ctx, const char *id, const char *status)
{
	struct rows *r = ctx;
	FUZZ_CHECK(id && status);
	size_t il = strlen(id), sl = strlen(status);
	FUZZ_CHECK(il <= 1024 && sl <= 64);
	/* FNV-1a over "id\0status\0": order and content of the rows */
	for (size_t i = 0; i <= il; i++)
		r->hash = (r->hash ^ (unsigned char)id[i]) * 1099511628211u;
	for (size_t i = 0; i <= sl; i++)
		r->hash = (r->hash ^ (unsigned char)status[i]) * 1099511628211u;
	r->n++;
	return 0;
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_str(const char *s)
{
	FUZZ_CHECK(!s || strlen(s) <= POBOX_RESPONSE_TEXT_MAX);
}

static void check_answer(enum pobox_answer_kind kind, const struct pobox_answer *a)
{
	check_str(a->message);
	check_str(a->status_url);
	check_str(a->pc_id);
	check_str(a->batch_id);
	check_str(a->status_text);
	FUZZ_CHECK(a->success >= -1 && a->success <= 1);
	if (kind == POBOX_ANSWER_SUBMIT && a->success == 1)
		FUZZ_CHECK(a->status_url && a->status_url[0]);
	if (kind == POBOX_ANSWER_STATUS)
		FUZZ_CHECK(a->status_text != NULL);
	FUZZ_CHECK(a->status != POBOX_BATCH_COMPLETE || strcmp(a->status_text, "complete") == 0);
	FUZZ_CHECK(a->batch_size >= -1 && a->consumed_count >= -1 && a->failed_updates >= -1);
	FUZZ_CHECK(a->successful_updates >= -1 && a->profiles_not_found >= -1);
	FUZZ_CHECK(a->profile_rows >= 0);
}

static void check_same(const struct pobox_answer *a, const struct pobox_answer *b)
{
	FUZZ_CHECK(a->success == b->success);
	FUZZ_CHECK(same_str(a->message, b->message));
	FUZZ_CHECK(same_str(a->status_url, b->status_url));
	FUZZ_CHECK(same_str(a->pc_id, b->pc_id));
	FUZZ_CHECK(same_str(a->batch_id, b->batch_id));
	FUZZ_CHECK(same_str(a->status_text, b->status_text));
	FUZZ_CHECK(a->status == b->status);
	FUZZ_CHECK(a->batch_size == b->batch_size && a->consumed_count == b->consumed_count);
	FUZZ_CHECK(a->successful_updates == b->successful_updates);
	FUZZ_CHECK(a->profiles_not_found == b->profiles_not_found);
	FUZZ_CHECK(a->failed_updates == b->failed_updates);
}

static int parse_chunked(enum pobox_answer_kind kind, struct pobox_answer *out, const char *body,
                         size_t len, unsigned seed, struct rows *rows)
{
	struct pobox_response_parser *p = NULL;
	char err[256];
	int rc = pobox_response_parser_new(&p, kind, on_row, rows, err, sizeof err);
	FUZZ_CHECK(rc == 0);
	size_t pos = 0;
	unsigned step = seed | 1;
	while (rc == 0 && pos < len) {
		size_t n = 1 + (step + (unsigned char)body[pos]) % 64;
		if (n > len - pos)
			n = len - pos;
		rc = pobox_response_parser_feed(p, body + pos, n, err, sizeof err);
		pos += n;
		step = step * 33 + 7;
	}
	if (rc == 0)
		rc = pobox_response_parser_finish(p, out, err, sizeof err);
	if (rc != 0) {
		FUZZ_CHECK(err[0] != '\0');
		/* sticky: later calls return the same code */
		FUZZ_CHECK(pobox_response_parser_feed(p, "<", 1, err, sizeof err) == rc);
	}
	pobox_response_parser_free(p);
	return rc;
}

/* Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int utf8_ok(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1, cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2, cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3, cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + n >= len)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

static void check_error_text(const char *body, size_t len)
{
	static const size_t sizes[] = {1, 2, 4, 5, 9, 17, 64, 203, 204, 512};
	int body_utf8 = utf8_ok((const unsigned char *)body, len);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i];
		char buf[512];
		memset(buf, 'X', sizeof buf);
		pobox_response_error_text(buf, n, body, len);
		size_t got = strnlen(buf, n);
		FUZZ_CHECK(got < n);
		FUZZ_CHECK(got <= POBOX_RESPONSE_ERRTEXT_MAX + 3);
		if (body_utf8)
			FUZZ_CHECK(utf8_ok((const unsigned char *)buf, got));
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static struct pobox_response_parser *kept;
	if (size < 1)
		return 0;
	enum pobox_answer_kind kind = (enum pobox_answer_kind)(data[0] & 3);
	unsigned seed = data[0] >> 2;
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	struct pobox_answer whole, chunked, again;
	struct rows rw = {14695981039346656037u, 0}, rc_ = {14695981039346656037u, 0};
	char err[256];

	int r1 = pobox_response_parse(kind, &whole, body, len, on_row, &rw, err, sizeof err);
	if (r1 != 0) {
		FUZZ_CHECK(r1 == POBOX_ETRANSIENT || r1 == POBOX_ENOMEM);
		FUZZ_CHECK(err[0] != '\0');
	} else {
		check_answer(kind, &whole);
		FUZZ_CHECK(kind != POBOX_ANSWER_STATUS || whole.profile_rows == rw.n);
	}

	int r2 = parse_chunked(kind, &chunked, body, len, seed, &rc_);
	FUZZ_CHECK(r1 == r2);
	if (r1 == 0) {
		check_same(&whole, &chunked);
		FUZZ_CHECK(rw.n == rc_.n && rw.hash == rc_.hash);
		pobox_answer_free(&chunked);
	}

	if (!kept)
		FUZZ_CHECK(pobox_response_parser_new(&kept, POBOX_ANSWER_ANY, NULL, NULL, err, sizeof err) == 0);
	int r3 = pobox_response_parse_again(kept, kind, &again, body, len, err, sizeof err);
	FUZZ_CHECK(r1 == r3);
	if (r1 == 0) {
		check_same(&whole, &again);
		FUZZ_CHECK(again.profile_rows == whole.profile_rows);
		pobox_answer_free(&again);
		pobox_answer_free(&whole);
	}

	check_error_text(body, len);
	return 0;
}
