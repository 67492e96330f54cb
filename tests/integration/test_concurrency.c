/*
 * test_concurrency.c - several producers writing one outbox at once never
 * see "database is locked", and every update lands exactly once.
 *
 * Six processes start together on one fresh outbox:
 *   - 2 x `pobox import` (the real CLI) of 5,000 rows x 10 attributes each;
 *   - 2 x the C API in transactions of 250 updates, 50,000 updates each,
 *     the first of them putting its first 1,000 updates one transaction
 *     each (autocommit), the way a POS process would;
 *   - 1 x a reader running `pobox status` and a view query in a loop.
 * Each producer writes values tagged with its own name and a counter, so the
 * check afterwards can demand each of the 200,000 exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "outbox.h"
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PER_PRODUCER 50000
#define ATTRS 10

static const char *pobox_bin;
static char *dir, *db;
static pid_t children[5]; /* reaped in main, even after a failed assertion */

static void write_csv(const char *path, const char *tag)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "thirdPartyId");
	for (int a = 0; a < ATTRS; a++)
		fprintf(fp, ",attr%d", a);
	fputc('\n', fp);
	for (int r = 0; r < PER_PRODUCER / ATTRS; r++) {
		fprintf(fp, "%s-p%d", tag, r);
		for (int a = 0; a < ATTRS; a++)
			fprintf(fp, ",%s-%d", tag, r * ATTRS + a);
		fputc('\n', fp);
	}
	assert_int_equal(fclose(fp), 0);
}

static int c_producer(const char *tag, int autocommit_first)
{
	struct pobox *pb = NULL;
	char err[512], id[64], attr[16], val[64];
	if (pobox_open(&pb, db, NULL, err, sizeof err) != 0) {
		fprintf(stderr, "%s: open: %s\n", tag, err);
		return 1;
	}
	int in_tx = 0;
	for (int i = 0; i < PER_PRODUCER; i++) {
		int tx = i >= autocommit_first;
		if (tx && !in_tx) {
			if (pobox_begin(pb) != 0)
				goto fail;
			in_tx = 1;
		}
		snprintf(id, sizeof id, "%s-p%d", tag, i / ATTRS);
		snprintf(attr, sizeof attr, "attr%d", i % ATTRS);
		snprintf(val, sizeof val, "%s-%d", tag, i);
		struct pobox_update u = {POBOX_ID_THIRDPARTY, id, attr, val, 0, tag};
		if (pobox_put(pb, &u) != 0)
			goto fail;
		if (in_tx && (i + 1) % 250 == 0) {
			if (pobox_commit(pb) != 0)
				goto fail;
			in_tx = 0;
		}
	}
	if (in_tx && pobox_commit(pb) != 0)
		goto fail;
	pobox_close(pb);
	return 0;
fail:
	fprintf(stderr, "%s: %s\n", tag, pobox_errmsg(pb));
	pobox_close(pb);
	return 1;
}

static pid_t spawn_import(const char *csv, const char *out)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen(out, "w", stdout))
			_exit(4);
		execl(pobox_bin, "pobox", "--db", db, "import", csv, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void test_concurrent_producers(void **state)
{
	(void)state;
	char *csv1 = tu_path(dir, "imp1.csv"), *csv2 = tu_path(dir, "imp2.csv");
	char *out1 = tu_path(dir, "imp1.out"), *out2 = tu_path(dir, "imp2.out");
	char *rout = tu_path(dir, "reader.out");
	write_csv(csv1, "imp1");
	write_csv(csv2, "imp2");
	/* create the outbox first so the test measures writing, not migrating
	 * (concurrent first opens are covered by their own IMMEDIATE migration) */
	{
		struct pobox *pb = NULL;
		char err[256];
		assert_int_equal(pobox_open(&pb, db, NULL, err, sizeof err), 0);
		pobox_close(pb);
	}
	pid_t *pids = children;
	pids[0] = spawn_import(csv1, out1);
	pids[1] = spawn_import(csv2, out2);
	for (int k = 0; k < 2; k++) {
		pids[2 + k] = fork();
		if (pids[2 + k] == 0)
			_exit(c_producer(k == 0 ? "api1" : "api2", k == 0 ? 1000 : 0));
	}
	pids[4] = fork();
	if (pids[4] == 0) {
		/* reader: status and a view, over and over, until killed */
		pid_t parent = getppid();
		if (!freopen(rout, "w", stdout))
			_exit(4);
		/* until killed, or until the test itself is gone (a failed
		 * assertion there must not leave this loop running) */
		while (getppid() == parent) {
			pid_t p = fork();
			if (p == 0) {
				execl(pobox_bin, "pobox", "--db", db, "status", "--json", (char *)NULL);
				_exit(127);
			}
			int st;
			waitpid(p, &st, 0);
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				_exit(3);
			(void)tu_query_int(db, "SELECT count(*) FROM v_pending WHERE age_s >= 0");
		}
		_exit(0);
	}
	for (int k = 0; k < 4; k++) {
		int st;
		assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
		pids[k] = 0;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail_msg("producer %d exited with status %d", k, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	}
	int st;
	kill(pids[4], SIGKILL);
	waitpid(pids[4], &st, 0);
	pids[4] = 0;
	/* the reader must have been killed, not have failed on its own */
	assert_true(WIFSIGNALED(st));

	/* every update exactly once */
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM v_updates"), 4 * PER_PRODUCER);
	assert_int_equal(tu_query_int(db, "SELECT count(DISTINCT value) FROM v_updates"), 4 * PER_PRODUCER);
	static const char *const tags[] = {"imp1", "imp2", "api1", "api2"};
	for (int k = 0; k < 4; k++) {
		char sql[512];
		/* the value "<tag>-<i>" sits on profile "<tag>-p<i/10>", attribute attr<i%10> */
		snprintf(sql, sizeof sql,
		         "SELECT count(*) FROM v_updates WHERE value LIKE '%s-%%' AND "
		         "profile_id = '%s-p' || (CAST(substr(value, %d) AS INTEGER) / 10) AND "
		         "attr = 'attr' || (CAST(substr(value, %d) AS INTEGER) %% 10)",
		         tags[k], tags[k], (int)strlen(tags[k]) + 2, (int)strlen(tags[k]) + 2);
		assert_int_equal(tu_query_int(db, sql), PER_PRODUCER);
	}
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM profiles"), 4 * PER_PRODUCER / ATTRS);
	free(csv1), free(csv2), free(out1), free(out2), free(rout);
}

/* Eight processes open the same brand-new outbox at once and put one
 * update each, 25 times over: none may be refused (the first migration
 * committing while another process checks the file's identity once made a
 * fresh outbox look foreign) and every update must land. */
static void test_concurrent_first_open(void **state)
{
	(void)state;
	enum { PROCS = 8, ROUNDS = 25 };
	for (int r = 0; r < ROUNDS; r++) {
		char name[32], *path;
		pid_t pid[PROCS];
		snprintf(name, sizeof name, "fresh-%d.db", r);
		path = tu_path(dir, name);
		for (int k = 0; k < PROCS; k++) {
			pid[k] = fork();
			if (pid[k] == 0) {
				struct pobox *pb = NULL;
				char err[512], id[16];
				if (pobox_open(&pb, path, NULL, err, sizeof err) != 0) {
					fprintf(stderr, "round %d proc %d: %s\n", r, k, err);
					_exit(1);
				}
				snprintf(id, sizeof id, "p%d", k);
				struct pobox_update u = {POBOX_ID_THIRDPARTY, id, "a", "1", 0, NULL};
				int rc = pobox_put(pb, &u);
				if (rc != 0)
					fprintf(stderr, "round %d proc %d: %s\n", r, k, pobox_errmsg(pb));
				pobox_close(pb);
				_exit(rc == 0 ? 0 : 2);
			}
		}
		for (int k = 0; k < PROCS; k++) {
			int st;
			assert_int_equal(waitpid(pid[k], &st, 0), pid[k]);
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				fail_msg("round %d: process %d failed to open or put", r, k);
		}
		assert_int_equal(tu_query_int(path, "SELECT count(*) FROM v_updates"), PROCS);
		free(path);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_concurrency PATH-TO-POBOX\n");
		return 2;
	}
	pobox_bin = argv[1];
	dir = tu_tmpdir();
	db = tu_path(dir, "o.db");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_producers),
		cmocka_unit_test(test_concurrent_first_open),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	for (int k = 0; k < 5; k++) {
		if (children[k] > 0 && waitpid(children[k], NULL, WNOHANG) == 0) {
			kill(children[k], SIGKILL);
			waitpid(children[k], NULL, 0);
		}
	}
	if (rc == 0)
		tu_rm_rf(dir);
	free(db);
	free(dir);
	return rc;
}
