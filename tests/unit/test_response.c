/*
 * test_response.c - reading Target's XML answers: every documented shape
 * verbatim, the variants seen in the wild, garbage, hostile input, and every
 * allocation failure.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "alloc.h"
#include "pobox.h"
#include "response.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(enum pobox_answer_kind kind, struct pobox_answer *a, const char *body,
                 char *err, size_t errlen)
{
	return pobox_response_parse(kind, a, body, strlen(body), NULL, NULL, err, errlen);
}

/* target-api.md section 2, verbatim. */
static const char submit_doc[] =
	"<response>\n"
	"    <success>true</success>\n"
	"    <batchStatus>http://mboxedge45.tt.omtrdc.net/m2/demo/profile/batchStatus?batchId=demo-1701473848678-13029383</batchStatus>\n"
	"    <message>Batch submitted for processing</message>\n"
	"</response>\n";

static void test_submit_documented(void **state)
{
	(void)state;
	struct pobox_answer a;
	char err[256] = "";
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a, submit_doc, err, sizeof err), 0);
	assert_int_equal(a.success, 1);
	assert_string_equal(a.status_url, "http://mboxedge45.tt.omtrdc.net/m2/demo/profile/"
	                                  "batchStatus?batchId=demo-1701473848678-13029383");
	assert_string_equal(a.message, "Batch submitted for processing");
	assert_null(a.pc_id);
	assert_int_equal(a.batch_size, -1);
	pobox_answer_free(&a);
	assert_null(a.message);

	/* Legacy v1 form with an extra query parameter and an entity: kept
	 * verbatim apart from XML decoding. */
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a,
	                       "<response><success>true</success><batchStatus>http://mboxedge19.tt."
	                       "omtrdc.net/m2/fedex/profile/batchStatus?batchId=fedex-1470380971&amp;"
	                       "mboxPC=0000000000000-000000.19_05</batchStatus></response>",
	                       err, sizeof err),
	                 0);
	assert_string_equal(a.status_url, "http://mboxedge19.tt.omtrdc.net/m2/fedex/profile/"
	                                  "batchStatus?batchId=fedex-1470380971&mboxPC=0000000000000-"
	                                  "000000.19_05");
	assert_null(a.message);
	pobox_answer_free(&a);
}

static void test_submit_failure_and_missing(void **state)
{
	(void)state;
	struct pobox_answer a;
	char err[256] = "";
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a,
	                       "<response><success>false</success><batchStatus></batchStatus>"
	                       "<message>Missing batch= prefix</message></response>",
	                       err, sizeof err),
	                 0);
	assert_int_equal(a.success, 0);
	assert_string_equal(a.status_url, "");
	assert_string_equal(a.message, "Missing batch= prefix");
	pobox_answer_free(&a);

	/* success absent, or not a boolean: -1, for the caller to judge. */
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a, "<response><message>hm</message></response>",
	                       err, sizeof err),
	                 0);
	assert_int_equal(a.success, -1);
	pobox_answer_free(&a);
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a,
	                       "<response><success>yes</success></response>", err, sizeof err),
	                 0);
	assert_int_equal(a.success, -1);
	pobox_answer_free(&a);

	/* "TRUE" with surrounding whitespace still counts. */
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a,
	                       "<response><success>\n TRUE \n</success><batchStatus> http://e/s?b=1 "
	                       "</batchStatus></response>",
	                       err, sizeof err),
	                 0);
	assert_int_equal(a.success, 1);
	assert_string_equal(a.status_url, "http://e/s?b=1");
	pobox_answer_free(&a);

	/* Success without a status URL cannot be followed: a garbled answer. */
	int rc = parse(POBOX_ANSWER_SUBMIT, &a, "<response><success>true</success></response>", err,
	               sizeof err);
	assert_int_equal(rc, POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "no batchStatus URL"));
	rc = parse(POBOX_ANSWER_SUBMIT, &a,
	           "<response><success>true</success><batchStatus> </batchStatus></response>", err,
	           sizeof err);
	assert_int_equal(rc, POBOX_ETRANSIENT);
}

static void test_status_documented(void **state)
{
	(void)state;
	struct pobox_answer a;
	char err[256] = "";
	assert_int_equal(parse(POBOX_ANSWER_STATUS, &a,
	                       "<response><batchId>demo4-1701473848678-13029383</batchId><status>"
	                       "complete</status><batchSize>1</batchSize></response>",
	                       err, sizeof err),
	                 0);
	assert_string_equal(a.batch_id, "demo4-1701473848678-13029383");
	assert_int_equal(a.status, POBOX_BATCH_COMPLETE);
	assert_string_equal(a.status_text, "complete");
	assert_int_equal(a.batch_size, 1);
	assert_int_equal(a.consumed_count, -1);
	assert_int_equal(a.successful_updates, -1);
	assert_int_equal(a.profiles_not_found, -1);
	assert_int_equal(a.failed_updates, -1);
	assert_int_equal(a.profile_rows, 0);
	pobox_answer_free(&a);

	assert_int_equal(parse(POBOX_ANSWER_STATUS, &a,
	                       "<response>\n"
	                       "    <batchId>demo4-1701473848678-13029383</batchId>\n"
	                       "    <status>complete</status>\n"
	                       "    <batchSize>1</batchSize>\n"
	                       "    <consumedCount>1</consumedCount>\n"
	                       "    <successfulUpdates>1</successfulUpdates>\n"
	                       "    <profilesNotFound>0</profilesNotFound>\n"
	                       "    <failedUpdates>0</failedUpdates>\n"
	                       "</response>",
	                       err, sizeof err),
	                 0);
	assert_int_equal(a.status, POBOX_BATCH_COMPLETE);
	assert_int_equal(a.batch_size, 1);
	assert_int_equal(a.consumed_count, 1);
	assert_int_equal(a.successful_updates, 1);
	assert_int_equal(a.profiles_not_found, 0);
	assert_int_equal(a.failed_updates, 0);
	pobox_answer_free(&a);

	/* Legacy detailed form: no consumedCount. */
	assert_int_equal(parse(POBOX_ANSWER_STATUS, &a,
	                       "<response><batchId>x-1</batchId><status>complete</status>"
	                       "<batchSize>5</batchSize><successfulUpdates>2</successfulUpdates>"
	                       "<profilesNotFound>3</profilesNotFound><failedUpdates>0</failedUpdates>"
	                       "</response>",
	                       err, sizeof err),
	                 0);
	assert_int_equal(a.batch_size, 5);
	assert_int_equal(a.consumed_count, -1);
	assert_int_equal(a.successful_updates, 2);
	assert_int_equal(a.profiles_not_found, 3);
	pobox_answer_free(&a);
}

static void test_status_values(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		enum pobox_batch_status st;
	} cases[] = {
		{"incomplete", POBOX_BATCH_INCOMPLETE},
		{"stuck", POBOX_BATCH_STUCK},
		{"complete", POBOX_BATCH_COMPLETE},
		{"in progress", POBOX_BATCH_UNKNOWN},
		{"COMPLETE", POBOX_BATCH_UNKNOWN}, /* undocumented spelling: shown, not guessed */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char body[256];
		struct pobox_answer a;
		snprintf(body, sizeof body,
		         "<response><batchId>b</batchId><status> %s\n</status></response>",
		         cases[i].text);
		assert_int_equal(parse(POBOX_ANSWER_STATUS, &a, body, NULL, 0), 0);
		assert_int_equal(a.status, cases[i].st);
		assert_string_equal(a.status_text, cases[i].text);
		pobox_answer_free(&a);
	}
	/* A status answer without <status> is unusable. */
	struct pobox_answer a;
	char err[256];
	assert_int_equal(parse(POBOX_ANSWER_STATUS, &a, "<response><batchId>b</batchId></response>",
	                       err, sizeof err),
	                 POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "no <status>"));
	/* A count that is not a number. */
	assert_int_equal(parse(POBOX_ANSWER_STATUS, &a,
	                       "<response><status>complete</status><batchSize>12a</batchSize>"
	                       "</response>",
	                       err, sizeof err),
	                 POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "<batchSize> is not a count"));
	assert_int_equal(parse(POBOX_ANSWER_STATUS, &a,
	                       "<response><status>complete</status><batchSize>1\t\r2</batchSize>"
	                       "</response>",
	                       err, sizeof err),
	                 POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "is not a count: '1??2'"));
	assert_int_equal(parse(POBOX_ANSWER_STATUS, &a,
	                       "<response><status>complete</status><batchSize>-1</batchSize>"
	                       "</response>",
	                       err, sizeof err),
	                 POBOX_ETRANSIENT);
	assert_int_equal(parse(POBOX_ANSWER_STATUS, &a,
	                       "<response><status>complete</status><failedUpdates>"
	                       "99999999999999999999999</failedUpdates></response>",
	                       err, sizeof err),
	                 POBOX_ETRANSIENT);
}

struct rows {
	int n;
	char ids[8][64];
	char sts[8][16];
	long long sum;  /* for big lists: sum of the numeric ids */
	int stop_at;    /* return an error at this row (1-based), 0 never */
};

static int on_row(void *ctx, const char *id, const char *status)
{
	struct rows *r = ctx;
	if (r->n < 8) {
		snprintf(r->ids[r->n], sizeof r->ids[0], "%s", id);
		snprintf(r->sts[r->n], sizeof r->sts[0], "%s", status);
	}
	r->n++;
	r->sum += atoll(id);
	if (r->stop_at && r->n == r->stop_at)
		return POBOX_EIO;
	return 0;
}

static void test_status_rows(void **state)
{
	(void)state;
	/* target-api.md section 3.4, the May 2020 release note, verbatim. */
	static const char rn2020[] =
		"<response>\n"
		"    <batchId>samplebatch-1585929692655-59449976</batchId>\n"
		"    <status>complete</status>\n"
		"    <batchSize>164</batchSize>\n"
		"    <profile><id>some profile id</id><status>failed</status></profile>\n"
		"</response>";
	struct pobox_answer a;
	struct rows r = {0};
	char err[256] = "";
	assert_int_equal(pobox_response_parse(POBOX_ANSWER_STATUS, &a, rn2020, strlen(rn2020), on_row,
	                                      &r, err, sizeof err),
	                 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ids[0], "some profile id");
	assert_string_equal(r.sts[0], "failed");
	assert_int_equal(a.profile_rows, 1);
	assert_string_equal(a.batch_id, "samplebatch-1585929692655-59449976");
	assert_int_equal(a.batch_size, 164);
	/* the row's <status> did not overwrite the batch status */
	assert_string_equal(a.status_text, "complete");
	pobox_answer_free(&a);

	/* 2023 vocabulary, status before id, one row without status, an extra
	 * element in a row, and an unknown element that contains a <status>. */
	static const char v2023[] =
		"<response><batchId>demo-1845664501</batchId><status>incomplete</status>"
		"<profile><status>success</status><id>a&amp;1</id></profile>\n"
		"<profile>\n <id> b2 </id>\n <status>error</status><extra>x</extra></profile>"
		"<profile><id>c3</id><status>pending</status></profile>"
		"<profile><id>d4</id></profile>"
		"<details><status>stuck</status></details>"
		"</response>";
	memset(&r, 0, sizeof r);
	assert_int_equal(pobox_response_parse(POBOX_ANSWER_STATUS, &a, v2023, strlen(v2023), on_row,
	                                      &r, err, sizeof err),
	                 0);
	assert_int_equal(r.n, 4);
	assert_string_equal(r.ids[0], "a&1");
	assert_string_equal(r.sts[0], "success");
	assert_string_equal(r.ids[1], "b2");
	assert_string_equal(r.sts[1], "error");
	assert_string_equal(r.ids[2], "c3");
	assert_string_equal(r.sts[2], "pending");
	assert_string_equal(r.ids[3], "d4");
	assert_string_equal(r.sts[3], "");
	assert_int_equal(a.status, POBOX_BATCH_INCOMPLETE);
	assert_int_equal(a.profile_rows, 4);
	pobox_answer_free(&a);

	/* No callback: rows are counted only. */
	assert_int_equal(parse(POBOX_ANSWER_STATUS, &a, v2023, err, sizeof err), 0);
	assert_int_equal(a.profile_rows, 4);
	pobox_answer_free(&a);

	/* A row without an id is malformed. */
	assert_int_equal(parse(POBOX_ANSWER_STATUS, &a,
	                       "<response><status>complete</status><profile><status>failed</status>"
	                       "</profile></response>",
	                       err, sizeof err),
	                 POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "without <id>"));

	/* The callback can stop the parse; its code comes back. */
	memset(&r, 0, sizeof r);
	r.stop_at = 2;
	assert_int_equal(pobox_response_parse(POBOX_ANSWER_STATUS, &a, v2023, strlen(v2023), on_row,
	                                      &r, err, sizeof err),
	                 POBOX_EIO);
	assert_int_equal(r.n, 2);
}

static char *big_status(int rows, size_t *len)
{
	size_t cap = (size_t)rows * 64 + 256, o = 0;
	char *s = malloc(cap);
	o += (size_t)snprintf(s + o, cap - o,
	                      "<response><batchId>big</batchId><status>complete</status>"
	                      "<batchSize>500000</batchSize><failedUpdates>%d</failedUpdates>\n",
	                      rows);
	for (int i = 1; i <= rows; i++)
		o += (size_t)snprintf(s + o, cap - o,
		                      "<profile><id>%d</id><status>failed</status></profile>\n", i);
	o += (size_t)snprintf(s + o, cap - o, "</response>\n");
	*len = o;
	return s;
}

static void test_status_huge_row_list(void **state)
{
	(void)state;
	const int rows = 100000;
	size_t len;
	char *body = big_status(rows, &len);
	struct pobox_answer a;
	struct rows r = {0};
	char err[256] = "";
	assert_int_equal(
		pobox_response_parse(POBOX_ANSWER_STATUS, &a, body, len, on_row, &r, err, sizeof err), 0);
	assert_int_equal(r.n, rows);
	assert_int_equal(r.sum, (long long)rows * (rows + 1) / 2);
	assert_int_equal(a.profile_rows, rows);
	assert_int_equal(a.failed_updates, rows);
	pobox_answer_free(&a);

	/* The same streamed in odd-sized chunks (splitting tags and text). */
	struct pobox_response_parser *p = NULL;
	memset(&r, 0, sizeof r);
	assert_int_equal(pobox_response_parser_new(&p, POBOX_ANSWER_STATUS, on_row, &r, err, sizeof err),
	                 0);
	for (size_t off = 0; off < len; off += 997) {
		size_t n = len - off < 997 ? len - off : 997;
		assert_int_equal(pobox_response_parser_feed(p, body + off, n, err, sizeof err), 0);
	}
	assert_int_equal(pobox_response_parser_finish(p, &a, err, sizeof err), 0);
	pobox_response_parser_free(p);
	assert_int_equal(r.n, rows);
	assert_int_equal(r.sum, (long long)rows * (rows + 1) / 2);
	assert_int_equal(a.profile_rows, rows);
	pobox_answer_free(&a);
	free(body);
}

static void test_single(void **state)
{
	(void)state;
	struct pobox_answer a;
	char err[256] = "";
	/* target-api.md section 4, the legacy example verbatim. */
	assert_int_equal(parse(POBOX_ANSWER_SINGLE, &a,
	                       "<response><success>true</success><pcId></pcId><message>Request "
	                       "successfully submitted</message></response>",
	                       err, sizeof err),
	                 0);
	assert_int_equal(a.success, 1);
	assert_string_equal(a.pc_id, "");
	assert_string_equal(a.message, "Request successfully submitted");
	pobox_answer_free(&a);

	assert_int_equal(parse(POBOX_ANSWER_SINGLE, &a,
	                       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<response>\r\n"
	                       "  <success>false</success>\r\n  <pcId>1368007744041-575948.01_00</pcId>\r\n"
	                       "  <message>Profile not found</message>\r\n</response>\r\n",
	                       err, sizeof err),
	                 0);
	assert_int_equal(a.success, 0);
	assert_string_equal(a.pc_id, "1368007744041-575948.01_00");
	assert_string_equal(a.message, "Profile not found");
	pobox_answer_free(&a);
}

static void same_answer(const struct pobox_answer *a, const struct pobox_answer *b)
{
#define SAME_STR(f) \
	do { \
		if (a->f || b->f) { \
			assert_non_null(a->f); \
			assert_non_null(b->f); \
			assert_string_equal(a->f, b->f); \
		} \
	} while (0)
	assert_int_equal(a->success, b->success);
	SAME_STR(message);
	SAME_STR(status_url);
	SAME_STR(pc_id);
	SAME_STR(batch_id);
	SAME_STR(status_text);
#undef SAME_STR
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->batch_size, b->batch_size);
	assert_int_equal(a->consumed_count, b->consumed_count);
	assert_int_equal(a->successful_updates, b->successful_updates);
	assert_int_equal(a->profiles_not_found, b->profiles_not_found);
	assert_int_equal(a->failed_updates, b->failed_updates);
	assert_int_equal(a->profile_rows, b->profile_rows);
}

/* One parser reset between answers reads each exactly as a fresh parser
 * does: nothing of an earlier answer (text, error, half-open element, a
 * failure) leaks into the next. */
static void test_parse_again(void **state)
{
	(void)state;
	static const struct {
		enum pobox_answer_kind kind;
		const char *body;
	} seq[] = {
		{POBOX_ANSWER_SINGLE, "<response><success>true</success><pcId></pcId><message>Request "
		                      "successfully submitted</message></response>"},
		{POBOX_ANSWER_SINGLE, "<response><success>false</success><pcId>p-1</pcId>"
		                      "<message>Profile not found</message></response>"},
		{POBOX_ANSWER_SINGLE, "<response><success>true</success><message>cut"}, /* malformed */
		{POBOX_ANSWER_SINGLE, "<response><success>true</success></response>"},
		{POBOX_ANSWER_ANY, "<html><body><error>quota exceeded</error></body></html>"},
		{POBOX_ANSWER_SINGLE, "<response><success>true</success><pcId>q</pcId></response>"},
		{POBOX_ANSWER_SUBMIT, NULL}, /* submit_doc */
		{POBOX_ANSWER_SINGLE, "<!DOCTYPE r [<!ENTITY a \"b\">]><response/>"}, /* refused */
		{POBOX_ANSWER_SINGLE, "<response><success>false</success><message>second</message>"
		                      "</response>"},
		{POBOX_ANSWER_SINGLE, ""},
		{POBOX_ANSWER_SINGLE, "<response><success>true</success><pcId></pcId><message>Request "
		                      "successfully submitted</message></response>"},
	};
	struct pobox_response_parser *p = NULL;
	char err[256] = "", err2[256] = "";
	assert_int_equal(pobox_response_parser_new(&p, POBOX_ANSWER_SINGLE, NULL, NULL, err, sizeof err), 0);
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
			const char *body = seq[i].body ? seq[i].body : submit_doc;
			struct pobox_answer fresh, again;
			memset(&fresh, 0, sizeof fresh);
			memset(&again, 0, sizeof again);
			int rc1 = pobox_response_parse(seq[i].kind, &fresh, body, strlen(body), NULL, NULL, err,
			                               sizeof err);
			int rc2 = pobox_response_parse_again(p, seq[i].kind, &again, body, strlen(body), err2,
			                                     sizeof err2);
			assert_int_equal(rc1, rc2);
			if (rc1 == 0) {
				same_answer(&fresh, &again);
				pobox_answer_free(&fresh);
				pobox_answer_free(&again);
			} else {
				assert_string_equal(err, err2);
			}
		}
	}
	pobox_response_parser_free(p);
}

static void test_unknown_elements_ignored(void **state)
{
	(void)state;
	struct pobox_answer a;
	char err[256] = "";
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a,
	                       "<response xmlns:x=\"urn:x\" version=\"2\">\n\t<requestId>42</requestId>\n"
	                       "\t<meta><success>false</success><batchStatus>http://wrong/</batchStatus>"
	                       "</meta>\n\t<success>true</success>\n"
	                       "\t<!-- a comment --><batchStatus><![CDATA[http://e/s?a=1&b=2]]>"
	                       "</batchStatus><x:foo/>\n</response>",
	                       err, sizeof err),
	                 0);
	assert_int_equal(a.success, 1);
	assert_string_equal(a.status_url, "http://e/s?a=1&b=2");
	pobox_answer_free(&a);

	/* The first occurrence of a field wins. */
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a,
	                       "<response><success>false</success><success>true</success><message>one"
	                       "</message><message>two</message></response>",
	                       err, sizeof err),
	                 0);
	assert_int_equal(a.success, 0);
	assert_string_equal(a.message, "one");
	pobox_answer_free(&a);
}

static void test_malformed(void **state)
{
	(void)state;
	struct pobox_answer a;
	char err[256] = "";
	int rc;

	/* Truncated mid-element. */
	rc = parse(POBOX_ANSWER_SUBMIT, &a,
	           "<response>\n<success>true</success>\n<batchStatus>http://mboxedge45.tt", err,
	           sizeof err);
	assert_int_equal(rc, POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "malformed XML from batch submit: "));
	assert_non_null(strstr(err, " at line 3"));

	/* Mismatched tags. */
	rc = parse(POBOX_ANSWER_STATUS, &a, "<response><status>complete</batchId></response>", err,
	           sizeof err);
	assert_int_equal(rc, POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "malformed XML from batch status: mismatched tag at line 1"));

	/* Empty body, whitespace body. */
	assert_int_equal(parse(POBOX_ANSWER_SINGLE, &a, "", err, sizeof err), POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "malformed XML from single update"));
	assert_int_equal(parse(POBOX_ANSWER_SINGLE, &a, " \r\n", err, sizeof err), POBOX_ETRANSIENT);

	/* An HTML error page (not well-formed XML). */
	rc = parse(POBOX_ANSWER_SUBMIT, &a,
	           "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
	           "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
	           "</body></html>",
	           err, sizeof err);
	assert_int_equal(rc, POBOX_ETRANSIENT);
	/* Well-formed XHTML is XML, but not an answer. */
	rc = parse(POBOX_ANSWER_SUBMIT, &a,
	           "<html><body><h1>Service Unavailable</h1></body></html>", err, sizeof err);
	assert_int_equal(rc, POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "root element <html>"));
	/* Plain text. */
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a, "Bad Request", err, sizeof err),
	                 POBOX_ETRANSIENT);
	/* Binary garbage with NULs. */
	assert_int_equal(pobox_response_parse(POBOX_ANSWER_SUBMIT, &a, "\x1f\x8b\0\0garbage", 11, NULL,
	                                      NULL, err, sizeof err),
	                 POBOX_ETRANSIENT);
	/* Trailing garbage after the root. */
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a,
	                       "<response><success>false</success></response><x/>", err, sizeof err),
	                 POBOX_ETRANSIENT);
	/* err may be NULL. */
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a, "<", NULL, 0), POBOX_ETRANSIENT);
}

static void test_bounds(void **state)
{
	(void)state;
	struct pobox_answer a;
	char err[256] = "";
	char *body = malloc(40000);

	/* Nesting past the cap. */
	size_t o = (size_t)sprintf(body, "<response>");
	for (int i = 0; i < 40; i++)
		o += (size_t)sprintf(body + o, "<a>");
	for (int i = 0; i < 40; i++)
		o += (size_t)sprintf(body + o, "</a>");
	sprintf(body + o, "</response>");
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a, body, err, sizeof err), POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "deeper than 32"));

	/* A status URL past the text cap cannot be cut: refused. */
	o = (size_t)sprintf(body, "<response><success>true</success><batchStatus>http://e/");
	memset(body + o, 'u', 10000);
	o += 10000;
	sprintf(body + o, "</batchStatus></response>");
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a, body, err, sizeof err), POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "<batchStatus> longer than 8192 bytes"));

	/* A long message is cut to the cap, not refused. */
	o = (size_t)sprintf(body, "<response><success>false</success><message>");
	memset(body + o, 'm', 30000);
	o += 30000;
	sprintf(body + o, "</message></response>");
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a, body, err, sizeof err), 0);
	assert_int_equal(strlen(a.message), POBOX_RESPONSE_TEXT_MAX);
	pobox_answer_free(&a);

	/* An over-long row id. */
	o = (size_t)sprintf(body, "<response><status>complete</status><profile><id>");
	memset(body + o, 'i', 2000);
	o += 2000;
	sprintf(body + o, "</id></profile></response>");
	assert_int_equal(parse(POBOX_ANSWER_STATUS, &a, body, err, sizeof err), POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "<profile><id> longer than"));
	free(body);
}

static void test_entity_attacks(void **state)
{
	(void)state;
	/* Billion laughs: 10^9 "lol"s if expanded. */
	static const char laughs[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE lolz [\n"
		" <!ENTITY lol \"lol\">\n"
		" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
		" <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
		" <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
		" <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
		" <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
		" <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
		" <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
		" <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
		" <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
		"]>\n"
		"<response><success>false</success><message>&lol9;</message></response>";
	struct pobox_answer a;
	char err[256] = "";
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a, laughs, err, sizeof err), POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "DOCTYPE"));

	/* External entity (XXE). */
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a,
	                       "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
	                       "<response><message>&x;</message></response>",
	                       err, sizeof err),
	                 POBOX_ETRANSIENT);
	/* An undeclared entity is a plain XML error. */
	assert_int_equal(parse(POBOX_ANSWER_SUBMIT, &a, "<response><message>&x;</message></response>",
	                       err, sizeof err),
	                 POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "undefined entity"));

	/* error_text on the attack falls back to the raw text, bounded. */
	char t[256];
	pobox_response_error_text(t, sizeof t, laughs, strlen(laughs));
	assert_true(strlen(t) <= POBOX_RESPONSE_ERRTEXT_MAX + 3);
}

static void test_error_text(void **state)
{
	(void)state;
	char t[512];
	const char *b;

	b = "<response><success>false</success><message>Invalid client code: foo</message>"
	    "</response>";
	pobox_response_error_text(t, sizeof t, b, strlen(b));
	assert_string_equal(t, "Invalid client code: foo");

	/* Adobe's profile-service error body: an <error> somewhere. */
	b = "<com.adobe.tnt.profileservice.crud.ResponseErrorBody><errors><error>Forbidden</error>"
	    "</errors></com.adobe.tnt.profileservice.crud.ResponseErrorBody>";
	pobox_response_error_text(t, sizeof t, b, strlen(b));
	assert_string_equal(t, "Forbidden");

	/* <error> with nested parts: their text, tidied. */
	b = "<errors><error>\n  <errorCode>400</errorCode>\n  <detail>bad\tfile</detail>\n</error>"
	    "</errors>";
	pobox_response_error_text(t, sizeof t, b, strlen(b));
	assert_string_equal(t, "400 bad file");

	/* HTML: tags stripped, whitespace folded. */
	b = "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n"
	    "<body>\n<h1>Service\r\nUnavailable</h1></body></html>";
	pobox_response_error_text(t, sizeof t, b, strlen(b));
	assert_string_equal(t, "503 Service Unavailable Service Unavailable");

	/* Plain text with control characters (no forged log lines). */
	b = "Bad Request\n2026-01-01 ERROR forged\x1b[31m";
	pobox_response_error_text(t, sizeof t, b, strlen(b));
	assert_string_equal(t, "Bad Request 2026-01-01 ERROR forged [31m");
	assert_null(strchr(t, '\n'));

	/* A lone '<' in text is kept. */
	b = "a < b";
	pobox_response_error_text(t, sizeof t, b, strlen(b));
	assert_string_equal(t, "a < b");

	/* Empty and blank bodies. */
	pobox_response_error_text(t, sizeof t, "", 0);
	assert_string_equal(t, "(empty body)");
	pobox_response_error_text(t, sizeof t, " \r\n", 3);
	assert_string_equal(t, "(empty body)");
	pobox_response_error_text(t, sizeof t, "<html></html>", 13);
	assert_string_equal(t, "(no text)");

	/* Long text: 200 bytes and "...". */
	char big[1000];
	memset(big, 'x', sizeof big);
	pobox_response_error_text(t, sizeof t, big, sizeof big);
	assert_int_equal(strlen(t), POBOX_RESPONSE_ERRTEXT_MAX + 3);
	assert_string_equal(t + POBOX_RESPONSE_ERRTEXT_MAX, "...");

	/* Cut on a UTF-8 boundary: 199 ASCII bytes then 2-byte characters. */
	memset(big, 'y', 199);
	for (int i = 199; i + 1 < 400; i += 2)
		big[i] = (char)0xc3, big[i + 1] = (char)0xa9; /* é */
	pobox_response_error_text(t, sizeof t, big, 399);
	assert_int_equal(strlen(t), 199 + 3);
	assert_string_equal(t + 199, "...");

	/* A small buffer still gets a terminated string. */
	char small[8];
	pobox_response_error_text(small, sizeof small, big, sizeof big);
	assert_int_equal(strlen(small), 7);
	assert_string_equal(small + 4, "...");

	/* A small buffer cuts on a UTF-8 boundary too (fuzz_response found
	 * "\xc3..." here: the cut for the "..." came after the boundary check). */
	memset(big, 0, sizeof big);
	for (int i = 0; i + 1 < 400; i += 2)
		big[i] = (char)0xc3, big[i + 1] = (char)0xa9;
	pobox_response_error_text(small, sizeof small, big, 400);
	assert_string_equal(small, "\xc3\xa9...");
	char nine[9];
	pobox_response_error_text(nine, sizeof nine, big, 400);
	assert_string_equal(nine, "\xc3\xa9\xc3\xa9...");
}

/* Every allocation point fails cleanly with POBOX_ENOMEM, leak-free (ASan
 * checks the leak part). */
static void test_alloc_failures(void **state)
{
	(void)state;
	static const char status_body[] =
		"<response><batchId>b-1</batchId><status>complete</status><batchSize>3</batchSize>"
		"<failedUpdates>2</failedUpdates><profile><id>p1</id><status>failed</status></profile>"
		"<profile><id>p2</id><status>failed</status></profile><message>m</message></response>";
	const struct {
		enum pobox_answer_kind kind;
		const char *body;
	} cases[] = {
		{POBOX_ANSWER_SUBMIT, submit_doc},
		{POBOX_ANSWER_STATUS, status_body},
		{POBOX_ANSWER_SINGLE, "<response><success>true</success><pcId>x</pcId><message>Request "
		                      "successfully submitted</message></response>"},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		int ok = 0;
		for (long n = 0; n < 10000 && !ok; n++) {
			struct pobox_answer a;
			struct rows r = {0};
			char err[256] = "";
			pobox_alloc_fail_after(n);
			int rc = pobox_response_parse(cases[c].kind, &a, cases[c].body, strlen(cases[c].body),
			                              on_row, &r, err, sizeof err);
			pobox_alloc_fail_after(-1);
			if (rc == 0) {
				ok = 1;
				assert_true(n > 2); /* the loop did fail something first */
				if (cases[c].kind == POBOX_ANSWER_STATUS) {
					assert_int_equal(r.n, 2);
					assert_string_equal(a.batch_id, "b-1");
				}
				pobox_answer_free(&a);
			} else {
				if (rc != POBOX_ENOMEM)
					fail_msg("case %zu, failing allocation %ld: rc %d (%s)", c, n, rc, err);
				assert_non_null(strstr(err, "out of memory"));
			}
		}
		assert_true(ok);
	}
	/* error_text never fails, even with no memory at all. */
	char t[256];
	for (long n = 0; n < 50; n++) {
		pobox_alloc_fail_after(n);
		pobox_response_error_text(t, sizeof t, "<r><message>gone</message></r>", 30);
		pobox_alloc_fail_after(-1);
		assert_true(strcmp(t, "gone") == 0);
	}
}

static void test_parser_misuse(void **state)
{
	(void)state;
	struct pobox_response_parser *p = NULL;
	struct pobox_answer a;
	char err[256] = "";
	/* Errors are sticky. */
	assert_int_equal(pobox_response_parser_new(&p, POBOX_ANSWER_SUBMIT, NULL, NULL, err, sizeof err),
	                 0);
	assert_int_equal(pobox_response_parser_feed(p, "<response></oops>", 17, err, sizeof err),
	                 POBOX_ETRANSIENT);
	err[0] = '\0';
	assert_int_equal(pobox_response_parser_feed(p, "<x/>", 4, err, sizeof err), POBOX_ETRANSIENT);
	assert_non_null(strstr(err, "malformed XML"));
	assert_int_equal(pobox_response_parser_finish(p, &a, err, sizeof err), POBOX_ETRANSIENT);
	pobox_response_parser_free(p);
	/* Finish twice. */
	assert_int_equal(pobox_response_parser_new(&p, POBOX_ANSWER_SINGLE, NULL, NULL, err, sizeof err),
	                 0);
	assert_int_equal(pobox_response_parser_feed(p, "<response/>", 11, err, sizeof err), 0);
	assert_int_equal(pobox_response_parser_finish(p, &a, err, sizeof err), 0);
	pobox_answer_free(&a);
	assert_int_equal(pobox_response_parser_finish(p, &a, err, sizeof err), POBOX_EINVALID);
	pobox_response_parser_free(p);
	pobox_response_parser_free(NULL);
	pobox_answer_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_submit_documented),
		cmocka_unit_test(test_submit_failure_and_missing),
		cmocka_unit_test(test_status_documented),
		cmocka_unit_test(test_status_values),
		cmocka_unit_test(test_status_rows),
		cmocka_unit_test(test_status_huge_row_list),
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_parse_again),
		cmocka_unit_test(test_unknown_elements_ignored),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_entity_attacks),
		cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_parser_misuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
