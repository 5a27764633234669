/* SPDX-License-Identifier: Apache-2.0 */
/* trustpc-disk unlock and recovery. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "basic/secret-input.h"
#include "disk-unseal.h"
#include "trustpc-disk.h"

/* Opens (or with --test only checks) the volume with a passphrase for one keyslot, then measures
 * the volume key into PCR 15. */
static int open_volume(const DiskArgs *a, Tpm2Context *tpm, LuksVolume *v, int slot, const void *pass,
		       size_t pass_len, const char *name)
{
	_cleanup_secure_ uint8_t *vk = NULL;
	size_t vk_len;
	int r;

	r = luks_volume_key_get(v, slot, pass, pass_len, &vk, &vk_len);
	if (r == -EPERM)
		return log_error_errno(EACCES, "The key does not open keyslot %d of '%s'.", slot, luks_path(v));
	if (r < 0)
		return log_error_errno(r, "Cannot open keyslot %d of '%s': %m", slot, luks_path(v));
	if (!a->test) {
		r = luks_activate(v, name, slot, pass, pass_len);
		if (r == -ENOTSUP)
			return log_error_errno(r, "Cannot activate '%s': this kernel has no device-mapper (use --test "
						  "to check the key only).", luks_path(v));
		if (r < 0)
			return log_error_errno(r, "Activating '%s' as '%s' failed: %m", luks_path(v), name);
	}
	if (tpm) {
		r = disk_measure_volume_key(tpm, v, vk, vk_len);
		if (r < 0)
			return log_error_errno(r, "Extending PCR 15 after unlocking failed: %m. Refusing to go on "
						  "with an unmeasured unlock.");
	}
	return 0;
}

int verb_unlock(DiskArgs *a)
{
	_cleanup_(disk_volume_closep) LuksVolume *v = NULL;
	_cleanup_tpm2_ Tpm2Context *tpm = NULL;
	_cleanup_(disk_token_done) DiskToken t = {};
	_cleanup_secure_ uint8_t *secret = NULL;
	_cleanup_secure_ char *pin = NULL;
	SignedPolicy policy;
	char reason[REASON_MAX];
	size_t n;
	int r, token_id;

	if (a->argc < 1 || a->argc > 2 || (!a->test && a->argc != 2)) {
		log_error("Usage: trustpc-disk unlock IMAGE|DEVICE NAME, or unlock IMAGE|DEVICE --test");
		return EXIT_USAGE;
	}
	r = luks_open(a->argv[0], &v);
	if (r < 0)
		return log_error_errno(r == -EINVAL ? -EINVAL : r, "Cannot open '%s' as a LUKS2 volume: %m.",
				       a->argv[0]);
	r = disk_token_load(v, &token_id, &t, reason, sizeof(reason));
	if (r < 0)
		return log_error_errno(r == -ENOENT ? -ENOENT : -EINVAL, "%s.", reason);
	if (a->policy) {
		r = disk_load_policy(a->policy, &policy);
		if (r < 0)
			return r;
	}
	r = disk_tpm_open(a, &tpm);
	if (r < 0)
		return r;
	if (t.pin) {
		r = secret_acquire("TRUSTPC_PIN", "PIN: ", false, &pin);
		if (r < 0)
			return log_error_errno(EACCES, "'%s' needs a PIN: set TRUSTPC_PIN or run on a terminal.",
					       a->argv[0]);
	}
	r = disk_unseal(tpm, &t, a->policy ? &policy : NULL, pin, &secret, &n, reason, sizeof(reason));
	if (r < 0)
		return log_error_errno(r, "Cannot unlock '%s': %s.", a->argv[0], reason);

	r = open_volume(a, tpm, v, t.keyslot, secret, n, a->argc > 1 ? a->argv[1] : NULL);
	if (r < 0)
		return r;

	/* The policy worked: keep it as the current one, so the next boot needs no --policy. */
	if (a->policy) {
		t.policy = policy;
		t.has_policy = true;
		r = disk_token_store(v, token_id, &t);
		if (r < 0)
			return log_error_errno(r, "Unlocked, but storing the new policy in the token failed: %m");
	}
	log_info("%s '%s' (device %s, epoch %llu).", a->test ? "Key verified for" : "Unlocked", a->argv[0],
		 t.device_id, (unsigned long long)(a->policy ? policy.params.epoch : t.policy.params.epoch));
	return 0;
}

static int read_recovery_key(const DiskArgs *a, char ret[RECOVERY_KEY_STRING_SIZE])
{
	_cleanup_secure_ char *text = NULL;
	const char *src = a->recovery_key_file ?: "-";
	int r;

	r = read_full_file(src, 4096, true, &text, NULL);
	if (r < 0)
		return log_error_errno(r, "Cannot read the recovery key from %s: %m.",
				       a->recovery_key_file ? a->recovery_key_file : "standard input");
	r = recovery_key_normalize(text, ret);
	if (r < 0)
		return log_error_errno(EINVAL, "The recovery key from %s is not well-formed: it is 8 groups of 8 "
					       "letters from cbdefghijklnrtuv.",
				       a->recovery_key_file ? a->recovery_key_file : "standard input");
	return 0;
}

/* Opens with the recovery key and re-seals the TPM slot: a fresh disk key in a new keyslot, the
 * token updated to name it, then the old TPM keyslot destroyed. A crash between the steps leaves
 * either the old working token or the new one; at worst an orphaned keyslot. */
int verb_recovery(DiskArgs *a)
{
	_cleanup_(disk_volume_closep) LuksVolume *v = NULL;
	_cleanup_tpm2_ Tpm2Context *tpm = NULL;
	_cleanup_(disk_token_done) DiskToken t = {};
	_cleanup_ec_key_ EcKey *policy_key = NULL;
	_cleanup_secure_ uint8_t *vk = NULL;
	_cleanup_secure_ char *pin = NULL;
	char rk[RECOVERY_KEY_STRING_SIZE], reason[REASON_MAX];
	ERASE_ON_EXIT(rk);
	uint8_t secret[DISK_SECRET_SIZE];
	ERASE_ON_EXIT(secret);
	Tpm2Blob sealed = {};
	SignedPolicy policy;
	const char *why = NULL;
	size_t vk_len;
	uint64_t epoch;
	int r, token_id, slot, old_slot;

	if (a->argc < 1 || a->argc > 2 || !a->policy) {
		log_error("Usage: trustpc-disk recovery IMAGE|DEVICE [NAME] --policy FILE [--recovery-key-file FILE]");
		return EXIT_USAGE;
	}
	r = luks_open(a->argv[0], &v);
	if (r < 0)
		return log_error_errno(r, "Cannot open '%s' as a LUKS2 volume: %m.", a->argv[0]);
	r = disk_token_load(v, &token_id, &t, reason, sizeof(reason));
	if (r < 0)
		return log_error_errno(r == -ENOENT ? -ENOENT : -EINVAL, "%s.", reason);
	r = disk_load_policy(a->policy, &policy);
	if (r < 0)
		return r;
	r = ec_key_from_spki_der(t.policy_key_spki, t.policy_key_spki_size, &policy_key);
	if (r < 0)
		return log_error_errno(EINVAL, "The token's policy key is not a P-256 public key.");
	if (!streq(policy.device_id, t.device_id))
		return log_error_errno(EXDEV, "--policy '%s' was signed for device %s, this disk belongs to %s.",
				       a->policy, policy.device_id, t.device_id);
	r = signed_policy_verify(&policy, policy_key, &why);
	if (r < 0)
		return log_error_errno(r, "--policy '%s' rejected: %s.", a->policy, why);

	r = read_recovery_key(a, rk);
	if (r < 0)
		return r;
	slot = t.recovery_keyslot >= 0 ? t.recovery_keyslot : LUKS_ANY_SLOT;
	r = luks_volume_key_get(v, slot, rk, strlen(rk), &vk, &vk_len);
	if (r == -EPERM)
		return log_error_errno(EACCES, "The recovery key does not open '%s'.", a->argv[0]);
	if (r < 0)
		return log_error_errno(r, "Opening '%s' with the recovery key failed: %m", a->argv[0]);

	r = disk_tpm_open(a, &tpm);
	if (r < 0)
		return r;
	/* Fix (integration tests, test-disk-recovery.sh): re-sealing on another TPM kept the token's
	 * device id, so the disk then opened on that TPM with policies for this device while this
	 * device's lock counter (the one the fleet locks) no longer governed it. Refuse; moving a
	 * disk to a new TPM is a new enrollment. */
	{
		char id[DEVICE_ID_STRING_SIZE];
		r = tpm2_device_id(tpm, id);
		if (r < 0)
			return log_error_errno(r, "Cannot read this TPM's endorsement key: %m.");
		if (!streq(id, t.device_id))
			return log_error_errno(EREMCHG, "This TPM is device %s, but '%s' belongs to device %s: "
							"recovery re-seals only on the disk's own TPM (enroll anew to "
							"move it). Nothing was changed.",
					       id, a->argv[0], t.device_id);
	}
	/* Re-sealing to a policy that cannot unlock now would leave the disk needing the recovery
	 * key again at the next boot. */
	r = tpm2_counter_read(tpm, policy.params.nv_index, &epoch);
	if (r < 0)
		return log_error_errno(r, "Cannot read the lock counter at NV index 0x%08x: %m.",
				       policy.params.nv_index);
	if (epoch != policy.params.epoch)
		return log_error_errno(ESTALE, "--policy '%s' is for epoch %llu, the lock counter is at %llu: ask "
					       "for a policy for epoch %llu. Nothing was changed.",
				       a->policy, (unsigned long long)policy.params.epoch,
				       (unsigned long long)epoch, (unsigned long long)epoch);
	/* A PIN disk stays a PIN disk (--pin adds one); recovery is where a forgotten PIN is
	 * replaced, so the new PIN is asked for. */
	if (t.pin || a->pin) {
		r = secret_acquire("TRUSTPC_NEW_PIN", "New PIN: ", true, &pin);
		if (r < 0)
			return log_error_errno(r, "This disk uses a PIN: set TRUSTPC_NEW_PIN or run on a terminal. "
						  "Nothing was changed.");
	}
	r = disk_seal_new(tpm, policy_key, &t, pin, secret, &sealed);
	if (r < 0)
		return log_error_errno(r, "Sealing the new disk key in the TPM failed: %m");

	old_slot = t.keyslot;
	slot = luks_keyslot_add_by_volume_key(v, vk, vk_len, secret, sizeof(secret));
	if (slot < 0) {
		tpm2_blob_done(&sealed);
		return log_error_errno(slot, "Adding the new TPM keyslot failed: %m");
	}
	tpm2_blob_done(&t.sealed);
	t.sealed = sealed;
	t.keyslot = slot;
	t.policy = policy;
	t.has_policy = true;
	r = disk_token_store(v, token_id, &t);
	if (r < 0) {
		(void)luks_keyslot_destroy(v, slot);
		return log_error_errno(r, "Writing the re-sealed token failed: %m. The old TPM keyslot is untouched.");
	}
	if (old_slot != slot && luks_keyslot_active(v, old_slot)) {
		r = luks_keyslot_destroy(v, old_slot);
		if (r < 0)
			log_warning_errno(r, "Re-sealed, but destroying the old TPM keyslot %d failed: %m", old_slot);
	}

	/* Open the volume too, but without the one-boot measurement: the TPM did not release this
	 * key, the recovery key did. */
	if (a->argc > 1 || a->test) {
		DiskArgs b = *a;
		r = open_volume(&b, NULL, v, t.keyslot, secret, sizeof(secret), a->argc > 1 ? a->argv[1] : NULL);
		if (r < 0)
			return r;
	}
	log_info("Recovered '%s': TPM keyslot re-sealed as keyslot %d for device %s, epoch %llu.", a->argv[0],
		 slot, t.device_id, (unsigned long long)policy.params.epoch);
	return 0;
}
