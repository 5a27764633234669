/* SPDX-License-Identifier: Apache-2.0 */
/* lib/crypto P-256 keys (import/export in every encoding, refusal of other curves and algorithms),
 * ECDSA and its strict DER, ECDH. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic/encoding.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "test-keys.h"

/* The public point of P256_SEC1_WITH_PARAMS_PEM (openssl ec -pubout -outform DER). */
static const char P256_SPKI_HEX[] =
    "3059301306072a8648ce3d020106082a8648ce3d03010703420004abbab1c636dc84f2aefbaf7a9b25160f16009637"
    "bec397aaa58a7bb3da36ae184ec188681ea645dc7a5ada4a301f7f96419331e4a5fce93cfaeac0f60890012e";

static uint8_t *unhex(const char *s, size_t *n)
{
	uint8_t *b = NULL;
	assert_int_equal(hex_decode(s, strlen(s), &b, n), 0);
	return b;
}

static void assert_same_point(const EcKey *a, const EcKey *b)
{
	uint8_t pa[EC_P256_POINT_SIZE], pb[EC_P256_POINT_SIZE];
	assert_int_equal(ec_key_get_point(a, pa), 0);
	assert_int_equal(ec_key_get_point(b, pb), 0);
	assert_memory_equal(pa, pb, sizeof(pa));
}

static void assert_sign_verify(const EcKey *priv, const EcKey *pub)
{
	uint8_t h[SHA256_SIZE], sig[ECDSA_P256_RAW_SIG_SIZE];
	assert_int_equal(sha256("message", 7, h), 0);
	assert_int_equal(ecdsa_sign_raw(priv, h, sizeof(h), sig), 0);
	assert_int_equal(ecdsa_verify_raw(pub, h, sizeof(h), sig, sizeof(sig)), 0);
}

static void test_generate_export_import(void **state)
{
	_cleanup_ec_key_ EcKey *k = NULL, *priv = NULL, *pub = NULL, *spki = NULL, *pt = NULL, *xy = NULL;
	_cleanup_secure_ char *priv_pem = NULL;
	_cleanup_free_ char *pub_pem = NULL;
	_cleanup_free_ uint8_t *der = NULL;
	uint8_t point[EC_P256_POINT_SIZE], fp1[SHA256_SIZE], fp2[SHA256_SIZE], h[SHA256_SIZE];
	size_t der_n;

	assert_int_equal(ec_key_generate(&k), 0);
	assert_true(ec_key_has_private(k));

	assert_int_equal(ec_key_private_pem(k, &priv_pem), 0);
	assert_non_null(strstr(priv_pem, "-----BEGIN EC PRIVATE KEY-----\n"));
	assert_non_null(strstr(priv_pem, "-----END EC PRIVATE KEY-----\n"));
	assert_int_equal(ec_key_public_pem(k, &pub_pem), 0);
	assert_non_null(strstr(pub_pem, "-----BEGIN PUBLIC KEY-----\n"));
	assert_int_equal(ec_key_public_spki_der(k, &der, &der_n), 0);
	assert_int_equal(der_n, 91);

	assert_int_equal(ec_key_from_pem_or_der(priv_pem, strlen(priv_pem), &priv), 0);
	assert_true(ec_key_has_private(priv));
	assert_int_equal(ec_key_from_pem_or_der(pub_pem, strlen(pub_pem), &pub), 0);
	assert_false(ec_key_has_private(pub));
	assert_int_equal(ec_key_from_spki_der(der, der_n, &spki), 0);
	assert_int_equal(ec_key_get_point(k, point), 0);
	assert_int_equal(point[0], 0x04);
	assert_int_equal(ec_key_from_point(point, sizeof(point), &pt), 0);
	assert_int_equal(ec_key_from_xy(point + 1, point + 33, &xy), 0);
	assert_same_point(k, priv);
	assert_same_point(k, pub);
	assert_same_point(k, spki);
	assert_same_point(k, pt);
	assert_same_point(k, xy);

	/* The fingerprint is SHA-256 of the SPKI DER, whatever the key was loaded from. */
	assert_int_equal(ec_key_fingerprint(k, fp1), 0);
	assert_int_equal(sha256(der, der_n, h), 0);
	assert_memory_equal(fp1, h, sizeof(h));
	assert_int_equal(ec_key_fingerprint(pub, fp2), 0);
	assert_memory_equal(fp1, fp2, sizeof(fp1));

	/* The re-imported private key signs for the original public key and vice versa. */
	assert_sign_verify(priv, pub);
	assert_sign_verify(k, spki);

	/* A public key cannot sign nor export a private PEM. */
	{
		_cleanup_secure_ char *p = NULL;
		uint8_t sig[ECDSA_P256_RAW_SIG_SIZE];
		assert_int_equal(ec_key_private_pem(pub, &p), -EINVAL);
		assert_null(p);
		assert_int_equal(ecdsa_sign_raw(pub, h, sizeof(h), sig), -EINVAL);
	}

	/* Two generated keys differ. */
	{
		_cleanup_ec_key_ EcKey *k2 = NULL;
		uint8_t fp3[SHA256_SIZE];
		assert_int_equal(ec_key_generate(&k2), 0);
		assert_int_equal(ec_key_fingerprint(k2, fp3), 0);
		assert_memory_not_equal(fp1, fp3, sizeof(fp1));
	}
}

static void test_openssl_keys(void **state)
{
	_cleanup_ec_key_ EcKey *sec1 = NULL, *pkcs8 = NULL, *pub = NULL, *spki = NULL;
	_cleanup_free_ uint8_t *der = NULL;
	size_t der_n;

	/* `openssl ecparam -genkey` output starts with an EC PARAMETERS block. */
	assert_int_equal(
	    ec_key_from_pem_or_der(P256_SEC1_WITH_PARAMS_PEM, strlen(P256_SEC1_WITH_PARAMS_PEM), &sec1), 0);
	assert_int_equal(ec_key_from_pem_or_der(P256_PKCS8_PEM, strlen(P256_PKCS8_PEM), &pkcs8), 0);
	assert_int_equal(ec_key_from_pem_or_der(P256_PUBLIC_PEM, strlen(P256_PUBLIC_PEM), &pub), 0);
	der = unhex(P256_SPKI_HEX, &der_n);
	assert_int_equal(ec_key_from_pem_or_der(der, der_n, &spki), 0);
	assert_true(ec_key_has_private(sec1));
	assert_true(ec_key_has_private(pkcs8));
	assert_same_point(sec1, pkcs8);
	assert_same_point(sec1, pub);
	assert_same_point(sec1, spki);
	assert_sign_verify(pkcs8, pub);

	/* Our own export round-trips to the same DER openssl wrote. */
	{
		_cleanup_free_ uint8_t *mine = NULL;
		size_t mine_n;
		assert_int_equal(ec_key_public_spki_der(sec1, &mine, &mine_n), 0);
		assert_int_equal(mine_n, der_n);
		assert_memory_equal(mine, der, der_n);
	}
}

static void assert_refused(const char *what, const void *data, size_t n)
{
	EcKey *k = (EcKey *)0x1;

	int r = ec_key_from_pem_or_der(data, n, &k);
	if (r != -EINVAL)
		fail_msg("%s: expected -EINVAL, got %d", what, r);
	/* ret_* untouched on failure */
	assert_ptr_equal(k, (EcKey *)0x1);
}

static void test_refused_keys(void **state)
{
	static const struct {
		const char *name, *pem;
	} keys[] = {
	    {"P-384 private", P384_PRIVATE_PEM},
	    {"P-384 public", P384_PUBLIC_PEM},
	    {"RSA private", RSA_PRIVATE_PEM},
	    {"RSA public", RSA_PUBLIC_PEM},
	    {"secp256k1 private", SECP256K1_PRIVATE_PEM},
	    {"secp256k1 public", SECP256K1_PUBLIC_PEM},
	    {"encrypted PKCS#8", P256_ENCRYPTED_PKCS8_PEM},
	    {"P-256 public with explicit parameters", P256_EXPLICIT_PUBLIC_PEM},
	    {"P-256 compressed public", P256_COMPRESSED_PUBLIC_PEM},
	    /* mbedTLS 2.28 refuses OpenSSL 3's explicit-parameter SEC1 encoding (it carries a seed);
	     * we would not mind either way, but the refusal is what we ship. */
	    {"P-256 private with explicit parameters", P256_EXPLICIT_PRIVATE_PEM},
	    {"garbage PEM", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
	    {"unknown PEM", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
	    {"text", "hello world"},
	};

	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		assert_refused(keys[i].name, keys[i].pem, strlen(keys[i].pem));

	/* Embedded NUL, empty input, DER garbage, truncated SPKI. */
	{
		static const char with_nul[] = "-----BEGIN PUBLIC KEY-----\0\n";
		static const uint8_t garbage[] = {0x30, 0x03, 0x02, 0x01, 0x01};
		_cleanup_free_ uint8_t *der = NULL;
		size_t n;
		EcKey *k = NULL;

		assert_refused("embedded NUL", with_nul, sizeof(with_nul) - 1);
		assert_int_equal(ec_key_from_pem_or_der("", 0, &k), -EINVAL);
		assert_refused("DER garbage", garbage, sizeof(garbage));
		der = unhex(P256_SPKI_HEX, &n);
		for (size_t l = 0; l < n; l++)
			assert_refused("truncated SPKI", der, l);
	}
}

static void test_private_scalar(void **state)
{
	/* n - 1, the largest valid scalar, and n itself. */
	static const char n_minus_1[] = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550";
	static const char n_hex[] = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
	_cleanup_free_ uint8_t *a = NULL, *b = NULL;
	uint8_t zero[32] = {0}, one[33] = {0}, big[34] = {0};
	size_t an, bn;
	EcKey *k = NULL;

	a = unhex(n_minus_1, &an);
	b = unhex(n_hex, &bn);
	assert_int_equal(ec_key_from_private_scalar(a, an, &k), 0);
	k = ec_key_free(k);
	assert_null(k);
	assert_int_equal(ec_key_from_private_scalar(b, bn, &k), -EINVAL);
	assert_int_equal(ec_key_from_private_scalar(zero, sizeof(zero), &k), -EINVAL);
	one[32] = 1; /* 33 bytes with a leading zero: allowed */
	assert_int_equal(ec_key_from_private_scalar(one, sizeof(one), &k), 0);
	{
		/* d = 1 gives the generator. */
		static const char gx[] = "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296";
		uint8_t p[EC_P256_POINT_SIZE], x[32];
		assert_int_equal(ec_key_get_point(k, p), 0);
		assert_int_equal(hex_decode_exact(gx, x, sizeof(x)), 0);
		assert_memory_equal(p + 1, x, 32);
	}
	k = ec_key_free(k);
	big[33] = 1;
	assert_int_equal(ec_key_from_private_scalar(big, sizeof(big), &k), -EINVAL);
	assert_null(k);
}

static void test_invalid_points(void **state)
{
	_cleanup_ec_key_ EcKey *g = NULL;
	uint8_t p[EC_P256_POINT_SIZE];
	EcKey *k = NULL;
	uint8_t one = 1;

	assert_int_equal(ec_key_from_private_scalar(&one, 1, &g), 0);
	assert_int_equal(ec_key_get_point(g, p), 0);

	p[64] ^= 1; /* off the curve */
	assert_int_equal(ec_key_from_point(p, sizeof(p), &k), -EINVAL);
	p[64] ^= 1;
	p[0] = 0x02; /* compressed marker */
	assert_int_equal(ec_key_from_point(p, sizeof(p), &k), -EINVAL);
	p[0] = 0x04;
	assert_int_equal(ec_key_from_point(p, sizeof(p) - 1, &k), -EINVAL);
	memset(p + 1, 0, 64); /* (0, 0) */
	assert_int_equal(ec_key_from_point(p, sizeof(p), &k), -EINVAL);
	memset(p + 1, 0xff, 64); /* coordinates >= p */
	assert_int_equal(ec_key_from_point(p, sizeof(p), &k), -EINVAL);
	assert_int_equal(ec_key_from_xy(p + 1, p + 33, &k), -EINVAL);
	assert_null(k);
}

static void test_private_with_wrong_public(void **state)
{
	/* RFC 5915 layout as ec_key_private_pem writes it, with the public key of d = 2 under d = 1. */
	static const uint8_t head[] = {0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20};
	static const uint8_t mid[] = {0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
				      0x03, 0x01, 0x07, 0xa1, 0x44, 0x03, 0x42, 0x00};
	_cleanup_ec_key_ EcKey *k1 = NULL, *k2 = NULL, *ok = NULL;
	uint8_t der[121] = {0}, d1 = 1, d2 = 2;
	EcKey *k = NULL;

	assert_int_equal(ec_key_from_private_scalar(&d1, 1, &k1), 0);
	assert_int_equal(ec_key_from_private_scalar(&d2, 1, &k2), 0);
	memcpy(der, head, sizeof(head));
	der[7 + 31] = 1;
	memcpy(der + 39, mid, sizeof(mid));
	assert_int_equal(ec_key_get_point(k1, der + 56), 0);
	assert_int_equal(ec_key_from_pem_or_der(der, sizeof(der), &ok), 0);
	assert_same_point(ok, k1);

	assert_int_equal(ec_key_get_point(k2, der + 56), 0);
	assert_int_equal(ec_key_from_pem_or_der(der, sizeof(der), &k), -EINVAL);
	assert_null(k);
}

static void test_load_file(void **state)
{
	_cleanup_ec_key_ EcKey *k = NULL, *loaded = NULL;
	_cleanup_secure_ char *pem = NULL;
	char path[] = "/tmp/test-crypto-ec-XXXXXX";
	EcKey *none = NULL;
	int fd;

	assert_int_equal(ec_key_generate(&k), 0);
	assert_int_equal(ec_key_private_pem(k, &pem), 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
	close(fd);
	assert_int_equal(ec_key_load_file(path, &loaded), 0);
	assert_true(ec_key_has_private(loaded));
	assert_same_point(k, loaded);
	unlink(path);
	assert_int_equal(ec_key_load_file(path, &none), -ENOENT);
	assert_null(none);
}

static void test_ecdsa(void **state)
{
	_cleanup_ec_key_ EcKey *k = NULL, *other = NULL;
	uint8_t h[SHA256_SIZE], sig[ECDSA_P256_RAW_SIG_SIZE], sig2[ECDSA_P256_RAW_SIG_SIZE],
	    raw[ECDSA_P256_RAW_SIG_SIZE];
	uint8_t der[ECDSA_P256_DER_SIG_MAX], h48[48];
	size_t der_n;

	assert_int_equal(ec_key_generate(&k), 0);
	assert_int_equal(ec_key_generate(&other), 0);
	assert_int_equal(sha256("abc", 3, h), 0);

	assert_int_equal(ecdsa_sign_raw(k, h, sizeof(h), sig), 0);
	/* RFC 6979: the same message gives the same signature. */
	assert_int_equal(ecdsa_sign_raw(k, h, sizeof(h), sig2), 0);
	assert_memory_equal(sig, sig2, sizeof(sig));
	assert_int_equal(ecdsa_verify_raw(k, h, sizeof(h), sig, sizeof(sig)), 0);
	assert_int_equal(ecdsa_verify_raw(other, h, sizeof(h), sig, sizeof(sig)), -EBADMSG);
	assert_int_equal(ecdsa_verify_raw(k, h, sizeof(h), sig, sizeof(sig) - 1), -EBADMSG);
	h[0] ^= 1;
	assert_int_equal(ecdsa_verify_raw(k, h, sizeof(h), sig, sizeof(sig)), -EBADMSG);
	h[0] ^= 1;
	sig[63] ^= 1;
	assert_int_equal(ecdsa_verify_raw(k, h, sizeof(h), sig, sizeof(sig)), -EBADMSG);
	sig[63] ^= 1;
	assert_int_equal(ecdsa_verify_raw(k, h, 0, sig, sizeof(sig)), -EINVAL);

	/* DER round trip. */
	assert_int_equal(ecdsa_sig_raw_to_der(sig, der, sizeof(der), &der_n), 0);
	assert_true(der_n >= 8 && der_n <= ECDSA_P256_DER_SIG_MAX);
	assert_int_equal(ecdsa_verify_der(k, h, sizeof(h), der, der_n), 0);
	assert_int_equal(ecdsa_sig_der_to_raw(der, der_n, raw), 0);
	assert_memory_equal(raw, sig, sizeof(sig));
	assert_int_equal(ecdsa_sig_raw_to_der(sig, der, der_n - 1, &der_n), -ENOBUFS);

	/* Hashes longer than 32 bytes: the leftmost 256 bits count. */
	memset(h48, 0x5a, sizeof(h48));
	assert_int_equal(ecdsa_sign_raw(k, h48, sizeof(h48), sig), 0);
	assert_int_equal(ecdsa_verify_raw(k, h48, sizeof(h48), sig, sizeof(sig)), 0);
	assert_int_equal(ecdsa_verify_raw(k, h48, 32, sig, sizeof(sig)), 0);
}

/* Hand-built DER signatures around one valid (r, s): each deviation from minimal DER is refused. */
static void test_ecdsa_der_strict(void **state)
{
	static const struct {
		const char *name, *hex;
		int expect;
	} cases[] = {
	    /* r = 0x01, s = 0x7f */
	    {"minimal", "300602010102017f", 0},
	    {"zero r", "3006020100020101", 0},
	    {"high bit with 00", "300702020080020101", 0},
	    {"high bit without 00 (negative)", "3006020180020101", -EBADMSG},
	    {"one extra leading 00", "300702020001020101", -EBADMSG},
	    {"leading ff", "30070202ff80020101", -EBADMSG},
	    {"empty integer", "30050200020101", -EBADMSG},
	    {"long-form sequence length", "308106020101020101", -EBADMSG},
	    {"long-form integer length", "300702810101020101", -EBADMSG},
	    {"indefinite length", "3080020101020101 0000", -EBADMSG},
	    {"trailing byte after sequence", "300602010102010100", -EBADMSG},
	    {"trailing integer in sequence", "3009020101020101020101", -EBADMSG},
	    {"only one integer", "3003020101", -EBADMSG},
	    {"sequence length too long", "3007020101020101", -EBADMSG},
	    {"sequence length too short", "3005020101020101", -EBADMSG},
	    {"wrong outer tag", "3106020101020101", -EBADMSG},
	    {"wrong integer tag", "3006030101020101", -EBADMSG},
	    {"empty", "", -EBADMSG},
	    {"33-byte value",
	     "302702220100000000000000000000000000000000000000000000000000000000000000000000020101",
	     -EBADMSG},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *clean = strdup(cases[i].hex);
		_cleanup_free_ uint8_t *der = NULL;
		uint8_t raw[ECDSA_P256_RAW_SIG_SIZE];
		size_t n, j = 0;

		for (const char *c = cases[i].hex; *c; c++)
			if (*c != ' ')
				clean[j++] = *c;
		clean[j] = 0;
		der = unhex(clean, &n);
		int r = ecdsa_sig_der_to_raw(der, n, raw);
		if (r != cases[i].expect)
			fail_msg("%s: expected %d, got %d", cases[i].name, cases[i].expect, r);
		if (r == 0) {
			uint8_t back[ECDSA_P256_DER_SIG_MAX];
			size_t bn;
			assert_int_equal(ecdsa_sig_raw_to_der(raw, back, sizeof(back), &bn), 0);
			assert_int_equal(bn, n);
			assert_memory_equal(back, der, n);
		}
	}

	/* A valid signature made non-minimal by one extra 00 before r must not verify. */
	{
		_cleanup_ec_key_ EcKey *k = NULL;
		uint8_t h[SHA256_SIZE], sig[ECDSA_P256_RAW_SIG_SIZE], der[ECDSA_P256_DER_SIG_MAX + 1];
		size_t n;

		assert_int_equal(ec_key_generate(&k), 0);
		assert_int_equal(sha256("x", 1, h), 0);
		/* Find a signature whose r has its top bit clear (so it encodes without 00). */
		for (int tries = 0;; tries++) {
			assert_true(tries < 200);
			h[31] = (uint8_t)tries;
			assert_int_equal(ecdsa_sign_raw(k, h, sizeof(h), sig), 0);
			if (sig[0] > 0 && sig[0] < 0x80)
				break;
		}
		assert_int_equal(ecdsa_sig_raw_to_der(sig, der, sizeof(der), &n), 0);
		assert_int_equal(der[2], 0x02);
		assert_int_equal(der[3], 32);
		assert_int_equal(ecdsa_verify_der(k, h, sizeof(h), der, n), 0);
		memmove(der + 5, der + 4, n - 4);
		der[4] = 0x00;
		der[3] = 33;
		der[1]++;
		assert_int_equal(ecdsa_verify_der(k, h, sizeof(h), der, n + 1), -EBADMSG);
	}
}

static void test_ecdh(void **state)
{
	_cleanup_ec_key_ EcKey *a = NULL, *b = NULL, *a_pub = NULL;
	uint8_t ab[32], ba[32], p[EC_P256_POINT_SIZE];

	assert_int_equal(ec_key_generate(&a), 0);
	assert_int_equal(ec_key_generate(&b), 0);
	assert_int_equal(ec_key_get_point(a, p), 0);
	assert_int_equal(ec_key_from_point(p, sizeof(p), &a_pub), 0);
	assert_int_equal(ecdh_p256(a, b, ab), 0);
	assert_int_equal(ecdh_p256(b, a_pub, ba), 0);
	assert_memory_equal(ab, ba, sizeof(ab));
	/* The public-only key cannot be the private side. */
	assert_int_equal(ecdh_p256(a_pub, b, ab), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_generate_export_import),
	    cmocka_unit_test(test_openssl_keys),
	    cmocka_unit_test(test_refused_keys),
	    cmocka_unit_test(test_private_scalar),
	    cmocka_unit_test(test_invalid_points),
	    cmocka_unit_test(test_private_with_wrong_public),
	    cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_ecdsa),
	    cmocka_unit_test(test_ecdsa_der_strict),
	    cmocka_unit_test(test_ecdh),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
