/*
 * test_credentials.c - when tokens are fetched, kept and refreshed, on a
 * manual clock, with a real token_command (a shell script that counts its
 * runs): first use, refresh before the stated expiry, never more than once
 * per min_interval, one refresh after a refusal, a failed refresh keeping
 * a still-valid token, token_file re-read after a refusal, and the checks
 * of the options.  (The IMS path needs servers: tests/integration.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "credentials.h"
#include "pobox.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define T0 INT64_C(1767225600000)

struct fixture {
	char *dir, *script, *count, *failflag;
	int64_t now;
	struct pobox_clock clock;
	char cmd[1200];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	f->dir = tu_tmpdir();
	f->script = tu_path(f->dir, "mint.sh");
	f->count = tu_path(f->dir, "count");
	f->failflag = tu_path(f->dir, "fail");
	char body[1500];
	/* prints t<N> valid for 600 s, N counting its runs; fails while the
	 * flag file exists */
	snprintf(body, sizeof body,
	         "n=$(cat '%s' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '%s'\n"
	         "if [ -e '%s' ]; then echo 'vault: sealed' >&2; exit 2; fi\n"
	         "printf '{\"token\":\"t%%s\",\"expires_in\":600}' $n\n",
	         f->count, f->count, f->failflag);
	tu_write_file(f->script, body, strlen(body));
	snprintf(f->cmd, sizeof f->cmd, "sh %s", f->script);
	f->now = T0;
	f->clock = (struct pobox_clock){pobox_clock_manual_ms, &f->now};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tu_rm_rf(f->dir);
	free(f->dir);
	free(f->script);
	free(f->count);
	free(f->failflag);
	free(f);
	return 0;
}

static int runs(const struct fixture *f)
{
	FILE *fp = fopen(f->count, "r");
	int n = 0;
	if (fp) {
		if (fscanf(fp, "%d", &n) != 1)
			n = -1;
		fclose(fp);
	}
	return n;
}

static struct pobox_cred *command_cred(struct fixture *f)
{
	struct pobox_cred_opts o = {0};
	struct pobox_cred *c = NULL;
	char err[300];
	o.token_command = f->cmd;
	o.clock = &f->clock;
	o.min_interval_ms = 60000;
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), 0);
	return c;
}

static const char *tok(struct pobox_cred *c, uint64_t *gen, int want_rc, char *err, size_t errlen)
{
	const char *t = NULL;
	uint64_t g = 0;
	assert_int_equal(pobox_cred_token(c, &t, &g, err, errlen), want_rc);
	if (gen)
		*gen = g;
	return t;
}

static void test_command_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct pobox_cred *c = command_cred(f);
	struct pobox_cred_info in;
	char err[400];
	uint64_t g1, g2, g3, g;
	assert_int_equal(runs(f), 0); /* nothing is run before a token is needed */
	assert_string_equal(tok(c, &g1, 0, err, sizeof err), "t1");
	assert_int_equal(runs(f), 1);
	pobox_cred_info(c, &in);
	assert_int_equal(in.expires_at_ms, T0 + 600000);
	assert_int_equal(in.refresh_at_ms, T0 + 540000); /* 600 s / 10 = 60 s margin */
	/* not due: no run */
	f->now = T0 + 539999;
	assert_string_equal(tok(c, &g, 0, err, sizeof err), "t1");
	assert_int_equal(g, g1);
	assert_int_equal(runs(f), 1);
	/* due: refreshed before the expiry */
	f->now = T0 + 540000;
	assert_string_equal(tok(c, &g2, 0, err, sizeof err), "t2");
	assert_true(g2 != g1);
	assert_int_equal(runs(f), 2);
	/* Target refuses t2 at once: obtained 0 s ago, not asked again */
	assert_int_equal(pobox_cred_refused(c, g2, err, sizeof err), POBOX_EPERMANENT);
	assert_string_equal(err, "Target refused a token_command token obtained 0s ago; not asking "
	                         "for another one sooner than token_min_interval (60s)");
	assert_int_equal(runs(f), 2);
	/* a minute later a refusal gets one new token */
	f->now += 60000;
	assert_int_equal(pobox_cred_refused(c, g2, err, sizeof err), 0);
	assert_string_equal(tok(c, &g3, 0, err, sizeof err), "t3");
	assert_int_equal(runs(f), 3);
	/* a refusal of the old generation (a call made before the refresh) runs nothing */
	assert_int_equal(pobox_cred_refused(c, g2, err, sizeof err), 0);
	assert_int_equal(runs(f), 3);
	pobox_cred_info(c, &in);
	assert_int_equal(in.mints, 3);
	pobox_cred_free(c);
}

static void test_failed_refresh(void **state)
{
	struct fixture *f = *state;
	struct pobox_cred *c = command_cred(f);
	char err[400];
	uint64_t g1, g;
	assert_string_equal(tok(c, &g1, 0, err, sizeof err), "t1");
	tu_write_file(f->failflag, "", 0);
	/* due, the command fails: the current token is kept while it lasts */
	f->now = T0 + 550000;
	assert_string_equal(tok(c, &g, 0, err, sizeof err), "t1");
	assert_int_equal(g, g1);
	assert_int_equal(runs(f), 2);
	/* not tried again within the minute */
	f->now = T0 + 590000;
	assert_string_equal(tok(c, &g, 0, err, sizeof err), "t1");
	assert_int_equal(runs(f), 2);
	/* expired, last try 50 s ago: an error, no run */
	f->now = T0 + 600000;
	assert_null(tok(c, &g, POBOX_EPERMANENT, err, sizeof err));
	assert_string_equal(err, "the token_command token expired at 2026-01-01T00:10:00Z and the last "
	                         "attempt to refresh it was 50s ago (token_min_interval)");
	assert_int_equal(runs(f), 2);
	/* a minute after the last try: run, fail, the command's reason */
	f->now = T0 + 610000;
	assert_null(tok(c, &g, POBOX_ECONFIG, err, sizeof err));
	assert_string_equal(err, "token_command exited with status 2 (its stderr is in the log: "
	                         "token_command_stderr)");
	assert_int_equal(runs(f), 3);
	/* fixed: the next try after the minute works */
	remove(f->failflag);
	f->now = T0 + 640000;
	assert_null(tok(c, &g, POBOX_EPERMANENT, err, sizeof err)); /* too soon */
	assert_int_equal(runs(f), 3);
	f->now = T0 + 670000;
	assert_string_equal(tok(c, &g, 0, err, sizeof err), "t4");
	pobox_cred_free(c);
}

static void test_first_failure_is_not_retried_at_once(void **state)
{
	struct fixture *f = *state;
	tu_write_file(f->failflag, "", 0);
	struct pobox_cred *c = command_cred(f);
	char err[400];
	assert_null(tok(c, NULL, POBOX_ECONFIG, err, sizeof err));
	assert_null(tok(c, NULL, POBOX_ECONFIG, err, sizeof err));
	assert_int_equal(runs(f), 1);
	assert_true(strstr(err, "exited with status 2") != NULL);
	remove(f->failflag);
	f->now += 60000;
	assert_string_equal(tok(c, NULL, 0, err, sizeof err), "t2");
	pobox_cred_free(c);
}

static void test_token_file(void **state)
{
	struct fixture *f = *state;
	char *path = tu_path(f->dir, "token"), err[400];
	struct pobox_cred_opts o = {0};
	struct pobox_cred *c = NULL;
	uint64_t g1, g2;
	o.token_file = path;
	o.clock = &f->clock;
	tu_write_file(path, "static-1\n", 9);
	chmod(path, 0644);
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), POBOX_ECONFIG);
	assert_true(strstr(err, "is readable by other users (mode 0644); run chmod 600") != NULL);
	chmod(path, 0600);
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), 0);
	assert_int_equal(pobox_cred_source(c), POBOX_CRED_FILE);
	assert_string_equal(tok(c, &g1, 0, err, sizeof err), "static-1");
	/* refused and unchanged: the reason names the file */
	assert_int_equal(pobox_cred_refused(c, g1, err, sizeof err), POBOX_EPERMANENT);
	assert_true(strstr(err, "Target refused the token in token_file ") != NULL);
	/* replaced by the operator: taken after the refusal */
	tu_write_file(path, "static-2\n", 9);
	chmod(path, 0600);
	assert_int_equal(pobox_cred_refused(c, g1, err, sizeof err), 0);
	assert_string_equal(tok(c, &g2, 0, err, sizeof err), "static-2");
	assert_true(g2 != g1);
	pobox_cred_free(c);
	free(path);
}

static void test_options(void **state)
{
	struct fixture *f = *state;
	struct pobox_cred_opts o = {0};
	struct pobox_cred *c = NULL;
	char err[400], *secret = tu_path(f->dir, "secret");
	const char *t;
	uint64_t g;
	/* nothing configured: no token, no header */
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), 0);
	assert_int_equal(pobox_cred_token(c, &t, &g, err, sizeof err), 0);
	assert_null(t);
	assert_int_equal(pobox_cred_refused(c, g, err, sizeof err), POBOX_EPERMANENT);
	pobox_cred_free(c);
	o.token_file = "/x";
	o.token_command = "y";
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), POBOX_ECONFIG);
	assert_string_equal(err, "set only one of token_file, token_command and ims_client_id");
	memset(&o, 0, sizeof o);
	o.token_command = "sh -c 'x";
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), POBOX_ECONFIG);
	memset(&o, 0, sizeof o);
	o.ims_client_id = "cid";
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), POBOX_ECONFIG);
	assert_true(strstr(err, "ims_client_secret_file is not") != NULL);
	o.ims_client_secret_file = secret;
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), POBOX_ECONFIG);
	assert_true(strstr(err, "ims_scopes is not set") != NULL);
	o.ims_scopes = "openid";
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), POBOX_ECONFIG);
	assert_true(strstr(err, "target_tenant is not set") != NULL);
	o.tenant = "acme";
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), POBOX_ECONFIG);
	assert_true(strstr(err, "ims_client_secret_file ") && strstr(err, "No such file"));
	tu_write_file(secret, "s3cret\n", 7);
	chmod(secret, 0640);
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), POBOX_ECONFIG);
	assert_true(strstr(err, "is readable by other users (mode 0640)") != NULL);
	assert_null(strstr(err, "s3cret"));
	chmod(secret, 0600);
	assert_int_equal(pobox_cred_new(&c, &o, err, sizeof err), 0);
	assert_int_equal(pobox_cred_source(c), POBOX_CRED_IMS);
	/* references */
	assert_ptr_equal(pobox_cred_ref(c), c);
	pobox_cred_free(c);
	pobox_cred_free(c);
	free(secret);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_command_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_refresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_failure_is_not_retried_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_options, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
