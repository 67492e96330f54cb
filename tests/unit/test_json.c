/*
 * test_json.c - the strict JSON reader (json.c) and RFC 3339 times
 * (timefmt.c): what Adobe's answers look like, every way a document can be
 * malformed (with the byte the error names), the limits, decoding of
 * escapes and surrogate pairs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "alloc.h"
#include "json.h"
#include "pobox.h"
#include "timefmt.h"

#include <stdio.h>
#include <string.h>

static int parse(struct pobox_json *d, const char *s, char *err, size_t errlen)
{
	return pobox_json_parse(d, s, strlen(s), 1000, err, errlen);
}

static void test_answers(void **state)
{
	(void)state;
	struct pobox_json d;
	char err[200], *s = NULL;
	int64_t n;
	const char *ims = "{\"access_token\":\"eyJhbGciOi.x-y_z\",\"token_type\":\"bearer\",\"expires_in\":86399}";
	assert_int_equal(parse(&d, ims, err, sizeof err), 0);
	assert_int_equal(d.toks[0].type, POBOX_JSON_OBJECT);
	assert_int_equal(d.toks[0].size, 3);
	long t = pobox_json_get(&d, 0, "access_token");
	assert_true(t > 0);
	assert_int_equal(pobox_json_string(&d, t, &s, NULL), 0);
	assert_string_equal(s, "eyJhbGciOi.x-y_z");
	pobox_free(s);
	assert_int_equal(pobox_json_int64(&d, pobox_json_get(&d, 0, "expires_in"), &n), 0);
	assert_int_equal(n, 86399);
	assert_int_equal(pobox_json_get(&d, 0, "missing"), -1);
	assert_true(pobox_json_string_is(&d, pobox_json_get(&d, 0, "token_type"), "bearer"));
	assert_false(pobox_json_string_is(&d, pobox_json_get(&d, 0, "token_type"), "beare"));
	pobox_json_free(&d);

	/* nested: a profile fetch; members are found past nested values */
	const char *fetch = "{\"client\":\"demo\",\"profileAttributes\":{\"tier\":{\"value\":\"gold\","
	                    "\"modifiedAt\":\"2017-08-09T18:18:04.659-04:00\"},\"n\":{\"value\":\"1\"}},"
	                    "\"visitorId\":\"a1\",\"list\":[1,[2,3],{\"x\":null}],\"ok\":true}";
	assert_int_equal(parse(&d, fetch, err, sizeof err), 0);
	long pa = pobox_json_get(&d, 0, "profileAttributes");
	assert_int_equal(d.toks[pa].type, POBOX_JSON_OBJECT);
	assert_int_equal(d.toks[pa].size, 2);
	long m = -1, names = 0;
	while (pobox_json_next_member(&d, pa, &m)) {
		names++;
		assert_int_equal(d.toks[m + 1].type, POBOX_JSON_OBJECT);
	}
	assert_int_equal(names, 2);
	long tier = pobox_json_get(&d, pa, "tier");
	assert_true(pobox_json_string_is(&d, pobox_json_get(&d, tier, "value"), "gold"));
	assert_true(pobox_json_string_is(&d, pobox_json_get(&d, 0, "visitorId"), "a1"));
	assert_int_equal(d.toks[pobox_json_get(&d, 0, "ok")].type, POBOX_JSON_TRUE);
	long list = pobox_json_get(&d, 0, "list");
	assert_int_equal(d.toks[list].size, 3);
	/* the member after the array is reached: "ok" follows "list" */
	assert_int_equal((long)d.toks[list].end, pobox_json_get(&d, 0, "ok") - 1);
	pobox_json_free(&d);
}

static void test_strings(void **state)
{
	(void)state;
	struct pobox_json d;
	char err[200], *s = NULL;
	size_t len;
	/* escapes, a BMP character, a surrogate pair (U+1F600), \u0000 */
	const char *doc = "[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20ac\", \"\\ud83d\\ude00\", \"x\\u0000y\", \"\xc3\xa9\"]";
	assert_int_equal(parse(&d, doc, err, sizeof err), 0);
	assert_int_equal(pobox_json_string(&d, 1, &s, NULL), 0);
	assert_string_equal(s, "a\"b\\c/d\b\f\n\r\t");
	pobox_free(s);
	assert_int_equal(pobox_json_string(&d, 2, &s, NULL), 0);
	assert_string_equal(s, "\xc3\xa9\xe2\x82\xac");
	pobox_free(s);
	assert_int_equal(pobox_json_string(&d, 3, &s, NULL), 0);
	assert_string_equal(s, "\xf0\x9f\x98\x80");
	pobox_free(s);
	assert_int_equal(pobox_json_string(&d, 4, &s, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(s, "x\0y", 3);
	pobox_free(s);
	assert_true(pobox_json_string_is(&d, 5, "\xc3\xa9"));
	assert_int_equal(pobox_json_string(&d, 0, &s, NULL), POBOX_EINVALID); /* the array */
	pobox_json_free(&d);
	/* a name with an escape still matches */
	assert_int_equal(parse(&d, "{\"to\\u006ben\":\"v\"}", err, sizeof err), 0);
	assert_true(pobox_json_get(&d, 0, "token") > 0);
	pobox_json_free(&d);
}

static void test_numbers(void **state)
{
	(void)state;
	struct pobox_json d;
	char err[200];
	double v;
	int64_t n;
	assert_int_equal(parse(&d, "[0, -0, 12, -3.5, 1e3, 2.5E-1, 9223372036854775807, 99999999999999999999]", err, sizeof err), 0);
	assert_int_equal(pobox_json_int64(&d, 1, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(pobox_json_int64(&d, 3, &n), 0);
	assert_int_equal(n, 12);
	assert_int_equal(pobox_json_int64(&d, 4, &n), POBOX_EINVALID); /* a fraction */
	assert_int_equal(pobox_json_double(&d, 4, &v), 0);
	assert_true(v == -3.5);
	assert_int_equal(pobox_json_int64(&d, 5, &n), POBOX_EINVALID); /* an exponent */
	assert_int_equal(pobox_json_double(&d, 5, &v), 0);
	assert_true(v == 1000);
	assert_int_equal(pobox_json_double(&d, 6, &v), 0);
	assert_true(v == 0.25);
	assert_int_equal(pobox_json_int64(&d, 7, &n), 0);
	assert_int_equal(n, INT64_MAX);
	assert_int_equal(pobox_json_int64(&d, 8, &n), POBOX_EINVALID); /* out of range */
	pobox_json_free(&d);
}

/* Each malformed document, and the byte its error names. */
static void test_malformed(void **state)
{
	(void)state;
	static const struct {
		const char *doc, *msg;
	} bad[] = {
		{"", "value expected at byte 0"},
		{"   ", "value expected at byte 3"},
		{"{\"a\":1,}", "member name expected at byte 7"},
		{"{\"a\" 1}", "':' expected after a member name at byte 5"},
		{"{\"a\":1 \"b\":2}", "',' or '}' expected at byte 7"},
		{"[1 2]", "',' or ']' expected at byte 3"},
		{"[1,]", "unexpected character at byte 3"},
		{"{\"a\":\"x}", "unterminated string at byte 8"},
		{"\"a\x01\"", "control character in a string at byte 2"},
		{"\"\\x\"", "bad escape in a string at byte 1"},
		{"\"\\u12\"", "bad escape in a string at byte 1"},
		{"\"\\ud83d\"", "high surrogate without its low half in a string at byte 1"},
		{"\"\\ude00\"", "lone low surrogate in a string at byte 1"},
		{"\"\xc3\"", "invalid UTF-8 in a string at byte 1"},
		{"\"\xc0\xaf\"", "invalid UTF-8 in a string at byte 1"},      /* overlong '/' */
		{"\"\xed\xa0\x80\"", "invalid UTF-8 in a string at byte 1"},  /* a surrogate */
		{"\"\xf4\x90\x80\x80\"", "invalid UTF-8 in a string at byte 1"}, /* > U+10FFFF */
		{"01", "text after the JSON value at byte 1"},
		{"1.", "digits expected after '.' at byte 2"},
		{"1e+", "digits expected in an exponent at byte 3"},
		{"-", "bad number at byte 0"},
		{"+1", "unexpected character at byte 0"},
		{"tru", "unexpected character at byte 0"},
		{"nul", "unexpected character at byte 0"},
		{"{} {}", "text after the JSON value at byte 3"},
		{"'a'", "unexpected character at byte 0"},
		{"[-x]", "bad number at byte 1"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct pobox_json d;
		char err[200] = "";
		int rc = pobox_json_parse(&d, bad[i].doc, strlen(bad[i].doc), 100, err, sizeof err);
		if (rc != POBOX_EINVALID || strcmp(err, bad[i].msg) != 0)
			fail_msg("document %zu '%s': rc %d, '%s' (want '%s')", i, bad[i].doc, rc, err, bad[i].msg);
		pobox_json_free(&d);
	}
}

static void test_limits(void **state)
{
	(void)state;
	struct pobox_json d;
	char err[200], deep[200];
	/* 32 levels are fine, 33 are not */
	memset(deep, '[', 32);
	memset(deep + 32, ']', 32);
	assert_int_equal(pobox_json_parse(&d, deep, 64, 100, err, sizeof err), 0);
	pobox_json_free(&d);
	memset(deep, '[', 33);
	memset(deep + 33, ']', 33);
	assert_int_equal(pobox_json_parse(&d, deep, 66, 100, err, sizeof err), POBOX_EINVALID);
	assert_string_equal(err, "nesting too deep at byte 32");
	pobox_json_free(&d);
	/* the token budget */
	assert_int_equal(pobox_json_parse(&d, "[1,2,3]", 7, 4, err, sizeof err), 0);
	pobox_json_free(&d);
	assert_int_equal(pobox_json_parse(&d, "[1,2,3,4]", 9, 4, err, sizeof err), POBOX_EINVALID);
	assert_string_equal(err, "too many values at byte 7");
	pobox_json_free(&d);
	/* a length that ends inside the text: only that much is read */
	assert_int_equal(pobox_json_parse(&d, "{\"a\":1}garbage", 7, 10, err, sizeof err), 0);
	pobox_json_free(&d);
}

static void test_alloc_failures(void **state)
{
	(void)state;
	const char *doc = "{\"a\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20],\"b\":\"x\"}";
	int ok = 0;
	for (long n = 0; n < 10 && !ok; n++) {
		struct pobox_json d;
		char err[200];
		pobox_alloc_fail_after(n);
		int rc = pobox_json_parse(&d, doc, strlen(doc), 100, err, sizeof err);
		pobox_alloc_fail_after(-1);
		assert_true(rc == 0 || rc == POBOX_ENOMEM);
		ok = rc == 0;
		pobox_json_free(&d);
	}
	assert_true(ok);
}

static void test_times(void **state)
{
	(void)state;
	int64_t ms;
	char buf[32];
	assert_int_equal(pobox_time_parse("1970-01-01T00:00:00Z", 20, &ms), 0);
	assert_int_equal(ms, 0);
	const char *t = "2017-08-18T17:53:39.003-04:00";
	assert_int_equal(pobox_time_parse(t, strlen(t), &ms), 0);
	assert_int_equal(ms, INT64_C(1503093219003));
	t = "2026-01-01T00:00:00+01:30";
	assert_int_equal(pobox_time_parse(t, strlen(t), &ms), 0);
	assert_int_equal(ms, INT64_C(1767225600000) - 5400000);
	t = "2024-02-29 12:00:00.5z";
	assert_int_equal(pobox_time_parse(t, strlen(t), &ms), 0);
	assert_int_equal(ms, INT64_C(1709208000500));
	static const char *bad[] = {"2026-01-01T00:00:00", "2026-01-01", "2026-13-01T00:00:00Z",
	                            "2026-01-01T24:00:00Z", "2026-01-01T00:00:00+0100",
	                            "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00Zjunk", "x"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(pobox_time_parse(bad[i], strlen(bad[i]), &ms), POBOX_EINVALID);
	assert_string_equal(pobox_time_format(INT64_C(1503093219003), buf, sizeof buf), "2017-08-18T21:53:39Z");
	assert_string_equal(pobox_time_format(0, buf, sizeof buf), "1970-01-01T00:00:00Z");
	assert_string_equal(pobox_time_format(INT64_C(4102444800000), buf, sizeof buf), "2100-01-01T00:00:00Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answers),     cmocka_unit_test(test_strings),
		cmocka_unit_test(test_numbers),     cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits),      cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_times),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
