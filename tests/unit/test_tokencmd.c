/*
 * test_tokencmd.c - token_command: splitting the command line, judging
 * what it printed, and running real commands (/bin/sh): exit status,
 * signals, stderr lines, the timeout killing the whole process group, an
 * executable that does not exist, the environment and stdin it gets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "alloc.h"
#include "pobox.h"
#include "testutil.h"
#include "tokencmd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */

static void check_split(const char *line, const char *const *want)
{
	char **argv = NULL, err[200];
	assert_int_equal(pobox_tokencmd_split(line, &argv, err, sizeof err), 0);
	size_t i = 0;
	for (; want[i]; i++) {
		assert_non_null(argv[i]);
		assert_string_equal(argv[i], want[i]);
	}
	assert_null(argv[i]);
	pobox_tokencmd_argv_free(argv);
}

static void test_split(void **state)
{
	(void)state;
	check_split("vault read -field=token secret/x", (const char *const[]){"vault", "read", "-field=token", "secret/x", NULL});
	check_split("  a\t b  ", (const char *const[]){"a", "b", NULL});
	check_split("sh -c 'echo \"$HOME\" | tr a b'", (const char *const[]){"sh", "-c", "echo \"$HOME\" | tr a b", NULL});
	check_split("x \"a \\\"b\\\" \\$c \\n\"", (const char *const[]){"x", "a \"b\" $c \\n", NULL});
	check_split("a\\ b c''d \"\"", (const char *const[]){"a b", "cd", "", NULL});
	char **argv = NULL, err[200];
	assert_int_equal(pobox_tokencmd_split("sh -c 'echo", &argv, err, sizeof err), POBOX_ECONFIG);
	assert_string_equal(err, "token_command: unterminated ' quote at character 7");
	assert_int_equal(pobox_tokencmd_split("a \"b", &argv, err, sizeof err), POBOX_ECONFIG);
	assert_string_equal(err, "token_command: unterminated \" quote at character 3");
	assert_int_equal(pobox_tokencmd_split("   ", &argv, err, sizeof err), POBOX_ECONFIG);
	assert_string_equal(err, "token_command is empty");
}

static int parse(const char *out, struct pobox_tokencmd_result *r, char *err, size_t errlen)
{
	return pobox_tokencmd_parse_output(out, strlen(out), NOW, r, err, errlen);
}

static void test_output(void **state)
{
	(void)state;
	struct pobox_tokencmd_result r;
	char err[300];
	assert_int_equal(parse("abc.DEF-123_~+/=\n", &r, err, sizeof err), 0);
	assert_string_equal(r.token, "abc.DEF-123_~+/=");
	assert_int_equal(r.expires_at_ms, -1);
	pobox_free(r.token);
	assert_int_equal(parse("{\"token\":\"t1\",\"expires_at\":1767229200}", &r, err, sizeof err), 0);
	assert_string_equal(r.token, "t1");
	assert_int_equal(r.expires_at_ms, NOW + 3600000);
	pobox_free(r.token);
	assert_int_equal(parse(" {\"expires_at\":\"2026-01-01T02:00:00+01:00\", \"token\":\"t2\"}\n", &r, err, sizeof err), 0);
	assert_int_equal(r.expires_at_ms, NOW + 3600000);
	pobox_free(r.token);
	assert_int_equal(parse("{\"token\":\"t3\",\"expires_in\":90}", &r, err, sizeof err), 0);
	assert_int_equal(r.expires_at_ms, NOW + 90000);
	pobox_free(r.token);
	/* expires_at wins over expires_in */
	assert_int_equal(parse("{\"token\":\"t\",\"expires_in\":90,\"expires_at\":1767225660.5}", &r, err, sizeof err), 0);
	assert_int_equal(r.expires_at_ms, NOW + 60500);
	pobox_free(r.token);

	static const struct {
		const char *out, *msg;
	} bad[] = {
		{"", "token_command printed nothing on stdout (it must print the token, or JSON {\"token\": ...})"},
		{" \n\n", "token_command printed nothing on stdout (it must print the token, or JSON {\"token\": ...})"},
		{"abc\ndef\n", "token_command printed several lines on stdout (print only the token, or JSON {\"token\": ...})"},
		{"my token", "token_command printed a token with a space or control character in it (or over 16 KB)"},
		{"{\"token\": \"abc\",", "token_command printed malformed JSON on stdout: member name expected at byte 16"},
		{"{\"tok\":\"x\"}", "token_command printed JSON without a \"token\" string"},
		{"{\"token\":42}", "token_command printed JSON without a \"token\" string"},
		{"{\"token\":\"\"}", "token_command printed an empty \"token\", or one with a space or control character in it"},
		{"{\"token\":\"a\\nb\"}", "token_command printed an empty \"token\", or one with a space or control character in it"},
		{"{\"token\":\"t\",\"expires_at\":\"tomorrow\"}", "token_command: \"expires_at\" must be Unix seconds or an RFC 3339 time like \"2026-01-01T00:00:00Z\""},
		{"{\"token\":\"t\",\"expires_at\":true}", "token_command: \"expires_at\" must be Unix seconds or an RFC 3339 time like \"2026-01-01T00:00:00Z\""},
		{"{\"token\":\"t\",\"expires_in\":\"soon\"}", "token_command: \"expires_in\" must be a number of seconds"},
		{"{\"token\":\"t\",\"expires_at\":1767225500}", "token_command printed a token that expired at 2025-12-31T23:58:20Z (100s ago)"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = parse(bad[i].out, &r, err, sizeof err);
		if (rc != POBOX_ECONFIG || strcmp(err, bad[i].msg) != 0)
			fail_msg("output %zu: rc %d '%s' (want '%s')", i, rc, err, bad[i].msg);
		assert_null(r.token);
	}
	/* no message ever quotes what was printed */
	assert_int_equal(parse("{\"token\":\"s3cr3t-value\",\"expires_at\":\"x\"}", &r, err, sizeof err), POBOX_ECONFIG);
	assert_null(strstr(err, "s3cr3t"));
}

struct lines {
	char text[12][320];
	int n;
};

static void on_line(void *ctx, const char *line)
{
	struct lines *l = ctx;
	if (l->n < 12)
		snprintf(l->text[l->n++], sizeof l->text[0], "%s", line);
}

static int run(const char *cmdline, int64_t timeout_ms, struct lines *l,
               struct pobox_tokencmd_result *r, char *err, size_t errlen)
{
	char **argv = NULL;
	assert_int_equal(pobox_tokencmd_split(cmdline, &argv, err, errlen), 0);
	if (l)
		memset(l, 0, sizeof *l);
	int rc = pobox_tokencmd_run(argv, timeout_ms, "start", NOW, on_line, l, r, err, errlen);
	pobox_tokencmd_argv_free(argv);
	return rc;
}

static void test_run(void **state)
{
	(void)state;
	struct pobox_tokencmd_result r;
	struct lines l;
	char err[300];
	assert_int_equal(run("printf 'tok-1\\n'", 10000, &l, &r, err, sizeof err), 0);
	assert_string_equal(r.token, "tok-1");
	pobox_free(r.token);
	assert_int_equal(l.n, 0);

	/* stderr lines go to the callback, also on success; quotes and control
	 * characters are replaced */
	assert_int_equal(run("sh -c 'echo \"warn: \\\"x\\\"\" >&2; printf \"\\t\\n\" >&2; echo tok-2'", 10000, &l, &r, err, sizeof err), 0);
	assert_string_equal(r.token, "tok-2");
	pobox_free(r.token);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.text[0], "warn: 'x'");
	assert_string_equal(l.text[1], "'");

	assert_int_equal(run("sh -c 'echo denied >&2; echo tok; exit 3'", 10000, &l, &r, err, sizeof err), POBOX_ECONFIG);
	assert_string_equal(err, "token_command exited with status 3 (its stderr is in the log: token_command_stderr)");
	assert_null(r.token);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.text[0], "denied");
	assert_int_equal(run("false", 10000, &l, &r, err, sizeof err), POBOX_ECONFIG);
	assert_string_equal(err, "token_command exited with status 1");

	assert_int_equal(run("sh -c 'kill -9 $$'", 10000, &l, &r, err, sizeof err), POBOX_ECONFIG);
	assert_string_equal(err, "token_command was killed by signal 9 (Killed)");

	assert_int_equal(run("/nonexistent/helper --x", 10000, &l, &r, err, sizeof err), POBOX_ECONFIG);
	assert_string_equal(err, "token_command: cannot run '/nonexistent/helper': No such file or directory");

	assert_int_equal(run("true", 10000, &l, &r, err, sizeof err), POBOX_ECONFIG);
	assert_true(strstr(err, "printed nothing on stdout") != NULL);

	/* the environment names why it runs; stdin is empty */
	assert_int_equal(run("sh -c 'cat; echo \"r-$POBOX_TOKEN_REASON\"'", 10000, &l, &r, err, sizeof err), 0);
	assert_string_equal(r.token, "r-start");
	pobox_free(r.token);

	assert_int_equal(run("sh -c 'head -c 70000 /dev/zero | tr \"\\0\" a'", 10000, &l, &r, err, sizeof err), POBOX_ECONFIG);
	assert_string_equal(err, "token_command printed more than 64 KB on stdout and was killed");
}

static int alive(const char *pidfile)
{
	FILE *f = fopen(pidfile, "r");
	long pid = 0;
	if (!f)
		return -1;
	int n = fscanf(f, "%ld", &pid);
	fclose(f);
	if (n != 1 || pid <= 0)
		return -1;
	return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

static void test_timeout_kills_the_group(void **state)
{
	(void)state;
	struct pobox_tokencmd_result r;
	char err[300], cmd[600];
	char *dir = tu_tmpdir(), *p1 = tu_path(dir, "sh.pid"), *p2 = tu_path(dir, "sleep.pid");
	/* a shell that starts a child, both outliving the timeout; the child
	 * keeps stdout open, so only killing the group ends it */
	snprintf(cmd, sizeof cmd, "sh -c 'echo $$ > %s; sleep 30 & echo $! > %s; wait'", p1, p2);
	assert_int_equal(run(cmd, 400, NULL, &r, err, sizeof err), POBOX_ETRANSIENT);
	assert_string_equal(err, "token_command timed out after 400ms and was killed (token_command_timeout)");
	assert_null(r.token);
	assert_int_equal(alive(p1), 0);
	/* the sleep may take a moment to be reaped by init after SIGKILL */
	int gone = 0;
	for (int i = 0; i < 200 && !gone; i++) {
		gone = alive(p2) == 0;
		if (!gone)
			usleep(10000);
	}
	assert_true(gone);
	/* a command that closes its output but does not exit is timed out too */
	assert_int_equal(run("sh -c 'echo tok; exec >&- 2>&-; sleep 30'", 300, NULL, &r, err, sizeof err), POBOX_ETRANSIENT);
	tu_rm_rf(dir);
	free(dir);
	free(p1);
	free(p2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_output),
		cmocka_unit_test(test_run),
		cmocka_unit_test(test_timeout_kills_the_group),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
