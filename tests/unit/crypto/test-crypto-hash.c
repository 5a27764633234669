/* SPDX-License-Identifier: Apache-2.0 */
/* lib/crypto SHA-256, HMAC, HKDF limits, randomness, and the AES-GCM parameter checks (the
 * Wycheproof test covers the arithmetic). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/encoding.h"
#include "basic/macro.h"
#include "crypto/crypto.h"

static void assert_hex(const uint8_t *b, size_t n, const char *hex)
{
	char *s = hex_encode(b, n);
	assert_non_null(s);
	assert_string_equal(s, hex);
	free(s);
}

static void test_sha256(void **state)
{
	uint8_t h[SHA256_SIZE], h2[SHA256_SIZE];

	/* FIPS 180-2 appendix B.1 and the empty string. */
	assert_int_equal(sha256("abc", 3, h), 0);
	assert_hex(h, sizeof(h), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(sha256(NULL, 0, h), 0);
	assert_hex(h, sizeof(h), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(sha256(NULL, 1, h), -EINVAL);

	assert_int_equal(sha256_many(h2, "a", (size_t)1, "", (size_t)0, "bc", (size_t)2, NULL), 0);
	assert_int_equal(sha256("abc", 3, h), 0);
	assert_memory_equal(h, h2, sizeof(h));
	assert_int_equal(sha256_many(h2, NULL), 0);
	assert_hex(h2, sizeof(h2), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_hmac(void **state)
{
	uint8_t mac[SHA256_SIZE], key[131];

	/* RFC 4231 test cases 2 and 6 (key longer than a block). */
	assert_int_equal(hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), 0);
	assert_hex(mac, sizeof(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	memset(key, 0xaa, sizeof(key));
	assert_int_equal(
	    hmac_sha256(key, sizeof(key), "Test Using Larger Than Block-Size Key - Hash Key First", 54, mac),
	    0);
	assert_hex(mac, sizeof(mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_hkdf_limits(void **state)
{
	static uint8_t out[255 * 32 + 1];

	assert_int_equal(hkdf_sha256(NULL, 0, "k", 1, NULL, 0, out, 255 * 32), 0);
	assert_int_equal(hkdf_sha256(NULL, 0, "k", 1, NULL, 0, out, 255 * 32 + 1), -EINVAL);
	assert_int_equal(hkdf_sha256(NULL, 0, "k", 1, NULL, 0, out, 0), 0);
	assert_int_equal(hkdf_sha256(NULL, 3, "k", 1, NULL, 0, out, 32), -EINVAL);
	/* salt NULL equals HashLen zero bytes (RFC 5869 section 2.2). */
	{
		uint8_t a[32], b[32], zeros[32] = {0};
		assert_int_equal(hkdf_sha256(NULL, 0, "ikm", 3, "i", 1, a, sizeof(a)), 0);
		assert_int_equal(hkdf_sha256(zeros, sizeof(zeros), "ikm", 3, "i", 1, b, sizeof(b)), 0);
		assert_memory_equal(a, b, sizeof(a));
	}
}

static void test_random(void **state)
{
	uint8_t a[1000] = {0}, b[1000] = {0}, zero[1000] = {0};

	assert_int_equal(crypto_random_bytes(a, sizeof(a)), 0);
	assert_int_equal(crypto_rng(NULL, b, sizeof(b)), 0);
	assert_memory_not_equal(a, zero, sizeof(a));
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(crypto_random_bytes(NULL, 0), 0);
}

static void test_gcm_parameters(void **state)
{
	uint8_t key[32] = {1}, iv[12] = {2}, pt[40], ct[40], buf[40], tag[16];
	AeadParams p = {
	    .key = key, .key_len = 32, .iv = iv, .iv_len = 12, .aad = "aad", .aad_len = 3, .tag_len = 16};
	static const size_t bad_tags[] = {0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 17, 32};
	static const size_t bad_keys[] = {0, 8, 15, 17, 31, 33, 64};

	memset(pt, 'x', sizeof(pt));
	for (size_t i = 0; i < ELEMENTSOF(bad_tags); i++) {
		AeadParams q = p;
		q.tag_len = bad_tags[i];
		assert_int_equal(aes_gcm_encrypt(&q, pt, sizeof(pt), ct, tag), -EINVAL);
		assert_int_equal(aes_gcm_decrypt(&q, ct, sizeof(ct), tag, buf), -EINVAL);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad_keys); i++) {
		AeadParams q = p;
		q.key_len = bad_keys[i];
		assert_int_equal(aes_gcm_encrypt(&q, pt, sizeof(pt), ct, tag), -EINVAL);
	}
	{
		AeadParams q = p;
		q.iv_len = 0;
		assert_int_equal(aes_gcm_encrypt(&q, pt, sizeof(pt), ct, tag), -EINVAL);
		q = p;
		q.aad = NULL;
		assert_int_equal(aes_gcm_encrypt(&q, pt, sizeof(pt), ct, tag), -EINVAL);
	}

	/* In place, both directions; empty plaintext. */
	memcpy(buf, pt, sizeof(pt));
	assert_int_equal(aes_gcm_encrypt(&p, buf, sizeof(buf), buf, tag), 0);
	assert_memory_not_equal(buf, pt, sizeof(pt));
	memcpy(ct, buf, sizeof(ct));
	assert_int_equal(aes_gcm_decrypt(&p, buf, sizeof(buf), tag, buf), 0);
	assert_memory_equal(buf, pt, sizeof(pt));
	assert_int_equal(aes_gcm_encrypt(&p, NULL, 0, NULL, tag), 0);
	assert_int_equal(aes_gcm_decrypt(&p, NULL, 0, tag, NULL), 0);

	/* Wrong AAD: -EBADMSG, and the output is wiped. */
	{
		AeadParams q = p;
		uint8_t zero[40] = {0};
		assert_int_equal(aes_gcm_encrypt(&p, pt, sizeof(pt), ct, tag), 0);
		q.aad = "aae";
		memset(buf, 0x55, sizeof(buf));
		assert_int_equal(aes_gcm_decrypt(&q, ct, sizeof(ct), tag, buf), -EBADMSG);
		assert_memory_equal(buf, zero, sizeof(buf));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256),	   cmocka_unit_test(test_hmac),
	    cmocka_unit_test(test_hkdf_limits),	   cmocka_unit_test(test_random),
	    cmocka_unit_test(test_gcm_parameters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
