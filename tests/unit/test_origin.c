/*
 * test_origin.c - which status URLs pobox may ask with its token: the
 * base_url's origin (loopback names as one host), Target edge hosts with
 * the http -> https upgrade, and the URLs a hostile answer could use to
 * send the token elsewhere.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "pobox.h"
#include "origin.h"

/* The URL pobox would ask, or NULL when refused (err then says why). */
static char *asked(const char *base, const char *status, char *err, size_t errlen)
{
	char *out = NULL;
	int rc = pobox_origin_status_url(base, status, &out, err, errlen);
	if (rc == 0)
		assert_non_null(out);
	else
		assert_int_equal(rc, POBOX_EINVALID);
	return out;
}

static void expect_url(const char *base, const char *status, const char *want)
{
	char err[300] = "";
	char *got = asked(base, status, err, sizeof err);
	if (!got)
		fail_msg("%s under %s refused: %s", status, base, err);
	assert_string_equal(got, want);
	pobox_free(got);
}

static void expect_refused(const char *base, const char *status, const char *why)
{
	char err[300] = "";
	char *got = asked(base, status, err, sizeof err);
	if (got)
		fail_msg("%s under %s allowed as %s", status, base, got);
	if (!strstr(err, why))
		fail_msg("%s: message '%s' lacks '%s'", status, err, why);
}

static void test_same_origin(void **state)
{
	(void)state;
	const char *b = "http://127.0.0.1:4000";
	expect_url(b, "http://127.0.0.1:4000/m2/demo/profile/batchStatus?batchId=1",
	           "http://127.0.0.1:4000/m2/demo/profile/batchStatus?batchId=1");
	/* the loopback names are one host (the simulator swaps them) */
	expect_url(b, "http://localhost:4000/m2/demo/profile/batchStatus?batchId=1",
	           "http://localhost:4000/m2/demo/profile/batchStatus?batchId=1");
	expect_url(b, "http://[::1]:4000/s?x=1", "http://[::1]:4000/s?x=1");
	expect_url("http://localhost:4000/prefix/", "HTTP://LocalHost:4000/s", "HTTP://LocalHost:4000/s");
	expect_url("https://edge.example.com", "https://EDGE.example.com:443/s",
	           "https://EDGE.example.com:443/s");
	expect_url("https://edge.example.com", "https://edge.example.com./s",
	           "https://edge.example.com./s");
}

static void test_other_origin_refused(void **state)
{
	(void)state;
	const char *b = "http://127.0.0.1:4000";
	expect_refused(b, "http://127.0.0.1:4001/s", "names http://127.0.0.1:4001, outside");
	expect_refused(b, "https://127.0.0.1:4000/s", "names https://127.0.0.1:4000");
	expect_refused(b, "http://127.0.0.2:4000/s", "names http://127.0.0.2:4000");
	expect_refused(b, "http://evil.example:4000/s", "evil.example");
	expect_refused(b, "http://mboxedge45.tt.omtrdc.net/s", "outside the configured Target origin");
	expect_refused("https://edge.example.com", "http://edge.example.com/s", "names http://");
	expect_refused("https://edge.example.com", "https://edge.example.com:8443/s", ":8443");
}

static void test_hostile_forms(void **state)
{
	(void)state;
	const char *b = "http://127.0.0.1:4000";
	expect_refused(b, "http://127.0.0.1:4000@evil.example/s", "user or password");
	expect_refused(b, "http://user:pw@127.0.0.1:4000/s", "user or password");
	expect_refused(b, "http://127.0.0.1:4000\\@evil.example/s", "backslash");
	expect_refused(b, "http://127.0.0.1:4000 /s", "blank");
	expect_refused(b, "http://127.0.0.1:4000/s\r\nX: y", "control character");
	expect_refused(b, "http://127%2e0.0.1:4000/s", "bad port");
	expect_refused(b, "http://127.0.0.1:40000000/s", "bad port");
	expect_refused(b, "http://127.0.0.1:/s", "bad port");
	expect_refused(b, "http:///s", "no host");
	expect_refused(b, "//127.0.0.1:4000/s", "not an http");
	expect_refused(b, "/m2/demo/profile/batchStatus?batchId=1", "not an http");
	expect_refused(b, "ftp://127.0.0.1:4000/s", "not an http");
	expect_refused(b, "file:///etc/passwd", "not an http");
	expect_refused(b, "http://[::1:4000/s", "IPv6");
	expect_refused(b, "", "not an http");
}

static void test_target_edges(void **state)
{
	(void)state;
	const char *b = "https://acme.tt.omtrdc.net";
	/* Target's documented status URLs are http:// on an edge host: asked
	 * over https, same host, path and query */
	expect_url(b, "http://mboxedge45.tt.omtrdc.net/m2/acme/profile/batchStatus?batchId=acme-1",
	           "https://mboxedge45.tt.omtrdc.net/m2/acme/profile/batchStatus?batchId=acme-1");
	expect_url(b, "http://mboxedge45.tt.omtrdc.net:80/s?b=1", "https://mboxedge45.tt.omtrdc.net/s?b=1");
	expect_url(b, "https://mboxedge17.tt.omtrdc.net/s", "https://mboxedge17.tt.omtrdc.net/s");
	expect_url(b, "https://MBOXEDGE17.TT.OMTRDC.NET:443/s", "https://MBOXEDGE17.TT.OMTRDC.NET:443/s");
	expect_refused(b, "https://mboxedge17.tt.omtrdc.net:8443/s", ":8443");
	expect_refused(b, "http://mboxedge17.tt.omtrdc.net:8080/s", ":8080");
	expect_refused(b, "https://tt.omtrdc.net/s", "outside");
	expect_refused(b, "https://evil-tt.omtrdc.net/s", "outside");
	expect_refused(b, "https://tt.omtrdc.net.evil.example/s", "outside");
	expect_refused(b, "https://x.tt.omtrdc.net@evil.example/s", "user or password");
	expect_refused(b, "https://127.0.0.1/s", "outside");
	expect_refused(b, "https://.tt.omtrdc.net/s", "outside");
	/* a base URL elsewhere does not open the tt.omtrdc.net family */
	expect_refused("https://proxy.example.com", "https://mboxedge17.tt.omtrdc.net/s", "outside");
	/* a plain-http base under tt.omtrdc.net (no token then) is not upgraded */
	expect_url("http://acme.tt.omtrdc.net", "http://mboxedge45.tt.omtrdc.net/s",
	           "http://mboxedge45.tt.omtrdc.net/s");
}

static void test_parse(void **state)
{
	(void)state;
	struct pobox_origin o;
	char err[200];
	assert_int_equal(pobox_origin_parse(&o, "https://Acme.TT.omtrdc.net", err, sizeof err), 0);
	assert_int_equal(o.https, 1);
	assert_string_equal(o.host, "acme.tt.omtrdc.net");
	assert_int_equal(o.port, 443);
	assert_int_equal(o.target_edge, 1);
	assert_int_equal(o.loopback, 0);
	assert_int_equal(pobox_origin_parse(&o, "http://[::1]:8080/x", err, sizeof err), 0);
	assert_string_equal(o.host, "::1");
	assert_int_equal(o.port, 8080);
	assert_int_equal(o.loopback, 1);
	assert_int_equal(o.rest, strlen("http://[::1]:8080"));
	assert_int_equal(pobox_origin_parse(&o, "http://localhost", err, sizeof err), 0);
	assert_int_equal(o.port, 80);
	assert_int_equal(o.loopback, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_origin),
		cmocka_unit_test(test_other_origin_refused),
		cmocka_unit_test(test_hostile_forms),
		cmocka_unit_test(test_target_edges),
		cmocka_unit_test(test_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
