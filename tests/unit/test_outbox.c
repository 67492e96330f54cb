/*
 * test_outbox.c - the producer C API: put, skip, transactions, the clock,
 * allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "alloc.h"
#include "outbox.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fx {
	char *dir, *db;
	struct pobox *pb;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (tu_outbox_open(&f->dir, &f->db, &f->pb) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	tu_outbox_close(f->dir, f->db, f->pb);
	free(f);
	return 0;
}

static void test_put_and_read_back(void **state)
{
	struct fx *f = *state;
	int64_t now = 1790000000123;
	pobox_set_clock(f->pb, (struct pobox_clock){pobox_clock_manual_ms, &now});
	struct pobox_update u = {POBOX_ID_THIRDPARTY, "crm-1", "profile.tier", "gold", 1, "pos-7"};
	assert_int_equal(pobox_put(f->pb, &u), 0);
	u.id_type = POBOX_ID_PCID;
	u.profile_id = "123-456.01_00";
	u.attr = "points";
	u.value = "12";
	u.urgent = 0;
	u.source = NULL;
	now += 5;
	assert_int_equal(pobox_put(f->pb, &u), 0);

	char *row = tu_query_text(f->db, "SELECT group_concat(id_type||'|'||profile_id||'|'||attr||'|'||"
	                                 "value||'|'||urgent||'|'||coalesce(source,'-')||'|'||state||'|'||"
	                                 "enqueued_at, ';') FROM v_updates ORDER BY seq");
	assert_string_equal(row, "thirdPartyId|crm-1|tier|gold|1|pos-7|pending|2026-09-21T14:13:20.123Z;"
	                         "pcId|123-456.01_00|points|12|0|-|pending|2026-09-21T14:13:20.128Z");
	free(row);
	assert_int_equal(tu_query_int(f->db, "SELECT enqueued_at_ms FROM writes WHERE seq = 2"), now);
}

static void test_empty_value_skipped(void **state)
{
	struct fx *f = *state;
	struct pobox_update u = {POBOX_ID_THIRDPARTY, "crm-1", "tier", "", 0, NULL};
	assert_int_equal(pobox_put(f->pb, &u), POBOX_SKIPPED);
	u.value = NULL;
	assert_int_equal(pobox_put(f->pb, &u), POBOX_SKIPPED);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates"), 0);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM profiles"), 0);
}

static void test_invalid_put_stores_nothing(void **state)
{
	struct fx *f = *state;
	struct pobox_update u = {POBOX_ID_THIRDPARTY, "a+b", "tier", "x", 0, NULL};
	assert_int_equal(pobox_put(f->pb, &u), POBOX_EINVALID);
	assert_non_null(strstr(pobox_errmsg(f->pb), "'+'"));
	u.profile_id = "ok";
	u.attr = "bad attr";
	assert_int_equal(pobox_put(f->pb, &u), POBOX_EINVALID);
	assert_non_null(strstr(pobox_errmsg(f->pb), "attribute name"));
	assert_int_equal(pobox_put(f->pb, NULL), POBOX_EINVALID);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates"), 0);
}

static void test_transactions(void **state)
{
	struct fx *f = *state;
	struct pobox_update u = {POBOX_ID_THIRDPARTY, "p", "a", "1", 0, "batch"};
	char id[16];

	/* commit: all visible together */
	assert_int_equal(pobox_begin(f->pb), 0);
	assert_int_equal(pobox_begin(f->pb), POBOX_EINVALID); /* no nesting */
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "p%d", i);
		u.profile_id = id;
		assert_int_equal(pobox_put(f->pb, &u), 0);
	}
	/* a bad put inside the transaction fails alone; the transaction goes on */
	u.profile_id = "bad/id";
	assert_int_equal(pobox_put(f->pb, &u), POBOX_EINVALID);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates"), 0); /* not yet */
	assert_int_equal(pobox_commit(f->pb), 0);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates"), 100);

	/* rollback: nothing, including new interned keys and sources */
	assert_int_equal(pobox_begin(f->pb), 0);
	u.profile_id = "rolled";
	u.attr = "newattr";
	u.source = "newsource";
	assert_int_equal(pobox_put(f->pb, &u), 0);
	assert_int_equal(pobox_rollback(f->pb), 0);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates"), 100);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM attributes WHERE name='newattr'"), 0);
	/* the caches were dropped with the rollback: the same names work again */
	assert_int_equal(pobox_put(f->pb, &u), 0);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates WHERE attr='newattr' "
	                                     "AND source='newsource' AND profile_id='rolled'"), 1);
	assert_int_equal(pobox_commit(f->pb), POBOX_EINVALID); /* none open */
}

static void test_options_checked(void **state)
{
	struct fx *f = *state;
	struct pobox_options o;
	struct pobox *pb = NULL;
	char err[256];
	pobox_options_init(&o);
	o.max_value_chars = 0;
	assert_int_equal(pobox_open(&pb, f->db, &o, err, sizeof err), POBOX_ECONFIG);
	assert_non_null(strstr(err, "max_value_chars"));
	pobox_options_init(&o);
	o.max_value_chars = 3;
	assert_int_equal(pobox_open(&pb, f->db, &o, err, sizeof err), 0);
	struct pobox_update u = {POBOX_ID_THIRDPARTY, "p", "a", "abcd", 0, NULL};
	assert_int_equal(pobox_put(pb, &u), POBOX_EINVALID);
	u.value = "abc";
	assert_int_equal(pobox_put(pb, &u), 0);
	/* the limit is recorded for the sqlite3 enqueue path */
	assert_int_equal(tu_query_int(f->db, "SELECT value FROM settings WHERE key='max_value_chars'"), 3);
	pobox_close(pb);
	assert_string_equal(pobox_strerror(POBOX_EFULL), "outbox full");
	assert_string_equal(pobox_strerror(12345), "unknown error");
}

/* Every allocation during open and put may fail: each failure is reported
 * as an error (never a crash, never a leak under ASan) and a later attempt
 * works. */
static void test_allocation_failures(void **state)
{
	struct fx *f = *state;
	char err[512], id[32];
	int failures = 0;
	for (long n = 0; n < 200; n++) {
		struct pobox *pb = NULL;
		pobox_alloc_fail_after(n);
		int rc = pobox_open(&pb, f->db, NULL, err, sizeof err);
		if (rc == 0) {
			snprintf(id, sizeof id, "alloc-%ld", n);
			struct pobox_update u = {POBOX_ID_THIRDPARTY, id, "attr", "v", 0, "src"};
			rc = pobox_put(pb, &u);
			pobox_close(pb);
		}
		pobox_alloc_fail_after(-1);
		if (rc == 0 && n > 0 && failures > 0)
			break; /* past the last allocation: all later n succeed */
		if (rc != 0) {
			failures++;
			assert_int_equal(rc, POBOX_ENOMEM);
		}
	}
	assert_true(failures > 0);
	/* the outbox still works and holds only whole updates */
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_cells u JOIN profiles p "
	                                     "ON p.id = u.profile"),
	                 tu_query_int(f->db, "SELECT count(*) FROM v_updates"));
	assert_int_equal(tu_query_int(f->db, "SELECT pending FROM tallies"),
	                 tu_query_int(f->db, "SELECT count(*) FROM v_updates"));
}

/* Another process records damage while this producer has the outbox open:
 * its next put is refused (POBOX_ECORRUPT, saying so), inside a transaction
 * too, and a write that bypasses pobox_begin (an autocommit statement) is
 * turned back at commit.  A new open is refused; once the mark is gone,
 * puts work again. */
static void test_damage_mark_refuses_writes(void **state)
{
	struct fx *f = *state;
	struct pobox_update u = {POBOX_ID_THIRDPARTY, "crm-1", "tier", "gold", 0, NULL};
	struct pobox *other = NULL;
	char err[512], mark[4200];
	assert_int_equal(pobox_put(f->pb, &u), 0);
	snprintf(mark, sizeof mark, "%s-corrupt", f->db);
	tu_write_file(mark, "2026-01-01T00:00:00Z pid 1: test\n", 33);
	u.value = "silver";
	assert_int_equal(pobox_put(f->pb, &u), POBOX_ECORRUPT);
	assert_non_null(strstr(pobox_errmsg(f->pb), "is damaged (2026-01-01T00:00:00Z pid 1: test)"));
	assert_non_null(strstr(pobox_errmsg(f->pb), "pobox doctor"));
	assert_int_equal(pobox_begin(f->pb), POBOX_ECORRUPT);
	assert_int_equal(pobox_store_exec(f->pb->st, "UPDATE settings SET value = 7 WHERE key = 'x'"),
	                 POBOX_ECORRUPT);
	assert_int_equal(pobox_open(&other, f->db, NULL, err, sizeof err), POBOX_ECORRUPT);
	assert_null(other);
	assert_non_null(strstr(err, "is damaged"));
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates"), 1);
	assert_int_equal(unlink(mark), 0);
	assert_int_equal(pobox_put(f->pb, &u), 0);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates"), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_and_read_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_value_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_put_stores_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_options_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damage_mark_refuses_writes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
