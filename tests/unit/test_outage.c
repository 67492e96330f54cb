/*
 * test_outage.c - an offline lane's probe schedule and what it says: the
 * delay grows from backoff_base to backoff_cap whatever the attempts, a
 * day offline costs a bounded number of probes and log lines, and the
 * network is found again within backoff_cap of its return.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "outage.h"

static void test_start_and_end(void **state)
{
	(void)state;
	struct pobox_outage o;
	pobox_outage_init(&o, "bulk", 1000, 300000, 7);
	assert_false(pobox_outage_down(&o));
	assert_int_equal(pobox_outage_ok(&o, 5), POBOX_OUTAGE_NONE);
	assert_int_equal(pobox_outage_failed(&o, 1000, "refused"), POBOX_OUTAGE_START);
	assert_true(pobox_outage_down(&o));
	assert_string_equal(o.reason, "refused");
	assert_true(o.next_probe_ms >= 1000 && o.next_probe_ms <= 2000);
	assert_int_equal(pobox_outage_failed(&o, 2000, "other text"), POBOX_OUTAGE_NONE);
	assert_string_equal(o.reason, "refused"); /* the first failure's */
	assert_int_equal(o.probes, 2);
	assert_int_equal(pobox_outage_ok(&o, 9000), POBOX_OUTAGE_END);
	assert_int_equal(o.ended_down_ms, 8000);
	assert_false(pobox_outage_down(&o));
	assert_int_equal(pobox_outage_ok(&o, 9500), POBOX_OUTAGE_NONE);
	/* a new outage starts afresh: the first probe soon again */
	assert_int_equal(pobox_outage_failed(&o, 10000, NULL), POBOX_OUTAGE_START);
	assert_string_equal(o.reason, "unreachable");
	assert_int_equal(o.probes, 1);
	assert_true(o.next_probe_ms <= 11000);
}

/* The delay after k failed probes is at most min(cap, base * 2^k): it
 * grows although no attempt is ever counted, and never passes the cap. */
static void test_delay_grows_to_cap(void **state)
{
	(void)state;
	struct pobox_outage o;
	int64_t now = 0, max_late = 0;
	pobox_outage_init(&o, "single", 1000, 300000, 11);
	for (int k = 0; k < 200; k++) {
		pobox_outage_failed(&o, now, "refused");
		int64_t d = o.next_probe_ms - now;
		int64_t ceiling = k < 9 ? (int64_t)1000 << k : 300000;
		if (ceiling > 300000)
			ceiling = 300000;
		assert_true(d >= 0 && d <= ceiling);
		if (k >= 20 && d > max_late)
			max_late = d;
		now = o.next_probe_ms;
	}
	/* full jitter over the capped ceiling: late delays spread up to it */
	assert_true(max_late > 200000);
}

/* A day offline: one START, a SUMMARY every ten minutes, a bounded number
 * of probes, and no gap between probes longer than the cap. */
static void test_a_day_offline(void **state)
{
	(void)state;
	struct pobox_outage o;
	int64_t now = 1000, start = 1000, gap = 0, probes = 0;
	int starts = 0, summaries = 0;
	pobox_outage_init(&o, "bulk", 1000, 300000, 3);
	while (now - start < 86400000) {
		enum pobox_outage_event ev = pobox_outage_failed(&o, now, "refused");
		starts += ev == POBOX_OUTAGE_START;
		summaries += ev == POBOX_OUTAGE_SUMMARY;
		assert_true(ev != POBOX_OUTAGE_END);
		probes++;
		if (o.next_probe_ms - now > gap)
			gap = o.next_probe_ms - now;
		now = o.next_probe_ms;
	}
	assert_int_equal(starts, 1);
	/* the first probe after each ten minutes: every 10 to 15 minutes */
	assert_true(summaries >= 96 && summaries <= 144);
	assert_true(gap <= 300000);
	/* about 86400 s / 150 s on average once capped */
	assert_true(probes > 300 && probes < 1500);
	print_message("a day offline: %lld probes, %d summaries, longest gap %llds\n",
	              (long long)probes, summaries, (long long)(gap / 1000));
	assert_int_equal(pobox_outage_ok(&o, now), POBOX_OUTAGE_END);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_and_end),
		cmocka_unit_test(test_delay_grows_to_cap),
		cmocka_unit_test(test_a_day_offline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
