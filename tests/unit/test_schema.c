/*
 * test_schema.c - opening and migrating outboxes: fresh, re-open, refusal of
 * newer schemas and foreign files without changing them, connection
 * settings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "outbox.h"
#include "store.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *read_all(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return b;
}

static void test_fresh_and_reopen(void **state)
{
	char *dir = tu_tmpdir(), *db = tu_path(dir, "o.db"), err[512];
	struct pobox *pb = NULL;
	int v = -1;
	(void)state;

	assert_int_equal(pobox_open(&pb, db, NULL, err, sizeof err), 0);
	assert_int_equal(pobox_store_schema_version(pb->st, &v), 0);
	assert_true(v >= 1);
	assert_int_equal(v, pobox_store_known_version());
	/* WAL, FULL synchronous (2), a busy timeout */
	char *mode = tu_query_text(db, "PRAGMA journal_mode");
	assert_string_equal(mode, "wal");
	free(mode);
	int sync = -1, app = 0;
	assert_int_equal(pobox_store_query_int(pb->st, "PRAGMA synchronous", &sync), 0);
	assert_int_equal(sync, 2);
	assert_int_equal(pobox_store_query_int(pb->st, "PRAGMA application_id", &app), 0);
	assert_int_equal(app, 0x504F4258);
	int busy = 0;
	assert_int_equal(pobox_store_query_int(pb->st, "PRAGMA busy_timeout", &busy), 0);
	assert_int_equal(busy, 30000);
	/* the tables are STRICT */
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM pragma_table_list WHERE "
	                                  "name IN ('writes','profiles','attributes') AND strict"),
	                 3);
	struct pobox_update u = {POBOX_ID_THIRDPARTY, "p1", "a", "1", 0, "t"};
	assert_int_equal(pobox_put(pb, &u), 0);
	pobox_close(pb);

	/* re-open: nothing re-applied, data kept */
	pb = NULL;
	assert_int_equal(pobox_open(&pb, db, NULL, err, sizeof err), 0);
	assert_int_equal(pobox_store_schema_version(pb->st, &v), 0);
	assert_int_equal(v, pobox_store_known_version());
	pobox_close(pb);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM v_updates"), 1);
	assert_int_equal(tu_query_int(db, "PRAGMA user_version"), pobox_store_known_version());

	tu_rm_rf(dir);
	free(db);
	free(dir);
}

static void test_synchronous_configurable(void **state)
{
	char *dir = tu_tmpdir(), *db = tu_path(dir, "o.db"), err[512];
	struct pobox *pb = NULL;
	struct pobox_options o;
	int sync = -1;
	(void)state;
	pobox_options_init(&o);
	o.synchronous = POBOX_SYNC_NORMAL;
	o.busy_timeout_ms = 1234;
	assert_int_equal(pobox_open(&pb, db, &o, err, sizeof err), 0);
	assert_int_equal(pobox_store_query_int(pb->st, "PRAGMA synchronous", &sync), 0);
	assert_int_equal(sync, 1);
	assert_int_equal(pobox_store_query_int(pb->st, "PRAGMA busy_timeout", &sync), 0);
	assert_int_equal(sync, 1234);
	pobox_close(pb);
	o.synchronous = (enum pobox_sync)7;
	assert_int_equal(pobox_open(&pb, db, &o, err, sizeof err), POBOX_ECONFIG);
	tu_rm_rf(dir);
	free(db);
	free(dir);
}

/* An outbox from a future pobox: refused, and not a byte changes (not even
 * the journal mode). */
static void test_newer_schema_refused_unchanged(void **state)
{
	char *dir = tu_tmpdir(), *db = tu_path(dir, "future.db"), err[512], msg[256];
	struct pobox *pb = (struct pobox *)0x1;
	size_t n1, n2;
	(void)state;
	tu_write_file(db, "", 0);
	assert_int_equal(tu_exec(db, "PRAGMA application_id = 1347371608;"
	                             "CREATE TABLE future(x); PRAGMA user_version = 999;",
	                         msg, sizeof msg), 0);
	char *before = read_all(db, &n1);
	assert_int_equal(pobox_open(&pb, db, NULL, err, sizeof err), POBOX_ECONFIG);
	assert_ptr_equal(pb, (struct pobox *)0x1); /* *out untouched on failure */
	assert_non_null(strstr(err, "schema version 999"));
	assert_non_null(strstr(err, "upgrade pobox"));
	assert_non_null(strstr(err, "not changed"));
	char *after = read_all(db, &n2);
	assert_int_equal(n1, n2);
	assert_memory_equal(before, after, n1);
	char *mode = tu_query_text(db, "PRAGMA journal_mode");
	assert_string_equal(mode, "delete");
	struct stat sb;
	char *wal = tu_path(dir, "future.db-wal");
	assert_int_not_equal(stat(wal, &sb), 0);
	free(wal);
	free(mode);
	free(before);
	free(after);
	tu_rm_rf(dir);
	free(db);
	free(dir);
}

static void test_foreign_files_refused(void **state)
{
	char *dir = tu_tmpdir(), *db = tu_path(dir, "other.db"), *txt = tu_path(dir, "notes.txt");
	char err[512], msg[256];
	struct pobox *pb = NULL;
	(void)state;
	/* someone else's SQLite database */
	tu_write_file(db, "", 0);
	assert_int_equal(tu_exec(db, "CREATE TABLE customers(id);", msg, sizeof msg), 0);
	assert_int_equal(pobox_open(&pb, db, NULL, err, sizeof err), POBOX_ECORRUPT);
	assert_non_null(strstr(err, "not a pobox outbox"));
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM sqlite_schema"), 1);
	/* not a database at all: refused, never overwritten */
	const char text[] = "this is a text file, definitely not SQLite, with enough bytes to look "
	                    "like a header...................................................";
	tu_write_file(txt, text, sizeof text - 1);
	assert_int_equal(pobox_open(&pb, txt, NULL, err, sizeof err), POBOX_ECORRUPT);
	assert_non_null(strstr(err, "pobox doctor"));
	size_t n;
	char *after = read_all(txt, &n);
	assert_int_equal(n, sizeof text - 1);
	assert_memory_equal(after, text, n);
	free(after);
	/* must_exist: a missing file is reported, not created */
	struct pobox_options o;
	pobox_options_init(&o);
	o.read_only = 1;
	char *missing = tu_path(dir, "missing.db");
	assert_int_equal(pobox_open(&pb, missing, &o, err, sizeof err), POBOX_ENOTFOUND);
	assert_non_null(strstr(err, "does not exist"));
	struct stat sb;
	assert_int_not_equal(stat(missing, &sb), 0);
	free(missing);
	tu_rm_rf(dir);
	free(db);
	free(txt);
	free(dir);
}

/* An outbox left at version 0 with pobox's id (a crash before the first
 * migration committed) migrates normally. */
static void test_empty_file_migrates(void **state)
{
	char *dir = tu_tmpdir(), *db = tu_path(dir, "o.db"), err[512];
	struct pobox *pb = NULL;
	(void)state;
	tu_write_file(db, "", 0);
	assert_int_equal(pobox_open(&pb, db, NULL, err, sizeof err), 0);
	pobox_close(pb);
	assert_int_equal(tu_query_int(db, "PRAGMA user_version"), pobox_store_known_version());
	tu_rm_rf(dir);
	free(db);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_and_reopen),
		cmocka_unit_test(test_synchronous_configurable),
		cmocka_unit_test(test_newer_schema_refused_unchanged),
		cmocka_unit_test(test_foreign_files_refused),
		cmocka_unit_test(test_empty_file_migrates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
