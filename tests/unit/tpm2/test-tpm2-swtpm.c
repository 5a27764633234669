/* SPDX-License-Identifier: Apache-2.0 */
/* lib/tpm2 against a real TPM (swtpm, started by test-tpm2-swtpm.sh; TRUSTPC_TPM2_DEVICE points at
 * it). These call tpm2_unseal directly, without trustpc-disk's software pre-checks, to show that
 * the TPM itself enforces each rule: device binding, policy key, PCRs, epoch, PIN, pinned SRK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2.h"

#define FOREIGN_NV_INDEX UINT32_C(0x01807c51) /* defined by the wrapper script with other attributes */

typedef struct Fixture {
	Tpm2Context *tpm;
	EcKey *key, *other;
	uint8_t point[65], other_point[65];
	uint8_t ref[DEVICE_ID_SIZE];
	uint64_t epoch;
	Tpm2Blob blob, pin_blob;
	uint8_t secret[32];
} Fixture;

static const uint8_t pin_auth[32] = "0123456789abcdef0123456789abcde";

static int seal_for(Fixture *f, const uint8_t *point, const void *auth, size_t auth_len, Tpm2Blob *ret)
{
	uint8_t name[TPM2_NAME_SIZE], policy[32];
	assert_int_equal(tpm2_ecc_key_name(point, name), 0);
	assert_int_equal(tpm2_policy_authorize_digest(name, f->ref, sizeof(f->ref), auth_len > 0, policy), 0);
	return tpm2_seal(f->tpm, policy, f->secret, sizeof(f->secret), auth, auth_len, ret);
}

static int setup(void **state)
{
	Fixture *f = calloc(1, sizeof(*f));
	char id[DEVICE_ID_STRING_SIZE];

	assert_int_equal(tpm2_context_new(NULL, &f->tpm), 0);
	assert_int_equal(tpm2_counter_ensure(f->tpm, TPM2_LOCK_COUNTER_NV_INDEX, &f->epoch, NULL), 0);
	assert_int_equal(tpm2_device_id(f->tpm, id), 0);
	assert_int_equal(device_id_parse(id, f->ref), 0);
	assert_int_equal(ec_key_generate(&f->key), 0);
	assert_int_equal(ec_key_generate(&f->other), 0);
	assert_int_equal(ec_key_get_point(f->key, f->point), 0);
	assert_int_equal(ec_key_get_point(f->other, f->other_point), 0);
	memset(f->secret, 0x5a, sizeof(f->secret));
	assert_int_equal(seal_for(f, f->point, NULL, 0, &f->blob), 0);
	assert_int_equal(seal_for(f, f->point, pin_auth, sizeof(pin_auth), &f->pin_blob), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	Fixture *f = *state;
	tpm2_blob_done(&f->blob);
	tpm2_blob_done(&f->pin_blob);
	ec_key_free(f->key);
	ec_key_free(f->other);
	tpm2_context_free(f->tpm);
	free(f);
	return 0;
}

/* A policy for the TPM's current PCR 7 and 11 (and 15 = 0) at the given epoch, signed by key for
 * policyRef ref. */
typedef struct Signed {
	Tpm2PolicyParams params;
	uint8_t sig[64];
} Signed;

static void sign(Fixture *f, const EcKey *key, const uint8_t *ref, uint64_t epoch, Signed *s)
{
	uint8_t approved[32], hash[32];
	*s = (Signed){.params = {.pcr_mask = (1u << 7) | (1u << 11) | (1u << 15),
				  .nv_index = TPM2_LOCK_COUNTER_NV_INDEX, .epoch = epoch}};
	assert_int_equal(tpm2_pcr_read(f->tpm, s->params.pcr_mask, s->params.pcr_values), 0);
	assert_int_equal(tpm2_policy_approved_digest(&s->params, approved), 0);
	assert_int_equal(tpm2_policy_signing_hash(approved, ref, DEVICE_ID_SIZE, hash), 0);
	assert_int_equal(ecdsa_sign_raw(key, hash, 32, s->sig), 0);
}

static int unseal(Fixture *f, const Tpm2Blob *b, const Signed *s, const uint8_t *point, const void *auth,
		  size_t auth_len)
{
	Tpm2UnsealRequest req = {
		.blob = b, .policy = &s->params, .policy_key_point = point, .policy_ref = f->ref,
		.signature = s->sig, .auth = auth, .auth_len = auth_len,
	};
	uint8_t *out = NULL;
	size_t n = 0;
	int r = tpm2_unseal(f->tpm, &req, &out, &n);
	if (r == 0) {
		/* 1: the TPM released something, but not our secret */
		if (n != sizeof(f->secret) || memcmp(out, f->secret, n) != 0)
			r = 1;
		secure_free(out);
	}
	return r;
}

static void test_unseal_ok(void **state)
{
	Fixture *f = *state;
	Signed s;
	sign(f, f->key, f->ref, f->epoch, &s);
	assert_int_equal(unseal(f, &f->blob, &s, f->point, NULL, 0), 0);
}

static void test_other_device_ref(void **state)
{
	Fixture *f = *state;
	uint8_t other_ref[DEVICE_ID_SIZE];
	Signed s;
	memcpy(other_ref, f->ref, sizeof(other_ref));
	other_ref[0] ^= 0xff;
	sign(f, f->key, other_ref, f->epoch, &s); /* a valid policy — for another device */
	assert_int_equal(unseal(f, &f->blob, &s, f->point, NULL, 0), -EBADMSG);
}

static void test_other_key(void **state)
{
	Fixture *f = *state;
	Signed s;
	/* Signed by another key, presented with that key: the TPM accepts the signature but the
	 * ticket names a key the sealed object's policy does not authorise. */
	sign(f, f->other, f->ref, f->epoch, &s);
	assert_int_equal(unseal(f, &f->blob, &s, f->other_point, NULL, 0), -EKEYREJECTED);
	/* Signed by another key, presented with ours: the signature does not verify. */
	assert_int_equal(unseal(f, &f->blob, &s, f->point, NULL, 0), -EBADMSG);
}

static void test_pcr_mismatch(void **state)
{
	Fixture *f = *state;
	Signed s;
	sign(f, f->key, f->ref, f->epoch, &s);
	s.params.pcr_values[11][0] ^= 1; /* expected value differs from the TPM's */
	/* re-sign so that only the PCR value is wrong */
	uint8_t approved[32], hash[32];
	assert_int_equal(tpm2_policy_approved_digest(&s.params, approved), 0);
	assert_int_equal(tpm2_policy_signing_hash(approved, f->ref, DEVICE_ID_SIZE, hash), 0);
	assert_int_equal(ecdsa_sign_raw(f->key, hash, 32, s.sig), 0);
	assert_int_equal(unseal(f, &f->blob, &s, f->point, NULL, 0), -EPERM);
}

static void test_pcr_extended(void **state)
{
	Fixture *f = *state;
	uint8_t digest[32] = {1, 2, 3};
	Signed s;
	sign(f, f->key, f->ref, f->epoch, &s); /* for the PCRs as they are now */
	assert_int_equal(tpm2_pcr_extend(f->tpm, 7, digest), 0); /* "the boot changed" */
	assert_int_equal(unseal(f, &f->blob, &s, f->point, NULL, 0), -EPERM);
	sign(f, f->key, f->ref, f->epoch, &s); /* a policy for the new state works */
	assert_int_equal(unseal(f, &f->blob, &s, f->point, NULL, 0), 0);
}

static void test_epoch(void **state)
{
	Fixture *f = *state;
	Signed old, next;
	uint64_t now;

	sign(f, f->key, f->ref, f->epoch + 1, &next);
	assert_int_equal(unseal(f, &f->blob, &next, f->point, NULL, 0), -ESTALE); /* not yet */
	sign(f, f->key, f->ref, f->epoch, &old);
	assert_int_equal(tpm2_counter_increment(f->tpm, TPM2_LOCK_COUNTER_NV_INDEX, &now), 0);
	assert_int_equal(now, f->epoch + 1);
	f->epoch = now;
	assert_int_equal(unseal(f, &f->blob, &old, f->point, NULL, 0), -ESTALE); /* locked */
	sign(f, f->key, f->ref, f->epoch, &next);
	assert_int_equal(unseal(f, &f->blob, &next, f->point, NULL, 0), 0); /* unlocked: no re-seal */
	/* ensure on an existing counter changes nothing */
	assert_int_equal(tpm2_counter_ensure(f->tpm, TPM2_LOCK_COUNTER_NV_INDEX, &now, NULL), 0);
	assert_int_equal(now, f->epoch);
}

static void test_pin(void **state)
{
	Fixture *f = *state;
	uint8_t wrong[32];
	Signed s;
	memcpy(wrong, pin_auth, 32);
	wrong[0] ^= 1;
	sign(f, f->key, f->ref, f->epoch, &s);
	assert_int_equal(unseal(f, &f->pin_blob, &s, f->point, wrong, sizeof(wrong)), -EACCES);
	assert_int_equal(unseal(f, &f->pin_blob, &s, f->point, pin_auth, sizeof(pin_auth)), 0);
	/* The same valid signed policy without the PIN: PolicyAuthValue is part of the object's own
	 * policy, so the TPM refuses the Unseal itself (a policy failure, not garbage output) —
	 * whatever the signer signed and whether or not the client encrypts the response. */
	assert_int_equal(unseal(f, &f->pin_blob, &s, f->point, NULL, 0), -EKEYREJECTED);
	/* and the PIN-less blob does not accept a PIN session */
	assert_int_equal(unseal(f, &f->blob, &s, f->point, pin_auth, sizeof(pin_auth)), -EKEYREJECTED);
}

static void test_pinned_srk(void **state)
{
	Fixture *f = *state;
	Tpm2Blob b = f->blob;
	Signed s;
	uint8_t *copy = malloc(b.srk_public_size);
	memcpy(copy, b.srk_public, b.srk_public_size);
	copy[b.srk_public_size - 1] ^= 1; /* last byte of the SRK's public point */
	b.srk_public = copy;
	sign(f, f->key, f->ref, f->epoch, &s);
	assert_int_equal(unseal(f, &b, &s, f->point, NULL, 0), -EREMCHG);
	free(copy);
}

static void test_corrupt_blob(void **state)
{
	Fixture *f = *state;
	Tpm2Blob b = f->blob;
	Signed s;
	uint8_t *copy = malloc(b.blob_size);
	memcpy(copy, b.blob, b.blob_size);
	copy[10] ^= 1; /* inside the private part: integrity check fails in TPM2_Load */
	b.blob = copy;
	sign(f, f->key, f->ref, f->epoch, &s);
	assert_int_equal(unseal(f, &b, &s, f->point, NULL, 0), -EINVAL);
	b.blob_size = 5; /* truncated */
	assert_int_equal(unseal(f, &b, &s, f->point, NULL, 0), -EINVAL);
	free(copy);
}

static void test_counters(void **state)
{
	Fixture *f = *state;
	uint64_t v;
	assert_int_equal(tpm2_counter_read(f->tpm, TPM2_LOCK_COUNTER_NV_INDEX, &v), 0);
	assert_int_equal(v, f->epoch);
	assert_int_equal(tpm2_counter_read(f->tpm, FOREIGN_NV_INDEX, &v), -ENOTUNIQ);
	assert_int_equal(tpm2_counter_read(f->tpm, 0x01807c5f, &v), -ENOENT);
	assert_int_equal(tpm2_counter_increment(f->tpm, 0x01807c5f, &v), -ENOENT);
}

static void test_no_tpm(void **state)
{
	Tpm2Context *c = NULL;
	/* port 1 on loopback: nothing listens there */
	assert_int_equal(tpm2_context_new("swtpm:host=127.0.0.1,port=1", &c), -ENODEV);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unseal_ok),
		cmocka_unit_test(test_other_device_ref),
		cmocka_unit_test(test_other_key),
		cmocka_unit_test(test_pcr_mismatch),
		cmocka_unit_test(test_pcr_extended),
		cmocka_unit_test(test_epoch),
		cmocka_unit_test(test_pin),
		cmocka_unit_test(test_pinned_srk),
		cmocka_unit_test(test_corrupt_blob),
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_no_tpm),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
