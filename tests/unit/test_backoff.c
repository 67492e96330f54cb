/*
 * test_backoff.c - backoff bounds, determinism, jitter spread, Retry-After,
 * and the recovery ramp.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backoff.h"

static void test_bounds_all_attempts(void **state)
{
	(void)state;
	struct pobox_backoff b;
	pobox_backoff_init(&b, 500, 300000, 0, 42);
	for (unsigned a = 0; a <= 64; a++) {
		int64_t ceiling = pobox_backoff_ceiling_ms(&b, a);
		int64_t expect = a < 10 ? (int64_t)500 << a : 300000; /* 500 * 2^10 > cap */
		if (expect > 300000)
			expect = 300000;
		assert_int_equal(ceiling, expect);
		for (int i = 0; i < 200; i++) {
			int64_t d = pobox_backoff_delay_ms(&b, a, -1);
			assert_true(d >= 0);
			assert_true(d <= ceiling);
		}
	}
	/* Attempts far past 64 and a cap near INT64_MAX must not overflow. */
	pobox_backoff_init(&b, 3, INT64_MAX, 0, 1);
	assert_int_equal(pobox_backoff_ceiling_ms(&b, 0), 3);
	assert_int_equal(pobox_backoff_ceiling_ms(&b, 4), 48);
	assert_int_equal(pobox_backoff_ceiling_ms(&b, 1000000), INT64_MAX);
	assert_int_equal(pobox_backoff_ceiling_ms(&b, 0xffffffffu), INT64_MAX);
	for (int i = 0; i < 100; i++)
		assert_true(pobox_backoff_delay_ms(&b, 0xffffffffu, -1) >= 0);
}

static void test_floor(void **state)
{
	(void)state;
	struct pobox_backoff b;
	pobox_backoff_init(&b, 100, 10000, 1000, 7);
	for (unsigned a = 0; a <= 64; a++)
		for (int i = 0; i < 100; i++) {
			int64_t d = pobox_backoff_delay_ms(&b, a, -1);
			assert_true(d >= 1000);
			assert_true(d <= 10000);
		}
	/* Bad parameters are corrected, not trusted. */
	pobox_backoff_init(&b, -5, -10, -3, 0);
	assert_int_equal(b.base_ms, 1);
	assert_int_equal(b.cap_ms, 1);
	assert_int_equal(b.floor_ms, 0);
	pobox_backoff_init(&b, 10, 100, 5000, 0);
	assert_int_equal(b.floor_ms, 100);
	assert_int_equal(pobox_backoff_delay_ms(&b, 3, -1), 100);
}

static void test_deterministic(void **state)
{
	(void)state;
	struct pobox_backoff a, b, c;
	pobox_backoff_init(&a, 1000, 600000, 0, 12345);
	pobox_backoff_init(&b, 1000, 600000, 0, 12345);
	pobox_backoff_init(&c, 1000, 600000, 0, 12346);
	int differ = 0;
	for (unsigned i = 0; i < 100; i++) {
		int64_t x = pobox_backoff_delay_ms(&a, i % 12, -1);
		int64_t y = pobox_backoff_delay_ms(&b, i % 12, -1);
		int64_t z = pobox_backoff_delay_ms(&c, i % 12, -1);
		assert_int_equal(x, y);
		differ += x != z;
	}
	assert_true(differ > 90);
	/* splitmix64's published first output for seed 0. */
	struct pobox_backoff s;
	pobox_backoff_init(&s, 1, 1, 0, 0);
	assert_int_equal(pobox_backoff_rand(&s), UINT64_C(0xe220a8397b1dcdaf));
}

static void test_jitter_spread(void **state)
{
	(void)state;
	struct pobox_backoff b;
	pobox_backoff_init(&b, 1000, 1000000, 0, 99);
	/* Attempt 6: ceiling 64000.  10,000 draws into 10 buckets: each bucket
	 * expects 1,000; a generator stuck on a value or a range fails. */
	int buckets[10] = {0};
	int64_t lo = INT64_MAX, hi = -1;
	for (int i = 0; i < 10000; i++) {
		int64_t d = pobox_backoff_delay_ms(&b, 6, -1);
		assert_true(d >= 0 && d <= 64000);
		int k = (int)(d * 10 / 64001);
		buckets[k]++;
		if (d < lo)
			lo = d;
		if (d > hi)
			hi = d;
	}
	for (int k = 0; k < 10; k++) {
		assert_true(buckets[k] > 800);
		assert_true(buckets[k] < 1200);
	}
	assert_true(lo < 640);
	assert_true(hi > 63360);
}

static void test_retry_after_minimum(void **state)
{
	(void)state;
	struct pobox_backoff b;
	pobox_backoff_init(&b, 100, 5000, 0, 3);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(pobox_backoff_delay_ms(&b, 2, 7000), 7000); /* above cap: honoured */
		int64_t d = pobox_backoff_delay_ms(&b, 5, 2000);
		assert_true(d >= 2000 && d <= 3200);
		d = pobox_backoff_delay_ms(&b, 0, 0);
		assert_true(d >= 0 && d <= 100);
	}
}

static void test_ramp(void **state)
{
	(void)state;
	const int64_t t0 = 1700000000000;
	assert_int_equal(pobox_backoff_ramp(t0, t0, 60000, 100), 1);
	assert_int_equal(pobox_backoff_ramp(t0 + 30000, t0, 60000, 100), 50);
	assert_int_equal(pobox_backoff_ramp(t0 + 15000, t0, 60000, 101), 26);
	assert_int_equal(pobox_backoff_ramp(t0 + 59999, t0, 60000, 100), 99);
	assert_int_equal(pobox_backoff_ramp(t0 + 60000, t0, 60000, 100), 100);
	assert_int_equal(pobox_backoff_ramp(t0 + 999999, t0, 60000, 100), 100);
	assert_int_equal(pobox_backoff_ramp(t0 - 5, t0, 60000, 100), 1);
	/* Monotonic over the whole ramp. */
	int64_t prev = 0;
	for (int64_t t = t0; t <= t0 + 60000; t += 250) {
		int64_t v = pobox_backoff_ramp(t, t0, 60000, 1000000);
		assert_true(v >= prev);
		assert_true(v >= 1 && v <= 1000000);
		prev = v;
	}
	/* No ramp configured, or nothing to ramp. */
	assert_int_equal(pobox_backoff_ramp(t0, -1, 60000, 8), 8);
	assert_int_equal(pobox_backoff_ramp(t0, t0, 0, 8), 8);
	assert_int_equal(pobox_backoff_ramp(t0, t0, 60000, 1), 1);
	assert_int_equal(pobox_backoff_ramp(t0, t0, 60000, 0), 0);
	/* Extreme values do not overflow. */
	assert_int_equal(pobox_backoff_ramp(INT64_MAX, 0, 60000, INT64_MAX), INT64_MAX);
	int64_t v = pobox_backoff_ramp(30000, 0, 60000, INT64_MAX);
	assert_true(v > 1 && v < INT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounds_all_attempts),
		cmocka_unit_test(test_floor),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_jitter_spread),
		cmocka_unit_test(test_retry_after_minimum),
		cmocka_unit_test(test_ramp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
