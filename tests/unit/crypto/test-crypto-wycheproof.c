/* SPDX-License-Identifier: Apache-2.0 */
/* lib/crypto against Project Wycheproof: every case of every file must come out as the file says. */
#include <errno.h>

#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "wycheproof-util.h"

/* The group's key, imported three ways; all must agree. */
static EcKey *group_key(json_t *g)
{
	json_t *pk = json_object_get(g, "publicKey");
	_cleanup_free_ uint8_t *point = NULL, *der = NULL;
	EcKey *k = NULL, *k_der = NULL, *k_pem = NULL;
	uint8_t p1[EC_P256_POINT_SIZE], p2[EC_P256_POINT_SIZE], p3[EC_P256_POINT_SIZE];
	const char *pem = json_string_value(json_object_get(g, "publicKeyPem"));
	size_t n, der_n;

	assert_string_equal(json_string_value(json_object_get(pk, "curve")), "secp256r1");
	point = vector_hex(pk, "uncompressed", &n);
	der = vector_hex(g, "publicKeyDer", &der_n);
	assert_int_equal(ec_key_from_point(point, n, &k), 0);
	assert_int_equal(ec_key_from_spki_der(der, der_n, &k_der), 0);
	assert_non_null(pem);
	assert_int_equal(ec_key_from_pem_or_der(pem, strlen(pem), &k_pem), 0);
	assert_int_equal(ec_key_get_point(k, p1), 0);
	assert_int_equal(ec_key_get_point(k_der, p2), 0);
	assert_int_equal(ec_key_get_point(k_pem, p3), 0);
	assert_memory_equal(p1, point, sizeof(p1));
	assert_memory_equal(p1, p2, sizeof(p1));
	assert_memory_equal(p1, p3, sizeof(p1));
	assert_false(ec_key_has_private(k));
	ec_key_free(k_der);
	ec_key_free(k_pem);
	return k;
}

static void test_ecdsa_p1363(void **state)
{
	json_t *file = vectors_load("ecdsa_secp256r1_sha256_p1363_test.json"), *g, *t;
	size_t gi, ti;
	VectorCounts c = {.name = "ecdsa p1363"};

	json_array_foreach (json_object_get(file, "testGroups"), gi, g) {
		_cleanup_ec_key_ EcKey *k = group_key(g);
		assert_string_equal(json_string_value(json_object_get(g, "sha")), "SHA-256");

		json_array_foreach (json_object_get(g, "tests"), ti, t) {
			_cleanup_free_ uint8_t *msg = NULL, *sig = NULL;
			uint8_t h[SHA256_SIZE];
			size_t msg_n, sig_n;
			int r;

			msg = vector_hex(t, "msg", &msg_n);
			sig = vector_hex(t, "sig", &sig_n);
			assert_int_equal(sha256(msg, msg_n, h), 0);
			r = ecdsa_verify_raw(k, h, sizeof(h), sig, sig_n);
			if (r < 0 && r != -EBADMSG)
				vector_fail(&c, t, "verification failed with an errno other than EBADMSG");
			else
				vector_record(&c, t, r == 0);
		}
	}
	vector_summary(&c, file);
	json_decref(file);
}

static void test_ecdsa_der(void **state)
{
	json_t *file = vectors_load("ecdsa_secp256r1_sha256_test.json"), *g, *t;
	size_t gi, ti;
	VectorCounts c = {.name = "ecdsa der"};
	unsigned roundtrips = 0;

	json_array_foreach (json_object_get(file, "testGroups"), gi, g) {
		_cleanup_ec_key_ EcKey *k = group_key(g);
		assert_string_equal(json_string_value(json_object_get(g, "sha")), "SHA-256");

		json_array_foreach (json_object_get(g, "tests"), ti, t) {
			_cleanup_free_ uint8_t *msg = NULL, *sig = NULL;
			uint8_t h[SHA256_SIZE], raw[ECDSA_P256_RAW_SIG_SIZE], der[ECDSA_P256_DER_SIG_MAX];
			size_t msg_n, sig_n, der_n;
			int r;

			msg = vector_hex(t, "msg", &msg_n);
			sig = vector_hex(t, "sig", &sig_n);
			assert_int_equal(sha256(msg, msg_n, h), 0);
			r = ecdsa_verify_der(k, h, sizeof(h), sig, sig_n);
			if (r < 0 && r != -EBADMSG) {
				vector_fail(&c, t, "verification failed with an errno other than EBADMSG");
				continue;
			}
			if (r == 0) {
				/* Strict DER has one encoding per value: raw -> DER must give back the
				 * input. */
				if (ecdsa_sig_der_to_raw(sig, sig_n, raw) < 0 ||
				    ecdsa_sig_raw_to_der(raw, der, sizeof(der), &der_n) < 0 ||
				    der_n != sig_n || memcmp(der, sig, sig_n) != 0 ||
				    ecdsa_verify_raw(k, h, sizeof(h), raw, sizeof(raw)) < 0) {
					vector_fail(&c, t, "DER/raw round trip differs");
					continue;
				}
				roundtrips++;
			}
			vector_record(&c, t, r == 0);
		}
	}
	printf("ecdsa der: %u DER -> raw -> DER round trips identical\n", roundtrips);
	assert_true(roundtrips > 0);
	vector_summary(&c, file);
	json_decref(file);
}

static void test_ecdh(void **state)
{
	json_t *file = vectors_load("ecdh_secp256r1_test.json"), *g, *t;
	size_t gi, ti;
	VectorCounts c = {.name = "ecdh"};

	json_array_foreach (json_object_get(file, "testGroups"), gi, g) {
		assert_string_equal(json_string_value(json_object_get(g, "curve")), "secp256r1");
		assert_string_equal(json_string_value(json_object_get(g, "encoding")), "asn");

		json_array_foreach (json_object_get(g, "tests"), ti, t) {
			_cleanup_free_ uint8_t *pub = NULL, *priv = NULL, *shared = NULL;
			_cleanup_ec_key_ EcKey *kpriv = NULL, *kpub = NULL;
			uint8_t out[32];
			size_t pub_n, priv_n, shared_n;
			int r;

			pub = vector_hex(t, "public", &pub_n);
			priv = vector_hex(t, "private", &priv_n);
			shared = vector_hex(t, "shared", &shared_n);
			/* The private scalars are all valid; only the peer key is under test. */
			assert_int_equal(ec_key_from_private_scalar(priv, priv_n, &kpriv), 0);

			r = ec_key_from_spki_der(pub, pub_n, &kpub);
			if (r < 0 && r != -EINVAL) {
				vector_fail(&c, t, "import failed with an errno other than EINVAL");
				continue;
			}
			if (r == 0) {
				r = ecdh_p256(kpriv, kpub, out);
				if (r < 0 && r != -EBADMSG) {
					vector_fail(&c, t, "ECDH failed with an errno other than EBADMSG");
					continue;
				}
				if (r == 0 &&
				    (shared_n != sizeof(out) || memcmp(out, shared, sizeof(out)) != 0)) {
					vector_fail(&c, t, "wrong shared secret");
					continue;
				}
			}
			vector_record(&c, t, r == 0);
		}
	}
	vector_summary(&c, file);
	json_decref(file);
}

static void test_hkdf(void **state)
{
	json_t *file = vectors_load("hkdf_sha256_test.json"), *g, *t;
	size_t gi, ti;
	VectorCounts c = {.name = "hkdf-sha256"};

	json_array_foreach (json_object_get(file, "testGroups"), gi, g) {
		json_array_foreach (json_object_get(g, "tests"), ti, t) {
			_cleanup_free_ uint8_t *ikm = NULL, *salt = NULL, *info = NULL, *okm = NULL,
					       *out = NULL;
			size_t ikm_n, salt_n, info_n, okm_n, size;
			int r;

			ikm = vector_hex(t, "ikm", &ikm_n);
			salt = vector_hex(t, "salt", &salt_n);
			info = vector_hex(t, "info", &info_n);
			okm = vector_hex(t, "okm", &okm_n);
			size = (size_t)json_integer_value(json_object_get(t, "size"));
			out = calloc(1, size + 1);
			assert_non_null(out);

			r = hkdf_sha256(salt, salt_n, ikm, ikm_n, info, info_n, out, size);
			if (r < 0 && r != -EINVAL) {
				vector_fail(&c, t, "failed with an errno other than EINVAL");
				continue;
			}
			if (r == 0 && (okm_n != size || memcmp(out, okm, size) != 0)) {
				vector_fail(&c, t, "wrong output");
				continue;
			}
			vector_record(&c, t, r == 0);
		}
	}
	vector_summary(&c, file);
	json_decref(file);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* SP 800-38D truncation: a shorter tag is the prefix of the full one, both ways. */
static bool gcm_truncated_tags_ok(const AeadParams *full, const uint8_t *msg, const uint8_t *ct, size_t n,
				  const uint8_t *tag)
{
	static const size_t lens[] = {4, 8, 12, 13, 14, 15};
	_cleanup_free_ uint8_t *buf = malloc(n + 1);

	for (size_t i = 0; i < ELEMENTSOF(lens); i++) {
		AeadParams p = *full;
		uint8_t t[16];

		p.tag_len = lens[i];
		if (aes_gcm_encrypt(&p, msg, n, buf, t) < 0 || memcmp(buf, ct, n) != 0 ||
		    memcmp(t, tag, lens[i]) != 0)
			return false;
		if (aes_gcm_decrypt(&p, ct, n, tag, buf) < 0 || memcmp(buf, msg, n) != 0)
			return false;
	}
	return true;
}

static void test_aes_gcm(void **state)
{
	json_t *file = vectors_load("aes_gcm_test.json"), *g, *t;
	size_t gi, ti;
	VectorCounts c = {.name = "aes-gcm"};
	unsigned truncated = 0;

	json_array_foreach (json_object_get(file, "testGroups"), gi, g) {
		json_array_foreach (json_object_get(g, "tests"), ti, t) {
			_cleanup_free_ uint8_t *key = NULL, *iv = NULL, *aad = NULL, *msg = NULL, *ct = NULL,
					       *tag = NULL, *out = NULL;
			size_t key_n, iv_n, aad_n, msg_n, ct_n, tag_n;
			uint8_t otag[16];
			bool enc_ok, dec_ok;
			AeadParams p;
			int re, rd;

			key = vector_hex(t, "key", &key_n);
			iv = vector_hex(t, "iv", &iv_n);
			aad = vector_hex(t, "aad", &aad_n);
			msg = vector_hex(t, "msg", &msg_n);
			ct = vector_hex(t, "ct", &ct_n);
			tag = vector_hex(t, "tag", &tag_n);
			assert_int_equal(msg_n, ct_n);
			assert_true(tag_n <= sizeof(otag));
			out = calloc(1, ct_n + 1);
			assert_non_null(out);

			p = (AeadParams){.key = key,
					 .key_len = key_n,
					 .iv = iv,
					 .iv_len = iv_n,
					 .aad = aad,
					 .aad_len = aad_n,
					 .tag_len = tag_n};

			re = aes_gcm_encrypt(&p, msg, msg_n, out, otag);
			enc_ok = re == 0 && memcmp(out, ct, ct_n) == 0 && memcmp(otag, tag, tag_n) == 0;
			memset(out, 0xaa, ct_n);
			rd = aes_gcm_decrypt(&p, ct, ct_n, tag, out);
			dec_ok = rd == 0 && memcmp(out, msg, msg_n) == 0;

			if ((re < 0 && re != -EINVAL) || (rd < 0 && rd != -EINVAL && rd != -EBADMSG)) {
				vector_fail(&c, t, "unexpected errno");
				continue;
			}
			if (rd == -EBADMSG && !all_zero(out, ct_n)) {
				vector_fail(&c, t, "plaintext not wiped after a tag mismatch");
				continue;
			}
			/* Encryption must be refused exactly when the parameters are (zero-length IV);
			 * a modified tag only shows on decryption. */
			if ((re == -EINVAL) != (rd == -EINVAL)) {
				vector_fail(&c, t,
					    "encryption and decryption disagree about the parameters");
				continue;
			}
			if (vector_result(t) == RESULT_VALID) {
				if (!enc_ok || !dec_ok) {
					vector_fail(&c, t,
						    enc_ok ? "decryption failed" : "encryption differs");
					continue;
				}
				if (tag_n == 16) {
					if (!gcm_truncated_tags_ok(&p, msg, ct, ct_n, tag)) {
						vector_fail(&c, t, "truncated tag handling");
						continue;
					}
					truncated++;
				}
			}
			vector_record(&c, t, dec_ok);
		}
	}
	printf("aes-gcm: %u valid cases also checked with tags of 4, 8, 12..15 bytes\n", truncated);
	assert_true(truncated > 0);
	vector_summary(&c, file);
	json_decref(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ecdsa_p1363), cmocka_unit_test(test_ecdsa_der),
	    cmocka_unit_test(test_ecdh),	cmocka_unit_test(test_hkdf),
	    cmocka_unit_test(test_aes_gcm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
