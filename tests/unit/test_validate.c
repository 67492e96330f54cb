/*
 * test_validate.c - every validation rule, both sides of every limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "validate.h"

#include <string.h>

static char err[512];

static int id_ok(enum pobox_id_type t, const char *id)
{
	return pobox_validate_profile_id(t, id, strlen(id), err, sizeof err);
}

static void test_id_types(void **state)
{
	enum pobox_id_type t;
	(void)state;
	static const struct {
		const char *name;
		enum pobox_id_type want;
	} ok[] = {
		{"pcId", POBOX_ID_PCID}, {"mboxPC", POBOX_ID_PCID}, {"tntId", POBOX_ID_PCID},
		{"PCID", POBOX_ID_PCID}, {"thirdPartyId", POBOX_ID_THIRDPARTY},
		{"mbox3rdPartyId", POBOX_ID_THIRDPARTY}, {"thirdpartyid", POBOX_ID_THIRDPARTY},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		t = 0;
		assert_int_equal(pobox_id_type_parse(ok[i].name, &t, err, sizeof err), 0);
		assert_int_equal(t, ok[i].want);
	}
	assert_string_equal(pobox_id_type_name(POBOX_ID_PCID), "pcId");
	assert_string_equal(pobox_id_type_name(POBOX_ID_THIRDPARTY), "thirdPartyId");

	assert_int_equal(pobox_id_type_parse("ECID", &t, err, sizeof err), POBOX_EINVALID);
	assert_non_null(strstr(err, "not supported by Target's profile update APIs"));
	assert_int_equal(pobox_id_type_parse("marketingCloudVisitorId", &t, err, sizeof err),
	                 POBOX_EINVALID);
	assert_non_null(strstr(err, "ECID"));
	assert_int_equal(pobox_id_type_parse("email", &t, err, sizeof err), POBOX_EINVALID);
	assert_non_null(strstr(err, "unknown id type 'email'"));
	assert_int_equal(pobox_id_type_parse("", &t, err, sizeof err), POBOX_EINVALID);
	assert_int_equal(pobox_id_type_parse(NULL, &t, err, sizeof err), POBOX_EINVALID);
}

static void test_profile_id(void **state)
{
	char id[300];
	(void)state;
	assert_int_equal(id_ok(POBOX_ID_THIRDPARTY, "crm-42"), 0);
	assert_int_equal(id_ok(POBOX_ID_PCID, "1368007744041-575948.01_00"), 0);
	assert_int_equal(id_ok(POBOX_ID_THIRDPARTY, "Zürich-ü"), 0);

	/* empty */
	assert_int_equal(id_ok(POBOX_ID_THIRDPARTY, ""), POBOX_EINVALID);
	assert_non_null(strstr(err, "empty"));
	/* 256 bytes ok, 257 not */
	memset(id, 'a', 256);
	id[256] = '\0';
	assert_int_equal(id_ok(POBOX_ID_THIRDPARTY, id), 0);
	id[256] = 'a';
	id[257] = '\0';
	assert_int_equal(id_ok(POBOX_ID_THIRDPARTY, id), POBOX_EINVALID);
	assert_non_null(strstr(err, "257 bytes"));
	/* multi-byte characters count in bytes: 128 x "é" (2 bytes) = 256 ok, 129 not */
	id[0] = '\0';
	for (int i = 0; i < 128; i++)
		strcat(id, "\xc3\xa9");
	assert_int_equal(id_ok(POBOX_ID_THIRDPARTY, id), 0);
	strcat(id, "\xc3\xa9");
	assert_int_equal(id_ok(POBOX_ID_THIRDPARTY, id), POBOX_EINVALID);

	/* control characters, including DEL; not space */
	assert_int_equal(id_ok(POBOX_ID_THIRDPARTY, "a\tb"), POBOX_EINVALID);
	assert_non_null(strstr(err, "control character"));
	assert_non_null(strstr(err, "\\x09")); /* shown escaped, never raw */
	assert_int_equal(id_ok(POBOX_ID_PCID, "a\nb"), POBOX_EINVALID);
	assert_int_equal(id_ok(POBOX_ID_PCID, "a\x7f"), POBOX_EINVALID);
	assert_int_equal(id_ok(POBOX_ID_PCID, "a\x1f"), POBOX_EINVALID);
	assert_int_equal(id_ok(POBOX_ID_PCID, "a b"), 0);

	/* + and / only refused for thirdPartyId */
	assert_int_equal(id_ok(POBOX_ID_THIRDPARTY, "a+b"), POBOX_EINVALID);
	assert_non_null(strstr(err, "'+'"));
	assert_int_equal(id_ok(POBOX_ID_THIRDPARTY, "a/b"), POBOX_EINVALID);
	assert_non_null(strstr(err, "'/'"));
	assert_int_equal(id_ok(POBOX_ID_PCID, "a+b/c"), 0);

	/* invalid UTF-8 */
	assert_int_equal(id_ok(POBOX_ID_THIRDPARTY, "a\xff"), POBOX_EINVALID);
	assert_non_null(strstr(err, "UTF-8"));
}

static int attr_ok(const char *a, const char **name, size_t *len)
{
	return pobox_validate_attr(a, strlen(a), name, len, err, sizeof err);
}

static void test_attr(void **state)
{
	const char *name;
	size_t len;
	char a[200];
	(void)state;

	assert_int_equal(attr_ok("loyaltyTier", &name, &len), 0);
	assert_int_equal(len, 11);
	assert_memory_equal(name, "loyaltyTier", 11);
	/* profile. prefix stripped */
	assert_int_equal(attr_ok("profile.loyaltyTier", &name, &len), 0);
	assert_int_equal(len, 11);
	assert_memory_equal(name, "loyaltyTier", 11);
	/* only one prefix is stripped; the rest is a dotted name */
	assert_int_equal(attr_ok("profile.profile.x", &name, &len), 0);
	assert_int_equal(len, 9);
	assert_int_equal(attr_ok("address.city", &name, &len), 0);
	assert_int_equal(attr_ok("a_b-c.D9", &name, &len), 0);

	/* empty, and empty after the prefix */
	assert_int_equal(attr_ok("", &name, &len), POBOX_EINVALID);
	assert_int_equal(attr_ok("profile.", &name, &len), POBOX_EINVALID);
	assert_non_null(strstr(err, "empty"));

	/* 128 bytes ok, 129 not (counted after the prefix) */
	memset(a, 'x', 128);
	a[128] = '\0';
	assert_int_equal(attr_ok(a, &name, &len), 0);
	memmove(a + 8, a, 129);
	memcpy(a, "profile.", 8);
	assert_int_equal(attr_ok(a, &name, &len), 0);
	memset(a, 'x', 129);
	a[129] = '\0';
	assert_int_equal(attr_ok(a, &name, &len), POBOX_EINVALID);
	assert_non_null(strstr(err, "129 bytes"));

	/* characters outside the table */
	static const char *const bad[] = {"a b", "a,b", "a=b", "a&b", "a%b", "a+b", "a/b",
	                                  "a\"b", "ä", "a:b", "a\tb"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(attr_ok(bad[i], &name, &len), POBOX_EINVALID);
		assert_non_null(strstr(err, "not allowed"));
	}
	/* dots only between parts */
	assert_int_equal(attr_ok(".a", &name, &len), POBOX_EINVALID);
	assert_int_equal(attr_ok("a.", &name, &len), POBOX_EINVALID);
	assert_int_equal(attr_ok("a..b", &name, &len), POBOX_EINVALID);
	assert_int_equal(attr_ok("profile..a", &name, &len), POBOX_EINVALID);

	/* reserved names, also behind the prefix; case-sensitive like Target */
	for (size_t i = 0; pobox_reserved_attributes[i]; i++) {
		assert_int_equal(attr_ok(pobox_reserved_attributes[i], &name, &len), POBOX_EINVALID);
		assert_non_null(strstr(err, "reserved"));
	}
	assert_int_equal(attr_ok("profile.user", &name, &len), POBOX_EINVALID);
	assert_int_equal(attr_ok("User", &name, &len), 0);
	assert_int_equal(attr_ok("user.name", &name, &len), 0);
}

static int value_ok(const char *v, int max)
{
	return pobox_validate_value(v, strlen(v), max, err, sizeof err);
}

static void test_value(void **state)
{
	char v[1200];
	(void)state;
	assert_int_equal(value_ok("gold", 256), 0);
	assert_int_equal(value_ok("", 256), POBOX_SKIPPED);
	assert_int_equal(pobox_validate_value(NULL, 0, 256, err, sizeof err), POBOX_SKIPPED);
	/* whitespace is a value, not empty */
	assert_int_equal(value_ok(" ", 256), 0);
	/* commas, quotes, newlines, ampersands are fine: they get encoded */
	assert_int_equal(value_ok("a,b \"c\"\nd&e=f+g%", 256), 0);

	/* 256 characters ok, 257 not; characters, not bytes */
	memset(v, 'v', 256);
	v[256] = '\0';
	assert_int_equal(value_ok(v, 256), 0);
	v[256] = 'v';
	v[257] = '\0';
	assert_int_equal(value_ok(v, 256), POBOX_EINVALID);
	assert_non_null(strstr(err, "257 characters"));
	assert_non_null(strstr(err, "max_value_chars"));
	v[0] = '\0';
	for (int i = 0; i < 256; i++)
		strcat(v, "\xe2\x82\xac"); /* euro sign, 3 bytes */
	assert_int_equal(value_ok(v, 256), 0);
	strcat(v, "\xe2\x82\xac");
	assert_int_equal(value_ok(v, 256), POBOX_EINVALID);
	/* the limit is configurable */
	assert_int_equal(value_ok("abcd", 4), 0);
	assert_int_equal(value_ok("abcde", 4), POBOX_EINVALID);

	/* invalid UTF-8 of each kind */
	static const char *const bad[] = {
		"\x80",             /* lone continuation */
		"\xc3",             /* truncated 2-byte */
		"\xc0\xaf",         /* overlong '/' */
		"\xe0\x80\xaf",     /* overlong 3-byte */
		"\xed\xa0\x80",     /* surrogate U+D800 */
		"\xf4\x90\x80\x80", /* beyond U+10FFFF */
		"\xff",
		"ok\xe2\x82",       /* truncated at the end */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(value_ok(bad[i], 256), POBOX_EINVALID);
		assert_non_null(strstr(err, "not valid UTF-8"));
	}
	/* the largest valid code point and a 4-byte emoji are fine */
	assert_int_equal(value_ok("\xf4\x8f\xbf\xbf", 256), 0);
	assert_int_equal(value_ok("\xf0\x9f\x98\x80", 1), 0);
}

static void test_quote_escapes(void **state)
{
	char buf[160];
	(void)state;
	pobox_quote(buf, sizeof buf, "a\nb'c", 5);
	assert_string_equal(buf, "'a\\x0ab\\x27c'");
	char longv[100];
	memset(longv, 'z', sizeof longv);
	pobox_quote(buf, sizeof buf, longv, sizeof longv);
	assert_non_null(strstr(buf, "..."));
	assert_true(strlen(buf) < 60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_types),
		cmocka_unit_test(test_profile_id),
		cmocka_unit_test(test_attr),
		cmocka_unit_test(test_value),
		cmocka_unit_test(test_quote_escapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
