/* SPDX-License-Identifier: Apache-2.0 */
/* lib/basic/memory-secure: sizes, wiping helpers, constant-time comparison, and the logging
 * helpers' return values (callers write `return log_error_errno(r, …)`). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"

static void test_secure_alloc(void **state)
{
	uint8_t *p = secure_alloc(33);

	assert_non_null(p);
	assert_int_equal(secure_size(p), 33);
	for (size_t i = 0; i < 33; i++)
		assert_int_equal(p[i], 0); /* zeroed */
	memset(p, 0xaa, 33);
	assert_null(secure_free(p));
	assert_null(secure_free(NULL));
	assert_int_equal(secure_size(NULL), 0);

	p = secure_alloc(0);
	assert_non_null(p);
	assert_int_equal(secure_size(p), 0);
	secure_free(p);
	assert_null(secure_alloc(SIZE_MAX));
	assert_null(secure_alloc(SIZE_MAX - 8));
}

static void test_secure_dup(void **state)
{
	_cleanup_secure_ char *s = secure_strdup("pin-1234");
	_cleanup_secure_ uint8_t *m = secure_memdup("\x01\x02\x00\x04", 4);
	_cleanup_secure_ uint8_t *z = secure_memdup(NULL, 0);

	assert_string_equal(s, "pin-1234");
	assert_int_equal(secure_size(s), 9);
	assert_memory_equal(m, "\x01\x02\x00\x04", 4);
	assert_int_equal(secure_size(m), 4);
	assert_non_null(z);
	assert_int_equal(secure_size(z), 0);
}

static void test_memory_erase(void **state)
{
	uint8_t b[16];
	char *s = strdup("secret");

	memset(b, 0x5a, sizeof(b));
	memory_erase(b, 8);
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(b[i], 0);
	for (size_t i = 8; i < 16; i++)
		assert_int_equal(b[i], 0x5a);
	memory_erase(NULL, 10);
	memory_erase(b, 0);
	assert_null(erase_and_free(s));
	assert_null(erase_and_free(NULL));
	{
		uint8_t k[32];
		memset(k, 1, sizeof(k));
		ERASE_ON_EXIT(k);
	}
}

static void test_memcmp_const(void **state)
{
	uint8_t a[64], b[64];

	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = b[i] = (uint8_t)i;
	assert_int_equal(memcmp_const(a, b, sizeof(a)), 0);
	assert_int_equal(memcmp_const(a, b, 0), 0);
	/* a difference in any byte and any bit is seen */
	for (size_t i = 0; i < sizeof(a); i++)
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			assert_int_not_equal(memcmp_const(a, b, sizeof(a)), 0);
			assert_int_not_equal(memcmp_const(b, a, sizeof(a)), 0);
			b[i] ^= (uint8_t)(1u << bit);
		}
	/* only the first n bytes count */
	b[63] = 0xff;
	assert_int_equal(memcmp_const(a, b, 63), 0);
}

static void test_log_returns(void **state)
{
	log_set_max_level(LOG_ERR);
	assert_int_equal(log_debug_errno(EIO, "hidden %s", "x"), -EIO);
	assert_int_equal(log_debug_errno(-EIO, "hidden"), -EIO);
	assert_int_equal(log_debug("plain"), 0);
	assert_int_equal(log_error_errno(ENOENT, "shown on stderr: %m"), -ENOENT);
	assert_int_equal(log_error_errno(-EPERM, "shown on stderr: %m"), -EPERM);
	errno = 42;
	(void)log_error("errno kept");
	assert_int_equal(errno, 42);
}

static void test_parse_environment(void **state)
{
	setenv("TRUSTPC_LOG_LEVEL", "debug", 1);
	log_parse_environment();
	assert_int_equal(log_get_max_level(), LOG_DEBUG);
	setenv("TRUSTPC_LOG_LEVEL", "warning", 1);
	log_parse_environment();
	assert_int_equal(log_get_max_level(), LOG_WARNING);
	setenv("TRUSTPC_LOG_LEVEL", "bogus", 1);
	log_parse_environment();
	assert_int_equal(log_get_max_level(), LOG_WARNING); /* unknown value: unchanged */
	unsetenv("TRUSTPC_LOG_LEVEL");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secure_alloc),
		cmocka_unit_test(test_secure_dup),
		cmocka_unit_test(test_memory_erase),
		cmocka_unit_test(test_memcmp_const),
		cmocka_unit_test(test_log_returns),
		cmocka_unit_test(test_parse_environment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
