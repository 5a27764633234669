/* SPDX-License-Identifier: Apache-2.0 */
/* lib/tpm2 software side: policy digests, names, parsers and the signed policy file. The TPM
 * side (that the TPM computes the same digests and enforces them) is test-tpm2-swtpm.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/encoding.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-policy-file.h"
#include "tpm2/tpm2.h"

static Tpm2PolicyParams base_params(void)
{
	Tpm2PolicyParams p = {
		.pcr_mask = (1u << 7) | (1u << 11) | (1u << 15),
		.nv_index = TPM2_LOCK_COUNTER_NV_INDEX,
		.epoch = 5,
	};
	memset(p.pcr_values[7], 0x77, 32);
	memset(p.pcr_values[11], 0x11, 32);
	return p;
}

static void test_pcr_mask_parse(void **state)
{
	uint32_t m;
	assert_int_equal(pcr_mask_parse("7,11", &m), 0);
	assert_int_equal(m, (1u << 7) | (1u << 11));
	assert_int_equal(pcr_mask_parse("0", &m), 0);
	assert_int_equal(m, 1u);
	assert_int_equal(pcr_mask_parse("23", &m), 0);
	const char *bad[] = {"", "7,", ",7", "24", "15", "7,,11", "a", "7 ,11", "-1", "0x7", "1234"};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_int_equal(pcr_mask_parse(bad[i], &m), -EINVAL);
}

static void test_device_id_parse(void **state)
{
	uint8_t id[DEVICE_ID_SIZE];
	assert_int_equal(device_id_parse("00112233445566778899aabbccddeeff", id), 0);
	assert_int_equal(id[15], 0xff);
	assert_int_equal(device_id_parse("00112233445566778899AABBCCDDEEFF", id), -EINVAL); /* one id, one form */
	assert_int_equal(device_id_parse("00112233445566778899aabbccddeef", id), -EINVAL);
	assert_int_equal(device_id_parse("00112233445566778899aabbccddeeff00", id), -EINVAL);
	assert_int_equal(device_id_parse("g0112233445566778899aabbccddeeff", id), -EINVAL);
}

/* The digest must change with every field it protects. */
static void test_approved_digest_binds_fields(void **state)
{
	Tpm2PolicyParams p = base_params(), q;
	uint8_t d0[32], d[32];

	assert_int_equal(tpm2_policy_approved_digest(&p, d0), 0);
	assert_int_equal(tpm2_policy_approved_digest(&p, d), 0);
	assert_memory_equal(d0, d, 32); /* deterministic */

	q = p, q.epoch = 6;
	assert_int_equal(tpm2_policy_approved_digest(&q, d), 0);
	assert_memory_not_equal(d0, d, 32);
	q = p, q.pcr_values[7][0] ^= 1;
	assert_int_equal(tpm2_policy_approved_digest(&q, d), 0);
	assert_memory_not_equal(d0, d, 32);
	q = p, q.pcr_mask |= 1u << 0;
	assert_int_equal(tpm2_policy_approved_digest(&q, d), 0);
	assert_memory_not_equal(d0, d, 32);
	q = p, q.nv_index += 1;
	assert_int_equal(tpm2_policy_approved_digest(&q, d), 0);
	assert_memory_not_equal(d0, d, 32);

	/* Without PCR 15 the one-unseal-per-boot guarantee is gone: refused. */
	q = p, q.pcr_mask &= ~(1u << 15);
	assert_int_equal(tpm2_policy_approved_digest(&q, d), -EINVAL);
	q = p, q.pcr_mask = 1u << 24 | 1u << 15;
	assert_int_equal(tpm2_policy_approved_digest(&q, d), -EINVAL);
}

static void test_names(void **state)
{
	uint8_t a[TPM2_NAME_SIZE], b[TPM2_NAME_SIZE], point[65];
	EcKey *k1, *k2;

	assert_int_equal(tpm2_counter_name(TPM2_LOCK_COUNTER_NV_INDEX, a), 0);
	assert_int_equal(a[0], 0x00);
	assert_int_equal(a[1], 0x0b); /* nameAlg SHA-256 */
	assert_int_equal(tpm2_counter_name(TPM2_LOCK_COUNTER_NV_INDEX + 1, b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(tpm2_counter_name(0x81000001, b), -EINVAL); /* not an NV handle */

	assert_int_equal(ec_key_generate(&k1), 0);
	assert_int_equal(ec_key_generate(&k2), 0);
	assert_int_equal(ec_key_get_point(k1, point), 0);
	assert_int_equal(tpm2_ecc_key_name(point, a), 0);
	assert_int_equal(ec_key_get_point(k2, point), 0);
	assert_int_equal(tpm2_ecc_key_name(point, b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	point[0] = 0x02;
	assert_int_equal(tpm2_ecc_key_name(point, b), -EINVAL);

	/* PolicyAuthorize digests differ per key and per device (policyRef). */
	uint8_t ref1[16] = {1}, ref2[16] = {2}, d1[32], d2[32], d3[32];
	assert_int_equal(tpm2_policy_authorize_digest(a, ref1, 16, false, d1), 0);
	assert_int_equal(tpm2_policy_authorize_digest(a, ref2, 16, false, d2), 0);
	assert_int_equal(tpm2_policy_authorize_digest(b, ref1, 16, false, d3), 0);
	assert_memory_not_equal(d1, d2, 32);
	assert_memory_not_equal(d1, d3, 32);

	/* With a PIN the object's policy continues with PolicyAuthValue:
	 * H(authorizeDigest || TPM_CC_PolicyAuthValue = 0x0000016b) (Part 3, 23.17). */
	uint8_t cc[4] = {0, 0, 0x01, 0x6b}, expect[32], with_pin[32];
	assert_int_equal(tpm2_policy_authorize_digest(a, ref1, 16, true, with_pin), 0);
	assert_int_equal(sha256_many(expect, d1, (size_t)32, cc, (size_t)4, NULL), 0);
	assert_memory_equal(with_pin, expect, 32);
	ec_key_free(k1);
	ec_key_free(k2);
}

static void make_policy(EcKey *k, SignedPolicy *p)
{
	*p = (SignedPolicy){.params = base_params()};
	memcpy(p->device_id, "00112233445566778899aabbccddeeff", DEVICE_ID_STRING_SIZE);
	assert_int_equal(signed_policy_sign(p, k), 0);
}

static void test_signed_policy_round_trip(void **state)
{
	EcKey *k, *other;
	SignedPolicy p, q;
	char *text;
	const char *why = NULL;

	assert_int_equal(ec_key_generate(&k), 0);
	assert_int_equal(ec_key_generate(&other), 0);
	make_policy(k, &p);
	assert_int_equal(signed_policy_verify(&p, k, &why), 0);
	assert_int_equal(signed_policy_format(&p, &text), 0);
	assert_int_equal(signed_policy_parse(text, strlen(text), &q, &why), 0);
	assert_int_equal(signed_policy_verify(&q, k, &why), 0);
	assert_string_equal(q.device_id, p.device_id);
	assert_int_equal(q.params.epoch, 5);
	assert_int_equal(q.params.pcr_mask, p.params.pcr_mask);
	assert_memory_equal(q.signature, p.signature, 64);

	/* another key */
	assert_int_equal(signed_policy_verify(&q, other, &why), -ENOKEY);
	assert_non_null(strstr(why, "another key"));
	/* edited after signing: epoch moved forward by hand */
	q.params.epoch = 6;
	assert_int_equal(signed_policy_verify(&q, k, &why), -EBADMSG);
	assert_non_null(strstr(why, "policy_digest"));
	/* edited consistently (digest recomputed) but not re-signed */
	assert_int_equal(tpm2_policy_approved_digest(&q.params, q.policy_digest), 0);
	assert_int_equal(signed_policy_verify(&q, k, &why), -EBADMSG);
	assert_non_null(strstr(why, "signature"));
	/* other device id with the same signature */
	q = p;
	q.device_id[0] = '1';
	assert_int_equal(signed_policy_verify(&q, k, &why), -EBADMSG);
	free(text);
	ec_key_free(k);
	ec_key_free(other);
}

static void expect_reject(const char *text, const char *needle)
{
	SignedPolicy p;
	const char *why = NULL;
	assert_int_equal(signed_policy_parse(text, strlen(text), &p, &why), -EBADMSG);
	assert_non_null(why);
	if (!strstr(why, needle))
		fail_msg("reason '%s' does not mention '%s'", why, needle);
}

static char *replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	char *r;
	assert_non_null(at);
	r = malloc(strlen(s) + strlen(to) + 1);
	memcpy(r, s, (size_t)(at - s));
	strcpy(r + (at - s), to);
	strcat(r, at + strlen(from));
	return r;
}

static void test_signed_policy_rejects(void **state)
{
	EcKey *k;
	SignedPolicy p;
	char *text, *bad;
	char big[SIGNED_POLICY_MAX_SIZE + 10];
	const char *why;

	assert_int_equal(ec_key_generate(&k), 0);
	make_policy(k, &p);
	assert_int_equal(signed_policy_format(&p, &text), 0);

	expect_reject("[]", "not a JSON object");
	expect_reject("{", "not valid JSON");
	expect_reject("{\"trustpc_policy\":1,\"trustpc_policy\":1}", "not valid JSON"); /* duplicate keys */
	struct {
		const char *from, *to, *needle;
	} cases[] = {
		{"\"trustpc_policy\":1", "\"trustpc_policy\":2", "trustpc_policy"},
		{"\"trustpc_policy\":1", "\"trustpc_policy\":1,\"x\":0", "unknown field"},
		{"\"epoch\":5", "\"epoch\":-5", "epoch"},
		{"\"epoch\":5", "\"epoch\":\"5\"", "epoch"},
		{"\"trustpc_policy\":1", "\"trustpc_policy\":1,\"pin\":true", "unknown field"},
		{"\"device_id\":\"00", "\"device_id\":\"0", "device_id"},
		{"\"00112233445566778899aabbccddeeff\"", "\"00112233445566778899AABBCCDDEEFF\"", "device_id"},
		{"\"15\":\"00", "\"15\":\"01", "PCR 15"},
		{"\"15\":", "\"16\":", "PCR 15"},
		{"\"7\":", "\"07\":", "pcrs"},
		{"\"7\":", "\"24\":", "pcrs"},
		{"\"pcr_bank\":\"sha256\"", "\"pcr_bank\":\"sha1\"", "pcr_bank"},
		{"\"nv_index\":\"0x01807c50\"", "\"nv_index\":\"0x81000001\"", "nv_index"},
		{"\"signature\":\"", "\"signature\":\"AAAA", "signature"},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		bad = replace(text, cases[i].from, cases[i].to);
		expect_reject(bad, cases[i].needle);
		free(bad);
	}
	memset(big, ' ', sizeof(big));
	assert_int_equal(signed_policy_parse(big, sizeof(big), &p, &why), -EFBIG);
	free(text);
	ec_key_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pcr_mask_parse),
		cmocka_unit_test(test_device_id_parse),
		cmocka_unit_test(test_approved_digest_binds_fields),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_signed_policy_round_trip),
		cmocka_unit_test(test_signed_policy_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
