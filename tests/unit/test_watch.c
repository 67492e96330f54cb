/*
 * test_watch.c - the figures of the terminal views (store/watch.c): which
 * batches a flush waits for and how far they got, the id below them, and
 * status --watch's counts by lane and state, bulk calls in the last
 * minute and the oldest wait on Target.  Rows are written with SQLite
 * directly (testutil), so the store is checked against rows it did not
 * make.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "outbox.h"
#include "store.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

/* A batch row: id, lane, state, submitted_at_ms (<0: NULL), finished_at_ms (<0: NULL). */
static void batch(const char *db, int id, const char *lane, const char *state, long long sub,
                  long long fin)
{
	char sql[600], s[32] = "NULL", f[32] = "NULL", msg[200];
	if (sub >= 0)
		snprintf(s, sizeof s, "%lld", sub);
	if (fin >= 0)
		snprintf(f, sizeof f, "%lld", fin);
	snprintf(sql, sizeof sql,
	         "INSERT INTO batches (id, lane, api, id_type, state, profiles, updates, bytes,"
	         " payload_crc32, created_at_ms, submitted_at_ms, finished_at_ms)"
	         " VALUES (%d, '%s', '%s', 'thirdPartyId', '%s', 1, 1, 10, 0, 1000, %s, %s)",
	         id, lane, lane[0] == 's' ? "single" : "v2", state, s, f);
	int rc = tu_exec(db, sql, msg, sizeof msg);
	if (rc != 0)
		fail_msg("%s: %s", sql, msg);
}

static void test_tally_and_floor(void **state)
{
	(void)state;
	char *dir, *db;
	struct pobox *pb;
	struct pobox_batch_tally t;
	int64_t floor = -1;
	assert_int_equal(tu_outbox_open(&dir, &db, &pb), 0);
	assert_int_equal(pobox_store_batch_floor(pb->st, &floor), 0);
	assert_int_equal(floor, 0); /* no batches at all */

	batch(db, 1, "bulk", "done", 500, 1000);      /* final before the flush began */
	batch(db, 2, "bulk", "done", 1500, 5000);     /* finished while it waited */
	batch(db, 3, "bulk", "submitted", 3000, -1);
	batch(db, 4, "bulk", "submitted", 2500, -1);
	batch(db, 5, "bulk", "ready", -1, -1);
	batch(db, 6, "bulk", "dead", 1800, 6000);
	batch(db, 7, "single", "done", 2100, 2200);   /* the single lane's: not counted */

	assert_int_equal(pobox_store_batch_floor(pb->st, &floor), 0);
	assert_int_equal(floor, 2); /* below 3, the oldest not final */
	assert_int_equal(pobox_store_batch_tally(pb->st, 0, 2000, &t), 0);
	assert_int_equal(t.cut, 5);  /* 2..6 */
	assert_int_equal(t.sent, 4); /* all but the ready one */
	assert_int_equal(t.done, 1);
	assert_int_equal(t.dead, 1);
	assert_int_equal(t.waiting, 2);
	assert_int_equal(t.oldest_waiting_ms, 2500);
	/* above the floor: only the flush's own */
	assert_int_equal(pobox_store_batch_tally(pb->st, 4, 0, &t), 0);
	assert_int_equal(t.cut, 2);
	assert_int_equal(t.waiting, 0);
	assert_int_equal(t.oldest_waiting_ms, 0);

	char msg[200];
	assert_int_equal(tu_exec(db, "UPDATE batches SET state = 'done', finished_at_ms = 7000"
	                             " WHERE state IN ('ready', 'submitted')", msg, sizeof msg), 0);
	assert_int_equal(pobox_store_batch_floor(pb->st, &floor), 0);
	assert_int_equal(floor, 7); /* every batch final: the newest */
	tu_outbox_close(dir, db, pb);
}

static void test_watch_figures(void **state)
{
	(void)state;
	char *dir, *db, msg[200];
	struct pobox *pb;
	struct pobox_watch w;
	assert_int_equal(tu_outbox_open(&dir, &db, &pb), 0);
	batch(db, 1, "bulk", "done", 500, 1000);
	batch(db, 2, "bulk", "done", 600, 1100);
	batch(db, 3, "bulk", "submitted", 3000, -1);
	batch(db, 4, "bulk", "submitted", 2500, -1);
	batch(db, 5, "bulk", "ready", -1, -1);
	batch(db, 6, "single", "done", 2100, 2200);
	batch(db, 7, "single", "dead", 2100, 2300);
	assert_int_equal(tu_exec(db, "UPDATE batches SET state = 'dead' WHERE id = 2", msg, sizeof msg), 0);
	assert_int_equal(tu_exec(db, "INSERT INTO bulk_calls (at_ms) VALUES (30000), (40500), (40501),"
	                             " (100000)", msg, sizeof msg), 0);

	assert_int_equal(pobox_store_watch(pb->st, 100500, &w), 0);
	assert_int_equal(w.batches[0][POBOX_B_DONE], 1);
	assert_int_equal(w.batches[0][POBOX_B_DEAD], 1); /* moved by the trigger */
	assert_int_equal(w.batches[0][POBOX_B_SUBMITTED], 2);
	assert_int_equal(w.batches[0][POBOX_B_READY], 1);
	assert_int_equal(w.batches[0][POBOX_B_SENDING], 0);
	assert_int_equal(w.batches[1][POBOX_B_DONE], 1);
	assert_int_equal(w.batches[1][POBOX_B_DEAD], 1);
	assert_int_equal(w.bulk_calls_last_minute, 2); /* after 40500 */
	assert_int_equal(w.oldest_waiting_ms, 2500);
	assert_int_equal(w.enqueued, tu_query_int(db, "SELECT next_seq - 1 FROM tallies"));
	tu_outbox_close(dir, db, pb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tally_and_floor),
		cmocka_unit_test(test_watch_figures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
