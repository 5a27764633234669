/* SPDX-License-Identifier: Apache-2.0 */
/* trustpc-disk enroll: seal a new random disk key to the fleet policy key, bound to this device.
 *
 * Order (crash at any step leaves the volume openable by its old passphrase, and never leaves a
 * recovery keyslot whose key is not escrowed):
 *   1. all checks (volume, keys, policy, TPM, counter) — nothing written yet
 *   2. escrow file written atomically, before the recovery keyslot exists
 *   3. keyslots added, then the token; a failure removes what was added. */
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

/* The existing passphrase that authorises adding keyslots. */
static int acquire_passphrase(const DiskArgs *a, char **ret, size_t *ret_size)
{
	char *s = NULL;
	size_t n;
	int r;

	if (a->unlock_key_file) {
		r = read_full_file(a->unlock_key_file, 8192, true, &s, &n);
		if (r < 0)
			return log_error_errno(r, "Cannot read --unlock-key-file '%s': %m.", a->unlock_key_file);
	} else {
		r = secret_acquire("TRUSTPC_PASSPHRASE", "Current passphrase of the volume: ", false, &s);
		if (r < 0)
			return log_error_errno(r, "A current passphrase of the volume is needed: pass "
						  "--unlock-key-file FILE, set TRUSTPC_PASSPHRASE or run on a terminal.");
		n = strlen(s);
	}
	*ret = s;
	*ret_size = n;
	return 0;
}

int verb_enroll(DiskArgs *a)
{
	_cleanup_(disk_volume_closep) LuksVolume *v = NULL;
	_cleanup_tpm2_ Tpm2Context *tpm = NULL;
	_cleanup_ec_key_ EcKey *policy_key = NULL, *escrow_key = NULL;
	_cleanup_secure_ char *pass = NULL, *pin = NULL;
	_cleanup_secure_ uint8_t *vk = NULL;
	_cleanup_free_ char *escrow_json = NULL, *context = NULL, *existing = NULL;
	_cleanup_(disk_token_done) DiskToken t = {.recovery_keyslot = -1};
	char recovery[RECOVERY_KEY_STRING_SIZE] = {};
	ERASE_ON_EXIT(recovery);
	uint8_t secret[DISK_SECRET_SIZE];
	ERASE_ON_EXIT(secret);
	size_t pass_len = 0, vk_len;
	uint64_t epoch;
	bool created;
	int r, id, tpm_slot = -1, rk_slot = -1;

	if (a->argc != 1) {
		log_error("Usage: trustpc-disk enroll IMAGE|DEVICE --policy-key PUB.pem …");
		return EXIT_USAGE;
	}
	if (!a->no_recovery_key && !a->show_recovery_key && !(a->escrow_key && a->escrow_out)) {
		log_error("Say where the recovery key goes: --escrow-key PUB.pem --escrow-out FILE (encrypted to "
			  "the fleet's escrow key), --show-recovery-key (shown once), or --no-recovery-key.");
		return EXIT_USAGE;
	}
	if (!!a->escrow_key != !!a->escrow_out) {
		log_error("--escrow-key and --escrow-out go together.");
		return EXIT_USAGE;
	}

	/* 1. checks */
	r = luks_open(a->argv[0], &v);
	if (r < 0)
		return log_error_errno(r, "Cannot open '%s' as a LUKS2 volume: %m.", a->argv[0]);
	r = luks_token_find(v, DISK_TOKEN_TYPE, &id, &existing);
	if (r >= 0) {
		log_error("'%s' is already enrolled (token %d). Use 'trustpc-disk recovery' to re-seal.", a->argv[0], id);
		return EXIT_FAIL;
	}
	r = disk_load_key(a->policy_key, "--policy-key", false, &policy_key);
	if (r < 0)
		return r;
	if (a->escrow_key) {
		r = disk_load_key(a->escrow_key, "--escrow-key", false, &escrow_key);
		if (r < 0)
			return r;
	}
	if (a->policy) {
		r = disk_load_policy(a->policy, &t.policy);
		if (r < 0)
			return r;
		t.has_policy = true;
	}
	r = acquire_passphrase(a, &pass, &pass_len);
	if (r < 0)
		return r;
	r = luks_volume_key_get(v, LUKS_ANY_SLOT, pass, pass_len, &vk, &vk_len);
	if (r == -EPERM)
		return log_error_errno(EACCES, "The passphrase does not open '%s'.", a->argv[0]);
	if (r < 0)
		return log_error_errno(r, "Cannot unlock '%s' with the passphrase: %m.", a->argv[0]);

	r = disk_tpm_open(a, &tpm);
	if (r < 0)
		return r;
	r = tpm2_device_id(tpm, t.device_id);
	if (r < 0)
		return log_error_errno(r, "Cannot read this TPM's endorsement key: %m.");
	if (t.has_policy) {
		const char *why = NULL;
		if (!streq(t.policy.device_id, t.device_id))
			return log_error_errno(EXDEV, "--policy '%s' was signed for device %s, this TPM is device %s.",
					       a->policy, t.policy.device_id, t.device_id);
		r = signed_policy_verify(&t.policy, policy_key, &why);
		if (r < 0)
			return log_error_errno(r, "--policy '%s' rejected: %s.", a->policy, why);
	}
	r = tpm2_counter_ensure(tpm, a->nv_index, &epoch, &created);
	if (r == -ENOTUNIQ)
		return log_error_errno(r, "NV index 0x%08x is in use by something else; pick another with --nv-index.",
				       a->nv_index);
	if (r < 0)
		return log_error_errno(r, "Cannot set up the lock counter at NV index 0x%08x: %m.", a->nv_index);
	if (created)
		log_info("Defined the lock counter at NV index 0x%08x (epoch %llu).", a->nv_index,
			 (unsigned long long)epoch);

	if (a->pin) {
		r = secret_acquire("TRUSTPC_NEW_PIN", "New PIN: ", true, &pin);
		if (r < 0)
			return log_error_errno(r, "A PIN is needed for --pin: set TRUSTPC_NEW_PIN or run on a terminal.");
	}
	r = disk_seal_new(tpm, policy_key, &t, pin, secret, &t.sealed);
	if (r < 0)
		return log_error_errno(r, "Sealing the disk key in the TPM failed: %m");
	r = ec_key_public_spki_der(policy_key, &t.policy_key_spki, &t.policy_key_spki_size);
	if (r < 0)
		return r;
	t.pcr_mask = a->pcr_mask;
	t.nv_index = a->nv_index;

	/* 2. recovery key, escrowed before its keyslot exists */
	if (!a->no_recovery_key) {
		r = recovery_key_generate(recovery);
		if (r < 0)
			return r;
		if (escrow_key) {
			if (asprintf(&context, "recovery-key:%s:%s", t.device_id, luks_uuid(v)) < 0)
				return log_oom();
			r = escrow_seal(escrow_key, context, recovery, strlen(recovery), &escrow_json);
			if (r < 0)
				return log_error_errno(r, "Encrypting the recovery key to the escrow key failed: %m");
			r = disk_write_output(a->escrow_out, escrow_json, 0600);
			if (r < 0)
				return r;
		}
	}

	/* 3. keyslots, then the token */
	tpm_slot = luks_keyslot_add_by_volume_key(v, vk, vk_len, secret, sizeof(secret));
	if (tpm_slot < 0)
		return log_error_errno(tpm_slot, "Adding the TPM keyslot to '%s' failed: %m", a->argv[0]);
	t.keyslot = tpm_slot;
	if (!a->no_recovery_key) {
		rk_slot = luks_keyslot_add_by_volume_key(v, vk, vk_len, recovery, strlen(recovery));
		if (rk_slot < 0) {
			r = log_error_errno(rk_slot, "Adding the recovery keyslot failed: %m");
			goto rollback;
		}
		t.recovery_keyslot = rk_slot;
	}
	r = disk_token_store(v, LUKS_ANY_TOKEN, &t);
	if (r < 0) {
		r = log_error_errno(r, "Writing the " DISK_TOKEN_TYPE " token failed: %m");
		goto rollback;
	}

	if (a->show_recovery_key) {
		/* Shown once, on the terminal only: it is never stored in clear anywhere. */
		fprintf(stdout, "Recovery key (write it down; it is not shown again):\n\n    %s\n\n", recovery);
		fflush(stdout);
	}
	char rk[12] = "none";
	if (rk_slot >= 0)
		snprintf(rk, sizeof(rk), "%d", rk_slot);
	log_info("Enrolled '%s': device %s, epoch %llu, TPM keyslot %d, recovery keyslot %s.", a->argv[0],
		 t.device_id, (unsigned long long)epoch, tpm_slot, rk);
	if (!t.has_policy)
		log_info("No policy stored yet: sign one for epoch %llu and pass it with 'unlock --policy'.",
			 (unsigned long long)epoch);
	return 0;

rollback:
	if (rk_slot >= 0)
		(void)luks_keyslot_destroy(v, rk_slot);
	if (tpm_slot >= 0)
		(void)luks_keyslot_destroy(v, tpm_slot);
	return r;
}
