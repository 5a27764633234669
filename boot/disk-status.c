/* SPDX-License-Identifier: Apache-2.0 */
/* trustpc-disk status, device-id, tpm-status and lock. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "disk-unseal.h"
#include "trustpc-disk.h"

static json_t *pcr_array(uint32_t mask)
{
	json_t *a = json_array();
	for (unsigned i = 0; a && i < TPM2_PCRS_MAX; i++)
		if (mask & (UINT32_C(1) << i))
			json_array_append_new(a, json_integer(i));
	return a;
}

static int print_json(json_t *o)
{
	char *s;
	if (!o)
		return log_oom();
	s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	if (!s)
		return log_oom();
	puts(s);
	free(s);
	return 0;
}

int verb_status(DiskArgs *a)
{
	_cleanup_(disk_volume_closep) LuksVolume *v = NULL;
	_cleanup_tpm2_ Tpm2Context *tpm = NULL;
	_cleanup_(disk_token_done) DiskToken t = {};
	char reason[REASON_MAX];
	uint64_t counter = 0;
	bool have_counter = false, locked;
	uint32_t pcrs;
	int r, token_id;

	if (a->argc != 1) {
		log_error("Usage: trustpc-disk status IMAGE|DEVICE [--json]");
		return EXIT_USAGE;
	}
	r = luks_open(a->argv[0], &v);
	if (r < 0)
		return log_error_errno(r, "Cannot open '%s' as a LUKS2 volume: %m.", a->argv[0]);
	r = disk_token_load(v, &token_id, &t, reason, sizeof(reason));
	if (r < 0)
		return log_error_errno(r == -ENOENT ? -ENOENT : -EINVAL, "%s.", reason);

	/* The TPM is optional here: status of an image on another machine still shows the token. */
	if (tpm2_context_new(a->tpm2_device, &tpm) >= 0) {
		r = tpm2_counter_read(tpm, t.nv_index, &counter);
		have_counter = r >= 0;
		if (r < 0)
			log_debug_errno(r, "Cannot read the lock counter: %m");
	}
	/* Locked: the counter has moved past the epoch of the stored policy. Without a stored policy
	 * the disk cannot unlock either, but that is "no policy yet", not a lock: locked is unknown. */
	locked = t.has_policy && have_counter && counter != t.policy.params.epoch;
	pcrs = t.has_policy ? t.policy.params.pcr_mask : (t.pcr_mask | (UINT32_C(1) << TPM2_PCR_ONE_BOOT));

	if (a->json) {
		json_t *o = json_pack("{s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:b, s:o, s:o}", "device", a->argv[0],
				      "device_id", t.device_id, "keyslot", t.keyslot, "recovery_keyslot",
				      t.recovery_keyslot >= 0 ? json_integer(t.recovery_keyslot) : json_null(),
				      "epoch", have_counter ? json_integer((json_int_t)counter) : json_null(),
				      "policy_epoch",
				      t.has_policy ? json_integer((json_int_t)t.policy.params.epoch) : json_null(),
				      "locked", have_counter && t.has_policy ? json_boolean(locked) : json_null(),
				      "pin", (int)t.pin, "pcrs", pcr_array(pcrs), "token", json_integer(token_id));
		if (o) {
			char nv[16];
			snprintf(nv, sizeof(nv), "0x%08x", t.nv_index);
			json_object_set_new(o, "nv_index", json_string(nv));
			json_object_set_new(o, "tpm", json_boolean(tpm != NULL));
		}
		return print_json(o);
	}

	printf("Volume:           %s (%s)\n", a->argv[0], luks_uuid(v));
	printf("Token:            %d (" DISK_TOKEN_TYPE ")\n", token_id);
	printf("Device id:        %s\n", t.device_id);
	printf("TPM keyslot:      %d\n", t.keyslot);
	if (t.recovery_keyslot >= 0)
		printf("Recovery keyslot: %d\n", t.recovery_keyslot);
	else
		printf("Recovery keyslot: none\n");
	printf("PIN:              %s\n", t.pin ? "yes" : "no");
	printf("PCRs bound:       ");
	for (unsigned i = 0, first = 1; i < TPM2_PCRS_MAX; i++)
		if (pcrs & (UINT32_C(1) << i)) {
			printf("%s%u", first ? "" : ",", i);
			first = 0;
		}
	printf("\n");
	if (have_counter)
		printf("Lock counter:     NV 0x%08x, epoch %llu\n", t.nv_index, (unsigned long long)counter);
	else
		printf("Lock counter:     NV 0x%08x, epoch unknown (TPM not reachable)\n", t.nv_index);
	if (t.has_policy)
		printf("Policy:           epoch %llu\n", (unsigned long long)t.policy.params.epoch);
	else
		printf("Policy:           none stored\n");
	printf("State:            %s\n", !t.has_policy ? "no policy stored (unlock --policy FILE)"
				       : !have_counter ? "unknown (TPM not reachable)"
				       : locked	       ? "LOCKED"
						       : "unlockable");
	return 0;
}

int verb_device_id(DiskArgs *a)
{
	_cleanup_tpm2_ Tpm2Context *tpm = NULL;
	char id[DEVICE_ID_STRING_SIZE];
	int r;

	r = disk_tpm_open(a, &tpm);
	if (r < 0)
		return r;
	r = tpm2_device_id(tpm, id);
	if (r < 0)
		return log_error_errno(r, "Cannot read this TPM's endorsement key: %m.");
	puts(id);
	return 0;
}

int verb_tpm_status(DiskArgs *a)
{
	_cleanup_tpm2_ Tpm2Context *tpm = NULL;
	uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
	char id[DEVICE_ID_STRING_SIZE];
	uint32_t mask = a->pcr_mask | (UINT32_C(1) << TPM2_PCR_ONE_BOOT);
	uint64_t epoch = 0;
	bool have_epoch;
	int r;

	r = disk_tpm_open(a, &tpm);
	if (r < 0)
		return r;
	r = tpm2_device_id(tpm, id);
	if (r < 0)
		return log_error_errno(r, "Cannot read this TPM's endorsement key: %m.");
	r = tpm2_counter_read(tpm, a->nv_index, &epoch);
	if (r < 0 && r != -ENOENT)
		return log_error_errno(r, "Cannot read the lock counter at NV index 0x%08x: %m.", a->nv_index);
	have_epoch = r >= 0;
	r = tpm2_pcr_read(tpm, mask, values);
	if (r < 0)
		return log_error_errno(r, "Cannot read the PCRs: %m.");

	if (a->json) {
		json_t *pcrs = json_object();
		char nv[16];
		for (unsigned i = 0; pcrs && i < TPM2_PCRS_MAX; i++)
			if (mask & (UINT32_C(1) << i)) {
				char k[4];
				_cleanup_free_ char *h = hex_encode(values[i], 32);
				snprintf(k, sizeof(k), "%u", i);
				json_object_set_new(pcrs, k, json_string(h));
			}
		snprintf(nv, sizeof(nv), "0x%08x", a->nv_index);
		return print_json(json_pack("{s:s, s:s, s:o, s:o}", "device_id", id, "nv_index", nv, "epoch",
					    have_epoch ? json_integer((json_int_t)epoch) : json_null(), "pcrs", pcrs));
	}
	printf("device_id=%s\n", id);
	if (have_epoch)
		printf("epoch=%llu\n", (unsigned long long)epoch);
	else
		printf("epoch=none (lock counter not defined yet: 'enroll' defines it)\n");
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
		if (mask & (UINT32_C(1) << i)) {
			_cleanup_free_ char *h = hex_encode(values[i], 32);
			printf("pcr%u=%s\n", i, strna(h));
		}
	return 0;
}

int verb_lock(DiskArgs *a)
{
	_cleanup_tpm2_ Tpm2Context *tpm = NULL;
	uint64_t epoch;
	int r;

	if (a->argc != 0) {
		log_error("Usage: trustpc-disk lock [--nv-index=0x…]");
		return EXIT_USAGE;
	}
	r = disk_tpm_open(a, &tpm);
	if (r < 0)
		return r;
	/* TPM2_NV_Increment: every policy signed for the old epoch stops working, at the next boot
	 * too, whatever the OS does afterwards. */
	r = tpm2_counter_increment(tpm, a->nv_index, &epoch);
	if (r == -ENOENT)
		return log_error_errno(r, "There is no lock counter at NV index 0x%08x: enroll a disk first.",
				       a->nv_index);
	if (r < 0)
		return log_error_errno(r, "Incrementing the lock counter failed: %m.");
	printf("%llu\n", (unsigned long long)epoch);
	log_info("Locked: the lock counter is now at epoch %llu; disks of this device open only with a policy "
		 "signed for epoch %llu or the recovery key.", (unsigned long long)epoch, (unsigned long long)epoch);
	return 0;
}
