/*
 * test_classify.c - every row of the table in classify.h, in order, plus
 * the time-in-message parser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "classify.h"
#include "pobox.h"

#include <stdio.h>
#include <string.h>

#define NOW_MS INT64_C(1795443600000) /* 2026-11-23T14:20:00Z */

enum { SUBMIT = POBOX_CALL_BULK_SUBMIT, POLL = POBOX_CALL_BULK_STATUS, SINGLE = POBOX_CALL_SINGLE };

struct row {
	int line;
	int call;
	enum pobox_http_fail fail;
	long status;
	int answer_rc;
	int success;
	const char *msg;
	int64_t retry_after_ms;
	enum pobox_class want;
	int want_charge;
	int64_t want_wait_ms;
};

#define R(...) {__LINE__, __VA_ARGS__}
#define F(x) POBOX_HTTP_FAIL_##x
#define C(x) POBOX_CLASS_##x
#define GARBLED POBOX_ETRANSIENT

static const struct row rows[] = {
	/* transport failures: same for every call */
	R(SUBMIT, F(RESOLVE), 0, 0, -1, NULL, -1, C(RETRY), 0, -1),
	R(POLL, F(RESOLVE), 0, 0, -1, NULL, -1, C(RETRY), 0, -1),
	R(SINGLE, F(CONNECT), 0, 0, -1, NULL, -1, C(RETRY), 0, -1),
	R(SUBMIT, F(CONNECT), 0, 0, -1, NULL, -1, C(RETRY), 0, -1),
	R(SUBMIT, F(TLS), 0, 0, -1, NULL, -1, C(CONFIG), 0, -1),
	R(SINGLE, F(TLS), 0, 0, -1, NULL, -1, C(CONFIG), 0, -1),
	R(SUBMIT, F(TIMEOUT), 0, 0, -1, NULL, -1, C(RETRY), 1, -1),
	R(SINGLE, F(SENDRECV), 0, 0, -1, NULL, -1, C(RETRY), 1, -1),
	R(POLL, F(TOOBIG), 200, 0, -1, NULL, -1, C(RETRY), 1, -1),
	R(SUBMIT, F(OTHER), 0, 0, -1, NULL, -1, C(RETRY), 1, -1),
	/* a garbled 2xx answer */
	R(SUBMIT, F(NONE), 200, GARBLED, -1, NULL, -1, C(RETRY), 1, -1),
	R(POLL, F(NONE), 200, GARBLED, -1, NULL, -1, C(RETRY), 1, -1),
	R(SINGLE, F(NONE), 200, GARBLED, -1, NULL, 5000, C(RETRY), 1, 5000),
	/* success */
	R(POLL, F(NONE), 200, 0, -1, NULL, -1, C(OK), 0, -1),
	R(SUBMIT, F(NONE), 200, 0, 1, "Batch submitted for processing", -1, C(OK), 0, -1),
	R(SINGLE, F(NONE), 200, 0, 1, "Request successfully submitted", -1, C(OK), 0, -1),
	R(SUBMIT, F(NONE), 201, 0, 1, NULL, -1, C(OK), 0, -1),
	/* redirects and interim answers */
	R(SUBMIT, F(NONE), 301, 0, -1, NULL, -1, C(CONFIG), 0, -1),
	R(SINGLE, F(NONE), 302, 0, -1, NULL, -1, C(CONFIG), 0, -1),
	R(POLL, F(NONE), 100, 0, -1, NULL, -1, C(CONFIG), 0, -1),
	/* auth */
	R(SUBMIT, F(NONE), 401, 0, -1, NULL, -1, C(AUTH), 0, -1),
	R(POLL, F(NONE), 403, 0, -1, "Forbidden", -1, C(AUTH), 0, -1),
	R(SINGLE, F(NONE), 403, 0, -1, "Profile not found", -1, C(AUTH), 0, -1),
	/* single budget */
	R(SINGLE, F(NONE), 429, 0, -1, NULL, -1, C(BUDGET), 0, -1),
	R(SINGLE, F(NONE), 429, 0, -1, NULL, 3600000, C(BUDGET), 0, 3600000),
	R(SINGLE, F(NONE), 429, 0, -1, "Quota exceeded; next call allowed at 2026-11-23T17:00:00Z",
	  -1, C(BUDGET), 0, 9600000),
	/* the later of Retry-After and the named time wins */
	R(SINGLE, F(NONE), 429, 0, -1, "next call allowed at 2026-11-23T17:00:00Z", 99999999, C(BUDGET),
	  0, 99999999),
	R(SINGLE, F(NONE), 429, 0, -1, "next call allowed at 2026-11-23T18:00:00+01:00", 1000,
	  C(BUDGET), 0, 9600000),
	/* a named time already past: no wait beyond what the server said */
	R(SINGLE, F(NONE), 429, 0, -1, "next call allowed at 2020-01-01T00:00:00Z", -1, C(BUDGET), 0, 0),
	R(SINGLE, F(NONE), 200, 0, 0, "Daily limit of 1000000 calls per 24 hours reached", -1,
	  C(BUDGET), 0, -1),
	R(SINGLE, F(NONE), 400, 0, -1, "API quota exhausted", -1, C(BUDGET), 0, -1),
	R(SINGLE, F(NONE), 503, 0, -1, "Too many requests", 2000, C(BUDGET), 0, 2000),
	/* bulk throttle */
	R(SUBMIT, F(NONE), 503, 0, -1, NULL, 7000, C(THROTTLE), 0, 7000),
	R(SUBMIT, F(NONE), 503, 0, -1, "<html>Service Unavailable</html>", -1, C(THROTTLE), 0, 60000),
	R(SUBMIT, F(NONE), 429, 0, -1, NULL, -1, C(THROTTLE), 0, 60000),
	R(POLL, F(NONE), 503, 0, -1, NULL, 0, C(THROTTLE), 0, 0),
	R(POLL, F(NONE), 429, 0, -1, NULL, 12000, C(THROTTLE), 0, 12000),
	R(SUBMIT, F(NONE), 200, 0, 0, "Rate limit: 50 calls per minute", -1, C(THROTTLE), 0, 60000),
	R(SUBMIT, F(NONE), 400, 0, -1, "Request throttled", -1, C(THROTTLE), 0, 60000),
	/* server errors */
	R(SUBMIT, F(NONE), 500, 0, -1, NULL, -1, C(RETRY), 1, -1),
	R(SUBMIT, F(NONE), 502, 0, -1, "Bad Gateway", -1, C(RETRY), 1, -1),
	R(POLL, F(NONE), 504, 0, -1, NULL, 3000, C(RETRY), 1, 3000),
	R(SINGLE, F(NONE), 503, 0, -1, NULL, 4000, C(RETRY), 1, 4000),
	R(SINGLE, F(NONE), 500, 0, -1, "client code lookup failed", -1, C(RETRY), 1, -1),
	R(SUBMIT, F(NONE), 408, 0, -1, NULL, -1, C(RETRY), 1, -1),
	R(SINGLE, F(NONE), 599, 0, -1, NULL, -1, C(RETRY), 1, -1),
	/* client code */
	R(SUBMIT, F(NONE), 400, 0, -1, "Invalid client code: demo", -1, C(CONFIG), 0, -1),
	R(SUBMIT, F(NONE), 200, 0, 0, "Unknown client demo", -1, C(CONFIG), 0, -1),
	R(SINGLE, F(NONE), 404, 0, -1, "Client not found", -1, C(CONFIG), 0, -1),
	R(POLL, F(NONE), 400, 0, -1, "invalid CLIENT code", -1, C(CONFIG), 0, -1),
	/* auth in the message */
	R(SUBMIT, F(NONE), 200, 0, 0, "Authentication token expired", -1, C(AUTH), 0, -1),
	R(SINGLE, F(NONE), 400, 0, -1, "Unauthorized", -1, C(AUTH), 0, -1),
	R(SUBMIT, F(NONE), 400, 0, -1, "Invalid token", -1, C(AUTH), 0, -1),
	/* "token" alone (a CSV parse error) is not an auth problem */
	R(SUBMIT, F(NONE), 400, 0, -1, "Unexpected token ',' at line 3", -1, C(REJECT), 1, -1),
	/* single not found: reroute to bulk */
	R(SINGLE, F(NONE), 200, 0, 0, "Profile not found", -1, C(NOTFOUND), 0, -1),
	R(SINGLE, F(NONE), 404, 0, -1,
	  "No profile found for client demo with third party id=abc", -1, C(NOTFOUND), 0, -1),
	R(SINGLE, F(NONE), 400, 0, -1, "profile NOT FOUND", -1, C(NOTFOUND), 0, -1),
	/* 2xx without a success flag */
	R(SUBMIT, F(NONE), 200, 0, -1, NULL, -1, C(RETRY), 1, -1),
	R(SINGLE, F(NONE), 200, 0, -1, "hm", -1, C(RETRY), 1, -1),
	/* success false */
	R(SUBMIT, F(NONE), 200, 0, 0, "Batch file is not valid", -1, C(REJECT), 1, -1),
	/* "exceeded" alone is a rejected file, not a throttle */
	R(SUBMIT, F(NONE), 200, 0, 0, "Maximum rows exceeded", -1, C(REJECT), 1, -1),
	R(SINGLE, F(NONE), 200, 0, 0, "Invalid parameter", -1, C(PERMANENT), 1, -1),
	/* bulk submit 4xx */
	R(SUBMIT, F(NONE), 404, 0, -1, NULL, -1, C(CONFIG), 0, -1),
	R(SUBMIT, F(NONE), 404, 0, -1, "Not Found", -1, C(CONFIG), 0, -1),
	R(SUBMIT, F(NONE), 400, 0, -1, "Bad Request", -1, C(REJECT), 1, -1),
	R(SUBMIT, F(NONE), 413, 0, -1, NULL, -1, C(REJECT), 1, -1),
	R(SUBMIT, F(NONE), 422, 0, -1, NULL, -1, C(REJECT), 1, -1),
	/* status poll 4xx */
	R(POLL, F(NONE), 404, 0, -1, NULL, -1, C(NOTFOUND), 0, -1),
	R(POLL, F(NONE), 410, 0, -1, NULL, -1, C(NOTFOUND), 0, -1),
	R(POLL, F(NONE), 400, 0, -1, "Bad Request", -1, C(RETRY), 1, -1),
	/* single 4xx */
	R(SINGLE, F(NONE), 404, 0, -1, NULL, -1, C(CONFIG), 0, -1),
	R(SINGLE, F(NONE), 400, 0, -1, "Bad Request", -1, C(PERMANENT), 1, -1),
	R(SINGLE, F(NONE), 414, 0, -1, NULL, -1, C(PERMANENT), 1, -1),
	R(SINGLE, F(NONE), 413, 0, -1, NULL, -1, C(PERMANENT), 1, -1),
	/* anything else */
	R(SUBMIT, F(NONE), 0, 0, -1, NULL, -1, C(RETRY), 1, -1),
	R(SINGLE, F(NONE), 600, 0, -1, NULL, -1, C(RETRY), 1, -1),
	R(POLL, F(NONE), 0, 0, -1, NULL, 100, C(RETRY), 1, 100),
};

static void test_table(void **state)
{
	(void)state;
	int bad = 0;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const struct row *r = &rows[i];
		struct pobox_outcome in = {
			.call = (enum pobox_call)r->call,
			.fail = r->fail,
			.http_status = r->status,
			.answer_rc = r->answer_rc,
			.success = r->success,
			.message = r->msg,
			.retry_after_ms = r->retry_after_ms,
			.now_ms = NOW_MS,
		};
		struct pobox_verdict v;
		memset(&v, 0xa5, sizeof v);
		pobox_classify(&v, &in);
		if (v.cls != r->want || v.charge_attempt != r->want_charge ||
		    v.retry_after_ms != r->want_wait_ms || !v.reason || !*v.reason) {
			fprintf(stderr,
			        "line %d: got %s charge=%d wait=%lld (%s), want %s charge=%d wait=%lld\n",
			        r->line, pobox_class_name(v.cls), v.charge_attempt,
			        (long long)v.retry_after_ms, v.reason ? v.reason : "(null)",
			        pobox_class_name(r->want), r->want_charge, (long long)r->want_wait_ms);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void test_find_time(void **state)
{
	(void)state;
	int64_t t = 0;
	assert_true(pobox_classify_find_time("next call allowed at 2026-11-23T17:00:00Z", &t));
	assert_int_equal(t, INT64_C(1795453200000));
	assert_true(pobox_classify_find_time("1970-01-01T00:00:00Z", &t));
	assert_int_equal(t, 0);
	assert_true(pobox_classify_find_time("at 2000-03-01 00:00:01.25", &t));
	assert_int_equal(t, INT64_C(951868801250));
	assert_true(pobox_classify_find_time("x 2026-11-23T17:00:00-0530 y", &t));
	assert_int_equal(t, INT64_C(1795453200000) + 19800000);
	assert_true(pobox_classify_find_time("2024-02-29T12:00:00+00:00", &t));
	assert_int_equal(t, INT64_C(1709208000000));
	/* not times */
	assert_false(pobox_classify_find_time(NULL, &t));
	assert_false(pobox_classify_find_time("", &t));
	assert_false(pobox_classify_find_time("limit 1000000 per 24 hours", &t));
	assert_false(pobox_classify_find_time("2026-13-01T00:00:00Z", &t));
	assert_false(pobox_classify_find_time("2026-11-23T25:00:00Z", &t));
	assert_false(pobox_classify_find_time("2026-11-23", &t));
	assert_false(pobox_classify_find_time("12026-11-23T17:00:0", &t));
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(pobox_class_name(POBOX_CLASS_OK), "ok");
	assert_string_equal(pobox_class_name(POBOX_CLASS_THROTTLE), "throttle");
	assert_string_equal(pobox_class_name(POBOX_CLASS_PERMANENT), "permanent");
	assert_string_equal(pobox_class_name((enum pobox_class)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_find_time),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
