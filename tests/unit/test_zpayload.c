/*
 * test_zpayload.c - payloads at rest: the writer, and the reader that
 * hands a payload out piece by piece, holding back the last piece until the
 * stored length and CRC-32 check.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "alloc.h"
#include "pobox.h"
#include "zpayload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A payload as the batch writer makes one: header and rows as two zlib
 * streams back to back.  Returns the blob (caller frees) and the text. */
static unsigned char *make(size_t rows, size_t *blob_len, char **text, size_t *text_len)
{
	struct pobox_zwriter h, r;
	assert_int_equal(pobox_zwriter_init(&h, 1), 0);
	assert_int_equal(pobox_zwriter_init(&r, 1), 0);
	size_t cap = 64 + rows * 40, len = 0;
	char *t = malloc(cap);
	assert_non_null(t);
	len += (size_t)snprintf(t, cap, "batch=thirdPartyId,a,b\n");
	assert_int_equal(pobox_zwriter_write(&h, t, len), 0);
	for (size_t i = 0; i < rows; i++) {
		char line[64];
		int n = snprintf(line, sizeof line, "tp-%zu,%zu,v%zx\n", i, i * 7919, i * 31);
		assert_int_equal(pobox_zwriter_write(&r, line, (size_t)n), 0);
		memcpy(t + len, line, (size_t)n);
		len += (size_t)n;
	}
	assert_int_equal(pobox_zwriter_finish(&h), 0);
	assert_int_equal(pobox_zwriter_finish(&r), 0);
	unsigned char *blob = malloc(h.len + r.len + 16);
	assert_non_null(blob);
	memcpy(blob, h.out, h.len);
	memcpy(blob + h.len, r.out, r.len);
	*blob_len = h.len + r.len;
	pobox_zwriter_free(&h);
	pobox_zwriter_free(&r);
	*text = t;
	*text_len = len;
	return blob;
}

/* Reads the whole payload in pieces of at most `piece` bytes into out;
 * returns the reader's last result (0 at a clean end). */
static long read_all(struct pobox_zreader *zr, size_t piece, char *out, size_t out_cap,
                     size_t *got)
{
	char buf[70000];
	long n;
	*got = 0;
	while ((n = pobox_zreader_read(zr, buf, piece)) > 0) {
		assert_true(*got + (size_t)n <= out_cap);
		memcpy(out + *got, buf, (size_t)n);
		*got += (size_t)n;
	}
	return n;
}

static void reads_back_exactly_in_any_piece_size(void **state)
{
	(void)state;
	size_t blob_len, len, got;
	char *text;
	unsigned char *blob = make(20000, &blob_len, &text, &len);
	char *out = malloc(len + 1);
	size_t pieces[] = {1, 7, 4096, 65536, 70000};
	for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
		struct pobox_zreader zr;
		struct pobox_zblob zb;
		assert_int_equal(pobox_zreader_init(&zr, pobox_zblob_init(&zb, blob, blob_len), len, pobox_crc32(0, text, len)), 0);
		assert_int_equal(read_all(&zr, pieces[i], out, len, &got), 0);
		assert_int_equal(got, len);
		assert_memory_equal(out, text, len);
		/* after the end it stays at the end */
		char b[8];
		assert_int_equal(pobox_zreader_read(&zr, b, sizeof b), 0);
		pobox_zreader_free(&zr);
	}
	free(out);
	free(text);
	free(blob);
}

/* A source in pieces of `step` bytes: as stored, in parts cut at any byte
 * of a stream. */
struct pieces {
	const unsigned char *data;
	size_t len, at, step;
	struct pobox_zsource src;
};

static int pieces_next(void *ctx, const void **data, size_t *len)
{
	struct pieces *p = ctx;
	size_t n = p->len - p->at < p->step ? p->len - p->at : p->step;
	*data = p->data + p->at;
	*len = n;
	p->at += n;
	return 0;
}

static int pieces_rewind(void *ctx)
{
	((struct pieces *)ctx)->at = 0;
	return 0;
}

static void reads_a_source_in_parts(void **state)
{
	(void)state;
	size_t blob_len, len, got;
	char *text;
	unsigned char *blob = make(20000, &blob_len, &text, &len);
	char *out = malloc(len);
	size_t steps[] = {1, 2, 1000, 65536};
	for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
		struct pieces p = {blob, blob_len, 0, steps[i], {pieces_next, pieces_rewind, NULL}};
		p.src.ctx = &p;
		struct pobox_zreader zr;
		assert_int_equal(pobox_zreader_init(&zr, &p.src, len, pobox_crc32(0, text, len)), 0);
		assert_int_equal(read_all(&zr, 5000, out, len, &got), 0);
		assert_int_equal(got, len);
		assert_memory_equal(out, text, len);
		/* and again after a rewind half way */
		assert_int_equal(pobox_zreader_rewind(&zr), 0);
		char b[3000];
		assert_int_equal(pobox_zreader_read(&zr, b, sizeof b), (long)sizeof b);
		assert_int_equal(pobox_zreader_rewind(&zr), 0);
		assert_int_equal(read_all(&zr, 4096, out, len, &got), 0);
		assert_int_equal(got, len);
		assert_memory_equal(out, text, len);
		pobox_zreader_free(&zr);
	}
	free(out);
	free(text);
	free(blob);
}

static void rewind_starts_over(void **state)
{
	(void)state;
	size_t blob_len, len, got;
	char *text;
	unsigned char *blob = make(5000, &blob_len, &text, &len);
	char *out = malloc(len);
	struct pobox_zreader zr;
	struct pobox_zblob zb;
	assert_int_equal(pobox_zreader_init(&zr, pobox_zblob_init(&zb, blob, blob_len), len, pobox_crc32(0, text, len)), 0);
	char b[1000];
	assert_int_equal(pobox_zreader_read(&zr, b, sizeof b), (long)sizeof b);
	assert_int_equal(pobox_zreader_rewind(&zr), 0);
	assert_int_equal(read_all(&zr, 333, out, len, &got), 0);
	assert_int_equal(got, len);
	assert_memory_equal(out, text, len);
	pobox_zreader_free(&zr);
	free(out);
	free(text);
	free(blob);
}

/* Each kind of damage: the last piece is never handed out. */
static void damage_is_refused_before_the_last_piece(void **state)
{
	(void)state;
	size_t blob_len, len, got;
	char *text;
	unsigned char *blob = make(20000, &blob_len, &text, &len);
	uint32_t crc = pobox_crc32(0, text, len);
	char *out = malloc(len + 70000);
	struct {
		const char *what;
		size_t blob_len;
		uint64_t want_len;
		uint32_t want_crc;
	} cases[] = {
		{"wrong crc", blob_len, len, crc ^ 1},
		{"truncated blob", blob_len / 2, len, crc},
		{"one byte short of its stream end", blob_len - 1, len, crc},
		{"stored length one short", blob_len, len - 1, crc},
		{"stored length one long", blob_len, len + 1, crc},
		{"trailing garbage", blob_len + 3, len, crc},
	};
	memcpy(blob + blob_len, "xyz", 3);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct pobox_zreader zr;
		struct pobox_zblob zb;
		assert_int_equal(pobox_zreader_init(&zr, pobox_zblob_init(&zb, blob, cases[i].blob_len), cases[i].want_len,
		                                     cases[i].want_crc), 0);
		long rc = read_all(&zr, 4096, out, len + 70000, &got);
		if (rc != POBOX_ECORRUPT)
			fail_msg("%s: reader ended with %ld", cases[i].what, rc);
		if (got >= cases[i].want_len)
			fail_msg("%s: handed out all %zu bytes", cases[i].what, got);
		pobox_zreader_free(&zr);
		assert_int_equal(pobox_zpayload_check(pobox_zblob_init(&zb, blob, cases[i].blob_len), cases[i].want_len,
		                                      cases[i].want_crc, NULL, NULL),
		                 POBOX_ECORRUPT);
	}
	struct pobox_zblob zb;
	assert_int_equal(pobox_zpayload_check(pobox_zblob_init(&zb, blob, blob_len), len, crc, NULL, NULL), 0);
	free(out);
	free(text);
	free(blob);
}

static void empty_payload(void **state)
{
	(void)state;
	struct pobox_zreader zr;
	struct pobox_zblob zb;
	char b[4];
	assert_int_equal(pobox_zreader_init(&zr, pobox_zblob_init(&zb, "", 0), 0, 0), 0);
	assert_int_equal(pobox_zreader_read(&zr, b, sizeof b), 0);
	pobox_zreader_free(&zr);
	assert_int_equal(pobox_zreader_init(&zr, pobox_zblob_init(&zb, "", 0), 5, 0), 0);
	assert_int_equal(pobox_zreader_read(&zr, b, sizeof b), POBOX_ECORRUPT);
	pobox_zreader_free(&zr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reads_back_exactly_in_any_piece_size),
		cmocka_unit_test(reads_a_source_in_parts),
		cmocka_unit_test(rewind_starts_over),
		cmocka_unit_test(damage_is_refused_before_the_last_piece),
		cmocka_unit_test(empty_payload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
