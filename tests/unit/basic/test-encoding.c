/* SPDX-License-Identifier: Apache-2.0 */
/* lib/basic/encoding: strict decoders. Every parser of untrusted text must reject anything that is
 * not the one canonical form: two encodings of one value would let a signed or pinned value be
 * presented in a second spelling. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/encoding.h"
#include "basic/macro.h"

static void test_hex_roundtrip(void **state)
{
	const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
	_cleanup_free_ char *s = hex_encode(in, sizeof(in));
	_cleanup_free_ uint8_t *out = NULL;
	size_t n = 0;

	assert_non_null(s);
	assert_string_equal(s, "00017f80abff");
	assert_int_equal(hex_decode(s, strlen(s), &out, &n), 0);
	assert_int_equal(n, sizeof(in));
	assert_memory_equal(out, in, sizeof(in));
}

static void test_hex_upper_and_empty(void **state)
{
	_cleanup_free_ uint8_t *out = NULL, *empty = NULL;
	_cleanup_free_ char *e = hex_encode("", 0);
	size_t n = 99;

	assert_int_equal(hex_decode("ABcd", 4, &out, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0], 0xab);
	assert_int_equal(out[1], 0xcd);
	assert_string_equal(e, "");
	assert_int_equal(hex_decode("", 0, &empty, &n), 0);
	assert_int_equal(n, 0);
}

static void test_hex_rejects(void **state)
{
	static const char *bad[] = {"a", "abc", "0g", "g0", " 00", "00 ", "0x00", "-1", "zz", "0\n"};
	uint8_t *out = (uint8_t *)0x1;
	size_t n = 7;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		assert_int_equal(hex_decode(bad[i], strlen(bad[i]), &out, &n), -EINVAL);
		/* ret_* untouched on failure */
		assert_ptr_equal(out, (uint8_t *)0x1);
		assert_int_equal(n, 7);
	}
	/* An embedded NUL inside the given length is not a hex digit. */
	assert_int_equal(hex_decode("0\0", 2, &out, &n), -EINVAL);
}

static void test_hex_decode_exact(void **state)
{
	uint8_t b[4];

	assert_int_equal(hex_decode_exact("deadBEEF", b, sizeof(b)), 0);
	assert_memory_equal(b, "\xde\xad\xbe\xef", 4);
	assert_int_equal(hex_decode_exact("deadbee", b, sizeof(b)), -EINVAL);
	assert_int_equal(hex_decode_exact("deadbeef00", b, sizeof(b)), -EINVAL);
	assert_int_equal(hex_decode_exact("deadbeeg", b, sizeof(b)), -EINVAL);
	assert_int_equal(hex_decode_exact("", b, 0), 0);
}

static void check_b64(const char *plain, size_t n, const char *enc)
{
	_cleanup_free_ char *s = base64_encode(plain, n);
	_cleanup_free_ uint8_t *out = NULL;
	size_t m = 0;

	assert_non_null(s);
	assert_string_equal(s, enc);
	assert_int_equal(base64_decode(enc, strlen(enc), &out, &m), 0);
	assert_int_equal(m, n);
	assert_memory_equal(out, plain, n);
}

/* RFC 4648 section 10 test vectors. */
static void test_base64_rfc4648(void **state)
{
	check_b64("", 0, "");
	check_b64("f", 1, "Zg==");
	check_b64("fo", 2, "Zm8=");
	check_b64("foo", 3, "Zm9v");
	check_b64("foob", 4, "Zm9vYg==");
	check_b64("fooba", 5, "Zm9vYmE=");
	check_b64("foobar", 6, "Zm9vYmFy");
	check_b64("\xff\xfe\x00\x01", 4, "//4AAQ==");
}

static void test_base64_all_lengths(void **state)
{
	uint8_t in[64];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof(in); n++) {
		_cleanup_free_ char *s = base64_encode(in, n);
		_cleanup_free_ uint8_t *out = NULL;
		size_t m;
		assert_non_null(s);
		assert_int_equal(strlen(s), (n + 2) / 3 * 4);
		assert_int_equal(base64_decode(s, strlen(s), &out, &m), 0);
		assert_int_equal(m, n);
		assert_memory_equal(out, in, n);
	}
}

static void test_base64_rejects(void **state)
{
	static const char *bad[] = {
		"Zg",       /* missing padding */
		"Zg=",      /* short padding */
		"Zm9",      /* length not a multiple of 4 */
		"Zh==",     /* non-canonical: unused bits set ("Zg==" is canonical for "f") */
		"Zm9=",     /* non-canonical: unused bits set ("Zm8=" is canonical for "fo") */
		"Z===",     /* three padding characters */
		"====",     /* only padding */
		"Zg==Zg==", /* padding before the end */
		"Zm=v",     /* data after padding */
		"Zm9v\n",   /* whitespace */
		" Zm9v",
		"Zm 9v",
		"Zm9-",     /* base64url alphabet is not accepted */
		"Zm9_",
		"Zm9v!AAA",
	};
	uint8_t *out = NULL;
	size_t n = 0;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		int r = base64_decode(bad[i], strlen(bad[i]), &out, &n);
		if (r != -EINVAL)
			fail_msg("base64_decode(\"%s\") = %d, expected -EINVAL", bad[i], r);
		assert_null(out);
	}
	assert_int_equal(base64_decode("Zg\0=", 4, &out, &n), -EINVAL);
}

static void test_parse_uint64(void **state)
{
	uint64_t v = 0;

	assert_int_equal(parse_uint64("0", UINT64_MAX, &v), 0);
	assert_true(v == 0);
	assert_int_equal(parse_uint64("42", 100, &v), 0);
	assert_true(v == 42);
	assert_int_equal(parse_uint64("100", 100, &v), 0);
	assert_true(v == 100);
	assert_int_equal(parse_uint64("0x1f", UINT64_MAX, &v), 0);
	assert_true(v == 31);
	assert_int_equal(parse_uint64("0X1F", UINT64_MAX, &v), 0);
	assert_true(v == 31);
	assert_int_equal(parse_uint64("18446744073709551615", UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_uint64("0xffffffffffffffff", UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	/* "decimal or 0x-hex": a leading zero is decimal, never octal (strtoull base 0 would give 8). */
	assert_int_equal(parse_uint64("010", UINT64_MAX, &v), 0);
	assert_true(v == 10);
	assert_int_equal(parse_uint64("0x01500010", UINT64_MAX, &v), 0);
	assert_true(v == 0x01500010);
}

static void test_parse_uint64_rejects(void **state)
{
	static const char *inval[] = {
		"", "-", "-1", "+1", " 1", "\t1", "\n1", "1 ", "1\n", "1a", "0x", "0x-1", "0x+1", "0x 1",
		"0xg", "x1", "1.0", "1e3", "--1", "0b1", "١", /* Arabic-Indic digit one */
	};
	uint64_t v = 12345;

	for (size_t i = 0; i < ELEMENTSOF(inval); i++) {
		int r = parse_uint64(inval[i], UINT64_MAX, &v);
		if (r != -EINVAL)
			fail_msg("parse_uint64(\"%s\") = %d, expected -EINVAL", inval[i], r);
	}
	assert_int_equal(parse_uint64(NULL, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(parse_uint64("18446744073709551616", UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_uint64("0x10000000000000000", UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_uint64("99999999999999999999999", UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_uint64("101", 100, &v), -ERANGE);
	assert_int_equal(parse_uint64("0x100", 0xff, &v), -ERANGE);
	assert_int_equal(parse_uint64("1", 0, &v), -ERANGE);
	/* ret untouched on every failure */
	assert_true(v == 12345);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_roundtrip),
		cmocka_unit_test(test_hex_upper_and_empty),
		cmocka_unit_test(test_hex_rejects),
		cmocka_unit_test(test_hex_decode_exact),
		cmocka_unit_test(test_base64_rfc4648),
		cmocka_unit_test(test_base64_all_lengths),
		cmocka_unit_test(test_base64_rejects),
		cmocka_unit_test(test_parse_uint64),
		cmocka_unit_test(test_parse_uint64_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
