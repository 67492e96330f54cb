/*
 * test_cells.c - the packed form of a write's values, a shape and a
 * profile's sent values (src/cells.c): the exact text the encoder writes,
 * round trips of every byte and of random UTF-8, the other JSON spellings
 * the decoder must accept (SQLite's json_array() output among them, checked
 * through SQLite itself), integer limits, large values and long arrays,
 * and damaged input - every truncation of valid text, every kind of
 * malformed token, trailing bytes - rejected without reading past the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "alloc.h"
#include "cells.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------- */

/* A copy of len bytes in a block of exactly that size, so that ASan sees
 * any read past the end of the input. */
static char *exact(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);
	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

/* Decodes text (an array of strings and nulls) into elems; returns the
 * number of elements, or -1 when the decoder said malformed.  Strings are
 * copied out NUL-terminated (values may hold NUL: lens has their length);
 * a null has lens[i] = (size_t)-1.  The input and the scratch are blocks of
 * exactly the input's length. */
static long decode_strs(const char *text, size_t len, char **elems, size_t *lens, size_t max)
{
	char *in = exact(text, len);
	char *scratch = malloc(len ? len : 1);
	assert_non_null(scratch);
	struct pobox_cells_reader r;
	struct pobox_cell c;
	long n = 0;
	int k = -1;
	if (pobox_cells_read_begin(&r, in, len, scratch) == 0) {
		while ((k = pobox_cells_next(&r, &c)) == 1) {
			assert_true((size_t)n < max);
			if (c.type == POBOX_CELL_NULL) {
				elems[n] = NULL;
				lens[n] = (size_t)-1;
			} else {
				assert_int_equal(c.type, POBOX_CELL_STR);
				elems[n] = malloc(c.len + 1);
				assert_non_null(elems[n]);
				memcpy(elems[n], c.s, c.len);
				elems[n][c.len] = '\0';
				lens[n] = c.len;
			}
			n++;
		}
	}
	if (k != 0) {
		for (long i = 0; i < n; i++)
			free(elems[i]);
		n = -1;
	}
	free(in);
	free(scratch);
	return n;
}

static void free_strs(char **elems, long n)
{
	for (long i = 0; i < n; i++)
		free(elems[i]);
}

/* 1 when the decoder accepts text as a whole (any element types, nested
 * arrays parsed again), 0 when it rejects it. */
static int accepts(const char *text, size_t len)
{
	char *in = exact(text, len);
	char *scratch = malloc(len ? len : 1), *scratch2 = malloc(len ? len : 1);
	assert_true(scratch && scratch2);
	struct pobox_cells_reader r, q;
	struct pobox_cell c, e;
	int k = -1, ok = 0;
	if (pobox_cells_read_begin(&r, in, len, scratch) == 0) {
		while ((k = pobox_cells_next(&r, &c)) == 1) {
			if (c.type != POBOX_CELL_ARRAY)
				continue;
			int kk;
			if (pobox_cells_read_begin(&q, c.raw, c.raw_len, scratch2) != 0) {
				k = -1;
				break;
			}
			while ((kk = pobox_cells_next(&q, &e)) == 1)
				;
			if (kk != 0) {
				k = -1;
				break;
			}
		}
		ok = k == 0;
	}
	free(in);
	free(scratch);
	free(scratch2);
	return ok;
}
#define accepts_s(s) accepts((s), strlen(s))

static void expect_text(struct pobox_cells_buf *b, const char *want)
{
	assert_int_equal(b->nomem, 0);
	assert_int_equal(b->len, strlen(want));
	assert_memory_equal(b->s, want, b->len);
	assert_int_equal(b->s[b->len], '\0');
}

/* ---- encoding: the exact text ---------------------------------------------- */

static void test_encode_forms(void **state)
{
	(void)state;
	struct pobox_cells_buf b = {0};
	/* a write's cells */
	pobox_cells_open(&b);
	pobox_cells_str(&b, "gold", 4);
	pobox_cells_str(&b, "838.19", 6);
	pobox_cells_null(&b);
	pobox_cells_str(&b, "Z\xc3\xbcrich", 7);
	pobox_cells_close(&b);
	expect_text(&b, "[\"gold\",\"838.19\",null,\"Z\xc3\xbcrich\"]");
	/* a shape */
	pobox_cells_buf_reset(&b);
	pobox_cells_open(&b);
	for (int64_t a = 3; a <= 9; a += 2)
		pobox_cells_int(&b, a);
	pobox_cells_close(&b);
	expect_text(&b, "[3,5,7,9]");
	/* a profile's sent values: one level of nesting */
	pobox_cells_buf_reset(&b);
	pobox_cells_open(&b);
	pobox_cells_open(&b);
	pobox_cells_int(&b, 3);
	pobox_cells_str(&b, "gold", 4);
	pobox_cells_int(&b, 1042);
	pobox_cells_int(&b, INT64_C(1733011200000));
	pobox_cells_close(&b);
	pobox_cells_open(&b);
	pobox_cells_int(&b, 5);
	pobox_cells_str(&b, "", 0);
	pobox_cells_int(&b, -1);
	pobox_cells_int(&b, 0);
	pobox_cells_close(&b);
	pobox_cells_open(&b);
	pobox_cells_close(&b);
	pobox_cells_close(&b);
	expect_text(&b, "[[3,\"gold\",1042,1733011200000],[5,\"\",-1,0],[]]");
	pobox_cells_buf_free(&b);
	assert_null(b.s);
	assert_int_equal(b.len, 0);
}

static void test_encode_empty(void **state)
{
	(void)state;
	struct pobox_cells_buf b = {0};
	pobox_cells_open(&b);
	pobox_cells_close(&b);
	expect_text(&b, "[]");
	pobox_cells_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.s, "");
	pobox_cells_open(&b);
	pobox_cells_str(&b, "", 0);
	pobox_cells_null(&b);
	pobox_cells_str(&b, "", 0);
	pobox_cells_close(&b);
	expect_text(&b, "[\"\",null,\"\"]");
	pobox_cells_buf_free(&b);
	/* reset and free of a buffer that never held anything */
	struct pobox_cells_buf z = {0};
	pobox_cells_buf_reset(&z);
	pobox_cells_buf_free(&z);
}

static void test_encode_escapes(void **state)
{
	(void)state;
	struct pobox_cells_buf b = {0};
	static const char in[] = "q\"b\\s/n\nt\tr\rb\bf\fx\x01y\x1f" "z\x7f\xe2\x9c\x93";
	pobox_cells_open(&b);
	pobox_cells_str(&b, in, sizeof in - 1);
	pobox_cells_close(&b);
	/* '/' and DEL and UTF-8 as they are; only what JSON requires escaped */
	expect_text(&b, "[\"q\\\"b\\\\s/n\\nt\\tr\\rb\\bf\\fx\\u0001y\\u001fz\x7f\xe2\x9c\x93\"]");
	/* a NUL byte inside a value is escaped too, never cut short */
	pobox_cells_buf_reset(&b);
	pobox_cells_open(&b);
	pobox_cells_str(&b, "a\0b", 3);
	pobox_cells_close(&b);
	expect_text(&b, "[\"a\\u0000b\"]");
	pobox_cells_buf_free(&b);
}

static void test_encode_int_limits(void **state)
{
	(void)state;
	struct pobox_cells_buf b = {0};
	pobox_cells_open(&b);
	pobox_cells_int(&b, INT64_MAX);
	pobox_cells_int(&b, INT64_MIN);
	pobox_cells_int(&b, 0);
	pobox_cells_close(&b);
	expect_text(&b, "[9223372036854775807,-9223372036854775808,0]");

	struct pobox_cells_reader r;
	struct pobox_cell c;
	assert_int_equal(pobox_cells_read_begin(&r, b.s, b.len, NULL), 0);
	assert_int_equal(pobox_cells_next(&r, &c), 1);
	assert_int_equal(c.type, POBOX_CELL_INT);
	assert_true(c.i == INT64_MAX);
	assert_int_equal(pobox_cells_next(&r, &c), 1);
	assert_true(c.i == INT64_MIN);
	assert_int_equal(pobox_cells_next(&r, &c), 1);
	assert_true(c.i == 0);
	assert_int_equal(pobox_cells_next(&r, &c), 0);
	pobox_cells_buf_free(&b);
}

/* ---- round trips --------------------------------------------------------------- */

/* Encodes the values (NULL = a null cell), decodes, compares. */
static void round_trip(const char **vals, const size_t *lens, size_t n)
{
	struct pobox_cells_buf b = {0};
	pobox_cells_open(&b);
	for (size_t i = 0; i < n; i++) {
		if (vals[i])
			pobox_cells_str(&b, vals[i], lens[i]);
		else
			pobox_cells_null(&b);
	}
	pobox_cells_close(&b);
	assert_int_equal(b.nomem, 0);
	char **got = calloc(n + 1, sizeof *got);
	size_t *glen = calloc(n + 1, sizeof *glen);
	assert_true(got && glen);
	long k = decode_strs(b.s, b.len, got, glen, n + 1);
	assert_int_equal(k, (long)n);
	for (size_t i = 0; i < n; i++) {
		if (!vals[i]) {
			assert_null(got[i]);
			continue;
		}
		assert_int_equal(glen[i], lens[i]);
		assert_memory_equal(got[i], vals[i], lens[i]);
	}
	free_strs(got, k);
	free(got);
	free(glen);
	pobox_cells_buf_free(&b);
}

static void test_round_trip_every_byte(void **state)
{
	(void)state;
	/* each byte 0..255 alone, and all of them in one value */
	char all[256];
	const char *vals[257];
	size_t lens[257];
	char one[256][1];
	for (int i = 0; i < 256; i++) {
		all[i] = (char)i;
		one[i][0] = (char)i;
		vals[i] = one[i];
		lens[i] = 1;
	}
	vals[256] = all;
	lens[256] = 256;
	round_trip(vals, lens, 257);
}

static void test_round_trip_unicode(void **state)
{
	(void)state;
	const char *v[] = {
		"\xc3\xbcn\xc3\xaf\x63\xc3\xb8\x64\xc3\xa9",   /* ünïcødé */
		"\xe2\x9c\x93",                                 /* ✓ */
		"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",         /* 日本語 */
		"\xf0\x9f\x8e\x89",                             /* 🎉 (4 bytes) */
		"\xc2\xa0nbsp",                                 /* U+00A0 */
		"\xef\xbb\xbf" "bom",                           /* U+FEFF */
		"\xe2\x80\xa8line sep\xe2\x80\xa9",             /* U+2028/2029, raw in JSON */
		"\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd",          /* U+D7FF U+E000 U+FFFD */
		"\xf4\x8f\xbf\xbf",                             /* U+10FFFF */
		"",
		NULL,
		"a,b=c&d%20\"e\" \\f",
	};
	size_t n = sizeof v / sizeof v[0], lens[sizeof v / sizeof v[0]];
	for (size_t i = 0; i < n; i++)
		lens[i] = v[i] ? strlen(v[i]) : 0;
	round_trip(v, lens, n);
}

/* A small seeded generator (the same values on every run). */
static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

/* Appends one random code point (often ASCII and escapes) as UTF-8. */
static size_t rand_char(char *o)
{
	uint32_t k = next_rand() % 10, cp;
	switch (k) {
	case 0: cp = next_rand() % 0x20; break;                    /* control */
	case 1: cp = (next_rand() % 2) ? '"' : '\\'; break;
	case 2: cp = 0x80 + next_rand() % 0x780; break;            /* 2 bytes */
	case 3: cp = 0x800 + next_rand() % 0xd000; break;          /* 3 bytes, below surrogates */
	case 4: cp = 0x10000 + next_rand() % 0x100000; break;      /* 4 bytes */
	default: cp = 0x20 + next_rand() % 0x5f; break;            /* printable ASCII */
	}
	if (cp >= 0xd800 && cp <= 0xdfff)
		cp = 'x';
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

static void test_round_trip_random(void **state)
{
	(void)state;
	enum { ROUNDS = 300, MAXN = 40, MAXLEN = 300 };
	static char store[MAXN][MAXLEN * 4];
	for (int round = 0; round < ROUNDS; round++) {
		const char *vals[MAXN];
		size_t lens[MAXN], n = 1 + next_rand() % MAXN;
		for (size_t i = 0; i < n; i++) {
			if (next_rand() % 8 == 0) {
				vals[i] = NULL;
				lens[i] = 0;
				continue;
			}
			size_t chars = next_rand() % MAXLEN, len = 0;
			for (size_t c = 0; c < chars; c++)
				len += rand_char(store[i] + len);
			vals[i] = store[i];
			lens[i] = len;
		}
		round_trip(vals, lens, n);
	}
}

/* ---- agreement with SQLite's JSON functions -------------------------------- */

/* What pobox writes is JSON SQLite reads back value for value; what SQLite's
 * json_array() writes, pobox reads back value for value. */
static void test_sqlite_agrees(void **state)
{
	(void)state;
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	sqlite3_stmt *ext = NULL, *arr = NULL;
	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT json_valid(?1), json_array_length(?1), json_extract(?1, '$[' || ?2 || ']'), "
		"json_type(?1, '$[' || ?2 || ']')", -1, &ext, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT json_array(?1, NULL, ?2)", -1, &arr, NULL),
	                 SQLITE_OK);
	char v[2][4 * 200];
	for (int round = 0; round < 300; round++) {
		size_t len[2];
		for (int j = 0; j < 2; j++) {
			size_t chars = next_rand() % 200;
			len[j] = 0;
			for (size_t c = 0; c < chars; c++) {
				len[j] += rand_char(v[j] + len[j]);
				if (v[j][len[j] - 1] == '\0') /* SQLite text stops at a NUL */
					v[j][len[j] - 1] = ' ';
			}
		}
		/* pobox -> SQLite */
		struct pobox_cells_buf b = {0};
		pobox_cells_open(&b);
		pobox_cells_str(&b, v[0], len[0]);
		pobox_cells_null(&b);
		pobox_cells_str(&b, v[1], len[1]);
		pobox_cells_close(&b);
		for (int pos = 0; pos < 3; pos++) {
			sqlite3_bind_text(ext, 1, b.s, (int)b.len, SQLITE_STATIC);
			sqlite3_bind_int(ext, 2, pos);
			assert_int_equal(sqlite3_step(ext), SQLITE_ROW);
			assert_int_equal(sqlite3_column_int(ext, 0), 1);
			assert_int_equal(sqlite3_column_int(ext, 1), 3);
			if (pos == 1) {
				assert_string_equal((const char *)sqlite3_column_text(ext, 3), "null");
			} else {
				const char *want = v[pos / 2];
				size_t wl = len[pos / 2];
				assert_string_equal((const char *)sqlite3_column_text(ext, 3), "text");
				assert_int_equal((size_t)sqlite3_column_bytes(ext, 2), wl);
				assert_memory_equal(sqlite3_column_text(ext, 2), want, wl);
			}
			sqlite3_reset(ext);
		}
		pobox_cells_buf_free(&b);
		/* SQLite -> pobox */
		sqlite3_bind_text(arr, 1, v[0], (int)len[0], SQLITE_STATIC);
		sqlite3_bind_text(arr, 2, v[1], (int)len[1], SQLITE_STATIC);
		assert_int_equal(sqlite3_step(arr), SQLITE_ROW);
		char *got[3];
		size_t glen[3];
		long n = decode_strs((const char *)sqlite3_column_text(arr, 0),
		                     (size_t)sqlite3_column_bytes(arr, 0), got, glen, 3);
		assert_int_equal(n, 3);
		assert_int_equal(glen[0], len[0]);
		assert_memory_equal(got[0], v[0], len[0]);
		assert_null(got[1]);
		assert_int_equal(glen[2], len[1]);
		assert_memory_equal(got[2], v[1], len[1]);
		free_strs(got, n);
		sqlite3_reset(arr);
	}
	sqlite3_finalize(ext);
	sqlite3_finalize(arr);
	sqlite3_close(db);
}

/* ---- other spellings the decoder accepts ------------------------------------ */

static void expect_one(const char *text, const char *want, size_t want_len)
{
	char *got[2];
	size_t glen[2];
	long n = decode_strs(text, strlen(text), got, glen, 2);
	assert_int_equal(n, 1);
	assert_int_equal(glen[0], want_len);
	assert_memory_equal(got[0], want, want_len);
	free_strs(got, n);
}

static void test_decode_spellings(void **state)
{
	(void)state;
	expect_one("[\"\\u00e9\"]", "\xc3\xa9", 2);
	expect_one("[\"\\u00C9\\u00c9\"]", "\xc3\x89\xc3\x89", 4);
	expect_one("[\"\\u0041\\u007f\"]", "A\x7f", 2);
	expect_one("[\"\\u0800\\uffff\"]", "\xe0\xa0\x80\xef\xbf\xbf", 6);
	expect_one("[\"\\ud83c\\udf89\"]", "\xf0\x9f\x8e\x89", 4);         /* surrogate pair */
	expect_one("[\"\\udbff\\udfff\"]", "\xf4\x8f\xbf\xbf", 4);         /* U+10FFFF */
	expect_one("[\"a\\/b\"]", "a/b", 3);
	expect_one("[\"\\\"\\\\\\b\\f\\n\\r\\t\"]", "\"\\\b\f\n\r\t", 7);
	expect_one("[\"plain \\u0000 nul\"]", "plain \0 nul", 11);
	/* escapes and plain text mixed, the plain prefix kept */
	expect_one("[\"abc\\ndef\\u00e9ghi\"]", "abc\ndef\xc3\xa9ghi", 12);
	/* white space anywhere JSON allows it */
	char *got[3];
	size_t glen[3];
	const char *ws = " \t\r\n[ \"a\" ,\n null\t,\r\"b\" ] ";
	long n = decode_strs(ws, strlen(ws), got, glen, 3);
	assert_int_equal(n, 3);
	assert_string_equal(got[0], "a");
	assert_null(got[1]);
	assert_string_equal(got[2], "b");
	free_strs(got, n);
	assert_true(accepts_s("[ [ 1 , \"x\" ] , [ ] ]"));
	assert_true(accepts_s("[]"));
	assert_true(accepts_s("[ ]"));
	assert_true(accepts_s("[-0]"));
}

/* Strings with nothing to unescape point into the input; unescaped ones
 * into the scratch, one after another, never overlapping. */
static void test_decode_no_copy(void **state)
{
	(void)state;
	const char *t = "[\"plain\",\"e\\u00e9\",\"x\\ny\",\"plain2\"]";
	size_t len = strlen(t);
	char *scratch = malloc(len);
	assert_non_null(scratch);
	struct pobox_cells_reader r;
	struct pobox_cell c[4];
	assert_int_equal(pobox_cells_read_begin(&r, t, len, scratch), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pobox_cells_next(&r, &c[i]), 1);
	assert_int_equal(pobox_cells_next(&r, &c[0]), 0);
	assert_ptr_equal(c[0].s, t + 2);
	assert_int_equal(c[0].len, 5);
	assert_ptr_equal(c[1].s, scratch);
	assert_memory_equal(c[1].s, "e\xc3\xa9", 3);
	assert_ptr_equal(c[2].s, scratch + 3);
	assert_memory_equal(c[2].s, "x\ny", 3);
	assert_true(c[3].s > t && c[3].s < t + len);
	assert_memory_equal(c[3].s, "plain2", 6);
	free(scratch);
	/* without a scratch, a string that needs unescaping is refused */
	assert_int_equal(pobox_cells_read_begin(&r, t, len, NULL), 0);
	assert_int_equal(pobox_cells_next(&r, &c[0]), 1);
	assert_int_equal(pobox_cells_next(&r, &c[0]), -1);
}

/* A nested array is handed out as its text, and parses again. */
static void test_decode_sent(void **state)
{
	(void)state;
	const char *t = "[[3,\"gold\",1042,1733011200000],[5,\"Z\\u00fcrich, \\\"]\\\"\",7,8]]";
	size_t len = strlen(t);
	char *scratch = malloc(len);
	assert_non_null(scratch);
	struct pobox_cells_reader r, q;
	struct pobox_cell c, e[4];
	assert_int_equal(pobox_cells_read_begin(&r, t, len, NULL), 0);
	assert_int_equal(pobox_cells_next(&r, &c), 1);
	assert_int_equal(c.type, POBOX_CELL_ARRAY);
	assert_int_equal(c.raw_len, strlen("[3,\"gold\",1042,1733011200000]"));
	assert_memory_equal(c.raw, "[3,\"gold\",1042,1733011200000]", c.raw_len);
	assert_int_equal(pobox_cells_read_begin(&q, c.raw, c.raw_len, scratch), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pobox_cells_next(&q, &e[i]), 1);
	assert_int_equal(pobox_cells_next(&q, &c), 0);
	assert_true(e[0].type == POBOX_CELL_INT && e[0].i == 3);
	assert_true(e[1].type == POBOX_CELL_STR && e[1].len == 4 && memcmp(e[1].s, "gold", 4) == 0);
	assert_true(e[2].i == 1042 && e[3].i == INT64_C(1733011200000));
	/* the second: a ']' inside a string does not end the nested array */
	assert_int_equal(pobox_cells_next(&r, &c), 1);
	assert_int_equal(c.type, POBOX_CELL_ARRAY);
	assert_int_equal(pobox_cells_read_begin(&q, c.raw, c.raw_len, scratch), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pobox_cells_next(&q, &e[i]), 1);
	assert_int_equal(pobox_cells_next(&q, &c), 0);
	assert_int_equal(e[1].len, strlen("Z\xc3\xbcrich, \"]\""));
	assert_memory_equal(e[1].s, "Z\xc3\xbcrich, \"]\"", e[1].len);
	assert_true(e[2].i == 7 && e[3].i == 8);
	assert_int_equal(pobox_cells_next(&r, &c), 0);
	free(scratch);
}

/* ---- shapes ---------------------------------------------------------------- */

static void test_shape(void **state)
{
	(void)state;
	int64_t ids[8];
	size_t n = 99;
	assert_int_equal(pobox_cells_read_shape("[3,5,8,9]", 9, ids, 8, &n), 0);
	assert_int_equal(n, 4);
	assert_true(ids[0] == 3 && ids[1] == 5 && ids[2] == 8 && ids[3] == 9);
	assert_int_equal(pobox_cells_read_shape("[]", 2, ids, 8, &n), 0);
	assert_int_equal(n, 0);
	/* exactly max ids, and one more */
	assert_int_equal(pobox_cells_read_shape("[1,2,3,4,5,6,7,8]", 17, ids, 8, &n), 0);
	assert_int_equal(n, 8);
	assert_int_equal(pobox_cells_read_shape("[1,2,3,4,5,6,7,8,9]", 19, ids, 8, &n), -1);
	/* a shape holds ids only */
	assert_int_equal(pobox_cells_read_shape("[1,\"2\"]", 7, ids, 8, &n), -1);
	assert_int_equal(pobox_cells_read_shape("[1,null]", 8, ids, 8, &n), -1);
	assert_int_equal(pobox_cells_read_shape("[1,[2]]", 7, ids, 8, &n), -1);
	assert_int_equal(pobox_cells_read_shape("[1,2", 4, ids, 8, &n), -1);
	assert_int_equal(pobox_cells_read_shape("{}", 2, ids, 8, &n), -1);
}

/* ---- large values and long arrays ------------------------------------------ */

static void test_max_sizes(void **state)
{
	(void)state;
	/* a 1 MiB value whose every byte needs the longest escape (6x), and a
	 * 1 MiB value of plain text, in one write */
	size_t big = (size_t)1 << 20;
	char *ctl = malloc(big), *plain = malloc(big);
	assert_true(ctl && plain);
	for (size_t i = 0; i < big; i++) {
		ctl[i] = (char)(1 + i % 7); /* \u0001 .. \u0007 */
		plain[i] = (char)('a' + i % 26);
	}
	const char *vals[] = {ctl, plain};
	size_t lens[] = {big, big};
	round_trip(vals, lens, 2);

	struct pobox_cells_buf b = {0};
	pobox_cells_open(&b);
	pobox_cells_str(&b, ctl, big);
	pobox_cells_close(&b);
	assert_int_equal(b.len, big * 6 + 4);
	assert_true(b.cap > b.len);
	pobox_cells_buf_free(&b);
	free(ctl);
	free(plain);

	/* a write of 100,000 positions, alternately set and not */
	enum { N = 100000 };
	pobox_cells_open(&b);
	for (int i = 0; i < N; i++) {
		if (i % 2)
			pobox_cells_null(&b);
		else {
			char v[16];
			int l = snprintf(v, sizeof v, "v%d", i);
			pobox_cells_str(&b, v, (size_t)l);
		}
	}
	pobox_cells_close(&b);
	assert_int_equal(b.nomem, 0);
	char **got = calloc(N, sizeof *got);
	size_t *glen = calloc(N, sizeof *glen);
	assert_true(got && glen);
	long n = decode_strs(b.s, b.len, got, glen, N);
	assert_int_equal(n, N);
	for (int i = 0; i < N; i++) {
		if (i % 2) {
			assert_null(got[i]);
		} else {
			char v[16];
			snprintf(v, sizeof v, "v%d", i);
			assert_string_equal(got[i], v);
		}
	}
	free_strs(got, n);
	free(got);
	free(glen);
	/* and a shape of 100,000 ids */
	pobox_cells_buf_reset(&b);
	pobox_cells_open(&b);
	for (int64_t i = 0; i < N; i++)
		pobox_cells_int(&b, i * 1000003);
	pobox_cells_close(&b);
	int64_t *ids = malloc(N * sizeof *ids);
	assert_non_null(ids);
	size_t k = 0;
	assert_int_equal(pobox_cells_read_shape(b.s, b.len, ids, N, &k), 0);
	assert_int_equal(k, N);
	for (int64_t i = 0; i < N; i++)
		assert_true(ids[i] == i * 1000003);
	free(ids);
	pobox_cells_buf_free(&b);
}

/* ---- out of memory ---------------------------------------------------------- */

static void test_nomem(void **state)
{
	(void)state;
	/* the first allocation fails: nothing is written, the flag stays set */
	struct pobox_cells_buf b = {0};
	pobox_alloc_fail_after(0);
	pobox_cells_open(&b);
	pobox_alloc_fail_after(-1);
	pobox_cells_str(&b, "abc", 3);
	pobox_cells_close(&b);
	assert_int_equal(b.nomem, 1);
	assert_int_equal(b.len, 0);
	pobox_cells_buf_free(&b);
	/* growing fails half way: the flag is set, the text so far is intact */
	pobox_cells_open(&b);
	pobox_cells_str(&b, "abc", 3);
	size_t len = b.len;
	char *big = malloc(4096);
	assert_non_null(big);
	memset(big, 'x', 4096);
	pobox_alloc_fail_after(0);
	pobox_cells_str(&b, big, 4096);
	pobox_alloc_fail_after(-1);
	pobox_cells_null(&b);
	pobox_cells_close(&b);
	assert_int_equal(b.nomem, 1);
	assert_true(b.len <= len + 1);
	assert_memory_equal(b.s, "[\"abc\"", len);
	/* a reset clears it */
	pobox_cells_buf_reset(&b);
	pobox_cells_open(&b);
	pobox_cells_close(&b);
	expect_text(&b, "[]");
	pobox_cells_buf_free(&b);
	free(big);
}

/* ---- damaged input ------------------------------------------------------------ */

/* Every proper prefix of valid text is malformed, and rejected without a
 * read past its end (the input is an exact-size block). */
static void test_truncated(void **state)
{
	(void)state;
	const char *valid[] = {
		"[\"gold\",\"838.19\",null,\"Z\xc3\xbcrich\"]",
		"[\"a\\\"b\\\\c\\n\\u00e9\\ud83c\\udf89\\/\"]",
		"[[3,\"gold\",1042,1733011200000],[5,\"x\\u0041\",-17,0]]",
		"[3,5,8,-9223372036854775808,9223372036854775807]",
		"[ null , \"\" ]",
		"[]",
	};
	for (size_t v = 0; v < sizeof valid / sizeof valid[0]; v++) {
		size_t len = strlen(valid[v]);
		assert_true(accepts(valid[v], len));
		for (size_t cut = 0; cut < len; cut++) {
			if (accepts(valid[v], cut))
				fail_msg("prefix of %zu bytes of %s accepted", cut, valid[v]);
		}
	}
}

static void test_malformed(void **state)
{
	(void)state;
	const char *bad[] = {
		"", " ", "\"a\"", "{}", "null", "]", "[[", "[\"a\"", "[\"a\",", "[,]", "[,\"a\"]",
		"[\"a\",]", "[\"a\" \"b\"]", "[\"a\"\"b\"]", "[null null]", "[nul]", "[nulll]",
		"[true]", "[false]", "[NULL]", "[{}]", "[\"a\":1]",
		/* strings */
		"[\"a]", "[\"a\\\"]", "[\"\\x41\"]", "[\"\\a\"]", "[\"\\U0041\"]", "[\"\\u41\"]",
		"[\"\\u004\"]", "[\"\\u00zz\"]", "[\"\\u\"]", "[\"\\\"]", "[\"tab\there\"]",
		"[\"nl\nhere\"]", "[\"\x01\"]", "[\"\x1f\"]", "['a']",
		/* surrogates: lone, reversed, half a pair */
		"[\"\\ud83c\"]", "[\"\\ud83cx\"]", "[\"\\udf89\"]", "[\"\\udf89\\ud83c\"]",
		"[\"\\ud83c\\u0041\"]", "[\"\\ud83c\\ud83c\"]", "[\"\\ud83c\\\"]", "[\"\\ud83c\\udf8\"]",
		/* numbers: only integers in range, JSON spelling */
		"[01]", "[-01]", "[00]", "[+1]", "[-]", "[1.5]", "[1e3]", "[1E3]", "[1.]", "[.5]",
		"[0x10]", "[9223372036854775808]", "[-9223372036854775809]",
		"[99999999999999999999]", "[1-2]", "[1 2]",
		/* nesting */
		"[[1,[2]]]", "[[[]]]", "[[1,2]", "[[\"a]\"]", "[[\"\\\"]\"]",
		"[[1,2],[3,", "[[1,2]x]",
		/* something after the array */
		"[]x", "[] ]", "[][]", "[\"a\"],", "[\"a\"]\"b\"", "[1]2", "[null]null",
	};
	int wrong = 0;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (accepts_s(bad[i])) {
			print_error("accepted malformed cells %s\n", bad[i]);
			wrong++;
		}
	}
	assert_int_equal(wrong, 0);
	/* nested arrays with malformed content are refused when parsed again */
	assert_false(accepts_s("[[1,\"\\q\"]]"));
	assert_false(accepts_s("[[1,,2]]"));
	assert_false(accepts_s("[[1 2]]"));
	/* trailing white space is fine */
	assert_true(accepts_s("[\"a\"] \n"));
}

/* A reader that has reported the end or an error keeps saying so. */
static void test_reader_stays_done(void **state)
{
	(void)state;
	struct pobox_cells_reader r;
	struct pobox_cell c;
	const char *t = "[\"a\"]";
	assert_int_equal(pobox_cells_read_begin(&r, t, strlen(t), NULL), 0);
	assert_int_equal(pobox_cells_next(&r, &c), 1);
	assert_int_equal(pobox_cells_next(&r, &c), 0);
	assert_int_not_equal(pobox_cells_next(&r, &c), 1);
	const char *u = "[\"a\",x]";
	assert_int_equal(pobox_cells_read_begin(&r, u, strlen(u), NULL), 0);
	assert_int_equal(pobox_cells_next(&r, &c), 1);
	assert_int_equal(pobox_cells_next(&r, &c), -1);
	assert_int_not_equal(pobox_cells_next(&r, &c), 1);
}

/* Random damage to valid text: whatever the decoder says, it never reads
 * past the end, and what it accepts is valid JSON by SQLite's judgement. */
static void test_random_damage(void **state)
{
	(void)state;
	sqlite3 *db = NULL;
	sqlite3_stmt *valid = NULL;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT json_valid(?1)", -1, &valid, NULL), SQLITE_OK);
	const char *base = "[\"gold\",null,\"a\\\"b\\u00e9\\ud83c\\udf89\",[3,\"x\",-17,1733011200000],42]";
	size_t len = strlen(base);
	static const char junk[] = "[]\",\\nu0123456789-e.{} \x01\x80";
	char buf[256];
	int accepted = 0, rejected = 0;
	for (int round = 0; round < 20000; round++) {
		memcpy(buf, base, len);
		size_t n = len;
		int edits = 1 + (int)(next_rand() % 3);
		for (int e = 0; e < edits; e++) {
			size_t at = next_rand() % n;
			switch (next_rand() % 3) {
			case 0: buf[at] = junk[next_rand() % (sizeof junk - 1)]; break;
			case 1: memmove(buf + at, buf + at + 1, n - at - 1); n--; break;
			default:
				if (n + 1 < sizeof buf) {
					memmove(buf + at + 1, buf + at, n - at);
					buf[at] = junk[next_rand() % (sizeof junk - 1)];
					n++;
				}
			}
		}
		if (accepts(buf, n)) {
			accepted++;
			sqlite3_bind_text(valid, 1, buf, (int)n, SQLITE_STATIC);
			assert_int_equal(sqlite3_step(valid), SQLITE_ROW);
			if (sqlite3_column_int(valid, 0) != 1)
				fail_msg("accepted text that is not JSON: %.*s", (int)n, buf);
			sqlite3_reset(valid);
		} else {
			rejected++;
		}
	}
	/* most damage breaks it; some (a changed letter) does not */
	assert_true(rejected > 10000);
	assert_true(accepted > 100);
	sqlite3_finalize(valid);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_forms),
		cmocka_unit_test(test_encode_empty),
		cmocka_unit_test(test_encode_escapes),
		cmocka_unit_test(test_encode_int_limits),
		cmocka_unit_test(test_round_trip_every_byte),
		cmocka_unit_test(test_round_trip_unicode),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_sqlite_agrees),
		cmocka_unit_test(test_decode_spellings),
		cmocka_unit_test(test_decode_no_copy),
		cmocka_unit_test(test_decode_sent),
		cmocka_unit_test(test_shape),
		cmocka_unit_test(test_max_sizes),
		cmocka_unit_test(test_nomem),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_reader_stays_done),
		cmocka_unit_test(test_random_damage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
