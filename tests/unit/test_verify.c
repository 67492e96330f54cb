/*
 * test_verify.c - pobox verify's parts that need no network: the classes
 * (verify.c, every row of the table in verify.h), reading Profile Fetch
 * answers and building their URLs (fetch.c), and the record of a run in
 * the outbox (store/verify.c: figures, findings, the JSON, what is kept).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "alloc.h"
#include "fetch.h"
#include "json.h"
#include "outbox.h"
#include "store.h"
#include "testutil.h"
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR (3600 * 1000LL)
#define DAY (24 * HOUR)

static struct pobox_sent_value sent(const char *v, int64_t at)
{
	struct pobox_sent_value s = {.attr = "tier", .value = (char *)v, .value_len = strlen(v),
	                             .sent_at_ms = at};
	return s;
}

static struct pobox_fetched_attr held(const char *v, int64_t modified)
{
	struct pobox_fetched_attr t = {.name = "tier", .value = (char *)v,
	                               .value_len = v ? strlen(v) : 0, .modified_ms = modified};
	return t;
}

static void test_classes(void **state)
{
	(void)state;
	const int64_t now = 100 * DAY, g = DAY;
	const char *why;
	struct pobox_sent_value young = sent("gold", now - HOUR), old = sent("gold", now - 2 * DAY);
	struct pobox_fetched_attr same = held("gold", now - 30 * DAY);
	struct pobox_fetched_attr later = held("silver", now - 10 * 60 * 1000); /* after both */
	struct pobox_fetched_attr before = held("silver", now - 30 * DAY);
	struct pobox_fetched_attr unknown = held("silver", -1);
	struct pobox_fetched_attr empty = held(NULL, -1);
	struct pobox_fetched_attr prefix = held("gol", now - 30 * DAY);

	/* the same value matches, whatever the times */
	assert_int_equal(pobox_verify_classify(&young, 1, &same, now, g, &why), POBOX_VC_MATCHING);
	assert_null(why);
	assert_int_equal(pobox_verify_classify(&old, 1, &same, now, g, &why), POBOX_VC_MATCHING);
	/* another writer after pobox: different at once, grace or not */
	assert_int_equal(pobox_verify_classify(&young, 1, &later, now, g, &why), POBOX_VC_DIFFERENT);
	assert_string_equal(why, "another_writer");
	assert_int_equal(pobox_verify_classify(&old, 1, &later, now, g, &why), POBOX_VC_DIFFERENT);
	assert_string_equal(why, "another_writer");
	/* an older value: not yet applied within the grace, different past it */
	assert_int_equal(pobox_verify_classify(&young, 1, &before, now, g, &why), POBOX_VC_NOT_YET_APPLIED);
	assert_string_equal(why, "older_value");
	assert_int_equal(pobox_verify_classify(&old, 1, &before, now, g, &why), POBOX_VC_DIFFERENT);
	assert_string_equal(why, "older_value");
	/* no modifiedAt to go by: taken as older */
	assert_int_equal(pobox_verify_classify(&young, 1, &unknown, now, g, &why), POBOX_VC_NOT_YET_APPLIED);
	assert_int_equal(pobox_verify_classify(&old, 1, &unknown, now, g, &why), POBOX_VC_DIFFERENT);
	/* a value that is a prefix, or none at all, is not the same value */
	assert_int_equal(pobox_verify_classify(&old, 1, &prefix, now, g, &why), POBOX_VC_DIFFERENT);
	assert_int_equal(pobox_verify_classify(&old, 1, &empty, now, g, &why), POBOX_VC_DIFFERENT);
	/* no attribute, no profile: not yet applied, then missing */
	assert_int_equal(pobox_verify_classify(&young, 1, NULL, now, g, &why), POBOX_VC_NOT_YET_APPLIED);
	assert_string_equal(why, "no_attribute");
	assert_int_equal(pobox_verify_classify(&old, 1, NULL, now, g, &why), POBOX_VC_MISSING);
	assert_string_equal(why, "no_attribute");
	assert_int_equal(pobox_verify_classify(&young, 0, NULL, now, g, &why), POBOX_VC_NOT_YET_APPLIED);
	assert_string_equal(why, "no_profile");
	assert_int_equal(pobox_verify_classify(&old, 0, NULL, now, g, &why), POBOX_VC_MISSING);
	assert_string_equal(why, "no_profile");
	/* the grace's edge: exactly the grace ago is past it; grace 0: never young */
	struct pobox_sent_value edge = sent("gold", now - g);
	assert_int_equal(pobox_verify_classify(&edge, 1, &before, now, g, &why), POBOX_VC_DIFFERENT);
	edge.sent_at_ms = now - g + 1;
	assert_int_equal(pobox_verify_classify(&edge, 1, &before, now, g, &why), POBOX_VC_NOT_YET_APPLIED);
	assert_int_equal(pobox_verify_classify(&young, 1, &before, now, 0, &why), POBOX_VC_DIFFERENT);
	/* modified exactly at pobox's delivery is not "after" it */
	struct pobox_fetched_attr at = held("silver", young.sent_at_ms);
	assert_int_equal(pobox_verify_classify(&young, 1, &at, now, g, &why), POBOX_VC_NOT_YET_APPLIED);
}

static int parse(const char *s, struct pobox_fetched *f, char *err, size_t len)
{
	return pobox_fetch_parse(s, strlen(s), f, err, len);
}

static void test_answers(void **state)
{
	(void)state;
	struct pobox_fetched f;
	char err[200];
	/* the documented shape (target-api.md section 7), with an offset */
	const char *doc = "{\"client\": \"demo\", \"visitorId\": \"a1-mbox3rdPartyId\","
	                  " \"modifiedAt\": \"2017-08-18T17:53:39.003-04:00\","
	                  " \"profileAttributes\": {\"param1\": {\"value\": \"value1\","
	                  " \"modifiedAt\": \"2017-08-09T18:18:04.659-04:00\"},"
	                  " \"profile.city\": {\"value\": \"Z\\u00fcrich, \\\"old\\\"\", \"modifiedAt\": \"2017-08-09T22:18:04Z\"},"
	                  " \"n\": {\"value\": 12.5}, \"bare\": \"x\", \"nothing\": {}}}";
	assert_int_equal(parse(doc, &f, err, sizeof err), 0);
	assert_int_equal(f.n, 5);
	assert_int_equal(f.modified_ms, 1503093219003LL);
	const struct pobox_fetched_attr *a = pobox_fetched_find(&f, "param1");
	assert_non_null(a);
	assert_string_equal(a->value, "value1");
	assert_int_equal(a->modified_ms, 1502317084659LL);
	/* "profile.city" answers for city */
	a = pobox_fetched_find(&f, "city");
	assert_non_null(a);
	assert_string_equal(a->value, "Z\xc3\xbcrich, \"old\"");
	assert_int_equal(a->value_len, strlen("Z\xc3\xbcrich, \"old\""));
	assert_int_equal(a->modified_ms, 1502317084000LL);
	/* a number is kept as its text; a bare value has no time */
	assert_string_equal(pobox_fetched_find(&f, "n")->value, "12.5");
	assert_int_equal(pobox_fetched_find(&f, "n")->modified_ms, -1);
	assert_string_equal(pobox_fetched_find(&f, "bare")->value, "x");
	/* an attribute without a value is there, holding nothing */
	a = pobox_fetched_find(&f, "nothing");
	assert_non_null(a);
	assert_null(a->value);
	assert_null(pobox_fetched_find(&f, "param2"));
	assert_null(pobox_fetched_find(&f, "aram1"));
	pobox_fetched_free(&f);

	/* no attributes at all, and an empty object */
	assert_int_equal(parse("{\"client\":\"demo\"}", &f, err, sizeof err), 0);
	assert_int_equal(f.n, 0);
	assert_int_equal(f.modified_ms, -1);
	assert_null(pobox_fetched_find(&f, "tier"));
	pobox_fetched_free(&f);
	assert_int_equal(parse("{\"profileAttributes\":{}}", &f, err, sizeof err), 0);
	assert_int_equal(f.n, 0);
	pobox_fetched_free(&f);
	/* a time that is not one: unknown, not an error */
	assert_int_equal(parse("{\"profileAttributes\":{\"t\":{\"value\":\"v\",\"modifiedAt\":\"yesterday\"}}}",
	                       &f, err, sizeof err), 0);
	assert_int_equal(pobox_fetched_find(&f, "t")->modified_ms, -1);
	pobox_fetched_free(&f);
}

static void test_malformed(void **state)
{
	(void)state;
	static const struct {
		const char *body, *says;
	} bad[] = {
		{"", "byte 0"},
		{"<response><success>false</success></response>", "byte 0"},
		{"[1,2]", "not a JSON object"},
		{"\"x\"", "not a JSON object"},
		{"{\"profileAttributes\":[]}", "profileAttributes is not an object"},
		{"{\"profileAttributes\":\"a\"}", "profileAttributes is not an object"},
		{"{\"profileAttributes\":{\"a\":{\"value\":\"b\"}}", "byte"},
		{"{\"profileAttributes\":{}} trailing", "byte"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct pobox_fetched f;
		char err[200] = "";
		assert_int_equal(parse(bad[i].body, &f, err, sizeof err), POBOX_EPERMANENT);
		assert_non_null(strstr(err, bad[i].says));
		assert_int_equal(f.n, 0);
		assert_null(f.a);
		pobox_fetched_free(&f);
	}
}

static void test_alloc_failures(void **state)
{
	(void)state;
	const char *doc = "{\"profileAttributes\":{\"a\":{\"value\":\"1\"},\"b\":{\"value\":\"2\"},"
	                  "\"c\":{\"value\":3}}}";
	int ok = 0;
	for (long n = 0; n < 40 && !ok; n++) {
		struct pobox_fetched f;
		char err[200];
		pobox_alloc_fail_after(n);
		int rc = parse(doc, &f, err, sizeof err);
		pobox_alloc_fail_after(-1);
		assert_true(rc == 0 || rc == POBOX_ENOMEM);
		if (rc == 0)
			assert_int_equal(f.n, 3);
		else
			assert_int_equal(f.n, 0);
		ok = rc == 0;
		pobox_fetched_free(&f);
	}
	assert_true(ok);
}

static void test_urls(void **state)
{
	(void)state;
	char *u = pobox_fetch_url("http://127.0.0.1:8080//", "demo", POBOX_ID_THIRDPARTY, "crm 42&x=1%",
	                          strlen("crm 42&x=1%"));
	assert_string_equal(u, "http://127.0.0.1:8080/rest/v1/profiles/thirdPartyId/crm%2042%26x%3D1%25?client=demo");
	pobox_free(u);
	u = pobox_fetch_url("https://acme.tt.omtrdc.net", "acme", POBOX_ID_PCID,
	                    "1368007744041-575948.01_00", 26);
	assert_string_equal(u, "https://acme.tt.omtrdc.net/rest/v1/profiles/1368007744041-575948.01_00?client=acme");
	pobox_free(u);
	/* UTF-8 bytes, and an id that only looks like a path */
	u = pobox_fetch_url("http://h", "c d", POBOX_ID_PCID, "\xc3\xbc/..", 5);
	assert_string_equal(u, "http://h/rest/v1/profiles/%C3%BC%2F..?client=c%20d");
	pobox_free(u);
}

/* ---- the record ---------------------------------------------------------- */

static void fill(struct pobox_verify_record *r, int64_t at, int64_t different)
{
	memset(r, 0, sizeof *r);
	r->started_at_ms = at;
	r->finished_at_ms = at + 2500;
	snprintf(r->selection, sizeof r->selection, "--sample 10");
	r->grace_ms = DAY;
	r->population = 40;
	r->profiles = 10;
	r->fetch_errors = 1;
	r->count[POBOX_VC_MATCHING] = 27;
	r->count[POBOX_VC_NOT_YET_APPLIED] = 2;
	r->count[POBOX_VC_DIFFERENT] = different;
	for (int c = 0; c < POBOX_VC_COUNT; c++)
		r->min_age_ms[c] = r->max_age_ms[c] = -1;
	r->min_age_ms[POBOX_VC_MATCHING] = 1000;
	r->max_age_ms[POBOX_VC_MATCHING] = 5 * HOUR;
	r->exit_code = different ? 65 : 0;
}

static void test_record(void **state)
{
	(void)state;
	char *dir, *db;
	struct pobox *pb;
	struct pobox_verify_record r, last;
	int found = 1;
	assert_int_equal(tu_outbox_open(&dir, &db, &pb), 0);
	assert_int_equal(pobox_store_verify_last(pb->st, &last, &found), 0);
	assert_int_equal(found, 0);

	struct pobox_verify_finding f[2] = {
		{.cls = POBOX_VC_DIFFERENT, .why = "another_writer", .id_type = POBOX_ID_THIRDPARTY,
		 .profile_id = "crm-42", .attr = "tier", .sent = "gold", .sent_len = 4,
		 .sent_at_ms = 1700000000000LL, .target = "sil\"ver", .target_len = 7,
		 .target_modified_at_ms = 1700000100000LL},
		{.cls = POBOX_VC_NOT_YET_APPLIED, .why = "no_profile", .id_type = POBOX_ID_PCID,
		 .profile_id = "p-1", .attr = "a", .sent = "1", .sent_len = 1,
		 .sent_at_ms = 1700000000000LL, .in_flight = 1, .target_modified_at_ms = -1},
	};
	fill(&r, 1700000200000LL, 1);
	assert_int_equal(pobox_store_verify_save(pb->st, &r, f, 2), 0);
	assert_true(r.id > 0);
	assert_int_equal(pobox_store_verify_last(pb->st, &last, &found), 0);
	assert_int_equal(found, 1);
	assert_int_equal(last.id, r.id);
	assert_string_equal(last.selection, "--sample 10");
	assert_int_equal(last.count[POBOX_VC_MATCHING], 27);
	assert_int_equal(last.count[POBOX_VC_DIFFERENT], 1);
	assert_int_equal(last.fetch_errors, 1);
	assert_int_equal(last.max_age_ms[POBOX_VC_MATCHING], 5 * HOUR);
	assert_int_equal(last.min_age_ms[POBOX_VC_MISSING], -1);
	assert_int_equal(last.exit_code, 65);
	/* checked with the outbox's own SQL, not the code under test */
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM verify_findings"), 2);
	char *t = tu_query_text(db, "SELECT class || '|' || why || '|' || target || '|' || in_flight FROM v_verify_findings WHERE profile_id = 'crm-42'");
	assert_string_equal(t, "different|another_writer|sil\"ver|0");
	free(t);
	t = tu_query_text(db, "SELECT coalesce(target, 'NULL') || '|' || coalesce(target_modified_at, 'NULL') FROM v_verify_findings WHERE profile_id = 'p-1'");
	assert_string_equal(t, "NULL|NULL");
	free(t);

	/* the JSON: valid, with the shares and the findings */
	char *j = NULL, err[200];
	assert_int_equal(pobox_store_verify_json(pb->st, r.id, &j), 0);
	struct pobox_json d;
	assert_int_equal(pobox_json_parse(&d, j, strlen(j), 2000, err, sizeof err), 0);
	long c = pobox_json_get(&d, 0, "classes"), m = pobox_json_get(&d, c, "matching");
	double share = 0;
	assert_int_equal(pobox_json_double(&d, pobox_json_get(&d, m, "share"), &share), 0);
	assert_true(share > 0.8999 && share < 0.9001); /* 27 of 30 */
	long fs = pobox_json_get(&d, 0, "findings");
	assert_int_equal(d.toks[fs].type, POBOX_JSON_ARRAY);
	assert_int_equal(d.toks[fs].size, 2);
	assert_true(pobox_json_string_is(&d, pobox_json_get(&d, fs + 1, "target"), "sil\"ver"));
	assert_int_equal(d.toks[pobox_json_get(&d, 0, "interrupted")].type, POBOX_JSON_FALSE);
	pobox_json_free(&d);
	pobox_free(j);
	assert_int_equal(pobox_store_verify_json(pb->st, 9999, &j), POBOX_ENOTFOUND);

	/* only the last POBOX_VERIFY_KEEP_RUNS runs stay, with their findings */
	for (int i = 0; i < POBOX_VERIFY_KEEP_RUNS + 5; i++) {
		fill(&r, 1700000300000LL + i, 0);
		assert_int_equal(pobox_store_verify_save(pb->st, &r, f, 1), 0);
	}
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM verifications"), POBOX_VERIFY_KEEP_RUNS);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM verify_findings"), POBOX_VERIFY_KEEP_RUNS);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM verify_findings WHERE verification NOT IN (SELECT id FROM verifications)"), 0);
	assert_int_equal(pobox_store_verify_last(pb->st, &last, &found), 0);
	assert_int_equal(last.id, r.id);
	assert_int_equal(last.exit_code, 0);
	tu_outbox_close(dir, db, pb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classes),        cmocka_unit_test(test_answers),
		cmocka_unit_test(test_malformed),      cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_urls),           cmocka_unit_test(test_record),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
