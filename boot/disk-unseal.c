/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "disk-unseal.h"

_printf_(4, 5) static int fail(int r, char *reason, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, size, fmt, ap);
	va_end(ap);
	return r;
}

int disk_token_load(LuksVolume *v, int *ret_token_id, DiskToken *ret, char *reason, size_t reason_size)
{
	_cleanup_free_ char *json = NULL;
	const char *why = NULL;
	int id, r;

	r = luks_token_find(v, DISK_TOKEN_TYPE, &id, &json);
	if (r == -ENOENT)
		return fail(r, reason, reason_size, "%s has no " DISK_TOKEN_TYPE " token: enroll it first",
			    luks_path(v));
	if (r < 0)
		return fail(r, reason, reason_size, "cannot read the tokens of %s: %s", luks_path(v), strerror(-r));
	r = disk_token_parse(json, strlen(json), ret, &why);
	if (r < 0)
		return fail(r, reason, reason_size, "the " DISK_TOKEN_TYPE " token %d of %s is invalid: %s", id,
			    luks_path(v), why);
	*ret_token_id = id;
	return 0;
}

int disk_token_store(LuksVolume *v, int token_id, const DiskToken *t)
{
	_cleanup_free_ char *json = NULL;
	int r;

	r = disk_token_format(t, &json);
	if (r < 0)
		return r;
	return luks_token_write(v, token_id, json);
}

int disk_pin_auth(const DiskToken *t, const char *pin, uint8_t out[32])
{
	return hmac_sha256(t->pin_salt, DISK_PIN_SALT_SIZE, pin, strlen(pin), out);
}

int disk_seal_new(Tpm2Context *tpm, const EcKey *policy_key, DiskToken *t, const char *pin,
		  uint8_t secret[DISK_SECRET_SIZE], Tpm2Blob *ret_sealed)
{
	uint8_t auth[32], point[EC_P256_POINT_SIZE], name[TPM2_NAME_SIZE], ref[DEVICE_ID_SIZE], auth_policy[32];
	ERASE_ON_EXIT(auth);
	int r;

	if (pin) {
		r = crypto_random_bytes(t->pin_salt, sizeof(t->pin_salt));
		if (r < 0)
			return r;
		t->pin = true;
		r = disk_pin_auth(t, pin, auth);
		if (r < 0)
			return r;
	}
	r = ec_key_get_point(policy_key, point);
	if (r >= 0)
		r = tpm2_ecc_key_name(point, name);
	if (r >= 0)
		r = device_id_parse(t->device_id, ref);
	if (r >= 0)
		r = tpm2_policy_authorize_digest(name, ref, sizeof(ref), pin != NULL, auth_policy);
	if (r >= 0)
		r = crypto_random_bytes(secret, DISK_SECRET_SIZE);
	if (r < 0)
		return r;
	return tpm2_seal(tpm, auth_policy, secret, DISK_SECRET_SIZE, pin ? auth : NULL, pin ? sizeof(auth) : 0,
			 ret_sealed);
}

static const char *pcr_list(uint32_t mask, char *buf, size_t size)
{
	size_t n = 0;
	buf[0] = 0;
	for (unsigned i = 0; i < TPM2_PCRS_MAX && n < size; i++)
		if (mask & (UINT32_C(1) << i))
			n += (size_t)snprintf(buf + n, size - n, "%s%u", n ? "," : "", i);
	return buf;
}

static int check_boot_state(Tpm2Context *c, const SignedPolicy *p, char *reason, size_t reason_size)
{
	uint8_t now[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
	uint64_t counter;
	int r;

	r = tpm2_pcr_read(c, p->params.pcr_mask, now);
	if (r < 0)
		return fail(r, reason, reason_size, "cannot read the PCRs: %s", strerror(-r));
	if (memcmp(now[TPM2_PCR_ONE_BOOT], p->params.pcr_values[TPM2_PCR_ONE_BOOT], 32) != 0)
		return fail(-EALREADY, reason, reason_size,
			    "PCR 15 is not zero: a volume was already unlocked in this boot (one unseal per "
			    "boot); reboot to unlock again");
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++) {
		_cleanup_free_ char *want = NULL, *have = NULL;
		if (!(p->params.pcr_mask & (UINT32_C(1) << i)) || !memcmp(now[i], p->params.pcr_values[i], 32))
			continue;
		want = hex_encode(p->params.pcr_values[i], 32);
		have = hex_encode(now[i], 32);
		return fail(-EPERM, reason, reason_size,
			    "PCR %u differs from the signed policy (policy %s, TPM %s): this boot is not the "
			    "one the policy approves (changed firmware, Secure Boot state or image?)",
			    i, strna(want), strna(have));
	}

	r = tpm2_counter_read(c, p->params.nv_index, &counter);
	if (r == -ENOENT) /* a cleared TPM: not the TPM the disk was sealed with any more */
		return fail(-EREMCHG, reason, reason_size,
			    "the lock counter (NV index 0x%08x) is missing from this TPM: was the TPM cleared? "
			    "Use the recovery key",
			    p->params.nv_index);
	if (r == -ENOTUNIQ)
		return fail(r, reason, reason_size,
			    "NV index 0x%08x is not a trustpc lock counter (other attributes)", p->params.nv_index);
	if (r < 0)
		return fail(r, reason, reason_size, "cannot read the lock counter: %s", strerror(-r));
	if (counter != p->params.epoch)
		return fail(-ESTALE, reason, reason_size,
			    counter > p->params.epoch
				    ? "the device is locked: lock counter is at epoch %llu, the policy is for "
				      "epoch %llu; ask the helpdesk for a policy for the new epoch, or use the "
				      "recovery key"
				    : "the lock counter is at epoch %llu but the policy is for a later epoch %llu",
			    (unsigned long long)counter, (unsigned long long)p->params.epoch);
	return 0;
}

int disk_unseal(Tpm2Context *c, const DiskToken *t, const SignedPolicy *policy, const char *pin, uint8_t **ret,
		size_t *ret_size, char *reason, size_t reason_size)
{
	_cleanup_ec_key_ EcKey *key = NULL;
	uint8_t point[EC_P256_POINT_SIZE], ref[DEVICE_ID_SIZE], auth[32];
	ERASE_ON_EXIT(auth);
	const char *why = NULL;
	char list[80];
	int r;

	if (!policy) {
		if (!t->has_policy)
			return fail(-ENOMSG, reason, reason_size,
				    "no signed policy is stored in the token: pass --policy FILE (made by the fleet "
				    "server with 'trustpc-disk sign-policy')");
		policy = &t->policy;
	}
	/* Software checks first, each for a precise message; the TPM enforces all of them again. */
	if (!streq(policy->device_id, t->device_id))
		return fail(-EXDEV, reason, reason_size,
			    "the policy was signed for device %s, but this disk belongs to device %s",
			    policy->device_id, t->device_id);
	r = ec_key_from_spki_der(t->policy_key_spki, t->policy_key_spki_size, &key);
	if (r < 0)
		return fail(-EINVAL, reason, reason_size, "the token's policy key is not a P-256 public key");
	r = signed_policy_verify(policy, key, &why);
	if (r < 0)
		return fail(r, reason, reason_size, "policy rejected: %s", why ?: strerror(-r));
	if (policy->params.nv_index != t->nv_index)
		return fail(-EINVAL, reason, reason_size, "the policy names lock counter 0x%08x, the disk 0x%08x",
			    policy->params.nv_index, t->nv_index);
	if (t->pin && !pin)
		return fail(-EACCES, reason, reason_size, "a PIN is required");

	r = check_boot_state(c, policy, reason, reason_size);
	if (r < 0) {
		/* Fix (integration tests, test-disk-reject.sh): on a TPM other than the one the disk
		 * was sealed with, differing PCRs or a missing counter are symptoms, not the cause
		 * (they gave exit 4 or 1). Only on this failure path (no cost on a good boot): if the
		 * TPM's device id is not the token's, say so (-EREMCHG, exit 7). */
		char id[DEVICE_ID_STRING_SIZE];
		if (r != -ENODEV && tpm2_device_id(c, id) >= 0 && !streq(id, t->device_id))
			return fail(-EREMCHG, reason, reason_size,
				    "this TPM is device %s, but the disk was sealed on device %s (another TPM "
				    "or a replaced board); use the recovery key",
				    id, t->device_id);
		return r;
	}

	if (t->pin) {
		r = disk_pin_auth(t, pin, auth);
		if (r < 0)
			return fail(r, reason, reason_size, "cannot derive the PIN auth: %s", strerror(-r));
	}
	r = ec_key_get_point(key, point);
	if (r < 0)
		return fail(r, reason, reason_size, "bad policy key");
	(void)device_id_parse(t->device_id, ref);

	Tpm2UnsealRequest req = {
		.blob = &t->sealed,
		.policy = &policy->params,
		.policy_key_point = point,
		.policy_ref = ref,
		.signature = policy->signature,
		.auth = t->pin ? auth : NULL,
		.auth_len = t->pin ? sizeof(auth) : 0,
	};
	r = tpm2_unseal(c, &req, ret, ret_size);
	switch (r) {
	case 0:
		return 0;
	case -EACCES:
		return fail(r, reason, reason_size, "wrong PIN (the TPM counts failed attempts)");
	case -EAGAIN:
		return fail(r, reason, reason_size,
			    "the TPM is in dictionary-attack lockout after too many wrong PINs; try later");
	case -EREMCHG:
		return fail(r, reason, reason_size,
			    "this TPM's storage root key is not the one the disk was sealed with: another TPM, "
			    "a cleared TPM or a device on the TPM bus; use the recovery key");
	case -ESTALE:
		return fail(r, reason, reason_size, "the TPM refused the policy's epoch: the device is locked");
	case -EPERM:
		return fail(r, reason, reason_size, "the TPM refused the PCR policy (PCRs %s changed)",
			    pcr_list(policy->params.pcr_mask, list, sizeof(list)));
	case -EBADMSG:
	case -EKEYREJECTED:
		return fail(r, reason, reason_size,
			    "the TPM refused the policy signature for this device and sealed object");
	case -EINVAL:
		return fail(r, reason, reason_size, "the sealed object in the token is corrupt or not for this TPM");
	default:
		return fail(r, reason, reason_size, "unsealing failed: %s", strerror(-r));
	}
}

int disk_measure_volume_key(Tpm2Context *c, LuksVolume *v, const uint8_t *vk, size_t vk_len)
{
	_cleanup_free_ char *msg = NULL;
	uint8_t digest[32];
	int r;

	if (asprintf(&msg, "trustpc:%s", luks_uuid(v) ?: "") < 0)
		return -ENOMEM;
	/* An HMAC keyed with the volume key: binds the measurement to this volume without revealing
	 * anything about the key. */
	r = hmac_sha256(vk, vk_len, msg, strlen(msg), digest);
	if (r < 0)
		return r;
	return tpm2_pcr_extend(c, TPM2_PCR_ONE_BOOT, digest);
}
