/*
 * test_store_fleet.c - the outbox's fleet tables (src/store/fleet.c): the
 * fleet state round-trips; units a dead process left taken count as used
 * at their grant's charge bucket; what is held counts only open grants of
 * this boot before their deadline; a grant's use and the window's history
 * add up per bucket.  Checked with the test's own queries.
 */
#include "outbox.h"
#include "store.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct fx {
	char *dir, *db;
	struct pobox *pb;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f || tu_outbox_open(&f->dir, &f->db, &f->pb) != 0)
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

static struct pobox_fleet_lease_row lease(int64_t id, int reserve, const char *boot, int64_t by)
{
	struct pobox_fleet_lease_row l;
	memset(&l, 0, sizeof l);
	l.id = id;
	l.reserve = reserve;
	snprintf(l.epoch, sizeof l.epoch, "e1");
	snprintf(l.boot_id, sizeof l.boot_id, "%s", boot);
	l.granted = 10;
	l.grant_coord_ms = 1000;
	l.sent_mono_ms = 500;
	l.life_ms = 2000;
	l.start_by_mono_ms = by;
	l.charge_k = 5000 + id;
	l.granted_at_ms = 1;
	return l;
}

static void state_round_trips(void **state)
{
	struct fx *f = *state;
	struct pobox_fleet_row r, back;
	int found = 1;
	assert_int_equal(pobox_store_fleet_get(f->pb->st, &r, &found), 0);
	assert_int_equal(found, 0);
	assert_int_equal(r.budget, -1);
	memset(&r, 0, sizeof r);
	snprintf(r.account, sizeof r.account, "chain");
	snprintf(r.host, sizeof r.host, "store-1");
	snprintf(r.incarnation, sizeof r.incarnation, "abc");
	snprintf(r.epoch, sizeof r.epoch, "e1");
	r.next_seq = 7;
	r.serial = 42;
	r.budget = 1000;
	r.margin = 5;
	r.window_ms = 60000;
	r.bucket_ms = 41;
	r.urgent_share = 0.25;
	r.spent = 300;
	r.free = 695;
	r.soon = 12;
	r.reachable = 1;
	r.requests = 9;
	assert_int_equal(pobox_store_fleet_put(f->pb->st, &r), 0);
	assert_int_equal(pobox_store_fleet_get(f->pb->st, &back, &found), 0);
	assert_int_equal(found, 1);
	assert_string_equal(back.account, "chain");
	assert_string_equal(back.epoch, "e1");
	assert_string_equal(back.reported_epoch, "");
	assert_int_equal(back.next_seq, 7);
	assert_int_equal(back.serial, 42);
	assert_int_equal(back.budget, 1000);
	assert_int_equal(back.bucket_ms, 41);
	assert_int_equal(back.soon, 12);
	assert_int_equal(back.requests, 9);
	assert_true(back.urgent_share > 0.24 && back.urgent_share < 0.26);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM fleet_state WHERE reported_epoch IS NULL"), 1);
}

static void dead_process_units_count_at_the_charge(void **state)
{
	struct fx *f = *state;
	struct pobox_fleet_lease_row a = lease(1, 0, "boot", 9999), b = lease(2, 0, "boot", 9999);
	int64_t units = -1;
	assert_int_equal(pobox_store_fleet_lease_add(f->pb->st, &a), 0);
	assert_int_equal(pobox_store_fleet_lease_add(f->pb->st, &b), 0);
	/* three taken from a, one settled as used at bucket 4100; two from b */
	assert_int_equal(pobox_store_fleet_lease_change(f->pb->st, 1, 3, 0), 0);
	assert_int_equal(pobox_store_fleet_lease_change(f->pb->st, 1, -1, 1), 0);
	assert_int_equal(pobox_store_fleet_use_add(f->pb->st, 1, 4100, 1), 0);
	assert_int_equal(pobox_store_fleet_usage_add(f->pb->st, 4100, 1), 0);
	assert_int_equal(pobox_store_fleet_lease_change(f->pb->st, 2, 2, 0), 0);
	assert_int_equal(pobox_store_fleet_recover(f->pb->st, &units), 0);
	assert_int_equal(units, 4);
	assert_int_equal(tu_query_int(f->db, "SELECT used FROM fleet_leases WHERE id = 1"), 3);
	assert_int_equal(tu_query_int(f->db, "SELECT reserved FROM fleet_leases WHERE id = 1"), 0);
	assert_int_equal(tu_query_int(f->db, "SELECT n FROM fleet_lease_use WHERE lease = 1 AND k = 5001"), 2);
	assert_int_equal(tu_query_int(f->db, "SELECT n FROM fleet_lease_use WHERE lease = 1 AND k = 4100"), 1);
	assert_int_equal(tu_query_int(f->db, "SELECT n FROM fleet_lease_use WHERE lease = 2 AND k = 5002"), 2);
	assert_int_equal(tu_query_int(f->db, "SELECT sum(n) FROM fleet_usage"), 5);
	/* nothing left to recover the second time */
	assert_int_equal(pobox_store_fleet_recover(f->pb->st, &units), 0);
	assert_int_equal(units, 0);
	assert_int_equal(tu_query_int(f->db, "SELECT sum(n) FROM fleet_usage"), 5);
}

static void held_counts_open_grants_of_this_boot(void **state)
{
	struct fx *f = *state;
	struct pobox_fleet_lease_row open_ = lease(1, 0, "boot", 9000), late = lease(2, 0, "boot", 4000),
	                             other = lease(3, 0, "old", 9000), res = lease(4, 1, "boot", 20000),
	                             shut = lease(5, 0, "boot", 9000);
	struct pobox_fleet_held h;
	assert_int_equal(pobox_store_fleet_lease_add(f->pb->st, &open_), 0);
	assert_int_equal(pobox_store_fleet_lease_add(f->pb->st, &late), 0);
	assert_int_equal(pobox_store_fleet_lease_add(f->pb->st, &other), 0);
	assert_int_equal(pobox_store_fleet_lease_add(f->pb->st, &res), 0);
	assert_int_equal(pobox_store_fleet_lease_add(f->pb->st, &shut), 0);
	assert_int_equal(pobox_store_fleet_lease_close(f->pb->st, 5), 0);
	assert_int_equal(pobox_store_fleet_lease_change(f->pb->st, 1, 2, 3), 0);
	assert_int_equal(pobox_store_fleet_held(f->pb->st, 5000, "boot", &h), 0);
	assert_int_equal(h.leases, 1);          /* not: past its deadline, another boot, closed */
	assert_int_equal(h.lease_left, 10 - 2 - 3);
	assert_int_equal(h.reserve_left, 10);
	assert_int_equal(h.reserve_granted, 10);
	assert_int_equal(h.lease_expires_mono_ms, 9000);
	assert_int_equal(h.reserve_expires_mono_ms, 20000);
	/* forgotten with its use */
	assert_int_equal(pobox_store_fleet_use_add(f->pb->st, 1, 4100, 3), 0);
	assert_int_equal(pobox_store_fleet_lease_drop(f->pb->st, 1), 0);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM fleet_leases WHERE id = 1"), 0);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM fleet_lease_use WHERE lease = 1"), 0);
}

static int sum_kn(void *ctx, int64_t k, int64_t n)
{
	int64_t *s = ctx;
	s[0] += n;
	s[1] = k;
	return 0;
}

static void history_adds_up_and_prunes(void **state)
{
	struct fx *f = *state;
	int64_t s[2] = {0, 0};
	assert_int_equal(pobox_store_fleet_usage_add(f->pb->st, 1000, 2), 0);
	assert_int_equal(pobox_store_fleet_usage_add(f->pb->st, 1000, 3), 0);
	assert_int_equal(pobox_store_fleet_usage_add(f->pb->st, 2000, 4), 0);
	assert_int_equal(pobox_store_fleet_history(f->pb->st, 999, sum_kn, s), 0);
	assert_int_equal(s[0], 9);
	assert_int_equal(s[1], 2000);
	assert_int_equal(pobox_store_fleet_usage_prune(f->pb->st, 1000), 0);
	s[0] = 0;
	assert_int_equal(pobox_store_fleet_history(f->pb->st, 0, sum_kn, s), 0);
	assert_int_equal(s[0], 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(state_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(dead_process_units_count_at_the_charge, setup, teardown),
		cmocka_unit_test_setup_teardown(held_counts_open_grants_of_this_boot, setup, teardown),
		cmocka_unit_test_setup_teardown(history_adds_up_and_prunes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
