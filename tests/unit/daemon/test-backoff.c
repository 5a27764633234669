/* SPDX-License-Identifier: Apache-2.0 */
/* The reconnect schedule: 1 s doubling to 5 min, ±25 % jitter, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent-backoff.h"
#include "crypto/crypto.h"

#define S UINT64_C(1000000)

static void test_base_schedule(void **state)
{
	static const uint64_t want[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300};
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(backoff_base(i), want[i] * S);
	/* Far beyond the cap: no shift overflow, still the cap. */
	assert_int_equal(backoff_base(63), 300 * S);
	assert_int_equal(backoff_base(64), 300 * S);
	assert_int_equal(backoff_base(UINT32_MAX), 300 * S);
}

static void test_jitter_bounds(void **state)
{
	/* The extremes of the random input map to the ends of [0.75, 1.25]. */
	assert_int_equal(backoff_jitter(4 * S, 0), 3 * S);
	assert_int_equal(backoff_jitter(4 * S, UINT32_C(1) << 31), 4 * S);
	uint64_t top = backoff_jitter(4 * S, UINT32_MAX);
	assert_true(top < 5 * S);
	assert_true(top > 5 * S - 10);
	assert_int_equal(backoff_jitter(300 * S, 0), 225 * S);
	assert_true(backoff_jitter(300 * S, UINT32_MAX) < 375 * S);
}

static void test_jitter_random(void **state)
{
	/* Real random input: every delay within ±25 % of its base, and the jitter really varies
	 * (a constant factor would bring a fleet back in lock step). */
	uint64_t lo = UINT64_MAX, hi = 0;
	for (unsigned i = 0; i < 20000; i++) {
		uint32_t rnd;
		assert_int_equal(crypto_random_bytes(&rnd, sizeof(rnd)), 0);
		uint64_t base = backoff_base(i % 12);
		uint64_t d = backoff_jitter(base, rnd);
		assert_true(d * 4 >= base * 3);
		assert_true(d * 4 <= base * 5);
		if (base == 300 * S) {
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
	}
	assert_true(lo < 240 * S); /* below -20 % seen */
	assert_true(hi > 360 * S); /* above +20 % seen */
}

static void test_next_and_reset(void **state)
{
	Backoff b = {0};
	/* rnd = 2^31 is the factor 1.0 exactly: the plain schedule. */
	for (unsigned i = 0; i < 9; i++)
		assert_int_equal(backoff_next(&b, UINT32_C(1) << 31), (UINT64_C(1) << i) * S);
	assert_int_equal(backoff_next(&b, UINT32_C(1) << 31), 300 * S);
	for (unsigned i = 0; i < 1000; i++)
		assert_true(backoff_next(&b, UINT32_MAX) < 375 * S);
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b, UINT32_C(1) << 31), 1 * S);
	assert_int_equal(backoff_next(&b, 0), 1500000); /* 2 s · 0.75 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_schedule),
		cmocka_unit_test(test_jitter_bounds),
		cmocka_unit_test(test_jitter_random),
		cmocka_unit_test(test_next_and_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
